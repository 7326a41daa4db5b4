/* Tests for enclave/epoch and the escrow's epoch: the file codec and its MAC
 * (round trip, layout, every truncation, trailing bytes, wrong magic, every flipped
 * bit, another KEK), the atomic file write, the start decision table of
 * aln_epoch_guard against a real escrow, and that every kind of committed write
 * (and only a committed write) moves the epoch and reaches the commit hook.
 * The ALNEPOC2 format the same way, plus authentic records whose meaning is wrong;
 * and aln_epoch_counter_guard's decision table and commit hook against a real
 * escrow and a fake monotonic counter (the TPM one is tested against swtpm in
 * tpm_counter_test.c and tests/integration/test_tpm_provider.py). */
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
#include "proto/keyfile.h"

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
  if (aln_secret_new(&f->other_kek, 32) != ALN_OK || RAND_bytes(f->other_kek.p, 32) != 1)
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
  rm_suffix(f->epoch, ".lock");
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
  return aln_escrow_put(f->esc, NULL,
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
  static const struct aln_audit_event ev = {.time = 1, .action = "use", .decision = "allow"};
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

static void write_bytes(const char *path, const uint8_t *p, size_t len, mode_t mode) {
  unlink(path);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(p, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
  assert_int_equal(chmod(path, mode), 0);
}

/* --- codec ---------------------------------------------------------------------- */

static void test_round_trip_and_layout(void **state) {
  struct fx *f = *state;
  static const uint64_t values[] = {0, 1, 255, 256, 0x0102030405060708ULL, UINT64_MAX};
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

/* The MAC is HMAC-SHA256 under K_epoch = HMAC-SHA256(KEK, label), recomputed here
 * independently: neither the KEK itself nor a plain hash is the key. */
static void test_mac_is_under_derived_key(void **state) {
  struct fx *f = *state;
  uint8_t img[ALN_EPOCH_FILE_LEN], k[32], mac[32];
  unsigned int n = 0;
  static const char label[] = "aileron-epoch-key-v1";
  assert_int_equal(aln_epoch_encode(img, &f->kek, 77), ALN_OK);
  assert_non_null(HMAC(EVP_sha256(), f->kek.p, 32, (const uint8_t *)label, sizeof(label) - 1, k, &n));
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
    assert_int_equal(aln_epoch_decode(&got, &f->kek, img, len), ALN_ERR_TRUNCATED);
  img[ALN_EPOCH_FILE_LEN] = 0;
  assert_int_equal(aln_epoch_decode(&got, &f->kek, img, sizeof(img)), ALN_ERR_TRAILING);
  assert_int_equal(aln_epoch_decode(&got, &f->kek, NULL, 0), ALN_ERR_TRUNCATED);
  assert_int_equal(aln_epoch_decode(&got, &f->kek, NULL, ALN_EPOCH_FILE_LEN), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_decode(NULL, &f->kek, img, ALN_EPOCH_FILE_LEN), ALN_ERR_USAGE);

  for (size_t i = 0; i < 8; i++) {
    memcpy(bad, img, sizeof(bad));
    bad[i] ^= 0x20;
    assert_int_equal(aln_epoch_decode(&got, &f->kek, bad, sizeof(bad)), ALN_ERR_MALFORMED);
  }
  /* Every bit of the epoch and of the MAC is authenticated. */
  for (size_t i = 8; i < ALN_EPOCH_FILE_LEN; i++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(bad, img, sizeof(bad));
      bad[i] ^= (uint8_t)(1u << bit);
      assert_int_equal(aln_epoch_decode(&got, &f->kek, bad, sizeof(bad)), ALN_ERR_TAMPERED);
    }
  }
  assert_int_equal(aln_epoch_decode(&got, &f->other_kek, img, ALN_EPOCH_FILE_LEN), ALN_ERR_TAMPERED);
  assert_true(got == 42); /* untouched by every failure */
  assert_int_equal(aln_epoch_decode(&got, &f->kek, img, ALN_EPOCH_FILE_LEN), ALN_OK);
  assert_true(got == 9);
}

/* --- file ----------------------------------------------------------------------- */

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
  assert_int_equal(aln_epoch_read(&got, f->epoch, &f->other_kek), ALN_ERR_TAMPERED);

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

/* --- start decision table --------------------------------------------------------- */

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
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_ERR_EPOCH_MISSING);
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
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_ERR_TAMPERED);
  uint8_t img[ALN_EPOCH_FILE_LEN];
  assert_int_equal(aln_epoch_encode(img, &f->kek, 2), ALN_OK);
  img[15] ^= 1; /* epoch 2 -> 3 without the KEK */
  write_bytes(f->epoch, img, sizeof(img), 0600);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_ERR_TAMPERED);
  img[0] = 'X';
  write_bytes(f->epoch, img, sizeof(img), 0600);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_ERR_MALFORMED);
}

