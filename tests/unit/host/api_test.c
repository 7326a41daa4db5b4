/* The HTTP API, run for real on a unix socket in a temporary directory, with a
 * forwarding double in place of the enclave client. The double records the
 * protobuf request it was given (packed, so it is checked exactly as it would go
 * on the wire) and answers a canned response; tests assert both what the host
 * forwards (or that it forwards nothing) and what it answers. The JSON parsers
 * are also driven directly with a table of malformed inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "host/api.h"
#include "host/session.h"
#include "forward_double.h"

/* ---- the forwarding double ----------------------------------------------- */

static Aileron__V1__Request *last_request(void) {
  assert_non_null(dbl.req);
  Aileron__V1__Request *r = last_request_raw();
  assert_non_null(r);
  assert_int_equal(r->version, AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1);
  return r;
}

/* ---- fixture ------------------------------------------------------------- */

static const char OPERATOR_TOKEN[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static struct aln_secret op_token, session_key, other_key;
static struct aln_api *api;
static char dir[64], sock[128];

/* A secret with a NUL and a high byte: decoding must be binary-safe. */
static const uint8_t SECRET[] = {'g', 'h', 'p', '_', 's', '3', 'c', 'r', '3', 't', 0x00, 0xff, '-', 'v', 'a', 'l'};
static char secret_b64[64];

static int group_setup(void **state) {
  (void)state;
  aln_api_json_init(); /* before any jansson object of this process */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  uint8_t k[ALN_SESSION_KEY_LEN];
  memset(k, 0x42, sizeof(k));
  if (aln_secret_from(&session_key, k, sizeof(k)) != ALN_OK)
    return -1;
  k[0] = 0x43;
  if (aln_secret_from(&other_key, k, sizeof(k)) != ALN_OK)
    return -1;
  if (aln_secret_from(&op_token, (const uint8_t *)OPERATOR_TOKEN, strlen(OPERATOR_TOKEN)) != ALN_OK)
    return -1;
  EVP_EncodeBlock((unsigned char *)secret_b64, SECRET, sizeof(SECRET));
  snprintf(dir, sizeof(dir), "/tmp/aln-api-test-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(sock, sizeof(sock), "%s/api.sock", dir);
  struct aln_api_config cfg = {.operator_token = &op_token,
                               .session_key = &session_key,
                               .forward = double_forward,
                               .forward_ctx = NULL,
                               .log_requests = 0};
  if (aln_api_new(&api, &cfg) != ALN_OK || aln_api_listen_unix(api, sock) != ALN_OK)
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  aln_api_free(api);
  rmdir(dir);
  aln_secret_free(&op_token);
  aln_secret_free(&session_key);
  aln_secret_free(&other_key);
  free(dbl.req);
  free(dbl.resp);
  curl_global_cleanup();
  return 0;
}

static int reset(void **state) {
  (void)state;
  pthread_mutex_lock(&dbl.mu);
  dbl.calls = 0;
  free(dbl.req);
  dbl.req = NULL;
  pthread_mutex_unlock(&dbl.mu);
  set_response(ALN_OK, NULL);
  return 0;
}

/* ---- HTTP client ---------------------------------------------------------- */

struct http_result {
  CURLcode cc;
  long status;
  char *body;
  size_t len;
  json_t *json;
  char allow[64];
};

static size_t collect(char *p, size_t size, size_t n, void *ud) {
  struct http_result *r = ud;
  char *nb = realloc(r->body, r->len + size * n + 1);
  if (nb == NULL)
    return 0;
  memcpy(nb + r->len, p, size * n);
  r->body = nb;
  r->len += size * n;
  r->body[r->len] = '\0';
  return size * n;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud) {
  struct http_result *r = ud;
  size_t len = size * n;
  if (len > 7 && strncasecmp(p, "Allow: ", 7) == 0)
    snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(len - 9), p + 7); /* minus CRLF */
  return len;
}

static void http_on(struct http_result *r, const char *socket_path, const char *base, const char *method,
                    const char *path, const char *auth, const char *body, size_t body_len) {
  memset(r, 0, sizeof(*r));
  CURL *c = curl_easy_init();
  assert_non_null(c);
  char url[4096], hdr[1024];
  snprintf(url, sizeof(url), "%s%s", base, path);
  struct curl_slist *h = NULL;
  if (auth != NULL) {
    snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
    h = curl_slist_append(h, hdr);
  }
  if (socket_path != NULL)
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body != NULL) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  r->cc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  if (r->body != NULL)
    r->json = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL);
}

static void http(struct http_result *r, const char *method, const char *path, const char *auth, const char *body) {
  http_on(r, sock, "http://localhost", method, path, auth, body, body != NULL ? strlen(body) : 0);
  assert_int_equal(r->cc, CURLE_OK);
}

static void http_free(struct http_result *r) {
  free(r->body);
  json_decref(r->json);
}

/* assert_error checks an error answer: HTTP status and {"error":{code,message}}. */
static void assert_error(const struct http_result *r, long http_status, aln_status code) {
  assert_int_equal(r->status, http_status);
  assert_non_null(r->json);
  json_t *e = json_object_get(r->json, "error");
  assert_true(json_is_object(e));
  assert_string_equal(json_string_value(json_object_get(e, "code")), aln_status_name(code));
  assert_string_equal(json_string_value(json_object_get(e, "message")), aln_strerror(code));
  assert_int_equal(json_object_size(r->json), 1);
}

/* assert_error_detail checks an error answer whose message is this API's own
 * explanation |detail| rather than the status table's text. */
static void assert_error_detail(const struct http_result *r, long http_status, aln_status code, const char *detail) {
  assert_int_equal(r->status, http_status);
  assert_non_null(r->json);
  json_t *e = json_object_get(r->json, "error");
  assert_string_equal(json_string_value(json_object_get(e, "code")), aln_status_name(code));
  assert_string_equal(json_string_value(json_object_get(e, "message")), detail);
  assert_int_equal(json_object_size(r->json), 1);
}

static void assert_no_secret(const struct http_result *r) {
  if (r->body == NULL)
    return;
  assert_int_equal(aln_memmem_count((const uint8_t *)r->body, r->len, SECRET, 10), 0);
  assert_null(strstr(r->body, secret_b64));
}

static const char *bearer(const char *tok) {
  static char buf[256];
  snprintf(buf, sizeof(buf), "Bearer %s", tok);
  return buf;
}

static void new_session(char tok[ALN_SESSION_TOKEN_MAX], struct aln_session *s, const struct aln_secret *key,
                        int64_t now, int64_t ttl) {
  assert_int_equal(aln_session_issue(tok, ALN_SESSION_TOKEN_MAX, s, key, now, ttl), ALN_OK);
}

static char put_body[2048];

static const char *valid_put(void) {
  snprintf(put_body, sizeof(put_body),
           "{\"name\":\"github\",\"secret_b64\":\"%s\",\"injection\":{\"kind\":\"header\",\"header\":\"X-Api-Key\"},"
           "\"allow\":[\"https://api.github.com/\",\"https://uploads.github.com/\"],"
           "\"ca_pem\":\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\","
           "\"expires_at\":1800000000,\"replace\":true}",
           secret_b64);
  return put_body;
}

static const char USE_BODY[] = "{\"method\":\"POST\",\"url\":\"https://api.github.com/repos/x/issues\","
                               "\"headers\":{\"Accept\":\"application/json\",\"X-Trace\":\"t-1\"},"
                               "\"body\":\"{\\\"title\\\":\\\"hi\\\"}\"}";

/* ---- canned enclave answers ---------------------------------------------- */

static char *prefixes[] = {"https://api.github.com/"};

static void fill_info(Aileron__V1__CredentialInfo *ci, Aileron__V1__Binding *b, const char *name) {
  aileron__v1__binding__init(b);
  b->injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER;
  b->header_name = "X-Api-Key";
  b->n_allowed_prefixes = 1;
  b->allowed_prefixes = prefixes;
  aileron__v1__credential_info__init(ci);
  ci->name = (char *)name;
  ci->version = 3;
  ci->binding = b;
  ci->has_ca = 1;
  ci->created_at = 1700000000;
  ci->expires_at = 1800000000;
  ci->kind = AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET;
}

