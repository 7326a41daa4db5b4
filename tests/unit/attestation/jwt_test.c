/* Tests for the strict JWS verifier (attestation/jwt.h): tokens built here byte by
 * byte and signed with a test RSA key, so each negative test carries exactly the
 * one defect it names; key-set loading (JWKS and roots); and the x5c path on the
 * real Confidential Space PKI token in tests/data (whose chain only our verifier
 * and OpenSSL's X.509 code judge: the signature and chain are Google's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "attestation/jwt.h"
#include "proto/base64.h"
#include "tests/unit/attestation/cs_fixtures.h"
#include "tests/unit/test_files.h"

#define OAK_NBF 1750688551
#define OAK_EXP 1750692151
#define OAK_LEAF_NOT_AFTER 1755491744 /* 2025-08-18T04:35:44Z */
#define OAK_KID "2Ssf_M3oeNfWhYguTpKEs1lrMZNOWP6muiYLENXtC4k"

static EVP_PKEY *key_a, *key_b; /* RSA-2048: a is in the JWKS as "a", b is not */
static char *jwks_a;
static char *oak_token, *oak_root_pem;
static size_t oak_len;

/* --- fixtures -------------------------------------------------------------------- */

static char *jwks_of(const EVP_PKEY *k, const char *kid) {
  char *n = bn_b64url(k, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64url(k, OSSL_PKEY_PARAM_RSA_E);
  char *out = malloc(strlen(n) + strlen(e) + 200);
  assert_non_null(out);
  sprintf(out,
          "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}]}",
          kid, n, e);
  free(n);
  free(e);
  return out;
}

/* sign_raw returns "b64(hdr).b64(payload).b64(RS256 sig by k)" over the exact
 * bytes given (k NULL: an empty signature). */
static char *sign_raw(const char *hdr, const char *payload, EVP_PKEY *k) {
  char *h = b64url(hdr, strlen(hdr)), *p = b64url(payload, strlen(payload));
  size_t si_len = strlen(h) + 1 + strlen(p);
  char *tok = malloc(si_len + 1024);
  assert_non_null(tok);
  sprintf(tok, "%s.%s.", h, p);
  if (k != NULL) {
    uint8_t sig[512];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (const uint8_t *)tok, si_len), 1);
    EVP_MD_CTX_free(md);
    char *s = b64url(sig, sig_len);
    strcat(tok, s);
    free(s);
  }
  free(h);
  free(p);
  return tok;
}

static const char *const good_hdr = "{\"alg\":\"RS256\",\"kid\":\"a\",\"typ\":\"JWT\"}";
static const char *const good_payload = "{\"iss\":\"me\",\"n\":[1,{\"x\":true}]}";

static int group_setup(void **state) {
  (void)state;
  key_a = EVP_RSA_gen(2048);
  key_b = EVP_RSA_gen(2048);
  if (key_a == NULL || key_b == NULL)
    return -1;
  jwks_a = jwks_of(key_a, "a");
  oak_token = sample("oak_cs_pki_amdsev_debug_2025-06-23.jwt", &oak_len);
  oak_root_pem = sample("confidential_space_root.pem", NULL);
  return oak_token != NULL && oak_root_pem != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(key_a);
  EVP_PKEY_free(key_b);
  free(jwks_a);
  free(oak_token);
  free(oak_root_pem);
  return 0;
}

static struct aln_jwt_keys *keys_jwks(void) {
  struct aln_jwt_keys *k = NULL;
  assert_int_equal(aln_jwt_keys_new(&k), ALN_OK);
  assert_int_equal(aln_jwt_keys_add_jwks(k, jwks_a, strlen(jwks_a)), ALN_OK);
  return k;
}

static struct aln_jwt_keys *keys_root(const char *pem) {
  struct aln_jwt_keys *k = NULL;
  assert_int_equal(aln_jwt_keys_new(&k), ALN_OK);
  assert_int_equal(aln_jwt_keys_add_root_pem(k, pem, strlen(pem)), ALN_OK);
  return k;
}

/* verify_status checks |tok| against |k| and returns the status; on refusal it
 * also asserts that |out| was left alone and the reason is filled in. */
