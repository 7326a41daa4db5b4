/* Tests for proto/http, the header rules both programs apply to a credential use:
 * every byte value checked against the tchar set written out here; token lengths
 * 1..ALN_HTTP_NAME_MAX; values refuse every control byte but tab, and DEL; the
 * refused request and injection headers in any case, with neighbours that are
 * allowed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/http.h"

static const char tchars[] = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void test_tokens(void **state) {
  (void)state;
  for (int c = 0; c < 256; c++) {
    char one = (char)c;
    int want = c != 0 && strchr(tchars, c) != NULL;
    assert_int_equal(aln_http_is_tchar((unsigned char)c), want);
    assert_int_equal(aln_http_token_valid(&one, 1), want);
  }
  char name[ALN_HTTP_NAME_MAX + 1];
  memset(name, 'x', sizeof(name));
  assert_true(aln_http_token_valid(name, ALN_HTTP_NAME_MAX));
  assert_false(aln_http_token_valid(name, ALN_HTTP_NAME_MAX + 1));
  assert_false(aln_http_token_valid(name, 0));
  assert_false(aln_http_token_valid(NULL, 1));
  assert_false(aln_http_token_valid("X-Key:", 6));
  assert_false(aln_http_token_valid("X Key", 5));
  assert_false(aln_http_token_valid("X-K\0y", 5)); /* an embedded NUL is not a tchar */
}

static void test_values(void **state) {
  (void)state;
  for (int c = 0; c < 256; c++) {
    char v[3] = {'a', (char)c, 'b'};
    int want = c == '\t' || (c >= 0x20 && c != 0x7f);
    assert_int_equal(aln_http_value_valid(v, sizeof(v)), want);
  }
  assert_true(aln_http_value_valid("", 0));
  assert_false(aln_http_value_valid("a\r\nX-Evil: 1", 12));
}

static void test_refused_headers(void **state) {
  (void)state;
  static const char *const request[] = {"Authorization",    "proxy-authorization",
                                        "COOKIE",           "Host",
                                        "X-Forwarded-Host", "x-http-method-override",
                                        "content-length",   "Transfer-Encoding",
                                        "trailer",          "Keep-Alive",
                                        "accept-encoding",  "Range",
                                        "If-Range",         "TE",
                                        "Expect",           "Upgrade",
                                        "Connection"};
  for (size_t i = 0; i < sizeof(request) / sizeof(request[0]); i++)
    assert_true(aln_http_request_header_refused(request[i]));
  static const char *const allowed[] = {"Accept", "Content-Type", "X-Api-Key", "User-Agent", "Authorizations", "Hos"};
  for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
    assert_false(aln_http_request_header_refused(allowed[i]));
    assert_false(aln_http_injection_header_refused(allowed[i]));
  }
  static const char *const injection[] = {
      "host", "Content-Length", "TRANSFER-ENCODING", "Connection", "Upgrade", "Expect", "te", "Trailer", "keep-alive"};
  for (size_t i = 0; i < sizeof(injection) / sizeof(injection[0]); i++)
    assert_true(aln_http_injection_header_refused(injection[i]));
  /* A binding may inject into Authorization-like headers: that is what it is for. */
  assert_false(aln_http_injection_header_refused("Authorization"));
  assert_false(aln_http_injection_header_refused("Cookie"));
  assert_true(aln_http_request_header_refused(NULL));
  assert_true(aln_http_injection_header_refused(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tokens),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_refused_headers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
