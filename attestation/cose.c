/* The strict COSE_Sign1 decoder and the strict CBOR loader behind it. Untrusted
 * bytes go through a structural scan with libcbor's streaming decoder (no
 * allocation) before anything else: cbor_load preallocates whatever count an array
 * or map header declares and cbor_decref frees recursively, so it only ever sees
 * input already proven to be one complete item, definite lengths only, every
 * declared element present, nesting bounded. The COSE envelope itself is then read
 * head by head with a bounded cursor, so the decoded parts are views into the
 * caller's bytes: the signature is checked over exactly what was received. */
#include "attestation/cose.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define COSE_TAG_SIGN1_BYTE 0xd2 /* major type 6, argument 18, in its one-byte form */
#define COSE_HDR_ALG 1
#define COSE_HDR_CRIT 2

#define CBOR_UINT 0
#define CBOR_NEGINT 1
#define CBOR_BSTR 2
#define CBOR_TSTR 3
#define CBOR_ARRAY 4
#define CBOR_MAP 5

/* The envelope nests one level (the array; its members are strings and an empty
 * map). One more lets a well-formed but wrong structure, such as a non-empty
 * unprotected map, reach the check that names its fault. */
#define ENVELOPE_DEPTH 2
/* {1: alg} is one level; crit's array of labels would be a second. */
#define PROTECTED_DEPTH 2

/* --- structural scan ------------------------------------------------------------ */

struct scan {
  uint64_t left[ALN_COSE_DEPTH_MAX]; /* items each open container still expects */
  size_t depth, max_depth;
  size_t avail; /* bytes after the current item's header, at most */
  bool done;    /* the top-level item is complete */
  aln_status st;
};

static void scan_fail(struct scan *s, aln_status st) {
  if (s->st == ALN_OK)
    s->st = st;
}

/* An item ended: count it against its container and close every container it fills. */
static void scan_item(struct scan *s) {
  while (s->depth > 0) {
    if (--s->left[s->depth - 1] > 0)
      return;
    s->depth--;
  }
  s->done = true;
}

static void scan_open(struct scan *s, uint64_t num_items) {
  if (num_items == 0) {
    scan_item(s);
    return;
  }
  /* Every item takes at least one byte: a count the rest of the input cannot hold
   * means the input was cut short. */
  if (num_items > s->avail) {
    scan_fail(s, ALN_ERR_TRUNCATED);
    return;
  }
  if (s->depth == s->max_depth) {
    scan_fail(s, ALN_ERR_MALFORMED);
    return;
  }
  s->left[s->depth++] = num_items;
}

static void sc_leaf(void *ctx) {
  scan_item(ctx);
}
static void sc_u8(void *ctx, uint8_t v) {
  (void)v, scan_item(ctx);
}
static void sc_u16(void *ctx, uint16_t v) {
  (void)v, scan_item(ctx);
}
static void sc_u32(void *ctx, uint32_t v) {
  (void)v, scan_item(ctx);
}
static void sc_u64(void *ctx, uint64_t v) {
  (void)v, scan_item(ctx);
}
static void sc_str(void *ctx, cbor_data d, size_t n) {
  (void)d, (void)n, scan_item(ctx);
}
static void sc_f(void *ctx, float v) {
  (void)v, scan_item(ctx);
}
static void sc_d(void *ctx, double v) {
  (void)v, scan_item(ctx);
}
static void sc_b(void *ctx, bool v) {
  (void)v, scan_item(ctx);
}
static void sc_refuse(void *ctx) {
  scan_fail(ctx, ALN_ERR_MALFORMED);
}
/* No payload here uses a tag, and the envelope's one tag is consumed before the
 * scan (see aln_cose_sign1_decode): any tag is a structure nobody checks. */
static void sc_tag(void *ctx, uint64_t v) {
  (void)v, scan_fail(ctx, ALN_ERR_MALFORMED);
}
static void sc_array(void *ctx, size_t n) {
  scan_open(ctx, n);
}

