/* Tests for proto/cbs: every cursor getter at its boundary (exactly enough bytes,
 * one byte short), failures leave the cursor and the output untouched, prefixed
 * lengths, ensure_empty, and the writer's hard maximum (a refused write leaves the
 * writer unchanged, capacity never passes the maximum). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/cbs.h"

static const uint8_t k_bytes[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09};

/* assert_unchanged checks that |c| still points at |len| bytes from |p|. */
static void assert_unchanged(const struct aln_cbs *c, const uint8_t *p, size_t len) {
  assert_ptr_equal(c->p, p);
  assert_int_equal(c->len, len);
}

static void test_get_u8(void **state) {
  (void)state;
  struct aln_cbs c;
  uint8_t v = 0xaa;
  aln_cbs_init(&c, k_bytes, 1);
  assert_int_equal(aln_cbs_get_u8(&c, &v), ALN_OK);
  assert_int_equal(v, 0x01);
  assert_unchanged(&c, k_bytes + 1, 0);
  v = 0xaa;
  assert_int_equal(aln_cbs_get_u8(&c, &v), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, k_bytes + 1, 0);
  assert_int_equal(v, 0xaa);
}

static void test_get_u16(void **state) {
  (void)state;
  struct aln_cbs c;
  uint16_t v = 0xaaaa;
  aln_cbs_init(&c, k_bytes, 1);
  assert_int_equal(aln_cbs_get_u16(&c, &v), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, k_bytes, 1);
  assert_int_equal(v, 0xaaaa);
  aln_cbs_init(&c, k_bytes, 2);
  assert_int_equal(aln_cbs_get_u16(&c, &v), ALN_OK);
  assert_int_equal(v, 0x0102);
  assert_unchanged(&c, k_bytes + 2, 0);
}

static void test_get_u32(void **state) {
  (void)state;
  struct aln_cbs c;
  uint32_t v = 0xaaaaaaaa;
  aln_cbs_init(&c, k_bytes, 3);
  assert_int_equal(aln_cbs_get_u32(&c, &v), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, k_bytes, 3);
  assert_int_equal(v, 0xaaaaaaaa);
  aln_cbs_init(&c, k_bytes, 4);
  assert_int_equal(aln_cbs_get_u32(&c, &v), ALN_OK);
  assert_int_equal(v, 0x01020304);
  assert_unchanged(&c, k_bytes + 4, 0);
}

