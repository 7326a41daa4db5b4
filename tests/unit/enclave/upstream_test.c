/* Upstream requests. Part one: every refusal that must happen before a connection
 * is attempted. Those requests target https://127.0.0.1:1/, a closed port, so if a
 * check were skipped the call would reach the network and fail with
 * ALN_ERR_UPSTREAM instead of the expected status. Part two: a TLS server on
 * loopback in a thread, with a certificate from a CA made at start-up, to check what
 * actually goes over the wire (injection, headers, method, body), that the echo of
 * the secret is redacted, that TLS verification and the size caps hold, that
 * redirects and proxy variables are not followed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "enclave/upstream.h"

#define CLOSED_URL "https://127.0.0.1:1/v1/x"
#define SECRET "s3cr3t-token-0123456789"

/* ---- helpers for requests ---------------------------------------------------- */

static Aileron__V1__UseCredentialRequest make_req(const char *method, const char *url) {
  Aileron__V1__UseCredentialRequest r = AILERON__V1__USE_CREDENTIAL_REQUEST__INIT;
  r.method = (char *)method;
  r.url = (char *)url;
  return r;
}

static Aileron__V1__Binding bearer(void) {
  Aileron__V1__Binding b = AILERON__V1__BINDING__INIT;
  b.injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER;
  return b;
}

static Aileron__V1__Binding header_binding(const char *name) {
  Aileron__V1__Binding b = AILERON__V1__BINDING__INIT;
  b.injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER;
  b.header_name = (char *)name;
  return b;
}

static struct aln_secret make_secret(const char *s, size_t len) {
  struct aln_secret sec = {0};
  assert_int_equal(aln_secret_from(&sec, (const uint8_t *)s, len), ALN_OK);
  return sec;
}

/* perform runs one request and checks its status; on failure |out| must be empty. */
static aln_status perform(struct aln_upstream_response *out, const Aileron__V1__Binding *b, const char *secret,
                          size_t secret_len, const Aileron__V1__UseCredentialRequest *req) {
  struct aln_secret sec = make_secret(secret, secret_len);
  aln_status st = aln_upstream_perform(out, b, &sec, req);
  aln_secret_free(&sec);
  if (st != ALN_OK) {
    assert_null(out->headers);
    assert_int_equal(out->num_headers, 0);
    assert_null(out->body);
    assert_int_equal(out->body_len, 0);
  }
  return st;
}

static aln_status perform_simple(const Aileron__V1__Binding *b, const Aileron__V1__UseCredentialRequest *req) {
  struct aln_upstream_response out;
  aln_status st = perform(&out, b, SECRET, strlen(SECRET), req);
  aln_upstream_response_cleanup(&out);
  return st;
}

/* with_header runs a GET to the closed port with one extra request header. */
static aln_status with_header(const Aileron__V1__Binding *b, const char *name, const char *value) {
  Aileron__V1__Header h = AILERON__V1__HEADER__INIT;
  h.name = (char *)name;
  h.value = (char *)value;
  Aileron__V1__Header *hp[] = {&h};
  Aileron__V1__UseCredentialRequest req = make_req("GET", CLOSED_URL);
  req.n_headers = 1;
  req.headers = hp;
  return perform_simple(b, &req);
}

static const char *find_header(const struct aln_upstream_response *r, const char *name) {
  for (size_t i = 0; i < r->num_headers; i++)
    if (strcasecmp(r->headers[i].name, name) == 0)
      return r->headers[i].value;
  return NULL;
}

static size_t count_sub(const char *hay, const char *needle) {
  size_t n = 0, nl = strlen(needle);
  for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + nl, needle))
    n++;
  return n;
}

/* ---- part one: refused before any connection ---------------------------------- */

static void test_closed_port_is_upstream_error(void **state) {
  (void)state;
  Aileron__V1__Binding b = bearer();
  Aileron__V1__UseCredentialRequest req = make_req("GET", CLOSED_URL);
  assert_int_equal(perform_simple(&b, &req), ALN_ERR_UPSTREAM);
  Aileron__V1__Binding h = header_binding("X-Api-Key");
  assert_int_equal(perform_simple(&h, &req), ALN_ERR_UPSTREAM);
  /* The baseline for the header tests below: an ordinary header goes through. */
  assert_int_equal(with_header(&b, "X-Request-Id", "abc"), ALN_ERR_UPSTREAM);
}

static void test_methods(void **state) {
  (void)state;
  Aileron__V1__Binding b = bearer();
  const char *ok[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    Aileron__V1__UseCredentialRequest req = make_req(ok[i], CLOSED_URL);
    assert_int_equal(perform_simple(&b, &req), ALN_ERR_UPSTREAM);
  }
  const char *bad[] = {"get", "Get", "OPTIONS", "TRACE", "CONNECT", "", "GET ", " GET", "GET\r\n", "POSTX"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    Aileron__V1__UseCredentialRequest req = make_req(bad[i], CLOSED_URL);
    assert_int_equal(perform_simple(&b, &req), ALN_ERR_USAGE);
  }
  Aileron__V1__UseCredentialRequest req = make_req(NULL, CLOSED_URL);
  assert_int_equal(perform_simple(&b, &req), ALN_ERR_USAGE);
}

