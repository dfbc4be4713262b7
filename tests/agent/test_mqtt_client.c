/*
 * test_mqtt_client.c: the MQTT client against a REAL mosquitto broker started by the test.
 * Publishing 10k QoS 1 through the window, persistent sessions, re-send of unacknowledged
 * publishes after a reconnect, the last will, keepalive pings, and a broker restart.
 * Received messages are counted by a second client of ours subscribed to the topic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_mqtt_broker.h"
#include "test_mqtt_peer.h"

#define N_MSGS 10000
_Static_assert(N_MSGS <= TEST_PEER_SEEN, "peer.seen tracks every message");

static void test_publish_10k_qos1_window(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer pub, sub;
    peer_new(l, &sub, b.port, "t-sub", 1, NULL);
    peer_subscribe(&sub, "t/data");
    peer_connect(l, &sub);
    peer_new(l, &pub, b.port, "t-pub", 1, NULL);
    peer_connect(l, &pub);

    pump pm = {&pub, "t/data", 0, N_MSGS, &sub};
    run_pump(l, &pm);
    assert_int_equal(pub.acked, N_MSGS);
    assert_int_equal(sub.received_distinct, N_MSGS);
    assert_int_equal(ea_mqtt_client_window_free(pub.c), 64); /* window empty again */
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(st.published, N_MSGS);
    assert_int_equal(st.resent, 0);
    assert_int_equal(pub.disconnects, 0);

    /* window: with the loop not running, at most 64 QoS 1 publishes are accepted */
    int accepted = 0;
    for (int i = 0; i < 100; i++)
        accepted += ea_mqtt_client_publish(pub.c, "t/data", "x", 1, 1, 0, (uint64_t)i);
    assert_int_equal(accepted, 64);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/data", "x", 1, 0, 0, 0),
                     1); /* QoS 0 needs no slot */

    peer_test_end(&b, l, &pub, &sub, NULL);
}

static void test_persistent_session_queues_while_away(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer sub, pub;
    peer_new(l, &sub, b.port, "t-persist", 0, NULL);
    peer_subscribe(&sub, "t/data");
    peer_connect(l, &sub);
    ea_mqtt_client_disconnect(sub.c); /* session (subscription) stays on the broker */

    peer_new(l, &pub, b.port, "t-pub2", 1, NULL);
    peer_connect(l, &pub);
    publish_n(&pub, "t/data", 0, 64);
    pub.want_acked = 64;
    assert_true(test_run_until(l, acked_enough, &pub, 10000));
    assert_int_equal(sub.received, 0);

    ea_mqtt_client_start(sub.c); /* same client id, clean_session 0: queued messages arrive */
    sub.want_received = 64;
    assert_true(test_run_until(l, received_enough, &sub, 10000));
    assert_int_equal(sub.session_present, 1);
    assert_int_equal(sub.received_distinct, 64);
    test_run_until(l, NULL, NULL, 200); /* our PUBACKs reach the broker */

    /* every message was PUBACKed: a second resume of the session redelivers nothing */
    ea_mqtt_client_disconnect(sub.c);
    uint64_t before = sub.received;
    ea_mqtt_client_start(sub.c);
    assert_true(test_run_until(l, is_connected, &sub, 5000));
    test_run_until(l, NULL, NULL, 300);
    assert_int_equal(sub.session_present, 1);
    assert_int_equal(sub.received, before);

    peer_test_end(&b, l, &pub, &sub, NULL);
}

static void test_unacked_resent_with_dup_after_reconnect(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer sub, pub;
    peer_new(l, &sub, b.port, "t-sub3", 1, NULL);
    peer_subscribe(&sub, "t/data");
    peer_connect(l, &sub);
    peer_new(l, &pub, b.port, "t-pub3", 0, NULL);
    peer_connect(l, &pub);

    publish_n(&pub, "t/data", 0, 64); /* fills the window; queued, not yet written */
    ea_mqtt_client_abort(pub.c);      /* connection lost before any PUBACK */
    assert_int_equal(ea_mqtt_client_window_free(pub.c), 0); /* the window still holds them */
    ea_mqtt_client_start(pub.c);
    pub.want_acked = 64;
    assert_true(test_run_until(l, acked_enough, &pub, 10000));
    /* all 64 were re-sent with DUP and their original ids, then acknowledged */
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(st.resent, 64);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(pub.acked, 64);
    test_run_until(l, NULL, NULL, 200);
    /* every re-sent message reached the subscriber */
    for (unsigned i = 0; i < 64; i++)
        assert_int_equal(sub.seen[i], 1);

    peer_test_end(&b, l, &pub, &sub, NULL);
}