static aln_status verify_status(const char *tok, size_t len, const struct aln_jwt_keys *k, int64_t now,
                                struct aln_refusal *why) {
  struct aln_jwt out;
  memset(&out, 0xa5, sizeof(out));
  memset(why, 0, sizeof(*why));
  aln_status st = aln_jwt_verify(&out, why, tok, len, k, now);
  if (st == ALN_OK) {
    aln_jwt_cleanup(&out);
  } else {
    uint8_t untouched[sizeof(out)];
    memset(untouched, 0xa5, sizeof(untouched));
    assert_memory_equal(&out, untouched, sizeof(out));
    assert_int_equal(why->status, st);
    assert_true(why->why[0] != '\0');
  }
  return st;
}

/* expect_refused asserts |tok| is refused with |st| and a reason containing |frag|. */
static void expect_refused(const char *tok, const struct aln_jwt_keys *k, int64_t now, aln_status st,
                           const char *frag) {
  struct aln_refusal why;
  assert_int_equal(verify_status(tok, strlen(tok), k, now, &why), st);
  if (strstr(why.why, frag) == NULL)
    fail_msg("reason \"%s\" does not mention \"%s\"", why.why, frag);
}

static void expect_signed_refused(const char *hdr, const char *payload, aln_status st, const char *frag) {
  struct aln_jwt_keys *k = keys_jwks();
  char *tok = sign_raw(hdr, payload, key_a);
  expect_refused(tok, k, 0, st, frag);
  free(tok);
  aln_jwt_keys_free(k);
}

/* --- JWKS tokens ------------------------------------------------------------------- */

static void test_jwks_token_verifies(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_jwks();
  char *tok = sign_raw(good_hdr, good_payload, key_a);
  struct aln_jwt out;
  struct aln_refusal why = {0};
  assert_int_equal(aln_jwt_verify(&out, &why, tok, strlen(tok), k, 0), ALN_OK);
  assert_int_equal(out.source, ALN_JWT_KEY_JWKS);
  assert_string_equal(out.kid, "a");
  assert_int_equal(out.chain_not_after, 0);
  assert_string_equal(json_string_value(json_object_get(out.claims, "iss")), "me");
  assert_string_equal(json_string_value(json_object_get(out.header, "alg")), "RS256");
  aln_jwt_cleanup(&out);
  aln_jwt_cleanup(&out); /* idempotent on the zeroed value */
  free(tok);
  aln_jwt_keys_free(k);
}

static void test_alg_none_refused(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_jwks();
  char *tok = sign_raw("{\"alg\":\"none\",\"kid\":\"a\"}", good_payload, NULL);
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_SIG, "alg none");
  free(tok);
  /* Signed by a real key, the header still says none: still refused. */
  expect_signed_refused("{\"alg\":\"none\",\"kid\":\"a\"}", good_payload, ALN_ERR_ATTEST_SIG, "alg none");
  expect_signed_refused("{\"alg\":\"NoNe\",\"kid\":\"a\"}", good_payload, ALN_ERR_ATTEST_SIG, "alg none");
  aln_jwt_keys_free(k);
}

/* HS256 keyed with the RSA public key: a classic algorithm confusion. The MAC is
 * computed here exactly as an attacker would (secret = the public JWKS text). */
static void test_hs256_with_public_key_refused(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_jwks();
  const char *hdr = "{\"alg\":\"HS256\",\"kid\":\"a\"}";
  char *h = b64url(hdr, strlen(hdr)), *p = b64url(good_payload, strlen(good_payload));
  char si[1024];
  snprintf(si, sizeof(si), "%s.%s", h, p);
  uint8_t mac[32];
  size_t mac_len = sizeof(mac);
  assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, jwks_a, strlen(jwks_a), (uint8_t *)si, strlen(si), mac,
                            sizeof(mac), &mac_len));
  char *m = b64url(mac, mac_len), tok[1200];
  snprintf(tok, sizeof(tok), "%s.%s", si, m);
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_SIG, "HS256");
  free(h);
  free(p);
  free(m);
  aln_jwt_keys_free(k);
}

