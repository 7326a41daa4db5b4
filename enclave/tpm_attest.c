/* TPM quotes and credential activation through ESYS, for the "tpm" provider. Each
 * call opens the TPM with aln_tpm_conn_open (which also makes the owner's storage
 * key, used here to salt the one session that carries a secret), does its work and
 * closes it, so nothing holds the TPM between attestations. A TPM without a
 * resource manager (swtpm, /dev/tpm0) holds only three transient objects: every
 * sequence below keeps at most the storage key and two more loaded.
 *
 * Quotes need no session: their output is signed by the AK, and the verifier, not
 * the enclave, is the one who must trust it. The credential coming back from
 * TPM2_ActivateCredential is secret until the verifier compares it, so it returns
 * encrypted under the salted session. */
#include "enclave/tpm_attest.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>

#include "attestation/tpm_cred.h"
#include "attestation/tpm_quote.h"
#include "enclave/provider_tpm.h"
#include "proto/cbs.h"
#include "proto/keyfile.h"

#define QUOTE_TRIES 3
#define PCR_READ_ROUNDS 32 /* PCR_Read returns at least one digest per round, at most 8 */
#define NV_CHUNK_DEFAULT 512
#define BANKS_MAX 4

static void say(const char *msg) {
  fprintf(stderr, "aileron-enclave: tpm attest: %s\n", msg);
}

/* PolicySecret(TPM_RH_ENDORSEMENT): the authPolicy of the TCG default EKs, so only
 * someone with the endorsement hierarchy's authorization uses the EK. */
static const TPM2B_DIGEST ek_policy = {.size = 32,
                                       .buffer = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
                                                  0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
                                                  0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa}};

#define EK_ATTRS                                                                                                       \
  (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |    \
   TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

/* ek_template fills the TCG EK Credential Profile template L-1 (RSA 2048) or L-2
 * (ECC NIST P-256): the unique field zero-filled to the key size, which is what
 * makes the key the one the manufacturer certified. */
static aln_status ek_template(TPM2B_PUBLIC *t, TPMI_ALG_PUBLIC alg) {
  memset(t, 0, sizeof(*t));
  TPMT_PUBLIC *p = &t->publicArea;
  p->nameAlg = TPM2_ALG_SHA256;
  p->objectAttributes = EK_ATTRS;
  p->authPolicy = ek_policy;
  if (alg == TPM2_ALG_RSA) {
    p->type = TPM2_ALG_RSA;
    p->parameters.rsaDetail = (TPMS_RSA_PARMS){
        .symmetric = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB},
        .scheme = {.scheme = TPM2_ALG_NULL},
        .keyBits = 2048,
        .exponent = 0,
    };
    p->unique.rsa.size = 256;
    return ALN_OK;
  }
  if (alg == TPM2_ALG_ECC) {
    p->type = TPM2_ALG_ECC;
    p->parameters.eccDetail = (TPMS_ECC_PARMS){
        .symmetric = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB},
        .scheme = {.scheme = TPM2_ALG_NULL},
        .curveID = TPM2_ECC_NIST_P256,
        .kdf = {.scheme = TPM2_ALG_NULL},
    };
    p->unique.ecc.x.size = 32;
    p->unique.ecc.y.size = 32;
    return ALN_OK;
  }
  return ALN_ERR_USAGE;
}

/* The AK's parent: a storage key of the endorsement hierarchy, deterministic from
 * the endorsement seed (the owner's SRK template, in another hierarchy). */
static const TPM2B_PUBLIC parent_template = {
    .publicArea = {
        .type = TPM2_ALG_ECC,
        .nameAlg = TPM2_ALG_SHA256,
        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                            TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
        .parameters.eccDetail = {.symmetric = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB},
                                 .scheme = {.scheme = TPM2_ALG_NULL},
                                 .curveID = TPM2_ECC_NIST_P256,
                                 .kdf = {.scheme = TPM2_ALG_NULL}},
    }};

/* The AK: restricted ECDSA-SHA256 signing on P-256. Its authorization is empty and
 * exempt from dictionary-attack lockout, so a lockout cannot stop attestation;
 * adminWithPolicy is clear so ActivateCredential's admin role takes that (empty)
 * authorization. */
