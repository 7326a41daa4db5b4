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

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* b64url_encode writes the unpadded base64url form of |in| to |out| (which has room
 * for 4*ceil(len/3) chars) and returns the number of chars written. */
static size_t b64url_encode(char *out, const uint8_t *in, size_t len) {
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64url_alphabet[(v >> 18) & 63];
    out[o++] = b64url_alphabet[(v >> 12) & 63];
    out[o++] = b64url_alphabet[(v >> 6) & 63];
    out[o++] = b64url_alphabet[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64url_alphabet[(v >> 18) & 63];
    out[o++] = b64url_alphabet[(v >> 12) & 63];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64url_alphabet[(v >> 18) & 63];
    out[o++] = b64url_alphabet[(v >> 12) & 63];
    out[o++] = b64url_alphabet[(v >> 6) & 63];
  }
  return o;
}

static int b64url_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

/* b64url_decode4 decodes |in_len| chars (a multiple of 4) into 3*in_len/4 bytes. */
static aln_status b64url_decode4(uint8_t *out, const char *in, size_t in_len) {
  for (size_t i = 0, o = 0; i < in_len; i += 4) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
      int d = b64url_value(in[i + k]);
      ALN_ENSURE(d >= 0, ALN_ERR_SESSION_INVALID);
      v = v << 6 | (uint32_t)d;
    }
    out[o++] = (uint8_t)(v >> 16);
    out[o++] = (uint8_t)(v >> 8);
    out[o++] = (uint8_t)v;
  }
  return ALN_OK;
}

/* session_mac_b64 writes the base64url MAC (SESSION_MAC_B64_LEN chars) of the
 * signed part of a token. */
static aln_status session_mac_b64(char out[SESSION_MAC_B64_LEN], const struct aln_secret *key,
                                  const char *signed_part) {
  uint8_t mac[SESSION_MAC_LEN];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key->p, (int)key->len, (const uint8_t *)signed_part, SESSION_SIGNED_LEN, mac, &mac_len) ==
          NULL ||
      mac_len != SESSION_MAC_LEN) {
    aln_wipe(mac, sizeof(mac));
    return ALN_ERR_CRYPTO;
  }
  (void)b64url_encode(out, mac, sizeof(mac));
  aln_wipe(mac, sizeof(mac));
  return ALN_OK;
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
  (void)b64url_encode(tok + SESSION_PREFIX_LEN, payload, sizeof(payload));
  tok[SESSION_SIGNED_LEN] = '.';
  aln_status st = session_mac_b64(tok + SESSION_SIGNED_LEN + 1, key, tok);
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
  ALN_GUARD(b64url_decode4(payload, token + SESSION_PREFIX_LEN, SESSION_PAYLOAD_B64_LEN));

  /* Comparing the re-encoded MAC as text also refuses non-canonical spellings of
   * the right MAC (stray low bits in the last character). */
  char mac[SESSION_MAC_B64_LEN];
  ALN_GUARD(session_mac_b64(mac, key, token));
  int ok = aln_ct_equal((const uint8_t *)mac, sizeof(mac), (const uint8_t *)token + SESSION_SIGNED_LEN + 1,
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
