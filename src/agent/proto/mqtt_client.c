/*
 * proto/mqtt_client.c: the MQTT 3.1.1 / 5.0 client state machine (behaviour in mqtt_client.h).
 *
 * States: IDLE (stopped) -> RESOLVING (DNS on the loop) -> TCP (connect in progress) -> TLS
 * (handshake) -> CONNACK (CONNECT sent) -> UP; any failure -> WAIT (backoff timer) -> TCP ... Each
 * connection has a generation number; code that runs callbacks re-checks it, so a callback that
 * aborts the connection never leaves the parser working on a freed buffer.
 *
 * Buffers: rx grows up to max_packet (+ header); tx is an append-only byte queue drained on
 * EPOLLOUT, so publishes made in one loop iteration leave in one write (one TLS record where they
 * fit). In-flight QoS 1 packets are kept encoded in their slot so a re-send is a copy with DUP set.
 *
 * A slot is "sent" once its PUBLISH went into tx on the current connection; at most `limit` (the
 * window, or the broker's MQTT 5 Receive Maximum when smaller) are sent and unacknowledged at any
 * time, the others wait in order and leave as PUBACKs free room (send_unsent).
 */
#include "proto/mqtt_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "net/tcp.h"
#include "net/tls.h"
#include "proto/mqtt_codec.h"
#include "util/backoff.h"

enum { ST_IDLE, ST_WAIT, ST_RESOLVING, ST_TCP, ST_TLS, ST_CONNACK, ST_UP };

#define TX_SOFT_CAP (1u << 20) /* QoS 0 publishes are refused beyond this much unsent data */

typedef struct slot {
    uint8_t *pkt; /* NULL: refused locally (too large for the broker), reported by refuse_timer */
    size_t len;
    uint64_t tag, order;
    uint16_t id;
    uint8_t used, sent, ever_sent;
} slot;

typedef struct sub {
    char *filter;
    int qos;
} sub;

struct ea_mqtt_client {
    ea_loop *loop;
    ea_mqtt_client_config cfg;
    ea_mqtt_client_events ev;
    ea_tls_config *tls_cfg;
    ea_stream st;
    ea_resolver *resolver; /* DNS query in flight (ST_RESOLVING) */
    ea_addr addr;
    int state;
    unsigned gen;
    uint32_t interest;
    ea_backoff bo;
    int conn_timer, ka_timer;
    uint8_t *rx, *tx;
    size_t rx_len, rx_cap, tx_len, tx_off, tx_cap;
    size_t skip_left; /* bytes of a dropped oversized PUBLISH still to discard */
    slot *slots;
    int n_slots, used_slots, n_sent;
    uint64_t next_order;
    uint16_t next_id;
    sub subs[EA_MQTT_MAX_TOPICS];
    int n_subs;
    uint64_t last_tx, last_rx, ping_sent;
    int ping_out, ever_connected;
    ea_mqtt_client_stats stats;
    char last_error[256];
    int version;       /* EA_MQTT_V311 or EA_MQTT_V5 */
    int ka_s;          /* keepalive in use: ours, or the broker's Server Keep Alive (MQTT 5) */
    uint16_t recv_max; /* broker's Receive Maximum; 65535 when not given */
    uint32_t srv_max_packet; /* broker's Maximum Packet Size; 0 = no limit given */
    int ack_reason;          /* reason code of the PUBACK being reported (events.acked) */
    int refuse_timer;        /* reports slots refused locally */
};

static void fail(ea_mqtt_client *c, const char *why);
static void begin_connect(ea_mqtt_client *c);

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------------ buffers */

static int tx_reserve(ea_mqtt_client *c, size_t n)
{
    if (c->tx_off == c->tx_len) c->tx_off = c->tx_len = 0;
    if (c->tx_cap - c->tx_len >= n) return 0;
    if (c->tx_off > 0) { /* compact: the unsent head keeps its bytes, only moves */
        memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
        c->tx_len -= c->tx_off;
        c->tx_off = 0;
        if (c->tx_cap - c->tx_len >= n) return 0;
    }
    size_t cap = c->tx_cap ? c->tx_cap : 4096;
    while (cap - c->tx_len < n)
        cap *= 2;
    uint8_t *p = realloc(c->tx, cap);
    if (!p) return -1;
    c->tx = p;
    c->tx_cap = cap;
    return 0;
}

static int tx_append(ea_mqtt_client *c, const uint8_t *p, size_t n)
{
    if (tx_reserve(c, n) < 0) return -1;
    memcpy(c->tx + c->tx_len, p, n);
    c->tx_len += n;
    return 0;
}

/* Encodes pkt (in the connection's protocol version) at the end of tx. */
static int tx_packet(ea_mqtt_client *c, const ea_mqtt_packet *pkt_in)
{
    ea_mqtt_packet q = *pkt_in;
    q.version = (uint8_t)c->version;
    const ea_mqtt_packet *pkt = &q;
    size_t need = ea_mqtt_encode(pkt, NULL, 0);
    if (need == 0 || tx_reserve(c, need) < 0) return -1;
    ea_mqtt_encode(pkt, c->tx + c->tx_len, c->tx_cap - c->tx_len);
    c->tx_len += need;
    return 0;
}

