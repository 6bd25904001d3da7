/*
 * Unit tests of the simulated card (sim_card.c) driven with APDUs: selection, both READ RECORD
 * modes, every access rule, authentication, secure writes, the PIN commands, the behaviour
 * switches and the status words of spec §3/§12.5. Expected bytes are written by hand from the spec
 * and the profiles; MACs of vectors were computed with the openssl command line.
 */
#include "sim_test.h"

#define EXT_DES "00820004104BA5C1F9D6C57F0F1122334455667788"
#define EXT_SM4 "00820004115E581E4BB536B207112233445566778801"
#define R "1122334455667788"

/* GET CHALLENGE answering the §12.8 R. */
static void challenge(struct sim_token *t)
{
	th_force(t, R);
	TX(t, "0084000008", R "9000");
}

static void ext_auth(struct sim_token *t, int gen, const char *kid)
{
	char cmd[64];

	challenge(t);
	snprintf(cmd, sizeof(cmd), "008200%s%s", kid, (gen == 3 ? EXT_SM4 : EXT_DES) + 8);
	TX(t, cmd, "9000");
}

static void test_select(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00A4040C0F" SSSE_NAME, "9000");
	TX(t, "00A4040000", "6700");                          /* no name */
	TX(t, "00A404000000", "6700");                        /* Lc 00: no extended lengths */
	TX(t, "00A40404", "6A86");
	TX(t, "00A4040C0F" SSSE_NAME "00", "9000");            /* case 4 is fine too */
	TX(t, "00A404040F" SSSE_NAME, "6A86");
	TX(t, "00A4040006D15600000590", "6A82");              /* the PSAM's AID: not on a card */
	TX(t, "00A4040006D15600000505", "6A82");              /* DF06: not in v1 */
	TX(t, "00A404000E7378312E73682EC9E7BBE1B1A3D5", "6A82");   /* partial name */
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	TX(t, "00A4040006D15600000500", "6F0A8406D15600000500A500" "9000");
	TX(t, "00A4040C06D15600000504", "9000");
	TX(t, "00A40000023F00", "9000");
	TX(t, "00A4000002DF04", "6A82");                      /* DFs sit under SSSE, not MF */
	TX(t, "00A4020002EF05", "6A82");                      /* MF has no EF05 */
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00A4020002EF05", "9000");                      /* an EF answers no data */
	TX(t, "00A4000002EF06", "9000");
	TX(t, "00A4020002EF0D", "6A82");                      /* generation 2: no EF0D */
	TX(t, "00A4020001EF", "6700");
	TX(t, "00A4000003EF0500", "6700");
	TX(t, "00A4010002EF05", "6A86");
	TX(t, "00A4000002DF04", "9000");
	TX(t, "00A4020002EF08", "9000");
	TX(t, "00A4000002DF01", "9000");                      /* sibling DF */
	TX(t, "00A4020002EF15", "9000");
	TX(t, "00A4000002DF06", "6A82");
	sim_token_free(t);

	t = th_vector_token(3, SIM_ROLE_CARD, NULL, NULL);
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	TX(t, "00A4020002EF0D", "9000");
	sim_token_free(t);
}

static const char *const ef05[7] = {
	"0110330100D15600000544556677A1DF7BC8",   /* MAC computed with the openssl CLI */
	"020133",
	"0304322E3030",
	"040C333330313030303030303031",
	"050420240101",
	"060420340101",
	"0709583030303030303139",
};
static const char *const ef06[7] = {
	"0812333330313032313939303033303731323330",
	"091ED5C5C8FD0000000000000000000000000000000000000000000000000000",
	"4E140000000000000000000000000000000000000000",
	"0A0131",
	"0B0101",
	"0C03330102",
	"0D0419900307",
};
static const uint8_t ef06_tags[7] = { 0x08, 0x09, 0x4E, 0x0A, 0x0B, 0x0C, 0x0D };

static void test_read_record_modes(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	char cmd[32], exp[128];
	int i;

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	for (i = 0; i < 7; i++) {
		snprintf(exp, sizeof(exp), "%s9000", ef05[i]);
		snprintf(cmd, sizeof(cmd), "00B2%02X2C00", i + 1);     /* record number, SFI 5 */
		TX(t, cmd, exp);
		snprintf(cmd, sizeof(cmd), "00B2%02X2800", i + 1);     /* tag n = record n in EF05 */
		TX(t, cmd, exp);
		snprintf(exp, sizeof(exp), "%s9000", ef06[i]);
		snprintf(cmd, sizeof(cmd), "00B2%02X3400", i + 1);
		TX(t, cmd, exp);
		snprintf(cmd, sizeof(cmd), "00B2%02X3000", ef06_tags[i]);
		TX(t, cmd, exp);
	}
	/* The file of the last SFI read is the current EF (P2 low bits only). */
	snprintf(exp, sizeof(exp), "%s9000", ef06[1]);
	TX(t, "00B2020400", exp);
	sim_token_free(t);
}

