/*
 * This file contains pinentry (src/pinentry.h): a PIN read from the terminal with echo off, or
 * one line of a pipe, a byte at a time so that nothing beyond the line is consumed and no stdio
 * buffer keeps a copy; the terminal is put back even when a signal ends the typing.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "pinentry.h"
#include "sscard/error.h"

/* The signals that may interrupt typing, and what was installed for them before. */
static const int pin_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
#define N_PIN_SIGNALS (sizeof(pin_signals) / sizeof(pin_signals[0]))

/* The terminal being read with echo off (for the signal handler): its fd and settings. */
static volatile sig_atomic_t tty_fd = -1;
static struct termios tty_saved, tty_quiet;
static struct sigaction old_actions[N_PIN_SIGNALS];

void pinentry_wipe(void *buf, size_t len)
{
	if (buf && len)
		OPENSSL_cleanse(buf, len);
}

/*
 * Puts the terminal back and lets the signal do what it would have done. After a stop
 * (SIGTSTP) and a continue, echo goes off again: the user is still typing the PIN.
 */
static void on_signal(int sig)
{
	int saved_errno = errno, fd = tty_fd;
	struct sigaction dfl, mine;

	if (fd >= 0)
		tcsetattr(fd, TCSAFLUSH, &tty_saved);
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, &mine);
	raise(sig);   /* delivered when the handler returns and unblocks it */
	{
		sigset_t s;

		sigemptyset(&s);
		sigaddset(&s, sig);
		sigprocmask(SIG_UNBLOCK, &s, NULL);
	}
	/* Only a stop comes back here. */
	sigaction(sig, &mine, NULL);
	if (fd >= 0)
		tcsetattr(fd, TCSAFLUSH, &tty_quiet);
	errno = saved_errno;
}

static int quiet_on(int fd)
{
	struct sigaction sa;

	if (tcgetattr(fd, &tty_saved) != 0)
		return -1;
	tty_quiet = tty_saved;
	tty_quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	tty_quiet.c_lflag |= ICANON;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_PIN_SIGNALS; i++)
		sigaction(pin_signals[i], &sa, &old_actions[i]);
	tty_fd = fd;
	/* Drops what was typed before the prompt (it was shown). */
	if (tcsetattr(fd, TCSAFLUSH, &tty_quiet) != 0) {
		tty_fd = -1;
		for (size_t i = 0; i < N_PIN_SIGNALS; i++)
			sigaction(pin_signals[i], &old_actions[i], NULL);
		return -1;
	}
	return 0;
}

static void quiet_off(int fd)
{
	tcsetattr(fd, TCSADRAIN, &tty_saved);   /* keeps what is typed ahead (the next PIN) */
	tty_fd = -1;
	for (size_t i = 0; i < N_PIN_SIGNALS; i++)
		sigaction(pin_signals[i], &old_actions[i], NULL);
}

/* Writes s to fd, else to stderr (a terminal opened read-only). */
static void say(int fd, const char *s)
{
	size_t len = strlen(s);

	if (write(fd, s, len) != (ssize_t)len && write(STDERR_FILENO, s, len) < 0)
		return;   /* nowhere to say it: the read goes on */
}

int pinentry_read(int fd, const char *prompt, char *out, size_t cap)
{
	size_t len = 0;
	int tty = isatty(fd), rc = 0, got_any = 0, too_long = 0;
	char ch = 0;

	if (cap < PINENTRY_MAX + 1)
		return SSC_EINVAL;
	out[0] = '\0';
	if (tty) {
		/* Echo off first: once the prompt shows, what is typed is neither lost nor shown. */
		if (quiet_on(fd) != 0)
			return SSC_EIO;   /* never read a PIN with echo on */
		if (prompt)
			say(fd, prompt);
	}
	for (;;) {
		ssize_t n = read(fd, &ch, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = SSC_EIO;
			break;
		}
		if (n == 0) {
			if (!got_any)
				rc = SSC_ENOTFOUND;
			break;
		}
		got_any = 1;
		if (ch == '\n')
			break;
		if (ch == '\0')
			too_long = 1;   /* not text: refused as a whole, like a long line */
		if (len < PINENTRY_MAX)
			out[len++] = ch;
		else
			too_long = 1;
	}
	ch = 0;
	if (tty) {
		quiet_off(fd);
		say(fd, "\n");   /* the newline that was not echoed */
	}
	if (rc == 0 && too_long)
		rc = SSC_EINVAL;
	if (rc == 0 && len > 0 && out[len - 1] == '\r')
		len--;
	if (rc != 0) {
		pinentry_wipe(out, cap);
		out[0] = '\0';
		return rc;
	}
	out[len] = '\0';
	return 0;
}
