/* KEK recovery: the KEK wrapped to an operator's offline RSA key, so a lost or
 * replaced machine (or TPM) does not lose the escrow. The recovery file is
 *
 *   "ALNKREC1"                       magic, carries the format version
 *   u32 len, SHA-256(operator SPKI)  which operator key can open it (32 bytes)
 *   u32 len, RSA-OAEP ciphertext     SHA-256, MGF1-SHA-256, label
 *                                    "aileron-kek-recovery-v1"; as long as the modulus
 *   u32 len, key-check value         HMAC-SHA256(KEK, "aileron-kek-check") (32 bytes)
 *
 * The check value lets import confirm it recovered the KEK the file was made from
 * without opening the escrow; it reveals nothing usable about the KEK (a PRF
 * output under it). The file is read from untrusted storage, so the decoder checks
 * exact lengths and refuses trailing bytes. */
#ifndef ALN_ENCLAVE_RECOVERY_H
#define ALN_ENCLAVE_RECOVERY_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "enclave/provider.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_RECOVERY_MAGIC "ALNKREC1"
#define ALN_RECOVERY_MAGIC_LEN 8
#define ALN_RECOVERY_LABEL "aileron-kek-recovery-v1"
#define ALN_RECOVERY_HASH_LEN 32
#define ALN_RECOVERY_CHECK_LEN 32
/* Operator keys: RSA of 3072 bits (128-bit security) up to 16384 bits. */
#define ALN_RECOVERY_RSA_MIN_BITS 3072
#define ALN_RECOVERY_RSA_MAX_BITS 16384
#define ALN_RECOVERY_CT_MIN (ALN_RECOVERY_RSA_MIN_BITS / 8)
#define ALN_RECOVERY_CT_MAX (ALN_RECOVERY_RSA_MAX_BITS / 8)
/* The largest well-formed file, and the most import reads. */
#define ALN_RECOVERY_FILE_MAX                                                                                          \
  (ALN_RECOVERY_MAGIC_LEN + 3 * 4 + ALN_RECOVERY_HASH_LEN + ALN_RECOVERY_CT_MAX + ALN_RECOVERY_CHECK_LEN)

/* A decoded recovery file. |ct| points into the decoder's input (not owned). */
struct aln_recovery_file {
  uint8_t key_hash[ALN_RECOVERY_HASH_LEN];
  const uint8_t *ct;
  size_t ct_len;
  uint8_t check[ALN_RECOVERY_CHECK_LEN];
};

/* aln_recovery_encode writes |f| as a recovery file into a new buffer *out of
 * *out_len bytes (free with free()). ALN_ERR_USAGE if |f| would not pass
 * aln_recovery_decode. */
aln_status aln_recovery_encode(uint8_t **out, size_t *out_len, const struct aln_recovery_file *f) ALN_WUR;

/* aln_recovery_decode parses |len| bytes at |data| into |out| (out->ct points into
 * |data|). ALN_ERR_TOO_LARGE past ALN_RECOVERY_FILE_MAX, ALN_ERR_MALFORMED for a
 * wrong magic or a field of the wrong length (ciphertext outside
 * ALN_RECOVERY_CT_MIN..ALN_RECOVERY_CT_MAX), ALN_ERR_TRUNCATED if it ends early,
 * ALN_ERR_TRAILING if bytes follow. */
aln_status aln_recovery_decode(struct aln_recovery_file *out, const uint8_t *data, size_t len) ALN_WUR;

/* aln_recovery_wrap makes the recovery file for |kek| (ALN_KEK_LEN bytes) wrapped to
 * the RSA public key |operator_key| into a new buffer *out (free with free()).
 * ALN_ERR_USAGE if the key is not RSA of ALN_RECOVERY_RSA_MIN_BITS..MAX_BITS. */
aln_status aln_recovery_wrap(uint8_t **out, size_t *out_len, const struct aln_secret *kek,
                             EVP_PKEY *operator_key) ALN_WUR;

/* aln_recovery_unwrap recovers into the new secret |kek| the KEK of the recovery
 * file |data| with the RSA private key |operator_key|. ALN_ERR_USAGE for a key
 * aln_recovery_wrap would refuse, ALN_ERR_DENIED if the file was wrapped to another
 * key, ALN_ERR_TAMPERED if the ciphertext does not decrypt to a KEK whose check
 * value matches; the decoder's errors for a malformed file. Every intermediate
 * buffer is wiped; on error |kek| is left empty. */
aln_status aln_recovery_unwrap(struct aln_secret *kek, const uint8_t *data, size_t len, EVP_PKEY *operator_key) ALN_WUR;

/* aln_recovery_export loads the KEK of |data_dir| through |prov| and writes its
 * recovery file, wrapped to the PEM public key at |pubkey_path|, to the new file
 * |out_path| (0600, never overwritten: ALN_ERR_EXISTS). ALN_ERR_NOT_FOUND if the
 * data dir holds no KEK yet (export runs after the first start, it never makes
 * one). Prints why it refuses to stderr. */
aln_status aln_recovery_export(const struct aln_provider *prov, const char *data_dir, const char *pubkey_path,
                               const char *out_path) ALN_WUR;

/* aln_recovery_import recovers the KEK of the recovery file |file_path| with the PEM
 * private key at |privkey_path| (which must lie outside |data_dir|) and installs it
 * for |prov| in |data_dir|: "local" writes DATA_DIR/kek, "tpm" seals it to the TPM
 * in DATA_DIR/kek.tpm. ALN_ERR_EXISTS if that file is already there (it is never
 * replaced), ALN_ERR_USAGE for a provider without recovery; aln_recovery_unwrap's
 * errors. Prints why it refuses to stderr. */
aln_status aln_recovery_import(const struct aln_provider *prov, const char *data_dir, const char *file_path,
                               const char *privkey_path) ALN_WUR;

#endif
