/* Strict RS256 compact-JWS verification (see jwt.h for what is accepted). Every
 * size is capped before a decoder sees the bytes: segments before base64, JSON
 * nesting before jansson builds a tree, certificates before d2i. The signature is
 * checked over the raw "header.payload" bytes before the payload is parsed, so
 * unauthenticated input reaches jansson only as a header. */
#include "attestation/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proto/base64.h"

#define JWKS_DEPTH_MAX 4 /* {"keys":[{...}]} plus one level for unknown members */
#define RSA_E_MAX_BYTES 4
#define X5C_B64_MAX (((ALN_JWT_CERT_MAX + 2) / 3) * 4)

struct jwk {
  char kid[ALN_JWT_KID_MAX + 1];
  EVP_PKEY *pkey;
};

struct aln_jwt_keys {
  X509_STORE *roots;
  size_t num_roots;
  struct jwk jwks[ALN_JWKS_KEYS_MAX];
  size_t num_jwks;
};

/* --- JSON ------------------------------------------------------------------------ */

/* json_depth_ok checks that the brackets of |p| nest at most |max| deep. It only
 * has to agree with jansson's lexer on valid JSON (a bracket inside a string does
 * not count; a backslash escapes the next byte): anything invalid is refused by
 * jansson afterwards, and jansson's own recursion limit backs this up. */
static bool json_depth_ok(const uint8_t *p, size_t len, size_t max) {
  size_t depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = p[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max)
        return false;
    } else if ((c == '}' || c == ']') && depth > 0) {
      depth--;
    }
  }
  return true;
}

aln_status aln_jwt_json_parse(json_t **out, const uint8_t *p, size_t len, size_t depth_max) {
  ALN_ENSURE(out != NULL && (p != NULL || len == 0), ALN_ERR_USAGE);
  ALN_ENSURE(json_depth_ok(p, len, depth_max), ALN_ERR_MALFORMED);
  json_error_t err;
  /* JSON_REJECT_DUPLICATES: two values for one claim would let two parsers of the
   * same token disagree on what it says. NUL in strings is refused by default. */
  json_t *v = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &err);
  ALN_ENSURE(v != NULL, ALN_ERR_MALFORMED);
  if (!json_is_object(v)) {
    json_decref(v);
    return ALN_ERR_MALFORMED;
  }
  *out = v;
  return ALN_OK;
}

/* --- base64url big integers (JWK n and e) ----------------------------------------- */

/* b64url_uint decodes a JWK integer: base64url of its minimal big-endian bytes
 * (RFC 7518 §6.3.1: no leading zero octet), at most |max| bytes. */
static BIGNUM *b64url_uint(const json_t *v, size_t max) {
  uint8_t buf[ALN_JWT_RSA_MAX_BITS / 8];
  size_t n;
  if (!json_is_string(v) || max > sizeof(buf))
    return NULL;
  const char *s = json_string_value(v);
  size_t slen = json_string_length(v);
  if (aln_base64_decoded_len(&n, s, slen, ALN_BASE64_URL) != ALN_OK || n == 0 || n > max ||
      aln_base64_decode(buf, sizeof(buf), &n, s, slen, ALN_BASE64_URL) != ALN_OK || buf[0] == 0)
    return NULL;
  return BN_bin2bn(buf, (int)n, NULL);
}

/* rsa_from_ne builds an RSA public key from |n| and |e|, which must be a modulus of
 * ALN_JWT_RSA_MIN_BITS..MAX_BITS and an odd exponent of at least 3. */
