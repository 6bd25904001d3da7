/*
 * This file contains the PC/SC reader driver (ssc_driver_pcsc, include/sscard/driver.h) on
 * pcsc-lite: the reader list and change notification on one monitor context (the card
 * connections, each on a context of its own, are in drivers/pcsc_card.c). SCARD_* codes become sscard errors here and nowhere
 * else. The client library honours PCSCLITE_CSOCK_NAME, so tests can point it at a private pcscd.
 *
 * Threads: pcsc-lite contexts must not be used by two threads at once. The monitor context belongs
 * to the monitor thread (list, wait_change); wake() only calls SCardCancel on it, which pcsc-lite
 * makes for exactly that purpose. Every slot owns its SCARDCONTEXT and card handle; the core hands
 * a slot to one thread at a time (under its per-reader card lock), never to two concurrently.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <PCSC/reader.h>
#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include "hex.h"
#include "log.h"
#include "sscard/driver.h"
#include "sscard/error.h"
#include "pcsc.h"

#define PCSC_MAX_READERS 32          /* readers one snapshot reports (pcsc-lite's own limit is 16) */
#define PCSC_WAIT_CHUNK_MS 500       /* one SCardGetStatusChange; wake() is seen at least this often */
#define PCSC_BACKOFF_MIN_MS 100      /* first pause while pcscd is unreachable */
#define PCSC_BACKOFF_MAX_MS 2000     /* longest pause while pcscd is unreachable */
#define PCSC_SERIAL_TRIES 3          /* attempts to read a reader's serial (it may be held) */
#define PCSC_PNP_NAME "\\\\?PnP?\\Notification"

/* What the monitor remembers about one reader between list() and wait_change(). */
struct pcsc_known {
	char name[SSC_READER_NAME_MAX];
	DWORD state;                         /* last dwEventState, SCARD_STATE_CHANGED cleared */
	char serial[SSC_READER_SERIAL_MAX];
	int serial_tries;                    /* PCSC_SERIAL_TRIES once read (or given up) */
	int seen;                            /* scratch flag for list() */
};

struct ssc_driver {
	int connect_retry_ms;

	pthread_mutex_t lock;                /* guards ctx/ctx_valid for wake(), woken, in_wait */
	pthread_cond_t cond;                 /* back-off sleeps; signalled by wake() */
	SCARDCONTEXT ctx;                    /* the monitor context */
	int ctx_valid;
	int in_wait;                         /* the monitor is inside SCardGetStatusChange */
	int woken;                           /* wake() was called since the last wait_change() */

	/* Monitor thread only. */
	int backoff_ms;
	int down_logged;
	int known_valid;                     /* known[] is a snapshot taken on the current ctx */
	struct pcsc_known known[PCSC_MAX_READERS];
	size_t n_known;
};

/*
 * pcsc-lite before 2.0.1 keeps one process-wide copy of the reader states, which SCardListReaders,
 * SCardStatus and SCardGetStatusChange rewrite without a lock whatever the context (fixed upstream
 * in 2.0.1 by "Access readerStates[] in a thread safe way"; Debian 12 ships 1.9.9, and
 * ThreadSanitizer shows the race here). So every call of those three in this process passes this
 * gate. A monitor's blocking wait would hold it for up to PCSC_WAIT_CHUNK_MS: a thread that needs
 * the gate for a quick call cancels that wait instead, and blocking waits let everyone through first.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int busy;
	int waiters;              /* workers waiting for the gate */
	int monitor_blocked;      /* the holder is a monitor inside a blocking SCardGetStatusChange */
	SCARDCONTEXT monitor_ctx; /* its context, for SCardCancel */
	unsigned long next_ticket;   /* blocking waits go in the order they came (tickets) ... */
	unsigned long serving;       /* ... so that one monitor cannot starve another */
} pcsc_gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0 };

#define PCSC_GATE_RECANCEL_MS 20  /* a worker cancels the monitor's wait again at most this late */

/*
 * Takes the gate. blocking_ctx != 0: for a blocking SCardGetStatusChange on that context, which
 * goes last (after everyone waiting) and is cancelled by whoever comes next. Otherwise for one
 * quick call, which cancels such a blocking wait to get through.
 */
