/* An output queue: what a connection has to write, as a list of segments
 * sent with one writev.  Small things (heads, chunk sizes) are copied into
 * the queue's own buffer; bodies are referenced where they already are
 * (the other side's input buffer), so a body is never copied.  A
 * referenced span must stay put until the queue has sent it. */
#ifndef PORTICO_OUTQ_H
#define PORTICO_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PT_OUTQ_SEGS 32 /* a 64 KiB body in 4 KiB cache blocks, and its head, fit */

/* Something that keeps referenced bytes in place (a pinned cache object):
 * released once the queue no longer needs them; sent: they were sent (a
 * producer may queue what comes next then, see open), not dropped. */
typedef struct pt_outq_hold {
    void (*release)(struct pt_outq_hold *h, bool sent);
} pt_outq_hold_t;

typedef struct pt_outq_seg {
    const char *ext; /* NULL: bytes at buf + off */
    size_t off, n;
    pt_outq_hold_t *hold; /* released when this segment is sent or dropped */
} pt_outq_seg_t;

/* The segments and the first PT_OUTQ_INLINE copied bytes share one pool
 * block (bufpool.h), taken when something is first queued and given back
 * by pt_outq_release: an idle connection's queue holds no memory. */
#define PT_OUTQ_INLINE (4096 - PT_OUTQ_SEGS * sizeof(pt_outq_seg_t))

typedef struct pt_outq {
    char *buf; /* copied bytes: the block's inline room, or a larger buffer of its own */
    size_t len, cap;
    pt_outq_seg_t *seg; /* PT_OUTQ_SEGS of them, at the start of the block; NULL: no block */
    int first, nseg;
    size_t pending; /* bytes not yet sent */
    size_t refs;    /* of them, bytes in referenced spans */
    bool open;      /* a producer queues more when its hold is released as sent: nothing else may be queued */
} pt_outq_t;

/* Appends a copy of p[0..n). Returns false when out of memory. */
bool pt_outq_copy(pt_outq_t *q, const void *p, size_t n);
/* Room for n more copied bytes, written in place and then queued with
 * pt_outq_commit (the bounded head writer uses it: no stack copy).  NULL
 * when out of memory or out of segments.  Nothing is queued until commit,
 * and any other call on q in between invalidates the pointer. */
char *pt_outq_reserve(pt_outq_t *q, size_t n);
/* Queues the first n bytes written at the last pt_outq_reserve. */
void pt_outq_commit(pt_outq_t *q, size_t n);
/* Appends a reference to p[0..n). */
bool pt_outq_ref(pt_outq_t *q, const void *p, size_t n);
/* The same, with a hold released (hold->release(hold), once) when these
 * bytes were sent, or dropped by truncate, reset or free: put it on the
 * last span of what it keeps in place.  False (the hold not taken) when
 * out of segments. */
bool pt_outq_ref_held(pt_outq_t *q, const void *p, size_t n, pt_outq_hold_t *hold);
/* Segments still free. */
static inline int pt_outq_free_segs(const pt_outq_t *q)
{
    return PT_OUTQ_SEGS - q->nseg;
}
static inline bool pt_outq_empty(const pt_outq_t *q)
{
    return q->pending == 0;
}
/* Room for another segment? (A full queue must be flushed first.) */
static inline bool pt_outq_has_room(const pt_outq_t *q)
{
    return q->nseg < PT_OUTQ_SEGS - 2;
}
/* Writes as much as the socket takes.  Returns the bytes written (0 when
 * the socket is full: EAGAIN), or -errno. */
ssize_t pt_outq_flush(pt_outq_t *q, int fd);
/* The same through a writer (TLS) that takes one span at a time and
 * returns the bytes it took, 0 when it cannot take more now, or -errno.
 * A span it could not take is offered again, unchanged, next time. */
typedef ssize_t (*pt_write_fn)(void *ctx, const void *p, size_t n);
ssize_t pt_outq_flush_fn(pt_outq_t *q, pt_write_fn fn, void *ctx);
/* Drops what was queued since the queue held `pending` bytes, when
 * nothing was sent in between (an answer given up halfway). */
void pt_outq_truncate(pt_outq_t *q, size_t pending);
/* Drops everything queued. */
void pt_outq_reset(pt_outq_t *q);
/* Drops everything queued and gives the memory back (an idle connection);
 * the queue takes it again when something is queued. */
void pt_outq_release(pt_outq_t *q);
void pt_outq_free(pt_outq_t *q);

#endif
