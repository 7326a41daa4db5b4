/* Tests for enclave/provider_tpm's TPM-free parts: the AILERON_TPM_PCRS syntax
 * (strict: one SHA-256 bank, distinct PCRs 0..23, no spaces, no leading zeros, no
 * empty items) and the kek.tpm codec (round trip and canonical re-encoding; wrong
 * magic, truncation at every length, trailing bytes, oversize, fields that do not
 * unmarshal to exactly their length, and well-formed blobs whose meaning is wrong:
 * an object a password could open, one not bound to its TPM, another PCR bank). The
 * TPM path itself is tested against swtpm in tests/integration/test_tpm_provider.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <tss2/tss2_mu.h>

#include "enclave/provider_tpm.h"
#include "proto/cbs.h"

static void test_pcrs_accepted(void **state) {
  (void)state;
  TPML_PCR_SELECTION s;
  char buf[128];
  assert_int_equal(aln_tpm_pcrs_parse(&s, "sha256:7"), ALN_OK);
  assert_int_equal(s.count, 1);
  assert_int_equal(s.pcrSelections[0].hash, TPM2_ALG_SHA256);
  assert_int_equal(s.pcrSelections[0].sizeofSelect, 3);
  assert_int_equal(s.pcrSelections[0].pcrSelect[0], 0x80);
  assert_int_equal(s.pcrSelections[0].pcrSelect[1] | s.pcrSelections[0].pcrSelect[2], 0);

  assert_int_equal(aln_tpm_pcrs_parse(&s, "sha256:0,7,8,23"), ALN_OK);
  assert_int_equal(s.pcrSelections[0].pcrSelect[0], 0x81);
  assert_int_equal(s.pcrSelections[0].pcrSelect[1], 0x01);
  assert_int_equal(s.pcrSelections[0].pcrSelect[2], 0x80);

  /* Order does not matter; formatting gives the canonical ascending form. */
  assert_int_equal(aln_tpm_pcrs_parse(&s, "sha256:23,8,0,7"), ALN_OK);
  assert_int_equal(aln_tpm_pcrs_format(buf, sizeof(buf), &s), ALN_OK);
  assert_string_equal(buf, "sha256:0,7,8,23");

  assert_int_equal(aln_tpm_pcrs_parse(&s, "sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23"),
                   ALN_OK);
  for (int i = 0; i < 3; i++)
    assert_int_equal(s.pcrSelections[0].pcrSelect[i], 0xff);
  assert_int_equal(aln_tpm_pcrs_format(buf, sizeof(buf), &s), ALN_OK);
  assert_string_equal(buf, "sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23");
  /* A buffer too small is refused, not truncated. */
  assert_int_equal(aln_tpm_pcrs_format(buf, 20, &s), ALN_ERR_USAGE);
}

static void test_pcrs_refused(void **state) {
  (void)state;
  const char *bad[] = {"",
                       "sha256:",
                       "sha256",
                       "sha1:7",
                       "SHA256:7",
                       "sha384:7",
                       "sha256:7,",
                       "sha256:,7",
                       "sha256:0,,7",
                       "sha256:7,7",
                       "sha256:24",
                       "sha256:99",
                       "sha256:07",
                       "sha256:00",
                       "sha256: 7",
                       "sha256:7 ",
                       " sha256:7",
                       "sha256:-1",
                       "sha256:+7",
                       "sha256:7;0",
                       "7",
                       "sha256:0x7",
                       "sha256:7\n",
                       "sha256:4294967303",
                       "sha256:a",
                       "sha256:7:",
                       "sha256:0,7,7",
                       "sha256:1,2,24"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    TPML_PCR_SELECTION s;
    memset(&s, 0xa5, sizeof(s));
    assert_int_equal(aln_tpm_pcrs_parse(&s, bad[i]), ALN_ERR_USAGE);
    assert_int_equal(s.count, 0); /* nothing half-parsed is left behind */
  }
  TPML_PCR_SELECTION s;
  assert_int_equal(aln_tpm_pcrs_parse(&s, NULL), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_pcrs_parse(NULL, "sha256:7"), ALN_ERR_USAGE);
  char buf[64];
  memset(&s, 0, sizeof(s));
  assert_int_equal(aln_tpm_pcrs_format(buf, sizeof(buf), &s), ALN_ERR_USAGE); /* empty selection */
}

