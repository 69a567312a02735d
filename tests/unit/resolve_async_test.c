/* The master's resolution in a child process: what it resolves, what its
 * records become, and what a failure says.  Includes the .c for its
 * records; /etc/hosts answers "localhost", no DNS server is asked. */
#include "../../src/proc/resolve_async.c"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "../unit/tap.h"
#include "portico/config.h"

static pt_config_t *load(const char *targets, const char *extra)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "listeners:\n  - address: 127.0.0.1:8080\n%s"
             "upstreams:\n  - { name: up, targets: [%s] }\n"
             "routes:\n  - { match: { paths: [\"/*\"] }, upstream: up }\n",
             extra, targets);
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("p.yaml", text, strlen(text), &d);
    pt_diag_free(&d);
    return c;
}

static const pt_target_conf_t *target(const pt_config_t *c, size_t k)
{
    return PT_LIST_AT(PT_LIST_AT(c->upstreams, pt_upstream_conf_t, 0)->targets, pt_target_conf_t, k);
}

static uint16_t port_of(const pt_target_conf_t *t)
{
    const struct sockaddr *sa = (const struct sockaddr *)&t->addr.ss;
    return ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                           : ((const struct sockaddr_in *)sa)->sin_port);
}

/* A job fed by the test instead of a child: w is the pipe's write end. */
static pt_resolve_async_t *fake_job(pt_config_t *c, int *w)
{
    pt_resolve_async_t *j = calloc(1, sizeof(*j));
    int p[2];
    if (!j || pipe2(p, O_NONBLOCK) < 0)
        return NULL;
    size_t n = count_names(c);
    j->v = calloc(n, sizeof(name_t));
    pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, 0);
    for (size_t k = 0; k < u->targets.n; k++) {
        pt_target_conf_t *t = PT_LIST_AT(u->targets, pt_target_conf_t, k);
        if (!t->addr.len)
            j->v[j->n++] = (name_t){.t = t, .upstream = u->name};
    }
    j->fd = p[0];
    j->pid = -1; /* nothing to kill */
    j->timeout = 1500;
    *w = p[1];
    return j;
}

int main(void)
{
    char err[512];
    pt_resolve_async_t *j;

    pt_config_t *c = load("\"127.0.0.1:81\"", "");
    ok(c && pt_resolve_async_start(c, &j, err, sizeof(err)) == 0 && j == NULL, "numeric targets: nothing to do");
    pt_config_free(c);
    c = load("\"localhost:81\"", "resolver: { nameservers: [\"127.0.0.1\"] }\n");
    ok(c && pt_resolve_async_start(c, &j, err, sizeof(err)) == 0 && j == NULL,
       "with resolver.nameservers the workers resolve, not the master");
    pt_config_free(c);

    c = load("\"127.0.0.1:81\", \"localhost:8081\", \"localhost:8082\"", "");
    ok(c && pt_resolve_async_run(c, err, sizeof(err)) == 0, "localhost resolves (from /etc/hosts)");
    ok(c && target(c, 1)->addr.len && port_of(target(c, 1)) == 8081 && port_of(target(c, 2)) == 8082,
       "each name gets its address and its own port");
    ok(c && !target(c, 1)->addr.text, "and stays a name, which the workers resolve again");
    pt_config_free(c);

    /* records as the child writes them, fed by hand */
    c = load("\"a.test:80\", \"b.test:81\"", "");
    int w;
    j = fake_job(c, &w);
    record_t r = {.idx = 1, .len = sizeof(struct sockaddr_in)};
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(81), .sin_addr.s_addr = htonl(0x7f000002)};
    memcpy(&r.ss, &in, sizeof(in));
    ok(write(w, &r, 100) == 100, "half a record");
    is_int(pt_resolve_async_read(j, err, sizeof(err)), PT_EAGAIN, "half a record: more to come");
    ok(write(w, (char *)&r + 100, sizeof(r) - 100) == (ssize_t)(sizeof(r) - 100), "the rest");
    is_int(pt_resolve_async_read(j, err, sizeof(err)), PT_EAGAIN, "one name of two: more to come");
    ok(target(c, 1)->addr.len == sizeof(in) && port_of(target(c, 1)) == 81, "its address is in the configuration");
    pt_resolve_async_expired(j, err, sizeof(err));
    is_str(err, "resolving host names took longer than resolver.timeout (1500 ms): \"a.test:80\" (upstream \"up\") "
                "unanswered", "past the deadline: the names still unanswered");
    r = (record_t){.idx = 0, .gai = EAI_NONAME};
    ok(write(w, &r, sizeof(r)) == sizeof(r), "a name that does not resolve");
    is_int(pt_resolve_async_read(j, err, sizeof(err)), -1, "fails the job");
    char want[256];
    snprintf(want, sizeof(want), "upstream \"up\": cannot resolve \"a.test:80\": %s", gai_strerror(EAI_NONAME));
    is_str(err, want, "and says which and why");
    close(w);
    pt_resolve_async_free(j);

    j = fake_job(c, &w); /* a.test alone now: b.test has its address */
    r = (record_t){.idx = 7};
    ok(write(w, &r, sizeof(r)) == sizeof(r), "a record for no name");
    is_int(pt_resolve_async_read(j, err, sizeof(err)), -1, "is refused");
    close(w);
    pt_resolve_async_free(j);
    j = fake_job(c, &w);
    close(w);
    is_int(pt_resolve_async_read(j, err, sizeof(err)), -1, "a child that ends without answering");
    ok(strstr(err, "ended before it answered") != NULL, "says so: %s", err);
    pt_resolve_async_free(j);
    pt_config_free(c);
    return done_testing();
}
