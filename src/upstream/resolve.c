/* Targets given by host name, resolved asynchronously in each worker with
 * libevent's evdns, so that no worker ever blocks on DNS.  A name is
 * resolved when the worker starts and again when its answer expires: the
 * answer's TTL (at least 1 s), or `resolver.valid` when set.  An A query
 * comes first; a name with no A record is asked for AAAA.  When a query
 * fails the target keeps the address it had (from the master's resolution
 * at load, or an earlier answer) and the name is asked again every 5 s;
 * the failure and the recovery are logged once each.  Without
 * resolver.nameservers, a name in /etc/hosts is taken from there.
 *
 * A new address moves the target to the shared slot of that address (its
 * health and in-flight counts are kept by address) and closes the idle
 * pooled connections to the old one; the old address's slot is freed once
 * no worker uses it, so a name that goes through many addresses does not
 * fill the zone. */
#include "config.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portico/log.h"
#include "portico/upstream.h"
#include "portico/worker.h"

#define RETRY_MS 5000
#define MIN_TTL_MS 1000
#define MAX_TTL_MS 3600000

typedef struct name {
    pt_resolver_t *r;
    pt_upstream_t *u;
    size_t idx;
    char host[256];
    uint16_t port;
    struct event timer;
    struct evdns_request *req;
    bool failing;
    bool settled; /* had its first outcome (see pt_resolver_settled) */
} name_t;

struct pt_resolver {
    pt_worker_t *w;
    struct evdns_base *dns;
    name_t *v;
    size_t n;
    size_t unsettled; /* names still waiting for their first outcome */
    bool strict;      /* a reload's generation: only an address settles a name */
    bool stopping;
};

static void settle(name_t *nm, bool resolved)
{
    pt_resolver_t *r = nm->r;
    if (nm->settled || (!resolved && r->strict))
        return;
    nm->settled = true;
    if (--r->unsettled == 0)
        pt_worker_ready(r->w);
}

bool pt_resolver_settled(const pt_resolver_t *r)
{
    return !r || r->unsettled == 0;
}

static void arm(name_t *nm, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(&nm->timer, &tv);
}

static void query(name_t *nm, bool v6);

static void answered(name_t *nm, const struct sockaddr *sa, socklen_t len, int ttl)
{
    pt_target_t *t = &nm->u->targets[nm->idx];
    if (pt_upstreams_readdress(nm->r->w, nm->u, t, sa, len)) {
        pt_log_notice("upstream \"%s\" target %s:%u resolves to %s (ttl %d s)", nm->u->conf->name, nm->host,
                      nm->port, t->name, ttl);
    } else if (nm->failing) {
        pt_log_notice("upstream \"%s\" target %s:%u resolves again, to %s", nm->u->conf->name, nm->host, nm->port,
                      t->name);
    }
    nm->failing = false;
    settle(nm, true);
    int64_t valid = nm->r->w->conf->resolver.valid, ms = (int64_t)ttl * 1000;
    if (valid)
        ms = valid;
    else if (ms < MIN_TTL_MS)
        ms = MIN_TTL_MS;
    else if (ms > MAX_TTL_MS)
        ms = MAX_TTL_MS;
    arm(nm, ms);
}

/* A name whose target has an address (the master's, at load) is as good
 * as resolved for readiness: it keeps that address until DNS answers. */
static bool t_has_address(const name_t *nm)
{
    return nm->u->targets[nm->idx].addrlen != 0;
}

static void on_answer(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    name_t *nm = arg;
    nm->req = NULL;
    if (result == DNS_ERR_SHUTDOWN || result == DNS_ERR_CANCEL || nm->r->stopping)
        return;
    if (result == DNS_ERR_NONE && count > 0 && type == DNS_IPv4_A) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(nm->port)};
        memcpy(&in.sin_addr, addresses, sizeof(in.sin_addr));
        answered(nm, (const struct sockaddr *)&in, sizeof(in), ttl);
        return;
    }
    if (result == DNS_ERR_NONE && count > 0 && type == DNS_IPv6_AAAA) {
        struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(nm->port)};
        memcpy(&in6.sin6_addr, addresses, sizeof(in6.sin6_addr));
        answered(nm, (const struct sockaddr *)&in6, sizeof(in6), ttl);
        return;
    }
    if ((result == DNS_ERR_NODATA || (result == DNS_ERR_NONE && !count)) && type == DNS_IPv4_A) {
        query(nm, true); /* no A record: perhaps an AAAA one */
        return;
    }
    if (!nm->failing) {
        const pt_target_t *t = &nm->u->targets[nm->idx];
        pt_log_warn("upstream \"%s\" target %s:%u does not resolve: %s; %s", nm->u->conf->name, nm->host, nm->port,
                    result == DNS_ERR_NONE ? "no address" : evdns_err_to_string(result),
                    t->addrlen ? "keeping its last address" : "left out until it does");
        nm->failing = true;
    }
    settle(nm, t_has_address(nm));
    arm(nm, RETRY_MS);
}

