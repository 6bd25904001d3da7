/*
 * Tests of card.write_items and the journal around it, in-process against the simulator's card OS
 * and PSAM with a real journal file: writes to SSSE (EF05/EF06, EF0D) and DF04 (EF05, EF06, EF08)
 * read back identically; refusals before any APDU (values, expired, spec 1.00, no journal, no
 * PSAM); a wrong key refused by the card and journaled as failed; intents left pending by a card
 * that drops mid-write, resolved on the next insertion by reading back (applied, not applied,
 * partly written), never twice; and the chain verifies after all of it. Expected values are
 * written by hand from the profile files and spec §12.
 */
#include "test_card_util.h"

#include <stdio.h>

#include "ssc.h"

/* A card_io that "drops" the card at a chosen command, before or after the card processes it. */
struct drop_io {
	struct card_io io;
	struct card_io *inner;
	const char *match;   /* hex prefix of the command to drop at */
	int skip;            /* matching commands to let through first */
	int deliver;         /* 1: the card processes the command, its answer is lost */
	uint16_t answer_sw;  /* not 0: the card refuses that command with this status word instead */
	int answered;        /* the refusal was sent */
	int dropped;
};

static int drop_transmit(struct card_io *io, const uint8_t *cmd, size_t cmd_len, uint8_t *resp,
			 size_t resp_cap, unsigned flags)
{
	struct drop_io *d = io->ctx;
	char hex[600] = "";

	if (d->dropped)
		return SSC_ECARDREMOVED;
	for (size_t i = 0; i < cmd_len && i < 290; i++)
		snprintf(hex + 2 * i, 3, "%02X", cmd[i]);
	if (strncmp(hex, d->match, strlen(d->match)) == 0) {
		if (d->skip > 0) {
			d->skip--;
		} else if (d->answer_sw && !d->answered && resp_cap >= 2) {
			d->answered = 1;
			resp[0] = (uint8_t)(d->answer_sw >> 8);
			resp[1] = (uint8_t)d->answer_sw;
			return 2;
		} else if (!d->answer_sw) {
			d->dropped = 1;
			if (d->deliver)
				d->inner->transmit(d->inner, cmd, cmd_len, resp, resp_cap, flags);
			return SSC_ECARDREMOVED;
		}
	}
	return d->inner->transmit(d->inner, cmd, cmd_len, resp, resp_cap, flags);
}

static void drop_init(struct drop_io *d, struct card_io *inner, const char *match, int skip,
		      int deliver)
{
	memset(d, 0, sizeof(*d));
	d->io = *inner;
	d->io.transmit = drop_transmit;
	d->io.ctx = d;
	d->inner = inner;
	d->match = match;
	d->skip = skip;
	d->deliver = deliver;
}

/* Runs an op on io (check, then run) like tu_sim_op. */
static int op_on(struct tu_sim *s, struct card_io *io, const char *method, const char *params)
{
	const struct op_desc *op = ops_find(method);
	json_t *p = json_loads(params, 0, NULL);
	int rc;

	assert_non_null(op);
	assert_non_null(p);
	json_decref(s->result);
	s->result = NULL;
	s->reset = 0;
	ssc_diag_init(&s->d);
	json_decref(s->call.error_data);
	memset(&s->call, 0, sizeof(s->call));
	s->call.params = p;
	rc = op->check(op, &s->env, p, &s->d);
	if (rc == 0)
		rc = op->run(op, &s->env, io, &s->call, &s->flags, &s->reset, &s->result, &s->d);
	s->call.params = NULL;
	json_decref(p);
	return rc;
}

/* The card left and came back: power-on reset, a new insertion (no flags). */
static void reinsert(struct tu_sim *s)
{
	sim_token_reset(s->card_t);
	s->flags = 0;
}

static void must(struct tu_sim *s, const char *method, const char *params)
{
	int rc = tu_sim_op(s, method, params);

	if (rc != 0)
		fail_msg("%s %s: %s (%s)", method, params, ssc_strerror_name(rc), s->d.msg);
}

static const char *item(const struct tu_sim *s, const char *tag)
{
	json_t *v = json_object_get(json_object_get(s->result, "items"), tag);

	if (!v || !json_is_string(v))
		fail_msg("item %s missing or not a string", tag);
	return json_string_value(v);
}

static int64_t journal_id(const struct tu_sim *s)
{
	json_t *v = json_object_get(s->result, "journal_id");

	assert_true(json_is_integer(v));
	assert_true(json_integer_value(v) > 0);
	return json_integer_value(v);
}

static void expect_outcome(struct journal *j, int64_t id, const char *outcome,
			   const char *result, const char *how)
{
	struct tu_outcome o;

	tu_journal_outcome(j, id, &o);
	if (o.count != 1 || strcmp(o.outcome, outcome) || strcmp(o.result, result) ||
	    strcmp(o.how, how))
		fail_msg("intent %lld: %d outcome(s), last %s/%s/%s; expected one %s/%s/%s",
			 (long long)id, o.count, o.outcome, o.result, o.how, outcome, result, how);
}

static void open_desk(struct tu_sim *s, struct tu_journal *tj, const char *profile, int psam)
{
	tu_journal_open(tj);
	tu_sim_open(s, profile, psam);
	s->env.journal = tj->j;
}

static void close_desk(struct tu_sim *s, struct tu_journal *tj)
{
	tu_journal_verify(tj->j);
	tu_sim_close(s);
	tu_journal_close(tj);
}

/* ---- writes that read back identically ------------------------------------------------ */

