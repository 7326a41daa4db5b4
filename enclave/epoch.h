/* Rollback protection for the escrow. The escrow counts its write transactions in a
 * monotonic epoch stored in the database, and its custody writes (those that change
 * which credentials or hosts exist) in a generation; the enclave also keeps the
 * last counts it committed in a small file outside the data directory,
 * authenticated with a key derived from the KEK. At start a database whose counts
 * are below the file's is an older copy (which could bring revoked credentials
 * back) and is refused.
 *
 * File formats, both authenticated with HMAC-SHA256(K_epoch, every byte before the
 * MAC), K_epoch = HMAC-SHA256(KEK, "aileron-epoch-key-v1"), integers big endian:
 *   "ALNEPOC1" || u64 epoch || MAC                              (every provider
 *       without a monotonic counter, e.g. local: ALN_EPOCH_FILE_LEN bytes)
 *   "ALNEPOC2" || u64 epoch || u64 generation || u32 nv_index || u64 base || MAC
 *       (a provider with a monotonic counter, the tpm one: ALN_EPOCH2_FILE_LEN)
 * With only the file, restoring the database and the file from one backup defeats
 * it. A monotonic counter outside the disks (a TPM NV counter, which nothing can
 * lower) closes that: it tracks the generation, counter = base + generation, with
 * base recorded in the ALNEPOC2 file (modulo 2^64), so an older database shows
 * a generation below what the counter vouches for, whatever file came with it. */
#ifndef ALN_ENCLAVE_EPOCH_H
#define ALN_ENCLAVE_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "enclave/escrow.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_EPOCH_MAGIC_LEN 8
#define ALN_EPOCH_MAC_LEN 32
#define ALN_EPOCH_FILE_LEN (ALN_EPOCH_MAGIC_LEN + 8 + ALN_EPOCH_MAC_LEN)
#define ALN_EPOCH2_FILE_LEN (ALN_EPOCH_MAGIC_LEN + 8 + 8 + 4 + 8 + ALN_EPOCH_MAC_LEN)
#define ALN_EPOCH_FILE_MAX ALN_EPOCH2_FILE_LEN

/* aln_epoch_encode writes the file image of |epoch|, authenticated under |kek|, to
 * |out| (exactly ALN_EPOCH_FILE_LEN bytes). */
aln_status aln_epoch_encode(uint8_t out[ALN_EPOCH_FILE_LEN], const struct aln_secret *kek, uint64_t epoch) ALN_WUR;

/* aln_epoch_decode parses the file image |in| into *out. ALN_ERR_TRUNCATED if
 * shorter than ALN_EPOCH_FILE_LEN, ALN_ERR_TRAILING if longer, ALN_ERR_MALFORMED on a
 * wrong magic, ALN_ERR_TAMPERED if the MAC does not verify under |kek| (edited, or
 * written under another KEK). *out is set only on success. */
aln_status aln_epoch_decode(uint64_t *out, const struct aln_secret *kek, const uint8_t *in, size_t in_len) ALN_WUR;

/* aln_epoch_write atomically replaces |path| with the image of |epoch|: a 0600 temp
 * file in the same directory is written and fsynced, renamed over |path|, and the
 * directory is fsynced, so a crash leaves either the old or the new file. */
aln_status aln_epoch_write(const char *path, const struct aln_secret *kek, uint64_t epoch) ALN_WUR;

/* aln_epoch_read reads and authenticates |path| into *out. ALN_ERR_NOT_FOUND if it
 * does not exist, ALN_ERR_PERMS if group/others can access it, else as
 * aln_epoch_decode. */
aln_status aln_epoch_read(uint64_t *out, const char *path, const struct aln_secret *kek) ALN_WUR;

/* One epoch file, either format. */
struct aln_epoch_record {
  int version;         /* 1 (ALNEPOC1) or 2 (ALNEPOC2) */
  uint64_t epoch;      /* the escrow epoch */
  uint64_t generation; /* version 2: the custody generation (<= epoch), else 0 */
  uint32_t nv_index;   /* version 2: the TPM NV index of the counter (0x01xxxxxx), else 0 */
  uint64_t base;       /* version 2: counter value - generation (mod 2^64), else 0 */
};

