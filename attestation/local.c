/* Evidence kind "local": a COSE_Sign1 (RFC 9052) with alg EdDSA over an EAT claims
 * set (RFC 9711). The producer emits exactly one encoding (RFC 8949 §4.2.1 core
 * deterministic); the verifier accepts nothing else. The envelope is decoded by the
 * strict COSE decoder every kind shares (attestation/cose.h), which also loads the
 * claims once the signature over them has verified. */
#include "attestation/local.h"

#include <cbor.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/cose.h"

#define EAT_IAT 6
#define EAT_NONCE 10
#define EAT_DBGSTAT 263
#define EAT_PROFILE 265
#define EAT_DBGSTAT_ENABLED 0
#define ED25519_PUB_LEN 32
#define ED25519_SIG_LEN 64

/* The claims map nests one level; one more lets a well-formed but wrong value (an
 * array for a claim) reach the check that names its fault. */
#define CLAIMS_DEPTH_MAX 2

/* A Sig_structure is shorter than the evidence it is rebuilt from: it adds a
 * 12-byte context and an empty bstr, and drops the 66-byte signature. */
#define SIG_STRUCTURE_MAX ALN_LOCAL_EVIDENCE_MAX

static const struct aln_cose_profile local_profile = {
    .alg = ALN_COSE_ALG_EDDSA,
    .sig_len = ED25519_SIG_LEN,
    .max_len = ALN_LOCAL_EVIDENCE_MAX,
    .allow_unprotected = 0, /* not covered by the signature: this profile has none */
};

/* --- encoding ---------------------------------------------------------------------- */

/* Builders take ownership of the items handed to them, NULL included (a failed
 * cbor_build_*), so a construction reads as one expression per entry. */
static bool cb_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value) {
  bool ok = key != NULL && value != NULL && cbor_map_add(map, (struct cbor_pair){.key = key, .value = value});
  if (key != NULL)
    cbor_decref(&key);
  if (value != NULL)
    cbor_decref(&value);
  return ok;
}

/* cb_build_int picks the narrowest width: libcbor encodes the width it is given,
 * and deterministic CBOR wants the shortest argument. */
static cbor_item_t *cb_build_int(int64_t v) {
  bool neg = v < 0;
  uint64_t mag = neg ? (uint64_t)(-1 - v) : (uint64_t)v;
  if (mag <= UINT8_MAX)
    return neg ? cbor_build_negint8((uint8_t)mag) : cbor_build_uint8((uint8_t)mag);
  if (mag <= UINT16_MAX)
    return neg ? cbor_build_negint16((uint16_t)mag) : cbor_build_uint16((uint16_t)mag);
  if (mag <= UINT32_MAX)
    return neg ? cbor_build_negint32((uint32_t)mag) : cbor_build_uint32((uint32_t)mag);
  return neg ? cbor_build_negint64(mag) : cbor_build_uint64(mag);
}

/* cb_build_bytes copies |len| bytes into a definite bstr; an empty one gets no
 * buffer at all rather than relying on malloc(0). */
static cbor_item_t *cb_build_bytes(const uint8_t *p, size_t len) {
  return len == 0 ? cbor_new_definite_bytestring() : cbor_build_bytestring(p, len);
}

/* cb_encode serializes |item| (which it releases, NULL allowed) into |buf|. */
static aln_status cb_encode(uint8_t *buf, size_t cap, size_t *len, cbor_item_t *item) {
  ALN_ENSURE(item != NULL, ALN_ERR_NOMEM);
  *len = cbor_serialize(item, buf, cap);
  cbor_decref(&item);
  ALN_ENSURE(*len > 0, ALN_ERR_INTERNAL);
  return ALN_OK;
}

/* claims_encode writes the claims map with its keys in deterministic order: the
 * one-byte keys 6 and 10, then the three-byte keys 263 and 265. */
static aln_status claims_encode(uint8_t *buf, size_t cap, size_t *len, const uint8_t nonce[ALN_BINDING_LEN],
                                int64_t iat) {
  cbor_item_t *map = cbor_new_definite_map(4);
  ALN_ENSURE(map != NULL, ALN_ERR_NOMEM);
  if (!cb_map_put(map, cbor_build_uint8(EAT_IAT), cb_build_int(iat)) ||
      !cb_map_put(map, cbor_build_uint8(EAT_NONCE), cb_build_bytes(nonce, ALN_BINDING_LEN)) ||
      !cb_map_put(map, cbor_build_uint16(EAT_DBGSTAT), cbor_build_uint8(EAT_DBGSTAT_ENABLED)) ||
      !cb_map_put(map, cbor_build_uint16(EAT_PROFILE), cbor_build_string(ALN_LOCAL_PROFILE))) {
    cbor_decref(&map);
    return ALN_ERR_NOMEM;
  }
  return cb_encode(buf, cap, len, map);
}

