/* Tests for proto/base64: the RFC 4648 §10 vectors in both alphabets; every
 * character maps to its value; round trips of random bytes for every length
 * 0..64, checked against OpenSSL's encoder as an independent oracle; and the
 * refusals that make each byte string have exactly one accepted spelling: bad
 * characters, the other alphabet's characters, whitespace, wrong lengths, missing,
 * extra or misplaced padding, non-zero unused bits. Size errors (output one byte
 * too small, encoded length overflowing size_t) leave the output untouched, and a
 * failed decode leaves nothing decoded behind. Buffers are malloc'ed at their exact
 * size so that ASan catches a write one past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "proto/base64.h"

static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* encode_ok encodes |in| into an exactly sized heap buffer and checks the text. */
static void encode_ok(const uint8_t *in, size_t len, enum aln_base64_alphabet alpha, const char *expect) {
  size_t n = 0, out_len = 0;
  assert_int_equal(aln_base64_encoded_len(&n, len, alpha), ALN_OK);
  assert_int_equal(n, strlen(expect));
  char *out = malloc(n + 1);
  assert_non_null(out);
  assert_int_equal(aln_base64_encode(out, n + 1, &out_len, in, len, alpha), ALN_OK);
  assert_int_equal(out_len, n);
  assert_string_equal(out, expect);
  free(out);
}

/* decode_ok decodes |in| into an exactly sized heap buffer and checks the bytes. */
static void decode_ok(const char *in, enum aln_base64_alphabet alpha, const uint8_t *expect, size_t expect_len) {
  size_t n = SIZE_MAX, out_len = SIZE_MAX;
  assert_int_equal(aln_base64_decoded_len(&n, in, strlen(in), alpha), ALN_OK);
  assert_int_equal(n, expect_len);
  uint8_t *out = malloc(n > 0 ? n : 1);
  assert_non_null(out);
  assert_int_equal(aln_base64_decode(out, n, &out_len, in, strlen(in), alpha), ALN_OK);
  assert_int_equal(out_len, expect_len);
  assert_memory_equal(out, expect, expect_len);
  free(out);
}

/* decode_refused checks that |len| chars at |in| are malformed in |alpha| and that
 * the output buffer holds nothing decoded afterwards. */
static void decode_refused_n(const char *in, size_t len, enum aln_base64_alphabet alpha) {
  uint8_t out[64];
  size_t out_len = 12345;
  memset(out, 0xa5, sizeof(out));
  assert_int_equal(aln_base64_decode(out, sizeof(out), &out_len, in, len, alpha), ALN_ERR_MALFORMED);
  assert_int_equal(out_len, 12345);
  for (size_t i = 0; i < sizeof(out); i++)
    assert_true(out[i] == 0xa5 || out[i] == 0);
}

static void decode_refused(const char *in, enum aln_base64_alphabet alpha) {
  decode_refused_n(in, strlen(in), alpha);
}

static void test_rfc4648_vectors(void **state) {
  (void)state;
  static const struct {
    const char *plain, *std, *url;
  } v[] = {
      {"", "", ""},
      {"f", "Zg==", "Zg"},
      {"fo", "Zm8=", "Zm8"},
      {"foo", "Zm9v", "Zm9v"},
      {"foob", "Zm9vYg==", "Zm9vYg"},
      {"fooba", "Zm9vYmE=", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
  };
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    const uint8_t *p = (const uint8_t *)v[i].plain;
    size_t len = strlen(v[i].plain);
    encode_ok(p, len, ALN_BASE64_STD, v[i].std);
    encode_ok(p, len, ALN_BASE64_URL, v[i].url);
    decode_ok(v[i].std, ALN_BASE64_STD, p, len);
    decode_ok(v[i].url, ALN_BASE64_URL, p, len);
  }
  /* The two characters where the alphabets differ. */
  static const uint8_t hi[] = {0xfb, 0xff, 0xbf};
  encode_ok(hi, 3, ALN_BASE64_STD, "+/+/");
  encode_ok(hi, 3, ALN_BASE64_URL, "-_-_");
  encode_ok(hi, 2, ALN_BASE64_STD, "+/8=");
  encode_ok(hi, 2, ALN_BASE64_URL, "-_8");
  decode_ok("+/+/", ALN_BASE64_STD, hi, 3);
  decode_ok("-_-_", ALN_BASE64_URL, hi, 3);
}

/* Decoding each alphabet in order gives the bytes whose 6-bit groups are 0..63,
 * computed here bit by bit; encoding those bytes gives the alphabet back. */
