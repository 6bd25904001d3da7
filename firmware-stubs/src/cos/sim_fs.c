/*
 * This file contains the card's file system: the fixed tree of MF, SSSE (EF05, EF06, EF0D on
 * generation 3) and DF01-DF05 (DF04's medical files of §12.7), personalised from the profile's
 * encoded items, and the record primitives the card commands use.
 */
#include "sim_fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* DF name of SSSE: "sx1.sh.社会保障" in GBK (§2). */
static const uint8_t ssse_name[15] = { 0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9,
				       0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF };

static struct sim_ef *add_ef(struct sim_df *df, uint16_t fid, int write_slot, int cap)
{
	struct sim_ef *ef = &df->ef[df->nef++];

	ef->fid = fid;
	ef->sfi = (uint8_t)(fid & 0x1F);
	ef->write_slot = write_slot;
	ef->read_slot = -1;
	ef->cap = cap;
	ef->rec = cap > 0 ? calloc((size_t)cap, sizeof(*ef->rec)) : NULL;
	return ef;
}

static void add_rec(struct sim_ef *ef, uint8_t tag, uint8_t fmt, const uint8_t *val, size_t len)
{
	struct sim_rec *r = &ef->rec[ef->nrec++];

	r->tag = tag;
	r->fmt = fmt;
	r->len = (uint8_t)len;
	memcpy(r->val, val, len);
}

static void add_df(struct sim_fs *fs, int i, const char *name, uint16_t fid, const uint8_t *aid,
		   size_t aid_len)
{
	fs->df[i].name = name;
	fs->df[i].fid = fid;
	if (aid_len > 0)
		memcpy(fs->df[i].aid, aid, aid_len);
	fs->df[i].aid_len = aid_len;
}

/* An EF of a DF whose records v1 leaves optional: present, empty (READ -> 6A83). */
static int add_empty_efs(struct sim_df *df, const uint16_t *fids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		add_ef(df, fids[i], -1, 0);
	return 0;
}

int sim_fs_init(struct sim_fs *fs, const struct sim_card_profile *cp)
{
	static const char *const dfnames[5] = { "DF01", "DF02", "DF03", "DF04", "DF05" };
	static const uint16_t df01[] = { 0xEF05, 0xEF06, 0xEF07, 0xEF08, 0xEF09, 0xEF0A, 0xEF15 };
	static const uint16_t df02[] = { 0xEF05, 0xEF06, 0xEF07, 0xEF09, 0xEF15, 0xEF16 };
	static const uint16_t df03[] = { 0xEF05, 0xEF06, 0xEF07, 0xEF15 };
	struct sim_ef *ef;
	struct sim_df *d;
	uint8_t aid[6] = { 0xD1, 0x56, 0x00, 0x00, 0x05, 0x00 };
	int i;

	memset(fs, 0, sizeof(*fs));
	add_df(fs, SIM_DF_MF, "MF", 0x3F00, NULL, 0);
	add_df(fs, SIM_DF_SSSE, "SSSE", 0, ssse_name, sizeof(ssse_name));
	for (i = 0; i < 5; i++) {
		aid[5] = (uint8_t)i;
		add_df(fs, SIM_DF_DF01 + i, dfnames[i], (uint16_t)(0xDF01 + i), aid, sizeof(aid));
	}

	/* SSSE/EF05: record n holds tag n (§2.2). */
	d = &fs->df[SIM_DF_SSSE];
	ef = add_ef(d, 0xEF05, SIM_KEY_EXT_AUTH, 7);
	if (ef->rec == NULL)
		goto out_nomem;
	add_rec(ef, 0x01, SIM_FMT_B, cp->card_id, 16);
	add_rec(ef, 0x02, SIM_FMT_AN, cp->card_type, 1);
	add_rec(ef, 0x03, SIM_FMT_AN, cp->spec_version, 4);
	add_rec(ef, 0x04, SIM_FMT_AN, cp->init_org, 12);
	add_rec(ef, 0x05, SIM_FMT_CN, cp->issue_date, 4);
	add_rec(ef, 0x06, SIM_FMT_CN, cp->expiry_date, 4);
	add_rec(ef, 0x07, SIM_FMT_AN, cp->card_number, 9);

	/* SSSE/EF06 (§2.3): generation 1 has no 姓名扩展, so 性别 is record 3 there. */
	ef = add_ef(d, 0xEF06, SIM_KEY_EXT_AUTH, 7);
	if (ef->rec == NULL)
		goto out_nomem;
	if (cp->q.ef06_read_auth)
		ef->read_slot = SIM_KEY_READ_AUTH;
	add_rec(ef, 0x08, SIM_FMT_AN, cp->ssn, 18);
	add_rec(ef, 0x09, SIM_FMT_AN, cp->name, 30);
	if (cp->generation >= 2)
		add_rec(ef, 0x4E, SIM_FMT_AN, cp->name_ext, 20);
	add_rec(ef, 0x0A, SIM_FMT_AN, cp->sex, 1);
	add_rec(ef, 0x0B, SIM_FMT_CN, cp->nation, 1);
	add_rec(ef, 0x0C, SIM_FMT_CN, cp->birth_place, 3);
	add_rec(ef, 0x0D, SIM_FMT_CN, cp->birth_date, 4);

	/* SSSE/EF0D (§2.4), generation 3 only. */
	if (cp->generation == 3) {
		ef = add_ef(d, 0xEF0D, SIM_KEY_EF0D, 2);
		if (ef->rec == NULL)
			goto out_nomem;
		add_rec(ef, 0xEA, SIM_FMT_AN, cp->person_id, 12);
		add_rec(ef, 0xEB, SIM_FMT_CN, cp->first_region, 3);
	}

	add_empty_efs(&fs->df[SIM_DF_DF01], df01, sizeof(df01) / sizeof(df01[0]));
	add_empty_efs(&fs->df[SIM_DF_DF02], df02, sizeof(df02) / sizeof(df02[0]));
	add_empty_efs(&fs->df[SIM_DF_DF03], df03, sizeof(df03) / sizeof(df03[0]));

	/* DF04 (§12.7): every file is written with the STK MAC only. */
	d = &fs->df[SIM_DF_DF04];
	ef = add_ef(d, 0xEF05, -1, 5);
	if (ef->rec == NULL)
		goto out_nomem;
	add_rec(ef, 0x30, SIM_FMT_CN, cp->med_region, 3);
	add_rec(ef, 0x31, SIM_FMT_AN, cp->med_category, 2);
	add_rec(ef, 0x32, SIM_FMT_AN, cp->med_person_no, 20);
	add_rec(ef, 0x33, SIM_FMT_AN, cp->med_institution, 12);
	add_rec(ef, 0x34, SIM_FMT_AN, cp->med_relocated, 1);
	ef = add_ef(d, 0xEF06, -1, 1);
	if (ef->rec == NULL)
		goto out_nomem;
	add_rec(ef, 0x41, SIM_FMT_B, cp->med_offline, 1);
	ef = add_ef(d, 0xEF08, -1, cp->txn_cap);
	if (ef->rec == NULL)
		goto out_nomem;
	ef->cyclic = true;
	ef->cyc_tag = 0x40;
	ef->cyc_len = SIM_TXN_LEN;
	ef->cyc_fmt = SIM_FMT_B;
	for (i = 0; i < cp->txn_count && i < cp->txn_cap; i++)
		add_rec(ef, 0x40, SIM_FMT_B, cp->txn[i], SIM_TXN_LEN);
	/* DF05 has no file v1 knows of. */
	return 0;
out_nomem:
	sim_fs_done(fs);
	return -ENOMEM;
}

