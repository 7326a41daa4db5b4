/* The host's attested connection to the enclave (see enclave_client.h). Nothing but
 * Attest (and Health) is ever sent on a connection whose evidence has not been
 * verified against the binding this side computes. */
#include "host/enclave_client.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attestation/binding.h"
#include "attestation/local.h"
#include "proto/channel.h"
#include "proto/net.h"
#include "proto/tls.h"

#define CONNECT_TIMEOUT_MS 5000
#define IO_TIMEOUT_S 90

/* One attested connection of the pool; its mutex is held for a whole exchange. */
struct conn {
  pthread_mutex_t mu;
  SSL *ssl; /* non-NULL only while attested */
  int fd;
};

struct aln_enclave_client {
  char *address;
  int dev_mode;
  SSL_CTX *ctx;
  atomic_uint next; /* where a caller waits when every connection is busy */
  struct conn pool[ALN_ENCLAVE_POOL_MAX];
};

static void disconnect(struct conn *k) {
  if (k->ssl != NULL) {
    SSL_shutdown(k->ssl);
    SSL_free(k->ssl);
    k->ssl = NULL;
  }
  if (k->fd >= 0) {
    close(k->fd);
    k->fd = -1;
  }
  ERR_clear_error();
}

/* verify_evidence appraises the enclave's answer to our Attest on |ssl|. Only the
 * local kind exists so far, and it is debug evidence: accepted in dev mode only. */
static aln_status verify_evidence(struct aln_enclave_client *c, SSL *ssl, const uint8_t nonce[ALN_HOST_NONCE_LEN],
                                  const Aileron__V1__AttestResponse *ar) {
  ALN_ENSURE(ar != NULL && ar->evidence_kind != NULL, ALN_ERR_MALFORMED);
  ALN_ENSURE(strcmp(ar->evidence_kind, "local") == 0, ALN_ERR_ATTEST_KIND);
  ALN_ENSURE(c->dev_mode, ALN_ERR_ATTEST_DEBUG);
  uint8_t exporter[ALN_EXPORTER_LEN], binding[ALN_BINDING_LEN];
  ALN_GUARD(aln_tls_exporter(exporter, ssl));
  ALN_GUARD(aln_binding_compute(binding, nonce, ALN_HOST_NONCE_LEN, exporter, ar->signing_public_key.data,
                                ar->signing_public_key.len));
  struct aln_local_claims claims;
  ALN_GUARD(aln_local_evidence_verify(&claims, ar->evidence.data, ar->evidence.len, ar->signing_public_key.data,
                                      ar->signing_public_key.len, binding));
  ALN_ENSURE(!claims.debug || c->dev_mode, ALN_ERR_ATTEST_DEBUG);
  return ALN_OK;
}

static aln_status connect_and_attest(struct aln_enclave_client *c, struct conn *k) {
  aln_status st = ALN_ERR_INTERNAL;
  SSL *ssl = NULL;
  int fd = -1;
  Aileron__V1__Response *resp = NULL;
  uint8_t nonce[ALN_HOST_NONCE_LEN];

  ALN_GUARD(aln_net_connect(&fd, c->address, CONNECT_TIMEOUT_MS, IO_TIMEOUT_S));
  ssl = SSL_new(c->ctx);
  ALN_ENSURE_GOTO(st, ssl != NULL, ALN_ERR_NOMEM, out);
  ALN_ENSURE_GOTO(st, SSL_set_fd(ssl, fd) == 1, ALN_ERR_TLS, out);
  ALN_ENSURE_GOTO(st, SSL_connect(ssl) == 1, ALN_ERR_TLS, out);
  ALN_ENSURE_GOTO(st, RAND_bytes(nonce, sizeof(nonce)) == 1, ALN_ERR_CRYPTO, out);

  Aileron__V1__AttestRequest ar = AILERON__V1__ATTEST_REQUEST__INIT;
  ar.host_nonce.data = nonce;
  ar.host_nonce.len = sizeof(nonce);
  Aileron__V1__Request req = AILERON__V1__REQUEST__INIT;
  req.version = AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
  req.body_case = AILERON__V1__REQUEST__BODY_ATTEST;
  req.attest = &ar;
  ALN_GUARD_GOTO(st, aln_channel_send_request(ssl, &req), out);
  ALN_GUARD_GOTO(st, aln_channel_recv_response(ssl, &resp), out);
  if (resp->status != ALN_OK) {
    st = (aln_status)resp->status;
    goto out;
  }
  ALN_ENSURE_GOTO(st, resp->body_case == AILERON__V1__RESPONSE__BODY_ATTEST, ALN_ERR_MALFORMED, out);
  ALN_GUARD_GOTO(st, verify_evidence(c, ssl, nonce, resp->attest), out);

  k->ssl = ssl;
  k->fd = fd;
  ssl = NULL;
  fd = -1;
  st = ALN_OK;
out:
  if (resp != NULL)
    aileron__v1__response__free_unpacked(resp, NULL);
  SSL_free(ssl);
  if (fd >= 0)
    close(fd);
  ERR_clear_error();
  return st;
}