static void test_last_will_retained_offline(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer dev, watcher, late;
    peer_new(l, &dev, b.port, "t-dev", 0, "t/status");
    peer_connect(l, &dev);
    assert_int_equal(ea_mqtt_client_publish(dev.c, "t/status", "online", 6, 1, 1, 0), 1);
    peer_new(l, &watcher, b.port, "t-watch", 1, NULL);
    peer_subscribe(&watcher, "t/status");
    peer_connect(l, &watcher);
    test_run_until(l, NULL, NULL, 100);
    assert_string_equal(watcher.last_payload, "online");

    ea_mqtt_client_abort(
        dev.c); /* socket closed without DISCONNECT: the broker publishes the will */
    assert_true(test_run_until(l, got_offline, &watcher, 5000));

    /* retained: a client subscribing later still sees "offline" with the retain flag */
    peer_new(l, &late, b.port, "t-late", 1, NULL);
    peer_subscribe(&late, "t/status");
    ea_mqtt_client_start(late.c);
    assert_true(test_run_until(l, got_offline, &late, 5000));
    assert_int_equal(late.last_retain, 1);

    peer_test_end(&b, l, &dev, &watcher, &late, NULL);
}

static void test_keepalive_pings_keep_the_session(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer p;
    ea_mqtt_client_config cfg = {
        .host = "127.0.0.1", .port = (uint16_t)b.port, .client_id = "t-ka", .keepalive_s = 1};
    peer_new_cfg(l, &p, &cfg);
    peer_connect(l, &p);
    /* idle for 3.5 keepalive periods: mosquitto drops a client silent for 1.5 periods */
    test_run_until(l, NULL, NULL, 3500);
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(p.c, &st);
    assert_true(st.pings >= 3);
    assert_int_equal(p.disconnects, 0);
    assert_true(ea_mqtt_client_connected(p.c));
    peer_test_end(&b, l, &p, NULL);
}

/* A broker that stops answering (SIGSTOP: the kernel keeps the TCP connection open, nothing
 * replies) is detected by the missing PINGRESP, and the client reconnects once it is back. */
static void test_keepalive_detects_frozen_broker(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer p;
    ea_mqtt_client_config cfg = {.host = "127.0.0.1",
                                 .port = (uint16_t)b.port,
                                 .client_id = "t-frozen",
                                 .keepalive_s = 1,
                                 .backoff_min_ms = 50,
                                 .backoff_max_ms = 200,
                                 .connect_timeout_ms = 500};
    peer_new_cfg(l, &p, &cfg);
    peer_connect(l, &p);
    kill(b.pid, SIGSTOP);
    assert_true(test_run_until(l, has_disconnected, &p, 10000));
    assert_non_null(strstr(p.last_why, "keepalive: no PINGRESP"));
    kill(b.pid, SIGCONT);
    assert_true(test_run_until(l, is_connected, &p, 10000));
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(p.c, &st);
    assert_true(st.reconnects >= 1);
    peer_test_end(&b, l, &p, NULL);
}

static int connected_and_acked_50(void *arg)
{
    peer *p = arg;
    return ea_mqtt_client_connected(p->c) && p->acked >= 50;
}

static void test_broker_restart_reconnects_and_resends(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer p;
    peer_new(l, &p, b.port, "t-restart", 0, NULL);
    peer_connect(l, &p);
    publish_n(&p, "t/data", 0, 50);
    test_broker_kill(&b, SIGKILL);      /* before any of the 50 could be acknowledged */
    test_run_until(l, NULL, NULL, 800); /* the client notices and retries with backoff */
    assert_false(ea_mqtt_client_connected(p.c));
    assert_true(p.disconnects >= 2); /* the lost connection + at least one refused retry */
    assert_non_null(strstr(p.last_why, "refused"));
    assert_int_equal(test_broker_start(&b, NULL), 0);
    assert_true(test_run_until(l, connected_and_acked_50, &p, 10000));
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(p.c, &st);
    assert_true(st.resent >= 50);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(p.acked, 50);
    peer_test_end(&b, l, &p, NULL);
}