static void test_write_ssse_ef06(void **state)
{
	struct tu_journal tj;
	struct tu_last_intent li;
	struct tu_sim s;
	int64_t id;

	(void)state;
	open_desk(&s, &tj, "gen2", 1);
	must(&s, "card.write_items", "{\"file\": \"SSSE/EF06\", \"items\": {\"09\": \"李四\", "
	     "\"0C\": \"330106\", \"0D\": \"19910101\"}}");
	assert_string_equal(json_string_value(json_object_get(s.result, "file")), "SSSE/EF06");
	assert_string_equal(item(&s, "09"), "李四");
	assert_string_equal(item(&s, "4E"), "");   /* a name write sets 姓名扩展 too */
	assert_string_equal(item(&s, "0C"), "330106");
	assert_string_equal(item(&s, "0D"), "19910101");
	id = journal_id(&s);
	/* EXTERNAL AUTH with card key 04 (DES: Lc 10), then plain UPDATE RECORDs (09, 4E, 0C, 0D),
	 * then a reset. */
	assert_true(tu_sim_sent(&s.card, "0082000410"));
	assert_int_equal(tu_sim_count(&s.card, "00DC"), 4);
	assert_int_equal(tu_sim_flags(&s.card, "00DC") & CARDIO_SECRET, CARDIO_SECRET);
	assert_true(tu_sim_sent(&s.psam, "BFDE4812"));
	assert_int_equal(s.reset, 1);
	expect_outcome(tj.j, id, "applied", "SSC_OK", "card");
	/* The intent names the card by its keyed ref and holds refs, never the values. */
	tu_journal_last_intent(tj.j, &li);
	assert_int_equal(li.id, id);
	assert_string_equal(li.file, "SSSE/EF06");
	assert_string_equal(li.card, s.call.card_ref);
	assert_int_equal(strlen(li.card), JOURNAL_REF_HEX);
	assert_non_null(strstr(li.detail, "\"op\":\"update\""));
	assert_non_null(strstr(li.detail, "\"tag\":\"09\""));
	assert_non_null(strstr(li.detail, "\"tag\":\"4E\""));
	assert_null(strstr(li.detail, "李四"));
	assert_null(strstr(li.detail, "330106"));
	assert_null(strstr(li.detail, "X00000019"));
	reinsert(&s);

	must(&s, "card.read_items", "{\"file\": \"SSSE/EF06\", \"items\": [\"09\", \"0C\", "
	     "\"0D\", \"08\"]}");
	assert_string_equal(item(&s, "09"), "李四");
	assert_string_equal(item(&s, "0C"), "330106");
	assert_string_equal(item(&s, "0D"), "19910101");
	assert_string_equal(item(&s, "08"), "330102199003071230");   /* untouched */
	must(&s, "card.read_basic", "{}");
	assert_string_equal(json_string_value(json_object_get(s.result, "name")), "李四");
	close_desk(&s, &tj);

	/* A card that wants read authorisation of EF06 (0A) and the write key (04): both. Its name
	 * (阿卜杜热合曼·买买提艾力·吐尔逊江) uses 姓名扩展: a new short name must clear it (was a bug:
	 * read_basic answered "李四逊江", the new 09 joined to the old 4E). */
	open_desk(&s, &tj, "gen3-readauth", 1);
	must(&s, "card.write_items", "{\"file\": \"SSSE/EF06\", \"items\": {\"0B\": \"01\", "
	     "\"4E\": \"四\", \"09\": \"李\"}}");   /* 09 and 4E as read_items shows them */
	assert_string_equal(item(&s, "09"), "李四");
	assert_string_equal(item(&s, "4E"), "");
	assert_true(tu_sim_sent(&s.card, "0082000A11"));
	assert_true(tu_sim_sent(&s.card, "0082000411"));
	/* 09 then 4E (records 2 and 3): C0EE CBC4 (李四) padded with 00 to 30 bytes, and an
	 * extension of 20 bytes of 00 (the log keeps a command's first 31 bytes). */
	assert_true(tu_sim_sent(&s.card, "00DC023420" "091E" "C0EECBC4"
				"0000000000000000000000000000000000000000"));
	assert_true(tu_sim_sent(&s.card, "00DC033416" "4E14"
				"0000000000000000000000000000000000000000"));
	reinsert(&s);
	must(&s, "card.read_items", "{\"file\": \"SSSE/EF06\", \"items\": [\"0B\", \"09\", "
	     "\"4E\"]}");
	assert_string_equal(item(&s, "0B"), "01");
	assert_string_equal(item(&s, "09"), "李四");
	assert_string_equal(item(&s, "4E"), "");
	must(&s, "card.read_basic", "{}");
	assert_string_equal(json_string_value(json_object_get(s.result, "name")), "李四");
	close_desk(&s, &tj);
}

static void test_write_ssse_ef05_ef0d(void **state)
{
	struct tu_journal tj;
	struct tu_sim s;

	(void)state;
	open_desk(&s, &tj, "gen3", 1);
	must(&s, "card.write_items", "{\"file\": \"SSSE/EF0D\", \"items\": {\"EA\": "
	     "\"P33020000009\", \"EB\": \"330201\"}}");
	assert_true(tu_sim_sent(&s.card, "0082000D11"));   /* key 0D, SM4 */
	assert_true(tu_sim_sent(&s.psam, "BFDE4813"));
	expect_outcome(tj.j, journal_id(&s), "applied", "SSC_OK", "card");
	reinsert(&s);
	must(&s, "card.read_items", "{\"file\": \"SSSE/EF0D\", \"items\": [\"EA\", \"EB\"]}");
	assert_string_equal(item(&s, "EA"), "P33020000009");
	assert_string_equal(item(&s, "EB"), "330201");

	/* EF05: the dates and the card type; the card number and id are not writable. */
	must(&s, "card.write_items", "{\"file\": \"SSSE/EF05\", \"items\": {\"06\": \"20400601\", "
	     "\"02\": \"5\"}}");
	reinsert(&s);
	must(&s, "card.read_items", "{\"file\": \"SSSE/EF05\", \"items\": [\"06\", \"02\", "
	     "\"07\"]}");
	assert_string_equal(item(&s, "06"), "20400601");
	assert_string_equal(item(&s, "02"), "5");
	assert_string_equal(item(&s, "07"), "A12345674");
	close_desk(&s, &tj);

	/* EF0D is a generation 3 file. */
	open_desk(&s, &tj, "gen2", 1);
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"SSSE/EF0D\", \"items\": "
				   "{\"EA\": \"P33010000009\"}}"), SSC_EUNSUPPORTED);
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	assert_false(tu_sim_sent(&s.card, "0082"));
	tu_sim_close(&s);
	tu_journal_close(&tj);
}

