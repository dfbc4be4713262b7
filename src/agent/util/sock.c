/* util/sock.c: non-blocking listening TCP and bound UDP sockets from numeric "host:port" specs. */
#include "util/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ea_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int parse_port(const char *s, int *port)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int ea_parse_listen(const char *spec, const char *default_host, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *port_s;
    memset(ss, 0, sizeof *ss);
    if (spec[0] == '[') {
        const char *rb = strchr(spec, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - spec - 1) >= sizeof host)
            return -1;
        memcpy(host, spec + 1, (size_t)(rb - spec - 1));
        host[rb - spec - 1] = 0;
        port_s = rb + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (colon) {
            if ((size_t)(colon - spec) >= sizeof host)
                return -1;
            memcpy(host, spec, (size_t)(colon - spec));
            host[colon - spec] = 0;
            port_s = colon + 1;
        } else {
            snprintf(host, sizeof host, "%s", default_host);
            port_s = spec;
        }
    }
    int port;
    if (parse_port(port_s, &port) < 0)
        return -1;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

static int open_bound(const char *spec, const char *default_host, int type, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (ea_parse_listen(spec, default_host, &ss, &len) < 0) {
        snprintf(err, errlen, "listen address '%s': expected PORT, IPV4:PORT or [IPV6]:PORT (numeric)", spec);
        return -1;
    }
    int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen address '%s': socket: %s", spec, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        snprintf(err, errlen, "listen address '%s': bind: %s", spec, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int ea_listen_tcp(const char *spec, const char *default_host, int backlog, char *err, size_t errlen)
{
    int fd = open_bound(spec, default_host, SOCK_STREAM, err, errlen);
    if (fd >= 0 && listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listen address '%s': listen: %s", spec, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int ea_bind_udp(const char *spec, const char *default_host, char *err, size_t errlen)
{
    return open_bound(spec, default_host, SOCK_DGRAM, err, errlen);
}

int ea_sock_port(int fd)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss); /* getsockname fills it in; the analyzer does not know that */
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}
