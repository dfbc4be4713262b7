/*
 * test_mqtt_output.c: ea_output_mqtt as the core drives it, against a REAL mosquitto: offered
 * records are published once and acked by sequence number (a re-offer of records still in flight
 * publishes nothing twice), the status topic holds a retained "online" and after destroy a retained
 * "offline", control-topic messages reach the control event byte for byte, and report() publishes a
 * retained document under <status_topic>/<suffix>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "outputs/output.h"
#include "proto/mqtt_client.h"
#include "test_mqtt_broker.h"

#define N 500

typedef struct core {
    ea_output *out;
    ea_record_ref recs[N];
    char bodies[N][40];
    unsigned char acked[N];
    size_t n_acked, next, ups;
    char control[256];
    size_t control_len;
} core;

static void c_acked(void *arg, uint64_t seq)
{
    core *c = arg;
    assert_true(seq < N);
    if (!c->acked[seq]) {
        c->acked[seq] = 1;
        c->n_acked++;
    }
}

static void c_state(void *arg, int up, const char *why)
{
    (void)why;
    if (up) ((core *)arg)->ups++;
}

static void c_control(void *arg, const void *p, size_t len)
{
    core *c = arg;
    c->control_len = len < sizeof c->control ? len : sizeof c->control;
    memcpy(c->control, p, c->control_len);
}

typedef struct watcher {
    ea_mqtt_client *c;
    size_t data, distinct;
    unsigned char seen[N];
    char status[64], config_report[128];
    int status_retain;
} watcher;

static void w_message(void *arg, const char *topic, size_t tl, const void *p, size_t len, int qos,
                      int retain)
{
    (void)qos;
    watcher *w = arg;
    char t[128], body[128];
    snprintf(t, sizeof t, "%.*s", (int)tl, topic);
    snprintf(body, sizeof body, "%.*s", (int)len, (const char *)p);
    if (!strcmp(t, "site/data")) {
        unsigned id;
        w->data++;
        if (sscanf(body, "{\"id\":%u", &id) == 1 && id < N && !w->seen[id]) {
            w->seen[id] = 1;
            w->distinct++;
        }
    } else if (!strcmp(t, "site/data/status")) {
        snprintf(w->status, sizeof w->status, "%s", body);
        w->status_retain = retain;
    } else if (!strcmp(t, "site/data/status/config")) {
        snprintf(w->config_report, sizeof w->config_report, "%s", body);
    }
}

static int w_up(void *arg)
{
    return ea_mqtt_client_connected(((watcher *)arg)->c);
}

static void watcher_start(ea_loop *l, watcher *w, int port, const char *id)
{
    memset(w, 0, sizeof *w);
    ea_mqtt_client_config cfg = {
        .host = "127.0.0.1", .port = (uint16_t)port, .client_id = id, .clean_session = 1};
    ea_mqtt_client_events ev = {NULL, NULL, NULL, w_message, w};
    char err[256];
    w->c = ea_mqtt_client_new(l, &cfg, &ev, err, sizeof err);
    assert_non_null(w->c);
    ea_mqtt_client_subscribe(w->c, "site/data/#", 1); /* "#" also matches site/data itself */
    ea_mqtt_client_start(w->c);
    assert_true(test_run_until(l, w_up, w, 5000));
    test_run_until(l, NULL, NULL, 100);
}

/* Offers like the core: from `next`, and after every state change from the first unacked record
 * again (rewind), so records in flight are offered twice. */
static void core_idle(ea_loop *l, void *arg)
{
    (void)l;
    core *c = arg;
    if (c->next < N) c->next += ea_output_mqtt.offer(c->out, c->recs + c->next, N - c->next);
}

static int all_delivered(void *arg)
{
    void **pair = arg;
    core *c = pair[0];
    watcher *w = pair[1];
    return c->n_acked == N && w->distinct == N;
}

static int got_control(void *arg)
{
    return ((core *)arg)->control_len > 0;
}

static int got_report(void *arg)
{
    return ((watcher *)arg)->config_report[0] != '\0';
}

static int got_offline(void *arg)
{
    return !strcmp(((watcher *)arg)->status, "offline");
}

static int got_online(void *arg)
{
    return !strcmp(((watcher *)arg)->status, "online");
}

