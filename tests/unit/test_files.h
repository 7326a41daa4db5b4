/* Files the unit tests read from the source tree (tests/data/..., fuzz seeds),
 * found from the test's own __FILE__, so no build setting is needed. Header-only:
 * each test binary is one translation unit. */
#ifndef ALN_TESTS_UNIT_TEST_FILES_H
#define ALN_TESTS_UNIT_TEST_FILES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* aln_test_path returns "<source root>/tests/<rel>" for the test whose __FILE__ is
 * |self> (in a static buffer: use it before the next call), or NULL if |self| is
 * not under tests/. */
static inline const char *aln_test_path(const char *self, const char *rel) {
  static char path[4096];
  const char *cut = strstr(self, "tests/unit/");
  if (cut == NULL)
    return NULL;
  int n = snprintf(path, sizeof(path), "%.*stests/%s", (int)(cut - self), self, rel);
  return n > 0 && (size_t)n < sizeof(path) ? path : NULL;
}

/* aln_test_slurp reads tests/<rel> into a new NUL-terminated buffer (free with
 * free()), without trailing line ends when |trim|; NULL if it cannot be read or is
 * larger than 64 KiB (never a silently shortened copy). */
static inline char *aln_test_slurp(const char *self, const char *rel, size_t *len, int trim) {
  const char *path = aln_test_path(self, rel);
  FILE *f = path != NULL ? fopen(path, "rb") : NULL;
  if (f == NULL)
    return NULL;
  char *buf = calloc(1, 65538);
  size_t n = buf != NULL ? fread(buf, 1, 65537, f) : 0;
  fclose(f);
  if (n > 65536) {
    free(buf);
    return NULL;
  }
  while (trim && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  if (len != NULL)
    *len = n;
  return buf;
}

#endif
