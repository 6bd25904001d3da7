/*
 * This file contains the unit tests of src/config.c: the defaults, a file that sets every key, and
 * one bad file per kind of mistake, each of which must name the file, the line and the key. The
 * expected values are written by hand from the comments of src/config.h and spec §12.4.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "sscard/error.h"

static char tmpdir[64];
static char cfgpath[128];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ssc-test-config-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(cfgpath, sizeof(cfgpath), "%s/sscardd.conf", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	unlink(cfgpath);
	rmdir(tmpdir);
	return 0;
}

static void write_cfg(const char *text)
{
	FILE *f = fopen(cfgpath, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Loads text over the defaults; returns the code, leaves the message in err. */
static int load(struct config *cfg, const char *text, char *err, size_t errlen)
{
	config_defaults(cfg);
	write_cfg(text);
	return config_load(cfg, cfgpath, err, errlen);
}

static void assert_key(const struct config_key *k, uint8_t kid, uint8_t usage, uint8_t index)
{
	assert_int_equal(k->card_kid, kid);
	assert_int_equal(k->usage, usage);
	assert_int_equal(k->index, index);
}

static void test_defaults(void **state)
{
	struct config cfg;

	config_defaults(&cfg);
	assert_string_equal(cfg.socket_path, "/run/sscard/sscardd.sock");
	assert_string_equal(cfg.socket_group, "sscard");
	assert_int_equal(cfg.socket_mode, 0660);
	assert_string_equal(cfg.log_level, "info");
	assert_int_equal(cfg.max_clients, 1024);
	assert_int_equal(cfg.max_clients_per_uid, 256);
	assert_int_equal(cfg.max_request_bytes, 65536);
	assert_int_equal(cfg.max_json_depth, 16);
	assert_int_equal(cfg.max_inflight_per_client, 16);
	assert_int_equal(cfg.max_queued_per_reader, 0);
	/* A reader's queue holds what all clients may have in flight: 1024 x 16. */
	assert_int_equal(config_queued_per_reader(&cfg), 16384);
	cfg.max_clients = 65536;
	cfg.max_inflight_per_client = 4096;
	assert_int_equal(config_queued_per_reader(&cfg), 1048576);
	cfg.max_queued_per_reader = 5;
	assert_int_equal(config_queued_per_reader(&cfg), 5);
	config_defaults(&cfg);
	assert_int_equal(cfg.idle_timeout_ms, 600000);
	assert_int_equal(cfg.op_timeout_ms, 10000);
	assert_int_equal(cfg.apdu_timeout_ms, 5000);
	assert_int_equal(cfg.connect_timeout_ms, 2000);
	assert_int_equal(cfg.psam_timeout_ms, 5000);
	assert_int_equal(cfg.driver_pcsc, 1);
	assert_int_equal(cfg.driver_usb, 0);
	assert_string_equal(cfg.usb_allow, "");
	assert_int_equal(cfg.poll_interval_ms, 500);
	assert_int_equal(cfg.n_roles, 0);
	assert_int_equal(cfg.read_auth, READ_AUTH_AUTO);
	assert_int_equal(cfg.verify_card_id_mac, 0);
	assert_int_equal(cfg.card_id_mac_key_set, 0);
	assert_int_equal(cfg.pin_min_len, 4);
	assert_int_equal(cfg.pin_max_len, 12);
	/* spec §12.4 */
	assert_key(&cfg.key_write_ssse, 0x04, 0x48, 0x12);
	assert_key(&cfg.key_write_ef0d, 0x0D, 0x48, 0x13);
	assert_key(&cfg.key_read_auth, 0x0A, 0x48, 0x1A);
	assert_key(&cfg.key_internal, 0x00, 0x47, 0x11);
	assert_key(&cfg.key_stk, 0x05, 0x46, 0x15);
	assert_key(&cfg.key_pin_reload, 0x06, 0x44, 0x16);
	assert_key(&cfg.key_pin_unblock, 0x07, 0x43, 0x17);
	assert_int_equal(cfg.psam_aid_len, 6);
	assert_memory_equal(cfg.psam_aid, "\xD1\x56\x00\x00\x05\x90", 6);
	assert_int_equal(cfg.require_internal_auth, 0);
	assert_int_equal(cfg.prefetch, 1);
	assert_int_equal(cfg.prefetch_shared, 1);
	/* Both initial PINs in use (spec §12.4: 123456, and 888888 in the gen3 profiles). */
	assert_int_equal(cfg.n_initial_pins, 2);
	assert_string_equal(cfg.initial_pins[0], "123456");
	assert_string_equal(cfg.initial_pins[1], "888888");
	assert_int_equal(cfg.refuse_initial_pin, 0);
	assert_string_equal(cfg.notice, "");
	assert_string_equal(cfg.journal_path, "/var/lib/sscard/journal.db");
	assert_string_equal(cfg.journal_key_path, "");
	assert_int_equal(cfg.journal_retention_days, 365);
	assert_int_equal(cfg.journal_reopen_ms, 30000);
	assert_int_equal(cfg.journal_head_ms, 60000);
	assert_int_equal(cfg.journal_audit_batch_ms, 20);
}

