/*
 * net/tcp.h: uplink URLs, host name resolution and non-blocking TCP connects for the outputs.
 *
 * Resolution never uses getaddrinfo(): in a static glibc binary it needs the NSS shared objects at
 * run time, which a scratch image does not have. Order: numeric IPv4/IPv6, then /etc/hosts (first
 * IPv4 entry), then one DNS A query over UDP to the nameservers in /etc/resolv.conf (bounded: at
 * most 3 servers x 2 tries x 1 s). The DNS query blocks the loop for at most that long and only
 * while (re)connecting; see docs/DESIGN.md "edgeagent uplink".
 *
 * Invariants: parsers are bounded (host <= 255 bytes, path <= 511, DNS answers parsed within the
 * received datagram); every fd returned is O_NONBLOCK | O_CLOEXEC.
 */
#ifndef EA_NET_TCP_H
#define EA_NET_TCP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct ea_url {
    char scheme[8]; /* mqtt mqtts http https */
    char host[256]; /* without IPv6 brackets */
    uint16_t port;  /* default per scheme: 1883 8883 80 443 */
    char path[512]; /* "/..." for http, topic without the leading '/' for mqtt; "" if none */
    int tls;        /* mqtts / https */
} ea_url;

int ea_url_parse(const char *url, ea_url *u, char *err, size_t errlen);

typedef struct ea_addr {
    struct sockaddr_storage sa;
    socklen_t len;
} ea_addr;

/* hosts_path / resolv_path NULL = /etc/hosts, /etc/resolv.conf (tests pass their own). */
int ea_tcp_resolve(const char *host, uint16_t port, ea_addr *out, const char *hosts_path,
                   const char *resolv_path, char *err, size_t errlen);

/* The same resolution without blocking the loop: numeric and hosts-file answers return 0 at once
 * with *out filled; otherwise the DNS query runs on the loop (same servers, tries and timeouts)
 * and 1 is returned: cb is called exactly once later, unless ea_resolve_cancel() comes first.
 * -1 with err when nothing can be tried. The resolver frees itself after calling cb. */
typedef struct ea_resolver ea_resolver;
typedef void (*ea_resolve_cb)(void *arg, const ea_addr *addr /* NULL = failed */, const char *err);
struct ea_loop;
int ea_resolve_start(struct ea_loop *loop, const char *host, uint16_t port, const char *hosts_path,
                     const char *resolv_path, ea_addr *out, ea_resolve_cb cb, void *arg,
                     ea_resolver **handle, char *err, size_t errlen);
void ea_resolve_cancel(ea_resolver *r);

/* Parses a DNS response to query id: 0 and the first IPv4 A record in ip; -1 not our answer;
 * -2 our answer without an A record. Exposed for the fuzz target. */
int ea_dns_parse_answer(const unsigned char *r, size_t len, uint16_t id, unsigned char ip[4]);

/* Starts a non-blocking connect; returns the fd (connect in progress or done) or -1 with err. */
int ea_tcp_connect_start(const ea_addr *addr, char *err, size_t errlen);
/* After EPOLLOUT on a connecting fd: 0 when connected, else the errno of the failure. */
int ea_tcp_connect_error(int fd);

/* Human form of an address, "1.2.3.4:1883" / "[::1]:1883". */
void ea_addr_format(const ea_addr *a, char *out, size_t outlen);

#endif
