/*
 * This file contains the daemon's side of the browser bridge (issue 17, docs/web.md): the methods
 * web.pair, web.revoke, web.list (the operator's: root or [web] admin_group) and bridge.bind,
 * bridge.pair, bridge.hello, bridge.refused (the bridge's: peer uid [web] bridge_user only), and
 * the gate that refuses every other method on a bridged connection until its page has shown a
 * token. src/rpc.c calls it on the event loop; it answers with a result or an error and a diag,
 * never a reply.
 */
#ifndef SSC_RPC_WEB_H
#define SSC_RPC_WEB_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "origin.h"
#include "webpair.h"

#define RPC_PEER_GROUPS 64       /* supplementary groups of a peer kept (SO_PEERGROUPS) */

/* Who may do what, from [web] (src/config.h) resolved at start. */
struct rpc_web_cfg {
	struct webpair *pairs;   /* borrowed; NULL = no pairing store (web.* answer SSC_EJOURNAL) */
	int have_bridge;         /* [web] bridge_user is set */
	uid_t bridge_uid;
	int have_admin;          /* [web] admin_group is set */
	gid_t admin_gid;
};

/* A connection's bridge state; zeroed at connect. */
struct rpc_web_conn {
	int bound;               /* bridge.bind was called: origin is the page's */
	int paired;              /* the page showed a valid token (or paired) */
	unsigned generation;     /* webpair_generation() when paired */
	uint8_t token_hash[32];
	char origin[ORIGIN_MAX];
};

/* The peer as the checks need it (the kernel's word: SO_PEERCRED, SO_PEERGROUPS). */
struct rpc_web_peer {
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	int n_groups;
};

struct config;

/*
 * Fills *out from cfg's [web] keys: the bridge's user and the admin group looked up by name,
 * pairs (borrowed) as the store. Returns 0, or SSC_ECONFIG with the unknown name in diag.
 * Blocks on the user and group databases (NSS).
 */
int rpc_web_setup(const struct config *cfg, struct webpair *pairs, struct rpc_web_cfg *out,
		  struct ssc_diag *diag);

/*
 * Serves one of the methods above (src/rpc.c's method table names them). params may be NULL.
 * bridge.refused {method, error} (the bridge's, on a bound connection) only checks its params and
 * gives them back as the result, {method, error}: the caller writes the refused call's audit row.
 * Returns 0 and *result (owned), or a negative SSC_E* with diag filled: SSC_EINVAL (params; the reply is then -32602), SSC_EPERM
 * (not the operator, not the bridge, bind twice), SSC_ENOTPAIRED (bridge.pair/hello on a
 * connection that is not bound; bridge.refused too), SSC_EBADCODE, SSC_EBADTOKEN, SSC_ELIMIT, SSC_EJOURNAL,
 * SSC_ECRYPTO, SSC_ENOMEM. Blocks for at most one SQLite statement or two (webpair.h).
 */
int rpc_web_call(const struct rpc_web_cfg *cfg, struct rpc_web_conn *conn,
		 const struct rpc_web_peer *peer, const char *method, json_t *params,
		 int64_t now_ms, json_t **result, struct ssc_diag *diag);

/*
 * The gate for every other method: 0 when the connection is not bridged, or bridged and paired
 * with a token still valid; else SSC_ENOTPAIRED (no token shown yet) or SSC_EBADTOKEN (revoked
 * since: the connection is unpaired). Checks the token again only after a revocation.
 */
int rpc_web_gate(const struct rpc_web_cfg *cfg, struct rpc_web_conn *conn, struct ssc_diag *diag);

/*
 * The audit row's detail for a call of a page of origin: detail (a JSON object's text, or NULL or
 * "") with "origin" added. Returns a new string (free()), or NULL when origin is NULL or "" (the
 * detail stays as it is) or memory ran out.
 */
char *rpc_web_detail(const char *detail, const char *origin);

#endif
