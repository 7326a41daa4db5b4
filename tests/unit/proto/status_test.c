/* Tests for proto/status: the table is consistent (unique codes and names, a
 * message for each), lookups agree with the table, codes outside it are reported as
 * unknown, and the HTTP mapping follows the category, never answering 2xx for an
 * error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/status.h"

struct entry {
  uint32_t code;
  unsigned cat;
  unsigned num;
  const char *name;
  const char *msg;
};

/* The test builds its own copy of the table so it checks the functions against the
 * source of truth, not against themselves. */
static const struct entry table[] = {
#define ENTRY_(name, cat, num, msg) {name, cat, num, #name, msg},
    ALN_STATUS_TABLE(ENTRY_)
#undef ENTRY_
};
#define NUM_ENTRIES (sizeof(table) / sizeof(table[0]))

static void test_table_entries_are_consistent(void **state) {
  (void)state;
  assert_true(NUM_ENTRIES > 1);
  assert_int_equal(table[0].code, 0);
  assert_int_equal(ALN_OK, 0);
  for (size_t i = 0; i < NUM_ENTRIES; i++) {
    const struct entry *e = &table[i];
    assert_true(e->cat <= ALN_CAT_INTERNAL);
    assert_true(e->num <= 0xff);
    /* Only ALN_OK may be number 0 of its category. */
    assert_true(e->num != 0 || e->code == ALN_OK);
    assert_int_equal(e->code, (e->cat << 8) | e->num);
    assert_int_equal(aln_status_category((aln_status)e->code), e->cat);
    assert_true(aln_status_is_known(e->code));
    assert_non_null(e->msg);
    assert_true(strlen(e->msg) > 0);
    assert_string_equal(aln_strerror((aln_status)e->code), e->msg);
    assert_string_equal(aln_status_name((aln_status)e->code), e->name);
    assert_true(strncmp(e->name, "ALN_", 4) == 0);
    assert_string_not_equal(e->msg, "unknown status");
    for (size_t j = i + 1; j < NUM_ENTRIES; j++) {
      assert_int_not_equal(e->code, table[j].code);
      assert_string_not_equal(e->name, table[j].name);
      /* Distinct messages let an operator tell errors apart from text alone. */
      assert_string_not_equal(e->msg, table[j].msg);
    }
  }
}

static void test_unknown_codes(void **state) {
  (void)state;
  const uint32_t unknown[] = {
      0x0001,                          /* category OK, nonzero number */
      0x00ff,     0x01ff,              /* known category, number past the table */
      0x0100,                          /* number 0 of a non-OK category */
      0x0a01,                          /* category past the last one */
      0xff01,     0x10000,    0x10001, /* bits above the category byte */
      0x80000000, UINT32_MAX,
  };
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    aln_status st = (aln_status)unknown[i];
    assert_false(aln_status_is_known(unknown[i]));
    assert_string_equal(aln_strerror(st), "unknown status");
    assert_string_equal(aln_status_name(st), "ALN_UNKNOWN");
    assert_int_equal(aln_status_http(st), 500);
  }
}

static void test_http_mapping(void **state) {
  (void)state;
  static const struct {
    aln_status st;
    int http;
  } cases[] = {
      {ALN_OK, 200},
      {ALN_ERR_USAGE, 400},
      {ALN_ERR_TOO_LARGE, 400},
      {ALN_ERR_BAD_INJECTION, 400},
      {ALN_ERR_AUTH_MISSING, 401},
      {ALN_ERR_SESSION_INVALID, 401},
      {ALN_ERR_DENIED, 403},
      {ALN_ERR_DEST_NOT_ALLOWED, 403},
      {ALN_ERR_NOT_FOUND, 404},
      {ALN_ERR_EXISTS, 409},
      {ALN_ERR_TRUNCATED, 502},
      {ALN_ERR_VERSION, 502},
      {ALN_ERR_ATTEST, 502},
      {ALN_ERR_ATTEST_DEBUG, 502},
      {ALN_ERR_IO, 502},
      {ALN_ERR_PERMS, 502},
      {ALN_ERR_UNAVAILABLE, 503},
      {ALN_ERR_INTERNAL, 500},
      {ALN_ERR_NOMEM, 500},
      {ALN_ERR_TAMPERED, 500},
      {ALN_ERR_DISK_FULL, 507},
      {ALN_ERR_STATE_TAMPERED, 500},
      {ALN_ERR_KEK_MISMATCH, 409},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    assert_int_equal(aln_status_http(cases[i].st), cases[i].http);
}

static void test_http_mapping_follows_category(void **state) {
  (void)state;
  static const int by_cat[] = {200, 400, 401, 403, 404, 409, 502, 502, 502, 500};
  for (size_t i = 0; i < NUM_ENTRIES; i++) {
    aln_status st = (aln_status)table[i].code;
    int http = aln_status_http(st);
    /* The two deliberate exceptions within their category. */
    int want = st == ALN_ERR_UNAVAILABLE ? 503 : st == ALN_ERR_DISK_FULL ? 507 : by_cat[table[i].cat];
    assert_int_equal(http, want);
    /* No error may ever look like success to an HTTP client. */
    if (st != ALN_OK)
      assert_true(http >= 400);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table_entries_are_consistent),
      cmocka_unit_test(test_unknown_codes),
      cmocka_unit_test(test_http_mapping),
      cmocka_unit_test(test_http_mapping_follows_category),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
