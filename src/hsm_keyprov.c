/*
 * This file contains the network PSAM key provider (spec §13.2): the PSAM commands of a key
 * operation go to the province's key server in one HTTPS request with mutual TLS, through libcurl
 * (loaded when this provider is created: src/hsm_curl.h), over connections kept alive in a pool
 * of curl handles. What the server answers is checked by src/hsm_wire.c; what each failure means
 * is decided here, once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cardio.h"
#include "hsm_curl.h"
#include "hsm_keyprov.h"
#include "hsm_wire.h"
#include "log.h"
#include "psam_cmd.h"

#define HSM_FILE_MAX (1024 * 1024)   /* a PEM file larger than this is not a certificate */
#define HSM_POOL_IDLE 8              /* idle curl handles kept (each may hold a connection) */
#define HSM_TERM_RETRY_MS 10000      /* a terminal number that failed is not asked again sooner */
#define HSM_NOPSAM_MS 60000          /* after 404 no_psam, the algorithm is not offered this long */
#define HSM_URL_MAX (CONFIG_PATH_MAX + 32)

/* One curl handle (and the connection it keeps alive), idle in the pool or used by one thread. */
struct hsm_conn {
	CURL *curl;
	struct hsm_conn *next;
};

/* A file read into memory; the key's is wiped. */
struct hsm_file {
	char *data;
	size_t len;
};

struct hsm_kp {
	struct keyprov kp;
	const struct config *cfg;
	const struct hsm_curl *cu;           /* libcurl, loaded for the provider (src/hsm_curl.h) */
	char url_exchange[HSM_URL_MAX];
	char url_terminal[2][HSM_URL_MAX];   /* [0] DES, [1] SM4 */
	struct hsm_file ca, cert, key;
	struct curl_slist *headers;

	pthread_mutex_t lock;                /* guards what follows */
	struct hsm_conn *idle;
	size_t n_idle;
	char term[2][13];
	int have_term[2];
	int term_err[2];                     /* the last failure, returned until term_retry_at */
	int64_t term_retry_at[2];
	int64_t nopsam_until[2];
};

/* The answer body as it arrives, refused past HSM_WIRE_BODY_MAX. */
struct hsm_body {
	char buf[HSM_WIRE_BODY_MAX + 1];
	size_t len;
	int overflow;
};

static int hsm_alg_slot(enum ssc_alg alg)
{
	return alg == SSC_ALG_SM4 ? 1 : 0;
}

/* ---- files and configuration ------------------------------------------------------------- */

static void hsm_file_wipe(struct hsm_file *f)
{
	if (f->data) {
		OPENSSL_cleanse(f->data, f->len);
		free(f->data);
	}
	f->data = NULL;
	f->len = 0;
}

/*
 * Reads a PEM file whole. private: the desk's key, which must give others no permission at all
 * (checked on the open file, so that what is checked is what is read).
 */
static int hsm_file_read(const char *what, const char *path, int private_key, struct hsm_file *f,
			 char *err, size_t errlen)
{
	struct stat st;
	size_t got = 0;
	int fd, rc = SSC_ECONFIG;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "[hsm] %s %s: %s", what, path, strerror(errno));
		return SSC_ECONFIG;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "[hsm] %s %s: not a regular file", what, path);
		goto out;
	}
	if (private_key && (st.st_mode & S_IRWXO)) {
		snprintf(err, errlen, "[hsm] %s %s: others may access it (mode %04o): whoever reads "
			 "it can act as this desk; chmod o= %s (0600 or 0640, owned by the daemon's "
			 "user)", what, path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > HSM_FILE_MAX) {
		snprintf(err, errlen, "[hsm] %s %s: %s", what, path,
			 st.st_size <= 0 ? "empty" : "larger than 1 MiB");
		goto out;
	}
	f->data = malloc((size_t)st.st_size + 1);
	if (!f->data) {
		rc = SSC_ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, f->data + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "[hsm] %s %s: %s", what, path,
				 r < 0 ? strerror(errno) : "shorter than its size");
			goto out;
		}
		got += (size_t)r;
	}
	f->data[got] = '\0';
	f->len = got;
	rc = 0;
out:
	close(fd);
	if (rc)
		hsm_file_wipe(f);
	return rc;
}

