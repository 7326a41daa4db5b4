/* The host's HTTP API (libmicrohttpd + jansson). Operator calls authenticate with
 * the operator token, agent calls with a session token; each call is validated here
 * and forwarded to the enclave as one aileron.v1.Request through |forward|, so tests
 * can put a double where the daemon puts the attested enclave client. The JSON
 * request parsers are public so that a fuzz target can drive them without a server.
 *
 * Routes (every error answer is {"error":{"code":NAME,"message":TEXT}}):
 *   GET    /v1/health                      no auth        -> Health
 *   GET    /v1/credentials?after=&limit=   operator token -> ListCredentials (one page)
 *   POST   /v1/credentials                 operator token -> PutCredential
 *   DELETE /v1/credentials/{name}          operator token -> RevokeCredential
 *   POST   /v1/sessions                    operator token -> (local) new session
 *   POST   /v1/credentials/{name}/request  session token  -> UseCredential
 * Query parameters are refused on every route but the list, and there any but
 * after and limit (each at most once). */
#ifndef ALN_HOST_API_H
#define ALN_HOST_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "aileron/v1/enclave.pb-c.h"
#include "proto/http.h"
#include "proto/names.h"
#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_API_BODY_MAX ((size_t)1 << 20) /* request bodies, checked before buffering */
#define ALN_API_URL_MAX 8192
#define ALN_API_ALLOW_MAX 32   /* allowed URL prefixes per credential */
#define ALN_API_HEADERS_MAX 64 /* extra headers per request */
#define ALN_API_HEADER_NAME_MAX ALN_HTTP_NAME_MAX
#define ALN_API_HEADER_VALUE_MAX 8192
#define ALN_API_CA_PEM_MAX (64 * 1024)
#define ALN_API_SESSION_TTL_DEFAULT 3600
#define ALN_API_OPERATOR_TOKEN_LEN 64 /* hex of 32 random bytes */
#define ALN_API_LIST_DEFAULT 100      /* credentials per page when limit is not given */
#define ALN_API_LIST_MAX 1000         /* the enclave's largest page (ListCredentialsRequest.page_size) */
#define ALN_API_QUERY_ARGS_MAX 8      /* query arguments looked at; more are refused */

/* aln_api_forward_fn sends |req| to the enclave; same contract as
 * aln_enclave_client_call: ALN_OK with *out set on success, the enclave's status
 * (with *out possibly set) on an enclave error, a local status with *out NULL when
 * no answer came. The API frees *out with aileron__v1__response__free_unpacked. It
 * is called concurrently from connection threads. */
typedef aln_status (*aln_api_forward_fn)(void *ctx, Aileron__V1__Response **out, Aileron__V1__Request *req);

/* Answers about the enclave itself (its appraised claims, or fresh evidence), as a
 * new JSON object in *out. */
typedef aln_status (*aln_api_enclave_fn)(void *ctx, json_t **out);

struct aln_api_config {
  const struct aln_secret *operator_token; /* ALN_API_OPERATOR_TOKEN_LEN bytes; borrowed, outlives the api */
  const struct aln_secret *session_key;    /* ALN_SESSION_KEY_LEN bytes; borrowed, outlives the api */
  aln_api_forward_fn forward;
  void *forward_ctx;
  aln_api_enclave_fn enclave_status; /* GET /v1/enclave (may be NULL: 404) */
  aln_api_enclave_fn enclave_attest; /* POST /v1/enclave/attest (may be NULL: 404) */
  void *enclave_ctx;
  int log_requests; /* one line per request on stderr: method, route, HTTP status, status name */
};

struct aln_api;

/* aln_api_json_init installs jansson allocators that wipe every block they free
 * (jansson copies request strings, secrets included, through internal buffers).
 * Idempotent and thread-safe; must run before any other jansson call of the
 * process, so every entry point (daemon, CLI, tests, fuzzers) calls it first.
 * aln_api_new and the parsers call it too. */
void aln_api_json_init(void);

/* aln_api_new makes an API server with no listener yet; |cfg| is copied, the
 * secrets it points to are borrowed. Free with aln_api_free. */
aln_status aln_api_new(struct aln_api **out, const struct aln_api_config *cfg) ALN_WUR;

