/* Tests for proto/keyfile, each in a fresh mkdtemp directory: new files are exactly
 * 0600 and never overwrite (not even through a dangling symlink); reads refuse
 * group/other modes, symlinks, non-regular files and other owners; size limits;
 * load_or_create creates once, rereads, refuses a wrong size, and concurrent
 * creators all end up with the same key; private_dir_ensure; hex.
 * Hex decoding accepts upper- and lowercase digits; encoding emits lowercase. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/keyfile.h"

struct fixture {
  char dir[64];
};

static int setup(void **state) {
  struct fixture *fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return -1;
  snprintf(fx->dir, sizeof(fx->dir), "/tmp/aln_keyfile_XXXXXX");
  if (mkdtemp(fx->dir) == NULL) {
    free(fx);
    return -1;
  }
  *state = fx;
  return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int teardown(void **state) {
  struct fixture *fx = *state;
  int rc = nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return rc;
}

/* path_in formats |name| inside the fixture directory into a static buffer. */
static const char *path_in(void **state, const char *name) {
  static char buf[4][256];
  static int next;
  struct fixture *fx = *state;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof(buf[0]), "%s/%s", fx->dir, name);
  return p;
}

/* make_file writes |len| bytes with mode |mode| (set explicitly, umask aside). */
static void make_file(const char *path, const void *data, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

static mode_t mode_of(const char *path) {
  struct stat sb;
  assert_int_equal(lstat(path, &sb), 0);
  return sb.st_mode & 07777;
}

static size_t count_entries(void **state) {
  struct fixture *fx = *state;
  DIR *d = opendir(fx->dir);
  assert_non_null(d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

static void test_write_new_and_read(void **state) {
  const char *path = path_in(state, "key");
  static const uint8_t data[] = "super secret key material";
  /* A permissive umask must not loosen the file, a strict one not break it. */
  mode_t old = umask(0);
  assert_int_equal(aln_keyfile_write_new(path, data, sizeof(data)), ALN_OK);
  umask(old);
  assert_int_equal(mode_of(path), 0600);
  assert_int_equal(count_entries(state), 1); /* no temporary left behind */

  struct aln_secret s;
  assert_int_equal(aln_keyfile_read(&s, path, 4096), ALN_OK);
  assert_int_equal(s.len, sizeof(data));
  assert_memory_equal(s.p, data, sizeof(data));
  aln_secret_free(&s);

  const char *path2 = path_in(state, "key2");
  old = umask(0377);
  assert_int_equal(aln_keyfile_write_new(path2, data, 3), ALN_OK);
  umask(old);
  assert_int_equal(mode_of(path2), 0600);
  assert_int_equal(aln_keyfile_read(&s, path2, 3), ALN_OK);
  assert_int_equal(s.len, 3);
  aln_secret_free(&s);
}

static void test_write_new_refuses_existing(void **state) {
  const char *path = path_in(state, "key");
  make_file(path, "old", 3, 0600);
  assert_int_equal(aln_keyfile_write_new(path, (const uint8_t *)"new!", 4), ALN_ERR_EXISTS);
  struct aln_secret s;
  assert_int_equal(aln_keyfile_read(&s, path, 64), ALN_OK);
  assert_int_equal(s.len, 3);
  assert_memory_equal(s.p, "old", 3);
  aln_secret_free(&s);

  /* A dangling symlink must not be followed to create its target. */
  const char *link = path_in(state, "link");
  const char *target = path_in(state, "target");
  assert_int_equal(symlink(target, link), 0);
  assert_int_equal(aln_keyfile_write_new(link, (const uint8_t *)"x", 1), ALN_ERR_EXISTS);
  assert_int_equal(access(target, F_OK), -1);
  assert_int_equal(count_entries(state), 2);

  /* Missing parent directory. */
  assert_int_equal(aln_keyfile_write_new(path_in(state, "no/such"), (const uint8_t *)"x", 1), ALN_ERR_IO);
}

static void test_replace(void **state) {
  const char *path = path_in(state, "state");
  const char *tmp = path_in(state, "state.tmp");
  struct aln_secret s;
  struct stat sb;
  /* Creates, then replaces; 0600 even over a looser old file; no temp file left. */
  assert_int_equal(aln_keyfile_replace(path, (const uint8_t *)"one", 3), ALN_OK);
  assert_int_equal(unlink(path), 0);
  make_file(path, "old-loose", 9, 0644);
  assert_int_equal(aln_keyfile_replace(path, (const uint8_t *)"two!", 4), ALN_OK);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(aln_keyfile_read(&s, path, 64), ALN_OK);
  assert_int_equal(s.len, 4);
  assert_memory_equal(s.p, "two!", 4);
  aln_secret_free(&s);
  assert_int_equal(access(tmp, F_OK), -1);

  /* A temp file a crash left behind is replaced; a symlink planted there is not
   * followed (its target is never created) and the old contents stay. */
  make_file(tmp, "stale", 5, 0600);
  assert_int_equal(aln_keyfile_replace(path, (const uint8_t *)"three", 5), ALN_OK);
  assert_int_equal(access(tmp, F_OK), -1);
  const char *target = path_in(state, "target");
  assert_int_equal(symlink(target, tmp), 0);
  assert_int_equal(aln_keyfile_replace(path, (const uint8_t *)"four", 4), ALN_ERR_IO);
  assert_int_equal(access(target, F_OK), -1);
  assert_int_equal(aln_keyfile_read(&s, path, 64), ALN_OK);
  assert_memory_equal(s.p, "three", 5);
  aln_secret_free(&s);
}

static void test_read_not_found(void **state) {
  struct aln_secret s = {(uint8_t *)"junk", 4};
  assert_int_equal(aln_keyfile_read(&s, path_in(state, "missing"), 64), ALN_ERR_NOT_FOUND);
  assert_null(s.p);
  assert_int_equal(s.len, 0);
}

static void test_read_refuses_open_modes(void **state) {
  static const mode_t bad[] = {0644, 0640, 0604, 0601, 0610, 0620, 0602, 0660, 0666};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char name[16];
    snprintf(name, sizeof(name), "k%o", (unsigned)bad[i]);
    const char *path = path_in(state, name);
    make_file(path, "secret", 6, bad[i]);
    struct aln_secret s;
    assert_int_equal(aln_keyfile_read(&s, path, 64), ALN_ERR_PERMS);
    assert_null(s.p);
  }
  /* Owner-only modes are fine, whatever the owner bits. */
  static const mode_t good[] = {0600, 0400, 0700};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    char name[16];
    snprintf(name, sizeof(name), "g%o", (unsigned)good[i]);
    const char *path = path_in(state, name);
    make_file(path, "secret", 6, good[i]);
    struct aln_secret s;
    assert_int_equal(aln_keyfile_read(&s, path, 64), ALN_OK);
    assert_memory_equal(s.p, "secret", 6);
    aln_secret_free(&s);
  }
}

static void test_read_refuses_symlink_and_special(void **state) {
  const char *real = path_in(state, "real");
  const char *link = path_in(state, "link");
  make_file(real, "secret", 6, 0600);
  assert_int_equal(symlink(real, link), 0);
  struct aln_secret s;
  assert_int_equal(aln_keyfile_read(&s, link, 64), ALN_ERR_PERMS);
  assert_null(s.p);

  const char *dir = path_in(state, "dir");
  assert_int_equal(mkdir(dir, 0700), 0);
  assert_int_equal(aln_keyfile_read(&s, dir, 64), ALN_ERR_PERMS);

  /* A FIFO with no writer: refused, and the read must not block on open. */
  const char *fifo = path_in(state, "fifo");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(aln_keyfile_read(&s, fifo, 64), ALN_ERR_PERMS);
  assert_null(s.p);
}

static void test_read_refuses_other_owner(void **state) {
  if (geteuid() != 0)
    skip(); /* only root can give a file away */
  const char *path = path_in(state, "theirs");
  make_file(path, "secret", 6, 0600);
  assert_int_equal(chown(path, 65534, 65534), 0);
  struct aln_secret s;
  assert_int_equal(aln_keyfile_read(&s, path, 64), ALN_ERR_PERMS);
  assert_null(s.p);
}

static void test_read_size_limit(void **state) {
  const char *path = path_in(state, "key");
  make_file(path, "0123456789", 10, 0600);
  struct aln_secret s;
  assert_int_equal(aln_keyfile_read(&s, path, 9), ALN_ERR_TOO_LARGE);
  assert_null(s.p);
  assert_int_equal(aln_keyfile_read(&s, path, 10), ALN_OK);
  assert_int_equal(s.len, 10);
  aln_secret_free(&s);

  const char *empty = path_in(state, "empty");
  make_file(empty, "", 0, 0600);
  assert_int_equal(aln_keyfile_read(&s, empty, 0), ALN_OK);
  assert_int_equal(s.len, 0);
  aln_secret_free(&s);
}

/* A public file: whole and NUL-terminated up to |max|, refused past it, absent
 * told apart from unreadable, and nothing handed out on error. */
static void test_read_public(void **state) {
  const char *path = path_in(state, "ca.pem");
  make_file(path, "0123456789", 10, 0644);
  uint8_t *buf = (uint8_t *)"untouched";
  size_t len = 7;
  assert_int_equal(aln_file_read_public(&buf, &len, path, 9), ALN_ERR_TOO_LARGE);
  assert_null(buf);
  assert_int_equal(len, 0);
  assert_int_equal(aln_file_read_public(&buf, &len, path, 10), ALN_OK);
  assert_int_equal(len, 10);
  assert_memory_equal(buf, "0123456789", 11); /* with its NUL */
  free(buf);
  assert_int_equal(aln_file_read_public(&buf, &len, path_in(state, "absent"), 10), ALN_ERR_NOT_FOUND);
  assert_null(buf);
  assert_int_equal(aln_file_read_public(&buf, &len, path_in(state, "."), 10), ALN_ERR_IO); /* a directory */
  assert_null(buf);
  const char *empty = path_in(state, "empty");
  make_file(empty, "", 0, 0644);
  assert_int_equal(aln_file_read_public(&buf, &len, empty, 10), ALN_OK);
  assert_int_equal(len, 0);
  assert_int_equal(buf[0], '\0');
  free(buf);
}

static void test_load_or_create(void **state) {
  const char *path = path_in(state, "kek");
  struct aln_secret a, b, c;
  assert_int_equal(aln_keyfile_load_or_create(&a, path, 32), ALN_OK);
  assert_int_equal(a.len, 32);
  assert_int_equal(mode_of(path), 0600);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_size, 32);

  assert_int_equal(aln_keyfile_load_or_create(&b, path, 32), ALN_OK);
  assert_int_equal(b.len, 32);
  assert_memory_equal(a.p, b.p, 32);

  /* A second file gets its own random key. */
  assert_int_equal(aln_keyfile_load_or_create(&c, path_in(state, "kek2"), 32), ALN_OK);
  assert_false(aln_ct_equal(a.p, a.len, c.p, c.len));
  aln_secret_free(&a);
  aln_secret_free(&b);
  aln_secret_free(&c);

  assert_int_equal(aln_keyfile_load_or_create(&a, path_in(state, "zero"), 0), ALN_ERR_USAGE);
}

