/* HTTP message signatures (Kong's hmac-auth, draft-cavage-http-signatures)
 * and the Digest header.  Parsing is zero-copy: a value is copied into the
 * arena only when it has escapes to undo or capitals to lower.  The MAC is
 * compared in constant time; the base64 decoder is table-free but its
 * timing only depends on the length and validity of what the client sent,
 * never on the secret. */
#include "config.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "portico/arena.h"
#include "portico/assert.h"
#include "portico/hmac_sig.h"
#include "portico/str.h"

static const struct {
    const char *name, *md;
    size_t mac_len;
} algs[] = {
    [PT_HMAC_SHA1] = {"hmac-sha1", "SHA1", 20},
    [PT_HMAC_SHA256] = {"hmac-sha256", "SHA256", 32},
    [PT_HMAC_SHA384] = {"hmac-sha384", "SHA384", 48},
    [PT_HMAC_SHA512] = {"hmac-sha512", "SHA512", 64},
};
#define NALGS (sizeof(algs) / sizeof(algs[0]))

int pt_hmac_alg_from_name(pt_str_t name, pt_hmac_alg_t *alg)
{
    for (size_t i = 0; i < NALGS; i++)
        if (pt_str_caseeq_cs(name, algs[i].name)) {
            *alg = (pt_hmac_alg_t)i;
            return 0;
        }
    return -1;
}

const char *pt_hmac_alg_name(pt_hmac_alg_t alg)
{
    return (size_t)alg < NALGS ? algs[alg].name : "?";
}

size_t pt_hmac_alg_mac_len(pt_hmac_alg_t alg)
{
    return (size_t)alg < NALGS ? algs[alg].mac_len : 0;
}

/* ---- the Authorization value ---- */

enum { P_KEY, P_ALG, P_HEADERS, P_SIG, P_N };

typedef struct parser {
    const char *p, *end;
    pt_arena_t *a;
    const char **err;
    pt_str_t val[P_N];
    bool seen[P_N];
} parser_t;

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void skip_ows(parser_t *ps)
{
    while (ps->p < ps->end && is_ows(*ps->p))
        ps->p++;
}

static pt_str_t take_token(parser_t *ps)
{
    const char *s = ps->p;
    while (ps->p < ps->end && is_tchar((unsigned char)*ps->p))
        ps->p++;
    return (pt_str_t){s, (size_t)(ps->p - s)};
}

/* What a client sent, fit to quote in a message: at most 40 bytes, each
 * one that is not printable ASCII (or is a quote or backslash) as '?'. */
static const char *shown(pt_arena_t *a, pt_str_t v)
{
    size_t n = v.n > 40 ? 40 : v.n;
    char *s = pt_arena_alloc(a, n + 4);
    if (!s)
        return "...";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        s[i] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? '?' : (char)c;
    }
    strcpy(s + n, v.n > n ? "..." : "");
    return s;
}

/* Sets *err to `before "v" after`, v shown (`before` alone when out of
 * memory). */
static int fail_on(parser_t *ps, const char *before, pt_str_t v, const char *after)
{
    const char *m = pt_arena_printf(ps->a, "%s\"%s\"%s", before, shown(ps->a, v), after);
    *ps->err = m ? m : before;
    return -1;
}

static int fail(parser_t *ps, const char *what)
{
    *ps->err = what;
    return -1;
}

/* A quoted-string (RFC 9110 5.6.4) at ps->p, which is on the opening quote.
 * qdtext is HTAB, SP and visible bytes but '"' and '\'; a backslash quotes
 * the byte after it.  Copied into the arena only when it has escapes. */
