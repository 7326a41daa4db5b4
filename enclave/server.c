/* The enclave's RPC server (see server.h). Each connection runs in its own thread;
 * the dispatch table below is the whole of what a host can ask. */
#include "enclave/server.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "aileron/v1/enclave.pb-c.h"
#include "attestation/binding.h"
#include "enclave/dest.h"
#include "enclave/upstream.h"
#include "proto/channel.h"
#include "proto/keyfile.h"
#include "proto/names.h"
#include "proto/net.h"
#include "proto/tls.h"

#define STATE_ENROLLED 0x1u
#define STATE_ATTESTED 0x2u
#define MAX_PREFIXES 16
#define MAX_CA_PEM (64 * 1024)
#define MAX_ACTOR 128
_Static_assert(ALN_URL_MAX <= ALN_AUDIT_DEST_MAX, "an audit row must hold every URL a use accepts");
#define ED25519_PUB_LEN 32
#define LIST_PAGE_DEFAULT 100 /* ListCredentialsRequest.page_size 0 */

struct conn {
  struct aln_server *srv;
  pthread_t thread;
  int fd;
  int in_use; /* slot taken; guarded by srv->mu */
  int done;   /* thread finished; guarded by srv->mu */
  SSL *ssl;
  unsigned state;
  char host_key[2 * ALN_SPKI_HASH_LEN + 1];
};

struct aln_server {
  SSL_CTX *ctx;
  EVP_PKEY *sign_key;
  uint8_t sign_pub[ED25519_PUB_LEN];
  int listen_fd;
  int port;
  const struct aln_provider *provider;
  const char *data_dir;
  struct aln_escrow *escrow;
  pthread_mutex_t mu;
  struct conn conns[ALN_SERVER_MAX_CONNS];
};

/* ---- responses ---------------------------------------------------------------- */

static aln_status send_status(struct conn *c, aln_status st) {
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.status = (uint32_t)st;
  resp.message = (char *)aln_strerror(st);
  return aln_channel_send_response(c->ssl, &resp);
}

static aln_status send_ok(struct conn *c, Aileron__V1__Response *resp) {
  resp->status = ALN_OK;
  resp->message = (char *)aln_strerror(ALN_OK);
  return aln_channel_send_response(c->ssl, resp);
}

/* The contract's credential kinds and the escrow's stored ones are two enums on
 * purpose (wire values and stored values may not always line up); these two
 * functions are the only place that maps one to the other. */
static aln_status kind_from_proto(uint32_t *out, Aileron__V1__CredentialKind kind) {
  switch (kind) {
  case AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_UNSPECIFIED: /* a host from before kinds */
  case AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET:
    *out = ALN_CRED_KIND_SECRET;
    return ALN_OK;
  default:
    /* An open proto3 enum carries any number: refuse what this build cannot
     * seal and use rather than store it as something else. */
    return ALN_ERR_USAGE;
  }
}

static aln_status kind_to_proto(Aileron__V1__CredentialKind *out, uint32_t kind) {
  switch (kind) {
  case ALN_CRED_KIND_SECRET:
    *out = AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET;
    return ALN_OK;
  default:
    return ALN_ERR_TAMPERED; /* the escrow opens only kinds it knows */
  }
}

/* info_from_meta fills |info| from escrow metadata. *bind_out owns the unpacked
 * binding that |info| points into (free with aileron__v1__binding__free_unpacked).
 * The CA PEM is not echoed back: has_ca says whether one is set. */
static aln_status info_from_meta(Aileron__V1__CredentialInfo *info, Aileron__V1__Binding **bind_out,
                                 struct aln_cred_meta *m) {
  Aileron__V1__CredentialKind kind;
  ALN_GUARD(kind_to_proto(&kind, m->kind));
  Aileron__V1__Binding *b = aileron__v1__binding__unpack(NULL, m->binding_len, m->binding);
  ALN_ENSURE(b != NULL, ALN_ERR_TAMPERED);
  info->name = m->name;
  info->version = m->version;
  info->created_at = m->created_at;
  info->expires_at = m->expires_at;
  info->revoked = m->revoked != 0;
  info->kind = kind;
  info->has_ca = b->ca_pem.len > 0;
  b->ca_pem.len = 0; /* not packed; data is still freed with |b| */
  info->binding = b;
  *bind_out = b;
  return ALN_OK;
}