static void test_body_on_get_or_head(void **state) {
  (void)state;
  Aileron__V1__Binding b = bearer();
  const char *methods[] = {"GET", "HEAD"};
  for (size_t i = 0; i < 2; i++) {
    Aileron__V1__UseCredentialRequest req = make_req(methods[i], CLOSED_URL);
    req.body.data = (uint8_t *)"x";
    req.body.len = 1;
    assert_int_equal(perform_simple(&b, &req), ALN_ERR_USAGE);
  }
  Aileron__V1__UseCredentialRequest req = make_req("POST", CLOSED_URL);
  req.body.data = (uint8_t *)"x";
  req.body.len = 1;
  assert_int_equal(perform_simple(&b, &req), ALN_ERR_UPSTREAM);
}

static void test_bad_url_and_args(void **state) {
  (void)state;
  Aileron__V1__Binding b = bearer();
  Aileron__V1__UseCredentialRequest req = make_req("GET", "");
  assert_int_equal(perform_simple(&b, &req), ALN_ERR_BAD_URL);
  req = make_req("GET", NULL);
  assert_int_equal(perform_simple(&b, &req), ALN_ERR_BAD_URL);

  struct aln_secret sec = make_secret(SECRET, strlen(SECRET));
  struct aln_upstream_response out;
  req = make_req("GET", CLOSED_URL);
  assert_int_equal(aln_upstream_perform(NULL, &b, &sec, &req), ALN_ERR_USAGE);
  assert_int_equal(aln_upstream_perform(&out, NULL, &sec, &req), ALN_ERR_USAGE);
  assert_int_equal(aln_upstream_perform(&out, &b, NULL, &req), ALN_ERR_USAGE);
  assert_int_equal(aln_upstream_perform(&out, &b, &sec, NULL), ALN_ERR_USAGE);
  aln_secret_free(&sec);
}

static void test_forbidden_headers(void **state) {
  (void)state;
  Aileron__V1__Binding b = bearer();
  const char *names[] = {"Authorization",
                         "authorization",
                         "AUTHORIZATION",
                         "AuThOrIzAtIoN",
                         "Proxy-Authorization",
                         "proxy-authorization",
                         "Cookie",
                         "cookie",
                         "COOKIE",
                         "Host",
                         "host",
                         "HOST",
                         "X-Forwarded-Host",
                         "Forwarded",
                         "X-Original-URL",
                         "X-Rewrite-URL",
                         "X-HTTP-Method-Override",
                         "Content-Length",
                         "content-length",
                         "Transfer-Encoding",
                         "Connection",
                         "Upgrade",
                         "Expect",
                         "TE",
                         "Accept-Encoding",
                         "Range",
                         "If-Range"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (with_header(&b, names[i], "x") != ALN_ERR_USAGE)
      fail_msg("header %s was not refused", names[i]);
  }
  /* Near misses are ordinary headers. */
  assert_int_equal(with_header(&b, "Authorization2", "x"), ALN_ERR_UPSTREAM);
  assert_int_equal(with_header(&b, "X-Cookie", "x"), ALN_ERR_UPSTREAM);
}

static void test_binding_header_name_refused(void **state) {
  (void)state;
  Aileron__V1__Binding b = header_binding("X-Api-Key");
  assert_int_equal(with_header(&b, "X-Api-Key", "mine"), ALN_ERR_USAGE);
  assert_int_equal(with_header(&b, "x-api-key", "mine"), ALN_ERR_USAGE);
  assert_int_equal(with_header(&b, "X-API-KEY", "mine"), ALN_ERR_USAGE);
  assert_int_equal(with_header(&b, "X-Api-Key2", "mine"), ALN_ERR_UPSTREAM);
  /* The same name is fine when the binding injects a bearer token instead. */
  Aileron__V1__Binding br = bearer();
  assert_int_equal(with_header(&br, "X-Api-Key", "mine"), ALN_ERR_UPSTREAM);
}

