/* Consumers' credentials: one schema for every type (the keys a type does
 * not use are refused by its check), and the index the auth filters look
 * them up in.  Secrets (an API key, a password hash, an HMAC or JWT secret)
 * are PT_F_SECRET: -T prints them redacted. */
#include "config.h"

#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/config.h"
#include "portico/credentials.h"
#include "portico/digest.h"
#include "portico/jose.h"
#include "portico/schema.h"
#include "portico/value.h"

const char *const pt_cred_type_names[] = {"key-auth", "basic-auth", "jwt-auth", "hmac-auth", "tls-client", NULL};

#define C(field) offsetof(pt_credential_conf_t, field)
#define END {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL}

static int check_credential(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj);

static const pt_directive_t credential_keys[] = {
    {"type", PT_T_ENUM, C(type), NULL, 0, 0, pt_cred_type_names, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "key-auth, basic-auth, jwt-auth, hmac-auth or tls-client: which filter checks it, and which keys below "
     "apply."},
    {"id", PT_T_STR, C(id), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "What X-Credential-Identifier says when this credential is used. Default: the username (basic-auth), "
     "the key (jwt-auth), the key_id (hmac-auth), the san or subject (tls-client), CONSUMER:key-auth:N (the "
     "Nth credential of the consumer, from 0) for key-auth."},
    {"key", PT_T_STR, C(key), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_SECRET, NULL,
     "key-auth: the API key. jwt-auth: the value of the token's key_claim (iss by default) that names this "
     "credential."},
    {"key_sha256", PT_T_STR, C(key_sha256), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_SECRET, NULL,
     "key-auth: the SHA-256 of the API key, 64 hex digits (printf %s KEY | sha256sum), instead of key: the "
     "file then holds no key."},
    {"username", PT_T_STR, C(username), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, "basic-auth: the user name."},
    {"password", PT_T_STR, C(password), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_SECRET, NULL,
     "basic-auth: a crypt(3) hash of the password: bcrypt ($2y$, $2b$: htpasswd -B), sha512-crypt ($6$: "
     "mkpasswd -m sha512crypt) or yescrypt ($y$: mkpasswd -m yescrypt). A plain password is refused."},
    {"algorithm", PT_T_STR, C(algorithm), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "jwt-auth: the one algorithm tokens of this credential are signed with: HS256, HS384, HS512, RS256, "
     "RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA."},
    {"secret", PT_T_STR, C(secret), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_SECRET, NULL,
     "jwt-auth with HS256/384/512: the shared secret, at least as long as the hash (32, 48, 64 bytes). "
     "hmac-auth: the shared secret."},
    {"secret_base64", PT_T_BOOL, C(secret_base64), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The secret is the base64 (or base64url) form of its bytes, for secrets that are not text (Kong's "
     "secret_is_base64)."},
    {"public_key", PT_T_STR, C(public_key), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "path",
     "jwt-auth with RS, PS, ES or EdDSA: a PEM file with the public key or a certificate that holds it."},
    {"key_id", PT_T_STR, C(key_id), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "hmac-auth: the key id a signature names (username= in Kong's format, keyId= in draft-cavage's)."},
    {"san", PT_T_STR, C(san), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "tls-client: a subject alternative name (DNS name, e-mail address, URI or IP address) of the client "
     "certificate."},
    {"subject", PT_T_STR, C(subject), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "tls-client: the certificate's subject as OpenSSL prints it in RFC 2253 form (CN=acme,O=Acme), "
     "instead of san."},
    END,
};
const pt_section_t pt_schema_credential = {"credential", sizeof(pt_credential_conf_t), credential_keys,
                                           check_credential, NULL, "A credential of a consumer."};

/* The keys each type takes (beside type and id), and which one is its
 * lookup key. */
static const struct {
    const char *keys[5];
} type_keys[PT_CRED__COUNT] = {
    [PT_CRED_KEY] = {{"key", "key_sha256"}},
    [PT_CRED_BASIC] = {{"username", "password"}},
    [PT_CRED_JWT] = {{"key", "algorithm", "secret", "public_key", "secret_base64"}},
    [PT_CRED_HMAC] = {{"key_id", "secret", "secret_base64"}},
    [PT_CRED_TLS] = {{"san", "subject"}},
};

static bool takes(int type, const char *key)
{
    for (size_t i = 0; i < 5 && type_keys[type].keys[i]; i++)
        if (strcmp(type_keys[type].keys[i], key) == 0)
            return true;
    return strcmp(key, "type") == 0 || strcmp(key, "id") == 0;
}

static int check_key(pt_conf_ctx_t *cc, const pt_node_t *n, pt_credential_conf_t *cr)
{
    if (!cr->key == !cr->key_sha256) {
        pt_conf_error(cc, n, "a key-auth credential has key or key_sha256 (one of them)");
        return -1;
    }
    if (cr->key) {
        if (!cr->key[0]) {
            pt_conf_error_key(cc, n, "key", "an empty key");
            return -1;
        }
        pt_sha256(cr->key, strlen(cr->key), cr->digest);
        return 0;
    }
    if (strlen(cr->key_sha256) != 64) {
        pt_conf_error_key(cc, n, "key_sha256", "64 hex digits, not %zu characters", strlen(cr->key_sha256));
        return -1;
    }
    for (size_t i = 0; i < 32; i++) {
        int hi = pt_hexval(cr->key_sha256[2 * i]), lo = pt_hexval(cr->key_sha256[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            pt_conf_error_key(cc, n, "key_sha256", "64 hex digits: \"%c\" is not one",
                              hi < 0 ? cr->key_sha256[2 * i] : cr->key_sha256[2 * i + 1]);
            return -1;
        }
        cr->digest[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* A crypt(3) hash libcrypt verifies, of a method that is not broken. */
static int check_basic(pt_conf_ctx_t *cc, const pt_node_t *n, pt_credential_conf_t *cr)
{
    if (!cr->username || !cr->password) {
        pt_conf_error(cc, n, "a basic-auth credential needs username and password");
        return -1;
    }
    const char *h = cr->password;
    bool known = strncmp(h, "$2y$", 4) == 0 || strncmp(h, "$2b$", 4) == 0 || strncmp(h, "$2a$", 4) == 0 ||
                 strncmp(h, "$6$", 3) == 0 || strncmp(h, "$5$", 3) == 0 || strncmp(h, "$y$", 3) == 0 ||
                 strncmp(h, "$7$", 3) == 0 || strncmp(h, "$gy$", 4) == 0;
    int ok = known ? crypt_checksalt(h) : CRYPT_SALT_INVALID;
    if (!known || (ok != CRYPT_SALT_OK && ok != CRYPT_SALT_TOO_CHEAP)) {
        pt_conf_error_key(cc, n, "password",
                          "not a crypt(3) hash of bcrypt ($2y$), sha512-crypt ($6$) or yescrypt ($y$): make one "
                          "with htpasswd -nB USER or mkpasswd -m yescrypt (a plain password is never stored)");
        return -1;
    }
    /* the checksum after the last '$' has its method's length (hashing a
     * test password here would cost each bcrypt credential its cost) */
    const char *sum = strrchr(h, '$') + 1;
    size_t want = h[1] == '2' ? 53 : h[1] == '6' ? 86 : 43;
    if (strlen(sum) != want || (h[1] == '2' && strlen(h) != 60)) {
        pt_conf_error_key(cc, n, "password", "a malformed crypt(3) hash (its checksum has %zu characters, not %zu)",
                          strlen(sum), want);
        return -1;
    }
    /* each check runs on a worker's loop: a costly hash stalls every
     * connection of the worker for each wrong password */
    int cost = h[1] == '2' ? atoi(h + 4) : 0;
    long rounds = strncmp(h, "$6$rounds=", 10) == 0 ? atol(h + 10) : 0;
    if (cost > 12 || rounds > 500000)
        pt_conf_warn(cc, pt_node_get(n, "password"), "a costly hash (%s %ld): each check, and every wrong password, "
                     "blocks a worker for its time; bcrypt 10-12 is enough for a gateway", cost ? "bcrypt cost" : "rounds",
                     cost ? (long)cost : rounds);
    if (ok == CRYPT_SALT_TOO_CHEAP)
        pt_conf_warn(cc, pt_node_get(n, "password"), "a cheap hash: its cost is below what libcrypt recommends");
    return 0;
}

static void free_jwk(void *p)
{
    pt_jwk_free(p);
    free(p);
}

/* The secret's bytes: as written, or decoded from base64 (either alphabet,
 * padding optional). */
static int secret_bytes(pt_conf_ctx_t *cc, const pt_node_t *n, pt_credential_conf_t *cr)
{
    size_t len = strlen(cr->secret);
    if (!cr->secret_base64) {
        cr->secret_raw = (unsigned char *)cr->secret;
        cr->secret_len = len;
        return 0;
    }
    unsigned char *out = pt_arena_alloc(cc->arena, len / 4 * 3 + 3);
    bool url = strpbrk(cr->secret, "-_") != NULL;
    long o = out ? pt_base64_decode((pt_str_t){cr->secret, len}, out, len / 4 * 3 + 3, url) : -1;
    if (o <= 0) {
        pt_conf_error_key(cc, n, "secret", "not base64 (secret_base64 is true)");
        return -1;
    }
    cr->secret_raw = out;
    cr->secret_len = (size_t)o;
    return 0;
}

/* A PEM file of at most 1 MiB, NUL-terminated; NULL with err. */
static char *read_pem(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *b = malloc((1 << 20) + 1);
    size_t n = b ? fread(b, 1, 1 << 20, f) : 0;
    bool more = b && fgetc(f) != EOF;
    fclose(f);
    if (!b || more || !n) {
        snprintf(err, errlen, "%s: %s", path, !b ? "out of memory" : more ? "larger than 1 MiB" : "empty");
        free(b);
        return NULL;
    }
    b[n] = '\0';
    *len = n;
    return b;
}

/* The key, pinned to its algorithm: a secret (HS) or a PEM file. */
static int check_jwt(pt_conf_ctx_t *cc, const pt_node_t *n, pt_credential_conf_t *cr)
{
    if (!cr->key || !cr->algorithm || !cr->secret == !cr->public_key) {
        pt_conf_error(cc, n, "a jwt-auth credential needs key, algorithm, and secret or public_key");
        return -1;
    }
    int alg = pt_jwa_parse(cr->algorithm, strlen(cr->algorithm));
    if (alg < 0) {
        pt_conf_error_key(cc, n, "algorithm", "unknown algorithm \"%s\" (HS256, HS384, HS512, RS256, RS384, RS512, "
                          "PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", cr->algorithm);
        return -1;
    }
    bool hs = alg <= PT_JWA_HS512;
    if (hs != (cr->secret != NULL)) {
        pt_conf_error(cc, n, "%s takes %s", cr->algorithm, hs ? "a secret, not a public_key" : "a public_key, not a secret");
        return -1;
    }
    pt_jwk_t *k = calloc(1, sizeof(*k));
    char err[256];
    int rc;
    if (hs) {
        if (secret_bytes(cc, n, cr) < 0) {
            free(k);
            return -1;
        }
        rc = k ? pt_jwk_from_secret(k, alg, cr->secret_raw, cr->secret_len, err, sizeof(err)) : -1;
    } else {
        size_t len = 0;
        char *pem = k ? read_pem(cr->public_key, &len, err, sizeof(err)) : NULL;
        rc = pem ? pt_jwk_from_pem(k, alg, pem, len, err, sizeof(err)) : -1;
        free(pem);
    }
    if (rc < 0) {
        pt_conf_error_key(cc, n, hs ? "secret" : "public_key", "%s", k ? err : "out of memory");
        free(k);
        return -1;
    }
    if (pt_config_own(cc, k, free_jwk) < 0)
        return -1;
    cr->jwk = k;
    return 0;
}

static int check_credential(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_credential_conf_t *cr = obj;
    int rc = 0;
    for (size_t i = 0; n->type == PT_NODE_MAP && i < n->npairs; i++) {
        const char *k = n->pairs[i].key->s;
        if (!takes(cr->type, k)) {
            pt_conf_error(cc, n->pairs[i].key, "a %s credential has no %s", pt_cred_type_names[cr->type], k);
            rc = -1;
        }
    }
    const char *why = cr->id ? pt_value_field_text(cr->id, false) : NULL;
    if (why) {
        pt_conf_error_key(cc, n, "id", "%s", why);
        return -1;
    }
    if (rc < 0)
        return rc;
    switch (cr->type) {
    case PT_CRED_KEY:
        return check_key(cc, n, cr);
    case PT_CRED_BASIC:
        return check_basic(cc, n, cr);
    case PT_CRED_JWT:
        return check_jwt(cc, n, cr);
    case PT_CRED_HMAC:
        if (!cr->key_id || !cr->secret || !cr->secret[0]) {
            pt_conf_error(cc, n, "an hmac-auth credential needs key_id and secret");
            return -1;
        }
        return secret_bytes(cc, n, cr);
    case PT_CRED_TLS:
        if (!cr->san == !cr->subject) {
            pt_conf_error(cc, n, "a tls-client credential has san or subject (one of them)");
            return -1;
        }
        return 0;
    }
    return 0;
}

/* ---- the index ---- */

typedef struct entry {
    pt_str_t key;
    const pt_credential_conf_t *cr;
} entry_t;

struct pt_cred_index {
    entry_t *v[PT_CRED__COUNT];
    size_t n[PT_CRED__COUNT];
};

static pt_str_t key_of(const pt_credential_conf_t *cr)
{
    switch (cr->type) {
    case PT_CRED_KEY:
        return (pt_str_t){(const char *)cr->digest, sizeof(cr->digest)};
    case PT_CRED_BASIC:
        return pt_str_from(cr->username);
    case PT_CRED_JWT:
        return pt_str_from(cr->key);
    case PT_CRED_HMAC:
        return pt_str_from(cr->key_id);
    default:
        return pt_str_from(cr->san ? cr->san : cr->subject);
    }
}

static int cmp_key(pt_str_t a, pt_str_t b)
{
    int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    return c ? c : a.n < b.n ? -1 : a.n > b.n;
}

static int cmp_entry(const void *x, const void *y)
{
    const entry_t *a = x, *b = y;
    int c = cmp_key(a->key, b->key);
    /* file order among equals, so the duplicate reported is the later one */
    return c ? c : a->cr->node->line < b->cr->node->line ? -1 : a->cr->node->line > b->cr->node->line;
}

static const char *what_key(int type, const pt_credential_conf_t *cr)
{
    static const char *const names[] = {"API key", "username", "key", "key_id", NULL};
    return type == PT_CRED_TLS ? (cr->san ? "san" : "subject") : names[type];
}

int pt_creds_index(pt_conf_ctx_t *cc, pt_config_t *c)
{
    struct pt_cred_index *ix = pt_arena_zalloc(cc->arena, sizeof(*ix));
    if (!ix)
        return -1;
    size_t total = 0;
    for (size_t i = 0; i < c->consumers.n; i++)
        total += PT_LIST_AT(c->consumers, pt_consumer_conf_t, i)->credentials.n;
    for (int t = 0; t < PT_CRED__COUNT; t++)
        if (!(ix->v[t] = pt_arena_zalloc(cc->arena, (total + 1) * sizeof(entry_t))))
            return -1;
    for (size_t i = 0; i < c->consumers.n; i++) {
        pt_consumer_conf_t *co = PT_LIST_AT(c->consumers, pt_consumer_conf_t, i);
        for (size_t k = 0; k < co->credentials.n; k++) {
            pt_credential_conf_t *cr = PT_LIST_AT(co->credentials, pt_credential_conf_t, k);
            cr->index = k;
            cr->consumer = co;
            char buf[256];
            const char *id = pt_cred_identifier(cr, buf, sizeof(buf));
            cr->ident = id == buf ? pt_arena_strdup(cc->arena, buf) : id;
            ix->v[cr->type][ix->n[cr->type]++] = (entry_t){key_of(cr), cr};
        }
        if (co->groups.n) {
            size_t len = 1;
            for (size_t g = 0; g < co->groups.n; g++)
                len += strlen(co->groups.v[g]) + 2;
            char *s = pt_arena_alloc(cc->arena, len), *p = s;
            for (size_t g = 0; s && g < co->groups.n; g++)
                p += sprintf(p, "%s%s", g ? ", " : "", co->groups.v[g]);
            co->groups_text = s;
        }
    }
    int rc = 0;
    for (int t = 0; t < PT_CRED__COUNT; t++) {
        qsort(ix->v[t], ix->n[t], sizeof(entry_t), cmp_entry);
        for (size_t i = 1; i < ix->n[t]; i++) {
            const entry_t *a = &ix->v[t][i - 1], *b = &ix->v[t][i];
            if (cmp_key(a->key, b->key) != 0)
                continue;
            /* two consumers (or one twice) could not be told apart */
            pt_conf_error(cc, b->cr->node, "consumer \"%s\": a %s credential with the same %s as consumer \"%s\"'s",
                          b->cr->consumer->name, pt_cred_type_names[t], what_key(t, b->cr), a->cr->consumer->name);
            pt_conf_note(cc, a->cr->node, "that one is here");
            rc = -1;
        }
    }
    c->creds = ix;
    return rc;
}

const pt_credential_conf_t *pt_creds_find(const pt_config_t *c, int type, pt_str_t key)
{
    const struct pt_cred_index *ix = c->creds;
    if (!ix || !key.p)
        return NULL;
    size_t lo = 0, hi = ix->n[type];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = cmp_key(ix->v[type][mid].key, key);
        if (d == 0)
            return ix->v[type][mid].cr;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t pt_creds_count(const pt_config_t *c, int type)
{
    return c->creds ? c->creds->n[type] : 0;
}

const char *pt_cred_identifier(const pt_credential_conf_t *cr, char *buf, size_t size)
{
    if (cr->id)
        return cr->id;
    if (cr->type == PT_CRED_KEY) {
        snprintf(buf, size, "%s:key-auth:%zu", cr->consumer->name, cr->index);
        return buf;
    }
    pt_str_t k = key_of(cr);
    return k.p;
}

void pt_creds_secret_arg(pt_conf_ctx_t *cc, const pt_node_t *n, const char *name)
{
    pt_config_t *c = cc->config;
    if (!c || !name || !name[0])
        return;
    for (size_t i = 0; i < c->nsecret_args; i++)
        if (strcmp(c->secret_args[i], name) == 0)
            return;
    if (c->nsecret_args < sizeof(c->secret_args) / sizeof(c->secret_args[0]))
        c->secret_args[c->nsecret_args++] = name;
    else
        pt_conf_warn(cc, n, "more than 8 query arguments carry credentials: \"%s\" is not masked in the access "
                               "log", name);
}
