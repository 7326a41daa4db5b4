/* Evidence kind "aws-nitro" (verifier only): an AWS Nitro Enclaves attestation
 * document, as the Nitro hypervisor's NSM returns it. A COSE_Sign1 (alg ES384,
 * signature R||S of 48 bytes each) whose payload is a CBOR map:
 *   module_id   tstr          the enclave's id
 *   digest      tstr          "SHA384"
 *   timestamp   uint          milliseconds since the epoch
 *   pcrs        {uint => bstr} PCR index 0..31 => value of 32, 48 or 64 bytes
 *   certificate bstr          DER, the key that signed the document
 *   cabundle    [+ bstr]      DER, root first, each signing the next, the last
 *                             signing |certificate|
 *   ? public_key, ? user_data, ? nonce   bstr or null
 * (AWS, "Verifying the root of trust"). The chain must start at the pinned AWS
 * Nitro root; the channel binding is in |nonce| or |user_data|; a debug enclave is
 * recognisable by a PCR0 of zeros. */
#ifndef ALN_ATTESTATION_NITRO_H
#define ALN_ATTESTATION_NITRO_H

#include <stddef.h>
#include <stdint.h>

#include "attestation/appraisal.h"
#include "proto/status.h"

#define ALN_NITRO_KIND "aws-nitro"
/* Real documents are about 4.5 KiB (a 4-certificate bundle, 16 PCRs); this cap
 * leaves room for a longer bundle and the largest optional fields AWS allows. */
#define ALN_NITRO_DOC_MAX 16384
#define ALN_NITRO_PCR_NUM 32
#define ALN_NITRO_PCR_MAX_LEN 64
#define ALN_NITRO_CABUNDLE_MAX 8

/* Where the document carries the channel binding. */
enum aln_nitro_binding {
  ALN_NITRO_BIND_NONCE = 0, /* the default */
  ALN_NITRO_BIND_USER_DATA = 1,
};

/* One allowed value of one PCR. */
struct aln_nitro_pcr {
  unsigned index; /* 0 .. ALN_NITRO_PCR_NUM - 1 */
  const uint8_t *value;
  size_t value_len; /* 32, 48 or 64 */
};

/* The appraisal policy of the "aws-nitro" kind. A zeroed policy binds to the
 * nonce, refuses debug enclaves and trusts the pinned AWS root, but names no PCR,
 * and a policy that names no PCR is refused: it would accept every enclave anyone
 * runs on AWS. */
struct aln_nitro_policy {
  /* Allowed values: every index named here must be in the document and equal one
   * of the values listed for it (several entries for one index are alternatives). */
  const struct aln_nitro_pcr *pcrs;
  size_t num_pcrs;
  int allow_debug; /* accept a PCR0 of zeros (an enclave started in debug mode) */
  enum aln_nitro_binding binding;
  /* The trust anchor, DER; NULL means the pinned AWS Nitro root. Tests swap it. */
  const uint8_t *root_der;
  size_t root_der_len;
};

/* aln_nitro_aws_root_der returns the pinned AWS Nitro Enclaves root certificate
 * (DER, static storage; never free it) and sets *len to its length. */
const uint8_t *aln_nitro_aws_root_der(size_t *len);

/* aln_nitro_verify appraises the attestation document |ev| (|len| bytes, tagged or
 * untagged COSE_Sign1) under |policy| at ctx->now. In order: the strict COSE
 * envelope (alg ES384 only, empty unprotected map); the payload's keys and types
 * (unknown keys refused); cabundle[0] byte-equal to the policy's root and the
 * chain cabundle[0] -> ... -> certificate, every link ECDSA-SHA384 and every
 * certificate valid at ctx->now, verified with OpenSSL against that root alone (no
 * system store); the signature by the certificate's P-384 key; a timestamp no later
 * than now + ctx->max_skew_s; ctx->nonce (if not NULL) equal to the field the
 * policy binds; PCR0 not zeros unless the policy allows debug; the policy's PCRs.
 * On success fills |out| (may be NULL; release with aln_claims_cleanup): kind
 * "aws-nitro", measurement PCR0 in hex, issued_at the timestamp in seconds,
 * expires_at the earliest notAfter of the chain, and detail {module_id, digest,
 * timestamp_ms, pcrs {"<index>": hex}, has_public_key, has_user_data, has_nonce,
 * bound_to}. On refusal |out| is untouched and |why| (may be NULL) says why:
 * ALN_ERR_ATTEST_MALFORMED, _CHAIN, _EXPIRED, _SIG, _BINDING, _DEBUG or _POLICY;
 * ALN_ERR_USAGE for bad arguments or policy, ALN_ERR_NOMEM, ALN_ERR_CRYPTO. */
aln_status aln_nitro_verify(struct aln_claims *out, struct aln_refusal *why, const uint8_t *ev, size_t len,
                            const struct aln_nitro_policy *policy, const struct aln_verify_ctx *ctx) ALN_WUR;

#endif
