/* The host's attested client against a fake enclave that misbehaves in one chosen
 * way per test. The property under test: the client sends nothing but Attest on a
 * connection whose evidence it has not verified against the binding it computes
 * itself — evidence from another connection, signed by another key, of an unknown
 * kind, or debug outside dev mode is refused, and the fake sees no second request.
 * The fake is built from the same proto/ TLS and channel code as the enclave, with
 * real TLS 1.3 on loopback and real local evidence (attestation/local.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <tss2/tss2_mu.h>
#include <unistd.h>

#include "attestation/binding.h"
#include "attestation/local.h"
#include "attestation/tpm_quote.h"
#include "host/enclave_client.h"
#include "proto/channel.h"
#include "proto/keyfile.h"
#include "proto/net.h"
#include "proto/tls.h"
#include "tests/unit/test_files.h"

enum misbehaviour {
  HONEST,
  REPLAYED_BINDING, /* binding computed with another connection's exporter */
  RAW_NONCE,        /* eat_nonce = the host nonce itself, not the binding */
  OTHER_KEY,        /* signed by a key other than the one announced */
  UNKNOWN_KIND,     /* evidence_kind "tpm" with local evidence inside */
  ATTEST_REFUSED,   /* answers Attest with an error status */
  TLS12_ONLY,       /* the server speaks TLS 1.2 at most */
  HOLD_FIRST,       /* honest; the first Health waits until a second one arrives */
  REPLAY_OLD,       /* honest on its first connection, then replays that evidence on every later one */
  TURN_BAD,         /* honest at the first Attest, signs later ones with another key */
  FIXED,            /* answers with f->fixed_kind and the bytes f->fixed_ev, whatever the nonce */
};

#define FAKE_CONNS_MAX 8

struct fake {
  enum misbehaviour mode;
  int listen_fd;
  int port;
  pthread_t thread;
  SSL_CTX *ctx;
  EVP_PKEY *sign_key, *other_key;
  uint8_t sign_pub[32];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int requests_after_attest;  /* what reached the fake after its Attest answer */
  int inflight, max_inflight; /* Health requests being answered at once */
  int attests;                /* Attest requests answered */
  uint8_t *first_ev;          /* REPLAY_OLD: the evidence of the first Attest */
  size_t first_ev_len;
  const char *fixed_kind; /* FIXED */
  const uint8_t *fixed_ev;
  size_t fixed_len;
  pthread_t conns[FAKE_CONNS_MAX];
  int num_conns;
  /* TPM AK enrollment: what TpmEnrollInfo answers, and how often each step came.
   * TpmActivate is answered with random bytes: no TPM here holds the EK. */
  const uint8_t *enroll_ak, *enroll_ek;
  size_t enroll_ak_len, enroll_ek_len;
  int enroll_infos, activations;
};

struct fake_conn {
  struct fake *f;
  int fd;
};

static aln_status answer_attest(struct fake *f, SSL *ssl, const Aileron__V1__Request *req) {
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  if (f->mode == ATTEST_REFUSED) {
    resp.status = ALN_ERR_INTERNAL;
    resp.message = (char *)aln_strerror(ALN_ERR_INTERNAL);
    return aln_channel_send_response(ssl, &resp);
  }
  uint8_t exporter[ALN_EXPORTER_LEN], binding[ALN_BINDING_LEN];
  ALN_GUARD(aln_tls_exporter(exporter, ssl));
  if (f->mode == REPLAYED_BINDING)
    exporter[0] ^= 0x01; /* as if computed on another connection */
  ALN_GUARD(aln_binding_compute(binding, req->attest->host_nonce.data, req->attest->host_nonce.len, exporter,
                                f->sign_pub, sizeof(f->sign_pub)));
  if (f->mode == RAW_NONCE)
    memcpy(binding, req->attest->host_nonce.data, ALN_BINDING_LEN);
  uint8_t *ev = NULL;
  size_t ev_len = 0;
  pthread_mutex_lock(&f->mu);
  int n = f->attests++;
  pthread_mutex_unlock(&f->mu);
  int other = f->mode == OTHER_KEY || (f->mode == TURN_BAD && n > 0);
  ALN_GUARD(aln_local_evidence_make(&ev, &ev_len, other ? f->other_key : f->sign_key, binding, (int64_t)time(NULL)));
  if (f->mode == REPLAY_OLD && n == 0) {
    f->first_ev = malloc(ev_len);
    ALN_ENSURE(f->first_ev != NULL, ALN_ERR_NOMEM);
    memcpy(f->first_ev, ev, ev_len);
    f->first_ev_len = ev_len;
  } else if (f->mode == REPLAY_OLD) {
    /* A stale answer: valid evidence, for another connection's nonce and exporter. */
    free(ev);
    ev = malloc(f->first_ev_len);
    ALN_ENSURE(ev != NULL, ALN_ERR_NOMEM);
    memcpy(ev, f->first_ev, f->first_ev_len);
    ev_len = f->first_ev_len;
  }
  Aileron__V1__AttestResponse ar = AILERON__V1__ATTEST_RESPONSE__INIT;
  ar.evidence_kind = f->mode == UNKNOWN_KIND ? "tpm" : "local";
  ar.evidence.data = ev;
  ar.evidence.len = ev_len;
  if (f->mode == FIXED) {
    ar.evidence_kind = (char *)f->fixed_kind;
    ar.evidence.data = (uint8_t *)f->fixed_ev;
    ar.evidence.len = f->fixed_len;
  }
  ar.signing_public_key.data = f->sign_pub;
  ar.signing_public_key.len = sizeof(f->sign_pub);
  resp.body_case = AILERON__V1__RESPONSE__BODY_ATTEST;
  resp.attest = &ar;
  aln_status st = aln_channel_send_response(ssl, &resp);
  free(ev);
  return st;
}

