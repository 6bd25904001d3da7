/*
 * Unit tests of src/ssc.c and the card operations (src/ops*.c) against scripted cards: every
 * command the card layer sends is written here by hand from the spec (§2.1, §12.1, §12.5), with
 * the answers a card would give. Covers ATR and FCI parsing, the exact APDU sequence of read_basic, spec 1.00
 * layouts, the READ RECORD mode fallback, EF06 read authorisation with the §12.8 vectors, and
 * parameter checking. The simulator-backed tests are in test_ssc_sim.c.
 */
#include "test_card_util.h"

#include <jansson.h>

#include "config.h"
#include "ops.h"
#include "ssc.h"

#define SELECT_SSSE "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"
#define FCI(alg) "6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C038601" alg "9000"
#define FCI_NO_ALG "6F11840F7378312E73682EC9E7BBE1B1A3D5CF9000"
/* ATR 3B 88 80 01 + 8 historical bytes (chip serial 0011223344556677, §12.8) + TCK. */
#define ATR "3B888001001122334455667709"
#define MASTER "00112233445566778899AABBCCDDEEFF"

/* EF05 in record-number mode with SFI 5 (P2 = 05<<3 | 4 = 2C), EF06 with SFI 6 (P2 = 34). */
#define R_EF05_03 { "00B2032C00", "0304322E30309000", 0 }
#define R_EF05_03_V3 { "00B2032C00", "0304332E30309000", 0 }
#define R_EF05_01 { "00B2012C00", "0110330100D15600000544556677123456789000", 0 }
#define R_EF05_05 { "00B2052C00", "0504202401019000", 0 }
#define R_EF05_06 { "00B2062C00", "0604203401019000", 0 }
#define R_EF05_07 { "00B2072C00", "07095830303030303031399000", 0 }
#define R_EF06_08 { "00B2013400", "0812313130313031313939303031303131323337" "9000", 0 }
#define R_EF06_09 { "00B2023400", "091ED5C5C8FD" "0000000000000000000000000000000000000000000000000000" "9000", 0 }
#define R_EF06_4E { "00B2033400", "4E14" "0000000000000000000000000000000000000000" "9000", 0 }
#define R_EF06_0A { "00B2043400", "0A01319000", 0 }
#define R_EF06_0B { "00B2053400", "0B01019000", 0 }
#define R_EF06_0C { "00B2063400", "0C033301009000", 0 }
#define R_EF06_0D { "00B2073400", "0D04199001019000", 0 }
#define END { NULL, NULL, 0 }
/* The rest of a gen2 basic read after EF05 03 and 01 (spec §2.2, §2.3 order). */
#define R_BASIC_REST R_EF05_05, R_EF05_06, R_EF05_07, R_EF06_08, R_EF06_09, R_EF06_4E, \
	R_EF06_0A, R_EF06_0B, R_EF06_0C, R_EF06_0D

struct fixture {
	struct tu_script s;
	struct config cfg;
	struct tu_kp kp;
	struct op_env env;
	unsigned flags;
	int reset;
	struct ssc_diag d;
	json_t *result;
};

static void fx_init(struct fixture *fx, const struct tu_step *steps, const char *atr)
{
	memset(fx, 0, sizeof(*fx));
	tu_script_init(&fx->s, steps);
	fx->s.io.atr_len = tu_unhex(atr, fx->s.io.atr, sizeof(fx->s.io.atr));
	snprintf(fx->s.io.reader_serial, sizeof(fx->s.io.reader_serial), "SN123");
	config_defaults(&fx->cfg);
	tu_kp_init(&fx->kp, MASTER, 1u << SSC_ALG_DES | 1u << SSC_ALG_SM4);
	fx->env.cfg = &fx->cfg;
	fx->env.kp = &fx->kp.kp;
	ssc_diag_init(&fx->d);
}

/* The next operation on the same inserted card: a new script, the same ATR and flags. */
static void fx_rescript(struct fixture *fx, const struct tu_step *steps)
{
	struct card_io keep = fx->s.io;

	tu_script_init(&fx->s, steps);
	memcpy(fx->s.io.atr, keep.atr, sizeof(keep.atr));
	fx->s.io.atr_len = keep.atr_len;
	memcpy(fx->s.io.reader_serial, keep.reader_serial, sizeof(keep.reader_serial));
}

static int fx_op(struct fixture *fx, const char *method, const char *params)
{
	const struct op_desc *op = ops_find(method);
	json_t *p = NULL;
	int rc;

	assert_non_null(op);
	if (params) {
		p = json_loads(params, 0, NULL);
		assert_non_null(p);
	}
	json_decref(fx->result);
	fx->result = NULL;
	ssc_diag_init(&fx->d);
	rc = op->check(op, &fx->env, p, &fx->d);
	if (rc == 0) {
		struct op_call call = { .params = p };

		rc = op->run(op, &fx->env, &fx->s.io, &call, &fx->flags, &fx->reset, &fx->result,
			     &fx->d);
	}
	json_decref(p);
	return rc;
}