static void test_load_or_create_refuses_existing_bad(void **state) {
  uint8_t buf[33];
  memset(buf, 0x11, sizeof(buf));
  const char *shortf = path_in(state, "short");
  const char *longf = path_in(state, "long");
  const char *open_mode = path_in(state, "open");
  make_file(shortf, buf, 31, 0600);
  make_file(longf, buf, 33, 0600);
  make_file(open_mode, buf, 32, 0644);
  struct aln_secret s;
  assert_int_equal(aln_keyfile_load_or_create(&s, shortf, 32), ALN_ERR_STORE);
  assert_null(s.p);
  assert_int_equal(aln_keyfile_load_or_create(&s, longf, 32), ALN_ERR_STORE);
  assert_null(s.p);
  assert_int_equal(aln_keyfile_load_or_create(&s, open_mode, 32), ALN_ERR_PERMS);
  assert_null(s.p);
  /* None of them was replaced. */
  struct stat sb;
  assert_int_equal(stat(shortf, &sb), 0);
  assert_int_equal(sb.st_size, 31);
  assert_int_equal(stat(longf, &sb), 0);
  assert_int_equal(sb.st_size, 33);
  assert_int_equal(mode_of(open_mode), 0644);
}

/* Many processes race to create the same key; every one must return the key that
 * ended up in the file (a loser that kept its own key would encrypt with a key
 * nobody can load again). */
