/* The host's HTTP API. libmicrohttpd calls api_handle several times per request:
 * once with the headers (route, method and authentication are decided there, so an
 * unauthenticated caller never gets a byte of its body buffered), once per body
 * chunk (appended to a writer capped at ALN_API_BODY_MAX and wiped when freed),
 * and once at the end, when the body is parsed and forwarded. JSON is parsed
 * strictly: duplicate keys, unknown keys and wrong types are refused; so are query
 * parameters, which only the list takes. Every answer is built here from protobuf
 * fields and constants, never from the caller's bytes. */
#include "host/api.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "host/session.h"
#include "proto/base64.h"
#include "proto/cbs.h"
#include "proto/channel.h"
#include "proto/http.h"
#include "proto/net.h"

#define API_LISTENERS_MAX 4
#define API_RESPONSE_MAX ((size_t)64 << 20)
#define API_CONN_LIMIT 64
#define API_CONN_TIMEOUT_S 60

/* ---- jansson allocators that wipe ---------------------------------------- */

/* Each block carries its size in front so that the free function, which jansson
 * calls without a size, can wipe the whole block. */
#define JSON_HDR (sizeof(max_align_t) > sizeof(size_t) ? sizeof(max_align_t) : sizeof(size_t))

static void *json_wipe_malloc(size_t n) {
  size_t total;
  if (__builtin_add_overflow(n, JSON_HDR, &total))
    return NULL;
  uint8_t *p = malloc(total);
  if (p == NULL)
    return NULL;
  memcpy(p, &n, sizeof(n));
  return p + JSON_HDR;
}

static void json_wipe_free(void *ptr) {
  if (ptr == NULL)
    return;
  uint8_t *p = (uint8_t *)ptr - JSON_HDR;
  size_t n;
  memcpy(&n, p, sizeof(n));
  aln_wipe(p, n + JSON_HDR);
  free(p);
}

static pthread_once_t json_once = PTHREAD_ONCE_INIT;

static void json_install(void) {
  json_set_alloc_funcs(json_wipe_malloc, json_wipe_free);
}

void aln_api_json_init(void) {
  (void)pthread_once(&json_once, json_install);
}

/* ---- small validators ----------------------------------------------------- */

/* url_valid accepts an absolute https URL of printable ASCII without spaces. The
 * enclave parses and enforces destinations; this only refuses what can never be
 * one before a round trip. */
static int url_valid(const char *s, size_t len) {
  static const char scheme[] = "https://";
  if (len <= sizeof(scheme) - 1 || len > ALN_API_URL_MAX || strncasecmp(s, scheme, sizeof(scheme) - 1) != 0)
    return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
      return 0;
  return 1;
}

static int method_valid(const char *m) {
  static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};
  for (const char *const *p = methods; *p != NULL; p++)
    if (strcmp(m, *p) == 0)
      return 1;
  return 0;
}

/* ---- base64 --------------------------------------------------------------- */

/* b64_status gives malformed base64 in a JSON field the answer every other
 * malformed field gets. */
static aln_status b64_status(aln_status st) {
  return st == ALN_ERR_MALFORMED ? ALN_ERR_BAD_JSON : st;
}

/* b64_json returns a new JSON string holding the padded base64 of |in|, or NULL.
 * The text is wiped before it is freed: an upstream answer may carry anything. */
static json_t *b64_json(const uint8_t *in, size_t len) {
  size_t n;
  if (aln_base64_encoded_len(&n, len, ALN_BASE64_STD) != ALN_OK)
    return NULL;
  char *text = malloc(n + 1);
  if (text == NULL)
    return NULL;
  json_t *s = NULL;
  if (aln_base64_encode(text, n + 1, NULL, in, len, ALN_BASE64_STD) == ALN_OK)
    s = json_stringn(text, n);
  aln_wipe(text, n + 1);
  free(text);
  return s;
}

/* ---- JSON field access ---------------------------------------------------- */

static aln_status json_parse_object(json_t **out, const uint8_t *body, size_t len) {
  ALN_ENSURE(len <= ALN_API_BODY_MAX, ALN_ERR_TOO_LARGE);
  ALN_ENSURE(body != NULL && len > 0, ALN_ERR_BAD_JSON);
  json_error_t err;
  /* Without JSON_ALLOW_NUL jansson refuses \u0000, so every string is a C string. */
  json_t *doc = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err);
  ALN_ENSURE(doc != NULL, ALN_ERR_BAD_JSON);
  if (!json_is_object(doc)) {
    json_decref(doc);
    return ALN_ERR_BAD_JSON;
  }
  *out = doc;
  return ALN_OK;
}

/* json_only_keys refuses an object holding a key outside |allowed|. */
static aln_status json_only_keys(json_t *obj, const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    int known = 0;
    for (const char *const *a = allowed; *a != NULL && !known; a++)
      known = strcmp(key, *a) == 0;
    ALN_ENSURE(known, ALN_ERR_BAD_JSON);
  }
  return ALN_OK;
}

/* json_str fetches string member |key|: *out NULL when absent (ALN_ERR_BAD_JSON if
 * |required|), ALN_ERR_BAD_JSON when of another type (null included). */
static aln_status json_str(const char **out, size_t *out_len, json_t *obj, const char *key, int required) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  *out_len = 0;
  if (v == NULL)
    return required ? ALN_ERR_BAD_JSON : ALN_OK;
  ALN_ENSURE(json_is_string(v), ALN_ERR_BAD_JSON);
  *out = json_string_value(v);
  *out_len = json_string_length(v);
  return ALN_OK;
}

static aln_status json_int(json_int_t *out, int *present, json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  *present = v != NULL;
  if (v == NULL)
    return ALN_OK;
  ALN_ENSURE(json_is_integer(v), ALN_ERR_BAD_JSON);
  *out = json_integer_value(v);
  return ALN_OK;
}

/* json_wipe_string overwrites the characters of a string value in place. */
static void json_wipe_string(json_t *v) {
  if (json_is_string(v))
    aln_wipe((char *)json_string_value(v), json_string_length(v));
}

/* ---- parsed requests ------------------------------------------------------ */

struct aln_api_rpc {
  Aileron__V1__Request req;
  Aileron__V1__HealthRequest health;
  Aileron__V1__ListCredentialsRequest list;
  Aileron__V1__RevokeCredentialRequest revoke;
  Aileron__V1__PutCredentialRequest put;
  Aileron__V1__UseCredentialRequest use;
  Aileron__V1__Binding binding;
  char **prefixes;
  Aileron__V1__Header *headers;
  Aileron__V1__Header **header_ptrs;
  struct aln_secret secret; /* put: the credential */
  uint8_t *body;            /* use: decoded body_b64 */
  size_t body_len;
  char *name; /* copies for fields not taken from |json| */
  char *actor;
  json_t *json; /* owns the strings the protobuf fields point into */
  json_t *secret_json;
};

static aln_status rpc_new(struct aln_api_rpc **out) {
  aln_api_json_init();
  struct aln_api_rpc *rpc = calloc(1, sizeof(*rpc));
  ALN_ENSURE(rpc != NULL, ALN_ERR_NOMEM);
  aileron__v1__request__init(&rpc->req);
  rpc->req.version = AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
  *out = rpc;
  return ALN_OK;
}

