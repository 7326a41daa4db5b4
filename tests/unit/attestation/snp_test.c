/* Tests for the "sev-snp" verifier. Two sources of evidence:
 *  - the real Milan report and VCEK from google/go-sev-guest (tests/data/attestation/
 *    sev-snp/, provenance in its README), verified against the pinned AMD roots:
 *    accepted at its time with exactly the expected claims, refused one second
 *    outside the VCEK's validity, with any signed byte flipped, truncated, padded,
 *    under a swapped root, with a wrong nonce or measurement, and (it is a debug
 *    guest) under a production policy;
 *  - reports made here, by OpenSSL's C API independently of the verifier: a test
 *    ARK and ASK (RSA, RSASSA-PSS SHA-384 as AMD signs) and a test VCEK or VLEK
 *    (P-384) carrying AMD's KDS extensions, which re-signs reports whose policy
 *    bits, TCB, VMPL, chip or product the test chooses. Those reach the checks a
 *    flipped byte of a real report never could, as the signature breaks first.
 * Data files are found from this file's path (__FILE__), or ALN_TEST_DATA_DIR. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "attestation/snp.h"
#include "attestation/snp_roots.h"

/* The sample's VCEK is valid 2022-09-24T00:55:28Z .. 2029-09-24T00:55:28Z. */
#define VCEK_NOT_BEFORE 1663980928
#define VCEK_NOT_AFTER 1884905728
#define SAMPLE_NOW 1717200000 /* 2024-06-01 */

/* Certificates made here are valid 2020-01-01 .. 2040-01-01; judged at 2025-01-01. */
#define SYN_NOT_BEFORE 1577836800
#define SYN_NOT_AFTER 2208988800
#define SYN_NOW 1735689600

#define OFF_VERSION 0x000
#define OFF_POLICY 0x008
#define OFF_VMPL 0x030
#define OFF_SIG_ALGO 0x034
#define OFF_SIGNER 0x048
#define OFF_REPORT_DATA 0x050
#define OFF_MEASUREMENT 0x090
#define OFF_REPORTED_TCB 0x180
#define OFF_CPUID 0x188
#define OFF_CHIP_ID 0x1a0
#define OFF_SIG 0x2a0

static const char sample_measurement_hex[] =
    "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01";
static const uint8_t sample_nonce[] = {1, 2, 3, 4, 5};

static char data_dir[4096];
static uint8_t sample[ALN_SNP_REPORT_LEN];
static uint8_t vcek_der[4096];
static size_t vcek_der_len;
static char *milan_pem, *genoa_pem;
static uint8_t sample_measurement[ALN_SNP_MEASUREMENT_LEN];
static char certs_dir[64];

/* --- files --------------------------------------------------------------------------- */

static void locate_data(void) {
  const char *env = getenv("ALN_TEST_DATA_DIR");
  if (env != NULL) {
    snprintf(data_dir, sizeof(data_dir), "%s/attestation/sev-snp", env);
    return;
  }
  /* __FILE__ is .../tests/unit/attestation/snp_test.c: data is .../tests/data. */
  const char *file = __FILE__;
  const char *cut = strstr(file, "/unit/attestation/snp_test.c");
  assert_non_null(cut);
  snprintf(data_dir, sizeof(data_dir), "%.*s/data/attestation/sev-snp", (int)(cut - file), file);
}

static size_t read_data(const char *name, void *buf, size_t cap) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/%s", data_dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open %s", path);
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  assert_true(n < cap || cap == ALN_SNP_REPORT_LEN);
  return n;
}

static char *read_text(const char *name) {
  char *buf = calloc(1, 16384);
  assert_non_null(buf);
  (void)read_data(name, buf, 16383);
  return buf;
}

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static void remove_file(const char *dir, const char *name) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  (void)unlink(path);
}

static void hex_decode(uint8_t *out, const char *hex, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

/* --- evidence containers -------------------------------------------------------------- */

static const uint8_t guid_vcek[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                      0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
static const uint8_t guid_vlek[16] = {0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
                                      0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1};
static const uint8_t guid_ask[16] = {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
                                     0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82};
static const uint8_t guid_ark[16] = {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
                                     0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae};

struct cert_entry {
  const uint8_t *guid;
  const uint8_t *der;
  size_t len;
};

struct evidence {
  uint8_t b[ALN_SNP_EVIDENCE_MAX + 64];
  size_t len;
};

static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* container writes report || GHCB certificate table (entries, zero entry, certs). */
static void container(struct evidence *ev, const uint8_t *report, const struct cert_entry *certs, size_t num) {
  memset(ev, 0, sizeof(*ev));
  memcpy(ev->b, report, ALN_SNP_REPORT_LEN);
  uint8_t *t = ev->b + ALN_SNP_REPORT_LEN;
  size_t off = 24 * (num + 1);
  for (size_t i = 0; i < num; i++) {
    assert_true(ALN_SNP_REPORT_LEN + off + certs[i].len <= sizeof(ev->b));
    memcpy(t + 24 * i, certs[i].guid, 16);
    put_le32(t + 24 * i + 16, (uint32_t)off);
    put_le32(t + 24 * i + 20, (uint32_t)certs[i].len);
    memcpy(t + off, certs[i].der, certs[i].len);
    off += certs[i].len;
  }
  ev->len = ALN_SNP_REPORT_LEN + off;
}

/* pem_der returns the DER of certificate |index| of |pem| (caller frees). */
static uint8_t *pem_der(const char *pem, int index, size_t *len) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  X509 *x = NULL;
  for (int i = 0; i <= index; i++) {
    X509_free(x);
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(x);
  }
  uint8_t *der = NULL;
  int n = i2d_X509(x, &der);
  assert_true(n > 0);
  *len = (size_t)n;
  X509_free(x);
  BIO_free(bio);
  return der;
}

/* --- verification helpers ------------------------------------------------------------- */

static struct aln_snp_policy sample_policy(void) {
  struct aln_snp_policy p;
  memset(&p, 0, sizeof(p));
  p.product = ALN_SNP_PRODUCT_MILAN;
  p.measurements = (const uint8_t(*)[ALN_SNP_MEASUREMENT_LEN])sample_measurement;
  p.num_measurements = 1;
  p.allow_debug = 1; /* the sample is a debug guest (policy 0xb0000) */
  return p;
}

static struct aln_verify_ctx sample_ctx(int64_t now) {
  struct aln_verify_ctx c = {.nonce = sample_nonce, .nonce_len = sizeof(sample_nonce), .now = now};
  c.certs_dir = certs_dir;
  return c;
}

/* verify runs the verifier and checks the refusal contract: a status other than
 * OK comes with the same status and a reason in |why|, and |out| stays zeroed. */
static aln_status verify(struct aln_claims *out, const uint8_t *ev, size_t len, const struct aln_snp_policy *p,
                         const struct aln_verify_ctx *c, char *reason, size_t reason_len) {
  struct aln_refusal why;
  memset(&why, 0, sizeof(why));
  memset(out, 0, sizeof(*out));
  aln_status st = aln_snp_verify(out, &why, ev, len, p, c);
  if (st != ALN_OK) {
    assert_int_equal(why.status, st);
    assert_true(why.why[0] != '\0');
    assert_null(out->detail);
    assert_int_equal(out->kind[0], 0);
  }
  if (reason != NULL)
    snprintf(reason, reason_len, "%s", why.why);
  return st;
}

static aln_status verify_status(const uint8_t *ev, size_t len, const struct aln_snp_policy *p,
                                const struct aln_verify_ctx *c) {
  struct aln_claims claims;
  aln_status st = verify(&claims, ev, len, p, c, NULL, 0);
  aln_claims_cleanup(&claims);
  return st;
}

static void assert_refused_with(aln_status st, const uint8_t *ev, size_t len, const struct aln_snp_policy *p,
                                const struct aln_verify_ctx *c, const char *reason_part) {
  struct aln_claims claims;
  char reason[ALN_REFUSAL_MAX];
  aln_status got = verify(&claims, ev, len, p, c, reason, sizeof(reason));
  if (got != st)
    fail_msg("status 0x%x (%s), wanted 0x%x", (unsigned)got, reason, (unsigned)st);
  if (reason_part != NULL && strstr(reason, reason_part) == NULL)
    fail_msg("reason \"%s\" does not mention \"%s\"", reason, reason_part);
}

/* --- fixtures -------------------------------------------------------------------------- */

static int group_setup(void **state) {
  (void)state;
  locate_data();
  assert_int_equal(read_data("gosevguest_milan_report.bin", sample, sizeof(sample)), ALN_SNP_REPORT_LEN);
  vcek_der_len = read_data("gosevguest_milan_vcek.der", vcek_der, sizeof(vcek_der));
  milan_pem = read_text("amd_milan_ask_ark.pem");
  genoa_pem = read_text("amd_genoa_ask_ark.pem");
  hex_decode(sample_measurement, sample_measurement_hex, sizeof(sample_measurement));
  snprintf(certs_dir, sizeof(certs_dir), "/tmp/aln-snp-test-XXXXXX");
  if (mkdtemp(certs_dir) == NULL)
    return -1;
  write_file(certs_dir, "vcek.der", vcek_der, vcek_der_len);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  remove_file(certs_dir, "vcek.der");
  remove_file(certs_dir, "ask.pem");
  remove_file(certs_dir, "ark.pem");
  rmdir(certs_dir);
  free(milan_pem);
  free(genoa_pem);
  return 0;
}

/* --- the parser -------------------------------------------------------------------------- */

static void test_parse_sample(void **state) {
  (void)state;
  struct aln_snp_report r;
  assert_int_equal(aln_snp_report_parse(&r, sample, sizeof(sample)), ALN_OK);
  assert_int_equal(r.version, 2);
  assert_int_equal(r.guest_svn, 0);
  assert_int_equal(r.policy, 0xb0000);
  assert_int_equal(r.vmpl, 0);
  assert_int_equal(r.signature_algo, 1);
  assert_int_equal(r.signing_key, ALN_SNP_KEY_VCEK);
  assert_int_equal(r.reported_tcb, 0x4405000000000002ull); /* microcode 68, SNP 5, TEE 0, boot loader 2 */
  assert_int_equal(r.current_tcb, r.reported_tcb);
  assert_memory_equal(r.measurement, sample_measurement, sizeof(r.measurement));
  assert_memory_equal(r.report_data, sample_nonce, sizeof(sample_nonce));
  assert_memory_equal(r.chip_id, sample + OFF_CHIP_ID, ALN_SNP_CHIP_ID_LEN);
  assert_int_equal(r.current_major, 1);
  assert_int_equal(r.current_minor, 0x31);
  assert_int_equal(r.current_build, 3);
  /* R and S come out big-endian: the report's first R byte is R's least significant. */
  assert_int_equal(r.sig_r[ALN_SNP_SIG_COMPONENT_LEN - 1], sample[OFF_SIG]);
  assert_int_equal(r.sig_s[ALN_SNP_SIG_COMPONENT_LEN - 1], sample[OFF_SIG + 72]);
  assert_int_equal(r.sig_r[0], sample[OFF_SIG + 47]);
}

static void test_parse_refuses_every_other_length(void **state) {
  (void)state;
  static uint8_t big[ALN_SNP_REPORT_LEN + 64];
  memcpy(big, sample, sizeof(sample));
  for (size_t len = 0; len <= sizeof(big); len++) {
    if (len == ALN_SNP_REPORT_LEN)
      continue;
    assert_int_equal(aln_snp_report_parse(NULL, big, len), ALN_ERR_ATTEST_MALFORMED);
  }
  assert_int_equal(aln_snp_report_parse(NULL, big, ALN_SNP_REPORT_LEN), ALN_OK);
  assert_int_equal(aln_snp_report_parse(NULL, NULL, ALN_SNP_REPORT_LEN), ALN_ERR_USAGE);
}

static void test_parse_versions(void **state) {
  (void)state;
  uint8_t r[ALN_SNP_REPORT_LEN];
  struct aln_snp_report out;
  static const uint32_t refused[] = {0, 1, 4, 5, 0x102, 0xffffffffu};
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    memcpy(r, sample, sizeof(r));
    put_le32(r + OFF_VERSION, refused[i]);
    assert_int_equal(aln_snp_report_parse(&out, r, sizeof(r)), ALN_ERR_ATTEST_MALFORMED);
  }
  /* Version 3 names the CPU in bytes 0x188..0x18a, which version 2 reserves. */
  memcpy(r, sample, sizeof(r));
  r[OFF_CPUID] = 0x19, r[OFF_CPUID + 1] = 0x01, r[OFF_CPUID + 2] = 0x01;
  assert_int_equal(aln_snp_report_parse(&out, r, sizeof(r)), ALN_ERR_ATTEST_MALFORMED);
  put_le32(r + OFF_VERSION, 3);
  assert_int_equal(aln_snp_report_parse(&out, r, sizeof(r)), ALN_OK);
  assert_int_equal(out.version, 3);
  assert_int_equal(out.cpuid_fam_id, 0x19);
  assert_int_equal(out.cpuid_mod_id, 0x01);
  assert_int_equal(out.cpuid_step, 0x01);
  /* ... but the rest of that reserved range stays reserved in version 3. */
  r[OFF_CPUID + 3] = 1;
  assert_int_equal(aln_snp_report_parse(&out, r, sizeof(r)), ALN_ERR_ATTEST_MALFORMED);
}

