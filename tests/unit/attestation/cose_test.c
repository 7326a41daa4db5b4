/* Tests for the strict COSE_Sign1 decoder and CBOR loader every evidence kind
 * shares: known answers for what it builds, views that point into the input, and
 * one named test per rule of the decoder. The inputs are built byte by byte here,
 * so each differs from a valid message only in the defect its test names. The
 * signatures are never checked by this module, so they are filler bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "attestation/cose.h"

#define SIG_LEN 96
#define CAP 1024

static const struct aln_cose_profile es384 = {.alg = ALN_COSE_ALG_ES384, .sig_len = SIG_LEN, .max_len = CAP};
static const struct aln_cose_profile es384_unprot = {
    .alg = ALN_COSE_ALG_ES384, .sig_len = SIG_LEN, .max_len = CAP, .allow_unprotected = 1};

static const uint8_t prot_es384[] = {0xa1, 0x01, 0x38, 0x22}; /* {1: -35} */
static const uint8_t payload[] = {0xa1, 0x61, 'k', 0x01};     /* {"k": 1} */

struct buf {
  uint8_t b[4096];
  size_t len;
};

static void put(struct buf *b, const void *p, size_t n) {
  assert_true(n <= sizeof(b->b) - b->len);
  if (n > 0)
    memcpy(b->b + b->len, p, n);
  b->len += n;
}

static void put_u8(struct buf *b, uint8_t v) {
  put(b, &v, 1);
}

static void put_bstr(struct buf *b, const uint8_t *p, size_t n) {
  if (n < 24) {
    put_u8(b, (uint8_t)(0x40 | n));
  } else if (n < 256) {
    put_u8(b, 0x58);
    put_u8(b, (uint8_t)n);
  } else {
    put_u8(b, 0x59);
    put_u8(b, (uint8_t)(n >> 8));
    put_u8(b, (uint8_t)n);
  }
  put(b, p, n);
}

/* message writes [tag] [prot, unprot, payload, sig] with a filler signature. */
static void message(struct buf *b, int tagged, const uint8_t *prot, size_t prot_len, const uint8_t *unprot,
                    size_t unprot_len, const uint8_t *pl, size_t pl_len, size_t sig_len) {
  uint8_t sig[128];
  memset(sig, 0x5a, sizeof(sig));
  b->len = 0;
  if (tagged)
    put_u8(b, 0xd2);
  put_u8(b, 0x84);
  put_bstr(b, prot, prot_len);
  put(b, unprot, unprot_len);
  put_bstr(b, pl, pl_len);
  put_bstr(b, sig, sig_len);
}

