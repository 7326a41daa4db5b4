/* Tests for enclave/epoch and the escrow's epoch: the file codec and its MAC
 * (round trip, layout, every truncation, trailing bytes, wrong magic, every
 * flipped bit, another KEK), the atomic file write, the start decision table of
 * aln_epoch_guard against a real escrow, and that every kind of committed write
 * (and only a committed write) moves the epoch and reaches the commit hook. */
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
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "enclave/epoch.h"
#include "enclave/escrow.h"

static const char k_binding[] = "binding-bytes";

struct fx {
  char dir[64];
  char db[128];
  char epoch[128];
  struct aln_secret kek;
  struct aln_secret other_kek;
  struct aln_escrow *esc;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return -1;
  strcpy(f->dir, "/tmp/aln-epoch-XXXXXX");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  snprintf(f->db, sizeof(f->db), "%s/escrow.db", f->dir);
  snprintf(f->epoch, sizeof(f->epoch), "%s/epoch", f->dir);
  if (aln_secret_new(&f->kek, 32) != ALN_OK || RAND_bytes(f->kek.p, 32) != 1)
    return -1;
  if (aln_secret_new(&f->other_kek, 32) != ALN_OK ||
      RAND_bytes(f->other_kek.p, 32) != 1)
    return -1;
  if (aln_escrow_open(&f->esc, f->db, &f->kek, 0) != ALN_OK)
    return -1;
  *state = f;
  return 0;
}

static void rm_suffix(const char *base, const char *suffix) {
  char p[160];
  snprintf(p, sizeof(p), "%s%s", base, suffix);
  unlink(p);
  rmdir(p);
}

static int teardown(void **state) {
  struct fx *f = *state;
  aln_escrow_free(f->esc);
  rm_suffix(f->db, "");
  rm_suffix(f->db, "-wal");
  rm_suffix(f->db, "-shm");
  rm_suffix(f->epoch, "");
  rm_suffix(f->epoch, ".tmp");
  rmdir(f->dir);
  aln_secret_free(&f->kek);
  aln_secret_free(&f->other_kek);
  free(f);
  return 0;
}

static uint64_t db_epoch(struct fx *f) {
  struct aln_escrow_counts c = {UINT64_MAX, UINT64_MAX};
  assert_int_equal(aln_escrow_counts(f->esc, &c), ALN_OK);
  return c.epoch;
}

static uint64_t file_epoch(struct fx *f) {
  uint64_t e = UINT64_MAX;
  assert_int_equal(aln_epoch_read(&e, f->epoch, &f->kek), ALN_OK);
  return e;
}

static aln_status put(struct fx *f, const char *name, int replace) {
  return aln_escrow_put(
      f->esc, NULL,
      &(struct aln_cred_input){.name = name,
                               .kind = ALN_CRED_KIND_SECRET,
                               .secret = (const uint8_t *)"s3cret",
                               .secret_len = 6,
                               .binding = (const uint8_t *)k_binding,
                               .binding_len = sizeof(k_binding) - 1,
                               .expires_at = 0,
                               .replace = replace},
      NULL);
}

/* Raises the escrow's epoch to |n| with real writes. */
static void writes_until(struct fx *f, uint64_t n) {
  static const struct aln_audit_event ev = {
      .time = 1, .action = "use", .decision = "allow"};
  while (db_epoch(f) < n)
    assert_int_equal(aln_escrow_audit_append(f->esc, &ev), ALN_OK);
  assert_int_equal(db_epoch(f), n);
}

