/* TEE providers: where the key-encryption key (KEK) and the evidence come from.
 * One small table of functions per provider; AILERON_TEE_PROVIDER picks one by name.
 * The foundation has "local": a 32-byte KEK in a 0600 file in the data dir and
 * self-signed debug evidence; "tpm" seals the KEK to a TPM 2.0 under a PCR policy.
 * "confidential-space" slots in beside them. */
#ifndef ALN_ENCLAVE_PROVIDER_H
#define ALN_ENCLAVE_PROVIDER_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "attestation/binding.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_KEK_LEN 32

struct aln_epoch_counter;

struct aln_provider {
  const char *name; /* "local" */
  const char *evidence_kind;
  /* kek_load loads (creating on first start) the KEK into locked memory |out|. */
  aln_status (*kek_load)(struct aln_secret *out, const char *data_dir);
  /* kek_file is the file in the data dir that holds the (sealed) KEK. */
  const char *kek_file;
  /* kek_install stores a given KEK (recovery import, or the next KEK of a
   * rotation) in the data dir's |file| the way kek_load reads kek_file: durably,
   * never replacing a file (ALN_ERR_EXISTS). */
  aln_status (*kek_install)(const struct aln_secret *kek, const char *data_dir, const char *file);
  /* kek_read loads the KEK kek_install stored in |file| (never creates one):
   * ALN_ERR_NOT_FOUND if it is not there. */
  aln_status (*kek_read)(struct aln_secret *out, const char *data_dir, const char *file);
  /* evidence produces evidence for |binding| signed/anchored as the kind requires
   * (|data_dir| holds what the kind keeps, such as the TPM's attestation key);
   * *out is freed by the caller with free(). */
  aln_status (*evidence)(uint8_t **out, size_t *out_len, const char *data_dir, EVP_PKEY *sign_key,
                         const uint8_t binding[ALN_BINDING_LEN]);
  /* counter_new, if the provider has a monotonic counter that no restore of files
   * can lower, returns it for the rollback check (aln_epoch_counter_guard); NULL if
   * it has none, and the epoch file alone guards against rollback. */
  aln_status (*counter_new)(struct aln_epoch_counter **out);
  /* For AK enrollment by credential activation (tpm only; NULL elsewhere):
   * tpm_enroll_info returns the EK certificate (DER) and the AK's marshalled
   * TPM2B_PUBLIC in new buffers (free with free()); tpm_activate runs
   * TPM2_ActivateCredential on the marshalled blob and seed into |out|. */
  aln_status (*tpm_enroll_info)(uint8_t **ek_cert, size_t *ek_cert_len, uint8_t **ak_public, size_t *ak_public_len,
                                const char *data_dir);
  aln_status (*tpm_activate)(struct aln_secret *out, const char *data_dir, const uint8_t *blob, size_t blob_len,
                             const uint8_t *seed, size_t seed_len);
};

/* aln_provider_find returns the provider named |name| or NULL if none. */
const struct aln_provider *aln_provider_find(const char *name);

/* aln_local_kek_load is the local provider's kek_load: reads DATA_DIR/kek (exactly 32
 * bytes, mode 0600, owned by us) or creates it with 32 random bytes (O_EXCL, 0600).
 * ALN_ERR_PERMS if the file is readable by group/others, ALN_ERR_STORE if it has
 * the wrong size. Exposed for tests. */
aln_status aln_local_kek_load(struct aln_secret *out, const char *data_dir) ALN_WUR;

/* aln_local_kek_install writes |kek| to DATA_DIR/|file| (0600, O_EXCL). */
aln_status aln_local_kek_install(const struct aln_secret *kek, const char *data_dir, const char *file) ALN_WUR;

/* aln_local_kek_read reads DATA_DIR/|file|: exactly ALN_KEK_LEN bytes, 0600, ours. */
aln_status aln_local_kek_read(struct aln_secret *out, const char *data_dir, const char *file) ALN_WUR;

/* aln_tpm_kek_load is the tpm provider's kek_load: unseals the KEK sealed in
 * DATA_DIR/kek.tpm by the TPM named by AILERON_TPM_TCTI, or on first start seals a
 * new random one under a PolicyPCR policy on AILERON_TPM_PCRS (default sha256:7),
 * checks that it unseals, and writes kek.tpm (0600). ALN_ERR_KEK_POLICY if the PCRs
 * changed since sealing, ALN_ERR_TPM if the TPM fails, ALN_ERR_USAGE for bad
 * settings; kek.tpm is never rewritten or deleted. Prints why to stderr. */
aln_status aln_tpm_kek_load(struct aln_secret *out, const char *data_dir) ALN_WUR;

#endif
