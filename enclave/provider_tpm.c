/* The "tpm" provider: the KEK is sealed to a TPM 2.0 under a PolicyPCR policy, so
 * only this TPM, with the chosen PCRs holding the values they had at sealing, can
 * open it. DATA_DIR/kek.tpm holds the sealed object (public + TPM-wrapped private)
 * and the PCR selection; it is never rewritten or deleted, so a platform change
 * that makes the unseal fail loses nothing (the blob is kept for recovery).
 *
 * The storage parent is the owner hierarchy's primary key made from the fixed ECC
 * P-256 template below: the TPM derives it from its seed, so every start recreates
 * the same key without persisting a handle. Commands that carry the KEK (Create's
 * inSensitive, Unseal's outData) go through a session salted by that key with
 * AES-128-CFB parameter encryption, so the KEK never crosses the TCTI in clear.
 * The salt is encrypted to the key the TPM returns to CreatePrimary; the key is
 * not checked against an EK certificate, which the quote issue adds.
 *
 * Evidence: TPM quotes come with the attestation issue. Until then this provider
 * produces the same debug-marked local evidence as "local" (evidence_kind "local"),
 * which the host accepts only in --dev. */
#include "enclave/provider_tpm.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include "enclave/provider.h"
#include "proto/cbs.h"
#include "proto/keyfile.h"

#define PCR_MAX 23 /* PC Client TPMs have 24 PCRs per bank */
#define PCR_SELECT_LEN 3
#define SEALED_ATTRS (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT)

static void tpm_say(const char *msg) {
  fprintf(stderr, "aileron-enclave: tpm: %s\n", msg);
}

/* ---- PCR selection syntax ------------------------------------------------------ */

aln_status aln_tpm_pcrs_parse(TPML_PCR_SELECTION *out, const char *spec) {
  static const char prefix[] = "sha256:";
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(spec != NULL && strncmp(spec, prefix, sizeof(prefix) - 1) == 0, ALN_ERR_USAGE);
  TPMS_PCR_SELECTION sel = {.hash = TPM2_ALG_SHA256, .sizeofSelect = PCR_SELECT_LEN};
  const char *p = spec + sizeof(prefix) - 1;
  for (;;) {
    unsigned v = 0;
    ALN_ENSURE(*p >= '0' && *p <= '9', ALN_ERR_USAGE);
    ALN_ENSURE(!(p[0] == '0' && p[1] >= '0' && p[1] <= '9'), ALN_ERR_USAGE); /* no leading zeros */
    while (*p >= '0' && *p <= '9') {
      v = v * 10 + (unsigned)(*p++ - '0');
      ALN_ENSURE(v <= PCR_MAX, ALN_ERR_USAGE);
    }
    ALN_ENSURE((sel.pcrSelect[v / 8] & (1u << (v % 8))) == 0, ALN_ERR_USAGE); /* duplicate */
    sel.pcrSelect[v / 8] |= (uint8_t)(1u << (v % 8));
    if (*p == '\0')
      break;
    ALN_ENSURE(*p++ == ',', ALN_ERR_USAGE);
  }
  out->count = 1;
  out->pcrSelections[0] = sel;
  return ALN_OK;
}

/* pcrs_valid returns 1 if |sel| is what aln_tpm_pcrs_parse can produce. */
static int pcrs_valid(const TPML_PCR_SELECTION *sel) {
  if (sel->count != 1 || sel->pcrSelections[0].hash != TPM2_ALG_SHA256 ||
      sel->pcrSelections[0].sizeofSelect != PCR_SELECT_LEN)
    return 0;
  const uint8_t *b = sel->pcrSelections[0].pcrSelect;
  return (b[0] | b[1] | b[2]) != 0;
}

