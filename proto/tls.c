/* TLS 1.3 contexts and identities for the attested channel (see tls.h). */
#include "proto/tls.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

aln_status aln_tls_identity_generate(EVP_PKEY **out_key, X509 **out_cert, const char *cn, int days) {
  aln_status st = ALN_ERR_CRYPTO;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  X509_NAME *name = NULL;
  uint8_t serial[16];

  key = EVP_EC_gen("P-256");
  ALN_ENSURE_GOTO(st, key != NULL, ALN_ERR_CRYPTO, out);
  cert = X509_new();
  ALN_ENSURE_GOTO(st, cert != NULL, ALN_ERR_NOMEM, out);
  ALN_ENSURE_GOTO(st, RAND_bytes(serial, sizeof(serial)) == 1, ALN_ERR_CRYPTO, out);
  serial[0] &= 0x7f; /* positive */
  BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
  ALN_ENSURE_GOTO(st, bn != NULL, ALN_ERR_NOMEM, out);
  int ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
  BN_free(bn);
  ALN_ENSURE_GOTO(st, ok, ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, X509_set_version(cert, 2) == 1, ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, X509_gmtime_adj(X509_getm_notBefore(cert), -300) != NULL, ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400) != NULL, ALN_ERR_CRYPTO, out);
  name = X509_get_subject_name(cert);
  ALN_ENSURE_GOTO(st, X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) == 1,
                  ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, X509_set_issuer_name(cert, name) == 1, ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, X509_set_pubkey(cert, key) == 1, ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, X509_sign(cert, key, EVP_sha256()) > 0, ALN_ERR_CRYPTO, out);

  *out_key = key;
  *out_cert = cert;
  key = NULL;
  cert = NULL;
  st = ALN_OK;
out:
  EVP_PKEY_free(key);
  X509_free(cert);
  return st;
}

/* Accept any client certificate at the TLS layer: the key is checked against the
 * enrolled list after the handshake, so an unenrolled host can still ask Health. */
static int accept_any_cert(int preverify_ok, X509_STORE_CTX *ctx) {
  (void)preverify_ok;
  (void)ctx;
  return 1;
}

static aln_status ctx_new(SSL_CTX **out, const SSL_METHOD *method, EVP_PKEY *key, X509 *cert, int verify_mode) {
  aln_status st = ALN_ERR_TLS;
  SSL_CTX *ctx = SSL_CTX_new(method);
  ALN_ENSURE_GOTO(st, ctx != NULL, ALN_ERR_NOMEM, out);
  ALN_ENSURE_GOTO(st, SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1, ALN_ERR_TLS, out);
  ALN_ENSURE_GOTO(st, SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1, ALN_ERR_TLS, out);
  ALN_ENSURE_GOTO(st, SSL_CTX_use_certificate(ctx, cert) == 1, ALN_ERR_TLS, out);
  ALN_ENSURE_GOTO(st, SSL_CTX_use_PrivateKey(ctx, key) == 1, ALN_ERR_TLS, out);
  ALN_ENSURE_GOTO(st, SSL_CTX_check_private_key(ctx) == 1, ALN_ERR_TLS, out);
  /* No session resumption: every connection gets a full handshake and a fresh
   * exporter, so evidence can never be replayed onto a resumed session. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_verify(ctx, verify_mode, accept_any_cert);
  *out = ctx;
  ctx = NULL;
  st = ALN_OK;
out:
  SSL_CTX_free(ctx);
  return st;
}

aln_status aln_tls_server_ctx_new(SSL_CTX **out, EVP_PKEY *key, X509 *cert) {
  return ctx_new(out, TLS_server_method(), key, cert, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
}

aln_status aln_tls_client_ctx_new(SSL_CTX **out, EVP_PKEY *key, X509 *cert) {
  return ctx_new(out, TLS_client_method(), key, cert, SSL_VERIFY_PEER);
}

aln_status aln_tls_pubkey_spki_hash(uint8_t out[ALN_SPKI_HASH_LEN], EVP_PKEY *key) {
  unsigned char *der = NULL;
  int len = i2d_PUBKEY(key, &der);
  ALN_ENSURE(len > 0, ALN_ERR_CRYPTO);
  SHA256(der, (size_t)len, out);
  OPENSSL_free(der);
  return ALN_OK;
}

aln_status aln_tls_cert_spki_hash(uint8_t out[ALN_SPKI_HASH_LEN], X509 *cert) {
  EVP_PKEY *key = X509_get0_pubkey(cert);
  ALN_ENSURE(key != NULL, ALN_ERR_MALFORMED);
  return aln_tls_pubkey_spki_hash(out, key);
}

aln_status aln_tls_peer_spki_hash(uint8_t out[ALN_SPKI_HASH_LEN], SSL *ssl) {
  X509 *peer = SSL_get1_peer_certificate(ssl);
  ALN_ENSURE(peer != NULL, ALN_ERR_NOT_ENROLLED);
  aln_status st = aln_tls_cert_spki_hash(out, peer);
  X509_free(peer);
  return st;
}

aln_status aln_tls_exporter(uint8_t out[ALN_EXPORTER_LEN], SSL *ssl) {
  /* TLS 1.3 can export before the handshake is done (before the client's
   * certificate is checked): only a finished handshake may bind evidence. */
  ALN_ENSURE(SSL_version(ssl) == TLS1_3_VERSION && SSL_is_init_finished(ssl), ALN_ERR_TLS);
  ALN_ENSURE(SSL_export_keying_material(ssl, out, ALN_EXPORTER_LEN, ALN_EXPORTER_LABEL, strlen(ALN_EXPORTER_LABEL),
                                        NULL, 0, 0) == 1,
             ALN_ERR_TLS);
  return ALN_OK;
}

aln_status aln_tls_load_pem_spki_hash(uint8_t out[ALN_SPKI_HASH_LEN], const char *path) {
  aln_status st = ALN_ERR_MALFORMED;
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  BIO *bio = BIO_new_file(path, "r");
  if (bio == NULL) {
    ERR_clear_error();
    return ALN_ERR_IO;
  }
  cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  if (cert != NULL) {
    st = aln_tls_cert_spki_hash(out, cert);
    goto out;
  }
  ERR_clear_error();
  ALN_ENSURE_GOTO(st, BIO_reset(bio) == 0, ALN_ERR_IO, out);
  key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
  ALN_ENSURE_GOTO(st, key != NULL, ALN_ERR_MALFORMED, out);
  st = aln_tls_pubkey_spki_hash(out, key);
out:
  ERR_clear_error();
  X509_free(cert);
  EVP_PKEY_free(key);
  BIO_free(bio);
  return st;
}
