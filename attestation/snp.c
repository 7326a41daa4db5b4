/* Evidence kind "sev-snp": parser and verifier of AMD SEV-SNP attestation reports
 * (attestation/snp.h says what the evidence is). The report parser is a pure
 * function over a fixed 1184-byte layout; the verifier then finds the endorsement
 * key's certificate (in the certificate table beside the report, or in a local
 * cache directory), walks it to the ARK pinned for the policy's product with
 * OpenSSL, checks the report's signature with it, ties the report to that
 * certificate (TCB, chip ID, product) and only then appraises the report's
 * contents against the policy. Nothing in the report is believed before its
 * signature is; nothing supplied beside it is ever a trust anchor. */
#include "attestation/snp.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attestation/snp_roots.h"
#include "proto/cbs.h"
#include "proto/keyfile.h"

#define SIG_ALGO_ECDSA_P384_SHA384 1
#define SIG_FIELD_LEN 72 /* R and S each: a 48-byte scalar zero-padded to 72 */
#define SIG_AREA_LEN 512
#define VMPL_MAX 3
#define SIGNER_INFO_KNOWN 0x1fu /* AUTHOR_KEY_EN, MASK_CHIP_KEY, SIGNING_KEY (3 bits) */

#define TABLE_ENTRY_LEN 24
#define TABLE_ENTRIES_MAX 16 /* AMD defines four GUIDs; room for a few a host adds */
#define CERT_FILE_MAX 16384  /* one certificate (or ASK + ARK) in PEM is under 5 kB */
#define EXT_TEXT_MAX 64      /* productName ("Milan-B0") and cspId are short */

/* AMD's KDS extensions on VCEK/VLEK certificates (VCEK Certificate and KDS
 * Interface Specification #57230): 1.3.6.1.4.1.3704.1.<rest>. */
#define KDS_OID_PREFIX "1.3.6.1.4.1.3704.1."
#define SPL_MAX 9 /* 1.3.6.1.4.1.3704.1.3.1 .. .3.9 */
enum {
  SPL_BOOTLOADER = 1,
  SPL_TEE = 2,
  SPL_SNP = 3,
  SPL_RESERVED4 = 4, /* .4 .. .7: the reserved bytes 2..5 of a Milan/Genoa TCB */
  SPL_MICROCODE = 8,
  SPL_FMC = 9, /* Turin only */
};

/* --- the report ------------------------------------------------------------------ */

/* A cursor over the report that knows its offset, so a refusal names where. */
struct rd {
  struct aln_cbs c;
  struct aln_refusal *why;
};

static size_t rd_off(const struct rd *r) {
  return ALN_SNP_REPORT_LEN - r->c.len;
}

static aln_status rd_bytes(struct rd *r, const uint8_t **p, size_t n) {
  struct aln_cbs b;
  if (aln_cbs_get_bytes(&r->c, &b, n) != ALN_OK)
    return aln_refuse(r->why, ALN_ERR_ATTEST_MALFORMED, "report ends inside the field at 0x%zx", rd_off(r));
  *p = b.p;
  return ALN_OK;
}

/* rd_le reads an |n|-byte little-endian integer (n <= 8). */
static aln_status rd_le(struct rd *r, size_t n, uint64_t *out) {
  const uint8_t *p = NULL;
  ALN_GUARD(rd_bytes(r, &p, n));
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;)
    v = v << 8 | p[i];
  *out = v;
  return ALN_OK;
}

static aln_status rd_u8(struct rd *r, uint8_t *out) {
  uint64_t v;
  ALN_GUARD(rd_le(r, 1, &v));
  *out = (uint8_t)v;
  return ALN_OK;
}

static aln_status rd_u32(struct rd *r, uint32_t *out) {
  uint64_t v;
  ALN_GUARD(rd_le(r, 4, &v));
  *out = (uint32_t)v;
  return ALN_OK;
}

static aln_status rd_u64(struct rd *r, uint64_t *out) {
  return rd_le(r, 8, out);
}

static aln_status rd_copy(struct rd *r, uint8_t *out, size_t n) {
  const uint8_t *p = NULL;
  ALN_GUARD(rd_bytes(r, &p, n));
  memcpy(out, p, n);
  return ALN_OK;
}

static bool all_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}

/* rd_reserved skips |n| bytes that the ABI reserves and says must be zero: a
 * non-zero one is firmware this parser does not know, or a forgery. */
static aln_status rd_reserved(struct rd *r, size_t n) {
  size_t at = rd_off(r);
  const uint8_t *p = NULL;
  ALN_GUARD(rd_bytes(r, &p, n));
  if (!all_zero(p, n))
    return aln_refuse(r->why, ALN_ERR_ATTEST_MALFORMED, "reserved bytes 0x%zx..0x%zx are not zero", at, at + n - 1);
  return ALN_OK;
}

/* rd_sig_component reads one 72-byte little-endian signature field into a 48-byte
 * big-endian scalar; the 24 bytes above a P-384 scalar must be zero. */
static aln_status rd_sig_component(struct rd *r, uint8_t out[ALN_SNP_SIG_COMPONENT_LEN], const char *name) {
  const uint8_t *p = NULL;
  ALN_GUARD(rd_bytes(r, &p, SIG_FIELD_LEN));
  if (!all_zero(p + ALN_SNP_SIG_COMPONENT_LEN, SIG_FIELD_LEN - ALN_SNP_SIG_COMPONENT_LEN))
    return aln_refuse(r->why, ALN_ERR_ATTEST_MALFORMED, "signature %s is longer than a P-384 scalar", name);
  for (size_t i = 0; i < ALN_SNP_SIG_COMPONENT_LEN; i++)
    out[i] = p[ALN_SNP_SIG_COMPONENT_LEN - 1 - i];
  return ALN_OK;
}

