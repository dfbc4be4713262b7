/*
 * outputs/http.c: the HTTP(S) northbound output (ea_output_http): records are POSTed in batches
 * as one JSON array ("[rec,rec,...]"), gzip-compressed with zlib when configured
 * (Content-Encoding: gzip), with an optional bearer token.
 *
 * Delivery rule: a 2xx response acknowledges every record of the batch; anything else (non-2xx,
 * timeout, connection failure) keeps the batch and re-sends exactly the same bytes after a capped,
 * jittered backoff, forever. Only one batch is in flight, so offer() takes nothing while one is
 * pending: the records wait in the spool, memory stays at one batch.
 *
 * Connections are kept alive when the server sends a Content-Length response; a request on a
 * reused connection that dies before any response byte is retried at once on a new connection
 * (the server may close an idle connection at any moment; that is not a failure of the uplink).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <zlib.h>

#include "net/tcp.h"
#include "net/tls.h"
#include "outputs/output.h"
#include "util/backoff.h"
#include "util/log.h"

#define HTTP_TIMEOUT_MS 30000u /* connect + send + response headers */
#define RESP_MAX 8192          /* status line + headers we read */

enum { H_IDLE, H_RESOLVING, H_CONNECTING, H_TLS, H_SENDING, H_WAITING, H_BACKOFF };

struct ea_output {
    ea_loop *loop;
    ea_output_events ev;
    ea_url url;
    char *bearer;
    int gzip, batch_max;
    ea_tls_config *tls_cfg;
    ea_stream st;
    ea_resolver *resolver; /* DNS query in flight (H_RESOLVING) */
    ea_addr addr;
    int state, reused, up, in_ack;
    uint32_t interest;
    ea_backoff bo;
    int timer;
    uint64_t *seqs;
    size_t n_seqs;
    char *req;
    size_t req_len, req_off;
    char resp[RESP_MAX + 1];
    size_t resp_len;
    size_t body_left; /* bytes of a 2xx response body still to read before the batch is acked */
    int status;       /* 2xx status once the headers are in, 0 before */
    uint64_t retries, reconnects, connects;
    char where[320];
};

static void start_request(ea_output *o);

/* ------------------------------------------------------------------ connection */

static void close_conn(ea_output *o)
{
    ea_resolve_cancel(o->resolver);
    o->resolver = NULL;
    if (o->st.fd >= 0) {
        ea_loop_del(o->loop, o->st.fd);
        ea_tls_free(o->st.tls);
        close(o->st.fd);
    }
    o->st.fd = -1;
    o->st.tls = NULL;
    o->st.err[0] = '\0';
    o->interest = 0;
}

static void cancel_timer(ea_output *o)
{
    if (o->timer > 0) ea_loop_timer_cancel(o->loop, o->timer);
    o->timer = 0;
}

static void set_interest(ea_output *o, uint32_t ev)
{
    if (o->st.fd >= 0 && o->interest != ev) {
        o->interest = ev;
        ea_loop_mod(o->loop, o->st.fd, ev);
    }
}

static void on_backoff_done(ea_loop *l, void *arg)
{
    (void)l;
    ea_output *o = arg;
    o->timer = 0;
    start_request(o);
}

/* The batch stays; it is sent again after the backoff. */
static void request_failed(ea_output *o, const char *why)
{
    char reason[256];
    snprintf(reason, sizeof reason, "%s", why);
    close_conn(o);
    cancel_timer(o);
    o->retries++;
    o->state = H_BACKOFF;
    uint32_t delay = ea_backoff_next(&o->bo);
    o->timer = ea_loop_timer(o->loop, delay, on_backoff_done, o);
    ea_log(EA_LOG_WARN, "uplink %s: %s (batch of %zu kept, retry in %u ms)", o->where, reason,
           o->n_seqs, delay);
    o->up = 0;
    if (o->ev.state) o->ev.state(o->ev.arg, 0, reason);
}

/* A reused keep-alive connection died before any response byte: try once more on a new one. */
static void failed_or_reconnect(ea_output *o, const char *why)
{
    if (o->reused && o->resp_len == 0) {
        close_conn(o);
        cancel_timer(o);
        start_request(o);
        return;
    }
    request_failed(o, why);
}

static void on_timeout(ea_loop *l, void *arg)
{
    (void)l;
    ea_output *o = arg;
    o->timer = 0;
    char why[96];
    snprintf(why, sizeof why, "no response within %u ms", HTTP_TIMEOUT_MS);
    request_failed(o, why);
}

