/*
 * This file contains the persistence of a token's state (simcos.h sim_token_save/load): the card's
 * records, PIN and try counters as JSON, tied to the profile by name and SHA-256 and to the role,
 * written atomically (temporary file, fsync, rename, fsync of the directory).
 */
#include "sim_text.h"
#include "sim_token.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#define STATE_FORMAT "sscard-sim-state/1"
#define STATE_MAX_BYTES (4 * 1024 * 1024)

static const char *role_name(enum sim_role role)
{
	return role == SIM_ROLE_CARD ? "card" : "psam";
}

static void ef_path(const struct sim_df *df, const struct sim_ef *ef, char out[16])
{
	snprintf(out, 16, "%s/EF%02X", df->name, (unsigned)(ef->fid & 0xFF));
}

static json_t *state_json(const struct sim_token *t)
{
	const struct sim_card_state *c = &t->card;
	char hex[2 * (2 + SIM_REC_MAX) + 1], path[16];
	json_t *root, *tries, *files, *recs;
	int i, j, k;

	sim_text_hex(t->prof.digest, sizeof(t->prof.digest), hex);
	root = json_pack("{s:s, s:s, s:s, s:s}", "format", STATE_FORMAT, "profile", t->prof.name,
			 "profile_sha256", hex, "role", role_name(t->role));
	if (root == NULL || t->role != SIM_ROLE_CARD)
		return root;
	tries = json_object();
	files = json_object();
	if (tries == NULL || files == NULL ||
	    json_object_set_new(root, "pin", json_string(c->pin)) != 0 ||
	    json_object_set_new(root, "pin_tries_left", json_integer(c->pin_tries_left)) != 0 ||
	    json_object_set(root, "key_tries_left", tries) != 0 ||
	    json_object_set(root, "files", files) != 0)
		goto out_fail;
	for (i = 0; i < SIM_KEY_COUNT; i++)
		if (json_object_set_new(tries, sim_profile_key_name(i),
					json_integer(c->key[i].tries_left)) != 0)
			goto out_fail;
	for (i = 0; i < SIM_NDF; i++) {
		for (j = 0; j < c->fs.df[i].nef; j++) {
			const struct sim_ef *ef = &c->fs.df[i].ef[j];

			if (ef->cap == 0)
				continue;
			recs = json_array();
			ef_path(&c->fs.df[i], ef, path);
			if (recs == NULL || json_object_set_new(files, path, recs) != 0)
				goto out_fail;
			for (k = 0; k < ef->nrec; k++) {
				uint8_t tlv[2 + SIM_REC_MAX];

				tlv[0] = ef->rec[k].tag;
				tlv[1] = ef->rec[k].len;
				memcpy(tlv + 2, ef->rec[k].val, ef->rec[k].len);
				sim_text_hex(tlv, 2 + (size_t)ef->rec[k].len, hex);
				if (json_array_append_new(recs, json_string(hex)) != 0)
					goto out_fail;
			}
		}
	}
	json_decref(tries);
	json_decref(files);
	return root;
out_fail:
	json_decref(tries);
	json_decref(files);
	json_decref(root);
	return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int sim_token_save(const struct sim_token *t, const char *path)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash, *text;
	json_t *root;
	int fd, dfd, rc;

	if (t == NULL || path == NULL || path[0] == 0)
		return -EINVAL;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	root = state_json(t);
	text = root != NULL ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	if (text == NULL)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out_text;
	}
	rc = write_all(fd, text, strlen(text));
	if (rc == 0)
		rc = write_all(fd, "\n", 1);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		goto out_text;
	}
	/* The rename is durable only once the directory is on disk too. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		goto out_text;
	}
	if (fsync(dfd) != 0)
		rc = -errno;
	close(dfd);
out_text:
	free(text);
	return rc;
}

struct st {
	const char *path;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int st_fail(struct st *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->err != NULL && s->errlen > 0) {
		n = snprintf(s->err, s->errlen, "%s: ", s->path);
		if (n >= 0 && (size_t)n < s->errlen) {
			va_start(ap, fmt);
			vsnprintf(s->err + n, s->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return -EINVAL;
}

static int st_int(struct st *s, json_t *v, const char *what, int max, int *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return st_fail(s, "%s: expected an integer 0..%d", what, max);
	*out = (int)json_integer_value(v);
	return 0;
}

/* One file's records: checked against the file's shape; copied into ef when commit. */
static int st_file(struct st *s, json_t *recs, const char *path, struct sim_ef *ef, bool commit)
{
	uint8_t tlv[2 + SIM_REC_MAX];
	json_t *v;
	size_t i;
	int n;

	if (!json_is_array(recs))
		return st_fail(s, "files.%s: expected an array", path);
	if (ef->cyclic ? json_array_size(recs) > (size_t)ef->cap : json_array_size(recs) != (size_t)ef->nrec)
		return st_fail(s, "files.%s: %zu records, the file has %s%d", path, json_array_size(recs),
			       ef->cyclic ? "room for " : "", ef->cyclic ? ef->cap : ef->nrec);
	json_array_foreach(recs, i, v) {
		uint8_t tag = ef->cyclic ? ef->cyc_tag : ef->rec[i].tag;
		uint8_t len = ef->cyclic ? ef->cyc_len : ef->rec[i].len;

		n = json_is_string(v) ? sim_text_unhex(json_string_value(v), tlv, sizeof(tlv)) : -1;
		if (n < 0)
			return st_fail(s, "files.%s[%zu]: expected hex", path, i);
		if (n != 2 + len || tlv[0] != tag || tlv[1] != len)
			return st_fail(s, "files.%s[%zu]: expected tag %02X length %02X", path, i, tag, len);
		if (commit) {
			ef->rec[i].tag = tag;
			ef->rec[i].len = len;
			ef->rec[i].fmt = ef->cyclic ? ef->cyc_fmt : ef->rec[i].fmt;
			memcpy(ef->rec[i].val, tlv + 2, len);
		}
	}
	if (commit && ef->cyclic)
		ef->nrec = (int)json_array_size(recs);
	return 0;
}

