/* Tests for enclave/tpm_attest (and, against a real TPM, attestation/tpm_quote and
 * attestation/tpm_cred): the ak.tpm codec without a TPM, then a software TPM
 * (swtpm, started here) provisioned by swtpm_setup with EK certificates issued by a
 * swtpm-localca whose CA lives in the test directory, with tpm2-tools as the
 * independent second implementation:
 *
 *   - our quotes verify with our verifier, and tpm2_checkquote accepts them;
 *   - quotes made by tpm2_quote (ECDSA, RSASSA and RSAPSS AKs made by
 *     tpm2_createak) verify with our verifier, and one by an AK that is not
 *     enrolled is refused;
 *   - the claims carry the TPM's real reset/restart counts and firmware version (as
 *     tpm2_readclock and tpm2_getcap report them), proof that the AK lives in the
 *     endorsement hierarchy;
 *   - the EK certificate chains to the test CA and certifies the EK our template
 *     makes; a wrong CA, a missing intermediate, a time before its validity, and
 *     bytes that are not one certificate are refused;
 *   - credential activation: our software MakeCredential, the TPM's
 *     ActivateCredential through our code, for RSA and ECC EKs; a credential made
 *     for another name or another EK is refused; tpm2_makecredential's output is
 *     activated by our code, and ours by tpm2_activatecredential.
 *
 * Missing swtpm or tpm2-tools fail the test rather than skip it. With
 * ALN_TPM_QUOTE_SEEDS=DIR set, the containers made here are also written to DIR
 * (how tests/fuzz/corpus/tpm_attest was seeded). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/swtpm_fixture.h"
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "attestation/tpm_cred.h"
#include "attestation/tpm_quote.h"
#include "enclave/tpm_attest.h"
#include "proto/keyfile.h"

/* ---- ak.tpm codec, no TPM ------------------------------------------------------------ */

static struct aln_tpm_ak_blob good_blob(void) {
  struct aln_tpm_ak_blob b;
  memset(&b, 0, sizeof(b));
  TPMT_PUBLIC *p = &b.pub.publicArea;
  p->type = TPM2_ALG_ECC;
  p->nameAlg = TPM2_ALG_SHA256;
  p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                        TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  p->unique.ecc.x.size = 32;
  p->unique.ecc.y.size = 32;
  memset(p->unique.ecc.x.buffer, 0x11, 32);
  memset(p->unique.ecc.y.buffer, 0x22, 32);
  b.priv.size = 100;
  memset(b.priv.buffer, 0x33, 100);
  return b;
}

static void test_ak_blob_codec(void **state) {
  (void)state;
  struct aln_tpm_ak_blob b = good_blob(), d;
  uint8_t *enc = NULL, buf[ALN_TPM_AK_BLOB_MAX + 16];
  size_t len = 0;
  assert_int_equal(aln_tpm_ak_blob_encode(&enc, &len, &b), ALN_OK);
  assert_int_equal(aln_tpm_ak_blob_decode(&d, enc, len), ALN_OK);
  assert_memory_equal(&d.pub.publicArea, &b.pub.publicArea, sizeof(b.pub.publicArea));
  assert_int_equal(d.priv.size, b.priv.size);
  assert_memory_equal(d.priv.buffer, b.priv.buffer, b.priv.size);
  assert_memory_equal(enc, ALN_TPM_AK_BLOB_MAGIC, ALN_TPM_AK_BLOB_MAGIC_LEN);
  assert_true(len < sizeof(buf));
  memcpy(buf, enc, len);

  /* Truncated anywhere, padded, or another magic: refused, output zeroed. */
  for (size_t n = 0; n < len; n++) {
    memset(&d, 0x5a, sizeof(d));
    aln_status st = aln_tpm_ak_blob_decode(&d, buf, n);
    assert_true(st == ALN_ERR_TRUNCATED || st == ALN_ERR_MALFORMED);
    assert_int_equal(d.priv.size, 0);
  }
  buf[len] = 0;
  assert_int_equal(aln_tpm_ak_blob_decode(&d, buf, len + 1), ALN_ERR_TRAILING);
  buf[0] ^= 1;
  assert_int_equal(aln_tpm_ak_blob_decode(&d, buf, len), ALN_ERR_MALFORMED);
  buf[0] ^= 1;
  assert_int_equal(aln_tpm_ak_blob_decode(&d, buf, ALN_TPM_AK_BLOB_MAX + 1), ALN_ERR_TOO_LARGE);
  /* A field longer than its structure: the unmarshaller must consume it exactly. */
  buf[ALN_TPM_AK_BLOB_MAGIC_LEN + 3]++;
  assert_int_not_equal(aln_tpm_ak_blob_decode(&d, buf, len), ALN_OK);
  free(enc);

  /* Well formed, but not an AK: each one property away from what a verifier needs. */
  static const TPMA_OBJECT drop[] = {TPMA_OBJECT_FIXEDTPM, TPMA_OBJECT_FIXEDPARENT, TPMA_OBJECT_SENSITIVEDATAORIGIN,
                                     TPMA_OBJECT_RESTRICTED, TPMA_OBJECT_SIGN_ENCRYPT};
  for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]) + 3; i++) {
    struct aln_tpm_ak_blob bad = good_blob();
    if (i < sizeof(drop) / sizeof(drop[0]))
      bad.pub.publicArea.objectAttributes &= ~drop[i];
    else if (i == sizeof(drop) / sizeof(drop[0]))
      bad.pub.publicArea.objectAttributes |= TPMA_OBJECT_DECRYPT;
    else if (i == sizeof(drop) / sizeof(drop[0]) + 1)
      bad.pub.publicArea.nameAlg = TPM2_ALG_SHA1;
    else
      bad.pub.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
    assert_int_equal(aln_tpm_ak_blob_encode(&enc, &len, &bad), ALN_ERR_USAGE);
    assert_null(enc);
  }
  struct aln_tpm_ak_blob nopriv = good_blob();
  nopriv.priv.size = 0;
  assert_int_equal(aln_tpm_ak_blob_encode(&enc, &len, &nopriv), ALN_ERR_USAGE);
}