static void test_get_u64(void **state) {
  (void)state;
  struct aln_cbs c;
  uint64_t v = 0xaaaaaaaaaaaaaaaaull;
  aln_cbs_init(&c, k_bytes, 7);
  assert_int_equal(aln_cbs_get_u64(&c, &v), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, k_bytes, 7);
  assert_true(v == 0xaaaaaaaaaaaaaaaaull);
  aln_cbs_init(&c, k_bytes, 9);
  assert_int_equal(aln_cbs_get_u64(&c, &v), ALN_OK);
  assert_true(v == 0x0102030405060708ull);
  assert_unchanged(&c, k_bytes + 8, 1);
  /* High bit set: no sign extension anywhere. */
  static const uint8_t ff[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
  aln_cbs_init(&c, ff, sizeof(ff));
  assert_int_equal(aln_cbs_get_u64(&c, &v), ALN_OK);
  assert_true(v == 0xfffffffffffffffeull);
}

static void test_get_bytes(void **state) {
  (void)state;
  struct aln_cbs c, out = {NULL, 0};
  aln_cbs_init(&c, k_bytes, 4);
  assert_int_equal(aln_cbs_get_bytes(&c, &out, 5), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, k_bytes, 4);
  assert_null(out.p);
  assert_int_equal(aln_cbs_get_bytes(&c, &out, SIZE_MAX), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, k_bytes, 4);
  assert_int_equal(aln_cbs_get_bytes(&c, &out, 0), ALN_OK);
  assert_unchanged(&out, k_bytes, 0);
  assert_unchanged(&c, k_bytes, 4);
  assert_int_equal(aln_cbs_get_bytes(&c, &out, 4), ALN_OK);
  assert_unchanged(&out, k_bytes, 4);
  assert_unchanged(&c, k_bytes + 4, 0);
  /* An empty cursor with no backing buffer at all. */
  aln_cbs_init(&c, NULL, 0);
  assert_int_equal(aln_cbs_get_bytes(&c, &out, 0), ALN_OK);
  assert_int_equal(out.len, 0);
  assert_int_equal(aln_cbs_get_bytes(&c, &out, 1), ALN_ERR_TRUNCATED);
}

static void test_skip(void **state) {
  (void)state;
  struct aln_cbs c;
  aln_cbs_init(&c, k_bytes, 3);
  assert_int_equal(aln_cbs_skip(&c, 4), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, k_bytes, 3);
  assert_int_equal(aln_cbs_skip(&c, 2), ALN_OK);
  assert_unchanged(&c, k_bytes + 2, 1);
  assert_int_equal(aln_cbs_skip(&c, 1), ALN_OK);
  assert_unchanged(&c, k_bytes + 3, 0);
  assert_int_equal(aln_cbs_skip(&c, 1), ALN_ERR_TRUNCATED);
}

static void test_u32_prefixed(void **state) {
  (void)state;
  struct aln_cbs c, out = {NULL, 0};
  static const uint8_t ok[] = {0, 0, 0, 3, 'a', 'b', 'c', 'z'};
  aln_cbs_init(&c, ok, sizeof(ok));
  assert_int_equal(aln_cbs_get_u32_prefixed(&c, &out), ALN_OK);
  assert_unchanged(&out, ok + 4, 3);
  assert_unchanged(&c, ok + 7, 1);

  static const uint8_t empty_body[] = {0, 0, 0, 0};
  aln_cbs_init(&c, empty_body, sizeof(empty_body));
  assert_int_equal(aln_cbs_get_u32_prefixed(&c, &out), ALN_OK);
  assert_int_equal(out.len, 0);
  assert_int_equal(c.len, 0);

  /* The prefix itself cut short. */
  out.p = NULL;
  aln_cbs_init(&c, ok, 3);
  assert_int_equal(aln_cbs_get_u32_prefixed(&c, &out), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, ok, 3);
  assert_null(out.p);

  /* Body one byte short: the prefix must not stay consumed. */
  aln_cbs_init(&c, ok, 6);
  assert_int_equal(aln_cbs_get_u32_prefixed(&c, &out), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, ok, 6);
  assert_null(out.p);

  /* A huge declared length with almost nothing behind it. */
  static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'x'};
  aln_cbs_init(&c, huge, sizeof(huge));
  assert_int_equal(aln_cbs_get_u32_prefixed(&c, &out), ALN_ERR_TRUNCATED);
  assert_unchanged(&c, huge, sizeof(huge));
}

static void test_ensure_empty(void **state) {
  (void)state;
  struct aln_cbs c;
  aln_cbs_init(&c, k_bytes, 0);
  assert_int_equal(aln_cbs_ensure_empty(&c), ALN_OK);
  aln_cbs_init(&c, NULL, 0);
  assert_int_equal(aln_cbs_ensure_empty(&c), ALN_OK);
  aln_cbs_init(&c, k_bytes, 1);
  assert_int_equal(aln_cbs_ensure_empty(&c), ALN_ERR_TRAILING);
}

