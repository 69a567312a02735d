/* TLS termination with OpenSSL 3.
 *
 * Contexts are built in the master while the configuration loads, so a
 * bad certificate or a key that does not match is a configuration error
 * (at the key's file:line:col) and a reload with one changes nothing; the
 * workers inherit them.  One SSL_CTX per group of certificates with the
 * same names (an RSA and an ECDSA certificate for the same names share
 * one, and OpenSSL picks by what the client supports).  Names come from
 * the certificates themselves (DNS SANs, or the CN without them); SNI
 * picks an exact name, then a `*.example.com` wildcard, then the first
 * certificate.
 *
 * Session tickets: every worker derives the key of the current period
 * (`ticket_key_rotation`) from one 32-byte secret the master keeps in a
 * shared zone, so a ticket issued by one worker is accepted by all of
 * them, keys rotate without any message between processes, and a ticket
 * of the previous period is still accepted (and renewed).  The stateful
 * session cache is off: resumption is by ticket only. */
#include "config.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "portico/conf.h"
#include "portico/config.h"
#include "portico/schema.h"
#include "portico/tls.h"
#include "portico/zone.h"

typedef struct group {
    SSL_CTX *ctx;
    char **names;
    size_t nnames;
    unsigned key_types; /* bit per EVP_PKEY id class: 1 RSA, 2 EC, 4 other */
} group_t;

struct pt_tls_server {
    group_t *v;
    size_t n;
    int64_t rotation_s;
    bool h2;
};

static unsigned char *ticket_secret; /* 32 bytes in the "tls-tickets" zone */

/* ---- session-ticket keys ---- */

typedef struct ticket_keys {
    int64_t slot; /* -1: none */
    unsigned char name[16], aes[32], mac[32];
} ticket_keys_t;

static void derive(int64_t slot, const char *what, unsigned char out[32])
{
    unsigned char data[16];
    size_t wl = strlen(what);
    memcpy(data, what, wl);
    for (int i = 0; i < 8; i++)
        data[wl + i] = (unsigned char)((uint64_t)slot >> (56 - 8 * i));
    size_t outlen = 0;
    EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, ticket_secret, 32, data, wl + 8, out, 32, &outlen);
}

static const ticket_keys_t *keys_for(int64_t slot)
{
    static ticket_keys_t memo[2] = {{.slot = -1}, {.slot = -1}};
    ticket_keys_t *k = &memo[slot & 1];
    if (k->slot != slot) {
        unsigned char name[32];
        derive(slot, "name", name);
        memcpy(k->name, name, 16);
        derive(slot, "aes", k->aes);
        derive(slot, "mac", k->mac);
        k->slot = slot;
    }
    return k;
}

static int set_mac(EVP_MAC_CTX *hctx, const unsigned char *key)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx,
                     int enc)
{
    const pt_tls_server_t *srv = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    if (!ticket_secret || !srv)
        return 0;
    int64_t slot = (int64_t)time(NULL) / srv->rotation_s;
    if (enc) {
        const ticket_keys_t *k = keys_for(slot);
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, k->name, 16);
        if (!EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) || !set_mac(hctx, k->mac))
            return -1;
        return 1;
    }
    for (int back = 0; back < 2; back++) {
        const ticket_keys_t *k = keys_for(slot - back);
        if (memcmp(name, k->name, 16) != 0)
            continue;
        if (!EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) || !set_mac(hctx, k->mac))
            return -1;
        return back ? 2 : 1; /* a ticket of the last period: accepted, and renewed */
    }
    return 0; /* unknown key: a full handshake */
}

int pt_tls_prepare(const pt_config_t *c)
{
    bool any = false;
    for (size_t i = 0; i < c->listeners.n; i++)
        any |= PT_LIST_AT(c->listeners, pt_listener_conf_t, i)->tls.node != NULL;
    if (!any)
        return 0;
    pt_zone_t *z = pt_zone_get("tls-tickets", 64);
    if (!z)
        return -1;
    ticket_secret = pt_zone_data(z);
    if (!pt_zone_reused(z) && RAND_bytes(ticket_secret, 32) != 1)
        return -1;
    return 0;
}

