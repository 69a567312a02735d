/* Request path normalisation before routing (RFC 3986 6.2.2): percent-
 * encoded unreserved characters are decoded, other escapes are kept as
 * they are (so %2F never becomes a separator), and dot-segments are
 * removed.  The original target is what goes upstream. */
#ifndef PORTICO_PATH_H
#define PORTICO_PATH_H

#include <stddef.h>

#include "portico/str.h"

/* Writes the normal form of path (which starts with '/') into out, which
 * has room for at least path.n bytes.  Returns its length, or -1 when the
 * path is invalid: a malformed %-escape, an encoded NUL, or ".." climbing
 * above the root (answer 400). */
long pt_path_normalize(pt_str_t path, char *out);

#endif
