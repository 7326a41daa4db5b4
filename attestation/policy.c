/* The appraisal policy file (see policy.h). libyaml does the YAML; this file keeps
 * what it accepts small: a first pass over the event stream refuses anchors,
 * aliases, explicit tags and more than one document (YAML features a policy never
 * needs and which make one file mean two things), then the document is walked with
 * every key known, every value typed, and no key twice. */
#include "attestation/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "attestation/cs.h"
#include "attestation/jwt.h"
#include "attestation/local.h"
#include "attestation/nitro.h"
#include "attestation/snp.h"
#include "attestation/tpm_quote.h"
#include "proto/keyfile.h"

#define POLICY_LIST_MAX 64        /* entries of any one list */
#define POLICY_STR_MAX 1024       /* bytes of any one string */
#define POLICY_REF_FILE_MAX 65536 /* a PEM or JWKS file named by the policy */

struct aln_policy {
  int has_local;
  struct aln_policy_local local;
  int has_cs;
  struct aln_cs_policy cs;
  struct aln_jwt_keys *cs_keys; /* prepared once from cs.root_pem / cs.jwks_json */
  int has_snp;
  struct aln_snp_policy snp;
  int has_tpm;
  struct aln_tpm_policy tpm;
  const char *tpm_ek_roots; /* PEM anchors for EK certificates (AK enrollment by activation), or NULL */
  int has_nitro;
  struct aln_nitro_policy nitro;
  /* Everything the kinds' structs point to, freed with the policy. */
  void **owned;
  size_t num_owned, cap_owned;
};

/* ---- reading YAML strictly -------------------------------------------------------- */

struct walk {
  yaml_document_t *doc;
  char *err;
};

static aln_status say(struct walk *w, const yaml_node_t *at, aln_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static aln_status say(struct walk *w, const yaml_node_t *at, aln_status st, const char *fmt, ...) {
  char msg[ALN_POLICY_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
    msg[0] = '\0';
  va_end(ap);
  if (at != NULL)
    snprintf(w->err, ALN_POLICY_ERR_MAX, "line %zu: %.200s", (size_t)at->start_mark.line + 1, msg);
  else
    snprintf(w->err, ALN_POLICY_ERR_MAX, "%.200s", msg);
  return st;
}

/* screen runs the event stream once, refusing what the walk below would not see:
 * aliases and anchors (one node reachable twice), explicit tags, several documents. */
static aln_status screen(char err[ALN_POLICY_ERR_MAX], const uint8_t *yaml, size_t len) {
  yaml_parser_t parser;
  yaml_event_t ev;
  aln_status st = ALN_ERR_MALFORMED;
  int docs = 0, done = 0;

  if (!yaml_parser_initialize(&parser))
    return ALN_ERR_NOMEM;
  yaml_parser_set_input_string(&parser, yaml, len);
  while (!done) {
    if (!yaml_parser_parse(&parser, &ev)) {
      snprintf(err, ALN_POLICY_ERR_MAX, "line %zu: YAML: %.120s", (size_t)parser.problem_mark.line + 1,
               parser.problem != NULL ? parser.problem : "parse error");
      goto out;
    }
    const char *refused = NULL;
    switch (ev.type) {
    case YAML_ALIAS_EVENT:
      refused = "aliases are not allowed";
      break;
    case YAML_SCALAR_EVENT:
      if (ev.data.scalar.anchor != NULL || ev.data.scalar.tag != NULL)
        refused = "anchors and tags are not allowed";
      break;
    case YAML_SEQUENCE_START_EVENT:
      if (ev.data.sequence_start.anchor != NULL || ev.data.sequence_start.tag != NULL)
        refused = "anchors and tags are not allowed";
      break;
    case YAML_MAPPING_START_EVENT:
      if (ev.data.mapping_start.anchor != NULL || ev.data.mapping_start.tag != NULL)
        refused = "anchors and tags are not allowed";
      break;
    case YAML_DOCUMENT_START_EVENT:
      if (++docs > 1)
        refused = "one document only";
      break;
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    default:
      break;
    }
    size_t line = (size_t)ev.start_mark.line + 1;
    yaml_event_delete(&ev);
    if (refused != NULL) {
      snprintf(err, ALN_POLICY_ERR_MAX, "line %zu: %s", line, refused);
      goto out;
    }
  }
  if (docs == 0) {
    snprintf(err, ALN_POLICY_ERR_MAX, "the policy file is empty");
    goto out;
  }
  st = ALN_OK;
out:
  yaml_parser_delete(&parser);
  return st;
}

static yaml_node_t *node_at(struct walk *w, int idx) {
  return yaml_document_get_node(w->doc, idx);
}

static int is_scalar(const yaml_node_t *n) {
  return n != NULL && n->type == YAML_SCALAR_NODE;
}

static const char *scalar(const yaml_node_t *n) {
  return (const char *)n->data.scalar.value;
}

/* A plain scalar's bytes, refusing embedded NULs (the value is used as a C string). */
static aln_status scalar_ok(struct walk *w, const yaml_node_t *n, const char *path) {
  if (!is_scalar(n))
    return say(w, n, ALN_ERR_MALFORMED, "%s must be a scalar", path);
  if (strlen(scalar(n)) != n->data.scalar.length)
    return say(w, n, ALN_ERR_MALFORMED, "%s contains a NUL byte", path);
  return ALN_OK;
}

/* check_map refuses a non-mapping, a non-scalar or repeated key, and any key not in
 * |known| (NULL-terminated). */
static aln_status check_map(struct walk *w, const yaml_node_t *map, const char *path, const char *const *known) {
  if (map == NULL || map->type != YAML_MAPPING_NODE)
    return say(w, map, ALN_ERR_MALFORMED, "%s must be a mapping", path);
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node_at(w, p->key);
    ALN_GUARD(scalar_ok(w, k, "a key"));
    int found = 0;
    for (size_t i = 0; known[i] != NULL; i++)
      found |= strcmp(known[i], scalar(k)) == 0;
    if (!found)
      return say(w, k, ALN_ERR_MALFORMED, "unknown key '%.64s' in %s", scalar(k), path);
    for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
      if (strcmp(scalar(node_at(w, q->key)), scalar(k)) == 0)
        return say(w, k, ALN_ERR_MALFORMED, "key '%.64s' appears twice in %s", scalar(k), path);
    }
  }
  return ALN_OK;
}

