/* Tests for enclave/tpm_counter: the AILERON_TPM_NV_INDEX syntax and range, the
 * public-area check (every attribute that would let something other than the owner
 * write the counter, make it orderly, or lock it, is refused), and the counter
 * itself against a real software TPM (swtpm, started here as the integration tests
 * do): define on first use, read what the TPM holds, move by exactly one per
 * increment, keep the value across connections, never define over or increment an
 * index that is not ours, and refuse a redefined index that was never incremented.
 * A missing swtpm fails the test rather than skipping it. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/swtpm_fixture.h"
#include <tss2/tss2_esys.h>

#include "enclave/provider_tpm.h"
#include "enclave/tpm_counter.h"

/* --- settings and public area, no TPM ------------------------------------------------ */

static void test_index_parse(void **state) {
  (void)state;
  uint32_t v = 7;
  assert_int_equal(aln_tpm_nv_index_parse(&v, "0x01A1E000"), ALN_OK);
  assert_int_equal(v, 0x01A1E000u);
  assert_int_equal(aln_tpm_nv_index_parse(&v, "0x1a1e001"), ALN_OK);
  assert_int_equal(v, 0x01A1E001u);
  assert_int_equal(aln_tpm_nv_index_parse(&v, "0X01800000"), ALN_OK);
  assert_int_equal(v, ALN_TPM_NV_INDEX_MIN);
  assert_int_equal(aln_tpm_nv_index_parse(&v, "0x01bfffff"), ALN_OK);
  assert_int_equal(v, ALN_TPM_NV_INDEX_MAX);
  static const char *bad[] = {
      "",           "0x",         "01a1e000",    "x01a1e000",    "0x01a1e000 ", " 0x01a1e000", "+0x01a1e000",
      "0x-1a1e000", "0x01a1g000", "0x001a1e000", "0x0001a1e000", "0x017fffff",  "0x01c00000",  "0x01000000",
      "0x81000001", "0x1",        "0xffffffff",  "26337280",     "0x01a1e000\n"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    v = 7;
    assert_int_equal(aln_tpm_nv_index_parse(&v, bad[i]), ALN_ERR_USAGE);
    assert_int_equal(v, 0);
  }
  assert_int_equal(aln_tpm_nv_index_parse(&v, NULL), ALN_ERR_USAGE);
  assert_int_equal(aln_tpm_nv_index_parse(NULL, "0x01a1e000"), ALN_ERR_USAGE);
}

static TPMS_NV_PUBLIC good_public(void) {
  return (TPMS_NV_PUBLIC){
      .nvIndex = 0x01A1E000u, .nameAlg = TPM2_ALG_SHA256, .attributes = ALN_TPM_COUNTER_ATTRS, .dataSize = 8};
}

static void test_public_check(void **state) {
  (void)state;
  TPMS_NV_PUBLIC p = good_public();
  assert_true(aln_tpm_counter_public_ok(&p, 0x01A1E000u));
  p.attributes |= TPMA_NV_WRITTEN;
  assert_true(aln_tpm_counter_public_ok(&p, 0x01A1E000u));
  /* The attributes we rely on: a counter, the owner writes, the index auth reads. */
  assert_int_equal(ALN_TPM_COUNTER_ATTRS & TPMA_NV_TPM2_NT_MASK, TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT);
  assert_true(ALN_TPM_COUNTER_ATTRS & TPMA_NV_OWNERWRITE);
  assert_true(ALN_TPM_COUNTER_ATTRS & TPMA_NV_AUTHREAD);
  assert_true(ALN_TPM_COUNTER_ATTRS & TPMA_NV_NO_DA);
  assert_false(ALN_TPM_COUNTER_ATTRS & TPMA_NV_ORDERLY);
  /* Any one attribute more or less is another index. */
  for (int bit = 0; bit < 32; bit++) {
    TPMA_NV a = (TPMA_NV)1u << bit;
    if (a == TPMA_NV_WRITTEN)
      continue;
    p = good_public();
    p.attributes ^= a;
    assert_false(aln_tpm_counter_public_ok(&p, 0x01A1E000u));
  }
  p = good_public();
  p.attributes = (ALN_TPM_COUNTER_ATTRS & ~TPMA_NV_TPM2_NT_MASK) | (TPM2_NT_ORDINARY << TPMA_NV_TPM2_NT_SHIFT);
  assert_false(aln_tpm_counter_public_ok(&p, 0x01A1E000u));
  p = good_public();
  p.nameAlg = TPM2_ALG_SHA1;
  assert_false(aln_tpm_counter_public_ok(&p, 0x01A1E000u));
  p = good_public();
  p.dataSize = 4;
  assert_false(aln_tpm_counter_public_ok(&p, 0x01A1E000u));
  p = good_public();
  p.authPolicy.size = 32; /* a policy could authorize writes or a change of auth */
  assert_false(aln_tpm_counter_public_ok(&p, 0x01A1E000u));
  p = good_public();
  assert_false(aln_tpm_counter_public_ok(&p, 0x01A1E001u));
  assert_false(aln_tpm_counter_public_ok(NULL, 0x01A1E000u));
}

