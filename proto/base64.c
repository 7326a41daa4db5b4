/* Base64 in constant time: characters are mapped to values and back with masks,
 * not with tables or comparisons that branch, and a decoding error is collected
 * in a mask checked once at the end. Only lengths steer the control flow. */
#include "proto/base64.h"

#include "proto/secmem.h"

/* ct_in_range returns all ones if lo <= c <= hi, else 0 (c, lo, hi < 2^31). */
static uint32_t ct_in_range(uint32_t c, uint32_t lo, uint32_t hi) {
  return 0u - ((((c - lo) | (hi - c)) >> 31) ^ 1u);
}

/* alphabet_tail gives the characters for values 62 and 63, the only ones that
 * differ between the alphabets. */
static aln_status alphabet_tail(uint32_t *c62, uint32_t *c63, enum aln_base64_alphabet alpha) {
  switch (alpha) {
  case ALN_BASE64_STD:
    *c62 = '+';
    *c63 = '/';
    return ALN_OK;
  case ALN_BASE64_URL:
    *c62 = '-';
    *c63 = '_';
    return ALN_OK;
  }
  return ALN_ERR_USAGE;
}

/* b64_char returns the character for the 6-bit value |v|. */
static char b64_char(uint32_t v, uint32_t c62, uint32_t c63) {
  return (char)((ct_in_range(v, 0, 25) & (v + 'A')) | (ct_in_range(v, 26, 51) & (v - 26 + 'a')) |
                (ct_in_range(v, 52, 61) & (v - 52 + '0')) | (ct_in_range(v, 62, 62) & c62) |
                (ct_in_range(v, 63, 63) & c63));
}

/* b64_value returns the 6-bit value of character |c| and sets bits in *bad if |c|
 * is not in the alphabet ('=' never is). */
static uint32_t b64_value(char ch, uint32_t c62, uint32_t c63, uint32_t *bad) {
  uint32_t c = (uint8_t)ch;
  uint32_t up = ct_in_range(c, 'A', 'Z'), low = ct_in_range(c, 'a', 'z'), dig = ct_in_range(c, '0', '9');
  uint32_t is62 = ct_in_range(c, c62, c62), is63 = ct_in_range(c, c63, c63);
  *bad |= ~(up | low | dig | is62 | is63) & 1u;
  return (up & (c - 'A')) | (low & (c - 'a' + 26)) | (dig & (c - '0' + 52)) | (is62 & 62) | (is63 & 63);
}

aln_status aln_base64_encoded_len(size_t *out_len, size_t len, enum aln_base64_alphabet alpha) {
  uint32_t c62, c63;
  ALN_ENSURE(out_len != NULL, ALN_ERR_USAGE);
  ALN_GUARD(alphabet_tail(&c62, &c63, alpha));
  size_t rem = len % 3, n;
  /* A partial group is padded to 4 chars, or without padding takes rem + 1. */
  size_t tail = rem == 0 ? 0 : alpha == ALN_BASE64_STD ? 4 : rem + 1;
  ALN_ENSURE(!__builtin_mul_overflow(len / 3, (size_t)4, &n) && !__builtin_add_overflow(n, tail, &n), ALN_ERR_USAGE);
  ALN_ENSURE(n < SIZE_MAX, ALN_ERR_USAGE); /* room for the NUL */
  *out_len = n;
  return ALN_OK;
}

