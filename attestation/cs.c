/* Evidence kind "confidential-space": the appraisal of a Confidential Space
 * attestation token (the claim checks of cs.h) on top of the strict JWS verifier
 * in jwt.c. Every claim the appraisal relies on must be present with its
 * documented JSON type; a claim of the wrong type is malformed evidence, not a
 * policy mismatch, so the two never hide each other. Strings from the token appear
 * in refusal reasons only cut to a bound. */
#include "attestation/cs.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proto/keyfile.h"

#define IMAGE_DIGEST_LEN 71 /* "sha256:" + 64 hex */
#define SUPPORT_ATTRIBUTES_MAX 16

/* --- trust -------------------------------------------------------------------- */

/* builtin_root_ok re-derives the pinned digest from the PEM compiled in, so an
 * edit to one copy of the pin without the other is caught, not trusted. */
static bool builtin_root_ok(void) {
  uint8_t md[32], *der = NULL;
  bool ok = false;
  BIO *bio = BIO_new_mem_buf(aln_cs_root_pem, -1);
  X509 *c = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  int len = c != NULL ? i2d_X509(c, &der) : -1;
  if (len > 0 && EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) == 1)
    ok = CRYPTO_memcmp(md, aln_cs_root_sha256, sizeof(md)) == 0;
  OPENSSL_free(der);
  X509_free(c);
  BIO_free(bio);
  ERR_clear_error();
  return ok;
}

aln_status aln_cs_keys_new(struct aln_jwt_keys **out, const struct aln_cs_policy *policy) {
  ALN_ENSURE(out != NULL && policy != NULL, ALN_ERR_USAGE);
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_jwt_keys *k = NULL;
  const char *root = policy->root_pem;
  if (root == NULL) {
    ALN_ENSURE(builtin_root_ok(), ALN_ERR_INTERNAL);
    root = aln_cs_root_pem;
  }
  ALN_GUARD(aln_jwt_keys_new(&k));
  ALN_GUARD_GOTO(st, aln_jwt_keys_add_root_pem(k, root, strlen(root)), out);
  if (policy->jwks_json != NULL)
    ALN_GUARD_GOTO(st, aln_jwt_keys_add_jwks(k, policy->jwks_json, strlen(policy->jwks_json)), out);
  *out = k;
  k = NULL;
  st = ALN_OK;
out:
  aln_jwt_keys_free(k);
  return st;
}

/* --- policy and context -------------------------------------------------------- */

static size_t list_len(const char *const *list) {
  size_t n = 0;
  while (list != NULL && list[n] != NULL)
    n++;
  return n;
}

static bool list_has(const char *const *list, const char *s) {
  for (size_t i = 0; list != NULL && list[i] != NULL; i++)
    if (strcmp(list[i], s) == 0)
      return true;
  return false;
}

static aln_status usage_check(struct aln_refusal *why, const struct aln_cs_policy *p,
                              const struct aln_verify_ctx *ctx) {
  if (p == NULL || ctx == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "missing policy or context");
  if (p->audience == NULL || p->audience[0] == '\0' || strlen(p->audience) > ALN_CS_AUDIENCE_MAX)
    return aln_refuse(why, ALN_ERR_USAGE, "policy audience must be 1..%d bytes", ALN_CS_AUDIENCE_MAX);
  if (list_len(p->image_digests) == 0 || list_len(p->hwmodels) == 0)
    return aln_refuse(why, ALN_ERR_USAGE, "policy must allow at least one image digest and one hwmodel");
  if (ctx->nonce != NULL && (ctx->nonce_len < ALN_CS_NONCE_MIN || ctx->nonce_len > ALN_CS_NONCE_MAX))
    return aln_refuse(why, ALN_ERR_USAGE, "nonce must be %d..%d bytes", ALN_CS_NONCE_MIN, ALN_CS_NONCE_MAX);
  if (ctx->now < 0 || ctx->max_skew_s < 0 || ctx->max_skew_s > ALN_CS_MAX_SKEW_S)
    return aln_refuse(why, ALN_ERR_USAGE, "time or skew out of range");
  return ALN_OK;
}

