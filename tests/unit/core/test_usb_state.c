/*
 * Unit tests of the usb-ccid driver's state (drivers/usb-ccid/usb_state.c, usb_dev.c, usb_io.c)
 * without USB: the slot transitions that statuses, notifications, activation and failures cause,
 * and the invariants (base/invariant.h) checked at those transitions. A broken invariant aborts a
 * checked build: each such case runs in a child process, whose end (SIGABRT, and the condition on
 * its stderr) is the expected outcome.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_ccid_util.h"

#include "../../../drivers/usb-ccid/usb_dev.h"
#include "../../../drivers/usb-ccid/usb_io.h"
#include "../../../drivers/usb-ccid/usb_state.h"

/* A driver instance and one dual-slot device of it, as usb_dev_open() leaves them, minus USB. */
struct fixture {
	struct ssc_driver drv;
	struct usb_dev *d;
};

static void fx_init(struct fixture *f)
{
	memset(&f->drv, 0, sizeof(f->drv));
	assert_int_equal(pthread_mutex_init(&f->drv.lock, NULL), 0);
	assert_int_equal(pthread_cond_init(&f->drv.cond, NULL), 0);
	f->d = calloc(1, sizeof(*f->d));
	assert_non_null(f->d);
	f->d->drv = &f->drv;
	f->d->n_slots = 2;
	f->d->refs = 1;
	f->d->ep_intr = 0x83;
	snprintf(f->d->base_id, sizeof(f->d->base_id), "usb-ccid-9-1");
	assert_int_equal(pthread_mutex_init(&f->d->io, NULL), 0);
	f->drv.n_alive = 1;
}

static void fx_done(struct fixture *f)
{
	if (f->d) {
		pthread_mutex_destroy(&f->d->io);
		free(f->d);
	}
	pthread_cond_destroy(&f->drv.cond);
	pthread_mutex_destroy(&f->drv.lock);
}

/*
 * Runs fn(f) in a child process with stderr in a pipe. Returns 1 when the child died of SIGABRT
 * having printed "invariant broken" and want (a part of the condition), 0 when it ended otherwise.
 */