static void test_write_df04(void **state)
{
	/* The quirky cards too: T=0 answers with 6Cxx / 61xx, and a card that reads by tag only. */
	static const char *const profiles[] = { "gen2", "gen3", "t0-quirks", "gen2-tagmode" };
	struct tu_journal tj;
	struct tu_sim s;

	(void)state;
	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
		open_desk(&s, &tj, profiles[i], 1);
		must(&s, "card.write_items", "{\"file\": \"DF04/EF05\", \"items\": {\"33\": "
		     "\"H33999900001\", \"34\": \"1\", \"31\": \"21\"}}");
		/* UPDATE RECORD with MAC (CLA 04) after GET CHALLENGE, MAC'd by the PSAM's STK. */
		assert_int_equal(tu_sim_count(&s.card, "04DC"), 3);
		/* By tag where the card reads by tag: P1 = 33, P2 = SFI 5 << 3 (spec §2.1). */
		if (i == 3)
			assert_true(tu_sim_sent(&s.card, "04DC3328"));
		else
			assert_true(tu_sim_sent(&s.card, "04DC042C"));
		assert_false(tu_sim_sent(&s.card, "00DC"));
		assert_false(tu_sim_sent(&s.card, "0082"));
		assert_true(tu_sim_sent(&s.psam, "BFDE4615"));
		assert_true(tu_sim_sent(&s.psam, "80FA0500"));
		assert_int_equal(s.acquired, s.released);
		expect_outcome(tj.j, journal_id(&s), "applied", "SSC_OK", "card");

		must(&s, "card.write_items", "{\"file\": \"DF04/EF06\", \"items\": {\"41\": "
		     "\"01\"}}");
		assert_string_equal(item(&s, "41"), "01");
		reinsert(&s);
		must(&s, "card.read_items", "{\"file\": \"DF04/EF05\", \"items\": [\"33\", \"34\", "
		     "\"31\", \"32\"]}");
		assert_string_equal(item(&s, "33"), "H33999900001");
		assert_string_equal(item(&s, "34"), "1");
		assert_string_equal(item(&s, "31"), "21");
		assert_string_equal(item(&s, "32"), i == 1 ? "33020000000000000001"
							 : "33010000000000000001");
		must(&s, "card.read_items", "{\"file\": \"DF04/EF06\", \"items\": [\"41\"]}");
		assert_string_equal(item(&s, "41"), "01");
		close_desk(&s, &tj);
	}
}

#define TXN_NEW "{\"time\": \"20250102030405\", \"institution\": \"H33010000002\", " \
	"\"settlement_no\": \"S2025010200000000077\", \"total\": 30000, " \
	"\"personal_account\": 1234, \"pooled\": 28766}"

static void check_txn_new(json_t *t)
{
	assert_string_equal(json_string_value(json_object_get(t, "time")), "20250102030405");
	assert_string_equal(json_string_value(json_object_get(t, "institution")), "H33010000002");
	assert_string_equal(json_string_value(json_object_get(t, "settlement_no")),
			    "S2025010200000000077");
	assert_int_equal(json_integer_value(json_object_get(t, "total")), 30000);
	assert_int_equal(json_integer_value(json_object_get(t, "personal_account")), 1234);
	assert_int_equal(json_integer_value(json_object_get(t, "pooled")), 28766);
}

static void test_append_ef08(void **state)
{
	struct tu_journal tj;
	struct tu_last_intent li;
	struct tu_sim s;
	json_t *txs;

	(void)state;
	open_desk(&s, &tj, "gen2", 1);
	must(&s, "card.write_items", "{\"file\": \"DF04/EF08\", \"items\": {\"40\": " TXN_NEW "}}");
	check_txn_new(json_object_get(json_object_get(s.result, "items"), "40"));
	/* APPEND RECORD with MAC: 04 E2 00 40, Lc' = 2 + 51 + 4. */
	assert_true(tu_sim_sent(&s.card, "04E2004039"));
	expect_outcome(tj.j, journal_id(&s), "applied", "SSC_OK", "card");
	tu_journal_last_intent(tj.j, &li);
	assert_non_null(strstr(li.detail, "\"op\":\"append\""));
	assert_non_null(strstr(li.detail, "\"settlement_no\":\"S2025010200000000077\""));
	reinsert(&s);
	must(&s, "card.read_items", "{\"file\": \"DF04/EF08\", \"items\": [\"40\"]}");
	txs = json_object_get(json_object_get(s.result, "items"), "40");
	assert_int_equal(json_array_size(txs), 3);
	check_txn_new(json_array_get(txs, 0));   /* newest first */
	assert_string_equal(json_string_value(json_object_get(json_array_get(txs, 1),
							      "settlement_no")),
			    "S2024031500000000002");

	/* The same settlement again: a double booking, refused before any intent. */
	s.card.apdus = 0;
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"DF04/EF08\", \"items\": "
				   "{\"40\": " TXN_NEW "}}"), SSC_EEXIST);
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	assert_false(tu_sim_sent(&s.card, "04E2"));
	close_desk(&s, &tj);

	open_desk(&s, &tj, "gen3", 1);
	must(&s, "card.write_items", "{\"file\": \"DF04/EF08\", \"items\": {\"40\": " TXN_NEW "}}");
	reinsert(&s);
	must(&s, "card.read_items", "{\"file\": \"DF04/EF08\", \"items\": [\"40\"]}");
	txs = json_object_get(json_object_get(s.result, "items"), "40");
	assert_int_equal(json_array_size(txs), 2);
	check_txn_new(json_array_get(txs, 0));
	close_desk(&s, &tj);
}