void sim_fs_done(struct sim_fs *fs)
{
	int i, j;

	for (i = 0; i < SIM_NDF; i++) {
		for (j = 0; j < fs->df[i].nef; j++) {
			struct sim_ef *ef = &fs->df[i].ef[j];

			if (ef->rec != NULL)
				memset(ef->rec, 0, (size_t)ef->cap * sizeof(*ef->rec));
			free(ef->rec);
			ef->rec = NULL;
		}
		fs->df[i].nef = 0;
	}
}

int sim_fs_df_by_name(const struct sim_fs *fs, const uint8_t *name, size_t len)
{
	int i;

	for (i = 0; i < SIM_NDF; i++)
		if (fs->df[i].aid_len > 0 && fs->df[i].aid_len == len &&
		    memcmp(fs->df[i].aid, name, len) == 0)
			return i;
	return -1;
}

int sim_fs_df_by_fid(const struct sim_fs *fs, uint16_t fid)
{
	int i;

	for (i = 0; i < SIM_NDF; i++)
		if (fs->df[i].fid != 0 && fs->df[i].fid == fid)
			return i;
	return -1;
}

struct sim_ef *sim_fs_ef_by_fid(struct sim_fs *fs, int df, uint16_t fid)
{
	int j;

	if (df < 0 || df >= SIM_NDF)
		return NULL;
	for (j = 0; j < fs->df[df].nef; j++)
		if (fs->df[df].ef[j].fid == fid)
			return &fs->df[df].ef[j];
	return NULL;
}

struct sim_ef *sim_fs_ef_by_sfi(struct sim_fs *fs, int df, uint8_t sfi)
{
	int j;

	if (df < 0 || df >= SIM_NDF)
		return NULL;
	for (j = 0; j < fs->df[df].nef; j++)
		if (fs->df[df].ef[j].sfi == sfi)
			return &fs->df[df].ef[j];
	return NULL;
}

struct sim_rec *sim_fs_record(struct sim_ef *ef, bool by_tag, uint8_t n)
{
	int i;

	if (!by_tag)
		return n >= 1 && n <= ef->nrec ? &ef->rec[n - 1] : NULL;
	for (i = 0; i < ef->nrec; i++)
		if (ef->rec[i].tag == n)
			return &ef->rec[i];
	return NULL;
}

void sim_fs_set_value(struct sim_rec *rec, const uint8_t *val, size_t n)
{
	if (n > rec->len)
		n = rec->len;
	memcpy(rec->val, val, n);
	memset(rec->val + n, rec->fmt == SIM_FMT_CN ? 0xFF : 0x00, rec->len - n);
}

int sim_fs_append(struct sim_ef *ef, const uint8_t *val, size_t n)
{
	int keep;

	if (!ef->cyclic || ef->cap < 1)
		return -1;
	keep = ef->nrec < ef->cap ? ef->nrec : ef->cap - 1;
	memmove(&ef->rec[1], &ef->rec[0], (size_t)keep * sizeof(*ef->rec));
	ef->nrec = keep + 1;
	ef->rec[0].tag = ef->cyc_tag;
	ef->rec[0].len = ef->cyc_len;
	ef->rec[0].fmt = ef->cyc_fmt;
	sim_fs_set_value(&ef->rec[0], val, n);
	return 0;
}
