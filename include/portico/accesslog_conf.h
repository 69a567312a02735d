/* The compiled form of access_log.format, shared by the compiler
 * (accesslog_conf.c) and the writer (accesslog.c). */
#ifndef PORTICO_ACCESSLOG_CONF_H
#define PORTICO_ACCESSLOG_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "portico/schema-t.h"

enum pt_alog_var {
    PT_AV_TIME,
    PT_AV_TIME_ISO,
    PT_AV_REMOTE_ADDR,
    PT_AV_METHOD,
    PT_AV_TARGET,
    PT_AV_PROTOCOL,
    PT_AV_STATUS,
    PT_AV_BYTES_IN,
    PT_AV_BYTES_OUT,
    PT_AV_REQUEST_TIME,
    PT_AV_ROUTE,
    PT_AV_REQUEST_ID,
    PT_AV_HOST,
    PT_AV_USER_AGENT,
    PT_AV_REFERER,
    PT_AV_UPSTREAM_ADDR,
    PT_AV_UPSTREAM_STATUS,
    PT_AV_UPSTREAM_TIME,
    PT_AV_TLS_PROTOCOL,
    PT_AV_TLS_CIPHER,
    PT_AV_COMPLETION,
    PT_AV_CONSUMER,
    PT_AV_CACHE_STATUS,
    PT_AV_TRACE_ID,
    PT_AV_UPSTREAM_CONNECT_TIME,
    PT_AV_UPSTREAM_HEADER_TIME,
    PT_AV_PARAM,         /* $param_NAME: name/nlen hold NAME */
    PT_AV_HTTP,          /* $http_NAME: slot is its pt_alog_hdr */
    PT_AV_SENT_HTTP,     /* $sent_http_NAME */
    PT_AV_UPSTREAM_HTTP, /* $upstream_http_NAME */
    PT_AV__COUNT
};

/* What one logged value may take of a line, escaped: a string, the
 * target, a header variable (whose value keeps PT_ALOG_HDR_MAX bytes). */
#define PT_ALOG_FIELD_MAX 512
#define PT_ALOG_TARGET_MAX 2048
#define PT_ALOG_HDR_OUT_MAX 2048

/* A header field the format names: NAME as written after the prefix
 * (lower case, '_' for '-'), matched against a field name lowered with
 * its dashes made underscores, as nginx does. */
typedef struct pt_alog_hdr {
    const char *name;
    size_t n;
    int kind; /* enum pt_alog_hdr_kind */
} pt_alog_hdr_t;

/* A compiled format is segments, each the glue that goes before a value
 * (the template's literal text; in the JSON format the field's key, the
 * comma or brace before it, and the quotes around string values) and a
 * variable; var -2 is the end, whose glue ends the line (with its '\n').
 * Glue is made at load with PT_ALOG_PAD readable bytes, so that short
 * glue is copied in whole blocks (line_max counts the pad). */
#define PT_ALOG_PAD 32
typedef struct pt_alog_seg {
    int var;
    const char *glue;
    size_t glen;
    const char *name; /* $param_NAME: NAME */
    size_t nlen;
    size_t slot; /* header variables: the index in conf->hdrs (and in the entry's hdr[]) */
} pt_alog_seg_t;

extern const char *const pt_alog_var_names[PT_AV__COUNT];
/* Is the variable's value a string (quoted in JSON), not a number? */
bool pt_alog_var_is_string(int var);

/* Compiles access_log (format, fields, sample): the section's check. */
int pt_accesslog_compile(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj);
/* access_log.sample and a route's: a ratio from 0 to 1 (a double). */
int pt_accesslog_set_ratio(pt_conf_ctx_t *cc, const pt_node_t *n, void *field);
void pt_accesslog_print_ratio(FILE *f, const void *field, const pt_list_t *prov);
/* A route's access_log: true, false, or { sample, sample_errors }. */
int pt_accesslog_set_route(pt_conf_ctx_t *cc, const pt_node_t *n, void *field);
void pt_accesslog_print_route(FILE *f, const void *field, const pt_list_t *prov);
/* admin.access_log: a path, or false. */
int pt_accesslog_set_admin(pt_conf_ctx_t *cc, const pt_node_t *n, void *field);
void pt_accesslog_print_admin(FILE *f, const void *field, const pt_list_t *prov);
/* The draw below which a request is kept at ratio r. */
uint64_t pt_accesslog_cut(double r);
extern const char *const pt_alog_errors_names[];

#endif
