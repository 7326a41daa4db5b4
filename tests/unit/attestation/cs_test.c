/* Tests for the Confidential Space appraisal (attestation/cs.h): the real PKI
 * token from tests/data accepted at its stated time with its expected claims and
 * refused past it, before it, with a bad signature, a flipped byte, a swapped root,
 * a wrong nonce or audience, or under a production policy; OIDC tokens built and
 * signed here (one defect each) for the claim checks the real token cannot reach;
 * and the producer against a fake TEE server (Python's http.server on a unix
 * socket) started by the test. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attestation/cs.h"
#include "proto/base64.h"
#include "tests/unit/attestation/cs_fixtures.h"
#include "tests/unit/test_files.h"

#define OAK_NBF 1750688551
#define OAK_EXP 1750692151
#define OAK_AUD "https://echo.oak.dev"
#define OAK_DIGEST "sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34"
#define GOOD_DIGEST "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define NOW 1800000000
#define AUD "https://aileron.test/attest"
/* The third copy of the root pin (cs.h and cs_root.c hold the others). */
#define ROOT_SHA256_HEX "148b293821bb0c6a317f413c8ba475814091cb22d49b9e3c94198db8e8f86c39"

static EVP_PKEY *key_a;
static char *jwks_a, *oak_token, *oak_root_pem, *other_root_pem;
static size_t oak_len;
static uint8_t binding[32];
static char binding_hex[65];

static const char *const oak_digests[] = {OAK_DIGEST, NULL};
static const char *const good_digests[] = {GOOD_DIGEST, OAK_DIGEST, NULL};
static const char *const amd[] = {"GCP_AMD_SEV", NULL};
static const char *const amd_tdx[] = {"GCP_AMD_SEV", "GCP_INTEL_TDX", NULL};
static const char *const stable[] = {"STABLE", NULL};

/* --- fixtures -------------------------------------------------------------------- */

/* sign_json returns an RS256 token with header {"alg":"RS256","kid":"a","typ":"JWT"}
 * over |claims| (which it releases), signed by key_a. */
static char *sign_json(json_t *claims) {
  const char *hdr = "{\"alg\":\"RS256\",\"kid\":\"a\",\"typ\":\"JWT\"}";
  char *payload = json_dumps(claims, JSON_COMPACT);
  json_decref(claims);
  assert_non_null(payload);
  char *h = b64url(hdr, strlen(hdr)), *p = b64url(payload, strlen(payload));
  size_t si_len = strlen(h) + 1 + strlen(p);
  char *tok = malloc(si_len + 400);
  assert_non_null(tok);
  sprintf(tok, "%s.%s.", h, p);
  uint8_t sig[256];
  size_t sig_len = sizeof(sig);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_non_null(md);
  assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key_a), 1);
  assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (const uint8_t *)tok, si_len), 1);
  EVP_MD_CTX_free(md);
  char *s = b64url(sig, sig_len);
  strcat(tok, s);
  free(s);
  free(h);
  free(p);
  free(payload);
  return tok;
}

/* good_claims: what a production Confidential Space token for this test says. */
static json_t *good_claims(void) {
  json_t *c = json_pack(
      "{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:b, s:i, s:s, s:s, s:[s], s:s,"
      " s:{s:{s:[s,s,s]}, s:{s:s, s:s}}, s:[s]}",
      "iss", ALN_CS_ISSUER, "aud", AUD, "exp", (json_int_t)NOW + 3600, "iat", (json_int_t)NOW - 60, "nbf",
      (json_int_t)NOW - 60, "sub", "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i", "eat_nonce",
      binding_hex, "secboot", 1, "oemid", 11129, "hwmodel", "GCP_INTEL_TDX", "swname", ALN_CS_SWNAME, "swversion",
      "250301", "dbgstat", ALN_CS_DBGSTAT_PROD, "submods", "confidential_space", "support_attributes", "LATEST",
      "STABLE", "USABLE", "container", "image_reference", "europe-docker.pkg.dev/p/r/aileron-enclave:1", "image_digest",
      GOOD_DIGEST, "google_service_accounts", "enclave@p.iam.gserviceaccount.com");
  assert_non_null(c);
  return c;
}

static struct aln_cs_policy prod_policy(void) {
  return (struct aln_cs_policy){.audience = AUD,
                                .image_digests = good_digests,
                                .hwmodels = amd_tdx,
                                .support_attributes = stable,
                                .jwks_json = jwks_a};
}