/* ---- refusals --------------------------------------------------------------------------- */

static void test_refused_before_any_apdu(void **state)
{
	static const struct {
		const char *params;
		int rc;
	} cases[] = {
		/* 26 Chinese characters are 52 bytes: 姓名 and 姓名扩展 hold 30 + 20. */
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"09\": "
		  "\"一二三四五六七八九十一二三四五六七八九十一二三四五六\"}}", SSC_EVALUE },
		/* 姓名扩展 is written with 姓名 (joined to it), never alone. */
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"4E\": \"江\"}}", SSC_EBADITEM },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"4e\": \"四\", \"0A\": \"1\"}}",
		  SSC_EBADITEM },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"09\": \"\"}}", SSC_EVALUE },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"0D\": \"19911301\"}}", SSC_EVALUE },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"0C\": \"33010X\"}}", SSC_EVALUE },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"0C\": \"3301067\"}}", SSC_EVALUE },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"0C\": 330106}}", SSC_EINVAL },
		{ "{\"file\": \"SSSE/EF05\", \"items\": {\"07\": \"X00000027\"}}", SSC_EBADITEM },
		{ "{\"file\": \"SSSE/EF05\", \"items\": {\"01\": \"00\"}}", SSC_EBADITEM },
		{ "{\"file\": \"SSSE/EF05\", \"items\": {\"03\": \"3.00\"}}", SSC_EBADITEM },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"77\": \"1\"}}", SSC_EBADITEM },
		{ "{\"file\": \"SSSE/EF07\", \"items\": {\"01\": \"1\"}}", SSC_EBADITEM },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {}}", SSC_EINVAL },
		{ "{\"file\": \"SSSE/EF06\", \"items\": [\"09\"]}", SSC_EINVAL },
		{ "{\"file\": \"SSSE/EF06\"}", SSC_EINVAL },
		{ "{\"items\": {\"09\": \"x\"}}", SSC_EINVAL },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"0a\": \"1\", \"0A\": \"2\"}}", SSC_EINVAL },
		{ "{\"file\": \"SSSE/EF06\", \"items\": {\"0A\": \"1\"}, \"pin\": \"1\"}", SSC_EINVAL },
		{ "{\"file\": \"DF04/EF06\", \"items\": {\"41\": \"0102\"}}", SSC_EVALUE },
		{ "{\"file\": \"DF04/EF08\", \"items\": {\"40\": \"x\"}}", SSC_EINVAL },
		{ "{\"file\": \"DF04/EF08\", \"items\": {\"40\": {\"time\": \"20250102030405\"}}}",
		  SSC_EINVAL },
		{ "{\"file\": \"DF04/EF08\", \"items\": {\"40\": {\"time\": \"20250102030405\", "
		  "\"institution\": \"H1\", \"settlement_no\": \"S1\", \"total\": -1, "
		  "\"personal_account\": 0, \"pooled\": 0}}}", SSC_EVALUE },
		{ "{\"file\": \"DF04/EF08\", \"items\": {\"40\": {\"time\": \"20250102250405\", "
		  "\"institution\": \"H1\", \"settlement_no\": \"S1\", \"total\": 1, "
		  "\"personal_account\": 0, \"pooled\": 0}}}", SSC_EVALUE },
		{ "{\"file\": \"DF04/EF08\", \"items\": {\"40\": {\"time\": \"20250102030405\", "
		  "\"institution\": \"H1\", \"settlement_no\": \"\", \"total\": 1, "
		  "\"personal_account\": 0, \"pooled\": 0}}}", SSC_EVALUE },
		{ "{\"file\": \"DF04/EF08\", \"items\": {\"40\": {\"time\": \"20250102030405\", "
		  "\"institution\": \"H1\", \"settlement_no\": \"S123456789012345678901\", "
		  "\"total\": 1, \"personal_account\": 0, \"pooled\": 0}}}", SSC_EVALUE },
		{ "{\"file\": \"DF04/EF08\", \"items\": {\"40\": {\"time\": \"20250102030405\", "
		  "\"institution\": \"H1\", \"settlement_no\": \"S1\", \"total\": 4294967296, "
		  "\"personal_account\": 0, \"pooled\": 0}}}", SSC_EVALUE },
		{ "{\"file\": \"DF04/EF08\", \"items\": {\"40\": {\"time\": \"20250102030405\", "
		  "\"institution\": \"H1\", \"settlement_no\": \"S1\", \"total\": 1, "
		  "\"personal_account\": 0, \"pooled\": 0, \"note\": \"x\"}}}", SSC_EINVAL },
	};
	struct tu_journal tj;
	struct tu_sim s;

	(void)state;
	open_desk(&s, &tj, "gen2", 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tu_sim_op(&s, "card.write_items", cases[i].params);

		if (rc != cases[i].rc)
			fail_msg("%s: %s (%s), expected %s", cases[i].params, ssc_strerror_name(rc),
				 s.d.msg, ssc_strerror_name(cases[i].rc));
	}
	assert_int_equal(s.card.apdus, 0);
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);

	/* No journal: refused at once, the card untouched. */
	s.env.journal = NULL;
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"DF04/EF06\", \"items\": "
				   "{\"41\": \"01\"}}"), SSC_EJOURNAL);
	assert_int_equal(s.card.apdus, 0);
	close_desk(&s, &tj);
}

