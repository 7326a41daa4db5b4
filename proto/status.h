/* The one status type shared by host and enclave. Every code and its message sit in
 * ALN_STATUS_TABLE; the high byte of a code is its category, which the host maps to
 * an HTTP status and the enclave carries in every RPC response. Messages never carry
 * secret material: they are constants. */
#ifndef ALN_PROTO_STATUS_H
#define ALN_PROTO_STATUS_H

#include <stdint.h>

#define ALN_WUR __attribute__((warn_unused_result))

/* Categories (high byte of a status code). */
#define ALN_CAT_OK 0x00
#define ALN_CAT_USAGE 0x01     /* caller sent something malformed or invalid   -> 400 */
#define ALN_CAT_AUTH 0x02      /* caller is not authenticated                  -> 401 */
#define ALN_CAT_DENIED 0x03    /* authenticated but not allowed                -> 403 */
#define ALN_CAT_NOT_FOUND 0x04 /* no such object                               -> 404 */
#define ALN_CAT_CONFLICT 0x05  /* object state prevents it                     -> 409 */
#define ALN_CAT_PROTO 0x06     /* peer broke the wire protocol                 -> 502 */
#define ALN_CAT_ATTEST 0x07    /* evidence missing, invalid or not acceptable  -> 502 */
#define ALN_CAT_IO 0x08        /* network, file or upstream failure            -> 502 */
#define ALN_CAT_INTERNAL 0x09  /* bug or resource exhaustion                   -> 500 */

/* X(name, category, number, message) */
#define ALN_STATUS_TABLE(X)                                                                                            \
  X(ALN_OK, ALN_CAT_OK, 0, "ok")                                                                                       \
  X(ALN_ERR_USAGE, ALN_CAT_USAGE, 1, "invalid argument")                                                               \
  X(ALN_ERR_BAD_NAME, ALN_CAT_USAGE, 2, "invalid credential name")                                                     \
  X(ALN_ERR_BAD_URL, ALN_CAT_USAGE, 3, "invalid URL")                                                                  \
  X(ALN_ERR_BAD_JSON, ALN_CAT_USAGE, 4, "malformed JSON request")                                                      \
  X(ALN_ERR_TOO_LARGE, ALN_CAT_USAGE, 5, "request too large")                                                          \
  X(ALN_ERR_BAD_INJECTION, ALN_CAT_USAGE, 6, "invalid injection specification")                                        \
  X(ALN_ERR_AUTH_MISSING, ALN_CAT_AUTH, 1, "authentication required")                                                  \
  X(ALN_ERR_AUTH_INVALID, ALN_CAT_AUTH, 2, "invalid credentials for this call")                                        \
  X(ALN_ERR_SESSION_EXPIRED, ALN_CAT_AUTH, 3, "session token expired")                                                 \
  X(ALN_ERR_SESSION_INVALID, ALN_CAT_AUTH, 4, "session token invalid")                                                 \
  X(ALN_ERR_DENIED, ALN_CAT_DENIED, 1, "not allowed")                                                                  \
  X(ALN_ERR_DEST_NOT_ALLOWED, ALN_CAT_DENIED, 2, "destination not allowed for this credential")                        \
  X(ALN_ERR_NOT_ENROLLED, ALN_CAT_DENIED, 3, "client key not enrolled")                                                \
  X(ALN_ERR_NOT_ATTESTED, ALN_CAT_DENIED, 4, "channel not attested")                                                   \
  X(ALN_ERR_REVOKED, ALN_CAT_DENIED, 5, "credential revoked")                                                          \
  X(ALN_ERR_EXPIRED, ALN_CAT_DENIED, 6, "credential expired")                                                          \
  X(ALN_ERR_NOT_FOUND, ALN_CAT_NOT_FOUND, 1, "not found")                                                              \
  X(ALN_ERR_EXISTS, ALN_CAT_CONFLICT, 1, "already exists")                                                             \
  X(ALN_ERR_KEK_POLICY, ALN_CAT_CONFLICT, 2, "KEK sealed to other PCR values (platform state changed)")                \
  X(ALN_ERR_ROLLBACK, ALN_CAT_CONFLICT, 3, "escrow database older than the last committed state (rollback)")           \
  X(ALN_ERR_EPOCH_MISSING, ALN_CAT_CONFLICT, 4, "rollback epoch file missing")                                         \
  X(ALN_ERR_KEK_MISMATCH, ALN_CAT_CONFLICT, 5, "KEK does not belong to this escrow")                                   \
  X(ALN_ERR_TRUNCATED, ALN_CAT_PROTO, 1, "truncated input")                                                            \
  X(ALN_ERR_TRAILING, ALN_CAT_PROTO, 2, "trailing bytes after message")                                                \
  X(ALN_ERR_FRAME_TOO_LARGE, ALN_CAT_PROTO, 3, "frame exceeds size limit")                                             \
  X(ALN_ERR_MALFORMED, ALN_CAT_PROTO, 4, "malformed message")                                                          \
  X(ALN_ERR_UNEXPECTED, ALN_CAT_PROTO, 5, "message not allowed in this state")                                         \
  X(ALN_ERR_VERSION, ALN_CAT_PROTO, 6, "unsupported protocol version")                                                 \
  X(ALN_ERR_ATTEST, ALN_CAT_ATTEST, 1, "evidence verification failed")                                                 \
  X(ALN_ERR_ATTEST_KIND, ALN_CAT_ATTEST, 2, "evidence kind not accepted")                                              \
  X(ALN_ERR_ATTEST_SIG, ALN_CAT_ATTEST, 3, "evidence signature invalid")                                               \
  X(ALN_ERR_ATTEST_BINDING, ALN_CAT_ATTEST, 4, "evidence not bound to this channel")                                   \
  X(ALN_ERR_ATTEST_DEBUG, ALN_CAT_ATTEST, 5, "debug evidence refused outside dev mode")                                \
  X(ALN_ERR_ATTEST_MALFORMED, ALN_CAT_ATTEST, 6, "evidence malformed")                                                 \
  X(ALN_ERR_ATTEST_EXPIRED, ALN_CAT_ATTEST, 7, "evidence outside its validity period")                                 \
  X(ALN_ERR_ATTEST_CHAIN, ALN_CAT_ATTEST, 8, "evidence certificate chain not trusted")                                 \
  X(ALN_ERR_ATTEST_POLICY, ALN_CAT_ATTEST, 9, "evidence does not match the appraisal policy")                          \
  X(ALN_ERR_IO, ALN_CAT_IO, 1, "input/output error")                                                                   \
  X(ALN_ERR_CLOSED, ALN_CAT_IO, 2, "connection closed")                                                                \
  X(ALN_ERR_TLS, ALN_CAT_IO, 3, "TLS failure")                                                                         \
  X(ALN_ERR_UPSTREAM, ALN_CAT_IO, 4, "upstream request failed")                                                        \
  X(ALN_ERR_UPSTREAM_TLS, ALN_CAT_IO, 5, "upstream TLS verification failed")                                           \
  X(ALN_ERR_UPSTREAM_TOO_LARGE, ALN_CAT_IO, 6, "upstream response too large")                                          \
  X(ALN_ERR_STORE, ALN_CAT_IO, 7, "storage failure")                                                                   \
  X(ALN_ERR_UNAVAILABLE, ALN_CAT_IO, 8, "enclave unavailable")                                                         \
  X(ALN_ERR_PERMS, ALN_CAT_IO, 9, "file permissions too open")                                                         \
  X(ALN_ERR_TPM, ALN_CAT_IO, 10, "TPM operation failed")                                                               \
  X(ALN_ERR_DISK_FULL, ALN_CAT_IO, 11, "storage full; nothing was written")                                            \
  X(ALN_ERR_INTERNAL, ALN_CAT_INTERNAL, 1, "internal error")                                                           \
  X(ALN_ERR_NOMEM, ALN_CAT_INTERNAL, 2, "out of memory")                                                               \
  X(ALN_ERR_CRYPTO, ALN_CAT_INTERNAL, 3, "cryptographic operation failed")                                             \
  X(ALN_ERR_TAMPERED, ALN_CAT_INTERNAL, 4, "sealed record failed authentication")                                      \
  X(ALN_ERR_STATE_TAMPERED, ALN_CAT_INTERNAL, 5, "escrow state failed authentication (edited outside the enclave)")

