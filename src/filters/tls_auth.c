/* tls-auth: the client certificate, verified by the listener's client_ca
 * in the handshake, names the consumer by one of its subject alternative
 * names or by its subject (Kong Enterprise's mtls-auth).  A connection
 * without a verified certificate has no credential of this kind. */
#include "config.h"

#include <string.h>

#include "portico/auth.h"
#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/credentials.h"
#include "portico/filter.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/tls.h"
#include "portico/worker.h"

typedef struct conf {
    const pt_node_t *node;
    bool by_san, by_subject;
} conf_t;

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    if (!c->by_san && !c->by_subject) {
        pt_conf_error(cc, n, "tls-auth needs san or subject (or both) to name the consumer by");
        return -1;
    }
    return 0;
}

static const pt_directive_t keys[] = {
    {"san", PT_T_BOOL, offsetof(conf_t, by_san), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Look the certificate's subject alternative names (DNS, e-mail, URI, IP) up among the consumers' "
     "tls-client san credentials."},
    {"subject", PT_T_BOOL, offsetof(conf_t, by_subject), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Then its subject (RFC 2253: CN=acme,O=Acme) among the subject credentials."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "tls-auth", sizeof(conf_t), keys, check, NULL,
    "Authenticates by the client certificate, on a listener whose tls.client_ca verifies it (verify: "
    "optional lets clients without one reach the other auth filters). Example: tls-auth: {}."};

typedef struct find {
    const pt_config_t *conf;
    const pt_credential_conf_t *cr;
} find_t;

static bool find_san(void *arg, const char *name, size_t n)
{
    find_t *f = arg;
    const pt_credential_conf_t *cr = pt_creds_find(f->conf, PT_CRED_TLS, (pt_str_t){name, n});
    if (cr && cr->san) /* a subject credential with this text is not a SAN */
        f->cr = cr;
    return f->cr != NULL;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    if (pt_auth_decided(fx))
        return PT_NEXT;
    if (!c->ssl || !pt_tls_client_verified(c->ssl))
        return pt_auth_absent(c, req, fx, PT_FILTER_TLS_AUTH);
    find_t f = {c->w->conf, NULL};
    if (conf->by_san)
        pt_tls_client_each_san(c->ssl, find_san, &f);
    if (!f.cr && conf->by_subject) {
        char subject[1024];
        size_t n = pt_tls_client_subject(c->ssl, subject, sizeof(subject));
        const pt_credential_conf_t *cr =
            n <= sizeof(subject) ? pt_creds_find(c->w->conf, PT_CRED_TLS, (pt_str_t){subject, n}) : NULL;
        f.cr = cr && cr->subject ? cr : NULL;
    }
    if (!f.cr)
        return pt_auth_reject(c, req, fx, PT_FILTER_TLS_AUTH, PT_AUTH_UNKNOWN_KEY,
                              "The client certificate names no consumer");
    return pt_auth_accept(c, fx, f.cr->consumer, f.cr, NULL);
}

const pt_filter_t pt_filter_tls_auth = {.name = "tls-auth", .schema = &schema, .on_request = on_request};