static void test_parse_reserved_fields(void **state) {
  (void)state;
  /* Every byte the ABI reserves (must be zero), one at a time. */
  static const struct {
    size_t from, to;
  } mbz[] = {
      {0x04c, 0x050}, {0x188, 0x1a0}, {0x1eb, 0x1ec}, {0x1ef, 0x1f0},
      {0x1f8, 0x2a0}, {0x2d0, 0x2e8}, {0x318, 0x330}, {0x330, 0x4a0},
  };
  uint8_t r[ALN_SNP_REPORT_LEN];
  for (size_t i = 0; i < sizeof(mbz) / sizeof(mbz[0]); i++) {
    for (size_t off = mbz[i].from; off < mbz[i].to; off++) {
      memcpy(r, sample, sizeof(r));
      assert_int_equal(r[off], 0);
      r[off] = 0x80;
      if (aln_snp_report_parse(NULL, r, sizeof(r)) != ALN_ERR_ATTEST_MALFORMED)
        fail_msg("non-zero reserved byte 0x%zx accepted", off);
    }
  }
  struct {
    size_t off;
    uint32_t v;
  } fields[] = {
      {OFF_SIG_ALGO, 0},
      {OFF_SIG_ALGO, 2}, /* not ECDSA P-384 SHA-384 */
      {OFF_SIGNER, 2 << 2},
      {OFF_SIGNER, 6 << 2},
      {OFF_SIGNER, 1 << 5},      /* reserved key kinds, bits */
      {OFF_VMPL, 4},             /* no such VMPL */
      {OFF_POLICY, 0x90000},     /* bit 17 (must be one) clear */
      {OFF_POLICY + 4, 1u << 2}, /* bit 34: reserved */
  };
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
    memcpy(r, sample, sizeof(r));
    put_le32(r + fields[i].off, fields[i].v);
    if (aln_snp_report_parse(NULL, r, sizeof(r)) != ALN_ERR_ATTEST_MALFORMED)
      fail_msg("field 0x%zx = 0x%x accepted", fields[i].off, fields[i].v);
  }
  /* The defined ones parse. */
  memcpy(r, sample, sizeof(r));
  put_le32(r + OFF_SIGNER, 7 << 2 | 3);
  put_le32(r + OFF_VMPL, 3);
  put_le64(r + OFF_POLICY, 0x3ff0000ull);
  struct aln_snp_report out;
  assert_int_equal(aln_snp_report_parse(&out, r, sizeof(r)), ALN_OK);
  assert_int_equal(out.signing_key, ALN_SNP_KEY_NONE);
  assert_int_equal(out.author_key_en, 1);
  assert_int_equal(out.mask_chip_key, 1);
  assert_int_equal(out.vmpl, 3);
}

static void test_pinned_roots_are_amds(void **state) {
  (void)state;
  /* The roots compiled in are the files AMD's KDS serves, byte for byte. */
  static const struct {
    enum aln_snp_product product;
    const char *file;
  } products[] = {
      {ALN_SNP_PRODUCT_MILAN, "amd_milan_ask_ark.pem"},
      {ALN_SNP_PRODUCT_GENOA, "amd_genoa_ask_ark.pem"},
      {ALN_SNP_PRODUCT_TURIN, "amd_turin_ask_ark.pem"},
  };
  for (size_t i = 0; i < 3; i++) {
    const struct aln_snp_root *root = aln_snp_root_get(products[i].product);
    assert_non_null(root);
    char *text = read_text(products[i].file);
    assert_string_equal(root->pem, text);
    free(text);
  }
  assert_null(aln_snp_root_get(ALN_SNP_PRODUCT_NONE));
}

/* Each thread verifies the sample (and a forgery of it) and counts right answers. */
static void *verify_thread(void *arg) {
  int *right = arg;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  uint8_t bad[ALN_SNP_REPORT_LEN];
  memcpy(bad, sample, sizeof(bad));
  bad[OFF_MEASUREMENT] ^= 1;
  for (int i = 0; i < 10; i++) {
    struct aln_claims claims;
    memset(&claims, 0, sizeof(claims));
    if (aln_snp_verify(&claims, NULL, sample, sizeof(sample), &p, &c) == ALN_OK &&
        strcmp(claims.measurement, sample_measurement_hex) == 0)
      (*right)++;
    aln_claims_cleanup(&claims);
    if (aln_snp_verify(&claims, NULL, bad, sizeof(bad), &p, &c) == ALN_ERR_ATTEST_SIG)
      (*right)++;
  }
  return NULL;
}

