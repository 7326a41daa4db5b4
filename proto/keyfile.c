/* Private key files. Reads open with O_NOFOLLOW and check the opened file itself
 * (fstat, not stat) so a swapped symlink or a loosened mode is refused rather than
 * trusted. New files are written under a temporary name and published with link(),
 * which fails if the target exists: a concurrent reader sees either no file or the
 * whole file, never a partial key, and an existing file is never overwritten. */
#include "proto/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

/* check_private refuses anything but an object of type |type| owned by the
 * effective user with no group/other permission bits; fills *sb. */
static aln_status check_private(int fd, mode_t type, struct stat *sb) {
  ALN_ENSURE(fstat(fd, sb) == 0, ALN_ERR_IO);
  ALN_ENSURE((sb->st_mode & S_IFMT) == type, ALN_ERR_PERMS);
  ALN_ENSURE(sb->st_uid == geteuid(), ALN_ERR_PERMS);
  ALN_ENSURE((sb->st_mode & 077) == 0, ALN_ERR_PERMS);
  return ALN_OK;
}

static aln_status open_errno_status(int err) {
  switch (err) {
  case ENOENT:
    return ALN_ERR_NOT_FOUND;
  case ELOOP:   /* O_NOFOLLOW met a symlink */
  case ENOTDIR: /* O_DIRECTORY met a non-directory */
  case EACCES:
    return ALN_ERR_PERMS;
  default:
    return ALN_ERR_IO;
  }
}

static aln_status read_full(int fd, uint8_t *p, size_t len) {
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    ALN_ENSURE(n > 0, ALN_ERR_IO); /* 0: the file shrank since fstat */
    p += n;
    len -= (size_t)n;
  }
  return ALN_OK;
}

/* io_status names a failed write or fsync: a full disk or quota is not a generic
 * I/O error to the operator who has to act on it. */
static aln_status io_status(void) {
  return errno == ENOSPC || errno == EDQUOT ? ALN_ERR_DISK_FULL : ALN_ERR_IO;
}

static aln_status write_full(int fd, const uint8_t *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    ALN_ENSURE(n > 0, n == 0 ? ALN_ERR_IO : io_status());
    p += n;
    len -= (size_t)n;
  }
  return ALN_OK;
}

aln_status aln_keyfile_read(struct aln_secret *out, const char *path, size_t max) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_secret s = {0};
  struct stat sb;
  uint8_t extra = 0;
  memset(out, 0, sizeof(*out));
  /* O_NONBLOCK: a FIFO planted at |path| must not block the open before fstat
   * refuses it. */
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  ALN_ENSURE_GOTO(st, fd >= 0, open_errno_status(errno), out);
  ALN_GUARD_GOTO(st, check_private(fd, S_IFREG, &sb), out);
  ALN_ENSURE_GOTO(st, sb.st_size >= 0 && (uintmax_t)sb.st_size <= max, ALN_ERR_TOO_LARGE, out);
  ALN_GUARD_GOTO(st, aln_secret_new(&s, (size_t)sb.st_size), out);
  ALN_GUARD_GOTO(st, read_full(fd, s.p, s.len), out);
  /* The file must end where fstat said: a file growing under us is not trusted. */
  ssize_t n;
  do {
    n = read(fd, &extra, 1);
  } while (n < 0 && errno == EINTR);
  ALN_ENSURE_GOTO(st, n == 0, ALN_ERR_IO, out);
  *out = s;
  s = (struct aln_secret){0};
  st = ALN_OK;
out:
  aln_wipe(&extra, sizeof(extra));
  aln_secret_free(&s);
  if (fd >= 0)
    close(fd);
  return st;
}

aln_status aln_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ALN_ENSURE(fd >= 0, ALN_ERR_IO);
  int rc = fsync(fd);
  close(fd);
  ALN_ENSURE(rc == 0, ALN_ERR_IO);
  return ALN_OK;
}

/* fsync_parent_dir makes the directory entry for |path| durable. */
static aln_status fsync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = NULL;
  if (slash == NULL)
    dir = strdup(".");
  else if (slash == path)
    dir = strdup("/");
  else
    dir = strndup(path, (size_t)(slash - path));
  ALN_ENSURE(dir != NULL, ALN_ERR_NOMEM);
  aln_status st = aln_fsync_dir(dir);
  free(dir);
  return st;
}

