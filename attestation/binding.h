/* The channel binding of DESIGN.md: SHA-256("aileron-attest-v1" || host_nonce ||
 * TLS exporter || signing key). Both ends compute it; evidence carries it as nonce. */
#ifndef ALN_ATTESTATION_BINDING_H
#define ALN_ATTESTATION_BINDING_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"
#include "proto/tls.h" /* ALN_EXPORTER_LEN, ALN_EXPORTER_LABEL */

#define ALN_BINDING_LEN 32
#define ALN_HOST_NONCE_LEN 32

/* aln_binding_compute writes the 32-byte binding into |out|. ALN_ERR_USAGE if the
 * nonce is not ALN_HOST_NONCE_LEN bytes or the key is empty. */
aln_status aln_binding_compute(uint8_t out[ALN_BINDING_LEN], const uint8_t *host_nonce, size_t nonce_len,
                               const uint8_t exporter[ALN_EXPORTER_LEN], const uint8_t *sign_pub,
                               size_t sign_pub_len) ALN_WUR;

#endif