static void test_load_or_create_race(void **state) {
  enum { N = 8, LEN = 32 };
  const char *path = path_in(state, "raced");
  int go[2], res[2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(res), 0);
  pid_t pids[N];
  for (int i = 0; i < N; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      char c;
      struct aln_secret s;
      close(go[1]);
      if (read(go[0], &c, 1) != 0) /* released when the parent closes go[1] */
        _exit(10);
      if (aln_keyfile_load_or_create(&s, path, LEN) != ALN_OK || s.len != LEN)
        _exit(11);
      if (write(res[1], s.p, LEN) != LEN)
        _exit(12);
      aln_secret_free(&s);
      _exit(0);
    }
  }
  close(go[0]);
  close(go[1]);
  close(res[1]);
  uint8_t keys[N][LEN];
  for (int i = 0; i < N; i++) {
    size_t got = 0;
    while (got < LEN) {
      ssize_t n = read(res[0], keys[i] + got, LEN - got);
      assert_true(n > 0);
      got += (size_t)n;
    }
  }
  close(res[0]);
  for (int i = 0; i < N; i++) {
    int status;
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  struct aln_secret file;
  assert_int_equal(aln_keyfile_read(&file, path, LEN), ALN_OK);
  assert_int_equal(file.len, LEN);
  for (int i = 0; i < N; i++)
    assert_memory_equal(keys[i], file.p, LEN);
  aln_secret_free(&file);
  assert_int_equal(count_entries(state), 1);
}

