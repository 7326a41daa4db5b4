/* Tests for "local" evidence: a round trip, a known answer pinning the exact
 * bytes, and one named negative test per property of the strict verifier. The
 * malformed variants that must get past the signature check are built by hand
 * here (not with the producer) and signed with the test key, so the one defect
 * each test names is the only thing wrong with them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "attestation/local.h"

#define IAT 1700000000 /* 0x6553f100 */

/* Ed25519 seeds: 01..20 signs, 21..40 is "some other key". */
static const uint8_t seed_a[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t seed_b[32] = {33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
                                   49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64};

static EVP_PKEY *key_a, *key_b;
static uint8_t pub_a[32], pub_b[32];
static uint8_t binding[ALN_BINDING_LEN]; /* 80..9f */

/* --- fixtures --------------------------------------------------------------------- */

static EVP_PKEY *key_from_seed(const uint8_t seed[32], uint8_t pub[32]) {
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
  size_t len = 32;
  if (k == NULL || EVP_PKEY_get_raw_public_key(k, pub, &len) != 1 || len != 32) {
    EVP_PKEY_free(k);
    return NULL;
  }
  return k;
}

static int group_setup(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(binding); i++)
    binding[i] = (uint8_t)(0x80 + i);
  key_a = key_from_seed(seed_a, pub_a);
  key_b = key_from_seed(seed_b, pub_b);
  return key_a != NULL && key_b != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(key_a);
  EVP_PKEY_free(key_b);
  return 0;
}

/* A byte buffer big enough for anything these tests build. */
struct buf {
  uint8_t b[8192];
  size_t len;
};

static void put(struct buf *b, const void *p, size_t n) {
  assert_true(n <= sizeof(b->b) - b->len);
  memcpy(b->b + b->len, p, n);
  b->len += n;
}

static void put_u8(struct buf *b, uint8_t v) {
  put(b, &v, 1);
}

/* put_bstr_hdr writes the shortest byte-string header for |n| bytes. */
static void put_bstr_hdr(struct buf *b, size_t n) {
  if (n < 24) {
    put_u8(b, (uint8_t)(0x40 | n));
  } else if (n < 256) {
    put_u8(b, 0x58);
    put_u8(b, (uint8_t)n);
  } else {
    assert_true(n < 65536);
    put_u8(b, 0x59);
    put_u8(b, (uint8_t)(n >> 8));
    put_u8(b, (uint8_t)n);
  }
}

static void put_bstr(struct buf *b, const uint8_t *p, size_t n) {
  put_bstr_hdr(b, n);
  put(b, p, n);
}

/* Claims, one entry at a time, in the encoding the profile fixes. */
static void put_iat(struct buf *b) {
  put(b, "\x06\x1a\x65\x53\xf1\x00", 6);
}
static void put_nonce(struct buf *b, size_t n) {
  uint8_t nonce[64];
  for (size_t i = 0; i < n; i++)
    nonce[i] = i < sizeof(binding) ? binding[i] : 0;
  put_u8(b, 0x0a);
  put_bstr(b, nonce, n);
}
static void put_dbgstat(struct buf *b) {
  put(b, "\x19\x01\x07\x00", 4);
}
static void put_profile(struct buf *b) {
  put(b, "\x19\x01\x09\x78\x1d", 5);
  put(b, ALN_LOCAL_PROFILE, strlen(ALN_LOCAL_PROFILE));
}

/* good_claims writes the valid claims map for |binding| at IAT. */
static void good_claims(struct buf *b) {
  put_u8(b, 0xa4);
  put_iat(b);
  put_nonce(b, 32);
  put_dbgstat(b);
  put_profile(b);
}

static const uint8_t prot_good[] = {0xa1, 0x01, 0x27}; /* {1: -8} */
static const uint8_t unprot_empty[] = {0xa0};          /* {} */

/* cose_signed writes [tag 18] [prot, unprot, payload, sig] where sig is key's
 * Ed25519 signature over a Sig_structure built here byte by byte. */
