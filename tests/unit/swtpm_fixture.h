/* A software TPM for the unit tests that need a real one: swtpm on two free
 * loopback ports (server and control), its state in a directory the test owns.
 * A test that cannot start it fails rather than skips: a skipped test proves
 * nothing. Header-only: each test binary is one translation unit. */
#ifndef ALN_TESTS_UNIT_SWTPM_FIXTURE_H
#define ALN_TESTS_UNIT_SWTPM_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* aln_test_port_try binds (|connect| 0) or connects (1) to loopback |port|; 1 if it worked. */
static inline int aln_test_port_try(int port, int connect_to) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = s >= 0 &&
           (connect_to ? connect(s, (struct sockaddr *)&a, sizeof(a)) : bind(s, (struct sockaddr *)&a, sizeof(a))) == 0;
  if (s >= 0)
    close(s);
  return ok;
}

/* aln_test_two_free_ports returns a port p such that p and p + 1 are free, or -1. */
static inline int aln_test_two_free_ports(void) {
  for (int i = 0; i < 200; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(s, (struct sockaddr *)&a, &len) != 0) {
      if (s >= 0)
        close(s);
      continue;
    }
    int p = ntohs(a.sin_port);
    close(s);
    if (p < 65535 && aln_test_port_try(p, 0) && aln_test_port_try(p + 1, 0))
      return p;
  }
  return -1;
}

/* aln_test_swtpm_spawn starts swtpm with its state in |state_dir| on |port| (and the
 * control channel on |port| + 1) and waits up to 10 s for it to listen. Returns its
 * pid, or -1 (|who| names the test in the message). */
static inline pid_t aln_test_swtpm_spawn(const char *state_dir, int port, const char *who) {
  char state[600], server[64], ctrl[64];
  snprintf(state, sizeof(state), "dir=%.512s", state_dir);
  snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", port);
  snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", port + 1);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    execlp("swtpm", "swtpm", "socket", "--tpm2", "--tpmstate", state, "--server", server, "--ctrl", ctrl, "--flags",
           "not-need-init,startup-clear", (char *)NULL);
    fprintf(stderr, "%s: cannot run swtpm (%s): run deploy/local/install-deps\n", who, strerror(errno));
    _exit(127);
  }
  for (int i = 0; i < 200 && !aln_test_port_try(port, 1); i++) {
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return -1; /* swtpm missing or failed */
    nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
  }
  if (!aln_test_port_try(port, 1)) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return pid;
}

#endif