static void assert_info_json(json_t *j, const char *name) {
  assert_string_equal(json_string_value(json_object_get(j, "name")), name);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "secret");
  assert_int_equal(json_integer_value(json_object_get(j, "version")), 3);
  json_t *inj = json_object_get(j, "injection");
  assert_string_equal(json_string_value(json_object_get(inj, "kind")), "header");
  assert_string_equal(json_string_value(json_object_get(inj, "header")), "X-Api-Key");
  json_t *allow = json_object_get(j, "allow");
  assert_int_equal(json_array_size(allow), 1);
  assert_string_equal(json_string_value(json_array_get(allow, 0)), "https://api.github.com/");
  assert_true(json_is_true(json_object_get(j, "has_ca")));
  assert_int_equal(json_integer_value(json_object_get(j, "created_at")), 1700000000);
  assert_int_equal(json_integer_value(json_object_get(j, "expires_at")), 1800000000);
  assert_true(json_is_false(json_object_get(j, "revoked")));
  assert_int_equal(json_object_size(j), 9);
}

static void canned_put(void) {
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  Aileron__V1__PutCredentialResponse put = AILERON__V1__PUT_CREDENTIAL_RESPONSE__INIT;
  Aileron__V1__CredentialInfo ci;
  Aileron__V1__Binding b;
  fill_info(&ci, &b, "github");
  put.credential = &ci;
  resp.body_case = AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL;
  resp.put_credential = &put;
  set_response(ALN_OK, &resp);
}

static void canned_error(aln_status st) {
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.status = (uint32_t)st;
  resp.message = "peer text that must not be echoed";
  set_response(st, &resp);
}

static void canned_use(const uint8_t *body, size_t body_len) {
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  Aileron__V1__UseCredentialResponse use = AILERON__V1__USE_CREDENTIAL_RESPONSE__INIT;
  Aileron__V1__Header h1 = AILERON__V1__HEADER__INIT, h2 = AILERON__V1__HEADER__INIT;
  Aileron__V1__Header *hs[] = {&h1, &h2};
  h1.name = "content-type";
  h1.value = "application/json";
  h2.name = "x-ratelimit-remaining";
  h2.value = "59";
  use.http_status = 201;
  use.n_headers = 2;
  use.headers = hs;
  use.body.data = (uint8_t *)body;
  use.body.len = body_len;
  resp.body_case = AILERON__V1__RESPONSE__BODY_USE_CREDENTIAL;
  resp.use_credential = &use;
  set_response(ALN_OK, &resp);
}

/* ---- health, routing ------------------------------------------------------ */

static void test_health_needs_no_auth(void **state) {
  (void)state;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  Aileron__V1__HealthResponse h = AILERON__V1__HEALTH_RESPONSE__INIT;
  h.tee_provider = "local";
  h.version = "0.1.0";
  h.attested = 1;
  h.enrolled = 1;
  resp.body_case = AILERON__V1__RESPONSE__BODY_HEALTH;
  resp.health = &h;
  set_response(ALN_OK, &resp);
  struct http_result r;
  http(&r, "GET", "/v1/health", NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ok");
  json_t *e = json_object_get(r.json, "enclave");
  assert_true(json_is_true(json_object_get(e, "reachable")));
  assert_string_equal(json_string_value(json_object_get(e, "tee_provider")), "local");
  assert_true(json_is_true(json_object_get(e, "enrolled")));
  Aileron__V1__Request *req = last_request();
  assert_int_equal(req->body_case, AILERON__V1__REQUEST__BODY_HEALTH);
  aileron__v1__request__free_unpacked(req, NULL);
  http_free(&r);
}

static void test_health_enclave_down(void **state) {
  (void)state;
  set_response(ALN_ERR_UNAVAILABLE, NULL);
  struct http_result r;
  http(&r, "GET", "/v1/health", NULL, NULL);
  assert_int_equal(r.status, 200);
  json_t *e = json_object_get(r.json, "enclave");
  assert_true(json_is_false(json_object_get(e, "reachable")));
  assert_string_equal(json_string_value(json_object_get(e, "error")), "ALN_ERR_UNAVAILABLE");
  http_free(&r);
}

static void test_unknown_route_404(void **state) {
  (void)state;
  static const char *const paths[] = {
      "/",          "/v1",        "/v1/credential", "/v1/credentials/github/use", "/v1/credentials/a/b/request",
      "/v2/health", "/v1/health/"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    struct http_result r;
    http(&r, "GET", paths[i], bearer(OPERATOR_TOKEN), NULL);
    assert_error(&r, 404, ALN_ERR_NOT_FOUND);
    http_free(&r);
  }
  assert_int_equal(dbl.calls, 0);
}

static void test_wrong_method_405(void **state) {
  (void)state;
  struct {
    const char *method, *path, *allow;
  } cases[] = {{"PUT", "/v1/credentials", "GET, POST"},
               {"DELETE", "/v1/credentials", "GET, POST"},
               {"POST", "/v1/health", "GET"},
               {"GET", "/v1/credentials/github", "DELETE"},
               {"GET", "/v1/credentials/github/request", "POST"},
               {"GET", "/v1/sessions", "POST"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct http_result r;
    http(&r, cases[i].method, cases[i].path, bearer(OPERATOR_TOKEN), NULL);
    assert_error(&r, 405, ALN_ERR_USAGE);
    assert_string_equal(r.allow, cases[i].allow);
    http_free(&r);
  }
  assert_int_equal(dbl.calls, 0);
}

/* ---- operator authentication ---------------------------------------------- */

static void test_operator_call_without_auth(void **state) {
  (void)state;
  canned_put();
  struct http_result r;
  http(&r, "POST", "/v1/credentials", NULL, valid_put());
  assert_error(&r, 401, ALN_ERR_AUTH_MISSING);
  http_free(&r);
  http(&r, "GET", "/v1/credentials", NULL, NULL);
  assert_error(&r, 401, ALN_ERR_AUTH_MISSING);
  http_free(&r);
  http(&r, "DELETE", "/v1/credentials/github", NULL, NULL);
  assert_error(&r, 401, ALN_ERR_AUTH_MISSING);
  http_free(&r);
  http(&r, "POST", "/v1/sessions", NULL, "{}");
  assert_error(&r, 401, ALN_ERR_AUTH_MISSING);
  assert_null(json_object_get(r.json, "token"));
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

static void test_operator_wrong_token(void **state) {
  (void)state;
  canned_put();
  char wrong[sizeof(OPERATOR_TOKEN)];
  memcpy(wrong, OPERATOR_TOKEN, sizeof(wrong));
  wrong[63] = wrong[63] == 'f' ? 'e' : 'f';
  const char *auths[] = {bearer(wrong), "Bearer 0123456789abcdef", "Bearer ", "Basic dXNlcjpwYXNz", OPERATOR_TOKEN};
  char auth_copy[256];
  for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
    snprintf(auth_copy, sizeof(auth_copy), "%s", i == 0 ? bearer(wrong) : auths[i]);
    struct http_result r;
    http(&r, "POST", "/v1/credentials", auth_copy, valid_put());
    assert_error(&r, 401, ALN_ERR_AUTH_INVALID);
    assert_no_secret(&r);
    http_free(&r);
  }
  assert_int_equal(dbl.calls, 0);
}

static void test_operator_token_with_suffix_refused(void **state) {
  (void)state;
  char longer[128];
  snprintf(longer, sizeof(longer), "Bearer %s0", OPERATOR_TOKEN);
  struct http_result r;
  http(&r, "GET", "/v1/credentials", longer, NULL);
  assert_error(&r, 401, ALN_ERR_AUTH_INVALID);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

static void test_session_token_refused_for_operator_call(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &session_key, (int64_t)time(NULL), 600);
  struct http_result r;
  http(&r, "GET", "/v1/credentials", bearer(tok), NULL);
  assert_error(&r, 401, ALN_ERR_AUTH_INVALID);
  http_free(&r);
  http(&r, "POST", "/v1/sessions", bearer(tok), "{}");
  assert_error(&r, 401, ALN_ERR_AUTH_INVALID);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

/* ---- session authentication ----------------------------------------------- */

static void test_operator_token_refused_as_session_token(void **state) {
  (void)state;
  canned_use((const uint8_t *)"x", 1);
  struct http_result r;
  http(&r, "POST", "/v1/credentials/github/request", bearer(OPERATOR_TOKEN), USE_BODY);
  assert_error(&r, 401, ALN_ERR_SESSION_INVALID);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

static void test_use_without_auth(void **state) {
  (void)state;
  struct http_result r;
  http(&r, "POST", "/v1/credentials/github/request", NULL, USE_BODY);
  assert_error(&r, 401, ALN_ERR_AUTH_MISSING);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

static void test_forged_session_token(void **state) {
  (void)state;
  canned_use((const uint8_t *)"x", 1);
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &other_key, (int64_t)time(NULL), 600);
  struct http_result r;
  http(&r, "POST", "/v1/credentials/github/request", bearer(tok), USE_BODY);
  assert_error(&r, 401, ALN_ERR_SESSION_INVALID);
  http_free(&r);
  /* A valid token with one MAC character changed. */
  new_session(tok, NULL, &session_key, (int64_t)time(NULL), 600);
  tok[60] = tok[60] == 'A' ? 'B' : 'A';
  http(&r, "POST", "/v1/credentials/github/request", bearer(tok), USE_BODY);
  assert_error(&r, 401, ALN_ERR_SESSION_INVALID);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

static void test_expired_session_token(void **state) {
  (void)state;
  canned_use((const uint8_t *)"x", 1);
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &session_key, (int64_t)time(NULL) - 100, 10);
  struct http_result r;
  http(&r, "POST", "/v1/credentials/github/request", bearer(tok), USE_BODY);
  assert_error(&r, 401, ALN_ERR_SESSION_EXPIRED);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

/* ---- request bodies ------------------------------------------------------- */

static void post_put_expect(const char *body, aln_status code) {
  struct http_result r;
  http(&r, "POST", "/v1/credentials", bearer(OPERATOR_TOKEN), body);
  assert_error(&r, 400, code);
  assert_no_secret(&r);
  http_free(&r);
}

static void test_malformed_json(void **state) {
  (void)state;
  canned_put();
  char trailing[2100];
  snprintf(trailing, sizeof(trailing), "%s{}", valid_put());
  post_put_expect("{\"name\":", ALN_ERR_BAD_JSON);
  post_put_expect("not json", ALN_ERR_BAD_JSON);
  post_put_expect("[]", ALN_ERR_BAD_JSON);
  post_put_expect("\"github\"", ALN_ERR_BAD_JSON);
  post_put_expect("", ALN_ERR_BAD_JSON);
  post_put_expect(trailing, ALN_ERR_BAD_JSON);
  assert_int_equal(dbl.calls, 0);
}

static void test_duplicate_keys(void **state) {
  (void)state;
  canned_put();
  char body[2100];
  /* A second "name" after a valid document: must not silently win or lose. */
  snprintf(body, sizeof(body), "%.*s,\"name\":\"other\"}", (int)strlen(valid_put()) - 1, valid_put());
  post_put_expect(body, ALN_ERR_BAD_JSON);
  post_put_expect("{\"ttl_seconds\":1,\"ttl_seconds\":2}", ALN_ERR_BAD_JSON);
  assert_int_equal(dbl.calls, 0);
}

static void test_unknown_fields(void **state) {
  (void)state;
  canned_put();
  char body[2100];
  snprintf(body, sizeof(body), "%.*s,\"secret\":\"x\"}", (int)strlen(valid_put()) - 1, valid_put());
  post_put_expect(body, ALN_ERR_BAD_JSON);
  snprintf(body, sizeof(body),
           "{\"name\":\"a\",\"secret_b64\":\"%s\",\"injection\":{\"kind\":\"bearer\",\"prefix\":\"x\"},"
           "\"allow\":[\"https://a.example/\"]}",
           secret_b64);
  post_put_expect(body, ALN_ERR_BAD_JSON);
  assert_int_equal(dbl.calls, 0);
}

static void test_wrong_types(void **state) {
  (void)state;
  canned_put();
  static const char *const fmts[] = {
      "{\"name\":7,\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"]}",
      "{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":\"bearer\",\"allow\":[\"https://a.example/\"]}",
      "{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":\"https://a.example/\"}",
      "{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[7]}",
      "{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"],"
      "\"expires_at\":\"1\"}",
      "{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"],"
      "\"expires_at\":1.5}",
      "{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"],"
      "\"replace\":\"yes\"}",
      "{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"],"
      "\"ca_pem\":null}",
  };
  for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
    post_put_expect(fmts[i], ALN_ERR_BAD_JSON);
  }
  assert_int_equal(dbl.calls, 0);
}

