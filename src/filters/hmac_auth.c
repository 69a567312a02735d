/* hmac-auth: a request signed with a consumer's shared secret (Kong's
 * hmac-auth, draft-cavage HTTP signatures; hmac_sig.c parses and
 * verifies).  The signature must cover Date or X-Date, which must be
 * within clock_skew of now, and every header in enforce_headers.  With
 * validate_body, a request with a body must carry a signed Digest header,
 * and the body is hashed as it goes: its last bytes are held back until
 * the digest matches, so the upstream never gets a whole request whose
 * body is not the one signed (a mismatch is 401, the upstream connection
 * closed before its end). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "portico/auth.h"
#include "portico/conf.h"
#include "portico/config.h"
#include "portico/conn.h"
#include "portico/credentials.h"
#include "portico/filter.h"
#include "portico/hmac_sig.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/value.h"
#include "portico/worker.h"

typedef struct conf {
    const pt_node_t *node;
    int64_t clock_skew;
    pt_strlist_t enforce_headers, algorithms;
    bool validate_body, hide;
    char *realm;
    unsigned allowed; /* bit per pt_hmac_alg_t */
} conf_t;

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    static char *all[] = {"hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"};
    if (!pt_node_get(n, "algorithms"))
        c->algorithms = (pt_strlist_t){all, 4};
    const char *why = pt_value_field_text(c->realm, true);
    if (why) {
        pt_conf_error_key(cc, n, "realm", "%s", why);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < c->algorithms.n; i++) {
        pt_hmac_alg_t a;
        if (!c->algorithms.v[i] || pt_hmac_alg_from_name(pt_str_from(c->algorithms.v[i]), &a) < 0) {
            pt_conf_error_key(cc, n, "algorithms", "unknown algorithm \"%s\" (hmac-sha1, hmac-sha256, hmac-sha384, "
                              "hmac-sha512)", c->algorithms.v[i] ? c->algorithms.v[i] : "");
            rc = -1;
        } else {
            c->allowed |= 1u << a;
        }
    }
    if (!c->algorithms.n) {
        pt_conf_error_key(cc, n, "algorithms", "at least one algorithm");
        rc = -1;
    }
    return rc;
}