/* report_parse reads the ATTESTATION_REPORT field by field, in ABI order. */
static aln_status report_parse(struct aln_snp_report *out, struct aln_refusal *why, const uint8_t *data, size_t len) {
  if (data == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "no report");
  if (len != ALN_SNP_REPORT_LEN)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "a report is %d bytes, not %zu", ALN_SNP_REPORT_LEN, len);

  struct aln_snp_report r;
  struct rd rd = {.why = why};
  uint32_t signer_info;
  memset(&r, 0, sizeof(r));
  aln_cbs_init(&rd.c, data, len);

  ALN_GUARD(rd_u32(&rd, &r.version)); /* 0x000 */
  if (r.version != 2 && r.version != 3)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "report version %" PRIu32 " is not supported (2 or 3)", r.version);
  ALN_GUARD(rd_u32(&rd, &r.guest_svn)); /* 0x004 */
  ALN_GUARD(rd_u64(&rd, &r.policy));    /* 0x008 */
  if ((r.policy & ALN_SNP_POLICY_RESERVED_ONE) == 0)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "guest policy bit 17 (reserved, must be one) is zero");
  if ((r.policy & ~ALN_SNP_POLICY_KNOWN_MASK) != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "guest policy 0x%" PRIx64 " sets reserved bits 63:26", r.policy);
  ALN_GUARD(rd_copy(&rd, r.family_id, sizeof(r.family_id))); /* 0x010 */
  ALN_GUARD(rd_copy(&rd, r.image_id, sizeof(r.image_id)));   /* 0x020 */
  ALN_GUARD(rd_u32(&rd, &r.vmpl));                           /* 0x030 */
  if (r.vmpl > VMPL_MAX)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "VMPL %" PRIu32 " does not exist (0..3)", r.vmpl);
  ALN_GUARD(rd_u32(&rd, &r.signature_algo)); /* 0x034 */
  if (r.signature_algo != SIG_ALGO_ECDSA_P384_SHA384)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "signature algorithm %" PRIu32 " is not 1 (ECDSA P-384 SHA-384)",
                      r.signature_algo);
  ALN_GUARD(rd_u64(&rd, &r.current_tcb));   /* 0x038 */
  ALN_GUARD(rd_u64(&rd, &r.platform_info)); /* 0x040: host-reported, informative */
  ALN_GUARD(rd_u32(&rd, &signer_info));     /* 0x048 */
  if ((signer_info & ~SIGNER_INFO_KNOWN) != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "reserved bits 31:5 at 0x48 are not zero");
  r.author_key_en = (int)(signer_info & 1u);
  r.mask_chip_key = (int)((signer_info >> 1) & 1u);
  switch ((signer_info >> 2) & 7u) {
  case ALN_SNP_KEY_VCEK:
    r.signing_key = ALN_SNP_KEY_VCEK;
    break;
  case ALN_SNP_KEY_VLEK:
    r.signing_key = ALN_SNP_KEY_VLEK;
    break;
  case ALN_SNP_KEY_NONE:
    r.signing_key = ALN_SNP_KEY_NONE;
    break;
  default:
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "SIGNING_KEY %u is reserved", (signer_info >> 2) & 7u);
  }
  ALN_GUARD(rd_reserved(&rd, 4));                                            /* 0x04c */
  ALN_GUARD(rd_copy(&rd, r.report_data, sizeof(r.report_data)));             /* 0x050 */
  ALN_GUARD(rd_copy(&rd, r.measurement, sizeof(r.measurement)));             /* 0x090 */
  ALN_GUARD(rd_copy(&rd, r.host_data, sizeof(r.host_data)));                 /* 0x0c0 */
  ALN_GUARD(rd_copy(&rd, r.id_key_digest, sizeof(r.id_key_digest)));         /* 0x0e0 */
  ALN_GUARD(rd_copy(&rd, r.author_key_digest, sizeof(r.author_key_digest))); /* 0x110 */
  ALN_GUARD(rd_copy(&rd, r.report_id, sizeof(r.report_id)));                 /* 0x140 */
  ALN_GUARD(rd_copy(&rd, r.report_id_ma, sizeof(r.report_id_ma)));           /* 0x160 */
  ALN_GUARD(rd_u64(&rd, &r.reported_tcb));                                   /* 0x180 */
  if (r.version >= 3) {
    /* Version 3 (ABI 1.55) names the CPU: these three bytes were reserved in 2. */
    ALN_GUARD(rd_u8(&rd, &r.cpuid_fam_id)); /* 0x188 */
    ALN_GUARD(rd_u8(&rd, &r.cpuid_mod_id)); /* 0x189 */
    ALN_GUARD(rd_u8(&rd, &r.cpuid_step));   /* 0x18a */
  }
  ALN_GUARD(rd_reserved(&rd, 0x1a0 - rd_off(&rd)));              /* 0x188 or 0x18b */
  ALN_GUARD(rd_copy(&rd, r.chip_id, sizeof(r.chip_id)));         /* 0x1a0 */
  ALN_GUARD(rd_u64(&rd, &r.committed_tcb));                      /* 0x1e0 */
  ALN_GUARD(rd_u8(&rd, &r.current_build));                       /* 0x1e8 */
  ALN_GUARD(rd_u8(&rd, &r.current_minor));                       /* 0x1e9 */
  ALN_GUARD(rd_u8(&rd, &r.current_major));                       /* 0x1ea */
  ALN_GUARD(rd_reserved(&rd, 1));                                /* 0x1eb */
  ALN_GUARD(rd_u8(&rd, &r.committed_build));                     /* 0x1ec */
  ALN_GUARD(rd_u8(&rd, &r.committed_minor));                     /* 0x1ed */
  ALN_GUARD(rd_u8(&rd, &r.committed_major));                     /* 0x1ee */
  ALN_GUARD(rd_reserved(&rd, 1));                                /* 0x1ef */
  ALN_GUARD(rd_u64(&rd, &r.launch_tcb));                         /* 0x1f0 */
  ALN_GUARD(rd_reserved(&rd, ALN_SNP_SIGNED_LEN - 0x1f8));       /* 0x1f8 */
  ALN_GUARD(rd_sig_component(&rd, r.sig_r, "R"));                /* 0x2a0 */
  ALN_GUARD(rd_sig_component(&rd, r.sig_s, "S"));                /* 0x2e8 */
  ALN_GUARD(rd_reserved(&rd, SIG_AREA_LEN - 2 * SIG_FIELD_LEN)); /* 0x330 */
  if (aln_cbs_ensure_empty(&rd.c) != ALN_OK)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "bytes after the signature");
  if (out != NULL)
    *out = r;
  return ALN_OK;
}

aln_status aln_snp_report_parse(struct aln_snp_report *out, const uint8_t *data, size_t len) {
  return report_parse(out, NULL, data, len);
}

/* --- products and TCB versions ------------------------------------------------------ */

const char *aln_snp_product_name(enum aln_snp_product product) {
  const struct aln_snp_root *root = aln_snp_root_get(product);
  return root != NULL ? root->name : NULL;
}

aln_status aln_snp_product_from_name(enum aln_snp_product *out, const char *name) {
  static const enum aln_snp_product all[] = {ALN_SNP_PRODUCT_MILAN, ALN_SNP_PRODUCT_GENOA, ALN_SNP_PRODUCT_TURIN};
  ALN_ENSURE(out != NULL && name != NULL, ALN_ERR_USAGE);
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
    if (strcmp(name, aln_snp_product_name(all[i])) == 0) {
      *out = all[i];
      return ALN_OK;
    }
  }
  return ALN_ERR_USAGE;
}

/* product_of_cpuid maps a version 3 report's family and model to a product line
 * (AMD's processor programming references: Zen 3 Milan, Zen 4 Genoa and its
 * Bergamo/Siena siblings, Zen 5 Turin). */
static enum aln_snp_product product_of_cpuid(uint8_t family, uint8_t model) {
  if (family == 0x19 && model <= 0x0f)
    return ALN_SNP_PRODUCT_MILAN;
  if (family == 0x19 && ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)))
    return ALN_SNP_PRODUCT_GENOA;
  if (family == 0x1a && model <= 0x1f)
    return ALN_SNP_PRODUCT_TURIN;
  return ALN_SNP_PRODUCT_NONE;
}