static void test_oversized_body(void **state) {
  (void)state;
  canned_put();
  size_t n = ALN_API_BODY_MAX + 1;
  char *big = malloc(n + 1);
  assert_non_null(big);
  memset(big, ' ', n);
  memcpy(big, valid_put(), strlen(valid_put())); /* valid JSON padded with spaces */
  big[n] = '\0';
  struct http_result r;
  http(&r, "POST", "/v1/credentials", bearer(OPERATOR_TOKEN), big);
  assert_error(&r, 400, ALN_ERR_TOO_LARGE);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
  /* Exactly at the cap the same document is accepted. */
  big[n - 1] = '\0';
  http(&r, "POST", "/v1/credentials", bearer(OPERATOR_TOKEN), big);
  assert_int_equal(r.status, 201);
  assert_no_secret(&r);
  http_free(&r);
  assert_int_equal(dbl.calls, 1);
  free(big);
}

struct chunk_src {
  size_t left;
};

static size_t chunk_read(char *buf, size_t size, size_t n, void *ud) {
  struct chunk_src *s = ud;
  size_t k = size * n < s->left ? size * n : s->left;
  memset(buf, ' ', k);
  s->left -= k;
  return k;
}

static void test_oversized_chunked_body_is_cut(void **state) {
  (void)state;
  /* No Content-Length: the cap is enforced while reading and the connection is
   * dropped; nothing is forwarded and the server keeps serving. */
  CURL *c = curl_easy_init();
  char url[] = "http://localhost/v1/credentials", auth[128];
  snprintf(auth, sizeof(auth), "Authorization: Bearer %s", OPERATOR_TOKEN);
  struct curl_slist *h = curl_slist_append(NULL, auth);
  h = curl_slist_append(h, "Transfer-Encoding: chunked");
  struct chunk_src src = {.left = 2 * ALN_API_BODY_MAX};
  struct http_result r;
  memset(&r, 0, sizeof(r));
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, chunk_read);
  curl_easy_setopt(c, CURLOPT_READDATA, &src);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  CURLcode cc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  free(r.body);
  assert_true(cc != CURLE_OK || status >= 400);
  assert_true(src.left > 0); /* the server stopped reading before the end */
  assert_int_equal(dbl.calls, 0);
  http(&r, "GET", "/v1/health", NULL, NULL);
  assert_int_equal(r.status, 200);
  http_free(&r);
}

