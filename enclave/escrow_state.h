/* The escrow's state MAC: the database file is untrusted storage, so besides each
 * record's own authentication the enclave authenticates *which* records and hosts
 * exist, and how far the counters and the audit chain have come.
 *
 *   K_state  = HMAC-SHA256(KEK, "aileron-state-key-v1")
 *   kek_id   = HMAC-SHA256(KEK, "aileron-kek-id-v1")[0..16)   (stored; names the KEK)
 *   element  = HMAC-SHA256(K_state, "C" || u64 id || u32 version || u32 kind ||
 *                                   u32 len || name)          for each live credential
 *            | HMAC-SHA256(K_state, "H" || spki_hash[32])      for each enrolled host
 *   digest   = XOR of every element (so one write updates it in O(1))
 *   mac      = HMAC-SHA256(K_state, "aileron-state-v1" || u64 epoch || u64 generation
 *                          || digest || u64 audit_seq || audit_head[32])
 *
 * A XOR of PRF outputs is a secure set digest as long as the elements are distinct
 * and the key unknown (the XOR-MAC construction of Bellare, Guérin and Rogaway): the
 * database holds only the MAC, never the digest or an element, so an editor of the
 * file cannot aim a forged set at a stored MAC. A restored row, a dropped or added
 * host, an edited counter or a truncated audit chain changes the recomputed MAC. */
#ifndef ALN_ENCLAVE_ESCROW_STATE_H
#define ALN_ENCLAVE_ESCROW_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_STATE_LEN 32
#define ALN_KEK_ID_LEN 16

struct aln_state_keys {
  struct aln_secret k_state; /* locked */
  uint8_t kek_id[ALN_KEK_ID_LEN];
};

/* What the MAC covers besides the set digest. */
struct aln_state_summary {
  uint64_t epoch;
  uint64_t generation;
  uint64_t audit_seq;                /* 0 when the chain is empty */
  uint8_t audit_head[ALN_STATE_LEN]; /* hash of the last audit row, zeros when empty */
};

/* aln_state_keys_derive derives K_state and the KEK id from |kek|. Free with
 * aln_state_keys_cleanup (wipes K_state). */
aln_status aln_state_keys_derive(struct aln_state_keys *out, const struct aln_secret *kek) ALN_WUR;
void aln_state_keys_cleanup(struct aln_state_keys *keys);

/* aln_state_toggle_cred / _host XOR the element of one credential or host into
 * |digest|: adding and removing are the same operation. */
aln_status aln_state_toggle_cred(const struct aln_state_keys *keys, uint8_t digest[ALN_STATE_LEN], uint64_t id,
                                 uint32_t version, uint32_t kind, const char *name, size_t name_len) ALN_WUR;
aln_status aln_state_toggle_host(const struct aln_state_keys *keys, uint8_t digest[ALN_STATE_LEN],
                                 const uint8_t spki_hash[32]) ALN_WUR;

/* aln_state_mac computes the MAC of |digest| and |sum| into |out|. */
aln_status aln_state_mac(const struct aln_state_keys *keys, uint8_t out[ALN_STATE_LEN],
                         const uint8_t digest[ALN_STATE_LEN], const struct aln_state_summary *sum) ALN_WUR;

#endif