static void test_other_algs_refused(void **state) {
  (void)state;
  expect_signed_refused("{\"alg\":\"ES256\",\"kid\":\"a\"}", good_payload, ALN_ERR_ATTEST_SIG, "only RS256");
  expect_signed_refused("{\"alg\":\"PS256\",\"kid\":\"a\"}", good_payload, ALN_ERR_ATTEST_SIG, "only RS256");
  expect_signed_refused("{\"alg\":\"RS512\",\"kid\":\"a\"}", good_payload, ALN_ERR_ATTEST_SIG, "only RS256");
  expect_signed_refused("{\"alg\":\"rs256\",\"kid\":\"a\"}", good_payload, ALN_ERR_ATTEST_SIG, "only RS256");
  expect_signed_refused("{\"kid\":\"a\"}", good_payload, ALN_ERR_ATTEST_MALFORMED, "no alg");
  expect_signed_refused("{\"alg\":256,\"kid\":\"a\"}", good_payload, ALN_ERR_ATTEST_MALFORMED, "no alg");
}

static void test_header_parameters(void **state) {
  (void)state;
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"a\",\"crit\":[\"exp\"]}", good_payload, ALN_ERR_ATTEST_MALFORMED,
                        "crit");
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"a\",\"b64\":false,\"crit\":[\"b64\"]}", good_payload,
                        ALN_ERR_ATTEST_MALFORMED, "crit");
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"a\",\"typ\":\"at+jwt\"}", good_payload, ALN_ERR_ATTEST_MALFORMED,
                        "typ");
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"a\",\"jku\":\"https://evil/\"}", good_payload,
                        ALN_ERR_ATTEST_CHAIN, "jku");
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"a\",\"jwk\":{\"kty\":\"RSA\"}}", good_payload,
                        ALN_ERR_ATTEST_CHAIN, "jku");
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"a\",\"x5u\":\"https://evil/\"}", good_payload,
                        ALN_ERR_ATTEST_CHAIN, "jku");
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"\"}", good_payload, ALN_ERR_ATTEST_MALFORMED, "kid");
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":7}", good_payload, ALN_ERR_ATTEST_MALFORMED, "kid");
  /* typ is compared case-insensitively, as a media type. */
  struct aln_jwt_keys *k = keys_jwks();
  char *tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"a\",\"typ\":\"jwt\"}", good_payload, key_a);
  struct aln_refusal why;
  assert_int_equal(verify_status(tok, strlen(tok), k, 0, &why), ALN_OK);
  free(tok);
  aln_jwt_keys_free(k);
}

static void test_unknown_kid_refused(void **state) {
  (void)state;
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"b\"}", good_payload, ALN_ERR_ATTEST_CHAIN, "unknown kid");
  expect_signed_refused("{\"alg\":\"RS256\"}", good_payload, ALN_ERR_ATTEST_CHAIN, "no kid");
}

static void test_wrong_key_or_signature_refused(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_jwks();
  /* Signed by key b but naming key a. */
  char *tok = sign_raw(good_hdr, good_payload, key_b);
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_SIG, "does not verify");
  free(tok);
  /* One bit of the signature, of the payload, of the header. */
  tok = sign_raw(good_hdr, good_payload, key_a);
  size_t len = strlen(tok);
  char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
  size_t at[] = {len - 10, (size_t)(dot1 - tok) + 5, 3};
  for (size_t i = 0; i < 3; i++) {
    char *t = strdup(tok);
    t[at[i]] = t[at[i]] == 'A' ? 'B' : 'A';
    struct aln_refusal why;
    aln_status st = verify_status(t, len, k, 0, &why);
    assert_true(st == ALN_ERR_ATTEST_SIG || st == ALN_ERR_ATTEST_MALFORMED);
    free(t);
  }
  /* A signature of the wrong length (one byte short) and an empty one. */
  char *t = strdup(tok);
  t[len - 2] = '\0'; /* 340 chars: exactly 255 bytes, canonical */
  expect_refused(t, k, 0, ALN_ERR_ATTEST_SIG, "bytes");
  *(dot2 + 1 - tok + t) = '\0';
  expect_refused(t, k, 0, ALN_ERR_ATTEST_SIG, "empty");
  free(t);
  free(tok);
  aln_jwt_keys_free(k);
}

