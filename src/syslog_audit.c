/*
 * This file contains audit shipping to syslog (src/syslog_audit.h): the RFC 5424 message (header,
 * one SD-ELEMENT with every column of the row, the escaping of section 6.3.3, a UTF-8 MSG with its
 * BOM), and a bounded queue with one sender thread on a Unix datagram socket (a burst of rows
 * waits for the syslog daemon instead of overflowing the socket's short queue), which reconnects
 * when the syslog daemon comes back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cardio.h"
#include "log.h"
#include "syslog_audit.h"
#include "sscard/error.h"

/* Facility authpriv (10): security messages, kept apart from the general log by syslog daemons. */
#define FACILITY 10
#define SEV_NOTICE 5
#define SEV_INFO 6
#define RECONNECT_MS 1000
#define QUEUE_MAX 4096              /* messages waiting; more are dropped */
#define SEND_TIMEOUT_MS 1000        /* one send waits this long for the syslog daemon */
#define DRAIN_MS 1000               /* at free, messages still queued after this are dropped */

struct msg {
	struct msg *next;
	size_t len;
	char text[];
};

struct syslog_audit {
	pthread_mutex_t lock;       /* everything below but fd, next_try_ms, failing (thread's) */
	pthread_cond_t cond;
	pthread_t thread;
	struct msg *head, *tail;
	size_t queued;
	int stop;
	int64_t stop_deadline_ms;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char host[256];
	int fd;                     /* -1 while not connected */
	int64_t next_try_ms;        /* no connect before this */
	int failing;                /* the last send failed (logged once) */
	uint64_t sent, dropped;
};

/* Appends to buf at *len what fits (always NUL-terminated); returns 0, or -1 when it was cut. */
static int put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	int cut = 0;

	if (*len + n >= cap) {
		n = cap - 1 - *len;
		cut = -1;
	}
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
	return cut;
}

/*
 * One PARAM-VALUE: '"', '\' and ']' escaped with '\' (RFC 5424 6.3.3); control characters, which a
 * row never holds but a collector must never see, as '?'. Stops at room bytes before the end.
 */
static void put_value(char *buf, size_t cap, size_t *len, const char *v, size_t room)
{
	for (; *v && *len + 2 + room < cap; v++) {
		char c = *v;

		if (c == '"' || c == '\\' || c == ']') {
			buf[(*len)++] = '\\';
			buf[(*len)++] = c;
		} else {
			buf[(*len)++] = (unsigned char)c < 0x20 || c == 0x7f ? '?' : c;
		}
	}
	buf[*len] = '\0';
}

static void put_param(char *buf, size_t cap, size_t *len, const char *name, const char *v,
		      size_t room)
{
	put(buf, cap, len, " ", 1);
	put(buf, cap, len, name, strlen(name));
	put(buf, cap, len, "=\"", 2);
	put_value(buf, cap, len, v, room);
	put(buf, cap, len, "\"", 1);
}

/* A header field: printable US-ASCII without spaces, at most max characters, else "-". */
static const char *header_field(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return "-";
	for (size_t i = 0; i < n; i++)
		if (s[i] < 33 || s[i] > 126)
			return "-";
	return s;
}

size_t syslog_audit_format(const struct journal_row *row, const char *host, long pid, char *buf,
			   size_t cap)
{
	char num[4][24], head[400];
	size_t len = 0;
	int sev = row->result[0] && strcmp(row->result, "SSC_OK") != 0 ? SEV_NOTICE : SEV_INFO;
	/* Room kept for the closing of the SD-ELEMENT and the MSG after a long detail. */
	const size_t tail = 160;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	snprintf(head, sizeof(head), "<%d>1 %s %s sscardd %ld %s [" SYSLOG_AUDIT_SDID,
		 FACILITY * 8 + sev, header_field(row->time, 32), header_field(host, 255), pid,
		 header_field(row->kind, 32));
	put(buf, cap, &len, head, strlen(head));
	snprintf(num[0], sizeof(num[0]), "%lld", (long long)row->seq);
	snprintf(num[1], sizeof(num[1]), "%lld", (long long)row->uid);
	snprintf(num[2], sizeof(num[2]), "%lld", (long long)row->pid);
	snprintf(num[3], sizeof(num[3]), "%lld", (long long)row->duration_ms);
	put_param(buf, cap, &len, "seq", num[0], tail);
	put_param(buf, cap, &len, "hash", row->hash, tail);
	put_param(buf, cap, &len, "kind", row->kind, tail);
	put_param(buf, cap, &len, "uid", num[1], tail);
	put_param(buf, cap, &len, "pid", num[2], tail);
	put_param(buf, cap, &len, "exe", row->exe, tail);
	put_param(buf, cap, &len, "method", row->method, tail);
	put_param(buf, cap, &len, "reader", row->reader, tail);
	put_param(buf, cap, &len, "card", row->card, tail);
	put_param(buf, cap, &len, "result", row->result, tail);
	put_param(buf, cap, &len, "duration_ms", num[3], tail);
	if (row->intent) {
		char in[24];

		snprintf(in, sizeof(in), "%lld", (long long)row->intent);
		put_param(buf, cap, &len, "intent", in, tail);
	}
	if (row->file[0])
		put_param(buf, cap, &len, "file", row->file, tail);
	if (row->detail[0])
		put_param(buf, cap, &len, "detail", row->detail, tail);
	put(buf, cap, &len, "] \xEF\xBB\xBF", 5);
	snprintf(head, sizeof(head), "journal row %lld: %s %s %s", (long long)row->seq, row->kind,
		 row->method[0] ? row->method : "-", row->result[0] ? row->result : "-");
	put(buf, cap, &len, head, strlen(head));
	return len;
}

