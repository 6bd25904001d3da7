/*
 * This file contains sscard-sim, the program that attaches one simulated card or PSAM (simcos) to
 * pcscd through vpcd: argument parsing, the state file, and one single-threaded poll loop over the
 * vpcd link, the control socket and the signals that insert and remove the card.
 */
#include "ctl.h"
#ifdef SIM_HAVE_HSM
#include "hsm.h"
#endif
#include "simcos.h"
#include "simlog.h"
#include "vlink.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define SIM_BACKOFF_MIN_MS 100
#define SIM_BACKOFF_MAX_MS 1000
#define SIM_CONNECT_DEADLINE_MS 1000  /* a loopback connect that takes longer is abandoned */
#define SIM_FRAME_DEADLINE_MS 5000    /* vpcd sends a frame in two back-to-back send() calls */
#define SIM_SEND_DEADLINE_MS 2000
#define SIM_DELAY_MAX_MS 60000

enum { SIM_EXIT_OK = 0, SIM_EXIT_FAILURE = 1, SIM_EXIT_USAGE = 2 };

struct sim {
	enum sim_role role;
	const char *role_name;
	const char *host;
	const char *profile_path;
	const char *state_path;       /* NULL: state lives in memory only */
	const char *control_path;
	uint16_t port;
	int apdu_delay_ms;
	int present;                  /* inserted: keep (or get) the link up */
	int quit;                     /* 0, or 1 + exit status */
	unsigned long apdus;          /* APDUs received since start */
	unsigned long drop_left;      /* drop the link when this many more APDUs arrived; 0 = off */
	int backoff_ms;
	long long reconnect_at;       /* monotonic ms; when present and the link is closed */
	long long connect_started;
	long long frame_started;      /* monotonic ms of a partial frame's first byte; -1 none */
	int waiting_logged;           /* "waiting for vpcd" was logged since the last connect */
	int sigfd;
	struct sim_token *token;
	struct ctl ctl;
	struct vlink link;            /* last: it holds a 64 KiB frame buffer */
};

static struct sim sim_g;   /* static storage: the link's frame buffer is too big for the stack */

static long long sim_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sim_usage(FILE *out)
{
	fputs("usage: sscard-sim card|psam --port PORT --profile FILE [options]\n"
	      "       sscard-sim ctl SOCKET remove|insert|status|drop-after N\n"
	      "       sscard-sim hsm --listen ADDR:PORT --cert F --key F --client-ca F --psam P\n"
	      "                  (a simulated key server: sscard-sim hsm --help)\n"
	      "  Attaches a simulated social security card (card) or PSAM (psam) to pcscd's vpcd\n"
	      "  reader listening on HOST:PORT (the simulator is the TCP client and reconnects).\n"
	      "  ctl sends one command to a running simulator's control socket (--control) and\n"
	      "  prints its answer: exit 0 for an answer, 1 for an \"error ...\" answer, 2 bad\n"
	      "  arguments, 3 no simulator answers there (within 5 s).\n"
	      "options:\n"
	      "  --port PORT           vpcd slot port (vpcd's default is 35963 for slot 0)\n"
	      "  --profile FILE        profile JSON (firmware-stubs/profiles/)\n"
	      "  --state FILE          load the card state from FILE at start; save it atomically\n"
	      "                        after every APDU that changed it, before answering\n"
	      "  --host ADDR           vpcd's IPv4 address (default 127.0.0.1)\n"
	      "  --drop-after N        drop the link when the N-th APDU arrives (unanswered) and\n"
	      "                        stay removed until \"insert\" or SIGUSR1\n"
	      "  --apdu-delay-ms MS    wait MS milliseconds before each answer (0..60000)\n"
	      "  --control PATH        control socket: lines remove, insert, status, drop-after N\n"
	      "  --absent              start removed (no link until \"insert\" or SIGUSR1)\n"
	      "  --verbose             log every APDU (PIN-carrying bodies masked)\n"
	      "signals: SIGUSR1 toggles presence; SIGTERM/SIGINT stop.\n"
	      "exit status: 0 stopped by a signal, 1 runtime failure, 2 bad arguments, profile or state\n",
	      out);
}