static void set_interest(ea_mqtt_client *c, uint32_t events)
{
    if (c->st.fd >= 0 && c->interest != events) {
        c->interest = events;
        ea_loop_mod(c->loop, c->st.fd, events);
    }
}

/* Sends later, on EPOLLOUT, so one loop iteration's packets leave together. */
static void want_write(ea_mqtt_client *c)
{
    if (c->state == ST_CONNACK || c->state == ST_UP) set_interest(c, EPOLLIN | EPOLLOUT);
}

static int flush(ea_mqtt_client *c)
{
    while (c->tx_off < c->tx_len) {
        ssize_t n = ea_stream_write(&c->st, c->tx + c->tx_off, c->tx_len - c->tx_off);
        if (n > 0) {
            c->tx_off += (size_t)n;
            c->last_tx = ea_loop_now_ms(c->loop);
            continue;
        }
        if (n == EA_IO_WANT_WRITE) {
            set_interest(c, EPOLLIN | EPOLLOUT);
            return 0;
        }
        if (n == EA_IO_WANT_READ) {
            set_interest(c, EPOLLIN);
            return 0;
        }
        fail(c, c->st.err[0] ? c->st.err : "write failed");
        return -1;
    }
    c->tx_off = c->tx_len = 0;
    set_interest(c, EPOLLIN);
    return 0;
}

/* ------------------------------------------------------------------ connection lifecycle */

static void cancel_timer(ea_mqtt_client *c, int *id)
{
    if (*id > 0) ea_loop_timer_cancel(c->loop, *id);
    *id = 0;
}

static void close_conn(ea_mqtt_client *c)
{
    ea_resolve_cancel(c->resolver);
    c->resolver = NULL;
    if (c->st.fd >= 0) {
        ea_loop_del(c->loop, c->st.fd);
        ea_tls_free(c->st.tls);
        close(c->st.fd);
    }
    c->st.fd = -1;
    c->st.tls = NULL;
    c->st.err[0] = '\0';
    c->gen++;
    cancel_timer(c, &c->conn_timer);
    cancel_timer(c, &c->ka_timer);
    c->rx_len = 0;
    c->skip_left = 0;
    c->tx_len = c->tx_off = 0;
    c->ping_out = 0;
    c->interest = 0;
    for (int i = 0; c->slots && i < c->n_slots; i++)
        c->slots[i].sent = 0;
    c->n_sent = 0;
}

static void on_reconnect_timer(ea_loop *l, void *arg)
{
    (void)l;
    ea_mqtt_client *c = arg;
    c->conn_timer = 0;
    begin_connect(c);
}

static void fail(ea_mqtt_client *c, const char *why)
{
    char reason[256];
    snprintf(reason, sizeof reason, "%s", why); /* why may point into the stream we are closing */
    if (c->state != ST_UP) c->stats.connect_failures++;
    close_conn(c);
    snprintf(c->last_error, sizeof c->last_error, "%s", reason);
    c->state = ST_WAIT;
    c->conn_timer = ea_loop_timer(c->loop, ea_backoff_next(&c->bo), on_reconnect_timer, c);
    if (c->ev.disconnected) c->ev.disconnected(c->ev.arg, reason);
}

static void on_connect_timeout(ea_loop *l, void *arg)
{
    (void)l;
    ea_mqtt_client *c = arg;
    c->conn_timer = 0;
    char why[128];
    snprintf(why, sizeof why, "%s:%u: no CONNACK within %u ms", c->cfg.host, c->cfg.port,
             c->cfg.connect_timeout_ms);
    fail(c, why);
}

static void send_connect(ea_mqtt_client *c)
{
    ea_mqtt_packet p = {.type = EA_MQTT_CONNECT};
    ea_mqtt_connect *k = &p.u.connect;
    k->client_id = ea_mqtt_cstr(c->cfg.client_id);
    k->clean_session = c->cfg.clean_session ? 1 : 0;
    k->keepalive_s = (uint16_t)c->cfg.keepalive_s;
    c->ka_s = c->cfg.keepalive_s;
    c->recv_max = 65535;
    c->srv_max_packet = 0;
    if (c->version == EA_MQTT_V5) {
        /* Clean Start 0 alone keeps nothing in MQTT 5: the session lives as long as its expiry */
        if (!c->cfg.clean_session) {
            p.props.session_expiry = 0xFFFFFFFFu;
            EA_MQTT_SET(p.props, EA_MQTT_P_SESSION_EXPIRY);
        }
        /* the broker must not send us more than we accept (spec 3.1.2.11.4) */
        p.props.maximum_packet_size =
            (uint32_t)(c->cfg.max_packet < 0xFFFFFFFFu ? c->cfg.max_packet : 0xFFFFFFFFu);
        EA_MQTT_SET(p.props, EA_MQTT_P_MAXIMUM_PACKET_SIZE);
    }
    if (c->cfg.will_topic) {
        k->has_will = 1;
        k->will_topic = ea_mqtt_cstr(c->cfg.will_topic);
        k->will_payload = ea_mqtt_cstr(c->cfg.will_payload ? c->cfg.will_payload : "");
        k->will_qos = (uint8_t)c->cfg.will_qos;
        k->will_retain = c->cfg.will_retain ? 1 : 0;
    }
    if (c->cfg.username) {
        k->has_username = 1;
        k->username = ea_mqtt_cstr(c->cfg.username);
    }
    if (c->cfg.password && c->cfg.username) {
        k->has_password = 1;
        k->password = ea_mqtt_cstr(c->cfg.password);
    }
    c->state = ST_CONNACK;
    if (tx_packet(c, &p) < 0) {
        fail(c, "CONNECT could not be encoded (a field is longer than 65535 bytes?)");
        return;
    }
    flush(c);
}

