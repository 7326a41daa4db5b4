/* Bounded cursor and bounded writer. Every read checks the remaining length before
 * touching a byte and leaves the cursor unchanged on failure, so a parser can never
 * read past its input; every write checks the hard maximum before growing. The
 * writer never uses realloc: a moved buffer would leave an unwiped copy of whatever
 * secret it held on the heap. */
#include "proto/cbs.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void aln_cbs_init(struct aln_cbs *cbs, const uint8_t *data, size_t len) {
  cbs->p = data;
  cbs->len = len;
}

/* get_be reads an |n|-byte big-endian integer (n <= 8). */
static aln_status get_be(struct aln_cbs *cbs, uint64_t *out, size_t n) {
  ALN_ENSURE(cbs->len >= n, ALN_ERR_TRUNCATED);
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = (v << 8) | cbs->p[i];
  cbs->p += n;
  cbs->len -= n;
  *out = v;
  return ALN_OK;
}

aln_status aln_cbs_get_u8(struct aln_cbs *cbs, uint8_t *out) {
  uint64_t v;
  ALN_GUARD(get_be(cbs, &v, 1));
  *out = (uint8_t)v;
  return ALN_OK;
}

aln_status aln_cbs_get_u16(struct aln_cbs *cbs, uint16_t *out) {
  uint64_t v;
  ALN_GUARD(get_be(cbs, &v, 2));
  *out = (uint16_t)v;
  return ALN_OK;
}

aln_status aln_cbs_get_u32(struct aln_cbs *cbs, uint32_t *out) {
  uint64_t v;
  ALN_GUARD(get_be(cbs, &v, 4));
  *out = (uint32_t)v;
  return ALN_OK;
}

aln_status aln_cbs_get_u64(struct aln_cbs *cbs, uint64_t *out) {
  return get_be(cbs, out, 8);
}

aln_status aln_cbs_get_bytes(struct aln_cbs *cbs, struct aln_cbs *out, size_t n) {
  ALN_ENSURE(cbs->len >= n, ALN_ERR_TRUNCATED);
  aln_cbs_init(out, cbs->p, n);
  /* An empty cursor may hold p == NULL, and NULL + 0 is still undefined. */
  if (n > 0) {
    cbs->p += n;
    cbs->len -= n;
  }
  return ALN_OK;
}

aln_status aln_cbs_get_u32_prefixed(struct aln_cbs *cbs, struct aln_cbs *out) {
  /* Work on a copy so a truncated body does not leave the prefix consumed. */
  struct aln_cbs c = *cbs;
  uint32_t n;
  ALN_GUARD(aln_cbs_get_u32(&c, &n));
  ALN_GUARD(aln_cbs_get_bytes(&c, out, n));
  *cbs = c;
  return ALN_OK;
}

aln_status aln_cbs_skip(struct aln_cbs *cbs, size_t n) {
  struct aln_cbs ignored;
  return aln_cbs_get_bytes(cbs, &ignored, n);
}

aln_status aln_cbs_ensure_empty(const struct aln_cbs *cbs) {
  ALN_ENSURE(cbs->len == 0, ALN_ERR_TRAILING);
  return ALN_OK;
}

aln_status aln_cbb_init(struct aln_cbb *cbb, size_t initial, size_t max) {
  memset(cbb, 0, sizeof(*cbb));
  ALN_ENSURE(initial <= max, ALN_ERR_USAGE);
  if (initial > 0) {
    cbb->buf = malloc(initial);
    ALN_ENSURE(cbb->buf != NULL, ALN_ERR_NOMEM);
  }
  cbb->cap = initial;
  cbb->max = max;
  return ALN_OK;
}

void aln_cbb_init_fixed(struct aln_cbb *cbb, uint8_t *buf, size_t cap) {
  memset(cbb, 0, sizeof(*cbb));
  cbb->buf = buf;
  cbb->cap = cap;
  cbb->max = cap; /* so cbb_reserve refuses before it would ever reallocate */
  cbb->fixed = 1;
}

/* cbb_reserve makes room for |n| more bytes, growing geometrically up to max. On
 * failure |cbb| is unchanged. */