static void raw_exec(struct fx *f, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static void write_bytes(const char *path, const uint8_t *p, size_t len,
                        mode_t mode) {
  unlink(path);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(p, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
  assert_int_equal(chmod(path, mode), 0);
}

/* --- codec
 * ---------------------------------------------------------------------- */

static void test_round_trip_and_layout(void **state) {
  struct fx *f = *state;
  static const uint64_t values[] = {
      0, 1, 255, 256, 0x0102030405060708ULL, UINT64_MAX};
  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    uint8_t img[ALN_EPOCH_FILE_LEN];
    uint64_t got = 42;
    assert_int_equal(aln_epoch_encode(img, &f->kek, values[i]), ALN_OK);
    assert_memory_equal(img, "ALNEPOC1", 8);
    for (int b = 0; b < 8; b++)
      assert_int_equal(img[8 + b], (uint8_t)(values[i] >> (8 * (7 - b))));
    assert_int_equal(aln_epoch_decode(&got, &f->kek, img, sizeof(img)), ALN_OK);
    assert_true(got == values[i]);
  }
}

/* The MAC is HMAC-SHA256 under K_epoch = HMAC-SHA256(KEK, label), recomputed
 * here independently: neither the KEK itself nor a plain hash is the key. */
static void test_mac_is_under_derived_key(void **state) {
  struct fx *f = *state;
  uint8_t img[ALN_EPOCH_FILE_LEN], k[32], mac[32];
  unsigned int n = 0;
  static const char label[] = "aileron-epoch-key-v1";
  assert_int_equal(aln_epoch_encode(img, &f->kek, 77), ALN_OK);
  assert_non_null(HMAC(EVP_sha256(), f->kek.p, 32, (const uint8_t *)label,
                       sizeof(label) - 1, k, &n));
  assert_non_null(HMAC(EVP_sha256(), k, 32, img, 16, mac, &n));
  assert_memory_equal(mac, img + 16, 32);
  assert_non_null(HMAC(EVP_sha256(), f->kek.p, 32, img, 16, mac, &n));
  assert_memory_not_equal(mac, img + 16, 32);
}

static void test_decode_refusals(void **state) {
  struct fx *f = *state;
  uint8_t img[ALN_EPOCH_FILE_LEN + 1], bad[ALN_EPOCH_FILE_LEN];
  uint64_t got = 42;
  assert_int_equal(aln_epoch_encode(img, &f->kek, 9), ALN_OK);

  for (size_t len = 0; len < ALN_EPOCH_FILE_LEN; len++)
    assert_int_equal(aln_epoch_decode(&got, &f->kek, img, len),
                     ALN_ERR_TRUNCATED);
  img[ALN_EPOCH_FILE_LEN] = 0;
  assert_int_equal(aln_epoch_decode(&got, &f->kek, img, sizeof(img)),
                   ALN_ERR_TRAILING);
  assert_int_equal(aln_epoch_decode(&got, &f->kek, NULL, 0), ALN_ERR_TRUNCATED);
  assert_int_equal(aln_epoch_decode(&got, &f->kek, NULL, ALN_EPOCH_FILE_LEN),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_decode(NULL, &f->kek, img, ALN_EPOCH_FILE_LEN),
                   ALN_ERR_USAGE);

  for (size_t i = 0; i < 8; i++) {
    memcpy(bad, img, sizeof(bad));
    bad[i] ^= 0x20;
    assert_int_equal(aln_epoch_decode(&got, &f->kek, bad, sizeof(bad)),
                     ALN_ERR_MALFORMED);
  }
  /* Every bit of the epoch and of the MAC is authenticated. */
  for (size_t i = 8; i < ALN_EPOCH_FILE_LEN; i++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(bad, img, sizeof(bad));
      bad[i] ^= (uint8_t)(1u << bit);
      assert_int_equal(aln_epoch_decode(&got, &f->kek, bad, sizeof(bad)),
                       ALN_ERR_TAMPERED);
    }
  }
  assert_int_equal(
      aln_epoch_decode(&got, &f->other_kek, img, ALN_EPOCH_FILE_LEN),
      ALN_ERR_TAMPERED);
  assert_true(got == 42); /* untouched by every failure */
  assert_int_equal(aln_epoch_decode(&got, &f->kek, img, ALN_EPOCH_FILE_LEN),
                   ALN_OK);
  assert_true(got == 9);
}

/* --- file
 * ----------------------------------------------------------------------- */

static void test_file_write_read(void **state) {
  struct fx *f = *state;
  uint64_t got = 0;
  struct stat sb;
  char tmp[160];
  snprintf(tmp, sizeof(tmp), "%s.tmp", f->epoch);

  assert_int_equal(aln_epoch_read(&got, f->epoch, &f->kek), ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 5), ALN_OK);
  assert_int_equal(stat(f->epoch, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(sb.st_size, ALN_EPOCH_FILE_LEN);
  assert_int_equal(access(tmp, F_OK), -1);
  assert_true(file_epoch(f) == 5);
  assert_int_equal(aln_epoch_read(&got, f->epoch, &f->other_kek),
                   ALN_ERR_TAMPERED);

  /* Replaces an existing file, and a temp file a crash left behind. */
  write_bytes(tmp, (const uint8_t *)"stale", 5, 0600);
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 6), ALN_OK);
  assert_true(file_epoch(f) == 6);
  assert_int_equal(access(tmp, F_OK), -1);

  /* A file others can read is refused; so are trailing and missing bytes. */
  assert_int_equal(chmod(f->epoch, 0644), 0);
  assert_int_equal(aln_epoch_read(&got, f->epoch, &f->kek), ALN_ERR_PERMS);
  uint8_t img[ALN_EPOCH_FILE_LEN + 1] = {0};
  assert_int_equal(aln_epoch_encode(img, &f->kek, 7), ALN_OK);
  write_bytes(f->epoch, img, sizeof(img), 0600);
  assert_int_equal(aln_epoch_read(&got, f->epoch, &f->kek), ALN_ERR_TRAILING);
  write_bytes(f->epoch, img, ALN_EPOCH_FILE_LEN - 1, 0600);
  assert_int_equal(aln_epoch_read(&got, f->epoch, &f->kek), ALN_ERR_TRUNCATED);

  /* A symlink planted at the temp path is not followed. */
  char target[160];
  snprintf(target, sizeof(target), "%s/target", f->dir);
  write_bytes(target, (const uint8_t *)"keep", 4, 0600);
  assert_int_equal(symlink(target, tmp), 0);
  assert_int_not_equal(aln_epoch_write(f->epoch, &f->kek, 8), ALN_OK);
  assert_int_equal(stat(target, &sb), 0);
  assert_int_equal(sb.st_size, 4);
  unlink(tmp);
  unlink(target);
  assert_int_equal(aln_epoch_write(f->epoch, NULL, 1), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_write("", &f->kek, 1), ALN_ERR_USAGE);
}

