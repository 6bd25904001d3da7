/*
 * This file contains the API socket's file (src/listener.h): its directory, created when missing
 * and checked against other users (StrictModes); a stale socket from a crash replaced, anything
 * else left alone; the mode and group set before listen(); and its removal at the end, only if
 * it is still ours. Accepting connections is src/server.c's.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dirs.h"
#include "listener.h"
#include "log.h"
#include "service.h"
#include "sscard/error.h"

/*
 * The kernel's queue of connections not yet accepted (capped by net.core.somaxconn). A deep one
 * absorbs bursts; under a flood that outruns the daemon it is full whatever its depth, and a
 * non-blocking connect() then fails with EAGAIN (clients retry within their deadline).
 */
#define LISTEN_BACKLOG 1024

/* Creates the parent directory when it is missing (one level; /run/sscard on a fresh boot). */
static int ensure_parent(const char *path)
{
	char dir[CONFIG_PATH_MAX];
	int rc = dirs_make_parent(path, 0755, (uid_t)-1, (gid_t)-1, dir, sizeof(dir));

	if (rc < 0)
		log_error("socket directory %s: %s", dir, strerror(errno));
	else if (rc == 1)
		log_info("created the socket directory %s", dir);
	return rc < 0 ? rc : 0;
}

/*
 * Checks one directory on the way to the socket (dir, as the path names it; resolved by stat).
 * last: it is the socket's own directory. Returns 0 or SSC_EPERM (logged with the fix).
 */
static int dir_safe(const char *dir, int last)
{
	struct stat st;
	uid_t me = geteuid();

	if (stat(dir, &st) != 0) {
		log_error("socket directory %s: %s", dir, strerror(errno));
		return SSC_EPERM;
	}
	if (st.st_uid != 0 && st.st_uid != me) {
		log_error("socket directory %s belongs to uid %ld: that user could replace the socket "
			  "and read what clients send (PINs). Use a directory that only root or the "
			  "daemon's uid %ld can write, such as /run/sscard", dir, (long)st.st_uid,
			  (long)me);
		return SSC_EPERM;
	}
	/*
	 * A sticky directory (/tmp) keeps others from renaming what we own in it: an ancestor may be
	 * one. The socket's own directory may not: once the daemon stops and removes its socket,
	 * anyone could put theirs at the same path.
	 */
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (last || !(st.st_mode & S_ISVTX))) {
		log_error("socket directory %s is writable by %s (mode %04o): %s. Use a directory "
			  "that only root or the daemon's uid %ld can write, such as /run/sscard",
			  dir, (st.st_mode & S_IWOTH) ? "everyone" : "its group",
			  (unsigned)(st.st_mode & 07777), last && (st.st_mode & S_ISVTX) ?
			  "another user could put a socket of their own at this path once the daemon "
			  "stops, and read what clients send (PINs)" : "another user could replace "
			  "the socket and read what clients send (PINs)", (long)me);
		return SSC_EPERM;
	}
	return 0;
}

/* Checks every directory from / down to dir (an absolute path). */
static int chain_safe(const char *dir)
{
	char p[CONFIG_PATH_MAX];
	size_t n = strlen(dir);
	int rc;

	if (n == 0 || n >= sizeof(p) || dir[0] != '/')
		return SSC_EPERM;
	rc = dir_safe("/", n == 1);
	for (size_t i = 1; rc == 0 && i <= n; i++) {
		if (i < n && dir[i] != '/')
			continue;
		if (dir[i - 1] == '/')
			continue;   /* "//" */
		memcpy(p, dir, i);
		p[i] = '\0';
		rc = dir_safe(p, i == n);
	}
	return rc;
}

/*
 * In the spirit of OpenSSH's StrictModes: whoever can write the socket's directory can replace
 * the socket with their own and read what clients send, PINs included. Every directory from / to
 * the socket's, both as the path names them and as they resolve (a symbolic link on the way), must
 * belong to root or to the daemon's uid and be writable by nobody else; an ancestor may be a
 * sticky directory such as /tmp, the socket's own directory may not.
 */
static int check_socket_dir(const char *path)
{
	char dir[CONFIG_PATH_MAX], real[PATH_MAX];
	char *slash;
	int rc;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return SSC_EPERM;
	if (slash == dir)
		slash[1] = '\0';   /* a socket in / */
	else
		*slash = '\0';
	rc = chain_safe(dir);
	if (rc != 0)
		return rc;
	if (!realpath(dir, real)) {
		log_error("socket directory %s: %s", dir, strerror(errno));
		return SSC_EPERM;
	}
	return strcmp(real, dir) == 0 ? 0 : chain_safe(real);
}