Aileron__V1__Request *aln_api_rpc_request(struct aln_api_rpc *rpc) {
  return rpc == NULL ? NULL : &rpc->req;
}

void aln_api_rpc_free(struct aln_api_rpc *rpc) {
  if (rpc == NULL)
    return;
  json_wipe_string(rpc->secret_json);
  json_decref(rpc->json);
  aln_secret_free(&rpc->secret);
  if (rpc->body != NULL) {
    aln_wipe(rpc->body, rpc->body_len);
    free(rpc->body);
  }
  free(rpc->prefixes);
  free(rpc->headers);
  free(rpc->header_ptrs);
  free(rpc->name);
  free(rpc->actor);
  aln_wipe(rpc, sizeof(*rpc));
  free(rpc);
}

static aln_status rpc_health(struct aln_api_rpc **out) {
  ALN_GUARD(rpc_new(out));
  aileron__v1__health_request__init(&(*out)->health);
  (*out)->req.body_case = AILERON__V1__REQUEST__BODY_HEALTH;
  (*out)->req.health = &(*out)->health;
  return ALN_OK;
}

/* ---- the list's query ----------------------------------------------------- */

#define API_STR_(x) #x
#define API_STR(x) API_STR_(x)
#define LIST_ONLY_ARGS "this call takes only after=NAME and limit=N"
#define LIST_LIMIT_DETAIL                                                                                              \
  "limit must be a whole number from 1 to " API_STR(ALN_API_LIST_MAX) " (omit it for " API_STR(                        \
      ALN_API_LIST_DEFAULT) " per page)"
#define LIST_AFTER_DETAIL                                                                                              \
  "after must be a credential name (the next_after of the page before) or empty for the first page"

/* refuse returns |st| with |why| (a constant) as the message the caller gets. */
static aln_status refuse(const char **detail, const char *why, aln_status st) {
  *detail = why;
  return st;
}

/* parse_limit reads a page size: decimal digits only (no sign, no space), within
 * 1..ALN_API_LIST_MAX, checked digit by digit so no length overflows. */
static aln_status parse_limit(uint32_t *out, const char *s) {
  uint32_t n = 0;
  ALN_ENSURE(s[0] != '\0', ALN_ERR_USAGE);
  for (const char *p = s; *p != '\0'; p++) {
    ALN_ENSURE(*p >= '0' && *p <= '9', ALN_ERR_USAGE);
    n = n * 10 + (uint32_t)(*p - '0');
    ALN_ENSURE(n <= ALN_API_LIST_MAX, ALN_ERR_USAGE);
  }
  ALN_ENSURE(n >= 1, ALN_ERR_USAGE);
  *out = n;
  return ALN_OK;
}

/* list_args finds after and limit among |args|, as strictly as the JSON keys of a
 * body: each at most once and with a value, nothing else. */
static aln_status list_args(const char **after, const char **limit, const char **detail,
                            const struct aln_api_query_arg *args, size_t num_args) {
  *after = *limit = NULL;
  if (num_args > ALN_API_QUERY_ARGS_MAX)
    return refuse(detail, "too many query parameters: " LIST_ONLY_ARGS, ALN_ERR_USAGE);
  for (size_t i = 0; i < num_args; i++) {
    const char *key = args[i].key != NULL ? args[i].key : "";
    const char **slot = strcmp(key, "after") == 0 ? after : strcmp(key, "limit") == 0 ? limit : NULL;
    if (slot == NULL)
      return refuse(detail, "unknown query parameter: " LIST_ONLY_ARGS, ALN_ERR_USAGE);
    if (*slot != NULL)
      return refuse(detail, "query parameter given more than once", ALN_ERR_USAGE);
    if (args[i].value == NULL)
      return refuse(detail, "query parameter without a value: write after=NAME, limit=N", ALN_ERR_USAGE);
    *slot = args[i].value;
  }
  return ALN_OK;
}

aln_status aln_api_parse_list(struct aln_api_rpc **out, const char **out_detail, const struct aln_api_query_arg *args,
                              size_t num_args) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_api_rpc *rpc = NULL;
  const char *ignored, *after, *limit;
  const char **detail = out_detail != NULL ? out_detail : &ignored;
  *detail = NULL;
  ALN_ENSURE(out != NULL && (args != NULL || num_args == 0), ALN_ERR_USAGE);
  *out = NULL;
  ALN_GUARD(list_args(&after, &limit, detail, args, num_args));
  uint32_t page_size = ALN_API_LIST_DEFAULT;
  if (limit != NULL && parse_limit(&page_size, limit) != ALN_OK)
    return refuse(detail, LIST_LIMIT_DETAIL, ALN_ERR_USAGE);
  /* An empty after is the first page, so a client can pass back whatever
   * next_after it holds, from the start on. */
  if (after == NULL)
    after = "";
  if (after[0] != '\0' && !aln_cred_name_valid(after, strlen(after)))
    return refuse(detail, LIST_AFTER_DETAIL, ALN_ERR_BAD_NAME);

  ALN_GUARD_GOTO(st, rpc_new(&rpc), out);
  rpc->name = strdup(after);
  ALN_ENSURE_GOTO(st, rpc->name != NULL, ALN_ERR_NOMEM, out);
  aileron__v1__list_credentials_request__init(&rpc->list);
  rpc->list.page_after = rpc->name;
  rpc->list.page_size = page_size;
  rpc->req.body_case = AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS;
  rpc->req.list_credentials = &rpc->list;
  *out = rpc;
  rpc = NULL;
  st = ALN_OK;
out:
  aln_api_rpc_free(rpc);
  return st;
}

static aln_status rpc_revoke(struct aln_api_rpc **out, const char *name) {
  ALN_ENSURE(aln_cred_name_valid(name, strlen(name)), ALN_ERR_BAD_NAME);
  ALN_GUARD(rpc_new(out));
  struct aln_api_rpc *rpc = *out;
  rpc->name = strdup(name);
  if (rpc->name == NULL) {
    aln_api_rpc_free(rpc);
    *out = NULL;
    return ALN_ERR_NOMEM;
  }
  aileron__v1__revoke_credential_request__init(&rpc->revoke);
  rpc->revoke.name = rpc->name;
  rpc->req.body_case = AILERON__V1__REQUEST__BODY_REVOKE_CREDENTIAL;
  rpc->req.revoke_credential = &rpc->revoke;
  return ALN_OK;
}

static const char *const put_keys[] = {"name",       "secret_b64", "injection", "allow", "ca_pem",
                                       "expires_at", "replace",    "kind",      NULL};
static const char *const injection_keys[] = {"kind", "header", NULL};

/* parse_injection fills the injection of |b| from {"kind":"bearer"} or
 * {"kind":"header","header":NAME}; the header name points into |inj|. */