/* A key with a passphrase is refused: the daemon has nobody to ask for it. */
static int hsm_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* The CA parses; the certificate parses, and the key is unencrypted and the certificate's. */
static int hsm_check_pem(struct hsm_kp *p, char *err, size_t errlen)
{
	const struct config *cfg = p->cfg;
	BIO *b = NULL;
	X509 *ca = NULL, *cert = NULL;
	EVP_PKEY *key = NULL;
	char subject[160] = "";
	int rc = SSC_ECONFIG;

	b = BIO_new_mem_buf(p->ca.data, (int)p->ca.len);
	ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!ca) {
		snprintf(err, errlen, "[hsm] ca_file %s: no PEM certificate in it", cfg->hsm_ca_file);
		goto out;
	}
	b = BIO_new_mem_buf(p->cert.data, (int)p->cert.len);
	cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!cert) {
		snprintf(err, errlen, "[hsm] cert_file %s: no PEM certificate in it",
			 cfg->hsm_cert_file);
		goto out;
	}
	b = BIO_new_mem_buf(p->key.data, (int)p->key.len);
	key = b ? PEM_read_bio_PrivateKey(b, NULL, hsm_no_passphrase, NULL) : NULL;
	BIO_free(b);
	if (!key) {
		snprintf(err, errlen, "[hsm] key_file %s: no unencrypted PEM private key in it (a "
			 "key with a passphrase cannot be used by the daemon)", cfg->hsm_key_file);
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		snprintf(err, errlen, "[hsm] key_file %s is not the key of cert_file %s",
			 cfg->hsm_key_file, cfg->hsm_cert_file);
		goto out;
	}
	X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
	log_info("hsm: key server %s, this desk's certificate %s", cfg->hsm_url, subject);
	rc = 0;
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	X509_free(ca);
	return rc;
}

/* ---- the pool of curl handles ------------------------------------------------------------ */

static size_t hsm_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct hsm_body *b = arg;
	size_t n = size * nmemb;

	if (n > HSM_WIRE_BODY_MAX - b->len) {
		b->overflow = 1;
		return 0;   /* curl stops with CURLE_WRITE_ERROR */
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	return n;
}

/* The options that stay for the handle's life. */
static int hsm_conn_setup(struct hsm_kp *p, CURL *c)
{
	struct curl_blob ca = { p->ca.data, p->ca.len, CURL_BLOB_NOCOPY };
	struct curl_blob cert = { p->cert.data, p->cert.len, CURL_BLOB_NOCOPY };
	struct curl_blob key = { p->key.data, p->key.len, CURL_BLOB_NOCOPY };
	CURLcode e = CURLE_OK;

#define HSM_SET(opt, val) \
	do { if (e == CURLE_OK) e = p->cu->easy_setopt(c, opt, val); } while (0)
	/* Threads: no signals (timeouts use the poll loop, names the threaded resolver). */
	HSM_SET(CURLOPT_NOSIGNAL, 1L);
	HSM_SET(CURLOPT_PROTOCOLS_STR, "https");
	HSM_SET(CURLOPT_FOLLOWLOCATION, 0L);
	HSM_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	HSM_SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	HSM_SET(CURLOPT_SSL_VERIFYPEER, 1L);
	HSM_SET(CURLOPT_SSL_VERIFYHOST, 2L);
	HSM_SET(CURLOPT_CAINFO_BLOB, &ca);
	/* Only the configured CA: not the system's store, not a CA path from the environment. */
	HSM_SET(CURLOPT_CAINFO, (char *)NULL);
	HSM_SET(CURLOPT_CAPATH, (char *)NULL);
	HSM_SET(CURLOPT_SSLCERTTYPE, "PEM");
	HSM_SET(CURLOPT_SSLCERT_BLOB, &cert);
	HSM_SET(CURLOPT_SSLKEYTYPE, "PEM");
	HSM_SET(CURLOPT_SSLKEY_BLOB, &key);
	/* A daemon does not take a proxy from its environment: the key server is reached directly. */
	HSM_SET(CURLOPT_PROXY, "");
	HSM_SET(CURLOPT_TCP_KEEPALIVE, 1L);
	HSM_SET(CURLOPT_HTTPHEADER, p->headers);
	HSM_SET(CURLOPT_WRITEFUNCTION, hsm_on_body);
#undef HSM_SET
	return e == CURLE_OK ? 0 : SSC_EINTERNAL;
}

