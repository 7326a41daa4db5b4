/* The verifier's side of AK enrollment: tie an attestation key to the TPM that
 * holds an endorsement key (EK) certified by its manufacturer, by credential
 * activation (TPM 2.0 Part 1 §24, "Credential Protection"):
 *
 *   1. The enclave sends its EK certificate and its AK's public area.
 *   2. The verifier checks the certificate (aln_tpm_ek_cert_verify), checks that the
 *      AK is a restricted signing key fixed to its TPM (aln_tpm_ak_public_ok) and
 *      computes its name (aln_tpm_name), then seals a fresh secret to the EK and that
 *      name (aln_tpm_make_credential).
 *   3. The TPM's TPM2_ActivateCredential gives the secret back only if the object
 *      with that name is loaded in the same TPM as the EK's private key
 *      (enclave/tpm_attest.h, aln_tpm_ak_activate).
 *   4. The verifier compares the secret (CRYPTO_memcmp) and, if it matches, pins the
 *      AK's name in the "tpm" policy (attestation/tpm_quote.h).
 *
 * The EK is one of the TCG EK Credential Profile's default low-range templates: RSA
 * 2048 (L-1) or ECC NIST P-256 (L-2), both with nameAlg SHA-256 and AES-128-CFB,
 * which fix the algorithms the credential is protected with. Nothing here uses the
 * network or a TPM. */
#ifndef ALN_ATTESTATION_TPM_CRED_H
#define ALN_ATTESTATION_TPM_CRED_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "attestation/appraisal.h"
#include "proto/status.h"

/* An EK certificate is a few KiB at most; a bigger one is refused unread. */
#define ALN_TPM_EK_CERT_MAX 8192
/* A credential is at most the digest size of the EK's nameAlg (SHA-256). */
#define ALN_TPM_CREDENTIAL_MAX 32
/* The TCG EK Credential Profile's OID for the EK certificate extended key usage. */
#define ALN_TPM_EK_CERT_EKU "2.23.133.8.1"

/* aln_tpm_kdfa is TPM 2.0's KDFa (Part 1 §11.4.10.2, SP800-108 counter mode with
 * HMAC-SHA-256): |out_len| bytes derived from |key| under |label| (a C string; its
 * terminating NUL is part of the input) and the optional contexts |u| and |v|.
 * ALN_ERR_USAGE for bad arguments, ALN_ERR_CRYPTO if OpenSSL fails. */
aln_status aln_tpm_kdfa(uint8_t *out, size_t out_len, const uint8_t *key, size_t key_len, const char *label,
                        const uint8_t *u, size_t u_len, const uint8_t *v, size_t v_len) ALN_WUR;

/* aln_tpm_kdfe is TPM 2.0's KDFe (Part 1 §11.4.10.3, SP800-56A concatenation KDF
 * with SHA-256): |out_len| bytes from the shared secret |z| under |label| (its NUL
 * included) and the parties' infos |u| and |v|. Errors as aln_tpm_kdfa. */
aln_status aln_tpm_kdfe(uint8_t *out, size_t out_len, const uint8_t *z, size_t z_len, const char *label,
                        const uint8_t *u, size_t u_len, const uint8_t *v, size_t v_len) ALN_WUR;

/* aln_tpm_public_to_pkey returns in *out a new OpenSSL key (free with
 * EVP_PKEY_free) for the RSA or ECC NIST P-256/P-384 public area |pub|.
 * ALN_ERR_USAGE for another type or curve, or a point not on the curve. */
aln_status aln_tpm_public_to_pkey(EVP_PKEY **out, const TPM2B_PUBLIC *pub) ALN_WUR;

/* aln_tpm_ek_cert_verify checks the EK certificate |der| (DER, exactly |der_len|
 * bytes) at time |now|: it must chain to one of the manufacturer CAs in |roots_pem|
 * (a PEM bundle of trust anchors, from the policy), through intermediates found in
 * |intermediates_pem| (a PEM bundle, or NULL); be an end-entity certificate; carry
 * the TCG EK extended key usage if it has one at all; and hold an RSA 2048 or ECC
 * P-256 key. On success *ek (may be NULL) gets a new reference to the EK's public
 * key. ALN_ERR_USAGE for bad arguments or unreadable roots, ALN_ERR_ATTEST_MALFORMED
 * if |der| is not one certificate, ALN_ERR_ATTEST_CHAIN if it does not verify,
 * ALN_ERR_ATTEST_POLICY if it is not an EK certificate, each with a reason in
 * |why| (may be NULL). */
aln_status aln_tpm_ek_cert_verify(EVP_PKEY **ek, struct aln_refusal *why, const uint8_t *der, size_t der_len,
                                  const char *roots_pem, const char *intermediates_pem, int64_t now) ALN_WUR;

/* aln_tpm_make_credential does in software what TPM2_MakeCredential does: it
 * protects |credential| (1..ALN_TPM_CREDENTIAL_MAX bytes) for the object named
 * |ak_name| on the TPM holding the private key of |ek| (an RSA 2048 or ECC P-256 EK
 * public key), and writes the credential blob into |blob| and the encrypted seed
 * into |secret|: a fresh seed, encrypted to the EK (RSA-OAEP-SHA-256 with the label
 * "IDENTITY", or an ephemeral ECDH whose shared secret goes through KDFe), keys the
 * AES-128-CFB encryption of the credential (KDFa "STORAGE", bound to the name) and
 * the HMAC over it and the name (KDFa "INTEGRITY"). ALN_ERR_USAGE for bad
 * arguments or another EK type, ALN_ERR_CRYPTO if OpenSSL fails. */
aln_status aln_tpm_make_credential(TPM2B_ID_OBJECT *blob, TPM2B_ENCRYPTED_SECRET *secret, EVP_PKEY *ek,
                                   const TPM2B_NAME *ak_name, const uint8_t *credential, size_t credential_len) ALN_WUR;

#endif