static void test_header_line_breaks(void **state) {
  (void)state;
  Aileron__V1__Binding b = bearer();
  const char *values[] = {"a\r\nX-Injected: y", "a\nb", "a\rb", "\r\n", "x\n"};
  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
    assert_int_equal(with_header(&b, "X-Value", values[i]), ALN_ERR_USAGE);
  const char *names[] = {"X\r\nY", "X\nY", "X Y", "X:Y", "", "X-Ünï", "X(", "X\t"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (with_header(&b, names[i], "v") != ALN_ERR_USAGE)
      fail_msg("header name %zu was not refused", i);
  /* Tabs, spaces and empty values are legal in a value. */
  assert_int_equal(with_header(&b, "X-Value", "a\tb c"), ALN_ERR_UPSTREAM);
  assert_int_equal(with_header(&b, "X-Value", ""), ALN_ERR_UPSTREAM);
  assert_int_equal(with_header(&b, "!#$%&'*+-.^_`|~09azAZ", "v"), ALN_ERR_UPSTREAM);
  assert_int_equal(with_header(&b, NULL, "v"), ALN_ERR_USAGE);
  assert_int_equal(with_header(&b, "X-Value", NULL), ALN_ERR_USAGE);
}

static void test_too_many_headers(void **state) {
  (void)state;
  Aileron__V1__Binding b = bearer();
  enum { N = ALN_UPSTREAM_HEADERS_MAX + 1 };
  Aileron__V1__Header h[N];
  Aileron__V1__Header *hp[N];
  char names[N][16];
  for (size_t i = 0; i < N; i++) {
    aileron__v1__header__init(&h[i]);
    snprintf(names[i], sizeof(names[i]), "X-H-%zu", i);
    h[i].name = names[i];
    h[i].value = "v";
    hp[i] = &h[i];
  }
  Aileron__V1__UseCredentialRequest req = make_req("GET", CLOSED_URL);
  req.headers = hp;
  req.n_headers = ALN_UPSTREAM_HEADERS_MAX;
  assert_int_equal(perform_simple(&b, &req), ALN_ERR_UPSTREAM);
  req.n_headers = ALN_UPSTREAM_HEADERS_MAX + 1;
  assert_int_equal(perform_simple(&b, &req), ALN_ERR_USAGE);
}

static void test_bad_injection(void **state) {
  (void)state;
  Aileron__V1__UseCredentialRequest req = make_req("GET", CLOSED_URL);
  const char *names[] = {"",           "X Api", "X:Api", "X-Api\r\n",      "X-Api\n",
                         "X-\xc3\xbc", "(X)",   "Host",  "content-length", "Transfer-Encoding"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    Aileron__V1__Binding b = header_binding(names[i]);
    if (perform_simple(&b, &req) != ALN_ERR_BAD_INJECTION)
      fail_msg("injection header name %zu was not refused", i);
  }
  Aileron__V1__Binding nul = header_binding(NULL);
  assert_int_equal(perform_simple(&nul, &req), ALN_ERR_BAD_INJECTION);
  Aileron__V1__Binding unspecified = AILERON__V1__BINDING__INIT;
  assert_int_equal(perform_simple(&unspecified, &req), ALN_ERR_BAD_INJECTION);
  Aileron__V1__Binding unknown = bearer();
  unknown.injection = (Aileron__V1__InjectionKind)99;
  assert_int_equal(perform_simple(&unknown, &req), ALN_ERR_BAD_INJECTION);
}

static void test_secret_line_breaks(void **state) {
  (void)state;
  Aileron__V1__UseCredentialRequest req = make_req("GET", CLOSED_URL);
  Aileron__V1__Binding kinds[] = {bearer(), header_binding("X-Api-Key")};
  static const char *const secrets[] = {"tok\r\nX-Evil: 1", "tok\n", "\rtok", "to\0k"};
  static const size_t lens[] = {15, 4, 4, 4};
  struct aln_upstream_response out;
  for (size_t k = 0; k < 2; k++) {
    for (size_t i = 0; i < 4; i++) {
      assert_int_equal(perform(&out, &kinds[k], secrets[i], lens[i], &req), ALN_ERR_BAD_INJECTION);
      aln_upstream_response_cleanup(&out);
    }
    assert_int_equal(perform(&out, &kinds[k], "", 0, &req), ALN_ERR_BAD_INJECTION);
    assert_int_equal(perform(&out, &kinds[k], "tok", 3, &req), ALN_ERR_UPSTREAM);
  }
}

static void test_bad_ca_pem(void **state) {
  (void)state;
  Aileron__V1__UseCredentialRequest req = make_req("GET", CLOSED_URL);
  Aileron__V1__Binding b = bearer();
  /* A public key is PEM but not a certificate (RFC 8032 test 1 public key). */
  static const char pubkey_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                   "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
                                   "-----END PUBLIC KEY-----\n";
  const char *pems[] = {
      "not a pem at all", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      "-----BEGIN CERTIFICATE-----\nMIIB\n", /* truncated */
      pubkey_pem,                            /* a key, no certificate */
  };
  for (size_t i = 0; i < sizeof(pems) / sizeof(pems[0]); i++) {
    b.ca_pem.data = (uint8_t *)pems[i];
    b.ca_pem.len = strlen(pems[i]);
    if (perform_simple(&b, &req) != ALN_ERR_USAGE)
      fail_msg("ca_pem %zu was not refused", i);
  }
}

/* ---- part two: a TLS server on loopback --------------------------------------- */

struct pki {
  EVP_PKEY *ca_key, *leaf_key, *other_ca_key;
  X509 *ca, *leaf, *wrong_name_leaf, *other_ca;
  char *ca_pem, *two_ca_pem;
};

static struct pki g_pki;

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
  assert_non_null(ext);
  assert_int_equal(X509_add_ext(x, ext, -1), 1);
  X509_EXTENSION_free(ext);
}

