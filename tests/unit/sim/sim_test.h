/*
 * This file contains helpers shared by the simulator's unit tests: hex <-> bytes, sending an APDU
 * to a token and comparing the answer with hand-written hex, and the in-test "vector" profile of
 * spec §12.8 (K_master 00112233..EEFF for every key, region 330100, chip serial 0011223344556677).
 */
#ifndef SIM_TEST_H
#define SIM_TEST_H

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "simcos.h"
#include "sim_testhook.h"

/* Decodes hex (spaces ignored) into out; fails the test on bad input or overflow. */
static inline size_t th_hex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *hex; hex++) {
		int v;

		if (*hex == ' ')
			continue;
		if (!isxdigit((unsigned char)*hex))
			fail_msg("bad hex digit in test data: %s", hex);
		v = isdigit((unsigned char)*hex) ? *hex - '0' : (toupper((unsigned char)*hex) - 'A' + 10);
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n >= cap)
			fail_msg("test hex too long");
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	if (hi >= 0)
		fail_msg("odd number of hex digits in test data");
	return n;
}

static inline void th_tohex(const uint8_t *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02X", p[i]);
	out[2 * n] = 0;
}

/* Writes pre, then nzero "00" pairs, then post into out (hex text). */
static inline void th_padded(char *out, size_t cap, const char *pre, int nzero, const char *post)
{
	size_t n = (size_t)snprintf(out, cap, "%s", pre);
	int i;

	for (i = 0; i < nzero && n + 2 < cap; i++, n += 2)
		memcpy(out + n, "00", 3);
	snprintf(out + n, cap - n, "%s", post);
}

/* Sends cmd (hex) and returns the answer in resp (SIM_RESP_MAX bytes); checks the size contract. */
static inline size_t th_send(struct sim_token *t, const char *cmd, uint8_t *resp)
{
	uint8_t c[300];
	size_t n = th_hex(cmd, c, sizeof(c)), r;

	r = sim_token_apdu(t, c, n, resp);
	assert_true(r >= 2 && r <= SIM_RESP_MAX);
	return r;
}

/* Sends cmd and checks the whole answer (data and SW) against exp, both hex. */
static inline void th_tx(struct sim_token *t, const char *cmd, const char *exp, const char *file,
			 int line)
{
	uint8_t resp[SIM_RESP_MAX], e[SIM_RESP_MAX];
	char got[2 * SIM_RESP_MAX + 1], want[2 * SIM_RESP_MAX + 1];
	size_t n = th_send(t, cmd, resp), en = th_hex(exp, e, sizeof(e));

	th_tohex(resp, n, got);
	th_tohex(e, en, want);
	if (n != en || memcmp(resp, e, n) != 0)
		fail_msg("%s:%d: APDU %s\n  answered %s\n  expected %s", file, line, cmd, got, want);
}
#define TX(t, cmd, exp) th_tx((t), (cmd), (exp), __FILE__, __LINE__)

/* Sends cmd and checks only the status word. */
static inline void th_sw(struct sim_token *t, const char *cmd, uint16_t sw, const char *file, int line)
{
	uint8_t resp[SIM_RESP_MAX];
	size_t n = th_send(t, cmd, resp);
	uint16_t got = (uint16_t)(resp[n - 2] << 8 | resp[n - 1]);

	if (got != sw)
		fail_msg("%s:%d: APDU %s answered SW %04X, expected %04X", file, line, cmd, got, sw);
}
#define SW(t, cmd, sw) th_sw((t), (cmd), (sw), __FILE__, __LINE__)

static inline void th_force(struct sim_token *t, const char *r_hex)
{
	uint8_t r[8];

	assert_int_equal(th_hex(r_hex, r, sizeof(r)), 8);
	sim_token_test_set_challenge(t, r);
}