static struct hsm_conn *hsm_conn_get(struct hsm_kp *p)
{
	struct hsm_conn *c;

	pthread_mutex_lock(&p->lock);
	c = p->idle;
	if (c) {
		p->idle = c->next;
		p->n_idle--;
	}
	pthread_mutex_unlock(&p->lock);
	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->curl = p->cu->easy_init();
	if (!c->curl || hsm_conn_setup(p, c->curl) != 0) {
		p->cu->easy_cleanup(c->curl);
		free(c);
		return NULL;
	}
	return c;
}

/* Back to the pool (keeping its connection), or closed when the pool is full or it failed. */
static void hsm_conn_put(struct hsm_kp *p, struct hsm_conn *c, int keep)
{
	pthread_mutex_lock(&p->lock);
	if (keep && p->n_idle < HSM_POOL_IDLE) {
		c->next = p->idle;
		p->idle = c;
		p->n_idle++;
		c = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (c) {
		p->cu->easy_cleanup(c->curl);
		free(c);
	}
}

/* ---- one request -------------------------------------------------------------------------- */

/* The text curl gave for a failure, made printable. */
static void hsm_safe(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7E)
			*s = '?';
}

/* A TLS alert from the server about our certificate: the desk refused in the handshake. */
static int hsm_cert_alert(const char *msg)
{
	return strstr(msg, "alert") &&
	       (strstr(msg, "certificate") || strstr(msg, "unknown ca") ||
		strstr(msg, "access denied"));
}

/*
 * What a curl failure means (the transfer's own result, errbuf its detail; fresh: the request
 * opened a new connection).
 */
static int hsm_curl_error(const struct hsm_kp *p, CURLcode e, char *errbuf,
			  const struct hsm_body *b, int timeout_ms, int fresh, struct ssc_diag *diag)
{
	const char *m;

	if (!errbuf[0])
		snprintf(errbuf, CURL_ERROR_SIZE, "%s", p->cu->easy_strerror(e));
	hsm_safe(errbuf);
	m = errbuf;
	switch (e) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		return ssc_diag_set(diag, SSC_EHSMDOWN, "the key server cannot be reached (%s)", m);
	case CURLE_OPERATION_TIMEDOUT:
		return ssc_diag_set(diag, SSC_EHSMTIMEOUT, "the key server did not answer within "
				    "%d ms", timeout_ms);
	case CURLE_PEER_FAILED_VERIFICATION:
		return ssc_diag_set(diag, SSC_EHSMCERT, "the key server's certificate is not "
				    "trusted (%s): check [hsm] ca_file and url", m);
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return ssc_diag_set(diag, SSC_EHSMTLS, "this desk's certificate or CA cannot be "
				    "used (%s)", m);
	case CURLE_WRITE_ERROR:
		if (b->overflow)
			return ssc_diag_set(diag, SSC_EHSMPROTO, "the key server's answer is longer "
					    "than %d bytes", HSM_WIRE_BODY_MAX);
		break;
	case CURLE_SSL_CLIENTCERT:
		return ssc_diag_set(diag, SSC_EHSMDENIED, "the key server refused this desk's "
				    "certificate in the TLS handshake (%s)", m);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		if (hsm_cert_alert(m))
			return ssc_diag_set(diag, SSC_EHSMDENIED, "the key server refused this "
					    "desk's certificate in the TLS handshake (%s)", m);
		if (e == CURLE_SSL_CONNECT_ERROR)
			return ssc_diag_set(diag, SSC_EHSMTLS, "the TLS handshake with the key "
					    "server failed (%s)", m);
		if (fresh)
			return ssc_diag_set(diag, SSC_EHSMDROPPED, "the key server closed a new "
					    "connection right after the TLS handshake (%s): if this "
					    "keeps happening, it may refuse this desk's certificate", m);
		return ssc_diag_set(diag, SSC_EHSMDROPPED, "the connection to the key server "
				    "broke (%s)", m);
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return ssc_diag_set(diag, SSC_EHSMDROPPED, "the key server closed the connection "
				    "without an answer (%s)", m);
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_CONTENT_ENCODING:
		return ssc_diag_set(diag, SSC_EHSMPROTO, "the key server's answer is not HTTP/1.1 "
				    "as expected (%s)", m);
	default:
		break;
	}
	return ssc_diag_set(diag, SSC_EHSMDOWN, "the key server cannot be used (%s)", m);
}

