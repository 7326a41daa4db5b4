/* The TPM NV counter behind the tpm provider's rollback protection: define, check,
 * read and increment one TPM_NT_COUNTER index through ESYS. The TPM connection is
 * opened lazily by the first call of a run and closed by |done|, so nothing holds
 * the TPM between custody writes.
 *
 * Authorization: reads use the index's own (empty) auth (TPMA_NV_AUTHREAD),
 * increments and the definition the owner hierarchy's (empty, as the KEK sealing
 * assumes), each through one HMAC session salted by the owner's primary storage
 * key. The session key is known only to us and the TPM, so ESYS's check of each
 * response HMAC proves the value read and the success of an increment. The command
 * HMACs include the index's name (a hash of its public area), so if something on
 * the bus showed us a public area other than the TPM's, the TPM refuses the
 * command instead of our accepting its answer. As for the KEK, the primary key is
 * not yet checked against an EK certificate (SECURITY.md). */
#include "enclave/tpm_counter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_esys.h>

#include "enclave/provider_tpm.h"

#define COUNTER_SIZE 8

struct tpm_counter {
  uint32_t nv_index;
  struct aln_tpm_conn conn;
  int open;
  ESYS_TR session;
  ESYS_TR nv;    /* the index, once looked up or defined */
  TPMA_NV attrs; /* its attributes as last seen, TPMA_NV_WRITTEN included */
};

static void say(const struct tpm_counter *t, const char *msg) {
  fprintf(stderr, "aileron-enclave: tpm counter 0x%08x: %s\n", t->nv_index, msg);
}

static int rc_is(TSS2_RC rc, TSS2_RC base) {
  if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
    return 0;
  if (rc & TPM2_RC_FMT1)
    return (rc & (TPM2_RC_FMT1 | 0x3f)) == base;
  return (rc & 0xfff) == base;
}

aln_status aln_tpm_nv_index_parse(uint32_t *out, const char *s) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  *out = 0;
  ALN_ENSURE(s != NULL && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'), ALN_ERR_USAGE);
  uint32_t v = 0;
  size_t n = 0;
  for (const char *p = s + 2; *p != '\0'; p++, n++) {
    unsigned d;
    if (*p >= '0' && *p <= '9')
      d = (unsigned)(*p - '0');
    else if (*p >= 'a' && *p <= 'f')
      d = (unsigned)(*p - 'a' + 10);
    else if (*p >= 'A' && *p <= 'F')
      d = (unsigned)(*p - 'A' + 10);
    else
      return ALN_ERR_USAGE;
    ALN_ENSURE(n < 8, ALN_ERR_USAGE);
    v = (v << 4) | d;
  }
  ALN_ENSURE(n > 0 && v >= ALN_TPM_NV_INDEX_MIN && v <= ALN_TPM_NV_INDEX_MAX, ALN_ERR_USAGE);
  *out = v;
  return ALN_OK;
}

int aln_tpm_counter_public_ok(const TPMS_NV_PUBLIC *pub, uint32_t nv_index) {
  return pub != NULL && pub->nvIndex == nv_index && pub->nameAlg == TPM2_ALG_SHA256 &&
         (pub->attributes & ~TPMA_NV_WRITTEN) == ALN_TPM_COUNTER_ATTRS && pub->authPolicy.size == 0 &&
         pub->dataSize == COUNTER_SIZE;
}

static void counter_done(void *ctx) {
  struct tpm_counter *t = ctx;
  if (!t->open)
    return;
  if (t->nv != ESYS_TR_NONE)
    (void)Esys_TR_Close(t->conn.esys, &t->nv);
  if (t->session != ESYS_TR_NONE)
    (void)Esys_FlushContext(t->conn.esys, t->session);
  t->nv = t->session = ESYS_TR_NONE;
  aln_tpm_conn_close(&t->conn);
  t->open = 0;
}

static aln_status ensure_open(struct tpm_counter *t) {
  if (t->open)
    return ALN_OK;
  ALN_GUARD(aln_tpm_conn_open(&t->conn));
  t->open = 1;
  /* No parameter encryption: nothing here is secret; the HMACs are what count. */
  aln_status st = aln_tpm_conn_session(&t->conn, &t->session, 0);
  if (st != ALN_OK)
    counter_done(t);
  return st;
}

