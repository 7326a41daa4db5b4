/* Tests for proto/channel over a real TLS 1.3 connection built with proto/tls.h on a
 * socketpair. Every Request and Response body kind survives the round trip field
 * for field, several in lockstep on one connection, and a payload of exactly the
 * 1 MiB cap. Then the peer misbehaves by writing raw bytes with SSL_write: a length
 * past the cap (refused from the header alone, no payload is ever sent), zero
 * length, bytes protobuf will not parse, a wrong or missing version, no body,
 * unknown status codes, a second frame or stray bytes in the same record, and
 * every way of hanging up before, inside the header and inside the payload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "proto/channel.h"
#include "proto/frame.h"
#include "proto/tls.h"

/* ---- a TLS 1.3 pair: "enclave" is the server end, "host" the client end ---- */

struct ctxs {
  SSL_CTX *sctx, *cctx;
};

struct chan {
  SSL *enclave, *host;
  int fds[2]; /* [0] enclave, [1] host */
};

static int setup_ctxs(void **state) {
  struct ctxs *x = calloc(1, sizeof(*x));
  EVP_PKEY *skey = NULL, *ckey = NULL;
  X509 *scert = NULL, *ccert = NULL;
  int rc = -1;
  if (x == NULL || aln_tls_identity_generate(&skey, &scert, "enclave", 1) != ALN_OK ||
      aln_tls_identity_generate(&ckey, &ccert, "host", 1) != ALN_OK ||
      aln_tls_server_ctx_new(&x->sctx, skey, scert) != ALN_OK ||
      aln_tls_client_ctx_new(&x->cctx, ckey, ccert) != ALN_OK)
    goto out;
  /* a peer that hangs up makes writes fail with EPIPE, as in the real programs */
  signal(SIGPIPE, SIG_IGN);
  *state = x;
  x = NULL;
  rc = 0;
out:
  EVP_PKEY_free(skey);
  EVP_PKEY_free(ckey);
  X509_free(scert);
  X509_free(ccert);
  free(x);
  return rc;
}

static int teardown_ctxs(void **state) {
  struct ctxs *x = *state;
  SSL_CTX_free(x->sctx);
  SSL_CTX_free(x->cctx);
  free(x);
  return 0;
}

static void *accept_main(void *arg) {
  SSL *ssl = arg;
  return (void *)(intptr_t)(SSL_accept(ssl) == 1);
}

static void chan_open(struct chan *c, const struct ctxs *x) {
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fds), 0);
  /* A read the code should never have started (e.g. of a payload past the cap)
   * fails the test after 3 s instead of hanging it. */
  struct timeval tv = {.tv_sec = 3};
  for (int i = 0; i < 2; i++)
    assert_int_equal(setsockopt(c->fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  c->enclave = SSL_new(x->sctx);
  c->host = SSL_new(x->cctx);
  assert_non_null(c->enclave);
  assert_non_null(c->host);
  assert_int_equal(SSL_set_fd(c->enclave, c->fds[0]), 1);
  assert_int_equal(SSL_set_fd(c->host, c->fds[1]), 1);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, accept_main, c->enclave), 0);
  int client_ok = SSL_connect(c->host) == 1;
  void *server_ok = NULL;
  assert_int_equal(pthread_join(th, &server_ok), 0);
  assert_true(client_ok);
  assert_true(server_ok != NULL);
  assert_int_equal(SSL_version(c->host), TLS1_3_VERSION);
}

static void chan_close(struct chan *c) {
  SSL_free(c->enclave);
  SSL_free(c->host);
  close(c->fds[0]);
  close(c->fds[1]);
  ERR_clear_error();
}

/* ---- message fixtures: every body kind, every field set ---- */

static uint8_t nonce[32], ev[300], sign_pub[32], secret[] = "s3cr3t-t0ken", ca[] = "-----BEGIN CERTIFICATE-----\n";
static char *prefixes[] = {"https://api.example.com/v1/", "https://upload.example.com/"};
static Aileron__V1__Binding binding = AILERON__V1__BINDING__INIT;
static Aileron__V1__Header hdr1 = AILERON__V1__HEADER__INIT, hdr2 = AILERON__V1__HEADER__INIT;
static Aileron__V1__Header *hdrs[] = {&hdr1, &hdr2};
static Aileron__V1__CredentialInfo info1 = AILERON__V1__CREDENTIAL_INFO__INIT,
                                   info2 = AILERON__V1__CREDENTIAL_INFO__INIT;