static void test_output_end_to_end(void **state)
{
    (void)state;
    test_broker b = {0};
    assert_int_equal(test_broker_start(&b, NULL), 0);
    ea_loop *l = ea_loop_new();
    watcher w;
    watcher_start(l, &w, b.port, "watcher");

    core *c = calloc(1, sizeof *c);
    for (size_t i = 0; i < N; i++) {
        int n = snprintf(c->bodies[i], sizeof c->bodies[i], "{\"id\":%zu}", i);
        c->recs[i] = (ea_record_ref){i, c->bodies[i], (size_t)n};
    }
    char url[96];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d/site/data", b.port);
    ea_output_config cfg = {
        .url = url, .client_id = "out-test", .control_topic = "site/control", .max_inflight = 32};
    ea_output_events ev = {.acked = c_acked, .state = c_state, .control = c_control, .arg = c};
    char err[256];
    c->out = ea_output_mqtt.create(&cfg, l, &ev, err, sizeof err);
    if (!c->out) fail_msg("create: %s", err);
    assert_int_equal(ea_output_mqtt.offer(c->out, c->recs, N), 0); /* not connected yet */

    assert_true(test_run_until(l, got_online, &w, 5000));
    assert_int_equal(w.status_retain, 0); /* live delivery of the retained publish */
    assert_int_equal(c->ups, 1);

    /* a re-offer of records still in the window is accepted without a second publish */
    size_t first = ea_output_mqtt.offer(c->out, c->recs, N);
    assert_true(first == 31 || first == 32); /* the window (one slot may still hold "online") */
    assert_int_equal(ea_output_mqtt.offer(c->out, c->recs, first), first);
    c->next = first;
    ea_loop_set_idle(l, core_idle, c);
    void *pair[2] = {c, &w};
    assert_true(test_run_until(l, all_delivered, pair, 20000));
    ea_loop_set_idle(l, NULL, NULL);
    test_run_until(l, NULL, NULL, 100);
    assert_int_equal(w.data, N); /* each record published exactly once */

    /* control topic -> control event, byte for byte */
    static const char doc[] = "{\"payload\":\"e30=\",\"signature\":\"QQ==\"}";
    assert_int_equal(ea_mqtt_client_publish(w.c, "site/control", doc, sizeof doc - 1, 1, 0, 1), 1);
    assert_true(test_run_until(l, got_control, c, 5000));
    assert_int_equal(c->control_len, sizeof doc - 1);
    assert_memory_equal(c->control, doc, sizeof doc - 1);

    /* report -> <status_topic>/config, retained */
    ea_output_mqtt.report(c->out, "config", "{\"status\":\"applied\",\"version\":3}", 32);
    assert_true(test_run_until(l, got_report, &w, 5000));
    assert_string_equal(w.config_report, "{\"status\":\"applied\",\"version\":3}");

    uint64_t retries = 99, reconnects = 99;
    ea_output_mqtt.stats(c->out, &retries, &reconnects);
    assert_int_equal(retries, 0);
    assert_int_equal(reconnects, 0);

    /* clean shutdown: the output says "offline" itself (DISCONNECT discards the will) */
    ea_output_mqtt.destroy(c->out);
    assert_true(test_run_until(l, got_offline, &w, 5000));

    /* both retained documents are there for a late subscriber */
    watcher late;
    watcher_start(l, &late, b.port, "late");
    test_run_until(l, got_report, &late, 2000);
    assert_string_equal(late.status, "offline");
    assert_int_equal(late.status_retain, 1);
    assert_string_equal(late.config_report, "{\"status\":\"applied\",\"version\":3}");

    ea_mqtt_client_free(w.c);
    ea_mqtt_client_free(late.c);
    free(c);
    ea_loop_free(l);
    test_broker_stop(&b);
}

static void test_output_config_errors(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    char err[256];
    ea_output_config cfg = {.url = "mqtt://127.0.0.1:1883"};
    assert_null(ea_output_mqtt.create(&cfg, l, NULL, err, sizeof err));
    assert_non_null(strstr(err, "no topic"));
    cfg.url = "http://127.0.0.1/x";
    assert_null(ea_output_mqtt.create(&cfg, l, NULL, err, sizeof err));
    assert_non_null(strstr(err, "mqtt://"));
    cfg.url = "mqtt://127.0.0.1/t";
    cfg.control_topic = "bad/#/filter";
    assert_null(ea_output_mqtt.create(&cfg, l, NULL, err, sizeof err));
    assert_non_null(strstr(err, "control topic"));
    ea_loop_free(l);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_end_to_end),
        cmocka_unit_test(test_output_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
