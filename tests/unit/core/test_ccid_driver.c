/*
 * Unit tests of the usb-ccid driver's ops table (drivers/usb-ccid/usb.c) where no USB device is
 * needed: the usb_allow syntax, open/close, and the contract with no (or no matching) USB bus:
 * list() succeeds, wait_change() keeps to its timeout and returns at once on wake(), connect()
 * to an unknown reader says SSC_ENOREADER. The driver against devices runs under umockdev in the
 * e2e tests (tests/e2e/test_usb_*.py).
 */
#include <pthread.h>
#include <time.h>

#include "test_ccid_util.h"

#include "sscard/driver.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_with(const char *allow)
{
	struct ssc_driver_config cfg = { allow, 100, 1000 };
	struct ssc_driver *drv = NULL;
	int rc = ssc_driver_usb_ccid.open(&cfg, &drv);

	if (rc == 0) {
		assert_non_null(drv);
		ssc_driver_usb_ccid.close(drv);
	}
	return rc;
}

static void test_allow_syntax(void **state)
{
	(void)state;
	assert_string_equal(ssc_driver_usb_ccid.name, "usb-ccid");
	assert_int_equal(open_with(NULL), 0);
	assert_int_equal(open_with(""), 0);
	assert_int_equal(open_with("072f:90cc"), 0);
	assert_int_equal(open_with("072F:90CC,08e6:3437"), 0);
	assert_int_equal(open_with(" 072f:90cc , 08e6:3437 "), 0);
	assert_int_equal(open_with("072f:90cc,"), 0);
	assert_int_equal(open_with("072f"), SSC_ECONFIG);
	assert_int_equal(open_with("072f:"), SSC_ECONFIG);
	assert_int_equal(open_with(":90cc"), SSC_ECONFIG);
	assert_int_equal(open_with("zz:90cc"), SSC_ECONFIG);
	assert_int_equal(open_with("10000:0001"), SSC_ECONFIG);
	assert_int_equal(open_with("072f:90cc;08e6:3437"), SSC_ECONFIG);
	assert_int_equal(open_with("1:1,2:2,3:3,4:4,5:5,6:6,7:7,8:8,9:9,a:a,b:b,c:c,d:d,e:e,f:f,10:10"),
			 0);
	assert_int_equal(open_with("1:1,2:2,3:3,4:4,5:5,6:6,7:7,8:8,9:9,a:a,b:b,c:c,d:d,e:e,f:f,10:10,"
				   "11:11"), SSC_ECONFIG);
	ssc_driver_usb_ccid.close(NULL);
}

struct waker {
	struct ssc_driver *drv;
	int delay_ms;
};

static void *wake_later(void *arg)
{
	struct waker *w = arg;
	struct timespec ts = { 0, (long)w->delay_ms * 1000000L };

	nanosleep(&ts, NULL);
	ssc_driver_usb_ccid.wake(w->drv);
	return NULL;
}

static void test_without_devices(void **state)
{
	struct ssc_driver_config cfg = { NULL, 100, 1000 };
	struct ssc_driver *drv = NULL;
	struct ssc_reader_desc d[8];
	struct ssc_slot *slot = NULL;
	uint8_t atr[SSC_ATR_MAX];
	size_t atr_len = 0;
	struct waker w;
	pthread_t t;
	int64_t t0;
	int n;

	(void)state;
	assert_int_equal(ssc_driver_usb_ccid.open(&cfg, &drv), 0);

	/* No USB here (or no CCID reader on it): a snapshot all the same, and no reader of ours. */
	n = ssc_driver_usb_ccid.list(drv, d, 8);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++)
		assert_memory_equal(d[i].id, "usb-ccid-", 9);
	assert_int_equal(ssc_driver_usb_ccid.connect(drv, "usb-ccid-9-9.9-s0", 500, &slot, atr,
						     &atr_len), SSC_ENOREADER);
	assert_null(slot);

	/* wait_change keeps to its timeout... */
	t0 = now_ms();
	n = ssc_driver_usb_ccid.wait_change(drv, 300);
	assert_true(n == 0 || n == 1);
	assert_true(now_ms() - t0 <= 300 + 600);

	/* ... and wake() ends it at once, from another thread, or ends the next one. */
	w.drv = drv;
	w.delay_ms = 100;
	assert_int_equal(pthread_create(&t, NULL, wake_later, &w), 0);
	t0 = now_ms();
	while ((n = ssc_driver_usb_ccid.wait_change(drv, 5000)) == 1)
		;   /* a change reported first (USB found late): wait again */
	assert_int_equal(n, 0);
	assert_true(now_ms() - t0 < 2000);
	pthread_join(t, NULL);

	ssc_driver_usb_ccid.wake(drv);
	t0 = now_ms();
	assert_int_equal(ssc_driver_usb_ccid.wait_change(drv, 5000), 0);
	assert_true(now_ms() - t0 < 500);

	ssc_driver_usb_ccid.disconnect(NULL, 1);
	ssc_driver_usb_ccid.close(drv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allow_syntax),
		cmocka_unit_test(test_without_devices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