static int take_quoted(parser_t *ps, pt_str_t *v)
{
    const char *s = ++ps->p;
    size_t escapes = 0;
    for (;; ps->p++) {
        if (ps->p >= ps->end)
            return fail(ps, "unterminated quoted string");
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"')
            break;
        if (c == '\\') {
            if (++ps->p >= ps->end)
                return fail(ps, "unterminated quoted string");
            c = (unsigned char)*ps->p;
            escapes++;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return fail(ps, "control character in a quoted string");
    }
    *v = (pt_str_t){s, (size_t)(ps->p - s)};
    ps->p++; /* the closing quote */
    if (!escapes)
        return 0;
    char *d = pt_arena_alloc(ps->a, v->n - escapes);
    if (!d)
        return fail(ps, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (v->p[i] == '\\')
            i++;
        d[o++] = v->p[i];
    }
    *v = (pt_str_t){d, o};
    return 0;
}

/* Which of the parameters we read a name is (P_N: one we ignore). */
static int param_index(pt_str_t name, const char *key_name)
{
    if (pt_str_caseeq_cs(name, key_name))
        return P_KEY;
    if (PT_STR_IEQ(name, "algorithm"))
        return P_ALG;
    if (PT_STR_IEQ(name, "headers"))
        return P_HEADERS;
    if (PT_STR_IEQ(name, "signature"))
        return P_SIG;
    return P_N;
}

/* name OWS "=" OWS quoted-string, then OWS and a ',' or the end.  Empty
 * list elements (",,") are skipped, as RFC 9110 5.6.1 asks. */
static int parse_params(parser_t *ps, const char *key_name)
{
    for (;;) {
        skip_ows(ps);
        if (ps->p == ps->end)
            return 0;
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        pt_str_t name = take_token(ps);
        if (!name.n)
            return fail_on(ps, "expected a parameter name at ", (pt_str_t){ps->p, (size_t)(ps->end - ps->p)}, "");
        skip_ows(ps);
        if (ps->p == ps->end || *ps->p != '=')
            return fail_on(ps, "expected '=' after ", name, "");
        ps->p++;
        skip_ows(ps);
        if (ps->p == ps->end || *ps->p != '"')
            return fail_on(ps, "expected a quoted value for ", name, "");
        pt_str_t v;
        if (take_quoted(ps, &v) < 0)
            return -1;
        int k = param_index(name, key_name);
        if (k < P_N) {
            if (ps->seen[k])
                return fail_on(ps, "duplicate parameter ", name, "");
            ps->seen[k] = true;
            ps->val[k] = v;
        }
        skip_ows(ps);
        if (ps->p < ps->end && *ps->p != ',')
            return fail_on(ps, "expected ',' after parameter ", name, "");
    }
}

static bool is_pseudo(pt_str_t name)
{
    return pt_str_eq(name, PT_STR("(request-target)")) || pt_str_eq(name, PT_STR("@request-target"));
}

/* headers="date (request-target) x-custom": names separated by spaces,
 * lower-cased (in a copy only when there are capitals). */
static int parse_headers(parser_t *ps, pt_str_t list, pt_hmac_sig_t *out)
{
    size_t upper = 0;
    for (size_t i = 0; i < list.n; i++)
        upper += list.p[i] >= 'A' && list.p[i] <= 'Z';
    if (upper) {
        char *d = pt_arena_alloc(ps->a, list.n);
        if (!d)
            return fail(ps, "out of memory");
        for (size_t i = 0; i < list.n; i++)
            d[i] = pt_lower(list.p[i]);
        list.p = d;
    }
    size_t i = 0;
    for (;;) {
        while (i < list.n && is_ows(list.p[i]))
            i++;
        if (i == list.n)
            break;
        size_t s = i;
        while (i < list.n && !is_ows(list.p[i]))
            i++;
        pt_str_t name = {list.p + s, i - s};
        bool token = true;
        for (size_t j = 0; j < name.n; j++)
            token = token && is_tchar((unsigned char)name.p[j]);
        if (!token && !is_pseudo(name))
            return fail_on(ps, "unsupported header ", name, "");
        if (out->nheaders == PT_HMAC_MAX_HEADERS)
            return fail(ps, "more than 32 signed headers");
        out->headers[out->nheaders++] = name;
    }
    if (!out->nheaders)
        return fail(ps, "headers is empty");
    return 0;
}

/* The two schemes differ only in the name of the key id. */
typedef struct scheme {
    const char *name, *key, *no_key, *empty_key;
} scheme_t;
static const scheme_t schemes[] = {
    {"hmac", "username", "no username", "username is empty"},
    {"signature", "keyId", "no keyId", "keyId is empty"},
};

/* The parameters, once all are read: required ones, their values. */
static int check_params(parser_t *ps, const scheme_t *sch, pt_hmac_sig_t *out)
{
    if (!ps->seen[P_KEY])
        return fail(ps, sch->no_key);
    if (!ps->val[P_KEY].n)
        return fail(ps, sch->empty_key);
    out->key_id = ps->val[P_KEY];
    if (!ps->seen[P_ALG])
        return fail(ps, "no algorithm");
    if (pt_hmac_alg_from_name(ps->val[P_ALG], &out->alg) < 0)
        return fail_on(ps, "unknown algorithm ", ps->val[P_ALG], "");
    if (!ps->seen[P_SIG])
        return fail(ps, "no signature");
    long n = pt_base64_decode(ps->val[P_SIG], out->sig, sizeof(out->sig), false);
    if (n < 0)
        return fail(ps, "signature is not base64 or too long");
    out->sig_len = (size_t)n;
    if (out->sig_len != algs[out->alg].mac_len) {
        const char *m = pt_arena_printf(ps->a, "signature is %zu bytes, %s makes %zu", out->sig_len,
                                        algs[out->alg].name, algs[out->alg].mac_len);
        return fail(ps, m ? m : "signature has the wrong length");
    }
    if (!ps->seen[P_HEADERS]) {
        out->headers[0] = PT_STR("date");
        out->nheaders = 1;
        return 0;
    }
    return parse_headers(ps, ps->val[P_HEADERS], out);
}

int pt_hmac_sig_parse(pt_arena_t *a, pt_str_t value, pt_hmac_sig_t *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    if (!value.p)
        value = PT_STR("");
    parser_t ps = {.p = value.p, .end = value.p + value.n, .a = a, .err = err};
    skip_ows(&ps);
    pt_str_t scheme = take_token(&ps);
    const scheme_t *sch = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (pt_str_caseeq_cs(scheme, schemes[i].name))
            sch = &schemes[i];
    if (!scheme.n)
        return fail(&ps, "no authentication scheme");
    if (!sch)
        return fail_on(&ps, "unknown authentication scheme ", scheme, "");
    if (ps.p == ps.end)
        return fail(&ps, "no parameters");
    if (!is_ows(*ps.p))
        return fail_on(&ps, "expected a space after ", scheme, "");
    if (parse_params(&ps, sch->key) < 0)
        return -1;
    return check_params(&ps, sch, out);
}

/* ---- the signing string ---- */

enum { H_FIELD, H_REQUEST_LINE, H_REQUEST_TARGET };

static int header_kind(pt_str_t name)
{
    if (pt_str_eq(name, PT_STR("request-line")))
        return H_REQUEST_LINE;
    return is_pseudo(name) ? H_REQUEST_TARGET : H_FIELD;
}

static char *put(char *o, const char *p, size_t n)
{
    if (n)
        memcpy(o, p, n);
    return o + n;
}

int pt_hmac_signing_string(pt_arena_t *a, const pt_hmac_sig_t *s, const pt_hmac_req_t *r, pt_str_t *out,
                           const char **err)
{
    PT_ASSERT(s->nheaders <= PT_HMAC_MAX_HEADERS); /* as pt_hmac_sig_parse leaves it */
    pt_str_t vals[PT_HMAC_MAX_HEADERS];
    size_t total = s->nheaders ? s->nheaders - 1 : 0; /* the newlines */
    for (size_t i = 0; i < s->nheaders; i++) {
        pt_str_t name = s->headers[i];
        switch (header_kind(name)) {
        case H_REQUEST_LINE:
            total += r->method.n + 1 + r->target.n + 1 + r->version.n;
            break;
        case H_REQUEST_TARGET:
            total += r->method.n + 1 + r->target.n;
            break;
        default:
            vals[i] = r->header(r->ctx, name);
            if (!vals[i].p) {
                parser_t ps = {.a = a, .err = err};
                return fail_on(&ps, "signed header ", name, " is absent");
            }
            total += name.n + 2 + vals[i].n;
        }
    }
    char *buf = pt_arena_alloc(a, total ? total : 1), *o = buf;
    if (!buf) {
        *err = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < s->nheaders; i++) {
        pt_str_t name = s->headers[i];
        if (i)
            *o++ = '\n';
        switch (header_kind(name)) {
        case H_REQUEST_LINE:
            o = put(o, r->method.p, r->method.n);
            *o++ = ' ';
            o = put(o, r->target.p, r->target.n);
            *o++ = ' ';
            o = put(o, r->version.p, r->version.n);
            break;
        case H_REQUEST_TARGET:
            for (size_t j = 0; j < r->method.n; j++)
                *o++ = pt_lower(r->method.p[j]);
            *o++ = ' ';
            o = put(o, r->target.p, r->target.n);
            break;
        default:
            o = put(o, name.p, name.n);
            o = put(o, ": ", 2);
            o = put(o, vals[i].p, vals[i].n);
        }
    }
    *out = (pt_str_t){buf, (size_t)(o - buf)};
    return 0;
}

/* ---- the MAC ---- */

/* HMAC(md, key, data) into mac (EVP_MAX_MD_SIZE bytes): its length, or 0.
 * The HMAC implementation is fetched once per process. */
static size_t hmac(const char *md, const void *key, size_t keylen, pt_str_t data, unsigned char *mac)
{
    static EVP_MAC *impl;
    if (!impl && !(impl = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL)))
        return 0;
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(impl);
    if (!c)
        return 0;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0),
                           OSSL_PARAM_construct_end()};
    size_t n = 0;
    /* an empty secret is a valid key; OpenSSL takes a NULL key as "keep the
     * previous one", so it gets a pointer to nothing instead */
    if (!EVP_MAC_init(c, keylen ? key : (const void *)"", keylen, params) ||
        !EVP_MAC_update(c, (const unsigned char *)(data.n ? data.p : ""), data.n) ||
        !EVP_MAC_final(c, mac, &n, EVP_MAX_MD_SIZE))
        n = 0;
    EVP_MAC_CTX_free(c);
    return n;
}

