/* The enclave's RPC server: TLS 1.3 with client certificates on a TCP listener, one
 * thread per connection (bounded), and a dispatch table that says which RPC each
 * connection state allows. A connection starts "connected"; an enrolled client key
 * makes it "enrolled" (Attest allowed); answering Attest makes it "attested"
 * (credential RPCs allowed). A request not allowed in the state, or any protocol
 * violation, gets an error response and the connection is closed. */
#ifndef ALN_ENCLAVE_SERVER_H
#define ALN_ENCLAVE_SERVER_H

#include "enclave/escrow.h"
#include "enclave/provider.h"
#include "proto/status.h"

#define ALN_SERVER_MAX_CONNS 64
#define ALN_SERVER_IDLE_SECONDS 300

struct aln_server;

struct aln_server_config {
  const char *listen;                  /* "127.0.0.1:7400" or "[::1]:7400" */
  const struct aln_provider *provider; /* evidence producer */
  struct aln_escrow *escrow;           /* borrowed */
  const char *data_dir;                /* the provider's files (borrowed) */
};

/* aln_server_new makes the enclave's ephemeral TLS identity and Ed25519 signing key
 * (in memory only) and binds the listener. Free with aln_server_free. */
aln_status aln_server_new(struct aln_server **out, const struct aln_server_config *cfg) ALN_WUR;

/* aln_server_port returns the bound TCP port (useful with port 0). */
int aln_server_port(const struct aln_server *srv);

/* aln_server_run accepts connections until |stop_fd| becomes readable, then closes
 * every open connection and waits for its thread. */
aln_status aln_server_run(struct aln_server *srv, int stop_fd) ALN_WUR;

/* aln_server_free releases everything; NULL is a no-op. */
void aln_server_free(struct aln_server *srv);

#endif
