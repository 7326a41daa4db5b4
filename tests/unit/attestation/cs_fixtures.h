/* Fixtures the Confidential Space token tests and the JWT tests share. Header-only
 * like tests/unit/test_files.h (each test binary is one translation unit); include
 * it after <cmocka.h>. */
#ifndef ALN_TESTS_UNIT_ATTESTATION_CS_FIXTURES_H
#define ALN_TESTS_UNIT_ATTESTATION_CS_FIXTURES_H

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/base64.h"
#include "tests/unit/test_files.h"

/* sample reads a Confidential Space sample as copied into tests/data (see its
 * README for their provenance), without its line end. */
static inline char *sample(const char *name, size_t *len) {
  char rel[256];
  snprintf(rel, sizeof(rel), "data/attestation/%s/%s", "confidential-space", name);
  return aln_test_slurp(__FILE__, rel, len, 1);
}

/* b64url returns |n| bytes at |p| in unpadded base64url (free with free()). */
static inline char *b64url(const void *p, size_t n) {
  size_t len;
  assert_int_equal(aln_base64_encoded_len(&len, n, ALN_BASE64_URL), ALN_OK);
  char *s = malloc(len + 1);
  assert_non_null(s);
  assert_int_equal(aln_base64_encode(s, len + 1, NULL, p, n, ALN_BASE64_URL), ALN_OK);
  return s;
}

/* bn_b64url returns the big-number parameter |param| of |k| (a JWK "n" or "e") in
 * base64url. */
static inline char *bn_b64url(const EVP_PKEY *k, const char *param) {
  BIGNUM *bn = NULL;
  uint8_t buf[1024];
  assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
  int n = BN_bn2bin(bn, buf);
  BN_free(bn);
  return b64url(buf, (size_t)n);
}

#endif
