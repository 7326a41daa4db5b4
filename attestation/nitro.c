/* Evidence kind "aws-nitro": the verifier of AWS Nitro Enclaves attestation
 * documents. The envelope goes through the strict COSE decoder (attestation/cose.h);
 * unlike "local", the payload must be decoded before the signature is checked,
 * because the key that signed it travels inside it. That decoding is strict and
 * capped, and nothing read from it is believed until the certificate chain to the
 * pinned root and the signature have both verified. Certificates are checked by
 * OpenSSL against a store holding the one root and nothing else, at the caller's
 * time, never the clock or the system store. */
#include "attestation/nitro.h"

#include <cbor.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "attestation/cose.h"
#include "proto/cbs.h"
#include "proto/keyfile.h"

#define ES384_COORD_LEN 48
#define ES384_SIG_LEN (2 * ES384_COORD_LEN)
#define PAYLOAD_DEPTH 2 /* the map; pcrs and cabundle inside it */
#define DIGEST_SHA384 "SHA384"

/* Field sizes from AWS's syntactic checks; module_id's bound is ours (it is shown
 * to operators, and AWS's own ids are under 64 characters). */
#define MODULE_ID_MAX 256
#define CERT_MAX 1024
#define PUBLIC_KEY_MAX 1024
#define USER_DATA_MAX 512
#define NONCE_MAX 512

static const struct aln_cose_profile nitro_profile = {
    .alg = ALN_COSE_ALG_ES384,
    .sig_len = ES384_SIG_LEN,
    .max_len = ALN_NITRO_DOC_MAX,
    .allow_unprotected = 0, /* the NSM sends {}; anything there would be unsigned */
};

struct span {
  const uint8_t *p;
  size_t len;
};

/* An optional field: |present| only when it is a byte string (absent and null are
 * both "not there"). */
struct opt_span {
  int present;
  struct span v;
};

/* The document's fields: views into the decoded payload, valid while it lives. */
struct nitro_doc {
  struct span module_id;
  uint64_t timestamp_ms;
  uint32_t pcr_mask;
  struct span pcr[ALN_NITRO_PCR_NUM];
  struct span cert;
  struct span cabundle[ALN_NITRO_CABUNDLE_MAX];
  size_t num_cabundle;
  struct opt_span public_key, user_data, nonce;
};

enum field {
  F_MODULE_ID,
  F_DIGEST,
  F_TIMESTAMP,
  F_PCRS,
  F_CERTIFICATE,
  F_CABUNDLE,
  F_PUBLIC_KEY,
  F_USER_DATA,
  F_NONCE
};
static const char *const field_names[] = {"module_id", "digest",     "timestamp", "pcrs", "certificate",
                                          "cabundle",  "public_key", "user_data", "nonce"};
#define NUM_FIELDS (sizeof(field_names) / sizeof(field_names[0]))
#define REQUIRED_FIELDS                                                                                                \
  ((1u << F_MODULE_ID) | (1u << F_DIGEST) | (1u << F_TIMESTAMP) | (1u << F_PCRS) | (1u << F_CERTIFICATE) |             \
   (1u << F_CABUNDLE))

/* --- the payload -------------------------------------------------------------------- */

static aln_status bytes_field(struct aln_refusal *why, struct span *out, const cbor_item_t *it, const char *name,
                              size_t min, size_t max) {
  if (aln_cose_cbor_bstr(it, &out->p, &out->len) != ALN_OK || out->len < min || out->len > max)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "%s is not a byte string of %zu..%zu bytes", name, min, max);
  return ALN_OK;
}

static aln_status opt_field(struct aln_refusal *why, struct opt_span *out, const cbor_item_t *it, const char *name,
                            size_t min, size_t max) {
  if (aln_cose_cbor_is_null(it)) {
    out->present = 0;
    return ALN_OK;
  }
  ALN_GUARD(bytes_field(why, &out->v, it, name, min, max));
  out->present = 1;
  return ALN_OK;
}