/* map_get returns the value of |key| in |map| (already checked), or NULL. */
static yaml_node_t *map_get(struct walk *w, const yaml_node_t *map, const char *key) {
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    if (strcmp(scalar(node_at(w, p->key)), key) == 0)
      return node_at(w, p->value);
  }
  return NULL;
}

/* get_bool reads |key| of |map| as true/false into *out; absent leaves *out. */
static aln_status get_bool(struct walk *w, const yaml_node_t *map, const char *key, const char *path, int *out) {
  yaml_node_t *v = map_get(w, map, key);
  if (v == NULL)
    return ALN_OK;
  ALN_GUARD(scalar_ok(w, v, path));
  if (strcmp(scalar(v), "true") == 0)
    *out = 1;
  else if (strcmp(scalar(v), "false") == 0)
    *out = 0;
  else
    return say(w, v, ALN_ERR_USAGE, "%s.%s must be true or false", path, key);
  return ALN_OK;
}

/* get_uint reads |key| of |map| as a decimal integer in [0, max]; absent leaves *out. */
static aln_status get_uint(struct walk *w, const yaml_node_t *map, const char *key, const char *path, uint64_t max,
                           uint64_t *out) {
  yaml_node_t *v = map_get(w, map, key);
  if (v == NULL)
    return ALN_OK;
  ALN_GUARD(scalar_ok(w, v, path));
  const char *s = scalar(v);
  char *end = NULL;
  errno = 0;
  unsigned long long n = strtoull(s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || n > max || (s[0] == '0' && s[1] != '\0'))
    return say(w, v, ALN_ERR_USAGE, "%s.%s must be a whole number from 0 to %llu", path, key, (unsigned long long)max);
  *out = n;
  return ALN_OK;
}

/* own keeps |p| (may be NULL) to be freed with the policy; on failure it frees it. */
static aln_status own(struct aln_policy *pol, void *p) {
  if (p == NULL)
    return ALN_ERR_NOMEM;
  if (pol->num_owned == pol->cap_owned) {
    size_t cap = pol->cap_owned ? pol->cap_owned * 2 : 16;
    void **grown = reallocarray(pol->owned, cap, sizeof(*grown));
    if (grown == NULL) {
      free(p);
      return ALN_ERR_NOMEM;
    }
    pol->owned = grown;
    pol->cap_owned = cap;
  }
  pol->owned[pol->num_owned++] = p;
  return ALN_OK;
}

/* get_str reads |key| of |map| as a string of 1..POLICY_STR_MAX bytes into *out
 * (owned by |pol|); absent leaves *out, or is an error when |required|. */
static aln_status get_str(struct walk *w, struct aln_policy *pol, const yaml_node_t *map, const char *key,
                          const char *path, int required, const char **out) {
  yaml_node_t *v = map_get(w, map, key);
  if (v == NULL)
    return required ? say(w, map, ALN_ERR_USAGE, "%s.%s is required", path, key) : ALN_OK;
  ALN_GUARD(scalar_ok(w, v, path));
  size_t len = v->data.scalar.length;
  if (len == 0 || len > POLICY_STR_MAX)
    return say(w, v, ALN_ERR_USAGE, "%s.%s must be 1 to %d bytes", path, key, POLICY_STR_MAX);
  char *copy = strdup(scalar(v));
  ALN_GUARD(own(pol, copy));
  *out = copy;
  return ALN_OK;
}

/* get_list reads |key| of |map| as a sequence of 1..POLICY_LIST_MAX strings into a
 * NULL-terminated array *out (owned by |pol|), each accepted by |ok| (may be NULL)
 * whose refusal names |what|. */