/* Parses a decimal number in [min, max]; strtoul alone would accept "-1", "12x" and "". */
static int sim_parse_num(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int sim_bad_arg(const char *what, const char *value)
{
	fprintf(stderr, "sscard-sim: invalid %s: '%s'\n", what, value ? value : "");
	fputs("Try 'sscard-sim --help'.\n", stderr);
	return -EINVAL;
}

/* Fills s from the command line. Returns 0, 1 when --help was printed, or -EINVAL (message printed). */
static int sim_parse_args(struct sim *s, int argc, char **argv)
{
	enum { OPT_PORT = 256, OPT_PROFILE, OPT_STATE, OPT_HOST, OPT_DROP, OPT_DELAY, OPT_CONTROL,
	       OPT_ABSENT, OPT_VERBOSE };
	static const struct option opts[] = {
		{ "port", required_argument, NULL, OPT_PORT },
		{ "profile", required_argument, NULL, OPT_PROFILE },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "drop-after", required_argument, NULL, OPT_DROP },
		{ "apdu-delay-ms", required_argument, NULL, OPT_DELAY },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "absent", no_argument, NULL, OPT_ABSENT },
		{ "verbose", no_argument, NULL, OPT_VERBOSE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	int verbose = 0;
	int absent = 0;
	int c;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		sim_usage(stdout);
		return 1;
	}
	if (argc < 2 || (strcmp(argv[1], "card") != 0 && strcmp(argv[1], "psam") != 0))
		return sim_bad_arg("mode (expected 'card', 'psam', 'hsm' or 'ctl')",
				   argc >= 2 ? argv[1] : "");
	s->role = strcmp(argv[1], "card") == 0 ? SIM_ROLE_CARD : SIM_ROLE_PSAM;
	s->role_name = argv[1];
	s->host = "127.0.0.1";
	opterr = 0;
	optind = 2;
	while ((c = getopt_long(argc, argv, ":hv", opts, NULL)) != -1) {
		switch (c) {
		case OPT_PORT:
			if (sim_parse_num(optarg, 1, 65535, &v) < 0)
				return sim_bad_arg("--port (1..65535)", optarg);
			s->port = (uint16_t)v;
			break;
		case OPT_PROFILE:
			s->profile_path = optarg;
			break;
		case OPT_STATE:
			if (!*optarg)
				return sim_bad_arg("--state", optarg);
			s->state_path = optarg;
			break;
		case OPT_HOST:
			s->host = optarg;
			break;
		case OPT_DROP:
			if (sim_parse_num(optarg, 1, 1000000000UL, &v) < 0)
				return sim_bad_arg("--drop-after (1..1000000000)", optarg);
			s->drop_left = v;
			break;
		case OPT_DELAY:
			if (sim_parse_num(optarg, 0, SIM_DELAY_MAX_MS, &v) < 0)
				return sim_bad_arg("--apdu-delay-ms (0..60000)", optarg);
			s->apdu_delay_ms = (int)v;
			break;
		case OPT_CONTROL:
			s->control_path = optarg;
			break;
		case OPT_ABSENT:
			absent = 1;
			break;
		case 'v':
		case OPT_VERBOSE:
			verbose = 1;
			break;
		case 'h':
			sim_usage(stdout);
			return 1;
		case ':':
			return sim_bad_arg("option (missing value)", argv[optind - 1]);
		default:
			return sim_bad_arg("option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return sim_bad_arg("argument", argv[optind]);
	if (s->port == 0 || !s->profile_path) {
		fprintf(stderr, "sscard-sim: %s is required\nTry 'sscard-sim --help'.\n",
			s->port == 0 ? "--port" : "--profile");
		return -EINVAL;
	}
	if (vlink_init(&s->link, s->host, s->port) < 0)
		return sim_bad_arg("--host (an IPv4 address such as 127.0.0.1)", s->host);
	s->present = !absent;
	{
		char tag[64];

		snprintf(tag, sizeof(tag), "%s:%u", s->role_name, (unsigned)s->port);
		simlog_init(tag, verbose);
	}
	return 0;
}

/* Loads the profile, creates the token and applies the state file. Returns 0 or -1 (printed). */
static int sim_load(struct sim *s)
{
	char err[512] = "";
	struct sim_profile *p = sim_profile_load(s->profile_path, err, sizeof(err));
	int r;

	if (!p) {
		fprintf(stderr, "sscard-sim: %s\n", err[0] ? err : "cannot load the profile");
		return -1;
	}
	s->token = sim_token_new(p, s->role);
	sim_profile_free(p);
	if (!s->token) {
		fprintf(stderr, "sscard-sim: out of memory creating the %s\n", s->role_name);
		return -1;
	}
	if (!s->state_path)
		return 0;
	err[0] = '\0';
	r = sim_token_load(s->token, s->state_path, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "sscard-sim: %s\n", err[0] ? err : strerror(-r));
		return -1;
	}
	simlog("%s %s", r == 1 ? "no state file yet, starting from the profile:" : "state loaded from",
	       s->state_path);
	return 0;
}

/* Closes the link (card removed or link lost): the card loses power. */
static void sim_link_down(struct sim *s, const char *why)
{
	if (s->link.state == VLINK_UP)
		simlog("disconnected: %s", why);
	vlink_close(&s->link);
	s->frame_started = -1;
	sim_token_reset(s->token);
}

static void sim_set_present(struct sim *s, int present, const char *why)
{
	if (present && !s->present) {
		s->present = 1;
		s->backoff_ms = SIM_BACKOFF_MIN_MS;
		s->reconnect_at = sim_now_ms();
		simlog("card inserted (%s)", why);
	} else if (!present && s->present) {
		s->present = 0;
		sim_link_down(s, why);
		simlog("card removed (%s)", why);
	}
}

/* The link is up: log it once and reset the back-off. */
static void sim_on_connected(struct sim *s)
{
	simlog("connected to %s:%u", s->host, (unsigned)s->port);
	s->backoff_ms = SIM_BACKOFF_MIN_MS;
	s->waiting_logged = 0;
}

/* A connect failed (vpcd not listening yet): retry after the back-off, which doubles up to 1 s. */
static void sim_connect_failed(struct sim *s, long long now, int err)
{
	if (!s->waiting_logged) {
		simlog("waiting for vpcd at %s:%u (%s)", s->host, (unsigned)s->port, strerror(-err));
		s->waiting_logged = 1;
	}
	s->reconnect_at = now + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > SIM_BACKOFF_MAX_MS ? SIM_BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static void sim_try_connect(struct sim *s, long long now)
{
	int r = vlink_connect(&s->link);

	if (r < 0) {
		sim_connect_failed(s, now, r);
		return;
	}
	s->connect_started = now;
	if (s->link.state == VLINK_UP)
		sim_on_connected(s);
}

/* Handles pending signals from the signalfd (never blocks). */
static void sim_read_signals(struct sim *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			sim_set_present(s, !s->present, "SIGUSR1");
		else if (!s->quit)
			s->quit = 1 + SIM_EXIT_OK;
	}
}

/*
 * Waits ms milliseconds before an answer while still taking signals (SIGTERM ends the wait, SIGUSR1
 * is applied after the answer: the card cannot vanish in the middle of its own reply).
 */
static void sim_delay(struct sim *s, int ms)
{
	long long until = sim_now_ms() + ms;
	sigset_t pending;

	for (;;) {
		struct pollfd pfd = { .fd = s->sigfd, .events = POLLIN };
		long long left = until - sim_now_ms();

		if (left <= 0)
			return;
		if (poll(&pfd, 1, (int)left) > 0) {
			/* Only a terminating signal cuts the delay short; SIGUSR1 stays queued. */
			sigemptyset(&pending);
			if (sigpending(&pending) == 0 &&
			    (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT) ||
			     sigismember(&pending, SIGHUP)))
				return;
			/* Only SIGUSR1 is pending: sleep the rest without watching the signalfd. */
			left = until - sim_now_ms();
			if (left > 0)
				(void)poll(NULL, 0, (int)left);
			return;
		}
	}
}

static void sim_send(struct sim *s, const uint8_t *p, size_t len)
{
	int r = vlink_send(&s->link, p, len, SIM_SEND_DEADLINE_MS);

	if (r < 0) {
		char why[96];

		snprintf(why, sizeof(why), "send failed: %s", strerror(-r));
		sim_link_down(s, why);
		s->reconnect_at = sim_now_ms() + SIM_BACKOFF_MIN_MS;
	}
}

/* Handles one vpcd control byte (a 1-byte frame). */
static void sim_on_control(struct sim *s, uint8_t ctrl)
{
	uint8_t atr[SIM_ATR_MAX];
	size_t n;

	switch (ctrl) {
	case 0x00: /* power off */
	case 0x01: /* power on */
	case 0x02: /* reset */
		if (simlog_verbose())
			simlog("%s", ctrl == 0 ? "power off" : ctrl == 1 ? "power on" : "reset");
		sim_token_reset(s->token);
		break;
	case 0x04: /* GET ATR: answered at any moment, between APDUs included */
		n = sim_token_atr(s->token, atr);
		if (n > SIM_ATR_MAX)
			n = SIM_ATR_MAX;
		sim_send(s, atr, n);
		break;
	default:
		if (simlog_verbose())
			simlog("ignored unknown control byte %02X", ctrl);
		break;
	}
}

/* Handles one command APDU: drop-after, the card OS, the state file, the delay, the answer. */
static void sim_on_apdu(struct sim *s, const uint8_t *cmd, size_t len)
{
	uint8_t resp[SIM_RESP_MAX];
	uint64_t gen_before;
	size_t n;

	s->apdus++;
	if (s->drop_left > 0 && --s->drop_left == 0) {
		char why[96];

		snprintf(why, sizeof(why), "--drop-after: APDU %lu arrived and is left unanswered",
			 s->apdus);
		sim_set_present(s, 0, why);
		return;
	}
	simlog_apdu(1, cmd, len);
	gen_before = sim_token_generation(s->token);
	n = sim_token_apdu(s->token, cmd, len, resp);
	if (n < 2 || n > SIM_RESP_MAX) {
		/* simcos promises 2..SIM_RESP_MAX; never send a short answer (vpcd would see a removal). */
		simlog("card OS returned an answer of %zu bytes: answering 6F00", n);
		resp[0] = 0x6F;
		resp[1] = 0x00;
		n = 2;
	}
	if (s->state_path && sim_token_generation(s->token) != gen_before) {
		/* Saved before the answer leaves: an acknowledged write must survive kill -9. */
		int r = sim_token_save(s->token, s->state_path);

		if (r < 0) {
			simlog("cannot save the state to %s: %s; stopping without answering",
			       s->state_path, strerror(-r));
			sim_link_down(s, "state file not writable");
			s->quit = 1 + SIM_EXIT_FAILURE;
			return;
		}
	}
	if (s->apdu_delay_ms > 0)
		sim_delay(s, s->apdu_delay_ms);
	simlog_apdu(0, resp, n);
	sim_send(s, resp, n);
}

/* Reads and handles every complete frame the link holds. */
static void sim_on_readable(struct sim *s)
{
	while (s->link.state == VLINK_UP && !s->quit) {
		int r = vlink_read(&s->link);

		if (r < 0) {
			sim_link_down(s, r == -ECONNRESET ? "closed by vpcd" : strerror(-r));
			s->backoff_ms = SIM_BACKOFF_MIN_MS;
			s->reconnect_at = sim_now_ms() + SIM_BACKOFF_MIN_MS;
			return;
		}
		if (r == 0) {
			if (vlink_partial(&s->link) && s->frame_started < 0)
				s->frame_started = sim_now_ms();
			return;
		}
		s->frame_started = -1;
		if (s->link.need == 0) {
			if (simlog_verbose())
				simlog("ignored an empty frame");
		} else if (s->link.need == 1) {
			sim_on_control(s, s->link.buf[0]);
		} else {
			sim_on_apdu(s, s->link.buf, s->link.need);
		}
	}
}

/* The control socket's commands. */
static void sim_on_command(void *arg, const char *line, char *reply, size_t replylen)
{
	struct sim *s = arg;
	unsigned long v;

	if (strcmp(line, "remove") == 0) {
		sim_set_present(s, 0, "control socket");
		snprintf(reply, replylen, "ok");
	} else if (strcmp(line, "insert") == 0) {
		sim_set_present(s, 1, "control socket");
		snprintf(reply, replylen, "ok");
	} else if (strcmp(line, "status") == 0) {
		snprintf(reply, replylen, "%s link=%s apdus=%lu generation=%llu drop_left=%lu",
			 s->present ? "present" : "absent",
			 s->link.state == VLINK_UP ? "up" :
			 s->link.state == VLINK_CONNECTING ? "connecting" : "down",
			 s->apdus, (unsigned long long)sim_token_generation(s->token), s->drop_left);
	} else if (strncmp(line, "drop-after ", 11) == 0 &&
		   sim_parse_num(line + 11, 0, 1000000000UL, &v) == 0) {
		s->drop_left = v;
		snprintf(reply, replylen, "ok");
	} else {
		snprintf(reply, replylen, "error unknown command (remove, insert, status, drop-after N)");
	}
}

static int sim_setup_signals(struct sim *s)
{
	struct sigaction sa = { .sa_handler = SIG_IGN };
	sigset_t set;

	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return s->sigfd < 0 ? -errno : 0;
}

/* Lowers *best to the time left until deadline (0 when already due). */
static void sim_earliest(long long *best, long long deadline, long long now)
{
	long long left = deadline > now ? deadline - now : 0;

	if (*best < 0 || left < *best)
		*best = left;
}

/* Milliseconds poll() may sleep: the nearest of the reconnect, connect, frame and client deadlines. */
static int sim_poll_timeout(const struct sim *s, long long now)
{
	long long t = -1;
	int ct;

	if (s->present && s->link.state == VLINK_CLOSED)
		sim_earliest(&t, s->reconnect_at, now);
	if (s->link.state == VLINK_CONNECTING)
		sim_earliest(&t, s->connect_started + SIM_CONNECT_DEADLINE_MS, now);
	if (s->frame_started >= 0)
		sim_earliest(&t, s->frame_started + SIM_FRAME_DEADLINE_MS, now);
	ct = ctl_timeout_ms(&s->ctl, now);
	if (ct >= 0)
		sim_earliest(&t, now + ct, now);
	return t < 0 ? -1 : (int)(t > 60000 ? 60000 : t);
}

/* Runs until a signal stops the simulator or a fatal error; returns the exit status. */
static int sim_run(struct sim *s)
{
	struct pollfd fds[2 + 1 + CTL_MAX_CLIENTS];

	s->backoff_ms = SIM_BACKOFF_MIN_MS;
	s->reconnect_at = sim_now_ms();
	s->frame_started = -1;
	if (!s->present)
		simlog("started absent: waiting for \"insert\" or SIGUSR1");
	while (!s->quit) {
		long long now = sim_now_ms();
		size_t nfds = 0, link_idx = SIZE_MAX, ctl_first;
		int r;

		if (s->present && s->link.state == VLINK_CLOSED && now >= s->reconnect_at)
			sim_try_connect(s, now);
		if (s->link.state == VLINK_CONNECTING &&
		    now - s->connect_started >= SIM_CONNECT_DEADLINE_MS) {
			vlink_close(&s->link);
			sim_connect_failed(s, now, -ETIMEDOUT);
		}
		if (s->frame_started >= 0 && now - s->frame_started >= SIM_FRAME_DEADLINE_MS) {
			sim_link_down(s, "vpcd left a frame incomplete");
			s->reconnect_at = now + SIM_BACKOFF_MIN_MS;
		}
		fds[nfds++] = (struct pollfd){ .fd = s->sigfd, .events = POLLIN };
		if (s->link.state != VLINK_CLOSED) {
			link_idx = nfds;
			fds[nfds++] = (struct pollfd){
				.fd = s->link.fd,
				.events = s->link.state == VLINK_CONNECTING ? POLLOUT : POLLIN,
			};
		}
		ctl_first = nfds;
		nfds += ctl_pollfds(&s->ctl, fds + nfds);
		r = poll(fds, nfds, sim_poll_timeout(s, now));
		if (r < 0 && errno != EINTR) {
			simlog("poll: %s", strerror(errno));
			return SIM_EXIT_FAILURE;
		}
		if (r <= 0)
			continue;
		if (fds[0].revents & POLLIN)
			sim_read_signals(s);
		if (link_idx != SIZE_MAX && fds[link_idx].fd == s->link.fd && fds[link_idx].revents) {
			if (s->link.state == VLINK_CONNECTING) {
				int e = vlink_finish_connect(&s->link);

				if (e == 0)
					sim_on_connected(s);
				else
					sim_connect_failed(s, sim_now_ms(), e);
			} else if (s->link.state == VLINK_UP) {
				sim_on_readable(s);
			}
		}
		ctl_dispatch(&s->ctl, fds + ctl_first, nfds - ctl_first, sim_now_ms());
	}
	return s->quit - 1;
}

/*
 * sscard-sim ctl SOCKET COMMAND [ARG]: the client of a simulator's control socket, so that no
 * other tool (netcat, socat) is needed to remove or insert a simulated card.
 */
#define SIM_CTL_TIMEOUT_MS 5000
enum { SIM_CTL_ERROR = 1, SIM_CTL_UNREACHABLE = 3 };

static int sim_ctl_main(int argc, char **argv)
{
	char line[CTL_LINE_MAX + 1], reply[256];
	size_t len = 0;
	int r;

	if (argc < 4) {
		fputs("usage: sscard-sim ctl SOCKET remove|insert|status|drop-after N\n", stderr);
		return SIM_EXIT_USAGE;
	}
	line[0] = '\0';
	for (int i = 3; i < argc; i++) {
		int n = snprintf(line + len, sizeof(line) - len, "%s%s", i > 3 ? " " : "", argv[i]);

		if (n < 0 || (size_t)n >= sizeof(line) - len || strchr(argv[i], '\n')) {
			fputs("sscard-sim ctl: the command is too long or has a newline\n", stderr);
			return SIM_EXIT_USAGE;
		}
		len += (size_t)n;
	}
	r = ctl_request(argv[2], line, reply, sizeof(reply), SIM_CTL_TIMEOUT_MS);
	if (r < 0) {
		fprintf(stderr, "sscard-sim ctl: %s: %s%s\n", argv[2], strerror(-r),
			r == -ENOENT || r == -ECONNREFUSED ?
			" (is a simulator running with --control on that socket?)" : "");
		return r == -ENAMETOOLONG ? SIM_EXIT_USAGE : SIM_CTL_UNREACHABLE;
	}
	puts(reply);
	return strncmp(reply, "error", 5) == 0 ? SIM_CTL_ERROR : SIM_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct sim *s = &sim_g;
	int status = SIM_EXIT_USAGE;
	int r;

	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return sim_ctl_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "hsm") == 0) {
#ifdef SIM_HAVE_HSM
		return hsm_main(argc - 1, argv + 1);
#else
		fputs("sscard-sim: built without the key server (libmicrohttpd-dev and "
		      "libgnutls28-dev were missing)\n", stderr);
		return SIM_EXIT_FAILURE;
#endif
	}

	s->sigfd = -1;
	s->link.fd = -1;
	s->ctl.listen_fd = -1;
	r = sim_parse_args(s, argc, argv);
	if (r != 0)
		return r > 0 ? SIM_EXIT_OK : SIM_EXIT_USAGE;
	if (sim_load(s) < 0)
		goto out_free;
	r = ctl_open(&s->ctl, s->control_path, sim_on_command, s);
	if (r < 0) {
		fprintf(stderr, "sscard-sim: control socket %s: %s\n", s->control_path,
			strerror(-r));
		goto out_free;
	}
	if (sim_setup_signals(s) < 0) {
		fprintf(stderr, "sscard-sim: signals: %s\n", strerror(errno));
		status = SIM_EXIT_FAILURE;
		goto out_ctl;
	}
	status = sim_run(s);
	simlog("stopping (%lu APDUs served)", s->apdus);
	close(s->sigfd);
out_ctl:
	ctl_close(&s->ctl);
	vlink_close(&s->link);
out_free:
	sim_token_free(s->token);
	return status;
}
