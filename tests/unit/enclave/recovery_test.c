/* Tests for enclave/recovery: the ALNKREC1 codec (round trip, wrong magic, every
 * truncation, trailing bytes, each field at wrong lengths, the size cap), wrapping
 * (the file names the operator key, carries an independently computed check value
 * and a modulus-sized ciphertext; unwrap gives back the KEK), refusals (RSA-2048 and
 * non-RSA keys, the wrong private key, a wrong key hash, a modified check value or
 * ciphertext, a ciphertext under another OAEP label or of another length), and the
 * file-level export and import for the local provider (0600 file, never
 * overwritten, the imported KEK equals the original, an existing KEK never
 * replaced, nothing installed on refusal, the private key refused inside the data
 * dir), plus aln_tpm_kek_install refusing an existing kek.tpm before any TPM use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "enclave/provider.h"
#include "enclave/provider_tpm.h"
#include "enclave/recovery.h"
#include "proto/tls.h"

static EVP_PKEY *op_key, *other_key, *small_key, *ec_key;

static int group_setup(void **state) {
  (void)state;
  op_key = EVP_RSA_gen(3072);
  other_key = EVP_RSA_gen(3072);
  small_key = EVP_RSA_gen(2048);
  ec_key = EVP_EC_gen("P-256");
  return op_key && other_key && small_key && ec_key ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(op_key);
  EVP_PKEY_free(other_key);
  EVP_PKEY_free(small_key);
  EVP_PKEY_free(ec_key);
  return 0;
}

static struct aln_secret new_kek(void) {
  struct aln_secret k = {0};
  assert_int_equal(aln_secret_new(&k, ALN_KEK_LEN), ALN_OK);
  assert_int_equal(RAND_bytes(k.p, ALN_KEK_LEN), 1);
  return k;
}

/* ---- codec --------------------------------------------------------------------- */

/* build writes a file from parts with the given field lengths into |out|. */
static size_t build(uint8_t *out, const char *magic, size_t hash_len, size_t ct_len, size_t check_len) {
  size_t n = 0;
  const size_t lens[3] = {hash_len, ct_len, check_len};
  memcpy(out, magic, ALN_RECOVERY_MAGIC_LEN);
  n += ALN_RECOVERY_MAGIC_LEN;
  for (int i = 0; i < 3; i++) {
    out[n++] = (uint8_t)(lens[i] >> 24);
    out[n++] = (uint8_t)(lens[i] >> 16);
    out[n++] = (uint8_t)(lens[i] >> 8);
    out[n++] = (uint8_t)lens[i];
    memset(out + n, 0x41 + i, lens[i]);
    n += lens[i];
  }
  return n;
}

static void test_codec_round_trip(void **state) {
  (void)state;
  uint8_t ct[ALN_RECOVERY_CT_MIN];
  for (size_t i = 0; i < sizeof(ct); i++)
    ct[i] = (uint8_t)i;
  struct aln_recovery_file f = {.ct = ct, .ct_len = sizeof(ct)};
  memset(f.key_hash, 0xaa, sizeof(f.key_hash));
  memset(f.check, 0xcc, sizeof(f.check));
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  assert_int_equal(aln_recovery_encode(&enc, &enc_len, &f), ALN_OK);
  assert_int_equal(enc_len, 8 + 3 * 4 + 32 + sizeof(ct) + 32);
  assert_memory_equal(enc, "ALNKREC1\0\0\0\x20", 12);

  struct aln_recovery_file d;
  assert_int_equal(aln_recovery_decode(&d, enc, enc_len), ALN_OK);
  assert_memory_equal(d.key_hash, f.key_hash, 32);
  assert_memory_equal(d.check, f.check, 32);
  assert_int_equal(d.ct_len, sizeof(ct));
  assert_memory_equal(d.ct, ct, sizeof(ct));
  assert_true(d.ct >= enc && d.ct + d.ct_len <= enc + enc_len);

  /* Every proper prefix is truncated, never accepted. */
  for (size_t n = 0; n < enc_len; n++)
    assert_int_equal(aln_recovery_decode(&d, enc, n), ALN_ERR_TRUNCATED);
  /* One trailing byte. */
  uint8_t *longer = malloc(enc_len + 1);
  assert_non_null(longer);
  memcpy(longer, enc, enc_len);
  longer[enc_len] = 0;
  assert_int_equal(aln_recovery_decode(&d, longer, enc_len + 1), ALN_ERR_TRAILING);
  /* Every byte of the magic matters, the version digit included. */
  for (size_t i = 0; i < ALN_RECOVERY_MAGIC_LEN; i++) {
    memcpy(longer, enc, enc_len);
    longer[i] ^= 0x01;
    assert_int_equal(aln_recovery_decode(&d, longer, enc_len), ALN_ERR_MALFORMED);
  }
  free(longer);
  free(enc);
}

