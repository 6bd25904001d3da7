/*
 * This file contains the loader and expander of the bare PC/SC client's APDU scripts
 * (bench_seq.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_seq.h"

static int bench_seq_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = toupper(c);
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses "[once] card|psam HEX [-> VAR] [= SW]" (line is modified). Returns 0 or -1 with err. */
static int bench_seq_parse_line(char *line, struct bench_seq_step *st, char *err, size_t errlen)
{
	char *arrow, *eq, *p;
	size_t l;

	memset(st, 0, sizeof(*st));
	st->sw = 0x9000;
	eq = strchr(line, '=');
	if (eq) {
		unsigned long sw;
		char *end;

		*eq = '\0';
		sw = strtoul(eq + 1, &end, 16);
		while (isspace((unsigned char)*end))
			end++;
		if (end == eq + 1 || *end || sw > 0xFFFF) {
			snprintf(err, errlen, "bad status word \"%s\"", eq + 1);
			return -1;
		}
		st->sw = (uint16_t)sw;
	}
	arrow = strstr(line, "->");
	if (arrow) {
		char name[BENCH_SEQ_VAR_NAME_MAX + 1];

		*arrow = '\0';
		if (sscanf(arrow + 2, " %16s", name) != 1 || strlen(name) >= BENCH_SEQ_VAR_NAME_MAX) {
			snprintf(err, errlen, "bad variable after ->");
			return -1;
		}
		memcpy(st->save, name, strlen(name) + 1);
	}
	p = line;
	while (isspace((unsigned char)*p))
		p++;
	if (strncmp(p, "once", 4) == 0 && isspace((unsigned char)p[4])) {
		st->once = 1;
		p += 4;
		while (isspace((unsigned char)*p))
			p++;
	}
	if (strncmp(p, "card", 4) == 0 && isspace((unsigned char)p[4])) {
		st->target = BENCH_SEQ_CARD;
		p += 4;
	} else if (strncmp(p, "psam", 4) == 0 && isspace((unsigned char)p[4])) {
		st->target = BENCH_SEQ_PSAM;
		p += 4;
	} else {
		snprintf(err, errlen, "a step starts with card or psam");
		return -1;
	}
	while (isspace((unsigned char)*p))
		p++;
	l = strlen(p);
	while (l > 0 && isspace((unsigned char)p[l - 1]))
		p[--l] = '\0';
	if (l == 0) {
		snprintf(err, errlen, "no command");
		return -1;
	}
	st->tmpl = strdup(p);
	if (!st->tmpl) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int bench_seq_load(const char *path, struct bench_seq *out, char *err, size_t errlen)
{
	char line[1024], msg[160];
	unsigned lineno = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		bench_seq_free(out);
		snprintf(err, errlen, "%s: cannot open", path);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		struct bench_seq_step st, *steps;
		char *hash = strchr(line, '#'), *p = line;

		lineno++;
		if (hash)
			*hash = '\0';
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			continue;
		if (bench_seq_parse_line(p, &st, msg, sizeof(msg)) != 0)
			goto fail;
		steps = realloc(out->steps, (out->n + 1) * sizeof(*steps));
		if (!steps) {
			free(st.tmpl);
			snprintf(msg, sizeof(msg), "out of memory");
			goto fail;
		}
		out->steps = steps;
		out->steps[out->n++] = st;
		if (st.target == BENCH_SEQ_PSAM)
			out->uses_psam = 1;
	}
	fclose(f);
	if (out->n == 0) {
		snprintf(err, errlen, "%s: no steps", path);
		return -1;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
	fclose(f);
	bench_seq_free(out);
	return -1;
}

void bench_seq_free(struct bench_seq *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->steps[i].tmpl);
	free(s->steps);
	memset(s, 0, sizeof(*s));
}

static const struct bench_seq_vars *bench_seq_find(const struct bench_seq_vars *v,
						    const char *name, size_t *idx)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->name[i], name) == 0) {
			*idx = i;
			return v;
		}
	return NULL;
}

int bench_seq_vars_set(struct bench_seq_vars *vars, const char *name, const uint8_t *data,
		       size_t len)
{
	size_t i;

	if (!bench_seq_find(vars, name, &i)) {
		if (vars->n == BENCH_SEQ_VARS_MAX)
			return -1;
		i = vars->n++;
		snprintf(vars->name[i], sizeof(vars->name[i]), "%s", name);
	}
	if (len > sizeof(vars->val[i]))
		len = sizeof(vars->val[i]);
	memcpy(vars->val[i], data, len);
	vars->len[i] = len;
	return 0;
}

int bench_seq_expand(const struct bench_seq_step *st, const struct bench_seq_vars *vars,
		     uint8_t *out, char *err, size_t errlen)
{
	const char *p = st->tmpl;
	size_t n = 0;
	int hi = -1;

	while (*p) {
		if (isspace((unsigned char)*p)) {
			p++;
			continue;
		}
		if (*p == '{') {
			const char *end = strchr(p, '}');
			char name[BENCH_SEQ_VAR_NAME_MAX + 8];
			int fold = 0;
			size_t i, l;

			if (!end || (size_t)(end - p - 1) >= sizeof(name) || hi >= 0) {
				snprintf(err, errlen, "bad placeholder in \"%s\"", st->tmpl);
				return -1;
			}
			memcpy(name, p + 1, (size_t)(end - p - 1));
			name[end - p - 1] = '\0';
			if (strncmp(name, "fold ", 5) == 0) {
				fold = 1;
				memmove(name, name + 5, strlen(name + 5) + 1);
			}
			if (!bench_seq_find(vars, name, &i)) {
				snprintf(err, errlen, "no value for {%s}", name);
				return -1;
			}
			l = vars->len[i];
			if (fold && l != 16) {
				snprintf(err, errlen, "{fold %s}: %zu bytes, not 16", name, l);
				return -1;
			}
			if (fold)
				l = 8;
			if (n + l > BENCH_SEQ_APDU_MAX) {
				snprintf(err, errlen, "command too long");
				return -1;
			}
			for (size_t k = 0; k < l; k++)
				out[n + k] = fold ? (uint8_t)(vars->val[i][k] ^ vars->val[i][k + 8])
						  : vars->val[i][k];
			n += l;
			p = end + 1;
			continue;
		}
		if (bench_seq_hexval((unsigned char)*p) < 0) {
			snprintf(err, errlen, "bad hex in \"%s\"", st->tmpl);
			return -1;
		}
		if (hi < 0) {
			hi = bench_seq_hexval((unsigned char)*p);
		} else {
			if (n == BENCH_SEQ_APDU_MAX) {
				snprintf(err, errlen, "command too long");
				return -1;
			}
			out[n++] = (uint8_t)(hi << 4 | bench_seq_hexval((unsigned char)*p));
			hi = -1;
		}
		p++;
	}
	if (hi >= 0 || n < 4) {
		snprintf(err, errlen, "odd or short hex in \"%s\"", st->tmpl);
		return -1;
	}
	return (int)n;
}