static void test_every_character(void **state) {
  (void)state;
  uint8_t expect[48] = {0};
  for (unsigned v = 0; v < 64; v++)
    for (unsigned b = 0; b < 6; b++)
      if (v & (32u >> b)) {
        unsigned bit = v * 6 + b;
        expect[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
      }
  decode_ok(std_alphabet, ALN_BASE64_STD, expect, sizeof(expect));
  decode_ok(url_alphabet, ALN_BASE64_URL, expect, sizeof(expect));
  encode_ok(expect, sizeof(expect), ALN_BASE64_STD, std_alphabet);
  encode_ok(expect, sizeof(expect), ALN_BASE64_URL, url_alphabet);
}

/* oracle_std is OpenSSL's encoding of |in|; oracle_url derives the unpadded url
 * form from it. */
static void oracle(char *std, char *url, const uint8_t *in, size_t len) {
  int n = EVP_EncodeBlock((unsigned char *)std, in, (int)len);
  assert_true(n >= 0);
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    char c = std[i];
    if (c == '=')
      continue;
    url[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  url[o] = '\0';
}

static void test_round_trip_random(void **state) {
  (void)state;
  for (int rep = 0; rep < 8; rep++) {
    for (size_t len = 0; len <= 64; len++) {
      uint8_t in[64];
      char std[89], url[89];
      assert_int_equal(RAND_bytes(in, sizeof(in)), 1);
      oracle(std, url, in, len);
      assert_int_equal(strlen(std), (len + 2) / 3 * 4);
      assert_int_equal(strlen(url), (len * 4 + 2) / 3);
      encode_ok(in, len, ALN_BASE64_STD, std);
      encode_ok(in, len, ALN_BASE64_URL, url);
      decode_ok(std, ALN_BASE64_STD, in, len);
      decode_ok(url, ALN_BASE64_URL, in, len);
    }
  }
}

/* In a 2-char tail (one byte) the last character has 4 unused bits and in a
 * 3-char tail (two bytes) 2: only the characters with those bits zero, 4 and 16
 * of the 64, are accepted; each of the others would be a second spelling. */
static void test_non_canonical_tails(void **state) {
  (void)state;
  for (int alpha = ALN_BASE64_STD; alpha <= ALN_BASE64_URL; alpha++) {
    const char *abc = alpha == ALN_BASE64_STD ? std_alphabet : url_alphabet;
    for (unsigned v = 0; v < 64; v++) {
      char one[5] = {'Z', abc[v], '=', '=', '\0'}; /* one byte: 4 spare bits */
      char two[5] = {'Z', 'm', abc[v], '=', '\0'}; /* two bytes: 2 spare bits */
      if (alpha == ALN_BASE64_URL)
        one[2] = two[3] = '\0';
      uint8_t b1[1] = {(uint8_t)(0x64 | (v >> 4))};
      uint8_t b2[2] = {0x66, (uint8_t)(0x60 | (v >> 2))};
      if ((v & 15) == 0)
        decode_ok(one, alpha, b1, 1);
      else
        decode_refused(one, alpha);
      if ((v & 3) == 0)
        decode_ok(two, alpha, b2, 2);
      else
        decode_refused(two, alpha);
    }
  }
  decode_refused("Zh==", ALN_BASE64_STD);
  decode_refused("Zm9=", ALN_BASE64_STD);
  decode_refused("Zm9vYh", ALN_BASE64_URL);
  decode_refused("Zm9vYmF", ALN_BASE64_URL);
}

/* Every byte that is not in an alphabet is refused in every position of a group,
 * in a full group and in a padded tail. */
static void test_bad_characters(void **state) {
  (void)state;
  for (int alpha = ALN_BASE64_STD; alpha <= ALN_BASE64_URL; alpha++) {
    const char *abc = alpha == ALN_BASE64_STD ? std_alphabet : url_alphabet;
    for (unsigned c = 0; c < 256; c++) {
      if (c != 0 && strchr(abc, (int)c) != NULL)
        continue;
      for (size_t k = 0; k < 8; k++) {
        char full[9] = "Zm9vYmFy";
        full[k] = (char)c;
        decode_refused_n(full, 8, alpha);
      }
      for (size_t k = 0; k < 2; k++) {
        char tail[9] = "Zm9vYg==";
        tail[4 + k] = (char)c;
        decode_refused_n(tail, alpha == ALN_BASE64_STD ? 8 : 6, alpha);
      }
    }
  }
  /* Each alphabet refuses the other's two characters. */
  decode_refused("Zm9-", ALN_BASE64_STD);
  decode_refused("Zm9_", ALN_BASE64_STD);
  decode_refused("Zm9+", ALN_BASE64_URL);
  decode_refused("Zm9/", ALN_BASE64_URL);
  /* No whitespace anywhere, not even where the length would still fit. */
  decode_refused("Zm9v\nYmE", ALN_BASE64_STD);
  decode_refused("Zm9vYmF ", ALN_BASE64_STD);
  decode_refused("Zm9v\r\n==", ALN_BASE64_STD);
  decode_refused(" Zm9vYmF", ALN_BASE64_URL);
}

static void test_bad_padding(void **state) {
  (void)state;
  static const char *const std_bad[] = {
      "Zg",       "Zg=",      "Z",        "Zm9vY", "Zm9vYg=", /* length not a multiple of 4 */
      "Z===",     "====",     "=Zg=",     "==Zg",             /* too much, or only padding */
      "Zg==Zg==", "Zm8=Zm9v", "Zm=v",     "Z=9v",             /* padding before the end */
      "Zg=A",     "Zm9v====", "Zm9vY===", "Zg===", "Zm8==",   /* data after padding, extra '=' */
  };
  for (size_t i = 0; i < sizeof(std_bad) / sizeof(std_bad[0]); i++)
    decode_refused(std_bad[i], ALN_BASE64_STD);
  /* The url form is never padded: '=' is not one of its characters. */
  static const char *const url_bad[] = {"Zg==", "Zm8=", "Zg=", "Zm9vYg==", "Z", "Zm9vY", "Zm9vYmFyZ"};
  for (size_t i = 0; i < sizeof(url_bad) / sizeof(url_bad[0]); i++)
    decode_refused(url_bad[i], ALN_BASE64_URL);
}

/* decoded_len checks only the shape; decode then checks the characters. */
static void test_decoded_len_shape(void **state) {
  (void)state;
  size_t n = 7;
  assert_int_equal(aln_base64_decoded_len(&n, "", 0, ALN_BASE64_STD), ALN_OK);
  assert_int_equal(n, 0);
  assert_int_equal(aln_base64_decoded_len(&n, "!!!!", 4, ALN_BASE64_STD), ALN_OK);
  assert_int_equal(n, 3);
  assert_int_equal(aln_base64_decoded_len(&n, "!!!=", 4, ALN_BASE64_STD), ALN_OK);
  assert_int_equal(n, 2);
  assert_int_equal(aln_base64_decoded_len(&n, "!!==", 4, ALN_BASE64_STD), ALN_OK);
  assert_int_equal(n, 1);
  decode_refused("!!!!", ALN_BASE64_STD);
  static const size_t url_len[] = {0, 0, 1, 2, 3, 0, 4, 5, 6};
  for (size_t len = 0; len < sizeof(url_len) / sizeof(url_len[0]); len++) {
    aln_status st = aln_base64_decoded_len(&n, "AAAAAAAA", len, ALN_BASE64_URL);
    if (len % 4 == 1) {
      assert_int_equal(st, ALN_ERR_MALFORMED);
    } else {
      assert_int_equal(st, ALN_OK);
      assert_int_equal(n, url_len[len]);
    }
  }
  for (size_t len = 1; len < 8; len++)
    if (len % 4 != 0)
      assert_int_equal(aln_base64_decoded_len(&n, "AAAAAAAA", len, ALN_BASE64_STD), ALN_ERR_MALFORMED);
}

static void test_output_too_small(void **state) {
  (void)state;
  char text[9];
  memset(text, 'x', sizeof(text));
  size_t out_len = 99;
  /* "foobar" needs 8 chars and a NUL. */
  assert_int_equal(aln_base64_encode(text, 8, &out_len, (const uint8_t *)"foobar", 6, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encode(text, 0, &out_len, (const uint8_t *)"", 0, ALN_BASE64_URL), ALN_ERR_USAGE);
  for (size_t i = 0; i < sizeof(text); i++)
    assert_int_equal(text[i], 'x');
  assert_int_equal(out_len, 99);
  assert_int_equal(aln_base64_encode(text, 9, NULL, (const uint8_t *)"foobar", 6, ALN_BASE64_STD), ALN_OK);
  assert_string_equal(text, "Zm9vYmFy");

  uint8_t bytes[6];
  memset(bytes, 0xa5, sizeof(bytes));
  assert_int_equal(aln_base64_decode(bytes, 5, &out_len, "Zm9vYmFy", 8, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_decode(bytes, 4, &out_len, "Zm9vYmE", 7, ALN_BASE64_URL), ALN_ERR_USAGE);
  for (size_t i = 0; i < sizeof(bytes); i++)
    assert_int_equal(bytes[i], 0xa5);
  assert_int_equal(out_len, 99);
  assert_int_equal(aln_base64_decode(bytes, 5, NULL, "Zm9vYmE=", 8, ALN_BASE64_STD), ALN_OK);
  assert_memory_equal(bytes, "fooba", 5);
  assert_int_equal(bytes[5], 0xa5);
}

/* A group that decoded before the bad character is wiped, not left in the buffer. */
static void test_failure_leaves_nothing(void **state) {
  (void)state;
  uint8_t out[6];
  memset(out, 0xa5, sizeof(out));
  assert_int_equal(aln_base64_decode(out, sizeof(out), NULL, "Zm9vYmF!", 8, ALN_BASE64_STD), ALN_ERR_MALFORMED);
  for (size_t i = 0; i < sizeof(out); i++)
    assert_int_equal(out[i], 0);
  memset(out, 0xa5, sizeof(out));
  assert_int_equal(aln_base64_decode(out, sizeof(out), NULL, "Zm9vYh", 6, ALN_BASE64_URL), ALN_ERR_MALFORMED);
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(out[i], 0);
}

/* The encoded length plus its NUL must fit in a size_t; the largest input of each
 * alphabet that does is accepted, one more byte is not, and the input is never
 * read when the length is refused. */
static void test_length_overflow(void **state) {
  (void)state;
  const size_t groups = SIZE_MAX / 4, base = groups * 3; /* encodes to SIZE_MAX - 3 chars */
  size_t n = 0;
  assert_int_equal(aln_base64_encoded_len(&n, base, ALN_BASE64_STD), ALN_OK);
  assert_int_equal(n, SIZE_MAX - 3);
  assert_int_equal(aln_base64_encoded_len(&n, base, ALN_BASE64_URL), ALN_OK);
  assert_int_equal(n, SIZE_MAX - 3);
  assert_int_equal(aln_base64_encoded_len(&n, base + 1, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encoded_len(&n, base + 1, ALN_BASE64_URL), ALN_OK);
  assert_int_equal(n, SIZE_MAX - 1);
  assert_int_equal(aln_base64_encoded_len(&n, base + 2, ALN_BASE64_URL), ALN_ERR_USAGE); /* no room for NUL */
  assert_int_equal(aln_base64_encoded_len(&n, base + 3, ALN_BASE64_URL), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encoded_len(&n, SIZE_MAX, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encoded_len(&n, SIZE_MAX, ALN_BASE64_URL), ALN_ERR_USAGE);

  uint8_t one = 0;
  char out[4] = "xyz";
  assert_int_equal(aln_base64_encode(out, sizeof(out), NULL, &one, SIZE_MAX, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encode(out, sizeof(out), NULL, &one, base + 1, ALN_BASE64_URL), ALN_ERR_USAGE);
  assert_string_equal(out, "xyz");
}

static void test_bad_arguments(void **state) {
  (void)state;
  char text[8];
  uint8_t bytes[8];
  size_t n;
  const enum aln_base64_alphabet unknown = (enum aln_base64_alphabet)7;
  assert_int_equal(aln_base64_encode(NULL, 8, NULL, (const uint8_t *)"f", 1, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encode(text, 8, NULL, NULL, 1, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encode(text, 8, NULL, (const uint8_t *)"f", 1, unknown), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encoded_len(NULL, 1, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_encoded_len(&n, 1, unknown), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_decoded_len(NULL, "Zg==", 4, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_decoded_len(&n, NULL, 4, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_decoded_len(&n, "Zg==", 4, unknown), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_decode(NULL, 8, NULL, "Zg==", 4, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_decode(bytes, 8, NULL, NULL, 4, ALN_BASE64_STD), ALN_ERR_USAGE);
  assert_int_equal(aln_base64_decode(bytes, 8, NULL, "Zg==", 4, unknown), ALN_ERR_USAGE);
  /* Empty in, empty out: NULL pointers are fine when there is nothing to touch. */
  assert_int_equal(aln_base64_decode(NULL, 0, &n, NULL, 0, ALN_BASE64_STD), ALN_OK);
  assert_int_equal(n, 0);
  assert_int_equal(aln_base64_encode(text, 1, &n, NULL, 0, ALN_BASE64_URL), ALN_OK);
  assert_int_equal(n, 0);
  assert_string_equal(text, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc4648_vectors),        cmocka_unit_test(test_every_character),
      cmocka_unit_test(test_round_trip_random),      cmocka_unit_test(test_non_canonical_tails),
      cmocka_unit_test(test_bad_characters),         cmocka_unit_test(test_bad_padding),
      cmocka_unit_test(test_decoded_len_shape),      cmocka_unit_test(test_output_too_small),
      cmocka_unit_test(test_failure_leaves_nothing), cmocka_unit_test(test_length_overflow),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