aln_status aln_base64_encode(char *out, size_t out_cap, size_t *out_len, const uint8_t *in, size_t len,
                             enum aln_base64_alphabet alpha) {
  uint32_t c62, c63;
  size_t n;
  ALN_ENSURE(out != NULL && (in != NULL || len == 0), ALN_ERR_USAGE);
  ALN_GUARD(alphabet_tail(&c62, &c63, alpha));
  ALN_GUARD(aln_base64_encoded_len(&n, len, alpha));
  ALN_ENSURE(out_cap > n, ALN_ERR_USAGE);

  size_t i = 0, o = 0;
  for (; len - i >= 3; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_char(v >> 18, c62, c63);
    out[o++] = b64_char((v >> 12) & 63, c62, c63);
    out[o++] = b64_char((v >> 6) & 63, c62, c63);
    out[o++] = b64_char(v & 63, c62, c63);
  }
  size_t rem = len - i;
  if (rem > 0) {
    uint32_t v = (uint32_t)in[i] << 16 | (rem == 2 ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = b64_char(v >> 18, c62, c63);
    out[o++] = b64_char((v >> 12) & 63, c62, c63);
    if (rem == 2)
      out[o++] = b64_char((v >> 6) & 63, c62, c63);
    while (alpha == ALN_BASE64_STD && o % 4 != 0)
      out[o++] = '=';
  }
  out[o] = '\0';
  if (out_len != NULL)
    *out_len = o;
  return ALN_OK;
}

/* decode_shape checks the length and padding of |in| and gives the decoded size
 * and the number of characters before the padding. Whether the last characters
 * are '=' only says how long the data is, which is not secret. */
static aln_status decode_shape(size_t *out_len, size_t *out_chars, const char *in, size_t len,
                               enum aln_base64_alphabet alpha) {
  size_t pad = 0;
  if (alpha == ALN_BASE64_STD) {
    ALN_ENSURE(len % 4 == 0, ALN_ERR_MALFORMED);
    if (len >= 4 && in[len - 1] == '=')
      pad = in[len - 2] == '=' ? 2 : 1;
  } else {
    /* One leftover char carries 6 bits: no whole byte, so no encoder makes it. */
    ALN_ENSURE(len % 4 != 1, ALN_ERR_MALFORMED);
  }
  size_t chars = len - pad;
  *out_chars = chars;
  *out_len = chars / 4 * 3 + (chars % 4 == 0 ? 0 : chars % 4 - 1);
  return ALN_OK;
}

aln_status aln_base64_decoded_len(size_t *out_len, const char *in, size_t len, enum aln_base64_alphabet alpha) {
  uint32_t c62, c63;
  size_t chars;
  ALN_ENSURE(out_len != NULL && (in != NULL || len == 0), ALN_ERR_USAGE);
  ALN_GUARD(alphabet_tail(&c62, &c63, alpha));
  return decode_shape(out_len, &chars, in, len, alpha);
}

aln_status aln_base64_decode(uint8_t *out, size_t out_cap, size_t *out_len, const char *in, size_t len,
                             enum aln_base64_alphabet alpha) {
  uint32_t c62, c63;
  size_t n, chars;
  ALN_ENSURE(in != NULL || len == 0, ALN_ERR_USAGE);
  ALN_GUARD(alphabet_tail(&c62, &c63, alpha));
  ALN_GUARD(decode_shape(&n, &chars, in, len, alpha));
  ALN_ENSURE(out_cap >= n && (out != NULL || n == 0), ALN_ERR_USAGE);

  /* The bytes go straight to |out|: no intermediate buffer to wipe. */
  uint32_t bad = 0;
  size_t i = 0, o = 0;
  for (; chars - i >= 4; i += 4) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++)
      v = v << 6 | b64_value(in[i + k], c62, c63, &bad);
    out[o++] = (uint8_t)(v >> 16);
    out[o++] = (uint8_t)(v >> 8);
    out[o++] = (uint8_t)v;
  }
  size_t rem = chars - i; /* 0, 2 or 3: decode_shape refused 1 */
  if (rem > 0) {
    uint32_t v = 0;
    for (size_t k = 0; k < rem; k++)
      v = v << 6 | b64_value(in[i + k], c62, c63, &bad);
    /* rem chars hold 6*rem bits for rem-1 bytes; the spare low bits (4 or 2) must
     * be zero, or two spellings would decode to the same bytes. */
    unsigned spare = 6 * (unsigned)rem - 8 * ((unsigned)rem - 1);
    bad |= v & ((1u << spare) - 1);
    v >>= spare;
    for (size_t k = rem - 1; k-- > 0;)
      out[o++] = (uint8_t)(v >> (8 * k));
  }
  if (bad != 0) {
    /* Do not leave a partial secret behind for a caller that ignores the status. */
    aln_wipe(out, n);
    return ALN_ERR_MALFORMED;
  }
  if (out_len != NULL)
    *out_len = n;
  return ALN_OK;
}
