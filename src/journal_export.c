/*
 * This file contains the journal's rows read out for the operator (src/journal.h): `journal
 * export` as JSON lines and `journal show` through a callback, both in sequence order and by the
 * columns' names.
 */
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "journal_int.h"
#include "jsontext.h"

/* A row's detail as JSON: the object it holds, or the text as a string when it is not JSON. */
static json_t *detail_json(const char *detail)
{
	json_error_t e;
	json_t *d = json_loads(detail, 0, &e);

	if (d || json_error_code(&e) == json_error_out_of_memory)
		return d;
	return json_string(detail);
}

int journal_export(struct journal *j, int64_t since_seq, FILE *out)
{
	sqlite3_stmt *st;
	struct jrow r;
	int rc, n = 0, ret = 0;

	pthread_mutex_lock(&j->lock);
	if (!j->db ||
	    sqlite3_prepare_v2(j->db, "SELECT " ROW_COLUMNS " FROM rows WHERE seq > ? ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&j->lock);
		return SSC_EJOURNAL;
	}
	sqlite3_bind_int64(st, 1, since_seq);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o;
		char *line;

		journal_row_from_stmt(st, &r);
		o = json_pack("{sI ss ss sI sI ss ss ss ss ss sI ss ss}", "seq", (json_int_t)r.seq,
			      "time", r.ts, "kind", r.kind, "uid", (json_int_t)r.uid, "pid",
			      (json_int_t)r.pid, "exe", r.exe, "method", r.method, "reader", r.reader,
			      "card", r.card, "result", r.result, "duration_ms",
			      (json_int_t)r.duration_ms, "file", r.file, "hash", journal_col_text(st, JCOL_HASH));
		if (!o) {
			ret = SSC_ENOMEM;
			break;
		}
		if (r.intent && json_object_set_new(o, "intent", json_integer(r.intent)) != 0)
			line = NULL;   /* no memory: never a line without a field */
		else if (r.detail[0] && json_object_set_new(o, "detail", detail_json(r.detail)) != 0)
			line = NULL;
		else
			line = jsontext_dump(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(o);
		if (!line) {
			ret = SSC_ENOMEM;
			break;
		}
		if (fprintf(out, "%s\n", line) < 0)
			ret = SSC_EIO;
		free(line);
		if (ret < 0)
			break;
		n++;
	}
	ret = journal_read_end(j, st, rc, ret);
	return ret < 0 ? ret : n;
}

int journal_rows(struct journal *j, int64_t since_seq, int64_t limit,
		 int (*cb)(void *arg, const struct journal_row *row), void *arg)
{
	/* since_seq < 0: the last `limit` rows, oldest first. */
	static const char sql_since[] =
		"SELECT " ROW_COLUMNS " FROM rows WHERE seq > ?1 ORDER BY seq LIMIT ?2";
	static const char sql_last[] =
		"SELECT * FROM (SELECT " ROW_COLUMNS " FROM rows ORDER BY seq DESC LIMIT ?2)"
		" ORDER BY seq";
	struct journal_row out;
	sqlite3_stmt *st;
	struct jrow r;
	int rc, ret = 0;

	pthread_mutex_lock(&j->lock);
	if (!j->db || sqlite3_prepare_v2(j->db, since_seq < 0 ? sql_last : sql_since, -1, &st,
					 NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&j->lock);
		return SSC_EJOURNAL;
	}
	if (since_seq >= 0)
		sqlite3_bind_int64(st, 1, since_seq);
	sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		journal_row_from_stmt(st, &r);
		out.seq = r.seq;
		out.time = r.ts;
		out.kind = r.kind;
		out.uid = r.uid;
		out.pid = r.pid;
		out.exe = r.exe;
		out.method = r.method;
		out.reader = r.reader;
		out.card = r.card;
		out.result = r.result;
		out.duration_ms = r.duration_ms;
		out.intent = r.intent;
		out.file = r.file;
		out.detail = r.detail;
		out.hash = journal_col_text(st, JCOL_HASH);
		ret = cb(arg, &out);
		if (ret != 0)
			break;
	}
	return journal_read_end(j, st, rc, ret);
}