static void test_read_record_current_ef(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2010400", "6986");                          /* no current EF */
	TX(t, "00A4020002EF06", "9000");
	TX(t, "00B2040400", "0A0131" "9000");
	TX(t, "00B20B0000", "0B0101" "9000");
	TX(t, "00B2012C00", "0110330100D15600000544556677A1DF7BC8" "9000");   /* EF05 now current */
	TX(t, "00B2070400", "0709583030303030303139" "9000");
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");                 /* re-selecting the DF: no EF */
	TX(t, "00B2010400", "6986");
	sim_token_free(t);
}

static void test_read_record_errors(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, "00B2012C00", "6A82");                          /* MF has no SFI 5 */
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2082C00", "6A83");                          /* EF05 has 7 records */
	TX(t, "00B2082800", "6A83");                          /* no tag 08 in EF05 */
	TX(t, "00B2002C00", "6A86");                          /* record 0 */
	TX(t, "00B2012D00", "6A86");                          /* P2 mode 101 */
	TX(t, "00B2012A00", "6A86");
	TX(t, "00B201FC00", "6A86");                          /* SFI 31 */
	TX(t, "00B2014C00", "6A82");                          /* SFI 9: no such EF */
	TX(t, "00B2012C0100", "6700");                        /* data in a READ */
	TX(t, "00B2012C0200", "6700");                        /* inconsistent Lc */
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	TX(t, "00B2014400", "6A83");                          /* EF08 empty */
	TX(t, "00B2012C00", "30033301009000");
	TX(t, "00B2322800", "3214" "3333303130303030303030303030303030303031" "9000");
	TX(t, "00B2010C00", "6A82");                          /* no SFI 1 */
	TX(t, "00B2013400", "4101009000");
	TX(t, "00A4040006D15600000500", "6F0A8406D15600000500A500" "9000");
	TX(t, "00B2012C00", "6A83");                          /* DF01 records optional: absent */
	sim_token_free(t);
}

static void test_read_record_le(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2072C05", "0709583030" "9000");            /* shorter Le: the first Le bytes */
	TX(t, "00B2072C0B", "0709583030303030303139" "9000");
	TX(t, "00B2072C20", "0709583030303030303139" "9000");/* longer: the whole record */
	TX(t, "00B2072C", "0709583030303030303139" "9000");  /* no Le: the whole record */
	sim_token_free(t);
}

static void test_gen1_layout(void **state)
{
	struct sim_token *t = th_repo_token("gen1", SIM_ROLE_CARD);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2033400", "0A0131" "9000");                 /* 性别 is record 3 */
	TX(t, "00B24E3000", "6A83");                          /* no 姓名扩展 */
	TX(t, "00B2063400", "0D0419700101" "9000");
	TX(t, "00B2073400", "6A83");
	TX(t, "00B2032C00", "0304312E3030" "9000");
	sim_token_free(t);
}

static void test_repo_gen3(void **state)
{
	struct sim_token *t = th_repo_token("gen3", SIM_ROLE_CARD);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	/* "阿卜杜热合曼·买买提艾力·吐尔逊江": 34 bytes (iconv -t GB18030), 30 in 09 and 4 in 4E. */
	TX(t, "00B2023400",
	   "091E" "B0A2B2B7B6C5C8C8BACFC2FCA1A4C2F2C2F2CCE1B0ACC1A6A1A4CDC2B6FB" "9000");
	TX(t, "00B2033400", "4E14" "D1B7BDAD" "00000000000000000000000000000000" "9000");
	TX(t, "00B2016C00", "EA0C" "503333303230303030303031" "9000");   /* EF0D: P33020000001 */
	TX(t, "00B2EB6800", "EB03330200" "9000");
	TX(t, "00B2032C00", "0304332E3030" "9000");
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	TX(t, "00B2013400", "4101019000");                    /* offline settlement pending */
	/* EF08 record 1: 20250701080102 H33020000009 N2025070100000000042 99999 0 99999 */
	TX(t, "00B2014400", "4033" "20250701080102" "483333303230303030303039"
	   "4E32303235303730313030303030303030303432" "0001869F" "00000000" "0001869F" "9000");
	TX(t, "00B2024400", "6A83");
	sim_token_free(t);
}

