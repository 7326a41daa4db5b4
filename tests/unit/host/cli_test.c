/* The CLI end to end: aln_cli_main runs against the real API on the state
 * directory's socket, with a forwarding double for the enclave; stdout, stderr
 * and stdin are redirected to files. Tests check what reaches the enclave (the
 * secret exactly, with one trailing newline removed), that secrets never come from
 * argv nor show up in output, and the exit codes 0 / 1 / 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host/api.h"
#include "host/cli.h"
#include "host/daemon.h"
#include "host/session.h"
#include "proto/keyfile.h"
#include "forward_double.h"

/* ---- forwarding double (records the packed request, answers canned) ------ */

static Aileron__V1__Request *last_request(void) {
  assert_non_null(dbl.req);
  Aileron__V1__Request *r = last_request_raw();
  assert_non_null(r);
  return r;
}

static char *prefixes[] = {"https://api.example.com/"};

static void canned_info(Aileron__V1__Response__BodyCase which) {
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  Aileron__V1__PutCredentialResponse put = AILERON__V1__PUT_CREDENTIAL_RESPONSE__INIT;
  Aileron__V1__RevokeCredentialResponse rv = AILERON__V1__REVOKE_CREDENTIAL_RESPONSE__INIT;
  Aileron__V1__ListCredentialsResponse list = AILERON__V1__LIST_CREDENTIALS_RESPONSE__INIT;
  Aileron__V1__CredentialInfo ci = AILERON__V1__CREDENTIAL_INFO__INIT, *items[] = {&ci};
  Aileron__V1__Binding b = AILERON__V1__BINDING__INIT;
  b.injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER;
  b.n_allowed_prefixes = 1;
  b.allowed_prefixes = prefixes;
  ci.name = "example";
  ci.version = 1;
  ci.binding = &b;
  resp.body_case = which;
  put.credential = &ci;
  rv.credential = &ci;
  list.n_credentials = 1;
  list.credentials = items;
  resp.put_credential = &put; /* the union member matching |which| is read */
  if (which == AILERON__V1__RESPONSE__BODY_REVOKE_CREDENTIAL)
    resp.revoke_credential = &rv;
  if (which == AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS)
    resp.list_credentials = &list;
  set_response(ALN_OK, &resp);
}

static void canned_use(void) {
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  Aileron__V1__UseCredentialResponse use = AILERON__V1__USE_CREDENTIAL_RESPONSE__INIT;
  use.http_status = 200;
  use.body.data = (uint8_t *)"{\"login\":\"octocat\"}";
  use.body.len = strlen("{\"login\":\"octocat\"}");
  resp.body_case = AILERON__V1__RESPONSE__BODY_USE_CREDENTIAL;
  resp.use_credential = &use;
  set_response(ALN_OK, &resp);
}

/* A paging enclave for list calls while |pager.on|: |pager.num| credentials named
 * cred-00, cred-01, ..., answered |pager.per_page| at a time whatever page_size
 * asks (fewer than asked is a valid page), so the CLI must follow
 * next_page_after. With |pager.stuck| every page says the next one starts after
 * cred-02. Every other call goes to the recording double. */
#define PAGER_CALLS_MAX 16
static struct {
  int on, stuck;
  size_t num, per_page;
  int calls;
  char afters[PAGER_CALLS_MAX][ALN_NAME_MAX + 1];
  uint32_t sizes[PAGER_CALLS_MAX];
} pager;

