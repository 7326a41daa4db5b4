/* fuzz-links: aln_enclave */
/* Fuzzes the epoch file decoders (both formats, ALNEPOC1 and ALNEPOC2) under a fixed
 * KEK. Whatever they accept must be the exact encoding of the record they return
 * and must mean something an encoder writes; the first format's decoder accepts
 * exactly the version 1 images the general one does. A forged or altered file
 * never decodes. */
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
  struct aln_epoch_record rec;
  uint64_t epoch = 0;
  aln_status st = aln_epoch_record_decode(&rec, &kek, data, size);
  aln_status st1 = aln_epoch_decode(&epoch, &kek, data, size);
  if (st == ALN_OK) {
    uint8_t enc[ALN_EPOCH_FILE_MAX];
    size_t len = 0;
    if (aln_epoch_record_encode(enc, sizeof(enc), &len, &kek, &rec) != ALN_OK || len != size ||
        memcmp(enc, data, size) != 0)
      abort();
    if ((rec.version == 2 && (rec.generation > rec.epoch || (rec.nv_index >> 24) != 0x01)) ||
        (rec.version == 1 && (rec.generation != 0 || rec.nv_index != 0 || rec.base != 0)))
      abort();
  }
  if ((st1 == ALN_OK) != (st == ALN_OK && rec.version == 1) || (st1 == ALN_OK && epoch != rec.epoch))
    abort();
  aln_secret_free(&kek);
  return 0;
}