static const char good_file[] =
	"; every key, none at its default\n"
	"[daemon]\n"
	"socket_path = /tmp/x/sscardd.sock\n"
	"socket_group = desk\n"
	"socket_mode = 0600\n"
	"log_level = debug\n"
	"\n"
	"[limits]\n"
	"  max_clients = 50          ; indented keys are keys\n"
	"  max_clients_per_uid = 7\n"
	"max_request_bytes = 4096\n"
	"max_json_depth = 8\n"
	"max_inflight_per_client = 3\n"
	"idle_timeout_ms = 30000\n"
	"[timeouts]\r\n"
	"op_timeout_ms = 12000\r\n"
	"apdu_timeout_ms = 3000\n"
	"connect_timeout_ms = 1500\n"
	"psam_timeout_ms = 4000\n"
	"[drivers]\n"
	"pcsc = no\n"
	"usb = yes\n"
	"usb_allow = 072f:b100,04e6:5116\n"
	"poll_interval_ms = 250\n"
	"[readers]\n"
	"role.pcsc-virtual-pcd-00-01 = psam\n"
	"role.Virtual PCD 00 00 = user\n"
	"role.usb-ccid-1-2 = ignore\n"
	"[card]\n"
	"read_auth = always\n"
	"verify_card_id_mac = true\n"
	"card_id_mac_key = 0123456789ABCDEFFEDCBA9876543210\n"
	"pin_min_len = 6\n"
	"pin_max_len = 8\n"
	"require_internal_auth = yes\n"
	"prefetch = no\n"
	"prefetch_shared = no\n"
	"initial_pins = 000000, 13572468 ,9999\n"
	"refuse_initial_pin = on\n"
	"[keys]\n"
	"write_ssse = 14/58/22\n"
	"write_ef0d = 1D/58/23\n"
	"read_auth = 1A/58/2A\n"
	"internal = 10/57/21\n"
	"stk = 15/56/25\n"
	"pin_reload = 16/54/26\n"
	"pin_unblock = 7/3/a\n"
	"psam_aid = D156000005A0\n"
	"[journal]\n"
	"path = /tmp/x/journal.db\n"
	"key_path = /etc/sscard/journal.key\n"
	"retention_days = 0\n"
	"reopen_interval_ms = 1000\n"
	"head_interval_ms = 5000\n"
	"audit_batch_ms = 0\n";