void pcsc_gate_enter(SCARDCONTEXT blocking_ctx)
{
	pthread_mutex_lock(&pcsc_gate.lock);
	if (blocking_ctx) {
		/*
		 * Several monitors (drivers of several reader cores in one process) each come back for
		 * their next wait as soon as they leave: in turn, or the one that just left would
		 * take the gate again before a woken one runs, for as long as it likes.
		 */
		unsigned long ticket = pcsc_gate.next_ticket++;

		while (pcsc_gate.busy || pcsc_gate.waiters > 0 || pcsc_gate.serving != ticket)
			pthread_cond_wait(&pcsc_gate.cond, &pcsc_gate.lock);
		pcsc_gate.serving++;
		pthread_cond_broadcast(&pcsc_gate.cond);   /* the next ticket may check its turn */
	} else {
		long recancel_ms = 1;

		pcsc_gate.waiters++;
		while (pcsc_gate.busy) {
			struct timespec ts;

			if (pcsc_gate.monitor_blocked) {
				SCARDCONTEXT ctx = pcsc_gate.monitor_ctx;

				/* pcsc-lite answers SCARD_E_INVALID_HANDLE should ctx be gone. */
				pthread_mutex_unlock(&pcsc_gate.lock);
				(void)SCardCancel(ctx);
				pthread_mutex_lock(&pcsc_gate.lock);
				if (!pcsc_gate.busy)
					break;
			}
			/*
			 * Bounded: a cancel that reached pcscd just before the monitor's wait did is
			 * sent again, soon at first (1 ms, doubling up to PCSC_GATE_RECANCEL_MS), so
			 * that the lost-cancel race costs a millisecond rather than twenty.
			 */
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += recancel_ms * 1000000L;
			if (recancel_ms < PCSC_GATE_RECANCEL_MS)
				recancel_ms *= 2;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			(void)pthread_cond_clockwait(&pcsc_gate.cond, &pcsc_gate.lock,
						     CLOCK_MONOTONIC, &ts);
		}
		pcsc_gate.waiters--;
	}
	pcsc_gate.busy = 1;
	pcsc_gate.monitor_blocked = blocking_ctx != 0;
	pcsc_gate.monitor_ctx = blocking_ctx;
	pthread_mutex_unlock(&pcsc_gate.lock);
}

void pcsc_gate_leave(void)
{
	pthread_mutex_lock(&pcsc_gate.lock);
	pcsc_gate.busy = 0;
	pcsc_gate.monitor_blocked = 0;
	pcsc_gate.monitor_ctx = 0;
	pthread_cond_broadcast(&pcsc_gate.cond);
	pthread_mutex_unlock(&pcsc_gate.lock);
}

int64_t pcsc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pcsc_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* True for the codes that say the context (pcscd, its socket or the handle) is gone. */
int pcsc_rv_dead(LONG rv)
{
	return rv == SCARD_E_NO_SERVICE || rv == SCARD_E_SERVICE_STOPPED ||
	       rv == SCARD_E_INVALID_HANDLE || rv == SCARD_F_COMM_ERROR ||
	       rv == (LONG)SCARD_W_SECURITY_VIOLATION;
}

/* Maps a pcsc-lite result to the error vocabulary (the one place that knows SCARD_*). */
int pcsc_map(LONG rv)
{
	switch (rv) {
	case SCARD_S_SUCCESS:
		return 0;
	case SCARD_E_NOT_TRANSACTED:     /* the card left while an APDU was in flight */
	case SCARD_W_REMOVED_CARD:       /* the card left since we connected */
	case SCARD_W_RESET_CARD:         /* someone reset it under us: our security state is gone */
		return SSC_ECARDREMOVED;
	case SCARD_E_NO_SMARTCARD:
		return SSC_ENOCARD;
	case SCARD_E_UNKNOWN_READER:
	case SCARD_E_READER_UNAVAILABLE:
		return SSC_ENOREADER;
	case SCARD_E_SHARING_VIOLATION:
		return SSC_EREADERBUSY;
	case SCARD_E_TIMEOUT:
		return SSC_ETIMEDOUT;
	case SCARD_E_NO_MEMORY:
		return SSC_ENOMEM;
	case SCARD_W_UNRESPONSIVE_CARD:
	case SCARD_W_UNPOWERED_CARD:
	case SCARD_W_UNSUPPORTED_CARD:
	case SCARD_E_PROTO_MISMATCH:
	case SCARD_E_INVALID_ATR:
	case SCARD_E_INSUFFICIENT_BUFFER:
		return SSC_EPROTO;
	default:
		return SSC_EREADER;
	}
}