/* The §12.8 profile: every master key 00112233..EEFF, so every K_card is the vector's K_card. */
#define TH_KEY "00112233445566778899AABBCCDDEEFF"
static inline struct sim_profile *th_vector_profile_ex(int gen, const char *card_extra,
						       const char *medical_extra, const char *quirks)
{
	static char json[8192];
	char err[512];
	struct sim_profile *p;
	const char *alg = gen == 3 ? "sm4" : "des";

	snprintf(json, sizeof(json),
		 "{\"format\":\"sscard-sim-profile/1\",\"name\":\"vector%d\",\"card\":{"
		 "\"atr\":\"3B8E80010081544C9286001122334455667782\",\"spec_version\":\"%d.00\","
		 "\"algorithm\":\"%s\",\"region\":\"330100\",\"card_type\":\"3\","
		 "\"init_org\":\"330100000001\",\"issue_date\":\"20240101\",\"expiry_date\":\"20340101\","
		 "\"card_number\":\"X00000019\",\"holder\":{\"ssn\":\"330102199003071230\","
		 "\"name\":\"张三\",\"sex\":\"1\",\"nation\":\"01\",\"birth_place\":\"330102\","
		 "\"birth_date\":\"19900307\"},%s"
		 "\"medical\":{\"region\":\"330100\",\"category\":\"11\","
		 "\"person_no\":\"33010000000000000001\",\"institution\":\"H33010000001\","
		 "\"relocated\":\"0\"%s},\"pin\":\"123456\",%s"
		 "\"keys\":{\"ext_auth\":\"" TH_KEY "\",\"ef0d\":\"" TH_KEY "\",\"read_auth\":\"" TH_KEY
		 "\",\"internal\":\"" TH_KEY "\",\"stk\":\"" TH_KEY "\",\"pin_reload\":\"" TH_KEY
		 "\",\"puk\":\"" TH_KEY "\",\"issuer\":\"0123456789ABCDEFFEDCBA9876543210\"},"
		 "\"quirks\":{%s}},"
		 "\"psam\":{\"atr\":\"3B6C00005053414D2D4445532D303031\",\"algorithm\":\"%s\","
		 "\"terminal_number\":\"330100000001\"}}",
		 gen, gen, alg,
		 gen == 3 ? "\"ef0d\":{\"person_id\":\"P33010000001\",\"first_region\":\"330100\"}," : "",
		 medical_extra ? medical_extra : "", card_extra ? card_extra : "", quirks ? quirks : "",
		 alg);
	p = sim_profile_parse(json, strlen(json), "vector", err, sizeof(err));
	if (p == NULL)
		fail_msg("vector profile: %s", err);
	return p;
}

/*
 * A token from the vector profile (the profile is freed here: the token keeps its own copy).
 * card_extra: more members of "card" ("\"key_tries\":2,"); medical_extra: more members of
 * "card.medical" (",\"transaction_capacity\":3"); quirks: members of "card.quirks".
 */
static inline struct sim_token *th_vector_token_ex(int gen, enum sim_role role, const char *card_extra,
						   const char *medical_extra, const char *quirks)
{
	struct sim_profile *p = th_vector_profile_ex(gen, card_extra, medical_extra, quirks);
	struct sim_token *t = sim_token_new(p, role);

	sim_profile_free(p);
	assert_non_null(t);
	return t;
}

/* A token from a profile of firmware-stubs/profiles/ (needs SSC_SOURCE_DIR). */
static inline struct sim_token *th_repo_token(const char *name, enum sim_role role)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char path[1024], err[512];
	struct sim_profile *p;
	struct sim_token *t;

	if (src == NULL)
		fail_msg("SSC_SOURCE_DIR is not set");
	snprintf(path, sizeof(path), "%s/firmware-stubs/profiles/%s.json", src, name);
	p = sim_profile_load(path, err, sizeof(err));
	if (p == NULL)
		fail_msg("%s", err);
	t = sim_token_new(p, role);
	sim_profile_free(p);
	assert_non_null(t);
	return t;
}

static inline struct sim_token *th_vector_token(int gen, enum sim_role role, const char *card_extra,
						const char *quirks)
{
	return th_vector_token_ex(gen, role, card_extra, NULL, quirks);
}

#define SSSE_NAME "7378312E73682EC9E7BBE1B1A3D5CF"
#define SEL_SSSE "00A404000F" SSSE_NAME
#define FCI_SSSE_DES "6F19840F" SSSE_NAME "A5069F0C03860101"
#define FCI_SSSE_SM4 "6F19840F" SSSE_NAME "A5069F0C03860103"
#define SEL_DF04 "00A4040006D15600000503"

#endif
