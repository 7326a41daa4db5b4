/* Tests for proto/secmem: secrets are zeroed, excluded from core dumps (checked in
 * the kernel's own view, /proc/self/smaps VmFlags "dd") and locked when the limit
 * allows ("lo"); zero-length and repeated frees are safe; allocation still works
 * with RLIMIT_MEMLOCK 0; ct_equal and memmem_count; and process_harden really sets
 * RLIMIT_CORE 0 and non-dumpable (in a forked child, so this process stays
 * debuggable). */
#include <linux/capability.h>
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
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rlimit zero = {0, 0};
    char flags[512];
    struct aln_secret s;
    if (setrlimit(RLIMIT_MEMLOCK, &zero) != 0 || drop_ipc_lock() != 0)
      _exit(10);
    if (aln_secret_new(&s, 64) != ALN_OK)
      _exit(11);
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
      cmocka_unit_test(test_secret_new),   cmocka_unit_test(test_secret_zero_length),
      cmocka_unit_test(test_secret_from),  cmocka_unit_test(test_secret_without_memlock),
      cmocka_unit_test(test_wipe),         cmocka_unit_test(test_ct_equal),
      cmocka_unit_test(test_memmem_count), cmocka_unit_test(test_process_harden),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