/* tcb_decode splits a TCB_VERSION by the product's layout: Turin put the FMC
 * first and moved SNP down to byte 3. */
static struct aln_snp_tcb tcb_decode(uint64_t raw, enum aln_snp_product product) {
  struct aln_snp_tcb t = {0};
  uint8_t b[8];
  for (size_t i = 0; i < 8; i++)
    b[i] = (uint8_t)(raw >> (8 * i));
  if (product == ALN_SNP_PRODUCT_TURIN) {
    t.fmc = b[0];
    t.bootloader = b[1];
    t.tee = b[2];
    t.snp = b[3];
  } else {
    t.bootloader = b[0];
    t.tee = b[1];
    t.snp = b[6];
  }
  t.microcode = b[7];
  return t;
}

/* --- certificates ------------------------------------------------------------------ */

/* What the endorsement key's certificate says in AMD's extensions. */
struct endorsement {
  uint8_t spl[SPL_MAX + 1]; /* index: the last arc of 1.3.6.1.4.1.3704.1.3.<n> */
  unsigned spl_seen;        /* bit n: .3.<n> present */
  uint8_t hwid[ALN_SNP_CHIP_ID_LEN];
  size_t hwid_len;
  bool has_hwid, has_csp_id, has_product;
  char product[EXT_TEXT_MAX + 1];
};

/* Everything one verification owns, released together by vstate_cleanup. */
struct vstate {
  struct aln_snp_report r;
  const char *leaf_name;      /* "VCEK" or "VLEK" */
  X509 *leaf;                 /* the endorsement key's certificate */
  STACK_OF(X509) * supplied;  /* intermediates supplied beside the report */
  X509 *supplied_ark;         /* an ARK supplied beside the report, if any */
  X509 *ark;                  /* the trust anchor */
  STACK_OF(X509) * root_ints; /* intermediates that came with the anchor (ASK) */
  STACK_OF(X509) * chain;     /* leaf, intermediate, ARK once verified */
  struct endorsement e;
  int64_t expires_at;
};

static void vstate_cleanup(struct vstate *s) {
  X509_free(s->leaf);
  sk_X509_pop_free(s->supplied, X509_free);
  X509_free(s->supplied_ark);
  X509_free(s->ark);
  sk_X509_pop_free(s->root_ints, X509_free);
  sk_X509_pop_free(s->chain, X509_free);
  memset(s, 0, sizeof(*s));
}

/* der_cert parses exactly |len| bytes of DER into *out (caller frees). */
static aln_status der_cert(X509 **out, struct aln_refusal *why, const uint8_t *der, size_t len, const char *what) {
  const uint8_t *p = der;
  X509 *x = NULL;
  if (len > 0 && len <= CERT_FILE_MAX)
    x = d2i_X509(NULL, &p, (long)len);
  if (x == NULL || p != der + len) {
    X509_free(x);
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "the %s certificate is not one DER certificate", what);
  }
  *out = x;
  return ALN_OK;
}

/* pem_certs appends every certificate of the PEM text |pem| (|len| bytes) to |out|
 * and returns how many in *num. ALN_ERR_MALFORMED for text that is not a sequence of
 * certificates. */
static aln_status pem_certs(STACK_OF(X509) * out, size_t *num, const char *pem, size_t len) {
  aln_status st = ALN_ERR_MALFORMED;
  BIO *bio = NULL;
  *num = 0;
  if (len > CERT_FILE_MAX)
    goto out;
  bio = BIO_new_mem_buf(pem, (int)len);
  ALN_ENSURE_GOTO(st, bio != NULL, ALN_ERR_NOMEM, out);
  for (;;) {
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x == NULL) {
      /* The end of the text shows as "no start line"; anything else is damage. */
      unsigned long err = ERR_peek_last_error();
      if (*num > 0 && ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)
        st = ALN_OK;
      goto out;
    }
    if (sk_X509_push(out, x) <= 0) {
      X509_free(x);
      st = ALN_ERR_NOMEM;
      goto out;
    }
    (*num)++;
  }
out:
  ERR_clear_error();
  BIO_free(bio);
  return st;
}

/* --- the certificate table --------------------------------------------------------- */

enum table_kind { TK_OTHER, TK_VCEK, TK_VLEK, TK_ASK, TK_ARK };

static const struct {
  enum table_kind kind;
  const char *name;
  uint8_t guid[16];
} table_guids[] = {
    {TK_VCEK, "VCEK", {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd}},
    {TK_VLEK, "VLEK", {0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1}},
    {TK_ASK, "ASK", {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82}},
    {TK_ARK, "ARK", {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae}},
};

static uint32_t load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct table_entry {
  const uint8_t *guid;
  uint32_t off, len;
};

/* table_load reads the GHCB certificate table that follows the report and takes
 * the endorsement key's certificate the report names (|leaf_kind|), the ASK (or
 * ASVK) and the ARK from it. Bytes no entry covers are ignored: the kernel hands
 * over its whole page-sized buffer. */
static aln_status table_load(struct vstate *s, struct aln_refusal *why, const uint8_t *t, size_t len,
                             enum table_kind leaf_kind) {
  struct table_entry e[TABLE_ENTRIES_MAX];
  size_t num = 0;
  struct aln_cbs c;
  unsigned seen = 0;
  aln_cbs_init(&c, t, len);
  for (;;) {
    struct aln_cbs entry;
    if (aln_cbs_get_bytes(&c, &entry, TABLE_ENTRY_LEN) != ALN_OK)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "the certificate table after the report has no end entry");
    const uint8_t *guid = entry.p;
    uint32_t off = load_le32(entry.p + 16), n = load_le32(entry.p + 20);
    if (all_zero(entry.p, TABLE_ENTRY_LEN))
      break;
    if (num == TABLE_ENTRIES_MAX)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "the certificate table has more than %d entries",
                        TABLE_ENTRIES_MAX);
    e[num++] = (struct table_entry){.guid = guid, .off = off, .len = n};
  }
  if (num == 0)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "the certificate table after the report is empty");
  size_t table_end = len - c.len;
  for (size_t i = 0; i < num; i++) {
    /* A certificate lies after the entries and inside the buffer. */
    if (e[i].len == 0 || e[i].off < table_end || e[i].off > len || e[i].len > len - e[i].off)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED,
                        "certificate table entry %zu (offset %" PRIu32 ", length %" PRIu32 ") is out of bounds", i,
                        e[i].off, e[i].len);
    size_t k = 0;
    while (k < sizeof(table_guids) / sizeof(table_guids[0]) && memcmp(e[i].guid, table_guids[k].guid, 16) != 0)
      k++;
    if (k == sizeof(table_guids) / sizeof(table_guids[0]))
      continue;
    if (seen & (1u << table_guids[k].kind))
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "the certificate table names the %s twice", table_guids[k].name);
    seen |= 1u << table_guids[k].kind;
    const uint8_t *der = t + e[i].off;
    X509 *x = NULL;
    switch (table_guids[k].kind) {
    case TK_VCEK:
    case TK_VLEK:
      if (table_guids[k].kind != leaf_kind)
        break; /* a host may supply both; the report says which one signed */
      ALN_GUARD(der_cert(&s->leaf, why, der, e[i].len, table_guids[k].name));
      break;
    case TK_ASK:
      ALN_GUARD(der_cert(&x, why, der, e[i].len, "ASK"));
      if (sk_X509_push(s->supplied, x) <= 0) {
        X509_free(x);
        return aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
      }
      break;
    case TK_ARK:
      ALN_GUARD(der_cert(&s->supplied_ark, why, der, e[i].len, "ARK"));
      break;
    default:
      break;
    }
  }
  return ALN_OK;
}

