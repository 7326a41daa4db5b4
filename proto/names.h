/* Credential names: the one rule both programs apply. The host checks it before
 * forwarding so that it never accepts a name the enclave will refuse; the enclave
 * checks it again because it trusts nothing the host sends. */
#ifndef ALN_PROTO_NAMES_H
#define ALN_PROTO_NAMES_H

#include <stddef.h>

#define ALN_NAME_MAX 64

/* aln_cred_name_valid returns 1 if the |len| bytes at |name| are a credential
 * name, else 0 (also for NULL): 1..ALN_NAME_MAX characters of [A-Za-z0-9._-], not
 * starting with '.' or '-'. A name is a URL path segment and a CLI argument, so it
 * can never be "." or "..", carry a separator or an escape, or read as an option. */
int aln_cred_name_valid(const char *name, size_t len);

/* aln_cred_name_valid_str is aln_cred_name_valid for the NUL-terminated string
 * |name| (which it reads no further than ALN_NAME_MAX + 1 bytes). */
int aln_cred_name_valid_str(const char *name);

#endif
