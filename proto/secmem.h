/* Memory for secrets and process hardening. Secret buffers are mlock'ed, excluded
 * from core dumps (MADV_DONTDUMP) and wiped with OPENSSL_cleanse when freed. Secrets
 * of at most one page come from a small process-wide pool of such pages: a freed one
 * is wiped whole and kept, still locked and non-dumpable, for the next secret. */
#ifndef ALN_PROTO_SECMEM_H
#define ALN_PROTO_SECMEM_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

/* A secret byte string in locked memory. */
struct aln_secret {
  uint8_t *p;
  size_t len;
};

/* aln_secret_new allocates |len| bytes (len may be 0) of locked, non-dumpable,
 * zeroed memory into |out|. Returns ALN_ERR_NOMEM on failure. If mlock fails for
 * lack of RLIMIT_MEMLOCK the memory is still allocated, excluded from dumps and
 * wiped on free: locking is best effort, wiping is not. Free with aln_secret_free. */
aln_status aln_secret_new(struct aln_secret *out, size_t len) ALN_WUR;

/* aln_secret_from copies |len| bytes at |data| into a new secret (as aln_secret_new). */
aln_status aln_secret_from(struct aln_secret *out, const uint8_t *data, size_t len) ALN_WUR;

/* aln_secret_free wipes and releases |s| (a pooled page goes back to the pool,
 * wiped) and zeroes the struct; safe on a zeroed struct or twice. */
void aln_secret_free(struct aln_secret *s);

/* aln_wipe wipes |len| bytes at |p| in a way the compiler cannot elide. */
void aln_wipe(void *p, size_t len);

/* aln_ct_equal returns 1 if the two byte strings are equal, in time independent of
 * their contents (lengths are not secret), else 0. */
int aln_ct_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len);

/* aln_process_harden disables core dumps (RLIMIT_CORE 0, PR_SET_DUMPABLE 0). Every
 * program calls it first. Returns ALN_ERR_INTERNAL if either call fails. */
aln_status aln_process_harden(void) ALN_WUR;

/* aln_memmem_count returns how many non-overlapping times |needle| occurs in |hay|
 * (0 if needle_len is 0). Used by tests that look for leaked secrets. */
size_t aln_memmem_count(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t needle_len);

#endif
