/* Tests for the "tpm" evidence verifier (attestation/tpm_quote) and the software
 * side of AK enrollment (attestation/tpm_cred), without a TPM:
 *
 *   - a known answer: a quote made by tpm2_quote (tpm2-tools 5.4) on swtpm, stored
 *     here as the tool wrote it, verifies and yields the expected claims;
 *   - quotes built and signed here (ECDSA P-256, RSASSA and RSAPSS) with OpenSSL, so
 *     that each negative test breaks exactly one property of an otherwise valid,
 *     validly signed quote: wrong nonce, wrong PCR value, PCR values that do not
 *     hash to the signed digest, forged signatures, an AK not enrolled or not a
 *     restricted signing key, truncation at every length, padding, wrong magic and
 *     type, malformed PCR values and selections;
 *   - KDFa and KDFe against OpenSSL's own SP800-108 and SP800-56A KDFs, and
 *     MakeCredential opened here with the EK's private key through those KDFs.
 * The same code against swtpm and tpm2-tools, both ways, is in
 * tests/unit/enclave/tpm_attest_test.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "attestation/tpm_cred.h"
#include "attestation/tpm_quote.h"
#include "proto/keyfile.h"

/* ---- a quote by tpm2_quote on swtpm (tests/unit/enclave/tpm_attest_test.c makes
 * such quotes live): tpm2_createak -G ecc -s ecdsa, then
 * tpm2_quote -l sha1:0,7+sha256:0,1,16 -q a0a1..bf -g sha256, after
 * tpm2_pcrextend 16:sha256=SHA-256("aileron"). ---- */

static const char kat_msg[] =
    "ff54434780180022000ba7e6ba8a61bea235c80673a5affd52403b4c9c6208a4fc8f6258a3e302dee0440020a0a1a2a3a4a5a6a7a8a9aaab"
    "acadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf000000000001d117000000020000000001201910230016363600000002000403810000000b"
    "030300010020191135a61e2b169d665af8a4d3bb8093db7d1287ee346a81ecf7453a68a53f68";
static const char kat_sig[] = "0018000b00209d51ddac97a2e6654e2616b2bfa1823a1ed84d4069705a7d942efeaead57238d0020d3116e76"
                              "8abb758c475d0d47c5c469dec089096d4c4416f4be4c324dd5c8b766";
static const char kat_pub[] = "00580023000b00050072000000100018000b00030010002031f507cb58d4265bd78b8772bb0cb5af61f9547b"
                              "09dcfbb546d92620497d57a500209c4c2889be85ec6e55967bf16f61e079c5ad858ef1664ae6bd533cc59876"
                              "27ee";
static const char kat_name[] = "000b5b046a9156a73158a5086dd17ad8d7ed760238fd96f036b644a9a93d52bb0c8a";
static const char kat_digest[] = "191135a61e2b169d665af8a4d3bb8093db7d1287ee346a81ecf7453a68a53f68";

/* ---- byte buffers -------------------------------------------------------------------- */

struct buf {
  uint8_t b[ALN_TPM_QUOTE_MAX + 64];
  size_t len;
};

static void put(struct buf *b, const void *p, size_t n) {
  assert_true(n <= sizeof(b->b) - b->len);
  if (n > 0)
    memcpy(b->b + b->len, p, n);
  b->len += n;
}

static void put_u32(struct buf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  put(b, x, 4);
}

static size_t unhex(uint8_t *out, size_t cap, const char *h) {
  size_t n = strlen(h) / 2;
  assert_true(n <= cap);
  assert_int_equal(aln_hex_decode(out, n, h, 2 * n), ALN_OK);
  return n;
}

static void sha256(uint8_t out[32], const void *p, size_t len) {
  assert_int_equal(EVP_Digest(p, len, out, NULL, EVP_sha256(), NULL), 1);
}

/* ---- a quote under construction -------------------------------------------------------- */

/* What the tests build a container from. Each field can be broken on its own. */
struct parts {
  TPMS_ATTEST attest;
  uint8_t attest_raw[2048];
  size_t attest_len; /* 0: marshal |attest| */
  TPMT_SIGNATURE sig;
  TPM2B_PUBLIC ak;
  TPM2B_DIGEST values[ALN_TPM_PCR_VALUES_MAX + 8];
  size_t num_values;
  uint8_t pcrs_raw[8192]; /* raw PCR values field, when pcrs_len is set */
  size_t pcrs_len;
};

static EVP_PKEY *ec_a, *ec_b, *rsa_a;
static uint8_t nonce[32];
static uint8_t pcr7[32], pcr16[32];
static TPM2B_NAME name_ec_a, name_ec_b, name_rsa_a;

static TPM2B_PUBLIC ak_public(EVP_PKEY *k, TPMI_ALG_SIG_SCHEME scheme) {
  TPM2B_PUBLIC p;
  memset(&p, 0, sizeof(p));
  TPMT_PUBLIC *t = &p.publicArea;
  t->nameAlg = TPM2_ALG_SHA256;
  t->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                        TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  if (EVP_PKEY_is_a(k, "EC")) {
    BIGNUM *x = NULL, *y = NULL;
    t->type = TPM2_ALG_ECC;
    t->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    t->parameters.eccDetail.scheme.scheme = scheme;
    t->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    t->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    t->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
    t->unique.ecc.x.size = t->unique.ecc.y.size = 32;
    assert_int_equal(BN_bn2binpad(x, t->unique.ecc.x.buffer, 32), 32);
    assert_int_equal(BN_bn2binpad(y, t->unique.ecc.y.buffer, 32), 32);
    BN_free(x);
    BN_free(y);
  } else {
    BIGNUM *n = NULL;
    t->type = TPM2_ALG_RSA;
    t->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    t->parameters.rsaDetail.scheme.scheme = scheme;
    t->parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    t->parameters.rsaDetail.keyBits = 2048;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    t->unique.rsa.size = 256;
    assert_int_equal(BN_bn2binpad(n, t->unique.rsa.buffer, 256), 256);
    BN_free(n);
  }
  return p;
}