static aln_status get_list(struct walk *w, struct aln_policy *pol, const yaml_node_t *map, const char *key,
                           const char *path, int required, int (*ok)(const char *), const char *what,
                           const char *const **out) {
  yaml_node_t *v = map_get(w, map, key);
  if (v == NULL)
    return required ? say(w, map, ALN_ERR_USAGE, "%s.%s is required", path, key) : ALN_OK;
  if (v->type != YAML_SEQUENCE_NODE)
    return say(w, v, ALN_ERR_MALFORMED, "%s.%s must be a list", path, key);
  size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
  if (n == 0 || n > POLICY_LIST_MAX)
    return say(w, v, ALN_ERR_USAGE, "%s.%s must list 1 to %d entries", path, key, POLICY_LIST_MAX);
  const char **list = calloc(n + 1, sizeof(*list));
  ALN_GUARD(own(pol, (void *)list));
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = node_at(w, v->data.sequence.items.start[i]);
    ALN_GUARD(scalar_ok(w, item, path));
    if (item->data.scalar.length == 0 || item->data.scalar.length > POLICY_STR_MAX || (ok != NULL && !ok(scalar(item))))
      return say(w, item, ALN_ERR_USAGE, "%s.%s: '%.80s' is not %s", path, key, scalar(item), what);
    for (size_t j = 0; j < i; j++)
      if (strcmp(list[j], scalar(item)) == 0)
        return say(w, item, ALN_ERR_USAGE, "%s.%s lists '%.80s' twice", path, key, scalar(item));
    char *copy = strdup(scalar(item));
    ALN_GUARD(own(pol, copy));
    list[i] = copy;
  }
  *out = list;
  return ALN_OK;
}

/* get_file reads the file named by |key| of |map| (a PEM or JSON reference the
 * policy points to) into a NUL-terminated string owned by |pol|. */
static aln_status get_file(struct walk *w, struct aln_policy *pol, const yaml_node_t *map, const char *key,
                           const char *path, const char **out) {
  const char *name = NULL;
  ALN_GUARD(get_str(w, pol, map, key, path, 0, &name));
  if (name == NULL)
    return ALN_OK;
  uint8_t *buf = NULL;
  size_t n = 0;
  aln_status st = aln_file_read_public(&buf, &n, name, POLICY_REF_FILE_MAX);
  if (st == ALN_ERR_NOT_FOUND || st == ALN_ERR_IO)
    return say(w, map_get(w, map, key), ALN_ERR_USAGE, "%s.%s: cannot open '%.120s'", path, key, name);
  if (st == ALN_ERR_NOMEM)
    return st;
  if (st == ALN_OK)
    ALN_GUARD(own(pol, buf));
  if (st != ALN_OK || n == 0 || memchr(buf, '\0', n) != NULL)
    return say(w, map_get(w, map, key), ALN_ERR_USAGE, "%s.%s: '%.120s' is empty, binary or over %d bytes", path, key,
               name, POLICY_REF_FILE_MAX);
  *out = (const char *)buf;
  return ALN_OK;
}

/* hex_into decodes the scalar |v| as exactly |len| bytes of hex into |out|. */
static aln_status hex_into(struct walk *w, const yaml_node_t *v, const char *path, uint8_t *out, size_t len) {
  ALN_GUARD(scalar_ok(w, v, path));
  if (v->data.scalar.length != 2 * len || aln_hex_decode(out, len, scalar(v), 2 * len) != ALN_OK)
    return say(w, v, ALN_ERR_USAGE, "%s: '%.40s...' is not %zu bytes of hex", path, scalar(v), len);
  return ALN_OK;
}

/* get_hex_list reads |key| of |map| as a list of 1..POLICY_LIST_MAX hex strings of
 * |len| bytes each, into one buffer of *num_out * |len| bytes owned by |pol|. */
static aln_status get_hex_list(struct walk *w, struct aln_policy *pol, const yaml_node_t *map, const char *key,
                               const char *path, size_t len, uint8_t **out, size_t *num_out) {
  yaml_node_t *v = map_get(w, map, key);
  if (v == NULL)
    return say(w, map, ALN_ERR_USAGE, "%s.%s is required", path, key);
  if (v->type != YAML_SEQUENCE_NODE)
    return say(w, v, ALN_ERR_MALFORMED, "%s.%s must be a list", path, key);
  size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
  if (n == 0 || n > POLICY_LIST_MAX)
    return say(w, v, ALN_ERR_USAGE, "%s.%s must list 1 to %d entries", path, key, POLICY_LIST_MAX);
  uint8_t *buf = calloc(n, len);
  ALN_GUARD(own(pol, buf));
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = node_at(w, v->data.sequence.items.start[i]);
    ALN_GUARD(hex_into(w, item, path, buf + i * len, len));
    for (size_t j = 0; j < i; j++)
      if (memcmp(buf + j * len, buf + i * len, len) == 0)
        return say(w, item, ALN_ERR_USAGE, "%s.%s lists a value twice", path, key);
  }
  *out = buf;
  *num_out = n;
  return ALN_OK;
}

