/* Base64 (RFC 4648) for both programs: the standard alphabet with '=' padding
 * (JSON fields such as secret_b64) and the unpadded base64url form (session
 * tokens). Decoding is strict, so every byte string has exactly one accepted
 * spelling: no whitespace, no padding except where the standard form requires it,
 * and unused bits of the last character zero. Both directions run in time
 * independent of the bytes (no secret-indexed table, no branch on a secret byte),
 * since they carry credentials; only lengths, which are public, steer them. */
#ifndef ALN_PROTO_BASE64_H
#define ALN_PROTO_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

enum aln_base64_alphabet {
  ALN_BASE64_STD, /* RFC 4648 §4: A-Z a-z 0-9 + /, padded to a multiple of 4 with '=' */
  ALN_BASE64_URL, /* RFC 4648 §5: A-Z a-z 0-9 - _, never padded */
};

/* aln_base64_encoded_len sets *out_len to the number of characters (without the
 * NUL) that encoding |len| bytes in |alpha| produces. ALN_ERR_USAGE if that count
 * plus a NUL does not fit in a size_t or |alpha| is unknown. */
aln_status aln_base64_encoded_len(size_t *out_len, size_t len, enum aln_base64_alphabet alpha) ALN_WUR;

/* aln_base64_encode writes the encoding of the |len| bytes at |in| and a NUL into
 * |out|, which must have room for aln_base64_encoded_len + 1 chars, and sets
 * *out_len (may be NULL) to the number of chars before the NUL. ALN_ERR_USAGE if
 * |out_cap| is too small, the length overflows or an argument is NULL; |out| is
 * then untouched. */
aln_status aln_base64_encode(char *out, size_t out_cap, size_t *out_len, const uint8_t *in, size_t len,
                             enum aln_base64_alphabet alpha) ALN_WUR;

/* aln_base64_decoded_len checks the length and padding shape of the |len| chars at
 * |in| and sets *out_len to the number of bytes they decode to. It does not look
 * at the other characters: aln_base64_decode does. ALN_ERR_MALFORMED if the shape
 * is wrong (standard: length not a multiple of 4; url: length 1 mod 4). */
aln_status aln_base64_decoded_len(size_t *out_len, const char *in, size_t len, enum aln_base64_alphabet alpha) ALN_WUR;

/* aln_base64_decode decodes the |len| chars at |in| straight into |out| (which may
 * be locked memory; no copy of the bytes is made elsewhere) and sets *out_len (may
 * be NULL) to the byte count, aln_base64_decoded_len's answer. ALN_ERR_MALFORMED
 * for a character outside |alpha|, misplaced or missing padding, or non-zero
 * unused bits; ALN_ERR_USAGE if |out_cap| is smaller than the decoded length or an
 * argument is NULL. On any error nothing decoded is left in |out|. */
aln_status aln_base64_decode(uint8_t *out, size_t out_cap, size_t *out_len, const char *in, size_t len,
                             enum aln_base64_alphabet alpha) ALN_WUR;

#endif
