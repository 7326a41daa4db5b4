/* Credential use over HTTPS with libcurl. Everything that can be refused without the
 * network (method, injection spec, request headers, CA bundle) is checked before a
 * handle exists. The transfer is pinned down: https only, no redirects, verified TLS
 * 1.2+, HTTP/1.1 (so the injected header lives only in curl's own buffers, not in
 * an HPACK table), no proxy from the environment, no cookies, no netrc. libcurl is
 * initialised with allocation callbacks that wipe every block it frees, because
 * curl's request buffer holds the injected header.
 *
 * Each call uses a fresh easy handle, so no connection, TLS session or CA store is
 * shared between credentials. Connection reuse is future work; it must keep the TLS
 * session cache and the CA store per credential (the ca_pem differs between them). */
#include "enclave/upstream.h"

#include <curl/curl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "enclave/redact.h"

#define CONNECT_TIMEOUT_S 10L
#define TOTAL_TIMEOUT_S 60L
#define RESP_HEADER_BYTES_MAX ((size_t)64 * 1024) /* all header lines of all responses */
#define CA_PEM_MAX ((size_t)256 * 1024)
#define BODY_INITIAL ((size_t)16 * 1024)
#define BEARER_PREFIX "Authorization: Bearer "

enum method_kind { METHOD_GET, METHOD_HEAD, METHOD_POST, METHOD_CUSTOM };

static const struct {
  const char *name;
  enum method_kind kind;
} k_methods[] = {
    {"GET", METHOD_GET},    {"HEAD", METHOD_HEAD},    {"POST", METHOD_POST},
    {"PUT", METHOD_CUSTOM}, {"PATCH", METHOD_CUSTOM}, {"DELETE", METHOD_CUSTOM},
};

/* ---- libcurl global state ---------------------------------------------------- */

/* wipe_free wipes the whole block before releasing it. malloc_usable_size covers
 * every byte curl could have written, whatever size it asked for. */
static void wipe_free(void *p) {
  if (p == NULL)
    return;
  OPENSSL_cleanse(p, malloc_usable_size(p));
  free(p);
}

/* wipe_realloc never lets realloc move a block and leave the old copy behind. */
static void *wipe_realloc(void *p, size_t n) {
  if (p == NULL)
    return malloc(n);
  if (n == 0)
    n = 1;
  void *q = malloc(n);
  if (q == NULL)
    return NULL;
  size_t old = malloc_usable_size(p);
  memcpy(q, p, old < n ? old : n);
  wipe_free(p);
  return q;
}

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void) {
  g_curl_init_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_free, wipe_realloc, strdup, calloc);
}

aln_status aln_upstream_global_init(void) {
  ALN_ENSURE(pthread_once(&g_curl_once, curl_init_once) == 0, ALN_ERR_INTERNAL);
  ALN_ENSURE(g_curl_init_rc == CURLE_OK, ALN_ERR_INTERNAL);
  return ALN_OK;
}

/* ---- validation (no network, owns nothing) ----------------------------------- */

/* has_line_break returns 1 if |len| bytes at |p| contain CR, LF or NUL: any of them
 * would end the header line early and start a header or request of the caller's. */
static int has_line_break(const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
      return 1;
  return 0;
}

static aln_status check_method(enum method_kind *out, const char *method) {
  ALN_ENSURE(method != NULL, ALN_ERR_USAGE);
  for (size_t i = 0; i < sizeof(k_methods) / sizeof(k_methods[0]); i++) {
    if (strcmp(method, k_methods[i].name) == 0) {
      *out = k_methods[i].kind;
      return ALN_OK;
    }
  }
  return ALN_ERR_USAGE;
}

aln_status aln_upstream_injection_valid(const Aileron__V1__Binding *binding, const uint8_t *secret, size_t secret_len) {
  ALN_ENSURE(binding != NULL && secret != NULL && secret_len > 0, ALN_ERR_BAD_INJECTION);
  ALN_ENSURE(!has_line_break(secret, secret_len), ALN_ERR_BAD_INJECTION);
  switch (binding->injection) {
  case AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER:
    ALN_ENSURE(binding->header_name == NULL || binding->header_name[0] == '\0', ALN_ERR_BAD_INJECTION);
    return ALN_OK;
  case AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER: {
    const char *name = binding->header_name;
    size_t n = name != NULL ? strnlen(name, ALN_BINDING_HEADER_NAME_MAX + 1) : 0;
    ALN_ENSURE(n <= ALN_BINDING_HEADER_NAME_MAX && aln_http_token_valid(name, n) &&
                   !aln_http_injection_header_refused(name),
               ALN_ERR_BAD_INJECTION);
    return ALN_OK;
  }
  default:
    return ALN_ERR_BAD_INJECTION;
  }
}

