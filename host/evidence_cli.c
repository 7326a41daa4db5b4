/* aileron evidence verify (see evidence_cli.h). */
#include "host/evidence_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attestation/policy.h"
#include "host/api.h"
#include "proto/keyfile.h"

#define NONCE_MAX 64
#define KEY_MAX 64

static void usage(FILE *f) {
  fprintf(f, "usage: aileron evidence verify --kind KIND --policy FILE [--nonce HEX] [--signing-key HEX]\n"
             "                               [--certs DIR] [--at TIME] [--json] EVIDENCE-FILE\n"
             "  --kind KIND        local, tpm, sev-snp, confidential-space or aws-nitro\n"
             "  --policy FILE      the appraisal policy (YAML) to judge it by\n"
             "  --nonce HEX        the nonce the evidence must carry (the channel binding that\n"
             "                     `aileron enclave attest --save` prints); without it, not checked\n"
             "  --signing-key HEX  the enclave's signing key (the local kind is signed by it)\n"
             "  --certs DIR        certificates supplied beside the evidence\n"
             "  --at TIME          judge validity at TIME (unix seconds or 2023-09-18T14:37:09Z)\n"
             "  --json             print the appraised claims, or the refusal, as JSON\n"
             "exit status: 0 verified, 1 refused, 2 usage or I/O error\n");
}

int aln_parse_time(long long *out, const char *s) {
  char *end = NULL;
  if (s == NULL || s[0] == '\0')
    return 0;
  if (s[0] >= '0' && s[0] <= '9' && strchr(s, '-') == NULL) {
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || errno != 0)
      return 0;
    *out = v;
    return 1;
  }
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == NULL || *end != '\0')
    return 0;
  time_t t = timegm(&tm);
  if (t == (time_t)-1)
    return 0;
  *out = (long long)t;
  return 1;
}

/* hex_arg decodes |s| (even length, at most |cap| bytes) into |out|. */
static int hex_arg(uint8_t *out, size_t cap, size_t *out_len, const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n % 2 != 0 || n / 2 > cap || aln_hex_decode(out, n / 2, s, n) != ALN_OK)
    return 0;
  *out_len = n / 2;
  return 1;
}

/* read_evidence reads at most ALN_EVIDENCE_FILE_MAX bytes of the regular file |path|. */
static aln_status read_evidence(uint8_t **out, size_t *out_len, const char *path) {
  struct stat sb;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ALN_ENSURE(fd >= 0, errno == ENOENT ? ALN_ERR_NOT_FOUND : ALN_ERR_IO);
  aln_status st = ALN_ERR_IO;
  uint8_t *buf = NULL;
  size_t len = 0;
  ALN_ENSURE_GOTO(st, fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode), ALN_ERR_IO, out);
  ALN_ENSURE_GOTO(st, sb.st_size <= ALN_EVIDENCE_FILE_MAX, ALN_ERR_TOO_LARGE, out);
  buf = malloc((size_t)sb.st_size + 1);
  ALN_ENSURE_GOTO(st, buf != NULL, ALN_ERR_NOMEM, out);
  while (len < (size_t)sb.st_size) {
    ssize_t n = read(fd, buf + len, (size_t)sb.st_size - len);
    if (n < 0 && errno == EINTR)
      continue;
    ALN_ENSURE_GOTO(st, n > 0, ALN_ERR_IO, out);
    len += (size_t)n;
  }
  *out = buf;
  *out_len = len;
  buf = NULL;
  st = ALN_OK;
out:
  free(buf);
  close(fd);
  return st;
}

static void print_claims(const struct aln_claims *c, int as_json) {
  json_t *j = aln_claims_to_json(c);
  if (as_json && j != NULL) {
    json_t *doc = json_pack("{s:b, s:O}", "verified", 1, "claims", j);
    if (doc != NULL)
      json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    fputc('\n', stdout);
  } else {
    printf("verified: kind %s, %s, measurement %s\n", c->kind, c->debug ? "DEBUG" : "not debug",
           c->measurement[0] != '\0' ? c->measurement : "(none)");
    printf("nonce: %s\n", c->nonce_checked ? "checked" : "NOT checked (no --nonce given)");
    if (c->issued_at != 0)
      printf("issued at: %lld\n", (long long)c->issued_at);
    if (c->expires_at != 0)
      printf("expires at: %lld\n", (long long)c->expires_at);
    if (c->detail != NULL) {
      char *d = json_dumps(c->detail, JSON_COMPACT | JSON_SORT_KEYS);
      if (d != NULL)
        printf("detail: %s\n", d);
      free(d);
    }
  }
  json_decref(j);
}