aln_status aln_local_evidence_make(uint8_t **out, size_t *out_len, EVP_PKEY *sign_key,
                                   const uint8_t binding[ALN_BINDING_LEN], int64_t iat) {
  ALN_ENSURE(out != NULL && out_len != NULL && sign_key != NULL && binding != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(EVP_PKEY_is_a(sign_key, "ED25519"), ALN_ERR_USAGE);

  aln_status st = ALN_ERR_INTERNAL;
  uint8_t payload[256], prot[16], tbs[512], ev[ALN_LOCAL_EVIDENCE_MAX], sig[ED25519_SIG_LEN];
  size_t payload_len, sig_len = sizeof(sig);
  struct aln_cbb prot_w, tbs_w, ev_w;
  uint8_t *copy = NULL;
  EVP_MD_CTX *md = NULL;

  aln_cbb_init_fixed(&prot_w, prot, sizeof(prot));
  aln_cbb_init_fixed(&tbs_w, tbs, sizeof(tbs));
  aln_cbb_init_fixed(&ev_w, ev, sizeof(ev));
  ALN_GUARD_GOTO(st, claims_encode(payload, sizeof(payload), &payload_len, binding, iat), out);
  ALN_GUARD_GOTO(st, aln_cose_protected_encode(&prot_w, ALN_COSE_ALG_EDDSA), out);
  ALN_GUARD_GOTO(st, aln_cose_sig_structure(&tbs_w, prot, prot_w.len, payload, payload_len), out);
  md = EVP_MD_CTX_new();
  ALN_ENSURE_GOTO(st, md != NULL, ALN_ERR_NOMEM, out);
  /* Ed25519 is PureEdDSA: no digest, the whole Sig_structure is the message. */
  if (EVP_DigestSignInit(md, NULL, NULL, NULL, sign_key) != 1 ||
      EVP_DigestSign(md, sig, &sig_len, tbs, tbs_w.len) != 1 || sig_len != ED25519_SIG_LEN) {
    st = ALN_ERR_CRYPTO;
    goto out;
  }
  ALN_GUARD_GOTO(st, aln_cose_sign1_encode(&ev_w, ALN_COSE_ALG_EDDSA, payload, payload_len, sig, sig_len), out);
  copy = malloc(ev_w.len);
  ALN_ENSURE_GOTO(st, copy != NULL, ALN_ERR_NOMEM, out);
  memcpy(copy, ev, ev_w.len);
  *out = copy;
  *out_len = ev_w.len;
  st = ALN_OK;
out:
  if (st != ALN_OK)
    ERR_clear_error();
  EVP_MD_CTX_free(md);
  return st;
}

/* --- verification ------------------------------------------------------------------ */

/* signature_check verifies the Ed25519 signature over the Sig_structure rebuilt
 * from the exact received protected and payload bytes. */
static aln_status signature_check(const struct aln_cose_sign1 *msg, const uint8_t *sign_pub) {
  aln_status st;
  uint8_t tbs[SIG_STRUCTURE_MAX];
  struct aln_cbb tbs_w;
  EVP_PKEY *pub = NULL;
  EVP_MD_CTX *md = NULL;
  aln_cbb_init_fixed(&tbs_w, tbs, sizeof(tbs));
  ALN_GUARD_GOTO(
      st, aln_cose_sig_structure(&tbs_w, msg->protected_hdr, msg->protected_len, msg->payload, msg->payload_len), out);
  st = ALN_ERR_CRYPTO;
  pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, sign_pub, ED25519_PUB_LEN);
  md = EVP_MD_CTX_new();
  if (pub == NULL || md == NULL || EVP_DigestVerifyInit(md, NULL, NULL, NULL, pub) != 1)
    goto out;
  /* 0 is a bad signature, < 0 an error decoding it: both fail closed. */
  st = EVP_DigestVerify(md, msg->sig, msg->sig_len, tbs, tbs_w.len) == 1 ? ALN_OK : ALN_ERR_ATTEST_SIG;
out:
  ERR_clear_error();
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pub);
  return st;
}

/* claim_apply validates one claim and stores it in |c|; *bit names the claim so
 * the caller can refuse a duplicate. */