static aln_status check_request_headers(const Aileron__V1__UseCredentialRequest *req,
                                        const Aileron__V1__Binding *binding) {
  ALN_ENSURE(req->n_headers <= ALN_UPSTREAM_HEADERS_MAX, ALN_ERR_USAGE);
  ALN_ENSURE(req->n_headers == 0 || req->headers != NULL, ALN_ERR_USAGE);
  int header_injection = binding->injection == AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER;
  for (size_t i = 0; i < req->n_headers; i++) {
    const Aileron__V1__Header *h = req->headers[i];
    ALN_ENSURE(h != NULL && h->name != NULL && h->value != NULL, ALN_ERR_USAGE);
    /* A token cannot hold CR, LF, NUL, ':' or spaces, so the name is safe. */
    ALN_ENSURE(aln_http_token_valid(h->name, strnlen(h->name, ALN_HTTP_NAME_MAX + 1)), ALN_ERR_USAGE);
    ALN_ENSURE(aln_http_value_valid(h->value, strlen(h->value)), ALN_ERR_USAGE);
    ALN_ENSURE(!aln_http_request_header_refused(h->name), ALN_ERR_USAGE);
    ALN_ENSURE(!(header_injection && strcasecmp(h->name, binding->header_name) == 0), ALN_ERR_USAGE);
  }
  return ALN_OK;
}

/* ---- request construction ---------------------------------------------------- */

/* build_injection writes the NUL-terminated header line carrying the secret into
 * new locked memory |out|. */
static aln_status build_injection(struct aln_secret *out, const Aileron__V1__Binding *binding,
                                  const struct aln_secret *secret) {
  const char *head = BEARER_PREFIX;
  size_t head_len = strlen(BEARER_PREFIX), sep_len = 0, total;
  if (binding->injection == AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER) {
    head = binding->header_name;
    head_len = strlen(head);
    sep_len = 2; /* ": " */
  }
  ALN_ENSURE(!__builtin_add_overflow(head_len + sep_len, secret->len, &total) &&
                 !__builtin_add_overflow(total, 1, &total),
             ALN_ERR_BAD_INJECTION);
  ALN_GUARD(aln_secret_new(out, total));
  memcpy(out->p, head, head_len);
  memcpy(out->p + head_len, ": ", sep_len);
  memcpy(out->p + head_len + sep_len, secret->p, secret->len);
  out->p[total - 1] = '\0';
  return ALN_OK;
}

/* wipe_slist wipes every line of |list| (one of them carries the secret) and frees
 * it. */
static void wipe_slist(struct curl_slist *list) {
  for (struct curl_slist *l = list; l != NULL; l = l->next)
    if (l->data != NULL)
      OPENSSL_cleanse(l->data, strlen(l->data));
  curl_slist_free_all(list);
}

/* slist_add appends |line| to |*list|; ALN_ERR_NOMEM if curl cannot copy it (the
 * list is then unchanged). */
static aln_status slist_add(struct curl_slist **list, const char *line) {
  struct curl_slist *n = curl_slist_append(*list, line);
  ALN_ENSURE(n != NULL, ALN_ERR_NOMEM);
  *list = n;
  return ALN_OK;
}

/* add_request_headers appends the caller's (already checked) headers to |*list|.
 * curl drops a "Name:" line with an empty value, so an empty value is sent with
 * curl's "Name;" form. */
static aln_status add_request_headers(struct curl_slist **list, const Aileron__V1__UseCredentialRequest *req,
                                      int *has_content_type) {
  *has_content_type = 0;
  for (size_t i = 0; i < req->n_headers; i++) {
    const Aileron__V1__Header *h = req->headers[i];
    size_t n_len = strlen(h->name), v_len = strlen(h->value), line_len;
    ALN_ENSURE(!__builtin_add_overflow(n_len + 3, v_len, &line_len), ALN_ERR_USAGE);
    char *line = malloc(line_len);
    ALN_ENSURE(line != NULL, ALN_ERR_NOMEM);
    if (v_len == 0)
      snprintf(line, line_len, "%s;", h->name);
    else
      snprintf(line, line_len, "%s: %s", h->name, h->value);
    aln_status st = slist_add(list, line);
    free(line);
    ALN_GUARD(st);
    if (strcasecmp(h->name, "Content-Type") == 0)
      *has_content_type = 1;
  }
  return ALN_OK;
}

