/*
 * This file contains the Prometheus metrics (src/metrics.h): process-wide counters (atomics, and
 * a mutex for the operation table), their text exposition (format 0.0.4), and the /metrics
 * endpoint: libmicrohttpd (loaded at start: src/metrics_mhd.h) without a thread of its own, its
 * epoll descriptor watched by the event loop, so that a scrape reads the gauges on the loop
 * thread like any other loop callback.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SSC_HAVE_MHD
#include "metrics_mhd.h"
#endif

#include "log.h"
#include "metrics.h"
#include "rpc.h"
#include "sscard/error.h"

/* ---- the counters ----------------------------------------------------------------------- */

#define METHODS_MAX 48
#define RESULTS_MAX 96             /* distinct result names; more are counted as "other" */
#define RESULT_LEN 40

/* Upper bounds of the latency buckets, in ms (the exposition shows seconds). */
static const int64_t bucket_ms[] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
				     30000 };
#define N_BUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

static const char *const driver_names[] = { "pcsc", "usb-ccid", "other" };
#define N_DRIVERS (sizeof(driver_names) / sizeof(driver_names[0]))
static const char *const kind_names[] = { "audit", "intent", "outcome", "prune", "blacklist",
					  "key", "other" };
#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))
static const char *const refusal_names[CONN_REFUSED_KINDS] = {
	[CONN_REFUSED_SHUTDOWN] = "shutdown",
	[CONN_REFUSED_TOTAL] = "max_clients",
	[CONN_REFUSED_UID] = "max_clients_per_uid",
	[CONN_REFUSED_FDS] = "file_descriptors",
	[CONN_REFUSED_OTHER] = "other",
};
#define KEYPROV_MAX 4

struct method_stat {
	uint64_t count[RESULTS_MAX + 1];    /* by result index; [RESULTS_MAX] = "other" */
	uint64_t bucket[N_BUCKETS];         /* cumulative at exposition, plain here */
	uint64_t total;
	int64_t sum_ms;
};

static struct {
	pthread_mutex_t lock;               /* methods, results, stats */
	const char *methods[METHODS_MAX];   /* static strings; the last used is "other" */
	size_t n_methods;
	char results[RESULTS_MAX][RESULT_LEN];
	size_t n_results;
	struct method_stat stats[METHODS_MAX];
	const char *keyprov_names[KEYPROV_MAX];
	size_t n_keyprov;

	atomic_uint_fast64_t apdus[N_DRIVERS];
	atomic_uint_fast64_t journal_rows[N_KINDS];
	atomic_uint_fast64_t journal_failures;
	atomic_uint_fast64_t refusals[CONN_REFUSED_KINDS];
	atomic_uint_fast64_t keyprov_failures[KEYPROV_MAX];
} M = { .lock = PTHREAD_MUTEX_INITIALIZER };

/*
 * Fills the method list once (lock held): the methods system.info lists (rpc.h); anything else a
 * client sends is counted as "other".
 */
static void methods_init_locked(void)
{
	const char *name;

	if (M.n_methods)
		return;
	for (size_t i = 0; M.n_methods < METHODS_MAX - 1 && (name = rpc_method_name(i)); i++)
		M.methods[M.n_methods++] = name;
	M.methods[M.n_methods++] = "other";
}

static size_t method_index_locked(const char *method)
{
	methods_init_locked();
	for (size_t i = 0; method && i + 1 < M.n_methods; i++)
		if (strcmp(M.methods[i], method) == 0)
			return i;
	return M.n_methods - 1;
}

