/* See kek_rotate.h for the protocol. Every file change here is made durable before
 * the next step relies on it: the new KEK file before the escrow commits under it,
 * and the rename (with its directory) before the rotation is reported done. */
#include "enclave/kek_rotate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/keyfile.h"

/* next_name writes "<kek_file>.next", the name of the KEK being rotated to. */
static aln_status next_name(char out[NAME_MAX + 1], const struct aln_provider *prov) {
  int n = snprintf(out, NAME_MAX + 1, "%s%s", prov->kek_file, ALN_KEK_NEXT_SUFFIX);
  ALN_ENSURE(n > 0 && n <= NAME_MAX, ALN_ERR_USAGE);
  return ALN_OK;
}

/* next_exists says whether <kek_file>.next is there (lstat: a symlink counts, and
 * is then refused by the provider's reader). */
static aln_status next_exists(int *out, const struct aln_provider *prov, const char *data_dir) {
  char path[PATH_MAX];
  struct stat sb;
  ALN_GUARD(aln_path_join(path, data_dir, prov->kek_file, ALN_KEK_NEXT_SUFFIX));
  if (lstat(path, &sb) == 0) {
    *out = 1;
    return ALN_OK;
  }
  ALN_ENSURE(errno == ENOENT, ALN_ERR_IO);
  *out = 0;
  return ALN_OK;
}

/* promote_next renames <kek_file>.next over <kek_file>, durably. */
static aln_status promote_next(const struct aln_provider *prov, const char *data_dir) {
  char from[PATH_MAX], to[PATH_MAX];
  ALN_GUARD(aln_path_join(from, data_dir, prov->kek_file, ALN_KEK_NEXT_SUFFIX));
  ALN_GUARD(aln_path_join(to, data_dir, prov->kek_file, NULL));
  ALN_ENSURE(rename(from, to) == 0, ALN_ERR_IO);
  return aln_fsync_dir(data_dir);
}

/* discard_next removes <kek_file>.next, durably; a missing one is fine. */
static aln_status discard_next(const struct aln_provider *prov, const char *data_dir) {
  char path[PATH_MAX];
  ALN_GUARD(aln_path_join(path, data_dir, prov->kek_file, ALN_KEK_NEXT_SUFFIX));
  ALN_ENSURE(unlink(path) == 0 || errno == ENOENT, ALN_ERR_IO);
  return aln_fsync_dir(data_dir);
}

aln_status aln_kek_open_escrow(struct aln_escrow **esc_out, struct aln_secret *kek_out, struct aln_secret *old_kek_out,
                               enum aln_kek_recovery *recovery, const struct aln_provider *prov, const char *data_dir,
                               const char *db_path, unsigned flags) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_escrow *esc = NULL;
  struct aln_secret cur = {0}, next = {0};
  char next_file[NAME_MAX + 1];
  int have_next = 0;

  ALN_ENSURE(esc_out != NULL && kek_out != NULL && recovery != NULL, ALN_ERR_USAGE);
  *esc_out = NULL;
  memset(kek_out, 0, sizeof(*kek_out));
  if (old_kek_out != NULL)
    memset(old_kek_out, 0, sizeof(*old_kek_out));
  *recovery = ALN_KEK_NO_ROTATION;
  ALN_ENSURE(prov != NULL && data_dir != NULL && db_path != NULL, ALN_ERR_USAGE);
  ALN_GUARD(next_name(next_file, prov));

  ALN_GUARD_GOTO(st, prov->kek_load(&cur, data_dir), out);
  ALN_GUARD_GOTO(st, next_exists(&have_next, prov, data_dir), out);
  st = aln_escrow_open(&esc, db_path, &cur, flags);
  if (st == ALN_OK && have_next) {
    /* The escrow never committed under the new KEK: the rotation is undone. */
    ALN_GUARD_GOTO(st, discard_next(prov, data_dir), out);
    *recovery = ALN_KEK_ROTATION_UNDONE;
  } else if (st == ALN_ERR_KEK_MISMATCH && have_next) {
    ALN_GUARD_GOTO(st, prov->kek_read(&next, data_dir, next_file), out);
    ALN_GUARD_GOTO(st, aln_escrow_open(&esc, db_path, &next, flags), out);
    /* It committed: the new KEK becomes the KEK. */
    ALN_GUARD_GOTO(st, promote_next(prov, data_dir), out);
    *recovery = ALN_KEK_ROTATION_FINISHED;
    if (old_kek_out != NULL) {
      *old_kek_out = cur;
      memset(&cur, 0, sizeof(cur));
    }
    aln_secret_free(&cur);
    cur = next;
    memset(&next, 0, sizeof(next));
  }
  ALN_GUARD_GOTO(st, st, out);
  *esc_out = esc;
  esc = NULL;
  *kek_out = cur;
  memset(&cur, 0, sizeof(cur));
  st = ALN_OK;
