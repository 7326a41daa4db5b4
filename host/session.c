/* Session tokens: self-contained, HMAC-SHA256 authenticated, verified without any
 * server-side state so that host replicas sharing the session key accept each
 * other's tokens. The token has one fixed length and one canonical spelling; the
 * verifier checks the shape before it touches the MAC and compares the MAC as
 * text in constant time, so no alternative encoding of a valid token verifies. */
#include "host/session.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/keyfile.h"

#define SESSION_PREFIX "aln1."
#define SESSION_PREFIX_LEN 5
#define SESSION_ID_LEN 16
#define SESSION_PAYLOAD_LEN (SESSION_ID_LEN + 8)
#define SESSION_PAYLOAD_B64_LEN 32 /* 24 bytes, no padding needed */
#define SESSION_MAC_LEN 32
#define SESSION_MAC_B64_LEN 43 /* 32 bytes unpadded: the last char carries 2 zero bits */
#define SESSION_SIGNED_LEN (SESSION_PREFIX_LEN + SESSION_PAYLOAD_B64_LEN)
#define SESSION_TOKEN_LEN (SESSION_SIGNED_LEN + 1 + SESSION_MAC_B64_LEN)

_Static_assert(SESSION_TOKEN_LEN < ALN_SESSION_TOKEN_MAX, "token must fit with its NUL");

_Static_assert(SESSION_PAYLOAD_LEN % 3 == 0 && SESSION_PAYLOAD_B64_LEN == SESSION_PAYLOAD_LEN / 3 * 4,
               "the payload encodes to whole base64 groups");

/* b64_status gives any malformed base64 in a token the answer every other
 * malformed token gets. */
static aln_status b64_status(aln_status st) {
  return st == ALN_ERR_MALFORMED ? ALN_ERR_SESSION_INVALID : st;
}

/* session_mac_b64 writes the base64url MAC (SESSION_MAC_B64_LEN chars and a NUL)
 * of the signed part of a token. */
static aln_status session_mac_b64(char out[SESSION_MAC_B64_LEN + 1], const struct aln_secret *key,
                                  const char *signed_part) {
  uint8_t mac[SESSION_MAC_LEN];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key->p, (int)key->len, (const uint8_t *)signed_part, SESSION_SIGNED_LEN, mac, &mac_len) ==
          NULL ||
      mac_len != SESSION_MAC_LEN) {
    aln_wipe(mac, sizeof(mac));
    return ALN_ERR_CRYPTO;
  }
  aln_status st = aln_base64_encode(out, SESSION_MAC_B64_LEN + 1, NULL, mac, sizeof(mac), ALN_BASE64_URL);
  aln_wipe(mac, sizeof(mac));
  return st;
}

static aln_status session_key_check(const struct aln_secret *key) {
  ALN_ENSURE(key != NULL && key->p != NULL && key->len == ALN_SESSION_KEY_LEN, ALN_ERR_USAGE);
  return ALN_OK;
}

aln_status aln_session_issue(char *out, size_t out_cap, struct aln_session *out_sess, const struct aln_secret *key,
                             int64_t now, int64_t ttl) {
  ALN_ENSURE(out != NULL && out_cap >= ALN_SESSION_TOKEN_MAX, ALN_ERR_USAGE);
  ALN_GUARD(session_key_check(key));
  ALN_ENSURE(ttl >= 1 && ttl <= ALN_SESSION_TTL_MAX, ALN_ERR_USAGE);
  int64_t expires_at;
  ALN_ENSURE(now >= 0 && !__builtin_add_overflow(now, ttl, &expires_at), ALN_ERR_USAGE);

  uint8_t payload[SESSION_PAYLOAD_LEN];
  ALN_ENSURE(RAND_bytes(payload, SESSION_ID_LEN) == 1, ALN_ERR_CRYPTO);
  for (int i = 0; i < 8; i++)
    payload[SESSION_ID_LEN + i] = (uint8_t)((uint64_t)expires_at >> (56 - 8 * i));

  char tok[SESSION_TOKEN_LEN + 1];
  memcpy(tok, SESSION_PREFIX, SESSION_PREFIX_LEN);
  aln_status st = aln_base64_encode(tok + SESSION_PREFIX_LEN, sizeof(tok) - SESSION_PREFIX_LEN, NULL, payload,
                                    sizeof(payload), ALN_BASE64_URL);
  tok[SESSION_SIGNED_LEN] = '.'; /* over the encoder's NUL */
  if (st == ALN_OK)
    st = session_mac_b64(tok + SESSION_SIGNED_LEN + 1, key, tok);
  if (st == ALN_OK && out_sess != NULL) {
    st = aln_hex_encode(out_sess->id, sizeof(out_sess->id), payload, SESSION_ID_LEN);
    out_sess->expires_at = expires_at;
  }
  if (st == ALN_OK) {
    tok[SESSION_TOKEN_LEN] = '\0';
    memcpy(out, tok, sizeof(tok));
  }
  aln_wipe(tok, sizeof(tok));
  return st;
}

aln_status aln_session_verify(struct aln_session *out, const struct aln_secret *key, const char *token,
                              size_t token_len, int64_t now) {
  ALN_ENSURE(out != NULL, ALN_ERR_USAGE);
  ALN_GUARD(session_key_check(key));
  memset(out, 0, sizeof(*out));
  /* Shape first: one length, one prefix, one separator; only then the MAC. */
  ALN_ENSURE(token != NULL && token_len == SESSION_TOKEN_LEN, ALN_ERR_SESSION_INVALID);
  ALN_ENSURE(memcmp(token, SESSION_PREFIX, SESSION_PREFIX_LEN) == 0, ALN_ERR_SESSION_INVALID);
  ALN_ENSURE(token[SESSION_SIGNED_LEN] == '.', ALN_ERR_SESSION_INVALID);
  uint8_t payload[SESSION_PAYLOAD_LEN];
  ALN_GUARD(b64_status(aln_base64_decode(payload, sizeof(payload), NULL, token + SESSION_PREFIX_LEN,
                                         SESSION_PAYLOAD_B64_LEN, ALN_BASE64_URL)));

  /* Comparing the re-encoded MAC as text also refuses non-canonical spellings of
   * the right MAC (stray low bits in the last character). */
  char mac[SESSION_MAC_B64_LEN + 1];
  ALN_GUARD(session_mac_b64(mac, key, token));
  int ok = aln_ct_equal((const uint8_t *)mac, SESSION_MAC_B64_LEN, (const uint8_t *)token + SESSION_SIGNED_LEN + 1,
                        SESSION_MAC_B64_LEN);
  aln_wipe(mac, sizeof(mac));
  ALN_ENSURE(ok, ALN_ERR_SESSION_INVALID);

  uint64_t exp = 0;
  for (int i = 0; i < 8; i++)
    exp = exp << 8 | payload[SESSION_ID_LEN + i];
  /* A valid MAC means we issued it, and we never issue such expiries. */
  ALN_ENSURE(exp <= INT64_MAX, ALN_ERR_SESSION_INVALID);
  ALN_ENSURE(now < (int64_t)exp, ALN_ERR_SESSION_EXPIRED);

  ALN_GUARD(aln_hex_encode(out->id, sizeof(out->id), payload, SESSION_ID_LEN));
  out->expires_at = (int64_t)exp;
  return ALN_OK;
}