static void cose_signed(struct buf *out, EVP_PKEY *key, bool tagged, const uint8_t *prot, size_t prot_len,
                        const uint8_t *unprot, size_t unprot_len, const uint8_t *payload, size_t payload_len) {
  struct buf tbs = {.len = 0};
  uint8_t sig[64];
  size_t sig_len = sizeof(sig);
  put(&tbs, "\x84\x6aSignature1", 12);
  put_bstr(&tbs, prot, prot_len);
  put_u8(&tbs, 0x40);
  put_bstr(&tbs, payload, payload_len);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_non_null(md);
  assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, key), 1);
  assert_int_equal(EVP_DigestSign(md, sig, &sig_len, tbs.b, tbs.len), 1);
  assert_int_equal(sig_len, 64);
  EVP_MD_CTX_free(md);

  out->len = 0;
  if (tagged)
    put_u8(out, 0xd2);
  put_u8(out, 0x84);
  put_bstr(out, prot, prot_len);
  put(out, unprot, unprot_len);
  put_bstr(out, payload, payload_len);
  put_bstr(out, sig, sig_len);
}

/* sign_claims signs |claims| with the good headers and key_a. */
static void sign_claims(struct buf *out, const struct buf *claims) {
  cose_signed(out, key_a, true, prot_good, sizeof(prot_good), unprot_empty, sizeof(unprot_empty), claims->b,
              claims->len);
}

static aln_status verify(const uint8_t *ev, size_t len) {
  struct aln_local_claims c;
  return aln_local_evidence_verify(&c, ev, len, pub_a, sizeof(pub_a), binding);
}

static void make(uint8_t **ev, size_t *len) {
  assert_int_equal(aln_local_evidence_make(ev, len, key_a, binding, IAT), ALN_OK);
}

/* --- positive -------------------------------------------------------------------- */

static void test_round_trip(void **state) {
  (void)state;
  static const int64_t times[] = {IAT, 0,   23,  24,   255,  256,       65535,     65536,
                                  -1,  -24, -25, -256, -257, INT64_MAX, INT64_MIN, (int64_t)UINT32_MAX + 1};
  for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
    uint8_t *ev = NULL;
    size_t len = 0;
    struct aln_local_claims c;
    memset(&c, 0xee, sizeof(c));
    assert_int_equal(aln_local_evidence_make(&ev, &len, key_a, binding, times[i]), ALN_OK);
    assert_true(len > 0 && len <= ALN_LOCAL_EVIDENCE_MAX);
    assert_int_equal(aln_local_evidence_verify(&c, ev, len, pub_a, sizeof(pub_a), binding), ALN_OK);
    assert_memory_equal(c.nonce, binding, sizeof(binding));
    assert_true(c.iat == times[i]);
    assert_int_equal(c.debug, 1);
    /* |out| is optional */
    assert_int_equal(aln_local_evidence_verify(NULL, ev, len, pub_a, sizeof(pub_a), binding), ALN_OK);
    free(ev);
  }
}

/* Fixed seed, binding and iat give exactly these bytes (Ed25519 is deterministic).
 * Everything but the signature is spelled out by hand below; the whole value,
 * signature included, was computed independently with python3's `cryptography`
 * (Ed25519PrivateKey.from_private_bytes(bytes(range(1,33))).sign(tbs)) over the
 * same hand-built Sig_structure
 *   84 6a "Signature1" 43 a1 01 27 40 58 50 <payload>. */