static const char *str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	assert_non_null(v);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static void test_atr(void **state)
{
	const uint8_t *h;
	size_t hl;
	TU_HEX(a1, ATR);
	TU_HEX(a2, "3B021450");                                   /* no interface bytes, K=2 */
	TU_HEX(a3, "3B6E0000" "0081544C92868433010000BF7C7A");   /* TB1 TC1, K=14 (spec §5) */
	TU_HEX(a4, "3BDF18008131FE" "5D" "0064040EFE" "00000000000000000000" "77");
	TU_HEX(bad1, "3B8880");                                   /* TD1 promised, then nothing */
	TU_HEX(bad2, "3B021450FF");                               /* one byte too many */
	TU_HEX(bad3, "00021450");                                 /* TS neither 3B nor 3F */
	TU_HEX(bad4, "3B8880010011223344556677");                 /* T=1 but no TCK */

	(void)state;
	assert_int_equal(ssc_atr_historical(a1, a1_len, &h, &hl), 0);
	assert_int_equal(hl, 8);
	assert_memory_equal(h, a1 + 4, 8);
	assert_int_equal(ssc_atr_historical(a2, a2_len, &h, &hl), 0);
	assert_int_equal(hl, 2);
	assert_int_equal(h[0], 0x14);
	assert_int_equal(ssc_atr_historical(a3, a3_len, &h, &hl), 0);
	assert_int_equal(hl, 14);
	assert_int_equal(h[0], 0x00);
	assert_int_equal(h[13], 0x7A);
	/* T0=DF: TA1 TC1 TD1=81 -> TD2=31 -> TA3 TB3 (FE 5D), K=15, then TCK. */
	assert_int_equal(ssc_atr_historical(a4, a4_len, &h, &hl), 0);
	assert_int_equal(hl, 15);
	assert_int_equal(h[0], 0x00);
	assert_int_equal(h[1], 0x64);
	assert_int_equal(ssc_atr_historical(bad1, bad1_len, &h, &hl), SSC_EPROTO);
	assert_int_equal(ssc_atr_historical(bad2, bad2_len, &h, &hl), SSC_EPROTO);
	assert_int_equal(ssc_atr_historical(bad3, bad3_len, &h, &hl), SSC_EPROTO);
	assert_int_equal(ssc_atr_historical(bad4, bad4_len, &h, &hl), SSC_EPROTO);
}

static void test_open(void **state)
{
	static const struct tu_step not_ssc[] = { { SELECT_SSSE, "6A82", 0 }, END };
	static const struct tu_step ssf33[] = { { SELECT_SSSE, FCI("02"), 0 }, END };
	static const struct tu_step garbage[] = { { SELECT_SSSE, "6F208400" "9000", 0 }, END };
	static const struct tu_step sm4[] = { { SELECT_SSSE, FCI("03"), 0 }, END };
	struct fixture fx;
	struct ssc_card c;

	(void)state;
	fx_init(&fx, not_ssc, ATR);
	assert_int_equal(ssc_open(&c, &fx.s.io, &fx.cfg, NULL, NULL, &fx.d), SSC_ENOTSSC);
	assert_int_equal(fx.d.sw, 0x6A82);
	fx_init(&fx, ssf33, ATR);
	assert_int_equal(ssc_open(&c, &fx.s.io, &fx.cfg, NULL, NULL, &fx.d), SSC_EUNSUPPORTED);
	assert_non_null(strstr(fx.d.msg, "02"));
	fx_init(&fx, garbage, ATR);
	assert_int_equal(ssc_open(&c, &fx.s.io, &fx.cfg, NULL, NULL, &fx.d), SSC_EPROTO);
	fx_init(&fx, sm4, ATR);
	assert_int_equal(ssc_open(&c, &fx.s.io, &fx.cfg, NULL, NULL, &fx.d), 0);
	assert_int_equal(c.alg, SSC_ALG_SM4);
	tu_script_done(&fx.s);
	/* A malformed ATR is refused before any APDU. */
	fx_init(&fx, sm4, "3B8880");
	assert_int_equal(ssc_open(&c, &fx.s.io, &fx.cfg, NULL, NULL, &fx.d), SSC_EPROTO);
	assert_int_equal(fx.s.next, 0);
}