static struct aln_cs_policy oak_policy(void) {
  return (struct aln_cs_policy){
      .audience = OAK_AUD, .image_digests = oak_digests, .hwmodels = amd, .allow_debug = 1, .root_pem = oak_root_pem};
}

static struct aln_verify_ctx ctx_at(int64_t now, int64_t skew, bool with_nonce) {
  return (struct aln_verify_ctx){.nonce = with_nonce ? binding : NULL,
                                 .nonce_len = with_nonce ? sizeof(binding) : 0,
                                 .now = now,
                                 .max_skew_s = skew};
}

static int group_setup(void **state) {
  (void)state;
  key_a = EVP_RSA_gen(2048);
  if (key_a == NULL)
    return -1;
  char *n = bn_b64url(key_a, OSSL_PKEY_PARAM_RSA_N);
  jwks_a = malloc(strlen(n) + 100);
  sprintf(jwks_a, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n);
  free(n);
  for (size_t i = 0; i < sizeof(binding); i++) {
    binding[i] = (uint8_t)(0xa0 + i);
    sprintf(binding_hex + 2 * i, "%02x", binding[i]);
  }
  oak_token = sample("oak_cs_pki_amdsev_debug_2025-06-23.jwt", &oak_len);
  oak_root_pem = sample("confidential_space_root.pem", NULL);
  other_root_pem = sample("other_root_same_name.pem", NULL);
  return oak_token != NULL && oak_root_pem != NULL && other_root_pem != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(key_a);
  free(jwks_a);
  free(oak_token);
  free(oak_root_pem);
  free(other_root_pem);
  return 0;
}

/* refused asserts that |tok| is refused with |st| (reason containing |frag|) and
 * that the claims were left untouched. */
static void refused_len(const char *tok, size_t len, const struct aln_cs_policy *p, const struct aln_verify_ctx *ctx,
                        aln_status st, const char *frag) {
  struct aln_claims out;
  struct aln_refusal why = {0};
  memset(&out, 0x5a, sizeof(out));
  aln_status got = aln_cs_verify(&out, &why, (const uint8_t *)tok, len, p, ctx);
  if (got != st)
    fail_msg("expected %s, got %s (%s)", aln_status_name(st), aln_status_name(got), why.why);
  assert_int_equal(why.status, st);
  if (frag != NULL && strstr(why.why, frag) == NULL)
    fail_msg("reason \"%s\" does not mention \"%s\"", why.why, frag);
  uint8_t untouched[sizeof(out)];
  memset(untouched, 0x5a, sizeof(untouched));
  assert_memory_equal(&out, untouched, sizeof(out));
}

static void refused(const char *tok, const struct aln_cs_policy *p, const struct aln_verify_ctx *ctx, aln_status st,
                    const char *frag) {
  refused_len(tok, strlen(tok), p, ctx, st, frag);
}

static void accepted(struct aln_claims *out, const char *tok, const struct aln_cs_policy *p,
                     const struct aln_verify_ctx *ctx) {
  struct aln_refusal why = {0};
  aln_status st = aln_cs_verify(out, &why, (const uint8_t *)tok, strlen(tok), p, ctx);
  if (st != ALN_OK)
    fail_msg("refused: %s (%s)", aln_status_name(st), why.why);
}

/* claims_refused signs |claims| and expects refusal under the production policy. */
static void claims_refused(json_t *claims, aln_status st, const char *frag) {
  struct aln_cs_policy p = prod_policy();
  struct aln_verify_ctx ctx = ctx_at(NOW, 60, true);
  char *tok = sign_json(claims);
  refused(tok, &p, &ctx, st, frag);
  free(tok);
}

/* --- the pinned root --------------------------------------------------------------- */

static void test_builtin_root_is_the_pinned_one(void **state) {
  (void)state;
  const char *pems[] = {aln_cs_root_pem, oak_root_pem};
  for (size_t i = 0; i < 2; i++) {
    BIO *bio = BIO_new_mem_buf(pems[i], -1);
    X509 *c = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(c);
    uint8_t *der = NULL, md[32];
    int len = i2d_X509(c, &der);
    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL), 1);
    char hex[65];
    for (size_t j = 0; j < 32; j++)
      sprintf(hex + 2 * j, "%02x", md[j]);
    assert_string_equal(hex, ROOT_SHA256_HEX);
    assert_memory_equal(md, aln_cs_root_sha256, 32);
    OPENSSL_free(der);
    X509_free(c);
    BIO_free(bio);
  }
}

