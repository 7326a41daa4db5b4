/* fuzz-links: aln_attestation */
/* Fuzzes the "tpm" evidence parsers: aln_tpm_attest_parse on the raw input, and the
 * evidence container's decoder. A container the decoder accepts must be canonical
 * (encoding what was decoded gives back exactly the input), and then runs through
 * the whole verifier under a policy that enrolls its own AK, allows its first PCR
 * value and expects its own qualifying data, so the signature, PCR digest and policy
 * checks run on fuzzed bytes too. The verifier must agree with the decoder: what
 * the decoder refuses, it refuses as malformed. Seeds (corpus/tpm_attest) are real
 * quotes made on swtpm by aln_tpm_quote_make and by tpm2_quote, and one raw
 * TPMS_ATTEST. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/tpm_quote.h"

static int attest_family(aln_status st) {
  return aln_status_category(st) == ALN_CAT_ATTEST;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct aln_tpm_quote q;
  static const uint8_t zero[64];
  TPMS_ATTEST a;
  struct aln_claims c;
  struct aln_refusal why;
  TPM2B_NAME name = {.size = 34};

  if (aln_tpm_attest_parse(&a, data, size) == ALN_OK &&
      (a.magic != TPM2_GENERATED_VALUE || a.type != TPM2_ST_ATTEST_QUOTE))
    abort();

  struct aln_tpm_pcr_ref ref = {.bank = TPM2_ALG_SHA256, .index = 0, .values = zero, .num_values = 1};
  struct aln_tpm_policy policy = {.ak_names = &name, .num_ak_names = 1, .pcrs = &ref, .num_pcrs = 1};
  struct aln_verify_ctx ctx = {0};

  if (aln_tpm_quote_decode(&q, data, size) != ALN_OK) {
    if (aln_tpm_quote_verify(&c, &why, data, size, &policy, &ctx) != ALN_ERR_ATTEST_MALFORMED)
      abort();
    return 0;
  }
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  if (aln_tpm_quote_encode(&enc, &enc_len, &q) != ALN_OK || enc_len != size || memcmp(enc, data, size) != 0)
    abort();
  free(enc);

  if (aln_tpm_name(&name, &q.ak) != ALN_OK)
    name.size = 34;
  const TPML_PCR_SELECTION *sel = &q.attest.attested.quote.pcrSelect;
  if (q.num_pcr_values > 0 && sel->count > 0) {
    const TPMS_PCR_SELECTION *s = &sel->pcrSelections[0];
    for (unsigned pcr = 0; pcr < 8u * s->sizeofSelect; pcr++) {
      if (s->pcrSelect[pcr / 8] & (1u << (pcr % 8))) {
        ref = (struct aln_tpm_pcr_ref){
            .bank = s->hash, .index = (uint8_t)pcr, .values = q.pcr_values[0].buffer, .num_values = 1};
        break;
      }
    }
  }
  ctx.nonce = q.attest.extraData.buffer;
  ctx.nonce_len = q.attest.extraData.size;
  aln_status st = aln_tpm_quote_verify(&c, &why, data, size, &policy, &ctx);
  if (st == ALN_OK) {
    if (strcmp(c.kind, "tpm") != 0 || c.debug != 0 || c.detail == NULL)
      abort();
    aln_claims_cleanup(&c);
  } else if (!attest_family(st) && st != ALN_ERR_USAGE && st != ALN_ERR_NOMEM && st != ALN_ERR_CRYPTO) {
    abort();
  }
  return 0;
}
