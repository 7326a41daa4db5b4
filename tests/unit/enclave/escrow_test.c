/* Tests for enclave/escrow: sealing round trips, versions, revocation tombstones,
 * input validation that changes nothing, expiry, and the properties an attacker with
 * write access to the database file must not defeat: the plaintext never reaches the
 * file, wiped ciphertexts leave it, and every edit of a sealed record (ciphertext,
 * tag, wrapped key, binding, id, version, name, expiry, swapped rows) or of the audit
 * chain is reported as ALN_ERR_TAMPERED while untouched records still open. Each test
 * runs in its own mkdtemp directory and edits the file through its own SQLite
 * connection, as an attacker would. */
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
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>

#include "enclave/escrow.h"
#include "proto/cbs.h"

/* Exactly 40 distinctive bytes: a hit in the file can only be a leak. */
static const char k_canary[] = "CANARY-7f3a9c1e-5b2d-4086-aileron-SECRET";
/* Stored in clear as metadata: the positive control that the file search works. */
static const char k_binding_marker[] = "BINDING-MARKER-4c1d9e";

struct fx {
  char dir[64];
  char db[128];
  struct aln_secret kek;
  struct aln_escrow *esc;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return -1;
  strcpy(f->dir, "/tmp/aln-escrow-XXXXXX");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  snprintf(f->db, sizeof(f->db), "%s/escrow.db", f->dir);
  if (aln_secret_new(&f->kek, 32) != ALN_OK || RAND_bytes(f->kek.p, 32) != 1)
    return -1;
  if (aln_escrow_open(&f->esc, f->db, &f->kek, 0) != ALN_OK)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  char p[160];
  aln_escrow_free(f->esc);
  unlink(f->db);
  snprintf(p, sizeof(p), "%s-wal", f->db);
  unlink(p);
  snprintf(p, sizeof(p), "%s-shm", f->db);
  unlink(p);
  rmdir(f->dir);
  aln_secret_free(&f->kek);
  free(f);
  return 0;
}

static void reopen(struct fx *f, const struct aln_secret *kek) {
  aln_escrow_free(f->esc);
  f->esc = NULL;
  assert_int_equal(aln_escrow_open(&f->esc, f->db, kek, 0), ALN_OK);
}

static aln_status put(struct fx *f, const char *name, const char *secret, int replace) {
  return aln_escrow_put(f->esc, NULL,
                        &(struct aln_cred_input){.name = name,
                                                 .kind = ALN_CRED_KIND_SECRET,
                                                 .secret = (const uint8_t *)secret,
                                                 .secret_len = strlen(secret),
                                                 .binding = (const uint8_t *)k_binding_marker,
                                                 .binding_len = strlen(k_binding_marker),
                                                 .expires_at = 0,
                                                 .replace = replace},
                        NULL);
}

/* assert_opens checks that |name| unseals to exactly |secret|. */
static void assert_opens(struct fx *f, const char *name, const char *secret) {
  struct aln_secret s = {0};
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, name, (int64_t)time(NULL)), ALN_OK);
  assert_int_equal(s.len, strlen(secret));
  assert_memory_equal(s.p, secret, s.len);
  aln_secret_free(&s);
}

/* assert_unseal_fails checks the status and that no secret came back. */
static void assert_unseal_fails(struct fx *f, const char *name, int64_t now, aln_status want) {
  struct aln_secret s = {(uint8_t *)1, 1};
  struct aln_cred_meta m;
  memset(&m, 0xaa, sizeof(m));
  assert_int_equal(aln_escrow_unseal(f->esc, &s, &m, name, now), want);
  assert_null(s.p);
  assert_int_equal(s.len, 0);
  assert_null(m.binding);
}

/* --- the attacker's direct access to the file --- */

static sqlite3 *raw_open(struct fx *f) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static void raw_exec(struct fx *f, const char *sql) {
  sqlite3 *db = raw_open(f);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static int64_t raw_int(struct fx *f, const char *sql) {
  sqlite3 *db = raw_open(f);
  sqlite3_stmt *s = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

/* raw_blob copies the blob |sql| selects into |buf|; returns its length. */
static size_t raw_blob(struct fx *f, const char *sql, uint8_t *buf, size_t cap) {
  sqlite3 *db = raw_open(f);
  sqlite3_stmt *s = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  const void *p = sqlite3_column_blob(s, 0);
  size_t len = (size_t)sqlite3_column_bytes(s, 0);
  assert_non_null(p);
  assert_true(len <= cap);
  memcpy(buf, p, len);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return len;
}

/* raw_set_blob runs |sql| with ?1 bound to |buf|. */
static void raw_set_blob(struct fx *f, const char *sql, const uint8_t *buf, size_t len) {
  sqlite3 *db = raw_open(f);
  sqlite3_stmt *s = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_bind_blob(s, 1, buf, (int)len, SQLITE_TRANSIENT), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_DONE);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

/* flip_byte xors one byte of the live row's |column| of |name|: at |off| from the
 * start, or from the end when |off| is negative. */
static void flip_byte(struct fx *f, const char *name, const char *column, long off) {
  char sql[256];
  uint8_t buf[ALN_BINDING_MAX];
  snprintf(sql, sizeof(sql), "SELECT %s FROM credentials WHERE name = '%s' AND live = 1", column, name);
  size_t len = raw_blob(f, sql, buf, sizeof(buf));
  size_t i = off >= 0 ? (size_t)off : len - (size_t)(-off);
  assert_true(i < len);
  buf[i] ^= 0x01;
  snprintf(sql, sizeof(sql), "UPDATE credentials SET %s = ?1 WHERE name = '%s' AND live = 1", column, name);
  raw_set_blob(f, sql, buf, len);
}

/* count_in_files counts |needle| in the database file and its WAL, read raw. */
static size_t count_in_files(struct fx *f, const uint8_t *needle, size_t needle_len) {
  const char *suffixes[] = {"", "-wal"};
  size_t total = 0;
  for (size_t i = 0; i < 2; i++) {
    char p[160];
    snprintf(p, sizeof(p), "%s%s", f->db, suffixes[i]);
    FILE *fp = fopen(p, "rb");
    if (fp == NULL)
      continue;
    size_t cap = 1 << 16, len = 0, n;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    while ((n = fread(buf + len, 1, cap - len, fp)) > 0) {
      len += n;
      if (len == cap) {
        cap *= 2;
        buf = realloc(buf, cap);
        assert_non_null(buf);
      }
    }
    fclose(fp);
    total += aln_memmem_count(buf, len, needle, needle_len);
    free(buf);
  }
  return total;
}

static void assert_chain(struct fx *f, aln_status want, size_t want_num) {
  size_t n = 99;
  assert_int_equal(aln_escrow_audit_verify_chain(f->esc, &n), want);
  if (want == ALN_OK)
    assert_int_equal(n, want_num);
}

/* --- round trip, list, versions --- */

static void test_round_trip(void **state) {
  struct fx *f = *state;
  struct aln_cred_meta m;
  int64_t before = (int64_t)time(NULL);
  assert_int_equal(aln_escrow_put(f->esc, &m,
                                  &(struct aln_cred_input){.name = "github.token",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)k_canary,
                                                           .secret_len = strlen(k_canary),
                                                           .binding = (const uint8_t *)"bind",
                                                           .binding_len = 4,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  NULL),
                   ALN_OK);
  assert_string_equal(m.name, "github.token");
  assert_int_equal(m.version, 1);
  assert_int_equal(m.revoked, 0);
  assert_int_equal(m.binding_len, 4);
  assert_memory_equal(m.binding, "bind", 4);
  assert_true(m.created_at >= before && m.created_at <= (int64_t)time(NULL));
  aln_cred_meta_cleanup(&m);
  assert_null(m.binding);

  struct aln_secret s = {0};
  assert_int_equal(aln_escrow_unseal(f->esc, &s, &m, "github.token", (int64_t)time(NULL)), ALN_OK);
  assert_int_equal(s.len, strlen(k_canary));
  assert_memory_equal(s.p, k_canary, s.len);
  assert_int_equal(m.version, 1);
  assert_memory_equal(m.binding, "bind", 4);
  aln_secret_free(&s);
  aln_cred_meta_cleanup(&m);

  /* It survives a restart with the same KEK; a name never stored is NOT_FOUND. */
  reopen(f, &f->kek);
  assert_opens(f, "github.token", k_canary);
  assert_unseal_fails(f, "nope", (int64_t)time(NULL), ALN_ERR_NOT_FOUND);
}

static void test_size_boundaries(void **state) {
  struct fx *f = *state;
  uint8_t *big = malloc(ALN_BINDING_MAX + 1);
  assert_non_null(big);
  for (size_t i = 0; i < ALN_BINDING_MAX + 1; i++)
    big[i] = (uint8_t)(i * 7 + 3);
  const uint8_t *b = (const uint8_t *)"b";

  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "s",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = big,
                                                           .secret_len = 0,
                                                           .binding = b,
                                                           .binding_len = 1,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  NULL),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "s",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = big,
                                                           .secret_len = ALN_SECRET_MAX + 1,
                                                           .binding = b,
                                                           .binding_len = 1,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  NULL),
                   ALN_ERR_TOO_LARGE);
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "s",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = big,
                                                           .secret_len = 1,
                                                           .binding = b,
                                                           .binding_len = 0,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  NULL),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "s",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = big,
                                                           .secret_len = 1,
                                                           .binding = big,
                                                           .binding_len = ALN_BINDING_MAX + 1,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  NULL),
                   ALN_ERR_TOO_LARGE);
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "s",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = big,
                                                           .secret_len = 1,
                                                           .binding = b,
                                                           .binding_len = 1,
                                                           .expires_at = -1,
                                                           .replace = 0},
                                  NULL),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "s",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = NULL,
                                                           .secret_len = 1,
                                                           .binding = b,
                                                           .binding_len = 1,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  NULL),
                   ALN_ERR_USAGE);
  assert_int_equal(aln_escrow_put(NULL, NULL,
                                  &(struct aln_cred_input){.name = "s",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = big,
                                                           .secret_len = 1,
                                                           .binding = b,
                                                           .binding_len = 1,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  NULL),
                   ALN_ERR_USAGE);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM credentials"), 0);

  /* Both maxima are accepted and round-trip exactly. */
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "s",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = big,
                                                           .secret_len = ALN_SECRET_MAX,
                                                           .binding = big,
                                                           .binding_len = ALN_BINDING_MAX,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  NULL),
                   ALN_OK);
  struct aln_secret s = {0};
  struct aln_cred_meta m;
  assert_int_equal(aln_escrow_unseal(f->esc, &s, &m, "s", (int64_t)time(NULL)), ALN_OK);
  assert_int_equal(s.len, ALN_SECRET_MAX);
  assert_memory_equal(s.p, big, ALN_SECRET_MAX);
  assert_int_equal(m.binding_len, ALN_BINDING_MAX);
  assert_memory_equal(m.binding, big, ALN_BINDING_MAX);
  aln_secret_free(&s);
  aln_cred_meta_cleanup(&m);
  free(big);
}

