/* Tests for proto/net: the host:port grammar (every boundary of the port, brackets,
 * host capacity, outputs untouched on refusal), the loopback predicate the host's
 * --listen check relies on (including names that only look numeric), and real
 * sockets: listen on port 0, connect to it, refused and unanswered connects fail
 * within the timeout, and the socket options the header promises are set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "proto/net.h"

struct hp_case {
  const char *in;
  int allow_zero;
  size_t cap;
  aln_status want;
  const char *host; /* expected host on ALN_OK */
  int port;
};

#define OK_(in, az, host, port)                                                                                        \
  { in, az, 256, ALN_OK, host, port }
#define NO_(in, az)                                                                                                    \
  { in, az, 256, ALN_ERR_USAGE, NULL, 0 }

static const struct hp_case hp_cases[] = {
    OK_("127.0.0.1:80", 0, "127.0.0.1", 80),
    OK_("[::1]:443", 0, "::1", 443), /* brackets are not part of the host */
    OK_("localhost:1", 0, "localhost", 1),
    OK_("localhost:65535", 0, "localhost", 65535),
    OK_("localhost:0", 1, "localhost", 0),
    NO_("localhost:0", 0),
    NO_("localhost:65536", 0),
    NO_("localhost:65536", 1),
    NO_("localhost:99999", 1),
    /* Leading zeros: at most 5 digits, read as decimal by the parser itself (never
     * as octal), so "00080" is unambiguously 80 and "000080" is refused on length. */
    OK_("host:00080", 0, "host", 80),
    OK_("host:00000", 1, "host", 0),
    NO_("host:00000", 0),
    NO_("host:000080", 0),
    NO_("host:123456", 0),
    /* the port is digits only: no sign, space, hex or letters */
    NO_("host:+80", 0),
    NO_("host:-1", 1),
    NO_("host: 80", 0),
    NO_("host:80 ", 0),
    NO_("host:8a", 0),
    NO_("host:0x50", 0),
    NO_("host:80\n", 0),
    /* missing pieces */
    NO_("host:", 0),
    NO_(":80", 0),
    NO_("host", 0),
    NO_("", 1),
    NO_(":", 1),
    NO_("[]:80", 0),
    /* IPv6 must be bracketed; the bracket must be closed and followed by ':' */
    NO_("::1:80", 0),
    NO_("::1", 0),
    NO_("a:b:80", 0),
    NO_("[::1]80", 0),
    NO_("[::1", 0),
    NO_("[::1]", 0),
    NO_("[::1]:", 0),
    NO_("[::1]:80:", 0),
    NO_("[a]b]:80", 0),
    OK_("[fe80::1%lo]:8080", 0, "fe80::1%lo", 8080),
};

static void test_parse_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(hp_cases) / sizeof(hp_cases[0]); i++) {
    const struct hp_case *c = &hp_cases[i];
    char host[256];
    memset(host, 'X', sizeof(host));
    int port = -7;
    aln_status st = aln_net_parse_hostport(host, c->cap, &port, c->in, c->allow_zero);
    if (st != c->want)
      fail_msg("\"%s\" allow_zero=%d: got %s want %s", c->in, c->allow_zero, aln_status_name(st),
               aln_status_name(c->want));
    if (st == ALN_OK) {
      assert_string_equal(host, c->host);
      assert_int_equal(port, c->port);
    } else {
      /* a refusal writes nothing */
      assert_int_equal(port, -7);
      assert_int_equal(host[0], 'X');
    }
  }
}

