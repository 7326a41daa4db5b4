/* fuzz-links: aln_attestation */
/* Fuzzes the appraisal policy parser (YAML through libyaml, then the strict walk).
 * Whatever it accepts must name at least one kind; whatever it refuses must say
 * why, and nothing may leak or crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *p = NULL;
  aln_status st = aln_policy_parse(&p, err, data, size);
  if (st == ALN_OK) {
    static const char *const kinds[] = {"local", "confidential-space", "sev-snp", "tpm", "aws-nitro"};
    int named = 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
      named |= aln_policy_names_kind(p, kinds[i]);
    if (p == NULL || !named)
      abort(); /* an accepted policy names a kind this build parses */
    aln_policy_free(p);
  } else if (p != NULL || err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL) {
    abort();
  }
  return 0;
}
