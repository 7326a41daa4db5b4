/* The appraisal policy file: what it accepts, what it refuses (with the line and
 * the reason), and the dispatch of evidence to the verifier of its kind, refusing a
 * kind the policy does not name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "attestation/local.h"
#include "attestation/policy.h"
#include "tests/unit/test_files.h"

static aln_status parse(const char *yaml, char err[ALN_POLICY_ERR_MAX], struct aln_policy **out) {
  return aln_policy_parse(out, err, (const uint8_t *)yaml, strlen(yaml));
}

/* refused checks that |yaml| is refused with |want| and an error containing |needle|. */
static void refused(const char *yaml, aln_status want, const char *needle) {
  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *p = (struct aln_policy *)1;
  aln_status st = parse(yaml, err, &p);
  if (st != want || strstr(err, needle) == NULL)
    fail_msg("policy %s: got %s '%s', want %s '%s'", yaml, aln_status_name(st), err, aln_status_name(want), needle);
  assert_null(p);
}

static void test_accepts_a_local_policy(void **state) {
  (void)state;
  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *p = NULL;
  assert_int_equal(parse("version: 1\nkinds:\n  local:\n    allow_debug: true\n", err, &p), ALN_OK);
  assert_true(aln_policy_names_kind(p, "local"));
  assert_false(aln_policy_names_kind(p, "sev-snp"));
  assert_false(aln_policy_names_kind(p, NULL));
  aln_policy_free(p);
  /* Flow style and comments are ordinary YAML. */
  assert_int_equal(parse("# a policy\nversion: 1\nkinds: {local: {allow_debug: false}}\n", err, &p), ALN_OK);
  aln_policy_free(p);
}

static void test_refuses_bad_files(void **state) {
  (void)state;
  refused("", ALN_ERR_MALFORMED, "empty");
  refused("version: 1\n", ALN_ERR_MALFORMED, "kinds must be a mapping");
  refused("version: 2\nkinds: {local: {}}\n", ALN_ERR_USAGE, "version must be 1");
  refused("version: 01\nkinds: {local: {}}\n", ALN_ERR_USAGE, "whole number");
  refused("version: 1\nkinds: {}\n", ALN_ERR_USAGE, "names no evidence kind");
  refused("version: 1\nkinds:\n  local:\n    allow_debgu: true\n", ALN_ERR_MALFORMED,
          "line 4: unknown key 'allow_debgu' in kinds.local");
  refused("version: 1\nkinds:\n  local: {allow_debug: yes}\n", ALN_ERR_USAGE, "must be true or false");
  refused("version: 1\nversion: 1\nkinds: {local: {}}\n", ALN_ERR_MALFORMED, "appears twice");
  refused("version: 1\nkinds:\n  local: {}\n  local: {allow_debug: true}\n", ALN_ERR_MALFORMED, "appears twice");
  refused("version: 1\nkinds: {sgx: {}}\n", ALN_ERR_MALFORMED, "unknown key 'sgx' in kinds");
  refused("version: 1\nkinds: {local: &a {}}\n", ALN_ERR_MALFORMED, "anchors");
  /* An alias needs an anchor, which is refused first, at its own line. */
  refused("version: 1\nd: &a 1\nkinds: {local: {allow_debug: *a}}\n", ALN_ERR_MALFORMED, "line 2: anchors");
  refused("version: !!int 1\nkinds: {local: {}}\n", ALN_ERR_MALFORMED, "tags");
  refused("version: 1\nkinds: {local: {}}\n---\nversion: 1\n", ALN_ERR_MALFORMED, "one document");
  refused("version: 1\nkinds: [local]\n", ALN_ERR_MALFORMED, "kinds must be a mapping");
  refused("version: 1\nkinds: {local: {allow_debug: [true]}}\n", ALN_ERR_MALFORMED, "must be a scalar");
  refused("version: 1\nkinds: {local: {\n", ALN_ERR_MALFORMED, "YAML");
  refused("- 1\n- 2\n", ALN_ERR_MALFORMED, "the policy must be a mapping");

  /* A NUL inside a scalar would cut it short as a C string. */
  static const char nul[] = "version: \"1\\0\"\nkinds: {local: {}}\n";
  refused(nul, ALN_ERR_MALFORMED, "NUL");

  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *p = NULL;
  char *big = malloc(ALN_POLICY_FILE_MAX + 2);
  assert_non_null(big);
  memset(big, '#', ALN_POLICY_FILE_MAX + 1);
  big[ALN_POLICY_FILE_MAX + 1] = '\0';
  assert_int_equal(parse(big, err, &p), ALN_ERR_TOO_LARGE);
  free(big);
  assert_int_equal(aln_policy_load(&p, err, "/nonexistent/policy.yaml"), ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_policy_load(&p, err, "/tmp"), ALN_ERR_IO);
  assert_null(p);
}

