/* Benchmark: evidence verification per second for each kind, printed beside the raw
 * signature-verify rate of the same algorithm from OpenSSL in the same run, and the
 * time to open an attested connection (TLS 1.3 + Attest + appraisal) to a running
 * enclave. Not a test: it asserts nothing beyond the operations succeeding.
 *
 * Usage: attest_bench [--seconds S] [--kinds-only]
 *                     [--enclave HOST:PORT --key HOST.key --cert HOST.crt (--policy FILE | --dev) [--n N]]
 * Without --enclave only the verification rates are measured; tests/bench/attest_bench.py
 * starts an enclave (local, or tpm against swtpm) and runs this with --enclave. */
#include <getopt.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attestation/cs.h"
#include "attestation/jwt.h"
#include "attestation/local.h"
#include "attestation/nitro.h"
#include "attestation/policy.h"
#include "attestation/snp.h"
#include "attestation/tpm_quote.h"
#include "host/api.h"
#include "host/enclave_client.h"
#include "proto/base64.h"
#include "proto/keyfile.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* rate runs |fn| for about |seconds| and returns calls per second; a failing call
 * stops the program (a benchmark of failures means nothing). */
static double rate(int (*fn)(void *), void *arg, double seconds) {
  for (int i = 0; i < 50; i++) /* warm-up */
    if (!fn(arg))
      goto failed;
  double start = now_s(), end = start + seconds, t = start;
  long n = 0;
  while (t < end) {
    for (int i = 0; i < 32; i++, n++)
      if (!fn(arg))
        goto failed;
    t = now_s();
  }
  return (double)n / (t - start);
failed:
  fprintf(stderr, "attest_bench: an operation failed\n");
  exit(1);
}

/* ---- raw signature verification: the baselines ---------------------------------- */

struct raw {
  EVP_PKEY *key;
  const EVP_MD *md; /* NULL for Ed25519 */
  uint8_t msg[256];
  uint8_t sig[512];
  size_t sig_len;
};

static void raw_init(struct raw *r, const char *alg, const char *param, const EVP_MD *md) {
  memset(r, 0, sizeof(*r));
  r->md = md;
  if (RAND_bytes(r->msg, sizeof(r->msg)) != 1)
    exit(1);
  if (strcmp(alg, "RSA") == 0)
    r->key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  else if (strcmp(alg, "EC") == 0)
    r->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
  else
    r->key = EVP_PKEY_Q_keygen(NULL, NULL, alg);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  r->sig_len = sizeof(r->sig);
  if (r->key == NULL || ctx == NULL || EVP_DigestSignInit(ctx, NULL, md, NULL, r->key) != 1 ||
      EVP_DigestSign(ctx, r->sig, &r->sig_len, r->msg, sizeof(r->msg)) != 1)
    exit(1);
  EVP_MD_CTX_free(ctx);
}

static int raw_verify(void *arg) {
  struct raw *r = arg;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, r->md, NULL, r->key) == 1 &&
           EVP_DigestVerify(ctx, r->sig, r->sig_len, r->msg, sizeof(r->msg)) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

/* ---- per kind -------------------------------------------------------------------- */

struct kind_case {
  const struct aln_policy *policy;
  const char *kind;
  uint8_t *ev;
  size_t ev_len;
  struct aln_verify_ctx ctx;
};

static int kind_verify(void *arg) {
  struct kind_case *k = arg;
  struct aln_claims c;
  struct aln_refusal why;
  aln_status st = aln_evidence_verify(&c, &why, k->policy, k->kind, k->ev, k->ev_len, &k->ctx);
  aln_claims_cleanup(&c);
  return st == ALN_OK;
}

/* ---- confidential-space: an OIDC-style RS256 token made here ------------------------ */

/* b64url appends the unpadded base64url of |len| bytes to |out| (a big buffer). */
static void b64url(char *out, size_t cap, const uint8_t *p, size_t len) {
  size_t used = strlen(out), n = 0;
  if (aln_base64_encode(out + used, cap - used, &n, p, len, ALN_BASE64_URL) != ALN_OK)
    exit(1);
}

struct cs_case {
  struct aln_cs_policy policy;
  struct aln_jwt_keys *keys;
  char token[4096];
  uint8_t nonce[32];
  struct aln_verify_ctx ctx;
};

/* cs_make signs a Confidential Space-shaped token with a fresh RSA-2048 key whose
 * JWKS the policy trusts, so the verification is one RS256 check plus the claims. */
