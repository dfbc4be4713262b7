/*
 * net/tcp.c: URL parsing, resolution (numeric, /etc/hosts, DNS A over UDP) and non-blocking
 * connects. Hand-written resolution instead of getaddrinfo() because a static glibc binary cannot
 * load NSS modules in a scratch image (see tcp.h).
 */
#include "net/tcp.h"

#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* ------------------------------------------------------------------ URL */

static int copy_span(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static uint16_t default_port(const char *scheme)
{
    if (!strcmp(scheme, "mqtt")) return 1883;
    if (!strcmp(scheme, "mqtts")) return 8883;
    if (!strcmp(scheme, "http")) return 80;
    return 443;
}

static int parse_port(const char *s, size_t n, uint16_t *port)
{
    unsigned v = 0;
    if (n == 0 || n > 5) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535) return -1;
    *port = (uint16_t)v;
    return 0;
}

int ea_url_parse(const char *url, ea_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    const char *sep = strstr(url, "://");
    if (!sep || copy_span(u->scheme, sizeof u->scheme, url, (size_t)(sep - url)) < 0 ||
        (strcmp(u->scheme, "mqtt") && strcmp(u->scheme, "mqtts") && strcmp(u->scheme, "http") &&
         strcmp(u->scheme, "https"))) {
        snprintf(err, errlen,
                 "uplink URL %s: scheme must be mqtt://, mqtts://, http:// or https://", url);
        return -1;
    }
    u->tls = !strcmp(u->scheme, "mqtts") || !strcmp(u->scheme, "https");
    const char *h = sep + 3;
    const char *path = strchr(h, '/');
    const char *hend = path ? path : h + strlen(h);
    if (memchr(h, '@', (size_t)(hend - h))) {
        snprintf(err, errlen,
                 "uplink URL %s: credentials in the URL are not supported (use username/password)",
                 url);
        return -1;
    }
    const char *port = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(hend - h));
        if (!rb || copy_span(u->host, sizeof u->host, h + 1, (size_t)(rb - h - 1)) < 0)
            goto bad_host;
        if (rb + 1 < hend) {
            if (rb[1] != ':') goto bad_host;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(h, ':', (size_t)(hend - h));
        if (copy_span(u->host, sizeof u->host, h, (size_t)((colon ? colon : hend) - h)) < 0)
            goto bad_host;
        if (colon) port = colon + 1;
    }
    if (u->host[0] == '\0') goto bad_host;
    u->port = default_port(u->scheme);
    if (port && parse_port(port, (size_t)(hend - port), &u->port) < 0) {
        snprintf(err, errlen, "uplink URL %s: invalid port", url);
        return -1;
    }
    if (path) {
        int is_mqtt = u->scheme[0] == 'm';
        if (copy_span(u->path, sizeof u->path, is_mqtt ? path + 1 : path,
                      strlen(is_mqtt ? path + 1 : path)) < 0) {
            snprintf(err, errlen, "uplink URL %s: path longer than %zu bytes", url,
                     sizeof u->path - 1);
            return -1;
        }
    }
    return 0;
bad_host:
    snprintf(err, errlen, "uplink URL %s: missing or invalid host", url);
    return -1;
}

/* ------------------------------------------------------------------ resolution */

static int set_numeric(const char *host, uint16_t port, ea_addr *out)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        out->len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        out->len = sizeof *v6;
        return 0;
    }
    return -1;
}

static int set_v4(const unsigned char ip[4], uint16_t port, ea_addr *out)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
    memset(out, 0, sizeof *out);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    memcpy(&v4->sin_addr, ip, 4);
    out->len = sizeof *v4;
    return 0;
}

/* First IPv4 address listed for host in a hosts(5) file. */
static int lookup_hosts_file(const char *path, const char *host, uint16_t port, ea_addr *out)
{
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    char line[512];
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *save = NULL;
        char *addr = strtok_r(line, " \t\r\n", &save);
        struct in_addr a4;
        if (!addr || inet_pton(AF_INET, addr, &a4) != 1) continue;
        for (char *name = strtok_r(NULL, " \t\r\n", &save); name;
             name = strtok_r(NULL, " \t\r\n", &save)) {
            if (strcasecmp(name, host) == 0) {
                found = set_v4((unsigned char *)&a4, port, out);
                break;
            }
        }
    }
    fclose(f);
    return found;
}

static size_t read_nameservers(const char *path, struct in_addr *ns, size_t max)
{
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    char line[256];
    size_t n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        char word[16], addr[64];
        if (sscanf(line, "%15s %63s", word, addr) == 2 && !strcmp(word, "nameserver") &&
            inet_pton(AF_INET, addr, &ns[n]) == 1)
            n++;
    }
    fclose(f);
    return n;
}