static aln_status rsa_from_ne(EVP_PKEY **out, const BIGNUM *n, const BIGNUM *e) {
  int bits = BN_num_bits(n);
  ALN_ENSURE(bits >= ALN_JWT_RSA_MIN_BITS && bits <= ALN_JWT_RSA_MAX_BITS, ALN_ERR_USAGE);
  ALN_ENSURE(BN_is_odd(n) && BN_is_odd(e) && !BN_is_one(e), ALN_ERR_USAGE);
  aln_status st = ALN_ERR_NOMEM;
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *pctx = NULL;
  EVP_PKEY *pkey = NULL;
  if (bld == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
    goto out;
  pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
  ALN_ENSURE_GOTO(st, pctx != NULL, ALN_ERR_NOMEM, out);
  ALN_ENSURE_GOTO(st,
                  EVP_PKEY_fromdata_init(pctx) == 1 && EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1,
                  ALN_ERR_USAGE, out);
  *out = pkey;
  pkey = NULL;
  st = ALN_OK;
out:
  EVP_PKEY_free(pkey);
  EVP_PKEY_CTX_free(pctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  ERR_clear_error();
  return st;
}

/* --- key sets --------------------------------------------------------------------- */

aln_status aln_jwt_keys_new(struct aln_jwt_keys **out) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  struct aln_jwt_keys *k = calloc(1, sizeof(*k));
  ALN_ENSURE(k != NULL, ALN_ERR_NOMEM);
  /* A bare X509_STORE has no lookup methods: nothing from the system store or the
   * environment (SSL_CERT_FILE) is ever trusted, only what is added here. */
  k->roots = X509_STORE_new();
  if (k->roots == NULL) {
    free(k);
    return ALN_ERR_NOMEM;
  }
  *out = k;
  return ALN_OK;
}

void aln_jwt_keys_free(struct aln_jwt_keys *k) {
  if (k == NULL)
    return;
  X509_STORE_free(k->roots);
  for (size_t i = 0; i < k->num_jwks; i++)
    EVP_PKEY_free(k->jwks[i].pkey);
  free(k);
}

aln_status aln_jwt_keys_add_root_pem(struct aln_jwt_keys *k, const char *pem, size_t pem_len) {
  ALN_ENSURE(k != NULL && pem != NULL && pem_len > 0 && pem_len <= ALN_JWT_ROOT_PEM_MAX, ALN_ERR_USAGE);
  aln_status st = ALN_ERR_USAGE;
  X509 *root = NULL, *extra = NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
  ALN_ENSURE(bio != NULL, ALN_ERR_NOMEM);
  root = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  ALN_ENSURE_GOTO(st, root != NULL, ALN_ERR_USAGE, out);
  /* Exactly one certificate: a bundle would pin more than its author meant. */
  extra = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  ALN_ENSURE_GOTO(st, extra == NULL, ALN_ERR_USAGE, out);
  ALN_ENSURE_GOTO(st, X509_check_ca(root) >= 1, ALN_ERR_USAGE, out);
  ALN_ENSURE_GOTO(st, X509_STORE_add_cert(k->roots, root) == 1, ALN_ERR_NOMEM, out);
  k->num_roots++;
  st = ALN_OK;
out:
  X509_free(root);
  X509_free(extra);
  BIO_free(bio);
  ERR_clear_error();
  return st;
}

static bool jwk_kid_known(const struct aln_jwt_keys *k, const char *kid, size_t upto) {
  for (size_t i = 0; i < upto; i++)
    if (strcmp(k->jwks[i].kid, kid) == 0)
      return true;
  return false;
}

/* jwk_parse turns one JWKS member into a key, or says to skip it (*skip). */
static aln_status jwk_parse(struct jwk *out, bool *skip, const json_t *jwk) {
  ALN_ENSURE(json_is_object(jwk), ALN_ERR_USAGE);
  const json_t *kty = json_object_get(jwk, "kty"), *use = json_object_get(jwk, "use");
  const json_t *alg = json_object_get(jwk, "alg"), *kid = json_object_get(jwk, "kid");
  ALN_ENSURE(json_is_string(kty), ALN_ERR_USAGE);
  *skip = strcmp(json_string_value(kty), "RSA") != 0 ||
          (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) ||
          (alg != NULL && (!json_is_string(alg) || strcmp(json_string_value(alg), "RS256") != 0));
  if (*skip)
    return ALN_OK;
  ALN_ENSURE(json_is_string(kid) && json_string_length(kid) > 0 && json_string_length(kid) <= ALN_JWT_KID_MAX &&
                 strlen(json_string_value(kid)) == json_string_length(kid),
             ALN_ERR_USAGE);
  aln_status st = ALN_ERR_USAGE;
  BIGNUM *n = b64url_uint(json_object_get(jwk, "n"), ALN_JWT_RSA_MAX_BITS / 8);
  BIGNUM *e = b64url_uint(json_object_get(jwk, "e"), RSA_E_MAX_BYTES);
  if (n != NULL && e != NULL)
    st = rsa_from_ne(&out->pkey, n, e);
  BN_free(n);
  BN_free(e);
  ALN_GUARD(st);
  memcpy(out->kid, json_string_value(kid), json_string_length(kid) + 1);
  return ALN_OK;
}

aln_status aln_jwt_keys_add_jwks(struct aln_jwt_keys *k, const char *json, size_t len) {
  ALN_ENSURE(k != NULL && json != NULL && len <= ALN_JWKS_MAX, ALN_ERR_USAGE);
  json_t *doc = NULL;
  ALN_ENSURE(aln_jwt_json_parse(&doc, (const uint8_t *)json, len, JWKS_DEPTH_MAX) == ALN_OK, ALN_ERR_USAGE);
  aln_status st = ALN_ERR_USAGE;
  size_t start = k->num_jwks, i;
  const json_t *keys = json_object_get(doc, "keys"), *jwk;
  ALN_ENSURE_GOTO(st, json_is_array(keys), ALN_ERR_USAGE, out);
  json_array_foreach(keys, i, jwk) {
    bool skip = false;
    ALN_ENSURE_GOTO(st, k->num_jwks < ALN_JWKS_KEYS_MAX, ALN_ERR_USAGE, out);
    struct jwk *slot = &k->jwks[k->num_jwks];
    ALN_GUARD_GOTO(st, jwk_parse(slot, &skip, jwk), out);
    if (skip)
      continue;
    k->num_jwks++;
    /* Two keys under one kid would make the choice of key the attacker's. */
    ALN_ENSURE_GOTO(st, !jwk_kid_known(k, slot->kid, k->num_jwks - 1), ALN_ERR_USAGE, out);
  }
  ALN_ENSURE_GOTO(st, k->num_jwks > start, ALN_ERR_USAGE, out);
  st = ALN_OK;
out:
  if (st != ALN_OK) {
    for (i = start; i < k->num_jwks; i++)
      EVP_PKEY_free(k->jwks[i].pkey);
    memset(&k->jwks[start], 0, (ALN_JWKS_KEYS_MAX - start) * sizeof(k->jwks[0]));
    k->num_jwks = start;
  }
  json_decref(doc);
  return st;
}

/* --- segments --------------------------------------------------------------------- */

struct segment {
  const char *p;
  size_t len;
};

/* b64url_segment decodes |s| into a new buffer of at most |max| bytes (caller frees). */
static aln_status b64url_segment(uint8_t **out, size_t *out_len, struct segment s, size_t max) {
  size_t n;
  ALN_ENSURE(aln_base64_decoded_len(&n, s.p, s.len, ALN_BASE64_URL) == ALN_OK && n <= max, ALN_ERR_MALFORMED);
  uint8_t *buf = malloc(n > 0 ? n : 1);
  ALN_ENSURE(buf != NULL, ALN_ERR_NOMEM);
  if (aln_base64_decode(buf, n > 0 ? n : 1, out_len, s.p, s.len, ALN_BASE64_URL) != ALN_OK) {
    free(buf);
    return ALN_ERR_MALFORMED;
  }
  *out = buf;
  return ALN_OK;
}

/* --- x5c -------------------------------------------------------------------------- */

static int64_t asn1_time_unix(const ASN1_TIME *t) {
  struct tm tm;
  if (ASN1_TIME_to_tm(t, &tm) != 1)
    return 0;
  return (int64_t)timegm(&tm);
}

/* rsa_key_ok accepts a plain RSA key (not RSA-PSS) of the allowed size. */
static bool rsa_key_ok(const EVP_PKEY *pkey) {
  int bits = EVP_PKEY_get_bits(pkey);
  return pkey != NULL && EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA && bits >= ALN_JWT_RSA_MIN_BITS &&
         bits <= ALN_JWT_RSA_MAX_BITS;
}

/* b64url_bn writes the minimal big-endian bytes of |bn| as base64url into |out|. */
static bool b64url_bn(char *out, size_t cap, const BIGNUM *bn) {
  uint8_t buf[ALN_JWT_RSA_MAX_BITS / 8];
  int n = BN_num_bytes(bn);
  if (n <= 0 || (size_t)n > sizeof(buf) || BN_bn2bin(bn, buf) != n)
    return false;
  return aln_base64_encode(out, cap, NULL, buf, (size_t)n, ALN_BASE64_URL) == ALN_OK;
}

/* rsa_thumbprint writes the RFC 7638 JWK thumbprint of |pkey| (base64url of the
 * SHA-256 of {"e":..,"kty":"RSA","n":..}), which is what Google puts in kid. */
static bool rsa_thumbprint(char out[44], const EVP_PKEY *pkey) {
  BIGNUM *n = NULL, *e = NULL;
  char n64[ALN_JWT_RSA_MAX_BITS / 6 + 4], e64[16], json[sizeof(n64) + sizeof(e64) + 40];
  uint8_t md[32];
  bool ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && b64url_bn(n64, sizeof(n64), n) &&
            b64url_bn(e64, sizeof(e64), e);
  if (ok) {
    int len = snprintf(json, sizeof(json), "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e64, n64);
    ok = len > 0 && (size_t)len < sizeof(json) && EVP_Digest(json, (size_t)len, md, NULL, EVP_sha256(), NULL) == 1 &&
         aln_base64_encode(out, 44, NULL, md, sizeof(md), ALN_BASE64_URL) == ALN_OK;
  }
  BN_free(n);
  BN_free(e);
  return ok;
}

/* x5c_decode parses one x5c entry: standard base64 (padded) of exactly one DER
 * certificate, nothing after it. */
static X509 *x5c_decode(const json_t *v) {
  uint8_t der[ALN_JWT_CERT_MAX];
  size_t n;
  if (!json_is_string(v) || json_string_length(v) > X5C_B64_MAX)
    return NULL;
  const char *s = json_string_value(v);
  size_t slen = json_string_length(v);
  if (aln_base64_decoded_len(&n, s, slen, ALN_BASE64_STD) != ALN_OK || n == 0 || n > sizeof(der) ||
      aln_base64_decode(der, sizeof(der), &n, s, slen, ALN_BASE64_STD) != ALN_OK)
    return NULL;
  const unsigned char *p = der;
  X509 *c = d2i_X509(NULL, &p, (long)n);
  if (c != NULL && p != der + n) {
    X509_free(c);
    c = NULL;
  }
  return c;
}

/* x5c_key verifies the header's x5c chain against the pinned roots at |now| and
 * returns the leaf's key (a new reference) and the chain's earliest notAfter. */
static aln_status x5c_key(EVP_PKEY **out, int64_t *not_after, struct aln_refusal *why, const json_t *x5c,
                          const char *kid, const struct aln_jwt_keys *keys, int64_t now) {
  size_t num = json_is_array(x5c) ? json_array_size(x5c) : 0;
  if (num == 0 || num > ALN_JWT_X5C_MAX)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "x5c must be an array of 1..%d certificates", ALN_JWT_X5C_MAX);
  if (keys->num_roots == 0)
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "token carries x5c but no root is pinned");

  aln_status st = ALN_ERR_NOMEM;
  X509 *certs[ALN_JWT_X5C_MAX] = {0};
  STACK_OF(X509) *untrusted = sk_X509_new_null();
  X509_STORE_CTX *sctx = X509_STORE_CTX_new();
  if (untrusted == NULL || sctx == NULL)
    goto out;
  for (size_t i = 0; i < num; i++) {
    certs[i] = x5c_decode(json_array_get(x5c, i));
    if (certs[i] == NULL) {
      st = aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "x5c[%zu] is not one base64 DER certificate", i);
      goto out;
    }
    if (i > 0 && sk_X509_push(untrusted, certs[i]) <= 0)
      goto out;
  }
  ALN_ENSURE_GOTO(st, X509_STORE_CTX_init(sctx, keys->roots, certs[0], untrusted) == 1, ALN_ERR_NOMEM, out);
  X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(sctx);
  X509_VERIFY_PARAM_set_time(param, (time_t)now);
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  X509_VERIFY_PARAM_set_depth(param, ALN_JWT_X5C_MAX);
  if (X509_verify_cert(sctx) != 1) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "x5c chain not trusted: %s",
                    X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
    goto out;
  }
  /* The chain OpenSSL built must be the one the token lists, in its order: leaf
   * first, each entry issued by the next. Extra or shuffled entries are refused
   * rather than silently ignored. */
  STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(sctx);
  size_t chain_len = (size_t)sk_X509_num(chain);
  if (chain_len < num) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "x5c lists certificates the chain does not use");
    goto out;
  }
  int64_t earliest = INT64_MAX;
  for (size_t i = 0; i < chain_len; i++) {
    X509 *c = sk_X509_value(chain, (int)i);
    if (i < num && X509_cmp(c, certs[i]) != 0) {
      st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "x5c is not in chain order (leaf first)");
      goto out;
    }
    int64_t t = asn1_time_unix(X509_get0_notAfter(c));
    if (t < earliest)
      earliest = t;
  }
  EVP_PKEY *leaf_key = X509_get0_pubkey(certs[0]);
  if (!rsa_key_ok(leaf_key)) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "x5c leaf key is not RSA of %d..%d bits", ALN_JWT_RSA_MIN_BITS,
                    ALN_JWT_RSA_MAX_BITS);
    goto out;
  }
  if (kid != NULL) {
    char thumb[44];
    if (!rsa_thumbprint(thumb, leaf_key) || strcmp(thumb, kid) != 0) {
      st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "kid does not name the x5c leaf key");
      goto out;
    }
  }
  ALN_ENSURE_GOTO(st, EVP_PKEY_up_ref(leaf_key) == 1, ALN_ERR_INTERNAL, out);
  *out = leaf_key;
  *not_after = earliest;
  st = ALN_OK;