static aln_status claim_apply(struct aln_local_claims *c, unsigned *bit, const struct cbor_pair *kv) {
  int64_t key, v;
  const uint8_t *p;
  size_t len;
  ALN_GUARD(aln_cose_cbor_int(kv->key, &key));
  switch (key) {
  case EAT_IAT:
    *bit = 1u << 0;
    return aln_cose_cbor_int(kv->value, &c->iat);
  case EAT_NONCE:
    *bit = 1u << 1;
    ALN_GUARD(aln_cose_cbor_bstr(kv->value, &p, &len));
    ALN_ENSURE(len == ALN_BINDING_LEN, ALN_ERR_MALFORMED);
    memcpy(c->nonce, p, len);
    return ALN_OK;
  case EAT_DBGSTAT:
    /* The profile fixes dbgstat at "enabled": local evidence may never claim a
     * production posture, whatever key signed it. */
    *bit = 1u << 2;
    ALN_GUARD(aln_cose_cbor_int(kv->value, &v));
    ALN_ENSURE(v == EAT_DBGSTAT_ENABLED, ALN_ERR_MALFORMED);
    c->debug = 1;
    return ALN_OK;
  case EAT_PROFILE:
    *bit = 1u << 3;
    ALN_ENSURE(cbor_isa_string(kv->value) && cbor_string_is_definite(kv->value), ALN_ERR_MALFORMED);
    ALN_ENSURE(cbor_string_length(kv->value) == strlen(ALN_LOCAL_PROFILE) &&
                   memcmp(cbor_string_handle(kv->value), ALN_LOCAL_PROFILE, strlen(ALN_LOCAL_PROFILE)) == 0,
               ALN_ERR_MALFORMED);
    return ALN_OK;
  default:
    /* The profile defines exactly these four claims. */
    return ALN_ERR_MALFORMED;
  }
}

/* claims_parse decodes and validates the (already authenticated) claims map. */
static aln_status claims_parse(struct aln_local_claims *c, const uint8_t *payload, size_t payload_len) {
  cbor_item_t *map = NULL;
  aln_status st;
  unsigned seen = 0, bit = 0;
  uint8_t canon[256];
  size_t canon_len;
  ALN_GUARD_GOTO(st, aln_cose_cbor_load(&map, payload, payload_len, CLAIMS_DEPTH_MAX), out);
  st = ALN_ERR_MALFORMED;
  if (!cbor_isa_map(map) || cbor_map_size(map) != 4)
    goto out;
  struct cbor_pair *kv = cbor_map_handle(map);
  for (size_t i = 0; i < 4; i++) {
    ALN_GUARD_GOTO(st, claim_apply(c, &bit, &kv[i]), out);
    /* The loader already refused repeated keys; the bits keep that true here
     * whatever the loader does, and prove below that all four are present. */
    ALN_ENSURE_GOTO(st, (seen & bit) == 0, ALN_ERR_MALFORMED, out);
    seen |= bit;
  }
  ALN_ENSURE_GOTO(st, seen == 0xf, ALN_ERR_MALFORMED, out);
  /* Deterministic encoding only: the claims must be byte-for-byte what the
   * producer emits for these values (key order, shortest integers). */
  ALN_GUARD_GOTO(st, claims_encode(canon, sizeof(canon), &canon_len, c->nonce, c->iat), out);
  ALN_ENSURE_GOTO(st, canon_len == payload_len && memcmp(canon, payload, payload_len) == 0, ALN_ERR_MALFORMED, out);
  st = ALN_OK;
out:
  if (map != NULL)
    cbor_decref(&map);
  return st;
}

aln_status aln_local_evidence_verify(struct aln_local_claims *out, const uint8_t *ev, size_t ev_len,
                                     const uint8_t *sign_pub, size_t sign_pub_len,
                                     const uint8_t expected_binding[ALN_BINDING_LEN]) {
  ALN_ENSURE(ev != NULL && sign_pub != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(sign_pub_len == ED25519_PUB_LEN, ALN_ERR_USAGE);

  struct aln_cose_sign1 msg;
  struct aln_local_claims claims = {0};
  /* The size cap is the decoder's first check. */
  ALN_GUARD(aln_cose_sign1_decode(&msg, NULL, ev, ev_len, &local_profile));
  /* Nothing in the payload is trusted, or even decoded, before the signature. */
  ALN_GUARD(signature_check(&msg, sign_pub));
  ALN_GUARD(claims_parse(&claims, msg.payload, msg.payload_len));
  ALN_ENSURE(expected_binding == NULL || CRYPTO_memcmp(claims.nonce, expected_binding, ALN_BINDING_LEN) == 0,
             ALN_ERR_ATTEST_BINDING);
  if (out != NULL)
    *out = claims;
  return ALN_OK;
}
