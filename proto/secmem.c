/* Secret memory and process hardening. Each secret gets its own page-aligned,
 * page-rounded heap block so that mlock and MADV_DONTDUMP cover exactly its pages
 * and unlocking one secret can never unlock a neighbour sharing the page (the
 * approach of s2n's s2n_mem). Locking is best effort because RLIMIT_MEMLOCK is often
 * small; exclusion from core dumps and wiping are not.
 *
 * Preparing and releasing a page costs several system calls (mlock, munlock, two
 * madvise), which dominated short-lived secrets such as a data key, so single-page
 * secrets come from a small pool: at most ALN_SECMEM_POOL_MAX pages, made like any
 * other secret page and kept (still non-dumpable, still locked) after they are wiped
 * on free. The pool records which of its pages mlock actually locked and hands out
 * locked pages first, so a pooled secret is never less locked than a fresh one would
 * be; it never gives pages back, which bounds it. Larger secrets, and single-page
 * ones while all pooled pages are in use, take the original path. */
#include "proto/secmem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "proto/secmem_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define SECMEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECMEM_ASAN 1
#endif
#endif
#ifdef SECMEM_ASAN
#include <sanitizer/asan_interface.h>
/* A free pooled page is poisoned, so ASan still reports a use after free. */
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct pool_page {
  uint8_t *p;
  int locked; /* mlock succeeded (in this process) */
};

/* Every page the pool owns: free ones in page[0, num_free), in use ones in
 * page[num_free, num). */