static void test_codec_field_lengths(void **state) {
  (void)state;
  static uint8_t buf[ALN_RECOVERY_FILE_MAX + 64];
  struct aln_recovery_file d;
  const char *m = ALN_RECOVERY_MAGIC;
  /* Boundaries that are valid. */
  size_t n = build(buf, m, 32, ALN_RECOVERY_CT_MIN, 32);
  assert_int_equal(aln_recovery_decode(&d, buf, n), ALN_OK);
  n = build(buf, m, 32, ALN_RECOVERY_CT_MAX, 32);
  assert_int_equal(n, ALN_RECOVERY_FILE_MAX);
  assert_int_equal(aln_recovery_decode(&d, buf, n), ALN_OK);
  assert_int_equal(d.ct_len, ALN_RECOVERY_CT_MAX);
  /* Each field one byte short or long, or empty. */
  const size_t bad[][3] = {{31, 384, 32}, {33, 384, 32}, {0, 384, 32},  {32, 383, 32},
                           {32, 0, 32},   {32, 384, 31}, {32, 384, 33}, {32, 384, 0}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    n = build(buf, m, bad[i][0], bad[i][1], bad[i][2]);
    assert_int_equal(aln_recovery_decode(&d, buf, n), ALN_ERR_MALFORMED);
  }
  n = build(buf, "ALNKREC2", 32, 384, 32);
  assert_int_equal(aln_recovery_decode(&d, buf, n), ALN_ERR_MALFORMED);
  n = build(buf, "ALNTPMK1", 32, 384, 32);
  assert_int_equal(aln_recovery_decode(&d, buf, n), ALN_ERR_MALFORMED);
  /* Past the cap before anything is parsed. */
  n = build(buf, m, 32, ALN_RECOVERY_CT_MAX + 1, 32);
  assert_int_equal(aln_recovery_decode(&d, buf, n), ALN_ERR_TOO_LARGE);
  /* A length prefix claiming more than there is. */
  n = build(buf, m, 32, 384, 32);
  buf[ALN_RECOVERY_MAGIC_LEN + 4 + 32] = 0xff;
  assert_int_equal(aln_recovery_decode(&d, buf, n), ALN_ERR_TRUNCATED);
  assert_int_equal(aln_recovery_decode(&d, NULL, 0), ALN_ERR_TRUNCATED);

  /* The encoder refuses what the decoder would. */
  uint8_t ct[ALN_RECOVERY_CT_MAX + 1] = {0};
  uint8_t *enc = (uint8_t *)1;
  size_t enc_len = 1;
  struct aln_recovery_file f = {.ct = ct, .ct_len = ALN_RECOVERY_CT_MIN - 1};
  assert_int_equal(aln_recovery_encode(&enc, &enc_len, &f), ALN_ERR_USAGE);
  assert_null(enc);
  assert_int_equal(enc_len, 0);
  f.ct_len = ALN_RECOVERY_CT_MAX + 1;
  assert_int_equal(aln_recovery_encode(&enc, &enc_len, &f), ALN_ERR_USAGE);
  f.ct = NULL;
  f.ct_len = ALN_RECOVERY_CT_MIN;
  assert_int_equal(aln_recovery_encode(&enc, &enc_len, &f), ALN_ERR_USAGE);
}

/* ---- wrap / unwrap ------------------------------------------------------------- */