static void make_blob(struct aln_tpm_blob *b) {
  memset(b, 0, sizeof(*b));
  TPMT_PUBLIC *t = &b->pub.publicArea;
  t->type = TPM2_ALG_KEYEDHASH;
  t->nameAlg = TPM2_ALG_SHA256;
  t->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
  t->authPolicy.size = 32;
  for (int i = 0; i < 32; i++)
    t->authPolicy.buffer[i] = (uint8_t)(0x40 + i);
  t->parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
  t->unique.keyedHash.size = 32;
  memset(t->unique.keyedHash.buffer, 0x11, 32);
  b->priv.size = 126;
  for (int i = 0; i < 126; i++)
    b->priv.buffer[i] = (uint8_t)(i * 7);
  assert_int_equal(aln_tpm_pcrs_parse(&b->pcrs, "sha256:0,7"), ALN_OK);
}

/* raw_encode marshals |b| without the encoder's checks, so tests can build blobs
 * that are well-formed but mean the wrong thing. */
static size_t raw_encode(uint8_t *out, size_t cap, const struct aln_tpm_blob *b) {
  uint8_t f[sizeof(TPM2B_PRIVATE) + 64];
  size_t n, len = 0;
  memcpy(out, ALN_TPM_BLOB_MAGIC, 8);
  len = 8;
  for (int k = 0; k < 3; k++) {
    n = 0;
    TSS2_RC rc = k == 0   ? Tss2_MU_TPM2B_PUBLIC_Marshal(&b->pub, f, sizeof(f), &n)
                 : k == 1 ? Tss2_MU_TPM2B_PRIVATE_Marshal(&b->priv, f, sizeof(f), &n)
                          : Tss2_MU_TPML_PCR_SELECTION_Marshal(&b->pcrs, f, sizeof(f), &n);
    assert_int_equal(rc, TSS2_RC_SUCCESS);
    assert_true(len + 4 + n <= cap);
    out[len] = (uint8_t)(n >> 24);
    out[len + 1] = (uint8_t)(n >> 16);
    out[len + 2] = (uint8_t)(n >> 8);
    out[len + 3] = (uint8_t)n;
    memcpy(out + len + 4, f, n);
    len += 4 + n;
  }
  return len;
}

static void assert_blob_equal(const struct aln_tpm_blob *a, const struct aln_tpm_blob *b) {
  assert_int_equal(a->pub.publicArea.type, b->pub.publicArea.type);
  assert_int_equal(a->pub.publicArea.objectAttributes, b->pub.publicArea.objectAttributes);
  assert_int_equal(a->pub.publicArea.authPolicy.size, b->pub.publicArea.authPolicy.size);
  assert_memory_equal(a->pub.publicArea.authPolicy.buffer, b->pub.publicArea.authPolicy.buffer,
                      a->pub.publicArea.authPolicy.size);
  assert_int_equal(a->priv.size, b->priv.size);
  assert_memory_equal(a->priv.buffer, b->priv.buffer, a->priv.size);
  assert_int_equal(a->pcrs.count, b->pcrs.count);
  assert_memory_equal(&a->pcrs.pcrSelections[0], &b->pcrs.pcrSelections[0], sizeof(TPMS_PCR_SELECTION));
}

static void test_blob_round_trip(void **state) {
  (void)state;
  struct aln_tpm_blob b, d;
  uint8_t *enc = NULL, *again = NULL;
  size_t enc_len = 0, again_len = 0;
  make_blob(&b);
  assert_int_equal(aln_tpm_blob_encode(&enc, &enc_len, &b), ALN_OK);
  assert_true(enc_len > 8 && enc_len <= ALN_TPM_BLOB_MAX);
  assert_memory_equal(enc, "ALNTPMK1", 8);
  assert_int_equal(aln_tpm_blob_decode(&d, enc, enc_len), ALN_OK);
  assert_blob_equal(&b, &d);
  /* Canonical: re-encoding what was decoded gives the same bytes. */
  assert_int_equal(aln_tpm_blob_encode(&again, &again_len, &d), ALN_OK);
  assert_int_equal(again_len, enc_len);
  assert_memory_equal(again, enc, enc_len);
  /* The raw marshalling in this test agrees with the encoder. */
  uint8_t raw[ALN_TPM_BLOB_MAX];
  assert_int_equal(raw_encode(raw, sizeof(raw), &b), enc_len);
  assert_memory_equal(raw, enc, enc_len);
  free(enc);
  free(again);
}

