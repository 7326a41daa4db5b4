/* `aileron evidence verify`: offline appraisal of saved evidence, for operators,
 * for security teams checking an audit export, and for tests. It needs no daemon
 * and no network. Exit status: 0 verified, 1 refused (the reason on stderr, or in
 * the JSON with --json), 2 usage or I/O error. */
#ifndef ALN_HOST_EVIDENCE_CLI_H
#define ALN_HOST_EVIDENCE_CLI_H

#define ALN_EVIDENCE_FILE_MAX (1 << 20)

/* aln_evidence_cli_main runs `aileron evidence ARGS...`; argv[0] is "evidence". */
int aln_evidence_cli_main(int argc, char **argv);

/* aln_parse_time reads |s| as unix seconds or as an RFC 3339 UTC time
 * ("2023-09-18T14:37:09Z") into *out; 0 if it is neither. */
int aln_parse_time(long long *out, const char *s);

#endif
