/* TLS 1.3 plumbing shared by both ends of the attested channel: ephemeral
 * identities, server and client contexts, the peer's key hash used for enrollment,
 * and the keying-material exporter the channel binding is computed from.
 * Trust in the enclave does not come from its certificate (it is self-signed and
 * made at start) but from evidence bound to the exporter; trust in a host comes
 * from its enrolled key. So neither context verifies a chain. */
#ifndef ALN_PROTO_TLS_H
#define ALN_PROTO_TLS_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>

#include "proto/status.h"

#define ALN_SPKI_HASH_LEN 32
#define ALN_EXPORTER_LEN 32
#define ALN_EXPORTER_LABEL "EXPORTER-aileron-attest"

/* aln_tls_identity_generate makes a fresh P-256 key and a self-signed certificate
 * with common name |cn| valid for |days| days. The caller frees both. */
aln_status aln_tls_identity_generate(EVP_PKEY **out_key, X509 **out_cert, const char *cn, int days) ALN_WUR;

/* aln_tls_server_ctx_new returns a TLS 1.3-only server context serving |key|/|cert|
 * that requires a client certificate (any key: enrollment is checked after the
 * handshake with aln_tls_peer_spki_hash). Caller frees with SSL_CTX_free. */
aln_status aln_tls_server_ctx_new(SSL_CTX **out, EVP_PKEY *key, X509 *cert) ALN_WUR;

/* aln_tls_client_ctx_new returns a TLS 1.3-only client context presenting
 * |key|/|cert|. The server certificate is not chain-verified here: the caller must
 * attest the connection before trusting it. Caller frees with SSL_CTX_free. */
aln_status aln_tls_client_ctx_new(SSL_CTX **out, EVP_PKEY *key, X509 *cert) ALN_WUR;

/* aln_tls_cert_spki_hash writes SHA-256 of the DER SubjectPublicKeyInfo of |cert|. */
aln_status aln_tls_cert_spki_hash(uint8_t out[ALN_SPKI_HASH_LEN], X509 *cert) ALN_WUR;

/* aln_tls_pubkey_spki_hash writes SHA-256 of the DER SubjectPublicKeyInfo of |key|. */
aln_status aln_tls_pubkey_spki_hash(uint8_t out[ALN_SPKI_HASH_LEN], EVP_PKEY *key) ALN_WUR;

/* aln_tls_peer_spki_hash hashes the key of the peer's certificate on |ssl|;
 * ALN_ERR_NOT_ENROLLED if the peer presented none. */
aln_status aln_tls_peer_spki_hash(uint8_t out[ALN_SPKI_HASH_LEN], SSL *ssl) ALN_WUR;

/* aln_tls_exporter writes the 32-byte exporter value for label
 * "EXPORTER-aileron-attest" with an empty context. */
aln_status aln_tls_exporter(uint8_t out[ALN_EXPORTER_LEN], SSL *ssl) ALN_WUR;

/* aln_tls_load_pem_spki_hash reads a PEM file holding a certificate or a public key
 * and writes the SHA-256 of its SubjectPublicKeyInfo. ALN_ERR_MALFORMED if neither. */
aln_status aln_tls_load_pem_spki_hash(uint8_t out[ALN_SPKI_HASH_LEN], const char *path) ALN_WUR;

#endif
