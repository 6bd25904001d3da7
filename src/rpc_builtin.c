/*
 * This file contains the JSON-RPC methods about the readers (src/rpc_int.h): reader.list, the
 * reader as the API shows it, events.subscribe and events.unsubscribe, and the fan-out of reader
 * events to the subscribed clients (rpc_event, src/rpc.h). Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "jsontext.h"
#include "log.h"
#include "rpc_int.h"
#include "sscard/error.h"

static json_t *reader_json(const struct reader_info *ri)
{
	json_t *o = json_object(), *name;
	int bad = 0;   /* a member could not be added (no memory): never a partial entry */

	if (!o)
		return NULL;
	bad |= json_object_set_new(o, "id", json_string(ri->id));
	/* A name that is not UTF-8: keep the entry, show the id instead. */
	name = json_string(rpc_utf8_ok(ri->name) ? ri->name : ri->id);
	bad |= json_object_set_new(o, "name", name);
	bad |= json_object_set_new(o, "driver", json_string(ri->driver));
	bad |= json_object_set_new(o, "card", json_boolean(ri->card_present));
	bad |= json_object_set_new(o, "role", json_string(reader_role_name(ri->role)));
	bad |= json_object_set_new(o, "busy", json_boolean(ri->busy));
	if (ri->serial[0])
		bad |= json_object_set_new(o, "serial", json_string(ri->serial));
	if (ri->card_present && ri->atr_len > 0 && ri->atr_len <= SSC_ATR_MAX) {
		char atr[2 * SSC_ATR_MAX + 1];

		hex_encode(ri->atr, ri->atr_len, atr, sizeof(atr), HEX_UPPER);
		bad |= json_object_set_new(o, "atr", json_string(atr));
	}
	if (ri->role == READER_ROLE_PSAM && ri->psam_alg != SSC_ALG_NONE)
		bad |= json_object_set_new(o, "algorithm",
				    json_string(ri->psam_alg == SSC_ALG_SM4 ? "sm4" : "des"));
	if (ri->role == READER_ROLE_PSAM && ri->psam_term[0])
		bad |= json_object_set_new(o, "terminal_number", json_string(ri->psam_term));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int rpc_builtin_reader_list(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			    json_t *params)
{
	struct rpc *r = c->rpc;
	struct reader_info *list = NULL;
	size_t n = 0;
	json_t *arr;
	int rc;

	if (r->have_backend) {
		rc = r->be.list(r->be.ctx, &list, &n);
		if (rc < 0)
			return rpc_reply_app(c, id, rc, NULL, NULL);
	}
	arr = json_array();
	for (size_t i = 0; i < n && arr; i++) {
		if (json_array_append_new(arr, reader_json(&list[i])) != 0) {
			json_decref(arr);   /* never a list with a reader missing */
			arr = NULL;
		}
	}
	free(list);
	if (!arr)
		return rpc_reply_app(c, id, SSC_ENOMEM, NULL, NULL);
	return rpc_reply_result(c, id, json_pack("{s:o}", "readers", arr));
}

int rpc_builtin_events(struct rpc_client *c, json_t *id, const struct rpc_method *m,
		       json_t *params)
{
	rpc_client_subscribe(c, m->variant);
	return rpc_reply_result(c, id, json_pack("{s:b}", "subscribed", m->variant));
}

void rpc_event(void *arg, const char *type, const struct reader_info *ri)
{
	struct rpc *r = arg;
	json_t *params, *snap, *msg;
	char *text;
	size_t len;

	if (strcmp(type, "card.ready") == 0)
		log_info("event %s: %s (role %s%s%s)", type, ri->id, reader_role_name(ri->role),
			 ri->ready_err < 0 ? ", " : "",
			 ri->ready_err < 0 ? ssc_strerror_name(ri->ready_err) : "");
	else
		log_info("event %s: %s", type, ri->id);
	if (!r->subs)
		return;
	/* type and reader (the id) first; the rest of the reader's snapshot rides along. */
	params = json_pack("{s:s, s:s}", "type", type, "reader", ri->id);
	snap = reader_json(ri);
	if (!params || !snap) {
		json_decref(params);
		json_decref(snap);
		return;
	}
	json_object_del(snap, "id");
	json_object_update_missing(params, snap);
	json_decref(snap);
	/* card.ready of a card whose role could not be found: why, as a stable name. */
	if (ri->ready_err < 0)
		json_object_set_new(params, "error", json_string(ssc_strerror_name(ri->ready_err)));
	msg = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", "event", "params", params);
	if (!msg)
		return;
	text = jsontext_dump(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text)
		return;
	len = strlen(text);
	for (struct rpc_client *c = r->subs, *next; c; c = next) {
		/* send() may close c (only c): hold it, and look ahead before sending. */
		next = c->sub_next;
		rpc_client_ref(c);
		if (c->owner)
			c->ops->send(c->owner, text, len);
		rpc_client_unref(c);
	}
	free(text);
}
