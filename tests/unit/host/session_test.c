/* Session tokens: issue/verify round trip, expiry boundary, and one assertion per
 * way a token can be wrong. Tokens with a defect other than the MAC are re-signed
 * here with the right key (forge()), so each negative case fails for its own
 * reason and not merely because the MAC no longer matches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "host/session.h"

#define TOKEN_LEN 81
#define SIGNED_LEN 37 /* "aln1." + 32 chars of payload */
#define NOW ((int64_t)1700000000)

static struct aln_secret key, other_key;

static int setup(void **state) {
  (void)state;
  uint8_t k[ALN_SESSION_KEY_LEN];
  for (size_t i = 0; i < sizeof(k); i++)
    k[i] = (uint8_t)(i * 7 + 1);
  if (aln_secret_from(&key, k, sizeof(k)) != ALN_OK)
    return -1;
  k[0] ^= 1;
  return aln_secret_from(&other_key, k, sizeof(k)) == ALN_OK ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  aln_secret_free(&key);
  aln_secret_free(&other_key);
  return 0;
}

static void b64url(char *out, const uint8_t *in, size_t len) {
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
    out[o++] = a[v >> 18 & 63];
    out[o++] = a[v >> 12 & 63];
    if (i + 1 < len)
      out[o++] = a[v >> 6 & 63];
    if (i + 2 < len)
      out[o++] = a[v & 63];
  }
  out[o] = '\0';
}

/* forge builds "SIGNED.MAC" with a correct MAC over |signed_part| under |k|. */
static void forge(char *out, const char *signed_part, const struct aln_secret *k) {
  uint8_t mac[32];
  unsigned int mac_len;
  assert_non_null(
      HMAC(EVP_sha256(), k->p, (int)k->len, (const uint8_t *)signed_part, strlen(signed_part), mac, &mac_len));
  strcpy(out, signed_part);
  strcat(out, ".");
  b64url(out + strlen(out), mac, sizeof(mac));
}

/* payload_token forges a token for id bytes 0xAA.. and |expiry|. */
static void payload_token(char *out, uint64_t expiry, const struct aln_secret *k) {
  uint8_t payload[24];
  memset(payload, 0xAA, 16);
  for (int i = 0; i < 8; i++)
    payload[16 + i] = (uint8_t)(expiry >> (56 - 8 * i));
  char signed_part[64] = "aln1.";
  b64url(signed_part + 5, payload, sizeof(payload));
  forge(out, signed_part, k);
}

static aln_status verify(const char *tok, int64_t now) {
  struct aln_session s;
  return aln_session_verify(&s, &key, tok, strlen(tok), now);
}

static void test_issue_verify_round_trip(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  struct aln_session issued, got;
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &issued, &key, NOW, 600), ALN_OK);
  assert_int_equal(strlen(tok), TOKEN_LEN);
  assert_memory_equal(tok, "aln1.", 5);
  assert_int_equal(tok[SIGNED_LEN], '.');
  assert_int_equal(issued.expires_at, NOW + 600);
  assert_int_equal(strlen(issued.id), 32);
  assert_int_equal(aln_session_verify(&got, &key, tok, strlen(tok), NOW), ALN_OK);
  assert_string_equal(got.id, issued.id);
  assert_int_equal(got.expires_at, NOW + 600);
}

static void test_issue_ids_are_random(void **state) {
  (void)state;
  char a[ALN_SESSION_TOKEN_MAX], b[ALN_SESSION_TOKEN_MAX];
  struct aln_session sa, sb;
  assert_int_equal(aln_session_issue(a, sizeof(a), &sa, &key, NOW, 60), ALN_OK);
  assert_int_equal(aln_session_issue(b, sizeof(b), &sb, &key, NOW, 60), ALN_OK);
  assert_string_not_equal(sa.id, sb.id);
  assert_string_not_equal(a, b);
}