static void test_duplicate_json_keys_refused(void **state) {
  (void)state;
  expect_signed_refused("{\"alg\":\"RS256\",\"kid\":\"a\",\"alg\":\"none\"}", good_payload, ALN_ERR_ATTEST_MALFORMED,
                        "header");
  expect_signed_refused(good_hdr, "{\"aud\":\"x\",\"aud\":\"y\"}", ALN_ERR_ATTEST_MALFORMED, "payload");
  expect_signed_refused(good_hdr, "{\"a\":{\"b\":1,\"b\":2}}", ALN_ERR_ATTEST_MALFORMED, "payload");
}

static void test_json_shape_refused(void **state) {
  (void)state;
  expect_signed_refused(good_hdr, "[1,2]", ALN_ERR_ATTEST_MALFORMED, "payload");
  expect_signed_refused(good_hdr, "{\"a\":1} x", ALN_ERR_ATTEST_MALFORMED, "payload");
  expect_signed_refused(good_hdr, "{\"a\":\"\\u0000\"}", ALN_ERR_ATTEST_MALFORMED, "payload");
  expect_signed_refused(good_hdr, "{\"a\":1e999999}", ALN_ERR_ATTEST_MALFORMED, "payload");
  expect_signed_refused("[\"RS256\"]", good_payload, ALN_ERR_ATTEST_MALFORMED, "header");
  /* Nesting: ALN_JWT_JSON_DEPTH_MAX levels pass, one more is refused before jansson. */
  char deep[64] = "", payload[128];
  for (int i = 0; i < ALN_JWT_JSON_DEPTH_MAX - 1; i++)
    strcat(deep, "[");
  for (int i = 0; i < ALN_JWT_JSON_DEPTH_MAX - 1; i++)
    strcat(deep, "]");
  snprintf(payload, sizeof(payload), "{\"d\":%s}", deep);
  struct aln_jwt_keys *k = keys_jwks();
  char *tok = sign_raw(good_hdr, payload, key_a);
  struct aln_refusal why;
  assert_int_equal(verify_status(tok, strlen(tok), k, 0, &why), ALN_OK);
  free(tok);
  snprintf(payload, sizeof(payload), "{\"d\":[%s]}", deep);
  expect_signed_refused(good_hdr, payload, ALN_ERR_ATTEST_MALFORMED, "payload");
  /* Brackets inside strings do not count. */
  tok = sign_raw(good_hdr, "{\"s\":\"[[[[[[[[[[[[[[[[[[[\\\"[[[[[[[[\"}", key_a);
  assert_int_equal(verify_status(tok, strlen(tok), k, 0, &why), ALN_OK);
  free(tok);
  aln_jwt_keys_free(k);
}

static void test_segments_shape_refused(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_jwks();
  char *tok = sign_raw(good_hdr, good_payload, key_a), buf[2048];
  size_t len = strlen(tok);
  char *dot1 = strchr(tok, '.');
  /* two segments, four segments, empty header, empty payload */
  snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(tok, '.') - tok), tok);
  expect_refused(buf, k, 0, ALN_ERR_ATTEST_MALFORMED, "fewer");
  snprintf(buf, sizeof(buf), "%s.AAAA", tok);
  expect_refused(buf, k, 0, ALN_ERR_ATTEST_MALFORMED, "more");
  snprintf(buf, sizeof(buf), "%s", dot1);
  expect_refused(buf, k, 0, ALN_ERR_ATTEST_MALFORMED, "empty");
  snprintf(buf, sizeof(buf), "%.*s.%s", (int)(dot1 - tok), tok, strchr(dot1 + 1, '.'));
  expect_refused(buf, k, 0, ALN_ERR_ATTEST_MALFORMED, "empty");
  /* padding, a character outside base64url, whitespace, a trailing newline */
  snprintf(buf, sizeof(buf), "%.*s=%s", (int)(dot1 - tok), tok, dot1);
  expect_refused(buf, k, 0, ALN_ERR_ATTEST_MALFORMED, "header");
  snprintf(buf, sizeof(buf), "%.*s+%s", (int)(dot1 - tok - 1), tok, dot1);
  expect_refused(buf, k, 0, ALN_ERR_ATTEST_MALFORMED, "header");
  snprintf(buf, sizeof(buf), "%s\n", tok);
  expect_refused(buf, k, 0, ALN_ERR_ATTEST_MALFORMED, "canonical");
  snprintf(buf, sizeof(buf), " %s", tok);
  expect_refused(buf, k, 0, ALN_ERR_ATTEST_MALFORMED, "header");
  /* Non-canonical base64url: "e30" is "{}"; "e31" has non-zero unused bits. */
  expect_refused("e31.e30.AAAA", k, 0, ALN_ERR_ATTEST_MALFORMED, "header");
  (void)len;
  free(tok);
  aln_jwt_keys_free(k);
}