aln_status aln_tpm_pcrs_format(char *out, size_t out_cap, const TPML_PCR_SELECTION *sel) {
  ALN_ENSURE(out != NULL && out_cap > 0 && sel != NULL && pcrs_valid(sel), ALN_ERR_USAGE);
  size_t len = 0;
  int n = snprintf(out, out_cap, "sha256:");
  ALN_ENSURE(n > 0 && (size_t)n < out_cap, ALN_ERR_USAGE);
  len = (size_t)n;
  const char *sep = "";
  for (unsigned i = 0; i <= PCR_MAX; i++) {
    if (!(sel->pcrSelections[0].pcrSelect[i / 8] & (1u << (i % 8))))
      continue;
    n = snprintf(out + len, out_cap - len, "%s%u", sep, i);
    ALN_ENSURE(n > 0 && (size_t)n < out_cap - len, ALN_ERR_USAGE);
    len += (size_t)n;
    sep = ",";
  }
  return ALN_OK;
}

/* ---- kek.tpm codec ------------------------------------------------------------- */

/* sealed_public_valid returns 1 if |pub| is a sealed data object that only its
 * policy can open, bound to its TPM and parent. */
static int sealed_public_valid(const TPM2B_PUBLIC *pub) {
  const TPMT_PUBLIC *t = &pub->publicArea;
  const TPMA_OBJECT forbidden = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_DECRYPT |
                                TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SENSITIVEDATAORIGIN;
  return t->type == TPM2_ALG_KEYEDHASH && t->nameAlg == TPM2_ALG_SHA256 &&
         (t->objectAttributes & SEALED_ATTRS) == SEALED_ATTRS && (t->objectAttributes & forbidden) == 0 &&
         t->authPolicy.size == TPM2_SHA256_DIGEST_SIZE && t->parameters.keyedHashDetail.scheme.scheme == TPM2_ALG_NULL;
}

aln_status aln_tpm_blob_encode(uint8_t **out, size_t *out_len, const struct aln_tpm_blob *b) {
  uint8_t pub[sizeof(TPM2B_PUBLIC)], priv[sizeof(TPM2B_PRIVATE)], pcrs[sizeof(TPML_PCR_SELECTION)];
  size_t pub_len = 0, priv_len = 0, pcrs_len = 0;
  struct aln_cbb cbb = {0};
  aln_status st = ALN_ERR_USAGE;

  ALN_ENSURE(out != NULL && out_len != NULL && b != NULL, ALN_ERR_USAGE);
  *out = NULL;
  *out_len = 0;
  ALN_ENSURE(sealed_public_valid(&b->pub) && pcrs_valid(&b->pcrs) && b->priv.size > 0, ALN_ERR_USAGE);
  ALN_ENSURE(Tss2_MU_TPM2B_PUBLIC_Marshal(&b->pub, pub, sizeof(pub), &pub_len) == TSS2_RC_SUCCESS &&
                 Tss2_MU_TPM2B_PRIVATE_Marshal(&b->priv, priv, sizeof(priv), &priv_len) == TSS2_RC_SUCCESS &&
                 Tss2_MU_TPML_PCR_SELECTION_Marshal(&b->pcrs, pcrs, sizeof(pcrs), &pcrs_len) == TSS2_RC_SUCCESS,
             ALN_ERR_USAGE);
  ALN_GUARD_GOTO(st, aln_cbb_init(&cbb, 512, ALN_TPM_BLOB_MAX), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_bytes(&cbb, (const uint8_t *)ALN_TPM_BLOB_MAGIC, ALN_TPM_BLOB_MAGIC_LEN), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, pub, pub_len), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, priv, priv_len), out);
  ALN_GUARD_GOTO(st, aln_cbb_add_u32_prefixed(&cbb, pcrs, pcrs_len), out);
  uint8_t *buf = NULL;
  size_t buf_len = 0;
  ALN_GUARD_GOTO(st, aln_cbb_finish(&cbb, &buf, &buf_len), out);
  /* Hand out a plain malloc'd copy so the caller frees with free(). */
  *out = malloc(buf_len);
  if (*out == NULL) {
    aln_cbb_buf_free(buf, buf_len);
    st = ALN_ERR_NOMEM;
    goto out;
  }
  memcpy(*out, buf, buf_len);
  *out_len = buf_len;
  aln_cbb_buf_free(buf, buf_len);
  st = ALN_OK;
