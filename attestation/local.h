/* Evidence kind "local": the dev provider's evidence. A COSE_Sign1 (RFC 9052,
 * alg EdDSA) whose payload is an EAT claims set (RFC 9711) in deterministic CBOR:
 *   10 eat_nonce  bstr .size 32   the channel binding
 *   263 dbgstat   uint = 0        "enabled": debug, no production verifier accepts it
 *   265 eat_profile tstr          "tag:aileron.dev,2026:local-v1"
 *   6 iat         int             issue time, unix seconds
 * signed by the enclave's Ed25519 signing key. It proves nothing about the platform;
 * it exists so the dev stack runs the same channel code as production. */
#ifndef ALN_ATTESTATION_LOCAL_H
#define ALN_ATTESTATION_LOCAL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "attestation/binding.h"
#include "proto/status.h"

#define ALN_LOCAL_EVIDENCE_MAX 4096
#define ALN_LOCAL_PROFILE "tag:aileron.dev,2026:local-v1"

struct aln_local_claims {
  uint8_t nonce[ALN_BINDING_LEN];
  int64_t iat;
  int debug; /* 1 when dbgstat says debug is enabled */
};

/* aln_local_evidence_make signs the claims for |binding| at time |iat| with the
 * Ed25519 key |sign_key| and returns the COSE_Sign1 bytes in *out (caller frees with
 * free()). */
aln_status aln_local_evidence_make(uint8_t **out, size_t *out_len, EVP_PKEY *sign_key,
                                   const uint8_t binding[ALN_BINDING_LEN], int64_t iat) ALN_WUR;

/* aln_local_evidence_verify checks |ev| strictly: size cap before decoding, a
 * tagged or untagged COSE_Sign1 array of four, protected header exactly {1: -8},
 * no unknown critical headers, definite lengths only, no duplicate map keys, no
 * trailing bytes, a valid Ed25519 signature by |sign_pub| (raw 32 bytes) over the
 * Sig_structure, and an eat_nonce equal to |expected_binding| (NULL: not compared,
 * for offline verification without a nonce; out->nonce says what it was). On success fills
 * |out| (may be NULL). Returns ALN_ERR_MALFORMED (shape, or over the size cap),
 * ALN_ERR_TRUNCATED, ALN_ERR_TRAILING, ALN_ERR_USAGE (bad arguments, key not 32
 * bytes), ALN_ERR_ATTEST_SIG or ALN_ERR_ATTEST_BINDING naming what failed. A local
 * claims set must say debug (dbgstat 0), so out->debug is always 1: the caller's
 * policy decides whether debug evidence is acceptable. */
aln_status aln_local_evidence_verify(struct aln_local_claims *out, const uint8_t *ev, size_t ev_len,
                                     const uint8_t *sign_pub, size_t sign_pub_len,
                                     const uint8_t expected_binding[ALN_BINDING_LEN]) ALN_WUR;

#endif
