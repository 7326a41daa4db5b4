/* aileron-enclave: argument parsing only; everything else is in the library. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "attestation/tpm_quote.h"
#include "enclave/epoch.h"
#include "enclave/escrow.h"
#include "enclave/kek_rotate.h"
#include "enclave/provider.h"
#include "enclave/provider_tpm.h"
#include "enclave/recovery.h"
#include "enclave/server.h"
#include "enclave/tpm_attest.h"
#include "enclave/upstream.h"
#include "proto/keyfile.h"
#include "proto/secmem.h"
#include "proto/tls.h"

#define DEFAULT_LISTEN "127.0.0.1:7400"

static void usage(void) {
  fprintf(stderr,
          "usage: aileron-enclave [serve] --data-dir DIR [--listen HOST:PORT]\n"
          "       aileron-enclave host enroll CERT-OR-PUBKEY.pem [--label LABEL] --data-dir DIR\n"
          "       aileron-enclave host remove SPKI-SHA256-HEX --data-dir DIR\n"
          "       aileron-enclave host list --data-dir DIR\n"
          "       aileron-enclave kek export-recovery --to OPERATOR-PUBKEY.pem --out FILE --data-dir DIR\n"
          "       aileron-enclave kek import-recovery FILE --key OPERATOR-PRIVKEY.pem --data-dir DIR\n"
          "       aileron-enclave kek rotate --data-dir DIR   (with the enclave stopped)\n"
          "       aileron-enclave tpm policy --data-dir DIR   (the host policy's tpm section, as measured now)\n"
          "environment: AILERON_TEE_PROVIDER=local|tpm (required; confidential-space to come)\n"
          "             tpm: AILERON_TPM_TCTI (e.g. device:/dev/tpmrm0), AILERON_TPM_PCRS (default "
          "sha256:7)\n"
          "             tpm: AILERON_TPM_NV_INDEX, the rollback counter (default 0x01a1e000);\n"
          "             AILERON_TPM_QUOTE_PCRS, the PCRs quoted (default: AILERON_TPM_PCRS)\n"
          "             AILERON_EPOCH_FILE: rollback-protection state, outside the data dir (required;\n"
          "             AILERON_ACCEPT_ROLLBACK_RISK=1 accepts a missing file or counter once)\n"
          "             AILERON_ACCEPT_EDITED_STATE=1 vouches once for an escrow edited outside the enclave\n");
}

static int fail(const char *what, aln_status st) {
  fprintf(stderr, "aileron-enclave: %s: %s (%s)\n", what, aln_strerror(st), aln_status_name(st));
  return 1;
}

/* epoch_path_outside checks that the epoch file |path| is not inside |data_dir|:
 * a copy of the data dir must not carry its own epoch along. */
static int epoch_path_outside(const char *path, const char *data_dir) {
  char dir[PATH_MAX], real_dir[PATH_MAX], real_data[PATH_MAX];
  const char *slash = strrchr(path, '/');
  int n = slash == NULL ? snprintf(dir, sizeof(dir), ".")
                        : snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
  if (n <= 0 || (size_t)n >= sizeof(dir) || realpath(dir, real_dir) == NULL || realpath(data_dir, real_data) == NULL)
    return 0;
  size_t len = strlen(real_data);
  return !(strncmp(real_dir, real_data, len) == 0 && (real_dir[len] == '\0' || real_dir[len] == '/'));
}

/* guard_epoch_counter is guard_epoch for a provider with a monotonic counter (the
 * tpm provider's NV counter): the file records the counter's base beside the
 * epoch, and the escrow must not be older than what either vouches for. */
static int guard_epoch_counter(struct aln_escrow *esc, const struct aln_provider *prov, const char *path,
                               const struct aln_secret *kek, int accept_risk) {
  struct aln_epoch_counter *ctr = NULL;
  struct aln_epoch_info info;
  aln_status st = prov->counter_new(&ctr);
  if (st != ALN_OK)
    return fail("the rollback counter", st);
  st = aln_epoch_counter_guard(esc, &info, path, kek, ctr, accept_risk);
  if (st != ALN_OK) {
    fprintf(stderr, "aileron-enclave: %s (%s)\n", info.why[0] != '\0' ? info.why : aln_strerror(st),
            aln_status_name(st));
    return 1;
  }
  if (info.rebased)
    fprintf(stderr,
            "aileron-enclave: WARNING: AILERON_ACCEPT_ROLLBACK_RISK=1: trusting the escrow at epoch %llu, custody "
            "generation %llu, as the newest; TPM NV counter 0x%08x now anchors it\n",
            (unsigned long long)info.db_epoch, (unsigned long long)info.db_generation, info.nv_index);
  return 0;
}