/*
 * One HTTPS request: a POST of body (len bytes) or, body NULL, a GET. The answer's body in *b and
 * its status in *status. Returns 0 (any HTTP status), or the failure's SSC_EHSM*.
 */
static int hsm_request(struct hsm_kp *p, const char *url, const char *body, size_t len,
		       int64_t deadline_ms, struct hsm_body *b, long *status, struct ssc_diag *diag)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	int64_t left = deadline_ms - cardio_now_ms();
	long timeout = p->cfg->hsm_timeout_ms;
	struct hsm_conn *c;
	CURLcode e;
	int rc = 0;

	if (left <= 0)
		return ssc_diag_set(diag, SSC_EHSMTIMEOUT, "no time left for the key server before "
				    "the operation's deadline");
	if (left < timeout)
		timeout = (long)left;
	c = hsm_conn_get(p);
	if (!c)
		return ssc_diag_set(diag, SSC_ENOMEM, "cannot set up a connection to the key server");
	b->len = 0;
	b->overflow = 0;
	e = p->cu->easy_setopt(c->curl, CURLOPT_URL, url);
	if (e == CURLE_OK)
		e = p->cu->easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout);
	if (e == CURLE_OK)
		e = p->cu->easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	if (e == CURLE_OK)
		e = p->cu->easy_setopt(c->curl, CURLOPT_WRITEDATA, b);
	if (e == CURLE_OK)
		e = p->cu->easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
	if (e == CURLE_OK && body) {
		e = p->cu->easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)len);
		if (e == CURLE_OK)
			e = p->cu->easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	} else if (e == CURLE_OK) {
		e = p->cu->easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	if (e != CURLE_OK) {
		hsm_conn_put(p, c, 0);
		return ssc_diag_set(diag, SSC_EINTERNAL, "curl: %s", p->cu->easy_strerror(e));
	}
	e = p->cu->easy_perform(c->curl);
	if (e == CURLE_OK) {
		p->cu->easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	} else {
		long fresh = 0;

		p->cu->easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &fresh);
		rc = hsm_curl_error(p, e, errbuf, b, (int)timeout, fresh > 0, diag);
	}
	/* The handle must not keep pointers to this stack frame or to the body. */
	p->cu->easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	p->cu->easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	p->cu->easy_setopt(c->curl, CURLOPT_WRITEDATA, NULL);
	hsm_conn_put(p, c, rc == 0);
	return rc;
}

/* A failed exchange: the terminal numbers known may be another server's by the next one. */
static void hsm_forget_terminals(struct hsm_kp *p)
{
	pthread_mutex_lock(&p->lock);
	p->have_term[0] = p->have_term[1] = 0;
	pthread_mutex_unlock(&p->lock);
}

/*
 * Runs n PSAM commands on the key server in one POST /v1/exchange and checks that every one was
 * answered 9000 (the server stops at the first that was not: SSC_EPSAM with its status word,
 * naming what[i]). resp[i] holds each answer (data ‖ SW). Returns 0 or an error.
 */
