/* The HTTP/1.1 server loop of client connections (h1_server.c). */
#ifndef PORTICO_H1_SERVER_H
#define PORTICO_H1_SERVER_H

#include "portico/conn.h"

/* The protocol of plain and TLS client connections (HTTP/2 takes over from
 * it after ALPN or the preface), and of HTTP/2 stream connections. */
extern const pt_conn_ops_t pt_h1_server_ops;
extern const pt_conn_ops_t pt_h1_stream_ops;

/* A content source that took the connection over (the proxy, a gRPC call)
 * is done with its exchange: the request ends and the loop goes on. */
void pt_h1_source_done(pt_conn_t *c);

#endif
