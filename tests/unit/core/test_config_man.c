/*
 * This file contains the check that the man page sscardd.conf(5) (man/sscardd.conf.5.scd) and the
 * configuration loader's one table of keys (config_key_at) name the same keys in the same
 * sections, so that neither can drift: a key added to src/config.c needs its entry in the man page
 * (a "*key* = ..." line under its "# [section]" heading), and a key documented there must exist.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define MAX_KEYS 256

struct key {
	char section[32];
	char name[64];
};

/* The "*key* =" entries of the page, each with the "# [section]" above it. */
static size_t page_keys(struct key *out, size_t max)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char path[1024], line[512], section[32] = "";
	size_t n = 0;
	FILE *f;

	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/man/sscardd.conf.5.scd", src);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *end;

		if (strncmp(line, "# [", 3) == 0 && (end = strchr(line + 3, ']'))) {
			snprintf(section, sizeof(section), "%.*s", (int)(end - line - 3), line + 3);
			continue;
		}
		if (line[0] != '*' || !(end = strstr(line + 1, "* = ")))
			continue;
		assert_true(section[0] != '\0');
		assert_true(n < max);
		snprintf(out[n].section, sizeof(out[n].section), "%s", section);
		snprintf(out[n].name, sizeof(out[n].name), "%.*s", (int)(end - line - 1), line + 1);
		n++;
	}
	fclose(f);
	return n;
}

static void test_same_keys(void **state)
{
	static struct key page[MAX_KEYS];
	size_t n_page = page_keys(page, MAX_KEYS), n_table = 0;
	const char *sec, *name;
	int bad = 0;

	(void)state;
	for (size_t i = 0; config_key_at(i, &sec, &name); i++) {
		int found = 0;

		n_table++;
		for (size_t k = 0; k < n_page; k++)
			found += strcmp(page[k].section, sec) == 0 && strcmp(page[k].name, name) == 0;
		if (found != 1) {
			fprintf(stderr, "[%s] %s is in src/config.c's key table but %s in "
				"man/sscardd.conf.5.scd: document it under \"# [%s]\"\n", sec, name,
				found ? "more than once" : "not", sec);
			bad = 1;
		}
	}
	for (size_t k = 0; k < n_page; k++) {
		int found = 0;

		for (size_t i = 0; config_key_at(i, &sec, &name); i++)
			found |= strcmp(page[k].section, sec) == 0 && strcmp(page[k].name, name) == 0;
		if (!found) {
			fprintf(stderr, "[%s] %s is in man/sscardd.conf.5.scd but not a key of "
				"src/config.c\n", page[k].section, page[k].name);
			bad = 1;
		}
	}
	assert_int_equal(bad, 0);
	assert_int_equal(n_page, n_table);
	assert_true(n_table > 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
