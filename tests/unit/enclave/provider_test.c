/* Tests for enclave/provider: the table lookup (only known names, exact match), the
 * tpm row (its KEK loader, local evidence until quotes exist), the local KEK file (created 0600 with 32 random bytes,
 * the same key on every load, refused when group/other-readable or of the wrong size) and the local evidence hook
 * producing evidence that verifies for the binding it was given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "attestation/local.h"
#include "enclave/provider.h"

struct fx {
  char dir[64];
  char kek[128];
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return -1;
  strcpy(f->dir, "/tmp/aln-provider-XXXXXX");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  snprintf(f->kek, sizeof(f->kek), "%s/kek", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  unlink(f->kek);
  rmdir(f->dir);
  free(f);
  return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t len, mode_t mode) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
  assert_int_equal(chmod(path, mode), 0);
}

static void assert_refused(struct fx *f, aln_status want) {
  struct aln_secret k = {(uint8_t *)1, 1};
  assert_int_equal(aln_local_kek_load(&k, f->dir), want);
  assert_null(k.p);
  assert_int_equal(k.len, 0);
}

static void test_find(void **state) {
  (void)state;
  const struct aln_provider *p = aln_provider_find("local");
  assert_non_null(p);
  assert_string_equal(p->name, "local");
  assert_string_equal(p->evidence_kind, "local");
  assert_ptr_equal(p->kek_load, aln_local_kek_load);
  assert_non_null(p->evidence);

  const char *unknown[] = {"sev", "TPM", "tpm ", "", "confidential-space", "LOCAL", "local ", "loca", "localx"};
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
    assert_null(aln_provider_find(unknown[i]));
  assert_null(aln_provider_find(NULL));

  /* tpm seals its KEK to the TPM and proves itself with quotes by its AK. */
  const struct aln_provider *t = aln_provider_find("tpm");
  assert_non_null(t);
  assert_string_equal(t->name, "tpm");
  assert_string_equal(t->evidence_kind, "tpm");
  assert_ptr_equal(t->kek_load, aln_tpm_kek_load);
  assert_non_null(t->evidence);
  assert_ptr_not_equal(t->evidence, p->evidence);
}

static void test_kek_created_private_and_stable(void **state) {
  struct fx *f = *state;
  struct aln_secret a = {0}, b = {0};
  struct stat sb;
  static const uint8_t zero[ALN_KEK_LEN] = {0};

  assert_int_equal(stat(f->kek, &sb), -1); /* not there before the first load */
  assert_int_equal(aln_local_kek_load(&a, f->dir), ALN_OK);
  assert_int_equal(a.len, ALN_KEK_LEN);
  assert_memory_not_equal(a.p, zero, ALN_KEK_LEN);
  assert_int_equal(stat(f->kek, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(sb.st_size, ALN_KEK_LEN);

  assert_int_equal(aln_local_kek_load(&b, f->dir), ALN_OK);
  assert_int_equal(b.len, ALN_KEK_LEN);
  assert_memory_equal(a.p, b.p, ALN_KEK_LEN);
  aln_secret_free(&b);

  /* The file holds exactly the key that was loaded. */
  uint8_t disk[ALN_KEK_LEN + 1];
  FILE *fp = fopen(f->kek, "rb");
  assert_non_null(fp);
  assert_int_equal(fread(disk, 1, sizeof(disk), fp), ALN_KEK_LEN);
  fclose(fp);
  assert_memory_equal(disk, a.p, ALN_KEK_LEN);
  aln_secret_free(&a);
}

/* A missing kek beside an existing escrow is a lost key: refused, nothing created. */
static void test_kek_not_recreated_beside_an_escrow(void **state) {
  struct fx *f = *state;
  struct aln_secret a = {0};
  struct stat sb;
  char db[sizeof(f->dir) + 16];
  snprintf(db, sizeof(db), "%s/escrow.db", f->dir);
  FILE *fp = fopen(db, "wb");
  assert_non_null(fp);
  fclose(fp);
  assert_int_equal(aln_local_kek_load(&a, f->dir), ALN_ERR_NOT_FOUND);
  assert_null(a.p);
  assert_int_equal(stat(f->kek, &sb), -1);
  unlink(db);
  assert_int_equal(aln_local_kek_load(&a, f->dir), ALN_OK); /* a true first start */
  aln_secret_free(&a);
}

static void test_kek_fresh_per_dir(void **state) {
  struct fx *f = *state;
  struct fx g;
  struct aln_secret a = {0}, b = {0};
  strcpy(g.dir, "/tmp/aln-provider-XXXXXX");
  assert_non_null(mkdtemp(g.dir));
  snprintf(g.kek, sizeof(g.kek), "%s/kek", g.dir);
  assert_int_equal(aln_local_kek_load(&a, f->dir), ALN_OK);
  assert_int_equal(aln_local_kek_load(&b, g.dir), ALN_OK);
  assert_memory_not_equal(a.p, b.p, ALN_KEK_LEN);
  aln_secret_free(&a);
  aln_secret_free(&b);
  unlink(g.kek);
  rmdir(g.dir);
}

static void test_kek_refused_when_readable(void **state) {
  struct fx *f = *state;
  struct aln_secret a = {0};
  assert_int_equal(aln_local_kek_load(&a, f->dir), ALN_OK);
  aln_secret_free(&a);
  const mode_t loose[] = {0644, 0640, 0604, 0660, 0606};
  for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
    assert_int_equal(chmod(f->kek, loose[i]), 0);
    assert_refused(f, ALN_ERR_PERMS);
  }
  /* Tightening it again makes it usable: the refusal was about the mode. */
  assert_int_equal(chmod(f->kek, 0600), 0);
  assert_int_equal(aln_local_kek_load(&a, f->dir), ALN_OK);
  aln_secret_free(&a);
}

static void test_kek_wrong_size(void **state) {
  struct fx *f = *state;
  uint8_t buf[ALN_KEK_LEN + 1];
  memset(buf, 0x5a, sizeof(buf));
  const size_t sizes[] = {0, 1, ALN_KEK_LEN - 1, ALN_KEK_LEN + 1};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    unlink(f->kek);
    write_file(f->kek, buf, sizes[i], 0600);
    assert_refused(f, ALN_ERR_STORE);
    /* never replaced by a fresh key */
    struct stat sb;
    assert_int_equal(stat(f->kek, &sb), 0);
    assert_int_equal(sb.st_size, (off_t)sizes[i]);
  }
  /* An existing key of the right size is used as is. */
  unlink(f->kek);
  write_file(f->kek, buf, ALN_KEK_LEN, 0600);
  struct aln_secret k = {0};
  assert_int_equal(aln_local_kek_load(&k, f->dir), ALN_OK);
  assert_memory_equal(k.p, buf, ALN_KEK_LEN);
  aln_secret_free(&k);
}