/* answer_enrollment answers TpmEnrollInfo with f's AK and EK certificate, and
 * TpmActivate with 32 random bytes (not the secret the host sealed to the EK). */
static aln_status answer_enrollment(struct fake *f, SSL *ssl, const Aileron__V1__Request *req) {
  Aileron__V1__TpmEnrollInfoResponse info = AILERON__V1__TPM_ENROLL_INFO_RESPONSE__INIT;
  Aileron__V1__TpmActivateResponse act = AILERON__V1__TPM_ACTIVATE_RESPONSE__INIT;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  uint8_t guess[32];
  ALN_ENSURE(RAND_bytes(guess, sizeof(guess)) == 1, ALN_ERR_CRYPTO);
  pthread_mutex_lock(&f->mu);
  if (req->body_case == AILERON__V1__REQUEST__BODY_TPM_ENROLL_INFO) {
    f->enroll_infos++;
    info.ak_public.data = (uint8_t *)f->enroll_ak;
    info.ak_public.len = f->enroll_ak_len;
    info.ek_certificate.data = (uint8_t *)f->enroll_ek;
    info.ek_certificate.len = f->enroll_ek_len;
    resp.body_case = AILERON__V1__RESPONSE__BODY_TPM_ENROLL_INFO;
    resp.tpm_enroll_info = &info;
  } else {
    f->activations++;
    act.credential.data = guess;
    act.credential.len = sizeof(guess);
    resp.body_case = AILERON__V1__RESPONSE__BODY_TPM_ACTIVATE;
    resp.tpm_activate = &act;
  }
  pthread_mutex_unlock(&f->mu);
  return aln_channel_send_response(ssl, &resp);
}

static aln_status answer_health(SSL *ssl) {
  Aileron__V1__HealthResponse h = AILERON__V1__HEALTH_RESPONSE__INIT;
  h.version = "fake";
  h.tee_provider = "local";
  h.attested = 1;
  h.enrolled = 1;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_HEALTH;
  resp.health = &h;
  return aln_channel_send_response(ssl, &resp);
}

/* hold_health, in HOLD_FIRST mode, keeps the first Health request waiting (at most
 * 5 s) until another one is in flight: proof that two calls reached the enclave at
 * the same time, which a client serialising every call cannot produce. */
static void hold_health(struct fake *f) {
  pthread_mutex_lock(&f->mu);
  f->inflight++;
  if (f->inflight > f->max_inflight)
    f->max_inflight = f->inflight;
  pthread_cond_broadcast(&f->cv);
  if (f->mode == HOLD_FIRST && f->inflight == 1 && f->max_inflight == 1) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    while (f->max_inflight < 2 && pthread_cond_timedwait(&f->cv, &f->mu, &until) == 0)
      ;
  }
  f->inflight--;
  pthread_mutex_unlock(&f->mu);
}

