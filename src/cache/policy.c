/* The response cache's rules for storing and reusing (RFC 9111 as a shared
 * cache, RFC 5861, RFC 9213): what the header fields say, read once into
 * pt_cache_resp_info_t / pt_cache_req_info_t, then decisions over those.
 * Vary, conditionals and updates from a 304 are in vary.c.
 *
 * Every value comes from an upstream or a client that may be hostile, so
 * each parser takes the conservative reading when a field is malformed:
 * a bad max-age makes the response stale, a bad Expires too (§5.3), a
 * directive given twice with different values counts at its smaller
 * value, an unterminated quoted string swallows the rest of its line
 * (a no-cache="... hides nothing that follows it).  Numbers saturate at
 * 2^31 (§1.2.2) and every time fits an int64_t of milliseconds. */
#include "config.h"

#include "portico/cache_policy.h"
#include "portico/http.h"

#define SEC_MS 1000LL
#define HEURISTIC_MAX_MS (24LL * 3600 * SEC_MS) /* §4.2.2: more needs a warning nobody reads */

/* ---- Cache-Control ---- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* delta-seconds (§1.2.2): digits only, saturating at 2^31; -1 when not. */
static int64_t parse_delta(pt_str_t v)
{
    if (v.n == 0)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        x = x * 10 + (v.p[i] - '0');
        if (x > PT_CC_DELTA_MAX)
            x = PT_CC_DELTA_MAX;
    }
    return x;
}

/* A directive as read: without an argument, with one (a token or the
 * inside of a quoted string, escapes left in), or malformed. */
enum arg_kind { ARG_NONE, ARG_VALUE, ARG_BAD };

/* Skips a quoted string starting at p (on its '"'); returns the position
 * of its closing quote, or end when it has none. */
static const char *skip_quoted(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\' && p + 1 < end)
            p++;
        else if (*p == '"')
            return p;
    }
    return end;
}

/* One delta-seconds directive into *field: a bad value leaves it (and
 * says so), two values keep the smaller. */
static bool set_delta(int64_t *field, enum arg_kind kind, pt_str_t arg, int64_t no_arg)
{
    int64_t v = kind == ARG_VALUE ? parse_delta(arg) : kind == ARG_NONE ? no_arg : -1;
    if (v < 0)
        return false;
    if (*field == PT_CC_ABSENT || v < *field)
        *field = v;
    return true;
}

/* Applies one directive.  Flags that only restrict (no-store, no-cache,
 * must-revalidate...) count whatever argument they carry; those that
 * allow more (public, must-understand, which lifts no-store; immutable)
 * only in their exact form. */