/* A small grammar, u8 tag | u16 n | u32-prefixed body, parsed the house way. */
static void test_grammar_trailing(void **state) {
  (void)state;
  static const uint8_t msg[] = {7, 0x12, 0x34, 0, 0, 0, 2, 'h', 'i', '!'};
  struct aln_cbs c, body;
  uint8_t tag;
  uint16_t n;
  aln_cbs_init(&c, msg, sizeof(msg));
  assert_int_equal(aln_cbs_get_u8(&c, &tag), ALN_OK);
  assert_int_equal(aln_cbs_get_u16(&c, &n), ALN_OK);
  assert_int_equal(aln_cbs_get_u32_prefixed(&c, &body), ALN_OK);
  assert_int_equal(tag, 7);
  assert_int_equal(n, 0x1234);
  assert_memory_equal(body.p, "hi", 2);
  assert_int_equal(aln_cbs_ensure_empty(&c), ALN_ERR_TRAILING);
  assert_int_equal(aln_cbs_skip(&c, 1), ALN_OK);
  assert_int_equal(aln_cbs_ensure_empty(&c), ALN_OK);
}

static void test_cbb_init(void **state) {
  (void)state;
  struct aln_cbb b;
  assert_int_equal(aln_cbb_init(&b, 9, 8), ALN_ERR_USAGE);
  assert_null(b.buf);
  aln_cbb_cleanup(&b);
  assert_int_equal(aln_cbb_init(&b, 8, 8), ALN_OK);
  assert_non_null(b.buf);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.max, 8);
  aln_cbb_cleanup(&b);
  assert_null(b.buf);
  assert_int_equal(b.max, 0);
  /* A zeroed writer refuses everything and cleans up safely. */
  struct aln_cbb z = {0};
  assert_int_equal(aln_cbb_add_u8(&z, 1), ALN_ERR_TOO_LARGE);
  aln_cbb_cleanup(&z);
  aln_cbb_cleanup(&z);
}

static void test_cbb_integers_big_endian(void **state) {
  (void)state;
  struct aln_cbb b;
  uint8_t *out = NULL;
  size_t out_len = 0;
  assert_int_equal(aln_cbb_init(&b, 0, 64), ALN_OK);
  assert_int_equal(aln_cbb_add_u8(&b, 0x01), ALN_OK);
  assert_int_equal(aln_cbb_add_u16(&b, 0x0203), ALN_OK);
  assert_int_equal(aln_cbb_add_u32(&b, 0x04050607), ALN_OK);
  assert_int_equal(aln_cbb_add_u64(&b, 0x08090a0b0c0d0e0full), ALN_OK);
  assert_int_equal(aln_cbb_add_bytes(&b, (const uint8_t *)"\x10\x11", 2), ALN_OK);
  assert_int_equal(aln_cbb_add_u32_prefixed(&b, (const uint8_t *)"\x12", 1), ALN_OK);
  assert_int_equal(aln_cbb_finish(&b, &out, &out_len), ALN_OK);
  static const uint8_t want[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
                                 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0,    0,    0,    1,    0x12};
  assert_int_equal(out_len, sizeof(want));
  assert_memory_equal(out, want, sizeof(want));
  /* finish resets the writer: it owns nothing and accepts nothing. */
  assert_null(b.buf);
  assert_int_equal(b.len, 0);
  assert_int_equal(aln_cbb_add_u8(&b, 1), ALN_ERR_TOO_LARGE);
  aln_cbb_cleanup(&b);
  aln_cbb_buf_free(out, out_len);
}

/* expect_refused checks that a failed add left |b| exactly as it was. */
static void expect_refused(struct aln_cbb *b, aln_status st, const uint8_t *want, size_t want_len) {
  assert_int_equal(st, ALN_ERR_TOO_LARGE);
  assert_int_equal(b->len, want_len);
  assert_true(b->cap <= b->max);
  if (want_len > 0)
    assert_memory_equal(b->buf, want, want_len);
}