static const TPM2B_PUBLIC ak_template = {
    .publicArea = {
        .type = TPM2_ALG_ECC,
        .nameAlg = TPM2_ALG_SHA256,
        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                            TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                            TPMA_OBJECT_SIGN_ENCRYPT,
        .parameters.eccDetail = {.symmetric = {.algorithm = TPM2_ALG_NULL},
                                 .scheme = {.scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256},
                                 .curveID = TPM2_ECC_NIST_P256,
                                 .kdf = {.scheme = TPM2_ALG_NULL}},
    }};

static const TPM2B_SENSITIVE_CREATE no_sensitive = {0};
static const TPM2B_DATA no_outside = {0};
static const TPML_PCR_SELECTION no_pcrs = {0};

static int rc_is(TSS2_RC rc, TSS2_RC base) {
  if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
    return 0;
  if (rc & TPM2_RC_FMT1)
    return (rc & (TPM2_RC_FMT1 | 0x3f)) == base;
  return (rc & 0xfff) == base;
}

/* ---- ak.tpm codec ------------------------------------------------------------- */

aln_status aln_tpm_ak_blob_encode(uint8_t **out, size_t *out_len, const struct aln_tpm_ak_blob *b) {
  uint8_t pub[sizeof(TPM2B_PUBLIC)], priv[sizeof(TPM2B_PRIVATE)];
  size_t pub_len = 0, priv_len = 0, buf_len = 0;
  uint8_t *buf = NULL;
  struct aln_cbb cbb = {0};
  aln_status st;

  ALN_ENSURE(out != NULL && out_len != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *out_len = 0;
  ALN_ENSURE(b != NULL && aln_tpm_ak_public_ok(&b->pub) && b->priv.size > 0, ALN_ERR_USAGE);
  ALN_ENSURE(Tss2_MU_TPM2B_PUBLIC_Marshal(&b->pub, pub, sizeof(pub), &pub_len) == TSS2_RC_SUCCESS &&
                 Tss2_MU_TPM2B_PRIVATE_Marshal(&b->priv, priv, sizeof(priv), &priv_len) == TSS2_RC_SUCCESS,
             ALN_ERR_USAGE);
  ALN_GUARD_GOTO(st, aln_cbb_init(&cbb, 512, ALN_TPM_AK_BLOB_MAX), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_bytes(&cbb, (const uint8_t *)ALN_TPM_AK_BLOB_MAGIC, ALN_TPM_AK_BLOB_MAGIC_LEN), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, pub, pub_len), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, priv, priv_len), out);
  ALN_GUARD_GOTO(st, aln_cbb_finish(&cbb, &buf, &buf_len), out);
  *out = malloc(buf_len);
  ALN_ENSURE_GOTO(st, *out != NULL, ALN_ERR_NOMEM, out);
  memcpy(*out, buf, buf_len);
  *out_len = buf_len;
  st = ALN_OK;
out:
  aln_cbb_buf_free(buf, buf_len);
  aln_cbb_cleanup(&cbb);
  return st;
}

static aln_status ak_blob_decode(struct aln_tpm_ak_blob *b, const uint8_t *data, size_t len) {
  struct aln_cbs cbs, magic;
  ALN_ENSURE(len <= ALN_TPM_AK_BLOB_MAX, ALN_ERR_TOO_LARGE);
  aln_cbs_init(&cbs, data, len);
  ALN_GUARD(aln_cbs_get_bytes(&cbs, &magic, ALN_TPM_AK_BLOB_MAGIC_LEN));
  ALN_ENSURE(memcmp(magic.p, ALN_TPM_AK_BLOB_MAGIC, ALN_TPM_AK_BLOB_MAGIC_LEN) == 0, ALN_ERR_MALFORMED);
  ALN_TPM_GET_FIELD(&cbs, TPM2B_PUBLIC, &b->pub);
  ALN_TPM_GET_FIELD(&cbs, TPM2B_PRIVATE, &b->priv);
  ALN_GUARD(aln_cbs_ensure_empty(&cbs));
  ALN_ENSURE(aln_tpm_ak_public_ok(&b->pub) && b->priv.size > 0, ALN_ERR_MALFORMED);
  return ALN_OK;
}

