/* The aileron CLI (see cli.h). Every command is one HTTP call to the daemon; the
 * request JSON is built with jansson (whose allocators wipe, see aln_api_json_init)
 * into a wiped buffer, and the bearer header curl copies is wiped before curl frees
 * it. What curl copies internally while sending cannot be reached from here. */
#include "host/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "host/api.h"
#include "host/daemon.h"
#include "host/evidence_cli.h"
#include "proto/base64.h"
#include "proto/cbs.h"
#include "proto/keyfile.h"
#include "proto/names.h"

#define CLI_TIMEOUT_S 300L
#define CLI_TOKEN_FILE_MAX 256

static void usage(FILE *f) {
  fprintf(f, "usage: aileron [--state-dir DIR] [--socket PATH] COMMAND ...\n"
             "\n"
             "operator commands (use STATE/operator.token):\n"
             "  credential add NAME (--bearer | --header HNAME) --allow PREFIX [--allow PREFIX ...]\n"
             "                 [--ca FILE] [--secret-file FILE] [--expires-at UNIX] [--replace] [--kind secret]\n"
             "      the secret is read from --secret-file or stdin (one trailing newline is removed);\n"
             "      it is never accepted on the command line\n"
             "  credential list                      every credential, fetched page by page\n"
             "  credential revoke NAME\n"
             "  session new [--ttl SECONDS]          prints the session token alone on line 1\n"
             "  enclave status [--json]              the appraised claims of the enclave the daemon uses\n"
             "  enclave attest --save FILE           fresh evidence of that enclave into FILE, to verify offline\n"
             "\n"
             "offline (no daemon):\n"
             "  evidence verify --kind KIND --policy FILE [--nonce HEX] [--signing-key HEX] [--certs DIR]\n"
             "                  [--at TIME] [--json] EVIDENCE-FILE   exit 0 verified, 1 refused, 2 error\n"
             "\n"
             "agent command (session token from --session-token-file or AILERON_SESSION_TOKEN):\n"
             "  request NAME --url URL [--method M] [--header 'N: V' ...] [--data STR]\n"
             "               [--session-token-file FILE]\n"
             "\n"
             "daemon:\n"
             "  daemon --enclave HOST:PORT (--policy FILE | --dev) [--state-dir DIR] [--socket PATH]\n"
             "         [--listen 127.0.0.1:PORT] [--reattest-minutes N]\n"
             "  host-key [--state-dir DIR]            prints host.crt path and its SPKI SHA-256\n"
             "\n"
             "STATE is --state-dir, else $AILERON_HOME, else ~/.aileron; the socket is STATE/aileron.sock.\n");
}

static int usage_error(const char *msg) {
  fprintf(stderr, "aileron: %s (see aileron --help)\n", msg);
  return 2;
}

static int fail(const char *what, aln_status st) {
  fprintf(stderr, "aileron: %s: %s\n", what, aln_strerror(st));
  return 1;
}

/* bad_option reports the option getopt refused, up to any '=' so that a value
 * typed into the wrong place is not echoed. */
static int bad_option(char **argv, int idx) {
  const char *arg = idx > 0 ? argv[idx - 1] : "";
  size_t n = strcspn(arg, "=");
  fprintf(stderr, "aileron: invalid or incomplete option '%.*s' (see aileron --help)\n", (int)(n > 64 ? 64 : n), arg);
  return 2;
}

aln_status aln_cli_read_secret(struct aln_secret *out, int fd, size_t max, int one_line) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_secret buf = {0};
  ALN_ENSURE(out != NULL && max > 0 && max < SIZE_MAX - 2, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  /* Room for the secret, its newline and one byte more: a full buffer means the
   * input is too long, whatever follows. */
  ALN_GUARD(aln_secret_new(&buf, max + 2));
  size_t len = 0;
  for (;;) {
    size_t want = one_line ? 1 : buf.len - len;
    ssize_t n = read(fd, buf.p + len, want);
    if (n < 0 && errno == EINTR)
      continue;
    ALN_ENSURE_GOTO(st, n >= 0, ALN_ERR_IO, out);
    if (n == 0)
      break;
    len += (size_t)n;
    ALN_ENSURE_GOTO(st, len < buf.len, ALN_ERR_TOO_LARGE, out);
    if (one_line && buf.p[len - 1] == '\n')
      break;
  }
  if (len > 0 && buf.p[len - 1] == '\n')
    len--;
  ALN_ENSURE_GOTO(st, len <= max, ALN_ERR_TOO_LARGE, out);
  ALN_ENSURE_GOTO(st, len > 0, ALN_ERR_USAGE, out);
  st = aln_secret_from(out, buf.p, len);
out:
  aln_secret_free(&buf);
  return st;
}