static void test_concurrent_verification(void **state) {
  (void)state;
  /* Runs before any other verification, so the threads race to parse the pinned
   * roots (once per process) and then share them. */
  pthread_t t[4];
  int right[4] = {0};
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, verify_thread, &right[i]), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(right[i], 20);
  }
}

/* --- the real sample ------------------------------------------------------------------- */

static void assert_sample_claims(const struct aln_claims *c) {
  char chip_hex[2 * ALN_SNP_CHIP_ID_LEN + 1], report_data_hex[129];
  for (size_t i = 0; i < ALN_SNP_CHIP_ID_LEN; i++)
    snprintf(chip_hex + 2 * i, 3, "%02x", sample[OFF_CHIP_ID + i]);
  memset(report_data_hex, '0', 128);
  report_data_hex[128] = '\0';
  memcpy(report_data_hex, "0102030405", 10);

  assert_string_equal(c->kind, "sev-snp");
  assert_string_equal(c->measurement, sample_measurement_hex);
  assert_int_equal(c->debug, 1);
  assert_int_equal(c->nonce_checked, 1);
  assert_int_equal(c->issued_at, 0);
  assert_int_equal(c->expires_at, VCEK_NOT_AFTER);
  json_t *d = c->detail;
  assert_non_null(d);
  assert_int_equal(json_object_size(d), 10);
  assert_int_equal(json_integer_value(json_object_get(d, "version")), 2);
  assert_string_equal(json_string_value(json_object_get(d, "product")), "Milan");
  assert_string_equal(json_string_value(json_object_get(d, "signing_key")), "vcek");
  assert_string_equal(json_string_value(json_object_get(d, "report_data")), report_data_hex);
  assert_string_equal(json_string_value(json_object_get(d, "policy")), "0xb0000");
  assert_true(json_is_integer(json_object_get(d, "vmpl")));
  assert_int_equal(json_integer_value(json_object_get(d, "vmpl")), 0);
  assert_int_equal(json_integer_value(json_object_get(d, "guest_svn")), 0);
  json_t *tcb = json_object_get(d, "reported_tcb");
  assert_int_equal(json_object_size(tcb), 4);
  assert_int_equal(json_integer_value(json_object_get(tcb, "bootloader")), 2);
  assert_int_equal(json_integer_value(json_object_get(tcb, "tee")), 0);
  assert_int_equal(json_integer_value(json_object_get(tcb, "snp")), 5);
  assert_int_equal(json_integer_value(json_object_get(tcb, "microcode")), 68);
  /* The README: chip_id equals the VCEK's hwID extension. */
  assert_string_equal(json_string_value(json_object_get(d, "chip_id")),
                      "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e5378618"
                      "4ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d");
  assert_string_equal(json_string_value(json_object_get(d, "chip_id")), chip_hex);
  assert_string_equal(json_string_value(json_object_get(d, "host_data")),
                      "0000000000000000000000000000000000000000000000000000000000000000");
}

static void test_sample_verifies_with_expected_claims(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  struct aln_claims claims;
  char reason[ALN_REFUSAL_MAX];
  aln_status st = verify(&claims, sample, sizeof(sample), &p, &c, reason, sizeof(reason));
  if (st != ALN_OK)
    fail_msg("refused: %s", reason);
  assert_sample_claims(&claims);
  json_t *j = aln_claims_to_json(&claims);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "sev-snp");
  json_decref(j);
  aln_claims_cleanup(&claims);

  /* Offline, without a nonce: accepted, and the claims say it was not checked. */
  c.nonce = NULL;
  c.nonce_len = 0;
  assert_int_equal(verify(&claims, sample, sizeof(sample), &p, &c, NULL, 0), ALN_OK);
  assert_int_equal(claims.nonce_checked, 0);
  aln_claims_cleanup(&claims);
}

static void test_sample_in_a_certificate_table(void **state) {
  (void)state;
  size_t ask_len, ark_len;
  uint8_t *ask = pem_der(milan_pem, 0, &ask_len), *ark = pem_der(milan_pem, 1, &ark_len);
  static struct evidence ev;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  c.certs_dir = NULL; /* the table carries the certificates */
  struct aln_claims claims;

  const struct cert_entry full[] = {
      {guid_vcek, vcek_der, vcek_der_len}, {guid_ask, ask, ask_len}, {guid_ark, ark, ark_len}};
  container(&ev, sample, full, 3);
  assert_int_equal(verify(&claims, ev.b, ev.len, &p, &c, NULL, 0), ALN_OK);
  assert_sample_claims(&claims);
  aln_claims_cleanup(&claims);

  /* The VCEK alone is enough (ASK and ARK are pinned); an unknown GUID is skipped;
   * the zero padding of the kernel's buffer after the certificates is ignored. */
  static const uint8_t other_guid[16] = {0xec, 0xae, 0x0c, 0x0f, 0x95, 0x02, 0x43, 0xb1,
                                         0xaf, 0xa2, 0x0a, 0xe2, 0xe0, 0xd5, 0x65, 0xb6};
  const struct cert_entry vcek_only[] = {{other_guid, ask, 8}, {guid_vcek, vcek_der, vcek_der_len}};
  container(&ev, sample, vcek_only, 2);
  ev.len += 4096 - (ev.len - ALN_SNP_REPORT_LEN);
  assert_int_equal(verify_status(ev.b, ev.len, &p, &c), ALN_OK);

  /* ... but without the VCEK it is refused, the certificate directory not consulted. */
  c.certs_dir = certs_dir;
  const struct cert_entry no_vcek[] = {{guid_ask, ask, ask_len}, {guid_ark, ark, ark_len}};
  container(&ev, sample, no_vcek, 2);
  assert_refused_with(ALN_ERR_ATTEST_CHAIN, ev.b, ev.len, &p, &c, "no VCEK");

  /* The VCEK twice. */
  const struct cert_entry twice[] = {{guid_vcek, vcek_der, vcek_der_len}, {guid_vcek, vcek_der, vcek_der_len}};
  container(&ev, sample, twice, 2);
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, ev.b, ev.len, &p, &c, "twice");

  /* An entry pointing into the entries, or past the end. */
  container(&ev, sample, full, 3);
  put_le32(ev.b + ALN_SNP_REPORT_LEN + 16, 24);
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, ev.b, ev.len, &p, &c, "out of bounds");
  container(&ev, sample, full, 3);
  put_le32(ev.b + ALN_SNP_REPORT_LEN + 20, (uint32_t)vcek_der_len + 0x10000);
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, ev.b, ev.len, &p, &c, "out of bounds");
  /* A length one byte short of the certificate's DER. */
  container(&ev, sample, full, 3);
  put_le32(ev.b + ALN_SNP_REPORT_LEN + 20, (uint32_t)vcek_der_len - 1);
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, ev.b, ev.len, &p, &c, "not one DER certificate");

  /* A supplied ARK that is not the pinned one (Genoa's) is refused by name. */
  size_t genoa_ark_len;
  uint8_t *genoa_ark = pem_der(genoa_pem, 1, &genoa_ark_len);
  const struct cert_entry wrong_ark[] = {{guid_vcek, vcek_der, vcek_der_len}, {guid_ark, genoa_ark, genoa_ark_len}};
  container(&ev, sample, wrong_ark, 2);
  assert_refused_with(ALN_ERR_ATTEST_CHAIN, ev.b, ev.len, &p, &c, "not the pinned ARK-Milan");
  OPENSSL_free(genoa_ark);
  OPENSSL_free(ask);
  OPENSSL_free(ark);
}

static void test_sample_validity_edges(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(VCEK_NOT_AFTER);
  assert_int_equal(verify_status(sample, sizeof(sample), &p, &c), ALN_OK);
  c.now = VCEK_NOT_AFTER + 1;
  assert_refused_with(ALN_ERR_ATTEST_EXPIRED, sample, sizeof(sample), &p, &c, "VCEK expired at 2029-09-24T00:55:28Z");
  c.now = VCEK_NOT_BEFORE;
  assert_int_equal(verify_status(sample, sizeof(sample), &p, &c), ALN_OK);
  c.now = VCEK_NOT_BEFORE - 1;
  assert_refused_with(ALN_ERR_ATTEST_EXPIRED, sample, sizeof(sample), &p, &c,
                      "VCEK is not valid before 2022-09-24T00:55:28Z");
}