static void sc_map(void *ctx, size_t n) {
  struct scan *s = ctx;
  if (n > s->avail / 2) {
    scan_fail(s, ALN_ERR_TRUNCATED);
    return;
  }
  scan_open(s, (uint64_t)n * 2);
}

static const struct cbor_callbacks scan_callbacks = {
    .uint8 = sc_u8,
    .uint16 = sc_u16,
    .uint32 = sc_u32,
    .uint64 = sc_u64,
    .negint8 = sc_u8,
    .negint16 = sc_u16,
    .negint32 = sc_u32,
    .negint64 = sc_u64,
    .byte_string = sc_str,
    .byte_string_start = sc_refuse,
    .string = sc_str,
    .string_start = sc_refuse,
    .array_start = sc_array,
    .indef_array_start = sc_refuse,
    .map_start = sc_map,
    .indef_map_start = sc_refuse,
    .tag = sc_tag,
    .float2 = sc_f,
    .float4 = sc_f,
    .float8 = sc_d,
    .undefined = sc_leaf,
    .null = sc_leaf,
    .boolean = sc_b,
    .indef_break = sc_refuse,
};

/* item_scan checks that |p| starts with one well-formed item with definite lengths
 * only, no tags and nesting at most |max_depth|, and sets *used to its length. */
static aln_status item_scan(const uint8_t *p, size_t len, size_t max_depth, size_t *used) {
  struct scan s = {.st = ALN_OK, .max_depth = max_depth};
  size_t off = 0;
  while (!s.done) {
    ALN_ENSURE(off < len, ALN_ERR_TRUNCATED);
    s.avail = len - off - 1;
    struct cbor_decoder_result r = cbor_stream_decode(p + off, len - off, &scan_callbacks, &s);
    ALN_ENSURE(r.status != CBOR_DECODER_NEDATA, ALN_ERR_TRUNCATED);
    ALN_ENSURE(r.status == CBOR_DECODER_FINISHED && r.read > 0, ALN_ERR_MALFORMED);
    ALN_GUARD(s.st);
    off += r.read;
  }
  *used = off;
  return ALN_OK;
}

/* --- the strict loader --------------------------------------------------------------- */

/* key_class orders the key types a map may use: unsigned, negative, text. */
static int key_class(const cbor_item_t *k) {
  if (cbor_isa_uint(k))
    return 0;
  if (cbor_isa_negint(k))
    return 1;
  if (cbor_isa_string(k) && cbor_string_is_definite(k))
    return 2;
  return -1;
}

/* key_cmp compares two keys by value, not encoding: 1 and 0x18 0x01 are the same key. */
static int key_cmp(const void *a, const void *b) {
  const cbor_item_t *x = *(const cbor_item_t *const *)a, *y = *(const cbor_item_t *const *)b;
  int cx = key_class(x), cy = key_class(y);
  if (cx != cy)
    return cx < cy ? -1 : 1;
  if (cx < 2) {
    uint64_t vx = cbor_get_int(x), vy = cbor_get_int(y);
    return vx < vy ? -1 : vx > vy;
  }
  size_t lx = cbor_string_length(x), ly = cbor_string_length(y);
  if (lx != ly)
    return lx < ly ? -1 : 1;
  return lx == 0 ? 0 : memcmp(cbor_string_handle(x), cbor_string_handle(y), lx);
}

static aln_status tree_check(const cbor_item_t *it);

/* map_check refuses keys that are not integers or text and repeated keys (libcbor
 * keeps both entries of a repeated key, and which one a reader sees is then up to
 * the reader): sorted by value, a repeat sits next to its twin. */