/* ---- dispatching evidence --------------------------------------------------------- */

static EVP_PKEY *new_key(uint8_t pub[32]) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  size_t len = 32;
  assert_non_null(k);
  assert_int_equal(EVP_PKEY_get_raw_public_key(k, pub, &len), 1);
  return k;
}

static void test_evidence_goes_to_its_kind_and_the_policy_decides(void **state) {
  (void)state;
  uint8_t pub[32], binding[ALN_BINDING_LEN], other[ALN_BINDING_LEN];
  uint8_t *ev = NULL;
  size_t ev_len = 0;
  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *dev = NULL, *prod = NULL;
  struct aln_claims c;
  struct aln_refusal why;
  memset(binding, 0x5a, sizeof(binding));
  memset(other, 0x5b, sizeof(other));
  EVP_PKEY *key = new_key(pub);
  assert_int_equal(aln_local_evidence_make(&ev, &ev_len, key, binding, 1700000000), ALN_OK);
  assert_int_equal(aln_policy_dev(&dev), ALN_OK);
  assert_int_equal(parse("version: 1\nkinds: {local: {allow_debug: false}}\n", err, &prod), ALN_OK);
  struct aln_verify_ctx ctx = {.nonce = binding,
                               .nonce_len = sizeof(binding),
                               .now = 1700000000,
                               .signing_key = pub,
                               .signing_key_len = sizeof(pub)};

  assert_int_equal(aln_evidence_verify(&c, &why, dev, "local", ev, ev_len, &ctx), ALN_OK);
  assert_string_equal(c.kind, "local");
  assert_int_equal(c.debug, 1);
  assert_int_equal(c.nonce_checked, 1);
  assert_int_equal(c.issued_at, 1700000000);
  assert_int_equal(strlen(c.measurement), 64);
  json_t *j = aln_claims_to_json(&c);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "local");
  json_decref(j);
  aln_claims_cleanup(&c);

  /* Debug evidence under a policy that does not allow debug. */
  assert_int_equal(aln_evidence_verify(&c, &why, prod, "local", ev, ev_len, &ctx), ALN_ERR_ATTEST_DEBUG);
  assert_int_equal(why.status, ALN_ERR_ATTEST_DEBUG);
  assert_non_null(strstr(why.why, "debug"));
  /* A kind the policy does not name, or no build verifies. */
  assert_int_equal(aln_evidence_verify(&c, &why, dev, "sev-snp", ev, ev_len, &ctx), ALN_ERR_ATTEST_KIND);
  assert_non_null(strstr(why.why, "not named in the policy"));
  assert_int_equal(aln_evidence_verify(&c, &why, dev, "", ev, ev_len, &ctx), ALN_ERR_ATTEST_KIND);
  /* Another connection's binding, another signing key, no signing key. */
  ctx.nonce = other;
  assert_int_equal(aln_evidence_verify(&c, &why, dev, "local", ev, ev_len, &ctx), ALN_ERR_ATTEST_BINDING);
  ctx.nonce = binding;
  pub[0] ^= 1;
  assert_int_equal(aln_evidence_verify(&c, &why, dev, "local", ev, ev_len, &ctx), ALN_ERR_ATTEST_SIG);
  pub[0] ^= 1;
  ctx.signing_key = NULL;
  assert_int_equal(aln_evidence_verify(&c, &why, dev, "local", ev, ev_len, &ctx), ALN_ERR_ATTEST);
  ctx.signing_key = pub;
  /* Truncated evidence. */
  assert_int_equal(aln_evidence_verify(&c, &why, dev, "local", ev, ev_len - 1, &ctx), ALN_ERR_ATTEST_MALFORMED);
  /* Offline, without a nonce: the signature still holds, the claims say it was not checked. */
  ctx.nonce = NULL;
  ctx.nonce_len = 0;
  assert_int_equal(aln_evidence_verify(&c, &why, dev, "local", ev, ev_len, &ctx), ALN_OK);
  assert_int_equal(c.nonce_checked, 0);
  aln_claims_cleanup(&c);
  pub[5] ^= 1;
  assert_int_equal(aln_evidence_verify(&c, &why, dev, "local", ev, ev_len, &ctx), ALN_ERR_ATTEST_SIG);

  free(ev);
  EVP_PKEY_free(key);
  aln_policy_free(dev);
  aln_policy_free(prod);
}

