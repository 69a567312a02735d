#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "portico/bufpool.h"
#include "portico/outq.h"

_Static_assert(PT_OUTQ_SEGS * sizeof(pt_outq_seg_t) < PT_BUF_SMALL / 2, "the segments leave room for copies");

static char *inline_buf(const pt_outq_t *q)
{
    return (char *)(q->seg + PT_OUTQ_SEGS);
}

/* The block of segments and first copies, taken when the queue is used. */
static bool take_block(pt_outq_t *q)
{
    if (q->seg)
        return true;
    if (!(q->seg = pt_buf_get(PT_BUF_SMALL)))
        return false;
    q->buf = inline_buf(q);
    q->cap = PT_OUTQ_INLINE;
    q->len = 0;
    return true;
}

static void add_seg(pt_outq_t *q, const char *ext, size_t off, size_t n, pt_outq_hold_t *hold)
{
    int last = q->first + q->nseg - 1;
    /* copies that follow each other in buf share a segment */
    if (q->nseg && !ext && !q->seg[last].ext && q->seg[last].off + q->seg[last].n == off) {
        q->seg[last].n += n;
    } else {
        if (q->first + q->nseg == PT_OUTQ_SEGS) { /* slide to the front */
            memmove(q->seg, q->seg + q->first, sizeof(q->seg[0]) * (size_t)q->nseg);
            q->first = 0;
        }
        q->seg[q->first + q->nseg].ext = ext;
        q->seg[q->first + q->nseg].off = off;
        q->seg[q->first + q->nseg].n = n;
        q->seg[q->first + q->nseg].hold = hold;
        q->nseg++;
    }
    q->pending += n;
    if (ext)
        q->refs += n;
}

char *pt_outq_reserve(pt_outq_t *q, size_t n)
{
    if (q->nseg == PT_OUTQ_SEGS || !take_block(q))
        return NULL;
    if (q->cap - q->len < n) {
        size_t cap = q->cap;
        while (cap - q->len < n)
            cap *= 2;
        bool own = q->buf != inline_buf(q);
        char *b = own ? realloc(q->buf, cap) : malloc(cap);
        if (!b)
            return NULL;
        if (!own)
            memcpy(b, q->buf, q->len);
        q->buf = b;
        q->cap = cap;
    }
    return q->buf + q->len;
}

void pt_outq_commit(pt_outq_t *q, size_t n)
{
    if (!n)
        return;
    add_seg(q, NULL, q->len, n, NULL);
    q->len += n;
}

bool pt_outq_copy(pt_outq_t *q, const void *p, size_t n)
{
    if (!n)
        return true;
    char *d = pt_outq_reserve(q, n);
    if (!d)
        return false;
    memcpy(d, p, n);
    pt_outq_commit(q, n);
    return true;
}

bool pt_outq_ref(pt_outq_t *q, const void *p, size_t n)
{
    if (!n)
        return true;
    if (q->nseg == PT_OUTQ_SEGS || !take_block(q))
        return false;
    add_seg(q, p, 0, n, NULL);
    return true;
}

bool pt_outq_ref_held(pt_outq_t *q, const void *p, size_t n, pt_outq_hold_t *hold)
{
    if (q->nseg == PT_OUTQ_SEGS || !n || !take_block(q))
        return false;
    add_seg(q, p, 0, n, hold);
    return true;
}

/* Segment i is dropped: its hold is let go. */
static void release(pt_outq_t *q, int i)
{
    pt_outq_hold_t *h = q->seg[i].hold;
    if (h) {
        q->seg[i].hold = NULL;
        h->release(h, false);
    }
}

void pt_outq_truncate(pt_outq_t *q, size_t pending)
{
    while (q->pending > pending && q->nseg) {
        int last = q->first + q->nseg - 1;
        size_t drop = q->pending - pending < q->seg[last].n ? q->pending - pending : q->seg[last].n;
        q->seg[last].n -= drop;
        q->pending -= drop;
        if (q->seg[last].ext)
            q->refs -= drop;
        else
            q->len -= drop; /* copies since the mark are the end of buf */
        if (!q->seg[last].n) {
            release(q, last);
            q->nseg--;
        }
    }
}

void pt_outq_reset(pt_outq_t *q)
{
    for (int i = q->first; i < q->first + q->nseg; i++)
        release(q, i);
    q->open = false;
    q->len = 0;
    q->first = q->nseg = 0;
    q->pending = q->refs = 0;
    if (q->cap > 64 * 1024) { /* a burst is over: give the memory back */
        free(q->buf);
        q->buf = inline_buf(q);
        q->cap = PT_OUTQ_INLINE;
    }
}

void pt_outq_release(pt_outq_t *q)
{
    pt_outq_reset(q);
    if (!q->seg)
        return;
    if (q->buf != inline_buf(q))
        free(q->buf);
    pt_buf_put(q->seg, PT_BUF_SMALL);
    q->seg = NULL;
    q->buf = NULL;
    q->cap = 0;
}

/* w bytes of the queue were written: drop them from the front. */
static void consume(pt_outq_t *q, size_t w)
{
    while (w) {
        int i = q->first;
        size_t take = w < q->seg[i].n ? w : q->seg[i].n;
        if (q->seg[i].ext) {
            q->seg[i].ext += take;
            q->refs -= take;
        } else {
            q->seg[i].off += take;
        }
        q->seg[i].n -= take;
        q->pending -= take;
        w -= take;
        if (q->seg[i].n == 0) {
            pt_outq_hold_t *h = q->seg[i].hold;
            q->seg[i].hold = NULL;
            q->first++;
            q->nseg--;
            if (h) /* last: it may queue more (the queue is consistent again) */
                h->release(h, true);
        }
    }
}

ssize_t pt_outq_flush(pt_outq_t *q, int fd)
{
    size_t total = 0;
    while (q->pending) {
        struct iovec iov[PT_OUTQ_SEGS];
        int n = 0;
        for (int i = q->first; i < q->first + q->nseg; i++, n++) {
            iov[n].iov_base = (void *)(q->seg[i].ext ? q->seg[i].ext : q->buf + q->seg[i].off);
            iov[n].iov_len = q->seg[i].n;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return (ssize_t)total;
            return -errno;
        }
        total += (size_t)w;
        consume(q, (size_t)w);
        if (q->pending && (size_t)w < iov[0].iov_len + (n > 1 ? 1 : 0))
            return (ssize_t)total; /* a short write: the socket is full */
    }
    pt_outq_reset(q);
    return (ssize_t)total;
}

ssize_t pt_outq_flush_fn(pt_outq_t *q, pt_write_fn fn, void *ctx)
{
    size_t total = 0;
    while (q->pending) {
        int i = q->first;
        const char *p = q->seg[i].ext ? q->seg[i].ext : q->buf + q->seg[i].off;
        ssize_t w = fn(ctx, p, q->seg[i].n);
        if (w < 0)
            return w;
        if (w == 0)
            return (ssize_t)total;
        total += (size_t)w;
        consume(q, (size_t)w);
    }
    pt_outq_reset(q);
    return (ssize_t)total;
}

void pt_outq_free(pt_outq_t *q)
{
    pt_outq_release(q);
    memset(q, 0, sizeof(*q));
}