/* ---- the software TPM -------------------------------------------------------------------- */

struct swtpm {
  pid_t pid;
  char dir[64];
  char data[96]; /* the enclave's data dir */
  int port;
};
static struct swtpm *T;

/* sh runs a shell command in the test directory, its output appended to tools.log;
 * returns its exit status (-1 if it did not exit). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[4096], full[4096 + 128], log[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(cmd))
    return -1;
  snprintf(log, sizeof(log), "%s/tools.log", T->dir);
  FILE *f = fopen(log, "a");
  if (f != NULL) {
    fprintf(f, "$ %s\n", cmd);
    fclose(f);
  }
  n = snprintf(full, sizeof(full), "cd '%s' && { %s; } >> tools.log 2>&1", T->dir, cmd);
  if (n < 0 || (size_t)n >= sizeof(full))
    return -1;
  int rc = system(full);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* tools runs a tpm2-tools pipeline that must succeed, then flushes the transient
 * objects it left loaded (swtpm has no resource manager to do it). */
#define TOOLS(...)                                                                                                     \
  do {                                                                                                                 \
    int rc_ = sh(__VA_ARGS__);                                                                                         \
    int flushed_ = sh("tpm2_flushcontext -t && tpm2_flushcontext -l");                                                 \
    if (rc_ != 0)                                                                                                      \
      fail_msg("tool failed (%d), see %s/tools.log", rc_, T->dir);                                                     \
    assert_int_equal(flushed_, 0);                                                                                     \
  } while (0)

static void path_of(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", T->dir, name);
}

static void write_file(const char *name, const void *p, size_t len) {
  char path[256];
  path_of(path, sizeof(path), name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* read_file returns the whole file in a new buffer (free()), its length in *len. */
static uint8_t *read_file(const char *name, size_t *len) {
  char path[256];
  path_of(path, sizeof(path), name);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  uint8_t *buf = malloc(65536);
  assert_non_null(buf);
  *len = fread(buf, 1, 65536, f);
  assert_true(*len < 65536);
  fclose(f);
  return buf;
}

static char *read_text(const char *name) {
  size_t len = 0;
  uint8_t *b = read_file(name, &len);
  b[len] = 0;
  return (char *)b;
}

static void write_conf(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_conf(const char *name, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  assert_true(n > 0 && (size_t)n < sizeof(text));
  write_file(name, text, (size_t)n);
}

static int group_setup(void **state) {
  (void)state;
  char tcti[64];
  T = calloc(1, sizeof(*T));
  if (T == NULL)
    return -1;
  strcpy(T->dir, "/tmp/aln-tpmq-XXXXXX");
  if (mkdtemp(T->dir) == NULL || (T->port = aln_test_two_free_ports()) < 0)
    return -1;
  snprintf(T->data, sizeof(T->data), "%s/data", T->dir);
  if (mkdir(T->data, 0700) != 0)
    return -1;
  /* The manufacturer: a swtpm-localca whose CA and keys live in this directory. */
  write_conf("localca.conf",
             "statedir = %s/ca\nsigningkey = %s/ca/signkey.pem\nissuercert = %s/ca/issuercert.pem\n"
             "certserial = %s/ca/certserial\n",
             T->dir, T->dir, T->dir, T->dir);
  write_conf("localca.options", "--platform-manufacturer Aileron\n--platform-version 2.1\n--platform-model test\n");
  write_conf("setup.conf",
             "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = %s/localca.conf\n"
             "create_certs_tool_options = %s/localca.options\n",
             T->dir, T->dir);
  if (sh("mkdir -p ca state && swtpm_setup --tpm2 --tpmstate %s/state --create-ek-cert --config %s/setup.conf "
         "--pcr-banks sha1,sha256 --logfile %s/setup.log",
         T->dir, T->dir, T->dir) != 0) {
    fprintf(stderr, "tpm_attest_test: swtpm_setup failed (see %s): run deploy/local/install-deps\n", T->dir);
    return -1;
  }
  char state_path[512];
  snprintf(state_path, sizeof(state_path), "%s/state", T->dir);
  T->pid = aln_test_swtpm_spawn(state_path, T->port, "tpm_attest_test");
  if (T->pid < 0)
    return -1;
  snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", T->port);
  setenv("AILERON_TPM_TCTI", tcti, 1);
  setenv("TPM2TOOLS_TCTI", tcti, 1);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  char cmd[128];
  if (T == NULL)
    return 0;
  if (T->pid > 0) {
    kill(T->pid, SIGTERM);
    waitpid(T->pid, NULL, 0);
  }
  if (getenv("ALN_KEEP_TEST_DIR") == NULL) {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T->dir);
    if (system(cmd) != 0)
      return -1;
  }
  unsetenv("AILERON_TPM_TCTI");
  unsetenv("TPM2TOOLS_TCTI");
  free(T);
  T = NULL;
  return 0;
}

/* ---- helpers over the TPM ------------------------------------------------------------------ */

static void sha256(uint8_t out[32], const void *a, size_t a_len, const void *b, size_t b_len) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_non_null(md);
  assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
  assert_int_equal(EVP_DigestUpdate(md, a, a_len), 1);
  if (b_len > 0)
    assert_int_equal(EVP_DigestUpdate(md, b, b_len), 1);
  assert_int_equal(EVP_DigestFinal_ex(md, out, NULL), 1);
  EVP_MD_CTX_free(md);
}

static void hex(char *out, const uint8_t *p, size_t len) {
  assert_int_equal(aln_hex_encode(out, 2 * len + 1, p, len), ALN_OK);
}

static TPML_PCR_SELECTION selection(const char *spec_sha1, const char *spec_sha256) {
  /* Each spec is a list of PCR numbers, e.g. "0,16"; NULL leaves the bank out. */
  TPML_PCR_SELECTION s = {0};
  const char *specs[2] = {spec_sha1, spec_sha256};
  const TPMI_ALG_HASH banks[2] = {TPM2_ALG_SHA1, TPM2_ALG_SHA256};
  for (int i = 0; i < 2; i++) {
    if (specs[i] == NULL)
      continue;
    TPMS_PCR_SELECTION *p = &s.pcrSelections[s.count++];
    p->hash = banks[i];
    p->sizeofSelect = 3;
    for (const char *c = specs[i]; *c != '\0';) {
      char *end;
      long v = strtol(c, &end, 10);
      p->pcrSelect[v / 8] |= (uint8_t)(1u << (v % 8));
      c = *end == ',' ? end + 1 : end;
    }
  }
  return s;
}

/* Extended into sha256:16 by the first test that needs it, from the tools. */
static uint8_t pcr16[32];
static int pcr16_set;

static void extend_pcr16(void) {
  if (pcr16_set)
    return;
  uint8_t d[32], zero[32] = {0};
  char dh[65];
  sha256(d, "aileron", 7, NULL, 0);
  hex(dh, d, 32);
  TOOLS("tpm2_pcrextend 16:sha256=%s", dh);
  /* PCR extend: new = H(old || digest), from all zeros after a reset. */
  sha256(pcr16, zero, 32, d, 32);
  pcr16_set = 1;
}

static void ak_name_of(TPM2B_NAME *name) {
  TPM2B_PUBLIC pub;
  assert_int_equal(aln_tpm_ak_public(T->data, &pub), ALN_OK);
  assert_int_equal(aln_tpm_name(name, &pub), ALN_OK);
}

static void save_seed(const char *name, const uint8_t *p, size_t len) {
  const char *dir = getenv("ALN_TPM_QUOTE_SEEDS");
  if (dir == NULL)
    return;
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, len, f), len);
  fclose(f);
}

