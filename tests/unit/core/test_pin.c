/*
 * Tests of the PIN operations (card.verify_pin, change_pin, reload_pin, unblock_pin) in-process
 * against the simulator's card OS and PSAM (firmware-stubs): right, wrong (the counter falls),
 * blocked, changed, reloaded and unblocked, on generation 2 (DES) and 3 (SM4) cards and the
 * pin-blocked profile; the format and policy checks before any APDU; PINs masked and wiped.
 * Every expected PIN and try count is written by hand from the profile files and spec §12.5.
 */
#include "test_card_util.h"

#include "ssc.h"

/* Runs a PIN operation and expects rc; the card is reset after every PIN operation. */
static void pin_op(struct tu_sim *s, const char *method, const char *params, int rc)
{
	int got = tu_sim_op(s, method, params);

	if (got != rc)
		fail_msg("%s %s: %s (%s), expected %s", method, params, ssc_strerror_name(got),
			 s->d.msg, ssc_strerror_name(rc));
}

static void verify_ok(struct tu_sim *s, const char *pin)
{
	char p[64];

	snprintf(p, sizeof(p), "{\"pin\": \"%s\"}", pin);
	pin_op(s, "card.verify_pin", p, 0);
	assert_true(json_is_true(json_object_get(s->result, "verified")));
	assert_int_equal(s->reset, 1);
}

static void verify_wrong(struct tu_sim *s, const char *pin, int left)
{
	char p[64];

	snprintf(p, sizeof(p), "{\"pin\": \"%s\"}", pin);
	pin_op(s, "card.verify_pin", p, left ? SSC_EPINWRONG : SSC_EPINBLOCKED);
	assert_int_equal(s->d.retries_left, left);
	assert_int_equal(ssc_std_code(left ? SSC_EPINWRONG : SSC_EPINBLOCKED, s->d.sw),
			 left ? -51 : -52);
	assert_null(s->result);
	assert_int_equal(s->reset, 1);
}

/* gen2: PIN 123456, 3 tries (the simulator's default, spec §12.5). */
static void test_verify_gen2(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "gen2", 1);
	verify_ok(&s, "123456");
	/* VERIFY carries the PIN in BCD, and the body is secret for the APDU log. */
	assert_true(tu_sim_sent(&s.card, "0020000003123456"));
	assert_int_equal(tu_sim_flags(&s.card, "00200000") & CARDIO_SECRET, CARDIO_SECRET);
	/* No key was needed: no PSAM was asked. */
	assert_int_equal(s.acquired, 0);

	verify_wrong(&s, "654321", 2);
	verify_wrong(&s, "000000", 1);
	/* A right PIN resets the counter. */
	verify_ok(&s, "123456");
	verify_wrong(&s, "654321", 2);
	verify_wrong(&s, "654321", 1);
	verify_wrong(&s, "654321", 0);          /* 63C0: the last try */
	/* Blocked: even the right PIN is refused (6983). */
	pin_op(&s, "card.verify_pin", "{\"pin\": \"123456\"}", SSC_EPINBLOCKED);
	assert_int_equal(s.d.sw, 0x6983);
	assert_int_equal(s.d.retries_left, 0);
	tu_sim_close(&s);
}

static void test_change_gen2(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "gen2", 1);
	pin_op(&s, "card.change_pin", "{\"old_pin\": \"123456\", \"new_pin\": \"2468\"}", 0);
	assert_true(json_is_true(json_object_get(s.result, "changed")));
	assert_true(tu_sim_sent(&s.card, "805E010006123456FF2468"));   /* Lc 3 + 1 + 2 */
	assert_int_equal(tu_sim_flags(&s.card, "805E0100") & CARDIO_SECRET, CARDIO_SECRET);
	verify_ok(&s, "2468");
	verify_wrong(&s, "123456", 2);
	/* A wrong old PIN counts like a wrong VERIFY. */
	pin_op(&s, "card.change_pin", "{\"old_pin\": \"1111\", \"new_pin\": \"97531\"}",
	       SSC_EPINWRONG);
	assert_int_equal(s.d.retries_left, 1);
	/* An odd length: the last byte padded with F. */
	pin_op(&s, "card.change_pin", "{\"old_pin\": \"2468\", \"new_pin\": \"97531\"}", 0);
	assert_true(tu_sim_sent(&s.card, "805E0100062468FF97531F"));
	verify_ok(&s, "97531");
	tu_sim_close(&s);
}