static aln_status parse_injection(Aileron__V1__Binding *b, json_t *inj) {
  ALN_ENSURE(json_is_object(inj), ALN_ERR_BAD_JSON);
  ALN_GUARD(json_only_keys(inj, injection_keys));
  const char *kind, *header;
  size_t kind_len, header_len;
  ALN_GUARD(json_str(&kind, &kind_len, inj, "kind", 1));
  ALN_GUARD(json_str(&header, &header_len, inj, "header", 0));
  if (strcmp(kind, "bearer") == 0) {
    ALN_ENSURE(header == NULL, ALN_ERR_BAD_INJECTION);
    b->injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER;
    return ALN_OK;
  }
  ALN_ENSURE(strcmp(kind, "header") == 0, ALN_ERR_BAD_INJECTION);
  ALN_ENSURE(header != NULL && header_len <= ALN_BINDING_HEADER_NAME_MAX && aln_http_token_valid(header, header_len) &&
                 !aln_http_injection_header_refused(header),
             ALN_ERR_BAD_INJECTION);
  b->injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER;
  b->header_name = (char *)header;
  return ALN_OK;
}

static aln_status parse_allow(struct aln_api_rpc *rpc, json_t *allow) {
  ALN_ENSURE(json_is_array(allow), ALN_ERR_BAD_JSON);
  size_t n = json_array_size(allow);
  ALN_ENSURE(n >= 1 && n <= ALN_API_ALLOW_MAX, ALN_ERR_USAGE);
  rpc->prefixes = calloc(n, sizeof(*rpc->prefixes));
  ALN_ENSURE(rpc->prefixes != NULL, ALN_ERR_NOMEM);
  for (size_t i = 0; i < n; i++) {
    json_t *p = json_array_get(allow, i);
    ALN_ENSURE(json_is_string(p), ALN_ERR_BAD_JSON);
    ALN_ENSURE(url_valid(json_string_value(p), json_string_length(p)), ALN_ERR_BAD_URL);
    rpc->prefixes[i] = (char *)json_string_value(p);
  }
  rpc->binding.n_allowed_prefixes = n;
  rpc->binding.allowed_prefixes = rpc->prefixes;
  return ALN_OK;
}

/* parse_put_fields fills rpc->put from rpc->json. */
static aln_status parse_put_fields(struct aln_api_rpc *rpc) {
  json_t *doc = rpc->json;
  ALN_GUARD(json_only_keys(doc, put_keys));

  const char *name, *secret_b64, *ca_pem;
  size_t name_len, secret_b64_len, ca_pem_len;
  ALN_GUARD(json_str(&name, &name_len, doc, "name", 1));
  ALN_ENSURE(aln_cred_name_valid(name, name_len), ALN_ERR_BAD_NAME);

  /* The secret: decoded into locked memory, then its base64 form is wiped at
   * once rather than when the document goes. */
  ALN_GUARD(json_str(&secret_b64, &secret_b64_len, doc, "secret_b64", 1));
  rpc->secret_json = json_object_get(doc, "secret_b64");
  size_t secret_len;
  ALN_GUARD(b64_status(aln_base64_decoded_len(&secret_len, secret_b64, secret_b64_len, ALN_BASE64_STD)));
  ALN_ENSURE(secret_len > 0, ALN_ERR_USAGE);
  ALN_GUARD(aln_secret_new(&rpc->secret, secret_len));
  ALN_GUARD(
      b64_status(aln_base64_decode(rpc->secret.p, rpc->secret.len, NULL, secret_b64, secret_b64_len, ALN_BASE64_STD)));
  json_wipe_string(rpc->secret_json);

  aileron__v1__binding__init(&rpc->binding);
  ALN_GUARD(parse_injection(&rpc->binding, json_object_get(doc, "injection")));
  ALN_GUARD(parse_allow(rpc, json_object_get(doc, "allow")));
  ALN_GUARD(json_str(&ca_pem, &ca_pem_len, doc, "ca_pem", 0));
  if (ca_pem != NULL) {
    ALN_ENSURE(ca_pem_len > 0 && ca_pem_len <= ALN_API_CA_PEM_MAX, ALN_ERR_USAGE);
    rpc->binding.ca_pem.data = (uint8_t *)ca_pem;
    rpc->binding.ca_pem.len = ca_pem_len;
  }

  json_int_t expires_at = 0;
  int present;
  ALN_GUARD(json_int(&expires_at, &present, doc, "expires_at"));
  ALN_ENSURE(expires_at >= 0, ALN_ERR_USAGE);
  json_t *replace = json_object_get(doc, "replace");
  ALN_ENSURE(replace == NULL || json_is_boolean(replace), ALN_ERR_BAD_JSON);
  /* Only static secrets exist so far; a kind the host cannot name is refused here
   * rather than stored as a secret. */
  const char *kind;
  size_t kind_len;
  ALN_GUARD(json_str(&kind, &kind_len, doc, "kind", 0));
  ALN_ENSURE(kind == NULL || (kind_len == 6 && strcmp(kind, "secret") == 0), ALN_ERR_USAGE);

  aileron__v1__put_credential_request__init(&rpc->put);
  rpc->put.name = (char *)name;
  rpc->put.secret.data = rpc->secret.p;
  rpc->put.secret.len = rpc->secret.len;
  rpc->put.binding = &rpc->binding;
  rpc->put.expires_at = expires_at;
  rpc->put.replace = replace != NULL && json_is_true(replace);
  rpc->put.kind = AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET;
  rpc->req.body_case = AILERON__V1__REQUEST__BODY_PUT_CREDENTIAL;
  rpc->req.put_credential = &rpc->put;
  return ALN_OK;
}

aln_status aln_api_parse_put(struct aln_api_rpc **out, const uint8_t *body, size_t len) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_api_rpc *rpc = NULL;
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  *out = NULL;
  ALN_GUARD_GOTO(st, rpc_new(&rpc), out);
  ALN_GUARD_GOTO(st, json_parse_object(&rpc->json, body, len), out);
  ALN_GUARD_GOTO(st, parse_put_fields(rpc), out);
  *out = rpc;
  rpc = NULL;
  st = ALN_OK;
out:
  aln_api_rpc_free(rpc);
  return st;
}

static const char *const use_keys[] = {"method", "url", "headers", "body", "body_b64", NULL};

static aln_status parse_headers(struct aln_api_rpc *rpc, json_t *headers) {
  if (headers == NULL)
    return ALN_OK;
  ALN_ENSURE(json_is_object(headers), ALN_ERR_BAD_JSON);
  size_t n = json_object_size(headers);
  if (n == 0)
    return ALN_OK;
  ALN_ENSURE(n <= ALN_API_HEADERS_MAX, ALN_ERR_USAGE);
  rpc->headers = calloc(n, sizeof(*rpc->headers));
  rpc->header_ptrs = calloc(n, sizeof(*rpc->header_ptrs));
  ALN_ENSURE(rpc->headers != NULL && rpc->header_ptrs != NULL, ALN_ERR_NOMEM);
  size_t i = 0;
  const char *key;
  json_t *v;
  json_object_foreach(headers, key, v) {
    ALN_ENSURE(i < n, ALN_ERR_INTERNAL);
    ALN_ENSURE(json_is_string(v), ALN_ERR_BAD_JSON);
    ALN_ENSURE(aln_http_token_valid(key, strlen(key)), ALN_ERR_USAGE);
    ALN_ENSURE(!aln_http_request_header_refused(key), ALN_ERR_USAGE);
    ALN_ENSURE(json_string_length(v) <= ALN_API_HEADER_VALUE_MAX &&
                   aln_http_value_valid(json_string_value(v), json_string_length(v)),
               ALN_ERR_USAGE);
    aileron__v1__header__init(&rpc->headers[i]);
    rpc->headers[i].name = (char *)key;
    rpc->headers[i].value = (char *)json_string_value(v);
    rpc->header_ptrs[i] = &rpc->headers[i];
    i++;
  }
  rpc->use.n_headers = i;
  rpc->use.headers = rpc->header_ptrs;
  return ALN_OK;
}