static void test_get_with_body_refused(void **state) {
  (void)state;
  struct http_result r;
  http(&r, "GET", "/v1/credentials", bearer(OPERATOR_TOKEN), "{}");
  assert_error(&r, 400, ALN_ERR_USAGE);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

/* ---- forwarding ----------------------------------------------------------- */

static void test_put_forwards_fields(void **state) {
  (void)state;
  canned_put();
  struct http_result r;
  http(&r, "POST", "/v1/credentials", bearer(OPERATOR_TOKEN), valid_put());
  assert_int_equal(r.status, 201);
  assert_info_json(r.json, "github");
  assert_no_secret(&r);
  assert_int_equal(dbl.calls, 1);
  Aileron__V1__Request *req = last_request();
  assert_int_equal(req->body_case, AILERON__V1__REQUEST__BODY_PUT_CREDENTIAL);
  Aileron__V1__PutCredentialRequest *p = req->put_credential;
  assert_string_equal(p->name, "github");
  assert_int_equal(p->secret.len, sizeof(SECRET));
  assert_memory_equal(p->secret.data, SECRET, sizeof(SECRET));
  assert_int_equal(p->binding->injection, AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER);
  assert_string_equal(p->binding->header_name, "X-Api-Key");
  assert_int_equal(p->binding->n_allowed_prefixes, 2);
  assert_string_equal(p->binding->allowed_prefixes[0], "https://api.github.com/");
  assert_string_equal(p->binding->allowed_prefixes[1], "https://uploads.github.com/");
  static const char ca[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  assert_int_equal(p->binding->ca_pem.len, strlen(ca));
  assert_memory_equal(p->binding->ca_pem.data, ca, strlen(ca));
  assert_int_equal(p->expires_at, 1800000000);
  assert_true(p->replace);
  assert_int_equal(p->kind, AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET);
  aileron__v1__request__free_unpacked(req, NULL);
  http_free(&r);
}

static void test_put_bearer_defaults(void **state) {
  (void)state;
  canned_put();
  char body[512];
  snprintf(body, sizeof(body),
           "{\"name\":\"a.b_c-9\",\"secret_b64\":\"%s\",\"injection\":{\"kind\":\"bearer\"},"
           "\"allow\":[\"https://a.example/v1\"]}",
           secret_b64);
  struct http_result r;
  http(&r, "POST", "/v1/credentials", bearer(OPERATOR_TOKEN), body);
  assert_int_equal(r.status, 201);
  Aileron__V1__Request *req = last_request();
  Aileron__V1__PutCredentialRequest *p = req->put_credential;
  assert_string_equal(p->name, "a.b_c-9");
  assert_int_equal(p->binding->injection, AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER);
  assert_int_equal(p->binding->ca_pem.len, 0);
  assert_int_equal(p->expires_at, 0);
  assert_false(p->replace);
  /* No "kind": a static secret, said explicitly on the wire. */
  assert_int_equal(p->kind, AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET);
  aileron__v1__request__free_unpacked(req, NULL);
  http_free(&r);
}

static void test_put_kind(void **state) {
  (void)state;
  canned_put();
  static const struct {
    const char *kind;
    aln_status st;
  } cases[] = {
      {"\"secret\"", ALN_OK},        {"\"oauth\"", ALN_ERR_USAGE},
      {"\"Secret\"", ALN_ERR_USAGE}, {"\"secret \"", ALN_ERR_USAGE},
      {"\"\"", ALN_ERR_USAGE},       {"1", ALN_ERR_BAD_JSON},
      {"null", ALN_ERR_BAD_JSON},    {"[\"secret\"]", ALN_ERR_BAD_JSON},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"a\",\"kind\":%s,\"secret_b64\":\"%s\",\"injection\":{\"kind\":\"bearer\"},"
             "\"allow\":[\"https://a.example/\"]}",
             cases[i].kind, secret_b64);
    if (cases[i].st != ALN_OK) {
      post_put_expect(body, cases[i].st);
      continue;
    }
    struct http_result r;
    http(&r, "POST", "/v1/credentials", bearer(OPERATOR_TOKEN), body);
    assert_int_equal(r.status, 201);
    Aileron__V1__Request *req = last_request();
    assert_int_equal(req->put_credential->kind, AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET);
    aileron__v1__request__free_unpacked(req, NULL);
    http_free(&r);
  }
  assert_int_equal(dbl.calls, 1);
}

static void test_put_semantic_errors(void **state) {
  (void)state;
  canned_put();
  struct {
    const char *name, *secret, *injection, *allow;
    aln_status code;
  } cases[] = {
      {"\"a/b\"", secret_b64, "{\"kind\":\"bearer\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_NAME},
      {"\"\"", secret_b64, "{\"kind\":\"bearer\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_NAME},
      {"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", secret_b64, "{\"kind\":\"bearer\"}",
       "[\"https://a.example/\"]", ALN_ERR_BAD_NAME},
      /* The enclave's rule: the host refuses what the enclave would. */
      {"\".hidden\"", secret_b64, "{\"kind\":\"bearer\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_NAME},
      {"\"-rf\"", secret_b64, "{\"kind\":\"bearer\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_NAME},
      {"\"a\"", secret_b64, "{\"kind\":\"basic\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_INJECTION},
      {"\"a\"", secret_b64, "{\"kind\":\"bearer\",\"header\":\"X\"}", "[\"https://a.example/\"]",
       ALN_ERR_BAD_INJECTION},
      {"\"a\"", secret_b64, "{\"kind\":\"header\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_INJECTION},
      {"\"a\"", secret_b64, "{\"kind\":\"header\",\"header\":\"X Key\"}", "[\"https://a.example/\"]",
       ALN_ERR_BAD_INJECTION},
      {"\"a\"", secret_b64, "{\"kind\":\"header\",\"header\":\"X-Key\\r\\nEvil: 1\"}", "[\"https://a.example/\"]",
       ALN_ERR_BAD_INJECTION},
      {"\"a\"", secret_b64, "{\"kind\":\"bearer\"}", "[\"http://a.example/\"]", ALN_ERR_BAD_URL},
      {"\"a\"", secret_b64, "{\"kind\":\"bearer\"}", "[\"https://a.example/ x\"]", ALN_ERR_BAD_URL},
      {"\"a\"", secret_b64, "{\"kind\":\"bearer\"}", "[]", ALN_ERR_USAGE},
      {"\"a\"", "", "{\"kind\":\"bearer\"}", "[\"https://a.example/\"]", ALN_ERR_USAGE},
      {"\"a\"", "Zm9v YmFy", "{\"kind\":\"bearer\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_JSON},
      {"\"a\"", "Zm9vYg", "{\"kind\":\"bearer\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_JSON},
      {"\"a\"", "Zm9vYh==", "{\"kind\":\"bearer\"}", "[\"https://a.example/\"]", ALN_ERR_BAD_JSON},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char body[1024];
    snprintf(body, sizeof(body), "{\"name\":%s,\"secret_b64\":\"%s\",\"injection\":%s,\"allow\":%s}", cases[i].name,
             cases[i].secret, cases[i].injection, cases[i].allow);
    post_put_expect(body, cases[i].code);
  }
  assert_int_equal(dbl.calls, 0);
}

/* canned_page answers a list with |n| credentials named from |names| and
 * next_page_after |next| (NULL: the last page). */
static void canned_page(const char *const *names, size_t n, const char *next) {
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  Aileron__V1__ListCredentialsResponse list = AILERON__V1__LIST_CREDENTIALS_RESPONSE__INIT;
  Aileron__V1__CredentialInfo infos[4], *items[4];
  Aileron__V1__Binding binds[4];
  assert_true(n <= 4);
  for (size_t i = 0; i < n; i++) {
    fill_info(&infos[i], &binds[i], names[i]);
    items[i] = &infos[i];
  }
  list.n_credentials = n;
  list.credentials = items;
  if (next != NULL)
    list.next_page_after = (char *)next;
  resp.body_case = AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS;
  resp.list_credentials = &list;
  set_response(ALN_OK, &resp);
}

static void test_list_forwards(void **state) {
  (void)state;
  canned_page((const char *const[]){"alpha", "beta"}, 2, NULL);
  struct http_result r;
  http(&r, "GET", "/v1/credentials", bearer(OPERATOR_TOKEN), NULL);
  assert_int_equal(r.status, 200);
  json_t *creds = json_object_get(r.json, "credentials");
  assert_int_equal(json_array_size(creds), 2);
  assert_info_json(json_array_get(creds, 0), "alpha");
  assert_info_json(json_array_get(creds, 1), "beta");
  /* The last page: no next_after at all. */
  assert_int_equal(json_object_size(r.json), 1);
  Aileron__V1__Request *req = last_request();
  assert_int_equal(req->body_case, AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS);
  /* No query: the first page, of the default size. */
  assert_string_equal(req->list_credentials->page_after, "");
  assert_int_equal(req->list_credentials->page_size, ALN_API_LIST_DEFAULT);
  aileron__v1__request__free_unpacked(req, NULL);
  http_free(&r);
}

static void test_list_pages(void **state) {
  (void)state;
  static const struct {
    const char *query, *after;
    uint32_t size;
  } cases[] = {
      {"?limit=2&after=alpha", "alpha", 2},
      {"?after=alpha&limit=2", "alpha", 2},
      {"?after=", "", ALN_API_LIST_DEFAULT},
      {"?limit=1000", "", ALN_API_LIST_MAX},
      {"?limit=1", "", 1},
      {"?limit=0007&after=a.b_c-9", "a.b_c-9", 7},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    canned_page((const char *const[]){"beta"}, 1, "beta");
    char path[128];
    snprintf(path, sizeof(path), "/v1/credentials%s", cases[i].query);
    struct http_result r;
    http(&r, "GET", path, bearer(OPERATOR_TOKEN), NULL);
    assert_int_equal(r.status, 200);
    assert_info_json(json_array_get(json_object_get(r.json, "credentials"), 0), "beta");
    assert_string_equal(json_string_value(json_object_get(r.json, "next_after")), "beta");
    Aileron__V1__Request *req = last_request();
    assert_string_equal(req->list_credentials->page_after, cases[i].after);
    assert_int_equal(req->list_credentials->page_size, cases[i].size);
    aileron__v1__request__free_unpacked(req, NULL);
    http_free(&r);
  }
  assert_int_equal(dbl.calls, sizeof(cases) / sizeof(cases[0]));
}

static void test_list_query_refused(void **state) {
  (void)state;
  canned_page((const char *const[]){"beta"}, 1, NULL);
  static const char limit_msg[] = "limit must be a whole number from 1 to 1000 (omit it for 100 per page)";
  static const char after_msg[] =
      "after must be a credential name (the next_after of the page before) or empty for the first page";
  static const char unknown_msg[] = "unknown query parameter: this call takes only after=NAME and limit=N";
  static const char twice_msg[] = "query parameter given more than once";
  static const char bare_msg[] = "query parameter without a value: write after=NAME, limit=N";
  static const struct {
    const char *query;
    aln_status code;
    const char *detail;
  } cases[] = {
      {"?limit=0", ALN_ERR_USAGE, limit_msg},
      {"?limit=1001", ALN_ERR_USAGE, limit_msg},
      {"?limit=-1", ALN_ERR_USAGE, limit_msg},
      {"?limit=x", ALN_ERR_USAGE, limit_msg},
      {"?limit=", ALN_ERR_USAGE, limit_msg},
      {"?limit=+5", ALN_ERR_USAGE, limit_msg},
      {"?limit=5%20", ALN_ERR_USAGE, limit_msg},
      {"?limit=99999999999999999999", ALN_ERR_USAGE, limit_msg},
      {"?limit=1.5", ALN_ERR_USAGE, limit_msg},
      {"?after=../etc", ALN_ERR_BAD_NAME, after_msg},
      {"?after=-rf", ALN_ERR_BAD_NAME, after_msg},
      {"?after=a%2Fb", ALN_ERR_BAD_NAME, after_msg},
      {"?after=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ALN_ERR_BAD_NAME, after_msg},
      {"?page_size=5", ALN_ERR_USAGE, unknown_msg},
      {"?Limit=5", ALN_ERR_USAGE, unknown_msg},
      {"?limit=5&x=1", ALN_ERR_USAGE, unknown_msg},
      {"?=5", ALN_ERR_USAGE, unknown_msg},
      {"?limit=5&limit=5", ALN_ERR_USAGE, twice_msg},
      {"?after=a&after=b", ALN_ERR_USAGE, twice_msg},
      {"?limit", ALN_ERR_USAGE, bare_msg},
      {"?after", ALN_ERR_USAGE, bare_msg},
      {"?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9", ALN_ERR_USAGE,
       "too many query parameters: this call takes only after=NAME and limit=N"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char path[256];
    snprintf(path, sizeof(path), "/v1/credentials%s", cases[i].query);
    struct http_result r;
    http(&r, "GET", path, bearer(OPERATOR_TOKEN), NULL);
    assert_error_detail(&r, 400, cases[i].code, cases[i].detail);
    http_free(&r);
  }
  /* Authentication still comes first: a bad query tells a stranger nothing. */
  struct http_result r;
  http(&r, "GET", "/v1/credentials?limit=x", NULL, NULL);
  assert_error(&r, 401, ALN_ERR_AUTH_MISSING);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

static void test_query_refused_on_other_routes(void **state) {
  (void)state;
  canned_put();
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &session_key, (int64_t)time(NULL), 600);
  char session_auth[ALN_SESSION_TOKEN_MAX + 8];
  snprintf(session_auth, sizeof(session_auth), "Bearer %s", tok);
  static const char msg[] = "this call takes no query parameters";
  struct http_result r;
  http(&r, "POST", "/v1/credentials?limit=5", bearer(OPERATOR_TOKEN), valid_put());
  assert_error_detail(&r, 400, ALN_ERR_USAGE, msg);
  assert_no_secret(&r);
  http_free(&r);
  http(&r, "DELETE", "/v1/credentials/github?x=1", bearer(OPERATOR_TOKEN), NULL);
  assert_error_detail(&r, 400, ALN_ERR_USAGE, msg);
  http_free(&r);
  http(&r, "POST", "/v1/sessions?ttl_seconds=5", bearer(OPERATOR_TOKEN), "{}");
  assert_error_detail(&r, 400, ALN_ERR_USAGE, msg);
  assert_null(json_object_get(r.json, "token"));
  http_free(&r);
  http(&r, "POST", "/v1/credentials/github/request?debug", session_auth, USE_BODY);
  assert_error_detail(&r, 400, ALN_ERR_USAGE, msg);
  http_free(&r);
  http(&r, "GET", "/v1/health?x=1", NULL, NULL);
  assert_error_detail(&r, 400, ALN_ERR_USAGE, msg);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

/* The page the enclave answers is checked before the host repeats it: its
 * next_page_after goes into the client's next URL. */
static void test_list_enclave_page_checked(void **state) {
  (void)state;
  struct http_result r;
  canned_page((const char *const[]){"alpha"}, 1, "../etc");
  http(&r, "GET", "/v1/credentials", bearer(OPERATOR_TOKEN), NULL);
  assert_error(&r, 502, ALN_ERR_MALFORMED);
  http_free(&r);
  canned_page((const char *const[]){"alpha", "beta", "gamma"}, 3, "gamma");
  http(&r, "GET", "/v1/credentials?limit=2", bearer(OPERATOR_TOKEN), NULL);
  assert_error(&r, 502, ALN_ERR_MALFORMED);
  http_free(&r);
  http(&r, "GET", "/v1/credentials?limit=3", bearer(OPERATOR_TOKEN), NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(json_string_value(json_object_get(r.json, "next_after")), "gamma");
  http_free(&r);
}

static void test_revoke_forwards_name(void **state) {
  (void)state;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  Aileron__V1__RevokeCredentialResponse rv = AILERON__V1__REVOKE_CREDENTIAL_RESPONSE__INIT;
  Aileron__V1__CredentialInfo ci;
  Aileron__V1__Binding b;
  fill_info(&ci, &b, "github");
  ci.revoked = 1;
  rv.credential = &ci;
  resp.body_case = AILERON__V1__RESPONSE__BODY_REVOKE_CREDENTIAL;
  resp.revoke_credential = &rv;
  set_response(ALN_OK, &resp);
  struct http_result r;
  http(&r, "DELETE", "/v1/credentials/github", bearer(OPERATOR_TOKEN), NULL);
  assert_int_equal(r.status, 200);
  assert_true(json_is_true(json_object_get(r.json, "revoked")));
  Aileron__V1__Request *req = last_request();
  assert_int_equal(req->body_case, AILERON__V1__REQUEST__BODY_REVOKE_CREDENTIAL);
  assert_string_equal(req->revoke_credential->name, "github");
  aileron__v1__request__free_unpacked(req, NULL);
  http_free(&r);
}

static void test_path_names_validated(void **state) {
  (void)state;
  /* Escapes are not decoded before routing: "%2F" cannot smuggle a separator and
   * "%00" cannot cut the name short. */
  static const char *const paths[] = {
      "/v1/credentials/git%2Fhub",
      "/v1/credentials/github%00x",
      "/v1/credentials/",
      "/v1/credentials/a%20b",
      "/v1/credentials/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "/v1/credentials/.hidden",
      "/v1/credentials/-rf"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    struct http_result r;
    http(&r, "DELETE", paths[i], bearer(OPERATOR_TOKEN), NULL);
    assert_error(&r, 400, ALN_ERR_BAD_NAME);
    http_free(&r);
  }
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &session_key, (int64_t)time(NULL), 600);
  struct http_result r;
  http(&r, "POST", "/v1/credentials/..%2Fx/request", bearer(tok), USE_BODY);
  assert_error(&r, 400, ALN_ERR_BAD_NAME);
  http_free(&r);
  assert_int_equal(dbl.calls, 0);
}

static void test_use_forwards_request_and_actor(void **state) {
  (void)state;
  static const char body[] = "{\"id\":1,\"text\":\"h\xc3\xa9llo\"}";
  canned_use((const uint8_t *)body, strlen(body));
  char tok[ALN_SESSION_TOKEN_MAX];
  struct aln_session s;
  new_session(tok, &s, &session_key, (int64_t)time(NULL), 600);
  struct http_result r;
  http(&r, "POST", "/v1/credentials/github/request", bearer(tok), USE_BODY);
  assert_int_equal(r.status, 200);
  assert_int_equal(dbl.calls, 1);
  Aileron__V1__Request *req = last_request();
  assert_int_equal(req->body_case, AILERON__V1__REQUEST__BODY_USE_CREDENTIAL);
  Aileron__V1__UseCredentialRequest *u = req->use_credential;
  char actor[64];
  snprintf(actor, sizeof(actor), "session:%s", s.id);
  assert_string_equal(u->actor, actor);
  assert_string_equal(u->name, "github");
  assert_string_equal(u->method, "POST");
  assert_string_equal(u->url, "https://api.github.com/repos/x/issues");
  assert_int_equal(u->n_headers, 2);
  int seen = 0;
  for (size_t i = 0; i < u->n_headers; i++) {
    if (strcmp(u->headers[i]->name, "Accept") == 0 && strcmp(u->headers[i]->value, "application/json") == 0)
      seen |= 1;
    if (strcmp(u->headers[i]->name, "X-Trace") == 0 && strcmp(u->headers[i]->value, "t-1") == 0)
      seen |= 2;
  }
  assert_int_equal(seen, 3);
  assert_int_equal(u->body.len, strlen("{\"title\":\"hi\"}"));
  assert_memory_equal(u->body.data, "{\"title\":\"hi\"}", u->body.len);
  aileron__v1__request__free_unpacked(req, NULL);

  assert_int_equal(json_integer_value(json_object_get(r.json, "status")), 201);
  json_t *hs = json_object_get(r.json, "headers");
  assert_int_equal(json_array_size(hs), 2);
  assert_string_equal(json_string_value(json_array_get(json_array_get(hs, 1), 0)), "x-ratelimit-remaining");
  assert_string_equal(json_string_value(json_array_get(json_array_get(hs, 1), 1)), "59");
  assert_string_equal(json_string_value(json_object_get(r.json, "body")), body);
  assert_null(json_object_get(r.json, "body_b64"));
  http_free(&r);
}

static void test_use_binary_answer_is_base64(void **state) {
  (void)state;
  static const uint8_t bin[] = {0x89, 'P', 'N', 'G', 0x00, 0xff, 0xfe};
  canned_use(bin, sizeof(bin));
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &session_key, (int64_t)time(NULL), 600);
  struct http_result r;
  http(&r, "POST", "/v1/credentials/github/request", bearer(tok),
       "{\"method\":\"GET\",\"url\":\"https://a.example/x\"}");
  assert_int_equal(r.status, 200);
  assert_null(json_object_get(r.json, "body"));
  char expect[32];
  EVP_EncodeBlock((unsigned char *)expect, bin, sizeof(bin));
  assert_string_equal(json_string_value(json_object_get(r.json, "body_b64")), expect);
  http_free(&r);
}

static void test_use_body_b64_forwarded_decoded(void **state) {
  (void)state;
  canned_use((const uint8_t *)"", 0);
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &session_key, (int64_t)time(NULL), 600);
  struct http_result r;
  /* "AP8A" is 00 ff 00 */
  http(&r, "POST", "/v1/credentials/github/request", bearer(tok),
       "{\"method\":\"PUT\",\"url\":\"https://a.example/x\",\"body_b64\":\"AP8A\"}");
  assert_int_equal(r.status, 200);
  assert_string_equal(json_string_value(json_object_get(r.json, "body")), "");
  Aileron__V1__Request *req = last_request();
  assert_int_equal(req->use_credential->body.len, 3);
  assert_memory_equal(req->use_credential->body.data, "\x00\xff\x00", 3);
  assert_int_equal(req->use_credential->n_headers, 0);
  aileron__v1__request__free_unpacked(req, NULL);
  http_free(&r);
}

static void test_use_refuses_bad_requests(void **state) {
  (void)state;
  canned_use((const uint8_t *)"x", 1);
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &session_key, (int64_t)time(NULL), 600);
  struct {
    const char *body;
    aln_status code;
  } cases[] = {
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"headers\":{\"Authorization\":\"Bearer x\"}}",
       ALN_ERR_USAGE},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"headers\":{\"host\":\"evil.example\"}}", ALN_ERR_USAGE},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"headers\":{\"X-A\":\"1\\r\\nX-B: 2\"}}", ALN_ERR_USAGE},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"headers\":{\"X A\":\"1\"}}", ALN_ERR_USAGE},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"headers\":{\"X-A\":1}}", ALN_ERR_BAD_JSON},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"headers\":[]}", ALN_ERR_BAD_JSON},
      {"{\"method\":\"TRACE\",\"url\":\"https://a.example/\"}", ALN_ERR_USAGE},
      {"{\"method\":\"get\",\"url\":\"https://a.example/\"}", ALN_ERR_USAGE},
      {"{\"method\":\"GET\",\"url\":\"ftp://a.example/\"}", ALN_ERR_BAD_URL},
      {"{\"method\":\"GET\",\"url\":\"\"}", ALN_ERR_BAD_URL},
      {"{\"method\":\"GET\"}", ALN_ERR_BAD_JSON},
      {"{\"url\":\"https://a.example/\"}", ALN_ERR_BAD_JSON},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"body\":\"a\",\"body_b64\":\"YQ==\"}", ALN_ERR_USAGE},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"body_b64\":\"Y\"}", ALN_ERR_BAD_JSON},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"actor\":\"session:admin\"}", ALN_ERR_BAD_JSON},
      {"{\"method\":\"GET\",\"url\":\"https://a.example/\",\"name\":\"other\"}", ALN_ERR_BAD_JSON},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct http_result r;
    http(&r, "POST", "/v1/credentials/github/request", bearer(tok), cases[i].body);
    assert_error(&r, 400, cases[i].code);
    http_free(&r);
  }
  assert_int_equal(dbl.calls, 0);
}

