/* Putting strip_prefix back into Location and Content-Location (see
 * location.h).  Only responses of routes that strip a prefix come here:
 * the proxy asks for it per request, so a route without strip_prefix
 * pays nothing. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "portico/location.h"
#include "portico/schema.h"

int pt_location_compile(pt_conf_ctx_t *cc, pt_route_conf_t *r)
{
    r->location = NULL;
    if (!r->strip_prefix || !r->rewrite_location || !r->up)
        return 0;
    size_t n = strlen(r->strip_prefix);
    while (n && r->strip_prefix[n - 1] == '/')
        n--;
    if (!n)
        return 0; /* strip_prefix: / strips nothing */
    pt_location_t *l = pt_arena_zalloc(cc->arena, sizeof(*l));
    size_t nt = r->up->targets.n;
    pt_str_t *own = pt_arena_zalloc(cc->arena, (nt ? nt : 1) * sizeof(pt_str_t));
    if (!l || !own)
        return -1;
    l->prefix = (pt_str_t){r->strip_prefix, n};
    for (size_t i = 0; i < nt; i++) {
        const char *a = PT_LIST_AT(r->up->targets, pt_target_conf_t, i)->address;
        if (a)
            own[l->nown++] = pt_str_from(a);
    }
    l->own = own;
    r->location = l;
    return 0;
}

/* "host:port" and "host" name the same authority when port is the
 * scheme's default. */
static bool with_default_port(pt_str_t full, pt_str_t bare, unsigned port)
{
    char p[8];
    int n = snprintf(p, sizeof(p), ":%u", port);
    return port && full.n == bare.n + (size_t)n && memcmp(full.p + bare.n, p, (size_t)n) == 0 &&
           strncasecmp(full.p, bare.p, bare.n) == 0;
}

static bool same_authority(pt_str_t a, pt_str_t b, unsigned port)
{
    return b.n && (pt_str_caseeq(a, b) || with_default_port(a, b, port) || with_default_port(b, a, port));
}

bool pt_location_rewrite(const pt_location_ctx_t *lc, pt_str_t v, pt_str_t *keep)
{
    if (v.n && v.p[0] == '/' && (v.n == 1 || v.p[1] != '/')) {
        *keep = v; /* an absolute path: the upstream's own */
        return true;
    }
    unsigned port;
    size_t skip;
    if (v.n >= 7 && strncasecmp(v.p, "http://", 7) == 0)
        port = 80, skip = 7;
    else if (v.n >= 8 && strncasecmp(v.p, "https://", 8) == 0)
        port = 443, skip = 8;
    else if (v.n >= 2 && v.p[0] == '/' && v.p[1] == '/')
        port = 0, skip = 2; /* //authority/path: the client's own scheme */
    else
        return false;
    pt_str_t auth = {v.p + skip, 0};
    while (skip + auth.n < v.n && v.p[skip + auth.n] != '/' && v.p[skip + auth.n] != '?' &&
           v.p[skip + auth.n] != '#')
        auth.n++;
    pt_str_t rest = {auth.p + auth.n, v.n - skip - auth.n};
    /* user:password@host: the host is what follows the last '@' (and the
     * credentials never reach the client either) */
    for (size_t i = auth.n; i > 0; i--)
        if (auth.p[i - 1] == '@') {
            auth.p += i;
            auth.n -= i;
            break;
        }
    bool own = same_authority(auth, lc->host, port);
    for (size_t i = 0; !own && i < lc->loc->nown; i++)
        own = same_authority(auth, lc->loc->own[i], port);
    if (!own)
        return false;
    /* "http://host?q" and "http://host#f" are the upstream's "/?q": the
     * prefix then stands for its root, as "/api" is cut to "/" */
    *keep = rest.n ? rest : PT_STR("/");
    return true;
}

bool pt_location_field(const pt_h1_header_t *f, const void *arg, pt_str_t *keep)
{
    if (!PT_STR_IEQ(f->name, "location") && !PT_STR_IEQ(f->name, "content-location"))
        return false;
    return pt_location_rewrite(arg, f->value, keep);
}
