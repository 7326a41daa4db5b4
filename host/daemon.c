/* `aileron daemon` and `aileron host-key`: resolve the state directory, create the
 * operator token, session key and host identity on first start, connect the API
 * to the enclave client and serve until SIGINT/SIGTERM. Signals are blocked before
 * any thread exists so that only sigwait in the main thread receives them. */
#include "host/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "host/api.h"
#include "host/enclave_client.h"
#include "host/session.h"
#include "proto/keyfile.h"
#include "proto/net.h"
#include "proto/tls.h"

#define HOST_CERT_CN "aileron-host"
#define HOST_CERT_DAYS 3650
#define PEM_FILE_MAX (64 * 1024)

aln_status aln_daemon_paths_init(struct aln_daemon_paths *out, const char *state_dir, const char *socket) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  const char *home = getenv("AILERON_HOME");
  const char *user_home = getenv("HOME");
  int n;
  if (state_dir != NULL && state_dir[0] != '\0')
    n = snprintf(out->state_dir, PATH_MAX, "%s", state_dir);
  else if (home != NULL && home[0] != '\0')
    n = snprintf(out->state_dir, PATH_MAX, "%s", home);
  else if (user_home != NULL && user_home[0] != '\0')
    n = snprintf(out->state_dir, PATH_MAX, "%s/.aileron", user_home);
  else
    return ALN_ERR_USAGE;
  ALN_ENSURE(n > 0 && n < PATH_MAX, ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(out->operator_token, out->state_dir, "operator.token", NULL));
  ALN_GUARD(aln_path_join(out->session_key, out->state_dir, "session.key", NULL));
  ALN_GUARD(aln_path_join(out->host_key, out->state_dir, "host.key", NULL));
  ALN_GUARD(aln_path_join(out->host_crt, out->state_dir, "host.crt", NULL));
  ALN_GUARD(aln_path_join(out->host_spki, out->state_dir, "host.spki", NULL));
  if (socket != NULL && socket[0] != '\0') {
    n = snprintf(out->socket, PATH_MAX, "%s", socket);
    ALN_ENSURE(n > 0 && n < PATH_MAX, ALN_ERR_USAGE);
  } else {
    ALN_GUARD(aln_path_join(out->socket, out->state_dir, "aileron.sock", NULL));
  }
  return ALN_OK;
}

static int is_lower_hex(const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
      return 0;
  return 1;
}

static aln_status operator_token_create(const char *path) {
  uint8_t raw[32];
  char hex[ALN_API_OPERATOR_TOKEN_LEN + 1];
  aln_status st = RAND_bytes(raw, sizeof(raw)) == 1 ? ALN_OK : ALN_ERR_CRYPTO;
  if (st == ALN_OK)
    st = aln_hex_encode(hex, sizeof(hex), raw, sizeof(raw));
  if (st == ALN_OK)
    st = aln_keyfile_write_new(path, (const uint8_t *)hex, ALN_API_OPERATOR_TOKEN_LEN);
  aln_wipe(raw, sizeof(raw));
  aln_wipe(hex, sizeof(hex));
  return st == ALN_ERR_EXISTS ? ALN_OK : st; /* another process made it first */
}

aln_status aln_daemon_operator_token_load(struct aln_secret *out, const char *path, int create) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_secret raw = {0};
  ALN_ENSURE(out != NULL && path != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  st = aln_keyfile_read(&raw, path, ALN_API_OPERATOR_TOKEN_LEN + 1);
  if (st == ALN_ERR_NOT_FOUND && create) {
    ALN_GUARD_GOTO(st, operator_token_create(path), out);
    st = aln_keyfile_read(&raw, path, ALN_API_OPERATOR_TOKEN_LEN + 1);
  }
  if (st == ALN_ERR_TOO_LARGE)
    st = ALN_ERR_STORE;
  if (st != ALN_OK)
    goto out;
  size_t len = raw.len;
  if (len == ALN_API_OPERATOR_TOKEN_LEN + 1 && raw.p[len - 1] == '\n')
    len--;
  ALN_ENSURE_GOTO(st, len == ALN_API_OPERATOR_TOKEN_LEN && is_lower_hex(raw.p, len), ALN_ERR_STORE, out);
  ALN_GUARD_GOTO(st, aln_secret_from(out, raw.p, len), out);
out:
  aln_secret_free(&raw);
  return st;
}

