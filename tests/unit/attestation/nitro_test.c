/* Tests for the "aws-nitro" verifier. Two sources of evidence:
 *  - a real attestation document (tests/data/attestation/nitro/, see its README),
 *    judged at its stated time under the pinned AWS root: its claims, its validity
 *    window to the second, flipped, truncated and padded bytes, a swapped root;
 *  - documents made here with OpenSSL under a test root -> intermediate -> leaf
 *    chain, their CBOR written byte by byte and their Sig_structure built by hand
 *    (not with attestation/cose.c), so each negative test differs from a valid
 *    document only in the defect it names and is still properly signed.
 * Run with arguments, the binary is also the driver tests/interop/test_nitro_*.py
 * uses to put documents made by independent tools (cbor2, cryptography) before
 * the verifier; see driver_main. */
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
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "attestation/nitro.h"

/* The real document: verified at REAL_AT; its leaf is valid REAL_NB .. REAL_NA. */
#define REAL_DOC "evervault_ga_2023-09-18.bin"
#define REAL_ROOT_PEM "aws_nitro_root_g1.pem"
#define REAL_AT 1695049410
#define REAL_NB 1695047829 /* 2023-09-18T14:37:09Z */
#define REAL_NA 1695058632 /* 2023-09-18T17:37:12Z */
#define REAL_MODULE_ID "i-0918f6c55e3b61d89-enc018aa8b8e2285d13"
#define REAL_PCR3 "4a9329d69c836267b18abbf9f4a38889124490453419e426818626348d21f989dc930b1562682a9082887454e53425aa"
#define REAL_PCR4 "d0531b1400dd43288c82c226c16bf647c637dd5e4d9b4f7a8aaadc6d6760b854a06c7008cca0d15ca80094dd33a65065"
#define AWS_ROOT_SHA256 "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
/* Offsets in the (untagged) real document: 84 44 <prot:4> a0 59 12 20 <payload> 58 60 <sig>. */
#define REAL_PROT_OFF 2
#define REAL_PAYLOAD_OFF 10
#define REAL_PAYLOAD_LEN 4640
#define REAL_SIG_OFF 4652

/* Documents made here: issued at T0 (+123 ms), judged at NOW. */
#define T0 1700000000
#define NOW (T0 + 10)

/* --- small helpers ------------------------------------------------------------------- */

struct buf {
  uint8_t b[24576];
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

/* put_head writes a CBOR head in its shortest form. */
static void put_head(struct buf *b, unsigned major, uint64_t arg) {
  uint8_t mt = (uint8_t)(major << 5);
  if (arg < 24) {
    put_u8(b, (uint8_t)(mt | arg));
    return;
  }
  int width = arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffu ? 4 : 8;
  put_u8(b, (uint8_t)(mt | (width == 1 ? 24 : width == 2 ? 25 : width == 4 ? 26 : 27)));
  for (int i = width - 1; i >= 0; i--)
    put_u8(b, (uint8_t)(arg >> (8 * i)));
}

static void put_bstr(struct buf *b, const uint8_t *p, size_t n) {
  put_head(b, 2, n);
  put(b, p, n);
}

static void put_tstr(struct buf *b, const char *s) {
  put_head(b, 3, strlen(s));
  put(b, s, strlen(s));
}

static size_t unhex(uint8_t *out, size_t cap, const char *hex) {
  size_t n = strlen(hex) / 2;
  assert_true(n <= cap && strlen(hex) % 2 == 0);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
  return n;
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  uint8_t *p = malloc(1 << 16);
  size_t n = p != NULL ? fread(p, 1, 1 << 16, f) : 0;
  int err = ferror(f);
  fclose(f);
  if (p == NULL || err || n == 1 << 16) {
    free(p);
    return NULL;
  }
  *len = n;
  return p;
}

/* data_path builds tests/data/attestation/nitro/<name> from this file's path. */
static void data_path(char *out, size_t cap, const char *name) {
  const char *me = __FILE__;
  const char *cut = strstr(me, "unit/attestation/nitro_test.c");
  assert_non_null(cut);
  int n = snprintf(out, cap, "%.*sdata/attestation/nitro/%s", (int)(cut - me), me, name);
  assert_true(n > 0 && (size_t)n < cap);
}

static const uint8_t *find(const uint8_t *hay, size_t hay_len, const void *needle, size_t n) {
  for (size_t i = 0; i + n <= hay_len; i++)
    if (memcmp(hay + i, needle, n) == 0)
      return hay + i;
  return NULL;
}

/* --- the real document ---------------------------------------------------------- */

static uint8_t *real;
static size_t real_len;
static const uint8_t *real_nonce, *real_user_data; /* 256 and 91 bytes, inside |real| */
static uint8_t real_pcr3[48], real_pcr4[48];

/* --- a test PKI ---------------------------------------------------------------------- */

struct cert {
  EVP_PKEY *key;
  X509 *x;
  uint8_t der[2048];
  size_t der_len;
};

static long serial = 1;

static EVP_PKEY *ec_key(const char *curve) {
  EVP_PKEY *k = EVP_EC_gen(curve);
  assert_non_null(k);
  return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
  assert_non_null(ext);
  assert_int_equal(X509_add_ext(x, ext, -1), 1);
  X509_EXTENSION_free(ext);
}

/* make_cert issues |c| (its key already set) as |cn|, signed by |issuer| (NULL:
 * self-signed) with |md|, valid nb .. na. */
static void make_cert(struct cert *c, const char *cn, const struct cert *issuer, int ca, int64_t nb, int64_t na,
                      const EVP_MD *md) {
  X509 *x = X509_new();
  assert_non_null(x);
  assert_int_equal(X509_set_version(x, 2), 1);
  assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
  X509_NAME *name = X509_NAME_new();
  assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
  assert_int_equal(X509_set_subject_name(x, name), 1);
  assert_int_equal(X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer->x) : name), 1);
  X509_NAME_free(name);
  assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb));
  assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na));
  assert_int_equal(X509_set_pubkey(x, c->key), 1);
  X509 *iss = issuer != NULL ? issuer->x : x;
  add_ext(x, iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x, iss, NID_key_usage, ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature");
  assert_true(X509_sign(x, issuer != NULL ? issuer->key : c->key, md) > 0);
  unsigned char *p = c->der;
  int n = i2d_X509(x, NULL);
  assert_true(n > 0 && (size_t)n <= sizeof(c->der));
  assert_int_equal(i2d_X509(x, &p), n);
  c->der_len = (size_t)n;
  c->x = x;
}

static void cert_free(struct cert *c) {
  X509_free(c->x);
  EVP_PKEY_free(c->key);
  memset(c, 0, sizeof(*c));
}

static uint8_t test_nonce[32]; /* 80..9f: the binding of the documents made here */

static void nonce_init(void) {
  for (size_t i = 0; i < sizeof(test_nonce); i++)
    test_nonce[i] = (uint8_t)(0x80 + i);
}

/* The chain of the documents made here: root -> inter -> leaf, all P-384/SHA-384. */
static struct cert root, inter, leaf;

