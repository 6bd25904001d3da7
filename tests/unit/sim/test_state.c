/*
 * Unit tests of the token state files (sim_state.c): a round trip keeps records, PIN and every try
 * counter; files of another profile, profile version or role, and malformed files are refused
 * without touching the token; saving is atomic and leaves no temporary file behind.
 */
#include "sim_test.h"

#include <dirent.h>
#include <errno.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/simcos-state-XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];

	(void)state;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
	return 0;
}

static int count_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Changes records, PIN tries and a key's tries of a gen2 card. */
static void mutate(struct sim_token *t, struct sim_token *psam)
{
	(void)psam;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	th_force(t, "1122334455667788");
	TX(t, "0084000008", "1122334455667788" "9000");
	TX(t, "00820004100000000000000000" "1122334455667788", "63C4");
	th_force(t, "1122334455667788");
	TX(t, "0084000008", "1122334455667788" "9000");
	TX(t, "00820004104BA5C1F9D6C57F0F1122334455667788", "9000");
	TX(t, "00DC052C06050420250101", "9000");
	th_force(t, "1122334455667788");
	TX(t, "0084000008", "1122334455667788" "9000");
	TX(t, "008200" "0A" "100000000000000000" "1122334455667788", "63C4");   /* key 0A: 4 left */
	TX(t, "0020000003999999", "63C2");
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	th_force(t, "1122334455667788");
	TX(t, "0084000008", "1122334455667788" "9000");
	TX(t, "04E200400E40330102030405060708F45CDC9E", "9000");
}

