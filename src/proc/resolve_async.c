/* The master resolves targets given by host name once at load, so that a
 * name it cannot resolve is a configuration error (as nginx does), and the
 * first workers have an address before their own evdns answers.
 *
 * getaddrinfo(3) blocks, with no bound the caller sets (resolv.conf's
 * timeout times its attempts, per name and search domain), and the master
 * must not: while it waits it would handle no signal, so a silent DNS
 * server would make SIGTERM, SIGQUIT and the reaping of workers wait too.
 * getaddrinfo_a(3) runs it in threads the master could not stop, and a
 * thread stuck in the resolver across the master's next fork() is a hazard
 * in the child.  So a child process resolves, up to THREADS names at a time,
 * and writes one fixed-size record per name to a pipe; the master polls the
 * pipe beside its signalfd and kills the child when resolver.timeout has
 * passed.  Records are smaller than PIPE_BUF, so the threads' writes never
 * interleave. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "portico/err-t.h"
#include "portico/resolve_async.h"
#include "portico/value.h"

#define THREADS 8

typedef struct record {
    uint32_t idx;
    int32_t gai;   /* getaddrinfo's result: 0, or an EAI_* code */
    int32_t err;   /* errno, for EAI_SYSTEM */
    uint32_t len;  /* of ss */
    struct sockaddr_storage ss;
} record_t;
_Static_assert(sizeof(record_t) <= PIPE_BUF, "one write(2) per record, never interleaved");

typedef struct name {
    pt_target_conf_t *t;
    const char *upstream;
    bool done;
} name_t;

