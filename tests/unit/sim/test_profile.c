/*
 * Unit tests of the profile loader (sim_profile.c): every profile of firmware-stubs/profiles/
 * loads, and broken profiles are refused with a message that names the field.
 */
#include "sim_test.h"
#include "sim_profile.h"

#include <dirent.h>

static char *repo_text(const char *name)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char path[1024];
	FILE *f;
	char *buf = malloc(65536);
	size_t n;

	assert_non_null(src);
	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/firmware-stubs/profiles/%s.json", src, name);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, 65535, f);
	fclose(f);
	buf[n] = 0;
	return buf;
}

/* Replaces the first occurrence of from (which must exist) by to; returns a new string. */
static char *replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	size_t pre, n;
	char *out;

	if (at == NULL)
		fail_msg("test bug: \"%s\" not in the profile", from);
	pre = (size_t)(at - text);
	n = strlen(text) - strlen(from) + strlen(to) + 1;
	out = malloc(n);
	assert_non_null(out);
	memcpy(out, text, pre);
	memcpy(out + pre, to, strlen(to));
	memcpy(out + pre + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
	return out;
}

static void expect_error(const char *base, const char *from, const char *to, const char *msg,
			 const char *file, int line)
{
	char *text = repo_text(base), *bad = replace(text, from, to), err[512];
	struct sim_profile *p = sim_profile_parse(bad, strlen(bad), base, err, sizeof(err));

	if (p != NULL)
		fail_msg("%s:%d: the broken profile loaded (%s -> %s)", file, line, from, to);
	if (strstr(err, msg) == NULL)
		fail_msg("%s:%d: message \"%s\" does not contain \"%s\"", file, line, err, msg);
	free(text);
	free(bad);
}
#define BROKEN(base, from, to, msg) expect_error((base), (from), (to), (msg), __FILE__, __LINE__)

static void test_repo_profiles_load(void **state)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char dir[1024], path[1300], err[512];
	struct dirent *de;
	DIR *d;
	int count = 0;

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
		/* The profile's name is its file's name: state files and logs rely on it. */
		assert_int_equal(strlen(p->name), n - 5);
		assert_memory_equal(p->name, de->d_name, n - 5);
		c = sim_token_new(p, SIM_ROLE_CARD);
		s = sim_token_new(p, SIM_ROLE_PSAM);
		assert_non_null(c);
		assert_non_null(s);
		sim_token_free(c);
		sim_token_free(s);
		sim_profile_free(p);
		count++;
	}
	closedir(d);
	assert_true(count >= 7);
}