/*
 * The reader id: "pcsc-" and the reader name in lower case, each run of characters outside
 * [a-z0-9] turned into one '-', none at either end. A name too long for the id keeps its start
 * and gets an FNV-1a hash of the whole name, so that two long names still differ.
 */
void pcsc_reader_id(const char *name, char *out, size_t cap)
{
	static const char prefix[] = "pcsc-";
	size_t n = sizeof(prefix) - 1, start = n;
	int dash = 0, truncated = 0;
	uint32_t h = 2166136261u;

	memcpy(out, prefix, n);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		unsigned char c = *p;

		h = (h ^ c) * 16777619u;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
			dash = n > start;
			continue;
		}
		if (n + (size_t)dash + 1 >= cap) {
			truncated = 1;
			continue;
		}
		if (dash)
			out[n++] = '-';
		dash = 0;
		out[n++] = (char)c;
	}
	if (truncated || n == start) {
		const uint8_t hb[4] = { (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8),
					(uint8_t)h };

		if (n > cap - 10)
			n = cap - 10;
		while (n > start && out[n - 1] == '-')
			n--;
		if (n > start)
			out[n++] = '-';
		n += (size_t)hex_encode(hb, sizeof(hb), out + n, cap - n, HEX_LOWER);
	}
	out[n] = '\0';
}

int pcsc_open(const struct ssc_driver_config *cfg, struct ssc_driver **out)
{
	struct ssc_driver *drv;

	drv = calloc(1, sizeof(*drv));
	if (!drv)
		return SSC_ENOMEM;
	drv->connect_retry_ms = cfg && cfg->connect_retry_ms > 0 ? cfg->connect_retry_ms : 2000;
	drv->backoff_ms = PCSC_BACKOFF_MIN_MS;
	if (pthread_mutex_init(&drv->lock, NULL) != 0) {
		free(drv);
		return SSC_ENOMEM;
	}
	if (pthread_cond_init(&drv->cond, NULL) != 0) {
		pthread_mutex_destroy(&drv->lock);
		free(drv);
		return SSC_ENOMEM;
	}
	/* The monitor context is established by the monitor thread, on its first list(). */
	*out = drv;
	return 0;
}

/* Releases the monitor context (monitor thread, or close()). */
static void pcsc_mon_drop(struct ssc_driver *drv)
{
	pthread_mutex_lock(&drv->lock);
	if (drv->ctx_valid) {
		(void)SCardReleaseContext(drv->ctx);
		drv->ctx_valid = 0;
	}
	pthread_mutex_unlock(&drv->lock);
	drv->known_valid = 0;
}

/* Makes sure the monitor context exists. Returns 0 or SSC_EREADER (pcscd unreachable). */
static int pcsc_mon_ensure(struct ssc_driver *drv)
{
	SCARDCONTEXT ctx;
	LONG rv;

	if (drv->ctx_valid)
		return 0;
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
	if (rv != SCARD_S_SUCCESS) {
		if (!drv->down_logged)
			log_warn("pcsc: cannot reach pcscd: %s (0x%08lX); retrying",
				 pcsc_stringify_error(rv), (unsigned long)rv);
		drv->down_logged = 1;
		return SSC_EREADER;
	}
	if (drv->down_logged)
		log_info("pcsc: connected to pcscd again");
	drv->down_logged = 0;
	drv->backoff_ms = PCSC_BACKOFF_MIN_MS;
	pthread_mutex_lock(&drv->lock);
	drv->ctx = ctx;
	drv->ctx_valid = 1;
	pthread_mutex_unlock(&drv->lock);
	drv->known_valid = 0;
	return 0;
}

void pcsc_close(struct ssc_driver *drv)
{
	if (!drv)
		return;
	pcsc_mon_drop(drv);
	pthread_cond_destroy(&drv->cond);
	pthread_mutex_destroy(&drv->lock);
	free(drv);
}

/*
 * Lists the reader names of ctx into a multi-string that pcsc-lite allocated (*names, free it with
 * SCardFreeMemory). Returns the pcsc-lite result; SCARD_E_NO_READERS_AVAILABLE is success with
 * *names NULL.
 */
LONG pcsc_list_names(SCARDCONTEXT ctx, char **names, DWORD *len)
{
	LONG rv;

	*names = NULL;
	*len = SCARD_AUTOALLOCATE;
	rv = SCardListReaders(ctx, NULL, (LPSTR)names, len);
	if (rv == SCARD_E_NO_READERS_AVAILABLE) {
		*names = NULL;
		*len = 0;
		return SCARD_S_SUCCESS;
	}
	if (rv != SCARD_S_SUCCESS)
		*names = NULL;
	return rv;
}