/* 张䶮𫖯 in GB 18030 (by hand, iconv -t GB18030 agrees): 张 D5C5, 䶮 FE9F, 𫖯 9838F537. */
static void test_repo_gen3_gb18030(void **state)
{
	struct sim_token *t = th_repo_token("gen3-gb18030", SIM_ROLE_CARD);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	TX(t, "00B2023400", "091E" "D5C5FE9F9838F537" "00000000000000000000000000000000000000000000"
	   "9000");
	TX(t, "00B2033400", "4E14" "0000000000000000000000000000000000000000" "9000");
	sim_token_free(t);
}

static void test_repo_gen2_card_id(void **state)
{
	struct sim_token *t = th_repo_token("gen2", SIM_ROLE_CARD);
	uint8_t atr[SIM_ATR_MAX], exp[SIM_ATR_MAX];

	(void)state;
	assert_int_equal(sim_token_atr(t, atr), th_hex("3B8E80010081544C92868433010000BF7C7A8D", exp, sizeof(exp)));
	assert_memory_equal(atr, exp, 19);
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2012C00", "0110" "330100D15600000500BF7C7AC9FC0FEC" "9000");   /* §12.8 */
	sim_token_free(t);
	t = th_repo_token("gen2-badcardid", SIM_ROLE_CARD);
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2012C00", "0110" "330100D15600000500BAD1D0629FC40C" "9000");
	sim_token_free(t);
}

static void test_t0_quirks(void **state)
{
	struct sim_token *t = th_repo_token("t0-quirks", SIM_ROLE_CARD);

	(void)state;
	TX(t, "00C000001B", "6985");                          /* nothing pending */
	TX(t, SEL_SSSE, "611B");                              /* the FCI is 27 bytes */
	TX(t, "00C000001B", FCI_SSSE_DES "9000");
	TX(t, "00C000001B", "6985");                          /* handed out once */
	TX(t, SEL_SSSE, "611B");
	TX(t, "00C0000005", "6F19840F73" "6116");             /* in pieces */
	TX(t, "00C0000016", "78312E73682EC9E7BBE1B1A3D5CF" "A5069F0C03860101" "9000");
	TX(t, SEL_SSSE, "611B");
	TX(t, "00B2012C12", "6112");                          /* another command drops it */
	TX(t, "00C0000012", "0110" "330100D15600000500C0FFEE0BC88AE8" "9000");
	TX(t, "00B2012C00", "6C12");                          /* Le 00 is not the exact length */
	TX(t, "00B2012C11", "6C12");
	TX(t, "00B2012C13", "6C12");
	TX(t, "00B2012C", "6C12");
	TX(t, "00B2082C05", "6A83");                          /* errors stay errors */
	TX(t, "00A4020002EF05", "9000");                      /* no data: no 61xx */
	TX(t, "00C1000000", "6D00");
	TX(t, "80C0000008", "6E00");
	TX(t, "00C0010000", "6A86");
	sim_token_free(t);
}

static void test_one_mode_only(void **state)
{
	struct sim_token *t = th_repo_token("gen2-tagmode", SIM_ROLE_CARD);

	(void)state;
	TX(t, SEL_SSSE, "6F13840F" SSSE_NAME "A500" "9000");   /* no 9F0C */
	TX(t, "00B2012C00", "6A86");
	TX(t, "00B2072800", "0709583030303030303658" "9000");   /* X0000006X */
	sim_token_free(t);
	t = th_vector_token(2, SIM_ROLE_CARD, NULL, "\"read_record_modes\":\"number\"");
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2012800", "6A86");
	TX(t, "00B2022C00", "020133" "9000");
	sim_token_free(t);
}

static void test_get_challenge(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	uint8_t a[SIM_RESP_MAX], b[SIM_RESP_MAX];

	(void)state;
	TX(t, "0084000004", "6700");
	TX(t, "0084000000", "6700");
	TX(t, "00840000", "6700");
	TX(t, "0084010008", "6A86");
	TX(t, "8084000008", "6E00");
	assert_int_equal(th_send(t, "0084000008", a), 10);
	assert_int_equal(th_send(t, "0084000008", b), 10);
	assert_memory_not_equal(a, b, 8);                     /* random, fresh each time */
	assert_int_equal(a[8], 0x90);
	sim_token_free(t);
}