static void test_sample_any_flipped_signed_byte_is_refused(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  uint8_t r[ALN_SNP_REPORT_LEN];
  /* Every byte of the signed region: a flip that keeps the report well formed must
   * fail the signature; one in a reserved or checked field fails the parse. */
  for (size_t off = 0; off < ALN_SNP_SIGNED_LEN; off++) {
    memcpy(r, sample, sizeof(r));
    r[off] ^= 0x01;
    aln_status st = verify_status(r, sizeof(r), &p, &c);
    if (st != ALN_ERR_ATTEST_SIG && st != ALN_ERR_ATTEST_MALFORMED)
      fail_msg("flipped byte 0x%zx: status 0x%x", off, (unsigned)st);
  }
  /* The fields an attacker would want to change: the signature, nothing else, stops them. */
  static const size_t named[] = {
      OFF_MEASUREMENT,
      OFF_MEASUREMENT + 47, /* MEASUREMENT */
      OFF_REPORT_DATA,
      OFF_REPORT_DATA + 5, /* REPORT_DATA: the nonce and the zeros after it */
      OFF_REPORT_DATA + 63,
      OFF_POLICY + 2, /* POLICY bit 16 (SMT) */
      OFF_POLICY + 1, /* POLICY ABI major */
      OFF_REPORTED_TCB,
      OFF_REPORTED_TCB + 7, /* REPORTED_TCB boot loader, microcode */
      0x038,
      0x1e0,
      0x1f0, /* CURRENT_, COMMITTED_, LAUNCH_TCB */
      OFF_VMPL,
      OFF_CHIP_ID,
      OFF_CHIP_ID + 63, /* VMPL 0 -> 1, CHIP_ID */
      0x004,
      0x0c0,
      0x0e0,
      0x110,
      0x140,
      0x160, /* GUEST_SVN, HOST_DATA, digests, report IDs */
  };
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
    memcpy(r, sample, sizeof(r));
    r[named[i]] ^= 0x01;
    struct aln_claims claims;
    char reason[ALN_REFUSAL_MAX];
    aln_status st = verify(&claims, r, sizeof(r), &p, &c, reason, sizeof(reason));
    if (st != ALN_ERR_ATTEST_SIG)
      fail_msg("flipped byte 0x%zx: status 0x%x (%s), wanted a bad signature", named[i], (unsigned)st, reason);
  }
  /* The debug bit itself: off under a debug-allowing policy still breaks the signature. */
  memcpy(r, sample, sizeof(r));
  r[OFF_POLICY + 2] &= (uint8_t)~0x08;
  assert_refused_with(ALN_ERR_ATTEST_SIG, r, sizeof(r), &p, &c, "signature");
}

static void test_sample_flipped_signature_is_refused(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  uint8_t r[ALN_SNP_REPORT_LEN];
  static const size_t sig_bytes[] = {OFF_SIG, OFF_SIG + 20, OFF_SIG + 47, OFF_SIG + 72, OFF_SIG + 100, OFF_SIG + 119};
  for (size_t i = 0; i < sizeof(sig_bytes) / sizeof(sig_bytes[0]); i++) {
    memcpy(r, sample, sizeof(r));
    r[sig_bytes[i]] ^= 0x80;
    assert_refused_with(ALN_ERR_ATTEST_SIG, r, sizeof(r), &p, &c, "does not verify");
  }
  /* Above the 48 bytes of a P-384 scalar, or after S: not a signature at all. */
  memcpy(r, sample, sizeof(r));
  r[OFF_SIG + 48] = 1;
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, r, sizeof(r), &p, &c, "signature R");
  memcpy(r, sample, sizeof(r));
  r[OFF_SIG + 144] = 1;
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, r, sizeof(r), &p, &c, "reserved");
  /* An all-zero signature, and a report that says it is unsigned. */
  memcpy(r, sample, sizeof(r));
  memset(r + OFF_SIG, 0, 144);
  assert_refused_with(ALN_ERR_ATTEST_SIG, r, sizeof(r), &p, &c, NULL);
  memcpy(r, sample, sizeof(r));
  put_le32(r + OFF_SIGNER, 7 << 2);
  assert_refused_with(ALN_ERR_ATTEST_SIG, r, sizeof(r), &p, &c, "not signed");
  memcpy(r, sample, sizeof(r));
  put_le32(r + OFF_SIGNER, 1 << 1); /* MASK_CHIP_KEY with the VCEK */
  assert_refused_with(ALN_ERR_ATTEST_SIG, r, sizeof(r), &p, &c, "MASK_CHIP_KEY");
}

static void test_truncated_and_padded_reports(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  static uint8_t big[ALN_SNP_EVIDENCE_MAX + 2];
  memset(big, 0, sizeof(big));
  memcpy(big, sample, sizeof(sample));
  static const size_t short_lens[] = {0, 1, 4, ALN_SNP_SIGNED_LEN, ALN_SNP_REPORT_LEN - 1};
  for (size_t i = 0; i < sizeof(short_lens) / sizeof(short_lens[0]); i++)
    assert_refused_with(ALN_ERR_ATTEST_MALFORMED, big, short_lens[i], &p, &c, "shorter than one report");
  /* Padding is read as a certificate table, and is not one. */
  static const size_t pads[] = {1, 23, 24, 100, 4096};
  for (size_t i = 0; i < sizeof(pads) / sizeof(pads[0]); i++)
    assert_refused_with(ALN_ERR_ATTEST_MALFORMED, big, ALN_SNP_REPORT_LEN + pads[i], &p, &c, "certificate table");
  memset(big + ALN_SNP_REPORT_LEN, 0xff, 100);
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, big, ALN_SNP_REPORT_LEN + 100, &p, &c, NULL);
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, big, sizeof(big), &p, &c, "limit");
}

static void test_wrong_version_is_refused(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  uint8_t r[ALN_SNP_REPORT_LEN];
  static const uint32_t versions[] = {1, 4, 5};
  for (size_t i = 0; i < 3; i++) {
    memcpy(r, sample, sizeof(r));
    put_le32(r + OFF_VERSION, versions[i]);
    assert_refused_with(ALN_ERR_ATTEST_MALFORMED, r, sizeof(r), &p, &c, "version");
  }
}

static void test_swapped_root_is_refused(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  /* Genoa's ARK and ASK as the roots of a Milan chain. */
  p.roots_pem = genoa_pem;
  assert_refused_with(ALN_ERR_ATTEST_CHAIN, sample, sizeof(sample), &p, &c, "does not chain");
  /* The same roots named the ordinary way: a policy for Genoa. */
  p.roots_pem = NULL;
  p.product = ALN_SNP_PRODUCT_GENOA;
  assert_refused_with(ALN_ERR_ATTEST_CHAIN, sample, sizeof(sample), &p, &c, "pinned ARK-Genoa");
  p.product = ALN_SNP_PRODUCT_TURIN;
  assert_refused_with(ALN_ERR_ATTEST_CHAIN, sample, sizeof(sample), &p, &c, "pinned ARK-Turin");
  /* Milan's own, given as text, work like the pinned ones. */
  p.product = ALN_SNP_PRODUCT_MILAN;
  p.roots_pem = milan_pem;
  assert_int_equal(verify_status(sample, sizeof(sample), &p, &c), ALN_OK);
  /* Roots without an ARK, or that are not PEM, are a broken policy. */
  char ask_only[4096];
  const char *end = strstr(milan_pem, "-----END CERTIFICATE-----\n");
  assert_non_null(end);
  snprintf(ask_only, sizeof(ask_only), "%.*s", (int)(end - milan_pem) + 26, milan_pem);
  p.roots_pem = ask_only;
  assert_refused_with(ALN_ERR_USAGE, sample, sizeof(sample), &p, &c, "no self-signed");
  /* Two ARKs: which one would be the anchor? */
  char two_arks[12000];
  const char *milan_ark = strstr(milan_pem + 1, "-----BEGIN");
  const char *genoa_ark = strstr(genoa_pem + 1, "-----BEGIN");
  assert_non_null(milan_ark);
  assert_non_null(genoa_ark);
  snprintf(two_arks, sizeof(two_arks), "%s%s%s", milan_pem, genoa_ark, milan_ark);
  p.roots_pem = two_arks;
  assert_refused_with(ALN_ERR_USAGE, sample, sizeof(sample), &p, &c, "more than one self-signed");
  p.roots_pem = "not a certificate";
  assert_refused_with(ALN_ERR_USAGE, sample, sizeof(sample), &p, &c, "not PEM");
}

