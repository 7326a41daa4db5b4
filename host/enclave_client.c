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
#include <time.h>
#include <tss2/tss2_mu.h>
#include <unistd.h>

#include "attestation/binding.h"
#include "attestation/tpm_cred.h"
#include "attestation/tpm_quote.h"
#include "proto/base64.h"
#include "proto/channel.h"
#include "proto/keyfile.h"
#include "proto/net.h"
#include "proto/tls.h"

#define CONNECT_TIMEOUT_MS 5000
#define IO_TIMEOUT_S 90

#define CLOCK_SKEW_S 300   /* tolerated between the enclave's platform clocks and ours */
#define AK_ENROLLED_MAX 16 /* TPM AKs enrolled by credential activation, kept for the daemon's life */

/* One attested connection of the pool; its mutex is held for a whole exchange. */
struct conn {
  pthread_mutex_t mu;
  SSL *ssl; /* non-NULL only while attested */
  int fd;
  int64_t appraised_at; /* CLOCK_MONOTONIC seconds of its last appraisal */
};

struct aln_enclave_client {
  char *address;
  const struct aln_policy *policy;
  int64_t reattest_s;
  SSL_CTX *ctx;
  atomic_uint next; /* where a caller waits when every connection is busy */
  struct conn pool[ALN_ENCLAVE_POOL_MAX];
  pthread_mutex_t status_mu; /* guards the two below */
  json_t *last_claims;       /* of the last appraisal that passed, for `aileron enclave status` */
  int64_t last_verified_at;  /* unix seconds */
  /* TPM AKs this client tied to a certified EK by credential activation (also under status_mu). */
  uint8_t ak_names[AK_ENROLLED_MAX][ALN_TPM_AK_NAME_LEN];
  size_t num_ak_names; /* filled slots; the table is a ring once full */
  size_t ak_next;      /* the slot the next enrollment takes */
};

/* What one Attest exchange produced, for callers that keep it. */
struct attest_record {
  json_t *claims;
  uint8_t nonce[ALN_BINDING_LEN]; /* the binding the evidence carries */
  Aileron__V1__Response *resp;    /* the AttestResponse, evidence included */
};

static int64_t mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec;
}

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

/* rpc sends |req| on |ssl| and receives an answer of body |want|; its status if
 * the enclave refused. */
static aln_status rpc(SSL *ssl, Aileron__V1__Response **out, Aileron__V1__Request *req,
                      Aileron__V1__Response__BodyCase want) {
  req->version = AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
  ALN_GUARD(aln_channel_send_request(ssl, req));
  ALN_GUARD(aln_channel_recv_response(ssl, out));
  if ((*out)->status != ALN_OK)
    return (aln_status)(*out)->status;
  return (*out)->body_case == want ? ALN_OK : ALN_ERR_MALFORMED;
}

static int ak_known_locked(const struct aln_enclave_client *c, const TPM2B_NAME *name) {
  int known = 0;
  for (size_t i = 0; i < c->num_ak_names && !known; i++)
    known = CRYPTO_memcmp(c->ak_names[i], name->name, ALN_TPM_AK_NAME_LEN) == 0;
  return known;
}

static int ak_known(struct aln_enclave_client *c, const TPM2B_NAME *name) {
  pthread_mutex_lock(&c->status_mu);
  int known = ak_known_locked(c, name);
  pthread_mutex_unlock(&c->status_mu);
  return known;
}

/* ak_remember enrolls |name| once, even if two connections activated it at once;
 * when the table is full the oldest enrollment gives way (its AK activates again on
 * its next connection) rather than the newest being refused. */
static void ak_remember(struct aln_enclave_client *c, const TPM2B_NAME *name) {
  pthread_mutex_lock(&c->status_mu);
  if (!ak_known_locked(c, name)) {
    memcpy(c->ak_names[c->ak_next], name->name, ALN_TPM_AK_NAME_LEN);
    c->ak_next = (c->ak_next + 1) % AK_ENROLLED_MAX;
    if (c->num_ak_names < AK_ENROLLED_MAX)
      c->num_ak_names++;
  }
  pthread_mutex_unlock(&c->status_mu);
}

