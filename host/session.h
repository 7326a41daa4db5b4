/* Session tokens for agents. The daemon is stateless: a token is self-contained and
 * verified with the session key (32 bytes, 0600 file, shared by host replicas).
 *   token = "aln1." base64url(payload) "." base64url(HMAC-SHA256(key, "aln1." payload-b64))
 *   payload = 16-byte random session id || 8-byte big-endian expiry (unix seconds)
 * Verification checks the exact shape and size first, the MAC in constant time,
 * then the expiry. */
#ifndef ALN_HOST_SESSION_H
#define ALN_HOST_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_SESSION_KEY_LEN 32
#define ALN_SESSION_TOKEN_MAX 128
#define ALN_SESSION_TTL_MAX (7 * 24 * 3600)

struct aln_session {
  char id[33]; /* hex of the 16-byte id */
  int64_t expires_at;
};

/* aln_session_issue writes a new NUL-terminated token into |out| (capacity
 * |out_cap| >= ALN_SESSION_TOKEN_MAX) valid for |ttl| seconds (1..ALN_SESSION_TTL_MAX)
 * from |now|, and describes it in |out_sess| (may be NULL). */
aln_status aln_session_issue(char *out, size_t out_cap, struct aln_session *out_sess, const struct aln_secret *key,
                             int64_t now, int64_t ttl) ALN_WUR;

/* aln_session_verify checks |token| (|token_len| bytes, not necessarily terminated)
 * at time |now|: ALN_ERR_SESSION_INVALID if malformed or the MAC does not match,
 * ALN_ERR_SESSION_EXPIRED if past its expiry. Fills |out| on success. */
aln_status aln_session_verify(struct aln_session *out, const struct aln_secret *key, const char *token,
                              size_t token_len, int64_t now) ALN_WUR;

#endif
