/* Daemon start-up: the state directory and the files in it (operator token,
 * session key, host key and certificate), and `aileron daemon` / `aileron
 * host-key`. The daemon keeps no other state: everything it serves comes from the
 * enclave or from these files.
 *
 * State directory (0700; --state-dir, else $AILERON_HOME, else ~/.aileron):
 *   operator.token  64 lowercase hex chars (32 random bytes), 0600
 *   session.key     32 random bytes, 0600 (share it between host replicas)
 *   host.key        ECDSA P-256 private key, PEM, 0600
 *   host.crt        self-signed certificate for host.key, CN "aileron-host", 10 years
 *   host.spki       hex SHA-256 of the certificate's SubjectPublicKeyInfo, newline;
 *                   the enclave enrolls hosts by this value
 *   host.lock       serialises first-start creation of the host identity
 *   aileron.sock    the API socket, 0600 (default; --socket) */
#ifndef ALN_HOST_DAEMON_H
#define ALN_HOST_DAEMON_H

#include <limits.h>
#include <stddef.h>

#include "proto/secmem.h"
#include "proto/status.h"

#define ALN_DAEMON_SPKI_HEX_LEN 64

struct aln_daemon_paths {
  char state_dir[PATH_MAX];
  char operator_token[PATH_MAX];
  char session_key[PATH_MAX];
  char host_key[PATH_MAX];
  char host_crt[PATH_MAX];
  char host_spki[PATH_MAX];
  char socket[PATH_MAX];
};

/* aln_daemon_paths_init fills |out| from |state_dir| (NULL: $AILERON_HOME, else
 * $HOME/.aileron) and |socket| (NULL: STATE/aileron.sock). Creates nothing.
 * ALN_ERR_USAGE if no directory can be determined or a path is too long. */
aln_status aln_daemon_paths_init(struct aln_daemon_paths *out, const char *state_dir, const char *socket) ALN_WUR;

/* aln_daemon_operator_token_load reads the operator token at |path| into |out|
 * (ALN_API_OPERATOR_TOKEN_LEN bytes; one trailing newline is tolerated). When
 * |create| is set and the file does not exist, a new token is made first.
 * ALN_ERR_STORE if the file does not hold a well-formed token, ALN_ERR_PERMS if it
 * is readable by others. */
aln_status aln_daemon_operator_token_load(struct aln_secret *out, const char *path, int create) ALN_WUR;

/* aln_daemon_host_key_ensure makes host.key and host.crt in the state directory of
 * |paths| unless present (a present certificate must match the key), writes
 * host.spki, and returns the SPKI hash in |spki_hex| (ALN_DAEMON_SPKI_HEX_LEN
 * chars and a NUL). */
aln_status aln_daemon_host_key_ensure(char spki_hex[ALN_DAEMON_SPKI_HEX_LEN + 1],
                                      const struct aln_daemon_paths *paths) ALN_WUR;

/* aln_daemon_main runs `aileron daemon` with the arguments after the word
 * "daemon" (argv[0] is "daemon"); returns the process exit code: 0 after a clean
 * shutdown on SIGINT/SIGTERM, 1 on a start-up failure, 2 on a usage error. */
int aln_daemon_main(int argc, char **argv);

/* aln_daemon_host_key_main runs `aileron host-key [--state-dir DIR]`: ensures the
 * host key and prints the certificate path on line 1 and the SPKI hex on line 2.
 * Returns the exit code. */
int aln_daemon_host_key_main(int argc, char **argv);

#endif
