/* Tests for proto/secmem: secrets are zeroed, excluded from core dumps (checked in
 * the kernel's own view, /proc/self/smaps VmFlags "dd") and locked when the limit
 * allows ("lo"); zero-length and repeated frees are safe; allocation still works
 * with RLIMIT_MEMLOCK 0, also for a pooled page inherited across fork; the page
 * pool hands a freed page back zeroed (even where a caller wrote past its length)
 * and still protected, never grows past ALN_SECMEM_POOL_MAX, and survives many
 * threads allocating at once (under ASan a free pooled page is poisoned); ct_equal
 * and memmem_count; and process_harden really sets RLIMIT_CORE 0 and non-dumpable
 * (in a forked child, so this process stays debuggable). */
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/secmem.h"
#include "proto/secmem_internal.h"

/* vma_flags copies into |out| the VmFlags line of the mapping holding |addr|;
 * returns 0 if found. */
static int vma_flags(const void *addr, char *out, size_t out_cap) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL)
    return -1;
  char *line = NULL;
  size_t cap = 0;
  int in_vma = 0, rc = -1;
  uintptr_t a = (uintptr_t)addr;
  while (getline(&line, &cap, f) > 0) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      in_vma = a >= lo && a < hi;
    } else if (in_vma && strncmp(line, "VmFlags:", 8) == 0) {
      snprintf(out, out_cap, "%s", line + 8);
      rc = 0;
      break;
    }
  }
  free(line);
  fclose(f);
  return rc;
}

static int has_flag(const char *flags, const char *flag) {
  char want[8];
  snprintf(want, sizeof(want), " %s", flag);
  for (const char *p = flags; (p = strstr(p, want)) != NULL; p++)
    if (p[3] == ' ' || p[3] == '\n' || p[3] == '\0')
      return 1;
  return 0;
}

#if defined(__SANITIZE_ADDRESS__)
#define ALN_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALN_TEST_ASAN 1
#endif
#endif

/* memlock_allows reports whether mlock of |len| bytes should succeed here. ASan
 * intercepts mlock as a no-op, so under ASan locking cannot be observed. */
static int memlock_allows(size_t len) {
#ifdef ALN_TEST_ASAN
  (void)len;
  return 0;
#else
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
    return 0;
  return geteuid() == 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 4 * len + 65536;
#endif
}

static void assert_dontdump(const void *p, int expect_locked) {
  char flags[512];
  assert_int_equal(vma_flags(p, flags, sizeof(flags)), 0);
  if (!has_flag(flags, "dd"))
    fail_msg("secret at %p is dumpable: VmFlags:%s", p, flags);
  if (expect_locked && !has_flag(flags, "lo"))
    fail_msg("secret at %p not locked: VmFlags:%s", p, flags);
}

static int all_zero(const uint8_t *p, size_t len) {
  uint8_t acc = 0;
  for (size_t i = 0; i < len; i++)
    acc |= p[i];
  return acc == 0;
}

static void test_secret_new(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 32, 4095, 4096, 4097, 3 * 4096 + 1};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    struct aln_secret s;
    size_t len = sizes[i];
    assert_int_equal(aln_secret_new(&s, len), ALN_OK);
    assert_non_null(s.p);
    assert_int_equal(s.len, len);
    assert_true(all_zero(s.p, s.len));
    memset(s.p, 0x5a, s.len); /* the whole length is writable */
    /* First and last byte: a multi-page secret is protected end to end. */
    assert_dontdump(s.p, memlock_allows(len));
    assert_dontdump(s.p + len - 1, memlock_allows(len));
    aln_secret_free(&s);
    assert_null(s.p);
    assert_int_equal(s.len, 0);
  }
}

static void test_secret_zero_length(void **state) {
  (void)state;
  struct aln_secret s;
  assert_int_equal(aln_secret_new(&s, 0), ALN_OK);
  assert_non_null(s.p);
  assert_int_equal(s.len, 0);
  assert_dontdump(s.p, 0);
  aln_secret_free(&s);
  assert_null(s.p);
  aln_secret_free(&s); /* twice is a no-op */
  struct aln_secret z = {0};
  aln_secret_free(&z);
  aln_secret_free(NULL);
  assert_int_equal(aln_secret_from(&s, NULL, 0), ALN_OK);
  assert_non_null(s.p);
  aln_secret_free(&s);
}