static void test_list(void **state) {
  struct fx *f = *state;
  assert_int_equal(put(f, "zeta", "s1", 0), ALN_OK);
  assert_int_equal(put(f, "Alpha", "s2", 0), ALN_OK);
  assert_int_equal(put(f, "mid", "s3", 0), ALN_OK);
  assert_int_equal(put(f, "mid", "s3-new", 1), ALN_OK);
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "exp",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)k_canary,
                                                           .secret_len = strlen(k_canary),
                                                           .binding = (const uint8_t *)"B2",
                                                           .binding_len = 2,
                                                           .expires_at = 12345,
                                                           .replace = 0},
                                  NULL),
                   ALN_OK);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "zeta", NULL), ALN_OK);

  struct aln_cred_meta *l = NULL;
  size_t n = 0;
  int more = 0;
  assert_int_equal(aln_escrow_list(f->esc, NULL, ALN_LIST_PAGE_MAX, &l, &n, &more), ALN_OK);
  assert_int_equal(n, 4); /* one entry per name: the newest version */
  /* Byte order: upper case sorts first. */
  assert_string_equal(l[0].name, "Alpha");
  assert_string_equal(l[1].name, "exp");
  assert_string_equal(l[2].name, "mid");
  assert_string_equal(l[3].name, "zeta");
  assert_int_equal(l[0].version, 1);
  assert_int_equal(l[2].version, 2);
  assert_int_equal(l[0].revoked, 0);
  assert_int_equal(l[3].revoked, 1);
  assert_int_equal(l[1].expires_at, 12345);
  assert_int_equal(l[0].expires_at, 0);
  assert_int_equal(l[1].binding_len, 2);
  assert_memory_equal(l[1].binding, "B2", 2);
  for (size_t i = 0; i < n; i++) {
    assert_true(l[i].created_at > 0);
    assert_int_equal(aln_memmem_count(l[i].binding, l[i].binding_len, (const uint8_t *)k_canary, strlen(k_canary)), 0);
  }
  assert_int_equal(more, 0);
  aln_escrow_list_free(l, n);

  /* Pages: two names, then the two after the last one returned. */
  assert_int_equal(aln_escrow_list(f->esc, NULL, 2, &l, &n, &more), ALN_OK);
  assert_int_equal(n, 2);
  assert_int_equal(more, 1);
  assert_string_equal(l[0].name, "Alpha");
  assert_string_equal(l[1].name, "exp");
  assert_int_equal(l[1].kind, ALN_CRED_KIND_SECRET);
  aln_escrow_list_free(l, n);
  assert_int_equal(aln_escrow_list(f->esc, "exp", 2, &l, &n, &more), ALN_OK);
  assert_int_equal(n, 2);
  assert_int_equal(more, 0);
  assert_string_equal(l[0].name, "mid");
  assert_string_equal(l[1].name, "zeta");
  aln_escrow_list_free(l, n);
  /* A page that ends exactly at the last name says no more follow. */
  assert_int_equal(aln_escrow_list(f->esc, "Alpha", 3, &l, &n, &more), ALN_OK);
  assert_int_equal(n, 3);
  assert_int_equal(more, 0);
  aln_escrow_list_free(l, n);
  /* Bad limits and cursors are refused with nothing returned. */
  assert_int_equal(aln_escrow_list(f->esc, NULL, 0, &l, &n, &more), ALN_ERR_USAGE);
  assert_int_equal(aln_escrow_list(f->esc, NULL, ALN_LIST_PAGE_MAX + 1, &l, &n, &more), ALN_ERR_USAGE);
  assert_int_equal(aln_escrow_list(f->esc, "../x", 2, &l, &n, &more), ALN_ERR_BAD_NAME);
  assert_null(l);
  assert_int_equal(n, 0);

  /* An empty store lists nothing. */
  raw_exec(f, "DELETE FROM credentials");
  assert_int_equal(aln_escrow_list(f->esc, NULL, ALN_LIST_PAGE_MAX, &l, &n, &more), ALN_OK);
  assert_int_equal(n, 0);
  aln_escrow_list_free(l, n);
}

static void test_exists_without_replace(void **state) {
  struct fx *f = *state;
  assert_int_equal(put(f, "a", "first", 0), ALN_OK);
  assert_int_equal(put(f, "a", "second", 0), ALN_ERR_EXISTS);
  assert_opens(f, "a", "first");
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM credentials"), 1);
  /* replace on a name that does not exist simply creates version 1 */
  assert_int_equal(put(f, "b", "x", 1), ALN_OK);
  assert_int_equal(raw_int(f, "SELECT version FROM credentials WHERE name = 'b'"), 1);
}

static void test_replace(void **state) {
  struct fx *f = *state;
  struct aln_cred_meta m;
  assert_int_equal(put(f, "a", "old-secret", 0), ALN_OK);
  assert_int_equal(aln_escrow_put(f->esc, &m,
                                  &(struct aln_cred_input){.name = "a",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)"new-secret",
                                                           .secret_len = 10,
                                                           .binding = (const uint8_t *)"nb",
                                                           .binding_len = 2,
                                                           .expires_at = 0,
                                                           .replace = 1},
                                  NULL),
                   ALN_OK);
  assert_int_equal(m.version, 2);
  aln_cred_meta_cleanup(&m);
  assert_opens(f, "a", "new-secret");
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM credentials WHERE name = 'a'"), 2);
  assert_int_equal(raw_int(f, "SELECT live = 0 AND revoked = 0 AND ciphertext IS NULL AND wrapped_key IS NULL"
                              " FROM credentials WHERE name = 'a' AND version = 1"),
                   1);
  assert_int_equal(raw_int(f, "SELECT live = 1 AND ciphertext IS NOT NULL AND wrapped_key IS NOT NULL"
                              " FROM credentials WHERE name = 'a' AND version = 2"),
                   1);
  assert_int_equal(put(f, "a", "third", 1), ALN_OK);
  assert_int_equal(raw_int(f, "SELECT MAX(version) FROM credentials WHERE name = 'a'"), 3);
  assert_opens(f, "a", "third");
}

static void test_revoke(void **state) {
  struct fx *f = *state;
  struct aln_cred_meta m;
  assert_int_equal(put(f, "a", "s-a", 0), ALN_OK);
  assert_int_equal(put(f, "b", "s-b", 0), ALN_OK);
  assert_int_equal(aln_escrow_revoke(f->esc, &m, "a", NULL), ALN_OK);
  assert_string_equal(m.name, "a");
  assert_int_equal(m.revoked, 1);
  assert_int_equal(m.version, 1);
  aln_cred_meta_cleanup(&m);

  assert_unseal_fails(f, "a", (int64_t)time(NULL), ALN_ERR_REVOKED);
  assert_opens(f, "b", "s-b");
  /* The tombstone keeps its metadata and loses its key material. */
  assert_int_equal(raw_int(f, "SELECT revoked = 1 AND live = 0 AND ciphertext IS NULL AND wrapped_key IS NULL"
                              " AND length(binding) > 0 FROM credentials WHERE name = 'a'"),
                   1);
  assert_int_equal(aln_escrow_revoke(f->esc, &m, "a", NULL), ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "never", NULL), ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "../a", NULL), ALN_ERR_BAD_NAME);

  /* A revoked name can be stored again, as a new version, without replace. */
  assert_int_equal(put(f, "a", "s-a2", 0), ALN_OK);
  assert_int_equal(raw_int(f, "SELECT version FROM credentials WHERE name = 'a' AND live = 1"), 2);
  assert_opens(f, "a", "s-a2");
  assert_int_equal(raw_int(f, "SELECT revoked FROM credentials WHERE name = 'a' AND version = 1"), 1);
}

/* A write that fails half way (here a trigger planted in the file aborts the sealing
 * UPDATE, after the INSERT and the retirement of the old version) must roll back. */