/* ---- HTTP ----------------------------------------------------------------- */

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata) {
  size_t n = size * nmemb;
  return aln_cbb_add_bytes(userdata, (const uint8_t *)ptr, n) == ALN_OK ? n : 0;
}

static void slist_wipe_free(struct curl_slist *l) {
  for (struct curl_slist *p = l; p != NULL; p = p->next)
    aln_wipe(p->data, strlen(p->data));
  curl_slist_free_all(l);
}

/* cli_http makes one call to the daemon. On ALN_OK *out_http is the HTTP status
 * and *out_doc the answer (NULL if it is not JSON). */
static aln_status cli_http(long *out_http, json_t **out_doc, const char *socket, const char *method, const char *path,
                           const struct aln_secret *token, const uint8_t *body, size_t body_len) {
  aln_status st = ALN_ERR_INTERNAL;
  struct aln_secret auth = {0};
  struct aln_cbb resp = {0};
  struct curl_slist *headers = NULL, *h;
  CURL *curl = NULL;
  char url[256];
  static const char auth_prefix[] = "Authorization: Bearer ";
  *out_doc = NULL;
  ALN_ENSURE(snprintf(url, sizeof(url), "http://localhost%s", path) < (int)sizeof(url), ALN_ERR_USAGE);
  ALN_GUARD_GOTO(st, aln_cbb_init(&resp, 1024, ALN_CLI_RESPONSE_MAX), out);
  curl = curl_easy_init();
  ALN_ENSURE_GOTO(st, curl != NULL, ALN_ERR_NOMEM, out);
  if (token != NULL) {
    ALN_GUARD_GOTO(st, aln_secret_new(&auth, sizeof(auth_prefix) + token->len), out);
    memcpy(auth.p, auth_prefix, sizeof(auth_prefix) - 1);
    memcpy(auth.p + sizeof(auth_prefix) - 1, token->p, token->len); /* NUL from zeroed memory */
    h = curl_slist_append(headers, (const char *)auth.p);
    ALN_ENSURE_GOTO(st, h != NULL, ALN_ERR_NOMEM, out);
    headers = h;
  }
  if (body != NULL) {
    h = curl_slist_append(headers, "Content-Type: application/json");
    ALN_ENSURE_GOTO(st, h != NULL, ALN_ERR_NOMEM, out);
    headers = h;
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  /* Expect: 100-continue buys nothing on a local socket. */
  h = curl_slist_append(headers, "Expect:");
  ALN_ENSURE_GOTO(st, h != NULL, ALN_ERR_NOMEM, out);
  headers = h;
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, CLI_TIMEOUT_S);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode cc = curl_easy_perform(curl);
  if (cc != CURLE_OK) {
    fprintf(stderr, "aileron: cannot reach the daemon at %s: %s\n", socket, curl_easy_strerror(cc));
    st = ALN_ERR_UNAVAILABLE;
    goto out;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, out_http);
  json_error_t err;
  *out_doc = json_loadb((const char *)resp.buf, resp.len, JSON_REJECT_DUPLICATES, &err);
  st = ALN_OK;
out:
  slist_wipe_free(headers);
  if (curl != NULL)
    curl_easy_cleanup(curl);
  aln_cbb_cleanup(&resp);
  aln_secret_free(&auth);
  return st;
}

/* report prints an answer: the JSON on stdout for a success, the error message on
 * stderr otherwise. Returns the exit code. */