static aln_status cli_forward(void *ctx, Aileron__V1__Response **out, Aileron__V1__Request *req) {
  if (!pager.on || req->body_case != AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS)
    return double_forward(ctx, out, req);
  const char *after = req->list_credentials->page_after;
  if (pager.calls < PAGER_CALLS_MAX) {
    snprintf(pager.afters[pager.calls], sizeof(pager.afters[0]), "%s", after);
    pager.sizes[pager.calls] = req->list_credentials->page_size;
  }
  pager.calls++;
  static char names[100][16];
  assert_true(pager.num <= 100);
  Aileron__V1__CredentialInfo infos[100], *items[100];
  Aileron__V1__Binding b = AILERON__V1__BINDING__INIT;
  b.injection = AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER;
  b.n_allowed_prefixes = 1;
  b.allowed_prefixes = prefixes;
  size_t n = 0, i = 0;
  for (; i < pager.num && n < pager.per_page; i++) {
    snprintf(names[i], sizeof(names[i]), "cred-%02d", (int)i);
    if (strcmp(names[i], after) <= 0)
      continue;
    aileron__v1__credential_info__init(&infos[n]);
    infos[n].name = names[i];
    infos[n].version = 1;
    infos[n].binding = &b;
    infos[n].kind = AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET;
    items[n] = &infos[n];
    n++;
  }
  Aileron__V1__ListCredentialsResponse list = AILERON__V1__LIST_CREDENTIALS_RESPONSE__INIT;
  list.n_credentials = n;
  list.credentials = items;
  if (pager.stuck)
    list.next_page_after = "cred-02";
  else if (i < pager.num)
    list.next_page_after = items[n - 1]->name;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.body_case = AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS;
  resp.list_credentials = &list;
  size_t len = aileron__v1__response__get_packed_size(&resp);
  uint8_t *buf = malloc(len + 1);
  assert_non_null(buf);
  aileron__v1__response__pack(&resp, buf);
  *out = aileron__v1__response__unpack(NULL, len, buf);
  free(buf);
  return *out != NULL ? ALN_OK : ALN_ERR_NOMEM;
}

/* ---- fixture: a state directory with a running API ------------------------ */

static char state[64], empty_state[80];
static struct aln_daemon_paths paths;
static struct aln_secret op_token, session_key;
static struct aln_api *api;

static int group_setup(void **st) {
  (void)st;
  aln_api_json_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  snprintf(state, sizeof(state), "/tmp/aln-cli-test-XXXXXX");
  if (mkdtemp(state) == NULL)
    return -1;
  snprintf(empty_state, sizeof(empty_state), "%s/empty", state);
  if (mkdir(empty_state, 0700) != 0)
    return -1;
  if (aln_daemon_paths_init(&paths, state, NULL) != ALN_OK)
    return -1;
  if (aln_daemon_operator_token_load(&op_token, paths.operator_token, 1) != ALN_OK)
    return -1;
  if (aln_keyfile_load_or_create(&session_key, paths.session_key, ALN_SESSION_KEY_LEN) != ALN_OK)
    return -1;
  struct aln_api_config cfg = {
      .operator_token = &op_token, .session_key = &session_key, .forward = cli_forward, .forward_ctx = NULL};
  if (aln_api_new(&api, &cfg) != ALN_OK || aln_api_listen_unix(api, paths.socket) != ALN_OK)
    return -1;
  return 0;
}

static int group_teardown(void **st) {
  (void)st;
  aln_api_free(api);
  aln_secret_free(&op_token);
  aln_secret_free(&session_key);
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
  if (system(cmd) != 0)
    return -1;
  free(dbl.req);
  free(dbl.resp);
  curl_global_cleanup();
  return 0;
}

static int reset(void **st) {
  (void)st;
  dbl.calls = 0;
  free(dbl.req);
  dbl.req = NULL;
  set_response(ALN_OK, NULL);
  memset(&pager, 0, sizeof(pager));
  return 0;
}

/* ---- running the CLI with redirected stdio -------------------------------- */

struct run {
  int rc;
  char out[16384];
  char err[16384];
};

static void slurp(char *buf, size_t cap, const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
  unlink(path);
}

/* run_cli runs aln_cli_main on the NULL-terminated |args| (after the program
 * name) with |input| (may be NULL: empty) on stdin. */
static void run_cli(struct run *r, const char *input, const char *const *args) {
  char *argv[64];
  int argc = 0;
  argv[argc++] = strdup("aileron");
  for (; args[argc - 1] != NULL; argc++)
    argv[argc] = strdup(args[argc - 1]);
  argv[argc] = NULL;
  char in_path[128], out_path[128], err_path[128];
  snprintf(in_path, sizeof(in_path), "%s/stdin", state);
  snprintf(out_path, sizeof(out_path), "%s/stdout", state);
  snprintf(err_path, sizeof(err_path), "%s/stderr", state);
  FILE *f = fopen(in_path, "w");
  assert_non_null(f);
  if (input != NULL)
    fputs(input, f);
  fclose(f);
  fflush(stdout);
  fflush(stderr);
  int saved[3] = {dup(0), dup(1), dup(2)};
  int in = open(in_path, O_RDONLY), out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
      err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(in >= 0 && out >= 0 && err >= 0);
  dup2(in, 0);
  dup2(out, 1);
  dup2(err, 2);
  r->rc = aln_cli_main(argc, argv);
  fflush(stdout);
  fflush(stderr);
  for (int i = 0; i < 3; i++) {
    dup2(saved[i], i);
    close(saved[i]);
  }
  close(in);
  close(out);
  close(err);
  unlink(in_path);
  slurp(r->out, sizeof(r->out), out_path);
  slurp(r->err, sizeof(r->err), err_path);
  for (int i = 0; i < argc; i++)
    free(argv[i]);
}