/* Checks the whole card state (commit false), then applies it (commit true). */
static int st_card(struct st *s, struct sim_token *t, json_t *root, bool commit)
{
	static const char *const known[] = { "format", "profile", "profile_sha256", "role", "pin",
					     "pin_tries_left", "key_tries_left", "files", NULL };
	const struct sim_card_profile *cp = &t->prof.card;
	struct sim_card_state *c = &t->card;
	json_t *v, *tries, *files;
	const char *k, *pin;
	char path[16];
	int i, j, n, rc;
	size_t len;

	json_object_foreach(root, k, v) {
		for (i = 0; known[i] != NULL && strcmp(known[i], k) != 0; i++)
			;
		if (known[i] == NULL)
			return st_fail(s, "%s: unknown field", k);
	}
	v = json_object_get(root, "pin");
	pin = json_is_string(v) ? json_string_value(v) : "";
	len = strlen(pin);
	if (len < (size_t)cp->pin_min || len > (size_t)cp->pin_max || strspn(pin, "0123456789") != len)
		return st_fail(s, "pin: expected %d to %d digits", cp->pin_min, cp->pin_max);
	if (st_int(s, json_object_get(root, "pin_tries_left"), "pin_tries_left", cp->pin_tries, &n) != 0)
		return -EINVAL;
	if (commit) {
		snprintf(c->pin, sizeof(c->pin), "%s", pin);
		c->pin_tries_left = n;
	}
	tries = json_object_get(root, "key_tries_left");
	if (!json_is_object(tries) || json_object_size(tries) != SIM_KEY_COUNT)
		return st_fail(s, "key_tries_left: expected an object with %d keys", SIM_KEY_COUNT);
	for (i = 0; i < SIM_KEY_COUNT; i++) {
		char what[48];

		snprintf(what, sizeof(what), "key_tries_left.%s", sim_profile_key_name(i));
		if (st_int(s, json_object_get(tries, sim_profile_key_name(i)), what, cp->key_tries, &n) != 0)
			return -EINVAL;
		if (commit)
			c->key[i].tries_left = n;
	}
	files = json_object_get(root, "files");
	if (!json_is_object(files))
		return st_fail(s, "files: expected an object");
	n = 0;
	for (i = 0; i < SIM_NDF; i++) {
		for (j = 0; j < c->fs.df[i].nef; j++) {
			struct sim_ef *ef = &c->fs.df[i].ef[j];

			if (ef->cap == 0)
				continue;
			ef_path(&c->fs.df[i], ef, path);
			v = json_object_get(files, path);
			if (v == NULL)
				return st_fail(s, "files.%s: missing", path);
			rc = st_file(s, v, path, ef, commit);
			if (rc != 0)
				return rc;
			n++;
		}
	}
	if (json_object_size(files) != (size_t)n)
		return st_fail(s, "files: holds files this card does not have");
	return 0;
}

int sim_token_load(struct sim_token *t, const char *path, char *err, size_t errlen)
{
	struct st s = { .path = path != NULL ? path : "(null)", .err = err, .errlen = errlen };
	char hex[65];
	json_error_t jerr;
	json_t *root = NULL, *v;
	struct stat sb;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc;

	if (err != NULL && errlen > 0)
		err[0] = 0;
	if (t == NULL || path == NULL)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		rc = -errno;
		st_fail(&s, "%s", strerror(errno));
		return rc;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > STATE_MAX_BYTES) {
		rc = st_fail(&s, "not a regular file of at most %d bytes", STATE_MAX_BYTES);
		goto out_close;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto out_close;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	root = json_loadb(buf, got, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL || !json_is_object(root)) {
		rc = st_fail(&s, "not a JSON object (%s)", root == NULL ? jerr.text : "wrong type");
		goto out_free;
	}
	v = json_object_get(root, "format");
	if (!json_is_string(v) || strcmp(json_string_value(v), STATE_FORMAT) != 0) {
		rc = st_fail(&s, "format: expected \"%s\"", STATE_FORMAT);
		goto out_free;
	}
	v = json_object_get(root, "role");
	if (!json_is_string(v) || strcmp(json_string_value(v), role_name(t->role)) != 0) {
		rc = st_fail(&s, "role: the state is not a %s's", role_name(t->role));
		goto out_free;
	}
	v = json_object_get(root, "profile");
	if (!json_is_string(v) || strcmp(json_string_value(v), t->prof.name) != 0) {
		rc = st_fail(&s, "profile: the state belongs to another profile, not \"%s\"", t->prof.name);
		goto out_free;
	}
	sim_text_hex(t->prof.digest, sizeof(t->prof.digest), hex);
	v = json_object_get(root, "profile_sha256");
	if (!json_is_string(v) || strcasecmp(json_string_value(v), hex) != 0) {
		rc = st_fail(&s, "profile_sha256: saved with another version of profile \"%s\"",
			     t->prof.name);
		goto out_free;
	}
	rc = 0;
	if (t->role == SIM_ROLE_CARD) {
		rc = st_card(&s, t, root, false);
		if (rc == 0)
			rc = st_card(&s, t, root, true);
	} else if (json_object_size(root) != 4) {
		rc = st_fail(&s, "a PSAM's state has only format, profile, profile_sha256 and role");
	}
out_free:
	json_decref(root);
	if (buf != NULL)
		sim_crypto_wipe(buf, got);
	free(buf);
out_close:
	close(fd);
	return rc;
}
