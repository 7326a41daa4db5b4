/* fuzz-links: aln_host
 * The HTTP API's request parsers without a server. The first input byte picks
 * the parser (0: PutCredential, 1: UseCredential, 2: session, 3: the list's
 * query, split at '&' and '=' as the HTTP server splits it), the rest is the
 * request body or query. Properties: failures leave no request behind and use
 * only caller-error codes; a request that parses satisfies the validation rules
 * and packs to protobuf bytes that unpack to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host/api.h"
#include "host/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_failure(aln_status st) {
  if (aln_status_category(st) != ALN_CAT_USAGE && st != ALN_ERR_NOMEM)
    abort();
}

static int https(const char *s) {
  return s != NULL && strncasecmp(s, "https://", 8) == 0 && strlen(s) <= ALN_API_URL_MAX;
}

/* round_trip packs |req| and unpacks it again: what the enclave would receive. */
static Aileron__V1__Request *round_trip(const Aileron__V1__Request *req) {
  size_t n = aileron__v1__request__get_packed_size(req);
  uint8_t *buf = malloc(n + 1);
  if (buf == NULL)
    abort();
  if (aileron__v1__request__pack(req, buf) != n)
    abort();
  Aileron__V1__Request *back = aileron__v1__request__unpack(NULL, n, buf);
  free(buf);
  if (back == NULL || back->version != AILERON__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1)
    abort();
  return back;
}

static void check_put(const Aileron__V1__Request *req) {
  const Aileron__V1__PutCredentialRequest *p = req->put_credential;
  if (req->body_case != AILERON__V1__REQUEST__BODY_PUT_CREDENTIAL || p == NULL || p->binding == NULL)
    abort();
  if (!aln_cred_name_valid(p->name, strlen(p->name)) || p->secret.len == 0 || p->expires_at < 0)
    abort();
  if (p->kind != AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET)
    abort();
  const Aileron__V1__Binding *b = p->binding;
  if (b->n_allowed_prefixes < 1 || b->n_allowed_prefixes > ALN_API_ALLOW_MAX)
    abort();
  for (size_t i = 0; i < b->n_allowed_prefixes; i++)
    if (!https(b->allowed_prefixes[i]))
      abort();
  if (b->injection == AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER) {
    if (b->header_name == NULL || b->header_name[0] == '\0' || strpbrk(b->header_name, " \r\n:") != NULL)
      abort();
  } else if (b->injection != AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER) {
    abort();
  }
}

static void check_use(const Aileron__V1__Request *req) {
  const Aileron__V1__UseCredentialRequest *u = req->use_credential;
  if (req->body_case != AILERON__V1__REQUEST__BODY_USE_CREDENTIAL || u == NULL)
    abort();
  if (strcmp(u->name, "fuzz") != 0 || strcmp(u->actor, "session:fuzz") != 0 || !https(u->url))
    abort();
  if (u->n_headers > ALN_API_HEADERS_MAX)
    abort();
  for (size_t i = 0; i < u->n_headers; i++) {
    const Aileron__V1__Header *h = u->headers[i];
    if (strcasecmp(h->name, "authorization") == 0 || strcasecmp(h->name, "host") == 0 ||
        strpbrk(h->value, "\r\n") != NULL || strpbrk(h->name, " :\r\n") != NULL)
      abort();
  }
}

static void check_list(const Aileron__V1__Request *req) {
  const Aileron__V1__ListCredentialsRequest *l = req->list_credentials;
  if (req->body_case != AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS || l == NULL || l->page_after == NULL)
    abort();
  if (l->page_size < 1 || l->page_size > ALN_API_LIST_MAX)
    abort();
  if (l->page_after[0] != '\0' && !aln_cred_name_valid(l->page_after, strlen(l->page_after)))
    abort();
}

/* fuzz_list splits |query| into arguments (up to one more than the parser looks
 * at, as the server collects them) and parses them. */
static void fuzz_list(const uint8_t *query, size_t len) {
  char *copy = malloc(len + 1);
  if (copy == NULL)
    abort();
  memcpy(copy, query, len);
  copy[len] = '\0';
  struct aln_api_query_arg args[ALN_API_QUERY_ARGS_MAX + 1];
  size_t n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(copy, "&", &save); tok != NULL && n < ALN_API_QUERY_ARGS_MAX + 1;
       tok = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(tok, '=');
    if (eq != NULL)
      *eq = '\0';
    args[n++] = (struct aln_api_query_arg){.key = tok, .value = eq != NULL ? eq + 1 : NULL};
  }
  struct aln_api_rpc *rpc = NULL;
  const char *detail = NULL;
  aln_status st = aln_api_parse_list(&rpc, &detail, args, n);
  if (st != ALN_OK) {
    check_failure(st);
    if (rpc != NULL || detail == NULL)
      abort();
  } else {
    if (detail != NULL)
      abort();
    check_list(aln_api_rpc_request(rpc));
    Aileron__V1__Request *back = round_trip(aln_api_rpc_request(rpc));
    check_list(back);
    aileron__v1__request__free_unpacked(back, NULL);
  }
  aln_api_rpc_free(rpc);
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  aln_api_json_init();
  if (size < 1)
    return 0;
  const uint8_t *body = data + 1;
  size_t len = size - 1;
  struct aln_api_rpc *rpc = NULL;
  aln_status st;
  if (data[0] % 4 == 3) {
    fuzz_list(body, len);
    return 0;
  }
  switch (data[0] % 4) {
  case 0:
    st = aln_api_parse_put(&rpc, body, len);
    break;
  case 1:
    st = aln_api_parse_use(&rpc, "fuzz", "session:fuzz", body, len);
    break;
  default: {
    int64_t ttl = -1;
    st = aln_api_parse_session(&ttl, body, len);
    if (st == ALN_OK ? (ttl < 1 || ttl > ALN_SESSION_TTL_MAX) : ttl != -1)
      abort();
    if (st != ALN_OK)
      check_failure(st);
    return 0;
  }
  }
  if (st != ALN_OK) {
    check_failure(st);
    if (rpc != NULL)
      abort();
    return 0;
  }
  Aileron__V1__Request *back = round_trip(aln_api_rpc_request(rpc));
  if (data[0] % 4 == 0) {
    check_put(aln_api_rpc_request(rpc));
    check_put(back);
    const Aileron__V1__PutCredentialRequest *a = aln_api_rpc_request(rpc)->put_credential, *b = back->put_credential;
    if (a->secret.len != b->secret.len || memcmp(a->secret.data, b->secret.data, a->secret.len) != 0)
      abort();
  } else {
    check_use(aln_api_rpc_request(rpc));
    check_use(back);
  }
  aileron__v1__request__free_unpacked(back, NULL);
  aln_api_rpc_free(rpc);
  return 0;
}
