/* fuzz-links: aln_host
 * Session token verifier on arbitrary bytes, plus an issue/verify round trip
 * driven by the input. Properties: verification only ever answers OK, INVALID or
 * EXPIRED; OK implies the exact token shape; a token this code issues verifies
 * until its expiry and is expired exactly at it. The seed corpus holds tokens
 * signed with the key below, so mutations reach the MAC and expiry checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/session.h"

#define FUZZ_NOW ((int64_t)1700000000)

static const uint8_t fuzz_key[ALN_SESSION_KEY_LEN] = {0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                                      0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                                      0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct aln_secret key = {.p = (uint8_t *)fuzz_key, .len = sizeof(fuzz_key)};
  struct aln_session s;
  aln_status st = aln_session_verify(&s, &key, (const char *)data, size, FUZZ_NOW);
  if (st != ALN_OK && st != ALN_ERR_SESSION_INVALID && st != ALN_ERR_SESSION_EXPIRED)
    abort();
  if (st == ALN_OK && (size != 81 || memcmp(data, "aln1.", 5) != 0 || strlen(s.id) != 32 || s.expires_at <= FUZZ_NOW))
    abort();

  /* Round trip with a ttl taken from the input. */
  if (size >= 4) {
    uint32_t v = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
    int64_t ttl = (int64_t)(v % (ALN_SESSION_TTL_MAX + 2)); /* 0 and TTL_MAX+1 are refused */
    char tok[ALN_SESSION_TOKEN_MAX];
    struct aln_session issued, got;
    st = aln_session_issue(tok, sizeof(tok), &issued, &key, FUZZ_NOW, ttl);
    if ((ttl >= 1 && ttl <= ALN_SESSION_TTL_MAX) != (st == ALN_OK))
      abort();
    if (st == ALN_OK) {
      if (aln_session_verify(&got, &key, tok, strlen(tok), FUZZ_NOW + ttl - 1) != ALN_OK ||
          strcmp(got.id, issued.id) != 0 || got.expires_at != FUZZ_NOW + ttl)
        abort();
      if (aln_session_verify(&got, &key, tok, strlen(tok), FUZZ_NOW + ttl) != ALN_ERR_SESSION_EXPIRED)
        abort();
    }
  }
  return 0;
}