/* Size caps apply before decoding: an oversized segment is refused for its size
 * even though its bytes are junk no decoder would accept. */
static void test_oversized_segments_refused(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_jwks();
  size_t big = ALN_JWT_HEADER_B64_MAX + 1;
  char *tok = malloc(big + 32);
  assert_non_null(tok);
  memset(tok, '!', big);
  strcpy(tok + big, ".e30.AAAA");
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_MALFORMED, "header segment");
  memcpy(tok, "e30.", 4);
  memset(tok + 4, '!', ALN_JWT_PAYLOAD_B64_MAX + 1);
  strcpy(tok + 4 + ALN_JWT_PAYLOAD_B64_MAX + 1, ".AAAA");
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_MALFORMED, "payload segment");
  memcpy(tok, "e30.e30.", 8);
  memset(tok + 8, '!', ALN_JWT_SIG_B64_MAX + 1);
  tok[8 + ALN_JWT_SIG_B64_MAX + 1] = '\0';
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_MALFORMED, "signature segment");
  free(tok);
  /* The whole token over ALN_JWT_MAX. */
  tok = calloc(1, ALN_JWT_MAX + 2);
  assert_non_null(tok);
  memset(tok, 'A', ALN_JWT_MAX + 1);
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_MALFORMED, "cap");
  free(tok);
  aln_jwt_keys_free(k);
}

/* --- key sets ---------------------------------------------------------------------- */

static void expect_jwks_refused(const char *jwks) {
  struct aln_jwt_keys *k = NULL;
  assert_int_equal(aln_jwt_keys_new(&k), ALN_OK);
  assert_int_equal(aln_jwt_keys_add_jwks(k, jwks, strlen(jwks)), ALN_ERR_USAGE);
  /* Nothing of a refused document stays: the key set still verifies nothing. */
  char *tok = sign_raw(good_hdr, good_payload, key_a);
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_CHAIN, "unknown kid");
  free(tok);
  aln_jwt_keys_free(k);
}

