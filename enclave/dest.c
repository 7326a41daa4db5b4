/* Destination policy. A URL is first screened as raw bytes (length, character set,
 * shape of scheme and authority, path segments and escapes), then parsed with
 * libcurl's URL API, the same parser that later sends the request, and compared with
 * each allowed prefix part by part. The raw screen exists so that a credential is
 * never sent to a path that an upstream would read differently from how it was
 * checked: curl removes dot segments, servers decode %2e and %2f, some treat '\' as
 * '/' and "..;" as "..". Anything ambiguous is refused instead of normalised. */
#include "enclave/dest.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEST_SCHEME "https://"

/* The parts of a parsed URL that the policy compares; owned (curl_free). */
struct dest_parts {
  char *host;
  char *port;
  char *path;
};

static void dest_parts_cleanup(struct dest_parts *d) {
  curl_free(d->host);
  curl_free(d->port);
  curl_free(d->path);
  memset(d, 0, sizeof(*d));
}

static int is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A path segment is a dot segment if it is "." or ".." once any ";params" are cut
 * off: Tomcat and Jetty treat "..;x" as "..". */
static int is_dot_segment(const char *seg, size_t len) {
  const char *semi = memchr(seg, ';', len);
  if (semi != NULL)
    len = (size_t)(semi - seg);
  return (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.');
}

/* check_raw_path refuses the |len| bytes of the raw path |p| if an upstream could
 * decode or normalise it into a different path: dot segments, a '%' that is not a
 * well-formed escape, and escapes of '/', '.', '\', NUL or '%' itself (a double
 * decoder would turn "%252e" into "."). */
static aln_status check_raw_path(const char *p, size_t len) {
  size_t seg_start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || p[i] == '/') {
      if (i > seg_start && is_dot_segment(p + seg_start, i - seg_start))
        return ALN_ERR_BAD_URL;
      seg_start = i + 1;
      continue;
    }
    if (p[i] != '%')
      continue;
    ALN_ENSURE(len - i > 2 && is_hex(p[i + 1]) && is_hex(p[i + 2]), ALN_ERR_BAD_URL);
    char hi = p[i + 1], lo = (char)(p[i + 2] | 0x20);                                   /* lower-case a hex letter */
    ALN_ENSURE(!(hi == '2' && (lo == 'f' || lo == 'e' || lo == '5')), ALN_ERR_BAD_URL); /* / . % */
    ALN_ENSURE(!(hi == '5' && lo == 'c'), ALN_ERR_BAD_URL);                             /* \ */
    ALN_ENSURE(!(hi == '0' && lo == '0'), ALN_ERR_BAD_URL);                             /* NUL */
  }
  return ALN_OK;
}

/* check_raw screens |url| before curl sees it and returns, through |raw_path| and
 * |raw_path_len|, where its path is, so the caller can check that curl's parse did
 * not alter it. Requires "https://" exactly (curl would also take "https:/h" or
 * "https:///h"), a non-empty authority without userinfo or escapes, and no
 * fragment. |allow_query| is 0 for prefixes. */
static aln_status check_raw(const char *url, int allow_query, const char **raw_path, size_t *raw_path_len) {
  ALN_ENSURE(url != NULL, ALN_ERR_BAD_URL);
  size_t len = strnlen(url, ALN_URL_MAX + 1);
  ALN_ENSURE(len > 0 && len <= ALN_URL_MAX, ALN_ERR_BAD_URL);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)url[i];
    /* Controls, space, DEL, non-ASCII (IDN is not supported: no homograph games),
     * backslashes (read as '/' by curl and many servers) and fragments. */
    ALN_ENSURE(c >= 0x21 && c < 0x7f && c != '\\' && c != '#', ALN_ERR_BAD_URL);
  }
  ALN_ENSURE(strncmp(url, DEST_SCHEME, strlen(DEST_SCHEME)) == 0, ALN_ERR_BAD_URL);

  const char *auth = url + strlen(DEST_SCHEME);
  size_t auth_len = strcspn(auth, "/?");
  ALN_ENSURE(auth_len > 0, ALN_ERR_BAD_URL);
  for (size_t i = 0; i < auth_len; i++)
    ALN_ENSURE(auth[i] != '@' && auth[i] != '%', ALN_ERR_BAD_URL);

  const char *path = auth + auth_len;
  size_t path_len = strcspn(path, "?");
  ALN_ENSURE(allow_query || path[path_len] == '\0', ALN_ERR_BAD_URL);
  ALN_GUARD(check_raw_path(path, path_len));
  *raw_path = path;
  *raw_path_len = path_len;
  return ALN_OK;
}

/* get_part returns 1 if |u| has |part| (storing it in *out when |out| is not NULL),
 * 0 if it is absent, -1 on any other error. */