static int report(long http, json_t *doc, int print) {
  if (http >= 200 && http < 300 && json_is_object(doc)) {
    if (print) {
      json_dumpf(doc, stdout, JSON_INDENT(2));
      fputc('\n', stdout);
    }
    return 0;
  }
  json_t *e = json_object_get(doc, "error");
  const char *msg = json_string_value(json_object_get(e, "message"));
  const char *code = json_string_value(json_object_get(e, "code"));
  if (msg != NULL && code != NULL)
    fprintf(stderr, "aileron: %.200s (%.64s)\n", msg, code);
  else
    fprintf(stderr, "aileron: unexpected answer from the daemon (HTTP %ld)\n", http);
  return 1;
}

static int dump_to_cbb(const char *buf, size_t size, void *data) {
  return aln_cbb_add_bytes(data, (const uint8_t *)buf, size) == ALN_OK ? 0 : -1;
}

/* call sends |body_doc| (may be NULL; the caller keeps its reference), prints the
 * answer when |print| and returns the exit code; *out_doc (may be NULL) receives
 * the answer of a successful call. */
static int call(const struct aln_daemon_paths *paths, const char *method, const char *path,
                const struct aln_secret *token, json_t *body_doc, int print, json_t **out_doc) {
  struct aln_cbb body = {0};
  json_t *doc = NULL;
  long http = 0;
  int rc = 1;
  if (body_doc != NULL) {
    if (aln_cbb_init(&body, 256, ALN_API_BODY_MAX) != ALN_OK ||
        json_dump_callback(body_doc, dump_to_cbb, &body, JSON_COMPACT) != 0) {
      fail("request", ALN_ERR_TOO_LARGE);
      goto out;
    }
  }
  if (cli_http(&http, &doc, paths->socket, method, path, token, body_doc != NULL ? body.buf : NULL, body.len) != ALN_OK)
    goto out;
  rc = report(http, doc, print);
  if (rc == 0 && out_doc != NULL) {
    *out_doc = doc;
    doc = NULL;
  }
out:
  json_decref(doc);
  aln_cbb_cleanup(&body);
  return rc;
}

static int load_operator_token(struct aln_secret *out, const struct aln_daemon_paths *paths) {
  aln_status st = aln_daemon_operator_token_load(out, paths->operator_token, 0);
  if (st == ALN_ERR_NOT_FOUND) {
    fprintf(stderr, "aileron: no operator token at %s (start the daemon first, or pass --state-dir)\n",
            paths->operator_token);
    return 1;
  }
  if (st != ALN_OK)
    return fail(paths->operator_token, st);
  return 0;
}

/* parse_i64 parses a whole decimal string into [min, max]. */
static int parse_i64(int64_t *out, const char *s, int64_t min, int64_t max) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return 0;
  *out = v;
  return 1;
}

/* ---- credential add ------------------------------------------------------- */

/* secret_b64 base64-encodes |secret| into new locked memory (NUL-terminated). */
static aln_status secret_b64(struct aln_secret *out, const struct aln_secret *secret) {
  size_t n;
  ALN_ENSURE(secret->len <= ALN_CLI_SECRET_MAX, ALN_ERR_TOO_LARGE);
  ALN_GUARD(aln_base64_encoded_len(&n, secret->len, ALN_BASE64_STD));
  ALN_GUARD(aln_secret_new(out, n + 1));
  return aln_base64_encode((char *)out->p, out->len, NULL, secret->p, secret->len, ALN_BASE64_STD);
}