/* serve_conn handles one connection: Attest first, then Health requests. */
static void *serve_conn(void *arg) {
  struct fake_conn fc = *(struct fake_conn *)arg;
  struct fake *f = fc.f;
  free(arg);
  SSL *ssl = SSL_new(f->ctx);
  int attested = 0;
  if (ssl != NULL && SSL_set_fd(ssl, fc.fd) == 1 && SSL_accept(ssl) == 1) {
    for (;;) {
      Aileron__V1__Request *req = NULL;
      if (aln_channel_recv_request(ssl, &req) != ALN_OK)
        break;
      aln_status st = ALN_ERR_MALFORMED;
      int enrollment = req->body_case == AILERON__V1__REQUEST__BODY_TPM_ENROLL_INFO ||
                       req->body_case == AILERON__V1__REQUEST__BODY_TPM_ACTIVATE;
      if (attested && req->body_case != AILERON__V1__REQUEST__BODY_ATTEST && !enrollment) {
        pthread_mutex_lock(&f->mu);
        f->requests_after_attest++;
        pthread_mutex_unlock(&f->mu);
      }
      /* As the enclave does, Attest is answered again on an attested connection. */
      if (req->body_case == AILERON__V1__REQUEST__BODY_ATTEST) {
        st = answer_attest(f, ssl, req);
        attested = 1;
      } else if (enrollment) {
        st = answer_enrollment(f, ssl, req);
      } else if (req->body_case == AILERON__V1__REQUEST__BODY_HEALTH) {
        hold_health(f);
        st = answer_health(ssl);
      }
      aln_channel_request_free(req);
      if (st != ALN_OK)
        break;
    }
  }
  SSL_free(ssl);
  close(fc.fd);
  return NULL;
}

/* accept_loop serves connections until the listener is shut down. */
static void *accept_loop(void *arg) {
  struct fake *f = arg;
  for (;;) {
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0)
      return NULL;
    struct fake_conn *fc = malloc(sizeof(*fc));
    if (fc == NULL || f->num_conns == FAKE_CONNS_MAX) {
      free(fc);
      close(fd);
      continue;
    }
    fc->f = f;
    fc->fd = fd;
    if (pthread_create(&f->conns[f->num_conns], NULL, serve_conn, fc) == 0)
      f->num_conns++;
    else {
      free(fc);
      close(fd);
    }
  }
}

static void fake_start(struct fake *f, enum misbehaviour mode) {
  memset(f, 0, sizeof(*f));
  f->mode = mode;
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  assert_int_equal(aln_tls_identity_generate(&key, &cert, "fake-enclave", 1), ALN_OK);
  assert_int_equal(aln_tls_server_ctx_new(&f->ctx, key, cert), ALN_OK);
  if (mode == TLS12_ONLY) {
    assert_int_equal(SSL_CTX_set_min_proto_version(f->ctx, TLS1_2_VERSION), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(f->ctx, TLS1_2_VERSION), 1);
  }
  EVP_PKEY_free(key);
  X509_free(cert);
  f->sign_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  f->other_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  assert_non_null(f->sign_key);
  assert_non_null(f->other_key);
  size_t len = sizeof(f->sign_pub);
  assert_int_equal(EVP_PKEY_get_raw_public_key(f->sign_key, f->sign_pub, &len), 1);
  assert_int_equal(aln_net_listen(&f->listen_fd, &f->port, "127.0.0.1:0"), ALN_OK);
  assert_int_equal(pthread_create(&f->thread, NULL, accept_loop, f), 0);
}

static void fake_stop(struct fake *f) {
  shutdown(f->listen_fd, SHUT_RDWR);
  pthread_join(f->thread, NULL);
  for (int i = 0; i < f->num_conns; i++)
    pthread_join(f->conns[i], NULL); /* each ends when its client disconnects */
  close(f->listen_fd);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  SSL_CTX_free(f->ctx);
  EVP_PKEY_free(f->sign_key);
  EVP_PKEY_free(f->other_key);
  free(f->first_ev);
}

static char dir[64], key_path[128], cert_path[128];
/* The dev policy, and a production one that names the local kind without debug. */
static struct aln_policy *dev_policy, *prod_policy;

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/aln-client-test-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(key_path, sizeof(key_path), "%s/host.key", dir);
  snprintf(cert_path, sizeof(cert_path), "%s/host.crt", dir);
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  if (aln_tls_identity_generate(&key, &cert, "test-host", 1) != ALN_OK)
    return -1;
  FILE *kf = fopen(key_path, "w"), *cf = fopen(cert_path, "w");
  int ok = kf && cf && PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) == 1 && PEM_write_X509(cf, cert) == 1;
  if (kf)
    fclose(kf);
  if (cf)
    fclose(cf);
  EVP_PKEY_free(key);
  X509_free(cert);
  char err[ALN_POLICY_ERR_MAX];
  static const char prod[] = "version: 1\nkinds: {local: {allow_debug: false}}\n";
  if (aln_policy_dev(&dev_policy) != ALN_OK ||
      aln_policy_parse(&prod_policy, err, (const uint8_t *)prod, sizeof(prod) - 1) != ALN_OK)
    return -1;
  return ok ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  unlink(key_path);
  unlink(cert_path);
  rmdir(dir);
  aln_policy_free(dev_policy);
  aln_policy_free(prod_policy);
  return 0;
}