static aln_status pcrs_field(struct aln_refusal *why, struct nitro_doc *d, const cbor_item_t *it) {
  if (!cbor_isa_map(it) || cbor_map_size(it) < 1 || cbor_map_size(it) > ALN_NITRO_PCR_NUM)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "pcrs is not a map of 1..%d entries", ALN_NITRO_PCR_NUM);
  struct cbor_pair *kv = cbor_map_handle(it);
  for (size_t i = 0; i < cbor_map_size(it); i++) {
    uint64_t index;
    if (aln_cose_cbor_uint(kv[i].key, &index) != ALN_OK || index >= ALN_NITRO_PCR_NUM)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "pcrs key is not an index 0..%d", ALN_NITRO_PCR_NUM - 1);
    /* The loader refuses repeated keys; the mask keeps it true here regardless. */
    if (d->pcr_mask & (1u << index))
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "PCR%u appears twice", (unsigned)index);
    struct span *v = &d->pcr[index];
    if (aln_cose_cbor_bstr(kv[i].value, &v->p, &v->len) != ALN_OK || (v->len != 32 && v->len != 48 && v->len != 64))
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "PCR%u is not a byte string of 32, 48 or 64 bytes",
                        (unsigned)index);
    d->pcr_mask |= 1u << index;
  }
  return ALN_OK;
}

static aln_status cabundle_field(struct aln_refusal *why, struct nitro_doc *d, const cbor_item_t *it) {
  if (!cbor_isa_array(it) || cbor_array_size(it) < 1 || cbor_array_size(it) > ALN_NITRO_CABUNDLE_MAX)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "cabundle is not an array of 1..%d certificates",
                      ALN_NITRO_CABUNDLE_MAX);
  cbor_item_t **el = cbor_array_handle(it);
  d->num_cabundle = cbor_array_size(it);
  for (size_t i = 0; i < d->num_cabundle; i++)
    ALN_GUARD(bytes_field(why, &d->cabundle[i], el[i], "cabundle entry", 1, CERT_MAX));
  return ALN_OK;
}

static aln_status module_id_field(struct aln_refusal *why, struct nitro_doc *d, const cbor_item_t *it) {
  struct span *m = &d->module_id;
  if (aln_cose_cbor_tstr(it, &m->p, &m->len) != ALN_OK || m->len < 1 || m->len > MODULE_ID_MAX)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "module_id is not a text string of 1..%d bytes", MODULE_ID_MAX);
  /* It ends up in claims, logs and JSON: printable ASCII only, as AWS issues it. */
  for (size_t i = 0; i < m->len; i++)
    if (m->p[i] < 0x21 || m->p[i] > 0x7e)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "module_id has a byte outside printable ASCII");
  return ALN_OK;
}

static aln_status field_parse(struct aln_refusal *why, struct nitro_doc *d, enum field f, const cbor_item_t *v) {
  const uint8_t *p;
  size_t len;
  switch (f) {
  case F_MODULE_ID:
    return module_id_field(why, d, v);
  case F_DIGEST:
    if (aln_cose_cbor_tstr(v, &p, &len) != ALN_OK || len != strlen(DIGEST_SHA384) || memcmp(p, DIGEST_SHA384, len) != 0)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "digest is not \"SHA384\"");
    return ALN_OK;
  case F_TIMESTAMP:
    if (aln_cose_cbor_uint(v, &d->timestamp_ms) != ALN_OK || d->timestamp_ms == 0 || d->timestamp_ms > INT64_MAX)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "timestamp is not a positive integer of milliseconds");
    return ALN_OK;
  case F_PCRS:
    return pcrs_field(why, d, v);
  case F_CERTIFICATE:
    return bytes_field(why, &d->cert, v, "certificate", 1, CERT_MAX);
  case F_CABUNDLE:
    return cabundle_field(why, d, v);
  case F_PUBLIC_KEY:
    return opt_field(why, &d->public_key, v, "public_key", 1, PUBLIC_KEY_MAX);
  case F_USER_DATA:
    return opt_field(why, &d->user_data, v, "user_data", 0, USER_DATA_MAX);
  case F_NONCE:
    return opt_field(why, &d->nonce, v, "nonce", 0, NONCE_MAX);
  }
  return aln_refuse(why, ALN_ERR_INTERNAL, "unhandled field");
}