static int hsm_exchange(struct hsm_kp *p, enum ssc_alg alg, const struct hsm_wire_cmd *cmds,
			size_t n, const char *const *what, struct hsm_wire_resp *resp,
			int64_t deadline_ms, struct ssc_diag *diag)
{
	struct hsm_body *b = malloc(sizeof(*b));
	size_t len = 0;
	long status = 0;
	char *body;
	int rc, count, slot = hsm_alg_slot(alg);

	if (!b)
		return SSC_ENOMEM;
	body = hsm_wire_exchange_body(alg, cmds, n, &len, &rc);
	if (!body) {
		free(b);
		return ssc_diag_set(diag, rc, "cannot build the request to the key server");
	}
	rc = hsm_request(p, p->url_exchange, body, len, deadline_ms, b, &status, diag);
	/* The body carried what the commands carry (a new PIN, a PIN block, a record). */
	OPENSSL_cleanse(body, len);
	free(body);
	if (rc == 0 && status != 200) {
		rc = hsm_wire_http_error(status, b->buf, b->len, diag);
		if (rc == SSC_EHSMNOPSAM) {
			pthread_mutex_lock(&p->lock);
			p->nopsam_until[slot] = cardio_now_ms() + HSM_NOPSAM_MS;
			pthread_mutex_unlock(&p->lock);
		}
	}
	if (rc == 0) {
		count = hsm_wire_exchange_answer(b->buf, b->len, n, resp, diag);
		rc = count < 0 ? count : 0;
		if (rc == 0) {
			const struct hsm_wire_resp *last = &resp[count - 1];
			uint16_t sw = (uint16_t)(last->b[last->len - 2] << 8 | last->b[last->len - 1]);

			if (sw != 0x9000) {
				diag->sw = sw;
				rc = ssc_diag_set(diag, SSC_EPSAM, "the key server's PSAM refused %s: "
						  "%04X%s", what[count - 1], sw,
						  sw == 0x6A88 ? " (key not in this PSAM)" : "");
			}
		}
	}
	OPENSSL_cleanse(b, sizeof(*b));
	free(b);
	if (rc && rc != SSC_EPSAM)
		hsm_forget_terminals(p);
	if (rc)
		log_debug("hsm: exchange (%s, %zu commands) failed: %s (%s)",
			  hsm_wire_alg_name(alg), n, ssc_strerror_name(rc), diag->msg);
	return rc;
}

/* ---- the key provider's operations -------------------------------------------------------- */

static int hsm_available(struct keyprov *kp, enum ssc_alg alg)
{
	struct hsm_kp *p = kp->ctx;
	int64_t until;

	if (alg != SSC_ALG_DES && alg != SSC_ALG_SM4)
		return SSC_EPSAMALGO;
	pthread_mutex_lock(&p->lock);
	until = p->nopsam_until[hsm_alg_slot(alg)];
	pthread_mutex_unlock(&p->lock);
	return until && cardio_now_ms() < until ? SSC_EPSAMALGO : 0;
}

/*
 * The second answer of a two-command exchange (DELIVER KEY, then the operation), whose data must
 * be want bytes long. Returns its data or NULL with SSC_EHSMPROTO in diag.
 */
static const uint8_t *hsm_second(const struct hsm_wire_resp *resp, size_t want, const char *what,
				 struct ssc_diag *diag)
{
	if (resp[1].len - 2 != want) {
		ssc_diag_set(diag, SSC_EHSMPROTO, "the key server's %s answer has %zu bytes, not %zu",
			     what, resp[1].len - 2, want);
		return NULL;
	}
	return resp[1].b;
}

/*
 * Sends DELIVER KEY (dk, n1 bytes) and the key operation (c2, n2 bytes) in one exchange, and takes
 * the second answer's data, which must be want bytes, into out. The answers are wiped.
 */
static int hsm_key_operation(struct keyprov *kp, enum ssc_alg alg, const uint8_t *dk, int n1,
			     const uint8_t *c2, int n2, const char *what2, size_t want,
			     uint8_t *out, int64_t deadline_ms, struct ssc_diag *diag)
{
	const char *const what[] = { "DELIVER KEY", what2 };
	struct hsm_wire_cmd cmds[2] = { { dk, (size_t)n1 }, { c2, (size_t)n2 } };
	struct hsm_wire_resp resp[2];
	const uint8_t *data;
	int rc;

	rc = hsm_exchange(kp->ctx, alg, cmds, 2, what, resp, deadline_ms, diag);
	if (rc == 0) {
		data = hsm_second(resp, want, what2, diag);
		if (data)
			memcpy(out, data, want);
		else
			rc = SSC_EHSMPROTO;
	}
	OPENSSL_cleanse(resp, sizeof(resp));
	return rc;
}

