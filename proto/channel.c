/* Protobuf frames over TLS (see channel.h). Lockstep request/response: a peer that
 * sends more than one frame before its answer is breaking the protocol. */
#include "proto/channel.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbs.h"
#include "proto/frame.h"

static aln_status map_ssl_error(SSL *ssl, int ret) {
  int err = SSL_get_error(ssl, ret);
  ERR_clear_error();
  if (err == SSL_ERROR_ZERO_RETURN)
    return ALN_ERR_CLOSED;
  if (err == SSL_ERROR_SYSCALL)
    return ALN_ERR_CLOSED;
  return ALN_ERR_TLS;
}

/* read_full reads exactly |len| bytes. *got tells how many arrived before a failure,
 * so the caller can tell a clean close from a truncated frame. */
static aln_status read_full(SSL *ssl, uint8_t *buf, size_t len, size_t *got) {
  *got = 0;
  while (*got < len) {
    size_t n = 0;
    int ret = SSL_read_ex(ssl, buf + *got, len - *got, &n);
    if (ret <= 0)
      return map_ssl_error(ssl, ret);
    *got += n;
  }
  return ALN_OK;
}

static aln_status write_frame(SSL *ssl, const ProtobufCMessage *msg) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_cbb cbb = {0};
  size_t payload_len = protobuf_c_message_get_packed_size(msg);

  ALN_ENSURE(payload_len > 0 && payload_len <= ALN_FRAME_MAX_DEFAULT, ALN_ERR_TOO_LARGE);
  /* The message is packed once, straight after its header: one buffer, one copy
   * of whatever it carries, wiped by aln_cbb_cleanup. */
  ALN_GUARD(aln_cbb_init(&cbb, payload_len + ALN_FRAME_HEADER_LEN, payload_len + ALN_FRAME_HEADER_LEN));
  ALN_GUARD_GOTO(st, aln_cbb_add_u32(&cbb, (uint32_t)payload_len), out);
  ALN_ENSURE_GOTO(st, protobuf_c_message_pack(msg, cbb.buf + cbb.len) == payload_len, ALN_ERR_INTERNAL, out);
  cbb.len += payload_len;
  size_t written = 0;
  int ret = SSL_write_ex(ssl, cbb.buf, cbb.len, &written);
  if (ret <= 0) {
    st = map_ssl_error(ssl, ret);
    goto out;
  }
  st = ALN_OK;
out:
  aln_cbb_cleanup(&cbb);
  return st;
}

/* read_frame reads one frame into a new buffer (wipe and free with
 * aln_cbb_buf_free). The size cap is checked on the header, before allocating. */
static aln_status read_frame(SSL *ssl, uint8_t **out, size_t *out_len) {
  aln_status st = ALN_ERR_INTERNAL;
  uint8_t hdr[ALN_FRAME_HEADER_LEN];
  size_t len = 0, got = 0;
  uint8_t *buf = NULL;

  st = read_full(ssl, hdr, sizeof(hdr), &got);
  if (st != ALN_OK)
    return got == 0 ? st : ALN_ERR_TRUNCATED;
  ALN_GUARD(aln_frame_header_parse(hdr, ALN_FRAME_MAX_DEFAULT, &len));
  buf = malloc(len);
  ALN_ENSURE(buf != NULL, ALN_ERR_NOMEM);
  st = read_full(ssl, buf, len, &got);
  if (st != ALN_OK) {
    st = ALN_ERR_TRUNCATED;
    goto out;
  }
  /* Lockstep: nothing may follow a frame before we answer it. Bytes the peer put in
   * the same TLS record after the frame are trailing garbage. */
  ALN_ENSURE_GOTO(st, SSL_pending(ssl) == 0, ALN_ERR_TRAILING, out);
  *out = buf;
  *out_len = len;
  buf = NULL;
  st = ALN_OK;
out:
  aln_cbb_buf_free(buf, len);
  return st;
}

aln_status aln_channel_send_request(SSL *ssl, const Aileron__V1__Request *req) {
  return write_frame(ssl, &req->base);
}

aln_status aln_channel_send_response(SSL *ssl, const Aileron__V1__Response *resp) {
  return write_frame(ssl, &resp->base);
}

aln_status aln_channel_recv_request(SSL *ssl, Aileron__V1__Request **out) {
  uint8_t *buf = NULL;
  size_t len = 0;
  ALN_GUARD(read_frame(ssl, &buf, &len));
  Aileron__V1__Request *req = aileron__v1__request__unpack(NULL, len, buf);
  aln_cbb_buf_free(buf, len);
  ALN_ENSURE(req != NULL, ALN_ERR_MALFORMED);
  if (req->version != AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1) {
    aln_channel_request_free(req);
    return ALN_ERR_VERSION;
  }
  if (req->body_case == AILERON__V1__REQUEST__BODY__NOT_SET) {
    aln_channel_request_free(req);
    return ALN_ERR_MALFORMED;
  }
  *out = req;
  return ALN_OK;
}

aln_status aln_channel_recv_response(SSL *ssl, Aileron__V1__Response **out) {
  uint8_t *buf = NULL;
  size_t len = 0;
  ALN_GUARD(read_frame(ssl, &buf, &len));
  Aileron__V1__Response *resp = aileron__v1__response__unpack(NULL, len, buf);
  aln_cbb_buf_free(buf, len);
  ALN_ENSURE(resp != NULL, ALN_ERR_MALFORMED);
  if (!aln_status_is_known(resp->status) ||
      (resp->status == ALN_OK && resp->body_case == AILERON__V1__RESPONSE__BODY__NOT_SET)) {
    aln_channel_response_free(resp);
    return ALN_ERR_MALFORMED;
  }
  *out = resp;
  return ALN_OK;
}

void aln_channel_request_free(Aileron__V1__Request *req) {
  if (req == NULL)
    return;
  if (req->body_case == AILERON__V1__REQUEST__BODY_PUT_CREDENTIAL && req->put_credential != NULL &&
      req->put_credential->secret.data != NULL)
    OPENSSL_cleanse(req->put_credential->secret.data, req->put_credential->secret.len);
  aileron__v1__request__free_unpacked(req, NULL);
}

static void wipe_bytes(const ProtobufCBinaryData *b) {
  if (b->data != NULL)
    OPENSSL_cleanse(b->data, b->len);
}

void aln_channel_response_free(Aileron__V1__Response *resp) {
  if (resp == NULL)
    return;
  if (resp->body_case == AILERON__V1__RESPONSE__BODY_USE_CREDENTIAL && resp->use_credential != NULL) {
    const Aileron__V1__UseCredentialResponse *u = resp->use_credential;
    wipe_bytes(&u->body);
    for (size_t i = 0; i < u->n_headers; i++)
      if (u->headers[i] != NULL && u->headers[i]->value != NULL)
        OPENSSL_cleanse(u->headers[i]->value, strlen(u->headers[i]->value));
  } else if (resp->body_case == AILERON__V1__RESPONSE__BODY_TPM_ACTIVATE && resp->tpm_activate != NULL) {
    wipe_bytes(&resp->tpm_activate->credential);
  }
  aileron__v1__response__free_unpacked(resp, NULL);
}