static aln_status cbb_reserve(struct aln_cbb *cbb, size_t n) {
  size_t need;
  ALN_ENSURE(!__builtin_add_overflow(cbb->len, n, &need), ALN_ERR_TOO_LARGE);
  ALN_ENSURE(need <= cbb->max, ALN_ERR_TOO_LARGE);
  if (need <= cbb->cap)
    return ALN_OK;
  size_t cap;
  if (__builtin_mul_overflow(cbb->cap, 2, &cap) || cap > cbb->max)
    cap = cbb->max;
  if (cap < need)
    cap = need;
  if (cap < 16 && cbb->max >= 16)
    cap = 16; /* skip the 1, 2, 4, 8 copy churn of a writer started empty */
  uint8_t *nb = malloc(cap);
  ALN_ENSURE(nb != NULL, ALN_ERR_NOMEM);
  if (cbb->len > 0)
    memcpy(nb, cbb->buf, cbb->len);
  aln_cbb_buf_free(cbb->buf, cbb->cap);
  cbb->buf = nb;
  cbb->cap = cap;
  return ALN_OK;
}

/* add_be appends the low |n| bytes of |v| big-endian (n <= 8). */
static aln_status add_be(struct aln_cbb *cbb, uint64_t v, size_t n) {
  ALN_GUARD(cbb_reserve(cbb, n));
  for (size_t i = 0; i < n; i++)
    cbb->buf[cbb->len + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  cbb->len += n;
  return ALN_OK;
}

aln_status aln_cbb_add_u8(struct aln_cbb *cbb, uint8_t v) {
  return add_be(cbb, v, 1);
}
aln_status aln_cbb_add_u16(struct aln_cbb *cbb, uint16_t v) {
  return add_be(cbb, v, 2);
}
aln_status aln_cbb_add_u32(struct aln_cbb *cbb, uint32_t v) {
  return add_be(cbb, v, 4);
}
aln_status aln_cbb_add_u64(struct aln_cbb *cbb, uint64_t v) {
  return add_be(cbb, v, 8);
}

aln_status aln_cbb_add_bytes(struct aln_cbb *cbb, const uint8_t *data, size_t len) {
  ALN_ENSURE(data != NULL || len == 0, ALN_ERR_USAGE);
  ALN_GUARD(cbb_reserve(cbb, len));
  if (len > 0)
    memcpy(cbb->buf + cbb->len, data, len);
  cbb->len += len;
  return ALN_OK;
}

aln_status aln_cbb_add_u32_prefixed(struct aln_cbb *cbb, const uint8_t *data, size_t len) {
  ALN_ENSURE(data != NULL || len == 0, ALN_ERR_USAGE);
  ALN_ENSURE(len <= UINT32_MAX, ALN_ERR_TOO_LARGE);
  size_t total;
  ALN_ENSURE(!__builtin_add_overflow(len, (size_t)4, &total), ALN_ERR_TOO_LARGE);
  /* Reserve the whole record first so a failure cannot leave a dangling prefix. */
  ALN_GUARD(cbb_reserve(cbb, total));
  ALN_GUARD(add_be(cbb, len, 4));
  return aln_cbb_add_bytes(cbb, data, len);
}

aln_status aln_cbb_finish(struct aln_cbb *cbb, uint8_t **out, size_t *out_len) {
  ALN_ENSURE(!cbb->fixed, ALN_ERR_USAGE);
  if (cbb->buf == NULL) {
    cbb->buf = malloc(1);
    ALN_ENSURE(cbb->buf != NULL, ALN_ERR_NOMEM);
    cbb->cap = 1;
  }
  *out = cbb->buf;
  *out_len = cbb->len;
  memset(cbb, 0, sizeof(*cbb));
  return ALN_OK;
}

void aln_cbb_cleanup(struct aln_cbb *cbb) {
  if (cbb->fixed)
    OPENSSL_cleanse(cbb->buf, cbb->cap);
  else
    aln_cbb_buf_free(cbb->buf, cbb->cap);
  memset(cbb, 0, sizeof(*cbb));
}

void aln_cbb_buf_free(uint8_t *p, size_t len) {
  if (p == NULL)
    return;
  OPENSSL_cleanse(p, len);
  free(p);
}
