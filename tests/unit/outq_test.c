#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "portico/bufpool.h"
#include "portico/head.h"
#include "portico/outq.h"

static size_t drain(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)r;
    return n;
}

typedef struct counted {
    pt_outq_hold_t hold;
    int released, sent;
} counted_t;

static void count_release(pt_outq_hold_t *h, bool sent)
{
    ((counted_t *)h)->released++;
    ((counted_t *)h)->sent += sent;
}

/* Holds are released once, when their segment is sent, truncated away,
 * reset or freed; not before. */
static void holds(int fd, int peer)
{
    pt_outq_t q = {0};
    static const char pinned[] = "0123456789";
    counted_t a = {{count_release}, 0, 0}, b = {{count_release}, 0, 0}, c = {{count_release}, 0, 0};
    ok(pt_outq_copy(&q, "HEAD", 4) && pt_outq_ref(&q, pinned, 3) && pt_outq_ref_held(&q, pinned + 5, 5, &a.hold),
       "a head, then spans of which the last holds");
    ssize_t w = pt_outq_flush(&q, fd);
    char got[32] = {0};
    drain(peer, got, sizeof(got) - 1);
    ok(w == 12 && a.released == 1 && a.sent == 1 && strcmp(got, "HEAD01256789") == 0, "sent: released once, as sent");
    pt_outq_copy(&q, "H", 1);
    size_t mark = q.pending;
    pt_outq_ref_held(&q, pinned, 4, &b.hold);
    ok(b.released == 0, "queued: held");
    pt_outq_truncate(&q, mark);
    ok(b.released == 1 && q.pending == 1, "truncated away: released");
    pt_outq_ref_held(&q, pinned, 4, &b.hold);
    pt_outq_ref_held(&q, pinned, 2, &c.hold);
    pt_outq_reset(&q);
    ok(b.released == 2 && c.released == 1 && q.nseg == 0, "reset: every hold released");
    pt_outq_ref_held(&q, pinned, 2, &c.hold);
    pt_outq_free(&q);
    ok(c.released == 2 && b.sent == 0 && c.sent == 0, "freed: released; the dropped ones not as sent");
    ok(!pt_outq_ref_held(&q, pinned, 0, &c.hold) && c.released == 2, "nothing to send: not taken");
    pt_outq_free(&q);
}


/* An idle queue gives its block back; used again, it takes one, and what
 * it holds past the block's inline room (a grown buffer) is intact. */