static void test_failed_write_changes_nothing(void **state) {
  struct fx *f = *state;
  struct aln_cred_meta m;
  assert_int_equal(put(f, "a", "old", 0), ALN_OK);
  raw_exec(f, "CREATE TRIGGER no_seal BEFORE UPDATE OF ciphertext ON credentials"
              " WHEN NEW.ciphertext IS NOT NULL BEGIN SELECT RAISE(ABORT, 'injected'); END");
  assert_int_equal(aln_escrow_put(f->esc, &m,
                                  &(struct aln_cred_input){.name = "a",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)"new",
                                                           .secret_len = 3,
                                                           .binding = (const uint8_t *)"b",
                                                           .binding_len = 1,
                                                           .expires_at = 0,
                                                           .replace = 1},
                                  NULL),
                   ALN_ERR_STORE);
  assert_null(m.binding);
  assert_int_equal(put(f, "b", "x", 0), ALN_ERR_STORE);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM credentials"), 1);
  assert_int_equal(raw_int(f, "SELECT live = 1 AND ciphertext IS NOT NULL AND wrapped_key IS NOT NULL"
                              " FROM credentials WHERE name = 'a'"),
                   1);
  assert_opens(f, "a", "old");

  raw_exec(f, "DROP TRIGGER no_seal;"
              "CREATE TRIGGER no_revoke BEFORE UPDATE OF revoked ON credentials"
              " BEGIN SELECT RAISE(ABORT, 'injected'); END;"
              "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'injected'); END");
  assert_int_equal(aln_escrow_revoke(f->esc, &m, "a", NULL), ALN_ERR_STORE);
  assert_null(m.binding);
  assert_opens(f, "a", "old");
  struct aln_audit_event ev = {.time = 1, .actor = "x"};
  assert_int_equal(aln_escrow_audit_append(f->esc, &ev), ALN_ERR_STORE);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM audit"), 0);

  /* The store is usable afterwards and no version number was consumed. */
  raw_exec(f, "DROP TRIGGER no_revoke; DROP TRIGGER no_audit");
  assert_int_equal(put(f, "a", "new", 1), ALN_OK);
  assert_int_equal(raw_int(f, "SELECT version FROM credentials WHERE name = 'a' AND live = 1"), 2);
  assert_opens(f, "a", "new");
  assert_int_equal(aln_escrow_audit_append(f->esc, &ev), ALN_OK);
  assert_chain(f, ALN_OK, 1);
}

/* A write and its audit row commit together: if the row cannot be written the write
 * is rolled back, and when both succeed the row is in the chain. */
static void test_write_and_audit_row_are_one_transaction(void **state) {
  struct fx *f = *state;
  struct aln_audit_event put_ev = {.time = 1, .actor = "operator", .action = "put", .credential = "a"};
  struct aln_audit_event rev_ev = {.time = 2, .actor = "operator", .action = "revoke", .credential = "a"};
  const uint8_t *b = (const uint8_t *)k_binding_marker;
  size_t b_len = strlen(k_binding_marker);

  raw_exec(f, "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'injected'); END");
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "a",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)"s1",
                                                           .secret_len = 2,
                                                           .binding = b,
                                                           .binding_len = b_len,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  &put_ev),
                   ALN_ERR_STORE);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM credentials"), 0);
  raw_exec(f, "DROP TRIGGER no_audit");

  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "a",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)"s1",
                                                           .secret_len = 2,
                                                           .binding = b,
                                                           .binding_len = b_len,
                                                           .expires_at = 0,
                                                           .replace = 0},
                                  &put_ev),
                   ALN_OK);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM audit WHERE action = 'put' AND credential = 'a'"), 1);

  raw_exec(f, "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'injected'); END");
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "a", &rev_ev), ALN_ERR_STORE);
  assert_opens(f, "a", "s1"); /* the revoke was rolled back with its row */
  raw_exec(f, "DROP TRIGGER no_audit");
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "a", &rev_ev), ALN_OK);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM audit"), 2);
  assert_chain(f, ALN_OK, 2);
}

static void assert_lists_equal(struct aln_cred_meta *a, size_t na, struct aln_cred_meta *b, size_t nb) {
  assert_int_equal(na, nb);
  for (size_t i = 0; i < na; i++) {
    assert_string_equal(a[i].name, b[i].name);
    assert_int_equal(a[i].version, b[i].version);
    assert_int_equal(a[i].revoked, b[i].revoked);
  }
}

static void test_bad_names_change_nothing(void **state) {
  struct fx *f = *state;
  char long_name[ALN_NAME_MAX + 2];
  memset(long_name, 'x', ALN_NAME_MAX + 1);
  long_name[ALN_NAME_MAX + 1] = '\0';
  const char *bad[] = {"", long_name, "a/b", "..", "-rf", "has space", ".git", NULL};

  assert_int_equal(put(f, "keep", "k", 0), ALN_OK);
  struct aln_cred_meta *before = NULL, *after = NULL;
  size_t nb = 0, na = 0;
  int more = 0;
  assert_int_equal(aln_escrow_list(f->esc, NULL, ALN_LIST_PAGE_MAX, &before, &nb, &more), ALN_OK);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct aln_secret s = {0};
    assert_false(aln_cred_name_valid_str(bad[i])); /* the rule itself: tests/unit/proto/names_test.c */
    assert_int_equal(aln_escrow_put(f->esc, NULL,
                                    &(struct aln_cred_input){.name = bad[i],
                                                             .kind = ALN_CRED_KIND_SECRET,
                                                             .secret = (const uint8_t *)"v",
                                                             .secret_len = 1,
                                                             .binding = (const uint8_t *)"b",
                                                             .binding_len = 1,
                                                             .expires_at = 0,
                                                             .replace = 1},
                                    NULL),
                     ALN_ERR_BAD_NAME);
    assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, bad[i], 0), ALN_ERR_BAD_NAME);
    assert_null(s.p);
    assert_int_equal(aln_escrow_revoke(f->esc, NULL, bad[i], NULL), ALN_ERR_BAD_NAME);
  }
  assert_int_equal(aln_escrow_list(f->esc, NULL, ALN_LIST_PAGE_MAX, &after, &na, &more), ALN_OK);
  assert_lists_equal(before, nb, after, na);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM credentials"), 1);
  aln_escrow_list_free(before, nb);
  aln_escrow_list_free(after, na);

  /* One byte shorter, the same name is the largest accepted. */
  long_name[ALN_NAME_MAX] = '\0';
  assert_int_equal(put(f, long_name, "v", 0), ALN_OK);
  assert_opens(f, long_name, "v");
}

static void test_expiry(void **state) {
  struct fx *f = *state;
  const int64_t t = 1700000000;
  assert_int_equal(aln_escrow_put(f->esc, NULL,
                                  &(struct aln_cred_input){.name = "e",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)"sec",
                                                           .secret_len = 3,
                                                           .binding = (const uint8_t *)"b",
                                                           .binding_len = 1,
                                                           .expires_at = t + 100,
                                                           .replace = 0},
                                  NULL),
                   ALN_OK);
  assert_int_equal(put(f, "forever", "sec", 0), ALN_OK);
  struct aln_secret s = {0};
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "e", t + 99), ALN_OK);
  aln_secret_free(&s);
  assert_unseal_fails(f, "e", t + 100, ALN_ERR_EXPIRED);
  assert_unseal_fails(f, "e", t + 10000, ALN_ERR_EXPIRED);
  assert_int_equal(aln_escrow_unseal(f->esc, &s, NULL, "forever", INT64_MAX), ALN_OK);
  aln_secret_free(&s);

  /* Extending the life by editing the file does not work: expiry is authenticated. */
  raw_exec(f, "UPDATE credentials SET expires_at = 0 WHERE name = 'e'");
  assert_unseal_fails(f, "e", t + 100, ALN_ERR_TAMPERED);
  /* Nor does shortening it: any edit of the field breaks the seal. */
  raw_exec(f, "UPDATE credentials SET expires_at = 1000 WHERE name = 'forever'");
  assert_unseal_fails(f, "forever", 999, ALN_ERR_TAMPERED);
  assert_unseal_fails(f, "forever", 1000, ALN_ERR_EXPIRED);
}

/* --- what reaches the disk --- */

static void test_secret_never_in_file(void **state) {
  struct fx *f = *state;
  assert_int_equal(sizeof(k_canary) - 1, 40);
  assert_int_equal(put(f, "canary", k_canary, 0), ALN_OK);
  assert_int_equal(put(f, "canary2", k_canary, 0), ALN_OK);
  assert_int_equal(put(f, "canary", k_canary, 1), ALN_OK);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "canary2", NULL), ALN_OK);
  assert_opens(f, "canary", k_canary);

  /* The search sees the file as written: the clear-text binding is found. */
  assert_true(count_in_files(f, (const uint8_t *)k_binding_marker, strlen(k_binding_marker)) >= 1);
  assert_int_equal(count_in_files(f, (const uint8_t *)k_canary, 40), 0);
  /* nor any 16-byte window of it */
  for (size_t off = 0; off + 16 <= 40; off += 8)
    assert_int_equal(count_in_files(f, (const uint8_t *)k_canary + off, 16), 0);

  /* and still not after the WAL is folded into the database */
  aln_escrow_free(f->esc);
  f->esc = NULL;
  assert_int_equal(count_in_files(f, (const uint8_t *)k_canary, 40), 0);
  assert_true(count_in_files(f, (const uint8_t *)k_binding_marker, strlen(k_binding_marker)) >= 1);
  reopen(f, &f->kek);
}

static void test_wiped_ciphertext_leaves_file(void **state) {
  struct fx *f = *state;
  uint8_t ct_revoked[128], ct_replaced[128], wk[128];
  assert_int_equal(put(f, "r", k_canary, 0), ALN_OK);
  assert_int_equal(put(f, "p", k_canary, 0), ALN_OK);
  size_t ct_r_len = raw_blob(f, "SELECT ciphertext FROM credentials WHERE name = 'r'", ct_revoked, sizeof(ct_revoked));
  size_t ct_p_len =
      raw_blob(f, "SELECT ciphertext FROM credentials WHERE name = 'p'", ct_replaced, sizeof(ct_replaced));
  size_t wk_len = raw_blob(f, "SELECT wrapped_key FROM credentials WHERE name = 'r'", wk, sizeof(wk));
  assert_int_equal(ct_r_len, 12 + 40 + 16);
  assert_int_equal(wk_len, 12 + 32 + 16);
  assert_true(count_in_files(f, ct_revoked, ct_r_len) >= 1);
  assert_true(count_in_files(f, ct_replaced, ct_p_len) >= 1);
  assert_true(count_in_files(f, wk, wk_len) >= 1);

  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "r", NULL), ALN_OK);
  assert_int_equal(put(f, "p", "other", 1), ALN_OK);
  assert_int_equal(count_in_files(f, ct_revoked, ct_r_len), 0);
  assert_int_equal(count_in_files(f, ct_replaced, ct_p_len), 0);
  assert_int_equal(count_in_files(f, wk, wk_len), 0);
}

