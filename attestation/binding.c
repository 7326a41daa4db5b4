/* The channel binding both ends compute: it ties evidence to one TLS connection
 * (through the exporter), one attestation request (through the host nonce) and the
 * signing key the evidence vouches for. */
#include "attestation/binding.h"

#include <openssl/evp.h>

/* The domain separator has no terminating NUL in the hash input: 17 bytes. */
static const char aln_binding_label[] = "aileron-attest-v1";

aln_status aln_binding_compute(uint8_t out[ALN_BINDING_LEN], const uint8_t *host_nonce, size_t nonce_len,
                               const uint8_t exporter[ALN_EXPORTER_LEN], const uint8_t *sign_pub, size_t sign_pub_len) {
  ALN_ENSURE(out != NULL && exporter != NULL, ALN_ERR_USAGE);
  /* The fields are concatenated without length prefixes, so the two fixed-size
   * fields must really be fixed-size for the encoding to stay unambiguous. */
  ALN_ENSURE(host_nonce != NULL && nonce_len == ALN_HOST_NONCE_LEN, ALN_ERR_USAGE);
  ALN_ENSURE(sign_pub != NULL && sign_pub_len > 0, ALN_ERR_USAGE);

  aln_status st = ALN_ERR_CRYPTO;
  unsigned int md_len = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  ALN_ENSURE_GOTO(st, ctx != NULL, ALN_ERR_NOMEM, out);
  if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
      EVP_DigestUpdate(ctx, aln_binding_label, sizeof(aln_binding_label) - 1) != 1 ||
      EVP_DigestUpdate(ctx, host_nonce, nonce_len) != 1 || EVP_DigestUpdate(ctx, exporter, ALN_EXPORTER_LEN) != 1 ||
      EVP_DigestUpdate(ctx, sign_pub, sign_pub_len) != 1 || EVP_DigestFinal_ex(ctx, out, &md_len) != 1 ||
      md_len != ALN_BINDING_LEN)
    goto out;
  st = ALN_OK;
out:
  EVP_MD_CTX_free(ctx);
  return st;
}