static void test_round_trip(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL), *u;
	char path[128], err[256];
	uint8_t a[SIM_RESP_MAX], b[SIM_RESP_MAX];
	size_t na, nb;

	(void)state;
	snprintf(path, sizeof(path), "%s/card.state", dir);
	u = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	assert_int_equal(sim_token_load(u, path, err, sizeof(err)), 1);   /* missing: nothing */
	mutate(t, NULL);
	assert_int_equal(sim_token_save(t, path), 0);
	assert_int_equal(count_files(), 1);                   /* no temporary file left */
	assert_int_equal(sim_token_load(u, path, err, sizeof(err)), 0);
	TX(u, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(u, "00B2052C00", "050420250101" "9000");           /* the updated record */
	TX(u, "00200000", "63C2");                            /* PIN tries */
	th_force(u, "1122334455667788");
	TX(u, "0084000008", "1122334455667788" "9000");
	TX(u, "008200" "0A" "100000000000000000" "1122334455667788", "63C3");   /* key 0A tries */
	th_force(u, "1122334455667788");
	TX(u, "0084000008", "1122334455667788" "9000");
	TX(u, "00820004100000000000000000" "1122334455667788", "63C4");   /* key 04 was reset */
	TX(u, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	na = th_send(u, "00B2014400", a);
	assert_int_equal(na, 2 + 0x33 + 2);
	assert_memory_equal(a, "\x40\x33\x01\x02\x03\x04\x05\x06\x07\x08\x00", 11);
	TX(u, "00B2024400", "6A83");
	/* Saved again, the file is the same bytes (stable, sorted output). */
	sim_token_free(t);
	t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	assert_int_equal(sim_token_load(t, path, err, sizeof(err)), 0);
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	nb = th_send(t, "00B2014400", b);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	sim_token_free(t);
	sim_token_free(u);
}

static void test_pin_change_persists(void **state)
{
	struct sim_token *t = th_repo_token("gen3", SIM_ROLE_CARD), *u;
	char path[128], err[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/gen3.state", dir);
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	TX(t, "805E010007888888FF246810", "9000");
	assert_int_equal(sim_token_save(t, path), 0);
	assert_int_equal(sim_token_save(t, path), 0);         /* overwriting is fine */
	u = th_repo_token("gen3", SIM_ROLE_CARD);
	assert_int_equal(sim_token_load(u, path, err, sizeof(err)), 0);
	TX(u, SEL_SSSE, FCI_SSSE_SM4 "9000");
	TX(u, "0020000003888888", "63C2");
	TX(u, "0020000003246810", "9000");
	sim_token_free(t);
	sim_token_free(u);
}

static void test_refused(void **state)
{
	struct sim_token *card = th_repo_token("gen2", SIM_ROLE_CARD);
	struct sim_token *psam = th_repo_token("gen2", SIM_ROLE_PSAM);
	struct sim_token *other = th_repo_token("expired", SIM_ROLE_CARD);
	struct sim_token *vec = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	struct sim_token *vec2 = th_vector_token(2, SIM_ROLE_CARD, "\"pin_tries\":4,", NULL);
	char cpath[128], ppath[128], bad[128], err[256];

	(void)state;
	snprintf(cpath, sizeof(cpath), "%s/c.state", dir);
	snprintf(ppath, sizeof(ppath), "%s/p.state", dir);
	snprintf(bad, sizeof(bad), "%s/bad.state", dir);
	assert_int_equal(sim_token_save(card, cpath), 0);
	assert_int_equal(sim_token_save(psam, ppath), 0);
	assert_int_equal(sim_token_load(psam, ppath, err, sizeof(err)), 0);
	assert_int_equal(sim_token_load(psam, cpath, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "role"));
	assert_int_equal(sim_token_load(card, ppath, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "role"));
	assert_int_equal(sim_token_load(other, cpath, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "another profile"));
	/* Same name ("vector2"), other text: another version of the profile. */
	assert_int_equal(sim_token_save(vec, cpath), 0);
	assert_int_equal(sim_token_load(vec2, cpath, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "another version"));

	write_file(bad, "not json");
	assert_int_equal(sim_token_load(card, bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, bad));
	write_file(bad, "{\"format\":\"x\"}");
	assert_int_equal(sim_token_load(card, bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "format"));
	assert_int_equal(sim_token_load(card, dir, err, sizeof(err)), -EINVAL);
	assert_int_equal(sim_token_save(card, "/nonexistent-dir/x.state"), -ENOENT);
	assert_int_equal(sim_token_save(card, ""), -EINVAL);
	assert_int_equal(sim_token_load(NULL, cpath, err, sizeof(err)), -EINVAL);
	sim_token_free(card);
	sim_token_free(psam);
	sim_token_free(other);
	sim_token_free(vec);
	sim_token_free(vec2);
}

/* Broken content: refused with the field named, and nothing of it reaches the token. */
static void test_malformed_content(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	char path[128], err[256], *text, *p;
	FILE *f;
	long n;
	static const struct {
		const char *from, *to, *msg;
	} cases[] = {
		{ "\"pin\": \"123456\"", "\"pin\": \"12a456\"", "pin: expected 4 to 12 digits" },
		{ "\"pin_tries_left\": 3", "\"pin_tries_left\": 9", "pin_tries_left: expected an integer 0..3" },
		{ "\"stk\": 5", "\"stk\": 6", "key_tries_left.stk: expected an integer 0..5" },
		{ "\"stk\": 5", "\"stx\": 5", "key_tries_left.stk" },
		{ "\"0709583030303030303139\"", "\"0809583030303030303139\"",
		  "files.SSSE/EF05[6]: expected tag 07 length 09" },
		{ "\"0709583030303030303139\"", "\"07095830303030303031\"", "files.SSSE/EF05[6]" },
		{ "\"0709583030303030303139\"", "\"07095830303030303031ZZ\"", "files.SSSE/EF05[6]: expected hex" },
		{ "\"DF04/EF06\"", "\"DF04/EF07\"", "files.DF04/EF06: missing" },
		{ "\"role\": \"card\"", "\"role\": \"card\", \"x\": 1", "x: unknown field" },
	};
	size_t i;

	(void)state;
	snprintf(path, sizeof(path), "%s/m.state", dir);
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	th_force(t, "1122334455667788");
	TX(t, "0084000008", "1122334455667788" "9000");
	TX(t, "00820004104BA5C1F9D6C57F0F1122334455667788", "9000");
	TX(t, "00DC052C06050420250101", "9000");
	assert_int_equal(sim_token_save(t, path), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim_token *u = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
		char *at = strstr(text, cases[i].from), *mod;

		if (at == NULL)
			fail_msg("test bug: %s not in the state file:\n%s", cases[i].from, text);
		mod = calloc(1, strlen(text) + strlen(cases[i].to) + 1);
		memcpy(mod, text, (size_t)(at - text));
		p = mod + (at - text);
		memcpy(p, cases[i].to, strlen(cases[i].to));
		memcpy(p + strlen(cases[i].to), at + strlen(cases[i].from), strlen(at + strlen(cases[i].from)));
		write_file(path, mod);
		assert_int_equal(sim_token_load(u, path, err, sizeof(err)), -EINVAL);
		if (strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].msg);
		/* Nothing was applied: EF05 record 5 is still the profile's. */
		TX(u, SEL_SSSE, FCI_SSSE_DES "9000");
		TX(u, "00B2052C00", "050420240101" "9000");
		sim_token_free(u);
		free(mod);
	}
	free(text);
	sim_token_free(t);
}

static void test_generation(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	uint64_t g = sim_token_generation(t);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2012C00", "0110330100D15600000544556677A1DF7BC8" "9000");
	TX(t, "0020000003123456", "9000");                    /* counter already full */
	TX(t, "00880000100102030405060708A1A2A3A4A5A6A7A8", "D2FFA2E969F241C5" "9000");
	assert_true(sim_token_generation(t) == g);            /* reads move nothing */
	TX(t, "0020000003123455", "63C2");
	assert_true(sim_token_generation(t) > g);
	g = sim_token_generation(t);
	TX(t, "0020000003123456", "9000");                    /* the counter is reset */
	assert_true(sim_token_generation(t) > g);
	assert_int_equal(sim_token_generation(NULL), 0);
	sim_token_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_change_persists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_content, setup, teardown),
		cmocka_unit_test(test_generation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
