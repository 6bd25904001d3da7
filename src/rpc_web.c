/*
 * This file contains the daemon's side of the browser bridge (src/rpc_web.h). Why the checks are
 * as they are: the bridge is one local program among others, so the daemon believes the origin a
 * connection names only when the kernel says the peer runs as [web] bridge_user; a page proves it
 * was let in by the operator with a token that only the pairing gave it; and only the operator
 * (root or [web] admin_group, by the kernel's word too) makes codes, lists and revokes.
 */
#include <grp.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <string.h>

#include "config.h"
#include "jsontext.h"
#include "rpc_web.h"

int rpc_web_setup(const struct config *cfg, struct webpair *pairs, struct rpc_web_cfg *out,
		  struct ssc_diag *diag)
{
	char buf[4096];

	memset(out, 0, sizeof(*out));
	out->pairs = pairs;
	if (cfg->web_bridge_user[0]) {
		struct passwd pw, *p = NULL;

		if (getpwnam_r(cfg->web_bridge_user, &pw, buf, sizeof(buf), &p) != 0 || !p)
			return ssc_diag_set(diag, SSC_ECONFIG, "[web] bridge_user: no user \"%s\"",
					    cfg->web_bridge_user);
		out->have_bridge = 1;
		out->bridge_uid = p->pw_uid;
	}
	if (cfg->web_admin_group[0]) {
		struct group gr, *g = NULL;

		if (getgrnam_r(cfg->web_admin_group, &gr, buf, sizeof(buf), &g) != 0 || !g)
			return ssc_diag_set(diag, SSC_ECONFIG, "[web] admin_group: no group \"%s\"",
					    cfg->web_admin_group);
		out->have_admin = 1;
		out->admin_gid = g->gr_gid;
	}
	return 0;
}

char *rpc_web_detail(const char *detail, const char *origin)
{
	json_t *d;
	char *out;

	if (!origin || !origin[0])
		return NULL;
	d = detail && detail[0] ? json_loads(detail, 0, NULL) : NULL;
	if (!json_is_object(d)) {
		json_decref(d);
		d = json_object();
	}
	json_object_set_new(d, "origin", json_string(origin));
	out = jsontext_dump(d, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(d);
	return out;
}

static int is_admin(const struct rpc_web_cfg *cfg, const struct rpc_web_peer *peer)
{
	if (peer->uid == 0)
		return 1;
	if (!cfg->have_admin)
		return 0;
	if (peer->gid == cfg->admin_gid)
		return 1;
	for (int i = 0; i < peer->n_groups; i++)
		if (peer->groups[i] == cfg->admin_gid)
			return 1;
	return 0;
}

/* The one string param name of params, and no other param; NULL with diag set otherwise. */
static const char *one_string(json_t *params, const char *name, struct ssc_diag *diag)
{
	json_t *v = json_object_get(params, name);
	const char *key;
	json_t *x;

	json_object_foreach(params, key, x) {
		if (strcmp(key, name) != 0) {
			ssc_diag_set(diag, SSC_EINVAL, "unknown param \"%.64s\"", key);
			return NULL;
		}
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) != strlen(json_string_value(v))) {
		ssc_diag_set(diag, SSC_EINVAL, "\"%s\" must be a non-empty string", name);
		return NULL;
	}
	return json_string_value(v);
}

static int m_admin(const struct rpc_web_cfg *cfg, const struct rpc_web_peer *peer,
		   const char *method, json_t *params, int64_t now_ms, json_t **result,
		   struct ssc_diag *diag)
{
	const char *origin = NULL;
	char code[WEBPAIR_CODE_TEXT];
	int rc;

	if (!is_admin(cfg, peer))
		return ssc_diag_set(diag, SSC_EPERM, "%s is for the operator: root, or a member of "
				    "[web] admin_group%s", method, cfg->have_admin ? "" :
				    " (not set)");
	if (strcmp(method, "web.list") == 0) {
		if (params && json_object_size(params) > 0)
			return ssc_diag_set(diag, SSC_EINVAL, "web.list takes no params");
	} else if (!(origin = one_string(params, "origin", diag))) {
		return SSC_EINVAL;
	}
	if (!cfg->pairs)
		return ssc_diag_set(diag, SSC_EJOURNAL, "no pairing store");
	if (strcmp(method, "web.list") == 0)
		return webpair_list(cfg->pairs, now_ms, result, diag);
	if (strcmp(method, "web.revoke") == 0) {
		rc = webpair_revoke(cfg->pairs, origin, diag);
		if (rc < 0)
			return rc;
		*result = json_pack("{s:s, s:i}", "origin", origin, "revoked", rc);
		return *result ? 0 : SSC_ENOMEM;
	}
	rc = webpair_code(cfg->pairs, origin, now_ms, code, diag);
	if (rc < 0)
		return rc;
	*result = json_pack("{s:s, s:s, s:i}", "origin", origin, "code", code, "expires_in_ms",
			    webpair_code_ttl_ms(cfg->pairs));
	memset(code, 0, sizeof(code));
	return *result ? 0 : SSC_ENOMEM;
}

