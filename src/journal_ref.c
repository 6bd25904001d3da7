/*
 * This file contains the journal's keyed names (src/journal.h): a card is named by an HMAC of its
 * card number under the ref key, a written value by an HMAC of its bytes, never in clear; and the
 * memo of the last few card names, since one operation names the same card several times.
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "journal_int.h"

/*
 * Whether (label, v) may be remembered: card names only, not the refs of record values, which
 * may be personal data; and short enough for an entry.
 */
static int memo_fits(const char *label, size_t len)
{
	return len <= JOURNAL_MEMO_VALUE &&
	       (strcmp(label, "card") == 0 || strcmp(label, "bl-number") == 0 ||
		strcmp(label, "bl-id") == 0);
}

/* A remembered ref for (label, v), copied to out: 1; or 0 (mac_lock not held). */
static int memo_get(struct journal *j, const char *label, const uint8_t *v, size_t len, char *out)
{
	int hit = 0;

	pthread_mutex_lock(&j->mac_lock);
	for (size_t i = 0; i < JOURNAL_MEMO && !hit; i++) {
		const struct ref_memo *m = &j->memo[i];

		if (m->label && m->len == len && strcmp(m->label, label) == 0 &&
		    memcmp(m->value, v, len) == 0) {
			memcpy(out, m->ref, JOURNAL_REF_HEX + 1);
			hit = 1;
		}
	}
	pthread_mutex_unlock(&j->mac_lock);
	return hit;
}

static void memo_put(struct journal *j, const char *label, const uint8_t *v, size_t len,
		     const char *ref)
{
	struct ref_memo *m;

	pthread_mutex_lock(&j->mac_lock);
	m = &j->memo[j->memo_next];
	j->memo_next = (j->memo_next + 1) % JOURNAL_MEMO;
	m->label = label;
	m->len = len;
	memcpy(m->value, v, len);
	memcpy(m->ref, ref, JOURNAL_REF_HEX + 1);
	pthread_mutex_unlock(&j->mac_lock);
}

/*
 * HMAC(ref_key, label ‖ 00 ‖ value), truncated to JOURNAL_REF_HEX hex digits. label must be a
 * string literal (the memo keeps the pointer).
 */
void journal_keyed_ref(struct journal *j, const char *label, const uint8_t *v, size_t len,
		      char *out)
{
	uint8_t stackbuf[512], mac[32];
	uint8_t *buf = stackbuf;
	size_t ll = strlen(label), total = ll + 1 + len;
	int r, memo = memo_fits(label, len);

	if (memo && memo_get(j, label, v, len, out))
		return;

	if (total > sizeof(stackbuf))
		buf = malloc(total);
	if (!buf)
		goto out_none;
	memcpy(buf, label, ll);
	buf[ll] = 0;
	if (len)
		memcpy(buf + ll + 1, v, len);
	r = journal_mac(j, j->ref_mac, j->ref_key, buf, total, mac);
	OPENSSL_cleanse(buf, total);
	if (buf != stackbuf)
		free(buf);
	if (r < 0)
		goto out_none;
	hex_encode(mac, JOURNAL_REF_HEX / 2, out, JOURNAL_REF_HEX + 1, HEX_LOWER);
	OPENSSL_cleanse(mac, sizeof(mac));
	if (memo)
		memo_put(j, label, v, len, out);
	return;

out_none:
	/*
	 * No memory for the hash: never a valid ref (JOURNAL_REF_NONE). A lookup refuses it, and so
	 * does journal_intent(); never remembered.
	 */
	memset(out, '-', JOURNAL_REF_HEX);
	out[JOURNAL_REF_HEX] = '\0';
}

void journal_card_ref(struct journal *j, const char *card_number, char *out)
{
	journal_keyed_ref(j, "card", (const uint8_t *)card_number, strlen(card_number), out);
}

void journal_value_ref(struct journal *j, const uint8_t *value, size_t len, char *out)
{
	journal_keyed_ref(j, "value", value, len, out);
}