static void print_refusal(const struct aln_refusal *why, aln_status st, int as_json) {
  if (as_json) {
    json_t *doc = json_pack("{s:b, s:s, s:s}", "verified", 0, "status", aln_status_name(st), "reason", why->why);
    if (doc != NULL)
      json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    fputc('\n', stdout);
  }
  fprintf(stderr, "aileron: evidence refused: %s (%s)\n", why->why[0] != '\0' ? why->why : aln_strerror(st),
          aln_status_name(st));
}

static int cmd_verify(int argc, char **argv) {
  static const struct option longopts[] = {
      {"kind", required_argument, NULL, 'k'},  {"policy", required_argument, NULL, 'p'},
      {"nonce", required_argument, NULL, 'n'}, {"signing-key", required_argument, NULL, 's'},
      {"certs", required_argument, NULL, 'c'}, {"at", required_argument, NULL, 'a'},
      {"json", no_argument, NULL, 'j'},        {NULL, 0, NULL, 0}};
  const char *kind = NULL, *policy_path = NULL, *certs = NULL;
  uint8_t nonce[NONCE_MAX], key[KEY_MAX];
  size_t nonce_len = 0, key_len = 0;
  int have_nonce = 0, have_key = 0, as_json = 0, c;
  long long at = (long long)time(NULL);

  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'k':
      kind = optarg;
      break;
    case 'p':
      policy_path = optarg;
      break;
    case 'n':
      if (!(have_nonce = hex_arg(nonce, sizeof(nonce), &nonce_len, optarg))) {
        fprintf(stderr, "aileron: --nonce must be 1 to %d bytes in hex\n", NONCE_MAX);
        return 2;
      }
      break;
    case 's':
      if (!(have_key = hex_arg(key, sizeof(key), &key_len, optarg))) {
        fprintf(stderr, "aileron: --signing-key must be hex\n");
        return 2;
      }
      break;
    case 'c':
      certs = optarg;
      break;
    case 'a':
      if (!aln_parse_time(&at, optarg)) {
        fprintf(stderr, "aileron: --at must be unix seconds or a UTC time like 2023-09-18T14:37:09Z\n");
        return 2;
      }
      break;
    case 'j':
      as_json = 1;
      break;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (kind == NULL || policy_path == NULL || optind != argc - 1) {
    usage(stderr);
    return 2;
  }
  char err[ALN_POLICY_ERR_MAX];
  struct aln_policy *policy = NULL;
  aln_status st = aln_policy_load(&policy, err, policy_path);
  if (st != ALN_OK) {
    fprintf(stderr, "aileron: policy %.200s: %s (%s)\n", policy_path, err[0] != '\0' ? err : aln_strerror(st),
            aln_status_name(st));
    return 2;
  }
  uint8_t *ev = NULL;
  size_t ev_len = 0;
  if ((st = read_evidence(&ev, &ev_len, argv[optind])) != ALN_OK) {
    fprintf(stderr, "aileron: evidence file %.200s: %s\n", argv[optind], aln_strerror(st));
    aln_policy_free(policy);
    return 2;
  }
  struct aln_verify_ctx ctx = {.nonce = have_nonce ? nonce : NULL,
                               .nonce_len = nonce_len,
                               .now = (int64_t)at,
                               .certs_dir = certs,
                               .signing_key = have_key ? key : NULL,
                               .signing_key_len = key_len};
  struct aln_claims claims;
  struct aln_refusal why;
  st = aln_evidence_verify(&claims, &why, policy, kind, ev, ev_len, &ctx);
  int rc;
  if (st == ALN_OK) {
    print_claims(&claims, as_json);
    rc = 0;
  } else if (aln_status_category(st) == ALN_CAT_ATTEST) {
    print_refusal(&why, st, as_json);
    rc = 1;
  } else {
    fprintf(stderr, "aileron: cannot verify: %s (%s)\n", aln_strerror(st), aln_status_name(st));
    rc = 2;
  }
  aln_claims_cleanup(&claims);
  free(ev);
  aln_policy_free(policy);
  return rc;
}

int aln_evidence_cli_main(int argc, char **argv) {
  aln_api_json_init();
  if (argc >= 2 && strcmp(argv[1], "verify") == 0)
    return cmd_verify(argc - 1, argv + 1);
  usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
  return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