static void chain_make(void) {
  root.key = ec_key("P-384");
  inter.key = ec_key("P-384");
  leaf.key = ec_key("P-384");
  make_cert(&root, "test nitro root", NULL, 1, T0 - 86400 * 365, T0 + 86400 * 365, EVP_sha384());
  make_cert(&inter, "test nitro intermediate", &root, 1, T0 - 86400, T0 + 86400, EVP_sha384());
  make_cert(&leaf, "test nitro enclave", &inter, 0, T0 - 3600, T0 + 3600, EVP_sha384());
}

static int group_setup(void **state) {
  (void)state;
  char path[1024];
  data_path(path, sizeof(path), REAL_DOC);
  real = read_file(path, &real_len);
  if (real == NULL || real_len != 4748)
    return -1;
  real_nonce = find(real, real_len, "\x65nonce\x59\x01\x00", 9);
  real_user_data = find(real, real_len, "\x69user_data\x58\x5b", 12);
  if (real_nonce == NULL || real_user_data == NULL)
    return -1;
  real_nonce += 9;
  real_user_data += 12;
  unhex(real_pcr3, sizeof(real_pcr3), REAL_PCR3);
  unhex(real_pcr4, sizeof(real_pcr4), REAL_PCR4);
  nonce_init();
  chain_make();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  free(real);
  cert_free(&root);
  cert_free(&inter);
  cert_free(&leaf);
  return 0;
}

/* --- documents made here ------------------------------------------------------------ */

static const uint8_t prot_es384[] = {0xa1, 0x01, 0x38, 0x22};

/* PCR i of a made document: 48 bytes of 0x10 + i; PCR0 zeros when |debug|. */
static void pcr_value(uint8_t out[48], unsigned i, int debug) {
  memset(out, i == 0 && debug ? 0 : (int)(0x10 + i), 48);
}

static void f_module_id(struct buf *b) {
  put_tstr(b, "module_id");
  put_tstr(b, "i-0123456789abcdef0-enc0123456789abcdef");
}
static void f_digest(struct buf *b) {
  put_tstr(b, "digest");
  put_tstr(b, "SHA384");
}
static void f_timestamp(struct buf *b, uint64_t ms) {
  put_tstr(b, "timestamp");
  put_head(b, 0, ms);
}
static void f_pcrs(struct buf *b, int debug) {
  uint8_t v[48];
  put_tstr(b, "pcrs");
  put_head(b, 5, 5);
  for (unsigned i = 0; i < 5; i++) {
    pcr_value(v, i, debug);
    put_head(b, 0, i);
    put_bstr(b, v, sizeof(v));
  }
}
static void f_certificate(struct buf *b, const struct cert *c) {
  put_tstr(b, "certificate");
  put_bstr(b, c->der, c->der_len);
}
static void f_cabundle(struct buf *b, const struct cert *const *certs, size_t n) {
  put_tstr(b, "cabundle");
  put_head(b, 4, n);
  for (size_t i = 0; i < n; i++)
    put_bstr(b, certs[i]->der, certs[i]->der_len);
}
static void f_null(struct buf *b, const char *name) {
  put_tstr(b, name);
  put_u8(b, 0xf6);
}
static void f_bytes(struct buf *b, const char *name, const uint8_t *p, size_t n) {
  put_tstr(b, name);
  put_bstr(b, p, n);
}

/* payload_with writes the nine fields in AWS's order, with |cert| as the signing
 * certificate and |bundle| as cabundle. */
static void payload_with(struct buf *b, int debug, const struct cert *cert, const struct cert *const *bundle,
                         size_t n) {
  put_head(b, 5, 9);
  f_module_id(b);
  f_digest(b);
  f_timestamp(b, (uint64_t)T0 * 1000 + 123);
  f_pcrs(b, debug);
  f_certificate(b, cert);
  f_cabundle(b, bundle, n);
  f_null(b, "public_key");
  f_bytes(b, "user_data", (const uint8_t *)"user data", 9);
  f_bytes(b, "nonce", test_nonce, sizeof(test_nonce));
}

static void good_payload(struct buf *b, int debug) {
  const struct cert *bundle[] = {&root, &inter};
  payload_with(b, debug, &leaf, bundle, 2);
}

/* es384_sign signs |tbs| with |key| and writes the signature as R||S (96 bytes). */
static void es384_sign(uint8_t out[96], EVP_PKEY *key, const uint8_t *tbs, size_t tbs_len) {
  uint8_t der[128];
  size_t der_len = sizeof(der);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_non_null(md);
  assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key), 1);
  assert_int_equal(EVP_DigestSign(md, der, &der_len, tbs, tbs_len), 1);
  EVP_MD_CTX_free(md);
  const unsigned char *p = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
  assert_non_null(es);
  assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), out, 48), 48);
  assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), out + 48, 48), 48);
  ECDSA_SIG_free(es);
}

/* sign_doc writes [tag] [prot, unprot, payload, sig] with |key|'s ES384 signature
 * over a Sig_structure built here byte by byte. */
static void sign_doc(struct buf *out, EVP_PKEY *key, int tagged, const uint8_t *prot, size_t prot_len,
                     const uint8_t *unprot, size_t unprot_len, const struct buf *payload) {
  static struct buf tbs;
  uint8_t sig[96];
  tbs.len = 0;
  put(&tbs, "\x84\x6aSignature1", 12);
  put_bstr(&tbs, prot, prot_len);
  put_u8(&tbs, 0x40);
  put_bstr(&tbs, payload->b, payload->len);
  es384_sign(sig, key, tbs.b, tbs.len);
  out->len = 0;
  if (tagged)
    put_u8(out, 0xd2);
  put_u8(out, 0x84);
  put_bstr(out, prot, prot_len);
  put(out, unprot, unprot_len);
  put_bstr(out, payload->b, payload->len);
  put_bstr(out, sig, sizeof(sig));
}

static void sign_payload(struct buf *out, const struct buf *payload) {
  sign_doc(out, leaf.key, 0, prot_es384, sizeof(prot_es384), (const uint8_t *)"\xa0", 1, payload);
}

/* --- verifying ----------------------------------------------------------------------- */

static struct aln_nitro_pcr real_rules[2];
static struct aln_nitro_pcr test_rules[2];
static uint8_t test_pcr0[48], test_pcr3[48];

/* real_policy: the real document's PCR3 and PCR4, under the pinned AWS root. */
static struct aln_nitro_policy real_policy(int allow_debug) {
  real_rules[0] = (struct aln_nitro_pcr){.index = 3, .value = real_pcr3, .value_len = 48};
  real_rules[1] = (struct aln_nitro_pcr){.index = 4, .value = real_pcr4, .value_len = 48};
  return (struct aln_nitro_policy){.pcrs = real_rules, .num_pcrs = 2, .allow_debug = allow_debug};
}