static void on_io(ea_loop *l, int fd, uint32_t events, void *arg);

static void connect_resolved(ea_mqtt_client *c)
{
    char err[256];
    int fd = ea_tcp_connect_start(&c->addr, err, sizeof err);
    if (fd < 0) {
        fail(c, err);
        return;
    }
    c->st.fd = fd;
    c->st.tls = NULL;
    c->state = ST_TCP;
    c->interest = EPOLLIN | EPOLLOUT;
    if (ea_loop_add(c->loop, fd, c->interest, on_io, c) < 0)
        fail(c, "event loop refused the socket");
}

static void on_resolved(void *arg, const ea_addr *addr, const char *err)
{
    ea_mqtt_client *c = arg;
    c->resolver = NULL;
    if (!addr) {
        fail(c, err);
        return;
    }
    c->addr = *addr;
    connect_resolved(c);
}

/* The connect timer covers resolution, TCP, TLS and CONNACK. */
static void begin_connect(ea_mqtt_client *c)
{
    char err[256];
    c->conn_timer = ea_loop_timer(c->loop, c->cfg.connect_timeout_ms, on_connect_timeout, c);
    c->state = ST_RESOLVING;
    int r =
        ea_resolve_start(c->loop, c->cfg.host, c->cfg.port, c->cfg.hosts_path, c->cfg.resolv_path,
                         &c->addr, on_resolved, c, &c->resolver, err, sizeof err);
    if (r < 0)
        fail(c, err);
    else if (r == 0)
        connect_resolved(c);
}

/* ------------------------------------------------------------------ in-flight window */

static slot *slot_by_id(ea_mqtt_client *c, uint16_t id)
{
    for (int i = 0; i < c->n_slots; i++)
        if (c->slots[i].used && c->slots[i].id == id) return &c->slots[i];
    return NULL;
}

static uint16_t next_packet_id(ea_mqtt_client *c)
{
    for (;;) {
        c->next_id = (uint16_t)(c->next_id == 65535 ? 1 : c->next_id + 1);
        if (!slot_by_id(c, c->next_id)) return c->next_id;
    }
}

static void release_slot(ea_mqtt_client *c, slot *s)
{
    free(s->pkt);
    s->pkt = NULL;
    s->used = 0;
    if (s->sent) c->n_sent--;
    s->sent = s->ever_sent = 0;
    c->used_slots--;
}

/* QoS 1 PUBLISHes that may be unacknowledged at once: the window, or the broker's Receive Maximum
 * (MQTT 5) when that is smaller. */
static int send_limit(const ea_mqtt_client *c)
{
    return c->n_slots < (int)c->recv_max ? c->n_slots : (int)c->recv_max;
}

/* Sends waiting PUBLISHes in their original order while the limit allows: after a reconnect every
 * unacknowledged one again, DUP set (spec 4.4), before anything new. */
static void send_unsent(ea_mqtt_client *c)
{
    while (c->n_sent < send_limit(c)) {
        slot *next = NULL;
        for (int i = 0; i < c->n_slots; i++)
            if (c->slots[i].used && !c->slots[i].sent && c->slots[i].pkt &&
                (!next || c->slots[i].order < next->order))
                next = &c->slots[i];
        if (!next) break;
        if (next->ever_sent) next->pkt[0] |= 0x08;
        if (tx_append(c, next->pkt, next->len) < 0) return;
        if (next->ever_sent) c->stats.resent++;
        next->sent = next->ever_sent = 1;
        c->n_sent++;
    }
}

static void send_subscriptions(ea_mqtt_client *c)
{
    if (c->n_subs == 0) return;
    ea_mqtt_packet p = {.type = EA_MQTT_SUBSCRIBE};
    p.u.subscribe.packet_id = next_packet_id(c);
    p.u.subscribe.count = (size_t)c->n_subs;
    for (int i = 0; i < c->n_subs; i++) {
        p.u.subscribe.topics[i] = ea_mqtt_cstr(c->subs[i].filter);
        p.u.subscribe.qos[i] = (uint8_t)c->subs[i].qos;
    }
    tx_packet(c, &p);
}

/* ------------------------------------------------------------------ keepalive */

static uint64_t keepalive_ms(const ea_mqtt_client *c)
{
    return (uint64_t)c->ka_s * 1000u;
}