/* clang-format off */
static const uint8_t kat_prefix[] = {
    0xd2,                         /* tag(18) COSE_Sign1 */
    0x84,                         /* array(4) */
    0x43, 0xa1, 0x01, 0x27,       /* bstr(3) {1: -8}: protected, alg EdDSA */
    0xa0,                         /* {}: unprotected */
    0x58, 0x50,                   /* bstr(80) payload: */
    0xa4,                         /*   map(4) */
    0x06,                         /*   6 iat: */
    0x1a, 0x65, 0x53, 0xf1, 0x00, /*     uint32 1700000000 */
    0x0a,                         /*   10 eat_nonce: */
    0x58, 0x20,                   /*     bstr(32) 80..9f */
    0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
    0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f,
    0x19, 0x01, 0x07,             /*   263 dbgstat: */
    0x00,                         /*     0 (enabled) */
    0x19, 0x01, 0x09,             /*   265 eat_profile: */
    0x78, 0x1d,                   /*     tstr(29) */
    't', 'a', 'g', ':', 'a', 'i', 'l', 'e', 'r', 'o', 'n', '.', 'd', 'e', 'v', ',',
    '2', '0', '2', '6', ':', 'l', 'o', 'c', 'a', 'l', '-', 'v', '1',
    0x58, 0x40,                   /* bstr(64) signature: kat_sig */
};
/* clang-format on */
static const uint8_t kat_sig[64] = {
    0xb4, 0x28, 0x78, 0xf8, 0x25, 0x13, 0xed, 0xa5, 0xc0, 0xba, 0xa8, 0x76, 0x6e, 0xfc, 0x26, 0xcc,
    0x1c, 0xc7, 0x72, 0xf7, 0xc2, 0x36, 0x6d, 0x72, 0x4a, 0x36, 0x64, 0xa7, 0xef, 0xd2, 0x37, 0x0d,
    0x83, 0x3c, 0x60, 0xb1, 0x48, 0x5b, 0xe2, 0xf5, 0xf4, 0x1b, 0x58, 0x45, 0xfc, 0x65, 0xb8, 0xec,
    0xdc, 0x3f, 0x10, 0xca, 0xa7, 0x5d, 0xe2, 0xa6, 0x54, 0xe0, 0x16, 0x9a, 0x7a, 0x98, 0xef, 0x07,
};
/* The public key python derived from the same seed. */
static const uint8_t kat_pub[32] = {0x79, 0xb5, 0x56, 0x2e, 0x8f, 0xe6, 0x54, 0xf9, 0x40, 0x78, 0xb1,
                                    0x12, 0xe8, 0xa9, 0x8b, 0xa7, 0x90, 0x1f, 0x85, 0x3a, 0xe6, 0x95,
                                    0xbe, 0xd7, 0xe0, 0xe3, 0x91, 0x0b, 0xad, 0x04, 0x96, 0x64};

static void test_known_answer(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  assert_int_equal(sizeof(kat_prefix), 9 + 0x50 + 2);
  assert_memory_equal(pub_a, kat_pub, sizeof(kat_pub));
  make(&ev, &len);
  assert_int_equal(len, sizeof(kat_prefix) + sizeof(kat_sig));
  assert_memory_equal(ev, kat_prefix, sizeof(kat_prefix));
  assert_memory_equal(ev + sizeof(kat_prefix), kat_sig, sizeof(kat_sig));
  free(ev);

  /* and the independently produced bytes verify */
  struct buf b = {.len = 0};
  put(&b, kat_prefix, sizeof(kat_prefix));
  put(&b, kat_sig, sizeof(kat_sig));
  assert_int_equal(aln_local_evidence_verify(NULL, b.b, b.len, kat_pub, sizeof(kat_pub), binding), ALN_OK);
}

/* The test's hand-built signer produces what the producer does, so the negative
 * tests below differ from valid evidence only in the defect they name. */
static void test_hand_built_matches_producer(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, ev = {.len = 0};
  uint8_t *made = NULL;
  size_t made_len = 0;
  good_claims(&claims);
  sign_claims(&ev, &claims);
  make(&made, &made_len);
  assert_int_equal(ev.len, made_len);
  assert_memory_equal(ev.b, made, made_len);
  assert_int_equal(verify(ev.b, ev.len), ALN_OK);
  free(made);
}

static void test_untagged_accepted(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  make(&ev, &len);
  assert_int_equal(ev[0], 0xd2);
  assert_int_equal(verify(ev + 1, len - 1), ALN_OK);
  free(ev);
}

/* --- binding and signature ------------------------------------------------------ */

static void test_wrong_binding(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  uint8_t other[ALN_BINDING_LEN];
  make(&ev, &len);
  for (size_t i = 0; i < sizeof(other); i++) {
    memcpy(other, binding, sizeof(other));
    other[i] ^= 0x80;
    assert_int_equal(aln_local_evidence_verify(NULL, ev, len, pub_a, sizeof(pub_a), other), ALN_ERR_ATTEST_BINDING);
  }
  free(ev);
}

