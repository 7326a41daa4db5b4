/* Credential use: performs one HTTPS request with libcurl with the credential
 * injected as the binding says. Upstream TLS is always verified (peer and host
 * name) against the system store plus the credential's extra CA PEM, if any.
 * Redirects are not followed (a 3xx is returned as is), so the credential is
 * never sent anywhere but the checked URL. Echoes of the secret in the response
 * headers and body are replaced by "[REDACTED]". curl's buffers that saw the
 * secret are wiped before they are freed. */
#ifndef ALN_ENCLAVE_UPSTREAM_H
#define ALN_ENCLAVE_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "aileron/v1/enclave.pb-c.h"
#include "proto/http.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_UPSTREAM_BODY_MAX ((size_t)768 * 1024) /* fits in one response frame */
#define ALN_UPSTREAM_HEADERS_MAX 100

struct aln_header {
  char *name;
  char *value;
};

struct aln_upstream_response {
  long http_status;
  struct aln_header *headers;
  size_t num_headers;
  uint8_t *body;
  size_t body_len;
};

/* aln_upstream_response_cleanup frees everything in |r| and zeroes it. */
void aln_upstream_response_cleanup(struct aln_upstream_response *r);

/* aln_upstream_perform sends |req| (method, url, headers, body; the destination must
 * already have been checked with aln_dest_check) with |secret| injected per
 * |binding|, over HTTP/1.1 with "Accept-Encoding: identity" so echoes can be
 * redacted. Refused with ALN_ERR_USAGE before any connection: methods outside
 * GET/HEAD/POST/PUT/PATCH/DELETE, a body on GET/HEAD, header names that are not
 * RFC 9110 tokens, control characters (but tab) in values, more than ALN_UPSTREAM_HEADERS_MAX
 * headers, and request headers that would carry or override credentials
 * (Authorization, Proxy-Authorization, Cookie, the binding's own header), reroute
 * the request (Host, Forwarded, X-Forwarded-Host, X-Original-URL, method overrides
 * ...), frame the message (Content-Length, Transfer-Encoding, Connection, ...) or
 * defeat redaction (Accept-Encoding, Range). ALN_ERR_BAD_INJECTION for an empty
 * secret, one with CR/LF/NUL, or a binding header that is not a token or is a
 * framing header. ALN_ERR_UPSTREAM_TLS if certificate verification fails,
 * ALN_ERR_UPSTREAM for other transfer failures, ALN_ERR_UPSTREAM_TOO_LARGE past
 * ALN_UPSTREAM_BODY_MAX. Fills |out| on success. */
/* aln_upstream_injection_valid: ALN_OK if |secret| can be injected per |binding|,
 * ALN_ERR_BAD_INJECTION if not (an empty secret or one with CR/LF/NUL; a bearer
 * binding that names a header; a header binding whose name is not a token of at
 * most ALN_BINDING_HEADER_NAME_MAX bytes or is a framing header such as Host or
 * Content-Length; an unknown kind). A put checks it before sealing, so what is
 * stored can be used; a use checks it again before any connection. */
aln_status aln_upstream_injection_valid(const Aileron__V1__Binding *binding, const uint8_t *secret,
                                        size_t secret_len) ALN_WUR;

aln_status aln_upstream_perform(struct aln_upstream_response *out, const Aileron__V1__Binding *binding,
                                const struct aln_secret *secret, const Aileron__V1__UseCredentialRequest *req) ALN_WUR;

/* aln_upstream_global_init initialises libcurl once with allocation callbacks that
 * wipe every block curl frees. Call it at program start, before anything else uses
 * curl, or the callbacks cannot be installed. */
aln_status aln_upstream_global_init(void) ALN_WUR;

#endif