/* bio_contents hands out the bytes written to a memory BIO. */
static aln_status bio_contents(const uint8_t **out, size_t *out_len, BIO *bio) {
  char *p = NULL;
  long n = BIO_get_mem_data(bio, &p);
  ALN_ENSURE(n > 0 && p != NULL, ALN_ERR_CRYPTO);
  *out = (const uint8_t *)p;
  *out_len = (size_t)n;
  return ALN_OK;
}

/* host_identity_create makes a fresh key and certificate. The certificate is
 * written first, replacing any left by an interrupted start, and the key last with
 * O_EXCL, so a present key always has its certificate beside it. */
static aln_status host_identity_create(const struct aln_daemon_paths *p) {
  aln_status st = ALN_ERR_INTERNAL;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  BIO *kb = NULL, *cb = NULL;
  const uint8_t *data;
  size_t len;
  ALN_GUARD_GOTO(st, aln_tls_identity_generate(&key, &cert, HOST_CERT_CN, HOST_CERT_DAYS), out);
  kb = BIO_new(BIO_s_secmem());
  cb = BIO_new(BIO_s_mem());
  ALN_ENSURE_GOTO(st, kb != NULL && cb != NULL, ALN_ERR_NOMEM, out);
  ALN_ENSURE_GOTO(st, PEM_write_bio_X509(cb, cert) == 1, ALN_ERR_CRYPTO, out);
  ALN_ENSURE_GOTO(st, PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) == 1, ALN_ERR_CRYPTO, out);
  ALN_GUARD_GOTO(st, bio_contents(&data, &len, cb), out);
  ALN_GUARD_GOTO(st, aln_keyfile_replace(p->host_crt, data, len), out);
  ALN_GUARD_GOTO(st, bio_contents(&data, &len, kb), out);
  ALN_GUARD_GOTO(st, aln_keyfile_write_new(p->host_key, data, len), out);
out:
  BIO_free(kb); /* secmem BIO: cleared on free */
  BIO_free(cb);
  EVP_PKEY_free(key);
  X509_free(cert);
  return st;
}

/* host_identity_load reads the key and the certificate and checks they match. */
static aln_status host_identity_load(X509 **out_cert, const struct aln_daemon_paths *p) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_secret kpem = {0}, cpem = {0};
  BIO *bio = NULL;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  ALN_GUARD_GOTO(st, aln_keyfile_read(&kpem, p->host_key, PEM_FILE_MAX), out);
  st = aln_keyfile_read(&cpem, p->host_crt, PEM_FILE_MAX);
  ALN_ENSURE_GOTO(st, st != ALN_ERR_NOT_FOUND, ALN_ERR_STORE, out); /* key without its certificate */
  if (st != ALN_OK)
    goto out;
  bio = BIO_new_mem_buf(kpem.p, (int)kpem.len);
  ALN_ENSURE_GOTO(st, bio != NULL, ALN_ERR_NOMEM, out);
  key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
  ALN_ENSURE_GOTO(st, key != NULL, ALN_ERR_STORE, out);
  BIO_free(bio);
  bio = BIO_new_mem_buf(cpem.p, (int)cpem.len);
  ALN_ENSURE_GOTO(st, bio != NULL, ALN_ERR_NOMEM, out);
  cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  ALN_ENSURE_GOTO(st, cert != NULL && X509_check_private_key(cert, key) == 1, ALN_ERR_STORE, out);
  *out_cert = cert;
  cert = NULL;
  st = ALN_OK;
out:
  BIO_free(bio);
  EVP_PKEY_free(key);
  X509_free(cert);
  aln_secret_free(&kpem);
  aln_secret_free(&cpem);
  return st;
}