/* --- typed claims ----------------------------------------------------------------- */

/* claim_str reads a string claim without NUL bytes. */
static const char *claim_str(const json_t *v) {
  if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
    return NULL;
  return json_string_value(v);
}

/* is_string_array: an array of at most |max| strings. */
static bool is_string_array(const json_t *v, size_t max) {
  size_t i;
  const json_t *e;
  if (!json_is_array(v) || json_array_size(v) > max)
    return false;
  json_array_foreach(v, i, e) {
    if (claim_str(e) == NULL)
      return false;
  }
  return true;
}

static bool is_image_digest(const char *s) {
  if (strlen(s) != IMAGE_DIGEST_LEN || strncmp(s, "sha256:", 7) != 0)
    return false;
  for (const char *p = s + 7; *p != '\0'; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

struct cs_claims {
  const char *iss, *aud, *swname, *dbgstat, *hwmodel, *image_digest;
  json_int_t exp, nbf, iat;
  const json_t *eat_nonce, *support; /* support may be NULL: no attributes */
  int secboot;
};

/* claims_read checks presence and JSON type of every claim the appraisal uses. */
static aln_status claims_read(struct cs_claims *c, struct aln_refusal *why, const json_t *t) {
  static const char *const str_names[] = {"iss", "aud", "swname", "dbgstat", "hwmodel"};
  const char **str_slots[] = {&c->iss, &c->aud, &c->swname, &c->dbgstat, &c->hwmodel};
  for (size_t i = 0; i < sizeof(str_names) / sizeof(str_names[0]); i++) {
    *str_slots[i] = claim_str(json_object_get(t, str_names[i]));
    if (*str_slots[i] == NULL)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "claim %s missing or not a string", str_names[i]);
  }
  static const char *const int_names[] = {"exp", "nbf", "iat"};
  json_int_t *int_slots[] = {&c->exp, &c->nbf, &c->iat};
  for (size_t i = 0; i < 3; i++) {
    const json_t *v = json_object_get(t, int_names[i]);
    if (!json_is_integer(v))
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "claim %s missing or not an integer", int_names[i]);
    *int_slots[i] = json_integer_value(v);
  }
  const json_t *secboot = json_object_get(t, "secboot");
  if (!json_is_boolean(secboot))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "claim secboot missing or not a boolean");
  c->secboot = json_is_true(secboot);
  c->eat_nonce = json_object_get(t, "eat_nonce");
  if (c->eat_nonce != NULL && claim_str(c->eat_nonce) == NULL &&
      !(is_string_array(c->eat_nonce, ALN_CS_EAT_NONCES_MAX) && json_array_size(c->eat_nonce) > 0))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "eat_nonce is not a string or an array of 1..%d strings",
                      ALN_CS_EAT_NONCES_MAX);
  const json_t *submods = json_object_get(t, "submods");
  const json_t *container = json_object_get(submods, "container");
  c->image_digest = claim_str(json_object_get(container, "image_digest"));
  if (!json_is_object(submods) || !json_is_object(container) || c->image_digest == NULL ||
      !is_image_digest(c->image_digest))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "submods.container.image_digest missing or not sha256:<hex>");
  const json_t *cs = json_object_get(submods, "confidential_space");
  if (cs != NULL && !json_is_object(cs))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "submods.confidential_space is not an object");
  c->support = json_object_get(cs, "support_attributes");
  if (c->support != NULL && !is_string_array(c->support, SUPPORT_ATTRIBUTES_MAX))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "support_attributes is not an array of at most %d strings",
                      SUPPORT_ATTRIBUTES_MAX);
  return ALN_OK;
}

/* nonce_found: eat_nonce holds |hex| exactly, as the string or one array member. */
static bool nonce_found(const json_t *eat_nonce, const char *hex) {
  size_t hex_len = strlen(hex), i;
  const json_t *e;
  if (eat_nonce == NULL)
    return false;
  if (json_is_string(eat_nonce))
    return json_string_length(eat_nonce) == hex_len && CRYPTO_memcmp(json_string_value(eat_nonce), hex, hex_len) == 0;
  json_array_foreach(eat_nonce, i, e) {
    if (json_string_length(e) == hex_len && CRYPTO_memcmp(json_string_value(e), hex, hex_len) == 0)
      return true;
  }
  return false;
}

