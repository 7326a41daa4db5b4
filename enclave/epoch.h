/* Rollback protection for the escrow. The escrow counts its write transactions in a
 * monotonic epoch stored in the database; the enclave also keeps the last epoch it
 * committed in a small file outside the data directory, authenticated with a key
 * derived from the KEK. At start a database whose epoch is below the file's is an
 * older copy (which could bring revoked credentials back) and is refused.
 *
 * File format (ALN_EPOCH_FILE_LEN bytes): "ALNEPOC1" || u64 epoch (big endian) ||
 * HMAC-SHA256(K_epoch, magic || epoch), K_epoch = HMAC-SHA256(KEK,
 * "aileron-epoch-key-v1"). With the local provider the file lives on the same
 * machine as the database, so restoring both from one backup defeats it; a TPM NV
 * counter closes that (not built yet). */
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

/* What aln_epoch_guard found, for the operator's message. */
struct aln_epoch_info {
  uint64_t db_epoch;
  uint64_t file_epoch; /* 0 if the file was missing */
  int file_missing;
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

#endif
