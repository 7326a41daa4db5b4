/* fuzz-links: aln_enclave */
/* Fuzzes the KEK recovery file decoder. A file it accepts must be canonical:
 * encoding what was decoded gives back exactly the input, so nothing the decoder
 * skipped can hide in a file, and the ciphertext must lie inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/recovery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct aln_recovery_file f;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  if (aln_recovery_decode(&f, data, size) != ALN_OK)
    return 0;
  if (f.ct < data || f.ct_len > size || f.ct + f.ct_len > data + size)
    abort();
  if (aln_recovery_encode(&enc, &enc_len, &f) != ALN_OK || enc_len != size || memcmp(enc, data, size) != 0)
    abort();
  free(enc);
  return 0;
}