static uint8_t binding[ALN_BINDING_LEN];
static const uint8_t zero32[32] = {0};

/* ---- our quotes ------------------------------------------------------------------------------- */

static void test_quote_round_trip(void **state) {
  (void)state;
  extend_pcr16();
  for (size_t i = 0; i < sizeof(binding); i++)
    binding[i] = (uint8_t)(0xa0 + i);
  TPML_PCR_SELECTION sel = selection("0", "0,7,16");
  uint8_t *ev = NULL;
  size_t ev_len = 0;
  assert_int_equal(aln_tpm_quote_make(T->data, &ev, &ev_len, binding, &sel), ALN_OK);
  save_seed("swtpm-ecdsa-sha1-sha256", ev, ev_len);

  /* ak.tpm is private and made once: the next quote is by the same key. */
  char ak_path[256];
  struct stat sb;
  snprintf(ak_path, sizeof(ak_path), "%s/%s", T->data, ALN_TPM_AK_FILE);
  assert_int_equal(stat(ak_path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  TPM2B_NAME name, again;
  ak_name_of(&name);
  ak_name_of(&again);
  assert_memory_equal(&name, &again, sizeof(name));
  assert_int_equal(name.size, 34);

  uint8_t sha1_zero[20] = {0};
  uint8_t *sha256_zero = (uint8_t *)zero32;
  const struct aln_tpm_pcr_ref refs[] = {
      {.bank = TPM2_ALG_SHA256, .index = 16, .values = pcr16, .num_values = 1},
      {.bank = TPM2_ALG_SHA256, .index = 7, .values = sha256_zero, .num_values = 1},
      {.bank = TPM2_ALG_SHA1, .index = 0, .values = sha1_zero, .num_values = 1},
  };
  struct aln_tpm_policy policy = {.ak_names = &name, .num_ak_names = 1, .pcrs = refs, .num_pcrs = 3};
  struct aln_verify_ctx ctx = {.nonce = binding, .nonce_len = sizeof(binding)};
  struct aln_claims c;
  struct aln_refusal why;
  assert_int_equal(aln_tpm_quote_verify(&c, &why, ev, ev_len, &policy, &ctx), ALN_OK);
  assert_string_equal(c.kind, "tpm");
  assert_int_equal(c.debug, 0);
  assert_int_equal(c.nonce_checked, 1);
  /* The measurement is the PCR digest: SHA-256 over the four values in order. */
  uint8_t all[20 + 3 * 32], digest[32];
  char digest_hex[65], v_hex[65], name_hex[69];
  memset(all, 0, sizeof(all));
  memcpy(all + 20 + 64, pcr16, 32);
  sha256(digest, all, sizeof(all), NULL, 0);
  hex(digest_hex, digest, 32);
  assert_string_equal(c.measurement, digest_hex);
  hex(v_hex, pcr16, 32);
  assert_string_equal(json_string_value(json_object_get(json_object_get(c.detail, "pcrs"), "sha256:16")), v_hex);
  assert_int_equal(json_object_size(json_object_get(c.detail, "pcrs")), 4);
  hex(name_hex, name.name, name.size);
  assert_string_equal(json_string_value(json_object_get(c.detail, "ak_name")), name_hex);
  assert_string_equal(json_string_value(json_object_get(c.detail, "signature")), "ecdsa-sha256");

  /* The AK is in the endorsement hierarchy: the quote reports the TPM's real counts
   * and firmware version, as the TPM itself tells tpm2_readclock and tpm2_getcap
   * (for an owner-hierarchy key it would obfuscate them). */
  TOOLS("tpm2_readclock > clock.txt && tpm2_getcap properties-fixed > fixed.txt");
  char *clock = read_text("clock.txt"), *fixed = read_text("fixed.txt");
  unsigned reset = 0, restart = 0, fw1 = 0, fw2 = 0;
  assert_int_equal(sscanf(strstr(clock, "reset_count:"), "reset_count: %u", &reset), 1);
  assert_int_equal(sscanf(strstr(clock, "restart_count:"), "restart_count: %u", &restart), 1);
  assert_int_equal(
      sscanf(strstr(fixed, "TPM2_PT_FIRMWARE_VERSION_1:"), "TPM2_PT_FIRMWARE_VERSION_1:\n raw: 0x%x", &fw1), 1);
  assert_int_equal(
      sscanf(strstr(fixed, "TPM2_PT_FIRMWARE_VERSION_2:"), "TPM2_PT_FIRMWARE_VERSION_2:\n raw: 0x%x", &fw2), 1);
  json_t *ci = json_object_get(c.detail, "clock");
  assert_int_equal(json_integer_value(json_object_get(ci, "reset_count")), reset);
  assert_int_equal(json_integer_value(json_object_get(ci, "restart_count")), restart);
  assert_true(json_is_true(json_object_get(ci, "safe")));
  char fw[32];
  snprintf(fw, sizeof(fw), "0x%08x%08x", fw1, fw2);
  assert_string_equal(json_string_value(json_object_get(c.detail, "firmware_version")), fw);
  assert_non_null(strstr(json_string_value(json_object_get(c.detail, "debug")), "says nothing about debug"));
  free(clock);
  free(fixed);
  aln_claims_cleanup(&c);

  /* Another nonce, another PCR value: refused, each naming its reason. */
  uint8_t other[ALN_BINDING_LEN];
  memcpy(other, binding, sizeof(other));
  other[31] ^= 1;
  struct aln_verify_ctx wrong_nonce = {.nonce = other, .nonce_len = sizeof(other)};
  assert_int_equal(aln_tpm_quote_verify(&c, &why, ev, ev_len, &policy, &wrong_nonce), ALN_ERR_ATTEST_BINDING);
  assert_int_equal(why.status, ALN_ERR_ATTEST_BINDING);
  const struct aln_tpm_pcr_ref wrong_pcr = {.bank = TPM2_ALG_SHA256, .index = 16, .values = zero32, .num_values = 1};
  struct aln_tpm_policy p2 = {.ak_names = &name, .num_ak_names = 1, .pcrs = &wrong_pcr, .num_pcrs = 1};
  assert_int_equal(aln_tpm_quote_verify(&c, &why, ev, ev_len, &p2, &ctx), ALN_ERR_ATTEST_POLICY);
  assert_non_null(strstr(why.why, "sha256:16"));
  const struct aln_tpm_pcr_ref unquoted = {.bank = TPM2_ALG_SHA256, .index = 8, .values = zero32, .num_values = 1};
  p2.pcrs = &unquoted;
  assert_int_equal(aln_tpm_quote_verify(&c, &why, ev, ev_len, &p2, &ctx), ALN_ERR_ATTEST_POLICY);
  assert_non_null(strstr(why.why, "not quoted"));

  /* After the PCR moves, a new quote no longer passes the old reference value. */
  TOOLS("tpm2_pcrextend 7:sha256=%064d", 0);
  uint8_t *ev2 = NULL;
  size_t ev2_len = 0;
  assert_int_equal(aln_tpm_quote_make(T->data, &ev2, &ev2_len, binding, &sel), ALN_OK);
  assert_int_equal(aln_tpm_quote_verify(&c, &why, ev2, ev2_len, &policy, &ctx), ALN_ERR_ATTEST_POLICY);
  assert_non_null(strstr(why.why, "sha256:7"));
  free(ev2);

  /* Bad selections are the caller's error, before the TPM is asked. */
  TPML_PCR_SELECTION bad = selection(NULL, "0");
  bad.pcrSelections[0].hash = TPM2_ALG_SM3_256;
  assert_int_equal(aln_tpm_quote_make(T->data, &ev2, &ev2_len, binding, &bad), ALN_ERR_USAGE);
  bad = selection("0", "0");
  bad.pcrSelections[1].hash = TPM2_ALG_SHA1; /* a bank twice */
  assert_int_equal(aln_tpm_quote_make(T->data, &ev2, &ev2_len, binding, &bad), ALN_ERR_USAGE);
  bad = (TPML_PCR_SELECTION){0};
  assert_int_equal(aln_tpm_quote_make(T->data, &ev2, &ev2_len, binding, &bad), ALN_ERR_USAGE);
  /* A bank the TPM does not have active: a TPM error, not a quote over less. */
  bad = selection(NULL, "0");
  bad.pcrSelections[0].hash = TPM2_ALG_SHA384;
  assert_int_equal(aln_tpm_quote_make(T->data, &ev2, &ev2_len, binding, &bad), ALN_ERR_TPM);
  assert_null(ev2);
  free(ev);
}

/* Our quote, checked by tpm2_checkquote from its parts. */
static void test_quote_checked_by_tpm2_checkquote(void **state) {
  (void)state;
  extend_pcr16();
  TPML_PCR_SELECTION sel = selection("0,7", "0,16");
  uint8_t *ev = NULL;
  size_t ev_len = 0;
  uint8_t nonce[ALN_BINDING_LEN];
  char nonce_hex[65], other_hex[65];
  assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
  hex(nonce_hex, nonce, sizeof(nonce));
  assert_int_equal(aln_tpm_quote_make(T->data, &ev, &ev_len, nonce, &sel), ALN_OK);

  struct aln_tpm_quote *q = malloc(sizeof(*q));
  assert_non_null(q);
  assert_int_equal(aln_tpm_quote_decode(q, ev, ev_len), ALN_OK);
  uint8_t buf[2048], values[64 * ALN_TPM_PCR_VALUES_MAX];
  size_t len = 0, values_len = 0;
  write_file("ours.msg", q->attest_raw.attestationData, q->attest_raw.size);
  assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Marshal(&q->sig, buf, sizeof(buf), &len), TSS2_RC_SUCCESS);
  write_file("ours.sig", buf, len);
  len = 0;
  assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(&q->ak, buf, sizeof(buf), &len), TSS2_RC_SUCCESS);
  write_file("ours.pub", buf, len);
  for (size_t i = 0; i < q->num_pcr_values; i++) {
    memcpy(values + values_len, q->pcr_values[i].buffer, q->pcr_values[i].size);
    values_len += q->pcr_values[i].size;
  }
  write_file("ours.pcrs", values, values_len);
  assert_int_equal(sh("tpm2_checkquote -u ours.pub -m ours.msg -s ours.sig -f ours.pcrs -l sha1:0,7+sha256:0,16 "
                      "-g sha256 -q %s",
                      nonce_hex),
                   0);
  /* It does check: another nonce, or another PCR value, and it refuses. */
  nonce[0] ^= 1;
  hex(other_hex, nonce, sizeof(nonce));
  assert_int_not_equal(sh("tpm2_checkquote -u ours.pub -m ours.msg -s ours.sig -f ours.pcrs -l sha1:0,7+sha256:0,16 "
                          "-g sha256 -q %s",
                          other_hex),
                       0);
  values[values_len - 1] ^= 1;
  write_file("ours.pcrs", values, values_len);
  assert_int_not_equal(sh("tpm2_checkquote -u ours.pub -m ours.msg -s ours.sig -f ours.pcrs -l sha1:0,7+sha256:0,16 "
                          "-g sha256 -q %s",
                          nonce_hex),
                       0);
  free(q);
  free(ev);
}