static void test_jwks_loading_is_strict(void **state) {
  (void)state;
  char *n = bn_b64url(key_a, OSSL_PKEY_PARAM_RSA_N), buf[2048];
  expect_jwks_refused("{}");
  expect_jwks_refused("{\"keys\":{}}");
  expect_jwks_refused("{\"keys\":[]}");
  expect_jwks_refused("not json");
  /* only non-RSA or non-signing keys: nothing usable */
  expect_jwks_refused("{\"keys\":[{\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}");
  snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQAB\"}]}",
           n);
  expect_jwks_refused(buf);
  /* missing kid, even or tiny exponent, non-canonical n (leading zero), short n */
  snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n);
  expect_jwks_refused(buf);
  snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQAA\"}]}", n);
  expect_jwks_refused(buf);
  snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQ\"}]}", n);
  expect_jwks_refused(buf);
  snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"AA%s\",\"e\":\"AQAB\"}]}", n);
  expect_jwks_refused(buf);
  snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%.340s\",\"e\":\"AQAB\"}]}", n);
  expect_jwks_refused(buf);
  /* two keys under one kid, and a duplicate JSON key */
  snprintf(buf, sizeof(buf),
           "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQAB\"},"
           "{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQAB\"}]}",
           n, n);
  expect_jwks_refused(buf);
  snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"kid\":\"b\",\"n\":\"%s\",\"e\":\"AQAB\"}]}",
           n);
  expect_jwks_refused(buf);
  /* A 1024-bit key is refused at load, not merely never matched. */
  EVP_PKEY *small = EVP_RSA_gen(1024);
  assert_non_null(small);
  char *jw = jwks_of(small, "a");
  expect_jwks_refused(jw);
  free(jw);
  EVP_PKEY_free(small);
  /* An EC key beside an RSA one is skipped, the RSA key used. */
  snprintf(buf, sizeof(buf),
           "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e\"},{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQAB\"}]}",
           n);
  struct aln_jwt_keys *k = NULL;
  assert_int_equal(aln_jwt_keys_new(&k), ALN_OK);
  assert_int_equal(aln_jwt_keys_add_jwks(k, buf, strlen(buf)), ALN_OK);
  char *tok = sign_raw(good_hdr, good_payload, key_a);
  struct aln_refusal why;
  assert_int_equal(verify_status(tok, strlen(tok), k, 0, &why), ALN_OK);
  free(tok);
  tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"e\"}", good_payload, key_a);
  expect_refused(tok, k, 0, ALN_ERR_ATTEST_CHAIN, "unknown kid");
  free(tok);
  aln_jwt_keys_free(k);
  free(n);
}

static void test_root_loading_is_strict(void **state) {
  (void)state;
  struct aln_jwt_keys *k = NULL;
  assert_int_equal(aln_jwt_keys_new(&k), ALN_OK);
  assert_int_equal(aln_jwt_keys_add_root_pem(k, "junk", 4), ALN_ERR_USAGE);
  /* two certificates in one PEM: refused, a root is pinned one at a time */
  char *two = malloc(2 * strlen(oak_root_pem) + 2);
  sprintf(two, "%s\n%s", oak_root_pem, oak_root_pem);
  assert_int_equal(aln_jwt_keys_add_root_pem(k, two, strlen(two)), ALN_ERR_USAGE);
  free(two);
  /* and a refused PEM pinned nothing: the real token has no root to chain to */
  expect_refused(oak_token, k, OAK_NBF + 10, ALN_ERR_ATTEST_CHAIN, "no root");
  aln_jwt_keys_free(k);
  aln_jwt_keys_free(NULL);
}

/* --- x5c: the real Confidential Space PKI token ------------------------------------ */

static void test_oak_pki_token_verifies(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_root(oak_root_pem);
  struct aln_jwt out;
  struct aln_refusal why = {0};
  assert_int_equal(aln_jwt_verify(&out, &why, oak_token, oak_len, k, OAK_NBF + 60), ALN_OK);
  assert_int_equal(out.source, ALN_JWT_KEY_X5C);
  assert_string_equal(out.kid, OAK_KID);
  assert_int_equal(out.chain_not_after, OAK_LEAF_NOT_AFTER);
  assert_int_equal(json_integer_value(json_object_get(out.claims, "exp")), OAK_EXP);
  aln_jwt_cleanup(&out);
  /* The chain is judged at the time given: after the leaf expired it fails. */
  expect_refused(oak_token, k, OAK_LEAF_NOT_AFTER + 1, ALN_ERR_ATTEST_CHAIN, "expired");
  aln_jwt_keys_free(k);
}

static void test_oak_invalid_signature_refused(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_root(oak_root_pem);
  size_t len;
  char *bad = sample("oak_cs_pki_amdsev_INVALID_SIGNATURE.jwt", &len);
  assert_non_null(bad);
  expect_refused(bad, k, OAK_NBF + 60, ALN_ERR_ATTEST_SIG, "does not verify");
  free(bad);
  aln_jwt_keys_free(k);
}

