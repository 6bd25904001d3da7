/*
 * Unit tests of src/ssc_hsm.c, the card side of the two-step read (spec §13.1), against a scripted
 * card that answers as the §13.1 vector's card would (K_master of §12.8 for both keys, region
 * 330100, cardDiv 0011223344556677, P 0102030405060708, X A1A2A3A4A5A6A7A8, R
 * 1122334455667788): the exact commands of step 1 and its string, the key strings of the vector
 * (DES and SM4) accepted and turned into the exact EXTERNAL AUTHENTICATE, and every malformed or
 * wrong key refused before any command (std −23 / −25). No key provider anywhere.
 */
#include "test_card_util.h"

#include "ssc_hsm.h"

#define SELECT_SSSE "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"
#define FCI(alg) "6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C038601" alg "9000"
/* ATR 3B 88 80 01 + 8 historical bytes (chip serial 0011223344556677) + TCK. */
#define ATR "3B888001001122334455667709"
#define CARD_ID "330100D15600000544556677A1DF7BC8"
#define R_EF05_01 { "00B2012C00", "0110" CARD_ID "9000", 0 }
#define R_EF05_03(v) { "00B2032C00", "0304" v "2E30309000", 0 }
#define INT_AUTH(c) { "00880000100102030405060708A1A2A3A4A5A6A7A8", c "9000", 0 }
#define R_EF06_08_DENIED { "00B2013400", "6982", 0 }
#define R_EF06_08 { "00B2013400", "0812313130313031313939303031303131323337" "9000", 0 }
#define GET_CHALLENGE { "0084000008", "1122334455667788" "9000", 0 }
#define END { NULL, NULL, 0 }
/* The reads of card.read_basic after the read authorisation (test_ssc.c's, this card's id). */
#define R_BASIC \
	{ "00B2032C00", "0304322E30309000", 0 }, R_EF05_01, \
	{ "00B2052C00", "0504202401019000", 0 }, { "00B2062C00", "0604203401019000", 0 }, \
	{ "00B2072C00", "07095830303030303031399000", 0 }, R_EF06_08, \
	{ "00B2023400", "091ED5C5C8FD" "0000000000000000000000000000000000000000000000000000" \
	  "9000", 0 }, \
	{ "00B2033400", "4E14" "0000000000000000000000000000000000000000" "9000", 0 }, \
	{ "00B2043400", "0A01319000", 0 }, { "00B2053400", "0B01019000", 0 }, \
	{ "00B2063400", "0C033301009000", 0 }, { "00B2073400", "0D04199001019000", 0 }

static const uint8_t px[16] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
				0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8 };

struct fx {
	struct tu_script s;
	struct config cfg;
	struct ssc_card c;
	unsigned flags;
	struct ssc_diag d;
};

static void fx_open(struct fx *f, const struct tu_step *steps)
{
	struct card_io keep = f->s.io;

	tu_script_init(&f->s, steps);
	f->s.io.atr_len = tu_unhex(ATR, f->s.io.atr, sizeof(f->s.io.atr));
	(void)keep;
	ssc_diag_init(&f->d);
	assert_int_equal(ssc_open(&f->c, &f->s.io, &f->cfg, NULL, &f->flags, &f->d), 0);
}

static int key(const struct ssc_hsm_step1 *st, const char *k, uint8_t ext[16], int *has,
	       struct ssc_diag *d)
{
	ssc_diag_init(d);
	return ssc_hsm_check_key(st, k, strlen(k), ext, has, d);
}

