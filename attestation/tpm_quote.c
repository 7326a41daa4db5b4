/* Evidence kind "tpm": the container codec and the verifier of TPM 2.0 quotes.
 * The TPM structures inside the container are read with the TSS2 MU unmarshallers,
 * each bounded by its field's length; every one must then marshal back to exactly
 * the bytes it came from, so nothing the unmarshaller skipped or normalised can
 * differ between what was signed and what is appraised. Nothing in the quote is
 * trusted before the AK is found enrolled and its signature checks. */
#include "attestation/tpm_quote.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include "attestation/tpm_cred.h"
#include "proto/cbs.h"
#include "proto/keyfile.h"

#define SHA256_LEN 32
#define TPML_DIGEST_MAX 8 /* TPML_DIGEST holds at most eight digests */
#define NAME_SHA256_LEN (2 + SHA256_LEN)
#define P256_LEN 32

/* Restricted signing, fixed to its TPM, generated there: what makes a key an AK. */
#define AK_REQUIRED                                                                                                    \
  (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_RESTRICTED |         \
   TPMA_OBJECT_SIGN_ENCRYPT)

/* ---- hash algorithms ------------------------------------------------------------ */

size_t aln_tpm_hash_len(TPMI_ALG_HASH alg) {
  switch (alg) {
  case TPM2_ALG_SHA1:
    return 20;
  case TPM2_ALG_SHA256:
    return 32;
  case TPM2_ALG_SHA384:
    return 48;
  case TPM2_ALG_SHA512:
    return 64;
  default:
    return 0;
  }
}

const char *aln_tpm_hash_name(TPMI_ALG_HASH alg) {
  switch (alg) {
  case TPM2_ALG_SHA1:
    return "sha1";
  case TPM2_ALG_SHA256:
    return "sha256";
  case TPM2_ALG_SHA384:
    return "sha384";
  case TPM2_ALG_SHA512:
    return "sha512";
  default:
    return NULL;
  }
}

static const EVP_MD *hash_md(TPMI_ALG_HASH alg) {
  switch (alg) {
  case TPM2_ALG_SHA1:
    return EVP_sha1();
  case TPM2_ALG_SHA256:
    return EVP_sha256();
  case TPM2_ALG_SHA384:
    return EVP_sha384();
  case TPM2_ALG_SHA512:
    return EVP_sha512();
  default:
    return NULL;
  }
}

/* ---- exact, canonical unmarshalling ------------------------------------------------ */

static aln_status mu_status(TSS2_RC rc) {
  return rc == TSS2_MU_RC_INSUFFICIENT_BUFFER ? ALN_ERR_TRUNCATED : ALN_ERR_MALFORMED;
}

/* DEFINE_MU_GET(type) defines get_<type>(cbs, dst): unmarshal one |type| from the
 * front of |cbs|, require it to marshal back to exactly the bytes consumed, and
 * advance past them. The scratch buffer is as large as the whole container, so a
 * structure that marshals longer than it was is refused too. */
#define DEFINE_MU_GET(type)                                                                                            \
  static aln_status get_##type(struct aln_cbs *cbs, type *dst) {                                                       \
    uint8_t again[ALN_TPM_QUOTE_MAX];                                                                                  \
    size_t off = 0, again_len = 0;                                                                                     \
    memset(dst, 0, sizeof(*dst));                                                                                      \
    ALN_ENSURE(cbs->len > 0, ALN_ERR_TRUNCATED);                                                                       \
    TSS2_RC rc = Tss2_MU_##type##_Unmarshal(cbs->p, cbs->len, &off, dst);                                              \
    if (rc != TSS2_RC_SUCCESS) {                                                                                       \
      memset(dst, 0, sizeof(*dst));                                                                                    \
      return mu_status(rc);                                                                                            \
    }                                                                                                                  \
    ALN_ENSURE(off > 0 && off <= cbs->len, ALN_ERR_MALFORMED);                                                         \
    if (Tss2_MU_##type##_Marshal(dst, again, off, &again_len) != TSS2_RC_SUCCESS || again_len != off ||                \
        memcmp(again, cbs->p, off) != 0) {                                                                             \
      memset(dst, 0, sizeof(*dst));                                                                                    \
      return ALN_ERR_MALFORMED;                                                                                        \
    }                                                                                                                  \
    return aln_cbs_skip(cbs, off);                                                                                     \
  }

DEFINE_MU_GET(TPMS_ATTEST)
DEFINE_MU_GET(TPMT_SIGNATURE)
DEFINE_MU_GET(TPM2B_PUBLIC)
DEFINE_MU_GET(TPML_DIGEST)