static void test_wrong_key(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  make(&ev, &len);
  assert_int_equal(aln_local_evidence_verify(NULL, ev, len, pub_b, sizeof(pub_b), binding), ALN_ERR_ATTEST_SIG);
  free(ev);
  /* signed by the other key, checked against ours */
  assert_int_equal(aln_local_evidence_make(&ev, &len, key_b, binding, IAT), ALN_OK);
  assert_int_equal(verify(ev, len), ALN_ERR_ATTEST_SIG);
  free(ev);
}

static void test_flipped_signature_byte(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  make(&ev, &len);
  for (size_t i = len - 64; i < len; i++) {
    ev[i] ^= 0x01;
    assert_int_equal(verify(ev, len), ALN_ERR_ATTEST_SIG);
    ev[i] ^= 0x01;
  }
  assert_int_equal(verify(ev, len), ALN_OK);
  free(ev);
}

static void test_flipped_payload_byte(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  make(&ev, &len);
  /* payload is bytes 9 .. 9+80 (see kat_prefix) */
  for (size_t i = 9; i < 9 + 0x50; i++) {
    ev[i] ^= 0x01;
    assert_int_equal(verify(ev, len), ALN_ERR_ATTEST_SIG);
    ev[i] ^= 0x01;
  }
  free(ev);
}

/* Whatever byte is damaged, the result is never success. */
static void test_any_flipped_bit_refused(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  make(&ev, &len);
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      ev[i] ^= (uint8_t)(1u << bit);
      assert_int_not_equal(verify(ev, len), ALN_OK);
      ev[i] ^= (uint8_t)(1u << bit);
    }
  }
  free(ev);
}

/* --- framing ----------------------------------------------------------------------- */

static void test_truncated_evidence(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  make(&ev, &len);
  for (size_t n = 0; n < len; n++) {
    /* a heap copy of exactly n bytes, so ASan sees any read past the end */
    uint8_t *p = malloc(n == 0 ? 1 : n);
    assert_non_null(p);
    memcpy(p, ev, n);
    assert_int_equal(verify(p, n), ALN_ERR_TRUNCATED);
    free(p);
  }
  free(ev);
}

static void test_trailing_byte(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  struct buf b = {.len = 0};
  make(&ev, &len);
  static const uint8_t extra[] = {0x00, 0xff, 0xa0, 0xd2};
  for (size_t i = 0; i < sizeof(extra); i++) {
    b.len = 0;
    put(&b, ev, len);
    put_u8(&b, extra[i]);
    assert_int_equal(verify(b.b, b.len), ALN_ERR_TRAILING);
  }
  free(ev);

  /* trailing bytes inside the signed payload are refused too */
  struct buf claims = {.len = 0};
  good_claims(&claims);
  put_u8(&claims, 0x00);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_TRAILING);
}

/* The cap is applied before decoding: one byte over it is refused as oversized
 * even though the content is a valid evidence plus padding, while at the cap the
 * same input is decoded (and refused for its trailing bytes). */
