#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/listener.h"
#include "portico/log.h"

static int open_socket(const struct sockaddr_storage *ss, socklen_t len, int backlog, char *err, size_t errlen,
                       const char *name)
{
    char addr[80];
    pt_addr_format((const struct sockaddr *)ss, addr, sizeof(addr));
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listener %s: socket(): %s", name, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listener %s: cannot listen on %s: %s", name, addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Is the address free of every other socket?  Slots share an address
 * through SO_REUSEPORT, which would just as quietly let a second Portico
 * (or anything of the same user) share it and split its traffic.  A bind
 * without SO_REUSEPORT fails while any socket listens there; it is tried
 * before the first slot's socket, once per address that is new to this
 * master (a reload keeps the sockets it has). */
static int check_free(const struct sockaddr_storage *ss, socklen_t len, char *err, size_t errlen, const char *name)
{
    if ((ss->ss_family == AF_INET && ((const struct sockaddr_in *)ss)->sin_port == 0) ||
        (ss->ss_family == AF_INET6 && ((const struct sockaddr_in6 *)ss)->sin6_port == 0))
        return 0; /* the kernel picks a free port */
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* open_socket will say why */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TIME_WAIT is no owner */
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    int rc = bind(fd, (const struct sockaddr *)ss, len);
    int e = errno;
    close(fd);
    if (rc < 0 && e == EADDRINUSE) {
        char addr[80];
        pt_addr_format((const struct sockaddr *)ss, addr, sizeof(addr));
        snprintf(err, errlen, "listener %s: cannot listen on %s: address already in use (by another process)", name,
                 addr);
        return -1;
    }
    return 0;
}

static bool same_addr(const pt_addr_t *a, const pt_addr_t *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Does a socket of this master (set s, the one being built aside) already
 * take the port of addr: the same port on an address that overlaps it?
 * Then the probe would only find this master itself. */
static bool ours_overlap(const pt_lset_t *s, const pt_lsock_t *self, const pt_addr_t *addr)
{
    for (size_t i = 0; s && i < s->n; i++) {
        const pt_lsock_t *o = &s->v[i];
        if (o != self && o->nfds > 0 && o->fds[0] >= 0 && pt_addr_overlaps(&o->bound, &addr->ss))
            return true;
    }
    return false;
}

/* Opens the sockets of slots [from, ls->nfds). */
static int open_slots(pt_lsock_t *ls, int from, int backlog, bool probe, char *err, size_t errlen)
{
    for (int i = from; i < ls->nfds; i++) {
        if (i == 0) {
            if (probe && check_free(&ls->addr.ss, ls->addr.len, err, errlen, ls->name) < 0)
                return -1;
            ls->fds[0] = open_socket(&ls->addr.ss, ls->addr.len, backlog, err, errlen, ls->name);
            if (ls->fds[0] < 0)
                return -1;
            /* Port 0: every slot must share the port the kernel chose. */
            socklen_t bl = sizeof(ls->bound);
            getsockname(ls->fds[0], (struct sockaddr *)&ls->bound, &bl);
        } else {
            ls->fds[i] = open_socket(&ls->bound, ls->addr.len, backlog, err, errlen, ls->name);
            if (ls->fds[i] < 0)
                return -1;
        }
    }
    return 0;
}

static int add_sock(pt_lset_t *cur, pt_lset_t *next, int kind, const pt_addr_t *addr, const char *name,
                    const pt_listener_conf_t *lc, int nslots, int backlog, char *err, size_t errlen)
{
    pt_lsock_t *ls = &next->v[next->n++];
    memset(ls, 0, sizeof(*ls));
    ls->kind = kind;
    ls->addr = *addr;
    ls->conf = lc;
    snprintf(ls->name, sizeof(ls->name), "%s", name);
    ls->nfds = nslots;
    ls->fds = malloc(sizeof(int) * (size_t)nslots);
    if (!ls->fds) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < nslots; i++)
        ls->fds[i] = -1;
    int from = 0;
    for (size_t j = 0; j < cur->n; j++) {
        pt_lsock_t *old = &cur->v[j];
        if (old->kind != kind || !same_addr(&old->addr, addr))
            continue;
        ls->bound = old->bound;
        from = old->nfds < nslots ? old->nfds : nslots;
        memcpy(ls->fds, old->fds, sizeof(int) * (size_t)from);
        break;
    }
    bool probe = !ours_overlap(cur, NULL, addr) && !ours_overlap(next, ls, addr);
    return open_slots(ls, from, backlog, probe, err, errlen);
}

static bool fd_in(const pt_lset_t *s, int fd)
{
    for (size_t i = 0; i < s->n; i++)
        for (int k = 0; k < s->v[i].nfds; k++)
            if (s->v[i].fds[k] == fd)
                return true;
    return false;
}

static void free_set(pt_lset_t *s, const pt_lset_t *keep)
{
    for (size_t i = 0; i < s->n; i++) {
        for (int k = 0; k < s->v[i].nfds; k++)
            if (s->v[i].fds[k] >= 0 && (!keep || !fd_in(keep, s->v[i].fds[k])))
                close(s->v[i].fds[k]);
        free(s->v[i].fds);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

int pt_lset_prepare(pt_lset_t *cur, const pt_config_t *c, int nslots, pt_lset_t *next, char *err, size_t errlen)
{
    next->n = 0;
    next->v = calloc(c->listeners.n + 1, sizeof(pt_lsock_t));
    if (!next->v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < c->listeners.n && rc == 0; i++) {
        const pt_listener_conf_t *lc = PT_LIST_AT(c->listeners, pt_listener_conf_t, i);
        rc = add_sock(cur, next, PT_LS_HTTP, &lc->address, lc->name, lc, nslots, (int)lc->backlog, err, errlen);
    }
    if (rc == 0 && c->admin.node)
        rc = add_sock(cur, next, PT_LS_ADMIN, &c->admin.address, "admin", NULL, nslots, 511, err, errlen);
    if (rc < 0)
        free_set(next, cur); /* close only what this call opened */
    return rc;
}

void pt_lset_discard(pt_lset_t *cur, pt_lset_t *next)
{
    free_set(next, cur); /* closes only what prepare opened */
}

void pt_lset_commit(pt_lset_t *cur, pt_lset_t *next)
{
    free_set(cur, next);
    *cur = *next;
    next->v = NULL;
    next->n = 0;
}

void pt_lset_close(pt_lset_t *s)
{
    free_set(s, NULL);
}

void pt_lset_keep_slot(pt_lset_t *s, int slot)
{
    for (size_t i = 0; i < s->n; i++)
        for (int k = 0; k < s->v[i].nfds; k++)
            if (k != slot && s->v[i].fds[k] >= 0) {
                close(s->v[i].fds[k]);
                s->v[i].fds[k] = -1;
            }
}