static aln_status map_check(const cbor_item_t *map) {
  size_t n = cbor_map_size(map);
  struct cbor_pair *kv = cbor_map_handle(map);
  for (size_t i = 0; i < n; i++) {
    ALN_ENSURE(key_class(kv[i].key) >= 0, ALN_ERR_MALFORMED);
    ALN_GUARD(tree_check(kv[i].value));
  }
  if (n < 2)
    return ALN_OK;
  /* n is bounded by the caller's size cap (each pair takes two bytes at least). */
  const cbor_item_t **keys = malloc(n * sizeof(*keys));
  ALN_ENSURE(keys != NULL, ALN_ERR_NOMEM);
  for (size_t i = 0; i < n; i++)
    keys[i] = kv[i].key;
  qsort(keys, n, sizeof(*keys), key_cmp);
  aln_status st = ALN_OK;
  for (size_t i = 1; i < n && st == ALN_OK; i++)
    if (key_cmp(&keys[i - 1], &keys[i]) == 0)
      st = ALN_ERR_MALFORMED;
  free(keys);
  return st;
}

/* tree_check recurses at most as deep as the scan allowed. */
static aln_status tree_check(const cbor_item_t *it) {
  if (cbor_isa_map(it))
    return map_check(it);
  if (cbor_isa_array(it)) {
    cbor_item_t **el = cbor_array_handle(it);
    for (size_t i = 0; i < cbor_array_size(it); i++)
      ALN_GUARD(tree_check(el[i]));
  }
  return ALN_OK;
}

aln_status aln_cose_cbor_load(cbor_item_t **out, const uint8_t *p, size_t len, size_t max_depth) {
  ALN_ENSURE(out != NULL && (p != NULL || len == 0), ALN_ERR_USAGE);
  ALN_ENSURE(max_depth <= ALN_COSE_DEPTH_MAX, ALN_ERR_USAGE);
  size_t used;
  ALN_GUARD(item_scan(p, len, max_depth, &used));
  ALN_ENSURE(used == len, ALN_ERR_TRAILING);
  struct cbor_load_result res;
  cbor_item_t *item = cbor_load(p, len, &res);
  if (item == NULL)
    return res.error.code == CBOR_ERR_MEMERROR ? ALN_ERR_NOMEM : ALN_ERR_MALFORMED;
  aln_status st = res.read == len ? tree_check(item) : ALN_ERR_TRAILING;
  if (st != ALN_OK) {
    cbor_decref(&item);
    return st;
  }
  *out = item;
  return ALN_OK;
}

aln_status aln_cose_cbor_int(const cbor_item_t *it, int64_t *out) {
  bool neg = cbor_isa_negint(it);
  ALN_ENSURE(neg || cbor_isa_uint(it), ALN_ERR_MALFORMED);
  uint64_t mag = cbor_get_int(it);
  ALN_ENSURE(mag <= INT64_MAX, ALN_ERR_MALFORMED);
  *out = neg ? -1 - (int64_t)mag : (int64_t)mag;
  return ALN_OK;
}

aln_status aln_cose_cbor_uint(const cbor_item_t *it, uint64_t *out) {
  ALN_ENSURE(cbor_isa_uint(it), ALN_ERR_MALFORMED);
  *out = cbor_get_int(it);
  return ALN_OK;
}

aln_status aln_cose_cbor_bstr(const cbor_item_t *it, const uint8_t **p, size_t *len) {
  ALN_ENSURE(cbor_isa_bytestring(it) && cbor_bytestring_is_definite(it), ALN_ERR_MALFORMED);
  *p = cbor_bytestring_handle(it);
  *len = cbor_bytestring_length(it);
  return ALN_OK;
}

aln_status aln_cose_cbor_tstr(const cbor_item_t *it, const uint8_t **p, size_t *len) {
  ALN_ENSURE(cbor_isa_string(it) && cbor_string_is_definite(it), ALN_ERR_MALFORMED);
  *p = cbor_string_handle(it);
  *len = cbor_string_length(it);
  return ALN_OK;
}

int aln_cose_cbor_is_null(const cbor_item_t *it) {
  /* libcbor 0.8's cbor_is_null asserts that a major-type-7 item is not a float
   * (cbor_ctrl_value): a float where null may stand would abort the process on
   * input nobody has authenticated yet. Ask about the width first. */
  return cbor_isa_float_ctrl(it) && cbor_float_get_width(it) == CBOR_FLOAT_0 && cbor_ctrl_value(it) == CBOR_CTRL_NULL;
}