/* make_ca returns a fresh self-signed CA certificate as PEM. */
static char *make_ca(void) {
  EVP_PKEY *key = EVP_RSA_gen(2048);
  X509 *c = X509_new();
  assert_non_null(key);
  assert_non_null(c);
  X509_set_version(c, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(c), 7);
  X509_gmtime_adj(X509_getm_notBefore(c), -86400L * 365 * 5);
  X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 365 * 5);
  X509_set_pubkey(c, key);
  X509_NAME *name = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Confidential Space Root CA", -1, -1, 0);
  X509_set_issuer_name(c, name);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, c, c, NULL, NULL, 0);
  X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
  X509_EXTENSION *ku = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
  X509_add_ext(c, bc, -1);
  X509_add_ext(c, ku, -1);
  X509_EXTENSION_free(bc);
  X509_EXTENSION_free(ku);
  assert_true(X509_sign(c, key, EVP_sha256()) > 0);
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, c);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  char *pem = strndup(p, (size_t)n);
  BIO_free(bio);
  X509_free(c);
  EVP_PKEY_free(key);
  return pem;
}

static void test_oak_swapped_root_refused(void **state) {
  (void)state;
  char *other = make_ca(); /* same subject name, another key */
  struct aln_jwt_keys *k = keys_root(other);
  expect_refused(oak_token, k, OAK_NBF + 60, ALN_ERR_ATTEST_CHAIN, "not trusted");
  /* JWKS keys never stand in for a root: the x5c token is still refused. */
  assert_int_equal(aln_jwt_keys_add_jwks(k, jwks_a, strlen(jwks_a)), ALN_OK);
  expect_refused(oak_token, k, OAK_NBF + 60, ALN_ERR_ATTEST_CHAIN, "not trusted");
  aln_jwt_keys_free(k);
  free(other);
}

/* reheader re-encodes the Oak token's header after |edit| changed it, keeping the
 * payload and signature: the chain checks run before the signature check, so
 * each refusal below is for the chain defect, not the broken signature. */
static char *reheader(void (*edit)(json_t *hdr)) {
  char *dot = strchr(oak_token, '.');
  uint8_t raw[ALN_JWT_HEADER_B64_MAX];
  size_t raw_len;
  assert_int_equal(aln_base64_decode(raw, sizeof(raw), &raw_len, oak_token, (size_t)(dot - oak_token), ALN_BASE64_URL),
                   ALN_OK);
  json_t *hdr = json_loadb((const char *)raw, raw_len, 0, NULL);
  assert_non_null(hdr);
  edit(hdr);
  char *s = json_dumps(hdr, JSON_COMPACT);
  json_decref(hdr);
  char *h = b64url(s, strlen(s));
  free(s);
  char *tok = malloc(strlen(h) + strlen(dot) + 1);
  sprintf(tok, "%s%s", h, dot);
  free(h);
  return tok;
}

static void swap_intermediate_and_root(json_t *hdr) {
  json_t *x5c = json_object_get(hdr, "x5c");
  json_t *mid = json_incref(json_array_get(x5c, 1));
  json_array_remove(x5c, 1);
  json_array_append_new(x5c, mid);
}
static void drop_kid(json_t *hdr) {
  json_object_del(hdr, "kid");
}
static void other_kid(json_t *hdr) {
  json_object_set_new(hdr, "kid", json_string("a"));
}
static void leaf_only(json_t *hdr) {
  json_t *x5c = json_object_get(hdr, "x5c");
  json_array_remove(x5c, 2);
  json_array_remove(x5c, 1);
}
static void extra_cert(json_t *hdr) {
  json_t *x5c = json_object_get(hdr, "x5c");
  json_array_append(x5c, json_array_get(x5c, 0));
}
static void five_certs(json_t *hdr) {
  json_t *x5c = json_object_get(hdr, "x5c");
  json_array_append(x5c, json_array_get(x5c, 2));
  json_array_append(x5c, json_array_get(x5c, 2));
}
static void x5c_urlsafe(json_t *hdr) {
  json_t *x5c = json_object_get(hdr, "x5c");
  char *s = strdup(json_string_value(json_array_get(x5c, 0)));
  for (char *p = s; *p; p++)
    *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
  json_array_set_new(x5c, 0, json_string(s));
  free(s);
}

