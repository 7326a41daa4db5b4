/* The "tpm" provider's evidence, enclave side: an attestation key (AK) kept in
 * DATA_DIR/ak.tpm beside kek.tpm, TPM2 quotes by it over chosen PCRs with the
 * channel binding as qualifying data (attestation/tpm_quote.h is the container and
 * its verifier), and the TPM half of AK enrollment: the EK's public area and
 * certificate, and TPM2_ActivateCredential (attestation/tpm_cred.h is the
 * verifier's half).
 *
 * The AK is an ECC NIST P-256 restricted signing key with the fixed scheme
 * ECDSA-SHA256, fixedTPM and fixedParent, created by the TPM (so it can sign only
 * what the TPM itself attests) under a primary storage key of the endorsement
 * hierarchy. That parent is derived from the endorsement seed by a fixed template
 * (the same key on every start, nothing persisted but ak.tpm); being in the
 * endorsement hierarchy, the TPM reports its real reset and restart counts and
 * firmware version in quotes, which it obfuscates for keys of the owner hierarchy,
 * and clearing the owner hierarchy does not lose the AK. ak.tpm:
 *
 *   "ALNTPMA1"                 magic, carries the format version
 *   u32 len, TPM2B_PUBLIC      (Tss2_MU) the AK's public area
 *   u32 len, TPM2B_PRIVATE     (Tss2_MU) its private, wrapped by the parent
 *
 * It is not secret (only this TPM can load it) but is read as untrusted: exact
 * field lengths, nothing after, and a public area that aln_tpm_ak_public_ok
 * accepts. It is created on first use (0600, never overwritten); a file that no
 * longer loads (the endorsement seed changed) is kept and reported, never replaced,
 * because the AK's name is what verifiers enrolled.
 *
 * The EK is made on demand from the TCG EK Credential Profile's default templates,
 * RSA 2048 (L-1, certificate at NV index 0x01C00002) or ECC NIST P-256 (L-2, at
 * 0x01C0000A), and used only to activate credentials. Every function connects to
 * the TPM named by AILERON_TPM_TCTI (enclave/provider_tpm.h) and disconnects before
 * it returns, assumes empty endorsement and owner authorizations, and prints why to
 * stderr on failure. */
#ifndef ALN_ENCLAVE_TPM_ATTEST_H
#define ALN_ENCLAVE_TPM_ATTEST_H

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "attestation/binding.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_TPM_AK_FILE "ak.tpm"
#define ALN_TPM_AK_BLOB_MAGIC "ALNTPMA1"
#define ALN_TPM_AK_BLOB_MAGIC_LEN 8
#define ALN_TPM_AK_BLOB_MAX 4096
#define ALN_TPM_EK_CERT_NV_RSA 0x01C00002u
#define ALN_TPM_EK_CERT_NV_ECC 0x01C0000Au

struct aln_tpm_ak_blob {
  TPM2B_PUBLIC pub;
  TPM2B_PRIVATE priv;
};

/* aln_tpm_ak_blob_encode marshals |b| into a new buffer *out of *out_len bytes
 * (free with free()). ALN_ERR_USAGE if |b| would not pass aln_tpm_ak_blob_decode. */
aln_status aln_tpm_ak_blob_encode(uint8_t **out, size_t *out_len, const struct aln_tpm_ak_blob *b) ALN_WUR;

/* aln_tpm_ak_blob_decode parses ak.tpm's |len| bytes at |data| into |out|.
 * ALN_ERR_TOO_LARGE past ALN_TPM_AK_BLOB_MAX, ALN_ERR_MALFORMED for a wrong magic, a
 * field that does not unmarshal to exactly its length, or a public area that is not
 * an AK, ALN_ERR_TRUNCATED, ALN_ERR_TRAILING; |out| is zeroed on failure. */
aln_status aln_tpm_ak_blob_decode(struct aln_tpm_ak_blob *out, const uint8_t *data, size_t len) ALN_WUR;

/* aln_tpm_ak_public writes the AK's public area into |out|, creating
 * DATA_DIR/ak.tpm first if it does not exist. Its name (aln_tpm_name) is what a
 * verifier enrolls. ALN_ERR_TPM if the TPM fails or ak.tpm does not load,
 * ALN_ERR_MALFORMED if ak.tpm is not an AK blob, ALN_ERR_USAGE for bad arguments. */
aln_status aln_tpm_ak_public(const char *data_dir, TPM2B_PUBLIC *out) ALN_WUR;

/* aln_tpm_quote_make quotes the PCRs of |pcrs| (banks sha1, sha256, sha384 or
 * sha512, each at most once, at most ALN_TPM_PCR_VALUES_MAX PCRs in all) with the
 * AK of |data_dir| (created if needed) and |binding| as qualifying data, reads the
 * PCRs' values, and returns the container of attestation/tpm_quote.h in a new
 * buffer *out of *out_len bytes (free with free()). If a PCR changes between the
 * quote and the read it tries again, a few times. ALN_ERR_USAGE for a bad
 * selection, ALN_ERR_TPM if the TPM fails or does not quote the selected banks. */
aln_status aln_tpm_quote_make(const char *data_dir, uint8_t **out, size_t *out_len,
                              const uint8_t binding[ALN_BINDING_LEN], const TPML_PCR_SELECTION *pcrs) ALN_WUR;

/* aln_tpm_ek_public creates the EK of type |alg| (TPM2_ALG_RSA or TPM2_ALG_ECC)
 * from its default template and writes its public area into |out|. ALN_ERR_USAGE
 * for another type, ALN_ERR_TPM if the TPM fails. */
aln_status aln_tpm_ek_public(TPM2B_PUBLIC *out, TPMI_ALG_PUBLIC alg) ALN_WUR;

/* aln_tpm_ek_cert_read reads the certificate of the EK of type |alg| from its NV
 * index into a new buffer *out of *out_len bytes (free with free()): the DER
 * certificate, without the padding some TPMs store after it. ALN_ERR_NOT_FOUND if
 * the index is not defined, ALN_ERR_TOO_LARGE past ALN_TPM_EK_CERT_MAX,
 * ALN_ERR_TPM if the TPM fails, ALN_ERR_USAGE for another type. */
aln_status aln_tpm_ek_cert_read(uint8_t **out, size_t *out_len, TPMI_ALG_PUBLIC alg) ALN_WUR;

/* aln_tpm_ak_activate runs TPM2_ActivateCredential with the AK of |data_dir| as
 * the credentialed object and the EK of type |ek_alg| as the key the verifier
 * encrypted to (aln_tpm_make_credential), and returns the credential in the new
 * secret |out|. The EK is authorized by PolicySecret(TPM_RH_ENDORSEMENT), the AK
 * through an HMAC session salted by the owner's storage key that also encrypts the
 * credential on its way back from the TPM. ALN_ERR_ATTEST_CHAIN if the TPM refuses
 * the blob or seed (made for another object or EK, or altered), ALN_ERR_TPM for
 * other TPM failures, ALN_ERR_USAGE for bad arguments; |out| is empty on failure. */
aln_status aln_tpm_ak_activate(const char *data_dir, struct aln_secret *out, TPMI_ALG_PUBLIC ek_alg,
                               const TPM2B_ID_OBJECT *blob, const TPM2B_ENCRYPTED_SECRET *secret) ALN_WUR;

#endif