static void test_wrap_unwrap(void **state) {
  (void)state;
  struct aln_secret kek = new_kek(), back = {0};
  uint8_t *file = NULL;
  size_t len = 0;
  assert_int_equal(aln_recovery_wrap(&file, &len, &kek, op_key), ALN_OK);

  struct aln_recovery_file f;
  assert_int_equal(aln_recovery_decode(&f, file, len), ALN_OK);
  uint8_t spki[ALN_SPKI_HASH_LEN];
  assert_int_equal(aln_tls_pubkey_spki_hash(spki, op_key), ALN_OK);
  assert_memory_equal(f.key_hash, spki, 32);
  assert_int_equal(f.ct_len, 384);
  uint8_t want[32];
  unsigned int wlen = 0;
  assert_non_null(HMAC(EVP_sha256(), kek.p, 32, (const uint8_t *)"aileron-kek-check", 17, want, &wlen));
  assert_memory_equal(f.check, want, 32);
  /* The KEK itself appears nowhere in the file. */
  assert_int_equal(aln_memmem_count(file, len, kek.p, kek.len), 0);

  assert_int_equal(aln_recovery_unwrap(&back, file, len, op_key), ALN_OK);
  assert_int_equal(back.len, ALN_KEK_LEN);
  assert_memory_equal(back.p, kek.p, ALN_KEK_LEN);
  aln_secret_free(&back);

  /* OAEP is randomised: a second wrap differs but opens to the same KEK. */
  uint8_t *file2 = NULL;
  size_t len2 = 0;
  assert_int_equal(aln_recovery_wrap(&file2, &len2, &kek, op_key), ALN_OK);
  assert_int_equal(len2, len);
  assert_memory_not_equal(file2, file, len);
  assert_int_equal(aln_recovery_unwrap(&back, file2, len2, op_key), ALN_OK);
  assert_memory_equal(back.p, kek.p, ALN_KEK_LEN);
  aln_secret_free(&back);
  free(file2);
  free(file);
  aln_secret_free(&kek);
}

static void assert_unwrap_refused(const uint8_t *file, size_t len, EVP_PKEY *key, aln_status want) {
  struct aln_secret back = {(uint8_t *)1, 1};
  assert_int_equal(aln_recovery_unwrap(&back, file, len, key), want);
  assert_null(back.p);
  assert_int_equal(back.len, 0);
}

static void test_refusals(void **state) {
  (void)state;
  struct aln_secret kek = new_kek();
  uint8_t *file = NULL;
  size_t len = 0;

  /* Weak and non-RSA operator keys. */
  assert_int_equal(aln_recovery_wrap(&file, &len, &kek, small_key), ALN_ERR_USAGE);
  assert_null(file);
  assert_int_equal(aln_recovery_wrap(&file, &len, &kek, ec_key), ALN_ERR_USAGE);
  struct aln_secret short_kek = {kek.p, 31};
  assert_int_equal(aln_recovery_wrap(&file, &len, &short_kek, op_key), ALN_ERR_USAGE);

  assert_int_equal(aln_recovery_wrap(&file, &len, &kek, op_key), ALN_OK);
  assert_unwrap_refused(file, len, small_key, ALN_ERR_USAGE);
  assert_unwrap_refused(file, len, ec_key, ALN_ERR_USAGE);
  /* Another operator's key. */
  assert_unwrap_refused(file, len, other_key, ALN_ERR_DENIED);

  uint8_t *m = malloc(len);
  assert_non_null(m);
  const size_t hash_off = 8 + 4, ct_off = hash_off + 32 + 4, check_off = ct_off + 384 + 4;
  assert_int_equal(check_off + 32, len);
  /* The key hash names another key. */
  memcpy(m, file, len);
  m[hash_off + 5] ^= 0x80;
  assert_unwrap_refused(m, len, op_key, ALN_ERR_DENIED);
  /* A wrong check value: the recovered KEK is not the one the file was made from. */
  memcpy(m, file, len);
  m[check_off + 31] ^= 0x01;
  assert_unwrap_refused(m, len, op_key, ALN_ERR_TAMPERED);
  /* A modified ciphertext fails OAEP. */
  memcpy(m, file, len);
  m[ct_off + 100] ^= 0x01;
  assert_unwrap_refused(m, len, op_key, ALN_ERR_TAMPERED);
  /* Malformed files are refused by the decoder. */
  assert_unwrap_refused(file, len - 1, op_key, ALN_ERR_TRUNCATED);
  memcpy(m, file, len);
  m[0] = 'X';
  assert_unwrap_refused(m, len, op_key, ALN_ERR_MALFORMED);

  /* A ciphertext made for another purpose (another OAEP label) or holding a value of
   * another length, under the right key, does not import. */
  const char *labels[] = {"other-purpose", ALN_RECOVERY_LABEL};
  const size_t pt_lens[] = {32, 31};
  for (int i = 0; i < 2; i++) {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, "oaep", 0),
        OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, (void *)labels[i], strlen(labels[i])),
        OSSL_PARAM_construct_end()};
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, op_key, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_encrypt_init_ex(ctx, params), 1);
    size_t ct_len = 384;
    memcpy(m, file, len);
    assert_int_equal(EVP_PKEY_encrypt(ctx, m + ct_off, &ct_len, kek.p, pt_lens[i]), 1);
    assert_int_equal(ct_len, 384);
    EVP_PKEY_CTX_free(ctx);
    assert_unwrap_refused(m, len, op_key, ALN_ERR_TAMPERED);
  }
  free(m);
  free(file);
  aln_secret_free(&kek);
}