static void cs_make(struct cs_case *k, EVP_PKEY *key) {
  static const char *digests[] = {"sha256:1111111111111111111111111111111111111111111111111111111111111111", NULL};
  static const char *hw[] = {"GCP_AMD_SEV", NULL};
  char nonce_hex[65], payload[1024], n_b64[400] = "", e_b64[16] = "", jwks[1024];
  BIGNUM *n = NULL, *e = NULL;
  uint8_t nb[256], eb[8];
  int64_t now = (int64_t)time(NULL);
  memset(k, 0, sizeof(*k));
  if (RAND_bytes(k->nonce, sizeof(k->nonce)) != 1 ||
      aln_hex_encode(nonce_hex, sizeof(nonce_hex), k->nonce, 32) != ALN_OK ||
      EVP_PKEY_get_bn_param(key, "n", &n) != 1 || EVP_PKEY_get_bn_param(key, "e", &e) != 1)
    exit(1);
  int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
  b64url(n_b64, sizeof(n_b64), nb, (size_t)nl);
  b64url(e_b64, sizeof(e_b64), eb, (size_t)el);
  BN_free(n);
  BN_free(e);
  snprintf(
      jwks, sizeof(jwks),
      "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"bench\",\"alg\":\"RS256\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}]}",
      n_b64, e_b64);
  snprintf(payload, sizeof(payload),
           "{\"iss\":\"%s\",\"aud\":\"bench\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,\"eat_nonce\":\"%s\","
           "\"swname\":\"CONFIDENTIAL_SPACE\",\"dbgstat\":\"disabled-since-boot\",\"hwmodel\":\"GCP_AMD_SEV\","
           "\"secboot\":true,\"submods\":{\"container\":{\"image_digest\":\"%s\"},"
           "\"confidential_space\":{\"support_attributes\":[\"STABLE\"]}}}",
           ALN_CS_ISSUER, (long long)now, (long long)now, (long long)now + 3600, nonce_hex, digests[0]);
  static const char header[] = "{\"alg\":\"RS256\",\"kid\":\"bench\",\"typ\":\"JWT\"}";
  b64url(k->token, sizeof(k->token), (const uint8_t *)header, strlen(header));
  strcat(k->token, ".");
  b64url(k->token, sizeof(k->token), (const uint8_t *)payload, strlen(payload));
  uint8_t sig[256];
  size_t sig_len = sizeof(sig);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
      EVP_DigestSign(md, sig, &sig_len, (const uint8_t *)k->token, strlen(k->token)) != 1)
    exit(1);
  EVP_MD_CTX_free(md);
  strcat(k->token, ".");
  b64url(k->token, sizeof(k->token), sig, sig_len);
  k->policy = (struct aln_cs_policy){.audience = "bench", .image_digests = digests, .hwmodels = hw, .jwks_json = jwks};
  if (aln_cs_keys_new(&k->keys, &k->policy) != ALN_OK)
    exit(1);
  k->policy.jwks_json = NULL;
  k->policy.keys = k->keys; /* prepared once, as the daemon's policy does */
  k->ctx = (struct aln_verify_ctx){.nonce = k->nonce, .nonce_len = 32, .now = now, .max_skew_s = 60};
}

static int cs_verify(void *arg) {
  struct cs_case *k = arg;
  struct aln_claims c;
  struct aln_refusal why;
  aln_status st = aln_cs_verify(&c, &why, (const uint8_t *)k->token, strlen(k->token), &k->policy, &k->ctx);
  aln_claims_cleanup(&c);
  return st == ALN_OK;
}

/* ---- files beside the source ------------------------------------------------------ */

static uint8_t *slurp(const char *rel, size_t *len) {
  char path[4096];
  const char *file = __FILE__, *cut = strstr(file, "tests/bench/");
  snprintf(path, sizeof(path), "%.*stests/%s", cut != NULL ? (int)(cut - file) : 0, file, rel);
  FILE *f = fopen(path, "rb");
  uint8_t *buf = malloc(1 << 16);
  if (f == NULL || buf == NULL) {
    fprintf(stderr, "attest_bench: cannot read %s\n", path);
    exit(1);
  }
  *len = fread(buf, 1, 1 << 16, f);
  fclose(f);
  return buf;
}

/* ---- sev-snp: the real Milan report ---------------------------------------------- */