static void on_keepalive(ea_loop *l, void *arg)
{
    ea_mqtt_client *c = arg;
    c->ka_timer = 0;
    if (c->state != ST_UP) return;
    uint64_t now = ea_loop_now_ms(l), ka = keepalive_ms(c);
    if (c->ping_out && now - c->ping_sent >= ka) {
        char why[96];
        snprintf(why, sizeof why, "keepalive: no PINGRESP within %d s", c->ka_s);
        fail(c, why);
        return;
    }
    if (!c->ping_out && (now - c->last_tx >= ka / 2 || now - c->last_rx >= ka)) {
        ea_mqtt_packet p = {.type = EA_MQTT_PINGREQ};
        if (tx_packet(c, &p) == 0) {
            c->ping_out = 1;
            c->ping_sent = now;
            c->stats.pings++;
            want_write(c);
        }
    }
    c->ka_timer = ea_loop_timer(l, ka / 4 ? ka / 4 : 1, on_keepalive, c);
}

/* ------------------------------------------------------------------ incoming packets */

static const char *connack_reason(int rc)
{
    static const char *r[6] = {
        "accepted",           "unacceptable protocol version", "client identifier rejected",
        "server unavailable", "bad user name or password",     "not authorized"};
    return rc >= 0 && rc <= 5 ? r[rc] : "unknown";
}

/* MQTT 5 "0x87 Not authorized (reason string)" */
static void reason_text(char *out, size_t n, int type, int code, const ea_mqtt_props *pr)
{
    int rs = EA_MQTT_HAS(*pr, EA_MQTT_P_REASON_STRING);
    snprintf(out, n, "0x%02x %s%s%.*s%s", code, ea_mqtt_reason_name(type, code), rs ? " (" : "",
             rs ? (int)(pr->reason_string.len > 120 ? 120 : pr->reason_string.len) : 0,
             rs ? (const char *)pr->reason_string.p : "", rs ? ")" : "");
}

/* MQTT 5 CONNACK properties: limits the broker sets for this connection. */
static int apply_connack_props(ea_mqtt_client *c, const ea_mqtt_props *pr)
{
    if (EA_MQTT_HAS(*pr, EA_MQTT_P_RECEIVE_MAXIMUM)) c->recv_max = pr->receive_maximum;
    if (EA_MQTT_HAS(*pr, EA_MQTT_P_MAXIMUM_PACKET_SIZE))
        c->srv_max_packet = pr->maximum_packet_size;
    if (EA_MQTT_HAS(*pr, EA_MQTT_P_SERVER_KEEPALIVE)) c->ka_s = pr->server_keepalive;
    if (EA_MQTT_HAS(*pr, EA_MQTT_P_ASSIGNED_CLIENT_ID)) { /* resume this session next time */
        char *id = strndup((const char *)pr->assigned_client_id.p, pr->assigned_client_id.len);
        if (!id) return -1;
        free((char *)c->cfg.client_id);
        c->cfg.client_id = id;
    }
    c->stats.server_receive_maximum =
        EA_MQTT_HAS(*pr, EA_MQTT_P_RECEIVE_MAXIMUM) ? pr->receive_maximum : 0;
    c->stats.server_maximum_packet = c->srv_max_packet;
    return 0;
}

static void on_connack(ea_mqtt_client *c, const ea_mqtt_packet *p)
{
    char why[320];
    if (p->u.connack.return_code != 0) {
        char r[200];
        if (c->version == EA_MQTT_V5)
            reason_text(r, sizeof r, EA_MQTT_CONNACK, p->u.connack.return_code, &p->props);
        else
            snprintf(r, sizeof r, "%s", connack_reason(p->u.connack.return_code));
        snprintf(why, sizeof why, "%s:%u: broker refused the connection: %s", c->cfg.host,
                 c->cfg.port, r);
        fail(c, why);
        return;
    }
    if (c->version == EA_MQTT_V5 && apply_connack_props(c, &p->props) < 0) {
        fail(c, "out of memory");
        return;
    }
    cancel_timer(c, &c->conn_timer);
    c->state = ST_UP;
    ea_backoff_reset(&c->bo);
    if (c->ever_connected) c->stats.reconnects++;
    c->ever_connected = 1;
    c->last_error[0] = '\0';
    c->last_tx = c->last_rx = ea_loop_now_ms(c->loop);
    /* a Server Keep Alive of 0 switches keepalive off (MQTT 5 3.2.2.3.14) */
    if (c->ka_s > 0)
        c->ka_timer =
            ea_loop_timer(c->loop, keepalive_ms(c) / 4 ? keepalive_ms(c) / 4 : 1, on_keepalive, c);
    send_subscriptions(c);
    send_unsent(c);
    want_write(c);
    if (c->ev.connected) c->ev.connected(c->ev.arg, p->u.connack.session_present);
}

/* MQTT 5: a reason code >= 0x80 means the broker refused the message. It is reported like a
 * delivery (ack_reason tells the caller) and not re-sent: the refusal is the broker's answer to
 * this message, and re-sending it would only repeat it while blocking the records behind it. */
static void on_puback(ea_mqtt_client *c, const ea_mqtt_packet *p)
{
    slot *s = slot_by_id(c, p->u.packet_id);
    if (!s || !s->sent) return; /* a late PUBACK for a packet already acknowledged */
    uint64_t tag = s->tag;
    release_slot(c, s);
    if (p->reason >= 0x80) {
        char r[200];
        reason_text(r, sizeof r, EA_MQTT_PUBACK, p->reason, &p->props);
        snprintf(c->last_error, sizeof c->last_error, "broker refused PUBLISH %u: %s",
                 p->u.packet_id, r);
        c->stats.refused++;
    } else {
        c->stats.acked++;
    }
    send_unsent(c);
    want_write(c);
    c->ack_reason = p->reason;
    if (c->ev.acked) c->ev.acked(c->ev.arg, tag);
    c->ack_reason = 0;
}