static void test_secret_from(void **state) {
  (void)state;
  uint8_t src[40];
  for (size_t i = 0; i < sizeof(src); i++)
    src[i] = (uint8_t)(i * 7 + 1);
  struct aln_secret s;
  assert_int_equal(aln_secret_from(&s, src, sizeof(src)), ALN_OK);
  assert_int_equal(s.len, sizeof(src));
  assert_ptr_not_equal(s.p, src);
  assert_memory_equal(s.p, src, sizeof(src));
  src[0] ^= 0xff; /* a copy, not a view */
  assert_int_not_equal(s.p[0], src[0]);
  aln_secret_free(&s);

  assert_int_equal(aln_secret_from(&s, NULL, 5), ALN_ERR_USAGE);
  assert_null(s.p);
  assert_int_equal(s.len, 0);
}

/* drop_ipc_lock removes CAP_IPC_LOCK, which would let root mlock past any limit. */
static int drop_ipc_lock(void) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0)
    return -1;
  data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
  data[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
  return (int)syscall(SYS_capset, &hdr, data);
}

/* Locking is best effort: with RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK mlock fails,
 * yet secrets must still be allocated and kept out of dumps. */
static void test_secret_without_memlock(void **state) {
  (void)state;
  /* Leave a free page in the pool, locked here, for the child to be handed. */
  struct aln_secret warm;
  assert_int_equal(aln_secret_new(&warm, 64), ALN_OK);
  aln_secret_free(&warm);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rlimit zero = {0, 0};
    char flags[512];
    struct aln_secret s;
    size_t owned0, free0, owned1, free1;
    if (setrlimit(RLIMIT_MEMLOCK, &zero) != 0 || drop_ipc_lock() != 0)
      _exit(10);
    aln_secmem_pool_stats(&owned0, &free0);
    if (free0 == 0)
      _exit(14);
    if (aln_secret_new(&s, 64) != ALN_OK)
      _exit(11);
    /* It came from the pool: mlock is not inherited, so the pool must not still
     * count it as locked (checked below through "lo"). */
    aln_secmem_pool_stats(&owned1, &free1);
    if (owned1 != owned0 || free1 != free0 - 1)
      _exit(15);
    if (vma_flags(s.p, flags, sizeof(flags)) != 0 || !has_flag(flags, "dd"))
      _exit(12);
    if (has_flag(flags, "lo")) /* the failure path really was taken */
      _exit(13);
    memset(s.p, 1, s.len);
    aln_secret_free(&s);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* mlock is not inherited across fork, so a child handed a page the parent pooled
 * locked must lock it again itself (where the limit allows), and "dd" still holds. */
static void test_pool_relocks_after_fork(void **state) {
  (void)state;
  struct aln_secret warm;
  assert_int_equal(aln_secret_new(&warm, 64), ALN_OK);
  aln_secret_free(&warm);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    size_t owned0, free0, owned1, free1;
    char flags[512];
    struct aln_secret s;
    aln_secmem_pool_stats(&owned0, &free0);
    if (free0 == 0)
      _exit(10);
    if (aln_secret_new(&s, 64) != ALN_OK)
      _exit(11);
    aln_secmem_pool_stats(&owned1, &free1);
    if (owned1 != owned0 || free1 != free0 - 1) /* a pooled page */
      _exit(12);
    if (vma_flags(s.p, flags, sizeof(flags)) != 0 || !has_flag(flags, "dd"))
      _exit(13);
    if (memlock_allows(4096) && !has_flag(flags, "lo"))
      _exit(14);
    aln_secret_free(&s);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* take_all_free empties the pool's free list into |held| (at most |cap|) and
 * returns how many it took. */
static size_t take_all_free(struct aln_secret *held, size_t cap) {
  size_t owned, num_free, n = 0;
  aln_secmem_pool_stats(&owned, &num_free);
  for (; n < num_free && n < cap; n++)
    assert_int_equal(aln_secret_new(&held[n], 1), ALN_OK);
  aln_secmem_pool_stats(&owned, &num_free);
  assert_int_equal(num_free, 0);
  return n;
}

/* A freed page goes back to the pool and the next secret gets that very page:
 * zeroed whole, even where the previous owner wrote past its length, and still
 * non-dumpable and locked. */
static void test_pool_reuse_zeroed(void **state) {
  (void)state;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  struct aln_secret held[ALN_SECMEM_POOL_MAX];
  size_t num_held = take_all_free(held, ALN_SECMEM_POOL_MAX);
  size_t owned0, free0, owned, num_free;
  aln_secmem_pool_stats(&owned0, &free0);

  struct aln_secret s;
  assert_int_equal(aln_secret_new(&s, page), ALN_OK);
  uint8_t *first = s.p;
  memset(s.p, 0xa5, page);
  aln_secret_free(&s);
  aln_secmem_pool_stats(&owned, &num_free);
  assert_int_equal(num_free, 1); /* kept, not released */

  assert_int_equal(aln_secret_new(&s, page), ALN_OK);
  assert_ptr_equal(s.p, first); /* the only free page: reuse really happened */
  assert_true(all_zero(s.p, page));
  assert_dontdump(s.p, memlock_allows(page));

  /* A 10-byte secret whose owner scribbled over the rest of its page. */
  aln_secret_free(&s);
  assert_int_equal(aln_secret_new(&s, 10), ALN_OK);
  assert_ptr_equal(s.p, first);
  assert_true(all_zero(s.p, page));
  memset(s.p, 0x3c, page);
  aln_secret_free(&s);
  assert_int_equal(aln_secret_new(&s, page), ALN_OK);
  assert_ptr_equal(s.p, first);
  assert_true(all_zero(s.p, page));
  aln_secret_free(&s);

  /* A secret larger than a page never takes or fills a pooled page. */
  assert_int_equal(aln_secret_new(&s, page + 1), ALN_OK);
  assert_true(all_zero(s.p, s.len));
  aln_secret_free(&s);
  aln_secmem_pool_stats(&owned, &num_free);
  assert_true(owned <= owned0 + 1);
  assert_int_equal(num_free, 1);

  for (size_t i = 0; i < num_held; i++)
    aln_secret_free(&held[i]);
}

/* 200 live single-page secrets: the pool makes at most ALN_SECMEM_POOL_MAX pages and
 * the rest take the unpooled path, equally protected; after all are freed the pool
 * holds exactly its bound, and a second round does not grow it. */
static void test_pool_bounded(void **state) {
  (void)state;
  enum { N = 200 };
  static struct aln_secret s[N];
  size_t owned, num_free;
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < N; i++) {
      assert_int_equal(aln_secret_new(&s[i], 32), ALN_OK);
      assert_true(all_zero(s[i].p, 32));
      memset(s[i].p, (int)i + 1, 32);
    }
    aln_secmem_pool_stats(&owned, &num_free);
    assert_int_equal(owned, ALN_SECMEM_POOL_MAX);
    assert_int_equal(num_free, 0);
    assert_dontdump(s[0].p, memlock_allows(N * 4096));
    assert_dontdump(s[N - 1].p, memlock_allows(N * 4096)); /* an unpooled one */
    for (size_t i = 0; i < N; i++) {
      assert_int_equal(s[i].p[31], (uint8_t)(i + 1)); /* no page handed out twice */
      aln_secret_free(&s[i]);
    }
    aln_secmem_pool_stats(&owned, &num_free);
    assert_int_equal(owned, ALN_SECMEM_POOL_MAX);
    assert_int_equal(num_free, ALN_SECMEM_POOL_MAX);
  }
}