/* test_policy: PCR0 and PCR3 of a made document, under the test root. */
static struct aln_nitro_policy test_policy(void) {
  pcr_value(test_pcr0, 0, 0);
  pcr_value(test_pcr3, 3, 0);
  test_rules[0] = (struct aln_nitro_pcr){.index = 0, .value = test_pcr0, .value_len = 48};
  test_rules[1] = (struct aln_nitro_pcr){.index = 3, .value = test_pcr3, .value_len = 48};
  return (struct aln_nitro_policy){
      .pcrs = test_rules, .num_pcrs = 2, .root_der = root.der, .root_der_len = root.der_len};
}

static struct aln_verify_ctx real_ctx(int64_t now) {
  return (struct aln_verify_ctx){.nonce = real_nonce, .nonce_len = 256, .now = now};
}

static struct aln_verify_ctx test_ctx(void) {
  return (struct aln_verify_ctx){.nonce = test_nonce, .nonce_len = sizeof(test_nonce), .now = NOW};
}

/* verify runs the verifier and holds it to its contract: on refusal the reason is
 * filled and |out| untouched; on success the kind is set. */
static aln_status verify(const uint8_t *ev, size_t len, const struct aln_nitro_policy *policy,
                         const struct aln_verify_ctx *ctx) {
  struct aln_claims c;
  struct aln_refusal why;
  memset(&c, 0xee, sizeof(c));
  memset(&why, 0, sizeof(why));
  aln_status st = aln_nitro_verify(&c, &why, ev, len, policy, ctx);
  if (st == ALN_OK) {
    assert_string_equal(c.kind, "aws-nitro");
    aln_claims_cleanup(&c);
  } else {
    struct aln_claims untouched;
    memset(&untouched, 0xee, sizeof(untouched));
    assert_memory_equal(&c, &untouched, sizeof(c));
    assert_int_equal(why.status, st);
    assert_true(why.why[0] != '\0');
  }
  return st;
}

static aln_status verify_buf(const struct buf *b) {
  struct aln_nitro_policy p = test_policy();
  struct aln_verify_ctx ctx = test_ctx();
  return verify(b->b, b->len, &p, &ctx);
}

static aln_status verify_real(const uint8_t *ev, size_t len, int allow_debug, int64_t now) {
  struct aln_nitro_policy p = real_policy(allow_debug);
  struct aln_verify_ctx ctx = real_ctx(now);
  return verify(ev, len, &p, &ctx);
}

static const char *detail_str(const struct aln_claims *c, const char *key) {
  return json_string_value(json_object_get(c->detail, key));
}

/* --- the pinned root ------------------------------------------------------------------ */

static void test_pinned_root(void **state) {
  (void)state;
  size_t len = 0;
  const uint8_t *der = aln_nitro_aws_root_der(&len);
  uint8_t md[32], want[32];
  unsigned md_len = 0;
  assert_int_equal(EVP_Digest(der, len, md, &md_len, EVP_sha256(), NULL), 1);
  unhex(want, sizeof(want), AWS_ROOT_SHA256);
  assert_memory_equal(md, want, sizeof(want));
  /* the same bytes as the PEM AWS publishes, and as cabundle[0] of the real document */
  char path[1024];
  data_path(path, sizeof(path), REAL_ROOT_PEM);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  assert_non_null(x);
  unsigned char *pem_der = NULL;
  int n = i2d_X509(x, &pem_der);
  assert_int_equal(n, (int)len);
  assert_memory_equal(pem_der, der, len);
  OPENSSL_free(pem_der);
  X509_free(x);
  assert_non_null(find(real, real_len, der, len));
}

/* --- the real document --------------------------------------------------------------- */

static void test_real_document_claims(void **state) {
  (void)state;
  struct aln_nitro_policy p = real_policy(1);
  struct aln_verify_ctx ctx = real_ctx(REAL_AT);
  struct aln_claims c;
  struct aln_refusal why = {0};
  memset(&c, 0, sizeof(c));
  assert_int_equal(aln_nitro_verify(&c, &why, real, real_len, &p, &ctx), ALN_OK);
  assert_string_equal(c.kind, "aws-nitro");
  assert_int_equal(c.debug, 1);
  assert_int_equal(c.nonce_checked, 1);
  char zeros[97];
  memset(zeros, '0', 96);
  zeros[96] = '\0';
  assert_string_equal(c.measurement, zeros);
  assert_true(c.issued_at == REAL_AT);
  assert_true(c.expires_at == REAL_NA); /* the leaf's notAfter: the earliest in the chain */
  assert_string_equal(detail_str(&c, "module_id"), REAL_MODULE_ID);
  assert_string_equal(detail_str(&c, "digest"), "SHA384");
  assert_true(json_integer_value(json_object_get(c.detail, "timestamp_ms")) == 1695049410860LL);
  json_t *pcrs = json_object_get(c.detail, "pcrs");
  assert_int_equal(json_object_size(pcrs), 16);
  assert_string_equal(json_string_value(json_object_get(pcrs, "3")), REAL_PCR3);
  assert_string_equal(json_string_value(json_object_get(pcrs, "4")), REAL_PCR4);
  for (const char *const *k = (const char *const[]){"0", "1", "2", "8", NULL}; *k != NULL; k++)
    assert_string_equal(json_string_value(json_object_get(pcrs, *k)), zeros);
  assert_true(json_is_false(json_object_get(c.detail, "has_public_key")));
  assert_true(json_is_true(json_object_get(c.detail, "has_user_data")));
  assert_true(json_is_true(json_object_get(c.detail, "has_nonce")));
  assert_string_equal(detail_str(&c, "bound_to"), "nonce");
  /* and the claims render */
  json_t *j = aln_claims_to_json(&c);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "aws-nitro");
  json_decref(j);
  aln_claims_cleanup(&c);

  /* |out| is optional */
  assert_int_equal(aln_nitro_verify(NULL, NULL, real, real_len, &p, &ctx), ALN_OK);
}

/* A PCR0 of zeros is a debug enclave: refused by a production policy. */
static void test_real_document_debug_refused(void **state) {
  (void)state;
  struct aln_nitro_policy p = real_policy(0);
  struct aln_verify_ctx ctx = real_ctx(REAL_AT);
  struct aln_refusal why = {0};
  assert_int_equal(aln_nitro_verify(NULL, &why, real, real_len, &p, &ctx), ALN_ERR_ATTEST_DEBUG);
  assert_int_equal(why.status, ALN_ERR_ATTEST_DEBUG);
  assert_non_null(strstr(why.why, "PCR0"));
  assert_int_equal(verify_real(real, real_len, 1, REAL_AT), ALN_OK);
}

static void test_real_document_tagged(void **state) {
  (void)state;
  uint8_t *t = malloc(real_len + 1);
  assert_non_null(t);
  t[0] = 0xd2;
  memcpy(t + 1, real, real_len);
  assert_int_equal(verify_real(t, real_len + 1, 1, REAL_AT), ALN_OK);
  free(t);
}

/* The leaf is valid from REAL_NB to REAL_NA. OpenSSL treats notAfter itself as
 * already expired (RFC 5280 would still accept that second): one second before it
 * is the last accepted, one second past it refused. */