static void test_good_file(void **state)
{
	struct config cfg;
	char err[256];
	static const uint8_t irk[16] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
					 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10 };

	assert_int_equal(load(&cfg, good_file, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(cfg.socket_path, "/tmp/x/sscardd.sock");
	assert_string_equal(cfg.socket_group, "desk");
	assert_int_equal(cfg.socket_mode, 0600);
	assert_string_equal(cfg.log_level, "debug");
	assert_int_equal(cfg.max_clients, 50);
	assert_int_equal(cfg.max_clients_per_uid, 7);
	assert_int_equal(cfg.max_request_bytes, 4096);
	assert_int_equal(cfg.max_json_depth, 8);
	assert_int_equal(cfg.max_inflight_per_client, 3);
	assert_int_equal(cfg.idle_timeout_ms, 30000);
	assert_int_equal(cfg.op_timeout_ms, 12000);
	assert_int_equal(cfg.apdu_timeout_ms, 3000);
	assert_int_equal(cfg.connect_timeout_ms, 1500);
	assert_int_equal(cfg.psam_timeout_ms, 4000);
	assert_int_equal(cfg.driver_pcsc, 0);
	assert_int_equal(cfg.driver_usb, 1);
	assert_string_equal(cfg.usb_allow, "072f:b100,04e6:5116");
	assert_int_equal(cfg.poll_interval_ms, 250);
	assert_int_equal(cfg.n_roles, 3);
	assert_string_equal(cfg.roles[0].reader, "pcsc-virtual-pcd-00-01");
	assert_string_equal(cfg.roles[0].role, "psam");
	assert_string_equal(cfg.roles[1].reader, "Virtual PCD 00 00");
	assert_string_equal(cfg.roles[1].role, "user");
	assert_string_equal(cfg.roles[2].reader, "usb-ccid-1-2");
	assert_string_equal(cfg.roles[2].role, "ignore");
	assert_int_equal(cfg.read_auth, READ_AUTH_ALWAYS);
	assert_int_equal(cfg.verify_card_id_mac, 1);
	assert_int_equal(cfg.card_id_mac_key_set, 1);
	assert_memory_equal(cfg.card_id_mac_key, irk, 16);
	assert_int_equal(cfg.pin_min_len, 6);
	assert_int_equal(cfg.pin_max_len, 8);
	assert_key(&cfg.key_write_ssse, 0x14, 0x58, 0x22);
	assert_key(&cfg.key_write_ef0d, 0x1D, 0x58, 0x23);
	assert_key(&cfg.key_read_auth, 0x1A, 0x58, 0x2A);
	assert_key(&cfg.key_internal, 0x10, 0x57, 0x21);
	assert_key(&cfg.key_stk, 0x15, 0x56, 0x25);
	assert_key(&cfg.key_pin_reload, 0x16, 0x54, 0x26);
	assert_key(&cfg.key_pin_unblock, 0x07, 0x03, 0x0A);
	assert_int_equal(cfg.psam_aid_len, 6);
	assert_memory_equal(cfg.psam_aid, "\xD1\x56\x00\x00\x05\xA0", 6);
	assert_int_equal(cfg.require_internal_auth, 1);
	assert_int_equal(cfg.prefetch, 0);
	assert_int_equal(cfg.prefetch_shared, 0);
	assert_int_equal(cfg.n_initial_pins, 3);
	assert_string_equal(cfg.initial_pins[0], "000000");
	assert_string_equal(cfg.initial_pins[1], "13572468");
	assert_string_equal(cfg.initial_pins[2], "9999");
	assert_int_equal(cfg.refuse_initial_pin, 1);
	assert_string_equal(cfg.notice, "");
	assert_string_equal(cfg.journal_path, "/tmp/x/journal.db");
	assert_string_equal(cfg.journal_key_path, "/etc/sscard/journal.key");
	assert_int_equal(cfg.journal_retention_days, 0);
	assert_int_equal(cfg.journal_reopen_ms, 1000);
	assert_int_equal(cfg.journal_head_ms, 5000);
	assert_int_equal(cfg.journal_audit_batch_ms, 0);

	config_wipe(&cfg);
	assert_int_equal(cfg.card_id_mac_key_set, 0);
	for (size_t i = 0; i < sizeof(cfg.card_id_mac_key); i++)
		assert_int_equal(cfg.card_id_mac_key[i], 0);
}

static void test_empty_file_keeps_defaults(void **state)
{
	struct config cfg, def;
	char err[256];

	config_defaults(&def);
	assert_int_equal(load(&cfg, "; nothing\n\n# still nothing\n[daemon]\n", err,
			      sizeof(err)), 0);
	assert_memory_equal(&cfg, &def, sizeof(cfg));
}

static void test_second_file_overrides_roles(void **state)
{
	struct config cfg;
	char err[256];

	assert_int_equal(load(&cfg, "[readers]\nrole.a = user\n", err, sizeof(err)), 0);
	write_cfg("[readers]\nrole.a = psam\nrole.b = ignore\n");
	assert_int_equal(config_load(&cfg, cfgpath, err, sizeof(err)), 0);
	assert_int_equal(cfg.n_roles, 2);
	assert_string_equal(cfg.roles[0].reader, "a");
	assert_string_equal(cfg.roles[0].role, "psam");
	assert_string_equal(cfg.roles[1].role, "ignore");
}

/* One bad file: the expected code, and the text the message must contain after "FILE:". */
struct bad_case {
	const char *text;
	int code;
	const char *expect;   /* after "<path>" */
};

static const struct bad_case bad_cases[] = {
	{ "[daemon]\nlog_level = info\n[daemons]\nsocket_path = /x\n", SSC_ECONFIG,
	  ":3: unknown section [daemons]" },
	{ "[nosuch]\n", SSC_ECONFIG, ":1: unknown section [nosuch]" },
	{ "[limits]\nmax_clients = 10\nmax_client = 10\n", SSC_ECONFIG,
	  ":3: [limits] max_client: unknown key" },
	{ "socket_path = /x\n", SSC_ECONFIG, ":1: key \"socket_path\" outside any [section]" },
	{ "[limits]\nmax_clients = ten\n", SSC_ECONFIG,
	  ":2: [limits] max_clients: expected an integer in 1..65536" },
	{ "[limits]\nmax_clients = 0\n", SSC_ECONFIG,
	  ":2: [limits] max_clients: expected an integer in 1..65536" },
	{ "[limits]\nmax_clients = 12x\n", SSC_ECONFIG,
	  ":2: [limits] max_clients: expected an integer" },
	{ "[limits]\nmax_request_bytes = 99999999999999999999999\n", SSC_ECONFIG,
	  ":2: [limits] max_request_bytes: expected an integer" },
	{ "[timeouts]\nop_timeout_ms = -5\n", SSC_ECONFIG,
	  ":2: [timeouts] op_timeout_ms: expected an integer" },
	{ "[daemon]\nsocket_mode = 0668\n", SSC_ECONFIG,
	  ":2: [daemon] socket_mode: expected an octal mode" },
	{ "[daemon]\nsocket_mode = 01777\n", SSC_ECONFIG,
	  ":2: [daemon] socket_mode: expected an octal mode" },
	{ "[daemon]\nlog_level = loud\n", SSC_ECONFIG,
	  ":2: [daemon] log_level: expected error, warn, info, debug or trace" },
	{ "[drivers]\npcsc = maybe\n", SSC_ECONFIG, ":2: [drivers] pcsc: expected yes or no" },
	{ "[card]\nread_auth = sometimes\n", SSC_ECONFIG,
	  ":2: [card] read_auth: expected auto, always or never" },
	{ "[keys]\nwrite_ssse = 04/48\n", SSC_ECONFIG,
	  ":2: [keys] write_ssse: expected card-key/usage/index in hex" },
	{ "[keys]\nwrite_ssse = 04/48/123\n", SSC_ECONFIG,
	  ":2: [keys] write_ssse: expected card-key/usage/index in hex" },
	{ "[keys]\nstk = 0G/46/15\n", SSC_ECONFIG, ":2: [keys] stk: expected card-key/usage/index" },
	{ "[keys]\npsam_aid = D1560000\n", SSC_ECONFIG, ":2: [keys] psam_aid: expected 5 to 16" },
	{ "[card]\ncard_id_mac_key = 0123456789ABCDEFFEDCBA98765432\n", SSC_ECONFIG,
	  ":2: [card] card_id_mac_key: expected 32 hex digits" },
	{ "[readers]\nrole.x = reader\n", SSC_ECONFIG,
	  ":2: [readers] role.x: expected user, psam or ignore" },
	{ "[readers]\nrole. = user\n", SSC_ECONFIG, ":2: [readers] role.: the key needs a reader" },
	{ "[readers]\nrole.x = user\nrole.x = psam\n", SSC_ECONFIG,
	  ":3: [readers] role.x: set twice (first at line 2)" },
	{ "[readers]\npsam = x\n", SSC_ECONFIG, ":2: [readers] psam: unknown key" },
	{ "[limits]\nmax_clients = 10\n\n[limits]\nmax_clients = 11\n", SSC_ECONFIG,
	  ":5: [limits] max_clients: set twice (first at line 2)" },
	{ "[daemon]\nsocket_group = abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
	  "abcdefghij\n", SSC_ECONFIG, ":2: [daemon] socket_group: value longer than 63" },
	{ "[daemon]\n; a comment\nthis line has no equals sign\n", SSC_ECONFIG,
	  ":3: syntax error" },
	{ "[daemon\n", SSC_ECONFIG, ":1: syntax error" },
	{ "[daemon]\nsocket_path = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", SSC_ECONFIG,
	  ":2: line longer than 198 characters" },
	{ "[card]\npin_min_len = 8\npin_max_len = 6\n", SSC_ECONFIG,
	  ": [card] pin_min_len (8) is greater than pin_max_len (6)" },
	{ "[card]\npin_max_len = 13\n", SSC_ECONFIG,
	  ":2: [card] pin_max_len: expected an integer in 4..12" },
	{ "[card]\nverify_card_id_mac = yes\n", SSC_ECONFIG,
	  ": [card] verify_card_id_mac = yes needs card_id_mac_key" },
	{ "[daemon]\nsocket_path = relative.sock\n", SSC_ECONFIG,
	  ": [daemon] socket_path must be an absolute path" },
	{ "[journal]\npath = journal.db\n", SSC_ECONFIG,
	  ": [journal] path and key_path must be absolute paths" },
	{ "[journal]\nkey_path = journal.key\n", SSC_ECONFIG,
	  ": [journal] path and key_path must be absolute paths" },
	{ "[journal]\nretention_days = -1\n", SSC_ECONFIG,
	  ":2: [journal] retention_days: expected an integer in 0..36500" },
	{ "[journal]\nreopen_interval_ms = 999\n", SSC_ECONFIG,
	  ":2: [journal] reopen_interval_ms: expected an integer in 1000..3600000" },
	{ "[journal]\nhead_interval_ms = 0\n", SSC_ECONFIG,
	  ":2: [journal] head_interval_ms: expected an integer in 1000..3600000" },
	{ "[journal]\naudit_batch_ms = 1001\n", SSC_ECONFIG,
	  ":2: [journal] audit_batch_ms: expected an integer in 0..1000" },
	{ "[card]\ninitial_pins = 123456 12a456\n", SSC_ECONFIG,
	  ":2: [card] initial_pins: expected PINs of digits, separated by blanks or commas" },
	{ "[card]\ninitial_pins = 123456 123\n", SSC_ECONFIG,
	  ":2: [card] initial_pins: PIN 2 is not 4 to 12 digits" },
	{ "[card]\ninitial_pins = 1234567890123\n", SSC_ECONFIG,
	  ":2: [card] initial_pins: PIN 1 is not 4 to 12 digits" },
	{ "[card]\ninitial_pins = 1111 2222 3333 4444 5555 6666 7777 8888 9999\n", SSC_ECONFIG,
	  ":2: [card] initial_pins: more than 8 PINs" },
	{ "[card]\ninitial_pins = 888888,123456,888888\n", SSC_ECONFIG,
	  ":2: [card] initial_pins: PIN 3 repeats PIN 1" },
	{ "[card]\ninitial_pin = 12345x\n", SSC_ECONFIG,
	  ":2: [card] initial_pin: must be 4 to 12 digits" },
	{ "[card]\ninitial_pin = 888888 123456\n", SSC_ECONFIG,
	  ":2: [card] initial_pin: must be 4 to 12 digits" },
	{ "[card]\ninitial_pins = 123456\ninitial_pin = 888888\n", SSC_ECONFIG,
	  ":3: [card] initial_pin: set initial_pins only (initial_pin is its deprecated one-PIN "
	  "form; initial_pins is at line 2)" },
};

static void test_bad_files(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct config cfg;
		char err[256], want[256];

		snprintf(want, sizeof(want), "%s%s", cfgpath, bad_cases[i].expect);
		print_message("case %zu: want \"%s\"\n", i, want);
		assert_int_equal(load(&cfg, bad_cases[i].text, err, sizeof(err)), bad_cases[i].code);
		print_message("         got  \"%s\"\n", err);
		assert_int_equal(strncmp(err, want, strlen(want)), 0);
	}
}

