/*
 * Robustness tests of the card OS: any bytes of any length get a well-formed answer (data then a
 * status word of the ISO families the spec lists, no data with an error) from every profile's card
 * and PSAM, including command sequences that move the tokens through their states. A seeded
 * generator keeps runs reproducible; run under ASan/UBSan (SSC_SANITIZE) to catch memory errors.
 */
#include "sim_test.h"

#include <dirent.h>

static uint64_t rng_state = 0x5EED5EED12345678ULL;

static uint32_t rng(void)
{
	/* xorshift64*: deterministic, good enough to spread the inputs */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static void check_answer(const uint8_t *cmd, size_t len, const uint8_t *resp, size_t n)
{
	uint8_t sw1;
	char hex[2 * 300 + 1];

	th_tohex(cmd, len < 300 ? len : 300, hex);
	if (n < 2 || n > SIM_RESP_MAX)
		fail_msg("answer of %zu bytes to %s", n, hex);
	sw1 = resp[n - 2];
	switch (sw1) {
	case 0x90:
		if (resp[n - 1] != 0x00)
			fail_msg("SW 90%02X to %s", resp[n - 1], hex);
		break;
	case 0x61:
		break;
	case 0x63:
		if ((resp[n - 1] & 0xF0) != 0xC0 || n != 2)
			fail_msg("SW 63%02X (%zu bytes) to %s", resp[n - 1], n, hex);
		break;
	case 0x67: case 0x69: case 0x6A: case 0x6B: case 0x6C: case 0x6D: case 0x6E: case 0x6F:
		if (n != 2)
			fail_msg("error SW %02X%02X with data to %s", sw1, resp[n - 1], hex);
		break;
	default:
		fail_msg("unexpected SW %02X%02X to %s", sw1, resp[n - 1], hex);
	}
}

static void send_check(struct sim_token *t, const uint8_t *cmd, size_t len)
{
	uint8_t resp[SIM_RESP_MAX + 16];
	size_t n;

	memset(resp, 0xA5, sizeof(resp));
	n = sim_token_apdu(t, cmd, len, resp);
	check_answer(cmd, len, resp, n);
	for (size_t i = SIM_RESP_MAX; i < sizeof(resp); i++)
		assert_int_equal(resp[i], 0xA5);          /* nothing written past SIM_RESP_MAX */
}

/* Valid-looking commands of both roles, used as seeds for mutation. */
static const char *const seeds[] = {
	SEL_SSSE, SEL_DF04, "00A4040006D15600000590", "00A4020002EF05", "00A40000023F00",
	"00A4000002DF04", "00B2012C00", "00B2013400", "00B2012800", "00B2014400", "00B2010400",
	"0084000008", "00820004104BA5C1F9D6C57F0F1122334455667788",
	"00820004115E581E4BB536B207112233445566778801",
	"00880000100102030405060708A1A2A3A4A5A6A7A8", "00DC052C06050420250101",
	"04DC012C09300333020071907E5D", "04E200400E40330102030405060708F45CDC9E",
	"0020000003123456", "00200000", "805E010007123456FF654321", "805E0000076543216BAA78F9",
	"842400000CDA44BA6FAA847AB5DDD50645", "00C0000008", "00B0960006",
	"BFDE481218001122334455667733333031303073781122334455667788",
	"BFDE46151000112233445566773333303130307378", "80FA0000081122334455667788",
	"80FA050017112233440000000004E200400E40330102030405060708",
	"80FA0100080312345680000000",
};

static size_t seed_bytes(size_t i, uint8_t *out)
{
	return th_hex(seeds[i], out, 300);
}

static void run_token(struct sim_token *t, int rounds)
{
	uint8_t cmd[300];
	size_t len, i, nseeds = sizeof(seeds) / sizeof(seeds[0]);
	int r;

	for (r = 0; r < rounds; r++) {
		uint32_t kind = rng() % 4;

		if (kind == 0) {                              /* random bytes, random length */
			len = rng() % 270;
			for (i = 0; i < len; i++)
				cmd[i] = (uint8_t)rng();
		} else {                                      /* a seed, mutated */
			len = seed_bytes(rng() % nseeds, cmd);
			if (kind == 1 && len > 0) {
				for (i = 0; i < 1 + rng() % 3; i++)
					cmd[rng() % len] = (uint8_t)rng();
			} else if (kind == 2) {
				len = rng() % (len + 1);              /* truncated */
			} else if (len < sizeof(cmd) - 8) {
				size_t extra = rng() % 8;         /* extended */

				for (i = 0; i < extra; i++)
					cmd[len++] = (uint8_t)rng();
			}
		}
		send_check(t, cmd, len);
		if (rng() % 64 == 0)
			sim_token_reset(t);
	}
}

static void test_every_header(void **state)
{
	struct sim_token *t[2] = { th_vector_token(3, SIM_ROLE_CARD, NULL, "\"t0_get_response\":true"),
				   th_vector_token(2, SIM_ROLE_PSAM, NULL, NULL) };
	uint8_t cmd[5] = { 0 };
	int k, cla, ins;

	(void)state;
	for (k = 0; k < 2; k++)
		for (cla = 0; cla < 256; cla++)
			for (ins = 0; ins < 256; ins++) {
				cmd[0] = (uint8_t)cla;
				cmd[1] = (uint8_t)ins;
				cmd[2] = (uint8_t)rng();
				cmd[3] = (uint8_t)rng();
				cmd[4] = (uint8_t)rng();
				send_check(t[k], cmd, 4);
				send_check(t[k], cmd, 5);
			}
	send_check(t[0], NULL, 0);
	sim_token_free(t[0]);
	sim_token_free(t[1]);
}

static void test_fuzz_repo_profiles(void **state)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char dir[1024], path[1300], err[512];
	struct dirent *de;
	DIR *d;

	(void)state;
	assert_non_null(src);
	snprintf(dir, sizeof(dir), "%s/firmware-stubs/profiles", src);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		struct sim_profile *p;
		struct sim_token *c, *s;

		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		p = sim_profile_load(path, err, sizeof(err));
		if (p == NULL)
			fail_msg("%s", err);
		c = sim_token_new(p, SIM_ROLE_CARD);
		s = sim_token_new(p, SIM_ROLE_PSAM);
		run_token(c, 20000);
		run_token(s, 20000);
		sim_token_free(c);
		sim_token_free(s);
		sim_profile_free(p);
	}
	closedir(d);
}

/* The vector tokens with forced challenges: mutated MAC'd and auth commands reach deep checks. */
static void test_fuzz_authenticated(void **state)
{
	int gen, r;

	(void)state;
	for (gen = 2; gen <= 3; gen++) {
		struct sim_token *t = th_vector_token_ex(gen, SIM_ROLE_CARD, "\"pin_tries\":15,\"key_tries\":15,",
							 ",\"transaction_capacity\":2", "\"ef06_read_auth\":true");

		for (r = 0; r < 3000; r++) {
			th_force(t, "1122334455667788");
			send_check(t, (const uint8_t *)"\x00\x84\x00\x00\x08", 5);
			run_token(t, 5);
		}
		sim_token_free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_header),
		cmocka_unit_test(test_fuzz_repo_profiles),
		cmocka_unit_test(test_fuzz_authenticated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