static void test_wrong_nonce_is_refused(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  static const uint8_t wrong[] = {1, 2, 3, 4, 6};
  c.nonce = wrong;
  assert_refused_with(ALN_ERR_ATTEST_BINDING, sample, sizeof(sample), &p, &c, "REPORT_DATA");
  uint8_t binding[32];
  memset(binding, 0, sizeof(binding));
  memcpy(binding, sample_nonce, sizeof(sample_nonce));
  binding[31] = 1; /* right prefix, wrong tail */
  c.nonce = binding;
  c.nonce_len = sizeof(binding);
  assert_refused_with(ALN_ERR_ATTEST_BINDING, sample, sizeof(sample), &p, &c, "REPORT_DATA");
  uint8_t too_long[65];
  memset(too_long, 0, sizeof(too_long));
  memcpy(too_long, sample_nonce, sizeof(sample_nonce));
  c.nonce = too_long;
  c.nonce_len = sizeof(too_long);
  assert_refused_with(ALN_ERR_ATTEST_BINDING, sample, sizeof(sample), &p, &c, "65 bytes");
  /* 64 bytes is the whole field, and matches. */
  c.nonce_len = 64;
  assert_int_equal(verify_status(sample, sizeof(sample), &p, &c), ALN_OK);
}

static void test_measurement_not_in_policy_is_refused(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  uint8_t list[3][ALN_SNP_MEASUREMENT_LEN];
  memset(list, 0xaa, sizeof(list));
  memcpy(list[1], sample_measurement, ALN_SNP_MEASUREMENT_LEN);
  list[1][47] ^= 1;
  p.measurements = (const uint8_t(*)[ALN_SNP_MEASUREMENT_LEN])list;
  p.num_measurements = 3;
  assert_refused_with(ALN_ERR_ATTEST_POLICY, sample, sizeof(sample), &p, &c, sample_measurement_hex);
  p.num_measurements = 0;
  assert_refused_with(ALN_ERR_ATTEST_POLICY, sample, sizeof(sample), &p, &c, "MEASUREMENT");
  /* Found anywhere in the list. */
  memcpy(list[2], sample_measurement, ALN_SNP_MEASUREMENT_LEN);
  p.num_measurements = 3;
  assert_int_equal(verify_status(sample, sizeof(sample), &p, &c), ALN_OK);
}

static void test_debug_sample_under_production_policy_is_refused(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  p.allow_debug = 0;
  assert_refused_with(ALN_ERR_ATTEST_DEBUG, sample, sizeof(sample), &p, &c, "0xb0000");
}

static void test_certificate_directory(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  c.certs_dir = NULL;
  assert_refused_with(ALN_ERR_ATTEST_CHAIN, sample, sizeof(sample), &p, &c, "no certificate directory");
  char empty[64];
  snprintf(empty, sizeof(empty), "/tmp/aln-snp-empty-XXXXXX");
  assert_non_null(mkdtemp(empty));
  c.certs_dir = empty;
  assert_refused_with(ALN_ERR_ATTEST_CHAIN, sample, sizeof(sample), &p, &c, "no vcek.der");
  write_file(empty, "vcek.der", "garbage", 7);
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, sample, sizeof(sample), &p, &c, "VCEK");
  remove_file(empty, "vcek.der");
  rmdir(empty);

  /* ask.pem and ark.pem as snpguest writes them: Milan's are fine. */
  c.certs_dir = certs_dir;
  const char *ark_pem = strstr(milan_pem + 1, "-----BEGIN");
  assert_non_null(ark_pem);
  write_file(certs_dir, "ask.pem", milan_pem, (size_t)(ark_pem - milan_pem));
  write_file(certs_dir, "ark.pem", ark_pem, strlen(ark_pem));
  assert_int_equal(verify_status(sample, sizeof(sample), &p, &c), ALN_OK);
  /* Genoa's ARK beside a Milan report: named, not silently ignored. */
  const char *genoa_ark = strstr(genoa_pem + 1, "-----BEGIN");
  write_file(certs_dir, "ark.pem", genoa_ark, strlen(genoa_ark));
  assert_refused_with(ALN_ERR_ATTEST_CHAIN, sample, sizeof(sample), &p, &c, "ARK supplied");
  /* A Genoa ASK as a candidate intermediate changes nothing: the pinned one is used. */
  write_file(certs_dir, "ark.pem", ark_pem, strlen(ark_pem));
  write_file(certs_dir, "ask.pem", genoa_pem, (size_t)(genoa_ark - genoa_pem));
  assert_int_equal(verify_status(sample, sizeof(sample), &p, &c), ALN_OK);
  write_file(certs_dir, "ask.pem", "junk", 4);
  assert_refused_with(ALN_ERR_ATTEST_MALFORMED, sample, sizeof(sample), &p, &c, "ask.pem");
  remove_file(certs_dir, "ask.pem");
  remove_file(certs_dir, "ark.pem");
}

static void test_usage_errors(void **state) {
  (void)state;
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  struct aln_claims claims;
  struct aln_refusal why;
  assert_int_equal(aln_snp_verify(NULL, &why, sample, sizeof(sample), &p, &c), ALN_ERR_USAGE);
  assert_int_equal(aln_snp_verify(&claims, &why, NULL, sizeof(sample), &p, &c), ALN_ERR_USAGE);
  assert_int_equal(aln_snp_verify(&claims, &why, sample, sizeof(sample), NULL, &c), ALN_ERR_USAGE);
  assert_int_equal(aln_snp_verify(&claims, NULL, sample, sizeof(sample), &p, NULL), ALN_ERR_USAGE);
  p.product = ALN_SNP_PRODUCT_NONE;
  assert_refused_with(ALN_ERR_USAGE, sample, sizeof(sample), &p, &c, "product");
  p = sample_policy();
  p.measurements = NULL;
  assert_refused_with(ALN_ERR_USAGE, sample, sizeof(sample), &p, &c, NULL);
  p = sample_policy();
  p.vmpl_mask = 0x10;
  assert_refused_with(ALN_ERR_USAGE, sample, sizeof(sample), &p, &c, "VMPL");
  p = sample_policy();
  c.nonce_len = 0;
  assert_refused_with(ALN_ERR_USAGE, sample, sizeof(sample), &p, &c, "nonce");

  enum aln_snp_product prod;
  assert_int_equal(aln_snp_product_from_name(&prod, "Genoa"), ALN_OK);
  assert_int_equal(prod, ALN_SNP_PRODUCT_GENOA);
  assert_string_equal(aln_snp_product_name(ALN_SNP_PRODUCT_TURIN), "Turin");
  assert_int_equal(aln_snp_product_from_name(&prod, "milan"), ALN_ERR_USAGE);
  assert_int_equal(aln_snp_product_from_name(&prod, "Milan-B0"), ALN_ERR_USAGE);
  assert_null(aln_snp_product_name(ALN_SNP_PRODUCT_NONE));
}

static void test_repeated_verification(void **state) {
  (void)state;
  /* Stateless and leak-free (the ASan build's leak checker holds it to that): the
   * same answer every time, accepted or refused. */
  struct aln_snp_policy p = sample_policy();
  struct aln_verify_ctx c = sample_ctx(SAMPLE_NOW);
  uint8_t bad[ALN_SNP_REPORT_LEN];
  memcpy(bad, sample, sizeof(bad));
  bad[OFF_MEASUREMENT] ^= 1;
  for (int i = 0; i < 20; i++) {
    struct aln_claims claims;
    assert_int_equal(verify(&claims, sample, sizeof(sample), &p, &c, NULL, 0), ALN_OK);
    assert_string_equal(claims.measurement, sample_measurement_hex);
    aln_claims_cleanup(&claims);
    assert_int_equal(verify_status(bad, sizeof(bad), &p, &c), ALN_ERR_ATTEST_SIG);
  }
}

/* --- evidence made here ------------------------------------------------------------------ */

static EVP_PKEY *test_ark_key, *test_ask_key, *other_ark_key;
static const char *ask_constraints = "critical,CA:TRUE,pathlen:0"; /* as AMD's ASK */

/* The AMD KDS extensions a made leaf carries. */
struct leaf_spec {
  const char *product_name; /* productName, e.g. "Milan-B0"; NULL: none */
  enum aln_snp_product layout;
  struct aln_snp_tcb tcb;
  const uint8_t *hwid; /* NULL: no hwID */
  size_t hwid_len;
  const char *csp_id; /* a VLEK's; NULL: none */
  const char *curve;  /* "P-384" unless testing another */
  bool pkcs1;         /* sign with PKCS#1 v1.5 instead of PSS */
  EVP_PKEY *signer;   /* NULL: the test ASK key (issuer SEV-Test) */
  const char *issuer_cn;
};

static void add_ext(X509 *x, const char *oid, const uint8_t *val, size_t len) {
  ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
  assert_non_null(obj);
  assert_non_null(os);
  assert_int_equal(ASN1_OCTET_STRING_set(os, val, (int)len), 1);
  X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
  assert_non_null(e);
  assert_int_equal(X509_add_ext(x, e, -1), 1);
  X509_EXTENSION_free(e);
  ASN1_OCTET_STRING_free(os);
  ASN1_OBJECT_free(obj);
}