static void test_real_document_validity_window(void **state) {
  (void)state;
  assert_int_equal(verify_real(real, real_len, 1, REAL_NA - 1), ALN_OK);
  assert_int_equal(verify_real(real, real_len, 1, REAL_NA + 1), ALN_ERR_ATTEST_EXPIRED);
  assert_int_equal(verify_real(real, real_len, 1, REAL_NA + 86400 * 365), ALN_ERR_ATTEST_EXPIRED);
  /* Before notBefore the document's own timestamp is in the future as well; allow
   * skew enough that only the certificate can be what refuses it. */
  struct aln_nitro_policy p = real_policy(1);
  struct aln_verify_ctx ctx = real_ctx(REAL_NB - 1);
  struct aln_refusal why = {0};
  ctx.max_skew_s = 3600;
  assert_int_equal(aln_nitro_verify(NULL, &why, real, real_len, &p, &ctx), ALN_ERR_ATTEST_EXPIRED);
  assert_non_null(strstr(why.why, "not yet valid"));
  ctx.now = REAL_NB;
  assert_int_equal(aln_nitro_verify(NULL, &why, real, real_len, &p, &ctx), ALN_OK);
  /* without the skew, the same second is refused for the timestamp */
  ctx.max_skew_s = 0;
  assert_int_equal(aln_nitro_verify(NULL, &why, real, real_len, &p, &ctx), ALN_ERR_ATTEST_EXPIRED);
  assert_non_null(strstr(why.why, "timestamp"));
}

static void test_real_document_wrong_nonce(void **state) {
  (void)state;
  struct aln_nitro_policy p = real_policy(1);
  struct aln_verify_ctx ctx = real_ctx(REAL_AT);
  uint8_t other[256];
  for (size_t i = 0; i < sizeof(other); i += 51) {
    memcpy(other, real_nonce, sizeof(other));
    other[i] ^= 0x01;
    ctx.nonce = other;
    assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_ATTEST_BINDING);
  }
  /* a prefix of the right nonce */
  ctx.nonce = real_nonce;
  ctx.nonce_len = 255;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_ATTEST_BINDING);
  /* bound to user_data, the nonce no longer matches, user_data does */
  ctx.nonce_len = 256;
  p.binding = ALN_NITRO_BIND_USER_DATA;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_ATTEST_BINDING);
  ctx.nonce = real_user_data;
  ctx.nonce_len = 91;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_OK);
  /* no nonce to check: accepted, and the claims say it was not checked */
  struct aln_claims c;
  ctx.nonce = NULL;
  ctx.nonce_len = 0;
  assert_int_equal(aln_nitro_verify(&c, NULL, real, real_len, &p, &ctx), ALN_OK);
  assert_int_equal(c.nonce_checked, 0);
  assert_true(json_is_null(json_object_get(c.detail, "bound_to")));
  aln_claims_cleanup(&c);
}

static void test_real_document_flipped_signed_bytes(void **state) {
  (void)state;
  uint8_t *d = malloc(real_len);
  assert_non_null(d);
  memcpy(d, real, real_len);
  /* protected header: only one encoding of {1: -35} is accepted */
  for (size_t i = REAL_PROT_OFF; i < REAL_PROT_OFF + 4; i++) {
    for (int bit = 0; bit < 8; bit++) {
      d[i] ^= (uint8_t)(1u << bit);
      assert_int_equal(verify_real(d, real_len, 1, REAL_AT), ALN_ERR_ATTEST_MALFORMED);
      d[i] ^= (uint8_t)(1u << bit);
    }
  }
  /* payload, sampled across every field */
  for (size_t i = REAL_PAYLOAD_OFF; i < REAL_PAYLOAD_OFF + REAL_PAYLOAD_LEN; i += 29) {
    d[i] ^= 0x01;
    assert_int_not_equal(verify_real(d, real_len, 1, REAL_AT), ALN_OK);
    d[i] ^= 0x01;
  }
  /* bytes whose change leaves a well-formed document (module_id, PCR3, nonce) fail
   * exactly at the signature */
  size_t offs[] = {(size_t)(find(real, real_len, REAL_MODULE_ID, 10) - real) + 4,
                   (size_t)(find(real, real_len, real_pcr3, 48) - real) + 20, (size_t)(real_nonce - real) + 100};
  for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
    d[offs[k]] ^= 0x01;
    assert_int_equal(verify_real(d, real_len, 1, REAL_AT), ALN_ERR_ATTEST_SIG);
    d[offs[k]] ^= 0x01;
  }
  /* the signature: every byte */
  for (size_t i = REAL_SIG_OFF; i < real_len; i++) {
    d[i] ^= 0x80;
    assert_int_equal(verify_real(d, real_len, 1, REAL_AT), ALN_ERR_ATTEST_SIG);
    d[i] ^= 0x80;
  }
  assert_memory_equal(d, real, real_len);
  assert_int_equal(verify_real(d, real_len, 1, REAL_AT), ALN_OK);
  free(d);
}

static void test_real_document_truncated_and_padded(void **state) {
  (void)state;
  for (size_t n = 0; n < real_len; n++) {
    uint8_t *p = malloc(n == 0 ? 1 : n); /* exact size, so ASan sees any over-read */
    assert_non_null(p);
    memcpy(p, real, n);
    assert_int_equal(verify_real(p, n, 1, REAL_AT), ALN_ERR_ATTEST_MALFORMED);
    free(p);
  }
  uint8_t *pad = malloc(real_len + 4);
  assert_non_null(pad);
  memcpy(pad, real, real_len);
  static const uint8_t extra[] = {0x00, 0xff, 0xa0, 0xd2};
  for (size_t i = 0; i < sizeof(extra); i++) {
    pad[real_len] = extra[i];
    assert_int_equal(verify_real(pad, real_len + 1, 1, REAL_AT), ALN_ERR_ATTEST_MALFORMED);
  }
  free(pad);
  /* over the cap before anything is decoded */
  uint8_t *big = calloc(1, ALN_NITRO_DOC_MAX + 1);
  assert_non_null(big);
  memcpy(big, real, real_len);
  struct aln_refusal why = {0};
  struct aln_nitro_policy p = real_policy(1);
  struct aln_verify_ctx ctx = real_ctx(REAL_AT);
  assert_int_equal(aln_nitro_verify(NULL, &why, big, ALN_NITRO_DOC_MAX + 1, &p, &ctx), ALN_ERR_ATTEST_MALFORMED);
  assert_non_null(strstr(why.why, "cap"));
  free(big);
}