static void write_file(const char *path, const char *data, mode_t mode) {
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

static const char *in_state(const char *name) {
  static char buf[4][160];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof(buf[i]), "%s/%s", state, name);
  return buf[i];
}

/* ---- credential add ------------------------------------------------------- */

static void test_add_from_secret_file(void **st) {
  (void)st;
  canned_info(AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL);
  const char *secret_path = in_state("secret"), *ca_path = in_state("ca.pem");
  /* Two newlines: exactly one is removed, so the secret keeps the other. */
  write_file(secret_path, "sk-live-Q9zT\n\n", 0600);
  write_file(ca_path, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0644);
  struct run r;
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir",
                                state,
                                "credential",
                                "add",
                                "example",
                                "--header",
                                "X-Api-Key",
                                "--allow",
                                "https://api.example.com/",
                                "--allow",
                                "https://up.example.com/v2",
                                "--ca",
                                ca_path,
                                "--secret-file",
                                secret_path,
                                "--expires-at",
                                "1900000000",
                                "--replace",
                                "--kind",
                                "secret",
                                NULL});
  assert_int_equal(r.rc, 0);
  assert_int_equal(dbl.calls, 1);
  Aileron__V1__Request *req = last_request();
  Aileron__V1__PutCredentialRequest *p = req->put_credential;
  assert_non_null(p);
  assert_string_equal(p->name, "example");
  assert_int_equal(p->secret.len, strlen("sk-live-Q9zT\n"));
  assert_memory_equal(p->secret.data, "sk-live-Q9zT\n", p->secret.len);
  assert_int_equal(p->binding->injection, AILERON__V1__INJECTION_KIND__INJECTION_KIND_HEADER);
  assert_string_equal(p->binding->header_name, "X-Api-Key");
  assert_int_equal(p->binding->n_allowed_prefixes, 2);
  assert_string_equal(p->binding->allowed_prefixes[1], "https://up.example.com/v2");
  assert_memory_equal(p->binding->ca_pem.data, "-----BEGIN CERTIFICATE-----\nMIIB", 32);
  assert_int_equal(p->expires_at, 1900000000);
  assert_true(p->replace);
  assert_int_equal(p->kind, AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET);
  aileron__v1__request__free_unpacked(req, NULL);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "name")), "example");
  json_decref(j);
  assert_null(strstr(r.out, "sk-live"));
  assert_null(strstr(r.err, "sk-live"));
}

static void test_add_from_stdin(void **st) {
  (void)st;
  canned_info(AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL);
  struct run r;
  run_cli(&r, "tok-from-stdin\n",
          (const char *const[]){"--state-dir", state, "credential", "add", "example", "--bearer", "--allow",
                                "https://api.example.com/", NULL});
  assert_int_equal(r.rc, 0);
  Aileron__V1__Request *req = last_request();
  Aileron__V1__PutCredentialRequest *p = req->put_credential;
  assert_int_equal(p->secret.len, strlen("tok-from-stdin"));
  assert_memory_equal(p->secret.data, "tok-from-stdin", p->secret.len);
  assert_int_equal(p->binding->injection, AILERON__V1__INJECTION_KIND__INJECTION_KIND_BEARER);
  assert_false(p->replace);
  assert_int_equal(p->expires_at, 0);
  assert_int_equal(p->binding->ca_pem.len, 0);
  assert_int_equal(p->kind, AILERON__V1__CREDENTIAL_KIND__CREDENTIAL_KIND_SECRET); /* the default */
  aileron__v1__request__free_unpacked(req, NULL);
  assert_null(strstr(r.out, "tok-from-stdin"));
}