out:
  aln_cbb_cleanup(&cbb);
  return st;
}

aln_status aln_tpm_blob_decode(struct aln_tpm_blob *out, const uint8_t *data, size_t len) {
  struct aln_cbs cbs, magic;
  ALN_ENSURE(out != NULL && (data != NULL || len == 0), ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(len <= ALN_TPM_BLOB_MAX, ALN_ERR_TOO_LARGE);
  aln_cbs_init(&cbs, data, len);
  ALN_GUARD(aln_cbs_get_bytes(&cbs, &magic, ALN_TPM_BLOB_MAGIC_LEN));
  ALN_ENSURE(memcmp(magic.p, ALN_TPM_BLOB_MAGIC, ALN_TPM_BLOB_MAGIC_LEN) == 0, ALN_ERR_MALFORMED);
  struct aln_tpm_blob b;
  memset(&b, 0, sizeof(b));
  ALN_TPM_GET_FIELD(&cbs, TPM2B_PUBLIC, &b.pub);
  ALN_TPM_GET_FIELD(&cbs, TPM2B_PRIVATE, &b.priv);
  ALN_TPM_GET_FIELD(&cbs, TPML_PCR_SELECTION, &b.pcrs);
  ALN_GUARD(aln_cbs_ensure_empty(&cbs));
  ALN_ENSURE(sealed_public_valid(&b.pub) && pcrs_valid(&b.pcrs) && b.priv.size > 0, ALN_ERR_MALFORMED);
  *out = b;
  return ALN_OK;
}

/* ---- the TPM ------------------------------------------------------------------- */

struct tpm {
  TSS2_TCTI_CONTEXT *tcti;
  ESYS_CONTEXT *esys;
  ESYS_TR primary;
  ESYS_TR sealed;
  ESYS_TR session;
};

static void tpm_close(struct tpm *t) {
  ESYS_TR *handles[] = {&t->session, &t->sealed, &t->primary};
  for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
    if (*handles[i] != ESYS_TR_NONE && t->esys != NULL)
      (void)Esys_FlushContext(t->esys, *handles[i]);
    *handles[i] = ESYS_TR_NONE;
  }
  if (t->esys != NULL)
    Esys_Finalize(&t->esys);
  if (t->tcti != NULL)
    Tss2_TctiLdr_Finalize(&t->tcti);
}

/* tpm_open connects to the TCTI in AILERON_TPM_TCTI and creates the primary storage
 * key from the fixed template (the same key on every start on the same TPM). */
