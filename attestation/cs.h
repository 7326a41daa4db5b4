/* Evidence kind "confidential-space": a Google Confidential Space attestation
 * token, a JWT (RS256) the Confidential Space launcher obtains from Google Cloud
 * Attestation for the workload. Two flavours, told apart by the header:
 *   PKI  the header's x5c chain ends at the pinned Confidential Space Root CA
 *        (aln_cs_root_pem below, or a root the policy names);
 *   OIDC a kid naming a key of the JWKS the policy supplies (Google publishes it
 *        at the issuer's jwks_uri; verifiers never fetch it themselves).
 *
 * Channel binding: the producer asks for one nonce, the lowercase hex of the
 * binding (attestation/binding.h, 32 bytes = 64 characters); the verifier accepts
 * the token only if eat_nonce (a string, or an array of at most six strings)
 * contains exactly that hex. Hex, not base64, because the launcher echoes nonces
 * as JSON strings and hex has one spelling. Google accepts nonces of 10..74 bytes
 * (older documentation) or 8..88 (newer); both sides keep to 10..74 characters,
 * i.e. a binding of ALN_CS_NONCE_MIN..ALN_CS_NONCE_MAX bytes. */
#ifndef ALN_ATTESTATION_CS_H
#define ALN_ATTESTATION_CS_H

#include <stddef.h>
#include <stdint.h>

#include "attestation/appraisal.h"
#include "attestation/jwt.h"
#include "proto/status.h"

#define ALN_CS_KIND "confidential-space"
#define ALN_CS_ISSUER "https://confidentialcomputing.googleapis.com"
#define ALN_CS_SWNAME "CONFIDENTIAL_SPACE"
#define ALN_CS_DBGSTAT_PROD "disabled-since-boot"
#define ALN_CS_DBGSTAT_DEBUG "enabled"
#define ALN_CS_NONCE_MIN 5  /* bytes of binding: 10 hex characters */
#define ALN_CS_NONCE_MAX 37 /* bytes of binding: 74 hex characters */
#define ALN_CS_EAT_NONCES_MAX 6
#define ALN_CS_AUDIENCE_MAX 512
#define ALN_CS_TEE_SOCKET "/run/container_launcher/teeserver.sock"
#define ALN_CS_MAX_SKEW_S 86400 /* larger ctx->max_skew_s is refused as a usage error */

/* The Confidential Space Root CA ("C=US, ST=California, L=Mountain View, O=Google
 * LLC, OU=Google Cloud, CN=Confidential Space Root CA", valid 2024-01-19 ..
 * 2034-01-16), as published at
 * https://confidentialcomputing.googleapis.com/.well-known/confidential_space_root.crt
 * and identical to the last x5c entry of live PKI tokens. SHA-256 of its DER:
 * 148b293821bb0c6a317f413c8ba475814091cb22d49b9e3c94198db8e8f86c39, which
 * aln_cs_keys_new checks before trusting it. Defined in cs_root.c. */
extern const char aln_cs_root_pem[];
extern const uint8_t aln_cs_root_sha256[32];

/* Reference values and trust for one deployment. Lists are NULL-terminated arrays
 * of strings, compared exactly. */
struct aln_cs_policy {
  const char *audience;                  /* required: aud must equal it (1..512 bytes) */
  const char *const *image_digests;      /* required, non-empty: "sha256:<64 hex>" */
  const char *const *hwmodels;           /* required, non-empty: e.g. "GCP_AMD_SEV", "GCP_INTEL_TDX" */
  const char *const *support_attributes; /* each must be in the token's list (e.g. "STABLE"); NULL: none */
  int allow_debug;                       /* accept dbgstat "enabled" (claims then say debug) */
  const char *root_pem;                  /* PKI trust anchor; NULL: aln_cs_root_pem */
  const char *jwks_json;                 /* OIDC keys; NULL: OIDC tokens are refused */
  /* Prepared trust (aln_cs_keys_new), used instead of root_pem and jwks_json so a
   * long-lived verifier parses them once; NULL: built from them at each call. */
  const struct aln_jwt_keys *keys;
};