/* --- the real PKI token -------------------------------------------------------------- */

static void check_oak_claims(const struct aln_claims *c) {
  assert_string_equal(c->kind, "confidential-space");
  assert_int_equal(c->debug, 1);
  assert_int_equal(c->nonce_checked, 0);
  assert_string_equal(c->measurement, OAK_DIGEST);
  assert_int_equal(c->issued_at, OAK_NBF);
  assert_int_equal(c->expires_at, OAK_EXP);
  const json_t *d = c->detail;
  assert_string_equal(json_string_value(json_object_get(d, "token_type")), "PKI");
  assert_string_equal(json_string_value(json_object_get(d, "aud")), OAK_AUD);
  assert_string_equal(json_string_value(json_object_get(d, "iss")), ALN_CS_ISSUER);
  assert_string_equal(json_string_value(json_object_get(d, "hwmodel")), "GCP_AMD_SEV");
  assert_string_equal(json_string_value(json_object_get(d, "swname")), "CONFIDENTIAL_SPACE");
  assert_string_equal(json_string_value(json_object_get(d, "dbgstat")), "enabled");
  assert_string_equal(json_string_value(json_object_get(d, "image_digest")), OAK_DIGEST);
  assert_string_equal(json_string_value(json_object_get(d, "eat_nonce")), "a nonce between 10 and 74 characters");
  assert_string_equal(json_string_value(json_array_get(json_object_get(d, "swversion"), 0)), "250301");
  assert_true(json_is_true(json_object_get(d, "secboot")));
  assert_int_equal(json_array_size(json_object_get(d, "support_attributes")), 0);
  assert_string_equal(json_string_value(json_array_get(json_object_get(d, "google_service_accounts"), 0)),
                      "691249393555-compute@developer.gserviceaccount.com");
  assert_string_equal(json_string_value(json_object_get(d, "image_reference")),
                      "europe-west2-docker.pkg.dev/oak-ci/example-enclave-apps/echo_enclave_app:latest");
}

static void test_oak_token_accepted_under_debug_policy(void **state) {
  (void)state;
  struct aln_cs_policy p = oak_policy();
  struct aln_verify_ctx ctx = ctx_at(OAK_NBF + 1800, 0, false);
  struct aln_claims c = {0};
  accepted(&c, oak_token, &p, &ctx);
  check_oak_claims(&c);
  json_t *j = aln_claims_to_json(&c);
  assert_non_null(j);
  json_decref(j);
  aln_claims_cleanup(&c);
  /* The same with the root built in (policy names none). */
  p.root_pem = NULL;
  accepted(&c, oak_token, &p, &ctx);
  check_oak_claims(&c);
  aln_claims_cleanup(&c);
  /* And with trust prepared once. */
  struct aln_jwt_keys *keys = NULL;
  assert_int_equal(aln_cs_keys_new(&keys, &p), ALN_OK);
  p.keys = keys;
  p.root_pem = "not a PEM: ignored when keys are given";
  accepted(&c, oak_token, &p, &ctx);
  aln_claims_cleanup(&c);
  aln_jwt_keys_free(keys);
}

static void test_oak_token_refused_under_production_policy(void **state) {
  (void)state;
  struct aln_cs_policy p = oak_policy();
  p.allow_debug = 0;
  struct aln_verify_ctx ctx = ctx_at(OAK_NBF + 1800, 0, false);
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_DEBUG, "dbgstat");
}

static void test_oak_token_validity_window(void **state) {
  (void)state;
  struct aln_cs_policy p = oak_policy();
  struct aln_claims c = {0};
  struct aln_verify_ctx ctx = ctx_at(OAK_EXP - 1, 0, false);
  accepted(&c, oak_token, &p, &ctx);
  aln_claims_cleanup(&c);
  ctx = ctx_at(OAK_EXP, 0, false); /* exp is the first second it is not valid */
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_EXPIRED, "expired");
  ctx = ctx_at(OAK_EXP + 1, 0, false);
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_EXPIRED, "expired");
  /* Skew stretches both ends by exactly its size. */
  ctx = ctx_at(OAK_EXP + 29, 30, false);
  accepted(&c, oak_token, &p, &ctx);
  aln_claims_cleanup(&c);
  ctx = ctx_at(OAK_EXP + 30, 30, false);
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_EXPIRED, "expired");
  ctx = ctx_at(OAK_NBF, 0, false);
  accepted(&c, oak_token, &p, &ctx);
  aln_claims_cleanup(&c);
  ctx = ctx_at(OAK_NBF - 30, 30, false);
  accepted(&c, oak_token, &p, &ctx);
  aln_claims_cleanup(&c);
  ctx = ctx_at(OAK_NBF - 31, 30, false);
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_EXPIRED, "not valid before");
  ctx = ctx_at(OAK_NBF - 1, 0, false);
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_EXPIRED, "not valid before");
}