aln_status aln_tpm_ak_blob_decode(struct aln_tpm_ak_blob *out, const uint8_t *data, size_t len) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(data != NULL || len == 0, ALN_ERR_USAGE);
  aln_status st = ak_blob_decode(out, data, len);
  if (st != ALN_OK)
    memset(out, 0, sizeof(*out));
  return st;
}

/* ---- the AK, loaded ---------------------------------------------------------------- */

struct attest {
  struct aln_tpm_conn conn;
  int open;
  ESYS_TR parent, ak, ek, session, policy;
  struct aln_tpm_ak_blob blob;
};

static void attest_close(struct attest *a) {
  ESYS_TR *handles[] = {&a->policy, &a->session, &a->ek, &a->ak, &a->parent};
  for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
    if (*handles[i] != ESYS_TR_NONE && a->open)
      (void)Esys_FlushContext(a->conn.esys, *handles[i]);
    *handles[i] = ESYS_TR_NONE;
  }
  if (a->open)
    aln_tpm_conn_close(&a->conn);
  a->open = 0;
}

static void attest_init(struct attest *a) {
  memset(a, 0, sizeof(*a));
  a->parent = a->ak = a->ek = a->session = a->policy = ESYS_TR_NONE;
}

static aln_status create_primary(struct attest *a, ESYS_TR *out, const TPM2B_PUBLIC *tmpl, TPM2B_PUBLIC **pub_out) {
  TPM2B_PUBLIC *pub = NULL;
  TPM2B_CREATION_DATA *cdata = NULL;
  TPM2B_DIGEST *chash = NULL;
  TPMT_TK_CREATION *ticket = NULL;
  TSS2_RC rc = Esys_CreatePrimary(a->conn.esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                  &no_sensitive, tmpl, &no_outside, &no_pcrs, out, &pub, &cdata, &chash, &ticket);
  Esys_Free(cdata);
  Esys_Free(chash);
  Esys_Free(ticket);
  if (rc != TSS2_RC_SUCCESS) {
    Esys_Free(pub);
    *out = ESYS_TR_NONE;
    say("cannot create a primary key in the endorsement hierarchy (endorsement auth set?)");
    return ALN_ERR_TPM;
  }
  if (pub_out != NULL)
    *pub_out = pub;
  else
    Esys_Free(pub);
  return ALN_OK;
}

/* ak_create makes a new AK under the parent into |b|. */
static aln_status ak_create(struct attest *a, struct aln_tpm_ak_blob *b) {
  TPM2B_PRIVATE *priv = NULL;
  TPM2B_PUBLIC *pub = NULL;
  TPM2B_CREATION_DATA *cdata = NULL;
  TPM2B_DIGEST *chash = NULL;
  TPMT_TK_CREATION *ticket = NULL;
  TSS2_RC rc = Esys_Create(a->conn.esys, a->parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &no_sensitive,
                           &ak_template, &no_outside, &no_pcrs, &priv, &pub, &cdata, &chash, &ticket);
  aln_status st = ALN_ERR_TPM;
  if (rc != TSS2_RC_SUCCESS) {
    say("cannot create the attestation key");
    goto out;
  }
  b->pub = *pub;
  b->priv = *priv;
  st = ALN_OK;
out:
  Esys_Free(priv);
  Esys_Free(pub);
  Esys_Free(cdata);
  Esys_Free(chash);
  Esys_Free(ticket);
  return st;
}

/* ak_blob_obtain reads ak.tpm at |path| into a->blob, creating it first (O_EXCL)
 * if it does not exist; a file written meanwhile by another process wins. */
static aln_status ak_blob_obtain(struct attest *a, const char *path) {
  struct aln_secret file = {0};
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  aln_status st = aln_keyfile_read(&file, path, ALN_TPM_AK_BLOB_MAX);
  if (st == ALN_ERR_NOT_FOUND) {
    struct aln_tpm_ak_blob fresh;
    ALN_GUARD_GOTO(st, ak_create(a, &fresh), out);
    ALN_GUARD_GOTO(st, aln_tpm_ak_blob_encode(&enc, &enc_len, &fresh), out);
    st = aln_keyfile_write_new(path, enc, enc_len);
    if (st != ALN_OK && st != ALN_ERR_EXISTS) {
      say("cannot write ak.tpm");
      goto out;
    }
    st = aln_keyfile_read(&file, path, ALN_TPM_AK_BLOB_MAX);
  }
  if (st != ALN_OK) {
    if (st == ALN_ERR_TOO_LARGE)
      say("ak.tpm is larger than any attestation key blob; it was left untouched");
    else if (st == ALN_ERR_PERMS)
      say("ak.tpm is accessible to others or not ours; refusing to use it");
    goto out;
  }
  st = ak_blob_decode(&a->blob, file.p, file.len);
  if (st != ALN_OK)
    say("ak.tpm is not a valid attestation key blob; it was left untouched");
out:
  aln_secret_free(&file);
  free(enc);
  return st;
}