out:
  X509_STORE_CTX_free(sctx);
  sk_X509_free(untrusted); /* the certificates themselves are in certs[] */
  for (size_t i = 0; i < ALN_JWT_X5C_MAX; i++)
    X509_free(certs[i]);
  ERR_clear_error();
  return st;
}

/* --- the header ----------------------------------------------------------------- */

/* header_check applies the header rules that need no key. */
static aln_status header_check(struct aln_refusal *why, const json_t *hdr) {
  const json_t *alg = json_object_get(hdr, "alg"), *typ = json_object_get(hdr, "typ");
  if (!json_is_string(alg))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "header has no alg");
  const char *a = json_string_value(alg);
  if (strcasecmp(a, "none") == 0)
    return aln_refuse(why, ALN_ERR_ATTEST_SIG, "alg none refused: the token is unsigned");
  if (strncmp(a, "HS", 2) == 0)
    return aln_refuse(why, ALN_ERR_ATTEST_SIG, "alg %.16s refused: a MAC keyed with a public key proves nothing", a);
  if (strcmp(a, "RS256") != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_SIG, "alg %.16s refused: only RS256 is accepted", a);
  if (typ != NULL && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "typ is not JWT");
  if (json_object_get(hdr, "crit") != NULL)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "crit names extensions this verifier does not implement");
  if (json_object_get(hdr, "jku") != NULL || json_object_get(hdr, "jwk") != NULL || json_object_get(hdr, "x5u") != NULL)
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "keys named by the token itself (jku, jwk, x5u) are never trusted");
  return ALN_OK;
}