static void test_read_basic_exact_apdus(void **state)
{
	/* SELECT SSSE + one READ RECORD per item, SFI in P2, no SELECT of an EF: 13 APDUs. */
	static const struct tu_step steps[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, R_BASIC_REST,
		END,
	};
	struct fixture fx;
	json_t *r;

	(void)state;
	fx_init(&fx, steps, ATR);
	fx.kp.algs = 0;   /* no PSAM: the terminal number is all zeros */
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), 0);
	tu_script_done(&fx.s);
	assert_int_equal(fx.s.next, 13);
	r = fx.result;
	assert_string_equal(str(r, "region_code"), "330100");
	assert_string_equal(str(r, "ssn"), "110101199001011237");
	assert_string_equal(str(r, "card_number"), "X00000019");
	assert_string_equal(str(r, "card_id"), "330100D15600000544556677" "12345678");
	assert_string_equal(str(r, "name"), "\xE5\xBC\xA0\xE4\xB8\x89");
	assert_string_equal(str(r, "sex"), "1");
	assert_string_equal(str(r, "nation"), "01");
	assert_string_equal(str(r, "birth_place"), "330100");
	assert_string_equal(str(r, "birth_date"), "19900101");
	assert_string_equal(str(r, "spec_version"), "2.00");
	assert_string_equal(str(r, "issue_date"), "20240101");
	assert_string_equal(str(r, "expiry_date"), "20340101");
	assert_true(json_is_false(json_object_get(r, "expired")));
	assert_string_equal(str(r, "atr_historical"), "0011223344556677");
	assert_string_equal(str(r, "terminal_number"), "000000000000");
	assert_string_equal(str(r, "terminal_device"), "SN123");
	assert_string_equal(str(r, "algorithm"), "des");
	assert_string_equal(str(r, "standard"),
			    "330100|110101199001011237|X00000019|330100D1560000054455667712345678|"
			    "\xE5\xBC\xA0\xE4\xB8\x89|0011223344556677|2.00|20240101|20340101|"
			    "000000000000|SN123|");
	assert_null(json_object_get(r, "genuine"));
	assert_int_equal(fx.reset, 0);
	assert_int_equal(fx.kp.calls, 0);
	json_decref(fx.result);
}

static void test_read_basic_psam_terminal(void **state)
{
	static const struct tu_step steps[] = {
		{ SELECT_SSSE, FCI("03"), 0 },
		R_EF05_03_V3, R_EF05_01, R_EF05_05,
		{ "00B2062C00", "0604201001019000", 0 },   /* expired in 2010 */
		R_EF05_07,
		R_EF06_08, R_EF06_09, R_EF06_4E, R_EF06_0A, R_EF06_0B, R_EF06_0C, R_EF06_0D,
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, steps, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"reader\": \"pcsc-x\"}"), 0);
	tu_script_done(&fx.s);
	assert_string_equal(str(fx.result, "terminal_number"), "123456789012");
	assert_string_equal(str(fx.result, "algorithm"), "sm4");
	assert_string_equal(str(fx.result, "spec_version"), "3.00");
	assert_string_equal(str(fx.result, "expiry_date"), "20100101");
	assert_true(json_is_true(json_object_get(fx.result, "expired")));
	json_decref(fx.result);
}

/* Spec 1.00, FCI without 9F0C (DES then), no 姓名扩展, 性别 in record 3. */
static const struct tu_step v1_read_basic[] = {
	{ SELECT_SSSE, FCI_NO_ALG, 0 },
	{ "00B2032C00", "0304312E30309000", 0 },
	R_EF05_01, R_EF05_05, R_EF05_06, R_EF05_07,
	R_EF06_08, R_EF06_09,
	{ "00B2033400", "0A01329000", 0 },
	{ "00B2043400", "0B01029000", 0 },
	{ "00B2053400", "0C033301029000", 0 },
	{ "00B2063400", "0D04198012319000", 0 },
	END,
};

static void test_read_basic_v1(void **state)
{
	struct fixture fx;

	(void)state;
	fx_init(&fx, v1_read_basic, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), 0);
	tu_script_done(&fx.s);
	assert_string_equal(str(fx.result, "spec_version"), "1.00");
	assert_string_equal(str(fx.result, "sex"), "2");
	assert_string_equal(str(fx.result, "nation"), "02");
	assert_string_equal(str(fx.result, "birth_place"), "330102");
	assert_string_equal(str(fx.result, "birth_date"), "19801231");
	assert_string_equal(str(fx.result, "algorithm"), "des");
	json_decref(fx.result);
}

static void test_v1_refuses_auth(void **state)
{
	struct fixture fx;

	(void)state;
	/* The whole basic read, then the refusal before any INTERNAL AUTH is sent. */
	fx_init(&fx, v1_read_basic, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"internal_auth\": true}"),
			 SSC_EUNSUPPORTED);
	assert_non_null(strstr(fx.d.msg, "unsupported card"));
	tu_script_done(&fx.s);
}