/* guard_epoch is the rollback check of every command that opens the escrow (see
 * enclave/epoch.h): the escrow must not be older than the last state this enclave
 * recorded in AILERON_EPOCH_FILE (required with every provider) and, for a
 * provider with a monotonic counter, than what the counter vouches for. */
static int guard_epoch(struct aln_escrow *esc, const struct aln_provider *prov, const char *data_dir,
                       const struct aln_secret *kek, const struct aln_secret *old_kek) {
  const char *path = getenv("AILERON_EPOCH_FILE");
  if (path == NULL || path[0] == '\0') {
    /* The counter's base lives in the file too, so every provider needs it. */
    fprintf(stderr, "aileron-enclave: set AILERON_EPOCH_FILE to a file outside the data dir (rollback protection)\n");
    return 2;
  }
  if (!epoch_path_outside(path, data_dir)) {
    fprintf(stderr, "aileron-enclave: AILERON_EPOCH_FILE must name a file in an existing directory outside the data "
                    "dir\n");
    return 2;
  }
  /* A rotation finished at this start may have left the file under the old KEK. */
  if (old_kek != NULL) {
    aln_status rs = aln_epoch_rekey(path, old_kek, kek);
    if (rs != ALN_OK && rs != ALN_ERR_NOT_FOUND)
      return fail("re-keying the epoch file after the KEK rotation", rs);
  }
  const char *accept = getenv("AILERON_ACCEPT_ROLLBACK_RISK");
  if (prov->counter_new != NULL)
    return guard_epoch_counter(esc, prov, path, kek, accept != NULL && strcmp(accept, "1") == 0);
  struct aln_epoch_info info;
  aln_status st = aln_epoch_guard(esc, &info, path, kek);
  if (st == ALN_ERR_EPOCH_MISSING && accept != NULL && strcmp(accept, "1") == 0) {
    /* The operator vouches that this database is the newest: start a new record. */
    fprintf(stderr,
            "aileron-enclave: WARNING: epoch file missing; AILERON_ACCEPT_ROLLBACK_RISK=1: trusting the "
            "escrow at epoch %llu\n",
            (unsigned long long)info.db_epoch);
    st = aln_epoch_write(path, kek, info.db_epoch);
    if (st == ALN_OK)
      st = aln_epoch_guard(esc, &info, path, kek);
  }
  switch (st) {
  case ALN_OK:
    return 0;
  case ALN_ERR_ROLLBACK:
    fprintf(stderr,
            "aileron-enclave: the escrow database is older than the last state this enclave committed (epoch %llu < "
            "%llu): an old copy was restored; refusing to start so revoked credentials cannot come back\n",
            (unsigned long long)info.db_epoch, (unsigned long long)info.file_epoch);
    return 1;
  case ALN_ERR_EPOCH_MISSING:
    fprintf(stderr,
            "aileron-enclave: the epoch file is missing but the escrow has committed writes (epoch %llu): restore "
            "it, or set AILERON_ACCEPT_ROLLBACK_RISK=1 once if this database is known to be the newest\n",
            (unsigned long long)info.db_epoch);
    return 1;
  case ALN_ERR_TAMPERED:
  case ALN_ERR_MALFORMED:
  case ALN_ERR_TRUNCATED:
  case ALN_ERR_TRAILING:
    fprintf(stderr,
            "aileron-enclave: the epoch file failed authentication (edited, or written under another KEK): "
            "refusing to start (%s)\n",
            aln_status_name(st));
    return 1;
  default:
    return fail("checking the rollback epoch", st);
  }
}

static int env_is_1(const char *name) {
  const char *v = getenv(name);
  return v != NULL && strcmp(v, "1") == 0;
}