static void test_guard_rollback(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  writes_until(f, 4);
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 5), ALN_OK);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_ERR_ROLLBACK);
  assert_true(info.db_epoch == 4 && info.file_epoch == 5 && !info.file_missing);
  assert_true(file_epoch(f) == 5); /* the evidence stays */
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, UINT64_MAX), ALN_OK);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, &f->kek), ALN_ERR_ROLLBACK);
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
  assert_int_equal(mkdir(tmp, 0700), 0);    /* the temp file cannot be created */
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
  assert_int_equal(aln_epoch_guard(NULL, &info, f->epoch, &f->kek), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_guard(f->esc, &info, NULL, &f->kek), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_guard(f->esc, &info, "", &f->kek), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_guard(f->esc, &info, f->epoch, NULL), ALN_ERR_USAGE);
}

/* --- the escrow's epoch ------------------------------------------------------------ */

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

static void rec_free(void *ctx) {
  ((struct rec *)ctx)->freed++;
}

static void test_every_write_bumps(void **state) {
  struct fx *f = *state;
  struct rec r = {0};
  uint8_t spki[32] = {1, 2, 3};
  static const struct aln_audit_event ev = {.time = 1, .action = "use", .decision = "deny"};
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
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "nope", NULL), ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_escrow_host_remove(f->esc, spki), ALN_ERR_NOT_FOUND);
  struct aln_cred_meta *list = NULL;
  size_t num = 0;
  int more = 0;
  assert_int_equal(aln_escrow_list(f->esc, NULL, ALN_LIST_PAGE_MAX, &list, &num, &more), ALN_OK);
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
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "a", 0), ALN_ERR_STATE_TAMPERED);
  aln_escrow_free(f->esc);
  f->esc = NULL;
  raw_exec(f, "INSERT INTO meta(id, epoch) VALUES(1, 'x')");
  assert_int_equal(aln_escrow_open(&f->esc, f->db, &f->kek, 0), ALN_ERR_STATE_TAMPERED);
  assert_null(f->esc);
  assert_int_equal(aln_escrow_counts(NULL, &e), ALN_ERR_USAGE);
}

/* --- ALNEPOC2 codec ---------------------------------------------------------------- */

#define IDX 0x01A1E000u

static struct aln_epoch_record rec2(uint64_t epoch, uint64_t generation, uint64_t base) {
  return (struct aln_epoch_record){
      .version = 2, .epoch = epoch, .generation = generation, .nv_index = IDX, .base = base};
}

/* mac2 computes the MAC of |len| bytes independently of epoch.c. */
static void mac2(struct fx *f, uint8_t out[32], const uint8_t *img, size_t len) {
  uint8_t k[32];
  unsigned int n = 0;
  static const char label[] = "aileron-epoch-key-v1";
  assert_non_null(HMAC(EVP_sha256(), f->kek.p, 32, (const uint8_t *)label, sizeof(label) - 1, k, &n));
  assert_non_null(HMAC(EVP_sha256(), k, 32, img, len, out, &n));
}

static void test_v2_round_trip_and_layout(void **state) {
  struct fx *f = *state;
  static const uint64_t values[][3] = {{0, 0, 0},
                                       {1, 1, 7},
                                       {0x1112131415161718ULL, 0x0102030405060708ULL, 0x2122232425262728ULL},
                                       {UINT64_MAX, UINT64_MAX, UINT64_MAX},
                                       {UINT64_MAX, 0, 1}};
  assert_int_equal(ALN_EPOCH2_FILE_LEN, 68);
  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    uint8_t img[ALN_EPOCH_FILE_MAX + 4], mac[32];
    size_t len = 0;
    struct aln_epoch_record in = rec2(values[i][0], values[i][1], values[i][2]), got = {0};
    assert_int_equal(aln_epoch_record_encode(img, sizeof(img), &len, &f->kek, &in), ALN_OK);
    assert_int_equal(len, ALN_EPOCH2_FILE_LEN);
    assert_memory_equal(img, "ALNEPOC2", 8);
    for (int b = 0; b < 8; b++) {
      assert_int_equal(img[8 + b], (uint8_t)(in.epoch >> (8 * (7 - b))));
      assert_int_equal(img[16 + b], (uint8_t)(in.generation >> (8 * (7 - b))));
      assert_int_equal(img[28 + b], (uint8_t)(in.base >> (8 * (7 - b))));
    }
    assert_memory_equal(img + 24, "\x01\xa1\xe0\x00", 4);
    mac2(f, mac, img, 36);
    assert_memory_equal(mac, img + 36, 32);
    assert_int_equal(aln_epoch_record_decode(&got, &f->kek, img, len), ALN_OK);
    assert_int_equal(got.version, 2);
    assert_true(got.epoch == in.epoch && got.generation == in.generation && got.base == in.base);
    assert_int_equal(got.nv_index, IDX);
  }
  /* The first format still reads, through both decoders. */
  uint8_t v1[ALN_EPOCH_FILE_LEN];
  struct aln_epoch_record got = {0};
  assert_int_equal(aln_epoch_encode(v1, &f->kek, 12), ALN_OK);
  assert_int_equal(aln_epoch_record_decode(&got, &f->kek, v1, sizeof(v1)), ALN_OK);
  assert_true(got.version == 1 && got.epoch == 12 && got.generation == 0 && got.nv_index == 0 && got.base == 0);
}