static void test_add_refuses_secret_on_argv(void **st) {
  (void)st;
  canned_info(AILERON__V1__RESPONSE__BODY_PUT_CREDENTIAL);
  static const char *const forms[][2] = {{"--secret", "hunter2-XYZ"}, {"--secret=hunter2-XYZ", NULL}};
  for (size_t i = 0; i < 2; i++) {
    struct run r;
    run_cli(&r, "from-stdin\n",
            (const char *const[]){"--state-dir", state, "credential", "add", "example", "--bearer", "--allow",
                                  "https://api.example.com/", forms[i][0], forms[i][1], NULL});
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "--secret-file"));
    assert_non_null(strstr(r.err, "process list"));
    assert_null(strstr(r.err, "hunter2"));
  }
  /* An abbreviation is ambiguous, refused, and its value not echoed. */
  struct run r;
  run_cli(&r, "from-stdin\n",
          (const char *const[]){"--state-dir", state, "credential", "add", "example", "--bearer", "--allow",
                                "https://api.example.com/", "--secre=hunter2-XYZ", NULL});
  assert_int_equal(r.rc, 2);
  assert_null(strstr(r.err, "hunter2"));
  assert_int_equal(dbl.calls, 0);
}

static void test_add_usage_errors(void **st) {
  (void)st;
  const char *const cases[][10] = {
      {"credential", "add", "example", "--bearer", NULL},                      /* no --allow */
      {"credential", "add", "example", "--allow", "https://a.example/", NULL}, /* no kind */
      {"credential", "add", "example", "--bearer", "--header", "X", "--allow", "https://a.example/", NULL}, /* both */
      {"credential", "add", "--bearer", "--allow", "https://a.example/", NULL},           /* no NAME */
      {"credential", "add", "a", "b", "--bearer", "--allow", "https://a.example/", NULL}, /* 2 NAMEs */
      {"credential", "add", "a", "--bearer", "--allow", "https://a.example/", "--expires-at", "soon", NULL},
      {"credential", "add", "a", "--bearer", "--allow", "https://a.example/", "--bogus", NULL},
      {"credential", "add", "a", "--bearer", "--allow", "https://a.example/", "--kind", "oauth", NULL},
      {"credential", "add", "a", "--bearer", "--allow", "https://a.example/", "--kind", NULL},
      {"credential", "frobnicate", NULL},
      {"credential", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *args[14] = {"--state-dir", state};
    for (size_t k = 0; cases[i][k] != NULL; k++)
      args[2 + k] = cases[i][k];
    struct run r;
    run_cli(&r, "x\n", args);
    assert_int_equal(r.rc, 2);
    assert_true(strlen(r.err) > 0);
  }
  assert_int_equal(dbl.calls, 0);
}

static void test_add_empty_secret(void **st) {
  (void)st;
  struct run r;
  run_cli(&r, "\n",
          (const char *const[]){"--state-dir", state, "credential", "add", "example", "--bearer", "--allow",
                                "https://api.example.com/", NULL});
  assert_int_equal(r.rc, 1);
  assert_non_null(strstr(r.err, "no secret"));
  assert_int_equal(dbl.calls, 0);
}

/* ---- other commands ------------------------------------------------------- */

static void test_list_and_revoke(void **st) {
  (void)st;
  canned_info(AILERON__V1__RESPONSE__BODY_LIST_CREDENTIALS);
  struct run r;
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "credential", "list", NULL});
  assert_int_equal(r.rc, 0);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_int_equal(json_array_size(json_object_get(j, "credentials")), 1);
  json_decref(j);
  Aileron__V1__Request *req = last_request();
  assert_int_equal(req->body_case, AILERON__V1__REQUEST__BODY_LIST_CREDENTIALS);
  aileron__v1__request__free_unpacked(req, NULL);

  canned_info(AILERON__V1__RESPONSE__BODY_REVOKE_CREDENTIAL);
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "credential", "revoke", "example", NULL});
  assert_int_equal(r.rc, 0);
  req = last_request();
  assert_string_equal(req->revoke_credential->name, "example");
  aileron__v1__request__free_unpacked(req, NULL);

  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "credential", "revoke", "../etc", NULL});
  assert_int_equal(r.rc, 2);
  assert_int_equal(dbl.calls, 2);
}