/* ---- confidential-space -------------------------------------------------------- */

#define OAK_DIGEST "sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34"
#define OAK_IAT 1750688551

/* cs_policy writes a policy naming confidential-space with |debug| and |digest|. */
static aln_status cs_policy(struct aln_policy **out, char err[ALN_POLICY_ERR_MAX], const char *debug,
                            const char *digest, const char *extra) {
  char yaml[2048];
  snprintf(yaml, sizeof(yaml),
           "version: 1\nkinds:\n  confidential-space:\n    audience: https://echo.oak.dev\n"
           "    image_digests: [%s]\n    hwmodels: [GCP_AMD_SEV, GCP_INTEL_TDX]\n    allow_debug: %s\n%s",
           digest, debug, extra);
  return parse(yaml, err, out);
}

static void test_confidential_space_section(void **state) {
  (void)state;
  char err[ALN_POLICY_ERR_MAX], extra[600];
  struct aln_policy *p = NULL;
  assert_int_equal(cs_policy(&p, err, "true", OAK_DIGEST, ""), ALN_OK);
  assert_true(aln_policy_names_kind(p, "confidential-space"));
  assert_false(aln_policy_names_kind(p, "local"));
  aln_policy_free(p);
  snprintf(extra, sizeof(extra), "    root_pem_file: %.500s\n    support_attributes: [STABLE]\n",
           aln_test_path(__FILE__, "data/attestation/confidential-space/confidential_space_root.pem"));
  assert_int_equal(cs_policy(&p, err, "false", OAK_DIGEST, extra), ALN_OK);
  aln_policy_free(p);

  refused("version: 1\nkinds:\n  confidential-space:\n    image_digests: [" OAK_DIGEST "]\n"
          "    hwmodels: [GCP_AMD_SEV]\n",
          ALN_ERR_USAGE, "kinds.confidential-space.audience is required");
  refused("version: 1\nkinds:\n  confidential-space:\n    audience: a\n    image_digests: [sha256:ABC]\n"
          "    hwmodels: [GCP_AMD_SEV]\n",
          ALN_ERR_USAGE, "'sha256:ABC' is not sha256:<64 lowercase hex>");
  refused("version: 1\nkinds:\n  confidential-space:\n    audience: a\n    image_digests: []\n"
          "    hwmodels: [GCP_AMD_SEV]\n",
          ALN_ERR_USAGE, "must list 1 to 64 entries");
  refused("version: 1\nkinds:\n  confidential-space:\n    audience: a\n    image_digests: " OAK_DIGEST "\n"
          "    hwmodels: [GCP_AMD_SEV]\n",
          ALN_ERR_MALFORMED, "must be a list");
  refused("version: 1\nkinds:\n  confidential-space:\n    audience: a\n    image_digests: [" OAK_DIGEST ", " OAK_DIGEST
          "]\n    hwmodels: [GCP_AMD_SEV]\n",
          ALN_ERR_USAGE, "twice");
  refused("version: 1\nkinds:\n  confidential-space:\n    audience: a\n    image_digests: [" OAK_DIGEST "]\n"
          "    hwmodels: [gcp amd]\n",
          ALN_ERR_USAGE, "is not a hardware model name");
  refused("version: 1\nkinds:\n  confidential-space:\n    audience: a\n    image_digests: [" OAK_DIGEST "]\n"
          "    hwmodels: [GCP_AMD_SEV]\n    root_pem_file: /nonexistent.pem\n",
          ALN_ERR_USAGE, "cannot open '/nonexistent.pem'");
  /* a file that is there but holds no PEM (a token from the test data) */
  char yaml[1024];
  snprintf(yaml, sizeof(yaml),
           "version: 1\nkinds:\n  confidential-space:\n    audience: a\n    image_digests: [" OAK_DIGEST "]\n"
           "    hwmodels: [GCP_AMD_SEV]\n    root_pem_file: %.500s\n",
           aln_test_path(__FILE__, "data/attestation/confidential-space/oak_cs_pki_amdsev_debug_2025-06-23.jwt"));
  refused(yaml, ALN_ERR_USAGE, "root or JWKS is not usable");
}