/* audit_event describes one decision of connection |c|; |dest| (ALN_URL_MAX + 1
 * bytes) receives the destination, which the event points to. */
static struct aln_audit_event audit_event(struct conn *c, char *dest, const char *action, const char *credential,
                                          const char *method, const char *url, aln_status result, long http_status,
                                          const char *actor) {
  dest[0] = '\0';
  if (url != NULL) {
    /* The query string may carry the agent's own data: keep only the destination. */
    size_t n = strcspn(url, "?#");
    if (n > ALN_URL_MAX)
      n = ALN_URL_MAX;
    memcpy(dest, url, n);
    dest[n] = '\0';
  }
  return (struct aln_audit_event){
      .time = (int64_t)time(NULL),
      .actor = actor,
      .host_key = c->host_key,
      .action = action,
      .credential = credential,
      .method = method,
      .destination = dest,
      .decision = result == ALN_OK ? "allow" : "deny",
      .result = result,
      .http_status = http_status,
  };
}

/* audit appends one row on its own. No audit row, no answer: an operation that
 * cannot be recorded is reported as failed (*st). */
static void audit(struct conn *c, aln_status *st, const char *action, const char *credential, const char *method,
                  const char *url, aln_status result, long http_status, const char *actor) {
  char dest[ALN_URL_MAX + 1];
  struct aln_audit_event ev = audit_event(c, dest, action, credential, method, url, result, http_status, actor);
  aln_status ast = aln_escrow_audit_append(c->srv->escrow, &ev);
  if (ast != ALN_OK && st != NULL)
    *st = ast;
}

/* ---- handlers ----------------------------------------------------------------- */

static aln_status handle_health(struct conn *c, const Aileron__V1__Request *req) {
  (void)req;
  Aileron__V1__HealthResponse h = AILERON__V1__HEALTH_RESPONSE__INIT;
  h.version = ALN_VERSION;
  h.tee_provider = (char *)c->srv->provider->name;
  h.attested = (c->state & STATE_ATTESTED) != 0;
  h.enrolled = (c->state & STATE_ENROLLED) != 0;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_HEALTH;
  resp.health = &h;
  return send_ok(c, &resp);
}

static aln_status handle_attest(struct conn *c, const Aileron__V1__Request *req) {
  const Aileron__V1__AttestRequest *a = req->attest;
  ALN_ENSURE(a != NULL && a->host_nonce.len == ALN_HOST_NONCE_LEN, ALN_ERR_USAGE);
  uint8_t exporter[ALN_EXPORTER_LEN], binding[ALN_BINDING_LEN];
  ALN_GUARD(aln_tls_exporter(exporter, c->ssl));
  ALN_GUARD(aln_binding_compute(binding, a->host_nonce.data, a->host_nonce.len, exporter, c->srv->sign_pub,
                                sizeof(c->srv->sign_pub)));
  uint8_t *ev = NULL;
  size_t ev_len = 0;
  ALN_GUARD(c->srv->provider->evidence(&ev, &ev_len, c->srv->data_dir, c->srv->sign_key, binding));
  Aileron__V1__AttestResponse ar = AILERON__V1__ATTEST_RESPONSE__INIT;
  ar.evidence_kind = (char *)c->srv->provider->evidence_kind;
  ar.evidence.data = ev;
  ar.evidence.len = ev_len;
  ar.signing_public_key.data = c->srv->sign_pub;
  ar.signing_public_key.len = sizeof(c->srv->sign_pub);
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_ATTEST;
  resp.attest = &ar;
  aln_status st = send_ok(c, &resp);
  free(ev);
  if (st == ALN_OK)
    c->state |= STATE_ATTESTED;
  return st;
}

