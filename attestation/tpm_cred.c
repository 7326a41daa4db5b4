/* AK enrollment, verifier side: TPM 2.0's key derivation functions, the EK
 * certificate check, and TPM2_MakeCredential done in software (TPM 2.0 Part 1 §24
 * and Part 3 §12.6). The credential is protected exactly as the TPM would protect
 * it, so the TPM holding the EK's private key can open it with
 * TPM2_ActivateCredential, and only for the object whose name it was made for:
 *
 *   seed          a fresh secret the size of the EK's nameAlg digest, sent as
 *                 |secret|: RSA-OAEP(EK, label "IDENTITY") of the seed, or for an
 *                 ECC EK an ephemeral public point, the seed being
 *                 KDFe(Z, "IDENTITY", ephemeral.x, EK.x)
 *   symKey        KDFa(seed, "STORAGE", name, -, 128 bits)
 *   encIdentity   AES-128-CFB(symKey, IV 0, TPM2B_DIGEST(credential))
 *   HMACkey       KDFa(seed, "INTEGRITY", -, -, 256 bits)
 *   blob          TPM2B_DIGEST(HMAC-SHA-256(HMACkey, encIdentity || name)) || encIdentity */
#include "attestation/tpm_cred.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#define SHA256_LEN 32
#define AES128_LEN 16
#define P256_LEN 32
#define P384_LEN 48
#define RSA_EK_BITS 2048
#define RSA_DEFAULT_EXPONENT 65537

static void put_be32(uint8_t out[4], uint32_t v) {
  out[0] = (uint8_t)(v >> 24);
  out[1] = (uint8_t)(v >> 16);
  out[2] = (uint8_t)(v >> 8);
  out[3] = (uint8_t)v;
}

/* ---- KDFa and KDFe ----------------------------------------------------------- */

aln_status aln_tpm_kdfa(uint8_t *out, size_t out_len, const uint8_t *key, size_t key_len, const char *label,
                        const uint8_t *u, size_t u_len, const uint8_t *v, size_t v_len) {
  ALN_ENSURE(out != NULL && out_len > 0 && out_len <= UINT32_MAX / 8 && key != NULL && label != NULL, ALN_ERR_USAGE);
  ALN_ENSURE((u != NULL || u_len == 0) && (v != NULL || v_len == 0), ALN_ERR_USAGE);
  aln_status st = ALN_ERR_CRYPTO;
  uint8_t block[SHA256_LEN], counter[4], bits[4];
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_END};
  put_be32(bits, (uint32_t)(out_len * 8));
  if (ctx == NULL)
    goto out;
  for (uint32_t i = 1, done = 0; done < out_len; i++) {
    size_t n = 0;
    put_be32(counter, i);
    /* The label's NUL is the SP800-108 separator between label and context. */
    if (EVP_MAC_init(ctx, key, key_len, params) != 1 || EVP_MAC_update(ctx, counter, 4) != 1 ||
        EVP_MAC_update(ctx, (const uint8_t *)label, strlen(label) + 1) != 1 ||
        (u_len > 0 && EVP_MAC_update(ctx, u, u_len) != 1) || (v_len > 0 && EVP_MAC_update(ctx, v, v_len) != 1) ||
        EVP_MAC_update(ctx, bits, 4) != 1 || EVP_MAC_final(ctx, block, &n, sizeof(block)) != 1 || n != SHA256_LEN)
      goto out;
    size_t take = out_len - done < SHA256_LEN ? out_len - done : SHA256_LEN;
    memcpy(out + done, block, take);
    done += (uint32_t)take;
  }
  st = ALN_OK;
out:
  OPENSSL_cleanse(block, sizeof(block));
  if (st != ALN_OK)
    OPENSSL_cleanse(out, out_len);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  ERR_clear_error();
  return st;
}