/* lookup finds the index: ALN_ERR_NOT_FOUND if it is not defined, ALN_ERR_TAMPERED
 * if its public area is not ours. Sets t->nv and t->attrs. */
static aln_status lookup(struct tpm_counter *t) {
  TPM2B_NV_PUBLIC *pub = NULL;
  TPM2B_NAME *name = NULL;
  aln_status st = ALN_ERR_TPM;

  if (t->nv != ESYS_TR_NONE)
    return ALN_OK;
  /* Asked first, so that a missing index (every first start) is not an error
   * ESYS logs. An answer faked on the bus can only make us refuse or fail. */
  TPMS_CAPABILITY_DATA *cap = NULL;
  TPMI_YES_NO more = TPM2_NO;
  if (Esys_GetCapability(t->conn.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, t->nv_index, 1,
                         &more, &cap) != TSS2_RC_SUCCESS ||
      cap == NULL) {
    Esys_Free(cap);
    say(t, "cannot list the TPM's NV indices");
    return ALN_ERR_TPM;
  }
  int present = cap->data.handles.count >= 1 && cap->data.handles.handle[0] == t->nv_index;
  Esys_Free(cap);
  if (!present)
    return ALN_ERR_NOT_FOUND;
  TSS2_RC rc = Esys_TR_FromTPMPublic(t->conn.esys, t->nv_index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &t->nv);
  if (rc != TSS2_RC_SUCCESS) {
    t->nv = ESYS_TR_NONE;
    if (rc_is(rc, TPM2_RC_HANDLE))
      return ALN_ERR_NOT_FOUND;
    say(t, "cannot look the index up");
    return ALN_ERR_TPM;
  }
  if (Esys_NV_ReadPublic(t->conn.esys, t->nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name) !=
      TSS2_RC_SUCCESS) {
    say(t, "cannot read the index's public area");
    goto out;
  }
  if (!aln_tpm_counter_public_ok(&pub->nvPublic, t->nv_index)) {
    fprintf(stderr,
            "aileron-enclave: tpm counter 0x%08x: the index exists but is not the counter this enclave defines "
            "(attributes 0x%08x, want 0x%08x; name algorithm 0x%04x; size %u; policy %u bytes)\n",
            t->nv_index, (unsigned)(pub->nvPublic.attributes & ~TPMA_NV_WRITTEN), (unsigned)ALN_TPM_COUNTER_ATTRS,
            (unsigned)pub->nvPublic.nameAlg, (unsigned)pub->nvPublic.dataSize, (unsigned)pub->nvPublic.authPolicy.size);
    st = ALN_ERR_TAMPERED;
    goto out;
  }
  t->attrs = pub->nvPublic.attributes;
  st = ALN_OK;
out:
  Esys_Free(pub);
  Esys_Free(name);
  if (st != ALN_OK && t->nv != ESYS_TR_NONE) {
    (void)Esys_TR_Close(t->conn.esys, &t->nv);
    t->nv = ESYS_TR_NONE;
  }
  return st;
}

static aln_status do_increment(struct tpm_counter *t) {
  TSS2_RC rc = Esys_NV_Increment(t->conn.esys, ESYS_TR_RH_OWNER, t->nv, t->session, ESYS_TR_NONE, ESYS_TR_NONE);
  if (rc != TSS2_RC_SUCCESS) {
    if (rc_is(rc, TPM2_RC_NV_RATE))
      say(t, "the TPM is rate-limiting NV writes; the increment is retried at the next write or start");
    else if (rc_is(rc, TPM2_RC_AUTH_FAIL) || rc_is(rc, TPM2_RC_BAD_AUTH))
      say(t, "the owner hierarchy refused the increment (owner auth set? only an empty one is supported)");
    else
      say(t, "the increment failed");
    return ALN_ERR_TPM;
  }
  t->attrs |= TPMA_NV_WRITTEN;
  return ALN_OK;
}