static struct aln_enclave_client *client_new_reattest(struct fake *f, int dev, int64_t reattest_s) {
  char addr[32];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
  struct aln_enclave_client_config cfg = {.address = addr,
                                          .key_path = key_path,
                                          .cert_path = cert_path,
                                          .policy = dev ? dev_policy : prod_policy,
                                          .reattest_s = reattest_s};
  struct aln_enclave_client *c = NULL;
  assert_int_equal(aln_enclave_client_new(&c, &cfg), ALN_OK);
  return c;
}

static struct aln_enclave_client *client_new(struct fake *f, int dev) {
  return client_new_reattest(f, dev, 0);
}

/* health runs one Health call on |c|. */
static aln_status health(struct aln_enclave_client *c) {
  Aileron__V1__HealthRequest h = AILERON__V1__HEALTH_REQUEST__INIT;
  Aileron__V1__Request req = AILERON__V1__REQUEST__INIT;
  req.body_case = AILERON__V1__REQUEST__BODY_HEALTH;
  req.health = &h;
  Aileron__V1__Response *resp = NULL;
  aln_status st = aln_enclave_client_call(c, &resp, &req);
  if (st == ALN_OK && (resp == NULL || resp->body_case != AILERON__V1__RESPONSE__BODY_HEALTH))
    st = ALN_ERR_INTERNAL; /* checked by the caller's status assertion */
  if (resp != NULL)
    aln_channel_response_free(resp);
  return st;
}

/* call_health runs one Health call through a new client in |dev| mode against |f|. */
static aln_status call_health(struct fake *f, int dev) {
  struct aln_enclave_client *c = client_new(f, dev);
  aln_status st = health(c);
  aln_enclave_client_free(c);
  return st;
}

/* refused runs the client against a fake misbehaving as |mode| and checks it gets
 * |want| and that nothing but Attest ever reached the fake. */
static void refused(enum misbehaviour mode, int dev, aln_status want) {
  struct fake f;
  fake_start(&f, mode);
  assert_int_equal(call_health(&f, dev), want);
  fake_stop(&f);
  assert_int_equal(f.requests_after_attest, 0);
}

static void test_honest_enclave_is_accepted_in_dev_mode(void **state) {
  (void)state;
  struct fake f;
  fake_start(&f, HONEST);
  assert_int_equal(call_health(&f, 1), ALN_OK);
  fake_stop(&f);
  assert_int_equal(f.requests_after_attest, 1); /* the Health call itself */
}

static void test_evidence_from_another_connection_refused(void **state) {
  (void)state;
  refused(REPLAYED_BINDING, 1, ALN_ERR_ATTEST_BINDING);
}

static void test_nonce_not_bound_to_channel_refused(void **state) {
  (void)state;
  refused(RAW_NONCE, 1, ALN_ERR_ATTEST_BINDING);
}

static void test_evidence_signed_by_another_key_refused(void **state) {
  (void)state;
  refused(OTHER_KEY, 1, ALN_ERR_ATTEST_SIG);
}

static void test_unknown_evidence_kind_refused(void **state) {
  (void)state;
  refused(UNKNOWN_KIND, 1, ALN_ERR_ATTEST_KIND);
}

static void test_debug_evidence_refused_outside_dev_mode(void **state) {
  (void)state;
  refused(HONEST, 0, ALN_ERR_ATTEST_DEBUG);
}

static void test_attest_error_is_reported(void **state) {
  (void)state;
  refused(ATTEST_REFUSED, 1, ALN_ERR_INTERNAL);
}

static void test_tls12_enclave_refused(void **state) {
  (void)state;
  refused(TLS12_ONLY, 1, ALN_ERR_TLS);
}

