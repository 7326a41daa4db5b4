/* The escrow: sealed credentials, audit rows and enrolled host keys in SQLite (WAL)
 * in the enclave's data dir. Each credential is sealed with AES-256-GCM under a
 * fresh per-record data key; the data key is wrapped (AES-256-GCM) by the KEK. The
 * associated data of both binds the row id, version, expiry, name and the serialized
 * binding, so swapping ciphertexts between rows or editing a binding makes the
 * record fail to open (ALN_ERR_TAMPERED). Plaintext never reaches the database. */
#ifndef ALN_ENCLAVE_ESCROW_H
#define ALN_ENCLAVE_ESCROW_H

#include <stddef.h>
#include <stdint.h>

#include "proto/names.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_SECRET_MAX 16384
#define ALN_BINDING_MAX 65536

struct aln_escrow;
struct aln_audit_event;

/* What a credential is, sealed into the associated data of its record so a record
 * cannot be reinterpreted as another kind. Values are stored: never renumber. */
enum aln_cred_kind {
  ALN_CRED_KIND_SECRET = 1, /* a static API key or token, injected as it is */
};

/* aln_cred_kind_valid says whether |kind| is one this build knows. */
int aln_cred_kind_valid(uint32_t kind);

struct aln_cred_meta {
  char name[ALN_NAME_MAX + 1];
  uint32_t kind; /* enum aln_cred_kind */
  uint32_t version;
  int64_t created_at;
  int64_t expires_at; /* 0 = never */
  int revoked;
  uint8_t *binding; /* serialized aileron.v1.Binding, owned (free with free()) */
  size_t binding_len;
};

/* aln_cred_meta_cleanup frees the binding of |m| and zeroes it. */
void aln_cred_meta_cleanup(struct aln_cred_meta *m);

/* aln_escrow_open opens (creating the schema if needed) the database at |path| with
 * WAL and synchronous=FULL, keeping a copy of |kek| in locked memory, and
 * authenticates its state (enclave/escrow_state.h): ALN_ERR_KEK_MISMATCH if the
 * file was written under another KEK, ALN_ERR_STATE_TAMPERED if the set of live
 * credentials or hosts, the counters or the audit head were edited outside the
 * enclave (a restored row, a forged host, a truncated audit chain...). With
 * ALN_ESCROW_ACCEPT_STATE the operator vouches for the file as it is: a state that
 * fails authentication is MACed anew (loudly, on stderr) instead of refused; each
 * record still authenticates itself. The caller frees with aln_escrow_free. */
#define ALN_ESCROW_ACCEPT_STATE 0x1u
aln_status aln_escrow_open(struct aln_escrow **out, const char *path, const struct aln_secret *kek,
                           unsigned flags) ALN_WUR;

/* aln_escrow_free closes the database and wipes the KEK copy; NULL is a no-op. */
void aln_escrow_free(struct aln_escrow *esc);

/* The escrow's counters, both stored in the database and bumped inside the write
 * transactions they count, and both covered by the state MAC:
 *   epoch       every committed write transaction (puts, replaces, revokes, audit
 *               appends, host enrolls and removes, KEK rotations);
 *   generation  only the custody writes: those that change which credentials or
 *               hosts exist (everything above but audit appends).
 * Rollback protection compares them with copies kept outside the database
 * (enclave/epoch.h): the epoch in a KEK-authenticated file, the generation also in
 * a TPM NV counter when there is a TPM (a counter is too slow and wears out to move
 * on every credential use). */
struct aln_escrow_counts {
  uint64_t epoch;
  uint64_t generation;
};

/* aln_escrow_counts reads both counters, 0 and 0 for a new database. */
aln_status aln_escrow_counts(struct aln_escrow *esc, struct aln_escrow_counts *out) ALN_WUR;

/* A commit hook is called with the new counts after each write commits, under the
 * escrow's mutex, so the calls are in commit order. Its failure does not fail the
 * write: the write is already durable and acknowledging it as failed would be a
 * lie. The escrow logs the failure loudly to stderr and then refuses every
 * operation (with the hook's status) until a retry of the hook succeeds, so the
 * external copy is never more than that one write behind the database: the same
 * window a crash between commit and hook leaves, which the next start repairs. */
typedef aln_status (*aln_escrow_commit_hook)(void *ctx, const struct aln_escrow_counts *counts);