static aln_status tpm_open(struct tpm *t) {
  /* The standard ECC storage root key template (TCG "SRK" profile): restricted
   * decrypt, AES-128-CFB for its children, no unique data, so it is deterministic. */
  static const TPM2B_PUBLIC srk = {.publicArea = {
                                       .type = TPM2_ALG_ECC,
                                       .nameAlg = TPM2_ALG_SHA256,
                                       .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                                           TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                                           TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                                                           TPMA_OBJECT_DECRYPT,
                                       .parameters.eccDetail = {.symmetric = {.algorithm = TPM2_ALG_AES,
                                                                              .keyBits.aes = 128,
                                                                              .mode.aes = TPM2_ALG_CFB},
                                                                .scheme = {.scheme = TPM2_ALG_NULL},
                                                                .curveID = TPM2_ECC_NIST_P256,
                                                                .kdf = {.scheme = TPM2_ALG_NULL}},
                                   }};
  static const TPM2B_SENSITIVE_CREATE no_auth = {0};
  static const TPM2B_DATA no_outside = {0};
  static const TPML_PCR_SELECTION no_pcrs = {0};
  memset(t, 0, sizeof(*t));
  t->primary = t->sealed = t->session = ESYS_TR_NONE;

  const char *conf = getenv("AILERON_TPM_TCTI");
  if (conf == NULL || conf[0] == '\0') {
    tpm_say("set AILERON_TPM_TCTI (e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321)");
    return ALN_ERR_USAGE;
  }
  if (Tss2_TctiLdr_Initialize(conf, &t->tcti) != TSS2_RC_SUCCESS) {
    fprintf(stderr, "aileron-enclave: tpm: cannot open the TCTI '%.200s'\n", conf);
    return ALN_ERR_TPM;
  }
  if (Esys_Initialize(&t->esys, t->tcti, NULL) != TSS2_RC_SUCCESS) {
    tpm_say("cannot initialise the ESYS context");
    return ALN_ERR_TPM;
  }
  TPM2B_PUBLIC *pub = NULL;
  TPM2B_CREATION_DATA *cdata = NULL;
  TPM2B_DIGEST *chash = NULL;
  TPMT_TK_CREATION *ticket = NULL;
  TSS2_RC rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &no_auth,
                                  &srk, &no_outside, &no_pcrs, &t->primary, &pub, &cdata, &chash, &ticket);
  Esys_Free(pub);
  Esys_Free(cdata);
  Esys_Free(chash);
  Esys_Free(ticket);
  if (rc != TSS2_RC_SUCCESS) {
    t->primary = ESYS_TR_NONE;
    tpm_say("cannot create the primary storage key under the owner hierarchy (owner auth set?)");
    return ALN_ERR_TPM;
  }
  return ALN_OK;
}

/* session_start starts a session of |type| salted by |primary| into *out, with
 * AES-128-CFB parameter encryption in the directions of |crypt|. On failure *out
 * may still hold a session for the caller to flush. */
static aln_status session_start(ESYS_CONTEXT *esys, ESYS_TR primary, ESYS_TR *out, TPM2_SE type, TPMA_SESSION crypt) {
  static const TPMT_SYM_DEF aes = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB};
  if (Esys_StartAuthSession(esys, primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, type, &aes,
                            TPM2_ALG_SHA256, out) != TSS2_RC_SUCCESS) {
    *out = ESYS_TR_NONE;
    tpm_say("cannot start a session");
    return ALN_ERR_TPM;
  }
  TPMA_SESSION mask = TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT;
  if (Esys_TRSess_SetAttributes(esys, *out, TPMA_SESSION_CONTINUESESSION | crypt, mask) != TSS2_RC_SUCCESS) {
    tpm_say("cannot set the session attributes");
    return ALN_ERR_TPM;
  }
  return ALN_OK;
}

static aln_status start_session(struct tpm *t, TPM2_SE type, TPMA_SESSION crypt) {
  return session_start(t->esys, t->primary, &t->session, type, crypt);
}

/* ---- the connection, for other TPM users of the enclave (enclave/tpm_counter.c) -- */

/* A TPM (swtpm, or /dev/tpm0 without the resource manager) serves one client at a
 * time: the enclave's own users (quotes for concurrent Attests, the rollback
 * counter after commits) take turns, a connection each. */
static pthread_mutex_t conn_mu = PTHREAD_MUTEX_INITIALIZER;

aln_status aln_tpm_conn_open(struct aln_tpm_conn *c) {
  struct tpm t;
  ALN_ENSURE(c != NULL, ALN_ERR_USAGE);
  *c = (struct aln_tpm_conn){.primary = ESYS_TR_NONE};
  pthread_mutex_lock(&conn_mu);
  aln_status st = tpm_open(&t);
  if (st != ALN_OK) {
    tpm_close(&t);
    pthread_mutex_unlock(&conn_mu);
    return st;
  }
  *c = (struct aln_tpm_conn){.tcti = t.tcti, .esys = t.esys, .primary = t.primary};
  return ALN_OK;
}

