/* fuzz-links: aln_enclave */
/* Fuzzes the epoch file decoder under a fixed KEK. Whatever it accepts must be the
 * exact encoding of the epoch it returns: a forged or altered file never decodes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/epoch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t kek_bytes[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
  struct aln_secret kek = {0};
  if (aln_secret_from(&kek, kek_bytes, sizeof(kek_bytes)) != ALN_OK)
    abort();
  uint64_t epoch = 0;
  if (aln_epoch_decode(&epoch, &kek, data, size) == ALN_OK) {
    uint8_t enc[ALN_EPOCH_FILE_LEN];
    if (aln_epoch_encode(enc, &kek, epoch) != ALN_OK || size != sizeof(enc) || memcmp(enc, data, size) != 0)
      abort();
  }
  aln_secret_free(&kek);
  return 0;
}