/* ---- quotes by tpm2_quote ---------------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* container_from_tools builds the evidence container by hand from tpm2_quote's
 * files (-m, -s, -o -F values), tpm2_createak's -u, and the digest size of each
 * quoted PCR in order. */
static uint8_t *container_from_tools(size_t *out_len, const char *msg, const char *sig, const char *pub,
                                     const char *pcrs, const size_t *sizes, size_t num) {
  size_t lens[3], values_len = 0, lists_len = 0;
  uint8_t *parts[3] = {read_file(msg, &lens[0]), read_file(sig, &lens[1]), read_file(pub, &lens[2])};
  uint8_t *values = read_file(pcrs, &values_len);
  uint8_t lists[8192];
  size_t off = 0;
  for (size_t i = 0; i < num; i += 8) {
    TPML_DIGEST l = {0};
    for (; l.count < 8 && i + l.count < num; l.count++) {
      l.digests[l.count].size = (UINT16)sizes[i + l.count];
      memcpy(l.digests[l.count].buffer, values + off, sizes[i + l.count]);
      off += sizes[i + l.count];
    }
    assert_int_equal(Tss2_MU_TPML_DIGEST_Marshal(&l, lists, sizeof(lists), &lists_len), TSS2_RC_SUCCESS);
  }
  assert_int_equal(off, values_len);
  uint8_t *ev = malloc(8 + 16 + lens[0] + lens[1] + lens[2] + lists_len);
  assert_non_null(ev);
  size_t n = 0;
  memcpy(ev, "ALNTPMQ1", 8);
  n = 8;
  for (int i = 0; i < 3; i++) {
    put_u32(ev + n, (uint32_t)lens[i]);
    memcpy(ev + n + 4, parts[i], lens[i]);
    n += 4 + lens[i];
    free(parts[i]);
  }
  put_u32(ev + n, (uint32_t)lists_len);
  memcpy(ev + n + 4, lists, lists_len);
  n += 4 + lists_len;
  free(values);
  *out_len = n;
  return ev;
}

