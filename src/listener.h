/*
 * This file contains the API socket's file: its directory (created when missing, refused when
 * another user could write it), a stale socket replaced, the mode and group, listen(), and its
 * removal at the end. src/server.c accepts the connections.
 */
#ifndef SSC_LISTENER_H
#define SSC_LISTENER_H

#include <sys/types.h>

#include "config.h"

/* The socket file as created, to remove it only while it is still the same file. */
struct listener_file {
	char path[CONFIG_PATH_MAX];
	dev_t dev;
	ino_t ino;
};

/*
 * When the service manager passed a listening socket (socket activation, src/service.h), returns
 * that one and leaves lf empty: its file is the manager's, neither checked nor removed here; what
 * was passed must be exactly one listening Unix stream socket, else SSC_ECONFIG. Otherwise:
 * creates the listening socket at cfg->socket_path (non-blocking, close-on-exec) and fills lf. The
 * socket file gets mode cfg->socket_mode and group cfg->socket_group (a missing group is a
 * warning; "" leaves the group alone), both before listen(). A missing parent directory is
 * created (one level, mode 0755). Every directory from / to the socket's, as the path names them
 * and as they resolve, must belong to root or the daemon's uid and be writable by nobody else (an
 * ancestor may be sticky, like /tmp; the socket's own directory may not): otherwise another user
 * could replace the socket and read what clients send. An existing socket file is replaced only
 * when nothing answers on it (a stale file from a crash); any other file there is left alone.
 * Returns the descriptor (>= 0, owned by the caller); SSC_EEXIST (a daemon answers on that
 * socket, or a non-socket file is there), SSC_ECONFIG (the path is too long for a Unix socket),
 * SSC_EPERM (a directory others could write, or one we cannot create or read), SSC_EIO. Errors
 * are logged with the path and the reason.
 */
int listener_open(const struct config *cfg, struct listener_file *lf);

/* Removes the socket file, only if it is still the one listener_open() created. */
void listener_remove(const struct listener_file *lf);

#endif
