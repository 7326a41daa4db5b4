/* Benchmark: the escrow against plain SQLite, in one run on one machine and file
 * system. Not a test: it asserts nothing beyond the operations succeeding.
 *
 *   puts    aln_escrow_put of N distinct names (32-byte secret, ~150-byte serialized
 *           Binding) vs. one INSERT per transaction of a row of the same shape (name,
 *           binding, 60- and 88-byte blobs) into a plain WAL/synchronous=FULL table
 *           through a reused prepared statement. Both stores end with N rows. The two
 *           take turns in blocks of puts, so a drift in the disk's fsync rate (common
 *           on shared machines) falls on both alike; the first block is warm-up.
 *   gets    aln_escrow_unseal of random stored names vs. point reads of the same rows
 *           by name through a reused prepared statement, each for --seconds.
 *   memory  VmRSS/VmHWM of the process that ran the escrow half. That half runs in a
 *           child forked before anything else is allocated, so the baseline's memory
 *           is not in its figures; the baseline process's own peak is shown beside.
 *           The escrow's gets run first, then the baseline's, never both at once.
 *
 * Usage: escrow_bench [--full] [--n N] [--seconds S] [--dir DIR]
 *   --full  N = 100000 (default N = 5000); --dir  parent of the scratch directory
 *   (default /tmp), which must be a real file system for fsync to mean anything. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aileron/v1/enclave.pb-c.h"
#include "enclave/escrow.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define SECRET_LEN 32
#define WRAPPED_LEN 60 /* stand-ins for the escrow's wrapped key and ciphertext */
#define CT_LEN 88
#define PUT_BLOCK_MAX 250 /* puts per turn */
#define GET_WARMUP 2000
#define CLOCK_EVERY 64 /* timed loops read the clock once per this many operations */

struct opts {
  size_t n;
  double seconds;
  const char *parent_dir;
};

/* The two halves alternate over a pair of pipes: the leader (baseline, parent) hands
 * the turn to the follower (escrow, child) and waits for it back before each of its
 * own blocks. A closed pipe means the other side failed. */
struct turns {
  int rd, wr;
  int leader;
};

static aln_status turn_take(const struct turns *t) {
  char c = 0;
  if (t->leader)
    ALN_ENSURE(write(t->wr, &c, 1) == 1, ALN_ERR_IO);
  ALN_ENSURE(read(t->rd, &c, 1) == 1, ALN_ERR_IO);
  return ALN_OK;
}

static aln_status turn_give(const struct turns *t) {
  char c = 0;
  if (!t->leader)
    ALN_ENSURE(write(t->wr, &c, 1) == 1, ALN_ERR_IO);
  return ALN_OK;
}

static size_t put_block(const struct opts *o) {
  return o->n / 10 < PUT_BLOCK_MAX ? o->n / 10 : PUT_BLOCK_MAX;
}