static void test_setting(void **state) {
  (void)state;
  struct aln_epoch_counter *c = NULL;
  assert_int_equal(unsetenv("AILERON_TPM_NV_INDEX"), 0);
  assert_int_equal(aln_tpm_counter_new(&c), ALN_OK);
  assert_int_equal(c->nv_index, ALN_TPM_NV_INDEX_DEFAULT);
  aln_epoch_counter_free(c);
  assert_int_equal(setenv("AILERON_TPM_NV_INDEX", "0x01a1e123", 1), 0);
  assert_int_equal(aln_tpm_counter_new(&c), ALN_OK);
  assert_int_equal(c->nv_index, 0x01A1E123u);
  aln_epoch_counter_free(c);
  c = (struct aln_epoch_counter *)&c;
  assert_int_equal(setenv("AILERON_TPM_NV_INDEX", "0x01c00002", 1), 0); /* the EK certificate's */
  assert_int_equal(aln_tpm_counter_new(&c), ALN_ERR_USAGE);
  assert_null(c);
  assert_int_equal(unsetenv("AILERON_TPM_NV_INDEX"), 0);
}

/* --- against swtpm ------------------------------------------------------------------ */

struct swtpm {
  pid_t pid;
  char dir[64];
  int port;
};

/* two_free_ports returns a port p with p and p + 1 free (swtpm's server and control). */

static int swtpm_start(void **state) {
  struct swtpm *t = calloc(1, sizeof(*t));
  char tcti[64];
  if (t == NULL)
    return -1;
  strcpy(t->dir, "/tmp/aln-tpmctr-XXXXXX");
  if (mkdtemp(t->dir) == NULL || (t->port = aln_test_two_free_ports()) < 0)
    return -1;
  t->pid = aln_test_swtpm_spawn(t->dir, t->port, "tpm_counter_test");
  if (t->pid < 0)
    return -1; /* swtpm missing or failed: fail, do not skip */
  snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", t->port);
  setenv("AILERON_TPM_TCTI", tcti, 1);
  unsetenv("AILERON_TPM_NV_INDEX");
  *state = t;
  return 0;
}

static int swtpm_stop(void **state) {
  struct swtpm *t = *state;
  char cmd[128];
  if (t == NULL)
    return 0;
  kill(t->pid, SIGTERM);
  waitpid(t->pid, NULL, 0);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
  if (system(cmd) != 0)
    return -1;
  unsetenv("AILERON_TPM_TCTI");
  unsetenv("AILERON_TPM_NV_INDEX");
  free(t);
  return 0;
}

static struct aln_epoch_counter *counter_at(const char *idx) {
  struct aln_epoch_counter *c = NULL;
  assert_int_equal(setenv("AILERON_TPM_NV_INDEX", idx, 1), 0);
  assert_int_equal(aln_tpm_counter_new(&c), ALN_OK);
  return c;
}

/* define_raw defines |idx| with |attrs| directly, as another program would. */
static void define_raw(uint32_t idx, TPMA_NV attrs) {
  struct aln_tpm_conn conn;
  static const TPM2B_AUTH no_auth = {0};
  TPM2B_NV_PUBLIC info = {.nvPublic = {.nvIndex = idx, .nameAlg = TPM2_ALG_SHA256, .attributes = attrs, .dataSize = 8}};
  ESYS_TR nv = ESYS_TR_NONE;
  assert_int_equal(aln_tpm_conn_open(&conn), ALN_OK);
  assert_int_equal(Esys_NV_DefineSpace(conn.esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                       &no_auth, &info, &nv),
                   TSS2_RC_SUCCESS);
  assert_int_equal(Esys_TR_Close(conn.esys, &nv), TSS2_RC_SUCCESS);
  aln_tpm_conn_close(&conn);
}

/* undefine_raw removes |idx| with the owner's authorization. */
static void undefine_raw(uint32_t idx) {
  struct aln_tpm_conn conn;
  ESYS_TR nv = ESYS_TR_NONE;
  assert_int_equal(aln_tpm_conn_open(&conn), ALN_OK);
  assert_int_equal(Esys_TR_FromTPMPublic(conn.esys, idx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv),
                   TSS2_RC_SUCCESS);
  assert_int_equal(Esys_NV_UndefineSpace(conn.esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE),
                   TSS2_RC_SUCCESS);
  aln_tpm_conn_close(&conn);
}

