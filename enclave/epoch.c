/* The epoch file: the last escrow epoch this enclave committed, kept outside the
 * data directory and authenticated with a key derived from the KEK, so it cannot be
 * forged or moved between enclaves without the KEK. It is always written after the
 * escrow commits: a crash in between leaves it one behind the database, which the
 * next start accepts and repairs; the other order would leave it ahead, which would
 * look exactly like a rollback and brick the enclave. */
#include "enclave/epoch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/cbs.h"
#include "proto/keyfile.h"

static const uint8_t epoch_magic[ALN_EPOCH_MAGIC_LEN] = {'A', 'L', 'N', 'E', 'P', 'O', 'C', '1'};
static const char epoch_key_label[] = "aileron-epoch-key-v1";

/* epoch_mac computes HMAC-SHA256(K_epoch, magic || be64(epoch)) into |out|. The
 * derived key lives only in locked memory and is wiped on every path. */
static aln_status epoch_mac(uint8_t out[ALN_EPOCH_MAC_LEN], const struct aln_secret *kek, const uint8_t *msg,
                            size_t msg_len) {
  aln_status st = ALN_ERR_CRYPTO;
  struct aln_secret k = {0};
  unsigned int n = 0;

  ALN_ENSURE(kek != NULL && kek->p != NULL && kek->len > 0 && kek->len <= INT_MAX, ALN_ERR_USAGE);
  ALN_GUARD(aln_secret_new(&k, ALN_EPOCH_MAC_LEN));
  ALN_ENSURE_GOTO(st,
                  HMAC(EVP_sha256(), kek->p, (int)kek->len, (const uint8_t *)epoch_key_label,
                       sizeof(epoch_key_label) - 1, k.p, &n) != NULL &&
                      n == ALN_EPOCH_MAC_LEN,
                  ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, HMAC(EVP_sha256(), k.p, (int)k.len, msg, msg_len, out, &n) != NULL && n == ALN_EPOCH_MAC_LEN,
                  ALN_ERR_CRYPTO, out);
  st = ALN_OK;
out:
  aln_secret_free(&k);
  return st;
}

aln_status aln_epoch_encode(uint8_t out[ALN_EPOCH_FILE_LEN], const struct aln_secret *kek, uint64_t epoch) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memcpy(out, epoch_magic, ALN_EPOCH_MAGIC_LEN);
  for (int i = 0; i < 8; i++)
    out[ALN_EPOCH_MAGIC_LEN + i] = (uint8_t)(epoch >> (8 * (7 - i)));
  return epoch_mac(out + ALN_EPOCH_MAGIC_LEN + 8, kek, out, ALN_EPOCH_MAGIC_LEN + 8);
}

aln_status aln_epoch_decode(uint64_t *out, const struct aln_secret *kek, const uint8_t *in, size_t in_len) {
  struct aln_cbs cbs, magic, mac;
  uint8_t want[ALN_EPOCH_MAC_LEN];
  uint64_t epoch = 0;

  ALN_ENSURE(out != NULL && (in != NULL || in_len == 0), ALN_ERR_USAGE);
  /* file = magic || u64 epoch || mac, and nothing after. */
  aln_cbs_init(&cbs, in, in_len);
  ALN_GUARD(aln_cbs_get_bytes(&cbs, &magic, ALN_EPOCH_MAGIC_LEN));
  ALN_ENSURE(memcmp(magic.p, epoch_magic, ALN_EPOCH_MAGIC_LEN) == 0, ALN_ERR_MALFORMED);
  ALN_GUARD(aln_cbs_get_u64(&cbs, &epoch));
  ALN_GUARD(aln_cbs_get_bytes(&cbs, &mac, ALN_EPOCH_MAC_LEN));
  ALN_GUARD(aln_cbs_ensure_empty(&cbs));
  ALN_GUARD(epoch_mac(want, kek, in, ALN_EPOCH_MAGIC_LEN + 8));
  ALN_ENSURE(CRYPTO_memcmp(want, mac.p, ALN_EPOCH_MAC_LEN) == 0, ALN_ERR_TAMPERED);
  *out = epoch;
  return ALN_OK;
}

