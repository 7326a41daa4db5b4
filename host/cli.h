/* The aileron CLI: a client of the daemon's HTTP API over its unix socket
 * (libcurl). Operator commands authenticate with the operator token read from the
 * state directory; `request` authenticates with a session token. Secrets are read
 * from a file or stdin into locked memory, never from argv, and wiped after use.
 * Exit codes: 0 success, 1 error (answer or I/O; message on stderr), 2 usage. */
#ifndef ALN_HOST_CLI_H
#define ALN_HOST_CLI_H

#include <stddef.h>

#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_CLI_SECRET_MAX (64 * 1024)
#define ALN_CLI_CA_MAX (64 * 1024)
#define ALN_CLI_RESPONSE_MAX ((size_t)64 << 20)

/* aln_cli_main runs the CLI on the whole |argv| (argv[0] is the program name):
 *   aileron [--state-dir DIR] [--socket PATH] COMMAND ...
 * and returns the exit code. Output goes to stdout, messages to stderr. */
int aln_cli_main(int argc, char **argv);

/* aln_cli_read_secret reads |fd| to end of file (or, when |one_line| is set, up to
 * and including the first newline) into a new locked secret |out|, then removes
 * exactly one trailing "\n". ALN_ERR_TOO_LARGE past |max| bytes, ALN_ERR_USAGE if
 * nothing is left, ALN_ERR_IO on a read error. Free with aln_secret_free. */
aln_status aln_cli_read_secret(struct aln_secret *out, int fd, size_t max, int one_line) ALN_WUR;

#endif