static int group_setup(void **state) {
  (void)state;
  ec_a = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  ec_b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  rsa_a = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  if (ec_a == NULL || ec_b == NULL || rsa_a == NULL)
    return -1;
  for (size_t i = 0; i < sizeof(nonce); i++)
    nonce[i] = (uint8_t)(0xa0 + i);
  memset(pcr7, 0x77, sizeof(pcr7));
  memset(pcr16, 0x16, sizeof(pcr16));
  TPM2B_PUBLIC a = ak_public(ec_a, TPM2_ALG_ECDSA), b = ak_public(ec_b, TPM2_ALG_ECDSA),
               r = ak_public(rsa_a, TPM2_ALG_NULL);
  return aln_tpm_name(&name_ec_a, &a) == ALN_OK && aln_tpm_name(&name_ec_b, &b) == ALN_OK &&
                 aln_tpm_name(&name_rsa_a, &r) == ALN_OK
             ? 0
             : -1;
}

static int group_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(ec_a);
  EVP_PKEY_free(ec_b);
  EVP_PKEY_free(rsa_a);
  return 0;
}

static void select_pcr(TPML_PCR_SELECTION *s, TPMI_ALG_HASH bank, unsigned pcr) {
  uint32_t i = 0;
  while (i < s->count && s->pcrSelections[i].hash != bank)
    i++;
  if (i == s->count) {
    s->count++;
    s->pcrSelections[i].hash = bank;
    s->pcrSelections[i].sizeofSelect = 3;
  }
  s->pcrSelections[i].pcrSelect[pcr / 8] |= (uint8_t)(1u << (pcr % 8));
}

/* digest_values sets the quote's PCR digest to SHA-256 over the parts' values. */
static void digest_values(struct parts *p) {
  uint8_t all[ALN_TPM_PCR_VALUES_MAX * 64];
  size_t n = 0;
  for (size_t i = 0; i < p->num_values; i++) {
    memcpy(all + n, p->values[i].buffer, p->values[i].size);
    n += p->values[i].size;
  }
  p->attest.attested.quote.pcrDigest.size = 32;
  sha256(p->attest.attested.quote.pcrDigest.buffer, all, n);
}

/* good_parts is a valid quote over sha256:7 and sha256:16 and sha1:0, signed later. */
static void good_parts(struct parts *p, EVP_PKEY *ak) {
  memset(p, 0, sizeof(*p));
  TPMS_ATTEST *a = &p->attest;
  a->magic = TPM2_GENERATED_VALUE;
  a->type = TPM2_ST_ATTEST_QUOTE;
  a->qualifiedSigner.size = 34;
  memset(a->qualifiedSigner.name, 0x5c, 34);
  a->qualifiedSigner.name[0] = 0x00;
  a->qualifiedSigner.name[1] = 0x0b;
  a->extraData.size = sizeof(nonce);
  memcpy(a->extraData.buffer, nonce, sizeof(nonce));
  a->clockInfo = (TPMS_CLOCK_INFO){.clock = 123456, .resetCount = 3, .restartCount = 1, .safe = TPM2_YES};
  a->firmwareVersion = 0x2019102300163636ull;
  /* Selection order: sha1 first, then sha256; ascending PCRs within a bank. */
  select_pcr(&a->attested.quote.pcrSelect, TPM2_ALG_SHA1, 0);
  select_pcr(&a->attested.quote.pcrSelect, TPM2_ALG_SHA256, 7);
  select_pcr(&a->attested.quote.pcrSelect, TPM2_ALG_SHA256, 16);
  p->values[0].size = 20;
  p->values[1].size = 32;
  memcpy(p->values[1].buffer, pcr7, 32);
  p->values[2].size = 32;
  memcpy(p->values[2].buffer, pcr16, 32);
  p->num_values = 3;
  digest_values(p);
  p->ak = ak_public(ak, EVP_PKEY_is_a(ak, "EC") ? TPM2_ALG_ECDSA : TPM2_ALG_NULL);
}

static void marshal_attest(struct parts *p) {
  size_t off = 0;
  assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(&p->attest, p->attest_raw, sizeof(p->attest_raw), &off),
                   TSS2_RC_SUCCESS);
  p->attest_len = off;
}

/* sign_parts marshals the attest (unless raw bytes were set) and signs them with
 * |key| in |scheme| (TPM2_ALG_ECDSA, _RSASSA or _RSAPSS). */
static void sign_parts(struct parts *p, EVP_PKEY *key, TPMI_ALG_SIG_SCHEME scheme) {
  if (p->attest_len == 0)
    marshal_attest(p);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  uint8_t sig[512];
  size_t sig_len = sizeof(sig);
  assert_int_equal(EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key), 1);
  if (scheme == TPM2_ALG_RSAPSS) {
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
  }
  assert_int_equal(EVP_DigestSign(md, sig, &sig_len, p->attest_raw, p->attest_len), 1);
  EVP_MD_CTX_free(md);
  memset(&p->sig, 0, sizeof(p->sig));
  p->sig.sigAlg = scheme;
  if (scheme == TPM2_ALG_ECDSA) {
    const uint8_t *q = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);
    assert_non_null(es);
    p->sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
    p->sig.signature.ecdsa.signatureR.size = 32;
    p->sig.signature.ecdsa.signatureS.size = 32;
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), p->sig.signature.ecdsa.signatureR.buffer, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), p->sig.signature.ecdsa.signatureS.buffer, 32), 32);
    ECDSA_SIG_free(es);
  } else {
    p->sig.signature.rsassa.hash = TPM2_ALG_SHA256;
    p->sig.signature.rsassa.sig.size = (UINT16)sig_len;
    memcpy(p->sig.signature.rsassa.sig.buffer, sig, sig_len);
  }
}

/* build writes the container by hand (not with aln_tpm_quote_encode). */
static void build(struct buf *b, const struct parts *p) {
  uint8_t tmp[4096];
  size_t off = 0;
  b->len = 0;
  put(b, "ALNTPMQ1", 8);
  put_u32(b, (uint32_t)p->attest_len);
  put(b, p->attest_raw, p->attest_len);
  assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Marshal(&p->sig, tmp, sizeof(tmp), &off), TSS2_RC_SUCCESS);
  put_u32(b, (uint32_t)off);
  put(b, tmp, off);
  off = 0;
  assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(&p->ak, tmp, sizeof(tmp), &off), TSS2_RC_SUCCESS);
  put_u32(b, (uint32_t)off);
  put(b, tmp, off);
  if (p->pcrs_len > 0) {
    put_u32(b, (uint32_t)p->pcrs_len);
    put(b, p->pcrs_raw, p->pcrs_len);
    return;
  }
  uint8_t lists[8192];
  size_t lists_len = 0;
  for (size_t i = 0; i < p->num_values; i += 8) {
    TPML_DIGEST l = {0};
    for (; l.count < 8 && i + l.count < p->num_values; l.count++)
      l.digests[l.count] = p->values[i + l.count];
    assert_int_equal(Tss2_MU_TPML_DIGEST_Marshal(&l, lists, sizeof(lists), &lists_len), TSS2_RC_SUCCESS);
  }
  put_u32(b, (uint32_t)lists_len);
  put(b, lists, lists_len);
}