/* --- the certificate cache directory --------------------------------------------- */

/* dir_read reads DIR/NAME into a new buffer (caller frees), or sets *out to NULL if
 * the file does not exist. */
static aln_status dir_read(uint8_t **out, size_t *out_len, struct aln_refusal *why, const char *dir, const char *name) {
  char path[4096];
  int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
  *out = NULL;
  *out_len = 0;
  if (n < 0 || (size_t)n >= sizeof(path))
    return aln_refuse(why, ALN_ERR_USAGE, "the certificate directory path is too long");
  aln_status st = aln_file_read_public(out, out_len, path, CERT_FILE_MAX);
  if (st == ALN_ERR_NOT_FOUND)
    return ALN_OK;
  if (st == ALN_ERR_NOMEM)
    return aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
  if (st != ALN_OK && st != ALN_ERR_TOO_LARGE)
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "cannot read %s from the certificate directory", name);
  if (st == ALN_OK && *out_len > 0)
    return ALN_OK;
  free(*out);
  *out = NULL;
  *out_len = 0;
  return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "%s in the certificate directory is %s", name,
                    st == ALN_OK ? "empty" : "larger than one certificate chain");
}

/* dir_load takes the endorsement key's certificate and optional ASK/ASVK and ARK
 * from the cache directory. */
static aln_status dir_load(struct vstate *s, struct aln_refusal *why, const char *dir, enum table_kind leaf_kind) {
  const char *leaf_file = leaf_kind == TK_VCEK ? "vcek.der" : "vlek.der";
  const char *ask_file = leaf_kind == TK_VCEK ? "ask.pem" : "asvk.pem";
  uint8_t *buf = NULL;
  size_t len, num;
  aln_status st;
  if (dir == NULL)
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN,
                      "the report comes without certificates and no certificate directory was given");
  ALN_GUARD_GOTO(st, dir_read(&buf, &len, why, dir, leaf_file), out);
  if (buf == NULL) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "no %s in the certificate directory", leaf_file);
    goto out;
  }
  ALN_GUARD_GOTO(st, der_cert(&s->leaf, why, buf, len, s->leaf_name), out);
  free(buf);
  buf = NULL;

  ALN_GUARD_GOTO(st, dir_read(&buf, &len, why, dir, ask_file), out);
  if (buf != NULL && pem_certs(s->supplied, &num, (const char *)buf, len) != ALN_OK) {
    st = aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "%s in the certificate directory is not PEM certificates", ask_file);
    goto out;
  }
  free(buf);
  buf = NULL;

  ALN_GUARD_GOTO(st, dir_read(&buf, &len, why, dir, "ark.pem"), out);
  if (buf != NULL) {
    STACK_OF(X509) *arks = sk_X509_new_null();
    ALN_ENSURE_GOTO(st, arks != NULL, aln_refuse(why, ALN_ERR_NOMEM, "out of memory"), out);
    if (pem_certs(arks, &num, (const char *)buf, len) != ALN_OK || num != 1) {
      sk_X509_pop_free(arks, X509_free);
      st = aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "ark.pem in the certificate directory is not one certificate");
      goto out;
    }
    s->supplied_ark = sk_X509_pop(arks);
    sk_X509_free(arks);
  }
  st = ALN_OK;
out:
  free(buf);
  return st;
}

/* --- trust roots and the chain ---------------------------------------------------- */

static bool der_sha256_is(X509 *x, const uint8_t want[32]) {
  uint8_t *der = NULL, md[SHA256_DIGEST_LENGTH];
  int len = i2d_X509(x, &der);
  bool ok = len > 0 && SHA256(der, (size_t)len, md) != NULL && CRYPTO_memcmp(md, want, sizeof(md)) == 0;
  OPENSSL_free(der);
  return ok;
}

/* The pinned roots of each product, parsed and checked against their digests once
 * per process: parsing two RSA-4096 certificates is a quarter of a verification.
 * Read-only after pinned_init; OpenSSL 3 certificates may be shared between threads
 * (the fields they cache lazily are locked). If the one parse fails (out of
 * memory), each verification parses the PEM itself instead. */
static CRYPTO_ONCE pinned_once = CRYPTO_ONCE_STATIC_INIT;
static struct { X509 *ark, *ask; } pinned[ALN_SNP_PRODUCT_TURIN + 1];

static void pinned_init(void) {
  for (int p = ALN_SNP_PRODUCT_MILAN; p <= ALN_SNP_PRODUCT_TURIN; p++) {
    const struct aln_snp_root *root = aln_snp_root_get((enum aln_snp_product)p);
    STACK_OF(X509) *sk = sk_X509_new_null();
    size_t num;
    if (root != NULL && sk != NULL && pem_certs(sk, &num, root->pem, strlen(root->pem)) == ALN_OK && num == 2 &&
        der_sha256_is(sk_X509_value(sk, 0), root->ask_sha256) &&
        der_sha256_is(sk_X509_value(sk, 1), root->ark_sha256)) {
      pinned[p].ask = sk_X509_shift(sk);
      pinned[p].ark = sk_X509_shift(sk);
    }
    sk_X509_pop_free(sk, X509_free);
  }
}

/* roots_cached takes new references to the parsed pinned roots of |product|;
 * false if there are none (the caller then parses the PEM). */
static bool roots_cached(struct vstate *s, enum aln_snp_product product) {
  if (CRYPTO_THREAD_run_once(&pinned_once, pinned_init) != 1 || pinned[product].ark == NULL)
    return false;
  s->root_ints = sk_X509_new_null();
  if (s->root_ints == NULL || X509_up_ref(pinned[product].ask) != 1)
    return false;
  if (sk_X509_push(s->root_ints, pinned[product].ask) <= 0) {
    X509_free(pinned[product].ask);
    return false;
  }
  if (X509_up_ref(pinned[product].ark) != 1)
    return false;
  s->ark = pinned[product].ark;
  return true;
}

/* roots_load parses the trust roots: the policy's own PEM, or the pinned ones of
 * its product (whose DER must hash to the pinned values). The one self-issued
 * certificate is the anchor; the rest are intermediates the path may use. */