aln_status aln_tpm_conn_session(struct aln_tpm_conn *c, ESYS_TR *out, TPMA_SESSION crypt) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  *out = ESYS_TR_NONE;
  ALN_ENSURE(c != NULL && c->esys != NULL && c->primary != ESYS_TR_NONE, ALN_ERR_USAGE);
  aln_status st = session_start(c->esys, c->primary, out, TPM2_SE_HMAC, crypt);
  if (st != ALN_OK && *out != ESYS_TR_NONE) {
    (void)Esys_FlushContext(c->esys, *out);
    *out = ESYS_TR_NONE;
  }
  return st;
}

void aln_tpm_conn_close(struct aln_tpm_conn *c) {
  if (c == NULL)
    return;
  if (c->esys == NULL && c->tcti == NULL)
    return; /* never opened, or closed already: the turn is not ours */
  struct tpm t = {
      .tcti = c->tcti, .esys = c->esys, .primary = c->primary, .sealed = ESYS_TR_NONE, .session = ESYS_TR_NONE};
  tpm_close(&t);
  *c = (struct aln_tpm_conn){.primary = ESYS_TR_NONE};
  pthread_mutex_unlock(&conn_mu);
}

static void end_session(struct tpm *t) {
  if (t->session != ESYS_TR_NONE)
    (void)Esys_FlushContext(t->esys, t->session);
  t->session = ESYS_TR_NONE;
}

static int rc_is_policy_fail(TSS2_RC rc) {
  return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) != 0 &&
         (rc & (TPM2_RC_FMT1 | 0x3f)) == TPM2_RC_POLICY_FAIL;
}

/* unseal loads |b| under the primary key, satisfies its PolicyPCR with the PCRs'
 * current values and unseals the KEK into |out|. ALN_ERR_KEK_POLICY if the PCRs no
 * longer hold the values the KEK was sealed to. */
static aln_status unseal(struct tpm *t, struct aln_secret *out, const struct aln_tpm_blob *b) {
  static const TPM2B_DIGEST current = {0}; /* empty: the TPM uses the PCRs' current values */
  TPM2B_SENSITIVE_DATA *data = NULL;
  aln_status st = ALN_ERR_TPM;

  if (Esys_Load(t->esys, t->primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &b->priv, &b->pub, &t->sealed) !=
      TSS2_RC_SUCCESS) {
    t->sealed = ESYS_TR_NONE;
    tpm_say("kek.tpm does not load under this TPM's storage key (another TPM, or its owner hierarchy was "
            "cleared); kek.tpm was kept");
    goto out;
  }
  ALN_GUARD_GOTO(st, start_session(t, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT), out);
  if (Esys_PolicyPCR(t->esys, t->session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current, &b->pcrs) !=
      TSS2_RC_SUCCESS) {
    tpm_say("PolicyPCR failed");
    st = ALN_ERR_TPM;
    goto out;
  }
  TSS2_RC rc = Esys_Unseal(t->esys, t->sealed, t->session, ESYS_TR_NONE, ESYS_TR_NONE, &data);
  if (rc_is_policy_fail(rc)) {
    char pcrs[128];
    if (aln_tpm_pcrs_format(pcrs, sizeof(pcrs), &b->pcrs) != ALN_OK)
      strcpy(pcrs, "?");
    fprintf(stderr,
            "aileron-enclave: tpm: the KEK is sealed to PCR values that changed since sealing (%s): the "
            "platform state differs (firmware, boot chain or Secure Boot settings?). Refusing to start; "
            "kek.tpm was kept unchanged for recovery\n",
            pcrs);
    st = ALN_ERR_KEK_POLICY;
    goto out;
  }
  if (rc != TSS2_RC_SUCCESS || data == NULL) {
    tpm_say("Unseal failed");
    st = ALN_ERR_TPM;
    goto out;
  }
  if (data->size != ALN_KEK_LEN) {
    tpm_say("the sealed object does not hold a KEK of the expected size");
    st = ALN_ERR_TAMPERED;
    goto out;
  }
  ALN_GUARD_GOTO(st, aln_secret_from(out, data->buffer, data->size), out);
  st = ALN_OK;
out:
  if (data != NULL) {
    OPENSSL_cleanse(data, sizeof(*data));
    Esys_Free(data);
  }
  end_session(t);
  if (t->sealed != ESYS_TR_NONE)
    (void)Esys_FlushContext(t->esys, t->sealed);
  t->sealed = ESYS_TR_NONE;
  return st;
}