static aln_status ca_pem_valid(const ProtobufCBinaryData *pem) {
  ALN_ENSURE(pem->len <= MAX_CA_PEM, ALN_ERR_TOO_LARGE);
  BIO *bio = BIO_new_mem_buf(pem->data, (int)pem->len);
  ALN_ENSURE(bio != NULL, ALN_ERR_NOMEM);
  X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  BIO_free(bio);
  ERR_clear_error();
  ALN_ENSURE(cert != NULL, ALN_ERR_USAGE);
  X509_free(cert);
  return ALN_OK;
}

/* binding_valid checks a binding and the secret it will carry before they are
 * sealed: what cannot be used later is refused now, with a clear error, rather than
 * at the first use. */
static aln_status binding_valid(const Aileron__V1__Binding *b, const ProtobufCBinaryData *secret) {
  ALN_GUARD(aln_upstream_injection_valid(b, secret->data, secret->len));
  ALN_ENSURE(b->n_allowed_prefixes >= 1 && b->n_allowed_prefixes <= MAX_PREFIXES, ALN_ERR_BAD_URL);
  for (size_t i = 0; i < b->n_allowed_prefixes; i++)
    ALN_GUARD(aln_dest_prefix_valid(b->allowed_prefixes[i]));
  if (b->ca_pem.len > 0)
    ALN_GUARD(ca_pem_valid(&b->ca_pem));
  return ALN_OK;
}

static aln_status answer_info(struct conn *c, struct aln_cred_meta *m, Aileron__V1__Response__BodyCase which) {
  Aileron__V1__CredentialInfo info = AILERON__V1__CREDENTIAL_INFO__INIT;
  Aileron__V1__Binding *b = NULL;
  ALN_GUARD(info_from_meta(&info, &b, m));
  Aileron__V1__PutCredentialResponse put = AILERON__V1__PUT_CREDENTIAL_RESPONSE__INIT;
  Aileron__V1__RevokeCredentialResponse rev = AILERON__V1__REVOKE_CREDENTIAL_RESPONSE__INIT;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = which;
  if (which == AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL) {
    put.credential = &info;
    resp.put_credential = &put;
  } else {
    rev.credential = &info;
    resp.revoke_credential = &rev;
  }
  aln_status st = send_ok(c, &resp);
  aileron__v1__binding__free_unpacked(b, NULL);
  return st;
}

static aln_status handle_put(struct conn *c, const Aileron__V1__Request *req) {
  const Aileron__V1__PutCredentialRequest *p = req->put_credential;
  aln_status st = ALN_ERR_INTERNAL;
  uint8_t *blob = NULL;
  size_t blob_len = 0;
  struct aln_cred_meta meta = {0};
  uint32_t kind = 0;

  ALN_ENSURE(p != NULL && p->name != NULL, ALN_ERR_USAGE);
  ALN_ENSURE_GOTO(st, aln_cred_name_valid_str(p->name), ALN_ERR_BAD_NAME, out);
  ALN_GUARD_GOTO(st, kind_from_proto(&kind, p->kind), out);
  ALN_ENSURE_GOTO(st, p->expires_at >= 0, ALN_ERR_USAGE, out);
  ALN_GUARD_GOTO(st, binding_valid(p->binding, &p->secret), out);
  /* Re-pack the binding we validated: the sealed bytes are ours, not the peer's. */
  blob_len = protobuf_c_message_get_packed_size(&p->binding->base);
  ALN_ENSURE_GOTO(st, blob_len > 0 && blob_len <= ALN_BINDING_MAX, ALN_ERR_TOO_LARGE, out);
  blob = malloc(blob_len);
  ALN_ENSURE_GOTO(st, blob != NULL, ALN_ERR_NOMEM, out);
  protobuf_c_message_pack(&p->binding->base, blob);
  /* The write and its audit row commit together: a crash cannot keep one alone. */
  char dest[ALN_URL_MAX + 1];
  struct aln_audit_event ev = audit_event(c, dest, "put", p->name, NULL, NULL, ALN_OK, 0, "operator");
  struct aln_cred_input in = {.name = p->name,
                              .kind = kind,
                              .secret = p->secret.data,
                              .secret_len = p->secret.len,
                              .binding = blob,
                              .binding_len = blob_len,
                              .expires_at = p->expires_at,
                              .replace = p->replace};
  st = aln_escrow_put(c->srv->escrow, &meta, &in, &ev);
out:
  if (st != ALN_OK) /* refused: nothing changed, record the refusal */
    audit(c, &st, "put", p->name, NULL, NULL, st, 0, "operator");
  if (st == ALN_OK)
    st = answer_info(c, &meta, AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL);
  aln_cred_meta_cleanup(&meta);
  free(blob);
  return st;
}