static void test_unreachable_enclave(void **state) {
  (void)state;
  struct fake f;
  fake_start(&f, HONEST);
  fake_stop(&f); /* listener closed: nothing answers on the port */
  assert_int_equal(call_health(&f, 1), ALN_ERR_UNAVAILABLE);
}

struct caller {
  struct aln_enclave_client *c;
  aln_status st;
};

static void *call_thread(void *arg) {
  struct caller *k = arg;
  k->st = health(k->c);
  return NULL;
}

static void test_concurrent_calls_are_not_serialised(void **state) {
  (void)state;
  struct fake f;
  fake_start(&f, HOLD_FIRST);
  struct aln_enclave_client *c = client_new(&f, 1);
  struct caller a = {.c = c}, b = {.c = c};
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, call_thread, &a), 0);
  assert_int_equal(pthread_create(&tb, NULL, call_thread, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  assert_int_equal(a.st, ALN_OK);
  assert_int_equal(b.st, ALN_OK);
  aln_enclave_client_free(c);
  fake_stop(&f);
  assert_int_equal(f.max_inflight, 2);
}

static void test_pooled_connection_is_reused(void **state) {
  (void)state;
  struct fake f;
  fake_start(&f, HONEST);
  struct aln_enclave_client *c = client_new(&f, 1);
  for (int i = 0; i < 5; i++)
    assert_int_equal(health(c), ALN_OK);
  aln_enclave_client_free(c);
  fake_stop(&f);
  assert_int_equal(f.num_conns, 1); /* one connection, attested once */
  assert_int_equal(f.requests_after_attest, 5);
}

/* Evidence that was valid for another connection, replayed on a new one (a stale
 * nonce): its binding names the other connection's nonce and exporter. */
static void test_stale_evidence_replayed_on_a_new_connection_refused(void **state) {
  (void)state;
  struct fake f;
  fake_start(&f, REPLAY_OLD);
  assert_int_equal(call_health(&f, 1), ALN_OK); /* the first connection, honest */
  int before = f.requests_after_attest;
  assert_int_equal(call_health(&f, 1), ALN_ERR_ATTEST_BINDING);
  fake_stop(&f);
  assert_int_equal(f.requests_after_attest, before); /* nothing after the stale Attest */
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* A connection appraised longer ago than the interval is attested again, on the
 * same connection, before its next call. */
static void test_long_lived_connection_is_reattested(void **state) {
  (void)state;
  struct fake f;
  fake_start(&f, HONEST);
  struct aln_enclave_client *c = client_new_reattest(&f, 1, 1);
  assert_int_equal(health(c), ALN_OK);
  assert_int_equal(health(c), ALN_OK); /* within the interval: no new Attest */
  assert_int_equal(f.attests, 1);
  sleep_ms(2100);
  assert_int_equal(health(c), ALN_OK);
  aln_enclave_client_free(c);
  fake_stop(&f);
  assert_int_equal(f.attests, 2);
  assert_int_equal(f.num_conns, 1);
  assert_int_equal(f.requests_after_attest, 3);
}

/* If the re-attestation fails, the call fails and nothing but Attest is sent. */
static void test_failed_reattestation_stops_the_connection(void **state) {
  (void)state;
  struct fake f;
  fake_start(&f, TURN_BAD);
  struct aln_enclave_client *c = client_new_reattest(&f, 1, 1);
  assert_int_equal(health(c), ALN_OK);
  sleep_ms(2100);
  assert_int_equal(health(c), ALN_ERR_ATTEST_SIG);
  aln_enclave_client_free(c);
  fake_stop(&f);
  assert_int_equal(f.requests_after_attest, 1); /* only the first Health */
}

static void test_status_and_fresh_attestation(void **state) {
  (void)state;
  struct fake f;
  json_t *j = NULL;
  char pub_hex[65];
  fake_start(&f, HONEST);
  struct aln_enclave_client *c = client_new(&f, 1);
  assert_int_equal(aln_enclave_client_status(c, &j), ALN_ERR_NOT_FOUND); /* nothing appraised yet */
  assert_null(j);
  assert_int_equal(health(c), ALN_OK);
  assert_int_equal(aln_enclave_client_status(c, &j), ALN_OK);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "local");
  assert_true(json_is_true(json_object_get(j, "debug")));
  assert_true(json_integer_value(json_object_get(j, "verified_at")) > 1700000000);
  assert_int_equal(json_integer_value(json_object_get(j, "reattest_seconds")), ALN_REATTEST_DEFAULT_S);
  json_decref(j);

  assert_int_equal(aln_enclave_client_attest_fresh(c, &j), ALN_OK);
  assert_int_equal(aln_hex_encode(pub_hex, sizeof(pub_hex), f.sign_pub, sizeof(f.sign_pub)), ALN_OK);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "local");
  assert_string_equal(json_string_value(json_object_get(j, "signing_key_hex")), pub_hex);
  assert_int_equal(strlen(json_string_value(json_object_get(j, "nonce_hex"))), 64);
  assert_true(strlen(json_string_value(json_object_get(j, "evidence_b64"))) > 100);
  assert_true(json_is_object(json_object_get(j, "claims")));
  json_decref(j);
  aln_enclave_client_free(c);
  fake_stop(&f);
  assert_int_equal(f.num_conns, 2); /* the fresh attestation used a connection of its own */
}