/* ---- export / import ----------------------------------------------------------- */

struct fx {
  char dir[64];
  char src[96], dst[96], pub[96], priv[96], other[96], small[96], rec[96];
};

static void write_pem(const char *path, EVP_PKEY *key, int priv) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  assert_int_equal(priv ? PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(fp, key), 1);
  assert_int_equal(fclose(fp), 0);
}

static int fx_setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return -1;
  strcpy(f->dir, "/tmp/aln-recovery-XXXXXX");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
  snprintf(f->dst, sizeof(f->dst), "%s/dst", f->dir);
  snprintf(f->pub, sizeof(f->pub), "%s/op.pub", f->dir);
  snprintf(f->priv, sizeof(f->priv), "%s/op.key", f->dir);
  snprintf(f->other, sizeof(f->other), "%s/other.key", f->dir);
  snprintf(f->small, sizeof(f->small), "%s/small.pub", f->dir);
  snprintf(f->rec, sizeof(f->rec), "%s/kek.rec", f->dir);
  write_pem(f->pub, op_key, 0);
  write_pem(f->priv, op_key, 1);
  write_pem(f->other, other_key, 1);
  write_pem(f->small, small_key, 0);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  struct fx *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
  int rc = system(cmd);
  free(f);
  return rc == 0 ? 0 : -1;
}

static void read_kek(const char *dir, uint8_t out[ALN_KEK_LEN]) {
  char path[128];
  snprintf(path, sizeof(path), "%s/kek", dir);
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_int_equal(fread(out, 1, ALN_KEK_LEN, fp), ALN_KEK_LEN);
  assert_int_equal(fgetc(fp), EOF);
  fclose(fp);
}

static int exists(const char *dir, const char *name) {
  char path[128];
  struct stat sb;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  return stat(path, &sb) == 0;
}

