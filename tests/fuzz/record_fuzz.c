/* fuzz-links: aln_enclave */
/* Fuzzes the escrow's record decoder (aln_escrow_record_open), which every read of
 * a credential goes through, with row columns an editor of the database file
 * chooses. The input is the row, each field as written below; the KEK is fixed, so
 * the seed corpus (made by tests/fuzz/make_record_seeds.py with Python's
 * cryptography, independently of escrow.c) holds records that open. Whatever opens
 * must be exactly the row given: its metadata, and a secret of the ciphertext's
 * length minus the nonce and tag.
 *
 *   u64 id || u64 version || u64 kind || u64 created_at || u64 expires_at ||
 *   u8 revoked || u16 len, name || u16 len, binding || u16 len, wrapped_key ||
 *   u16 len, ciphertext        (big endian; the u64s are the int64 columns) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enclave/escrow.h"
#include "proto/cbs.h"

static char dir[] = "/tmp/aln-record-fuzz-XXXXXX";
static char db[64];
static struct aln_escrow *esc;

static void cleanup(void) {
  char p[96];
  aln_escrow_free(esc);
  const char *suffixes[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof(p), "%s%s", db, suffixes[i]);
    unlink(p);
  }
  rmdir(dir);
}

static void init(void) {
  static const uint8_t kek_bytes[32] = {0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};
  struct aln_secret kek = {0};
  if (mkdtemp(dir) == NULL || aln_secret_from(&kek, kek_bytes, sizeof(kek_bytes)) != ALN_OK)
    abort();
  snprintf(db, sizeof(db), "%s/escrow.db", dir);
  if (aln_escrow_open(&esc, db, &kek, 0) != ALN_OK)
    abort();
  aln_secret_free(&kek);
  atexit(cleanup);
}

static int get_i64(struct aln_cbs *cbs, int64_t *out) {
  uint64_t v;
  if (aln_cbs_get_u64(cbs, &v) != ALN_OK)
    return 0;
  *out = (int64_t)v;
  return 1;
}

static int get_field(struct aln_cbs *cbs, const uint8_t **p, size_t *len) {
  uint16_t n;
  struct aln_cbs f;
  if (aln_cbs_get_u16(cbs, &n) != ALN_OK || aln_cbs_get_bytes(cbs, &f, n) != ALN_OK)
    return 0;
  *p = n > 0 ? f.p : NULL; /* SQLite hands out NULL for an empty or NULL column */
  *len = n;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (esc == NULL)
    init();
  struct aln_cbs cbs;
  struct aln_record_cols c = {0};
  uint8_t revoked;
  const uint8_t *name = NULL;
  aln_cbs_init(&cbs, data, size);
  if (!get_i64(&cbs, &c.id) || !get_i64(&cbs, &c.version) || !get_i64(&cbs, &c.kind) || !get_i64(&cbs, &c.created_at) ||
      !get_i64(&cbs, &c.expires_at) || aln_cbs_get_u8(&cbs, &revoked) != ALN_OK ||
      !get_field(&cbs, &name, &c.name_len) || !get_field(&cbs, &c.binding, &c.binding_len) ||
      !get_field(&cbs, &c.wrapped_key, &c.wrapped_key_len) || !get_field(&cbs, &c.ciphertext, &c.ciphertext_len))
    return 0;
  c.name = name;
  c.revoked = revoked;

  struct aln_secret secret;
  struct aln_cred_meta meta;
  aln_status st = aln_escrow_record_open(esc, &secret, &meta, &c);
  if (st == ALN_OK) {
    if (secret.p == NULL || secret.len + 28 != c.ciphertext_len || meta.version != (uint64_t)c.version ||
        meta.kind != (uint64_t)c.kind || meta.expires_at != c.expires_at || meta.binding_len != c.binding_len ||
        memcmp(meta.binding, c.binding, c.binding_len) != 0 || strlen(meta.name) != c.name_len ||
        memcmp(meta.name, c.name, c.name_len) != 0 || meta.revoked != (c.revoked != 0))
      abort();
    aln_secret_free(&secret);
    aln_cred_meta_cleanup(&meta);
  } else if (st != ALN_ERR_TAMPERED && st != ALN_ERR_NOMEM) {
    abort(); /* every bad row is reported as tampering, never as something else */
  } else if (secret.p != NULL || meta.binding != NULL) {
    abort(); /* nothing comes back from a row that does not open */
  }
  return 0;
}
