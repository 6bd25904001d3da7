/*
 * Unit tests of src/psam.c against scripted PSAMs: psam_probe's role decision, and the commands
 * of the key provider written by hand from spec §12.6 (DELIVER KEY, CIPHER with 61 08 and GET
 * RESPONSE for DES, the SM4 fold, MAC, ENCRYPT, terminal number), PSAM errors and releases.
 * The simulator-backed PSAM tests are in test_ssc_sim.c.
 */
#include "test_card_util.h"

#include "config.h"
#include "psam.h"

#define END { NULL, NULL, 0 }
#define SELECT_PSAM "00A4040006D15600000590"
#define PSAM_FCI(alg) "6F0FA50D9F0C038601" alg "8801018402D1569000"
/* §12.8 factors: cardDiv 0011223344556677, cityDiv "330100sx". */
#define DIVS "0011223344556677" "3333303130307378"

struct src {
	struct psam_source ps;
	struct tu_script s;
	unsigned algs;
	int acquired, released, broken;
	int acquire_rc;
};

static int src_acquire(void *ctx, enum ssc_alg alg, int64_t deadline_ms, struct card_io **io)
{
	struct src *s = ctx;

	(void)deadline_ms;
	if (s->acquire_rc)
		return s->acquire_rc;
	if (!s->algs)
		return SSC_ENOPSAM;
	if (!(s->algs & (1u << alg)))
		return SSC_EPSAMALGO;
	s->acquired++;
	*io = &s->s.io;
	return 0;
}

static void src_release(void *ctx, struct card_io *io, int broken)
{
	struct src *s = ctx;

	assert_ptr_equal(io, &s->s.io);
	s->released++;
	s->broken = broken;
}

static unsigned src_algorithms(void *ctx)
{
	return ((struct src *)ctx)->algs;
}

static void src_init(struct src *s, const struct tu_step *steps, unsigned algs)
{
	memset(s, 0, sizeof(*s));
	tu_script_init(&s->s, steps);
	s->algs = algs;
	s->ps.acquire = src_acquire;
	s->ps.release = src_release;
	s->ps.algorithms = src_algorithms;
	s->ps.ctx = s;
}

static void divs(struct keyprov_div *d)
{
	tu_unhex("0011223344556677", d->card_div, 8);
	tu_unhex("3333303130307378", d->city_div, 8);
}

static void test_probe(void **state)
{
	static const struct tu_step des[] = {
		{ SELECT_PSAM, PSAM_FCI("01"), 0 },
		{ "00B0960006", "1234567890129000", 0 },
		END,
	};
	static const struct tu_step sm4[] = {
		{ SELECT_PSAM, PSAM_FCI("03"), 0 },
		{ "00B0960006", "0000000000019000", 0 },
		END,
	};
	static const struct tu_step user[] = { { SELECT_PSAM, "6A82", 0 }, END };
	static const struct tu_step ssf33[] = { { SELECT_PSAM, PSAM_FCI("02"), 0 }, END };
	static const struct tu_step no9f0c[] = {
		{ SELECT_PSAM, "6F078402D1568801019000", 0 },
		{ "00B0960006", "6A82", 0 },
		END,
	};
	static const struct tu_step nofci[] = { { SELECT_PSAM, "9000", 0 }, END };
	static const struct tu_step gone[] = { { SELECT_PSAM, NULL, SSC_ECARDREMOVED }, END };
	struct tu_script s;
	enum ssc_alg alg = SSC_ALG_NONE;
	char term[13] = "";

	(void)state;
	tu_script_init(&s, des);
	assert_int_equal(psam_probe(&s.io, &alg, term), 0);
	assert_int_equal(alg, SSC_ALG_DES);
	assert_string_equal(term, "123456789012");
	tu_script_done(&s);

	tu_script_init(&s, sm4);
	assert_int_equal(psam_probe(&s.io, &alg, term), 0);
	assert_int_equal(alg, SSC_ALG_SM4);
	assert_string_equal(term, "000000000001");
	tu_script_done(&s);

	tu_script_init(&s, user);
	assert_int_equal(psam_probe(&s.io, &alg, term), SSC_ENOTFOUND);
	tu_script_done(&s);

	tu_script_init(&s, ssf33);
	assert_int_equal(psam_probe(&s.io, &alg, term), SSC_EPSAMALGO);
	tu_script_done(&s);

	tu_script_init(&s, no9f0c);
	assert_int_equal(psam_probe(&s.io, &alg, term), 0);
	assert_int_equal(alg, SSC_ALG_DES);
	assert_string_equal(term, "000000000000");
	tu_script_done(&s);

	tu_script_init(&s, nofci);
	assert_int_equal(psam_probe(&s.io, &alg, term), SSC_ENOTFOUND);
	tu_script_init(&s, gone);
	assert_int_equal(psam_probe(&s.io, &alg, term), SSC_ECARDREMOVED);
}

