/* KEK rotation, and finishing or undoing an interrupted one at start.
 *
 * The KEK lives in the provider's file in the data dir (kek for local, kek.tpm
 * sealed for tpm); the escrow stores the id of the KEK its records are wrapped
 * under (escrow_state.h). A rotation is:
 *   1. the new KEK is written, durably, beside the old one as <kek_file>.next;
 *   2. one escrow transaction re-wraps every data key under it and moves the
 *      stored KEK id (aln_escrow_rotate_kek): the commit is the rotation;
 *   3. the epoch file (keyed by the KEK) is re-keyed;
 *   4. <kek_file>.next is renamed over <kek_file>.
 * Interrupted anywhere, the escrow's KEK id names exactly one of the two files'
 * keys, and aln_kek_open_escrow finishes (steps 3-4) or undoes (removes .next)
 * accordingly: every credential stays usable under exactly one KEK. */
#ifndef ALN_ENCLAVE_KEK_ROTATE_H
#define ALN_ENCLAVE_KEK_ROTATE_H

#include <stdint.h>

#include "enclave/escrow.h"
#include "enclave/provider.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_KEK_NEXT_SUFFIX ".next"

/* What aln_kek_open_escrow did about a rotation it found in progress. */
enum aln_kek_recovery {
  ALN_KEK_NO_ROTATION,       /* no <kek_file>.next */
  ALN_KEK_ROTATION_UNDONE,   /* it had not committed: .next removed, old KEK kept */
  ALN_KEK_ROTATION_FINISHED, /* it had committed: .next became the KEK */
};

/* aln_kek_open_escrow loads the provider's KEK (creating it on first start), opens
 * the escrow at |db_path| with |flags| and, if a rotation was interrupted, finishes
 * or undoes it. On success *esc_out is open, |kek_out| (locked) holds the KEK the
 * escrow uses, |old_kek_out| (may be NULL) the KEK it replaced when a rotation was
 * finished (empty otherwise: the caller re-keys the epoch file with it), and
 * *recovery says what happened. ALN_ERR_KEK_MISMATCH if neither file's KEK opens
 * the escrow. */
aln_status aln_kek_open_escrow(struct aln_escrow **esc_out, struct aln_secret *kek_out, struct aln_secret *old_kek_out,
                               enum aln_kek_recovery *recovery, const struct aln_provider *prov, const char *data_dir,
                               const char *db_path, unsigned flags) ALN_WUR;

/* aln_kek_rotate runs steps 1-4 on an escrow |esc| opened under |kek| (which is
 * replaced by the new KEK on success): the new KEK is sealed by |prov| into
 * <kek_file>.next, the escrow re-wraps |*num_out| data keys under it, |rekey|
 * (may be NULL) moves whatever else is keyed by the KEK (the epoch file) while both
 * keys are known, and .next is renamed over the KEK file. A failure before the
 * escrow commits removes .next and changes nothing; after it, the next
 * aln_kek_open_escrow finishes the job. */
typedef aln_status (*aln_kek_rekey_fn)(void *ctx, const struct aln_secret *old_kek, const struct aln_secret *new_kek);
aln_status aln_kek_rotate(struct aln_escrow *esc, struct aln_secret *kek, uint64_t *num_out,
                          const struct aln_provider *prov, const char *data_dir, aln_kek_rekey_fn rekey,
                          void *rekey_ctx) ALN_WUR;

/* aln_data_dir_lock takes a lock on DATA_DIR/lock (created 0600), held until *fd_out
 * is closed (or the process exits): shared for the serving enclave and the host
 * commands, which may run side by side (the escrow reloads what the other
 * committed), |exclusive| for the commands that change the KEK (rotation, recovery
 * import), which must never run beside an enclave that keeps the old KEK in
 * memory. ALN_ERR_EXISTS if a conflicting lock is held; it never waits. */
aln_status aln_data_dir_lock(int *fd_out, const char *data_dir, int exclusive) ALN_WUR;

#endif