/* --- encoding ---------------------------------------------------------------------- */

/* put_head appends a major type and argument in the shortest form (RFC 8949
 * §4.2.1), all at once so a full writer is left as it was. */
static aln_status put_head(struct aln_cbb *cbb, unsigned major, uint64_t arg) {
  uint8_t h[9];
  size_t n;
  uint8_t mt = (uint8_t)(major << 5);
  if (arg < 24) {
    h[0] = (uint8_t)(mt | arg);
    n = 1;
  } else {
    unsigned width = arg <= UINT8_MAX ? 1 : arg <= UINT16_MAX ? 2 : arg <= UINT32_MAX ? 4 : 8;
    h[0] = (uint8_t)(mt | (width == 1 ? 24 : width == 2 ? 25 : width == 4 ? 26 : 27));
    for (unsigned i = 0; i < width; i++)
      h[1 + i] = (uint8_t)(arg >> (8 * (width - 1 - i)));
    n = 1 + width;
  }
  return aln_cbb_add_bytes(cbb, h, n);
}

static aln_status put_int(struct aln_cbb *cbb, int64_t v) {
  return v < 0 ? put_head(cbb, CBOR_NEGINT, (uint64_t)(-1 - v)) : put_head(cbb, CBOR_UINT, (uint64_t)v);
}

static aln_status put_bstr(struct aln_cbb *cbb, const uint8_t *p, size_t len) {
  ALN_GUARD(put_head(cbb, CBOR_BSTR, len));
  return aln_cbb_add_bytes(cbb, p, len);
}

aln_status aln_cose_protected_encode(struct aln_cbb *cbb, int64_t alg) {
  ALN_GUARD(put_head(cbb, CBOR_MAP, 1));
  ALN_GUARD(put_int(cbb, COSE_HDR_ALG));
  return put_int(cbb, alg);
}

aln_status aln_cose_sig_structure(struct aln_cbb *cbb, const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                                  size_t payload_len) {
  static const char context[] = "Signature1";
  ALN_GUARD(put_head(cbb, CBOR_ARRAY, 4));
  ALN_GUARD(put_head(cbb, CBOR_TSTR, sizeof(context) - 1));
  ALN_GUARD(aln_cbb_add_bytes(cbb, (const uint8_t *)context, sizeof(context) - 1));
  ALN_GUARD(put_bstr(cbb, prot, prot_len));
  ALN_GUARD(put_bstr(cbb, NULL, 0)); /* external_aad: none */
  return put_bstr(cbb, payload, payload_len);
}

aln_status aln_cose_sign1_encode(struct aln_cbb *cbb, int64_t alg, const uint8_t *payload, size_t payload_len,
                                 const uint8_t *sig, size_t sig_len) {
  uint8_t prot[16];
  struct aln_cbb p;
  aln_cbb_init_fixed(&p, prot, sizeof(prot));
  ALN_GUARD(aln_cose_protected_encode(&p, alg));
  ALN_GUARD(aln_cbb_add_u8(cbb, COSE_TAG_SIGN1_BYTE));
  ALN_GUARD(put_head(cbb, CBOR_ARRAY, 4));
  ALN_GUARD(put_bstr(cbb, prot, p.len));
  ALN_GUARD(put_head(cbb, CBOR_MAP, 0));
  ALN_GUARD(put_bstr(cbb, payload, payload_len));
  return put_bstr(cbb, sig, sig_len);
}

/* --- decoding ---------------------------------------------------------------------- */

/* get_head reads one item head. The scan has already proven the structure, so a
 * failure here is a bug or a caller that skipped it: refuse either way. */