/* tpm_activate ties the AK that signed the quote |ev| to the enclave's TPM by
 * credential activation (attestation/tpm_cred.h), when the policy enrolls AKs that
 * way and the AK is neither pinned nor enrolled already: the EK certificate must
 * chain to the policy's CA, the AK the enclave names must be the quote's, and the
 * enclave's TPM must give back the secret sealed to that EK and that AK's name.
 * Only then is the AK trusted, for this daemon's life. */
static aln_status tpm_activate(struct aln_enclave_client *c, SSL *ssl, const uint8_t *ev, size_t ev_len) {
  aln_status st = ALN_ERR_INTERNAL;
  const char *roots = aln_policy_tpm_ek_roots(c->policy);
  struct aln_tpm_quote *q = NULL;
  Aileron__V1__Response *resp = NULL;
  EVP_PKEY *ek = NULL;
  TPM2B_NAME name, named;
  TPM2B_PUBLIC ak = {0};
  TPM2B_ID_OBJECT blob;
  TPM2B_ENCRYPTED_SECRET seed;
  uint8_t secret[32], blob_buf[sizeof(blob)], seed_buf[sizeof(seed)];
  size_t blob_len = 0, seed_len = 0, off = 0;
  struct aln_refusal why = {0};

  if (roots == NULL)
    return ALN_OK; /* AKs are pinned in the policy, or refused */
  q = calloc(1, sizeof(*q));
  ALN_ENSURE(q != NULL, ALN_ERR_NOMEM);
  /* The quote is not trusted yet: only its AK's name is taken, to look it up. */
  if (aln_tpm_quote_decode(q, ev, ev_len) != ALN_OK || aln_tpm_name(&name, &q->ak) != ALN_OK ||
      name.size != ALN_TPM_AK_NAME_LEN) {
    st = ALN_OK; /* malformed: the verifier refuses it with the reason */
    goto out;
  }
  if (aln_policy_tpm_ak_pinned(c->policy, name.name) || ak_known(c, &name)) {
    st = ALN_OK;
    goto out;
  }
  Aileron__V1__TpmEnrollInfoRequest ir = AILERON__V1__TPM_ENROLL_INFO_REQUEST__INIT;
  Aileron__V1__Request req = AILERON__V1__REQUEST__INIT;
  req.body_case = AILERON__V1__REQUEST__BODY_TPM_ENROLL_INFO;
  req.tpm_enroll_info = &ir;
  ALN_GUARD_GOTO(st, rpc(ssl, &resp, &req, AILERON__V1__RESPONSE__BODY_TPM_ENROLL_INFO), out);
  const Aileron__V1__TpmEnrollInfoResponse *info = resp->tpm_enroll_info;
  ALN_ENSURE_GOTO(st,
                  Tss2_MU_TPM2B_PUBLIC_Unmarshal(info->ak_public.data, info->ak_public.len, &off, &ak) ==
                          TSS2_RC_SUCCESS &&
                      off == info->ak_public.len,
                  ALN_ERR_ATTEST_MALFORMED, out);
  ALN_ENSURE_GOTO(st, aln_tpm_ak_public_ok(&ak) && aln_tpm_name(&named, &ak) == ALN_OK, ALN_ERR_ATTEST_CHAIN, out);
  if (named.size != name.size || CRYPTO_memcmp(named.name, name.name, name.size) != 0) {
    why.status = ALN_ERR_ATTEST_CHAIN;
    snprintf(why.why, sizeof(why.why), "the AK offered for enrollment is not the one that signed the quote");
    st = ALN_ERR_ATTEST_CHAIN;
    goto out;
  }
  st = aln_tpm_ek_cert_verify(&ek, &why, info->ek_certificate.data, info->ek_certificate.len, roots, NULL,
                              (int64_t)time(NULL));
  if (st != ALN_OK)
    goto out;
  ALN_ENSURE_GOTO(st, RAND_bytes(secret, sizeof(secret)) == 1, ALN_ERR_CRYPTO, out);
  ALN_GUARD_GOTO(st, aln_tpm_make_credential(&blob, &seed, ek, &name, secret, sizeof(secret)), out);
  ALN_ENSURE_GOTO(st,
                  Tss2_MU_TPM2B_ID_OBJECT_Marshal(&blob, blob_buf, sizeof(blob_buf), &blob_len) == TSS2_RC_SUCCESS &&
                      Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&seed, seed_buf, sizeof(seed_buf), &seed_len) ==
                          TSS2_RC_SUCCESS,
                  ALN_ERR_INTERNAL, out);
  aln_channel_response_free(resp);
  resp = NULL;
  Aileron__V1__TpmActivateRequest ar = AILERON__V1__TPM_ACTIVATE_REQUEST__INIT;
  ar.credential_blob.data = blob_buf;
  ar.credential_blob.len = blob_len;
  ar.encrypted_secret.data = seed_buf;
  ar.encrypted_secret.len = seed_len;
  req.body_case = AILERON__V1__REQUEST__BODY_TPM_ACTIVATE;
  req.tpm_activate = &ar;
  st = rpc(ssl, &resp, &req, AILERON__V1__RESPONSE__BODY_TPM_ACTIVATE);
  if (st != ALN_OK || resp->tpm_activate->credential.len != sizeof(secret) ||
      CRYPTO_memcmp(resp->tpm_activate->credential.data, secret, sizeof(secret)) != 0) {
    why.status = ALN_ERR_ATTEST_CHAIN;
    snprintf(why.why, sizeof(why.why), "the enclave's TPM did not activate the credential (%s)",
             aln_status_name(st != ALN_OK ? st : ALN_ERR_ATTEST_CHAIN));
    st = ALN_ERR_ATTEST_CHAIN;
    goto out;
  }
  ak_remember(c, &name);
  fprintf(stderr, "aileron: enrolled the enclave's TPM attestation key by credential activation (its EK "
                  "certificate chains to the policy's CA)\n");
  st = ALN_OK;
