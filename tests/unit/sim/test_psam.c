/*
 * Unit tests of the simulated PSAM (sim_psam.c) driven with APDUs: the §12.8 vectors through
 * DELIVER KEY + CIPHER / MAC / ENCRYPT, the terminal number, and every error of §12.6. Expected
 * bytes are written by hand from the spec; the SM4 C16 values were computed with the openssl CLI.
 */
#include "sim_test.h"

#define SEL_APP "00A4040006D15600000590"
#define FCI_DES "6F108406D15600000590A5069F0C03860101"
#define FCI_SM4 "6F108406D15600000590A5069F0C03860103"
#define DIVS "0011223344556677" "3333303130307378"   /* cardDiv || cityDiv of §12.8 */

static void test_des_vectors(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_PSAM, NULL, NULL);

	(void)state;
	TX(t, SEL_APP, FCI_DES "9000");
	/* External auth cryptogram: 48/12, R = X = 1122334455667788. */
	TX(t, "BFDE481218" DIVS "1122334455667788", "9000");
	TX(t, "80FA0000081122334455667788", "6108");
	TX(t, "00C0000008", "4BA5C1F9D6C57F0F" "9000");
	TX(t, "00C0000008", "6985");
	/* Internal auth: 47/11 with P as R, X = A1..A8. */
	TX(t, "BFDE471118" DIVS "0102030405060708", "9000");
	TX(t, "80FA000008A1A2A3A4A5A6A7A8", "6108");
	TX(t, "00C0000008", "D2FFA2E969F241C5" "9000");
	/* MAC of the APPEND RECORD vector with the STK (46/15), IV R[0..3] || 00^4. */
	TX(t, "BFDE461510" DIVS, "9000");
	TX(t, "80FA050017" "1122334400000000" "04E200400E40330102030405060708", "F45CDC9E" "9000");
	/* PIN block with the PUK (43/17). */
	TX(t, "BFDE431710" DIVS, "9000");
	TX(t, "80FA0100080312345680000000", "DA44BA6FAA847AB5" "9000");
	TX(t, "80FA0100100312345680000000" "0312345680000000", "DA44BA6FAA847AB5DA44BA6FAA847AB5" "9000");
	/* The terminal number, BCD. */
	TX(t, "00B0960006", "330100000001" "9000");
	TX(t, "00B0960000", "330100000001" "9000");
	TX(t, "00B0960203", "000000" "9000");
	TX(t, "00B0000004", "33010000" "9000");               /* EF16 is now current */
	TX(t, "00B0960700", "6B00");
	TX(t, "00B0950006", "6A82");
	TX(t, "00B0B60006", "6A86");
	TX(t, "00B096000100", "6700");
	TX(t, "00B09600", "6700");
	sim_token_free(t);
}

static void test_sm4_vectors(void **state)
{
	struct sim_token *t = th_vector_token(3, SIM_ROLE_PSAM, NULL, NULL);

	(void)state;
	TX(t, SEL_APP, FCI_SM4 "9000");
	TX(t, "BFDE481220" DIVS "1122334455667788" "0000000000000000", "9000");
	/* C16 = SM4(Ks, X || 00^8); the terminal folds it to 5E581E4BB536B207 (§12.8). */
	TX(t, "80FA0000101122334455667788" "0000000000000000", "8FD30A6E63E01210D18B1425D6D6A017" "9000");
	TX(t, "BFDE471120" DIVS "0102030405060708" "0000000000000000", "9000");
	/* Folds to D9B357F70108DCD8 (§12.8). */
	TX(t, "80FA000010A1A2A3A4A5A6A7A8" "0000000000000000", "2E417F1DD7344C62F7F228EAD63C90BA" "9000");
	TX(t, "BFDE461510" DIVS, "9000");
	TX(t, "80FA05001F" "11223344556677880000000000000000" "04E200400E40330102030405060708",
	   "F0BBB681" "9000");
	TX(t, "BFDE431710" DIVS, "9000");
	TX(t, "80FA01001003123456800000000000000000000000", "83C3ED41A77006B703C3722B4878B665" "9000");
	TX(t, "00C0000010", "6985");                          /* SM4 CIPHER answers directly */
	sim_token_free(t);
}