/* The policy: AK ec_a (and rsa_a) enrolled, sha256:7 and sha256:16 appraised. */
static struct aln_tpm_pcr_ref refs[2];
static TPM2B_NAME enrolled[2];
static struct aln_tpm_policy policy(void) {
  refs[0] = (struct aln_tpm_pcr_ref){.bank = TPM2_ALG_SHA256, .index = 7, .values = pcr7, .num_values = 1};
  refs[1] = (struct aln_tpm_pcr_ref){.bank = TPM2_ALG_SHA256, .index = 16, .values = pcr16, .num_values = 1};
  enrolled[0] = name_ec_a;
  enrolled[1] = name_rsa_a;
  return (struct aln_tpm_policy){.ak_names = enrolled, .num_ak_names = 2, .pcrs = refs, .num_pcrs = 2};
}

static const struct aln_verify_ctx ctx_nonce = {.nonce = nonce, .nonce_len = sizeof(nonce)};

/* expect_refused verifies |b| and requires |st| with a reason containing |why_part|. */
static void expect_refused(const struct buf *b, const struct aln_tpm_policy *pol, const struct aln_verify_ctx *ctx,
                           aln_status st, const char *why_part) {
  struct aln_claims c;
  struct aln_refusal why;
  memset(&c, 0x5a, sizeof(c));
  aln_status got = aln_tpm_quote_verify(&c, &why, b->b, b->len, pol, ctx);
  if (got != st || (why_part != NULL && strstr(why.why, why_part) == NULL))
    fail_msg("expected %s (\"%s\"), got %s: \"%s\"", aln_status_name(st), why_part ? why_part : "",
             aln_status_name(got), why.why);
  assert_int_equal(why.status, st);
  assert_null(c.detail);
  assert_int_equal(c.kind[0], 0);
}

static void expect_ok(const struct buf *b, const struct aln_tpm_policy *pol, const struct aln_verify_ctx *ctx,
                      struct aln_claims *c) {
  struct aln_refusal why;
  aln_status got = aln_tpm_quote_verify(c, &why, b->b, b->len, pol, ctx);
  if (got != ALN_OK)
    fail_msg("refused: %s: %s", aln_status_name(got), why.why);
}

/* ---- the known answer ------------------------------------------------------------------ */

static void kat_build(struct buf *b) {
  uint8_t msg[512], sig[128], pub[256], aileron[32], zeros[32] = {0}, values[5][32];
  size_t msg_len = unhex(msg, sizeof(msg), kat_msg), sig_len = unhex(sig, sizeof(sig), kat_sig),
         pub_len = unhex(pub, sizeof(pub), kat_pub);
  /* PCR 16 after one extend with SHA-256("aileron") from zeros; the rest zeros. */
  sha256(aileron, "aileron", 7);
  uint8_t ext[64];
  memcpy(ext, zeros, 32);
  memcpy(ext + 32, aileron, 32);
  memset(values, 0, sizeof(values));
  sha256(values[4], ext, 64);
  TPML_DIGEST l = {.count = 5};
  const UINT16 sizes[5] = {20, 20, 32, 32, 32};
  for (int i = 0; i < 5; i++) {
    l.digests[i].size = sizes[i];
    memcpy(l.digests[i].buffer, values[i], sizes[i]);
  }
  uint8_t lists[512];
  size_t lists_len = 0;
  assert_int_equal(Tss2_MU_TPML_DIGEST_Marshal(&l, lists, sizeof(lists), &lists_len), TSS2_RC_SUCCESS);
  b->len = 0;
  put(b, "ALNTPMQ1", 8);
  put_u32(b, (uint32_t)msg_len);
  put(b, msg, msg_len);
  put_u32(b, (uint32_t)sig_len);
  put(b, sig, sig_len);
  put_u32(b, (uint32_t)pub_len);
  put(b, pub, pub_len);
  put_u32(b, (uint32_t)lists_len);
  put(b, lists, lists_len);
}

