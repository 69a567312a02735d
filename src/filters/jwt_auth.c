/* jwt-auth: a JSON Web Token (a compact JWS) in the Authorization field
 * (Bearer), a query argument or a cookie (Kong's jwt, with JWKS).  The key
 * is pinned to one algorithm: a consumer's jwt-auth credential found by
 * the token's key_claim (iss by default), or a key of the route's JWKS
 * found by the token's kid.  Then exp/nbf with leeway, iss, aud and the
 * required claims.  Verified tokens are remembered by each worker (the
 * whole token, found by a keyed hash of it) until they expire (5 minutes
 * at most), in a table of fixed size: the same token is not verified
 * twice. */
#include "config.h"

#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "portico/auth.h"
#include "portico/conf.h"
#include "portico/config.h"
#include "portico/conn.h"
#include "portico/credentials.h"
#include "portico/digest.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/jose.h"
#include "portico/jwks.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/value.h"
#include "portico/worker.h"

typedef struct conf {
    const pt_node_t *node;
    char *header, *query, *cookie, *key_claim, *consumer_claim, *issuer, *realm;
    pt_strlist_t claims_to_verify, audiences, required_claims;
    int64_t leeway;
    bool hide, cache;
    pt_jwks_conf_t jwks;
    pt_jwt_rules_t rules;
} conf_t;

#define END {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL}

static int check_jwks(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_jwks_conf_t *j = obj;
    const char *err = j->uri ? pt_value_uri(j->uri, &j->parsed) : "a URL";
    if (err) {
        pt_conf_error_key(cc, n, "uri", "%s, not \"%s\"", err, j->uri ? j->uri : "");
        return -1;
    }
    return 0;
}

static const pt_directive_t jwks_keys[] = {
    {"uri", PT_T_STR, offsetof(pt_jwks_conf_t, uri), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, "URL",
     "Where the JSON Web Key Set is: http:// or https:// (verified against the system's CAs; a host that is an "
     "upstream's name goes to that upstream, with its tls settings)."},
    {"refresh", PT_T_DURATION, offsetof(pt_jwks_conf_t, refresh), "10m", 1000, 86400000, NULL, NULL, NULL, NULL,
     NULL, 0, NULL, "How often the set is fetched again; also, at most every 10 s, when a token names a key it lacks."},
    {"timeout", PT_T_DURATION, offsetof(pt_jwks_conf_t, timeout), "2s", 1, 60000, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "How long a fetch may take. A fetch that fails keeps the last set."},
    END,
};
static const pt_section_t jwks_section = {"jwks", sizeof(pt_jwks_conf_t), jwks_keys, check_jwks, "uri", NULL};

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    static char *exp_only[] = {"exp"};
    int rc = 0;
    if (!pt_node_get(n, "claims_to_verify"))
        c->claims_to_verify = (pt_strlist_t){exp_only, 1};
    for (size_t i = 0; i < c->claims_to_verify.n; i++) {
        const char *v = c->claims_to_verify.v[i] ? c->claims_to_verify.v[i] : "";
        if (strcmp(v, "exp") == 0)
            c->rules.verify_exp = true;
        else if (strcmp(v, "nbf") == 0)
            c->rules.verify_nbf = true;
        else {
            pt_conf_error_key(cc, n, "claims_to_verify", "exp or nbf, not \"%s\"", v);
            rc = -1;
        }
    }
    pt_creds_secret_arg(cc, n, c->query);
    const char *why = pt_value_field_text(c->realm, true);
    if (why) {
        pt_conf_error_key(cc, n, "realm", "%s", why);
        rc = -1;
    }
    if (!c->header[0] && !c->query[0] && !c->cookie[0]) {
        pt_conf_error(cc, n, "jwt-auth needs a header, a query argument or a cookie to read the token from");
        rc = -1;
    }
    if (c->issuer && !c->issuer[0]) {
        pt_conf_error_key(cc, n, "issuer", "an empty issuer matches no token: leave it out to accept any");
        rc = -1;
    }
    c->rules.leeway = c->leeway / 1000;
    c->rules.issuer = c->issuer;
    c->rules.audiences = (const char *const *)c->audiences.v;
    c->rules.naud = c->audiences.n;
    c->rules.required = (const char *const *)c->required_claims.v;
    c->rules.nrequired = c->required_claims.n;
    return rc;
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    conf_t *conf = vconf;
    if (conf->jwks.node) {
        conf->jwks.up = pt_conf_uri_upstream(c, &conf->jwks.parsed);
        if (!conf->jwks.up) {
            pt_conf_error_key(cc, conf->jwks.node, "uri", "no upstream for \"%s\"", conf->jwks.uri);
            return -1;
        }
    } else if (!pt_creds_count(c, PT_CRED_JWT)) {
        pt_conf_warn(cc, conf->node, "jwt-auth has no jwks and no consumer has a jwt-auth credential: every token "
                                     "is refused");
    }
    return 0;
}