static int is_image_digest(const char *s) {
  if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
    return 0;
  for (const char *p = s + 7; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return 0;
  return 1;
}

static int is_token_word(const char *s) {
  for (const char *p = s; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
      return 0;
  return s[0] != '\0';
}

/* ---- the kinds ------------------------------------------------------------------- */

static aln_status parse_local(struct walk *w, const yaml_node_t *sec, struct aln_policy *p) {
  static const char *const known[] = {"allow_debug", NULL};
  ALN_GUARD(check_map(w, sec, "kinds.local", known));
  ALN_GUARD(get_bool(w, sec, "allow_debug", "kinds.local", &p->local.allow_debug));
  p->has_local = 1;
  return ALN_OK;
}

/*   confidential-space:
 *     audience: https://aileron.example/attest   # required: the token's aud
 *     image_digests: [sha256:<64 hex>, ...]        # required: the workload images allowed
 *     hwmodels: [GCP_AMD_SEV, GCP_INTEL_TDX]       # required
 *     support_attributes: [STABLE]                 # each must be in the token's list
 *     allow_debug: false
 *     root_pem_file: FILE   # PKI tokens' root (default: the pinned Confidential Space Root CA)
 *     jwks_file: FILE       # OIDC tokens' keys (default: OIDC tokens are refused) */
static aln_status parse_cs(struct walk *w, const yaml_node_t *sec, struct aln_policy *p) {
  static const char *const known[] = {"audience",    "image_digests", "hwmodels",  "support_attributes",
                                      "allow_debug", "root_pem_file", "jwks_file", NULL};
  const char *path = "kinds.confidential-space";
  ALN_GUARD(check_map(w, sec, path, known));
  ALN_GUARD(get_str(w, p, sec, "audience", path, 1, &p->cs.audience));
  ALN_GUARD(get_list(w, p, sec, "image_digests", path, 1, is_image_digest, "sha256:<64 lowercase hex>",
                     &p->cs.image_digests));
  ALN_GUARD(get_list(w, p, sec, "hwmodels", path, 1, is_token_word, "a hardware model name", &p->cs.hwmodels));
  ALN_GUARD(get_list(w, p, sec, "support_attributes", path, 0, is_token_word, "an attribute name",
                     &p->cs.support_attributes));
  ALN_GUARD(get_bool(w, sec, "allow_debug", path, &p->cs.allow_debug));
  ALN_GUARD(get_file(w, p, sec, "root_pem_file", path, &p->cs.root_pem));
  ALN_GUARD(get_file(w, p, sec, "jwks_file", path, &p->cs.jwks_json));
  /* Trust is parsed once here, so a bad root or JWKS stops the load, not a call. */
  aln_status st = aln_cs_keys_new(&p->cs_keys, &p->cs);
  if (st != ALN_OK)
    return say(w, sec, ALN_ERR_USAGE, "%s: its root or JWKS is not usable (%s)", path, aln_status_name(st));
  p->cs.keys = p->cs_keys;
  p->has_cs = 1;
  return ALN_OK;
}

/*   sev-snp:
 *     product: Milan                 # Milan, Genoa or Turin: whose pinned AMD roots anchor the chain
 *     measurements: [<96 hex>, ...]  # the launch measurements allowed
 *     min_tcb: {bootloader: 2, tee: 0, snp: 5, microcode: 68, fmc: 0}   # each at least (fmc: Turin)
 *     allow_debug: false
 *     vmpl: [0]                      # the VMPLs allowed (default: 0 only)
 *     roots_pem_file: FILE           # AMD ARK/ASK to use instead of the pinned ones */
static aln_status parse_snp(struct walk *w, const yaml_node_t *sec, struct aln_policy *p) {
  static const char *const known[] = {"product", "measurements",   "min_tcb", "allow_debug",
                                      "vmpl",    "roots_pem_file", NULL};
  static const char *const tcb_known[] = {"bootloader", "tee", "snp", "microcode", "fmc", NULL};
  const char *path = "kinds.sev-snp", *product = NULL;
  uint8_t *m = NULL;
  ALN_GUARD(check_map(w, sec, path, known));
  ALN_GUARD(get_str(w, p, sec, "product", path, 1, &product));
  if (aln_snp_product_from_name(&p->snp.product, product) != ALN_OK)
    return say(w, map_get(w, sec, "product"), ALN_ERR_USAGE, "%s.product must be Milan, Genoa or Turin", path);
  ALN_GUARD(get_hex_list(w, p, sec, "measurements", path, ALN_SNP_MEASUREMENT_LEN, &m, &p->snp.num_measurements));
  p->snp.measurements = (const uint8_t(*)[ALN_SNP_MEASUREMENT_LEN])m;
  yaml_node_t *tcb = map_get(w, sec, "min_tcb");
  if (tcb != NULL) {
    uint64_t v[5] = {0};
    ALN_GUARD(check_map(w, tcb, "kinds.sev-snp.min_tcb", tcb_known));
    for (int i = 0; i < 5; i++)
      ALN_GUARD(get_uint(w, tcb, tcb_known[i], "kinds.sev-snp.min_tcb", 255, &v[i]));
    p->snp.min_tcb = (struct aln_snp_tcb){.bootloader = (uint8_t)v[0],
                                          .tee = (uint8_t)v[1],
                                          .snp = (uint8_t)v[2],
                                          .microcode = (uint8_t)v[3],
                                          .fmc = (uint8_t)v[4]};
  }
  ALN_GUARD(get_bool(w, sec, "allow_debug", path, &p->snp.allow_debug));
  yaml_node_t *vmpl = map_get(w, sec, "vmpl");
  if (vmpl != NULL) {
    if (vmpl->type != YAML_SEQUENCE_NODE || vmpl->data.sequence.items.top == vmpl->data.sequence.items.start)
      return say(w, vmpl, ALN_ERR_USAGE, "%s.vmpl must be a non-empty list of 0..3", path);
    for (yaml_node_item_t *it = vmpl->data.sequence.items.start; it < vmpl->data.sequence.items.top; it++) {
      yaml_node_t *item = node_at(w, *it);
      ALN_GUARD(scalar_ok(w, item, path));
      const char *s = scalar(item);
      if (s[0] < '0' || s[0] > '3' || s[1] != '\0')
        return say(w, item, ALN_ERR_USAGE, "%s.vmpl entries must be 0, 1, 2 or 3", path);
      p->snp.vmpl_mask |= 1u << (s[0] - '0');
    }
  }
  ALN_GUARD(get_file(w, p, sec, "roots_pem_file", path, &p->snp.roots_pem));
  p->has_snp = 1;
  return ALN_OK;
}

/*   tpm:
 *     ak_names: [<68 hex>, ...]      # attestation keys pinned at enrollment (TPM names, SHA-256)
 *     ek_ca_file: FILE               # and/or: EK manufacturer CA(s), PEM; an AK whose EK
 *                                    # certificate chains to one is enrolled by credential activation
 *     pcrs:                          # each quoted PCR named here must hold an allowed value
 *       - {bank: sha256, index: 7, values: [<64 hex>, ...]} */
static aln_status parse_tpm(struct walk *w, const yaml_node_t *sec, struct aln_policy *p) {
  static const char *const known[] = {"ak_names", "ek_ca_file", "pcrs", NULL};
  static const char *const pcr_known[] = {"bank", "index", "values", NULL};
  const char *path = "kinds.tpm";
  uint8_t *names = NULL;
  size_t num_names = 0;
  ALN_GUARD(check_map(w, sec, path, known));
  ALN_GUARD(get_file(w, p, sec, "ek_ca_file", path, &p->tpm_ek_roots));
  if (p->tpm_ek_roots != NULL && strstr(p->tpm_ek_roots, "-----BEGIN CERTIFICATE-----") == NULL)
    return say(w, map_get(w, sec, "ek_ca_file"), ALN_ERR_USAGE, "%s.ek_ca_file holds no PEM certificate", path);
  if (map_get(w, sec, "ak_names") != NULL || p->tpm_ek_roots == NULL)
    ALN_GUARD(get_hex_list(w, p, sec, "ak_names", path, ALN_TPM_AK_NAME_LEN, &names, &num_names));
  TPM2B_NAME *ak = calloc(num_names + 1, sizeof(*ak));
  ALN_GUARD(own(p, ak));
  for (size_t i = 0; i < num_names; i++) {
    ak[i].size = 34;
    memcpy(ak[i].name, names + 34 * i, 34);
  }
  p->tpm.ak_names = ak;
  p->tpm.num_ak_names = num_names;
  yaml_node_t *pcrs = map_get(w, sec, "pcrs");
  if (pcrs == NULL || pcrs->type != YAML_SEQUENCE_NODE ||
      pcrs->data.sequence.items.top == pcrs->data.sequence.items.start)
    return say(w, pcrs != NULL ? pcrs : sec, ALN_ERR_USAGE, "%s.pcrs must list at least one PCR", path);
  size_t n = (size_t)(pcrs->data.sequence.items.top - pcrs->data.sequence.items.start);
  if (n > ALN_TPM_PCR_VALUES_MAX)
    return say(w, pcrs, ALN_ERR_USAGE, "%s.pcrs lists too many PCRs", path);
  struct aln_tpm_pcr_ref *refs = calloc(n, sizeof(*refs));
  ALN_GUARD(own(p, refs));
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *e = node_at(w, pcrs->data.sequence.items.start[i]);
    const char *bank = NULL;
    uint64_t index = 0;
    size_t dlen;
    uint8_t *vals = NULL;
    ALN_GUARD(check_map(w, e, "kinds.tpm.pcrs[]", pcr_known));
    ALN_GUARD(get_str(w, p, e, "bank", "kinds.tpm.pcrs[]", 1, &bank));
    if (strcmp(bank, "sha256") == 0) {
      refs[i].bank = TPM2_ALG_SHA256;
      dlen = 32;
    } else if (strcmp(bank, "sha384") == 0) {
      refs[i].bank = TPM2_ALG_SHA384;
      dlen = 48;
    } else if (strcmp(bank, "sha1") == 0) {
      refs[i].bank = TPM2_ALG_SHA1;
      dlen = 20;
    } else {
      return say(w, map_get(w, e, "bank"), ALN_ERR_USAGE, "kinds.tpm.pcrs[].bank must be sha1, sha256 or sha384");
    }
    if (map_get(w, e, "index") == NULL)
      return say(w, e, ALN_ERR_USAGE, "kinds.tpm.pcrs[].index is required");
    ALN_GUARD(get_uint(w, e, "index", "kinds.tpm.pcrs[]", ALN_TPM_PCR_INDEX_MAX, &index));
    for (size_t j = 0; j < i; j++)
      if (refs[j].bank == refs[i].bank && refs[j].index == index)
        return say(w, e, ALN_ERR_USAGE, "kinds.tpm.pcrs names %s:%u twice", bank, (unsigned)index);
    refs[i].index = (uint8_t)index;
    ALN_GUARD(get_hex_list(w, p, e, "values", "kinds.tpm.pcrs[]", dlen, &vals, &refs[i].num_values));
    refs[i].values = vals;
  }
  p->tpm.pcrs = refs;
  p->tpm.num_pcrs = n;
  p->has_tpm = 1;
  return ALN_OK;
}

/*   aws-nitro:
 *     pcrs:                          # every index named must hold one of its values
 *       - {index: 0, values: [<96 hex>, ...]}   # SHA-384, as Nitro measures
 *     allow_debug: false             # a PCR0 of zeros: an enclave started in debug mode
 *     binding: nonce                 # where the document carries the binding: nonce or user_data
 *     root_pem_file: FILE            # the trust anchor instead of the pinned AWS Nitro root */
static aln_status parse_nitro(struct walk *w, const yaml_node_t *sec, struct aln_policy *p) {
  static const char *const known[] = {"pcrs", "allow_debug", "binding", "root_pem_file", NULL};
  static const char *const pcr_known[] = {"index", "values", NULL};
  const char *path = "kinds.aws-nitro", *binding = NULL, *root = NULL;
  ALN_GUARD(check_map(w, sec, path, known));
  yaml_node_t *pcrs = map_get(w, sec, "pcrs");
  if (pcrs == NULL || pcrs->type != YAML_SEQUENCE_NODE ||
      pcrs->data.sequence.items.top == pcrs->data.sequence.items.start)
    return say(w, pcrs != NULL ? pcrs : sec, ALN_ERR_USAGE,
               "%s.pcrs must list at least one PCR: without one any enclave on AWS would pass", path);
  /* One entry per allowed value, as the verifier takes them. */
  size_t n_idx = (size_t)(pcrs->data.sequence.items.top - pcrs->data.sequence.items.start), total = 0;
  struct aln_nitro_pcr *refs = calloc(n_idx * POLICY_LIST_MAX, sizeof(*refs));
  ALN_GUARD(own(p, refs));
  for (size_t i = 0; i < n_idx; i++) {
    yaml_node_t *e = node_at(w, pcrs->data.sequence.items.start[i]);
    uint64_t index = 0;
    uint8_t *vals = NULL;
    size_t nv = 0;
    ALN_GUARD(check_map(w, e, "kinds.aws-nitro.pcrs[]", pcr_known));
    if (map_get(w, e, "index") == NULL)
      return say(w, e, ALN_ERR_USAGE, "kinds.aws-nitro.pcrs[].index is required");
    ALN_GUARD(get_uint(w, e, "index", "kinds.aws-nitro.pcrs[]", ALN_NITRO_PCR_NUM - 1, &index));
    for (size_t j = 0; j < total; j++)
      if (refs[j].index == index)
        return say(w, e, ALN_ERR_USAGE, "kinds.aws-nitro.pcrs names PCR %u twice", (unsigned)index);
    ALN_GUARD(get_hex_list(w, p, e, "values", "kinds.aws-nitro.pcrs[]", 48, &vals, &nv));
    for (size_t v = 0; v < nv; v++)
      refs[total++] = (struct aln_nitro_pcr){.index = (unsigned)index, .value = vals + 48 * v, .value_len = 48};
  }
  p->nitro.pcrs = refs;
  p->nitro.num_pcrs = total;
  ALN_GUARD(get_bool(w, sec, "allow_debug", path, &p->nitro.allow_debug));
  ALN_GUARD(get_str(w, p, sec, "binding", path, 0, &binding));
  if (binding != NULL && strcmp(binding, "nonce") != 0 && strcmp(binding, "user_data") != 0)
    return say(w, map_get(w, sec, "binding"), ALN_ERR_USAGE, "%s.binding must be nonce or user_data", path);
  p->nitro.binding =
      binding != NULL && strcmp(binding, "user_data") == 0 ? ALN_NITRO_BIND_USER_DATA : ALN_NITRO_BIND_NONCE;
  ALN_GUARD(get_file(w, p, sec, "root_pem_file", path, &root));
  if (root != NULL) {
    BIO *bio = BIO_new_mem_buf(root, -1);
    X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL;
    int der_len = x != NULL ? i2d_X509(x, &der) : -1;
    BIO_free(bio);
    X509_free(x);
    if (der_len <= 0)
      return say(w, map_get(w, sec, "root_pem_file"), ALN_ERR_USAGE, "%s.root_pem_file holds no certificate", path);
    uint8_t *copy = malloc((size_t)der_len);
    if (copy != NULL)
      memcpy(copy, der, (size_t)der_len);
    OPENSSL_free(der);
    ALN_GUARD(own(p, copy));
    p->nitro.root_der = copy;
    p->nitro.root_der_len = (size_t)der_len;
  }
  p->has_nitro = 1;
  return ALN_OK;
}

struct kind_entry {
  const char *name;
  aln_status (*parse)(struct walk *w, const yaml_node_t *sec, struct aln_policy *p); /* NULL: not built */
};

/* Every kind the contract names; those whose verifier this build lacks are refused
 * by name, so a policy written for a newer build fails loudly, not open. */
static const struct kind_entry kinds[] = {
    {"local", parse_local},           {"tpm", parse_tpm},         {"sev-snp", parse_snp},
    {"confidential-space", parse_cs}, {"aws-nitro", parse_nitro},
};

static aln_status parse_root(struct walk *w, struct aln_policy *p) {
  static const char *const top_known[] = {"version", "kinds", NULL};
  const char *kind_names[sizeof(kinds) / sizeof(kinds[0]) + 1];
  yaml_node_t *root = yaml_document_get_root_node(w->doc);

  ALN_GUARD(check_map(w, root, "the policy", top_known));
  uint64_t version = 0;
  ALN_GUARD(get_uint(w, root, "version", "the policy", 100, &version));
  if (version != 1)
    return say(w, map_get(w, root, "version"), ALN_ERR_USAGE, "version must be 1 (this build reads version 1)");
  yaml_node_t *sec = map_get(w, root, "kinds");
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    kind_names[i] = kinds[i].name;
  kind_names[sizeof(kinds) / sizeof(kinds[0])] = NULL;
  ALN_GUARD(check_map(w, sec, "kinds", kind_names));
  if (sec->data.mapping.pairs.start == sec->data.mapping.pairs.top)
    return say(w, sec, ALN_ERR_USAGE, "kinds names no evidence kind: every enclave would be refused");
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    yaml_node_t *k = map_get(w, sec, kinds[i].name);
    if (k == NULL)
      continue;
    if (kinds[i].parse == NULL)
      return say(w, k, ALN_ERR_ATTEST_KIND, "evidence kind '%s' is not verified by this build", kinds[i].name);
    ALN_GUARD(kinds[i].parse(w, k, p));
  }
  return ALN_OK;
}

