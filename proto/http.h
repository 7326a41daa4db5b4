/* HTTP header rules of a credential use, one copy for both programs: the host
 * applies them early, for a clear error at its API, and the enclave applies them
 * again before any connection, as the authority. */
#ifndef ALN_PROTO_HTTP_H
#define ALN_PROTO_HTTP_H

#include <stddef.h>

/* The longest header name accepted anywhere, and the longest a binding may inject
 * into. */
#define ALN_HTTP_NAME_MAX 256
#define ALN_BINDING_HEADER_NAME_MAX 64

/* aln_http_is_tchar: an RFC 9110 tchar. */
int aln_http_is_tchar(unsigned char c);

/* aln_http_token_valid: |len| bytes at |s| are an RFC 9110 token of 1 to
 * ALN_HTTP_NAME_MAX bytes. */
int aln_http_token_valid(const char *s, size_t len);

/* aln_http_value_valid: |len| bytes at |s| hold no control character other than
 * horizontal tab (CR, LF and NUL above all: no header or request of the caller's
 * own upstream). */
int aln_http_value_valid(const char *s, size_t len);

/* aln_http_request_header_refused: a request header a caller may not set (any
 * case). Credentials: the caller must not add or replace one. Routing: Host and the
 * de-facto rewrite headers some frameworks honour could send the credential to
 * another virtual host or path than the one checked. Framing: curl sets these from
 * the body it sends; a caller's own would desynchronise the request. Redaction:
 * compressed or partial (Range) responses would let an echo of the secret slip
 * past redaction in pieces. */
int aln_http_request_header_refused(const char *name);

/* aln_http_injection_header_refused: a header a binding may not inject into (any
 * case): it would change the framing or the routing of the request rather than
 * authenticate it. */
int aln_http_injection_header_refused(const char *name);

#endif