/* doc_parse checks the payload map's keys and types and fills |d| with views into
 * |map|. Every required key must be there; any key AWS does not define is refused. */
static aln_status doc_parse(struct aln_refusal *why, struct nitro_doc *d, const cbor_item_t *map) {
  unsigned seen = 0;
  memset(d, 0, sizeof(*d));
  if (!cbor_isa_map(map))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "payload is not a map");
  struct cbor_pair *kv = cbor_map_handle(map);
  for (size_t i = 0; i < cbor_map_size(map); i++) {
    const uint8_t *k;
    size_t klen, f;
    if (aln_cose_cbor_tstr(kv[i].key, &k, &klen) != ALN_OK)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "payload key is not a text string");
    for (f = 0; f < NUM_FIELDS; f++)
      if (klen == strlen(field_names[f]) && memcmp(k, field_names[f], klen) == 0)
        break;
    if (f == NUM_FIELDS)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "payload has a key AWS does not define");
    if (seen & (1u << f))
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "%s appears twice", field_names[f]);
    seen |= 1u << f;
    ALN_GUARD(field_parse(why, d, (enum field)f, kv[i].value));
  }
  for (size_t f = 0; f < NUM_FIELDS; f++)
    if ((REQUIRED_FIELDS & (1u << f)) && !(seen & (1u << f)))
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "payload has no %s", field_names[f]);
  /* PCR0 is the image measurement every appraisal starts from. */
  if (!(d->pcr_mask & 1u))
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "pcrs has no PCR0");
  return ALN_OK;
}

/* --- the certificate chain ---------------------------------------------------------- */

/* cert_parse decodes one DER certificate that must fill |s| exactly; |name| says
 * which in a refusal. */
static aln_status cert_parse(struct aln_refusal *why, X509 **out, const struct span *s, const char *name) {
  const unsigned char *p = s->p;
  X509 *x = d2i_X509(NULL, &p, (long)s->len);
  if (x == NULL || p != s->p + s->len) {
    X509_free(x);
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "%s is not one DER certificate", name);
  }
  /* AWS signs every link with ECDSA P-384 / SHA-384: anything else is not theirs. */
  if (X509_get_signature_nid(x) != NID_ecdsa_with_SHA384) {
    X509_free(x);
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "%s is not signed with ECDSA-SHA384", name);
  }
  *out = x;
  return ALN_OK;
}

static aln_status asn1_time_unix(const ASN1_TIME *t, int64_t *out) {
  struct tm tm;
  ALN_ENSURE(t != NULL && ASN1_TIME_to_tm(t, &tm) == 1, ALN_ERR_ATTEST_MALFORMED);
  *out = (int64_t)timegm(&tm);
  return ALN_OK;
}

/* chain_verify checks cabundle[0] against the pinned root, the chain from it to the
 * document's certificate at |now|, and returns the certificate's P-384 key in
 * *key (caller frees) and the chain's earliest notAfter in *not_after. */