static int get_part(CURLU *u, CURLUPart part, char **out, unsigned flags) {
  char *s = NULL;
  CURLUcode rc = curl_url_get(u, part, &s, flags);
  if (rc != CURLUE_OK) {
    curl_free(s);
    switch (rc) {
    case CURLUE_NO_USER:
    case CURLUE_NO_PASSWORD:
    case CURLUE_NO_OPTIONS:
    case CURLUE_NO_QUERY:
    case CURLUE_NO_FRAGMENT:
    case CURLUE_NO_PORT:
      return 0;
    default:
      return -1;
    }
  }
  if (out != NULL)
    *out = s;
  else
    curl_free(s);
  return 1;
}

/* dest_parse screens and parses |url| into |out| (owned by the caller, cleaned up
 * with dest_parts_cleanup). */
static aln_status dest_parse(struct dest_parts *out, const char *url, int allow_query) {
  aln_status st = ALN_ERR_BAD_URL;
  const char *raw_path;
  size_t raw_path_len;
  char *scheme = NULL;
  struct dest_parts d = {0};
  CURLU *u = NULL;

  ALN_GUARD_GOTO(st, check_raw(url, allow_query, &raw_path, &raw_path_len), out);
  u = curl_url();
  ALN_ENSURE_GOTO(st, u != NULL, ALN_ERR_NOMEM, out);
  /* No CURLU_NON_SUPPORT_SCHEME, CURLU_GUESS_SCHEME or CURLU_PATH_AS_IS: the URL
   * must be absolute and is parsed exactly as the transfer will parse it. */
  st = ALN_ERR_BAD_URL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
    goto out;
  if (get_part(u, CURLUPART_SCHEME, &scheme, 0) != 1 || strcmp(scheme, "https") != 0)
    goto out;
  if (get_part(u, CURLUPART_USER, NULL, 0) != 0 || get_part(u, CURLUPART_PASSWORD, NULL, 0) != 0 ||
      get_part(u, CURLUPART_OPTIONS, NULL, 0) != 0 || get_part(u, CURLUPART_FRAGMENT, NULL, 0) != 0)
    goto out;
  if (get_part(u, CURLUPART_HOST, &d.host, 0) != 1 || d.host[0] == '\0')
    goto out;
  /* "example.com." names the same host as "example.com" to DNS but not to a
   * string compare or a certificate check; refuse rather than pick a side. */
  if (d.host[strlen(d.host) - 1] == '.')
    goto out;
  if (get_part(u, CURLUPART_PORT, &d.port, CURLU_DEFAULT_PORT) != 1)
    goto out;
  if (get_part(u, CURLUPART_PATH, &d.path, 0) != 1)
    goto out;
  /* curl's path must be the raw path as screened (curl reports an empty one as
   * "/"): if curl normalised anything, the screen missed a case, so refuse. */
  if (raw_path_len == 0 ? strcmp(d.path, "/") != 0
                        : strlen(d.path) != raw_path_len || memcmp(d.path, raw_path, raw_path_len) != 0)
    goto out;
  int q = get_part(u, CURLUPART_QUERY, NULL, 0);
  if (q < 0 || (q == 1 && !allow_query))
    goto out;

  *out = d;
  memset(&d, 0, sizeof(d));
  st = ALN_OK;
out:
  curl_free(scheme);
  dest_parts_cleanup(&d);
  curl_url_cleanup(u);
  return st;
}

/* path_under returns 1 if |path| is |prefix| or lies below it at a segment
 * boundary: "/v1" admits "/v1" and "/v1/x" but not "/v10"; "/v1/" admits "/v1/"
 * and "/v1/x" but not "/v1". Paths are case-sensitive. */
static int path_under(const char *path, const char *prefix) {
  size_t plen = strlen(prefix);
  if (strncmp(path, prefix, plen) != 0)
    return 0;
  if (plen > 0 && prefix[plen - 1] == '/')
    return 1;
  return path[plen] == '\0' || path[plen] == '/';
}

static int parts_match(const struct dest_parts *url, const struct dest_parts *prefix) {
  return strcasecmp(url->host, prefix->host) == 0 && strcmp(url->port, prefix->port) == 0 &&
         path_under(url->path, prefix->path);
}

aln_status aln_dest_prefix_valid(const char *prefix) {
  struct dest_parts d;
  ALN_GUARD(dest_parse(&d, prefix, 0));
  dest_parts_cleanup(&d);
  return ALN_OK;
}

aln_status aln_dest_check(const char *url, const char *const *prefixes, size_t num_prefixes) {
  aln_status st = ALN_ERR_INTERNAL;
  struct dest_parts u = {0};

  ALN_GUARD_GOTO(st, dest_parse(&u, url, 1), out);
  st = ALN_ERR_DEST_NOT_ALLOWED;
  for (size_t i = 0; i < num_prefixes && prefixes != NULL; i++) {
    struct dest_parts p;
    /* A prefix that no longer parses (it was checked when stored) admits nothing. */
    if (dest_parse(&p, prefixes[i], 0) != ALN_OK)
      continue;
    int match = parts_match(&u, &p);
    dest_parts_cleanup(&p);
    if (match) {
      st = ALN_OK;
      break;
    }
  }
out:
  dest_parts_cleanup(&u);
  return st;
}
