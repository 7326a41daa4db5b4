/* Tests for proto/tls: ephemeral identities (P-256, self-signed, CN, validity), the
 * SubjectPublicKeyInfo hash against an independent computation and from PEM files,
 * and real handshakes over a socketpair with the server in a thread: TLS 1.3 only,
 * client certificate required, the peer key hash, the exporter both ends agree on
 * and that differs per connection (the premise of the channel binding), no exporter
 * for a 1.2 or unfinished handshake, and no session resumption. Each refusal has a
 * control showing the same probe sees the opposite when the property is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "proto/tls.h"

struct ids {
  EVP_PKEY *skey, *ckey;
  X509 *scert, *ccert;
};

static int setup_ids(void **state) {
  struct ids *ids = calloc(1, sizeof(*ids));
  if (ids == NULL || aln_tls_identity_generate(&ids->skey, &ids->scert, "aileron-enclave", 1) != ALN_OK ||
      aln_tls_identity_generate(&ids->ckey, &ids->ccert, "aileron-host", 1) != ALN_OK)
    return -1;
  /* a refused handshake writes its alert to a peer that may have hung up already;
   * the programs ignore SIGPIPE too */
  signal(SIGPIPE, SIG_IGN);
  *state = ids;
  return 0;
}

static int teardown_ids(void **state) {
  struct ids *ids = *state;
  EVP_PKEY_free(ids->skey);
  EVP_PKEY_free(ids->ckey);
  X509_free(ids->scert);
  X509_free(ids->ccert);
  free(ids);
  return 0;
}

/* ---- identities and key hashes ---- */

static void test_identity_generate(void **state) {
  (void)state;
  EVP_PKEY *key = NULL, *key2 = NULL;
  X509 *cert = NULL, *cert2 = NULL;
  assert_int_equal(aln_tls_identity_generate(&key, &cert, "enclave.test", 30), ALN_OK);
  assert_int_equal(aln_tls_identity_generate(&key2, &cert2, "enclave.test", 30), ALN_OK);

  /* a P-256 key */
  assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  char group[32];
  size_t group_len = 0;
  assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len), 1);
  assert_string_equal(group, "prime256v1");
  assert_int_equal(EVP_PKEY_get_bits(key), 256);

  /* self-signed by that key, and only that key */
  assert_int_equal(X509_check_private_key(cert, key), 1);
  assert_int_equal(X509_verify(cert, key), 1);
  assert_int_equal(X509_verify(cert, key2), 0);
  ERR_clear_error();
  assert_int_equal(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
  assert_int_equal(X509_get_version(cert), X509_VERSION_3);
  assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
  char cn[64];
  assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)), 12);
  assert_string_equal(cn, "enclave.test");

  /* valid now, and for |days| from now */
  time_t now = time(NULL);
  assert_true(X509_cmp_time(X509_get0_notBefore(cert), &now) < 0);
  int day = 0, sec = 0;
  assert_int_equal(ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(cert)), 1);
  long left = (long)day * 86400 + sec;
  assert_true(left > 30L * 86400 - 60 && left <= 30L * 86400);

  /* fresh per call: another key, another serial */
  assert_int_equal(EVP_PKEY_eq(key, key2), 0);
  const ASN1_INTEGER *s1 = X509_get0_serialNumber(cert), *s2 = X509_get0_serialNumber(cert2);
  assert_int_not_equal(ASN1_INTEGER_cmp(s1, s2), 0);
  BIGNUM *bn = ASN1_INTEGER_to_BN(s1, NULL);
  assert_non_null(bn);
  assert_false(BN_is_negative(bn));
  assert_false(BN_is_zero(bn));
  BN_free(bn);

  EVP_PKEY_free(key);
  EVP_PKEY_free(key2);
  X509_free(cert);
  X509_free(cert2);
}

/* sha256_spki hashes the SubjectPublicKeyInfo bytes exactly as the certificate
 * carries them (its X509_PUBKEY re-encoded), independently of tls.c's code path. */
static void sha256_cert_spki(uint8_t out[32], X509 *cert) {
  unsigned char *der = NULL;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  assert_true(len > 0);
  unsigned int md_len = 0;
  assert_int_equal(EVP_Digest(der, (size_t)len, out, &md_len, EVP_sha256(), NULL), 1);
  assert_int_equal(md_len, 32);
  OPENSSL_free(der);
}

