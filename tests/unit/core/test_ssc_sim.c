/*
 * Tests of the card layer (ssc.c, psam.c, the ops*.c) in-process against the simulator's card OS
 * (firmware-stubs, simcos): every profile in firmware-stubs/profiles is read with
 * card.read_basic and each field compared with values copied by hand from the profile file;
 * then the quirks (T=0 answers, tag-only reads, read authorisation and its memory, wrong keys,
 * bad 卡识别码 MAC), PSAM absence, answers corrupted on the way (SSC_EPROTO), and the PSAM
 * provider against the §12.8 vectors on a desk personalised with the vector keys.
 */
#include "test_card_util.h"

#include "../../../firmware-stubs/src/cos/sim_testhook.h"
#include "ssc.h"

struct expect {
	const char *profile;
	const char *region_code, *ssn, *card_number, *card_id, *name, *sex, *nation,
		*birth_place, *birth_date, *spec_version, *issue_date, *expiry_date;
	int expired;
	const char *atr_historical, *terminal_number, *algorithm;
	int apdus;   /* card APDUs of read_basic; 0 = not fixed by the profile */
};

/* Copied by hand from firmware-stubs/profiles/<profile>.json (ATR historical bytes: the ATR
 * without TS, T0, the interface bytes and TCK). */
static const struct expect expects[] = {
	{ "gen2", "330100", "330102199003071230", "X00000019", "330100D15600000500BF7C7AC9FC0FEC",
	  "张三", "1", "01", "330102", "19900307", "2.00", "20240101", "20340101", 0,
	  "0081544C92868433010000BF7C7A", "330100000001", "des", 13 },
	{ "gen3", "330200", "330203198511110029", "A12345674", "330200D156000005013C5A7E0A29D26E",
	  "阿卜杜热合曼·买买提艾力·吐尔逊江", "1", "05", "650102", "19851111", "3.00", "20250601",
	  "20350601", 0, "0081544C928684330200013C5A7E", "330200000001", "sm4", 13 },
	{ "gen3-readauth", "330200", "330203198511110029", "A12345674",
	  "330200D156000005013C5A7F8E4DC9A5", "阿卜杜热合曼·买买提艾力·吐尔逊江", "1", "05", "650102",
	  "19851111", "3.00", "20250601", "20350601", 0, "0081544C928684330200013C5A7F",
	  "330200000001", "sm4", 16 },
	{ "t0-quirks", "330100", "330106199202290028", "X00000027",
	  "330100D15600000500C0FFEE0BC88AE8", "李四", "2", "01", "330106", "19920229", "2.00",
	  "20240101", "20340101", 0, "0081544C92868433010000C0FFEE", "330100000001", "des", 0 },
	{ "expired", "330100", "330105197006150014", "X00000035",
	  "330100D15600000500E0E0E0779D0B5F", "王五", "1", "01", "330105", "19700615", "2.00",
	  "20100101", "20200101", 1, "0081544C92868433010000E0E0E0", "330100000001", "des", 13 },
	{ "gen1", "330100", "33010219700101011X", "X00000086", "330100D156000005001001002B87B98A",
	  "吴十", "1", "01", "330102", "19700101", "1.00", "20240101", "20340101", 0,
	  "0081544C92868433010000100100", "330100000001", "des", 12 },
	{ "gen2-tagmode", "330100", "330102198001010077", "X0000006X",
	  "330100D15600000500AB000198A52F9E", "孙八", "1", "02", "330102", "19800101", "2.00",
	  "20240101", "20340101", 0, "0081544C92868433010000AB0001", "330100000001", "des", 14 },
	{ "gen2-wrongkey", "330100", "330109199505050055", "X00000051",
	  "330100D15600000500BAD0BA38B7994D", "钱七", "1", "01", "330109", "19950505", "2.00",
	  "20240101", "20340101", 0, "0081544C92868433010000BAD0BA", "330100000001", "des", 13 },
	{ "gen2-badcardid", "330100", "330102198001010157", "X00000078",
	  "330100D15600000500BAD1D0629FC40C", "周九", "2", "01", "330102", "19800101", "2.00",
	  "20240101", "20340101", 0, "0081544C92868433010000BAD1D0", "330100000001", "des", 13 },
	{ "pin-blocked", "330100", "330108198812080042", "X00000043",
	  "330100D15600000500B10C4D49386A73", "赵六", "2", "01", "330108", "19881208", "2.00",
	  "20240101", "20340101", 0, "0081544C92868433010000B10C4D", "330100000001", "des", 13 },
};

