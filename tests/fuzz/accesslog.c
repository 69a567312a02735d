/* libFuzzer target: the access log's line writer (accesslog_fmt.c), which
 * writes without bound checks into the room line_max promises.  The
 * first byte picks a format (the JSON default set, JSON with every
 * variable, combined, a template of every variable); the rest are the
 * entry's strings, separated by NUL bytes, each possibly repeated so
 * that values pass every size bound.
 * Invariants checked: the line fits line_max in a buffer of exactly that
 * size (ASan sees a write past it); it is one line of printable ASCII; a
 * JSON line parses, with every field, and each string field decodes
 * (its \u00XX as Latin-1) to a prefix of its value, the whole value
 * when it is short. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/accesslog.h"
#include "portico/accesslog_conf.h"
#include "portico/arena.h"
#include "portico/assert.h"
#include "portico/config.h"
#include "portico/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ALL_VARS                                                                                                     \
    "time_iso8601 remote_addr method target protocol status bytes_in bytes_out request_time route request_id "     \
    "host user_agent referer upstream_addr upstream_status upstream_time tls_protocol tls_cipher completion "       \
    "consumer cache_status trace_id upstream_connect_time upstream_header_time http_x_a sent_http_x_b "             \
    "upstream_http_x_c"

enum { NFORMATS = 4 };

static pt_config_t *load(const char *format, const char *fields)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "listeners: [{ address: 127.0.0.1:1 }]\naccess_log: { path: /dev/null, format: '%s'%s }\n",
             format, fields);
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("a.yaml", yaml, strlen(yaml), &d);
    pt_diag_free(&d);
    PT_ASSERT(c != NULL);
    return c;
}

static pt_config_t **formats(void)
{
    static pt_config_t *c[NFORMATS];
    if (c[0])
        return c;
    char tpl[1024] = "", fields[1024] = ", fields: [";
    const char *v = ALL_VARS;
    while (*v) {
        size_t n = strcspn(v, " ");
        if (strncmp(v, "time_iso8601", n) != 0) /* the JSON format calls it time */
            snprintf(fields + strlen(fields), sizeof(fields) - strlen(fields), "%s%.*s", fields[11] ? ", " : "",
                     (int)n, v);
        snprintf(tpl + strlen(tpl), sizeof(tpl) - strlen(tpl), "\"$%.*s\" ", (int)n, v);
        v += n + (v[n] == ' ');
    }
    strcat(fields, ", time]");
    c[0] = load("json", "");
    c[1] = load("json", fields);
    c[2] = load("combined", "");
    c[3] = load(tpl, "");
    return c;
}

/* The next value: up to a NUL, repeated (data[0] & 15) ^ 2 times, in a
 * buffer of its own size (so a read past it is seen); NULL at the end. */
static char *next(const uint8_t **p, const uint8_t *end, size_t *len)
{
    if (*p >= end)
        return NULL;
    unsigned rep = 1 + (**p & 15) * (**p & 15) * 40; /* up to 9,001 copies */
    (*p)++;
    const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
    size_t n = (size_t)((z ? z : end) - *p);
    if (n * rep > 70000)
        rep = n ? 70000 / n : 1;
    char *s = malloc(n * rep + 1);
    PT_ASSERT(s);
    for (unsigned i = 0; i < rep; i++)
        memcpy(s + i * n, *p, n);
    s[n * rep] = '\0'; /* the C strings of the entry */
    *len = n * rep;
    *p = z ? z + 1 : end;
    return s;
}

/* Decoded JSON (UTF-8 of Latin-1 bytes) back to bytes: is it a prefix of v? */
static bool decodes_to_prefix(pt_str_t dec, const char *v, size_t vn, bool whole)
{
    size_t k = 0;
    for (size_t i = 0; i < dec.n; i++, k++) {
        unsigned char c = (unsigned char)dec.p[i];
        if (c >= 0x80) {
            PT_ASSERT((c == 0xc2 || c == 0xc3) && i + 1 < dec.n);
            c = (unsigned char)(((c & 3) << 6) | (dec.p[++i] & 0x3f));
        }
        if (k >= vn || (unsigned char)v[k] != c)
            return false;
    }
    return !whole || k == vn;
}