/* ---- platform kinds: refused by the host before any credential traffic ----------- */

static uint8_t *test_file(const char *rel, size_t *len) {
  /* Only the token is text, with a line end to drop; the rest are exact bytes. */
  uint8_t *buf = (uint8_t *)aln_test_slurp(__FILE__, rel, len, strstr(rel, ".jwt") != NULL);
  assert_non_null(buf);
  return buf;
}

/* fixed_refused_by has the fake answer Attest with |kind| and the file |rel| (and
 * TPM enrollment with |enroll|'s AK and EK certificate, if given), under the policy
 * |yaml|, and checks the host refuses with |want| and sends nothing else. */
static void fixed_refused_by(struct fake *f, const struct fake *enroll, const char *kind, const char *rel,
                             const char *yaml, aln_status want) {
  char err[ALN_POLICY_ERR_MAX], addr[32];
  struct aln_policy *policy = NULL;
  size_t len = 0;
  uint8_t *ev = test_file(rel, &len);
  if (aln_policy_parse(&policy, err, (const uint8_t *)yaml, strlen(yaml)) != ALN_OK)
    fail_msg("policy: %s", err);
  fake_start(f, FIXED);
  f->fixed_kind = kind;
  f->fixed_ev = ev;
  f->fixed_len = len;
  if (enroll != NULL) {
    f->enroll_ak = enroll->enroll_ak;
    f->enroll_ak_len = enroll->enroll_ak_len;
    f->enroll_ek = enroll->enroll_ek;
    f->enroll_ek_len = enroll->enroll_ek_len;
  }
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
  struct aln_enclave_client_config cfg = {
      .address = addr, .key_path = key_path, .cert_path = cert_path, .policy = policy};
  struct aln_enclave_client *c = NULL;
  assert_int_equal(aln_enclave_client_new(&c, &cfg), ALN_OK);
  assert_int_equal(health(c), want);
  aln_enclave_client_free(c);
  fake_stop(f);
  assert_int_equal(f->requests_after_attest, 0);
  aln_policy_free(policy);
  free(ev);
}

static void fixed_refused(const char *kind, const char *rel, const char *yaml, aln_status want) {
  struct fake f;
  fixed_refused_by(&f, NULL, kind, rel, yaml, want);
  assert_int_equal(f.enroll_infos + f.activations, 0);
}

#define OAK_DIGEST "sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34"

/* A Confidential Space token whose x5c chain has expired: the real one, judged now,
 * long after. The chain is checked before the token's own exp (the verifier's own
 * tests refuse it one second past exp with ALN_ERR_ATTEST_EXPIRED). */
static void test_token_with_an_expired_chain_refused(void **state) {
  (void)state;
  fixed_refused("confidential-space", "data/attestation/confidential-space/oak_cs_pki_amdsev_debug_2025-06-23.jwt",
                "version: 1\nkinds:\n  confidential-space:\n    audience: https://echo.oak.dev\n"
                "    image_digests: [" OAK_DIGEST "]\n    hwmodels: [GCP_AMD_SEV]\n    allow_debug: true\n",
                ALN_ERR_ATTEST_CHAIN);
}

/* Evidence of a kind the policy does not name, however valid it may be. */
static void test_kind_not_in_policy_refused(void **state) {
  (void)state;
  fixed_refused("sev-snp", "data/attestation/sev-snp/gosevguest_milan_report.bin",
                "version: 1\nkinds: {local: {allow_debug: true}}\n", ALN_ERR_ATTEST_KIND);
}

/* A real SEV-SNP report without the certificates to check it: refused, never
 * fetched. */
