/* The provider table. "local" keeps its KEK in a private file of the data dir and
 * signs debug evidence with the enclave key; it proves nothing about the platform and
 * exists so the dev stack runs the production code paths. Further providers add one
 * row here. */
#include "enclave/provider.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <stdlib.h>
#include <tss2/tss2_mu.h>

#include "attestation/local.h"
#include "enclave/provider_tpm.h"
#include "enclave/tpm_attest.h"
#include "enclave/tpm_counter.h"
#include "proto/keyfile.h"

aln_status aln_local_kek_load(struct aln_secret *out, const char *data_dir) {
  char path[PATH_MAX];

  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(data_dir != NULL && data_dir[0] != '\0', ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(path, data_dir, "kek", NULL));
  /* A missing KEK beside an existing escrow is a lost key, not a first start: a
   * new KEK would open nothing and hide the loss. Restore it (kek import-recovery). */
  char db[PATH_MAX];
  struct stat sb;
  ALN_GUARD(aln_path_join(db, data_dir, "escrow.db", NULL));
  if (lstat(path, &sb) != 0 && errno == ENOENT && lstat(db, &sb) == 0) {
    fprintf(stderr,
            "aileron-enclave: %.200s/kek is missing but an escrow exists there; refusing to make a new KEK "
            "(restore it with 'aileron-enclave kek import-recovery')\n",
            data_dir);
    return ALN_ERR_NOT_FOUND;
  }
  /* The keyfile module refuses a file group or others can read, or of another size. */
  return aln_keyfile_load_or_create(out, path, ALN_KEK_LEN);
}

aln_status aln_local_kek_install(const struct aln_secret *kek, const char *data_dir, const char *file) {
  char path[PATH_MAX];
  ALN_ENSURE(kek != NULL && kek->len == ALN_KEK_LEN && data_dir != NULL, ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(path, data_dir, file, NULL));
  return aln_keyfile_write_new(path, kek->p, kek->len);
}

aln_status aln_local_kek_read(struct aln_secret *out, const char *data_dir, const char *file) {
  char path[PATH_MAX];
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(data_dir != NULL, ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(path, data_dir, file, NULL));
  /* One byte more than a KEK, so a longer file is told from a KEK-sized one. */
  ALN_GUARD(aln_keyfile_read(out, path, ALN_KEK_LEN + 1));
  if (out->len != ALN_KEK_LEN) {
    aln_secret_free(out);
    return ALN_ERR_STORE;
  }
  return ALN_OK;
}

static aln_status local_evidence(uint8_t **out, size_t *out_len, const char *data_dir, EVP_PKEY *sign_key,
                                 const uint8_t binding[ALN_BINDING_LEN]) {
  (void)data_dir;
  return aln_local_evidence_make(out, out_len, sign_key, binding, (int64_t)time(NULL));
}

/* tpm_evidence quotes AILERON_TPM_QUOTE_PCRS (default: AILERON_TPM_PCRS, else
 * sha256:7) with the AK of the data dir and the binding as qualifying data. The
 * signing key is in the binding, so the quote vouches for it too. */
static aln_status tpm_evidence(uint8_t **out, size_t *out_len, const char *data_dir, EVP_PKEY *sign_key,
                               const uint8_t binding[ALN_BINDING_LEN]) {
  (void)sign_key;
  TPML_PCR_SELECTION sel;
  ALN_GUARD(aln_tpm_quote_pcrs(&sel));
  return aln_tpm_quote_make(data_dir, out, out_len, binding, &sel);
}

static aln_status tpm_enroll_info(uint8_t **ek_cert, size_t *ek_cert_len, uint8_t **ak_public, size_t *ak_public_len,
                                  const char *data_dir) {
  TPM2B_PUBLIC ak;
  uint8_t buf[sizeof(TPM2B_PUBLIC)];
  size_t len = 0;
  *ek_cert = *ak_public = NULL;
  ALN_GUARD(aln_tpm_ak_public(data_dir, &ak));
  ALN_ENSURE(Tss2_MU_TPM2B_PUBLIC_Marshal(&ak, buf, sizeof(buf), &len) == TSS2_RC_SUCCESS, ALN_ERR_INTERNAL);
  ALN_GUARD(aln_tpm_ek_cert_read(ek_cert, ek_cert_len, TPM2_ALG_RSA));
  *ak_public = malloc(len);
  if (*ak_public == NULL) {
    free(*ek_cert);
    *ek_cert = NULL;
    return ALN_ERR_NOMEM;
  }
  memcpy(*ak_public, buf, len);
  *ak_public_len = len;
  return ALN_OK;
}

static aln_status tpm_activate(struct aln_secret *out, const char *data_dir, const uint8_t *blob, size_t blob_len,
                               const uint8_t *seed, size_t seed_len) {
  TPM2B_ID_OBJECT b = {0}; /* the unmarshallers want empty destinations */
  TPM2B_ENCRYPTED_SECRET e = {0};
  size_t off = 0;
  memset(out, 0, sizeof(*out));
  /* Untrusted bytes from the host: each must unmarshal to exactly its length. */
  ALN_ENSURE(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, blob_len, &off, &b) == TSS2_RC_SUCCESS && off == blob_len,
             ALN_ERR_MALFORMED);
  off = 0;
  ALN_ENSURE(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(seed, seed_len, &off, &e) == TSS2_RC_SUCCESS && off == seed_len,
             ALN_ERR_MALFORMED);
  return aln_tpm_ak_activate(data_dir, out, TPM2_ALG_RSA, &b, &e);
}

static const struct aln_provider providers[] = {
    {.name = "local",
     .evidence_kind = "local",
     .kek_load = aln_local_kek_load,
     .kek_file = "kek",
     .kek_install = aln_local_kek_install,
     .kek_read = aln_local_kek_read,
     .evidence = local_evidence},
    /* TPM2 quotes by an attestation key of this TPM (enclave/tpm_attest.h). */
    {.name = "tpm",
     .evidence_kind = "tpm",
     .kek_load = aln_tpm_kek_load,
     .kek_file = "kek.tpm",
     .kek_install = aln_tpm_kek_install,
     .kek_read = aln_tpm_kek_read,
     .evidence = tpm_evidence,
     .counter_new = aln_tpm_counter_new,
     .tpm_enroll_info = tpm_enroll_info,
     .tpm_activate = tpm_activate},
};

const struct aln_provider *aln_provider_find(const char *name) {
  if (name == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++) {
    if (strcmp(providers[i].name, name) == 0)
      return &providers[i];
  }
  return NULL;
}