/* The real Confidential Space token through the policy: accepted under a policy
 * that allows its debug image and names its digest, refused otherwise. */
static void test_confidential_space_token_through_the_policy(void **state) {
  (void)state;
  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *p = NULL;
  struct aln_claims c;
  struct aln_refusal why;
  size_t len = 0;
  uint8_t *tok = (uint8_t *)aln_test_slurp(
      __FILE__, "data/attestation/confidential-space/oak_cs_pki_amdsev_debug_2025-06-23.jwt", &len, 1);
  assert_non_null(tok);
  struct aln_verify_ctx ctx = {.now = OAK_IAT + 60, .max_skew_s = 60};

  assert_int_equal(cs_policy(&p, err, "true", OAK_DIGEST, ""), ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "confidential-space", tok, len, &ctx), ALN_OK);
  assert_string_equal(c.kind, "confidential-space");
  assert_string_equal(c.measurement, OAK_DIGEST);
  assert_int_equal(c.debug, 1);
  assert_int_equal(c.nonce_checked, 0);
  aln_claims_cleanup(&c);
  aln_policy_free(p);

  assert_int_equal(cs_policy(&p, err, "false", OAK_DIGEST, ""), ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "confidential-space", tok, len, &ctx), ALN_ERR_ATTEST_DEBUG);
  aln_policy_free(p);
  assert_int_equal(cs_policy(&p, err, "true",
                             "sha256:"
                             "00000000000000000000000000000000"
                             "00000000000000000000000000000000",
                             ""),
                   ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "confidential-space", tok, len, &ctx), ALN_ERR_ATTEST_POLICY);
  /* The policy names confidential-space only: the same token under "local" is refused by kind. */
  assert_int_equal(aln_evidence_verify(&c, &why, p, "local", tok, len, &ctx), ALN_ERR_ATTEST_KIND);
  aln_policy_free(p);
  free(tok);
}

/* ---- sev-snp and tpm ------------------------------------------------------------- */

#define MILAN_MEASUREMENT                                                                                              \
  "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"