/* Copies a reader serial, keeping printable ASCII only (it ends up in JSON and logs). */
static void pcsc_copy_serial(char *out, size_t cap, const unsigned char *in, DWORD len)
{
	size_t n = 0;

	for (DWORD i = 0; i < len && n + 1 < cap; i++) {
		if (in[i] == '\0')
			break;
		if (in[i] >= 0x20 && in[i] < 0x7F)
			out[n++] = (char)in[i];
	}
	out[n] = '\0';
}

/*
 * Reads the reader serial (SCARD_ATTR_VENDOR_IFD_SERIAL_NO) through a direct (card-less)
 * connection. A reader held exclusively refuses; we try again on a later list().
 */
static void pcsc_read_serial(struct ssc_driver *drv, struct pcsc_known *k)
{
	SCARDHANDLE h;
	DWORD proto = 0, len;
	unsigned char buf[SSC_READER_SERIAL_MAX * 2];
	LONG rv;

	k->serial_tries++;
	rv = SCardConnect(drv->ctx, k->name, SCARD_SHARE_DIRECT, 0, &h, &proto);
	if (rv != SCARD_S_SUCCESS) {
		if (rv != SCARD_E_SHARING_VIOLATION)
			k->serial_tries = PCSC_SERIAL_TRIES;
		return;
	}
	len = sizeof(buf);
	rv = SCardGetAttrib(h, SCARD_ATTR_VENDOR_IFD_SERIAL_NO, buf, &len);
	if (rv == SCARD_S_SUCCESS && len <= sizeof(buf))
		pcsc_copy_serial(k->serial, sizeof(k->serial), buf, len);
	(void)SCardDisconnect(h, SCARD_LEAVE_CARD);
	k->serial_tries = PCSC_SERIAL_TRIES;
}

static struct pcsc_known *pcsc_known_find(struct ssc_driver *drv, const char *name)
{
	for (size_t i = 0; i < drv->n_known; i++)
		if (strcmp(drv->known[i].name, name) == 0)
			return &drv->known[i];
	return NULL;
}

/*
 * A snapshot's call what failed with rv: pcscd is gone (the monitor's context is dropped;
 * SSC_EREADER), or the snapshot is tried again (1 << 30). Logged either way.
 */
static int pcsc_list_failed(struct ssc_driver *drv, LONG rv, const char *what)
{
	if (pcsc_rv_dead(rv)) {
		log_warn("pcsc: lost pcscd: %s", pcsc_stringify_error(rv));
		pcsc_mon_drop(drv);
		return SSC_EREADER;
	}
	log_warn("pcsc: %s: %s", what, pcsc_stringify_error(rv));
	return 1 << 30;
}

/* One attempt at a snapshot. Returns the count, SSC_EREADER (context dead) or 1 << 30 (retry). */
static int pcsc_list_once(struct ssc_driver *drv, struct ssc_reader_desc *out, size_t max)
{
	SCARD_READERSTATE st[PCSC_MAX_READERS];
	struct pcsc_known next[PCSC_MAX_READERS];
	char *names = NULL;
	DWORD len = 0;
	size_t n = 0;
	LONG rv;

	pcsc_gate_enter(0);
	rv = pcsc_list_names(drv->ctx, &names, &len);
	pcsc_gate_leave();
	if (rv != SCARD_S_SUCCESS)
		return pcsc_list_failed(drv, rv, "SCardListReaders");
	memset(st, 0, sizeof(st));
	for (const char *p = names; p && len > 0 && *p && n < PCSC_MAX_READERS && n < max;
	     p += strlen(p) + 1) {
		if (strlen(p) >= SSC_READER_NAME_MAX) {
			log_warn("pcsc: reader name too long, ignored (%.40s...)", p);
			continue;
		}
		memset(&next[n], 0, sizeof(next[n]));
		memcpy(next[n].name, p, strlen(p) + 1);
		st[n].szReader = next[n].name;
		st[n].dwCurrentState = SCARD_STATE_UNAWARE;
		n++;
	}
	if (names)
		(void)SCardFreeMemory(drv->ctx, names);
	if (n > 0) {
		pcsc_gate_enter(0);
		rv = SCardGetStatusChange(drv->ctx, 0, st, (DWORD)n);
		pcsc_gate_leave();
		if (rv == SCARD_E_UNKNOWN_READER || rv == SCARD_E_TIMEOUT)
			return 1 << 30;   /* a reader left between the two calls */
		if (rv != SCARD_S_SUCCESS)
			return pcsc_list_failed(drv, rv, "SCardGetStatusChange");
	}
	for (size_t i = 0; i < n; i++) {
		struct ssc_reader_desc *d = &out[i];
		struct pcsc_known *old = pcsc_known_find(drv, next[i].name);
		DWORD ev = st[i].dwEventState;

		if (old) {
			memcpy(next[i].serial, old->serial, sizeof(next[i].serial));
			next[i].serial_tries = old->serial_tries;
		}
		if (next[i].serial_tries < PCSC_SERIAL_TRIES)
			pcsc_read_serial(drv, &next[i]);
		next[i].state = ev & ~(DWORD)SCARD_STATE_CHANGED;

		memset(d, 0, sizeof(*d));
		pcsc_reader_id(next[i].name, d->id, sizeof(d->id));
		memcpy(d->name, next[i].name, sizeof(d->name));
		memcpy(d->serial, next[i].serial, sizeof(d->serial));
		d->card_present = (ev & SCARD_STATE_PRESENT) ? 1 : 0;
		if (d->card_present && st[i].cbAtr > 0 && st[i].cbAtr <= SSC_ATR_MAX) {
			memcpy(d->atr, st[i].rgbAtr, st[i].cbAtr);
			d->atr_len = st[i].cbAtr;
		}
	}
	memcpy(drv->known, next, n * sizeof(next[0]));
	drv->n_known = n;
	drv->known_valid = 1;
	return (int)n;
}