/* Reload and unblock through the PSAM, on a card whose PIN is blocked (pin-blocked profile). */
static void test_blocked_reload_unblock(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "pin-blocked", 1);
	pin_op(&s, "card.verify_pin", "{\"pin\": \"123456\"}", SSC_EPINBLOCKED);
	assert_int_equal(s.d.retries_left, 0);

	pin_op(&s, "card.unblock_pin", "{\"new_pin\": \"135790\"}", 0);
	assert_true(json_is_true(json_object_get(s.result, "unblocked")));
	assert_true(tu_sim_sent(&s.card, "842400000C"));   /* DES: one 8-byte block + MAC4 */
	assert_int_equal(tu_sim_flags(&s.card, "84240000") & CARDIO_SECRET, CARDIO_SECRET);
	assert_true(tu_sim_sent(&s.psam, "80FA0100"));     /* the PIN block, encrypted by the PSAM */
	assert_true(tu_sim_sent(&s.psam, "BFDE4317"));     /* with the PUK (§12.4) */
	assert_int_equal(tu_sim_flags(&s.psam, "80FA0100") & CARDIO_SECRET, CARDIO_SECRET);
	assert_int_equal(tu_sim_flags(&s.psam, "80FA0500") & CARDIO_SECRET, CARDIO_SECRET);
	assert_int_equal(s.acquired, s.released);
	verify_ok(&s, "135790");
	verify_wrong(&s, "123456", 2);
	verify_wrong(&s, "123456", 1);
	verify_wrong(&s, "123456", 0);

	/* RELOAD works on a blocked PIN too, and resets the counter. */
	pin_op(&s, "card.reload_pin", "{\"new_pin\": \"11223344\"}", 0);
	assert_true(json_is_true(json_object_get(s.result, "reloaded")));
	assert_true(tu_sim_sent(&s.card, "805E000008"));   /* 4 PIN bytes + MAC4 */
	assert_true(tu_sim_sent(&s.psam, "BFDE4416"));     /* the PIN reload key (§12.4) */
	verify_ok(&s, "11223344");
	verify_wrong(&s, "135790", 2);
	tu_sim_close(&s);
}

/* gen3 (SM4, PIN 888888): the same operations with the SM4 PSAM. */
static void test_gen3(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "gen3", 1);
	verify_ok(&s, "888888");
	verify_wrong(&s, "123123", 2);
	pin_op(&s, "card.change_pin", "{\"old_pin\": \"888888\", \"new_pin\": \"765432\"}", 0);
	verify_ok(&s, "765432");
	pin_op(&s, "card.unblock_pin", "{\"new_pin\": \"24680\"}", 0);
	assert_true(tu_sim_sent(&s.card, "8424000014"));   /* SM4: one 16-byte block + MAC4 */
	verify_ok(&s, "24680");
	pin_op(&s, "card.reload_pin", "{\"new_pin\": \"13572468\"}", 0);
	verify_ok(&s, "13572468");
	verify_wrong(&s, "24680", 2);
	tu_sim_close(&s);
}

/* A card whose keys are not the PSAM's: RELOAD and UNBLOCK are refused (6988), no try counted. */
static void test_wrong_key(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "gen2-wrongkey", 1);
	pin_op(&s, "card.reload_pin", "{\"new_pin\": \"112233\"}", SSC_EAUTHFAILED);
	assert_int_equal(s.d.sw, 0x6988);
	pin_op(&s, "card.unblock_pin", "{\"new_pin\": \"112233\"}", SSC_EAUTHFAILED);
	assert_int_equal(s.d.sw, 0x6988);
	verify_ok(&s, "123456");   /* the PIN is unchanged, its counter full */
	verify_wrong(&s, "112233", 2);
	tu_sim_close(&s);

	/* Without a PSAM: refused before the card is asked anything about the PIN. */
	tu_sim_open(&s, "gen2", 0);
	pin_op(&s, "card.reload_pin", "{\"new_pin\": \"112233\"}", SSC_ENOPSAM);
	assert_false(tu_sim_sent(&s.card, "805E"));
	assert_false(tu_sim_sent(&s.card, "0084"));
	tu_sim_close(&s);
}