static void sha256_pubkey(uint8_t out[32], EVP_PKEY *key) {
  unsigned char *der = NULL;
  int len = i2d_PUBKEY(key, &der);
  assert_true(len > 0);
  unsigned int md_len = 0;
  assert_int_equal(EVP_Digest(der, (size_t)len, out, &md_len, EVP_sha256(), NULL), 1);
  OPENSSL_free(der);
}

static void test_spki_hash(void **state) {
  struct ids *ids = *state;
  uint8_t from_cert[ALN_SPKI_HASH_LEN], from_key[ALN_SPKI_HASH_LEN], want[32], want2[32], other[ALN_SPKI_HASH_LEN];
  assert_int_equal(aln_tls_cert_spki_hash(from_cert, ids->scert), ALN_OK);
  assert_int_equal(aln_tls_pubkey_spki_hash(from_key, ids->skey), ALN_OK);
  sha256_pubkey(want, ids->skey);
  sha256_cert_spki(want2, ids->scert);
  assert_memory_equal(want, want2, 32);
  assert_memory_equal(from_cert, want, 32);
  assert_memory_equal(from_key, want, 32);
  assert_int_equal(aln_tls_cert_spki_hash(other, ids->ccert), ALN_OK);
  assert_memory_not_equal(other, from_cert, ALN_SPKI_HASH_LEN);

  /* a certificate without a key */
  X509 *empty = X509_new();
  assert_non_null(empty);
  memset(other, 0xAA, sizeof(other));
  assert_int_equal(aln_tls_cert_spki_hash(other, empty), ALN_ERR_MALFORMED);
  for (size_t i = 0; i < sizeof(other); i++)
    assert_int_equal(other[i], 0xAA);
  X509_free(empty);
  ERR_clear_error();
}

/* ---- PEM files ---- */

static void tmp_path(char *out, size_t cap, const char *dir, const char *name) {
  int n = snprintf(out, cap, "%s/%s", dir, name);
  assert_true(n > 0 && (size_t)n < cap);
}

static void write_bytes(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *path, size_t *out_len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char *buf = calloc(1, 8192);
  assert_non_null(buf);
  *out_len = fread(buf, 1, 8191, f);
  fclose(f);
  return buf;
}

static void write_pem(const char *path, int (*emit)(FILE *, void *), void *obj) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(emit(f, obj), 1);
  assert_int_equal(fclose(f), 0);
}

static int emit_cert(FILE *f, void *obj) {
  return PEM_write_X509(f, obj);
}
static int emit_pubkey(FILE *f, void *obj) {
  return PEM_write_PUBKEY(f, obj);
}
static int emit_privkey(FILE *f, void *obj) {
  return PEM_write_PrivateKey(f, obj, NULL, NULL, 0, NULL, NULL);
}

/* load_refused expects |path| to be refused with |want|, leaving |out| untouched. */
static void load_refused(const char *path, aln_status want) {
  uint8_t out[ALN_SPKI_HASH_LEN];
  memset(out, 0xAA, sizeof(out));
  aln_status st = aln_tls_load_pem_spki_hash(out, path);
  if (st != want)
    fail_msg("%s: got %s want %s", path, aln_status_name(st), aln_status_name(want));
  for (size_t i = 0; i < sizeof(out); i++)
    assert_int_equal(out[i], 0xAA);
}

