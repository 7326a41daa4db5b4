/* The appraisal policy: one YAML file of reference values per evidence kind, loaded
 * by the host (`aileron daemon --policy FILE`) and by the offline verifier
 * (`aileron evidence verify --policy FILE`). An evidence kind the file does not
 * name is refused. The file is read strictly: a size cap before parsing, one
 * document, mappings and sequences of plain scalars only (no anchors, aliases or
 * tags), no duplicate keys, no unknown keys, every value of its expected type.
 *
 *   version: 1
 *   kinds:
 *     local:                 # the dev provider's self-signed evidence
 *       allow_debug: true    # it is always debug: a policy without this refuses it
 *
 * Each kind's section is documented beside its verifier (attestation/<kind>.h) and
 * in SECURITY.md. */
#ifndef ALN_ATTESTATION_POLICY_H
#define ALN_ATTESTATION_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "attestation/appraisal.h"
#include "proto/status.h"

#define ALN_POLICY_FILE_MAX (256 * 1024)
#define ALN_POLICY_ERR_MAX 256

struct aln_policy_local {
  int allow_debug;
};

struct aln_policy;

/* aln_policy_parse reads a policy from |len| bytes of YAML. On failure *out is NULL
 * and |err| (ALN_POLICY_ERR_MAX bytes) says where and why ("line 7: unknown key
 * 'measurment' in kinds.sev-snp"); the status is ALN_ERR_MALFORMED for YAML or
 * shape errors, ALN_ERR_USAGE for values out of range, ALN_ERR_TOO_LARGE past the
 * cap, ALN_ERR_ATTEST_KIND for a kind this build does not verify. */
aln_status aln_policy_parse(struct aln_policy **out, char err[ALN_POLICY_ERR_MAX], const uint8_t *yaml,
                            size_t len) ALN_WUR;

/* aln_policy_load reads and parses the file |path| (a regular file, at most
 * ALN_POLICY_FILE_MAX bytes). */
aln_status aln_policy_load(struct aln_policy **out, char err[ALN_POLICY_ERR_MAX], const char *path) ALN_WUR;

/* aln_policy_dev makes the dev policy: the local kind with debug allowed, nothing
 * else (what `aileron daemon --dev` uses without --policy). */
aln_status aln_policy_dev(struct aln_policy **out) ALN_WUR;

void aln_policy_free(struct aln_policy *p);

/* aln_policy_names_kind says whether |kind| has a section in |p|. */
int aln_policy_names_kind(const struct aln_policy *p, const char *kind);

/* For the tpm kind's AK enrollment by credential activation (host side):
 * aln_policy_tpm_ek_roots returns the PEM anchors EK certificates must chain to
 * (the policy's kinds.tpm.ek_ca_file), NULL if the policy enrolls AKs only by
 * pinning; aln_policy_tpm_ak_pinned says whether the AK named |name| (a 34-byte
 * SHA-256 TPM name) is pinned in the policy. */
#define ALN_POLICY_AK_NAME_LEN 34
const char *aln_policy_tpm_ek_roots(const struct aln_policy *p);
int aln_policy_tpm_ak_pinned(const struct aln_policy *p, const uint8_t name[ALN_POLICY_AK_NAME_LEN]);

/* aln_evidence_verify appraises |ev| of evidence kind |kind| under |p|: the kind
 * must be named in the policy (else ALN_ERR_ATTEST_KIND) and its verifier must
 * accept the evidence (attestation/appraisal.h). */
aln_status aln_evidence_verify(struct aln_claims *out, struct aln_refusal *why, const struct aln_policy *p,
                               const char *kind, const uint8_t *ev, size_t ev_len,
                               const struct aln_verify_ctx *ctx) ALN_WUR;

#endif