/*
 * Makes room for the socket: nothing there is fine; a socket that nobody answers is a stale
 * one from a crash and is removed; a socket that answers belongs to a running daemon, and any
 * other kind of file is not ours to delete.
 */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r, e;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : SSC_EIO;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s exists and is not a socket: not replacing it", path);
		return SSC_EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return SSC_EIO;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS) {
		log_error("%s: another daemon answers on this socket", path);
		return SSC_EEXIST;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		log_error("%s: cannot tell whether the socket is in use: %s", path, strerror(e));
		return SSC_EIO;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		log_error("%s: cannot remove the stale socket: %s", path, strerror(errno));
		return errno == EACCES || errno == EPERM ? SSC_EPERM : SSC_EIO;
	}
	log_info("removed a stale socket file %s", path);
	return 0;
}

static void set_group(const char *path, const char *group)
{
	struct group gr, *res = NULL;
	char buf[4096];
	int r;

	if (!group[0])
		return;
	r = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
	if (r != 0 || !res) {
		log_warn("group \"%s\" does not exist: the socket keeps its group (create the group "
			 "and add the client users to it)", group);
		return;
	}
	if (chown(path, (uid_t)-1, res->gr_gid) != 0)
		log_warn("cannot give %s to group %s: %s", path, group, strerror(errno));
}

/*
 * Socket activation (issue 19): the service manager made the socket, with its mode and group
 * (sscardd.socket), and owns its file; lf stays empty, so listener_remove() leaves it alone.
 */
static int listener_passed(int fd, const struct config *cfg)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	char path[sizeof(sa.sun_path) + 1] = "?";

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && len > sizeof(sa.sun_family))
		snprintf(path, sizeof(path), "%.*s", (int)(len - sizeof(sa.sun_family)),
			 sa.sun_path);
	log_info("listening on %s, the socket the service manager passed (socket activation)",
		 path);
	if (strcmp(path, cfg->socket_path) != 0)
		log_warn("the socket passed is %s, not [daemon] socket_path %s: sscardctl and "
			 "clients that read the configuration look for the latter", path,
			 cfg->socket_path);
	return fd;
}

int listener_open(const struct config *cfg, struct listener_file *lf)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, rc;

	memset(lf, 0, sizeof(*lf));
	fd = service_listen_fd();
	if (fd != -1)
		return fd < 0 ? fd : listener_passed(fd, cfg);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long (at most %zu bytes): %s", sizeof(sa.sun_path) - 1,
			  cfg->socket_path);
		return SSC_ECONFIG;
	}
	memcpy(sa.sun_path, cfg->socket_path, strlen(cfg->socket_path) + 1);
	snprintf(lf->path, sizeof(lf->path), "%s", cfg->socket_path);
	rc = ensure_parent(lf->path);
	if (rc == 0)
		rc = check_socket_dir(lf->path);
	if (rc == 0)
		rc = clear_stale(lf->path, &sa);
	if (rc != 0)
		return rc;
	/* Our own socket(), so that libuv does not own (and unlink) the path. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return SSC_EIO;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = errno == EACCES ? SSC_EPERM : errno == EADDRINUSE ? SSC_EEXIST : SSC_EIO;
		log_error("bind %s: %s", lf->path, strerror(errno));
		goto out_close;
	}
	/* Mode and group before listen(): until then every connect is refused. */
	if (chmod(lf->path, cfg->socket_mode) != 0) {
		rc = SSC_EIO;
		log_error("chmod %s: %s", lf->path, strerror(errno));
		goto out_unlink;
	}
	set_group(lf->path, cfg->socket_group);
	if (lstat(lf->path, &st) != 0) {
		rc = SSC_EIO;
		goto out_unlink;
	}
	lf->dev = st.st_dev;
	lf->ino = st.st_ino;
	if (listen(fd, LISTEN_BACKLOG) != 0) {
		rc = SSC_EIO;
		log_error("listen %s: %s", lf->path, strerror(errno));
		goto out_unlink;
	}
	log_info("listening on %s (mode %04o, group %s)", lf->path, cfg->socket_mode,
		 cfg->socket_group[0] ? cfg->socket_group : "unchanged");
	return fd;
out_unlink:
	unlink(lf->path);
out_close:
	close(fd);
	return rc;
}

void listener_remove(const struct listener_file *lf)
{
	struct stat st;

	if (lf->path[0] && lstat(lf->path, &st) == 0 && st.st_dev == lf->dev &&
	    st.st_ino == lf->ino)
		unlink(lf->path);
}