static void test_oak_invalid_signature_twin_refused(void **state) {
  (void)state;
  struct aln_cs_policy p = oak_policy();
  struct aln_verify_ctx ctx = ctx_at(OAK_NBF + 1800, 0, false);
  char *bad = sample("oak_cs_pki_amdsev_INVALID_SIGNATURE.jwt", NULL);
  assert_non_null(bad);
  refused(bad, &p, &ctx, ALN_ERR_ATTEST_SIG, "signature");
  free(bad);
}

static void test_oak_flipped_byte_in_each_segment(void **state) {
  (void)state;
  struct aln_cs_policy p = oak_policy();
  struct aln_verify_ctx ctx = ctx_at(OAK_NBF + 1800, 0, false);
  const char *dot1 = strchr(oak_token, '.'), *dot2 = strchr(dot1 + 1, '.');
  size_t flips[] = {
      (size_t)(dot1 - oak_token) - 10,  /* header: the end of the x5c root certificate */
      100,                              /* header: inside the leaf certificate */
      (size_t)(dot1 - oak_token) + 300, /* payload */
      (size_t)(dot2 - oak_token) + 100, /* signature */
  };
  for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
    char *t = strdup(oak_token);
    t[flips[i]] = t[flips[i]] == 'Q' ? 'R' : 'Q';
    struct aln_claims out;
    struct aln_refusal why = {0};
    aln_status st = aln_cs_verify(&out, &why, (const uint8_t *)t, oak_len, &p, &ctx);
    if (aln_status_category(st) != ALN_CAT_ATTEST)
      fail_msg("flip at %zu accepted or misfiled: %s (%s)", flips[i], aln_status_name(st), why.why);
    free(t);
  }
}

static void test_oak_swapped_root_refused(void **state) {
  (void)state;
  struct aln_cs_policy p = oak_policy();
  p.root_pem = other_root_pem;
  struct aln_verify_ctx ctx = ctx_at(OAK_NBF + 1800, 0, false);
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_CHAIN, "not trusted");
}

static void test_oak_wrong_nonce_or_audience_refused(void **state) {
  (void)state;
  struct aln_cs_policy p = oak_policy();
  struct aln_verify_ctx ctx = ctx_at(OAK_NBF + 1800, 0, true);
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_BINDING, "binding");
  ctx = ctx_at(OAK_NBF + 1800, 0, false);
  p.audience = "https://echo.oak.dev/";
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_POLICY, "aud");
}

static void test_oak_policy_mismatches_refused(void **state) {
  (void)state;
  struct aln_verify_ctx ctx = ctx_at(OAK_NBF + 1800, 0, false);
  struct aln_cs_policy p = oak_policy();
  static const char *const other_digest[] = {GOOD_DIGEST, NULL};
  p.image_digests = other_digest;
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_POLICY, "image digest");
  p = oak_policy();
  static const char *const tdx[] = {"GCP_INTEL_TDX", NULL};
  p.hwmodels = tdx;
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_POLICY, "hwmodel");
  p = oak_policy();
  p.support_attributes = stable; /* a debug image carries no support attributes */
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_POLICY, "STABLE");
  /* A policy with a JWKS beside another root: the PKI token is judged on its
   * chain alone, a JWKS key never stands in for the root. */
  p = oak_policy();
  p.root_pem = other_root_pem;
  p.jwks_json = jwks_a;
  refused(oak_token, &p, &ctx, ALN_ERR_ATTEST_CHAIN, "not trusted");
}

/* --- tokens made here: the claim checks ------------------------------------------------ */