/* attest_parse is aln_tpm_attest_parse with a constant reason for the refusal. */
static aln_status attest_parse(TPMS_ATTEST *out, const uint8_t *p, size_t len, const char **reason) {
  struct aln_cbs cbs;
  memset(out, 0, sizeof(*out));
  aln_cbs_init(&cbs, p, len);
  aln_status st = get_TPMS_ATTEST(&cbs, out);
  if (st != ALN_OK) {
    *reason = st == ALN_ERR_TRUNCATED ? "TPMS_ATTEST truncated" : "TPMS_ATTEST does not unmarshal canonically";
    return st;
  }
  st = ALN_ERR_MALFORMED;
  if (aln_cbs_ensure_empty(&cbs) != ALN_OK) {
    *reason = "bytes follow the TPMS_ATTEST";
    st = ALN_ERR_TRAILING;
  } else if (out->magic != TPM2_GENERATED_VALUE) {
    /* The magic is what a restricted key refuses to sign for anyone but the TPM. */
    *reason = "TPMS_ATTEST magic is not TPM_GENERATED_VALUE";
  } else if (out->type != TPM2_ST_ATTEST_QUOTE) {
    *reason = "TPMS_ATTEST type is not TPM_ST_ATTEST_QUOTE";
  } else if (out->clockInfo.safe != TPM2_YES && out->clockInfo.safe != TPM2_NO) {
    *reason = "TPMS_CLOCK_INFO.safe is neither YES nor NO";
  } else {
    return ALN_OK;
  }
  memset(out, 0, sizeof(*out));
  return st;
}

aln_status aln_tpm_attest_parse(TPMS_ATTEST *out, const uint8_t *p, size_t len) {
  const char *reason = NULL;
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(p != NULL || len == 0, ALN_ERR_USAGE);
  return attest_parse(out, p, len, &reason);
}

/* ---- PCR selections ------------------------------------------------------------- */

/* selection_count checks the quote's selection (known banks, each at most once) and
 * counts the PCRs it selects. */
static aln_status selection_count(const TPML_PCR_SELECTION *sel, size_t *num, const char **reason) {
  *num = 0;
  for (uint32_t i = 0; i < sel->count; i++) {
    const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
    if (aln_tpm_hash_len(s->hash) == 0) {
      *reason = "the quote selects a PCR bank other than sha1, sha256, sha384 or sha512";
      return ALN_ERR_MALFORMED;
    }
    for (uint32_t j = 0; j < i; j++) {
      if (sel->pcrSelections[j].hash == s->hash) {
        *reason = "the quote selects a PCR bank twice";
        return ALN_ERR_MALFORMED;
      }
    }
    for (unsigned b = 0; b < s->sizeofSelect; b++)
      *num += (size_t)__builtin_popcount(s->pcrSelect[b]);
  }
  return ALN_OK;
}

/* pcr_position finds PCR |index| of |bank| among the quoted values: its position in
 * selection order in *pos. Returns 1 if the quote selects it, else 0. */
static int pcr_position(const TPML_PCR_SELECTION *sel, TPMI_ALG_HASH bank, unsigned index, size_t *pos) {
  size_t n = 0;
  for (uint32_t i = 0; i < sel->count; i++) {
    const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
    for (unsigned pcr = 0; pcr < 8u * s->sizeofSelect; pcr++) {
      if (!(s->pcrSelect[pcr / 8] & (1u << (pcr % 8))))
        continue;
      if (s->hash == bank && pcr == index) {
        *pos = n;
        return 1;
      }
      n++;
    }
  }
  return 0;
}

/* ---- the container ------------------------------------------------------------- */

/* pcr_values_get reads the PCR values field: TPML_DIGEST lists, all full but the
 * last, which is not empty. */
static aln_status pcr_values_get(struct aln_tpm_quote *q, struct aln_cbs *field, const char **reason) {
  q->num_pcr_values = 0;
  while (field->len > 0) {
    TPML_DIGEST list;
    aln_status st = get_TPML_DIGEST(field, &list);
    if (st != ALN_OK) {
      *reason = st == ALN_ERR_TRUNCATED ? "PCR values truncated" : "PCR values do not unmarshal canonically";
      return st;
    }
    /* One chunking only: full lists, then a last one of 1..8. */
    if (list.count == 0 || (list.count < TPML_DIGEST_MAX && field->len > 0)) {
      *reason = "PCR value lists are not 8 per list with a non-empty last one";
      return ALN_ERR_MALFORMED;
    }
    if (list.count > ALN_TPM_PCR_VALUES_MAX - q->num_pcr_values) {
      *reason = "more PCR values than a container may carry";
      return ALN_ERR_MALFORMED;
    }
    for (uint32_t i = 0; i < list.count; i++)
      q->pcr_values[q->num_pcr_values++] = list.digests[i];
  }
  return ALN_OK;
}

/* pcr_values_match checks that the values are exactly those the quote selects,
 * each of its bank's size. */