/* Any other root, however valid, does not anchor the real chain. */
static void test_real_document_swapped_root(void **state) {
  (void)state;
  struct aln_nitro_policy p = real_policy(1);
  struct aln_verify_ctx ctx = real_ctx(REAL_AT);
  struct aln_refusal why = {0};
  p.root_der = root.der; /* a self-signed P-384 root made here */
  p.root_der_len = root.der_len;
  assert_int_equal(aln_nitro_verify(NULL, &why, real, real_len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);
  assert_non_null(strstr(why.why, "pinned root"));
}

static void test_real_document_pcr_policy(void **state) {
  (void)state;
  struct aln_nitro_policy p = real_policy(1);
  struct aln_verify_ctx ctx = real_ctx(REAL_AT);
  struct aln_refusal why = {0};
  uint8_t wrong[48];
  memcpy(wrong, real_pcr3, 48);
  wrong[47] ^= 1;
  /* PCR3 wrong */
  struct aln_nitro_pcr rules[3] = {{3, wrong, 48}, {4, real_pcr4, 48}};
  p.pcrs = rules;
  p.num_pcrs = 2;
  assert_int_equal(aln_nitro_verify(NULL, &why, real, real_len, &p, &ctx), ALN_ERR_ATTEST_POLICY);
  assert_non_null(strstr(why.why, "PCR3"));
  /* an alternative for PCR3 that is right: accepted */
  rules[2] = (struct aln_nitro_pcr){3, real_pcr3, 48};
  p.num_pcrs = 3;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_OK);
  /* the right bytes at the wrong length */
  rules[0] = (struct aln_nitro_pcr){3, real_pcr3, 32};
  p.num_pcrs = 2;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_ATTEST_POLICY);
  /* an index the document does not have */
  rules[0] = (struct aln_nitro_pcr){20, real_pcr3, 48};
  assert_int_equal(aln_nitro_verify(NULL, &why, real, real_len, &p, &ctx), ALN_ERR_ATTEST_POLICY);
  assert_non_null(strstr(why.why, "PCR20"));
}

/* --- documents made here: positive --------------------------------------------------- */

static void test_made_document_verifies(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  struct aln_nitro_policy p = test_policy();
  struct aln_verify_ctx ctx = test_ctx();
  struct aln_claims c;
  good_payload(&payload, 0);
  sign_payload(&doc, &payload);
  assert_int_equal(aln_nitro_verify(&c, NULL, doc.b, doc.len, &p, &ctx), ALN_OK);
  assert_int_equal(c.debug, 0);
  assert_int_equal(c.nonce_checked, 1);
  char want[97];
  for (size_t i = 0; i < 48; i++)
    memcpy(want + 2 * i, "10", 2);
  want[96] = '\0';
  assert_string_equal(c.measurement, want);
  assert_true(c.issued_at == T0);
  assert_true(c.expires_at == T0 + 3600);
  assert_true(json_is_true(json_object_get(c.detail, "has_user_data")));
  assert_true(json_is_false(json_object_get(c.detail, "has_public_key")));
  aln_claims_cleanup(&c);
  /* the made documents are refused under the pinned AWS root */
  p.root_der = NULL;
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);
}

/* A production policy refuses a made debug document; allowing debug accepts it
 * (its PCR0 rule then has to go: zeros are not the production value). */
static void test_made_debug_document(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  struct aln_nitro_policy p = test_policy();
  struct aln_verify_ctx ctx = test_ctx();
  good_payload(&payload, 1);
  sign_payload(&doc, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_DEBUG);
  p.allow_debug = 1;
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_POLICY);
  p.pcrs = &test_rules[1];
  p.num_pcrs = 1;
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_OK);
}

static void test_made_user_data_binding(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  struct aln_nitro_policy p = test_policy();
  struct aln_verify_ctx ctx = test_ctx();
  /* the binding in user_data; no nonce field at all */
  put_head(&payload, 5, 8);
  f_module_id(&payload);
  f_digest(&payload);
  f_timestamp(&payload, (uint64_t)T0 * 1000);
  f_pcrs(&payload, 0);
  f_certificate(&payload, &leaf);
  const struct cert *bundle[] = {&root, &inter};
  f_cabundle(&payload, bundle, 2);
  f_null(&payload, "public_key");
  f_bytes(&payload, "user_data", test_nonce, sizeof(test_nonce));
  sign_payload(&doc, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_BINDING);
  p.binding = ALN_NITRO_BIND_USER_DATA;
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_OK);
}

/* --- documents made here: the envelope ------------------------------------------------ */

static void test_alg_not_es384(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  static const uint8_t algs[][4] = {
      {0xa1, 0x01, 0x26},       /* -7 ES256 */
      {0xa1, 0x01, 0x38, 0x23}, /* -36 ES512 */
      {0xa1, 0x01, 0x27},       /* -8 EdDSA */
      {0xa1, 0x01, 0x38, 0x24}, /* -37 PS256 */
  };
  static const size_t alg_len[] = {3, 4, 3, 4};
  good_payload(&payload, 0);
  for (size_t i = 0; i < 4; i++) {
    sign_doc(&doc, leaf.key, 0, algs[i], alg_len[i], (const uint8_t *)"\xa0", 1, &payload);
    assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
  }
  /* the same payload under the right header is fine */
  sign_doc(&doc, leaf.key, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, &payload);
  assert_int_equal(verify_buf(&doc), ALN_OK);
}

static void test_unknown_critical_header(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  struct aln_nitro_policy p = test_policy();
  struct aln_verify_ctx ctx = test_ctx();
  struct aln_refusal why = {0};
  static const uint8_t crit[] = {0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x19, 0x01, 0x00}; /* {1: -35, 2: [256]} */
  good_payload(&payload, 0);
  sign_doc(&doc, leaf.key, 0, crit, sizeof(crit), (const uint8_t *)"\xa0", 1, &payload);
  assert_int_equal(aln_nitro_verify(NULL, &why, doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_MALFORMED);
  assert_non_null(strstr(why.why, "crit"));
  /* an unprotected header the signature does not cover */
  sign_doc(&doc, leaf.key, 0, prot_es384, 4, (const uint8_t *)"\xa1\x04\x41\x01", 4, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
}

static void test_signature_by_another_key(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  good_payload(&payload, 0);
  /* the intermediate's key is in the chain, but it is not the certificate's */
  sign_doc(&doc, inter.key, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_SIG);
  EVP_PKEY *other = ec_key("P-384");
  sign_doc(&doc, other, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_SIG);
  EVP_PKEY_free(other);
  /* R and S swapped; R and S zero */
  sign_payload(&doc, &payload);
  uint8_t r[48];
  memcpy(r, doc.b + doc.len - 96, 48);
  memmove(doc.b + doc.len - 96, doc.b + doc.len - 48, 48);
  memcpy(doc.b + doc.len - 48, r, 48);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_SIG);
  memset(doc.b + doc.len - 96, 0, 96);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_SIG);
}

/* --- documents made here: the payload --------------------------------------------- */