/* Reports QoS 1 publishes refused before sending (bigger than the broker's Maximum Packet Size). */
static void on_refuse_timer(ea_loop *l, void *arg)
{
    (void)l;
    ea_mqtt_client *c = arg;
    c->refuse_timer = 0;
    for (int i = 0; i < c->n_slots; i++) {
        slot *s = &c->slots[i];
        if (!s->used || s->pkt) continue;
        uint64_t tag = s->tag;
        release_slot(c, s);
        c->ack_reason = 0x95; /* Packet too large */
        if (c->ev.acked) c->ev.acked(c->ev.arg, tag);
        c->ack_reason = 0;
    }
}

static void on_publish(ea_mqtt_client *c, const ea_mqtt_publish *pub)
{
    c->stats.received++;
    if (c->ev.message)
        c->ev.message(c->ev.arg, (const char *)pub->topic.p, pub->topic.len, pub->payload.p,
                      pub->payload.len, pub->qos, pub->retain);
    if (pub->qos == 1) {
        ea_mqtt_packet ack = {.type = EA_MQTT_PUBACK};
        ack.u.packet_id = pub->packet_id;
        tx_packet(c, &ack);
        want_write(c);
    }
}

static void on_suback(ea_mqtt_client *c, const ea_mqtt_packet *p)
{
    const ea_mqtt_subscribe *s = &p->u.subscribe;
    c->stats.subacks++;
    for (size_t i = 0; i < s->count; i++)
        if (s->qos[i] >= 0x80) {
            char r[200] = "";
            if (c->version == EA_MQTT_V5)
                reason_text(r, sizeof r, EA_MQTT_SUBACK, s->qos[i], &p->props);
            snprintf(c->last_error, sizeof c->last_error,
                     "broker refused subscription %zu of packet %u%s%s", i, s->packet_id,
                     r[0] ? ": " : "", r);
        }
}

/* Returns 0, or -1 when the connection was closed (by a failure or a callback). */
static int handle_packet(ea_mqtt_client *c, const ea_mqtt_packet *p)
{
    unsigned gen = c->gen;
    char why[320];
    if (c->state == ST_CONNACK && p->type != EA_MQTT_CONNACK) {
        snprintf(why, sizeof why, "broker sent %s before CONNACK", ea_mqtt_type_name(p->type));
        fail(c, why);
        return -1;
    }
    switch (p->type) {
    case EA_MQTT_CONNACK:
        if (c->state != ST_CONNACK) {
            fail(c, "broker sent a second CONNACK");
            return -1;
        }
        on_connack(c, p);
        break;
    case EA_MQTT_PUBACK:
        on_puback(c, p);
        break;
    case EA_MQTT_PUBLISH:
        if (p->u.publish.qos == 2) {
            fail(c, "broker sent a QoS 2 PUBLISH (subscriptions ask for QoS 1 at most)");
            return -1;
        }
        if (EA_MQTT_HAS(p->props, EA_MQTT_P_TOPIC_ALIAS)) {
            fail(c, "broker sent a Topic Alias although our Topic Alias Maximum is 0");
            return -1;
        }
        on_publish(c, &p->u.publish);
        break;
    case EA_MQTT_SUBACK:
        on_suback(c, p);
        break;
    case EA_MQTT_DISCONNECT: { /* MQTT 5: the broker says why it closes */
        char r[200];
        reason_text(r, sizeof r, EA_MQTT_DISCONNECT, p->reason, &p->props);
        snprintf(why, sizeof why, "%s:%u: broker disconnected: %s", c->cfg.host, c->cfg.port, r);
        fail(c, why);
        return -1;
    }
    case EA_MQTT_PINGRESP:
        c->ping_out = 0;
        break;
    case EA_MQTT_UNSUBACK:
        break;
    default:
        snprintf(why, sizeof why, "unexpected %s from broker", ea_mqtt_type_name(p->type));
        fail(c, why);
        return -1;
    }
    return c->gen == gen ? 0 : -1;
}

/* A PUBLISH larger than max_packet is dropped, not fatal: failing would make the broker redeliver
 * it after every reconnect (persistent session) and one oversized message would cut the uplink
 * for good. Its header (topic, packet id) is read, a QoS 1 one is PUBACKed, the body is skipped as
 * it arrives. Returns the bytes consumed at rx+off, 0 when the header is not complete yet, -1 after
 * fail(). */
