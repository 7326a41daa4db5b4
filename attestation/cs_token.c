/* The Confidential Space producer: asks the launcher's TEE server for a custom
 * attestation token bound to a nonce. The server (go-tpm-tools launcher/teeserver)
 * listens on a unix socket inside the workload's container, takes
 * POST /v1/token {"audience", "nonces", "token_type"} (unknown fields refused) and
 * answers 200 with the raw token, anything else with an error text. The token is
 * public evidence, not a secret: nothing here needs wiping. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/cs.h"
#include "proto/keyfile.h"

#define TOKEN_URL "http://localhost/v1/token"
#define TIMEOUT_S 30L /* the launcher calls Google Cloud Attestation before it answers */

struct body {
  uint8_t *p;
  size_t len;
  bool too_large;
};

/* collect appends to the body up to ALN_JWT_MAX; past that it stops the transfer
 * rather than buffer whatever the peer keeps sending. */
static size_t collect(char *data, size_t size, size_t nmemb, void *ud) {
  struct body *b = ud;
  size_t n = size * nmemb;
  if (n > ALN_JWT_MAX - b->len) {
    b->too_large = true;
    return 0;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  return n;
}

/* looks_like_jws: three non-empty base64url segments, the only shape a token can
 * have; anything else (an HTML error page with status 200) is not evidence. */
static bool looks_like_jws(const uint8_t *p, size_t len) {
  size_t dots = 0, seg = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = p[i];
    if (c == '.') {
      if (seg == 0)
        return false;
      dots++;
      seg = 0;
    } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
      seg++;
    } else {
      return false;
    }
  }
  return dots == 2 && seg > 0;
}

/* request_body renders the JSON the TEE server expects, or NULL. */
static char *request_body(const char *audience, const uint8_t *nonce, size_t nonce_len, const char *token_type) {
  char hex[2 * ALN_CS_NONCE_MAX + 1];
  if (aln_hex_encode(hex, sizeof(hex), nonce, nonce_len) != ALN_OK)
    return NULL;
  json_t *req = json_pack("{s:s, s:[s], s:s}", "audience", audience, "nonces", hex, "token_type", token_type);
  char *s = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  return s;
}

aln_status aln_cs_token_request(uint8_t **out, size_t *out_len, const char *socket_path, const char *audience,
                                const uint8_t *nonce, size_t nonce_len, const char *token_type) {
  ALN_ENSURE(out != NULL && out_len != NULL && audience != NULL && nonce != NULL && token_type != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(audience[0] != '\0' && strlen(audience) <= ALN_CS_AUDIENCE_MAX, ALN_ERR_USAGE);
  ALN_ENSURE(nonce_len >= ALN_CS_NONCE_MIN && nonce_len <= ALN_CS_NONCE_MAX, ALN_ERR_USAGE);
  ALN_ENSURE(strcmp(token_type, "PKI") == 0 || strcmp(token_type, "OIDC") == 0, ALN_ERR_USAGE);
  if (socket_path == NULL)
    socket_path = ALN_CS_TEE_SOCKET;

  aln_status st = ALN_ERR_NOMEM;
  struct body resp = {.p = malloc(ALN_JWT_MAX + 1)};
  char *req = request_body(audience, nonce, nonce_len, token_type);
  struct curl_slist *headers = NULL, *h;
  CURL *curl = curl_easy_init();
  long http = 0;
  if (resp.p == NULL || req == NULL || curl == NULL)
    goto out;
  h = curl_slist_append(headers, "Content-Type: application/json");
  ALN_ENSURE_GOTO(st, h != NULL, ALN_ERR_NOMEM, out);
  headers = h;
  h = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip on a local socket */
  ALN_ENSURE_GOTO(st, h != NULL, ALN_ERR_NOMEM, out);
  headers = h;
  if (curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_URL, TOKEN_URL) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http") != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_PROXY, "") != CURLE_OK || /* ignore *_proxy from the environment */
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req)) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_TIMEOUT, TIMEOUT_S) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK) {
    st = ALN_ERR_INTERNAL;
    goto out;
  }
  CURLcode cc = curl_easy_perform(curl);
  ALN_ENSURE_GOTO(st, !resp.too_large, ALN_ERR_UPSTREAM_TOO_LARGE, out);
  ALN_ENSURE_GOTO(st, cc == CURLE_OK, ALN_ERR_IO, out);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http);
  ALN_ENSURE_GOTO(st, http == 200, ALN_ERR_UPSTREAM, out);
  ALN_ENSURE_GOTO(st, looks_like_jws(resp.p, resp.len), ALN_ERR_ATTEST_MALFORMED, out);
  resp.p[resp.len] = '\0';
  *out = resp.p;
  *out_len = resp.len;
  resp.p = NULL;
  st = ALN_OK;
out:
  if (curl != NULL)
    curl_easy_cleanup(curl);
  curl_slist_free_all(headers);
  free(req);
  free(resp.p);
  return st;
}