static aln_status chain_verify(struct aln_refusal *why, EVP_PKEY **key, int64_t *not_after, const struct nitro_doc *d,
                               const uint8_t *root, size_t root_len, int64_t now) {
  aln_status st = ALN_ERR_NOMEM;
  X509 *leaf = NULL, *anchor = NULL, *ca[ALN_NITRO_CABUNDLE_MAX] = {0};
  STACK_OF(X509) *untrusted = NULL;
  X509_STORE *store = NULL;
  X509_STORE_CTX *sc = NULL;
  EVP_PKEY *pk = NULL;
  char group[32], name[32];

  /* The store holds the policy's root, parsed from the policy's bytes: cabundle[0]
   * only ever names it. */
  const unsigned char *rp = root;
  anchor = d2i_X509(NULL, &rp, (long)root_len);
  if (anchor == NULL || rp != root + root_len) {
    st = aln_refuse(why, ALN_ERR_USAGE, "policy root is not one DER certificate");
    goto out;
  }
  /* The anchor is pinned by its bytes: a bundle that starts anywhere else is
   * refused before OpenSSL sees it. */
  if (d->cabundle[0].len != root_len || memcmp(d->cabundle[0].p, root, root_len) != 0) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "cabundle[0] is not the pinned root");
    goto out;
  }
  ALN_GUARD_GOTO(st, cert_parse(why, &leaf, &d->cert, "certificate"), out);
  for (size_t i = 0; i < d->num_cabundle; i++) {
    snprintf(name, sizeof(name), "cabundle[%zu]", i);
    ALN_GUARD_GOTO(st, cert_parse(why, &ca[i], &d->cabundle[i], name), out);
  }

  st = ALN_ERR_NOMEM;
  store = X509_STORE_new();
  untrusted = sk_X509_new_null();
  sc = X509_STORE_CTX_new();
  if (store == NULL || untrusted == NULL || sc == NULL || X509_STORE_add_cert(store, anchor) != 1)
    goto out;
  for (size_t i = 1; i < d->num_cabundle; i++)
    if (sk_X509_push(untrusted, ca[i]) <= 0)
      goto out;
  if (X509_STORE_CTX_init(sc, store, leaf, untrusted) != 1)
    goto out;
  X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(sc);
  X509_VERIFY_PARAM_set_time(vp, (time_t)now);
  X509_VERIFY_PARAM_set_depth(vp, ALN_NITRO_CABUNDLE_MAX);
  /* No X509_V_FLAG_CHECK_SS_SIGNATURE: the root is pinned by its bytes above, so
   * checking its self-signature would cost a P-384 verification and prove nothing. */
  if (X509_verify_cert(sc) != 1) {
    int err = X509_STORE_CTX_get_error(sc);
    aln_status code = err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID
                          ? ALN_ERR_ATTEST_EXPIRED
                          : ALN_ERR_ATTEST_CHAIN;
    st = aln_refuse(why, code, "certificate chain: %s (depth %d)", X509_verify_cert_error_string(err),
                    X509_STORE_CTX_get_error_depth(sc));
    goto out;
  }
  /* OpenSSL builds its own path and may skip bundle entries: insist that the path it
   * verified is the bundle itself, in order (leaf, cabundle[n-1], ..., cabundle[0]). */
  STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(sc);
  if (chain == NULL || (size_t)sk_X509_num(chain) != d->num_cabundle + 1) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "cabundle is not exactly the chain from the root to the certificate");
    goto out;
  }
  *not_after = INT64_MAX;
  for (size_t i = 0; i <= d->num_cabundle; i++) {
    X509 *want = i == 0 ? leaf : i == d->num_cabundle ? anchor : ca[d->num_cabundle - i];
    int64_t t;
    if (X509_cmp(sk_X509_value(chain, (int)i), want) != 0) {
      st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "cabundle is not in order from the root to the certificate");
      goto out;
    }
    if (asn1_time_unix(X509_get0_notAfter(want), &t) != ALN_OK) {
      st = aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "a certificate's notAfter is unreadable");
      goto out;
    }
    if (t < *not_after)
      *not_after = t;
  }
  pk = X509_get_pubkey(leaf);
  if (pk == NULL || !EVP_PKEY_is_a(pk, "EC") || EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) != 1 ||
      strcmp(group, "secp384r1") != 0) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the certificate's key is not ECDSA P-384");
    goto out;
  }
  *key = pk;
  pk = NULL;
  st = ALN_OK;
