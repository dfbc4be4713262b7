/* util/sock.h: listening sockets for the inputs (numeric addresses only: the static binary does
 * not use NSS, see docs/DESIGN.md). "PORT", "HOST:PORT" (IPv4) or "[V6]:PORT". */
#ifndef EA_UTIL_SOCK_H
#define EA_UTIL_SOCK_H
#include <stddef.h>
#include <sys/socket.h>
int ea_parse_listen(const char *spec, const char *default_host, struct sockaddr_storage *ss, socklen_t *len);
int ea_listen_tcp(const char *spec, const char *default_host, int backlog, char *err, size_t errlen);
int ea_bind_udp(const char *spec, const char *default_host, char *err, size_t errlen);
int ea_set_nonblock(int fd);
/* The port a socket is bound to (0 on error), for logs and tests that listen on port 0. */
int ea_sock_port(int fd);
#endif