static const char *str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (!v || !json_is_string(v))
		fail_msg("result field \"%s\" missing or not a string", k);
	return json_string_value(v);
}

static void check_basic(json_t *r, const struct expect *e, const char *term, const char *dev)
{
	char std[1024];

	assert_string_equal(str(r, "region_code"), e->region_code);
	assert_string_equal(str(r, "ssn"), e->ssn);
	assert_string_equal(str(r, "card_number"), e->card_number);
	assert_string_equal(str(r, "card_id"), e->card_id);
	assert_string_equal(str(r, "name"), e->name);
	assert_string_equal(str(r, "sex"), e->sex);
	assert_string_equal(str(r, "nation"), e->nation);
	assert_string_equal(str(r, "birth_place"), e->birth_place);
	assert_string_equal(str(r, "birth_date"), e->birth_date);
	assert_string_equal(str(r, "spec_version"), e->spec_version);
	assert_string_equal(str(r, "issue_date"), e->issue_date);
	assert_string_equal(str(r, "expiry_date"), e->expiry_date);
	assert_int_equal(json_is_true(json_object_get(r, "expired")), e->expired);
	assert_true(json_is_boolean(json_object_get(r, "expired")));
	assert_string_equal(str(r, "atr_historical"), e->atr_historical);
	assert_string_equal(str(r, "terminal_number"), term);
	assert_string_equal(str(r, "terminal_device"), dev);
	assert_string_equal(str(r, "algorithm"), e->algorithm);
	/* §5: region|ssn|card number|card id|name|ATR history|version|issued|expires|term|dev| */
	snprintf(std, sizeof(std), "%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|", e->region_code, e->ssn,
		 e->card_number, e->card_id, e->name, e->atr_historical, e->spec_version,
		 e->issue_date, e->expiry_date, term, dev);
	assert_string_equal(str(r, "standard"), std);
}

static void test_read_basic_profiles(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(expects) / sizeof(expects[0]); i++) {
		const struct expect *e = &expects[i];
		struct tu_sim s;
		int rc;

		tu_sim_open(&s, e->profile, 1);
		rc = tu_sim_op(&s, "card.read_basic", NULL);
		if (rc)
			fail_msg("%s: read_basic: %s: %s", e->profile, ssc_strerror_name(rc), s.d.msg);
		check_basic(s.result, e, e->terminal_number, "SIM0001");
		if (e->apdus && s.card.apdus != e->apdus)
			fail_msg("%s: %d card APDUs, expected %d", e->profile, s.card.apdus, e->apdus);
		tu_sim_close(&s);
	}
}

static void test_gen2_literal(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "gen2", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	assert_string_equal(str(s.result, "standard"),
			    "330100|330102199003071230|X00000019|330100D15600000500BF7C7AC9FC0FEC|"
			    "张三|0081544C92868433010000BF7C7A|2.00|20240101|20340101|330100000001|"
			    "SIM0001|");
	/* No read authorisation, no internal auth asked: no card key was used. */
	assert_int_equal(s.reset, 0);
	assert_false(tu_sim_sent(&s.card, "0084"));
	assert_false(tu_sim_sent(&s.card, "00A40200"));   /* never a SELECT of an EF */
	assert_false(tu_sim_sent(&s.card, "00A40000"));
	tu_sim_close(&s);
}