#define POOL_THREADS 8
#define POOL_ITERS 3000

/* pool_worker allocates and frees secrets of assorted sizes, checking each arrives
 * zeroed and that nobody else writes to it while it is held. Returns the number of
 * failures. */
static void *pool_worker(void *arg) {
  static const size_t sizes[] = {0, 1, 32, 4095, 4096, 4097, 8192};
  uint8_t tag = (uint8_t)(uintptr_t)arg;
  uintptr_t failures = 0;
  unsigned seed = tag;
  for (int it = 0; it < POOL_ITERS; it++) {
    struct aln_secret s[3];
    int n = 1 + (int)(rand_r(&seed) % 3);
    for (int i = 0; i < n; i++) {
      size_t len = sizes[rand_r(&seed) % (sizeof(sizes) / sizeof(sizes[0]))];
      if (aln_secret_new(&s[i], len) != ALN_OK || s[i].p == NULL) {
        failures++;
        n = i;
        break;
      }
      if (!all_zero(s[i].p, len))
        failures++;
      memset(s[i].p, tag, len);
    }
    if (it % 16 == 0)
      sched_yield();
    for (int i = 0; i < n; i++) {
      for (size_t j = 0; j < s[i].len; j++)
        if (s[i].p[j] != tag) {
          failures++;
          break;
        }
      aln_secret_free(&s[i]);
    }
  }
  return (void *)failures;
}

static void test_pool_threads(void **state) {
  (void)state;
  pthread_t th[POOL_THREADS];
  for (uintptr_t i = 0; i < POOL_THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, pool_worker, (void *)(i + 1)), 0);
  for (int i = 0; i < POOL_THREADS; i++) {
    void *failures = NULL;
    assert_int_equal(pthread_join(th[i], &failures), 0);
    assert_int_equal((uintptr_t)failures, 0);
  }
  size_t owned, num_free;
  aln_secmem_pool_stats(&owned, &num_free);
  assert_true(owned <= ALN_SECMEM_POOL_MAX);
  assert_int_equal(num_free, owned); /* every page came back */
}

