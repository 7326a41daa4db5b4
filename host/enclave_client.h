/* The host's attested connection to the enclave. Connects with TLS 1.3 and the
 * host's client certificate, sends Attest with a fresh nonce, verifies the evidence
 * and recomputes the channel binding from its own side of the connection before
 * any other RPC. A "local" (debug) enclave is refused unless dev mode is on.
 * A pool of up to ALN_ENCLAVE_POOL_MAX connections, each used by one call at a
 * time and attested afresh whenever it is (re)opened, so a slow upstream behind one
 * call does not hold up the others. */
#ifndef ALN_HOST_ENCLAVE_CLIENT_H
#define ALN_HOST_ENCLAVE_CLIENT_H

#include "aileron/v1/enclave.pb-c.h"
#include "proto/status.h"

#define ALN_ENCLAVE_POOL_MAX 8

struct aln_enclave_client;

struct aln_enclave_client_config {
  const char *address;   /* "host:port" of the enclave */
  const char *key_path;  /* host client private key (PEM) */
  const char *cert_path; /* host client certificate (PEM, self-signed) */
  int dev_mode;          /* accept debug ("local") evidence */
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

#endif