/* Format and policy: refused before any APDU (check), with the standard codes. */
static void test_format_and_policy(void **state)
{
	static const struct {
		const char *method, *params;
		int rc, std;
	} cases[] = {
		{ "card.verify_pin", "{\"pin\": \"12345a\"}", SSC_EPINFORMAT, -33 },
		{ "card.verify_pin", "{\"pin\": \"123\"}", SSC_EPINFORMAT, -33 },
		{ "card.verify_pin", "{\"pin\": \"1234567890123\"}", SSC_EPINFORMAT, -33 },
		{ "card.verify_pin", "{\"pin\": \"\"}", SSC_EPINFORMAT, -33 },
		{ "card.verify_pin", "{\"pin\": \"12 34\"}", SSC_EPINFORMAT, -33 },
		{ "card.verify_pin", "{\"pin\": 123456}", SSC_EINVAL, -14 },
		{ "card.verify_pin", "{}", SSC_EINVAL, -14 },
		{ "card.verify_pin", "{\"pin\": \"123456\", \"new_pin\": \"1\"}", SSC_EINVAL, -14 },
		{ "card.change_pin", "{\"old_pin\": \"123456\"}", SSC_EINVAL, -14 },
		{ "card.change_pin", "{\"old_pin\": \"123456\", \"new_pin\": \"12x4\"}",
		  SSC_EPINFORMAT, -33 },
		/* An initial PIN ([card] initial_pins: 123456, 888888) is no new PIN: −36. */
		{ "card.change_pin", "{\"old_pin\": \"654321\", \"new_pin\": \"123456\"}",
		  SSC_EPININITIAL, -36 },
		{ "card.reload_pin", "{\"new_pin\": \"123456\"}", SSC_EPININITIAL, -36 },
		{ "card.unblock_pin", "{\"new_pin\": \"123456\"}", SSC_EPININITIAL, -36 },
		/* ... and so is the other one in use ([card] initial_pins, 888888 too). */
		{ "card.change_pin", "{\"old_pin\": \"654321\", \"new_pin\": \"888888\"}",
		  SSC_EPININITIAL, -36 },
		{ "card.reload_pin", "{\"new_pin\": \"888888\"}", SSC_EPININITIAL, -36 },
		{ "card.change_pin", "{\"old_pin\": \"654321\", \"new_pin\": \"654321\"}",
		  SSC_EPINSAME, -36 },
		{ "card.reload_pin", "{\"new_pin\": \"1234\", \"old_pin\": \"1234\"}", SSC_EINVAL,
		  -14 },
		{ "card.unblock_pin", "{\"new_pin\": \"99999999999999\"}", SSC_EPINFORMAT, -33 },
	};
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "gen2", 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tu_sim_op(&s, cases[i].method, cases[i].params);

		if (rc != cases[i].rc)
			fail_msg("%s %s: %s, expected %s", cases[i].method, cases[i].params,
				 ssc_strerror_name(rc), ssc_strerror_name(cases[i].rc));
		assert_int_equal(ssc_std_code(rc, 0), cases[i].std);
		/* The message never echoes a PIN. */
		assert_null(strstr(s.d.msg, "1234"));
		assert_null(strstr(s.d.msg, "6543"));
	}
	assert_int_equal(s.card.apdus, 0);

	/* Narrower lengths by configuration. */
	s.cfg.pin_min_len = 6;
	s.cfg.pin_max_len = 6;
	pin_op(&s, "card.verify_pin", "{\"pin\": \"12345\"}", SSC_EPINFORMAT);
	pin_op(&s, "card.verify_pin", "{\"pin\": \"1234567\"}", SSC_EPINFORMAT);
	assert_int_equal(s.card.apdus, 0);
	verify_ok(&s, "123456");

	/* refuse_initial_pin: VERIFY with the initial PIN is refused (−35), not sent. */
	s.cfg.refuse_initial_pin = 1;
	s.card.apdus = 0;
	pin_op(&s, "card.verify_pin", "{\"pin\": \"123456\"}", SSC_EPINNOTCHANGED);
	assert_int_equal(ssc_std_code(SSC_EPINNOTCHANGED, 0), -35);
	assert_int_equal(s.card.apdus, 0);
	/* ... while changing away from it stays possible. */
	pin_op(&s, "card.change_pin", "{\"old_pin\": \"123456\", \"new_pin\": \"314159\"}", 0);
	verify_ok(&s, "314159");
	tu_sim_close(&s);
}

/* The op wipes the PIN strings of its private params copy. */
static void test_params_wiped(void **state)
{
	const struct op_desc *op = ops_find("card.change_pin");
	struct op_call call;
	struct tu_sim s;
	json_t *p, *v;

	(void)state;
	tu_sim_open(&s, "gen2", 1);
	p = json_loads("{\"old_pin\": \"123456\", \"new_pin\": \"271828\"}", 0, NULL);
	assert_non_null(p);
	memset(&call, 0, sizeof(call));
	call.params = p;
	assert_int_equal(op->run(op, &s.env, &s.card.io, &call, &s.flags, &s.reset, &s.result,
				 &s.d), 0);
	v = json_object_get(p, "old_pin");
	assert_memory_equal(json_string_value(v), "\0\0\0\0\0\0", 6);
	v = json_object_get(p, "new_pin");
	assert_memory_equal(json_string_value(v), "\0\0\0\0\0\0", 6);
	json_decref(p);

	/* Also when the params are refused. */
	p = json_loads("{\"old_pin\": \"271828\", \"new_pin\": \"2718x8\"}", 0, NULL);
	call.params = p;
	assert_int_equal(op->run(op, &s.env, &s.card.io, &call, &s.flags, &s.reset, &s.result,
				 &s.d), SSC_EPINFORMAT);
	assert_memory_equal(json_string_value(json_object_get(p, "old_pin")), "\0\0\0\0\0\0", 6);
	json_decref(p);
	tu_sim_close(&s);
}

/* A spec 1.00 card: VERIFY works (no key needed); RELOAD needs authentication: refused. */
static void test_gen1(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "gen1", 1);
	verify_ok(&s, "123456");
	verify_wrong(&s, "123457", 2);
	pin_op(&s, "card.reload_pin", "{\"new_pin\": \"112233\"}", SSC_EUNSUPPORTED);
	assert_false(tu_sim_sent(&s.card, "805E"));
	tu_sim_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_gen2),
		cmocka_unit_test(test_change_gen2),
		cmocka_unit_test(test_blocked_reload_unblock),
		cmocka_unit_test(test_gen3),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_format_and_policy),
		cmocka_unit_test(test_params_wiped),
		cmocka_unit_test(test_gen1),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
