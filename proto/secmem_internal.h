/* What proto/secmem.c exposes to its own tests only: the secret page pool. */
#ifndef ALN_PROTO_SECMEM_INTERNAL_H
#define ALN_PROTO_SECMEM_INTERNAL_H

#include <stddef.h>

/* The most single-page secrets the pool ever owns; more take the unpooled path. */
#define ALN_SECMEM_POOL_MAX 64

/* aln_secmem_pool_stats sets *num_owned to the pages the pool owns (never more than
 * ALN_SECMEM_POOL_MAX) and *num_free to how many of them are free. */
void aln_secmem_pool_stats(size_t *num_owned, size_t *num_free);

#endif