/* explain_open says why the escrow did not open, in the operator's terms. */
static int explain_open(aln_status st) {
  switch (st) {
  case ALN_ERR_KEK_MISMATCH:
    fprintf(stderr,
            "aileron-enclave: the escrow was sealed under another KEK than this data dir's: restore the "
            "right KEK file, or import it with 'aileron-enclave kek import-recovery' (%s)\n",
            aln_status_name(st));
    return 1;
  case ALN_ERR_STATE_TAMPERED:
    fprintf(stderr,
            "aileron-enclave: the escrow database was edited outside the enclave: which credentials or hosts exist, "
            "its counters or its audit head no longer authenticate (%s). Refusing to start; restore it from a "
            "backup, or set AILERON_ACCEPT_EDITED_STATE=1 once to vouch for it as it is\n",
            aln_status_name(st));
    return 1;
  default:
    return fail("opening the escrow", st);
  }
}

/* open_escrow loads the provider's KEK and opens the escrow in |data_dir|, after
 * taking the data dir's lock (|lock|: 0 none, 1 shared, 2 exclusive) into *lock_fd;
 * a KEK rotation left half done is finished or undone first. |kek_out| (may be
 * NULL) receives the KEK. */
static int open_escrow(struct aln_escrow **esc, const struct aln_provider **prov, const char *data_dir, int lock,
                       int *lock_fd, struct aln_secret *kek_out) {
  const char *name = getenv("AILERON_TEE_PROVIDER");
  if (name == NULL || name[0] == '\0') {
    fprintf(stderr, "aileron-enclave: set AILERON_TEE_PROVIDER (local for the dev enclave)\n");
    return 2;
  }
  *prov = aln_provider_find(name);
  if (*prov == NULL) {
    fprintf(stderr, "aileron-enclave: TEE provider '%.32s' is not available in this build (have: local, tpm)\n", name);
    return 2;
  }
  aln_status st = aln_private_dir_ensure(data_dir);
  if (st != ALN_OK)
    return fail("data dir", st);
  if (lock != 0 && (st = aln_data_dir_lock(lock_fd, data_dir, lock == 2)) != ALN_OK) {
    if (st == ALN_ERR_EXISTS)
      fprintf(stderr, "aileron-enclave: %s\n",
              lock == 2 ? "the data dir is in use (a serving enclave or another command): stop it first"
                        : "a KEK rotation or recovery is running on this data dir: wait for it to end");
    return st == ALN_ERR_EXISTS ? 1 : fail("locking the data dir", st);
  }
  struct aln_secret kek = {0}, old_kek = {0};
  enum aln_kek_recovery rec;
  char path[PATH_MAX];
  if ((st = aln_path_join(path, data_dir, "escrow.db", NULL)) != ALN_OK)
    return fail("data dir", st);
  unsigned flags = env_is_1("AILERON_ACCEPT_EDITED_STATE") ? ALN_ESCROW_ACCEPT_STATE : 0;
  st = aln_kek_open_escrow(esc, &kek, &old_kek, &rec, *prov, data_dir, path, flags);
  if (st != ALN_OK)
    return explain_open(st);
  if (rec == ALN_KEK_ROTATION_FINISHED)
    fprintf(stderr, "aileron-enclave: finished an interrupted KEK rotation (the escrow had committed it)\n");
  else if (rec == ALN_KEK_ROTATION_UNDONE)
    fprintf(stderr, "aileron-enclave: undid an interrupted KEK rotation (it had not committed; the KEK is "
                    "unchanged)\n");
  int rc = guard_epoch(*esc, *prov, data_dir, &kek, old_kek.p != NULL ? &old_kek : NULL);
  aln_secret_free(&old_kek);
  if (rc == 0 && kek_out != NULL) {
    *kek_out = kek;
    memset(&kek, 0, sizeof(kek));
  }
  aln_secret_free(&kek);
  if (rc != 0) {
    aln_escrow_free(*esc);
    *esc = NULL;
  }
  return rc;
}