static void test_x5c_chain_rules(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_root(oak_root_pem);
  int64_t now = OAK_NBF + 60;
  char *t = reheader(swap_intermediate_and_root);
  expect_refused(t, k, now, ALN_ERR_ATTEST_CHAIN, "chain order");
  free(t);
  t = reheader(other_kid);
  expect_refused(t, k, now, ALN_ERR_ATTEST_CHAIN, "kid");
  free(t);
  t = reheader(leaf_only);
  expect_refused(t, k, now, ALN_ERR_ATTEST_CHAIN, "not trusted");
  free(t);
  t = reheader(extra_cert);
  expect_refused(t, k, now, ALN_ERR_ATTEST_CHAIN, "does not use");
  free(t);
  t = reheader(five_certs);
  expect_refused(t, k, now, ALN_ERR_ATTEST_MALFORMED, "1..4");
  free(t);
  t = reheader(x5c_urlsafe);
  expect_refused(t, k, now, ALN_ERR_ATTEST_MALFORMED, "x5c[0]");
  free(t);
  /* Without a kid the chain is still checked and then the signature: the header
   * bytes changed, so the signature no longer verifies. */
  t = reheader(drop_kid);
  expect_refused(t, k, now, ALN_ERR_ATTEST_SIG, "does not verify");
  free(t);
  aln_jwt_keys_free(k);
}

/* Every byte of the signed part matters: one flipped character in the header, the
 * payload or the signature of the real token gets it refused. */
static void test_oak_flipped_byte_in_each_segment(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_root(oak_root_pem);
  const char *dot1 = strchr(oak_token, '.'), *dot2 = strchr(dot1 + 1, '.');
  size_t at[] = {20, 4000, (size_t)(dot1 - oak_token) + 100, (size_t)(dot2 - oak_token) + 100, oak_len - 2};
  for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
    char *t = strdup(oak_token);
    t[at[i]] = t[at[i]] == 'Q' ? 'R' : 'Q';
    struct aln_refusal why;
    aln_status st = verify_status(t, oak_len, k, OAK_NBF + 60, &why);
    if (aln_status_category(st) != ALN_CAT_ATTEST)
      fail_msg("flip at %zu: %s", at[i], aln_status_name(st));
    free(t);
  }
  aln_jwt_keys_free(k);
}

static void test_usage(void **state) {
  (void)state;
  struct aln_jwt_keys *k = keys_jwks();
  struct aln_jwt out;
  struct aln_refusal why;
  assert_int_equal(aln_jwt_verify(NULL, &why, "a.b.c", 5, k, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_jwt_verify(&out, NULL, NULL, 0, k, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_jwt_verify(&out, NULL, "a.b.c", 5, NULL, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_jwt_keys_new(NULL), ALN_ERR_USAGE);
  assert_int_equal(aln_jwt_keys_add_jwks(k, NULL, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_jwt_keys_add_root_pem(k, NULL, 0), ALN_ERR_USAGE);
  aln_jwt_keys_free(k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jwks_token_verifies),
      cmocka_unit_test(test_alg_none_refused),
      cmocka_unit_test(test_hs256_with_public_key_refused),
      cmocka_unit_test(test_other_algs_refused),
      cmocka_unit_test(test_header_parameters),
      cmocka_unit_test(test_unknown_kid_refused),
      cmocka_unit_test(test_wrong_key_or_signature_refused),
      cmocka_unit_test(test_duplicate_json_keys_refused),
      cmocka_unit_test(test_json_shape_refused),
      cmocka_unit_test(test_segments_shape_refused),
      cmocka_unit_test(test_oversized_segments_refused),
      cmocka_unit_test(test_jwks_loading_is_strict),
      cmocka_unit_test(test_root_loading_is_strict),
      cmocka_unit_test(test_oak_pki_token_verifies),
      cmocka_unit_test(test_oak_invalid_signature_refused),
      cmocka_unit_test(test_oak_swapped_root_refused),
      cmocka_unit_test(test_x5c_chain_rules),
      cmocka_unit_test(test_oak_flipped_byte_in_each_segment),
      cmocka_unit_test(test_usage),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
