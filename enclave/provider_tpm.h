/* The "tpm" provider's pieces that need no TPM: the PCR selection syntax of
 * AILERON_TPM_PCRS and the codec of DATA_DIR/kek.tpm, the sealed KEK blob:
 *
 *   "ALNTPMK1"                      magic, carries the format version
 *   u32 len, TPM2B_PUBLIC          (Tss2_MU marshalled) the sealed object's public
 *   u32 len, TPM2B_PRIVATE         (Tss2_MU marshalled) its private, wrapped by the TPM
 *   u32 len, TPML_PCR_SELECTION    (Tss2_MU marshalled) the PCRs of its policy
 *
 * The blob is not secret (only the TPM that made it can load it) but it is read
 * from disk, so the decoder treats it as untrusted: each field must unmarshal to
 * exactly its length, nothing may follow, and the meaning is checked (a sealed data
 * object only a policy can open, bound to this TPM, under one SHA-256 PCR bank). */
#ifndef ALN_ENCLAVE_PROVIDER_TPM_H
#define ALN_ENCLAVE_PROVIDER_TPM_H

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tpm2_types.h>

#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_TPM_BLOB_MAGIC "ALNTPMK1"
#define ALN_TPM_BLOB_MAGIC_LEN 8
/* Far above a real blob (about 250 bytes) and far below anything worth reading. */
#define ALN_TPM_BLOB_MAX 4096
#define ALN_TPM_PCRS_DEFAULT "sha256:7"

/* ALN_TPM_GET_FIELD reads from the bounded cursor |cbs| one u32-prefixed field that
 * the Tss2_MU unmarshaller of |type| must consume exactly, into |dst|; a returning
 * guard (ALN_ERR_MALFORMED) otherwise. The unmarshallers are themselves bounded by
 * the length passed. For the decoders of files that hold TPM structures. */
#define ALN_TPM_GET_FIELD(cbs, type, dst)                                                                              \
  do {                                                                                                                 \
    struct aln_cbs f_;                                                                                                 \
    size_t off_ = 0;                                                                                                   \
    ALN_GUARD(aln_cbs_get_u32_prefixed((cbs), &f_));                                                                   \
    ALN_ENSURE(f_.len > 0 && Tss2_MU_##type##_Unmarshal(f_.p, f_.len, &off_, (dst)) == TSS2_RC_SUCCESS &&              \
                   off_ == f_.len,                                                                                     \
               ALN_ERR_MALFORMED);                                                                                     \
  } while (0)

struct aln_tpm_blob {
  TPM2B_PUBLIC pub;
  TPM2B_PRIVATE priv;
  TPML_PCR_SELECTION pcrs;
};

/* aln_tpm_pcrs_parse parses |spec| ("sha256:" then distinct PCR indices 0..23 in
 * decimal without leading zeros, separated by single commas, e.g. "sha256:0,7")
 * into |out|. ALN_ERR_USAGE for anything else: another bank, spaces, empty items,
 * duplicates, out-of-range indices. */
aln_status aln_tpm_pcrs_parse(TPML_PCR_SELECTION *out, const char *spec) ALN_WUR;

/* aln_tpm_quote_pcrs parses the PCRs a quote covers into |out|:
 * AILERON_TPM_QUOTE_PCRS, else AILERON_TPM_PCRS, else ALN_TPM_PCRS_DEFAULT.
 * ALN_ERR_USAGE if the one chosen is not valid. */
aln_status aln_tpm_quote_pcrs(TPML_PCR_SELECTION *out) ALN_WUR;

/* aln_tpm_pcrs_format writes |sel| in the syntax aln_tpm_pcrs_parse reads into
 * |out| (at most |out_cap| bytes, NUL included). ALN_ERR_USAGE if it does not fit or
 * |sel| is not a single SHA-256 selection. */
aln_status aln_tpm_pcrs_format(char *out, size_t out_cap, const TPML_PCR_SELECTION *sel) ALN_WUR;

/* aln_tpm_blob_encode marshals |b| into a new buffer *out of *out_len bytes (free
 * with free()). ALN_ERR_USAGE if |b| would not pass aln_tpm_blob_decode. */
aln_status aln_tpm_blob_encode(uint8_t **out, size_t *out_len, const struct aln_tpm_blob *b) ALN_WUR;

/* aln_tpm_blob_decode parses |len| bytes at |data| into |out|. ALN_ERR_TOO_LARGE
 * past ALN_TPM_BLOB_MAX, ALN_ERR_MALFORMED for a wrong magic or a field that does
 * not unmarshal to exactly its length or fails the checks above, ALN_ERR_TRUNCATED
 * if it ends early, ALN_ERR_TRAILING if bytes follow. */
aln_status aln_tpm_blob_decode(struct aln_tpm_blob *out, const uint8_t *data, size_t len) ALN_WUR;

/* aln_tpm_kek_install seals the given |kek| (ALN_KEK_LEN bytes, e.g. recovered
 * from a recovery file, or the next KEK of a rotation) to the TPM named by
 * AILERON_TPM_TCTI under a PolicyPCR policy on AILERON_TPM_PCRS, checks that it
 * unseals to the same value, and writes DATA_DIR/|file| (0600), exactly as
 * aln_tpm_kek_load does on first start. ALN_ERR_EXISTS if the file is already there
 * (it is never replaced), ALN_ERR_TPM if the TPM fails, ALN_ERR_USAGE for bad
 * arguments or settings. */
aln_status aln_tpm_kek_install(const struct aln_secret *kek, const char *data_dir, const char *file) ALN_WUR;

/* aln_tpm_kek_read unseals the KEK sealed in DATA_DIR/|file| (never makes one):
 * ALN_ERR_NOT_FOUND if the file is not there; otherwise as aln_tpm_kek_load. */
aln_status aln_tpm_kek_read(struct aln_secret *out, const char *data_dir, const char *file) ALN_WUR;

/* An open connection to the TPM named by AILERON_TPM_TCTI, for the enclave's other
 * TPM users (the rollback counter, enclave/tpm_counter.h): the ESYS context over
 * its TCTI and the owner hierarchy's primary storage key, which salts sessions. */
struct aln_tpm_conn {
  TSS2_TCTI_CONTEXT *tcti;
  ESYS_CONTEXT *esys;
  ESYS_TR primary;
};

/* aln_tpm_conn_open connects to the TPM named by AILERON_TPM_TCTI and creates the
 * primary storage key the KEK is sealed under (the same key every time), printing
 * why to stderr on failure. ALN_ERR_USAGE if the variable is unset, ALN_ERR_TPM if
 * the TPM fails; on failure |c| holds nothing. Close with aln_tpm_conn_close. */
aln_status aln_tpm_conn_open(struct aln_tpm_conn *c) ALN_WUR;

/* aln_tpm_conn_session starts an HMAC session salted by the primary key into *out
 * (AES-128-CFB parameter encryption in the directions of |crypt|, 0 for none). The
 * salt is encrypted to the primary key, so only the TPM and we know the session
 * key: its response HMACs prove that answers come from the TPM, not from something
 * on the bus (as far as the primary key the TPM reported is its own: it is not yet
 * checked against an EK certificate). The caller flushes it with
 * Esys_FlushContext; on failure *out is ESYS_TR_NONE. */
aln_status aln_tpm_conn_session(struct aln_tpm_conn *c, ESYS_TR *out, TPMA_SESSION crypt) ALN_WUR;

/* aln_tpm_conn_close flushes the primary key and closes the connection; a zeroed or
 * already closed |c| is a no-op. */
void aln_tpm_conn_close(struct aln_tpm_conn *c);

#endif