static void test_required_profiles_exist(void **state)
{
	static const char *const names[] = { "gen2", "gen3", "gen3-readauth", "t0-quirks", "expired",
					     "pin-blocked", "gen2-wrongkey" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		sim_token_free(th_repo_token(names[i], SIM_ROLE_CARD));
}

static void test_broken_fields(void **state)
{
	(void)state;
	BROKEN("gen2", "\"stk\": \"4615A00102030405060708090A0B0C0D\"", "\"stk\": \"4615A0\"",
	       "gen2: card.keys.stk: expected 32 hex digits");
	BROKEN("gen2", "\"stk\": \"4615A00102030405060708090A0B0C0D\"",
	       "\"stk\": \"4615A00102030405060708090A0B0C0G\"", "card.keys.stk: expected 32 hex digits");
	BROKEN("gen2", "\"stk\": \"4615A00102030405060708090A0B0C0D\"", "\"stk\": 5",
	       "card.keys.stk: expected a string");
	BROKEN("gen2", "330102199003071230", "330102199003071231",
	       "card.holder.ssn: check character is 1, expected 0");
	BROKEN("gen2", "330102199003071230", "33010219900307123", "card.holder.ssn: expected 17 digits");
	BROKEN("gen2", "X00000019", "X00000018", "card.card_number: check character is 8, expected 9");
	BROKEN("gen2", "X00000019", "x00000019", "card.card_number: expected 8 characters");
	BROKEN("gen2", "\"sex\": \"1\"", "\"sex\": \"1\", \"nickname\": \"x\"",
	       "card.holder.nickname: unknown field");
	BROKEN("gen2", "\"sex\": \"1\"", "\"sex\": \"M\"", "card.holder.sex: expected");
	BROKEN("gen2", "\"pin\": \"123456\",", "", "card.pin: missing");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123\",", "card.pin: expected 4 to 12 decimal digits");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123456\", \"pin_tries\": 3, \"pin_tries_left\": 4,",
	       "card.pin_tries_left: 4 is out of range 0..3");
	BROKEN("gen2", "BF7C7A8D\"", "BF7C7A8E\"", "card.atr: TCK is wrong");
	BROKEN("gen2", "3B8E80010081544C92868433010000BF7C7A8D", "3B8E80010081544C92868433010000BF7C7A",
	       "card.atr: length 18 does not match");
	BROKEN("gen2", "3B8E80010081544C92868433010000BF7C7A8D", "3B858001330100000036",
	       "card.atr: needs at least 8 historical bytes");
	BROKEN("gen2", "3B8E80010081544C92868433010000BF7C7A8D", "2B8E80010081544C92868433010000BF7C7A8D",
	       "card.atr: TS must be 3B or 3F");
	BROKEN("gen2", "C9FC0FEC", "C9FC0FED", "card.card_id: MAC is C9FC0FED, expected C9FC0FEC");
	BROKEN("gen2", "\"card_id\": \"330100D15600000500BF7C7AC9FC0FEC\"",
	       "\"card_id\": \"330100D15600000500BF7C7BC9FC0FEC\"", "card.card_id: bytes 8..11 are 00BF7C7B");
	BROKEN("gen2", "\"card_id\": \"330100D156", "\"card_id\": \"330101D156",
	       "card.card_id: bytes 0..2 are 330101, expected the region 330100");
	BROKEN("gen2", "\"card_id\": \"330100D156000005", "\"card_id\": \"330100D156000006",
	       "card.card_id: bytes 3..7 must be D156000005");
	/* Changing 10 to 11 would flip only a DES parity bit: the MAC would stay the same. */
	BROKEN("gen2", "\"issuer\": \"0123456789ABCDEFFEDCBA9876543210\"",
	       "\"issuer\": \"0123456789ABCDEFFEDCBA9876543200\"",
	       "card.card_id: MAC is C9FC0FEC, expected");
	BROKEN("gen2", "\"relocated\": \"0\",", "\"relocated\": \"0\", \"x\": 1,",
	       "card.medical.x: unknown field");
	BROKEN("gen2", "\"name\": \"张三\"", "\"name\": \"张三张三张三张三张三张三张三张三张三张三张三张三张三\"",
	       "card.holder.name: 52 bytes in GB 18030, expected 1 to 50");
	BROKEN("gen2", "\"name\": \"张三\"", "\"name\": \"\"",
	       "card.holder.name: 0 bytes in GB 18030");
	/* 50 bytes, but 姓名 stops before 𫖯 (4 bytes at 29..32): 21 are left for 姓名扩展's 20. */
	BROKEN("gen2", "\"name\": \"张三\"",
	       "\"name\": \"A张张张张张张张张张张张张张张𫖯张张张张张张张张B\"",
	       "card.holder.name: 50 bytes in GB 18030: cut between whole characters, 姓名 takes 29 "
	       "and the 21 left exceed 姓名扩展's 20");
	BROKEN("gen2", "\"transaction_capacity\": 10", "\"transaction_capacity\": \"10\"",
	       "card.medical.transaction_capacity: expected an integer");
	BROKEN("gen2", "\"transaction_capacity\": 10", "\"transaction_capacity\": 65",
	       "card.medical.transaction_capacity: 65 is out of range 1..64");
	BROKEN("gen2", "\"transaction_capacity\": 10", "\"transaction_capacity\": 1",
	       "card.medical.transactions: 2 transactions, capacity is 1");
	BROKEN("gen2", "\"time\": \"20240315093000\"", "\"time\": \"20240315253000\"",
	       "card.medical.transactions[0].time: expected YYYYMMDDhhmmss");
	BROKEN("gen2", "\"total\": 12850", "\"total\": -1",
	       "card.medical.transactions[0].total: -1 is out of range 0..4294967295");
	BROKEN("gen2", "\"settlement_no\": \"S2024030200000000001\"",
	       "\"settlement_no\": \"S20240302000000000012\"",
	       "card.medical.transactions[1].settlement_no: longer than 20 characters");
	/* The DF04 fields carry the API's names; an old name says which one replaced it. */
	BROKEN("gen2", "\"settlement_no\": \"S2024030200000000001\"",
	       "\"serial\": \"S2024030200000000001\"",
	       "card.medical.transactions[1].serial: unknown field (renamed: \"settlement_no\", as in "
	       "the API)");
	BROKEN("gen2", "\"personal_account\": 2850", "\"account\": 2850",
	       "card.medical.transactions[0].account: unknown field (renamed: \"personal_account\"");
	BROKEN("gen2", "\"institution\": \"H33010000001\",\n      \"relocated\"",
	       "\"hospital\": \"H33010000001\",\n      \"relocated\"",
	       "card.medical.hospital: unknown field (renamed: \"institution\"");
	BROKEN("gen2", "\"issue_date\": \"20240101\"", "\"issue_date\": \"20240231\"",
	       "card.issue_date: expected a date YYYYMMDD");
	BROKEN("gen2", "\"expiry_date\": \"20340101\"", "\"expiry_date\": \"20230101\"",
	       "card.expiry_date: not after card.issue_date");
	BROKEN("gen2", "\"birth_date\": \"19900307\"", "\"birth_date\": \"1990037\"",
	       "card.holder.birth_date: expected a date YYYYMMDD");
	BROKEN("gen2", "\"nation\": \"01\"", "\"nation\": \"1\"", "card.holder.nation: expected 2 decimal digits");
	BROKEN("gen2", "\"init_org\": \"330100000001\"", "\"init_org\": \"3301000000012\"",
	       "card.init_org: longer than 12 characters");
	BROKEN("gen2", "sscard-sim-profile/1", "sscard-sim-profile/2", "gen2: format: expected");
	BROKEN("gen2", "\"name\": \"gen2\"", "\"name\": \"Gen 2\"", "gen2: name: expected");
	BROKEN("gen2", "\"spec_version\": \"2.00\"", "\"spec_version\": \"4.00\"", "card.spec_version: expected");
	BROKEN("gen2", "\"algorithm\": \"des\",\n    \"terminal_number\"",
	       "\"algorithm\": \"3des\",\n    \"terminal_number\"",
	       "psam.algorithm: expected \"des\" or \"sm4\"");
	BROKEN("gen2", "\"terminal_number\": \"330100000001\"", "\"terminal_number\": \"33010000000A\"",
	       "psam.terminal_number: expected 12 decimal digits");
	BROKEN("gen2", "\"pin\": \"123456\",",
	       "\"pin\": \"123456\", \"ef0d\": {\"person_id\": \"X\", \"first_region\": \"330100\"},",
	       "card.ef0d: only generation 3");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123456\", \"key_ids\": {\"stk\": \"04\"},",
	       "card.key_ids.stk: key id 04 is also ext_auth's");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123456\", \"key_ids\": {\"issuer\": \"09\"},",
	       "card.key_ids.issuer: the issuer key has no card key id");
	BROKEN("gen2", "\"terminal_number\": \"330100000001\"",
	       "\"terminal_number\": \"330100000001\", \"key_refs\": {\"puk\": \"4812\"}",
	       "psam.key_refs.puk: usage/index 4812 is also ext_auth's");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123456\", \"quirks\": {\"read_record_modes\": \"x\"},",
	       "card.quirks.read_record_modes: expected");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123456\", \"quirks\": {\"t0\": true},",
	       "card.quirks.t0: unknown field");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123456\", \"quirks\": {\"exact_le\": 1},",
	       "card.quirks.exact_le: expected true or false");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123456\", \"quirks\": {\"card_id_mac_bad\": true},",
	       "card.card_id: MAC is correct but card.quirks.card_id_mac_bad is set");
	BROKEN("gen2", "\"pin\": \"123456\",", "\"pin\": \"123456\", \"pin\": \"123456\",", "gen2: line");
	BROKEN("gen2", "\"psam\": {", "\"psam\": {{", "gen2: line");
	BROKEN("gen3", "\"ef0d\": {", "\"ef0e\": {", "card.ef0e: unknown field");
	BROKEN("gen3", "\"person_id\": \"P33020000001\"", "\"person_id\": \"P330200000012\"",
	       "card.ef0d.person_id: longer than 12 characters");
	BROKEN("gen1", "\"name\": \"吴十\"", "\"name\": \"张三张三张三张三张三张三张三张三\"",
	       "card.holder.name: 32 bytes in GB 18030, expected 1 to 30");
}