/* handle_list answers one page: at most page_size credentials after page_after,
 * and where the next page starts. The whole list is never built at once. */
static aln_status handle_list(struct conn *c, const Aileron__V1__Request *req) {
  const Aileron__V1__ListCredentialsRequest *l = req->list_credentials;
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_cred_meta *list = NULL;
  size_t num = 0, done = 0;
  Aileron__V1__CredentialInfo *infos = NULL, **ptrs = NULL;
  Aileron__V1__Binding **binds = NULL;
  int more = 0;

  ALN_ENSURE(l != NULL, ALN_ERR_USAGE);
  /* Refused rather than clamped: a caller asking for more than a page would
   * otherwise take a short page for the end of the list. */
  ALN_ENSURE(l->page_size <= ALN_LIST_PAGE_MAX, ALN_ERR_USAGE);
  size_t limit = l->page_size == 0 ? LIST_PAGE_DEFAULT : l->page_size;
  const char *after = l->page_after != NULL ? l->page_after : "";
  ALN_ENSURE(after[0] == '\0' || aln_cred_name_valid_str(after), ALN_ERR_BAD_NAME);
  ALN_GUARD(aln_escrow_list(c->srv->escrow, after, limit, &list, &num, &more));
  infos = calloc(num ? num : 1, sizeof(*infos));
  ptrs = calloc(num ? num : 1, sizeof(*ptrs));
  binds = calloc(num ? num : 1, sizeof(*binds));
  ALN_ENSURE_GOTO(st, infos && ptrs && binds, ALN_ERR_NOMEM, out);
  for (; done < num; done++) {
    aileron__v1__credential_info__init(&infos[done]);
    ALN_GUARD_GOTO(st, info_from_meta(&infos[done], &binds[done], &list[done]), out);
    ptrs[done] = &infos[done];
  }
  Aileron__V1__ListCredentialsResponse lr = AILERON__V1__LIST_CREDENTIALS_RESPONSE__INIT;
  lr.n_credentials = num;
  lr.credentials = ptrs;
  /* more implies a non-empty page (limit >= 1): the next one starts after its last name. */
  if (more && num > 0)
    lr.next_page_after = list[num - 1].name;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS;
  resp.list_credentials = &lr;
  st = send_ok(c, &resp);
out:
  for (size_t i = 0; binds != NULL && i < done; i++)
    aileron__v1__binding__free_unpacked(binds[i], NULL);
  free(binds);
  free(ptrs);
  free(infos);
  aln_escrow_list_free(list, num);
  return st;
}