static Aileron__V1__CredentialInfo *infos[] = {&info1, &info2};

static void fixtures_init(void) {
  for (size_t i = 0; i < sizeof(nonce); i++)
    nonce[i] = (uint8_t)(i * 7 + 1);
  for (size_t i = 0; i < sizeof(ev); i++)
    ev[i] = (uint8_t)(i ^ 0x5a);
  memset(sign_pub, 0xed, sizeof(sign_pub));
  binding.injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER;
  binding.header_name = "X-Api-Key";
  binding.n_allowed_prefixes = 2;
  binding.allowed_prefixes = prefixes;
  binding.ca_pem.data = ca;
  binding.ca_pem.len = sizeof(ca) - 1;
  hdr1.name = "Content-Type";
  hdr1.value = "application/json";
  hdr2.name = "X-Trace";
  hdr2.value = "abc";
  info1.name = "github";
  info1.version = 3;
  info1.binding = &binding;
  info1.has_ca = 1;
  info1.created_at = 1700000000;
  info1.expires_at = 1800000000;
  info2.name = "stripe";
  info2.version = 1;
  info2.revoked = 1;
  info2.created_at = -1; /* negative int64 is carried, not clamped */
}

/* bodies holds one instance of each body message, wired to the fixtures. */
struct bodies {
  Aileron__V1__HealthRequest health_req;
  Aileron__V1__AttestRequest attest_req;
  Aileron__V1__PutCredentialRequest put_req;
  Aileron__V1__ListCredentialsRequest list_req;
  Aileron__V1__RevokeCredentialRequest revoke_req;
  Aileron__V1__UseCredentialRequest use_req;
  Aileron__V1__HealthResponse health_resp;
  Aileron__V1__AttestResponse attest_resp;
  Aileron__V1__PutCredentialResponse put_resp;
  Aileron__V1__ListCredentialsResponse list_resp;
  Aileron__V1__RevokeCredentialResponse revoke_resp;
  Aileron__V1__UseCredentialResponse use_resp;
};

static void bodies_init(struct bodies *b) {
  fixtures_init();
  *b = (struct bodies){
      .health_req = AILERON__V1__HEALTH_REQUEST__INIT,
      .attest_req = AILERON__V1__ATTEST_REQUEST__INIT,
      .put_req = AILERON__V1__PUT_CREDENTIAL_REQUEST__INIT,
      .list_req = AILERON__V1__LIST_CREDENTIALS_REQUEST__INIT,
      .revoke_req = AILERON__V1__REVOKE_CREDENTIAL_REQUEST__INIT,
      .use_req = AILERON__V1__USE_CREDENTIAL_REQUEST__INIT,
      .health_resp = AILERON__V1__HEALTH_RESPONSE__INIT,
      .attest_resp = AILERON__V1__ATTEST_RESPONSE__INIT,
      .put_resp = AILERON__V1__PUT_CREDENTIAL_RESPONSE__INIT,
      .list_resp = AILERON__V1__LIST_CREDENTIALS_RESPONSE__INIT,
      .revoke_resp = AILERON__V1__REVOKE_CREDENTIAL_RESPONSE__INIT,
      .use_resp = AILERON__V1__USE_CREDENTIAL_RESPONSE__INIT,
  };
  b->attest_req.host_nonce.data = nonce;
  b->attest_req.host_nonce.len = sizeof(nonce);
  b->put_req.name = "github";
  b->put_req.secret.data = secret;
  b->put_req.secret.len = sizeof(secret) - 1;
  b->put_req.binding = &binding;
  b->put_req.expires_at = 1800000000;
  b->put_req.replace = 1;
  b->revoke_req.name = "github";
  b->use_req.name = "github";
  b->use_req.method = "POST";
  b->use_req.url = "https://api.example.com/v1/repos";
  b->use_req.n_headers = 2;
  b->use_req.headers = hdrs;
  b->use_req.body.data = ev;
  b->use_req.body.len = sizeof(ev);
  b->use_req.actor = "session-42";
  b->health_resp.version = "0.1.0";
  b->health_resp.tee_provider = "local";
  b->health_resp.attested = 1;
  b->health_resp.enrolled = 1;
  b->attest_resp.evidence_kind = "local";
  b->attest_resp.evidence.data = ev;
  b->attest_resp.evidence.len = sizeof(ev);
  b->attest_resp.signing_public_key.data = sign_pub;
  b->attest_resp.signing_public_key.len = sizeof(sign_pub);
  b->put_resp.credential = &info1;
  b->list_resp.n_credentials = 2;
  b->list_resp.credentials = infos;
  b->revoke_resp.credential = &info2;
  b->use_resp.http_status = 201;
  b->use_resp.n_headers = 2;
  b->use_resp.headers = hdrs;
  b->use_resp.body.data = ev;
  b->use_resp.body.len = sizeof(ev);
}