static void test_cbb_max_enforced(void **state) {
  (void)state;
  struct aln_cbb b;
  static const uint8_t four[] = {0xde, 0xad, 0xbe, 0xef};
  assert_int_equal(aln_cbb_init(&b, 0, 5), ALN_OK);
  assert_int_equal(aln_cbb_add_u32(&b, 0xdeadbeef), ALN_OK);
  expect_refused(&b, aln_cbb_add_u16(&b, 1), four, 4);
  expect_refused(&b, aln_cbb_add_u32(&b, 1), four, 4);
  expect_refused(&b, aln_cbb_add_u64(&b, 1), four, 4);
  expect_refused(&b, aln_cbb_add_bytes(&b, four, 2), four, 4);
  expect_refused(&b, aln_cbb_add_bytes(&b, four, SIZE_MAX), four, 4);
  expect_refused(&b, aln_cbb_add_u32_prefixed(&b, four, 0), four, 4);
  /* Exactly filling the maximum is allowed; one more byte is not. */
  assert_int_equal(aln_cbb_add_u8(&b, 0x01), ALN_OK);
  assert_int_equal(b.len, 5);
  static const uint8_t five[] = {0xde, 0xad, 0xbe, 0xef, 0x01};
  expect_refused(&b, aln_cbb_add_u8(&b, 0x02), five, 5);
  expect_refused(&b, aln_cbb_add_bytes(&b, four, 1), five, 5);
  assert_int_equal(aln_cbb_add_bytes(&b, four, 0), ALN_OK);
  assert_int_equal(b.len, 5);
  aln_cbb_cleanup(&b);

  /* A prefixed record one byte too long leaves no dangling length behind, though
   * the prefix alone would fit; the exact fit is accepted. */
  assert_int_equal(aln_cbb_init(&b, 0, 8), ALN_OK);
  expect_refused(&b, aln_cbb_add_u32_prefixed(&b, k_bytes, 5), NULL, 0);
  assert_int_equal(aln_cbb_add_u32_prefixed(&b, four, 4), ALN_OK);
  assert_int_equal(b.len, 8);
  aln_cbb_cleanup(&b);
}

static void test_cbb_usage(void **state) {
  (void)state;
  struct aln_cbb b;
  assert_int_equal(aln_cbb_init(&b, 0, 16), ALN_OK);
  assert_int_equal(aln_cbb_add_bytes(&b, NULL, 1), ALN_ERR_USAGE);
  assert_int_equal(aln_cbb_add_u32_prefixed(&b, NULL, 1), ALN_ERR_USAGE);
  assert_int_equal(b.len, 0);
  assert_int_equal(aln_cbb_add_bytes(&b, NULL, 0), ALN_OK);
  assert_int_equal(aln_cbb_add_u32_prefixed(&b, NULL, 0), ALN_OK);
  assert_int_equal(b.len, 4);
  aln_cbb_cleanup(&b);
}

static void test_cbb_growth_stays_under_max(void **state) {
  (void)state;
  struct aln_cbb b;
  const size_t max = 10007; /* not a power of two: doubling must clamp */
  assert_int_equal(aln_cbb_init(&b, 1, max), ALN_OK);
  for (size_t i = 0; i < max; i++) {
    assert_int_equal(aln_cbb_add_u8(&b, (uint8_t)i), ALN_OK);
    assert_true(b.cap <= max);
    assert_true(b.len <= b.cap);
  }
  assert_int_equal(aln_cbb_add_u8(&b, 0), ALN_ERR_TOO_LARGE);
  for (size_t i = 0; i < max; i++)
    assert_int_equal(b.buf[i], (uint8_t)i);
  aln_cbb_cleanup(&b);
}

static void test_cbb_finish_empty(void **state) {
  (void)state;
  struct aln_cbb b;
  uint8_t *out = NULL;
  size_t out_len = 99;
  assert_int_equal(aln_cbb_init(&b, 0, 0), ALN_OK);
  assert_int_equal(aln_cbb_finish(&b, &out, &out_len), ALN_OK);
  assert_non_null(out);
  assert_int_equal(out_len, 0);
  aln_cbb_cleanup(&b); /* finished writer: nothing left to free */
  aln_cbb_buf_free(out, out_len);
  aln_cbb_buf_free(NULL, 5);
}

