/* fuzz-links: aln_attestation */
/* Fuzzes the sev-snp report parser and verifier. Each input is
 *   - parsed with aln_snp_report_parse as is, and its first 1184 bytes again when
 *     longer (so the report of a container is parsed too);
 *   - verified as sev-snp evidence (a bare report, or a report plus a GHCB
 *     certificate table) under a fixed policy: Milan with the pinned AMD roots, the
 *     go-sev-guest sample's measurement, debug allowed, its nonce 0102030405, at
 *     2024-06-01, no certificate directory. A bare report stops at "no
 *     certificates"; a report with a table reaches the chain, the signature and
 *     the appraisal, so the seeds that carry the real VCEK verify.
 * The seed corpus (corpus/snp_report/) is the real report (tests/data/attestation/
 * sev-snp/), that report in a certificate table with the real VCEK (alone, and with
 * the Milan ASK and ARK), and truncated, padded and re-versioned variants, written
 * with a few lines of Python's struct module.
 * Invariants, else abort: parsing is deterministic and agrees with the verifier's
 * view of the first 1184 bytes; success comes only with the sample's measurement,
 * its product, a checked nonce and complete claims; a refusal names its status. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/snp.h"

static const uint8_t measurement[1][ALN_SNP_MEASUREMENT_LEN] = {
    {0xb0, 0x7a, 0xf9, 0x62, 0x0f, 0x3b, 0x83, 0x9b, 0x47, 0x99, 0x64, 0x22, 0xdd, 0xec, 0x60, 0x58,
     0x33, 0x89, 0x51, 0xd9, 0x84, 0xe3, 0x12, 0x11, 0x51, 0x31, 0xea, 0x82, 0x70, 0x5e, 0xaf, 0x5b,
     0x6b, 0xdf, 0x8a, 0x9e, 0xce, 0x31, 0xa5, 0xa6, 0x08, 0xeb, 0x0c, 0xf2, 0xe4, 0x87, 0x2b, 0x01}};
static const char measurement_hex[] =
    "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01";
static const uint8_t nonce[] = {1, 2, 3, 4, 5};

static void parse_twice(const uint8_t *data, size_t size) {
  struct aln_snp_report a, b;
  memset(&a, 0, sizeof(a));
  memset(&b, 0xa5, sizeof(b));
  aln_status st = aln_snp_report_parse(&a, data, size);
  if (st != ALN_OK && st != ALN_ERR_ATTEST_MALFORMED)
    abort();
  if (aln_snp_report_parse(&b, data, size) != st)
    abort();
  /* Whatever parses names a version and key this verifier knows. */
  if (st == ALN_OK && ((a.version != 2 && a.version != 3) || a.signature_algo != 1 || a.vmpl > 3 ||
                       memcmp(a.measurement, b.measurement, sizeof(a.measurement)) != 0 ||
                       memcmp(a.sig_r, b.sig_r, sizeof(a.sig_r)) != 0))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse_twice(data, size);
  if (size > ALN_SNP_REPORT_LEN)
    parse_twice(data, ALN_SNP_REPORT_LEN);

  struct aln_snp_policy policy;
  memset(&policy, 0, sizeof(policy));
  policy.product = ALN_SNP_PRODUCT_MILAN;
  policy.measurements = measurement;
  policy.num_measurements = 1;
  policy.allow_debug = 1;
  struct aln_verify_ctx ctx = {.nonce = nonce, .nonce_len = sizeof(nonce), .now = 1717200000};
  struct aln_claims claims;
  struct aln_refusal why;
  memset(&claims, 0, sizeof(claims));
  memset(&why, 0, sizeof(why));
  aln_status st = aln_snp_verify(&claims, &why, data, size, &policy, &ctx);
  if (st == ALN_OK) {
    const char *product = json_string_value(json_object_get(claims.detail, "product"));
    if (size < ALN_SNP_REPORT_LEN || aln_snp_report_parse(NULL, data, ALN_SNP_REPORT_LEN) != ALN_OK ||
        strcmp(claims.kind, "sev-snp") != 0 || strcmp(claims.measurement, measurement_hex) != 0 ||
        claims.nonce_checked != 1 || claims.detail == NULL || product == NULL || strcmp(product, "Milan") != 0)
      abort();
  } else if (why.status != st || why.why[0] == '\0' || claims.detail != NULL) {
    abort();
  }
  aln_claims_cleanup(&claims);
  return 0;
}
