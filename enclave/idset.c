/* Linear probing keeps each lookup to one or two cache lines at half load; the
 * backward shift on removal keeps every probe sequence unbroken without tombstones,
 * so a set that sees many puts and revokes never degrades. */
#include "enclave/idset.h"

#include <stdlib.h>

#define IDSET_MIN_CAP 64

/* A 64-bit finalizer (from splitmix64): row ids are sequential, and their low bits
 * alone would cluster. Ids are not attacker-chosen in any way that matters here:
 * the worst case is a slower probe, never a wrong answer. */
static size_t idset_hash(uint64_t id, size_t cap) {
  id ^= id >> 30;
  id *= 0xbf58476d1ce4e5b9ULL;
  id ^= id >> 27;
  id *= 0x94d049bb133111ebULL;
  id ^= id >> 31;
  return (size_t)id & (cap - 1);
}

/* idset_find returns the slot holding |id|, or the empty slot where it would go. */
static size_t idset_find(const struct aln_idset *set, uint64_t id) {
  size_t i = idset_hash(id, set->cap);
  while (set->slot[i] != 0 && set->slot[i] != id)
    i = (i + 1) & (set->cap - 1);
  return i;
}

static aln_status idset_grow(struct aln_idset *set) {
  size_t cap = set->cap == 0 ? IDSET_MIN_CAP : set->cap * 2;
  ALN_ENSURE(cap > set->cap && cap <= SIZE_MAX / sizeof(uint64_t), ALN_ERR_NOMEM);
  struct aln_idset grown = {.slot = calloc(cap, sizeof(uint64_t)), .cap = cap, .num = set->num};
  ALN_ENSURE(grown.slot != NULL, ALN_ERR_NOMEM);
  for (size_t i = 0; i < set->cap; i++) {
    if (set->slot[i] != 0)
      grown.slot[idset_find(&grown, set->slot[i])] = set->slot[i];
  }
  free(set->slot);
  *set = grown;
  return ALN_OK;
}

aln_status aln_idset_add(struct aln_idset *set, uint64_t id) {
  ALN_ENSURE(set != NULL && id != 0, ALN_ERR_USAGE);
  if (set->cap == 0 || (set->num + 1) * 2 > set->cap)
    ALN_GUARD(idset_grow(set));
  size_t i = idset_find(set, id);
  ALN_ENSURE(set->slot[i] == 0, ALN_ERR_EXISTS);
  set->slot[i] = id;
  set->num++;
  return ALN_OK;
}

int aln_idset_contains(const struct aln_idset *set, uint64_t id) {
  if (set == NULL || set->cap == 0 || id == 0)
    return 0;
  return set->slot[idset_find(set, id)] == id;
}

aln_status aln_idset_remove(struct aln_idset *set, uint64_t id) {
  ALN_ENSURE(set != NULL && id != 0, ALN_ERR_USAGE);
  ALN_ENSURE(aln_idset_contains(set, id), ALN_ERR_NOT_FOUND);
  size_t mask = set->cap - 1;
  size_t hole = idset_find(set, id);
  set->slot[hole] = 0;
  set->num--;
  /* Pull back each later entry of the cluster whose home is not between the hole
   * and its slot (cyclically), so every entry stays reachable from its home. */
  for (size_t j = (hole + 1) & mask; set->slot[j] != 0; j = (j + 1) & mask) {
    size_t home = idset_hash(set->slot[j], set->cap);
    int reachable = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (reachable)
      continue;
    set->slot[hole] = set->slot[j];
    set->slot[j] = 0;
    hole = j;
  }
  return ALN_OK;
}

void aln_idset_cleanup(struct aln_idset *set) {
  if (set == NULL)
    return;
  free(set->slot);
  set->slot = NULL;
  set->cap = 0;
  set->num = 0;
}