static void request_with(Aileron__V1__Request *req, struct bodies *b, Aileron__V1__Request__BodyCase kind) {
  *req = (Aileron__V1__Request)AILERON__V1__REQUEST__INIT;
  req->version = AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
  req->body_case = kind;
  switch (kind) {
  case AILERON__V1__REQUEST__BODY_HEALTH:
    req->health = &b->health_req;
    break;
  case AILERON__V1__REQUEST__BODY_ATTEST:
    req->attest = &b->attest_req;
    break;
  case AILERON__V1__REQUEST__BODY_PUT_CREDENTIAL:
    req->put_credential = &b->put_req;
    break;
  case AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS:
    req->list_credentials = &b->list_req;
    break;
  case AILERON__V1__REQUEST__BODY_REVOKE_CREDENTIAL:
    req->revoke_credential = &b->revoke_req;
    break;
  case AILERON__V1__REQUEST__BODY_USE_CREDENTIAL:
    req->use_credential = &b->use_req;
    break;
  default:
    fail_msg("no fixture for request body %d", (int)kind);
  }
}

static void response_with(Aileron__V1__Response *resp, struct bodies *b, Aileron__V1__Response__BodyCase kind) {
  *resp = (Aileron__V1__Response)AILERON__V1__RESPONSE__INIT;
  resp->message = "ok";
  resp->body_case = kind;
  switch (kind) {
  case AILERON__V1__RESPONSE__BODY_HEALTH:
    resp->health = &b->health_resp;
    break;
  case AILERON__V1__RESPONSE__BODY_ATTEST:
    resp->attest = &b->attest_resp;
    break;
  case AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL:
    resp->put_credential = &b->put_resp;
    break;
  case AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS:
    resp->list_credentials = &b->list_resp;
    break;
  case AILERON__V1__RESPONSE__BODY_REVOKE_CREDENTIAL:
    resp->revoke_credential = &b->revoke_resp;
    break;
  case AILERON__V1__RESPONSE__BODY_USE_CREDENTIAL:
    resp->use_credential = &b->use_resp;
    break;
  default:
    fail_msg("no fixture for response body %d", (int)kind);
  }
}

/* assert_same_message compares two messages through their canonical encoding:
 * protobuf-c packs fields in number order, so equal bytes mean equal fields. */
static void assert_same_message(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  size_t la = protobuf_c_message_get_packed_size(a), lb = protobuf_c_message_get_packed_size(b);
  assert_int_equal(la, lb);
  uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);
  assert_non_null(pa);
  assert_non_null(pb);
  assert_int_equal(protobuf_c_message_pack(a, pa), la);
  assert_int_equal(protobuf_c_message_pack(b, pb), lb);
  assert_memory_equal(pa, pb, la);
  free(pa);
  free(pb);
}

static const Aileron__V1__Request__BodyCase req_kinds[] = {
    AILERON__V1__REQUEST__BODY_HEALTH,
    AILERON__V1__REQUEST__BODY_ATTEST,
    AILERON__V1__REQUEST__BODY_PUT_CREDENTIAL,
    AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS,
    AILERON__V1__REQUEST__BODY_REVOKE_CREDENTIAL,
    AILERON__V1__REQUEST__BODY_USE_CREDENTIAL,
};
static const Aileron__V1__Response__BodyCase resp_kinds[] = {
    AILERON__V1__RESPONSE__BODY_HEALTH,
    AILERON__V1__RESPONSE__BODY_ATTEST,
    AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL,
    AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS,
    AILERON__V1__RESPONSE__BODY_REVOKE_CREDENTIAL,
    AILERON__V1__RESPONSE__BODY_USE_CREDENTIAL,
};