/* header_kid reads the optional kid: a string of 1..ALN_JWT_KID_MAX bytes, no NUL. */
static aln_status header_kid(const char **out, struct aln_refusal *why, const json_t *hdr) {
  const json_t *kid = json_object_get(hdr, "kid");
  *out = NULL;
  if (kid == NULL)
    return ALN_OK;
  if (!json_is_string(kid) || json_string_length(kid) == 0 || json_string_length(kid) > ALN_JWT_KID_MAX ||
      strlen(json_string_value(kid)) != json_string_length(kid))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "kid is not a string of 1..%d bytes", ALN_JWT_KID_MAX);
  *out = json_string_value(kid);
  return ALN_OK;
}

static aln_status rs256_check(struct aln_refusal *why, EVP_PKEY *pkey, const char *signed_part, size_t signed_len,
                              const uint8_t *sig, size_t sig_len) {
  if ((size_t)EVP_PKEY_get_size(pkey) != sig_len)
    return aln_refuse(why, ALN_ERR_ATTEST_SIG, "signature is %zu bytes, the key's modulus %d", sig_len,
                      EVP_PKEY_get_size(pkey));
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  ALN_ENSURE(md != NULL, ALN_ERR_NOMEM);
  int ok = EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pkey) == 1 &&
           EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
           EVP_DigestVerify(md, sig, sig_len, (const uint8_t *)signed_part, signed_len) == 1;
  EVP_MD_CTX_free(md);
  ERR_clear_error();
  if (!ok)
    return aln_refuse(why, ALN_ERR_ATTEST_SIG, "RS256 signature does not verify");
  return ALN_OK;
}