static aln_status pcr_values_match(const struct aln_tpm_quote *q, const char **reason) {
  const TPML_PCR_SELECTION *sel = &q->attest.attested.quote.pcrSelect;
  size_t num = 0, n = 0;
  ALN_GUARD(selection_count(sel, &num, reason));
  if (num != q->num_pcr_values) {
    *reason = "the number of PCR values is not the number of PCRs the quote selects";
    return ALN_ERR_MALFORMED;
  }
  for (uint32_t i = 0; i < sel->count; i++) {
    const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
    for (unsigned pcr = 0; pcr < 8u * s->sizeofSelect; pcr++) {
      if (!(s->pcrSelect[pcr / 8] & (1u << (pcr % 8))))
        continue;
      if (q->pcr_values[n++].size != aln_tpm_hash_len(s->hash)) {
        *reason = "a PCR value is not the size of its bank's digest";
        return ALN_ERR_MALFORMED;
      }
    }
  }
  return ALN_OK;
}

/* field_reason names where the container broke for a refusal. */
static const char *field_reason(aln_status st, const char *truncated, const char *other) {
  return st == ALN_ERR_TRUNCATED ? truncated : other;
}

static aln_status quote_decode(struct aln_tpm_quote *q, const uint8_t *ev, size_t len, const char **reason) {
  struct aln_cbs cbs, magic, f;
  aln_status st;
  memset(q, 0, sizeof(*q));
  if (len > ALN_TPM_QUOTE_MAX) {
    *reason = "evidence larger than " ALN_TPM_QUOTE_MAGIC "'s cap";
    return ALN_ERR_TOO_LARGE;
  }
  aln_cbs_init(&cbs, ev, len);
  if (aln_cbs_get_bytes(&cbs, &magic, ALN_TPM_QUOTE_MAGIC_LEN) != ALN_OK) {
    *reason = "evidence truncated in its magic";
    return ALN_ERR_TRUNCATED;
  }
  if (memcmp(magic.p, ALN_TPM_QUOTE_MAGIC, ALN_TPM_QUOTE_MAGIC_LEN) != 0) {
    *reason = "evidence does not start with " ALN_TPM_QUOTE_MAGIC;
    return ALN_ERR_MALFORMED;
  }

  /* The signed bytes, kept as they came for the signature. */
  if ((st = aln_cbs_get_u32_prefixed(&cbs, &f)) != ALN_OK) {
    *reason = "evidence truncated in the TPMS_ATTEST field";
    return st;
  }
  if (f.len > sizeof(q->attest_raw.attestationData)) {
    *reason = "TPMS_ATTEST larger than a TPM2B_ATTEST holds";
    return ALN_ERR_MALFORMED;
  }
  q->attest_raw.size = (UINT16)f.len;
  if (f.len > 0)
    memcpy(q->attest_raw.attestationData, f.p, f.len);
  ALN_GUARD(attest_parse(&q->attest, f.p, f.len, reason));

  if ((st = aln_cbs_get_u32_prefixed(&cbs, &f)) != ALN_OK) {
    *reason = "evidence truncated in the signature field";
    return st;
  }
  if ((st = get_TPMT_SIGNATURE(&f, &q->sig)) != ALN_OK) {
    *reason = field_reason(st, "TPMT_SIGNATURE truncated", "TPMT_SIGNATURE does not unmarshal canonically");
    return st;
  }
  if (aln_cbs_ensure_empty(&f) != ALN_OK) {
    *reason = "bytes follow the TPMT_SIGNATURE in its field";
    return ALN_ERR_TRAILING;
  }

  if ((st = aln_cbs_get_u32_prefixed(&cbs, &f)) != ALN_OK) {
    *reason = "evidence truncated in the AK public field";
    return st;
  }
  if ((st = get_TPM2B_PUBLIC(&f, &q->ak)) != ALN_OK) {
    *reason = field_reason(st, "AK TPM2B_PUBLIC truncated", "AK TPM2B_PUBLIC does not unmarshal canonically");
    return st;
  }
  if (aln_cbs_ensure_empty(&f) != ALN_OK) {
    *reason = "bytes follow the AK TPM2B_PUBLIC in its field";
    return ALN_ERR_TRAILING;
  }

  if ((st = aln_cbs_get_u32_prefixed(&cbs, &f)) != ALN_OK) {
    *reason = "evidence truncated in the PCR values field";
    return st;
  }
  ALN_GUARD(pcr_values_get(q, &f, reason));
  if (aln_cbs_ensure_empty(&cbs) != ALN_OK) {
    *reason = "trailing bytes after the PCR values";
    return ALN_ERR_TRAILING;
  }
  return pcr_values_match(q, reason);
}

aln_status aln_tpm_quote_decode(struct aln_tpm_quote *out, const uint8_t *ev, size_t len) {
  const char *reason = NULL;
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(ev != NULL || len == 0, ALN_ERR_USAGE);
  aln_status st = quote_decode(out, ev, len, &reason);
  if (st != ALN_OK)
    memset(out, 0, sizeof(*out));
  return st;
}