static long drop_oversized(ea_mqtt_client *c, size_t off)
{
    const uint8_t *b = c->rx + off;
    size_t have = c->rx_len - off;
    uint32_t rl;
    size_t used;
    if (ea_mqtt_get_remaining(b + 1, have - 1, &rl, &used) != 1 || (b[0] >> 4) != EA_MQTT_PUBLISH) {
        fail(c, "oversized or malformed packet from the broker");
        return -1;
    }
    int qos = (b[0] >> 1) & 3;
    size_t hdr = 1 + used;
    if (have < hdr + 2) return 0;
    size_t topic_len = (size_t)(b[hdr] << 8 | b[hdr + 1]);
    size_t need = hdr + 2 + topic_len + (qos ? 2 : 0);
    if (have < need) {
        if (c->rx_len == c->rx_cap)
            fail(c, "oversized PUBLISH header does not fit the receive buffer");
        return c->rx_len == c->rx_cap ? -1 : 0;
    }
    size_t total = hdr + rl;
    snprintf(c->last_error, sizeof c->last_error, "dropped a %zu-byte PUBLISH on %.*s (limit %zu)",
             total, (int)(topic_len > 100 ? 100 : topic_len), (const char *)b + hdr + 2,
             c->cfg.max_packet);
    c->stats.oversized++;
    if (qos == 1) {
        ea_mqtt_packet ack = {.type = EA_MQTT_PUBACK};
        ack.u.packet_id = (uint16_t)(b[need - 2] << 8 | b[need - 1]);
        tx_packet(c, &ack);
        want_write(c);
    }
    size_t consume = have < total ? have : total;
    c->skip_left = total - consume;
    return (long)consume;
}

static int process_rx(ea_mqtt_client *c)
{
    size_t off = 0;
    char err[160];
    int rc = 0;
    if (c->skip_left) { /* rest of a dropped oversized PUBLISH */
        off = c->skip_left < c->rx_len ? c->skip_left : c->rx_len;
        c->skip_left -= off;
    }
    while (off < c->rx_len) {
        long n = ea_mqtt_frame(c->rx + off, c->rx_len - off, c->cfg.max_packet, err, sizeof err);
        if (n < 0 && strstr(err, "exceeds")) {
            n = drop_oversized(c, off);
            if (n < 0) return -1;
            if (n == 0) break;
            off += (size_t)n;
            continue;
        }
        if (n < 0) {
            fail(c, err);
            return -1;
        }
        if (n == 0) break;
        ea_mqtt_packet p;
        if (ea_mqtt_decode_v(c->rx + off, (size_t)n, c->version, &p, err, sizeof err) < 0) {
            const uint8_t *b = c->rx + off;
            /* a 3.1.1 broker answers a level-5 CONNECT with a 3.1.1 CONNACK, code 1 */
            if (c->version == EA_MQTT_V5 && c->state == ST_CONNACK && n == 4 && b[0] == 0x20 &&
                b[1] == 2 && b[3] == 1)
                snprintf(err, sizeof err,
                         "%s:%u: the broker does not speak MQTT 5 (3.1.1 CONNACK: unacceptable "
                         "protocol version); use mqtt_version 3.1.1",
                         c->cfg.host, c->cfg.port);
            fail(c, err);
            return -1;
        }
        off += (size_t)n;
        if (handle_packet(c, &p) < 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && off > 0) {
        memmove(c->rx, c->rx + off, c->rx_len - off);
        c->rx_len -= off;
    }
    return rc;
}

static int rx_room(ea_mqtt_client *c)
{
    size_t limit = c->cfg.max_packet + 8;
    if (c->rx_cap - c->rx_len >= 4096 || c->rx_cap >= limit) return c->rx_len < c->rx_cap ? 0 : -1;
    size_t cap = c->rx_cap ? c->rx_cap * 2 : 8192;
    if (cap > limit) cap = limit;
    uint8_t *p = realloc(c->rx, cap);
    if (!p) return -1;
    c->rx = p;
    c->rx_cap = cap;
    return 0;
}

static int read_all(ea_mqtt_client *c)
{
    for (;;) {
        if (rx_room(c) < 0) {
            fail(c, "receive buffer exhausted");
            return -1;
        }
        ssize_t n = ea_stream_read(&c->st, c->rx + c->rx_len, c->rx_cap - c->rx_len);
        if (n > 0) {
            c->rx_len += (size_t)n;
            c->last_rx = ea_loop_now_ms(c->loop);
            if (process_rx(c) < 0) return -1;
            continue;
        }
        if (n == 0) {
            fail(c, "connection closed by the broker");
            return -1;
        }
        if (n == EA_IO_WANT_READ) return 0;
        if (n == EA_IO_WANT_WRITE) {
            set_interest(c, EPOLLIN | EPOLLOUT);
            return 0;
        }
        fail(c, c->st.err[0] ? c->st.err : "read failed");
        return -1;
    }
}

static void step_handshake(ea_mqtt_client *c)
{
    char err[256];
    int r = ea_tls_handshake(c->st.tls, err, sizeof err);
    if (r == 0) {
        c->stats.tls_resumed += (uint64_t)ea_tls_resumed(c->st.tls);
        send_connect(c);
    } else if (r == EA_IO_WANT_READ)
        set_interest(c, EPOLLIN);
    else if (r == EA_IO_WANT_WRITE)
        set_interest(c, EPOLLIN | EPOLLOUT);
    else
        fail(c, err);
}

static void on_tcp_connected(ea_mqtt_client *c, int fd)
{
    char err[256];
    int e = ea_tcp_connect_error(fd);
    if (e != 0) {
        snprintf(err, sizeof err, "connect %s:%u: %s", c->cfg.host, c->cfg.port, strerror(e));
        fail(c, err);
        return;
    }
    if (!c->cfg.tls) {
        send_connect(c);
        return;
    }
    c->st.tls = ea_tls_new(c->tls_cfg, fd, c->cfg.host, err, sizeof err);
    if (!c->st.tls) {
        fail(c, err);
        return;
    }
    c->state = ST_TLS;
    step_handshake(c);
}

static void on_io(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    ea_mqtt_client *c = arg;
    switch (c->state) {
    case ST_TCP:
        on_tcp_connected(c, fd);
        return;
    case ST_TLS:
        step_handshake(c);
        return;
    case ST_CONNACK:
    case ST_UP:
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && read_all(c) < 0) return;
        if (c->state == ST_CONNACK || c->state == ST_UP) flush(c);
        return;
    default:
        return;
    }
}