static void test_load_pem(void **state) {
  struct ids *ids = *state;
  char dir[] = "/tmp/aln_tls_test.XXXXXX";
  assert_non_null(mkdtemp(dir));
  static const char *const names[] = {"host.crt",    "host.pub", "host.key", "garbage",
                                      "bad_b64.crt", "empty",    "cut.crt",  "missing"};
  enum { CERT, PUB, PRIV, GARBAGE, BAD_B64, EMPTY, CUT, MISSING, NUM_FILES };
  char path[NUM_FILES][128];
  for (int i = 0; i < NUM_FILES; i++)
    tmp_path(path[i], sizeof(path[i]), dir, names[i]);

  write_pem(path[CERT], emit_cert, ids->ccert);
  write_pem(path[PUB], emit_pubkey, ids->ckey);
  /* a private key made here, never committed */
  write_pem(path[PRIV], emit_privkey, ids->ckey);
  static const uint8_t garbage[] = {0x30, 0x82, 0x01, 0x0a, 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, '\n'};
  write_bytes(path[GARBAGE], garbage, sizeof(garbage));
  static const char bad_b64[] = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
  write_bytes(path[BAD_B64], bad_b64, sizeof(bad_b64) - 1);
  write_bytes(path[EMPTY], "", 0);
  size_t cert_len = 0;
  char *pem = read_all(path[CERT], &cert_len);
  write_bytes(path[CUT], pem, cert_len / 2); /* half the body, no END line */
  free(pem);

  uint8_t want[32], got_cert[ALN_SPKI_HASH_LEN], got_pub[ALN_SPKI_HASH_LEN];
  sha256_pubkey(want, ids->ckey);
  assert_int_equal(aln_tls_load_pem_spki_hash(got_cert, path[CERT]), ALN_OK);
  assert_int_equal(aln_tls_load_pem_spki_hash(got_pub, path[PUB]), ALN_OK);
  assert_memory_equal(got_cert, want, 32);
  assert_memory_equal(got_pub, want, 32);

  load_refused(path[GARBAGE], ALN_ERR_MALFORMED);
  load_refused(path[BAD_B64], ALN_ERR_MALFORMED);
  load_refused(path[EMPTY], ALN_ERR_MALFORMED);
  load_refused(path[PRIV], ALN_ERR_MALFORMED); /* a private key is neither a cert nor a public key */
  load_refused(path[CUT], ALN_ERR_MALFORMED);
  load_refused(path[MISSING], ALN_ERR_IO);
  ERR_clear_error();

  for (int i = 0; i < MISSING; i++)
    assert_int_equal(unlink(path[i]), 0);
  assert_int_equal(rmdir(dir), 0);
}

/* Every failure path of aln_tls_load_pem_spki_hash but the missing file clears the
 * OpenSSL error queue. SSL_get_error is only reliable when the thread's queue was
 * empty before the SSL call, so an entry left here is later taken as the cause of
 * an unrelated TLS failure on this thread (proto/channel.c maps it to a status).
 * The missing-file path must clear the queue like the others. */
static void test_load_pem_leaves_no_error(void **state) {
  (void)state;
  uint8_t out[ALN_SPKI_HASH_LEN];
  ERR_clear_error();
  assert_int_equal(aln_tls_load_pem_spki_hash(out, "/nonexistent/aln_tls_test/host.crt"), ALN_ERR_IO);
  unsigned long leftover = ERR_peek_error();
  ERR_clear_error();
  assert_int_equal(leftover, 0);
}

/* ---- handshakes ---- */

struct pair {
  SSL *server, *client;
  int fds[2];
  int server_ok, client_ok;
  int server_reason, client_reason; /* ERR_GET_REASON of each end's first error, if it failed */
};

static void *accept_main(void *arg) {
  struct pair *p = arg;
  p->server_ok = SSL_accept(p->server) == 1;
  if (!p->server_ok) {
    p->server_reason = ERR_GET_REASON(ERR_peek_error());
    shutdown(p->fds[0], SHUT_RDWR); /* unblock the client */
  }
  ERR_clear_error();
  return NULL;
}

/* pair_open runs a handshake between |sctx| (in a thread) and |cctx| over a
 * socketpair; |session|, if set, is offered by the client for resumption. */
static void pair_open(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *session) {
  memset(p, 0, sizeof(*p));
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fds), 0);
  struct timeval tv = {.tv_sec = 10}; /* a hung peer fails the test instead of hanging it */
  for (int i = 0; i < 2; i++)
    assert_int_equal(setsockopt(p->fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  p->server = SSL_new(sctx);
  p->client = SSL_new(cctx);
  assert_non_null(p->server);
  assert_non_null(p->client);
  assert_int_equal(SSL_set_fd(p->server, p->fds[0]), 1);
  assert_int_equal(SSL_set_fd(p->client, p->fds[1]), 1);
  if (session != NULL)
    assert_int_equal(SSL_set_session(p->client, session), 1);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, accept_main, p), 0);
  p->client_ok = SSL_connect(p->client) == 1;
  if (!p->client_ok) {
    p->client_reason = ERR_GET_REASON(ERR_peek_error());
    shutdown(p->fds[1], SHUT_RDWR);
  }
  ERR_clear_error();
  assert_int_equal(pthread_join(th, NULL), 0);
}

static void pair_close(struct pair *p) {
  SSL_free(p->server);
  SSL_free(p->client);
  close(p->fds[0]);
  close(p->fds[1]);
}

