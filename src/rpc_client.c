/*
 * This file contains the JSON-RPC layer's clients (src/rpc.h, src/rpc_int.h): one per connection
 * the server hands over, held by the server until it closes it and by each job in flight, and the
 * list of the clients subscribed to events. Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "rpc_int.h"

struct rpc_client *rpc_client_new(struct rpc *r, const struct rpc_client_ops *ops, void *owner,
				  const struct rpc_peer *peer)
{
	struct rpc_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rpc = r;
	c->ops = ops;
	c->owner = owner;
	c->peer = *peer;
	c->peer.exe[sizeof(c->peer.exe) - 1] = '\0';
	c->refs = 1;
	c->jpeer.uid = peer->uid;
	c->jpeer.pid = peer->pid;
	snprintf(c->jpeer.exe, sizeof(c->jpeer.exe), "%s", c->peer.exe);
	return c;
}

void rpc_client_ref(struct rpc_client *c)
{
	c->refs++;
}

void rpc_client_unref(struct rpc_client *c)
{
	if (--c->refs == 0)
		free(c);
}

void rpc_client_subscribe(struct rpc_client *c, int on)
{
	struct rpc *r = c->rpc;

	if (on == c->subscribed)
		return;
	if (on) {
		c->sub_prev = NULL;
		c->sub_next = r->subs;
		if (r->subs)
			r->subs->sub_prev = c;
		r->subs = c;
		c->subscribed = 1;
		return;
	}
	if (c->sub_prev)
		c->sub_prev->sub_next = c->sub_next;
	else
		r->subs = c->sub_next;
	if (c->sub_next)
		c->sub_next->sub_prev = c->sub_prev;
	c->sub_prev = c->sub_next = NULL;
	c->subscribed = 0;
}

void rpc_client_close(struct rpc_client *c)
{
	struct rpc *r;
	int n;

	if (!c || !c->owner)
		return;
	r = c->rpc;
	rpc_client_subscribe(c, 0);
	c->owner = NULL;
	/*
	 * Its jobs still waiting for a reader would run for nobody, and hold that reader for the
	 * clients who are there: cancel them (their done() runs now: audited SSC_ECANCELED). The
	 * one on a card finishes; its result is dropped.
	 */
	if (c->inflight > 0 && r->have_backend && r->be.cancel) {
		n = r->be.cancel(r->be.ctx, c);
		if (n > 0)
			log_info("client %u: %d queued operation(s) cancelled: the client is gone",
				 c->peer.id, n);
	}
	rpc_client_unref(c);
}

int rpc_client_inflight(const struct rpc_client *c)
{
	return c->inflight;
}

int rpc_client_subscribed(const struct rpc_client *c)
{
	return c->subscribed;
}