/* Step 1 and step 2 of the §13.1 vector, DES and SM4, on a card that demands read authorisation. */
static void run_vector(const char *fci_alg, const char *ef05_03, const char *c,
		       const char *keystr, const char *ext_cmd, const char *want_step1)
{
	const struct tu_step step1[] = {
		{ SELECT_SSSE, fci_alg, 0 }, R_EF05_01, { "00B2032C00", ef05_03, 0 },
		{ "00880000100102030405060708A1A2A3A4A5A6A7A8", c, 0 },
		R_EF06_08_DENIED, GET_CHALLENGE, END,
	};
	const struct tu_step step2[] = {
		{ SELECT_SSSE, fci_alg, 0 }, { ext_cmd, "9000", 0 }, R_BASIC, END,
	};
	struct ssc_hsm_step1 st;
	struct ssc_basic b;
	char s[SSC_HSM_STEP1_MAX];
	uint8_t ext[16];
	int has = -1;
	struct fx f;

	memset(&f, 0, sizeof(f));
	config_defaults(&f.cfg);
	fx_open(&f, step1);
	assert_int_equal(ssc_hsm_step1(&f.c, px, &st, &f.d), 0);
	tu_script_done(&f.s);
	assert_int_equal(st.has_r, 1);
	/* The READ answered 6982: remembered for the insertion (spec §12.4). */
	assert_true(f.flags & CARD_FLAG_READ_AUTH);
	assert_int_equal(ssc_hsm_step1_string(&st, "330100000001", s, sizeof(s)),
			 (int)strlen(want_step1));
	assert_string_equal(s, want_step1);

	assert_int_equal(key(&st, keystr, ext, &has, &f.d), 0);
	assert_int_equal(has, 1);
	fx_open(&f, step2);
	memset(&b, 0, sizeof(b));
	assert_int_equal(ssc_hsm_step2(&f.c, &st, ext, has, &b, &f.d), 0);
	tu_script_done(&f.s);
	assert_string_equal(b.card_number, "X00000019");
	assert_string_equal(b.card_id, CARD_ID);
	assert_int_equal(f.c.read_authed, 1);
}

static void test_vector_des(void **state)
{
	(void)state;
	run_vector(FCI("01"), "0304322E30309000", "D2FFA2E969F241C5" "9000",
		   "D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667788|",
		   "0082000A104BA5C1F9D6C57F0F1122334455667788",
		   "330100|0011223344556677|01|" CARD_ID "|0102030405060708|A1A2A3A4A5A6A7A8|"
		   "1122334455667788|1122334455667788|330100000001|");
}

static void test_vector_sm4(void **state)
{
	(void)state;
	/* SM4: the key version 01 follows C_ext ‖ R (spec §12.5); lower-case hex is taken too. */
	run_vector(FCI("03"), "0304332E30309000", "D9B357F70108DCD8" "9000",
		   "d9b357f70108dcd8|5e581e4bb536b2071122334455667788|",
		   "0082000A115E581E4BB536B207112233445566778801",
		   "330100|0011223344556677|03|" CARD_ID "|0102030405060708|A1A2A3A4A5A6A7A8|"
		   "1122334455667788|1122334455667788|330100000001|");
}

static void test_no_read_authorisation(void **state)
{
	static const struct tu_step step1[] = {
		{ SELECT_SSSE, FCI("01"), 0 }, R_EF05_01, R_EF05_03("32"),
		INT_AUTH("D2FFA2E969F241C5"), R_EF06_08, END,
	};
	static const struct tu_step step2[] = { { SELECT_SSSE, FCI("01"), 0 }, R_BASIC, END };
	struct ssc_hsm_step1 st;
	struct ssc_basic b;
	char s[SSC_HSM_STEP1_MAX];
	uint8_t ext[16];
	int has = -1;
	struct fx f;

	(void)state;
	memset(&f, 0, sizeof(f));
	config_defaults(&f.cfg);
	fx_open(&f, step1);
	assert_int_equal(ssc_hsm_step1(&f.c, px, &st, &f.d), 0);
	tu_script_done(&f.s);
	assert_int_equal(st.has_r, 0);
	assert_false(f.flags & CARD_FLAG_READ_AUTH);
	ssc_hsm_step1_string(&st, "000000000000", s, sizeof(s));
	assert_string_equal(s, "330100|0011223344556677|01|" CARD_ID "|0102030405060708|"
			    "A1A2A3A4A5A6A7A8|||000000000000|");
	/* A server may send 32 hex digits: only the first 16 are compared. */
	assert_int_equal(key(&st, "D2FFA2E969F241C50000000000000000||", ext, &has, &f.d), 0);
	assert_int_equal(has, 0);
	/* No external authentication: straight to the reads. */
	fx_open(&f, step2);
	assert_int_equal(ssc_hsm_step2(&f.c, &st, ext, has, &b, &f.d), 0);
	tu_script_done(&f.s);
	/* 外部认证数据 where step 1 had no challenge: malformed. */
	assert_int_equal(key(&st, "D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667788|", ext,
			     &has, &f.d), SSC_EHSMKEY);
	assert_string_equal(f.d.msg, "外部认证数据 is present, but step 1 sent no challenge");
	/* With read_auth = always, no READ to find out: the challenge at once. */
	{
		static const struct tu_step always[] = {
			{ SELECT_SSSE, FCI("01"), 0 }, R_EF05_01, R_EF05_03("32"),
			INT_AUTH("D2FFA2E969F241C5"), GET_CHALLENGE, END,
		};

		f.cfg.read_auth = READ_AUTH_ALWAYS;
		fx_open(&f, always);
		assert_int_equal(ssc_hsm_step1(&f.c, px, &st, &f.d), 0);
		tu_script_done(&f.s);
		assert_int_equal(st.has_r, 1);
	}
}