static void test_forge_helper_matches_format(void **state) {
  (void)state;
  /* Positive control: the test's own encoder produces tokens the verifier
   * accepts, so the negative cases below differ only in their defect. */
  char tok[ALN_SESSION_TOKEN_MAX];
  struct aln_session s;
  payload_token(tok, (uint64_t)NOW + 10, &key);
  assert_int_equal(strlen(tok), TOKEN_LEN);
  assert_int_equal(aln_session_verify(&s, &key, tok, strlen(tok), NOW), ALN_OK);
  assert_string_equal(s.id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  assert_int_equal(s.expires_at, NOW + 10);
}

static void test_expired_at_exact_expiry(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  assert_int_equal(aln_session_issue(tok, sizeof(tok), NULL, &key, NOW, 100), ALN_OK);
  assert_int_equal(verify(tok, NOW + 99), ALN_OK);
  assert_int_equal(verify(tok, NOW + 100), ALN_ERR_SESSION_EXPIRED);
  assert_int_equal(verify(tok, NOW + 100000), ALN_ERR_SESSION_EXPIRED);
}

static void test_tampered_payload(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  assert_int_equal(aln_session_issue(tok, sizeof(tok), NULL, &key, NOW, 100), ALN_OK);
  /* Stretch the expiry: change a character of the expiry part of the payload. */
  tok[SIGNED_LEN - 2] = tok[SIGNED_LEN - 2] == 'A' ? 'B' : 'A';
  assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_tampered_mac(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  assert_int_equal(aln_session_issue(tok, sizeof(tok), NULL, &key, NOW, 100), ALN_OK);
  tok[SIGNED_LEN + 5] = tok[SIGNED_LEN + 5] == 'A' ? 'B' : 'A';
  assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_non_canonical_mac_encoding(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  assert_int_equal(aln_session_issue(tok, sizeof(tok), NULL, &key, NOW, 100), ALN_OK);
  /* The last MAC character carries 4 MAC bits and 2 zero bits: setting a zero
   * bit decodes to the same MAC but must not verify. */
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *last = &tok[TOKEN_LEN - 1];
  int v = (int)(strchr(a, *last) - a);
  assert_int_equal(v & 3, 0);
  *last = a[v | 1];
  assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_wrong_key(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  struct aln_session s;
  assert_int_equal(aln_session_issue(tok, sizeof(tok), NULL, &other_key, NOW, 100), ALN_OK);
  assert_int_equal(aln_session_verify(&s, &key, tok, strlen(tok), NOW), ALN_ERR_SESSION_INVALID);
  assert_int_equal(aln_session_verify(&s, &other_key, tok, strlen(tok), NOW), ALN_OK);
}

static void test_truncated(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  struct aln_session s;
  assert_int_equal(aln_session_issue(tok, sizeof(tok), NULL, &key, NOW, 100), ALN_OK);
  assert_int_equal(aln_session_verify(&s, &key, tok, TOKEN_LEN - 1, NOW), ALN_ERR_SESSION_INVALID);
  assert_int_equal(aln_session_verify(&s, &key, tok, SIGNED_LEN, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_extra_chars(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX + 8];
  assert_int_equal(aln_session_issue(tok, ALN_SESSION_TOKEN_MAX, NULL, &key, NOW, 100), ALN_OK);
  strcat(tok, "A");
  assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
  tok[TOKEN_LEN] = '\n';
  assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_not_terminated_is_fine(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX + 8];
  struct aln_session s;
  assert_int_equal(aln_session_issue(tok, ALN_SESSION_TOKEN_MAX, NULL, &key, NOW, 100), ALN_OK);
  memcpy(tok + TOKEN_LEN, "garbage", 8); /* the length, not a NUL, ends the token */
  assert_int_equal(aln_session_verify(&s, &key, tok, TOKEN_LEN, NOW), ALN_OK);
}

static void test_wrong_prefix(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX], signed_part[64];
  payload_token(tok, (uint64_t)NOW + 10, &key);
  memcpy(signed_part, tok, SIGNED_LEN);
  signed_part[SIGNED_LEN] = '\0';
  signed_part[3] = '2'; /* "aln2." correctly MACed */
  forge(tok, signed_part, &key);
  assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_wrong_separator(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  payload_token(tok, (uint64_t)NOW + 10, &key);
  tok[SIGNED_LEN] = '~';
  assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_empty(void **state) {
  (void)state;
  struct aln_session s;
  assert_int_equal(aln_session_verify(&s, &key, "", 0, NOW), ALN_ERR_SESSION_INVALID);
  assert_int_equal(aln_session_verify(&s, &key, NULL, 0, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_oversized(void **state) {
  (void)state;
  char big[4096];
  memset(big, 'A', sizeof(big));
  memcpy(big, "aln1.", 5);
  struct aln_session s;
  assert_int_equal(aln_session_verify(&s, &key, big, sizeof(big), NOW), ALN_ERR_SESSION_INVALID);
  assert_int_equal(aln_session_verify(&s, &key, big, ALN_SESSION_TOKEN_MAX, NOW), ALN_ERR_SESSION_INVALID);
}

static void test_non_base64_payload(void **state) {
  (void)state;
  /* Right length, right prefix, right MAC over the text, but the payload holds
   * characters outside base64url. */
  static const char bad_chars[] = "+/=*. ";
  for (size_t i = 0; i < sizeof(bad_chars) - 1; i++) {
    char tok[ALN_SESSION_TOKEN_MAX], signed_part[64];
    payload_token(tok, (uint64_t)NOW + 10, &key);
    memcpy(signed_part, tok, SIGNED_LEN);
    signed_part[SIGNED_LEN] = '\0';
    signed_part[10] = bad_chars[i];
    forge(tok, signed_part, &key);
    assert_int_equal(strlen(tok), TOKEN_LEN);
    assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
  }
}

static void test_expiry_beyond_int64(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  payload_token(tok, UINT64_MAX, &key);
  assert_int_equal(verify(tok, NOW), ALN_ERR_SESSION_INVALID);
  payload_token(tok, (uint64_t)INT64_MAX, &key);
  assert_int_equal(verify(tok, NOW), ALN_OK);
}

static void test_ttl_bounds(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  struct aln_session s;
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &key, NOW, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &key, NOW, -5), ALN_ERR_USAGE);
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &key, NOW, ALN_SESSION_TTL_MAX + 1), ALN_ERR_USAGE);
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &key, NOW, 1), ALN_OK);
  assert_int_equal(s.expires_at, NOW + 1);
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &key, NOW, ALN_SESSION_TTL_MAX), ALN_OK);
  assert_int_equal(s.expires_at, NOW + ALN_SESSION_TTL_MAX);
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &key, INT64_MAX - 10, 100), ALN_ERR_USAGE);
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &key, -1, 100), ALN_ERR_USAGE);
}