static void test_kek_bad_dir(void **state) {
  struct fx *f = *state;
  struct aln_secret k = {(uint8_t *)1, 1};
  char missing[160];
  snprintf(missing, sizeof(missing), "%s/does-not-exist", f->dir);
  assert_int_not_equal(aln_local_kek_load(&k, missing), ALN_OK);
  assert_null(k.p);
  assert_int_equal(aln_local_kek_load(&k, ""), ALN_ERR_USAGE);
  assert_int_equal(aln_local_kek_load(&k, NULL), ALN_ERR_USAGE);
  char *huge = malloc(8192);
  assert_non_null(huge);
  memset(huge, 'd', 8191);
  huge[8191] = '\0';
  assert_int_equal(aln_local_kek_load(&k, huge), ALN_ERR_USAGE);
  free(huge);
}

static void test_local_evidence(void **state) {
  (void)state;
  const struct aln_provider *p = aln_provider_find("local");
  assert_non_null(p);
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  assert_non_null(key);
  uint8_t pub[32], binding[ALN_BINDING_LEN], other[ALN_BINDING_LEN];
  size_t pub_len = sizeof(pub);
  assert_int_equal(EVP_PKEY_get_raw_public_key(key, pub, &pub_len), 1);
  for (size_t i = 0; i < ALN_BINDING_LEN; i++)
    binding[i] = (uint8_t)(0xa0 + i);
  memcpy(other, binding, sizeof(other));
  other[0] ^= 1;

  uint8_t *ev = NULL;
  size_t ev_len = 0;
  int64_t before = (int64_t)time(NULL);
  assert_int_equal(p->evidence(&ev, &ev_len, "/nonexistent", key, binding), ALN_OK); /* local keeps nothing */
  assert_non_null(ev);
  assert_true(ev_len > 0 && ev_len <= ALN_LOCAL_EVIDENCE_MAX);

  struct aln_local_claims c;
  assert_int_equal(aln_local_evidence_verify(&c, ev, ev_len, pub, pub_len, binding), ALN_OK);
  assert_memory_equal(c.nonce, binding, ALN_BINDING_LEN);
  assert_int_equal(c.debug, 1);
  assert_true(c.iat >= before && c.iat <= (int64_t)time(NULL));
  assert_int_equal(aln_local_evidence_verify(&c, ev, ev_len, pub, pub_len, other), ALN_ERR_ATTEST_BINDING);
  free(ev);
  EVP_PKEY_free(key);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_find),
      T(test_kek_created_private_and_stable),
      T(test_kek_fresh_per_dir),
      T(test_kek_not_recreated_beside_an_escrow),
      T(test_kek_refused_when_readable),
      T(test_kek_wrong_size),
      T(test_kek_bad_dir),
      cmocka_unit_test(test_local_evidence),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