/* attest_open connects, makes the endorsement parent, obtains ak.tpm and loads the
 * AK, then flushes the parent (a loaded key does not need it). */
static aln_status attest_open(struct attest *a, const char *data_dir) {
  char path[PATH_MAX];
  ALN_ENSURE(data_dir != NULL && data_dir[0] != '\0', ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(path, data_dir, ALN_TPM_AK_FILE, NULL));
  ALN_GUARD(aln_tpm_conn_open(&a->conn));
  a->open = 1;
  ALN_GUARD(create_primary(a, &a->parent, &parent_template, NULL));
  ALN_GUARD(ak_blob_obtain(a, path));
  if (Esys_Load(a->conn.esys, a->parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &a->blob.priv, &a->blob.pub,
                &a->ak) != TSS2_RC_SUCCESS) {
    a->ak = ESYS_TR_NONE;
    say("ak.tpm does not load under this TPM's endorsement hierarchy (another TPM, or its endorsement seed "
        "changed); ak.tpm was kept");
    return ALN_ERR_TPM;
  }
  (void)Esys_FlushContext(a->conn.esys, a->parent);
  a->parent = ESYS_TR_NONE;
  return ALN_OK;
}

aln_status aln_tpm_ak_public(const char *data_dir, TPM2B_PUBLIC *out) {
  struct attest a;
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  attest_init(&a);
  aln_status st = attest_open(&a, data_dir);
  if (st == ALN_OK)
    *out = a.blob.pub;
  attest_close(&a);
  return st;
}

/* ---- quotes ------------------------------------------------------------------------ */

/* selection_ok checks |sel| and counts its PCRs into *num. */
static int selection_ok(const TPML_PCR_SELECTION *sel, size_t *num) {
  *num = 0;
  if (sel->count == 0 || sel->count > BANKS_MAX)
    return 0;
  for (uint32_t i = 0; i < sel->count; i++) {
    const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
    if (aln_tpm_hash_len(s->hash) == 0 || s->sizeofSelect == 0 || s->sizeofSelect > TPM2_PCR_SELECT_MAX)
      return 0;
    for (uint32_t j = 0; j < i; j++)
      if (sel->pcrSelections[j].hash == s->hash)
        return 0;
    for (unsigned b = 0; b < s->sizeofSelect; b++)
      *num += (size_t)__builtin_popcount(s->pcrSelect[b]);
  }
  return *num > 0 && *num <= ALN_TPM_PCR_VALUES_MAX;
}

/* same_selection returns 1 if |a| and |b| select the same PCRs of the same banks in
 * the same order (the sizes of their bitmaps may differ). */
static int same_selection(const TPML_PCR_SELECTION *a, const TPML_PCR_SELECTION *b) {
  if (a->count != b->count)
    return 0;
  for (uint32_t i = 0; i < a->count; i++) {
    const TPMS_PCR_SELECTION *x = &a->pcrSelections[i], *y = &b->pcrSelections[i];
    if (x->hash != y->hash)
      return 0;
    for (unsigned k = 0; k < TPM2_PCR_SELECT_MAX; k++) {
      uint8_t bx = k < x->sizeofSelect ? x->pcrSelect[k] : 0, by = k < y->sizeofSelect ? y->pcrSelect[k] : 0;
      if (bx != by)
        return 0;
    }
  }
  return 1;
}

/* pcrs_read reads the values of |want| into q->pcr_values in selection order.
 * PCR_Read answers at most eight digests per call and drops banks the TPM does not
 * have, so it is asked again for what is still missing until nothing is. */