bool pt_hmac_sig_verify(const pt_hmac_sig_t *s, pt_str_t signing_string, const void *secret, size_t n)
{
    if ((size_t)s->alg >= NALGS)
        return false;
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len = hmac(algs[s->alg].md, secret, n, signing_string, mac);
    /* the length is public (it comes with the algorithm): only the bytes
     * must be compared in constant time */
    if (!len || len != s->sig_len)
        return false;
    return CRYPTO_memcmp(mac, s->sig, len) == 0;
}

/* ---- Digest ---- */

enum { D_SHA256 = 1, D_SHA512 = 2 };

/* Walks the Digest header: the set of supported algorithms it names
 * (D_*), or -1 when an element has no '='.  With digests given (either may
 * be NULL when the header does not name it), -1 also when one of them does
 * not match. */
static int digest_walk(pt_str_t h, const unsigned char *d256, const unsigned char *d512)
{
    const char *p = h.p, *end = h.p + h.n;
    pt_str_t el;
    int seen = 0;
    while (h.n && pt_str_next_token(&p, end, &el)) {
        const char *eq = memchr(el.p, '=', el.n);
        if (!eq)
            return -1;
        pt_str_t alg = {el.p, (size_t)(eq - el.p)}, val = {eq + 1, (size_t)(el.p + el.n - eq - 1)};
        while (alg.n && is_ows(alg.p[alg.n - 1]))
            alg.n--;
        while (val.n && is_ows(*val.p))
            val.p++, val.n--;
        int which = PT_STR_IEQ(alg, "sha-256") ? D_SHA256 : PT_STR_IEQ(alg, "sha-512") ? D_SHA512 : 0;
        if (!which)
            continue; /* MD5, SHA, UNIXsum...: not ours to check */
        seen |= which;
        const unsigned char *want = which == D_SHA256 ? d256 : d512;
        size_t want_n = which == D_SHA256 ? 32 : 64;
        if (!d256 && !d512)
            continue;
        unsigned char got[64];
        if (!want || pt_base64_decode(val, got, sizeof(got), false) != (long)want_n || CRYPTO_memcmp(got, want, want_n))
            return -1;
    }
    return seen;
}