static void apply(pt_cc_t *cc, pt_str_t name, enum arg_kind kind, pt_str_t arg)
{
    static const struct {
        const char *name;
        unsigned flag;
        bool exact;
    } flags[] = {
        {"no-store", PT_CC_NO_STORE, false},
        {"no-cache", PT_CC_NO_CACHE, false},
        {"private", PT_CC_PRIVATE, false},
        {"public", PT_CC_PUBLIC, true},
        {"must-revalidate", PT_CC_MUST_REVALIDATE, false},
        {"proxy-revalidate", PT_CC_PROXY_REVALIDATE, false},
        {"only-if-cached", PT_CC_ONLY_IF_CACHED, false},
        {"no-transform", PT_CC_NO_TRANSFORM, false},
        {"must-understand", PT_CC_MUST_UNDERSTAND, true},
        {"immutable", PT_CC_IMMUTABLE, true},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (pt_str_caseeq_cs(name, flags[i].name)) {
            if (!flags[i].exact || kind == ARG_NONE)
                cc->flags |= flags[i].flag;
            return;
        }
    if (PT_STR_IEQ(name, "max-age")) {
        if (!set_delta(&cc->max_age, kind, arg, -1))
            cc->invalid_age = true;
    } else if (PT_STR_IEQ(name, "s-maxage")) {
        if (!set_delta(&cc->s_maxage, kind, arg, -1))
            cc->invalid_age = true;
    } else if (PT_STR_IEQ(name, "max-stale")) {
        set_delta(&cc->max_stale, kind, arg, PT_CC_DELTA_MAX);
    } else if (PT_STR_IEQ(name, "min-fresh")) {
        set_delta(&cc->min_fresh, kind, arg, -1);
    } else if (PT_STR_IEQ(name, "stale-while-revalidate")) {
        set_delta(&cc->stale_while_revalidate, kind, arg, -1);
    } else if (PT_STR_IEQ(name, "stale-if-error")) {
        set_delta(&cc->stale_if_error, kind, arg, -1);
    }
}

/* Reads the argument after '=' at *pp: a quoted string (its inside) or a
 * token; ARG_BAD when neither. */
static enum arg_kind read_arg(const char **pp, const char *end, pt_str_t *arg)
{
    const char *p = *pp;
    while (p < end && is_ows(*p))
        p++;
    if (p < end && *p == '"') {
        const char *q = skip_quoted(p, end);
        *arg = (pt_str_t){p + 1, (size_t)(q - p - 1)};
        *pp = q < end ? q + 1 : end;
        return q < end ? ARG_VALUE : ARG_BAD;
    }
    const char *s = p;
    while (p < end && pt_http_is_tchar((unsigned char)*p))
        p++;
    *arg = (pt_str_t){s, (size_t)(p - s)};
    *pp = p;
    return p > s ? ARG_VALUE : ARG_BAD;
}

/* One field line: cache-directive *( OWS "," OWS cache-directive ), with
 * OWS also allowed around '=' (a common mistake that costs nothing).  A
 * member that is not a directive ends at the next comma outside quotes;
 * if it begins with a directive's name, that directive counts as bad. */
static void parse_line(pt_cc_t *cc, pt_str_t v)
{
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        if (is_ows(*p) || *p == ',') {
            p++;
            continue;
        }
        const char *s = p;
        while (p < end && pt_http_is_tchar((unsigned char)*p))
            p++;
        pt_str_t name = {s, (size_t)(p - s)}, arg = PT_STR_NULL;
        while (p < end && is_ows(*p))
            p++;
        enum arg_kind kind = ARG_NONE;
        if (p < end && *p == '=') {
            p++;
            kind = read_arg(&p, end, &arg);
            while (p < end && is_ows(*p))
                p++;
        }
        if (p < end && *p != ',') {
            kind = ARG_BAD;
            while (p < end && *p != ',') {
                const char *q = *p == '"' ? skip_quoted(p, end) : p;
                p = q < end ? q + 1 : end;
            }
        }
        if (name.n)
            apply(cc, name, kind, arg);
    }
}

void pt_cc_parse(pt_cc_t *cc, const pt_h1_header_t *h, size_t n, pt_str_t name)
{
    *cc = (pt_cc_t){.max_age = PT_CC_ABSENT, .s_maxage = PT_CC_ABSENT, .max_stale = PT_CC_ABSENT,
                    .min_fresh = PT_CC_ABSENT, .stale_while_revalidate = PT_CC_ABSENT,
                    .stale_if_error = PT_CC_ABSENT};
    for (size_t i = 0; i < n; i++)
        if (pt_str_caseeq(h[i].name, name)) {
            cc->present = true;
            parse_line(cc, h[i].value);
        }
}

/* ---- other fields ---- */

int64_t pt_cache_age_parse(const pt_h1_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!PT_STR_IEQ(h[i].name, "age"))
            continue;
        const char *p = h[i].value.p;
        pt_str_t t;
        while (pt_str_next_token(&p, h[i].value.p + h[i].value.n, &t)) {
            int64_t v = parse_delta(t);
            if (v >= 0)
                return v;
        }
    }
    return -1;
}

/* The first field line of that name, or NULL. */
static const pt_h1_header_t *find(const pt_h1_header_t *h, size_t n, pt_str_t name)
{
    for (size_t i = 0; i < n; i++)
        if (pt_str_caseeq(h[i].name, name))
            return &h[i];
    return NULL;
}

/* The date of the first line of that name: -1 absent or bad. */
static int64_t first_date(const pt_h1_header_t *h, size_t n, pt_str_t name)
{
    const pt_h1_header_t *f = find(h, n, name);
    return f ? pt_http_date_parse(f->value) : -1;
}