static aln_status handle_revoke(struct conn *c, const Aileron__V1__Request *req) {
  const Aileron__V1__RevokeCredentialRequest *r = req->revoke_credential;
  ALN_ENSURE(r != NULL && r->name != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(aln_cred_name_valid_str(r->name), ALN_ERR_BAD_NAME);
  struct aln_cred_meta meta = {0};
  char dest[ALN_URL_MAX + 1];
  struct aln_audit_event ev = audit_event(c, dest, "revoke", r->name, NULL, NULL, ALN_OK, 0, "operator");
  aln_status st = aln_escrow_revoke(c->srv->escrow, &meta, r->name, &ev);
  if (st != ALN_OK)
    audit(c, &st, "revoke", r->name, NULL, NULL, st, 0, "operator");
  if (st == ALN_OK)
    st = answer_info(c, &meta, AILERON__V1__RESPONSE__BODY_REVOKE_CREDENTIAL);
  aln_cred_meta_cleanup(&meta);
  return st;
}

/* use_open unseals the credential |u| names and checks its destination against the
 * sealed binding: everything that can refuse a use before it happens. */
static aln_status use_open(struct conn *c, struct aln_secret *secret, struct aln_cred_meta *meta,
                           Aileron__V1__Binding **b, const Aileron__V1__UseCredentialRequest *u) {
  ALN_GUARD(aln_escrow_unseal(c->srv->escrow, secret, meta, u->name, (int64_t)time(NULL)));
  *b = aileron__v1__binding__unpack(NULL, meta->binding_len, meta->binding);
  ALN_ENSURE(*b != NULL, ALN_ERR_TAMPERED);
  return aln_dest_check(u->url, (const char *const *)(*b)->allowed_prefixes, (*b)->n_allowed_prefixes);
}

static aln_status handle_use(struct conn *c, const Aileron__V1__Request *req) {
  const Aileron__V1__UseCredentialRequest *u = req->use_credential;
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_secret secret = {0};
  struct aln_cred_meta meta = {0};
  Aileron__V1__Binding *b = NULL;
  struct aln_upstream_response up = {0};
  Aileron__V1__Header *hdrs = NULL, **hptrs = NULL;
  char actor[MAX_ACTOR + 1] = "";

  ALN_ENSURE(u != NULL && u->name != NULL && u->url != NULL && u->method != NULL, ALN_ERR_USAGE);
  ALN_ENSURE(aln_cred_name_valid_str(u->name), ALN_ERR_BAD_NAME);
  ALN_ENSURE(strlen(u->url) <= ALN_URL_MAX && strlen(u->method) <= 16, ALN_ERR_USAGE);
  if (u->actor != NULL)
    snprintf(actor, sizeof(actor), "%s", u->actor);

  st = use_open(c, &secret, &meta, &b, u);
  if (st != ALN_OK) {
    /* Refused before anything left the enclave: the refusal is recorded before
     * the answer (no row, no answer). */
    audit(c, &st, "use", u->name, u->method, u->url, st, 0, actor);
    goto out;
  }
  /* Write-ahead: the row saying this use was allowed, and where it goes, is durable
   * before the credential leaves the enclave. If it cannot be written (a full disk)
   * the use does not happen: no row, no use. The upstream's answer goes back to the
   * host, not into the audit row, which would take a second durable write per use. */
  char dest[ALN_URL_MAX + 1];
  struct aln_audit_event ev = audit_event(c, dest, "use", u->name, u->method, u->url, ALN_OK, 0, actor);
  /* The row commits only if the credential is still live at the version unsealed:
   * a revoke acknowledged since then must stop this use. */
  st = aln_escrow_audit_use(c->srv->escrow, &ev, u->name, meta.version);
  if (st == ALN_ERR_REVOKED || st == ALN_ERR_NOT_FOUND) {
    audit(c, &st, "use", u->name, u->method, u->url, st, 0, actor);
    goto out;
  }
  if (st != ALN_OK) {
    fprintf(stderr, "aileron-enclave: refused a use of %.64s: its audit row could not be written (%s)\n", u->name,
            aln_status_name(st));
    goto out;
  }
  st = aln_upstream_perform(&up, b, &secret, u);
  aln_secret_free(&secret);
  if (st != ALN_OK)
    goto out;

  hdrs = calloc(up.num_headers ? up.num_headers : 1, sizeof(*hdrs));
  hptrs = calloc(up.num_headers ? up.num_headers : 1, sizeof(*hptrs));
  ALN_ENSURE_GOTO(st, hdrs && hptrs, ALN_ERR_NOMEM, out);
  for (size_t i = 0; i < up.num_headers; i++) {
    aileron__v1__header__init(&hdrs[i]);
    hdrs[i].name = up.headers[i].name;
    hdrs[i].value = up.headers[i].value;
    hptrs[i] = &hdrs[i];
  }
  Aileron__V1__UseCredentialResponse ur = AILERON__V1__USE_CREDENTIAL_RESPONSE__INIT;
  ur.http_status = (uint32_t)up.http_status;
  ur.n_headers = up.num_headers;
  ur.headers = hptrs;
  ur.body.data = up.body;
  ur.body.len = up.body_len;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_USE_CREDENTIAL;
  resp.use_credential = &ur;
  st = send_ok(c, &resp);
out:
  aln_secret_free(&secret);
  free(hptrs);
  free(hdrs);
  aln_upstream_response_cleanup(&up);
  if (b != NULL)
    aileron__v1__binding__free_unpacked(b, NULL);
  aln_cred_meta_cleanup(&meta);
  return st;
}

/* ---- dispatch ----------------------------------------------------------------- */

struct rpc {
  Aileron__V1__Request__BodyCase kind;
  unsigned required; /* state bits the connection must have */
  aln_status denial; /* status when it does not */
  aln_status (*handler)(struct conn *c, const Aileron__V1__Request *req);
};

/* handle_tpm_enroll_info answers with the EK certificate and the AK's public area,
 * for a host that enrolls the AK by credential activation. Nothing secret. */
static aln_status handle_tpm_enroll_info(struct conn *c, const Aileron__V1__Request *req) {
  (void)req;
  ALN_ENSURE(c->srv->provider->tpm_enroll_info != NULL, ALN_ERR_UNEXPECTED); /* not a tpm enclave */
  uint8_t *cert = NULL, *ak = NULL;
  size_t cert_len = 0, ak_len = 0;
  ALN_GUARD(c->srv->provider->tpm_enroll_info(&cert, &cert_len, &ak, &ak_len, c->srv->data_dir));
  Aileron__V1__TpmEnrollInfoResponse r = AILERON__V1__TPM_ENROLL_INFO_RESPONSE__INIT;
  r.ek_certificate.data = cert;
  r.ek_certificate.len = cert_len;
  r.ak_public.data = ak;
  r.ak_public.len = ak_len;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_TPM_ENROLL_INFO;
  resp.tpm_enroll_info = &r;
  aln_status st = send_ok(c, &resp);
  free(cert);
  free(ak);
  return st;
}

/* handle_tpm_activate runs TPM2_ActivateCredential on the host's blob: the TPM
 * releases the credential only to the AK it was made for, beside the EK it was
 * encrypted to. */
static aln_status handle_tpm_activate(struct conn *c, const Aileron__V1__Request *req) {
  const Aileron__V1__TpmActivateRequest *a = req->tpm_activate;
  ALN_ENSURE(c->srv->provider->tpm_activate != NULL, ALN_ERR_UNEXPECTED);
  ALN_ENSURE(a != NULL, ALN_ERR_USAGE);
  struct aln_secret cred = {0};
  ALN_GUARD(c->srv->provider->tpm_activate(&cred, c->srv->data_dir, a->credential_blob.data, a->credential_blob.len,
                                           a->encrypted_secret.data, a->encrypted_secret.len));
  Aileron__V1__TpmActivateResponse r = AILERON__V1__TPM_ACTIVATE_RESPONSE__INIT;
  r.credential.data = cred.p;
  r.credential.len = cred.len;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_TPM_ACTIVATE;
  resp.tpm_activate = &r;
  aln_status st = send_ok(c, &resp);
  aln_secret_free(&cred);
  return st;
}

static const struct rpc rpcs[] = {
    {AILERON__V1__REQUEST__BODY_HEALTH, 0, ALN_OK, handle_health},
    {AILERON__V1__REQUEST__BODY_ATTEST, STATE_ENROLLED, ALN_ERR_NOT_ENROLLED, handle_attest},
    {AILERON__V1__REQUEST__BODY_TPM_ENROLL_INFO, STATE_ENROLLED, ALN_ERR_NOT_ENROLLED, handle_tpm_enroll_info},
    {AILERON__V1__REQUEST__BODY_TPM_ACTIVATE, STATE_ENROLLED, ALN_ERR_NOT_ENROLLED, handle_tpm_activate},
    {AILERON__V1__REQUEST__BODY_PUT_CREDENTIAL, STATE_ENROLLED | STATE_ATTESTED, ALN_ERR_NOT_ATTESTED, handle_put},
    {AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS, STATE_ENROLLED | STATE_ATTESTED, ALN_ERR_NOT_ATTESTED, handle_list},
    {AILERON__V1__REQUEST__BODY_REVOKE_CREDENTIAL, STATE_ENROLLED | STATE_ATTESTED, ALN_ERR_NOT_ATTESTED,
     handle_revoke},
    {AILERON__V1__REQUEST__BODY_USE_CREDENTIAL, STATE_ENROLLED | STATE_ATTESTED, ALN_ERR_NOT_ATTESTED, handle_use},
};

/* is_transport_error says whether the connection can no longer carry an answer. */
static int is_transport_error(aln_status st) {
  return st == ALN_ERR_CLOSED || st == ALN_ERR_TLS;
}

/* serve runs the request loop of one connection; returns when it must close. */
static void serve(struct conn *c) {
  for (;;) {
    Aileron__V1__Request *req = NULL;
    aln_status st = aln_channel_recv_request(c->ssl, &req);
    if (st != ALN_OK) {
      /* A protocol violation is answered once, then the connection is closed. */
      if (!is_transport_error(st) && st != ALN_ERR_TRUNCATED)
        (void)send_status(c, st);
      return;
    }
    const struct rpc *r = NULL;
    for (size_t i = 0; i < sizeof(rpcs) / sizeof(rpcs[0]); i++)
      if (rpcs[i].kind == req->body_case)
        r = &rpcs[i];
    if (r == NULL || (c->state & r->required) != r->required) {
      aln_status denial = r == NULL                     ? ALN_ERR_MALFORMED
                          : (c->state & STATE_ENROLLED) ? r->denial
                                                        : ALN_ERR_NOT_ENROLLED;
      (void)send_status(c, denial);
      aln_channel_request_free(req);
      return;
    }
    st = r->handler(c, req);
    aln_channel_request_free(req);
    if (st != ALN_OK) {
      if (is_transport_error(st) || send_status(c, st) != ALN_OK)
        return;
    }
  }
}

static void *conn_main(void *arg) {
  struct conn *c = arg;
  struct aln_server *srv = c->srv;
  uint8_t spki[ALN_SPKI_HASH_LEN];
  int enrolled = 0;

  c->ssl = SSL_new(srv->ctx);
  if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1)
    goto out;
  if (aln_tls_peer_spki_hash(spki, c->ssl) != ALN_OK)
    goto out;
  if (aln_hex_encode(c->host_key, sizeof(c->host_key), spki, sizeof(spki)) != ALN_OK)
    goto out;
  if (aln_escrow_host_is_enrolled(srv->escrow, &enrolled, spki) != ALN_OK)
    goto out;
  c->state = enrolled ? STATE_ENROLLED : 0;
  serve(c);
  SSL_shutdown(c->ssl);
out:
  ERR_clear_error();
  SSL_free(c->ssl);
  c->ssl = NULL;
  pthread_mutex_lock(&srv->mu);
  c->done = 1;
  pthread_mutex_unlock(&srv->mu);
  return NULL;
}