/* All kinds in lockstep on one connection: request, response, request, ... */
static void test_round_trip_every_kind(void **state) {
  struct ctxs *x = *state;
  struct bodies b;
  bodies_init(&b);
  struct chan c;
  chan_open(&c, x);
  for (size_t i = 0; i < sizeof(req_kinds) / sizeof(req_kinds[0]); i++) {
    Aileron__V1__Request req;
    request_with(&req, &b, req_kinds[i]);
    assert_int_equal(aln_channel_send_request(c.host, &req), ALN_OK);
    Aileron__V1__Request *got = NULL;
    assert_int_equal(aln_channel_recv_request(c.enclave, &got), ALN_OK);
    assert_non_null(got);
    assert_int_equal(got->version, AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1);
    assert_int_equal(got->body_case, req_kinds[i]);
    assert_same_message(&got->base, &req.base);
    if (req_kinds[i] == AILERON__V1__REQUEST__BODY_PUT_CREDENTIAL) {
      assert_int_equal(got->put_credential->secret.len, sizeof(secret) - 1);
      assert_memory_equal(got->put_credential->secret.data, secret, sizeof(secret) - 1);
      assert_int_equal(got->put_credential->binding->n_allowed_prefixes, 2);
      assert_string_equal(got->put_credential->binding->allowed_prefixes[1], prefixes[1]);
    }
    if (req_kinds[i] == AILERON__V1__REQUEST__BODY_USE_CREDENTIAL) {
      assert_int_equal(got->use_credential->n_headers, 2);
      assert_string_equal(got->use_credential->headers[0]->value, "application/json");
      assert_memory_equal(got->use_credential->body.data, ev, sizeof(ev));
    }
    aln_channel_request_free(got);

    Aileron__V1__Response resp;
    response_with(&resp, &b, resp_kinds[i]);
    assert_int_equal(aln_channel_send_response(c.enclave, &resp), ALN_OK);
    Aileron__V1__Response *rgot = NULL;
    assert_int_equal(aln_channel_recv_response(c.host, &rgot), ALN_OK);
    assert_non_null(rgot);
    assert_int_equal(rgot->status, ALN_OK);
    assert_int_equal(rgot->body_case, resp_kinds[i]);
    assert_same_message(&rgot->base, &resp.base);
    if (resp_kinds[i] == AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS) {
      assert_int_equal(rgot->list_credentials->n_credentials, 2);
      assert_int_equal(rgot->list_credentials->credentials[1]->created_at, -1);
    }
    aln_channel_response_free(rgot);
  }

  /* an error status needs no body */
  Aileron__V1__Response err = AILERON__V1__RESPONSE__INIT;
  err.status = ALN_ERR_NOT_FOUND;
  err.message = (char *)aln_strerror(ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_channel_send_response(c.enclave, &err), ALN_OK);
  Aileron__V1__Response *rgot = NULL;
  assert_int_equal(aln_channel_recv_response(c.host, &rgot), ALN_OK);
  assert_int_equal(rgot->status, ALN_ERR_NOT_FOUND);
  assert_int_equal(rgot->body_case, AILERON__V1__RESPONSE__BODY__NOT_SET);
  assert_string_equal(rgot->message, "not found");
  aln_channel_response_free(rgot);
  chan_close(&c);
}

/* ---- the 1 MiB cap on the sending side ---- */

struct sender {
  SSL *ssl;
  const Aileron__V1__Request *req;
  aln_status st;
};

static void *send_main(void *arg) {
  struct sender *s = arg;
  s->st = aln_channel_send_request(s->ssl, s->req);
  return NULL;
}

/* use_request_of_size makes a UseCredential request whose packed size is exactly
 * |size|, by sizing its body; the body is |buf| (at least |size| bytes). */
static void use_request_of_size(Aileron__V1__Request *req, Aileron__V1__UseCredentialRequest *use, uint8_t *buf,
                                size_t size) {
  *use = (Aileron__V1__UseCredentialRequest)AILERON__V1__USE_CREDENTIAL_REQUEST__INIT;
  use->name = "big";
  use->body.data = buf;
  *req = (Aileron__V1__Request)AILERON__V1__REQUEST__INIT;
  req->version = AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
  req->body_case = AILERON__V1__REQUEST__BODY_USE_CREDENTIAL;
  req->use_credential = use;
  use->body.len = size - 64;
  /* the overhead is a few tag and varint-length bytes that change only at varint
   * boundaries, so this settles within a couple of steps */
  for (int i = 0; i < 8; i++) {
    size_t packed = protobuf_c_message_get_packed_size(&req->base);
    if (packed == size)
      return;
    use->body.len = use->body.len + size - packed;
  }
  fail_msg("cannot size a request to %zu bytes", size);
}