static int cmd_serve(const char *data_dir, const char *listen) {
  struct aln_escrow *esc = NULL;
  const struct aln_provider *prov = NULL;
  struct aln_server *srv = NULL;
  int lock_fd = -1;
  int rc = open_escrow(&esc, &prov, data_dir, 1, &lock_fd, NULL);
  if (rc != 0)
    goto out;
  aln_status st = aln_upstream_global_init();
  if (st != ALN_OK) {
    rc = fail("libcurl", st);
    goto out;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts */
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  struct aln_server_config cfg = {.listen = listen, .provider = prov, .escrow = esc, .data_dir = data_dir};
  st = aln_server_new(&srv, &cfg);
  if (st != ALN_OK || sfd < 0) {
    rc = fail("starting the server", st != ALN_OK ? st : ALN_ERR_INTERNAL);
    goto out;
  }
  fprintf(stderr, "aileron-enclave: listening on %s port %d (provider %s%s)\n", listen, aln_server_port(srv),
          prov->name, strcmp(prov->evidence_kind, "local") == 0 ? ", DEBUG evidence: dev only" : "");
  st = aln_server_run(srv, sfd);
  close(sfd);
  fprintf(stderr, "aileron-enclave: stopped\n");
  rc = st == ALN_OK ? 0 : 1;
out:
  aln_server_free(srv);
  aln_escrow_free(esc);
  if (lock_fd >= 0)
    close(lock_fd);
  return rc;
}

static int cmd_host_list(const char *data_dir) {
  struct aln_escrow *esc = NULL;
  const struct aln_provider *prov = NULL;
  struct aln_host_entry *list = NULL;
  size_t num = 0;
  int lock_fd = -1; /* held until the process exits */
  int rc = open_escrow(&esc, &prov, data_dir, 1, &lock_fd, NULL);
  if (rc != 0)
    return rc;
  aln_status st = aln_escrow_host_list(esc, &list, &num);
  aln_escrow_free(esc);
  if (st != ALN_OK)
    return fail("listing hosts", st);
  for (size_t i = 0; i < num; i++) {
    char hex[2 * ALN_SPKI_HASH_LEN + 1];
    if (aln_hex_encode(hex, sizeof(hex), list[i].spki_hash, sizeof(list[i].spki_hash)) != ALN_OK)
      continue;
    /* Labels come from operators' command lines: print them inert. */
    for (char *p = list[i].label; *p; p++)
      if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
        *p = '?';
    printf("%s  enrolled %lld  %s\n", hex, (long long)list[i].enrolled_at, list[i].label);
  }
  free(list);
  return 0;
}

static int cmd_host(int argc, char **argv, const char *data_dir, const char *label) {
  if (argc == 1 && strcmp(argv[0], "list") == 0)
    return cmd_host_list(data_dir);
  if (argc != 2)
    return usage(), 2;
  struct aln_escrow *esc = NULL;
  const struct aln_provider *prov = NULL;
  uint8_t spki[ALN_SPKI_HASH_LEN];
  char hex[2 * ALN_SPKI_HASH_LEN + 1];
  aln_status st;
  int rc;
  if (strcmp(argv[0], "enroll") == 0) {
    st = aln_tls_load_pem_spki_hash(spki, argv[1]);
    if (st != ALN_OK)
      return fail("reading the host key", st);
  } else if (strcmp(argv[0], "remove") == 0) {
    st = aln_hex_decode(spki, sizeof(spki), argv[1], strlen(argv[1]));
    if (st != ALN_OK)
      return fail("parsing the key hash", st);
  } else {
    return usage(), 2;
  }
  int lock_fd = -1; /* held until the process exits */
  if ((rc = open_escrow(&esc, &prov, data_dir, 1, &lock_fd, NULL)) != 0)
    return rc;
  st = strcmp(argv[0], "enroll") == 0 ? aln_escrow_host_enroll(esc, spki, label) : aln_escrow_host_remove(esc, spki);
  aln_escrow_free(esc);
  if (st != ALN_OK)
    return fail(argv[0], st);
  if (aln_hex_encode(hex, sizeof(hex), spki, sizeof(spki)) == ALN_OK)
    printf("%s host key %s\n", strcmp(argv[0], "enroll") == 0 ? "enrolled" : "removed", hex);
  return 0;
}

/* rekey_epoch moves the epoch file to the new KEK while a rotation knows both. */
static aln_status rekey_epoch(void *ctx, const struct aln_secret *old_kek, const struct aln_secret *new_kek) {
  return aln_epoch_rekey((const char *)ctx, old_kek, new_kek);
}

/* cmd_kek_rotate runs "kek rotate" on a stopped enclave's data dir. */
static int cmd_kek_rotate(const char *data_dir) {
  struct aln_escrow *esc = NULL;
  const struct aln_provider *prov = NULL;
  struct aln_secret kek = {0};
  uint64_t num = 0;
  int lock_fd = -1; /* exclusive: no enclave may keep the old KEK in memory */
  int rc = open_escrow(&esc, &prov, data_dir, 2, &lock_fd, &kek);
  if (rc != 0)
    return rc;
  aln_status st = aln_kek_rotate(esc, &kek, &num, prov, data_dir, rekey_epoch, getenv("AILERON_EPOCH_FILE"));
  aln_escrow_free(esc);
  aln_secret_free(&kek);
  if (st != ALN_OK)
    return fail("rotating the KEK (the next start finishes it if the escrow had committed)", st);
  printf("KEK rotated: %llu data keys re-wrapped under a new KEK in %s/%s. Recovery files made for the old KEK no "
         "longer open this escrow: run 'aileron-enclave kek export-recovery' again.\n",
         (unsigned long long)num, data_dir, prov->kek_file);
  return 0;
}

/* cmd_kek runs "kek export-recovery" and "kek import-recovery"; it parses its own
 * options (argv[0] is "kek"). */
static int cmd_kek(int argc, char **argv) {
  const char *data_dir = NULL, *to = NULL, *out = NULL, *key = NULL;
  static const struct option opts[] = {{"data-dir", required_argument, NULL, 'd'},
                                       {"to", required_argument, NULL, 't'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"key", required_argument, NULL, 'k'},
                                       {NULL, 0, NULL, 0}};
  char *words[3];
  int nwords = 0, ch;
  optind = 1;
  for (;;) {
    while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
      if (ch == 'd')
        data_dir = optarg;
      else if (ch == 't')
        to = optarg;
      else if (ch == 'o')
        out = optarg;
      else if (ch == 'k')
        key = optarg;
      else
        return usage(), 2;
    }
    if (optind >= argc)
      break;
    if (nwords == 3)
      return usage(), 2;
    words[nwords++] = argv[optind++];
  }
  const char *name = getenv("AILERON_TEE_PROVIDER");
  const struct aln_provider *prov = aln_provider_find(name);
  if (data_dir == NULL || nwords == 0)
    return usage(), 2;
  if (prov == NULL) {
    fprintf(stderr, "aileron-enclave: set AILERON_TEE_PROVIDER to the provider of this data dir (local, tpm)\n");
    return 2;
  }
  aln_status st;
  if (strcmp(words[0], "rotate") == 0 && nwords == 1 && to == NULL && out == NULL && key == NULL)
    return cmd_kek_rotate(data_dir);
  if (strcmp(words[0], "export-recovery") == 0 && nwords == 1 && to != NULL && out != NULL && key == NULL) {
    if ((st = aln_recovery_export(prov, data_dir, to, out)) != ALN_OK)
      return fail("exporting the KEK for recovery", st);
    printf("recovery file written to %s: keep it with the operator key's offline copy\n", out);
    return 0;
  }
  if (strcmp(words[0], "import-recovery") == 0 && nwords == 2 && key != NULL && to == NULL && out == NULL) {
    int lock_fd = -1; /* held until the process exits */
    if ((st = aln_private_dir_ensure(data_dir)) == ALN_OK)
      st = aln_data_dir_lock(&lock_fd, data_dir, 1);
    if (st == ALN_ERR_EXISTS)
      fprintf(stderr, "aileron-enclave: the data dir is in use (a serving enclave or another command): stop it "
                      "first\n");
    if (st != ALN_OK || (st = aln_recovery_import(prov, data_dir, words[1], key)) != ALN_OK)
      return fail("importing the recovery file", st);
    printf("KEK recovered and installed for the %s provider in %s\n", prov->name, data_dir);
    return 0;
  }
  return usage(), 2;
}

