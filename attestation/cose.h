/* COSE_Sign1 (RFC 9052 §4.2) as the evidence kinds here use it, decoded strictly
 * and shared by every kind that carries one ("local", "aws-nitro"). A caller names
 * the one algorithm it accepts and the size cap; the decoder refuses everything a
 * lax decoder would let through: indefinite lengths, duplicate map keys, tags
 * other than the outer 18, unknown or critical headers, trailing bytes. It also
 * builds the Sig_structure both signers and verifiers hash, and exposes the strict
 * CBOR loader the kinds decode their (signed) payloads with. */
#ifndef ALN_ATTESTATION_COSE_H
#define ALN_ATTESTATION_COSE_H

#include <cbor.h>
#include <stddef.h>
#include <stdint.h>

#include "attestation/appraisal.h"
#include "proto/cbs.h"
#include "proto/status.h"

#define ALN_COSE_ALG_EDDSA (-8)  /* RFC 9053 §2.2 */
#define ALN_COSE_ALG_ES384 (-35) /* RFC 9053 §2.1: ECDSA P-384 with SHA-384 */

/* The deepest nesting aln_cose_cbor_load accepts (a caller asks for at most this). */
#define ALN_COSE_DEPTH_MAX 4

/* What one evidence kind accepts of a COSE_Sign1. */
struct aln_cose_profile {
  int64_t alg;           /* the only algorithm the protected header may name */
  size_t sig_len;        /* the exact signature length |alg| produces */
  size_t max_len;        /* size cap on the whole message, applied before any decoding */
  int allow_unprotected; /* 0: the unprotected map must be empty; else any strict map */
};

/* A decoded COSE_Sign1: views into the caller's message (not copied, not owned). */
struct aln_cose_sign1 {
  const uint8_t *protected_hdr; /* the bstr's content: the bytes the signature covers */
  size_t protected_len;
  const uint8_t *unprotected; /* the encoded map (a single 0xa0 when empty) */
  size_t unprotected_len;
  const uint8_t *payload;
  size_t payload_len;
  const uint8_t *sig;
  size_t sig_len;
};

/* aln_cose_sign1_decode checks |msg| against |profile| and on success points |out|
 * into it. Accepted: at most profile->max_len bytes (checked first); the one-byte
 * tag 18 or no tag; a definite array of four; a protected header that is exactly the
 * deterministic encoding of {1: profile->alg} (so crit and every other label are
 * refused: nothing here understands them); an unprotected map as the profile
 * allows; a non-empty payload bstr; a signature bstr of profile->sig_len bytes;
 * definite lengths, no duplicate map keys, nothing after the array. It does not
 * verify the signature. Returns ALN_ERR_MALFORMED (shape, or over the cap),
 * ALN_ERR_TRUNCATED, ALN_ERR_TRAILING, ALN_ERR_NOMEM or ALN_ERR_USAGE, and fills
 * |why| (may be NULL) with that status and what was wrong. */
aln_status aln_cose_sign1_decode(struct aln_cose_sign1 *out, struct aln_refusal *why, const uint8_t *msg,
                                 size_t msg_len, const struct aln_cose_profile *profile) ALN_WUR;

/* aln_cose_protected_encode appends the deterministic protected header {1: alg}
 * (the content of the bstr, not the bstr) to |cbb|. */
aln_status aln_cose_protected_encode(struct aln_cbb *cbb, int64_t alg) ALN_WUR;

/* aln_cose_sig_structure appends ["Signature1", protected, h'', payload] (RFC 9052
 * §4.4, no external AAD), the bytes a COSE_Sign1 signature is computed over, to
 * |cbb|. ALN_ERR_TOO_LARGE if it does not fit. */
aln_status aln_cose_sig_structure(struct aln_cbb *cbb, const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                                  size_t payload_len) ALN_WUR;

/* aln_cose_sign1_encode appends 18([{1: alg}, {}, payload, sig]) to |cbb|: the one
 * encoding aln_cose_sign1_decode is written around. */
aln_status aln_cose_sign1_encode(struct aln_cbb *cbb, int64_t alg, const uint8_t *payload, size_t payload_len,
                                 const uint8_t *sig, size_t sig_len) ALN_WUR;

/* aln_cose_cbor_load decodes |p| into a new libcbor tree in *out (the caller
 * releases it with cbor_decref) only if it is exactly one item with definite
 * lengths, no tags, nesting at most |max_depth| (<= ALN_COSE_DEPTH_MAX), and maps
 * whose keys are integers or text strings, none repeated. The bytes are checked by a
 * streaming scan before libcbor allocates anything, so a declared count the input
 * cannot hold is refused rather than preallocated. Returns ALN_ERR_TRUNCATED,
 * ALN_ERR_TRAILING, ALN_ERR_MALFORMED, ALN_ERR_NOMEM or ALN_ERR_USAGE. Callers cap
 * |len| first. */
aln_status aln_cose_cbor_load(cbor_item_t **out, const uint8_t *p, size_t len, size_t max_depth) ALN_WUR;

/* Typed views of a loaded item; each returns ALN_ERR_MALFORMED on any other type.
 * aln_cose_cbor_int reads an integer that fits int64_t; aln_cose_cbor_uint an
 * unsigned one; _bstr and _tstr borrow a string's bytes from |it| (NULL when empty). */
aln_status aln_cose_cbor_int(const cbor_item_t *it, int64_t *out) ALN_WUR;
aln_status aln_cose_cbor_uint(const cbor_item_t *it, uint64_t *out) ALN_WUR;
aln_status aln_cose_cbor_bstr(const cbor_item_t *it, const uint8_t **p, size_t *len) ALN_WUR;
aln_status aln_cose_cbor_tstr(const cbor_item_t *it, const uint8_t **p, size_t *len) ALN_WUR;

/* aln_cose_cbor_is_null returns 1 if |it| is the simple value null, else 0. Use it
 * instead of libcbor's cbor_is_null, which before 0.10 aborts on a float. */
int aln_cose_cbor_is_null(const cbor_item_t *it);

#endif