static void test_file_modes(void **state) {
  struct fx *f = *state;
  struct stat sb;
  char p[160];
  assert_int_equal(put(f, "a", "x", 0), ALN_OK);
  assert_int_equal(stat(f->db, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  snprintf(p, sizeof(p), "%s-wal", f->db);
  assert_int_equal(stat(p, &sb), 0);
  assert_int_equal(sb.st_mode & 077, 0);

  /* A file loosened behind our back is tightened on the next open. */
  aln_escrow_free(f->esc);
  f->esc = NULL;
  assert_int_equal(chmod(f->db, 0644), 0);
  reopen(f, &f->kek);
  assert_int_equal(stat(f->db, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);

  /* A symlinked database is refused, not followed. */
  char link[160];
  struct aln_escrow *e = NULL;
  snprintf(link, sizeof(link), "%s/link.db", f->dir);
  assert_int_equal(symlink(f->db, link), 0);
  assert_int_not_equal(aln_escrow_open(&e, link, &f->kek, 0), ALN_OK);
  assert_null(e);
  unlink(link);
}

static void test_open_refusals(void **state) {
  struct fx *f = *state;
  struct aln_escrow *e = NULL;
  struct aln_secret short_kek = {0};
  assert_int_equal(aln_secret_new(&short_kek, 31), ALN_OK);
  assert_int_equal(aln_escrow_open(&e, f->db, &short_kek, 0), ALN_ERR_USAGE);
  assert_null(e);
  aln_secret_free(&short_kek);
  assert_int_equal(aln_escrow_open(&e, f->db, NULL, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_escrow_open(&e, NULL, &f->kek, 0), ALN_ERR_USAGE);

  /* A schema newer than ours is refused rather than misread. */
  aln_escrow_free(f->esc);
  f->esc = NULL;
  raw_exec(f, "PRAGMA user_version = 4");
  assert_int_equal(aln_escrow_open(&e, f->db, &f->kek, 0), ALN_ERR_STORE);
  assert_null(e);
  raw_exec(f, "PRAGMA user_version = 3");
  reopen(f, &f->kek);

  /* A file that is not a database is refused. */
  char p[160];
  snprintf(p, sizeof(p), "%s/junk.db", f->dir);
  FILE *fp = fopen(p, "wb");
  assert_non_null(fp);
  for (int i = 0; i < 200; i++)
    fputs("not a database ", fp);
  fclose(fp);
  assert_int_equal(aln_escrow_open(&e, p, &f->kek, 0), ALN_ERR_STORE);
  assert_null(e);
  unlink(p);
}

/* --- tampering with sealed records --- */

static void put_three(struct fx *f) {
  assert_int_equal(put(f, "a", "secret-a", 0), ALN_OK);
  assert_int_equal(put(f, "b", "secret-b", 0), ALN_OK);
  assert_int_equal(put(f, "c", "secret-c", 0), ALN_OK);
}

static void assert_tampered_others_open(struct fx *f, const char *name) {
  assert_unseal_fails(f, name, (int64_t)time(NULL), ALN_ERR_TAMPERED);
  assert_opens(f, "c", "secret-c");
}

static void test_tamper_ciphertext(void **state) {
  struct fx *f = *state;
  put_three(f);
  flip_byte(f, "a", "ciphertext", 12); /* first ciphertext byte */
  assert_tampered_others_open(f, "a");
  assert_opens(f, "b", "secret-b");
  flip_byte(f, "b", "ciphertext", 0); /* nonce */
  assert_tampered_others_open(f, "b");
}

static void test_tamper_tag(void **state) {
  struct fx *f = *state;
  put_three(f);
  flip_byte(f, "a", "ciphertext", -1);
  assert_tampered_others_open(f, "a");
  flip_byte(f, "b", "wrapped_key", -16); /* first byte of the wrapped key's tag */
  assert_tampered_others_open(f, "b");
}

static void test_tamper_wrapped_key(void **state) {
  struct fx *f = *state;
  put_three(f);
  flip_byte(f, "a", "wrapped_key", 20);
  assert_tampered_others_open(f, "a");
  /* Wrong length, empty and missing blobs are all tampering, never a crash. */
  raw_exec(f, "UPDATE credentials SET wrapped_key = substr(wrapped_key, 1, 59) WHERE name = 'b'");
  assert_tampered_others_open(f, "b");
  raw_exec(f, "UPDATE credentials SET wrapped_key = NULL WHERE name = 'b'");
  assert_tampered_others_open(f, "b");
}

static void test_tamper_truncated_ciphertext(void **state) {
  struct fx *f = *state;
  put_three(f);
  raw_exec(f, "UPDATE credentials SET ciphertext = substr(ciphertext, 1, 28) WHERE name = 'a'");
  assert_tampered_others_open(f, "a");
  raw_exec(f, "UPDATE credentials SET ciphertext = NULL WHERE name = 'b'");
  assert_tampered_others_open(f, "b");
  raw_exec(f, "UPDATE credentials SET ciphertext = zeroblob(20000) WHERE name = 'a'");
  assert_tampered_others_open(f, "a");
}

static void test_tamper_binding(void **state) {
  struct fx *f = *state;
  put_three(f);
  flip_byte(f, "a", "binding", 3);
  assert_tampered_others_open(f, "a");
  raw_exec(f, "UPDATE credentials SET binding = X'00' WHERE name = 'b'");
  assert_tampered_others_open(f, "b");
}

static void test_tamper_swap_rows(void **state) {
  struct fx *f = *state;
  put_three(f);
  /* a gets a copy of b's blobs: they are b's, not a's. */
  raw_exec(f, "UPDATE credentials SET"
              " ciphertext = (SELECT ciphertext FROM credentials WHERE name = 'b'),"
              " wrapped_key = (SELECT wrapped_key FROM credentials WHERE name = 'b') WHERE name = 'a'");
  /* b still has its own blobs, a now holds b's: a must fail, b still opens. */
  assert_tampered_others_open(f, "a");
  assert_opens(f, "b", "secret-b");

  /* A full swap between two rows fails for both. */
  uint8_t ct_b[128], wk_b[128], ct_c[128], wk_c[128];
  size_t ct_b_len = raw_blob(f, "SELECT ciphertext FROM credentials WHERE name = 'b'", ct_b, sizeof(ct_b));
  size_t wk_b_len = raw_blob(f, "SELECT wrapped_key FROM credentials WHERE name = 'b'", wk_b, sizeof(wk_b));
  size_t ct_c_len = raw_blob(f, "SELECT ciphertext FROM credentials WHERE name = 'c'", ct_c, sizeof(ct_c));
  size_t wk_c_len = raw_blob(f, "SELECT wrapped_key FROM credentials WHERE name = 'c'", wk_c, sizeof(wk_c));
  raw_set_blob(f, "UPDATE credentials SET ciphertext = ?1 WHERE name = 'b'", ct_c, ct_c_len);
  raw_set_blob(f, "UPDATE credentials SET wrapped_key = ?1 WHERE name = 'b'", wk_c, wk_c_len);
  raw_set_blob(f, "UPDATE credentials SET ciphertext = ?1 WHERE name = 'c'", ct_b, ct_b_len);
  raw_set_blob(f, "UPDATE credentials SET wrapped_key = ?1 WHERE name = 'c'", wk_b, wk_b_len);
  assert_int_equal(put(f, "d", "secret-d", 0), ALN_OK);
  assert_unseal_fails(f, "b", (int64_t)time(NULL), ALN_ERR_TAMPERED);
  assert_unseal_fails(f, "c", (int64_t)time(NULL), ALN_ERR_TAMPERED);
  assert_opens(f, "d", "secret-d");
}

/* assert_state_refused checks that the escrow now refuses every record, the good
 * ones too, and that a fresh open refuses the file: an identity edit cannot be
 * pinned on one record, so the whole store fails closed and nothing is dropped. */
static void assert_state_refused(struct fx *f, const char *edited) {
  /* The edited record fails at once: outside the authenticated set (the whole
   * state is then checked and refused), or inside it with associated data that no
   * longer matches. */
  struct aln_secret sec = {0};
  aln_status st = aln_escrow_unseal(f->esc, &sec, NULL, edited, (int64_t)time(NULL));
  assert_true(st == ALN_ERR_STATE_TAMPERED || st == ALN_ERR_TAMPERED);
  assert_null(sec.p);
  /* The next write authenticates the whole state, and from then on nothing opens. */
  assert_int_equal(put(f, "new", "v", 0), ALN_ERR_STATE_TAMPERED);
  assert_unseal_fails(f, "c", (int64_t)time(NULL), ALN_ERR_STATE_TAMPERED);
  struct aln_escrow *e = NULL;
  assert_int_equal(aln_escrow_open(&e, f->db, &f->kek, 0), ALN_ERR_STATE_TAMPERED);
  assert_null(e);
}

static void test_tamper_id_version_name(void **state) {
  struct fx *f = *state;
  const char *edits[][2] = {
      {"UPDATE credentials SET id = id + 100 WHERE name = 'a'",
       "UPDATE credentials SET id = id - 100 WHERE name = 'a'"},
      {"UPDATE credentials SET version = version + 1 WHERE name = 'b'",
       "UPDATE credentials SET version = version - 1 WHERE name = 'b'"},
      {"UPDATE credentials SET name = 'e' WHERE name = 'a'", "UPDATE credentials SET name = 'a' WHERE name = 'e'"},
      {"UPDATE credentials SET kind = 2 WHERE name = 'b'", "UPDATE credentials SET kind = 1 WHERE name = 'b'"},
  };
  const char *victim[] = {"a", "b", "e", "b"};
  put_three(f);
  for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
    raw_exec(f, edits[i][0]);
    assert_state_refused(f, victim[i]);
    /* Undoing the edit restores the store: nothing else was at fault or lost. */
    raw_exec(f, edits[i][1]);
    reopen(f, &f->kek);
    assert_opens(f, "a", "secret-a");
    assert_opens(f, "b", "secret-b");
    assert_opens(f, "c", "secret-c");
  }
}
static void test_tamper_un_revoke(void **state) {
  struct fx *f = *state;
  put_three(f);
  /* Keep a's sealed blobs, as an old backup of the file would. */
  uint8_t ct[128], wk[128];
  size_t ct_len = raw_blob(f, "SELECT ciphertext FROM credentials WHERE name = 'a'", ct, sizeof(ct));
  size_t wk_len = raw_blob(f, "SELECT wrapped_key FROM credentials WHERE name = 'a'", wk, sizeof(wk));
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "a", NULL), ALN_OK);

  /* A live row still flagged revoked is refused as revoked (the set is unchanged). */
  raw_exec(f, "UPDATE credentials SET revoked = 1 WHERE name = 'b'");
  assert_unseal_fails(f, "b", (int64_t)time(NULL), ALN_ERR_REVOKED);
  raw_exec(f, "UPDATE credentials SET revoked = 0 WHERE name = 'b'");
  assert_opens(f, "b", "secret-b");

  /* Resurrection: the tombstone made live again with its old blobs, which would
   * authenticate as a record (same id, version, name and binding). The state
   * catches it: the row is not in the authenticated set. */
  raw_exec(f, "UPDATE credentials SET revoked = 0, live = 1 WHERE name = 'a'");
  raw_set_blob(f, "UPDATE credentials SET ciphertext = ?1 WHERE name = 'a'", ct, ct_len);
  raw_set_blob(f, "UPDATE credentials SET wrapped_key = ?1 WHERE name = 'a'", wk, wk_len);
  assert_state_refused(f, "a");
  /* Only the operator's explicit vouching brings the file back; even then the
   * resurrected record is the operator's decision, made loudly. */
  raw_exec(f, "UPDATE credentials SET revoked = 1, live = 0, ciphertext = NULL, wrapped_key = NULL WHERE name = 'a'");
  reopen(f, &f->kek);
  assert_unseal_fails(f, "a", (int64_t)time(NULL), ALN_ERR_REVOKED);
}

/* A forged host row would let any client key use the enclave: it is refused. */
static void test_tamper_forged_host(void **state) {
  struct fx *f = *state;
  uint8_t real[32], forged[32];
  int on = -1;
  memset(real, 0x21, 32);
  memset(forged, 0x66, 32);
  put_three(f);
  assert_int_equal(aln_escrow_host_enroll(f->esc, real, "real"), ALN_OK);
  raw_exec(f, "INSERT INTO hosts(spki_hash, label, enrolled_at)"
              " VALUES(x'6666666666666666666666666666666666666666666666666666666666666666', 'evil', 1)");
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, forged), ALN_ERR_STATE_TAMPERED);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, real), ALN_ERR_STATE_TAMPERED);
  struct aln_escrow *e = NULL;
  assert_int_equal(aln_escrow_open(&e, f->db, &f->kek, 0), ALN_ERR_STATE_TAMPERED);
  /* A removed host cannot be put back by hand either. */
  raw_exec(f, "DELETE FROM hosts WHERE label = 'evil'");
  reopen(f, &f->kek);
  assert_int_equal(aln_escrow_host_remove(f->esc, real), ALN_OK);
  raw_exec(f, "INSERT INTO hosts(spki_hash, label, enrolled_at)"
              " VALUES(x'2121212121212121212121212121212121212121212121212121212121212121', 'real', 1)");
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, real), ALN_ERR_STATE_TAMPERED);
}