static void test_v2_refusals(void **state) {
  struct fx *f = *state;
  uint8_t img[ALN_EPOCH2_FILE_LEN + 1], bad[ALN_EPOCH2_FILE_LEN + 1];
  size_t len = 0;
  struct aln_epoch_record got = {.version = 9}, r = rec2(9, 4, 1000);
  uint64_t e = 42;
  assert_int_equal(aln_epoch_record_encode(img, sizeof(img), &len, &f->kek, &r), ALN_OK);

  for (size_t n = 0; n < ALN_EPOCH2_FILE_LEN; n++)
    assert_int_equal(aln_epoch_record_decode(&got, &f->kek, img, n), ALN_ERR_TRUNCATED);
  img[ALN_EPOCH2_FILE_LEN] = 0;
  assert_int_equal(aln_epoch_record_decode(&got, &f->kek, img, sizeof(img)), ALN_ERR_TRAILING);
  for (size_t i = 0; i < 8; i++) {
    memcpy(bad, img, sizeof(bad));
    bad[i] ^= 0x20;
    assert_int_equal(aln_epoch_record_decode(&got, &f->kek, bad, ALN_EPOCH2_FILE_LEN), ALN_ERR_MALFORMED);
  }
  /* Every bit after the magic is authenticated. */
  for (size_t i = 8; i < ALN_EPOCH2_FILE_LEN; i++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(bad, img, sizeof(bad));
      bad[i] ^= (uint8_t)(1u << bit);
      assert_int_equal(aln_epoch_record_decode(&got, &f->kek, bad, ALN_EPOCH2_FILE_LEN), ALN_ERR_TAMPERED);
    }
  }
  assert_int_equal(aln_epoch_record_decode(&got, &f->other_kek, img, ALN_EPOCH2_FILE_LEN), ALN_ERR_TAMPERED);
  /* A version 1 header on a version 2 body, and the reverse: the magic decides the
   * length, so each is the wrong length (and would fail the MAC anyway). */
  memcpy(bad, img, sizeof(bad));
  bad[7] = '1';
  assert_int_equal(aln_epoch_record_decode(&got, &f->kek, bad, ALN_EPOCH2_FILE_LEN), ALN_ERR_TRAILING);
  uint8_t v1[ALN_EPOCH_FILE_LEN];
  assert_int_equal(aln_epoch_encode(v1, &f->kek, 9), ALN_OK);
  v1[7] = '2';
  assert_int_equal(aln_epoch_record_decode(&got, &f->kek, v1, sizeof(v1)), ALN_ERR_TRUNCATED);
  /* The first format's decoder and reader refuse the second format. */
  assert_int_equal(aln_epoch_decode(&e, &f->kek, img, ALN_EPOCH2_FILE_LEN), ALN_ERR_MALFORMED);
  assert_int_equal(aln_epoch_record_write(f->epoch, &f->kek, &r), ALN_OK);
  assert_int_equal(aln_epoch_read(&e, f->epoch, &f->kek), ALN_ERR_MALFORMED);
  assert_true(e == 42 && got.version == 9); /* untouched by every failure */

  /* Authentic records that no encoder writes: a generation above the epoch (every
   * custody write is also a write), an index outside the NV range. */
  static const struct {
    uint64_t epoch, generation;
    uint32_t idx;
  } meaningless[] = {{3, 4, IDX}, {0, 1, IDX}, {5, 5, 0x81000001u}, {5, 5, 0}, {5, 5, 0x02000000u}};
  for (size_t i = 0; i < sizeof(meaningless) / sizeof(meaningless[0]); i++) {
    memcpy(bad, img, ALN_EPOCH2_FILE_LEN);
    for (int b = 0; b < 8; b++) {
      bad[8 + b] = (uint8_t)(meaningless[i].epoch >> (8 * (7 - b)));
      bad[16 + b] = (uint8_t)(meaningless[i].generation >> (8 * (7 - b)));
    }
    for (int b = 0; b < 4; b++)
      bad[24 + b] = (uint8_t)(meaningless[i].idx >> (8 * (3 - b)));
    mac2(f, bad + 36, bad, 36);
    assert_int_equal(aln_epoch_record_decode(&got, &f->kek, bad, ALN_EPOCH2_FILE_LEN), ALN_ERR_MALFORMED);
    struct aln_epoch_record m = {.version = 2,
                                 .epoch = meaningless[i].epoch,
                                 .generation = meaningless[i].generation,
                                 .nv_index = meaningless[i].idx};
    assert_int_equal(aln_epoch_record_encode(bad, sizeof(bad), &len, &f->kek, &m), ALN_ERR_USAGE);
  }
  assert_true(got.version == 9);

  /* The encoder refuses what the decoder would, and a short buffer. */
  struct aln_epoch_record v3 = r, v1x = {.version = 1, .epoch = 3, .base = 1};
  v3.version = 3;
  assert_int_equal(aln_epoch_record_encode(bad, sizeof(bad), &len, &f->kek, &v3), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_record_encode(bad, sizeof(bad), &len, &f->kek, &v1x), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_record_encode(bad, ALN_EPOCH2_FILE_LEN - 1, &len, &f->kek, &r), ALN_ERR_TOO_LARGE);
  assert_int_equal(len, 0);
  assert_int_equal(aln_epoch_record_encode(bad, sizeof(bad), &len, NULL, &r), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_record_write(f->epoch, &f->kek, &v3), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_record_read(&got, f->epoch, &f->kek), ALN_OK); /* still the last good one */
  assert_true(got.version == 2 && got.epoch == 9);
}

