/*
 * This file contains the service manager's protocol as sscardd speaks it, written here so that the
 * daemon needs no libsystemd: the sockets passed by socket activation (LISTEN_PID, LISTEN_FDS,
 * descriptors from 3), the notices sent to NOTIFY_SOCKET (one datagram), and the watchdog's period
 * (WATCHDOG_USEC, WATCHDOG_PID). Each reads the environment; none blocks.
 */
#ifndef SSC_SVC_H
#define SSC_SVC_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* The first descriptor a service manager passes. */
#define SVC_LISTEN_FDS_START 3

/*
 * The number of descriptors passed to this process: LISTEN_PID must be our pid and LISTEN_FDS a
 * count (decimal, no sign, nothing after it). Each passed descriptor is made close-on-exec. When
 * unset_env is non-zero, LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed from the
 * environment whatever the outcome. Returns the count (0 when none is passed to us: variables
 * missing, or LISTEN_PID another process's), or -EINVAL when a variable is not a number.
 */
int svc_listen_fds(int unset_env);

/*
 * Whether fd is a Unix stream socket (AF_UNIX, SOCK_STREAM), listening when listening is non-zero.
 * Returns 1 yes, 0 no, or -errno when fd is no socket the calls can look at.
 */
int svc_is_unix_stream(int fd, int listening);

/*
 * The address of a NOTIFY_SOCKET value s: a path ("/run/...") or an abstract name ("@name", the
 * '@' standing for the leading zero byte). Returns 0 with *sa and *len set, or -EINVAL when s is
 * empty, too long for sun_path, or neither form (-EAFNOSUPPORT for a form we do not speak).
 */
int svc_notify_addr(const char *s, struct sockaddr_un *sa, socklen_t *len);

/*
 * Sends state ("READY=1", several assignments separated by newlines) to NOTIFY_SOCKET as one
 * datagram (non-blocking). Returns 1 sent, 0 no NOTIFY_SOCKET, or -errno (bad address, state
 * empty or longer than 4096 bytes, send failed).
 */
int svc_notify(const char *state);

/*
 * The watchdog's period asked for by the service manager: WATCHDOG_USEC (microseconds, > 0), for
 * this process when WATCHDOG_PID is set. Returns 1 with *usec set, 0 when no watchdog is asked of
 * us (unset, or WATCHDOG_PID another process's), or -EINVAL when a variable is not a number or
 * the period is 0.
 */
int svc_watchdog_usec(uint64_t *usec);

#endif
