/*
 * inputs/http_ingest.c: non-blocking HTTP/1.1 server on the agent's loop (see http_ingest.h).
 *
 * Each connection is a small state machine: READING (collect head, then Content-Length bytes),
 * WAITING (answer deferred until the spool is durable up to wait_seq; further pipelined requests
 * stay in the input buffer), and a write side that drains `out` with EPOLLOUT when the socket is
 * full. A sweep timer enforces deadlines, so no per-connection timer exists. Buffers are capped
 * at max_head + max_body in and the response size out.
 */
#include "inputs/http_ingest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inputs/http_parser.h"
#include "util/log.h"
#include "util/sock.h"

enum { ST_READING, ST_WAITING };

typedef struct conn {
    struct conn *next, *prev;
    ea_http_server *srv;
    int fd;
    int state;
    int have_head, sent_continue, close_after, keep_alive;
    int lingering; /* answer sent, write side shut: discard input until EOF or deadline */
    ea_http_req req;
    ea_buf in, out, pending;
    uint64_t deadline_ms, wait_seq;
    char peer[48];
} conn;

struct ea_http_server {
    ea_loop *loop;
    int lfd;
    ea_http_config cfg;
    char token[256];
    ea_http_handlers h;
    conn *conns;
    int nconns;
    int sweep_timer;
    uint64_t durable;
    ea_buf body;
    ea_http_stats st;
};

static void conn_close(ea_http_server *s, conn *c)
{
    ea_loop_del(s->loop, c->fd);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ea_buf_free(&c->in);
    ea_buf_free(&c->out);
    ea_buf_free(&c->pending);
    free(c);
    s->nconns--;
}

/* Writes as much of out as the socket takes; arms EPOLLOUT for the rest. -1: connection closed. */
static int conn_flush(ea_http_server *s, conn *c)
{
    while (c->out.len) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ea_loop_mod(s->loop, c->fd, EPOLLIN | EPOLLOUT);
            return 0;
        }
        if (n <= 0) {
            conn_close(s, c);
            return -1;
        }
        ea_buf_consume(&c->out, (size_t)n);
    }
    ea_loop_mod(s->loop, c->fd, EPOLLIN);
    if (c->close_after) {
        /* lingering close: closing with unread input would send RST and could destroy the
         * answer in flight; so shut the write side and drain until the peer closes */
        shutdown(c->fd, SHUT_WR);
        c->lingering = 1;
        c->in.len = 0;
        c->deadline_ms = ea_loop_now_ms(s->loop) + 2000;
        return -1;
    }
    return 0;
}

static void format_response(ea_buf *b, int status, const char *ctype, const char *body, size_t blen, int keep)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n", status,
                     ea_http_reason(status), ctype ? ctype : "application/json", blen, keep ? "keep-alive" : "close");
    ea_buf_append(b, head, (size_t)n);
    ea_buf_append(b, body, blen);
}

static void send_error(ea_http_server *s, conn *c, int status, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", why);
    format_response(&c->out, status, NULL, body, (size_t)n, 0);
    c->close_after = 1;
    c->in.len = 0;
    conn_flush(s, c);
}

static int token_ok(const ea_http_server *s, const char *auth)
{
    if (!s->token[0])
        return 1;
    if (strncmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *t = auth + 7;
    size_t a = strlen(t), b = strlen(s->token);
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned char)(s->token[i] ^ (i < a ? t[i] : 0));
    return diff == 0;
}

static void dispatch(ea_http_server *s, conn *c, const char *body, ea_http_reply *rep)
{
    const ea_http_req *q = &c->req;
    if (!strcmp(q->path, "/v1/ingest")) {
        if (strcmp(q->method, "POST") != 0) {
            rep->status = 405;
            ea_buf_puts(rep->body, "{\"error\":\"use POST\"}\n");
        } else if (!token_ok(s, q->auth)) {
            s->st.unauthorized++;
            rep->status = 401;
            ea_buf_puts(rep->body, "{\"error\":\"missing or wrong bearer token\"}\n");
        } else
            s->h.ingest(s->h.arg, body, q->content_length, c->peer, rep);
        return;
    }
    if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) {
        rep->status = 405;
        ea_buf_puts(rep->body, "{\"error\":\"method not allowed\"}\n");
        return;
    }
    if (s->h.get)
        s->h.get(s->h.arg, q->path, rep);
    if (!rep->status) {
        rep->body->len = 0;
        rep->status = 404;
        ea_buf_puts(rep->body, "{\"error\":\"not found\"}\n");
    }
}