static void test_oidc_token_with_binding_accepted(void **state) {
  (void)state;
  struct aln_cs_policy p = prod_policy();
  struct aln_verify_ctx ctx = ctx_at(NOW, 60, true);
  struct aln_claims c = {0};
  char *tok = sign_json(good_claims());
  accepted(&c, tok, &p, &ctx);
  assert_string_equal(c.kind, ALN_CS_KIND);
  assert_int_equal(c.debug, 0);
  assert_int_equal(c.nonce_checked, 1);
  assert_string_equal(c.measurement, GOOD_DIGEST);
  assert_int_equal(c.issued_at, NOW - 60);
  assert_int_equal(c.expires_at, NOW + 3600);
  assert_string_equal(json_string_value(json_object_get(c.detail, "token_type")), "OIDC");
  assert_int_equal(json_array_size(json_object_get(c.detail, "support_attributes")), 3);
  aln_claims_cleanup(&c);
  free(tok);
  /* The binding as one member of an array of nonces. */
  json_t *claims = good_claims();
  json_object_set_new(claims, "eat_nonce", json_pack("[s,s]", "some-other-nonce-0123", binding_hex));
  tok = sign_json(claims);
  accepted(&c, tok, &p, &ctx);
  aln_claims_cleanup(&c);
  free(tok);
  /* Without a JWKS the OIDC token has no key. */
  p.jwks_json = NULL;
  tok = sign_json(good_claims());
  refused(tok, &p, &ctx, ALN_ERR_ATTEST_CHAIN, "unknown kid");
  free(tok);
}

static void test_eat_nonce_rules(void **state) {
  (void)state;
  json_t *c = good_claims();
  json_object_del(c, "eat_nonce");
  claims_refused(c, ALN_ERR_ATTEST_BINDING, "no eat_nonce");
  char upper[65];
  for (size_t i = 0; i < 64; i++)
    upper[i] = (char)(binding_hex[i] >= 'a' ? binding_hex[i] - 32 : binding_hex[i]);
  upper[64] = '\0';
  c = good_claims();
  json_object_set_new(c, "eat_nonce", json_string(upper)); /* hex has one spelling: lowercase */
  claims_refused(c, ALN_ERR_ATTEST_BINDING, "binding");
  c = good_claims();
  char longer[70];
  snprintf(longer, sizeof(longer), "%s00", binding_hex); /* a prefix match is no match */
  json_object_set_new(c, "eat_nonce", json_string(longer));
  claims_refused(c, ALN_ERR_ATTEST_BINDING, "binding");
  c = good_claims();
  json_object_set_new(c, "eat_nonce", json_pack("[s,s,s,s,s,s,s]", "n1", "n2", "n3", "n4", "n5", "n6", binding_hex));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "eat_nonce");
  c = good_claims();
  json_object_set_new(c, "eat_nonce", json_integer(7));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "eat_nonce");
  c = good_claims();
  json_object_set_new(c, "eat_nonce", json_array());
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "eat_nonce");
}

static void test_claim_checks(void **state) {
  (void)state;
  json_t *c = good_claims();
  json_object_set_new(c, "iss", json_string("https://accounts.google.com"));
  claims_refused(c, ALN_ERR_ATTEST_POLICY, "iss");
  c = good_claims();
  json_object_set_new(c, "aud", json_string("https://someone.else"));
  claims_refused(c, ALN_ERR_ATTEST_POLICY, "aud");
  c = good_claims();
  json_object_set_new(c, "aud", json_pack("[s]", AUD));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "aud");
  c = good_claims();
  json_object_set_new(c, "swname", json_string("GCE"));
  claims_refused(c, ALN_ERR_ATTEST_POLICY, "swname");
  c = good_claims();
  json_object_set_new(c, "dbgstat", json_string("enabled"));
  claims_refused(c, ALN_ERR_ATTEST_DEBUG, "debug");
  c = good_claims();
  json_object_set_new(c, "dbgstat", json_string("disabled"));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "dbgstat");
  c = good_claims();
  json_object_set_new(c, "secboot", json_false());
  claims_refused(c, ALN_ERR_ATTEST_POLICY, "secboot");
  c = good_claims();
  json_object_set_new(c, "secboot", json_string("true"));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "secboot");
  c = good_claims();
  json_object_set_new(c, "hwmodel", json_string("GCP_SHIELDED_VM"));
  claims_refused(c, ALN_ERR_ATTEST_POLICY, "hwmodel");
  c = good_claims();
  json_object_set_new(json_object_get(json_object_get(c, "submods"), "container"), "image_digest",
                      json_string("sha256:2222222222222222222222222222222222222222222222222222222222222222"));
  claims_refused(c, ALN_ERR_ATTEST_POLICY, "image digest");
  c = good_claims();
  json_object_set_new(json_object_get(json_object_get(c, "submods"), "container"), "image_digest",
                      json_string("sha256:ABCD"));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "image_digest");
  c = good_claims();
  json_object_del(c, "submods");
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "image_digest");
  c = good_claims();
  json_object_set_new(json_object_get(json_object_get(c, "submods"), "confidential_space"), "support_attributes",
                      json_pack("[s]", "EXPERIMENTAL"));
  claims_refused(c, ALN_ERR_ATTEST_POLICY, "STABLE");
  c = good_claims();
  json_object_del(json_object_get(json_object_get(c, "submods"), "confidential_space"), "support_attributes");
  claims_refused(c, ALN_ERR_ATTEST_POLICY, "STABLE");
  c = good_claims();
  json_object_set_new(json_object_get(json_object_get(c, "submods"), "confidential_space"), "support_attributes",
                      json_string("STABLE"));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "support_attributes");
}