/* Expires: -1 absent; -2 when a line is not a date or two lines differ
 * (§4.2.1 allows "consider the response stale" for either). */
static int64_t expires_of(const pt_h1_header_t *h, size_t n)
{
    int64_t t = -1;
    for (size_t i = 0; i < n; i++) {
        if (!PT_STR_IEQ(h[i].name, "expires"))
            continue;
        int64_t v = pt_http_date_parse(h[i].value);
        if (v < 0 || (t >= 0 && v != t))
            return -2;
        t = v;
    }
    return t;
}

/* Does any line of that name have a member (anything but OWS and commas)? */
static bool has_member(const pt_h1_header_t *h, size_t n, pt_str_t name)
{
    for (size_t i = 0; i < n; i++) {
        if (!pt_str_caseeq(h[i].name, name))
            continue;
        const char *p = h[i].value.p;
        pt_str_t t;
        if (pt_str_next_token(&p, h[i].value.p + h[i].value.n, &t))
            return true;
    }
    return false;
}

/* Does a list field of that name have that member (case-insensitive)? */
static bool has_token(const pt_h1_header_t *h, size_t n, pt_str_t name, pt_str_t tok)
{
    for (size_t i = 0; i < n; i++)
        if (pt_str_caseeq(h[i].name, name) && pt_str_list_has_token(h[i].value, tok))
            return true;
    return false;
}

/* CDN-Cache-Control (RFC 9213 §2.1) replaces Cache-Control, and Expires,
 * when it has a value: an empty one is ignored.  It is read with the
 * Cache-Control parser (as the contract says), not as a Structured Field:
 * what Structured Fields would refuse (an upper-case name...) is read the
 * way Cache-Control would be. */
void pt_cache_resp_info(pt_cache_resp_info_t *ri, int status, const pt_h1_header_t *h, size_t n)
{
    *ri = (pt_cache_resp_info_t){.status = status};
    pt_cc_parse(&ri->cc_plain, h, n, PT_STR("cache-control"));
    pt_cc_parse(&ri->cc, h, n, PT_STR("cdn-cache-control"));
    ri->cdn = ri->cc.present && has_member(h, n, PT_STR("cdn-cache-control"));
    if (!ri->cdn)
        ri->cc = ri->cc_plain;
    ri->date_s = first_date(h, n, PT_STR("date"));
    ri->expires_s = expires_of(h, n);
    ri->last_modified_s = first_date(h, n, PT_STR("last-modified"));
    ri->has_last_modified = ri->last_modified_s >= 0;
    const pt_h1_header_t *etag = find(h, n, PT_STR("etag"));
    ri->has_etag = etag && etag->value.n > 0;
    int64_t age = pt_cache_age_parse(h, n);
    ri->age_s = age > 0 ? age : 0;
    ri->set_cookie = find(h, n, PT_STR("set-cookie")) != NULL;
    ri->has_vary = has_member(h, n, PT_STR("vary"));
    ri->vary_star = has_token(h, n, PT_STR("vary"), PT_STR("*"));
    ri->pragma_no_cache = has_token(h, n, PT_STR("pragma"), PT_STR("no-cache"));
}

void pt_cache_req_info(pt_cache_req_info_t *qi, const pt_h1_header_t *h, size_t n)
{
    *qi = (pt_cache_req_info_t){0};
    pt_cc_parse(&qi->cc, h, n, PT_STR("cache-control"));
    qi->cc.invalid_age = false; /* a request's bad max-age is only absent */
    qi->no_cache = (qi->cc.flags & PT_CC_NO_CACHE) ||
                   (!qi->cc.present && has_token(h, n, PT_STR("pragma"), PT_STR("no-cache")));
    qi->authorization = find(h, n, PT_STR("authorization")) != NULL;
    qi->conditional = find(h, n, PT_STR("if-none-match")) || find(h, n, PT_STR("if-modified-since"));
    qi->range = find(h, n, PT_STR("range")) != NULL;
}

/* ---- storing (§3) ---- */