static void process(ea_http_server *s, conn *c);

static void start_next_request(ea_http_server *s, conn *c)
{
    c->have_head = c->sent_continue = 0;
    c->state = ST_READING;
    c->deadline_ms = ea_loop_now_ms(s->loop) + s->cfg.timeout_ms;
}

static void process(ea_http_server *s, conn *c)
{
    while (c->state == ST_READING && !c->close_after) {
        if (!c->have_head) {
            int status;
            const char *why;
            int r = ea_http_parse_head(c->in.data, c->in.len, s->cfg.max_head, s->cfg.max_body, &c->req, &status, &why);
            if (r == 0)
                return;
            if (r < 0) {
                s->st.bad_requests++;
                if (status == 413)
                    s->st.too_large++;
                send_error(s, c, status, why);
                return;
            }
            c->have_head = 1;
            c->keep_alive = c->req.keep_alive;
        }
        size_t need = c->req.head_len + c->req.content_length;
        if (c->in.len < need) {
            if (c->req.expect_continue && !c->sent_continue) {
                c->sent_continue = 1;
                ea_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                if (conn_flush(s, c) < 0)
                    return;
            }
            return;
        }
        s->st.requests++;
        s->body.len = 0;
        ea_http_reply rep = {.body = &s->body};
        dispatch(s, c, c->in.data + c->req.head_len, &rep);
        int head_only = !strcmp(c->req.method, "HEAD");
        ea_buf_consume(&c->in, need);
        ea_buf *dst = rep.wait_seq > s->durable ? &c->pending : &c->out;
        format_response(dst, rep.status, rep.content_type, s->body.data, head_only ? 0 : s->body.len, c->keep_alive);
        if (!c->keep_alive)
            c->close_after = dst == &c->out;
        if (dst == &c->pending) {
            c->state = ST_WAITING;
            c->wait_seq = rep.wait_seq;
            return;
        }
        start_next_request(s, c);
        if (conn_flush(s, c) < 0)
            return;
    }
}

static void on_conn(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    conn *c = arg;
    ea_http_server *s = c->srv;
    if (events & EPOLLOUT) {
        if (conn_flush(s, c) < 0)
            return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    char tmp[16384];
    if (c->lingering) {
        ssize_t n;
        while ((n = recv(fd, tmp, sizeof tmp, 0)) > 0)
            ;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            conn_close(s, c);
        return;
    }
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            conn_close(s, c); /* peer gone; anything it sent and we accepted stays spooled */
            return;
        }
        if (c->close_after)
            continue; /* discard input while an error answer drains */
        if (ea_buf_append(&c->in, tmp, (size_t)n) < 0) {
            s->st.bad_requests++;
            s->st.too_large++;
            send_error(s, c, 413, "request larger than the limit");
            return;
        }
    }
    if (c->state == ST_READING)
        process(s, c);
}

static void on_accept(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    ea_http_server *s = arg;
    for (;;) {
        struct sockaddr_storage ss = {0}; /* accept4 fills it in; the analyzer does not know */
        socklen_t sl = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        int over = s->nconns >= s->cfg.max_conns;
        if (over && s->nconns >= s->cfg.max_conns + 16) { /* not even room to say so politely */
            close(cfd);
            s->st.conn_refused++;
            continue;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            continue;
        }
        c->fd = cfd;
        c->srv = s;
        c->in.max = s->cfg.max_head + s->cfg.max_body;
        c->out.max = 0;
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(a->sin_port));
        }
        if (ea_loop_add(l, cfd, EPOLLIN, on_conn, c) < 0) {
            close(cfd);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        start_next_request(s, c);
        if (over) {
            s->st.conn_refused++;
            send_error(s, c, 503, "too many connections");
        }
    }
}