static void test_send_cap(void **state) {
  struct ctxs *x = *state;
  uint8_t *buf = malloc(ALN_FRAME_MAX_DEFAULT + 1);
  assert_non_null(buf);
  for (size_t i = 0; i <= ALN_FRAME_MAX_DEFAULT; i++)
    buf[i] = (uint8_t)(i * 31 + (i >> 8));
  Aileron__V1__Request req;
  Aileron__V1__UseCredentialRequest use;
  struct chan c;
  chan_open(&c, x);

  /* one byte past the cap is refused and nothing reaches the wire: the next frame
   * the peer reads is the small one that follows, not a torn header */
  use_request_of_size(&req, &use, buf, ALN_FRAME_MAX_DEFAULT + 1);
  assert_int_equal(aln_channel_send_request(c.host, &req), ALN_ERR_TOO_LARGE);
  struct bodies b;
  bodies_init(&b);
  Aileron__V1__Request small;
  request_with(&small, &b, AILERON__V1__REQUEST__BODY_HEALTH);
  assert_int_equal(aln_channel_send_request(c.host, &small), ALN_OK);
  Aileron__V1__Request *got = NULL;
  assert_int_equal(aln_channel_recv_request(c.enclave, &got), ALN_OK);
  assert_int_equal(got->body_case, AILERON__V1__REQUEST__BODY_HEALTH);
  aln_channel_request_free(got);

  /* exactly the cap goes through, intact (written from a thread: 1 MiB is more than
   * the socket buffers) */
  use_request_of_size(&req, &use, buf, ALN_FRAME_MAX_DEFAULT);
  struct sender s = {c.host, &req, ALN_ERR_INTERNAL};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, send_main, &s), 0);
  got = NULL;
  aln_status st = aln_channel_recv_request(c.enclave, &got);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(s.st, ALN_OK);
  assert_int_equal(st, ALN_OK);
  assert_int_equal(got->use_credential->body.len, use.body.len);
  assert_memory_equal(got->use_credential->body.data, buf, use.body.len);
  aln_channel_request_free(got);

  /* the response side has the same cap */
  Aileron__V1__UseCredentialResponse ur = AILERON__V1__USE_CREDENTIAL_RESPONSE__INIT;
  ur.body.data = buf;
  ur.body.len = ALN_FRAME_MAX_DEFAULT;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_USE_CREDENTIAL;
  resp.use_credential = &ur;
  assert_int_equal(aln_channel_send_response(c.enclave, &resp), ALN_ERR_TOO_LARGE);

  /* A message that packs to zero bytes (no version, no body) cannot be framed: the
   * codec has no empty frame. It is reported as ALN_ERR_TOO_LARGE. */
  Aileron__V1__Request empty = AILERON__V1__REQUEST__INIT;
  assert_int_equal(aln_channel_send_request(c.host, &empty), ALN_ERR_TOO_LARGE);

  chan_close(&c);
  free(buf);
}

/* Sending to a peer that has gone away is a transport failure, not a crash (the
 * programs ignore SIGPIPE, as setup_ctxs does here). */
static void test_send_after_peer_gone(void **state) {
  struct ctxs *x = *state;
  struct bodies b;
  bodies_init(&b);
  struct chan c;
  chan_open(&c, x);
  SSL_free(c.enclave);
  c.enclave = NULL;
  close(c.fds[0]);
  c.fds[0] = -1;
  Aileron__V1__Request req;
  request_with(&req, &b, AILERON__V1__REQUEST__BODY_HEALTH);
  aln_status st = aln_channel_send_request(c.host, &req);
  /* EPIPE is SSL_ERROR_SYSCALL, which the channel reports as a closed connection */
  assert_int_equal(st, ALN_ERR_CLOSED);
  chan_close(&c);
}

/* ---- the peer writes raw bytes ---- */

enum after { KEEP_OPEN, CLOSE_NOTIFY, HANG_UP };