static int aborts_with(void (*fn)(struct fixture *), const char *want)
{
	char buf[1024];
	size_t got = 0;
	int fds[2], st = 0;
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fixture f;

		dup2(fds[1], 2);
		fx_init(&f);
		fn(&f);
		_exit(0);
	}
	close(fds[1]);
	while (got + 1 < sizeof(buf) && (n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(buf, "invariant broken") &&
	       strstr(buf, want);
}

/* The transitions of one slot through statuses, notifications, activation and failures. */
static void test_slot_transitions(void **state)
{
	static const uint8_t atr[] = { 0x3B, 0x02, 0x14, 0x50 };
	struct fixture f;
	struct usb_slot_state *st;
	unsigned gen;

	(void)state;
	fx_init(&f);
	st = &f.d->slot[0];
	pthread_mutex_lock(&f.drv.lock);

	/* A status poll sees an inserted card before its notification: the notification is old. */
	usb_state_icc_locked(f.d, 0, CCID_ICC_INACTIVE);
	assert_true(st->present);
	assert_false(st->powered);
	assert_int_equal(st->gen, 1);
	assert_true(st->expect_notify);
	assert_false(st->report_out);
	assert_true(f.drv.changed);
	usb_state_notify_locked(f.d, 0x1, 0x1);
	assert_true(st->present);
	assert_int_equal(st->gen, 1);
	assert_false(st->expect_notify);

	/* Activated: powered with its ATR, gen unchanged. */
	gen = usb_state_active_locked(f.d, 0, atr, sizeof(atr));
	assert_int_equal(gen, 1);
	assert_true(st->powered);
	assert_int_equal(st->atr_len, sizeof(atr));
	assert_memory_equal(st->atr, atr, sizeof(atr));

	/* An inactive status of a card we powered: it was pulled or reset. */
	usb_state_icc_locked(f.d, 0, CCID_ICC_INACTIVE);
	assert_true(st->present);
	assert_false(st->powered);
	assert_int_equal(st->atr_len, 0);
	assert_int_equal(st->gen, 2);
	assert_true(st->report_out);   /* list() reports it gone once */

	/* Gone and back between two looks (a notification with the change bit). */
	(void)usb_state_active_locked(f.d, 0, atr, sizeof(atr));
	st->report_out = 0;
	usb_state_notify_locked(f.d, 0x1, 0x1);
	assert_true(st->present);
	assert_false(st->powered);
	assert_int_equal(st->gen, 3);
	assert_true(st->report_out);

	/* Removed. */
	usb_state_icc_locked(f.d, 0, CCID_ICC_ABSENT);
	assert_false(st->present);
	assert_int_equal(st->gen, 4);

	/* A hardware error on slot 1 with a card: taken for reset. Slot 0 untouched. */
	usb_state_icc_locked(f.d, 1, CCID_ICC_ACTIVE);
	assert_true(f.d->slot[1].present);
	assert_int_equal(f.d->slot[1].gen, 1);
	usb_state_hw_error_locked(f.d, 1, 0x01);
	assert_int_equal(f.d->slot[1].gen, 2);
	assert_int_equal(st->gen, 4);

	/* The device stops answering: out of service, and marked failed. */
	usb_state_gone_locked(f.d, 1);
	assert_true(f.d->gone);
	assert_true(f.d->failed);
	pthread_mutex_unlock(&f.drv.lock);

	/* Unpowered after a failed exchange (takes the lock itself). */
	pthread_mutex_lock(&f.drv.lock);
	(void)usb_state_active_locked(f.d, 1, atr, sizeof(atr));
	pthread_mutex_unlock(&f.drv.lock);
	usb_state_unpowered(f.d, 1);
	assert_false(f.d->slot[1].powered);
	assert_true(f.d->slot[1].present);
	fx_done(&f);
}

/* A powered slot must hold its card's ATR: one that lost it breaks the next transition. */
static void powered_without_atr(struct fixture *f)
{
	pthread_mutex_lock(&f->drv.lock);
	f->d->slot[0].present = 1;
	f->d->slot[0].powered = 1;
	f->d->slot[0].atr_len = 0;
	usb_state_icc_locked(f->d, 0, CCID_ICC_ACTIVE);
	pthread_mutex_unlock(&f->drv.lock);
}

/* A slot powered with no card in it. */
static void powered_without_card(struct fixture *f)
{
	pthread_mutex_lock(&f->drv.lock);
	f->d->slot[1].powered = 1;
	f->d->slot[1].atr_len = 2;
	pthread_mutex_unlock(&f->drv.lock);
	usb_state_unpowered(f->d, 0);   /* fine: slot 0 is consistent */
	pthread_mutex_lock(&f->drv.lock);
	usb_state_icc_locked(f->d, 1, 0x03);   /* bmICCStatus 3 (RFU): no change, still checked */
	pthread_mutex_unlock(&f->drv.lock);
}

/* An activation that reports no ATR. */
static void active_without_atr(struct fixture *f)
{
	pthread_mutex_lock(&f->drv.lock);
	(void)usb_state_active_locked(f->d, 0, NULL, 0);
	pthread_mutex_unlock(&f->drv.lock);
}

static void test_slot_invariants(void **state)
{
	(void)state;
#ifndef SSC_INVARIANTS
	skip();
#endif
	assert_true(aborts_with(powered_without_atr, "st->atr_len > 0"));
	assert_true(aborts_with(powered_without_card, "st->present"));
	assert_true(aborts_with(active_without_atr, "len == 0"));
}

/* A device reference dropped once too often. */
static void unref_twice(struct fixture *f)
{
	struct usb_dev *d = calloc(1, sizeof(*d));

	d->drv = &f->drv;
	d->refs = 0;
	usb_dev_unref(d);
}

/* A command for a slot the device does not have. */
static void cmd_bad_slot(struct fixture *f)
{
	struct usb_io_cmd c;

	memset(&c, 0, sizeof(c));
	c.type = CCID_PC_GET_SLOT_STATUS;
	c.expect = CCID_RDR_SLOT_STATUS;
	c.deadline = INT64_MAX;
	(void)usb_io_cmd(f->d, 5, &c);
}

/* A command while an abort is pending but no late reply is expected. */
static void abort_without_drain(struct fixture *f)
{
	struct usb_io_cmd c;

	memset(&c, 0, sizeof(c));
	c.type = CCID_PC_GET_SLOT_STATUS;
	c.expect = CCID_RDR_SLOT_STATUS;
	c.deadline = INT64_MAX;
	f->d->abort_pending = 1;
	f->d->dirty = 0;
	(void)usb_io_cmd(f->d, 0, &c);
}

static void test_device_invariants(void **state)
{
	(void)state;
#ifndef SSC_INVARIANTS
	skip();
#endif
	assert_true(aborts_with(unref_twice, "d->refs <= 0"));
	assert_true(aborts_with(cmd_bad_slot, "idx >= d->n_slots"));
	assert_true(aborts_with(abort_without_drain, "!d->abort_pending || d->dirty"));
}

/*
 * A device whose interrupt transfer would not stop (usb_hotplug_remove() gave up on it): libusb
 * may still complete that transfer into the device, so its last reference must not free it, and
 * it stays counted alive (so that close() leaves libusb's context open rather than exit it under
 * a pending transfer).
 */
static void test_leaked_device_kept(void **state)
{
	struct fixture f;

	(void)state;
	fx_init(&f);
	f.d->leaked = 1;
	f.d->intr_active = 1;
	f.d->gone = 1;
	f.d->closing = 1;
	usb_dev_unref(f.d);
	pthread_mutex_lock(&f.drv.lock);
	assert_int_equal(f.drv.n_alive, 1);
	assert_int_equal(f.d->refs, 0);     /* still readable: not freed */
	assert_true(f.d->intr_active);
	pthread_mutex_unlock(&f.drv.lock);
	fx_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_transitions),
		cmocka_unit_test(test_slot_invariants),
		cmocka_unit_test(test_device_invariants),
		cmocka_unit_test(test_leaked_device_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