/* The counters, the audit head and the meta row are all under the MAC: an old
 * file given the current meta row, a truncated audit chain and edited counters
 * are each refused at open. */
static void test_tamper_state_summary(void **state) {
  struct fx *f = *state;
  char old[160], sql[512];
  put_three(f);
  for (int i = 0; i < 3; i++)
    assert_int_equal(aln_escrow_audit_append(f->esc, &(struct aln_audit_event){.time = i, .action = "use"}), ALN_OK);
  snprintf(old, sizeof(old), "%s/old.db", f->dir);
  snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", old);
  raw_exec(f, sql);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "a", NULL), ALN_OK);
  aln_escrow_free(f->esc);
  f->esc = NULL;

  /* The old copy with the current meta row: its live set still has a. */
  snprintf(sql, sizeof(sql),
           "ATTACH '%s' AS cur; UPDATE main.meta SET epoch = (SELECT epoch FROM cur.meta),"
           " generation = (SELECT generation FROM cur.meta), state_mac = (SELECT state_mac FROM cur.meta);"
           " DETACH cur",
           f->db);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  struct aln_escrow *e = NULL;
  assert_int_equal(aln_escrow_open(&e, old, &f->kek, 0), ALN_ERR_STATE_TAMPERED);

  const char *edits[][2] = {
      {"CREATE TABLE saved AS SELECT * FROM audit WHERE seq = (SELECT MAX(seq) FROM audit);"
       "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)",
       "INSERT INTO audit SELECT * FROM saved; DROP TABLE saved"},
      {"UPDATE meta SET epoch = epoch + 5", "UPDATE meta SET epoch = epoch - 5"},
      {"UPDATE meta SET generation = generation - 1", "UPDATE meta SET generation = generation + 1"},
      {"UPDATE meta SET state_mac = zeroblob(32)", NULL},
  };
  for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
    if (edits[i][1] == NULL)
      raw_exec(f, "CREATE TABLE saved AS SELECT state_mac FROM meta");
    raw_exec(f, edits[i][0]);
    assert_int_equal(aln_escrow_open(&e, f->db, &f->kek, 0), ALN_ERR_STATE_TAMPERED);
    assert_null(e);
    raw_exec(f, edits[i][1] != NULL ? edits[i][1]
                                    : "UPDATE meta SET state_mac = (SELECT state_mac FROM saved); DROP TABLE saved");
    assert_int_equal(aln_escrow_open(&e, f->db, &f->kek, 0), ALN_OK);
    aln_escrow_free(e);
    e = NULL;
  }
  /* Clearing the MAC does not make the enclave adopt the file as new. */
  raw_exec(f, "UPDATE meta SET state_mac = NULL");
  assert_int_equal(aln_escrow_open(&e, f->db, &f->kek, 0), ALN_ERR_STATE_TAMPERED);
  /* ... but the operator can vouch for it, and then it opens and stays open. */
  assert_int_equal(aln_escrow_open(&e, f->db, &f->kek, ALN_ESCROW_ACCEPT_STATE), ALN_OK);
  aln_escrow_free(e);
  reopen(f, &f->kek);
  assert_opens(f, "b", "secret-b");
  assert_unseal_fails(f, "a", (int64_t)time(NULL), ALN_ERR_REVOKED);
}
static void test_wrong_kek(void **state) {
  struct fx *f = *state;
  put_three(f);
  struct aln_secret other = {0};
  assert_int_equal(aln_secret_from(&other, f->kek.p, f->kek.len), ALN_OK);
  other.p[31] ^= 0x80;
  aln_escrow_free(f->esc);
  f->esc = NULL;
  /* Named as a wrong KEK, not as tampering, and even the operator's vouching does
   * not open it. */
  struct aln_escrow *e = NULL;
  assert_int_equal(aln_escrow_open(&e, f->db, &other, 0), ALN_ERR_KEK_MISMATCH);
  assert_int_equal(aln_escrow_open(&e, f->db, &other, ALN_ESCROW_ACCEPT_STATE), ALN_ERR_KEK_MISMATCH);
  assert_null(e);
  aln_secret_free(&other);
  reopen(f, &f->kek);
  assert_opens(f, "a", "secret-a");
}

/* Two escrows on one file, as the serving enclave and the operator's CLI are: each
 * sees the other's committed writes, and neither takes them for tampering. */
static void test_other_process_writes(void **state) {
  struct fx *f = *state;
  struct aln_escrow *other = NULL;
  uint8_t h[32];
  int on = -1;
  memset(h, 0x42, 32);
  put_three(f);
  assert_int_equal(aln_escrow_open(&other, f->db, &f->kek, 0), ALN_OK);
  assert_int_equal(aln_escrow_host_enroll(other, h, "cli"), ALN_OK);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, h), ALN_OK);
  assert_int_equal(on, 1);
  assert_int_equal(aln_escrow_put(other, NULL,
                                  &(struct aln_cred_input){.name = "d",
                                                           .kind = ALN_CRED_KIND_SECRET,
                                                           .secret = (const uint8_t *)"secret-d",
                                                           .secret_len = 8,
                                                           .binding = (const uint8_t *)"b",
                                                           .binding_len = 1},
                                  NULL),
                   ALN_OK);
  assert_opens(f, "d", "secret-d");
  assert_int_equal(aln_escrow_revoke(other, NULL, "a", NULL), ALN_OK);
  assert_unseal_fails(f, "a", (int64_t)time(NULL), ALN_ERR_REVOKED);
  assert_int_equal(aln_escrow_host_remove(other, h), ALN_OK);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, h), ALN_OK);
  assert_int_equal(on, 0);
  /* Both keep writing, interleaved, and the file still authenticates. */
  assert_int_equal(put(f, "e", "secret-e", 0), ALN_OK);
  assert_int_equal(aln_escrow_audit_append(other, &(struct aln_audit_event){.time = 1, .action = "use"}), ALN_OK);
  assert_int_equal(put(f, "e", "secret-e2", 1), ALN_OK);
  aln_escrow_free(other);
  reopen(f, &f->kek);
  assert_opens(f, "e", "secret-e2");
  size_t n = 0;
  assert_int_equal(aln_escrow_audit_verify_chain(f->esc, &n), ALN_OK);
  assert_int_equal(n, 1);
}
/* --- audit chain --- */

static void append(struct fx *f, const char *actor, long http) {
  struct aln_audit_event ev = {.time = 1700000000,
                               .actor = actor,
                               .host_key = "ab12",
                               .action = "use",
                               .credential = "github.token",
                               .method = "GET",
                               .destination = "https://api.github.com/user",
                               .decision = "allow",
                               .result = ALN_OK,
                               .http_status = http};
  assert_int_equal(aln_escrow_audit_append(f->esc, &ev), ALN_OK);
}

