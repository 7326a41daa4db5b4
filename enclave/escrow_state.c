/* See escrow_state.h for the construction. Every HMAC key here is derived from the
 * KEK and lives only in locked memory. */
#include "enclave/escrow_state.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "proto/cbs.h"

static const char state_key_label[] = "aileron-state-key-v1";
static const char kek_id_label[] = "aileron-kek-id-v1";
static const char state_mac_label[] = "aileron-state-v1";

/* hmac computes HMAC-SHA256(key, msg) into |out| (ALN_STATE_LEN bytes). */
static aln_status hmac(uint8_t out[ALN_STATE_LEN], const uint8_t *key, size_t key_len, const uint8_t *msg,
                       size_t msg_len) {
  unsigned int n = 0;
  ALN_ENSURE(key_len <= INT_MAX, ALN_ERR_USAGE);
  ALN_ENSURE(HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &n) != NULL && n == ALN_STATE_LEN,
             ALN_ERR_CRYPTO);
  return ALN_OK;
}

aln_status aln_state_keys_derive(struct aln_state_keys *out, const struct aln_secret *kek) {
  aln_status st = ALN_ERR_INTERNAL;
  uint8_t id[ALN_STATE_LEN];

  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(kek != NULL && kek->p != NULL && kek->len > 0, ALN_ERR_USAGE);
  ALN_GUARD(aln_secret_new(&out->k_state, ALN_STATE_LEN));
  ALN_GUARD_GOTO(
      st, hmac(out->k_state.p, kek->p, kek->len, (const uint8_t *)state_key_label, sizeof(state_key_label) - 1), out);
  ALN_GUARD_GOTO(st, hmac(id, kek->p, kek->len, (const uint8_t *)kek_id_label, sizeof(kek_id_label) - 1), out);
  memcpy(out->kek_id, id, ALN_KEK_ID_LEN);
  st = ALN_OK;
out:
  OPENSSL_cleanse(id, sizeof(id));
  if (st != ALN_OK)
    aln_state_keys_cleanup(out);
  return st;
}

void aln_state_keys_cleanup(struct aln_state_keys *keys) {
  if (keys == NULL)
    return;
  aln_secret_free(&keys->k_state);
  memset(keys->kek_id, 0, sizeof(keys->kek_id));
}

/* toggle XORs HMAC(K_state, msg) into |digest|, then wipes the term: it is
 * output of K_state, kept no longer than the key's own uses. */
static aln_status toggle(const struct aln_state_keys *keys, uint8_t digest[ALN_STATE_LEN], const uint8_t *msg,
                         size_t msg_len) {
  uint8_t e[ALN_STATE_LEN];
  ALN_ENSURE(keys != NULL && keys->k_state.p != NULL && digest != NULL, ALN_ERR_USAGE);
  ALN_GUARD(hmac(e, keys->k_state.p, keys->k_state.len, msg, msg_len));
  for (size_t i = 0; i < ALN_STATE_LEN; i++)
    digest[i] ^= e[i];
  OPENSSL_cleanse(e, sizeof(e));
  return ALN_OK;
}

/* Large enough for the longest element: a credential with a name of 64 bytes. */
#define STATE_ELEM_MAX 128

aln_status aln_state_toggle_cred(const struct aln_state_keys *keys, uint8_t digest[ALN_STATE_LEN], uint64_t id,
                                 uint32_t version, uint32_t kind, const char *name, size_t name_len) {
  uint8_t buf[STATE_ELEM_MAX];
  struct aln_cbb cbb;
  ALN_ENSURE(name != NULL || name_len == 0, ALN_ERR_USAGE);
  aln_cbb_init_fixed(&cbb, buf, sizeof(buf));
  ALN_GUARD(aln_cbb_add_bytes(&cbb, (const uint8_t *)"C", 1));
  ALN_GUARD(aln_cbb_add_u64(&cbb, id));
  ALN_GUARD(aln_cbb_add_u32(&cbb, version));
  ALN_GUARD(aln_cbb_add_u32(&cbb, kind));
  ALN_GUARD(aln_cbb_add_u32_prefixed(&cbb, (const uint8_t *)name, name_len));
  return toggle(keys, digest, buf, cbb.len);
}

aln_status aln_state_toggle_host(const struct aln_state_keys *keys, uint8_t digest[ALN_STATE_LEN],
                                 const uint8_t spki_hash[32]) {
  uint8_t buf[1 + 32] = {'H'};
  ALN_ENSURE(spki_hash != NULL, ALN_ERR_USAGE);
  memcpy(buf + 1, spki_hash, 32);
  return toggle(keys, digest, buf, sizeof(buf));
}

aln_status aln_state_mac(const struct aln_state_keys *keys, uint8_t out[ALN_STATE_LEN],
                         const uint8_t digest[ALN_STATE_LEN], const struct aln_state_summary *sum) {
  uint8_t buf[sizeof(state_mac_label) - 1 + 8 + 8 + ALN_STATE_LEN + 8 + ALN_STATE_LEN];
  struct aln_cbb cbb;
  ALN_ENSURE(keys != NULL && keys->k_state.p != NULL && out != NULL && digest != NULL && sum != NULL, ALN_ERR_USAGE);
  aln_cbb_init_fixed(&cbb, buf, sizeof(buf));
  ALN_GUARD(aln_cbb_add_bytes(&cbb, (const uint8_t *)state_mac_label, sizeof(state_mac_label) - 1));
  ALN_GUARD(aln_cbb_add_u64(&cbb, sum->epoch));
  ALN_GUARD(aln_cbb_add_u64(&cbb, sum->generation));
  ALN_GUARD(aln_cbb_add_bytes(&cbb, digest, ALN_STATE_LEN));
  ALN_GUARD(aln_cbb_add_u64(&cbb, sum->audit_seq));
  ALN_GUARD(aln_cbb_add_bytes(&cbb, sum->audit_head, ALN_STATE_LEN));
  return hmac(out, keys->k_state.p, keys->k_state.len, buf, cbb.len);
}