/* ---- SNI and ALPN ---- */

static bool name_matches(const char *pattern, const char *host)
{
    if (strcasecmp(pattern, host) == 0)
        return true;
    if (pattern[0] != '*' || pattern[1] != '.')
        return false;
    const char *dot = strchr(host, '.'); /* the wildcard is one whole label */
    return dot && dot != host && strcasecmp(pattern + 1, dot) == 0;
}

static SSL_CTX *find_ctx(const pt_tls_server_t *srv, const char *host)
{
    for (int wild = 0; wild < 2; wild++)
        for (size_t i = 0; i < srv->n; i++)
            for (size_t k = 0; k < srv->v[i].nnames; k++) {
                const char *p = srv->v[i].names[k];
                if ((p[0] == '*') == wild && name_matches(p, host))
                    return srv->v[i].ctx;
            }
    return NULL;
}

static int sni_cb(SSL *s, int *alert, void *arg)
{
    const pt_tls_server_t *srv = arg;
    const char *host = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    SSL_CTX *ctx = host ? find_ctx(srv, host) : NULL;
    if (ctx && ctx != SSL_get_SSL_CTX(s))
        SSL_set_SSL_CTX(s, ctx);
    return SSL_TLSEXT_ERR_OK; /* an unknown name gets the default certificate */
}

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    const pt_tls_server_t *srv = arg;
    static const unsigned char h2[] = "\x02h2\x08http/1.1", h1[] = "\x08http/1.1";
    const unsigned char *ours = srv->h2 ? h2 : h1;
    unsigned int ourlen = srv->h2 ? sizeof(h2) - 1 : sizeof(h1) - 1;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, ourlen, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* nothing in common: go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* ---- building the contexts ---- */

static const char *ssl_reason(void)
{
    static char buf[256];
    unsigned long e = ERR_peek_last_error();
    if (!e)
        return "unknown error";
    ERR_error_string_n(e, buf, sizeof(buf));
    const char *r = ERR_reason_error_string(e);
    ERR_clear_error();
    return r ? r : buf;
}

static int proto_of(const char *s)
{
    if (strcmp(s, "TLSv1.2") == 0)
        return TLS1_2_VERSION;
    if (strcmp(s, "TLSv1.3") == 0)
        return TLS1_3_VERSION;
    return 0;
}

static unsigned key_type(X509 *x)
{
    int id = EVP_PKEY_get_base_id(X509_get0_pubkey(x));
    return id == EVP_PKEY_RSA ? 1 : id == EVP_PKEY_EC ? 2 : 4;
}