/* ---- enclave answers ------------------------------------------------------ */

static void test_enclave_errors_mapped(void **state) {
  (void)state;
  char tok[ALN_SESSION_TOKEN_MAX];
  new_session(tok, NULL, &session_key, (int64_t)time(NULL), 600);
  struct {
    aln_status st;
    long http;
  } cases[] = {{ALN_ERR_DEST_NOT_ALLOWED, 403},
               {ALN_ERR_REVOKED, 403},
               {ALN_ERR_NOT_FOUND, 404},
               {ALN_ERR_BAD_URL, 400},
               {ALN_ERR_UPSTREAM, aln_status_http(ALN_ERR_UPSTREAM)}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    canned_error(cases[i].st);
    struct http_result r;
    http(&r, "POST", "/v1/credentials/github/request", bearer(tok), USE_BODY);
    assert_error(&r, cases[i].http, cases[i].st);
    assert_null(strstr(r.body, "peer text"));
    http_free(&r);
  }
  assert_int_equal(dbl.calls, 5);
  /* Put conflicts too. */
  canned_error(ALN_ERR_EXISTS);
  struct http_result r;
  http(&r, "POST", "/v1/credentials", bearer(OPERATOR_TOKEN), valid_put());
  assert_error(&r, 409, ALN_ERR_EXISTS);
  assert_no_secret(&r);
  http_free(&r);
}