out:
  if (st != ALN_OK)
    fprintf(stderr, "aileron: TPM attestation key enrollment refused: %s (%s)\n",
            why.why[0] != '\0' ? why.why : aln_strerror(st), aln_status_name(st));
  OPENSSL_cleanse(secret, sizeof(secret));
  EVP_PKEY_free(ek);
  if (resp != NULL)
    aln_channel_response_free(resp);
  free(q);
  return st;
}

/* verify_evidence appraises the enclave's answer to our Attest on |ssl| under the
 * policy, with the binding recomputed from this side of the connection as the
 * nonce the evidence must carry. On success *claims_out (may be NULL) receives the
 * claims as JSON and |binding_out| (may be NULL) the binding. */
static aln_status verify_evidence(struct aln_enclave_client *c, SSL *ssl, const uint8_t nonce[ALN_HOST_NONCE_LEN],
                                  const Aileron__V1__AttestResponse *ar, json_t **claims_out,
                                  uint8_t binding_out[ALN_BINDING_LEN]) {
  ALN_ENSURE(ar != NULL && ar->evidence_kind != NULL, ALN_ERR_MALFORMED);
  uint8_t exporter[ALN_EXPORTER_LEN], binding[ALN_BINDING_LEN];
  ALN_GUARD(aln_tls_exporter(exporter, ssl));
  ALN_GUARD(aln_binding_compute(binding, nonce, ALN_HOST_NONCE_LEN, exporter, ar->signing_public_key.data,
                                ar->signing_public_key.len));
  if (strcmp(ar->evidence_kind, ALN_TPM_QUOTE_KIND) == 0)
    ALN_GUARD(tpm_activate(c, ssl, ar->evidence.data, ar->evidence.len));
  uint8_t ak_names[AK_ENROLLED_MAX][ALN_TPM_AK_NAME_LEN];
  pthread_mutex_lock(&c->status_mu);
  size_t num_ak = c->num_ak_names;
  memcpy(ak_names, c->ak_names, sizeof(ak_names));
  pthread_mutex_unlock(&c->status_mu);
  struct aln_verify_ctx ctx = {.nonce = binding,
                               .nonce_len = sizeof(binding),
                               .now = (int64_t)time(NULL),
                               .max_skew_s = CLOCK_SKEW_S,
                               .signing_key = ar->signing_public_key.data,
                               .signing_key_len = ar->signing_public_key.len,
                               .tpm_ak_names = ak_names[0],
                               .num_tpm_ak_names = num_ak};
  struct aln_claims claims;
  struct aln_refusal why;
  aln_status st =
      aln_evidence_verify(&claims, &why, c->policy, ar->evidence_kind, ar->evidence.data, ar->evidence.len, &ctx);
  if (st != ALN_OK) {
    fprintf(stderr, "aileron: enclave evidence (kind %.32s) refused: %s (%s)\n", ar->evidence_kind, why.why,
            aln_status_name(st));
    return st;
  }
  json_t *j = aln_claims_to_json(&claims);
  aln_claims_cleanup(&claims);
  ALN_ENSURE(j != NULL, ALN_ERR_NOMEM);
  int64_t now = (int64_t)time(NULL);
  pthread_mutex_lock(&c->status_mu);
  json_decref(c->last_claims);
  c->last_claims = json_incref(j);
  c->last_verified_at = now;
  pthread_mutex_unlock(&c->status_mu);
  if (claims_out != NULL)
    *claims_out = j;
  else
    json_decref(j);
  if (binding_out != NULL)
    memcpy(binding_out, binding, sizeof(binding));
  return ALN_OK;
}

