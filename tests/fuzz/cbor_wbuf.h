/* A bounded byte writer with CBOR byte-string heads, for fuzz targets that wrap
 * their input in a COSE structure. Header-only (each target is one translation
 * unit): define ALN_FUZZ_WBUF_CAP, the buffer's size, before including it. */
#ifndef ALN_TESTS_FUZZ_CBOR_WBUF_H
#define ALN_TESTS_FUZZ_CBOR_WBUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef ALN_FUZZ_WBUF_CAP
#error "define ALN_FUZZ_WBUF_CAP before including cbor_wbuf.h"
#endif

struct wbuf {
  uint8_t b[ALN_FUZZ_WBUF_CAP];
  size_t len;
};

static inline void put(struct wbuf *w, const uint8_t *p, size_t n) {
  if (n > sizeof(w->b) - w->len)
    abort(); /* callers bound their input first */
  memcpy(w->b + w->len, p, n);
  w->len += n;
}

/* put_bstr writes |n| (< 65536) bytes at |p| as a CBOR byte string. */
static inline void put_bstr(struct wbuf *w, const uint8_t *p, size_t n) {
  uint8_t h[3] = {0x59, (uint8_t)(n >> 8), (uint8_t)n};
  if (n > 0xffff)
    abort();
  if (n < 24) {
    h[0] = (uint8_t)(0x40 | n);
    put(w, h, 1);
  } else if (n < 256) {
    h[0] = 0x58;
    h[1] = (uint8_t)n;
    put(w, h, 2);
  } else {
    put(w, h, 3);
  }
  put(w, p, n);
}

#endif