aln_status aln_tpm_quote_encode(uint8_t **out, size_t *out_len, const struct aln_tpm_quote *q) {
  uint8_t sig[sizeof(TPMT_SIGNATURE)], pub[sizeof(TPM2B_PUBLIC)], pcrs[ALN_TPM_QUOTE_MAX];
  size_t sig_len = 0, pub_len = 0, pcrs_len = 0;
  struct aln_cbb cbb = {0};
  struct aln_tpm_quote *check = NULL;
  uint8_t *buf = NULL;
  size_t buf_len = 0;
  aln_status st = ALN_ERR_USAGE;

  ALN_ENSURE(out != NULL && out_len != NULL && q != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *out_len = 0;
  ALN_ENSURE(q->num_pcr_values <= ALN_TPM_PCR_VALUES_MAX, ALN_ERR_USAGE);
  ALN_ENSURE(Tss2_MU_TPMT_SIGNATURE_Marshal(&q->sig, sig, sizeof(sig), &sig_len) == TSS2_RC_SUCCESS &&
                 Tss2_MU_TPM2B_PUBLIC_Marshal(&q->ak, pub, sizeof(pub), &pub_len) == TSS2_RC_SUCCESS,
             ALN_ERR_USAGE);
  for (size_t i = 0; i < q->num_pcr_values; i += TPML_DIGEST_MAX) {
    TPML_DIGEST list = {.count = 0};
    while (list.count < TPML_DIGEST_MAX && i + list.count < q->num_pcr_values) {
      list.digests[list.count] = q->pcr_values[i + list.count];
      list.count++;
    }
    ALN_ENSURE(Tss2_MU_TPML_DIGEST_Marshal(&list, pcrs, sizeof(pcrs), &pcrs_len) == TSS2_RC_SUCCESS, ALN_ERR_USAGE);
  }
  ALN_ENSURE(q->attest_raw.size <= sizeof(q->attest_raw.attestationData), ALN_ERR_USAGE);

  ALN_GUARD_GOTO(st, aln_cbb_init(&cbb, 1024, ALN_TPM_QUOTE_MAX), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_bytes(&cbb, (const uint8_t *)ALN_TPM_QUOTE_MAGIC, ALN_TPM_QUOTE_MAGIC_LEN), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, q->attest_raw.attestationData, q->attest_raw.size), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, sig, sig_len), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, pub, pub_len), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, pcrs, pcrs_len), out);
  ALN_GUARD_GOTO(st, aln_cbb_finish(&cbb, &buf, &buf_len), out);
  /* Never hand out what the decoder would refuse. */
  check = malloc(sizeof(*check));
  ALN_ENSURE_GOTO(st, check != NULL, ALN_ERR_NOMEM, out);
  ALN_ENSURE_GOTO(st, aln_tpm_quote_decode(check, buf, buf_len) == ALN_OK, ALN_ERR_USAGE, out);
  *out = malloc(buf_len);
  ALN_ENSURE_GOTO(st, *out != NULL, ALN_ERR_NOMEM, out);
  memcpy(*out, buf, buf_len);
  *out_len = buf_len;
  st = ALN_OK;
out:
  if (st == ALN_ERR_TOO_LARGE)
    st = ALN_ERR_USAGE;
  free(check);
  aln_cbb_buf_free(buf, buf_len);
  aln_cbb_cleanup(&cbb);
  return st;
}

/* ---- the attestation key ------------------------------------------------------------ */

int aln_tpm_ak_public_ok(const TPM2B_PUBLIC *pub) {
  if (pub == NULL)
    return 0;
  const TPMT_PUBLIC *t = &pub->publicArea;
  if (t->nameAlg != TPM2_ALG_SHA256 || (t->objectAttributes & AK_REQUIRED) != AK_REQUIRED ||
      (t->objectAttributes & TPMA_OBJECT_DECRYPT) != 0)
    return 0;
  if (t->type == TPM2_ALG_ECC) {
    const TPMS_ECC_PARMS *e = &t->parameters.eccDetail;
    int scheme_ok = e->scheme.scheme == TPM2_ALG_NULL ||
                    (e->scheme.scheme == TPM2_ALG_ECDSA && e->scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256);
    return e->curveID == TPM2_ECC_NIST_P256 && scheme_ok && e->symmetric.algorithm == TPM2_ALG_NULL &&
           e->kdf.scheme == TPM2_ALG_NULL && t->unique.ecc.x.size == P256_LEN && t->unique.ecc.y.size == P256_LEN;
  }
  if (t->type == TPM2_ALG_RSA) {
    const TPMS_RSA_PARMS *r = &t->parameters.rsaDetail;
    int scheme_ok = r->scheme.scheme == TPM2_ALG_NULL ||
                    (r->scheme.scheme == TPM2_ALG_RSASSA && r->scheme.details.rsassa.hashAlg == TPM2_ALG_SHA256) ||
                    (r->scheme.scheme == TPM2_ALG_RSAPSS && r->scheme.details.rsapss.hashAlg == TPM2_ALG_SHA256);
    return (r->keyBits == 2048 || r->keyBits == 3072 || r->keyBits == 4096) && scheme_ok &&
           r->symmetric.algorithm == TPM2_ALG_NULL && t->unique.rsa.size == r->keyBits / 8;
  }
  return 0;
}

