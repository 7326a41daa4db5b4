/* The escrow: sealed credentials, the audit hash chain and enrolled host keys in one
 * SQLite database. A credential row is inserted first so its id exists, then sealed
 * under a fresh data key whose associated data names that id, and updated in the same
 * transaction: a failure anywhere rolls back and leaves the store as it was. Values
 * read back from the file are untrusted (anyone with write access to the data dir
 * can edit them), so every one is bounded and authenticated before use.
 *
 * Every statement is prepared once when the escrow opens and reset after each use
 * (all under the escrow's mutex): parsing SQL on every call cost more CPU than the
 * queries themselves. One cipher context per escrow is re-keyed for each GCM
 * operation and reset (which wipes its key schedule) as soon as the record's seal
 * or open ends. */
#include "enclave/escrow.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "enclave/escrow_state.h"
#include "enclave/idset.h"
#include "proto/cbs.h"

#define ESC_KEY_LEN 32
#define ESC_NONCE_LEN 12
#define ESC_TAG_LEN 16
#define ESC_OVERHEAD (ESC_NONCE_LEN + ESC_TAG_LEN)
#define ESC_WRAPPED_LEN (ESC_KEY_LEN + ESC_OVERHEAD)
#define ESC_HASH_LEN 32
#define ESC_SCHEMA_VERSION 3
#define ESC_BUSY_MS 5000
/* Largest string or blob SQLite may hand us: well above any legitimate value, far
 * below what an edited file could make us allocate. */
#define ESC_VALUE_MAX (1 << 20)
#define ESC_AUDIT_FIELD_MAX 256
#define ESC_AUDIT_DEST_MAX ALN_AUDIT_DEST_MAX
#define ESC_AUDIT_NUM_STR 7
#define ESC_LABEL_MAX 256

/* Labels of the associated data. v2 binds the record's kind; v1 records (schema 2
 * and before) are read only while migrating, to re-seal them under v2. */
static const char cred_label[] = "aileron-cred-v2";
static const char dek_label[] = "aileron-dek-v2";
static const char cred_label_v1[] = "aileron-cred-v1";
static const char dek_label_v1[] = "aileron-dek-v1";

/* The escrow's statements. Those before ESC_NUM_TXN need no schema, so migrate can
 * use them before the tables exist. */
enum esc_stmt {
  ESC_BEGIN_WRITE,
  ESC_BEGIN_READ,
  ESC_COMMIT,
  ESC_ROLLBACK,
  ESC_NUM_TXN,
  ESC_LIVE_ID = ESC_NUM_TXN,
  ESC_RETIRE,
  ESC_MAX_VERSION,
  ESC_INSERT,
  ESC_STORE_SEALED,
  ESC_LIST,
  ESC_REVOKE_FIND,
  ESC_REVOKE,
  ESC_ABSENT,
  ESC_UNSEAL,
  ESC_AUDIT_LAST,
  ESC_AUDIT_INSERT,
  ESC_AUDIT_ALL,
  ESC_HOST_ENROLL,
  ESC_HOST_REMOVE,
  ESC_HOST_LIST,
  ESC_META_SET,
  ESC_EPOCH_GET,
  ESC_META_GET,
  ESC_DATA_VERSION,
  ESC_LIVE_ALL,
  ESC_HOST_ALL,
  ESC_REWRAP_ONE,
  ESC_REWRAP,
  ESC_NUM_STMT
};

/* The columns every metadata query selects, in the order read_meta expects. */
#define ESC_META_COLS "name, version, created_at, expires_at, revoked, binding, kind"

static const char *const stmt_sql[ESC_NUM_STMT] = {
    [ESC_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ESC_BEGIN_READ] = "BEGIN",
    [ESC_COMMIT] = "COMMIT",
    [ESC_ROLLBACK] = "ROLLBACK",
    [ESC_LIVE_ID] = "SELECT id, version, kind FROM credentials WHERE name = ?1 AND live = 1",
    [ESC_RETIRE] = "UPDATE credentials SET live = 0, wrapped_key = NULL, ciphertext = NULL WHERE id = ?1",
    [ESC_MAX_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM credentials WHERE name = ?1",
    [ESC_INSERT] = "INSERT INTO credentials(name, version, created_at, expires_at, revoked, live, binding, kind)"
                   " VALUES(?1, ?2, ?3, ?4, 0, 1, ?5, ?6)",
    [ESC_STORE_SEALED] = "UPDATE credentials SET wrapped_key = ?1, ciphertext = ?2 WHERE id = ?3",
    /* The newest version of each name: its live row, or its tombstone. */
    [ESC_LIST] = "SELECT " ESC_META_COLS " FROM credentials AS c WHERE name > ?1 AND version ="
                 " (SELECT MAX(version) FROM credentials WHERE name = c.name) ORDER BY name LIMIT ?2",
    [ESC_REVOKE_FIND] = "SELECT id, " ESC_META_COLS " FROM credentials WHERE name = ?1 AND live = 1",
    [ESC_REVOKE] = "UPDATE credentials SET revoked = 1, live = 0, wrapped_key = NULL, ciphertext = NULL"
                   " WHERE id = ?1",
    [ESC_ABSENT] = "SELECT revoked FROM credentials WHERE name = ?1 ORDER BY version DESC LIMIT 1",
    [ESC_UNSEAL] = "SELECT id, " ESC_META_COLS ", wrapped_key, ciphertext FROM credentials"
                   " WHERE name = ?1 AND live = 1",
    [ESC_AUDIT_LAST] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [ESC_AUDIT_INSERT] = "INSERT INTO audit(seq, time, actor, host_key, action, credential, method, destination,"
                         " decision, result, http_status, prev_hash, hash)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ESC_AUDIT_ALL] = "SELECT seq, time, actor, host_key, action, credential, method, destination, decision,"
                      " result, http_status, prev_hash, hash FROM audit ORDER BY seq",
    [ESC_HOST_ENROLL] = "INSERT OR REPLACE INTO hosts(spki_hash, label, enrolled_at) VALUES(?1, ?2, ?3)",
    [ESC_HOST_REMOVE] = "DELETE FROM hosts WHERE spki_hash = ?1",
    [ESC_HOST_LIST] = "SELECT spki_hash, label, enrolled_at FROM hosts ORDER BY enrolled_at, rowid",
    [ESC_META_SET] = "UPDATE meta SET epoch = ?1, generation = ?2, kek_id = ?3, state_mac = ?4 WHERE id = 1",
    [ESC_EPOCH_GET] = "SELECT epoch, generation FROM meta WHERE id = 1",
    [ESC_META_GET] = "SELECT epoch, generation, kek_id, state_mac FROM meta WHERE id = 1",
    /* Changes whenever another connection (another process) commits to the file. */
    [ESC_DATA_VERSION] = "PRAGMA data_version",
    [ESC_LIVE_ALL] = "SELECT id, version, kind, name FROM credentials WHERE live = 1",
    [ESC_HOST_ALL] = "SELECT spki_hash FROM hosts",
    [ESC_REWRAP_ONE] = "SELECT " ESC_META_COLS ", wrapped_key FROM credentials WHERE id = ?1 AND live = 1",
    [ESC_REWRAP] = "UPDATE credentials SET wrapped_key = ?1 WHERE id = ?2",
};

/* The authenticated summary of the database: what the state MAC covers. */
struct esc_state {
  struct aln_state_summary sum; /* counters and audit head */
  uint8_t digest[ALN_STATE_LEN];
};

/* The enrolled hosts, by SPKI hash (few: a linear search is fine). */
struct esc_hosts {
  uint8_t (*hash)[32];
  size_t num;
  size_t cap;
};

/* What the open write transaction changes in memory once it commits. */
struct esc_txn {
  struct esc_state state; /* the state it will commit */
  uint64_t live_add;      /* credential row made live, 0 = none */
  uint64_t live_del;      /* credential row retired, 0 = none */
  uint8_t host[32];
  int host_op; /* +1 enrolled, -1 removed, 0 none */
};

struct aln_escrow {
  pthread_mutex_t mu; /* serializes every use of |db|, |stmt|, |gcm|, the state and the transactions */
  sqlite3 *db;
  sqlite3_stmt *stmt[ESC_NUM_STMT];
  EVP_CIPHER *aes_gcm;
  EVP_CIPHER_CTX *gcm; /* keyed only while one record is sealed or opened */
  struct aln_secret kek;
  struct aln_secret dek;       /* the data key of the record being sealed or opened; wiped after */
  struct aln_state_keys keys;  /* derived from |kek|: the state MAC key and the KEK id */
  struct esc_state state;      /* as of the last load or commit, authenticated */
  struct esc_txn txn;          /* the open write transaction's changes */
  struct aln_idset live;       /* ids of the live credential rows, authenticated */
  struct esc_hosts hosts;      /* enrolled hosts, authenticated */
  sqlite3_int64 data_version;  /* of the last load; another value means another process wrote */
  int tampered;                /* the file failed authentication while open: refuse everything */
  aln_escrow_commit_hook hook; /* told the new counts after each write commits; may be NULL */
  int hook_pending;            /* the hook failed after a commit: nothing proceeds until it succeeds */
  void *hook_ctx;
  void (*hook_ctx_free)(void *);
};

static const char schema_v1[] = "CREATE TABLE credentials("
                                " id INTEGER PRIMARY KEY,"
                                " name TEXT NOT NULL,"
                                " version INTEGER NOT NULL,"
                                " created_at INTEGER NOT NULL,"
                                " expires_at INTEGER NOT NULL,"
                                " revoked INTEGER NOT NULL DEFAULT 0,"
                                " live INTEGER NOT NULL,"
                                " binding BLOB NOT NULL,"
                                " wrapped_key BLOB,"
                                " ciphertext BLOB,"
                                " UNIQUE(name, version));"
                                "CREATE UNIQUE INDEX credentials_live ON credentials(name) WHERE live = 1;"
                                "CREATE TABLE audit("
                                " seq INTEGER PRIMARY KEY,"
                                " time INTEGER NOT NULL,"
                                " actor TEXT, host_key TEXT, action TEXT, credential TEXT,"
                                " method TEXT, destination TEXT, decision TEXT,"
                                " result INTEGER NOT NULL,"
                                " http_status INTEGER NOT NULL,"
                                " prev_hash BLOB NOT NULL,"
                                " hash BLOB NOT NULL);"
                                "CREATE TABLE hosts("
                                " spki_hash BLOB PRIMARY KEY,"
                                " label TEXT,"
                                " enrolled_at INTEGER NOT NULL);"
                                "PRAGMA user_version = 1;";

/* Version 2 adds the rollback epoch: one row, counting committed write transactions.
 * An existing database starts at 0, as a new one does. */
static const char schema_v2[] = "CREATE TABLE meta("
                                " id INTEGER PRIMARY KEY CHECK (id = 1),"
                                " epoch INTEGER NOT NULL CHECK (epoch >= 0));"
                                "INSERT INTO meta(id, epoch) VALUES(1, 0);"
                                "PRAGMA user_version = 2;";

/* Version 3 adds each credential's kind (every earlier record is a static secret),
 * the custody generation (counting only the writes that change which credentials
 * or hosts exist), and room for the KEK's check value and the state MAC. */
static const char schema_v3[] = "ALTER TABLE credentials ADD COLUMN kind INTEGER NOT NULL DEFAULT 1;"
                                "ALTER TABLE meta ADD COLUMN generation INTEGER NOT NULL DEFAULT 0"
                                " CHECK (generation >= 0);"
                                "ALTER TABLE meta ADD COLUMN kek_id BLOB;"
                                "ALTER TABLE meta ADD COLUMN state_mac BLOB;"
                                "PRAGMA user_version = 3;";

/* What the associated data of a record binds. */
struct rec_ad {
  int64_t id;
  uint32_t version;
  uint32_t kind;
  int legacy; /* a v1 record: labels v1, no kind */
  int64_t expires_at;
  const char *name;
  const uint8_t *binding;
  size_t binding_len;
};

static aln_status db_status(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE:
    return ALN_OK;
  case SQLITE_NOMEM:
    return ALN_ERR_NOMEM;
  case SQLITE_FULL: /* the disk (or a quota) is full: the statement or commit changed nothing */
    return ALN_ERR_DISK_FULL;
  case SQLITE_IOERR:
    /* Growing the -shm file is the first write of a start; it fails on a full disk. */
    return rc == SQLITE_IOERR_SHMSIZE ? ALN_ERR_DISK_FULL : ALN_ERR_STORE;
  default:
    return ALN_ERR_STORE;
  }
}