static void print_hex(const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    printf("%02x", p[i]);
}

/* cmd_tpm_policy prints the `tpm:` section of a host appraisal policy for this
 * enclave: the name of its attestation key (created if needed) and the values its
 * quoted PCRs hold now, read from a quote. The operator checks them against what
 * the platform should measure before trusting them: they are what the TPM says
 * today, not a proof that today's state is good. */
static int cmd_tpm_policy(const char *data_dir) {
  const char *name = getenv("AILERON_TEE_PROVIDER");
  if (name == NULL || strcmp(name, "tpm") != 0) {
    fprintf(stderr, "aileron-enclave: tpm policy needs AILERON_TEE_PROVIDER=tpm (and AILERON_TPM_TCTI)\n");
    return 2;
  }
  TPML_PCR_SELECTION sel;
  aln_status st = aln_tpm_quote_pcrs(&sel);
  if (st != ALN_OK)
    return fail("AILERON_TPM_QUOTE_PCRS", st);
  static const uint8_t zero[ALN_BINDING_LEN] = {0};
  uint8_t *ev = NULL;
  size_t ev_len = 0;
  struct aln_tpm_quote *q = calloc(1, sizeof(*q));
  TPM2B_NAME ak;
  if (q == NULL)
    return fail("memory", ALN_ERR_NOMEM);
  if ((st = aln_private_dir_ensure(data_dir)) != ALN_OK ||
      (st = aln_tpm_quote_make(data_dir, &ev, &ev_len, zero, &sel)) != ALN_OK ||
      (st = aln_tpm_quote_decode(q, ev, ev_len)) != ALN_OK || (st = aln_tpm_name(&ak, &q->ak)) != ALN_OK) {
    free(ev);
    free(q);
    return fail("quoting", st);
  }
  printf("  # made by aileron-enclave tpm policy: check these values against what the platform should measure\n"
         "  tpm:\n    ak_names: [");
  print_hex(ak.name, ak.size);
  printf("]\n    pcrs:\n");
  size_t v = 0;
  for (UINT32 b = 0; b < sel.count; b++) {
    const TPMS_PCR_SELECTION *ps = &sel.pcrSelections[b];
    for (unsigned idx = 0; idx < 8u * ps->sizeofSelect && v < q->num_pcr_values; idx++) {
      if (!(ps->pcrSelect[idx / 8] & (1u << (idx % 8))))
        continue;
      printf("      - {bank: %s, index: %u, values: [", aln_tpm_hash_name(ps->hash), idx);
      print_hex(q->pcr_values[v].buffer, q->pcr_values[v].size);
      printf("]}\n");
      v++;
    }
  }
  free(ev);
  free(q);
  return 0;
}