static void release_and_again(int fd, int peer)
{
    pt_buf_stats_t st0, st;
    pt_buf_stats(&st0);
    pt_outq_t q = {0};
    ok(q.seg == NULL && q.buf == NULL, "a new queue holds no memory");
    pt_outq_copy(&q, "abc", 3);
    pt_buf_stats(&st);
    ok(q.seg != NULL && st.small_out == st0.small_out + 1, "the first bytes take a pool block");
    char big[10000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    ok(pt_outq_copy(&q, big, sizeof(big)), "copies past the inline room grow a buffer of its own");
    ok(q.cap >= 3 + sizeof(big) && q.buf != (char *)(q.seg + PT_OUTQ_SEGS), "not the inline room any more");
    char got[16384];
    ok(pt_outq_flush(&q, fd) == 3 + (ssize_t)sizeof(big) && drain(peer, got, sizeof(got)) == 3 + sizeof(big) &&
           memcmp(got, "abc", 3) == 0 && memcmp(got + 3, big, sizeof(big)) == 0,
       "what moved from the inline room to the grown buffer is sent whole, in order");
    pt_outq_release(&q);
    pt_buf_stats(&st);
    ok(q.seg == NULL && q.buf == NULL && q.cap == 0 && st.small_out == st0.small_out, "released: the block is back");
    pt_outq_release(&q);
    ok(q.seg == NULL, "released twice: nothing happens");
    for (int round = 0; round < 3; round++) {
        pt_outq_copy(&q, "x", 1);
        pt_outq_ref(&q, big, 5);
        pt_outq_flush(&q, fd);
        char b[8] = {0};
        drain(peer, b, sizeof(b) - 1);
        ok(strcmp(b, "xabcde") == 0, "taken again after a release: the bytes are right");
        pt_outq_release(&q);
    }
    pt_outq_free(&q);
}

/* The pool: blocks come back to a bounded free list; past the bound they
 * go to the allocator. */
static void pool(void)
{
    pt_buf_stats_t st0, st;
    pt_buf_stats(&st0);
    void *a = pt_buf_get(PT_BUF_SMALL), *b = pt_buf_get(PT_BUF_LARGE);
    ok(a && b, "a block of each size");
    memset(a, 1, PT_BUF_SMALL);
    memset(b, 2, PT_BUF_LARGE);
    pt_buf_stats(&st);
    ok(st.small_out == st0.small_out + 1 && st.large_out == st0.large_out + 1, "counted as held");
    pt_buf_put(a, PT_BUF_SMALL);
    pt_buf_put(b, PT_BUF_LARGE);
    pt_buf_put(NULL, PT_BUF_SMALL);
    pt_buf_stats(&st);
    ok(st.small_out == st0.small_out && st.large_out == st0.large_out && st.small_free >= 1 && st.large_free >= 1,
       "given back: on the free lists");
    ok(pt_buf_get(PT_BUF_SMALL) == a, "the next one is the last given back (warm)");
    pt_buf_put(a, PT_BUF_SMALL);
    enum { N = 1000 };
    static void *many[N];
    for (int i = 0; i < N; i++)
        many[i] = pt_buf_get(PT_BUF_SMALL);
    for (int i = 0; i < N; i++)
        pt_buf_put(many[i], PT_BUF_SMALL);
    pt_buf_stats(&st);
    ok(st.small_free >= N && st.small_out == st0.small_out, "a burst: kept until the heartbeat (it was the peak)");
    for (int i = 0; i < N; i++) /* a steady load of that size takes them without the allocator */
        many[i] = pt_buf_get(PT_BUF_SMALL);
    for (int i = 0; i < N; i++)
        pt_buf_put(many[i], PT_BUF_SMALL);
    pt_buf_trim();
    pt_buf_stats(&st);
    ok(st.small_free >= N && st.trims == st0.trims, "the first heartbeat after it: still the last interval's peak");
    pt_buf_trim();
    pt_buf_stats(&st);
    ok(st.small_free == 256 && st.trims == st0.trims + 1,
       "the next: 256 kept, the rest freed, and the allocator asked to give it back");
    pt_buf_trim();
    pt_buf_stats_t st2;
    pt_buf_stats(&st2);
    ok(st2.trims == st.trims, "nothing freed since: not asked again");
}

int main(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    pool();
    release_and_again(sv[0], sv[1]);
    pt_outq_t q = {0};
    static const char body[] = "BODY-BYTES";
    ok(pt_outq_copy(&q, "HEAD ", 5) && pt_outq_copy(&q, "MORE ", 5), "copies");
    is_int(q.nseg, 1, "adjacent copies share a segment");
    ok(pt_outq_ref(&q, body, 10), "a reference");
    pt_outq_copy(&q, " TAIL", 5);
    is_int(q.nseg, 3, "copy, reference, copy: three segments");
    is_int(q.pending, 25, "pending bytes");
    is_int(q.refs, 10, "referenced bytes");
    ssize_t w = pt_outq_flush(&q, sv[0]);
    is_int(w, 25, "one flush writes everything");
    ok(pt_outq_empty(&q) && q.refs == 0, "then the queue is empty");
    char got[64] = {0};
    drain(sv[1], got, sizeof(got) - 1);
    is_str(got, "HEAD MORE BODY-BYTES TAIL", "in order");

    /* a full socket: partial writes keep the rest, references included */
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    char *big = malloc(1 << 20);
    for (int i = 0; i < 1 << 20; i++)
        big[i] = (char)(i * 7);
    pt_outq_copy(&q, "X", 1);
    pt_outq_ref(&q, big, 1 << 20);
    size_t total = 0;
    char *recv_buf = malloc((1 << 20) + 16);
    size_t got_n = 0;
    bool failed = false;
    for (int round = 0; round < 100000 && !pt_outq_empty(&q) && !failed; round++) {
        w = pt_outq_flush(&q, sv[0]);
        if (w < 0)
            failed = true;
        else
            total += (size_t)w;
        got_n += drain(sv[1], recv_buf + got_n, (1 << 20) + 16 - got_n);
    }
    ok(!failed, "no flush failed while the socket filled and drained");
    got_n += drain(sv[1], recv_buf + got_n, (1 << 20) + 16 - got_n);
    ok(pt_outq_empty(&q) && total == (1 << 20) + 1, "a megabyte through a small socket buffer (%zu)", total);
    ok(got_n == (1 << 20) + 1 && recv_buf[0] == 'X' && memcmp(recv_buf + 1, big, 1 << 20) == 0,
       "byte for byte");

    for (int i = 0; i < PT_OUTQ_SEGS; i++)
        pt_outq_ref(&q, body, 1);
    ok(!pt_outq_ref(&q, body, 1) && !pt_outq_has_room(&q), "a full queue refuses more segments");
    /* the bounded head writer, straight into a queue: all or nothing */
    {
        pt_outq_t hq = {0};
        pt_head_t h;
        ok(pt_head_begin(&h, &hq, 32), "a head of 32 bytes at most");
        pt_head_status(&h, 200, "OK");
        pt_head_field(&h, PT_STR("a"), PT_STR("b"));
        size_t n = pt_head_len(&h);
        ok(pt_head_commit(&h, &hq) && hq.pending == n && n == 23 && memcmp(hq.buf, "HTTP/1.1 200 OK\r\na: b\r\n", 23) == 0,
           "written and queued whole");
        ok(pt_head_begin(&h, &hq, 16), "another, of 16 bytes at most");
        pt_head_field(&h, PT_STR("name"), PT_STR("a value too long"));
        ok(h.overflow && pt_head_len(&h) == 0 && !pt_head_commit(&h, &hq) && hq.pending == n,
           "past its capacity: nothing is queued, nothing is written past it");
        pt_outq_free(&hq);
    }
    {
        pt_outq_t tq = {0};
        const char ext[] = "referenced";
        ok(pt_outq_copy(&tq, "kept", 4) && pt_outq_ref(&tq, ext, 3), "a queue with a copy and a reference");
        size_t mark = tq.pending;
        ok(pt_outq_copy(&tq, "dropped", 7) && pt_outq_ref(&tq, ext, 5) && pt_outq_copy(&tq, "too", 3),
           "more of both after the mark");
        pt_outq_truncate(&tq, mark);
        ok(tq.pending == 7 && tq.refs == 3 && tq.len == 4 && tq.nseg == 2, "truncated back to the mark");
        ok(pt_outq_copy(&tq, "!", 1) && tq.len == 5 && memcmp(tq.buf, "kept!", 5) == 0, "copies go on where it was");
        pt_outq_truncate(&tq, 2);
        ok(tq.pending == 2 && tq.nseg == 1 && tq.len == 2 && tq.refs == 0, "into a segment: it is cut");
        pt_outq_free(&tq);
    }
    holds(sv[0], sv[1]);
    close(sv[1]);
    w = pt_outq_flush(&q, sv[0]);
    ok(w < 0, "a closed peer is an error (%zd)", w);
    pt_outq_free(&q);
    free(big);
    free(recv_buf);
    close(sv[0]);
    return done_testing();
}