static void test_snp_report_without_its_chain_refused(void **state) {
  (void)state;
  fixed_refused(
      "sev-snp", "data/attestation/sev-snp/gosevguest_milan_report.bin",
      "version: 1\nkinds:\n  sev-snp:\n    product: Milan\n    measurements: [b07af9620f3b839b47996422ddec6058"
      "338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01]\n    allow_debug: true\n",
      ALN_ERR_ATTEST_CHAIN);
}

/* A real swtpm quote: by an AK the policy does not enroll; then, with its AK and
 * PCR values enrolled, with a nonce that is not this connection's binding (a quote
 * replayed from elsewhere). Wrong PCR values are the verifier's tests: the nonce
 * is checked first, and no fixed quote can carry this connection's binding. */
static void test_tpm_quote_refusals(void **state) {
  (void)state;
  static const char *rel = "fuzz/corpus/tpm_attest/tpm2-quote-ecdsa";
  size_t len = 0;
  uint8_t *ev = test_file(rel, &len);
  struct aln_tpm_quote *q = calloc(1, sizeof(*q));
  TPM2B_NAME name;
  char name_hex[2 * sizeof(name.name) + 1], pcr_hex[2 * 64 + 1], yaml[1024];
  assert_non_null(q);
  assert_int_equal(aln_tpm_quote_decode(q, ev, len), ALN_OK);
  assert_int_equal(aln_tpm_name(&name, &q->ak), ALN_OK);
  assert_int_equal(aln_hex_encode(name_hex, sizeof(name_hex), name.name, name.size), ALN_OK);
  const TPMS_PCR_SELECTION *ps = &q->attest.attested.quote.pcrSelect.pcrSelections[0];
  unsigned idx = 0;
  while (!(ps->pcrSelect[idx / 8] & (1u << (idx % 8))))
    idx++;
  assert_int_equal(aln_hex_encode(pcr_hex, sizeof(pcr_hex), q->pcr_values[0].buffer, q->pcr_values[0].size), ALN_OK);
  const char *bank = ps->hash == TPM2_ALG_SHA256 ? "sha256" : "sha1";

  fixed_refused("tpm", rel,
                "version: 1\nkinds:\n  tpm:\n    ak_names: [000b00112233445566778899aabbccddeeff00112233445566778899"
                "aabbccddeeff]\n    pcrs: [{bank: sha256, index: 16, values: ["
                "0000000000000000000000000000000000000000"
                "000000000000000000000000]}]\n",
                ALN_ERR_ATTEST_CHAIN);
  snprintf(yaml, sizeof(yaml),
           "version: 1\nkinds:\n  tpm:\n    ak_names: [%s]\n    pcrs: [{bank: %s, index: %u, "
           "values: [%s]}]\n",
           name_hex, bank, idx, pcr_hex);
  fixed_refused("tpm", rel, yaml, ALN_ERR_ATTEST_BINDING);
  free(q);
  free(ev);
}

/* ---- TPM AK enrollment by credential activation, against a fake that cannot do it ---- */

/* cert_make issues a certificate for |key| named |cn|, by |issuer| (self-signed
 * when NULL) under |issuer_key|; a CA when |ca|. */
static X509 *cert_make(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int ca) {
  X509 *x = X509_new();
  X509_NAME *name = X509_NAME_new();
  assert_non_null(x);
  assert_non_null(name);
  assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
  assert_int_equal(X509_set_version(x, 2), 1);
  assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2), 1);
  assert_int_equal(X509_set_subject_name(x, name), 1);
  assert_int_equal(X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name), 1);
  assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
  assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
  assert_int_equal(X509_set_pubkey(x, key), 1);
  if (ca) {
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
    assert_non_null(bc);
    assert_int_equal(X509_add_ext(x, bc, -1), 1);
    X509_EXTENSION_free(bc);
  }
  assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
  X509_NAME_free(name);
  return x;
}

/* ak_public_of marshals the AK public area of the quote in the test file |rel|. */
static uint8_t *ak_public_of(const char *rel, size_t *out_len) {
  size_t len = 0;
  uint8_t *ev = test_file(rel, &len), *out = malloc(sizeof(TPM2B_PUBLIC));
  struct aln_tpm_quote *q = calloc(1, sizeof(*q));
  assert_non_null(out);
  assert_non_null(q);
  assert_int_equal(aln_tpm_quote_decode(q, ev, len), ALN_OK);
  *out_len = 0;
  assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(&q->ak, out, sizeof(TPM2B_PUBLIC), out_len), TSS2_RC_SUCCESS);
  free(q);
  free(ev);
  return out;
}