static void test_bad_keys(void **state)
{
	static const struct {
		const char *key;
		int rc;
	} cases[] = {
		/* Wrong 内部认证结果 (one bit): −25. */
		{ "D2FFA2E969F241C4|4BA5C1F9D6C57F0F1122334455667788|", SSC_EHSMMISMATCH },
		/* Malformed: −23. */
		{ "", SSC_EHSMKEY },
		{ "D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667788", SSC_EHSMKEY },
		{ "D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667788||", SSC_EHSMKEY },
		{ "D2FFA2E969F241C|4BA5C1F9D6C57F0F1122334455667788|", SSC_EHSMKEY },
		{ "D2FFA2E969F241C5G|4BA5C1F9D6C57F0F1122334455667788|", SSC_EHSMKEY },
		{ "D2FFA2E969F241CG|4BA5C1F9D6C57F0F1122334455667788|", SSC_EHSMKEY },
		{ "D2FFA2E969F241C5|4BA5C1F9D6C57F0F112233445566778|", SSC_EHSMKEY },
		{ "D2FFA2E969F241C5|4BA5C1F9D6C57F0F11223344556677XX|", SSC_EHSMKEY },
		{ "D2FFA2E969F241C5||", SSC_EHSMKEY },                    /* R demanded */
		{ "D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667789|", SSC_EHSMKEY }, /* not R */
		{ " D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667788|", SSC_EHSMKEY },
		/* The mismatch is found only once the string is well formed. */
		{ "00000000000000000|4BA5C1F9D6C57F0F1122334455667788|", SSC_EHSMKEY },
	};
	struct ssc_hsm_step1 st;
	uint8_t ext[16];
	struct ssc_diag d;
	int has;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.alg = SSC_ALG_DES;
	tu_unhex("D2FFA2E969F241C5", st.c, 8);
	tu_unhex("1122334455667788", st.r, 8);
	st.has_r = 1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("key %zu: \"%s\"\n", i, cases[i].key);
		has = -1;
		assert_int_equal(key(&st, cases[i].key, ext, &has, &d), cases[i].rc);
		assert_int_equal(has, 0);
		assert_true(d.msg[0] != '\0');
		/* Never the string itself in the message. */
		assert_null(strstr(d.msg, "D2FF"));
	}
	assert_int_equal(ssc_std_code(SSC_EHSMMISMATCH, 0), -25);
	assert_int_equal(ssc_std_code(SSC_EHSMKEY, 0), -23);
	/* A NUL inside the given length is not a separator either. */
	assert_int_equal(ssc_hsm_check_key(&st, "D2FFA2E969F241C5\0|", 18, ext, &has, &d),
			 SSC_EHSMKEY);
}

static void test_card_refuses_internal_auth(void **state)
{
	static const struct tu_step step1[] = {
		{ SELECT_SSSE, FCI("01"), 0 }, R_EF05_01, R_EF05_03("32"),
		{ "00880000100102030405060708A1A2A3A4A5A6A7A8", "6A88", 0 }, END,
	};
	static const struct tu_step gen1[] = {
		{ SELECT_SSSE, FCI("01"), 0 }, R_EF05_01, R_EF05_03("31"), END,
	};
	struct ssc_hsm_step1 st;
	struct fx f;

	(void)state;
	memset(&f, 0, sizeof(f));
	config_defaults(&f.cfg);
	fx_open(&f, step1);
	assert_int_equal(ssc_hsm_step1(&f.c, px, &st, &f.d), SSC_ENOTGENUINE);
	tu_script_done(&f.s);
	fx_open(&f, gen1);
	assert_int_equal(ssc_hsm_step1(&f.c, px, &st, &f.d), SSC_EUNSUPPORTED);
	tu_script_done(&f.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_des),
		cmocka_unit_test(test_vector_sm4),
		cmocka_unit_test(test_no_read_authorisation),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_card_refuses_internal_auth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