static void test_list_follows_every_page(void **st) {
  (void)st;
  pager.on = 1;
  pager.num = 7;
  pager.per_page = 3;
  struct run r;
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "credential", "list", NULL});
  assert_int_equal(r.rc, 0);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_non_null(j);
  json_t *creds = json_object_get(j, "credentials");
  assert_int_equal(json_array_size(creds), 7);
  for (size_t i = 0; i < 7; i++) {
    char want[16];
    snprintf(want, sizeof(want), "cred-%02d", (int)i);
    json_t *c = json_array_get(creds, i);
    assert_string_equal(json_string_value(json_object_get(c, "name")), want);
    assert_string_equal(json_string_value(json_object_get(c, "kind")), "secret");
  }
  /* One object as before paging: no paging field leaks into the output. */
  assert_int_equal(json_object_size(j), 1);
  json_decref(j);
  assert_int_equal(pager.calls, 3);
  assert_string_equal(pager.afters[0], "");
  assert_string_equal(pager.afters[1], "cred-02");
  assert_string_equal(pager.afters[2], "cred-05");
  for (int i = 0; i < 3; i++)
    assert_int_equal(pager.sizes[i], ALN_API_LIST_MAX); /* the fewest round trips */
  assert_int_equal(dbl.calls, 0);
}

static void test_list_refuses_pages_out_of_order(void **st) {
  (void)st;
  /* A daemon whose pages do not advance must not keep the CLI looping. */
  pager.on = 1;
  pager.stuck = 1;
  pager.num = 7;
  pager.per_page = 3;
  struct run r;
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "credential", "list", NULL});
  assert_int_equal(r.rc, 1);
  assert_non_null(strstr(r.err, "out of order"));
  assert_string_equal(r.out, ""); /* nothing half-listed */
  assert_int_equal(pager.calls, 2);
}

static void test_session_new_prints_token_alone(void **st) {
  (void)st;
  struct run r;
  int64_t before = (int64_t)time(NULL);
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "session", "new", "--ttl", "90", NULL});
  assert_int_equal(r.rc, 0);
  char *nl = strchr(r.out, '\n');
  assert_non_null(nl);
  assert_string_equal(nl + 1, ""); /* nothing but the token on stdout */
  struct aln_session s;
  assert_int_equal(aln_session_verify(&s, &session_key, r.out, (size_t)(nl - r.out), (int64_t)time(NULL)), ALN_OK);
  assert_true(s.expires_at >= before + 90 && s.expires_at <= (int64_t)time(NULL) + 90);
  assert_non_null(strstr(r.err, s.id));
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "session", "new", "--ttl", "0", NULL});
  assert_int_equal(r.rc, 2);
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "session", "new", "--ttl", "99999999", NULL});
  assert_int_equal(r.rc, 1); /* the daemon refuses past the maximum */
  assert_non_null(strstr(r.err, "ALN_ERR_USAGE"));
  assert_string_equal(r.out, "");
}

static void test_request_forwards_with_session(void **st) {
  (void)st;
  canned_use();
  char tok[ALN_SESSION_TOKEN_MAX], line[ALN_SESSION_TOKEN_MAX + 1];
  struct aln_session s;
  assert_int_equal(aln_session_issue(tok, sizeof(tok), &s, &session_key, (int64_t)time(NULL), 300), ALN_OK);
  snprintf(line, sizeof(line), "%s\n", tok);
  const char *tok_path = in_state("session.token");
  write_file(tok_path, line, 0600);
  struct run r;
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", state, "request", "example", "--url", "https://api.example.com/user",
                                "--method", "POST", "--header", "X-Trace:  t-1", "--data", "{\"a\":1}",
                                "--session-token-file", tok_path, NULL});
  assert_int_equal(r.rc, 0);
  Aileron__V1__Request *req = last_request();
  Aileron__V1__UseCredentialRequest *u = req->use_credential;
  assert_non_null(u);
  char actor[64];
  snprintf(actor, sizeof(actor), "session:%s", s.id);
  assert_string_equal(u->actor, actor);
  assert_string_equal(u->name, "example");
  assert_string_equal(u->method, "POST");
  assert_string_equal(u->url, "https://api.example.com/user");
  assert_int_equal(u->n_headers, 1);
  assert_string_equal(u->headers[0]->name, "X-Trace");
  assert_string_equal(u->headers[0]->value, "t-1");
  assert_memory_equal(u->body.data, "{\"a\":1}", u->body.len);
  aileron__v1__request__free_unpacked(req, NULL);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
  assert_string_equal(json_string_value(json_object_get(j, "body")), "{\"login\":\"octocat\"}");
  json_decref(j);

  /* The same from the environment. */
  setenv("AILERON_SESSION_TOKEN", tok, 1);
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", state, "request", "example", "--url", "https://api.example.com/", NULL});
  unsetenv("AILERON_SESSION_TOKEN");
  assert_int_equal(r.rc, 0);
  req = last_request();
  assert_string_equal(req->use_credential->method, "GET");
  assert_string_equal(req->use_credential->actor, actor);
  aileron__v1__request__free_unpacked(req, NULL);
}