aln_status aln_policy_parse(struct aln_policy **out, char err[ALN_POLICY_ERR_MAX], const uint8_t *yaml, size_t len) {
  aln_status st = ALN_ERR_INTERNAL;
  yaml_parser_t parser;
  yaml_document_t doc;
  struct aln_policy *p = NULL;
  int parser_ok = 0, doc_ok = 0;

  ALN_ENSURE(out != NULL && err != NULL, ALN_ERR_USAGE);
  *out = NULL;
  err[0] = '\0';
  ALN_ENSURE(yaml != NULL || len == 0, ALN_ERR_USAGE);
  if (len > ALN_POLICY_FILE_MAX) {
    snprintf(err, ALN_POLICY_ERR_MAX, "the policy file is larger than %d bytes", ALN_POLICY_FILE_MAX);
    return ALN_ERR_TOO_LARGE;
  }
  ALN_GUARD(screen(err, yaml, len));
  p = calloc(1, sizeof(*p));
  ALN_ENSURE(p != NULL, ALN_ERR_NOMEM);
  ALN_ENSURE_GOTO(st, yaml_parser_initialize(&parser), ALN_ERR_NOMEM, out);
  parser_ok = 1;
  yaml_parser_set_input_string(&parser, yaml, len);
  if (!yaml_parser_load(&parser, &doc)) {
    snprintf(err, ALN_POLICY_ERR_MAX, "YAML: %.120s", parser.problem != NULL ? parser.problem : "parse error");
    st = ALN_ERR_MALFORMED;
    goto out;
  }
  doc_ok = 1;
  struct walk w = {.doc = &doc, .err = err};
  ALN_GUARD_GOTO(st, parse_root(&w, p), out);
  *out = p;
  p = NULL;
  st = ALN_OK;
out:
  if (doc_ok)
    yaml_document_delete(&doc);
  if (parser_ok)
    yaml_parser_delete(&parser);
  aln_policy_free(p);
  return st;
}