/* appraise applies the policy to claims already known to be well-typed. */
static aln_status appraise(int *debug, struct aln_refusal *why, const struct cs_claims *c,
                           const struct aln_cs_policy *p, const struct aln_verify_ctx *ctx) {
  if (strcmp(c->iss, ALN_CS_ISSUER) != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "iss \"%.64s\" is not %s", c->iss, ALN_CS_ISSUER);
  if (strcmp(c->aud, p->audience) != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "aud \"%.64s\" is not the policy's audience", c->aud);
  /* ctx->now and the skew are range-checked, so now +- skew cannot overflow; the
   * token's integers are only ever compared, never added to. */
  int64_t lo = ctx->now - ctx->max_skew_s, hi = ctx->now + ctx->max_skew_s;
  if (c->exp <= lo)
    return aln_refuse(why, ALN_ERR_ATTEST_EXPIRED, "token expired at %lld (now %lld, skew %lld s)", (long long)c->exp,
                      (long long)ctx->now, (long long)ctx->max_skew_s);
  if (c->nbf > hi)
    return aln_refuse(why, ALN_ERR_ATTEST_EXPIRED, "token not valid before %lld (now %lld, skew %lld s)",
                      (long long)c->nbf, (long long)ctx->now, (long long)ctx->max_skew_s);
  if (c->iat > hi)
    return aln_refuse(why, ALN_ERR_ATTEST_EXPIRED, "token issued in the future (iat %lld, now %lld)", (long long)c->iat,
                      (long long)ctx->now);
  if (ctx->nonce != NULL) {
    char hex[2 * ALN_CS_NONCE_MAX + 1];
    ALN_GUARD(aln_hex_encode(hex, sizeof(hex), ctx->nonce, ctx->nonce_len));
    if (!nonce_found(c->eat_nonce, hex))
      return aln_refuse(why, ALN_ERR_ATTEST_BINDING,
                        c->eat_nonce == NULL ? "token has no eat_nonce" : "eat_nonce does not hold the binding");
  }
  if (strcmp(c->swname, ALN_CS_SWNAME) != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "swname \"%.32s\" is not %s", c->swname, ALN_CS_SWNAME);
  if (strcmp(c->dbgstat, ALN_CS_DBGSTAT_DEBUG) == 0) {
    if (!p->allow_debug)
      return aln_refuse(why, ALN_ERR_ATTEST_DEBUG, "debug image (dbgstat enabled) refused by this policy");
    *debug = 1;
  } else if (strcmp(c->dbgstat, ALN_CS_DBGSTAT_PROD) == 0) {
    *debug = 0;
  } else {
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "dbgstat \"%.32s\" unknown", c->dbgstat);
  }
  if (!list_has(p->hwmodels, c->hwmodel))
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "hwmodel \"%.32s\" not allowed", c->hwmodel);
  if (!c->secboot)
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "secure boot was off (secboot false)");
  if (!list_has(p->image_digests, c->image_digest))
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "image digest %s not allowed", c->image_digest);
  for (size_t i = 0; p->support_attributes != NULL && p->support_attributes[i] != NULL; i++) {
    bool found = false;
    size_t j;
    const json_t *e;
    json_array_foreach(c->support, j, e) {
      found = found || strcmp(json_string_value(e), p->support_attributes[i]) == 0;
    }
    if (!found)
      return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "support attribute %.32s required, not in the token",
                        p->support_attributes[i]);
  }
  return ALN_OK;
}

/* --- the claims handed back ------------------------------------------------------- */

/* put_copy sets detail[key] to a deep copy of |v|, or to |dflt| (owned) if |v|
 * is absent or of the wrong type as told by |ok|. */
static bool put_copy(json_t *detail, const char *key, const json_t *v, bool ok, json_t *dflt) {
  json_t *x = v != NULL && ok ? json_deep_copy(v) : dflt;
  if (x != dflt)
    json_decref(dflt);
  return x != NULL && json_object_set_new(detail, key, x) == 0;
}