static void test_no_psam(void **state)
{
	struct tu_sim s;

	(void)state;
	/* No PSAM and none needed: the terminal number is all zeros. */
	tu_sim_open(&s, "gen2", 0);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	check_basic(s.result, &expects[0], "000000000000", "SIM0001");
	tu_sim_close(&s);

	/* A card that needs read authorisation, and no PSAM: -2201. */
	tu_sim_open(&s, "gen3-readauth", 0);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), SSC_ENOPSAM);
	assert_int_equal(ssc_std_code(SSC_ENOPSAM, s.d.sw), -2201);
	tu_sim_close(&s);

	/* A DES PSAM on a desk serving an SM4 card: -2202. */
	tu_sim_open(&s, "gen3-readauth", 1);
	s.psam_alg = SSC_ALG_DES;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), SSC_EPSAMALGO);
	assert_int_equal(ssc_std_code(SSC_EPSAMALGO, s.d.sw), -2202);
	tu_sim_close(&s);

	/* An SM4 PSAM exists but the card is DES: not needed, so zeros, no error. */
	tu_sim_open(&s, "gen2", 1);
	s.psam_alg = SSC_ALG_SM4;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	assert_string_equal(str(s.result, "terminal_number"), "000000000000");
	tu_sim_close(&s);
}

static void test_read_auth_memory(void **state)
{
	struct tu_sim s;
	int first;

	(void)state;
	tu_sim_open(&s, "gen3-readauth", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	assert_true(s.flags & CARD_FLAG_READ_AUTH);
	assert_true(tu_sim_sent(&s.card, "0082000A11"));   /* SM4: Lc 11, key 0A */
	assert_int_equal(s.reset, 1);
	first = s.card.apdus;
	assert_true(s.acquired >= 1);
	assert_int_equal(s.acquired, s.released);

	/* Same insertion: authenticate before reading, so no 6982 round trip. */
	s.card.apdus = 0;
	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"SSSE/EF06\", \"items\": [\"08\", \"0A\"]}"), 0);
	assert_true(tu_sim_sent(&s.card, "0082000A11"));
	assert_string_equal(str(json_object_get(s.result, "items"), "08"), "330203198511110029");
	assert_string_equal(str(json_object_get(s.result, "items"), "0A"), "1");
	/* SELECT, EF05 03 and 01 (factors), GET CHALLENGE, EXTERNAL AUTH, two reads. */
	assert_int_equal(s.card.apdus, 7);
	s.card.apdus = 0;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	assert_int_equal(s.card.apdus, first - 1);

	/* read_auth = never: refused with the card's 6982. */
	s.flags = 0;
	s.cfg.read_auth = READ_AUTH_NEVER;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), SSC_ESECURITY);
	assert_int_equal(s.d.sw, 0x6982);
	assert_int_equal(ssc_std_code(SSC_ESECURITY, s.d.sw), -27010);
	tu_sim_close(&s);

	/* read_auth = always on a card that does not need it: authenticates anyway (key 0A). */
	tu_sim_open(&s, "gen3", 1);
	s.cfg.read_auth = READ_AUTH_ALWAYS;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	assert_true(tu_sim_sent(&s.card, "0082000A11"));
	tu_sim_close(&s);
}