static void test_cryptogram_des(void **state)
{
	/* DELIVER KEY 48/12 with cardDiv ‖ cityDiv ‖ R (Lc 18), CIPHER X (Lc 08) -> 61 08. */
	static const struct tu_step steps[] = {
		{ "BFDE481218" DIVS "1122334455667788", "9000", 0 },
		{ "80FA0000081122334455667788", "6108", 0 },
		{ "00C0000008", "4BA5C1F9D6C57F0F9000", 0 },
		END,
	};
	struct config cfg;
	struct src s;
	struct keyprov *kp;
	struct keyprov_div d;
	struct ssc_diag diag;
	TU_HEX(r, "1122334455667788");
	TU_HEX(want, "4BA5C1F9D6C57F0F");
	uint8_t c[8];

	(void)state;
	config_defaults(&cfg);
	src_init(&s, steps, 1u << SSC_ALG_DES);
	divs(&d);
	ssc_diag_init(&diag);
	assert_int_equal(psam_keyprov_new(&s.ps, &cfg, &kp), 0);
	assert_string_equal(kp->ops->name, "psam");
	assert_int_equal(kp->ops->available(kp, SSC_ALG_DES), 0);
	assert_int_equal(kp->ops->available(kp, SSC_ALG_SM4), SSC_EPSAMALGO);
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_DES, &cfg.key_write_ssse, &d, r, r, c,
					     INT64_MAX, &diag), 0);
	assert_memory_equal(c, want, 8);
	assert_int_equal(s.acquired, 1);
	assert_int_equal(s.released, 1);
	assert_int_equal(s.broken, 0);
	tu_script_done(&s.s);
	/* Asking for SM4 from a DES-only desk never touches the PSAM. */
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_SM4, &cfg.key_write_ssse, &d, r, r, c,
					     INT64_MAX, &diag), SSC_EPSAMALGO);
	assert_int_equal(s.released, 1);
	keyprov_free(kp);
	keyprov_free(NULL);
}

static void test_cryptogram_sm4(void **state)
{
	/* SM4: R ‖ 00⁸ (Lc 20), CIPHER X ‖ 00⁸ (Lc 10) -> C16 + 9000; the terminal folds. */
	static const struct tu_step steps[] = {
		{ "BFDE471120" DIVS "0102030405060708" "0000000000000000", "9000", 0 },
		{ "80FA000010A1A2A3A4A5A6A7A80000000000000000",
		  "000102030405060708090A0B0C0D0E0F9000", 0 },
		END,
	};
	struct config cfg;
	struct src s;
	struct keyprov *kp;
	struct keyprov_div d;
	struct ssc_diag diag;
	TU_HEX(p, "0102030405060708");
	TU_HEX(x, "A1A2A3A4A5A6A7A8");
	TU_HEX(want, "0808080808080808");   /* i ^ (8 + i) = 8 for i = 0..7 */
	uint8_t c[8];

	(void)state;
	config_defaults(&cfg);
	src_init(&s, steps, 1u << SSC_ALG_SM4);
	divs(&d);
	ssc_diag_init(&diag);
	assert_int_equal(psam_keyprov_new(&s.ps, &cfg, &kp), 0);
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_SM4, &cfg.key_internal, &d, p, x, c,
					     INT64_MAX, &diag), 0);
	assert_memory_equal(c, want, 8);
	tu_script_done(&s.s);
	keyprov_free(kp);
}

static void test_mac_encrypt_terminal(void **state)
{
	static const struct tu_step steps[] = {
		/* MAC: DELIVER KEY 46/15 with the factors only (Lc 10), then IV ‖ data. */
		{ "BFDE461510" DIVS, "9000", 0 },
		{ "80FA050017" "1122334400000000" "04E200400E40330102030405060708", "F45CDC9E9000",
		  0 },
		/* ENCRYPT under the PUK 43/17: the PIN block of §12.8. */
		{ "BFDE431710" DIVS, "9000", 0 },
		{ "80FA010008" "0312345680000000", "DA44BA6FAA847AB59000", 0 },
		{ "00B0960006", "9999000000019000", 0 },
		END,
	};
	struct config cfg;
	struct src s;
	struct keyprov *kp;
	struct keyprov_div d;
	struct ssc_diag diag;
	TU_HEX(iv, "1122334400000000");
	TU_HEX(data, "04E200400E40330102030405060708");
	TU_HEX(blk, "0312345680000000");
	TU_HEX(want_mac, "F45CDC9E");
	TU_HEX(want_enc, "DA44BA6FAA847AB5");
	uint8_t mac[4], enc[8];
	char term[13];

	(void)state;
	config_defaults(&cfg);
	src_init(&s, steps, 1u << SSC_ALG_DES);
	divs(&d);
	ssc_diag_init(&diag);
	assert_int_equal(psam_keyprov_new(&s.ps, &cfg, &kp), 0);
	assert_int_equal(kp->ops->mac(kp, SSC_ALG_DES, &cfg.key_stk, &d, iv, data, data_len, mac,
				      INT64_MAX, &diag), 0);
	assert_memory_equal(mac, want_mac, 4);
	assert_int_equal(kp->ops->encrypt(kp, SSC_ALG_DES, &cfg.key_pin_unblock, &d, blk, 8, enc,
					  INT64_MAX, &diag), 0);
	assert_memory_equal(enc, want_enc, 8);
	/* The PIN block must never reach the APDU log. */
	assert_true(s.s.last_flags & CARDIO_SECRET);
	assert_int_equal(kp->ops->terminal_number(kp, SSC_ALG_DES, term, INT64_MAX, &diag), 0);
	assert_string_equal(term, "999900000001");
	assert_int_equal(kp->ops->encrypt(kp, SSC_ALG_DES, &cfg.key_pin_unblock, &d, blk, 7, enc,
					  INT64_MAX, &diag), SSC_EINVAL);
	assert_int_equal(s.released, 3);
	tu_script_done(&s.s);
	keyprov_free(kp);
}

