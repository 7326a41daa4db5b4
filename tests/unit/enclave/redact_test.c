/* Redaction: every echo of the secret is replaced, the rest is kept byte for byte,
 * and the output never contains the secret, even when the mark itself would help
 * spell it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "enclave/redact.h"

#define M ALN_REDACT_MARK

/* run redacts a heap copy of |in| and checks the result is |want| (NUL-terminated
 * if the buffer was replaced) and no longer holds |secret|. */
static void run(const char *in, size_t in_len, const char *secret, size_t secret_len, const char *want,
                size_t want_len) {
  uint8_t *buf = NULL;
  if (in_len > 0) {
    buf = malloc(in_len);
    assert_non_null(buf);
    memcpy(buf, in, in_len);
  }
  uint8_t *orig = buf;
  size_t len = in_len;
  assert_int_equal(aln_redact(&buf, &len, (const uint8_t *)secret, secret_len), ALN_OK);
  assert_int_equal(len, want_len);
  if (want_len > 0)
    assert_memory_equal(buf, want, want_len);
  if (buf != orig) /* a replaced buffer is a C string too */
    assert_int_equal(buf[len], '\0');
  if (secret_len > 0 && len >= secret_len)
    assert_null(memmem(buf, len, secret, secret_len));
  free(buf);
}

#define RUN(in, secret, want) run(in, sizeof(in) - 1, secret, sizeof(secret) - 1, want, sizeof(want) - 1)

static void test_no_occurrence(void **state) {
  (void)state;
  RUN("hello world", "tok_123", "hello world");
  RUN("tok_12 tok_23", "tok_123", "tok_12 tok_23"); /* near misses */
}

static void test_unchanged_buffer_is_kept(void **state) {
  (void)state;
  uint8_t *buf = malloc(5);
  assert_non_null(buf);
  memcpy(buf, "abcde", 5);
  uint8_t *orig = buf;
  size_t len = 5;
  assert_int_equal(aln_redact(&buf, &len, (const uint8_t *)"xyz", 3), ALN_OK);
  assert_ptr_equal(buf, orig);
  assert_int_equal(len, 5);
  free(buf);
}

static void test_one(void **state) {
  (void)state;
  RUN("Authorization: Bearer tok_123\r\n", "tok_123", "Authorization: Bearer " M "\r\n");
}

static void test_many(void **state) {
  (void)state;
  RUN("a tok_123 b tok_123 c tok_123 d", "tok_123", "a " M " b " M " c " M " d");
}

static void test_adjacent(void **state) {
  (void)state;
  RUN("tok_123tok_123tok_123", "tok_123", M M M);
  RUN("aaaa", "aa", M M); /* non-overlapping, left to right */
  RUN("aaa", "aa", M "a");
}

static void test_both_ends(void **state) {
  (void)state;
  RUN("tok_123 middle tok_123", "tok_123", M " middle " M);
}

static void test_whole_buffer(void **state) {
  (void)state;
  RUN("tok_123", "tok_123", M);
  /* Shorter and longer secrets than the mark. */
  RUN("k", "k", M);
  RUN("a-very-long-secret-value-longer-than-the-mark", "a-very-long-secret-value-longer-than-the-mark", M);
}

static void test_secret_longer_than_buffer(void **state) {
  (void)state;
  RUN("tok", "tok_123", "tok");
}

static void test_empty_secret_is_noop(void **state) {
  (void)state;
  RUN("anything", "", "anything");
}

static void test_empty_buffer(void **state) {
  (void)state;
  run(NULL, 0, "tok", 3, "", 0);
}

static void test_binary(void **state) {
  (void)state;
  static const char in[] = {'\0', 's', '\0', 'k', '\xff', 's', '\0', 'k'};
  static const char secret[] = {'s', '\0', 'k'};
  static const char want[] = {'\0',   '[', 'R', 'E', 'D', 'A', 'C', 'T', 'E', 'D', ']',
                              '\xff', '[', 'R', 'E', 'D', 'A', 'C', 'T', 'E', 'D', ']'};
  run(in, sizeof(in), secret, sizeof(secret), want, sizeof(want));
}

/* A secret that ends like the mark can reappear across the mark's edge: "D]x" in
 * "D]xx" would give "[REDACTED]x", which spells it again. */
static void test_secret_straddles_mark(void **state) {
  (void)state;
  RUN("D]xx", "D]x", M);
  RUN("xx[R", "x[R", M); /* "x" + "[REDACTED]" */
}

/* A secret inside the mark cannot be replaced by it: the output is empty. */
static void test_secret_inside_mark(void **state) {
  (void)state;
  RUN("RED alert", "RED", "");
  RUN(M, M, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_occurrence),
      cmocka_unit_test(test_unchanged_buffer_is_kept),
      cmocka_unit_test(test_one),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_adjacent),
      cmocka_unit_test(test_both_ends),
      cmocka_unit_test(test_whole_buffer),
      cmocka_unit_test(test_secret_longer_than_buffer),
      cmocka_unit_test(test_empty_secret_is_noop),
      cmocka_unit_test(test_empty_buffer),
      cmocka_unit_test(test_binary),
      cmocka_unit_test(test_secret_straddles_mark),
      cmocka_unit_test(test_secret_inside_mark),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