/* What each half measures; the escrow half sends it back over a pipe. */
struct half {
  double puts_per_s;
  double gets_per_s;
  uint64_t gets;
  uint64_t checksum; /* of everything read back, so no read can be optimized away */
  long kb_start, kb_rss_after_puts, kb_hwm_after_gets, kb_hwm_after_list;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void cred_name(char out[32], size_t i) {
  snprintf(out, 32, "bench-cred-%07zu", i);
}

/* cred_secret derives the secret of credential |i|, so reads can be checked. */
static void cred_secret(uint8_t out[SECRET_LEN], size_t i) {
  uint64_t x = (uint64_t)i;
  for (size_t k = 0; k < SECRET_LEN; k += 8) {
    uint64_t v = splitmix64(&x);
    memcpy(out + k, &v, 8);
  }
}

/* proc_kb returns the "|key|: <n> kB" field of /proc/self/status, or -1. */
static long proc_kb(const char *key) {
  char line[256];
  long kb = -1;
  size_t key_len = strlen(key);
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, key, key_len) == 0 && line[key_len] == ':') {
      kb = strtol(line + key_len + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

/* make_binding serializes a realistic Binding: a named header and three prefixes. */
static aln_status make_binding(uint8_t **out, size_t *out_len) {
  static char *prefixes[] = {"https://api.github.com/repos/example-org/",
                             "https://uploads.github.com/repos/example-org/",
                             "https://api.github.com/orgs/example-org/"};
  Aileron__V1__Binding b = AILERON__V1__BINDING__INIT;
  b.injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER;
  b.header_name = "Authorization";
  b.n_allowed_prefixes = sizeof(prefixes) / sizeof(prefixes[0]);
  b.allowed_prefixes = prefixes;
  size_t len = aileron__v1__binding__get_packed_size(&b);
  *out = malloc(len);
  ALN_ENSURE(*out != NULL, ALN_ERR_NOMEM);
  *out_len = aileron__v1__binding__pack(&b, *out);
  return ALN_OK;
}

/* --- escrow half ------------------------------------------------------------ */

static aln_status escrow_run(struct half *r, const struct turns *t, const struct opts *o, const char *dir,
                             const uint8_t *binding, size_t binding_len) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_escrow *esc = NULL;
  struct aln_secret kek = {0};
  struct aln_cred_meta *list = NULL;
  size_t list_num = 0;
  char path[PATH_MAX], name[32];
  uint8_t secret[SECRET_LEN];
  size_t block = put_block(o);
  double t0 = 0, timed = 0;

  r->kb_start = proc_kb("VmRSS");
  ALN_ENSURE_GOTO(st, snprintf(path, sizeof(path), "%s/escrow.db", dir) < (int)sizeof(path), ALN_ERR_USAGE, out);
  ALN_GUARD_GOTO(st, aln_secret_new(&kek, 32), out);
  ALN_ENSURE_GOTO(st, RAND_priv_bytes(kek.p, 32) == 1, ALN_ERR_CRYPTO, out);
  ALN_GUARD_GOTO(st, aln_escrow_open(&esc, path, &kek, 0), out);

  for (size_t b = 0; b < o->n; b += block) {
    ALN_GUARD_GOTO(st, turn_take(t), out);
    t0 = now_s();
    for (size_t i = b; i < o->n && i < b + block; i++) {
      struct aln_cred_meta meta;
      cred_name(name, i);
      cred_secret(secret, i);
      ALN_GUARD_GOTO(st,
                     aln_escrow_put(esc, &meta,
                                    &(struct aln_cred_input){.name = name,
                                                             .kind = ALN_CRED_KIND_SECRET,
                                                             .secret = secret,
                                                             .secret_len = SECRET_LEN,
                                                             .binding = binding,
                                                             .binding_len = binding_len,
                                                             .expires_at = 0,
                                                             .replace = 0},
                                    NULL),
                     out);
      aln_cred_meta_cleanup(&meta);
    }
    if (b > 0)
      timed += now_s() - t0;
    ALN_GUARD_GOTO(st, turn_give(t), out);
  }
  r->puts_per_s = (double)(o->n - block) / timed;
  ALN_GUARD_GOTO(st, turn_take(t), out); /* the leader's go for the gets */
  r->kb_rss_after_puts = proc_kb("VmRSS");

  uint64_t rng = 42;
  double end = 0;
  for (uint64_t k = 0;; k++) {
    if (k == GET_WARMUP) {
      t0 = now_s();
      end = t0 + o->seconds;
    }
    if (k > GET_WARMUP && k % CLOCK_EVERY == 0 && now_s() >= end) {
      r->gets = k - GET_WARMUP;
      r->gets_per_s = (double)r->gets / (now_s() - t0);
      break;
    }
    size_t i = (size_t)(splitmix64(&rng) % o->n);
    struct aln_secret got = {0};
    struct aln_cred_meta meta;
    cred_name(name, i);
    cred_secret(secret, i);
    ALN_GUARD_GOTO(st, aln_escrow_unseal(esc, &got, &meta, name, (int64_t)time(NULL)), out);
    int ok = got.len == SECRET_LEN && aln_ct_equal(got.p, got.len, secret, SECRET_LEN) &&
             meta.binding_len == binding_len && memcmp(meta.binding, binding, binding_len) == 0;
    r->checksum += got.p[0] + meta.binding_len;
    aln_secret_free(&got);
    aln_cred_meta_cleanup(&meta);
    ALN_ENSURE_GOTO(st, ok, ALN_ERR_TAMPERED, out);
  }
  r->kb_hwm_after_gets = proc_kb("VmHWM");

  /* The enclave also answers "list", a page at a time: its peak while listing all N
   * credentials is worth knowing. */
  size_t listed = 0;
  char after[ALN_NAME_MAX + 1] = "";
  for (int more = 1; more;) {
    ALN_GUARD_GOTO(st, aln_escrow_list(esc, after, ALN_LIST_PAGE_MAX, &list, &list_num, &more), out);
    ALN_ENSURE_GOTO(st, list_num > 0, ALN_ERR_STORE, out);
    listed += list_num;
    memcpy(after, list[list_num - 1].name, sizeof(after));
    aln_escrow_list_free(list, list_num);
    list = NULL;
    list_num = 0;
  }
  ALN_ENSURE_GOTO(st, listed == o->n, ALN_ERR_STORE, out);
  r->kb_hwm_after_list = proc_kb("VmHWM");
  st = ALN_OK;
out:
  aln_escrow_list_free(list, list_num);
  aln_escrow_free(esc);
  aln_secret_free(&kek);
  return st;
}

/* escrow_child runs the escrow half in a process forked while this one is still
 * small, and sends its results back; on failure it says why and exits, which the
 * leader sees as a closed pipe. */
static void escrow_child(const struct turns *t, const struct opts *o, const char *dir, const uint8_t *binding,
                         size_t binding_len) {
  struct half r = {0};
  aln_status st = escrow_run(&r, t, o, dir, binding, binding_len);
  if (st != ALN_OK) {
    fprintf(stderr, "escrow_bench: escrow half failed: %s\n", aln_strerror(st));
    _exit(1);
  }
  _exit(write(t->wr, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
}

/* --- plain SQLite half ------------------------------------------------------ */

static aln_status db_ok(int rc) {
  return rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE ? ALN_OK : ALN_ERR_STORE;
}

/* sqlite_half runs the baseline as the leader; between its puts and its gets it
 * lets the escrow run its gets and collects the escrow's results into |esc|. */
static aln_status sqlite_half(struct half *r, struct half *esc, const struct turns *t, const struct opts *o,
                              const char *dir, const uint8_t *binding, size_t binding_len) {
  aln_status st = ALN_ERR_INTERNAL;
  sqlite3 *db = NULL;
  sqlite3_stmt *ins = NULL, *sel = NULL;
  char path[PATH_MAX], name[32];
  uint8_t wk[WRAPPED_LEN], ct[CT_LEN], copy[ALN_BINDING_MAX];
  size_t block = put_block(o);
  double t0 = 0, timed = 0;

  ALN_ENSURE_GOTO(st, snprintf(path, sizeof(path), "%s/plain.db", dir) < (int)sizeof(path), ALN_ERR_USAGE, out);
  ALN_GUARD_GOTO(st, db_ok(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)), out);
  ALN_GUARD_GOTO(st, db_ok(sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL", NULL, NULL, NULL)),
                 out);
  ALN_GUARD_GOTO(st,
                 db_ok(sqlite3_exec(db,
                                    "CREATE TABLE creds(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                                    " binding BLOB NOT NULL, wrapped_key BLOB, ciphertext BLOB)",
                                    NULL, NULL, NULL)),
                 out);
  ALN_GUARD_GOTO(
      st,
      db_ok(sqlite3_prepare_v2(db, "INSERT INTO creds(name, binding, wrapped_key, ciphertext) VALUES(?1, ?2, ?3, ?4)",
                               -1, &ins, NULL)),
      out);
  ALN_GUARD_GOTO(st,
                 db_ok(sqlite3_prepare_v2(db, "SELECT binding, wrapped_key, ciphertext FROM creds WHERE name = ?1", -1,
                                          &sel, NULL)),
                 out);

  for (size_t b = 0; b < o->n; b += block) {
    ALN_GUARD_GOTO(st, turn_take(t), out);
    t0 = now_s();
    for (size_t i = b; i < o->n && i < b + block; i++) {
      cred_name(name, i);
      cred_secret(wk, i); /* distinct bytes per row, as ciphertext would be */
      memcpy(ct, wk, SECRET_LEN);
      /* Autocommit: each INSERT is its own durable transaction. */
      ALN_GUARD_GOTO(st, db_ok(sqlite3_bind_text(ins, 1, name, -1, SQLITE_TRANSIENT)), out);
      ALN_GUARD_GOTO(st, db_ok(sqlite3_bind_blob(ins, 2, binding, (int)binding_len, SQLITE_STATIC)), out);
      ALN_GUARD_GOTO(st, db_ok(sqlite3_bind_blob(ins, 3, wk, WRAPPED_LEN, SQLITE_TRANSIENT)), out);
      ALN_GUARD_GOTO(st, db_ok(sqlite3_bind_blob(ins, 4, ct, CT_LEN, SQLITE_TRANSIENT)), out);
      ALN_ENSURE_GOTO(st, sqlite3_step(ins) == SQLITE_DONE, ALN_ERR_STORE, out);
      sqlite3_reset(ins);
    }
    if (b > 0)
      timed += now_s() - t0;
  }
  r->puts_per_s = (double)(o->n - block) / timed;
  /* The escrow's gets, then ours: never both at once. */
  char go = 0;
  ALN_ENSURE_GOTO(st, write(t->wr, &go, 1) == 1, ALN_ERR_IO, out);
  ALN_ENSURE_GOTO(st, read(t->rd, esc, sizeof(*esc)) == (ssize_t)sizeof(*esc), ALN_ERR_IO, out);
  r->kb_rss_after_puts = proc_kb("VmRSS");

  uint64_t rng = 42;
  double end = 0;
  for (uint64_t k = 0;; k++) {
    if (k == GET_WARMUP) {
      t0 = now_s();
      end = t0 + o->seconds;
    }
    if (k > GET_WARMUP && k % CLOCK_EVERY == 0 && now_s() >= end) {
      r->gets = k - GET_WARMUP;
      r->gets_per_s = (double)r->gets / (now_s() - t0);
      break;
    }
    cred_name(name, (size_t)(splitmix64(&rng) % o->n));
    ALN_GUARD_GOTO(st, db_ok(sqlite3_bind_text(sel, 1, name, -1, SQLITE_TRANSIENT)), out);
    ALN_ENSURE_GOTO(st, sqlite3_step(sel) == SQLITE_ROW, ALN_ERR_STORE, out);
    /* Copy the row out, as a server must before it resets the statement. */
    size_t off = 0;
    for (int c = 0; c < 3; c++) {
      size_t len = (size_t)sqlite3_column_bytes(sel, c);
      ALN_ENSURE_GOTO(st, off + len <= sizeof(copy), ALN_ERR_STORE, out);
      memcpy(copy + off, sqlite3_column_blob(sel, c), len);
      off += len;
    }
    ALN_ENSURE_GOTO(st, off == binding_len + WRAPPED_LEN + CT_LEN, ALN_ERR_STORE, out);
    r->checksum += copy[binding_len] + off;
    sqlite3_reset(sel);
  }
  r->kb_hwm_after_gets = proc_kb("VmHWM");
  st = ALN_OK;
out:
  sqlite3_finalize(ins);
  sqlite3_finalize(sel);
  sqlite3_close_v2(db);
  return st;
}

/* --- driver ----------------------------------------------------------------- */

static const char *fs_name(long type) {
  switch ((unsigned long)type) {
  case 0xEF53:
    return "ext2/3/4";
  case 0x58465342:
    return "xfs";
  case 0x9123683E:
    return "btrfs";
  case 0xF2F52010:
    return "f2fs";
  case 0x2FC12FC1:
    return "zfs";
  case 0x794C7630:
    return "overlayfs";
  case 0x01021994:
    return "tmpfs (fsync is free: figures are NOT durable-write figures)";
  case 0x858458F6:
    return "ramfs (fsync is free: figures are NOT durable-write figures)";
  default:
    return "unknown";
  }
}

static void remove_scratch(const char *dir) {
  static const char *files[] = {"escrow.db", "escrow.db-wal", "escrow.db-shm",
                                "plain.db",  "plain.db-wal",  "plain.db-shm"};
  char path[PATH_MAX];
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    if (snprintf(path, sizeof(path), "%s/%s", dir, files[i]) < (int)sizeof(path))
      (void)unlink(path);
  }
  (void)rmdir(dir);
}

static void row(const char *metric, double ours, double base, int decimals, double target, int higher_is_better,
                int absolute) {
  char ratio_s[32], target_s[32];
  snprintf(ratio_s, sizeof(ratio_s), "%.2f", ours / base);
  double judged = absolute ? ours : ours / base;
  int pass = higher_is_better ? judged >= target : judged <= target;
  if (absolute)
    snprintf(target_s, sizeof(target_s), "<= %.0f MB", target);
  else
    snprintf(target_s, sizeof(target_s), "ratio >= %.2f", target);
  printf("%-22s %12.*f %12.*f %7s  %-14s %s\n", metric, decimals, ours, decimals, base, ratio_s, target_s,
         pass ? "PASS" : "MISS");
}

/* run_halves forks the escrow half first, while this process is small (the child
 * inherits all of it), then runs the baseline here, alternating with it. */
static aln_status run_halves(struct half *esc, struct half *base, const struct opts *o, const char *dir,
                             const uint8_t *binding, size_t binding_len) {
  int to_child[2], to_parent[2];
  ALN_ENSURE(pipe(to_child) == 0, ALN_ERR_IO);
  if (pipe(to_parent) != 0) {
    close(to_child[0]);
    close(to_child[1]);
    return ALN_ERR_IO;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    struct turns t = {.rd = to_child[0], .wr = to_parent[1], .leader = 0};
    close(to_child[1]);
    close(to_parent[0]);
    escrow_child(&t, o, dir, binding, binding_len);
  }
  struct turns t = {.rd = to_parent[0], .wr = to_child[1], .leader = 1};
  close(to_child[0]);
  close(to_parent[1]);
  aln_status st = pid < 0 ? ALN_ERR_IO : sqlite_half(base, esc, &t, o, dir, binding, binding_len);
  /* Closing our ends stops a child still waiting for its turn. */
  close(t.rd);
  close(t.wr);
  int wst = 0;
  while (pid > 0 && waitpid(pid, &wst, 0) < 0 && errno == EINTR) {
  }
  if (st == ALN_OK && !(WIFEXITED(wst) && WEXITSTATUS(wst) == 0))
    st = ALN_ERR_INTERNAL;
  return st;
}

static int usage(void) {
  fprintf(stderr, "usage: escrow_bench [--full] [--n N] [--seconds S] [--dir DIR]\n");
  return 2;
}

int main(int argc, char **argv) {
  struct opts o = {.n = 5000, .seconds = 2.0, .parent_dir = "/tmp"};
  int n_given = 0, full = 0;
  for (int i = 1; i < argc; i++) {
    char *end = NULL;
    if (strcmp(argv[i], "--full") == 0) {
      full = 1;
    } else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
      unsigned long long v = strtoull(argv[++i], &end, 10);
      if (*end != '\0' || v < 100 || v > 100000000)
        return usage();
      o.n = (size_t)v;
      n_given = 1;
    } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      o.seconds = strtod(argv[++i], &end);
      if (*end != '\0' || !(o.seconds > 0 && o.seconds <= 3600))
        return usage();
    } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      o.parent_dir = argv[++i];
    } else {
      return usage();
    }
  }
  if (full && !n_given)
    o.n = 100000;

  char dir[PATH_MAX];
  if (snprintf(dir, sizeof(dir), "%s/aln-escrow-bench-XXXXXX", o.parent_dir) >= (int)sizeof(dir) ||
      mkdtemp(dir) == NULL) {
    fprintf(stderr, "escrow_bench: cannot create a directory under %s: %s\n", o.parent_dir, strerror(errno));
    return 1;
  }
  struct statfs sfs;
  long fs_type = statfs(dir, &sfs) == 0 ? (long)sfs.f_type : 0;

  uint8_t *binding = NULL;
  size_t binding_len = 0;
  struct half esc = {0}, base = {0};
  aln_status st = make_binding(&binding, &binding_len);
  printf("escrow_bench: N=%zu credentials, gets timed %.1f s each, SQLite %s\n", o.n, o.seconds, sqlite3_libversion());
  printf("dir %s on %s (f_type 0x%lx)\n", dir, fs_name(fs_type), (unsigned long)fs_type);
  printf("escrow: secret %d B, serialized binding %zu B; baseline row: name, binding %zu B, blobs %d B + %d B\n",
         SECRET_LEN, binding_len, binding_len, WRAPPED_LEN, CT_LEN);
  fflush(stdout);
  if (st == ALN_OK)
    st = run_halves(&esc, &base, &o, dir, binding, binding_len);
  free(binding);
  remove_scratch(dir);
  if (st != ALN_OK) {
    fprintf(stderr, "escrow_bench: failed: %s\n", aln_strerror(st));
    return 1;
  }

  printf("\n%-22s %12s %12s %7s  %-14s %s\n", "metric", "aileron", "sqlite", "ratio", "target", "result");
  row("durable puts/s", esc.puts_per_s, base.puts_per_s, 0, 0.8, 1, 0);
  row("unseal gets/s", esc.gets_per_s, base.gets_per_s, 0, 0.7, 1, 0);
  row("peak RSS MB (VmHWM)", (double)esc.kb_hwm_after_gets / 1024, (double)base.kb_hwm_after_gets / 1024, 1, 32, 0, 1);
  printf("\nescrow process: VmRSS %.1f MB at start, %.1f MB after %zu puts; VmHWM %.1f MB after gets, %.1f MB after "
         "one aln_escrow_list of all %zu\n",
         (double)esc.kb_start / 1024, (double)esc.kb_rss_after_puts / 1024, o.n, (double)esc.kb_hwm_after_gets / 1024,
         (double)esc.kb_hwm_after_list / 1024, o.n);
  printf("gets timed: aileron %" PRIu64 ", sqlite %" PRIu64 " (checksums %" PRIu64 "/%" PRIu64 ")\n", esc.gets,
         base.gets, esc.checksum, base.checksum);
  return 0;
}