static void test_snp_and_tpm_sections(void **state) {
  (void)state;
  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *p = NULL;
  assert_int_equal(parse("version: 1\nkinds:\n  sev-snp:\n    product: Milan\n    measurements: [" MILAN_MEASUREMENT
                         "]\n    min_tcb: {bootloader: 2, tee: 0, snp: 5, microcode: 68}\n    vmpl: [0, 1]\n"
                         "  tpm:\n    ak_names: [000b"
                         "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff]\n"
                         "    pcrs:\n      - {bank: sha256, index: 7, values: ["
                         "0000000000000000000000000000000000000000000000000000000000000000]}\n",
                         err, &p),
                   ALN_OK);
  assert_true(aln_policy_names_kind(p, "sev-snp"));
  assert_true(aln_policy_names_kind(p, "tpm"));
  aln_policy_free(p);

  /* AKs by credential activation: the EK's CA instead of pinned names. */
  char yaml[1024];
  snprintf(yaml, sizeof(yaml),
           "version: 1\nkinds:\n  tpm:\n    ek_ca_file: %.500s\n    pcrs: [{bank: sha256, index: 7, values: ["
           "0000000000000000000000000000000000000000000000000000000000000000]}]\n",
           aln_test_path(__FILE__, "data/attestation/sev-snp/amd_milan_ask_ark.pem"));
  assert_int_equal(parse(yaml, err, &p), ALN_OK);
  assert_non_null(aln_policy_tpm_ek_roots(p));
  static const uint8_t some_name[ALN_POLICY_AK_NAME_LEN] = {0, 0x0b};
  assert_false(aln_policy_tpm_ak_pinned(p, some_name));
  aln_policy_free(p);
  snprintf(yaml, sizeof(yaml),
           "version: 1\nkinds:\n  tpm:\n    ek_ca_file: %.500s\n    pcrs: [{bank: sha256, index: 7, values: ["
           "0000000000000000000000000000000000000000000000000000000000000000]}]\n",
           aln_test_path(__FILE__, "data/attestation/confidential-space/oak_cs_pki_amdsev_debug_2025-06-23.jwt"));
  refused(yaml, ALN_ERR_USAGE, "ek_ca_file holds no PEM certificate");
  refused("version: 1\nkinds:\n  tpm:\n    pcrs: [{bank: sha256, index: 7, values: ["
          "0000000000000000000000000000000000000000000000000000000000000000]}]\n",
          ALN_ERR_USAGE, "kinds.tpm.ak_names is required");

  refused("version: 1\nkinds:\n  sev-snp:\n    product: Naples\n    measurements: [" MILAN_MEASUREMENT "]\n",
          ALN_ERR_USAGE, "product must be Milan, Genoa or Turin");
  refused("version: 1\nkinds:\n  sev-snp:\n    product: Milan\n    measurements: [b07a]\n", ALN_ERR_USAGE,
          "is not 48 bytes of hex");
  refused("version: 1\nkinds:\n  sev-snp:\n    product: Milan\n", ALN_ERR_USAGE, "measurements is required");
  refused("version: 1\nkinds:\n  sev-snp:\n    product: Milan\n    measurements: [" MILAN_MEASUREMENT
          "]\n    min_tcb: {snp: 256}\n",
          ALN_ERR_USAGE, "whole number from 0 to 255");
  refused("version: 1\nkinds:\n  sev-snp:\n    product: Milan\n    measurements: [" MILAN_MEASUREMENT
          "]\n    vmpl: [4]\n",
          ALN_ERR_USAGE, "must be 0, 1, 2 or 3");
  refused("version: 1\nkinds:\n  tpm:\n    ak_names: [00]\n    pcrs: [{bank: sha256, index: 7, values: [00]}]\n",
          ALN_ERR_USAGE, "is not 34 bytes of hex");
  refused("version: 1\nkinds:\n  tpm:\n    ak_names: "
          "[000b00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff]\n",
          ALN_ERR_USAGE, "pcrs must list at least one PCR");
  refused("version: 1\nkinds:\n  tpm:\n    ak_names: "
          "[000b00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff]\n"
          "    pcrs: [{bank: md5, index: 7, values: [00]}]\n",
          ALN_ERR_USAGE, "bank must be sha1, sha256 or sha384");
  refused("version: 1\nkinds:\n  tpm:\n    ak_names: "
          "[000b00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff]\n"
          "    pcrs: [{bank: sha256, index: 32, values: [00]}]\n",
          ALN_ERR_USAGE, "whole number from 0 to 31");
}

/* The real Milan report through the policy (its VCEK in a certificate directory, as
 * `aileron evidence verify --certs DIR` passes it), and a real swtpm quote refused
 * through the policy for an AK the policy does not enroll. */