static void test_kat_tpm2_quote(void **state) {
  (void)state;
  struct buf b;
  kat_build(&b);
  TPM2B_NAME name = {0};
  name.size = (UINT16)unhex(name.name, sizeof(name.name), kat_name);
  uint8_t p16[32], aileron[32], ext[64] = {0};
  sha256(aileron, "aileron", 7);
  memcpy(ext + 32, aileron, 32);
  sha256(p16, ext, 64);
  const struct aln_tpm_pcr_ref r[] = {{.bank = TPM2_ALG_SHA256, .index = 16, .values = p16, .num_values = 1}};
  struct aln_tpm_policy pol = {.ak_names = &name, .num_ak_names = 1, .pcrs = r, .num_pcrs = 1};
  struct aln_claims c;
  expect_ok(&b, &pol, &ctx_nonce, &c);
  assert_string_equal(c.kind, "tpm");
  assert_string_equal(c.measurement, kat_digest);
  assert_int_equal(c.debug, 0);
  assert_int_equal(c.nonce_checked, 1);
  assert_int_equal(c.issued_at, 0);
  assert_string_equal(json_string_value(json_object_get(c.detail, "ak_name")), kat_name);
  assert_string_equal(json_string_value(json_object_get(c.detail, "firmware_version")), "0x2019102300163636");
  json_t *clock = json_object_get(c.detail, "clock");
  assert_int_equal(json_integer_value(json_object_get(clock, "reset_count")), 2);
  assert_int_equal(json_integer_value(json_object_get(clock, "restart_count")), 0);
  assert_int_equal(json_integer_value(json_object_get(clock, "clock_ms")), 0x1d117);
  json_t *pcrs = json_object_get(c.detail, "pcrs");
  assert_int_equal(json_object_size(pcrs), 5);
  assert_non_null(json_object_get(pcrs, "sha1:7"));
  assert_string_equal(json_string_value(json_object_get(pcrs, "sha256:16")),
                      "75b921be16b3721dd22a6fb513417ab3637b73d86330788f37afd2007186b880");
  json_t *all = aln_claims_to_json(&c);
  assert_non_null(all);
  json_decref(all);
  aln_claims_cleanup(&c);

  /* The name the tool printed is the one we compute; the parse sees what it holds. */
  uint8_t pub[256];
  size_t pub_len = unhex(pub, sizeof(pub), kat_pub), off = 0;
  TPM2B_PUBLIC ak = {0};
  TPM2B_NAME ours;
  assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, pub_len, &off, &ak), TSS2_RC_SUCCESS);
  assert_true(aln_tpm_ak_public_ok(&ak));
  assert_int_equal(aln_tpm_name(&ours, &ak), ALN_OK);
  assert_int_equal(ours.size, name.size);
  assert_memory_equal(ours.name, name.name, name.size);
  uint8_t msg[512];
  size_t msg_len = unhex(msg, sizeof(msg), kat_msg);
  TPMS_ATTEST a;
  assert_int_equal(aln_tpm_attest_parse(&a, msg, msg_len), ALN_OK);
  assert_int_equal(a.type, TPM2_ST_ATTEST_QUOTE);
  assert_int_equal(a.extraData.size, 32);
  assert_memory_equal(a.extraData.buffer, nonce, 32);
  assert_int_equal(a.attested.quote.pcrSelect.count, 2);

  /* Without a nonce it verifies and says so; the tool's quote by an AK the policy
   * does not name is refused. */
  struct aln_verify_ctx no_nonce = {0};
  expect_ok(&b, &pol, &no_nonce, &c);
  assert_int_equal(c.nonce_checked, 0);
  aln_claims_cleanup(&c);
  struct aln_tpm_policy other = policy();
  expect_refused(&b, &other, &ctx_nonce, ALN_ERR_ATTEST_CHAIN, "not enrolled");
  /* One flipped bit of the signed bytes (the clock) breaks the signature. */
  b.b[8 + 4 + 90] ^= 1;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "does not verify");
}

/* ---- synthetic quotes: accepted ----------------------------------------------------------- */

static void test_accepted_each_scheme(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_tpm_policy pol = policy();
  struct aln_claims c;
  static const struct {
    TPMI_ALG_SIG_SCHEME scheme;
    const char *name;
  } schemes[] = {
      {TPM2_ALG_ECDSA, "ecdsa-sha256"}, {TPM2_ALG_RSASSA, "rsassa-sha256"}, {TPM2_ALG_RSAPSS, "rsapss-sha256"}};
  for (size_t i = 0; i < 3; i++) {
    EVP_PKEY *k = schemes[i].scheme == TPM2_ALG_ECDSA ? ec_a : rsa_a;
    good_parts(&p, k);
    sign_parts(&p, k, schemes[i].scheme);
    build(&b, &p);
    expect_ok(&b, &pol, &ctx_nonce, &c);
    assert_string_equal(json_string_value(json_object_get(c.detail, "signature")), schemes[i].name);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c.detail, "clock"), "reset_count")), 3);
    aln_claims_cleanup(&c);
  }
  /* An RSA AK whose scheme is fixed to RSASSA cannot present an RSAPSS signature. */
  good_parts(&p, rsa_a);
  p.ak = ak_public(rsa_a, TPM2_ALG_RSASSA);
  TPM2B_NAME fixed;
  assert_int_equal(aln_tpm_name(&fixed, &p.ak), ALN_OK);
  sign_parts(&p, rsa_a, TPM2_ALG_RSAPSS);
  build(&b, &p);
  pol.ak_names = &fixed;
  pol.num_ak_names = 1;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "scheme");

  /* A PCR may have several allowed values. */
  uint8_t two[64];
  memset(two, 0xee, 32);
  memcpy(two + 32, pcr7, 32);
  pol = policy();
  refs[0].values = two;
  refs[0].num_values = 2;
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_ok(&b, &pol, &ctx_nonce, &c);
  aln_claims_cleanup(&c);

  /* Our encoder writes exactly what the hand builder does, and decodes back. */
  struct aln_tpm_quote *q = malloc(sizeof(*q));
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  assert_int_equal(aln_tpm_quote_decode(q, b.b, b.len), ALN_OK);
  assert_int_equal(aln_tpm_quote_encode(&enc, &enc_len, q), ALN_OK);
  assert_int_equal(enc_len, b.len);
  assert_memory_equal(enc, b.b, b.len);
  free(enc);
  /* It refuses to encode what would not decode. */
  q->num_pcr_values--;
  assert_int_equal(aln_tpm_quote_encode(&enc, &enc_len, q), ALN_ERR_USAGE);
  assert_null(enc);
  free(q);
}

/* ---- synthetic quotes: each refused for one reason ------------------------------------------ */

static void test_wrong_nonce(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_tpm_policy pol = policy();
  good_parts(&p, ec_a);
  p.attest.extraData.buffer[0] ^= 1;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_BINDING, "nonce");
  /* A prefix of the nonce is not the nonce. */
  good_parts(&p, ec_a);
  p.attest.extraData.size = 31;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_BINDING, "nonce");
  struct aln_verify_ctx short_ctx = {.nonce = nonce, .nonce_len = 31};
  struct aln_claims c;
  expect_ok(&b, &pol, &short_ctx, &c);
  aln_claims_cleanup(&c);
}

static void test_wrong_pcr_value(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_tpm_policy pol = policy();
  good_parts(&p, ec_a);
  p.values[2].buffer[5] ^= 1; /* sha256:16, with a matching signed digest */
  digest_values(&p);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_POLICY, "PCR sha256:16 holds");
  /* A PCR the policy appraises that the quote leaves out. */
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  const struct aln_tpm_pcr_ref missing[] = {{.bank = TPM2_ALG_SHA256, .index = 0, .values = pcr7, .num_values = 1}};
  pol.pcrs = missing;
  pol.num_pcrs = 1;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_POLICY, "sha256:0, which the policy appraises, is not quoted");
  /* The same index in another bank is another PCR. */
  const struct aln_tpm_pcr_ref bank[] = {{.bank = TPM2_ALG_SHA1, .index = 7, .values = pcr7, .num_values = 1}};
  pol.pcrs = bank;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_POLICY, "sha1:7");
}