/*
 * bridge.refused {method, error}: a call of the page's that the bridge refused itself (its
 * origin's policy, or not paired yet), for the audit. Only those two errors; the method as the
 * page sent it, at most 64 bytes (the caller's audit row shows a name it does not know as
 * "(invalid)").
 */
static int refused(json_t *params, json_t **result, struct ssc_diag *diag)
{
	json_t *m = json_object_get(params, "method"), *e = json_object_get(params, "error");
	const char *key, *err;
	json_t *x;

	json_object_foreach(params, key, x)
		if (strcmp(key, "method") != 0 && strcmp(key, "error") != 0)
			return ssc_diag_set(diag, SSC_EINVAL, "unknown param \"%.64s\"", key);
	if (!json_is_string(m) || json_string_length(m) > 64 ||
	    json_string_length(m) != strlen(json_string_value(m)))
		return ssc_diag_set(diag, SSC_EINVAL, "\"method\" must be a string of at most 64 "
				    "bytes");
	err = json_string_value(e);
	if (!err || (strcmp(err, "SSC_EPOLICY") != 0 && strcmp(err, "SSC_ENOTPAIRED") != 0))
		return ssc_diag_set(diag, SSC_EINVAL, "\"error\" must be \"SSC_EPOLICY\" or "
				    "\"SSC_ENOTPAIRED\"");
	*result = json_pack("{s:O, s:O}", "method", m, "error", e);
	return *result ? 0 : SSC_ENOMEM;
}

int rpc_web_call(const struct rpc_web_cfg *cfg, struct rpc_web_conn *conn,
		 const struct rpc_web_peer *peer, const char *method, json_t *params,
		 int64_t now_ms, json_t **result, struct ssc_diag *diag)
{
	const char *arg, *why;
	char token[WEBPAIR_TOKEN_HEX + 1];
	uint8_t hash[32];
	int rc;

	if (strncmp(method, "web.", 4) == 0)
		return m_admin(cfg, peer, method, params, now_ms, result, diag);
	/* bridge.*: the kernel says who the peer is; only the bridge's user may name an origin. */
	if (!cfg->have_bridge || peer->uid != cfg->bridge_uid)
		return ssc_diag_set(diag, SSC_EPERM, "%s is for the browser bridge only (the user "
				    "[web] bridge_user%s)", method, cfg->have_bridge ? "" :
				    ", not set");
	if (strcmp(method, "bridge.bind") == 0) {
		if (conn->bound)
			return ssc_diag_set(diag, SSC_EPERM, "this connection is bound to an origin "
					    "already");
		if (!(arg = one_string(params, "origin", diag)))
			return SSC_EINVAL;
		if (origin_check(arg, &why) != 0)
			return ssc_diag_set(diag, SSC_EINVAL, "\"origin\": %s", why);
		snprintf(conn->origin, sizeof(conn->origin), "%s", arg);
		conn->bound = 1;
		*result = json_pack("{s:s}", "origin", conn->origin);
		return *result ? 0 : SSC_ENOMEM;
	}
	if (!conn->bound)
		return ssc_diag_set(diag, SSC_ENOTPAIRED, "bridge.bind first");
	if (strcmp(method, "bridge.refused") == 0)
		return refused(params, result, diag);
	if (!cfg->pairs)
		return ssc_diag_set(diag, SSC_EJOURNAL, "no pairing store");
	if (strcmp(method, "bridge.pair") == 0) {
		if (!(arg = one_string(params, "code", diag)))
			return SSC_EINVAL;
		rc = webpair_redeem(cfg->pairs, conn->origin, arg, now_ms, token, hash, diag);
		if (rc < 0)
			return rc;
		*result = json_pack("{s:s, s:s}", "origin", conn->origin, "token", token);
		OPENSSL_cleanse(token, sizeof(token));
	} else {
		if (!(arg = one_string(params, "token", diag)))
			return SSC_EINVAL;
		rc = webpair_check(cfg->pairs, conn->origin, arg, now_ms, hash, diag);
		if (rc < 0) {
			conn->paired = 0;
			return rc;
		}
		*result = json_pack("{s:s}", "origin", conn->origin);
	}
	if (!*result)
		return SSC_ENOMEM;
	conn->paired = 1;
	conn->generation = webpair_generation(cfg->pairs);
	memcpy(conn->token_hash, hash, sizeof(hash));
	return 0;
}

int rpc_web_gate(const struct rpc_web_cfg *cfg, struct rpc_web_conn *conn, struct ssc_diag *diag)
{
	if (!conn->bound)
		return 0;
	if (!conn->paired)
		return ssc_diag_set(diag, SSC_ENOTPAIRED, "this page is not paired: its first call "
				    "must be bridge.hello with its token, or bridge.pair with a code "
				    "from the operator");
	if (cfg->pairs && conn->generation != webpair_generation(cfg->pairs)) {
		/* A revocation since: is this page's token among those revoked? */
		if (webpair_valid(cfg->pairs, conn->origin, conn->token_hash) != 1) {
			conn->paired = 0;
			return ssc_diag_set(diag, SSC_EBADTOKEN, "this page's pairing was revoked");
		}
		conn->generation = webpair_generation(cfg->pairs);
	}
	return 0;
}