/* Builds a standard recursive A query; returns its length or 0 if the name does not fit. */
static size_t dns_build_query(const char *host, uint16_t id, unsigned char *q, size_t cap)
{
    size_t pos = 12;
    memset(q, 0, 12);
    q[0] = (unsigned char)(id >> 8);
    q[1] = (unsigned char)id;
    q[2] = 0x01; /* RD */
    q[5] = 1;    /* QDCOUNT */
    const char *label = host;
    while (*label) {
        const char *dot = strchr(label, '.');
        size_t n = dot ? (size_t)(dot - label) : strlen(label);
        if (n == 0 || n > 63 || pos + 1 + n + 5 > cap) return 0;
        q[pos++] = (unsigned char)n;
        memcpy(q + pos, label, n);
        pos += n;
        label += n + (dot ? 1 : 0);
    }
    q[pos++] = 0;
    q[pos++] = 0;
    q[pos++] = 1; /* QTYPE A */
    q[pos++] = 0;
    q[pos++] = 1; /* QCLASS IN */
    return pos;
}

/* Skips an encoded name (labels or a compression pointer) inside r[0..len); -1 if malformed. */
static int dns_skip_name(const unsigned char *r, size_t len, size_t *pos)
{
    for (int labels = 0; labels < 128; labels++) {
        if (*pos >= len) return -1;
        unsigned char c = r[*pos];
        if (c == 0) {
            (*pos)++;
            return 0;
        }
        if ((c & 0xc0) == 0xc0) {
            if (*pos + 2 > len) return -1;
            *pos += 2;
            return 0;
        }
        if (c & 0xc0) return -1;
        *pos += 1 + (size_t)c;
    }
    return -1;
}

/* 0 with ip set; -1 for a datagram that is not our answer (keep waiting); -2 for our answer
 * without an A record (NXDOMAIN, REFUSED, no data: stop asking this server). */
int ea_dns_parse_answer(const unsigned char *r, size_t len, uint16_t id, unsigned char ip[4])
{
    if (len < 12 || r[0] != (id >> 8) || r[1] != (id & 0xff) || !(r[2] & 0x80)) return -1;
    if ((r[3] & 0x0f) != 0) return -2;
    unsigned qd = (unsigned)(r[4] << 8 | r[5]), an = (unsigned)(r[6] << 8 | r[7]);
    size_t pos = 12;
    for (unsigned i = 0; i < qd; i++) {
        if (dns_skip_name(r, len, &pos) < 0 || pos + 4 > len) return -2;
        pos += 4;
    }
    for (unsigned i = 0; i < an; i++) {
        if (dns_skip_name(r, len, &pos) < 0 || pos + 10 > len) return -2;
        unsigned type = (unsigned)(r[pos] << 8 | r[pos + 1]),
                 cls = (unsigned)(r[pos + 2] << 8 | r[pos + 3]);
        size_t rdlen = (size_t)(r[pos + 8] << 8 | r[pos + 9]);
        pos += 10;
        if (pos + rdlen > len) return -2;
        if (type == 1 && cls == 1 && rdlen == 4) {
            memcpy(ip, r + pos, 4);
            return 0;
        }
        pos += rdlen;
    }
    return -2;
}

static int dns_query_server(struct in_addr server, const char *host, unsigned char ip[4])
{
    unsigned char q[300], r[1500];
    uint16_t id = 0;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id) id = (uint16_t)getpid();
    size_t qlen = dns_build_query(host, id, q, sizeof q);
    if (qlen == 0) return -1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53), .sin_addr = server};
    int rc = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        for (int attempt = 0; attempt < 2 && rc == -1; attempt++) {
            if (send(fd, q, qlen, 0) != (ssize_t)qlen) break;
            struct pollfd p = {fd, POLLIN, 0};
            while (rc == -1 && poll(&p, 1, 1000) == 1) {
                ssize_t n = recv(fd, r, sizeof r, 0);
                if (n <= 0) break;
                rc = ea_dns_parse_answer(r, (size_t)n, id, ip);
            }
        }
    }
    close(fd);
    return rc == 0 ? 0 : -1;
}

int ea_tcp_resolve(const char *host, uint16_t port, ea_addr *out, const char *hosts_path,
                   const char *resolv_path, char *err, size_t errlen)
{
    if (set_numeric(host, port, out) == 0) return 0;
    if (lookup_hosts_file(hosts_path ? hosts_path : "/etc/hosts", host, port, out) == 0) return 0;
    struct in_addr ns[3];
    size_t n = read_nameservers(resolv_path ? resolv_path : "/etc/resolv.conf", ns, 3);
    unsigned char ip[4];
    for (size_t i = 0; i < n; i++)
        if (dns_query_server(ns[i], host, ip) == 0) return set_v4(ip, port, out);
    snprintf(err, errlen,
             "resolve %s: not numeric, not in hosts file, no DNS A answer from %zu nameserver(s)",
             host, n);
    return -1;
}

/* ------------------------------------------------------------------ resolution on the loop */

struct ea_resolver {
    ea_loop *loop;
    char host[256];
    uint16_t port, id;
    struct in_addr ns[3];
    size_t n_ns, server;
    int attempt, fd, timer;
    unsigned char q[300];
    size_t qlen;
    ea_resolve_cb cb;
    void *arg;
    ea_resolver **handle;
};