/* ------------------------------------------------------------------ public API */

ea_mqtt_client *ea_mqtt_client_new(ea_loop *loop, const ea_mqtt_client_config *cfg,
                                   const ea_mqtt_client_events *ev, char *err, size_t errlen)
{
    if (!cfg->host || !cfg->client_id) {
        snprintf(err, errlen, "MQTT client: host and client_id are required");
        return NULL;
    }
    ea_mqtt_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "MQTT client: out of memory");
        return NULL;
    }
    c->loop = loop;
    c->cfg = *cfg;
    c->cfg.host = dup_or_null(cfg->host);
    c->cfg.ca_file = dup_or_null(cfg->ca_file);
    c->cfg.cert_file = dup_or_null(cfg->cert_file);
    c->cfg.key_file = dup_or_null(cfg->key_file);
    c->cfg.client_id = dup_or_null(cfg->client_id);
    c->cfg.username = dup_or_null(cfg->username);
    c->cfg.password = dup_or_null(cfg->password);
    c->cfg.will_topic = dup_or_null(cfg->will_topic);
    c->cfg.will_payload = dup_or_null(cfg->will_payload);
    c->cfg.hosts_path = dup_or_null(cfg->hosts_path);
    c->cfg.resolv_path = dup_or_null(cfg->resolv_path);
    if (c->cfg.keepalive_s <= 0 || c->cfg.keepalive_s > 65535) c->cfg.keepalive_s = 30;
    if (c->cfg.max_inflight <= 0 || c->cfg.max_inflight > 65535) c->cfg.max_inflight = 64;
    if (c->cfg.connect_timeout_ms == 0) c->cfg.connect_timeout_ms = 10000;
    if (c->cfg.max_packet == 0) c->cfg.max_packet = 512 * 1024;
    if (c->cfg.will_qos < 0 || c->cfg.will_qos > 1) c->cfg.will_qos = 1;
    if (c->cfg.version != 0 && c->cfg.version != EA_MQTT_V311 && c->cfg.version != EA_MQTT_V5) {
        snprintf(err, errlen, "MQTT client: protocol version %d (expected 4 for 3.1.1, or 5)",
                 c->cfg.version);
        ea_mqtt_client_free(c);
        return NULL;
    }
    c->version = c->cfg.version == EA_MQTT_V5 ? EA_MQTT_V5 : EA_MQTT_V311;
    c->ka_s = c->cfg.keepalive_s;
    c->recv_max = 65535;
    if (ev) c->ev = *ev;
    ea_backoff_init(&c->bo, cfg->backoff_min_ms ? cfg->backoff_min_ms : 500,
                    cfg->backoff_max_ms ? cfg->backoff_max_ms : 60000, 0);
    c->st.fd = -1;
    c->n_slots = c->cfg.max_inflight;
    c->slots = calloc((size_t)c->n_slots, sizeof *c->slots);
    if (!c->slots || !c->cfg.host || !c->cfg.client_id) {
        snprintf(err, errlen, "MQTT client: out of memory");
        ea_mqtt_client_free(c);
        return NULL;
    }
    if (c->cfg.tls && !(c->tls_cfg = ea_tls_config_new(c->cfg.ca_file, c->cfg.cert_file,
                                                       c->cfg.key_file, err, errlen))) {
        ea_mqtt_client_free(c);
        return NULL;
    }
    return c;
}

void ea_mqtt_client_start(ea_mqtt_client *c)
{
    if (c->state != ST_IDLE && c->state != ST_WAIT) return;
    cancel_timer(c, &c->conn_timer);
    begin_connect(c);
}

int ea_mqtt_client_subscribe(ea_mqtt_client *c, const char *filter, int qos)
{
    if (c->n_subs == EA_MQTT_MAX_TOPICS || qos < 0 || qos > 1) return -1;
    ea_mqtt_str f = ea_mqtt_cstr(filter);
    if (f.len > 65535 || !ea_mqtt_utf8_valid(f.p, f.len) || !ea_mqtt_topic_filter_valid(&f))
        return -1;
    char *copy = strdup(filter);
    if (!copy) return -1;
    c->subs[c->n_subs].filter = copy;
    c->subs[c->n_subs].qos = qos;
    c->n_subs++;
    if (c->state == ST_UP) {
        ea_mqtt_packet p = {.type = EA_MQTT_SUBSCRIBE, .version = (uint8_t)c->version};
        p.u.subscribe.packet_id = next_packet_id(c);
        p.u.subscribe.count = 1;
        p.u.subscribe.topics[0] = f;
        p.u.subscribe.qos[0] = (uint8_t)qos;
        tx_packet(c, &p);
        want_write(c);
    }
    return 0;
}