static void test_mode_fallback(void **state)
{
	/* A card that reads by tag only (P2 = SFI<<3 | 000, P1 = tag): one 6A86, then tags. */
	static const struct tu_step steps[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00B2032C00", "6A86", 0 },
		{ "00B2032800", "0304322E30309000", 0 },
		{ "00B2012800", "0110330100D15600000544556677123456789000", 0 },
		{ "00B2052800", "0504202401019000", 0 },
		{ "00B2062800", "0604203401019000", 0 },
		{ "00B2072800", "07095830303030303031399000", 0 },
		{ "00B2083000", "0812313130313031313939303031303131323337" "9000", 0 },
		{ "00B2093000", "091ED5C5C8FD" "0000000000000000000000000000000000000000000000000000" "9000", 0 },
		{ "00B24E3000", "6A83", 0 },      /* no extension record: fine */
		{ "00B20A3000", "0A01319000", 0 },
		{ "00B20B3000", "0B01019000", 0 },
		{ "00B20C3000", "0C033301009000", 0 },
		{ "00B20D3000", "0D04199001019000", 0 },
		END,
	};
	/* Both modes refused: the second 6A86 is an error, not a loop. */
	static const struct tu_step neither[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00B2032C00", "6A86", 0 },
		{ "00B2032800", "6A86", 0 },
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, steps, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), 0);
	tu_script_done(&fx.s);
	assert_string_equal(str(fx.result, "name"), "\xE5\xBC\xA0\xE4\xB8\x89");
	json_decref(fx.result);
	fx.result = NULL;

	fx_init(&fx, neither, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), SSC_ECARDSW);
	assert_int_equal(fx.d.sw, 0x6A86);
	tu_script_done(&fx.s);
}

static void test_read_auth_des(void **state)
{
	/* §12.8: K_master 0011..FF, region 330100, cardDiv 0011223344556677, R = 1122334455667788
	 * -> EXTERNAL AUTH data 4BA5C1F9D6C57F0F ‖ R, here with the RKSSSE key id 0A. */
	static const struct tu_step first[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00B2013400", "6982", 0 },
		R_EF05_03, R_EF05_01,
		{ "0084000008", "11223344556677889000", 0 },
		{ "0082000A104BA5C1F9D6C57F0F1122334455667788", "9000", 0 },
		R_EF06_08,
		R_EF06_0A,
		END,
	};
	/* Same insertion, next operation: authenticate before the first EF06 read. */
	static const struct tu_step second[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01,
		{ "0084000008", "11223344556677889000", 0 },
		{ "0082000A104BA5C1F9D6C57F0F1122334455667788", "9000", 0 },
		R_EF06_08,
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, first, ATR);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"SSSE/EF06\", \"items\": [\"08\", \"0A\"]}"), 0);
	tu_script_done(&fx.s);
	assert_true(fx.flags & CARD_FLAG_READ_AUTH);
	assert_int_equal(fx.reset, 1);
	assert_int_equal(fx.kp.last_key.card_kid, 0x0A);
	assert_int_equal(fx.kp.last_key.usage, 0x48);
	assert_int_equal(fx.kp.last_key.index, 0x1A);
	assert_string_equal(str(fx.result, "file"), "SSSE/EF06");
	assert_string_equal(str(json_object_get(fx.result, "items"), "08"), "110101199001011237");
	assert_string_equal(str(json_object_get(fx.result, "items"), "0A"), "1");

	fx_rescript(&fx, second);
	fx.reset = 0;
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"ssse/ef06\", \"items\": [\"08\"]}"), 0);
	tu_script_done(&fx.s);
	assert_int_equal(fx.reset, 1);
	json_decref(fx.result);
}

static void test_read_auth_sm4(void **state)
{
	/* §12.8 SM4: data 5E581E4BB536B207 ‖ R ‖ 01 (key version), Lc 11. */
	static const struct tu_step steps[] = {
		{ SELECT_SSSE, FCI("03"), 0 },
		{ "00B2013400", "6982", 0 },
		R_EF05_03_V3, R_EF05_01,
		{ "0084000008", "11223344556677889000", 0 },
		{ "0082000A115E581E4BB536B207112233445566778801", "9000", 0 },
		R_EF06_08,
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, steps, ATR);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"SSSE/EF06\", \"items\": [\"08\"]}"), 0);
	tu_script_done(&fx.s);
	json_decref(fx.result);
}

