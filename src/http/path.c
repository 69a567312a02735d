#include "config.h"

#include "portico/path.h"

static int unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

long pt_path_normalize(pt_str_t path, char *out, int slashes)
{
    size_t o = 0;
    /* Pass 1: decode unreserved escapes, checking every escape. */
    for (size_t i = 0; i < path.n; i++) {
        char c = path.p[i];
        if (c == '%') {
            if (i + 2 >= path.n)
                return -1; /* a truncated escape */
            int h = pt_hexval(path.p[i + 1]), l = pt_hexval(path.p[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            int v = h * 16 + l;
            if (v == 0)
                return -1;
            if ((v == '/' || v == '\\') && slashes != PT_SLASHES_KEEP) {
                if (slashes == PT_SLASHES_REJECT)
                    return -1;
                out[o++] = '/'; /* decoded %5C too: an upstream may take a backslash for a slash */
            } else if (unreserved(v)) {
                out[o++] = (char)v;
            } else {
                out[o++] = '%';
                out[o++] = "0123456789ABCDEF"[h];
                out[o++] = "0123456789ABCDEF"[l];
            }
            i += 2;
        } else if (c == '\\' && slashes != PT_SLASHES_KEEP) {
            /* a raw backslash is no path character (RFC 3986), and some
             * upstreams take it for a slash: treated as %5C */
            if (slashes == PT_SLASHES_REJECT)
                return -1;
            out[o++] = '/';
        } else {
            out[o++] = c;
        }
    }
    /* Pass 2: remove "." and ".." segments in place (out[0] is '/'). */
    size_t r = 0, w = 0, n = o;
    while (r < n) {
        /* out[r] is '/': look at the segment after it */
        size_t s = r + 1, e = s;
        while (e < n && out[e] != '/')
            e++;
        size_t len = e - s;
        if (len == 1 && out[s] == '.') {
            if (e == n)
                out[w++] = '/'; /* "/a/." is "/a/" */
        } else if (len == 2 && out[s] == '.' && out[s + 1] == '.') {
            if (w == 0)
                return -1; /* above the root */
            while (w > 0 && out[w - 1] != '/')
                w--;
            if (w > 0)
                w--; /* drop the last segment and its slash */
            if (e == n)
                out[w++] = '/';
        } else {
            for (size_t k = r; k < e; k++)
                out[w++] = out[k];
        }
        r = e;
    }
    if (w == 0)
        out[w++] = '/';
    return (long)w;
}
