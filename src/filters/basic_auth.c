/* basic-auth: "Authorization: Basic base64(user:password)" (RFC 7617)
 * checked against a consumer's crypt(3) hash through libcrypt (bcrypt,
 * sha512-crypt, yescrypt).  A hash costs milliseconds, on the worker's
 * loop: each worker keeps the verifications that succeeded, by SHA-256 of
 * the credential's hash, the username and the password (never the
 * password itself), for a while, in a table of fixed size. */
#include "config.h"

#include <crypt.h>
#include <openssl/crypto.h>
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
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/value.h"
#include "portico/worker.h"

typedef struct conf {
    const pt_node_t *node;
    char *realm;
    bool hide;
} conf_t;

static const pt_directive_t keys[] = {
    {"realm", PT_T_STR, offsetof(conf_t, realm), "portico", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The realm of the challenge: WWW-Authenticate: Basic realm=\"...\"."},
    {"hide_credentials", PT_T_BOOL, offsetof(conf_t, hide), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Remove the Authorization field from the request the upstream gets."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    const char *why = pt_value_field_text(c->realm, true);
    if (why) {
        pt_conf_error_key(cc, n, "realm", "%s", why);
        return -1;
    }
    return 0;
}

static const pt_section_t schema = {
    "basic-auth", sizeof(conf_t), keys, check, NULL,
    "Authenticates by user name and password (consumers' basic-auth credentials). A verification that "
    "succeeded is remembered by the worker for 5 minutes (at most 4096), so the hash is not computed again "
    "for each request. Example: basic-auth: { realm: api, hide_credentials: true }."};

/* ---- the cache of successful verifications ---- */

#define CACHE_SLOTS 4096 /* a power of 2 */
#define CACHE_TTL 300    /* seconds */

typedef struct slot {
    unsigned char id[32]; /* SHA-256(stored hash, 0, username, 0, password) */
    time_t until;
} slot_t;

static slot_t *cache;

/* false when the parts are too long to remember (then not cached) */
static bool cache_id(const pt_credential_conf_t *cr, pt_str_t user, pt_str_t pass, unsigned char id[32])
{
    char buf[1024];
    size_t hl = strlen(cr->password);
    if (hl + user.n + pass.n + 2 > sizeof(buf))
        return false;
    memcpy(buf, cr->password, hl);
    buf[hl] = '\0';
    memcpy(buf + hl + 1, user.p, user.n);
    buf[hl + 1 + user.n] = '\0';
    memcpy(buf + hl + 2 + user.n, pass.p, pass.n);
    bool ok = pt_sha256(buf, hl + 2 + user.n + pass.n, id);
    OPENSSL_cleanse(buf, sizeof(buf));
    return ok;
}

static slot_t *cache_slot(const unsigned char id[32])
{
    if (!cache && !(cache = calloc(CACHE_SLOTS, sizeof(slot_t))))
        return NULL;
    return &cache[(id[0] | id[1] << 8) & (CACHE_SLOTS - 1)];
}

static bool verify(const pt_credential_conf_t *cr, pt_str_t user, pt_str_t pass)
{
    unsigned char id[32];
    slot_t *s = cache_id(cr, user, pass, id) ? cache_slot(id) : NULL;
    time_t now = time(NULL);
    if (s && s->until > now && CRYPTO_memcmp(s->id, id, 32) == 0)
        return true;
    static struct crypt_data *cd; /* 32 KiB: once per worker */
    if (!cd && !(cd = calloc(1, sizeof(*cd))))
        return false;
    char *pw = strndup(pass.p, pass.n); /* crypt wants a C string: a password with NUL never matches */
    if (!pw || memchr(pass.p, '\0', pass.n)) {
        free(pw);
        return false;
    }
    const char *out = crypt_rn(pw, cr->password, cd, sizeof(*cd));
    OPENSSL_cleanse(pw, pass.n);
    free(pw);
    size_t len = strlen(cr->password);
    bool ok = out && out[0] != '*' && strlen(out) == len && CRYPTO_memcmp(out, cr->password, len) == 0;
    if (ok && s) {
        memcpy(s->id, id, 32);
        s->until = now + CACHE_TTL;
    }
    return ok;
}

/* ---- the filter ---- */

static size_t challenge(const void *vconf, bool invalid, char *buf, size_t size)
{
    const conf_t *conf = vconf;
    (void)invalid;
    int n = snprintf(buf, size, "Basic realm=\"%s\", charset=\"UTF-8\"", conf->realm);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    if (pt_auth_decided(fx)) /* another filter's credential: this kind is hidden all the same */
        return conf->hide && pt_h1_find(req, PT_STR("authorization")) ? pt_auth_hide_header(c, fx, PT_STR("Authorization"))
                                                                        : PT_NEXT;
    bool several;
    const pt_h1_header_t *h = pt_auth_header(req, PT_STR("authorization"), &several);
    if (several)
        return pt_auth_several(c, req, PT_STR("Authorization"));
    pt_str_t v = h ? h->value : PT_STR_NULL;
    if (!h || v.n < 5 || strncasecmp(v.p, "basic", 5) != 0 || (v.n > 5 && v.p[5] != ' '))
        return pt_auth_absent(c, req, fx, PT_FILTER_BASIC_AUTH);
    v.p += 5;
    v.n -= 5;
    while (v.n && v.p[0] == ' ') {
        v.p++;
        v.n--;
    }
    char *dec = pt_arena_alloc(&c->arena, v.n / 4 * 3 + 3);
    long n = dec ? pt_base64_decode(v, (unsigned char *)dec, v.n / 4 * 3 + 3, false) : -1;
    const char *colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
    if (!colon)
        return pt_auth_reject(c, req, fx, PT_FILTER_BASIC_AUTH, PT_AUTH_INVALID, "Invalid authentication credentials");
    pt_str_t user = {dec, (size_t)(colon - dec)}, pass = {colon + 1, (size_t)(dec + n - colon - 1)};
    const pt_credential_conf_t *cr = pt_creds_find(c->w->conf, PT_CRED_BASIC, user);
    bool ok = cr && verify(cr, user, pass);
    OPENSSL_cleanse(dec, (size_t)n);
    if (!ok)
        return pt_auth_reject(c, req, fx, PT_FILTER_BASIC_AUTH, PT_AUTH_INVALID, "Invalid authentication credentials");
    pt_verdict_t r = pt_auth_accept(c, fx, cr->consumer, cr, NULL);
    if (r == PT_NEXT && conf->hide)
        r = pt_auth_hide_header(c, fx, PT_STR("Authorization"));
    return r;
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    const conf_t *conf = vconf;
    if (!pt_creds_count(c, PT_CRED_BASIC))
        pt_conf_warn(cc, conf->node, "basic-auth: no consumer has a basic-auth credential: every request with one is refused");
    return 0;
}

const pt_filter_t pt_filter_basic_auth = {
    .name = "basic-auth", .schema = &schema, .on_request = on_request, .challenge = challenge, .link = link_conf};