static aln_status parse_use_fields(struct aln_api_rpc *rpc) {
  json_t *doc = rpc->json;
  ALN_GUARD(json_only_keys(doc, use_keys));
  const char *method, *url, *body, *body_b64;
  size_t method_len, url_len, body_len, body_b64_len;
  ALN_GUARD(json_str(&method, &method_len, doc, "method", 1));
  ALN_ENSURE(method_valid(method), ALN_ERR_USAGE);
  ALN_GUARD(json_str(&url, &url_len, doc, "url", 1));
  ALN_ENSURE(url_valid(url, url_len), ALN_ERR_BAD_URL);
  ALN_GUARD(parse_headers(rpc, json_object_get(doc, "headers")));

  ALN_GUARD(json_str(&body, &body_len, doc, "body", 0));
  ALN_GUARD(json_str(&body_b64, &body_b64_len, doc, "body_b64", 0));
  ALN_ENSURE(body == NULL || body_b64 == NULL, ALN_ERR_USAGE);
  if (body != NULL) {
    rpc->use.body.data = (uint8_t *)body;
    rpc->use.body.len = body_len;
  } else if (body_b64 != NULL) {
    ALN_GUARD(b64_status(aln_base64_decoded_len(&rpc->body_len, body_b64, body_b64_len, ALN_BASE64_STD)));
    rpc->body = malloc(rpc->body_len + 1); /* +1: malloc(0) may be NULL */
    ALN_ENSURE(rpc->body != NULL, ALN_ERR_NOMEM);
    ALN_GUARD(b64_status(aln_base64_decode(rpc->body, rpc->body_len, NULL, body_b64, body_b64_len, ALN_BASE64_STD)));
    rpc->use.body.data = rpc->body;
    rpc->use.body.len = rpc->body_len;
  }
  rpc->use.name = rpc->name;
  rpc->use.actor = rpc->actor;
  rpc->use.method = (char *)method;
  rpc->use.url = (char *)url;
  rpc->req.body_case = AILERON__V1__REQUEST__BODY_USE_CREDENTIAL;
  rpc->req.use_credential = &rpc->use;
  return ALN_OK;
}

aln_status aln_api_parse_use(struct aln_api_rpc **out, const char *name, const char *actor, const uint8_t *body,
                             size_t len) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_api_rpc *rpc = NULL;
  ALN_ENSURE(out != NULL && name != NULL && actor != NULL, ALN_ERR_USAGE);
  *out = NULL;
  ALN_ENSURE(aln_cred_name_valid(name, strlen(name)), ALN_ERR_BAD_NAME);
  ALN_GUARD_GOTO(st, rpc_new(&rpc), out);
  aileron__v1__use_credential_request__init(&rpc->use);
  rpc->name = strdup(name);
  rpc->actor = strdup(actor);
  ALN_ENSURE_GOTO(st, rpc->name != NULL && rpc->actor != NULL, ALN_ERR_NOMEM, out);
  ALN_GUARD_GOTO(st, json_parse_object(&rpc->json, body, len), out);
  ALN_GUARD_GOTO(st, parse_use_fields(rpc), out);
  *out = rpc;
  rpc = NULL;
  st = ALN_OK;
out:
  aln_api_rpc_free(rpc);
  return st;
}

static const char *const session_keys[] = {"ttl_seconds", NULL};

aln_status aln_api_parse_session(int64_t *out_ttl, const uint8_t *body, size_t len) {
  aln_status st = ALN_ERR_INTERNAL;
  json_t *doc = NULL;
  ALN_ENSURE(out_ttl != NULL, ALN_ERR_USAGE);
  aln_api_json_init();
  ALN_GUARD_GOTO(st, json_parse_object(&doc, body, len), out);
  ALN_GUARD_GOTO(st, json_only_keys(doc, session_keys), out);
  json_int_t ttl = ALN_API_SESSION_TTL_DEFAULT;
  int present;
  ALN_GUARD_GOTO(st, json_int(&ttl, &present, doc, "ttl_seconds"), out);
  ALN_ENSURE_GOTO(st, ttl >= 1 && ttl <= ALN_SESSION_TTL_MAX, ALN_ERR_USAGE, out);
  *out_ttl = (int64_t)ttl;
  st = ALN_OK;
out:
  json_decref(doc);
  return st;
}

/* ---- answers -------------------------------------------------------------- */

/* A response body whose memory is wiped when MHD is done with it: answers carry
 * session tokens. */
struct wiped_buf {
  size_t len;
  uint8_t data[];
};

static void wiped_buf_free(void *cls) {
  struct wiped_buf *b = cls;
  aln_wipe(b->data, b->len);
  free(b);
}

static int dump_to_cbb(const char *buf, size_t size, void *data) {
  return aln_cbb_add_bytes(data, (const uint8_t *)buf, size) == ALN_OK ? 0 : -1;
}

/* answer_json queues |doc| (reference stolen) as the answer with HTTP status |http|. */
static enum MHD_Result answer_json(struct MHD_Connection *conn, unsigned http, json_t *doc, const char *allow) {
  enum MHD_Result rc = MHD_NO;
  struct aln_cbb cbb = {0};
  struct wiped_buf *wb = NULL;
  struct MHD_Response *resp = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  if (doc == NULL || aln_cbb_init(&cbb, 256, API_RESPONSE_MAX) != ALN_OK)
    goto out;
  if (json_dump_callback(doc, dump_to_cbb, &cbb, JSON_COMPACT) != 0 || aln_cbb_add_u8(&cbb, '\n') != ALN_OK ||
      aln_cbb_finish(&cbb, &buf, &len) != ALN_OK)
    goto out;
  wb = malloc(sizeof(*wb) + len);
  if (wb == NULL)
    goto out;
  wb->len = len;
  memcpy(wb->data, buf, len);
  resp = MHD_create_response_from_buffer_with_free_callback_cls(len, wb->data, wiped_buf_free, wb);
  if (resp == NULL)
    goto out;
  wb = NULL; /* owned by |resp| now */
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES ||
      MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
      (allow != NULL && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES))
    goto out;
  rc = MHD_queue_response(conn, http, resp);
out:
  if (resp != NULL)
    MHD_destroy_response(resp);
  if (wb != NULL)
    wiped_buf_free(wb);
  aln_cbb_buf_free(buf, len);
  aln_cbb_cleanup(&cbb);
  json_decref(doc);
  return rc;
}

/* error_doc describes |st|; |detail| (a constant of this file, never the caller's
 * bytes; NULL for the status table's text) says more where the code alone would
 * leave the caller guessing which part of the request was wrong. */
static json_t *error_doc(aln_status st, const char *detail) {
  return json_pack("{s:{s:s,s:s}}", "error", "code", aln_status_name(st), "message",
                   detail != NULL ? detail : aln_strerror(st));
}

/* ---- protobuf answers to JSON -------------------------------------------- */

