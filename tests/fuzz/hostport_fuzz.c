/* fuzz-links: aln_proto */
/* host:port parser and loopback predicate fuzz target. The input, cut at its first
 * NUL, is parsed with both allow_zero values into heap buffers of exactly the
 * capacity passed (so ASan sees any write past it). An accepted address must give a
 * non-empty host NUL-terminated within the capacity, a port in range, the same
 * answer for both allow_zero values when the port is not 0, and reparse to itself
 * from its canonical form. Whatever the predicate calls loopback must be "localhost"
 * or a numeric (no DNS) address whose every result is loopback. */
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proto/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parse(const char *in, size_t cap, int allow_zero, char **out_host, int *out_port) {
  char *host = malloc(cap);
  if (host == NULL)
    abort();
  memset(host, 0x5a, cap);
  int port = -1;
  aln_status st = aln_net_parse_hostport(host, cap, &port, in, allow_zero);
  if (st != ALN_OK) {
    if (st != ALN_ERR_USAGE || port != -1)
      abort();
    free(host);
    *out_host = NULL;
    return;
  }
  if (memchr(host, '\0', cap) == NULL || host[0] == '\0')
    abort();
  if (port < (allow_zero ? 0 : 1) || port > 65535)
    abort();
  if (strstr(in, host) == NULL) /* the host is copied from the input, never made up */
    abort();
  *out_host = host;
  *out_port = port;
}

static void check_canonical(const char *host, int port) {
  /* bracket what would otherwise read as a v6 address or an opening bracket */
  char buf[300], again[256];
  int bracket = strchr(host, ':') != NULL || host[0] == '[';
  int n = snprintf(buf, sizeof(buf), bracket ? "[%s]:%d" : "%s:%d", host, port);
  if (n < 0 || (size_t)n >= sizeof(buf))
    abort();
  int port2 = -1;
  if (aln_net_parse_hostport(again, sizeof(again), &port2, buf, 1) != ALN_OK || strcmp(again, host) != 0 ||
      port2 != port)
    abort();
}

static int numeric_loopback(const char *host) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai = NULL;
  if (getaddrinfo(host, NULL, &hints, &ai) != 0)
    return 0;
  int ok = 1;
  for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
    if (a->ai_family == AF_INET)
      ok &= (ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24) == 127;
    else if (a->ai_family == AF_INET6)
      ok &= IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
    else
      ok = 0;
  }
  freeaddrinfo(ai);
  return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *in = malloc(size + 1);
  if (in == NULL)
    abort();
  memcpy(in, data, size);
  in[size] = '\0';

  static const size_t caps[] = {1, 8, 256};
  for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
    char *h0 = NULL, *h1 = NULL;
    int p0 = -1, p1 = -1;
    check_parse(in, caps[i], 0, &h0, &p0);
    check_parse(in, caps[i], 1, &h1, &p1);
    /* allow_zero only widens the port range */
    if (h0 != NULL && (h1 == NULL || strcmp(h0, h1) != 0 || p0 != p1))
      abort();
    if (h1 != NULL && p1 != 0 && h0 == NULL)
      abort();
    if (h1 != NULL && caps[i] == 256)
      check_canonical(h1, p1);
    free(h0);
    free(h1);
  }

  int lb = aln_net_is_loopback_addr(in);
  if (lb != 0 && lb != 1)
    abort();
  if (lb == 1) {
    char host[256];
    int port = -1;
    if (aln_net_parse_hostport(host, sizeof(host), &port, in, 1) != ALN_OK)
      abort();
    if (strcmp(host, "localhost") != 0 && !numeric_loopback(host))
      abort();
  }
  free(in);
  return 0;
}