struct raw_case {
  const char *what;
  uint8_t bytes[24];
  size_t len;
  enum after after;
  aln_status want;
};

/* raw_then_recv has the peer write |rc->bytes| in a single SSL_write (one TLS
 * record), then close as |rc->after| says: with a close_notify, or by shutting the
 * socket without one. Then the other end receives a Request (to_enclave) or a
 * Response, and the status is returned. */
static aln_status raw_then_recv(const struct ctxs *x, const struct raw_case *rc, int to_enclave) {
  struct chan c;
  chan_open(&c, x);
  SSL *writer = to_enclave ? c.host : c.enclave, *reader = to_enclave ? c.enclave : c.host;
  if (rc->len > 0) {
    size_t written = 0;
    assert_int_equal(SSL_write_ex(writer, rc->bytes, rc->len, &written), 1);
    assert_int_equal(written, rc->len);
  }
  if (rc->after == CLOSE_NOTIFY)
    assert_true(SSL_shutdown(writer) >= 0);
  else if (rc->after == HANG_UP)
    assert_int_equal(shutdown(to_enclave ? c.fds[1] : c.fds[0], SHUT_WR), 0);
  aln_status st;
  if (to_enclave) {
    Aileron__V1__Request *req = NULL;
    st = aln_channel_recv_request(reader, &req);
    assert_true((st == ALN_OK) == (req != NULL));
    aln_channel_request_free(req);
  } else {
    Aileron__V1__Response *resp = NULL;
    st = aln_channel_recv_response(reader, &resp);
    assert_true((st == ALN_OK) == (resp != NULL));
    if (resp != NULL)
      aln_channel_response_free(resp);
  }
  chan_close(&c);
  return st;
}

static void run_raw_cases(const struct ctxs *x, const struct raw_case *cases, size_t n, int to_enclave) {
  for (size_t i = 0; i < n; i++) {
    aln_status st = raw_then_recv(x, &cases[i], to_enclave);
    if (st != cases[i].want)
      fail_msg("%s: got %s want %s", cases[i].what, aln_status_name(st), aln_status_name(cases[i].want));
  }
}

/* {0,0,0,4, 08 01 52 00} is a valid frame: version 1, an empty Health body. */
#define HEALTH_V1 0x08, 0x01, 0x52, 0x00

static const struct raw_case request_cases[] = {
    {"valid Health (control)", {0, 0, 0, 4, HEALTH_V1}, 8, KEEP_OPEN, ALN_OK},
    {"valid Health, then close_notify", {0, 0, 0, 4, HEALTH_V1}, 8, CLOSE_NOTIFY, ALN_OK},
    /* size cap, decided on the header: no payload byte is ever sent, so a reader
     * that waited for one would time out instead */
    {"length cap+1, no payload", {0x00, 0x10, 0x00, 0x01}, 4, KEEP_OPEN, ALN_ERR_FRAME_TOO_LARGE},
    {"length 2^32-1, no payload", {0xff, 0xff, 0xff, 0xff}, 4, KEEP_OPEN, ALN_ERR_FRAME_TOO_LARGE},
    {"length 0", {0, 0, 0, 0}, 4, KEEP_OPEN, ALN_ERR_MALFORMED},
    /* payloads protobuf will not parse */
    {"invalid wire type", {0, 0, 0, 1, 0x0f}, 5, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"truncated varint", {0, 0, 0, 2, 0x08, 0x80}, 6, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"sub-message longer than payload", {0, 0, 0, 4, 0x08, 0x01, 0x52, 0x05}, 8, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"body field as varint", {0, 0, 0, 4, 0x08, 0x01, 0x50, 0x01}, 8, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"garbage", {0, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff}, 10, KEEP_OPEN, ALN_ERR_MALFORMED},
    /* version */
    {"version absent (0)", {0, 0, 0, 2, 0x52, 0x00}, 6, KEEP_OPEN, ALN_ERR_VERSION},
    {"version 0 explicit", {0, 0, 0, 4, 0x08, 0x00, 0x52, 0x00}, 8, KEEP_OPEN, ALN_ERR_VERSION},
    {"version 2", {0, 0, 0, 4, 0x08, 0x02, 0x52, 0x00}, 8, KEEP_OPEN, ALN_ERR_VERSION},
    /* no body */
    {"version 1, no body", {0, 0, 0, 2, 0x08, 0x01}, 6, KEEP_OPEN, ALN_ERR_MALFORMED},
    /* lockstep: nothing may follow a frame in its record */
    {"one trailing byte", {0, 0, 0, 4, HEALTH_V1, 0x00}, 9, KEEP_OPEN, ALN_ERR_TRAILING},
    {"two frames in one write", {0, 0, 0, 4, HEALTH_V1, 0, 0, 0, 4, HEALTH_V1}, 16, KEEP_OPEN, ALN_ERR_TRAILING},
    /* hanging up */
    {"close_notify before any byte", {0}, 0, CLOSE_NOTIFY, ALN_ERR_CLOSED},
    {"close_notify after 2 header bytes", {0, 0}, 2, CLOSE_NOTIFY, ALN_ERR_TRUNCATED},
    {"hang-up after 3 header bytes", {0, 0, 0}, 3, HANG_UP, ALN_ERR_TRUNCATED},
    {"close_notify after the header", {0, 0, 0, 4}, 4, CLOSE_NOTIFY, ALN_ERR_TRUNCATED},
    {"close_notify mid-payload", {0, 0, 0, 4, 0x08, 0x01}, 6, CLOSE_NOTIFY, ALN_ERR_TRUNCATED},
    {"hang-up mid-payload", {0, 0, 0, 4, 0x08, 0x01, 0x52}, 7, HANG_UP, ALN_ERR_TRUNCATED},
    /* Without a close_notify, OpenSSL 3 reports the EOF as a protocol error
     * (SSL_R_UNEXPECTED_EOF_WHILE_READING), so an unclean hang-up is ALN_ERR_TLS:
     * only a clean close is ALN_ERR_CLOSED. */
    {"hang-up before any byte", {0}, 0, HANG_UP, ALN_ERR_TLS},
};