/* attest runs Attest on |ssl| with a fresh nonce and appraises the answer; |rec|
 * (may be NULL) keeps the claims, the binding and the response. */
static aln_status attest(struct aln_enclave_client *c, SSL *ssl, struct attest_record *rec) {
  aln_status st = ALN_ERR_INTERNAL;
  Aileron__V1__Response *resp = NULL;
  uint8_t nonce[ALN_HOST_NONCE_LEN];

  ALN_ENSURE(RAND_bytes(nonce, sizeof(nonce)) == 1, ALN_ERR_CRYPTO);
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
  ALN_GUARD_GOTO(
      st,
      verify_evidence(c, ssl, nonce, resp->attest, rec != NULL ? &rec->claims : NULL, rec != NULL ? rec->nonce : NULL),
      out);
  if (rec != NULL) {
    rec->resp = resp;
    resp = NULL;
  }
  st = ALN_OK;
out:
  if (resp != NULL)
    aln_channel_response_free(resp);
  return st;
}

/* connect_and_attest opens a TLS connection to the enclave and attests it; only
 * then is it kept in |k|. */
static aln_status connect_and_attest(struct aln_enclave_client *c, struct conn *k, struct attest_record *rec) {
  aln_status st = ALN_ERR_INTERNAL;
  SSL *ssl = NULL;
  int fd = -1;

  ALN_GUARD(aln_net_connect(&fd, c->address, CONNECT_TIMEOUT_MS, IO_TIMEOUT_S));
  ssl = SSL_new(c->ctx);
  ALN_ENSURE_GOTO(st, ssl != NULL, ALN_ERR_NOMEM, out);
  ALN_ENSURE_GOTO(st, SSL_set_fd(ssl, fd) == 1, ALN_ERR_TLS, out);
  ALN_ENSURE_GOTO(st, SSL_connect(ssl) == 1, ALN_ERR_TLS, out);
  ALN_GUARD_GOTO(st, attest(c, ssl, rec), out);

  k->ssl = ssl;
  k->fd = fd;
  k->appraised_at = mono_now();
  ssl = NULL;
  fd = -1;
  st = ALN_OK;
out:
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
  ALN_ENSURE(out != NULL && cfg != NULL && cfg->address != NULL && cfg->key_path != NULL && cfg->cert_path != NULL &&
                 cfg->policy != NULL && cfg->reattest_s >= 0,
             ALN_ERR_USAGE);
  char host[256];
  int port;
  ALN_GUARD(aln_net_parse_hostport(host, sizeof(host), &port, cfg->address, 0));
  struct aln_enclave_client *c = calloc(1, sizeof(*c));
  ALN_ENSURE(c != NULL, ALN_ERR_NOMEM);
  c->policy = cfg->policy;
  c->reattest_s = cfg->reattest_s > 0 ? cfg->reattest_s : ALN_REATTEST_DEFAULT_S;
  pthread_mutex_init(&c->status_mu, NULL);
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
  json_decref(c->last_claims);
  pthread_mutex_destroy(&c->status_mu);
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
  if (k->ssl != NULL && mono_now() - k->appraised_at >= c->reattest_s) {
    /* Appraised too long ago: attest again on this connection before using it. */
    st = attest(c, k->ssl, NULL);
    if (st == ALN_OK)
      k->appraised_at = mono_now();
  }
  if (st == ALN_OK && k->ssl == NULL)
    st = connect_and_attest(c, k, NULL);
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

aln_status aln_enclave_client_status(struct aln_enclave_client *c, json_t **out) {
  ALN_ENSURE(c != NULL && out != NULL, ALN_ERR_USAGE);
  *out = NULL;
  pthread_mutex_lock(&c->status_mu);
  json_t *j = c->last_claims != NULL ? json_deep_copy(c->last_claims) : NULL;
  int64_t at = c->last_verified_at;
  pthread_mutex_unlock(&c->status_mu);
  if (j == NULL)
    return ALN_ERR_NOT_FOUND;
  if (json_object_set_new(j, "verified_at", json_integer(at)) != 0 ||
      json_object_set_new(j, "reattest_seconds", json_integer(c->reattest_s)) != 0) {
    json_decref(j);
    return ALN_ERR_NOMEM;
  }
  *out = j;
  return ALN_OK;
}

/* hex_string renders |len| bytes as a new JSON string of lowercase hex. */
static json_t *hex_string(const uint8_t *p, size_t len) {
  char *hex = malloc(2 * len + 1);
  json_t *j = hex != NULL && aln_hex_encode(hex, 2 * len + 1, p, len) == ALN_OK ? json_string(hex) : NULL;
  free(hex);
  return j;
}

/* b64_string renders |len| bytes as a new JSON string of standard base64. */
static json_t *b64_string(const uint8_t *p, size_t len) {
  size_t n = 0;
  if (aln_base64_encoded_len(&n, len, ALN_BASE64_STD) != ALN_OK)
    return NULL;
  char *b = malloc(n + 1);
  json_t *j = b != NULL && aln_base64_encode(b, n + 1, NULL, p, len, ALN_BASE64_STD) == ALN_OK ? json_string(b) : NULL;
  free(b);
  return j;
}

aln_status aln_enclave_client_attest_fresh(struct aln_enclave_client *c, json_t **out) {
  aln_status st = ALN_ERR_INTERNAL;
  struct conn k = {.fd = -1};
  struct attest_record rec = {0};

  ALN_ENSURE(c != NULL && out != NULL, ALN_ERR_USAGE);
  *out = NULL;
  ALN_GUARD_GOTO(st, connect_and_attest(c, &k, &rec), out);
  const Aileron__V1__AttestResponse *ar = rec.resp->attest;
  json_t *j = json_pack("{s:s, s:o, s:o, s:o, s:O}", "kind", ar->evidence_kind, "evidence_b64",
                        b64_string(ar->evidence.data, ar->evidence.len), "nonce_hex",
                        hex_string(rec.nonce, sizeof(rec.nonce)), "signing_key_hex",
                        hex_string(ar->signing_public_key.data, ar->signing_public_key.len), "claims", rec.claims);
  ALN_ENSURE_GOTO(st, j != NULL, ALN_ERR_NOMEM, out);
  *out = j;
  st = ALN_OK;
out:
  disconnect(&k);
  json_decref(rec.claims);
  if (rec.resp != NULL)
    aln_channel_response_free(rec.resp);
  return st;
}