static void test_load_errors(void **state)
{
	char err[256];

	(void)state;
	assert_null(sim_profile_load("/nonexistent/x.json", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/x.json"));
	assert_null(sim_profile_load("/", err, sizeof(err)));
	assert_non_null(strstr(err, "/: "));
	assert_null(sim_profile_parse("[]", 2, "arr", err, sizeof(err)));
	assert_non_null(strstr(err, "arr: expected a JSON object"));
	assert_null(sim_profile_parse(NULL, 0, "nul", err, sizeof(err)));
	assert_null(sim_profile_parse("{}", 2, "small", err, 8));   /* truncated, still a string */
	assert_int_equal(strlen(err), 7);
	assert_null(sim_profile_parse("{}", 2, "nobuf", NULL, 0));
	sim_profile_free(NULL);
	sim_token_free(NULL);
	assert_null(sim_token_new(NULL, SIM_ROLE_CARD));
}

/*
 * Names beyond GBK: GB 18030, with 姓名 (09) cut between whole characters. The bytes were
 * written by hand from GB 18030 (iconv -t GB18030 agrees): 阿卜杜热合曼·买买提艾力·吐 is 28 bytes of
 * GBK characters, 𫖯 U+2B5AF is 98 38 F5 37, 䶮 U+4DAE is FE 9F.
 */
static void test_name_gb18030(void **state)
{
	char *text = repo_text("gen2"), *a, err[256];
	struct sim_profile *p;
	struct sim_token *t;

	(void)state;
	a = replace(text, "\"name\": \"张三\"", "\"name\": \"阿卜杜热合曼·买买提艾力·吐𫖯䶮\"");
	p = sim_profile_parse(a, strlen(a), "rare", err, sizeof(err));
	if (p == NULL)
		fail_msg("%s", err);
	t = sim_token_new(p, SIM_ROLE_CARD);
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	/* 09: the 28 bytes before 𫖯 and two bytes of padding, not 𫖯's first two bytes. */
	TX(t, "00B2023400", "091E" "B0A2B2B7B6C5C8C8BACFC2FCA1A4C2F2C2F2CCE1B0ACC1A6A1A4CDC2" "0000"
	   "9000");
	TX(t, "00B2033400", "4E14" "9838F537" "FE9F" "0000000000000000000000000000" "9000");
	sim_token_free(t);
	sim_profile_free(p);
	free(a);
	free(text);
}

/* A card_id left out is built from region, RID, chip serial and the issuer MAC; the switch flips it. */
static void test_card_id_built(void **state)
{
	char *text = repo_text("gen2"), *a, *b, err[256];
	struct sim_profile *p;
	struct sim_token *t;

	(void)state;
	a = replace(text, "\"card_id\": \"330100D15600000500BF7C7AC9FC0FEC\",", "");
	p = sim_profile_parse(a, strlen(a), "noid", err, sizeof(err));
	if (p == NULL)
		fail_msg("%s", err);
	t = sim_token_new(p, SIM_ROLE_CARD);
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2012C00", "0110330100D15600000500BF7C7AC9FC0FEC9000");
	sim_token_free(t);
	sim_profile_free(p);
	b = replace(a, "\"pin\": \"123456\",", "\"pin\": \"123456\", \"quirks\": {\"card_id_mac_bad\": true},");
	p = sim_profile_parse(b, strlen(b), "badid", err, sizeof(err));
	if (p == NULL)
		fail_msg("%s", err);
	t = sim_token_new(p, SIM_ROLE_CARD);
	TX(t, SEL_SSSE, FCI_SSSE_DES "9000");
	TX(t, "00B2012C00", "0110330100D15600000500BF7C7A3603F0139000");   /* ~C9FC0FEC */
	sim_token_free(t);
	sim_profile_free(p);
	free(a);
	free(b);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repo_profiles_load),
		cmocka_unit_test(test_required_profiles_exist),
		cmocka_unit_test(test_broken_fields),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_card_id_built),
		cmocka_unit_test(test_name_gb18030),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
