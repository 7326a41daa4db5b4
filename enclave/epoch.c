/* The epoch file: the last escrow epoch this enclave committed, kept outside the
 * data directory and authenticated with a key derived from the KEK, so it cannot be
 * forged or moved between enclaves without the KEK. It is always written after the
 * escrow commits: a crash in between leaves it one behind the database, which the
 * next start accepts and repairs; the other order would leave it ahead, which would
 * look exactly like a rollback and brick the enclave. */
#include "enclave/epoch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/cbs.h"
#include "proto/keyfile.h"

static const uint8_t epoch_magic[ALN_EPOCH_MAGIC_LEN] = {'A', 'L', 'N', 'E', 'P', 'O', 'C', '1'};
static const uint8_t epoch2_magic[ALN_EPOCH_MAGIC_LEN] = {'A', 'L', 'N', 'E', 'P', 'O', 'C', '2'};
static const char epoch_key_label[] = "aileron-epoch-key-v1";

/* epoch_mac computes HMAC-SHA256(K_epoch, msg) into |out|. The derived key lives
 * only in locked memory and is wiped on every path. */
static aln_status epoch_mac(uint8_t out[ALN_EPOCH_MAC_LEN], const struct aln_secret *kek, const uint8_t *msg,
                            size_t msg_len) {
  aln_status st = ALN_ERR_CRYPTO;
  struct aln_secret k = {0};
  unsigned int n = 0;

  ALN_ENSURE(kek != NULL && kek->p != NULL && kek->len > 0 && kek->len <= INT_MAX, ALN_ERR_USAGE);
  ALN_GUARD(aln_secret_new(&k, ALN_EPOCH_MAC_LEN));
  ALN_ENSURE_GOTO(st,
                  HMAC(EVP_sha256(), kek->p, (int)kek->len, (const uint8_t *)epoch_key_label,
                       sizeof(epoch_key_label) - 1, k.p, &n) != NULL &&
                      n == ALN_EPOCH_MAC_LEN,
                  ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, HMAC(EVP_sha256(), k.p, (int)k.len, msg, msg_len, out, &n) != NULL && n == ALN_EPOCH_MAC_LEN,
                  ALN_ERR_CRYPTO, out);
  st = ALN_OK;
out:
  aln_secret_free(&k);
  return st;
}

/* nv_index_valid says whether |v| is a TPM NV index handle (MSO 0x01). */
static int nv_index_valid(uint32_t v) {
  return (v >> 24) == 0x01;
}

/* record_valid says whether |rec| is something aln_epoch_record_encode writes. */
static int record_valid(const struct aln_epoch_record *rec) {
  if (rec->version == 1)
    return rec->generation == 0 && rec->nv_index == 0 && rec->base == 0;
  return rec->version == 2 && rec->generation <= rec->epoch && nv_index_valid(rec->nv_index);
}

static void put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

aln_status aln_epoch_record_encode(uint8_t *out, size_t out_cap, size_t *out_len, const struct aln_secret *kek,
                                   const struct aln_epoch_record *rec) {
  ALN_ENSURE(out_len != NULL, ALN_ERR_USAGE);
  *out_len = 0;
  ALN_ENSURE(out != NULL && rec != NULL && record_valid(rec), ALN_ERR_USAGE);
  size_t len = rec->version == 1 ? ALN_EPOCH_FILE_LEN : ALN_EPOCH2_FILE_LEN;
  ALN_ENSURE(out_cap >= len, ALN_ERR_TOO_LARGE);
  uint8_t *p = out;
  memcpy(p, rec->version == 1 ? epoch_magic : epoch2_magic, ALN_EPOCH_MAGIC_LEN);
  p += ALN_EPOCH_MAGIC_LEN;
  put_be(p, rec->epoch, 8);
  p += 8;
  if (rec->version == 2) {
    put_be(p, rec->generation, 8);
    put_be(p + 8, rec->nv_index, 4);
    put_be(p + 12, rec->base, 8);
    p += 20;
  }
  ALN_GUARD(epoch_mac(p, kek, out, (size_t)(p - out)));
  *out_len = len;
  return ALN_OK;
}

