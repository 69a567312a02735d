/* key-auth: an API key in a header or a query argument names a consumer
 * (Kong's key-auth).  The presented key is hashed (SHA-256) and looked up
 * among the consumers' key-auth credentials, which hold only the hash
 * (key_sha256, or key hashed at load): no comparison runs on the key's
 * bytes, and the final one on the hashes is CRYPTO_memcmp.  A key that
 * matched is kept by the worker (1024 slots) and compared whole next time,
 * in constant time, without hashing it again: the key is in memory as it
 * arrived in the request anyway. */
#include "config.h"

#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/auth.h"
#include "portico/conf.h"
#include "portico/config.h"
#include "portico/conn.h"
#include "portico/credentials.h"
#include "portico/digest.h"
#include "portico/filter.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/value.h"
#include "portico/worker.h"

typedef struct conf {
    const pt_node_t *node;
    char *header, *query;
    bool hide;
    char *realm;
} conf_t;

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    pt_creds_secret_arg(cc, n, c->query);
    const char *why = pt_value_field_text(c->realm, true);
    if (why) {
        pt_conf_error_key(cc, n, "realm", "%s", why);
        return -1;
    }
    if (!c->header[0] && !c->query[0]) {
        pt_conf_error(cc, n, "key-auth needs a header or a query argument to read the key from");
        return -1;
    }
    return 0;
}

static const pt_directive_t keys[] = {
    {"header", PT_T_STR, offsetof(conf_t, header), "apikey", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The header field that carries the key; \"\" reads none."},
    {"query", PT_T_STR, offsetof(conf_t, query), "apikey", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The query argument that carries the key (when the header has none); \"\" reads none. Its value is "
     "replaced by *** in the access log."},
    {"hide_credentials", PT_T_BOOL, offsetof(conf_t, hide), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Remove the key (the header field, or the query argument) from the request the upstream gets."},
    {"realm", PT_T_STR, offsetof(conf_t, realm), "portico", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The realm of the challenge: WWW-Authenticate: Key realm=\"...\"."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "key-auth", sizeof(conf_t), keys, check, NULL,
    "Authenticates by an API key (consumers' key-auth credentials). Example: key-auth: { header: apikey, "
    "query: \"\", hide_credentials: true }."};

static size_t challenge(const void *vconf, bool invalid, char *buf, size_t size)
{
    const conf_t *conf = vconf;
    (void)invalid;
    int n = snprintf(buf, size, "Key realm=\"%s\"", conf->realm);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* ---- keys seen: a per-worker table, so a known key costs no SHA-256 ---- */

#define SLOTS 1024   /* a power of 2 */
#define KEY_MAX 128  /* longer keys are hashed each time */

typedef struct slot {
    const pt_credential_conf_t *cr;
    uint32_t len;
    char key[KEY_MAX];
} slot_t;

static slot_t *seen;

static slot_t *slot_of(pt_str_t key)
{
    if (!seen && !(seen = calloc(SLOTS, sizeof(slot_t))))
        return NULL;
    return &seen[pt_keyed_hash(key.p, key.n) & (SLOTS - 1)];
}

/* The credential of this key: a key seen before is compared whole, in
 * constant time, with the copy kept from when its hash matched; any other
 * is hashed and looked up by its hash. */
static const pt_credential_conf_t *lookup(pt_conn_t *c, pt_str_t key)
{
    slot_t *s = key.n <= KEY_MAX ? slot_of(key) : NULL;
    if (s && s->cr && s->len == key.n && CRYPTO_memcmp(s->key, key.p, key.n) == 0)
        return s->cr;
    unsigned char d[32];
    pt_sha256(key.p, key.n, d);
    const pt_credential_conf_t *cr = pt_creds_find(c->w->conf, PT_CRED_KEY, (pt_str_t){(const char *)d, 32});
    if (!cr || CRYPTO_memcmp(cr->digest, d, 32) != 0)
        return NULL;
    if (s) {
        s->cr = cr;
        s->len = (uint32_t)key.n;
        memcpy(s->key, key.p, key.n);
    }
    return cr;
}

/* hide_credentials: every place this filter reads a key from, whichever
 * it was found in (or whichever filter decided). */
static pt_verdict_t hide(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, pt_fx_t *fx)
{
    pt_verdict_t v = PT_NEXT;
    if (conf->header[0])
        v = pt_auth_hide_header(c, fx, pt_str_from(conf->header));
    if (v == PT_NEXT && conf->query[0])
        v = pt_auth_hide_query(c, req, fx, conf->query);
    return v;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    bool several = false, qseveral = false;
    pt_str_t qkey = conf->query[0] ? pt_auth_query_arg(c, req, conf->query, &qseveral) : PT_STR_NULL;
    if (qkey.p)
        pt_req_redact_query(c, req, conf->query); /* read or not, no log line holds it */
    if (pt_auth_decided(fx))
        return conf->hide ? hide(c, req, conf, fx) : PT_NEXT;
    const pt_h1_header_t *h = conf->header[0] ? pt_auth_header(req, pt_str_from(conf->header), &several) : NULL;
    if (several)
        return pt_auth_several(c, req, pt_str_from(conf->header));
    if (!h && qseveral)
        return pt_auth_several(c, req, PT_STR("key query argument"));
    pt_str_t key = h ? h->value : qkey;
    if (!key.p)
        return pt_auth_absent(c, req, fx, PT_FILTER_KEY_AUTH);
    const pt_credential_conf_t *cr = key.n ? lookup(c, key) : NULL;
    if (!cr)
        return pt_auth_reject(c, req, fx, PT_FILTER_KEY_AUTH, PT_AUTH_INVALID, "Invalid authentication credentials");
    pt_verdict_t v = pt_auth_accept(c, fx, cr->consumer, cr, NULL);
    return v == PT_NEXT && conf->hide ? hide(c, req, conf, fx) : v;
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    const conf_t *conf = vconf;
    if (!pt_creds_count(c, PT_CRED_KEY))
        pt_conf_warn(cc, conf->node, "key-auth: no consumer has a key-auth credential: every request with one is refused");
    return 0;
}

const pt_filter_t pt_filter_key_auth = {
    .name = "key-auth", .schema = &schema, .on_request = on_request, .challenge = challenge, .link = link_conf};