static void test_time_claims(void **state) {
  (void)state;
  json_t *c = good_claims();
  json_object_set_new(c, "exp", json_string("1800003600"));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "exp");
  c = good_claims();
  json_object_set_new(c, "exp", json_real(1800003600.5));
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "exp");
  c = good_claims();
  json_object_del(c, "nbf");
  claims_refused(c, ALN_ERR_ATTEST_MALFORMED, "nbf");
  c = good_claims();
  json_object_set_new(c, "exp", json_integer(NOW - 61)); /* skew is 60 */
  claims_refused(c, ALN_ERR_ATTEST_EXPIRED, "expired");
  c = good_claims();
  json_object_set_new(c, "iat", json_integer(NOW + 61));
  claims_refused(c, ALN_ERR_ATTEST_EXPIRED, "future");
  c = good_claims();
  json_object_set_new(c, "nbf", json_integer(NOW + 61));
  claims_refused(c, ALN_ERR_ATTEST_EXPIRED, "not valid before");
  /* Extreme integers are compared, never added to: no overflow either way. */
  c = good_claims();
  json_object_set_new(c, "exp", json_integer(INT64_MIN));
  claims_refused(c, ALN_ERR_ATTEST_EXPIRED, "expired");
  c = good_claims();
  json_object_set_new(c, "nbf", json_integer(INT64_MAX));
  claims_refused(c, ALN_ERR_ATTEST_EXPIRED, "not valid before");
}

static void test_usage(void **state) {
  (void)state;
  struct aln_cs_policy p = prod_policy();
  struct aln_verify_ctx ctx = ctx_at(NOW, 60, true);
  char *tok = sign_json(good_claims());
  struct aln_claims out;
  struct aln_refusal why;
  assert_int_equal(aln_cs_verify(NULL, &why, (const uint8_t *)tok, strlen(tok), &p, &ctx), ALN_ERR_USAGE);
  assert_int_equal(aln_cs_verify(&out, &why, (const uint8_t *)tok, strlen(tok), NULL, &ctx), ALN_ERR_USAGE);
  assert_int_equal(aln_cs_verify(&out, &why, (const uint8_t *)tok, strlen(tok), &p, NULL), ALN_ERR_USAGE);
  ctx.nonce_len = ALN_CS_NONCE_MIN - 1;
  refused(tok, &p, &ctx, ALN_ERR_USAGE, "nonce");
  ctx.nonce_len = ALN_CS_NONCE_MAX + 1;
  refused(tok, &p, &ctx, ALN_ERR_USAGE, "nonce");
  ctx = ctx_at(NOW, ALN_CS_MAX_SKEW_S + 1, true);
  refused(tok, &p, &ctx, ALN_ERR_USAGE, "skew");
  ctx = ctx_at(NOW, 60, true);
  static const char *const none[] = {NULL};
  p.image_digests = none;
  refused(tok, &p, &ctx, ALN_ERR_USAGE, "image digest");
  p = prod_policy();
  p.audience = "";
  refused(tok, &p, &ctx, ALN_ERR_USAGE, "audience");
  p = prod_policy();
  p.jwks_json = "{\"keys\":[]}";
  refused(tok, &p, &ctx, ALN_ERR_USAGE, "JWKS");
  p = prod_policy();
  p.root_pem = "junk";
  refused(tok, &p, &ctx, ALN_ERR_USAGE, "root");
  free(tok);
}

/* --- the producer against a fake TEE server ------------------------------------------------ */