struct snp_case {
  struct aln_snp_policy policy;
  uint8_t measurement[1][ALN_SNP_MEASUREMENT_LEN];
  uint8_t *report;
  size_t len;
  char dir[64];
  struct aln_verify_ctx ctx;
};

static void snp_make(struct snp_case *k) {
  static const uint8_t nonce[5] = {1, 2, 3, 4, 5};
  size_t vlen = 0;
  char vcek[96];
  memset(k, 0, sizeof(*k));
  k->report = slurp("data/attestation/sev-snp/gosevguest_milan_report.bin", &k->len);
  uint8_t *cert = slurp("data/attestation/sev-snp/gosevguest_milan_vcek.der", &vlen);
  struct aln_snp_report r;
  strcpy(k->dir, "/tmp/aln-bench-snp-XXXXXX");
  if (aln_snp_report_parse(&r, k->report, k->len) != ALN_OK || mkdtemp(k->dir) == NULL)
    exit(1);
  snprintf(vcek, sizeof(vcek), "%s/vcek.der", k->dir);
  FILE *f = fopen(vcek, "wb");
  if (f == NULL || fwrite(cert, 1, vlen, f) != vlen || fclose(f) != 0)
    exit(1);
  free(cert);
  memcpy(k->measurement[0], r.measurement, ALN_SNP_MEASUREMENT_LEN);
  k->policy = (struct aln_snp_policy){.product = ALN_SNP_PRODUCT_MILAN,
                                      .measurements = (const uint8_t(*)[ALN_SNP_MEASUREMENT_LEN])k->measurement,
                                      .num_measurements = 1,
                                      .allow_debug = 1};
  k->ctx = (struct aln_verify_ctx){.nonce = nonce, .nonce_len = sizeof(nonce), .now = 1700000000, .certs_dir = k->dir};
}

static void snp_done(struct snp_case *k) {
  char vcek[96];
  snprintf(vcek, sizeof(vcek), "%s/vcek.der", k->dir);
  unlink(vcek);
  rmdir(k->dir);
  free(k->report);
}

static int snp_verify(void *arg) {
  struct snp_case *k = arg;
  struct aln_claims c;
  struct aln_refusal why;
  aln_status st = aln_snp_verify(&c, &why, k->report, k->len, &k->policy, &k->ctx);
  aln_claims_cleanup(&c);
  return st == ALN_OK;
}

/* ---- tpm: a real swtpm quote (ECDSA P-256) --------------------------------------- */

struct tpm_case {
  struct aln_tpm_policy policy;
  TPM2B_NAME ak;
  struct aln_tpm_pcr_ref refs[ALN_TPM_PCR_VALUES_MAX];
  uint8_t *ev;
  size_t len;
  struct aln_tpm_quote q;
  struct aln_verify_ctx ctx;
};

/* tpm_make enrolls the quote's own AK and its PCR values: the bench measures the
 * work of an accepted quote, whose trust was settled at enrollment. */
static void tpm_make(struct tpm_case *k) {
  memset(k, 0, sizeof(*k));
  k->ev = slurp("fuzz/corpus/tpm_attest/tpm2-quote-ecdsa", &k->len);
  if (aln_tpm_quote_decode(&k->q, k->ev, k->len) != ALN_OK || aln_tpm_name(&k->ak, &k->q.ak) != ALN_OK)
    exit(1);
  const TPML_PCR_SELECTION *sel = &k->q.attest.attested.quote.pcrSelect;
  size_t v = 0;
  for (UINT32 b = 0; b < sel->count; b++)
    for (unsigned i = 0; i < 8u * sel->pcrSelections[b].sizeofSelect && v < k->q.num_pcr_values; i++)
      if (sel->pcrSelections[b].pcrSelect[i / 8] & (1u << (i % 8))) {
        k->refs[v] = (struct aln_tpm_pcr_ref){.bank = sel->pcrSelections[b].hash,
                                              .index = (uint8_t)i,
                                              .values = k->q.pcr_values[v].buffer,
                                              .num_values = 1};
        v++;
      }
  k->policy = (struct aln_tpm_policy){.ak_names = &k->ak, .num_ak_names = 1, .pcrs = k->refs, .num_pcrs = v};
  k->ctx = (struct aln_verify_ctx){
      .nonce = k->q.attest.extraData.buffer, .nonce_len = k->q.attest.extraData.size, .now = (int64_t)time(NULL)};
}