/* step_done runs a statement that returns no rows; its failure keeps SQLite's
 * reason (a full disk is not a corrupt store). */
static aln_status step_done(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  ALN_GUARD(db_status(rc));
  return rc == SQLITE_DONE ? ALN_OK : ALN_ERR_STORE;
}

static aln_status db_exec(sqlite3 *db, const char *sql) {
  return db_status(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static aln_status db_prepare(sqlite3 *db, sqlite3_stmt **out, const char *sql) {
  return db_status(sqlite3_prepare_v2(db, sql, -1, out, NULL));
}

/* stmt_done ends one use of a prepared statement: the reset ends the read it may
 * hold open (a pending SELECT would pin its snapshot and block checkpoints) and the
 * bindings' copies are released. NULL is a no-op. */
static void stmt_done(sqlite3_stmt *s) {
  if (s == NULL)
    return;
  (void)sqlite3_reset(s);
  (void)sqlite3_clear_bindings(s);
}

/* db_run steps the parameterless statement |i| (BEGIN, COMMIT, ROLLBACK) once. */
static aln_status db_run(struct aln_escrow *esc, enum esc_stmt i) {
  int rc = sqlite3_step(esc->stmt[i]);
  (void)sqlite3_reset(esc->stmt[i]);
  return db_status(rc);
}

/* db_end commits when |st| is ALN_OK and rolls back otherwise; a failed commit also
 * rolls back, so the caller's status becomes the commit's. */
static aln_status db_end(struct aln_escrow *esc, aln_status st) {
  if (st == ALN_OK)
    st = db_run(esc, ESC_COMMIT);
  if (st != ALN_OK && !sqlite3_get_autocommit(esc->db))
    (void)db_run(esc, ESC_ROLLBACK);
  return st;
}

/* read_counts reads the epoch and generation columns of the current row of |s|. A
 * missing row, a non-integer or a negative value is something no write of ours
 * produces. */
static aln_status read_counts(struct aln_escrow_counts *out, sqlite3_stmt *s, int rc) {
  ALN_GUARD(db_status(rc));
  ALN_ENSURE(rc == SQLITE_ROW, ALN_ERR_TAMPERED);
  for (int i = 0; i < 2; i++) {
    ALN_ENSURE(sqlite3_column_type(s, i) == SQLITE_INTEGER, ALN_ERR_TAMPERED);
    ALN_ENSURE(sqlite3_column_int64(s, i) >= 0, ALN_ERR_TAMPERED);
  }
  out->epoch = (uint64_t)sqlite3_column_int64(s, 0);
  out->generation = (uint64_t)sqlite3_column_int64(s, 1);
  return ALN_OK;
}

static aln_status bind_text(sqlite3_stmt *s, int i, const char *str, size_t max) {
  if (str == NULL)
    return db_status(sqlite3_bind_null(s, i));
  return db_status(sqlite3_bind_text(s, i, str, (int)strnlen(str, max), SQLITE_STATIC));
}

static aln_status bind_blob(sqlite3_stmt *s, int i, const uint8_t *p, size_t len) {
  if (len > INT_MAX)
    return ALN_ERR_TOO_LARGE;
  return db_status(sqlite3_bind_blob(s, i, p, (int)len, SQLITE_STATIC));
}

/* What a write transaction changes, for write_end. */
enum esc_write {
  ESC_WRITE_AUDIT,   /* only the audit chain: moves the epoch */
  ESC_WRITE_CUSTODY, /* which credentials or hosts exist: moves the epoch and the generation */
};

/* ---- the authenticated state (escrow_state.h) ----------------------------------- */

static int hosts_find(const struct esc_hosts *h, const uint8_t hash[32], size_t *at) {
  for (size_t i = 0; i < h->num; i++) {
    if (memcmp(h->hash[i], hash, 32) == 0) {
      if (at != NULL)
        *at = i;
      return 1;
    }
  }
  return 0;
}

static aln_status hosts_add(struct esc_hosts *h, const uint8_t hash[32]) {
  if (h->num == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 8;
    uint8_t(*grown)[32] = reallocarray(h->hash, cap, 32);
    ALN_ENSURE(grown != NULL, ALN_ERR_NOMEM);
    h->hash = grown;
    h->cap = cap;
  }
  memcpy(h->hash[h->num++], hash, 32);
  return ALN_OK;
}

static void hosts_cleanup(struct esc_hosts *h) {
  free(h->hash);
  memset(h, 0, sizeof(*h));
}

static aln_status read_data_version(struct aln_escrow *esc, sqlite3_int64 *out) {
  sqlite3_stmt *s = esc->stmt[ESC_DATA_VERSION];
  int rc = sqlite3_step(s);
  aln_status st = db_status(rc);
  if (st == ALN_OK && rc == SQLITE_ROW)
    *out = sqlite3_column_int64(s, 0);
  else if (st == ALN_OK)
    st = ALN_ERR_STORE;
  stmt_done(s);
  return st;
}

/* read_meta_row reads the counters, the KEK id and the stored MAC. Anything but the
 * exact shapes we write is an edit of the file. */
static aln_status read_meta_row(struct aln_escrow *esc, struct aln_state_summary *sum, uint8_t kek_id[ALN_KEK_ID_LEN],
                                uint8_t mac[ALN_STATE_LEN]) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = esc->stmt[ESC_META_GET];
  struct aln_escrow_counts c;

  int rc = sqlite3_step(s);
  ALN_GUARD_GOTO(st, read_counts(&c, s, rc), out);
  ALN_ENSURE_GOTO(st, sqlite3_column_type(s, 2) == SQLITE_BLOB && sqlite3_column_bytes(s, 2) == ALN_KEK_ID_LEN,
                  ALN_ERR_STATE_TAMPERED, out);
  ALN_ENSURE_GOTO(st, sqlite3_column_type(s, 3) == SQLITE_BLOB && sqlite3_column_bytes(s, 3) == ALN_STATE_LEN,
                  ALN_ERR_STATE_TAMPERED, out);
  memcpy(kek_id, sqlite3_column_blob(s, 2), ALN_KEK_ID_LEN);
  memcpy(mac, sqlite3_column_blob(s, 3), ALN_STATE_LEN);
  sum->epoch = c.epoch;
  sum->generation = c.generation;
  st = ALN_OK;
out:
  stmt_done(s);
  return st == ALN_ERR_TAMPERED ? ALN_ERR_STATE_TAMPERED : st;
}

/* scan_state recomputes, under |keys|, the set digest of the live credentials and
 * the enrolled hosts into |ns| (and, if given, their ids and hashes into |live| and
 * |hosts|), and reads the audit head. Counters are left to the caller. Every value
 * comes from the file: one we would never have written is an edit. */
static aln_status scan_state(struct aln_escrow *esc, const struct aln_state_keys *keys, struct esc_state *ns,
                             struct aln_idset *live, struct esc_hosts *hosts) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = NULL;
  int rc;

  memset(ns->digest, 0, sizeof(ns->digest));
  s = esc->stmt[ESC_LIVE_ALL];
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    sqlite3_int64 id = sqlite3_column_int64(s, 0), version = sqlite3_column_int64(s, 1),
                  kind = sqlite3_column_int64(s, 2);
    const char *name = (const char *)sqlite3_column_text(s, 3);
    size_t name_len = (size_t)sqlite3_column_bytes(s, 3);
    ALN_ENSURE_GOTO(st, id > 0 && version >= 1 && version <= UINT32_MAX && kind >= 0 && kind <= UINT32_MAX,
                    ALN_ERR_STATE_TAMPERED, out);
    ALN_ENSURE_GOTO(st, name != NULL && name_len <= ALN_NAME_MAX && strlen(name) == name_len, ALN_ERR_STATE_TAMPERED,
                    out);
    ALN_GUARD_GOTO(
        st, aln_state_toggle_cred(keys, ns->digest, (uint64_t)id, (uint32_t)version, (uint32_t)kind, name, name_len),
        out);
    if (live != NULL)
      ALN_GUARD_GOTO(st, aln_idset_add(live, (uint64_t)id), out);
  }
  ALN_GUARD_GOTO(st, db_status(rc), out);
  stmt_done(s);

  s = esc->stmt[ESC_HOST_ALL];
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const uint8_t *hash = sqlite3_column_blob(s, 0);
    ALN_ENSURE_GOTO(st, hash != NULL && sqlite3_column_bytes(s, 0) == 32, ALN_ERR_STATE_TAMPERED, out);
    ALN_GUARD_GOTO(st, aln_state_toggle_host(keys, ns->digest, hash), out);
    if (hosts != NULL)
      ALN_GUARD_GOTO(st, hosts_add(hosts, hash), out);
  }
  ALN_GUARD_GOTO(st, db_status(rc), out);
  stmt_done(s);

  s = esc->stmt[ESC_AUDIT_LAST];
  rc = sqlite3_step(s);
  ALN_GUARD_GOTO(st, db_status(rc), out);
  ns->sum.audit_seq = 0;
  memset(ns->sum.audit_head, 0, ESC_HASH_LEN);
  if (rc == SQLITE_ROW) {
    sqlite3_int64 last = sqlite3_column_int64(s, 0);
    const void *h = sqlite3_column_blob(s, 1);
    ALN_ENSURE_GOTO(st, h != NULL && sqlite3_column_bytes(s, 1) == ESC_HASH_LEN, ALN_ERR_STATE_TAMPERED, out);
    ALN_ENSURE_GOTO(st, last >= 1 && last < INT64_MAX, ALN_ERR_STATE_TAMPERED, out);
    ns->sum.audit_seq = (uint64_t)last;
    memcpy(ns->sum.audit_head, h, ESC_HASH_LEN);
  }
  st = ALN_OK;
out:
  stmt_done(s);
  return st == ALN_ERR_EXISTS ? ALN_ERR_STATE_TAMPERED : st;
}

/* store_state writes the counters of |ns|, the KEK id of |keys| and the MAC of |ns|
 * under |keys| into the meta row, inside the caller's write transaction. */
static aln_status store_state(struct aln_escrow *esc, const struct aln_state_keys *keys, const struct esc_state *ns) {
  uint8_t mac[ALN_STATE_LEN];
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = esc->stmt[ESC_META_SET];

  ALN_ENSURE(ns->sum.epoch <= INT64_MAX && ns->sum.generation <= INT64_MAX, ALN_ERR_STORE);
  ALN_GUARD(aln_state_mac(keys, mac, ns->digest, &ns->sum));
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 1, (sqlite3_int64)ns->sum.epoch)), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 2, (sqlite3_int64)ns->sum.generation)), out);
  ALN_GUARD_GOTO(st, bind_blob(s, 3, keys->kek_id, ALN_KEK_ID_LEN), out);
  ALN_GUARD_GOTO(st, bind_blob(s, 4, mac, ALN_STATE_LEN), out);
  ALN_GUARD_GOTO(st, step_done(s), out);
  ALN_ENSURE_GOTO(st, sqlite3_changes(esc->db) == 1, ALN_ERR_STATE_TAMPERED, out); /* the meta row is gone */
  st = ALN_OK;
out:
  stmt_done(s);
  return st;
}

/* load_state reads and authenticates the whole state of the file (inside the
 * caller's transaction) and, only if it verifies, makes it the escrow's. */