static void add_int_ext(X509 *x, const char *oid, unsigned v) {
  uint8_t der[4] = {0x02, 0x01, (uint8_t)v};
  if (v >= 0x80) { /* a positive INTEGER with the top bit set takes a leading zero */
    der[1] = 2, der[2] = 0, der[3] = (uint8_t)v;
    add_ext(x, oid, der, 4);
    return;
  }
  add_ext(x, oid, der, 3);
}

static void add_ia5_ext(X509 *x, const char *oid, const char *s) {
  uint8_t der[66];
  size_t n = strlen(s);
  assert_true(n < 64);
  der[0] = 0x16, der[1] = (uint8_t)n;
  memcpy(der + 2, s, n);
  add_ext(x, oid, der, n + 2);
}

static void add_conf_ext(X509 *x, int nid, const char *value) {
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, nid, value);
  assert_non_null(e);
  assert_int_equal(X509_add_ext(x, e, -1), 1);
  X509_EXTENSION_free(e);
}

static void sign_cert(X509 *x, EVP_PKEY *key, bool pkcs1) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  assert_non_null(md);
  assert_int_equal(EVP_DigestSignInit(md, &pctx, EVP_sha384(), NULL, key), 1);
  if (!pkcs1) {
    assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) > 0);
  }
  assert_true(X509_sign_ctx(x, md) > 0);
  EVP_MD_CTX_free(md);
}

static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *issuer_cn, int64_t not_before, int64_t not_after) {
  X509 *x = X509_new();
  assert_non_null(x);
  assert_int_equal(X509_set_version(x, 2), 1);
  static long serial = 1;
  assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
  X509_NAME *name = X509_NAME_new(), *issuer = X509_NAME_new();
  assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0), 1);
  assert_int_equal(X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_ASC, (const uint8_t *)issuer_cn, -1, -1, 0), 1);
  assert_int_equal(X509_set_subject_name(x, name), 1);
  assert_int_equal(X509_set_issuer_name(x, issuer), 1);
  X509_NAME_free(name);
  X509_NAME_free(issuer);
  assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before));
  assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after));
  assert_int_equal(X509_set_pubkey(x, key), 1);
  return x;
}

static void append_pem(char *out, size_t cap, X509 *x) {
  BIO *bio = BIO_new(BIO_s_mem());
  assert_int_equal(PEM_write_bio_X509(bio, x), 1);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  size_t have = strlen(out);
  assert_true(have + (size_t)n < cap);
  memcpy(out + have, p, (size_t)n);
  out[have + (size_t)n] = '\0';
  BIO_free(bio);
}

/* make_roots writes PEM(ASK) || PEM(ARK) into |out|: an ARK-Test self-signed with
 * |ark_key|, and an SEV-Test for the test ASK key signed by |ask_signer| (the same
 * key for a proper chain). */
static void make_roots(char *out, size_t cap, EVP_PKEY *ark_key, EVP_PKEY *ask_signer, int64_t ask_not_after) {
  X509 *ark = new_cert(ark_key, "ARK-Test", "ARK-Test", SYN_NOT_BEFORE, SYN_NOT_AFTER);
  add_conf_ext(ark, NID_basic_constraints, "critical,CA:TRUE");
  add_conf_ext(ark, NID_key_usage, "critical,keyCertSign,cRLSign");
  sign_cert(ark, ark_key, false);
  X509 *ask = new_cert(test_ask_key, "SEV-Test", "ARK-Test", SYN_NOT_BEFORE, ask_not_after);
  add_conf_ext(ask, NID_basic_constraints, ask_constraints);
  add_conf_ext(ask, NID_key_usage, "critical,keyCertSign");
  sign_cert(ask, ask_signer, false);
  out[0] = '\0';
  append_pem(out, cap, ask);
  append_pem(out, cap, ark);
  X509_free(ark);
  X509_free(ask);
}

/* make_leaf issues a VCEK (or VLEK) for |key| from the test ASK; returns its DER. */
static size_t make_leaf(uint8_t *der_out, size_t cap, EVP_PKEY *key, const struct leaf_spec *spec) {
  X509 *x = new_cert(key, spec->csp_id != NULL ? "SEV-VLEK" : "SEV-VCEK",
                     spec->issuer_cn != NULL ? spec->issuer_cn : "SEV-Test", SYN_NOT_BEFORE, SYN_NOT_AFTER);
  add_int_ext(x, "1.3.6.1.4.1.3704.1.1", spec->layout == ALN_SNP_PRODUCT_TURIN ? 1 : 0);
  if (spec->product_name != NULL)
    add_ia5_ext(x, "1.3.6.1.4.1.3704.1.2", spec->product_name);
  add_int_ext(x, "1.3.6.1.4.1.3704.1.3.1", spec->tcb.bootloader);
  add_int_ext(x, "1.3.6.1.4.1.3704.1.3.2", spec->tcb.tee);
  add_int_ext(x, "1.3.6.1.4.1.3704.1.3.3", spec->tcb.snp);
  for (int i = 4; i <= 7; i++) {
    char oid[32];
    snprintf(oid, sizeof(oid), "1.3.6.1.4.1.3704.1.3.%d", i);
    add_int_ext(x, oid, 0);
  }
  add_int_ext(x, "1.3.6.1.4.1.3704.1.3.8", spec->tcb.microcode);
  if (spec->layout == ALN_SNP_PRODUCT_TURIN)
    add_int_ext(x, "1.3.6.1.4.1.3704.1.3.9", spec->tcb.fmc);
  if (spec->hwid != NULL)
    add_ext(x, "1.3.6.1.4.1.3704.1.4", spec->hwid, spec->hwid_len); /* raw, as AMD's KDS writes it */
  if (spec->csp_id != NULL)
    add_ia5_ext(x, "1.3.6.1.4.1.3704.1.5", spec->csp_id);
  sign_cert(x, spec->signer != NULL ? spec->signer : test_ask_key, spec->pkcs1);
  uint8_t *der = NULL;
  int n = i2d_X509(x, &der);
  assert_true(n > 0 && (size_t)n <= cap);
  memcpy(der_out, der, (size_t)n);
  OPENSSL_free(der);
  X509_free(x);
  return (size_t)n;
}

static uint64_t tcb_raw(struct aln_snp_tcb t, enum aln_snp_product layout) {
  if (layout == ALN_SNP_PRODUCT_TURIN)
    return (uint64_t)t.microcode << 56 | (uint64_t)t.snp << 24 | (uint64_t)t.tee << 16 | (uint64_t)t.bootloader << 8 |
           t.fmc;
  return (uint64_t)t.microcode << 56 | (uint64_t)t.snp << 48 | (uint64_t)t.tee << 8 | t.bootloader;
}

/* What a made report says. */
struct report_spec {
  uint32_t version;
  uint64_t policy;
  uint32_t vmpl;
  enum aln_snp_signing_key key;
  uint64_t tcb;
  uint8_t measurement[ALN_SNP_MEASUREMENT_LEN];
  uint8_t report_data[ALN_SNP_REPORT_DATA_LEN];
  uint8_t chip_id[ALN_SNP_CHIP_ID_LEN];
  uint8_t family, model;
};

/* make_report lays out a report as the ABI says and signs it with |key| (P-384,
 * SHA-384, R and S little-endian in 72-byte fields). */
static void make_report(uint8_t out[ALN_SNP_REPORT_LEN], const struct report_spec *s, EVP_PKEY *key) {
  memset(out, 0, ALN_SNP_REPORT_LEN);
  put_le32(out + OFF_VERSION, s->version);
  put_le64(out + OFF_POLICY, s->policy);
  put_le32(out + OFF_VMPL, s->vmpl);
  put_le32(out + OFF_SIG_ALGO, 1);
  put_le64(out + 0x038, s->tcb); /* CURRENT_TCB */
  put_le32(out + OFF_SIGNER, (uint32_t)s->key << 2);
  memcpy(out + OFF_REPORT_DATA, s->report_data, ALN_SNP_REPORT_DATA_LEN);
  memcpy(out + OFF_MEASUREMENT, s->measurement, ALN_SNP_MEASUREMENT_LEN);
  memset(out + 0x140, 0x5a, 32); /* REPORT_ID */
  put_le64(out + OFF_REPORTED_TCB, s->tcb);
  if (s->version >= 3)
    out[OFF_CPUID] = s->family, out[OFF_CPUID + 1] = s->model;
  memcpy(out + OFF_CHIP_ID, s->chip_id, ALN_SNP_CHIP_ID_LEN);
  put_le64(out + 0x1e0, s->tcb); /* COMMITTED_TCB */
  put_le64(out + 0x1f0, s->tcb); /* LAUNCH_TCB */

  uint8_t der[128];
  size_t der_len = sizeof(der);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key), 1);
  assert_int_equal(EVP_DigestSign(md, der, &der_len, out, ALN_SNP_SIGNED_LEN), 1);
  EVP_MD_CTX_free(md);
  const uint8_t *p = der;
  ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
  assert_non_null(sig);
  assert_int_equal(BN_bn2lebinpad(ECDSA_SIG_get0_r(sig), out + OFF_SIG, 72), 72);
  assert_int_equal(BN_bn2lebinpad(ECDSA_SIG_get0_s(sig), out + OFF_SIG + 72, 72), 72);
  ECDSA_SIG_free(sig);
}