static int tpm_verify(void *arg) {
  struct tpm_case *k = arg;
  struct aln_claims c;
  struct aln_refusal why;
  aln_status st = aln_tpm_quote_verify(&c, &why, k->ev, k->len, &k->policy, &k->ctx);
  aln_claims_cleanup(&c);
  return st == ALN_OK;
}

/* ---- aws-nitro: the real evervault document, judged at its time ----------------- */

struct nitro_case {
  struct aln_nitro_policy policy;
  struct aln_nitro_pcr pcr3;
  uint8_t pcr3_value[48];
  uint8_t *doc;
  size_t len;
  struct aln_verify_ctx ctx;
};

static void nitro_make(struct nitro_case *k) {
  static const char pcr3[] =
      "4a9329d69c836267b18abbf9f4a38889124490453419e426818626348d21f989dc930b1562682a9082887454e53425aa";
  memset(k, 0, sizeof(*k));
  k->doc = slurp("data/attestation/nitro/evervault_ga_2023-09-18.bin", &k->len);
  if (aln_hex_decode(k->pcr3_value, sizeof(k->pcr3_value), pcr3, sizeof(pcr3) - 1) != ALN_OK)
    exit(1);
  k->pcr3 = (struct aln_nitro_pcr){.index = 3, .value = k->pcr3_value, .value_len = 48};
  k->policy = (struct aln_nitro_policy){.pcrs = &k->pcr3, .num_pcrs = 1, .allow_debug = 1};
  k->ctx = (struct aln_verify_ctx){.now = 1695049410};
}

static int nitro_verify(void *arg) {
  struct nitro_case *k = arg;
  struct aln_claims c;
  struct aln_refusal why;
  aln_status st = aln_nitro_verify(&c, &why, k->doc, k->len, &k->policy, &k->ctx);
  aln_claims_cleanup(&c);
  return st == ALN_OK;
}

static void row(const char *what, double got, const char *base_name, double base, double target) {
  printf("%-34s %10.0f/s   %-26s %10.0f/s   ratio %.2f", what, got, base_name, base, got / base);
  if (target > 0)
    printf("   target >= %.1f %s", target, got / base >= target ? "PASS" : "MISS");
  printf("\n");
}

static void bench_kinds(double seconds) {
  struct raw ed, p256, p384, rsa;
  raw_init(&ed, "ED25519", NULL, NULL);
  raw_init(&p256, "EC", "P-256", EVP_sha256());
  raw_init(&p384, "EC", "P-384", EVP_sha384());
  raw_init(&rsa, "RSA", NULL, EVP_sha256());
  double r_ed = rate(raw_verify, &ed, seconds), r_p256 = rate(raw_verify, &p256, seconds);
  double r_p384 = rate(raw_verify, &p384, seconds), r_rsa = rate(raw_verify, &rsa, seconds);
  printf("raw OpenSSL verify: Ed25519 %.0f/s, ECDSA P-256 %.0f/s, ECDSA P-384 %.0f/s, RSA-2048 PKCS#1 %.0f/s\n\n", r_ed,
         r_p256, r_p384, r_rsa);

  /* local: one Ed25519 verify, plus CBOR decoding and the policy. */
  struct aln_policy *dev = NULL;
  uint8_t pub[32], binding[ALN_BINDING_LEN];
  size_t pub_len = sizeof(pub);
  struct kind_case local = {.kind = "local"};
  if (aln_policy_dev(&dev) != ALN_OK || RAND_bytes(binding, sizeof(binding)) != 1 ||
      EVP_PKEY_get_raw_public_key(ed.key, pub, &pub_len) != 1 ||
      aln_local_evidence_make(&local.ev, &local.ev_len, ed.key, binding, (int64_t)time(NULL)) != ALN_OK)
    exit(1);
  local.policy = dev;
  local.ctx = (struct aln_verify_ctx){.nonce = binding,
                                      .nonce_len = sizeof(binding),
                                      .now = (int64_t)time(NULL),
                                      .signing_key = pub,
                                      .signing_key_len = sizeof(pub)};
  row("local (COSE_Sign1 EdDSA)", rate(kind_verify, &local, seconds), "raw Ed25519", r_ed, 0);
  struct cs_case cs;
  cs_make(&cs, rsa.key);
  row("confidential-space (RS256, JWKS)", rate(cs_verify, &cs, seconds), "raw RSA-2048 verify", r_rsa, 0.5);
  aln_jwt_keys_free(cs.keys);
  struct tpm_case *tpm = calloc(1, sizeof(*tpm));
  if (tpm == NULL)
    exit(1);
  tpm_make(tpm);
  row("tpm (quote, ECDSA P-256, swtpm)", rate(tpm_verify, tpm, seconds), "raw ECDSA P-256 verify", r_p256, 0.5);
  free(tpm->ev);
  free(tpm);
  struct snp_case snp;
  snp_make(&snp);
  row("sev-snp (report + VCEK chain)", rate(snp_verify, &snp, seconds), "raw ECDSA P-384 verify", r_p384, 0);
  snp_done(&snp);
  struct nitro_case nitro;
  nitro_make(&nitro);
  row("aws-nitro (COSE ES384 + cabundle)", rate(nitro_verify, &nitro, seconds), "raw ECDSA P-384 verify", r_p384, 0);
  free(nitro.doc);
  free(local.ev);
  aln_policy_free(dev);
  EVP_PKEY_free(ed.key);
  EVP_PKEY_free(p256.key);
  EVP_PKEY_free(p384.key);
  EVP_PKEY_free(rsa.key);
}