static void test_counter_on_swtpm(void **state) {
  (void)state;
  struct aln_epoch_counter *c = counter_at("0x01a1e000");
  uint64_t v = 0, w = 0;

  /* Absent: read says so and defines nothing. */
  assert_int_equal(c->read(c->ctx, &v), ALN_ERR_NOT_FOUND);
  c->done(c->ctx);
  assert_int_equal(c->read(c->ctx, &v), ALN_ERR_NOT_FOUND);
  assert_int_equal(c->increment(c->ctx), ALN_ERR_NOT_FOUND);
  c->done(c->ctx);
  /* create defines it and gives it a value; a second create changes nothing. */
  assert_int_equal(c->create(c->ctx, &v), ALN_OK);
  c->done(c->ctx);
  assert_int_equal(c->create(c->ctx, &w), ALN_OK);
  assert_true(w == v);
  assert_int_equal(c->read(c->ctx, &w), ALN_OK);
  assert_true(w == v);
  /* Each increment moves it by exactly one, within one connection and across. */
  assert_int_equal(c->increment(c->ctx), ALN_OK);
  assert_int_equal(c->read(c->ctx, &w), ALN_OK);
  assert_true(w == v + 1);
  c->done(c->ctx);
  c->done(c->ctx); /* idempotent */
  assert_int_equal(c->increment(c->ctx), ALN_OK);
  assert_int_equal(c->increment(c->ctx), ALN_OK);
  c->done(c->ctx);
  aln_epoch_counter_free(c);
  c = counter_at("0x01a1e000");
  assert_int_equal(c->read(c->ctx, &w), ALN_OK);
  assert_true(w == v + 3);
  aln_epoch_counter_free(c); /* frees with the connection open */

  /* The same index defined anew, as tpm2_nvundefine + tpm2_nvdefine would: the name
   * is the same, but it was never incremented: read refuses it. A create (the
   * operator's explicit re-anchoring) initialises it at or above the old value: a
   * TPM never lets a counter go back. */
  undefine_raw(0x01A1E000u);
  define_raw(0x01A1E000u, ALN_TPM_COUNTER_ATTRS);
  c = counter_at("0x01a1e000");
  assert_int_equal(c->read(c->ctx, &w), ALN_ERR_TAMPERED);
  assert_int_equal(c->increment(c->ctx), ALN_ERR_TAMPERED);
  assert_int_equal(c->create(c->ctx, &w), ALN_OK);
  assert_true(w > v + 3);
  aln_epoch_counter_free(c);

  /* Someone else's indices, each one attribute away from ours: never used, never
   * incremented, never redefined. */
  static const struct {
    const char *name;
    uint32_t idx;
    TPMA_NV attrs;
  } foreign[] = {
      {"0x01a1e010", 0x01A1E010u, ALN_TPM_COUNTER_ATTRS | TPMA_NV_ORDERLY},
      {"0x01a1e011", 0x01A1E011u, ALN_TPM_COUNTER_ATTRS | TPMA_NV_AUTHWRITE},
      {"0x01a1e012", 0x01A1E012u,
       (ALN_TPM_COUNTER_ATTRS & ~TPMA_NV_TPM2_NT_MASK) | TPMA_NV_OWNERREAD |
           (TPM2_NT_ORDINARY << TPMA_NV_TPM2_NT_SHIFT)},
  };
  for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
    define_raw(foreign[i].idx, foreign[i].attrs);
    c = counter_at(foreign[i].name);
    assert_int_equal(c->read(c->ctx, &w), ALN_ERR_TAMPERED);
    assert_int_equal(c->create(c->ctx, &w), ALN_ERR_TAMPERED);
    assert_int_equal(c->increment(c->ctx), ALN_ERR_TAMPERED);
    aln_epoch_counter_free(c);
  }

  /* No TPM: a clear failure, not a hang or a crash. */
  assert_int_equal(setenv("AILERON_TPM_TCTI", "swtpm:host=127.0.0.1,port=1", 1), 0);
  c = counter_at("0x01a1e000");
  assert_int_equal(c->read(c->ctx, &w), ALN_ERR_TPM);
  aln_epoch_counter_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_index_parse),
      cmocka_unit_test(test_public_check),
      cmocka_unit_test(test_setting),
      cmocka_unit_test_setup_teardown(test_counter_on_swtpm, swtpm_start, swtpm_stop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
