/* Frame codec: a frame is a 4-byte big-endian payload length, then the payload (one
 * protobuf Request or Response). The size cap is checked before any allocation. */
#ifndef ALN_PROTO_FRAME_H
#define ALN_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/cbs.h"
#include "proto/status.h"

#define ALN_FRAME_HEADER_LEN 4
#define ALN_FRAME_MAX_DEFAULT ((size_t)1 << 20) /* 1 MiB */

/* aln_frame_header_parse reads the 4-byte header |hdr| into *out_len.
 * ALN_ERR_FRAME_TOO_LARGE if the length exceeds |max|, ALN_ERR_MALFORMED if it is 0
 * (an empty payload is never a valid message here). */
aln_status aln_frame_header_parse(const uint8_t hdr[ALN_FRAME_HEADER_LEN], size_t max, size_t *out_len) ALN_WUR;

/* aln_frame_decode parses exactly one frame from |in| into |out_payload| (a view into
 * |in|'s bytes). ALN_ERR_TRUNCATED if |in| ends early, ALN_ERR_FRAME_TOO_LARGE if the
 * declared length exceeds |max|, ALN_ERR_TRAILING if bytes follow the frame. */
aln_status aln_frame_decode(const struct aln_cbs *in, size_t max, struct aln_cbs *out_payload) ALN_WUR;

/* aln_frame_encode appends the frame for |payload| to |out|. ALN_ERR_FRAME_TOO_LARGE
 * if payload_len exceeds |max| or is 0. */
aln_status aln_frame_encode(struct aln_cbb *out, const uint8_t *payload, size_t payload_len, size_t max) ALN_WUR;

#endif