/* aln_cs_keys_new builds the key set |policy| names (root_pem or the built-in root,
 * and jwks_json if set) into *out (caller frees with aln_jwt_keys_free).
 * ALN_ERR_USAGE if the root or JWKS is malformed; ALN_ERR_INTERNAL if the built-in
 * root does not match its pinned digest. */
aln_status aln_cs_keys_new(struct aln_jwt_keys **out, const struct aln_cs_policy *policy) ALN_WUR;

/* aln_cs_verify appraises the Confidential Space token in the |len| bytes at |ev|
 * (the compact JWS, nothing around it) under |policy| at ctx->now. Checks, in
 * order: the JWS (jwt.h); iss = ALN_CS_ISSUER; aud = policy->audience (a string);
 * exp, nbf, iat integers with now < exp + skew, nbf <= now + skew, iat <= now +
 * skew; eat_nonce contains the hex of ctx->nonce (skipped when ctx->nonce is NULL,
 * and claims.nonce_checked says so); swname = CONFIDENTIAL_SPACE; dbgstat
 * "disabled-since-boot", or "enabled" only if policy->allow_debug; hwmodel in the
 * policy; secboot true; submods.container.image_digest in the policy; every
 * required support attribute in submods.confidential_space.support_attributes.
 * On success fills |out| (release with aln_claims_cleanup): kind
 * "confidential-space", measurement the image digest, issued_at = iat, expires_at
 * the earlier of exp and the x5c chain's expiry, detail an object with the
 * appraised claims ("token_type" "PKI"/"OIDC", "iss", "aud", "sub", "hwmodel",
 * "swname", "swversion", "dbgstat", "secboot", "image_digest", "image_reference",
 * "support_attributes", "google_service_accounts", "eat_nonce"). On refusal |out|
 * is untouched and |why| names the failed check: ALN_ERR_ATTEST_MALFORMED,
 * _SIG, _CHAIN, _EXPIRED, _BINDING, _DEBUG or _POLICY; ALN_ERR_USAGE for a bad
 * policy or context. */
aln_status aln_cs_verify(struct aln_claims *out, struct aln_refusal *why, const uint8_t *ev, size_t len,
                         const struct aln_cs_policy *policy, const struct aln_verify_ctx *ctx) ALN_WUR;

/* aln_cs_token_request is the producer, run inside the Confidential Space workload:
 * it POSTs {"audience", "nonces": [hex(nonce)], "token_type"} to /v1/token on the
 * launcher's TEE server unix socket |socket_path| (NULL: ALN_CS_TEE_SOCKET) and
 * returns the token in *out (|*out_len| bytes plus a NUL; caller frees with
 * free()). |token_type| is "PKI" or "OIDC"; |audience| 1..ALN_CS_AUDIENCE_MAX
 * bytes; |nonce_len| ALN_CS_NONCE_MIN..MAX. The answer must be 200 with a body of
 * at most ALN_JWT_MAX bytes shaped like a compact JWS (it is not verified here: the
 * host does that). libcurl should be globally initialised by the program first
 * (the enclave does it once); otherwise curl_easy_init does it, not thread-safely.
 * ALN_ERR_USAGE (arguments), ALN_ERR_IO (socket unreachable, timeout),
 * ALN_ERR_UPSTREAM (non-200 answer), ALN_ERR_UPSTREAM_TOO_LARGE,
 * ALN_ERR_ATTEST_MALFORMED (body not a compact JWS), ALN_ERR_NOMEM. */
aln_status aln_cs_token_request(uint8_t **out, size_t *out_len, const char *socket_path, const char *audience,
                                const uint8_t *nonce, size_t nonce_len, const char *token_type) ALN_WUR;

#endif
