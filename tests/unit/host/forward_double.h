/* A test double for the host's forwarding to the enclave: it records the packed
 * request it was given and answers a canned response. Shared by the host's unit
 * tests (api_test, cli_test); header-only because each test is its own binary. */
#ifndef ALN_TESTS_UNIT_HOST_FORWARD_DOUBLE_H
#define ALN_TESTS_UNIT_HOST_FORWARD_DOUBLE_H

#include <pthread.h>
#include <stdlib.h>

#include "aileron/v1/enclave.pb-c.h"
#include "proto/status.h"

static struct {
  pthread_mutex_t mu;
  int calls;
  uint8_t *req;
  size_t req_len;
  aln_status status;
  uint8_t *resp; /* packed canned response; NULL: answer without one */
  size_t resp_len;
} dbl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static aln_status double_forward(void *ctx, Aileron__V1__Response **out, Aileron__V1__Request *req) {
  (void)ctx;
  pthread_mutex_lock(&dbl.mu);
  dbl.calls++;
  free(dbl.req);
  dbl.req_len = aileron__v1__request__get_packed_size(req);
  dbl.req = malloc(dbl.req_len + 1);
  aileron__v1__request__pack(req, dbl.req);
  *out = dbl.resp != NULL ? aileron__v1__response__unpack(NULL, dbl.resp_len, dbl.resp) : NULL;
  aln_status st = dbl.status;
  pthread_mutex_unlock(&dbl.mu);
  return st;
}

static void set_response(aln_status st, const Aileron__V1__Response *resp) {
  free(dbl.resp);
  dbl.resp = NULL;
  dbl.status = st;
  if (resp != NULL) {
    dbl.resp_len = aileron__v1__response__get_packed_size(resp);
    dbl.resp = malloc(dbl.resp_len + 1);
    aileron__v1__response__pack(resp, dbl.resp);
  }
}

/* last_request unpacks what the double received (free with
 * aileron__v1__request__free_unpacked); the caller asserts it is non-NULL. */
static Aileron__V1__Request *last_request_raw(void) {
  return dbl.req == NULL ? NULL : aileron__v1__request__unpack(NULL, dbl.req_len, dbl.req);
}

#endif
