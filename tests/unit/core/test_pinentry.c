/*
 * This file contains the unit tests of src/pinentry.c: PINs one a line from a pipe (each call
 * takes exactly one line), lines that are too long or not text, end of input, and a terminal (a
 * pseudo-terminal) on which the typed PIN must not be echoed and whose settings come back after.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "pinentry.h"
#include "sscard/error.h"

/* A pipe whose read end holds text (written at once; it is small). Returns the read end. */
static int pipe_with(const char *text, size_t len)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, len), (ssize_t)len);
	close(p[1]);
	return p[0];
}

static void test_lines_one_at_a_time(void **state)
{
	static const char text[] = "123456\n654321\r\n\nlast";
	char pin[PINENTRY_MAX + 1];
	int fd = pipe_with(text, sizeof(text) - 1);

	assert_int_equal(pinentry_read(fd, "PIN: ", pin, sizeof(pin)), 0);
	assert_string_equal(pin, "123456");
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), 0);
	assert_string_equal(pin, "654321");   /* \r\n as well as \n */
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), 0);
	assert_string_equal(pin, "");         /* an empty line is an (empty) PIN */
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), 0);
	assert_string_equal(pin, "last");     /* no newline at the end of input */
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), SSC_ENOTFOUND);
	assert_string_equal(pin, "");
	close(fd);
}

static void test_bad_lines(void **state)
{
	char text[PINENTRY_MAX + 40], pin[PINENTRY_MAX + 1];
	int fd;

	/* 65 digits: one too many; the whole line is dropped, the next one is read. */
	memset(text, '1', PINENTRY_MAX + 1);
	memcpy(text + PINENTRY_MAX + 1, "\n2468\n", 6);
	fd = pipe_with(text, PINENTRY_MAX + 7);
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), SSC_EINVAL);
	assert_string_equal(pin, "");
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), 0);
	assert_string_equal(pin, "2468");
	close(fd);
	/* Exactly PINENTRY_MAX characters is still accepted. */
	memset(text, '7', PINENTRY_MAX);
	text[PINENTRY_MAX] = '\n';
	fd = pipe_with(text, PINENTRY_MAX + 1);
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), 0);
	assert_int_equal(strlen(pin), PINENTRY_MAX);
	close(fd);
	/* A NUL byte: not text. */
	fd = pipe_with("12\0" "34\n", 6);
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), SSC_EINVAL);
	close(fd);
	/* No input at all, and a buffer too small for the longest line. */
	fd = pipe_with("", 0);
	assert_int_equal(pinentry_read(fd, NULL, pin, sizeof(pin)), SSC_ENOTFOUND);
	close(fd);
	assert_int_equal(pinentry_read(0, NULL, pin, PINENTRY_MAX), SSC_EINVAL);
	/* A descriptor that cannot be read. */
	assert_int_equal(pinentry_read(-1, NULL, pin, sizeof(pin)), SSC_EIO);
}

/* The typist on the terminal's other side: waits for the prompt, then types the PIN. */
struct typist {
	int master;
	char seen[512];   /* everything the terminal showed, the prompt included */
	size_t len;
};

static int read_some(struct typist *t, int ms)
{
	struct pollfd p = { .fd = t->master, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return 0;
	n = read(t->master, t->seen + t->len, sizeof(t->seen) - 1 - t->len);
	if (n <= 0)
		return 0;
	t->len += (size_t)n;
	t->seen[t->len] = '\0';
	return 1;
}

static void *type_pin(void *arg)
{
	struct typist *t = arg;

	while (!strstr(t->seen, "PIN: ") && read_some(t, 5000))
		;
	if (write(t->master, "2468\n", 5) != 5)
		return NULL;
	return NULL;
}

static void test_terminal_no_echo(void **state)
{
	struct typist t = { .len = 0 };
	struct termios before, after;
	char pin[PINENTRY_MAX + 1];
	pthread_t th;
	int slave;

	t.master = posix_openpt(O_RDWR | O_NOCTTY);
	if (t.master < 0) {
		print_message("no pseudo-terminals here: %s\n", strerror(errno));
		skip();
	}
	assert_int_equal(grantpt(t.master), 0);
	assert_int_equal(unlockpt(t.master), 0);
	slave = open(ptsname(t.master), O_RDWR | O_NOCTTY);
	assert_true(slave >= 0);
	assert_int_equal(tcgetattr(slave, &before), 0);
	assert_true(before.c_lflag & ECHO);   /* a terminal echoes by default */
	alarm(30);   /* a read that never returns fails the test instead of hanging it */
	assert_int_equal(pthread_create(&th, NULL, type_pin, &t), 0);
	assert_int_equal(pinentry_read(slave, "PIN: ", pin, sizeof(pin)), 0);
	pthread_join(th, NULL);
	assert_string_equal(pin, "2468");
	while (read_some(&t, 200))
		;
	print_message("the terminal showed: \"%s\"\n", t.seen);
	assert_non_null(strstr(t.seen, "PIN: "));
	assert_null(strstr(t.seen, "2468"));   /* not echoed */
	assert_int_equal(tcgetattr(slave, &after), 0);
	assert_true(after.c_lflag & ECHO);    /* and echo is back */
	assert_int_equal(after.c_lflag, before.c_lflag);
	alarm(0);
	close(slave);
	close(t.master);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_one_at_a_time),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_terminal_no_echo),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