/* aln_escrow_set_commit_hook installs |fn| with |ctx| (replacing any earlier hook,
 * whose context is released with its |ctx_free|). The escrow owns |ctx| from now on
 * and releases it with |ctx_free| (may be NULL) in aln_escrow_free. Call it before
 * other threads use the escrow. */
void aln_escrow_set_commit_hook(struct aln_escrow *esc, aln_escrow_commit_hook fn, void *ctx, void (*ctx_free)(void *));

/* A credential to store. */
struct aln_cred_input {
  const char *name;
  uint32_t kind; /* enum aln_cred_kind */
  const uint8_t *secret;
  size_t secret_len;
  const uint8_t *binding; /* serialized aileron.v1.Binding */
  size_t binding_len;
  int64_t expires_at; /* unix seconds, 0 = never */
  int replace;        /* replace a live credential of that name with a new version */
};

/* aln_escrow_put seals |in->secret| with |in->binding| and |in->kind| under
 * |in->name|. Without |in->replace| an existing live credential of that name gives
 * ALN_ERR_EXISTS; with it a new version replaces the old one, whose ciphertext and
 * wrapped key are wiped from its row. Fills |out_meta| (may be NULL). |audit| (may
 * be NULL) is appended to the audit chain in the same transaction, so the write
 * and its audit row are durable together or not at all. Nothing is changed on any
 * error; a full disk is ALN_ERR_DISK_FULL. */
aln_status aln_escrow_put(struct aln_escrow *esc, struct aln_cred_meta *out_meta, const struct aln_cred_input *in,
                          const struct aln_audit_event *audit) ALN_WUR;

/* aln_escrow_list returns the metadata of the newest version of each credential
 * (revoked ones included, flagged) whose name sorts after |after| (NULL or "" = from
 * the first), in name order, at most |limit| (>= 1) of them, in a new array *out of
 * *num_out entries; free with aln_escrow_list_free. *more is set to 1 if further
 * names follow the last one returned (ask again with after = its name). Paging keeps
 * the enclave's memory bounded however many credentials it holds. */
#define ALN_LIST_PAGE_MAX 1000
aln_status aln_escrow_list(struct aln_escrow *esc, const char *after, size_t limit, struct aln_cred_meta **out,
                           size_t *num_out, int *more) ALN_WUR;
void aln_escrow_list_free(struct aln_cred_meta *list, size_t num);

/* aln_escrow_revoke marks the live credential |name| revoked and wipes its ciphertext
 * and wrapped key from the row; the tombstone (metadata) stays for audit.
 * ALN_ERR_NOT_FOUND if there is no live credential of that name. |audit| (may be
 * NULL) is appended in the same transaction, as for aln_escrow_put. */
aln_status aln_escrow_revoke(struct aln_escrow *esc, struct aln_cred_meta *out_meta, const char *name,
                             const struct aln_audit_event *audit) ALN_WUR;

/* aln_escrow_unseal opens the live credential |name| into |out_secret| (locked
 * memory, caller frees with aln_secret_free) and its metadata into |out_meta|.
 * ALN_ERR_NOT_FOUND, ALN_ERR_REVOKED, ALN_ERR_EXPIRED (at time |now|) or
 * ALN_ERR_TAMPERED if the record fails authentication. */
aln_status aln_escrow_unseal(struct aln_escrow *esc, struct aln_secret *out_secret, struct aln_cred_meta *out_meta,
                             const char *name, int64_t now) ALN_WUR;

/* One audit row per credential use, written before the enclave answers. Strings are
 * truncated to 256 bytes; the destination holds any URL a use accepts
 * (ALN_AUDIT_DEST_MAX is at least ALN_URL_MAX, enclave/dest.h), so the row never
 * records less than where the credential went. */
#define ALN_AUDIT_DEST_MAX 4096
struct aln_audit_event {
  int64_t time;
  const char *actor;      /* session id or "operator"; bounded, attacker-supplied */
  const char *host_key;   /* hex SPKI hash of the host client */
  const char *action;     /* "use", "put", "revoke" */
  const char *credential; /* name */
  const char *method;
  const char *destination; /* URL without query string */
  const char *decision;    /* "allow" / "deny" */
  aln_status result;       /* status of the operation */
  long http_status;        /* upstream status, 0 if none */
};

