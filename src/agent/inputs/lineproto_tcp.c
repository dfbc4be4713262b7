/*
 * inputs/lineproto_tcp.c: line protocol over TCP. Each connection keeps a buffer of at most one
 * line (EA_LP_MAX_LINE); a longer line is discarded up to its newline and counted. Connections
 * past max_conns are closed at once; idle ones after idle_ms (sweep timer, no per-conn timers).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inputs/lineproto.h"
#include "util/sock.h"

typedef struct lconn {
    struct lconn *next, *prev;
    struct ea_lp_tcp *srv;
    int fd, skipping;
    size_t len;
    uint64_t last_ms;
    char buf[];
} lconn;

struct ea_lp_tcp {
    ea_loop *loop;
    int lfd, max_conns, timer;
    uint32_t idle_ms;
    ea_line_fn fn;
    void *arg;
    lconn *conns;
    ea_lp_stats st;
};

static void lconn_close(ea_lp_tcp *t, lconn *c)
{
    ea_loop_del(t->loop, c->fd);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    t->st.connections--;
}

static void feed(ea_lp_tcp *t, lconn *c, const char *data, size_t n)
{
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (!c->skipping && c->len + take <= EA_LP_MAX_LINE) {
            memcpy(c->buf + c->len, data, take);
            c->len += take;
        } else if (!c->skipping) {
            c->skipping = 1;
            t->st.oversized++;
        }
        if (!nl)
            return;
        if (!c->skipping) {
            t->st.lines++;
            t->fn(t->arg, c->buf, c->len, "tcp");
        }
        c->len = 0;
        c->skipping = 0;
        data = nl + 1;
        n -= take + 1;
    }
}

static void on_conn(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    lconn *c = arg;
    ea_lp_tcp *t = c->srv;
    char tmp[16384];
    for (int k = 0; k < 16; k++) {
        ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            if (n == 0 && c->len && !c->skipping) /* last line without newline */
                t->fn(t->arg, c->buf, c->len, "tcp");
            lconn_close(t, c);
            return;
        }
        c->last_ms = ea_loop_now_ms(l);
        feed(t, c, tmp, (size_t)n);
    }
}

static void on_accept(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    ea_lp_tcp *t = arg;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        lconn *c = t->st.connections < t->max_conns ? malloc(sizeof *c + EA_LP_MAX_LINE) : NULL;
        if (!c) {
            t->st.conn_refused++;
            close(cfd);
            continue;
        }
        memset(c, 0, sizeof *c);
        c->fd = cfd;
        c->srv = t;
        c->last_ms = ea_loop_now_ms(l);
        if (ea_loop_add(l, cfd, EPOLLIN, on_conn, c) < 0) {
            close(cfd);
            free(c);
            continue;
        }
        c->next = t->conns;
        if (t->conns)
            t->conns->prev = c;
        t->conns = c;
        t->st.connections++;
    }
}

static void on_sweep(ea_loop *l, void *arg)
{
    ea_lp_tcp *t = arg;
    uint64_t now = ea_loop_now_ms(l);
    for (lconn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (now - c->last_ms > t->idle_ms)
            lconn_close(t, c);
    }
    t->timer = ea_loop_timer(l, 1000, on_sweep, t);
}

ea_lp_tcp *ea_lp_tcp_new(ea_loop *l, const char *listen, int max_conns, uint32_t idle_ms, ea_line_fn fn, void *arg,
                         char *err, size_t errlen)
{
    ea_lp_tcp *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->loop = l;
    t->fn = fn;
    t->arg = arg;
    t->max_conns = max_conns > 0 ? max_conns : 64;
    t->idle_ms = idle_ms ? idle_ms : 300000;
    t->lfd = ea_listen_tcp(listen, "0.0.0.0", 64, err, errlen);
    if (t->lfd < 0 || ea_loop_add(l, t->lfd, EPOLLIN, on_accept, t) < 0) {
        if (t->lfd >= 0)
            close(t->lfd);
        free(t);
        return NULL;
    }
    t->timer = ea_loop_timer(l, 1000, on_sweep, t);
    return t;
}

int ea_lp_tcp_port(const ea_lp_tcp *t) { return ea_sock_port(t->lfd); }
void ea_lp_tcp_stats(const ea_lp_tcp *t, ea_lp_stats *st) { *st = t->st; }

void ea_lp_tcp_free(ea_lp_tcp *t)
{
    if (!t)
        return;
    for (lconn *c = t->conns, *next; c; c = next) {
        next = c->next;
        lconn_close(t, c);
    }
    ea_loop_del(t->loop, t->lfd);
    close(t->lfd);
    ea_loop_timer_cancel(t->loop, t->timer);
    free(t);
}
