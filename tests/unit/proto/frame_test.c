/* Tests for proto/frame: round trip, every way a frame can be cut short, the size
 * cap (checked on the declared length, before the payload bytes exist), exactly-max
 * accepted and max+1 refused, zero length, trailing bytes, and encoder limits (a
 * refused encode leaves the writer unchanged). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/frame.h"

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static aln_status decode(const uint8_t *buf, size_t len, size_t max, struct aln_cbs *payload) {
  struct aln_cbs in;
  aln_cbs_init(&in, buf, len);
  aln_status st = aln_frame_decode(&in, max, payload);
  /* decode never consumes its input view */
  assert_ptr_equal(in.p, buf);
  assert_int_equal(in.len, len);
  return st;
}

static void test_round_trip(void **state) {
  (void)state;
  static const uint8_t payload[] = {0x08, 0x01, 0x52, 0x00};
  struct aln_cbb b;
  uint8_t *out = NULL;
  size_t out_len = 0;
  assert_int_equal(aln_cbb_init(&b, 0, 64), ALN_OK);
  assert_int_equal(aln_frame_encode(&b, payload, sizeof(payload), ALN_FRAME_MAX_DEFAULT), ALN_OK);
  assert_int_equal(aln_cbb_finish(&b, &out, &out_len), ALN_OK);
  static const uint8_t want[] = {0, 0, 0, 4, 0x08, 0x01, 0x52, 0x00};
  assert_int_equal(out_len, sizeof(want));
  assert_memory_equal(out, want, sizeof(want));

  struct aln_cbs p = {NULL, 0};
  assert_int_equal(decode(out, out_len, ALN_FRAME_MAX_DEFAULT, &p), ALN_OK);
  assert_ptr_equal(p.p, out + ALN_FRAME_HEADER_LEN); /* a view, not a copy */
  assert_int_equal(p.len, sizeof(payload));
  assert_memory_equal(p.p, payload, sizeof(payload));
  aln_cbb_buf_free(out, out_len);
}

static void test_truncated_header(void **state) {
  (void)state;
  static const uint8_t frame[] = {0, 0, 0, 1, 0x42};
  for (size_t len = 0; len < ALN_FRAME_HEADER_LEN; len++) {
    struct aln_cbs p = {NULL, 0};
    assert_int_equal(decode(frame, len, 16, &p), ALN_ERR_TRUNCATED);
    assert_null(p.p);
  }
  struct aln_cbs p = {NULL, 0};
  assert_int_equal(decode(NULL, 0, 16, &p), ALN_ERR_TRUNCATED);
}

static void test_truncated_payload(void **state) {
  (void)state;
  uint8_t frame[4 + 10];
  put_be32(frame, 10);
  memset(frame + 4, 'p', 10);
  struct aln_cbs p = {NULL, 0};
  for (size_t len = ALN_FRAME_HEADER_LEN; len < sizeof(frame); len++)
    assert_int_equal(decode(frame, len, 16, &p), ALN_ERR_TRUNCATED);
  assert_null(p.p);
  assert_int_equal(decode(frame, sizeof(frame), 16, &p), ALN_OK);
  assert_int_equal(p.len, 10);
}

static void test_oversized_rejected_before_payload(void **state) {
  (void)state;
  /* Only the header exists: a reader must refuse on the declared length alone,
   * not report "truncated" and wait for 4 GiB. */
  static const uint32_t lens[] = {17, 1u << 20, 0x7fffffff, 0xffffffff};
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    uint8_t hdr[ALN_FRAME_HEADER_LEN];
    size_t out_len = 12345;
    struct aln_cbs p = {NULL, 0};
    put_be32(hdr, lens[i]);
    assert_int_equal(decode(hdr, sizeof(hdr), 16, &p), ALN_ERR_FRAME_TOO_LARGE);
    assert_null(p.p);
    assert_int_equal(aln_frame_header_parse(hdr, 16, &out_len), ALN_ERR_FRAME_TOO_LARGE);
    assert_int_equal(out_len, 12345);
  }
  /* The default cap too: 1 MiB + 1 declared. */
  uint8_t hdr[ALN_FRAME_HEADER_LEN];
  size_t out_len = 0;
  put_be32(hdr, (uint32_t)ALN_FRAME_MAX_DEFAULT + 1);
  assert_int_equal(aln_frame_header_parse(hdr, ALN_FRAME_MAX_DEFAULT, &out_len), ALN_ERR_FRAME_TOO_LARGE);
  put_be32(hdr, (uint32_t)ALN_FRAME_MAX_DEFAULT);
  assert_int_equal(aln_frame_header_parse(hdr, ALN_FRAME_MAX_DEFAULT, &out_len), ALN_OK);
  assert_int_equal(out_len, ALN_FRAME_MAX_DEFAULT);
}