static void good(struct buf *b, int tagged) {
  message(b, tagged, prot_es384, sizeof(prot_es384), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
}

static aln_status decode(const struct buf *b, const struct aln_cose_profile *prof) {
  struct aln_cose_sign1 m;
  struct aln_refusal why = {0};
  aln_status st = aln_cose_sign1_decode(&m, &why, b->b, b->len, prof);
  /* the refusal carries the status returned, and a reason */
  if (st != ALN_OK) {
    assert_int_equal(why.status, st);
    assert_true(why.why[0] != '\0');
  }
  return st;
}

static aln_status load(const void *p, size_t len, size_t depth) {
  cbor_item_t *it = NULL;
  aln_status st = aln_cose_cbor_load(&it, p, len, depth);
  if (st == ALN_OK) {
    assert_non_null(it);
    cbor_decref(&it);
  } else {
    assert_null(it);
  }
  return st;
}

/* --- building ------------------------------------------------------------------------ */

static void test_protected_encode(void **state) {
  (void)state;
  uint8_t out[16];
  struct aln_cbb cbb;
  aln_cbb_init_fixed(&cbb, out, sizeof(out));
  assert_int_equal(aln_cose_protected_encode(&cbb, ALN_COSE_ALG_ES384), ALN_OK);
  assert_int_equal(cbb.len, 4);
  assert_memory_equal(out, prot_es384, 4);
  aln_cbb_init_fixed(&cbb, out, sizeof(out));
  assert_int_equal(aln_cose_protected_encode(&cbb, ALN_COSE_ALG_EDDSA), ALN_OK);
  assert_int_equal(cbb.len, 3);
  assert_memory_equal(out, "\xa1\x01\x27", 3);
}

/* RFC 9052 §4.4: ["Signature1", protected, external_aad = h'', payload]. */
static void test_sig_structure_known_answer(void **state) {
  (void)state;
  static const uint8_t want[] = {0x84, 0x6a, 'S',  'i',  'g',  'n',  'a',  't',  'u',  'r', 'e', '1',
                                 0x44, 0xa1, 0x01, 0x38, 0x22, 0x40, 0x44, 0xa1, 0x61, 'k', 0x01};
  uint8_t out[64];
  struct aln_cbb cbb;
  aln_cbb_init_fixed(&cbb, out, sizeof(out));
  assert_int_equal(aln_cose_sig_structure(&cbb, prot_es384, sizeof(prot_es384), payload, sizeof(payload)), ALN_OK);
  assert_int_equal(cbb.len, sizeof(want));
  assert_memory_equal(out, want, sizeof(want));
  /* a writer too small for it says so */
  aln_cbb_init_fixed(&cbb, out, sizeof(want) - 1);
  assert_int_equal(aln_cose_sig_structure(&cbb, prot_es384, sizeof(prot_es384), payload, sizeof(payload)),
                   ALN_ERR_TOO_LARGE);
  /* a 300-byte payload takes a two-byte length */
  uint8_t big[300];
  memset(big, 7, sizeof(big));
  uint8_t out2[400];
  aln_cbb_init_fixed(&cbb, out2, sizeof(out2));
  assert_int_equal(aln_cose_sig_structure(&cbb, prot_es384, sizeof(prot_es384), big, sizeof(big)), ALN_OK);
  assert_memory_equal(out2 + 18, "\x59\x01\x2c", 3);
  assert_int_equal(cbb.len, 18 + 3 + 300);
}

static void test_encode_decode_round_trip(void **state) {
  (void)state;
  uint8_t out[512], sig[SIG_LEN];
  struct aln_cbb cbb;
  struct aln_cose_sign1 m;
  struct buf b;
  memset(sig, 0x33, sizeof(sig));
  aln_cbb_init_fixed(&cbb, out, sizeof(out));
  assert_int_equal(aln_cose_sign1_encode(&cbb, ALN_COSE_ALG_ES384, payload, sizeof(payload), sig, sizeof(sig)), ALN_OK);
  good(&b, 1);
  memset(b.b + b.len - SIG_LEN, 0x33, SIG_LEN);
  assert_int_equal(cbb.len, b.len);
  assert_memory_equal(out, b.b, b.len);
  assert_int_equal(aln_cose_sign1_decode(&m, NULL, out, cbb.len, &es384), ALN_OK);
  assert_memory_equal(m.sig, sig, SIG_LEN);
}

/* --- decoding: what it returns ---------------------------------------------------- */

static void test_views_point_into_input(void **state) {
  (void)state;
  struct buf b;
  struct aln_cose_sign1 m;
  for (int tagged = 0; tagged <= 1; tagged++) {
    good(&b, tagged);
    memset(&m, 0, sizeof(m));
    assert_int_equal(aln_cose_sign1_decode(&m, NULL, b.b, b.len, &es384), ALN_OK);
    size_t t = (size_t)tagged;
    assert_ptr_equal(m.protected_hdr, b.b + t + 2);
    assert_int_equal(m.protected_len, 4);
    assert_ptr_equal(m.unprotected, b.b + t + 6);
    assert_int_equal(m.unprotected_len, 1);
    assert_ptr_equal(m.payload, b.b + t + 8);
    assert_int_equal(m.payload_len, sizeof(payload));
    assert_ptr_equal(m.sig, b.b + t + 8 + sizeof(payload) + 2);
    assert_int_equal(m.sig_len, SIG_LEN);
  }
}

/* Non-shortest heads in the envelope decode to the same parts: the signature covers
 * the parts, not the envelope's encoding. */
static void test_envelope_long_heads(void **state) {
  (void)state;
  struct buf b = {.len = 0};
  struct aln_cose_sign1 m;
  uint8_t sig[SIG_LEN];
  memset(sig, 1, sizeof(sig));
  put(&b, "\x98\x04", 2);                  /* array, count in one extra byte */
  put(&b, "\x58\x04\xa1\x01\x38\x22", 6);  /* bstr, length in one extra byte */
  put_u8(&b, 0xa0);                        /* {} */
  put(&b, "\x59\x00\x04\xa1\x61k\x01", 7); /* payload, length in two */
  put(&b, "\x5a\x00\x00\x00\x60", 5);      /* signature, length in four */
  put(&b, sig, sizeof(sig));
  assert_int_equal(aln_cose_sign1_decode(&m, NULL, b.b, b.len, &es384), ALN_OK);
  assert_memory_equal(m.payload, payload, sizeof(payload));
}

/* --- decoding: the rules ------------------------------------------------------------- */

static void test_size_cap_first(void **state) {
  (void)state;
  struct buf b;
  good(&b, 1);
  struct aln_cose_profile tight = es384;
  tight.max_len = b.len;
  assert_int_equal(decode(&b, &tight), ALN_OK);
  tight.max_len = b.len - 1;
  assert_int_equal(decode(&b, &tight), ALN_ERR_MALFORMED);
  /* over the cap is refused even when the bytes are garbage a decoder would choke on */
  uint8_t junk[CAP + 1];
  memset(junk, 0xff, sizeof(junk));
  struct aln_cose_sign1 m;
  assert_int_equal(aln_cose_sign1_decode(&m, NULL, junk, sizeof(junk), &es384), ALN_ERR_MALFORMED);
}

static void test_truncated_and_trailing(void **state) {
  (void)state;
  struct buf b;
  struct aln_cose_sign1 m;
  good(&b, 1);
  for (size_t n = 0; n < b.len; n++) {
    uint8_t *p = malloc(n == 0 ? 1 : n); /* exact size, so ASan sees any over-read */
    assert_non_null(p);
    memcpy(p, b.b, n);
    assert_int_equal(aln_cose_sign1_decode(&m, NULL, p, n, &es384), ALN_ERR_TRUNCATED);
    free(p);
  }
  put_u8(&b, 0x00);
  assert_int_equal(decode(&b, &es384), ALN_ERR_TRAILING);
}

static void test_tags(void **state) {
  (void)state;
  struct buf b, t;
  good(&b, 0);
  static const char *const prefixes[] = {"\xd1", "\xd8\x12", "\xd2\xd2", "\xd8\x62"};
  static const size_t prefix_len[] = {1, 2, 2, 2};
  for (size_t i = 0; i < 4; i++) {
    t.len = 0;
    put(&t, prefixes[i], prefix_len[i]);
    put(&t, b.b, b.len);
    assert_int_equal(decode(&t, &es384), ALN_ERR_MALFORMED);
  }
}

static void test_not_an_array_of_four(void **state) {
  (void)state;
  struct buf b;
  good(&b, 0);
  b.b[0] = 0x83;
  b.len -= 2 + SIG_LEN; /* three: the signature dropped */
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  good(&b, 0);
  b.b[0] = 0x85; /* five: an extra empty bstr */
  put_u8(&b, 0x40);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  good(&b, 0);
  b.b[0] = 0xa2; /* a map of two pairs over the same four items */
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  good(&b, 0);
  b.b[0] = 0x9f; /* indefinite array */
  put_u8(&b, 0xff);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
}

static void test_member_types(void **state) {
  (void)state;
  struct buf b;
  /* protected as a text string */
  good(&b, 0);
  b.b[1] = 0x64;
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  /* empty payload, and a nil payload (detached content is not supported) */
  message(&b, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, payload, 0, SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  b.len = 0;
  put_u8(&b, 0x84);
  put_bstr(&b, prot_es384, 4);
  put(&b, "\xa0\xf6", 2);
  uint8_t sig[SIG_LEN] = {0};
  put_bstr(&b, sig, SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  /* signature one byte short and one long */
  message(&b, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN - 1);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  message(&b, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN + 1);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
}

static void test_alg_must_match(void **state) {
  (void)state;
  struct buf b;
  struct aln_refusal why = {0};
  struct aln_cose_sign1 m;
  static const uint8_t algs[][4] = {
      {0xa1, 0x01, 0x26},       /* -7 ES256 */
      {0xa1, 0x01, 0x27},       /* -8 EdDSA */
      {0xa1, 0x01, 0x38, 0x23}, /* -36 ES512 */
      {0xa1, 0x01, 0x18, 0x22}, /* +34 */
  };
  static const size_t alg_len[] = {3, 3, 4, 4};
  for (size_t i = 0; i < 4; i++) {
    message(&b, 1, algs[i], alg_len[i], (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
    assert_int_equal(aln_cose_sign1_decode(&m, &why, b.b, b.len, &es384), ALN_ERR_MALFORMED);
    assert_non_null(strstr(why.why, "alg"));
  }
  /* the EdDSA header is fine for a profile that wants EdDSA */
  struct aln_cose_profile eddsa = {.alg = ALN_COSE_ALG_EDDSA, .sig_len = SIG_LEN, .max_len = CAP};
  message(&b, 1, algs[1], 3, (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &eddsa), ALN_OK);
  /* alg as text, empty protected bstr, alg under another label */
  static const uint8_t text_alg[] = {0xa1, 0x01, 0x65, 'E', 'S', '3', '8', '4'};
  message(&b, 1, text_alg, sizeof(text_alg), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  message(&b, 1, NULL, 0, (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_not_equal(decode(&b, &es384), ALN_OK);
  static const uint8_t label3[] = {0xa1, 0x03, 0x38, 0x22};
  message(&b, 1, label3, sizeof(label3), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
}

static void test_critical_header_refused(void **state) {
  (void)state;
  struct buf b;
  struct aln_refusal why = {0};
  struct aln_cose_sign1 m;
  static const uint8_t crit[] = {0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x18, 0x2a}; /* {1: -35, 2: [42]} */
  message(&b, 1, crit, sizeof(crit), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(aln_cose_sign1_decode(&m, &why, b.b, b.len, &es384), ALN_ERR_MALFORMED);
  assert_non_null(strstr(why.why, "crit"));
  /* crit naming alg itself, which is understood, is still a header this profile has not */
  static const uint8_t crit_alg[] = {0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x01};
  message(&b, 1, crit_alg, sizeof(crit_alg), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  /* any other extra label: kid */
  static const uint8_t kid[] = {0xa2, 0x01, 0x38, 0x22, 0x04, 0x41, 0x01};
  message(&b, 1, kid, sizeof(kid), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
}

static void test_protected_duplicate_and_encoding(void **state) {
  (void)state;
  struct buf b;
  static const uint8_t dup[] = {0xa2, 0x01, 0x38, 0x22, 0x01, 0x38, 0x22};
  message(&b, 1, dup, sizeof(dup), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  /* the right value in a longer encoding of the label, then of the value */
  static const uint8_t long_label[] = {0xa1, 0x18, 0x01, 0x38, 0x22};
  message(&b, 1, long_label, sizeof(long_label), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  static const uint8_t long_value[] = {0xa1, 0x01, 0x39, 0x00, 0x22};
  message(&b, 1, long_value, sizeof(long_value), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  /* an indefinite protected map */
  static const uint8_t indef[] = {0xbf, 0x01, 0x38, 0x22, 0xff};
  message(&b, 1, indef, sizeof(indef), (const uint8_t *)"\xa0", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
}

static void test_unprotected(void **state) {
  (void)state;
  struct buf b;
  struct aln_cose_sign1 m;
  static const uint8_t kid[] = {0xa1, 0x04, 0x41, 0x01}; /* {4: h'01'} */
  message(&b, 1, prot_es384, 4, kid, sizeof(kid), payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  /* a profile that allows it gets the encoded map */
  assert_int_equal(aln_cose_sign1_decode(&m, NULL, b.b, b.len, &es384_unprot), ALN_OK);
  assert_int_equal(m.unprotected_len, sizeof(kid));
  assert_memory_equal(m.unprotected, kid, sizeof(kid));
  /* but still only a strict one */
  static const uint8_t dup[] = {0xa2, 0x04, 0x41, 0x01, 0x04, 0x41, 0x02};
  message(&b, 1, prot_es384, 4, dup, sizeof(dup), payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384_unprot), ALN_ERR_MALFORMED);
  static const uint8_t indef[] = {0xbf, 0x04, 0x41, 0x01, 0xff};
  message(&b, 1, prot_es384, 4, indef, sizeof(indef), payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384_unprot), ALN_ERR_MALFORMED);
  /* not a map at all */
  message(&b, 1, prot_es384, 4, (const uint8_t *)"\x40", 1, payload, sizeof(payload), SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
  assert_int_equal(decode(&b, &es384_unprot), ALN_ERR_MALFORMED);
}

static void test_indefinite_strings_in_envelope(void **state) {
  (void)state;
  struct buf b = {.len = 0};
  uint8_t sig[SIG_LEN] = {0};
  put_u8(&b, 0x84);
  put_bstr(&b, prot_es384, 4);
  put_u8(&b, 0xa0);
  put_u8(&b, 0x5f); /* (_ h'a161', h'6b01') */
  put_bstr(&b, payload, 2);
  put_bstr(&b, payload + 2, 2);
  put_u8(&b, 0xff);
  put_bstr(&b, sig, SIG_LEN);
  assert_int_equal(decode(&b, &es384), ALN_ERR_MALFORMED);
}

static void test_bad_arguments(void **state) {
  (void)state;
  struct buf b;
  struct aln_cose_sign1 m;
  good(&b, 1);
  assert_int_equal(aln_cose_sign1_decode(NULL, NULL, b.b, b.len, &es384), ALN_ERR_USAGE);
  assert_int_equal(aln_cose_sign1_decode(&m, NULL, NULL, b.len, &es384), ALN_ERR_USAGE);
  assert_int_equal(aln_cose_sign1_decode(&m, NULL, b.b, b.len, NULL), ALN_ERR_USAGE);
  cbor_item_t *it = NULL;
  assert_int_equal(aln_cose_cbor_load(&it, payload, sizeof(payload), ALN_COSE_DEPTH_MAX + 1), ALN_ERR_USAGE);
  assert_int_equal(aln_cose_cbor_load(NULL, payload, sizeof(payload), 1), ALN_ERR_USAGE);
}

/* --- the strict loader ------------------------------------------------------------- */

static void test_load_accepts_strict_input(void **state) {
  (void)state;
  /* {"a": [1, h'02'], 3: {-1: "x"}} */
  static const uint8_t ok[] = {0xa2, 0x61, 'a', 0x82, 0x01, 0x41, 0x02, 0x03, 0xa1, 0x20, 0x61, 'x'};
  assert_int_equal(load(ok, sizeof(ok), 2), ALN_OK);
  /* the same at depth 1 is too deep */
  assert_int_equal(load(ok, sizeof(ok), 1), ALN_ERR_MALFORMED);
}

/* Keys are compared by value: 1 and its two-byte encoding are the same key. */
static void test_load_duplicate_keys(void **state) {
  (void)state;
  static const uint8_t same[] = {0xa2, 0x01, 0x00, 0x01, 0x00};
  static const uint8_t long_form[] = {0xa2, 0x01, 0x00, 0x18, 0x01, 0x00};
  static const uint8_t wide_form[] = {0xa2, 0x19, 0x00, 0x01, 0x00, 0x01, 0x00};
  static const uint8_t neg[] = {0xa2, 0x20, 0x00, 0x38, 0x00, 0x00};
  static const uint8_t text[] = {0xa3, 0x61, 'a', 0x00, 0x61, 'b', 0x00, 0x61, 'a', 0x01};
  static const uint8_t empty_text[] = {0xa2, 0x60, 0x00, 0x60, 0x01};
  static const uint8_t nested[] = {0x81, 0xa2, 0x05, 0x00, 0x05, 0x01}; /* [{5: 0, 5: 1}] */
  static const uint8_t inner[] = {0xa1, 0x00, 0xa2, 0x61, 'z', 0x00, 0x61, 'z', 0x00};
  assert_int_equal(load(same, sizeof(same), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(long_form, sizeof(long_form), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(wide_form, sizeof(wide_form), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(neg, sizeof(neg), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(text, sizeof(text), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(empty_text, sizeof(empty_text), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(nested, sizeof(nested), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(inner, sizeof(inner), 2), ALN_ERR_MALFORMED);
  /* distinct keys that look alike are fine: 1 and -2, "a" and h'61', "a" and "aa" */
  static const uint8_t distinct[] = {0xa3, 0x01, 0x00, 0x21, 0x00, 0x61, 'a', 0x00};
  static const uint8_t prefix[] = {0xa2, 0x61, 'a', 0x00, 0x62, 'a', 'a', 0x00};
  assert_int_equal(load(distinct, sizeof(distinct), 1), ALN_OK);
  assert_int_equal(load(prefix, sizeof(prefix), 1), ALN_OK);
}

/* Many keys: the check is by sorting, and still finds a repeat at either end. */
static void test_load_duplicate_among_many(void **state) {
  (void)state;
  struct buf b = {.len = 0};
  put(&b, "\xb9\x01\x00", 3); /* map of 256 pairs */
  for (unsigned i = 0; i < 255; i++) {
    put(&b, "\x19", 1);
    put_u8(&b, (uint8_t)(i >> 8));
    put_u8(&b, (uint8_t)i);
    put_u8(&b, 0x00);
  }
  struct buf ok = b, dup = b;
  put(&ok, "\x19\x01\x00\x00", 4);  /* 256: new */
  put(&dup, "\x19\x00\x00\x00", 4); /* 0 again */
  assert_int_equal(load(ok.b, ok.len, 1), ALN_OK);
  assert_int_equal(load(dup.b, dup.len, 1), ALN_ERR_MALFORMED);
}

static void test_load_key_types(void **state) {
  (void)state;
  static const uint8_t float_key[] = {0xa1, 0xf9, 0x3c, 0x00, 0x00};
  static const uint8_t bstr_key[] = {0xa1, 0x41, 'a', 0x00};
  static const uint8_t array_key[] = {0xa1, 0x80, 0x00};
  static const uint8_t null_key[] = {0xa1, 0xf6, 0x00};
  assert_int_equal(load(float_key, sizeof(float_key), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(bstr_key, sizeof(bstr_key), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(array_key, sizeof(array_key), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(null_key, sizeof(null_key), 2), ALN_ERR_MALFORMED);
}

static void test_load_refuses(void **state) {
  (void)state;
  static const uint8_t tag[] = {0xc1, 0x1a, 0x65, 0x53, 0xf1, 0x00}; /* 1(1700000000) */
  static const uint8_t indef_map[] = {0xbf, 0x01, 0x00, 0xff};
  static const uint8_t indef_array[] = {0x9f, 0x01, 0xff};
  static const uint8_t indef_text[] = {0x7f, 0x61, 'a', 0xff};
  static const uint8_t trailing[] = {0xa0, 0x00};
  static const uint8_t truncated[] = {0xa2, 0x01, 0x00, 0x02};
  static const uint8_t huge[] = {0x9b, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00};
  static const uint8_t reserved[] = {0x1c};
  assert_int_equal(load(tag, sizeof(tag), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(indef_map, sizeof(indef_map), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(indef_array, sizeof(indef_array), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(indef_text, sizeof(indef_text), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(trailing, sizeof(trailing), 2), ALN_ERR_TRAILING);
  assert_int_equal(load(truncated, sizeof(truncated), 2), ALN_ERR_TRUNCATED);
  assert_int_equal(load(huge, sizeof(huge), 2), ALN_ERR_TRUNCATED);
  assert_int_equal(load(reserved, sizeof(reserved), 2), ALN_ERR_MALFORMED);
  assert_int_equal(load(NULL, 0, 2), ALN_ERR_TRUNCATED);
}

static void test_typed_views(void **state) {
  (void)state;
  cbor_item_t *it = NULL;
  int64_t i64;
  uint64_t u64;
  const uint8_t *p;
  size_t len;
  /* [-1, 2^64-1, h'', "t"] */
  static const uint8_t arr[] = {0x84, 0x20, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x40, 0x61, 't'};
  assert_int_equal(aln_cose_cbor_load(&it, arr, sizeof(arr), 1), ALN_OK);
  cbor_item_t **el = cbor_array_handle(it);
  assert_int_equal(aln_cose_cbor_int(el[0], &i64), ALN_OK);
  assert_true(i64 == -1);
  assert_int_equal(aln_cose_cbor_uint(el[0], &u64), ALN_ERR_MALFORMED);
  assert_int_equal(aln_cose_cbor_int(el[1], &i64), ALN_ERR_MALFORMED); /* beyond int64 */
  assert_int_equal(aln_cose_cbor_uint(el[1], &u64), ALN_OK);
  assert_true(u64 == UINT64_MAX);
  assert_int_equal(aln_cose_cbor_bstr(el[2], &p, &len), ALN_OK);
  assert_int_equal(len, 0);
  assert_int_equal(aln_cose_cbor_tstr(el[2], &p, &len), ALN_ERR_MALFORMED);
  assert_int_equal(aln_cose_cbor_tstr(el[3], &p, &len), ALN_OK);
  assert_int_equal(len, 1);
  assert_int_equal(p[0], 't');
  assert_int_equal(aln_cose_cbor_bstr(el[3], &p, &len), ALN_ERR_MALFORMED);
  cbor_decref(&it);
}

/* null, and what only looks like it: floats (which libcbor's own cbor_is_null
 * aborts on), undefined, false, 0, h''. */
static void test_is_null(void **state) {
  (void)state;
  static const uint8_t items[][9] = {
      {0xf6},                                                 /* null */
      {0xf9, 0x00, 0x00},                                     /* 0.0 half */
      {0xfa, 0x3f, 0x80, 0x00, 0x00},                         /* 1.0 single */
      {0xfb, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* 0.0 double */
      {0xf7},                                                 /* undefined */
      {0xf4},                                                 /* false */
      {0x00},                                                 /* 0 */
      {0x40},                                                 /* h'' */
  };
  static const size_t lens[] = {1, 3, 5, 9, 1, 1, 1, 1};
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    cbor_item_t *it = NULL;
    assert_int_equal(aln_cose_cbor_load(&it, items[i], lens[i], 1), ALN_OK);
    assert_int_equal(aln_cose_cbor_is_null(it), i == 0);
    cbor_decref(&it);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_protected_encode),
      cmocka_unit_test(test_sig_structure_known_answer),
      cmocka_unit_test(test_encode_decode_round_trip),
      cmocka_unit_test(test_views_point_into_input),
      cmocka_unit_test(test_envelope_long_heads),
      cmocka_unit_test(test_size_cap_first),
      cmocka_unit_test(test_truncated_and_trailing),
      cmocka_unit_test(test_tags),
      cmocka_unit_test(test_not_an_array_of_four),
      cmocka_unit_test(test_member_types),
      cmocka_unit_test(test_alg_must_match),
      cmocka_unit_test(test_critical_header_refused),
      cmocka_unit_test(test_protected_duplicate_and_encoding),
      cmocka_unit_test(test_unprotected),
      cmocka_unit_test(test_indefinite_strings_in_envelope),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_load_accepts_strict_input),
      cmocka_unit_test(test_load_duplicate_keys),
      cmocka_unit_test(test_load_duplicate_among_many),
      cmocka_unit_test(test_load_key_types),
      cmocka_unit_test(test_load_refuses),
      cmocka_unit_test(test_typed_views),
      cmocka_unit_test(test_is_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
