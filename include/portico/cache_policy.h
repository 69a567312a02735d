/* The response cache's rules (RFC 9111, shared cache; RFC 5861; RFC 9213;
 * RFC 9211): pure functions over header fields, no I/O, no allocation.
 * Every time is in milliseconds of the wall clock (CLOCK_REALTIME) unless
 * the name says seconds.  The store (cache_store.h) keeps what these
 * functions decide in pt_cache_meta_t; the cache filter calls them. */
#ifndef PORTICO_CACHE_POLICY_H
#define PORTICO_CACHE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/h1_parser.h"
#include "portico/httpdate.h"
#include "portico/str.h"

/* ---- Cache-Control (RFC 9111 §5.2), also CDN-Cache-Control (RFC 9213) ---- */

enum {
    PT_CC_NO_STORE = 1u << 0,
    PT_CC_NO_CACHE = 1u << 1,         /* unqualified or qualified (qualified is taken as unqualified) */
    PT_CC_PRIVATE = 1u << 2,          /* unqualified or qualified (likewise) */
    PT_CC_PUBLIC = 1u << 3,
    PT_CC_MUST_REVALIDATE = 1u << 4,
    PT_CC_PROXY_REVALIDATE = 1u << 5,
    PT_CC_ONLY_IF_CACHED = 1u << 6,
    PT_CC_NO_TRANSFORM = 1u << 7,
    PT_CC_MUST_UNDERSTAND = 1u << 8,
    PT_CC_IMMUTABLE = 1u << 9,
};

#define PT_CC_ABSENT (-1)            /* a delta-seconds directive not given (or given with a bad value) */
#define PT_CC_DELTA_MAX 2147483648LL /* delta-seconds saturate here (§1.2.2) */

/* The directives of every field line of one name, combined.  A directive
 * with a bad argument (max-age=abc, max-age=-1) counts as absent, except
 * that a bad max-age or s-maxage in a response sets `invalid_age`, which
 * makes the response stale at once (§4.2.1: "treat as stale"); a directive
 * given twice with different values takes the smaller (most conservative)
 * value.  Names are case-insensitive; quoted-string arguments are allowed
 * ("max-age=\"10\"" is 10). */
typedef struct pt_cc {
    unsigned flags;     /* PT_CC_* */
    int64_t max_age;    /* seconds, or PT_CC_ABSENT */
    int64_t s_maxage;
    int64_t max_stale;  /* request: max-stale without a value is PT_CC_DELTA_MAX */
    int64_t min_fresh;
    int64_t stale_while_revalidate; /* RFC 5861, response */
    int64_t stale_if_error;         /* RFC 5861, response or request */
    bool invalid_age;
    bool present;       /* at least one field line of that name */
} pt_cc_t;

/* Parses every field line named `name` ("cache-control" or
 * "cdn-cache-control") among h[0..n). */
void pt_cc_parse(pt_cc_t *cc, const pt_h1_header_t *h, size_t n, pt_str_t name);

/* ---- other fields ---- */

/* HTTP-dates: pt_http_date_parse (IMF-fixdate, RFC 850 or asctime, RFC
 * 9110 §5.6.7, as seconds since the epoch, or -1 when it is not one) and
 * pt_http_date_format (IMF-fixdate) are in httpdate.h, included above. */
/* Age: delta-seconds; -1 when bad (ignored: "a bad value is ignored");
 * a value that overflows saturates at PT_CC_DELTA_MAX.  With several
 * lines or a list, the first valid value. */
int64_t pt_cache_age_parse(const pt_h1_header_t *h, size_t n);

/* ---- what a response says about itself ---- */

typedef struct pt_cache_resp_info {
    int status;
    pt_cc_t cc;          /* the effective directives: CDN-Cache-Control when present, else Cache-Control */
    bool cdn;            /* CDN-Cache-Control was present (and is what cc holds) */
    pt_cc_t cc_plain;    /* Cache-Control itself (for must-revalidate and friends the client sees) */
    int64_t date_s;      /* Date, or -1 when absent or bad */
    int64_t expires_s;   /* Expires; -1 absent; -2 present but invalid (already expired, §5.3) */
    int64_t last_modified_s; /* -1 absent or bad */
    int64_t age_s;       /* Age, 0 when absent or bad */
    bool has_etag, has_last_modified;
    bool set_cookie;
    bool vary_star;      /* Vary: * in any list form */
    bool has_vary;
    bool pragma_no_cache;
} pt_cache_resp_info_t;

