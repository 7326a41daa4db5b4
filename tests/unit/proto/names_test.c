/* Tests for proto/names, the credential-name rule both programs apply: lengths
 * 1..ALN_NAME_MAX exactly; every byte value checked against the allowed set
 * written out here, in first and later positions; '.' and '-' refused only as the
 * first character; separators, escapes, whitespace, control and non-ASCII bytes
 * refused; the length form reads only |len| bytes and refuses an embedded NUL; the
 * string form agrees with it and reads no further than ALN_NAME_MAX + 1 bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/names.h"

static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";

/* valid checks both forms of the rule on the NUL-terminated |s| and that they agree. */
static int valid(const char *s) {
  int a = aln_cred_name_valid(s, strlen(s));
  assert_int_equal(a, aln_cred_name_valid_str(s));
  return a;
}

static void test_lengths(void **state) {
  (void)state;
  char name[ALN_NAME_MAX + 2];
  memset(name, 'n', sizeof(name));
  for (size_t len = 1; len <= ALN_NAME_MAX; len++)
    assert_true(aln_cred_name_valid(name, len));
  assert_false(aln_cred_name_valid(name, 0));
  assert_false(aln_cred_name_valid(name, ALN_NAME_MAX + 1));
  assert_false(aln_cred_name_valid(name, SIZE_MAX));

  name[ALN_NAME_MAX] = '\0';
  assert_true(valid(name));
  name[ALN_NAME_MAX] = 'n';
  name[ALN_NAME_MAX + 1] = '\0';
  assert_false(valid(name));
  assert_false(valid(""));
}

/* Every byte value, alone and after a valid first character. */
static void test_every_byte(void **state) {
  (void)state;
  for (unsigned c = 0; c < 256; c++) {
    int in_set = c != 0 && strchr(allowed, (int)c) != NULL;
    char first[1] = {(char)c};
    char later[3] = {'a', (char)c, 'z'};
    assert_int_equal(aln_cred_name_valid(first, 1), in_set && c != '.' && c != '-');
    assert_int_equal(aln_cred_name_valid(later, 3), in_set);
  }
}

static void test_examples(void **state) {
  (void)state;
  static const char *const good[] = {"a", "A", "0", "_", "_x", "a-b_c.d", "x..y", "trailing-", "trailing.", "v1.2.3"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_true(valid(good[i]));
  /* Path components, hidden files, options, separators, escapes, whitespace. */
  static const char *const bad[] = {".",    "..",  "...", ".hidden", "-x",  "-",    "--rm",        "a/b",
                                    "/",    "a b", " a",  "a\tb",    "a\n", "a\\b", "caf\xc3\xa9", "a:b",
                                    "a%2f", "*",   "a?b", "a#b",     "a;b", "a\"b"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_false(valid(bad[i]));
}

static void test_null_and_embedded_nul(void **state) {
  (void)state;
  assert_false(aln_cred_name_valid(NULL, 1));
  assert_false(aln_cred_name_valid(NULL, 0));
  assert_false(aln_cred_name_valid_str(NULL));
  /* The length form looks at exactly |len| bytes: a NUL inside is refused, bytes
   * past |len| are not read. */
  assert_false(aln_cred_name_valid("a\0b", 3));
  assert_false(aln_cred_name_valid("ab\0", 3));
  assert_true(aln_cred_name_valid("ab/", 2));
  /* The string form ends at the NUL. */
  assert_true(aln_cred_name_valid_str("ab\0/"));
}

/* A buffer of ALN_NAME_MAX + 1 name bytes with no NUL: the string form must stop
 * there (ASan would report a read past the heap block) and refuse it. */
static void test_str_reads_bounded(void **state) {
  (void)state;
  char *p = malloc(ALN_NAME_MAX + 1);
  assert_non_null(p);
  memset(p, 'n', ALN_NAME_MAX + 1);
  assert_false(aln_cred_name_valid_str(p));
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lengths),           cmocka_unit_test(test_every_byte),
      cmocka_unit_test(test_examples),          cmocka_unit_test(test_null_and_embedded_nul),
      cmocka_unit_test(test_str_reads_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