aln_status aln_keyfile_write_new(const char *path, const uint8_t *data, size_t len) {
  ALN_ENSURE(path != NULL && (data != NULL || len == 0), ALN_ERR_USAGE);
  /* Checked up front so the bytes of a refused write never reach the disk at all;
   * link() below is what guarantees no overwrite. */
  struct stat sb;
  ALN_ENSURE(lstat(path, &sb) != 0, ALN_ERR_EXISTS);
  ALN_ENSURE(errno == ENOENT, ALN_ERR_IO);

  aln_status st = ALN_ERR_INTERNAL;
  int fd = -1;
  size_t tmp_len = strlen(path) + sizeof(".tmp.XXXXXX");
  char *tmp = malloc(tmp_len);
  ALN_ENSURE_GOTO(st, tmp != NULL, ALN_ERR_NOMEM, out);
  snprintf(tmp, tmp_len, "%s.tmp.XXXXXX", path);
  /* mkostemp creates with O_CREAT|O_EXCL (never through a symlink); fchmod then
   * pins the mode to exactly 0600 whatever the umask. */
  fd = mkostemp(tmp, O_CLOEXEC);
  ALN_ENSURE_GOTO(st, fd >= 0, io_status(), out);
  ALN_ENSURE_GOTO(st, fchmod(fd, 0600) == 0, ALN_ERR_IO, out);
  ALN_GUARD_GOTO(st, write_full(fd, data, len), out);
  ALN_ENSURE_GOTO(st, fsync(fd) == 0, io_status(), out);
  if (link(tmp, path) != 0) {
    st = errno == EEXIST ? ALN_ERR_EXISTS : ALN_ERR_IO;
    goto out;
  }
  st = ALN_OK;
out:
  if (fd >= 0) {
    close(fd);
    (void)unlink(tmp);
  }
  free(tmp);
  /* After link and unlink, so both directory changes are made durable. A failure
   * here is reported although the complete file is already in place. */
  if (st == ALN_OK)
    st = fsync_parent_dir(path);
  return st;
}

aln_status aln_keyfile_replace(const char *path, const uint8_t *data, size_t len) {
  ALN_ENSURE(path != NULL && path[0] != '\0' && (data != NULL || len == 0), ALN_ERR_USAGE);
  aln_status st = ALN_ERR_IO;
  char tmp[PATH_MAX];
  int fd = -1;
  int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  ALN_ENSURE(n > 0 && (size_t)n < sizeof(tmp), ALN_ERR_USAGE);
  /* One fixed temp name: a temp file left by a crash is ours to replace (never
   * through a symlink), and none accumulate. */
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  ALN_ENSURE_GOTO(st, fd >= 0, io_status(), out);
  ALN_ENSURE_GOTO(st, fchmod(fd, 0600) == 0, ALN_ERR_PERMS, out);
  ALN_GUARD_GOTO(st, write_full(fd, data, len), out);
  ALN_ENSURE_GOTO(st, fsync(fd) == 0, io_status(), out);
  ALN_ENSURE_GOTO(st, close(fd) == 0, io_status(), out);
  fd = -1;
  ALN_ENSURE_GOTO(st, rename(tmp, path) == 0, io_status(), out);
  st = fsync_parent_dir(path);
out:
  if (fd >= 0) {
    close(fd);
    (void)unlink(tmp);
  }
  return st;
}

aln_status aln_file_read_public(uint8_t **out, size_t *out_len, const char *path, size_t max) {
  *out = NULL;
  *out_len = 0;
  ALN_ENSURE(path != NULL && max < SIZE_MAX - 1, ALN_ERR_USAGE);
  FILE *f = fopen(path, "rbe");
  ALN_ENSURE(f != NULL, errno == ENOENT ? ALN_ERR_NOT_FOUND : ALN_ERR_IO);
  uint8_t *buf = malloc(max + 2);
  size_t n = buf != NULL ? fread(buf, 1, max + 1, f) : 0;
  aln_status st = buf == NULL ? ALN_ERR_NOMEM : ferror(f) ? ALN_ERR_IO : n > max ? ALN_ERR_TOO_LARGE : ALN_OK;
  fclose(f);
  if (st != ALN_OK) {
    free(buf);
    return st;
  }
  buf[n] = '\0';
  *out = buf;
  *out_len = n;
  return ALN_OK;
}

aln_status aln_keyfile_load_or_create(struct aln_secret *out, const char *path, size_t len) {
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(len > 0 && len <= INT_MAX, ALN_ERR_USAGE);
  /* Another process may create the file between our read and our create; then
   * write_new says EXISTS and the next read returns its key. Three rounds bound the
   * loop if the file is also being deleted concurrently. */
  for (int round = 0; round < 3; round++) {
    aln_status st = aln_keyfile_read(out, path, len);
    if (st == ALN_OK && out->len == len)
      return ALN_OK;
    if (st == ALN_OK || st == ALN_ERR_TOO_LARGE) {
      aln_secret_free(out);
      return ALN_ERR_STORE;
    }
    if (st != ALN_ERR_NOT_FOUND)
      return st;

    struct aln_secret fresh;
    ALN_GUARD(aln_secret_new(&fresh, len));
    if (RAND_bytes(fresh.p, (int)len) != 1) {
      aln_secret_free(&fresh);
      return ALN_ERR_CRYPTO;
    }
    st = aln_keyfile_write_new(path, fresh.p, fresh.len);
    if (st == ALN_OK) {
      *out = fresh;
      return ALN_OK;
    }
    aln_secret_free(&fresh);
    if (st != ALN_ERR_EXISTS)
      return st;
  }
  return ALN_ERR_IO;
}

