/* KEK recovery export and import. Export runs on the machine holding the KEK and
 * needs only the operator's public key; import runs on the new machine with the
 * operator's private key, which is read from a path outside the data dir and
 * never written anywhere. The OAEP label binds the ciphertext to this purpose, so
 * an RSA ciphertext made for anything else under the same operator key does not
 * import as a KEK. */
#include "enclave/recovery.h"

#include <errno.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/cbs.h"
#include "proto/keyfile.h"
#include "proto/tls.h"

#define CHECK_INFO "aileron-kek-check"

static void say(const char *msg) {
  fprintf(stderr, "aileron-enclave: kek: %s\n", msg);
}

/* ---- file codec ---------------------------------------------------------------- */

aln_status aln_recovery_encode(uint8_t **out, size_t *out_len, const struct aln_recovery_file *f) {
  struct aln_cbb cbb = {0};
  uint8_t *buf = NULL;
  size_t buf_len = 0;
  aln_status st = ALN_ERR_INTERNAL;

  ALN_ENSURE(out != NULL && out_len != NULL && f != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *out_len = 0;
  ALN_ENSURE(f->ct != NULL && f->ct_len >= ALN_RECOVERY_CT_MIN && f->ct_len <= ALN_RECOVERY_CT_MAX, ALN_ERR_USAGE);
  ALN_GUARD_GOTO(st, aln_cbb_init(&cbb, 1024, ALN_RECOVERY_FILE_MAX), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_bytes(&cbb, (const uint8_t *)ALN_RECOVERY_MAGIC, ALN_RECOVERY_MAGIC_LEN), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, f->key_hash, sizeof(f->key_hash)), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, f->ct, f->ct_len), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, f->check, sizeof(f->check)), out);
  ALN_GUARD_GOTO(st, aln_cbb_finish(&cbb, &buf, &buf_len), out);
  /* A plain malloc'd copy, so the caller frees with free(). */
  ALN_ENSURE_GOTO(st, (*out = malloc(buf_len)) != NULL, ALN_ERR_NOMEM, out);
  memcpy(*out, buf, buf_len);
  *out_len = buf_len;
  st = ALN_OK;
out:
  aln_cbb_buf_free(buf, buf_len);
  aln_cbb_cleanup(&cbb);
  return st;
}