/* §12.5: the challenge survives SELECT, READ, VERIFY, INTERNAL AUTH; not reset or any EXT AUTH. */
static void test_challenge_single_use(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, EXT_DES, "6984");                               /* no challenge */
	challenge(t);
	TX(t, "00A4020002EF05", "9000");
	TX(t, "00B2012C05", "0110330100" "9000");
	TX(t, "0020000003123456", "9000");
	TX(t, "00880000100102030405060708A1A2A3A4A5A6A7A8", "D2FFA2E969F241C5" "9000");
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, EXT_DES, "9000");
	TX(t, EXT_DES, "6984");                               /* used up */
	challenge(t);
	TX(t, "00820004054BA5C1F9D6", "6700");                /* a malformed one uses it too */
	TX(t, EXT_DES, "6984");
	challenge(t);
	TX(t, "00820099104BA5C1F9D6C57F0F1122334455667788", "6A88");   /* unknown key: used */
	TX(t, EXT_DES, "6984");
	challenge(t);
	sim_token_reset(t);                                   /* reset discards it */
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, EXT_DES, "6984");
	challenge(t);
	TX(t, "04DC052C0A" "050420250101" "B183D1C3", "6982");   /* a secure command uses it */
	TX(t, EXT_DES, "6984");
	sim_token_free(t);
}

static void test_external_auth_vectors(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	challenge(t);
	TX(t, EXT_DES, "9000");                               /* §12.8 DES */
	challenge(t);
	TX(t, "008200" "0A" "104BA5C1F9D6C57F0F1122334455667788", "9000");   /* read key 0A */
	challenge(t);
	TX(t, "008200" "0D" "104BA5C1F9D6C57F0F1122334455667788", "9000");
	sim_token_free(t);
	t = th_vector_token(3, SIM_ROLE_CARD, NULL, NULL);
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	challenge(t);
	TX(t, EXT_SM4, "9000");                               /* §12.8 SM4 */
	challenge(t);
	TX(t, "00820004105E581E4BB536B2071122334455667788", "6700");   /* DES length on SM4 */
	challenge(t);
	TX(t, "00820004115E581E4BB536B207112233445566778802", "6A88");  /* key version 02 */
	sim_token_free(t);
}

static void test_external_auth_counter(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	const char *bad = "00820004100000000000000000" "1122334455667788";

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	challenge(t);
	TX(t, "00820004114BA5C1F9D6C57F0F112233445566778801", "6700");  /* SM4 length on DES */
	challenge(t);
	TX(t, "00820004104BA5C1F9D6C57F0F1122334455667789", "6A80");    /* X != R: no try */
	challenge(t);
	TX(t, bad, "63C4");                                   /* default 5 tries */
	challenge(t);
	TX(t, EXT_DES, "9000");                               /* success resets */
	challenge(t);
	TX(t, bad, "63C4");
	challenge(t);
	TX(t, bad, "63C3");
	challenge(t);
	TX(t, bad, "63C2");
	challenge(t);
	TX(t, bad, "63C1");
	challenge(t);
	TX(t, "00820005104BA5C1F9D6C57F0F1122334455667788", "6A88");    /* 05 is the STK: no */
	challenge(t);
	TX(t, bad, "63C0");                                   /* the last try */
	challenge(t);
	TX(t, EXT_DES, "6983");                               /* blocked, even when right */
	challenge(t);
	TX(t, "008200" "0A" "104BA5C1F9D6C57F0F1122334455667788", "9000");   /* per key id */
	TX(t, "00820104104BA5C1F9D6C57F0F1122334455667788", "6A86");
	TX(t, "80820004104BA5C1F9D6C57F0F1122334455667788", "6E00");
	sim_token_free(t);

	t = th_vector_token(2, SIM_ROLE_CARD, "\"key_tries\":2,", NULL);   /* configurable */
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	challenge(t);
	TX(t, bad, "63C1");
	challenge(t);
	TX(t, bad, "63C0");
	challenge(t);
	TX(t, bad, "6983");
	sim_token_free(t);
}

static void test_internal_auth(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	uint8_t resp[SIM_RESP_MAX];

	(void)state;
	TX(t, "00880000100102030405060708A1A2A3A4A5A6A7A8", "D2FFA2E969F241C5" "9000");
	TX(t, "00880000100102030405060708A1A2A3A4A5A6A7A808", "D2FFA2E969F241C5" "9000");
	TX(t, "00880001100102030405060708A1A2A3A4A5A6A7A8", "6A88");
	TX(t, "00880100100102030405060708A1A2A3A4A5A6A7A8", "6A86");
	TX(t, "00880000080102030405060708", "6700");
	TX(t, "0088000000", "6700");
	sim_token_free(t);
	t = th_vector_token(3, SIM_ROLE_CARD, NULL, NULL);
	TX(t, "00880000100102030405060708A1A2A3A4A5A6A7A8", "D9B357F70108DCD8" "9000");
	sim_token_free(t);
	/* "wrong keys": personalised from other masters, so not the vector's answer. */
	t = th_vector_token(2, SIM_ROLE_CARD, NULL, "\"wrong_keys\":true");
	assert_int_equal(th_send(t, "00880000100102030405060708A1A2A3A4A5A6A7A8", resp), 10);
	assert_memory_not_equal(resp, "\xD2\xFF\xA2\xE9\x69\xF2\x41\xC5", 8);
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	challenge(t);
	TX(t, EXT_DES, "63C4");
	sim_token_free(t);
}