static aln_status roots_load(struct vstate *s, struct aln_refusal *why, const struct aln_snp_policy *policy,
                             const struct aln_snp_root *root) {
  if (policy->roots_pem == NULL && roots_cached(s, policy->product))
    return ALN_OK;
  const char *pem = policy->roots_pem != NULL ? policy->roots_pem : root->pem;
  size_t num;
  sk_X509_pop_free(s->root_ints, X509_free); /* what roots_cached may have left */
  s->root_ints = sk_X509_new_null();
  if (s->root_ints == NULL)
    return aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
  if (pem_certs(s->root_ints, &num, pem, strlen(pem)) != ALN_OK)
    return aln_refuse(why, ALN_ERR_USAGE, "the trust roots are not PEM certificates");
  X509 *ark = NULL;
  for (int i = 0; i < sk_X509_num(s->root_ints); i++) {
    X509 *x = sk_X509_value(s->root_ints, i);
    if (X509_check_issued(x, x) != X509_V_OK)
      continue;
    if (ark != NULL)
      return aln_refuse(why, ALN_ERR_USAGE, "the trust roots hold more than one self-signed certificate");
    ark = x;
  }
  if (ark == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "the trust roots hold no self-signed certificate (ARK)");
  /* Moved out of the stack: s->ark and s->root_ints each own what they hold. */
  s->ark = sk_X509_delete_ptr(s->root_ints, ark);
  if (policy->roots_pem == NULL && (sk_X509_num(s->root_ints) != 1 || !der_sha256_is(s->ark, root->ark_sha256) ||
                                    !der_sha256_is(sk_X509_value(s->root_ints, 0), root->ask_sha256)))
    return aln_refuse(why, ALN_ERR_INTERNAL, "the pinned %s roots do not match their pinned digests", root->name);
  return ALN_OK;
}

/* sig_is_pss_sha384 says whether |x| is signed with RSASSA-PSS over SHA-384, the
 * only algorithm AMD uses on the chain: OpenSSL would verify others too. */
static bool sig_is_pss_sha384(X509 *x) {
  int md_nid = NID_undef, pk_nid = NID_undef;
  return X509_get_signature_info(x, &md_nid, &pk_nid, NULL, NULL) == 1 && md_nid == NID_sha384 &&
         pk_nid == EVP_PKEY_RSA_PSS;
}

/* days_from_civil counts days from 1970-01-01 to a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static bool asn1_time_unix(const ASN1_TIME *t, int64_t *out) {
  struct tm tm;
  if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
    return false;
  *out = days_from_civil((int64_t)tm.tm_year + 1900, (int64_t)tm.tm_mon + 1, tm.tm_mday) * 86400 +
         (int64_t)tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
  return true;
}

/* fmt_time writes |t| as an RFC 3339 UTC time for a refusal message. */
static const char *fmt_time(char buf[32], int64_t t) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (gmtime_r(&tt, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, 32, "%" PRId64, t);
  return buf;
}

/* chain_verify finds the path leaf -> intermediate -> anchor with OpenSSL, then
 * holds each certificate on it to AMD's algorithms and to ctx->now. */
static aln_status chain_verify(struct vstate *s, struct aln_refusal *why, const char *anchor, int64_t now) {
  aln_status st;
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *vctx = X509_STORE_CTX_new();
  STACK_OF(X509) *untrusted = sk_X509_new_null();
  const char *inter_name = s->r.signing_key == ALN_SNP_KEY_VLEK ? "ASVK" : "ASK";
  if (store == NULL || vctx == NULL || untrusted == NULL || X509_STORE_add_cert(store, s->ark) != 1) {
    st = aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < sk_X509_num(s->root_ints); i++)
    ALN_ENSURE_GOTO(st, sk_X509_push(untrusted, sk_X509_value(s->root_ints, i)) > 0,
                    aln_refuse(why, ALN_ERR_NOMEM, "out of memory"), out);
  for (int i = 0; i < sk_X509_num(s->supplied); i++)
    ALN_ENSURE_GOTO(st, sk_X509_push(untrusted, sk_X509_value(s->supplied, i)) > 0,
                    aln_refuse(why, ALN_ERR_NOMEM, "out of memory"), out);
  if (X509_STORE_CTX_init(vctx, store, s->leaf, untrusted) != 1) {
    st = aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
    goto out;
  }
  /* Times are checked below against ctx->now, inclusive at both ends and with a
   * message naming the certificate; OpenSSL would use its own clock. Exactly one
   * intermediate: AMD's chains are three certificates long. */
  X509_STORE_CTX_set_flags(vctx, X509_V_FLAG_NO_CHECK_TIME);
  X509_STORE_CTX_set_depth(vctx, 1);
  if (X509_verify_cert(vctx) != 1) {
    int err = X509_STORE_CTX_get_error(vctx);
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the %s does not chain to the %s: %s", s->leaf_name, anchor,
                    X509_verify_cert_error_string(err));
    goto out;
  }
  s->chain = X509_STORE_CTX_get1_chain(vctx);
  if (s->chain == NULL || sk_X509_num(s->chain) != 3 || X509_cmp(sk_X509_value(s->chain, 2), s->ark) != 0) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the %s chain is not %s -> %s -> ARK", s->leaf_name, s->leaf_name,
                    inter_name);
    goto out;
  }
  const char *names[3] = {s->leaf_name, inter_name, "ARK"};
  for (int i = 0; i < 2; i++) {
    if (!sig_is_pss_sha384(sk_X509_value(s->chain, i))) {
      st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the %s is not signed with RSASSA-PSS SHA-384", names[i]);
      goto out;
    }
  }
  s->expires_at = INT64_MAX;
  for (int i = 0; i < 3; i++) {
    X509 *x = sk_X509_value(s->chain, i);
    int64_t nb, na;
    char t1[32], t2[32];
    if (!asn1_time_unix(X509_get0_notBefore(x), &nb) || !asn1_time_unix(X509_get0_notAfter(x), &na)) {
      st = aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "the %s has an unreadable validity period", names[i]);
      goto out;
    }
    if (now < nb) {
      st = aln_refuse(why, ALN_ERR_ATTEST_EXPIRED, "the %s is not valid before %s (now %s)", names[i], fmt_time(t1, nb),
                      fmt_time(t2, now));
      goto out;
    }
    if (now > na) {
      st = aln_refuse(why, ALN_ERR_ATTEST_EXPIRED, "the %s expired at %s (now %s)", names[i], fmt_time(t1, na),
                      fmt_time(t2, now));
      goto out;
    }
    if (na < s->expires_at)
      s->expires_at = na;
  }
  st = ALN_OK;
out:
  sk_X509_free(untrusted); /* borrowed pointers */
  X509_STORE_CTX_free(vctx);
  X509_STORE_free(store);
  return st;
}

/* --- the endorsement key's certificate ---------------------------------------------- */

/* ext_u8 reads an extension value that is exactly one DER INTEGER in 0..255. */
static bool ext_u8(const ASN1_OCTET_STRING *v, uint8_t *out) {
  const uint8_t *p = ASN1_STRING_get0_data(v), *q = p;
  long len = ASN1_STRING_length(v);
  ASN1_INTEGER *i = d2i_ASN1_INTEGER(NULL, &q, len);
  int64_t n = -1;
  bool ok = i != NULL && q == p + len && ASN1_INTEGER_get_int64(&n, i) == 1 && n >= 0 && n <= 255;
  ASN1_INTEGER_free(i);
  if (ok)
    *out = (uint8_t)n;
  return ok;
}

