/* Request path normalisation (RFC 3986 6.2.2): percent-encoded unreserved
 * characters are decoded, other escapes are kept (in upper case), and
 * dot-segments are removed.  An encoded slash or backslash (%2F, %5C) is
 * refused, decoded to a separator, or kept, as the listener's
 * escaped_slashes says.  Routing and forwarding both use this form, so the
 * upstream never gets a path that resolves outside the route matched. */
#ifndef PORTICO_PATH_H
#define PORTICO_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "portico/config-t.h"
#include "portico/str.h"

/* Writes the normal form of path (which starts with '/') into out, which
 * has room for at least path.n + 1 bytes; slashes is a pt_slashes_t.
 * Returns its length, or -1 when the path is invalid: a malformed
 * %-escape, an encoded NUL, ".." climbing above the root, or %2F/%5C (or
 * a raw backslash, taken as %5C) under PT_SLASHES_REJECT (answer 400). */
long pt_path_normalize(pt_str_t path, char *out, int slashes);
/* The escaped_slashes of a listener's configuration (NULL: the default). */
static inline int pt_path_slashes(const pt_listener_conf_t *lc)
{
    return lc ? lc->escaped_slashes : PT_SLASHES_REJECT;
}
/* Is path already in normal form (no escape, no "/.", no backslash)?  The
 * common case, which needs no copy. */
static inline bool pt_path_is_plain(pt_str_t path)
{
    return !path.n || (!memchr(path.p, '%', path.n) && !memmem(path.p, path.n, "/.", 2) && !memchr(path.p, '\\', path.n));
}

#endif