static void test_recv_request_raw(void **state) {
  run_raw_cases(*state, request_cases, sizeof(request_cases) / sizeof(request_cases[0]), 1);
}

static const struct raw_case response_cases[] = {
    {"status 0, Health body (control)", {0, 0, 0, 2, 0x52, 0x00}, 6, KEEP_OPEN, ALN_OK},
    {"ALN_ERR_NOT_FOUND, no body (control)", {0, 0, 0, 3, 0x08, 0x81, 0x08}, 7, KEEP_OPEN, ALN_OK},
    {"unknown status 0x0999", {0, 0, 0, 5, 0x08, 0x99, 0x13, 0x52, 0x00}, 9, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"unknown status 0x0100", {0, 0, 0, 5, 0x08, 0x80, 0x02, 0x52, 0x00}, 9, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"unknown status 0xffffffff",
     {0, 0, 0, 8, 0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x52, 0x00},
     12,
     KEEP_OPEN,
     ALN_ERR_MALFORMED},
    {"status 0, message only, no body", {0, 0, 0, 4, 0x12, 0x02, 'o', 'k'}, 8, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"garbage", {0, 0, 0, 3, 0xff, 0xff, 0xff}, 7, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"length cap+1, no payload", {0x00, 0x10, 0x00, 0x01}, 4, KEEP_OPEN, ALN_ERR_FRAME_TOO_LARGE},
    {"length 0", {0, 0, 0, 0}, 4, KEEP_OPEN, ALN_ERR_MALFORMED},
    {"one trailing byte", {0, 0, 0, 2, 0x52, 0x00, 0x00}, 7, KEEP_OPEN, ALN_ERR_TRAILING},
    {"close_notify mid-payload", {0, 0, 0, 2, 0x52}, 5, CLOSE_NOTIFY, ALN_ERR_TRUNCATED},
    {"close_notify before any byte", {0}, 0, CLOSE_NOTIFY, ALN_ERR_CLOSED},
};

static void test_recv_response_raw(void **state) {
  run_raw_cases(*state, response_cases, sizeof(response_cases) / sizeof(response_cases[0]), 0);
}

static void test_request_free_null(void **state) {
  (void)state;
  aln_channel_request_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_every_kind), cmocka_unit_test(test_send_cap),
      cmocka_unit_test(test_send_after_peer_gone),  cmocka_unit_test(test_recv_request_raw),
      cmocka_unit_test(test_recv_response_raw),     cmocka_unit_test(test_request_free_null),
  };
  return cmocka_run_group_tests(tests, setup_ctxs, teardown_ctxs);
}
