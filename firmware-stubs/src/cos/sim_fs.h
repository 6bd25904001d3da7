/*
 * This file contains the card's file system: MF, SSSE and DF01-DF05 with their record files
 * (spec §2, §12.4, §12.7), built from a profile, and the record operations on them (find by number
 * or tag, update with padding, append to a cyclic file).
 */
#ifndef SIM_FS_H
#define SIM_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_profile.h"

#define SIM_REC_MAX 0x33   /* the longest record value of v1 (DF04/EF08) */
#define SIM_DF_MAXEF 8

enum sim_fmt { SIM_FMT_CN = 0, SIM_FMT_AN, SIM_FMT_B };

enum sim_df_id { SIM_DF_MF = 0, SIM_DF_SSSE, SIM_DF_DF01, SIM_DF_DF02, SIM_DF_DF03, SIM_DF_DF04,
		 SIM_DF_DF05, SIM_NDF };

/* One record: Tag Len Value, the value always len bytes long (padded). */
struct sim_rec {
	uint8_t tag, len, fmt;
	uint8_t val[SIM_REC_MAX];
};

struct sim_ef {
	uint16_t fid;
	uint8_t sfi;
	bool cyclic;            /* appended with APPEND RECORD; record 1 is the newest */
	int write_slot;         /* key slot whose EXTERNAL AUTH allows writes, or -1: STK MAC only */
	int read_slot;          /* key slot whose EXTERNAL AUTH allows reads, or -1: free */
	uint8_t cyc_tag, cyc_len, cyc_fmt;   /* the record shape of a cyclic file */
	int nrec;               /* records present */
	int cap;                /* records the file can hold */
	struct sim_rec *rec;    /* cap entries, owned */
};

struct sim_df {
	const char *name;       /* "MF", "SSSE", "DF01".. as in state files and the API */
	uint16_t fid;           /* 0 for SSSE, which is selected by name only */
	uint8_t aid[16];
	size_t aid_len;
	int nef;
	struct sim_ef ef[SIM_DF_MAXEF];
};

struct sim_fs {
	struct sim_df df[SIM_NDF];
};

/* Builds the file system with the profile's initial records. Returns 0 or -ENOMEM. */
int sim_fs_init(struct sim_fs *fs, const struct sim_card_profile *cp);

/* Frees the records; the structure may then be initialised again. Safe on a zeroed fs. */
void sim_fs_done(struct sim_fs *fs);

/* The DF whose name / AID equals (name, len) exactly, or -1. */
int sim_fs_df_by_name(const struct sim_fs *fs, const uint8_t *name, size_t len);

/* The DF with file id fid, or -1. */
int sim_fs_df_by_fid(const struct sim_fs *fs, uint16_t fid);

/* The EF of df with file id fid / short file id sfi, or NULL. */
struct sim_ef *sim_fs_ef_by_fid(struct sim_fs *fs, int df, uint16_t fid);
struct sim_ef *sim_fs_ef_by_sfi(struct sim_fs *fs, int df, uint8_t sfi);

/* Record number n (1-based) or, by_tag, the first record with tag n; NULL when absent. */
struct sim_rec *sim_fs_record(struct sim_ef *ef, bool by_tag, uint8_t n);

/* Sets rec's value to the n bytes val (n <= rec->len), padded per its format (cn F, an/b 00). */
void sim_fs_set_value(struct sim_rec *rec, const uint8_t *val, size_t n);

/*
 * Appends to a cyclic file: the records shift (the oldest drops when full) and the new one,
 * with the n bytes val padded, becomes record 1. Returns 0, or -1 when ef is not cyclic.
 */
int sim_fs_append(struct sim_ef *ef, const uint8_t *val, size_t n);

#endif
