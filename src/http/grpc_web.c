/* gRPC-Web's framing and base64 (grpc_web.h). */
#include "config.h"

#include <string.h>

#include "portico/grpc_web.h"

static pt_str_t sub(pt_str_t s, size_t from, size_t n)
{
    return (pt_str_t){s.p + from, n};
}

/* "application/grpc-web" then "-text"?, "+subtype"?, then ";params" or nothing */
pt_grpc_web_mode_t pt_grpc_web_mode(pt_str_t ct, char *up, size_t cap)
{
    size_t i = 20; /* strlen("application/grpc-web") */
    if (ct.n < i || !pt_str_caseeq(sub(ct, 0, i), PT_STR("application/grpc-web")))
        return PT_GRPC_WEB_NONE;
    pt_grpc_web_mode_t mode = PT_GRPC_WEB_BINARY;
    if (ct.n - i >= 5 && pt_str_caseeq(sub(ct, i, 5), PT_STR("-text"))) {
        mode = PT_GRPC_WEB_TEXT;
        i += 5;
    }
    size_t from = i, end = i;
    if (i < ct.n && ct.p[i] == '+') {
        end = from = i + 1;
        while (end < ct.n && ct.p[end] != ';' && ct.p[end] != ' ' && ct.p[end] != '\t')
            end++;
        if (end == from)
            return PT_GRPC_WEB_NONE;
    }
    size_t rest = end;
    while (rest < ct.n && (ct.p[rest] == ' ' || ct.p[rest] == '\t'))
        rest++;
    if (rest < ct.n && ct.p[rest] != ';')
        return PT_GRPC_WEB_NONE; /* application/grpc-webx, application/grpc-web-textual */
    size_t n = end - from, len = 16 + (n ? n + 1 : 0);
    if (len + 1 > cap)
        return PT_GRPC_WEB_NONE;
    memcpy(up, "application/grpc", 16);
    if (n) {
        up[16] = '+';
        memcpy(up + 17, ct.p + from, n);
    }
    up[len] = '\0';
    return mode;
}

size_t pt_grpc_web_response_type(pt_grpc_web_mode_t mode, pt_str_t ut, char *out, size_t cap)
{
    pt_str_t web = mode == PT_GRPC_WEB_TEXT ? PT_STR("application/grpc-web-text") : PT_STR("application/grpc-web");
    size_t end = 17;
    while (end < ut.n && ut.p[end] != ';' && ut.p[end] != ' ')
        end++;
    /* the subtype of application/grpc+json; application/grpc alone is proto */
    pt_str_t suffix = ut.n > 17 && pt_str_caseeq(sub(ut, 0, 17), PT_STR("application/grpc+")) ? sub(ut, 16, end - 16)
                                                                                              : PT_STR("+proto");
    if (web.n + suffix.n > cap)
        return 0;
    memcpy(out, web.p, web.n);
    memcpy(out + web.n, suffix.p, suffix.n);
    return web.n + suffix.n;
}

long pt_b64_stream_decode(pt_b64_stream_t *d, const char *in, size_t n, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        int v = 0;
        if (ch == '=') { /* the 3rd or 4th character of a quantum, and '=' only after it */
            if (d->nq < 2)
                return -1;
            d->pads++;
        } else if ((v = pt_base64_value(ch, false)) < 0 || d->pads) {
            return -1;
        }
        d->q[d->nq++] = (unsigned char)v;
        if (d->nq < 4)
            continue;
        unsigned long bits = (unsigned long)d->q[0] << 18 | (unsigned long)d->q[1] << 12 | (unsigned long)d->q[2] << 6 |
                             d->q[3];
        out[o++] = (unsigned char)(bits >> 16);
        if (d->pads < 2)
            out[o++] = (unsigned char)(bits >> 8);
        if (d->pads < 1)
            out[o++] = (unsigned char)bits;
        d->nq = d->pads = 0; /* a padded quantum ends a group: the next starts afresh */
    }
    return (long)o;
}

size_t pt_b64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned long b = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = digits[b >> 18];
        out[o++] = digits[b >> 12 & 63];
        out[o++] = digits[b >> 6 & 63];
        out[o++] = digits[b & 63];
    }
    if (i < n) {
        unsigned long b = (unsigned long)in[i] << 16 | (i + 1 < n ? (unsigned long)in[i + 1] << 8 : 0);
        out[o++] = digits[b >> 18];
        out[o++] = digits[b >> 12 & 63];
        out[o++] = i + 1 < n ? digits[b >> 6 & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

size_t pt_grpc_web_trailers(const nghttp2_nv *nv, size_t n, unsigned char *out, size_t cap)
{
    if (cap < 5)
        return 0;
    size_t len = 5;
    for (size_t i = 0; i < n; i++) {
        if (len + nv[i].namelen + nv[i].valuelen + 3 > cap)
            return 0;
        for (size_t k = 0; k < nv[i].namelen; k++) { /* HTTP/2 names are lower case already; a check costs nothing */
            unsigned char ch = nv[i].name[k];
            out[len++] = ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
        }
        out[len++] = ':';
        memcpy(out + len, nv[i].value, nv[i].valuelen);
        len += nv[i].valuelen;
        out[len++] = '\r';
        out[len++] = '\n';
    }
    size_t body = len - 5;
    out[0] = 0x80;
    out[1] = (unsigned char)(body >> 24);
    out[2] = (unsigned char)(body >> 16);
    out[3] = (unsigned char)(body >> 8);
    out[4] = (unsigned char)body;
    return len;
}
