/* fuzz-links: aln_enclave */
/* Fuzzes the kek.tpm decoder. A blob it accepts must be canonical: encoding what
 * was decoded gives back exactly the input, so no two files mean the same sealed
 * object and nothing the decoder skipped can hide in one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/provider_tpm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct aln_tpm_blob b;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  if (aln_tpm_blob_decode(&b, data, size) != ALN_OK)
    return 0;
  if (aln_tpm_blob_encode(&enc, &enc_len, &b) != ALN_OK || enc_len != size || memcmp(enc, data, size) != 0)
    abort();
  free(enc);
  return 0;
}