/* ext_text reads an extension value that is exactly one short, printable DER
 * IA5String into |out|. */
static bool ext_text(const ASN1_OCTET_STRING *v, char out[EXT_TEXT_MAX + 1]) {
  const uint8_t *p = ASN1_STRING_get0_data(v), *q = p;
  long len = ASN1_STRING_length(v);
  ASN1_IA5STRING *s = d2i_ASN1_IA5STRING(NULL, &q, len);
  bool ok = s != NULL && q == p + len && ASN1_STRING_length(s) > 0 && ASN1_STRING_length(s) <= EXT_TEXT_MAX;
  if (ok) {
    const uint8_t *c = ASN1_STRING_get0_data(s);
    size_t n = (size_t)ASN1_STRING_length(s);
    for (size_t i = 0; i < n && ok; i++)
      ok = c[i] >= 0x20 && c[i] < 0x7f;
    if (ok) {
      memcpy(out, c, n);
      out[n] = '\0';
    }
  }
  ASN1_IA5STRING_free(s);
  return ok;
}

/* ext_hwid reads the hwID: AMD's KDS writes the raw bytes as the extension value,
 * with no DER header. A DER OCTET STRING around them is accepted too (told apart by
 * its length), should AMD ever add one. */
static bool ext_hwid(const ASN1_OCTET_STRING *v, uint8_t out[ALN_SNP_CHIP_ID_LEN], size_t want) {
  const uint8_t *p = ASN1_STRING_get0_data(v), *q = p;
  long len = ASN1_STRING_length(v);
  if (len == (long)want) {
    memcpy(out, p, want);
    return true;
  }
  ASN1_OCTET_STRING *o = d2i_ASN1_OCTET_STRING(NULL, &q, len);
  bool ok = o != NULL && q == p + len && ASN1_STRING_length(o) == (int)want;
  if (ok)
    memcpy(out, ASN1_STRING_get0_data(o), want);
  ASN1_OCTET_STRING_free(o);
  return ok;
}

/* endorsement_parse reads AMD's extensions of the leaf certificate; each may
 * appear once. Turin's hwID is the first 8 bytes of CHIP_ID, the others' all 64. */
static aln_status endorsement_parse(struct vstate *s, struct aln_refusal *why, enum aln_snp_product product) {
  struct endorsement *e = &s->e;
  const size_t prefix_len = strlen(KDS_OID_PREFIX);
  memset(e, 0, sizeof(*e));
  for (int i = 0; i < X509_get_ext_count(s->leaf); i++) {
    X509_EXTENSION *ext = X509_get_ext(s->leaf, i);
    char oid[80];
    int n = OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
    if (n <= 0 || (size_t)n >= sizeof(oid) || strncmp(oid, KDS_OID_PREFIX, prefix_len) != 0)
      continue;
    const char *arc = oid + prefix_len;
    const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
    bool dup = false, ok = true;
    if (strcmp(arc, "2") == 0) {
      dup = e->has_product;
      e->has_product = true;
      ok = ext_text(v, e->product);
    } else if (arc[0] == '3' && arc[1] == '.' && arc[2] >= '1' && arc[2] <= '0' + SPL_MAX && arc[3] == '\0') {
      unsigned k = (unsigned)(arc[2] - '0');
      dup = (e->spl_seen & (1u << k)) != 0;
      e->spl_seen |= 1u << k;
      ok = ext_u8(v, &e->spl[k]);
    } else if (strcmp(arc, "4") == 0) {
      dup = e->has_hwid;
      e->has_hwid = true;
      e->hwid_len = product == ALN_SNP_PRODUCT_TURIN ? 8 : ALN_SNP_CHIP_ID_LEN;
      ok = ext_hwid(v, e->hwid, e->hwid_len);
    } else if (strcmp(arc, "5") == 0) {
      char csp[EXT_TEXT_MAX + 1];
      dup = e->has_csp_id;
      e->has_csp_id = true;
      ok = ext_text(v, csp);
    }
    /* structVersion (.1) and anything AMD adds later do not enter the appraisal. */
    if (dup)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "the %s repeats extension %.80s", s->leaf_name, oid);
    if (!ok)
      return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "the %s's extension %.80s is malformed", s->leaf_name, oid);
  }
  return ALN_OK;
}

/* tcb_endorsed composes the TCB_VERSION the leaf certificate was issued for. */
static aln_status tcb_endorsed(uint64_t *out, const struct vstate *s, struct aln_refusal *why,
                               enum aln_snp_product product) {
  const struct endorsement *e = &s->e;
  unsigned need = 1u << SPL_BOOTLOADER | 1u << SPL_TEE | 1u << SPL_SNP | 1u << SPL_MICROCODE;
  uint8_t b[8] = {0};
  if (product == ALN_SNP_PRODUCT_TURIN)
    need |= 1u << SPL_FMC;
  if ((e->spl_seen & need) != need)
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the %s lacks a TCB extension (1.3.6.1.4.1.3704.1.3.x)", s->leaf_name);
  if (product == ALN_SNP_PRODUCT_TURIN) {
    b[0] = e->spl[SPL_FMC];
    b[1] = e->spl[SPL_BOOTLOADER];
    b[2] = e->spl[SPL_TEE];
    b[3] = e->spl[SPL_SNP];
  } else {
    b[0] = e->spl[SPL_BOOTLOADER];
    b[1] = e->spl[SPL_TEE];
    for (unsigned k = 0; k < 4; k++) /* reserved bytes 2..5, absent = 0 */
      b[2 + k] = e->spl[SPL_RESERVED4 + k];
    b[6] = e->spl[SPL_SNP];
  }
  b[7] = e->spl[SPL_MICROCODE];
  *out = 0;
  for (size_t i = 8; i-- > 0;)
    *out = *out << 8 | b[i];
  return ALN_OK;
}

/* endorsement_check ties the verified report to its certificate: the right kind of
 * key, the policy's product, the TCB the key was derived for and, for a VCEK, the
 * chip it belongs to. A VCEK is specific to one chip at one TCB, so a report whose
 * TCB or chip differs from its certificate's was not made where it claims. */