/* The certificate's DNS names (its CN when it has none), in the arena. */
static int cert_names(pt_conf_ctx_t *cc, X509 *x, group_t *g)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = sans ? sk_GENERAL_NAME_num(sans) : 0;
    g->names = pt_arena_alloc(cc->arena, (size_t)(n + 1) * sizeof(char *));
    if (!g->names) {
        GENERAL_NAMES_free(sans);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(gn->d.dNSName);
        g->names[g->nnames++] = pt_arena_strndup(cc->arena, (const char *)d, (size_t)ASN1_STRING_length(gn->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    char cn[256];
    if (!g->nnames && X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0)
        g->names[g->nnames++] = pt_arena_strndup(cc->arena, cn, strlen(cn));
    return 0;
}

static bool same_names(const group_t *a, const group_t *b)
{
    if (a->nnames != b->nnames)
        return false;
    for (size_t i = 0; i < a->nnames; i++)
        if (strcasecmp(a->names[i], b->names[i]) != 0)
            return false;
    return true;
}

static void free_server(void *p)
{
    pt_tls_server_t *srv = p;
    for (size_t i = 0; i < srv->n; i++)
        SSL_CTX_free(srv->v[i].ctx);
    free(srv->v);
    free(srv);
}

/* Only regular files: a directory, a FIFO or a device would fail late, or
 * never end. */
static int regular_file(pt_conf_ctx_t *cc, const pt_node_t *n, const char *what, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        pt_conf_error(cc, n, "cannot load the %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        pt_conf_error(cc, n, "the %s %s is not a regular file", what, path);
        return -1;
    }
    return 0;
}

/* The CAs of `path` (a key at node n) to verify peers against: 0 or -1. */
static int load_verify(pt_conf_ctx_t *cc, const pt_node_t *n, SSL_CTX *ctx, const char *path)
{
    if (regular_file(cc, n, "CA file", path) < 0)
        return -1;
    errno = 0;
    if (SSL_CTX_load_verify_file(ctx, path) != 1) {
        pt_conf_error(cc, n, "cannot load CA certificates from %s: %s", path, errno ? strerror(errno) : ssl_reason());
        return -1;
    }
    return 0;
}

/* What every context of ours does with writes: a partial SSL_write is
 * fine, the queue's buffer may move between retries, idle buffers go. */
#define IO_MODES (SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS)

/* A context with the settings every certificate of the listener shares. */
static SSL_CTX *new_ctx(pt_conf_ctx_t *cc, const pt_node_t *n, const pt_tls_conf_t *t, pt_tls_server_t *srv,
                        int minv, int maxv)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_max_proto_version(ctx, maxv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 (t->session_tickets ? 0 : SSL_OP_NO_TICKET));
    SSL_CTX_set_mode(ctx, IO_MODES);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"portico", 7);
    SSL_CTX_set_timeout(ctx, (long)(2 * srv->rotation_s));
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, srv);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, srv);
    SSL_CTX_set_app_data(ctx, srv);
    if (t->ciphers && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
        pt_conf_error(cc, pt_node_get(n, "ciphers"), "no usable cipher in \"%s\": %s", t->ciphers, ssl_reason());
        goto fail;
    }
    if (t->ciphersuites && SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1) {
        pt_conf_error(cc, pt_node_get(n, "ciphersuites"), "no usable TLS 1.3 cipher suite in \"%s\": %s",
                      t->ciphersuites, ssl_reason());
        goto fail;
    }
    if (t->client_ca) {
        if (load_verify(cc, pt_node_get(n, "client_ca"), ctx, t->client_ca) < 0)
            goto fail;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->client_ca);
        if (!names) {
            pt_conf_error(cc, pt_node_get(n, "client_ca"), "no CA certificate in %s", t->client_ca);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (t->verify == PT_VERIFY_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           NULL);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* The password callback of key loading: no passphrase, and a note that
 * one was asked for. */
static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    if (asked)
        *(bool *)asked = true;
    return -1;
}

/* Loads one certificate and key into ctx: 0, or -1 after an error at the
 * right key of item n. */
static int load_pair(pt_conf_ctx_t *cc, const pt_node_t *n, const pt_tls_cert_conf_t *pc, SSL_CTX *ctx)
{
    if (regular_file(cc, pt_node_get(n, "cert"), "certificate", pc->cert) < 0 ||
        regular_file(cc, pt_node_get(n, "key"), "key", pc->key) < 0)
        return -1;
    ERR_clear_error();
    errno = 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, pc->cert) != 1) {
        pt_conf_error(cc, pt_node_get(n, "cert"), "cannot load the certificate %s: %s", pc->cert,
                      errno ? strerror(errno) : ssl_reason());
        return -1;
    }
    errno = 0;
    /* OpenSSL's default asks for a passphrase on the terminal and waits
     * (a reload would hang in the master): keys are taken unencrypted. */
    bool asked = false;
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
    int used = SSL_CTX_use_PrivateKey_file(ctx, pc->key, SSL_FILETYPE_PEM);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (used != 1) {
        unsigned long e = ERR_peek_last_error();
        if (asked)
            pt_conf_error(cc, pt_node_get(n, "key"), "the key %s is encrypted: Portico takes unencrypted keys "
                                                     "(decrypt it with `openssl pkey -in KEY -out KEY.plain`, "
                                                     "mode 0600)", pc->key);
        else if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH || ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)
            pt_conf_error(cc, pt_node_get(n, "key"), "the key %s does not match the certificate %s", pc->key,
                          pc->cert);
        else
            pt_conf_error(cc, pt_node_get(n, "key"), "cannot load the key %s: %s", pc->key,
                          errno ? strerror(errno) : ssl_reason());
        ERR_clear_error();
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        pt_conf_error(cc, pt_node_get(n, "key"), "the key %s does not match the certificate %s", pc->key, pc->cert);
        return -1;
    }
    return 0;
}

