/* Evidence kind "local": a COSE_Sign1 (RFC 9052) with alg EdDSA over an EAT claims
 * set (RFC 9711). The producer emits exactly one encoding (RFC 8949 §4.2.1 core
 * deterministic); the verifier accepts nothing else. Untrusted bytes go through a
 * structural prescan with libcbor's streaming decoder (no allocation) before
 * cbor_load builds a tree: cbor_load preallocates whatever count an array or map
 * header declares and cbor_decref frees recursively, so it only ever sees input
 * already proven to be one complete item, definite lengths only, every declared
 * element present, nesting at most CBOR_DEPTH_MAX. The size cap applied first
 * bounds the prescan's work and everything libcbor allocates. */
#include "attestation/local.h"

#include <cbor.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define COSE_TAG_SIGN1 18
#define COSE_TAG_SIGN1_BYTE 0xd2 /* major type 6, argument 18 */
#define COSE_HDR_ALG 1
#define COSE_ALG_EDDSA (-8)
#define EAT_IAT 6
#define EAT_NONCE 10
#define EAT_DBGSTAT 263
#define EAT_PROFILE 265
#define EAT_DBGSTAT_ENABLED 0
#define ED25519_PUB_LEN 32
#define ED25519_SIG_LEN 64

/* Valid evidence nests one level: the COSE array (the tag is consumed before
 * decoding; the protected and claims maps are decoded on their own). One more level
 * lets a well-formed but wrong structure reach the check that names its fault. */
#define CBOR_DEPTH_MAX 2

/* A Sig_structure is shorter than the evidence it is rebuilt from: it adds a
 * 12-byte context and an empty bstr, and drops the 66-byte signature. */
#define SIG_STRUCTURE_MAX ALN_LOCAL_EVIDENCE_MAX

/* The only protected header this profile produces or accepts: {1: -8}. */
static const uint8_t cose_protected[] = {0xa1, 0x01, 0x27};

/* --- structural prescan ------------------------------------------------------- */

struct prescan {
  uint64_t left[CBOR_DEPTH_MAX]; /* items each open container still expects */
  size_t depth;
  size_t avail; /* bytes after the current item's header, at most */
  bool done;    /* the top-level item is complete */
  aln_status st;
};

static void prescan_fail(struct prescan *s, aln_status st) {
  if (s->st == ALN_OK)
    s->st = st;
}

/* An item ended: count it against its container and close every container it fills. */
static void prescan_item(struct prescan *s) {
  while (s->depth > 0) {
    if (--s->left[s->depth - 1] > 0)
      return;
    s->depth--;
  }
  s->done = true;
}

static void prescan_open(struct prescan *s, uint64_t num_items) {
  if (num_items == 0) {
    prescan_item(s);
    return;
  }
  /* Every item takes at least one byte: a count the rest of the input cannot hold
   * means the input was cut short. */
  if (num_items > s->avail) {
    prescan_fail(s, ALN_ERR_TRUNCATED);
    return;
  }
  if (s->depth == CBOR_DEPTH_MAX) {
    prescan_fail(s, ALN_ERR_MALFORMED);
    return;
  }
  s->left[s->depth++] = num_items;
}

static void ps_leaf(void *ctx) {
  prescan_item(ctx);
}
static void ps_u8(void *ctx, uint8_t v) {
  (void)v, prescan_item(ctx);
}
static void ps_u16(void *ctx, uint16_t v) {
  (void)v, prescan_item(ctx);
}
static void ps_u32(void *ctx, uint32_t v) {
  (void)v, prescan_item(ctx);
}
static void ps_u64(void *ctx, uint64_t v) {
  (void)v, prescan_item(ctx);
}
static void ps_str(void *ctx, cbor_data d, size_t n) {
  (void)d, (void)n, prescan_item(ctx);
}
static void ps_f(void *ctx, float v) {
  (void)v, prescan_item(ctx);
}
static void ps_d(void *ctx, double v) {
  (void)v, prescan_item(ctx);
}
static void ps_b(void *ctx, bool v) {
  (void)v, prescan_item(ctx);
}
static void ps_indefinite(void *ctx) {
  prescan_fail(ctx, ALN_ERR_MALFORMED);
}
static void ps_array(void *ctx, size_t n) {
  prescan_open(ctx, n);
}
static void ps_tag(void *ctx, uint64_t v) {
  (void)v, prescan_open(ctx, 1);
}