/* make_cert returns a certificate for |key| named |cn|, signed by |issuer| (self-signed
 * if NULL); a CA if |san| is NULL, else a TLS server certificate for |san|. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, const char *san) {
  static long serial = 1;
  X509 *x = X509_new();
  assert_non_null(x);
  assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
  assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
  assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
  assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
  assert_int_equal(X509_set_pubkey(x, key), 1);
  X509_NAME *name = X509_get_subject_name(x);
  assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
  assert_int_equal(X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name), 1);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
  add_ext(x, &ctx, NID_subject_key_identifier, "hash");
  if (san == NULL) {
    add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature");
    add_ext(x, &ctx, NID_ext_key_usage, "serverAuth");
    add_ext(x, &ctx, NID_subject_alt_name, san);
    add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
  }
  assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
  return x;
}

static char *cert_pem(X509 *x) {
  BIO *bio = BIO_new(BIO_s_mem());
  assert_non_null(bio);
  assert_int_equal(PEM_write_bio_X509(bio, x), 1);
  char *data;
  long len = BIO_get_mem_data(bio, &data);
  char *s = strndup(data, (size_t)len);
  assert_non_null(s);
  BIO_free(bio);
  return s;
}

static int pki_setup(void **state) {
  (void)state;
  struct pki *p = &g_pki;
  p->ca_key = EVP_EC_gen("P-256");
  p->leaf_key = EVP_EC_gen("P-256");
  p->other_ca_key = EVP_EC_gen("P-256");
  if (p->ca_key == NULL || p->leaf_key == NULL || p->other_ca_key == NULL)
    return -1;
  p->ca = make_cert(p->ca_key, "aileron test CA", NULL, NULL, NULL);
  p->other_ca = make_cert(p->other_ca_key, "unrelated CA", NULL, NULL, NULL);
  p->leaf = make_cert(p->leaf_key, "127.0.0.1", p->ca, p->ca_key, "IP:127.0.0.1");
  p->wrong_name_leaf = make_cert(p->leaf_key, "other.example", p->ca, p->ca_key, "DNS:other.example");
  p->ca_pem = cert_pem(p->ca);
  char *other = cert_pem(p->other_ca);
  size_t n = strlen(other) + strlen(p->ca_pem) + 1;
  p->two_ca_pem = malloc(n);
  if (p->two_ca_pem == NULL)
    return -1;
  snprintf(p->two_ca_pem, n, "%s%s", other, p->ca_pem); /* ours is not first */
  free(other);
  return 0;
}

static int pki_teardown(void **state) {
  (void)state;
  struct pki *p = &g_pki;
  EVP_PKEY_free(p->ca_key);
  EVP_PKEY_free(p->leaf_key);
  EVP_PKEY_free(p->other_ca_key);
  X509_free(p->ca);
  X509_free(p->leaf);
  X509_free(p->wrong_name_leaf);
  X509_free(p->other_ca);
  free(p->ca_pem);
  free(p->two_ca_pem);
  return 0;
}

/* A one-connection HTTPS server. With |canned| NULL it echoes: the body is the whole
 * request and the X-Seen header repeats the value of the request header |echo|. */
struct server {
  int lfd;
  int port;
  SSL_CTX *ctx;
  const char *canned;
  size_t stream_len; /* then this many 'A' bytes */
  const char *echo;
  char req[65536];
  size_t req_len;
  int handshake_ok;
  pthread_t th;
};

static void ssl_write_all(SSL *ssl, const void *p, size_t len) {
  const char *c = p;
  while (len > 0) {
    int n = SSL_write(ssl, c, len > 16384 ? 16384 : (int)len);
    if (n <= 0)
      return; /* the client gave up (a size cap); fine */
    c += n;
    len -= (size_t)n;
  }
}

static void read_request(struct server *s, SSL *ssl) {
  size_t want = SIZE_MAX;
  while (s->req_len < sizeof(s->req) - 1 && s->req_len < want) {
    int n = SSL_read(ssl, s->req + s->req_len, (int)(sizeof(s->req) - 1 - s->req_len));
    if (n <= 0)
      break;
    s->req_len += (size_t)n;
    s->req[s->req_len] = '\0';
    char *end = strstr(s->req, "\r\n\r\n");
    if (end != NULL && want == SIZE_MAX) {
      size_t cl = 0;
      const char *h = strcasestr(s->req, "\r\nContent-Length:");
      if (h != NULL && h < end)
        cl = strtoul(h + strlen("\r\nContent-Length:"), NULL, 10);
      want = (size_t)(end + 4 - s->req) + cl;
    }
  }
}