/* aln_epoch_record_encode writes the file image of |rec| (its version's format),
 * authenticated under |kek|, to |out| (|out_cap| bytes) and its length to
 * *out_len. ALN_ERR_USAGE for an unknown version, a generation above the epoch, an
 * NV index outside 0x01000000..0x01FFFFFF or a version 1 record with version 2
 * fields set, ALN_ERR_TOO_LARGE if |out_cap| is too small. */
aln_status aln_epoch_record_encode(uint8_t *out, size_t out_cap, size_t *out_len, const struct aln_secret *kek,
                                   const struct aln_epoch_record *rec) ALN_WUR;

/* aln_epoch_record_decode parses a file image of either format into *out. As
 * aln_epoch_decode, and ALN_ERR_MALFORMED for a version 2 record whose fields could
 * not have been encoded (generation above the epoch, not an NV index); the MAC is
 * checked before the meaning. *out is set only on success. */
aln_status aln_epoch_record_decode(struct aln_epoch_record *out, const struct aln_secret *kek, const uint8_t *in,
                                   size_t in_len) ALN_WUR;

/* aln_epoch_record_write atomically replaces |path| with the image of |rec|, as
 * aln_epoch_write does. */
aln_status aln_epoch_record_write(const char *path, const struct aln_secret *kek,
                                  const struct aln_epoch_record *rec) ALN_WUR;

/* aln_epoch_record_read reads and authenticates |path|, either format, into *out;
 * statuses as aln_epoch_read. */
aln_status aln_epoch_record_read(struct aln_epoch_record *out, const char *path, const struct aln_secret *kek) ALN_WUR;

/* aln_epoch_rekey re-authenticates the epoch file |path|, either format, from
 * |old_kek| to |new_kek| (a KEK rotation), keeping its record as it is (an
 * ALNEPOC2 file keeps its counter's index and base). Idempotent, for a rotation
 * finished after a crash: a file that already authenticates under |new_kek| is
 * left as it is. ALN_ERR_NOT_FOUND if there is no file, else as
 * aln_epoch_record_read under |old_kek|; the file is unchanged on any error. */
aln_status aln_epoch_rekey(const char *path, const struct aln_secret *old_kek,
                           const struct aln_secret *new_kek) ALN_WUR;

/* What aln_epoch_guard or aln_epoch_counter_guard found, for the operator's
 * message. */
struct aln_epoch_info {
  uint64_t db_epoch;
  uint64_t file_epoch; /* 0 if the file was missing */
  int file_missing;
  /* aln_epoch_counter_guard only. */
  int file_version;            /* 1 or 2; 0 if missing */
  uint64_t db_generation;      /* the database's custody generation */
  uint64_t file_generation;    /* the file's (version 2) */
  uint64_t counter_generation; /* counter - base: the generation the counter vouches for */
  uint32_t nv_index;           /* the counter's */
  uint64_t base;               /* the counter's base, recorded or new */
  int rebased;                 /* accept_risk made a new record from the database */
  char why[400];               /* on failure, the explanation for the operator */
};

/* aln_epoch_guard is the start check: it compares the epoch of |esc| with the file
 * |path| and, if the database is not older, rewrites the file to the database's
 * epoch and installs a commit hook on |esc| that rewrites it after every write (the
 * hook owns a copy of |path| and |kek|, freed with the escrow). Decisions:
 *   file missing, db epoch 0      -> first start: create the file, ALN_OK
 *   file missing, db epoch > 0    -> ALN_ERR_EPOCH_MISSING
 *   file unreadable or bad MAC    -> its aln_epoch_read status (ALN_ERR_TAMPERED...)
 *   file epoch > db epoch         -> ALN_ERR_ROLLBACK (an older database was restored)
 *   db epoch >= file epoch        -> ALN_OK (file = db - 1 is a crash between the
 *                                    commit and the file update, repaired here)
 * |info| (may be NULL) receives both epochs. */
aln_status aln_epoch_guard(struct aln_escrow *esc, struct aln_epoch_info *info, const char *path,
                           const struct aln_secret *kek) ALN_WUR;

/* A monotonic counter kept outside the machine's disks, which no restore of files
 * can lower: the tpm provider's NV counter (enclave/tpm_counter.h), or a fake in
 * tests. Each call may connect to the device; done ends a run of calls (closing
 * the connection). */