static void test_read_auth_policies(void **state)
{
	static const struct tu_step never[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00B2013400", "6982", 0 },
		END,
	};
	static const struct tu_step always[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01,
		{ "0084000008", "11223344556677889000", 0 },
		{ "0082000A104BA5C1F9D6C57F0F1122334455667788", "9000", 0 },
		R_EF06_08,
		END,
	};
	static const struct tu_step wrong[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00B2013400", "6982", 0 },
		R_EF05_03, R_EF05_01,
		{ "0084000008", "11223344556677889000", 0 },
		{ "0082000A10*", "63C3", 0 },
		END,
	};
	static const struct tu_step no_psam[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00B2013400", "6982", 0 },
		R_EF05_03, R_EF05_01,
		END,
	};
	struct fixture fx;
	const char *p = "{\"file\": \"SSSE/EF06\", \"items\": [\"08\"]}";

	(void)state;
	fx_init(&fx, never, ATR);
	fx.cfg.read_auth = READ_AUTH_NEVER;
	assert_int_equal(fx_op(&fx, "card.read_items", p), SSC_ESECURITY);
	assert_int_equal(fx.d.sw, 0x6982);
	assert_int_equal(fx.flags, 0);
	tu_script_done(&fx.s);

	fx_init(&fx, always, ATR);
	fx.cfg.read_auth = READ_AUTH_ALWAYS;
	assert_int_equal(fx_op(&fx, "card.read_items", p), 0);
	tu_script_done(&fx.s);
	json_decref(fx.result);
	fx.result = NULL;

	fx_init(&fx, wrong, ATR);
	assert_int_equal(fx_op(&fx, "card.read_items", p), SSC_EAUTHFAILED);
	assert_int_equal(fx.d.retries_left, 3);
	assert_int_equal(fx.d.sw, 0x63C3);
	assert_int_equal(fx.flags, 0);
	tu_script_done(&fx.s);

	fx_init(&fx, no_psam, ATR);
	fx.kp.algs = 1u << SSC_ALG_SM4;   /* a PSAM, but not for this DES card */
	assert_int_equal(fx_op(&fx, "card.read_items", p), SSC_EPSAMALGO);
	tu_script_done(&fx.s);
	fx_init(&fx, no_psam, ATR);
	fx.kp.algs = 0;
	assert_int_equal(fx_op(&fx, "card.read_items", p), SSC_ENOPSAM);
	assert_int_equal(ssc_std_code(SSC_ENOPSAM, 0), -2201);
	tu_script_done(&fx.s);
}

static void test_read_items(void **state)
{
	/* DF04 by AID D156000005 03, then its EF05 by SFI; an absent record is null. */
	static const struct tu_step df04[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00A4040006D15600000503", "9000", 0 },
		{ "00B2012C00", "3003330100" "9000", 0 },
		{ "00B2022C00", "6A83", 0 },
		{ "00B2032C00", "3214" "3333303130303132333435360000000000000000" "9000", 0 },
		END,
	};
	/* DF01 has no layout in v1: any tag, read by tag, binary. */
	static const struct tu_step df01[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00A4040006D15600000500", "9000", 0 },
		{ "00B2012800", "0102ABCD9000", 0 },
		{ "00B2022800", "6A83", 0 },
		END,
	};
	static const struct tu_step no_df[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00A4040006D15600000504", "6A82", 0 },
		END,
	};
	struct fixture fx;
	json_t *items;

	(void)state;
	fx_init(&fx, df04, ATR);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"DF04/EF05\", \"items\": [\"30\", \"31\", \"32\"]}"), 0);
	tu_script_done(&fx.s);
	items = json_object_get(fx.result, "items");
	assert_string_equal(str(items, "30"), "330100");
	assert_true(json_is_null(json_object_get(items, "31")));
	assert_string_equal(str(items, "32"), "330100123456");
	assert_int_equal(fx.reset, 0);
	json_decref(fx.result);
	fx.result = NULL;

	fx_init(&fx, df01, ATR);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"DF01/EF05\", \"items\": [\"01\", \"02\"]}"), 0);
	tu_script_done(&fx.s);
	items = json_object_get(fx.result, "items");
	assert_string_equal(str(items, "01"), "ABCD");
	assert_true(json_is_null(json_object_get(items, "02")));
	json_decref(fx.result);
	fx.result = NULL;

	fx_init(&fx, no_df, ATR);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"DF05/EF05\", \"items\": [\"01\"]}"), SSC_ENOFILE);
	tu_script_done(&fx.s);
}

static void test_params(void **state)
{
	static const struct tu_step none[] = { END };
	struct fixture fx;

	(void)state;
	fx_init(&fx, none, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"foo\": 1}"), SSC_EINVAL);
	assert_non_null(strstr(fx.d.msg, "foo"));
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"internal_auth\": 1}"), SSC_EINVAL);
	assert_int_equal(fx_op(&fx, "card.read_basic", "[1]"), SSC_EINVAL);
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"reader\": 5}"), SSC_EINVAL);
	/* verify_card_id without an issuer key configured */
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"verify_card_id\": true}"),
			 SSC_ECONFIG);
	assert_int_equal(fx_op(&fx, "card.read_items", "{\"items\": [\"08\"]}"), SSC_EINVAL);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"SSSE/EF07\", \"items\": [\"08\"]}"), SSC_EBADITEM);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"SSSE/EF06\", \"items\": [\"01\"]}"), SSC_EBADITEM);
	assert_non_null(strstr(fx.d.msg, "01"));
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"SSSE/EF06\", \"items\": []}"), SSC_EINVAL);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"SSSE/EF06\", \"items\": [8]}"), SSC_EINVAL);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"SSSE/EF06\", \"items\": [\"08\", \"08\"]}"),
			 SSC_EINVAL);
	assert_int_equal(fx_op(&fx, "card.read_items",
			       "{\"file\": \"SSSE/EF06\", \"items\": [\"08\"], \"x\": 1}"),
			 SSC_EINVAL);
	assert_null(ops_find("card.nothing"));
	assert_int_equal(fx.s.next, 0);   /* no check ever reached the card */
}