static void respond(struct server *s, SSL *ssl) {
  if (s->canned != NULL) {
    ssl_write_all(ssl, s->canned, strlen(s->canned));
    char chunk[16384];
    memset(chunk, 'A', sizeof(chunk));
    for (size_t left = s->stream_len; left > 0;) {
      size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
      ssl_write_all(ssl, chunk, n);
      left -= n;
    }
    return;
  }
  char seen[1024] = "";
  char key[128];
  snprintf(key, sizeof(key), "\r\n%s: ", s->echo);
  const char *v = strcasestr(s->req, key);
  if (v != NULL) {
    v += strlen(key);
    snprintf(seen, sizeof(seen), "%.*s", (int)strcspn(v, "\r\n"), v);
  }
  char head[2048];
  snprintf(head, sizeof(head),
           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Seen: %s\r\nContent-Length: %zu\r\n\r\n", seen,
           s->req_len);
  ssl_write_all(ssl, head, strlen(head));
  ssl_write_all(ssl, s->req, s->req_len);
}

static void *server_main(void *arg) {
  struct server *s = arg;
  struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
  if (poll(&pfd, 1, 20000) != 1)
    return NULL;
  int fd = accept(s->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  struct timeval tv = {.tv_sec = 20};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  SSL *ssl = SSL_new(s->ctx);
  if (ssl != NULL && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1) {
    s->handshake_ok = 1;
    read_request(s, ssl);
    respond(s, ssl);
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  close(fd);
  return NULL;
}

static void server_start(struct server *s, X509 *cert, const char *canned, size_t stream_len) {
  memset(s, 0, sizeof(*s));
  s->canned = canned;
  s->stream_len = stream_len;
  s->echo = "Authorization";
  s->ctx = SSL_CTX_new(TLS_server_method());
  assert_non_null(s->ctx);
  assert_int_equal(SSL_CTX_use_certificate(s->ctx, cert), 1);
  assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, g_pki.leaf_key), 1);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s->lfd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(s->lfd, 4), 0);
  socklen_t alen = sizeof(a);
  assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
  s->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_join(struct server *s) {
  assert_int_equal(pthread_join(s->th, NULL), 0);
  close(s->lfd);
  SSL_CTX_free(s->ctx);
}

static Aileron__V1__Binding trusting(Aileron__V1__Binding b, const char *pem) {
  b.ca_pem.data = (uint8_t *)pem;
  b.ca_pem.len = strlen(pem);
  return b;
}

static void test_tls_bearer_echo_redacted(void **state) {
  (void)state;
  struct server *s = malloc(sizeof(*s));
  assert_non_null(s);
  server_start(s, g_pki.leaf, NULL, 0);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/echo?x=1", s->port);
  Aileron__V1__Binding b = trusting(bearer(), g_pki.ca_pem);
  Aileron__V1__UseCredentialRequest req = make_req("GET", url);
  struct aln_upstream_response out;
  assert_int_equal(perform(&out, &b, SECRET, strlen(SECRET), &req), ALN_OK);
  server_join(s);

  /* What went over the wire. */
  assert_true(s->handshake_ok);
  assert_true(strncmp(s->req, "GET /v1/echo?x=1 HTTP/1.1\r\n", 27) == 0);
  assert_int_equal(count_sub(s->req, "\r\nAuthorization: Bearer " SECRET "\r\n"), 1);
  assert_int_equal(count_sub(s->req, SECRET), 1);
  char host[64];
  snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s->port);
  assert_int_equal(count_sub(s->req, host), 1);
  assert_int_equal(count_sub(s->req, "\r\nAccept-Encoding: identity\r\n"), 1);
  assert_null(strcasestr(s->req, "\r\nExpect:"));
  assert_null(strcasestr(s->req, "\r\nCookie:"));

  /* What came back: the echo, with the secret redacted in header and body. */
  assert_int_equal(out.http_status, 200);
  assert_string_equal(find_header(&out, "Content-Type"), "text/plain");
  assert_string_equal(find_header(&out, "X-Seen"), "Bearer [REDACTED]");
  assert_non_null(out.body);
  assert_null(memmem(out.body, out.body_len, SECRET, strlen(SECRET)));
  assert_non_null(memmem(out.body, out.body_len, "Authorization: Bearer [REDACTED]\r\n", 34));
  assert_int_equal(out.body_len, s->req_len - strlen(SECRET) + strlen("[REDACTED]"));
  for (size_t i = 0; i < out.num_headers; i++) {
    assert_null(strstr(out.headers[i].name, SECRET));
    assert_null(strstr(out.headers[i].value, SECRET));
  }
  aln_upstream_response_cleanup(&out);
  assert_null(out.body);
  assert_null(out.headers);
  aln_upstream_response_cleanup(&out); /* twice is fine */
  free(s);
}