struct aln_epoch_counter {
  uint32_t nv_index; /* recorded in the epoch file */
  void *ctx;
  /* read sets *out to the value. ALN_ERR_NOT_FOUND if the counter does not exist,
   * ALN_ERR_TAMPERED if what exists is not a counter this enclave defines (type,
   * attributes, size, policy) or was never incremented. */
  aln_status (*read)(void *ctx, uint64_t *out);
  /* create defines the counter if it does not exist, increments it once if it was
   * never incremented (a TPM counter starts at the highest value any counter of
   * that TPM ever had, so its value is arbitrary) and reads it into *out. A
   * counter that is not one this enclave defines is ALN_ERR_TAMPERED, unchanged. */
  aln_status (*create)(void *ctx, uint64_t *out);
  /* increment adds one to an existing counter. */
  aln_status (*increment)(void *ctx);
  void (*done)(void *ctx);     /* may be NULL; a no-op when nothing is open */
  void (*ctx_free)(void *ctx); /* may be NULL */
};

/* aln_epoch_counter_free releases |c| and its context; NULL is a no-op. */
void aln_epoch_counter_free(struct aln_epoch_counter *c);

/* The largest lag of the counter behind the database that a start brings level on
 * its own. A crash or a failed increment leaves it one behind (the escrow then
 * refuses everything until the increment succeeds); only crashes of two processes
 * writing one escrow (serve and the "host" commands) leave more. Past this
 * something else is wrong. */
#define ALN_EPOCH_COUNTER_MAX_LAG 256

/* aln_epoch_counter_guard is the start check with a monotonic counter |ctr| (it
 * takes ownership of |ctr| on every path). It compares the escrow |esc|, the
 * ALNEPOC2 file |path| and the counter; if they agree it brings the counter and
 * the file level with the database and installs a commit hook that, after each
 * write, first increments the counter to base + the new generation (only after
 * custody writes: audit appends never touch the counter) and then rewrites the
 * file. The hook fails (and the escrow refuses everything until it succeeds) if
 * the increment fails, or if the counter went back or something else moved it
 * ahead. Decisions (d = counter - base, the generation the counter vouches for):
 *   file missing, db epoch 0     -> first start: counter created (or an existing
 *                                    one of ours reused), base = its value
 *   file missing, db written     -> ALN_ERR_EPOCH_MISSING
 *   ALNEPOC1 file                -> ALN_ERR_ROLLBACK if its epoch is above the db's,
 *                                    else ALN_ERR_EPOCH_MISSING (it predates the
 *                                    counter and cannot vouch for the database)
 *   unreadable file, bad MAC     -> its aln_epoch_record_read status
 *   file names another NV index  -> ALN_ERR_USAGE
 *   db epoch or generation below the file's -> ALN_ERR_ROLLBACK
 *   counter gone                 -> ALN_ERR_NOT_FOUND (never silently re-based)
 *   counter not ours / unwritten -> ALN_ERR_TAMPERED (redefined since recorded)
 *   d below the file's generation -> ALN_ERR_TAMPERED (a counter never goes back)
 *   db generation < d            -> ALN_ERR_ROLLBACK (an older database and file)
 *   db generation - d > ALN_EPOCH_COUNTER_MAX_LAG -> ALN_ERR_TPM
 *   db generation >= d           -> ALN_OK, counter incremented to the database's
 *                                    generation (d = db - 1: a crash between the
 *                                    commit and the increment)
 * With |accept_risk| (the operator vouches that this database is the newest), the
 * two ALN_ERR_EPOCH_MISSING cases, and a recorded counter that is gone or not
 * ours (after the file's checks passed: a KEK recovery onto another TPM), start a
 * new record instead: the counter created if need be, base = counter - db
 * generation, info->rebased set. A counter that reads is never overridden. |info|
 * (may be NULL) receives what was found and, on failure, an explanation in
 * info->why. */
aln_status aln_epoch_counter_guard(struct aln_escrow *esc, struct aln_epoch_info *info, const char *path,
                                   const struct aln_secret *kek, struct aln_epoch_counter *ctr,
                                   int accept_risk) ALN_WUR;

#endif
