/* The AMD trust roots pinned for the sev-snp verifier (attestation/snp_roots.c).
 * Private to attestation/: callers name a product in struct aln_snp_policy. */
#ifndef ALN_ATTESTATION_SNP_ROOTS_H
#define ALN_ATTESTATION_SNP_ROOTS_H

#include <stdint.h>

#include "attestation/snp.h"

struct aln_snp_root {
  enum aln_snp_product product;
  const char *name;       /* "Milan", as in AMD's KDS URLs and VCEK productName */
  const char *pem;        /* ASK then ARK, as AMD's KDS serves cert_chain */
  uint8_t ask_sha256[32]; /* of the ASK's DER */
  uint8_t ark_sha256[32]; /* of the ARK's DER */
};

/* aln_snp_root_get returns the pinned roots of |product| (static storage), or NULL
 * for ALN_SNP_PRODUCT_NONE or an unknown value. */
const struct aln_snp_root *aln_snp_root_get(enum aln_snp_product product);

#endif