out:
  EVP_PKEY_free(pk);
  X509_STORE_CTX_free(sc);
  X509_STORE_free(store);
  sk_X509_free(untrusted); /* the stack borrows ca[]; they are freed below */
  for (size_t i = 0; i < ALN_NITRO_CABUNDLE_MAX; i++)
    X509_free(ca[i]);
  X509_free(leaf);
  X509_free(anchor);
  return st;
}

/* --- the signature ------------------------------------------------------------------ */

/* es384_verify checks the COSE signature, R||S as RFC 9053 §2.1 fixes it, which
 * OpenSSL takes only as a DER ECDSA-Sig-Value. */
static aln_status es384_verify(struct aln_refusal *why, EVP_PKEY *key, const struct aln_cose_sign1 *msg) {
  aln_status st = ALN_ERR_NOMEM;
  struct aln_cbb tbs = {0};
  ECDSA_SIG *es = NULL;
  BIGNUM *r = NULL, *s = NULL;
  unsigned char *der = NULL;
  EVP_MD_CTX *md = NULL;
  /* Both parts are bounded by the document cap, so this cannot overflow. */
  size_t cap = msg->protected_len + msg->payload_len + 32;
  ALN_GUARD_GOTO(st, aln_cbb_init(&tbs, cap, cap), out);
  ALN_GUARD_GOTO(
      st, aln_cose_sig_structure(&tbs, msg->protected_hdr, msg->protected_len, msg->payload, msg->payload_len), out);
  st = ALN_ERR_NOMEM;
  es = ECDSA_SIG_new();
  r = BN_bin2bn(msg->sig, ES384_COORD_LEN, NULL);
  s = BN_bin2bn(msg->sig + ES384_COORD_LEN, ES384_COORD_LEN, NULL);
  if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
    goto out;
  r = s = NULL; /* owned by es now */
  int der_len = i2d_ECDSA_SIG(es, &der);
  md = EVP_MD_CTX_new();
  if (der_len <= 0 || md == NULL)
    goto out;
  st = ALN_ERR_CRYPTO;
  if (EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, key) != 1)
    goto out;
  /* 0 is a bad signature, < 0 one that does not decode: both fail closed. */
  if (EVP_DigestVerify(md, der, (size_t)der_len, tbs.buf, tbs.len) != 1) {
    st = aln_refuse(why, ALN_ERR_ATTEST_SIG, "document signature does not verify with the certificate's key");
    goto out;
  }
  st = ALN_OK;
out:
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(es);
  aln_cbb_cleanup(&tbs);
  return st;
}

/* --- appraisal ----------------------------------------------------------------------- */

static aln_status policy_check(struct aln_refusal *why, const struct aln_nitro_policy *policy) {
  if (policy->num_pcrs == 0 || policy->pcrs == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "the aws-nitro policy names no PCR: it would accept any enclave");
  for (size_t i = 0; i < policy->num_pcrs; i++) {
    const struct aln_nitro_pcr *r = &policy->pcrs[i];
    if (r->index >= ALN_NITRO_PCR_NUM || r->value == NULL ||
        (r->value_len != 32 && r->value_len != 48 && r->value_len != 64))
      return aln_refuse(why, ALN_ERR_USAGE, "policy PCR entry %zu is not an index 0..31 with 32, 48 or 64 bytes", i);
  }
  if (policy->binding != ALN_NITRO_BIND_NONCE && policy->binding != ALN_NITRO_BIND_USER_DATA)
    return aln_refuse(why, ALN_ERR_USAGE, "policy binding field unknown");
  if (policy->root_der != NULL && policy->root_der_len == 0)
    return aln_refuse(why, ALN_ERR_USAGE, "policy root is empty");
  return ALN_OK;
}