static struct {
  pthread_mutex_t mu;
  struct pool_page page[ALN_SECMEM_POOL_MAX];
  size_t num, num_free;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static int pool_usable;

/* secret_span returns the bytes actually reserved for a secret of |len| bytes: at
 * least one page, rounded up to whole pages; 0 on overflow. */
static size_t secret_span(size_t len, size_t page) {
  size_t span;
  if (len == 0)
    return page;
  if (__builtin_add_overflow(len, page - 1, &span))
    return 0;
  return span - span % page;
}

static size_t page_size(void) {
  long ps = sysconf(_SC_PAGESIZE);
  return ps > 0 ? (size_t)ps : 4096;
}

/* span_new returns |span| bytes of page-aligned, non-dumpable, zeroed memory (NULL
 * if out of memory) and says in *locked whether mlock took. */
static uint8_t *span_new(size_t span, size_t page, int *locked) {
  void *p = NULL;
  if (posix_memalign(&p, page, span) != 0)
    return NULL;
  if (madvise(p, span, MADV_DONTDUMP) != 0) {
    free(p);
    return NULL;
  }
  /* Best effort: fails with EPERM/ENOMEM under a small RLIMIT_MEMLOCK. */
  *locked = mlock(p, span) == 0;
  memset(p, 0, span);
  return p;
}

/* span_free releases wiped memory from span_new, giving the pages back to the
 * allocator in their ordinary state. */
static void span_free(uint8_t *p, size_t span) {
  (void)munlock(p, span);
  (void)madvise(p, span, MADV_DODUMP);
  free(p);
}

/* POSIX's own recipe for a mutex across fork: held over the fork, released on both
 * sides. mlock is not inherited, so the child's copies of the pages are unlocked;
 * they are locked again (best effort) when next handed out. */
static void pool_prepare(void) {
  pthread_mutex_lock(&pool.mu);
}

static void pool_parent(void) {
  pthread_mutex_unlock(&pool.mu);
}

static void pool_child(void) {
  for (size_t i = 0; i < pool.num; i++)
    pool.page[i].locked = 0;
  pthread_mutex_unlock(&pool.mu);
}

static void pool_init(void) {
  /* Without the fork handlers a child could inherit a held mutex: no pool then. */
  pool_usable = pthread_atfork(pool_prepare, pool_parent, pool_child) == 0;
}

/* pool_take returns a zeroed, non-dumpable page from the pool, making one if the
 * pool is below its bound; NULL if every pooled page is in use (or none can be
 * made). */
static uint8_t *pool_take(size_t page) {
  uint8_t *p = NULL;
  if (pthread_once(&pool_once, pool_init) != 0 || !pool_usable)
    return NULL;
  pthread_mutex_lock(&pool.mu);
  if (pool.num_free > 0) {
    /* Hand out a locked page if there is one: an unlocked one may have failed to
     * lock only because the idle locked pages hold the RLIMIT_MEMLOCK budget. */
    size_t top = pool.num_free - 1, i = top;
    while (i > 0 && !pool.page[i].locked)
      i--;
    if (pool.page[i].locked && i != top) {
      struct pool_page t = pool.page[i];
      pool.page[i] = pool.page[top];
      pool.page[top] = t;
    }
    pool.num_free--; /* page[top] is now the first in-use page */
    struct pool_page *pp = &pool.page[top];
    POOL_UNPOISON(pp->p, page);
    if (!pp->locked)
      pp->locked = mlock(pp->p, page) == 0;
    p = pp->p;
  } else if (pool.num < ALN_SECMEM_POOL_MAX) {
    int locked = 0;
    p = span_new(page, page, &locked);
    if (p != NULL)
      pool.page[pool.num++] = (struct pool_page){p, locked};
  }
  pthread_mutex_unlock(&pool.mu);
  return p;
}

/* pool_give takes back the wiped page |p| if the pool owns it and returns 1; 0 if
 * |p| is not a pooled page. */
static int pool_give(uint8_t *p, size_t page) {
  int found = 0;
  pthread_mutex_lock(&pool.mu);
  for (size_t i = pool.num_free; i < pool.num; i++) {
    if (pool.page[i].p != p)
      continue;
    struct pool_page t = pool.page[i];
    pool.page[i] = pool.page[pool.num_free];
    pool.page[pool.num_free++] = t;
    POOL_POISON(p, page);
    found = 1;
    break;
  }
  pthread_mutex_unlock(&pool.mu);
  return found;
}

void aln_secmem_pool_stats(size_t *num_owned, size_t *num_free) {
  pthread_mutex_lock(&pool.mu);
  *num_owned = pool.num;
  *num_free = pool.num_free;
  pthread_mutex_unlock(&pool.mu);
}

aln_status aln_secret_new(struct aln_secret *out, size_t len) {
  memset(out, 0, sizeof(*out));
  size_t page = page_size();
  size_t span = secret_span(len, page);
  ALN_ENSURE(span != 0, ALN_ERR_NOMEM);
  uint8_t *p = span == page ? pool_take(page) : NULL;
  if (p == NULL) {
    int locked = 0;
    p = span_new(span, page, &locked);
  }
  ALN_ENSURE(p != NULL, ALN_ERR_NOMEM);
  out->p = p;
  out->len = len;
  return ALN_OK;
}

aln_status aln_secret_from(struct aln_secret *out, const uint8_t *data, size_t len) {
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(data != NULL || len == 0, ALN_ERR_USAGE);
  ALN_GUARD(aln_secret_new(out, len));
  if (len > 0)
    memcpy(out->p, data, len);
  return ALN_OK;
}

void aln_secret_free(struct aln_secret *s) {
  if (s == NULL)
    return;
  if (s->p != NULL) {
    size_t page = page_size();
    size_t span = secret_span(s->len, page);
    /* The whole span, not just len: a pooled page is reused whole and must come
     * back zeroed. Past |len| only a caller's bug can have written, so that part is
     * cleared with explicit_bzero (vectorized, unlike OPENSSL_cleanse's word loop,
     * which took a tenth of an unseal on a whole page; neither can be elided). */
    OPENSSL_cleanse(s->p, s->len);
    explicit_bzero(s->p + s->len, span - s->len);
    if (span != page || !pool_give(s->p, page))
      span_free(s->p, span);
  }
  s->p = NULL;
  s->len = 0;
}

void aln_wipe(void *p, size_t len) {
  if (p != NULL && len > 0)
    OPENSSL_cleanse(p, len);
}

int aln_ct_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
  if (a_len != b_len)
    return 0;
  if (a_len == 0)
    return 1;
  return CRYPTO_memcmp(a, b, a_len) == 0;
}

aln_status aln_process_harden(void) {
  /* Hard limit 0 too, so nothing later in the process can raise it again. */
  const struct rlimit zero = {0, 0};
  ALN_ENSURE(setrlimit(RLIMIT_CORE, &zero) == 0, ALN_ERR_INTERNAL);
  /* Non-dumpable also blocks ptrace attach and /proc/self/mem reads by same-uid
   * processes. */
  ALN_ENSURE(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0, ALN_ERR_INTERNAL);
  return ALN_OK;
}

size_t aln_memmem_count(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t needle_len) {
  size_t count = 0;
  if (needle_len == 0 || hay == NULL || needle == NULL)
    return 0;
  while (hay_len >= needle_len) {
    const uint8_t *hit = memmem(hay, hay_len, needle, needle_len);
    if (hit == NULL)
      break;
    count++;
    size_t skip = (size_t)(hit - hay) + needle_len;
    hay += skip;
    hay_len -= skip;
  }
  return count;
}