void pt_cache_resp_info(pt_cache_resp_info_t *ri, int status, const pt_h1_header_t *h, size_t n);

/* What a request asks of the cache (§5.2.1), Pragma: no-cache when it has
 * no Cache-Control (§5.4). */
typedef struct pt_cache_req_info {
    pt_cc_t cc;
    bool no_cache;       /* cc no-cache, or Pragma: no-cache without Cache-Control */
    bool authorization;  /* has Authorization */
    bool conditional;    /* If-None-Match or If-Modified-Since */
    bool range;          /* has Range */
} pt_cache_req_info_t;

void pt_cache_req_info(pt_cache_req_info_t *qi, const pt_h1_header_t *h, size_t n);

/* ---- storing (§3) ---- */

typedef struct pt_cache_rules {
    bool store_set_cookie;   /* store responses with Set-Cookie (default false) */
    bool cache_authorized;   /* store responses to requests with Authorization without the §3.5 directives */
    int64_t default_ttl_ms;  /* the heuristic lifetime, when heuristics are allowed (0: 10% of the Last-Modified age) */
    int64_t swr_ms, sie_ms;  /* stale-while-revalidate and stale-if-error beyond what the response grants */
} pt_cache_rules_t;

/* Why a response is not stored (PT_NS_NONE: it may be). */
enum pt_cache_nostore {
    PT_NS_NONE,
    PT_NS_METHOD,         /* the request method is not cacheable (only GET, and HEAD into a GET entry) */
    PT_NS_STATUS,         /* 1xx, 206 (partial), or a status this cache does not understand with must-understand */
    PT_NS_NO_STORE,       /* response or request no-store */
    PT_NS_PRIVATE,
    PT_NS_AUTHORIZATION,  /* the request had Authorization, and neither public, s-maxage nor must-revalidate */
    PT_NS_SET_COOKIE,
    PT_NS_VARY_STAR,
    PT_NS_NOT_CACHEABLE,  /* no explicit freshness, not heuristically cacheable or no validator: nothing to gain */
};
/* A short word for logs and Cache-Status's detail ("no-store", ...). */
const char *pt_cache_nostore_name(int why);

/* May this response to this request be stored (§3, §3.5)? */
int pt_cache_storable(const pt_cache_req_info_t *qi, const pt_cache_resp_info_t *ri, const pt_cache_rules_t *rules);

/* The freshness lifetime (§4.2.1): s-maxage, then max-age, then Expires
 * minus Date (Date absent: minus response_time; Expires is ignored with
 * CDN-Cache-Control, RFC 9213 §2.1); 0 when invalid_age or an invalid
 * Expires; else the heuristic (§4.2.2) when the status is
 * heuristically cacheable (or public) and a validator is present:
 * default_ttl_ms when > 0, else 10% of (Date - Last-Modified), at most 24
 * hours; else 0.  *heuristic tells which. */
int64_t pt_cache_lifetime_ms(const pt_cache_resp_info_t *ri, const pt_cache_rules_t *rules, int64_t response_time_ms,
                             bool *heuristic);

/* What the store keeps of a response's directives (pt_cache_meta_t):
 * returns its PT_CM_* flags (PT_CM_HEURISTIC from `heuristic`, as
 * pt_cache_lifetime_ms said) and sets *swr_ms and *sie_ms to the
 * stale-while-revalidate and stale-if-error it may be served with: the
 * response's or the rules', the larger; 0 when no-cache, must-revalidate,
 * proxy-revalidate or s-maxage forbid serving it stale (§4.2.4). */
unsigned pt_cache_resp_flags(const pt_cache_resp_info_t *ri, const pt_cache_rules_t *rules, bool heuristic,
                             int64_t *swr_ms, int64_t *sie_ms);

/* The current age (§4.2.3), from what was kept when the response came. */
int64_t pt_cache_current_age_ms(int64_t age_value_s, int64_t date_s, int64_t request_time_ms,
                                int64_t response_time_ms, int64_t now_ms);

/* ---- reusing (§4) ---- */