static void test_snp_and_tpm_evidence_through_the_policy(void **state) {
  (void)state;
  char err[ALN_POLICY_ERR_MAX], dir[] = "/tmp/aln-policy-certs-XXXXXX", vcek[128];
  struct aln_policy *p = NULL;
  struct aln_claims c;
  struct aln_refusal why;
  size_t len = 0, vlen = 0;
  uint8_t *report =
      (uint8_t *)aln_test_slurp(__FILE__, "data/attestation/sev-snp/gosevguest_milan_report.bin", &len, 0);
  uint8_t *cert = (uint8_t *)aln_test_slurp(__FILE__, "data/attestation/sev-snp/gosevguest_milan_vcek.der", &vlen, 0);
  assert_non_null(mkdtemp(dir));
  snprintf(vcek, sizeof(vcek), "%s/vcek.der", dir);
  FILE *f = fopen(vcek, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(cert, 1, vlen, f), vlen);
  fclose(f);
  static const uint8_t nonce[5] = {1, 2, 3, 4, 5};
  struct aln_verify_ctx ctx = {.nonce = nonce, .nonce_len = 5, .now = 1700000000, .certs_dir = dir};
  assert_int_equal(parse("version: 1\nkinds:\n  sev-snp:\n    product: Milan\n    measurements: [" MILAN_MEASUREMENT
                         "]\n    min_tcb: {bootloader: 2, tee: 0, snp: 5, microcode: 68}\n    allow_debug: true\n",
                         err, &p),
                   ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "sev-snp", report, len, &ctx), ALN_OK);
  assert_string_equal(c.kind, "sev-snp");
  assert_string_equal(c.measurement, MILAN_MEASUREMENT);
  assert_int_equal(c.debug, 1); /* the sample's guest policy 0xb0000 has DEBUG (bit 19) set */
  aln_claims_cleanup(&c);
  aln_policy_free(p);
  /* ... so a production policy refuses it. */
  assert_int_equal(
      parse("version: 1\nkinds:\n  sev-snp:\n    product: Milan\n    measurements: [" MILAN_MEASUREMENT "]\n", err, &p),
      ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "sev-snp", report, len, &ctx), ALN_ERR_ATTEST_DEBUG);
  aln_policy_free(p);
  /* The same report under a policy wanting a newer SNP firmware. */
  assert_int_equal(parse("version: 1\nkinds:\n  sev-snp:\n    product: Milan\n    measurements: [" MILAN_MEASUREMENT
                         "]\n    min_tcb: {snp: 6}\n    allow_debug: true\n",
                         err, &p),
                   ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "sev-snp", report, len, &ctx), ALN_ERR_ATTEST_POLICY);
  aln_policy_free(p);
  unlink(vcek);
  rmdir(dir);
  free(cert);
  free(report);

  uint8_t *quote = (uint8_t *)aln_test_slurp(__FILE__, "fuzz/corpus/tpm_attest/tpm2-quote-ecdsa", &len, 0);
  assert_int_equal(parse("version: 1\nkinds:\n  tpm:\n    ak_names: [000b00112233445566778899aabbccddeeff00112233"
                         "445566778899aabbccddeeff]\n    pcrs: [{bank: sha256, index: 16, values: ["
                         "0000000000000000000000000000000000000000000000000000000000000000]}]\n",
                         err, &p),
                   ALN_OK);
  ctx = (struct aln_verify_ctx){.now = 1700000000};
  assert_int_equal(aln_evidence_verify(&c, &why, p, "tpm", quote, len, &ctx), ALN_ERR_ATTEST_CHAIN);
  assert_non_null(strstr(why.why, "is not enrolled in the policy"));
  aln_policy_free(p);
  free(quote);
}

/* ---- aws-nitro ------------------------------------------------------------------- */

#define NITRO_PCR3 "4a9329d69c836267b18abbf9f4a38889124490453419e426818626348d21f989dc930b1562682a9082887454e53425aa"
#define NITRO_ZERO "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