static json_t *injection_json(const Aileron__V1__Binding *b) {
  if (b != NULL && b->injection == AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER)
    return json_pack("{s:s}", "kind", "bearer");
  if (b != NULL && b->injection == AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER)
    return json_pack("{s:s,s:s}", "kind", "header", "header", b->header_name);
  return json_pack("{s:s}", "kind", "unspecified");
}

static const char *kind_name(Aileron__V1__CredentialKind kind) {
  return kind == AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET ? "secret" : "unspecified";
}

/* info_json describes a credential; NULL if the enclave sent something that is not
 * representable (a non-UTF-8 string). ca_pem is never echoed, only has_ca. */
static json_t *info_json(const Aileron__V1__CredentialInfo *ci) {
  if (ci == NULL || ci->name == NULL)
    return NULL;
  json_t *allow = json_array();
  if (allow == NULL)
    return NULL;
  for (size_t i = 0; ci->binding != NULL && i < ci->binding->n_allowed_prefixes; i++) {
    const char *p = ci->binding->allowed_prefixes[i];
    if (p == NULL || json_array_append_new(allow, json_string(p)) != 0) {
      json_decref(allow);
      return NULL;
    }
  }
  return json_pack("{s:s,s:s,s:I,s:o,s:o,s:b,s:I,s:I,s:b}", "name", ci->name, "kind", kind_name(ci->kind), "version",
                   (json_int_t)ci->version, "injection", injection_json(ci->binding), "allow", allow, "has_ca",
                   (int)ci->has_ca, "created_at", (json_int_t)ci->created_at, "expires_at", (json_int_t)ci->expires_at,
                   "revoked", (int)ci->revoked);
}

/* use_json renders an upstream answer. Header lines that are not UTF-8 are dropped
 * (HTTP field values are ASCII in practice); a body that is not UTF-8 text, or
 * contains NUL, is returned as body_b64. */
static json_t *use_json(const Aileron__V1__UseCredentialResponse *u) {
  json_t *headers = json_array(), *doc = NULL;
  if (headers == NULL)
    return NULL;
  for (size_t i = 0; i < u->n_headers; i++) {
    const Aileron__V1__Header *h = u->headers[i];
    if (h == NULL || h->name == NULL || h->value == NULL)
      continue;
    json_t *pair = json_pack("[s,s]", h->name, h->value);
    if (pair != NULL && json_array_append_new(headers, pair) != 0)
      goto fail;
  }
  doc = json_pack("{s:I,s:o}", "status", (json_int_t)u->http_status, "headers", headers);
  headers = NULL;
  if (doc == NULL)
    goto fail;
  json_t *text = NULL;
  if (u->body.len == 0)
    text = json_string("");
  else if (memchr(u->body.data, 0, u->body.len) == NULL)
    text = json_stringn((const char *)u->body.data, u->body.len);
  if (text != NULL) {
    if (json_object_set_new(doc, "body", text) != 0)
      goto fail;
  } else {
    json_t *s = b64_json(u->body.data, u->body.len);
    if (s == NULL || json_object_set_new(doc, "body_b64", s) != 0)
      goto fail;
  }
  return doc;
fail:
  json_decref(headers);
  json_decref(doc);
  return NULL;
}

/* ---- the server ----------------------------------------------------------- */

struct aln_api {
  struct aln_api_config cfg;
  struct MHD_Daemon *daemons[API_LISTENERS_MAX];
  size_t num_daemons;
  char *unix_path; /* the socket we bound, unlinked at free if still ours */
  dev_t unix_dev;
  ino_t unix_ino;
};

enum route {
  ROUTE_NONE,
  ROUTE_HEALTH,
  ROUTE_CREDENTIALS,
  ROUTE_CREDENTIAL,
  ROUTE_USE,
  ROUTE_SESSIONS,
  ROUTE_ENCLAVE,
  ROUTE_ENCLAVE_ATTEST
};
enum method { METHOD_OTHER, METHOD_GET, METHOD_POST, METHOD_DELETE };
enum auth { AUTH_NONE, AUTH_OPERATOR, AUTH_SESSION };

static const struct route_def {
  const char *label; /* for the request log: the template, never the caller's path */
  const char *allow;
  enum auth auth;
} routes[] = {
    [ROUTE_NONE] = {"-", NULL, AUTH_NONE},
    [ROUTE_HEALTH] = {"/v1/health", "GET", AUTH_NONE},
    [ROUTE_CREDENTIALS] = {"/v1/credentials", "GET, POST", AUTH_OPERATOR},
    [ROUTE_CREDENTIAL] = {"/v1/credentials/{name}", "DELETE", AUTH_OPERATOR},
    [ROUTE_USE] = {"/v1/credentials/{name}/request", "POST", AUTH_SESSION},
    [ROUTE_SESSIONS] = {"/v1/sessions", "POST", AUTH_OPERATOR},
    [ROUTE_ENCLAVE] = {"/v1/enclave", "GET", AUTH_OPERATOR},
    [ROUTE_ENCLAVE_ATTEST] = {"/v1/enclave/attest", "POST", AUTH_OPERATOR},
};

/* One HTTP request in progress. */
struct api_req {
  enum route route;
  enum method method;
  char name[ALN_NAME_MAX + 1];
  int name_ok;
  struct aln_session session;
  struct aln_cbb body;
  aln_status early;         /* refusal decided from the headers, answered after the body */
  unsigned early_http;      /* its HTTP status when not the category's (405) */
  const char *detail;       /* a constant error message for a refusal, or NULL */
  size_t drained;           /* body bytes read and dropped for a refused request */
  struct aln_api_rpc *list; /* GET /v1/credentials: the page asked for, parsed from the query */
};

static enum route route_of(struct api_req *r, const char *url) {
  static const char creds[] = "/v1/credentials/";
  if (strcmp(url, "/v1/health") == 0)
    return ROUTE_HEALTH;
  if (strcmp(url, "/v1/credentials") == 0)
    return ROUTE_CREDENTIALS;
  if (strcmp(url, "/v1/sessions") == 0)
    return ROUTE_SESSIONS;
  if (strcmp(url, "/v1/enclave") == 0)
    return ROUTE_ENCLAVE;
  if (strcmp(url, "/v1/enclave/attest") == 0)
    return ROUTE_ENCLAVE_ATTEST;
  if (strncmp(url, creds, sizeof(creds) - 1) != 0)
    return ROUTE_NONE;
  const char *name = url + sizeof(creds) - 1;
  const char *slash = strchr(name, '/');
  size_t name_len = slash == NULL ? strlen(name) : (size_t)(slash - name);
  r->name_ok = aln_cred_name_valid(name, name_len);
  if (r->name_ok) {
    memcpy(r->name, name, name_len);
    r->name[name_len] = '\0';
  }
  if (slash == NULL)
    return ROUTE_CREDENTIAL;
  return strcmp(slash, "/request") == 0 ? ROUTE_USE : ROUTE_NONE;
}

static int method_allowed(enum route route, enum method m) {
  switch (route) {
  case ROUTE_HEALTH:
    return m == METHOD_GET;
  case ROUTE_CREDENTIALS:
    return m == METHOD_GET || m == METHOD_POST;
  case ROUTE_CREDENTIAL:
    return m == METHOD_DELETE;
  case ROUTE_ENCLAVE:
    return m == METHOD_GET;
  case ROUTE_USE:
  case ROUTE_SESSIONS:
  case ROUTE_ENCLAVE_ATTEST:
    return m == METHOD_POST;
  case ROUTE_NONE:
    break;
  }
  return 0;
}