static int cmd_credential_add(const struct aln_daemon_paths *paths, int argc, char **argv) {
  static const struct option longopts[] = {{"bearer", no_argument, NULL, 'b'},
                                           {"header", required_argument, NULL, 'H'},
                                           {"allow", required_argument, NULL, 'a'},
                                           {"ca", required_argument, NULL, 'c'},
                                           {"secret-file", required_argument, NULL, 'f'},
                                           {"expires-at", required_argument, NULL, 'e'},
                                           {"replace", no_argument, NULL, 'r'},
                                           {"secret", optional_argument, NULL, 'S'},
                                           {"kind", required_argument, NULL, 'k'},
                                           {NULL, 0, NULL, 0}};
  int bearer = 0, replace = 0, rc = 2, c;
  const char *header = NULL, *ca_path = NULL, *secret_path = NULL;
  int64_t expires_at = 0;
  json_t *allow = json_array(), *doc = NULL, *injection = NULL;
  struct aln_secret token = {0}, secret = {0}, b64 = {0};
  uint8_t *ca = NULL;
  size_t ca_len = 0;
  if (allow == NULL)
    return fail("memory", ALN_ERR_NOMEM);
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'b':
      bearer = 1;
      break;
    case 'H':
      header = optarg;
      break;
    case 'a':
      if (json_array_append_new(allow, json_string(optarg)) != 0) {
        rc = usage_error("--allow needs a UTF-8 URL prefix");
        goto out;
      }
      break;
    case 'c':
      ca_path = optarg;
      break;
    case 'f':
      secret_path = optarg;
      break;
    case 'e':
      if (!parse_i64(&expires_at, optarg, 0, INT64_MAX)) {
        rc = usage_error("--expires-at needs a unix time in seconds");
        goto out;
      }
      break;
    case 'r':
      replace = 1;
      break;
    case 'k':
      /* The only kind so far; the option is here so scripts can say it. */
      if (strcmp(optarg, "secret") != 0) {
        rc = usage_error("--kind takes secret (the only kind so far)");
        goto out;
      }
      break;
    case 'S':
      fprintf(stderr, "aileron: --secret is refused: a secret on the command line is visible to other users in "
                      "the process list and stays in shell history; use --secret-file FILE or standard input\n");
      goto out;
    default:
      rc = bad_option(argv, optind);
      goto out;
    }
  }
  if (optind + 1 != argc) {
    rc = usage_error("credential add needs exactly one NAME");
    goto out;
  }
  if (bearer == (header != NULL)) {
    rc = usage_error("choose one of --bearer or --header HNAME");
    goto out;
  }
  if (json_array_size(allow) == 0) {
    rc = usage_error("at least one --allow PREFIX is required");
    goto out;
  }
  rc = 1;
  if (ca_path != NULL) {
    aln_status st = aln_file_read_public(&ca, &ca_len, ca_path, ALN_CLI_CA_MAX);
    if (st != ALN_OK) {
      fail(ca_path, st);
      goto out;
    }
  }
  if (secret_path != NULL) {
    int fd = open(secret_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fail(secret_path, errno == ENOENT ? ALN_ERR_NOT_FOUND : ALN_ERR_IO);
      goto out;
    }
    aln_status st = aln_cli_read_secret(&secret, fd, ALN_CLI_SECRET_MAX, 0);
    close(fd);
    if (st != ALN_OK) {
      fail(st == ALN_ERR_USAGE ? "the secret file is empty" : secret_path, st);
      goto out;
    }
  } else {
    /* A terminal gets one line with echo off; a pipe is read to its end. */
    struct termios saved, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
      fprintf(stderr, "Secret for %s: ", argv[optind]);
      quiet = saved;
      quiet.c_lflag &= ~(tcflag_t)ECHO;
      (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    aln_status st = aln_cli_read_secret(&secret, STDIN_FILENO, ALN_CLI_SECRET_MAX, tty);
    if (tty) {
      (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
      fputc('\n', stderr);
    }
    if (st != ALN_OK) {
      fail(st == ALN_ERR_USAGE ? "no secret on standard input" : "standard input", st);
      goto out;
    }
  }
  if (load_operator_token(&token, paths) != 0)
    goto out;
  if (secret_b64(&b64, &secret) != ALN_OK) {
    fail("secret", ALN_ERR_CRYPTO);
    goto out;
  }
  injection =
      bearer ? json_pack("{s:s}", "kind", "bearer") : json_pack("{s:s,s:s}", "kind", "header", "header", header);
  doc = json_pack("{s:s,s:s,s:s,s:O,s:O,s:b}", "name", argv[optind], "kind", "secret", "secret_b64",
                  (const char *)b64.p, "injection", injection, "allow", allow, "replace", replace);
  if (doc == NULL) {
    rc = usage_error("NAME and --header must be UTF-8 text");
    goto out;
  }
  if (expires_at != 0 && json_object_set_new(doc, "expires_at", json_integer(expires_at)) != 0)
    goto out;
  if (ca != NULL) {
    json_t *s = json_stringn((const char *)ca, ca_len);
    if (s == NULL) {
      fprintf(stderr, "aileron: %s is not PEM text\n", ca_path);
      goto out;
    }
    if (json_object_set_new(doc, "ca_pem", s) != 0)
      goto out;
  }
  rc = call(paths, "POST", "/v1/credentials", &token, doc, 1, NULL);
out:
  json_decref(doc); /* jansson's free wipes the copied secret_b64 */
  json_decref(injection);
  json_decref(allow);
  free(ca);
  aln_secret_free(&b64);
  aln_secret_free(&secret);
  aln_secret_free(&token);
  return rc;
}

/* ---- the other commands --------------------------------------------------- */

/* cmd_credential_list fetches every page, following next_after, and prints all the
 * credentials as one {"credentials":[...]}, as one call printed them before
 * paging. Each next_after must be a name past the one before, so a daemon cannot
 * keep the CLI looping or steer its next URL. */
static int cmd_credential_list(const struct aln_daemon_paths *paths) {
  struct aln_secret token = {0};
  json_t *all = json_array(), *page = NULL, *doc = NULL;
  char after[ALN_NAME_MAX + 1] = "";
  int rc;
  if (all == NULL)
    return fail("memory", ALN_ERR_NOMEM);
  if ((rc = load_operator_token(&token, paths)) != 0)
    goto out;
  for (;;) {
    char path[sizeof("/v1/credentials?limit=&after=") + 16 + ALN_NAME_MAX];
    snprintf(path, sizeof(path), "/v1/credentials?limit=%d%s%s", ALN_API_LIST_MAX, after[0] ? "&after=" : "", after);
    if ((rc = call(paths, "GET", path, &token, NULL, 0, &page)) != 0)
      goto out;
    rc = 1;
    json_t *creds = json_object_get(page, "credentials"), *next = json_object_get(page, "next_after");
    if (!json_is_array(creds) || json_array_extend(all, creds) != 0) {
      fprintf(stderr, "aileron: unexpected answer from the daemon\n");
      goto out;
    }
    if (next == NULL || json_is_null(next))
      break;
    const char *n = json_string_value(next);
    if (n == NULL || !aln_cred_name_valid(n, strlen(n)) || strcmp(n, after) <= 0) {
      fprintf(stderr, "aileron: the daemon answered pages out of order\n");
      goto out;
    }
    memcpy(after, n, strlen(n) + 1);
    json_decref(page);
    page = NULL;
  }
  doc = json_pack("{s:O}", "credentials", all);
  if (doc == NULL || json_dumpf(doc, stdout, JSON_INDENT(2)) != 0) {
    rc = fail("output", ALN_ERR_IO);
    goto out;
  }
  fputc('\n', stdout);
  rc = 0;
out:
  json_decref(doc);
  json_decref(page);
  json_decref(all);
  aln_secret_free(&token);
  return rc;
}

static int cmd_credential(const struct aln_daemon_paths *paths, int argc, char **argv) {
  if (argc < 1)
    return usage_error("credential needs add, list or revoke");
  if (strcmp(argv[0], "add") == 0)
    return cmd_credential_add(paths, argc, argv);
  struct aln_secret token = {0};
  int rc;
  if (strcmp(argv[0], "list") == 0) {
    if (argc != 1)
      return usage_error("credential list takes no argument");
    return cmd_credential_list(paths);
  } else if (strcmp(argv[0], "revoke") == 0) {
    if (argc != 2)
      return usage_error("credential revoke needs exactly one NAME");
    if (!aln_cred_name_valid(argv[1], strlen(argv[1])))
      return usage_error("NAME must be 1-64 characters of A-Z a-z 0-9 . _ -, not starting with . or -");
    char path[sizeof("/v1/credentials/") + ALN_NAME_MAX];
    snprintf(path, sizeof(path), "/v1/credentials/%s", argv[1]);
    if ((rc = load_operator_token(&token, paths)) == 0)
      rc = call(paths, "DELETE", path, &token, NULL, 1, NULL);
  } else {
    return usage_error("credential needs add, list or revoke");
  }
  aln_secret_free(&token);
  return rc;
}

static int cmd_session(const struct aln_daemon_paths *paths, int argc, char **argv) {
  static const struct option longopts[] = {{"ttl", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
  if (argc < 1 || strcmp(argv[0], "new") != 0)
    return usage_error("session needs new");
  int64_t ttl = ALN_API_SESSION_TTL_DEFAULT;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (c != 't')
      return bad_option(argv, optind);
    if (!parse_i64(&ttl, optarg, 1, INT64_MAX))
      return usage_error("--ttl needs a positive number of seconds");
  }
  if (optind != argc)
    return usage_error("session new takes no argument");
  struct aln_secret token = {0};
  json_t *req = json_pack("{s:I}", "ttl_seconds", (json_int_t)ttl), *doc = NULL;
  int rc = req == NULL ? fail("memory", ALN_ERR_NOMEM) : load_operator_token(&token, paths);
  if (rc == 0)
    rc = call(paths, "POST", "/v1/sessions", &token, req, 0, &doc);
  if (rc == 0) {
    const char *tok = json_string_value(json_object_get(doc, "token"));
    const char *id = json_string_value(json_object_get(doc, "session_id"));
    json_t *exp = json_object_get(doc, "expires_at");
    if (tok == NULL || id == NULL || !json_is_integer(exp)) {
      fprintf(stderr, "aileron: unexpected answer from the daemon\n");
      rc = 1;
    } else {
      printf("%s\n", tok);
      fprintf(stderr, "aileron: session %s expires at %lld (unix time)\n", id, (long long)json_integer_value(exp));
    }
  }
  json_decref(doc);
  json_decref(req);
  aln_secret_free(&token);
  return rc;
}

/* write_new_file writes |len| bytes to the new file |path| (0644: evidence is not
 * secret), refusing to replace an existing one. */
static aln_status write_new_file(const char *path, const uint8_t *p, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  ALN_ENSURE(fd >= 0, errno == EEXIST ? ALN_ERR_EXISTS : ALN_ERR_IO);
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, p + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += (size_t)n;
  }
  int ok = done == len && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok)
    unlink(path);
  return ok ? ALN_OK : ALN_ERR_IO;
}