static void query(name_t *nm, bool v6)
{
    struct evdns_base *dns = nm->r->dns;
    nm->req = v6 ? evdns_base_resolve_ipv6(dns, nm->host, DNS_QUERY_NO_SEARCH, on_answer, nm)
                 : evdns_base_resolve_ipv4(dns, nm->host, DNS_QUERY_NO_SEARCH, on_answer, nm);
    if (!nm->req) /* evdns could not even start: try again later */
        arm(nm, RETRY_MS);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    name_t *nm = arg;
    if (!nm->req)
        query(nm, false);
}

/* Without resolver.nameservers, /etc/hosts comes first, as with the
 * system's resolver: a name found there (localhost) is taken from it
 * once, and never asked of DNS. */
static bool from_hosts(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    FILE *f = fopen("/etc/hosts", "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        char *save = NULL, *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        const char *ip = strtok_r(line, " \t\r\n", &save);
        for (const char *n; ip && !found && (n = strtok_r(NULL, " \t\r\n", &save));) {
            if (strcasecmp(n, host) != 0)
                continue;
            struct sockaddr_in *in = (struct sockaddr_in *)ss;
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
            memset(ss, 0, sizeof(*ss));
            if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                *len = sizeof(*in);
                found = true;
            } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                *len = sizeof(*in6);
                found = true;
            }
        }
    }
    fclose(f);
    return found;
}

static struct evdns_base *make_base(pt_worker_t *w)
{
    const typeof(w->conf->resolver) *rc = &w->conf->resolver;
    struct evdns_base *dns = evdns_base_new(w->base, rc->nameservers.n ? 0 : EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!dns)
        return NULL;
    for (size_t i = 0; i < rc->nameservers.n; i++) {
        const char *ns = ((char **)rc->nameservers.v)[i];
        if (evdns_base_nameserver_ip_add(dns, ns) != 0)
            pt_log_error("resolver: cannot use name server %s", ns);
    }
    char timeout[32];
    snprintf(timeout, sizeof(timeout), "%.3f", (double)rc->timeout / 1000);
    evdns_base_set_option(dns, "timeout:", timeout);
    evdns_base_set_option(dns, "randomize-case:", "0");
    return dns;
}

pt_resolver_t *pt_resolver_start(pt_worker_t *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->conf->upstreams.n; i++)
        for (size_t k = 0; k < w->upstreams[i].nconf; k++) /* the file's: added ones are numeric */
            n += !w->upstreams[i].targets[k].conf->addr.text;
    if (!n)
        return NULL;
    pt_resolver_t *r = calloc(1, sizeof(*r));
    name_t *v = calloc(n, sizeof(*v));
    struct evdns_base *dns = r && v ? make_base(w) : NULL;
    if (!dns) {
        free(r);
        free(v);
        pt_log_error("resolver: cannot start; targets given by host name keep the address they had at load");
        return NULL;
    }
    *r = (pt_resolver_t){.w = w, .dns = dns, .v = v, .strict = w->generation > 1};
    for (size_t i = 0; i < w->conf->upstreams.n; i++) {
        pt_upstream_t *u = &w->upstreams[i];
        for (size_t k = 0; k < u->nconf; k++) {
            if (u->targets[k].conf->addr.text)
                continue; /* numeric */
            name_t *nm = &v[r->n++];
            *nm = (name_t){.r = r, .u = u, .idx = k};
            nm->port = (uint16_t)pt_value_host_port(u->targets[k].conf->address, nm->host, sizeof(nm->host));
            evtimer_assign(&nm->timer, w->base, on_timer, nm);
            struct sockaddr_storage ss;
            socklen_t len;
            if (!w->conf->resolver.nameservers.n && from_hosts(nm->host, nm->port, &ss, &len)) {
                pt_upstreams_readdress(w, u, &u->targets[k], (struct sockaddr *)&ss, len);
                continue; /* not asked of DNS */
            }
            r->unsettled++;
            arm(nm, 0);
        }
    }
    return r;
}

void pt_resolver_stop(pt_resolver_t *r)
{
    if (!r)
        return;
    r->stopping = true;
    for (size_t i = 0; i < r->n; i++)
        evtimer_del(&r->v[i].timer);
    evdns_base_free(r->dns, 1); /* pending queries end with DNS_ERR_SHUTDOWN */
    free(r->v);
    free(r);
}