static void test_pcr_digest_mismatch(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_tpm_policy pol = policy();
  /* The TPM signed a digest over other values than those supplied. */
  good_parts(&p, ec_a);
  p.values[0].buffer[0] = 1;
  digest_values(&p);
  p.values[0].buffer[0] = 0;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "do not hash to the signed PCR digest");
  /* Swapping two supplied values of one size also changes the hash. */
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  TPM2B_DIGEST t = p.values[1];
  p.values[1] = p.values[2];
  p.values[2] = t;
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "do not hash");
}

static void test_forged_signature(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_tpm_policy pol = policy();
  /* A flipped bit in r. */
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  p.sig.signature.ecdsa.signatureR.buffer[7] ^= 0x10;
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "does not verify");
  /* Signed by another key, presented as the enrolled AK's. */
  good_parts(&p, ec_a);
  sign_parts(&p, ec_b, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "does not verify");
  /* Signed, then edited (the nonce put right after the fact). */
  good_parts(&p, ec_a);
  p.attest.extraData.buffer[3] ^= 1;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  p.attest.extraData.buffer[3] ^= 1;
  marshal_attest(&p);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "does not verify");
  /* RSA: a flipped bit, and a signature cut to another size. */
  good_parts(&p, rsa_a);
  sign_parts(&p, rsa_a, TPM2_ALG_RSASSA);
  p.sig.signature.rsassa.sig.buffer[100] ^= 1;
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "does not verify");
  p.sig.signature.rsassa.sig.size = 255;
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "size");
  /* The scheme must match the key and hash with SHA-256. */
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  p.sig.signature.ecdsa.hash = TPM2_ALG_SHA1;
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "ECDSA with SHA-256");
  good_parts(&p, ec_a);
  sign_parts(&p, rsa_a, TPM2_ALG_RSASSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, "ECDSA");
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  p.sig.signature.ecdsa.signatureS.size = 0;
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_SIG, NULL);
}

static void test_untrusted_ak(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_tpm_policy pol = policy();
  /* A valid quote by a second AK that was never enrolled. */
  good_parts(&p, ec_b);
  sign_parts(&p, ec_b, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_CHAIN, "not enrolled");
  struct aln_claims c;
  TPM2B_NAME b_name = name_ec_b;
  pol.ak_names = &b_name;
  pol.num_ak_names = 1;
  expect_ok(&b, &pol, &ctx_nonce, &c);
  aln_claims_cleanup(&c);

  /* Enrolled by name, but not a key whose signature the TPM alone controls: an
   * unrestricted key could sign any bytes. Each attribute alone is refused. */
  static const struct {
    TPMA_OBJECT clear, set;
  } bad[] = {{TPMA_OBJECT_RESTRICTED, 0},
             {TPMA_OBJECT_FIXEDTPM, 0},
             {TPMA_OBJECT_FIXEDPARENT, 0},
             {TPMA_OBJECT_SENSITIVEDATAORIGIN, 0},
             {0, TPMA_OBJECT_DECRYPT}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    good_parts(&p, ec_a);
    p.ak.publicArea.objectAttributes = (p.ak.publicArea.objectAttributes & ~bad[i].clear) | bad[i].set;
    TPM2B_NAME n;
    assert_int_equal(aln_tpm_name(&n, &p.ak), ALN_OK);
    sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
    build(&b, &p);
    struct aln_tpm_policy pn = policy();
    pn.ak_names = &n;
    pn.num_ak_names = 1;
    expect_refused(&b, &pn, &ctx_nonce, ALN_ERR_ATTEST_CHAIN, "restricted signing key");
  }
  /* A SHA-1 name. */
  good_parts(&p, ec_a);
  p.ak.publicArea.nameAlg = TPM2_ALG_SHA1;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_CHAIN, "restricted signing key");
  /* The AK public's point off the curve. */
  good_parts(&p, ec_a);
  p.ak.publicArea.unique.ecc.y.buffer[31] ^= 1;
  TPM2B_NAME off;
  assert_int_equal(aln_tpm_name(&off, &p.ak), ALN_OK);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  pol.ak_names = &off;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_CHAIN, "unusable");
}

static void test_truncated_and_padded(void **state) {
  (void)state;
  static struct parts p;
  static struct buf b, t;
  struct aln_tpm_policy pol = policy();
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  /* Cut at every length: refused as malformed, never a crash or an acceptance. */
  struct aln_tpm_quote *q = malloc(sizeof(*q));
  for (size_t n = 0; n < b.len; n++) {
    memcpy(t.b, b.b, n);
    t.len = n;
    expect_refused(&t, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, NULL);
    aln_status st = aln_tpm_quote_decode(q, b.b, n);
    assert_true(st == ALN_ERR_TRUNCATED || st == ALN_ERR_MALFORMED);
  }
  /* One byte after the end. */
  t = b;
  t.b[t.len++] = 0;
  expect_refused(&t, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "trailing bytes after the PCR values");
  assert_int_equal(aln_tpm_quote_decode(q, t.b, t.len), ALN_ERR_TRAILING);
  /* One byte after the TPMS_ATTEST, inside its field (and so inside the signed
   * bytes: re-signed, so the padding is the only fault). */
  good_parts(&p, ec_a);
  marshal_attest(&p);
  p.attest_raw[p.attest_len++] = 0;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&t, &p);
  expect_refused(&t, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "bytes follow the TPMS_ATTEST");
  /* One byte after the signature or the public area, inside their fields. */
  static const char *after[] = {"bytes follow the TPMT_SIGNATURE", "bytes follow the AK TPM2B_PUBLIC"};
  for (int f = 0; f < 2; f++) {
    good_parts(&p, ec_a);
    sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
    build(&b, &p);
    size_t at = 8 + 4 + p.attest_len;
    uint32_t flen = (uint32_t)b.b[at] << 24 | (uint32_t)b.b[at + 1] << 16 | (uint32_t)b.b[at + 2] << 8 | b.b[at + 3];
    if (f == 1) {
      at += 4 + flen;
      flen = (uint32_t)b.b[at] << 24 | (uint32_t)b.b[at + 1] << 16 | (uint32_t)b.b[at + 2] << 8 | b.b[at + 3];
    }
    t.len = 0;
    put(&t, b.b, at);
    put_u32(&t, flen + 1);
    put(&t, b.b + at + 4, flen);
    uint8_t zero = 0;
    put(&t, &zero, 1);
    put(&t, b.b + at + 4 + flen, b.len - at - 4 - flen);
    expect_refused(&t, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, after[f]);
  }
  /* Over the cap: refused before it is looked at. */
  static uint8_t big[ALN_TPM_QUOTE_MAX + 1];
  memcpy(big, b.b, b.len);
  struct aln_claims c;
  struct aln_refusal why;
  assert_int_equal(aln_tpm_quote_verify(&c, &why, big, sizeof(big), &pol, &ctx_nonce), ALN_ERR_ATTEST_MALFORMED);
  assert_non_null(strstr(why.why, "more than"));
  assert_int_equal(aln_tpm_quote_decode(q, big, sizeof(big)), ALN_ERR_TOO_LARGE);
  free(q);
}