static aln_status load_state(struct aln_escrow *esc) {
  aln_status st = ALN_ERR_INTERNAL;
  struct esc_state ns = {0};
  struct aln_idset live = {0};
  struct esc_hosts hosts = {0};
  uint8_t kek_id[ALN_KEK_ID_LEN], mac[ALN_STATE_LEN], want[ALN_STATE_LEN];
  sqlite3_int64 dv = 0;

  ALN_GUARD_GOTO(st, read_data_version(esc, &dv), out);
  ALN_GUARD_GOTO(st, read_meta_row(esc, &ns.sum, kek_id, mac), out);
  /* Checked first, so a wrong KEK is named as such rather than as an edit. */
  ALN_ENSURE_GOTO(st, CRYPTO_memcmp(kek_id, esc->keys.kek_id, ALN_KEK_ID_LEN) == 0, ALN_ERR_KEK_MISMATCH, out);
  ALN_GUARD_GOTO(st, scan_state(esc, &esc->keys, &ns, &live, &hosts), out);
  ALN_GUARD_GOTO(st, aln_state_mac(&esc->keys, want, ns.digest, &ns.sum), out);
  ALN_ENSURE_GOTO(st, CRYPTO_memcmp(want, mac, ALN_STATE_LEN) == 0, ALN_ERR_STATE_TAMPERED, out);

  esc->state = ns;
  aln_idset_cleanup(&esc->live);
  esc->live = live;
  memset(&live, 0, sizeof(live));
  hosts_cleanup(&esc->hosts);
  esc->hosts = hosts;
  memset(&hosts, 0, sizeof(hosts));
  esc->data_version = dv;
  st = ALN_OK;
out:
  aln_idset_cleanup(&live);
  hosts_cleanup(&hosts);
  return st;
}

/* sync_state reloads the state if another process committed since the last load
 * (the enclave's own CLI enrolling a host, say) and authenticates it again. A file
 * that no longer verifies was edited under the running enclave: from then on the
 * escrow refuses everything until an operator looks. */
static aln_status sync_state(struct aln_escrow *esc) {
  sqlite3_int64 dv = 0;
  ALN_ENSURE(!esc->tampered, ALN_ERR_STATE_TAMPERED);
  ALN_GUARD(read_data_version(esc, &dv));
  if (dv == esc->data_version)
    return ALN_OK;
  aln_status st = load_state(esc);
  if (st == ALN_ERR_STATE_TAMPERED || st == ALN_ERR_KEK_MISMATCH) {
    esc->tampered = 1;
    fprintf(stderr,
            "aileron-enclave: ERROR: the escrow database was changed outside this enclave and no longer "
            "authenticates (%s); refusing every operation until restart\n",
            aln_status_name(st));
  }
  return st;
}

/* hook_catch_up retries a commit hook that failed (the rollback record outside
 * the data dir could not be written, say on a full disk). Until it succeeds every
 * operation is refused with its status: the one write already acknowledged is the
 * only one rollback protection can miss, as after a crash, never a growing run. */
static aln_status hook_catch_up(struct aln_escrow *esc) {
  if (!esc->hook_pending)
    return ALN_OK;
  struct aln_escrow_counts c = {.epoch = esc->state.sum.epoch, .generation = esc->state.sum.generation};
  ALN_GUARD(esc->hook(esc->hook_ctx, &c));
  esc->hook_pending = 0;
  fprintf(stderr, "aileron-enclave: escrow epoch %llu recorded outside the data dir again; resuming\n",
          (unsigned long long)c.epoch);
  return ALN_OK;
}

/* read_sync runs sync_state in a read transaction of its own. */
static aln_status read_sync(struct aln_escrow *esc) {
  ALN_GUARD(db_run(esc, ESC_BEGIN_READ));
  return db_end(esc, sync_state(esc));
}

/* write_begin opens a write transaction on the current, authenticated state. */
static aln_status write_begin(struct aln_escrow *esc) {
  ALN_ENSURE(!esc->tampered, ALN_ERR_STATE_TAMPERED);
  ALN_GUARD(hook_catch_up(esc));
  ALN_GUARD(db_run(esc, ESC_BEGIN_WRITE));
  aln_status st = sync_state(esc);
  if (st != ALN_OK)
    return db_end(esc, st);
  memset(&esc->txn, 0, sizeof(esc->txn));
  esc->txn.state = esc->state;
  return ALN_OK;
}

/* commit_apply makes the committed transaction's changes the escrow's. If memory
 * runs out here the write still stands; forgetting the data version makes the next
 * operation reload everything from the file. */
static void commit_apply(struct aln_escrow *esc) {
  struct esc_txn *t = &esc->txn;
  size_t at = 0;
  esc->state = t->state;
  if (t->live_del != 0 && aln_idset_remove(&esc->live, t->live_del) != ALN_OK)
    esc->data_version = -1;
  if (t->live_add != 0 && aln_idset_add(&esc->live, t->live_add) != ALN_OK)
    esc->data_version = -1;
  if (t->host_op > 0 && hosts_add(&esc->hosts, t->host) != ALN_OK)
    esc->data_version = -1;
  if (t->host_op < 0 && hosts_find(&esc->hosts, t->host, &at))
    memmove(esc->hosts.hash[at], esc->hosts.hash[at + 1], (esc->hosts.num-- - at - 1) * 32);
}

/* write_commit ends a write transaction as db_end does, first moving the counters
 * (the generation only for a custody write) and storing the new state MAC under
 * |keys| inside it, so every committed write moves them and a rolled-back one does
 * not. After the commit the hook learns the new counts (see aln_escrow_commit_hook
 * for why its failure is logged, not returned). */
static aln_status write_commit(struct aln_escrow *esc, aln_status st, enum esc_write kind,
                               const struct aln_state_keys *keys) {
  struct aln_state_summary *sum = &esc->txn.state.sum;
  if (st == ALN_OK) {
    sum->epoch++;
    if (kind == ESC_WRITE_CUSTODY)
      sum->generation++;
    st = store_state(esc, keys, &esc->txn.state);
  }
  st = db_end(esc, st);
  if (st != ALN_OK)
    return st;
  commit_apply(esc);
  if (esc->hook != NULL) {
    struct aln_escrow_counts c = {.epoch = sum->epoch, .generation = sum->generation};
    aln_status hs = esc->hook(esc->hook_ctx, &c);
    if (hs != ALN_OK) {
      esc->hook_pending = 1;
      fprintf(stderr,
              "aileron-enclave: WARNING: escrow epoch %llu (generation %llu) is committed but recording it outside "
              "the data dir failed: %s; the write stands, and every operation is refused until the record can be "
              "written\n",
              (unsigned long long)c.epoch, (unsigned long long)c.generation, aln_status_name(hs));
    }
  }
  return st;
}

static aln_status write_end(struct aln_escrow *esc, aln_status st, enum esc_write kind) {
  return write_commit(esc, st, kind, &esc->keys);
}

void aln_cred_meta_cleanup(struct aln_cred_meta *m) {
  if (m == NULL)
    return;
  free(m->binding);
  memset(m, 0, sizeof(*m));
}

void aln_escrow_list_free(struct aln_cred_meta *list, size_t num) {
  if (list == NULL)
    return;
  for (size_t i = 0; i < num; i++)
    aln_cred_meta_cleanup(&list[i]);
  free(list);
}

/* read_meta fills |m| from the ESC_META_COLS starting at column |col|. Anything a
 * legitimate write cannot produce is ALN_ERR_TAMPERED. */
/* cols_from_stmt reads the ESC_META_COLS of the current row of |s|, starting at
 * column |col|, into |c| (pointers into the row: valid until the next step). */
static void cols_from_stmt(struct aln_record_cols *c, sqlite3_stmt *s, int col) {
  memset(c, 0, sizeof(*c));
  c->name = sqlite3_column_text(s, col);
  c->name_len = (size_t)sqlite3_column_bytes(s, col);
  c->version = sqlite3_column_int64(s, col + 1);
  c->created_at = sqlite3_column_int64(s, col + 2);
  c->expires_at = sqlite3_column_int64(s, col + 3);
  c->revoked = sqlite3_column_int64(s, col + 4);
  c->binding = sqlite3_column_blob(s, col + 5);
  c->binding_len = (size_t)sqlite3_column_bytes(s, col + 5);
  c->kind = sqlite3_column_int64(s, col + 6);
}

/* meta_from_cols validates the metadata columns of a row (all untrusted: anyone who
 * can write the file chose them) and copies them into |m|. */
static aln_status meta_from_cols(struct aln_cred_meta *m, const struct aln_record_cols *c) {
  memset(m, 0, sizeof(*m));
  ALN_ENSURE(c->name != NULL && c->name_len > 0 && c->name_len <= ALN_NAME_MAX, ALN_ERR_TAMPERED);
  memcpy(m->name, c->name, c->name_len);
  m->name[c->name_len] = '\0';
  ALN_ENSURE(aln_cred_name_valid_str(m->name) && strlen(m->name) == c->name_len, ALN_ERR_TAMPERED);
  ALN_ENSURE(c->version >= 1 && c->version <= UINT32_MAX, ALN_ERR_TAMPERED);
  m->version = (uint32_t)c->version;
  m->created_at = c->created_at;
  ALN_ENSURE(c->expires_at >= 0, ALN_ERR_TAMPERED);
  m->expires_at = c->expires_at;
  m->revoked = c->revoked != 0;
  ALN_ENSURE(c->kind >= 0 && c->kind <= UINT32_MAX && aln_cred_kind_valid((uint32_t)c->kind), ALN_ERR_TAMPERED);
  m->kind = (uint32_t)c->kind;
  ALN_ENSURE(c->binding != NULL && c->binding_len > 0 && c->binding_len <= ALN_BINDING_MAX, ALN_ERR_TAMPERED);
  m->binding = malloc(c->binding_len);
  ALN_ENSURE(m->binding != NULL, ALN_ERR_NOMEM);
  memcpy(m->binding, c->binding, c->binding_len);
  m->binding_len = c->binding_len;
  return ALN_OK;
}

static aln_status read_meta(struct aln_cred_meta *m, sqlite3_stmt *s, int col) {
  struct aln_record_cols c;
  cols_from_stmt(&c, s, col);
  return meta_from_cols(m, &c);
}

/* The associated data of a record is |label| || u64 id || u32 version || u32 kind
 * || i64 expires_at || u32-prefixed name || u32-prefixed binding (v1 records, from
 * before the kind, lack it). expires_at is bound too, so editing the file cannot
 * extend a credential's life; the kind, so a record cannot be read as another
 * kind. It is fed to GCM in two
 * pieces, everything before the binding's bytes (bounded: labels and names are
 * short) and then the binding itself, which authenticates exactly the same bytes as
 * one contiguous buffer would, without copying up to ALN_BINDING_MAX bytes. */
#define ESC_AD_LABEL_MAX 16
#define ESC_AD_HEAD_MAX (ESC_AD_LABEL_MAX + 8 + 4 + 4 + 8 + 4 + ALN_NAME_MAX + 4)

struct ad_head {
  uint8_t buf[ESC_AD_HEAD_MAX];
  size_t len;
};

static void head_put_be(struct ad_head *h, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++)
    h->buf[h->len++] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* build_ad_head writes the associated data of |ad| under |label| up to the binding's
 * bytes into |h|. ALN_ERR_TOO_LARGE if the label, name or binding exceed their
 * bounds (a legitimate record never does). */
static aln_status build_ad_head(struct ad_head *h, const char *label, const struct rec_ad *ad) {
  size_t label_len = strlen(label);
  size_t name_len = strnlen(ad->name, ALN_NAME_MAX + 1);
  ALN_ENSURE(label_len <= ESC_AD_LABEL_MAX && name_len <= ALN_NAME_MAX, ALN_ERR_TOO_LARGE);
  ALN_ENSURE(ad->binding_len <= ALN_BINDING_MAX, ALN_ERR_TOO_LARGE);
  h->len = 0;
  memcpy(h->buf, label, label_len);
  h->len = label_len;
  head_put_be(h, (uint64_t)ad->id, 8);
  head_put_be(h, ad->version, 4);
  if (!ad->legacy)
    head_put_be(h, ad->kind, 4);
  head_put_be(h, (uint64_t)ad->expires_at, 8);
  head_put_be(h, name_len, 4);
  memcpy(h->buf + h->len, ad->name, name_len);
  h->len += name_len;
  head_put_be(h, ad->binding_len, 4);
  return ALN_OK;
}