int main(int argc, char **argv) {
  if (aln_process_harden() != ALN_OK) {
    fprintf(stderr, "aileron-enclave: cannot disable core dumps\n");
    return 1;
  }
  if (argc >= 2 && strcmp(argv[1], "kek") == 0)
    return cmd_kek(argc - 1, argv + 1);
  const char *data_dir = NULL, *listen = DEFAULT_LISTEN, *label = "";
  static const struct option opts[] = {{"data-dir", required_argument, NULL, 'd'},
                                       {"listen", required_argument, NULL, 'l'},
                                       {"label", required_argument, NULL, 'L'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  /* Options may come before, between or after the positional words. */
  char *words[8];
  int nwords = 0, ch;
  for (;;) {
    while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
      switch (ch) {
      case 'd':
        data_dir = optarg;
        break;
      case 'l':
        listen = optarg;
        break;
      case 'L':
        label = optarg;
        break;
      case 'h':
        usage();
        return 0;
      default:
        usage();
        return 2;
      }
    }
    if (optind >= argc)
      break;
    if (nwords == 8)
      return usage(), 2;
    words[nwords++] = argv[optind++];
  }
  if (data_dir == NULL) {
    usage();
    return 2;
  }
  if (nwords == 0 || strcmp(words[0], "serve") == 0)
    return nwords <= 1 ? cmd_serve(data_dir, listen) : (usage(), 2);
  if (strcmp(words[0], "host") == 0)
    return cmd_host(nwords - 1, words + 1, data_dir, label);
  if (strcmp(words[0], "tpm") == 0 && nwords == 2 && strcmp(words[1], "policy") == 0)
    return cmd_tpm_policy(data_dir);
  usage();
  return 2;
}
