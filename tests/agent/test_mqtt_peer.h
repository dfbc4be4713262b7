/*
 * test_mqtt_peer.h: an MQTT test "peer" shared by the MQTT client tests: one of our clients
 * (ea_mqtt_client) whose events are counted (connects, disconnects and why, PUBACKs with their
 * reason codes, messages received and which m-<index> payloads were seen), with the predicates the
 * tests run the loop until, and a pump that publishes m-<i> as fast as the window allows.
 * Header-only (static functions) because each test file is its own executable; include it after
 * test_mqtt_broker.h and cmocka.h.
 *
 * peer_new() makes a client speaking TEST_PEER_MQTT_VERSION (define it before the include;
 * default 0, i.e. MQTT 3.1.1).
 */
#ifndef TEST_MQTT_PEER_H
#define TEST_MQTT_PEER_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/mqtt_client.h"
#include "test_mqtt_broker.h"

#ifndef TEST_PEER_MQTT_VERSION
#define TEST_PEER_MQTT_VERSION 0
#endif

#define TEST_PEER_SEEN 10000 /* message indexes tracked in peer.seen */

typedef struct peer {
    ea_mqtt_client *c;
    int connects, disconnects, session_present;
    uint64_t acked, received, received_distinct, published;
    uint64_t refused_tags, max_unacked; /* PUBACKs with a reason >= 0x80; most in flight at once */
    int last_ack_reason;
    unsigned char seen[TEST_PEER_SEEN]; /* by message index */
    char last_payload[64];
    int last_retain;
    char last_why[256];
    int subscribed;                     /* peer_connect waits for its SUBACK */
    uint64_t want_acked, want_received; /* for acked_enough / received_enough */
} peer;

static __attribute__((unused)) void peer_connected(void *arg, int session_present)
{
    peer *p = arg;
    p->connects++;
    p->session_present = session_present;
}

static __attribute__((unused)) void peer_disconnected(void *arg, const char *why)
{
    peer *p = arg;
    p->disconnects++;
    snprintf(p->last_why, sizeof p->last_why, "%s", why);
}

static __attribute__((unused)) void peer_acked(void *arg, uint64_t tag)
{
    (void)tag;
    peer *p = arg;
    p->last_ack_reason = ea_mqtt_client_ack_reason(p->c);
    if (p->last_ack_reason >= 0x80)
        p->refused_tags++;
    else
        p->acked++;
}

static __attribute__((unused)) void peer_message(void *arg, const char *topic, size_t topic_len,
                                                 const void *payload, size_t len, int qos,
                                                 int retain)
{
    (void)topic;
    (void)topic_len;
    (void)qos;
    peer *p = arg;
    p->received++;
    p->last_retain = retain;
    snprintf(p->last_payload, sizeof p->last_payload, "%.*s", (int)len, (const char *)payload);
    unsigned idx;
    if (sscanf(p->last_payload, "m-%u", &idx) == 1 && idx < sizeof p->seen && !p->seen[idx]) {
        p->seen[idx] = 1;
        p->received_distinct++;
    }
}

/* A client with the peer's events; fails the test if it cannot be made. */
static __attribute__((unused)) ea_mqtt_client *peer_new_cfg(ea_loop *l, peer *p,
                                                            const ea_mqtt_client_config *cfg)
{
    memset(p, 0, sizeof *p);
    ea_mqtt_client_events ev = {peer_connected, peer_disconnected, peer_acked, peer_message, p};
    char err[256];
    p->c = ea_mqtt_client_new(l, cfg, &ev, err, sizeof err);
    if (!p->c) fail_msg("client: %s", err);
    return p->c;
}

/* The usual test client: keepalive 30 s, a window of 64, a retained QoS 1 will "offline" on
 * will_topic (if not NULL), quick reconnects. */
static __attribute__((unused)) ea_mqtt_client *
peer_new(ea_loop *l, peer *p, int port, const char *id, int clean, const char *will_topic)
{
    ea_mqtt_client_config cfg = {
        .host = "127.0.0.1",
        .port = (uint16_t)port,
        .client_id = id,
        .clean_session = clean,
        .keepalive_s = 30,
        .will_topic = will_topic,
        .will_payload = "offline",
        .will_retain = 1,
        .will_qos = 1,
        .max_inflight = 64,
        .backoff_min_ms = 50,
        .backoff_max_ms = 400,
        .version = TEST_PEER_MQTT_VERSION,
    };
    return peer_new_cfg(l, p, &cfg);
}