/* A made world: roots, a leaf, a report, evidence with the leaf in its table, and a
 * production policy that accepts it. Each test changes one thing. */
struct world {
  char roots[8192];
  EVP_PKEY *leaf_key;
  struct leaf_spec leaf;
  uint8_t leaf_der[4096];
  size_t leaf_der_len;
  struct report_spec rs;
  uint8_t report[ALN_SNP_REPORT_LEN];
  struct evidence ev;
  uint8_t allowed[1][ALN_SNP_MEASUREMENT_LEN];
  struct aln_snp_policy policy;
  uint8_t binding[32];
  struct aln_verify_ctx ctx;
};

static const struct aln_snp_tcb world_tcb = {.fmc = 1, .bootloader = 9, .tee = 0, .snp = 23, .microcode = 213};

/* world_init resets |w| (static storage: zeroed, or left by a previous world). */
static void world_init(struct world *w, enum aln_snp_product product) {
  EVP_PKEY_free(w->leaf_key);
  memset(w, 0, sizeof(*w));
  make_roots(w->roots, sizeof(w->roots), test_ark_key, test_ark_key, SYN_NOT_AFTER);
  w->leaf.layout = product;
  w->leaf.product_name = product == ALN_SNP_PRODUCT_TURIN ? "Turin-B0" : "Milan-B0";
  w->leaf.tcb = world_tcb;
  w->leaf.curve = "P-384";
  w->rs.version = product == ALN_SNP_PRODUCT_TURIN ? 3 : 2;
  w->rs.family = 0x1a, w->rs.model = 0x02;
  w->rs.policy = 0x30000; /* SMT allowed, reserved bit 17: no debug */
  w->rs.key = ALN_SNP_KEY_VCEK;
  memset(w->rs.measurement, 0x6d, sizeof(w->rs.measurement));
  for (size_t i = 0; i < sizeof(w->binding); i++)
    w->binding[i] = (uint8_t)(0xa0 + i);
  memcpy(w->rs.report_data, w->binding, sizeof(w->binding));
  memset(w->rs.chip_id, 0x11, sizeof(w->rs.chip_id));
  w->leaf.hwid = w->rs.chip_id;
  w->leaf.hwid_len = product == ALN_SNP_PRODUCT_TURIN ? 8 : 64;
  w->rs.tcb = tcb_raw(world_tcb, product);
  memcpy(w->allowed[0], w->rs.measurement, ALN_SNP_MEASUREMENT_LEN);
  w->policy.product = product;
  w->policy.measurements = (const uint8_t(*)[ALN_SNP_MEASUREMENT_LEN])w->allowed;
  w->policy.num_measurements = 1;
  w->policy.min_tcb = world_tcb;
  w->policy.roots_pem = w->roots;
  w->ctx.nonce = w->binding;
  w->ctx.nonce_len = sizeof(w->binding);
  w->ctx.now = SYN_NOW;
}

/* world_build issues the leaf, signs the report and packs the evidence. */
static void world_build(struct world *w) {
  EVP_PKEY_free(w->leaf_key);
  w->leaf_key = EVP_EC_gen(w->leaf.curve);
  assert_non_null(w->leaf_key);
  w->leaf_der_len = make_leaf(w->leaf_der, sizeof(w->leaf_der), w->leaf_key, &w->leaf);
  make_report(w->report, &w->rs, w->leaf_key);
  const struct cert_entry e[] = {{w->leaf.csp_id != NULL ? guid_vlek : guid_vcek, w->leaf_der, w->leaf_der_len}};
  container(&w->ev, w->report, e, 1);
}

static void world_free(struct world *w) {
  EVP_PKEY_free(w->leaf_key);
  w->leaf_key = NULL;
}

static aln_status world_verify(struct world *w, struct aln_claims *claims, char *reason, size_t reason_len) {
  return verify(claims, w->ev.b, w->ev.len, &w->policy, &w->ctx, reason, reason_len);
}

static void world_accepts(struct world *w) {
  struct aln_claims claims;
  char reason[ALN_REFUSAL_MAX];
  if (world_verify(w, &claims, reason, sizeof(reason)) != ALN_OK)
    fail_msg("refused: %s", reason);
  aln_claims_cleanup(&claims);
}

static void world_expect(struct world *w, aln_status want, const char *reason_part) {
  assert_refused_with(want, w->ev.b, w->ev.len, &w->policy, &w->ctx, reason_part);
}

static int made_setup(void **state) {
  (void)state;
  test_ark_key = EVP_RSA_gen(2048);
  test_ask_key = EVP_RSA_gen(2048);
  other_ark_key = EVP_RSA_gen(2048);
  return test_ark_key != NULL && test_ask_key != NULL && other_ark_key != NULL ? 0 : -1;
}

static int made_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(test_ark_key);
  EVP_PKEY_free(test_ask_key);
  EVP_PKEY_free(other_ark_key);
  return 0;
}

static void test_made_report_verifies(void **state) {
  (void)state;
  static struct world w;
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  world_build(&w);
  struct aln_claims claims;
  char reason[ALN_REFUSAL_MAX];
  if (world_verify(&w, &claims, reason, sizeof(reason)) != ALN_OK)
    fail_msg("refused: %s", reason);
  assert_int_equal(claims.debug, 0);
  assert_int_equal(claims.nonce_checked, 1);
  assert_int_equal(claims.expires_at, SYN_NOT_AFTER);
  assert_string_equal(claims.measurement, "6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d"
                                          "6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d");
  json_t *tcb = json_object_get(claims.detail, "reported_tcb");
  assert_int_equal(json_integer_value(json_object_get(tcb, "bootloader")), 9);
  assert_int_equal(json_integer_value(json_object_get(tcb, "snp")), 23);
  assert_int_equal(json_integer_value(json_object_get(tcb, "microcode")), 213);
  assert_null(json_object_get(tcb, "fmc"));
  assert_string_equal(json_string_value(json_object_get(claims.detail, "policy")), "0x30000");
  aln_claims_cleanup(&claims);
  /* The same evidence under a swapped root: an ARK-Test of another key, beside the
   * ASK the real one signed. */
  make_roots(w.roots, sizeof(w.roots), other_ark_key, test_ark_key, SYN_NOT_AFTER);
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "policy's ARK");
  /* ... and under the pinned Milan roots. */
  w.policy.roots_pem = NULL;
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "pinned ARK-Milan");
  world_free(&w);
}

static void test_made_debug_guest_under_production_policy(void **state) {
  (void)state;
  static struct world w;
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.rs.policy |= ALN_SNP_POLICY_DEBUG;
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_DEBUG, "allows debugging");
  w.policy.allow_debug = 1;
  struct aln_claims claims;
  assert_int_equal(world_verify(&w, &claims, NULL, 0), ALN_OK);
  assert_int_equal(claims.debug, 1);
  aln_claims_cleanup(&claims);
  world_free(&w);
}

static void test_made_tcb_below_minimum(void **state) {
  (void)state;
  static struct world w;
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  world_build(&w);
  /* The minimum equal to the report passes (world_init); one above, per component, not. */
  static const char *const names[] = {"bootloader", "tee", "snp", "microcode"};
  for (int i = 0; i < 4; i++) {
    w.policy.min_tcb = world_tcb;
    uint8_t *part = i == 0   ? &w.policy.min_tcb.bootloader
                    : i == 1 ? &w.policy.min_tcb.tee
                    : i == 2 ? &w.policy.min_tcb.snp
                             : &w.policy.min_tcb.microcode;
    (*part)++;
    world_expect(&w, ALN_ERR_ATTEST_POLICY, names[i]);
  }
  /* fmc means nothing before Turin. */
  w.policy.min_tcb = world_tcb;
  w.policy.min_tcb.fmc = 200;
  world_accepts(&w);
  world_free(&w);
}

