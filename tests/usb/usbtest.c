/*
 * This file contains usbtest, the USB test runner: it builds a umockdev testbed with emulated CCID
 * readers (ccid_emu.c) from --device specs, spawns a command (the unmodified sscardd) under
 * libumockdev-preload so that its libusb sees them, and serves a line-based control socket that
 * lets tests plug and unplug readers, insert and remove cards and inject faults.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ccid_emu.h"

#define PRELOAD "libumockdev-preload.so.0"
#define MAX_CLIENTS 8
#define LINE_MAX_BYTES 512

#ifndef CCID_EMU_PROFILES_DIR
#define CCID_EMU_PROFILES_DIR "firmware-stubs/profiles"
#endif

struct client {
	int fd;
	char buf[LINE_MAX_BYTES];
	size_t len;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: usbtest [--device SPEC]... [--control SOCKET] [--profiles DIR] [--verbose]\n"
		"               [-- COMMAND [ARGS...]]\n"
		"Emulated USB CCID readers under umockdev; COMMAND runs with LD_PRELOAD=" PRELOAD "\n"
		"and sees them through libusb. Without COMMAND, runs until SIGTERM.\n"
		"SPEC: comma-separated key=value: name, mode=apdu|xapdu|t0|t1,\n"
		"  slots=ROLE:PROFILE[:absent]+... (ROLE card|psam), vid, pid, class (hex), manufacturer,\n"
		"  product, serial, port, ifsc, wtx, maxmsg, autogr=0|1, mute_ms, timeext_ms\n"
		"Control socket: one command per line, answered with one line (\"ok\", \"error: ...\"\n"
		"  or a JSON object for status):\n"
		"  status | ping | plug DEV | unplug DEV | insert DEV SLOT | remove DEV SLOT |\n"
		"  fault DEV KIND [COUNT [SLOT]] | devnode DEV\n"
		"  KIND: timeext seq trunc oversize stall mute clear (CCID), lrc lost lostcmd wtx ns (T=1)\n"
		"Environment: CCID_EMU_REAP_WAIT_MS (default 2), CCID_EMU_VERBOSE.\n");
}

static int open_control(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usbtest: control path too long: %s\n", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		fprintf(stderr, "usbtest: control socket %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends text and a newline, waiting at most about two seconds for a slow reader. */
static void send_all(int fd, const char *p, size_t n)
{
	time_t end = time(NULL) + 2;
	size_t off = 0;

	while (off < n) {
		ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);

		if (w > 0)
			off += (size_t)w;
		else if ((w < 0 && errno != EAGAIN && errno != EINTR) || time(NULL) > end)
			return;
		else
			usleep(1000);
	}
}

static void send_line(int fd, const char *text)
{
	send_all(fd, text, strlen(text));
	send_all(fd, "\n", 1);
}

static int dev_arg(struct ccid_emu *emu, const char *s)
{
	int i = ccid_emu_find(emu, s);
	char *end;
	long v;

	if (i >= 0)
		return i;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v >= CCID_EMU_DEVICES_MAX)
		return -ENOENT;
	return (int)v;
}

static int int_arg(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end || v < 0 || v > 1000000)
		return -1;
	*out = (int)v;
	return 0;
}