static void test_parse_host_cap(void **state) {
  (void)state;
  char host[16];
  int port = 0;
  /* "abcd" needs 5 bytes with its NUL */
  assert_int_equal(aln_net_parse_hostport(host, 5, &port, "abcd:80", 0), ALN_OK);
  assert_string_equal(host, "abcd");
  memset(host, 'X', sizeof(host));
  assert_int_equal(aln_net_parse_hostport(host, 4, &port, "abcd:80", 0), ALN_ERR_USAGE);
  assert_int_equal(host[0], 'X');
  assert_int_equal(aln_net_parse_hostport(host, 4, &port, "[::1]:80", 0), ALN_OK);
  assert_string_equal(host, "::1");
  assert_int_equal(aln_net_parse_hostport(host, 3, &port, "[::1]:80", 0), ALN_ERR_USAGE);
  assert_int_equal(aln_net_parse_hostport(host, 1, &port, "a:80", 0), ALN_ERR_USAGE);
  assert_int_equal(aln_net_parse_hostport(host, 0, &port, "a:80", 0), ALN_ERR_USAGE);
  /* a long host against the 256-byte buffer the library uses internally */
  char big[300], out[256];
  memset(big, 'a', 255);
  strcpy(big + 255, ":80");
  assert_int_equal(aln_net_parse_hostport(out, sizeof(out), &port, big, 0), ALN_OK);
  assert_int_equal(strlen(out), 255);
  memset(big, 'a', 256);
  strcpy(big + 256, ":80");
  assert_int_equal(aln_net_parse_hostport(out, sizeof(out), &port, big, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_net_is_loopback_addr(big), 0);
}

static void test_parse_null(void **state) {
  (void)state;
  char host[16];
  int port = -7;
  assert_int_equal(aln_net_parse_hostport(host, sizeof(host), &port, NULL, 1), ALN_ERR_USAGE);
  assert_int_equal(port, -7);
}

static void test_loopback_table(void **state) {
  (void)state;
  static const char *const yes[] = {"127.0.0.1:80",   "127.1.2.3:80", "127.255.255.255:1", "[::1]:443",
                                    "localhost:8080", "127.0.0.1:0",  "[127.0.0.1]:80"};
  static const char *const no[] = {
      "128.0.0.1:80",
      "0.0.0.0:80",
      "127.0.0.1.evil.com:80",
      "10.0.0.1:80",
      "[::2]:80",
      "evil.com:80",
      "localhost.evil.com:80",
      "1127.0.0.1:80",
      "127:80",
      "127.0.0.1",
      "::1:80",
      "[::1]",
      "127.0.0.1:65536",
      "",
      "[::]:80",
  };
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
    if (aln_net_is_loopback_addr(yes[i]) != 1)
      fail_msg("\"%s\" should be loopback", yes[i]);
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
    if (aln_net_is_loopback_addr(no[i]) != 0)
      fail_msg("\"%s\" should not be loopback", no[i]);
  assert_int_equal(aln_net_is_loopback_addr(NULL), 0);
  /* Loopback spellings the predicate does not recognise are refused: the safe
   * direction, a caller only loses the ability to use them. */
  assert_int_equal(aln_net_is_loopback_addr("[::ffff:127.0.0.1]:80"), 0);
  assert_int_equal(aln_net_is_loopback_addr("LOCALHOST:80"), 0);
}

/* numeric_loopback returns 1 if |host| parses as a numeric address (no DNS) and
 * every address it yields is loopback. */
static int numeric_loopback(const char *host) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai = NULL;
  if (getaddrinfo(host, "80", &hints, &ai) != 0)
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

/* Every address other than "localhost" that the predicate calls loopback must be a
 * numeric loopback address. A string of digits and dots that is not a valid IPv4
 * address ("127.256.0.1", "127.0.0.1.5") is a host *name* to getaddrinfo, which
 * aln_net_listen/aln_net_connect then resolve through DNS and the resolver's search
 * domains, so it can land anywhere. */
static void test_loopback_means_numeric_loopback(void **state) {
  (void)state;
  static const char *const cases[] = {
      "127.0.0.1:80",   "127.1:80",  "127.1.2.3:80", "[::1]:80",      "127.256.0.1:80",
      "127.0.0.1.5:80", "127..1:80", "127.:80",      "127.08.0.1:80", "127.999.999.999:80",
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char host[256];
    int port;
    if (aln_net_is_loopback_addr(cases[i]) != 1)
      continue;
    assert_int_equal(aln_net_parse_hostport(host, sizeof(host), &port, cases[i], 1), ALN_OK);
    if (!numeric_loopback(host)) {
      print_error("aln_net_is_loopback_addr(\"%s\") = 1, but \"%s\" is not a numeric loopback address\n", cases[i],
                  host);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

static int fd_has_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFD);
  return fl >= 0 && (fl & FD_CLOEXEC) != 0;
}

static int sock_port(int fd, int peer) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &sl) : getsockname(fd, (struct sockaddr *)&ss, &sl);
  assert_int_equal(rc, 0);
  return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((struct sockaddr_in *)&ss)->sin_port);
}

static void listen_connect_round_trip(const char *listen_addr, const char *host) {
  int lfd = -1, port = 0;
  assert_int_equal(aln_net_listen(&lfd, &port, listen_addr), ALN_OK);
  assert_true(lfd >= 0);
  assert_true(port > 0 && port <= 65535);
  assert_int_equal(sock_port(lfd, 0), port);
  assert_true(fd_has_cloexec(lfd));
  int reuse = 0;
  socklen_t rl = sizeof(reuse);
  assert_int_equal(getsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &reuse, &rl), 0);
  assert_int_equal(reuse, 1);

  char addr[64];
  snprintf(addr, sizeof(addr), "%s:%d", host, port);
  int cfd = -1;
  assert_int_equal(aln_net_connect(&cfd, addr, 2000, 7), ALN_OK);
  assert_true(cfd >= 0);
  assert_int_equal(sock_port(cfd, 1), port);
  assert_true(fd_has_cloexec(cfd));
  struct timeval tv = {0};
  socklen_t tl = sizeof(tv);
  assert_int_equal(getsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl), 0);
  assert_int_equal(tv.tv_sec, 7);
  tl = sizeof(tv);
  memset(&tv, 0, sizeof(tv));
  assert_int_equal(getsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl), 0);
  assert_int_equal(tv.tv_sec, 7);
  int nodelay = 0;
  rl = sizeof(nodelay);
  assert_int_equal(getsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &rl), 0);
  assert_int_not_equal(nodelay, 0);
  /* the connect left the socket blocking */
  assert_int_equal(fcntl(cfd, F_GETFL) & O_NONBLOCK, 0);

  /* it really reached this listener: bytes cross */
  int afd = accept(lfd, NULL, NULL);
  assert_true(afd >= 0);
  assert_int_equal(sock_port(afd, 0), port);
  assert_int_equal(write(cfd, "ping", 4), 4);
  char buf[4];
  assert_int_equal(read(afd, buf, sizeof(buf)), 4);
  assert_memory_equal(buf, "ping", 4);
  close(afd);
  close(cfd);
  close(lfd);
}

