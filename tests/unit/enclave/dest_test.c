/* Destination policy: a table of URL/prefix pairs with the status each must give,
 * covering the matches the policy must allow and every way we know of to make a
 * URL look allowed while it reaches somewhere else (other host, port, path, dot
 * segments, escapes, userinfo, control bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "enclave/dest.h"

#define P "https://api.example.com/v1"

struct dest_case {
  const char *url;
  const char *prefix;
  aln_status want;
};

static const struct dest_case k_cases[] = {
    /* allowed */
    {"https://api.example.com/v1", P, ALN_OK},
    {"https://api.example.com/v1/", P, ALN_OK},
    {"https://api.example.com/v1/repos/a/b", P, ALN_OK},
    {"https://api.example.com/v1?page=2", P, ALN_OK},
    {"https://api.example.com/v1/x?page=2&q=a%2Fb%2e%2e", P, ALN_OK}, /* query is not matched */
    {"https://api.example.com/v1/x?", P, ALN_OK},
    {"https://api.example.com:443/v1/x", P, ALN_OK},
    {"https://api.example.com/v1/x", "https://api.example.com:443/v1", ALN_OK},
    {"https://api.example.com:0443/v1/x", P, ALN_OK},
    {"https://API.Example.COM/v1/x", P, ALN_OK},
    {"https://api.example.com/v1/x", "https://API.EXAMPLE.com/v1", ALN_OK},
    {"https://api.example.com/", "https://api.example.com", ALN_OK},
    {"https://api.example.com", "https://api.example.com/", ALN_OK},
    {"https://api.example.com/anything/at/all", "https://api.example.com", ALN_OK},
    {"https://api.example.com/v1/", "https://api.example.com/v1/", ALN_OK},
    {"https://api.example.com/v1/x", "https://api.example.com/v1/", ALN_OK},
    {"https://api.example.com:8443/v1/x", "https://api.example.com:8443/v1", ALN_OK},
    {"https://api.example.com/v1/a;b=c", P, ALN_OK},
    {"https://api.example.com/v1/..x/.y/z.", P, ALN_OK}, /* dots inside names are not dot segments */
    {"https://api.example.com/v1/a%20b%C3%A9", P, ALN_OK},
    {"https://api.example.com/v1//x", P, ALN_OK},
    {"https://[::1]/v1/x", "https://[::1]/v1", ALN_OK},
    {"https://[0:0::1]/v1/x", "https://[::1]/v1", ALN_OK}, /* both sides normalised by curl */
    {"https://127.0.0.1:8443/x", "https://127.0.0.1:8443/", ALN_OK},

    /* not allowed: a well-formed URL somewhere else */
    {"https://evil.com/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com.evil.com/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://evilapi.example.com/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://sub.api.example.com/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://example.com/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.co/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com:8443/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com:80/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com/v1", "https://api.example.com:8443/v1", ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com/v10", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com/v1x/y", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com/v", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com/", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com/V1/x", P, ALN_ERR_DEST_NOT_ALLOWED}, /* paths are case-sensitive */
    {"https://api.example.com/v1", "https://api.example.com/v1/", ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com/admin?x=/v1", P, ALN_ERR_DEST_NOT_ALLOWED},
    {"https://[::2]/v1/x", "https://[::1]/v1", ALN_ERR_DEST_NOT_ALLOWED},
    {"https://127.0.0.1/v1/x", "https://[::1]/v1", ALN_ERR_DEST_NOT_ALLOWED},
    {"https://api.example.com/v1/x", "https://api.example.com/v1?x=1", ALN_ERR_DEST_NOT_ALLOWED}, /* bad prefix */
    {"https://api.example.com/v1/x", "http://api.example.com/v1", ALN_ERR_DEST_NOT_ALLOWED},

    /* bad URL: scheme and shape */
    {"http://api.example.com/v1", P, ALN_ERR_BAD_URL},
    {"ftp://api.example.com/v1", P, ALN_ERR_BAD_URL},
    {"HTTPS://api.example.com/v1", P, ALN_ERR_BAD_URL}, /* exact lower-case scheme only */
    {"", P, ALN_ERR_BAD_URL},
    {"/v1/x", P, ALN_ERR_BAD_URL},
    {"api.example.com/v1", P, ALN_ERR_BAD_URL},
    {"//api.example.com/v1", P, ALN_ERR_BAD_URL},
    {"https:api.example.com/v1", P, ALN_ERR_BAD_URL},
    {"https:/api.example.com/v1", P, ALN_ERR_BAD_URL},   /* curl would take it */
    {"https:///api.example.com/v1", P, ALN_ERR_BAD_URL}, /* curl would take it */
    {"https://", P, ALN_ERR_BAD_URL},
    {"https:///v1", P, ALN_ERR_BAD_URL},
    {"https://?x", P, ALN_ERR_BAD_URL},
    {"https://:443/v1", P, ALN_ERR_BAD_URL},
    {"https://api.example.com:99999/v1", P, ALN_ERR_BAD_URL},
    {"https://api.example.com:abc/v1", P, ALN_ERR_BAD_URL},
    {"https://[::1/v1", P, ALN_ERR_BAD_URL},
    {"https://[fe80::1%25eth0]/v1", "https://[fe80::1]/v1", ALN_ERR_BAD_URL},

    /* bad URL: userinfo */
    {"https://api.example.com@evil.com/v1", P, ALN_ERR_BAD_URL},
    {"https://user:pw@api.example.com/v1/", P, ALN_ERR_BAD_URL},
    {"https://user@api.example.com/v1/", P, ALN_ERR_BAD_URL},
    {"https://:@api.example.com/v1/", P, ALN_ERR_BAD_URL},
    {"https://api.example.com:443@evil.com/v1", P, ALN_ERR_BAD_URL},

    /* bad URL: host spelling */
    {"https://api.example.com./v1", P, ALN_ERR_BAD_URL},
    {"https://api.example.com.:443/v1", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1", "https://api.example.com./v1", ALN_ERR_DEST_NOT_ALLOWED},
    {"https://%61pi.example.com/v1", P, ALN_ERR_BAD_URL},
    {"https://api.ex\xc3\xa4mple.com/v1", P, ALN_ERR_BAD_URL},

    /* bad URL: path that could be read differently upstream */
    {"https://api.example.com/v1/../admin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/./x", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/..", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/.", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/../", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/..?x", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/..", "https://api.example.com", ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/..;/admin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/.;x/admin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%2e%2e/admin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%2E%2E/admin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/.%2e/admin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%2e", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1%2fadmin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1%2Fadmin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%5c..%5cadmin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%5C", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/x%00", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%252e%252e/admin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%zz", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%2", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1\\admin", P, ALN_ERR_BAD_URL},
    {"https://api.example.com\\@evil.com/v1", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1?x=\\", P, ALN_ERR_BAD_URL},

    /* bad URL: bytes */
    {"https://api.example.com/v1\r\nHost: evil.com", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1\n", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1\x01", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1\t", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1\x1f", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1\x7f", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/a b", P, ALN_ERR_BAD_URL},
    {" https://api.example.com/v1", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/\xc3\xa9", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1?q=\xff", P, ALN_ERR_BAD_URL},

    /* bad URL: fragment */
    {"https://api.example.com/v1#frag", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1#", P, ALN_ERR_BAD_URL},
    {"https://api.example.com/v1?x#y", P, ALN_ERR_BAD_URL},
};

static void test_table(void **state) {
  (void)state;
  int failures = 0;
  for (size_t i = 0; i < sizeof(k_cases) / sizeof(k_cases[0]); i++) {
    const char *prefixes[1] = {k_cases[i].prefix};
    aln_status got = aln_dest_check(k_cases[i].url, prefixes, 1);
    if (got != k_cases[i].want) {
      print_error("case %zu: url \"%s\" prefix \"%s\": got %s, want %s\n", i, k_cases[i].url, k_cases[i].prefix,
                  aln_status_name(got), aln_status_name(k_cases[i].want));
      failures++;
    }
  }
  assert_int_equal(failures, 0);
}

struct prefix_case {
  const char *prefix;
  aln_status want;
};

static const struct prefix_case k_prefixes[] = {
    {"https://api.example.com", ALN_OK},
    {"https://api.example.com/", ALN_OK},
    {"https://api.example.com/v1", ALN_OK},
    {"https://api.example.com/v1/", ALN_OK},
    {"https://api.example.com:8443/v1", ALN_OK},
    {"https://API.EXAMPLE.COM/V1", ALN_OK},
    {"https://[::1]/v1", ALN_OK},
    {"https://10.0.0.1/", ALN_OK},
    {"https://api.example.com/v1?x=1", ALN_ERR_BAD_URL},
    {"https://api.example.com/v1?", ALN_ERR_BAD_URL},
    {"https://api.example.com?", ALN_ERR_BAD_URL},
    {"https://api.example.com/v1#x", ALN_ERR_BAD_URL},
    {"http://api.example.com/v1", ALN_ERR_BAD_URL},
    {"https://", ALN_ERR_BAD_URL},
    {"https:///v1", ALN_ERR_BAD_URL},
    {"https://:8443/v1", ALN_ERR_BAD_URL},
    {"https://user@api.example.com/v1", ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/../x", ALN_ERR_BAD_URL},
    {"https://api.example.com/v1/%2e%2e", ALN_ERR_BAD_URL},
    {"https://api.example.com./v1", ALN_ERR_BAD_URL},
    {"https://api.example.com/v 1", ALN_ERR_BAD_URL},
    {"api.example.com/v1", ALN_ERR_BAD_URL},
    {"/v1", ALN_ERR_BAD_URL},
    {"", ALN_ERR_BAD_URL},
};

static void test_prefix_valid(void **state) {
  (void)state;
  int failures = 0;
  for (size_t i = 0; i < sizeof(k_prefixes) / sizeof(k_prefixes[0]); i++) {
    aln_status got = aln_dest_prefix_valid(k_prefixes[i].prefix);
    if (got != k_prefixes[i].want) {
      print_error("prefix %zu \"%s\": got %s, want %s\n", i, k_prefixes[i].prefix, aln_status_name(got),
                  aln_status_name(k_prefixes[i].want));
      failures++;
    }
  }
  assert_int_equal(failures, 0);
  assert_int_equal(aln_dest_prefix_valid(NULL), ALN_ERR_BAD_URL);
}

static void test_several_prefixes(void **state) {
  (void)state;
  const char *prefixes[] = {"https://other.example.com/", "https://api.example.com/v2", "https://api.example.com/v1"};
  assert_int_equal(aln_dest_check("https://api.example.com/v1/x", prefixes, 3), ALN_OK);
  assert_int_equal(aln_dest_check("https://other.example.com/y", prefixes, 3), ALN_OK);
  assert_int_equal(aln_dest_check("https://api.example.com/v3/x", prefixes, 3), ALN_ERR_DEST_NOT_ALLOWED);
  /* Only the first |num_prefixes| count. */
  assert_int_equal(aln_dest_check("https://api.example.com/v1/x", prefixes, 2), ALN_ERR_DEST_NOT_ALLOWED);
  assert_int_equal(aln_dest_check("https://api.example.com/v1/x", prefixes, 0), ALN_ERR_DEST_NOT_ALLOWED);
  assert_int_equal(aln_dest_check("https://api.example.com/v1/x", NULL, 0), ALN_ERR_DEST_NOT_ALLOWED);
  /* A malformed URL is reported as such whatever the prefixes. */
  assert_int_equal(aln_dest_check("http://api.example.com/v1/x", prefixes, 3), ALN_ERR_BAD_URL);
  assert_int_equal(aln_dest_check("http://api.example.com/v1/x", NULL, 0), ALN_ERR_BAD_URL);
  assert_int_equal(aln_dest_check(NULL, prefixes, 3), ALN_ERR_BAD_URL);
  /* A broken prefix in the list admits nothing but does not hide the others. */
  const char *with_bad[] = {NULL, "https://api.example.com/v1?x", "https://api.example.com/v1"};
  assert_int_equal(aln_dest_check("https://api.example.com/v1/x", with_bad, 3), ALN_OK);
  assert_int_equal(aln_dest_check("https://api.example.com/v1/x", with_bad, 2), ALN_ERR_DEST_NOT_ALLOWED);
}

/* make_url returns a malloc'd URL of exactly |len| bytes under P. */
static char *make_url(size_t len) {
  char *u = malloc(len + 1);
  assert_non_null(u);
  size_t base = strlen(P "/");
  assert_true(len > base);
  memcpy(u, P "/", base);
  memset(u + base, 'a', len - base);
  u[len] = '\0';
  return u;
}

static void test_length_boundary(void **state) {
  (void)state;
  const char *prefixes[] = {P};
  char *at_max = make_url(ALN_URL_MAX);
  char *over = make_url(ALN_URL_MAX + 1);
  char *far_over = make_url(ALN_URL_MAX * 4);
  assert_int_equal(aln_dest_check(at_max, prefixes, 1), ALN_OK);
  assert_int_equal(aln_dest_check(over, prefixes, 1), ALN_ERR_BAD_URL);
  assert_int_equal(aln_dest_check(far_over, prefixes, 1), ALN_ERR_BAD_URL);
  /* The same limit holds for prefixes. */
  assert_int_equal(aln_dest_prefix_valid(at_max), ALN_OK);
  assert_int_equal(aln_dest_prefix_valid(over), ALN_ERR_BAD_URL);
  const char *long_prefix[] = {over};
  assert_int_equal(aln_dest_check(at_max, long_prefix, 1), ALN_ERR_DEST_NOT_ALLOWED);
  free(at_max);
  free(over);
  free(far_over);
}

/* Every byte value outside 0x21..0x7e, in host, path and query, is refused. */
static void test_every_bad_byte(void **state) {
  (void)state;
  const char *prefixes[] = {P};
  static const char *const around[][2] = {
      {"https://api.ex", "mple.com/v1"}, {"https://api.example.com/v1/", ""}, {"https://api.example.com/v1?q=", ""}};
  for (size_t t = 0; t < 3; t++) {
    for (int b = 1; b < 256; b++) {
      if (b >= 0x21 && b < 0x7f)
        continue;
      char url[64];
      snprintf(url, sizeof(url), "%s%c%s", around[t][0], b, around[t][1]);
      if (aln_dest_check(url, prefixes, 1) != ALN_ERR_BAD_URL)
        fail_msg("byte 0x%02x in template %zu accepted", b, t);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_prefix_valid),
      cmocka_unit_test(test_several_prefixes),
      cmocka_unit_test(test_length_boundary),
      cmocka_unit_test(test_every_bad_byte),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