static void test_exactly_max_and_max_plus_one(void **state) {
  (void)state;
  const size_t max = 300;
  uint8_t *frame = malloc(ALN_FRAME_HEADER_LEN + max + 1);
  assert_non_null(frame);
  memset(frame, 0x33, ALN_FRAME_HEADER_LEN + max + 1);
  struct aln_cbs p = {NULL, 0};

  put_be32(frame, (uint32_t)max);
  assert_int_equal(decode(frame, ALN_FRAME_HEADER_LEN + max, max, &p), ALN_OK);
  assert_int_equal(p.len, max);

  put_be32(frame, (uint32_t)max + 1);
  p.p = NULL;
  assert_int_equal(decode(frame, ALN_FRAME_HEADER_LEN + max + 1, max, &p), ALN_ERR_FRAME_TOO_LARGE);
  assert_null(p.p);
  /* Same bytes, cap raised by one: accepted. The cap is the only difference. */
  assert_int_equal(decode(frame, ALN_FRAME_HEADER_LEN + max + 1, max + 1, &p), ALN_OK);
  assert_int_equal(p.len, max + 1);
  free(frame);
}

static void test_zero_length(void **state) {
  (void)state;
  static const uint8_t frame[] = {0, 0, 0, 0};
  struct aln_cbs p = {NULL, 0};
  size_t out_len = 7;
  assert_int_equal(decode(frame, sizeof(frame), 16, &p), ALN_ERR_MALFORMED);
  assert_null(p.p);
  assert_int_equal(aln_frame_header_parse(frame, 16, &out_len), ALN_ERR_MALFORMED);
  assert_int_equal(out_len, 7);
  /* Even with a cap of 0, zero is malformed (not "too large"). */
  assert_int_equal(aln_frame_header_parse(frame, 0, &out_len), ALN_ERR_MALFORMED);
  /* With bytes after it, still malformed, never a frame plus trailing data. */
  static const uint8_t frame_more[] = {0, 0, 0, 0, 1, 2};
  assert_int_equal(decode(frame_more, sizeof(frame_more), 16, &p), ALN_ERR_MALFORMED);
}

static void test_trailing_bytes(void **state) {
  (void)state;
  static const uint8_t frame[] = {0, 0, 0, 2, 'o', 'k', 'x'};
  struct aln_cbs p = {NULL, 0};
  assert_int_equal(decode(frame, sizeof(frame), 16, &p), ALN_ERR_TRAILING);
  assert_null(p.p);
  /* Two complete frames back to back are not one frame. */
  static const uint8_t two[] = {0, 0, 0, 1, 'a', 0, 0, 0, 1, 'b'};
  assert_int_equal(decode(two, sizeof(two), 16, &p), ALN_ERR_TRAILING);
  assert_int_equal(decode(two, 5, 16, &p), ALN_OK);
  assert_int_equal(p.len, 1);
  assert_int_equal(p.p[0], 'a');
}

static void test_encode_limits(void **state) {
  (void)state;
  uint8_t payload[17];
  memset(payload, 0x77, sizeof(payload));
  struct aln_cbb b;
  assert_int_equal(aln_cbb_init(&b, 0, 64), ALN_OK);
  assert_int_equal(aln_frame_encode(&b, payload, 0, 16), ALN_ERR_FRAME_TOO_LARGE);
  assert_int_equal(aln_frame_encode(&b, payload, 17, 16), ALN_ERR_FRAME_TOO_LARGE);
  assert_int_equal(aln_frame_encode(&b, NULL, 0, 16), ALN_ERR_FRAME_TOO_LARGE);
  assert_int_equal(aln_frame_encode(&b, NULL, 4, 16), ALN_ERR_USAGE);
  /* A length the 4-byte header cannot express, whatever the caller's cap. */
  assert_int_equal(aln_frame_encode(&b, payload, (size_t)UINT32_MAX + 1, SIZE_MAX), ALN_ERR_FRAME_TOO_LARGE);
  assert_int_equal(b.len, 0);
  assert_int_equal(aln_frame_encode(&b, payload, 16, 16), ALN_OK);
  assert_int_equal(b.len, ALN_FRAME_HEADER_LEN + 16);
  aln_cbb_cleanup(&b);

  /* The writer's own maximum: the frame fits the frame cap but not the writer. A
   * refusal must not leave a header without its payload. */
  assert_int_equal(aln_cbb_init(&b, 0, ALN_FRAME_HEADER_LEN + 16), ALN_OK);
  assert_int_equal(aln_frame_encode(&b, payload, 3, 16), ALN_OK);
  assert_int_equal(b.len, 7);
  assert_int_equal(aln_frame_encode(&b, payload, 10, 16), ALN_ERR_TOO_LARGE);
  assert_int_equal(b.len, 7);
  assert_int_equal(aln_frame_encode(&b, payload, 9, 16), ALN_OK);
  assert_int_equal(b.len, 20);
  /* Two frames back to back decode one at a time. */
  struct aln_cbs p;
  assert_int_equal(decode(b.buf, 7, 16, &p), ALN_OK);
  assert_int_equal(p.len, 3);
  assert_int_equal(decode(b.buf + 7, 13, 16, &p), ALN_OK);
  assert_int_equal(p.len, 9);
  aln_cbb_cleanup(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_truncated_header),
      cmocka_unit_test(test_truncated_payload),
      cmocka_unit_test(test_oversized_rejected_before_payload),
      cmocka_unit_test(test_exactly_max_and_max_plus_one),
      cmocka_unit_test(test_zero_length),
      cmocka_unit_test(test_trailing_bytes),
      cmocka_unit_test(test_encode_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