static void test_update_plain(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	uint64_t g;

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00DC052C06050420250101", "6982");              /* no EXTERNAL AUTH yet */
	ext_auth(t, 2, "0A");
	TX(t, "00DC052C06050420250101", "6982");              /* the read key is not the write key */
	ext_auth(t, 2, "04");
	g = sim_token_generation(t);
	TX(t, "00DC052C06050420250101", "9000");
	assert_true(sim_token_generation(t) > g);
	TX(t, "00B2052C00", "050420250101" "9000");
	TX(t, "00DC062806060420390101", "9000");              /* tag mode */
	TX(t, "00B2062C00", "060420390101" "9000");
	TX(t, "00DC052C0405022026", "9000");                  /* shorter cn: F padding */
	TX(t, "00B2052C00", "05042026FFFF" "9000");
	TX(t, "00DC072C0407024142", "9000");                  /* shorter an: 00 padding */
	TX(t, "00B2072C00", "0709414200000000000000" "9000");
	TX(t, "00DC072C0C07094142434445464748494A", "6700");  /* says 9, but 10 bytes follow */
	TX(t, "00DC072C0C070A4142434445464748494A", "6700");  /* longer than the record */
	TX(t, "00DC052C06060420250101", "6A80");              /* tag of another record */
	TX(t, "00DC082C06080420250101", "6A83");
	TX(t, "00DC052C0105", "6700");
	TX(t, "00DC002C06050420250101", "6A86");
	TX(t, "00DC052D06050420250101", "6A86");
	TX(t, "00DC053406080420250101", "6A80");              /* EF06 record 5 is tag 0B */
	TX(t, "00DC013414" "0812" "313131313131313131313131313131313131", "9000");
	TX(t, "00B2013400", "0812313131313131313131313131313131313131" "9000");
	TX(t, "00DC056C06EA0420250101", "6A82");              /* generation 2: no EF0D */
	TX(t, "80DC052C06050420250101", "6E00");
	/* The state goes with a different DF... */
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	TX(t, "00DC012C053003330200", "6982");                /* DF04: MAC only */
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00DC052C06050420250101", "6982");
	/* ...but not with a SELECT of the same DF or of an EF. */
	ext_auth(t, 2, "04");
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00A4020002EF06", "9000");
	TX(t, "00DC052C06050420250102", "9000");
	sim_token_reset(t);                                   /* nor with a reset */
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00DC052C06050420250103", "6982");
	sim_token_free(t);

	t = th_vector_token(3, SIM_ROLE_CARD, NULL, NULL);
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	ext_auth(t, 3, "04");
	TX(t, "00DC016C0EEA0C413132333435363738393031", "6982");   /* EF0D needs 0D */
	ext_auth(t, 3, "0D");
	TX(t, "00DC016C0EEA0C413132333435363738393031", "9000");
	TX(t, "00DC02680504EB023302", "6A83");                /* tag mode: no tag 02 */
	TX(t, "00DCEA6804EB023302", "6A80");                  /* record EA, data tag EB */
	TX(t, "00DCEB6804EB023302", "9000");
	TX(t, "00B2026C00", "EB033302FF" "9000");
	sim_token_free(t);
}

static void test_update_mac(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	TX(t, "04DC012C09" "3003330200" "71907E5D", "6984");  /* no challenge */
	challenge(t);
	TX(t, "04DC012C09" "3003330200" "71907E5E", "6988");  /* wrong MAC */
	TX(t, "04DC012C09" "3003330200" "71907E5D", "6984");  /* ...and the challenge is gone */
	challenge(t);
	TX(t, "04DC012C09" "3003330200" "71907E5D", "9000");  /* MAC from the openssl CLI */
	TX(t, "00B2012C00", "3003330200" "9000");
	challenge(t);
	TX(t, "04DC012C03" "300333", "6700");                 /* shorter than a MAC and a TL */
	challenge(t);
	TX(t, "04DC012C09" "3103330200" "71907E5D", "6988");  /* the MAC covers the data */
	/* SSSE: a MAC is not enough, the file's EXTERNAL AUTH is needed too. */
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	challenge(t);
	TX(t, "04DC052C0A" "050420250101" "B183D1C3", "6982");
	ext_auth(t, 2, "04");
	challenge(t);
	TX(t, "04DC052C0A" "050420250101" "B183D1C3", "9000");
	TX(t, "00B2052C00", "050420250101" "9000");
	sim_token_free(t);

	t = th_vector_token(3, SIM_ROLE_CARD, NULL, NULL);
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	challenge(t);
	TX(t, "04DC012C09" "3003330200" "861E7996", "9000");  /* SM4 CBC-MAC, IV R || 00^8 */
	TX(t, "00B2012C00", "3003330200" "9000");
	sim_token_free(t);
}

