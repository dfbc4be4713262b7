/*
 * inputs/lineproto.h: InfluxDB line protocol listeners over UDP (one or more lines per datagram)
 * and TCP (a stream of newline-terminated lines). Both hand complete lines to the core's callback;
 * neither answers the sender (the protocol has no acknowledgement), so rejects are counted.
 * Bounds: a line is at most EA_LP_MAX_LINE bytes (longer ones are dropped and counted), TCP
 * connections at most max_conns, idle TCP connections closed after idle_ms.
 */
#ifndef EA_INPUTS_LINEPROTO_H
#define EA_INPUTS_LINEPROTO_H
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define EA_LP_MAX_LINE 65536

typedef void (*ea_line_fn)(void *arg, const char *line, size_t len, const char *source);

typedef struct ea_lp_stats {
    uint64_t lines, oversized, datagrams, conn_refused;
    int connections;
} ea_lp_stats;

typedef struct ea_lp_udp ea_lp_udp;
ea_lp_udp *ea_lp_udp_new(ea_loop *l, const char *listen, ea_line_fn fn, void *arg, char *err, size_t errlen);
int ea_lp_udp_port(const ea_lp_udp *u);
void ea_lp_udp_stats(const ea_lp_udp *u, ea_lp_stats *st);
void ea_lp_udp_free(ea_lp_udp *u);

typedef struct ea_lp_tcp ea_lp_tcp;
ea_lp_tcp *ea_lp_tcp_new(ea_loop *l, const char *listen, int max_conns, uint32_t idle_ms, ea_line_fn fn, void *arg,
                         char *err, size_t errlen);
int ea_lp_tcp_port(const ea_lp_tcp *t);
void ea_lp_tcp_stats(const ea_lp_tcp *t, ea_lp_stats *st);
void ea_lp_tcp_free(ea_lp_tcp *t);

/* Calls fn for each '\n'-terminated line in data[0..len); returns bytes consumed (the rest is an
 * incomplete line). Shared by both listeners and the tests. */
size_t ea_lp_split_lines(const char *data, size_t len, ea_line_fn fn, void *arg, const char *source);
#endif
