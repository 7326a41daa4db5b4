/* Evidence kind "sev-snp": an AMD SEV-SNP ATTESTATION_REPORT (SEV Secure Nested
 * Paging Firmware ABI Specification, #56860, Table "ATTESTATION_REPORT Structure"),
 * signed with ECDSA P-384/SHA-384 by the chip's VCEK (or a cloud's VLEK), whose
 * certificate chains through AMD's ASK (or ASVK) to the ARK of one product line.
 * Verifier only: the report is made by the AMD secure processor, not by us.
 *
 * The evidence bytes are one of two things, told apart by their length:
 *
 *  (a) the 1184-byte report alone, as the guest's firmware returned it
 *      (SNP_GET_REPORT, or configfs-tsm's outblob). Its certificates then come
 *      from ctx->certs_dir, a local cache filled once from AMD's KDS with the names
 *      snpguest uses (`snpguest fetch vcek der DIR`, `snpguest fetch ca pem DIR`):
 *        vcek.der  (vlek.der when the report says VLEK)  required, DER
 *        ask.pem   (asvk.pem for a VLEK)                 optional, PEM
 *        ark.pem                                         optional, PEM; must be the
 *                                                        pinned ARK byte for byte
 *  (b) the report followed by the certificate table of an extended guest request
 *      (GHCB specification #56421, SNP_GET_EXT_REPORT's certificate data; the
 *      kernel's configfs-tsm auxblob): 24-byte entries {GUID (16 bytes, RFC 4122
 *      byte order), offset (u32 LE), length (u32 LE)} closed by an all-zero entry,
 *      offsets counted from the table's first byte, each certificate DER:
 *        VCEK 63da758d-e664-4564-adc5-f4b93be8accd   VLEK a8074bc2-a25a-483e-aae6-39c045a0b8a1
 *        ASK  4ab7b379-bbac-4fe4-a02f-05aef327c782   ARK  c0b406a4-a803-4952-9743-3fb6014cd0ae
 *      (the ASK entry carries the ASVK for a VLEK). Entries with other GUIDs are
 *      bounds-checked and ignored. This is what a guest gets from its kernel in one
 *      call when the host provisions certificates, so a producer saves
 *      `outblob ‖ auxblob` and the evidence is self-contained; ctx->certs_dir is not
 *      consulted for it.
 *
 * Either way the only trust anchor is the ARK pinned for the policy's product
 * (attestation/snp_roots.c): certificates supplied beside a report are candidates
 * for the path to it, never anchors, and verification never uses the network. */
#ifndef ALN_ATTESTATION_SNP_H
#define ALN_ATTESTATION_SNP_H

#include <stddef.h>
#include <stdint.h>

#include "attestation/appraisal.h"
#include "proto/status.h"

#define ALN_SNP_KIND "sev-snp"
#define ALN_SNP_REPORT_LEN 1184  /* 0x4a0 */
#define ALN_SNP_SIGNED_LEN 0x2a0 /* the signature covers bytes [0, 0x2a0) */
#define ALN_SNP_FAMILY_ID_LEN 16
#define ALN_SNP_IMAGE_ID_LEN 16
#define ALN_SNP_REPORT_DATA_LEN 64
#define ALN_SNP_MEASUREMENT_LEN 48
#define ALN_SNP_HOST_DATA_LEN 32
#define ALN_SNP_KEY_DIGEST_LEN 48
#define ALN_SNP_REPORT_ID_LEN 32
#define ALN_SNP_CHIP_ID_LEN 64
#define ALN_SNP_SIG_COMPONENT_LEN 48 /* a P-384 scalar */
/* A report plus a certificate table: three certificates of about 1.4 kB each fit many
 * times over; the kernel's extended-report buffer is smaller still. */
#define ALN_SNP_EVIDENCE_MAX (ALN_SNP_REPORT_LEN + 32768)

/* Guest policy bits (ABI Table "Guest Policy Structure"). */
#define ALN_SNP_POLICY_RESERVED_ONE (UINT64_C(1) << 17) /* must be 1 */
#define ALN_SNP_POLICY_DEBUG (UINT64_C(1) << 19)        /* the host may debug the guest */
#define ALN_SNP_POLICY_KNOWN_MASK ((UINT64_C(1) << 26) - 1)