static void test_audit_chain(void **state) {
  struct fx *f = *state;
  assert_chain(f, ALN_OK, 0);
  append(f, "sess-1", 200);
  append(f, "sess-2", 404);
  struct aln_audit_event nulls = {.time = -5, .result = ALN_ERR_DENIED, .http_status = 0};
  assert_int_equal(aln_escrow_audit_append(f->esc, &nulls), ALN_OK);
  append(f, "sess-4", 200);
  assert_chain(f, ALN_OK, 4);
  assert_int_equal(raw_int(f, "SELECT result FROM audit WHERE seq = 3"), ALN_ERR_DENIED);

  /* Each edit is detected, and undoing it restores the chain. */
  static const char *const edits[][2] = {
      {"UPDATE audit SET actor = 'mallory' WHERE seq = 2", "UPDATE audit SET actor = 'sess-2' WHERE seq = 2"},
      {"UPDATE audit SET time = time + 1 WHERE seq = 1", "UPDATE audit SET time = time - 1 WHERE seq = 1"},
      {"UPDATE audit SET http_status = 200 WHERE seq = 2", "UPDATE audit SET http_status = 404 WHERE seq = 2"},
      {"UPDATE audit SET result = 0 WHERE seq = 3", "UPDATE audit SET result = 769 WHERE seq = 3"},
      {"UPDATE audit SET actor = '' WHERE seq = 1", "UPDATE audit SET actor = 'sess-1' WHERE seq = 1"},
      {"UPDATE audit SET decision = 'deny' WHERE seq = 4", "UPDATE audit SET decision = 'allow' WHERE seq = 4"},
      {"UPDATE audit SET destination = 'https://evil.example/' WHERE seq = 1",
       "UPDATE audit SET destination = 'https://api.github.com/user' WHERE seq = 1"},
      {"UPDATE audit SET hash = zeroblob(32) WHERE seq = 4", NULL},
  };
  assert_int_equal(ALN_ERR_DENIED, 769); /* the literal in the undo above */
  for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
    raw_exec(f, edits[i][0]);
    assert_chain(f, ALN_ERR_TAMPERED, 0);
    if (edits[i][1] != NULL) {
      raw_exec(f, edits[i][1]);
      assert_chain(f, ALN_OK, 4);
    }
  }
}

static void test_audit_delete_and_reorder(void **state) {
  struct fx *f = *state;
  for (int i = 0; i < 4; i++)
    append(f, "s", 200 + i);
  assert_chain(f, ALN_OK, 4);
  raw_exec(f, "CREATE TABLE saved AS SELECT * FROM audit");

  raw_exec(f, "DELETE FROM audit WHERE seq = 2");
  assert_chain(f, ALN_ERR_TAMPERED, 0);
  raw_exec(f, "DELETE FROM audit; INSERT INTO audit SELECT * FROM saved");
  assert_chain(f, ALN_OK, 4);

  raw_exec(f, "DELETE FROM audit WHERE seq = 1");
  assert_chain(f, ALN_ERR_TAMPERED, 0);
  raw_exec(f, "DELETE FROM audit; INSERT INTO audit SELECT * FROM saved");

  /* Renumbering to hide a gap: the hashes cover seq and the chain link. */
  raw_exec(f, "DELETE FROM audit WHERE seq = 2; UPDATE audit SET seq = seq - 1 WHERE seq > 2");
  assert_chain(f, ALN_ERR_TAMPERED, 0);
  raw_exec(f, "DELETE FROM audit; INSERT INTO audit SELECT * FROM saved");

  /* Swapping two rows' order */
  raw_exec(f, "UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3;"
              "UPDATE audit SET seq = 3 WHERE seq = 100");
  assert_chain(f, ALN_ERR_TAMPERED, 0);
  raw_exec(f, "DELETE FROM audit; INSERT INTO audit SELECT * FROM saved");
  assert_chain(f, ALN_OK, 4);

  /* Appending continues the chain after a verified prefix. */
  append(f, "s", 500);
  assert_chain(f, ALN_OK, 5);
}

/* The canonical encoding is a contract with offline verifiers: recompute row 1 here. */
static void test_audit_encoding(void **state) {
  struct fx *f = *state;
  append(f, "sess-1", 201);
  struct aln_cbb cbb;
  uint8_t *enc = NULL, zero[32] = {0}, want[32], got[32], prev[32];
  size_t enc_len = 0;
  unsigned int md_len = 0;
  const char *strs[] = {"sess-1", "ab12", "use", "github.token", "GET", "https://api.github.com/user", "allow"};
  assert_int_equal(aln_cbb_init(&cbb, 64, 4096), ALN_OK);
  assert_int_equal(aln_cbb_add_u64(&cbb, 1), ALN_OK);
  assert_int_equal(aln_cbb_add_u64(&cbb, 1700000000), ALN_OK);
  for (size_t i = 0; i < 7; i++)
    assert_int_equal(aln_cbb_add_u32_prefixed(&cbb, (const uint8_t *)strs[i], strlen(strs[i])), ALN_OK);
  assert_int_equal(aln_cbb_add_u32(&cbb, 0), ALN_OK);
  assert_int_equal(aln_cbb_add_u64(&cbb, 201), ALN_OK);
  assert_int_equal(aln_cbb_finish(&cbb, &enc, &enc_len), ALN_OK);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_non_null(md);
  assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
  assert_int_equal(EVP_DigestUpdate(md, zero, 32), 1);
  assert_int_equal(EVP_DigestUpdate(md, enc, enc_len), 1);
  assert_int_equal(EVP_DigestFinal_ex(md, want, &md_len), 1);
  EVP_MD_CTX_free(md);
  aln_cbb_buf_free(enc, enc_len);

  assert_int_equal(raw_blob(f, "SELECT hash FROM audit WHERE seq = 1", got, sizeof(got)), 32);
  assert_memory_equal(got, want, 32);
  assert_int_equal(raw_blob(f, "SELECT prev_hash FROM audit WHERE seq = 1", prev, sizeof(prev)), 32);
  assert_memory_equal(prev, zero, 32);
  append(f, "sess-2", 200);
  assert_int_equal(raw_blob(f, "SELECT prev_hash FROM audit WHERE seq = 2", prev, sizeof(prev)), 32);
  assert_memory_equal(prev, want, 32);
}

static void test_audit_bounds(void **state) {
  struct fx *f = *state;
  char *huge = malloc(5000);
  assert_non_null(huge);
  memset(huge, 'A', 4999);
  huge[4999] = '\0';
  struct aln_audit_event ev = {.time = 1, .actor = huge, .destination = huge, .result = ALN_OK};
  assert_int_equal(aln_escrow_audit_append(f->esc, &ev), ALN_OK);
  free(huge);
  assert_int_equal(raw_int(f, "SELECT length(actor) FROM audit WHERE seq = 1"), 256);
  assert_int_equal(raw_int(f, "SELECT length(destination) FROM audit WHERE seq = 1"), ALN_AUDIT_DEST_MAX);
  /* A 4000-byte destination (a use accepts URLs up to 4096) is recorded whole. */
  char *long_dest = malloc(4001);
  assert_non_null(long_dest);
  memset(long_dest, 'B', 4000);
  long_dest[4000] = '\0';
  struct aln_audit_event ev2 = {.time = 2, .destination = long_dest, .result = ALN_OK};
  assert_int_equal(aln_escrow_audit_append(f->esc, &ev2), ALN_OK);
  free(long_dest);
  assert_int_equal(raw_int(f, "SELECT length(destination) FROM audit WHERE seq = 2"), 4000);
  assert_chain(f, ALN_OK, 2);
  /* A field grown past its bound in the file is tampering, not a bigger buffer. */
  raw_exec(f, "UPDATE audit SET actor = actor || 'A' WHERE seq = 1");
  assert_chain(f, ALN_ERR_TAMPERED, 0);
  assert_int_equal(aln_escrow_audit_append(f->esc, NULL), ALN_ERR_USAGE);
  assert_int_equal(aln_escrow_audit_verify_chain(f->esc, NULL), ALN_ERR_USAGE);
}

/* --- hosts --- */

static void test_hosts(void **state) {
  struct fx *f = *state;
  uint8_t h1[32], h2[32];
  int on = -1;
  memset(h1, 0x11, 32);
  memcpy(h2, h1, 32);
  h2[31] = 0x12; /* differs in the last byte only */

  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, h1), ALN_OK);
  assert_int_equal(on, 0);
  assert_int_equal(aln_escrow_host_enroll(f->esc, h1, "laptop"), ALN_OK);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, h1), ALN_OK);
  assert_int_equal(on, 1);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, h2), ALN_OK);
  assert_int_equal(on, 0);
  /* Enrolling again updates the label rather than failing. */
  assert_int_equal(aln_escrow_host_enroll(f->esc, h1, "renamed"), ALN_OK);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM hosts WHERE label = 'renamed'"), 1);
  assert_int_equal(aln_escrow_host_enroll(f->esc, h2, NULL), ALN_OK);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM hosts"), 2);

  struct aln_host_entry *list = NULL;
  size_t num = 0;
  assert_int_equal(aln_escrow_host_list(f->esc, &list, &num), ALN_OK);
  assert_int_equal(num, 2);
  int found1 = 0, found2 = 0;
  for (size_t i = 0; i < num; i++) {
    assert_true(list[i].enrolled_at > 0);
    if (memcmp(list[i].spki_hash, h1, 32) == 0)
      found1 = strcmp(list[i].label, "renamed") == 0;
    if (memcmp(list[i].spki_hash, h2, 32) == 0)
      found2 = list[i].label[0] == '\0';
  }
  assert_true(found1 && found2);
  free(list);

  assert_int_equal(aln_escrow_host_remove(f->esc, h1), ALN_OK);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, h1), ALN_OK);
  assert_int_equal(on, 0);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, h2), ALN_OK);
  assert_int_equal(on, 1);
  assert_int_equal(aln_escrow_host_remove(f->esc, h1), ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_escrow_host_enroll(f->esc, NULL, "x"), ALN_ERR_USAGE);

  /* Enrolment persists. */
  reopen(f, &f->kek);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, h2), ALN_OK);
  assert_int_equal(on, 1);
  assert_int_equal(aln_escrow_host_list(f->esc, &list, &num), ALN_OK);
  assert_int_equal(num, 1);
  assert_memory_equal(list[0].spki_hash, h2, 32);
  free(list);
}

