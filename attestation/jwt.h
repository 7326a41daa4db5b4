/* A strict verifier for compact JWS tokens (RFC 7515/7519) signed with RS256, the
 * form Confidential Space attestation tokens take. It checks structure and
 * signature only; what the claims mean is the caller's business (attestation/cs.h).
 *
 * Accepted: exactly three base64url segments (no padding, canonical spelling), each
 * under its size cap before anything is decoded; a header and payload that are JSON
 * objects without duplicate keys, nested at most ALN_JWT_JSON_DEPTH_MAX deep;
 * alg "RS256" and nothing else (so "none", the HS* MACs keyed with a public key,
 * and EC/PSS algorithms are all refused); typ absent or "JWT"; no crit (this
 * verifier implements no extension); no jku, jwk or x5u (keys named by the token
 * itself are never trusted). The signing key is either
 *   - the leaf of the header's x5c chain (standard base64 DER, leaf first), which
 *     must chain to a pinned root at the time given, with no system store; a kid,
 *     if present, must be the leaf key's RFC 7638 thumbprint (as Google's are), or
 *   - the RSA key of a configured JWKS whose kid the header names.
 * RSA keys are 2048..4096 bits. A token with x5c is only ever checked against the
 * pinned roots, never against the JWKS. */
#ifndef ALN_ATTESTATION_JWT_H
#define ALN_ATTESTATION_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "attestation/appraisal.h"
#include "proto/status.h"

/* Encoded segment caps, checked before decoding. A real PKI token's header (three
 * certificates in x5c) is about 8.7 KiB encoded and its payload under 2 KiB; the
 * caps leave room for a longer chain and a workload with many env variables. */
#define ALN_JWT_HEADER_B64_MAX 16384
#define ALN_JWT_PAYLOAD_B64_MAX 16384
#define ALN_JWT_SIG_MAX 512     /* bytes: RSA-4096 */
#define ALN_JWT_SIG_B64_MAX 683 /* base64url of ALN_JWT_SIG_MAX bytes */
#define ALN_JWT_MAX (ALN_JWT_HEADER_B64_MAX + ALN_JWT_PAYLOAD_B64_MAX + ALN_JWT_SIG_B64_MAX + 2)
#define ALN_JWT_JSON_DEPTH_MAX 8 /* CS claims nest 4 deep: {submods:{container:{env:{}}}} */
#define ALN_JWT_X5C_MAX 4        /* certificates in x5c */
#define ALN_JWT_CERT_MAX 4096    /* DER bytes of one x5c certificate */
#define ALN_JWT_KID_MAX 128
#define ALN_JWT_RSA_MIN_BITS 2048
#define ALN_JWT_RSA_MAX_BITS 4096
#define ALN_JWKS_MAX 65536   /* bytes of one JWKS document */
#define ALN_JWKS_KEYS_MAX 16 /* RSA keys kept across all JWKS added */
#define ALN_JWT_ROOT_PEM_MAX 16384

/* What token signatures are checked against: pinned roots for x5c tokens and/or
 * JWKS keys. Opaque; immutable once built, so one set may serve many threads. */
struct aln_jwt_keys;

/* aln_jwt_keys_new returns an empty key set in *out (caller frees with
 * aln_jwt_keys_free). */
aln_status aln_jwt_keys_new(struct aln_jwt_keys **out) ALN_WUR;

/* aln_jwt_keys_free releases |k|; NULL is a no-op. */
void aln_jwt_keys_free(struct aln_jwt_keys *k);

/* aln_jwt_keys_add_root_pem pins the one CA certificate in the |pem_len| bytes of
 * |pem| as a trust anchor for x5c chains. ALN_ERR_USAGE if it is not exactly one
 * PEM certificate of a CA, or is over ALN_JWT_ROOT_PEM_MAX bytes. */
aln_status aln_jwt_keys_add_root_pem(struct aln_jwt_keys *k, const char *pem, size_t pem_len) ALN_WUR;

/* aln_jwt_keys_add_jwks adds the RSA signing keys of the JWKS document (RFC 7517)
 * in |json|. Keys of another kty, or whose "use" or "alg" say they are not RS256
 * signing keys, are skipped. ALN_ERR_USAGE for a malformed document, an RSA key
 * without a kid, with a non-canonical n or e, an even or tiny exponent, a modulus
 * outside 2048..4096 bits, a kid seen before, more than ALN_JWKS_KEYS_MAX keys, or
 * a document with no usable key. On error |k| is unchanged. */
aln_status aln_jwt_keys_add_jwks(struct aln_jwt_keys *k, const char *json, size_t len) ALN_WUR;

enum aln_jwt_key_source {
  ALN_JWT_KEY_JWKS = 1, /* an OIDC token: a JWKS key named by kid */
  ALN_JWT_KEY_X5C = 2,  /* a PKI token: the x5c leaf, chained to a pinned root */
};

/* A token that verified. */
struct aln_jwt {
  json_t *header; /* the protected header, an object (owned) */
  json_t *claims; /* the payload, an object (owned) */
  enum aln_jwt_key_source source;
  int64_t chain_not_after;       /* x5c: earliest notAfter of the verified chain; else 0 */
  char kid[ALN_JWT_KID_MAX + 1]; /* the header's kid, "" if none */
};

/* aln_jwt_verify checks the compact JWS in the |tok_len| bytes at |tok| as the
 * file comment says, judging x5c certificates at unix time |now|, and on success
 * fills |out| (release with aln_jwt_cleanup). On failure |out| is untouched and
 * |why| (may be NULL) says what failed: ALN_ERR_ATTEST_MALFORMED (shape, size,
 * encoding, JSON, header parameters), ALN_ERR_ATTEST_SIG (alg other than RS256,
 * missing or wrong signature), ALN_ERR_ATTEST_CHAIN (unknown kid, no key of the
 * needed kind, chain not to a pinned root or not valid at |now|), ALN_ERR_USAGE
 * (NULL arguments), ALN_ERR_NOMEM. */
aln_status aln_jwt_verify(struct aln_jwt *out, struct aln_refusal *why, const char *tok, size_t tok_len,
                          const struct aln_jwt_keys *keys, int64_t now) ALN_WUR;

/* aln_jwt_cleanup releases what |j| holds and zeroes it; safe on a zeroed value. */
void aln_jwt_cleanup(struct aln_jwt *j);

/* aln_jwt_json_parse parses the |len| bytes at |p| as one JSON object the way the
 * verifier parses a header or payload: duplicate keys refused, nesting at most
 * |depth_max|, no NUL in strings. Returns the new object in *out (caller decrefs),
 * or ALN_ERR_MALFORMED. The JWKS loader parses its documents the same way. */
aln_status aln_jwt_json_parse(json_t **out, const uint8_t *p, size_t len, size_t depth_max) ALN_WUR;

#endif