static void test_private_dir_ensure(void **state) {
  /* Created exactly 0700 under a permissive umask and under one so strict it would
   * leave the owner locked out. */
  const char *dir = path_in(state, "priv");
  mode_t old = umask(0);
  assert_int_equal(aln_private_dir_ensure(dir), ALN_OK);
  umask(0277);
  assert_int_equal(aln_private_dir_ensure(path_in(state, "priv2")), ALN_OK);
  umask(old);
  assert_int_equal(mode_of(dir), 0700);
  assert_int_equal(mode_of(path_in(state, "priv2")), 0700);
  assert_int_equal(aln_private_dir_ensure(dir), ALN_OK); /* idempotent */

  static const mode_t bad[] = {0755, 0750, 0701, 0710, 0770, 0777};
  const char *open_dir = path_in(state, "open");
  assert_int_equal(mkdir(open_dir, 0700), 0);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(chmod(open_dir, bad[i]), 0);
    assert_int_equal(aln_private_dir_ensure(open_dir), ALN_ERR_PERMS);
    assert_int_equal(mode_of(open_dir), bad[i]); /* refused, not silently fixed */
  }

  const char *link = path_in(state, "link");
  assert_int_equal(symlink(dir, link), 0);
  assert_int_equal(aln_private_dir_ensure(link), ALN_ERR_PERMS);
  const char *file = path_in(state, "file");
  make_file(file, "x", 1, 0600);
  assert_int_equal(aln_private_dir_ensure(file), ALN_ERR_PERMS);
  assert_int_equal(aln_private_dir_ensure(path_in(state, "missing/child")), ALN_ERR_IO);
}