/* aln_escrow_audit_append appends |ev| to the audit table, chaining its hash to the
 * previous row (SHA-256 over the previous hash and the row's canonical encoding). */
aln_status aln_escrow_audit_append(struct aln_escrow *esc, const struct aln_audit_event *ev) ALN_WUR;

/* aln_escrow_audit_use appends |ev|, the row that lets a use go out, only if the
 * credential |name| is still live at |version| (the version an unseal opened), in
 * the same transaction: a revoke or replace acknowledged between the unseal and
 * the use stops the use. ALN_ERR_REVOKED if that version was revoked or replaced,
 * ALN_ERR_NOT_FOUND if the name is gone; nothing is appended then. */
aln_status aln_escrow_audit_use(struct aln_escrow *esc, const struct aln_audit_event *ev, const char *name,
                                uint32_t version) ALN_WUR;

/* aln_escrow_audit_verify_chain recomputes the whole hash chain; ALN_ERR_TAMPERED if
 * any row was altered, removed or reordered. *num_out receives the row count. */
aln_status aln_escrow_audit_verify_chain(struct aln_escrow *esc, size_t *num_out) ALN_WUR;

/* aln_escrow_rotate_kek re-wraps the data key of every live credential under
 * |new_kek| (ciphertexts are untouched), moves the state MAC and the stored KEK id
 * to it and appends |audit| (may be NULL), all in one write transaction: if it is
 * interrupted the file is exactly as before, under the old KEK; once it commits,
 * every record opens under the new KEK only. The escrow then uses |new_kek|.
 * *num_out receives the number of records re-wrapped. ALN_ERR_USAGE if |new_kek| is
 * the current KEK. Keeping the new KEK (and an epoch file keyed by the KEK) durable
 * across the commit is the caller's part: see enclave/kek_rotate.h. */
aln_status aln_escrow_rotate_kek(struct aln_escrow *esc, uint64_t *num_out, const struct aln_secret *new_kek,
                                 const struct aln_audit_event *audit) ALN_WUR;

/* A credential row's columns as the file holds them: every one untrusted. */
struct aln_record_cols {
  int64_t id;
  int64_t version;
  int64_t kind;
  int64_t created_at;
  int64_t expires_at;
  int64_t revoked;
  const unsigned char *name; /* not NUL-terminated */
  size_t name_len;
  const uint8_t *binding;
  size_t binding_len;
  const uint8_t *wrapped_key;
  size_t wrapped_key_len;
  const uint8_t *ciphertext;
  size_t ciphertext_len;
};

/* aln_escrow_record_open is the record decoder every read of the escrow uses:
 * it validates the metadata columns of |cols| and authenticates and decrypts the
 * record under the escrow's KEK, into |out_secret| (locked) and |out_meta|.
 * ALN_ERR_TAMPERED for anything a write of ours never produces or that fails
 * authentication. It does not consult the database (membership in the live set,
 * revocation and expiry are the callers'): exposed for the fuzz target. */
aln_status aln_escrow_record_open(struct aln_escrow *esc, struct aln_secret *out_secret, struct aln_cred_meta *out_meta,
                                  const struct aln_record_cols *cols) ALN_WUR;

/* Enrolled host client keys, by SHA-256 of their SubjectPublicKeyInfo (DER). */
aln_status aln_escrow_host_enroll(struct aln_escrow *esc, const uint8_t spki_hash[32], const char *label) ALN_WUR;
aln_status aln_escrow_host_remove(struct aln_escrow *esc, const uint8_t spki_hash[32]) ALN_WUR;
#define ALN_HOST_LABEL_MAX 64

struct aln_host_entry {
  uint8_t spki_hash[32];
  char label[ALN_HOST_LABEL_MAX + 1]; /* truncated to ALN_HOST_LABEL_MAX bytes */
  int64_t enrolled_at;
};

/* aln_escrow_host_list returns every enrolled host, ordered by enrollment time, in
 * a new array *out of *num_out entries (free with free()). */
aln_status aln_escrow_host_list(struct aln_escrow *esc, struct aln_host_entry **out, size_t *num_out) ALN_WUR;

/* aln_escrow_host_is_enrolled sets *out to 1 if the key is enrolled, else 0. */
aln_status aln_escrow_host_is_enrolled(struct aln_escrow *esc, int *out, const uint8_t spki_hash[32]) ALN_WUR;

#endif