static int print_status(json_t *doc, int as_json) {
  if (as_json) {
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', stdout);
    return 0;
  }
  const char *kind = json_string_value(json_object_get(doc, "kind"));
  const char *m = json_string_value(json_object_get(doc, "measurement"));
  json_t *at = json_object_get(doc, "verified_at"), *every = json_object_get(doc, "reattest_seconds");
  if (kind == NULL || m == NULL || !json_is_integer(at) || !json_is_integer(every)) {
    fprintf(stderr, "aileron: unexpected answer from the daemon\n");
    return 1;
  }
  printf("enclave evidence: kind %s, %s\nmeasurement: %s\nverified at: %lld (re-attested every %lld s)\n", kind,
         json_is_true(json_object_get(doc, "debug")) ? "DEBUG (dev only)" : "not debug", m,
         (long long)json_integer_value(at), (long long)json_integer_value(every));
  return 0;
}

static int cmd_enclave(const struct aln_daemon_paths *paths, int argc, char **argv) {
  static const struct option longopts[] = {
      {"json", no_argument, NULL, 'j'}, {"save", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
  const char *save = NULL;
  int as_json = 0, c;
  if (argc < 1 || (strcmp(argv[0], "status") != 0 && strcmp(argv[0], "attest") != 0))
    return usage_error("enclave needs status or attest");
  int attest = strcmp(argv[0], "attest") == 0;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (c == 'j' && !attest)
      as_json = 1;
    else if (c == 's' && attest)
      save = optarg;
    else
      return bad_option(argv, optind);
  }
  if (optind != argc)
    return usage_error("unexpected argument");
  if (attest && save == NULL)
    return usage_error("enclave attest needs --save FILE");
  struct aln_secret token = {0};
  json_t *doc = NULL;
  int rc = load_operator_token(&token, paths);
  if (rc == 0)
    rc = call(paths, attest ? "POST" : "GET", attest ? "/v1/enclave/attest" : "/v1/enclave", &token, NULL, 0, &doc);
  if (rc == 0 && !attest)
    rc = print_status(doc, as_json);
  if (rc == 0 && attest) {
    const char *b64 = json_string_value(json_object_get(doc, "evidence_b64"));
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    size_t len = 0;
    uint8_t *ev = NULL;
    aln_status st = b64 != NULL && kind != NULL ? aln_base64_decoded_len(&len, b64, strlen(b64), ALN_BASE64_STD)
                                                : ALN_ERR_MALFORMED;
    if (st == ALN_OK && (ev = malloc(len + 1)) == NULL)
      st = ALN_ERR_NOMEM;
    if (st == ALN_OK)
      st = aln_base64_decode(ev, len + 1, &len, b64, strlen(b64), ALN_BASE64_STD);
    if (st == ALN_OK)
      st = write_new_file(save, ev, len);
    free(ev);
    if (st != ALN_OK) {
      rc = fail(st == ALN_ERR_EXISTS ? "the output file exists (it is never replaced)" : "saving the evidence", st);
    } else {
      /* Everything needed to verify it again offline, but the evidence itself. */
      json_object_del(doc, "evidence_b64");
      json_object_set_new(doc, "saved_to", json_string(save));
      json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
      fputc('\n', stdout);
    }
  }
  json_decref(doc);
  aln_secret_free(&token);
  return rc;
}

/* add_header adds "Name: value" to |headers|; 0 if it is not of that form. */
static int add_header(json_t *headers, const char *arg) {
  const char *colon = strchr(arg, ':');
  if (colon == NULL || colon == arg)
    return 0;
  size_t name_len = (size_t)(colon - arg);
  char name[ALN_API_HEADER_NAME_MAX + 1];
  if (name_len > ALN_API_HEADER_NAME_MAX)
    return 0;
  memcpy(name, arg, name_len);
  name[name_len] = '\0';
  const char *value = colon + 1;
  value += strspn(value, " \t");
  if (json_object_get(headers, name) != NULL)
    return 0;
  return json_object_set_new(headers, name, json_string(value)) == 0;
}

static int cmd_request(const struct aln_daemon_paths *paths, int argc, char **argv) {
  static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
                                           {"method", required_argument, NULL, 'm'},
                                           {"header", required_argument, NULL, 'H'},
                                           {"data", required_argument, NULL, 'd'},
                                           {"session-token-file", required_argument, NULL, 't'},
                                           {NULL, 0, NULL, 0}};
  const char *url = NULL, *method = "GET", *data = NULL, *token_path = NULL;
  json_t *headers = json_object(), *doc = NULL;
  struct aln_secret token = {0};
  int rc = 2, c;
  if (headers == NULL)
    return fail("memory", ALN_ERR_NOMEM);
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'u':
      url = optarg;
      break;
    case 'm':
      method = optarg;
      break;
    case 'H':
      if (!add_header(headers, optarg)) {
        rc = usage_error("--header needs 'Name: value' (each name once)");
        goto out;
      }
      break;
    case 'd':
      data = optarg;
      break;
    case 't':
      token_path = optarg;
      break;
    default:
      rc = bad_option(argv, optind);
      goto out;
    }
  }
  if (optind + 1 != argc || url == NULL) {
    rc = usage_error("request needs one NAME and --url URL");
    goto out;
  }
  if (!aln_cred_name_valid(argv[optind], strlen(argv[optind]))) {
    rc = usage_error("NAME must be 1-64 characters of A-Z a-z 0-9 . _ -, not starting with . or -");
    goto out;
  }
  rc = 1;
  if (token_path != NULL) {
    struct aln_secret raw = {0};
    aln_status st = aln_keyfile_read(&raw, token_path, CLI_TOKEN_FILE_MAX);
    if (st == ALN_OK)
      st = aln_secret_from(&token, raw.p, raw.len > 0 && raw.p[raw.len - 1] == '\n' ? raw.len - 1 : raw.len);
    aln_secret_free(&raw);
    if (st != ALN_OK) {
      fail(token_path, st);
      goto out;
    }
  } else {
    const char *env = getenv("AILERON_SESSION_TOKEN");
    if (env == NULL || env[0] == '\0') {
      rc = usage_error("a session token is needed: --session-token-file FILE or AILERON_SESSION_TOKEN");
      goto out;
    }
    if (aln_secret_from(&token, (const uint8_t *)env, strlen(env)) != ALN_OK) {
      fail("memory", ALN_ERR_NOMEM);
      goto out;
    }
  }
  doc = json_pack("{s:s,s:s,s:O}", "method", method, "url", url, "headers", headers);
  if (doc == NULL) {
    rc = usage_error("--method and --url must be UTF-8 text");
    goto out;
  }
  if (data != NULL) {
    json_t *s = json_string(data);
    if (s != NULL) {
      if (json_object_set_new(doc, "body", s) != 0)
        goto out;
    } else {
      /* Not UTF-8: send it as base64. */
      size_t n = strlen(data), enc_len;
      if (aln_base64_encoded_len(&enc_len, n, ALN_BASE64_STD) != ALN_OK)
        goto out;
      char *enc = malloc(enc_len + 1);
      if (enc == NULL)
        goto out;
      int bad = aln_base64_encode(enc, enc_len + 1, NULL, (const uint8_t *)data, n, ALN_BASE64_STD) != ALN_OK ||
                json_object_set_new(doc, "body_b64", json_string(enc)) != 0;
      free(enc);
      if (bad)
        goto out;
    }
  }
  char path[sizeof("/v1/credentials//request") + ALN_NAME_MAX];
  snprintf(path, sizeof(path), "/v1/credentials/%s/request", argv[optind]);
  rc = call(paths, "POST", path, &token, doc, 1, NULL);