aln_status aln_daemon_host_key_ensure(char spki_hex[ALN_DAEMON_SPKI_HEX_LEN + 1],
                                      const struct aln_daemon_paths *paths) {
  aln_status st = ALN_ERR_INTERNAL;
  X509 *cert = NULL;
  int lock = -1;
  char lock_path[PATH_MAX], line[ALN_DAEMON_SPKI_HEX_LEN + 2];
  uint8_t spki[ALN_SPKI_HASH_LEN];
  ALN_ENSURE(spki_hex != NULL && paths != NULL, ALN_ERR_USAGE);
  ALN_GUARD(aln_path_join(lock_path, paths->state_dir, "host.lock", NULL));
  /* Serialise first starts: two daemons must not each write half an identity. */
  lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  ALN_ENSURE_GOTO(st, lock >= 0 && flock(lock, LOCK_EX) == 0, ALN_ERR_IO, out);
  if (access(paths->host_key, F_OK) != 0) {
    ALN_ENSURE_GOTO(st, errno == ENOENT, ALN_ERR_IO, out);
    ALN_GUARD_GOTO(st, host_identity_create(paths), out);
  }
  ALN_GUARD_GOTO(st, host_identity_load(&cert, paths), out);
  ALN_GUARD_GOTO(st, aln_tls_cert_spki_hash(spki, cert), out);
  ALN_GUARD_GOTO(st, aln_hex_encode(spki_hex, ALN_DAEMON_SPKI_HEX_LEN + 1, spki, sizeof(spki)), out);
  memcpy(line, spki_hex, ALN_DAEMON_SPKI_HEX_LEN);
  line[ALN_DAEMON_SPKI_HEX_LEN] = '\n';
  ALN_GUARD_GOTO(st, aln_keyfile_replace(paths->host_spki, (const uint8_t *)line, ALN_DAEMON_SPKI_HEX_LEN + 1), out);
out:
  if (lock >= 0)
    close(lock);
  X509_free(cert);
  return st;
}

/* ---- aileron daemon ------------------------------------------------------- */

static aln_status forward_to_enclave(void *ctx, Aileron__V1__Response **out, Aileron__V1__Request *req) {
  return aln_enclave_client_call(ctx, out, req);
}

static aln_status enclave_status(void *ctx, json_t **out) {
  return aln_enclave_client_status(ctx, out);
}

static aln_status enclave_attest(void *ctx, json_t **out) {
  return aln_enclave_client_attest_fresh(ctx, out);
}

static void daemon_usage(FILE *f) {
  fprintf(f, "usage: aileron daemon --enclave HOST:PORT (--policy FILE | --dev) [--state-dir DIR]\n"
             "                      [--socket PATH] [--listen 127.0.0.1:PORT] [--reattest-minutes N]\n"
             "  --enclave HOST:PORT  the aileron-enclave to forward to (required)\n"
             "  --state-dir DIR      keys and tokens (default $AILERON_HOME or ~/.aileron)\n"
             "  --socket PATH        API socket (default STATE/aileron.sock)\n"
             "  --listen ADDR:PORT   also serve on TCP; loopback addresses only\n"
             "  --policy FILE        the appraisal policy (YAML): evidence kinds and reference values\n"
             "  --dev                use the dev policy: the local provider's debug evidence, nothing else\n"
             "  --reattest-minutes N appraise each connection again after N minutes (default 10)\n");
}

static void fail(const char *what, aln_status st) {
  fprintf(stderr, "aileron: %s: %s (%s)\n", what, aln_strerror(st), aln_status_name(st));
}

struct daemon_opts {
  const char *state_dir, *socket, *listen, *enclave, *policy;
  int dev;
  long reattest_minutes;
};

