/*
 * This file contains sock_flood, a test helper that floods a Unix stream socket with connections
 * that close at once (tests/e2e/test_daemon_flood.py): PROCS processes connect and close as fast
 * as they can, bounded by a time and a number of connections, and the totals are printed as one
 * JSON line. Loopback Unix socket only; every connect has a 200 ms deadline.
 *
 *   sock_flood PATH SECONDS MAX_CONNECTIONS PROCS
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct counts {
	long connected;
	long failed;
	long eagain;      /* the backlog was full */
	long other;       /* any other failure */
	int last_errno;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void flood(const struct sockaddr_un *sa, double until, long max, struct counts *c)
{
	struct timeval tv = { 0, 200 * 1000 };

	while (c->connected + c->failed < max && now_s() < until) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			c->failed++;
			c->other++;
			c->last_errno = errno;
			continue;
		}
		/* On a Unix socket the send timeout bounds a connect that waits for the backlog. */
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
			c->connected++;
		} else {
			c->failed++;
			if (errno == EAGAIN || errno == EINPROGRESS)
				c->eagain++;
			else
				c->other++;
			c->last_errno = errno;
		}
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct counts total = { 0 };
	double seconds, until;
	long max;
	int procs, fds[2];

	if (argc != 5 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: sock_flood PATH SECONDS MAX_CONNECTIONS PROCS\n");
		return 2;
	}
	memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
	seconds = atof(argv[2]);
	max = atol(argv[3]);
	procs = atoi(argv[4]);
	if (seconds <= 0 || seconds > 60 || max <= 0 || procs < 1 || procs > 64) {
		fprintf(stderr, "sock_flood: SECONDS in (0, 60], MAX_CONNECTIONS > 0, PROCS 1..64\n");
		return 2;
	}
	if (pipe(fds) != 0)
		return 1;
	until = now_s() + seconds;
	for (int i = 0; i < procs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return 1;
		if (pid == 0) {
			struct counts c = { 0 };

			close(fds[0]);
			flood(&sa, until, max / procs + (i < max % procs), &c);
			if (write(fds[1], &c, sizeof(c)) != (ssize_t)sizeof(c))
				_exit(1);
			_exit(0);
		}
	}
	close(fds[1]);
	for (int i = 0; i < procs; i++) {
		struct counts c;

		if (read(fds[0], &c, sizeof(c)) != (ssize_t)sizeof(c))
			break;
		total.connected += c.connected;
		total.failed += c.failed;
		total.eagain += c.eagain;
		total.other += c.other;
		if (c.last_errno)
			total.last_errno = c.last_errno;
	}
	while (wait(NULL) > 0)
		;
	printf("{\"connected\": %ld, \"failed\": %ld, \"eagain\": %ld, \"other\": %ld, "
	       "\"last_errno\": %d}\n", total.connected, total.failed, total.eagain, total.other,
	       total.last_errno);
	return 0;
}