static aln_status load_identity(SSL_CTX **ctx, const char *key_path, const char *cert_path) {
  aln_status st = ALN_ERR_IO;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  FILE *f = fopen(key_path, "r");
  if (f != NULL) {
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
  }
  f = fopen(cert_path, "r");
  if (f != NULL) {
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
  }
  ALN_ENSURE_GOTO(st, key != NULL && cert != NULL, ALN_ERR_IO, out);
  st = aln_tls_client_ctx_new(ctx, key, cert);
out:
  EVP_PKEY_free(key);
  X509_free(cert);
  ERR_clear_error();
  return st;
}

aln_status aln_enclave_client_new(struct aln_enclave_client **out, const struct aln_enclave_client_config *cfg) {
  ALN_ENSURE(cfg != NULL && cfg->address != NULL && cfg->key_path != NULL && cfg->cert_path != NULL, ALN_ERR_USAGE);
  char host[256];
  int port;
  ALN_GUARD(aln_net_parse_hostport(host, sizeof(host), &port, cfg->address, 0));
  struct aln_enclave_client *c = calloc(1, sizeof(*c));
  ALN_ENSURE(c != NULL, ALN_ERR_NOMEM);
  c->dev_mode = cfg->dev_mode;
  for (size_t i = 0; i < ALN_ENCLAVE_POOL_MAX; i++) {
    c->pool[i].fd = -1;
    pthread_mutex_init(&c->pool[i].mu, NULL);
  }
  c->address = strdup(cfg->address);
  aln_status st = c->address != NULL ? load_identity(&c->ctx, cfg->key_path, cfg->cert_path) : ALN_ERR_NOMEM;
  if (st != ALN_OK) {
    aln_enclave_client_free(c);
    return st;
  }
  *out = c;
  return ALN_OK;
}

void aln_enclave_client_free(struct aln_enclave_client *c) {
  if (c == NULL)
    return;
  for (size_t i = 0; i < ALN_ENCLAVE_POOL_MAX; i++) {
    disconnect(&c->pool[i]);
    pthread_mutex_destroy(&c->pool[i].mu);
  }
  SSL_CTX_free(c->ctx);
  free(c->address);
  free(c);
}

/* exchange sends |req| on |k| and reads the answer. */
static aln_status exchange(struct conn *k, Aileron__V1__Response **out, Aileron__V1__Request *req) {
  ALN_GUARD(aln_channel_send_request(k->ssl, req));
  return aln_channel_recv_response(k->ssl, out);
}

/* idle_conn_dead says whether a pooled connection was closed by the enclave while
 * idle (idle timeout, restart). The protocol is lockstep, so anything readable on an
 * idle connection is its end: close_notify, EOF or a reset. */
static int idle_conn_dead(const struct conn *k) {
  struct pollfd pfd = {.fd = k->fd, .events = POLLIN};
  return poll(&pfd, 1, 0) != 0;
}

/* acquire locks a free connection of the pool, preferring the first ones so a
 * quiet host keeps few connections open; when all are busy it waits on one. */
static struct conn *acquire(struct aln_enclave_client *c) {
  for (size_t i = 0; i < ALN_ENCLAVE_POOL_MAX; i++)
    if (pthread_mutex_trylock(&c->pool[i].mu) == 0)
      return &c->pool[i];
  struct conn *k = &c->pool[atomic_fetch_add(&c->next, 1) % ALN_ENCLAVE_POOL_MAX];
  pthread_mutex_lock(&k->mu);
  return k;
}

aln_status aln_enclave_client_call(struct aln_enclave_client *c, Aileron__V1__Response **out,
                                   Aileron__V1__Request *req) {
  *out = NULL;
  req->version = AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
  struct conn *k = acquire(c);
  if (k->ssl != NULL && idle_conn_dead(k))
    disconnect(k);
  aln_status st = ALN_OK;
  if (k->ssl == NULL)
    st = connect_and_attest(c, k);
  if (st == ALN_OK)
    st = exchange(k, out, req);
  if (st != ALN_OK)
    disconnect(k);
  else if ((*out)->status != ALN_OK) {
    st = (aln_status)(*out)->status;
    /* After a protocol or state refusal the enclave closes the connection; an
     * ordinary refusal (not found, destination not allowed) keeps it open. */
    if (aln_status_category(st) == ALN_CAT_PROTO || st == ALN_ERR_NOT_ENROLLED || st == ALN_ERR_NOT_ATTESTED)
      disconnect(k);
  }
  pthread_mutex_unlock(&k->mu);
  return st;
}