/* Runs one control command; writes the answer line into out. */
static void command(struct ccid_emu *emu, char *line, char *out, size_t cap)
{
	char *argv[6], *save = NULL, *t, err[256] = "";
	int argc = 0, dev = -1, r = 0, n1 = 0, n2 = 0;

	for (t = strtok_r(line, " \t\r", &save); t && argc < 6; t = strtok_r(NULL, " \t\r", &save))
		argv[argc++] = t;
	if (argc == 0) {
		snprintf(out, cap, "error: empty command");
		return;
	}
	if (strcmp(argv[0], "ping") == 0) {
		snprintf(out, cap, "ok");
		return;
	}
	if (strcmp(argv[0], "status") == 0) {
		char *s = ccid_emu_status(emu);

		snprintf(out, cap, "%s", s ? s : "error: out of memory");
		free(s);
		return;
	}
	if (argc < 2) {
		snprintf(out, cap, "error: %s needs a device", argv[0]);
		return;
	}
	dev = dev_arg(emu, argv[1]);
	if (strcmp(argv[0], "plug") == 0 && argc == 2) {
		r = ccid_emu_plug(emu, dev);
	} else if (strcmp(argv[0], "unplug") == 0 && argc == 2) {
		r = ccid_emu_unplug(emu, dev);
	} else if (strcmp(argv[0], "devnode") == 0 && argc == 2) {
		ccid_emu_devnode(emu, dev, err, sizeof(err));
		snprintf(out, cap, "%s", err);
		return;
	} else if ((strcmp(argv[0], "insert") == 0 || strcmp(argv[0], "remove") == 0) && argc == 3) {
		if (int_arg(argv[2], &n1) != 0) {
			snprintf(out, cap, "error: bad slot '%s'", argv[2]);
			return;
		}
		r = argv[0][0] == 'i' ? ccid_emu_insert(emu, dev, n1) : ccid_emu_remove(emu, dev, n1);
	} else if (strcmp(argv[0], "fault") == 0 && argc >= 3 && argc <= 5) {
		n1 = 1;
		if ((argc >= 4 && int_arg(argv[3], &n1) != 0) ||
		    (argc == 5 && int_arg(argv[4], &n2) != 0)) {
			snprintf(out, cap, "error: bad count or slot");
			return;
		}
		r = ccid_emu_fault(emu, dev, argv[2], n1, n2, err, sizeof(err));
	} else {
		snprintf(out, cap, "error: unknown command or wrong arguments: %s", argv[0]);
		return;
	}
	if (r < 0)
		snprintf(out, cap, "error: %s", err[0] ? err : strerror(-r));
	else
		snprintf(out, cap, "ok");
}

static void client_input(struct ccid_emu *emu, struct client *c)
{
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
	char *nl;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	if (n < 0)
		return;
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
		static char answer[65536];
		size_t used = (size_t)(nl - c->buf) + 1;

		*nl = '\0';
		command(emu, c->buf, answer, sizeof(answer));
		send_line(c->fd, answer);
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
		c->buf[c->len] = '\0';
	}
	if (c->len == sizeof(c->buf) - 1) {
		send_line(c->fd, "error: line too long");
		close(c->fd);
		c->fd = -1;
	}
}

/* LD_PRELOAD for the child: the umockdev preload, after ASan's runtime when that is there. */
static void set_preload(void)
{
	const char *old = getenv("LD_PRELOAD");
	char buf[1024];

	if (old && strstr(old, PRELOAD))
		return;
	if (old && *old)
		snprintf(buf, sizeof(buf), "%s:%s", old, PRELOAD);
	else
		snprintf(buf, sizeof(buf), "%s", PRELOAD);
	setenv("LD_PRELOAD", buf, 1);
	/* An ASan-built child would otherwise refuse a preload that comes before its runtime. */
	old = getenv("ASAN_OPTIONS");
	if (old == NULL || strstr(old, "verify_asan_link_order") == NULL) {
		snprintf(buf, sizeof(buf), "%s%sverify_asan_link_order=0", old ? old : "",
			 old && *old ? ":" : "");
		setenv("ASAN_OPTIONS", buf, 1);
	}
}