/* bearer extracts the token of an "Authorization: Bearer TOKEN" header. */
static aln_status bearer(const char **tok, size_t *tok_len, struct MHD_Connection *conn) {
  const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  ALN_ENSURE(h != NULL, ALN_ERR_AUTH_MISSING);
  ALN_ENSURE(strncasecmp(h, "Bearer ", 7) == 0, ALN_ERR_AUTH_INVALID);
  *tok = h + 7;
  *tok_len = strlen(*tok);
  return ALN_OK;
}

static aln_status authenticate(struct aln_api *api, struct api_req *r, struct MHD_Connection *conn) {
  enum auth need = routes[r->route].auth;
  if (need == AUTH_NONE)
    return ALN_OK;
  const char *tok;
  size_t tok_len;
  ALN_GUARD(bearer(&tok, &tok_len, conn));
  if (need == AUTH_OPERATOR) {
    const struct aln_secret *op = api->cfg.operator_token;
    ALN_ENSURE(aln_ct_equal((const uint8_t *)tok, tok_len, op->p, op->len), ALN_ERR_AUTH_INVALID);
    return ALN_OK;
  }
  return aln_session_verify(&r->session, api->cfg.session_key, tok, tok_len, (int64_t)time(NULL));
}

/* content_length_ok refuses a declared body past the cap before any of it is read. */
static aln_status content_length_ok(struct MHD_Connection *conn) {
  const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl == NULL)
    return ALN_OK;
  size_t n = 0;
  for (const char *p = cl; *p != '\0'; p++) {
    ALN_ENSURE(*p >= '0' && *p <= '9', ALN_ERR_USAGE);
    n = n * 10 + (size_t)(*p - '0');
    ALN_ENSURE(n <= ALN_API_BODY_MAX, ALN_ERR_TOO_LARGE);
  }
  return ALN_OK;
}

static enum MHD_Result answer(struct aln_api *api, struct MHD_Connection *conn, struct api_req *r, aln_status st,
                              unsigned http, json_t *doc) {
  const char *allow = NULL;
  if (st != ALN_OK) {
    json_decref(doc);
    doc = error_doc(st, r->detail);
    if (http != MHD_HTTP_METHOD_NOT_ALLOWED)
      http = (unsigned)aln_status_http(st);
    else
      allow = routes[r->route].allow;
  }
  if (api->cfg.log_requests) {
    static const char *const mnames[] = {"?", "GET", "POST", "DELETE"};
    fprintf(stderr, "aileron: %s %s -> %u %s\n", mnames[r->method], routes[r->route].label, http, aln_status_name(st));
  }
  return answer_json(conn, http, doc, allow);
}

/* forward sends |rpc| and returns the response only when it carries |want|. */
static aln_status forward(struct aln_api *api, Aileron__V1__Response **out, struct aln_api_rpc *rpc,
                          Aileron__V1__Response__BodyCase want) {
  Aileron__V1__Response *resp = NULL;
  aln_status st = api->cfg.forward(api->cfg.forward_ctx, &resp, aln_api_rpc_request(rpc));
  if (st == ALN_OK && (resp == NULL || resp->body_case != want))
    st = ALN_ERR_MALFORMED;
  if (st == ALN_OK && resp->status != 0)
    st = (aln_status)resp->status;
  /* Only table codes travel on: their names and messages are ours, never the
   * peer's text. */
  if (!aln_status_is_known((uint32_t)st))
    st = ALN_ERR_MALFORMED;
  if (st != ALN_OK) {
    if (resp != NULL)
      aln_channel_response_free(resp);
    return st;
  }
  *out = resp;
  return ALN_OK;
}

static aln_status do_health(struct aln_api *api, json_t **doc) {
  struct aln_api_rpc *rpc = NULL;
  Aileron__V1__Response *resp = NULL;
  aln_status st = rpc_health(&rpc);
  if (st == ALN_OK)
    st = forward(api, &resp, rpc, AILERON__V1__RESPONSE__BODY_HEALTH);
  json_t *enclave;
  if (st == ALN_OK && resp->health != NULL)
    enclave = json_pack("{s:b,s:s?,s:b,s:b}", "reachable", 1, "tee_provider", resp->health->tee_provider, "attested",
                        (int)resp->health->attested, "enrolled", (int)resp->health->enrolled);
  else
    enclave = json_pack("{s:b,s:s}", "reachable", 0, "error", aln_status_name(st == ALN_OK ? ALN_ERR_MALFORMED : st));
  *doc = json_pack("{s:s,s:o}", "status", "ok", "enclave", enclave);
  if (resp != NULL)
    aln_channel_response_free(resp);
  aln_api_rpc_free(rpc);
  return *doc != NULL ? ALN_OK : ALN_ERR_NOMEM;
}

/* do_list forwards the one page asked for in |rpc| and answers it with where the
 * next one starts. The enclave's page is checked before it is shown: no more
 * entries than asked, and a next_page_after that is a name, since it goes back
 * into a client's URL. */
static aln_status do_list(struct aln_api *api, json_t **doc, struct aln_api_rpc *rpc) {
  aln_status st = ALN_ERR_INTERNAL;
  Aileron__V1__Response *resp = NULL;
  json_t *list = NULL;
  ALN_ENSURE(rpc != NULL, ALN_ERR_INTERNAL);
  ALN_GUARD_GOTO(st, forward(api, &resp, rpc, AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS), out);
  const Aileron__V1__ListCredentialsResponse *lr = resp->list_credentials;
  ALN_ENSURE_GOTO(st, lr != NULL && lr->n_credentials <= rpc->list.page_size, ALN_ERR_MALFORMED, out);
  const char *next = lr->next_page_after != NULL ? lr->next_page_after : "";
  ALN_ENSURE_GOTO(st, next[0] == '\0' || aln_cred_name_valid(next, strlen(next)), ALN_ERR_MALFORMED, out);
  list = json_array();
  ALN_ENSURE_GOTO(st, list != NULL, ALN_ERR_NOMEM, out);
  for (size_t i = 0; i < lr->n_credentials; i++) {
    json_t *info = info_json(lr->credentials[i]);
    ALN_ENSURE_GOTO(st, info != NULL, ALN_ERR_MALFORMED, out);
    ALN_ENSURE_GOTO(st, json_array_append_new(list, info) == 0, ALN_ERR_NOMEM, out);
  }
  /* next_after is left out on the last page. */
  *doc = next[0] != '\0' ? json_pack("{s:o,s:s}", "credentials", list, "next_after", next)
                         : json_pack("{s:o}", "credentials", list);
  list = NULL;
  st = *doc != NULL ? ALN_OK : ALN_ERR_NOMEM;
out:
  json_decref(list);
  if (resp != NULL)
    aln_channel_response_free(resp);
  return st;
}

static aln_status do_put(struct aln_api *api, json_t **doc, const uint8_t *body, size_t len) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_api_rpc *rpc = NULL;
  Aileron__V1__Response *resp = NULL;
  ALN_GUARD_GOTO(st, aln_api_parse_put(&rpc, body, len), out);
  ALN_GUARD_GOTO(st, forward(api, &resp, rpc, AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL), out);
  ALN_ENSURE_GOTO(st, resp->put_credential != NULL, ALN_ERR_MALFORMED, out);
  *doc = info_json(resp->put_credential->credential);
  st = *doc != NULL ? ALN_OK : ALN_ERR_MALFORMED;