static void test_quirk_apdus(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "t0-quirks", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	assert_true(tu_sim_sent(&s.card, "00C00000"));      /* GET RESPONSE after 61xx */
	assert_true(tu_sim_sent(&s.card, "00B2072C0B"));    /* card number: Le 2 + 9 after 6C0B */
	assert_true(s.flags & CARD_FLAG_EXACT_LE);
	/*
	 * The same insertion again: every READ RECORD goes with its record's length at once, so
	 * no 6Cxx round: 13 commands (SELECT + 12 READ RECORD), each answered 61xx and fetched
	 * with GET RESPONSE = 26 (the minimum, docs/performance.md).
	 */
	s.card.apdus = 0;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	assert_int_equal(s.card.apdus, 26);
	assert_int_equal(tu_sim_count(&s.card, "00C00000"), 13);
	assert_int_equal(tu_sim_count(&s.card, "00B2072C"), 1);   /* only 00B2072C0B */
	assert_true(tu_sim_sent(&s.card, "00B2072C0B"));
	assert_true(tu_sim_sent(&s.card, "00B2023420"));          /* 姓名, EF06 record 2: 2 + 30 */
	assert_string_equal(str(s.result, "card_number"), "X00000027");
	tu_sim_close(&s);

	tu_sim_open(&s, "gen2-tagmode", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	/* One 6A86 in number mode, then every read by tag: 08 in EF06 is 00 B2 08 30. */
	assert_true(tu_sim_sent(&s.card, "00B2032C00"));
	assert_true(tu_sim_sent(&s.card, "00B2083000"));
	assert_false(tu_sim_sent(&s.card, "00B2013400"));
	/* Its FCI has no 9F0C: spec 2.00 means DES. */
	assert_string_equal(str(s.result, "algorithm"), "des");
	assert_true(s.flags & CARD_FLAG_TAG_MODE);
	/* The same insertion again: by tag from the first READ RECORD, 13 commands. */
	s.card.apdus = 0;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	assert_int_equal(s.card.apdus, 13);
	assert_false(tu_sim_sent(&s.card, "00B2032C00"));
	assert_true(tu_sim_sent(&s.card, "00B2032800"));          /* EF05 03 by tag */
	assert_string_equal(str(s.result, "card_number"), "X0000006X");
	tu_sim_close(&s);
}

static void test_internal_auth(void **state)
{
	static const char *const genuine[] = { "gen2", "gen3", "t0-quirks", "gen3-readauth" };
	struct tu_sim s;

	(void)state;
	for (size_t i = 0; i < sizeof(genuine) / sizeof(genuine[0]); i++) {
		tu_sim_open(&s, genuine[i], 1);
		if (tu_sim_op(&s, "card.read_basic", "{\"internal_auth\": true}") != 0)
			fail_msg("%s: %s", genuine[i], s.d.msg);
		assert_true(json_is_true(json_object_get(s.result, "genuine")));
		assert_true(tu_sim_sent(&s.card, "0088000010"));
		tu_sim_close(&s);
	}
	tu_sim_open(&s, "gen2-wrongkey", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", "{\"internal_auth\": true}"),
			 SSC_ENOTGENUINE);
	assert_int_equal(ssc_std_code(SSC_ENOTGENUINE, s.d.sw), -21);
	assert_null(s.result);
	tu_sim_close(&s);

	/* Internal authentication needs the PSAM. */
	tu_sim_open(&s, "gen2", 0);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", "{\"internal_auth\": true}"),
			 SSC_ENOPSAM);
	tu_sim_close(&s);

	/* And a spec 1.00 card cannot do it. */
	tu_sim_open(&s, "gen1", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", "{\"internal_auth\": true}"),
			 SSC_EUNSUPPORTED);
	tu_sim_close(&s);
}

static void test_card_id_mac(void **state)
{
	struct tu_sim s;

	(void)state;
	tu_sim_open(&s, "gen2", 1);
	tu_unhex("0123456789ABCDEFFEDCBA9876543210", s.cfg.card_id_mac_key, 16);
	s.cfg.card_id_mac_key_set = 1;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", "{\"verify_card_id\": true}"), 0);
	assert_true(json_is_true(json_object_get(s.result, "card_id_verified")));
	tu_sim_close(&s);

	tu_sim_open(&s, "gen2-badcardid", 1);
	tu_unhex("0123456789ABCDEFFEDCBA9876543210", s.cfg.card_id_mac_key, 16);
	s.cfg.card_id_mac_key_set = 1;
	assert_int_equal(tu_sim_op(&s, "card.read_basic", "{\"verify_card_id\": true}"),
			 SSC_EBADCARDDATA);
	assert_string_equal(s.d.msg, "card id MAC mismatch");
	tu_sim_close(&s);
}