out:
  aln_escrow_free(esc);
  aln_secret_free(&cur);
  aln_secret_free(&next);
  if (st != ALN_OK && old_kek_out != NULL)
    aln_secret_free(old_kek_out);
  return st;
}

aln_status aln_kek_rotate(struct aln_escrow *esc, struct aln_secret *kek, uint64_t *num_out,
                          const struct aln_provider *prov, const char *data_dir, aln_kek_rekey_fn rekey,
                          void *rekey_ctx) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_secret fresh = {0};
  char next_file[NAME_MAX + 1];
  int staged = 0, committed = 0;

  ALN_ENSURE(num_out != NULL, ALN_ERR_USAGE);
  *num_out = 0;
  ALN_ENSURE(esc != NULL && kek != NULL && kek->p != NULL && prov != NULL && data_dir != NULL, ALN_ERR_USAGE);
  ALN_GUARD(next_name(next_file, prov));

  ALN_GUARD_GOTO(st, aln_secret_new(&fresh, ALN_KEK_LEN), out);
  ALN_ENSURE_GOTO(st, RAND_priv_bytes(fresh.p, ALN_KEK_LEN) == 1, ALN_ERR_CRYPTO, out);
  /* 1. Durable before anything is wrapped under it; a stale .next from an
   * interrupted rotation was removed when the escrow was opened. */
  ALN_GUARD_GOTO(st, prov->kek_install(&fresh, data_dir, next_file), out);
  staged = 1;
  /* 2. The rotation itself. */
  struct aln_audit_event ev = {
      .time = (int64_t)time(NULL), .actor = "operator", .action = "kek-rotate", .decision = "allow", .result = ALN_OK};
  ALN_GUARD_GOTO(st, aln_escrow_rotate_kek(esc, num_out, &fresh, &ev), out);
  committed = 1;
  /* 3. and 4. A failure from here on is finished by the next start. */
  if (rekey != NULL)
    ALN_GUARD_GOTO(st, rekey(rekey_ctx, kek, &fresh), out);
  ALN_GUARD_GOTO(st, promote_next(prov, data_dir), out);
  aln_secret_free(kek);
  *kek = fresh;
  memset(&fresh, 0, sizeof(fresh));
  st = ALN_OK;
out:
  if (staged && !committed)
    (void)discard_next(prov, data_dir);
  aln_secret_free(&fresh);
  return st;
}

aln_status aln_data_dir_lock(int *fd_out, const char *data_dir, int exclusive) {
  char path[PATH_MAX];
  ALN_ENSURE(fd_out != NULL && data_dir != NULL, ALN_ERR_USAGE);
  *fd_out = -1;
  ALN_GUARD(aln_path_join(path, data_dir, "lock", NULL));
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  ALN_ENSURE(fd >= 0, ALN_ERR_IO);
  if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    int busy = errno == EWOULDBLOCK;
    close(fd);
    return busy ? ALN_ERR_EXISTS : ALN_ERR_IO;
  }
  *fd_out = fd;
  return ALN_OK;
}