/*
 * [card] initial_pins (issue 11): a list, whose default holds both initial PINs in use; an empty
 * value is an empty list; the deprecated initial_pin still loads, as a list of its one PIN, and
 * leaves a notice for the daemon's log that names the file, the line and the new key.
 */
static void test_initial_pins(void **state)
{
	struct config cfg;
	char err[256], want[512];

	(void)state;
	assert_int_equal(load(&cfg, "[card]\ninitial_pins =\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_initial_pins, 0);
	assert_int_equal(load(&cfg, "[card]\ninitial_pins = 888888\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_initial_pins, 1);
	assert_string_equal(cfg.initial_pins[0], "888888");
	assert_string_equal(cfg.initial_pins[1], "");
	assert_int_equal(load(&cfg, "[card]\ninitial_pins = 123456789012\t 4321\n", err,
			      sizeof(err)), 0);
	assert_int_equal(cfg.n_initial_pins, 2);
	assert_string_equal(cfg.initial_pins[0], "123456789012");
	assert_string_equal(cfg.initial_pins[1], "4321");
	assert_string_equal(cfg.notice, "");

	assert_int_equal(load(&cfg, "[daemon]\nlog_level = info\n[card]\ninitial_pin = 246810\n",
			      err, sizeof(err)), 0);
	assert_int_equal(cfg.n_initial_pins, 1);
	assert_string_equal(cfg.initial_pins[0], "246810");
	snprintf(want, sizeof(want), "%s:4: [card] initial_pin is deprecated: it is read as "
		 "initial_pins with that one PIN, in place of the default list of two; write "
		 "initial_pins instead", cfgpath);
	assert_string_equal(cfg.notice, want);
	/* No PIN in the notice or in an error. */
	assert_null(strstr(cfg.notice, "246810"));
	assert_int_not_equal(load(&cfg, "[card]\ninitial_pins = 135790 24680x\n", err,
				  sizeof(err)), 0);
	assert_null(strstr(err, "135790"));
	assert_null(strstr(err, "24680"));
}

static void test_secret_not_echoed(void **state)
{
	struct config cfg;
	char err[256];

	/* 31 hex digits: a typo in a key must not put the key into a log line. */
	assert_int_equal(load(&cfg, "[card]\ncard_id_mac_key = 0123456789ABCDEFFEDCBA987654321\n",
			      err, sizeof(err)), SSC_ECONFIG);
	assert_null(strstr(err, "0123456789"));
	assert_int_equal(cfg.card_id_mac_key_set, 0);
}

static void test_missing_file(void **state)
{
	struct config cfg;
	char err[256], path[160];

	config_defaults(&cfg);
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), SSC_EIO);
	assert_non_null(strstr(err, "does-not-exist.conf"));
	/* A directory is not a config file either. */
	assert_int_equal(config_load(&cfg, tmpdir, err, sizeof(err)), SSC_EIO);
}

/* Every key, by section, as docs/operations.md lists them. */
static const char *const all_keys[] = {
	"[daemon]", "socket_path", "socket_group", "socket_mode", "log_level",
	"[limits]", "max_clients", "max_clients_per_uid", "max_request_bytes", "max_json_depth",
	"max_inflight_per_client", "max_queued_per_reader", "idle_timeout_ms",
	"[timeouts]", "op_timeout_ms", "apdu_timeout_ms", "connect_timeout_ms", "psam_timeout_ms",
	"card_hold_ms", "hsm_session_ms",
	"[drivers]", "pcsc", "usb", "usb_allow", "poll_interval_ms",
	"[readers]", "role.",
	"[card]", "read_auth", "verify_card_id_mac", "card_id_mac_key", "pin_min_len", "pin_max_len",
	"require_internal_auth", "initial_pins", "refuse_initial_pin", "prefetch",
	"prefetch_shared",
	"[keys]", "write_ssse", "write_ef0d", "read_auth", "internal", "stk", "pin_reload",
	"pin_unblock", "psam_aid",
	"[journal]", "path", "key_path", "retention_days", "reopen_interval_ms", "head_interval_ms",
	"audit_batch_ms",
	"[hsm]", "url", "ca_file", "cert_file", "key_file", "timeout_ms", "prefer",
	"[web]", "bridge_user", "admin_group", "pairing_code_ttl_s",
};

/* [hsm]: the network PSAM's keys, their defaults, and what config_load refuses. */
static void test_hsm_keys(void **state)
{
	static const struct {
		const char *text, *expect;
	} bad[] = {
		{ "[hsm]\nurl = http://keys.example:8443\nca_file = /a\ncert_file = /b\n"
		  "key_file = /c\n", ": [hsm] url: expected the key server's base URL" },
		{ "[hsm]\nurl = https://\nca_file = /a\ncert_file = /b\nkey_file = /c\n",
		  ": [hsm] url: expected" },
		{ "[hsm]\nurl = https://k/x?y=1\nca_file = /a\ncert_file = /b\nkey_file = /c\n",
		  ": [hsm] url: expected" },
		{ "[hsm]\nurl = https://k\ncert_file = /b\nkey_file = /c\n",
		  ": [hsm] url needs ca_file, an absolute path" },
		{ "[hsm]\nurl = https://k\nca_file = /a\ncert_file = b.pem\nkey_file = /c\n",
		  ": [hsm] url needs cert_file, an absolute path" },
		{ "[hsm]\nurl = https://k\nca_file = /a\ncert_file = /b\n",
		  ": [hsm] url needs key_file, an absolute path" },
		{ "[hsm]\ntimeout_ms = 99\n", ":2: [hsm] timeout_ms: expected an integer in "
		  "100..600000" },
		{ "[hsm]\nprefer = network\n", ":2: [hsm] prefer: expected psam or hsm" },
		{ "[hsm]\npassword = x\n", ":2: [hsm] password: unknown key" },
	};
	struct config cfg;
	char err[256], want[256];

	(void)state;
	config_defaults(&cfg);
	assert_string_equal(cfg.hsm_url, "");
	assert_int_equal(cfg.hsm_timeout_ms, 3000);
	assert_int_equal(cfg.hsm_prefer, HSM_PREFER_PSAM);
	assert_int_equal(load(&cfg, "[hsm]\nurl = https://keys.example:8443/psam\n"
			      "ca_file = /etc/sscard/hsm-ca.pem\ncert_file = /etc/sscard/desk.pem\n"
			      "key_file = /etc/sscard/desk.key\ntimeout_ms = 1500\nprefer = hsm\n",
			      err, sizeof(err)), 0);
	assert_string_equal(cfg.hsm_url, "https://keys.example:8443/psam");
	assert_string_equal(cfg.hsm_ca_file, "/etc/sscard/hsm-ca.pem");
	assert_string_equal(cfg.hsm_cert_file, "/etc/sscard/desk.pem");
	assert_string_equal(cfg.hsm_key_file, "/etc/sscard/desk.key");
	assert_int_equal(cfg.hsm_timeout_ms, 1500);
	assert_int_equal(cfg.hsm_prefer, HSM_PREFER_HSM);
	/* Files without a URL: nothing to check (no key server). */
	assert_int_equal(load(&cfg, "[hsm]\nca_file = relative.pem\nprefer = psam\n", err,
			      sizeof(err)), 0);
	assert_int_equal(cfg.hsm_prefer, HSM_PREFER_PSAM);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want), "%s%s", cfgpath, bad[i].expect);
		print_message("case %zu: want \"%s\"\n", i, want);
		assert_int_equal(load(&cfg, bad[i].text, err, sizeof(err)), SSC_ECONFIG);
		print_message("         got  \"%s\"\n", err);
		assert_int_equal(strncmp(err, want, strlen(want)), 0);
	}
}