static void test_append_vectors(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	char exp[256];

	(void)state;
	/* 40 33, the 8 bytes sent, 43 bytes of 00 padding (binary), 9000 */
	th_padded(exp, sizeof(exp), "40330102030405060708", 43, "9000");
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	challenge(t);
	TX(t, "04E200400E40330102030405060708F45CDC9E", "9000");   /* §12.8 DES */
	TX(t, "00B2014400", exp);
	TX(t, "00B2404000", exp);                             /* by tag 40: the newest */
	sim_token_free(t);
	t = th_vector_token(3, SIM_ROLE_CARD, NULL, NULL);
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	challenge(t);
	TX(t, "04E200400E40330102030405060708F0BBB681", "9000");   /* §12.8 SM4 */
	TX(t, "00B2014400", exp);
	sim_token_free(t);
}

/* MAC4 of header || data, computed by the profile's PSAM (a separate token) for secure commands. */
static void psam_mac(struct sim_token *psam, const char *ref, const char *hdr_data, uint8_t mac[4])
{
	char cmd[600];
	uint8_t resp[SIM_RESP_MAX];
	size_t n = strlen(hdr_data) / 2;

	TX(psam, "00A4040006D15600000590", "6F108406D15600000590A5069F0C03860101" "9000");
	snprintf(cmd, sizeof(cmd), "BFDE%s10" "0011223344556677" "3333303130307378", ref);
	TX(psam, cmd, "9000");
	snprintf(cmd, sizeof(cmd), "80FA0500%02zX" "1122334400000000" "%s", n + 8, hdr_data);
	assert_int_equal(th_send(psam, cmd, resp), 6);
	memcpy(mac, resp, 4);
}

/* Sends a secure command (hex header + data, MAC appended) after a forced challenge. */
static void secure(struct sim_token *card, struct sim_token *psam, const char *ref, const char *hdr,
		   const char *data, const char *exp)
{
	char body[600], cmd[600], mhex[9];
	uint8_t mac[4];

	snprintf(body, sizeof(body), "%s%02zX%s", hdr, strlen(data) / 2 + 4, data);
	psam_mac(psam, ref, body, mac);
	th_tohex(mac, 4, mhex);
	challenge(card);
	snprintf(cmd, sizeof(cmd), "%s%s", body, mhex);
	TX(card, cmd, exp);
}

static void test_append_cyclic(void **state)
{
	struct sim_token *t = th_vector_token_ex(2, SIM_ROLE_CARD, NULL, ",\"transaction_capacity\":3", NULL);
	struct sim_token *psam = th_vector_token(2, SIM_ROLE_PSAM, NULL, NULL);
	char pre[16], exp[256];
	int i;

	(void)state;
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	TX(t, "00E20040034033AA", "6982");                    /* plain APPEND: MAC only */
	secure(t, psam, "4615", "04E20040", "403311", "9000");
	secure(t, psam, "4615", "04E20040", "403322", "9000");
	secure(t, psam, "4615", "04E20040", "403333", "9000");
	secure(t, psam, "4615", "04E20040", "403344", "9000");   /* the oldest (11) drops */
	for (i = 0; i < 3; i++) {
		char cmd[16];

		snprintf(cmd, sizeof(cmd), "00B2%02X4400", i + 1);
		snprintf(pre, sizeof(pre), "4033%02X", 0x44 - 0x11 * i);
		th_padded(exp, sizeof(exp), pre, 50, "9000");   /* 50 bytes of 00 padding */
		TX(t, cmd, exp);
	}
	TX(t, "00B2044400", "6A83");
	secure(t, psam, "4615", "04E20044", "403355", "6A86");  /* P2 low bits must be 000 */
	secure(t, psam, "4615", "04E20140", "403355", "6A86");
	secure(t, psam, "4615", "04E20028", "300333", "6981");  /* EF05 is not cyclic */
	secure(t, psam, "4615", "04E20040", "413355", "6A80");  /* tag of EF08 is 40 */
	secure(t, psam, "4615", "04E20040", "403455", "6700");  /* longer than 0x33 */
	TX(t, "00B2013400", "4101009000");
	secure(t, psam, "4615", "04DC0134", "41", "6700");       /* no length byte */
	secure(t, psam, "4615", "04DC0134", "410101", "9000");
	TX(t, "00B2013400", "4101019000");
	secure(t, psam, "4615", "04DC0134", "4101", "9000");     /* no value byte: padded 00 */
	TX(t, "00B2013400", "4101009000");
	sim_token_free(t);
	sim_token_free(psam);
}