static void test_tpm2_quote_accepted(void **state) {
  (void)state;
  extend_pcr16();
  static const struct {
    const char *alg, *scheme, *name;
  } aks[] = {{"ecc", "ecdsa", "ecdsa-sha256"}, {"rsa", "rsassa", "rsassa-sha256"}, {"rsa", "rsapss", "rsapss-sha256"}};
  const size_t sizes[] = {20, 20, 32, 32, 32};
  uint8_t nonce[ALN_BINDING_LEN];
  char nonce_hex[65], seed[64];
  TOOLS("tpm2_createek -c ek.ctx -G rsa -u ek.pub");
  for (size_t i = 0; i < sizeof(aks) / sizeof(aks[0]); i++) {
    assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
    hex(nonce_hex, nonce, sizeof(nonce));
    TOOLS("tpm2_createak -C ek.ctx -c ak%zu.ctx -G %s -g sha256 -s %s -u ak%zu.pub -n ak%zu.name", i, aks[i].alg,
          aks[i].scheme, i, i);
    TOOLS("tpm2_quote -c ak%zu.ctx -l sha1:0,7+sha256:0,1,16 -q %s -m q%zu.msg -s q%zu.sig -o q%zu.pcrs -F values "
          "-g sha256 --scheme %s",
          i, nonce_hex, i, i, i, aks[i].scheme);
    char msg[16], sig[16], pub[16], pcrs[16], namef[16];
    snprintf(msg, sizeof(msg), "q%zu.msg", i);
    snprintf(sig, sizeof(sig), "q%zu.sig", i);
    snprintf(pub, sizeof(pub), "ak%zu.pub", i);
    snprintf(pcrs, sizeof(pcrs), "q%zu.pcrs", i);
    snprintf(namef, sizeof(namef), "ak%zu.name", i);
    size_t ev_len = 0, name_len = 0;
    uint8_t *ev = container_from_tools(&ev_len, msg, sig, pub, pcrs, sizes, 5);
    snprintf(seed, sizeof(seed), "tpm2-quote-%s", aks[i].scheme);
    save_seed(seed, ev, ev_len);

    /* The name tpm2_createak reports is the one we compute. */
    uint8_t *tool_name = read_file(namef, &name_len);
    struct aln_tpm_quote *q = malloc(sizeof(*q));
    assert_non_null(q);
    assert_int_equal(aln_tpm_quote_decode(q, ev, ev_len), ALN_OK);
    TPM2B_NAME name;
    assert_int_equal(aln_tpm_name(&name, &q->ak), ALN_OK);
    assert_int_equal(name.size, name_len);
    assert_memory_equal(name.name, tool_name, name_len);

    const struct aln_tpm_pcr_ref refs[] = {
        {.bank = TPM2_ALG_SHA256, .index = 16, .values = pcr16, .num_values = 1},
        {.bank = TPM2_ALG_SHA256, .index = 1, .values = zero32, .num_values = 1},
    };
    struct aln_tpm_policy policy = {.ak_names = &name, .num_ak_names = 1, .pcrs = refs, .num_pcrs = 2};
    struct aln_verify_ctx ctx = {.nonce = nonce, .nonce_len = sizeof(nonce)};
    struct aln_claims c;
    struct aln_refusal why;
    assert_int_equal(aln_tpm_quote_verify(&c, &why, ev, ev_len, &policy, &ctx), ALN_OK);
    assert_string_equal(json_string_value(json_object_get(c.detail, "signature")), aks[i].name);
    aln_claims_cleanup(&c);

    /* The same quote under a policy that enrolled only our enclave's AK: refused. */
    TPM2B_NAME ours;
    ak_name_of(&ours);
    policy.ak_names = &ours;
    assert_int_equal(aln_tpm_quote_verify(&c, &why, ev, ev_len, &policy, &ctx), ALN_ERR_ATTEST_CHAIN);
    assert_non_null(strstr(why.why, "not enrolled"));
    free(q);
    free(tool_name);
    free(ev);
  }
}