/* load_ca parses |pem| into a new stack of certificates. ALN_ERR_USAGE if it is too
 * large, malformed, or holds no certificate. */
static aln_status load_ca(STACK_OF(X509) * *out, const uint8_t *pem, size_t len) {
  aln_status st = ALN_ERR_USAGE;
  BIO *bio = NULL;
  STACK_OF(X509) *certs = NULL;
  X509 *x = NULL;

  ALN_ENSURE(len <= CA_PEM_MAX, ALN_ERR_USAGE);
  ERR_clear_error();
  bio = BIO_new_mem_buf(pem, (int)len);
  certs = sk_X509_new_null();
  ALN_ENSURE_GOTO(st, bio != NULL && certs != NULL, ALN_ERR_NOMEM, out);
  /* PEM_read_bio_X509 skips blocks of other types and reports the end of input as
   * PEM_R_NO_START_LINE; any other error is a malformed certificate. */
  while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    ALN_ENSURE_GOTO(st, sk_X509_push(certs, x) > 0, ALN_ERR_NOMEM, out);
    x = NULL;
  }
  unsigned long err = ERR_peek_last_error();
  st = ALN_ERR_USAGE;
  if (ERR_GET_LIB(err) != ERR_LIB_PEM || ERR_GET_REASON(err) != PEM_R_NO_START_LINE)
    goto out;
  if (sk_X509_num(certs) == 0)
    goto out;
  *out = certs;
  certs = NULL;
  st = ALN_OK;
out:
  ERR_clear_error();
  X509_free(x);
  sk_X509_pop_free(certs, X509_free);
  BIO_free(bio);
  return st;
}

/* The system trust store (SSL_CERT_FILE, else OpenSSL's default bundle), parsed once. Parsing the PEM bundle costs
 * milliseconds per handshake with OpenSSL 3, far more than the handshake itself, so it is read at the first use and
 * kept; a changed system bundle takes effect at restart. */
static STACK_OF(X509) * g_roots;
static pthread_once_t g_roots_once = PTHREAD_ONCE_INIT;

static void roots_load_once(void) {
  X509_STORE *store = X509_STORE_new();
  /* OpenSSL's own convention: SSL_CERT_FILE names the bundle, else the built-in
   * default. Set by whoever starts the enclave, like the rest of its environment. */
  const char *file = secure_getenv(X509_get_default_cert_file_env());
  if (file == NULL || file[0] == '\0')
    file = X509_get_default_cert_file();
  if (store != NULL && X509_STORE_load_file(store, file) == 1)
    g_roots = X509_STORE_get1_all_certs(store);
  if (g_roots == NULL)
    g_roots = sk_X509_new_null(); /* no system bundle: only per-credential CAs */
  X509_STORE_free(store);
  ERR_clear_error();
}

struct trust {
  STACK_OF(X509) * roots;
  STACK_OF(X509) * extra; /* the credential's own CAs, may be NULL */
};

static int add_all(X509_STORE *store, STACK_OF(X509) * certs) {
  for (int i = 0; i < sk_X509_num(certs); i++)
    if (X509_STORE_add_cert(store, sk_X509_value(certs, i)) != 1)
      return 0;
  return 1;
}

/* ssl_ctx_cb gives the handshake a store of its own: the system roots plus the
 * credential's CAs. A fresh store per request, so one credential's CA never
 * vouches for another credential's upstream. */
static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *userptr) {
  (void)curl;
  const struct trust *t = userptr;
  X509_STORE *store = X509_STORE_new();
  if (store == NULL || !add_all(store, t->roots) || (t->extra != NULL && !add_all(store, t->extra))) {
    X509_STORE_free(store);
    ERR_clear_error();
    return CURLE_SSL_CERTPROBLEM;
  }
  SSL_CTX_set_cert_store(ssl_ctx, store); /* takes ownership */
  return CURLE_OK;
}

/* ---- response collection ----------------------------------------------------- */

struct resp_ctx {
  struct aln_header *headers; /* ALN_UPSTREAM_HEADERS_MAX slots */
  size_t num_headers;
  size_t header_bytes;
  uint8_t *body;
  size_t body_len, body_cap;
  int too_large;
  int nomem;
};