static void ps_map(void *ctx, size_t n) {
  struct prescan *s = ctx;
  if (n > s->avail / 2) {
    prescan_fail(s, ALN_ERR_TRUNCATED);
    return;
  }
  prescan_open(s, (uint64_t)n * 2);
}

static const struct cbor_callbacks prescan_callbacks = {
    .uint8 = ps_u8,
    .uint16 = ps_u16,
    .uint32 = ps_u32,
    .uint64 = ps_u64,
    .negint8 = ps_u8,
    .negint16 = ps_u16,
    .negint32 = ps_u32,
    .negint64 = ps_u64,
    .byte_string = ps_str,
    .byte_string_start = ps_indefinite,
    .string = ps_str,
    .string_start = ps_indefinite,
    .array_start = ps_array,
    .indef_array_start = ps_indefinite,
    .map_start = ps_map,
    .indef_map_start = ps_indefinite,
    .tag = ps_tag,
    .float2 = ps_f,
    .float4 = ps_f,
    .float8 = ps_d,
    .undefined = ps_leaf,
    .null = ps_leaf,
    .boolean = ps_b,
    .indef_break = ps_indefinite,
};

/* cb_prescan checks that |p| holds exactly one well-formed item with definite
 * lengths only, nesting at most CBOR_DEPTH_MAX, and no trailing bytes. */
static aln_status cb_prescan(const uint8_t *p, size_t len) {
  struct prescan s = {.st = ALN_OK};
  size_t off = 0;
  while (!s.done) {
    ALN_ENSURE(off < len, ALN_ERR_TRUNCATED);
    s.avail = len - off - 1;
    struct cbor_decoder_result r = cbor_stream_decode(p + off, len - off, &prescan_callbacks, &s);
    ALN_ENSURE(r.status != CBOR_DECODER_NEDATA, ALN_ERR_TRUNCATED);
    ALN_ENSURE(r.status == CBOR_DECODER_FINISHED && r.read > 0, ALN_ERR_MALFORMED);
    ALN_GUARD(s.st);
    off += r.read;
  }
  ALN_ENSURE(off == len, ALN_ERR_TRAILING);
  return ALN_OK;
}

/* cb_decode_exact decodes |p| into a new tree in *out (caller decrefs) after the
 * prescan, and checks again that cbor_load consumed every byte. */
static aln_status cb_decode_exact(cbor_item_t **out, const uint8_t *p, size_t len) {
  ALN_GUARD(cb_prescan(p, len));
  struct cbor_load_result res;
  cbor_item_t *item = cbor_load(p, len, &res);
  if (item == NULL)
    return res.error.code == CBOR_ERR_MEMERROR ? ALN_ERR_NOMEM : ALN_ERR_MALFORMED;
  if (res.read != len) {
    cbor_decref(&item);
    return ALN_ERR_TRAILING;
  }
  *out = item;
  return ALN_OK;
}

/* --- typed views of decoded items ----------------------------------------------- */

/* cb_int reads a CBOR integer (major type 0 or 1) that fits int64_t. */
static aln_status cb_int(const cbor_item_t *it, int64_t *out) {
  bool neg = cbor_isa_negint(it);
  ALN_ENSURE(neg || cbor_isa_uint(it), ALN_ERR_MALFORMED);
  uint64_t mag = cbor_get_int(it);
  ALN_ENSURE(mag <= INT64_MAX, ALN_ERR_MALFORMED);
  *out = neg ? -1 - (int64_t)mag : (int64_t)mag;
  return ALN_OK;
}