aln_status aln_recovery_decode(struct aln_recovery_file *out, const uint8_t *data, size_t len) {
  struct aln_cbs cbs, magic, hash, ct, check;
  ALN_ENSURE(out != NULL && (data != NULL || len == 0), ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(len <= ALN_RECOVERY_FILE_MAX, ALN_ERR_TOO_LARGE);
  aln_cbs_init(&cbs, data, len);
  ALN_GUARD(aln_cbs_get_bytes(&cbs, &magic, ALN_RECOVERY_MAGIC_LEN));
  ALN_ENSURE(memcmp(magic.p, ALN_RECOVERY_MAGIC, ALN_RECOVERY_MAGIC_LEN) == 0, ALN_ERR_MALFORMED);
  ALN_GUARD(aln_cbs_get_u32_prefixed(&cbs, &hash));
  ALN_ENSURE(hash.len == ALN_RECOVERY_HASH_LEN, ALN_ERR_MALFORMED);
  ALN_GUARD(aln_cbs_get_u32_prefixed(&cbs, &ct));
  ALN_ENSURE(ct.len >= ALN_RECOVERY_CT_MIN && ct.len <= ALN_RECOVERY_CT_MAX, ALN_ERR_MALFORMED);
  ALN_GUARD(aln_cbs_get_u32_prefixed(&cbs, &check));
  ALN_ENSURE(check.len == ALN_RECOVERY_CHECK_LEN, ALN_ERR_MALFORMED);
  ALN_GUARD(aln_cbs_ensure_empty(&cbs));
  memcpy(out->key_hash, hash.p, hash.len);
  out->ct = ct.p;
  out->ct_len = ct.len;
  memcpy(out->check, check.p, check.len);
  return ALN_OK;
}

/* ---- wrapping ------------------------------------------------------------------ */

/* key_ok returns 1 if |key| is an RSA key of an accepted size. */
static int key_ok(EVP_PKEY *key) {
  if (key == NULL || !EVP_PKEY_is_a(key, "RSA"))
    return 0;
  int bits = EVP_PKEY_get_bits(key);
  return bits >= ALN_RECOVERY_RSA_MIN_BITS && bits <= ALN_RECOVERY_RSA_MAX_BITS;
}

/* oaep_ctx makes a context for RSA-OAEP(SHA-256, MGF1-SHA-256, our label) with
 * |key|, set up for encryption or decryption. */
static EVP_PKEY_CTX *oaep_ctx(EVP_PKEY *key, int encrypt) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, OSSL_PKEY_RSA_PAD_MODE_OAEP, 0),
      OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, "SHA256", 0),
      OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, "SHA256", 0),
      OSSL_PARAM_construct_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, (void *)ALN_RECOVERY_LABEL,
                                        sizeof(ALN_RECOVERY_LABEL) - 1),
      OSSL_PARAM_construct_end(),
  };
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
  if (ctx == NULL)
    return NULL;
  int ok = encrypt ? EVP_PKEY_encrypt_init_ex(ctx, params) : EVP_PKEY_decrypt_init_ex(ctx, params);
  if (ok != 1) {
    EVP_PKEY_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* check_value writes HMAC-SHA256(kek, CHECK_INFO) into |out|. */
static aln_status check_value(uint8_t out[ALN_RECOVERY_CHECK_LEN], const struct aln_secret *kek) {
  unsigned int len = 0;
  ALN_ENSURE(HMAC(EVP_sha256(), kek->p, (int)kek->len, (const uint8_t *)CHECK_INFO, sizeof(CHECK_INFO) - 1, out,
                  &len) != NULL &&
                 len == ALN_RECOVERY_CHECK_LEN,
             ALN_ERR_CRYPTO);
  return ALN_OK;
}

aln_status aln_recovery_wrap(uint8_t **out, size_t *out_len, const struct aln_secret *kek, EVP_PKEY *operator_key) {
  struct aln_recovery_file f;
  EVP_PKEY_CTX *ctx = NULL;
  uint8_t *ct = NULL;
  size_t ct_len = 0;
  aln_status st = ALN_ERR_CRYPTO;

  ALN_ENSURE(out != NULL && out_len != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *out_len = 0;
  ALN_ENSURE(kek != NULL && kek->p != NULL && kek->len == ALN_KEK_LEN && key_ok(operator_key), ALN_ERR_USAGE);
  memset(&f, 0, sizeof(f));
  ALN_GUARD_GOTO(st, aln_tls_pubkey_spki_hash(f.key_hash, operator_key), out);
  ALN_GUARD_GOTO(st, check_value(f.check, kek), out);
  st = ALN_ERR_CRYPTO;
  if ((ctx = oaep_ctx(operator_key, 1)) == NULL || EVP_PKEY_encrypt(ctx, NULL, &ct_len, kek->p, kek->len) != 1)
    goto out;
  ALN_ENSURE_GOTO(st, (ct = malloc(ct_len)) != NULL, ALN_ERR_NOMEM, out);
  if (EVP_PKEY_encrypt(ctx, ct, &ct_len, kek->p, kek->len) != 1)
    goto out;
  f.ct = ct;
  f.ct_len = ct_len;
  ALN_GUARD_GOTO(st, aln_recovery_encode(out, out_len, &f), out);
  st = ALN_OK;
out:
  EVP_PKEY_CTX_free(ctx);
  free(ct);
  return st;
}

aln_status aln_recovery_unwrap(struct aln_secret *kek, const uint8_t *data, size_t len, EVP_PKEY *operator_key) {
  struct aln_recovery_file f;
  struct aln_secret pt = {0};
  uint8_t hash[ALN_RECOVERY_HASH_LEN], check[ALN_RECOVERY_CHECK_LEN];
  EVP_PKEY_CTX *ctx = NULL;
  size_t pt_len = 0;
  aln_status st = ALN_ERR_CRYPTO;

  ALN_ENSURE(kek != NULL, ALN_ERR_USAGE);
  memset(kek, 0, sizeof(*kek));
  ALN_ENSURE(key_ok(operator_key), ALN_ERR_USAGE);
  ALN_GUARD(aln_recovery_decode(&f, data, len));
  ALN_GUARD(aln_tls_pubkey_spki_hash(hash, operator_key));
  /* Key hashes are public: a plain compare is fine. */
  ALN_ENSURE(memcmp(hash, f.key_hash, sizeof(hash)) == 0, ALN_ERR_DENIED);

  if ((ctx = oaep_ctx(operator_key, 0)) == NULL || EVP_PKEY_decrypt(ctx, NULL, &pt_len, f.ct, f.ct_len) != 1)
    goto out;
  /* OpenSSL writes the OAEP output into our buffer: locked, wiped on free. */
  ALN_GUARD_GOTO(st, aln_secret_new(&pt, pt_len), out);
  if (EVP_PKEY_decrypt(ctx, pt.p, &pt_len, f.ct, f.ct_len) != 1 || pt_len != ALN_KEK_LEN) {
    st = ALN_ERR_TAMPERED; /* right key, wrong ciphertext: modified or not ours */
    goto out;
  }
  pt.len = pt_len; /* aln_secret_free still wipes the whole allocation */
  ALN_GUARD_GOTO(st, check_value(check, &pt), out);
  ALN_ENSURE_GOTO(st, aln_ct_equal(check, sizeof(check), f.check, sizeof(f.check)), ALN_ERR_TAMPERED, out);
  ALN_GUARD_GOTO(st, aln_secret_from(kek, pt.p, ALN_KEK_LEN), out);
  st = ALN_OK;
out:
  EVP_PKEY_CTX_free(ctx);
  aln_secret_free(&pt);
  aln_wipe(check, sizeof(check));
  return st;
}

/* ---- files and providers ------------------------------------------------------- */

/* kek_path writes the path of |prov|'s KEK file in |data_dir| to |out|; refuses a
 * provider whose KEK does not live in the data dir (|verb| names the command). */
static aln_status kek_path(char out[PATH_MAX], const struct aln_provider *prov, const char *data_dir,
                           const char *verb) {
  if (prov == NULL || prov->kek_file == NULL || prov->kek_install == NULL) {
    fprintf(stderr, "aileron-enclave: kek: this TEE provider has no recovery %s\n", verb);
    return ALN_ERR_USAGE;
  }
  return aln_path_join(out, data_dir, prov->kek_file, NULL);
}

/* load_key reads a PEM public key (|priv| 0) or private key (|priv| 1). An
 * encrypted private key makes OpenSSL ask for its passphrase on the terminal. */
static aln_status load_key(EVP_PKEY **out, const char *path, int priv) {
  BIO *bio = BIO_new_file(path, "r");
  if (bio == NULL) {
    fprintf(stderr, "aileron-enclave: kek: cannot open the operator key '%.200s'\n", path);
    return ALN_ERR_IO;
  }
  *out = priv ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
  BIO_free(bio);
  if (*out == NULL) {
    fprintf(stderr, "aileron-enclave: kek: '%.200s' is not a PEM %s key\n", path, priv ? "private" : "public");
    return ALN_ERR_USAGE;
  }
  if (!key_ok(*out)) {
    EVP_PKEY_free(*out);
    *out = NULL;
    say("the operator key must be RSA of 3072 to 16384 bits");
    return ALN_ERR_USAGE;
  }
  return ALN_OK;
}

/* inside returns 1 if |path| resolves to a file inside directory |dir|. */
static int inside(const char *path, const char *dir) {
  char rp[PATH_MAX], rd[PATH_MAX];
  if (realpath(path, rp) == NULL || realpath(dir, rd) == NULL)
    return 0;
  size_t n = strlen(rd);
  return strncmp(rp, rd, n) == 0 && (rp[n] == '/' || rd[n - 1] == '/');
}

aln_status aln_recovery_export(const struct aln_provider *prov, const char *data_dir, const char *pubkey_path,
                               const char *out_path) {
  char path[PATH_MAX];
  struct stat sb;
  struct aln_secret kek = {0};
  EVP_PKEY *key = NULL;
  uint8_t *file = NULL;
  size_t file_len = 0;
  aln_status st = ALN_ERR_INTERNAL;

  ALN_ENSURE(data_dir != NULL && pubkey_path != NULL && out_path != NULL, ALN_ERR_USAGE);
  ALN_GUARD(kek_path(path, prov, data_dir, "export"));
  const char *name = prov->kek_file;
  /* Loading would make a new KEK on a fresh data dir: exporting that is useless. */
  if (stat(path, &sb) != 0) {
    fprintf(stderr, "aileron-enclave: kek: no %s in the data dir: start the enclave once before exporting\n", name);
    return ALN_ERR_NOT_FOUND;
  }
  ALN_GUARD_GOTO(st, load_key(&key, pubkey_path, 0), out);
  ALN_GUARD_GOTO(st, prov->kek_load(&kek, data_dir), out);
  ALN_GUARD_GOTO(st, aln_recovery_wrap(&file, &file_len, &kek, key), out);
  st = aln_keyfile_write_new(out_path, file, file_len);
  if (st == ALN_ERR_EXISTS)
    fprintf(stderr, "aileron-enclave: kek: '%.200s' exists; it is never overwritten\n", out_path);
out:
  aln_secret_free(&kek);
  EVP_PKEY_free(key);
  free(file);
  return st;
}

aln_status aln_recovery_import(const struct aln_provider *prov, const char *data_dir, const char *file_path,
                               const char *privkey_path) {
  char path[PATH_MAX];
  struct stat sb;
  struct aln_secret kek = {0};
  EVP_PKEY *key = NULL;
  uint8_t *file = NULL;
  size_t file_len = 0;
  aln_status st = ALN_ERR_INTERNAL;

  ALN_ENSURE(data_dir != NULL && file_path != NULL && privkey_path != NULL, ALN_ERR_USAGE);
  ALN_GUARD(kek_path(path, prov, data_dir, "import"));
  const char *name = prov->kek_file;
  /* Checked before the passphrase prompt; the O_EXCL create is the real guard. */
  if (lstat(path, &sb) == 0) {
    fprintf(stderr,
            "aileron-enclave: kek: the data dir already has a %s; move it away first if you mean to replace it "
            "(the escrow it opens would be lost)\n",
            name);
    return ALN_ERR_EXISTS;
  }
  if (inside(privkey_path, data_dir)) {
    say("the operator's private key must not be kept in the enclave's data dir");
    return ALN_ERR_USAGE;
  }
  st = aln_file_read_public(&file, &file_len, file_path, ALN_RECOVERY_FILE_MAX);
  if (st != ALN_OK) {
    fprintf(stderr, "aileron-enclave: kek: cannot read the recovery file '%.200s'\n", file_path);
    goto out;
  }
  ALN_GUARD_GOTO(st, load_key(&key, privkey_path, 1), out);
  st = aln_recovery_unwrap(&kek, file, file_len, key);
  if (st == ALN_ERR_DENIED)
    say("the recovery file was made for another operator key");
  else if (st == ALN_ERR_TAMPERED)
    say("the recovery file does not decrypt to the KEK it was made from (modified?)");
  else if (st != ALN_OK)
    say("the recovery file is not valid");
  if (st != ALN_OK)
    goto out;
  ALN_GUARD_GOTO(st, aln_private_dir_ensure(data_dir), out);
  st = prov->kek_install(&kek, data_dir, prov->kek_file);
  if (st == ALN_ERR_EXISTS)
    fprintf(stderr, "aileron-enclave: kek: the data dir already has a %s; move it away first\n", name);
out:
  aln_secret_free(&kek);
  EVP_PKEY_free(key);
  free(file);
  return st;
}