aln_status aln_private_dir_ensure(const char *path) {
  ALN_ENSURE(path != NULL, ALN_ERR_USAGE);
  int created = mkdir(path, 0700) == 0;
  ALN_ENSURE(created || errno == EEXIST, ALN_ERR_IO);
  /* Check what is there now whether or not we made it: an existing directory may
   * be a symlink, someone else's, or too open. */
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  /* ENOENT here means it vanished after mkdir: an I/O race, not "not found". */
  ALN_ENSURE(fd >= 0, errno == ENOENT ? ALN_ERR_IO : open_errno_status(errno));
  struct stat sb;
  aln_status st = check_private(fd, S_IFDIR, &sb);
  /* A strict umask may have left our new directory unusable to its owner. */
  if (st == ALN_OK && created && fchmod(fd, 0700) != 0)
    st = ALN_ERR_IO;
  close(fd);
  return st;
}

/* Hex runs in time independent of the bytes, since it carries keys: no table
 * lookups indexed by a secret, no branches on one. */

/* ct_in_range returns all ones if lo <= c <= hi, else 0 (c, lo, hi < 2^31). */
static unsigned ct_in_range(unsigned c, unsigned lo, unsigned hi) {
  return 0u - ((((c - lo) | (hi - c)) >> 31) ^ 1u);
}

static char hex_digit(unsigned n) {
  /* '0' + n for n < 10, 'a' + n - 10 otherwise. */
  return (char)('0' + n + (~ct_in_range(n, 0, 9) & ('a' - '0' - 10)));
}

aln_status aln_hex_encode(char *out, size_t out_cap, const uint8_t *in, size_t len) {
  size_t need;
  ALN_ENSURE(out != NULL && (in != NULL || len == 0), ALN_ERR_USAGE);
  ALN_ENSURE(!__builtin_mul_overflow(len, (size_t)2, &need) && !__builtin_add_overflow(need, (size_t)1, &need),
             ALN_ERR_USAGE);
  ALN_ENSURE(out_cap >= need, ALN_ERR_USAGE);
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = hex_digit(in[i] >> 4);
    out[2 * i + 1] = hex_digit(in[i] & 0xf);
  }
  out[2 * len] = '\0';
  return ALN_OK;
}

/* hex_value returns the value of hex character |c| (either case) and sets bits in
 * *bad if |c| is not one. */
static unsigned hex_value(unsigned c, unsigned *bad) {
  unsigned dig = ct_in_range(c, '0', '9');
  unsigned low = ct_in_range(c, 'a', 'f');
  unsigned up = ct_in_range(c, 'A', 'F');
  *bad |= ~(dig | low | up) & 1u;
  return (dig & (c - '0')) | (low & (c - 'a' + 10)) | (up & (c - 'A' + 10));
}

aln_status aln_hex_decode(uint8_t *out, size_t out_len, const char *in, size_t in_len) {
  ALN_ENSURE((out != NULL && in != NULL) || out_len == 0, ALN_ERR_USAGE);
  ALN_ENSURE(in_len % 2 == 0 && in_len / 2 == out_len, ALN_ERR_MALFORMED);
  unsigned bad = 0;
  for (size_t i = 0; i < out_len; i++) {
    unsigned hi = hex_value((uint8_t)in[2 * i], &bad);
    unsigned lo = hex_value((uint8_t)in[2 * i + 1], &bad);
    out[i] = (uint8_t)((hi << 4) | lo);
  }
  if (bad != 0) {
    /* Do not leave a partial key behind for a caller that ignores the status. */
    aln_wipe(out, out_len);
    return ALN_ERR_MALFORMED;
  }
  return ALN_OK;
}

aln_status aln_path_join(char *out, const char *dir, const char *name, const char *suffix) {
  ALN_ENSURE(out != NULL && dir != NULL && name != NULL, ALN_ERR_USAGE);
  int n = snprintf(out, PATH_MAX, "%s/%s%s", dir, name, suffix != NULL ? suffix : "");
  ALN_ENSURE(n > 0 && n < PATH_MAX, ALN_ERR_USAGE);
  return ALN_OK;
}
