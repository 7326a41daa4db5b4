/* Drives the Confidential Space verifier for tests/interop/test_cs_jwt.py, which
 * makes the tokens with the jose package (an independent JOSE implementation):
 *
 *   cs_jwt_driver POLICY.json TOKEN-FILE
 *
 * POLICY.json: {"audience", "image_digests": [..], "hwmodels": [..],
 * "support_attributes": [..], "allow_debug": bool, "root_pem": str|null,
 * "jwks": object|null, "nonce_hex": str|null, "now": int, "skew": int}.
 * The token file is passed to aln_cs_verify byte for byte. Prints the claims JSON
 * and exits 0 when accepted; prints {"status": NAME, "why": REASON} and exits 2
 * when refused; exits 1 if the driver itself cannot run. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/cs.h"

#define LIST_MAX 16

static const char **string_list(const json_t *arr) {
  static const char *lists[3][LIST_MAX + 1];
  static int next;
  const char **l = lists[next++ % 3];
  size_t i;
  const json_t *v;
  memset(l, 0, sizeof(lists[0]));
  json_array_foreach(arr, i, v) {
    if (i < LIST_MAX)
      l[i] = json_string_value(v);
  }
  return l;
}

static int hex_decode(uint8_t *out, size_t cap, size_t *len, const char *hex) {
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

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s POLICY.json TOKEN-FILE\n", argv[0]);
    return 1;
  }
  json_error_t err;
  json_t *pol = json_load_file(argv[1], JSON_REJECT_DUPLICATES, &err);
  FILE *f = fopen(argv[2], "rb");
  static uint8_t tok[4 * ALN_JWT_MAX];
  size_t tok_len = f != NULL ? fread(tok, 1, sizeof(tok), f) : 0;
  if (f != NULL)
    fclose(f);
  if (pol == NULL || f == NULL) {
    fprintf(stderr, "cs_jwt_driver: cannot read the policy or the token\n");
    return 1;
  }
  char *jwks = NULL;
  if (json_is_object(json_object_get(pol, "jwks")))
    jwks = json_dumps(json_object_get(pol, "jwks"), JSON_COMPACT);
  struct aln_cs_policy policy = {
      .audience = json_string_value(json_object_get(pol, "audience")),
      .image_digests = string_list(json_object_get(pol, "image_digests")),
      .hwmodels = string_list(json_object_get(pol, "hwmodels")),
      .support_attributes = string_list(json_object_get(pol, "support_attributes")),
      .allow_debug = json_is_true(json_object_get(pol, "allow_debug")),
      .root_pem = json_string_value(json_object_get(pol, "root_pem")),
      .jwks_json = jwks,
  };
  uint8_t nonce[64];
  size_t nonce_len = 0;
  const char *nonce_hex = json_string_value(json_object_get(pol, "nonce_hex"));
  if (nonce_hex != NULL && hex_decode(nonce, sizeof(nonce), &nonce_len, nonce_hex) != 0) {
    fprintf(stderr, "cs_jwt_driver: bad nonce_hex\n");
    return 1;
  }
  struct aln_verify_ctx ctx = {
      .nonce = nonce_hex != NULL ? nonce : NULL,
      .nonce_len = nonce_len,
      .now = json_integer_value(json_object_get(pol, "now")),
      .max_skew_s = json_integer_value(json_object_get(pol, "skew")),
  };
  struct aln_claims claims = {0};
  struct aln_refusal why = {0};
  aln_status st = aln_cs_verify(&claims, &why, tok, tok_len, &policy, &ctx);
  json_t *outj = st == ALN_OK ? aln_claims_to_json(&claims)
                              : json_pack("{s:s, s:s}", "status", aln_status_name(st), "why", why.why);
  char *s = outj != NULL ? json_dumps(outj, JSON_COMPACT) : NULL;
  if (s != NULL)
    printf("%s\n", s);
  free(s);
  json_decref(outj);
  aln_claims_cleanup(&claims);
  free(jwks);
  json_decref(pol);
  return st == ALN_OK ? 0 : 2;
}
