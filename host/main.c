/* aileron: harden the process, then hand argv to the daemon or the CLI. */
#include <stdio.h>
#include <string.h>

#include "host/cli.h"
#include "host/daemon.h"
#include "proto/secmem.h"

int main(int argc, char **argv) {
  if (aln_process_harden() != ALN_OK) {
    fprintf(stderr, "aileron: cannot disable core dumps\n");
    return 1;
  }
  if (argc >= 2 && strcmp(argv[1], "daemon") == 0)
    return aln_daemon_main(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "host-key") == 0)
    return aln_daemon_host_key_main(argc - 1, argv + 1);
  return aln_cli_main(argc, argv);
}