static aln_status get_head(struct aln_cbs *c, unsigned *major, uint64_t *arg) {
  uint8_t ib;
  ALN_GUARD(aln_cbs_get_u8(c, &ib));
  *major = ib >> 5;
  unsigned ai = ib & 0x1f;
  if (ai < 24) {
    *arg = ai;
    return ALN_OK;
  }
  ALN_ENSURE(ai <= 27, ALN_ERR_MALFORMED); /* reserved, or indefinite */
  uint8_t v8;
  uint16_t v16;
  uint32_t v32;
  switch (ai) {
  case 24:
    ALN_GUARD(aln_cbs_get_u8(c, &v8));
    *arg = v8;
    return ALN_OK;
  case 25:
    ALN_GUARD(aln_cbs_get_u16(c, &v16));
    *arg = v16;
    return ALN_OK;
  case 26:
    ALN_GUARD(aln_cbs_get_u32(c, &v32));
    *arg = v32;
    return ALN_OK;
  default:
    return aln_cbs_get_u64(c, arg);
  }
}

static aln_status get_bstr(struct aln_cbs *c, const uint8_t **p, size_t *len) {
  unsigned major;
  uint64_t n;
  struct aln_cbs s;
  ALN_GUARD(get_head(c, &major, &n));
  ALN_ENSURE(major == CBOR_BSTR, ALN_ERR_MALFORMED);
  ALN_ENSURE(n <= c->len, ALN_ERR_TRUNCATED);
  ALN_GUARD(aln_cbs_get_bytes(c, &s, (size_t)n));
  *p = s.p;
  *len = s.len;
  return ALN_OK;
}

/* get_unprotected takes the unprotected map: {} unless the profile allows more, in
 * which case the whole map must still pass the strict loader. */
static aln_status get_unprotected(struct aln_cose_sign1 *out, struct aln_cbs *c, int allow) {
  struct aln_cbs peek = *c;
  unsigned major;
  uint64_t n;
  size_t used;
  ALN_GUARD(get_head(&peek, &major, &n));
  ALN_ENSURE(major == CBOR_MAP, ALN_ERR_MALFORMED);
  /* Unprotected headers are not covered by the signature. */
  ALN_ENSURE(n == 0 || allow, ALN_ERR_MALFORMED);
  ALN_GUARD(item_scan(c->p, c->len, ALN_COSE_DEPTH_MAX, &used));
  if (n > 0) {
    cbor_item_t *map = NULL;
    ALN_GUARD(aln_cose_cbor_load(&map, c->p, used, ALN_COSE_DEPTH_MAX));
    cbor_decref(&map);
  }
  out->unprotected = c->p;
  out->unprotected_len = used;
  return aln_cbs_skip(c, used);
}

/* protected_check accepts exactly the deterministic {1: alg}. Any other label is
 * refused, crit (2) included: a verifier must not skip a header it does not
 * understand (RFC 9052 §3.1), and this one understands only alg. */
static aln_status protected_check(struct aln_refusal *why, const uint8_t *prot, size_t prot_len, int64_t alg) {
  cbor_item_t *hdr = NULL;
  aln_status st;
  int64_t label, got;
  uint8_t canon[16];
  struct aln_cbb cbb;
  st = aln_cose_cbor_load(&hdr, prot, prot_len, PROTECTED_DEPTH);
  if (st != ALN_OK)
    return aln_refuse(why, st, "protected header is not a strict CBOR map");
  st = ALN_ERR_MALFORMED;
  if (!cbor_isa_map(hdr)) {
    aln_refuse(why, st, "protected header is not a map");
    goto out;
  }
  struct cbor_pair *kv = cbor_map_handle(hdr);
  for (size_t i = 0; i < cbor_map_size(hdr); i++) {
    if (aln_cose_cbor_int(kv[i].key, &label) == ALN_OK && label == COSE_HDR_CRIT) {
      aln_refuse(why, st, "protected header has critical parameters (crit): none is understood here");
      goto out;
    }
  }
  if (cbor_map_size(hdr) != 1 || aln_cose_cbor_int(kv[0].key, &label) != ALN_OK || label != COSE_HDR_ALG) {
    aln_refuse(why, st, "protected header must hold exactly alg");
    goto out;
  }
  if (aln_cose_cbor_int(kv[0].value, &got) != ALN_OK || got != alg) {
    aln_refuse(why, st, "alg is not %lld", (long long)alg);
    goto out;
  }
  /* Deterministic encoding only: {1: alg} has one. */
  aln_cbb_init_fixed(&cbb, canon, sizeof(canon));
  if (aln_cose_protected_encode(&cbb, alg) != ALN_OK || cbb.len != prot_len || memcmp(canon, prot, prot_len) != 0) {
    aln_refuse(why, st, "protected header is not in deterministic encoding");
    goto out;
  }
  st = ALN_OK;
out:
  cbor_decref(&hdr);
  return st;
}