/* ------------------------------------------------------------------ response */

static const char *find_header(const char *headers, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(headers, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

static void batch_acked(ea_output *o, int status)
{
    cancel_timer(o);
    o->status = 0;
    o->body_left = 0;
    size_t n = o->n_seqs;
    o->n_seqs = 0;
    free(o->req);
    o->req = NULL;
    ea_backoff_reset(&o->bo);
    o->state = H_IDLE;
    o->in_ack = 1; /* o->seqs is reused by the next offer: none until every ack is out */
    for (size_t i = 0; i < n; i++)
        if (o->ev.acked) o->ev.acked(o->ev.arg, o->seqs[i]);
    o->in_ack = 0;
    if (!o->up) { /* after the acks: the core re-offers everything unacked when we come back up */
        o->up = 1;
        ea_log(EA_LOG_INFO, "uplink %s: delivering again (HTTP %d)", o->where, status);
        if (o->ev.state) o->ev.state(o->ev.arg, 1, "HTTP 2xx");
    }
}

static void read_body(ea_output *o)
{
    char buf[2048];
    while (o->body_left > 0) {
        ssize_t n =
            ea_stream_read(&o->st, buf, sizeof buf < o->body_left ? sizeof buf : o->body_left);
        if (n == EA_IO_WANT_READ || n == EA_IO_WANT_WRITE) return;
        if (n <= 0) { /* the 2xx was sent: the batch is delivered even if the body is cut */
            close_conn(o);
            o->body_left = 0;
            break;
        }
        o->body_left -= (size_t)n;
    }
    batch_acked(o, o->status);
}

/* Called once the header block is complete in resp. A 2xx with a Content-Length keeps the
 * connection: the batch is acked once the body has been read too (o->body_left reaches 0). */
static void response_headers_done(ea_output *o, size_t header_len)
{
    int status = 0;
    if (sscanf(o->resp, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599) {
        request_failed(o, "malformed HTTP status line");
        return;
    }
    if (status < 200 || status >= 300) {
        char why[96];
        snprintf(why, sizeof why, "HTTP %d", status);
        request_failed(o, why);
        return;
    }
    o->status = status;
    const char *cl = find_header(o->resp, "Content-Length");
    const char *conn = find_header(o->resp, "Connection");
    long body = cl ? strtol(cl, NULL, 10) : -1;
    size_t have = o->resp_len - header_len;
    if (body < 0 || (size_t)body < have || (conn && strncasecmp(conn, "close", 5) == 0)) {
        close_conn(o); /* not reusable; the status is all we need */
        batch_acked(o, status);
        return;
    }
    o->body_left = (size_t)body - have;
    read_body(o);
}

static void read_response(ea_output *o)
{
    if (o->status) {
        read_body(o);
        return;
    }
    for (;;) {
        if (o->resp_len == RESP_MAX) {
            request_failed(o, "response headers larger than 8 KiB");
            return;
        }
        ssize_t n = ea_stream_read(&o->st, o->resp + o->resp_len, RESP_MAX - o->resp_len);
        if (n > 0) {
            o->resp_len += (size_t)n;
            o->resp[o->resp_len] = '\0';
            char *end = strstr(o->resp, "\r\n\r\n");
            if (end) {
                response_headers_done(o, (size_t)(end + 4 - o->resp));
                return;
            }
            continue;
        }
        if (n == EA_IO_WANT_READ || n == EA_IO_WANT_WRITE) return;
        failed_or_reconnect(o, n == 0 ? "connection closed before the response" : o->st.err);
        return;
    }
}

/* ------------------------------------------------------------------ request */

static void send_request(ea_output *o)
{
    while (o->req_off < o->req_len) {
        ssize_t n = ea_stream_write(&o->st, o->req + o->req_off, o->req_len - o->req_off);
        if (n > 0) {
            o->req_off += (size_t)n;
            continue;
        }
        if (n == EA_IO_WANT_WRITE) {
            set_interest(o, EPOLLIN | EPOLLOUT);
            return;
        }
        if (n == EA_IO_WANT_READ) {
            set_interest(o, EPOLLIN);
            return;
        }
        failed_or_reconnect(o, o->st.err[0] ? o->st.err : "write failed");
        return;
    }
    o->state = H_WAITING;
    set_interest(o, EPOLLIN);
}

static void step_tls(ea_output *o)
{
    char err[256];
    int r = ea_tls_handshake(o->st.tls, err, sizeof err);
    if (r == 0) {
        o->state = H_SENDING;
        send_request(o);
    } else if (r == EA_IO_WANT_READ) {
        set_interest(o, EPOLLIN);
    } else if (r == EA_IO_WANT_WRITE) {
        set_interest(o, EPOLLIN | EPOLLOUT);
    } else {
        request_failed(o, err);
    }
}

static void on_connected(ea_output *o, int fd)
{
    char err[256];
    int e = ea_tcp_connect_error(fd);
    if (e) {
        snprintf(err, sizeof err, "connect %s:%u: %s", o->url.host, o->url.port, strerror(e));
        request_failed(o, err);
        return;
    }
    if (o->connects++ > 0) o->reconnects++;
    if (!o->url.tls) {
        o->state = H_SENDING;
        send_request(o);
        return;
    }
    o->st.tls = ea_tls_new(o->tls_cfg, fd, o->url.host, err, sizeof err);
    if (!o->st.tls) {
        request_failed(o, err);
        return;
    }
    o->state = H_TLS;
    step_tls(o);
}

static void on_io(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    ea_output *o = arg;
    switch (o->state) {
    case H_CONNECTING:
        on_connected(o, fd);
        break;
    case H_TLS:
        step_tls(o);
        break;
    case H_SENDING:
        send_request(o);
        break;
    case H_WAITING:
        read_response(o);
        break;
    default: /* idle keep-alive connection: the server closed it (or sent junk) */
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) close_conn(o);
        break;
    }
}

static void connect_resolved(ea_output *o)
{
    char err[256];
    int fd = ea_tcp_connect_start(&o->addr, err, sizeof err);
    if (fd < 0) {
        request_failed(o, err);
        return;
    }
    o->st.fd = fd;
    o->interest = EPOLLIN | EPOLLOUT;
    o->state = H_CONNECTING;
    if (ea_loop_add(o->loop, fd, o->interest, on_io, o) < 0)
        request_failed(o, "event loop refused the socket");
}

static void on_resolved(void *arg, const ea_addr *addr, const char *err)
{
    ea_output *o = arg;
    o->resolver = NULL;
    if (!addr) {
        request_failed(o, err);
        return;
    }
    o->addr = *addr;
    connect_resolved(o);
}

static void start_request(ea_output *o)
{
    char err[256];
    o->req_off = 0;
    o->resp_len = 0;
    cancel_timer(o);
    o->timer = ea_loop_timer(o->loop, HTTP_TIMEOUT_MS, on_timeout, o);
    o->body_left = 0;
    o->status = 0;
    o->reused = o->st.fd >= 0;
    if (o->reused) {
        o->state = H_SENDING;
        send_request(o);
        return;
    }
    o->state = H_RESOLVING;
    int r = ea_resolve_start(o->loop, o->url.host, o->url.port, NULL, NULL, &o->addr, on_resolved,
                             o, &o->resolver, err, sizeof err);
    if (r < 0)
        request_failed(o, err);
    else if (r == 0)
        connect_resolved(o);
}

/* ------------------------------------------------------------------ batch building */

static int gzip_bytes(const char *in, size_t len, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, len) + 32;
    char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *outlen = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

/* "[a,b,c]" from the records' payloads (each a JSON object made by the pipeline). */
static char *json_array(const ea_record_ref *recs, size_t n, size_t *len)
{
    size_t total = 2 + (n ? n - 1 : 0);
    for (size_t i = 0; i < n; i++)
        total += recs[i].len;
    char *buf = malloc(total);
    if (!buf) return NULL;
    size_t pos = 0;
    buf[pos++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (i) buf[pos++] = ',';
        memcpy(buf + pos, recs[i].data, recs[i].len);
        pos += recs[i].len;
    }
    buf[pos++] = ']';
    *len = pos;
    return buf;
}

static int build_request(ea_output *o, const char *body, size_t body_len)
{
    char head[1024 + 512];
    char auth[600] = "";
    if (o->bearer) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", o->bearer);
    int v6 = strchr(o->url.host, ':') != NULL; /* an IPv6 literal goes in brackets (RFC 7230) */
    int hl =
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: edgeagent\r\nContent-Type: "
                 "application/json\r\n"
                 "%sContent-Length: %zu\r\n%sConnection: keep-alive\r\n\r\n",
                 o->url.path[0] ? o->url.path : "/", v6 ? "[" : "", o->url.host, v6 ? "]" : "",
                 o->url.port, o->gzip ? "Content-Encoding: gzip\r\n" : "", body_len, auth);
    if (hl < 0 || (size_t)hl >= sizeof head) return -1;
    o->req = malloc((size_t)hl + body_len);
    if (!o->req) return -1;
    memcpy(o->req, head, (size_t)hl);
    memcpy(o->req + hl, body, body_len);
    o->req_len = (size_t)hl + body_len;
    return 0;
}

/* ------------------------------------------------------------------ ops */

static size_t http_offer(ea_output *o, const ea_record_ref *recs, size_t n)
{
    if (o->n_seqs > 0 || o->state != H_IDLE || o->in_ack || n == 0) return 0;
    if (n > (size_t)o->batch_max) n = (size_t)o->batch_max;
    size_t json_len;
    char *json = json_array(recs, n, &json_len);
    if (!json) return 0;
    char *body = json;
    size_t body_len = json_len;
    if (o->gzip && gzip_bytes(json, json_len, &body, &body_len) < 0) {
        free(json);
        return 0;
    }
    int rc = build_request(o, body, body_len);
    if (body != json) free(body);
    free(json);
    if (rc < 0) return 0;
    for (size_t i = 0; i < n; i++)
        o->seqs[i] = recs[i].seq;
    o->n_seqs = n;
    start_request(o);
    return n;
}

static void http_report(ea_output *o, const char *topic_suffix, const void *data, size_t len)
{
    (void)o;
    (void)topic_suffix;
    (void)data;
    (void)len; /* no status channel over HTTP: the control plane reads /health instead */
}

/* HTTP has no standing connection: "up" means the last request did not fail (initially up, so the
 * core offers the first batch and /health says connected from start-up; down from a failure until
 * the held batch gets its 2xx). The core reads this once after create(), then follows ev.state. */
static int http_connected(ea_output *o)
{
    return o->up;
}

static void http_stats(ea_output *o, uint64_t *retries, uint64_t *reconnects)
{
    if (retries) *retries = o->retries;
    if (reconnects) *reconnects = o->reconnects;
}

static void http_destroy(ea_output *o)
{
    if (!o) return;
    cancel_timer(o);
    close_conn(o);
    ea_tls_config_free(o->tls_cfg);
    free(o->seqs);
    free(o->req);
    free(o->bearer);
    free(o);
}

static ea_output *http_create(const ea_output_config *cfg, ea_loop *loop,
                              const ea_output_events *ev, char *err, size_t errlen)
{
    ea_output *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "http output: out of memory");
        return NULL;
    }
    o->loop = loop;
    o->st.fd = -1;
    o->up = 1;
    if (ev) o->ev = *ev;
    if (ea_url_parse(cfg->url, &o->url, err, errlen) < 0) goto fail;
    if (o->url.scheme[0] != 'h') {
        snprintf(err, errlen, "uplink URL %s: the http output needs http:// or https://", cfg->url);
        goto fail;
    }
    snprintf(o->where, sizeof o->where, "%s://%s:%u%s", o->url.scheme, o->url.host, o->url.port,
             o->url.path);
    o->gzip = cfg->gzip;
    o->batch_max = cfg->batch_max > 0 ? cfg->batch_max : 256;
    o->seqs = calloc((size_t)o->batch_max, sizeof *o->seqs);
    o->bearer = cfg->bearer_token ? strdup(cfg->bearer_token) : NULL;
    if (!o->seqs || (cfg->bearer_token && !o->bearer)) {
        snprintf(err, errlen, "http output: out of memory");
        goto fail;
    }
    if (o->bearer && strpbrk(o->bearer, "\r\n")) {
        snprintf(err, errlen, "http output: bearer token contains a line break");
        goto fail;
    }
    ea_backoff_init(&o->bo, cfg->backoff_min_ms ? cfg->backoff_min_ms : 500,
                    cfg->backoff_max_ms ? cfg->backoff_max_ms : 60000, 0);
    if (o->url.tls &&
        !(o->tls_cfg = ea_tls_config_new(cfg->ca_file, cfg->cert_file, cfg->key_file, err, errlen)))
        goto fail;
    return o;
fail:
    http_destroy(o);
    return NULL;
}

const ea_output_ops ea_output_http = {
    .scheme = "http",
    .create = http_create,
    .offer = http_offer,
    .report = http_report,
    .connected = http_connected,
    .stats = http_stats,
    .destroy = http_destroy,
};