static void wipe_str_free(char *s) {
  if (s != NULL) {
    OPENSSL_cleanse(s, strlen(s));
    free(s);
  }
}

static void free_headers(struct aln_header *h, size_t num) {
  for (size_t i = 0; i < num; i++) {
    wipe_str_free(h[i].name);
    wipe_str_free(h[i].value);
  }
  free(h);
}

static void resp_ctx_cleanup(struct resp_ctx *c) {
  free_headers(c->headers, c->num_headers);
  if (c->body != NULL) {
    OPENSSL_cleanse(c->body, c->body_cap);
    free(c->body);
  }
  memset(c, 0, sizeof(*c));
}

static char *dup_bytes(const char *p, size_t len) {
  char *s = malloc(len + 1);
  if (s != NULL) {
    memcpy(s, p, len);
    s[len] = '\0';
  }
  return s;
}

/* header_cb keeps the "Name: value" lines of the last response curl reports (a new
 * status line discards those of an interim 1xx). Lines that are not a token, a colon
 * and a value free of control characters are dropped. */
static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata) {
  struct resp_ctx *c = userdata;
  size_t n = size * nitems, len = n;
  if (n > RESP_HEADER_BYTES_MAX - c->header_bytes) {
    c->too_large = 1;
    return 0;
  }
  c->header_bytes += n;
  if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    free_headers(c->headers, c->num_headers);
    c->headers = NULL;
    c->num_headers = 0;
    return n;
  }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    len--;
  const char *colon = memchr(buf, ':', len);
  if (colon == NULL || colon == buf)
    return n; /* blank line, obsolete line folding, garbage */
  size_t name_len = (size_t)(colon - buf);
  for (size_t i = 0; i < name_len; i++)
    if (!aln_http_is_tchar((unsigned char)buf[i]))
      return n;
  const char *v = colon + 1, *end = buf + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  for (const char *p = v; p < end; p++)
    if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
      return n;
  if (c->num_headers == ALN_UPSTREAM_HEADERS_MAX) {
    c->too_large = 1;
    return 0;
  }
  if (c->headers == NULL) {
    c->headers = calloc(ALN_UPSTREAM_HEADERS_MAX, sizeof(*c->headers));
    if (c->headers == NULL) {
      c->nomem = 1;
      return 0;
    }
  }
  struct aln_header *h = &c->headers[c->num_headers];
  h->name = dup_bytes(buf, name_len);
  h->value = dup_bytes(v, (size_t)(end - v));
  c->num_headers++; /* counted even if half-allocated, so cleanup frees it */
  if (h->name == NULL || h->value == NULL) {
    c->nomem = 1;
    return 0;
  }
  return n;
}

/* write_cb appends to the body, growing by copy so that no unwiped copy of the body
 * (which may echo the secret) is left behind by realloc. */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  struct resp_ctx *c = userdata;
  size_t n = size * nmemb;
  if (n > ALN_UPSTREAM_BODY_MAX - c->body_len) {
    c->too_large = 1;
    return 0;
  }
  if (c->body_len + n > c->body_cap) {
    size_t cap = c->body_cap < BODY_INITIAL ? BODY_INITIAL : c->body_cap * 2;
    if (cap < c->body_len + n)
      cap = c->body_len + n;
    if (cap > ALN_UPSTREAM_BODY_MAX)
      cap = ALN_UPSTREAM_BODY_MAX;
    uint8_t *nb = malloc(cap);
    if (nb == NULL) {
      c->nomem = 1;
      return 0;
    }
    if (c->body != NULL) {
      memcpy(nb, c->body, c->body_len);
      OPENSSL_cleanse(c->body, c->body_cap);
      free(c->body);
    }
    c->body = nb;
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, ptr, n);
  c->body_len += n;
  return n;
}

/* redact_str runs aln_redact over the C string |*s|. */
static aln_status redact_str(char **s, const struct aln_secret *secret) {
  uint8_t *p = (uint8_t *)*s;
  size_t len = strlen(*s);
  aln_status st = aln_redact(&p, &len, secret->p, secret->len);
  *s = (char *)p;
  return st;
}