/* gcm_cipher returns the cipher to (re-)initialize esc->gcm with: NULL once it is
 * set up, so the second key of a record reuses the context's state rather than
 * allocating a new one. gcm_done wipes it when the record's operation ends. */
static const EVP_CIPHER *gcm_cipher(const struct aln_escrow *esc) {
  return EVP_CIPHER_CTX_get0_cipher(esc->gcm) == NULL ? esc->aes_gcm : NULL;
}

/* gcm_done ends a record's use of esc->gcm: the reset frees the provider state with
 * OPENSSL_clear_free, so no key schedule outlives the record's seal or open. */
static void gcm_done(struct aln_escrow *esc) {
  (void)EVP_CIPHER_CTX_reset(esc->gcm);
}

/* gcm_aad feeds the associated data (head, then binding) to the keyed context. */
static int gcm_aad(EVP_CIPHER_CTX *ctx, int enc, const struct ad_head *h, const struct rec_ad *ad) {
  int n = 0;
  int (*update)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int) =
      enc ? EVP_EncryptUpdate : EVP_DecryptUpdate;
  if (update(ctx, NULL, &n, h->buf, (int)h->len) != 1)
    return 0;
  return ad->binding_len == 0 || update(ctx, NULL, &n, ad->binding, (int)ad->binding_len) == 1;
}

/* gcm_seal writes nonce || AES-256-GCM(key, in, aad) || tag (in_len + ESC_OVERHEAD
 * bytes) to |out|, the associated data being |ad| under |label|. */
static aln_status gcm_seal(struct aln_escrow *esc, uint8_t *out, const uint8_t *key, const uint8_t *in, size_t in_len,
                           const char *label, const struct rec_ad *ad) {
  EVP_CIPHER_CTX *ctx = esc->gcm;
  struct ad_head h;
  int n = 0;

  ALN_ENSURE(in_len <= INT_MAX - ESC_OVERHEAD, ALN_ERR_TOO_LARGE);
  ALN_GUARD(build_ad_head(&h, label, ad));
  ALN_ENSURE(RAND_bytes(out, ESC_NONCE_LEN) == 1, ALN_ERR_CRYPTO);
  ALN_ENSURE(EVP_EncryptInit_ex2(ctx, gcm_cipher(esc), key, out, NULL) == 1, ALN_ERR_CRYPTO);
  ALN_ENSURE(gcm_aad(ctx, 1, &h, ad), ALN_ERR_CRYPTO);
  ALN_ENSURE(EVP_EncryptUpdate(ctx, out + ESC_NONCE_LEN, &n, in, (int)in_len) == 1 && (size_t)n == in_len,
             ALN_ERR_CRYPTO);
  ALN_ENSURE(EVP_EncryptFinal_ex(ctx, out + ESC_NONCE_LEN + in_len, &n) == 1 && n == 0, ALN_ERR_CRYPTO);
  ALN_ENSURE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ESC_TAG_LEN, out + ESC_NONCE_LEN + in_len) == 1,
             ALN_ERR_CRYPTO);
  return ALN_OK;
}

/* gcm_open authenticates and decrypts |in| (as gcm_seal wrote it, with |ad| under
 * |label|) into |out| (in_len - ESC_OVERHEAD bytes). Any failure of the record is
 * ALN_ERR_TAMPERED and leaves |out| wiped: GCM writes plaintext before it checks
 * the tag. */
static aln_status gcm_open(struct aln_escrow *esc, uint8_t *out, const uint8_t *key, const uint8_t *in, size_t in_len,
                           const char *label, const struct rec_ad *ad) {
  aln_status st = ALN_ERR_TAMPERED;
  EVP_CIPHER_CTX *ctx = esc->gcm;
  struct ad_head h;
  uint8_t tag[ESC_TAG_LEN];
  int n = 0;

  ALN_ENSURE(in_len > ESC_OVERHEAD && in_len <= INT_MAX, ALN_ERR_TAMPERED);
  ALN_GUARD(build_ad_head(&h, label, ad));
  size_t pt_len = in_len - ESC_OVERHEAD;
  memcpy(tag, in + in_len - ESC_TAG_LEN, ESC_TAG_LEN);
  ALN_ENSURE_GOTO(st, EVP_DecryptInit_ex2(ctx, gcm_cipher(esc), key, in, NULL) == 1, ALN_ERR_TAMPERED, out);
  ALN_ENSURE_GOTO(st, gcm_aad(ctx, 0, &h, ad), ALN_ERR_TAMPERED, out);
  ALN_ENSURE_GOTO(st, EVP_DecryptUpdate(ctx, out, &n, in + ESC_NONCE_LEN, (int)pt_len) == 1 && (size_t)n == pt_len,
                  ALN_ERR_TAMPERED, out);
  ALN_ENSURE_GOTO(st, EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ESC_TAG_LEN, tag) == 1, ALN_ERR_TAMPERED, out);
  ALN_ENSURE_GOTO(st, EVP_DecryptFinal_ex(ctx, out + pt_len, &n) == 1, ALN_ERR_TAMPERED, out);
  st = ALN_OK;
out:
  if (st != ALN_OK)
    OPENSSL_cleanse(out, pt_len);
  return st;
}

/* seal_record seals |secret| under a fresh data key and wraps that key with the KEK,
 * both bound to |ad|. The caller frees *ct_out / *wk_out with free(). */
static aln_status seal_record(struct aln_escrow *esc, uint8_t **ct_out, size_t *ct_len, uint8_t **wk_out,
                              const struct rec_ad *ad, const uint8_t *secret, size_t secret_len) {
  aln_status st = ALN_ERR_INTERNAL;
  uint8_t *dek = esc->dek.p;
  uint8_t *ct = NULL, *wk = NULL;

  ALN_ENSURE_GOTO(st, RAND_priv_bytes(dek, ESC_KEY_LEN) == 1, ALN_ERR_CRYPTO, out);
  ct = malloc(secret_len + ESC_OVERHEAD);
  wk = malloc(ESC_WRAPPED_LEN);
  ALN_ENSURE_GOTO(st, ct != NULL && wk != NULL, ALN_ERR_NOMEM, out);

  ALN_ENSURE_GOTO(st, !ad->legacy, ALN_ERR_INTERNAL, out); /* only ever read */
  ALN_GUARD_GOTO(st, gcm_seal(esc, ct, dek, secret, secret_len, cred_label, ad), out);
  ALN_GUARD_GOTO(st, gcm_seal(esc, wk, esc->kek.p, dek, ESC_KEY_LEN, dek_label, ad), out);

  *ct_out = ct;
  *ct_len = secret_len + ESC_OVERHEAD;
  *wk_out = wk;
  ct = wk = NULL;
  st = ALN_OK;
out:
  free(ct);
  free(wk);
  gcm_done(esc);
  OPENSSL_cleanse(dek, ESC_KEY_LEN);
  return st;
}

/* open_record unwraps the data key and decrypts the ciphertext straight into locked
 * memory. Nothing is returned unless both authenticate. */
static aln_status open_record(struct aln_escrow *esc, struct aln_secret *out, const struct rec_ad *ad,
                              const uint8_t *wk, size_t wk_len, const uint8_t *ct, size_t ct_len) {
  aln_status st = ALN_ERR_INTERNAL;
  uint8_t *dek = esc->dek.p;
  struct aln_secret pt = {0};

  ALN_ENSURE(wk != NULL && wk_len == ESC_WRAPPED_LEN, ALN_ERR_TAMPERED);
  ALN_ENSURE(ct != NULL && ct_len > ESC_OVERHEAD && ct_len <= ALN_SECRET_MAX + ESC_OVERHEAD, ALN_ERR_TAMPERED);

  ALN_GUARD_GOTO(st, gcm_open(esc, dek, esc->kek.p, wk, wk_len, ad->legacy ? dek_label_v1 : dek_label, ad), out);
  ALN_GUARD_GOTO(st, aln_secret_new(&pt, ct_len - ESC_OVERHEAD), out);
  ALN_GUARD_GOTO(st, gcm_open(esc, pt.p, dek, ct, ct_len, ad->legacy ? cred_label_v1 : cred_label, ad), out);

  *out = pt;
  memset(&pt, 0, sizeof(pt));
  st = ALN_OK;
out:
  aln_secret_free(&pt);
  gcm_done(esc);
  OPENSSL_cleanse(dek, ESC_KEY_LEN);
  return st;
}

/* wipe_checkpoint moves the WAL into the database and truncates it, so the frames
 * that still held a wiped ciphertext or wrapped key leave the disk. Best effort: a
 * concurrent reader only delays it to a later checkpoint. */
static void wipe_checkpoint(sqlite3 *db) {
  (void)sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

static aln_status prepare_stmts(struct aln_escrow *esc, int first, int end);

/* reseal_legacy re-seals every live v1 record (associated data without the kind)
 * under v2, each under a fresh data key. A record that does not open as v1 stops
 * the migration: it was edited, and re-sealing it would launder the edit. */
static aln_status reseal_legacy(struct aln_escrow *esc) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *ids = NULL, *s = NULL;
  struct aln_cred_meta meta = {0};
  struct aln_secret pt = {0};
  uint8_t *ct = NULL, *wk = NULL;
  size_t ct_len = 0;
  int rc;

  /* The rows to re-seal, read whole before any is written. */
  ALN_GUARD_GOTO(st,
                 db_prepare(esc->db, &ids,
                            "SELECT id, " ESC_META_COLS ", wrapped_key, ciphertext FROM credentials WHERE live = 1"),
                 out);
  while ((rc = sqlite3_step(ids)) == SQLITE_ROW) {
    ALN_GUARD_GOTO(st, read_meta(&meta, ids, 1), out);
    struct rec_ad ad = {.id = sqlite3_column_int64(ids, 0),
                        .version = meta.version,
                        .kind = meta.kind,
                        .legacy = 1,
                        .expires_at = meta.expires_at,
                        .name = meta.name,
                        .binding = meta.binding,
                        .binding_len = meta.binding_len};
    ALN_GUARD_GOTO(st,
                   open_record(esc, &pt, &ad, sqlite3_column_blob(ids, 8), (size_t)sqlite3_column_bytes(ids, 8),
                               sqlite3_column_blob(ids, 9), (size_t)sqlite3_column_bytes(ids, 9)),
                   out);
    ad.legacy = 0;
    ALN_GUARD_GOTO(st, seal_record(esc, &ct, &ct_len, &wk, &ad, pt.p, pt.len), out);
    aln_secret_free(&pt);
    s = esc->stmt[ESC_STORE_SEALED];
    ALN_GUARD_GOTO(st, bind_blob(s, 1, wk, ESC_WRAPPED_LEN), out);
    ALN_GUARD_GOTO(st, bind_blob(s, 2, ct, ct_len), out);
    ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 3, ad.id)), out);
    ALN_GUARD_GOTO(st, step_done(s), out);
    stmt_done(s);
    s = NULL;
    OPENSSL_cleanse(ct, ct_len);
    free(ct);
    free(wk);
    ct = wk = NULL;
    aln_cred_meta_cleanup(&meta);
  }
  ALN_GUARD_GOTO(st, db_status(rc), out);
  st = ALN_OK;
out:
  stmt_done(s);
  sqlite3_finalize(ids);
  aln_secret_free(&pt);
  if (ct != NULL)
    OPENSSL_cleanse(ct, ct_len);
  free(ct);
  free(wk);
  aln_cred_meta_cleanup(&meta);
  return st;
}

/* adopt starts authenticating a database that predates the state MAC (or was just
 * created): its records are re-sealed under v2 and its state is MACed as it stands.
 * It runs only inside the schema upgrade to version 3, in the same transaction, so
 * clearing the MAC of a current file cannot make the enclave adopt an edited one. */
static aln_status adopt_state(struct aln_escrow *esc);

static aln_status adopt(struct aln_escrow *esc) {
  ALN_GUARD(reseal_legacy(esc));
  return adopt_state(esc);
}