/* A KEK rotation re-keys the file, either format, keeping its record; a retry after
 * a crash finds it done; a file under neither key, or none, is left alone. */
static void test_rekey(void **state) {
  struct fx *f = *state;
  struct aln_epoch_record r = rec2(9, 4, 77), got = {0};
  struct aln_secret third = {0};
  uint64_t e = 0;
  assert_int_equal(aln_secret_new(&third, 32), ALN_OK);
  memset(third.p, 0x5a, 32);

  assert_int_equal(aln_epoch_rekey(f->epoch, &f->kek, &f->other_kek), ALN_ERR_NOT_FOUND);
  assert_int_equal(access(f->epoch, F_OK), -1);
  assert_int_equal(aln_epoch_record_write(f->epoch, &f->kek, &r), ALN_OK);
  assert_int_equal(aln_epoch_rekey(f->epoch, &f->kek, &f->other_kek), ALN_OK);
  assert_int_equal(aln_epoch_record_read(&got, f->epoch, &f->kek), ALN_ERR_TAMPERED);
  assert_int_equal(aln_epoch_record_read(&got, f->epoch, &f->other_kek), ALN_OK);
  assert_true(got.version == 2 && got.epoch == 9 && got.generation == 4 && got.nv_index == IDX && got.base == 77);
  assert_int_equal(aln_epoch_rekey(f->epoch, &f->kek, &f->other_kek), ALN_OK); /* already done */
  assert_int_equal(aln_epoch_record_read(&got, f->epoch, &f->other_kek), ALN_OK);
  assert_int_equal(aln_epoch_rekey(f->epoch, &f->kek, &third), ALN_ERR_TAMPERED); /* under neither */
  assert_int_equal(aln_epoch_record_read(&got, f->epoch, &f->other_kek), ALN_OK);
  assert_true(got.epoch == 9 && got.base == 77);

  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 5), ALN_OK);
  assert_int_equal(aln_epoch_rekey(f->epoch, &f->kek, &third), ALN_OK);
  assert_int_equal(aln_epoch_read(&e, f->epoch, &third), ALN_OK); /* still the first format */
  assert_true(e == 5);
  assert_int_equal(aln_epoch_rekey(NULL, &f->kek, &third), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_rekey(f->epoch, NULL, &third), ALN_ERR_USAGE);
  aln_secret_free(&third);
}

/* --- start with a monotonic counter ---------------------------------------------------- */

/* A fake monotonic counter: counts every call, can be made absent, foreign, never
 * written, or failing. */
struct fake {
  int exists, foreign, written, fail_increment;
  uint64_t value;
  int reads, creates, increments, dones, freed;
};

static aln_status fake_read(void *ctx, uint64_t *out) {
  struct fake *k = ctx;
  k->reads++;
  if (!k->exists)
    return ALN_ERR_NOT_FOUND;
  if (k->foreign || !k->written)
    return ALN_ERR_TAMPERED;
  *out = k->value;
  return ALN_OK;
}

static aln_status fake_create(void *ctx, uint64_t *out) {
  struct fake *k = ctx;
  k->creates++;
  if (k->exists && k->foreign)
    return ALN_ERR_TAMPERED;
  if (!k->exists || !k->written) {
    k->exists = k->written = 1;
    k->value++; /* a first increment sets the value */
  }
  *out = k->value;
  return ALN_OK;
}

static aln_status fake_increment(void *ctx) {
  struct fake *k = ctx;
  if (k->fail_increment)
    return ALN_ERR_TPM;
  k->increments++;
  k->value++;
  return ALN_OK;
}

static void fake_done(void *ctx) {
  ((struct fake *)ctx)->dones++;
}

static void fake_free(void *ctx) {
  ((struct fake *)ctx)->freed++;
}

static struct aln_epoch_counter *fake_counter(struct fake *k, uint32_t idx) {
  struct aln_epoch_counter *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  *c = (struct aln_epoch_counter){.nv_index = idx,
                                  .ctx = k,
                                  .read = fake_read,
                                  .create = fake_create,
                                  .increment = fake_increment,
                                  .done = fake_done,
                                  .ctx_free = fake_free};
  return c;
}

static aln_status cguard(struct fx *f, struct fake *k, struct aln_epoch_info *info, int accept) {
  return aln_epoch_counter_guard(f->esc, info, f->epoch, &f->kek, fake_counter(k, IDX), accept);
}

static struct aln_epoch_record file_rec(struct fx *f) {
  struct aln_epoch_record r = {0};
  assert_int_equal(aln_epoch_record_read(&r, f->epoch, &f->kek), ALN_OK);
  return r;
}

static uint64_t db_generation(struct fx *f) {
  struct aln_escrow_counts c = {UINT64_MAX, UINT64_MAX};
  assert_int_equal(aln_escrow_counts(f->esc, &c), ALN_OK);
  return c.generation;
}