aln_status aln_tpm_name(TPM2B_NAME *out, const TPM2B_PUBLIC *pub) {
  uint8_t area[sizeof(TPMT_PUBLIC)];
  size_t area_len = 0;
  unsigned int md_len = 0;
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(pub != NULL, ALN_ERR_USAGE);
  TPMI_ALG_HASH alg = pub->publicArea.nameAlg;
  const EVP_MD *md = hash_md(alg);
  ALN_ENSURE(md != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, area, sizeof(area), &area_len) == TSS2_RC_SUCCESS,
             ALN_ERR_USAGE);
  out->name[0] = (uint8_t)(alg >> 8);
  out->name[1] = (uint8_t)alg;
  ALN_ENSURE(EVP_Digest(area, area_len, out->name + 2, &md_len, md, NULL) == 1, ALN_ERR_CRYPTO);
  out->size = (UINT16)(2 + md_len);
  return ALN_OK;
}

/* ---- verification -------------------------------------------------------------- */

/* name_enrolled says whether the AK |name| is pinned in the policy or was tied by
 * the host to a certified EK by credential activation (ctx->tpm_ak_names). */
static int name_enrolled(const TPM2B_NAME *name, const struct aln_tpm_policy *policy,
                         const struct aln_verify_ctx *ctx) {
  for (size_t i = 0; i < policy->num_ak_names; i++) {
    const TPM2B_NAME *n = &policy->ak_names[i];
    if (n->size == name->size && CRYPTO_memcmp(n->name, name->name, name->size) == 0)
      return 1;
  }
  for (size_t i = 0; i < ctx->num_tpm_ak_names; i++) {
    if (name->size == ALN_TPM_AK_NAME_LEN &&
        CRYPTO_memcmp(ctx->tpm_ak_names + i * ALN_TPM_AK_NAME_LEN, name->name, ALN_TPM_AK_NAME_LEN) == 0)
      return 1;
  }
  return 0;
}

/* policy_ok checks the policy itself: a caller's error, not the evidence's. */
static int policy_ok(const struct aln_tpm_policy *p, const struct aln_verify_ctx *ctx) {
  if ((p->num_ak_names == 0 && ctx->num_tpm_ak_names == 0) || (p->num_ak_names > 0 && p->ak_names == NULL) ||
      (ctx->num_tpm_ak_names > 0 && ctx->tpm_ak_names == NULL) || p->num_pcrs == 0 || p->pcrs == NULL)
    return 0;
  for (size_t i = 0; i < p->num_ak_names; i++)
    if (p->ak_names[i].size > sizeof(p->ak_names[i].name))
      return 0;
  for (size_t i = 0; i < p->num_pcrs; i++) {
    const struct aln_tpm_pcr_ref *r = &p->pcrs[i];
    size_t total;
    if (aln_tpm_hash_len(r->bank) == 0 || r->index > ALN_TPM_PCR_INDEX_MAX || r->num_values == 0 || r->values == NULL ||
        __builtin_mul_overflow(r->num_values, aln_tpm_hash_len(r->bank), &total))
      return 0;
  }
  return 1;
}

/* ecdsa_der turns the TPM's (r, s) into the DER ECDSA-Sig-Value OpenSSL verifies. */
static aln_status ecdsa_der(uint8_t **der, int *der_len, const TPMS_SIGNATURE_ECC *e) {
  ALN_ENSURE(e->signatureR.size > 0 && e->signatureR.size <= P256_LEN && e->signatureS.size > 0 &&
                 e->signatureS.size <= P256_LEN,
             ALN_ERR_ATTEST_SIG);
  ECDSA_SIG *sig = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(e->signatureR.buffer, e->signatureR.size, NULL);
  BIGNUM *s = BN_bin2bn(e->signatureS.buffer, e->signatureS.size, NULL);
  if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    return ALN_ERR_NOMEM;
  }
  *der = NULL;
  *der_len = i2d_ECDSA_SIG(sig, der);
  ECDSA_SIG_free(sig);
  return *der_len > 0 ? ALN_OK : ALN_ERR_NOMEM;
}

/* The OpenSSL key of an AK, built once per AK: a host appraises the same few AKs
 * again and again (every connection, every re-attestation), and importing the
 * public area costs about as much as the signature check itself. Keyed by the TPM
 * name, a hash of the whole public area, so a cached key is only ever the key of
 * exactly that public area. Public keys: nothing here is secret. */
