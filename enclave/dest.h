/* Destination policy: whether a URL falls under one of a credential's allowed
 * prefixes. Both are parsed with libcurl's URL parser (never by hand) and compared
 * component by component: scheme must be https, host equal (case-insensitive, no
 * userinfo in either), port equal (443 when absent), and the URL's normalised path
 * must start with the prefix's path at a segment boundary (prefix "/v1" admits
 * "/v1" and "/v1/x", not "/v10"; prefix "/v1/" admits "/v1/" and "/v1/x"). Refused
 * outright, so a credential never goes to a path that differs after normalisation:
 * a scheme other than exactly "https://", '@' or '%' in the authority, '#', '\',
 * control and non-ASCII bytes, dot segments (also "..;" forms), the escapes %2f,
 * %2e, %5c, %00 and %25, malformed escapes, and any path libcurl would rewrite. */
#ifndef ALN_ENCLAVE_DEST_H
#define ALN_ENCLAVE_DEST_H

#include <stddef.h>

#include "proto/status.h"

#define ALN_URL_MAX 4096

/* aln_dest_prefix_valid returns ALN_OK if |prefix| is an acceptable allowed prefix
 * (absolute https URL with a host, no userinfo, query or fragment), else
 * ALN_ERR_BAD_URL. Checked when a credential is stored. */
aln_status aln_dest_prefix_valid(const char *prefix) ALN_WUR;

/* aln_dest_check returns ALN_OK if |url| is allowed by one of the |num_prefixes|
 * prefixes, ALN_ERR_BAD_URL if |url| is not an acceptable absolute https URL, and
 * ALN_ERR_DEST_NOT_ALLOWED otherwise. */
aln_status aln_dest_check(const char *url, const char *const *prefixes, size_t num_prefixes) ALN_WUR;

#endif