bool pt_hmac_digest_ok(pt_str_t digest_header, const void *body, size_t n)
{
    int want = digest_walk(digest_header, NULL, NULL);
    if (want <= 0)
        return false;
    unsigned char d256[32], d512[64];
    const void *b = n ? body : "";
    if ((want & D_SHA256) && !EVP_Digest(b, n, d256, NULL, EVP_sha256(), NULL))
        return false;
    if ((want & D_SHA512) && !EVP_Digest(b, n, d512, NULL, EVP_sha512(), NULL))
        return false;
    return digest_walk(digest_header, (want & D_SHA256) ? d256 : NULL, (want & D_SHA512) ? d512 : NULL) > 0;
}

struct pt_digest_ctx {
    EVP_MD_CTX *sha256, *sha512;
    bool failed; /* OpenSSL said no on the way: the digest cannot match */
};

pt_digest_ctx_t *pt_digest_start(void)
{
    pt_digest_ctx_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->sha256 = EVP_MD_CTX_new();
    d->sha512 = EVP_MD_CTX_new();
    if (!d->sha256 || !d->sha512 || !EVP_DigestInit_ex(d->sha256, EVP_sha256(), NULL) ||
        !EVP_DigestInit_ex(d->sha512, EVP_sha512(), NULL)) {
        pt_digest_free(d);
        return NULL;
    }
    return d;
}

void pt_digest_update(pt_digest_ctx_t *d, const void *p, size_t n)
{
    if (!d || !n)
        return;
    if (!EVP_DigestUpdate(d->sha256, p, n) || !EVP_DigestUpdate(d->sha512, p, n))
        d->failed = true;
}

bool pt_digest_finish_ok(pt_digest_ctx_t *d, pt_str_t digest_header)
{
    if (!d)
        return false;
    unsigned char d256[32], d512[64];
    bool ok = !d->failed && EVP_DigestFinal_ex(d->sha256, d256, NULL) && EVP_DigestFinal_ex(d->sha512, d512, NULL) &&
              digest_walk(digest_header, d256, d512) > 0;
    pt_digest_free(d);
    return ok;
}

void pt_digest_free(pt_digest_ctx_t *d)
{
    if (!d)
        return;
    EVP_MD_CTX_free(d->sha256);
    EVP_MD_CTX_free(d->sha512);
    free(d);
}