static pid_t spawn(char **argv, const sigset_t *oldmask)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	set_preload();
	execvp(argv[0], argv);
	fprintf(stderr, "usbtest: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int main(int argc, char **argv)
{
	const char *control = NULL, *profiles = getenv("SSC_PROFILES_DIR");
	const char *specs[CCID_EMU_DEVICES_MAX];
	struct client clients[MAX_CLIENTS];
	char **cmd = NULL, err[512];
	int nspecs = 0, i, lfd = -1, sfd, status = 0, rc = 0;
	bool verbose = getenv("CCID_EMU_VERBOSE") != NULL, term = false;
	struct ccid_emu *emu;
	sigset_t mask, oldmask;
	pid_t child = -1;
	time_t kill_at = 0;

	if (profiles == NULL)
		profiles = CCID_EMU_PROFILES_DIR;
	if (getenv("LD_PRELOAD") == NULL || strstr(getenv("LD_PRELOAD"), PRELOAD) == NULL) {
		/* The testbed process needs the preload too: umockdev's uevent sender looks the
		 * device up through libudev, which must see the testbed's /sys. */
		set_preload();
		execv("/proc/self/exe", argv);
		fprintf(stderr, "usbtest: cannot re-execute under %s: %s\n", PRELOAD, strerror(errno));
		return 1;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			if (i + 1 < argc)
				cmd = argv + i + 1;
			break;
		} else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
			if (nspecs == CCID_EMU_DEVICES_MAX) {
				fprintf(stderr, "usbtest: at most %d devices\n", CCID_EMU_DEVICES_MAX);
				return 2;
			}
			specs[nspecs++] = argv[++i];
		} else if (strcmp(argv[i], "--control") == 0 && i + 1 < argc) {
			control = argv[++i];
		} else if (strcmp(argv[i], "--profiles") == 0 && i + 1 < argc) {
			profiles = argv[++i];
		} else if (strcmp(argv[i], "--verbose") == 0) {
			verbose = true;
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		perror("usbtest: signalfd");
		return 1;
	}

	emu = ccid_emu_new(verbose, err, sizeof(err));
	if (emu == NULL) {
		fprintf(stderr, "usbtest: %s\n", err);
		return 1;
	}
	for (i = 0; i < nspecs; i++) {
		struct ccid_dev_cfg cfg;

		if (ccid_emu_parse_device(specs[i], profiles, &cfg, err, sizeof(err)) < 0 ||
		    ccid_emu_add(emu, &cfg, err, sizeof(err)) < 0) {
			fprintf(stderr, "usbtest: --device %s: %s\n", specs[i], err);
			ccid_emu_free(emu);
			return 2;
		}
	}
	if (control) {
		lfd = open_control(control);
		if (lfd < 0) {
			ccid_emu_free(emu);
			return 1;
		}
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	fprintf(stderr, "usbtest: %d device(s), UMOCKDEV_DIR=%s\n", nspecs, ccid_emu_root(emu));
	if (cmd) {
		child = spawn(cmd, &oldmask);
		if (child < 0) {
			perror("usbtest: fork");
			ccid_emu_free(emu);
			return 1;
		}
	}

	for (;;) {
		struct pollfd pfd[2 + MAX_CLIENTS];
		int n = 0, map[MAX_CLIENTS], timeout = term ? 200 : -1;

		pfd[n].fd = sfd;
		pfd[n++].events = POLLIN;
		if (lfd >= 0) {
			pfd[n].fd = lfd;
			pfd[n++].events = POLLIN;
		}
		for (i = 0; i < MAX_CLIENTS; i++) {
			map[i] = -1;
			if (clients[i].fd >= 0) {
				map[i] = n;
				pfd[n].fd = clients[i].fd;
				pfd[n++].events = POLLIN;
			}
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
			break;
		if (term && child > 0 && time(NULL) >= kill_at) {
			kill(child, SIGKILL);
			kill_at = time(NULL) + 60;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					continue;
				term = true;
				kill_at = time(NULL) + 5;
				if (child > 0)
					kill(child, SIGTERM);
			}
			if (child > 0) {
				pid_t w = waitpid(child, &status, WNOHANG);

				if (w == child) {
					rc = WIFEXITED(status) ? WEXITSTATUS(status) :
					     128 + WTERMSIG(status);
					fprintf(stderr, "usbtest: command exited (%s %d)\n",
						WIFEXITED(status) ? "status" : "signal",
						WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
					break;
				}
			} else if (term) {
				break;
			}
		}
		if (lfd >= 0 && (pfd[1].revents & POLLIN)) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

			if (fd >= 0) {
				for (i = 0; i < MAX_CLIENTS && clients[i].fd >= 0; i++)
					;
				if (i == MAX_CLIENTS) {
					send_line(fd, "error: too many control clients");
					close(fd);
				} else {
					clients[i].fd = fd;
					clients[i].len = 0;
				}
			}
		}
		for (i = 0; i < MAX_CLIENTS; i++)
			if (map[i] >= 0 && (pfd[map[i]].revents & (POLLIN | POLLHUP | POLLERR)))
				client_input(emu, &clients[i]);
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0)
			close(clients[i].fd);
	if (lfd >= 0) {
		close(lfd);
		unlink(control);
	}
	ccid_emu_free(emu);
	return rc;
}