static void test_refused_by_card_state(void **state)
{
	struct tu_journal tj;
	struct tu_sim s;

	(void)state;
	/* Expired (20200101): refused, nothing journaled, nothing written. */
	open_desk(&s, &tj, "expired", 1);
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"DF04/EF06\", \"items\": "
				   "{\"41\": \"01\"}}"), SSC_EEXPIRED);
	assert_int_equal(ssc_std_code(SSC_EEXPIRED, 0), -22);
	assert_false(tu_sim_sent(&s.card, "04DC"));
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	/* Reads go on. */
	must(&s, "card.read_basic", "{}");
	assert_true(json_is_true(json_object_get(s.result, "expired")));
	close_desk(&s, &tj);

	/* Spec 1.00. */
	open_desk(&s, &tj, "gen1", 1);
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"DF04/EF06\", \"items\": "
				   "{\"41\": \"01\"}}"), SSC_EUNSUPPORTED);
	assert_false(tu_sim_sent(&s.card, "04DC"));
	close_desk(&s, &tj);

	/* No PSAM: found out before the intent. */
	open_desk(&s, &tj, "gen2", 0);
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"DF04/EF06\", \"items\": "
				   "{\"41\": \"01\"}}"), SSC_ENOPSAM);
	assert_false(tu_sim_sent(&s.card, "0084"));
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	close_desk(&s, &tj);

	/* The journal suspended (unwritable): writes refused, the card untouched; reads go on. */
	open_desk(&s, &tj, "gen2", 1);
	journal_suspend(tj.j, "test");
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"DF04/EF06\", \"items\": "
				   "{\"41\": \"01\"}}"), SSC_EJOURNAL);
	assert_false(tu_sim_sent(&s.card, "04DC"));
	assert_false(tu_sim_sent(&s.card, "0084"));
	must(&s, "card.read_basic", "{}");
	{
		struct ssc_diag d;

		ssc_diag_init(&d);
		assert_int_equal(journal_resume(tj.j, &d), 0);
	}
	reinsert(&s);
	must(&s, "card.read_items", "{\"file\": \"DF04/EF06\", \"items\": [\"41\"]}");
	assert_string_equal(item(&s, "41"), "00");
	close_desk(&s, &tj);
}

/* A card whose keys are not the PSAM's: the card refuses, the intent is journaled as failed. */
static void test_wrong_key_journaled_failed(void **state)
{
	struct tu_journal tj;
	struct tu_last_intent li;
	struct tu_sim s;

	(void)state;
	open_desk(&s, &tj, "gen2-wrongkey", 1);
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"SSSE/EF06\", \"items\": "
				   "{\"0C\": \"330106\"}}"), SSC_EAUTHFAILED);
	assert_int_equal(s.d.retries_left, 4);   /* 63C4: 5 tries (§12.5), one used */
	assert_false(tu_sim_sent(&s.card, "00DC"));
	tu_journal_last_intent(tj.j, &li);
	assert_true(li.id > 0);
	expect_outcome(tj.j, li.id, "failed", "SSC_EAUTHFAILED", "card");

	/* DF04: the card refuses the MAC (6988). */
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"DF04/EF05\", \"items\": "
				   "{\"34\": \"1\"}}"), SSC_EAUTHFAILED);
	assert_int_equal(s.d.sw, 0x6988);
	tu_journal_last_intent(tj.j, &li);
	expect_outcome(tj.j, li.id, "failed", "SSC_EAUTHFAILED", "card");
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);

	reinsert(&s);
	must(&s, "card.read_items", "{\"file\": \"SSSE/EF06\", \"items\": [\"0C\"]}");
	assert_string_equal(item(&s, "0C"), "330109");
	must(&s, "card.read_items", "{\"file\": \"DF04/EF05\", \"items\": [\"34\"]}");
	assert_string_equal(item(&s, "34"), "0");
	close_desk(&s, &tj);
}

/* ---- intents left pending, resolved by reading back ------------------------------------ */

struct drop_case {
	const char *profile, *file, *params, *match;
	int skip, deliver;
	const char *outcome, *result;
	const char *how;        /* the outcome's how; NULL = "readback" */
	const char *written;    /* the error's data.written as JSON; NULL = none */
};

/* The error data a failed write left in s->call: data.written (JSON text) and the intent id. */
static void expect_written(const struct tu_sim *s, const char *written, int64_t id)
{
	json_t *want;

	if (!written) {
		assert_null(s->call.error_data);
		return;
	}
	want = json_loads(written, 0, NULL);
	assert_non_null(want);
	assert_non_null(s->call.error_data);
	assert_true(json_equal(json_object_get(s->call.error_data, "written"), want));
	assert_int_equal(json_integer_value(json_object_get(s->call.error_data, "journal_id")), id);
	json_decref(want);
}

static void run_drop_case(const struct drop_case *dc)
{
	struct tu_journal tj;
	struct tu_last_intent li;
	struct drop_io d;
	struct tu_sim s;
	int rc;

	open_desk(&s, &tj, dc->profile, 1);
	drop_init(&d, &s.card.io, dc->match, dc->skip, dc->deliver);
	rc = op_on(&s, &d.io, "card.write_items", dc->params);
	if (rc != SSC_ECARDREMOVED)
		fail_msg("%s: %s (%s)", dc->params, ssc_strerror_name(rc), s.d.msg);
	assert_true(d.dropped);
	/* The outcome is unknown: the intent stays pending, and this insertion must look again. */
	tu_journal_last_intent(tj.j, &li);
	assert_true(li.id > 0);
	assert_string_equal(li.file, dc->file);
	expect_written(&s, dc->written, li.id);
	assert_int_equal(journal_pending_count(tj.j, NULL), 1);
	assert_int_equal(journal_pending_count(tj.j, li.card), 1);
	assert_false(s.flags & CARD_FLAG_RESOLVED);

	/* The card comes back: the first operation reads it back and records the outcome. */
	reinsert(&s);
	must(&s, "card.read_basic", "{}");
	assert_true(s.flags & CARD_FLAG_RESOLVED);
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	expect_outcome(tj.j, li.id, dc->outcome, dc->result, dc->how ? dc->how : "readback");

	/* Never twice: neither a second pass nor the daemon's insertion hook resolves it again. */
	reinsert(&s);
	assert_int_equal(ops_resolve_pending(&s.env, &s.card.io, &s.d), 0);
	must(&s, "card.read_basic", "{}");
	expect_outcome(tj.j, li.id, dc->outcome, dc->result, dc->how ? dc->how : "readback");
	close_desk(&s, &tj);
}