static void test_bad_arguments(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  struct aln_session s;
  struct aln_secret short_key = {.p = key.p, .len = ALN_SESSION_KEY_LEN - 1};
  assert_int_equal(aln_session_issue(tok, ALN_SESSION_TOKEN_MAX - 1, &s, &key, NOW, 10), ALN_ERR_USAGE);
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &short_key, NOW, 10), ALN_ERR_USAGE);
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &key, NOW, 10), ALN_OK);
  assert_int_equal(aln_session_verify(&s, &short_key, tok, strlen(tok), NOW), ALN_ERR_USAGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_issue_verify_round_trip),
      cmocka_unit_test(test_issue_ids_are_random),
      cmocka_unit_test(test_forge_helper_matches_format),
      cmocka_unit_test(test_expired_at_exact_expiry),
      cmocka_unit_test(test_tampered_payload),
      cmocka_unit_test(test_tampered_mac),
      cmocka_unit_test(test_non_canonical_mac_encoding),
      cmocka_unit_test(test_wrong_key),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_extra_chars),
      cmocka_unit_test(test_not_terminated_is_fine),
      cmocka_unit_test(test_wrong_prefix),
      cmocka_unit_test(test_wrong_separator),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_oversized),
      cmocka_unit_test(test_non_base64_payload),
      cmocka_unit_test(test_expiry_beyond_int64),
      cmocka_unit_test(test_ttl_bounds),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