/* The product lines AMD runs a KDS for, each with its own ARK and ASK. */
enum aln_snp_product {
  ALN_SNP_PRODUCT_NONE = 0,
  ALN_SNP_PRODUCT_MILAN, /* EPYC 7003, family 19h models 00h-0Fh */
  ALN_SNP_PRODUCT_GENOA, /* EPYC 9004/8004, family 19h models 10h-1Fh, A0h-AFh */
  ALN_SNP_PRODUCT_TURIN, /* EPYC 9005, family 1Ah models 00h-1Fh */
};

/* The key a report says signed it (SIGNING_KEY, bits 4:2 of byte 0x48). */
enum aln_snp_signing_key {
  ALN_SNP_KEY_VCEK = 0,
  ALN_SNP_KEY_VLEK = 1,
  ALN_SNP_KEY_NONE = 7, /* unsigned report: never accepted */
};

/* One parsed report. Multi-byte integers are converted from little-endian; byte
 * arrays are as in the report. Versions 2 and 3 differ only in bytes 0x188..0x18a:
 * reserved (zero) in version 2, CPUID family, model and stepping in version 3
 * (zero here for version 2). TCB_VERSION fields stay raw: their layout depends on
 * the product (Milan/Genoa: boot loader, TEE, 4 reserved, SNP, microcode; Turin:
 * FMC, boot loader, TEE, SNP, 3 reserved, microcode), which only the policy or a
 * version 3 report's CPUID names. */
struct aln_snp_report {
  uint32_t version;
  uint32_t guest_svn;
  uint64_t policy;
  uint8_t family_id[ALN_SNP_FAMILY_ID_LEN];
  uint8_t image_id[ALN_SNP_IMAGE_ID_LEN];
  uint32_t vmpl;
  uint32_t signature_algo; /* always 1: ECDSA P-384 with SHA-384 */
  uint64_t current_tcb;
  uint64_t platform_info;
  int author_key_en;
  int mask_chip_key;
  enum aln_snp_signing_key signing_key;
  uint8_t report_data[ALN_SNP_REPORT_DATA_LEN];
  uint8_t measurement[ALN_SNP_MEASUREMENT_LEN];
  uint8_t host_data[ALN_SNP_HOST_DATA_LEN];
  uint8_t id_key_digest[ALN_SNP_KEY_DIGEST_LEN];
  uint8_t author_key_digest[ALN_SNP_KEY_DIGEST_LEN];
  uint8_t report_id[ALN_SNP_REPORT_ID_LEN];
  uint8_t report_id_ma[ALN_SNP_REPORT_ID_LEN];
  uint64_t reported_tcb;
  uint8_t cpuid_fam_id, cpuid_mod_id, cpuid_step; /* version 3 only */
  uint8_t chip_id[ALN_SNP_CHIP_ID_LEN];
  uint64_t committed_tcb;
  uint8_t current_build, current_minor, current_major;
  uint8_t committed_build, committed_minor, committed_major;
  uint64_t launch_tcb;
  uint8_t sig_r[ALN_SNP_SIG_COMPONENT_LEN]; /* big-endian (the report stores them */
  uint8_t sig_s[ALN_SNP_SIG_COMPONENT_LEN]; /* little-endian, zero-padded to 72) */
};

/* Security version numbers of the firmware components in a TCB_VERSION. |fmc|
 * exists on Turin only and is 0 elsewhere. */
struct aln_snp_tcb {
  uint8_t fmc;
  uint8_t bootloader;
  uint8_t tee;
  uint8_t snp;
  uint8_t microcode;
};

/* The appraisal policy of kind "sev-snp": a plain struct the policy loader fills.
 * Nothing in it is owned by the verifier. A zeroed policy accepts nothing. */
struct aln_snp_policy {
  enum aln_snp_product product; /* whose pinned ARK/ASK anchor the chain; required */
  /* MEASUREMENT must equal one of these (an empty list accepts nothing). */
  const uint8_t (*measurements)[ALN_SNP_MEASUREMENT_LEN];
  size_t num_measurements;
  /* Each component of the REPORTED_TCB must be at least this (fmc: Turin only). */
  struct aln_snp_tcb min_tcb;
  int allow_debug; /* accept a guest policy with DEBUG set (claims.debug = 1) */
  /* Bit n allows VMPL n (0..3). 0 means the default: VMPL 0 only, the most
   * privileged level, where a guest's own firmware and kernel run. */
  unsigned vmpl_mask;
  /* PEM text of the trust roots to use instead of the pinned ones of |product|:
   * exactly one self-signed certificate (the ARK) plus intermediates (ASK, ASVK).
   * NULL in production. For tests with a chain made by the test, and for an AMD
   * re-key before a release pins the new roots. */
  const char *roots_pem;
};