/* seal seals |kek| under PolicyPCR(|pcrs|, current values) and returns the sealed
 * object in |b|. */
static aln_status seal(struct tpm *t, struct aln_tpm_blob *b, const struct aln_secret *kek,
                       const TPML_PCR_SELECTION *pcrs) {
  static const TPM2B_DIGEST current = {0};
  static const TPM2B_DATA no_outside = {0};
  static const TPML_PCR_SELECTION no_pcrs = {0};
  struct aln_secret sens = {0}; /* TPM2B_SENSITIVE_CREATE holding the KEK: locked */
  TPM2B_DIGEST *policy = NULL;
  TPM2B_PRIVATE *priv = NULL;
  TPM2B_PUBLIC *pub = NULL;
  TPM2B_CREATION_DATA *cdata = NULL;
  TPM2B_DIGEST *chash = NULL;
  TPMT_TK_CREATION *ticket = NULL;
  aln_status st = ALN_ERR_TPM;

  memset(b, 0, sizeof(*b));
  ALN_ENSURE_GOTO(st, kek->p != NULL && kek->len == ALN_KEK_LEN, ALN_ERR_USAGE, out);

  /* A trial session computes the policy digest from the PCRs' current values. */
  ALN_GUARD_GOTO(st, start_session(t, TPM2_SE_TRIAL, 0), out);
  st = ALN_ERR_TPM;
  if (Esys_PolicyPCR(t->esys, t->session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current, pcrs) !=
          TSS2_RC_SUCCESS ||
      Esys_PolicyGetDigest(t->esys, t->session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &policy) != TSS2_RC_SUCCESS ||
      policy->size != TPM2_SHA256_DIGEST_SIZE) {
    tpm_say("cannot compute the PCR policy (are the selected PCRs in the SHA-256 bank?)");
    goto out;
  }
  end_session(t);

  TPM2B_PUBLIC tmpl = {.publicArea = {.type = TPM2_ALG_KEYEDHASH,
                                      .nameAlg = TPM2_ALG_SHA256,
                                      /* No userWithAuth: only the policy opens it. */
                                      .objectAttributes = SEALED_ATTRS,
                                      .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL}};
  tmpl.publicArea.authPolicy = *policy;
  ALN_GUARD_GOTO(st, aln_secret_new(&sens, sizeof(TPM2B_SENSITIVE_CREATE)), out);
  TPM2B_SENSITIVE_CREATE *in = (TPM2B_SENSITIVE_CREATE *)(void *)sens.p;
  in->sensitive.data.size = ALN_KEK_LEN;
  memcpy(in->sensitive.data.buffer, kek->p, ALN_KEK_LEN);

  /* The session encrypts inSensitive, the first command parameter. */
  ALN_GUARD_GOTO(st, start_session(t, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT), out);
  st = ALN_ERR_TPM;
  if (Esys_Create(t->esys, t->primary, t->session, ESYS_TR_NONE, ESYS_TR_NONE, in, &tmpl, &no_outside, &no_pcrs, &priv,
                  &pub, &cdata, &chash, &ticket) != TSS2_RC_SUCCESS) {
    tpm_say("cannot create the sealed KEK object");
    goto out;
  }
  b->pub = *pub;
  b->priv = *priv;
  b->pcrs = *pcrs;
  st = ALN_OK;
out:
  end_session(t);
  aln_secret_free(&sens);
  Esys_Free(policy);
  Esys_Free(priv);
  Esys_Free(pub);
  Esys_Free(cdata);
  Esys_Free(chash);
  Esys_Free(ticket);
  return st;
}