#define AK_CACHE_MAX 8

static struct {
  TPM2B_NAME name;
  EVP_PKEY *key;
} ak_cache[AK_CACHE_MAX];
static size_t ak_cache_next;
static pthread_mutex_t ak_cache_mu = PTHREAD_MUTEX_INITIALIZER;

/* ak_key sets *out to a new reference to the key of |ak|, whose name is |name|. */
static aln_status ak_key(EVP_PKEY **out, const TPM2B_PUBLIC *ak, const TPM2B_NAME *name) {
  pthread_mutex_lock(&ak_cache_mu);
  for (size_t i = 0; i < AK_CACHE_MAX; i++) {
    if (ak_cache[i].key != NULL && ak_cache[i].name.size == name->size &&
        memcmp(ak_cache[i].name.name, name->name, name->size) == 0 && EVP_PKEY_up_ref(ak_cache[i].key) == 1) {
      *out = ak_cache[i].key;
      pthread_mutex_unlock(&ak_cache_mu);
      return ALN_OK;
    }
  }
  pthread_mutex_unlock(&ak_cache_mu);
  EVP_PKEY *key = NULL;
  ALN_GUARD(aln_tpm_public_to_pkey(&key, ak));
  pthread_mutex_lock(&ak_cache_mu);
  size_t slot = ak_cache_next++ % AK_CACHE_MAX;
  if (EVP_PKEY_up_ref(key) == 1) {
    EVP_PKEY_free(ak_cache[slot].key);
    ak_cache[slot].name = *name;
    ak_cache[slot].key = key;
  }
  pthread_mutex_unlock(&ak_cache_mu);
  *out = key;
  return ALN_OK;
}

/* signature_check verifies |q|'s signature over its TPMS_ATTEST bytes with its AK
 * (already checked by aln_tpm_ak_public_ok, and named |name|) and names the scheme in *scheme. */
static aln_status signature_check(const struct aln_tpm_quote *q, const TPM2B_NAME *name, struct aln_refusal *why,
                                  const char **scheme) {
  const TPMT_PUBLIC *ak = &q->ak.publicArea;
  const TPMT_SIGNATURE *sig = &q->sig;
  EVP_PKEY *key = NULL;
  EVP_MD_CTX *md = NULL;
  EVP_PKEY_CTX *pctx = NULL;
  uint8_t *der = NULL;
  int der_len = 0;
  const uint8_t *sig_p = NULL;
  size_t sig_len = 0;
  TPMI_ALG_SIG_SCHEME key_scheme;
  aln_status st = ALN_ERR_ATTEST_SIG;

  if (ak->type == TPM2_ALG_ECC) {
    key_scheme = ak->parameters.eccDetail.scheme.scheme;
    if (sig->sigAlg != TPM2_ALG_ECDSA || sig->signature.ecdsa.hash != TPM2_ALG_SHA256) {
      st = aln_refuse(why, ALN_ERR_ATTEST_SIG, "an ECC AK's signature must be ECDSA with SHA-256");
      goto out;
    }
    *scheme = "ecdsa-sha256";
    if ((st = ecdsa_der(&der, &der_len, &sig->signature.ecdsa)) != ALN_OK) {
      st = aln_refuse(why, st == ALN_ERR_NOMEM ? ALN_ERR_NOMEM : ALN_ERR_ATTEST_SIG, "ECDSA r or s malformed");
      goto out;
    }
    sig_p = der;
    sig_len = (size_t)der_len;
  } else {
    key_scheme = ak->parameters.rsaDetail.scheme.scheme;
    if ((sig->sigAlg != TPM2_ALG_RSASSA && sig->sigAlg != TPM2_ALG_RSAPSS) ||
        sig->signature.rsassa.hash != TPM2_ALG_SHA256 ||
        sig->signature.rsassa.sig.size != ak->parameters.rsaDetail.keyBits / 8) {
      st = aln_refuse(why, ALN_ERR_ATTEST_SIG,
                      "an RSA AK's signature must be RSASSA or RSAPSS with SHA-256 of the "
                      "key's size");
      goto out;
    }
    *scheme = sig->sigAlg == TPM2_ALG_RSASSA ? "rsassa-sha256" : "rsapss-sha256";
    sig_p = sig->signature.rsassa.sig.buffer;
    sig_len = sig->signature.rsassa.sig.size;
  }
  if (key_scheme != TPM2_ALG_NULL && key_scheme != sig->sigAlg) {
    st = aln_refuse(why, ALN_ERR_ATTEST_SIG, "signature scheme is not the AK's");
    goto out;
  }
  if (ak_key(&key, &q->ak, name) != ALN_OK) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "AK public key unusable");
    goto out;
  }
  md = EVP_MD_CTX_new();
  if (md == NULL || EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, key) != 1 ||
      (sig->sigAlg == TPM2_ALG_RSAPSS && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1))) {
    st = aln_refuse(why, ALN_ERR_CRYPTO, "cannot set up signature verification");
    goto out;
  }
  /* 0 is a bad signature, < 0 one that does not even decode: both fail closed. */
  if (EVP_DigestVerify(md, sig_p, sig_len, q->attest_raw.attestationData, q->attest_raw.size) != 1) {
    st = aln_refuse(why, ALN_ERR_ATTEST_SIG, "quote signature does not verify with the AK (%s)", *scheme);
    goto out;
  }
  st = ALN_OK;