static void test_drop_mid_write(void **state)
{
	static const struct drop_case cases[] = {
		/* DF04/EF05, one record: lost before the card saw it, or after it wrote it. */
		{ "gen2", "DF04/EF05", "{\"file\": \"DF04/EF05\", \"items\": {\"33\": "
		  "\"H33999900001\"}}", "04DC", 0, 0, "failed", "SSC_ENOTFOUND", NULL, NULL },
		{ "gen2", "DF04/EF05", "{\"file\": \"DF04/EF05\", \"items\": {\"33\": "
		  "\"H33999900001\"}}", "04DC", 0, 1, "applied", "SSC_OK", NULL, NULL },
		/* Two records, the second lost: written in part (issue 12, defect 3). */
		{ "gen2", "DF04/EF05", "{\"file\": \"DF04/EF05\", \"items\": {\"33\": "
		  "\"H33999900001\", \"34\": \"1\"}}", "04DC", 1, 0, "partial", "SSC_ENOTFOUND",
		  "readback; written 33; not written 34", "[\"33\"]" },
		/* Three records, lost after the first: one new value, two old ones. */
		{ "gen2", "DF04/EF05", "{\"file\": \"DF04/EF05\", \"items\": {\"31\": \"21\", "
		  "\"33\": \"H33999900001\", \"34\": \"1\"}}", "04DC", 1, 0, "partial",
		  "SSC_ENOTFOUND", "readback; written 31; not written 33 34", "[\"31\"]" },
		/* SSSE: the second UPDATE RECORD lost. */
		{ "gen2", "SSSE/EF06", "{\"file\": \"SSSE/EF06\", \"items\": {\"0B\": \"03\", "
		  "\"0C\": \"330106\"}}", "00DC", 1, 0, "partial", "SSC_ENOTFOUND",
		  "readback; written 0B; not written 0C", "[\"0B\"]" },
		/* Both written, the last answer lost: the client hears of the first one only. */
		{ "gen2", "DF04/EF05", "{\"file\": \"DF04/EF05\", \"items\": {\"33\": "
		  "\"H33999900001\", \"34\": \"1\"}}", "04DC", 1, 1, "applied", "SSC_OK", NULL,
		  "[\"33\"]" },
		/* The card left at the EXTERNAL AUTH: nothing written. */
		{ "gen2", "SSSE/EF06", "{\"file\": \"SSSE/EF06\", \"items\": {\"0C\": \"330106\"}}",
		  "0082", 0, 0, "failed", "SSC_ENOTFOUND", NULL, NULL },
		{ "gen3", "SSSE/EF06", "{\"file\": \"SSSE/EF06\", \"items\": {\"0C\": \"330106\"}}",
		  "00DC", 0, 1, "applied", "SSC_OK", NULL, NULL },
		/* APPEND to the cyclic EF08: the record with its settlement number, or none. */
		{ "gen2", "DF04/EF08", "{\"file\": \"DF04/EF08\", \"items\": {\"40\": " TXN_NEW "}}",
		  "04E2", 0, 0, "failed", "SSC_ENOTFOUND", NULL, NULL },
		{ "gen2", "DF04/EF08", "{\"file\": \"DF04/EF08\", \"items\": {\"40\": " TXN_NEW "}}",
		  "04E2", 0, 1, "applied", "SSC_OK", NULL, NULL },
		{ "gen3", "DF04/EF08", "{\"file\": \"DF04/EF08\", \"items\": {\"40\": " TXN_NEW "}}",
		  "04E2", 0, 1, "applied", "SSC_OK", NULL, NULL },
		/* A value written twice (equal to the old one): applied, whichever it was. */
		{ "gen2", "DF04/EF05", "{\"file\": \"DF04/EF05\", \"items\": {\"34\": \"0\"}}",
		  "04DC", 0, 0, "applied", "SSC_OK", NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("drop case %zu: %s at %s (skip %d, deliver %d)\n", i, cases[i].file,
			      cases[i].match, cases[i].skip, cases[i].deliver);
		run_drop_case(&cases[i]);
	}
}

/*
 * The card refuses the second of three records (6581, memory failure): the first is on the card,
 * the rest not. The outcome is recorded at once (read back in the same operation): partial, with
 * the refusal's name; the client's error names the item that is on the card (issue 12, defect 3).
 */
static void test_refused_mid_write(void **state)
{
	struct tu_journal tj;
	struct tu_last_intent li;
	struct drop_io d;
	struct tu_sim s;
	int rc;

	(void)state;
	open_desk(&s, &tj, "gen2", 1);
	drop_init(&d, &s.card.io, "04DC", 1, 0);
	d.answer_sw = 0x6581;
	rc = op_on(&s, &d.io, "card.write_items", "{\"file\": \"DF04/EF05\", \"items\": "
		   "{\"31\": \"21\", \"33\": \"H33999900001\", \"34\": \"1\"}}");
	assert_int_equal(rc, SSC_ECARDSW);
	assert_true(d.answered);
	assert_int_equal(s.d.sw, 0x6581);
	tu_journal_last_intent(tj.j, &li);
	expect_written(&s, "[\"31\"]", li.id);
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	expect_outcome(tj.j, li.id, "partial", "SSC_ECARDSW", "readback; written 31; not written 33 34");
	must(&s, "card.read_items", "{\"file\": \"DF04/EF05\", \"items\": [\"31\", \"33\", "
	     "\"34\"]}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(s.result, "items"),
							      "31")), "21");
	assert_string_equal(json_string_value(json_object_get(json_object_get(s.result, "items"),
							      "33")), "H33010000001");
	assert_string_equal(json_string_value(json_object_get(json_object_get(s.result, "items"),
							      "34")), "0");
	/* A refusal of the first record: nothing written, no data.written, failed. */
	drop_init(&d, &s.card.io, "04DC", 0, 0);
	d.answer_sw = 0x6581;
	rc = op_on(&s, &d.io, "card.write_items", "{\"file\": \"DF04/EF05\", \"items\": "
		   "{\"33\": \"H33999900002\", \"34\": \"1\"}}");
	assert_int_equal(rc, SSC_ECARDSW);
	tu_journal_last_intent(tj.j, &li);
	expect_written(&s, NULL, li.id);
	expect_outcome(tj.j, li.id, "failed", "SSC_ECARDSW", "card");
	close_desk(&s, &tj);
}

