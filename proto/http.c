/* See http.h. */
#include "proto/http.h"

#include <string.h>
#include <strings.h>

int aln_http_is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int aln_http_token_valid(const char *s, size_t len) {
  if (s == NULL || len < 1 || len > ALN_HTTP_NAME_MAX)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (!aln_http_is_tchar((unsigned char)s[i]))
      return 0;
  return 1;
}

int aln_http_value_valid(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return 0;
  }
  return 1;
}

static int in_list(const char *name, const char *const *list) {
  for (; *list != NULL; list++)
    if (strcasecmp(name, *list) == 0)
      return 1;
  return 0;
}

/* clang-format off */
static const char *const k_request_refused[] = {
    "Authorization", "Proxy-Authorization", "Cookie",
    "Host", "Forwarded", "X-Forwarded-Host", "X-Host", "X-Original-URL", "X-Rewrite-URL",
    "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
    "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Expect", "TE", "Trailer", "Keep-Alive",
    "Accept-Encoding", "Range", "If-Range", NULL,
};
static const char *const k_injection_refused[] = {
    "Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Expect", "TE", "Trailer",
    "Keep-Alive", NULL,
};
/* clang-format on */

int aln_http_request_header_refused(const char *name) {
  return name == NULL || in_list(name, k_request_refused);
}

int aln_http_injection_header_refused(const char *name) {
  return name == NULL || in_list(name, k_injection_refused);
}
