/*
 * This file contains the PSAM key provider: card keys stay in the PSAM, which derives K_card and
 * the session key itself (DELIVER KEY) and answers cryptograms, MACs and encrypted blocks
 * (spec §12.6). It also holds the PSAM probe the reader core runs on every new card.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"
#include "hex.h"
#include "psam.h"
#include "psam_cmd.h"

static const uint8_t psam_default_aid[] = { 0xD1, 0x56, 0x00, 0x00, 0x05, 0x90 };

struct psam_kp {
	struct keyprov kp;
	struct psam_source *src;
	const struct config *cfg;
};

/* The PSAM announces its algorithm as the card does (spec §12.4); no 9F0C means DES. */
static int psam_fci_alg(const uint8_t *fci, size_t len, enum ssc_alg *alg)
{
	uint8_t id;
	int rc = apdu_fci_alg(fci, len, &id);

	if (rc < 0)
		return rc;
	if (rc == 0)
		id = SSC_ALG_DES;
	if (id != SSC_ALG_DES && id != SSC_ALG_SM4)
		return SSC_EPSAMALGO;
	*alg = (enum ssc_alg)id;
	return 0;
}

/*
 * READ BINARY of the 6-byte BCD terminal number into 12 hex digits. A PSAM that refuses it (no
 * such file) has none: "000000000000", the standard interface's default.
 */
static int psam_read_terminal(struct card_io *io, char term[13], struct ssc_diag *diag)
{
	static const uint8_t cmd[] = { 0x00, 0xB0, 0x96, 0x00, 0x06 };
	uint8_t buf[APDU_MAX_DATA];
	uint16_t sw = 0;
	int n;

	n = apdu_exchange(io, cmd, sizeof(cmd), buf, sizeof(buf), &sw, 0, diag);
	if (n < 0)
		return n;
	if (sw != APDU_SW_OK) {
		memcpy(term, "000000000000", 13);
		return 0;
	}
	if (n != 6)
		return ssc_diag_set(diag, SSC_EPROTO, "PSAM terminal number of %d bytes", n);
	/* BCD shown digit by digit: the hex of the bytes. */
	return hex_encode(buf, 6, term, 13, HEX_UPPER) < 0 ? SSC_EINTERNAL : 0;
}

int psam_probe(struct card_io *io, enum ssc_alg *alg, char term[13])
{
	uint8_t cmd[16], fci[APDU_MAX_DATA];
	struct ssc_diag diag;
	uint16_t sw = 0;
	int n, rc;

	ssc_diag_init(&diag);
	n = apdu_build(cmd, sizeof(cmd), 0x00, 0xA4, 0x04, 0x00, psam_default_aid,
		       sizeof(psam_default_aid), APDU_LE_NONE);
	if (n < 0)
		return n;
	rc = apdu_exchange(io, cmd, (size_t)n, fci, sizeof(fci), &sw, 0, &diag);
	if (rc < 0)
		return rc;
	if (sw != APDU_SW_OK || rc == 0)
		return SSC_ENOTFOUND;
	rc = psam_fci_alg(fci, (size_t)rc, alg);
	if (rc == SSC_EPROTO)
		return SSC_ENOTFOUND;   /* answered, but with no FCI we can read: not our PSAM */
	if (rc)
		return rc;
	return psam_read_terminal(io, term, &diag);
}

static int psam_available(struct keyprov *kp, enum ssc_alg alg)
{
	struct psam_kp *p = kp->ctx;
	unsigned algs = p->src->algorithms(p->src->ctx);

	if (algs == 0)
		return SSC_ENOPSAM;
	if (alg != SSC_ALG_DES && alg != SSC_ALG_SM4)
		return SSC_EPSAMALGO;
	return (algs & (1u << alg)) ? 0 : SSC_EPSAMALGO;
}

/* Transport failures leave the PSAM in an unknown state: the core re-probes it. */
static int psam_broken(int rc)
{
	return rc == SSC_ETIMEDOUT || rc == SSC_ECARDREMOVED || rc == SSC_EREADER ||
	       rc == SSC_ENOCARD || rc == SSC_EPROTO || rc == SSC_EIO;
}

/*
 * Lets go of the PSAM and says what its failure means to the caller: a PSAM that vanished or
 * stopped answering mid-command is the PSAM's failure (SSC_EPSAM, naming its reader), not the
 * user card's, whose reader the client asked about. Deadlines stay SSC_ETIMEDOUT.
 */
static int psam_done(struct psam_kp *p, struct card_io *io, int rc, struct ssc_diag *diag)
{
	int broken = psam_broken(rc);

	if (broken && rc != SSC_ETIMEDOUT)
		rc = ssc_diag_set(diag, SSC_EPSAM, "the PSAM in reader %s failed: %s", io->reader_id,
				  ssc_strerror(rc));
	p->src->release(p->src->ctx, io, broken);
	return rc;
}