/* ---- EK certificates ------------------------------------------------------------------------- */

static char *ca_pem(const char *file) {
  char name[64];
  snprintf(name, sizeof(name), "ca/%s", file);
  return read_text(name);
}

static void test_ek_cert(void **state) {
  (void)state;
  uint8_t *der = NULL;
  size_t der_len = 0;
  EVP_PKEY *ek = NULL, *tpm_ek = NULL;
  struct aln_refusal why;
  char *root = ca_pem("swtpm-localca-rootca-cert.pem"), *issuer = ca_pem("issuercert.pem");
  int64_t now = (int64_t)time(NULL);

  assert_int_equal(aln_tpm_ek_cert_read(&der, &der_len, TPM2_ALG_RSA), ALN_OK);
  assert_int_equal(aln_tpm_ek_cert_verify(&ek, &why, der, der_len, root, issuer, now), ALN_OK);
  assert_non_null(ek);
  /* The issuing CA alone may be the anchor, too. */
  assert_int_equal(aln_tpm_ek_cert_verify(NULL, &why, der, der_len, issuer, NULL, now), ALN_OK);

  /* The certificate is for the key our L-1 template makes: the template (policy,
   * attributes, unique) is the one the manufacturer certified. */
  TPM2B_PUBLIC pub;
  assert_int_equal(aln_tpm_ek_public(&pub, TPM2_ALG_RSA), ALN_OK);
  assert_int_equal(aln_tpm_public_to_pkey(&tpm_ek, &pub), ALN_OK);
  assert_int_equal(EVP_PKEY_eq(ek, tpm_ek), 1);
  EVP_PKEY_free(tpm_ek);

  /* swtpm certifies no P-256 EK, only the P-384 one at another index. */
  uint8_t *none = NULL;
  size_t none_len = 7;
  assert_int_equal(aln_tpm_ek_cert_read(&none, &none_len, TPM2_ALG_ECC), ALN_ERR_NOT_FOUND);
  assert_null(none);
  assert_int_equal(none_len, 0);

  /* Another CA, a missing intermediate, a time before it was issued. */
  EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  X509 *ca = X509_new();
  assert_non_null(other);
  assert_non_null(ca);
  X509_NAME *cn = X509_NAME_new();
  X509_NAME_add_entry_by_txt(cn, "CN", MBSTRING_ASC, (const unsigned char *)"swtpm-localca-rootca", -1, -1, 0);
  X509_set_version(ca, 2);
  X509_set_subject_name(ca, cn);
  X509_set_issuer_name(ca, cn);
  X509_gmtime_adj(X509_getm_notBefore(ca), -3600);
  X509_gmtime_adj(X509_getm_notAfter(ca), 3600);
  X509_set_pubkey(ca, other);
  assert_true(X509_sign(ca, other, EVP_sha256()) > 0);
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, ca);
  char *other_pem = NULL;
  long other_len = BIO_get_mem_data(bio, &other_pem);
  char *other_root = strndup(other_pem, (size_t)other_len);
  BIO_free(bio);
  X509_free(ca);
  X509_NAME_free(cn);
  EVP_PKEY_free(other);

  EVP_PKEY *out = (EVP_PKEY *)&why;
  assert_int_equal(aln_tpm_ek_cert_verify(&out, &why, der, der_len, other_root, issuer, now), ALN_ERR_ATTEST_CHAIN);
  assert_null(out);
  assert_int_equal(aln_tpm_ek_cert_verify(NULL, &why, der, der_len, root, NULL, now), ALN_ERR_ATTEST_CHAIN);
  assert_non_null(strstr(why.why, "manufacturer CA"));
  assert_int_equal(aln_tpm_ek_cert_verify(NULL, &why, der, der_len, root, issuer, now - 86400), ALN_ERR_ATTEST_CHAIN);
  /* Not exactly one certificate. */
  uint8_t *padded = malloc(der_len + 1);
  memcpy(padded, der, der_len);
  padded[der_len] = 0;
  assert_int_equal(aln_tpm_ek_cert_verify(NULL, &why, padded, der_len + 1, root, issuer, now),
                   ALN_ERR_ATTEST_MALFORMED);
  assert_int_equal(aln_tpm_ek_cert_verify(NULL, &why, padded, der_len - 1, root, issuer, now),
                   ALN_ERR_ATTEST_MALFORMED);
  padded[der_len / 2] ^= 0x40; /* signature or content no longer matches */
  assert_int_not_equal(aln_tpm_ek_cert_verify(NULL, &why, padded, der_len, root, issuer, now), ALN_OK);
  /* The CA's own certificate is not an EK certificate. */
  BIO *rb = BIO_new_mem_buf(issuer, -1);
  X509 *ic = PEM_read_bio_X509(rb, NULL, NULL, NULL);
  BIO_free(rb);
  uint8_t *ic_der = NULL;
  int ic_len = i2d_X509(ic, &ic_der);
  assert_true(ic_len > 0);
  assert_int_equal(aln_tpm_ek_cert_verify(NULL, &why, ic_der, (size_t)ic_len, root, NULL, now), ALN_ERR_ATTEST_POLICY);
  /* Roots that are not PEM certificates are the caller's error. */
  assert_int_equal(aln_tpm_ek_cert_verify(NULL, &why, der, der_len, "not a certificate", issuer, now), ALN_ERR_USAGE);
  OPENSSL_free(ic_der);
  X509_free(ic);
  free(padded);
  free(other_root);
  free(root);
  free(issuer);
  free(der);
  EVP_PKEY_free(ek);
}