const char *pt_cache_nostore_name(int why)
{
    static const char *const names[] = {
        [PT_NS_NONE] = "none",
        [PT_NS_METHOD] = "method",
        [PT_NS_STATUS] = "status",
        [PT_NS_NO_STORE] = "no-store",
        [PT_NS_PRIVATE] = "private",
        [PT_NS_AUTHORIZATION] = "authorization",
        [PT_NS_SET_COOKIE] = "set-cookie",
        [PT_NS_VARY_STAR] = "vary-star",
        [PT_NS_NOT_CACHEABLE] = "not-cacheable",
    };
    if (why < 0 || (size_t)why >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[why];
}

/* Heuristically cacheable (RFC 9110 §15.1), less 206, never stored here. */
static bool heuristic_status(int s)
{
    switch (s) {
    case 200: case 203: case 204: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return true;
    default:
        return false;
    }
}

/* The final status codes whose caching rules this cache knows (RFC 9110
 * §15, RFC 6585, RFC 7725): for must-understand (§5.2.2.3).  206 and 304
 * are not among them: this cache never stores either. */
static bool understood_status(int s)
{
    return (s >= 200 && s <= 205) || (s >= 300 && s <= 308 && s != 304 && s != 306) ||
           (s >= 400 && s <= 417) || s == 421 || s == 422 || s == 426 || s == 428 || s == 429 || s == 431 ||
           s == 451 || (s >= 500 && s <= 505) || s == 511;
}

/* Does the response say how long it is fresh (max-age, s-maxage, or
 * Expires, even bad ones: those say "stale now")? */
static bool explicit_freshness(const pt_cache_resp_info_t *ri)
{
    return ri->cc.max_age >= 0 || ri->cc.s_maxage >= 0 || ri->cc.invalid_age || (!ri->cdn && ri->expires_s != -1);
}

static bool has_validator(const pt_cache_resp_info_t *ri)
{
    return ri->has_etag || ri->has_last_modified;
}

/* §4.2.2: only without explicit freshness, for a heuristically cacheable
 * status or a public response, and (our rule) with a validator, so that a
 * guess is checked when it runs out. */
static bool heuristic_allowed(const pt_cache_resp_info_t *ri)
{
    return !explicit_freshness(ri) && (heuristic_status(ri->status) || (ri->cc.flags & PT_CC_PUBLIC)) &&
           has_validator(ri);
}

/* Is the response stale as it arrives, by what it says itself (a bad
 * max-age or s-maxage or Expires, a zero one, Expires not after Date)? */
static bool stale_on_arrival(const pt_cache_resp_info_t *ri)
{
    const pt_cc_t *cc = &ri->cc;
    if (cc->invalid_age)
        return true;
    if (cc->s_maxage >= 0)
        return cc->s_maxage == 0;
    if (cc->max_age >= 0)
        return cc->max_age == 0;
    if (!ri->cdn && ri->expires_s != -1)
        return ri->expires_s == -2 || (ri->date_s >= 0 && ri->expires_s <= ri->date_s);
    return false;
}

/* §3, in its order, then what is not worth keeping: a response that can
 * never be fresh (no explicit freshness and no heuristic, or stale on
 * arrival) and cannot be revalidated (no validator), unless it may be
 * served stale (stale-while-revalidate or stale-if-error granted).  With
 * CDN-Cache-Control, its directives are the only ones (no-store in
 * Cache-Control then concerns the caches after us).  The method is the
 * caller's to check (PT_NS_METHOD): the request info does not have it. */
int pt_cache_storable(const pt_cache_req_info_t *qi, const pt_cache_resp_info_t *ri, const pt_cache_rules_t *rules)
{
    static const pt_cache_rules_t defaults;
    rules = rules ? rules : &defaults;
    unsigned f = ri->cc.flags;
    if (ri->status < 200 || ri->status > 599 || ri->status == 206 || ri->status == 304)
        return PT_NS_STATUS;
    bool understood = understood_status(ri->status);
    if ((f & PT_CC_MUST_UNDERSTAND) && !understood)
        return PT_NS_STATUS;
    /* §5.2.2.3: must-understand, when the status is understood, lifts no-store */
    if (((f & PT_CC_NO_STORE) && !(f & PT_CC_MUST_UNDERSTAND)) || (qi->cc.flags & PT_CC_NO_STORE))
        return PT_NS_NO_STORE;
    if (f & PT_CC_PRIVATE)
        return PT_NS_PRIVATE;
    if (qi->authorization && !rules->cache_authorized &&
        !((f & (PT_CC_PUBLIC | PT_CC_MUST_REVALIDATE)) || ri->cc.s_maxage >= 0))
        return PT_NS_AUTHORIZATION;
    if (ri->set_cookie && !rules->store_set_cookie)
        return PT_NS_SET_COOKIE;
    if (ri->vary_star)
        return PT_NS_VARY_STAR;
    bool explicit = explicit_freshness(ri);
    if (!explicit && !(f & PT_CC_PUBLIC) && !heuristic_status(ri->status))
        return PT_NS_NOT_CACHEABLE;
    if (!has_validator(ri)) {
        int64_t swr, sie;
        pt_cache_resp_flags(ri, rules, false, &swr, &sie);
        if (!explicit || (stale_on_arrival(ri) && swr == 0 && sie == 0))
            return PT_NS_NOT_CACHEABLE;
    }
    return PT_NS_NONE;
}

/* ---- freshness (§4.2) ---- */

int64_t pt_cache_lifetime_ms(const pt_cache_resp_info_t *ri, const pt_cache_rules_t *rules, int64_t response_time_ms,
                             bool *heuristic)
{
    static const pt_cache_rules_t defaults;
    rules = rules ? rules : &defaults;
    bool dummy;
    heuristic = heuristic ? heuristic : &dummy;
    *heuristic = false;
    const pt_cc_t *cc = &ri->cc;
    if (cc->invalid_age)
        return 0;
    if (cc->s_maxage >= 0)
        return cc->s_maxage * SEC_MS;
    if (cc->max_age >= 0)
        return cc->max_age * SEC_MS;
    int64_t date_ms = ri->date_s >= 0 ? ri->date_s * SEC_MS : response_time_ms;
    if (!ri->cdn && ri->expires_s != -1) {
        int64_t d = ri->expires_s >= 0 ? ri->expires_s * SEC_MS - date_ms : 0;
        return d > 0 ? d : 0;
    }
    if (!heuristic_allowed(ri))
        return 0;
    *heuristic = true;
    if (rules->default_ttl_ms > 0)
        return rules->default_ttl_ms;
    if (ri->last_modified_s < 0 || date_ms <= ri->last_modified_s * SEC_MS)
        return 0;
    int64_t lt = (date_ms - ri->last_modified_s * SEC_MS) / 10;
    return lt < HEURISTIC_MAX_MS ? lt : HEURISTIC_MAX_MS;
}

unsigned pt_cache_resp_flags(const pt_cache_resp_info_t *ri, const pt_cache_rules_t *rules, bool heuristic,
                             int64_t *swr_ms, int64_t *sie_ms)
{
    static const pt_cache_rules_t defaults;
    rules = rules ? rules : &defaults;
    const pt_cc_t *cc = &ri->cc;
    unsigned flags = 0;
    if (cc->flags & PT_CC_NO_CACHE)
        flags |= PT_CM_NO_CACHE;
    /* §5.2.2.10: s-maxage carries proxy-revalidate for a shared cache */
    if ((cc->flags & (PT_CC_MUST_REVALIDATE | PT_CC_PROXY_REVALIDATE)) || cc->s_maxage >= 0)
        flags |= PT_CM_MUST_REVALIDATE;
    flags |= (ri->has_etag ? PT_CM_HAS_ETAG : 0) | (ri->has_last_modified ? PT_CM_HAS_LAST_MODIFIED : 0);
    flags |= (heuristic ? PT_CM_HEURISTIC : 0) | (ri->cdn ? PT_CM_CDN : 0);
    int64_t swr = cc->stale_while_revalidate >= 0 ? cc->stale_while_revalidate * SEC_MS : 0;
    int64_t sie = cc->stale_if_error >= 0 ? cc->stale_if_error * SEC_MS : 0;
    bool never_stale = flags & (PT_CM_NO_CACHE | PT_CM_MUST_REVALIDATE);
    *swr_ms = never_stale ? 0 : swr > rules->swr_ms ? swr : rules->swr_ms > 0 ? rules->swr_ms : 0;
    *sie_ms = never_stale ? 0 : sie > rules->sie_ms ? sie : rules->sie_ms > 0 ? rules->sie_ms : 0;
    return flags;
}

/* §4.2.3, in milliseconds.  A Date absent (-1) adds no apparent age; a
 * clock that went back makes no time negative. */
int64_t pt_cache_current_age_ms(int64_t age_value_s, int64_t date_s, int64_t request_time_ms,
                                int64_t response_time_ms, int64_t now_ms)
{
    int64_t apparent = date_s >= 0 ? response_time_ms - date_s * SEC_MS : 0;
    int64_t delay = response_time_ms - request_time_ms;
    int64_t corrected = (age_value_s > 0 ? age_value_s * SEC_MS : 0) + (delay > 0 ? delay : 0);
    int64_t initial = apparent > corrected ? apparent : corrected;
    int64_t resident = now_ms - response_time_ms;
    return initial + (resident > 0 ? resident : 0);
}

/* ---- reusing (§4) ---- */

/* §4.2, §4.2.4, §5.2.1, RFC 5861.  In order: no-cache (either side)
 * always revalidates; the request's max-age and min-fresh are limits on
 * any answer, stale or not; fresh is served; a stale response with
 * must-revalidate (or proxy-revalidate, s-maxage) is revalidated whatever
 * the request allows; the request's max-stale serves it stale; then
 * stale-while-revalidate, but not to a request that gave max-age or
 * min-fresh without max-stale (§5.2.1.1: such a client "does not wish to
 * receive a stale response").  Revalidating needs ETag or Last-Modified:
 * without either it is a miss.  stale-while-revalidate does not need
 * one: its background request may be a plain one that replaces the
 * response.  only-if-cached is the caller's (504 instead of a miss). */
int pt_cache_use(const pt_cache_req_info_t *qi, int64_t age_ms, int64_t lifetime_ms, unsigned flags, int64_t swr_ms)
{
    int refresh = (flags & (PT_CM_HAS_ETAG | PT_CM_HAS_LAST_MODIFIED)) ? PT_USE_REVALIDATE : PT_USE_MISS;
    const pt_cc_t *cc = &qi->cc;
    if ((flags & PT_CM_NO_CACHE) || qi->no_cache)
        return refresh;
    if (cc->max_age >= 0 && age_ms > cc->max_age * SEC_MS)
        return refresh;
    if (cc->min_fresh >= 0 && lifetime_ms - age_ms < cc->min_fresh * SEC_MS)
        return refresh;
    if (lifetime_ms > age_ms)
        return PT_USE_FRESH;
    if (flags & PT_CM_MUST_REVALIDATE)
        return refresh;
    int64_t stale = age_ms - lifetime_ms;
    if (cc->max_stale >= 0 && stale <= cc->max_stale * SEC_MS)
        return PT_USE_STALE;
    if (swr_ms > 0 && stale <= swr_ms && cc->max_age < 0 && cc->min_fresh < 0)
        return PT_USE_SWR;
    return refresh;
}

/* RFC 5861 §4, §4.2.4.  The request's own stale-if-error, when it gives
 * one, is the client's limit; its max-stale also accepts a stale answer;
 * a request with no-cache, max-age or min-fresh and neither of those
 * does not want one.  Else the response's (or the rules') grant. */
bool pt_cache_stale_if_error_ok(const pt_cache_req_info_t *qi, int64_t stale_ms, unsigned flags, int64_t sie_ms)
{
    const pt_cc_t *cc = &qi->cc;
    if (flags & (PT_CM_NO_CACHE | PT_CM_MUST_REVALIDATE))
        return false;
    if (cc->stale_if_error >= 0)
        return stale_ms <= cc->stale_if_error * SEC_MS;
    if (cc->max_stale >= 0 && stale_ms <= cc->max_stale * SEC_MS)
        return true;
    if (qi->no_cache || cc->max_age >= 0 || cc->min_fresh >= 0)
        return false;
    return sie_ms > 0 && stale_ms <= sie_ms;
}