static aln_status redact_response(struct resp_ctx *c, const struct aln_secret *secret) {
  for (size_t i = 0; i < c->num_headers; i++) {
    ALN_GUARD(redact_str(&c->headers[i].name, secret));
    ALN_GUARD(redact_str(&c->headers[i].value, secret));
  }
  size_t old_cap = c->body_cap, old_len = c->body_len;
  uint8_t *old = c->body;
  ALN_GUARD(aln_redact(&c->body, &c->body_len, secret->p, secret->len));
  if (c->body != old || c->body_len != old_len)
    c->body_cap = c->body_len; /* a new exact-size buffer */
  else
    c->body_cap = old_cap;
  return ALN_OK;
}

/* map_curl_error turns a failed transfer into a status without looking at curl's
 * error text (which can quote the request). */
static aln_status map_curl_error(CURLcode rc, const struct resp_ctx *c) {
  if (c->nomem)
    return ALN_ERR_NOMEM;
  if (c->too_large)
    return ALN_ERR_UPSTREAM_TOO_LARGE;
  switch (rc) {
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
    return ALN_ERR_UPSTREAM_TLS;
  case CURLE_FILESIZE_EXCEEDED:
    return ALN_ERR_UPSTREAM_TOO_LARGE;
  case CURLE_OUT_OF_MEMORY:
    return ALN_ERR_NOMEM;
  default:
    return ALN_ERR_UPSTREAM;
  }
}

/* Every option is checked: an option curl ignored would silently weaken the policy. */
#define SETOPT(st, curl, opt, val)                                                                                     \
  ALN_ENSURE_GOTO(st, curl_easy_setopt(curl, opt, val) == CURLE_OK, ALN_ERR_INTERNAL, out)