/* ---- credential activation ------------------------------------------------------------------ */

static EVP_PKEY *ek_key(TPMI_ALG_PUBLIC alg) {
  TPM2B_PUBLIC pub;
  EVP_PKEY *k = NULL;
  assert_int_equal(aln_tpm_ek_public(&pub, alg), ALN_OK);
  assert_int_equal(aln_tpm_public_to_pkey(&k, &pub), ALN_OK);
  return k;
}

static void test_activate_round_trip(void **state) {
  (void)state;
  static const TPMI_ALG_PUBLIC algs[] = {TPM2_ALG_RSA, TPM2_ALG_ECC};
  TPM2B_NAME name;
  ak_name_of(&name);
  for (size_t i = 0; i < 2; i++) {
    uint8_t cred[32];
    assert_int_equal(RAND_bytes(cred, sizeof(cred)), 1);
    EVP_PKEY *ek = ek_key(algs[i]);
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET secret;
    struct aln_secret got = {0};
    assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &name, cred, sizeof(cred)), ALN_OK);
    assert_int_equal(aln_tpm_ak_activate(T->data, &got, algs[i], &blob, &secret), ALN_OK);
    assert_int_equal(got.len, sizeof(cred));
    assert_memory_equal(got.p, cred, sizeof(cred));
    aln_secret_free(&got);

    /* Shorter credentials too (the TPM2B's size is inside the encryption). */
    assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &name, cred, 1), ALN_OK);
    assert_int_equal(aln_tpm_ak_activate(T->data, &got, algs[i], &blob, &secret), ALN_OK);
    assert_int_equal(got.len, 1);
    assert_int_equal(got.p[0], cred[0]);
    aln_secret_free(&got);

    /* Made for another name: the TPM refuses, nothing comes out. */
    TPM2B_NAME wrong = name;
    wrong.name[wrong.size - 1] ^= 1;
    assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &wrong, cred, sizeof(cred)), ALN_OK);
    assert_int_equal(aln_tpm_ak_activate(T->data, &got, algs[i], &blob, &secret), ALN_ERR_ATTEST_CHAIN);
    assert_null(got.p);
    assert_int_equal(got.len, 0);

    /* Made for this name but activated with the other EK: refused. */
    assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &name, cred, sizeof(cred)), ALN_OK);
    assert_int_equal(aln_tpm_ak_activate(T->data, &got, algs[1 - i], &blob, &secret), ALN_ERR_ATTEST_CHAIN);
    assert_null(got.p);

    /* An altered blob: refused. */
    blob.credential[blob.size - 1] ^= 1;
    assert_int_equal(aln_tpm_ak_activate(T->data, &got, algs[i], &blob, &secret), ALN_ERR_ATTEST_CHAIN);
    assert_null(got.p);
    EVP_PKEY_free(ek);
  }
  /* Arguments MakeCredential refuses. */
  EVP_PKEY *ek = ek_key(TPM2_ALG_ECC), *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  TPM2B_ID_OBJECT blob;
  TPM2B_ENCRYPTED_SECRET secret;
  uint8_t big[ALN_TPM_CREDENTIAL_MAX + 1] = {0};
  assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &name, big, sizeof(big)), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &name, big, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_make_credential(&blob, &secret, p384, &name, big, 16), ALN_ERR_USAGE);
  TPM2B_NAME empty = {0};
  assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &empty, big, 16), ALN_ERR_USAGE);
  assert_int_equal(blob.size, 0);
  EVP_PKEY_free(p384);
  EVP_PKEY_free(ek);
}

/* write_tools_cred writes a credential file as tpm2_makecredential does: the magic
 * 0xBADCC0DE, version 1, then TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET. */