aln_status aln_tpm_kdfe(uint8_t *out, size_t out_len, const uint8_t *z, size_t z_len, const char *label,
                        const uint8_t *u, size_t u_len, const uint8_t *v, size_t v_len) {
  ALN_ENSURE(out != NULL && out_len > 0 && z != NULL && z_len > 0 && label != NULL, ALN_ERR_USAGE);
  ALN_ENSURE((u != NULL || u_len == 0) && (v != NULL || v_len == 0), ALN_ERR_USAGE);
  aln_status st = ALN_ERR_CRYPTO;
  uint8_t block[SHA256_LEN], counter[4];
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (md == NULL)
    goto out;
  for (uint32_t i = 1, done = 0; done < out_len; i++) {
    put_be32(counter, i);
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(md, counter, 4) != 1 ||
        EVP_DigestUpdate(md, z, z_len) != 1 || EVP_DigestUpdate(md, label, strlen(label) + 1) != 1 ||
        (u_len > 0 && EVP_DigestUpdate(md, u, u_len) != 1) || (v_len > 0 && EVP_DigestUpdate(md, v, v_len) != 1) ||
        EVP_DigestFinal_ex(md, block, NULL) != 1)
      goto out;
    size_t take = out_len - done < SHA256_LEN ? out_len - done : SHA256_LEN;
    memcpy(out + done, block, take);
    done += (uint32_t)take;
  }
  st = ALN_OK;
out:
  OPENSSL_cleanse(block, sizeof(block));
  if (st != ALN_OK)
    OPENSSL_cleanse(out, out_len);
  EVP_MD_CTX_free(md);
  return st;
}

/* ---- TPM public areas as OpenSSL keys ------------------------------------------ */

static aln_status rsa_to_pkey(EVP_PKEY **out, const TPMT_PUBLIC *t) {
  const TPMS_RSA_PARMS *r = &t->parameters.rsaDetail;
  ALN_ENSURE(t->unique.rsa.size > 0 && t->unique.rsa.size == r->keyBits / 8, ALN_ERR_USAGE);
  aln_status st = ALN_ERR_USAGE;
  BIGNUM *n = BN_bin2bn(t->unique.rsa.buffer, t->unique.rsa.size, NULL);
  BIGNUM *e = BN_new();
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
  /* An exponent of 0 means the default, 2^16 + 1. */
  if (n == NULL || e == NULL || bld == NULL || ctx == NULL ||
      BN_set_word(e, r->exponent == 0 ? RSA_DEFAULT_EXPONENT : r->exponent) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
      EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
    goto out;
  st = ALN_OK;
out:
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  EVP_PKEY_CTX_free(ctx);
  BN_free(n);
  BN_free(e);
  return st;
}

static aln_status ecc_to_pkey(EVP_PKEY **out, const TPMT_PUBLIC *t) {
  const char *group;
  size_t flen;
  switch (t->parameters.eccDetail.curveID) {
  case TPM2_ECC_NIST_P256:
    group = "P-256";
    flen = P256_LEN;
    break;
  case TPM2_ECC_NIST_P384:
    group = "P-384";
    flen = P384_LEN;
    break;
  default:
    return ALN_ERR_USAGE;
  }
  const TPM2B_ECC_PARAMETER *x = &t->unique.ecc.x, *y = &t->unique.ecc.y;
  ALN_ENSURE(x->size > 0 && x->size <= flen && y->size > 0 && y->size <= flen, ALN_ERR_USAGE);
  /* SEC1 uncompressed point; a TPM may send coordinates without leading zeros. */
  uint8_t point[1 + 2 * P384_LEN] = {0x04};
  memcpy(point + 1 + flen - x->size, x->buffer, x->size);
  memcpy(point + 1 + 2 * flen - y->size, y->buffer, y->size);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0),
                         OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * flen),
                         OSSL_PARAM_END};
  aln_status st = ALN_ERR_USAGE;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  EVP_PKEY_CTX *check = NULL;
  if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
    goto out;
  /* Never compute with a point that is not on the curve. */
  check = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
  if (check == NULL || EVP_PKEY_public_check(check) != 1) {
    EVP_PKEY_free(*out);
    *out = NULL;
    goto out;
  }
  st = ALN_OK;
out:
  EVP_PKEY_CTX_free(check);
  EVP_PKEY_CTX_free(ctx);
  return st;
}

aln_status aln_tpm_public_to_pkey(EVP_PKEY **out, const TPM2B_PUBLIC *pub) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  *out = NULL;
  ALN_ENSURE(pub != NULL, ALN_ERR_USAGE);
  aln_status st = ALN_ERR_USAGE;
  if (pub->publicArea.type == TPM2_ALG_RSA)
    st = rsa_to_pkey(out, &pub->publicArea);
  else if (pub->publicArea.type == TPM2_ALG_ECC)
    st = ecc_to_pkey(out, &pub->publicArea);
  ERR_clear_error();
  return st;
}

/* ---- EK certificates ----------------------------------------------------------- */

