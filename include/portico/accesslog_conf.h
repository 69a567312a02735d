/* The compiled form of access_log.format, shared by the compiler
 * (accesslog_conf.c) and the writer (accesslog.c). */
#ifndef PORTICO_ACCESSLOG_CONF_H
#define PORTICO_ACCESSLOG_CONF_H

#include <stddef.h>

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
    PT_AV_PARAM, /* $param_NAME: lit/len hold NAME */
    PT_AV__COUNT
};

/* var >= 0: a variable; -1: the literal lit/len; -2: the end. */
typedef struct pt_alog_seg {
    int var;
    const char *lit;
    size_t len;
} pt_alog_seg_t;

extern const char *const pt_alog_var_names[PT_AV__COUNT];

int pt_accesslog_compile(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj);

#endif