static void test_blob_wrong_magic(void **state) {
  (void)state;
  struct aln_tpm_blob b, d;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  make_blob(&b);
  assert_int_equal(aln_tpm_blob_encode(&enc, &enc_len, &b), ALN_OK);
  for (size_t i = 0; i < 8; i++) {
    enc[i] ^= 0x20; /* e.g. "alntpmk1" */
    assert_int_equal(aln_tpm_blob_decode(&d, enc, enc_len), ALN_ERR_MALFORMED);
    enc[i] ^= 0x20;
  }
  memcpy(enc, "ALNTPMK2", 8); /* a future version is refused, not guessed at */
  assert_int_equal(aln_tpm_blob_decode(&d, enc, enc_len), ALN_ERR_MALFORMED);
  free(enc);
}

static void test_blob_truncated_everywhere(void **state) {
  (void)state;
  struct aln_tpm_blob b, d;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  make_blob(&b);
  assert_int_equal(aln_tpm_blob_encode(&enc, &enc_len, &b), ALN_OK);
  for (size_t n = 0; n < enc_len; n++) {
    /* a fresh heap copy of exactly n bytes, so ASan catches any read past it */
    uint8_t *cut = malloc(n ? n : 1);
    assert_non_null(cut);
    memcpy(cut, enc, n);
    assert_int_equal(aln_tpm_blob_decode(&d, cut, n), ALN_ERR_TRUNCATED);
    assert_int_equal(d.priv.size, 0); /* nothing returned on failure */
    free(cut);
  }
  assert_int_equal(aln_tpm_blob_decode(&d, NULL, 0), ALN_ERR_TRUNCATED);
  free(enc);
}

static void test_blob_trailing_and_oversize(void **state) {
  (void)state;
  struct aln_tpm_blob b, d;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  make_blob(&b);
  assert_int_equal(aln_tpm_blob_encode(&enc, &enc_len, &b), ALN_OK);
  uint8_t *big = calloc(1, ALN_TPM_BLOB_MAX + 2);
  assert_non_null(big);
  memcpy(big, enc, enc_len);
  assert_int_equal(aln_tpm_blob_decode(&d, big, enc_len + 1), ALN_ERR_TRAILING);
  big[enc_len] = 0xff;
  assert_int_equal(aln_tpm_blob_decode(&d, big, enc_len + 1), ALN_ERR_TRAILING);
  /* Exactly the maximum is parsed (and has trailing bytes); one more is refused unread. */
  assert_int_equal(aln_tpm_blob_decode(&d, big, ALN_TPM_BLOB_MAX), ALN_ERR_TRAILING);
  assert_int_equal(aln_tpm_blob_decode(&d, big, ALN_TPM_BLOB_MAX + 1), ALN_ERR_TOO_LARGE);
  assert_int_equal(aln_tpm_blob_decode(&d, big, SIZE_MAX), ALN_ERR_TOO_LARGE);
  free(big);
  free(enc);
}

/* A field's u32 length must be exactly what its TPM structure occupies. */
static void test_blob_field_lengths(void **state) {
  (void)state;
  struct aln_tpm_blob b, d;
  uint8_t raw[ALN_TPM_BLOB_MAX], bad[ALN_TPM_BLOB_MAX];
  make_blob(&b);
  size_t len = raw_encode(raw, sizeof(raw), &b);
  size_t pub_len = ((size_t)raw[8] << 24) | ((size_t)raw[9] << 16) | ((size_t)raw[10] << 8) | raw[11];

  /* One padding byte inside the public field, its length grown to match. */
  memcpy(bad, raw, 12 + pub_len);
  bad[12 + pub_len] = 0;
  memcpy(bad + 13 + pub_len, raw + 12 + pub_len, len - 12 - pub_len);
  bad[11] = (uint8_t)(pub_len + 1);
  assert_int_equal(aln_tpm_blob_decode(&d, bad, len + 1), ALN_ERR_MALFORMED);

  /* The public field one byte short: the TPM2B inside runs past its field. */
  memcpy(bad, raw, len);
  bad[11] = (uint8_t)(pub_len - 1);
  assert_int_not_equal(aln_tpm_blob_decode(&d, bad, len), ALN_OK);

  /* A huge u32 length. */
  memcpy(bad, raw, len);
  bad[8] = 0xff;
  assert_int_equal(aln_tpm_blob_decode(&d, bad, len), ALN_ERR_TRUNCATED);

  /* The TPM2B's own size disagreeing with the structure it wraps. */
  memcpy(bad, raw, len);
  bad[13] ^= 1;
  assert_int_equal(aln_tpm_blob_decode(&d, bad, len), ALN_ERR_MALFORMED);
}