/* adopt_state MACs the state of the file as it stands, under the escrow's KEK. */
static aln_status adopt_state(struct aln_escrow *esc) {
  struct esc_state ns = {0};
  sqlite3_stmt *s = esc->stmt[ESC_EPOCH_GET];
  struct aln_escrow_counts c;
  aln_status st = read_counts(&c, s, sqlite3_step(s));
  stmt_done(s);
  ALN_GUARD(st);
  ns.sum.epoch = c.epoch;
  ns.sum.generation = c.generation;
  ALN_GUARD(scan_state(esc, &esc->keys, &ns, NULL, NULL));
  return store_state(esc, &esc->keys, &ns);
}

/* open_txn brings the schema up to date, prepares the statements and loads and
 * authenticates the state, all in one write transaction: a crash part way leaves
 * the file as it was. */
static aln_status open_txn(struct aln_escrow *esc, unsigned flags) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3 *db = esc->db;
  sqlite3_stmt *s = NULL;

  ALN_GUARD(db_run(esc, ESC_BEGIN_WRITE));
  ALN_GUARD_GOTO(st, db_prepare(db, &s, "PRAGMA user_version"), out);
  ALN_ENSURE_GOTO(st, sqlite3_step(s) == SQLITE_ROW, ALN_ERR_STORE, out);
  sqlite3_int64 version = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  s = NULL;
  int upgrade = version < 3;
  if (version == 0) {
    ALN_GUARD_GOTO(st, db_exec(db, schema_v1), out);
    version = 1;
  }
  if (version == 1) {
    ALN_GUARD_GOTO(st, db_exec(db, schema_v2), out);
    version = 2;
  }
  if (version == 2) {
    ALN_GUARD_GOTO(st, db_exec(db, schema_v3), out);
    version = 3;
  }
  ALN_ENSURE_GOTO(st, version == ESC_SCHEMA_VERSION, ALN_ERR_STORE, out); /* newer or foreign file */
  ALN_GUARD_GOTO(st, prepare_stmts(esc, ESC_NUM_TXN, ESC_NUM_STMT), out);
  if (upgrade)
    ALN_GUARD_GOTO(st, adopt(esc), out);
  st = load_state(esc);
  if (st == ALN_ERR_STATE_TAMPERED && (flags & ALN_ESCROW_ACCEPT_STATE)) {
    fprintf(stderr, "aileron-enclave: WARNING: the escrow's state failed authentication; the operator vouches for "
                    "the file as it is (ALN_ESCROW_ACCEPT_STATE): authenticating its current state from now on\n");
    ALN_GUARD_GOTO(st, adopt_state(esc), out);
    st = load_state(esc);
  }
  ALN_GUARD_GOTO(st, st, out);
  st = ALN_OK;
out:
  sqlite3_finalize(s);
  return db_end(esc, st);
}

/* tighten makes |path| 0600 if it exists: an older file may predate our umask. A
 * symlink is refused rather than followed. */
static aln_status tighten(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0)
    return ALN_OK;
  ALN_ENSURE(S_ISREG(sb.st_mode), ALN_ERR_PERMS);
  ALN_ENSURE(chmod(path, S_IRUSR | S_IWUSR) == 0, ALN_ERR_PERMS);
  return ALN_OK;
}

static aln_status tighten_sidecar(const char *path, const char *suffix) {
  char buf[PATH_MAX];
  int n = snprintf(buf, sizeof(buf), "%s%s", path, suffix);
  ALN_ENSURE(n > 0 && (size_t)n < sizeof(buf), ALN_ERR_USAGE);
  return tighten(buf);
}

static aln_status configure(sqlite3 *db) {
  aln_status st = ALN_ERR_STORE;
  sqlite3_stmt *s = NULL;
  int on = 0;

  /* Defensive mode refuses writable_schema and other ways SQL could corrupt the file. */
  ALN_ENSURE(sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on) == SQLITE_OK && on == 1, ALN_ERR_STORE);
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, ESC_VALUE_MAX);
  sqlite3_extended_result_codes(db, 1);
  ALN_GUARD(db_status(sqlite3_busy_timeout(db, ESC_BUSY_MS)));
  ALN_GUARD(db_exec(db, "PRAGMA trusted_schema = OFF; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON"));
  ALN_GUARD_GOTO(st, db_prepare(db, &s, "PRAGMA journal_mode = WAL"), out);
  ALN_ENSURE_GOTO(st, sqlite3_step(s) == SQLITE_ROW, ALN_ERR_STORE, out);
  const unsigned char *mode = sqlite3_column_text(s, 0);
  ALN_ENSURE_GOTO(st, mode != NULL && strcmp((const char *)mode, "wal") == 0, ALN_ERR_STORE, out);
  ALN_GUARD_GOTO(st, db_exec(db, "PRAGMA synchronous = FULL"), out);
  st = ALN_OK;
out:
  sqlite3_finalize(s);
  return st;
}

/* prepare_stmts prepares statements [first, end). PERSISTENT: they live as long as
 * the escrow. */
static aln_status prepare_stmts(struct aln_escrow *esc, int first, int end) {
  for (int i = first; i < end; i++)
    ALN_GUARD(db_status(sqlite3_prepare_v3(esc->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &esc->stmt[i], NULL)));
  return ALN_OK;
}

aln_status aln_escrow_open(struct aln_escrow **out, const char *path, const struct aln_secret *kek, unsigned flags) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_escrow *esc = NULL;

  ALN_ENSURE(out != NULL && path != NULL && kek != NULL && kek->p != NULL, ALN_ERR_USAGE);
  *out = NULL;
  ALN_ENSURE(kek->len == ESC_KEY_LEN, ALN_ERR_USAGE);
  esc = calloc(1, sizeof(*esc));
  ALN_ENSURE(esc != NULL, ALN_ERR_NOMEM);
  if (pthread_mutex_init(&esc->mu, NULL) != 0) {
    free(esc);
    return ALN_ERR_INTERNAL;
  }

  /* umask is process-wide; the escrow is opened once at start, before other threads. */
  /* NOMUTEX: every use of the connection is already serialized by esc->mu, so
   * SQLite's own per-call connection mutex would only add a lock to every call. */
  mode_t old_mask = umask(077);
  int rc = sqlite3_open_v2(
      path, &esc->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
  umask(old_mask);
  ALN_ENSURE_GOTO(st, rc == SQLITE_OK, db_status(rc) == ALN_ERR_NOMEM ? ALN_ERR_NOMEM : ALN_ERR_STORE, out);
  /* Before WAL mode: SQLite gives the -wal and -shm files the database's mode. */
  ALN_GUARD_GOTO(st, tighten(path), out);
  ALN_GUARD_GOTO(st, tighten_sidecar(path, "-wal"), out);
  ALN_GUARD_GOTO(st, tighten_sidecar(path, "-shm"), out);
  ALN_GUARD_GOTO(st, configure(esc->db), out);
  esc->aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  esc->gcm = EVP_CIPHER_CTX_new();
  ALN_ENSURE_GOTO(st, esc->aes_gcm != NULL && esc->gcm != NULL, ALN_ERR_CRYPTO, out);
  ALN_GUARD_GOTO(st, aln_secret_from(&esc->kek, kek->p, kek->len), out);
  ALN_GUARD_GOTO(st, aln_secret_new(&esc->dek, ESC_KEY_LEN), out);
  ALN_GUARD_GOTO(st, aln_state_keys_derive(&esc->keys, kek), out);
  ALN_GUARD_GOTO(st, prepare_stmts(esc, 0, ESC_NUM_TXN), out);
  ALN_GUARD_GOTO(st, open_txn(esc, flags), out);

  *out = esc;
  esc = NULL;
  st = ALN_OK;
out:
  aln_escrow_free(esc);
  return st;
}

void aln_escrow_free(struct aln_escrow *esc) {
  if (esc == NULL)
    return;
  for (int i = 0; i < ESC_NUM_STMT; i++)
    sqlite3_finalize(esc->stmt[i]);
  sqlite3_close_v2(esc->db);
  EVP_CIPHER_CTX_free(esc->gcm);
  EVP_CIPHER_free(esc->aes_gcm);
  aln_secret_free(&esc->kek);
  aln_secret_free(&esc->dek);
  aln_state_keys_cleanup(&esc->keys);
  aln_idset_cleanup(&esc->live);
  hosts_cleanup(&esc->hosts);
  if (esc->hook_ctx_free != NULL)
    esc->hook_ctx_free(esc->hook_ctx);
  pthread_mutex_destroy(&esc->mu);
  free(esc);
}

static aln_status audit_insert(struct aln_escrow *esc, const struct aln_audit_event *ev);

/* write_end_meta ends a custody write as write_end does and, only if it committed,
 * hands |meta| over to |out_meta| (may be NULL); |meta| is left empty either way. */
static aln_status write_end_meta(struct aln_escrow *esc, aln_status st, struct aln_cred_meta *meta,
                                 struct aln_cred_meta *out_meta) {
  st = write_end(esc, st, ESC_WRITE_CUSTODY);
  if (st == ALN_OK && out_meta != NULL) {
    *out_meta = *meta;
    memset(meta, 0, sizeof(*meta));
  }
  aln_cred_meta_cleanup(meta);
  return st;
}

static aln_status put_locked(struct aln_escrow *esc, struct aln_cred_meta *out_meta, const struct aln_cred_input *in,
                             const struct aln_audit_event *audit) {
  const char *name = in->name;
  const uint8_t *binding = in->binding;
  size_t binding_len = in->binding_len;
  int64_t expires_at = in->expires_at;
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3 *db = esc->db;
  sqlite3_stmt *s = NULL;
  uint8_t *ct = NULL, *wk = NULL;
  size_t ct_len = 0;
  struct aln_cred_meta meta = {0};
  struct rec_ad ad = {
      .name = name, .kind = in->kind, .binding = binding, .binding_len = binding_len, .expires_at = expires_at};
  int64_t now = (int64_t)time(NULL);
  size_t name_len = strlen(name);
  struct esc_txn *t = &esc->txn;

  ALN_GUARD(write_begin(esc));

  s = esc->stmt[ESC_LIVE_ID];
  ALN_GUARD_GOTO(st, bind_text(s, 1, name, ALN_NAME_MAX), out);
  int rc = sqlite3_step(s);
  ALN_GUARD_GOTO(st, db_status(rc), out);
  sqlite3_int64 old_id = sqlite3_column_int64(s, 0), old_version = sqlite3_column_int64(s, 1),
                old_kind = sqlite3_column_int64(s, 2);
  stmt_done(s);
  s = NULL;
  if (rc == SQLITE_ROW) {
    ALN_ENSURE_GOTO(st, in->replace, ALN_ERR_EXISTS, out);
    /* The old version leaves the authenticated set, so it must have been in it. */
    ALN_ENSURE_GOTO(st, aln_idset_contains(&esc->live, (uint64_t)old_id), ALN_ERR_STATE_TAMPERED, out);
    ALN_ENSURE_GOTO(st, old_version >= 1 && old_version <= UINT32_MAX && old_kind >= 0 && old_kind <= UINT32_MAX,
                    ALN_ERR_STATE_TAMPERED, out);
    ALN_GUARD_GOTO(st,
                   aln_state_toggle_cred(&esc->keys, t->state.digest, (uint64_t)old_id, (uint32_t)old_version,
                                         (uint32_t)old_kind, name, name_len),
                   out);
    t->live_del = (uint64_t)old_id;
    s = esc->stmt[ESC_RETIRE];
    ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 1, old_id)), out);
    ALN_GUARD_GOTO(st, step_done(s), out);
    stmt_done(s);
    s = NULL;
  }

  s = esc->stmt[ESC_MAX_VERSION];
  ALN_GUARD_GOTO(st, bind_text(s, 1, name, ALN_NAME_MAX), out);
  ALN_ENSURE_GOTO(st, sqlite3_step(s) == SQLITE_ROW, ALN_ERR_STORE, out);
  sqlite3_int64 max_version = sqlite3_column_int64(s, 0);
  ALN_ENSURE_GOTO(st, max_version >= 0 && max_version < UINT32_MAX, ALN_ERR_STORE, out);
  ad.version = (uint32_t)max_version + 1;
  stmt_done(s);
  s = NULL;

  s = esc->stmt[ESC_INSERT];
  ALN_GUARD_GOTO(st, bind_text(s, 1, name, ALN_NAME_MAX), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 2, ad.version)), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 3, now)), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 4, expires_at)), out);
  ALN_GUARD_GOTO(st, bind_blob(s, 5, binding, binding_len), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 6, in->kind)), out);
  ALN_GUARD_GOTO(st, step_done(s), out);
  stmt_done(s);
  s = NULL;
  ad.id = sqlite3_last_insert_rowid(db);
  ALN_GUARD_GOTO(
      st, aln_state_toggle_cred(&esc->keys, t->state.digest, (uint64_t)ad.id, ad.version, ad.kind, name, name_len),
      out);
  t->live_add = (uint64_t)ad.id;

  ALN_GUARD_GOTO(st, seal_record(esc, &ct, &ct_len, &wk, &ad, in->secret, in->secret_len), out);
  s = esc->stmt[ESC_STORE_SEALED];
  ALN_GUARD_GOTO(st, bind_blob(s, 1, wk, ESC_WRAPPED_LEN), out);
  ALN_GUARD_GOTO(st, bind_blob(s, 2, ct, ct_len), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 3, ad.id)), out);
  ALN_GUARD_GOTO(st, step_done(s), out);
  ALN_ENSURE_GOTO(st, sqlite3_changes(db) == 1, ALN_ERR_STORE, out);
  stmt_done(s);
  s = NULL;
  if (audit != NULL)
    ALN_GUARD_GOTO(st, audit_insert(esc, audit), out);

  /* Everything that can fail happens before COMMIT, so an error changes nothing. */
  if (out_meta != NULL) {
    memcpy(meta.name, name, strlen(name) + 1);
    meta.kind = in->kind;
    meta.version = ad.version;
    meta.created_at = now;
    meta.expires_at = expires_at;
    meta.binding = malloc(binding_len);
    ALN_ENSURE_GOTO(st, meta.binding != NULL, ALN_ERR_NOMEM, out);
    memcpy(meta.binding, binding, binding_len);
    meta.binding_len = binding_len;
  }
  st = ALN_OK;