aln_status aln_epoch_record_decode(struct aln_epoch_record *out, const struct aln_secret *kek, const uint8_t *in,
                                   size_t in_len) {
  struct aln_cbs cbs, magic, mac;
  struct aln_epoch_record rec = {0};
  uint8_t want[ALN_EPOCH_MAC_LEN];

  ALN_ENSURE(out != NULL && (in != NULL || in_len == 0), ALN_ERR_USAGE);
  /* file = magic || u64 epoch [|| u64 generation || u32 nv_index || u64 base] ||
   * mac, and nothing after; the magic says which. */
  aln_cbs_init(&cbs, in, in_len);
  ALN_GUARD(aln_cbs_get_bytes(&cbs, &magic, ALN_EPOCH_MAGIC_LEN));
  if (memcmp(magic.p, epoch_magic, ALN_EPOCH_MAGIC_LEN) == 0)
    rec.version = 1;
  else if (memcmp(magic.p, epoch2_magic, ALN_EPOCH_MAGIC_LEN) == 0)
    rec.version = 2;
  else
    return ALN_ERR_MALFORMED;
  ALN_GUARD(aln_cbs_get_u64(&cbs, &rec.epoch));
  if (rec.version == 2) {
    ALN_GUARD(aln_cbs_get_u64(&cbs, &rec.generation));
    ALN_GUARD(aln_cbs_get_u32(&cbs, &rec.nv_index));
    ALN_GUARD(aln_cbs_get_u64(&cbs, &rec.base));
  }
  size_t body_len = (size_t)(cbs.p - in);
  ALN_GUARD(aln_cbs_get_bytes(&cbs, &mac, ALN_EPOCH_MAC_LEN));
  ALN_GUARD(aln_cbs_ensure_empty(&cbs));
  ALN_GUARD(epoch_mac(want, kek, in, body_len));
  ALN_ENSURE(CRYPTO_memcmp(want, mac.p, ALN_EPOCH_MAC_LEN) == 0, ALN_ERR_TAMPERED);
  /* Authentic but meaningless: only a bug of ours could have written it. */
  ALN_ENSURE(record_valid(&rec), ALN_ERR_MALFORMED);
  *out = rec;
  return ALN_OK;
}

aln_status aln_epoch_encode(uint8_t out[ALN_EPOCH_FILE_LEN], const struct aln_secret *kek, uint64_t epoch) {
  size_t len = 0;
  return aln_epoch_record_encode(out, ALN_EPOCH_FILE_LEN, &len, kek,
                                 &(struct aln_epoch_record){.version = 1, .epoch = epoch});
}

aln_status aln_epoch_decode(uint64_t *out, const struct aln_secret *kek, const uint8_t *in, size_t in_len) {
  struct aln_epoch_record rec;
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  /* Only the first format: an ALNEPOC2 image is a wrong magic here. */
  ALN_ENSURE(in_len < ALN_EPOCH_MAGIC_LEN || in == NULL || memcmp(in, epoch2_magic, ALN_EPOCH_MAGIC_LEN) != 0,
             ALN_ERR_MALFORMED);
  ALN_GUARD(aln_epoch_record_decode(&rec, kek, in, in_len));
  *out = rec.epoch;
  return ALN_OK;
}

aln_status aln_epoch_record_write(const char *path, const struct aln_secret *kek, const struct aln_epoch_record *rec) {
  uint8_t img[ALN_EPOCH_FILE_MAX];
  size_t len = 0;
  ALN_ENSURE(path != NULL && path[0] != '\0', ALN_ERR_USAGE);
  ALN_GUARD(aln_epoch_record_encode(img, sizeof(img), &len, kek, rec));
  return aln_keyfile_replace(path, img, len);
}

aln_status aln_epoch_write(const char *path, const struct aln_secret *kek, uint64_t epoch) {
  return aln_epoch_record_write(path, kek, &(struct aln_epoch_record){.version = 1, .epoch = epoch});
}

