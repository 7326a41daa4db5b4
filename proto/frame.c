/* Frame codec. The declared length is checked against the cap before the payload
 * is looked at, so a peer cannot make the reader wait for or allocate more than the
 * cap by lying in the header. */
#include "proto/frame.h"

aln_status aln_frame_header_parse(const uint8_t hdr[ALN_FRAME_HEADER_LEN], size_t max, size_t *out_len) {
  uint32_t len = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
  ALN_ENSURE(len <= max, ALN_ERR_FRAME_TOO_LARGE);
  ALN_ENSURE(len != 0, ALN_ERR_MALFORMED);
  *out_len = len;
  return ALN_OK;
}

aln_status aln_frame_decode(const struct aln_cbs *in, size_t max, struct aln_cbs *out_payload) {
  struct aln_cbs c = *in, hdr, payload;
  size_t len;
  ALN_GUARD(aln_cbs_get_bytes(&c, &hdr, ALN_FRAME_HEADER_LEN));
  ALN_GUARD(aln_frame_header_parse(hdr.p, max, &len));
  ALN_GUARD(aln_cbs_get_bytes(&c, &payload, len));
  ALN_GUARD(aln_cbs_ensure_empty(&c));
  *out_payload = payload;
  return ALN_OK;
}

aln_status aln_frame_encode(struct aln_cbb *out, const uint8_t *payload, size_t payload_len, size_t max) {
  ALN_ENSURE(payload_len != 0 && payload_len <= max && payload_len <= UINT32_MAX, ALN_ERR_FRAME_TOO_LARGE);
  ALN_ENSURE(payload != NULL, ALN_ERR_USAGE);
  /* The header and payload go in as one prefixed record, so a failure never leaves
   * a header without its payload in |out|. */
  return aln_cbb_add_u32_prefixed(out, payload, payload_len);
}
