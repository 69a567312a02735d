/* The response cache as the gateway uses it: the caches of a
 * configuration made ready in the master, the stored form of a response
 * (its head as the client would get it, then its body), and answers made
 * from a stored object through the one response path.  The rules are in
 * cache_policy.h, the storage in cache_store.h, the filter that puts them
 * together in filters/cache.c. */
#ifndef PORTICO_CACHE_H
#define PORTICO_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/cache_store.h"
#include "portico/config-t.h"
#include "portico/h1_parser.h"

typedef struct pt_conn pt_conn_t;

/* In the master, before forking: the configuration's caches (kept when
 * their name and memory are unchanged).  0, or -1 with errno. */
int pt_cache_prepare(const pt_config_t *c);

/* The stored head of an upstream's response r (parsed at base): its
 * status line and the fields a client may get from the cache, less the
 * hop-by-hop ones, those Connection names, the framing, Age,
 * CDN-Cache-Control, and Set-Cookie unless keep_cookies; a Date made from
 * date_s when it has none.  Written into the request arena; its length,
 * or 0 when the arena is spent. */
size_t pt_cache_stored_head(pt_conn_t *c, const pt_h1_resp_t *r, const char *base, bool keep_cookies, int64_t date_s,
                            char **out);

/* The stored head of a hit, read and parsed (into the request arena):
 * false when the object went away meanwhile or memory ran out. */
typedef struct pt_cache_head {
    pt_h1_resp_t r;
    const char *base;
    pt_str_t etag, last_modified;
} pt_cache_head_t;
bool pt_cache_load_head(pt_conn_t *c, pt_cache_t *ch, const pt_cache_hit_t *hit, pt_cache_head_t *h);

/* Answers the connection's request from a stored object whose head is h:
 * status (the stored one, or 304 for a client's matching conditional),
 * its fields, Age (age_s), the filters' edits (their response hooks run
 * here), Content-Length, and the body unless head_only or 304; for 206
 * the range pt_cache_range chose from the request's fields reqh (Content-Range and that slice), for 416
 * no body.  False
 * when the object went away before its body was copied (nothing queued:
 * answer as a miss). */
bool pt_cache_answer(pt_conn_t *c, pt_cache_t *ch, const pt_cache_hit_t *hit, const pt_cache_head_t *h, int status,
                     int64_t age_s, bool head_only, const pt_h1_header_t *reqh, size_t nreqh);

/* What a request's Range asks of a stored 200 of `total` bytes (RFC 9110
 * §14): 206 with [*first, *last] for one satisfiable byte range; 416 for
 * one that is not; 200 (the whole) for none, several ranges, a syntax we
 * do not take, or an If-Range that does not match (strong ETag, or the
 * exact Last-Modified date). */
int pt_cache_range(const pt_h1_header_t *reqh, size_t n, uint64_t total, pt_str_t etag, pt_str_t last_modified,
                   uint64_t *first, uint64_t *last);

/* The merged head after a 304 (§4.3.4): the stored fields, each replaced
 * by the 304's of the same name when the 304 has one (but for those
 * pt_cache_update_skips), and the 304's other fields added (what is never
 * stored left out, as in pt_cache_stored_head); a 304 without Date gets
 * one of now_s.  add_cookies: the 304's Set-Cookie fields too (the head
 * for the client that revalidated, never the stored one).  Into the
 * request arena; its length, or 0. */
size_t pt_cache_merge_head(pt_conn_t *c, const pt_cache_head_t *stored, const pt_h1_resp_t *r304, bool keep_cookies,
                           int64_t now_s, bool add_cookies, char **out);

#endif