static int psam_acquire(struct psam_kp *p, enum ssc_alg alg, int64_t deadline_ms,
			struct card_io **io, struct ssc_diag *diag)
{
	int rc;

	if (alg != SSC_ALG_DES && alg != SSC_ALG_SM4)
		return ssc_diag_set(diag, SSC_EPSAMALGO, "no PSAM for algorithm %d", (int)alg);
	rc = p->src->acquire(p->src->ctx, alg, deadline_ms, io);
	if (rc == SSC_ENOPSAM)
		return ssc_diag_set(diag, rc, "no PSAM is inserted");
	if (rc == SSC_EPSAMALGO)
		return ssc_diag_set(diag, rc, "no PSAM for the card's algorithm (%s)",
				    alg == SSC_ALG_SM4 ? "SM4" : "DES");
	if (rc == SSC_ETIMEDOUT)
		return ssc_diag_set(diag, rc, "every PSAM stayed busy until the deadline");
	return rc;
}

/* A PSAM status word means the PSAM refused: SSC_EPSAM, keeping the word in diag. */
static int psam_exchange(struct card_io *io, const uint8_t *cmd, size_t len, uint8_t *out,
			 size_t cap, unsigned flags, const char *what, struct ssc_diag *diag)
{
	uint16_t sw = 0;
	int n = apdu_exchange(io, cmd, len, out, cap, &sw, flags, diag);

	if (n < 0)
		return n;
	if (sw != APDU_SW_OK) {
		diag->sw = sw;
		return ssc_diag_set(diag, SSC_EPSAM, "PSAM %s: %04X%s", what, sw,
				    sw == 0x6A88 ? " (key not in this PSAM)" : "");
	}
	return n;
}

/* DELIVER KEY (src/psam_cmd.h): K_card, and with r the session key too. */
static int psam_deliver_key(struct card_io *io, enum ssc_alg alg, const struct config_key *key,
			    const struct keyprov_div *div, const uint8_t *r, struct ssc_diag *diag)
{
	uint8_t cmd[PSAM_CMD_MAX], resp[APDU_MAX_DATA];
	int n;

	n = psam_cmd_deliver_key(cmd, sizeof(cmd), alg, key, div, r);
	if (n >= 0)
		n = psam_exchange(io, cmd, (size_t)n, resp, sizeof(resp), 0, "DELIVER KEY", diag);
	OPENSSL_cleanse(cmd, sizeof(cmd));
	return n < 0 ? n : 0;
}

/*
 * Takes a PSAM of alg and gives it the card's key (DELIVER KEY; with r, the session key too). On
 * failure the PSAM is let go (psam_done says what the failure means) and *io is NULL.
 */
static int psam_acquire_key(struct psam_kp *p, enum ssc_alg alg, const struct config_key *key,
			    const struct keyprov_div *div, const uint8_t *r, int64_t deadline_ms,
			    struct card_io **io, struct ssc_diag *diag)
{
	int rc = psam_acquire(p, alg, deadline_ms, io, diag);

	if (rc)
		return rc;
	rc = psam_deliver_key(*io, alg, key, div, r, diag);
	if (rc) {
		rc = psam_done(p, *io, rc, diag);
		*io = NULL;
	}
	return rc;
}

static int psam_cryptogram(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			   const struct keyprov_div *div, const uint8_t r[8], const uint8_t x[8],
			   uint8_t c[8], int64_t deadline_ms, struct ssc_diag *diag)
{
	struct psam_kp *p = kp->ctx;
	struct card_io *io = NULL;
	uint8_t cmd[PSAM_CMD_MAX], resp[APDU_MAX_DATA];
	int rc, n;

	rc = psam_acquire_key(p, alg, key, div, r, deadline_ms, &io, diag);
	if (rc)
		return rc;
	n = psam_cmd_cipher(cmd, sizeof(cmd), alg, x);
	/* DES answers 61 08 and apdu_exchange fetches C with GET RESPONSE. */
	if (n >= 0)
		n = psam_exchange(io, cmd, (size_t)n, resp, sizeof(resp), 0, "CIPHER", diag);
	if (n < 0) {
		rc = n;
		goto out_release;
	}
	rc = psam_cmd_cryptogram(alg, resp, (size_t)n, c);
	if (rc)
		rc = ssc_diag_set(diag, SSC_EPROTO, "PSAM cryptogram of %d bytes", n);
out_release:
	OPENSSL_cleanse(resp, sizeof(resp));
	return psam_done(p, io, rc, diag);
}

