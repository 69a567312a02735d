/* The internal HTTP client against a real loopback server (a forked child
 * answering canned responses by path): every framing, 1xx, a body over
 * max_body, garbage, a timeout, a refused connect, pooled reuse, and a
 * cancel. */
#include "config.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "portico/client.h"
#include "portico/config.h"
#include "portico/upstream.h"
#include "portico/worker.h"

static const char *answer(const char *path)
{
    if (!strcmp(path, "/cl"))
        return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    if (!strcmp(path, "/chunked"))
        return "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n";
    if (!strcmp(path, "/close"))
        return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
    if (!strcmp(path, "/continue"))
        return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
    if (!strcmp(path, "/empty"))
        return "HTTP/1.1 204 No Content\r\n\r\n";
    if (!strcmp(path, "/big"))
        return "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"; /* and 5000 bytes */
    if (!strcmp(path, "/garbage"))
        return "SSH-2.0-OpenSSH\r\n\r\n";
    if (!strcmp(path, "/short"))
        return "HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\nonly this";
    return NULL; /* /hang */
}

/* The server: one request at a time per connection, keep-alive. */
static void serve(int ls)
{
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            continue;
        if (fork() > 0) {
            close(fd);
            continue;
        }
        close(ls); /* only the server accepts: once it is gone, connects are refused */
        char buf[4096];
        size_t len = 0;
        for (;;) {
            ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
            if (r <= 0)
                _exit(0);
            len += (size_t)r;
            buf[len] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (!end)
                continue;
            char path[256] = "";
            sscanf(buf, "%*s %255s", path);
            const char *a = answer(path);
            if (!a) {
                sleep(30);
                _exit(0);
            }
            send(fd, a, strlen(a), MSG_NOSIGNAL);
            if (!strcmp(path, "/big")) {
                char body[5000];
                memset(body, 'b', sizeof(body));
                send(fd, body, sizeof(body), MSG_NOSIGNAL);
            }
            if (strstr(a, "Connection: close") || !strcmp(path, "/garbage"))
                _exit(0);
            size_t used = (size_t)(end + 4 - buf);
            memmove(buf, buf + used, len - used);
            len -= used;
        }
    }
}

static pt_worker_t w;
static pt_client_resp_t got;
static char got_body[8192], got_error[256];
static bool called;

static void done(void *arg, const pt_client_resp_t *r)
{
    got = *r;
    memcpy(got_body, r->body.p ? r->body.p : "", r->body.n);
    got.body.p = got_body;
    got.head = NULL;
    if (r->error) { /* valid during the call only, like the head and body */
        snprintf(got_error, sizeof(got_error), "%s", r->error);
        got.error = got_error;
    }
    called = true;
    event_base_loopbreak(w.base);
}

static void reap(evutil_socket_t fd, short what, void *arg)
{
    w.reap_pending = false;
    while (w.dead_up) {
        pt_upconn_t *uc = w.dead_up;
        w.dead_up = uc->next;
        pt_upconn_free(uc);
    }
}

static pt_client_resp_t run(pt_upstream_t *u, const char *path, size_t max_body, int64_t timeout_ms)
{
    pt_client_req_t rq = {.target = pt_str_from(path), .host = PT_STR("t"), .max_body = max_body,
                          .timeout_ms = timeout_ms};
    called = false;
    ok(pt_client_start(&w, u, 0, &rq, done, NULL) != NULL, "%s: started", path);
    ok(!called, "%s: done is never called from inside start", path);
    event_base_dispatch(w.base);
    return got;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    bind(ls, (struct sockaddr *)&sa, sizeof(sa));
    listen(ls, 16);
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    pid_t child = fork();
    if (child == 0) {
        setpgid(0, 0);
        signal(SIGCHLD, SIG_IGN);
        serve(ls);
    }
    setpgid(child, child);
    close(ls);

    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "listeners: [{ name: m, address: \"127.0.0.1:1\" }]\n"
             "upstreams:\n  - { name: up, targets: [\"127.0.0.1:%d\"], keepalive: { size: 4 } }\n"
             "routes: [{ name: r, match: { paths: [\"/*\"] }, upstream: up }]\n",
             ntohs(sa.sin_port));
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("c.yaml", yaml, strlen(yaml), &d);
    ok(c != NULL, "the configuration loads");
    if (!c)
        return 1;
    w.base = event_base_new();
    w.conf = c;
    event_assign(&w.reaper, w.base, -1, 0, reap, NULL);
    pt_upstream_t *u = pt_upstreams_build(c, NULL, 0);
    w.upstreams = u;

    pt_client_resp_t r = run(u, "/cl", 100, 2000);
    ok(r.status == 200 && r.body.n == 5 && !memcmp(r.body.p, "hello", 5) && !r.error, "Content-Length body");
    r = run(u, "/cl", 100, 2000);
    ok(r.status == 200 && r.body.n == 5, "again");
    is_int(u->targets[0].connects, 1, "one connection...");
    is_int(u->targets[0].reuses, 1, "...taken again from the pool");
    r = run(u, "/chunked", 100, 2000);
    ok(r.status == 201 && r.body.n == 5 && !memcmp(r.body.p, "hello", 5), "chunked body, with an extension");
    r = run(u, "/continue", 100, 2000);
    ok(r.status == 404 && r.body.n == 2, "a 100 Continue is skipped");
    r = run(u, "/empty", 100, 2000);
    ok(r.status == 204 && r.body.n == 0, "204: no body");
    r = run(u, "/close", 100, 2000);
    ok(r.status == 200 && r.body.n == 13 && !memcmp(r.body.p, "until the end", 13), "close-delimited body");
    uint64_t connects = u->targets[0].connects;
    r = run(u, "/cl", 0, 2000);
    ok(r.status == 200 && r.body.n == 0, "max_body 0: the body is read, not kept");
    is_int(u->targets[0].connects, connects + 1, "a closed connection is not pooled");
    r = run(u, "/big", 1000, 2000);
    ok(r.status == PT_CLIENT_FAILED && r.error, "a body over max_body fails (%s)", r.error ? r.error : "-");
    r = run(u, "/garbage", 100, 2000);
    ok(r.status == PT_CLIENT_FAILED && r.error, "not HTTP fails (%s)", r.error ? r.error : "-");
    r = run(u, "/short", 100, 2000);
    ok(r.status == PT_CLIENT_FAILED, "a body cut short fails (%s)", r.error ? r.error : "-");
    r = run(u, "/hang", 100, 300);
    ok(r.status == PT_CLIENT_TIMEOUT, "no answer: a timeout (%s)", r.error ? r.error : "-");

    /* a cancelled request never calls back */
    pt_client_req_t rq = {.target = PT_STR("/hang"), .host = PT_STR("t"), .timeout_ms = 200};
    called = false;
    pt_client_t *cl = pt_client_start(&w, u, 0, &rq, done, NULL);
    pt_client_cancel(cl);
    struct timeval tv = {0, 400000};
    event_base_loopexit(w.base, &tv);
    event_base_dispatch(w.base);
    ok(!called, "cancelled: done is not called");

    kill(-child, SIGKILL); /* the server and every connection's process */
    waitpid(child, NULL, 0);
    while (u->targets[0].idle) /* what the pool kept was served by those */
        pt_upconn_close(u->targets[0].idle);
    /* a refused connect (the server is gone) */
    r = run(u, "/cl", 100, 2000);
    ok(r.status == PT_CLIENT_FAILED && r.error, "refused: fails (%s)", r.error ? r.error : "-");
    printf("1..%d\n", tap_n);
    return tap_failed != 0;
}