out:
  stmt_done(s);
  if (ct != NULL)
    OPENSSL_cleanse(ct, ct_len);
  free(ct);
  free(wk);
  return write_end_meta(esc, st, &meta, out_meta);
}

int aln_cred_kind_valid(uint32_t kind) {
  return kind == ALN_CRED_KIND_SECRET;
}

aln_status aln_escrow_put(struct aln_escrow *esc, struct aln_cred_meta *out_meta, const struct aln_cred_input *in,
                          const struct aln_audit_event *audit) {
  if (out_meta != NULL)
    memset(out_meta, 0, sizeof(*out_meta));
  ALN_ENSURE(esc != NULL && in != NULL && in->secret != NULL && in->binding != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(aln_cred_name_valid_str(in->name), ALN_ERR_BAD_NAME);
  ALN_ENSURE(aln_cred_kind_valid(in->kind), ALN_ERR_USAGE);
  ALN_ENSURE(in->secret_len > 0 && in->binding_len > 0 && in->expires_at >= 0, ALN_ERR_USAGE);
  ALN_ENSURE(in->secret_len <= ALN_SECRET_MAX && in->binding_len <= ALN_BINDING_MAX, ALN_ERR_TOO_LARGE);

  pthread_mutex_lock(&esc->mu);
  aln_status st = put_locked(esc, out_meta, in, audit);
  if (st == ALN_OK && in->replace)
    wipe_checkpoint(esc->db);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

static aln_status list_locked(struct aln_escrow *esc, const char *after, size_t limit, struct aln_cred_meta **out,
                              size_t *num_out, int *more) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = NULL;
  struct aln_cred_meta *list = NULL;
  size_t num = 0, cap = 0;
  int rc;

  s = esc->stmt[ESC_LIST];
  ALN_GUARD_GOTO(st, bind_text(s, 1, after, ALN_NAME_MAX), out);
  /* One row beyond the page says whether more follow. */
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 2, (sqlite3_int64)limit + 1)), out);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (num == limit) {
      *more = 1;
      rc = SQLITE_DONE;
      break;
    }
    if (num == cap) {
      size_t new_cap = cap == 0 ? 16 : cap * 2;
      struct aln_cred_meta *grown = reallocarray(list, new_cap, sizeof(*list));
      ALN_ENSURE_GOTO(st, grown != NULL, ALN_ERR_NOMEM, out);
      list = grown;
      cap = new_cap;
    }
    st = read_meta(&list[num], s, 0);
    num++; /* counted even on failure: read_meta leaves it safe to clean up */
    if (st != ALN_OK)
      goto out;
  }
  ALN_GUARD_GOTO(st, db_status(rc), out);

  *out = list;
  *num_out = num;
  list = NULL;
  num = 0;
  st = ALN_OK;
out:
  stmt_done(s);
  aln_escrow_list_free(list, num);
  return st;
}

aln_status aln_escrow_list(struct aln_escrow *esc, const char *after, size_t limit, struct aln_cred_meta **out,
                           size_t *num_out, int *more) {
  ALN_ENSURE(out != NULL && num_out != NULL && more != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *num_out = 0;
  *more = 0;
  ALN_ENSURE(esc != NULL && limit >= 1 && limit <= ALN_LIST_PAGE_MAX, ALN_ERR_USAGE);
  if (after == NULL)
    after = "";
  ALN_ENSURE(after[0] == '\0' || aln_cred_name_valid_str(after), ALN_ERR_BAD_NAME);
  pthread_mutex_lock(&esc->mu);
  aln_status st = list_locked(esc, after, limit, out, num_out, more);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

static aln_status revoke_locked(struct aln_escrow *esc, struct aln_cred_meta *out_meta, const char *name,
                                const struct aln_audit_event *audit) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3 *db = esc->db;
  sqlite3_stmt *s = NULL;
  struct aln_cred_meta meta = {0};

  ALN_GUARD(write_begin(esc));
  s = esc->stmt[ESC_REVOKE_FIND];
  ALN_GUARD_GOTO(st, bind_text(s, 1, name, ALN_NAME_MAX), out);
  int rc = sqlite3_step(s);
  ALN_GUARD_GOTO(st, db_status(rc), out);
  ALN_ENSURE_GOTO(st, rc == SQLITE_ROW, ALN_ERR_NOT_FOUND, out);
  sqlite3_int64 id = sqlite3_column_int64(s, 0);
  ALN_GUARD_GOTO(st, read_meta(&meta, s, 1), out);
  meta.revoked = 1;
  ALN_ENSURE_GOTO(st, aln_idset_contains(&esc->live, (uint64_t)id), ALN_ERR_STATE_TAMPERED, out);
  ALN_GUARD_GOTO(st,
                 aln_state_toggle_cred(&esc->keys, esc->txn.state.digest, (uint64_t)id, meta.version, meta.kind,
                                       meta.name, strlen(meta.name)),
                 out);
  esc->txn.live_del = (uint64_t)id;
  stmt_done(s);
  s = NULL;

  s = esc->stmt[ESC_REVOKE];
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 1, id)), out);
  ALN_GUARD_GOTO(st, step_done(s), out);
  ALN_ENSURE_GOTO(st, sqlite3_changes(db) == 1, ALN_ERR_STORE, out);
  stmt_done(s);
  s = NULL;
  if (audit != NULL)
    ALN_GUARD_GOTO(st, audit_insert(esc, audit), out);
  st = ALN_OK;
out:
  stmt_done(s);
  return write_end_meta(esc, st, &meta, out_meta);
}

aln_status aln_escrow_revoke(struct aln_escrow *esc, struct aln_cred_meta *out_meta, const char *name,
                             const struct aln_audit_event *audit) {
  if (out_meta != NULL)
    memset(out_meta, 0, sizeof(*out_meta));
  ALN_ENSURE(esc != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(aln_cred_name_valid_str(name), ALN_ERR_BAD_NAME);
  pthread_mutex_lock(&esc->mu);
  aln_status st = revoke_locked(esc, out_meta, name, audit);
  if (st == ALN_OK)
    wipe_checkpoint(esc->db);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

/* absent_status tells a revoked name (newest row a tombstone) from an unknown one. */
static aln_status absent_status(struct aln_escrow *esc, const char *name) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = esc->stmt[ESC_ABSENT];

  ALN_GUARD_GOTO(st, bind_text(s, 1, name, ALN_NAME_MAX), out);
  int rc = sqlite3_step(s);
  ALN_GUARD_GOTO(st, db_status(rc), out);
  st = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) != 0 ? ALN_ERR_REVOKED : ALN_ERR_NOT_FOUND;
out:
  stmt_done(s);
  return st;
}

/* open_cols authenticates and decrypts the record whose validated metadata is |m|
 * and whose id and sealed blobs are in |c|. */
static aln_status open_cols(struct aln_escrow *esc, struct aln_secret *out, const struct aln_cred_meta *m,
                            const struct aln_record_cols *c) {
  struct rec_ad ad = {.id = c->id,
                      .version = m->version,
                      .kind = m->kind,
                      .expires_at = m->expires_at,
                      .name = m->name,
                      .binding = m->binding,
                      .binding_len = m->binding_len};
  return open_record(esc, out, &ad, c->wrapped_key, c->wrapped_key_len, c->ciphertext, c->ciphertext_len);
}

static aln_status unseal_once(struct aln_escrow *esc, struct aln_secret *out_secret, struct aln_cred_meta *out_meta,
                              const char *name, int64_t now, int *miss) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = esc->stmt[ESC_UNSEAL];
  struct aln_cred_meta meta = {0};

  ALN_GUARD_GOTO(st, bind_text(s, 1, name, ALN_NAME_MAX), out);
  int rc = sqlite3_step(s);
  ALN_GUARD_GOTO(st, db_status(rc), out);
  if (rc != SQLITE_ROW) {
    stmt_done(s); /* one statement at a time */
    s = NULL;
    st = absent_status(esc, name);
    goto out;
  }
  /* A live row the authenticated state does not know is one made live behind the
   * enclave's back (or by another process since the last load: the caller reloads
   * and asks again). Checked before anything is decrypted. */
  if (!aln_idset_contains(&esc->live, (uint64_t)sqlite3_column_int64(s, 0))) {
    *miss = 1;
    st = ALN_ERR_STATE_TAMPERED;
    goto out;
  }
  struct aln_record_cols c;
  cols_from_stmt(&c, s, 1);
  c.id = sqlite3_column_int64(s, 0);
  c.wrapped_key = sqlite3_column_blob(s, 8);
  c.wrapped_key_len = (size_t)sqlite3_column_bytes(s, 8);
  c.ciphertext = sqlite3_column_blob(s, 9);
  c.ciphertext_len = (size_t)sqlite3_column_bytes(s, 9);
  ALN_GUARD_GOTO(st, meta_from_cols(&meta, &c), out);
  /* The row is found by name, so a name edited in the file is caught by the AAD. */
  ALN_ENSURE_GOTO(st, strcmp(meta.name, name) == 0, ALN_ERR_TAMPERED, out);
  ALN_ENSURE_GOTO(st, !meta.revoked, ALN_ERR_REVOKED, out);
  /* Checked before decrypting: an expired secret is never brought into memory. */
  ALN_ENSURE_GOTO(st, meta.expires_at == 0 || now < meta.expires_at, ALN_ERR_EXPIRED, out);
  ALN_GUARD_GOTO(st, open_cols(esc, out_secret, &meta, &c), out);

  if (out_meta != NULL) {
    *out_meta = meta;
    memset(&meta, 0, sizeof(meta));
  }
  st = ALN_OK;
out:
  stmt_done(s);
  aln_cred_meta_cleanup(&meta);
  return st;
}