/* --- concurrency: the enclave serves connections from several threads --- */

struct worker {
  struct aln_escrow *esc;
  int id;
  int failures;
};

static void *worker_run(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 20; i++) {
    char name[32], secret[32];
    snprintf(name, sizeof(name), "w%d-%d", w->id, i);
    snprintf(secret, sizeof(secret), "secret-%d-%d", w->id, i);
    struct aln_secret s = {0};
    struct aln_audit_event ev = {.time = i, .actor = name, .result = ALN_OK};
    if (aln_escrow_put(w->esc, NULL,
                       &(struct aln_cred_input){.name = name,
                                                .kind = ALN_CRED_KIND_SECRET,
                                                .secret = (const uint8_t *)secret,
                                                .secret_len = strlen(secret),
                                                .binding = (const uint8_t *)"b",
                                                .binding_len = 1,
                                                .expires_at = 0,
                                                .replace = 0},
                       NULL) != ALN_OK ||
        aln_escrow_unseal(w->esc, &s, NULL, name, 0) != ALN_OK || s.len != strlen(secret) ||
        memcmp(s.p, secret, s.len) != 0 || aln_escrow_audit_append(w->esc, &ev) != ALN_OK)
      w->failures++;
    aln_secret_free(&s);
  }
  return NULL;
}

static void test_threads(void **state) {
  struct fx *f = *state;
  pthread_t t[4];
  struct worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (struct worker){.esc = f->esc, .id = i};
    assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(w[i].failures, 0);
  }
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM credentials WHERE live = 1"), 80);
  assert_chain(f, ALN_OK, 80);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* A use's audit row commits only while the credential is live at the version its
 * unseal opened: a revoke or replace acknowledged in between stops the use, and
 * no "allow" row is written for it. */
static void test_use_row_needs_the_version_still_live(void **state) {
  struct fx *f = *state;
  struct aln_secret sec = {0};
  struct aln_cred_meta m;
  static const struct aln_audit_event ev = {.time = 1, .action = "use", .decision = "allow"};
  size_t n = 99;
  put_three(f);
  assert_int_equal(aln_escrow_unseal(f->esc, &sec, &m, "a", (int64_t)time(NULL)), ALN_OK);
  aln_secret_free(&sec);
  assert_int_equal(aln_escrow_audit_use(f->esc, &ev, "a", m.version), ALN_OK);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "a", NULL), ALN_OK); /* between unseal and use */
  assert_int_equal(aln_escrow_audit_use(f->esc, &ev, "a", m.version), ALN_ERR_REVOKED);
  aln_cred_meta_cleanup(&m);
  assert_int_equal(aln_escrow_unseal(f->esc, &sec, &m, "b", (int64_t)time(NULL)), ALN_OK);
  aln_secret_free(&sec);
  assert_int_equal(put(f, "b", "secret-b2", 1), ALN_OK); /* replaced: the old secret is retired */
  assert_int_equal(aln_escrow_audit_use(f->esc, &ev, "b", m.version), ALN_ERR_REVOKED);
  assert_int_equal(aln_escrow_audit_use(f->esc, &ev, "b", m.version + 1), ALN_OK);
  assert_int_equal(aln_escrow_audit_use(f->esc, &ev, "never", 1), ALN_ERR_NOT_FOUND);
  assert_int_equal(aln_escrow_audit_use(f->esc, &ev, "../x", 1), ALN_ERR_BAD_NAME);
  aln_cred_meta_cleanup(&m);
  /* Two "use" rows: the two allowed ones, nothing for the refused. */
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM audit WHERE action = 'use'"), 2);
  assert_int_equal(aln_escrow_audit_verify_chain(f->esc, &n), ALN_OK);
  assert_int_equal(n, 2);
}

/* --- the commit hook (the rollback record outside the data dir) --- */

struct flaky {
  aln_status fail_with; /* ALN_OK: succeed */
  uint64_t last_epoch;
  int calls;
};

static aln_status flaky_hook(void *ctx, const struct aln_escrow_counts *c) {
  struct flaky *h = ctx;
  h->calls++;
  if (h->fail_with != ALN_OK)
    return h->fail_with;
  h->last_epoch = c->epoch;
  return ALN_OK;
}

/* A hook that fails (a full disk under the epoch file) does not undo the write it
 * follows, but nothing else proceeds until it succeeds again: the record outside
 * the data dir is never more than one write behind. */
static void test_failed_hook_stops_everything_until_it_recovers(void **state) {
  struct fx *f = *state;
  struct flaky h = {.fail_with = ALN_OK};
  uint8_t host[32];
  int on = -1;
  memset(host, 0x31, 32);
  aln_escrow_set_commit_hook(f->esc, flaky_hook, &h, NULL);
  put_three(f);
  assert_int_equal(h.last_epoch, 3);

  h.fail_with = ALN_ERR_DISK_FULL;
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "a", NULL), ALN_OK); /* committed: acknowledged */
  assert_unseal_fails(f, "b", (int64_t)time(NULL), ALN_ERR_DISK_FULL);
  assert_int_equal(put(f, "d", "secret-d", 0), ALN_ERR_DISK_FULL);
  assert_int_equal(aln_escrow_audit_append(f->esc, &(struct aln_audit_event){.time = 1, .action = "use"}),
                   ALN_ERR_DISK_FULL);
  assert_int_equal(aln_escrow_host_is_enrolled(f->esc, &on, host), ALN_ERR_DISK_FULL);
  struct aln_escrow_counts c;
  assert_int_equal(aln_escrow_counts(f->esc, &c), ALN_OK);
  assert_true(c.epoch == 4); /* the refused operations wrote nothing */

  h.fail_with = ALN_OK;
  assert_opens(f, "b", "secret-b");
  assert_int_equal(h.last_epoch, 4); /* caught up before the read */
  assert_int_equal(put(f, "d", "secret-d", 0), ALN_OK);
  assert_int_equal(h.last_epoch, 5);
  assert_unseal_fails(f, "a", (int64_t)time(NULL), ALN_ERR_REVOKED);
}

/* --- KEK rotation --- */

static void new_kek(struct aln_secret *k) {
  assert_int_equal(aln_secret_new(k, 32), ALN_OK);
  assert_int_equal(RAND_bytes(k->p, 32), 1);
}

static void test_rotate(void **state) {
  struct fx *f = *state;
  struct aln_secret k2 = {0};
  struct aln_escrow_counts before, after;
  uint64_t num = 99;
  uint8_t wk_before[128], wk_after[128], ct_before[128], ct_after[128];
  put_three(f);
  assert_int_equal(put(f, "b", "secret-b2", 1), ALN_OK);
  assert_int_equal(aln_escrow_revoke(f->esc, NULL, "c", NULL), ALN_OK);
  assert_int_equal(aln_escrow_counts(f->esc, &before), ALN_OK);
  size_t wk_len = raw_blob(f, "SELECT wrapped_key FROM credentials WHERE name = 'a'", wk_before, sizeof(wk_before));
  size_t ct_len = raw_blob(f, "SELECT ciphertext FROM credentials WHERE name = 'a'", ct_before, sizeof(ct_before));

  new_kek(&k2);
  static const struct aln_audit_event ev = {.time = 7, .actor = "operator", .action = "kek-rotate"};
  assert_int_equal(aln_escrow_rotate_kek(f->esc, &num, &k2, &ev), ALN_OK);
  assert_int_equal(num, 2); /* a and the live version of b */
  assert_int_equal(aln_escrow_counts(f->esc, &after), ALN_OK);
  assert_true(after.epoch == before.epoch + 1 && after.generation == before.generation + 1);
  /* Data keys re-wrapped, ciphertexts untouched. */
  assert_int_equal(raw_blob(f, "SELECT wrapped_key FROM credentials WHERE name = 'a'", wk_after, sizeof(wk_after)),
                   wk_len);
  assert_memory_not_equal(wk_before, wk_after, wk_len);
  assert_int_equal(raw_blob(f, "SELECT ciphertext FROM credentials WHERE name = 'a'", ct_after, sizeof(ct_after)),
                   ct_len);
  assert_memory_equal(ct_before, ct_after, ct_len);
  /* The running escrow uses the new KEK at once, for reads and writes. */
  assert_opens(f, "a", "secret-a");
  assert_opens(f, "b", "secret-b2");
  assert_unseal_fails(f, "c", (int64_t)time(NULL), ALN_ERR_REVOKED);
  assert_int_equal(put(f, "d", "secret-d", 0), ALN_OK);
  size_t n = 0;
  assert_int_equal(aln_escrow_audit_verify_chain(f->esc, &n), ALN_OK);
  assert_int_equal(n, 1);
  assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM audit WHERE action = 'kek-rotate'"), 1);

  /* Exactly one KEK opens the file: the new one. */
  aln_escrow_free(f->esc);
  f->esc = NULL;
  struct aln_escrow *e = NULL;
  assert_int_equal(aln_escrow_open(&e, f->db, &f->kek, 0), ALN_ERR_KEK_MISMATCH);
  assert_int_equal(aln_escrow_open(&f->esc, f->db, &k2, 0), ALN_OK);
  assert_opens(f, "a", "secret-a");
  assert_opens(f, "d", "secret-d");

  /* Rotating to the KEK in use is refused and changes nothing. */
  assert_int_equal(aln_escrow_rotate_kek(f->esc, &num, &k2, NULL), ALN_ERR_USAGE);
  assert_int_equal(num, 0);
  assert_int_equal(aln_escrow_rotate_kek(f->esc, &num, NULL, NULL), ALN_ERR_USAGE);
  aln_secret_free(&f->kek);
  f->kek = k2;
}

/* A rotation that fails part way (here: one data key that no longer unwraps) is
 * rolled back whole: the file still opens under the old KEK only, every good
 * record with it, and the new KEK opens nothing. */
