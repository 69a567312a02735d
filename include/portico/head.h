/* The one bounded head writer: every response head (Portico's own answers,
 * rewritten upstream heads, the request heads sent upstream) is written
 * through it.  The writer knows its capacity; a write that does not fit
 * sets `overflow` and writes nothing more, so a head can be too long (an
 * error for the caller) but never run past its buffer.  There is no
 * snprintf here: no would-be length is ever used as a length. */
#ifndef PORTICO_HEAD_H
#define PORTICO_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "portico/outq.h"
#include "portico/str.h"

typedef struct pt_head {
    char *start, *p, *end;
    bool overflow;
} pt_head_t;

/* Writes into buf[0..cap). */
static inline void pt_head_init(pt_head_t *h, char *buf, size_t cap)
{
    h->start = h->p = buf;
    h->end = buf + cap;
    h->overflow = buf == NULL;
}

static inline void pt_head_put(pt_head_t *h, const void *s, size_t n)
{
    if (h->overflow || (size_t)(h->end - h->p) < n) {
        h->overflow = true;
        return;
    }
    if (n)
        memcpy(h->p, s, n);
    h->p += n;
}

#define PT_HEAD_LIT(h, lit) pt_head_put((h), (lit), sizeof(lit) - 1)

static inline void pt_head_str(pt_head_t *h, pt_str_t s)
{
    pt_head_put(h, s.p, s.n);
}

static inline void pt_head_cs(pt_head_t *h, const char *s)
{
    pt_head_put(h, s, strlen(s));
}

/* A decimal number. */
static inline void pt_head_u64(pt_head_t *h, unsigned long long v)
{
    char d[24];
    pt_head_put(h, d, pt_fmt_u64(d, v, 0));
}

/* "Name: value\r\n", with one capacity check for the whole line (every
 * field of every head goes through here). */
static inline void pt_head_field(pt_head_t *h, pt_str_t name, pt_str_t value)
{
    size_t need = name.n + value.n + 4;
    if (h->overflow || (size_t)(h->end - h->p) < need) {
        h->overflow = true;
        return;
    }
    char *o = h->p;
    memcpy(o, name.p, name.n);
    o += name.n;
    o[0] = ':';
    o[1] = ' ';
    o += 2;
    if (value.n)
        memcpy(o, value.p, value.n);
    o += value.n;
    o[0] = '\r';
    o[1] = '\n';
    h->p = o + 2;
}

/* "Name: ab\r\n": a value in two parts (a rewritten one), one check. */
static inline void pt_head_field2(pt_head_t *h, pt_str_t name, pt_str_t a, pt_str_t b)
{
    size_t need = name.n + a.n + b.n + 4;
    if (h->overflow || (size_t)(h->end - h->p) < need) {
        h->overflow = true;
        return;
    }
    char *o = h->p;
    memcpy(o, name.p, name.n);
    o += name.n;
    *o++ = ':';
    *o++ = ' ';
    if (a.n)
        memcpy(o, a.p, a.n);
    o += a.n;
    if (b.n)
        memcpy(o, b.p, b.n);
    o += b.n;
    *o++ = '\r';
    *o++ = '\n';
    h->p = o;
}

/* "HTTP/1.1 200 OK\r\n" */
static inline void pt_head_status(pt_head_t *h, int status, const char *reason)
{
    PT_HEAD_LIT(h, "HTTP/1.1 ");
    pt_head_u64(h, (unsigned)status);
    PT_HEAD_LIT(h, " ");
    pt_head_cs(h, reason);
    PT_HEAD_LIT(h, "\r\n");
}

/* The head's length, or 0 when it did not fit. */
static inline size_t pt_head_len(const pt_head_t *h)
{
    return h->overflow ? 0 : (size_t)(h->p - h->start);
}

/* Writes straight into q's own buffer (at most cap bytes); false when q
 * cannot take it (out of memory, or no segment left). */
static inline bool pt_head_begin(pt_head_t *h, pt_outq_t *q, size_t cap)
{
    pt_head_init(h, pt_outq_reserve(q, cap), cap);
    return !h->overflow;
}

/* Queues what was written since pt_head_begin.  False (and nothing
 * queued) when it did not fit. */
static inline bool pt_head_commit(pt_head_t *h, pt_outq_t *q)
{
    if (h->overflow)
        return false;
    pt_outq_commit(q, (size_t)(h->p - h->start));
    return true;
}

#endif