aln_status aln_epoch_record_read(struct aln_epoch_record *out, const char *path, const struct aln_secret *kek) {
  struct aln_secret img = {0};

  ALN_ENSURE(out != NULL && path != NULL, ALN_ERR_USAGE);
  /* One byte more than the longest valid file, so a longer one reads as trailing
   * bytes. */
  aln_status st = aln_keyfile_read(&img, path, ALN_EPOCH_FILE_MAX + 1);
  if (st == ALN_ERR_TOO_LARGE)
    return ALN_ERR_TRAILING;
  ALN_GUARD(st);
  st = aln_epoch_record_decode(out, kek, img.p, img.len);
  aln_secret_free(&img);
  return st;
}

aln_status aln_epoch_read(uint64_t *out, const char *path, const struct aln_secret *kek) {
  struct aln_epoch_record rec;
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  ALN_GUARD(aln_epoch_record_read(&rec, path, kek));
  ALN_ENSURE(rec.version == 1, ALN_ERR_MALFORMED);
  *out = rec.epoch;
  return ALN_OK;
}

aln_status aln_epoch_rekey(const char *path, const struct aln_secret *old_kek, const struct aln_secret *new_kek) {
  struct aln_epoch_record rec;
  ALN_ENSURE(path != NULL && old_kek != NULL && new_kek != NULL, ALN_ERR_USAGE);
  if (aln_epoch_record_read(&rec, path, new_kek) == ALN_OK)
    return ALN_OK;
  ALN_GUARD(aln_epoch_record_read(&rec, path, old_kek));
  return aln_epoch_record_write(path, new_kek, &rec);
}

/* The commit hook's state: owned by the escrow once installed. */
struct epoch_hook {
  char *path;
  struct aln_secret kek;
};

static void epoch_hook_free(void *ctx) {
  struct epoch_hook *h = ctx;
  if (h == NULL)
    return;
  free(h->path);
  aln_secret_free(&h->kek);
  free(h);
}

static aln_status epoch_hook_run(void *ctx, const struct aln_escrow_counts *counts) {
  struct epoch_hook *h = ctx;
  return aln_epoch_write(h->path, &h->kek, counts->epoch);
}

aln_status aln_epoch_guard(struct aln_escrow *esc, struct aln_epoch_info *info, const char *path,
                           const struct aln_secret *kek) {
  aln_status st = ALN_ERR_INTERNAL;
  struct epoch_hook *h = NULL;
  struct aln_escrow_counts counts;
  uint64_t db = 0, file = 0;
  int missing = 0;

  if (info != NULL)
    memset(info, 0, sizeof(*info));
  ALN_ENSURE(esc != NULL && path != NULL && path[0] != '\0' && kek != NULL, ALN_ERR_USAGE);
  ALN_GUARD(aln_escrow_counts(esc, &counts));
  db = counts.epoch;
  st = aln_epoch_read(&file, path, kek);
  if (st == ALN_ERR_NOT_FOUND) {
    missing = 1;
    st = ALN_OK;
  }
  if (info != NULL) {
    info->db_epoch = db;
    info->file_epoch = file;
    info->file_missing = missing;
  }
  ALN_GUARD(st);
  /* Only a database that was never written may start without the file: any write
   * would have created it. */
  ALN_ENSURE(!missing || db == 0, ALN_ERR_EPOCH_MISSING);
  ALN_ENSURE(db >= file, ALN_ERR_ROLLBACK);

  h = calloc(1, sizeof(*h));
  ALN_ENSURE(h != NULL, ALN_ERR_NOMEM);
  h->path = strdup(path);
  ALN_ENSURE_GOTO(st, h->path != NULL, ALN_ERR_NOMEM, out);
  ALN_GUARD_GOTO(st, aln_secret_from(&h->kek, kek->p, kek->len), out);
  /* Repairs a file one behind (crash between commit and file update) and creates it
   * on first start; a failure here refuses the start, unlike in the hook, because
   * nothing has been acknowledged yet. */
  if (missing || file != db)
    ALN_GUARD_GOTO(st, aln_epoch_write(path, kek, db), out);
  aln_escrow_set_commit_hook(esc, epoch_hook_run, h, epoch_hook_free);
  h = NULL;
  st = ALN_OK;
out:
  epoch_hook_free(h);
  return st;
}

