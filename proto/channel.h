/* Protobuf messages over a TLS connection, one frame each (proto/frame.h). Every
 * buffer that held a serialized message is wiped before it is freed: requests can
 * carry a credential on its way into the enclave. */
#ifndef ALN_PROTO_CHANNEL_H
#define ALN_PROTO_CHANNEL_H

#include <openssl/ssl.h>

#include "aileron/v1/enclave.pb-c.h"
#include "proto/status.h"

/* aln_channel_send_request packs |req| and writes it as one frame. ALN_ERR_TOO_LARGE
 * past ALN_FRAME_MAX_DEFAULT, ALN_ERR_CLOSED / ALN_ERR_TLS on transport failure. */
aln_status aln_channel_send_request(SSL *ssl, const Aileron__V1__Request *req) ALN_WUR;
aln_status aln_channel_send_response(SSL *ssl, const Aileron__V1__Response *resp) ALN_WUR;

/* aln_channel_recv_request reads one frame and unpacks a Request into *out (free with
 * aln_channel_request_free). ALN_ERR_CLOSED on a clean close before any byte,
 * ALN_ERR_TRUNCATED if the peer closed mid-frame, ALN_ERR_FRAME_TOO_LARGE past the
 * cap (checked before allocating), ALN_ERR_MALFORMED if it does not unpack or
 * carries no body, ALN_ERR_VERSION for another protocol version, ALN_ERR_TRAILING if
 * the peer sent more bytes in the same TLS record as the frame (the protocol is
 * lockstep). A peer that hangs up without close_notify gives ALN_ERR_TLS. */
aln_status aln_channel_recv_request(SSL *ssl, Aileron__V1__Request **out) ALN_WUR;

/* aln_channel_recv_response as aln_channel_recv_request for a Response; also
 * ALN_ERR_MALFORMED if the status is not a known aln_status code. Free with
 * aln_channel_response_free. */
aln_status aln_channel_recv_response(SSL *ssl, Aileron__V1__Response **out) ALN_WUR;

/* aln_channel_request_free wipes any secret a request carries and frees it; NULL is
 * a no-op. */
void aln_channel_request_free(Aileron__V1__Request *req);

/* aln_channel_response_free wipes what a response may carry that is not the host's
 * to keep (an upstream reply's headers and body, a TPM activation secret) and frees
 * it; NULL is a no-op. */
void aln_channel_response_free(Aileron__V1__Response *resp);

#endif