aln_status aln_epoch_write(const char *path, const struct aln_secret *kek, uint64_t epoch) {
  uint8_t img[ALN_EPOCH_FILE_LEN];
  ALN_ENSURE(path != NULL && path[0] != '\0', ALN_ERR_USAGE);
  ALN_GUARD(aln_epoch_encode(img, kek, epoch));
  return aln_keyfile_replace(path, img, sizeof(img));
}

aln_status aln_epoch_read(uint64_t *out, const char *path, const struct aln_secret *kek) {
  struct aln_secret img = {0};

  ALN_ENSURE(out != NULL && path != NULL, ALN_ERR_USAGE);
  /* One byte more than a valid file, so a longer one reads as trailing bytes. */
  aln_status st = aln_keyfile_read(&img, path, ALN_EPOCH_FILE_LEN + 1);
  if (st == ALN_ERR_TOO_LARGE)
    return ALN_ERR_TRAILING;
  ALN_GUARD(st);
  st = aln_epoch_decode(out, kek, img.p, img.len);
  aln_secret_free(&img);
  return st;
}

/* The commit hook's state: owned by the escrow once installed. */
struct epoch_hook {
  char *path;
  struct aln_secret kek;
};

static void epoch_hook_free(void *ctx) {
  struct epoch_hook *h = ctx;
  if (h == NULL)
    return;
  free(h->path);
  aln_secret_free(&h->kek);
  free(h);
}

static aln_status epoch_hook_run(void *ctx, const struct aln_escrow_counts *counts) {
  struct epoch_hook *h = ctx;
  return aln_epoch_write(h->path, &h->kek, counts->epoch);
}

aln_status aln_epoch_guard(struct aln_escrow *esc, struct aln_epoch_info *info, const char *path,
                           const struct aln_secret *kek) {
  aln_status st = ALN_ERR_INTERNAL;
  struct epoch_hook *h = NULL;
  struct aln_escrow_counts counts;
  uint64_t db = 0, file = 0;
  int missing = 0;

  if (info != NULL)
    memset(info, 0, sizeof(*info));
  ALN_ENSURE(esc != NULL && path != NULL && path[0] != '\0' && kek != NULL, ALN_ERR_USAGE);
  ALN_GUARD(aln_escrow_counts(esc, &counts));
  db = counts.epoch;
  st = aln_epoch_read(&file, path, kek);
  if (st == ALN_ERR_NOT_FOUND) {
    missing = 1;
    st = ALN_OK;
  }
  if (info != NULL) {
    info->db_epoch = db;
    info->file_epoch = file;
    info->file_missing = missing;
  }
  ALN_GUARD(st);
  /* Only a database that was never written may start without the file: any write
   * would have created it. */
  ALN_ENSURE(!missing || db == 0, ALN_ERR_EPOCH_MISSING);
  ALN_ENSURE(db >= file, ALN_ERR_ROLLBACK);

  h = calloc(1, sizeof(*h));
  ALN_ENSURE(h != NULL, ALN_ERR_NOMEM);
  h->path = strdup(path);
  ALN_ENSURE_GOTO(st, h->path != NULL, ALN_ERR_NOMEM, out);
  ALN_GUARD_GOTO(st, aln_secret_from(&h->kek, kek->p, kek->len), out);
  /* Repairs a file one behind (crash between commit and file update) and creates it
   * on first start; a failure here refuses the start, unlike in the hook, because
   * nothing has been acknowledged yet. */
  if (missing || file != db)
    ALN_GUARD_GOTO(st, aln_epoch_write(path, kek, db), out);
  aln_escrow_set_commit_hook(esc, epoch_hook_run, h, epoch_hook_free);
  h = NULL;
  st = ALN_OK;
out:
  epoch_hook_free(h);
  return st;
}