/* ---- with a monotonic counter ----------------------------------------------------
 *
 * The counter tracks the custody generation, not the epoch: the epoch moves on
 * every credential use (one audit append each), and a TPM counter that is not
 * orderly (an orderly one jumps ahead after a power loss, which would look like a
 * rollback) writes NV memory on every increment, which real TPMs rate-limit
 * (TPM_RC_NV_RATE) and which wears out. Custody writes are rare operator actions.
 * So an old database is caught by the counter when it lacks a custody write (a
 * revoke, say), and by the file when it lacks only audit rows.
 *
 * Order after each commit: increment the counter, then rewrite the file. A crash
 * in between leaves the counter level with the database and the file one behind;
 * a crash before the increment leaves the counter one behind the database; both
 * are repaired at the next start. The file never records a generation the counter
 * has not reached, so a counter below the file's generation is not ours. */

void aln_epoch_counter_free(struct aln_epoch_counter *c) {
  if (c == NULL)
    return;
  if (c->ctx_free != NULL)
    c->ctx_free(c->ctx);
  free(c);
}

static void counter_done(struct aln_epoch_counter *c) {
  if (c->done != NULL)
    c->done(c->ctx);
}

/* The commit hook's state with a counter: owned by the escrow once installed. */
struct nv_hook {
  char *path;
  struct aln_secret kek;
  struct aln_epoch_counter *ctr;
  uint64_t base;
  uint64_t vouched; /* counter - base as last read: the generation the counter vouches for */
};

static void nv_hook_free(void *ctx) {
  struct nv_hook *h = ctx;
  if (h == NULL)
    return;
  free(h->path);
  aln_secret_free(&h->kek);
  aln_epoch_counter_free(h->ctr);
  free(h);
}

/* counter_lock takes an exclusive flock on "<epoch file>.lock" (created 0600 beside
 * the epoch file) into *fd_out. It serializes, across processes, each reading of
 * the counter with the increments and the file update that follow: serve and a
 * "host" command may write one escrow at the same time, and two catch-ups from one
 * reading would both increment, leaving the counter ahead of every database (which
 * a start refuses as a rollback). Release with close(). */
static aln_status counter_lock(int *fd_out, const char *path) {
  char lock[PATH_MAX];
  *fd_out = -1;
  int n = snprintf(lock, sizeof(lock), "%s.lock", path);
  ALN_ENSURE(n > 0 && (size_t)n < sizeof(lock), ALN_ERR_USAGE);
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  ALN_ENSURE(fd >= 0, ALN_ERR_IO);
  while (flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      close(fd);
      return ALN_ERR_IO;
    }
  }
  *fd_out = fd;
  return ALN_OK;
}

/* nv_catch_up increments the counter until it vouches for |target|, re-reading it
 * first (under the counter lock): the increments are counted from the value the
 * TPM reports, never from a remembered one, so neither a retry after a failure nor
 * another process's catch-up can make it overshoot. */
static aln_status nv_catch_up(struct nv_hook *h, uint64_t target) {
  aln_status st = ALN_ERR_INTERNAL;
  uint64_t c = 0;

  ALN_GUARD_GOTO(st, h->ctr->read(h->ctr->ctx, &c), out);
  uint64_t d = c - h->base;
  if (d < h->vouched) {
    /* h->vouched stays, so the escrow's retries of this hook (before every later
     * operation) keep refusing: this is not the counter we started with. */
    fprintf(stderr,
            "aileron-enclave: WARNING: TPM NV counter 0x%08x went back (generation %llu < %llu): it is not the "
            "counter this enclave recorded\n",
            h->ctr->nv_index, (unsigned long long)d, (unsigned long long)h->vouched);
    st = ALN_ERR_TAMPERED;
    goto out;
  }
  /* Already there or past it: another process writing this escrow (a "host"
   * command) brought it level with a later commit than the one this call is for.
   * Something else moving it past the database is seen at the next start. */
  h->vouched = d;
  if (d >= target) {
    st = ALN_OK;
    goto out;
  }
  ALN_ENSURE_GOTO(st, target - d <= ALN_EPOCH_COUNTER_MAX_LAG, ALN_ERR_TPM, out);
  for (uint64_t i = d; i < target; i++)
    ALN_GUARD_GOTO(st, h->ctr->increment(h->ctr->ctx), out);
  ALN_GUARD_GOTO(st, h->ctr->read(h->ctr->ctx, &c), out);
  h->vouched = c - h->base;
  ALN_ENSURE_GOTO(st, h->vouched == target, ALN_ERR_TPM, out);
  st = ALN_OK;
out:
  counter_done(h->ctr);
  return st;
}