static void test_request_usage(void **st) {
  (void)st;
  unsetenv("AILERON_SESSION_TOKEN");
  struct run r;
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", state, "request", "example", "--url", "https://api.example.com/", NULL});
  assert_int_equal(r.rc, 2);
  assert_non_null(strstr(r.err, "session token"));
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "request", "example", NULL});
  assert_int_equal(r.rc, 2);
  setenv("AILERON_SESSION_TOKEN", "x", 1);
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", state, "request", "example", "--url", "https://a.example/", "--header",
                                "NoColon", NULL});
  assert_int_equal(r.rc, 2);
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", state, "request", "example", "--url", "https://a.example/", "--header",
                                "X: 1", "--header", "X: 2", NULL});
  assert_int_equal(r.rc, 2);
  unsetenv("AILERON_SESSION_TOKEN");
  assert_int_equal(dbl.calls, 0);
}

static void test_session_token_file_must_be_private(void **st) {
  (void)st;
  char tok[ALN_SESSION_TOKEN_MAX];
  assert_int_equal(aln_session_issue(tok, sizeof(tok), NULL, &session_key, (int64_t)time(NULL), 300), ALN_OK);
  const char *tok_path = in_state("open.token");
  write_file(tok_path, tok, 0644);
  struct run r;
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", state, "request", "example", "--url", "https://a.example/",
                                "--session-token-file", tok_path, NULL});
  assert_int_equal(r.rc, 1);
  assert_non_null(strstr(r.err, aln_strerror(ALN_ERR_PERMS)));
  assert_int_equal(dbl.calls, 0);
}

static void test_error_answer_exit_1(void **st) {
  (void)st;
  Aileron__V1__Response resp = AILERON__V1__RESPONSE__INIT;
  resp.status = ALN_ERR_DEST_NOT_ALLOWED;
  set_response(ALN_ERR_DEST_NOT_ALLOWED, &resp);
  char tok[ALN_SESSION_TOKEN_MAX];
  assert_int_equal(aln_session_issue(tok, sizeof(tok), NULL, &session_key, (int64_t)time(NULL), 300), ALN_OK);
  setenv("AILERON_SESSION_TOKEN", tok, 1);
  struct run r;
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", state, "request", "example", "--url", "https://evil.example/", NULL});
  unsetenv("AILERON_SESSION_TOKEN");
  assert_int_equal(r.rc, 1);
  assert_string_equal(r.out, "");
  assert_non_null(strstr(r.err, aln_strerror(ALN_ERR_DEST_NOT_ALLOWED)));
  assert_non_null(strstr(r.err, "ALN_ERR_DEST_NOT_ALLOWED"));
  assert_int_equal(dbl.calls, 1);
}

static void test_operator_token_problems(void **st) {
  (void)st;
  struct run r;
  /* No token in this state directory: the daemon was never started there. */
  const char *sock_opt = paths.socket;
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", empty_state, "--socket", sock_opt, "credential", "list", NULL});
  assert_int_equal(r.rc, 1);
  assert_non_null(strstr(r.err, "operator token"));
  /* A token file others can read is refused, not used. */
  char tok_path[160];
  snprintf(tok_path, sizeof(tok_path), "%s/operator.token", empty_state);
  write_file(tok_path, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0644);
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", empty_state, "--socket", sock_opt, "credential", "list", NULL});
  assert_int_equal(r.rc, 1);
  assert_non_null(strstr(r.err, aln_strerror(ALN_ERR_PERMS)));
  /* A private but wrong token reaches the daemon and is refused there. */
  assert_int_equal(chmod(tok_path, 0600), 0);
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", empty_state, "--socket", sock_opt, "credential", "list", NULL});
  assert_int_equal(r.rc, 1);
  assert_non_null(strstr(r.err, "ALN_ERR_AUTH_INVALID"));
  /* A malformed token file is refused locally. */
  write_file(tok_path, "not-a-token", 0600);
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", empty_state, "--socket", sock_opt, "credential", "list", NULL});
  assert_int_equal(r.rc, 1);
  assert_non_null(strstr(r.err, aln_strerror(ALN_ERR_STORE)));
  unlink(tok_path);
  assert_int_equal(dbl.calls, 0);
}

