/* fuzz-links: aln_proto */
/* Frame decoder fuzz target. Any input must be either refused or decoded into a
 * payload inside the input that re-encodes to exactly the input; a decoded payload
 * is then handed to the protobuf Request parser, as the enclave does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aileron/v1/enclave.pb-c.h"
#include "proto/frame.h"

#define FUZZ_FRAME_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct aln_cbs in, payload;
  aln_cbs_init(&in, data, size);
  aln_status st = aln_frame_decode(&in, FUZZ_FRAME_MAX, &payload);

  /* The header parser alone must agree with the decoder on the length and cap. */
  if (size >= ALN_FRAME_HEADER_LEN) {
    size_t hdr_len = 0;
    aln_status hst = aln_frame_header_parse(data, FUZZ_FRAME_MAX, &hdr_len);
    if (st == ALN_OK && (hst != ALN_OK || hdr_len != payload.len))
      abort();
    if ((st == ALN_ERR_FRAME_TOO_LARGE || st == ALN_ERR_MALFORMED) && hst != st)
      abort();
    if ((st == ALN_ERR_TRUNCATED || st == ALN_ERR_TRAILING) && hst != ALN_OK)
      abort();
  } else if (st != ALN_ERR_TRUNCATED) {
    abort();
  }
  if (st != ALN_OK)
    return 0;

  if (payload.len == 0 || payload.len > FUZZ_FRAME_MAX || payload.p != data + ALN_FRAME_HEADER_LEN ||
      payload.len + ALN_FRAME_HEADER_LEN != size)
    abort();

  Aileron__V1__Request *req = aileron__v1__request__unpack(NULL, payload.len, payload.p);
  if (req != NULL)
    aileron__v1__request__free_unpacked(req, NULL);

  struct aln_cbb out;
  uint8_t *buf = NULL;
  size_t buf_len = 0;
  if (aln_cbb_init(&out, 0, ALN_FRAME_HEADER_LEN + FUZZ_FRAME_MAX) != ALN_OK)
    abort();
  if (aln_frame_encode(&out, payload.p, payload.len, FUZZ_FRAME_MAX) != ALN_OK ||
      aln_cbb_finish(&out, &buf, &buf_len) != ALN_OK)
    abort();
  if (buf_len != size || memcmp(buf, data, size) != 0)
    abort();
  aln_cbb_buf_free(buf, buf_len);
  return 0;
}