aln_status aln_policy_load(struct aln_policy **out, char err[ALN_POLICY_ERR_MAX], const char *path) {
  aln_status st = ALN_ERR_IO;
  struct stat sb;
  uint8_t *buf = NULL;

  ALN_ENSURE(out != NULL && err != NULL && path != NULL, ALN_ERR_USAGE);
  *out = NULL;
  err[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, ALN_POLICY_ERR_MAX, "cannot open the policy file: %s", strerror(errno));
    return errno == ENOENT ? ALN_ERR_NOT_FOUND : ALN_ERR_IO;
  }
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    snprintf(err, ALN_POLICY_ERR_MAX, "the policy must be a regular file");
    goto out;
  }
  if (sb.st_size > ALN_POLICY_FILE_MAX) {
    snprintf(err, ALN_POLICY_ERR_MAX, "the policy file is larger than %d bytes", ALN_POLICY_FILE_MAX);
    st = ALN_ERR_TOO_LARGE;
    goto out;
  }
  size_t len = (size_t)sb.st_size, got = 0;
  buf = malloc(len + 1);
  ALN_ENSURE_GOTO(st, buf != NULL, ALN_ERR_NOMEM, out);
  while (got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      snprintf(err, ALN_POLICY_ERR_MAX, "cannot read the policy file");
      goto out;
    }
    got += (size_t)n;
  }
  st = aln_policy_parse(out, err, buf, len);