/* nv_hook_run is the commit hook. When it fails the escrow refuses every
 * operation and calls it again before each, so the counter is never more than the
 * one acknowledged write behind the database (the window a crash leaves too). */
static aln_status nv_hook_run(void *ctx, const struct aln_escrow_counts *counts) {
  struct nv_hook *h = ctx;
  aln_status cst = ALN_OK;
  int lock = -1;
  /* Audit-only writes leave the generation alone and never reach the TPM. */
  if (counts->generation > h->vouched) {
    cst = counter_lock(&lock, h->path);
    if (cst == ALN_OK)
      cst = nv_catch_up(h, counts->generation);
  }
  /* Written even when the counter failed: the epoch still guards against an older
   * database restored alone. Its generation is only what the counter reached. */
  struct aln_epoch_record rec = {.version = 2,
                                 .epoch = counts->epoch,
                                 .generation = counts->generation < h->vouched ? counts->generation : h->vouched,
                                 .nv_index = h->ctr->nv_index,
                                 .base = h->base};
  aln_status fst = aln_epoch_record_write(h->path, &h->kek, &rec);
  if (lock >= 0)
    close(lock);
  return cst != ALN_OK ? cst : fst;
}

#define WHY(info, ...)                                                                                                 \
  do {                                                                                                                 \
    if ((info) != NULL)                                                                                                \
      snprintf((info)->why, sizeof((info)->why), __VA_ARGS__);                                                         \
  } while (0)

#define ACCEPT_HINT                                                                                                    \
  "if this database is known to be the newest (as after a KEK recovery onto another TPM), start once with "            \
  "AILERON_ACCEPT_ROLLBACK_RISK=1 to anchor it in a new counter"

/* counter_read_why reads |ctr| into *c, explaining a failure in |info|. */
static aln_status counter_read_why(struct aln_epoch_counter *ctr, uint64_t *c, struct aln_epoch_info *info) {
  aln_status st = ctr->read(ctr->ctx, c);
  if (st == ALN_ERR_NOT_FOUND)
    WHY(info,
        "the TPM NV counter 0x%08x recorded in the epoch file no longer exists (TPM cleared, another TPM, or the "
        "index undefined): it cannot vouch for this database; " ACCEPT_HINT,
        ctr->nv_index);
  else if (st == ALN_ERR_TAMPERED)
    WHY(info,
        "the TPM NV index 0x%08x is not the counter this enclave recorded (redefined since, or another program's "
        "index): refusing to start; " ACCEPT_HINT " (after undefining the index if it is another program's)",
        ctr->nv_index);
  else if (st != ALN_OK)
    WHY(info, "cannot read the TPM NV counter 0x%08x", ctr->nv_index);
  return st;
}

/* counter_check compares the counter's value |c| with the file |rec| and the
 * database |db| and sets *lag to how far the counter is behind the database. */