static void resolver_close_socket(ea_resolver *r)
{
    if (r->fd >= 0) {
        ea_loop_del(r->loop, r->fd);
        close(r->fd);
        r->fd = -1;
    }
    if (r->timer > 0) ea_loop_timer_cancel(r->loop, r->timer);
    r->timer = 0;
}

static void resolver_finish(ea_resolver *r, const ea_addr *addr, const char *err)
{
    resolver_close_socket(r);
    if (r->handle) *r->handle = NULL;
    ea_resolve_cb cb = r->cb;
    void *arg = r->arg;
    free(r);
    cb(arg, addr, err);
}

static void resolver_send(ea_resolver *r);

static void resolver_next(ea_resolver *r)
{
    if (++r->attempt >= 2) {
        r->attempt = 0;
        r->server++;
    }
    resolver_send(r);
}

static void resolver_on_timeout(ea_loop *l, void *arg)
{
    (void)l;
    ea_resolver *r = arg;
    r->timer = 0;
    resolver_next(r);
}

static void resolver_on_readable(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    ea_resolver *r = arg;
    unsigned char resp[1500], ip[4];
    for (;;) {
        ssize_t n = recv(fd, resp, sizeof resp, 0);
        if (n <= 0) return; /* EAGAIN (or an ICMP error): the timer moves on */
        int rc = ea_dns_parse_answer(resp, (size_t)n, r->id, ip);
        if (rc == 0) {
            ea_addr a;
            set_v4(ip, r->port, &a);
            resolver_finish(r, &a, NULL);
            return;
        }
        if (rc == -2) { /* this server says no: ask the next one */
            r->attempt = 1;
            resolver_next(r);
            return;
        }
    }
}

static void resolver_send(ea_resolver *r)
{
    resolver_close_socket(r);
    if (r->server >= r->n_ns) {
        char err[320];
        snprintf(
            err, sizeof err,
            "resolve %s: not numeric, not in hosts file, no DNS A answer from %zu nameserver(s)",
            r->host, r->n_ns);
        resolver_finish(r, NULL, err);
        return;
    }
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = r->ns[r->server]};
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        send(r->fd, r->q, r->qlen, 0) != (ssize_t)r->qlen ||
        ea_loop_add(r->loop, r->fd, EPOLLIN, resolver_on_readable, r) < 0) {
        if (r->fd >= 0) close(r->fd);
        r->fd = -1;
        r->attempt = 1; /* unusable server: skip its second try */
        r->timer = ea_loop_timer(r->loop, 1, resolver_on_timeout, r);
        return;
    }
    r->timer = ea_loop_timer(r->loop, 1000, resolver_on_timeout, r);
}

int ea_resolve_start(ea_loop *loop, const char *host, uint16_t port, const char *hosts_path,
                     const char *resolv_path, ea_addr *out, ea_resolve_cb cb, void *arg,
                     ea_resolver **handle, char *err, size_t errlen)
{
    if (handle) *handle = NULL;
    if (set_numeric(host, port, out) == 0) return 0;
    if (lookup_hosts_file(hosts_path ? hosts_path : "/etc/hosts", host, port, out) == 0) return 0;
    ea_resolver *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "resolve %s: out of memory", host);
        return -1;
    }
    r->n_ns = read_nameservers(resolv_path ? resolv_path : "/etc/resolv.conf", r->ns, 3);
    if (getrandom(&r->id, sizeof r->id, GRND_NONBLOCK) != (ssize_t)sizeof r->id)
        r->id = (uint16_t)getpid();
    r->qlen = dns_build_query(host, r->id, r->q, sizeof r->q);
    if (r->n_ns == 0 || r->qlen == 0 || strlen(host) >= sizeof r->host) {
        snprintf(err, errlen, "resolve %s: %s", host,
                 r->n_ns == 0 ? "not numeric, not in hosts file, no nameserver" : "invalid name");
        free(r);
        return -1;
    }
    snprintf(r->host, sizeof r->host, "%s", host);
    r->loop = loop;
    r->port = port;
    r->fd = -1;
    r->cb = cb;
    r->arg = arg;
    r->handle = handle;
    if (handle) *handle = r;
    resolver_send(r);
    return 1;
}

void ea_resolve_cancel(ea_resolver *r)
{
    if (!r) return;
    resolver_close_socket(r);
    if (r->handle) *r->handle = NULL;
    free(r);
}

/* ------------------------------------------------------------------ connect */

int ea_tcp_connect_start(const ea_addr *addr, char *err, size_t errlen)
{
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)&addr->sa, addr->len) < 0 && errno != EINPROGRESS) {
        char a[80];
        ea_addr_format(addr, a, sizeof a);
        snprintf(err, errlen, "connect %s: %s", a, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int ea_tcp_connect_error(int fd)
{
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) return errno;
    return e;
}

void ea_addr_format(const ea_addr *a, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->sa;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
        snprintf(out, outlen, "%s:%u", ip, ntohs(v4->sin_port));
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
        snprintf(out, outlen, "[%s]:%u", ip, ntohs(v6->sin6_port));
    }
}