/* --- start decision table
 * --------------------------------------------------------- */

static void test_guard_first_start_creates(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  assert_int_equal(db_epoch(f), 0);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_OK);
  assert_true(info.file_missing && info.db_epoch == 0);
  assert_true(file_epoch(f) == 0);
  /* From now on every commit reaches the file. */
  assert_int_equal(put(f, "a", 0), ALN_OK);
  assert_true(db_epoch(f) == 1 && file_epoch(f) == 1);
}

static void test_guard_missing_file_after_writes(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  writes_until(f, 3);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek),
                   ALN_ERR_EPOCH_MISSING);
  assert_true(info.file_missing && info.db_epoch == 3);
  assert_int_equal(access(f->epoch, F_OK), -1); /* not silently recreated */
  assert_int_equal(put(f, "a", 0), ALN_OK);
  assert_int_equal(access(f->epoch, F_OK), -1); /* and no hook installed */
}

static void test_guard_bad_mac(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  writes_until(f, 2);
  assert_int_equal(aln_epoch_write(f->epoch, &f->other_kek, 2), ALN_OK);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek),
                   ALN_ERR_TAMPERED);
  uint8_t img[ALN_EPOCH_FILE_LEN];
  assert_int_equal(aln_epoch_encode(img, &f->kek, 2), ALN_OK);
  img[15] ^= 1; /* epoch 2 -> 3 without the KEK */
  write_bytes(f->epoch, img, sizeof(img), 0600);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek),
                   ALN_ERR_TAMPERED);
  img[0] = 'X';
  write_bytes(f->epoch, img, sizeof(img), 0600);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek),
                   ALN_ERR_MALFORMED);
}

static void test_guard_rollback(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  writes_until(f, 4);
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 5), ALN_OK);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek),
                   ALN_ERR_ROLLBACK);
  assert_true(info.db_epoch == 4 && info.file_epoch == 5 && !info.file_missing);
  assert_true(file_epoch(f) == 5); /* the evidence stays */
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, UINT64_MAX), ALN_OK);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek),
                   ALN_ERR_ROLLBACK);
}

static void test_guard_accepts_and_repairs(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  writes_until(f, 4);
  /* Equal. */
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 4), ALN_OK);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_OK);
  assert_true(info.db_epoch == 4 && info.file_epoch == 4);
  /* One behind: a crash between the commit and the file update. Repaired. */
  aln_escrow_set_commit_hook(f->esc, NULL, NULL, NULL);
  writes_until(f, 5);
  assert_true(file_epoch(f) == 4);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_OK);
  assert_true(info.db_epoch == 5 && info.file_epoch == 4);
  assert_true(file_epoch(f) == 5);
}

/* A failing hook does not fail the write (it is durable); the next start
 * repairs. */
static void test_hook_failure_keeps_write(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  char tmp[160];
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_OK);
  snprintf(tmp, sizeof(tmp), "%s.tmp", f->epoch);
  assert_int_equal(mkdir(tmp, 0700), 0); /* the temp file cannot be created */
  assert_int_equal(put(f, "a", 0), ALN_OK); /* committed before the hook ran: acknowledged */
  assert_true(file_epoch(f) == 0);
  /* Nothing else proceeds while the file cannot be written: it stays one behind. */
  struct aln_secret s = {0};
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "a", 0), ALN_ERR_IO);
  assert_int_equal(put(f, "b", 0), ALN_ERR_IO);
  assert_int_equal(rmdir(tmp), 0);
  /* The next operation writes it first. */
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "a", 0), ALN_OK);
  aln_secret_free(&s);
  assert_true(db_epoch(f) == 1 && file_epoch(f) == 1);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_OK);
}