aln_status aln_tpm_quote_pcrs(TPML_PCR_SELECTION *out) {
  const char *spec = getenv("AILERON_TPM_QUOTE_PCRS");
  if (spec == NULL || spec[0] == '\0')
    spec = getenv("AILERON_TPM_PCRS");
  return aln_tpm_pcrs_parse(out, spec != NULL && spec[0] != '\0' ? spec : ALN_TPM_PCRS_DEFAULT);
}

/* pcrs_from_env parses AILERON_TPM_PCRS (default sha256:7) into |out|; *set tells
 * whether the variable was given. */
static aln_status pcrs_from_env(TPML_PCR_SELECTION *out, int *set) {
  const char *spec = getenv("AILERON_TPM_PCRS");
  *set = spec != NULL && spec[0] != '\0';
  if (aln_tpm_pcrs_parse(out, *set ? spec : ALN_TPM_PCRS_DEFAULT) != ALN_OK) {
    fprintf(stderr,
            "aileron-enclave: tpm: AILERON_TPM_PCRS '%.64s' is not valid: write sha256: then distinct PCR "
            "numbers 0-23 separated by commas, e.g. sha256:0,7\n",
            *set ? spec : ALN_TPM_PCRS_DEFAULT);
    return ALN_ERR_USAGE;
  }
  return ALN_OK;
}

/* load_existing unseals the KEK of the blob in |file|. */
static aln_status load_existing(struct tpm *t, struct aln_secret *out, const struct aln_secret *file) {
  struct aln_tpm_blob b;
  TPML_PCR_SELECTION want;
  int set = 0;
  char have_s[128], want_s[128];

  ALN_GUARD(pcrs_from_env(&want, &set));
  aln_status st = aln_tpm_blob_decode(&b, file->p, file->len);
  if (st != ALN_OK) {
    fprintf(stderr, "aileron-enclave: tpm: kek.tpm is not a valid sealed KEK (%s); it was left untouched\n",
            aln_strerror(st));
    return st;
  }
  /* The blob fixes the PCRs; an explicit setting that disagrees is an operator
   * error worth stopping for rather than silently ignoring. */
  if (set && memcmp(&want, &b.pcrs, sizeof(want)) != 0) {
    ALN_GUARD(aln_tpm_pcrs_format(have_s, sizeof(have_s), &b.pcrs));
    ALN_GUARD(aln_tpm_pcrs_format(want_s, sizeof(want_s), &want));
    fprintf(stderr, "aileron-enclave: tpm: kek.tpm is sealed to %s but AILERON_TPM_PCRS says %s\n", have_s, want_s);
    return ALN_ERR_USAGE;
  }
  ALN_GUARD(tpm_open(t));
  return unseal(t, out, &b);
}

/* seal_and_write seals |kek|, proves it unseals through the same path a later
 * start takes, and only then writes kek.tpm at |path| (O_EXCL). */
static aln_status seal_and_write(struct tpm *t, const struct aln_secret *kek, const char *path) {
  TPML_PCR_SELECTION pcrs;
  struct aln_tpm_blob b;
  struct aln_secret check = {0};
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  int set = 0;
  aln_status st = ALN_ERR_INTERNAL;

  ALN_GUARD_GOTO(st, pcrs_from_env(&pcrs, &set), out);
  ALN_GUARD_GOTO(st, tpm_open(t), out);
  ALN_GUARD_GOTO(st, seal(t, &b, kek, &pcrs), out);
  ALN_GUARD_GOTO(st, aln_tpm_blob_encode(&enc, &enc_len, &b), out);
  ALN_GUARD_GOTO(st, aln_tpm_blob_decode(&b, enc, enc_len), out);
  ALN_GUARD_GOTO(st, unseal(t, &check, &b), out);
  if (!aln_ct_equal(check.p, check.len, kek->p, kek->len)) {
    tpm_say("the freshly sealed KEK unsealed to another value");
    st = ALN_ERR_TPM;
    goto out;
  }
  ALN_GUARD_GOTO(st, aln_keyfile_write_new(path, enc, enc_len), out);
  st = ALN_OK;
out:
  aln_secret_free(&check);
  free(enc);
  return st;
}