static void test_rotate_failure_changes_nothing(void **state) {
  struct fx *f = *state;
  struct aln_secret k2 = {0};
  struct aln_escrow_counts before, after;
  uint64_t num = 99;
  for (int i = 0; i < 20; i++) {
    char name[16], secret[32];
    snprintf(name, sizeof(name), "r%02d", i);
    snprintf(secret, sizeof(secret), "secret-%02d", i);
    assert_int_equal(put(f, name, secret, 0), ALN_OK);
  }
  assert_int_equal(aln_escrow_counts(f->esc, &before), ALN_OK);
  flip_byte(f, "r13", "wrapped_key", -1);
  new_kek(&k2);
  assert_int_equal(aln_escrow_rotate_kek(f->esc, &num, &k2, NULL), ALN_ERR_TAMPERED);
  assert_int_equal(num, 0);
  assert_int_equal(aln_escrow_counts(f->esc, &after), ALN_OK);
  assert_true(after.epoch == before.epoch && after.generation == before.generation);
  assert_opens(f, "r00", "secret-00");
  assert_opens(f, "r19", "secret-19");
  struct aln_escrow *e = NULL;
  assert_int_equal(aln_escrow_open(&e, f->db, &k2, 0), ALN_ERR_KEK_MISMATCH);
  reopen(f, &f->kek);
  assert_opens(f, "r07", "secret-07");
  assert_unseal_fails(f, "r13", (int64_t)time(NULL), ALN_ERR_TAMPERED);
  aln_secret_free(&k2);
}

/* --- upgrade from schema 2 (records sealed without their kind) --- */

/* The schema-2 file format, as the previous release wrote it. */
static const char k_schema_v2[] =
    "CREATE TABLE credentials(id INTEGER PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    " live INTEGER NOT NULL, binding BLOB NOT NULL, wrapped_key BLOB, ciphertext BLOB, UNIQUE(name, version));"
    "CREATE UNIQUE INDEX credentials_live ON credentials(name) WHERE live = 1;"
    "CREATE TABLE audit(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, actor TEXT, host_key TEXT, action TEXT,"
    " credential TEXT, method TEXT, destination TEXT, decision TEXT, result INTEGER NOT NULL,"
    " http_status INTEGER NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
    "CREATE TABLE hosts(spki_hash BLOB PRIMARY KEY, label TEXT, enrolled_at INTEGER NOT NULL);"
    "CREATE TABLE meta(id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL CHECK (epoch >= 0));"
    "INSERT INTO meta(id, epoch) VALUES(1, 4);"
    "PRAGMA user_version = 2;";

/* v1_seal writes nonce || AES-256-GCM || tag of |in| under |key| with the v1
 * associated data (label || u64 id || u32 version || i64 expires || u32 name ||
 * u32 binding), built here independently of the escrow's code. */
static size_t v1_seal(uint8_t *out, const uint8_t *key, const uint8_t *in, size_t in_len, const char *label, int64_t id,
                      uint32_t version, const char *name, const char *binding) {
  struct aln_cbb ad;
  uint8_t *adp = NULL;
  size_t ad_len = 0;
  int n = 0;
  assert_int_equal(aln_cbb_init(&ad, 256, 1024), ALN_OK);
  assert_int_equal(aln_cbb_add_bytes(&ad, (const uint8_t *)label, strlen(label)), ALN_OK);
  assert_int_equal(aln_cbb_add_u64(&ad, (uint64_t)id), ALN_OK);
  assert_int_equal(aln_cbb_add_u32(&ad, version), ALN_OK);
  assert_int_equal(aln_cbb_add_u64(&ad, 0), ALN_OK);
  assert_int_equal(aln_cbb_add_u32_prefixed(&ad, (const uint8_t *)name, strlen(name)), ALN_OK);
  assert_int_equal(aln_cbb_add_u32_prefixed(&ad, (const uint8_t *)binding, strlen(binding)), ALN_OK);
  assert_int_equal(aln_cbb_finish(&ad, &adp, &ad_len), ALN_OK);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  assert_int_equal(RAND_bytes(out, 12), 1);
  assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, out), 1);
  assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, adp, (int)ad_len), 1);
  assert_int_equal(EVP_EncryptUpdate(c, out + 12, &n, in, (int)in_len), 1);
  assert_int_equal(EVP_EncryptFinal_ex(c, out + 12 + in_len, &n), 1);
  assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + in_len), 1);
  EVP_CIPHER_CTX_free(c);
  aln_cbb_buf_free(adp, ad_len);
  return in_len + 28;
}

/* make_v2_file writes a schema-2 database at |path| holding live records "old-a"
 * and "old-b" (secrets "legacy-a"/"legacy-b") and a tombstone "gone", sealed under
 * |kek| the v1 way; with |corrupt| one byte of old-b's ciphertext is flipped. */
static void make_v2_file(const char *path, const struct aln_secret *kek, int corrupt) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, k_schema_v2, NULL, NULL, NULL), SQLITE_OK);
  const char *names[] = {"old-a", "old-b"}, *secrets[] = {"legacy-a", "legacy-b"};
  for (int i = 0; i < 2; i++) {
    uint8_t dek[32], wk[60], ct[64];
    int64_t id = 10 + i;
    assert_int_equal(RAND_bytes(dek, 32), 1);
    size_t ct_len =
        v1_seal(ct, dek, (const uint8_t *)secrets[i], strlen(secrets[i]), "aileron-cred-v1", id, 1, names[i], "bind");
    size_t wk_len = v1_seal(wk, kek->p, dek, 32, "aileron-dek-v1", id, 1, names[i], "bind");
    if (corrupt && i == 1)
      ct[14] ^= 0x01;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO credentials(id, name, version, created_at, expires_at, revoked,"
                                        " live, binding, wrapped_key, ciphertext) VALUES(?1, ?2, 1, 5, 0, 0, 1,"
                                        " 'bind', ?3, ?4)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, names[i], -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, wk, (int)wk_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, ct, (int)ct_len, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
  }
  assert_int_equal(sqlite3_exec(db,
                                "INSERT INTO credentials(id, name, version, created_at, expires_at, revoked, live,"
                                " binding) VALUES(3, 'gone', 1, 5, 0, 1, 0, 'bind')",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
}

static void test_upgrade_from_schema_2(void **state) {
  struct fx *f = *state;
  char path[160];
  struct aln_escrow *e = NULL;
  struct aln_secret sec = {0};
  struct aln_cred_meta m;
  struct aln_escrow_counts c;

  /* A file with a record that does not open is not upgraded, and stays as it was:
   * re-sealing it would launder the edit. */
  snprintf(path, sizeof(path), "%s/v2-bad.db", f->dir);
  make_v2_file(path, &f->kek, 1);
  assert_int_equal(aln_escrow_open(&e, path, &f->kek, 0), ALN_ERR_TAMPERED);
  assert_null(e);
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(s, 0), 2);
  sqlite3_finalize(s);
  sqlite3_close(db);

  snprintf(path, sizeof(path), "%s/v2.db", f->dir);
  make_v2_file(path, &f->kek, 0);
  assert_int_equal(aln_escrow_open(&e, path, &f->kek, 0), ALN_OK);
  assert_int_equal(aln_escrow_unseal(e, &sec, &m, "old-a", (int64_t)time(NULL)), ALN_OK);
  assert_int_equal(sec.len, 8);
  assert_memory_equal(sec.p, "legacy-a", 8);
  assert_int_equal(m.kind, ALN_CRED_KIND_SECRET);
  aln_secret_free(&sec);
  aln_cred_meta_cleanup(&m);
  assert_int_equal(aln_escrow_unseal(e, &sec, NULL, "gone", (int64_t)time(NULL)), ALN_ERR_REVOKED);
  assert_int_equal(aln_escrow_counts(e, &c), ALN_OK);
  assert_true(c.epoch == 4 && c.generation == 0); /* the epoch carries over */
  aln_escrow_free(e);
  e = NULL;
  /* Re-sealed as v2 records, and the state is authenticated from now on. */
  assert_int_equal(aln_escrow_open(&e, path, &f->kek, 0), ALN_OK);
  assert_int_equal(aln_escrow_unseal(e, &sec, NULL, "old-b", (int64_t)time(NULL)), ALN_OK);
  assert_memory_equal(sec.p, "legacy-b", 8);
  aln_secret_free(&sec);
  aln_escrow_free(e);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(db, "UPDATE credentials SET live = 1, revoked = 0 WHERE name = 'gone'", NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
  e = NULL;
  assert_int_equal(aln_escrow_open(&e, path, &f->kek, 0), ALN_ERR_STATE_TAMPERED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_round_trip),
      T(test_size_boundaries),
      T(test_list),
      T(test_exists_without_replace),
      T(test_replace),
      T(test_revoke),
      T(test_failed_write_changes_nothing),
      T(test_bad_names_change_nothing),
      T(test_expiry),
      T(test_secret_never_in_file),
      T(test_wiped_ciphertext_leaves_file),
      T(test_file_modes),
      T(test_open_refusals),
      T(test_tamper_ciphertext),
      T(test_tamper_tag),
      T(test_tamper_wrapped_key),
      T(test_tamper_truncated_ciphertext),
      T(test_tamper_binding),
      T(test_tamper_swap_rows),
      T(test_tamper_id_version_name),
      T(test_tamper_un_revoke),
      T(test_wrong_kek),
      T(test_tamper_forged_host),
      T(test_tamper_state_summary),
      T(test_other_process_writes),
      T(test_use_row_needs_the_version_still_live),
      T(test_failed_hook_stops_everything_until_it_recovers),
      T(test_rotate),
      T(test_rotate_failure_changes_nothing),
      T(test_upgrade_from_schema_2),
      T(test_audit_chain),
      T(test_audit_delete_and_reorder),
      T(test_audit_encoding),
      T(test_audit_bounds),
      T(test_hosts),
      T(test_write_and_audit_row_are_one_transaction),
      T(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