static void on_sweep(ea_loop *l, void *arg)
{
    ea_http_server *s = arg;
    uint64_t now = ea_loop_now_ms(l);
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == ST_WAITING || now < c->deadline_ms)
            continue;
        if (c->lingering) {
            conn_close(s, c);
            continue;
        }
        if (c->in.len && !c->close_after) {
            s->st.timeouts++;
            send_error(s, c, 408, "request not received in time");
        } else
            conn_close(s, c); /* idle keep-alive, or a reader that does not drain our answer */
    }
    s->sweep_timer = ea_loop_timer(l, 250, on_sweep, s);
}

static void apply_config(ea_http_server *s, const ea_http_config *cfg)
{
    s->cfg = *cfg;
    if (!s->cfg.max_body)
        s->cfg.max_body = 1u << 20;
    if (!s->cfg.max_head)
        s->cfg.max_head = 8192;
    if (s->cfg.max_conns <= 0)
        s->cfg.max_conns = 64;
    if (!s->cfg.timeout_ms)
        s->cfg.timeout_ms = 10000;
    snprintf(s->token, sizeof s->token, "%s", cfg->token ? cfg->token : "");
    s->cfg.token = s->token;
    s->cfg.listen = NULL;
}

ea_http_server *ea_http_server_new(ea_loop *l, const ea_http_config *cfg, const ea_http_handlers *h, char *err,
                                   size_t errlen)
{
    ea_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = l;
    s->h = *h;
    apply_config(s, cfg);
    s->lfd = ea_listen_tcp(cfg->listen, "0.0.0.0", 128, err, errlen);
    if (s->lfd < 0 || ea_loop_add(l, s->lfd, EPOLLIN, on_accept, s) < 0) {
        if (s->lfd >= 0)
            close(s->lfd);
        free(s);
        return NULL;
    }
    s->sweep_timer = ea_loop_timer(l, 250, on_sweep, s);
    return s;
}

void ea_http_server_reconfigure(ea_http_server *s, const ea_http_config *cfg) { apply_config(s, cfg); }

void ea_http_server_durable(ea_http_server *s, uint64_t durable_seq)
{
    s->durable = durable_seq;
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state != ST_WAITING || c->wait_seq > durable_seq)
            continue;
        ea_buf_append(&c->out, c->pending.data, c->pending.len);
        c->pending.len = 0;
        if (!c->keep_alive)
            c->close_after = 1;
        start_next_request(s, c);
        if (conn_flush(s, c) < 0)
            continue;
        process(s, c);
    }
}

void ea_http_server_fail_waiting(ea_http_server *s, int status, const char *msg)
{
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state != ST_WAITING)
            continue;
        c->pending.len = 0;
        c->state = ST_READING;
        send_error(s, c, status, msg);
    }
}

void ea_http_server_stop_accepting(ea_http_server *s)
{
    if (s->lfd >= 0) {
        ea_loop_del(s->loop, s->lfd);
        close(s->lfd);
        s->lfd = -1;
    }
}

int ea_http_server_waiting(const ea_http_server *s)
{
    int n = 0;
    for (const conn *c = s->conns; c; c = c->next)
        n += c->state == ST_WAITING;
    return n;
}

int ea_http_server_port(const ea_http_server *s) { return s->lfd >= 0 ? ea_sock_port(s->lfd) : 0; }

void ea_http_server_stats(const ea_http_server *s, ea_http_stats *st)
{
    *st = s->st;
    st->connections = s->nconns;
}

void ea_http_server_free(ea_http_server *s)
{
    if (!s)
        return;
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(s, c);
    }
    ea_http_server_stop_accepting(s);
    ea_loop_timer_cancel(s->loop, s->sweep_timer);
    ea_buf_free(&s->body);
    free(s);
}