/* CONNACK refusals are reported with the broker's reason; the right password connects. */
static void test_credentials_checked_by_broker(void **state)
{
    (void)state;
    test_broker b = {0};
    char pw[160], cmd[256], extra[256];
    snprintf(b.dir, sizeof b.dir, "/tmp/ea-broker-XXXXXX");
    assert_non_null(mkdtemp(b.dir));
    b.port = test_free_port();
    snprintf(pw, sizeof pw, "%s/passwd", b.dir);
    snprintf(cmd, sizeof cmd, "mosquitto_passwd -c -b '%s' edge s3cret", pw);
    assert_int_equal(system(cmd), 0);
    snprintf(extra, sizeof extra, "password_file %s\nallow_anonymous false\n", pw);
    ea_loop *l = peer_test_begin(&b, extra);
    peer p;
    ea_mqtt_client_config cfg = {.host = "127.0.0.1",
                                 .port = (uint16_t)b.port,
                                 .client_id = "t-auth",
                                 .username = "edge",
                                 .password = "wrong",
                                 .backoff_min_ms = 5000};
    peer_new_cfg(l, &p, &cfg);
    ea_mqtt_client_start(p.c);
    assert_true(test_run_until(l, has_disconnected, &p, 5000));
    assert_non_null(strstr(p.last_why, "broker refused the connection: not authorized"));
    assert_int_equal(p.connects, 0);
    ea_mqtt_client_free(p.c);
    cfg.password = "s3cret";
    peer_new_cfg(l, &p, &cfg);
    peer_connect(l, &p);
    peer_test_end(&b, l, &p, NULL);
}

/* A message over max_packet (e.g. a hostile one on the control topic) is dropped and PUBACKed;
 * the connection stays up, later messages arrive, and the persistent session does not redeliver
 * it (which would otherwise cut the uplink after every reconnect). */
static void test_oversized_publish_dropped_not_fatal(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer sub, pub;
    ea_mqtt_client_config cfg = {.host = "127.0.0.1",
                                 .port = (uint16_t)b.port,
                                 .client_id = "t-small",
                                 .max_packet = 100 * 1024,
                                 .backoff_min_ms = 50};
    peer_new_cfg(l, &sub, &cfg);
    peer_subscribe(&sub, "t/big");
    peer_connect(l, &sub);
    peer_new(l, &pub, b.port, "t-bigpub", 1, NULL);
    peer_connect(l, &pub);
    size_t big = 300 * 1024;
    char *payload = malloc(big);
    memset(payload, 'x', big);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/big", payload, big, 1, 0, 1), 1);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/big", "after", 5, 1, 0, 2), 1);
    assert_true(test_run_until(l, got_after, &sub, 10000));
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(sub.c, &st);
    assert_int_equal(st.oversized, 1);
    assert_int_equal(sub.received, 1); /* only "after" was delivered to the callback */
    assert_int_equal(sub.disconnects, 0);
    assert_non_null(strstr(ea_mqtt_client_last_error(sub.c), "dropped a 307"));
    test_run_until(l, NULL, NULL, 200);
    ea_mqtt_client_disconnect(
        sub.c); /* resume: the dropped message was PUBACKed, not redelivered */
    ea_mqtt_client_start(sub.c);
    assert_true(test_run_until(l, is_connected, &sub, 5000));
    test_run_until(l, NULL, NULL, 300);
    ea_mqtt_client_stats_get(sub.c, &st);
    assert_int_equal(st.oversized, 1);
    assert_int_equal(sub.received, 1);
    free(payload);
    peer_test_end(&b, l, &sub, &pub, NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_10k_qos1_window),
        cmocka_unit_test(test_persistent_session_queues_while_away),
        cmocka_unit_test(test_unacked_resent_with_dup_after_reconnect),
        cmocka_unit_test(test_last_will_retained_offline),
        cmocka_unit_test(test_keepalive_pings_keep_the_session),
        cmocka_unit_test(test_broker_restart_reconnects_and_resends),
        cmocka_unit_test(test_keepalive_detects_frozen_broker),
        cmocka_unit_test(test_credentials_checked_by_broker),
        cmocka_unit_test(test_oversized_publish_dropped_not_fatal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