static void test_listen_connect_v4(void **state) {
  (void)state;
  listen_connect_round_trip("127.0.0.1:0", "127.0.0.1");
}

static void test_listen_connect_v6(void **state) {
  (void)state;
  listen_connect_round_trip("[::1]:0", "[::1]");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_connect_refused_fast(void **state) {
  (void)state;
  int lfd = -1, port = 0;
  assert_int_equal(aln_net_listen(&lfd, &port, "127.0.0.1:0"), ALN_OK);
  close(lfd); /* nothing listens on |port| now */
  char addr[32];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
  int fd = -7;
  double t0 = now_s();
  assert_int_equal(aln_net_connect(&fd, addr, 5000, 1), ALN_ERR_UNAVAILABLE);
  /* a refusal is reported as such, not after waiting out the timeout */
  assert_true(now_s() - t0 < 1.0);
  assert_int_equal(fd, -7);
}

/* A listener whose accept queue is full drops SYNs, so a connect to it stays
 * pending: aln_net_connect must give up after timeout_ms. */
static void test_connect_times_out(void **state) {
  (void)state;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(lfd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(lfd, 0), 0);
  socklen_t sl = sizeof(sa);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
  int fillers[8];
  for (size_t i = 0; i < 8; i++) {
    fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fillers[i] >= 0);
    int rc = connect(fillers[i], (struct sockaddr *)&sa, sizeof(sa));
    assert_true(rc == 0 || errno == EINPROGRESS);
  }
  usleep(100 * 1000);
  char addr[32];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
  int fd = -7;
  double t0 = now_s();
  assert_int_equal(aln_net_connect(&fd, addr, 300, 1), ALN_ERR_UNAVAILABLE);
  double dt = now_s() - t0;
  assert_true(dt >= 0.25 && dt < 3.0);
  assert_int_equal(fd, -7);
  for (size_t i = 0; i < 8; i++)
    close(fillers[i]);
  close(lfd);
}

static void test_listen_refusals(void **state) {
  (void)state;
  int fd = -7, port = -7;
  /* TEST-NET-1 is on no interface here: bind fails */
  assert_int_equal(aln_net_listen(&fd, &port, "192.0.2.1:0"), ALN_ERR_IO);
  assert_int_equal(fd, -7);
  /* a port already bound (SO_REUSEADDR does not allow two listeners) */
  int lfd = -1, lport = 0;
  assert_int_equal(aln_net_listen(&lfd, &lport, "127.0.0.1:0"), ALN_OK);
  char addr[32];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", lport);
  assert_int_equal(aln_net_listen(&fd, &port, addr), ALN_ERR_IO);
  assert_int_equal(fd, -7);
  close(lfd);
  /* malformed addresses never reach the resolver */
  assert_int_equal(aln_net_listen(&fd, &port, "127.0.0.1"), ALN_ERR_USAGE);
  assert_int_equal(aln_net_listen(&fd, &port, "127.0.0.1:65536"), ALN_ERR_USAGE);
  assert_int_equal(aln_net_listen(&fd, &port, "::1:0"), ALN_ERR_USAGE);
  assert_int_equal(aln_net_listen(&fd, &port, NULL), ALN_ERR_USAGE);
  assert_int_equal(fd, -7);
  assert_int_equal(port, -7);
}

static void test_connect_refusals(void **state) {
  (void)state;
  int fd = -7;
  /* port 0 is a listening wildcard, never a destination */
  assert_int_equal(aln_net_connect(&fd, "127.0.0.1:0", 1000, 1), ALN_ERR_USAGE);
  assert_int_equal(aln_net_connect(&fd, "127.0.0.1", 1000, 1), ALN_ERR_USAGE);
  assert_int_equal(aln_net_connect(&fd, NULL, 1000, 1), ALN_ERR_USAGE);
  assert_int_equal(fd, -7);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),
      cmocka_unit_test(test_parse_host_cap),
      cmocka_unit_test(test_parse_null),
      cmocka_unit_test(test_loopback_table),
      cmocka_unit_test(test_loopback_means_numeric_loopback),
      cmocka_unit_test(test_listen_connect_v4),
      cmocka_unit_test(test_listen_connect_v6),
      cmocka_unit_test(test_connect_refused_fast),
      cmocka_unit_test(test_connect_times_out),
      cmocka_unit_test(test_listen_refusals),
      cmocka_unit_test(test_connect_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
