#include "config.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/upstream.h"

pt_upstream_t *pt_upstreams_build(const pt_config_t *c)
{
    pt_upstream_t *v = calloc(c->upstreams.n ? c->upstreams.n : 1, sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *uc = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        pt_upstream_t *u = &v[i];
        u->conf = uc;
        u->ntargets = uc->targets.n;
        u->targets = calloc(u->ntargets, sizeof(pt_target_t));
        if (!u->targets) {
            pt_upstreams_free(v, i);
            return NULL;
        }
        for (size_t k = 0; k < u->ntargets; k++) {
            const pt_target_conf_t *tc = PT_LIST_AT(uc->targets, pt_target_conf_t, k);
            pt_target_t *t = &u->targets[k];
            t->conf = tc;
            t->weight = tc->weight;
            memcpy(&t->addr, &tc->addr.ss, sizeof(t->addr));
            t->addrlen = tc->addr.len;
            pt_addr_format((const struct sockaddr *)&t->addr, t->name, sizeof(t->name));
        }
        if (pt_balancer_init(u) < 0) {
            pt_upstreams_free(v, i + 1);
            return NULL;
        }
    }
    return v;
}

void pt_upstreams_free(pt_upstream_t *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i].ntargets; k++)
            while (v[i].targets[k].idle)
                pt_upconn_close(v[i].targets[k].idle);
        free(v[i].targets);
        free(v[i].ring);
    }
    free(v);
}

int pt_upstreams_resolve(pt_config_t *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->upstreams.n; i++) {
        pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        for (size_t k = 0; k < u->targets.n; k++) {
            pt_target_conf_t *t = PT_LIST_AT(u->targets, pt_target_conf_t, k);
            if (t->addr.len)
                continue; /* numeric */
            char host[256];
            const char *colon = strrchr(t->address, ':');
            snprintf(host, sizeof(host), "%.*s", (int)(colon - t->address), t->address);
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
            int rc = getaddrinfo(host, colon + 1, &hints, &res);
            if (rc != 0 || !res) {
                snprintf(err, errlen, "upstream \"%s\": cannot resolve \"%s\": %s", u->name, t->address,
                         gai_strerror(rc));
                return -1;
            }
            memcpy(&t->addr.ss, res->ai_addr, res->ai_addrlen);
            t->addr.len = res->ai_addrlen;
            freeaddrinfo(res);
        }
    }
    return 0;
}