static void test_daemon_unreachable(void **st) {
  (void)st;
  struct run r;
  run_cli(&r, NULL,
          (const char *const[]){"--state-dir", state, "--socket", in_state("nobody.sock"), "credential", "list", NULL});
  assert_int_equal(r.rc, 1);
  assert_non_null(strstr(r.err, "cannot reach the daemon"));
}

static void test_help_and_unknown(void **st) {
  (void)st;
  struct run r;
  run_cli(&r, NULL, (const char *const[]){"--help", NULL});
  assert_int_equal(r.rc, 0);
  assert_non_null(strstr(r.out, "usage: aileron"));
  assert_non_null(strstr(r.out, "credential add"));
  run_cli(&r, NULL, (const char *const[]){"--state-dir", state, "frobnicate", NULL});
  assert_int_equal(r.rc, 2);
  run_cli(&r, NULL, (const char *const[]){NULL});
  assert_int_equal(r.rc, 2);
  run_cli(&r, NULL, (const char *const[]){"--nope", NULL});
  assert_int_equal(r.rc, 2);
}

/* ---- aln_cli_read_secret -------------------------------------------------- */

static aln_status read_from(struct aln_secret *out, const char *data, size_t len, size_t max, int one_line) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(write(p[1], data, len), (ssize_t)len);
  close(p[1]);
  aln_status st = aln_cli_read_secret(out, p[0], max, one_line);
  close(p[0]);
  return st;
}

static void test_read_secret(void **st) {
  (void)st;
  struct aln_secret s;
  assert_int_equal(read_from(&s, "abc\n", 4, 64, 0), ALN_OK);
  assert_int_equal(s.len, 3);
  assert_memory_equal(s.p, "abc", 3);
  aln_secret_free(&s);
  assert_int_equal(read_from(&s, "abc\n\n", 5, 64, 0), ALN_OK);
  assert_int_equal(s.len, 4);
  assert_memory_equal(s.p, "abc\n", 4);
  aln_secret_free(&s);
  assert_int_equal(read_from(&s, "a\r\n", 3, 64, 0), ALN_OK); /* only "\n" is removed */
  assert_int_equal(s.len, 2);
  aln_secret_free(&s);
  assert_int_equal(read_from(&s, "a\0b", 3, 64, 0), ALN_OK); /* binary-safe */
  assert_int_equal(s.len, 3);
  assert_memory_equal(s.p, "a\0b", 3);
  aln_secret_free(&s);
  assert_int_equal(read_from(&s, "", 0, 64, 0), ALN_ERR_USAGE);
  assert_null(s.p);
  assert_int_equal(read_from(&s, "\n", 1, 64, 0), ALN_ERR_USAGE);
  assert_int_equal(read_from(&s, "12345678", 8, 8, 0), ALN_OK);
  assert_int_equal(s.len, 8);
  aln_secret_free(&s);
  assert_int_equal(read_from(&s, "123456789", 9, 8, 0), ALN_ERR_TOO_LARGE);
  assert_null(s.p);
  assert_int_equal(read_from(&s, "12345678\n", 9, 8, 0), ALN_OK); /* the newline is not part of the secret */
  assert_int_equal(s.len, 8);
  aln_secret_free(&s);
  assert_int_equal(read_from(&s, "123456789\n", 10, 8, 0), ALN_ERR_TOO_LARGE);
  assert_int_equal(read_from(&s, "12345678\n\n", 10, 8, 0), ALN_ERR_TOO_LARGE);
  assert_int_equal(read_from(&s, "first\nsecond\n", 13, 64, 1), ALN_OK);
  assert_int_equal(s.len, 5);
  assert_memory_equal(s.p, "first", 5);
  aln_secret_free(&s);
}

#define T(f) cmocka_unit_test_setup(f, reset)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_add_from_secret_file),
      T(test_add_from_stdin),
      T(test_add_refuses_secret_on_argv),
      T(test_add_usage_errors),
      T(test_add_empty_secret),
      T(test_list_and_revoke),
      T(test_list_follows_every_page),
      T(test_list_refuses_pages_out_of_order),
      T(test_session_new_prints_token_alone),
      T(test_request_forwards_with_session),
      T(test_request_usage),
      T(test_session_token_file_must_be_private),
      T(test_error_answer_exit_1),
      T(test_operator_token_problems),
      T(test_daemon_unreachable),
      T(test_help_and_unknown),
      T(test_read_secret),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