/*
 * conf/sscardd.conf shows every key commented out at its default: loading it as it is, and with
 * every default uncommented, must both give exactly the defaults.
 */
static void test_example_file_is_the_defaults(void **state)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char path[512], line[512], err[256];
	char *text, *uncommented;
	size_t tl = 0, ul = 0;
	struct config cfg, def;
	FILE *f;

	if (!src)
		src = ".";
	snprintf(path, sizeof(path), "%s/conf/sscardd.conf", src);
	config_defaults(&def);
	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_memory_equal(&cfg, &def, sizeof(cfg));

	f = fopen(path, "r");
	assert_non_null(f);
	text = calloc(1, 65536);
	uncommented = calloc(1, 65536);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line), k = 1;

		memcpy(text + tl, line, n);
		tl += n;
		/* ";key = value" with a lower-case key: a default to uncomment. The secret has
		 * none, and the roles are examples, not defaults. */
		while ((line[k] >= 'a' && line[k] <= 'z') || line[k] == '_')
			k++;
		if (line[0] == ';' && k > 1 && strncmp(line + k, " =", 2) == 0 &&
		    strncmp(line, ";card_id_mac_key", 16) != 0 && strncmp(line, ";role.", 6) != 0) {
			memcpy(uncommented + ul, line + 1, n - 1);
			ul += n - 1;
		} else {
			memcpy(uncommented + ul, line, n);
			ul += n;
		}
		assert_true(tl < 60000 && ul < 60000);
	}
	fclose(f);
	for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
		char want[64];

		if (all_keys[i][0] == '[')
			snprintf(want, sizeof(want), "\n%s\n", all_keys[i]);
		else if (strcmp(all_keys[i], "role.") == 0)
			snprintf(want, sizeof(want), "\n;%s", all_keys[i]);
		else
			snprintf(want, sizeof(want), "\n;%s =", all_keys[i]);
		print_message("looking for %s\n", all_keys[i]);
		assert_non_null(strstr(text, want));
	}
	/* Every key shown with its default: more than 30 lines uncommented. */
	assert_int_equal(load(&cfg, uncommented, err, sizeof(err)), 0);
	assert_memory_equal(&cfg, &def, sizeof(cfg));
	free(text);
	free(uncommented);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_empty_file_keeps_defaults),
		cmocka_unit_test(test_second_file_overrides_roles),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_initial_pins),
		cmocka_unit_test(test_secret_not_echoed),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_example_file_is_the_defaults),
		cmocka_unit_test(test_hsm_keys),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