/* reap joins finished connection threads and frees their slots; with |all| it first
 * shuts every connection down and waits for all of them. */
static void reap(struct aln_server *srv, int all) {
  for (size_t i = 0; i < ALN_SERVER_MAX_CONNS; i++) {
    struct conn *c = &srv->conns[i];
    pthread_mutex_lock(&srv->mu);
    int in_use = c->in_use, done = c->done;
    pthread_mutex_unlock(&srv->mu);
    if (!in_use || (!done && !all))
      continue;
    if (!done)
      shutdown(c->fd, SHUT_RDWR);
    pthread_join(c->thread, NULL);
    close(c->fd);
    pthread_mutex_lock(&srv->mu);
    c->in_use = 0;
    c->done = 0;
    pthread_mutex_unlock(&srv->mu);
  }
}

static void accept_one(struct aln_server *srv) {
  int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0)
    return;
  struct conn *slot = NULL;
  pthread_mutex_lock(&srv->mu);
  for (size_t i = 0; i < ALN_SERVER_MAX_CONNS && slot == NULL; i++)
    if (!srv->conns[i].in_use)
      slot = &srv->conns[i];
  if (slot != NULL) {
    memset(slot, 0, sizeof(*slot));
    slot->in_use = 1;
  }
  pthread_mutex_unlock(&srv->mu);
  if (slot == NULL) { /* at capacity: refuse rather than queue without bound */
    close(fd);
    return;
  }
  struct timeval idle = {.tv_sec = ALN_SERVER_IDLE_SECONDS}, io = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &io, sizeof(io));
  slot->srv = srv;
  slot->fd = fd;
  if (pthread_create(&slot->thread, NULL, conn_main, slot) != 0) {
    close(fd);
    pthread_mutex_lock(&srv->mu);
    slot->in_use = 0;
    pthread_mutex_unlock(&srv->mu);
  }
}

