/* TCP endpoints for the attested channel: address parsing, listening, connecting
 * with a timeout. Shared by the enclave (listens) and the host (connects). */
#ifndef ALN_PROTO_NET_H
#define ALN_PROTO_NET_H

#include <stddef.h>

#include "proto/status.h"

/* aln_net_parse_hostport splits "host:port" or "[v6addr]:port" into |host| (capacity
 * |host_cap|, NUL-terminated) and *port (1..65535, or 0 when |allow_zero|).
 * ALN_ERR_USAGE if malformed. */
aln_status aln_net_parse_hostport(char *host, size_t host_cap, int *port, const char *s, int allow_zero) ALN_WUR;

/* aln_net_listen binds and listens on |addr| ("host:port", port 0 = any) with
 * SO_REUSEADDR and close-on-exec; *out_fd receives the socket, *out_port the bound
 * port. ALN_ERR_USAGE if |addr| is malformed or does not resolve, ALN_ERR_IO if it
 * cannot bind or listen. */
aln_status aln_net_listen(int *out_fd, int *out_port, const char *addr) ALN_WUR;

/* aln_net_connect connects to |addr| within |timeout_ms| and sets receive/send
 * timeouts of |io_timeout_s| seconds on the socket. ALN_ERR_USAGE if |addr| is
 * malformed or does not resolve, ALN_ERR_UNAVAILABLE if no address answers. */
aln_status aln_net_connect(int *out_fd, const char *addr, int timeout_ms, int io_timeout_s) ALN_WUR;

/* aln_net_is_loopback_addr returns 1 if |addr| ("host:port") names a loopback
 * address: a numeric address in 127.0.0.0/8, ::1, or "localhost"; else 0. */
int aln_net_is_loopback_addr(const char *addr);

#endif