static void test_tls_header_injection_post(void **state) {
  (void)state;
  struct server *s = malloc(sizeof(*s));
  assert_non_null(s);
  server_start(s, g_pki.leaf, NULL, 0);
  s->echo = "X-Api-Key";
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/items", s->port);
  Aileron__V1__Binding b = trusting(header_binding("X-Api-Key"), g_pki.two_ca_pem);
  Aileron__V1__Header h1 = AILERON__V1__HEADER__INIT, h2 = AILERON__V1__HEADER__INIT, h3 = AILERON__V1__HEADER__INIT;
  h1.name = "Content-Type";
  h1.value = "application/json";
  h2.name = "X-Request-Id";
  h2.value = "r-42";
  h3.name = "X-Empty";
  h3.value = "";
  Aileron__V1__Header *hp[] = {&h1, &h2, &h3};
  Aileron__V1__UseCredentialRequest req = make_req("POST", url);
  req.headers = hp;
  req.n_headers = 3;
  req.body.data = (uint8_t *)"{\"a\":1}";
  req.body.len = 7;
  struct aln_upstream_response out;
  assert_int_equal(perform(&out, &b, SECRET, strlen(SECRET), &req), ALN_OK);
  server_join(s);

  assert_true(strncmp(s->req, "POST /v1/items HTTP/1.1\r\n", 25) == 0);
  assert_int_equal(count_sub(s->req, "\r\nX-Api-Key: " SECRET "\r\n"), 1);
  assert_null(strcasestr(s->req, "\r\nAuthorization:"));
  assert_int_equal(count_sub(s->req, "\r\nContent-Type: application/json\r\n"), 1);
  assert_null(strstr(s->req, "x-www-form-urlencoded"));
  assert_int_equal(count_sub(s->req, "\r\nX-Request-Id: r-42\r\n"), 1);
  assert_int_equal(count_sub(s->req, "\r\nX-Empty:\r\n"), 1);
  assert_int_equal(count_sub(s->req, "\r\nContent-Length: 7\r\n"), 1);
  assert_non_null(strstr(s->req, "\r\n\r\n{\"a\":1}"));

  assert_int_equal(out.http_status, 200);
  assert_string_equal(find_header(&out, "X-Seen"), "[REDACTED]");
  assert_null(memmem(out.body, out.body_len, SECRET, strlen(SECRET)));
  assert_non_null(memmem(out.body, out.body_len, "X-Api-Key: [REDACTED]", 21));
  aln_upstream_response_cleanup(&out);
  free(s);
}

/* run_echo performs |method| with |body| against an echo server and leaves the
 * request the server saw in |s|. */
static void run_echo(struct server *s, const char *method, const char *body) {
  server_start(s, g_pki.leaf, NULL, 0);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/x", s->port);
  Aileron__V1__Binding b = trusting(bearer(), g_pki.ca_pem);
  Aileron__V1__UseCredentialRequest req = make_req(method, url);
  if (body != NULL) {
    req.body.data = (uint8_t *)body;
    req.body.len = strlen(body);
  }
  struct aln_upstream_response out;
  assert_int_equal(perform(&out, &b, SECRET, strlen(SECRET), &req), ALN_OK);
  assert_int_equal(out.http_status, 200);
  aln_upstream_response_cleanup(&out);
  server_join(s);
}

static void test_tls_methods_on_the_wire(void **state) {
  (void)state;
  struct server *s = malloc(sizeof(*s));
  assert_non_null(s);
  run_echo(s, "DELETE", NULL);
  assert_true(strncmp(s->req, "DELETE /v1/x HTTP/1.1\r\n", 23) == 0);
  assert_null(strcasestr(s->req, "\r\nContent-Length:"));
  run_echo(s, "DELETE", "gone");
  assert_true(strncmp(s->req, "DELETE /v1/x HTTP/1.1\r\n", 23) == 0);
  assert_int_equal(count_sub(s->req, "\r\nContent-Length: 4\r\n"), 1);
  run_echo(s, "PUT", NULL);
  assert_true(strncmp(s->req, "PUT /v1/x HTTP/1.1\r\n", 20) == 0);
  assert_int_equal(count_sub(s->req, "\r\nContent-Length: 0\r\n"), 1);
  run_echo(s, "PATCH", "p");
  assert_true(strncmp(s->req, "PATCH /v1/x HTTP/1.1\r\n", 22) == 0);
  assert_int_equal(count_sub(s->req, "\r\nContent-Length: 1\r\n"), 1);
  assert_null(strcasestr(s->req, "\r\nContent-Type:")); /* none invented */
  run_echo(s, "POST", NULL);
  assert_true(strncmp(s->req, "POST /v1/x HTTP/1.1\r\n", 21) == 0);
  assert_int_equal(count_sub(s->req, "\r\nContent-Length: 0\r\n"), 1);
  free(s);
}

/* run_canned sends a GET to a server answering |canned| (+ |stream_len| bytes). */
static aln_status run_canned(struct aln_upstream_response *out, const char *method, const char *canned,
                             size_t stream_len) {
  struct server *s = malloc(sizeof(*s));
  assert_non_null(s);
  server_start(s, g_pki.leaf, canned, stream_len);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/x", s->port);
  Aileron__V1__Binding b = trusting(bearer(), g_pki.ca_pem);
  Aileron__V1__UseCredentialRequest req = make_req(method, url);
  aln_status st = perform(out, &b, SECRET, strlen(SECRET), &req);
  server_join(s);
  free(s);
  return st;
}