/* pem_certs_load reads every certificate of the PEM bundle |pem| into |out|. */
static aln_status pem_certs_load(STACK_OF(X509) * out, const char *pem) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  X509 *c;
  size_t n = 0;
  ALN_ENSURE(bio != NULL, ALN_ERR_NOMEM);
  while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    if (!sk_X509_push(out, c)) {
      X509_free(c);
      BIO_free(bio);
      return ALN_ERR_NOMEM;
    }
    n++;
  }
  BIO_free(bio);
  /* The loop ends at the first thing that is not a certificate: it must be the end. */
  unsigned long e = ERR_peek_last_error();
  int clean_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  return n > 0 && clean_end ? ALN_OK : ALN_ERR_USAGE;
}

/* ek_key_ok returns 1 for the EK types this module can make credentials for. */
static int ek_key_ok(EVP_PKEY *k) {
  char group[16] = "";
  size_t glen = 0;
  if (EVP_PKEY_is_a(k, "RSA"))
    return EVP_PKEY_get_bits(k) == RSA_EK_BITS;
  return EVP_PKEY_is_a(k, "EC") &&
         EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen) == 1 &&
         strcmp(group, "prime256v1") == 0;
}

static int has_ek_eku(X509 *cert) {
  EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
  ASN1_OBJECT *want = OBJ_txt2obj(ALN_TPM_EK_CERT_EKU, 1);
  int found = 0;
  for (int i = 0; eku != NULL && want != NULL && i < sk_ASN1_OBJECT_num(eku) && !found; i++)
    found = OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0;
  ASN1_OBJECT_free(want);
  EXTENDED_KEY_USAGE_free(eku);
  return found;
}

aln_status aln_tpm_ek_cert_verify(EVP_PKEY **ek, struct aln_refusal *why, const uint8_t *der, size_t der_len,
                                  const char *roots_pem, const char *intermediates_pem, int64_t now) {
  X509 *cert = NULL;
  X509_STORE *store = NULL;
  X509_STORE_CTX *ctx = NULL;
  STACK_OF(X509) *roots = NULL, *inter = NULL;
  EVP_PKEY *key = NULL;
  aln_status st = ALN_ERR_NOMEM;

  if (ek != NULL)
    *ek = NULL;
  if (why != NULL)
    memset(why, 0, sizeof(*why));
  if (der == NULL || roots_pem == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "EK certificate check called with missing arguments");
  if (der_len == 0 || der_len > ALN_TPM_EK_CERT_MAX)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "EK certificate is empty or larger than %d bytes",
                      ALN_TPM_EK_CERT_MAX);
  const uint8_t *p = der;
  cert = d2i_X509(NULL, &p, (long)der_len);
  if (cert == NULL || p != der + der_len) {
    st = aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "EK certificate is not exactly one DER certificate");
    goto out;
  }
  roots = sk_X509_new_null();
  inter = sk_X509_new_null();
  store = X509_STORE_new();
  ctx = X509_STORE_CTX_new();
  if (roots == NULL || inter == NULL || store == NULL || ctx == NULL)
    goto out;
  if (pem_certs_load(roots, roots_pem) != ALN_OK ||
      (intermediates_pem != NULL && pem_certs_load(inter, intermediates_pem) != ALN_OK)) {
    st = aln_refuse(why, ALN_ERR_USAGE, "the manufacturer CA or intermediate bundle is not PEM certificates");
    goto out;
  }
  for (int i = 0; i < sk_X509_num(roots); i++)
    if (X509_STORE_add_cert(store, sk_X509_value(roots, i)) != 1)
      goto out;
  if (X509_STORE_CTX_init(ctx, store, cert, inter) != 1)
    goto out;
  X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_time(vp, (time_t)now);
  /* The policy's CAs are the anchors, whether a root or the manufacturer's issuing
   * CA: a chain need not go on to a self-signed certificate. */
  X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx) != 1) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "EK certificate does not chain to a manufacturer CA of the policy: %s",
                    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    goto out;
  }
  if (X509_check_ca(cert) != 0) {
    st = aln_refuse(why, ALN_ERR_ATTEST_POLICY, "EK certificate is a CA certificate");
    goto out;
  }
  if ((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) && !has_ek_eku(cert)) {
    st = aln_refuse(why, ALN_ERR_ATTEST_POLICY,
                    "EK certificate's extended key usage lacks the TCG EK certificate "
                    "purpose");
    goto out;
  }
  key = X509_get_pubkey(cert);
  if (key == NULL || !ek_key_ok(key)) {
    st = aln_refuse(why, ALN_ERR_ATTEST_POLICY, "EK certificate's key is neither RSA 2048 nor ECC P-256");
    goto out;
  }
  if (ek != NULL) {
    *ek = key;
    key = NULL;
  }
  st = ALN_OK;