/* The protocol range from `protocols`: 0, or -1 after an error. */
static int proto_range(pt_conf_ctx_t *cc, const pt_node_t *n, const pt_tls_conf_t *t, int *minv, int *maxv)
{
    *minv = TLS1_2_VERSION;
    *maxv = TLS1_3_VERSION;
    if (!t->protocols.n)
        return 0;
    *minv = TLS1_3_VERSION + 1;
    *maxv = 0;
    const pt_node_t *pl = pt_node_get(n, "protocols");
    for (size_t i = 0; i < t->protocols.n; i++) {
        const char *p = ((char **)t->protocols.v)[i];
        int v = proto_of(p);
        if (!v) {
            pt_conf_error(cc, pl && pl->type == PT_NODE_SEQ && i < pl->nitems ? pl->items[i] : n,
                          "unknown protocol \"%s\" (expected TLSv1.2 or TLSv1.3)", p);
            return -1;
        }
        *minv = v < *minv ? v : *minv;
        *maxv = v > *maxv ? v : *maxv;
    }
    return 0;
}

static int build_server(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_tls_conf_t *t = obj;
    int minv, maxv;
    if (proto_range(cc, n, t, &minv, &maxv) < 0)
        return -1;
    pt_tls_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv || !(srv->v = calloc(t->certificates.n, sizeof(group_t)))) {
        free(srv);
        return -1;
    }
    srv->rotation_s = t->ticket_key_rotation / 1000 ? t->ticket_key_rotation / 1000 : 1;
    if (pt_config_own(cc, srv, free_server) < 0)
        return -1;
    const pt_node_t *certs = pt_node_get(n, "certificates");
    for (size_t i = 0; i < t->certificates.n; i++) {
        const pt_tls_cert_conf_t *pc = PT_LIST_AT(t->certificates, pt_tls_cert_conf_t, i);
        const pt_node_t *item = certs && certs->type == PT_NODE_SEQ ? certs->items[i] : n;
        group_t g = {.ctx = new_ctx(cc, n, t, srv, minv, maxv)};
        if (!g.ctx)
            return -1;
        if (load_pair(cc, item, pc, g.ctx) < 0 || cert_names(cc, SSL_CTX_get0_certificate(g.ctx), &g) < 0) {
            SSL_CTX_free(g.ctx);
            return -1;
        }
        g.key_types = key_type(SSL_CTX_get0_certificate(g.ctx));
        group_t *same = NULL;
        for (size_t k = 0; k < srv->n && !same; k++)
            if (same_names(&srv->v[k], &g) && !(srv->v[k].key_types & g.key_types))
                same = &srv->v[k];
        if (same) { /* another key type for the same names: one context */
            SSL_CTX_free(g.ctx);
            if (load_pair(cc, item, pc, same->ctx) < 0)
                return -1;
            same->key_types |= g.key_types;
        } else {
            srv->v[srv->n++] = g;
        }
    }
    t->server = srv;
    return 0;
}

/* A connection of ctx on fd, or NULL. */
static SSL *ssl_on(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl && SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ssl = NULL;
    }
    return ssl;
}

/* ---- the client side, towards upstreams ---- */

struct pt_tls_client {
    SSL_CTX *ctx;
};

static void free_client(void *p)
{
    pt_tls_client_t *cl = p;
    SSL_CTX_free(cl->ctx);
    free(cl);
}

/* A TLS 1.3 ticket arrives after the handshake: kept for the next
 * connection to the same target. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = SSL_get_app_data(ssl);
    if (!slot)
        return 0;
    if (*slot)
        SSL_SESSION_free(*slot);
    *slot = sess;
    return 1; /* we keep the reference */
}