/* pcrs_appraise holds the document to every index the policy names. */
static aln_status pcrs_appraise(struct aln_refusal *why, const struct nitro_doc *d,
                                const struct aln_nitro_policy *policy) {
  uint32_t named = 0, matched = 0;
  for (size_t i = 0; i < policy->num_pcrs; i++) {
    const struct aln_nitro_pcr *r = &policy->pcrs[i];
    const struct span *v = &d->pcr[r->index];
    named |= 1u << r->index;
    if ((d->pcr_mask & (1u << r->index)) && v->len == r->value_len && memcmp(v->p, r->value, v->len) == 0)
      matched |= 1u << r->index;
  }
  for (unsigned i = 0; i < ALN_NITRO_PCR_NUM; i++) {
    if ((named & ~matched) & (1u << i))
      return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "PCR%u %s", i,
                        (d->pcr_mask & (1u << i)) ? "is not an allowed value" : "is not in the document");
  }
  return ALN_OK;
}

static int is_zero(const struct span *s) {
  uint8_t acc = 0;
  for (size_t i = 0; i < s->len; i++)
    acc |= s->p[i];
  return acc == 0;
}

/* detail_build renders the kind's claims; NULL when out of memory. */
static json_t *detail_build(const struct nitro_doc *d, const char *bound_to) {
  char hex[2 * ALN_NITRO_PCR_MAX_LEN + 1], key[4];
  json_t *pcrs = json_object(), *detail = json_object();
  int fail = pcrs == NULL || detail == NULL;
  for (unsigned i = 0; i < ALN_NITRO_PCR_NUM && !fail; i++) {
    if (!(d->pcr_mask & (1u << i)))
      continue;
    snprintf(key, sizeof(key), "%u", i);
    fail |= aln_hex_encode(hex, sizeof(hex), d->pcr[i].p, d->pcr[i].len) != ALN_OK ||
            json_object_set_new(pcrs, key, json_string(hex)) != 0;
  }
  if (fail) {
    json_decref(pcrs);
    json_decref(detail);
    return NULL;
  }
  /* json_object_set_new takes the value's reference even when it fails. */
  fail |= json_object_set_new(detail, "module_id", json_stringn((const char *)d->module_id.p, d->module_id.len));
  fail |= json_object_set_new(detail, "digest", json_string(DIGEST_SHA384));
  fail |= json_object_set_new(detail, "timestamp_ms", json_integer((json_int_t)d->timestamp_ms));
  fail |= json_object_set_new(detail, "pcrs", pcrs);
  fail |= json_object_set_new(detail, "has_public_key", json_boolean(d->public_key.present));
  fail |= json_object_set_new(detail, "has_user_data", json_boolean(d->user_data.present));
  fail |= json_object_set_new(detail, "has_nonce", json_boolean(d->nonce.present));
  fail |= json_object_set_new(detail, "bound_to", bound_to != NULL ? json_string(bound_to) : json_null());
  if (fail) {
    json_decref(detail);
    return NULL;
  }
  return detail;
}