static void test_read_items(void **state)
{
	struct tu_sim s;
	json_t *items, *txs, *t;

	(void)state;
	tu_sim_open(&s, "gen2", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"SSSE/EF05\", \"items\": [\"02\", \"04\", \"07\"]}"),
			 0);
	items = json_object_get(s.result, "items");
	assert_string_equal(str(items, "02"), "3");
	assert_string_equal(str(items, "04"), "330100000001");
	assert_string_equal(str(items, "07"), "X00000019");

	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"DF04/EF05\", \"items\": [\"30\", \"31\", \"32\", "
				   "\"33\", \"34\"]}"), 0);
	assert_string_equal(str(s.result, "file"), "DF04/EF05");
	items = json_object_get(s.result, "items");
	assert_string_equal(str(items, "30"), "330100");
	assert_string_equal(str(items, "31"), "11");
	assert_string_equal(str(items, "32"), "33010000000000000001");
	assert_string_equal(str(items, "33"), "H33010000001");
	assert_string_equal(str(items, "34"), "0");
	assert_true(tu_sim_sent(&s.card, "00A4040006D15600000503"));

	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"DF04/EF06\", \"items\": [\"41\"]}"), 0);
	assert_string_equal(str(json_object_get(s.result, "items"), "41"), "00");

	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"DF04/EF08\", \"items\": [\"40\"]}"), 0);
	txs = json_object_get(json_object_get(s.result, "items"), "40");
	assert_true(json_is_array(txs));
	assert_int_equal(json_array_size(txs), 2);
	t = json_array_get(txs, 0);   /* newest first */
	assert_string_equal(str(t, "time"), "20240315093000");
	assert_string_equal(str(t, "institution"), "H33010000001");
	assert_string_equal(str(t, "settlement_no"), "S2024031500000000002");
	assert_int_equal(json_integer_value(json_object_get(t, "total")), 12850);
	assert_int_equal(json_integer_value(json_object_get(t, "personal_account")), 2850);
	assert_int_equal(json_integer_value(json_object_get(t, "pooled")), 10000);
	t = json_array_get(txs, 1);
	assert_string_equal(str(t, "time"), "20240302151205");
	assert_string_equal(str(t, "institution"), "H33010000007");
	assert_int_equal(json_integer_value(json_object_get(t, "total")), 4600);
	assert_int_equal(json_integer_value(json_object_get(t, "pooled")), 0);

	/* DF01 exists but holds no records in v1: absent items are null. */
	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"DF01/EF05\", \"items\": [\"01\"]}"), 0);
	assert_true(json_is_null(json_object_get(json_object_get(s.result, "items"), "01")));
	assert_int_equal(s.reset, 0);
	tu_sim_close(&s);

	tu_sim_open(&s, "gen3", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"SSSE/EF0D\", \"items\": [\"EA\", \"eb\"]}"), 0);
	items = json_object_get(s.result, "items");
	assert_string_equal(str(items, "EA"), "P33020000001");
	assert_string_equal(str(items, "EB"), "330200");
	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"DF04/EF06\", \"items\": [\"41\"]}"), 0);
	assert_string_equal(str(json_object_get(s.result, "items"), "41"), "01");
	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"SSSE/EF06\", \"items\": [\"09\", \"4E\"]}"), 0);
	/* 姓名 alone holds the first 30 GBK bytes (15 of the 17 characters); 4E the rest. */
	assert_string_equal(str(json_object_get(s.result, "items"), "09"),
			    "阿卜杜热合曼·买买提艾力·吐尔");
	assert_string_equal(str(json_object_get(s.result, "items"), "4E"), "逊江");
	tu_sim_close(&s);

	/* EF0D does not exist on a generation 2 card. */
	tu_sim_open(&s, "gen2", 1);
	assert_int_equal(tu_sim_op(&s, "card.read_items",
				   "{\"file\": \"SSSE/EF0D\", \"items\": [\"EA\"]}"), SSC_ENOFILE);
	tu_sim_close(&s);
}