int pcsc_list(struct ssc_driver *drv, struct ssc_reader_desc *out, size_t max)
{
	int r = 1 << 30;

	if (pcsc_mon_ensure(drv) != 0)
		return SSC_EREADER;
	for (int attempt = 0; attempt < 3 && r == 1 << 30; attempt++)
		r = pcsc_list_once(drv, out, max);
	if (r == 1 << 30) {
		/* The subsystem answers but not consistently: report it as unreachable for now. */
		pcsc_mon_drop(drv);
		return SSC_EREADER;
	}
	return r;
}

/* Sleeps up to ms, or until wake(). Returns 1 when woken. */
static int pcsc_nap(struct ssc_driver *drv, int ms)
{
	struct timespec ts;
	int woken;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&drv->lock);
	while (!drv->woken) {
		if (pthread_cond_timedwait(&drv->cond, &drv->lock, &ts) == ETIMEDOUT)
			break;
	}
	woken = drv->woken;
	drv->woken = 0;
	pthread_mutex_unlock(&drv->lock);
	return woken;
}

/* Whether the reader names pcscd reports now differ from the last snapshot. */
static int pcsc_names_changed(struct ssc_driver *drv, LONG *rv)
{
	char *names = NULL;
	DWORD len = 0;
	size_t n = 0;
	int changed = 0;

	pcsc_gate_enter(0);
	*rv = pcsc_list_names(drv->ctx, &names, &len);
	pcsc_gate_leave();
	if (*rv != SCARD_S_SUCCESS)
		return 0;
	for (const char *p = names; p && len > 0 && *p; p += strlen(p) + 1) {
		if (strlen(p) >= SSC_READER_NAME_MAX)
			continue;
		if (!pcsc_known_find(drv, p))
			changed = 1;
		n++;
	}
	if (names)
		(void)SCardFreeMemory(drv->ctx, names);
	return changed || n != drv->n_known;
}