static aln_status counter_read(void *ctx, uint64_t *out) {
  struct tpm_counter *t = ctx;
  TPM2B_MAX_NV_BUFFER *data = NULL;
  aln_status st = ALN_ERR_TPM;

  ALN_GUARD(ensure_open(t));
  ALN_GUARD(lookup(t));
  if (!(t->attrs & TPMA_NV_WRITTEN)) {
    /* Ours are incremented right after they are defined: this one was defined
     * anew since (its name is the same, its history is not). */
    say(t, "the index has never been incremented: it was redefined since this enclave recorded it");
    return ALN_ERR_TAMPERED;
  }
  TSS2_RC rc = Esys_NV_Read(t->conn.esys, t->nv, t->nv, t->session, ESYS_TR_NONE, ESYS_TR_NONE, COUNTER_SIZE, 0, &data);
  if (rc != TSS2_RC_SUCCESS || data == NULL || data->size != COUNTER_SIZE) {
    say(t, "cannot read the counter (or its answer failed the session HMAC)");
    goto out;
  }
  uint64_t v = 0;
  for (int i = 0; i < COUNTER_SIZE; i++)
    v = (v << 8) | data->buffer[i];
  *out = v;
  st = ALN_OK;
out:
  Esys_Free(data);
  return st;
}

static aln_status counter_create(void *ctx, uint64_t *out) {
  struct tpm_counter *t = ctx;
  static const TPM2B_AUTH no_auth = {0};

  ALN_GUARD(ensure_open(t));
  aln_status st = lookup(t);
  if (st == ALN_ERR_NOT_FOUND) {
    TPM2B_NV_PUBLIC info = {.nvPublic = {.nvIndex = t->nv_index,
                                         .nameAlg = TPM2_ALG_SHA256,
                                         .attributes = ALN_TPM_COUNTER_ATTRS,
                                         .dataSize = COUNTER_SIZE}};
    if (Esys_NV_DefineSpace(t->conn.esys, ESYS_TR_RH_OWNER, t->session, ESYS_TR_NONE, ESYS_TR_NONE, &no_auth, &info,
                            &t->nv) != TSS2_RC_SUCCESS) {
      t->nv = ESYS_TR_NONE;
      say(t, "cannot define the counter under the owner hierarchy (owner auth set? NV full?)");
      return ALN_ERR_TPM;
    }
    t->attrs = ALN_TPM_COUNTER_ATTRS;
    fprintf(stderr, "aileron-enclave: tpm counter 0x%08x: defined\n", t->nv_index);
  } else if (st != ALN_OK) {
    return st;
  }
  /* A counter has no value until its first increment, which sets it to at least
   * the highest any counter of this TPM ever had. */
  if (!(t->attrs & TPMA_NV_WRITTEN))
    ALN_GUARD(do_increment(t));
  return counter_read(t, out);
}

static aln_status counter_increment(void *ctx) {
  struct tpm_counter *t = ctx;
  ALN_GUARD(ensure_open(t));
  ALN_GUARD(lookup(t));
  ALN_ENSURE(t->attrs & TPMA_NV_WRITTEN, ALN_ERR_TAMPERED);
  return do_increment(t);
}

static void counter_free(void *ctx) {
  struct tpm_counter *t = ctx;
  if (t == NULL)
    return;
  counter_done(t);
  free(t);
}

aln_status aln_tpm_counter_new(struct aln_epoch_counter **out) {
  uint32_t idx = ALN_TPM_NV_INDEX_DEFAULT;

  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  *out = NULL;
  const char *s = getenv("AILERON_TPM_NV_INDEX");
  if (s != NULL && s[0] != '\0' && aln_tpm_nv_index_parse(&idx, s) != ALN_OK) {
    fprintf(stderr,
            "aileron-enclave: AILERON_TPM_NV_INDEX '%.32s' is not valid: write an NV index of the TCG owner range "
            "in hex, 0x%08x to 0x%08x (default 0x%08x)\n",
            s, ALN_TPM_NV_INDEX_MIN, ALN_TPM_NV_INDEX_MAX, ALN_TPM_NV_INDEX_DEFAULT);
    return ALN_ERR_USAGE;
  }
  struct tpm_counter *t = calloc(1, sizeof(*t));
  struct aln_epoch_counter *c = calloc(1, sizeof(*c));
  if (t == NULL || c == NULL) {
    free(t);
    free(c);
    return ALN_ERR_NOMEM;
  }
  t->nv_index = idx;
  t->session = t->nv = ESYS_TR_NONE;
  t->conn.primary = ESYS_TR_NONE;
  *c = (struct aln_epoch_counter){.nv_index = idx,
                                  .ctx = t,
                                  .read = counter_read,
                                  .create = counter_create,
                                  .increment = counter_increment,
                                  .done = counter_done,
                                  .ctx_free = counter_free};
  *out = c;
  return ALN_OK;
}