static void test_corrupted_answers(void **state)
{
	static const enum tu_corrupt modes[] = { TU_CORRUPT_TRUNCATE, TU_CORRUPT_SW,
						 TU_CORRUPT_SHORT, TU_CORRUPT_EMPTY,
						 TU_CORRUPT_GARBAGE };

	(void)state;
	/* Whichever of the 13 answers of a gen2 read_basic is damaged, the result is EPROTO. */
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		for (int at = 1; at <= 13; at++) {
			struct tu_sim s;
			int rc;

			tu_sim_open(&s, "gen2", 1);
			s.card.corrupt = modes[m];
			s.card.corrupt_at = at;
			rc = tu_sim_op(&s, "card.read_basic", NULL);
			if (rc != SSC_EPROTO)
				fail_msg("mode %d at answer %d: %s (%s)", (int)modes[m], at,
					 ssc_strerror_name(rc), s.d.msg);
			assert_null(s.result);
			tu_sim_close(&s);
		}
	}
}

static void test_probe_roles(void **state)
{
	struct tu_sim s;
	enum ssc_alg alg;
	char term[13];

	(void)state;
	tu_sim_open(&s, "gen3", 1);
	assert_int_equal(s.psam_alg, SSC_ALG_SM4);
	assert_string_equal(s.psam_term, "330200000001");
	/* A user card is no PSAM, and the probe leaves it usable. */
	assert_int_equal(psam_probe(&s.card.io, &alg, term), SSC_ENOTFOUND);
	assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
	tu_sim_close(&s);
	tu_sim_open(&s, "gen2", 1);
	assert_int_equal(s.psam_alg, SSC_ALG_DES);
	assert_string_equal(s.psam_term, "330100000001");
	tu_sim_close(&s);
}

/*
 * A desk personalised with the §12.8 keys: K_master 0011..FF for every key, region 330100, chip
 * serial 0011223344556677 (the last 8 historical bytes), issuer key 0123..3210.
 */
static struct sim_profile *vector_profile(const char *alg, int read_auth)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char path[512], err[512] = "";
	json_error_t jerr;
	json_t *root, *card, *keys;
	const char *key;
	json_t *v;
	char *text;
	struct sim_profile *p;

	snprintf(path, sizeof(path), "%s/firmware-stubs/profiles/gen2.json", src ? src : ".");
	root = json_load_file(path, 0, &jerr);
	assert_non_null(root);
	card = json_object_get(root, "card");
	/* TS 3B, T0 8E, TD1 80, TD2 01, 14 historical bytes, TCK 82 (T0..TCK XOR to 00). */
	json_object_set_new(card, "atr", json_string("3B8E80010081544C92860011223344556677" "82"));
	json_object_del(card, "card_id");   /* the simulator builds it, MAC included */
	json_object_set_new(card, "spec_version", json_string(alg[0] == 's' ? "3.00" : "2.00"));
	json_object_set_new(card, "algorithm", json_string(alg));
	json_object_set_new(json_object_get(root, "psam"), "algorithm", json_string(alg));
	if (alg[0] == 's')   /* generation 3 cards carry EF0D */
		json_object_set_new(card, "ef0d", json_pack("{s:s, s:s}", "person_id",
							    "P33010000001", "first_region",
							    "330100"));
	keys = json_object_get(card, "keys");
	json_object_foreach(keys, key, v) {
		if (strcmp(key, "issuer") != 0)
			json_object_set_new(keys, key,
					    json_string("00112233445566778899AABBCCDDEEFF"));
	}
	if (read_auth)
		json_object_set_new(card, "quirks", json_pack("{s:b}", "ef06_read_auth", 1));
	text = json_dumps(root, 0);
	json_decref(root);
	p = sim_profile_parse(text, strlen(text), "vector", err, sizeof(err));
	free(text);
	if (!p)
		fail_msg("vector profile: %s", err);
	return p;
}