static void test_export_import_local(void **state) {
  struct fx *f = *state;
  const struct aln_provider *local = aln_provider_find("local");
  struct aln_secret kek = {0};
  uint8_t orig[ALN_KEK_LEN], got[ALN_KEK_LEN];
  struct stat sb;

  /* No KEK yet: export refuses rather than making one. */
  assert_int_equal(mkdir(f->src, 0700), 0);
  assert_int_equal(aln_recovery_export(local, f->src, f->pub, f->rec), ALN_ERR_NOT_FOUND);
  assert_false(exists(f->src, "kek"));
  assert_int_equal(aln_local_kek_load(&kek, f->src), ALN_OK); /* the first start */
  aln_secret_free(&kek);
  read_kek(f->src, orig);

  /* An RSA-2048 operator key is refused and nothing is written. */
  assert_int_equal(aln_recovery_export(local, f->src, f->small, f->rec), ALN_ERR_USAGE);
  assert_int_not_equal(stat(f->rec, &sb), 0);

  assert_int_equal(aln_recovery_export(local, f->src, f->pub, f->rec), ALN_OK);
  assert_int_equal(stat(f->rec, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(aln_recovery_export(local, f->src, f->pub, f->rec), ALN_ERR_EXISTS);

  /* The wrong private key: refused, nothing installed, the data dir not made. */
  assert_int_equal(aln_recovery_import(local, f->dst, f->rec, f->other), ALN_ERR_DENIED);
  assert_int_not_equal(stat(f->dst, &sb), 0);
  /* The operator's private key may not sit in the data dir. */
  char fresh[96], inner[128];
  snprintf(fresh, sizeof(fresh), "%s/fresh", f->dir);
  assert_int_equal(mkdir(fresh, 0700), 0);
  snprintf(inner, sizeof(inner), "%s/op.key", fresh);
  write_pem(inner, op_key, 1);
  assert_int_equal(aln_recovery_import(local, fresh, f->rec, inner), ALN_ERR_USAGE);
  assert_false(exists(fresh, "kek"));
  /* A data dir that already has a KEK (here the source itself) is refused. */
  assert_int_equal(aln_recovery_import(local, f->src, f->rec, f->priv), ALN_ERR_EXISTS);
  read_kek(f->src, got);
  assert_memory_equal(got, orig, ALN_KEK_LEN);

  /* The right key installs the same KEK, 0600, in a fresh data dir. */
  assert_int_equal(aln_recovery_import(local, f->dst, f->rec, f->priv), ALN_OK);
  read_kek(f->dst, got);
  assert_memory_equal(got, orig, ALN_KEK_LEN);
  char path[128];
  snprintf(path, sizeof(path), "%s/kek", f->dst);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(aln_local_kek_load(&kek, f->dst), ALN_OK);
  assert_memory_equal(kek.p, orig, ALN_KEK_LEN);
  aln_secret_free(&kek);

  /* An existing KEK is never replaced, even by the same one. */
  assert_int_equal(aln_recovery_import(local, f->dst, f->rec, f->priv), ALN_ERR_EXISTS);
  read_kek(f->dst, got);
  assert_memory_equal(got, orig, ALN_KEK_LEN);
  /* A missing recovery file. */
  assert_int_equal(aln_recovery_import(local, fresh, "/nonexistent/kek.rec", f->priv), ALN_ERR_NOT_FOUND);
}

static void test_tpm_install_refuses_existing(void **state) {
  struct fx *f = *state;
  const struct aln_provider *tpm = aln_provider_find("tpm");
  struct aln_secret kek = new_kek();
  char path[128];
  static const uint8_t blob[] = "ALNTPMK1 not touched";

  assert_int_equal(mkdir(f->dst, 0700), 0);
  snprintf(path, sizeof(path), "%s/kek.tpm", f->dst);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(blob, 1, sizeof(blob), fp), sizeof(blob));
  assert_int_equal(fclose(fp), 0);
  /* Refused before any TPM is contacted (no AILERON_TPM_TCTI is needed). */
  unsetenv("AILERON_TPM_TCTI");
  assert_int_equal(aln_tpm_kek_install(&kek, f->dst, "kek.tpm"), ALN_ERR_EXISTS);

  /* Through import too, with a valid recovery file. */
  assert_int_equal(mkdir(f->src, 0700), 0);
  aln_secret_free(&kek);
  assert_int_equal(aln_local_kek_load(&kek, f->src), ALN_OK);
  aln_secret_free(&kek);
  assert_int_equal(aln_recovery_export(aln_provider_find("local"), f->src, f->pub, f->rec), ALN_OK);
  assert_int_equal(aln_recovery_import(tpm, f->dst, f->rec, f->priv), ALN_ERR_EXISTS);
  uint8_t back[sizeof(blob) + 1];
  fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_int_equal(fread(back, 1, sizeof(back), fp), sizeof(blob));
  fclose(fp);
  assert_memory_equal(back, blob, sizeof(blob));

  /* Bad arguments. */
  struct aln_secret short_kek = {(uint8_t *)blob, 31};
  assert_int_equal(aln_tpm_kek_install(&short_kek, f->dst, "kek.tpm"), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_kek_install(NULL, f->dst, "kek.tpm"), ALN_ERR_USAGE);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codec_round_trip),
      cmocka_unit_test(test_codec_field_lengths),
      cmocka_unit_test(test_wrap_unwrap),
      cmocka_unit_test(test_refusals),
      T(test_export_import_local),
      T(test_tpm_install_refuses_existing),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
