/* TCP endpoints (see net.h). */
#include "proto/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

aln_status aln_net_parse_hostport(char *host, size_t host_cap, int *port, const char *s, int allow_zero) {
  ALN_ENSURE(s != NULL && host_cap > 0, ALN_ERR_USAGE);
  const char *h = s, *colon;
  size_t hlen;
  if (*s == '[') {
    const char *end = strchr(s, ']');
    ALN_ENSURE(end != NULL && end[1] == ':', ALN_ERR_USAGE);
    h = s + 1;
    hlen = (size_t)(end - h);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    ALN_ENSURE(colon != NULL && memchr(s, ':', (size_t)(colon - s)) == NULL, ALN_ERR_USAGE);
    hlen = (size_t)(colon - s);
  }
  ALN_ENSURE(hlen > 0 && hlen < host_cap, ALN_ERR_USAGE);
  const char *p = colon + 1;
  ALN_ENSURE(*p != '\0' && strlen(p) <= 5, ALN_ERR_USAGE);
  long v = 0;
  for (; *p; p++) {
    ALN_ENSURE(*p >= '0' && *p <= '9', ALN_ERR_USAGE);
    v = v * 10 + (*p - '0');
  }
  ALN_ENSURE(v <= 65535 && (v > 0 || allow_zero), ALN_ERR_USAGE);
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (int)v;
  return ALN_OK;
}

static aln_status resolve(struct addrinfo **out, const char *addr, int passive) {
  char host[256], portstr[8];
  int port = 0;
  ALN_GUARD(aln_net_parse_hostport(host, sizeof(host), &port, addr, passive));
  snprintf(portstr, sizeof(portstr), "%d", port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
  hints.ai_flags |= AI_NUMERICSERV;
  ALN_ENSURE(getaddrinfo(host, portstr, &hints, out) == 0, ALN_ERR_USAGE);
  return ALN_OK;
}

aln_status aln_net_listen(int *out_fd, int *out_port, const char *addr) {
  struct addrinfo *ai = NULL;
  ALN_GUARD(resolve(&ai, addr, 1));
  aln_status st = ALN_ERR_IO;
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0)
    goto out;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0)
    goto out;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
    goto out;
  *out_port =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
  *out_fd = fd;
  fd = -1;
  st = ALN_OK;
out:
  if (fd >= 0)
    close(fd);
  freeaddrinfo(ai);
  return st;
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return -1;
  int rc = connect(fd, sa, len);
  if (rc != 0 && errno == EINPROGRESS) {
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    rc = poll(&pfd, 1, timeout_ms) == 1 ? 0 : -1;
    int err = 0;
    socklen_t el = sizeof(err);
    if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0))
      rc = -1;
  }
  if (fcntl(fd, F_SETFL, flags) != 0)
    return -1;
  return rc;
}

aln_status aln_net_connect(int *out_fd, const char *addr, int timeout_ms, int io_timeout_s) {
  struct addrinfo *ai = NULL;
  ALN_GUARD(resolve(&ai, addr, 0));
  int fd = -1;
  for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0)
      continue;
    if (connect_timeout(fd, a->ai_addr, a->ai_addrlen, timeout_ms) == 0)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  ALN_ENSURE(fd >= 0, ALN_ERR_UNAVAILABLE);
  struct timeval tv = {.tv_sec = io_timeout_s};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  *out_fd = fd;
  return ALN_OK;
}

int aln_net_is_loopback_addr(const char *addr) {
  char host[256];
  int port;
  if (aln_net_parse_hostport(host, sizeof(host), &port, addr, 1) != ALN_OK)
    return 0;
  if (strcmp(host, "localhost") == 0)
    return 1;
  /* Numeric addresses only: anything else would go to the resolver. */
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}