/* The host enrolls a quote's AK only if the enclave names that very AK and its TPM
 * gives back the secret sealed to a certified EK: an AK other than the quote's is
 * refused before any activation, and a wrong secret (the fake has no TPM to
 * activate with) is refused although the EK certificate chains to the policy's CA.
 * Were either check gone, the host would go on to appraise the quote and refuse it
 * for its nonce instead (ALN_ERR_ATTEST_BINDING), or activate. */
static void test_tpm_enrollment_refusals(void **state) {
  (void)state;
  static const char *quote = "fuzz/corpus/tpm_attest/tpm2-quote-ecdsa";
  char ca_path[160], yaml[512];
  EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  EVP_PKEY *ek_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  assert_non_null(ca_key);
  assert_non_null(ek_key);
  X509 *ca = cert_make(ca_key, "test EK manufacturer CA", NULL, ca_key, 1);
  X509 *ek = cert_make(ek_key, "test EK", ca, ca_key, 0);
  uint8_t *ek_der = NULL;
  int ek_der_len = i2d_X509(ek, &ek_der);
  assert_true(ek_der_len > 0);
  snprintf(ca_path, sizeof(ca_path), "%s/ek-ca.pem", dir);
  FILE *cf = fopen(ca_path, "w");
  assert_non_null(cf);
  assert_int_equal(PEM_write_X509(cf, ca), 1);
  assert_int_equal(fclose(cf), 0);
  snprintf(yaml, sizeof(yaml),
           "version: 1\nkinds:\n  tpm:\n    ek_ca_file: %s\n    pcrs: [{bank: sha256, index: 16, values: ["
           "0000000000000000000000000000000000000000000000000000000000000000]}]\n",
           ca_path);

  struct fake f, enroll = {.enroll_ek = ek_der, .enroll_ek_len = (size_t)ek_der_len};
  /* The AK offered is another quote's. */
  uint8_t *other_ak = ak_public_of("fuzz/corpus/tpm_attest/tpm2-quote-rsassa", &enroll.enroll_ak_len);
  enroll.enroll_ak = other_ak;
  fixed_refused_by(&f, &enroll, "tpm", quote, yaml, ALN_ERR_ATTEST_CHAIN);
  assert_int_equal(f.enroll_infos, 1);
  assert_int_equal(f.activations, 0);
  free(other_ak);

  /* The quote's own AK and a certified EK, but the secret comes back wrong. */
  uint8_t *own_ak = ak_public_of(quote, &enroll.enroll_ak_len);
  enroll.enroll_ak = own_ak;
  fixed_refused_by(&f, &enroll, "tpm", quote, yaml, ALN_ERR_ATTEST_CHAIN);
  assert_int_equal(f.enroll_infos, 1);
  assert_int_equal(f.activations, 1);
  free(own_ak);

  unlink(ca_path);
  OPENSSL_free(ek_der);
  X509_free(ek);
  X509_free(ca);
  EVP_PKEY_free(ek_key);
  EVP_PKEY_free(ca_key);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_honest_enclave_is_accepted_in_dev_mode),
      cmocka_unit_test(test_evidence_from_another_connection_refused),
      cmocka_unit_test(test_nonce_not_bound_to_channel_refused),
      cmocka_unit_test(test_evidence_signed_by_another_key_refused),
      cmocka_unit_test(test_unknown_evidence_kind_refused),
      cmocka_unit_test(test_debug_evidence_refused_outside_dev_mode),
      cmocka_unit_test(test_attest_error_is_reported),
      cmocka_unit_test(test_tls12_enclave_refused),
      cmocka_unit_test(test_unreachable_enclave),
      cmocka_unit_test(test_concurrent_calls_are_not_serialised),
      cmocka_unit_test(test_pooled_connection_is_reused),
      cmocka_unit_test(test_stale_evidence_replayed_on_a_new_connection_refused),
      cmocka_unit_test(test_long_lived_connection_is_reattested),
      cmocka_unit_test(test_failed_reattestation_stops_the_connection),
      cmocka_unit_test(test_status_and_fresh_attestation),
      cmocka_unit_test(test_token_with_an_expired_chain_refused),
      cmocka_unit_test(test_kind_not_in_policy_refused),
      cmocka_unit_test(test_snp_report_without_its_chain_refused),
      cmocka_unit_test(test_tpm_quote_refusals),
      cmocka_unit_test(test_tpm_enrollment_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