static void write_tools_cred(const char *name, const TPM2B_ID_OBJECT *blob, const TPM2B_ENCRYPTED_SECRET *secret) {
  uint8_t buf[1024] = {0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1};
  size_t off = 8;
  assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Marshal(blob, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
  assert_int_equal(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(secret, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
  write_file(name, buf, off);
}

static void read_tools_cred(const char *name, TPM2B_ID_OBJECT *blob, TPM2B_ENCRYPTED_SECRET *secret) {
  size_t len = 0, off = 8;
  uint8_t *buf = read_file(name, &len);
  static const uint8_t head[8] = {0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1};
  assert_true(len > 8);
  assert_memory_equal(buf, head, 8);
  assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(buf, len, &off, blob), TSS2_RC_SUCCESS);
  assert_int_equal(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(buf, len, &off, secret), TSS2_RC_SUCCESS);
  assert_int_equal(off, len);
  free(buf);
}

/* tpm2_makecredential (offline, -T none) to our EK and AK name; our activation. */
static void test_tools_credential_activated_by_ours(void **state) {
  (void)state;
  static const TPMI_ALG_PUBLIC algs[] = {TPM2_ALG_RSA, TPM2_ALG_ECC};
  TPM2B_NAME name;
  char name_hex[69], secret_hex[65];
  ak_name_of(&name);
  hex(name_hex, name.name, name.size);
  for (size_t i = 0; i < 2; i++) {
    uint8_t cred[32], buf[1024];
    size_t len = 0;
    TPM2B_PUBLIC pub;
    assert_int_equal(RAND_bytes(cred, sizeof(cred)), 1);
    hex(secret_hex, cred, sizeof(cred));
    write_file("cred.secret", cred, sizeof(cred));
    assert_int_equal(aln_tpm_ek_public(&pub, algs[i]), ALN_OK);
    assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, buf, sizeof(buf), &len), TSS2_RC_SUCCESS);
    write_file("our-ek.pub", buf, len);
    assert_int_equal(sh("tpm2_makecredential -T none -u our-ek.pub -s cred.secret -n %s -o tools.cred", name_hex), 0);
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET secret;
    read_tools_cred("tools.cred", &blob, &secret);
    struct aln_secret got = {0};
    assert_int_equal(aln_tpm_ak_activate(T->data, &got, algs[i], &blob, &secret), ALN_OK);
    assert_int_equal(got.len, sizeof(cred));
    assert_memory_equal(got.p, cred, sizeof(cred));
    aln_secret_free(&got);
  }
}

/* Our MakeCredential to the tools' EK and AK; tpm2_activatecredential opens it. */
static void test_ours_activated_by_tools(void **state) {
  (void)state;
  static const struct { const char *g; } eks[] = {{"rsa"}, {"ecc"}};
  for (size_t i = 0; i < 2; i++) {
    TOOLS("tpm2_createek -c tek.ctx -G %s -u tek.pub", eks[i].g);
    TOOLS("tpm2_createak -C tek.ctx -c tak.ctx -G ecc -g sha256 -s ecdsa -u tak.pub -n tak.name");
    size_t pub_len = 0, name_len = 0, off = 0;
    uint8_t *pub_b = read_file("tek.pub", &pub_len), *name_b = read_file("tak.name", &name_len);
    TPM2B_PUBLIC pub = {0};
    assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub_b, pub_len, &off, &pub), TSS2_RC_SUCCESS);
    EVP_PKEY *ek = NULL;
    assert_int_equal(aln_tpm_public_to_pkey(&ek, &pub), ALN_OK);
    TPM2B_NAME name = {.size = (UINT16)name_len};
    memcpy(name.name, name_b, name_len);
    uint8_t cred[32];
    assert_int_equal(RAND_bytes(cred, sizeof(cred)), 1);
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET secret;
    assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &name, cred, sizeof(cred)), ALN_OK);
    write_tools_cred("ours.cred", &blob, &secret);
    TOOLS("rm -f activated.out && tpm2_startauthsession --policy-session -S ps.ctx && tpm2_policysecret -S ps.ctx -c e "
          "&& tpm2_activatecredential -c tak.ctx -C tek.ctx -i ours.cred -o activated.out -P session:ps.ctx && "
          "tpm2_flushcontext ps.ctx");
    size_t out_len = 0;
    uint8_t *out = read_file("activated.out", &out_len);
    assert_int_equal(out_len, sizeof(cred));
    assert_memory_equal(out, cred, sizeof(cred));
    free(out);

    /* The tools also refuse ours when made for another name. */
    name.name[name.size - 1] ^= 1;
    assert_int_equal(aln_tpm_make_credential(&blob, &secret, ek, &name, cred, sizeof(cred)), ALN_OK);
    write_tools_cred("ours.cred", &blob, &secret);
    assert_int_not_equal(sh("tpm2_startauthsession --policy-session -S ps.ctx && tpm2_policysecret -S ps.ctx -c e && "
                            "tpm2_activatecredential -c tak.ctx -C tek.ctx -i ours.cred -o bad.out -P session:ps.ctx"),
                         0);
    assert_int_equal(sh("tpm2_flushcontext -t; tpm2_flushcontext -l; tpm2_flushcontext -s; true"), 0);
    EVP_PKEY_free(ek);
    free(pub_b);
    free(name_b);
  }
}

static void test_no_tpm(void **state) {
  (void)state;
  uint8_t *ev = NULL;
  size_t ev_len = 0;
  TPML_PCR_SELECTION sel = selection(NULL, "0");
  char *saved = strdup(getenv("AILERON_TPM_TCTI"));
  assert_int_equal(setenv("AILERON_TPM_TCTI", "swtpm:host=127.0.0.1,port=1", 1), 0);
  assert_int_equal(aln_tpm_quote_make(T->data, &ev, &ev_len, binding, &sel), ALN_ERR_TPM);
  assert_null(ev);
  assert_int_equal(setenv("AILERON_TPM_TCTI", saved, 1), 0);
  free(saved);
  /* A data dir without ak.tpm where it cannot be written: no quote, no crash. */
  assert_int_equal(aln_tpm_quote_make("/nonexistent-aln-dir", &ev, &ev_len, binding, &sel), ALN_ERR_IO);
  assert_null(ev);
}

int main(void) {
  const struct CMUnitTest codec[] = {
      cmocka_unit_test(test_ak_blob_codec),
  };
  const struct CMUnitTest tpm[] = {
      cmocka_unit_test(test_quote_round_trip),        cmocka_unit_test(test_quote_checked_by_tpm2_checkquote),
      cmocka_unit_test(test_tpm2_quote_accepted),     cmocka_unit_test(test_ek_cert),
      cmocka_unit_test(test_activate_round_trip),     cmocka_unit_test(test_tools_credential_activated_by_ours),
      cmocka_unit_test(test_ours_activated_by_tools), cmocka_unit_test(test_no_tpm),
  };
  int failed = cmocka_run_group_tests_name("ak_blob", codec, NULL, NULL);
  return failed | cmocka_run_group_tests_name("swtpm", tpm, group_setup, group_teardown);
}
