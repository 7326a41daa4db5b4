/* Redaction of secret echoes in upstream responses. Private to the enclave: the
 * upstream module runs it on every response header and body before they leave the
 * enclave. It is a last line of defence against an upstream that reflects the
 * credential (debug endpoints, error pages), not a guarantee: an upstream that
 * transforms the secret (escapes, encodes, splits it) is not caught. */
#ifndef ALN_ENCLAVE_REDACT_H
#define ALN_ENCLAVE_REDACT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

#define ALN_REDACT_MARK "[REDACTED]"

/* aln_redact replaces every occurrence of the |secret_len| bytes at |secret| in the
 * |*len| bytes at |*buf| with ALN_REDACT_MARK, scanning left to right without
 * overlap. |*buf| must come from malloc (or be NULL with |*len| 0). If anything is
 * replaced, |*buf| is wiped and freed and replaced by a new malloc'd buffer of the
 * new |*len| bytes followed by one NUL byte (so a C string stays one); otherwise
 * nothing changes. The output never contains the secret: if the replacement would
 * (a secret sharing bytes with the mark, e.g. "D]x" in "D]xx" gives "[REDACTED]x"),
 * the whole buffer becomes the mark, or empty if the secret occurs inside the mark.
 * An empty secret is a no-op. Returns ALN_ERR_NOMEM (buffer unchanged) if
 * allocation fails. */
aln_status aln_redact(uint8_t **buf, size_t *len, const uint8_t *secret, size_t secret_len) ALN_WUR;

#endif