static void test_duplicate_map_keys(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  /* nonce twice: the first the right one, the second another */
  uint8_t other[32];
  memset(other, 0x55, sizeof(other));
  good_payload(&payload, 0);
  payload.b[0] = 0xaa; /* map of ten */
  f_bytes(&payload, "nonce", other, sizeof(other));
  sign_payload(&doc, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
  /* module_id twice */
  payload.len = 0;
  good_payload(&payload, 0);
  payload.b[0] = 0xaa;
  f_module_id(&payload);
  sign_payload(&doc, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
  /* PCR3 twice inside pcrs (the second a value the policy would like) */
  payload.len = 0;
  put_head(&payload, 5, 9);
  f_module_id(&payload);
  f_digest(&payload);
  f_timestamp(&payload, (uint64_t)T0 * 1000);
  put_tstr(&payload, "pcrs");
  put_head(&payload, 5, 2);
  uint8_t v[48];
  pcr_value(v, 0, 0);
  put_head(&payload, 0, 0);
  put_bstr(&payload, v, 48);
  put(&payload, "\x18\x00", 2); /* 0 again, in a longer encoding */
  put_bstr(&payload, v, 48);
  f_certificate(&payload, &leaf);
  const struct cert *bundle[] = {&root, &inter};
  f_cabundle(&payload, bundle, 2);
  f_null(&payload, "public_key");
  f_null(&payload, "user_data");
  f_bytes(&payload, "nonce", test_nonce, sizeof(test_nonce));
  sign_payload(&doc, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
}

static void test_indefinite_lengths(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  /* the payload map */
  good_payload(&payload, 0);
  payload.b[0] = 0xbf;
  put_u8(&payload, 0xff);
  sign_payload(&doc, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
  /* cabundle as an indefinite array, certificate as an indefinite bstr */
  const struct cert *bundle[] = {&root, &inter};
  for (int which = 0; which < 2; which++) {
    payload.len = 0;
    put_head(&payload, 5, 9);
    f_module_id(&payload);
    f_digest(&payload);
    f_timestamp(&payload, (uint64_t)T0 * 1000);
    f_pcrs(&payload, 0);
    if (which == 0) {
      f_certificate(&payload, &leaf);
      put_tstr(&payload, "cabundle");
      put_u8(&payload, 0x9f);
      put_bstr(&payload, root.der, root.der_len);
      put_bstr(&payload, inter.der, inter.der_len);
      put_u8(&payload, 0xff);
    } else {
      put_tstr(&payload, "certificate");
      put_u8(&payload, 0x5f);
      put_bstr(&payload, leaf.der, 100);
      put_bstr(&payload, leaf.der + 100, leaf.der_len - 100);
      put_u8(&payload, 0xff);
      f_cabundle(&payload, bundle, 2);
    }
    f_null(&payload, "public_key");
    f_null(&payload, "user_data");
    f_bytes(&payload, "nonce", test_nonce, sizeof(test_nonce));
    sign_payload(&doc, &payload);
    assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
  }
  /* the envelope array */
  payload.len = 0;
  good_payload(&payload, 0);
  sign_payload(&doc, &payload);
  doc.b[0] = 0x9f;
  put_u8(&doc, 0xff);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
}

/* Each required field left out, and each field with a wrong type or size. */
static void test_fields_and_types(void **state) {
  (void)state;
  struct buf payload, doc;
  const struct cert *bundle[] = {&root, &inter};
  uint8_t v47[47] = {0}, big[1025] = {0};
  for (int variant = 0; variant < 17; variant++) {
    payload.len = 0;
    put_head(&payload, 5, variant < 6 ? 8 : variant == 16 ? 10 : 9);
    if (variant != 0) {
      if (variant == 6) {
        put_tstr(&payload, "module_id");
        put_tstr(&payload, "bad id"); /* a space */
      } else {
        f_module_id(&payload);
      }
    }
    if (variant != 1) {
      put_tstr(&payload, "digest");
      put_tstr(&payload, variant == 7 ? "SHA256" : "SHA384");
    }
    if (variant != 2) {
      if (variant == 8) {
        put_tstr(&payload, "timestamp");
        put_u8(&payload, 0x00);
      } else if (variant == 9) {
        put_tstr(&payload, "timestamp");
        put(&payload, "\x3a\x00\x01\x00\x00", 5); /* negative */
      } else {
        f_timestamp(&payload, (uint64_t)T0 * 1000);
      }
    }
    if (variant != 3) {
      if (variant == 10) {
        put_tstr(&payload, "pcrs");
        put_head(&payload, 5, 1);
        put_head(&payload, 0, 0);
        put_bstr(&payload, v47, sizeof(v47));
      } else if (variant == 11) {
        put_tstr(&payload, "pcrs");
        put_head(&payload, 5, 1);
        put_head(&payload, 0, 32); /* index out of range */
        put_bstr(&payload, v47, 32);
      } else if (variant == 12) {
        put_tstr(&payload, "pcrs");
        put_head(&payload, 5, 1);
        put_head(&payload, 0, 3); /* no PCR0 */
        put_bstr(&payload, v47, 32);
      } else {
        f_pcrs(&payload, 0);
      }
    }
    if (variant != 4) {
      if (variant == 13)
        f_bytes(&payload, "certificate", big, sizeof(big));
      else
        f_certificate(&payload, &leaf);
    }
    if (variant != 5) {
      if (variant == 14) {
        put_tstr(&payload, "cabundle");
        put_u8(&payload, 0x80);
      } else {
        f_cabundle(&payload, bundle, 2);
      }
    }
    if (variant == 15) {
      put_tstr(&payload, "public_key");
      put_u8(&payload, 0x01);
    } else {
      f_null(&payload, "public_key");
    }
    f_null(&payload, "user_data");
    f_bytes(&payload, "nonce", test_nonce, sizeof(test_nonce));
    if (variant == 16)
      f_null(&payload, "extra");
    sign_payload(&doc, &payload);
    if (verify_buf(&doc) != ALN_ERR_ATTEST_MALFORMED)
      fail_msg("variant %d was not refused as malformed", variant);
  }
  /* optional fields that are neither a byte string nor null; the floats once
   * aborted the process inside libcbor (found by tests/fuzz/nitro_doc_fuzz.c) */
  static const char *const not_bstr[] = {
      "\xf9\x3c\x00", "\xfa\x3f\x80\x00\x00", "\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", "\xf5", "\xf7", "\x60"};
  static const size_t not_bstr_len[] = {3, 5, 9, 1, 1, 1};
  static const char *const optional[] = {"public_key", "user_data", "nonce"};
  for (size_t f = 0; f < 3; f++) {
    for (size_t i = 0; i < sizeof(not_bstr_len) / sizeof(not_bstr_len[0]); i++) {
      payload.len = 0;
      put_head(&payload, 5, 9);
      f_module_id(&payload);
      f_digest(&payload);
      f_timestamp(&payload, (uint64_t)T0 * 1000);
      f_pcrs(&payload, 0);
      f_certificate(&payload, &leaf);
      f_cabundle(&payload, bundle, 2);
      for (size_t g = 0; g < 3; g++) {
        if (g == f) {
          put_tstr(&payload, optional[g]);
          put(&payload, not_bstr[i], not_bstr_len[i]);
        } else {
          f_null(&payload, optional[g]);
        }
      }
      sign_payload(&doc, &payload);
      assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
    }
  }
  /* the payload not a map */
  payload.len = 0;
  put(&payload, "\x81\x00", 2);
  sign_payload(&doc, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
  /* user_data and nonce over 512 bytes */
  uint8_t long_nonce[513] = {0};
  payload.len = 0;
  good_payload(&payload, 0);
  payload.len -= 6 + 2 + 32; /* drop the nonce field: "nonce", then bstr(32) */
  f_bytes(&payload, "nonce", long_nonce, sizeof(long_nonce));
  sign_payload(&doc, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_MALFORMED);
  /* and the same field, in range, is fine */
  payload.len -= 3 + sizeof(long_nonce);
  put_bstr(&payload, long_nonce, 512);
  sign_payload(&doc, &payload);
  assert_int_equal(verify_buf(&doc), ALN_ERR_ATTEST_BINDING);
}

/* --- documents made here: the chain ---------------------------------------------- */

static void test_chain_defects(void **state) {
  (void)state;
  struct buf payload, doc;
  struct aln_nitro_policy p = test_policy();
  struct aln_verify_ctx ctx = test_ctx();
  struct aln_refusal why = {0};
  struct cert other_root = {0}, forged = {0}, sha256_inter = {0}, p256_leaf = {0}, old_inter = {0}, leaf_of_old = {0};

  /* out of order: [inter, root] */
  const struct cert *reversed[] = {&inter, &root};
  payload.len = 0;
  payload_with(&payload, 0, &leaf, reversed, 2);
  sign_payload(&doc, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);
  /* the intermediate missing */
  const struct cert *root_only[] = {&root};
  payload.len = 0;
  payload_with(&payload, 0, &leaf, root_only, 1);
  sign_payload(&doc, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);
  /* an entry the chain does not use */
  other_root.key = ec_key("P-384");
  make_cert(&other_root, "unrelated", NULL, 1, T0 - 86400, T0 + 86400, EVP_sha384());
  const struct cert *extra[] = {&root, &other_root, &inter};
  payload.len = 0;
  payload_with(&payload, 0, &leaf, extra, 3);
  sign_payload(&doc, &payload);
  assert_int_equal(aln_nitro_verify(NULL, &why, doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);
  /* the intermediate twice */
  const struct cert *twice[] = {&root, &inter, &inter};
  payload.len = 0;
  payload_with(&payload, 0, &leaf, twice, 3);
  sign_payload(&doc, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);

  /* a forged intermediate naming the root as issuer, signed by another key */
  forged.key = ec_key("P-384");
  struct cert fake_root = {.key = other_root.key, .x = root.x};
  make_cert(&forged, "test nitro intermediate", &fake_root, 1, T0 - 86400, T0 + 86400, EVP_sha384());
  const struct cert *with_forged[] = {&root, &forged};
  payload.len = 0;
  payload_with(&payload, 0, &leaf, with_forged, 2);
  sign_payload(&doc, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);

  /* a link signed with SHA-256 */
  sha256_inter.key = inter.key;
  make_cert(&sha256_inter, "test nitro intermediate", &root, 1, T0 - 86400, T0 + 86400, EVP_sha256());
  const struct cert *weak[] = {&root, &sha256_inter};
  payload.len = 0;
  payload_with(&payload, 0, &leaf, weak, 2);
  sign_payload(&doc, &payload);
  assert_int_equal(aln_nitro_verify(NULL, &why, doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);
  assert_non_null(strstr(why.why, "SHA384"));
  sha256_inter.key = NULL; /* inter's */

  /* a certificate whose key is P-256 */
  p256_leaf.key = ec_key("P-256");
  make_cert(&p256_leaf, "p256 enclave", &inter, 0, T0 - 3600, T0 + 3600, EVP_sha384());
  const struct cert *bundle[] = {&root, &inter};
  payload.len = 0;
  payload_with(&payload, 0, &p256_leaf, bundle, 2);
  sign_payload(&doc, &payload);
  assert_int_equal(aln_nitro_verify(NULL, &why, doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);
  assert_non_null(strstr(why.why, "P-384"));

  /* an intermediate that has expired while the leaf has not */
  old_inter.key = ec_key("P-384");
  leaf_of_old.key = ec_key("P-384");
  make_cert(&old_inter, "old intermediate", &root, 1, T0 - 86400, T0 - 1, EVP_sha384());
  make_cert(&leaf_of_old, "enclave", &old_inter, 0, T0 - 3600, T0 + 3600, EVP_sha384());
  const struct cert *expired[] = {&root, &old_inter};
  payload.len = 0;
  payload_with(&payload, 0, &leaf_of_old, expired, 2);
  sign_doc(&doc, leaf_of_old.key, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_EXPIRED);

  /* a certificate bstr with a byte after the DER */
  struct cert padded = leaf;
  padded.der[padded.der_len++] = 0x00;
  payload.len = 0;
  payload_with(&payload, 0, &padded, bundle, 2);
  sign_payload(&doc, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_MALFORMED);

  cert_free(&other_root);
  cert_free(&forged);
  X509_free(sha256_inter.x);
  cert_free(&p256_leaf);
  cert_free(&old_inter);
  cert_free(&leaf_of_old);
}

/* Every entry is on the path, but not in the order AWS sends (root first, each
 * signing the next): OpenSSL would build the path anyway; the verifier refuses. */
static void test_chain_out_of_order(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  struct aln_nitro_policy p = test_policy();
  struct aln_verify_ctx ctx = test_ctx();
  struct aln_refusal why = {0};
  struct cert a = {0}, b = {0}, l = {0};
  a.key = ec_key("P-384");
  b.key = ec_key("P-384");
  l.key = ec_key("P-384");
  make_cert(&a, "intermediate a", &root, 1, T0 - 86400, T0 + 86400, EVP_sha384());
  make_cert(&b, "intermediate b", &a, 1, T0 - 86400, T0 + 86400, EVP_sha384());
  make_cert(&l, "enclave", &b, 0, T0 - 3600, T0 + 3600, EVP_sha384());
  const struct cert *in_order[] = {&root, &a, &b}, *swapped[] = {&root, &b, &a};
  payload_with(&payload, 0, &l, in_order, 3);
  sign_doc(&doc, l.key, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_OK);
  payload.len = 0;
  payload_with(&payload, 0, &l, swapped, 3);
  sign_doc(&doc, l.key, 0, prot_es384, 4, (const uint8_t *)"\xa0", 1, &payload);
  assert_int_equal(aln_nitro_verify(NULL, &why, doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_CHAIN);
  assert_non_null(strstr(why.why, "order"));
  cert_free(&a);
  cert_free(&b);
  cert_free(&l);
}

static void test_timestamp_in_future(void **state) {
  (void)state;
  struct buf payload = {.len = 0}, doc;
  struct aln_nitro_policy p = test_policy();
  struct aln_verify_ctx ctx = test_ctx();
  put_head(&payload, 5, 9);
  f_module_id(&payload);
  f_digest(&payload);
  f_timestamp(&payload, (uint64_t)(NOW + 60) * 1000);
  f_pcrs(&payload, 0);
  f_certificate(&payload, &leaf);
  const struct cert *bundle[] = {&root, &inter};
  f_cabundle(&payload, bundle, 2);
  f_null(&payload, "public_key");
  f_null(&payload, "user_data");
  f_bytes(&payload, "nonce", test_nonce, sizeof(test_nonce));
  sign_payload(&doc, &payload);
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_ERR_ATTEST_EXPIRED);
  ctx.max_skew_s = 60;
  assert_int_equal(verify(doc.b, doc.len, &p, &ctx), ALN_OK);
}

/* --- arguments and policy ----------------------------------------------------------- */

static void test_bad_arguments(void **state) {
  (void)state;
  struct aln_nitro_policy p = real_policy(1);
  struct aln_verify_ctx ctx = real_ctx(REAL_AT);
  assert_int_equal(verify(NULL, real_len, &p, &ctx), ALN_ERR_USAGE);
  assert_int_equal(verify(real, real_len, NULL, &ctx), ALN_ERR_USAGE);
  assert_int_equal(verify(real, real_len, &p, NULL), ALN_ERR_USAGE);
  ctx.nonce_len = 0;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_USAGE);
  ctx = real_ctx(REAL_AT);
  ctx.max_skew_s = -1;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_USAGE);
  ctx = real_ctx(REAL_AT);
  /* a policy that names no PCR would accept any enclave */
  p.num_pcrs = 0;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_USAGE);
  struct aln_nitro_pcr bad[] = {{32, real_pcr3, 48}, {3, real_pcr3, 47}, {3, NULL, 48}};
  for (size_t i = 0; i < 3; i++) {
    p.pcrs = &bad[i];
    p.num_pcrs = 1;
    assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_USAGE);
  }
  p = real_policy(1);
  p.binding = (enum aln_nitro_binding)7;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_USAGE);
  p = real_policy(1);
  p.root_der = root.der;
  p.root_der_len = 0;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_USAGE);
  /* a root that is not a certificate */
  p.root_der = (const uint8_t *)"garbage";
  p.root_der_len = 7;
  assert_int_equal(verify(real, real_len, &p, &ctx), ALN_ERR_USAGE);
}

/* --- driver for the interop test --------------------------------------------------- */

static int driver_usage(void) {
  fprintf(stderr, "usage: nitro_test --verify DOC --at UNIX [--root ROOT.der] [--nonce HEX] [--bind user_data]\n"
                  "                  [--allow-debug] [--skew S] --pcr INDEX=HEX ...\n");
  return 64;
}

static int hex_arg(uint8_t *out, size_t cap, size_t *len, const char *hex) {
  size_t n = strlen(hex);
  if (n % 2 != 0 || n / 2 > cap)
    return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1)
      return -1;
    out[i] = (uint8_t)v;
  }
  *len = n / 2;
  return 0;
}