/* The fake launcher: serves one request on a unix socket, records it as JSON, and
 * answers as |mode| says (file:PATH the bytes of PATH; status 400; huge N bytes;
 * html a page that is no token). */
static const char *const fake_tee_server =
    "import http.server, json, socketserver, sys\n"
    "sock, mode, rec, ready = sys.argv[1:5]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "    def address_string(self):\n"
    "        return 'unix'\n"
    "    def do_POST(self):\n"
    "        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))\n"
    "        with open(rec, 'w') as f:\n"
    "            json.dump({'path': self.path, 'ctype': self.headers.get('Content-Type'),\n"
    "                       'body': body.decode()}, f)\n"
    "        code = 200\n"
    "        if mode.startswith('file:'):\n"
    "            out = open(mode[5:], 'rb').read()\n"
    "        elif mode == 'status':\n"
    "            code, out = 400, b'failed to parse POST body as TokenOptions'\n"
    "        elif mode.startswith('huge:'):\n"
    "            out = b'A' * int(mode[5:])\n"
    "        else:\n"
    "            out = b'<html>no token</html>'\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Type', 'text/html')\n"
    "        self.send_header('Content-Length', str(len(out)))\n"
    "        self.end_headers()\n"
    "        try:\n"
    "            self.wfile.write(out)\n"
    "        except (BrokenPipeError, ConnectionResetError):\n"
    "            pass\n"
    "srv = socketserver.UnixStreamServer(sock, H)\n"
    "open(ready, 'w').close()\n"
    "srv.handle_request()\n";

struct fake_tee {
  char dir[64], sock[96], rec[96], ready[96];
  pid_t pid;
};