static int psam_mac(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
		    const struct keyprov_div *div, const uint8_t *iv, const uint8_t *data, size_t len,
		    uint8_t mac[4], int64_t deadline_ms, struct ssc_diag *diag)
{
	struct psam_kp *p = kp->ctx;
	struct card_io *io = NULL;
	size_t ivlen = alg == SSC_ALG_SM4 ? 16 : 8;
	uint8_t cmd[PSAM_CMD_MAX], resp[APDU_MAX_DATA];
	int rc, n;

	if (len > 255 - ivlen)
		return ssc_diag_set(diag, SSC_EINVAL, "MAC input of %zu bytes is too long", len);
	rc = psam_acquire_key(p, alg, key, div, NULL, deadline_ms, &io, diag);
	if (rc)
		return rc;
	n = psam_cmd_mac(cmd, sizeof(cmd), alg, iv, data, len);
	/* The MAC input is a RELOAD PIN command (a PIN in clear) or a record (personal data). */
	if (n >= 0)
		n = psam_exchange(io, cmd, (size_t)n, resp, sizeof(resp), CARDIO_SECRET, "MAC",
				  diag);
	OPENSSL_cleanse(cmd, sizeof(cmd));
	if (n < 0) {
		rc = n;
		goto out_release;
	}
	if (n != 4) {
		rc = ssc_diag_set(diag, SSC_EPROTO, "PSAM MAC of %d bytes", n);
		goto out_release;
	}
	memcpy(mac, resp, 4);
	rc = 0;
out_release:
	return psam_done(p, io, rc, diag);
}

static int psam_encrypt(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			const struct keyprov_div *div, const uint8_t *in, size_t len, uint8_t *out,
			int64_t deadline_ms, struct ssc_diag *diag)
{
	struct psam_kp *p = kp->ctx;
	struct card_io *io = NULL;
	size_t block = alg == SSC_ALG_SM4 ? 16 : 8;
	uint8_t cmd[PSAM_CMD_MAX], resp[APDU_MAX_DATA];
	int rc, n;

	if (len == 0 || len > 32 || len % block)
		return ssc_diag_set(diag, SSC_EINVAL, "block of %zu bytes to encrypt", len);
	rc = psam_acquire_key(p, alg, key, div, NULL, deadline_ms, &io, diag);
	if (rc)
		return rc;
	n = psam_cmd_encrypt(cmd, sizeof(cmd), alg, in, len);
	/* The body is a PIN block: CARDIO_SECRET keeps it out of the APDU log. */
	if (n >= 0) {
		uint16_t sw = 0;

		rc = apdu_exchange(io, cmd, (size_t)n, resp, sizeof(resp), &sw, CARDIO_SECRET, diag);
		OPENSSL_cleanse(cmd, sizeof(cmd));
		if (rc >= 0 && sw != APDU_SW_OK) {
			diag->sw = sw;
			rc = ssc_diag_set(diag, SSC_EPSAM, "PSAM ENCRYPT: %04X", sw);
		}
		n = rc;
	}
	if (n < 0) {
		rc = n;
		goto out_release;
	}
	if ((size_t)n != len) {
		rc = ssc_diag_set(diag, SSC_EPROTO, "PSAM encrypted %d bytes of %zu", n, len);
		goto out_release;
	}
	memcpy(out, resp, len);
	rc = 0;
out_release:
	OPENSSL_cleanse(resp, sizeof(resp));
	return psam_done(p, io, rc, diag);
}

static int psam_terminal_number(struct keyprov *kp, enum ssc_alg alg, char out[13],
				int64_t deadline_ms, struct ssc_diag *diag)
{
	struct psam_kp *p = kp->ctx;
	struct card_io *io = NULL;
	int rc;

	/* The probe read it when the PSAM was inserted: no APDU for it on every read. */
	if (p->src->terminal_number && p->src->terminal_number(p->src->ctx, alg, out) == 0)
		return 0;
	rc = psam_acquire(p, alg, deadline_ms, &io, diag);
	if (rc)
		return rc;
	rc = psam_read_terminal(io, out, diag);
	return psam_done(p, io, rc, diag);
}

static void psam_free(struct keyprov *kp)
{
	free(kp->ctx);
}

static const struct keyprov_ops psam_ops = {
	.name = "psam",
	.available = psam_available,
	.cryptogram = psam_cryptogram,
	.mac = psam_mac,
	.encrypt = psam_encrypt,
	.terminal_number = psam_terminal_number,
	.free = psam_free,
};

int psam_keyprov_new(struct psam_source *src, const struct config *cfg, struct keyprov **out)
{
	struct psam_kp *p = calloc(1, sizeof(*p));

	if (!p)
		return SSC_ENOMEM;
	p->src = src;
	p->cfg = cfg;
	p->kp.ops = &psam_ops;
	p->kp.ctx = p;
	*out = &p->kp;
	return 0;
}