static void test_errors(void **state)
{
	struct sim_token *t = th_vector_token(2, SIM_ROLE_PSAM, NULL, NULL);

	(void)state;
	TX(t, "BFDE481218" DIVS "1122334455667788", "6A88");   /* no application selected */
	TX(t, "00B0960006", "330100000001" "9000");           /* the terminal number needs none */
	TX(t, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", "6A82");   /* a card's SSSE: no */
	TX(t, "00A4040006D15600000503", "6A82");
	TX(t, "00A4040C06D15600000590", "9000");
	TX(t, "00A4040406D15600000590", "6A86");
	TX(t, "80FA0000081122334455667788", "6985");          /* nothing delivered */
	TX(t, "80FA050008" "1122334400000000", "6985");
	TX(t, "80FA0100080312345680000000", "6985");
	TX(t, "BFDE481318" DIVS "1122334455667788", "9000");   /* 48/13 exists (EF0D key) */
	TX(t, "BFDE489918" DIVS "1122334455667788", "6A88");   /* unknown index */
	TX(t, "BFDE491218" DIVS "1122334455667788", "6A88");   /* unknown usage */
	TX(t, "BFDE481220" DIVS "1122334455667788" "0000000000000000", "6700");   /* SM4 Lc on DES */
	TX(t, "BFDE481208" "0011223344556677", "6700");
	TX(t, "BFDE481210" DIVS, "9000");
	TX(t, "80FA0000081122334455667788", "6985");          /* K_card only: no CIPHER */
	TX(t, "80FA050007" "11223344000000", "6700");         /* shorter than the IV */
	TX(t, "80FA050008" "1122334400000000", "9CAB532B" "9000");   /* empty data: one pad block */
	TX(t, "80FA010007" "03123456800000", "6700");
	TX(t, "80FA0200081122334455667788", "6A86");
	TX(t, "80FA0001081122334455667788", "6A86");
	TX(t, "BFDE481218" DIVS "1122334455667788", "9000");
	TX(t, "80FA0000101122334455667788" "0000000000000000", "6700");   /* SM4 Lc on DES */
	TX(t, "80FA0000081122334455667788", "6108");
	TX(t, SEL_APP, FCI_DES "9000");                       /* reselecting forgets the keys */
	TX(t, "80FA0000081122334455667788", "6985");
	TX(t, "BFDE481218" DIVS "1122334455667788", "9000");
	sim_token_reset(t);                                   /* so does a reset */
	TX(t, "BFDE481218" DIVS "1122334455667788", "6A88");
	TX(t, SEL_APP, FCI_DES "9000");
	TX(t, "00A40000023F00", "9000");                      /* MF: the application is left */
	TX(t, "BFDE481218" DIVS "1122334455667788", "6A88");
	TX(t, "00A4000002DF01", "6A82");
	TX(t, "00A4020002EF05", "6A86");
	TX(t, "80DE481218" DIVS "1122334455667788", "6E00");
	TX(t, "BFFA0000081122334455667788", "6E00");
	TX(t, "0084000008", "6D00");                          /* a PSAM has no challenge here */
	TX(t, "04DC012C00", "6E00");
	TX(t, "00B2012C00", "6D00");
	sim_token_free(t);
	t = th_vector_token(3, SIM_ROLE_PSAM, NULL, NULL);
	TX(t, SEL_APP, FCI_SM4 "9000");
	TX(t, "BFDE481218" DIVS "1122334455667788", "6700");   /* DES Lc on SM4 */
	TX(t, "BFDE481220" DIVS "1122334455667788" "0000000000000000", "9000");
	TX(t, "80FA0000081122334455667788", "6700");
	sim_token_free(t);
}

/* A PSAM holds the set's master keys, whatever the card's wrong_keys switch says. */
static void test_wrong_keys_card_vs_psam(void **state)
{
	struct sim_token *psam = th_vector_token(2, SIM_ROLE_PSAM, NULL, "\"wrong_keys\":true");
	uint8_t atr[SIM_ATR_MAX];

	(void)state;
	TX(psam, SEL_APP, FCI_DES "9000");
	TX(psam, "BFDE471118" DIVS "0102030405060708", "9000");
	TX(psam, "80FA000008A1A2A3A4A5A6A7A8", "6108");
	TX(psam, "00C0000008", "D2FFA2E969F241C5" "9000");
	assert_int_equal(sim_token_atr(psam, atr), 16);
	assert_memory_equal(atr, "\x3B\x6C\x00\x00" "PSAM-DES-001", 16);
	sim_token_free(psam);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_des_vectors),
		cmocka_unit_test(test_sm4_vectors),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_wrong_keys_card_vs_psam),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