out:
  if (resp != NULL)
    aln_channel_response_free(resp);
  aln_api_rpc_free(rpc);
  return st;
}

static aln_status do_revoke(struct aln_api *api, json_t **doc, const char *name) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_api_rpc *rpc = NULL;
  Aileron__V1__Response *resp = NULL;
  ALN_GUARD_GOTO(st, rpc_revoke(&rpc, name), out);
  ALN_GUARD_GOTO(st, forward(api, &resp, rpc, AILERON__V1__RESPONSE__BODY_REVOKE_CREDENTIAL), out);
  ALN_ENSURE_GOTO(st, resp->revoke_credential != NULL, ALN_ERR_MALFORMED, out);
  *doc = info_json(resp->revoke_credential->credential);
  st = *doc != NULL ? ALN_OK : ALN_ERR_MALFORMED;
out:
  if (resp != NULL)
    aln_channel_response_free(resp);
  aln_api_rpc_free(rpc);
  return st;
}

static aln_status do_session(struct aln_api *api, json_t **doc, const uint8_t *body, size_t len) {
  int64_t ttl;
  ALN_GUARD(aln_api_parse_session(&ttl, body, len));
  char token[ALN_SESSION_TOKEN_MAX];
  struct aln_session s;
  aln_status st = aln_session_issue(token, sizeof(token), &s, api->cfg.session_key, (int64_t)time(NULL), ttl);
  if (st == ALN_OK) {
    *doc = json_pack("{s:s,s:s,s:I}", "token", token, "session_id", s.id, "expires_at", (json_int_t)s.expires_at);
    st = *doc != NULL ? ALN_OK : ALN_ERR_NOMEM;
  }
  aln_wipe(token, sizeof(token));
  return st;
}

static aln_status do_use(struct aln_api *api, json_t **doc, struct api_req *r, const uint8_t *body, size_t len) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_api_rpc *rpc = NULL;
  Aileron__V1__Response *resp = NULL;
  char actor[sizeof("session:") + sizeof(r->session.id)];
  snprintf(actor, sizeof(actor), "session:%s", r->session.id);
  ALN_GUARD_GOTO(st, aln_api_parse_use(&rpc, r->name, actor, body, len), out);
  ALN_GUARD_GOTO(st, forward(api, &resp, rpc, AILERON__V1__RESPONSE__BODY_USE_CREDENTIAL), out);
  ALN_ENSURE_GOTO(st, resp->use_credential != NULL, ALN_ERR_MALFORMED, out);
  *doc = use_json(resp->use_credential);
  st = *doc != NULL ? ALN_OK : ALN_ERR_NOMEM;
out:
  if (resp != NULL)
    aln_channel_response_free(resp);
  aln_api_rpc_free(rpc);
  return st;
}

/* Query arguments as MHD split them, up to one more than any call takes. */
struct query_args {
  struct aln_api_query_arg args[ALN_API_QUERY_ARGS_MAX + 1];
  size_t num;
};

static enum MHD_Result query_collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  struct query_args *q = cls;
  if (q->num == sizeof(q->args) / sizeof(q->args[0]))
    return MHD_NO; /* enough to know there are too many */
  q->args[q->num++] = (struct aln_api_query_arg){.key = key, .value = value};
  return MHD_YES;
}

/* parse_query checks the query against the route, as strictly as a JSON body: only
 * the list takes arguments; it keeps the parsed page in |r|. */
static aln_status parse_query(struct api_req *r, struct MHD_Connection *conn) {
  struct query_args q = {.num = 0};
  (void)MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_collect, &q);
  if (r->route == ROUTE_CREDENTIALS && r->method == METHOD_GET)
    return aln_api_parse_list(&r->list, &r->detail, q.args, q.num);
  if (q.num != 0)
    return refuse(&r->detail, "this call takes no query parameters", ALN_ERR_USAGE);
  return ALN_OK;
}

/* api_begin decides everything the headers allow: route, method, credentials,
 * declared size. It answers at once on failure, so no body is read. */
static enum MHD_Result api_begin(struct aln_api *api, struct MHD_Connection *conn, struct api_req *r, const char *url,
                                 const char *method) {
  r->method = strcmp(method, "GET") == 0      ? METHOD_GET
              : strcmp(method, "POST") == 0   ? METHOD_POST
              : strcmp(method, "DELETE") == 0 ? METHOD_DELETE
                                              : METHOD_OTHER;
  r->route = route_of(r, url);
  aln_status st = ALN_OK;
  unsigned http = 0;
  if (r->route == ROUTE_NONE) {
    st = ALN_ERR_NOT_FOUND;
  } else if (!method_allowed(r->route, r->method)) {
    st = ALN_ERR_USAGE;
    http = MHD_HTTP_METHOD_NOT_ALLOWED;
  } else {
    st = authenticate(api, r, conn);
    if (st == ALN_OK && (r->route == ROUTE_CREDENTIAL || r->route == ROUTE_USE) && !r->name_ok)
      st = ALN_ERR_BAD_NAME;
    if (st == ALN_OK)
      st = parse_query(r, conn);
  }
  aln_status size_st = content_length_ok(conn);
  if (st == ALN_OK)
    st = size_st;
  if (st == ALN_OK)
    st = aln_cbb_init(&r->body, 0, ALN_API_BODY_MAX);
  if (st == ALN_OK)
    return MHD_YES;
  /* Refused from the headers alone, so no body is kept. A body within the cap is
   * read and dropped before answering, so a client still writing it reads the
   * answer instead of a reset; a body declared past the cap is answered now. */
  if (size_st != ALN_OK)
    return answer(api, conn, r, st, http, NULL);
  r->early = st;
  r->early_http = http;
  return MHD_YES;
}

static enum MHD_Result api_finish(struct aln_api *api, struct MHD_Connection *conn, struct api_req *r) {
  const uint8_t *body = r->body.buf;
  size_t len = r->body.len;
  json_t *doc = NULL;
  aln_status st = ALN_ERR_INTERNAL;
  unsigned http = MHD_HTTP_OK;
  if (r->method != METHOD_POST && len != 0) {
    st = ALN_ERR_USAGE; /* GET and DELETE take no body */
  } else if (r->route == ROUTE_HEALTH) {
    st = do_health(api, &doc);
  } else if (r->route == ROUTE_CREDENTIALS && r->method == METHOD_GET) {
    st = do_list(api, &doc, r->list);
  } else if (r->route == ROUTE_CREDENTIALS) {
    st = do_put(api, &doc, body, len);
    http = MHD_HTTP_CREATED;
  } else if (r->route == ROUTE_CREDENTIAL) {
    st = do_revoke(api, &doc, r->name);
  } else if (r->route == ROUTE_SESSIONS) {
    st = do_session(api, &doc, body, len);
    http = MHD_HTTP_CREATED;
  } else if (r->route == ROUTE_USE) {
    st = do_use(api, &doc, r, body, len);
  } else if (r->route == ROUTE_ENCLAVE || r->route == ROUTE_ENCLAVE_ATTEST) {
    aln_api_enclave_fn fn = r->route == ROUTE_ENCLAVE ? api->cfg.enclave_status : api->cfg.enclave_attest;
    /* Nothing to read in a body here: one sent is a client mistake. */
    st = len != 0 ? ALN_ERR_USAGE : fn != NULL ? fn(api->cfg.enclave_ctx, &doc) : ALN_ERR_NOT_FOUND;
  }
  return answer(api, conn, r, st, http, doc);
}