/* aln_snp_report_parse parses the |len| bytes at |data| as one report into |out|
 * (may be NULL to only validate). It checks the shape only, not the signature:
 * exactly ALN_SNP_REPORT_LEN bytes, version 2 or 3, signature_algo 1, every
 * reserved field zero (bytes 0x4c..0x4f, 0x188..0x19f (0x18b.. for version 3),
 * 0x1eb, 0x1ef, 0x1f8..0x29f, the signature area after S and the top 24 bytes of
 * R and S, the reserved bits of byte 0x48), SIGNING_KEY 0, 1 or 7, guest policy
 * bit 17 set and bits 63:26 clear. Returns ALN_OK or ALN_ERR_ATTEST_MALFORMED
 * (ALN_ERR_USAGE if |data| is NULL). A pure function of its input. */
aln_status aln_snp_report_parse(struct aln_snp_report *out, const uint8_t *data, size_t len) ALN_WUR;

/* aln_snp_verify appraises sev-snp evidence |ev| (format above) against |policy| at
 * ctx->now and, on success, fills |out| with kind "sev-snp", the measurement (96
 * lowercase hex characters), debug, nonce_checked, expires_at (the earliest notAfter
 * on the chain; issued_at is 0, a report carries no time) and a detail object
 * {version, product, signing_key, report_data, policy, vmpl, guest_svn,
 * reported_tcb {[fmc,] bootloader, tee, snp, microcode}, chip_id, host_data};
 * the caller releases it with aln_claims_cleanup. On refusal |out| is untouched and
 * |why| (may be NULL) says which check failed. The checks run in this order and
 * the first failure is reported: shape, certificates, chain and validity, the
 * report's signature, the leaf's ties to the report, then the appraisal (CPUID,
 * nonce, measurement, debug, VMPL, minimum TCB): nothing in the report is judged
 * before its signature holds.
 *
 *   ALN_ERR_ATTEST_MALFORMED  the report or the certificate table is malformed, over
 *                             ALN_SNP_EVIDENCE_MAX, or a certificate does not parse
 *   ALN_ERR_ATTEST_CHAIN      no VCEK/VLEK (or its file in ctx->certs_dir cannot
 *                             be read), no path to the pinned ARK, a signature
 *                             algorithm other than RSASSA-PSS/SHA-384 on the chain or
 *                             a key other than P-384 in the leaf, a supplied ARK
 *                             that is not the pinned one, the leaf's TCB, chip ID or
 *                             product not the report's
 *   ALN_ERR_ATTEST_EXPIRED    a certificate on the chain not valid at ctx->now
 *                             (validity is inclusive at both ends)
 *   ALN_ERR_ATTEST_SIG        the report's signature does not verify, or it is unsigned
 *   ALN_ERR_ATTEST_BINDING    REPORT_DATA is not ctx->nonce followed by zeros, or
 *                             the nonce is longer than 64 bytes
 *   ALN_ERR_ATTEST_POLICY     MEASUREMENT not allowed, VMPL not allowed, a TCB
 *                             component below the minimum, a version 3 CPUID of
 *                             another product
 *   ALN_ERR_ATTEST_DEBUG      DEBUG set and the policy does not allow it
 *   ALN_ERR_USAGE             a NULL argument, a policy without a product, or
 *                             roots_pem that is not one ARK plus intermediates
 *   ALN_ERR_NOMEM             out of memory
 *   ALN_ERR_INTERNAL          the pinned roots do not match their pinned digests
 * ctx->max_skew_s is not used: the report has no timestamp, and certificates are
 * judged at ctx->now exactly. The only state kept between calls is the pinned
 * roots, parsed once per process; safe to call concurrently. */
aln_status aln_snp_verify(struct aln_claims *out, struct aln_refusal *why, const uint8_t *ev, size_t len,
                          const struct aln_snp_policy *policy, const struct aln_verify_ctx *ctx) ALN_WUR;

/* aln_snp_product_name returns "Milan", "Genoa" or "Turin" (static), or NULL. */
const char *aln_snp_product_name(enum aln_snp_product product);

/* aln_snp_product_from_name sets *out from "Milan", "Genoa" or "Turin" (exact case,
 * as AMD writes them); ALN_ERR_USAGE for anything else. For the policy loader. */
aln_status aln_snp_product_from_name(enum aln_snp_product *out, const char *name) ALN_WUR;

#endif