struct pt_resolve_async {
    pid_t pid;
    int fd;            /* the read end */
    int64_t deadline;  /* CLOCK_MONOTONIC ms */
    int64_t timeout;
    name_t *v;
    size_t n, done;
    bool eof;
    record_t partial;  /* a record cut by a short read */
    size_t got;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- in the child ---- */

static struct {
    name_t *v;
    size_t n;
    atomic_size_t next;
    int fd;
} child;

static void *resolve_names(void *arg)
{
    for (size_t i; (i = atomic_fetch_add(&child.next, 1)) < child.n;) {
        char host[256], port[8];
        snprintf(port, sizeof(port), "%d", pt_value_host_port(child.v[i].t->address, host, sizeof(host)));
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        record_t r = {.idx = (uint32_t)i};
        r.gai = getaddrinfo(host, port, &hints, &res);
        r.err = errno;
        if (r.gai == 0 && res && res->ai_addrlen <= sizeof(r.ss)) {
            memcpy(&r.ss, res->ai_addr, res->ai_addrlen);
            r.len = res->ai_addrlen;
        } else if (r.gai == 0) {
            r.gai = EAI_FAIL;
        }
        if (res)
            freeaddrinfo(res);
        if (write(child.fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(1); /* the master stopped listening */
    }
    return NULL;
}

static void __attribute__((noreturn)) run_child(name_t *v, size_t n, int fd, pid_t parent)
{
    /* The master may die (SIGKILL) without killing us: go with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    /* Nothing of the master's is ours to hold: listening sockets, channels,
     * the signalfd.  Keep only the pipe, as descriptor 3. */
    if (fd != 3) {
        if (dup2(fd, 3) < 0)
            _exit(1);
        fd = 3;
    }
    if (close_range(4, ~0U, 0) < 0)
        for (int i = 4; i < 1024; i++)
            close(i);
    child.v = v;
    child.n = n;
    child.fd = fd;
    pthread_t th[THREADS];
    size_t nth = 0;
    for (; nth < THREADS && nth + 1 < n; nth++)
        if (pthread_create(&th[nth], NULL, resolve_names, NULL) != 0)
            break;
    resolve_names(NULL);
    for (size_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    _exit(0);
}

/* ---- in the master ---- */

static size_t count_names(const pt_config_t *c)
{
    if (c->resolver.nameservers.n)
        return 0; /* the workers resolve, with those servers */
    size_t n = 0;
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        for (size_t k = 0; k < u->targets.n; k++)
            n += !PT_LIST_AT(u->targets, pt_target_conf_t, k)->addr.len;
    }
    return n;
}

int pt_resolve_async_start(pt_config_t *c, pt_resolve_async_t **job, char *err, size_t errlen)
{
    *job = NULL;
    size_t n = count_names(c);
    if (!n)
        return 0;
    pt_resolve_async_t *j = calloc(1, sizeof(*j));
    name_t *v = calloc(n, sizeof(*v));
    if (!j || !v) {
        free(j);
        free(v);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t at = 0;
    for (size_t i = 0; i < c->upstreams.n; i++) {
        pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        for (size_t k = 0; k < u->targets.n; k++) {
            pt_target_conf_t *t = PT_LIST_AT(u->targets, pt_target_conf_t, k);
            if (!t->addr.len)
                v[at++] = (name_t){.t = t, .upstream = u->name};
        }
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot resolve host names: pipe: %s", strerror(errno));
        free(v);
        free(j);
        return -1;
    }
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot resolve host names: fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        free(v);
        free(j);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        run_child(v, n, p[1], parent);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    *j = (pt_resolve_async_t){.pid = pid, .fd = p[0], .timeout = c->resolver.timeout,
                              .deadline = now_ms() + c->resolver.timeout, .v = v, .n = n};
    *job = j;
    return 0;
}

int pt_resolve_async_fd(const pt_resolve_async_t *j)
{
    return j->fd;
}

int64_t pt_resolve_async_deadline(const pt_resolve_async_t *j)
{
    return j->deadline;
}

static int take(pt_resolve_async_t *j, const record_t *r, char *err, size_t errlen)
{
    if (r->idx >= j->n || j->v[r->idx].done) {
        snprintf(err, errlen, "cannot resolve host names: the resolving process sent nonsense");
        return -1;
    }
    name_t *nm = &j->v[r->idx];
    if (r->gai != 0) {
        snprintf(err, errlen, "upstream \"%s\": cannot resolve \"%s\": %s", nm->upstream, nm->t->address,
                 r->gai == EAI_SYSTEM ? strerror(r->err) : gai_strerror(r->gai));
        return -1;
    }
    memcpy(&nm->t->addr.ss, &r->ss, r->len);
    nm->t->addr.len = r->len;
    nm->done = true;
    j->done++;
    return 0;
}

int pt_resolve_async_read(pt_resolve_async_t *j, char *err, size_t errlen)
{
    while (j->done < j->n && !j->eof) {
        ssize_t got = read(j->fd, (char *)&j->partial + j->got, sizeof(record_t) - j->got);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return PT_EAGAIN;
        if (got <= 0) {
            j->eof = true; /* the child is gone */
            break;
        }
        j->got += (size_t)got;
        if (j->got < sizeof(record_t))
            continue;
        j->got = 0;
        if (take(j, &j->partial, err, errlen) < 0)
            return -1;
    }
    if (j->done == j->n)
        return 0;
    snprintf(err, errlen, "cannot resolve host names: the resolving process (pid %d) ended before it answered",
             (int)j->pid);
    return -1;
}

void pt_resolve_async_expired(const pt_resolve_async_t *j, char *err, size_t errlen)
{
    size_t off = (size_t)snprintf(err, errlen, "resolving host names took longer than resolver.timeout (%lld ms): ",
                                  (long long)j->timeout);
    size_t left = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (j->v[i].done)
            continue;
        if (left++ < 3 && off < errlen)
            off += (size_t)snprintf(err + off, errlen - off, "%s\"%s\" (upstream \"%s\")", left > 1 ? ", " : "",
                                    j->v[i].t->address, j->v[i].upstream);
    }
    if (left > 3 && off < errlen)
        snprintf(err + off, errlen - off, " and %zu more unanswered", left - 3);
    else if (off < errlen)
        snprintf(err + off, errlen - off, " unanswered");
}

void pt_resolve_async_free(pt_resolve_async_t *j)
{
    if (!j)
        return;
    /* Until the pipe's EOF the child has not exited, so it was not reaped
     * either and its pid cannot be another process's: killing it is safe.
     * After the EOF it may have been reaped already: leave it alone. */
    if (!j->eof) {
        char buf[sizeof(record_t)];
        ssize_t r;
        while ((r = read(j->fd, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
            ;
        if (r < 0 && j->pid > 0)
            kill(j->pid, SIGKILL);
    }
    close(j->fd);
    free(j->v);
    free(j);
}

int pt_resolve_async_run(pt_config_t *c, char *err, size_t errlen)
{
    pt_resolve_async_t *j;
    if (pt_resolve_async_start(c, &j, err, errlen) < 0)
        return -1;
    if (!j)
        return 0;
    int rc;
    pid_t pid = j->pid;
    for (;;) {
        rc = pt_resolve_async_read(j, err, errlen);
        if (rc != PT_EAGAIN)
            break;
        int64_t left = j->deadline - now_ms();
        if (left <= 0) {
            pt_resolve_async_expired(j, err, errlen);
            rc = -1;
            break;
        }
        struct pollfd pfd = {.fd = j->fd, .events = POLLIN};
        poll(&pfd, 1, (int)left);
    }
    pt_resolve_async_free(j);
    /* No worker exists yet, so no other child can have this pid. */
    waitpid(pid, NULL, 0);
    return rc < 0 ? -1 : 0;
}
