/* The host's attested connection to the enclave. Connects with TLS 1.3 and the
 * host's client certificate, sends Attest with a fresh nonce, recomputes the channel
 * binding from its own side of the connection and appraises the evidence against
 * the appraisal policy (attestation/policy.h) before any other RPC: a kind the
 * policy does not name, or evidence it refuses (debug, wrong measurement...), means
 * no connection. A pool of up to ALN_ENCLAVE_POOL_MAX connections, each used by one
 * call at a time, attested whenever it is (re)opened and again on the same
 * connection once its last appraisal is older than the re-attestation interval, so
 * a long-lived connection cannot outlive a change of what the enclave runs. */
#ifndef ALN_HOST_ENCLAVE_CLIENT_H
#define ALN_HOST_ENCLAVE_CLIENT_H

#include <jansson.h>
#include <stdint.h>

#include "aileron/v1/enclave.pb-c.h"
#include "attestation/policy.h"
#include "proto/status.h"

#define ALN_ENCLAVE_POOL_MAX 8
#define ALN_REATTEST_DEFAULT_S 600

struct aln_enclave_client;

struct aln_enclave_client_config {
  const char *address;             /* "host:port" of the enclave */
  const char *key_path;            /* host client private key (PEM) */
  const char *cert_path;           /* host client certificate (PEM, self-signed) */
  const struct aln_policy *policy; /* the appraisal policy (required; must outlive the client) */
  int64_t reattest_s; /* re-attest a connection appraised longer ago than this; 0: ALN_REATTEST_DEFAULT_S */
};

/* aln_enclave_client_new prepares a client (does not connect yet); free with
 * aln_enclave_client_free. */
aln_status aln_enclave_client_new(struct aln_enclave_client **out, const struct aln_enclave_client_config *cfg) ALN_WUR;
void aln_enclave_client_free(struct aln_enclave_client *c);

/* aln_enclave_client_call sends |req| (its version is set here) and receives the
 * response, connecting and attesting first if needed and retrying once on a
 * connection that the enclave closed. Returns ALN_OK with *out set when the enclave
 * answered status 0; the enclave's status (with *out set, for its message) when it
 * answered an error; a local status (*out NULL) when no answer came. The caller
 * frees *out with aileron__v1__response__free_unpacked(*out, NULL). Thread-safe. */
aln_status aln_enclave_client_call(struct aln_enclave_client *c, Aileron__V1__Response **out,
                                   Aileron__V1__Request *req) ALN_WUR;

/* aln_enclave_client_status returns, as a new JSON object, the claims of the last
 * evidence this client appraised ({"kind","debug","measurement",...,"detail"}) with
 * "verified_at" (unix seconds) and "reattest_seconds"; ALN_ERR_NOT_FOUND before the
 * first appraisal. */
aln_status aln_enclave_client_status(struct aln_enclave_client *c, json_t **out) ALN_WUR;

/* aln_enclave_client_attest_fresh opens a new connection, attests and appraises it
 * as any other, and returns what an operator saves to verify it again offline:
 * {"kind", "evidence_b64", "nonce_hex" (the channel binding the evidence must carry),
 * "signing_key_hex", "claims"}. The connection is closed afterwards. */
aln_status aln_enclave_client_attest_fresh(struct aln_enclave_client *c, json_t **out) ALN_WUR;

#endif