enum pt_cache_use {
    PT_USE_FRESH,       /* serve it */
    PT_USE_STALE,       /* serve it stale: the request's max-stale allows it */
    PT_USE_SWR,         /* serve it stale and revalidate it in the background */
    PT_USE_REVALIDATE,  /* ask the origin with the validators first */
    PT_USE_MISS,        /* cannot be used even to validate (no validator, and stale) */
};

/* What a stored response's flags say for reuse (kept in pt_cache_meta_t.flags). */
enum {
    PT_CM_NO_CACHE = 1u << 0,        /* no-cache: always revalidate */
    PT_CM_MUST_REVALIDATE = 1u << 1, /* must-revalidate or proxy-revalidate (or s-maxage): never served stale */
    PT_CM_HAS_ETAG = 1u << 2,
    PT_CM_HAS_LAST_MODIFIED = 1u << 3,
    PT_CM_HEURISTIC = 1u << 4,
    PT_CM_CDN = 1u << 5,             /* the directives came from CDN-Cache-Control */
};

/* Decides how a stored response of age age_ms, lifetime lifetime_ms,
 * flags PT_CM_*, granting swr_ms of stale-while-revalidate, may answer a
 * request asking qi (max-age, min-fresh, max-stale, no-cache).  A stale
 * response with must-revalidate is revalidated whatever max-stale says. */
int pt_cache_use(const pt_cache_req_info_t *qi, int64_t age_ms, int64_t lifetime_ms, unsigned flags, int64_t swr_ms);
/* May a stored response be served stale because the origin failed
 * (stale-if-error: the response's or the rule's, and the request's), at
 * staleness stale_ms?  Never with must-revalidate or no-cache. */
bool pt_cache_stale_if_error_ok(const pt_cache_req_info_t *qi, int64_t stale_ms, unsigned flags, int64_t sie_ms);

/* ---- Vary (§4.1) ---- */

/* The response's Vary as a normalised list of field names: lower case,
 * each once, sorted, joined by ',' ("accept-encoding,accept-language"),
 * into out[cap].  Returns its length; 0 for no Vary (or an empty one);
 * -1 for Vary: * (in any list form), for a member that is not a field
 * name (it would vary on nothing a request can say), or when it does not
 * fit. */
long pt_cache_vary_names(const pt_h1_header_t *h, size_t n, char *out, size_t cap);
/* The request's values of the fields that names (as made above) lists,
 * normalised per §4.1 (several lines combined, list members trimmed of
 * OWS and joined by ",", whitespace runs made one space; case folded for
 * fields whose values are case-insensitive: accept-encoding, and the
 * tokens of accept, accept-charset, accept-language), each "name:value\n"
 * in the order of names, a field absent as "name\n" (absent differs from
 * empty), into out[cap].  Returns its length, -1 when it does not fit. */
long pt_cache_vary_values(pt_str_t names, const pt_h1_header_t *h, size_t n, char *out, size_t cap);

/* ---- updating a stored response from a 304 or HEAD (§3.2, §4.3.4, §4.3.5) ---- */

/* Is this field of a 304 (or a HEAD response) one that must not replace
 * the stored one's (Content-Length, Content-Encoding's framing
 * companions, the hop-by-hop fields, Content-Range, ...)? */
bool pt_cache_update_skips(pt_str_t name);
/* Does a 304 (etag/last-modified of the 304, may be empty) select the
 * stored response (§4.3.4: a strong ETag matches strongly, a weak one
 * weakly; else Last-Modified equal when the 304 has no ETag; a 304 with
 * neither selects a stored response only if it has neither either)? */
bool pt_cache_304_selects(pt_str_t etag304, pt_str_t lm304, pt_str_t etag_stored, pt_str_t lm_stored);

/* ---- conditional requests answered from the cache (RFC 9110 §13) ---- */

/* Does the client's If-None-Match (weak comparison), or else its
 * If-Modified-Since, say that it already has the stored response (the
 * answer is then 304)?  etag and last_modified of the stored response
 * (empty when absent). */
bool pt_cache_not_modified(const pt_h1_header_t *req, size_t nreq, pt_str_t etag, pt_str_t last_modified);

/* ---- invalidation (§4.4) ---- */

/* Is this method one whose non-error response invalidates (anything but
 * GET, HEAD, OPTIONS, TRACE)?  method is the request's method token. */
bool pt_cache_method_invalidates(pt_str_t method);

#endif