static void test_enclave_unreachable(void **state) {
  (void)state;
  set_response(ALN_ERR_UNAVAILABLE, NULL);
  struct http_result r;
  http(&r, "GET", "/v1/credentials", bearer(OPERATOR_TOKEN), NULL);
  assert_error(&r, aln_status_http(ALN_ERR_UNAVAILABLE), ALN_ERR_UNAVAILABLE);
  assert_true(r.status >= 500);
  http_free(&r);
}

static void test_enclave_wrong_answer_type(void **state) {
  (void)state;
  canned_put(); /* a PutCredential answer to a List request */
  struct http_result r;
  http(&r, "GET", "/v1/credentials", bearer(OPERATOR_TOKEN), NULL);
  assert_error(&r, 502, ALN_ERR_MALFORMED);
  http_free(&r);
}

static void test_enclave_unknown_status(void **state) {
  (void)state;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.status = 0x0977;
  set_response((aln_status)0x0977, &resp);
  struct http_result r;
  http(&r, "GET", "/v1/credentials", bearer(OPERATOR_TOKEN), NULL);
  assert_error(&r, 502, ALN_ERR_MALFORMED);
  http_free(&r);
}

/* ---- sessions ------------------------------------------------------------- */

static void test_session_issue(void **state) {
  (void)state;
  struct http_result r;
  int64_t before = (int64_t)time(NULL);
  http(&r, "POST", "/v1/sessions", bearer(OPERATOR_TOKEN), "{\"ttl_seconds\":120}");
  assert_int_equal(r.status, 201);
  const char *tok = json_string_value(json_object_get(r.json, "token"));
  assert_non_null(tok);
  struct aln_session s;
  assert_int_equal(aln_session_verify(&s, &session_key, tok, strlen(tok), (int64_t)time(NULL)), ALN_OK);
  assert_string_equal(json_string_value(json_object_get(r.json, "session_id")), s.id);
  json_int_t exp = json_integer_value(json_object_get(r.json, "expires_at"));
  assert_int_equal(exp, s.expires_at);
  assert_true(exp >= before + 120 && exp <= (int64_t)time(NULL) + 120);
  http_free(&r);
  http(&r, "POST", "/v1/sessions", bearer(OPERATOR_TOKEN), "{}");
  assert_int_equal(r.status, 201);
  exp = json_integer_value(json_object_get(r.json, "expires_at"));
  assert_true(exp >= before + ALN_API_SESSION_TTL_DEFAULT && exp <= (int64_t)time(NULL) + ALN_API_SESSION_TTL_DEFAULT);
  http_free(&r);
  assert_int_equal(dbl.calls, 0); /* sessions are the host's own business */
}