/* aln_api_listen_unix serves the API on a new unix socket at |path|: a stale socket
 * file is removed, a live one (a daemon answers) or a non-socket file gives
 * ALN_ERR_EXISTS; the socket is created under umask 077 and chmod 0600. The file
 * is unlinked by aln_api_free if it is still ours. */
aln_status aln_api_listen_unix(struct aln_api *api, const char *path) ALN_WUR;

/* aln_api_listen_tcp serves the API on |addr|, "IPV4:PORT" or "[IPV6]:PORT" with a
 * numeric loopback address (127.0.0.0/8 or ::1; anything else is ALN_ERR_USAGE).
 * Port 0 picks a free port; the bound port is stored in *out_port (may be NULL). */
aln_status aln_api_listen_tcp(struct aln_api *api, uint16_t *out_port, const char *addr) ALN_WUR;

/* aln_api_free stops every listener (waiting for running requests), unlinks the
 * unix socket it created and frees |api|. NULL is a no-op. */
void aln_api_free(struct aln_api *api);

/* A parsed request, ready to forward: the protobuf Request and the memory its
 * fields point into (the decoded secret lives in locked memory). */
struct aln_api_rpc;

/* aln_api_parse_put parses a POST /v1/credentials body (|len| bytes, at most
 * ALN_API_BODY_MAX) into a PutCredential request in *out. Errors: ALN_ERR_TOO_LARGE,
 * ALN_ERR_BAD_JSON (syntax, duplicate or unknown keys, wrong types, bad base64),
 * ALN_ERR_BAD_NAME, ALN_ERR_BAD_INJECTION, ALN_ERR_BAD_URL, ALN_ERR_USAGE (empty
 * secret, no allowed prefix, negative expiry, a "kind" other than "secret"). Free with aln_api_rpc_free. */
aln_status aln_api_parse_put(struct aln_api_rpc **out, const uint8_t *body, size_t len) ALN_WUR;

/* One query argument as the HTTP server split it: |value| is NULL when the
 * argument had no '='. Neither is percent-decoded (names never need it). */
struct aln_api_query_arg {
  const char *key;
  const char *value;
};

/* aln_api_parse_list parses the |num_args| query arguments of GET /v1/credentials
 * into a ListCredentials request for one page in *out: "after" (a credential
 * name: the page starts after it; empty or absent: from the first) and "limit"
 * (a decimal number, 1..ALN_API_LIST_MAX; absent: ALN_API_LIST_DEFAULT; 0 is
 * refused, since "zero credentials" is not a page), each at most once. Errors:
 * ALN_ERR_USAGE (unknown, repeated or valueless argument, bad limit),
 * ALN_ERR_BAD_NAME (after). *out_detail (may be NULL) receives a constant message
 * saying what was wrong, or NULL. Free with aln_api_rpc_free. */
aln_status aln_api_parse_list(struct aln_api_rpc **out, const char **out_detail, const struct aln_api_query_arg *args,
                              size_t num_args) ALN_WUR;

/* aln_api_parse_use parses a POST /v1/credentials/{name}/request body into a
 * UseCredential request for credential |name| on behalf of |actor| (both copied).
 * Errors as aln_api_parse_put; ALN_ERR_USAGE for an unknown method or a refused
 * header (Authorization, Host, framing headers). Free with aln_api_rpc_free. */
aln_status aln_api_parse_use(struct aln_api_rpc **out, const char *name, const char *actor, const uint8_t *body,
                             size_t len) ALN_WUR;

/* aln_api_parse_session parses a POST /v1/sessions body into *out_ttl (default
 * ALN_API_SESSION_TTL_DEFAULT). ALN_ERR_USAGE if ttl_seconds is outside
 * 1..ALN_SESSION_TTL_MAX, ALN_ERR_BAD_JSON / ALN_ERR_TOO_LARGE as above. */
aln_status aln_api_parse_session(int64_t *out_ttl, const uint8_t *body, size_t len) ALN_WUR;

/* aln_api_rpc_request returns the Request held by |rpc| (owned by |rpc|). */
Aileron__V1__Request *aln_api_rpc_request(struct aln_api_rpc *rpc);

/* aln_api_rpc_free wipes the secret and the JSON it came from and frees |rpc|.
 * NULL is a no-op. */
void aln_api_rpc_free(struct aln_api_rpc *rpc);

#endif