/* Brings the escrow to |epoch| and |generation| with real writes and no hook. */
static void counts_until(struct fx *f, uint64_t epoch, uint64_t generation) {
  char name[32];
  aln_escrow_set_commit_hook(f->esc, NULL, NULL, NULL);
  while (db_generation(f) < generation) {
    snprintf(name, sizeof(name), "c%llu", (unsigned long long)db_generation(f));
    assert_int_equal(put(f, name, 0), ALN_OK);
  }
  writes_until(f, epoch);
  assert_true(db_generation(f) == generation);
}

static void assert_rec(struct fx *f, uint64_t epoch, uint64_t generation, uint64_t base) {
  struct aln_epoch_record r = file_rec(f);
  assert_int_equal(r.version, 2);
  assert_int_equal(r.nv_index, IDX);
  assert_true(r.epoch == epoch);
  assert_true(r.generation == generation);
  assert_true(r.base == base);
}

/* First start defines the counter and records its value as the base; then each
 * custody write moves it exactly once, and an audit append (a credential use) does
 * not touch it at all, while both rewrite the file. */
static void test_counter_first_start_and_hook(void **state) {
  struct fx *f = *state;
  struct fake k = {.value = 500}; /* a fresh TPM counter starts at an arbitrary value */
  struct aln_epoch_info info;
  uint8_t spki[32] = {7};
  static const struct aln_audit_event ev = {.time = 1, .action = "use", .decision = "allow"};

  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  assert_true(k.creates == 1 && k.exists && k.value == 501 && k.increments == 0);
  assert_true(info.file_missing && !info.rebased && info.base == 501);
  assert_rec(f, 0, 0, 501);

  assert_int_equal(put(f, "a", 0), ALN_OK);
  assert_true(k.value == 502 && k.increments == 1);
  assert_rec(f, 1, 1, 501);
  int reads = k.reads, dones = k.dones;
  for (int i = 0; i < 5; i++)
    assert_int_equal(aln_escrow_audit_append(f->esc, &ev), ALN_OK);
  assert_true(k.value == 502 && k.increments == 1 && k.reads == reads && k.dones == dones);
  assert_rec(f, 6, 1, 501);
  assert_int_equal(put(f, "a", 1), ALN_OK);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "a", &ev), ALN_OK);
  assert_int_equal(aln_escrow_host_enroll(f->esc, spki, "h"), ALN_OK);
  assert_int_equal(aln_escrow_host_remove(f->esc, spki), ALN_OK);
  assert_true(k.value == 506 && k.increments == 5 && k.dones > dones);
  assert_rec(f, 10, 5, 501);
  /* Refused writes commit nothing and move nothing. */
  assert_int_equal(put(f, "b", 0), ALN_OK);
  assert_int_equal(put(f, "b", 0), ALN_ERR_EXISTS);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "nope", NULL), ALN_ERR_NOT_FOUND);
  assert_true(k.value == 507 && k.increments == 6);
  assert_rec(f, 11, 6, 501);

  /* A restart finds everything level and changes nothing. */
  assert_int_equal(k.freed, 0);
  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  assert_int_equal(k.freed, 1); /* the previous hook's counter was released */
  assert_true(k.increments == 6 && k.creates == 1);
  assert_true(info.db_generation == 6 && info.counter_generation == 6 && info.file_generation == 6);
  assert_rec(f, 11, 6, 501);
  aln_escrow_free(f->esc);
  f->esc = NULL;
  assert_int_equal(k.freed, 2);
}

