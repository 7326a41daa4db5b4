/* Helpers shared by the verifiers of every evidence kind. */
#include "attestation/appraisal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void aln_claims_cleanup(struct aln_claims *c) {
  if (c == NULL)
    return;
  json_decref(c->detail);
  memset(c, 0, sizeof(*c));
}

aln_status aln_refuse(struct aln_refusal *r, aln_status st, const char *fmt, ...) {
  if (r == NULL)
    return st;
  va_list ap;
  va_start(ap, fmt);
  r->status = st;
  if (vsnprintf(r->why, sizeof(r->why), fmt, ap) < 0)
    r->why[0] = '\0';
  va_end(ap);
  /* Reasons quote evidence (an alg, a kid, a claim) that nobody has vouched for yet,
   * and they reach terminals and logs: nothing but printable ASCII goes out. */
  for (char *p = r->why; *p != '\0'; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
      *p = '?';
  return st;
}

json_t *aln_claims_to_json(const struct aln_claims *c) {
  if (c == NULL)
    return NULL;
  json_t *detail = c->detail != NULL ? json_incref(c->detail) : json_object();
  return json_pack("{s:s, s:b, s:b, s:s, s:I, s:I, s:o}", "kind", c->kind, "debug", c->debug, "nonce_checked",
                   c->nonce_checked, "measurement", c->measurement, "issued_at", (json_int_t)c->issued_at, "expires_at",
                   (json_int_t)c->expires_at, "detail", detail);
}
