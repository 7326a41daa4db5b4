/* aileron-enclave: argument parsing only; everything else is in the library. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "enclave/escrow.h"
#include "enclave/provider.h"
#include "enclave/server.h"
#include "enclave/upstream.h"
#include "proto/keyfile.h"
#include "proto/secmem.h"
#include "proto/tls.h"

#define DEFAULT_LISTEN "127.0.0.1:7400"

static void usage(void) {
  fprintf(stderr, "usage: aileron-enclave [serve] --data-dir DIR [--listen HOST:PORT]\n"
                  "       aileron-enclave host enroll CERT-OR-PUBKEY.pem [--label LABEL] --data-dir DIR\n"
                  "       aileron-enclave host remove SPKI-SHA256-HEX --data-dir DIR\n"
                  "       aileron-enclave host list --data-dir DIR\n"
                  "environment: AILERON_TEE_PROVIDER=local|tpm (required; confidential-space to come)\n"
                  "             tpm: AILERON_TPM_TCTI (e.g. device:/dev/tpmrm0), AILERON_TPM_PCRS (default "
                  "sha256:7)\n");
}

static int fail(const char *what, aln_status st) {
  fprintf(stderr, "aileron-enclave: %s: %s (%s)\n", what, aln_strerror(st), aln_status_name(st));
  return 1;
}

/* open_escrow loads the provider's KEK and opens the escrow in |data_dir|. */
static int open_escrow(struct aln_escrow **esc, const struct aln_provider **prov, const char *data_dir) {
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
  struct aln_secret kek = {0};
  st = (*prov)->kek_load(&kek, data_dir);
  if (st != ALN_OK)
    return fail("loading the KEK", st);
  char path[4096];
  snprintf(path, sizeof(path), "%s/escrow.db", data_dir);
  st = aln_escrow_open(esc, path, &kek);
  aln_secret_free(&kek);
  if (st != ALN_OK)
    return fail("opening the escrow", st);
  return 0;
}

static int cmd_serve(const char *data_dir, const char *listen) {
  struct aln_escrow *esc = NULL;
  const struct aln_provider *prov = NULL;
  struct aln_server *srv = NULL;
  int rc = open_escrow(&esc, &prov, data_dir);
  if (rc != 0)
    return rc;
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
  struct aln_server_config cfg = {.listen = listen, .provider = prov, .escrow = esc};
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
  return rc;
}

static int cmd_host_list(const char *data_dir) {
  struct aln_escrow *esc = NULL;
  const struct aln_provider *prov = NULL;
  struct aln_host_entry *list = NULL;
  size_t num = 0;
  int rc = open_escrow(&esc, &prov, data_dir);
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
  if ((rc = open_escrow(&esc, &prov, data_dir)) != 0)
    return rc;
  st = strcmp(argv[0], "enroll") == 0 ? aln_escrow_host_enroll(esc, spki, label) : aln_escrow_host_remove(esc, spki);
  aln_escrow_free(esc);
  if (st != ALN_OK)
    return fail(argv[0], st);
  if (aln_hex_encode(hex, sizeof(hex), spki, sizeof(spki)) == ALN_OK)
    printf("%s host key %s\n", strcmp(argv[0], "enroll") == 0 ? "enrolled" : "removed", hex);
  return 0;
}

int main(int argc, char **argv) {
  if (aln_process_harden() != ALN_OK) {
    fprintf(stderr, "aileron-enclave: cannot disable core dumps\n");
    return 1;
  }
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
  usage();
  return 2;
}