static void test_session_ttl_bounds(void **state) {
  (void)state;
  char body[64];
  const long long bad[] = {0, -1, ALN_SESSION_TTL_MAX + 1LL};
  for (size_t i = 0; i < 3; i++) {
    snprintf(body, sizeof(body), "{\"ttl_seconds\":%lld}", bad[i]);
    struct http_result r;
    http(&r, "POST", "/v1/sessions", bearer(OPERATOR_TOKEN), body);
    assert_error(&r, 400, ALN_ERR_USAGE);
    assert_null(strstr(r.body, "aln1."));
    http_free(&r);
  }
  struct http_result r;
  http(&r, "POST", "/v1/sessions", bearer(OPERATOR_TOKEN), "{\"ttl_seconds\":\"60\"}");
  assert_error(&r, 400, ALN_ERR_BAD_JSON);
  http_free(&r);
  snprintf(body, sizeof(body), "{\"ttl_seconds\":%d}", ALN_SESSION_TTL_MAX);
  http(&r, "POST", "/v1/sessions", bearer(OPERATOR_TOKEN), body);
  assert_int_equal(r.status, 201);
  http_free(&r);
}

/* ---- parsers, directly ---------------------------------------------------- */

static void test_parse_put_table(void **state) {
  (void)state;
  struct {
    const char *json;
    aln_status st;
  } cases[] = {
      {"{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/"
       "\"]}",
       ALN_OK},
      {"{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"}}", ALN_ERR_BAD_JSON},
      {"{\"name\":\"a\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"]}", ALN_ERR_BAD_JSON},
      {"{\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"]}",
       ALN_ERR_BAD_JSON},
      {"{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"allow\":[\"https://a.example/\"]}", ALN_ERR_BAD_JSON},
      {"{\"name\":\"a\",\"secret_b64\":\"YQ=\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"]}",
       ALN_ERR_BAD_JSON},
      {"{\"name\":\"a\",\"secret_b64\":\"Y===\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/"
       "\"]}",
       ALN_ERR_BAD_JSON},
      {"{\"name\":\"a\",\"secret_b64\":\"YQ==YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/"
       "\"]}",
       ALN_ERR_BAD_JSON},
      {"{\"name\":\"a\",\"secret_b64\":\"YR==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/"
       "\"]}",
       ALN_ERR_BAD_JSON},
      {"{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"],"
       "\"expires_at\":-1}",
       ALN_ERR_USAGE},
      {"{\"name\":\"a\\u0000b\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://"
       "a.example/\"]}",
       ALN_ERR_BAD_JSON},
      {"{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},\"allow\":[\"https://a.example/\"],"
       "\"ca_pem\":\"\"}",
       ALN_ERR_USAGE},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct aln_api_rpc *rpc = (struct aln_api_rpc *)&rpc;
    aln_status st = aln_api_parse_put(&rpc, (const uint8_t *)cases[i].json, strlen(cases[i].json));
    assert_int_equal(st, cases[i].st);
    if (st == ALN_OK) {
      Aileron__V1__Request *req = aln_api_rpc_request(rpc);
      assert_int_equal(req->put_credential->secret.len, 1);
      assert_int_equal(req->put_credential->secret.data[0], 'a');
    } else {
      assert_null(rpc);
    }
    aln_api_rpc_free(rpc);
  }
}