static json_t *detail_build(const json_t *t, const struct cs_claims *c, const struct aln_jwt *jwt) {
  json_t *d = json_object();
  const json_t *submods = json_object_get(t, "submods"), *sub = json_object_get(t, "sub");
  const json_t *ref = json_object_get(json_object_get(submods, "container"), "image_reference");
  const json_t *swversion = json_object_get(t, "swversion"), *gsa = json_object_get(t, "google_service_accounts");
  if (d == NULL ||
      json_object_set_new(d, "token_type", json_string(jwt->source == ALN_JWT_KEY_X5C ? "PKI" : "OIDC")) != 0 ||
      json_object_set_new(d, "iss", json_string(c->iss)) != 0 ||
      json_object_set_new(d, "aud", json_string(c->aud)) != 0 ||
      !put_copy(d, "sub", sub, claim_str(sub) != NULL, json_null()) ||
      json_object_set_new(d, "hwmodel", json_string(c->hwmodel)) != 0 ||
      json_object_set_new(d, "swname", json_string(c->swname)) != 0 ||
      !put_copy(d, "swversion", swversion, is_string_array(swversion, 8), json_array()) ||
      json_object_set_new(d, "dbgstat", json_string(c->dbgstat)) != 0 ||
      json_object_set_new(d, "secboot", json_boolean(c->secboot)) != 0 ||
      json_object_set_new(d, "image_digest", json_string(c->image_digest)) != 0 ||
      !put_copy(d, "image_reference", ref, claim_str(ref) != NULL, json_null()) ||
      !put_copy(d, "support_attributes", c->support, true, json_array()) ||
      !put_copy(d, "google_service_accounts", gsa, is_string_array(gsa, 64), json_array()) ||
      !put_copy(d, "eat_nonce", c->eat_nonce, true, json_null())) {
    json_decref(d);
    return NULL;
  }
  return d;
}

aln_status aln_cs_verify(struct aln_claims *out, struct aln_refusal *why, const uint8_t *ev, size_t len,
                         const struct aln_cs_policy *policy, const struct aln_verify_ctx *ctx) {
  if (out == NULL || ev == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "missing argument");
  ALN_GUARD(usage_check(why, policy, ctx));

  aln_status st = ALN_ERR_INTERNAL;
  struct aln_jwt_keys *own_keys = NULL;
  const struct aln_jwt_keys *keys = policy->keys;
  struct aln_jwt jwt = {0};
  struct cs_claims c = {0};
  json_t *detail = NULL;
  int debug = 0;

  if (keys == NULL) {
    st = aln_cs_keys_new(&own_keys, policy);
    if (st != ALN_OK) {
      st = aln_refuse(why, st, "policy trust (root or JWKS) unusable");
      goto out;
    }
    keys = own_keys;
  }
  ALN_GUARD_GOTO(st, aln_jwt_verify(&jwt, why, (const char *)ev, len, keys, ctx->now), out);
  ALN_GUARD_GOTO(st, claims_read(&c, why, jwt.claims), out);
  ALN_GUARD_GOTO(st, appraise(&debug, why, &c, policy, ctx), out);
  detail = detail_build(jwt.claims, &c, &jwt);
  if (detail == NULL) {
    st = aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
    goto out;
  }

  memset(out, 0, sizeof(*out));
  snprintf(out->kind, sizeof(out->kind), "%s", ALN_CS_KIND);
  out->debug = debug;
  out->nonce_checked = ctx->nonce != NULL;
  snprintf(out->measurement, sizeof(out->measurement), "%s", c.image_digest);
  out->issued_at = c.iat;
  out->expires_at = c.exp;
  if (jwt.chain_not_after != 0 && jwt.chain_not_after < out->expires_at)
    out->expires_at = jwt.chain_not_after;
  out->detail = detail;
  detail = NULL;
  st = ALN_OK;
out:
  json_decref(detail);
  aln_jwt_cleanup(&jwt);
  aln_jwt_keys_free(own_keys);
  return st;
}