static void test_no_terminal_number(void **state)
{
	static const struct tu_step steps[] = { { "00B0960006", "6A82", 0 }, END };
	struct config cfg;
	struct src s;
	struct keyprov *kp;
	struct ssc_diag diag;
	char term[13] = "x";

	(void)state;
	config_defaults(&cfg);
	src_init(&s, steps, 1u << SSC_ALG_SM4);
	ssc_diag_init(&diag);
	assert_int_equal(psam_keyprov_new(&s.ps, &cfg, &kp), 0);
	assert_int_equal(kp->ops->terminal_number(kp, SSC_ALG_SM4, term, INT64_MAX, &diag), 0);
	assert_string_equal(term, "000000000000");
	assert_int_equal(s.released, 1);
	tu_script_done(&s.s);
	keyprov_free(kp);
}

static void test_errors(void **state)
{
	static const struct tu_step no_key[] = {
		{ "BFDE481A18*", "6A88", 0 },
		END,
	};
	static const struct tu_step removed[] = {
		{ "BFDE481A18*", "9000", 0 },
		{ "80FA000008*", NULL, SSC_ECARDREMOVED },
		END,
	};
	static const struct tu_step short_c[] = {
		{ "BFDE481A18*", "9000", 0 },
		{ "80FA000008*", "6107", 0 },
		{ "00C0000007", "010203040506079000", 0 },
		END,
	};
	static const struct tu_step none[] = { END };
	struct config cfg;
	struct src s;
	struct keyprov *kp;
	struct keyprov_div d;
	struct ssc_diag diag;
	uint8_t r[8] = { 0 }, c[8];

	(void)state;
	config_defaults(&cfg);
	divs(&d);
	src_init(&s, no_key, 1u << SSC_ALG_DES);
	ssc_diag_init(&diag);
	assert_int_equal(psam_keyprov_new(&s.ps, &cfg, &kp), 0);
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_DES, &cfg.key_read_auth, &d, r, r, c,
					     INT64_MAX, &diag), SSC_EPSAM);
	assert_int_equal(diag.sw, 0x6A88);
	assert_int_equal(s.released, 1);
	assert_int_equal(s.broken, 0);
	tu_script_done(&s.s);
	keyprov_free(kp);

	src_init(&s, removed, 1u << SSC_ALG_DES);
	assert_int_equal(psam_keyprov_new(&s.ps, &cfg, &kp), 0);
	ssc_diag_init(&diag);
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_DES, &cfg.key_read_auth, &d, r, r, c,
					     INT64_MAX, &diag), SSC_EPSAM);
	assert_non_null(strstr(diag.msg, "PSAM"));   /* the PSAM's failure, not the user card's */
	assert_int_equal(s.broken, 1);   /* the core must re-probe it */
	keyprov_free(kp);

	src_init(&s, short_c, 1u << SSC_ALG_DES);
	assert_int_equal(psam_keyprov_new(&s.ps, &cfg, &kp), 0);
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_DES, &cfg.key_read_auth, &d, r, r, c,
					     INT64_MAX, &diag), SSC_EPSAM);
	keyprov_free(kp);

	src_init(&s, none, 0);
	assert_int_equal(psam_keyprov_new(&s.ps, &cfg, &kp), 0);
	assert_int_equal(kp->ops->available(kp, SSC_ALG_DES), SSC_ENOPSAM);
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_DES, &cfg.key_read_auth, &d, r, r, c,
					     INT64_MAX, &diag), SSC_ENOPSAM);
	s.algs = 1u << SSC_ALG_DES;
	s.acquire_rc = SSC_ETIMEDOUT;
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_DES, &cfg.key_read_auth, &d, r, r, c,
					     INT64_MAX, &diag), SSC_ETIMEDOUT);
	assert_int_equal(s.released, 0);
	keyprov_free(kp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_cryptogram_des),
		cmocka_unit_test(test_cryptogram_sm4),
		cmocka_unit_test(test_mac_encrypt_terminal),
		cmocka_unit_test(test_no_terminal_number),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
