/* Masking what the environment brought into the configuration.  One rule
 * for every place: a value of PT_SECRET_MIN bytes or more is replaced
 * wherever it occurs; a shorter one only where it stands alone between
 * double quotes (or is the whole text), as messages quote values.  Longest
 * values are tried first, so a value that contains another is masked
 * whole. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/secret.h"

typedef struct secret {
    char *value;
    size_t len;
    char *shown; /* "${NAME}" */
} secret_t;

static secret_t *secrets;
static size_t nsecrets, capsecrets;

void pt_secret_add(const char *name, const char *value)
{
    size_t len = strlen(value);
    if (!len)
        return;
    for (size_t i = 0; i < nsecrets; i++)
        if (secrets[i].len == len && memcmp(secrets[i].value, value, len) == 0)
            return; /* the same value under two names: the first name shows */
    if (nsecrets == capsecrets) {
        size_t cap = capsecrets ? capsecrets * 2 : 8;
        secret_t *v = realloc(secrets, cap * sizeof(*v));
        if (!v)
            return;
        secrets = v;
        capsecrets = cap;
    }
    secret_t s = {strdup(value), len, NULL};
    if (!s.value || asprintf(&s.shown, "${%s}", name) < 0) {
        free(s.value);
        return;
    }
    size_t at = nsecrets++;
    while (at > 0 && secrets[at - 1].len < len) { /* keep the longest first */
        secrets[at] = secrets[at - 1];
        at--;
    }
    secrets[at] = s;
}

size_t pt_secret_count(void)
{
    return nsecrets;
}

static bool masks_at(const char *in, size_t len, size_t i, const char *v, size_t vl)
{
    if (vl == 0 || vl > len - i || in[i] != v[0] || memcmp(in + i, v, vl) != 0)
        return false;
    if (vl >= PT_SECRET_MIN)
        return true;
    bool open = i == 0 || in[i - 1] == '"', close = i + vl == len || in[i + vl] == '"';
    return open && close;
}

static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o + 1 >= cap)
        return;
    if (n > cap - 1 - *o)
        n = cap - 1 - *o;
    memcpy(out + *o, s, n);
    *o += n;
}

/* One pass over in: at each byte, the first (longest) value that masks
 * there is replaced; otherwise the byte is copied. */
static size_t mask(const char *in, size_t len, const secret_t *v, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return 0;
    for (size_t i = 0; i < len && o + 1 < cap;) {
        const secret_t *hit = NULL;
        for (size_t k = 0; k < n && !hit; k++)
            if (masks_at(in, len, i, v[k].value, v[k].len))
                hit = &v[k];
        if (hit) {
            put(out, cap, &o, hit->shown, strlen(hit->shown));
            i += hit->len;
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = '\0';
    return o;
}

size_t pt_secret_mask(const char *in, size_t len, char *out, size_t cap)
{
    return mask(in, len, secrets, nsecrets, out, cap);
}

size_t pt_secret_mask_one(const char *in, size_t len, const char *value, const char *shown, char *out,
                          size_t cap)
{
    secret_t one = {(char *)value, strlen(value), (char *)shown};
    return mask(in, len, &one, 1, out, cap);
}

const char *pt_secret_masked(const char *s, char *buf, size_t size)
{
    if (!nsecrets)
        return s;
    pt_secret_mask(s, strlen(s), buf, size);
    return buf;
}
