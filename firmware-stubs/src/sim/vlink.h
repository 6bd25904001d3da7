/*
 * This file contains the simulator's side of the vpcd wire protocol: a TCP client connection to one
 * vpcd slot, the framing (uint16 big-endian length + payload, both directions), TCP_QUICKACK after
 * every recv and one send() per answer. It knows nothing of cards; sscard-sim's main loop owns it.
 */
#ifndef VLINK_H
#define VLINK_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define VLINK_FRAME_MAX 65535u  /* the largest payload the 16-bit length can announce */

enum vlink_state { VLINK_CLOSED = 0, VLINK_CONNECTING, VLINK_UP };

struct vlink {
	int fd;                          /* -1 when closed */
	enum vlink_state state;
	struct sockaddr_in addr;         /* vpcd's address (IPv4: vpcd listens on 0.0.0.0 only) */
	uint8_t hdr[2];
	size_t hdr_have;                 /* bytes of the length header received so far */
	size_t need;                     /* payload length announced by the header */
	size_t have;                     /* payload bytes received so far */
	uint8_t buf[VLINK_FRAME_MAX];    /* payload of the frame being received */
};

/* Prepares l (closed) to connect to host:port. host is an IPv4 literal. Returns 0 or -EINVAL. */
int vlink_init(struct vlink *l, const char *host, uint16_t port);

/*
 * Starts a non-blocking connect. Returns 0 when the connection is up or under way (state UP or
 * CONNECTING; wait for POLLOUT then call vlink_finish_connect), or -errno (state CLOSED), e.g.
 * -ECONNREFUSED while vpcd does not listen yet. Never blocks.
 */
int vlink_connect(struct vlink *l);

/* After POLLOUT on a CONNECTING link: returns 0 (UP) or -errno (the link is closed). */
int vlink_finish_connect(struct vlink *l);

/*
 * Reads what the socket holds, without blocking, until one frame is complete or the socket has no
 * more data. Returns 1 when a frame is complete (its payload is l->buf[0..l->need), valid until the
 * next call), 0 when more bytes are needed (a frame may be partly received: see vlink_partial), or
 * -errno / -ECONNRESET on EOF (the link is then closed). Sets TCP_QUICKACK after every recv(): vpcd
 * sends length and payload in two send() calls without TCP_NODELAY, and without the quick ACK each
 * message waits for our delayed ACK (~40 ms).
 */
int vlink_read(struct vlink *l);

/* True while a frame has been started but not completed (the caller applies a deadline). */
int vlink_partial(const struct vlink *l);

/*
 * Sends one frame: the length header and the payload (len <= VLINK_FRAME_MAX) in one send(). If the
 * kernel takes only part of it, waits for the rest at most timeout_ms. Returns 0 or -errno (the
 * caller closes the link). Blocks at most timeout_ms.
 */
int vlink_send(struct vlink *l, const uint8_t *p, size_t len, int timeout_ms);

/* Closes the socket (a no-op when closed) and forgets any partial frame. */
void vlink_close(struct vlink *l);

#endif