/* --- verification ------------------------------------------------------------------ */

/* split finds the three segments; the signature may be empty here so that an
 * unsigned token is refused for what it is (alg none), not as a shape error. */
static aln_status split(struct segment seg[3], struct aln_refusal *why, const char *tok, size_t len) {
  if (len > ALN_JWT_MAX)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "token is %zu bytes, over the %d cap", len, ALN_JWT_MAX);
  const char *end = tok + len, *p = tok;
  for (int i = 0; i < 3; i++) {
    const char *dot = i < 2 ? memchr(p, '.', (size_t)(end - p)) : NULL;
    if (i < 2 && dot == NULL)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "not a compact JWS: fewer than three segments");
    seg[i].p = p;
    seg[i].len = (size_t)((i < 2 ? dot : end) - p);
    p = i < 2 ? dot + 1 : end;
  }
  if (memchr(seg[2].p, '.', seg[2].len) != NULL)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "not a compact JWS: more than three segments");
  static const size_t caps[3] = {ALN_JWT_HEADER_B64_MAX, ALN_JWT_PAYLOAD_B64_MAX, ALN_JWT_SIG_B64_MAX};
  static const char *const names[3] = {"header", "payload", "signature"};
  for (int i = 0; i < 3; i++)
    if (seg[i].len > caps[i])
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "%s segment is %zu chars, over the %zu cap", names[i],
                        seg[i].len, caps[i]);
  if (seg[0].len == 0 || seg[1].len == 0)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "empty header or payload segment");
  return ALN_OK;
}