/* cb_bstr borrows the bytes of a definite byte string (NULL when empty). */
static aln_status cb_bstr(const cbor_item_t *it, const uint8_t **p, size_t *len) {
  ALN_ENSURE(cbor_isa_bytestring(it) && cbor_bytestring_is_definite(it), ALN_ERR_MALFORMED);
  *p = cbor_bytestring_handle(it);
  *len = cbor_bytestring_length(it);
  return ALN_OK;
}

static bool cb_is_map(const cbor_item_t *it, size_t num_pairs) {
  return cbor_isa_map(it) && cbor_map_is_definite(it) && cbor_map_size(it) == num_pairs;
}

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

static bool cb_array_put(cbor_item_t *array, cbor_item_t *item) {
  bool ok = item != NULL && cbor_array_push(array, item);
  if (item != NULL)
    cbor_decref(&item);
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

/* sig_structure writes ["Signature1", protected, h'', payload] (RFC 9052 §4.4). */
static aln_status sig_structure(uint8_t *buf, size_t cap, size_t *len, const uint8_t *prot, size_t prot_len,
                                const uint8_t *payload, size_t payload_len) {
  cbor_item_t *arr = cbor_new_definite_array(4);
  ALN_ENSURE(arr != NULL, ALN_ERR_NOMEM);
  if (!cb_array_put(arr, cbor_build_string("Signature1")) || !cb_array_put(arr, cb_build_bytes(prot, prot_len)) ||
      !cb_array_put(arr, cb_build_bytes(NULL, 0)) || !cb_array_put(arr, cb_build_bytes(payload, payload_len))) {
    cbor_decref(&arr);
    return ALN_ERR_NOMEM;
  }
  return cb_encode(buf, cap, len, arr);
}

/* cose_sign1_encode writes 18([protected, {}, payload, signature]). */
static aln_status cose_sign1_encode(uint8_t *buf, size_t cap, size_t *len, const uint8_t *payload, size_t payload_len,
                                    const uint8_t sig[ED25519_SIG_LEN]) {
  cbor_item_t *arr = cbor_new_definite_array(4);
  cbor_item_t *tag = cbor_new_tag(COSE_TAG_SIGN1);
  aln_status st = ALN_ERR_NOMEM;
  if (arr == NULL || tag == NULL || !cb_array_put(arr, cb_build_bytes(cose_protected, sizeof(cose_protected))) ||
      !cb_array_put(arr, cbor_new_definite_map(0)) || !cb_array_put(arr, cb_build_bytes(payload, payload_len)) ||
      !cb_array_put(arr, cb_build_bytes(sig, ED25519_SIG_LEN)))
    goto out;
  cbor_tag_set_item(tag, arr);
  st = cb_encode(buf, cap, len, tag);
  tag = NULL;
out:
  if (arr != NULL)
    cbor_decref(&arr);
  if (tag != NULL)
    cbor_decref(&tag);
  return st;
}

aln_status aln_local_evidence_make(uint8_t **out, size_t *out_len, EVP_PKEY *sign_key,
                                   const uint8_t binding[ALN_BINDING_LEN], int64_t iat) {
  ALN_ENSURE(out != NULL && out_len != NULL && sign_key != NULL && binding != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(EVP_PKEY_is_a(sign_key, "ED25519"), ALN_ERR_USAGE);

  aln_status st = ALN_ERR_INTERNAL;
  uint8_t payload[256], tbs[512], ev[ALN_LOCAL_EVIDENCE_MAX], sig[ED25519_SIG_LEN];
  size_t payload_len, tbs_len, ev_len, sig_len = sizeof(sig);
  uint8_t *copy = NULL;
  EVP_MD_CTX *md = NULL;

  ALN_GUARD_GOTO(st, claims_encode(payload, sizeof(payload), &payload_len, binding, iat), out);
  ALN_GUARD_GOTO(
      st, sig_structure(tbs, sizeof(tbs), &tbs_len, cose_protected, sizeof(cose_protected), payload, payload_len), out);
  md = EVP_MD_CTX_new();
  ALN_ENSURE_GOTO(st, md != NULL, ALN_ERR_NOMEM, out);
  /* Ed25519 is PureEdDSA: no digest, the whole Sig_structure is the message. */
  if (EVP_DigestSignInit(md, NULL, NULL, NULL, sign_key) != 1 || EVP_DigestSign(md, sig, &sig_len, tbs, tbs_len) != 1 ||
      sig_len != ED25519_SIG_LEN) {
    st = ALN_ERR_CRYPTO;
    goto out;
  }
  ALN_GUARD_GOTO(st, cose_sign1_encode(ev, sizeof(ev), &ev_len, payload, payload_len, sig), out);
  copy = malloc(ev_len);
  ALN_ENSURE_GOTO(st, copy != NULL, ALN_ERR_NOMEM, out);
  memcpy(copy, ev, ev_len);
  *out = copy;
  *out_len = ev_len;
  st = ALN_OK;
out:
  if (st != ALN_OK)
    ERR_clear_error();
  EVP_MD_CTX_free(md);
  return st;
}

/* --- verification ------------------------------------------------------------------ */

struct cose_parts {
  const uint8_t *prot, *payload, *sig;
  size_t prot_len, payload_len, sig_len;
};

/* cose_parse borrows the four members of a COSE_Sign1 array from |msg|. */
static aln_status cose_parse(struct cose_parts *parts, const cbor_item_t *msg) {
  ALN_ENSURE(cbor_isa_array(msg) && cbor_array_is_definite(msg) && cbor_array_size(msg) == 4, ALN_ERR_MALFORMED);
  cbor_item_t **el = cbor_array_handle(msg);
  ALN_GUARD(cb_bstr(el[0], &parts->prot, &parts->prot_len));
  /* Unprotected headers are not covered by the signature: this profile has none. */
  ALN_ENSURE(cb_is_map(el[1], 0), ALN_ERR_MALFORMED);
  ALN_GUARD(cb_bstr(el[2], &parts->payload, &parts->payload_len));
  ALN_GUARD(cb_bstr(el[3], &parts->sig, &parts->sig_len));
  ALN_ENSURE(parts->payload_len > 0 && parts->sig_len == ED25519_SIG_LEN, ALN_ERR_MALFORMED);
  return ALN_OK;
}

/* protected_check accepts exactly {1: -8}. Any other label is refused, crit (2)
 * included: a verifier must not skip a header it does not understand. */
static aln_status protected_check(const uint8_t *prot, size_t prot_len) {
  cbor_item_t *hdr = NULL;
  aln_status st;
  int64_t label, alg;
  ALN_GUARD_GOTO(st, cb_decode_exact(&hdr, prot, prot_len), out);
  st = ALN_ERR_MALFORMED;
  if (!cb_is_map(hdr, 1))
    goto out;
  struct cbor_pair *kv = cbor_map_handle(hdr);
  if (cb_int(kv[0].key, &label) != ALN_OK || label != COSE_HDR_ALG || cb_int(kv[0].value, &alg) != ALN_OK ||
      alg != COSE_ALG_EDDSA)
    goto out;
  /* Deterministic encoding only: {1: -8} has one. */
  if (prot_len != sizeof(cose_protected) || memcmp(prot, cose_protected, prot_len) != 0)
    goto out;
  st = ALN_OK;
out:
  if (hdr != NULL)
    cbor_decref(&hdr);
  return st;
}

/* signature_check verifies the Ed25519 signature over the Sig_structure rebuilt
 * from the exact received protected and payload bytes. */
static aln_status signature_check(const struct cose_parts *parts, const uint8_t *sign_pub) {
  aln_status st;
  uint8_t tbs[SIG_STRUCTURE_MAX];
  size_t tbs_len;
  EVP_PKEY *pub = NULL;
  EVP_MD_CTX *md = NULL;
  ALN_GUARD_GOTO(
      st, sig_structure(tbs, sizeof(tbs), &tbs_len, parts->prot, parts->prot_len, parts->payload, parts->payload_len),
      out);
  st = ALN_ERR_CRYPTO;
  pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, sign_pub, ED25519_PUB_LEN);
  md = EVP_MD_CTX_new();
  if (pub == NULL || md == NULL || EVP_DigestVerifyInit(md, NULL, NULL, NULL, pub) != 1)
    goto out;
  /* 0 is a bad signature, < 0 an error decoding it: both fail closed. */
  st = EVP_DigestVerify(md, parts->sig, parts->sig_len, tbs, tbs_len) == 1 ? ALN_OK : ALN_ERR_ATTEST_SIG;
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
  ALN_GUARD(cb_int(kv->key, &key));
  switch (key) {
  case EAT_IAT:
    *bit = 1u << 0;
    return cb_int(kv->value, &c->iat);
  case EAT_NONCE:
    *bit = 1u << 1;
    ALN_GUARD(cb_bstr(kv->value, &p, &len));
    ALN_ENSURE(len == ALN_BINDING_LEN, ALN_ERR_MALFORMED);
    memcpy(c->nonce, p, len);
    return ALN_OK;
  case EAT_DBGSTAT:
    /* The profile fixes dbgstat at "enabled": local evidence may never claim a
     * production posture, whatever key signed it. */
    *bit = 1u << 2;
    ALN_GUARD(cb_int(kv->value, &v));
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
  ALN_GUARD_GOTO(st, cb_decode_exact(&map, payload, payload_len), out);
  st = ALN_ERR_MALFORMED;
  if (!cb_is_map(map, 4))
    goto out;
  struct cbor_pair *kv = cbor_map_handle(map);
  for (size_t i = 0; i < 4; i++) {
    ALN_GUARD_GOTO(st, claim_apply(c, &bit, &kv[i]), out);
    /* libcbor keeps duplicate keys. Every accepted key maps to its own bit, so a
     * repeated bit is a repeated key (any other key was refused above). */
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
  ALN_ENSURE(ev != NULL && sign_pub != NULL && expected_binding != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(sign_pub_len == ED25519_PUB_LEN, ALN_ERR_USAGE);
  /* The cap comes before any decoding: with the prescan's depth limit it bounds
   * libcbor's allocations and the recursion of cbor_load's tree and cbor_decref. */
  ALN_ENSURE(ev_len <= ALN_LOCAL_EVIDENCE_MAX, ALN_ERR_MALFORMED);

  aln_status st;
  cbor_item_t *root = NULL;
  struct cose_parts parts;
  struct aln_local_claims claims = {0};
  /* The tag is optional and its one deterministic encoding is the byte 0xd2,
   * consumed here: libcbor before 0.11 rejects the one-byte tags 6..20 as
   * unassigned (PJK/libcbor#307). Any other tag, or a second one, is refused
   * by the decoder or by cose_parse. */
  if (ev_len > 0 && ev[0] == COSE_TAG_SIGN1_BYTE) {
    ev++;
    ev_len--;
  }
  ALN_GUARD_GOTO(st, cb_decode_exact(&root, ev, ev_len), out);
  ALN_GUARD_GOTO(st, cose_parse(&parts, root), out);
  ALN_GUARD_GOTO(st, protected_check(parts.prot, parts.prot_len), out);
  /* Nothing in the payload is trusted, or even decoded, before the signature. */
  ALN_GUARD_GOTO(st, signature_check(&parts, sign_pub), out);
  ALN_GUARD_GOTO(st, claims_parse(&claims, parts.payload, parts.payload_len), out);
  ALN_ENSURE_GOTO(st, CRYPTO_memcmp(claims.nonce, expected_binding, ALN_BINDING_LEN) == 0, ALN_ERR_ATTEST_BINDING, out);
  if (out != NULL)
    *out = claims;
  st = ALN_OK;
out:
  if (root != NULL)
    cbor_decref(&root);
  return st;
}