#define ALN_STATUS_ENUM_(name, cat, num, msg) name = ((cat) << 8) | (num),
typedef enum aln_status { ALN_STATUS_TABLE(ALN_STATUS_ENUM_) } aln_status;
#undef ALN_STATUS_ENUM_

/* aln_strerror returns the constant message for |st|, or "unknown status" for a
 * value not in the table. The string is static; never free it. */
const char *aln_strerror(aln_status st);

/* aln_status_name returns the constant symbolic name ("ALN_ERR_NOT_FOUND") of |st|,
 * or "ALN_UNKNOWN". */
const char *aln_status_name(aln_status st);

/* aln_status_category returns the category byte of |st| (one of ALN_CAT_*). */
static inline unsigned aln_status_category(aln_status st) {
  return ((unsigned)st >> 8) & 0xff;
}

/* aln_status_is_known returns 1 if |code| is a value of the table, else 0. Used to
 * validate status codes received from a peer. */
int aln_status_is_known(uint32_t code);

/* aln_status_http returns the HTTP status the host answers for |st|. */
int aln_status_http(aln_status st);

/* Guards. ALN_GUARD returns the status of |expr| from the calling function if it is
 * not ALN_OK; ALN_ENSURE returns |code| if |cond| is false. For functions that own
 * nothing; functions that own resources use the goto-out form. */
#define ALN_GUARD(expr)                                                                                                \
  do {                                                                                                                 \
    aln_status aln_guard_st_ = (expr);                                                                                 \
    if (aln_guard_st_ != ALN_OK)                                                                                       \
      return aln_guard_st_;                                                                                            \
  } while (0)

#define ALN_ENSURE(cond, code)                                                                                         \
  do {                                                                                                                 \
    if (!(cond))                                                                                                       \
      return (code);                                                                                                   \
  } while (0)

/* Goto forms for functions with one exit: set st and jump to |out|. */
#define ALN_GUARD_GOTO(st, expr, label)                                                                                \
  do {                                                                                                                 \
    (st) = (expr);                                                                                                     \
    if ((st) != ALN_OK)                                                                                                \
      goto label;                                                                                                      \
  } while (0)

#define ALN_ENSURE_GOTO(st, cond, code, label)                                                                         \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      (st) = (code);                                                                                                   \
      goto label;                                                                                                      \
    }                                                                                                                  \
  } while (0)

#endif