out:
  if (st == ALN_ERR_NOMEM)
    aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
  ERR_clear_error();
  EVP_PKEY_free(key);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  sk_X509_pop_free(roots, X509_free);
  sk_X509_pop_free(inter, X509_free);
  X509_free(cert);
  return st;
}

/* ---- MakeCredential ---------------------------------------------------------------- */

/* seed_rsa makes a fresh seed and encrypts it to the RSA EK |ek| with OAEP
 * (SHA-256, the EK's nameAlg) under the label "IDENTITY" and its NUL. */
static aln_status seed_rsa(uint8_t seed[SHA256_LEN], TPM2B_ENCRYPTED_SECRET *secret, EVP_PKEY *ek) {
  static const char label[] = "IDENTITY";
  aln_status st = ALN_ERR_CRYPTO;
  size_t out_len = sizeof(secret->secret);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ek, NULL);
  unsigned char *l = OPENSSL_memdup(label, sizeof(label));
  if (ctx == NULL || l == NULL || RAND_priv_bytes(seed, SHA256_LEN) != 1 || EVP_PKEY_encrypt_init(ctx) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, sizeof(label)) != 1)
    goto out;
  l = NULL; /* owned by ctx now */
  if (EVP_PKEY_encrypt(ctx, secret->secret, &out_len, seed, SHA256_LEN) != 1)
    goto out;
  secret->size = (UINT16)out_len;
  st = ALN_OK;
out:
  OPENSSL_free(l);
  EVP_PKEY_CTX_free(ctx);
  return st;
}

/* point_xy copies the affine coordinates of the P-256 key |k| into |x| and |y|. */
static aln_status point_xy(EVP_PKEY *k, uint8_t x[P256_LEN], uint8_t y[P256_LEN]) {
  uint8_t point[1 + 2 * P256_LEN];
  size_t len = 0;
  ALN_ENSURE(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point), &len) == 1 &&
                 len == sizeof(point) && point[0] == 0x04,
             ALN_ERR_CRYPTO);
  memcpy(x, point + 1, P256_LEN);
  memcpy(y, point + 1 + P256_LEN, P256_LEN);
  return ALN_OK;
}

/* seed_ecc runs an ephemeral ECDH with the P-256 EK |ek|: the seed is
 * KDFe(Z, "IDENTITY", ephemeral.x, EK.x) and |secret| carries the ephemeral point
 * as a marshalled TPMS_ECC_POINT. */
static aln_status seed_ecc(uint8_t seed[SHA256_LEN], TPM2B_ENCRYPTED_SECRET *secret, EVP_PKEY *ek) {
  aln_status st = ALN_ERR_CRYPTO;
  EVP_PKEY *eph = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  uint8_t z[P256_LEN], ek_x[P256_LEN], ek_y[P256_LEN];
  size_t z_len = sizeof(z), off = 0;
  TPMS_ECC_POINT q = {.x.size = P256_LEN, .y.size = P256_LEN};

  eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (eph == NULL || point_xy(eph, q.x.buffer, q.y.buffer) != ALN_OK || point_xy(ek, ek_x, ek_y) != ALN_OK)
    goto out;
  ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
  /* OpenSSL's ECDH output is the x coordinate of the shared point: Z. */
  if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, ek) != 1 ||
      EVP_PKEY_derive(ctx, z, &z_len) != 1 || z_len != sizeof(z))
    goto out;
  ALN_GUARD_GOTO(st, aln_tpm_kdfe(seed, SHA256_LEN, z, z_len, "IDENTITY", q.x.buffer, P256_LEN, ek_x, P256_LEN), out);
  st = ALN_ERR_CRYPTO;
  if (Tss2_MU_TPMS_ECC_POINT_Marshal(&q, secret->secret, sizeof(secret->secret), &off) != TSS2_RC_SUCCESS)
    goto out;
  secret->size = (UINT16)off;
  st = ALN_OK;
out:
  OPENSSL_cleanse(z, sizeof(z));
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(eph);
  return st;
}