static int hsm_cryptogram(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			  const struct keyprov_div *div, const uint8_t r[8], const uint8_t x[8],
			  uint8_t c[8], int64_t deadline_ms, struct ssc_diag *diag)
{
	uint8_t dk[PSAM_CMD_MAX], ci[PSAM_CMD_MAX], c16[16];
	size_t want = alg == SSC_ALG_SM4 ? 16 : 8;
	int n1, n2, rc;

	n1 = psam_cmd_deliver_key(dk, sizeof(dk), alg, key, div, r);
	n2 = psam_cmd_cipher(ci, sizeof(ci), alg, x);
	if (n1 < 0 || n2 < 0)
		return ssc_diag_set(diag, SSC_EPSAMALGO, "no key server PSAM for algorithm %d",
				    (int)alg);
	rc = hsm_key_operation(kp, alg, dk, n1, ci, n2, "CIPHER", want, c16, deadline_ms, diag);
	if (rc == 0)
		rc = psam_cmd_cryptogram(alg, c16, want, c);
	OPENSSL_cleanse(dk, sizeof(dk));
	OPENSSL_cleanse(c16, sizeof(c16));
	return rc;
}

static int hsm_mac(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
		   const struct keyprov_div *div, const uint8_t *iv, const uint8_t *data, size_t len,
		   uint8_t mac[4], int64_t deadline_ms, struct ssc_diag *diag)
{
	uint8_t dk[PSAM_CMD_MAX], mc[PSAM_CMD_MAX];
	int n1, n2, rc;

	n1 = psam_cmd_deliver_key(dk, sizeof(dk), alg, key, div, NULL);
	n2 = psam_cmd_mac(mc, sizeof(mc), alg, iv, data, len);
	if (n1 < 0 || n2 < 0) {
		OPENSSL_cleanse(mc, sizeof(mc));
		return ssc_diag_set(diag, SSC_EINVAL, "MAC input of %zu bytes cannot be sent", len);
	}
	rc = hsm_key_operation(kp, alg, dk, n1, mc, n2, "MAC", 4, mac, deadline_ms, diag);
	OPENSSL_cleanse(mc, sizeof(mc));
	return rc;
}

static int hsm_encrypt(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
		       const struct keyprov_div *div, const uint8_t *in, size_t len, uint8_t *out,
		       int64_t deadline_ms, struct ssc_diag *diag)
{
	uint8_t dk[PSAM_CMD_MAX], en[PSAM_CMD_MAX];
	int n1, n2, rc;

	n1 = psam_cmd_deliver_key(dk, sizeof(dk), alg, key, div, NULL);
	n2 = psam_cmd_encrypt(en, sizeof(en), alg, in, len);
	if (n1 < 0 || n2 < 0)
		return ssc_diag_set(diag, SSC_EINVAL, "block of %zu bytes to encrypt", len);
	rc = hsm_key_operation(kp, alg, dk, n1, en, n2, "ENCRYPT", len, out, deadline_ms, diag);
	OPENSSL_cleanse(en, sizeof(en));
	return rc;
}

