/* The admin API's probes and the effective configuration, and who may
 * change state.
 *
 *   GET /healthz   200 while the process answers (a liveness probe)
 *   GET /ready     200 when every worker of the serving generation is
 *                  running, 503 otherwise (a readiness probe)
 *   GET /config    the effective configuration as JSON, secrets
 *                  redacted and ${VAR} values as written
 *
 * A request that changes state (any method but GET and HEAD) needs
 * "Authorization: Bearer TOKEN" when admin.token is set, compared in
 * constant time; without a token, it is refused unless the admin address
 * is a loopback one. */
#include "config.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/admin.h"
#include "portico/conn.h"
#include "portico/digest.h"
#include "portico/http.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/status-t.h"
#include "portico/value.h"
#include "portico/worker.h"

static void answer(pt_conn_t *c, int status, const char *json, const char *extra, bool head)
{
    pt_req_respond(c, status, "application/json", json, strlen(json), extra, head);
}

/* Does the request carry the token?  Both sides hashed first, so the
 * comparison takes the same time whatever the lengths. */
static bool has_token(const pt_h1_req_t *req, const char *token)
{
    const pt_h1_header_t *h = NULL;
    for (size_t i = 0; i < req->nheaders; i++)
        if (pt_str_caseeq(req->headers[i].name, PT_STR("authorization"))) {
            if (h)
                return false; /* two: neither */
            h = &req->headers[i];
        }
    static const pt_str_t scheme = PT_STR("bearer ");
    if (!h || h->value.n <= scheme.n || !pt_str_caseeq((pt_str_t){h->value.p, scheme.n}, scheme))
        return false;
    unsigned char got[32], want[32];
    return pt_sha256(h->value.p + scheme.n, h->value.n - scheme.n, got) && pt_sha256(token, strlen(token), want) &&
           CRYPTO_memcmp(got, want, sizeof(got)) == 0;
}

bool pt_admin_may_change(pt_conn_t *c, const pt_h1_req_t *req)
{
    const pt_admin_conf_t *a = &c->w->conf->admin;
    if (req->method_bit == PT_M_GET || req->method_bit == PT_M_HEAD)
        return true;
    if (a->token) {
        if (has_token(req, a->token))
            return true;
        answer(c, 401, "{\"error\":\"this request changes state: send Authorization: Bearer <admin.token>\"}\n",
               "WWW-Authenticate: Bearer realm=\"portico admin\"\r\n", false);
        return false;
    }
    if (pt_addr_is_loopback(&a->address))
        return true;
    answer(c, 403, "{\"error\":\"requests that change state need admin.token on an address that is not loopback\"}\n",
           NULL, false);
    return false;
}

/* Every worker of the serving generation is running: as many as it has
 * slots (one that died and waits to be started again is missing). */
static bool all_ready(const pt_status_t *st, int *running, int *starting)
{
    *running = *starting = 0;
    uint32_t gen = __atomic_load_n(&st->generation, __ATOMIC_RELAXED);
    for (int i = 0; i < PT_STATUS_MAX_WORKERS; i++) {
        const pt_status_worker_t *w = &st->workers[i];
        if (w->state == PT_W_EMPTY || w->generation != gen)
            continue;
        if (w->state == PT_W_RUNNING)
            (*running)++;
        else if (w->state == PT_W_STARTING)
            (*starting)++;
    }
    return *running >= __atomic_load_n(&st->nworkers, __ATOMIC_RELAXED) && *running > 0;
}

static void config_json(pt_conn_t *c, bool head)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        answer(c, 500, "{\"error\":\"out of memory\"}\n", NULL, head);
        return;
    }
    const pt_config_t *conf = c->w->conf;
    fprintf(f, "{\"generation\":%u,\"sha256\":\"%s\",\"config\":", c->w->generation, conf->sha256_hex);
    pt_schema_dump_json(f, &pt_schema_root, conf, &conf->prov);
    fputs("}\n", f);
    fclose(f);
    if (buf)
        pt_req_respond(c, 200, "application/json", buf, len, "Cache-Control: no-store\r\n", head);
    else
        answer(c, 500, "{\"error\":\"out of memory\"}\n", NULL, head);
    free(buf);
}

bool pt_admin_info(pt_conn_t *c, const pt_h1_req_t *req)
{
    bool head = req->method_bit == PT_M_HEAD;
    int which = pt_str_eq(req->path, PT_STR("/healthz")) ? 1
                : pt_str_eq(req->path, PT_STR("/ready"))  ? 2
                : pt_str_eq(req->path, PT_STR("/config")) ? 3
                                                          : 0;
    if (!which)
        return false;
    if (req->method_bit != PT_M_GET && !head) {
        answer(c, 405, "{\"error\":\"method not allowed\"}\n", "Allow: GET, HEAD\r\n", false);
        return true;
    }
    if (which == 1) {
        answer(c, 200, "{\"status\":\"alive\"}\n", "Cache-Control: no-store\r\n", head);
    } else if (which == 2) {
        int running, starting;
        char body[160];
        bool ok = all_ready(c->w->status, &running, &starting);
        snprintf(body, sizeof(body), "{\"status\":\"%s\",\"generation\":%u,\"running\":%d,\"starting\":%d}\n",
                 ok ? "ready" : "not ready", c->w->status->generation, running, starting);
        answer(c, ok ? 200 : 503, body, "Cache-Control: no-store\r\n", head);
    } else {
        config_json(c, head);
    }
    return true;
}
