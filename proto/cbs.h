/* Bounded byte cursor (aln_cbs) for parsing untrusted bytes, and bounded writer
 * (aln_cbb) with a hard maximum for building them. A parser reads like the grammar
 * and ends with aln_cbs_ensure_empty. Modelled on BoringSSL's CBS/CBB. */
#ifndef ALN_PROTO_CBS_H
#define ALN_PROTO_CBS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

struct aln_cbs {
  const uint8_t *p;
  size_t len;
};

/* aln_cbs_init points |cbs| at |len| bytes at |data| (not copied, not owned). */
void aln_cbs_init(struct aln_cbs *cbs, const uint8_t *data, size_t len);

/* aln_cbs_get_u8 / _u16 / _u32 / _u64 read a big-endian integer and advance.
 * They return ALN_ERR_TRUNCATED, leaving |cbs| unchanged, if too few bytes remain. */
aln_status aln_cbs_get_u8(struct aln_cbs *cbs, uint8_t *out) ALN_WUR;
aln_status aln_cbs_get_u16(struct aln_cbs *cbs, uint16_t *out) ALN_WUR;
aln_status aln_cbs_get_u32(struct aln_cbs *cbs, uint32_t *out) ALN_WUR;
aln_status aln_cbs_get_u64(struct aln_cbs *cbs, uint64_t *out) ALN_WUR;

/* aln_cbs_get_bytes sets |out| to the next |n| bytes of |cbs| and advances past them.
 * ALN_ERR_TRUNCATED (|cbs| unchanged) if fewer than |n| remain. */
aln_status aln_cbs_get_bytes(struct aln_cbs *cbs, struct aln_cbs *out, size_t n) ALN_WUR;

/* aln_cbs_get_u32_prefixed reads a big-endian u32 length L, then L bytes into |out|.
 * ALN_ERR_TRUNCATED (|cbs| unchanged) if the input ends early. */
aln_status aln_cbs_get_u32_prefixed(struct aln_cbs *cbs, struct aln_cbs *out) ALN_WUR;

/* aln_cbs_skip advances past |n| bytes; ALN_ERR_TRUNCATED if fewer remain. */
aln_status aln_cbs_skip(struct aln_cbs *cbs, size_t n) ALN_WUR;

/* aln_cbs_ensure_empty returns ALN_OK if nothing is left, else ALN_ERR_TRAILING. */
aln_status aln_cbs_ensure_empty(const struct aln_cbs *cbs) ALN_WUR;

/* Bounded writer. Owns a heap buffer that never grows past |max| bytes; the buffer
 * is wiped when freed, so it may hold secrets. */
struct aln_cbb {
  uint8_t *buf;
  size_t len;
  size_t cap;
  size_t max;
  int fixed; /* |buf| is the caller's (aln_cbb_init_fixed): never grown or freed here */
};

/* aln_cbb_init prepares |cbb| to hold at most |max| bytes, reserving |initial|.
 * ALN_ERR_NOMEM on allocation failure, ALN_ERR_USAGE if initial > max. */
aln_status aln_cbb_init(struct aln_cbb *cbb, size_t initial, size_t max) ALN_WUR;

/* aln_cbb_init_fixed writes into the caller's |buf| of |cap| bytes (a stack buffer
 * for a small encoding that need not be allocated); adding past |cap| is
 * ALN_ERR_TOO_LARGE. The bytes written are cbb->buf[0..cbb->len). aln_cbb_cleanup
 * wipes but does not free it; aln_cbb_finish refuses it. */
void aln_cbb_init_fixed(struct aln_cbb *cbb, uint8_t *buf, size_t cap);

/* aln_cbb_add_* append; ALN_ERR_TOO_LARGE (|cbb| unchanged) if the result would
 * exceed the maximum, ALN_ERR_NOMEM if growing fails. */
aln_status aln_cbb_add_u8(struct aln_cbb *cbb, uint8_t v) ALN_WUR;
aln_status aln_cbb_add_u16(struct aln_cbb *cbb, uint16_t v) ALN_WUR;
aln_status aln_cbb_add_u32(struct aln_cbb *cbb, uint32_t v) ALN_WUR;
aln_status aln_cbb_add_u64(struct aln_cbb *cbb, uint64_t v) ALN_WUR;
aln_status aln_cbb_add_bytes(struct aln_cbb *cbb, const uint8_t *data, size_t len) ALN_WUR;
/* aln_cbb_add_u32_prefixed appends a big-endian u32 length then |data|. */
aln_status aln_cbb_add_u32_prefixed(struct aln_cbb *cbb, const uint8_t *data, size_t len) ALN_WUR;

/* aln_cbb_finish hands the buffer to the caller (*out, *out_len; free with
 * aln_cbb_buf_free(*out, *out_len)) and resets |cbb|. On an empty writer *out is a
 * valid allocation of at least one byte. */
aln_status aln_cbb_finish(struct aln_cbb *cbb, uint8_t **out, size_t *out_len) ALN_WUR;

/* aln_cbb_cleanup wipes and frees the buffer; safe on a zeroed or finished cbb. */
void aln_cbb_cleanup(struct aln_cbb *cbb);

/* aln_cbb_buf_free wipes |len| bytes at |p| and frees it; NULL is a no-op. */
void aln_cbb_buf_free(uint8_t *p, size_t len);

#endif