/* driver_main verifies one document and prints the claims as JSON (exit 0) or the
 * refusal as {"status", "why"} (exit 2). */
static int driver_main(int argc, char **argv) {
  static uint8_t pcr_vals[64][64], nonce[1024];
  struct aln_nitro_pcr rules[64];
  struct aln_nitro_policy policy = {.pcrs = rules};
  struct aln_verify_ctx ctx = {0};
  const char *doc_path = NULL, *root_path = NULL;
  size_t n;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--allow-debug") == 0) {
      policy.allow_debug = 1;
      continue;
    }
    if (v == NULL)
      return driver_usage();
    i++;
    if (strcmp(a, "--verify") == 0) {
      doc_path = v;
    } else if (strcmp(a, "--root") == 0) {
      root_path = v;
    } else if (strcmp(a, "--at") == 0) {
      ctx.now = strtoll(v, NULL, 10);
    } else if (strcmp(a, "--skew") == 0) {
      ctx.max_skew_s = strtoll(v, NULL, 10);
    } else if (strcmp(a, "--nonce") == 0) {
      if (hex_arg(nonce, sizeof(nonce), &ctx.nonce_len, v) != 0)
        return driver_usage();
      ctx.nonce = nonce;
    } else if (strcmp(a, "--bind") == 0) {
      if (strcmp(v, "user_data") != 0)
        return driver_usage();
      policy.binding = ALN_NITRO_BIND_USER_DATA;
    } else if (strcmp(a, "--pcr") == 0) {
      const char *eq = strchr(v, '=');
      if (eq == NULL || policy.num_pcrs == 64)
        return driver_usage();
      struct aln_nitro_pcr *r = &rules[policy.num_pcrs];
      r->index = (unsigned)strtoul(v, NULL, 10);
      if (hex_arg(pcr_vals[policy.num_pcrs], 64, &n, eq + 1) != 0)
        return driver_usage();
      r->value = pcr_vals[policy.num_pcrs];
      r->value_len = n;
      policy.num_pcrs++;
    } else {
      return driver_usage();
    }
  }
  if (doc_path == NULL)
    return driver_usage();
  size_t doc_len = 0, root_len = 0;
  uint8_t *doc = read_file(doc_path, &doc_len), *root_der = NULL;
  if (doc == NULL)
    return driver_usage();
  if (root_path != NULL) {
    root_der = read_file(root_path, &root_len);
    if (root_der == NULL)
      return driver_usage();
    policy.root_der = root_der;
    policy.root_der_len = root_len;
  }
  struct aln_claims c = {0};
  struct aln_refusal why = {0};
  aln_status st = aln_nitro_verify(&c, &why, doc, doc_len, &policy, &ctx);
  json_t *j =
      st == ALN_OK ? aln_claims_to_json(&c) : json_pack("{s:s, s:s}", "status", aln_status_name(st), "why", why.why);
  char *s = j != NULL ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
  if (s != NULL)
    printf("%s\n", s);
  free(s);
  json_decref(j);
  aln_claims_cleanup(&c);
  free(doc);
  free(root_der);
  return st == ALN_OK ? 0 : 2;
}