static void fake_tee_start(struct fake_tee *f, const char *mode) {
  snprintf(f->dir, sizeof(f->dir), "/tmp/aln-cs-test.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->sock, sizeof(f->sock), "%s/teeserver.sock", f->dir);
  snprintf(f->rec, sizeof(f->rec), "%s/request.json", f->dir);
  snprintf(f->ready, sizeof(f->ready), "%s/ready", f->dir);
  f->pid = fork();
  assert_true(f->pid >= 0);
  if (f->pid == 0) {
    execlp("python3", "python3", "-c", fake_tee_server, f->sock, mode, f->rec, f->ready, (char *)NULL);
    _exit(127);
  }
  struct stat sb;
  for (int i = 0; i < 1000 && stat(f->ready, &sb) != 0; i++) {
    int status;
    if (waitpid(f->pid, &status, WNOHANG) == f->pid)
      fail_msg("fake TEE server exited before it was ready (python3 missing?)");
    usleep(10 * 1000);
  }
  assert_int_equal(stat(f->ready, &sb), 0);
}

/* fake_tee_stop waits for the server (it exits after one request) and returns what
 * it recorded, or NULL if no request arrived. */
static json_t *fake_tee_stop(struct fake_tee *f) {
  int status = 0;
  for (int i = 0; i < 500 && waitpid(f->pid, &status, WNOHANG) == 0; i++)
    usleep(10 * 1000);
  if (kill(f->pid, 0) == 0) {
    kill(f->pid, SIGKILL);
    waitpid(f->pid, &status, 0);
  }
  json_t *rec = json_load_file(f->rec, JSON_REJECT_DUPLICATES, NULL);
  unlink(f->rec);
  unlink(f->sock);
  unlink(f->ready);
  rmdir(f->dir);
  return rec;
}

static void test_producer_requests_and_host_verifies(void **state) {
  (void)state;
  /* The token the fake launcher hands out: an OIDC token bound to |binding|. */
  char tok_path[] = "/tmp/aln-cs-token.XXXXXX";
  int fd = mkstemp(tok_path);
  assert_true(fd >= 0);
  char *tok = sign_json(good_claims());
  assert_int_equal(write(fd, tok, strlen(tok)), (ssize_t)strlen(tok));
  close(fd);
  char mode[64];
  snprintf(mode, sizeof(mode), "file:%s", tok_path);
  struct fake_tee f;
  fake_tee_start(&f, mode);
  uint8_t *got = NULL;
  size_t got_len = 0;
  assert_int_equal(aln_cs_token_request(&got, &got_len, f.sock, AUD, binding, sizeof(binding), "OIDC"), ALN_OK);
  json_t *rec = fake_tee_stop(&f);
  unlink(tok_path);
  assert_non_null(rec);
  /* What the launcher saw: POST /v1/token, JSON, exactly the three fields. */
  assert_string_equal(json_string_value(json_object_get(rec, "path")), "/v1/token");
  assert_string_equal(json_string_value(json_object_get(rec, "ctype")), "application/json");
  json_t *body = json_loads(json_string_value(json_object_get(rec, "body")), JSON_REJECT_DUPLICATES, NULL);
  assert_non_null(body);
  assert_int_equal(json_object_size(body), 3);
  assert_string_equal(json_string_value(json_object_get(body, "audience")), AUD);
  assert_string_equal(json_string_value(json_object_get(body, "token_type")), "OIDC");
  assert_int_equal(json_array_size(json_object_get(body, "nonces")), 1);
  assert_string_equal(json_string_value(json_array_get(json_object_get(body, "nonces"), 0)), binding_hex);
  json_decref(body);
  json_decref(rec);
  /* What the producer returned is the token, byte for byte, and it verifies. */
  assert_int_equal(got_len, strlen(tok));
  assert_memory_equal(got, tok, got_len);
  assert_int_equal(got[got_len], '\0');
  struct aln_cs_policy p = prod_policy();
  struct aln_verify_ctx ctx = ctx_at(NOW, 60, true);
  struct aln_claims c = {0};
  accepted(&c, (const char *)got, &p, &ctx);
  aln_claims_cleanup(&c);
  free(got);
  free(tok);
}

static void producer_refused(const char *mode, aln_status want) {
  struct fake_tee f;
  fake_tee_start(&f, mode);
  uint8_t *got = (uint8_t *)"untouched";
  size_t got_len = 9;
  assert_int_equal(aln_cs_token_request(&got, &got_len, f.sock, AUD, binding, sizeof(binding), "PKI"), want);
  assert_string_equal((const char *)got, "untouched");
  assert_int_equal(got_len, 9);
  json_decref(fake_tee_stop(&f));
}

static void test_producer_refuses_bad_answers(void **state) {
  (void)state;
  producer_refused("status", ALN_ERR_UPSTREAM);
  producer_refused("html", ALN_ERR_ATTEST_MALFORMED);
  char mode[32];
  snprintf(mode, sizeof(mode), "huge:%d", ALN_JWT_MAX + 1);
  producer_refused(mode, ALN_ERR_UPSTREAM_TOO_LARGE);
}

static void test_producer_usage_and_unreachable(void **state) {
  (void)state;
  uint8_t *got = NULL;
  size_t got_len = 0;
  assert_int_equal(aln_cs_token_request(&got, &got_len, "/nonexistent/teeserver.sock", AUD, binding, 32, "PKI"),
                   ALN_ERR_IO);
  assert_int_equal(aln_cs_token_request(&got, &got_len, NULL, AUD, binding, ALN_CS_NONCE_MIN - 1, "PKI"),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_cs_token_request(&got, &got_len, NULL, AUD, binding, ALN_CS_NONCE_MAX + 1, "PKI"),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_cs_token_request(&got, &got_len, NULL, AUD, binding, 32, "JWT"), ALN_ERR_USAGE);
  assert_int_equal(aln_cs_token_request(&got, &got_len, NULL, "", binding, 32, "PKI"), ALN_ERR_USAGE);
  assert_int_equal(aln_cs_token_request(&got, &got_len, NULL, AUD, NULL, 32, "PKI"), ALN_ERR_USAGE);
  assert_null(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_builtin_root_is_the_pinned_one),
      cmocka_unit_test(test_oak_token_accepted_under_debug_policy),
      cmocka_unit_test(test_oak_token_refused_under_production_policy),
      cmocka_unit_test(test_oak_token_validity_window),
      cmocka_unit_test(test_oak_invalid_signature_twin_refused),
      cmocka_unit_test(test_oak_flipped_byte_in_each_segment),
      cmocka_unit_test(test_oak_swapped_root_refused),
      cmocka_unit_test(test_oak_wrong_nonce_or_audience_refused),
      cmocka_unit_test(test_oak_policy_mismatches_refused),
      cmocka_unit_test(test_oidc_token_with_binding_accepted),
      cmocka_unit_test(test_eat_nonce_rules),
      cmocka_unit_test(test_claim_checks),
      cmocka_unit_test(test_time_claims),
      cmocka_unit_test(test_usage),
      cmocka_unit_test(test_producer_requests_and_host_verifies),
      cmocka_unit_test(test_producer_refuses_bad_answers),
      cmocka_unit_test(test_producer_usage_and_unreachable),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