/* credential_wrap encrypts the marshalled credential and MACs it with the name. */
static aln_status credential_wrap(TPM2B_ID_OBJECT *blob, const uint8_t seed[SHA256_LEN], const TPM2B_NAME *name,
                                  const uint8_t *credential, size_t credential_len) {
  static const uint8_t zero_iv[AES128_LEN] = {0};
  uint8_t sym_key[AES128_LEN], hmac_key[SHA256_LEN], plain[2 + ALN_TPM_CREDENTIAL_MAX];
  uint8_t *hmac_out = blob->credential + 2, *enc = blob->credential + 2 + SHA256_LEN;
  size_t plain_len = 2 + credential_len, mac_len = 0;
  int n = 0, fin = 0;
  aln_status st = ALN_ERR_CRYPTO;
  EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *mctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_END};

  /* The plaintext is the credential as a TPM2B_DIGEST: its size, then its bytes. */
  plain[0] = (uint8_t)(credential_len >> 8);
  plain[1] = (uint8_t)credential_len;
  memcpy(plain + 2, credential, credential_len);
  if (cctx == NULL || mctx == NULL)
    goto out;
  ALN_GUARD_GOTO(
      st, aln_tpm_kdfa(sym_key, sizeof(sym_key), seed, SHA256_LEN, "STORAGE", name->name, name->size, NULL, 0), out);
  ALN_GUARD_GOTO(st, aln_tpm_kdfa(hmac_key, sizeof(hmac_key), seed, SHA256_LEN, "INTEGRITY", NULL, 0, NULL, 0), out);
  st = ALN_ERR_CRYPTO;
  if (EVP_EncryptInit_ex(cctx, EVP_aes_128_cfb128(), NULL, sym_key, zero_iv) != 1 ||
      EVP_EncryptUpdate(cctx, enc, &n, plain, (int)plain_len) != 1 || EVP_EncryptFinal_ex(cctx, enc + n, &fin) != 1 ||
      (size_t)(n + fin) != plain_len)
    goto out;
  if (EVP_MAC_init(mctx, hmac_key, sizeof(hmac_key), params) != 1 || EVP_MAC_update(mctx, enc, plain_len) != 1 ||
      EVP_MAC_update(mctx, name->name, name->size) != 1 || EVP_MAC_final(mctx, hmac_out, &mac_len, SHA256_LEN) != 1 ||
      mac_len != SHA256_LEN)
    goto out;
  blob->credential[0] = 0;
  blob->credential[1] = SHA256_LEN;
  blob->size = (UINT16)(2 + SHA256_LEN + plain_len);
  st = ALN_OK;
out:
  OPENSSL_cleanse(sym_key, sizeof(sym_key));
  OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
  OPENSSL_cleanse(plain, sizeof(plain));
  EVP_CIPHER_CTX_free(cctx);
  EVP_MAC_CTX_free(mctx);
  EVP_MAC_free(mac);
  return st;
}

aln_status aln_tpm_make_credential(TPM2B_ID_OBJECT *blob, TPM2B_ENCRYPTED_SECRET *secret, EVP_PKEY *ek,
                                   const TPM2B_NAME *ak_name, const uint8_t *credential, size_t credential_len) {
  ALN_ENSURE(blob != NULL && secret != NULL, ALN_ERR_USAGE);
  memset(blob, 0, sizeof(*blob));
  memset(secret, 0, sizeof(*secret));
  ALN_ENSURE(ek != NULL && ak_name != NULL && credential != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(credential_len > 0 && credential_len <= ALN_TPM_CREDENTIAL_MAX, ALN_ERR_USAGE);
  /* A name is an algorithm id and a digest: the TPM compares it with the object's. */
  ALN_ENSURE(ak_name->size > 2 && ak_name->size <= sizeof(ak_name->name), ALN_ERR_USAGE);
  ALN_ENSURE(ek_key_ok(ek), ALN_ERR_USAGE);

  uint8_t seed[SHA256_LEN];
  aln_status st = EVP_PKEY_is_a(ek, "RSA") ? seed_rsa(seed, secret, ek) : seed_ecc(seed, secret, ek);
  if (st == ALN_OK)
    st = credential_wrap(blob, seed, ak_name, credential, credential_len);
  OPENSSL_cleanse(seed, sizeof(seed));
  if (st != ALN_OK) {
    memset(blob, 0, sizeof(*blob));
    memset(secret, 0, sizeof(*secret));
  }
  ERR_clear_error();
  return st;
}