aln_status aln_cose_sign1_decode(struct aln_cose_sign1 *out, struct aln_refusal *why, const uint8_t *msg,
                                 size_t msg_len, const struct aln_cose_profile *profile) {
  if (out == NULL || msg == NULL || profile == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "missing argument");
  /* The cap comes before any decoding: with the scan's depth limit it bounds
   * libcbor's allocations and the recursion of its tree and cbor_decref. */
  if (msg_len > profile->max_len)
    return aln_refuse(why, ALN_ERR_MALFORMED, "COSE_Sign1 of %zu bytes is over the %zu-byte cap", msg_len,
                      profile->max_len);

  struct aln_cose_sign1 m = {0};
  struct aln_cbs c;
  unsigned major;
  uint64_t n;
  size_t used;
  aln_status st;
  /* The tag is optional and its one deterministic encoding is the byte 0xd2,
   * consumed here: libcbor before 0.11 rejects the one-byte tags 6..20 as
   * unassigned (PJK/libcbor#307). Any other tag, or a second one, is refused by
   * the scan. */
  if (msg_len > 0 && msg[0] == COSE_TAG_SIGN1_BYTE) {
    msg++;
    msg_len--;
  }
  st = item_scan(msg, msg_len, profile->allow_unprotected ? ALN_COSE_DEPTH_MAX : ENVELOPE_DEPTH, &used);
  if (st != ALN_OK)
    return aln_refuse(why, st, "COSE_Sign1 is not one well-formed CBOR item of definite lengths");
  if (used != msg_len)
    return aln_refuse(why, ALN_ERR_TRAILING, "%zu bytes after the COSE_Sign1", msg_len - used);

  aln_cbs_init(&c, msg, msg_len);
  st = get_head(&c, &major, &n);
  if (st != ALN_OK || major != CBOR_ARRAY || n != 4)
    return aln_refuse(why, ALN_ERR_MALFORMED, "COSE_Sign1 is not an array of four");
  if ((st = get_bstr(&c, &m.protected_hdr, &m.protected_len)) != ALN_OK)
    return aln_refuse(why, st, "protected header is not a byte string");
  if ((st = get_unprotected(&m, &c, profile->allow_unprotected)) != ALN_OK)
    return aln_refuse(why, st,
                      profile->allow_unprotected ? "unprotected header is not a strict map"
                                                 : "unprotected header is not an empty map");
  if ((st = get_bstr(&c, &m.payload, &m.payload_len)) != ALN_OK || m.payload_len == 0)
    return aln_refuse(why, st != ALN_OK ? st : ALN_ERR_MALFORMED, "payload is not a non-empty byte string");
  if ((st = get_bstr(&c, &m.sig, &m.sig_len)) != ALN_OK || m.sig_len != profile->sig_len)
    return aln_refuse(why, st != ALN_OK ? st : ALN_ERR_MALFORMED, "signature is not a byte string of %zu bytes",
                      profile->sig_len);
  if ((st = aln_cbs_ensure_empty(&c)) != ALN_OK)
    return aln_refuse(why, st, "bytes after the COSE_Sign1");
  ALN_GUARD(protected_check(why, m.protected_hdr, m.protected_len, profile->alg));
  *out = m;
  return ALN_OK;
}