static int build_client(pt_conf_ctx_t *cc, const pt_node_t *n, pt_upstream_tls_t *t)
{
    pt_tls_client_t *cl = calloc(1, sizeof(*cl));
    if (!cl || !(cl->ctx = SSL_CTX_new(TLS_client_method()))) {
        free(cl);
        return -1;
    }
    if (pt_config_own(cc, cl, free_client) < 0)
        return -1;
    SSL_CTX *ctx = cl->ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, IO_MODES);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    if (t->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (t->ca) {
            if (load_verify(cc, pt_node_get(n, "ca"), ctx, t->ca) < 0)
                return -1;
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            ERR_clear_error();
        }
    }
    if (t->cert || t->key) {
        if (!t->cert || !t->key) {
            pt_conf_error(cc, n, "a client certificate needs both cert and key");
            return -1;
        }
        pt_tls_cert_conf_t pc = {.cert = t->cert, .key = t->key};
        if (load_pair(cc, n, &pc, ctx) < 0)
            return -1;
    }
    t->client = cl;
    return 0;
}

SSL *pt_tls_connect(pt_tls_client_t *cl, int fd, const char *name, const char *ip, SSL_SESSION **session)
{
    SSL *ssl = ssl_on(cl->ctx, fd);
    if (!ssl)
        return NULL;
    SSL_set_connect_state(ssl);
    if (name) {
        SSL_set_tlsext_host_name(ssl, name);
        SSL_set1_host(ssl, name);
    } else if (ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip);
    }
    SSL_set_app_data(ssl, session);
    if (session && *session)
        SSL_set_session(ssl, *session);
    return ssl;
}

int pt_tls_build(pt_config_t *c, pt_diag_t *d)
{
    pt_conf_ctx_t cc = {.arena = &c->arena, .diag = d, .file = c->file, .prov = &c->prov, .config = c};
    size_t before = d->errors;
    for (size_t i = 0; i < c->listeners.n; i++) {
        pt_listener_conf_t *l = PT_LIST_AT(c->listeners, pt_listener_conf_t, i);
        if (l->tls.node && build_server(&cc, l->tls.node, &l->tls) == 0)
            l->tls.server->h2 = l->http2; /* offered by ALPN */
    }
    for (size_t i = 0; i < c->upstreams.n; i++) {
        pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        if (u->scheme == PT_SCHEME_HTTPS || u->scheme == PT_SCHEME_GRPCS)
            build_client(&cc, pt_node_get(u->node, "tls"), &u->tls);
    }
    pt_diag_sort(d);
    return d->errors > before ? -1 : 0;
}

bool pt_tls_alpn_h2(SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}

/* ---- connections ---- */

SSL *pt_tls_accept(pt_tls_server_t *s, int fd)
{
    SSL *ssl = ssl_on(s->v[0].ctx, fd);
    if (ssl)
        SSL_set_accept_state(ssl);
    return ssl;
}

static int want(SSL *ssl, int rc)
{
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return PT_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return PT_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return PT_TLS_EOF;
    case SSL_ERROR_SYSCALL:
        /* a reset (errno set by the read) is an error; a bare close
         * without close_notify is taken as the end, as browsers and nginx
         * take it */
        return ERR_peek_error() || errno ? PT_TLS_ERROR : PT_TLS_EOF;
    case SSL_ERROR_SSL:
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return PT_TLS_EOF;
        return PT_TLS_ERROR;
    default:
        return PT_TLS_ERROR;
    }
}

int pt_tls_handshake(SSL *ssl, char *why, size_t whylen)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return PT_TLS_OK;
    int w = want(ssl, rc);
    if (w == PT_TLS_WANT_READ || w == PT_TLS_WANT_WRITE)
        return w;
    unsigned long e = ERR_peek_error();
    if (ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
        ERR_clear_error();
        return PT_TLS_PLAIN_HTTP;
    }
    if (e)
        snprintf(why, whylen, "%s", ssl_reason());
    else
        snprintf(why, whylen, "%s", errno ? strerror(errno) : "the client closed the connection");
    ERR_clear_error();
    return PT_TLS_ERROR;
}