static void test_vectors_through_psam(void **state)
{
	static const struct {
		const char *alg;
		const char *ext_auth, *internal, *mac, *iv, *pin_block, *enc;
	} v[] = {
		{ "des", "0082000A104BA5C1F9D6C57F0F1122334455667788", "D2FFA2E969F241C5",
		  "F45CDC9E", "1122334400000000", "0312345680000000", "DA44BA6FAA847AB5" },
		{ "sm4", "0082000A115E581E4BB536B207112233445566778801", "D9B357F70108DCD8",
		  "F0BBB681", "11223344556677880000000000000000", "03123456800000000000000000000000",
		  "83C3ED41A77006B703C3722B4878B665" },
	};

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct tu_sim s;
		struct ssc_card c;
		struct keyprov_div d;
		TU_HEX(r, "1122334455667788");
		TU_HEX(p, "0102030405060708");
		TU_HEX(x, "A1A2A3A4A5A6A7A8");
		TU_HEX(want_c, v[i].internal);
		TU_HEX(want_mac, v[i].mac);
		TU_HEX(iv, v[i].iv);
		TU_HEX(blk, v[i].pin_block);
		TU_HEX(want_enc, v[i].enc);
		TU_HEX(data, "04E200400E40330102030405060708");
		enum ssc_alg alg = v[i].alg[0] == 's' ? SSC_ALG_SM4 : SSC_ALG_DES;
		uint8_t out[16];

		tu_sim_setup(&s, vector_profile(v[i].alg, 1), 1);
		assert_int_equal(s.psam_alg, alg);
		/* The card's next challenge is R: EXTERNAL AUTH must carry the §12.8 bytes. */
		sim_token_test_set_challenge(s.card_t, r);
		assert_int_equal(tu_sim_op(&s, "card.read_basic", NULL), 0);
		assert_string_equal(str(s.result, "region_code"), "330100");
		assert_string_equal(str(s.result, "atr_historical"), "0081544C92860011223344556677");
		assert_true(tu_sim_sent(&s.card, v[i].ext_auth));

		/* The factors as the card layer derives them, then the PSAM's answers. */
		assert_int_equal(ssc_open(&c, &s.card.io, &s.cfg, s.kp, NULL, &s.d), 0);
		assert_int_equal(ssc_div(&c, &d, &s.d), 0);
		assert_memory_equal(d.card_div, "\x00\x11\x22\x33\x44\x55\x66\x77", 8);
		assert_memory_equal(d.city_div, "330100sx", 8);
		assert_int_equal(s.kp->ops->cryptogram(s.kp, alg, &s.cfg.key_internal, &d, p, x, out,
						       INT64_MAX, &s.d), 0);
		assert_memory_equal(out, want_c, 8);
		assert_int_equal(s.kp->ops->mac(s.kp, alg, &s.cfg.key_stk, &d, iv, data, data_len,
						out, INT64_MAX, &s.d), 0);
		assert_memory_equal(out, want_mac, 4);
		assert_int_equal(s.kp->ops->encrypt(s.kp, alg, &s.cfg.key_pin_unblock, &d, blk,
						    blk_len, out, INT64_MAX, &s.d), 0);
		assert_memory_equal(out, want_enc, blk_len);
		/* And the card itself agrees that it is genuine. */
		assert_int_equal(ssc_internal_auth(&c, &s.d), 0);
		assert_int_equal(s.acquired, s.released);
		tu_sim_close(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_basic_profiles),
		cmocka_unit_test(test_gen2_literal),
		cmocka_unit_test(test_no_psam),
		cmocka_unit_test(test_read_auth_memory),
		cmocka_unit_test(test_quirk_apdus),
		cmocka_unit_test(test_internal_auth),
		cmocka_unit_test(test_card_id_mac),
		cmocka_unit_test(test_read_items),
		cmocka_unit_test(test_corrupted_answers),
		cmocka_unit_test(test_probe_roles),
		cmocka_unit_test(test_vectors_through_psam),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