out:
  free(buf);
  close(fd);
  return st;
}

aln_status aln_policy_dev(struct aln_policy **out) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  *out = calloc(1, sizeof(**out));
  ALN_ENSURE(*out != NULL, ALN_ERR_NOMEM);
  (*out)->has_local = 1;
  (*out)->local.allow_debug = 1;
  return ALN_OK;
}

void aln_policy_free(struct aln_policy *p) {
  if (p == NULL)
    return;
  aln_jwt_keys_free(p->cs_keys);
  for (size_t i = 0; i < p->num_owned; i++)
    free(p->owned[i]);
  free(p->owned);
  free(p);
}

int aln_policy_names_kind(const struct aln_policy *p, const char *kind) {
  if (p == NULL || kind == NULL)
    return 0;
  if (strcmp(kind, "local") == 0)
    return p->has_local;
  if (strcmp(kind, ALN_CS_KIND) == 0)
    return p->has_cs;
  if (strcmp(kind, "sev-snp") == 0)
    return p->has_snp;
  if (strcmp(kind, ALN_TPM_QUOTE_KIND) == 0)
    return p->has_tpm;
  if (strcmp(kind, ALN_NITRO_KIND) == 0)
    return p->has_nitro;
  return 0;
}

/* ---- verification, by kind ------------------------------------------------------ */