/* create_new makes a new random KEK and seals it into kek.tpm at |path|. */
static aln_status create_new(struct tpm *t, struct aln_secret *out, const char *path) {
  struct aln_secret kek = {0};
  aln_status st = ALN_ERR_INTERNAL;

  ALN_GUARD_GOTO(st, aln_secret_new(&kek, ALN_KEK_LEN), out);
  ALN_ENSURE_GOTO(st, RAND_priv_bytes(kek.p, ALN_KEK_LEN) == 1, ALN_ERR_CRYPTO, out);
  ALN_GUARD_GOTO(st, seal_and_write(t, &kek, path), out);
  *out = kek;
  kek = (struct aln_secret){0};
  st = ALN_OK;
out:
  aln_secret_free(&kek);
  return st;
}

/* read_sealed reads the sealed KEK in |path| and unseals it. */
static aln_status read_sealed(struct tpm *t, struct aln_secret *out, const char *path) {
  struct aln_secret file = {0};
  aln_status st = aln_keyfile_read(&file, path, ALN_TPM_BLOB_MAX);
  if (st == ALN_OK)
    st = load_existing(t, out, &file);
  else if (st == ALN_ERR_TOO_LARGE)
    tpm_say("the sealed KEK file is larger than any sealed KEK; it was left untouched");
  aln_secret_free(&file);
  return st;
}

aln_status aln_tpm_kek_read(struct aln_secret *out, const char *data_dir, const char *file) {
  char path[PATH_MAX];
  struct tpm t = {.primary = ESYS_TR_NONE, .sealed = ESYS_TR_NONE, .session = ESYS_TR_NONE};

  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(data_dir != NULL && data_dir[0] != '\0', ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(path, data_dir, file, NULL));
  aln_status st = read_sealed(&t, out, path);
  tpm_close(&t);
  return st;
}

aln_status aln_tpm_kek_load(struct aln_secret *out, const char *data_dir) {
  char path[PATH_MAX], db[PATH_MAX];
  struct tpm t = {.primary = ESYS_TR_NONE, .sealed = ESYS_TR_NONE, .session = ESYS_TR_NONE};
  struct stat sb;
  aln_status st = ALN_ERR_INTERNAL;

  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  ALN_ENSURE(data_dir != NULL && data_dir[0] != '\0', ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(path, data_dir, "kek.tpm", NULL));
  ALN_GUARD(aln_path_join(db, data_dir, "escrow.db", NULL));

  st = read_sealed(&t, out, path);
  if (st == ALN_ERR_NOT_FOUND) {
    /* A new KEK could not open what an existing escrow holds: stop instead. */
    if (stat(db, &sb) == 0 || errno != ENOENT) {
      tpm_say("kek.tpm is missing but escrow.db exists: refusing to make a new KEK that cannot open it");
      st = ALN_ERR_NOT_FOUND;
    } else {
      st = create_new(&t, out, path);
    }
  }
  tpm_close(&t);
  return st;
}

aln_status aln_tpm_kek_install(const struct aln_secret *kek, const char *data_dir, const char *file) {
  char path[PATH_MAX];
  struct tpm t = {.primary = ESYS_TR_NONE, .sealed = ESYS_TR_NONE, .session = ESYS_TR_NONE};
  struct stat sb;

  ALN_ENSURE(kek != NULL && kek->p != NULL && kek->len == ALN_KEK_LEN, ALN_ERR_USAGE);
  ALN_ENSURE(data_dir != NULL && data_dir[0] != '\0', ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(path, data_dir, file, NULL));
  /* Checked before touching the TPM; the O_EXCL write is the real guard. */
  ALN_ENSURE(lstat(path, &sb) != 0, ALN_ERR_EXISTS);
  ALN_ENSURE(errno == ENOENT, ALN_ERR_IO);
  aln_status st = seal_and_write(&t, kek, path);
  tpm_close(&t);
  return st;
}