static aln_status unseal_locked(struct aln_escrow *esc, struct aln_secret *out_secret, struct aln_cred_meta *out_meta,
                                const char *name, int64_t now) {
  int miss = 0;
  /* No reload before each read (it would cost about a third of the get rate): a
   * row outside the authenticated set is caught by the miss below, and an edit of
   * a row inside it by the record's own associated data. The next write, or the
   * next start, authenticates the whole state again. */
  ALN_ENSURE(!esc->tampered, ALN_ERR_STATE_TAMPERED);
  ALN_GUARD(hook_catch_up(esc));
  aln_status st = unseal_once(esc, out_secret, out_meta, name, now, &miss);
  if (!miss)
    return st;
  ALN_GUARD(read_sync(esc));
  miss = 0;
  st = unseal_once(esc, out_secret, out_meta, name, now, &miss);
  if (miss) {
    esc->tampered = 1;
    fprintf(stderr, "aileron-enclave: ERROR: a credential row of the escrow database was made live outside this "
                    "enclave; refusing every operation until restart\n");
  }
  return st;
}

aln_status aln_escrow_unseal(struct aln_escrow *esc, struct aln_secret *out_secret, struct aln_cred_meta *out_meta,
                             const char *name, int64_t now) {
  if (out_meta != NULL)
    memset(out_meta, 0, sizeof(*out_meta));
  ALN_ENSURE(esc != NULL && out_secret != NULL, ALN_ERR_USAGE);
  memset(out_secret, 0, sizeof(*out_secret));
  ALN_ENSURE(aln_cred_name_valid_str(name), ALN_ERR_BAD_NAME);
  pthread_mutex_lock(&esc->mu);
  aln_status st = unseal_locked(esc, out_secret, out_meta, name, now);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

/* An audit row as hashed: the strings are actor, host_key, action, credential,
 * method, destination, decision, in that order. */
struct audit_row {
  uint64_t seq;
  int64_t time;
  const uint8_t *str[ESC_AUDIT_NUM_STR];
  size_t str_len[ESC_AUDIT_NUM_STR];
  uint32_t result;
  int64_t http_status;
};

static size_t audit_field_max(int i) {
  return i == 5 ? ESC_AUDIT_DEST_MAX : ESC_AUDIT_FIELD_MAX;
}

/* audit_hash computes SHA-256(prev || canonical encoding of |r|). ALN_ERR_TOO_LARGE
 * if a field exceeds its bound (only an edited row can). */
static aln_status audit_hash(uint8_t out[ESC_HASH_LEN], const uint8_t prev[ESC_HASH_LEN], const struct audit_row *r) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_cbb cbb = {0};
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  size_t max = 8 + 8 + 4 + 8 + ESC_AUDIT_NUM_STR * 4;
  for (int i = 0; i < ESC_AUDIT_NUM_STR; i++)
    max += audit_field_max(i);

  ALN_GUARD_GOTO(st, aln_cbb_init(&cbb, 256, max), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u64(&cbb, r->seq), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u64(&cbb, (uint64_t)r->time), out);
  for (int i = 0; i < ESC_AUDIT_NUM_STR; i++) {
    ALN_ENSURE_GOTO(st, r->str_len[i] <= audit_field_max(i), ALN_ERR_TOO_LARGE, out);
    ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, r->str[i], r->str_len[i]), out);
  }
  ALN_GUARD_GOTO(st, aln_cbb_add_u32(&cbb, r->result), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u64(&cbb, (uint64_t)r->http_status), out);
  ALN_GUARD_GOTO(st, aln_cbb_finish(&cbb, &enc, &enc_len), out);

  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned int md_len = 0;
  int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(md, prev, ESC_HASH_LEN) == 1 && EVP_DigestUpdate(md, enc, enc_len) == 1 &&
           EVP_DigestFinal_ex(md, out, &md_len) == 1 && md_len == ESC_HASH_LEN;
  EVP_MD_CTX_free(md);
  st = ok ? ALN_OK : ALN_ERR_CRYPTO;
out:
  aln_cbb_cleanup(&cbb);
  aln_cbb_buf_free(enc, enc_len);
  return st;
}

/* audit_insert appends |ev| inside the caller's open write transaction. */
static aln_status audit_insert(struct aln_escrow *esc, const struct aln_audit_event *ev) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = NULL;
  uint8_t prev[ESC_HASH_LEN] = {0}, hash[ESC_HASH_LEN];
  const char *strs[ESC_AUDIT_NUM_STR] = {ev->actor,  ev->host_key,    ev->action,  ev->credential,
                                         ev->method, ev->destination, ev->decision};
  struct audit_row r = {.time = ev->time, .result = (uint32_t)ev->result, .http_status = (int64_t)ev->http_status};

  for (int i = 0; i < ESC_AUDIT_NUM_STR; i++) {
    r.str[i] = (const uint8_t *)strs[i];
    r.str_len[i] = strs[i] != NULL ? strnlen(strs[i], audit_field_max(i)) : 0;
  }

  /* The chain continues from the authenticated head, not from whatever row is last
   * in the file. */
  struct aln_state_summary *sum = &esc->txn.state.sum;
  ALN_ENSURE(sum->audit_seq < INT64_MAX, ALN_ERR_STORE);
  memcpy(prev, sum->audit_head, ESC_HASH_LEN);
  r.seq = sum->audit_seq + 1;

  ALN_GUARD_GOTO(st, audit_hash(hash, prev, &r), out);
  s = esc->stmt[ESC_AUDIT_INSERT];
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 1, (sqlite3_int64)r.seq)), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 2, r.time)), out);
  for (int i = 0; i < ESC_AUDIT_NUM_STR; i++)
    ALN_GUARD_GOTO(st, bind_text(s, 3 + i, strs[i], audit_field_max(i)), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 10, r.result)), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 11, r.http_status)), out);
  ALN_GUARD_GOTO(st, bind_blob(s, 12, prev, ESC_HASH_LEN), out);
  ALN_GUARD_GOTO(st, bind_blob(s, 13, hash, ESC_HASH_LEN), out);
  ALN_GUARD_GOTO(st, step_done(s), out);
  sum->audit_seq = r.seq;
  memcpy(sum->audit_head, hash, ESC_HASH_LEN);
  st = ALN_OK;
out:
  stmt_done(s);
  return st;
}

/* still_live checks, inside the caller's write transaction, that |name| is live at
 * |version|: the row an unseal opened has not been revoked or replaced since. */
static aln_status still_live(struct aln_escrow *esc, const char *name, uint32_t version) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = esc->stmt[ESC_LIVE_ID];
  ALN_GUARD_GOTO(st, bind_text(s, 1, name, ALN_NAME_MAX), out);
  int rc = sqlite3_step(s);
  ALN_GUARD_GOTO(st, db_status(rc), out);
  if (rc == SQLITE_ROW && sqlite3_column_int64(s, 1) == (sqlite3_int64)version &&
      aln_idset_contains(&esc->live, (uint64_t)sqlite3_column_int64(s, 0))) {
    st = ALN_OK;
    goto out;
  }
  int found = rc == SQLITE_ROW;
  stmt_done(s);
  s = NULL;
  /* Replaced by a newer version: the one in hand was retired, as if revoked. */
  st = found ? ALN_ERR_REVOKED : absent_status(esc, name);
out:
  stmt_done(s);
  return st;
}

/* audit_append_locked appends |ev|; with |live_name| only if that credential is
 * still live at |live_version|, in the same transaction. */
static aln_status audit_append_locked(struct aln_escrow *esc, const struct aln_audit_event *ev, const char *live_name,
                                      uint32_t live_version) {
  ALN_GUARD(write_begin(esc));
  aln_status st = live_name != NULL ? still_live(esc, live_name, live_version) : ALN_OK;
  if (st == ALN_OK)
    st = audit_insert(esc, ev);
  return write_end(esc, st, ESC_WRITE_AUDIT);
}

aln_status aln_escrow_audit_append(struct aln_escrow *esc, const struct aln_audit_event *ev) {
  ALN_ENSURE(esc != NULL && ev != NULL, ALN_ERR_USAGE);
  pthread_mutex_lock(&esc->mu);
  aln_status st = audit_append_locked(esc, ev, NULL, 0);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

aln_status aln_escrow_audit_use(struct aln_escrow *esc, const struct aln_audit_event *ev, const char *name,
                                uint32_t version) {
  ALN_ENSURE(esc != NULL && ev != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(aln_cred_name_valid_str(name), ALN_ERR_BAD_NAME);
  pthread_mutex_lock(&esc->mu);
  aln_status st = audit_append_locked(esc, ev, name, version);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

static aln_status audit_verify_locked(struct aln_escrow *esc, size_t *num_out) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = NULL;
  uint8_t prev[ESC_HASH_LEN] = {0}, hash[ESC_HASH_LEN];
  size_t num = 0;
  int rc;

  /* One read transaction: the chain is checked against a single snapshot. */
  ALN_GUARD(db_run(esc, ESC_BEGIN_READ));
  s = esc->stmt[ESC_AUDIT_ALL];
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct audit_row r = {0};
    sqlite3_int64 seq = sqlite3_column_int64(s, 0);
    /* Sequence numbers are dense from 1, so a removed row is caught even where the
     * hashes alone would not say which row went missing. */
    ALN_ENSURE_GOTO(st, seq >= 1 && (uint64_t)seq == (uint64_t)num + 1, ALN_ERR_TAMPERED, out);
    r.seq = (uint64_t)seq;
    r.time = sqlite3_column_int64(s, 1);
    for (int i = 0; i < ESC_AUDIT_NUM_STR; i++) {
      r.str[i] = sqlite3_column_text(s, 2 + i);
      r.str_len[i] = (size_t)sqlite3_column_bytes(s, 2 + i);
    }
    sqlite3_int64 result = sqlite3_column_int64(s, 9);
    ALN_ENSURE_GOTO(st, result >= 0 && result <= UINT32_MAX, ALN_ERR_TAMPERED, out);
    r.result = (uint32_t)result;
    r.http_status = sqlite3_column_int64(s, 10);

    const void *row_prev = sqlite3_column_blob(s, 11);
    ALN_ENSURE_GOTO(st, row_prev != NULL && sqlite3_column_bytes(s, 11) == ESC_HASH_LEN, ALN_ERR_TAMPERED, out);
    ALN_ENSURE_GOTO(st, CRYPTO_memcmp(row_prev, prev, ESC_HASH_LEN) == 0, ALN_ERR_TAMPERED, out);
    st = audit_hash(hash, prev, &r);
    if (st == ALN_ERR_TOO_LARGE) /* an oversized field was never written by us */
      st = ALN_ERR_TAMPERED;
    if (st != ALN_OK)
      goto out;
    const void *row_hash = sqlite3_column_blob(s, 12);
    ALN_ENSURE_GOTO(st, row_hash != NULL && sqlite3_column_bytes(s, 12) == ESC_HASH_LEN, ALN_ERR_TAMPERED, out);
    ALN_ENSURE_GOTO(st, CRYPTO_memcmp(row_hash, hash, ESC_HASH_LEN) == 0, ALN_ERR_TAMPERED, out);
    memcpy(prev, hash, ESC_HASH_LEN);
    num++;
  }
  ALN_GUARD_GOTO(st, db_status(rc), out);
  *num_out = num;
  st = ALN_OK;
out:
  stmt_done(s);
  /* Nothing was written: end the read transaction whatever happened. */
  aln_status end = db_end(esc, ALN_OK);
  return st != ALN_OK ? st : end;
}

aln_status aln_escrow_audit_verify_chain(struct aln_escrow *esc, size_t *num_out) {
  ALN_ENSURE(esc != NULL && num_out != NULL, ALN_ERR_USAGE);
  *num_out = 0;
  pthread_mutex_lock(&esc->mu);
  aln_status st = audit_verify_locked(esc, num_out);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

static aln_status host_enroll_locked(struct aln_escrow *esc, const uint8_t spki_hash[32], const char *label) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = NULL;

  ALN_GUARD(write_begin(esc));
  /* Enrolling again only relabels: the host is already in the set. */
  if (!hosts_find(&esc->hosts, spki_hash, NULL)) {
    ALN_GUARD_GOTO(st, aln_state_toggle_host(&esc->keys, esc->txn.state.digest, spki_hash), out);
    memcpy(esc->txn.host, spki_hash, 32);
    esc->txn.host_op = 1;
  }
  s = esc->stmt[ESC_HOST_ENROLL];
  ALN_GUARD_GOTO(st, bind_blob(s, 1, spki_hash, 32), out);
  ALN_GUARD_GOTO(st, bind_text(s, 2, label, ESC_LABEL_MAX), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL))), out);
  ALN_GUARD_GOTO(st, step_done(s), out);
  st = ALN_OK;