/* After a drop, the values on the card are what the outcome says; a retry writes exactly once. */
static void test_drop_then_retry(void **state)
{
	struct tu_journal tj;
	struct drop_io d;
	struct tu_sim s;
	json_t *txs;

	(void)state;
	open_desk(&s, &tj, "gen2", 1);
	/* Applied before the drop: the retry is refused as a double booking. */
	drop_init(&d, &s.card.io, "04E2", 0, 1);
	assert_int_equal(op_on(&s, &d.io, "card.write_items", "{\"file\": \"DF04/EF08\", "
			       "\"items\": {\"40\": " TXN_NEW "}}"), SSC_ECARDREMOVED);
	reinsert(&s);
	/* The write itself resolves the pending intent first, then finds the record there. */
	assert_int_equal(tu_sim_op(&s, "card.write_items", "{\"file\": \"DF04/EF08\", \"items\": "
				   "{\"40\": " TXN_NEW "}}"), SSC_EEXIST);
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	must(&s, "card.read_items", "{\"file\": \"DF04/EF08\", \"items\": [\"40\"]}");
	txs = json_object_get(json_object_get(s.result, "items"), "40");
	assert_int_equal(json_array_size(txs), 3);
	close_desk(&s, &tj);

	/* Not applied: the retry writes it, once. */
	open_desk(&s, &tj, "gen2", 1);
	drop_init(&d, &s.card.io, "04E2", 0, 0);
	assert_int_equal(op_on(&s, &d.io, "card.write_items", "{\"file\": \"DF04/EF08\", "
			       "\"items\": {\"40\": " TXN_NEW "}}"), SSC_ECARDREMOVED);
	/* Same insertion (a timeout, say): the next operation resolves it. */
	must(&s, "card.write_items", "{\"file\": \"DF04/EF08\", \"items\": {\"40\": " TXN_NEW "}}");
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	reinsert(&s);
	must(&s, "card.read_items", "{\"file\": \"DF04/EF08\", \"items\": [\"40\"]}");
	txs = json_object_get(json_object_get(s.result, "items"), "40");
	assert_int_equal(json_array_size(txs), 3);
	check_txn_new(json_array_get(txs, 0));
	close_desk(&s, &tj);
}

/* ops_resolve_pending as the reader core will call it on insertion. */
static void test_resolve_on_insertion(void **state)
{
	struct tu_journal tj;
	struct tu_last_intent li;
	struct drop_io d;
	struct tu_sim s;

	(void)state;
	open_desk(&s, &tj, "gen3", 1);
	/* A clean journal: nothing to do, not one APDU. */
	assert_int_equal(ops_resolve_pending(&s.env, &s.card.io, &s.d), 0);
	assert_int_equal(s.card.apdus, 0);

	drop_init(&d, &s.card.io, "04DC", 0, 1);
	assert_int_equal(op_on(&s, &d.io, "card.write_items", "{\"file\": \"DF04/EF06\", "
			       "\"items\": {\"41\": \"00\"}}"), SSC_ECARDREMOVED);
	tu_journal_last_intent(tj.j, &li);
	reinsert(&s);
	assert_int_equal(ops_resolve_pending(&s.env, &s.card.io, &s.d), 1);
	expect_outcome(tj.j, li.id, "applied", "SSC_OK", "readback");
	assert_int_equal(ops_resolve_pending(&s.env, &s.card.io, &s.d), 0);
	expect_outcome(tj.j, li.id, "applied", "SSC_OK", "readback");
	close_desk(&s, &tj);
}

/* Pending intents of another card cost this card's reads no APDU beyond a clean journal's. */
static void test_other_cards_intents(void **state)
{
	struct tu_journal tj;
	struct tu_sim s;
	struct ssc_diag d;
	int64_t id;
	int clean;

	(void)state;
	open_desk(&s, &tj, "gen2", 1);
	must(&s, "card.read_items", "{\"file\": \"DF04/EF05\", \"items\": [\"30\"]}");
	clean = s.card.apdus;
	ssc_diag_init(&d);
	assert_int_equal(journal_intent(tj.j, NULL, "0123456789abcdef0123456789abcdef", "r",
					"DF04/EF05", "{\"op\":\"update\",\"records\":[]}", &id, &d),
			 0);
	reinsert(&s);
	s.card.apdus = 0;
	must(&s, "card.read_items", "{\"file\": \"DF04/EF05\", \"items\": [\"30\"]}");
	assert_int_equal(s.card.apdus, clean);
	assert_true(s.flags & CARD_FLAG_RESOLVED);
	assert_int_equal(journal_pending_count(tj.j, NULL), 1);   /* not this card's */

	/* Without a journal a read costs two APDUs less (no card number and id for the list). */
	reinsert(&s);
	s.env.journal = NULL;
	s.card.apdus = 0;
	must(&s, "card.read_items", "{\"file\": \"DF04/EF05\", \"items\": [\"30\"]}");
	assert_int_equal(s.card.apdus, clean - 2);
	s.env.journal = tj.j;
	close_desk(&s, &tj);
}

/* ---- the lost-card list and card authenticity ---------------------------------------- */