static void test_verify(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);
	uint64_t g;

	(void)state;
	TX(t, "0020000003123456", "6985");                    /* MF: no PIN here */
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00200000", "63C3");                            /* tries left */
	TX(t, "0020000003123456", "9000");
	g = sim_token_generation(t);
	TX(t, "0020000003123457", "63C2");
	assert_true(sim_token_generation(t) > g);
	TX(t, "0020000003123457", "63C1");
	TX(t, "0020000003123456", "9000");                    /* resets the counter */
	TX(t, "00200000", "63C3");
	TX(t, "0020000002123F", "6700");                      /* 3 digits < 4 */
	TX(t, "002000000112", "6700");
	TX(t, "002000000712345678901234", "6700");            /* 14 digits > 12 */
	TX(t, "00200000031234A6", "6A80");
	TX(t, "0020000003F23456", "6A80");
	TX(t, "00200000031F3456", "6A80");                    /* F only as the last nibble */
	TX(t, "002000000312345F", "63C2");                    /* 5 digits: valid form, wrong */
	TX(t, "0020000103123456", "6A86");
	TX(t, "8020000003123456", "6E00");
	TX(t, "0020000003123457", "63C1");
	TX(t, "0020000003123457", "63C0");
	TX(t, "0020000003123456", "6983");                    /* blocked */
	TX(t, "00200000", "6983");
	sim_token_free(t);
}

static void test_change_pin(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "805E010007123456FF654321", "9000");
	TX(t, "0020000003123456", "63C2");
	TX(t, "0020000003654321", "9000");
	TX(t, "805E010007123456FF111111", "63C2");            /* wrong old PIN counts */
	TX(t, "805E01000812345FFF1234567F", "63C1");          /* odd lengths both sides */
	TX(t, "805E010008654321FF1234567F", "9000");
	TX(t, "0020000004" "1234567F", "9000");
	TX(t, "805E0100051234567F12", "6A80");                /* no FF separator */
	TX(t, "805E010004FF123456", "6700");                  /* empty old PIN */
	TX(t, "805E0100041234567F", "6A80");
	TX(t, "805E0101071234567FFF1234", "6A86");
	TX(t, "805E020007123456FF654321", "6A86");
	TX(t, "005E010007123456FF654321", "6E00");
	sim_token_free(t);
}

static void test_reload_unblock_des(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, "\"pin_tries_left\":0,", NULL);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "0020000003123456", "6983");                    /* blocked from the start */
	TX(t, "805E000007654321" "6BAA78F9", "6984");         /* RELOAD needs a challenge */
	challenge(t);
	TX(t, "805E000007654321" "6BAA78F8", "6988");         /* wrong MAC: no try counted */
	TX(t, "00200000", "6983");
	challenge(t);
	TX(t, "805E000007654321" "6BAA78F9", "9000");         /* MAC from the openssl CLI */
	TX(t, "00200000", "63C3");
	TX(t, "0020000003654321", "9000");
	TX(t, "0020000003111111", "63C2");
	TX(t, "0020000003111111", "63C1");
	TX(t, "0020000003111111", "63C0");
	/* UNBLOCK: PIN block 03 123456 80 00 00 00 under the PUK key = DA44BA6FAA847AB5 (§12.8). */
	challenge(t);
	TX(t, "842400000C" "DA44BA6FAA847AB5" "DDD50646", "6988");
	challenge(t);
	TX(t, "842400000C" "DA44BA6FAA847AB5" "DDD50645", "9000");
	TX(t, "00200000", "63C3");
	TX(t, "0020000003123456", "9000");
	TX(t, "842400000C" "DA44BA6FAA847AB5" "DDD50645", "6984");   /* challenge used */
	/* A block ending 81 00 00 00 instead of 80 00 00 00: bad padding. */
	challenge(t);
	TX(t, "842400000C" "33263EF6F39B1257" "106D8FC0", "6A80");
	challenge(t);
	TX(t, "8424000008DA44BA6FAA847AB5", "6700");
	challenge(t);
	TX(t, "842400010C" "DA44BA6FAA847AB5" "DDD50645", "6A86");
	TX(t, "042400000C" "DA44BA6FAA847AB5" "DDD50645", "6E00");
	TX(t, "00A40000023F00", "9000");
	challenge(t);
	TX(t, "842400000C" "DA44BA6FAA847AB5" "DDD50645", "6985");   /* MF: no PIN */
	sim_token_free(t);
}