/* set_policy applies the options that hold for every request. */
static aln_status set_policy(CURL *curl) {
  aln_status st = ALN_ERR_INTERNAL;
  SETOPT(st, curl, CURLOPT_PROTOCOLS_STR, "https");
  SETOPT(st, curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  SETOPT(st, curl, CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(st, curl, CURLOPT_MAXREDIRS, 0L);
  SETOPT(st, curl, CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT(st, curl, CURLOPT_SSL_VERIFYHOST, 2L);
  SETOPT(st, curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  SETOPT(st, curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
#if CURL_AT_LEAST_VERSION(7, 87, 0)
  /* A cached store would be shared with the next handshake and keep this
   * credential's extra CA in it. */
  SETOPT(st, curl, CURLOPT_CA_CACHE_TIMEOUT, 0L);
#endif
  SETOPT(st, curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SETOPT(st, curl, CURLOPT_NOSIGNAL, 1L);
  SETOPT(st, curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
  SETOPT(st, curl, CURLOPT_TIMEOUT, TOTAL_TIMEOUT_S);
  SETOPT(st, curl, CURLOPT_PROXY, ""); /* ignore *_proxy from the environment */
  SETOPT(st, curl, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
  SETOPT(st, curl, CURLOPT_FORBID_REUSE, 1L);
  SETOPT(st, curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ALN_UPSTREAM_BODY_MAX);
  /* No CURLOPT_COOKIEFILE: the cookie engine stays off. No CURLOPT_ERRORBUFFER or
   * CURLOPT_VERBOSE: curl's text may quote the request. */
  st = ALN_OK;
out:
  return st;
}

aln_status aln_upstream_perform(struct aln_upstream_response *out, const Aileron__V1__Binding *binding,
                                const struct aln_secret *secret, const Aileron__V1__UseCredentialRequest *req) {
  aln_status st = ALN_ERR_INTERNAL;
  enum method_kind kind;
  struct aln_secret inj = {0};
  struct curl_slist *hdrs = NULL;
  STACK_OF(X509) *cas = NULL;
  struct trust trust = {0};
  CURL *curl = NULL;
  struct resp_ctx rc = {0};
  int has_content_type = 0;
  CURLcode cc;
  long code = 0;

  ALN_ENSURE(out != NULL && binding != NULL && secret != NULL && req != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_GUARD(check_method(&kind, req->method));
  ALN_ENSURE(req->url != NULL && req->url[0] != '\0', ALN_ERR_BAD_URL);
  /* A body on GET or HEAD has no defined meaning; curl would turn GET into POST. */
  ALN_ENSURE(req->body.len == 0 || (kind != METHOD_GET && kind != METHOD_HEAD), ALN_ERR_USAGE);
  ALN_ENSURE(req->body.len == 0 || req->body.data != NULL, ALN_ERR_USAGE);
  ALN_GUARD(aln_upstream_injection_valid(binding, secret->p, secret->len));
  ALN_GUARD(check_request_headers(req, binding));
  if (binding->ca_pem.len > 0)
    ALN_GUARD(load_ca(&cas, binding->ca_pem.data, binding->ca_pem.len));
  ALN_GUARD_GOTO(st, aln_upstream_global_init(), out);
  ALN_ENSURE_GOTO(st, pthread_once(&g_roots_once, roots_load_once) == 0, ALN_ERR_INTERNAL, out);
  trust.roots = g_roots;
  trust.extra = cas;

  /* The header line is built in locked memory; curl copies it into its list (wiped
   * below) and its request buffer (wiped by wipe_free). */
  ALN_GUARD_GOTO(st, build_injection(&inj, binding, secret), out);
  ALN_GUARD_GOTO(st, slist_add(&hdrs, (const char *)inj.p), out);
  aln_secret_free(&inj);
  ALN_GUARD_GOTO(st, add_request_headers(&hdrs, req, &has_content_type), out);
  /* No "Expect: 100-continue" round trip; identity only, so redaction sees the
   * bytes as sent (absent Accept-Encoding means any coding is acceptable). */
  ALN_GUARD_GOTO(st, slist_add(&hdrs, "Expect:"), out);
  ALN_GUARD_GOTO(st, slist_add(&hdrs, "Accept-Encoding: identity"), out);

  curl = curl_easy_init();
  ALN_ENSURE_GOTO(st, curl != NULL, ALN_ERR_NOMEM, out);
  ALN_GUARD_GOTO(st, set_policy(curl), out);
  SETOPT(st, curl, CURLOPT_URL, req->url);
  SETOPT(st, curl, CURLOPT_HEADERFUNCTION, header_cb);
  SETOPT(st, curl, CURLOPT_HEADERDATA, &rc);
  SETOPT(st, curl, CURLOPT_WRITEFUNCTION, write_cb);
  SETOPT(st, curl, CURLOPT_WRITEDATA, &rc);
  /* curl loads no CA file of its own: the callback installs the whole store. */
  SETOPT(st, curl, CURLOPT_CAINFO, NULL);
  SETOPT(st, curl, CURLOPT_CAPATH, NULL);
  SETOPT(st, curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
  SETOPT(st, curl, CURLOPT_SSL_CTX_DATA, &trust);
  switch (kind) {
  case METHOD_GET:
    break;
  case METHOD_HEAD:
    SETOPT(st, curl, CURLOPT_NOBODY, 1L);
    break;
  case METHOD_CUSTOM:
    SETOPT(st, curl, CURLOPT_CUSTOMREQUEST, req->method);
    /* DELETE without a body sends no Content-Length; PUT and PATCH always do. */
    if (req->body.len == 0 && strcmp(req->method, "DELETE") == 0)
      break;
    /* fall through */
  case METHOD_POST:
    SETOPT(st, curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
    SETOPT(st, curl, CURLOPT_POSTFIELDS, req->body.len > 0 ? (const char *)req->body.data : "");
    /* curl would otherwise claim application/x-www-form-urlencoded. */
    if (!has_content_type)
      ALN_GUARD_GOTO(st, slist_add(&hdrs, "Content-Type:"), out);
    break;
  }
  SETOPT(st, curl, CURLOPT_HTTPHEADER, hdrs);

  cc = curl_easy_perform(curl);
  if (cc != CURLE_OK) {
    st = map_curl_error(cc, &rc);
    goto out;
  }
  ALN_ENSURE_GOTO(st, curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code >= 100 && code <= 999,
                  ALN_ERR_UPSTREAM, out);
  ALN_GUARD_GOTO(st, redact_response(&rc, secret), out);

  out->http_status = code;
  out->headers = rc.headers;
  out->num_headers = rc.num_headers;
  out->body = rc.body;
  out->body_len = rc.body_len;
  memset(&rc, 0, sizeof(rc));
  st = ALN_OK;
out:
  resp_ctx_cleanup(&rc);
  curl_easy_cleanup(curl);
  wipe_slist(hdrs);
  aln_secret_free(&inj);
  sk_X509_pop_free(cas, X509_free);
  return st;
}

void aln_upstream_response_cleanup(struct aln_upstream_response *r) {
  if (r == NULL)
    return;
  free_headers(r->headers, r->num_headers);
  if (r->body != NULL) {
    OPENSSL_cleanse(r->body, r->body_len);
    free(r->body);
  }
  memset(r, 0, sizeof(*r));
}