static void test_nitro_section_and_the_real_document(void **state) {
  (void)state;
  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *p = NULL;
  struct aln_claims c;
  struct aln_refusal why;
  size_t len = 0;
  uint8_t *doc = (uint8_t *)aln_test_slurp(__FILE__, "data/attestation/nitro/evervault_ga_2023-09-18.bin", &len, 0);
  struct aln_verify_ctx ctx = {.now = 1695049410};

  assert_int_equal(parse("version: 1\nkinds:\n  aws-nitro:\n    pcrs:\n      - {index: 3, values: [" NITRO_PCR3
                         "]}\n    allow_debug: true\n",
                         err, &p),
                   ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "aws-nitro", doc, len, &ctx), ALN_OK);
  assert_string_equal(c.kind, "aws-nitro");
  assert_string_equal(c.measurement, NITRO_ZERO); /* PCR0: a debug enclave */
  assert_int_equal(c.debug, 1);
  aln_claims_cleanup(&c);
  aln_policy_free(p);
  /* Debug refused by default; another PCR3 refused; one second past the leaf. */
  assert_int_equal(
      parse("version: 1\nkinds:\n  aws-nitro:\n    pcrs: [{index: 3, values: [" NITRO_PCR3 "]}]\n", err, &p), ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "aws-nitro", doc, len, &ctx), ALN_ERR_ATTEST_DEBUG);
  aln_policy_free(p);
  assert_int_equal(parse("version: 1\nkinds:\n  aws-nitro:\n    pcrs: [{index: 3, values: [" NITRO_ZERO
                         "]}]\n    allow_debug: true\n",
                         err, &p),
                   ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "aws-nitro", doc, len, &ctx), ALN_ERR_ATTEST_POLICY);
  aln_policy_free(p);
  /* A swapped root (another certificate's PEM) breaks the chain. */
  char extra[700];
  snprintf(extra, sizeof(extra),
           "version: 1\nkinds:\n  aws-nitro:\n    pcrs: [{index: 3, values: [" NITRO_PCR3 "]}]\n    allow_debug: "
           "true\n    root_pem_file: %.400s\n",
           aln_test_path(__FILE__, "data/attestation/confidential-space/confidential_space_root.pem"));
  assert_int_equal(parse(extra, err, &p), ALN_OK);
  assert_int_equal(aln_evidence_verify(&c, &why, p, "aws-nitro", doc, len, &ctx), ALN_ERR_ATTEST_CHAIN);
  aln_policy_free(p);
  free(doc);

  refused("version: 1\nkinds:\n  aws-nitro:\n    allow_debug: true\n", ALN_ERR_USAGE, "must list at least one PCR");
  refused("version: 1\nkinds:\n  aws-nitro:\n    pcrs: [{index: 32, values: [" NITRO_ZERO "]}]\n", ALN_ERR_USAGE,
          "whole number from 0 to 31");
  refused("version: 1\nkinds:\n  aws-nitro:\n    pcrs: [{index: 0, values: [00]}]\n", ALN_ERR_USAGE,
          "is not 48 bytes of hex");
  refused("version: 1\nkinds:\n  aws-nitro:\n    pcrs: [{index: 0, values: [" NITRO_ZERO
          "]}, {index: 0, values: [" NITRO_PCR3 "]}]\n",
          ALN_ERR_USAGE, "names PCR 0 twice");
  refused("version: 1\nkinds:\n  aws-nitro:\n    pcrs: [{index: 0, values: [" NITRO_ZERO "]}]\n    binding: pcr\n",
          ALN_ERR_USAGE, "binding must be nonce or user_data");
}

/* A refusal reason quotes unvouched evidence: it carries no control bytes to the
 * terminal or log that prints it. */
static void test_refusal_reasons_are_printable(void **state) {
  (void)state;
  struct aln_refusal why;
  assert_int_equal(aln_refuse(&why, ALN_ERR_ATTEST_SIG, "alg %s refused", "RS\x1b[2J\n\xff"), ALN_ERR_ATTEST_SIG);
  assert_string_equal(why.why, "alg RS?[2J?? refused");
  assert_int_equal(why.status, ALN_ERR_ATTEST_SIG);
  assert_int_equal(aln_refuse(NULL, ALN_ERR_ATTEST, "x"), ALN_ERR_ATTEST);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accepts_a_local_policy),
      cmocka_unit_test(test_refuses_bad_files),
      cmocka_unit_test(test_evidence_goes_to_its_kind_and_the_policy_decides),
      cmocka_unit_test(test_refusal_reasons_are_printable),
      cmocka_unit_test(test_confidential_space_section),
      cmocka_unit_test(test_confidential_space_token_through_the_policy),
      cmocka_unit_test(test_snp_and_tpm_sections),
      cmocka_unit_test(test_snp_and_tpm_evidence_through_the_policy),
      cmocka_unit_test(test_nitro_section_and_the_real_document),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