/* The decision table for a file and counter that were level with some database. */
static void test_counter_decisions(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  uint8_t before[ALN_EPOCH_FILE_MAX + 1];
  size_t before_len = 0;
  counts_until(f, 7, 3);

  /* Level: accepted, nothing incremented. */
  struct fake k = {.exists = 1, .written = 1, .value = 1003};
  assert_int_equal(
      aln_epoch_record_write(
          f->epoch, &f->kek,
          &(struct aln_epoch_record){.version = 2, .epoch = 7, .generation = 3, .nv_index = IDX, .base = 1000}),
      ALN_OK);
  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  assert_true(k.increments == 0 && k.creates == 0 && k.value == 1003);

  /* Counter one behind the database (a crash between commit and increment), the
   * file one behind too: accepted, counter and file brought level. */
  counts_until(f, 8, 4);
  k = (struct fake){.exists = 1, .written = 1, .value = 1003};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  assert_true(k.increments == 1 && k.value == 1004);
  assert_true(info.counter_generation == 3 && info.db_generation == 4);
  assert_rec(f, 8, 4, 1000);
  /* Counter level, file one behind (a crash between increment and file update). */
  counts_until(f, 9, 5);
  k = (struct fake){.exists = 1, .written = 1, .value = 1005};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  assert_true(k.increments == 0);
  assert_rec(f, 9, 5, 1000);
  /* Several behind (increments that failed while the enclave ran): brought level. */
  counts_until(f, 12, 8);
  k = (struct fake){.exists = 1, .written = 1, .value = 1005};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  assert_true(k.increments == 3 && k.value == 1008);
  assert_rec(f, 12, 8, 1000);
  aln_escrow_set_commit_hook(f->esc, NULL, NULL, NULL);

  struct aln_secret img = {0};
  assert_int_equal(aln_keyfile_read(&img, f->epoch, sizeof(before)), ALN_OK);
  memcpy(before, img.p, img.len);
  before_len = img.len;
  aln_secret_free(&img);
#define ASSERT_FILE_UNCHANGED()                                                                                        \
  do {                                                                                                                 \
    struct aln_secret now_ = {0};                                                                                      \
    assert_int_equal(aln_keyfile_read(&now_, f->epoch, sizeof(before)), ALN_OK);                                       \
    assert_int_equal(now_.len, before_len);                                                                            \
    assert_memory_equal(now_.p, before, before_len);                                                                   \
    aln_secret_free(&now_);                                                                                            \
  } while (0)

  /* The counter vouches for more than the database holds: the database and its
   * file are an older copy. Refused, nothing incremented or rewritten. */
  k = (struct fake){.exists = 1, .written = 1, .value = 1009};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_ROLLBACK);
  assert_true(info.db_generation == 8 && info.counter_generation == 9 && k.increments == 0 && k.freed == 1);
  assert_non_null(strstr(info.why, "older than the last state this enclave committed (custody generation 8 < 9"));
  assert_non_null(strstr(info.why, "0x01a1e000"));
  ASSERT_FILE_UNCHANGED();
  k.value = UINT64_MAX; /* far ahead, and the subtraction wraps nowhere */
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_ROLLBACK);
  /* Below the file's generation: a counter never goes back, so it is not ours. */
  k = (struct fake){.exists = 1, .written = 1, .value = 1007};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_TAMPERED);
  assert_non_null(strstr(info.why, "below the value recorded"));
  /* Below the base itself: modulo 2^64 that reads as far ahead; refused either way. */
  k.value = 999;
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_ROLLBACK);
  assert_true(k.increments == 0);
  /* Gone, or redefined (foreign attributes, or never incremented): never re-based,
   * never created. */
  k = (struct fake){.exists = 0, .value = 5};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_NOT_FOUND);
  assert_true(k.creates == 0 && k.increments == 0 && !k.exists);
  assert_non_null(strstr(info.why, "no longer exists"));
  k = (struct fake){.exists = 1, .written = 1, .foreign = 1, .value = 1008};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_TAMPERED);
  assert_non_null(strstr(info.why, "not the counter this enclave recorded"));
  k = (struct fake){.exists = 1, .written = 0, .value = 1008};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_TAMPERED);
  assert_true(k.creates == 0 && k.increments == 0 && !k.written);
  /* Too far behind for a crash or a few failed increments. */
  counts_until(f, 12 + ALN_EPOCH_COUNTER_MAX_LAG + 1, 8 + ALN_EPOCH_COUNTER_MAX_LAG + 1);
  k = (struct fake){.exists = 1, .written = 1, .value = 1008};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_TPM);
  assert_true(k.increments == 0);
  /* An increment that fails at start refuses the start and leaves the file. */
  k = (struct fake){.exists = 1, .written = 1, .value = 1008 + ALN_EPOCH_COUNTER_MAX_LAG, .fail_increment = 1};
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_TPM);
  ASSERT_FILE_UNCHANGED();
  /* Another index in the file than in the setting. */
  k = (struct fake){.exists = 1, .written = 1, .value = 1008};
  assert_int_equal(aln_epoch_counter_guard(f->esc, &info, f->epoch, &f->kek, fake_counter(&k, IDX + 1), 0),
                   ALN_ERR_USAGE);
  assert_true(k.reads == 0 && k.freed == 1);
  assert_non_null(strstr(info.why, "0x01a1e000"));
  assert_non_null(strstr(info.why, "0x01a1e001"));
  ASSERT_FILE_UNCHANGED();
  assert_true(db_epoch(f) == 12 + ALN_EPOCH_COUNTER_MAX_LAG + 1); /* the guard wrote nothing to the escrow */
#undef ASSERT_FILE_UNCHANGED
}

/* An older database restored alone, under a newer file: the file refuses it before
 * the counter is consulted. A file missing after writes, or in the first format,
 * cannot vouch for the database: refused unless the operator accepts the risk,
 * which starts a new record (base = counter - generation, modulo 2^64). */
