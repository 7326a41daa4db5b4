/* Secret redaction: see redact.h. memmem's running time depends on the secret, which
 * is acceptable here: the haystack is a response the enclave already received, and
 * only the total time of a whole upstream call is visible outside. */
#include "enclave/redact.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define MARK_LEN (sizeof(ALN_REDACT_MARK) - 1)

/* count_occurrences returns the number of non-overlapping occurrences of |n| > 0
 * bytes at |needle| in |hay|. */
static size_t count_occurrences(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t n) {
  size_t count = 0;
  while (hay_len >= n) {
    const uint8_t *m = memmem(hay, hay_len, needle, n);
    if (m == NULL)
      break;
    size_t adv = (size_t)(m - hay) + n;
    hay += adv;
    hay_len -= adv;
    count++;
  }
  return count;
}

/* new_buffer returns a malloc'd copy of |len| bytes at |data| plus a NUL, or NULL. */
static uint8_t *new_buffer(const uint8_t *data, size_t len) {
  uint8_t *p = malloc(len + 1);
  if (p != NULL) {
    memcpy(p, data, len);
    p[len] = '\0';
  }
  return p;
}

aln_status aln_redact(uint8_t **buf, size_t *len, const uint8_t *secret, size_t secret_len) {
  aln_status st = ALN_ERR_NOMEM;
  uint8_t *out = NULL;
  size_t out_len = 0;

  if (secret_len == 0 || *len < secret_len)
    return ALN_OK;
  size_t num = count_occurrences(*buf, *len, secret, secret_len);
  if (num == 0)
    return ALN_OK;
  /* num * secret_len <= *len, so only the growth by the mark can overflow. */
  size_t grow;
  if (__builtin_mul_overflow(num, MARK_LEN, &grow) || __builtin_add_overflow(*len - num * secret_len, grow, &out_len) ||
      out_len == SIZE_MAX)
    goto out;
  out = malloc(out_len + 1);
  if (out == NULL)
    goto out;

  const uint8_t *in = *buf;
  size_t in_len = *len, w = 0;
  for (size_t i = 0; i < num; i++) {
    const uint8_t *m = memmem(in, in_len, secret, secret_len);
    size_t before = (size_t)(m - in);
    memcpy(out + w, in, before);
    memcpy(out + w + before, ALN_REDACT_MARK, MARK_LEN);
    w += before + MARK_LEN;
    in += before + secret_len;
    in_len -= before + secret_len;
  }
  memcpy(out + w, in, in_len);
  out[out_len] = '\0';

  if (count_occurrences(out, out_len, secret, secret_len) > 0) {
    /* The secret straddles a mark and its neighbours: give up on the content. */
    OPENSSL_cleanse(out, out_len);
    free(out);
    int in_mark = memmem(ALN_REDACT_MARK, MARK_LEN, secret, secret_len) != NULL;
    out_len = in_mark ? 0 : MARK_LEN;
    out = new_buffer((const uint8_t *)ALN_REDACT_MARK, out_len);
    if (out == NULL)
      goto out;
  }

  OPENSSL_cleanse(*buf, *len);
  free(*buf);
  *buf = out;
  *len = out_len;
  out = NULL;
  st = ALN_OK;
out:
  if (out != NULL) {
    OPENSSL_cleanse(out, out_len);
    free(out);
  }
  return st;
}