int main(int argc, char **argv) {
  if (argc > 1)
    return driver_main(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pinned_root),
      cmocka_unit_test(test_real_document_claims),
      cmocka_unit_test(test_real_document_debug_refused),
      cmocka_unit_test(test_real_document_tagged),
      cmocka_unit_test(test_real_document_validity_window),
      cmocka_unit_test(test_real_document_wrong_nonce),
      cmocka_unit_test(test_real_document_flipped_signed_bytes),
      cmocka_unit_test(test_real_document_truncated_and_padded),
      cmocka_unit_test(test_real_document_swapped_root),
      cmocka_unit_test(test_real_document_pcr_policy),
      cmocka_unit_test(test_made_document_verifies),
      cmocka_unit_test(test_made_debug_document),
      cmocka_unit_test(test_made_user_data_binding),
      cmocka_unit_test(test_alg_not_es384),
      cmocka_unit_test(test_unknown_critical_header),
      cmocka_unit_test(test_signature_by_another_key),
      cmocka_unit_test(test_duplicate_map_keys),
      cmocka_unit_test(test_indefinite_lengths),
      cmocka_unit_test(test_fields_and_types),
      cmocka_unit_test(test_chain_defects),
      cmocka_unit_test(test_chain_out_of_order),
      cmocka_unit_test(test_timestamp_in_future),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
