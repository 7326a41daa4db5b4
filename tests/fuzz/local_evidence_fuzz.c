/* fuzz-links: aln_attestation */
/* Fuzzes the "local" evidence verifier against a fixed key and binding. The first
 * input byte picks what the rest is, so the fuzzer also reaches the code behind
 * the signature check, which it could never pass with forged bytes:
 *   0  the whole evidence, verified as is;
 *   1  a claims payload, wrapped with the valid protected header and signed;
 *   2  a protected header, wrapped around the valid claims and signed.
 * Any outcome but a crash, a leak or a sanitizer report is fine; success is only
 * possible with exactly the valid claims. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/local.h"

#define WRAP_MAX (ALN_LOCAL_EVIDENCE_MAX + 128)
#define ALN_FUZZ_WBUF_CAP WRAP_MAX
#include "tests/fuzz/cbor_wbuf.h"

static const uint8_t seed[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t prot_good[] = {0xa1, 0x01, 0x27};

static EVP_PKEY *key;
static uint8_t pub[32], binding[ALN_BINDING_LEN];
static uint8_t claims[80]; /* the valid claims for |binding| at iat 1700000000 */

static void init(void) {
  static const uint8_t head[] = {0xa4, 0x06, 0x1a, 0x65, 0x53, 0xf1, 0x00, 0x0a, 0x58, 0x20};
  static const uint8_t tail[] = {0x19, 0x01, 0x07, 0x00, 0x19, 0x01, 0x09, 0x78, 0x1d};
  size_t len = sizeof(pub);
  if (key != NULL)
    return;
  for (size_t i = 0; i < sizeof(binding); i++)
    binding[i] = (uint8_t)(0x80 + i);
  memcpy(claims, head, sizeof(head));
  memcpy(claims + 10, binding, sizeof(binding));
  memcpy(claims + 42, tail, sizeof(tail));
  memcpy(claims + 51, ALN_LOCAL_PROFILE, 29);
  key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
  if (key == NULL || EVP_PKEY_get_raw_public_key(key, pub, &len) != 1)
    abort();
}

/* wrap writes tag(18)[prot, {}, payload, sig] with a valid signature by |key|. */
static void wrap(struct wbuf *out, const uint8_t *prot, size_t prot_len, const uint8_t *payload, size_t payload_len) {
  static struct wbuf tbs;
  static const uint8_t tbs_head[] = {0x84, 0x6a, 'S', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', '1'};
  static const uint8_t empty_bstr = 0x40, head[] = {0xd2, 0x84}, unprot = 0xa0;
  uint8_t sig[64];
  size_t sig_len = sizeof(sig);
  tbs.len = 0;
  put(&tbs, tbs_head, sizeof(tbs_head));
  put_bstr(&tbs, prot, prot_len);
  put(&tbs, &empty_bstr, 1);
  put_bstr(&tbs, payload, payload_len);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (md == NULL || EVP_DigestSignInit(md, NULL, NULL, NULL, key) != 1 ||
      EVP_DigestSign(md, sig, &sig_len, tbs.b, tbs.len) != 1)
    abort();
  EVP_MD_CTX_free(md);
  out->len = 0;
  put(out, head, sizeof(head));
  put_bstr(out, prot, prot_len);
  put(out, &unprot, 1);
  put_bstr(out, payload, payload_len);
  put_bstr(out, sig, sig_len);
}

/* check verifies |ev| and holds the verifier to its contract: it may only succeed
 * with the expected binding and the debug posture this profile fixes. */
static void check(const uint8_t *ev, size_t ev_len) {
  struct aln_local_claims out;
  memset(&out, 0, sizeof(out));
  if (aln_local_evidence_verify(&out, ev, ev_len, pub, sizeof(pub), binding) == ALN_OK &&
      (memcmp(out.nonce, binding, sizeof(binding)) != 0 || out.debug != 1))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct wbuf ev;
  init();
  if (size == 0)
    return 0;
  const uint8_t *rest = data + 1;
  size_t rest_len = size - 1;
  switch (data[0] % 3) {
  case 1:
    if (rest_len > ALN_LOCAL_EVIDENCE_MAX)
      return 0;
    wrap(&ev, prot_good, sizeof(prot_good), rest, rest_len);
    break;
  case 2:
    if (rest_len > ALN_LOCAL_EVIDENCE_MAX - sizeof(claims))
      return 0;
    wrap(&ev, rest, rest_len, claims, sizeof(claims));
    break;
  default:
    check(rest, rest_len);
    return 0;
  }
  check(ev.b, ev.len);
  return 0;
}