static aln_status pcrs_read(struct attest *a, struct aln_tpm_quote *q, const TPML_PCR_SELECTION *want) {
  TPM2B_DIGEST vals[BANKS_MAX][8 * TPM2_PCR_SELECT_MAX];
  TPML_PCR_SELECTION left = *want;
  memset(vals, 0, sizeof(vals));
  for (int round = 0; round < PCR_READ_ROUNDS; round++) {
    size_t missing = 0;
    for (uint32_t i = 0; i < left.count; i++)
      for (unsigned k = 0; k < left.pcrSelections[i].sizeofSelect; k++)
        missing += left.pcrSelections[i].pcrSelect[k] != 0;
    if (missing == 0)
      break;
    UINT32 counter = 0;
    TPML_PCR_SELECTION *got = NULL;
    TPML_DIGEST *digests = NULL;
    if (Esys_PCR_Read(a->conn.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &left, &counter, &got, &digests) !=
        TSS2_RC_SUCCESS) {
      say("cannot read the PCRs");
      return ALN_ERR_TPM;
    }
    size_t d = 0, progress = 0;
    for (uint32_t i = 0; i < got->count; i++) {
      const TPMS_PCR_SELECTION *s = &got->pcrSelections[i];
      uint32_t bank = 0;
      while (bank < want->count && want->pcrSelections[bank].hash != s->hash)
        bank++;
      for (unsigned pcr = 0; pcr < 8u * s->sizeofSelect && pcr < 8u * TPM2_PCR_SELECT_MAX; pcr++) {
        if (!(s->pcrSelect[pcr / 8] & (1u << (pcr % 8))))
          continue;
        if (bank == want->count || d >= digests->count || digests->digests[d].size != aln_tpm_hash_len(s->hash) ||
            !(left.pcrSelections[bank].pcrSelect[pcr / 8] & (1u << (pcr % 8)))) {
          Esys_Free(got);
          Esys_Free(digests);
          say("the TPM answered PCR_Read with PCRs that were not asked for");
          return ALN_ERR_TPM;
        }
        vals[bank][pcr] = digests->digests[d++];
        left.pcrSelections[bank].pcrSelect[pcr / 8] &= (uint8_t) ~(1u << (pcr % 8));
        progress++;
      }
    }
    Esys_Free(got);
    Esys_Free(digests);
    if (progress == 0) {
      say("the TPM does not have some of the selected PCRs (is the PCR bank active?)");
      return ALN_ERR_TPM;
    }
  }
  q->num_pcr_values = 0;
  for (uint32_t i = 0; i < want->count; i++) {
    const TPMS_PCR_SELECTION *s = &want->pcrSelections[i];
    for (unsigned pcr = 0; pcr < 8u * s->sizeofSelect; pcr++) {
      if (!(s->pcrSelect[pcr / 8] & (1u << (pcr % 8))))
        continue;
      if (left.pcrSelections[i].pcrSelect[pcr / 8] & (1u << (pcr % 8))) {
        say("the TPM did not return every selected PCR");
        return ALN_ERR_TPM;
      }
      q->pcr_values[q->num_pcr_values++] = vals[i][pcr];
    }
  }
  return ALN_OK;
}

/* digest_matches returns 1 if the quote's PCR digest is the SHA-256 of the values
 * read (the AK's scheme hashes with SHA-256). */
static int digest_matches(const struct aln_tpm_quote *q) {
  uint8_t md[32];
  unsigned int md_len = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
  for (size_t i = 0; ok && i < q->num_pcr_values; i++)
    ok = EVP_DigestUpdate(ctx, q->pcr_values[i].buffer, q->pcr_values[i].size) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
  EVP_MD_CTX_free(ctx);
  const TPM2B_DIGEST *want = &q->attest.attested.quote.pcrDigest;
  return ok && md_len == sizeof(md) && want->size == sizeof(md) && memcmp(want->buffer, md, sizeof(md)) == 0;
}