static aln_status counter_check(uint64_t *lag, const struct aln_epoch_counter *ctr, const struct aln_epoch_record *rec,
                                const struct aln_escrow_counts *db, uint64_t c, struct aln_epoch_info *info) {
  uint64_t d = c - rec->base;
  if (info != NULL)
    info->counter_generation = d;
  if (d < rec->generation) {
    WHY(info,
        "the TPM NV counter 0x%08x is below the value recorded in the epoch file (custody generation %llu < %llu): a "
        "counter never goes back, so this is not the counter this enclave recorded (another TPM?); refusing to start",
        ctr->nv_index, (unsigned long long)d, (unsigned long long)rec->generation);
    return ALN_ERR_TAMPERED;
  }
  if (db->generation < d) {
    WHY(info,
        "the escrow database is older than the last state this enclave committed (custody generation %llu < %llu "
        "vouched for by TPM NV counter 0x%08x): an old copy of the database and its epoch file was restored (or "
        "something else increments the counter); refusing to start so revoked credentials cannot come back",
        (unsigned long long)db->generation, (unsigned long long)d, ctr->nv_index);
    return ALN_ERR_ROLLBACK;
  }
  *lag = db->generation - d;
  if (*lag > ALN_EPOCH_COUNTER_MAX_LAG) {
    WHY(info,
        "the TPM NV counter 0x%08x is %llu custody writes behind the escrow, more than failed increments leave: "
        "refusing to start",
        ctr->nv_index, (unsigned long long)*lag);
    return ALN_ERR_TPM;
  }
  return ALN_OK;
}