/* daemon_parse returns 0 to run, 2 on a usage error, -1 after --help. */
static int daemon_parse(struct daemon_opts *o, int argc, char **argv) {
  static const struct option longopts[] = {{"state-dir", required_argument, NULL, 's'},
                                           {"socket", required_argument, NULL, 'S'},
                                           {"listen", required_argument, NULL, 'l'},
                                           {"enclave", required_argument, NULL, 'e'},
                                           {"dev", no_argument, NULL, 'd'},
                                           {"policy", required_argument, NULL, 'p'},
                                           {"reattest-minutes", required_argument, NULL, 'r'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof(*o));
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    switch (c) {
    case 's':
      o->state_dir = optarg;
      break;
    case 'S':
      o->socket = optarg;
      break;
    case 'l':
      o->listen = optarg;
      break;
    case 'e':
      o->enclave = optarg;
      break;
    case 'd':
      o->dev = 1;
      break;
    case 'p':
      o->policy = optarg;
      break;
    case 'r': {
      char *end = NULL;
      o->reattest_minutes = strtol(optarg, &end, 10);
      if (optarg[0] < '1' || optarg[0] > '9' || *end != '\0' || o->reattest_minutes > 24 * 60) {
        fprintf(stderr, "aileron: --reattest-minutes must be a whole number from 1 to 1440\n");
        return 2;
      }
      break;
    }
    case 'h':
      daemon_usage(stdout);
      return -1;
    default:
      daemon_usage(stderr);
      return 2;
    }
  }
  if (optind != argc || o->enclave == NULL) {
    fprintf(stderr, "aileron: %s\n", optind != argc ? "unexpected argument" : "--enclave HOST:PORT is required");
    daemon_usage(stderr);
    return 2;
  }
  if ((o->policy == NULL) == (o->dev == 0)) {
    fprintf(stderr, "aileron: %s\n",
            o->dev ? "--dev and --policy exclude each other: --dev is a policy (the local debug enclave only)"
                   : "an appraisal policy is required: --policy FILE, or --dev for the local dev enclave");
    daemon_usage(stderr);
    return 2;
  }
  if (o->listen != NULL && !aln_net_is_loopback_addr(o->listen)) {
    fprintf(stderr, "aileron: --listen must be a loopback address and port (127.0.0.1:PORT or [::1]:PORT): the\n"
                    "         operator and session tokens would otherwise cross the network in clear text\n");
    return 2;
  }
  return 0;
}