/* verify_local appraises the dev provider's evidence: its signature by the signing
 * key the enclave announced, its nonce, and the policy's word on debug (the local
 * kind is always debug). */
static aln_status verify_local(struct aln_claims *out, struct aln_refusal *why, const struct aln_policy_local *pol,
                               const uint8_t *ev, size_t ev_len, const struct aln_verify_ctx *ctx) {
  struct aln_local_claims lc;
  if (ctx->signing_key == NULL)
    return aln_refuse(why, ALN_ERR_ATTEST, "local evidence is checked against the enclave's signing key: none given");
  if (ctx->nonce != NULL && ctx->nonce_len != ALN_BINDING_LEN)
    return aln_refuse(why, ALN_ERR_ATTEST_BINDING, "the nonce of local evidence is %d bytes", ALN_BINDING_LEN);
  /* Without a nonce (offline), the signature is still checked; the claims say the nonce was not. */
  aln_status st = aln_local_evidence_verify(&lc, ev, ev_len, ctx->signing_key, ctx->signing_key_len, ctx->nonce);
  if (st != ALN_OK)
    return aln_refuse(why, aln_status_category(st) == ALN_CAT_ATTEST ? st : ALN_ERR_ATTEST_MALFORMED,
                      "local evidence refused: %s", aln_strerror(st));
  if (lc.debug && !pol->allow_debug)
    return aln_refuse(why, ALN_ERR_ATTEST_DEBUG, "debug evidence (dbgstat enabled) refused by the policy");
  memset(out, 0, sizeof(*out));
  snprintf(out->kind, sizeof(out->kind), "local");
  out->debug = lc.debug;
  out->nonce_checked = ctx->nonce != NULL;
  out->issued_at = lc.iat;
  /* The local kind measures nothing: its "measurement" is the signing key it vouches for. */
  ALN_GUARD(aln_hex_encode(out->measurement, sizeof(out->measurement), ctx->signing_key, ctx->signing_key_len));
  out->detail = json_pack("{s:s}", "profile", ALN_LOCAL_PROFILE);
  return out->detail != NULL ? ALN_OK : ALN_ERR_NOMEM;
}

aln_status aln_evidence_verify(struct aln_claims *out, struct aln_refusal *why, const struct aln_policy *p,
                               const char *kind, const uint8_t *ev, size_t ev_len, const struct aln_verify_ctx *ctx) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  memset(out, 0, sizeof(*out));
  if (why != NULL)
    memset(why, 0, sizeof(*why));
  ALN_ENSURE(p != NULL && kind != NULL && ctx != NULL && (ev != NULL || ev_len == 0), ALN_ERR_USAGE);
  if (!aln_policy_names_kind(p, kind))
    return aln_refuse(why, ALN_ERR_ATTEST_KIND, "evidence kind '%.32s' is not named in the policy", kind);
  if (strcmp(kind, "local") == 0)
    return verify_local(out, why, &p->local, ev, ev_len, ctx);
  if (strcmp(kind, ALN_CS_KIND) == 0)
    return aln_cs_verify(out, why, ev, ev_len, &p->cs, ctx);
  if (strcmp(kind, "sev-snp") == 0)
    return aln_snp_verify(out, why, ev, ev_len, &p->snp, ctx);
  if (strcmp(kind, ALN_TPM_QUOTE_KIND) == 0)
    return aln_tpm_quote_verify(out, why, ev, ev_len, &p->tpm, ctx);
  if (strcmp(kind, ALN_NITRO_KIND) == 0)
    return aln_nitro_verify(out, why, ev, ev_len, &p->nitro, ctx);
  return aln_refuse(why, ALN_ERR_ATTEST_KIND, "evidence kind '%.32s' is not verified by this build", kind);
}

const char *aln_policy_tpm_ek_roots(const struct aln_policy *p) {
  return p != NULL && p->has_tpm ? p->tpm_ek_roots : NULL;
}

int aln_policy_tpm_ak_pinned(const struct aln_policy *p, const uint8_t name[ALN_POLICY_AK_NAME_LEN]) {
  if (p == NULL || !p->has_tpm || name == NULL)
    return 0;
  for (size_t i = 0; i < p->tpm.num_ak_names; i++)
    if (p->tpm.ak_names[i].size == ALN_POLICY_AK_NAME_LEN &&
        memcmp(p->tpm.ak_names[i].name, name, ALN_POLICY_AK_NAME_LEN) == 0)
      return 1;
  return 0;
}