aln_status aln_epoch_counter_guard(struct aln_escrow *esc, struct aln_epoch_info *info, const char *path,
                                   const struct aln_secret *kek, struct aln_epoch_counter *ctr, int accept_risk) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_escrow_counts db;
  struct aln_epoch_record rec = {0};
  struct nv_hook *h = NULL;
  uint64_t c = 0, base = 0, lag = 0;
  int missing = 0, anchor = 0, lock = -1;

  if (info != NULL)
    memset(info, 0, sizeof(*info));
  ALN_ENSURE_GOTO(st, esc != NULL && path != NULL && path[0] != '\0' && kek != NULL && ctr != NULL, ALN_ERR_USAGE, out);
  if (info != NULL)
    info->nv_index = ctr->nv_index;
  /* Held from the reading of the counts to the file update: see counter_lock. */
  st = counter_lock(&lock, path);
  if (st != ALN_OK) {
    WHY(info, "cannot lock the epoch file's lock file beside it");
    goto out;
  }
  ALN_GUARD_GOTO(st, aln_escrow_counts(esc, &db), out);
  if (info != NULL) {
    info->db_epoch = db.epoch;
    info->db_generation = db.generation;
  }
  st = aln_epoch_record_read(&rec, path, kek);
  if (st == ALN_ERR_NOT_FOUND) {
    missing = 1;
  } else if (st != ALN_OK) {
    WHY(info, "the epoch file failed authentication (edited, or written under another KEK): refusing to start");
    goto out;
  }
  if (info != NULL) {
    info->file_missing = missing;
    info->file_version = missing ? 0 : rec.version;
    info->file_epoch = rec.epoch;
    info->file_generation = rec.generation;
  }

  if (!missing && rec.version == 2) {
    base = rec.base;
    if (info != NULL)
      info->base = base;
    if (rec.nv_index != ctr->nv_index) {
      WHY(info, "the epoch file records TPM NV counter 0x%08x but AILERON_TPM_NV_INDEX names 0x%08x", rec.nv_index,
          ctr->nv_index);
      st = ALN_ERR_USAGE;
      goto out;
    }
    if (db.epoch < rec.epoch || db.generation < rec.generation) {
      int by_epoch = db.epoch < rec.epoch;
      WHY(info,
          "the escrow database is older than the last state this enclave committed (%s %llu < %llu): an old copy "
          "was restored; refusing to start so revoked credentials cannot come back",
          by_epoch ? "epoch" : "custody generation", (unsigned long long)(by_epoch ? db.epoch : db.generation),
          (unsigned long long)(by_epoch ? rec.epoch : rec.generation));
      st = ALN_ERR_ROLLBACK;
      goto out;
    }
    st = counter_read_why(ctr, &c, info);
    /* The counter that vouched for the file is gone or replaced, so nothing vouches
     * for the database beyond the file's checks above: only the operator may
     * anchor it anew. A counter that reads is never overridden. */
    if ((st == ALN_ERR_NOT_FOUND || st == ALN_ERR_TAMPERED) && accept_risk)
      anchor = 1;
    else if (st != ALN_OK)
      goto out;
    else
      ALN_GUARD_GOTO(st, counter_check(&lag, ctr, &rec, &db, c, info), out);
  } else {
    if (!missing && db.epoch < rec.epoch) {
      WHY(info,
          "the escrow database is older than the last state this enclave committed (epoch %llu < %llu): an old copy "
          "was restored; refusing to start so revoked credentials cannot come back",
          (unsigned long long)db.epoch, (unsigned long long)rec.epoch);
      st = ALN_ERR_ROLLBACK;
      goto out;
    }
    /* No record the counter could be checked against. Only a database that was
     * never written, or the operator, may start one: re-basing silently would
     * accept any older copy. */
    if (!accept_risk && (!missing || db.epoch != 0)) {
      if (missing)
        WHY(info,
            "the epoch file is missing but the escrow has committed writes (epoch %llu): restore it, or set "
            "AILERON_ACCEPT_ROLLBACK_RISK=1 once if this database is known to be the newest",
            (unsigned long long)db.epoch);
      else
        WHY(info,
            "the epoch file predates the TPM NV counter (format ALNEPOC1) and cannot vouch for this database: set "
            "AILERON_ACCEPT_ROLLBACK_RISK=1 once if it is known to be the newest, to anchor it in counter 0x%08x",
            ctr->nv_index);
      st = ALN_ERR_EPOCH_MISSING;
      goto out;
    }
    anchor = 1;
  }
  if (anchor) {
    if (info != NULL)
      info->why[0] = '\0';
    st = ctr->create(ctr->ctx, &c);
    if (st == ALN_ERR_TAMPERED)
      WHY(info,
          "the TPM NV index 0x%08x exists but is not a counter this enclave defines: choose another "
          "AILERON_TPM_NV_INDEX, or undefine it",
          ctr->nv_index);
    else if (st != ALN_OK)
      WHY(info, "cannot define or read the TPM NV counter 0x%08x", ctr->nv_index);
    if (st != ALN_OK)
      goto out;
    base = c - db.generation; /* modulo 2^64, as every use of it */
    if (info != NULL) {
      info->base = base;
      info->counter_generation = db.generation;
      info->rebased = db.epoch != 0 || !missing;
    }
  }

  /* Nothing has been acknowledged yet, so unlike in the hook a failure to bring
   * the counter or the file level refuses the start. */
  for (uint64_t i = 0; i < lag; i++)
    ALN_GUARD_GOTO(st, ctr->increment(ctr->ctx), out);
  if (lag > 0) {
    ALN_GUARD_GOTO(st, counter_read_why(ctr, &c, info), out);
    if (c - base != db.generation) {
      WHY(info, "the TPM NV counter 0x%08x did not reach custody generation %llu", ctr->nv_index,
          (unsigned long long)db.generation);
      st = ALN_ERR_TPM;
      goto out;
    }
  }
  counter_done(ctr);
  rec = (struct aln_epoch_record){
      .version = 2, .epoch = db.epoch, .generation = db.generation, .nv_index = ctr->nv_index, .base = base};
  st = aln_epoch_record_write(path, kek, &rec);
  if (st != ALN_OK) {
    WHY(info, "cannot write the epoch file");
    goto out;
  }

  h = calloc(1, sizeof(*h));
  ALN_ENSURE_GOTO(st, h != NULL, ALN_ERR_NOMEM, out);
  h->path = strdup(path);
  ALN_ENSURE_GOTO(st, h->path != NULL, ALN_ERR_NOMEM, out);
  ALN_GUARD_GOTO(st, aln_secret_from(&h->kek, kek->p, kek->len), out);
  h->base = base;
  h->vouched = db.generation;
  h->ctr = ctr;
  ctr = NULL;
  aln_escrow_set_commit_hook(esc, nv_hook_run, h, nv_hook_free);
  h = NULL;
  st = ALN_OK;
out:
  if (ctr != NULL)
    counter_done(ctr);
  aln_epoch_counter_free(ctr);
  nv_hook_free(h);
  if (lock >= 0)
    close(lock);
  return st;
}