/* The peer's text is an address the connection wrote, never a client's bytes. */
static bool address_like(const char *v, size_t n)
{
    if (!v || n > 64)
        return false;
    return strspn(v, "0123456789abcdef.:[]%") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pt_config_t *c = formats()[data[0] % NFORMATS];
    const pt_accesslog_conf_t *conf = &c->access_log;
    const uint8_t *p = data + 1, *end = data + size;
    char *s[20] = {0};
    size_t n[20] = {0};
    for (int i = 0; i < 20; i++)
        s[i] = next(&p, end, &n[i]);
    pt_str_t hdr[8] = {{0}};
    for (size_t i = 0; i < conf->nhdrs && i < 8; i++)
        hdr[i] = (pt_str_t){s[17 + i % 3], s[17 + i % 3] ? n[17 + i % 3] : 0};
    pt_alog_entry_t e = {
        .start = {1700000000 + data[0], (data[0] * 3917) % 1000000},
        .request_us = (int64_t)size * 977 - 5000,
        .peer_ip = {s[0], address_like(s[0], n[0]) ? n[0] : 0}, /* the connection's text */
        .method = {s[1], n[1]},
        .target = {s[2], n[2]},
        .protocol = {s[3], n[3]},
        .host = {s[4], n[4]},
        .user_agent = {s[5], n[5]},
        .referer = {s[6], n[6]},
        .request_id = {s[7], n[7]},
        .status = (int)(size % 700) - 50,
        .bytes_in = (uint64_t)-1 / (size + 1),
        .bytes_out = size * size,
        .completion = (int)(size % 6),
        .route = s[8],
        .consumer = s[9],
        .upstream_addr = s[10],
        .tls_protocol = s[11],
        .tls_cipher = s[12],
        .upstream_status = (int)(size % 3) - 1,
        .upstream_us = size % 2 ? -1 : (int64_t)size * 1000003,
        .upstream_connect_us = (int64_t)size * 7,
        .upstream_header_us = INT64_MAX / 2,
        .cache_status = s[13],
        .trace_id = s[14],
        .hdr = conf->nhdrs ? hdr : NULL,
    };
    char *buf = malloc(conf->line_max); /* exactly the room the writer is given */
    PT_ASSERT(buf);
    size_t len = pt_accesslog_format(conf, &e, buf, conf->line_max);
    PT_ASSERT(len >= 1 && len <= conf->line_max && buf[len - 1] == '\n');
    for (size_t i = 0; i + 1 < len; i++)
        PT_ASSERT(buf[i] >= 0x20 && buf[i] < 0x7f);
    if (conf->kind == PT_ALOG_JSON) {
        pt_arena_t a;
        pt_arena_init(&a, 1 << 16, 0);
        const char *err = NULL;
        pt_json_t *j = pt_json_parse(&a, buf, len, &err);
        PT_ASSERT(j && j->type == PT_JSON_OBJ);
        size_t nf = 0;
        const pt_alog_seg_t *segs = conf->compiled;
        while (segs[nf].var >= 0)
            nf++;
        PT_ASSERT(j->n == nf);
        const struct {
            const char *key;
            pt_str_t v;
        } str[] = {{"method", e.method}, {"target", e.target}, {"user_agent", e.user_agent}, {"host", e.host},
                   {"route", pt_str_from(e.route)}, {"trace_id", pt_str_from(e.trace_id)}};
        for (size_t i = 0; i < sizeof(str) / sizeof(str[0]); i++) {
            const pt_json_t *f = pt_json_get(j, str[i].key);
            if (!f)
                continue; /* not in the default set */
            PT_ASSERT(f->type == PT_JSON_STR);
            PT_ASSERT(decodes_to_prefix(f->s, str[i].v.p, str[i].v.n, str[i].v.n <= 80));
        }
        const pt_json_t *st = pt_json_get(j, "status");
        PT_ASSERT(st && st->is_int && st->i == (e.status > 0 ? e.status : 0));
        pt_arena_free(&a);
    }
    free(buf);
    for (int i = 0; i < 20; i++)
        free(s[i]);
    return 0;
}