static void test_hex_encode(void **state) {
  (void)state;
  static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
  char out[13];
  assert_int_equal(aln_hex_encode(out, sizeof(out), in, sizeof(in)), ALN_OK);
  assert_string_equal(out, "00017f80abff");
  memset(out, 'Z', sizeof(out));
  assert_int_equal(aln_hex_encode(out, 12, in, sizeof(in)), ALN_ERR_USAGE); /* no room for NUL */
  assert_int_equal(aln_hex_encode(out, 1, in, 0), ALN_OK);
  assert_string_equal(out, "");
  assert_int_equal(aln_hex_encode(out, 0, in, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_hex_encode(out, sizeof(out), in, SIZE_MAX), ALN_ERR_USAGE); /* 2*len overflows */

  /* Every byte value against the C library. */
  uint8_t all[256];
  char hex[513], want[3];
  for (int i = 0; i < 256; i++)
    all[i] = (uint8_t)i;
  assert_int_equal(aln_hex_encode(hex, sizeof(hex), all, sizeof(all)), ALN_OK);
  for (int i = 0; i < 256; i++) {
    snprintf(want, sizeof(want), "%02x", i);
    assert_memory_equal(hex + 2 * i, want, 2);
  }
  assert_int_equal(hex[512], '\0');
}

static void test_hex_decode(void **state) {
  (void)state;
  uint8_t out[6];
  assert_int_equal(aln_hex_decode(out, 6, "00017f80abff", 12), ALN_OK);
  static const uint8_t want[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
  assert_memory_equal(out, want, 6);
  /* Uppercase and mixed case are accepted. */
  memset(out, 0, sizeof(out));
  assert_int_equal(aln_hex_decode(out, 6, "00017F80aBFf", 12), ALN_OK);
  assert_memory_equal(out, want, 6);

  assert_int_equal(aln_hex_decode(out, 6, "00017f80abf", 11), ALN_ERR_MALFORMED);  /* odd */
  assert_int_equal(aln_hex_decode(out, 5, "00017f80abff", 12), ALN_ERR_MALFORMED); /* too long */
  assert_int_equal(aln_hex_decode(out, 6, "00017f80ab", 10), ALN_ERR_MALFORMED);   /* too short */
  assert_int_equal(aln_hex_decode(out, 0, "", 0), ALN_OK);
  assert_int_equal(aln_hex_decode(out, 3, "0x0102", 6), ALN_ERR_MALFORMED);
  assert_int_equal(aln_hex_decode(out, 3, "01 203", 6), ALN_ERR_MALFORMED);
  /* An embedded NUL inside the declared length is a bad character, not an end. */
  assert_int_equal(aln_hex_decode(out, 3,
                                  "01\0"
                                  "203",
                                  6),
                   ALN_ERR_MALFORMED);

  /* A bad character anywhere wipes the output: no partial key survives. */
  memset(out, 0xee, sizeof(out));
  assert_int_equal(aln_hex_decode(out, 6, "aabbccddeefg", 12), ALN_ERR_MALFORMED);
  for (size_t i = 0; i < 6; i++)
    assert_int_equal(out[i], 0);

  /* Every byte value in both nibble positions, against an independent reference. */
  const char *digits = "0123456789abcdefABCDEF";
  for (int c = 0; c < 256; c++) {
    int valid = c != 0 && strchr(digits, c) != NULL;
    char s[2] = {'a', (char)c};
    uint8_t v = 0;
    aln_status st = aln_hex_decode(&v, 1, s, 2);
    assert_int_equal(st, valid ? ALN_OK : ALN_ERR_MALFORMED);
    if (valid) {
      char ref[2] = {(char)c, 0};
      assert_int_equal(v, 0xa0 | (unsigned)strtoul(ref, NULL, 16));
    }
    char t[2] = {(char)c, '5'};
    st = aln_hex_decode(&v, 1, t, 2);
    assert_int_equal(st, valid ? ALN_OK : ALN_ERR_MALFORMED);
  }
}

static void test_hex_round_trip(void **state) {
  (void)state;
  uint8_t in[256], back[256];
  char hex[513];
  for (int i = 0; i < 256; i++)
    in[i] = (uint8_t)(255 - i);
  assert_int_equal(aln_hex_encode(hex, sizeof(hex), in, sizeof(in)), ALN_OK);
  assert_int_equal(aln_hex_decode(back, sizeof(back), hex, strlen(hex)), ALN_OK);
  assert_memory_equal(in, back, sizeof(in));
}

static void test_path_join(void **state) {
  (void)state;
  char out[PATH_MAX];
  assert_int_equal(aln_path_join(out, "/d", "kek", NULL), ALN_OK);
  assert_string_equal(out, "/d/kek");
  assert_int_equal(aln_path_join(out, "/d", "kek", ".next"), ALN_OK);
  assert_string_equal(out, "/d/kek.next");
  /* Too long for PATH_MAX is refused, never truncated into another path. */
  char *dir = malloc(PATH_MAX);
  assert_non_null(dir);
  memset(dir, 'a', PATH_MAX - 6);
  dir[PATH_MAX - 6] = '\0';
  assert_int_equal(aln_path_join(out, dir, "kek", NULL), ALN_OK); /* exactly PATH_MAX - 1 */
  assert_int_equal(aln_path_join(out, dir, "kek", ".next"), ALN_ERR_USAGE);
  free(dir);
  assert_int_equal(aln_path_join(out, NULL, "kek", NULL), ALN_ERR_USAGE);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_write_new_and_read),
      T(test_write_new_refuses_existing),
      T(test_replace),
      T(test_read_not_found),
      T(test_read_refuses_open_modes),
      T(test_read_refuses_symlink_and_special),
      T(test_read_refuses_other_owner),
      T(test_read_size_limit),
      T(test_read_public),
      T(test_load_or_create),
      T(test_load_or_create_refuses_existing_bad),
      T(test_load_or_create_race),
      T(test_private_dir_ensure),
      T(test_hex_encode),
      T(test_hex_decode),
      T(test_path_join),
      T(test_hex_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