static int hsm_terminal_number(struct keyprov *kp, enum ssc_alg alg, char out[13],
			       int64_t deadline_ms, struct ssc_diag *diag)
{
	struct hsm_kp *p = kp->ctx;
	int slot = hsm_alg_slot(alg), rc;
	struct hsm_body *b;
	long status = 0;
	char term[13];

	if (alg != SSC_ALG_DES && alg != SSC_ALG_SM4)
		return ssc_diag_set(diag, SSC_EPSAMALGO, "no key server PSAM for algorithm %d",
				    (int)alg);
	pthread_mutex_lock(&p->lock);
	if (p->have_term[slot]) {
		memcpy(out, p->term[slot], 13);
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	if (p->term_err[slot] && cardio_now_ms() < p->term_retry_at[slot]) {
		rc = p->term_err[slot];
		pthread_mutex_unlock(&p->lock);
		return ssc_diag_set(diag, rc, "the key server's terminal number failed less than "
				    "%d s ago (%s)", HSM_TERM_RETRY_MS / 1000, ssc_strerror_name(rc));
	}
	pthread_mutex_unlock(&p->lock);
	b = malloc(sizeof(*b));
	if (!b)
		return SSC_ENOMEM;
	rc = hsm_request(p, p->url_terminal[slot], NULL, 0, deadline_ms, b, &status, diag);
	if (rc == 0 && status != 200)
		rc = hsm_wire_http_error(status, b->buf, b->len, diag);
	if (rc == 0)
		rc = hsm_wire_terminal_answer(b->buf, b->len, term, diag);
	free(b);
	pthread_mutex_lock(&p->lock);
	if (rc == 0) {
		memcpy(p->term[slot], term, 13);
		p->have_term[slot] = 1;
		p->term_err[slot] = 0;
	} else {
		p->term_err[slot] = rc;
		p->term_retry_at[slot] = cardio_now_ms() + HSM_TERM_RETRY_MS;
		if (rc == SSC_EHSMNOPSAM)
			p->nopsam_until[slot] = cardio_now_ms() + HSM_NOPSAM_MS;
	}
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		memcpy(out, term, 13);
	return rc;
}

static void hsm_free(struct keyprov *kp)
{
	struct hsm_kp *p = kp->ctx;

	while (p->idle) {
		struct hsm_conn *c = p->idle;

		p->idle = c->next;
		p->cu->easy_cleanup(c->curl);
		free(c);
	}
	p->cu->slist_free_all(p->headers);
	hsm_file_wipe(&p->ca);
	hsm_file_wipe(&p->cert);
	hsm_file_wipe(&p->key);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct keyprov_ops hsm_ops = {
	.name = "hsm",
	.available = hsm_available,
	.cryptogram = hsm_cryptogram,
	.mac = hsm_mac,
	.encrypt = hsm_encrypt,
	.terminal_number = hsm_terminal_number,
	.free = hsm_free,
};

int hsm_keyprov_new(const struct config *cfg, struct keyprov **out, char *err, size_t errlen)
{
	static const char *const alg_names[2] = { "des", "sm4" };
	const struct hsm_curl *cu;
	struct curl_slist *h;
	char why[256] = "";
	struct hsm_kp *p;
	size_t ul;
	int rc;

	if (!cfg->hsm_url[0]) {
		snprintf(err, errlen, "[hsm] url is not set");
		return SSC_ECONFIG;
	}
	/* libcurl is loaded now, and only for the key server (src/hsm_curl.h). */
	cu = hsm_curl_load(why, sizeof(why));
	if (!cu) {
		snprintf(err, errlen, "[hsm] url is set, but libcurl cannot be loaded (SSC_EHSMLIB: "
			 "%s): install the package libcurl4, or remove [hsm] url to use the PSAMs "
			 "in the readers only", why);
		return SSC_EHSMLIB;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return SSC_ENOMEM;
	p->cfg = cfg;
	p->cu = cu;
	pthread_mutex_init(&p->lock, NULL);
	p->kp.ops = &hsm_ops;
	p->kp.ctx = p;
	/* The base URL without its trailing slashes, then the two endpoints of spec §13.2. */
	ul = strlen(cfg->hsm_url);
	while (ul > 8 && cfg->hsm_url[ul - 1] == '/')
		ul--;
	snprintf(p->url_exchange, sizeof(p->url_exchange), "%.*s/v1/exchange", (int)ul,
		 cfg->hsm_url);
	for (int i = 0; i < 2; i++)
		snprintf(p->url_terminal[i], sizeof(p->url_terminal[i]),
			 "%.*s/v1/terminal?algorithm=%s", (int)ul, cfg->hsm_url, alg_names[i]);
	h = p->cu->slist_append(NULL, "Content-Type: application/json");
	p->headers = h;
	h = h ? p->cu->slist_append(h, "Accept: application/json") : NULL;
	/* No "Expect: 100-continue" round trip before a body: one round trip per operation. */
	h = h ? p->cu->slist_append(h, "Expect:") : NULL;
	if (!h) {
		rc = SSC_ENOMEM;
		goto out_free;
	}
	rc = hsm_file_read("ca_file", cfg->hsm_ca_file, 0, &p->ca, err, errlen);
	if (!rc)
		rc = hsm_file_read("cert_file", cfg->hsm_cert_file, 0, &p->cert, err, errlen);
	if (!rc)
		rc = hsm_file_read("key_file", cfg->hsm_key_file, 1, &p->key, err, errlen);
	if (!rc)
		rc = hsm_check_pem(p, err, errlen);
	if (rc)
		goto out_free;
	*out = &p->kp;
	return 0;
out_free:
	hsm_free(&p->kp);
	return rc;
}
