/* Evidence kind "tpm": a TPM 2.0 quote (TPM2_Quote) by an attestation key (AK) over
 * chosen PCRs, with the channel binding as qualifying data. The evidence is this
 * container, all lengths big-endian:
 *
 *   "ALNTPMQ1"                 magic, carries the format version
 *   u32 len, TPMS_ATTEST       the exact bytes the AK signed: TPM2B_ATTEST's contents,
 *                              what `tpm2_quote -m` writes
 *   u32 len, TPMT_SIGNATURE    (Tss2_MU) the AK's signature over them (`tpm2_quote -s`)
 *   u32 len, TPM2B_PUBLIC      (Tss2_MU) the AK's public area
 *   u32 len, PCR values        TPML_DIGEST lists (Tss2_MU) back to back: the values of
 *                              the quoted PCRs in the quote's selection order (its
 *                              banks in order, ascending PCR index within a bank), 8
 *                              per list and 1..8 in the last; nothing if the quote
 *                              selects no PCR. (`tpm2_quote -o -F values` writes the
 *                              same digests without the list headers.)
 *
 * Every field must unmarshal to exactly its length and marshal back to the same
 * bytes, so the encoding is canonical and what is appraised is what was signed.
 *
 * A quote proves something only if its AK is tied to a real TPM. The policy names
 * the AKs it trusts by their TPM name (nameAlg || H(TPMT_PUBLIC)): a name is pinned
 * at enrollment, either by an operator who read it from the TPM, or after the AK was
 * certified by the TPM's endorsement key through credential activation against an
 * EK certificate that chains to a manufacturer CA (attestation/tpm_cred.h). A quote
 * by any other key, or by a key that is not a restricted signing key fixed to its
 * TPM, is refused: only a restricted key guarantees that the TPM itself produced
 * the attested data. */
#ifndef ALN_ATTESTATION_TPM_QUOTE_H
#define ALN_ATTESTATION_TPM_QUOTE_H

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "attestation/appraisal.h"
#include "proto/status.h"

#define ALN_TPM_QUOTE_KIND "tpm"
#define ALN_TPM_AK_NAME_LEN 34 /* a SHA-256 TPM name: nameAlg (2) || digest (32) */
#define ALN_TPM_QUOTE_MAGIC "ALNTPMQ1"
#define ALN_TPM_QUOTE_MAGIC_LEN 8
/* A quote over 24 PCRs in 4 banks with an RSA-4096 AK is under 5 KiB. */
#define ALN_TPM_QUOTE_MAX 16384
/* The most PCR values a container may carry: 24 PCRs in each of four banks. */
#define ALN_TPM_PCR_VALUES_MAX 96
#define ALN_TPM_PCR_INDEX_MAX 31

/* A decoded container. attest_raw holds the signed bytes; attest is their parse. */
struct aln_tpm_quote {
  TPM2B_ATTEST attest_raw;
  TPMS_ATTEST attest;
  TPMT_SIGNATURE sig;
  TPM2B_PUBLIC ak;
  size_t num_pcr_values;
  TPM2B_DIGEST pcr_values[ALN_TPM_PCR_VALUES_MAX];
};

/* One PCR the policy appraises and the values it allows. */
struct aln_tpm_pcr_ref {
  TPMI_ALG_HASH bank; /* TPM2_ALG_SHA1, _SHA256, _SHA384 or _SHA512 */
  uint8_t index;      /* 0..ALN_TPM_PCR_INDEX_MAX */
  const uint8_t *values;
  size_t num_values; /* allowed digests, each the bank's digest size, back to back */
};

/* The "tpm" kind's appraisal policy. Both lists must be non-empty: a policy that
 * trusts no AK or appraises no PCR would accept nothing, or anything. */
struct aln_tpm_policy {
  const TPM2B_NAME *ak_names; /* the enrolled AKs (SHA-256 names, 34 bytes) */
  size_t num_ak_names;
  const struct aln_tpm_pcr_ref *pcrs; /* each must be quoted with an allowed value */
  size_t num_pcrs;
};

/* aln_tpm_attest_parse parses |len| bytes at |p| (the signed contents of a
 * TPM2B_ATTEST) into |out|: they must unmarshal to exactly |len| bytes and marshal
 * back to the same bytes, carry the magic TPM_GENERATED_VALUE, be of type
 * TPM_ST_ATTEST_QUOTE, and hold a valid clock "safe" flag. ALN_ERR_TRUNCATED if the
 * bytes end early, ALN_ERR_TRAILING if bytes follow, ALN_ERR_MALFORMED otherwise;
 * |out| is zeroed on failure. */
aln_status aln_tpm_attest_parse(TPMS_ATTEST *out, const uint8_t *p, size_t len) ALN_WUR;