static void test_counter_file_cases(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  counts_until(f, 6, 2);
  struct fake k = {.exists = 1, .written = 1, .value = 102};

  assert_int_equal(aln_epoch_record_write(f->epoch, &f->kek,
                                          &(struct aln_epoch_record){
                                              .version = 2, .epoch = 7, .generation = 2, .nv_index = IDX, .base = 100}),
                   ALN_OK);
  assert_int_equal(cguard(f, &k, &info, 1), ALN_ERR_ROLLBACK);
  assert_non_null(strstr(info.why, "(epoch 6 < 7)"));
  assert_true(k.reads == 0);
  assert_int_equal(aln_epoch_record_write(f->epoch, &f->kek,
                                          &(struct aln_epoch_record){
                                              .version = 2, .epoch = 6, .generation = 3, .nv_index = IDX, .base = 100}),
                   ALN_OK);
  assert_int_equal(cguard(f, &k, &info, 1), ALN_ERR_ROLLBACK);
  assert_non_null(strstr(info.why, "(custody generation 2 < 3)"));
  /* A file under another KEK, or edited. */
  struct aln_epoch_record r = rec2(6, 2, 100);
  assert_int_equal(aln_epoch_record_write(f->epoch, &f->other_kek, &r), ALN_OK);
  assert_int_equal(cguard(f, &k, &info, 1), ALN_ERR_TAMPERED);
  assert_non_null(strstr(info.why, "failed authentication"));

  /* Missing after writes. */
  unlink(f->epoch);
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_EPOCH_MISSING);
  assert_non_null(strstr(info.why, "the epoch file is missing"));
  assert_int_equal(access(f->epoch, F_OK), -1);
  assert_true(k.creates == 0 && k.increments == 0);
  /* The first format: refused, also with an epoch above the database's under the
   * override. */
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 6), ALN_OK);
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_EPOCH_MISSING);
  assert_non_null(strstr(info.why, "predates the TPM NV counter"));
  assert_true(info.file_version == 1);
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 7), ALN_OK);
  assert_int_equal(cguard(f, &k, &info, 1), ALN_ERR_ROLLBACK);
  assert_true(k.creates == 0 && k.increments == 0);
  /* The override on a first-format file: a new record, the counter as it is. */
  assert_int_equal(aln_epoch_write(f->epoch, &f->kek, 6), ALN_OK);
  k = (struct fake){.exists = 1, .written = 1, .value = 1}; /* below the generation: the base wraps */
  assert_int_equal(cguard(f, &k, &info, 1), ALN_OK);
  assert_true(info.rebased && k.increments == 0 && info.base == UINT64_MAX);
  assert_rec(f, 6, 2, UINT64_MAX);
  assert_int_equal(put(f, "x", 0), ALN_OK); /* generation 3 = counter 2 */
  assert_true(k.value == 2 && k.increments == 1);
  assert_rec(f, 7, 3, UINT64_MAX);
  /* ... and on a missing file, with a counter that must be defined first. */
  unlink(f->epoch);
  k = (struct fake){.exists = 0, .value = 40};
  assert_int_equal(cguard(f, &k, &info, 1), ALN_OK);
  assert_true(info.rebased && k.creates == 1 && k.value == 41);
  assert_rec(f, 7, 3, 38);
  /* ... and on a file whose counter is gone (a KEK recovery onto another TPM) or
   * was redefined: the file's own checks still hold. */
  aln_escrow_set_commit_hook(f->esc, NULL, NULL, NULL);
  k = (struct fake){.exists = 0, .value = 70};
  assert_int_equal(aln_epoch_record_write(f->epoch, &f->kek,
                                          &(struct aln_epoch_record){
                                              .version = 2, .epoch = 8, .generation = 3, .nv_index = IDX, .base = 38}),
                   ALN_OK);
  assert_int_equal(cguard(f, &k, &info, 1), ALN_ERR_ROLLBACK); /* epoch 7 < 8 */
  assert_true(k.creates == 0 && k.reads == 0);
  assert_int_equal(aln_epoch_record_write(f->epoch, &f->kek,
                                          &(struct aln_epoch_record){
                                              .version = 2, .epoch = 7, .generation = 3, .nv_index = IDX, .base = 38}),
                   ALN_OK);
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_NOT_FOUND);
  assert_true(k.creates == 0 && !k.exists);
  assert_int_equal(cguard(f, &k, &info, 1), ALN_OK);
  assert_true(info.rebased && k.creates == 1 && k.value == 71 && info.why[0] == '\0');
  assert_rec(f, 7, 3, 68);
  aln_escrow_set_commit_hook(f->esc, NULL, NULL, NULL);
  k = (struct fake){.exists = 1, .written = 0, .value = 90}; /* redefined, never incremented */
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_TAMPERED);
  assert_int_equal(cguard(f, &k, &info, 1), ALN_OK);
  assert_rec(f, 7, 3, 88);
  /* A counter that reads is never overridden: ahead of the database stays refused. */
  aln_escrow_set_commit_hook(f->esc, NULL, NULL, NULL);
  k = (struct fake){.exists = 1, .written = 1, .value = 92};
  assert_int_equal(cguard(f, &k, &info, 1), ALN_ERR_ROLLBACK);
  assert_true(!info.rebased && k.creates == 0 && k.increments == 0);
  assert_rec(f, 7, 3, 88);
  /* A foreign index is never taken over, not even on the first start. */
  k = (struct fake){.exists = 1, .written = 1, .foreign = 1, .value = 40};
  assert_int_equal(cguard(f, &k, &info, 1), ALN_ERR_TAMPERED);
  assert_non_null(strstr(info.why, "not a counter this enclave defines"));
  unlink(f->epoch);
  assert_int_equal(cguard(f, &k, &info, 1), ALN_ERR_TAMPERED);
  assert_int_equal(access(f->epoch, F_OK), -1);
}

/* The commit hook: an increment that fails does not fail the write (it is
 * durable), but the escrow refuses everything until a retry moves the counter; the
 * file meanwhile records the epoch and only the generation the counter reached. A
 * counter something else moved ahead, or one that went back, keeps everything
 * refused, and the next start refuses too. */