static void test_made_vmpl(void **state) {
  (void)state;
  static struct world w;
  struct aln_claims claims;
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.rs.vmpl = 1;
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_POLICY, "VMPL 1");
  w.policy.vmpl_mask = 0x3;
  assert_int_equal(world_verify(&w, &claims, NULL, 0), ALN_OK);
  assert_int_equal(json_integer_value(json_object_get(claims.detail, "vmpl")), 1);
  aln_claims_cleanup(&claims);
  /* A policy for VMPL 1 only refuses VMPL 0. */
  w.rs.vmpl = 0;
  world_build(&w);
  w.policy.vmpl_mask = 0x2;
  world_expect(&w, ALN_ERR_ATTEST_POLICY, "VMPL 0");
  world_free(&w);
}

static void test_made_report_not_the_vceks(void **state) {
  (void)state;
  static struct world w;
  /* REPORTED_TCB other than the TCB the VCEK was issued for. */
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.rs.tcb += 1;
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "issued for TCB");
  /* Another chip. */
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  world_build(&w);
  w.rs.chip_id[63] ^= 1;
  make_report(w.report, &w.rs, w.leaf_key);
  memcpy(w.ev.b, w.report, sizeof(w.report));
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "hwID");
  /* A masked chip ID. */
  memset(w.rs.chip_id, 0, sizeof(w.rs.chip_id));
  make_report(w.report, &w.rs, w.leaf_key);
  memcpy(w.ev.b, w.report, sizeof(w.report));
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "masked");
  /* A VCEK of another product line (chained to this policy's roots). */
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.leaf.product_name = "Genoa-B1";
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "Genoa-B1");
  /* No hwID: not a VCEK. */
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.leaf.hwid = NULL;
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "not a VCEK");
  world_free(&w);
}

static void test_made_chain_algorithms_and_times(void **state) {
  (void)state;
  static struct world w;
  /* AMD signs with RSASSA-PSS; PKCS#1 v1.5 on the VCEK is not AMD's. */
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.leaf.pkcs1 = true;
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "RSASSA-PSS");
  /* A P-256 VCEK. */
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.leaf.curve = "P-256";
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "P-384");
  /* An ASK that expired before now, named as such. */
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  make_roots(w.roots, sizeof(w.roots), test_ark_key, test_ark_key, SYN_NOW - 1);
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_EXPIRED, "ASK expired");
  w.ctx.now = SYN_NOW - 1;
  world_accepts(&w);
  world_free(&w);
}

static void test_made_turin_version3(void **state) {
  (void)state;
  static struct world w;
  struct aln_claims claims;
  char reason[ALN_REFUSAL_MAX];
  world_init(&w, ALN_SNP_PRODUCT_TURIN);
  world_build(&w);
  if (world_verify(&w, &claims, reason, sizeof(reason)) != ALN_OK)
    fail_msg("refused: %s", reason);
  json_t *tcb = json_object_get(claims.detail, "reported_tcb");
  assert_int_equal(json_integer_value(json_object_get(tcb, "fmc")), 1);
  assert_int_equal(json_integer_value(json_object_get(tcb, "bootloader")), 9);
  assert_int_equal(json_integer_value(json_object_get(tcb, "snp")), 23);
  assert_int_equal(json_integer_value(json_object_get(tcb, "microcode")), 213);
  assert_string_equal(json_string_value(json_object_get(claims.detail, "product")), "Turin");
  assert_int_equal(json_integer_value(json_object_get(claims.detail, "version")), 3);
  aln_claims_cleanup(&claims);
  /* Turin's FMC counts toward the minimum. */
  w.policy.min_tcb.fmc = 2;
  world_expect(&w, ALN_ERR_ATTEST_POLICY, "fmc");
  /* A version 3 report whose CPU is a Milan, under a Turin policy. */
  world_init(&w, ALN_SNP_PRODUCT_TURIN);
  w.rs.family = 0x19, w.rs.model = 0x01;
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_POLICY, "family 0x19");
  world_free(&w);
}

static void test_made_vlek(void **state) {
  (void)state;
  static struct world w;
  struct aln_claims claims;
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.rs.key = ALN_SNP_KEY_VLEK;
  w.leaf.hwid = NULL;
  w.leaf.csp_id = "test-cloud";
  world_build(&w);
  assert_int_equal(world_verify(&w, &claims, NULL, 0), ALN_OK);
  assert_string_equal(json_string_value(json_object_get(claims.detail, "signing_key")), "vlek");
  aln_claims_cleanup(&claims);
  /* The report says VLEK; a table with only a VCEK does not serve. */
  const struct cert_entry e[] = {{guid_vcek, w.leaf_der, w.leaf_der_len}};
  container(&w.ev, w.report, e, 1);
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "no VLEK");
  world_free(&w);
}

static void test_made_report_data_after_the_nonce(void **state) {
  (void)state;
  static struct world w;
  /* The nonce is right, but REPORT_DATA carries more after it. */
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  w.rs.report_data[40] = 1;
  world_build(&w);
  world_expect(&w, ALN_ERR_ATTEST_BINDING, "followed by zeros");
  /* A 41-byte nonce that ends in that byte is matched, one that ends in 0 is not. */
  static uint8_t longer[41];
  memcpy(longer, w.rs.report_data, sizeof(longer));
  longer[40] = 0;
  w.ctx.nonce = longer;
  w.ctx.nonce_len = sizeof(longer);
  world_expect(&w, ALN_ERR_ATTEST_BINDING, "REPORT_DATA");
  longer[40] = 1;
  world_accepts(&w);
  world_free(&w);
}

static void test_made_longer_chain_is_refused(void **state) {
  (void)state;
  static struct world w;
  /* VCEK <- SEV-Sub <- ASK <- ARK, every signature good and the ASK allowed to
   * have sub-CAs: still not AMD's three-certificate chain. */
  ask_constraints = "critical,CA:TRUE";
  world_init(&w, ALN_SNP_PRODUCT_MILAN);
  ask_constraints = "critical,CA:TRUE,pathlen:0";
  X509 *sub = new_cert(other_ark_key, "SEV-Sub", "SEV-Test", SYN_NOT_BEFORE, SYN_NOT_AFTER);
  add_conf_ext(sub, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_conf_ext(sub, NID_key_usage, "critical,keyCertSign");
  sign_cert(sub, test_ask_key, false);
  uint8_t *sub_der = NULL;
  int sub_len = i2d_X509(sub, &sub_der);
  assert_true(sub_len > 0);
  w.leaf.signer = other_ark_key;
  w.leaf.issuer_cn = "SEV-Sub";
  world_build(&w);
  const struct cert_entry e[] = {{guid_vcek, w.leaf_der, w.leaf_der_len}, {guid_ask, sub_der, (size_t)sub_len}};
  container(&w.ev, w.report, e, 2);
  world_expect(&w, ALN_ERR_ATTEST_CHAIN, "chain");
  OPENSSL_free(sub_der);
  X509_free(sub);
  world_free(&w);
}

int main(void) {
  const struct CMUnitTest sample_tests[] = {
      cmocka_unit_test(test_parse_sample),
      cmocka_unit_test(test_parse_refuses_every_other_length),
      cmocka_unit_test(test_parse_versions),
      cmocka_unit_test(test_parse_reserved_fields),
      cmocka_unit_test(test_pinned_roots_are_amds),
      cmocka_unit_test(test_concurrent_verification),
      cmocka_unit_test(test_sample_verifies_with_expected_claims),
      cmocka_unit_test(test_sample_in_a_certificate_table),
      cmocka_unit_test(test_sample_validity_edges),
      cmocka_unit_test(test_sample_any_flipped_signed_byte_is_refused),
      cmocka_unit_test(test_sample_flipped_signature_is_refused),
      cmocka_unit_test(test_truncated_and_padded_reports),
      cmocka_unit_test(test_wrong_version_is_refused),
      cmocka_unit_test(test_swapped_root_is_refused),
      cmocka_unit_test(test_wrong_nonce_is_refused),
      cmocka_unit_test(test_measurement_not_in_policy_is_refused),
      cmocka_unit_test(test_debug_sample_under_production_policy_is_refused),
      cmocka_unit_test(test_certificate_directory),
      cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_repeated_verification),
  };
  const struct CMUnitTest made_tests[] = {
      cmocka_unit_test(test_made_report_verifies),
      cmocka_unit_test(test_made_debug_guest_under_production_policy),
      cmocka_unit_test(test_made_tcb_below_minimum),
      cmocka_unit_test(test_made_vmpl),
      cmocka_unit_test(test_made_report_not_the_vceks),
      cmocka_unit_test(test_made_chain_algorithms_and_times),
      cmocka_unit_test(test_made_turin_version3),
      cmocka_unit_test(test_made_vlek),
      cmocka_unit_test(test_made_report_data_after_the_nonce),
      cmocka_unit_test(test_made_longer_chain_is_refused),
  };
  int failed = cmocka_run_group_tests_name("snp_sample", sample_tests, group_setup, group_teardown);
  failed += cmocka_run_group_tests_name("snp_made", made_tests, made_setup, made_teardown);
  return failed;
}
