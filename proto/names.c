/* Credential names (see names.h). Names are public identifiers, so plain
 * comparisons are fine here. */
#include "proto/names.h"

#include <string.h>

int aln_cred_name_valid(const char *name, size_t len) {
  if (name == NULL || len < 1 || len > ALN_NAME_MAX || name[0] == '.' || name[0] == '-')
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return 0;
  }
  return 1;
}

int aln_cred_name_valid_str(const char *name) {
  /* One byte past the maximum is enough to see that a name is too long. */
  return name != NULL && aln_cred_name_valid(name, strnlen(name, ALN_NAME_MAX + 1));
}