/* aln_tpm_quote_decode parses the container |ev| into |out| (shape only: no
 * signature, trust or policy check). Besides the field checks above, the PCR values
 * must number exactly the PCRs the quote selects, each of its bank's digest size,
 * and a bank may be selected once only. ALN_ERR_TOO_LARGE past ALN_TPM_QUOTE_MAX,
 * ALN_ERR_TRUNCATED, ALN_ERR_TRAILING or ALN_ERR_MALFORMED; |out| is zeroed on
 * failure. */
aln_status aln_tpm_quote_decode(struct aln_tpm_quote *out, const uint8_t *ev, size_t len) ALN_WUR;

/* aln_tpm_quote_encode writes the container for |q| (its attest_raw, sig, ak and
 * PCR values; q->attest is ignored) into a new buffer *out of *out_len bytes (free
 * with free()). ALN_ERR_USAGE if the result would not pass aln_tpm_quote_decode. */
aln_status aln_tpm_quote_encode(uint8_t **out, size_t *out_len, const struct aln_tpm_quote *q) ALN_WUR;

/* aln_tpm_ak_public_ok returns 1 if |pub| can be an attestation key: a restricted
 * signing key (never a decryption key) that cannot leave its TPM (fixedTPM,
 * fixedParent) and whose private part the TPM generated (sensitiveDataOrigin), with
 * a SHA-256 name, being ECC NIST P-256 (scheme ECDSA-SHA256 or NULL) or RSA 2048 to
 * 4096 (RSASSA or RSAPSS with SHA-256, or NULL); else 0. */
int aln_tpm_ak_public_ok(const TPM2B_PUBLIC *pub);

/* aln_tpm_hash_len returns the digest size of the PCR bank / hash |alg| (SHA-1,
 * SHA-256, SHA-384, SHA-512), 0 for any other; aln_tpm_hash_name its name
 * ("sha256"...), NULL for any other. */
size_t aln_tpm_hash_len(TPMI_ALG_HASH alg);
const char *aln_tpm_hash_name(TPMI_ALG_HASH alg);

/* aln_tpm_name computes the TPM name of |pub| (nameAlg || H_nameAlg(TPMT_PUBLIC))
 * into |out|. ALN_ERR_USAGE for a nameAlg other than SHA-1/256/384/512 or a public
 * area that does not marshal. */
aln_status aln_tpm_name(TPM2B_NAME *out, const TPM2B_PUBLIC *pub) ALN_WUR;

/* aln_tpm_quote_verify appraises the evidence |ev| (the container above) under
 * |policy| and |ctx|, with the interface of attestation/appraisal.h. In order: the
 * size cap, the container's shape (aln_tpm_quote_decode), the AK (a restricted
 * signing key, aln_tpm_ak_public_ok, whose name is in the policy), its signature
 * over the TPMS_ATTEST bytes (ECDSA P-256, RSASSA or RSAPSS, SHA-256, matching the
 * key), the qualifying data against ctx->nonce (when not NULL), the quote's PCR
 * digest against the SHA-256 of the supplied PCR values, and those values against
 * the policy. Statuses: ALN_ERR_USAGE (bad arguments or policy),
 * ALN_ERR_ATTEST_MALFORMED (over the cap, truncated, padded, a wrong magic or type,
 * any shape fault), ALN_ERR_ATTEST_CHAIN (the AK is not a restricted signing key,
 * or not enrolled), ALN_ERR_ATTEST_SIG (a bad signature, or PCR values that are not
 * the ones the signed digest covers), ALN_ERR_ATTEST_BINDING (another nonce),
 * ALN_ERR_ATTEST_POLICY (a PCR the policy names is not quoted or holds a value it
 * does not allow).
 *
 * Claims: kind "tpm"; measurement the quote's PCR digest (lowercase hex); debug 0,
 * because a TPM quote says nothing about debug modes (the PCRs the policy appraises
 * must measure them); issued_at and expires_at 0 (a quote carries no wall time);
 * detail {"pcrs": {"sha256:7": hex, ...}, "ak_name": hex, "qualified_signer": hex,
 * "signature": "ecdsa-sha256"|"rsassa-sha256"|"rsapss-sha256", "clock": {"clock_ms",
 * "reset_count", "restart_count", "safe"}, "firmware_version": "0x<16 hex>",
 * "debug": why it is 0}. reset_count, restart_count and firmware_version are the
 * TPM's own only for an AK in the endorsement or platform hierarchy; the TPM
 * obfuscates them for other keys. */
aln_status aln_tpm_quote_verify(struct aln_claims *out, struct aln_refusal *why, const uint8_t *ev, size_t len,
                                const struct aln_tpm_policy *policy, const struct aln_verify_ctx *ctx) ALN_WUR;

#endif