static void test_wrong_magic_and_type(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_tpm_policy pol = policy();
  /* Validly signed by the enrolled AK, but not TPM-generated: what a restricted key
   * never signs, so such bytes can only come from a key that is not one. */
  good_parts(&p, ec_a);
  p.attest.magic = TPM2_GENERATED_VALUE + 1;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "magic is not TPM_GENERATED_VALUE");
  /* A certification, not a quote. */
  good_parts(&p, ec_a);
  p.attest.type = TPM2_ST_ATTEST_CERTIFY;
  memset(&p.attest.attested, 0, sizeof(p.attest.attested));
  p.attest.attested.certify.name.size = 34;
  p.attest.attested.certify.qualifiedName.size = 34;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "type is not TPM_ST_ATTEST_QUOTE");
  /* A clock "safe" flag that is neither YES nor NO. */
  good_parts(&p, ec_a);
  p.attest.clockInfo.safe = 2;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "safe");
  /* The container's own magic. */
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  b.b[7] = '2';
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "does not start with ALNTPMQ1");

  /* aln_tpm_attest_parse on its own. */
  TPMS_ATTEST a;
  good_parts(&p, ec_a);
  marshal_attest(&p);
  assert_int_equal(aln_tpm_attest_parse(&a, p.attest_raw, p.attest_len), ALN_OK);
  assert_int_equal(a.magic, TPM2_GENERATED_VALUE);
  assert_int_equal(aln_tpm_attest_parse(&a, p.attest_raw, p.attest_len - 1), ALN_ERR_TRUNCATED);
  assert_int_equal(a.magic, 0);
  p.attest_raw[p.attest_len] = 0;
  assert_int_equal(aln_tpm_attest_parse(&a, p.attest_raw, p.attest_len + 1), ALN_ERR_TRAILING);
  assert_int_equal(aln_tpm_attest_parse(&a, NULL, 0), ALN_ERR_TRUNCATED);
  p.attest_raw[0] ^= 1;
  assert_int_equal(aln_tpm_attest_parse(&a, p.attest_raw, p.attest_len), ALN_ERR_MALFORMED);
  assert_int_equal(aln_tpm_attest_parse(NULL, p.attest_raw, p.attest_len), ALN_ERR_USAGE);
  /* A TPM2B inside claiming more than its buffer holds. */
  good_parts(&p, ec_a);
  marshal_attest(&p);
  p.attest_raw[6] = 0xff; /* qualifiedSigner.size */
  assert_int_not_equal(aln_tpm_attest_parse(&a, p.attest_raw, p.attest_len), ALN_OK);
}

static void test_pcr_values_shape(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_tpm_policy pol = policy();
  /* One value fewer than the quote selects. */
  good_parts(&p, ec_a);
  p.num_values = 2;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "number of PCR values");
  /* A sha256 value of sha1's size. */
  good_parts(&p, ec_a);
  p.values[1].size = 20;
  digest_values(&p);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "size of its bank's digest");
  /* Another chunking of the same values: one list per value. */
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  p.pcrs_len = 0;
  for (size_t i = 0; i < p.num_values; i++) {
    TPML_DIGEST l = {.count = 1};
    l.digests[0] = p.values[i];
    assert_int_equal(Tss2_MU_TPML_DIGEST_Marshal(&l, p.pcrs_raw, sizeof(p.pcrs_raw), &p.pcrs_len), TSS2_RC_SUCCESS);
  }
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "8 per list");
  /* An empty list. */
  p.pcrs_len = 0;
  TPML_DIGEST empty = {0};
  assert_int_equal(Tss2_MU_TPML_DIGEST_Marshal(&empty, p.pcrs_raw, sizeof(p.pcrs_raw), &p.pcrs_len), TSS2_RC_SUCCESS);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "8 per list");
  /* A list claiming nine digests. */
  p.pcrs_raw[3] = 9;
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, NULL);
  p.pcrs_len = 0;
  /* Nine values: two lists, 8 then 1, accepted; 1 then 8 is not the encoding. */
  good_parts(&p, ec_a);
  for (unsigned pcr = 0; pcr < 6; pcr++)
    select_pcr(&p.attest.attested.quote.pcrSelect, TPM2_ALG_SHA1, pcr + 1);
  memset(&p.values, 0, sizeof(p.values));
  for (size_t i = 0; i < 7; i++)
    p.values[i].size = 20;
  p.values[7].size = 32;
  memcpy(p.values[7].buffer, pcr7, 32);
  p.values[8].size = 32;
  memcpy(p.values[8].buffer, pcr16, 32);
  p.num_values = 9;
  digest_values(&p);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  struct aln_claims c;
  expect_ok(&b, &pol, &ctx_nonce, &c);
  assert_int_equal(json_object_size(json_object_get(c.detail, "pcrs")), 9);
  aln_claims_cleanup(&c);
  TPML_DIGEST one = {.count = 1}, eight = {.count = 8};
  one.digests[0] = p.values[0];
  for (int i = 0; i < 8; i++)
    eight.digests[i] = p.values[1 + i];
  assert_int_equal(Tss2_MU_TPML_DIGEST_Marshal(&one, p.pcrs_raw, sizeof(p.pcrs_raw), &p.pcrs_len), TSS2_RC_SUCCESS);
  assert_int_equal(Tss2_MU_TPML_DIGEST_Marshal(&eight, p.pcrs_raw, sizeof(p.pcrs_raw), &p.pcrs_len), TSS2_RC_SUCCESS);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "8 per list");
  /* A bank selected twice, and a bank we do not know. */
  good_parts(&p, ec_a);
  p.attest.attested.quote.pcrSelect.pcrSelections[2] = p.attest.attested.quote.pcrSelect.pcrSelections[0];
  p.attest.attested.quote.pcrSelect.count = 3;
  p.values[3] = p.values[0];
  p.num_values = 4;
  digest_values(&p);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "bank twice");
  good_parts(&p, ec_a);
  p.attest.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SM3_256;
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_ATTEST_MALFORMED, "bank other than");
}