aln_status aln_nitro_verify(struct aln_claims *out, struct aln_refusal *why, const uint8_t *ev, size_t len,
                            const struct aln_nitro_policy *policy, const struct aln_verify_ctx *ctx) {
  if (why != NULL)
    memset(why, 0, sizeof(*why)); /* status ALN_OK: nothing said yet */
  if (ev == NULL || policy == NULL || ctx == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "missing argument");
  if ((ctx->nonce != NULL && ctx->nonce_len == 0) || ctx->max_skew_s < 0)
    return aln_refuse(why, ALN_ERR_USAGE, "verification context: empty nonce or negative skew");
  ALN_GUARD(policy_check(why, policy));

  aln_status st;
  struct aln_refusal inner = {0};
  struct aln_cose_sign1 msg;
  struct nitro_doc d;
  struct aln_claims claims = {0};
  cbor_item_t *payload = NULL;
  EVP_PKEY *key = NULL;
  int64_t not_after = 0, latest;
  size_t root_len = policy->root_der_len;
  const uint8_t *root = policy->root_der != NULL ? policy->root_der : aln_nitro_aws_root_der(&root_len);
  const char *bound_to = policy->binding == ALN_NITRO_BIND_USER_DATA ? "user_data" : "nonce";

  st = aln_cose_sign1_decode(&msg, &inner, ev, len, &nitro_profile);
  if (st != ALN_OK) {
    st = st == ALN_ERR_NOMEM ? aln_refuse(why, st, "out of memory")
                             : aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "COSE_Sign1: %s", inner.why);
    goto out;
  }
  st = aln_cose_cbor_load(&payload, msg.payload, msg.payload_len, PAYLOAD_DEPTH);
  if (st != ALN_OK) {
    st = st == ALN_ERR_NOMEM
             ? aln_refuse(why, st, "out of memory")
             : aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "payload is not strict CBOR: %s", aln_strerror(st));
    goto out;
  }
  ALN_GUARD_GOTO(st, doc_parse(why, &d, payload), out);
  ALN_GUARD_GOTO(st, chain_verify(why, &key, &not_after, &d, root, root_len, ctx->now), out);
  ALN_GUARD_GOTO(st, es384_verify(why, key, &msg), out);

  /* From here the document is AWS's word. A timestamp ahead of the verifier's clock
   * (beyond the skew allowed) is not a document from the time being judged. */
  if (__builtin_add_overflow(ctx->now, ctx->max_skew_s, &latest))
    latest = INT64_MAX;
  if ((int64_t)(d.timestamp_ms / 1000) > latest) {
    st = aln_refuse(why, ALN_ERR_ATTEST_EXPIRED, "document timestamp %lld is after the verification time %lld",
                    (long long)(d.timestamp_ms / 1000), (long long)ctx->now);
    goto out;
  }
  if (ctx->nonce != NULL) {
    const struct opt_span *f = policy->binding == ALN_NITRO_BIND_USER_DATA ? &d.user_data : &d.nonce;
    if (!f->present || f->v.len != ctx->nonce_len || CRYPTO_memcmp(f->v.p, ctx->nonce, ctx->nonce_len) != 0) {
      st = aln_refuse(why, ALN_ERR_ATTEST_BINDING, "document %s %s the expected nonce", bound_to,
                      f->present ? "does not equal" : "is absent, so cannot carry");
      goto out;
    }
  }
  /* An enclave started with --debug-mode reports zeros for PCR0 (and 1, 2): its
   * memory is readable from the parent, so it proves nothing about what runs. */
  claims.debug = is_zero(&d.pcr[0]);
  if (claims.debug && !policy->allow_debug) {
    st = aln_refuse(why, ALN_ERR_ATTEST_DEBUG, "PCR0 is all zeros: a debug enclave, and the policy refuses debug");
    goto out;
  }
  ALN_GUARD_GOTO(st, pcrs_appraise(why, &d, policy), out);

  snprintf(claims.kind, sizeof(claims.kind), "%s", ALN_NITRO_KIND);
  claims.nonce_checked = ctx->nonce != NULL;
  ALN_GUARD_GOTO(st, aln_hex_encode(claims.measurement, sizeof(claims.measurement), d.pcr[0].p, d.pcr[0].len), out);
  claims.issued_at = (int64_t)(d.timestamp_ms / 1000);
  claims.expires_at = not_after;
  claims.detail = detail_build(&d, claims.nonce_checked ? bound_to : NULL);
  if (claims.detail == NULL) {
    st = aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
    goto out;
  }
  if (out != NULL) {
    *out = claims;
    claims.detail = NULL;
  }
  st = ALN_OK;
out:
  /* Failures of the library calls themselves (allocation, OpenSSL internals) return
   * without a reason of their own; every refusal carries one. */
  if (st != ALN_OK && why != NULL && why->status != st)
    aln_refuse(why, st, "%s", aln_strerror(st));
  aln_claims_cleanup(&claims);
  EVP_PKEY_free(key);
  if (payload != NULL)
    cbor_decref(&payload);
  ERR_clear_error();
  return st;
}