/* quote_once quotes |pcrs| and reads their values into |q|. */
static aln_status quote_once(struct attest *a, struct aln_tpm_quote *q, const uint8_t binding[ALN_BINDING_LEN],
                             const TPML_PCR_SELECTION *pcrs) {
  static const TPMT_SIG_SCHEME key_scheme = {.scheme = TPM2_ALG_NULL}; /* the AK's own */
  TPM2B_DATA qualifying = {.size = ALN_BINDING_LEN};
  TPM2B_ATTEST *quoted = NULL;
  TPMT_SIGNATURE *sig = NULL;
  aln_status st = ALN_ERR_TPM;

  memset(q, 0, sizeof(*q));
  memcpy(qualifying.buffer, binding, ALN_BINDING_LEN);
  if (Esys_Quote(a->conn.esys, a->ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying, &key_scheme, pcrs,
                 &quoted, &sig) != TSS2_RC_SUCCESS) {
    say("the TPM refused to quote (is every selected PCR bank active?)");
    goto out;
  }
  q->attest_raw = *quoted;
  q->sig = *sig;
  q->ak = a->blob.pub;
  if (aln_tpm_attest_parse(&q->attest, quoted->attestationData, quoted->size) != ALN_OK) {
    say("the TPM returned a quote that does not parse");
    goto out;
  }
  if (!same_selection(&q->attest.attested.quote.pcrSelect, pcrs)) {
    say("the TPM quoted other PCRs than those selected (is every selected PCR bank active?)");
    goto out;
  }
  ALN_GUARD_GOTO(st, pcrs_read(a, q, pcrs), out);
  st = ALN_OK;
out:
  Esys_Free(quoted);
  Esys_Free(sig);
  return st;
}

