/* Status table expansion: the message, name and HTTP mapping of every aln_status.
 * Each lookup is a switch generated from ALN_STATUS_TABLE, so two entries with the
 * same code are a compile error (duplicate case value), not a silent shadowing. */
#include "proto/status.h"

const char *aln_strerror(aln_status st) {
  switch ((uint32_t)st) {
#define ALN_STATUS_MSG_(name, cat, num, msg)                                                                           \
  case name:                                                                                                           \
    return msg;
    ALN_STATUS_TABLE(ALN_STATUS_MSG_)
#undef ALN_STATUS_MSG_
  }
  return "unknown status";
}

const char *aln_status_name(aln_status st) {
  switch ((uint32_t)st) {
#define ALN_STATUS_NAME_(name, cat, num, msg)                                                                          \
  case name:                                                                                                           \
    return #name;
    ALN_STATUS_TABLE(ALN_STATUS_NAME_)
#undef ALN_STATUS_NAME_
  }
  return "ALN_UNKNOWN";
}

int aln_status_is_known(uint32_t code) {
  switch (code) {
#define ALN_STATUS_KNOWN_(name, cat, num, msg) case name:
    ALN_STATUS_TABLE(ALN_STATUS_KNOWN_)
#undef ALN_STATUS_KNOWN_
    return 1;
  }
  return 0;
}

int aln_status_http(aln_status st) {
  /* A code outside the table (a bug, or a peer speaking a newer protocol) is never
   * reported as success or blamed on the caller. */
  if (!aln_status_is_known((uint32_t)st))
    return 500;
  switch (aln_status_category(st)) {
  case ALN_CAT_OK:
    return 200;
  case ALN_CAT_USAGE:
    return 400;
  case ALN_CAT_AUTH:
    return 401;
  case ALN_CAT_DENIED:
    return 403;
  case ALN_CAT_NOT_FOUND:
    return 404;
  case ALN_CAT_CONFLICT:
    return 409;
  case ALN_CAT_PROTO:
  case ALN_CAT_ATTEST:
  case ALN_CAT_IO:
    /* The enclave being down is a retryable condition, not a bad gateway; its
     * storage being full is 507 Insufficient Storage (RFC 4918), for the operator. */
    if (st == ALN_ERR_UNAVAILABLE)
      return 503;
    return st == ALN_ERR_DISK_FULL ? 507 : 502;
  default:
    return 500;
  }
}