out:
  stmt_done(s);
  return write_end(esc, st, ESC_WRITE_CUSTODY);
}

aln_status aln_escrow_host_enroll(struct aln_escrow *esc, const uint8_t spki_hash[32], const char *label) {
  ALN_ENSURE(esc != NULL && spki_hash != NULL, ALN_ERR_USAGE);
  pthread_mutex_lock(&esc->mu);
  aln_status st = host_enroll_locked(esc, spki_hash, label);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

static aln_status host_remove_locked(struct aln_escrow *esc, const uint8_t spki_hash[32]) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = NULL;

  ALN_GUARD(write_begin(esc));
  ALN_ENSURE_GOTO(st, hosts_find(&esc->hosts, spki_hash, NULL), ALN_ERR_NOT_FOUND, out);
  ALN_GUARD_GOTO(st, aln_state_toggle_host(&esc->keys, esc->txn.state.digest, spki_hash), out);
  memcpy(esc->txn.host, spki_hash, 32);
  esc->txn.host_op = -1;
  s = esc->stmt[ESC_HOST_REMOVE];
  ALN_GUARD_GOTO(st, bind_blob(s, 1, spki_hash, 32), out);
  ALN_GUARD_GOTO(st, step_done(s), out);
  /* In the authenticated set but not in the file: the row was deleted behind us. */
  ALN_ENSURE_GOTO(st, sqlite3_changes(esc->db) == 1, ALN_ERR_STATE_TAMPERED, out);
  st = ALN_OK;
out:
  stmt_done(s);
  return write_end(esc, st, ESC_WRITE_CUSTODY);
}

aln_status aln_escrow_host_remove(struct aln_escrow *esc, const uint8_t spki_hash[32]) {
  ALN_ENSURE(esc != NULL && spki_hash != NULL, ALN_ERR_USAGE);
  pthread_mutex_lock(&esc->mu);
  aln_status st = host_remove_locked(esc, spki_hash);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

/* host_is_enrolled_locked answers from the authenticated set, first catching up
 * with any enroll or remove another process (the operator's CLI) committed: a
 * removed host must lose access at its next connection, not at the next restart. */
static aln_status host_is_enrolled_locked(struct aln_escrow *esc, int *out, const uint8_t spki_hash[32]) {
  ALN_GUARD(hook_catch_up(esc));
  ALN_GUARD(read_sync(esc));
  *out = hosts_find(&esc->hosts, spki_hash, NULL);
  return ALN_OK;
}

static aln_status host_list_locked(struct aln_escrow *esc, struct aln_host_entry **out, size_t *num_out) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = NULL;
  struct aln_host_entry *list = NULL;
  size_t num = 0, cap = 0;
  int rc;

  s = esc->stmt[ESC_HOST_LIST];
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (num == cap) {
      cap = cap ? cap * 2 : 8;
      struct aln_host_entry *n = realloc(list, cap * sizeof(*list));
      ALN_ENSURE_GOTO(st, n != NULL, ALN_ERR_NOMEM, out);
      list = n;
    }
    struct aln_host_entry *e = &list[num];
    memset(e, 0, sizeof(*e));
    ALN_ENSURE_GOTO(st, sqlite3_column_bytes(s, 0) == 32, ALN_ERR_STORE, out);
    memcpy(e->spki_hash, sqlite3_column_blob(s, 0), 32);
    const unsigned char *label = sqlite3_column_text(s, 1);
    if (label != NULL)
      snprintf(e->label, sizeof(e->label), "%s", (const char *)label);
    e->enrolled_at = sqlite3_column_int64(s, 2);
    num++;
  }
  ALN_GUARD_GOTO(st, db_status(rc), out);
  *out = list;
  *num_out = num;
  list = NULL;
  st = ALN_OK;
out:
  free(list);
  stmt_done(s);
  return st;
}

aln_status aln_escrow_host_list(struct aln_escrow *esc, struct aln_host_entry **out, size_t *num_out) {
  ALN_ENSURE(esc != NULL && out != NULL && num_out != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *num_out = 0;
  pthread_mutex_lock(&esc->mu);
  aln_status st = host_list_locked(esc, out, num_out);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

aln_status aln_escrow_host_is_enrolled(struct aln_escrow *esc, int *out, const uint8_t spki_hash[32]) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  *out = 0;
  ALN_ENSURE(esc != NULL && spki_hash != NULL, ALN_ERR_USAGE);
  pthread_mutex_lock(&esc->mu);
  aln_status st = host_is_enrolled_locked(esc, out, spki_hash);
  pthread_mutex_unlock(&esc->mu);
  return st;
}

aln_status aln_escrow_counts(struct aln_escrow *esc, struct aln_escrow_counts *out) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(esc != NULL, ALN_ERR_USAGE);
  pthread_mutex_lock(&esc->mu);
  /* The authenticated counts, brought up to date with the file first. */
  aln_status st = read_sync(esc);
  if (st == ALN_OK) {
    out->epoch = esc->state.sum.epoch;
    out->generation = esc->state.sum.generation;
  }
  pthread_mutex_unlock(&esc->mu);
  return st;
}

void aln_escrow_set_commit_hook(struct aln_escrow *esc, aln_escrow_commit_hook fn, void *ctx,
                                void (*ctx_free)(void *)) {
  if (esc == NULL)
    return;
  pthread_mutex_lock(&esc->mu);
  if (esc->hook_ctx_free != NULL)
    esc->hook_ctx_free(esc->hook_ctx);
  esc->hook = fn;
  esc->hook_ctx = ctx;
  esc->hook_ctx_free = ctx_free;
  pthread_mutex_unlock(&esc->mu);
}

/* rewrap_one moves the data key of live row |id| from the escrow's KEK to |new_kek|:
 * the key is unwrapped into locked memory and wrapped again with the same
 * associated data; the ciphertext is untouched. */
static aln_status rewrap_one(struct aln_escrow *esc, const struct aln_secret *new_kek, uint64_t id) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3_stmt *s = esc->stmt[ESC_REWRAP_ONE];
  struct aln_cred_meta meta = {0};
  uint8_t wk[ESC_WRAPPED_LEN];

  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 1, (sqlite3_int64)id)), out);
  int rc = sqlite3_step(s);
  ALN_GUARD_GOTO(st, db_status(rc), out);
  ALN_ENSURE_GOTO(st, rc == SQLITE_ROW, ALN_ERR_STATE_TAMPERED, out); /* in the set, gone from the file */
  ALN_GUARD_GOTO(st, read_meta(&meta, s, 0), out);
  struct rec_ad ad = {.id = (int64_t)id,
                      .version = meta.version,
                      .kind = meta.kind,
                      .expires_at = meta.expires_at,
                      .name = meta.name,
                      .binding = meta.binding,
                      .binding_len = meta.binding_len};
  const uint8_t *old_wk = sqlite3_column_blob(s, 7);
  ALN_ENSURE_GOTO(st, old_wk != NULL && sqlite3_column_bytes(s, 7) == ESC_WRAPPED_LEN, ALN_ERR_TAMPERED, out);
  ALN_GUARD_GOTO(st, gcm_open(esc, esc->dek.p, esc->kek.p, old_wk, ESC_WRAPPED_LEN, dek_label, &ad), out);
  ALN_GUARD_GOTO(st, gcm_seal(esc, wk, new_kek->p, esc->dek.p, ESC_KEY_LEN, dek_label, &ad), out);
  stmt_done(s);
  s = esc->stmt[ESC_REWRAP];
  ALN_GUARD_GOTO(st, bind_blob(s, 1, wk, ESC_WRAPPED_LEN), out);
  ALN_GUARD_GOTO(st, db_status(sqlite3_bind_int64(s, 2, (sqlite3_int64)id)), out);
  ALN_GUARD_GOTO(st, step_done(s), out);
  st = ALN_OK;
out:
  stmt_done(s);
  gcm_done(esc);
  OPENSSL_cleanse(esc->dek.p, ESC_KEY_LEN);
  aln_cred_meta_cleanup(&meta);
  return st;
}

static aln_status rotate_locked(struct aln_escrow *esc, const struct aln_secret *new_kek,
                                const struct aln_audit_event *audit, uint64_t *num_out) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_state_keys nk = {0};
  struct aln_secret kek = {0};
  uint64_t num = 0;

  ALN_GUARD(aln_state_keys_derive(&nk, new_kek));
  ALN_GUARD_GOTO(st, aln_secret_from(&kek, new_kek->p, new_kek->len), out);
  ALN_GUARD_GOTO(st, write_begin(esc), out);
  /* The same KEK again would leave nothing to tell the old state from the new. */
  ALN_ENSURE_GOTO(st, CRYPTO_memcmp(nk.kek_id, esc->keys.kek_id, ALN_KEK_ID_LEN) != 0, ALN_ERR_USAGE, end);
  for (size_t i = 0; i < esc->live.cap; i++) {
    if (esc->live.slot[i] == 0)
      continue;
    ALN_GUARD_GOTO(st, rewrap_one(esc, new_kek, esc->live.slot[i]), end);
    num++;
  }
  if (audit != NULL)
    ALN_GUARD_GOTO(st, audit_insert(esc, audit), end);
  /* The set digest is a MAC under the state key, which changes with the KEK. */
  ALN_GUARD_GOTO(st, scan_state(esc, &nk, &esc->txn.state, NULL, NULL), end);
  st = ALN_OK;
end:
  st = write_commit(esc, st, ESC_WRITE_CUSTODY, &nk);
  if (st == ALN_OK) {
    aln_secret_free(&esc->kek);
    esc->kek = kek;
    memset(&kek, 0, sizeof(kek));
    aln_state_keys_cleanup(&esc->keys);
    esc->keys = nk;
    memset(&nk, 0, sizeof(nk));
    *num_out = num;
  }
out:
  aln_secret_free(&kek);
  aln_state_keys_cleanup(&nk);
  return st;
}

aln_status aln_escrow_rotate_kek(struct aln_escrow *esc, uint64_t *num_out, const struct aln_secret *new_kek,
                                 const struct aln_audit_event *audit) {
  ALN_ENSURE(num_out != NULL, ALN_ERR_USAGE);
  *num_out = 0;
  ALN_ENSURE(esc != NULL && new_kek != NULL && new_kek->p != NULL && new_kek->len == ESC_KEY_LEN, ALN_ERR_USAGE);
  pthread_mutex_lock(&esc->mu);
  aln_status st = rotate_locked(esc, new_kek, audit, num_out);
  if (st == ALN_OK)
    wipe_checkpoint(esc->db); /* the frames still holding keys wrapped by the old KEK */
  pthread_mutex_unlock(&esc->mu);
  return st;
}

aln_status aln_escrow_record_open(struct aln_escrow *esc, struct aln_secret *out_secret, struct aln_cred_meta *out_meta,
                                  const struct aln_record_cols *cols) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_cred_meta meta = {0};

  ALN_ENSURE(out_secret != NULL && out_meta != NULL, ALN_ERR_USAGE);
  memset(out_secret, 0, sizeof(*out_secret));
  memset(out_meta, 0, sizeof(*out_meta));
  ALN_ENSURE(esc != NULL && cols != NULL, ALN_ERR_USAGE);
  pthread_mutex_lock(&esc->mu);
  ALN_GUARD_GOTO(st, meta_from_cols(&meta, cols), out);
  ALN_GUARD_GOTO(st, open_cols(esc, out_secret, &meta, cols), out);
  *out_meta = meta;
  memset(&meta, 0, sizeof(meta));
  st = ALN_OK;
out:
  pthread_mutex_unlock(&esc->mu);
  aln_cred_meta_cleanup(&meta);
  return st;
}