ssize_t pt_tls_read(SSL *ssl, void *buf, size_t n)
{
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_read_ex(ssl, buf, n, &got);
    if (rc == 1)
        return (ssize_t)got;
    int w = want(ssl, rc);
    ERR_clear_error();
    return w;
}

ssize_t pt_tls_write(void *ctx, const void *p, size_t n)
{
    SSL *ssl = ctx;
    size_t done = 0;
    ERR_clear_error();
    int rc = SSL_write_ex(ssl, p, n, &done);
    if (rc == 1)
        return (ssize_t)done;
    int w = want(ssl, rc);
    ERR_clear_error();
    return w == PT_TLS_WANT_WRITE || w == PT_TLS_WANT_READ ? 0 : -EPIPE;
}

void pt_tls_close(SSL *ssl)
{
    if (!ssl)
        return;
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl); /* close_notify, if the socket takes it; no waiting for the peer's */
    ERR_clear_error();
    SSL_free(ssl);
}

const char *pt_tls_protocol(SSL *ssl)
{
    return SSL_get_version(ssl);
}

const char *pt_tls_cipher(SSL *ssl)
{
    return SSL_get_cipher_name(ssl);
}

size_t pt_tls_client_subject(SSL *ssl, char *buf, size_t size)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    BIO *b = x ? BIO_new(BIO_s_mem()) : NULL;
    if (!b)
        return 0;
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    size_t len = n > 0 ? (size_t)n : 0;
    if (len && size)
        memcpy(buf, p, len < size ? len : size);
    BIO_free(b);
    return len;
}

size_t pt_tls_client_san(SSL *ssl, char *buf, size_t size)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    GENERAL_NAMES *sans = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    size_t len = 0;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        const ASN1_IA5STRING *s = gn->type == GEN_DNS ? gn->d.dNSName
                                  : gn->type == GEN_EMAIL ? gn->d.rfc822Name
                                  : gn->type == GEN_URI ? gn->d.uniformResourceIdentifier
                                                        : NULL;
        if (!s)
            continue;
        /* the name's bytes as they are, NULs and all: the caller refuses
         * what a header cannot hold, rather than trusting a cut copy */
        size_t n = (size_t)ASN1_STRING_length(s);
        if (len && len < size)
            buf[len] = ',';
        len += len ? 1 : 0;
        if (len < size)
            memcpy(buf + len, ASN1_STRING_get0_data(s), n < size - len ? n : size - len);
        len += n;
    }
    GENERAL_NAMES_free(sans);
    return len;
}

bool pt_tls_client_each_san(SSL *ssl, bool (*fn)(void *arg, const char *name, size_t n), void *arg)
{
    X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    GENERAL_NAMES *sans = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    bool stop = false;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !stop; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        char ip[INET6_ADDRSTRLEN];
        if (gn->type == GEN_IPADD) {
            int n = ASN1_STRING_length(gn->d.iPAddress);
            const unsigned char *b = ASN1_STRING_get0_data(gn->d.iPAddress);
            if ((n == 4 || n == 16) && inet_ntop(n == 4 ? AF_INET : AF_INET6, b, ip, sizeof(ip)))
                stop = fn(arg, ip, strlen(ip));
            continue;
        }
        const ASN1_IA5STRING *s = gn->type == GEN_DNS ? gn->d.dNSName
                                  : gn->type == GEN_EMAIL ? gn->d.rfc822Name
                                  : gn->type == GEN_URI ? gn->d.uniformResourceIdentifier
                                                        : NULL;
        if (s)
            stop = fn(arg, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    }
    GENERAL_NAMES_free(sans);
    return stop;
}

bool pt_tls_client_verified(SSL *ssl)
{
    return SSL_get0_peer_certificate(ssl) && SSL_get_verify_result(ssl) == X509_V_OK;
}