static void test_wipe(void **state) {
  (void)state;
  uint8_t buf[33];
  memset(buf, 0xa5, sizeof(buf));
  aln_wipe(buf + 1, sizeof(buf) - 2);
  assert_true(all_zero(buf + 1, sizeof(buf) - 2));
  assert_int_equal(buf[0], 0xa5);
  assert_int_equal(buf[sizeof(buf) - 1], 0xa5);
  aln_wipe(NULL, 10);
  aln_wipe(buf, 0);
  assert_int_equal(buf[0], 0xa5);
}

static void test_ct_equal(void **state) {
  (void)state;
  const uint8_t a[] = "0123456789abcdef";
  uint8_t b[sizeof(a)];
  memcpy(b, a, sizeof(a));
  assert_int_equal(aln_ct_equal(a, 16, b, 16), 1);
  b[0] ^= 1;
  assert_int_equal(aln_ct_equal(a, 16, b, 16), 0);
  b[0] ^= 1;
  b[15] ^= 0x80;
  assert_int_equal(aln_ct_equal(a, 16, b, 16), 0);
  b[15] ^= 0x80;
  /* A prefix is not equal: lengths count. */
  assert_int_equal(aln_ct_equal(a, 15, b, 16), 0);
  assert_int_equal(aln_ct_equal(a, 16, b, 15), 0);
  assert_int_equal(aln_ct_equal(a, 0, b, 0), 1);
  assert_int_equal(aln_ct_equal(NULL, 0, NULL, 0), 1);
  assert_int_equal(aln_ct_equal(a, 0, b, 1), 0);
}

static void test_memmem_count(void **state) {
  (void)state;
  const uint8_t *h = (const uint8_t *)"aaaa";
  assert_int_equal(aln_memmem_count(h, 4, (const uint8_t *)"aa", 2), 2); /* non-overlapping */
  assert_int_equal(aln_memmem_count(h, 3, (const uint8_t *)"aa", 2), 1);
  assert_int_equal(aln_memmem_count(h, 4, (const uint8_t *)"a", 1), 4);
  assert_int_equal(aln_memmem_count(h, 4, (const uint8_t *)"aaaa", 4), 1);
  assert_int_equal(aln_memmem_count(h, 4, (const uint8_t *)"aaaaa", 5), 0);
  assert_int_equal(aln_memmem_count(h, 4, (const uint8_t *)"", 0), 0);
  assert_int_equal(aln_memmem_count(h, 0, (const uint8_t *)"a", 1), 0);
  assert_int_equal(aln_memmem_count(NULL, 0, (const uint8_t *)"a", 1), 0);
  /* Binary bytes; "s k s 0" in the middle is a near miss that must not count. */
  static const uint8_t hay[] = {0, 's', 'k', 0, 'x', 's', 'k', 's', 0, 's', 'k', 0};
  static const uint8_t needle[] = {'s', 'k', 0};
  assert_int_equal(aln_memmem_count(hay, sizeof(hay), needle, sizeof(needle)), 2);
  assert_int_equal(aln_memmem_count(hay + 2, sizeof(hay) - 2, needle, sizeof(needle)), 1);
  static const uint8_t edge[] = {'s', 'k', 0, 'q', 's', 'k', 0};
  assert_int_equal(aln_memmem_count(edge, sizeof(edge), needle, sizeof(needle)), 2);
  assert_int_equal(aln_memmem_count(edge, sizeof(edge) - 1, needle, sizeof(needle)), 1);
}

/* Child exit codes name the failed check. */
static int harden_child(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_CORE, &rl) != 0)
    return 10;
  /* Make sure there is something to disable, so the test cannot pass vacuously. */
  if (rl.rlim_max != 0) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
      return 11;
  }
  if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1)
    return 12;
  if (aln_process_harden() != ALN_OK)
    return 13;
  if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0)
    return 14;
  if (rl.rlim_max != 0)
    return 15;
  if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
    return 16;
  return 0;
}

static void test_process_harden(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(harden_child());
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  /* The parent was not touched. */
  assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_secret_new),
      cmocka_unit_test(test_secret_zero_length),
      cmocka_unit_test(test_secret_from),
      cmocka_unit_test(test_secret_without_memlock),
      cmocka_unit_test(test_pool_reuse_zeroed),
      cmocka_unit_test(test_pool_bounded),
      cmocka_unit_test(test_pool_threads),
      cmocka_unit_test(test_pool_relocks_after_fork),
      cmocka_unit_test(test_wipe),
      cmocka_unit_test(test_ct_equal),
      cmocka_unit_test(test_memmem_count),
      cmocka_unit_test(test_process_harden),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
