/* Secret memory and process hardening. Each secret gets its own page-aligned,
 * page-rounded heap block so that mlock and MADV_DONTDUMP cover exactly its pages
 * and unlocking one secret can never unlock a neighbour sharing the page (the
 * approach of s2n's s2n_mem). Locking is best effort because RLIMIT_MEMLOCK is often
 * small; exclusion from core dumps and wiping are not. */
#include "proto/secmem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

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

aln_status aln_secret_new(struct aln_secret *out, size_t len) {
  memset(out, 0, sizeof(*out));
  size_t page = page_size();
  size_t span = secret_span(len, page);
  ALN_ENSURE(span != 0, ALN_ERR_NOMEM);
  void *p = NULL;
  ALN_ENSURE(posix_memalign(&p, page, span) == 0, ALN_ERR_NOMEM);
  if (madvise(p, span, MADV_DONTDUMP) != 0) {
    free(p);
    return ALN_ERR_NOMEM;
  }
  /* Best effort: fails with EPERM/ENOMEM under a small RLIMIT_MEMLOCK. */
  (void)mlock(p, span);
  memset(p, 0, span);
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
    size_t span = secret_span(s->len, page_size());
    OPENSSL_cleanse(s->p, span);
    /* Give the pages back to the allocator in their ordinary state. */
    (void)munlock(s->p, span);
    (void)madvise(s->p, span, MADV_DODUMP);
    free(s->p);
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