static void test_bad_card_data(void **state)
{
	static const struct tu_step bad_check[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, R_EF05_05, R_EF05_06,
		{ "00B2072C00", "07095830303030303031389000", 0 },   /* X00000018: wrong check */
		END,
	};
	static const struct tu_step bad_rid[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03,
		{ "00B2012C00", "0110330100D15600000644556677123456789000", 0 },
		END,
	};
	static const struct tu_step bad_tag[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00B2032C00", "0404322E30309000", 0 },   /* the record of another tag */
		END,
	};
	static const struct tu_step bad_len[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "00B2032C00", "0305322E30309000", 0 },   /* length byte says 5, 4 follow */
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, bad_check, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), SSC_EBADCARDDATA);
	assert_non_null(strstr(fx.d.msg, "SSSE/EF05 item 07"));
	assert_null(strstr(fx.d.msg, "X0000001"));   /* never the value */
	tu_script_done(&fx.s);

	fx_init(&fx, bad_rid, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), SSC_EBADCARDDATA);
	tu_script_done(&fx.s);

	fx_init(&fx, bad_tag, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), SSC_EPROTO);
	fx_init(&fx, bad_len, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), SSC_EPROTO);
}

static void test_name_straddles_records(void **state)
{
	/* 29 ASCII bytes + the lead byte of 张 (D5) in 09, its trail byte (C5) opening 4E. */
	static const struct tu_step steps[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, R_EF05_05, R_EF05_06, R_EF05_07,
		R_EF06_08,
		{ "00B2023400", "091E" "4141414141414141414141414141414141414141414141414141414141" "D5" "9000", 0 },
		{ "00B2033400", "4E14" "C5" "00000000000000000000000000000000000000"
		  "9000", 0 },
		R_EF06_0A, R_EF06_0B, R_EF06_0C, R_EF06_0D,
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, steps, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), 0);
	assert_string_equal(str(fx.result, "name"),
			    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAA\xE5\xBC\xA0");
	json_decref(fx.result);
}

static void test_internal_auth_script(void **state)
{
	static const struct tu_step wrong[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, R_BASIC_REST,
		{ "0088000010*", "00000000000000009000", 0 },
		END,
	};
	static const struct tu_step shrt[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, R_BASIC_REST,
		{ "0088000010*", "01020304050607" "9000", 0 },
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, wrong, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"internal_auth\": true}"),
			 SSC_ENOTGENUINE);
	assert_int_equal(ssc_std_code(SSC_ENOTGENUINE, 0), -21);
	assert_int_equal(fx.kp.last_key.usage, 0x47);
	assert_int_equal(fx.kp.last_key.index, 0x11);
	tu_script_done(&fx.s);
	fx_init(&fx, shrt, ATR);
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"internal_auth\": true}"),
			 SSC_EPROTO);
	tu_script_done(&fx.s);
}

static void test_card_id_mac(void **state)
{
	/* The §12.8 card id: 330100D15600000500BF7C7A C9FC0FEC under 0123..3210. */
	static const struct tu_step steps[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03,
		{ "00B2012C00", "0110330100D15600000500BF7C7AC9FC0FEC9000", 0 },
		R_BASIC_REST,
		END,
	};
	static const struct tu_step bad[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03,
		{ "00B2012C00", "0110330100D15600000500BF7C7AC9FC0FED9000", 0 },
		R_BASIC_REST,
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, steps, ATR);
	tu_unhex("0123456789ABCDEFFEDCBA9876543210", fx.cfg.card_id_mac_key, 16);
	fx.cfg.card_id_mac_key_set = 1;
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"verify_card_id\": true}"), 0);
	assert_true(json_is_true(json_object_get(fx.result, "card_id_verified")));
	json_decref(fx.result);
	fx.result = NULL;

	fx_init(&fx, bad, ATR);
	tu_unhex("0123456789ABCDEFFEDCBA9876543210", fx.cfg.card_id_mac_key, 16);
	fx.cfg.card_id_mac_key_set = 1;
	fx.cfg.verify_card_id_mac = 1;   /* on by configuration */
	assert_int_equal(fx_op(&fx, "card.read_basic", NULL), SSC_EBADCARDDATA);
	assert_string_equal(fx.d.msg, "card id MAC mismatch");
	/* ... and a call may switch it off. */
	fx_init(&fx, bad, ATR);
	fx.cfg.verify_card_id_mac = 1;
	fx.cfg.card_id_mac_key_set = 1;
	assert_int_equal(fx_op(&fx, "card.read_basic", "{\"verify_card_id\": false}"), 0);
	json_decref(fx.result);
}

/* ---- PIN commands and record writes, byte for byte (spec §12.5, the §12.8 vectors) ----- */

#define CHALLENGE { "0084000008", "11223344556677889000", 0 }
#define SELECT_DF04 { "00A4040006D15600000503", "9000", 0 }