/* Subscribes (QoS 1) before peer_connect, which then waits for the SUBACK. */
static __attribute__((unused)) void peer_subscribe(peer *p, const char *filter)
{
    assert_int_equal(ea_mqtt_client_subscribe(p->c, filter, 1), 0);
    p->subscribed++;
}

static __attribute__((unused)) int is_connected(void *arg)
{
    return ea_mqtt_client_connected(((peer *)arg)->c);
}

/* Connected and, for a subscriber, its SUBACKs in (the subscriptions are active). */
static __attribute__((unused)) int is_ready(void *arg)
{
    peer *p = arg;
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(p->c, &st);
    return ea_mqtt_client_connected(p->c) && st.subacks >= (uint64_t)(p->subscribed ? 1 : 0);
}

static __attribute__((unused)) void peer_connect(ea_loop *l, peer *p)
{
    ea_mqtt_client_start(p->c);
    if (!test_run_until(l, is_ready, p, 5000)) fail_msg("not connected: %s", p->last_why);
}

static __attribute__((unused)) int acked_enough(void *arg)
{
    peer *p = arg;
    return p->acked >= p->want_acked;
}

static __attribute__((unused)) int received_enough(void *arg)
{
    peer *p = arg;
    return p->received_distinct >= p->want_received;
}

static __attribute__((unused)) int has_disconnected(void *arg)
{
    return ((peer *)arg)->disconnects > 0;
}

static __attribute__((unused)) int got_offline(void *arg)
{
    return strcmp(((peer *)arg)->last_payload, "offline") == 0;
}

static __attribute__((unused)) int got_after(void *arg)
{
    return strcmp(((peer *)arg)->last_payload, "after") == 0;
}

/* A test's broker (extra: more mosquitto.conf lines, or NULL) and event loop. */
static __attribute__((unused)) ea_loop *peer_test_begin(test_broker *b, const char *extra)
{
    assert_int_equal(test_broker_start(b, extra), 0);
    return ea_loop_new();
}

/* The end of a test: frees the clients of the peers listed (up to NULL), the loop, the broker. */
static __attribute__((unused, sentinel)) void peer_test_end(test_broker *b, ea_loop *l, ...)
{
    va_list ap;
    va_start(ap, l);
    for (peer *p; (p = va_arg(ap, peer *)) != NULL;)
        ea_mqtt_client_free(p->c);
    va_end(ap);
    ea_loop_free(l);
    test_broker_stop(b);
}

/* Publishes m-<i> (QoS 1, tag i) for from <= i < from + n; each must be accepted. */
static __attribute__((unused)) void publish_n(peer *p, const char *topic, unsigned from, unsigned n)
{
    char msg[32];
    for (unsigned i = from; i < from + n; i++) {
        int len = snprintf(msg, sizeof msg, "m-%06u", i);
        assert_int_equal(ea_mqtt_client_publish(p->c, topic, msg, (size_t)len, 1, 0, i), 1);
        p->published++;
    }
}

/* Publishes m-<i> for i < total as the window allows, tracking the most unacknowledged at once. */
typedef struct pump {
    peer *pub;
    const char *topic;
    unsigned next, total;
    peer *sub; /* NULL: only acks are awaited */
} pump;

static __attribute__((unused)) void pump_idle(ea_loop *l, void *arg)
{
    (void)l;
    pump *pm = arg;
    char msg[32];
    while (pm->next < pm->total) {
        int n = snprintf(msg, sizeof msg, "m-%06u", pm->next);
        if (!ea_mqtt_client_publish(pm->pub->c, pm->topic, msg, (size_t)n, 1, 0, pm->next)) break;
        pm->next++;
        pm->pub->published++;
        uint64_t unacked = pm->pub->published - pm->pub->acked - pm->pub->refused_tags;
        if (unacked > pm->pub->max_unacked) pm->pub->max_unacked = unacked;
    }
}

static __attribute__((unused)) int pump_done(void *arg)
{
    pump *pm = arg;
    return pm->pub->acked + pm->pub->refused_tags >= pm->total &&
           (!pm->sub || pm->sub->received_distinct >= pm->total);
}

/* Runs the pump until every publish is acknowledged (and, with a sub, received); 60 s at most. */
static __attribute__((unused)) void run_pump(ea_loop *l, pump *pm)
{
    ea_loop_set_idle(l, pump_idle, pm);
    int ok = test_run_until(l, pump_done, pm, 60000);
    ea_loop_set_idle(l, NULL, NULL);
    if (!ok)
        fail_msg("acked %llu of %u, received %llu; last: %s", (unsigned long long)pm->pub->acked,
                 pm->total, pm->sub ? (unsigned long long)pm->sub->received_distinct : 0ull,
                 pm->pub->last_why);
}

#endif