/* ---- opening an attested connection --------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int bench_connect(const char *address, const char *key, const char *cert, const char *policy_path, int n) {
  struct aln_policy *policy = NULL;
  char err[ALN_POLICY_ERR_MAX] = "";
  aln_status st = policy_path != NULL ? aln_policy_load(&policy, err, policy_path) : aln_policy_dev(&policy);
  if (st != ALN_OK) {
    fprintf(stderr, "attest_bench: policy: %s %s\n", aln_status_name(st), err);
    return 1;
  }
  struct aln_enclave_client_config cfg = {.address = address, .key_path = key, .cert_path = cert, .policy = policy};
  struct aln_enclave_client *c = NULL;
  if ((st = aln_enclave_client_new(&c, &cfg)) != ALN_OK) {
    fprintf(stderr, "attest_bench: client: %s\n", aln_status_name(st));
    return 1;
  }
  double *ms = calloc((size_t)n, sizeof(double));
  json_t *kind = NULL;
  for (int i = 0; i < n; i++) {
    json_t *doc = NULL;
    double t0 = now_s();
    st = aln_enclave_client_attest_fresh(c, &doc);
    ms[i] = (now_s() - t0) * 1000;
    if (st != ALN_OK) {
      fprintf(stderr, "attest_bench: attested connection %d failed: %s\n", i, aln_status_name(st));
      return 1;
    }
    if (kind == NULL)
      kind = json_incref(json_object_get(doc, "kind"));
    json_decref(doc);
  }
  qsort(ms, (size_t)n, sizeof(double), cmp_double);
  printf("\nattested connection (TCP + TLS 1.3 + Attest + appraisal), kind %s, %d connections: median %.2f ms, "
         "p90 %.2f ms, min %.2f ms\n",
         json_string_value(kind), n, ms[n / 2], ms[(n * 9) / 10], ms[0]);
  json_decref(kind);
  free(ms);
  aln_enclave_client_free(c);
  aln_policy_free(policy);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"seconds", required_argument, NULL, 's'}, {"enclave", required_argument, NULL, 'e'},
      {"key", required_argument, NULL, 'k'},     {"cert", required_argument, NULL, 'c'},
      {"policy", required_argument, NULL, 'p'},  {"dev", no_argument, NULL, 'd'},
      {"n", required_argument, NULL, 'n'},       {NULL, 0, NULL, 0}};
  double seconds = 1.0;
  const char *enclave = NULL, *key = NULL, *cert = NULL, *policy = NULL;
  int n = 200, ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 's':
      seconds = atof(optarg);
      break;
    case 'e':
      enclave = optarg;
      break;
    case 'k':
      key = optarg;
      break;
    case 'c':
      cert = optarg;
      break;
    case 'p':
      policy = optarg;
      break;
    case 'd':
      break;
    case 'n':
      n = atoi(optarg);
      break;
    default:
      fprintf(stderr, "usage: see the comment at the top of tests/bench/attest_bench.c\n");
      return 2;
    }
  }
  aln_api_json_init();
  bench_kinds(seconds);
  if (enclave != NULL)
    return bench_connect(enclave, key, cert, policy, n > 0 ? n : 1);
  return 0;
}