static void test_cbb_round_trip_through_cbs(void **state) {
  (void)state;
  struct aln_cbb b;
  uint8_t *out = NULL;
  size_t out_len = 0;
  assert_int_equal(aln_cbb_init(&b, 0, 1024), ALN_OK);
  assert_int_equal(aln_cbb_add_u16(&b, 0xbeef), ALN_OK);
  assert_int_equal(aln_cbb_add_u32_prefixed(&b, k_bytes, sizeof(k_bytes)), ALN_OK);
  assert_int_equal(aln_cbb_add_u64(&b, UINT64_MAX), ALN_OK);
  assert_int_equal(aln_cbb_finish(&b, &out, &out_len), ALN_OK);

  struct aln_cbs c, body;
  uint16_t a;
  uint64_t z;
  aln_cbs_init(&c, out, out_len);
  assert_int_equal(aln_cbs_get_u16(&c, &a), ALN_OK);
  assert_int_equal(aln_cbs_get_u32_prefixed(&c, &body), ALN_OK);
  assert_int_equal(aln_cbs_get_u64(&c, &z), ALN_OK);
  assert_int_equal(aln_cbs_ensure_empty(&c), ALN_OK);
  assert_int_equal(a, 0xbeef);
  assert_int_equal(body.len, sizeof(k_bytes));
  assert_memory_equal(body.p, k_bytes, sizeof(k_bytes));
  assert_true(z == UINT64_MAX);
  aln_cbb_buf_free(out, out_len);
}

/* A fixed writer fills the caller's buffer, refuses to go past it (unchanged), is
 * never handed out by finish, and is wiped but not freed by cleanup. */
static void test_cbb_fixed(void **state) {
  (void)state;
  uint8_t buf[13];
  struct aln_cbb cbb;
  uint8_t *out = NULL;
  size_t out_len = 0;
  aln_cbb_init_fixed(&cbb, buf, sizeof(buf));
  assert_int_equal(aln_cbb_add_u64(&cbb, 0x0102030405060708ULL), ALN_OK);
  assert_int_equal(aln_cbb_add_u32(&cbb, 0x090a0b0c), ALN_OK);
  assert_int_equal(aln_cbb_add_u16(&cbb, 1), ALN_ERR_TOO_LARGE);
  assert_int_equal(cbb.len, 12);
  assert_ptr_equal(cbb.buf, buf);
  static const uint8_t want[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  assert_memory_equal(buf, want, sizeof(want));
  assert_int_equal(aln_cbb_add_u8(&cbb, 0xff), ALN_OK);
  assert_int_equal(aln_cbb_finish(&cbb, &out, &out_len), ALN_ERR_USAGE);
  assert_null(out);
  aln_cbb_cleanup(&cbb); /* would be a bad free under ASan if it freed the stack buffer */
  static const uint8_t zero[13] = {0};
  assert_memory_equal(buf, zero, sizeof(zero));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_u8),
      cmocka_unit_test(test_get_u16),
      cmocka_unit_test(test_get_u32),
      cmocka_unit_test(test_get_u64),
      cmocka_unit_test(test_get_bytes),
      cmocka_unit_test(test_skip),
      cmocka_unit_test(test_u32_prefixed),
      cmocka_unit_test(test_ensure_empty),
      cmocka_unit_test(test_grammar_trailing),
      cmocka_unit_test(test_cbb_init),
      cmocka_unit_test(test_cbb_integers_big_endian),
      cmocka_unit_test(test_cbb_max_enforced),
      cmocka_unit_test(test_cbb_usage),
      cmocka_unit_test(test_cbb_growth_stays_under_max),
      cmocka_unit_test(test_cbb_finish_empty),
      cmocka_unit_test(test_cbb_round_trip_through_cbs),
      cmocka_unit_test(test_cbb_fixed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