static void test_pin_apdus(void **state)
{
	static const struct tu_step verify[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "0020000003123456", "9000", 0 },
		END,
	};
	static const struct tu_step verify_odd[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "002000000312345F", "63C2", 0 },
		END,
	};
	static const struct tu_step verify_last[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "0020000003654321", "63C0", 0 },
		END,
	};
	static const struct tu_step verify_blocked[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "0020000003654321", "6983", 0 },
		END,
	};
	static const struct tu_step change[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		{ "805E010008123456FF24681357", "9000", 0 },   /* Lc 3 + 1 + 4 */
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, verify, ATR);
	assert_int_equal(fx_op(&fx, "card.verify_pin", "{\"pin\": \"123456\"}"), 0);
	assert_true(json_is_true(json_object_get(fx.result, "verified")));
	assert_int_equal(fx.s.last_flags & CARDIO_SECRET, CARDIO_SECRET);
	assert_int_equal(fx.reset, 1);   /* no verified state outlives the call */
	tu_script_done(&fx.s);
	json_decref(fx.result);

	fx_init(&fx, verify_odd, ATR);
	assert_int_equal(fx_op(&fx, "card.verify_pin", "{\"pin\": \"12345\"}"), SSC_EPINWRONG);
	assert_int_equal(fx.d.retries_left, 2);
	assert_int_equal(fx.d.sw, 0x63C2);
	assert_int_equal(ssc_std_code(SSC_EPINWRONG, fx.d.sw), -51);
	assert_int_equal(fx.reset, 1);
	tu_script_done(&fx.s);

	fx_init(&fx, verify_last, ATR);
	assert_int_equal(fx_op(&fx, "card.verify_pin", "{\"pin\": \"654321\"}"), SSC_EPINBLOCKED);
	assert_int_equal(fx.d.retries_left, 0);
	assert_int_equal(ssc_std_code(SSC_EPINBLOCKED, fx.d.sw), -52);
	fx_init(&fx, verify_blocked, ATR);
	assert_int_equal(fx_op(&fx, "card.verify_pin", "{\"pin\": \"654321\"}"), SSC_EPINBLOCKED);
	assert_int_equal(fx.d.retries_left, 0);

	fx_init(&fx, change, ATR);
	assert_int_equal(fx_op(&fx, "card.change_pin",
			       "{\"old_pin\": \"123456\", \"new_pin\": \"24681357\"}"), 0);
	assert_true(json_is_true(json_object_get(fx.result, "changed")));
	assert_int_equal(fx.s.last_flags & CARDIO_SECRET, CARDIO_SECRET);
	tu_script_done(&fx.s);
	json_decref(fx.result);
}

/* RELOAD and UNBLOCK: the PIN block of §12.8 encrypted under K_card, and who MACs what. */
static void test_pin_reload_unblock_apdus(void **state)
{
	static const struct tu_step reload[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, CHALLENGE,
		{ "805E000007112233*", "9000", 0 },   /* new PIN ‖ MAC4, Lc' = 3 + 4 */
		END,
	};
	static const struct tu_step unblock_des[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, CHALLENGE,
		{ "842400000CDA44BA6FAA847AB5*", "9000", 0 },
		END,
	};
	static const struct tu_step unblock_sm4[] = {
		{ SELECT_SSSE, FCI("03"), 0 },
		R_EF05_03_V3, R_EF05_01, CHALLENGE,
		{ "842400001483C3ED41A77006B703C3722B4878B665*", "9000", 0 },
		END,
	};
	static const struct tu_step bad_mac[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, CHALLENGE,
		{ "805E000007112233*", "6988", 0 },
		END,
	};
	struct fixture fx;

	(void)state;
	fx_init(&fx, reload, ATR);
	assert_int_equal(fx_op(&fx, "card.reload_pin", "{\"new_pin\": \"112233\"}"), 0);
	assert_true(json_is_true(json_object_get(fx.result, "reloaded")));
	assert_int_equal(fx.kp.last_key.usage, 0x44);   /* PIN reload key (§12.4) */
	assert_int_equal(fx.kp.last_key.index, 0x16);
	assert_int_equal(fx.s.last_flags & CARDIO_SECRET, CARDIO_SECRET);
	tu_script_done(&fx.s);
	json_decref(fx.result);

	/* 123456 is the vector's PIN: make it not the initial PIN for this test. */
	fx_init(&fx, unblock_des, ATR);
	snprintf(fx.cfg.initial_pins[0], sizeof(fx.cfg.initial_pins[0]), "%s", "000000");
	assert_int_equal(fx_op(&fx, "card.unblock_pin", "{\"new_pin\": \"123456\"}"), 0);
	assert_true(json_is_true(json_object_get(fx.result, "unblocked")));
	assert_int_equal(fx.kp.last_key.usage, 0x43);   /* PUK (§12.4) */
	assert_int_equal(fx.kp.last_key.index, 0x17);
	tu_script_done(&fx.s);
	json_decref(fx.result);

	fx_init(&fx, unblock_sm4, ATR);
	snprintf(fx.cfg.initial_pins[0], sizeof(fx.cfg.initial_pins[0]), "%s", "000000");
	assert_int_equal(fx_op(&fx, "card.unblock_pin", "{\"new_pin\": \"123456\"}"), 0);
	tu_script_done(&fx.s);
	json_decref(fx.result);

	/* The card refuses the MAC: the PSAM's key is not the card's. No PIN try is counted. */
	fx_init(&fx, bad_mac, ATR);
	assert_int_equal(fx_op(&fx, "card.reload_pin", "{\"new_pin\": \"112233\"}"),
			 SSC_EAUTHFAILED);
	assert_int_equal(fx.d.sw, 0x6988);
	tu_script_done(&fx.s);
}

