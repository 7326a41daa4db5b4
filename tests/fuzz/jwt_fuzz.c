/* fuzz-links: aln_attestation */
/* Fuzzes the strict JWT parser and the Confidential Space appraisal under one
 * fixed policy (the built-in root, a JWKS with one key generated at start, time
 * inside the real PKI token's validity). The first input byte picks what the rest
 * is, so the fuzzer also reaches the code behind the signature check, which forged
 * bytes never pass:
 *   0  a whole token, verified as is (the real PKI token is in the corpus);
 *   1  a payload, signed under the header {"alg":"RS256","kid":"fuzz"};
 *   2  a header, over a valid payload, signed by the same key.
 * Any outcome but a crash, a leak or a sanitizer report is fine; an accepted token
 * must have been appraised as the policy says. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/cs.h"
#include "proto/base64.h"

#define NOW 1750690000 /* inside the real token's [nbf, exp] */
#define AUD "https://echo.oak.dev"
#define OAK_DIGEST "sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34"
#define FUZZ_DIGEST "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static const char *const digests[] = {OAK_DIGEST, FUZZ_DIGEST, NULL};
static const char *const hwmodels[] = {"GCP_AMD_SEV", "GCP_INTEL_TDX", NULL};
static const char good_header[] = "{\"alg\":\"RS256\",\"kid\":\"fuzz\"}";
static const char good_payload[] =
    "{\"iss\":\"https://confidentialcomputing.googleapis.com\",\"aud\":\"https://echo.oak.dev\","
    "\"iat\":1750689000,\"nbf\":1750689000,\"exp\":1750692000,"
    "\"eat_nonce\":\"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\","
    "\"secboot\":true,\"hwmodel\":\"GCP_INTEL_TDX\",\"swname\":\"CONFIDENTIAL_SPACE\",\"swversion\":[\"250301\"],"
    "\"dbgstat\":\"disabled-since-boot\",\"submods\":{\"confidential_space\":{\"support_attributes\":[\"STABLE\"]},"
    "\"container\":{\"image_digest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\"}}}";

static EVP_PKEY *key;
static struct aln_jwt_keys *keys;
static struct aln_cs_policy policy;
static uint8_t binding[32];

static void init(void) {
  if (keys != NULL)
    return;
  for (size_t i = 0; i < sizeof(binding); i++)
    binding[i] = (uint8_t)(0xa0 + i);
  key = EVP_RSA_gen(2048);
  BIGNUM *n = NULL;
  uint8_t nb[256];
  char n64[400], jwks[600];
  if (key == NULL || EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 || BN_bn2bin(n, nb) != 256 ||
      aln_base64_encode(n64, sizeof(n64), NULL, nb, sizeof(nb), ALN_BASE64_URL) != ALN_OK)
    abort();
  BN_free(n);
  snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"fuzz\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n64);
  policy = (struct aln_cs_policy){
      .audience = AUD, .image_digests = digests, .hwmodels = hwmodels, .allow_debug = 1, .jwks_json = jwks};
  if (aln_cs_keys_new(&keys, &policy) != ALN_OK)
    abort();
  policy.jwks_json = NULL;
  policy.keys = keys;
}

/* sign writes b64(hdr).b64(payload).b64(RS256) into |out| (cap ALN_JWT_MAX + 1);
 * returns 0 if the parts are too big for a token anyway. */
static size_t sign(char *out, const uint8_t *hdr, size_t hdr_len, const uint8_t *payload, size_t payload_len) {
  size_t h, p, len;
  if (aln_base64_encoded_len(&h, hdr_len, ALN_BASE64_URL) != ALN_OK || h > ALN_JWT_HEADER_B64_MAX ||
      aln_base64_encoded_len(&p, payload_len, ALN_BASE64_URL) != ALN_OK || p > ALN_JWT_PAYLOAD_B64_MAX)
    return 0;
  if (aln_base64_encode(out, h + 1, NULL, hdr, hdr_len, ALN_BASE64_URL) != ALN_OK)
    abort();
  out[h] = '.';
  if (aln_base64_encode(out + h + 1, p + 1, NULL, payload, payload_len, ALN_BASE64_URL) != ALN_OK)
    abort();
  len = h + 1 + p;
  uint8_t sig[256];
  size_t sig_len = sizeof(sig);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
      EVP_DigestSign(md, sig, &sig_len, (const uint8_t *)out, len) != 1)
    abort();
  EVP_MD_CTX_free(md);
  out[len++] = '.';
  if (aln_base64_encode(out + len, ALN_JWT_MAX + 1 - len, NULL, sig, sig_len, ALN_BASE64_URL) != ALN_OK)
    abort();
  return strlen(out);
}

static void check(const uint8_t *tok, size_t len, int with_nonce) {
  struct aln_jwt jwt;
  if (aln_jwt_verify(&jwt, NULL, (const char *)tok, len, keys, NOW) == ALN_OK) {
    if (!json_is_object(jwt.header) || !json_is_object(jwt.claims))
      abort();
    aln_jwt_cleanup(&jwt);
  }
  struct aln_verify_ctx ctx = {.nonce = with_nonce ? binding : NULL,
                               .nonce_len = with_nonce ? sizeof(binding) : 0,
                               .now = NOW,
                               .max_skew_s = 60};
  struct aln_claims c = {0};
  struct aln_refusal why;
  if (aln_cs_verify(&c, &why, tok, len, &policy, &ctx) == ALN_OK) {
    if (strcmp(c.kind, ALN_CS_KIND) != 0 ||
        (strcmp(c.measurement, OAK_DIGEST) != 0 && strcmp(c.measurement, FUZZ_DIGEST) != 0) ||
        c.nonce_checked != with_nonce || !json_is_object(c.detail))
      abort();
    aln_claims_cleanup(&c);
  } else if (why.status == ALN_OK || memchr(why.why, '\0', sizeof(why.why)) == NULL) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char tok[ALN_JWT_MAX + 1];
  init();
  if (size == 0)
    return 0;
  const uint8_t *rest = data + 1;
  size_t rest_len = size - 1, len;
  switch (data[0] % 3) {
  case 1:
    len = sign(tok, (const uint8_t *)good_header, strlen(good_header), rest, rest_len);
    break;
  case 2:
    len = sign(tok, rest, rest_len, (const uint8_t *)good_payload, strlen(good_payload));
    break;
  default:
    check(rest, rest_len, 0);
    return 0;
  }
  if (len > 0)
    check((const uint8_t *)tok, len, 1);
  return 0;
}