static void import(struct journal *j, const char *dir, const char *lines)
{
	char path[192];
	struct ssc_diag d;
	FILE *f;

	snprintf(path, sizeof(path), "%s/bl.txt", dir);
	f = fopen(path, "w+");
	assert_non_null(f);
	fputs(lines, f);
	rewind(f);
	ssc_diag_init(&d);
	if (journal_blacklist_import(j, f, &d) < 1)
		fail_msg("import: %s", d.msg);
	fclose(f);
}

static void test_blacklisted(void **state)
{
	static const char *const ops[][2] = {
		{ "card.read_basic", "{}" },
		{ "card.read_items", "{\"file\": \"DF04/EF05\", \"items\": [\"30\"]}" },
		{ "card.internal_auth", "{}" },
		{ "card.verify_pin", "{\"pin\": \"123456\"}" },
		{ "card.write_items", "{\"file\": \"DF04/EF06\", \"items\": {\"41\": \"01\"}}" },
	};
	char ref[JOURNAL_REF_HEX + 1];
	struct tu_journal tj;
	struct tu_sim s;

	(void)state;
	open_desk(&s, &tj, "gen2", 1);
	import(tj.j, tj.dir, "# lost cards\nX00000019\n");
	journal_card_ref(tj.j, "X00000019", ref);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		int rc = tu_sim_op(&s, ops[i][0], ops[i][1]);

		if (rc != SSC_EBLACKLISTED)
			fail_msg("%s: %s", ops[i][0], ssc_strerror_name(rc));
		assert_null(s.result);
		/* The audit row can name the card (its ref, never the number). */
		assert_string_equal(s.call.card_ref, ref);
	}
	assert_int_equal(ssc_std_code(SSC_EBLACKLISTED, 0), -22);
	assert_false(tu_sim_sent(&s.card, "0020"));
	assert_false(tu_sim_sent(&s.card, "0088"));
	assert_false(tu_sim_sent(&s.card, "04DC"));
	assert_int_equal(journal_pending_count(tj.j, NULL), 0);
	close_desk(&s, &tj);

	/* Listed by its card id (卡识别码) instead. */
	open_desk(&s, &tj, "gen3", 1);
	must(&s, "card.read_basic", "{}");
	import(tj.j, tj.dir, "330200D156000005013C5A7E0A29D26E\n");
	assert_int_equal(tu_sim_op(&s, "card.read_basic", "{}"), SSC_EBLACKLISTED);
	assert_int_equal(tu_sim_op(&s, "card.read_items", "{\"file\": \"SSSE/EF0D\", \"items\": "
				   "[\"EA\"]}"), SSC_EBLACKLISTED);
	close_desk(&s, &tj);

	/* Another card is not affected. */
	open_desk(&s, &tj, "gen2-tagmode", 1);
	import(tj.j, tj.dir, "X00000019\n");
	must(&s, "card.read_basic", "{}");
	close_desk(&s, &tj);
}

static void test_internal_auth_op(void **state)
{
	struct tu_journal tj;
	struct tu_sim s;

	(void)state;
	open_desk(&s, &tj, "gen2", 1);
	must(&s, "card.internal_auth", "{}");
	assert_true(json_is_true(json_object_get(s.result, "genuine")));
	assert_string_equal(json_string_value(json_object_get(s.result, "algorithm")), "des");
	assert_true(tu_sim_sent(&s.card, "0088000010"));
	assert_true(tu_sim_sent(&s.psam, "BFDE4711"));
	assert_int_equal(strlen(s.call.card_ref), JOURNAL_REF_HEX);
	assert_int_equal(tu_sim_op(&s, "card.internal_auth", "{\"pin\": \"1\"}"), SSC_EINVAL);

	/* read_items on request, and read_basic when the configuration requires it. */
	must(&s, "card.read_items", "{\"file\": \"SSSE/EF05\", \"items\": [\"02\"], "
	     "\"internal_auth\": true}");
	assert_true(json_is_true(json_object_get(s.result, "genuine")));
	s.cfg.require_internal_auth = 1;
	s.card.apdus = 0;
	must(&s, "card.read_basic", "{\"internal_auth\": false}");   /* cannot be switched off */
	assert_true(json_is_true(json_object_get(s.result, "genuine")));
	assert_true(tu_sim_sent(&s.card, "0088000010"));
	close_desk(&s, &tj);

	open_desk(&s, &tj, "gen3", 1);
	must(&s, "card.internal_auth", "{}");
	assert_string_equal(json_string_value(json_object_get(s.result, "algorithm")), "sm4");
	close_desk(&s, &tj);

	open_desk(&s, &tj, "gen2-wrongkey", 1);
	assert_int_equal(tu_sim_op(&s, "card.internal_auth", "{}"), SSC_ENOTGENUINE);
	assert_int_equal(ssc_std_code(SSC_ENOTGENUINE, 0), -21);
	assert_null(s.result);
	s.cfg.require_internal_auth = 1;
	assert_int_equal(tu_sim_op(&s, "card.read_items", "{\"file\": \"SSSE/EF05\", \"items\": "
				   "[\"02\"]}"), SSC_ENOTGENUINE);
	close_desk(&s, &tj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_ssse_ef06),
		cmocka_unit_test(test_write_ssse_ef05_ef0d),
		cmocka_unit_test(test_write_df04),
		cmocka_unit_test(test_append_ef08),
		cmocka_unit_test(test_refused_before_any_apdu),
		cmocka_unit_test(test_refused_by_card_state),
		cmocka_unit_test(test_wrong_key_journaled_failed),
		cmocka_unit_test(test_drop_mid_write),
		cmocka_unit_test(test_drop_then_retry),
		cmocka_unit_test(test_refused_mid_write),
		cmocka_unit_test(test_resolve_on_insertion),
		cmocka_unit_test(test_other_cards_intents),
		cmocka_unit_test(test_blacklisted),
		cmocka_unit_test(test_internal_auth_op),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
