/*
 * jsontext_dump under allocation failure: each allocation on its way fails once in turn (jansson's
 * and ours, tests/unit/core/test_alloc_fail.h); the answer is then NULL or the whole text, never a
 * part of it (json_dumps returns a text cut short when its buffer cannot grow).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsontext.h"
#include "test_alloc_fail.h"

/*
 * An answer with a nested object whose text outgrows jansson's first buffer several times (its
 * text written out by hand below). json_dumps of it, with its 6th allocation failing, gives
 * {"jsonrpc":"2.0","result":{"k00:"0123...: a key's closing quote is lost.
 */
static json_t *big_object(void)
{
	json_t *o = json_object();
	char key[8];

	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		json_object_set_new(o, key, json_string("0123456789abcdef0123456789abcdef"));
	}
	return json_pack("{s:s, s:o, s:i}", "jsonrpc", "2.0", "result", o, "id", 1);
}

static char *big_text(void)
{
	static char text[1024];
	size_t n = 0;

	n += (size_t)snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"result\":{");
	for (int i = 0; i < 12; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"k%02d\":\"%s\"", i ? "," : "",
				      i, "0123456789abcdef0123456789abcdef");
	snprintf(text + n, sizeof(text) - n, "},\"id\":1}");
	return text;
}

static void test_whole_or_nothing(void **state)
{
	json_t *o = big_object();
	const char *want = big_text();
	int nulls = 0;
	long n;

	(void)state;
	assert_non_null(o);
	for (n = 1; n < 1000; n++) {
		char *s;
		int failed;

		af_arm(n);
		s = jsontext_dump(o, JSON_COMPACT);
		failed = af_disarm();
		if (s) {
			if (strcmp(s, want) != 0)
				fail_msg("allocation %ld failed: got %s", n, s);
		} else {
			assert_true(failed);   /* NULL only when memory ran out */
			nulls++;
		}
		free(s);
		if (!failed)
			break;
	}
	assert_true(n < 1000);
	assert_true(nulls > 1);   /* jansson's buffer growth was reached, not only our malloc */
	json_decref(o);
}

static void test_plain(void **state)
{
	json_t *a = json_pack("[i,s]", 7, "七");
	char *s;

	(void)state;
	s = jsontext_dump(a, JSON_COMPACT);
	assert_string_equal(s, "[7,\"七\"]");
	free(s);
	s = jsontext_dump(a, JSON_COMPACT | JSON_ENSURE_ASCII);
	assert_string_equal(s, "[7,\"\\u4E03\"]");
	free(s);
	assert_null(jsontext_dump(NULL, JSON_COMPACT));
	json_decref(a);
	a = json_integer(5);
	assert_null(jsontext_dump(a, JSON_COMPACT));   /* not an object or array */
	s = jsontext_dump(a, JSON_COMPACT | JSON_ENCODE_ANY);
	assert_string_equal(s, "5");
	free(s);
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_whole_or_nothing),
	};

	if (af_install() != 0) {
		fprintf(stderr, "cannot route the allocations of SQLite, jansson and OpenSSL\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