aln_status aln_jwt_verify(struct aln_jwt *out, struct aln_refusal *why, const char *tok, size_t tok_len,
                          const struct aln_jwt_keys *keys, int64_t now) {
  if (out == NULL || tok == NULL || keys == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "missing argument");

  aln_status st = ALN_ERR_INTERNAL;
  struct segment seg[3];
  uint8_t *hdr_raw = NULL, *payload_raw = NULL, *sig = NULL;
  size_t hdr_len = 0, payload_len = 0, sig_len = 0;
  json_t *hdr = NULL, *claims = NULL;
  EVP_PKEY *pkey = NULL;
  const char *kid = NULL;
  int64_t not_after = 0;
  enum aln_jwt_key_source source;

  ALN_GUARD_GOTO(st, split(seg, why, tok, tok_len), out);
  st = b64url_segment(&hdr_raw, &hdr_len, seg[0], ALN_JWT_HEADER_B64_MAX);
  if (st == ALN_OK)
    st = aln_jwt_json_parse(&hdr, hdr_raw, hdr_len, ALN_JWT_JSON_DEPTH_MAX);
  if (st != ALN_OK) {
    st = st == ALN_ERR_NOMEM ? st : aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "header is not a strict JSON object");
    goto out;
  }
  ALN_GUARD_GOTO(st, header_check(why, hdr), out);
  ALN_GUARD_GOTO(st, header_kid(&kid, why, hdr), out);
  if (seg[2].len == 0) {
    st = aln_refuse(why, ALN_ERR_ATTEST_SIG, "signature segment is empty");
    goto out;
  }
  st = b64url_segment(&payload_raw, &payload_len, seg[1], ALN_JWT_PAYLOAD_B64_MAX);
  if (st == ALN_OK)
    st = b64url_segment(&sig, &sig_len, seg[2], ALN_JWT_SIG_MAX);
  if (st != ALN_OK) {
    st = st == ALN_ERR_NOMEM
             ? st
             : aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "payload or signature is not canonical base64url");
    goto out;
  }

  const json_t *x5c = json_object_get(hdr, "x5c");
  if (x5c != NULL) {
    source = ALN_JWT_KEY_X5C;
    ALN_GUARD_GOTO(st, x5c_key(&pkey, &not_after, why, x5c, kid, keys, now), out);
  } else {
    source = ALN_JWT_KEY_JWKS;
    if (kid == NULL) {
      st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "no x5c and no kid: no key to check the signature with");
      goto out;
    }
    for (size_t i = 0; i < keys->num_jwks && pkey == NULL; i++)
      if (strcmp(keys->jwks[i].kid, kid) == 0)
        pkey = keys->jwks[i].pkey;
    if (pkey == NULL) {
      st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "unknown kid \"%.48s\"", kid);
      goto out;
    }
    ALN_ENSURE_GOTO(st, EVP_PKEY_up_ref(pkey) == 1, ALN_ERR_INTERNAL, out);
  }
  /* The signing input is the two encoded segments and the dot between them, as
   * they appear in the token. */
  ALN_GUARD_GOTO(st, rs256_check(why, pkey, tok, seg[0].len + 1 + seg[1].len, sig, sig_len), out);
  st = aln_jwt_json_parse(&claims, payload_raw, payload_len, ALN_JWT_JSON_DEPTH_MAX);
  if (st != ALN_OK) {
    st = st == ALN_ERR_NOMEM ? st : aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "payload is not a strict JSON object");
    goto out;
  }

  memset(out, 0, sizeof(*out));
  out->header = hdr;
  out->claims = claims;
  out->source = source;
  out->chain_not_after = not_after;
  if (kid != NULL)
    memcpy(out->kid, kid, strlen(kid) + 1);
  hdr = claims = NULL;
  st = ALN_OK;
out:
  EVP_PKEY_free(pkey);
  json_decref(hdr);
  json_decref(claims);
  free(hdr_raw);
  free(payload_raw);
  free(sig);
  return st;
}

void aln_jwt_cleanup(struct aln_jwt *j) {
  if (j == NULL)
    return;
  json_decref(j->header);
  json_decref(j->claims);
  memset(j, 0, sizeof(*j));
}