static void test_parse_list_table(void **state) {
  (void)state;
  typedef struct aln_api_query_arg A;
  static const struct {
    A args[2];
    size_t n;
    aln_status st;
    const char *after;
    uint32_t size;
  } cases[] = {
      {{{0}}, 0, ALN_OK, "", ALN_API_LIST_DEFAULT},
      {{{"after", "gh"}, {"limit", "1"}}, 2, ALN_OK, "gh", 1},
      {{{"limit", "1000"}}, 1, ALN_OK, "", 1000},
      {{{"after", ""}}, 1, ALN_OK, "", ALN_API_LIST_DEFAULT},
      {{{"limit", "0"}}, 1, ALN_ERR_USAGE, NULL, 0},
      {{{"limit", "1001"}}, 1, ALN_ERR_USAGE, NULL, 0},
      {{{"limit", "4294967297"}}, 1, ALN_ERR_USAGE, NULL, 0}, /* 2^32 + 1: no wrap to 1 */
      {{{"limit", "-1"}}, 1, ALN_ERR_USAGE, NULL, 0},
      {{{"limit", " 1"}}, 1, ALN_ERR_USAGE, NULL, 0},
      {{{"limit", NULL}}, 1, ALN_ERR_USAGE, NULL, 0},
      {{{"after", "a b"}}, 1, ALN_ERR_BAD_NAME, NULL, 0},
      {{{"after", ".."}}, 1, ALN_ERR_BAD_NAME, NULL, 0},
      {{{NULL, "x"}}, 1, ALN_ERR_USAGE, NULL, 0},
      {{{"limit", "1"}, {"limit", "1"}}, 2, ALN_ERR_USAGE, NULL, 0},
      {{{"after", "a"}, {"after", "a"}}, 2, ALN_ERR_USAGE, NULL, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct aln_api_rpc *rpc = (struct aln_api_rpc *)&rpc;
    const char *detail = "unset";
    aln_status st = aln_api_parse_list(&rpc, &detail, cases[i].args, cases[i].n);
    assert_int_equal(st, cases[i].st);
    if (st == ALN_OK) {
      assert_null(detail);
      Aileron__V1__Request *req = aln_api_rpc_request(rpc);
      assert_int_equal(req->body_case, AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS);
      assert_string_equal(req->list_credentials->page_after, cases[i].after);
      assert_int_equal(req->list_credentials->page_size, cases[i].size);
    } else {
      assert_null(rpc);
      assert_non_null(detail);
      assert_true(strlen(detail) > 10);
    }
    aln_api_rpc_free(rpc);
  }
  /* Past ALN_API_QUERY_ARGS_MAX arguments nothing is looked at. */
  struct aln_api_query_arg many[ALN_API_QUERY_ARGS_MAX + 1];
  for (size_t i = 0; i < ALN_API_QUERY_ARGS_MAX + 1; i++)
    many[i] = (struct aln_api_query_arg){.key = "limit", .value = "1"};
  struct aln_api_rpc *rpc = NULL;
  assert_int_equal(aln_api_parse_list(&rpc, NULL, many, ALN_API_QUERY_ARGS_MAX + 1), ALN_ERR_USAGE);
  assert_null(rpc);
}

static void test_parse_allow_limits(void **state) {
  (void)state;
  char body[8192];
  for (int n = ALN_API_ALLOW_MAX; n <= ALN_API_ALLOW_MAX + 1; n++) {
    int o = snprintf(body, sizeof(body),
                     "{\"name\":\"a\",\"secret_b64\":\"YQ==\",\"injection\":{\"kind\":\"bearer\"},"
                     "\"allow\":[");
    for (int i = 0; i < n; i++)
      o += snprintf(body + o, sizeof(body) - (size_t)o, "%s\"https://a.example/%d\"", i ? "," : "", i);
    snprintf(body + o, sizeof(body) - (size_t)o, "]}");
    struct aln_api_rpc *rpc = NULL;
    aln_status st = aln_api_parse_put(&rpc, (const uint8_t *)body, strlen(body));
    assert_int_equal(st, n <= ALN_API_ALLOW_MAX ? ALN_OK : ALN_ERR_USAGE);
    if (st == ALN_OK)
      assert_int_equal(aln_api_rpc_request(rpc)->put_credential->binding->n_allowed_prefixes, (size_t)n);
    aln_api_rpc_free(rpc);
  }
  /* A URL at the length limit passes, one past it is refused. */
  for (size_t len = ALN_API_URL_MAX; len <= ALN_API_URL_MAX + 1; len++) {
    char *url = malloc(len + 1);
    memset(url, 'a', len);
    memcpy(url, "https://", 8);
    url[len] = '\0';
    char *b = malloc(len + 256);
    snprintf(b, len + 256, "{\"method\":\"GET\",\"url\":\"%s\"}", url);
    struct aln_api_rpc *rpc = NULL;
    aln_status st = aln_api_parse_use(&rpc, "a", "session:x", (const uint8_t *)b, strlen(b));
    assert_int_equal(st, len <= ALN_API_URL_MAX ? ALN_OK : ALN_ERR_BAD_URL);
    aln_api_rpc_free(rpc);
    free(url);
    free(b);
  }
}

static void test_parse_size_cap(void **state) {
  (void)state;
  static const uint8_t brace[] = "{}";
  int64_t ttl = -7;
  assert_int_equal(aln_api_parse_session(&ttl, brace, ALN_API_BODY_MAX + 1), ALN_ERR_TOO_LARGE);
  assert_int_equal(ttl, -7);
  assert_int_equal(aln_api_parse_session(&ttl, brace, 0), ALN_ERR_BAD_JSON);
  assert_int_equal(aln_api_parse_session(&ttl, brace, 2), ALN_OK);
  assert_int_equal(ttl, ALN_API_SESSION_TTL_DEFAULT);
  struct aln_api_rpc *rpc = NULL;
  assert_int_equal(aln_api_parse_put(&rpc, brace, ALN_API_BODY_MAX + 1), ALN_ERR_TOO_LARGE);
  assert_null(rpc);
  assert_int_equal(aln_api_parse_use(&rpc, "bad/name", "session:x", brace, 2), ALN_ERR_BAD_NAME);
  assert_null(rpc);
  assert_int_equal(aln_api_parse_use(&rpc, "-x", "session:x", brace, 2), ALN_ERR_BAD_NAME);
  assert_null(rpc);
}

/* ---- listeners ------------------------------------------------------------ */

static void test_socket_is_private(void **state) {
  (void)state;
  struct stat st;
  assert_int_equal(lstat(sock, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_listen_refuses_live_socket_and_files(void **state) {
  (void)state;
  struct aln_api *other = NULL;
  struct aln_api_config cfg = {
      .operator_token = &op_token, .session_key = &session_key, .forward = double_forward, .forward_ctx = NULL};
  assert_int_equal(aln_api_new(&other, &cfg), ALN_OK);
  /* The live socket of the running server is not taken over. */
  assert_int_equal(aln_api_listen_unix(other, sock), ALN_ERR_EXISTS);
  /* A regular file at the path is not removed. */
  char path[160];
  snprintf(path, sizeof(path), "%s/file", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fclose(f);
  assert_int_equal(aln_api_listen_unix(other, path), ALN_ERR_EXISTS);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  unlink(path);
  /* A stale socket (nobody listening) is replaced, and removed again at free. */
  snprintf(path, sizeof(path), "%s/stale.sock", dir);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  assert_true(strlen(path) < sizeof(sa.sun_path));
  memcpy(sa.sun_path, path, strlen(path) + 1);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  close(fd);
  assert_int_equal(aln_api_listen_unix(other, path), ALN_OK);
  struct http_result r;
  set_response(ALN_ERR_UNAVAILABLE, NULL);
  http_on(&r, path, "http://localhost", "GET", "/v1/health", NULL, NULL, 0);
  assert_int_equal(r.status, 200);
  http_free(&r);
  aln_api_free(other);
  assert_int_not_equal(lstat(path, &st), 0);
  assert_int_equal(errno, ENOENT);
}

static void test_listen_tcp_loopback_only(void **state) {
  (void)state;
  struct aln_api *other = NULL;
  struct aln_api_config cfg = {
      .operator_token = &op_token, .session_key = &session_key, .forward = double_forward, .forward_ctx = NULL};
  assert_int_equal(aln_api_new(&other, &cfg), ALN_OK);
  uint16_t port = 0;
  assert_int_equal(aln_api_listen_tcp(other, &port, "0.0.0.0:0"), ALN_ERR_USAGE);
  assert_int_equal(aln_api_listen_tcp(other, &port, "192.0.2.1:0"), ALN_ERR_USAGE);
  assert_int_equal(aln_api_listen_tcp(other, &port, "[::]:0"), ALN_ERR_USAGE);
  assert_int_equal(aln_api_listen_tcp(other, &port, "127.0.0.1:0"), ALN_OK);
  assert_int_not_equal(port, 0);
  char base[64];
  snprintf(base, sizeof(base), "http://127.0.0.1:%u", (unsigned)port);
  struct http_result r;
  http_on(&r, NULL, base, "GET", "/v1/credentials", NULL, NULL, 0);
  assert_error(&r, 401, ALN_ERR_AUTH_MISSING);
  http_free(&r);
  aln_api_free(other);
}

static void test_api_new_checks_config(void **state) {
  (void)state;
  struct aln_api *a = NULL;
  struct aln_secret short_tok = {.p = op_token.p, .len = 10};
  struct aln_api_config cfg = {.operator_token = &short_tok, .session_key = &session_key, .forward = double_forward};
  assert_int_equal(aln_api_new(&a, &cfg), ALN_ERR_USAGE);
  cfg.operator_token = &op_token;
  cfg.forward = NULL;
  assert_int_equal(aln_api_new(&a, &cfg), ALN_ERR_USAGE);
  assert_null(a);
}

#define T(f) cmocka_unit_test_setup(f, reset)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_health_needs_no_auth),
      T(test_health_enclave_down),
      T(test_unknown_route_404),
      T(test_wrong_method_405),
      T(test_operator_call_without_auth),
      T(test_operator_wrong_token),
      T(test_operator_token_with_suffix_refused),
      T(test_session_token_refused_for_operator_call),
      T(test_operator_token_refused_as_session_token),
      T(test_use_without_auth),
      T(test_forged_session_token),
      T(test_expired_session_token),
      T(test_malformed_json),
      T(test_duplicate_keys),
      T(test_unknown_fields),
      T(test_wrong_types),
      T(test_oversized_body),
      T(test_oversized_chunked_body_is_cut),
      T(test_get_with_body_refused),
      T(test_put_forwards_fields),
      T(test_put_bearer_defaults),
      T(test_put_semantic_errors),
      T(test_put_kind),
      T(test_list_forwards),
      T(test_list_pages),
      T(test_list_query_refused),
      T(test_query_refused_on_other_routes),
      T(test_list_enclave_page_checked),
      T(test_revoke_forwards_name),
      T(test_path_names_validated),
      T(test_use_forwards_request_and_actor),
      T(test_use_binary_answer_is_base64),
      T(test_use_body_b64_forwarded_decoded),
      T(test_use_refuses_bad_requests),
      T(test_enclave_errors_mapped),
      T(test_enclave_unreachable),
      T(test_enclave_wrong_answer_type),
      T(test_enclave_unknown_status),
      T(test_session_issue),
      T(test_session_ttl_bounds),
      T(test_parse_put_table),
      T(test_parse_list_table),
      T(test_parse_allow_limits),
      T(test_parse_size_cap),
      T(test_socket_is_private),
      T(test_listen_refuses_live_socket_and_files),
      T(test_listen_tcp_loopback_only),
      T(test_api_new_checks_config),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