aln_status aln_server_new(struct aln_server **out, const struct aln_server_config *cfg) {
  aln_status st = ALN_ERR_INTERNAL;
  EVP_PKEY *tls_key = NULL;
  X509 *tls_cert = NULL;
  struct aln_server *srv = calloc(1, sizeof(*srv));
  ALN_ENSURE(srv != NULL, ALN_ERR_NOMEM);
  srv->listen_fd = -1;
  pthread_mutex_init(&srv->mu, NULL);
  srv->provider = cfg->provider;
  srv->data_dir = cfg->data_dir;
  srv->escrow = cfg->escrow;

  ALN_GUARD_GOTO(st, aln_tls_identity_generate(&tls_key, &tls_cert, "aileron-enclave", 1), out);
  ALN_GUARD_GOTO(st, aln_tls_server_ctx_new(&srv->ctx, tls_key, tls_cert), out);
  srv->sign_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  ALN_ENSURE_GOTO(st, srv->sign_key != NULL, ALN_ERR_CRYPTO, out);
  size_t pub_len = sizeof(srv->sign_pub);
  ALN_ENSURE_GOTO(
      st, EVP_PKEY_get_raw_public_key(srv->sign_key, srv->sign_pub, &pub_len) == 1 && pub_len == sizeof(srv->sign_pub),
      ALN_ERR_CRYPTO, out);
  ALN_GUARD_GOTO(st, aln_net_listen(&srv->listen_fd, &srv->port, cfg->listen), out);
  *out = srv;
  srv = NULL;
  st = ALN_OK;
out:
  EVP_PKEY_free(tls_key); /* the context keeps its own references */
  X509_free(tls_cert);
  aln_server_free(srv);
  return st;
}

int aln_server_port(const struct aln_server *srv) {
  return srv->port;
}

aln_status aln_server_run(struct aln_server *srv, int stop_fd) {
  for (;;) {
    struct pollfd pfd[2] = {{.fd = srv->listen_fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
    int n = poll(pfd, 2, 1000);
    if (n < 0 && errno != EINTR)
      break;
    if (n > 0 && pfd[1].revents)
      break;
    if (n > 0 && (pfd[0].revents & POLLIN))
      accept_one(srv);
    reap(srv, 0);
  }
  reap(srv, 1);
  return ALN_OK;
}

void aln_server_free(struct aln_server *srv) {
  if (srv == NULL)
    return;
  if (srv->listen_fd >= 0)
    close(srv->listen_fd);
  SSL_CTX_free(srv->ctx);
  EVP_PKEY_free(srv->sign_key);
  pthread_mutex_destroy(&srv->mu);
  free(srv);
}
