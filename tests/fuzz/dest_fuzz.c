/* fuzz-links: aln_enclave */
/* Destination policy fuzzer. The input is "PREFIX\nURL": both go through the prefix
 * check and the URL check. Whatever the bytes, an accepted URL must be an https URL
 * (the policy's first promise); sanitizers catch the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/dest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 2 * ALN_URL_MAX + 16)
    return 0;
  const uint8_t *nl = memchr(data, '\n', size);
  size_t prefix_len = nl != NULL ? (size_t)(nl - data) : size;
  size_t url_len = nl != NULL ? size - prefix_len - 1 : 0;
  /* C strings: an embedded NUL simply ends the string early, as it would for any
   * caller. */
  char *prefix = malloc(prefix_len + 1);
  char *url = malloc(url_len + 1);
  if (prefix == NULL || url == NULL)
    abort();
  memcpy(prefix, data, prefix_len);
  prefix[prefix_len] = '\0';
  if (url_len > 0)
    memcpy(url, nl + 1, url_len);
  url[url_len] = '\0';

  aln_status pst = aln_dest_prefix_valid(prefix);
  if (pst != ALN_OK && pst != ALN_ERR_BAD_URL)
    abort();
  const char *prefixes[1] = {prefix};
  aln_status st = aln_dest_check(url, prefixes, 1);
  if (st != ALN_OK && st != ALN_ERR_BAD_URL && st != ALN_ERR_DEST_NOT_ALLOWED)
    abort();
  if (st == ALN_OK) {
    if (strncmp(url, "https://", 8) != 0)
      abort();
    /* A prefix that admits something is itself a valid prefix. */
    if (pst != ALN_OK)
      abort();
  }
  /* A URL is always admitted by itself as a prefix when it is a valid prefix. */
  if (aln_dest_prefix_valid(url) == ALN_OK) {
    const char *self[1] = {url};
    if (aln_dest_check(url, self, 1) != ALN_OK)
      abort();
  }
  free(prefix);
  free(url);
  return 0;
}