static const pt_directive_t keys[] = {
    {"clock_skew", PT_T_DURATION, offsetof(conf_t, clock_skew), "300s", 1000, 86400000, NULL, NULL, NULL, NULL,
     NULL, 0, NULL, "How far the signed Date (or X-Date) may be from now, either way; older or newer is 401."},
    {"enforce_headers", PT_T_LIST, offsetof(conf_t, enforce_headers), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem,
     NULL, NULL, 0, "list of strings",
     "Headers every signature must cover (besides Date or X-Date): field names, request-line, "
     "(request-target) or @request-target."},
    {"algorithms", PT_T_LIST, offsetof(conf_t, algorithms), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL,
     NULL, 0, "list of strings",
     "The algorithms accepted. Unset: hmac-sha1, hmac-sha256, hmac-sha384 and hmac-sha512, as Kong."},
    {"validate_body", PT_T_BOOL, offsetof(conf_t, validate_body), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL,
     "A request with a body must carry a signed Digest header (SHA-256= or SHA-512=) that matches it; its last "
     "bytes reach the upstream only once it does."},
    {"hide_credentials", PT_T_BOOL, offsetof(conf_t, hide), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Remove the Authorization (or Proxy-Authorization) field from the request the upstream gets."},
    {"realm", PT_T_STR, offsetof(conf_t, realm), "portico", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The realm of the challenge: WWW-Authenticate: hmac realm=\"...\"."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "hmac-auth", sizeof(conf_t), keys, check, NULL,
    "Authenticates requests signed with a consumer's shared secret (consumers' hmac-auth credentials), in "
    "Kong's Authorization: hmac username=... format or draft-cavage's Signature keyId=.... Example: "
    "hmac-auth: { clock_skew: 300s, enforce_headers: [date, \"@request-target\"], validate_body: true }."};

typedef struct state {
    pt_digest_ctx_t *digest;
    pt_str_t digest_header; /* copied: the head moves */
} state_t;

static size_t challenge(const void *vconf, bool invalid, char *buf, size_t size)
{
    const conf_t *conf = vconf;
    (void)invalid;
    int n = snprintf(buf, size, "hmac realm=\"%s\"", conf->realm);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

typedef struct lookup {
    pt_conn_t *c;
    const pt_h1_req_t *req;
} lookup_t;

/* A header's value, several fields of the name joined with ", "; Host
 * from the request's host (HTTP/2: :authority). */
static pt_str_t header_of(void *ctx, pt_str_t lname)
{
    lookup_t *l = ctx;
    if (pt_str_eq(lname, PT_STR("host")) && l->req->host.p)
        return l->req->host;
    pt_str_t first = PT_STR_NULL;
    size_t count = 0, total = 0;
    for (size_t i = 0; i < l->req->nheaders; i++)
        if (pt_str_caseeq(l->req->headers[i].name, lname)) {
            if (!count++)
                first = l->req->headers[i].value;
            total += l->req->headers[i].value.n + 2;
        }
    if (count < 2)
        return first;
    char *b = pt_arena_alloc(&l->c->arena, total), *p = b;
    for (size_t i = 0; b && i < l->req->nheaders; i++)
        if (pt_str_caseeq(l->req->headers[i].name, lname)) {
            if (p != b) {
                memcpy(p, ", ", 2);
                p += 2;
            }
            memcpy(p, l->req->headers[i].value.p, l->req->headers[i].value.n);
            p += l->req->headers[i].value.n;
        }
    return b ? (pt_str_t){b, (size_t)(p - b)} : PT_STR_NULL;
}

static bool signs(const pt_hmac_sig_t *s, pt_str_t name)
{
    for (size_t i = 0; i < s->nheaders; i++)
        if (pt_str_caseeq(s->headers[i], name))
            return true;
    return false;
}

/* An HTTP-date (RFC 9110 5.6.7, IMF-fixdate) as seconds, or -1. */
static time_t http_date(pt_str_t v)
{
    char buf[64];
    struct tm tm = {0};
    if (v.n >= sizeof(buf))
        return -1;
    memcpy(buf, v.p, v.n);
    buf[v.n] = '\0';
    const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return end && !*end ? timegm(&tm) : -1;
}

/* The signed Date or X-Date is there and near enough now. */
static const char *check_date(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, const pt_hmac_sig_t *s,
                              int *reason)
{
    const pt_h1_header_t *d = pt_h1_find(req, PT_STR("x-date"));
    pt_str_t name = PT_STR("x-date");
    if (!d || !signs(s, name)) {
        d = pt_h1_find(req, PT_STR("date"));
        name = PT_STR("date");
    }
    *reason = PT_AUTH_INVALID;
    if (!d || !signs(s, name))
        return "A signed date or x-date header is required for HMAC Authentication";
    time_t t = http_date(d->value), now = time(NULL);
    if (t < 0)
        return "The date or x-date header is not an HTTP-date";
    *reason = PT_AUTH_EXPIRED;
    if ((t > now ? t - now : now - t) * 1000 > conf->clock_skew)
        return "HMAC signature cannot be verified: the date is outside the clock skew";
    return NULL;
}

/* Checks the signature: NULL, or what is wrong (and *reason). */
static const char *verify(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, pt_str_t value,
                          const pt_credential_conf_t **out, int *reason)
{
    pt_hmac_sig_t s;
    const char *err;
    *reason = PT_AUTH_INVALID;
    if (pt_hmac_sig_parse(&c->arena, value, &s, &err) < 0)
        return "Invalid HMAC signature header";
    if (!(conf->allowed & (1u << s.alg)))
        return "The HMAC algorithm is not allowed";
    for (size_t i = 0; i < conf->enforce_headers.n; i++)
        if (!signs(&s, pt_str_from(conf->enforce_headers.v[i])))
            return "The HMAC signature does not cover every header it must";
    const char *why = check_date(c, req, conf, &s, reason);
    if (why)
        return why;
    const pt_credential_conf_t *cr = pt_creds_find(c->w->conf, PT_CRED_HMAC, s.key_id);
    *reason = PT_AUTH_UNKNOWN_KEY;
    if (!cr)
        return "HMAC signature cannot be verified: unknown key";
    lookup_t l = {c, req};
    char version[16];
    snprintf(version, sizeof(version), pt_conn_is_stream(c) ? "HTTP/2.0" : "HTTP/1.%d", req->minor);
    pt_hmac_req_t hr = {req->method, req->target, pt_str_from(version), header_of, &l};
    pt_str_t sstr;
    *reason = PT_AUTH_BAD_SIGNATURE;
    if (pt_hmac_signing_string(&c->arena, &s, &hr, &sstr, &err) < 0)
        return "HMAC signature cannot be verified: a signed header is absent";
    if (!pt_hmac_sig_verify(&s, sstr, cr->secret_raw, cr->secret_len))
        return "HMAC signature does not match";
    if (conf->validate_body && (req->content_length > 0 || req->chunked) && !signs(&s, PT_STR("digest"))) {
        *reason = PT_AUTH_INVALID;
        return "A request with a body needs a signed Digest header";
    }
    *out = cr;
    return NULL;
}

/* An Authorization value of the hmac or Signature scheme? */
static bool hmac_scheme(const pt_h1_header_t *h)
{
    const char *sp = memchr(h->value.p, ' ', h->value.n);
    pt_str_t s = {h->value.p, sp ? (size_t)(sp - h->value.p) : h->value.n};
    return pt_str_caseeq(s, PT_STR("hmac")) || pt_str_caseeq(s, PT_STR("signature"));
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    bool several[2];
    const pt_h1_header_t *pa = pt_auth_header(req, PT_STR("proxy-authorization"), &several[0]);
    const pt_h1_header_t *au = pt_auth_header(req, PT_STR("authorization"), &several[1]);
    if (pt_auth_decided(fx)) { /* another filter's credential: this kind is hidden all the same */
        pt_verdict_t v = PT_NEXT;
        if (conf->hide && pa && hmac_scheme(pa))
            v = pt_auth_hide_header(c, fx, PT_STR("Proxy-Authorization"));
        if (v == PT_NEXT && conf->hide && au && hmac_scheme(au))
            v = pt_auth_hide_header(c, fx, PT_STR("Authorization"));
        return v;
    }
    if (several[0] || several[1])
        return pt_auth_several(c, req, several[0] ? PT_STR("Proxy-Authorization") : PT_STR("Authorization"));
    const pt_h1_header_t *h = pa && hmac_scheme(pa) ? pa : au && hmac_scheme(au) ? au : NULL;
    if (!h)
        return pt_auth_absent(c, req, fx, PT_FILTER_HMAC_AUTH);
    const pt_credential_conf_t *cr = NULL;
    int reason;
    const char *why = verify(c, req, conf, h->value, &cr, &reason);
    if (why)
        return pt_auth_reject(c, req, fx, PT_FILTER_HMAC_AUTH, reason, why);
    const pt_h1_header_t *dg = pt_h1_find(req, PT_STR("digest"));
    if (conf->validate_body && (req->content_length > 0 || req->chunked)) {
        st->digest = pt_digest_start();
        st->digest_header = pt_str_from(pt_arena_strndup(&c->arena, dg->value.p, dg->value.n));
        if (!st->digest || !st->digest_header.p)
            return PT_FAIL;
    } else if (conf->validate_body && dg && !pt_hmac_digest_ok(dg->value, "", 0)) {
        return pt_auth_reject(c, req, fx, PT_FILTER_HMAC_AUTH, PT_AUTH_BAD_SIGNATURE,
                              "The Digest header does not match the body");
    }
    pt_verdict_t v = pt_auth_accept(c, fx, cr->consumer, cr, NULL);
    if (v == PT_NEXT && conf->hide)
        v = pt_auth_hide_header(c, fx, h->name.n == 13 ? PT_STR("Authorization") : PT_STR("Proxy-Authorization"));
    return v;
}

static pt_verdict_t on_body(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *vst, size_t n, bool last)
{
    state_t *st = vst;
    if (!st || !st->digest)
        return PT_NEXT;
    pt_digest_update(st->digest, fx->piece.p, n);
    if (!last)
        return PT_NEXT;
    bool ok = pt_digest_finish_ok(st->digest, st->digest_header);
    st->digest = NULL;
    if (ok)
        return PT_NEXT;
    pt_auth_count_in(c, PT_FILTER_HMAC_AUTH, PT_AUTH_BAD_SIGNATURE); /* on_body: no filter is running */
    pt_log_info("hmac-auth: the body does not match its Digest header, req=%s", c->req->reqid);
    fx->reject = 401;
    return PT_RESPOND;
}

static void on_done(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *vst)
{
    state_t *st = vst;
    if (st && st->digest) {
        pt_digest_free(st->digest);
        st->digest = NULL;
    }
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    const conf_t *conf = vconf;
    if (!pt_creds_count(c, PT_CRED_HMAC))
        pt_conf_warn(cc, conf->node, "hmac-auth: no consumer has a hmac-auth credential: every request with one is refused");
    return 0;
}

const pt_filter_t pt_filter_hmac_auth = {.name = "hmac-auth",
                                         .schema = &schema,
                                         .state_size = sizeof(state_t),
                                         .on_request = on_request,
                                         .on_body = on_body,
                                         .on_done = on_done,
                                         .challenge = challenge,
                                         .link = link_conf};
