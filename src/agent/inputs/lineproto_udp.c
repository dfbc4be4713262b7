/* inputs/lineproto_udp.c: line protocol over UDP. Each datagram (at most 64 KiB) is split into
 * lines; a final line without '\n' counts as complete (datagrams are whole messages). */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inputs/lineproto.h"
#include "util/sock.h"

struct ea_lp_udp {
    ea_loop *loop;
    int fd;
    ea_line_fn fn;
    void *arg;
    ea_lp_stats st;
    char buf[65536];
};

size_t ea_lp_split_lines(const char *data, size_t len, ea_line_fn fn, void *arg, const char *source)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++)
        if (data[i] == '\n') {
            fn(arg, data + start, i - start, source);
            start = i + 1;
        }
    return start;
}

static void on_datagram(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    ea_lp_udp *u = arg;
    for (int k = 0; k < 64; k++) { /* bounded batch so other inputs are served too */
        ssize_t n = recv(fd, u->buf, sizeof u->buf, MSG_DONTWAIT);
        if (n < 0)
            return;
        u->st.datagrams++;
        size_t used = ea_lp_split_lines(u->buf, (size_t)n, u->fn, u->arg, "udp");
        if (used < (size_t)n)
            u->fn(u->arg, u->buf + used, (size_t)n - used, "udp");
    }
}

ea_lp_udp *ea_lp_udp_new(ea_loop *l, const char *listen, ea_line_fn fn, void *arg, char *err, size_t errlen)
{
    ea_lp_udp *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->loop = l;
    u->fn = fn;
    u->arg = arg;
    u->fd = ea_bind_udp(listen, "0.0.0.0", err, errlen);
    if (u->fd < 0 || ea_loop_add(l, u->fd, EPOLLIN, on_datagram, u) < 0) {
        if (u->fd >= 0)
            close(u->fd);
        free(u);
        return NULL;
    }
    int sz = 1 << 20;
    setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    return u;
}

int ea_lp_udp_port(const ea_lp_udp *u) { return ea_sock_port(u->fd); }
void ea_lp_udp_stats(const ea_lp_udp *u, ea_lp_stats *st) { *st = u->st; }

void ea_lp_udp_free(ea_lp_udp *u)
{
    if (!u)
        return;
    ea_loop_del(u->loop, u->fd);
    close(u->fd);
    free(u);
}