/* A result name as a label may carry it: an SSC_/RPC_ name of capitals, digits and '_'. */
static int result_ok(const char *r)
{
	size_t n = r ? strlen(r) : 0;

	return n > 0 && n < RESULT_LEN &&
	       strspn(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

static size_t result_index_locked(const char *result)
{
	if (!result_ok(result))
		return RESULTS_MAX;
	for (size_t i = 0; i < M.n_results; i++)
		if (strcmp(M.results[i], result) == 0)
			return i;
	if (M.n_results == RESULTS_MAX)
		return RESULTS_MAX;
	memcpy(M.results[M.n_results], result, strlen(result) + 1);
	return M.n_results++;
}

void metrics_operation(const char *method, const char *result, int64_t duration_ms)
{
	struct method_stat *st;

	if (duration_ms < 0)
		duration_ms = 0;
	pthread_mutex_lock(&M.lock);
	st = &M.stats[method_index_locked(method)];
	st->count[result_index_locked(result)]++;
	st->total++;
	st->sum_ms += duration_ms;
	for (size_t b = 0; b < N_BUCKETS; b++)
		if (duration_ms <= bucket_ms[b]) {
			st->bucket[b]++;
			break;
		}
	pthread_mutex_unlock(&M.lock);
}

static size_t name_index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; name && i + 1 < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return n - 1;
}

void metrics_apdu(const char *driver)
{
	atomic_fetch_add(&M.apdus[name_index(driver_names, N_DRIVERS, driver)], 1);
}

void metrics_journal_row(const char *kind)
{
	atomic_fetch_add(&M.journal_rows[name_index(kind_names, N_KINDS, kind)], 1);
}

void metrics_journal_failure(void)
{
	atomic_fetch_add(&M.journal_failures, 1);
}

void metrics_refusal(enum conn_refusal why)
{
	if (why >= 0 && why < CONN_REFUSED_KINDS)
		atomic_fetch_add(&M.refusals[why], 1);
}

/* ---- the key-provider wrapper ----------------------------------------------------------- */

struct kp_wrap {
	struct keyprov kp;          /* first: the ops get &kp */
	struct keyprov_ops ops;     /* kp_wrap_ops under the inner provider's name */
	struct keyprov *inner;
	size_t idx;                 /* in M.keyprov_names */
};

/* Counts a failure: not the provider's "nothing for this" answers, which are not failures. */
static int kp_count(struct keyprov *kp, int rc)
{
	struct kp_wrap *w = kp->ctx;

	if (rc < 0 && rc != SSC_ENOPSAM && rc != SSC_EPSAMALGO)
		atomic_fetch_add(&M.keyprov_failures[w->idx], 1);
	return rc;
}

static int kp_available(struct keyprov *kp, enum ssc_alg alg)
{
	struct keyprov *in = ((struct kp_wrap *)kp->ctx)->inner;

	return in->ops->available(in, alg);
}

static int kp_cryptogram(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			 const struct keyprov_div *div, const uint8_t r[8], const uint8_t x[8],
			 uint8_t c[8], int64_t deadline_ms, struct ssc_diag *diag)
{
	struct keyprov *in = ((struct kp_wrap *)kp->ctx)->inner;

	return kp_count(kp, in->ops->cryptogram(in, alg, key, div, r, x, c, deadline_ms, diag));
}

static int kp_mac(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
		  const struct keyprov_div *div, const uint8_t *iv, const uint8_t *data, size_t len,
		  uint8_t mac[4], int64_t deadline_ms, struct ssc_diag *diag)
{
	struct keyprov *in = ((struct kp_wrap *)kp->ctx)->inner;

	return kp_count(kp, in->ops->mac(in, alg, key, div, iv, data, len, mac, deadline_ms, diag));
}

static int kp_encrypt(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
		      const struct keyprov_div *div, const uint8_t *in_data, size_t len,
		      uint8_t *out, int64_t deadline_ms, struct ssc_diag *diag)
{
	struct keyprov *in = ((struct kp_wrap *)kp->ctx)->inner;

	return kp_count(kp, in->ops->encrypt(in, alg, key, div, in_data, len, out, deadline_ms,
					     diag));
}

static int kp_terminal_number(struct keyprov *kp, enum ssc_alg alg, char out[13],
			      int64_t deadline_ms, struct ssc_diag *diag)
{
	struct keyprov *in = ((struct kp_wrap *)kp->ctx)->inner;

	return kp_count(kp, in->ops->terminal_number(in, alg, out, deadline_ms, diag));
}

static void kp_free(struct keyprov *kp)
{
	free(kp->ctx);
}

static const struct keyprov_ops kp_wrap_ops = {
	.name = "metrics",
	.available = kp_available,
	.cryptogram = kp_cryptogram,
	.mac = kp_mac,
	.encrypt = kp_encrypt,
	.terminal_number = kp_terminal_number,
	.free = kp_free,
};

struct keyprov *metrics_keyprov_wrap(struct keyprov *inner)
{
	struct kp_wrap *w;
	size_t idx;

	if (!inner)
		return NULL;
	pthread_mutex_lock(&M.lock);
	for (idx = 0; idx < M.n_keyprov; idx++)
		if (strcmp(M.keyprov_names[idx], inner->ops->name) == 0)
			break;
	if (idx == M.n_keyprov && M.n_keyprov < KEYPROV_MAX)
		M.keyprov_names[M.n_keyprov++] = inner->ops->name;
	pthread_mutex_unlock(&M.lock);
	w = calloc(1, sizeof(*w));
	if (!w || idx >= KEYPROV_MAX) {
		free(w);
		return inner;
	}
	/* The wrapper goes by the provider's name, so that what names it (a log line) still can. */
	w->ops = kp_wrap_ops;
	w->ops.name = inner->ops->name;
	w->kp.ops = &w->ops;
	w->kp.ctx = w;
	w->inner = inner;
	w->idx = idx;
	return &w->kp;
}

/* ---- the exposition --------------------------------------------------------------------- */

/* A label value, escaped as the text format wants (\\, \", \n). */
static void put_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *role_name(enum reader_role r)
{
	return r == READER_ROLE_USER ? "user" : r == READER_ROLE_PSAM ? "psam" : "unknown";
}

static void text_operations(FILE *f)
{
	head(f, "sscard_operations_total", "counter",
	     "API calls that ended, by method and result (SSC_OK or the error name).");
	for (size_t m = 0; m < M.n_methods; m++)
		for (size_t r = 0; r <= RESULTS_MAX; r++) {
			if (!M.stats[m].count[r])
				continue;
			fprintf(f, "sscard_operations_total{method=\"%s\",result=\"%s\"} %llu\n",
				M.methods[m], r < RESULTS_MAX ? M.results[r] : "other",
				(unsigned long long)M.stats[m].count[r]);
		}
	head(f, "sscard_operation_duration_seconds", "histogram",
	     "How long API calls took, from the request read to the reply queued, by method.");
	for (size_t m = 0; m < M.n_methods; m++) {
		const struct method_stat *st = &M.stats[m];
		uint64_t cum = 0;

		if (!st->total)
			continue;
		for (size_t b = 0; b < N_BUCKETS; b++) {
			cum += st->bucket[b];
			fprintf(f, "sscard_operation_duration_seconds_bucket{method=\"%s\",le=\"%g\"} "
				"%llu\n", M.methods[m], (double)bucket_ms[b] / 1000.0,
				(unsigned long long)cum);
		}
		fprintf(f, "sscard_operation_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n",
			M.methods[m], (unsigned long long)st->total);
		fprintf(f, "sscard_operation_duration_seconds_sum{method=\"%s\"} %.3f\n",
			M.methods[m], (double)st->sum_ms / 1000.0);
		fprintf(f, "sscard_operation_duration_seconds_count{method=\"%s\"} %llu\n",
			M.methods[m], (unsigned long long)st->total);
	}
}

static void text_readers(FILE *f, const struct metrics_gauges *g)
{
	static const char *const drivers[] = { "pcsc", "usb-ccid" };
	static const enum reader_role roles[] = { READER_ROLE_USER, READER_ROLE_PSAM,
						  READER_ROLE_UNKNOWN };

	head(f, "sscard_readers_present", "gauge", "Readers the daemon sees now, by driver.");
	for (size_t d = 0; d < 2; d++) {
		size_t n = 0;

		for (size_t i = 0; i < g->n_readers; i++)
			n += strcmp(g->readers[i].driver, drivers[d]) == 0;
		fprintf(f, "sscard_readers_present{driver=\"%s\"} %zu\n", drivers[d], n);
	}
	head(f, "sscard_cards_present", "gauge",
	     "Cards in the readers now, by role (user card, PSAM, not yet known).");
	for (size_t r = 0; r < 3; r++) {
		size_t n = 0;

		for (size_t i = 0; i < g->n_readers; i++)
			n += g->readers[i].card_present && g->readers[i].role == roles[r];
		fprintf(f, "sscard_cards_present{role=\"%s\"} %zu\n", role_name(roles[r]), n);
	}
	head(f, "sscard_reader_queue_depth", "gauge",
	     "Operations waiting for a reader (not counting the one running), by reader id.");
	for (size_t i = 0; i < g->n_readers; i++) {
		fputs("sscard_reader_queue_depth{reader=\"", f);
		put_label(f, g->readers[i].id);
		fprintf(f, "\"} %d\n", g->readers[i].queued);
	}
}

char *metrics_text(const struct metrics_gauges *g)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	head(f, "sscard_build_info", "gauge", "The daemon's version and API level (always 1).");
	fprintf(f, "sscard_build_info{version=\"%s\",api_level=\"%d\"} 1\n", SSC_VERSION,
		RPC_API_LEVEL);
	pthread_mutex_lock(&M.lock);
	methods_init_locked();
	text_operations(f);
	head(f, "sscard_key_provider_failures_total", "counter",
	     "Key-provider calls (PSAM, network PSAM) that failed, by provider.");
	for (size_t i = 0; i < M.n_keyprov; i++)
		fprintf(f, "sscard_key_provider_failures_total{provider=\"%s\"} %llu\n",
			M.keyprov_names[i], (unsigned long long)atomic_load(&M.keyprov_failures[i]));
	pthread_mutex_unlock(&M.lock);

	head(f, "sscard_apdus_total", "counter", "APDUs sent to cards and PSAMs, by driver.");
	for (size_t i = 0; i < N_DRIVERS; i++)
		fprintf(f, "sscard_apdus_total{driver=\"%s\"} %llu\n", driver_names[i],
			(unsigned long long)atomic_load(&M.apdus[i]));
	text_readers(f, g);
	head(f, "sscard_journal_up", "gauge", "1 when the journal works, 0 while it is down "
	     "(card writes are refused then).");
	fprintf(f, "sscard_journal_up %d\n", g->journal_up ? 1 : 0);
	head(f, "sscard_journal_rows_total", "counter", "Rows appended to the journal, by kind.");
	for (size_t i = 0; i < N_KINDS; i++)
		fprintf(f, "sscard_journal_rows_total{kind=\"%s\"} %llu\n", kind_names[i],
			(unsigned long long)atomic_load(&M.journal_rows[i]));
	head(f, "sscard_journal_append_failures_total", "counter",
	     "Journal appends that failed (the journal is taken out of service).");
	fprintf(f, "sscard_journal_append_failures_total %llu\n",
		(unsigned long long)atomic_load(&M.journal_failures));
	head(f, "sscard_audit_rows_dropped_total", "counter",
	     "Audit rows that could not be written (journal down, queue full).");
	fprintf(f, "sscard_audit_rows_dropped_total %llu\n", (unsigned long long)g->audit_dropped);
	if (g->syslog_on) {
		head(f, "sscard_audit_syslog_rows_total", "counter",
		     "Journal rows shipped to syslog ([audit] syslog), sent or dropped.");
		fprintf(f, "sscard_audit_syslog_rows_total{outcome=\"sent\"} %llu\n",
			(unsigned long long)g->syslog_sent);
		fprintf(f, "sscard_audit_syslog_rows_total{outcome=\"dropped\"} %llu\n",
			(unsigned long long)g->syslog_dropped);
	}
	head(f, "sscard_clients_connected", "gauge", "API clients connected now.");
	fprintf(f, "sscard_clients_connected %d\n", g->clients);
	head(f, "sscard_connections_refused_total", "counter",
	     "API connections refused, by the limit that refused them.");
	for (size_t i = 0; i < CONN_REFUSED_KINDS; i++)
		fprintf(f, "sscard_connections_refused_total{limit=\"%s\"} %llu\n", refusal_names[i],
			(unsigned long long)atomic_load(&M.refusals[i]));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- the endpoint ----------------------------------------------------------------------- */

#ifdef SSC_HAVE_MHD
struct metrics {
	const struct metrics_mhd *lib;      /* libmicrohttpd's functions */
	struct MHD_Daemon *mhd;
	uv_poll_t poll;
	uv_timer_t timer;
	int open_handles;
	metrics_gauges_fn gauges;
	void *arg;
};

static const char content_type[] = "text/plain; version=0.0.4; charset=utf-8";

static enum MHD_Result answer(const struct metrics_mhd *lib, struct MHD_Connection *conn,
			      unsigned status, const char *text)
{
	struct MHD_Response *r = lib->create_response_from_buffer(strlen(text), (void *)text,
								  MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	lib->add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	ret = lib->queue_response(conn, status, r);
	lib->destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct metrics *m = cls;
	const struct metrics_mhd *lib = m->lib;
	struct metrics_gauges g;
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return answer(lib, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics only\n");
	if (*upload_data_size != 0)
		return MHD_NO;
	if (strcmp(url, "/metrics") != 0)
		return answer(lib, conn, MHD_HTTP_NOT_FOUND,
			      "not found: the metrics are at /metrics\n");
	memset(&g, 0, sizeof(g));
	m->gauges(m->arg, &g);
	text = metrics_text(&g);
	free(g.readers);
	if (!text)
		return answer(lib, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	r = lib->create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	lib->add_response_header(r, "Content-Type", content_type);
	ret = lib->queue_response(conn, MHD_HTTP_OK, r);
	lib->destroy_response(r);
	return ret;
}

static void metrics_schedule(struct metrics *m);

/* libmicrohttpd's work, on the loop thread: never blocks (its sockets are non-blocking). */
static void metrics_run(struct metrics *m)
{
	m->lib->run(m->mhd);
	metrics_schedule(m);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	metrics_run(p->data);
}

static void on_timer(uv_timer_t *t)
{
	metrics_run(t->data);
}

/* Its next timeout (an idle connection to close) as a loop timer. */
static void metrics_schedule(struct metrics *m)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (m->lib->get_timeout(m->mhd, &ms) == MHD_YES)
		uv_timer_start(&m->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&m->timer);
}

/* libmicrohttpd's error logger: its messages are printf formats of its own. */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[256];

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("metrics: %s", buf);
}

/* libmicrohttpd's table, or NULL with the whole reason (what to do included) in err. */
static const struct metrics_mhd *metrics_lib(char *err, size_t errlen)
{
	const struct metrics_mhd *lib;
	char why[256] = "";

	lib = metrics_mhd_load(METRICS_MHD_SONAME, why, sizeof(why));
	if (!lib)
		snprintf(err, errlen, "[metrics] listen is set, but libmicrohttpd cannot be loaded "
			 "(SSC_EMETRICSLIB: %s): install the package libmicrohttpd12 (apt-get "
			 "install libmicrohttpd12), or remove [metrics] listen", why);
	return lib;
}

int metrics_load(char *err, size_t errlen)
{
	return metrics_lib(err, errlen) ? 0 : SSC_EMETRICSLIB;
}

int metrics_start(uv_loop_t *loop, const struct config *cfg, metrics_gauges_fn gauges, void *arg,
		  struct metrics **out)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const union MHD_DaemonInfo *info;
	const struct metrics_mhd *lib;
	struct metrics *m;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	char err[512];

	if (config_parse_listen(cfg->metrics_listen, &ss, &sl) != 0) {
		log_error("metrics: [metrics] listen = %s: expected ADDRESS:PORT", cfg->metrics_listen);
		return SSC_ECONFIG;
	}
	/* Loaded already by sscardd's main() (metrics_load()), which stops at start without it. */
	lib = metrics_lib(err, sizeof(err));
	if (!lib) {
		log_error("metrics: %s", err);
		return SSC_EMETRICSLIB;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m = calloc(1, sizeof(*m));
	if (!m)
		return SSC_ENOMEM;
	m->lib = lib;
	m->gauges = gauges;
	m->arg = arg;
	m->mhd = lib->start_daemon(flags, 0, NULL, NULL, on_request, m,
				   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned)8,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				   MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
				   MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				   MHD_OPTION_END);
	if (!m->mhd) {
		log_error("metrics: cannot listen on %s: %s", cfg->metrics_listen, strerror(errno));
		free(m);
		return SSC_EIO;
	}
	info = lib->get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || uv_poll_init(loop, &m->poll, info->epoll_fd) != 0) {
		log_error("metrics: cannot watch libmicrohttpd's descriptor");
		lib->stop_daemon(m->mhd);
		free(m);
		return SSC_EIO;
	}
	m->poll.data = m;
	uv_timer_init(loop, &m->timer);
	m->timer.data = m;
	m->open_handles = 2;
	uv_poll_start(&m->poll, UV_READABLE, on_poll);
	log_info("metrics: serving Prometheus metrics at http://%s/metrics", cfg->metrics_listen);
	*out = m;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct metrics *m = h->data;

	if (--m->open_handles == 0)
		free(m);
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	uv_poll_stop(&m->poll);
	uv_timer_stop(&m->timer);
	/* Closes the listening socket and every connection (no thread of its own to join). */
	m->lib->stop_daemon(m->mhd);
	m->mhd = NULL;
	uv_close((uv_handle_t *)&m->poll, on_closed);
	uv_close((uv_handle_t *)&m->timer, on_closed);
}
#else
struct metrics {
	int unused;
};

int metrics_load(char *err, size_t errlen)
{
	snprintf(err, errlen, "[metrics] listen is set, but this sscardd was built without "
		 "libmicrohttpd");
	return SSC_ECONFIG;
}

int metrics_start(uv_loop_t *loop, const struct config *cfg, metrics_gauges_fn gauges, void *arg,
		  struct metrics **out)
{
	(void)loop;
	(void)gauges;
	(void)arg;
	(void)out;
	log_error("metrics: [metrics] listen = %s, but this sscardd was built without "
		  "libmicrohttpd", cfg->metrics_listen);
	return SSC_ECONFIG;
}

void metrics_stop(struct metrics *m)
{
	(void)m;
}
#endif