static void test_oversized_input(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  uint8_t *big = calloc(1, ALN_LOCAL_EVIDENCE_MAX + 1);
  assert_non_null(big);
  make(&ev, &len);
  memcpy(big, ev, len);
  assert_int_equal(verify(big, ALN_LOCAL_EVIDENCE_MAX), ALN_ERR_TRAILING);
  assert_int_equal(verify(big, ALN_LOCAL_EVIDENCE_MAX + 1), ALN_ERR_MALFORMED);
  free(big);
  free(ev);

  /* a well-formed, properly signed evidence just over the cap */
  struct buf claims = {.len = 0}, b = {.len = 0};
  claims.len = ALN_LOCAL_EVIDENCE_MAX;
  memset(claims.b, 0, claims.len);
  sign_claims(&b, &claims);
  assert_true(b.len > ALN_LOCAL_EVIDENCE_MAX);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

/* A header declaring far more elements than the input holds is refused before
 * libcbor would preallocate them (2^36 pointers here). */
static void test_huge_declared_count(void **state) {
  (void)state;
  static const uint8_t arr[] = {0x9b, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00};
  static const uint8_t map[] = {0xbb, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  static const uint8_t bstr[] = {0x5b, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00};
  assert_int_equal(verify(arr, sizeof(arr)), ALN_ERR_TRUNCATED);
  assert_int_equal(verify(map, sizeof(map)), ALN_ERR_TRUNCATED);
  assert_int_equal(verify(bstr, sizeof(bstr)), ALN_ERR_TRUNCATED);
}

static void test_nesting_depth_bounded(void **state) {
  (void)state;
  uint8_t deep[ALN_LOCAL_EVIDENCE_MAX];
  memset(deep, 0x81, sizeof(deep)); /* [[[[...]]]] */
  deep[sizeof(deep) - 1] = 0x00;
  assert_int_equal(verify(deep, sizeof(deep)), ALN_ERR_MALFORMED);
  memset(deep, 0xd2, sizeof(deep)); /* 18(18(18(...))) */
  deep[sizeof(deep) - 1] = 0x00;
  assert_int_equal(verify(deep, sizeof(deep)), ALN_ERR_MALFORMED);
}

static void test_wrong_tag(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  struct buf b = {.len = 0};
  make(&ev, &len);
  /* tag 17 (COSE_Mac0) */
  ev[0] = 0xd1;
  assert_int_equal(verify(ev, len), ALN_ERR_MALFORMED);
  /* tag 98 (COSE_Sign), two-byte tag header */
  put(&b, "\xd8\x62", 2);
  put(&b, ev + 1, len - 1);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* 18(18(...)): one tag only */
  b.len = 0;
  put(&b, "\xd2\xd2", 2);
  put(&b, ev + 1, len - 1);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  free(ev);
}

static void test_wrong_array_length(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  struct buf b = {.len = 0};
  make(&ev, &len);
  /* three elements: drop the signature */
  put(&b, "\xd2\x83", 2);
  put(&b, ev + 2, len - 2 - 66);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* five elements: an extra empty bstr */
  b.len = 0;
  put(&b, "\xd2\x85", 2);
  put(&b, ev + 2, len - 2);
  put_u8(&b, 0x40);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* a map instead of an array */
  b.len = 0;
  put(&b, "\xd2\xa2", 2);
  put(&b, ev + 2, len - 2);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  free(ev);
}

static void test_signature_length(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  struct buf b = {.len = 0};
  make(&ev, &len);
  /* 63 bytes */
  put(&b, ev, len - 66);
  put(&b, "\x58\x3f", 2);
  put(&b, ev + len - 64, 63);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* 65 bytes */
  b.len = 0;
  put(&b, ev, len - 66);
  put(&b, "\x58\x41", 2);
  put(&b, ev + len - 64, 64);
  put_u8(&b, 0x00);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  free(ev);
}

/* --- indefinite lengths ------------------------------------------------------------- */

static void test_indefinite_array(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  struct buf b = {.len = 0};
  make(&ev, &len);
  put(&b, "\xd2\x9f", 2); /* tag(18) [_ */
  put(&b, ev + 2, len - 2);
  put_u8(&b, 0xff);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  free(ev);
}

static void test_indefinite_map(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  static const uint8_t unprot_indef[] = {0xbf, 0xff}; /* {_ } */
  good_claims(&claims);
  cose_signed(&b, key_a, true, prot_good, sizeof(prot_good), unprot_indef, sizeof(unprot_indef), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);

  /* the same claims in an indefinite map, properly signed */
  claims.len = 0;
  good_claims(&claims);
  claims.b[0] = 0xbf;
  put_u8(&claims, 0xff);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);

  /* {_ 1: -8} as protected header, properly signed */
  static const uint8_t prot_indef[] = {0xbf, 0x01, 0x27, 0xff};
  claims.len = 0;
  good_claims(&claims);
  cose_signed(&b, key_a, true, prot_indef, sizeof(prot_indef), unprot_empty, sizeof(unprot_empty), claims.b,
              claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

static void test_indefinite_bstr(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  good_claims(&claims);
  sign_claims(&b, &claims);
  /* re-wrap the payload as (_ h'<first 40>', h'<rest>') */
  struct buf c = {.len = 0};
  put(&c, b.b, 7); /* d2 84 43 a1 01 27 a0 */
  put_u8(&c, 0x5f);
  put_bstr(&c, claims.b, 40);
  put_bstr(&c, claims.b + 40, claims.len - 40);
  put_u8(&c, 0xff);
  put(&c, b.b + b.len - 66, 66);
  assert_int_equal(verify(c.b, c.len), ALN_ERR_MALFORMED);

  /* an indefinite eat_nonce inside properly signed claims */
  claims.len = 0;
  put_u8(&claims, 0xa4);
  put_iat(&claims);
  put(&claims, "\x0a\x5f", 2);
  put_bstr(&claims, binding, 16);
  put_bstr(&claims, binding + 16, 16);
  put_u8(&claims, 0xff);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

static void test_indefinite_tstr(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  put_u8(&claims, 0xa4);
  put_iat(&claims);
  put_nonce(&claims, 32);
  put_dbgstat(&claims);
  const char *profile = ALN_LOCAL_PROFILE;
  put(&claims, "\x19\x01\x09\x7f\x6a", 5); /* 265: (_ tstr(10) */
  put(&claims, profile, 10);
  put(&claims, "\x73", 1); /* tstr(19) */
  put(&claims, &profile[10], 19);
  put_u8(&claims, 0xff);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

/* --- headers ------------------------------------------------------------------------ */

static void test_protected_with_crit(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  static const uint8_t prot_crit[] = {0xa2, 0x01, 0x27, 0x02, 0x81, 0x01}; /* {1: -8, 2: [1]} */
  good_claims(&claims);
  cose_signed(&b, key_a, true, prot_crit, sizeof(prot_crit), unprot_empty, sizeof(unprot_empty), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* any other extra label too: {1: -8, 4: h'01'} (kid) */
  static const uint8_t prot_kid[] = {0xa2, 0x01, 0x27, 0x04, 0x41, 0x01};
  cose_signed(&b, key_a, true, prot_kid, sizeof(prot_kid), unprot_empty, sizeof(unprot_empty), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* a duplicated alg label: {1: -8, 1: -8} */
  static const uint8_t prot_dup[] = {0xa2, 0x01, 0x27, 0x01, 0x27};
  cose_signed(&b, key_a, true, prot_dup, sizeof(prot_dup), unprot_empty, sizeof(unprot_empty), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

static void test_alg_not_eddsa(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  static const uint8_t algs[][3] = {
      {0xa1, 0x01, 0x26}, /* -7 ES256 */
      {0xa1, 0x01, 0x28}, /* -9 */
      {0xa1, 0x01, 0x08}, /* +8 */
      {0xa1, 0x02, 0x27}, /* -8 under label 2 */
  };
  good_claims(&claims);
  for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
    cose_signed(&b, key_a, true, algs[i], 3, unprot_empty, sizeof(unprot_empty), claims.b, claims.len);
    assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  }
  /* alg as text, empty protected header, protected header not a map */
  static const uint8_t prot_text[] = {0xa1, 0x01, 0x65, 'E', 'd', 'D', 'S', 'A'};
  cose_signed(&b, key_a, true, prot_text, sizeof(prot_text), unprot_empty, sizeof(unprot_empty), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  static const uint8_t prot_empty_map[] = {0xa0};
  cose_signed(&b, key_a, true, prot_empty_map, 1, unprot_empty, sizeof(unprot_empty), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  static const uint8_t prot_array[] = {0x82, 0x01, 0x27};
  cose_signed(&b, key_a, true, prot_array, 3, unprot_empty, sizeof(unprot_empty), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

/* {1: -8} with the label in a non-shortest encoding decodes to the right header
 * but is not the deterministic encoding. */
static void test_protected_not_deterministic(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  static const uint8_t prot_long[] = {0xa1, 0x18, 0x01, 0x27};
  good_claims(&claims);
  cose_signed(&b, key_a, true, prot_long, sizeof(prot_long), unprot_empty, sizeof(unprot_empty), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

static void test_unprotected_not_empty(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  static const uint8_t unprot_kid[] = {0xa1, 0x04, 0x41, 0x01}; /* {4: h'01'} */
  good_claims(&claims);
  cose_signed(&b, key_a, true, prot_good, sizeof(prot_good), unprot_kid, sizeof(unprot_kid), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* not a map at all */
  static const uint8_t unprot_bstr[] = {0x40};
  cose_signed(&b, key_a, true, prot_good, sizeof(prot_good), unprot_bstr, sizeof(unprot_bstr), claims.b, claims.len);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

/* --- claims ------------------------------------------------------------------------- */

static void test_duplicate_claim_key(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  /* five entries, iat twice */
  put_u8(&claims, 0xa5);
  put_iat(&claims);
  put_iat(&claims);
  put_nonce(&claims, 32);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);

  /* four entries, nonce twice (the second one a different value) and no iat */
  claims.len = 0;
  put_u8(&claims, 0xa4);
  put_nonce(&claims, 32);
  put(&claims, "\x0a\x58\x20", 3);
  for (int i = 0; i < 32; i++)
    put_u8(&claims, 0x55);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

static void test_missing_nonce(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  put_u8(&claims, 0xa3);
  put_iat(&claims);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

static void test_missing_other_claims(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  /* each of the four left out in turn */
  for (int skip = 0; skip < 4; skip++) {
    claims.len = 0;
    put_u8(&claims, 0xa3);
    if (skip != 0)
      put_iat(&claims);
    if (skip != 1)
      put_nonce(&claims, 32);
    if (skip != 2)
      put_dbgstat(&claims);
    if (skip != 3)
      put_profile(&claims);
    sign_claims(&b, &claims);
    assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  }
}

static void test_nonce_length(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  static const size_t lens[] = {31, 33, 0};
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    claims.len = 0;
    put_u8(&claims, 0xa4);
    put_iat(&claims);
    put_nonce(&claims, lens[i]);
    put_dbgstat(&claims);
    put_profile(&claims);
    sign_claims(&b, &claims);
    assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  }
  /* the nonce as a text string */
  claims.len = 0;
  put_u8(&claims, 0xa4);
  put_iat(&claims);
  put(&claims, "\x0a\x78\x20", 3);
  put(&claims, "0123456789abcdef0123456789abcdef", 32);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

static void test_unknown_claim_key(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  static const uint8_t extras[][3] = {
      {0x07, 0x00},      /* 7 (cti-like): 0 */
      {0x20, 0x00},      /* -1: 0 */
      {0x61, 'x', 0x00}, /* "x": 0 */
  };
  static const size_t extra_len[] = {2, 2, 3};
  for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
    claims.len = 0;
    put_u8(&claims, 0xa5);
    put_iat(&claims);
    put(&claims, extras[i], extra_len[i]);
    put_nonce(&claims, 32);
    put_dbgstat(&claims);
    put_profile(&claims);
    sign_claims(&b, &claims);
    assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  }
}

static void test_claim_types(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  /* dbgstat 1 (disabled): the profile fixes 0 */
  put_u8(&claims, 0xa4);
  put_iat(&claims);
  put_nonce(&claims, 32);
  put(&claims, "\x19\x01\x07\x01", 4);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* another profile of the same length */
  claims.len = 0;
  put_u8(&claims, 0xa4);
  put_iat(&claims);
  put_nonce(&claims, 32);
  put_dbgstat(&claims);
  put(&claims, "\x19\x01\x09\x78\x1d", 5);
  put(&claims, "tag:aileron.dev,2026:local-v2", 29);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* iat as a float */
  claims.len = 0;
  put_u8(&claims, 0xa4);
  put(&claims, "\x06\xfa\x4e\xca\xa7\xe2", 6);
  put_nonce(&claims, 32);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* iat beyond int64 */
  claims.len = 0;
  put_u8(&claims, 0xa4);
  put(&claims, "\x06\x1b\x80\x00\x00\x00\x00\x00\x00\x00", 10);
  put_nonce(&claims, 32);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* payload is not a map */
  claims.len = 0;
  put(&claims, "\x84\x01\x02\x03\x04", 5);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

/* Valid values in a non-deterministic encoding are refused. */
static void test_claims_not_deterministic(void **state) {
  (void)state;
  struct buf claims = {.len = 0}, b = {.len = 0};
  /* iat in eight bytes */
  put_u8(&claims, 0xa4);
  put(&claims, "\x06\x1b\x00\x00\x00\x00\x65\x53\xf1\x00", 10);
  put_nonce(&claims, 32);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
  /* keys out of order: nonce before iat */
  claims.len = 0;
  put_u8(&claims, 0xa4);
  put_nonce(&claims, 32);
  put_iat(&claims);
  put_dbgstat(&claims);
  put_profile(&claims);
  sign_claims(&b, &claims);
  assert_int_equal(verify(b.b, b.len), ALN_ERR_MALFORMED);
}

/* --- arguments ---------------------------------------------------------------------- */

/* Without an expected binding (offline verification) the signature is still
 * checked, and the nonce the evidence carries is reported, from this evidence. */
static void test_no_expected_binding(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  struct aln_local_claims c;
  make(&ev, &len);
  memset(&c, 0x5a, sizeof(c)); /* whatever the stack held must not survive */
  assert_int_equal(aln_local_evidence_verify(&c, ev, len, pub_a, 32, NULL), ALN_OK);
  assert_memory_equal(c.nonce, binding, ALN_BINDING_LEN);
  assert_int_equal(c.iat, IAT);
  assert_int_equal(aln_local_evidence_verify(&c, ev, len, pub_b, 32, NULL), ALN_ERR_ATTEST_SIG);
  free(ev);
}

static void test_bad_arguments(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t len = 0;
  make(&ev, &len);
  assert_int_equal(aln_local_evidence_verify(NULL, ev, len, pub_a, 31, binding), ALN_ERR_USAGE);
  assert_int_equal(aln_local_evidence_verify(NULL, ev, len, pub_a, 33, binding), ALN_ERR_USAGE);
  assert_int_equal(aln_local_evidence_verify(NULL, NULL, len, pub_a, 32, binding), ALN_ERR_USAGE);
  assert_int_equal(aln_local_evidence_verify(NULL, ev, len, NULL, 32, binding), ALN_ERR_USAGE);
  free(ev);

  uint8_t *none = NULL;
  assert_int_equal(aln_local_evidence_make(&none, &len, NULL, binding, IAT), ALN_ERR_USAGE);
  assert_int_equal(aln_local_evidence_make(&none, &len, key_a, NULL, IAT), ALN_ERR_USAGE);
  assert_int_equal(aln_local_evidence_make(NULL, &len, key_a, binding, IAT), ALN_ERR_USAGE);
  /* an X25519 key is 32 bytes too, but not a signing key */
  EVP_PKEY *x = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, seed_a, 32);
  assert_non_null(x);
  assert_int_equal(aln_local_evidence_make(&none, &len, x, binding, IAT), ALN_ERR_USAGE);
  EVP_PKEY_free(x);
  assert_null(none);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_known_answer),
      cmocka_unit_test(test_hand_built_matches_producer),
      cmocka_unit_test(test_untagged_accepted),
      cmocka_unit_test(test_wrong_binding),
      cmocka_unit_test(test_wrong_key),
      cmocka_unit_test(test_flipped_signature_byte),
      cmocka_unit_test(test_flipped_payload_byte),
      cmocka_unit_test(test_any_flipped_bit_refused),
      cmocka_unit_test(test_truncated_evidence),
      cmocka_unit_test(test_trailing_byte),
      cmocka_unit_test(test_oversized_input),
      cmocka_unit_test(test_huge_declared_count),
      cmocka_unit_test(test_nesting_depth_bounded),
      cmocka_unit_test(test_wrong_tag),
      cmocka_unit_test(test_wrong_array_length),
      cmocka_unit_test(test_signature_length),
      cmocka_unit_test(test_indefinite_array),
      cmocka_unit_test(test_indefinite_map),
      cmocka_unit_test(test_indefinite_bstr),
      cmocka_unit_test(test_indefinite_tstr),
      cmocka_unit_test(test_protected_with_crit),
      cmocka_unit_test(test_alg_not_eddsa),
      cmocka_unit_test(test_protected_not_deterministic),
      cmocka_unit_test(test_unprotected_not_empty),
      cmocka_unit_test(test_duplicate_claim_key),
      cmocka_unit_test(test_missing_nonce),
      cmocka_unit_test(test_missing_other_claims),
      cmocka_unit_test(test_nonce_length),
      cmocka_unit_test(test_unknown_claim_key),
      cmocka_unit_test(test_claim_types),
      cmocka_unit_test(test_claims_not_deterministic),
      cmocka_unit_test(test_no_expected_binding),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
