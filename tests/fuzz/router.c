/* libFuzzer target: the router.  The input is lines: "R prio method host
 * path" adds a route, "Q method host path" looks one up.  Every lookup
 * must give the same answer from the trie and from the brute-force
 * matcher, and never crash. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/config.h"
#include "portico/http.h"
#include "portico/path.h"
#include "portico/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps a token to characters that are plain in YAML and paths. */
static void clean(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("/:*._-~%", *p))
            *w++ = *p;
    *w = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    /* at most 64 routes, each at most ~200 bytes of YAML beyond its text */
    size_t cap = size * 2 + 64 * 256 + 256;
    char *text = malloc(size + 1), *yaml = malloc(cap);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = (size_t)snprintf(yaml, cap, "listeners: [{ address: 127.0.0.1:1 }]\nroutes:\n");
    int nroutes = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char kind, method[16], host[64], path[128];
        int prio;
        if (sscanf(line, "%c %d %15s %63s %127s", &kind, &prio, method, host, path) == 5 && kind == 'R') {
            clean(host);
            clean(path);
            for (char *q = method; *q; q++)
                if (*q < 'A' || *q > 'Z')
                    *q = 'X';
            if (path[0] != '/' || nroutes >= 64)
                continue;
            char match[512];
            int ml = snprintf(match, sizeof(match), "paths: [\"%s\"]", path);
            if (strcmp(method, "X") != 0)
                ml += snprintf(match + ml, sizeof(match) - (size_t)ml, ", methods: [%s]", method);
            if (host[0] && strcmp(host, "-") != 0)
                snprintf(match + ml, sizeof(match) - (size_t)ml, ", hosts: [\"%s\"]", host);
            int w = snprintf(yaml + len, cap - len, "  - { name: r%d, priority: %d, match: { %s }, respond: {} }\n",
                             nroutes++, prio % 5, match);
            if (w < 0 || (size_t)w >= cap - len)
                break;
            len += (size_t)w;
        }
    }
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("fuzz.yaml", yaml, len, &d);
    if (c) {
        pt_router_t *r = pt_router_build(c);
        PT_ASSERT(r != NULL);
        memcpy(text, data, size);
        text[size] = '\0';
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char kind, method[16], host[64], path[256];
            if (sscanf(line, "%c %15s %63s %255s", &kind, method, host, path) != 4 || kind != 'Q' || path[0] != '/')
                continue;
            char norm[260];
            long n = pt_path_normalize(pt_str_from(path), norm, (int)(size % 3));
            if (n < 0)
                continue;
            unsigned m = pt_http_method(pt_str_from(method));
            pt_route_match_t a, b;
            pt_router_lookup(r, pt_str_from(host), (pt_str_t){norm, (size_t)n}, m, NULL, &a);
            pt_router_lookup_brute(r, pt_str_from(host), (pt_str_t){norm, (size_t)n}, m, NULL, &b);
            PT_ASSERT(a.route == b.route);
            PT_ASSERT(a.allowed == b.allowed);
        }
        pt_router_free(r);
    }
    pt_config_free(c);
    pt_diag_free(&d);
    free(text);
    free(yaml);
    return 0;
}