static SSL_CTX *plain_ctx(const SSL_METHOD *method, int max_version, EVP_PKEY *key, X509 *cert) {
  SSL_CTX *ctx = SSL_CTX_new(method);
  assert_non_null(ctx);
  assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
  if (cert != NULL) {
    assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
  }
  return ctx;
}

static void test_handshake_and_exporter(void **state) {
  struct ids *ids = *state;
  SSL_CTX *sctx = NULL, *cctx = NULL;
  assert_int_equal(aln_tls_server_ctx_new(&sctx, ids->skey, ids->scert), ALN_OK);
  assert_int_equal(aln_tls_client_ctx_new(&cctx, ids->ckey, ids->ccert), ALN_OK);

  struct pair a, b;
  pair_open(&a, sctx, cctx, NULL);
  assert_true(a.server_ok);
  assert_true(a.client_ok);
  assert_int_equal(SSL_version(a.server), TLS1_3_VERSION);
  assert_int_equal(SSL_version(a.client), TLS1_3_VERSION);

  uint8_t es[ALN_EXPORTER_LEN], ec[ALN_EXPORTER_LEN], zero[ALN_EXPORTER_LEN] = {0};
  assert_int_equal(aln_tls_exporter(es, a.server), ALN_OK);
  assert_int_equal(aln_tls_exporter(ec, a.client), ALN_OK);
  assert_memory_equal(es, ec, ALN_EXPORTER_LEN);
  assert_memory_not_equal(es, zero, ALN_EXPORTER_LEN);
  /* the documented label, empty context (what the attestation verifier recomputes) */
  uint8_t direct[ALN_EXPORTER_LEN];
  static const char label[] = "EXPORTER-aileron-attest";
  assert_int_equal(SSL_export_keying_material(a.client, direct, sizeof(direct), label, strlen(label), NULL, 0, 0), 1);
  assert_memory_equal(direct, ec, ALN_EXPORTER_LEN);

  /* Same keys, same contexts, another connection: another exporter. Evidence bound
   * to one connection's exporter is worthless on any other. */
  pair_open(&b, sctx, cctx, NULL);
  assert_true(b.server_ok && b.client_ok);
  uint8_t es2[ALN_EXPORTER_LEN], ec2[ALN_EXPORTER_LEN];
  assert_int_equal(aln_tls_exporter(es2, b.server), ALN_OK);
  assert_int_equal(aln_tls_exporter(ec2, b.client), ALN_OK);
  assert_memory_equal(es2, ec2, ALN_EXPORTER_LEN);
  assert_memory_not_equal(es2, es, ALN_EXPORTER_LEN);

  /* each end hashes the other's key */
  uint8_t peer[ALN_SPKI_HASH_LEN], want[32];
  assert_int_equal(aln_tls_peer_spki_hash(peer, a.server), ALN_OK);
  sha256_pubkey(want, ids->ckey);
  assert_memory_equal(peer, want, 32);
  assert_int_equal(aln_tls_peer_spki_hash(peer, a.client), ALN_OK);
  sha256_pubkey(want, ids->skey);
  assert_memory_equal(peer, want, 32);

  pair_close(&a);
  pair_close(&b);

  /* before a handshake there is neither a peer nor an exporter */
  SSL *fresh = SSL_new(cctx);
  assert_non_null(fresh);
  assert_int_equal(aln_tls_peer_spki_hash(peer, fresh), ALN_ERR_NOT_ENROLLED);
  assert_int_equal(aln_tls_exporter(es, fresh), ALN_ERR_TLS);
  SSL_free(fresh);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
  ERR_clear_error();
}

/* A client that cannot speak TLS 1.3 is refused by the server for its version, and
 * the client offers nothing a 1.2-only server could accept. The old peers are plain
 * OpenSSL contexts with the same keys: capping the aln client context itself at 1.2
 * (also checked) fails locally, min 1.3 > max 1.2, before the server is involved. */