static void test_policy_usage(void **state) {
  (void)state;
  static struct parts p;
  struct buf b;
  struct aln_claims c;
  struct aln_refusal why;
  good_parts(&p, ec_a);
  sign_parts(&p, ec_a, TPM2_ALG_ECDSA);
  build(&b, &p);
  struct aln_tpm_policy pol = policy();
  pol.num_ak_names = 0;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_USAGE, "policy");
  pol = policy();
  pol.num_pcrs = 0;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_USAGE, "policy");
  pol = policy();
  refs[1].bank = TPM2_ALG_SM3_256;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_USAGE, "policy");
  pol = policy();
  refs[1].index = 32;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_USAGE, "policy");
  pol = policy();
  refs[1].num_values = 0;
  expect_refused(&b, &pol, &ctx_nonce, ALN_ERR_USAGE, "policy");
  pol = policy();
  assert_int_equal(aln_tpm_quote_verify(NULL, &why, b.b, b.len, &pol, &ctx_nonce), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_quote_verify(&c, NULL, b.b, b.len, &pol, NULL), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_quote_verify(&c, NULL, b.b, b.len, NULL, &ctx_nonce), ALN_ERR_USAGE);
  /* why may be NULL. */
  assert_int_equal(aln_tpm_quote_verify(&c, NULL, b.b, b.len, &pol, &ctx_nonce), ALN_OK);
  aln_claims_cleanup(&c);
}

/* ---- KDFs and MakeCredential ------------------------------------------------------------- */

static void openssl_kbkdf(uint8_t *out, size_t len, const uint8_t *key, size_t key_len, const char *label,
                          const uint8_t *ctx, size_t ctx_len) {
  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "KBKDF", NULL);
  EVP_KDF_CTX *kc = EVP_KDF_CTX_new(kdf);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, "counter", 0),
                         OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, "HMAC", 0),
                         OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len),
                         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, strlen(label)),
                         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)ctx, ctx_len),
                         OSSL_PARAM_END};
  assert_non_null(kc);
  assert_int_equal(EVP_KDF_derive(kc, out, len, params), 1);
  EVP_KDF_CTX_free(kc);
  EVP_KDF_free(kdf);
}

static void openssl_sskdf(uint8_t *out, size_t len, const uint8_t *z, size_t z_len, const uint8_t *info,
                          size_t info_len) {
  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SSKDF", NULL);
  EVP_KDF_CTX *kc = EVP_KDF_CTX_new(kdf);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, z_len),
                         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len),
                         OSSL_PARAM_END};
  assert_non_null(kc);
  assert_int_equal(EVP_KDF_derive(kc, out, len, params), 1);
  EVP_KDF_CTX_free(kc);
  EVP_KDF_free(kdf);
}

