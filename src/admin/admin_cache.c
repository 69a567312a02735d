/* The admin API's caches: their figures in /status, and purges.
 *
 *   DELETE /cache/NAME?key=KEY      every variant of that key
 *   DELETE /cache/NAME?prefix=P     every object whose key starts with P;
 *                                   P starting with '/' is a path prefix
 *                                   (on every scheme and host)
 *
 * answered {"cache":"NAME","purged":N}: N objects dropped from memory;
 * with a disk tier, "disk":"queued" too (its process removes the files,
 * before any load queued after, and logs how many).   A key is the filter's expanded
 * template ("http://example.com/a?"), %-decoded from the query. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/admin.h"
#include "portico/auth.h"
#include "portico/cache_disk.h"
#include "portico/cache_store.h"
#include "portico/conn.h"
#include "portico/http.h"
#include "portico/request.h"
#include "portico/worker.h"

/* The disk tier's figures, as its process keeps them. */
static void disk_json(FILE *f, pt_cdisk_t *d)
{
    if (!d)
        return;
    pt_cdisk_stats_t s;
    pt_cdisk_stats(d, &s);
    fprintf(f,
            ",\"disk\":{\"files\":%llu,\"bytes\":%llu,\"size\":%llu,\"writes\":%llu,\"loads\":%llu,"
            "\"evictions\":%llu,\"dropped\":%llu,\"errors\":%llu,\"wipes\":%llu,\"purged\":%llu,\"indexing\":%s,"
            "\"pid\":%u}",
            (unsigned long long)s.files, (unsigned long long)s.bytes, (unsigned long long)s.size,
            (unsigned long long)s.writes, (unsigned long long)s.loads, (unsigned long long)s.evictions,
            (unsigned long long)s.dropped, (unsigned long long)s.errors, (unsigned long long)s.wipes,
            (unsigned long long)s.purged, s.indexing ? "true" : "false", s.pid);
}

void pt_admin_caches_json(FILE *f, pt_worker_t *w)
{
    static const char *const names[PT_CST__COUNT] = {"hits", "misses", "stale", "revalidated", "collapsed",
                                                     "stored"};
    fputs(",\"caches\":[", f);
    for (size_t i = 0; i < w->conf->caches.n; i++) {
        const pt_cache_conf_t *cc = PT_LIST_AT(w->conf->caches, pt_cache_conf_t, i);
        pt_cache_t *ch = pt_cache_get(cc->name);
        pt_cache_stats_t s = {0};
        if (ch)
            pt_cache_stats(ch, &s);
        fprintf(f, "%s{\"name\":\"%s\",\"objects\":%llu,\"bytes\":%llu,\"capacity\":%llu,\"evictions\":%llu",
                i ? "," : "", cc->name, (unsigned long long)s.objects, (unsigned long long)s.bytes,
                (unsigned long long)s.capacity, (unsigned long long)s.evictions);
        for (int k = 0; k < PT_CST__COUNT; k++)
            fprintf(f, ",\"%s\":%llu", names[k], (unsigned long long)s.counters[k]);
        disk_json(f, pt_cache_disk(ch));
        fputc('}', f);
    }
    fputc(']', f);
}

static void answer(pt_conn_t *c, int status, const char *json, const char *extra)
{
    pt_req_respond(c, status, "application/json", json, strlen(json), extra, false);
}

bool pt_admin_cache(pt_conn_t *c, const pt_h1_req_t *req)
{
    static const pt_str_t prefix = PT_STR("/cache/");
    if (!pt_str_has_prefix(req->path, prefix))
        return false;
    pt_str_t name = {req->path.p + prefix.n, req->path.n - prefix.n};
    pt_cache_t *ch = NULL;
    const char *cname = NULL;
    for (size_t i = 0; i < c->w->conf->caches.n && !ch; i++) {
        const pt_cache_conf_t *cc = PT_LIST_AT(c->w->conf->caches, pt_cache_conf_t, i);
        if (pt_str_eq(name, pt_str_from(cc->name))) {
            ch = pt_cache_get(cc->name);
            cname = cc->name;
        }
    }
    if (!ch) {
        answer(c, 404, "{\"error\":\"no such cache\"}\n", NULL);
        return true;
    }
    if (req->method_bit != PT_M_DELETE) {
        answer(c, 405, "{\"error\":\"method not allowed\"}\n", "Allow: DELETE\r\n");
        return true;
    }
    bool several = false, several2 = false;
    pt_str_t key = pt_auth_query_arg(c, req, "key", &several);
    pt_str_t pre = pt_auth_query_arg(c, req, "prefix", &several2);
    if ((key.p != NULL) == (pre.p != NULL) || several || several2 || (pre.p && !pre.n)) {
        answer(c, 400, "{\"error\":\"give one key=KEY or one non-empty prefix=PREFIX\"}\n", NULL);
        return true;
    }
    /* a prefix that starts with '/' is a path's, after the scheme and host */
    size_t n = key.p             ? pt_cache_invalidate(ch, key)
               : pre.p[0] == '/' ? pt_cache_purge_path_prefix(ch, pre)
                                 : pt_cache_purge_prefix(ch, pre);
    char body[320];
    /* the disk tier's files go in its process, after every command queued
     * before: no load can bring them back; its count is logged */
    snprintf(body, sizeof(body), "{\"cache\":\"%s\",\"purged\":%zu%s}\n", cname, n,
             pt_cache_disk(ch) ? ",\"disk\":\"queued\"" : "");
    answer(c, 200, body, "Cache-Control: no-store\r\n");
    return true;
}