static void assert_meaning_refused(const struct aln_tpm_blob *b) {
  uint8_t raw[ALN_TPM_BLOB_MAX];
  struct aln_tpm_blob d;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  size_t len = raw_encode(raw, sizeof(raw), b);
  assert_int_equal(aln_tpm_blob_decode(&d, raw, len), ALN_ERR_MALFORMED);
  assert_int_equal(aln_tpm_blob_encode(&enc, &enc_len, b), ALN_ERR_USAGE);
  assert_null(enc);
}

static void test_blob_meaning(void **state) {
  (void)state;
  struct aln_tpm_blob b;
  const TPMA_OBJECT add[] = {TPMA_OBJECT_USERWITHAUTH, TPMA_OBJECT_SIGN_ENCRYPT, TPMA_OBJECT_DECRYPT,
                             TPMA_OBJECT_RESTRICTED, TPMA_OBJECT_SENSITIVEDATAORIGIN};
  for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++) {
    make_blob(&b);
    b.pub.publicArea.objectAttributes |= add[i];
    assert_meaning_refused(&b);
  }
  const TPMA_OBJECT need[] = {TPMA_OBJECT_FIXEDTPM, TPMA_OBJECT_FIXEDPARENT};
  for (size_t i = 0; i < 2; i++) {
    make_blob(&b);
    b.pub.publicArea.objectAttributes &= ~need[i];
    assert_meaning_refused(&b);
  }
  make_blob(&b);
  b.pub.publicArea.authPolicy.size = 0; /* no policy at all */
  assert_meaning_refused(&b);
  make_blob(&b);
  b.pub.publicArea.authPolicy.size = 20;
  assert_meaning_refused(&b);
  make_blob(&b);
  b.pub.publicArea.nameAlg = TPM2_ALG_SHA1;
  assert_meaning_refused(&b);
  make_blob(&b);
  b.pub.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_HMAC;
  b.pub.publicArea.parameters.keyedHashDetail.scheme.details.hmac.hashAlg = TPM2_ALG_SHA256;
  assert_meaning_refused(&b);
  make_blob(&b);
  b.priv.size = 0;
  assert_meaning_refused(&b);
  make_blob(&b);
  b.pcrs.pcrSelections[0].hash = TPM2_ALG_SHA1;
  assert_meaning_refused(&b);
  make_blob(&b);
  memset(b.pcrs.pcrSelections[0].pcrSelect, 0, 3); /* a policy on no PCR */
  assert_meaning_refused(&b);
  make_blob(&b);
  b.pcrs.count = 2;
  b.pcrs.pcrSelections[1] = b.pcrs.pcrSelections[0];
  assert_meaning_refused(&b);
  make_blob(&b);
  b.pcrs.count = 0;
  assert_meaning_refused(&b);
  make_blob(&b);
  b.pcrs.pcrSelections[0].sizeofSelect = 4;
  assert_meaning_refused(&b);
}

static void test_usage(void **state) {
  (void)state;
  struct aln_tpm_blob b;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  make_blob(&b);
  assert_int_equal(aln_tpm_blob_encode(NULL, &enc_len, &b), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_blob_encode(&enc, NULL, &b), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_blob_encode(&enc, &enc_len, NULL), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_blob_decode(NULL, (const uint8_t *)"x", 1), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_blob_decode(&b, NULL, 5), ALN_ERR_USAGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pcrs_accepted),
      cmocka_unit_test(test_pcrs_refused),
      cmocka_unit_test(test_blob_round_trip),
      cmocka_unit_test(test_blob_wrong_magic),
      cmocka_unit_test(test_blob_truncated_everywhere),
      cmocka_unit_test(test_blob_trailing_and_oversize),
      cmocka_unit_test(test_blob_field_lengths),
      cmocka_unit_test(test_blob_meaning),
      cmocka_unit_test(test_usage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
