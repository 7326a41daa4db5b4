/* The tpm provider's rollback anchor: a TPM 2.0 NV counter (TPM_NT_COUNTER) that
 * tracks the escrow's custody generation (enclave/epoch.h). A TPM counter only
 * goes up, and a counter defined anew starts at or above the highest value any
 * counter of that TPM ever had, so restoring an older database together with its
 * older epoch file shows a generation below what the counter vouches for.
 *
 * The index is AILERON_TPM_NV_INDEX (default ALN_TPM_NV_INDEX_DEFAULT), in the
 * TCG registry's owner range 0x01800000..0x01BFFFFF; one index per enclave (two
 * enclaves sharing one would each see the other's increments as a rollback). Its
 * attributes, ALN_TPM_COUNTER_ATTRS, let only the owner hierarchy increment it
 * (empty owner auth assumed, as by the KEK sealing) and anyone read it; it is not
 * orderly (an orderly counter is kept in RAM and jumps ahead after a power loss,
 * which would look like a rollback), has no policy (so its auth cannot be changed)
 * and is exempt from dictionary-attack lockout (so a lockout cannot stop starts). */
#ifndef ALN_ENCLAVE_TPM_COUNTER_H
#define ALN_ENCLAVE_TPM_COUNTER_H

#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "enclave/epoch.h"
#include "proto/status.h"

#define ALN_TPM_NV_INDEX_DEFAULT 0x01A1E000u
#define ALN_TPM_NV_INDEX_MIN 0x01800000u
#define ALN_TPM_NV_INDEX_MAX 0x01BFFFFFu
#define ALN_TPM_COUNTER_ATTRS                                                                                          \
  ((TPMA_NV)((TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA))

/* aln_tpm_nv_index_parse parses |s| ("0x" and 1 to 8 hex digits) into *out.
 * ALN_ERR_USAGE for anything else or an index outside ALN_TPM_NV_INDEX_MIN..MAX. */
aln_status aln_tpm_nv_index_parse(uint32_t *out, const char *s) ALN_WUR;

/* aln_tpm_counter_public_ok returns 1 if |pub| is the public area of the counter
 * this enclave defines at |nv_index| (TPMA_NV_WRITTEN aside): a counter of 8 bytes,
 * SHA-256 name, exactly ALN_TPM_COUNTER_ATTRS, no policy; else 0. */
int aln_tpm_counter_public_ok(const TPMS_NV_PUBLIC *pub, uint32_t nv_index);

/* aln_tpm_counter_new returns in *out a counter (enclave/epoch.h) on the NV index
 * named by AILERON_TPM_NV_INDEX, for aln_epoch_counter_guard; free it with
 * aln_epoch_counter_free. It does not touch the TPM: each run of calls connects to
 * the one named by AILERON_TPM_TCTI and |done| disconnects, so the TPM (a swtpm
 * socket, or /dev/tpm0 without a resource manager) is never held between writes.
 * Every command goes through an HMAC session salted by the owner's primary storage
 * key, so a value read, or an increment acknowledged, comes from the TPM and not
 * from something between it and us; the session's HMACs also cover the index's
 * name, binding the public area we checked to the index the TPM used. Prints why
 * to stderr on failure. ALN_ERR_USAGE for a bad setting. */
aln_status aln_tpm_counter_new(struct aln_epoch_counter **out) ALN_WUR;

#endif