static aln_status endorsement_check(struct vstate *s, struct aln_refusal *why, enum aln_snp_product product) {
  const struct endorsement *e = &s->e;
  const char *want = aln_snp_product_name(product);
  uint64_t endorsed = 0;
  ALN_GUARD(endorsement_parse(s, why, product));
  if (s->r.signing_key == ALN_SNP_KEY_VCEK && (!e->has_hwid || e->has_csp_id))
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the VCEK certificate is not a VCEK (it needs hwID, no cspId)");
  if (s->r.signing_key == ALN_SNP_KEY_VLEK && (!e->has_csp_id || e->has_hwid))
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the VLEK certificate is not a VLEK (it needs cspId, no hwID)");
  size_t stem = e->has_product ? strcspn(e->product, "-") : 0;
  if (!e->has_product || stem != strlen(want) || memcmp(e->product, want, stem) != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the %s is for product \"%s\", the policy for %s", s->leaf_name,
                      e->has_product ? e->product : "(none)", want);
  ALN_GUARD(tcb_endorsed(&endorsed, s, why, product));
  if (endorsed != s->r.reported_tcb)
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN,
                      "the %s was issued for TCB 0x%016" PRIx64 ", REPORTED_TCB is 0x%016" PRIx64, s->leaf_name,
                      endorsed, s->r.reported_tcb);
  if (s->r.signing_key == ALN_SNP_KEY_VCEK) {
    if (all_zero(s->r.chip_id, sizeof(s->r.chip_id)))
      return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "CHIP_ID is masked (all zero): the VCEK cannot be tied to it");
    if (CRYPTO_memcmp(s->r.chip_id, e->hwid, e->hwid_len) != 0)
      return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "CHIP_ID is not the hwID of the VCEK");
  }
  return ALN_OK;
}

/* leaf_key returns the leaf's public key if it is ECDSA P-384, the only key AMD's
 * firmware signs reports with. */
static aln_status leaf_key(EVP_PKEY **out, const struct vstate *s, struct aln_refusal *why) {
  EVP_PKEY *pub = X509_get0_pubkey(s->leaf);
  char group[32];
  size_t group_len = 0;
  if (pub == NULL || !EVP_PKEY_is_a(pub, "EC") || EVP_PKEY_get_group_name(pub, group, sizeof(group), &group_len) != 1 ||
      strcmp(group, "secp384r1") != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the %s's key is not ECDSA P-384", s->leaf_name);
  *out = pub;
  return ALN_OK;
}

/* report_sig_check verifies ECDSA P-384 SHA-384 over the report's first 0x2a0
 * bytes with the leaf's key. */
static aln_status report_sig_check(const struct vstate *s, struct aln_refusal *why, const uint8_t *report) {
  aln_status st;
  EVP_PKEY *pub = NULL;
  ECDSA_SIG *sig = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(s->r.sig_r, ALN_SNP_SIG_COMPONENT_LEN, NULL);
  BIGNUM *sv = BN_bin2bn(s->r.sig_s, ALN_SNP_SIG_COMPONENT_LEN, NULL);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  uint8_t *der = NULL;
  int der_len;
  ALN_GUARD_GOTO(st, leaf_key(&pub, s, why), out);
  if (sig == NULL || r == NULL || sv == NULL || md == NULL || ECDSA_SIG_set0(sig, r, sv) != 1) {
    st = aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
    goto out;
  }
  r = sv = NULL; /* owned by sig now */
  der_len = i2d_ECDSA_SIG(sig, &der);
  if (der_len <= 0 || EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, pub) != 1) {
    st = aln_refuse(why, ALN_ERR_NOMEM, "cannot set up the signature check");
    goto out;
  }
  /* 0 is a bad signature, < 0 one that does not decode: both fail closed. */
  if (EVP_DigestVerify(md, der, (size_t)der_len, report, ALN_SNP_SIGNED_LEN) != 1) {
    st = aln_refuse(why, ALN_ERR_ATTEST_SIG, "the report's signature does not verify with the %s", s->leaf_name);
    goto out;
  }
  st = ALN_OK;
out:
  OPENSSL_free(der);
  EVP_MD_CTX_free(md);
  BN_free(r);
  BN_free(sv);
  ECDSA_SIG_free(sig);
  return st;
}

/* --- appraisal ----------------------------------------------------------------------- */

/* tcb_at_least refuses the first component of |have| below |min|. */
static aln_status tcb_at_least(struct aln_refusal *why, struct aln_snp_tcb have, struct aln_snp_tcb min,
                               enum aln_snp_product product) {
  const struct {
    const char *name;
    uint8_t have, min;
  } parts[] = {
      {"fmc", have.fmc, product == ALN_SNP_PRODUCT_TURIN ? min.fmc : 0},
      {"bootloader", have.bootloader, min.bootloader},
      {"tee", have.tee, min.tee},
      {"snp", have.snp, min.snp},
      {"microcode", have.microcode, min.microcode},
  };
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
    if (parts[i].have < parts[i].min)
      return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "REPORTED_TCB %s SVN %u is below the policy's minimum %u",
                        parts[i].name, parts[i].have, parts[i].min);
  return ALN_OK;
}

/* appraise holds the authenticated report to the policy and the expected nonce. */
static aln_status appraise(const struct vstate *s, struct aln_refusal *why, const struct aln_snp_policy *policy,
                           const struct aln_verify_ctx *ctx) {
  const struct aln_snp_report *r = &s->r;
  const char *name = aln_snp_product_name(policy->product);
  if (r->version >= 3 && product_of_cpuid(r->cpuid_fam_id, r->cpuid_mod_id) != policy->product)
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "the report's CPU (family 0x%02x, model 0x%02x) is not a %s",
                      r->cpuid_fam_id, r->cpuid_mod_id, name);
  if (ctx->nonce != NULL) {
    /* REPORT_DATA is 64 bytes the guest chose: the nonce, then zeros. */
    uint8_t want[ALN_SNP_REPORT_DATA_LEN] = {0};
    if (ctx->nonce_len > sizeof(want))
      return aln_refuse(why, ALN_ERR_ATTEST_BINDING, "a nonce of %zu bytes cannot be in REPORT_DATA (64)",
                        ctx->nonce_len);
    memcpy(want, ctx->nonce, ctx->nonce_len);
    if (CRYPTO_memcmp(want, r->report_data, sizeof(want)) != 0)
      return aln_refuse(why, ALN_ERR_ATTEST_BINDING, "REPORT_DATA is not the expected nonce followed by zeros");
  }
  bool allowed = false;
  for (size_t i = 0; i < policy->num_measurements && !allowed; i++)
    allowed = memcmp(policy->measurements[i], r->measurement, ALN_SNP_MEASUREMENT_LEN) == 0;
  if (!allowed) {
    char hex[2 * ALN_SNP_MEASUREMENT_LEN + 1];
    ALN_GUARD(aln_hex_encode(hex, sizeof(hex), r->measurement, sizeof(r->measurement)));
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "MEASUREMENT %s is not allowed by the policy", hex);
  }
  if ((r->policy & ALN_SNP_POLICY_DEBUG) != 0 && !policy->allow_debug)
    return aln_refuse(why, ALN_ERR_ATTEST_DEBUG, "the guest policy 0x%" PRIx64 " allows debugging", r->policy);
  unsigned vmpls = policy->vmpl_mask != 0 ? policy->vmpl_mask : 1u;
  if ((vmpls & (1u << r->vmpl)) == 0)
    return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "the report was requested at VMPL %" PRIu32 ", not allowed", r->vmpl);
  return tcb_at_least(why, tcb_decode(r->reported_tcb, policy->product), policy->min_tcb, policy->product);
}