static void test_kdfs_match_openssl(void **state) {
  (void)state;
  uint8_t key[32], u[34], v[32], ours[80], theirs[80], ctx[66];
  for (size_t i = 0; i < 32; i++)
    key[i] = (uint8_t)i, v[i] = (uint8_t)(0x40 + i);
  for (size_t i = 0; i < 34; i++)
    u[i] = (uint8_t)(0x80 + i);
  memcpy(ctx, u, 34);
  memcpy(ctx + 34, v, 32);
  /* KDFa is SP800-108 counter mode, the label's NUL the separator, L = bits. */
  static const size_t lens[] = {16, 32, 33, 80};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(aln_tpm_kdfa(ours, lens[i], key, 32, "STORAGE", u, 34, v, 32), ALN_OK);
    openssl_kbkdf(theirs, lens[i], key, 32, "STORAGE", ctx, 66);
    assert_memory_equal(ours, theirs, lens[i]);
    assert_int_equal(aln_tpm_kdfa(ours, lens[i], key, 32, "INTEGRITY", NULL, 0, NULL, 0), ALN_OK);
    openssl_kbkdf(theirs, lens[i], key, 32, "INTEGRITY", NULL, 0);
    assert_memory_equal(ours, theirs, lens[i]);
  }
  /* KDFe is the SP800-56A one-step KDF, FixedInfo = label || NUL || U || V. */
  uint8_t info[9 + 34 + 32];
  memcpy(info, "IDENTITY", 9);
  memcpy(info + 9, u, 34);
  memcpy(info + 9 + 34, v, 32);
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(aln_tpm_kdfe(ours, lens[i], key, 32, "IDENTITY", u, 34, v, 32), ALN_OK);
    openssl_sskdf(theirs, lens[i], key, 32, info, sizeof(info));
    assert_memory_equal(ours, theirs, lens[i]);
  }
  assert_int_equal(aln_tpm_kdfa(ours, 0, key, 32, "X", NULL, 0, NULL, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_kdfa(ours, 16, key, 32, NULL, NULL, 0, NULL, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_kdfe(ours, 16, NULL, 0, "X", NULL, 0, NULL, 0), ALN_ERR_USAGE);
}

/* open_credential does ActivateCredential's work in software with the EK's private
 * key, through OpenSSL's KDFs: the seed, the HMAC over encIdentity || name, then the
 * AES-128-CFB decryption of the TPM2B credential. Returns its length, or -1. */
static int open_credential(uint8_t *out, EVP_PKEY *ek_priv, const TPM2B_NAME *name, const TPM2B_ID_OBJECT *blob,
                           const TPM2B_ENCRYPTED_SECRET *secret) {
  uint8_t seed[256], sym[16], hmac_key[32], mac[32], plain[64], iv[16] = {0};
  size_t seed_len = sizeof(seed);
  if (EVP_PKEY_is_a(ek_priv, "RSA")) {
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, ek_priv, NULL);
    assert_int_equal(EVP_PKEY_decrypt_init(c), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(c, OPENSSL_memdup("IDENTITY", 9), 9), 1);
    assert_int_equal(EVP_PKEY_decrypt(c, seed, &seed_len, secret->secret, secret->size), 1);
    assert_int_equal(seed_len, 32);
    EVP_PKEY_CTX_free(c);
  } else {
    /* The secret is the ephemeral point; Z = x([d_EK] Q_eph). */
    TPMS_ECC_POINT q = {0};
    size_t off = 0;
    assert_int_equal(Tss2_MU_TPMS_ECC_POINT_Unmarshal(secret->secret, secret->size, &off, &q), TSS2_RC_SUCCESS);
    assert_int_equal(off, secret->size);
    uint8_t pt[65] = {0x04}, z[32], ek_pt[65], info[9 + 32 + 32];
    size_t z_len = sizeof(z), ek_len = 0;
    memcpy(pt + 1, q.x.buffer, 32);
    memcpy(pt + 33, q.y.buffer, 32);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0),
                           OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 65), OSSL_PARAM_END};
    EVP_PKEY_CTX *fc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *eph = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(fc), 1);
    assert_int_equal(EVP_PKEY_fromdata(fc, &eph, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new_from_pkey(NULL, ek_priv, NULL);
    assert_int_equal(EVP_PKEY_derive_init(dc), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(dc, eph), 1);
    assert_int_equal(EVP_PKEY_derive(dc, z, &z_len), 1);
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(ek_priv, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, ek_pt, sizeof(ek_pt), &ek_len), 1);
    memcpy(info, "IDENTITY", 9);
    memcpy(info + 9, q.x.buffer, 32);
    memcpy(info + 41, ek_pt + 1, 32);
    openssl_sskdf(seed, 32, z, 32, info, sizeof(info));
    EVP_PKEY_CTX_free(dc);
    EVP_PKEY_CTX_free(fc);
    EVP_PKEY_free(eph);
  }
  openssl_kbkdf(sym, 16, seed, 32, "STORAGE", name->name, name->size);
  openssl_kbkdf(hmac_key, 32, seed, 32, "INTEGRITY", NULL, 0);
  /* credential = TPM2B_DIGEST(outerHMAC) || encIdentity */
  if (blob->size < 2 + 32 + 2 || blob->credential[0] != 0 || blob->credential[1] != 32)
    return -1;
  const uint8_t *enc = blob->credential + 34;
  size_t enc_len = blob->size - 34;
  unsigned int mac_len = 0;
  uint8_t macced[256];
  memcpy(macced, enc, enc_len);
  memcpy(macced + enc_len, name->name, name->size);
  HMAC(EVP_sha256(), hmac_key, 32, macced, enc_len + name->size, mac, &mac_len);
  if (memcmp(mac, blob->credential + 2, 32) != 0)
    return -1;
  EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
  int n = 0, fin = 0;
  assert_int_equal(EVP_DecryptInit_ex(cc, EVP_aes_128_cfb128(), NULL, sym, iv), 1);
  assert_int_equal(EVP_DecryptUpdate(cc, plain, &n, enc, (int)enc_len), 1);
  assert_int_equal(EVP_DecryptFinal_ex(cc, plain + n, &fin), 1);
  EVP_CIPHER_CTX_free(cc);
  size_t len = (size_t)plain[0] << 8 | plain[1];
  if (len + 2 != enc_len)
    return -1;
  memcpy(out, plain + 2, len);
  return (int)len;
}

static void test_make_credential_opens(void **state) {
  (void)state;
  EVP_PKEY *eks[2] = {EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")};
  uint8_t cred[32], got[64];
  for (size_t i = 0; i < sizeof(cred); i++)
    cred[i] = (uint8_t)(0xc0 + i);
  for (int k = 0; k < 2; k++) {
    assert_non_null(eks[k]);
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET secret;
    assert_int_equal(aln_tpm_make_credential(&blob, &secret, eks[k], &name_ec_a, cred, sizeof(cred)), ALN_OK);
    assert_int_equal(blob.size, 2 + 32 + 2 + 32);
    assert_int_equal(secret.size, k == 0 ? 256 : 2 + 32 + 2 + 32);
    assert_int_equal(open_credential(got, eks[k], &name_ec_a, &blob, &secret), 32);
    assert_memory_equal(got, cred, 32);
    /* For another name the HMAC does not match: the TPM would refuse it. */
    assert_int_equal(open_credential(got, eks[k], &name_ec_b, &blob, &secret), -1);
    /* Fresh seed each time. */
    TPM2B_ID_OBJECT blob2;
    TPM2B_ENCRYPTED_SECRET secret2;
    assert_int_equal(aln_tpm_make_credential(&blob2, &secret2, eks[k], &name_ec_a, cred, sizeof(cred)), ALN_OK);
    assert_memory_not_equal(blob.credential, blob2.credential, blob.size);
    EVP_PKEY_free(eks[k]);
  }
  /* aln_tpm_public_to_pkey refuses a point off the curve and unknown types. */
  TPM2B_PUBLIC pub = ak_public(ec_a, TPM2_ALG_ECDSA);
  EVP_PKEY *k = NULL;
  assert_int_equal(aln_tpm_public_to_pkey(&k, &pub), ALN_OK);
  assert_int_equal(EVP_PKEY_eq(k, ec_a), 1);
  EVP_PKEY_free(k);
  pub.publicArea.unique.ecc.x.buffer[0] ^= 1;
  assert_int_equal(aln_tpm_public_to_pkey(&k, &pub), ALN_ERR_USAGE);
  assert_null(k);
  pub.publicArea.type = TPM2_ALG_KEYEDHASH;
  assert_int_equal(aln_tpm_public_to_pkey(&k, &pub), ALN_ERR_USAGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kat_tpm2_quote),        cmocka_unit_test(test_accepted_each_scheme),
      cmocka_unit_test(test_wrong_nonce),           cmocka_unit_test(test_wrong_pcr_value),
      cmocka_unit_test(test_pcr_digest_mismatch),   cmocka_unit_test(test_forged_signature),
      cmocka_unit_test(test_untrusted_ak),          cmocka_unit_test(test_truncated_and_padded),
      cmocka_unit_test(test_wrong_magic_and_type),  cmocka_unit_test(test_pcr_values_shape),
      cmocka_unit_test(test_policy_usage),          cmocka_unit_test(test_kdfs_match_openssl),
      cmocka_unit_test(test_make_credential_opens),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