aln_status aln_tpm_quote_make(const char *data_dir, uint8_t **out, size_t *out_len,
                              const uint8_t binding[ALN_BINDING_LEN], const TPML_PCR_SELECTION *pcrs) {
  struct attest a;
  struct aln_tpm_quote *q = NULL;
  size_t num = 0;
  aln_status st = ALN_ERR_USAGE;

  ALN_ENSURE(out != NULL && out_len != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *out_len = 0;
  ALN_ENSURE(binding != NULL && pcrs != NULL && selection_ok(pcrs, &num), ALN_ERR_USAGE);
  attest_init(&a);
  q = malloc(sizeof(*q));
  ALN_ENSURE_GOTO(st, q != NULL, ALN_ERR_NOMEM, out);
  ALN_GUARD_GOTO(st, attest_open(&a, data_dir), out);
  /* A PCR extended between the quote and the read gives values that do not hash
   * to the signed digest: quote again rather than hand out evidence that fails. */
  for (int i = 0;; i++) {
    ALN_GUARD_GOTO(st, quote_once(&a, q, binding, pcrs), out);
    if (digest_matches(q))
      break;
    if (i + 1 == QUOTE_TRIES) {
      say("the PCRs kept changing while being quoted");
      st = ALN_ERR_TPM;
      goto out;
    }
  }
  st = aln_tpm_quote_encode(out, out_len, q);
  if (st != ALN_OK)
    say("the quote does not encode");
out:
  free(q);
  attest_close(&a);
  return st;
}

/* ---- the EK -------------------------------------------------------------------------- */

aln_status aln_tpm_ek_public(TPM2B_PUBLIC *out, TPMI_ALG_PUBLIC alg) {
  struct attest a;
  TPM2B_PUBLIC tmpl, *pub = NULL;
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_GUARD(ek_template(&tmpl, alg));
  attest_init(&a);
  aln_status st = aln_tpm_conn_open(&a.conn);
  if (st == ALN_OK) {
    a.open = 1;
    st = create_primary(&a, &a.ek, &tmpl, &pub);
  }
  if (st == ALN_OK)
    *out = *pub;
  Esys_Free(pub);
  attest_close(&a);
  return st;
}

/* der_length returns the length of the DER SEQUENCE at the start of |p| (header
 * included), or 0 if |p| does not start with one that fits in |len|. */
static size_t der_length(const uint8_t *p, size_t len) {
  if (len < 2 || p[0] != 0x30)
    return 0;
  size_t body, hdr;
  if (p[1] < 0x80) {
    body = p[1];
    hdr = 2;
  } else if (p[1] == 0x81 && len >= 3) {
    body = p[2];
    hdr = 3;
  } else if (p[1] == 0x82 && len >= 4) {
    body = (size_t)p[2] << 8 | p[3];
    hdr = 4;
  } else {
    return 0;
  }
  return hdr + body <= len ? hdr + body : 0;
}

static aln_status nv_chunk_size(struct attest *a, size_t *out) {
  TPMS_CAPABILITY_DATA *cap = NULL;
  TPMI_YES_NO more = TPM2_NO;
  *out = NV_CHUNK_DEFAULT;
  if (Esys_GetCapability(a->conn.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                         TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap) == TSS2_RC_SUCCESS &&
      cap != NULL && cap->data.tpmProperties.count == 1 &&
      cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
      cap->data.tpmProperties.tpmProperty[0].value > 0 &&
      cap->data.tpmProperties.tpmProperty[0].value <= sizeof(((TPM2B_MAX_NV_BUFFER *)0)->buffer))
    *out = cap->data.tpmProperties.tpmProperty[0].value;
  Esys_Free(cap);
  return ALN_OK;
}

aln_status aln_tpm_ek_cert_read(uint8_t **out, size_t *out_len, TPMI_ALG_PUBLIC alg) {
  struct attest a;
  ESYS_TR nv = ESYS_TR_NONE;
  TPM2B_NV_PUBLIC *pub = NULL;
  TPM2B_NAME *name = NULL;
  uint8_t *buf = NULL;
  size_t size = 0, chunk = 0, der = 0;
  aln_status st = ALN_ERR_USAGE;

  ALN_ENSURE(out != NULL && out_len != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *out_len = 0;
  ALN_ENSURE(alg == TPM2_ALG_RSA || alg == TPM2_ALG_ECC, ALN_ERR_USAGE);
  uint32_t index = alg == TPM2_ALG_RSA ? ALN_TPM_EK_CERT_NV_RSA : ALN_TPM_EK_CERT_NV_ECC;
  attest_init(&a);
  ALN_GUARD_GOTO(st, aln_tpm_conn_open(&a.conn), out);
  a.open = 1;
  /* Asked first, so that a missing certificate is not an error ESYS logs. */
  TPMS_CAPABILITY_DATA *cap = NULL;
  TPMI_YES_NO more = TPM2_NO;
  st = ALN_ERR_TPM;
  if (Esys_GetCapability(a.conn.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, index, 1, &more,
                         &cap) != TSS2_RC_SUCCESS ||
      cap == NULL) {
    Esys_Free(cap);
    say("cannot list the TPM's NV indices");
    goto out;
  }
  int present = cap->data.handles.count >= 1 && cap->data.handles.handle[0] == index;
  Esys_Free(cap);
  ALN_ENSURE_GOTO(st, present, ALN_ERR_NOT_FOUND, out);
  if (Esys_TR_FromTPMPublic(a.conn.esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv) != TSS2_RC_SUCCESS ||
      Esys_NV_ReadPublic(a.conn.esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name) != TSS2_RC_SUCCESS) {
    say("cannot look the EK certificate's NV index up");
    goto out;
  }
  size = pub->nvPublic.dataSize;
  ALN_ENSURE_GOTO(st, size > 0 && size <= ALN_TPM_EK_CERT_MAX, ALN_ERR_TOO_LARGE, out);
  /* The certificate index is readable with its own (empty) authorization, or the
   * owner's; it is not secret, and the verifier checks what it says. */
  ESYS_TR auth = (pub->nvPublic.attributes & TPMA_NV_AUTHREAD) ? nv : ESYS_TR_RH_OWNER;
  ALN_GUARD_GOTO(st, nv_chunk_size(&a, &chunk), out);
  buf = malloc(size);
  ALN_ENSURE_GOTO(st, buf != NULL, ALN_ERR_NOMEM, out);
  for (size_t off = 0; off < size;) {
    TPM2B_MAX_NV_BUFFER *data = NULL;
    UINT16 n = (UINT16)(size - off < chunk ? size - off : chunk);
    if (Esys_NV_Read(a.conn.esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, (UINT16)off, &data) !=
            TSS2_RC_SUCCESS ||
        data == NULL || data->size != n) {
      Esys_Free(data);
      say("cannot read the EK certificate");
      st = ALN_ERR_TPM;
      goto out;
    }
    memcpy(buf + off, data->buffer, n);
    off += n;
    Esys_Free(data);
  }
  der = der_length(buf, size);
  if (der == 0) {
    say("the EK certificate's NV index does not hold a DER certificate");
    st = ALN_ERR_MALFORMED;
    goto out;
  }
  *out = buf;
  *out_len = der;
  buf = NULL;
  st = ALN_OK;
out:
  free(buf);
  Esys_Free(pub);
  Esys_Free(name);
  if (nv != ESYS_TR_NONE)
    (void)Esys_TR_Close(a.conn.esys, &nv);
  attest_close(&a);
  return st;
}

/* ---- credential activation ---------------------------------------------------------- */

/* ek_policy_session starts a policy session satisfying the EK's PolicySecret with
 * the endorsement hierarchy's (empty) authorization. */
static aln_status ek_policy_session(struct attest *a) {
  static const TPMT_SYM_DEF no_sym = {.algorithm = TPM2_ALG_NULL};
  static const TPM2B_NONCE empty_nonce = {0};
  static const TPM2B_DIGEST no_cphash = {0};
  TPM2B_TIMEOUT *timeout = NULL;
  TPMT_TK_AUTH *ticket = NULL;
  if (Esys_StartAuthSession(a->conn.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                            TPM2_SE_POLICY, &no_sym, TPM2_ALG_SHA256, &a->policy) != TSS2_RC_SUCCESS) {
    a->policy = ESYS_TR_NONE;
    say("cannot start the EK's policy session");
    return ALN_ERR_TPM;
  }
  TSS2_RC rc = Esys_PolicySecret(a->conn.esys, ESYS_TR_RH_ENDORSEMENT, a->policy, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                 ESYS_TR_NONE, &empty_nonce, &no_cphash, &empty_nonce, 0, &timeout, &ticket);
  Esys_Free(timeout);
  Esys_Free(ticket);
  if (rc != TSS2_RC_SUCCESS) {
    say("PolicySecret with the endorsement hierarchy failed (endorsement auth set?)");
    return ALN_ERR_TPM;
  }
  return ALN_OK;
}

aln_status aln_tpm_ak_activate(const char *data_dir, struct aln_secret *out, TPMI_ALG_PUBLIC ek_alg,
                               const TPM2B_ID_OBJECT *blob, const TPM2B_ENCRYPTED_SECRET *secret) {
  struct attest a;
  TPM2B_PUBLIC tmpl;
  TPM2B_DIGEST *cred = NULL;
  aln_status st = ALN_ERR_USAGE;

  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(blob != NULL && secret != NULL && blob->size > 0 && secret->size > 0, ALN_ERR_USAGE);
  ALN_ENSURE(blob->size <= sizeof(blob->credential) && secret->size <= sizeof(secret->secret), ALN_ERR_USAGE);
  ALN_GUARD(ek_template(&tmpl, ek_alg));
  attest_init(&a);
  ALN_GUARD_GOTO(st, attest_open(&a, data_dir), out);
  ALN_GUARD_GOTO(st, create_primary(&a, &a.ek, &tmpl, NULL), out);
  ALN_GUARD_GOTO(st, ek_policy_session(&a), out);
  /* certInfo, the first response parameter, comes back encrypted. */
  ALN_GUARD_GOTO(st, aln_tpm_conn_session(&a.conn, &a.session, TPMA_SESSION_ENCRYPT), out);
  TSS2_RC rc = Esys_ActivateCredential(a.conn.esys, a.ak, a.ek, a.session, a.policy, ESYS_TR_NONE, blob, secret, &cred);
  if (rc != TSS2_RC_SUCCESS || cred == NULL) {
    /* The TPM checks the blob's HMAC over the AK's name and the seed: a credential
     * made for another object or another EK, or altered, fails here. */
    if (rc_is(rc, TPM2_RC_INTEGRITY) || rc_is(rc, TPM2_RC_VALUE) || rc_is(rc, TPM2_RC_SIZE) ||
        rc_is(rc, TPM2_RC_ECC_POINT) || rc_is(rc, TPM2_RC_SCHEME)) {
      say("the TPM refused the credential: it was not made for this AK and EK, or was altered");
      st = ALN_ERR_ATTEST_CHAIN;
    } else {
      say("ActivateCredential failed");
      st = ALN_ERR_TPM;
    }
    goto out;
  }
  st = aln_secret_from(out, cred->buffer, cred->size);
out:
  if (cred != NULL) {
    OPENSSL_cleanse(cred, sizeof(*cred));
    Esys_Free(cred);
  }
  attest_close(&a);
  return st;
}