/* claims_fill writes the appraised claims; |out| is touched only on success. */
static aln_status claims_fill(struct aln_claims *out, struct aln_refusal *why, const struct vstate *s,
                              enum aln_snp_product product, int nonce_checked) {
  const struct aln_snp_report *r = &s->r;
  struct aln_claims c;
  char report_data[2 * ALN_SNP_REPORT_DATA_LEN + 1], chip_id[2 * ALN_SNP_CHIP_ID_LEN + 1];
  char host_data[2 * ALN_SNP_HOST_DATA_LEN + 1], policy[2 + 16 + 1];
  struct aln_snp_tcb tcb = tcb_decode(r->reported_tcb, product);
  memset(&c, 0, sizeof(c));
  snprintf(c.kind, sizeof(c.kind), "%s", ALN_SNP_KIND);
  c.debug = (r->policy & ALN_SNP_POLICY_DEBUG) != 0;
  c.nonce_checked = nonce_checked;
  c.issued_at = 0;
  c.expires_at = s->expires_at;
  ALN_GUARD(aln_hex_encode(c.measurement, sizeof(c.measurement), r->measurement, sizeof(r->measurement)));
  ALN_GUARD(aln_hex_encode(report_data, sizeof(report_data), r->report_data, sizeof(r->report_data)));
  ALN_GUARD(aln_hex_encode(chip_id, sizeof(chip_id), r->chip_id, sizeof(r->chip_id)));
  ALN_GUARD(aln_hex_encode(host_data, sizeof(host_data), r->host_data, sizeof(r->host_data)));
  snprintf(policy, sizeof(policy), "0x%" PRIx64, r->policy);
  json_t *tcb_json = json_pack("{s:i, s:i, s:i, s:i}", "bootloader", tcb.bootloader, "tee", tcb.tee, "snp", tcb.snp,
                               "microcode", tcb.microcode);
  if (tcb_json != NULL && product == ALN_SNP_PRODUCT_TURIN &&
      json_object_set_new(tcb_json, "fmc", json_integer(tcb.fmc)) != 0) {
    json_decref(tcb_json);
    tcb_json = NULL;
  }
  c.detail =
      json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:s, s:s}", "version", (json_int_t)r->version, "product",
                aln_snp_product_name(product), "signing_key", r->signing_key == ALN_SNP_KEY_VLEK ? "vlek" : "vcek",
                "report_data", report_data, "policy", policy, "vmpl", (json_int_t)r->vmpl, "guest_svn",
                (json_int_t)r->guest_svn, "reported_tcb", tcb_json, "chip_id", chip_id, "host_data", host_data);
  if (c.detail == NULL)
    return aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
  *out = c;
  return ALN_OK;
}

/* --- the verifier -------------------------------------------------------------------- */

aln_status aln_snp_verify(struct aln_claims *out, struct aln_refusal *why, const uint8_t *ev, size_t len,
                          const struct aln_snp_policy *policy, const struct aln_verify_ctx *ctx) {
  if (out == NULL || ev == NULL || policy == NULL || ctx == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "missing argument");
  const struct aln_snp_root *root = aln_snp_root_get(policy->product);
  if (root == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "the policy names no AMD product (Milan, Genoa or Turin)");
  if (policy->num_measurements > 0 && policy->measurements == NULL)
    return aln_refuse(why, ALN_ERR_USAGE, "the policy counts measurements it does not hold");
  if (policy->vmpl_mask > 0xfu)
    return aln_refuse(why, ALN_ERR_USAGE, "the policy allows a VMPL above 3");
  if ((ctx->nonce == NULL) != (ctx->nonce_len == 0))
    return aln_refuse(why, ALN_ERR_USAGE, "an empty nonce binds nothing: pass NULL to skip the check");
  if (len > ALN_SNP_EVIDENCE_MAX)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "evidence of %zu bytes is over the %d-byte limit", len,
                      ALN_SNP_EVIDENCE_MAX);
  if (len < ALN_SNP_REPORT_LEN)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "evidence of %zu bytes is shorter than one report (%d)", len,
                      ALN_SNP_REPORT_LEN);

  aln_status st;
  struct vstate s;
  char anchor[40];
  memset(&s, 0, sizeof(s));
  ALN_GUARD_GOTO(st, report_parse(&s.r, why, ev, ALN_SNP_REPORT_LEN), out);
  /* A masked chip key leaves a VCEK report's signature zero: unsigned too. */
  if (s.r.signing_key == ALN_SNP_KEY_NONE || (s.r.signing_key == ALN_SNP_KEY_VCEK && s.r.mask_chip_key)) {
    st = aln_refuse(why, ALN_ERR_ATTEST_SIG, "the report is not signed (%s)",
                    s.r.mask_chip_key ? "MASK_CHIP_KEY" : "SIGNING_KEY none");
    goto out;
  }
  s.leaf_name = s.r.signing_key == ALN_SNP_KEY_VLEK ? "VLEK" : "VCEK";
  enum table_kind leaf_kind = s.r.signing_key == ALN_SNP_KEY_VLEK ? TK_VLEK : TK_VCEK;
  s.supplied = sk_X509_new_null();
  ALN_ENSURE_GOTO(st, s.supplied != NULL, aln_refuse(why, ALN_ERR_NOMEM, "out of memory"), out);
  if (len > ALN_SNP_REPORT_LEN) {
    ALN_GUARD_GOTO(st, table_load(&s, why, ev + ALN_SNP_REPORT_LEN, len - ALN_SNP_REPORT_LEN, leaf_kind), out);
    ALN_ENSURE_GOTO(st, s.leaf != NULL,
                    aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the certificate table has no %s", s.leaf_name), out);
  } else {
    ALN_GUARD_GOTO(st, dir_load(&s, why, ctx->certs_dir, leaf_kind), out);
  }

  ALN_GUARD_GOTO(st, roots_load(&s, why, policy, root), out);
  if (policy->roots_pem != NULL)
    snprintf(anchor, sizeof(anchor), "policy's ARK");
  else
    snprintf(anchor, sizeof(anchor), "pinned ARK-%s", root->name);
  /* A supplied ARK is never used; one that differs means the certificates were
   * collected for another product or are forged, and saying so beats a path error. */
  if (s.supplied_ark != NULL && X509_cmp(s.supplied_ark, s.ark) != 0) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "the ARK supplied with the report is not the %s", anchor);
    goto out;
  }
  ALN_GUARD_GOTO(st, chain_verify(&s, why, anchor, ctx->now), out);
  ALN_GUARD_GOTO(st, report_sig_check(&s, why, ev), out);
  ALN_GUARD_GOTO(st, endorsement_check(&s, why, policy->product), out);
  ALN_GUARD_GOTO(st, appraise(&s, why, policy, ctx), out);
  ALN_GUARD_GOTO(st, claims_fill(out, why, &s, policy->product, ctx->nonce != NULL), out);
  st = ALN_OK;
out:
  vstate_cleanup(&s);
  ERR_clear_error();
  return st;
}