out:
  json_decref(doc);
  json_decref(headers);
  aln_secret_free(&token);
  return rc;
}

int aln_cli_main(int argc, char **argv) {
  static const struct option longopts[] = {{"state-dir", required_argument, NULL, 's'},
                                           {"socket", required_argument, NULL, 'S'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  const char *state_dir = NULL, *socket = NULL;
  int c;
  aln_api_json_init();
  optind = 0;
  opterr = 0;
  /* "+": stop at the command; its own options follow it. */
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    switch (c) {
    case 's':
      state_dir = optarg;
      break;
    case 'S':
      socket = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      return bad_option(argv, optind);
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return 2;
  }
  struct aln_daemon_paths paths;
  if (aln_daemon_paths_init(&paths, state_dir, socket) != ALN_OK)
    return usage_error("cannot determine the state directory: pass --state-dir or set AILERON_HOME");
  const char *cmd = argv[optind];
  int sub_argc = argc - optind - 1;
  char **sub_argv = argv + optind + 1;
  if (strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "credential") == 0)
    return cmd_credential(&paths, sub_argc, sub_argv);
  if (strcmp(cmd, "session") == 0)
    return cmd_session(&paths, sub_argc, sub_argv);
  if (strcmp(cmd, "enclave") == 0)
    return cmd_enclave(&paths, sub_argc, sub_argv);
  if (strcmp(cmd, "evidence") == 0)
    return aln_evidence_cli_main(argc - optind, argv + optind);
  if (strcmp(cmd, "request") == 0)
    return cmd_request(&paths, argc - optind, argv + optind);
  if (strcmp(cmd, "daemon") == 0 || strcmp(cmd, "host-key") == 0)
    return usage_error("daemon and host-key take their options after the word (aileron daemon --state-dir DIR ...)");
  return usage_error("unknown command");
}