static void test_reload_unblock_sm4(void **state)
{
	struct sim_token *t = th_vector_token(3, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	challenge(t);
	TX(t, "805E000007654321" "4DB666ED", "9000");
	TX(t, "0020000003654321", "9000");
	challenge(t);
	TX(t, "842400000C" "DA44BA6FAA847AB5" "DDD50645", "6700");   /* SM4 block is 16 bytes */
	challenge(t);
	TX(t, "8424000014" "83C3ED41A77006B703C3722B4878B665" "6FC6B46B", "9000");
	TX(t, "0020000003123456", "9000");
	sim_token_free(t);
}

static void test_pin_blocked_profile(void **state)
{
	struct sim_token *t = th_repo_token("pin-blocked", SIM_ROLE_CARD);

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00200000", "6983");
	TX(t, "0020000003123456", "6983");
	TX(t, "805E010007123456FF654321", "6983");
	sim_token_free(t);
	t = th_vector_token(2, SIM_ROLE_CARD, "\"pin_tries\":5,\"pin_min_digits\":6,\"pin_max_digits\":8,", NULL);
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00200000", "63C5");
	TX(t, "002000000312345F", "6700");                    /* below 6 digits */
	TX(t, "0020000003123450", "63C4");
	TX(t, "00200000051234567890", "6700");                /* above 8 digits */
	sim_token_free(t);
}

static void test_read_auth(void **state)
{
	struct sim_token *t = th_vector_token(3, SIM_ROLE_CARD, NULL, "\"ef06_read_auth\":true");

	(void)state;
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	TX(t, "00B2012C05", "0110330100" "9000");             /* EF05 stays free */
	TX(t, "00B2013400", "6982");
	TX(t, "00B2083000", "6982");
	ext_auth(t, 3, "04");
	TX(t, "00B2013400", "6982");                          /* not with the write key */
	ext_auth(t, 3, "0A");
	TX(t, "00B2013400", "0812333330313032313939303033303731323330" "9000");
	TX(t, "00B2016C00", "EA0C503333303130303030303031" "9000");   /* EF0D stays free */
	TX(t, SEL_DF04, "6F0A8406D15600000503A500" "9000");
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	TX(t, "00B2013400", "6982");                          /* gone with the DF change */
	sim_token_free(t);
	t = th_repo_token("gen3-readauth", SIM_ROLE_CARD);
	TX(t, SEL_SSSE, FCI_SSSE_SM4 "9000");
	TX(t, "00B2013400", "6982");
	sim_token_free(t);
}

static void test_cla_ins(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_CARD, NULL, NULL);

	(void)state;
	TX(t, "00CA9F7F00", "6D00");
	TX(t, "00B0000000", "6D00");
	TX(t, "A0A4000002", "6E00");                          /* CLA A0 */
	TX(t, "FFA40000", "6E00");
	TX(t, "80A4040006D15600000503", "6E00");
	TX(t, "01A4040006D15600000503", "6E00");
	TX(t, "04B2012C00", "6E00");
	TX(t, "00", "6700");
	TX(t, "00A4", "6700");
	TX(t, "00A404", "6700");
	TX(t, "", "6700");
	sim_token_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_read_record_modes),
		cmocka_unit_test(test_read_record_current_ef),
		cmocka_unit_test(test_read_record_errors),
		cmocka_unit_test(test_read_record_le),
		cmocka_unit_test(test_gen1_layout),
		cmocka_unit_test(test_repo_gen3),
		cmocka_unit_test(test_repo_gen3_gb18030),
		cmocka_unit_test(test_repo_gen2_card_id),
		cmocka_unit_test(test_t0_quirks),
		cmocka_unit_test(test_one_mode_only),
		cmocka_unit_test(test_get_challenge),
		cmocka_unit_test(test_challenge_single_use),
		cmocka_unit_test(test_external_auth_vectors),
		cmocka_unit_test(test_external_auth_counter),
		cmocka_unit_test(test_internal_auth),
		cmocka_unit_test(test_update_plain),
		cmocka_unit_test(test_update_mac),
		cmocka_unit_test(test_append_vectors),
		cmocka_unit_test(test_append_cyclic),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_change_pin),
		cmocka_unit_test(test_reload_unblock_des),
		cmocka_unit_test(test_reload_unblock_sm4),
		cmocka_unit_test(test_pin_blocked_profile),
		cmocka_unit_test(test_read_auth),
		cmocka_unit_test(test_cla_ins),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
