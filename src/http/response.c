/* The response head writer (see response.h). */
#include "config.h"

#include <string.h>

#include "portico/accesslog.h"
#include "portico/filter.h"
#include "portico/head.h"
#include "portico/http.h"
#include "portico/response.h"

/* An upper bound of the head's size: every part that can go in, each
 * field growing by its ": " and CRLF at most (or by a byte, when the
 * source tells the size it had them in). */
static size_t bound(const pt_resp_head_t *h, const pt_fx_t *fx, size_t date_len, size_t reason_len)
{
    size_t n = 160 + date_len + reason_len + h->reason.n + h->extra.n;
    if (h->fields_size)
        n += h->fields_size + h->nfields;
    else
        for (size_t i = 0; i < h->nfields; i++)
            n += h->fields[i].name.n + h->fields[i].value.n + 4;
    for (size_t i = 0; fx && i < fx->nresp; i++)
        n += fx->resp[i].name.n + fx->resp[i].value.n + 4;
    pt_str_t keep; /* a rewritten field grows by its prefix at most */
    for (size_t i = 0; h->rewrite && i < h->nfields; i++)
        if (h->rewrite->field(&h->fields[i], h->rewrite->arg, &keep))
            n += h->rewrite->prefix.n;
    return n;
}

size_t pt_resp_write_head(pt_outq_t *q, const pt_resp_head_t *h, const pt_fx_t *fx, const char *date)
{
    const pt_hdr_edit_t *edits = fx ? fx->resp : NULL;
    size_t nedits = fx ? fx->nresp : 0;
    const char *reason = h->reason.n ? "" : pt_http_reason(h->status);
    size_t reason_len = h->reason.n ? 0 : strlen(reason), date_len = date ? PT_DATE_LEN : 0;
    pt_head_t o;
    if (!pt_head_begin(&o, q, bound(h, fx, date_len, reason_len)))
        return 0;
    PT_HEAD_LIT(&o, "HTTP/1.1 ");
    pt_head_u64(&o, (unsigned)h->status);
    PT_HEAD_LIT(&o, " ");
    if (h->reason.n) /* the source's own phrase */
        pt_head_str(&o, h->reason);
    else
        pt_head_put(&o, reason, reason_len);
    PT_HEAD_LIT(&o, "\r\n");
    bool want_date = h->date && date, want_server = h->server;
    const pt_resp_rewrite_t *rw = h->rewrite;
    pt_str_t keep;
    for (size_t i = 0; i < h->nfields; i++) {
        const pt_h1_header_t *f = &h->fields[i];
        if ((h->skip && h->skip(f, h->skip_arg)) || (nedits && pt_fx_overrides(edits, nedits, f->name)))
            continue;
        if (want_date && f->name.n == 4 && PT_STR_IEQ(f->name, "date"))
            want_date = false;
        if (want_server && f->name.n == 6 && PT_STR_IEQ(f->name, "server"))
            want_server = false;
        if (rw && rw->field(f, rw->arg, &keep))
            pt_head_field2(&o, f->name, rw->prefix, keep);
        else
            pt_head_field(&o, f->name, f->value);
    }
    if (want_date)
        pt_head_put(&o, date, date_len);
    if (want_server && !(nedits && pt_fx_overrides(edits, nedits, PT_STR("server"))))
        PT_HEAD_LIT(&o, "Server: portico\r\n");
    pt_head_str(&o, h->extra);
    for (size_t i = 0; i < nedits; i++)
        if (edits[i].op != PT_HDR_REMOVE)
            pt_head_field(&o, edits[i].name, edits[i].value);
    if (h->content_length >= 0 && h->status != 204 && h->status >= 200) {
        PT_HEAD_LIT(&o, "Content-Length: ");
        pt_head_u64(&o, (unsigned long long)h->content_length);
        PT_HEAD_LIT(&o, "\r\n");
    } else if (h->chunked) {
        PT_HEAD_LIT(&o, "Transfer-Encoding: chunked\r\n");
    }
    if (h->close)
        PT_HEAD_LIT(&o, "Connection: close\r\n");
    else if (h->keep_alive_1_0)
        PT_HEAD_LIT(&o, "Connection: keep-alive\r\n");
    PT_HEAD_LIT(&o, "\r\n");
    size_t n = pt_head_len(&o);
    if (n && h->log) /* $sent_http_NAME: what goes out, edits and all */
        pt_accesslog_take_sent(h->log, o.start, n);
    return pt_head_commit(&o, q) ? n : 0;
}