#define C(f) offsetof(conf_t, f)
static const pt_directive_t keys[] = {
    {"header", PT_T_STR, C(header), "authorization", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The header field with the token: \"Bearer TOKEN\" (in another field than Authorization the token may come alone); \"\" reads none."},
    {"query", PT_T_STR, C(query), "jwt", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The query argument with the token, when the header has none; \"\" reads none. Its value is replaced by "
     "*** in the access log."},
    {"cookie", PT_T_STR, C(cookie), "", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The cookie with the token, when neither has one; \"\" reads none."},
    {"key_claim", PT_T_STR, C(key_claim), "iss", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The claim whose value is the key of a consumer's jwt-auth credential (as Kong)."},
    {"claims_to_verify", PT_T_LIST, C(claims_to_verify), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings", "exp and/or nbf: the token must have them, and be within them (with leeway). Unset: [exp]."},
    {"leeway", PT_T_DURATION, C(leeway), "0s", 0, 86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Clock skew allowed on exp and nbf."},
    {"issuer", PT_T_STR, C(issuer), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, "The iss the token must have."},
    {"audiences", PT_T_LIST, C(audiences), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings", "The token's aud must name one of these."},
    {"required_claims", PT_T_LIST, C(required_claims), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings", "Claims the token must have."},
    {"jwks", PT_T_SECTION, C(jwks), NULL, 0, 0, NULL, &jwks_section, NULL, NULL, NULL, PT_F_OPTIONAL, NULL,
     "Keys from a JSON Web Key Set, by the token's kid (a URL alone is the uri)."},
    {"consumer_claim", PT_T_STR, C(consumer_claim), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "With jwks: the claim whose value is the name of the consumer (none: no consumer, unless acl needs one)."},
    {"hide_credentials", PT_T_BOOL, C(hide), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Remove the token (the header field, query argument or cookie) from the request the upstream gets."},
    {"cache", PT_T_BOOL, C(cache), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Remember verified tokens (per worker, 8192 at most, of at most 4 KiB) until they expire, 5 minutes at most."},
    {"realm", PT_T_STR, C(realm), "portico", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The realm of the challenge: WWW-Authenticate: Bearer realm=\"...\"."},
    END,
};
static const pt_section_t schema = {
    "jwt-auth", sizeof(conf_t), keys, check, NULL,
    "Authenticates by a signed JSON Web Token (consumers' jwt-auth credentials, or a JWKS). Example: jwt-auth: "
    "{ issuer: https://idp.example, audiences: [api], leeway: 30s, jwks: https://idp.example/jwks.json, "
    "consumer_claim: sub }."};

typedef struct found {
    const pt_jwk_t *key;
    const pt_credential_conf_t *cred;
    pt_jwks_t *set;
} found_t;

/* ---- the cache of verified tokens ----
 *
 * Indexed by a keyed hash of the token (FNV-1a with a random seed per
 * worker: a client cannot aim tokens at one slot), and a hit is the whole
 * token compared with the copy kept: no hash collision can pass for a
 * verified token, and a hit costs no SHA-256 of a token of hundreds of
 * bytes.  Tokens over 4 KiB are not kept. */

#define CACHE_SLOTS 8192 /* a power of 2 */
#define CACHE_MAX_S 300
#define CACHE_TOKEN_MAX 4096

typedef struct slot {
    char *token;     /* malloc'd copy */
    size_t len;
    int64_t until;   /* seconds */
    int64_t nbf;     /* not before, seconds (leeway applied) */
    const void *conf;
    const pt_consumer_conf_t *consumer;
    const pt_credential_conf_t *cred;
    uint64_t generation; /* of the JWKS it was verified with; 0: a credential's key */
    char kid[64];
} slot_t;

static slot_t *cache;

static slot_t *cache_slot(pt_str_t tok)
{
    if (tok.n > CACHE_TOKEN_MAX)
        return NULL;
    if (!cache && !(cache = calloc(CACHE_SLOTS, sizeof(slot_t))))
        return NULL;
    return &cache[pt_keyed_hash(tok.p, tok.n) & (CACHE_SLOTS - 1)];
}

static bool cache_hit(const slot_t *s, const void *conf, pt_str_t tok, int64_t now)
{
    return s->token && s->conf == conf && s->len == tok.n && s->until > now && s->nbf <= now &&
           CRYPTO_memcmp(s->token, tok.p, tok.n) == 0;
}

/* A claim's time as seconds, within what arithmetic on it cannot overflow
 * (a signed token may say nbf: -9223372036854775808 or exp: 1e300). */
static int64_t seconds(double v)
{
    const double lim = 4e15; /* 100 million years */
    return v != v ? 0 : v > lim ? (int64_t)lim : v < -lim ? -(int64_t)lim : (int64_t)v;
}

/* Keeps a verified token until its exp (with leeway) when exp is checked,
 * 5 minutes at most. */
static void cache_put(slot_t *s, const conf_t *conf, pt_str_t tok, const pt_jws_t *t, int64_t now, const found_t *f,
                      const pt_consumer_conf_t *co)
{
    char *copy = malloc(tok.n);
    if (!copy)
        return;
    memcpy(copy, tok.p, tok.n);
    free(s->token);
    const pt_json_t *exp = pt_json_get(t->payload, "exp"), *nbf = pt_json_get(t->payload, "nbf");
    int64_t until = now + CACHE_MAX_S;
    if (conf->rules.verify_exp && exp && exp->type == PT_JSON_NUM && seconds(exp->num) + conf->rules.leeway < until)
        until = seconds(exp->num) + conf->rules.leeway;
    *s = (slot_t){.token = copy, .len = tok.n, .until = until, .conf = conf, .consumer = co, .cred = f->cred,
                  .nbf = conf->rules.verify_nbf && nbf && nbf->type == PT_JSON_NUM
                             ? seconds(nbf->num) - conf->rules.leeway : 0,
                  .generation = f->cred ? 0 : pt_jwks_generation(f->set)};
    snprintf(s->kid, sizeof(s->kid), "%.*s", (int)t->kid.n, t->kid.p ? t->kid.p : "");
}

/* ---- the filter ---- */

typedef struct state {
    pt_jwks_t *waited; /* the set this request waits for, or waited for */
} state_t;

static size_t challenge(const void *vconf, bool invalid, char *buf, size_t size)
{
    const conf_t *conf = vconf;
    int n = snprintf(buf, size, invalid ? "Bearer realm=\"%s\", error=\"invalid_token\"" : "Bearer realm=\"%s\"",
                     conf->realm);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

typedef enum { FROM_NONE, FROM_HEADER, FROM_QUERY, FROM_COOKIE } from_t;

/* The token, from the header, else the query, else the cookie.  A query
 * argument is masked in the log whichever is used.  *from is FROM_NONE
 * with PT_STR_NULL when there is none; several fields or arguments of the
 * name are refused (400) by the caller (*several). */
static pt_str_t find_token(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, from_t *from, bool *several)
{
    bool qseveral = false;
    pt_str_t q = conf->query[0] ? pt_auth_query_arg(c, req, conf->query, &qseveral) : PT_STR_NULL;
    if (q.p)
        pt_req_redact_query(c, req, conf->query);
    const pt_h1_header_t *h = conf->header[0] ? pt_auth_header(req, pt_str_from(conf->header), several) : NULL;
    *from = FROM_NONE;
    if (h) {
        pt_str_t v = h->value;
        if (v.n >= 7 && strncasecmp(v.p, "bearer ", 7) == 0) {
            v.p += 7;
            v.n -= 7;
        } else if (PT_STR_IEQ(h->name, "authorization")) {
            return PT_STR_NULL; /* another scheme: another filter's kind */
        }
        *from = FROM_HEADER;
        return v;
    }
    if (q.p) {
        *several = qseveral;
        *from = FROM_QUERY;
        return q;
    }
    pt_str_t t = conf->cookie[0] ? pt_h1_cookie(req, conf->cookie) : PT_STR_NULL;
    *from = t.p ? FROM_COOKIE : FROM_NONE;
    return t;
}

/* The key the token names: a credential's by key_claim, else the JWKS's
 * by kid.  PT_SUSPEND when the JWKS is being fetched (once per request). */
static pt_verdict_t find_key(pt_conn_t *c, const conf_t *conf, const pt_jws_t *t, state_t *st, found_t *f)
{
    const pt_json_t *kc = pt_json_get(t->payload, conf->key_claim);
    if (kc && kc->type == PT_JSON_STR && (f->cred = pt_creds_find(c->w->conf, PT_CRED_JWT, kc->s)) &&
        f->cred->jwk) {
        f->key = f->cred->jwk;
        return PT_NEXT;
    }
    f->cred = NULL;
    if (!conf->jwks.node)
        return PT_NEXT;
    f->set = pt_jwks_for(c, &conf->jwks);
    if (!f->set)
        return PT_FAIL;
    f->key = pt_jwks_find(f->set, t->kid);
    if (!f->key && !st->waited && pt_jwks_fetching(f->set) && pt_jwks_wait(f->set, c)) {
        st->waited = f->set;
        return PT_SUSPEND;
    }
    return PT_NEXT;
}

static const char *check_message(pt_jwt_check_t r)
{
    switch (r) {
    case PT_JWT_EXPIRED:
        return "The token has expired";
    case PT_JWT_NOT_YET:
        return "The token is not valid yet";
    case PT_JWT_BAD_ISS:
        return "The token has another issuer";
    case PT_JWT_BAD_AUD:
        return "The token is for another audience";
    default:
        return "The token lacks a claim it must have";
    }
}

/* hide_credentials: every place this filter reads a token from. */
static pt_verdict_t hide(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, pt_fx_t *fx)
{
    pt_verdict_t v = PT_NEXT;
    const pt_h1_header_t *h = conf->header[0] ? pt_h1_find(req, pt_str_from(conf->header)) : NULL;
    /* an Authorization of another scheme is another filter's to hide */
    if (h && (!PT_STR_IEQ(h->name, "authorization") ||
              (h->value.n >= 7 && strncasecmp(h->value.p, "bearer ", 7) == 0)))
        v = pt_auth_hide_header(c, fx, pt_str_from(conf->header));
    if (v == PT_NEXT && conf->query[0])
        v = pt_auth_hide_query(c, req, fx, conf->query);
    if (v == PT_NEXT && conf->cookie[0])
        v = pt_auth_hide_cookie(c, req, fx, conf->cookie);
    return v;
}

static pt_verdict_t accept_token(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, pt_fx_t *fx,
                                 const pt_consumer_conf_t *co, const pt_credential_conf_t *cr, const char *kid)
{
    pt_verdict_t v = pt_auth_accept(c, fx, co, cr, cr ? NULL : kid && kid[0] ? kid : NULL);
    return v == PT_NEXT && conf->hide ? hide(c, req, conf, fx) : v;
}

static const pt_consumer_conf_t *consumer_named(const pt_config_t *cfg, const pt_json_t *v)
{
    for (size_t i = 0; v && v->type == PT_JSON_STR && i < cfg->consumers.n; i++) {
        const pt_consumer_conf_t *co = PT_LIST_AT(cfg->consumers, pt_consumer_conf_t, i);
        if (strlen(co->name) == v->s.n && memcmp(co->name, v->s.p, v->s.n) == 0)
            return co;
    }
    return NULL;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    from_t from;
    bool several = false;
    pt_str_t tok = find_token(c, req, conf, &from, &several);
    if (pt_auth_decided(fx))
        return conf->hide ? hide(c, req, conf, fx) : PT_NEXT;
    if (several)
        return pt_auth_several(c, req, from == FROM_QUERY ? PT_STR("token query argument") : pt_str_from(conf->header));
    if (!tok.p)
        return pt_auth_absent(c, req, fx, PT_FILTER_JWT_AUTH);
    int64_t now = time(NULL);
    slot_t *s = conf->cache ? cache_slot(tok) : NULL;
    if (s && cache_hit(s, conf, tok, now)) {
        pt_jwks_t *set = s->generation ? pt_jwks_for(c, &conf->jwks) : NULL;
        if (!set || pt_jwks_generation(set) == s->generation) /* a key set fetched since: verified again */
            return accept_token(c, req, conf, fx, s->consumer, s->cred, s->kid);
    }
    pt_jws_t t;
    const char *err;
    if (pt_jws_parse(&c->arena, tok.p, tok.n, &t, &err) < 0)
        return pt_auth_reject(c, req, fx, PT_FILTER_JWT_AUTH, PT_AUTH_INVALID, "Invalid token");
    found_t f = {0};
    pt_verdict_t v = find_key(c, conf, &t, st, &f);
    if (v != PT_NEXT)
        return v;
    if (!f.key) {
        if (f.set && !pt_jwks_loaded(f.set))
            return pt_auth_refuse(c, req, 503, PT_AUTH_UNAVAILABLE, "The token's keys cannot be fetched", NULL);
        return pt_auth_reject(c, req, fx, PT_FILTER_JWT_AUTH, PT_AUTH_UNKNOWN_KEY, "No key for this token");
    }
    if (pt_jws_verify(&t, f.key) != 0)
        return pt_auth_reject(c, req, fx, PT_FILTER_JWT_AUTH, PT_AUTH_BAD_SIGNATURE, "Invalid signature");
    const char *which = NULL;
    pt_jwt_check_t r = pt_jwt_check_claims(&t, now, &conf->rules, &which);
    if (r != PT_JWT_OK)
        return pt_auth_reject(c, req, fx, PT_FILTER_JWT_AUTH,
                              r == PT_JWT_EXPIRED || r == PT_JWT_NOT_YET ? PT_AUTH_EXPIRED : PT_AUTH_INVALID,
                              check_message(r));
    const pt_consumer_conf_t *co = f.cred ? f.cred->consumer : NULL;
    if (!f.cred && conf->consumer_claim)
        co = consumer_named(c->w->conf, pt_json_get(t.payload, conf->consumer_claim));
    if (s)
        cache_put(s, conf, tok, &t, now, &f, co);
    return accept_token(c, req, conf, fx, co, f.cred, t.kid.p);
}

static void on_done(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *vst)
{
    state_t *st = vst;
    if (st && st->waited)
        pt_jwks_unwait(st->waited, c);
}

const pt_filter_t pt_filter_jwt_auth = {.name = "jwt-auth",
                                        .schema = &schema,
                                        .state_size = sizeof(state_t),
                                        .on_request = on_request,
                                        .on_done = on_done,
                                        .challenge = challenge,
                                        .link = link_conf};