out:
  ERR_clear_error();
  OPENSSL_free(der);
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
  return st;
}

/* pcr_digest_check recomputes the quote's PCR digest, SHA-256 (the signing
 * scheme's hash) over the supplied values in selection order. */
static aln_status pcr_digest_check(const struct aln_tpm_quote *q, struct aln_refusal *why) {
  const TPM2B_DIGEST *want = &q->attest.attested.quote.pcrDigest;
  uint8_t got[SHA256_LEN];
  unsigned int got_len = 0;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
  for (size_t i = 0; ok && i < q->num_pcr_values; i++)
    ok = EVP_DigestUpdate(md, q->pcr_values[i].buffer, q->pcr_values[i].size) == 1;
  ok = ok && EVP_DigestFinal_ex(md, got, &got_len) == 1;
  EVP_MD_CTX_free(md);
  if (!ok)
    return aln_refuse(why, ALN_ERR_CRYPTO, "cannot hash the PCR values");
  if (want->size != SHA256_LEN || CRYPTO_memcmp(want->buffer, got, SHA256_LEN) != 0)
    return aln_refuse(why, ALN_ERR_ATTEST_SIG, "the supplied PCR values do not hash to the signed PCR digest");
  return ALN_OK;
}

static aln_status pcr_policy_check(const struct aln_tpm_quote *q, const struct aln_tpm_policy *policy,
                                   struct aln_refusal *why) {
  const TPML_PCR_SELECTION *sel = &q->attest.attested.quote.pcrSelect;
  for (size_t i = 0; i < policy->num_pcrs; i++) {
    const struct aln_tpm_pcr_ref *r = &policy->pcrs[i];
    size_t pos = 0, dlen = aln_tpm_hash_len(r->bank);
    if (!pcr_position(sel, r->bank, r->index, &pos))
      return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "PCR %s:%u, which the policy appraises, is not quoted",
                        aln_tpm_hash_name(r->bank), (unsigned)r->index);
    const TPM2B_DIGEST *v = &q->pcr_values[pos];
    int allowed = 0;
    for (size_t j = 0; j < r->num_values && !allowed; j++)
      allowed = v->size == dlen && CRYPTO_memcmp(v->buffer, r->values + j * dlen, dlen) == 0;
    if (!allowed) {
      char hex[2 * sizeof(v->buffer) + 1];
      if (aln_hex_encode(hex, sizeof(hex), v->buffer, v->size) != ALN_OK)
        hex[0] = '\0';
      return aln_refuse(why, ALN_ERR_ATTEST_POLICY, "PCR %s:%u holds %s, not a value the policy allows",
                        aln_tpm_hash_name(r->bank), (unsigned)r->index, hex);
    }
  }
  return ALN_OK;
}

static json_t *hex_json(const uint8_t *p, size_t len) {
  char hex[2 * sizeof(TPMU_NAME) + 1];
  if (2 * len + 1 > sizeof(hex) || aln_hex_encode(hex, sizeof(hex), p, len) != ALN_OK)
    return NULL;
  return json_string(hex);
}

/* detail_build renders the appraised quote as the claims' detail object. */
static json_t *detail_build(const struct aln_tpm_quote *q, const TPM2B_NAME *ak_name, const char *scheme) {
  const TPMS_ATTEST *a = &q->attest;
  const TPML_PCR_SELECTION *sel = &a->attested.quote.pcrSelect;
  char fw[2 + 16 + 1];
  json_t *pcrs = json_object();
  size_t n = 0;
  for (uint32_t i = 0; pcrs != NULL && i < sel->count; i++) {
    const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
    for (unsigned pcr = 0; pcr < 8u * s->sizeofSelect; pcr++) {
      if (!(s->pcrSelect[pcr / 8] & (1u << (pcr % 8))))
        continue;
      char key[16];
      snprintf(key, sizeof(key), "%s:%u", aln_tpm_hash_name(s->hash), pcr);
      json_t *v = hex_json(q->pcr_values[n].buffer, q->pcr_values[n].size);
      n++;
      if (v == NULL || json_object_set_new(pcrs, key, v) != 0) {
        json_decref(pcrs);
        pcrs = NULL;
        break;
      }
    }
  }
  snprintf(fw, sizeof(fw), "0x%016llx", (unsigned long long)a->firmwareVersion);
  json_t *name = hex_json(ak_name->name, ak_name->size);
  json_t *signer = hex_json(a->qualifiedSigner.name, a->qualifiedSigner.size);
  if (pcrs == NULL || name == NULL || signer == NULL) {
    json_decref(pcrs);
    json_decref(name);
    json_decref(signer);
    return NULL;
  }
  /* json_pack steals the "o" references even when it fails. */
  return json_pack("{s:o, s:o, s:o, s:s, s:{s:I, s:I, s:I, s:b}, s:s, s:s}", "pcrs", pcrs, "ak_name", name,
                   "qualified_signer", signer, "signature", scheme, "clock", "clock_ms",
                   (json_int_t)(a->clockInfo.clock & INT64_MAX), "reset_count", (json_int_t)a->clockInfo.resetCount,
                   "restart_count", (json_int_t)a->clockInfo.restartCount, "safe", a->clockInfo.safe == TPM2_YES,
                   "firmware_version", fw, "debug",
                   "not reported: a TPM quote says nothing about debug modes; the appraised PCRs must measure them");
}