static void test_guard_usage(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  assert_int_equal(aln_epoch_guard(NULL, &info, f->epoch, &f->kek),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_guard(f->esc, &info, NULL, &f->kek),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_guard(f->esc, &info, "", &f->kek), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, NULL),
                   ALN_ERR_USAGE);
}

/* --- the escrow's epoch
 * ------------------------------------------------------------ */

struct rec {
  uint64_t seen[32];
  size_t num;
  int freed;
};

static aln_status rec_hook(void *ctx, const struct aln_escrow_counts *counts) {
  struct rec *r = ctx;
  if (r->num < 32)
    r->seen[r->num] = counts->epoch;
  r->num++;
  return ALN_OK;
}

static void rec_free(void *ctx) { ((struct rec *)ctx)->freed++; }

static void test_every_write_bumps(void **state) {
  struct fx *f = *state;
  struct rec r = {0};
  uint8_t spki[32] = {1, 2, 3};
  static const struct aln_audit_event ev = {
      .time = 1, .action = "use", .decision = "deny"};
  aln_escrow_set_commit_hook(f->esc, rec_hook, &r, rec_free);

  assert_int_equal(put(f, "a", 0), ALN_OK);
  assert_int_equal(put(f, "a", 1), ALN_OK);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "a", &ev), ALN_OK);
  assert_int_equal(aln_escrow_audit_append(f->esc, &ev), ALN_OK);
  assert_int_equal(aln_escrow_host_enroll(f->esc, spki, "h"), ALN_OK);
  assert_int_equal(aln_escrow_host_remove(f->esc, spki), ALN_OK);
  assert_true(db_epoch(f) == 6);
  assert_int_equal(r.num, 6);
  for (size_t i = 0; i < 6; i++)
    assert_true(r.seen[i] == i + 1); /* in commit order, each epoch once */

  /* Refused writes and reads change nothing and call nothing. */
  assert_int_equal(put(f, "b", 0), ALN_OK);
  assert_int_equal(put(f, "b", 0), ALN_ERR_EXISTS);
  assert_int_equal(put(f, "bad name", 0), ALN_ERR_BAD_NAME);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "nope", NULL),
                   ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_escrow_host_remove(f->esc, spki), ALN_ERR_NOT_FOUND);
  struct aln_cred_meta *list = NULL;
  size_t num = 0;
  int more = 0;
  assert_int_equal(
      aln_escrow_list(f->esc, NULL, ALN_LIST_PAGE_MAX, &list, &num, &more),
      ALN_OK);
  aln_escrow_list_free(list, num);
  assert_int_equal(aln_escrow_audit_verify_chain(f->esc, &num), ALN_OK);
  struct aln_secret s = {0};
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "b", 0), ALN_OK);
  aln_secret_free(&s);
  assert_true(db_epoch(f) == 7);
  assert_int_equal(r.num, 7);

  /* The epoch is durable across a reopen; the hook context is released once. */
  aln_escrow_free(f->esc);
  f->esc = NULL;
  assert_int_equal(r.freed, 1);
  assert_int_equal(aln_escrow_open(&f->esc, f->db, &f->kek, 0), ALN_OK);
  assert_true(db_epoch(f) == 7);
}

/* The counters live in the meta row, under the state MAC: a deleted or edited
 * row stops every operation, reads included, rather than letting a write
 * proceed. */
static void test_tampered_meta(void **state) {
  struct fx *f = *state;
  assert_int_equal(put(f, "a", 0), ALN_OK);
  assert_int_equal(put(f, "b", 0), ALN_OK);
  assert_true(db_epoch(f) == 2);

  struct aln_escrow_counts e = {9, 9};
  struct aln_secret s = {0};
  raw_exec(f, "DELETE FROM meta");
  assert_int_equal(aln_escrow_counts(f->esc, &e), ALN_ERR_STATE_TAMPERED);
  assert_int_equal(put(f, "c", 0), ALN_ERR_STATE_TAMPERED);
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "a", 0),
                   ALN_ERR_STATE_TAMPERED);
  aln_escrow_free(f->esc);
  f->esc = NULL;
  raw_exec(f, "INSERT INTO meta(id, epoch) VALUES(1, 'x')");
  assert_int_equal(aln_escrow_open(&f->esc, f->db, &f->kek, 0),
                   ALN_ERR_STATE_TAMPERED);
  assert_null(f->esc);
  assert_int_equal(aln_escrow_counts(NULL, &e), ALN_ERR_USAGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip_and_layout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_mac_is_under_derived_key, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_decode_refusals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_write_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_first_start_creates, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_guard_missing_file_after_writes,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_bad_mac, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_rollback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_accepts_and_repairs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hook_failure_keeps_write, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_guard_usage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_every_write_bumps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tampered_meta, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