int aln_daemon_main(int argc, char **argv) {
  struct daemon_opts o;
  int rc = daemon_parse(&o, argc, argv);
  if (rc != 0)
    return rc < 0 ? 0 : rc;

  struct aln_daemon_paths paths;
  struct aln_secret operator_token = {0}, session_key = {0};
  struct aln_enclave_client *client = NULL;
  struct aln_policy *policy = NULL;
  struct aln_api *api = NULL;
  char spki[ALN_DAEMON_SPKI_HEX_LEN + 1];
  aln_status st;
  rc = 1;

  if ((st = aln_daemon_paths_init(&paths, o.state_dir, o.socket)) != ALN_OK) {
    fail("cannot determine the state directory (set --state-dir or AILERON_HOME)", st);
    return 2;
  }
  /* Before any thread exists: every thread inherits the mask, so SIGINT/SIGTERM
   * reach only sigwait below. A client hanging up must not kill the daemon. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0) {
    fail("signal mask", ALN_ERR_INTERNAL);
    return 1;
  }
  if ((st = aln_private_dir_ensure(paths.state_dir)) != ALN_OK) {
    fail(paths.state_dir, st);
    goto out;
  }
  if ((st = aln_daemon_operator_token_load(&operator_token, paths.operator_token, 1)) != ALN_OK) {
    fail(paths.operator_token, st);
    goto out;
  }
  if ((st = aln_keyfile_load_or_create(&session_key, paths.session_key, ALN_SESSION_KEY_LEN)) != ALN_OK) {
    fail(paths.session_key, st);
    goto out;
  }
  if ((st = aln_daemon_host_key_ensure(spki, &paths)) != ALN_OK) {
    fail(paths.host_key, st);
    goto out;
  }
  char perr[ALN_POLICY_ERR_MAX] = "";
  st = o.dev ? aln_policy_dev(&policy) : aln_policy_load(&policy, perr, o.policy);
  if (st != ALN_OK) {
    fprintf(stderr, "aileron: policy %.200s: %s (%s)\n", o.policy != NULL ? o.policy : "(dev)",
            perr[0] != '\0' ? perr : aln_strerror(st), aln_status_name(st));
    rc = 2;
    goto out;
  }
  struct aln_enclave_client_config ccfg = {.address = o.enclave,
                                           .key_path = paths.host_key,
                                           .cert_path = paths.host_crt,
                                           .policy = policy,
                                           .reattest_s = o.reattest_minutes * 60};
  if ((st = aln_enclave_client_new(&client, &ccfg)) != ALN_OK) {
    fail("enclave client", st);
    goto out;
  }

  struct aln_api_config acfg = {.operator_token = &operator_token,
                                .session_key = &session_key,
                                .forward = forward_to_enclave,
                                .forward_ctx = client,
                                .enclave_status = enclave_status,
                                .enclave_attest = enclave_attest,
                                .enclave_ctx = client,
                                .log_requests = 1};
  if ((st = aln_api_new(&api, &acfg)) != ALN_OK) {
    fail("api", st);
    goto out;
  }
  if ((st = aln_api_listen_unix(api, paths.socket)) != ALN_OK) {
    fail(st == ALN_ERR_EXISTS ? "socket in use (is another daemon running?)" : paths.socket, st);
    goto out;
  }
  uint16_t port = 0;
  if (o.listen != NULL && (st = aln_api_listen_tcp(api, &port, o.listen)) != ALN_OK) {
    fail(o.listen, st);
    goto out;
  }
  fprintf(stderr, "aileron: listening on unix:%s\n", paths.socket);
  if (o.listen != NULL)
    fprintf(stderr, "aileron: listening on tcp:%s (port %u)\n", o.listen, (unsigned)port);
  if (o.dev)
    fprintf(stderr, "aileron: dev mode: the local provider's debug evidence is accepted, nothing else\n");
  else
    fprintf(stderr, "aileron: appraisal policy %s\n", o.policy);
  fprintf(stderr, "aileron: host key spki-sha256 %s; enclave %s\n", spki, o.enclave);

  int sig = 0;
  if (sigwait(&sigs, &sig) != 0) {
    fail("sigwait", ALN_ERR_INTERNAL);
    goto out;
  }
  fprintf(stderr, "aileron: signal %d, shutting down\n", sig);
  rc = 0;
out:
  aln_api_free(api); /* stops the listeners and unlinks the socket */
  aln_enclave_client_free(client);
  aln_policy_free(policy);
  aln_secret_free(&operator_token);
  aln_secret_free(&session_key);
  return rc;
}

/* ---- aileron host-key ----------------------------------------------------- */

int aln_daemon_host_key_main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"state-dir", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  const char *state_dir = NULL;
  optind = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    if (c == 's') {
      state_dir = optarg;
    } else {
      fprintf(c == 'h' ? stdout : stderr, "usage: aileron host-key [--state-dir DIR]\n"
                                          "  creates the host key if missing; prints the certificate path and\n"
                                          "  the SHA-256 of its SubjectPublicKeyInfo (hex), to enroll the host\n");
      return c == 'h' ? 0 : 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "aileron: unexpected argument\n");
    return 2;
  }
  struct aln_daemon_paths paths;
  char spki[ALN_DAEMON_SPKI_HEX_LEN + 1];
  aln_status st = aln_daemon_paths_init(&paths, state_dir, NULL);
  if (st != ALN_OK) {
    fail("cannot determine the state directory (set --state-dir or AILERON_HOME)", st);
    return 2;
  }
  if ((st = aln_private_dir_ensure(paths.state_dir)) != ALN_OK) {
    fail(paths.state_dir, st);
    return 1;
  }
  if ((st = aln_daemon_host_key_ensure(spki, &paths)) != ALN_OK) {
    fail(paths.host_key, st);
    return 1;
  }
  printf("%s\n%s\n", paths.host_crt, spki);
  return 0;
}