aln_status aln_tpm_quote_verify(struct aln_claims *out, struct aln_refusal *why, const uint8_t *ev, size_t len,
                                const struct aln_tpm_policy *policy, const struct aln_verify_ctx *ctx) {
  struct aln_tpm_quote *q = NULL;
  TPM2B_NAME name;
  const char *reason = "malformed", *scheme = "";
  aln_status st;

  if (why != NULL)
    memset(why, 0, sizeof(*why));
  if (out != NULL)
    memset(out, 0, sizeof(*out));
  if (out == NULL || (ev == NULL && len > 0) || policy == NULL || ctx == NULL ||
      (ctx->nonce == NULL && ctx->nonce_len > 0))
    return aln_refuse(why, ALN_ERR_USAGE, "tpm verifier called with missing arguments");
  if (!policy_ok(policy, ctx))
    return aln_refuse(why, ALN_ERR_USAGE, "tpm policy must name at least one AK and one PCR, each well formed");
  /* The cap comes first: nothing larger is even looked at. */
  if (len > ALN_TPM_QUOTE_MAX)
    return aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "evidence is %zu bytes, more than the %d a TPM quote may be", len,
                      ALN_TPM_QUOTE_MAX);

  q = malloc(sizeof(*q));
  if (q == NULL)
    return aln_refuse(why, ALN_ERR_NOMEM, "out of memory");
  if (quote_decode(q, ev, len, &reason) != ALN_OK) {
    st = aln_refuse(why, ALN_ERR_ATTEST_MALFORMED, "%s", reason);
    goto out;
  }
  if (!aln_tpm_ak_public_ok(&q->ak)) {
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN,
                    "the quoting key is not a restricted signing key fixed to its TPM (ECC P-256 or RSA, SHA-256)");
    goto out;
  }
  if ((st = aln_tpm_name(&name, &q->ak)) != ALN_OK) {
    st = aln_refuse(why, st, "cannot compute the AK's name");
    goto out;
  }
  if (!name_enrolled(&name, policy, ctx)) {
    char hex[2 * sizeof(name.name) + 1];
    if (aln_hex_encode(hex, sizeof(hex), name.name, name.size) != ALN_OK)
      hex[0] = '\0';
    st = aln_refuse(why, ALN_ERR_ATTEST_CHAIN, "attestation key %s is not enrolled in the policy", hex);
    goto out;
  }
  /* Nothing the quote says is believed before this. */
  if ((st = signature_check(q, &name, why, &scheme)) != ALN_OK)
    goto out;
  const TPM2B_DATA *extra = &q->attest.extraData;
  if (ctx->nonce != NULL &&
      (extra->size != ctx->nonce_len || CRYPTO_memcmp(extra->buffer, ctx->nonce, ctx->nonce_len) != 0)) {
    st = aln_refuse(why, ALN_ERR_ATTEST_BINDING, "the quote's qualifying data is not the expected nonce");
    goto out;
  }
  if ((st = pcr_digest_check(q, why)) != ALN_OK)
    goto out;
  if ((st = pcr_policy_check(q, policy, why)) != ALN_OK)
    goto out;

  struct aln_claims c = {.debug = 0, .nonce_checked = ctx->nonce != NULL};
  snprintf(c.kind, sizeof(c.kind), "%s", ALN_TPM_QUOTE_KIND);
  const TPM2B_DIGEST *digest = &q->attest.attested.quote.pcrDigest;
  if (aln_hex_encode(c.measurement, sizeof(c.measurement), digest->buffer, digest->size) != ALN_OK ||
      (c.detail = detail_build(q, &name, scheme)) == NULL) {
    st = aln_refuse(why, ALN_ERR_NOMEM, "cannot build the claims");
    goto out;
  }
  *out = c;
  st = ALN_OK;
out:
  free(q);
  return st;
}
