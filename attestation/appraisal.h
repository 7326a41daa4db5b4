/* The small interface every evidence kind's verifier shares (attestation/<kind>.h):
 *
 *   aln_status aln_<kind>_verify(struct aln_claims *out, struct aln_refusal *why,
 *                                const uint8_t *evidence, size_t evidence_len,
 *                                const struct aln_<kind>_policy *policy,
 *                                const struct aln_verify_ctx *ctx);
 *
 * It either returns ALN_OK with the appraised claims in |out|, or a status of the
 * ALN_ERR_ATTEST* family with a precise, bounded reason in |why| (never secret
 * material, never unbounded attacker text). A kind's policy holds its reference
 * values (allowed measurements or image digests, PCR values, minimum TCB, whether
 * debug is allowed) and its pinned trust roots; the host loads policies from one YAML
 * file (attestation/policy.h). Verifiers never use the network. */
#ifndef ALN_ATTESTATION_APPRAISAL_H
#define ALN_ATTESTATION_APPRAISAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

#define ALN_KIND_MAX 24
#define ALN_MEASUREMENT_HEX_MAX 160
#define ALN_REFUSAL_MAX 256

/* What the verifier of one kind checks the evidence against besides its policy. */
struct aln_verify_ctx {
  /* The expected nonce: the channel binding (attestation/binding.h) on a live
   * channel, or what an operator passes to `aileron evidence verify --nonce`. NULL:
   * not checked (offline verification of saved evidence without a nonce), and the
   * claims say so. */
  const uint8_t *nonce;
  size_t nonce_len;
  int64_t now;           /* unix seconds the evidence and its certificates are judged at */
  int64_t max_skew_s;    /* tolerance for issue/expiry times from clocks elsewhere */
  const char *certs_dir; /* extra certificates supplied beside the evidence, or NULL */
  /* The enclave's signing key (raw Ed25519, from AttestResponse): the "local" kind
   * is signed by it; other kinds carry it inside the binding. NULL if unknown. */
  const uint8_t *signing_key;
  size_t signing_key_len;
  /* TPM attestation keys (34-byte SHA-256 names, back to back) the host has tied
   * to a manufacturer-certified EK by credential activation on this channel; the
   * tpm kind trusts them beside the ones its policy pins. */
  const uint8_t *tpm_ak_names;
  size_t num_tpm_ak_names;
};

/* The appraised claims of evidence that verified. */
struct aln_claims {
  char kind[ALN_KIND_MAX];                       /* "sev-snp", "aws-nitro", ... */
  int debug;                                     /* the platform reports debug (now or since boot) */
  int nonce_checked;                             /* 0 when ctx->nonce was NULL */
  char measurement[ALN_MEASUREMENT_HEX_MAX + 1]; /* the kind's main reference value, lowercase hex
                                                  * (or "sha256:<hex>" for an image digest) */
  int64_t issued_at;                             /* 0 if the evidence has none */
  int64_t expires_at;                            /* 0 if none (earliest expiry of it and its chain) */
  json_t *detail;                                /* kind-specific appraised claims, an object (owned) */
};

/* Why evidence was refused: |status| is the same one the verifier returned. */
struct aln_refusal {
  aln_status status;
  char why[ALN_REFUSAL_MAX];
};

/* aln_claims_cleanup releases |c|'s detail and zeroes it; safe on a zeroed value. */
void aln_claims_cleanup(struct aln_claims *c);

/* aln_refuse fills |r| (may be NULL) with |st| and a printf-style reason (truncated
 * to ALN_REFUSAL_MAX - 1 bytes, every byte outside printable ASCII replaced by '?')
 * and returns |st|, so a verifier writes
 *   return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "MEASUREMENT %s not allowed", hex); */
aln_status aln_refuse(struct aln_refusal *r, aln_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* aln_claims_to_json renders |c| as {"kind","debug","nonce_checked","measurement",
 * "issued_at","expires_at","detail"} (a new reference). */
json_t *aln_claims_to_json(const struct aln_claims *c);

#endif