/* Connects unless it tried less than RECONNECT_MS ago. Returns 0 or -1 (errno). Thread only. */
static int try_connect(struct syslog_audit *s)
{
	struct sockaddr_un sa;
	struct timeval tv = { SEND_TIMEOUT_MS / 1000, (SEND_TIMEOUT_MS % 1000) * 1000 };
	int64_t now = cardio_now_ms();

	if (s->fd >= 0)
		return 0;
	if (now < s->next_try_ms) {
		errno = EAGAIN;
		return -1;
	}
	s->next_try_ms = now + RECONNECT_MS;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -1;
	/* A send waits for the syslog daemon's queue at most this long (every wait has a deadline). */
	(void)setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(s->fd);
		s->fd = -1;
		errno = e;
		return -1;
	}
	return 0;
}

/* Sends one message (thread only, lock not held). Returns 0 or the errno. */
static int send_one(struct syslog_audit *s, const struct msg *m)
{
	int e;

	if (try_connect(s) != 0)
		return errno;
	if (send(s->fd, m->text, m->len, MSG_NOSIGNAL) == (ssize_t)m->len)
		return 0;
	e = errno;
	/* The syslog daemon went away (restarted): connect again next time. */
	if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS && e != EINTR) {
		close(s->fd);
		s->fd = -1;
	}
	return e ? e : EIO;
}

static void *sender_main(void *arg)
{
	struct syslog_audit *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct msg *m;
		int e;

		while (!s->head && !s->stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->head)
			break;
		m = s->head;
		s->head = m->next;
		if (!s->head)
			s->tail = NULL;
		s->queued--;
		if (s->stop && cardio_now_ms() > s->stop_deadline_ms) {
			s->dropped++;
			free(m);
			continue;
		}
		pthread_mutex_unlock(&s->lock);
		e = send_one(s, m);
		free(m);
		pthread_mutex_lock(&s->lock);
		if (e == 0) {
			s->sent++;
			if (s->failing)
				log_info("audit: syslog %s takes rows again (%llu dropped so far)",
					 s->path, (unsigned long long)s->dropped);
			s->failing = 0;
		} else {
			s->dropped++;
			if (!s->failing)
				log_warn("audit: syslog %s does not take rows (%s): they are dropped "
					 "(the journal keeps them) until it does", s->path,
					 e == EAGAIN ? "busy, or retried too soon" : strerror(e));
			s->failing = 1;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int syslog_audit_new(const char *path, struct syslog_audit **out)
{
	struct syslog_audit *s = calloc(1, sizeof(*s));

	if (!s)
		return SSC_ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (gethostname(s->host, sizeof(s->host)) != 0)
		s->host[0] = '\0';
	s->host[sizeof(s->host) - 1] = '\0';
	s->fd = -1;
	if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return SSC_ENOMEM;
	}
	*out = s;
	return 0;
}

int syslog_audit_send(struct syslog_audit *s, const struct journal_row *row)
{
	char buf[SYSLOG_AUDIT_MAX];
	size_t len = syslog_audit_format(row, s->host, (long)getpid(), buf, sizeof(buf));
	struct msg *m = malloc(sizeof(*m) + len);
	int rc = SSC_ELIMIT;

	if (m) {
		m->next = NULL;
		m->len = len;
		memcpy(m->text, buf, len);
	}
	pthread_mutex_lock(&s->lock);
	if (m && s->queued < QUEUE_MAX && !s->stop) {
		if (s->tail)
			s->tail->next = m;
		else
			s->head = m;
		s->tail = m;
		s->queued++;
		m = NULL;
		rc = 0;
		pthread_cond_signal(&s->cond);
	} else {
		s->dropped++;
	}
	pthread_mutex_unlock(&s->lock);
	free(m);
	return rc;
}

void syslog_audit_counts(struct syslog_audit *s, uint64_t *sent, uint64_t *dropped)
{
	pthread_mutex_lock(&s->lock);
	*sent = s->sent;
	*dropped = s->dropped;
	pthread_mutex_unlock(&s->lock);
}

void syslog_audit_free(struct syslog_audit *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	s->stop_deadline_ms = cardio_now_ms() + DRAIN_MS;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	if (s->fd >= 0)
		close(s->fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
