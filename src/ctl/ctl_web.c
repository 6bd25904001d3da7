/*
 * This file contains sscardctl's web commands (src/ctl/ctl_web.h): the operator lets a browser
 * page in (a single-use code the page's user types), lists and revokes what was let in. The daemon
 * checks that the caller is root or in [web] admin_group.
 */
#include <stdio.h>
#include <string.h>

#include "ctl_web.h"

int ctl_web_request(const char *const *args, int n, const char **method, json_t **params)
{
	if (n == 2 && strcmp(args[1], "list") == 0) {
		*method = "web.list";
		*params = NULL;
		return 0;
	}
	if (n != 3)
		return -1;
	if (strcmp(args[1], "pair") == 0)
		*method = "web.pair";
	else if (strcmp(args[1], "revoke") == 0)
		*method = "web.revoke";
	else
		return -1;
	*params = json_pack("{s:s}", "origin", args[2]);
	return *params ? 0 : -1;
}

void ctl_web_print(const char *sub, json_t *res)
{
	const char *origin = json_string_value(json_object_get(res, "origin"));
	size_t i;
	json_t *v;

	if (strcmp(sub, "pair") == 0) {
		long long s = (long long)json_integer_value(json_object_get(res, "expires_in_ms")) /
			      1000;

		printf("pairing code for %s (single use, valid for %lld %s): type it into the "
		       "page\n%s\n", origin ? origin : "?", s % 60 ? s : s / 60,
		       s % 60 ? "seconds" : "minutes",
		       json_string_value(json_object_get(res, "code")));
		return;
	}
	if (strcmp(sub, "revoke") == 0) {
		printf("%s: %lld paired page(s) revoked\n", origin ? origin : "?",
		       (long long)json_integer_value(json_object_get(res, "revoked")));
		return;
	}
	if (json_array_size(json_object_get(res, "pairings")) == 0)
		printf("no paired origins\n");
	else
		printf("%-40s %6s  %-20s  %s\n", "ORIGIN", "PAGES", "FIRST PAIRED", "LAST USED");
	json_array_foreach(json_object_get(res, "pairings"), i, v) {
		const char *lu = json_string_value(json_object_get(v, "last_used"));

		printf("%-40s %6lld  %-20s  %s\n",
		       json_string_value(json_object_get(v, "origin")),
		       (long long)json_integer_value(json_object_get(v, "tokens")),
		       json_string_value(json_object_get(v, "created")),
		       lu && lu[0] ? lu : "never");
	}
	json_array_foreach(json_object_get(res, "codes"), i, v)
		printf("code waiting for %s (expires in %lld s)\n",
		       json_string_value(json_object_get(v, "origin")),
		       (long long)json_integer_value(json_object_get(v, "expires_in_ms")) / 1000);
}