static void test_counter_hook_failures(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  struct fake k = {.value = 10};
  struct aln_secret s = {0};

  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK); /* base 11 */
  assert_int_equal(put(f, "a", 0), ALN_OK);
  assert_true(k.value == 12);
  k.fail_increment = 1;
  assert_int_equal(put(f, "b", 0), ALN_OK); /* committed, then the increment failed */
  assert_true(k.value == 12 && db_generation(f) == 2);
  assert_rec(f, 2, 1, 11);
  assert_int_equal(put(f, "c", 0), ALN_ERR_TPM);
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "a", 0), ALN_ERR_TPM);
  assert_true(db_epoch(f) == 2 && db_generation(f) == 2 && k.value == 12);
  k.fail_increment = 0;
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "b", 0), ALN_OK); /* the retry moved it */
  aln_secret_free(&s);
  assert_true(k.value == 13 && k.increments == 2);
  assert_rec(f, 2, 2, 11);
  /* Failed, then the process dies: the next start repairs it. */
  k.fail_increment = 1;
  assert_int_equal(put(f, "d", 0), ALN_OK);
  assert_rec(f, 3, 2, 11);
  k.fail_increment = 0;
  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  assert_true(k.value == 14);
  assert_rec(f, 3, 3, 11);
  /* Something else increments the counter past the database: never incremented
   * further, and the next start refuses. (While running this cannot be told from
   * another process writing this escrow, which test_counter_two_writers covers.) */
  k.value += 2;
  assert_int_equal(put(f, "e", 0), ALN_OK);
  assert_true(k.value == 16 && k.increments == 3);
  assert_int_equal(cguard(f, &k, &info, 0), ALN_ERR_ROLLBACK);
  assert_true(info.counter_generation == 5 && info.db_generation == 4);
  /* A counter that goes back is not ours: everything stops. */
  k.value = 15;
  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  k.value = 14;
  assert_int_equal(put(f, "f", 0), ALN_OK);
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "f", 0), ALN_ERR_TAMPERED);
  assert_true(k.value == 14);
}

/* Two processes writing one escrow (serve and a "host" command): each catch-up
 * counts from the value it reads, so a hook retried after another process already
 * brought the counter level with a later commit does not increment again, and the
 * counter never gets ahead of the database. */
static void test_counter_two_writers(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  struct aln_escrow *b = NULL;
  struct fake k = {.value = 100};
  struct aln_secret s = {0};

  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK); /* base 101 */
  assert_int_equal(aln_escrow_open(&b, f->db, &f->kek, 0), ALN_OK);
  assert_int_equal(aln_epoch_counter_guard(b, &info, f->epoch, &f->kek, fake_counter(&k, IDX), 0), ALN_OK);
  k.fail_increment = 1;
  assert_int_equal(put(f, "a", 0), ALN_OK); /* A: generation 1, its increment failed */
  k.fail_increment = 0;
  assert_int_equal(aln_escrow_put(b, NULL,
                                  &(struct aln_cred_input){.name = "b",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)"s",
                                                           .secret_len = 1,
                                                           .binding = (const uint8_t *)k_binding,
                                                           .binding_len = sizeof(k_binding) - 1},
                                  NULL),
                   ALN_OK); /* B: generation 2, counter brought to it */
  assert_true(k.value == 103 && k.increments == 2);
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "a", 0), ALN_OK); /* A's retry: nothing to do */
  aln_secret_free(&s);
  assert_true(k.value == 103 && k.increments == 2);
  aln_escrow_free(b);
  assert_int_equal(cguard(f, &k, &info, 0), ALN_OK);
  assert_true(info.counter_generation == 2 && info.db_generation == 2 && k.increments == 2);
}

static void test_counter_guard_usage(void **state) {
  struct fx *f = *state;
  struct aln_epoch_info info;
  struct fake k = {0};
  assert_int_equal(aln_epoch_counter_guard(f->esc, &info, f->epoch, &f->kek, NULL, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_counter_guard(NULL, &info, f->epoch, &f->kek, fake_counter(&k, IDX), 0), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_counter_guard(f->esc, &info, "", &f->kek, fake_counter(&k, IDX), 0), ALN_ERR_USAGE);
  assert_int_equal(aln_epoch_counter_guard(f->esc, &info, f->epoch, NULL, fake_counter(&k, IDX), 0), ALN_ERR_USAGE);
  assert_int_equal(k.freed, 3); /* owned on every path */
  assert_true(k.reads == 0 && k.creates == 0);
  assert_int_equal(access(f->epoch, F_OK), -1);
  aln_epoch_counter_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip_and_layout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mac_is_under_derived_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decode_refusals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_write_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_first_start_creates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_missing_file_after_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_bad_mac, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_rollback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_accepts_and_repairs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_failure_keeps_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_usage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_every_write_bumps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tampered_meta, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v2_round_trip_and_layout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v2_refusals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rekey, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counter_first_start_and_hook, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counter_decisions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counter_file_cases, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counter_hook_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counter_two_writers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counter_guard_usage, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