/* The §12.8 APPEND RECORD MAC vectors, through ssc_write_record. */
static void test_append_mac_vectors(void **state)
{
	static const struct tu_step des[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_03, R_EF05_01, SELECT_DF04, CHALLENGE,
		{ "04E200400E40330102030405060708F45CDC9E", "9000", 0 },
		END,
	};
	static const struct tu_step sm4[] = {
		{ SELECT_SSSE, FCI("03"), 0 },
		R_EF05_03_V3, R_EF05_01, SELECT_DF04, CHALLENGE,
		{ "04E200400E40330102030405060708F0BBB681", "9000", 0 },
		END,
	};
	static const uint8_t val[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	const struct tu_step *scripts[] = { des, sm4 };
	struct item_file f;
	struct item_def it;

	(void)state;
	assert_int_equal(items_file_parse("DF04/EF08", &f), 0);
	assert_int_equal(items_find(&f, 0x40, &it), 0);
	for (int i = 0; i < 2; i++) {
		struct fixture fx;
		struct ssc_card c;

		fx_init(&fx, scripts[i], ATR);
		assert_int_equal(ssc_open(&c, &fx.s.io, &fx.cfg, &fx.kp.kp, &fx.flags, &fx.d), 0);
		if (ssc_write_record(&c, &f, &it, 1, 0x33, val, sizeof(val), &fx.d) != 0)
			fail_msg("%s", fx.d.msg);
		assert_int_equal(fx.kp.last_key.usage, 0x46);   /* STK (§12.4) */
		assert_int_equal(fx.kp.last_key.index, 0x15);
		tu_script_done(&fx.s);
	}
}

/*
 * card.write_items on SSSE/EF06 of a scripted DES card: the identity and expiry reads, the old
 * value, EXTERNAL AUTH 04 with the §12.8 cryptogram for R = 1122334455667788, then a plain
 * UPDATE RECORD of the whole record; the journal holds the intent and its outcome.
 */
static void test_write_ssse_apdus(void **state)
{
	static const struct tu_step steps[] = {
		{ SELECT_SSSE, FCI("01"), 0 },
		R_EF05_07, R_EF05_01, R_EF05_03, R_EF05_06,
		R_EF06_0C,
		CHALLENGE,
		{ "00820004104BA5C1F9D6C57F0F1122334455667788", "9000", 0 },
		{ "00DC0634050C03330106", "9000", 0 },
		END,
	};
	struct tu_journal tj;
	struct tu_outcome o;
	struct fixture fx;

	(void)state;
	tu_journal_open(&tj);
	fx_init(&fx, steps, ATR);
	fx.env.journal = tj.j;
	if (fx_op(&fx, "card.write_items", "{\"file\": \"SSSE/EF06\", \"items\": {\"0C\": "
		  "\"330106\"}}") != 0)
		fail_msg("%s", fx.d.msg);
	tu_script_done(&fx.s);
	assert_string_equal(str(json_object_get(fx.result, "items"), "0C"), "330106");
	assert_int_equal(fx.reset, 1);
	tu_journal_outcome(tj.j, json_integer_value(json_object_get(fx.result, "journal_id")), &o);
	assert_int_equal(o.count, 1);
	assert_string_equal(o.outcome, "applied");
	assert_string_equal(o.result, "SSC_OK");
	assert_string_equal(o.how, "card");
	json_decref(fx.result);
	tu_journal_verify(tj.j);
	tu_journal_close(&tj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_atr),
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_read_basic_exact_apdus),
		cmocka_unit_test(test_read_basic_psam_terminal),
		cmocka_unit_test(test_read_basic_v1),
		cmocka_unit_test(test_v1_refuses_auth),
		cmocka_unit_test(test_mode_fallback),
		cmocka_unit_test(test_read_auth_des),
		cmocka_unit_test(test_read_auth_sm4),
		cmocka_unit_test(test_read_auth_policies),
		cmocka_unit_test(test_read_items),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_bad_card_data),
		cmocka_unit_test(test_name_straddles_records),
		cmocka_unit_test(test_internal_auth_script),
		cmocka_unit_test(test_card_id_mac),
		cmocka_unit_test(test_pin_apdus),
		cmocka_unit_test(test_pin_reload_unblock_apdus),
		cmocka_unit_test(test_append_mac_vectors),
		cmocka_unit_test(test_write_ssse_apdus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