static void test_tls_head(void **state) {
  (void)state;
  struct aln_upstream_response out;
  assert_int_equal(run_canned(&out, "HEAD", "HTTP/1.1 204 No Content\r\nX-Head: 1\r\n\r\n", 0), ALN_OK);
  assert_int_equal(out.http_status, 204);
  assert_string_equal(find_header(&out, "X-Head"), "1");
  assert_int_equal(out.body_len, 0);
  aln_upstream_response_cleanup(&out);
}

static void test_tls_redirect_not_followed(void **state) {
  (void)state;
  struct aln_upstream_response out;
  /* Following it would try the closed port and fail with ALN_ERR_UPSTREAM. */
  assert_int_equal(run_canned(&out, "GET",
                              "HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1:1/elsewhere\r\n"
                              "Content-Length: 0\r\n\r\n",
                              0),
                   ALN_OK);
  assert_int_equal(out.http_status, 302);
  assert_string_equal(find_header(&out, "Location"), "https://127.0.0.1:1/elsewhere");
  aln_upstream_response_cleanup(&out);
}

static void test_tls_final_headers_only(void **state) {
  (void)state;
  struct aln_upstream_response out;
  assert_int_equal(run_canned(&out, "GET",
                              "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                              "HTTP/1.1 201 Created\r\nX-Final: yes\r\nX-Trim: \t v w \t\r\nX-Ctl: a\x01"
                              "b\r\nX-Secret: " SECRET "\r\nContent-Length: 2\r\n\r\nok",
                              0),
                   ALN_OK);
  assert_int_equal(out.http_status, 201);
  assert_null(find_header(&out, "X-Interim"));
  assert_string_equal(find_header(&out, "X-Final"), "yes");
  assert_string_equal(find_header(&out, "X-Trim"), "v w");
  assert_null(find_header(&out, "X-Ctl"));
  assert_string_equal(find_header(&out, "X-Secret"), "[REDACTED]");
  assert_int_equal(out.num_headers, 4);
  assert_int_equal(out.body_len, 2);
  assert_memory_equal(out.body, "ok", 2);
  aln_upstream_response_cleanup(&out);
}

static char *many_headers(size_t n, const char *tail) {
  size_t cap = 64 + n * 32 + strlen(tail);
  char *r = malloc(cap);
  assert_non_null(r);
  size_t w = (size_t)snprintf(r, cap, "HTTP/1.1 200 OK\r\n");
  for (size_t i = 0; i < n; i++)
    w += (size_t)snprintf(r + w, cap - w, "X-H-%zu: v\r\n", i);
  snprintf(r + w, cap - w, "%s", tail);
  return r;
}

static void test_tls_response_header_caps(void **state) {
  (void)state;
  struct aln_upstream_response out;
  /* Exactly the maximum: 99 + Content-Length. */
  char *at_max = many_headers(ALN_UPSTREAM_HEADERS_MAX - 1, "Content-Length: 0\r\n\r\n");
  assert_int_equal(run_canned(&out, "GET", at_max, 0), ALN_OK);
  assert_int_equal(out.num_headers, ALN_UPSTREAM_HEADERS_MAX);
  aln_upstream_response_cleanup(&out);
  free(at_max);
  char *over = many_headers(ALN_UPSTREAM_HEADERS_MAX, "Content-Length: 0\r\n\r\n");
  assert_int_equal(run_canned(&out, "GET", over, 0), ALN_ERR_UPSTREAM_TOO_LARGE);
  free(over);
  /* One header line past the byte budget. */
  size_t big = 70 * 1024;
  char *huge = malloc(big + 64);
  assert_non_null(huge);
  int w = snprintf(huge, 64, "HTTP/1.1 200 OK\r\nX-Big: ");
  memset(huge + w, 'b', big);
  strcpy(huge + w + big, "\r\nContent-Length: 0\r\n\r\n");
  assert_int_equal(run_canned(&out, "GET", huge, 0), ALN_ERR_UPSTREAM_TOO_LARGE);
  free(huge);
}

static void test_tls_body_caps(void **state) {
  (void)state;
  struct aln_upstream_response out;
  char head[128];
  snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", ALN_UPSTREAM_BODY_MAX);
  assert_int_equal(run_canned(&out, "GET", head, ALN_UPSTREAM_BODY_MAX), ALN_OK);
  assert_int_equal(out.body_len, ALN_UPSTREAM_BODY_MAX);
  assert_int_equal(out.body[0], 'A');
  assert_int_equal(out.body[ALN_UPSTREAM_BODY_MAX - 1], 'A');
  aln_upstream_response_cleanup(&out);
  /* Announced too large: refused from the header. */
  snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", ALN_UPSTREAM_BODY_MAX + 1);
  assert_int_equal(run_canned(&out, "GET", head, ALN_UPSTREAM_BODY_MAX + 1), ALN_ERR_UPSTREAM_TOO_LARGE);
  /* Not announced: refused while reading. */
  assert_int_equal(run_canned(&out, "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", ALN_UPSTREAM_BODY_MAX + 1),
                   ALN_ERR_UPSTREAM_TOO_LARGE);
}

