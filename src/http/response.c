/* The response head writer (see response.h). */
#include "config.h"

#include <string.h>

#include "portico/filter.h"
#include "portico/head.h"
#include "portico/http.h"
#include "portico/response.h"

/* An upper bound of the head's size: every part that can go in, each
 * field growing by its ": " and CRLF at most. */
static size_t bound(const pt_resp_head_t *h, const pt_fx_t *fx, size_t date_len, const char *reason)
{
    size_t n = 160 + date_len + strlen(reason) + h->reason.n + h->extra.n;
    for (size_t i = 0; i < h->nfields; i++)
        n += h->fields[i].name.n + h->fields[i].value.n + 4;
    for (size_t i = 0; fx && i < fx->nresp; i++)
        n += fx->resp[i].name.n + fx->resp[i].value.n + 4;
    return n;
}

size_t pt_resp_write_head(pt_outq_t *q, const pt_resp_head_t *h, const pt_fx_t *fx, const char *date)
{
    const pt_hdr_edit_t *edits = fx ? fx->resp : NULL;
    size_t nedits = fx ? fx->nresp : 0;
    const char *reason = h->reason.n ? "" : pt_http_reason(h->status);
    size_t date_len = date ? strlen(date) : 0;
    pt_head_t o;
    if (!pt_head_begin(&o, q, bound(h, fx, date_len, reason)))
        return 0;
    PT_HEAD_LIT(&o, "HTTP/1.1 ");
    pt_head_u64(&o, (unsigned)h->status);
    PT_HEAD_LIT(&o, " ");
    if (h->reason.n)
        pt_head_str(&o, h->reason);
    else
        pt_head_cs(&o, reason);
    PT_HEAD_LIT(&o, "\r\n");
    bool has_date = false, has_server = false;
    for (size_t i = 0; i < h->nfields; i++) {
        const pt_h1_header_t *f = &h->fields[i];
        if ((h->skip && h->skip(f, h->skip_arg)) || (nedits && pt_fx_overrides(edits, nedits, f->name)))
            continue;
        has_date |= PT_STR_IEQ(f->name, "date");
        has_server |= PT_STR_IEQ(f->name, "server");
        pt_head_field(&o, f->name, f->value);
    }
    if (h->date && !has_date && date)
        pt_head_put(&o, date, date_len);
    if (h->server && !has_server && !(nedits && pt_fx_overrides(edits, nedits, PT_STR("server"))))
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
    return pt_head_commit(&o, q) ? n : 0;
}
