/* A set of positive 64-bit row ids: open addressing with linear probing and
 * backward-shift deletion (no tombstones), grown at half load. The escrow keeps the
 * ids of its live credential rows here, authenticated at start against the state
 * MAC, so a row made live behind its back (an old row restored from a backup, say)
 * is caught on the first unseal rather than trusted. About 16 bytes per id. */
#ifndef ALN_ENCLAVE_IDSET_H
#define ALN_ENCLAVE_IDSET_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

struct aln_idset {
  uint64_t *slot; /* 0 = empty */
  size_t cap;     /* a power of two, or 0 */
  size_t num;
};

/* aln_idset_add inserts |id| (> 0); ALN_ERR_EXISTS if it is already there,
 * ALN_ERR_NOMEM if growing fails (the set is then unchanged). */
aln_status aln_idset_add(struct aln_idset *set, uint64_t id) ALN_WUR;

/* aln_idset_remove deletes |id|; ALN_ERR_NOT_FOUND if it is not there. */
aln_status aln_idset_remove(struct aln_idset *set, uint64_t id) ALN_WUR;

/* aln_idset_contains says whether |id| is in the set. */
int aln_idset_contains(const struct aln_idset *set, uint64_t id);

/* aln_idset_cleanup frees the table and empties the set; safe on a zeroed set. */
void aln_idset_cleanup(struct aln_idset *set);

#endif
