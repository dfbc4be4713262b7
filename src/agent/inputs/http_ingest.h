/*
 * inputs/http_ingest.h: the agent's HTTP/1.1 server on --port: POST /v1/ingest (records in) and
 * the GET endpoints of health/ (/health, /ready, /metrics). Keep-alive, optional bearer token on
 * /v1/ paths, per-connection deadline (408 and close on slow clients, silent close of idle ones),
 * a connection cap (503 and close past it), bounded head and body (431/413).
 *
 * A handler may defer its answer until the spool has made the request's records durable:
 * it sets reply->wait_seq and the server sends the response when ea_http_server_durable() reports
 * that sequence number (the fsync policy decides when that is).
 */
#ifndef EA_INPUTS_HTTP_INGEST_H
#define EA_INPUTS_HTTP_INGEST_H
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "util/buf.h"

typedef struct ea_http_reply {
    int status;
    const char *content_type; /* default application/json */
    ea_buf *body;             /* server-owned, empty on entry */
    uint64_t wait_seq;        /* > 0: answer once this seq is durable */
} ea_http_reply;

typedef struct ea_http_handlers {
    void (*ingest)(void *arg, const char *body, size_t len, const char *peer, ea_http_reply *rep);
    void (*get)(void *arg, const char *path, ea_http_reply *rep); /* 404 if it leaves status 0 */
    void *arg;
} ea_http_handlers;

typedef struct ea_http_config {
    const char *listen;  /* "8080", "127.0.0.1:8080" */
    const char *token;   /* bearer token for /v1/ (NULL: none) */
    size_t max_body;     /* 1 MiB */
    size_t max_head;     /* 8 KiB */
    int max_conns;       /* 64 */
    uint32_t timeout_ms; /* 10000: a request must arrive whole within this, idle keep-alive too */
} ea_http_config;

typedef struct ea_http_stats {
    uint64_t requests, bad_requests, unauthorized, too_large, timeouts, conn_refused;
    int connections;
} ea_http_stats;

typedef struct ea_http_server ea_http_server;
ea_http_server *ea_http_server_new(ea_loop *l, const ea_http_config *cfg, const ea_http_handlers *h, char *err,
                                   size_t errlen);
void ea_http_server_reconfigure(ea_http_server *s, const ea_http_config *cfg); /* limits and token; not the address */
void ea_http_server_durable(ea_http_server *s, uint64_t durable_seq);
void ea_http_server_fail_waiting(ea_http_server *s, int status, const char *msg); /* e.g. fsync failed */
void ea_http_server_stop_accepting(ea_http_server *s);                           /* draining on SIGTERM */
int ea_http_server_waiting(const ea_http_server *s);                              /* deferred answers */
int ea_http_server_port(const ea_http_server *s);
void ea_http_server_stats(const ea_http_server *s, ea_http_stats *st);
void ea_http_server_free(ea_http_server *s);
#endif