static void test_tls12_refused(void **state) {
  struct ids *ids = *state;
  SSL_CTX *sctx = NULL, *cctx = NULL;
  assert_int_equal(aln_tls_server_ctx_new(&sctx, ids->skey, ids->scert), ALN_OK);
  assert_int_equal(aln_tls_client_ctx_new(&cctx, ids->ckey, ids->ccert), ALN_OK);
  SSL_CTX *old_client = plain_ctx(TLS_client_method(), TLS1_2_VERSION, ids->ckey, ids->ccert);
  SSL_CTX *old_server = plain_ctx(TLS_server_method(), TLS1_2_VERSION, ids->skey, ids->scert);

  struct pair p;
  pair_open(&p, sctx, old_client, NULL);
  assert_false(p.server_ok);
  assert_false(p.client_ok);
  assert_int_equal(p.server_reason, SSL_R_UNSUPPORTED_PROTOCOL);
  pair_close(&p);

  pair_open(&p, old_server, cctx, NULL);
  assert_false(p.client_ok);
  assert_false(p.server_ok);
  /* the aln client offers nothing below 1.3, so the 1.2 server finds no common version */
  assert_int_equal(p.server_reason, SSL_R_UNSUPPORTED_PROTOCOL);
  assert_int_equal(p.client_reason, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
  pair_close(&p);

  /* the aln client context capped at 1.2 has no version left to offer */
  SSL_CTX *capped = NULL;
  assert_int_equal(aln_tls_client_ctx_new(&capped, ids->ckey, ids->ccert), ALN_OK);
  assert_int_equal(SSL_CTX_set_max_proto_version(capped, TLS1_2_VERSION), 1);
  pair_open(&p, sctx, capped, NULL);
  assert_false(p.client_ok);
  assert_false(p.server_ok);
  assert_int_equal(p.client_reason, SSL_R_NO_PROTOCOLS_AVAILABLE);
  pair_close(&p);
  SSL_CTX_free(capped);

  /* control: the same plain client, allowed 1.3, completes */
  assert_int_equal(SSL_CTX_set_max_proto_version(old_client, TLS1_3_VERSION), 1);
  pair_open(&p, sctx, old_client, NULL);
  assert_true(p.server_ok && p.client_ok);
  pair_close(&p);

  SSL_CTX_free(old_client);
  SSL_CTX_free(old_server);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

static void test_client_cert_required(void **state) {
  struct ids *ids = *state;
  SSL_CTX *sctx = NULL;
  assert_int_equal(aln_tls_server_ctx_new(&sctx, ids->skey, ids->scert), ALN_OK);
  SSL_CTX *anon = plain_ctx(TLS_client_method(), TLS1_3_VERSION, NULL, NULL);

  struct pair p;
  pair_open(&p, sctx, anon, NULL);
  assert_false(p.server_ok);
  assert_int_equal(p.server_reason, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
  /* In TLS 1.3 the client finishes its side first; it learns of the refusal from
   * the server's alert on its first read, and never gets application data. */
  char c;
  assert_true(SSL_read(p.client, &c, 1) <= 0);
  ERR_clear_error();
  pair_close(&p);

  /* control: the same plain client with a certificate is accepted */
  SSL_CTX *with_cert = plain_ctx(TLS_client_method(), TLS1_3_VERSION, ids->ckey, ids->ccert);
  pair_open(&p, sctx, with_cert, NULL);
  assert_true(p.server_ok && p.client_ok);
  pair_close(&p);

  SSL_CTX_free(with_cert);
  SSL_CTX_free(anon);
  SSL_CTX_free(sctx);
}

/* A connection whose handshake failed has no authenticated peer, so there is
 * nothing to bind evidence to. In TLS 1.3 the server derives the exporter secret
 * before it checks the client's certificate, and SSL_export_keying_material does
 * not look at handshake state: aln_tls_exporter must refuse an SSL that has not
 * finished its handshake, as it does one that never started. */
static void test_exporter_needs_finished_handshake(void **state) {
  struct ids *ids = *state;
  SSL_CTX *sctx = NULL;
  assert_int_equal(aln_tls_server_ctx_new(&sctx, ids->skey, ids->scert), ALN_OK);
  SSL_CTX *anon = plain_ctx(TLS_client_method(), TLS1_3_VERSION, NULL, NULL);
  struct pair p;
  pair_open(&p, sctx, anon, NULL);
  assert_false(p.server_ok);
  assert_int_equal(SSL_version(p.server), TLS1_3_VERSION);
  assert_false(SSL_is_init_finished(p.server));
  uint8_t out[ALN_EXPORTER_LEN];
  aln_status st = aln_tls_exporter(out, p.server);
  ERR_clear_error();
  pair_close(&p);
  SSL_CTX_free(anon);
  SSL_CTX_free(sctx);
  assert_int_equal(st, ALN_ERR_TLS);
}

/* resumption_probe does a handshake, reads one byte (so the client processes any
 * NewSessionTicket the server sent after the handshake), then offers the client's
 * session on a second connection. It reports whether the first session became
 * resumable and whether the second handshake resumed it. */
static void resumption_probe(SSL_CTX *sctx, SSL_CTX *cctx, int *resumable, int *reused) {
  struct pair p;
  pair_open(&p, sctx, cctx, NULL);
  assert_true(p.server_ok && p.client_ok);
  assert_int_equal(SSL_write(p.server, "x", 1), 1);
  char c = 0;
  assert_int_equal(SSL_read(p.client, &c, 1), 1);
  assert_int_equal(c, 'x');
  SSL_SESSION *sess = SSL_get1_session(p.client);
  assert_non_null(sess);
  *resumable = SSL_SESSION_is_resumable(sess);
  /* close cleanly: freeing an SSL that sent no close_notify marks its session
   * non-resumable, which would make the control below pass for the wrong reason */
  assert_true(SSL_shutdown(p.client) >= 0);
  assert_true(SSL_shutdown(p.server) >= 0);
  pair_close(&p);

  pair_open(&p, sctx, cctx, sess);
  assert_true(p.server_ok && p.client_ok);
  *reused = SSL_session_reused(p.client) || SSL_session_reused(p.server);
  pair_close(&p);
  SSL_SESSION_free(sess);
}

/* No session tickets: the client's session never becomes resumable, and offering it
 * again gets a full handshake (hence a fresh exporter and fresh evidence). The
 * control, a default OpenSSL server with the same client, issues tickets and
 * resumes, so this probe does see resumption when it happens. */
static void test_no_resumption(void **state) {
  struct ids *ids = *state;
  SSL_CTX *sctx = NULL, *cctx = NULL;
  assert_int_equal(aln_tls_server_ctx_new(&sctx, ids->skey, ids->scert), ALN_OK);
  assert_int_equal(aln_tls_client_ctx_new(&cctx, ids->ckey, ids->ccert), ALN_OK);
  int resumable = -1, reused = -1;
  resumption_probe(sctx, cctx, &resumable, &reused);
  assert_int_equal(resumable, 0);
  assert_int_equal(reused, 0);

  SSL_CTX *ticketing = plain_ctx(TLS_server_method(), TLS1_3_VERSION, ids->skey, ids->scert);
  resumption_probe(ticketing, cctx, &resumable, &reused);
  assert_int_equal(resumable, 1);
  assert_int_equal(reused, 1);

  SSL_CTX_free(ticketing);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

/* The exporter is only defined for TLS 1.3 here: on a TLS 1.2 connection, where
 * OpenSSL would happily export (RFC 5705), aln_tls_exporter refuses. */
static void test_exporter_refuses_tls12(void **state) {
  struct ids *ids = *state;
  SSL_CTX *sctx = plain_ctx(TLS_server_method(), TLS1_2_VERSION, ids->skey, ids->scert);
  SSL_CTX *cctx = plain_ctx(TLS_client_method(), TLS1_2_VERSION, NULL, NULL);
  struct pair p;
  pair_open(&p, sctx, cctx, NULL);
  assert_true(p.server_ok && p.client_ok);
  assert_int_equal(SSL_version(p.client), TLS1_2_VERSION);
  uint8_t out[ALN_EXPORTER_LEN], raw[ALN_EXPORTER_LEN];
  assert_int_equal(SSL_export_keying_material(p.client, raw, sizeof(raw), "x", 1, NULL, 0, 0), 1);
  memset(out, 0xAA, sizeof(out));
  assert_int_equal(aln_tls_exporter(out, p.client), ALN_ERR_TLS);
  assert_int_equal(aln_tls_exporter(out, p.server), ALN_ERR_TLS);
  for (size_t i = 0; i < sizeof(out); i++)
    assert_int_equal(out[i], 0xAA);
  pair_close(&p);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identity_generate),
      cmocka_unit_test(test_spki_hash),
      cmocka_unit_test(test_load_pem),
      cmocka_unit_test(test_load_pem_leaves_no_error),
      cmocka_unit_test(test_handshake_and_exporter),
      cmocka_unit_test(test_tls12_refused),
      cmocka_unit_test(test_client_cert_required),
      cmocka_unit_test(test_exporter_needs_finished_handshake),
      cmocka_unit_test(test_no_resumption),
      cmocka_unit_test(test_exporter_refuses_tls12),
  };
  return cmocka_run_group_tests(tests, setup_ids, teardown_ids);
}