static slot *free_slot(ea_mqtt_client *c)
{
    for (int i = 0; i < c->n_slots; i++)
        if (!c->slots[i].used) return &c->slots[i];
    return NULL;
}

int ea_mqtt_client_publish(ea_mqtt_client *c, const char *topic, const void *payload, size_t len,
                           int qos, int retain, uint64_t tag)
{
    if (c->state != ST_UP || qos < 0 || qos > 1) return 0;
    ea_mqtt_packet p = {.type = EA_MQTT_PUBLISH, .version = (uint8_t)c->version};
    p.u.publish.topic = ea_mqtt_cstr(topic);
    p.u.publish.payload.p = payload;
    p.u.publish.payload.len = len;
    p.u.publish.qos = (uint8_t)qos;
    p.u.publish.retain = retain ? 1 : 0;
    if (qos == 0) {
        size_t need = ea_mqtt_encode(&p, NULL, 0);
        if (need == 0 || c->tx_len - c->tx_off + need > TX_SOFT_CAP ||
            (c->srv_max_packet && need > c->srv_max_packet) || tx_packet(c, &p) < 0)
            return 0;
    } else {
        slot *s = c->used_slots < send_limit(c) ? free_slot(c) : NULL;
        if (!s) return 0;
        p.u.publish.packet_id = next_packet_id(c);
        size_t need = ea_mqtt_encode(&p, NULL, 0);
        if (need && c->srv_max_packet && need > c->srv_max_packet) {
            /* never sendable to this broker: refused now, reported from the loop (not from
             * inside the caller's publish) as a PUBACK with 0x95 Packet too large */
            snprintf(c->last_error, sizeof c->last_error,
                     "a %zu-byte PUBLISH exceeds the broker's Maximum Packet Size %u: dropped",
                     need, c->srv_max_packet);
            c->stats.too_large++;
            *s = (slot){.tag = tag, .order = ++c->next_order, .used = 1};
            c->used_slots++;
            if (!c->refuse_timer) c->refuse_timer = ea_loop_timer(c->loop, 0, on_refuse_timer, c);
            return 1;
        }
        uint8_t *pkt = need ? malloc(need) : NULL;
        if (!pkt) return 0;
        ea_mqtt_encode(&p, pkt, need);
        *s = (slot){.pkt = pkt,
                    .len = need,
                    .tag = tag,
                    .order = ++c->next_order,
                    .id = p.u.publish.packet_id,
                    .used = 1};
        c->used_slots++;
        send_unsent(c);
    }
    c->stats.published++;
    want_write(c);
    return 1;
}

int ea_mqtt_client_connected(const ea_mqtt_client *c)
{
    return c->state == ST_UP;
}

int ea_mqtt_client_window_free(const ea_mqtt_client *c)
{
    int f = send_limit(c) - c->used_slots;
    return f > 0 ? f : 0;
}

int ea_mqtt_client_ack_reason(const ea_mqtt_client *c)
{
    return c->ack_reason;
}

int ea_mqtt_client_version(const ea_mqtt_client *c)
{
    return c->version;
}

int ea_mqtt_client_has_tag(const ea_mqtt_client *c, uint64_t tag)
{
    for (int i = 0; i < c->n_slots; i++)
        if (c->slots[i].used && c->slots[i].tag == tag) return 1;
    return 0;
}

void ea_mqtt_client_stats_get(const ea_mqtt_client *c, ea_mqtt_client_stats *out)
{
    *out = c->stats;
    out->keepalive_s = c->ka_s;
}

const char *ea_mqtt_client_last_error(const ea_mqtt_client *c)
{
    return c->last_error;
}

void ea_mqtt_client_abort(ea_mqtt_client *c)
{
    close_conn(c);
    c->state = ST_IDLE;
}

void ea_mqtt_client_disconnect(ea_mqtt_client *c)
{
    if (c->state == ST_UP) {
        ea_mqtt_packet p = {.type = EA_MQTT_DISCONNECT};
        if (tx_packet(c, &p) == 0) flush(c);
    }
    close_conn(c);
    c->state = ST_IDLE;
}

void ea_mqtt_client_free(ea_mqtt_client *c)
{
    if (!c) return;
    close_conn(c);
    cancel_timer(c, &c->refuse_timer);
    for (int i = 0; c->slots && i < c->n_slots; i++)
        free(c->slots[i].pkt);
    free(c->slots);
    for (int i = 0; i < c->n_subs; i++)
        free(c->subs[i].filter);
    free(c->rx);
    free(c->tx);
    ea_tls_config_free(c->tls_cfg);
    free((char *)c->cfg.host);
    free((char *)c->cfg.ca_file);
    free((char *)c->cfg.cert_file);
    free((char *)c->cfg.key_file);
    free((char *)c->cfg.client_id);
    free((char *)c->cfg.username);
    free((char *)c->cfg.password);
    free((char *)c->cfg.will_topic);
    free((char *)c->cfg.will_payload);
    free((char *)c->cfg.hosts_path);
    free((char *)c->cfg.resolv_path);
    free(c);
}