/* run_tls_failure expects a handshake that the client refuses, and checks that the
 * server never received a request (so the secret never left). */
static void run_tls_failure(X509 *cert, const char *ca_pem) {
  struct server *s = malloc(sizeof(*s));
  assert_non_null(s);
  server_start(s, cert, NULL, 0);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/x", s->port);
  Aileron__V1__Binding b = bearer();
  if (ca_pem != NULL)
    b = trusting(b, ca_pem);
  Aileron__V1__UseCredentialRequest req = make_req("GET", url);
  struct aln_upstream_response out;
  assert_int_equal(perform(&out, &b, SECRET, strlen(SECRET), &req), ALN_ERR_UPSTREAM_TLS);
  server_join(s);
  assert_int_equal(s->req_len, 0);
  free(s);
}

static void test_tls_unknown_ca(void **state) {
  (void)state;
  run_tls_failure(g_pki.leaf, NULL);
}

static void test_tls_wrong_ca(void **state) {
  (void)state;
  char *other = cert_pem(g_pki.other_ca);
  run_tls_failure(g_pki.leaf, other);
  free(other);
}

static void test_tls_wrong_name(void **state) {
  (void)state;
  run_tls_failure(g_pki.wrong_name_leaf, g_pki.ca_pem);
}

/* A plain TCP listener that records whether anyone connected and what was sent. */
struct plain_server {
  int lfd;
  int port;
  int connected;
  char got[4096];
  size_t got_len;
  pthread_t th;
};

static void *plain_main(void *arg) {
  struct plain_server *s = arg;
  struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
  if (poll(&pfd, 1, 2000) != 1)
    return NULL;
  int fd = accept(s->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  s->connected = 1;
  struct timeval tv = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t n = read(fd, s->got, sizeof(s->got) - 1);
  if (n > 0)
    s->got_len = (size_t)n;
  close(fd);
  return NULL;
}

/* An http:// URL never gets a connection, whatever the caller checked before. */
static void test_plain_http_never_connects(void **state) {
  (void)state;
  struct plain_server s = {0};
  s.lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s.lfd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(s.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(s.lfd, 4), 0);
  socklen_t alen = sizeof(a);
  assert_int_equal(getsockname(s.lfd, (struct sockaddr *)&a, &alen), 0);
  s.port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&s.th, NULL, plain_main, &s), 0);
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/x", s.port);
  Aileron__V1__Binding b = bearer();
  Aileron__V1__UseCredentialRequest req = make_req("GET", url);
  assert_int_equal(perform_simple(&b, &req), ALN_ERR_UPSTREAM);
  assert_int_equal(pthread_join(s.th, NULL), 0);
  close(s.lfd);
  assert_int_equal(s.connected, 0);
  assert_int_equal(s.got_len, 0);
}

static void test_proxy_environment_ignored(void **state) {
  (void)state;
  const char *vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(setenv(vars[i], "http://127.0.0.1:1", 1), 0);
  struct aln_upstream_response out;
  aln_status st = run_canned(&out, "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
  for (size_t i = 0; i < 4; i++)
    unsetenv(vars[i]);
  assert_int_equal(st, ALN_OK);
  assert_int_equal(out.http_status, 200);
  aln_upstream_response_cleanup(&out);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* the test server writes to clients that hang up */
  if (aln_upstream_global_init() != ALN_OK || aln_upstream_global_init() != ALN_OK)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_closed_port_is_upstream_error),
      cmocka_unit_test(test_methods),
      cmocka_unit_test(test_body_on_get_or_head),
      cmocka_unit_test(test_bad_url_and_args),
      cmocka_unit_test(test_forbidden_headers),
      cmocka_unit_test(test_binding_header_name_refused),
      cmocka_unit_test(test_header_line_breaks),
      cmocka_unit_test(test_too_many_headers),
      cmocka_unit_test(test_bad_injection),
      cmocka_unit_test(test_secret_line_breaks),
      cmocka_unit_test(test_bad_ca_pem),
      cmocka_unit_test(test_tls_bearer_echo_redacted),
      cmocka_unit_test(test_tls_header_injection_post),
      cmocka_unit_test(test_tls_methods_on_the_wire),
      cmocka_unit_test(test_tls_head),
      cmocka_unit_test(test_tls_redirect_not_followed),
      cmocka_unit_test(test_tls_final_headers_only),
      cmocka_unit_test(test_tls_response_header_caps),
      cmocka_unit_test(test_tls_body_caps),
      cmocka_unit_test(test_tls_unknown_ca),
      cmocka_unit_test(test_tls_wrong_ca),
      cmocka_unit_test(test_tls_wrong_name),
      cmocka_unit_test(test_proxy_environment_ignored),
      cmocka_unit_test(test_plain_http_never_connects),
  };
  return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