int pcsc_wait_change(struct ssc_driver *drv, int timeout_ms)
{
	SCARD_READERSTATE st[PCSC_MAX_READERS + 1];
	int64_t deadline = pcsc_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	size_t n;
	LONG rv;

	pthread_mutex_lock(&drv->lock);
	if (drv->woken) {
		drv->woken = 0;
		pthread_mutex_unlock(&drv->lock);
		return 0;
	}
	pthread_mutex_unlock(&drv->lock);

	if (!drv->ctx_valid) {
		/* pcscd is away: try again after a growing pause, never in a tight loop. */
		if (pcsc_mon_ensure(drv) == 0)
			return 1;
		int ms = drv->backoff_ms;

		if (ms > timeout_ms)
			ms = timeout_ms > 0 ? timeout_ms : 0;
		drv->backoff_ms = drv->backoff_ms * 2 > PCSC_BACKOFF_MAX_MS ? PCSC_BACKOFF_MAX_MS
									     : drv->backoff_ms * 2;
		if (ms > 0 && pcsc_nap(drv, ms))
			return 0;
		return pcsc_mon_ensure(drv) == 0 ? 1 : SSC_EREADER;
	}
	if (!drv->known_valid)
		return 1;

	/* The PnP pseudo reader only sees readers that come or go during the call: check now. */
	if (pcsc_names_changed(drv, &rv))
		return 1;
	if (rv != SCARD_S_SUCCESS) {
		if (pcsc_rv_dead(rv)) {
			log_warn("pcsc: lost pcscd: %s", pcsc_stringify_error(rv));
			pcsc_mon_drop(drv);
			return SSC_EREADER;
		}
		return 1;
	}

	memset(st, 0, sizeof(st));
	for (n = 0; n < drv->n_known; n++) {
		st[n].szReader = drv->known[n].name;
		st[n].dwCurrentState = drv->known[n].state;
	}
	st[n].szReader = PCSC_PNP_NAME;
	st[n].dwCurrentState = SCARD_STATE_UNAWARE;
	n++;

	for (;;) {
		int64_t left = deadline - pcsc_now_ms();
		int woken;

		if (left <= 0)
			return 0;
		if (left > PCSC_WAIT_CHUNK_MS)
			left = PCSC_WAIT_CHUNK_MS;
		pthread_mutex_lock(&drv->lock);
		if (drv->woken) {
			drv->woken = 0;
			pthread_mutex_unlock(&drv->lock);
			return 0;
		}
		drv->in_wait = 1;
		pthread_mutex_unlock(&drv->lock);

		/* The PnP entry asks for the reader count (pcsc-lite compares it within the call). */
		st[n - 1].dwCurrentState = SCARD_STATE_UNAWARE;
		pcsc_gate_enter(drv->ctx);
		pthread_mutex_lock(&drv->lock);
		woken = drv->woken;   /* wake() while we waited for the gate: do not block now */
		pthread_mutex_unlock(&drv->lock);
		rv = woken ? SCARD_E_CANCELLED
			   : SCardGetStatusChange(drv->ctx, (DWORD)left, st, (DWORD)n);
		pcsc_gate_leave();

		pthread_mutex_lock(&drv->lock);
		drv->in_wait = 0;
		woken = drv->woken;
		drv->woken = 0;
		pthread_mutex_unlock(&drv->lock);

		switch (rv) {
		case SCARD_S_SUCCESS:
			for (size_t i = 0; i + 1 < n; i++)
				if (st[i].dwEventState & SCARD_STATE_CHANGED)
					return 1;
			if (st[n - 1].dwEventState & SCARD_STATE_CHANGED)
				return 1;
			if (woken)
				return 0;
			continue;
		case SCARD_E_TIMEOUT:
			if (woken)
				return 0;
			continue;
		case SCARD_E_CANCELLED:
			if (woken)
				return 0;
			continue;   /* another thread needed the gate: wait again once it is through */
		case SCARD_E_UNKNOWN_READER:
			return 1;
		default:
			if (pcsc_rv_dead(rv)) {
				log_warn("pcsc: lost pcscd: %s", pcsc_stringify_error(rv));
				pcsc_mon_drop(drv);
				return SSC_EREADER;
			}
			log_warn("pcsc: SCardGetStatusChange: %s", pcsc_stringify_error(rv));
			/* Unknown trouble: do not spin on it; let list() look again after a pause. */
			(void)pcsc_nap(drv, PCSC_WAIT_CHUNK_MS);
			return 1;
		}
	}
}

void pcsc_wake(struct ssc_driver *drv)
{
	SCARDCONTEXT ctx = 0;
	int cancel;

	pthread_mutex_lock(&drv->lock);
	drv->woken = 1;
	pthread_cond_broadcast(&drv->cond);
	cancel = drv->in_wait && drv->ctx_valid;
	if (cancel)
		ctx = drv->ctx;
	pthread_mutex_unlock(&drv->lock);
	/*
	 * SCardCancel on a context another thread waits on is what pcsc-lite provides it for; it
	 * talks to pcscd over a fresh socket. Should the context be released meanwhile, pcsc-lite
	 * answers SCARD_E_INVALID_HANDLE; a missed cancel costs at most PCSC_WAIT_CHUNK_MS.
	 */
	if (cancel)
		(void)SCardCancel(ctx);
}

int pcsc_connect_retry_ms(const struct ssc_driver *drv)
{
	return drv->connect_retry_ms;
}