static enum MHD_Result api_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)version;
  struct aln_api *api = cls;
  struct api_req *r = *con_cls;
  if (r == NULL) {
    r = calloc(1, sizeof(*r));
    if (r == NULL)
      return MHD_NO;
    *con_cls = r;
    return api_begin(api, conn, r, url, method);
  }
  if (*upload_data_size > 0) {
    /* Past the cap with no Content-Length announcing it (chunked): close the
     * connection rather than read on. */
    if (r->early != ALN_OK) {
      r->drained += *upload_data_size;
      if (r->drained > ALN_API_BODY_MAX)
        return MHD_NO;
    } else if (aln_cbb_add_bytes(&r->body, (const uint8_t *)upload_data, *upload_data_size) != ALN_OK) {
      return MHD_NO;
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (r->early != ALN_OK)
    return answer(api, conn, r, r->early, r->early_http, NULL);
  return api_finish(api, conn, r);
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  struct api_req *r = *con_cls;
  if (r == NULL)
    return;
  aln_cbb_cleanup(&r->body); /* wipes: the body may hold a secret */
  aln_api_rpc_free(r->list);
  aln_wipe(r, sizeof(*r));
  free(r);
  *con_cls = NULL;
}

/* MHD would percent-decode the path before routing, turning "a%2Fb" into a
 * separator and "%00" into an early end. Names never need escaping, so the path is
 * routed exactly as sent and any '%' fails name validation. */
static size_t api_no_unescape(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls;
  (void)conn;
  return strlen(s);
}

/* api_serve starts one MHD daemon on the listening socket |fd| (owned from here). */
static aln_status api_serve(struct aln_api *api, int fd) {
  if (api->num_daemons == API_LISTENERS_MAX) {
    close(fd);
    return ALN_ERR_USAGE;
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO;
  if (api->cfg.log_requests)
    flags |= MHD_USE_ERROR_LOG;
  struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, api_handle, api, MHD_OPTION_LISTEN_SOCKET, fd,
                                          MHD_OPTION_NOTIFY_COMPLETED, api_completed, api, MHD_OPTION_UNESCAPE_CALLBACK,
                                          api_no_unescape, api, MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONN_LIMIT,
                                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S, MHD_OPTION_END);
  if (d == NULL) {
    close(fd);
    return ALN_ERR_IO;
  }
  api->daemons[api->num_daemons++] = d;
  return ALN_OK;
}

aln_status aln_api_new(struct aln_api **out, const struct aln_api_config *cfg) {
  ALN_ENSURE(out != NULL && cfg != NULL && cfg->forward != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(cfg->operator_token != NULL && cfg->operator_token->p != NULL &&
                 cfg->operator_token->len == ALN_API_OPERATOR_TOKEN_LEN,
             ALN_ERR_USAGE);
  ALN_ENSURE(cfg->session_key != NULL && cfg->session_key->p != NULL && cfg->session_key->len == ALN_SESSION_KEY_LEN,
             ALN_ERR_USAGE);
  aln_api_json_init();
  struct aln_api *api = calloc(1, sizeof(*api));
  ALN_ENSURE(api != NULL, ALN_ERR_NOMEM);
  api->cfg = *cfg;
  *out = api;
  return ALN_OK;
}

/* unix_stale_remove clears |path| for bind: absent is fine, a socket nobody
 * answers on is removed, anything else is left alone and refused. */
static aln_status unix_stale_remove(const char *path, const struct sockaddr_un *sa) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? ALN_OK : ALN_ERR_IO;
  ALN_ENSURE(S_ISSOCK(st.st_mode), ALN_ERR_EXISTS);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ALN_ENSURE(fd >= 0, ALN_ERR_IO);
  int live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
  int refused = !live && errno == ECONNREFUSED;
  close(fd);
  ALN_ENSURE(!live, ALN_ERR_EXISTS);
  ALN_ENSURE(refused, ALN_ERR_IO);
  ALN_ENSURE(unlink(path) == 0 || errno == ENOENT, ALN_ERR_IO);
  return ALN_OK;
}

aln_status aln_api_listen_unix(struct aln_api *api, const char *path) {
  aln_status st = ALN_ERR_IO;
  int fd = -1;
  ALN_ENSURE(api != NULL && path != NULL && api->unix_path == NULL, ALN_ERR_USAGE);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  ALN_ENSURE(strlen(path) > 0 && strlen(path) < sizeof(sa.sun_path), ALN_ERR_USAGE);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  ALN_GUARD(unix_stale_remove(path, &sa));

  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ALN_ENSURE_GOTO(st, fd >= 0, ALN_ERR_IO, out);
  /* umask makes the socket private from its creation; chmod states it. */
  mode_t old = umask(077);
  int rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
  umask(old);
  ALN_ENSURE_GOTO(st, rc == 0, ALN_ERR_IO, out);
  struct stat sst;
  ALN_ENSURE_GOTO(st, chmod(path, 0600) == 0 && lstat(path, &sst) == 0 && listen(fd, 64) == 0, ALN_ERR_IO, out);
  api->unix_path = strdup(path);
  ALN_ENSURE_GOTO(st, api->unix_path != NULL, ALN_ERR_NOMEM, out);
  api->unix_dev = sst.st_dev;
  api->unix_ino = sst.st_ino;
  st = api_serve(api, fd);
  fd = -1;
out:
  if (fd >= 0) {
    close(fd);
    unlink(path);
  }
  return st;
}

static int sockaddr_is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
  if (ss->ss_family == AF_INET6)
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
  return 0;
}

aln_status aln_api_listen_tcp(struct aln_api *api, uint16_t *out_port, const char *addr) {
  ALN_ENSURE(api != NULL && addr != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(aln_net_is_loopback_addr(addr), ALN_ERR_USAGE);
  int fd = -1, port = 0;
  ALN_GUARD(aln_net_listen(&fd, &port, addr));
  /* Check what was bound, not what was asked: a name could resolve elsewhere. */
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 || !sockaddr_is_loopback(&ss)) {
    close(fd);
    return ALN_ERR_USAGE;
  }
  ALN_GUARD(api_serve(api, fd));
  if (out_port != NULL)
    *out_port = (uint16_t)port;
  return ALN_OK;
}

void aln_api_free(struct aln_api *api) {
  if (api == NULL)
    return;
  for (size_t i = 0; i < api->num_daemons; i++)
    MHD_stop_daemon(api->daemons[i]);
  if (api->unix_path != NULL) {
    /* Only remove the socket if it is still the one we bound: another daemon
     * may have taken the path over. */
    struct stat st;
    if (lstat(api->unix_path, &st) == 0 && st.st_dev == api->unix_dev && st.st_ino == api->unix_ino)
      unlink(api->unix_path);
    free(api->unix_path);
  }
  free(api);
}
