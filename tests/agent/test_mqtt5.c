/*
 * test_mqtt5.c: the client speaking MQTT 5 to a REAL mosquitto broker started by the test
 * (mosquitto 2.0 speaks 5.0): QoS 1 publishes arriving at mosquitto_sub -V mqttv5, the persistent
 * session (Session Expiry) across a reconnect, re-send with DUP, the last will on an unclean drop,
 * and the limits a broker sets in its CONNACK (Receive Maximum from max_inflight_messages, Maximum
 * Packet Size from max_packet_size, Server Keep Alive from max_keepalive), PUBACK reason codes
 * (ACL refusal 0x87 is not retried, "no matching subscribers" 0x10 is a delivery), DISCONNECT and
 * CONNACK reasons, an Assigned Client Identifier reused, the error against a 3.1.1-only server (a
 * stand-in: mosquitto speaks 5), and the agent itself with uplink and MQTT input both on MQTT 5.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proto/mqtt_codec.h"
#include "test_mqtt_broker.h"
#define TEST_PEER_MQTT_VERSION 5
#include "test_mqtt_peer.h"
#include "test_agent_child.h"

/* Runs a shell command, returns its stdout (first outlen-1 bytes) and exit status. */
static int run_cmd(const char *cmd, char *out, size_t outlen)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int broker_log_has(const test_broker *b, const char *what)
{
    char path[128], buf[65536];
    snprintf(path, sizeof path, "%s/mosquitto.log", b->dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, what) != NULL;
}

/* A broker (extra: more mosquitto.conf lines, or NULL), a loop, a subscriber to topic (clean
 * session) and a publisher (persistent session), both connected and the subscription active. */
static ea_loop *sub_pub_start(test_broker *b, const char *extra, peer *sub, const char *sub_id,
                              const char *topic, peer *pub, const char *pub_id)
{
    ea_loop *l = peer_test_begin(b, extra);
    peer_new(l, sub, b->port, sub_id, 1, NULL);
    peer_subscribe(sub, topic);
    peer_connect(l, sub);
    peer_new(l, pub, b->port, pub_id, 0, NULL);
    peer_connect(l, pub);
    return l;
}

/* A broker whose ACL file holds acl_lines, plus extra mosquitto.conf lines (or ""). */
static void broker_start_with_acl(test_broker *b, const char *acl_lines, const char *extra)
{
    char acl[160], conf[256];
    snprintf(b->dir, sizeof b->dir, "/tmp/ea-broker-XXXXXX");
    assert_non_null(mkdtemp(b->dir));
    b->port = test_free_port();
    snprintf(acl, sizeof acl, "%s/acl", b->dir);
    FILE *f = fopen(acl, "w");
    assert_non_null(f);
    fputs(acl_lines, f);
    fclose(f);
    snprintf(conf, sizeof conf, "acl_file %s\n%s", acl, extra);
    assert_int_equal(test_broker_start(b, conf), 0);
}

/* ------------------------------------------------------------------ tests */

/* QoS 1 publishes over MQTT 5 reach a mosquitto_sub speaking MQTT 5. Its persistent session is
 * made first (-E: subscribe and exit), so nothing depends on when it would have subscribed. */
static void test_v5_publish_qos1_reaches_mosquitto_sub(void **state)
{
    (void)state;
    enum { N = 1000 };
    test_broker b = {0};
    assert_int_equal(test_broker_start(&b, NULL), 0);
    char cmd[512], out[65536];
    snprintf(cmd, sizeof cmd,
             "mosquitto_sub -V mqttv5 -h 127.0.0.1 -p %d -i v5-watch -c -x 600 -q 1 -t t/v5 -E",
             b.port);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);

    ea_loop *l = ea_loop_new();
    peer pub;
    peer_new(l, &pub, b.port, "t-v5pub", 0, NULL);
    assert_int_equal(ea_mqtt_client_version(pub.c), 5);
    peer_connect(l, &pub);
    assert_true(broker_log_has(&b, "as t-v5pub (p5, c0, k30)")); /* MQTT 5, Clean Start 0 */
    pump pm = {&pub, "t/v5", 0, N, NULL};
    run_pump(l, &pm);
    assert_int_equal(pub.acked, N);
    assert_int_equal(pub.disconnects, 0);

    snprintf(cmd, sizeof cmd,
             "mosquitto_sub -V mqttv5 -h 127.0.0.1 -p %d -i v5-watch -c -x 600 -q 1 -t t/v5 "
             "-C %d -W 30",
             b.port, N);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    unsigned char seen[N] = {0};
    unsigned distinct = 0, idx;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        if (sscanf(line, "m-%u", &idx) == 1 && idx < N && !seen[idx]) {
            seen[idx] = 1;
            distinct++;
        }
    assert_int_equal(distinct, N);

    peer_test_end(&b, l, &pub, NULL);
}

/* MQTT 5 keeps a session only as long as its Session Expiry Interval: the client asks for one
 * that does not expire, so messages published while it is away wait for it. */
static void test_v5_persistent_session_across_reconnect(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer sub, pub;
    peer_new(l, &sub, b.port, "t-v5sub", 0, NULL);
    peer_subscribe(&sub, "t/q");
    peer_connect(l, &sub);
    assert_int_equal(sub.session_present, 0);
    ea_mqtt_client_abort(sub.c); /* away */

    peer_new(l, &pub, b.port, "t-v5pub2", 1, NULL);
    peer_connect(l, &pub);
    pump pm = {&pub, "t/q", 0, 100, NULL};
    run_pump(l, &pm);

    ea_mqtt_client_start(sub.c);
    sub.want_received = 100;
    assert_true(test_run_until(l, received_enough, &sub, 10000));
    assert_int_equal(sub.session_present, 1);
    assert_int_equal(sub.received_distinct, 100);

    peer_test_end(&b, l, &pub, &sub, NULL);
}

static void test_v5_unacked_resent_with_dup_after_reconnect(void **state)
{
    (void)state;
    test_broker b = {0};
    peer sub, pub;
    ea_loop *l = sub_pub_start(&b, NULL, &sub, "t-v5sub3", "t/data", &pub, "t-v5pub3");
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(pub.c, &st);
    int window = ea_mqtt_client_window_free(pub.c);
    assert_true(window >= 1 && window <= 64);

    publish_n(&pub, "t/data", 0, (unsigned)window); /* queued, not yet written */
    ea_mqtt_client_abort(pub.c);                    /* connection lost before any PUBACK */
    assert_int_equal(ea_mqtt_client_window_free(pub.c), 0);
    ea_mqtt_client_start(pub.c);
    pub.want_acked = sub.want_received = (uint64_t)window;
    assert_true(test_run_until(l, acked_enough, &pub, 10000));
    assert_true(test_run_until(l, received_enough, &sub, 10000));
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(pub.acked, window);
    assert_int_equal(st.resent, window);
    assert_int_equal(st.reconnects, 1);
    for (int i = 0; i < window; i++)
        assert_int_equal(sub.seen[i], 1);

    peer_test_end(&b, l, &pub, &sub, NULL);
}

static int got_online(void *arg)
{
    return strcmp(((peer *)arg)->last_payload, "online") == 0;
}

static int got_marker(void *arg)
{
    return strcmp(((peer *)arg)->last_payload, "marker") == 0;
}

static void test_v5_last_will_on_unclean_drop(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer dev, watcher;
    peer_new(l, &dev, b.port, "t-v5dev", 0, "t/status");
    peer_connect(l, &dev);
    assert_int_equal(ea_mqtt_client_publish(dev.c, "t/status", "online", 6, 1, 1, 0), 1);
    peer_new(l, &watcher, b.port, "t-v5watch", 1, NULL);
    peer_subscribe(&watcher, "t/status");
    peer_connect(l, &watcher);
    assert_true(test_run_until(l, got_online, &watcher, 5000));

    ea_mqtt_client_abort(dev.c); /* no DISCONNECT: the broker publishes the will */
    assert_true(test_run_until(l, got_offline, &watcher, 5000));

    /* retained, as seen by an MQTT 5 mosquitto_sub */
    char cmd[256], out[256];
    snprintf(cmd, sizeof cmd,
             "mosquitto_sub -V mqttv5 -h 127.0.0.1 -p %d -q 1 -t t/status -C 1 -W 10 -F '%%r %%p'",
             b.port);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_string_equal(out, "1 offline\n");

    /* a clean DISCONNECT (reason 0x00) does not publish the will: a retained will would reach
     * a later subscriber before anything published after its SUBSCRIBE ("marker") */
    peer dev2;
    peer_new(l, &dev2, b.port, "t-v5dev2", 0, "t/status2");
    peer_connect(l, &dev2);
    ea_mqtt_client_disconnect(dev2.c);
    uint64_t before = watcher.received;
    assert_int_equal(ea_mqtt_client_subscribe(watcher.c, "t/status2", 1), 0);
    assert_int_equal(ea_mqtt_client_publish(watcher.c, "t/status2", "marker", 6, 1, 0, 1), 1);
    assert_true(test_run_until(l, got_marker, &watcher, 5000));
    assert_int_equal(watcher.received, before + 1); /* the marker only */

    peer_test_end(&b, l, &dev, &dev2, &watcher, NULL);
}

/* mosquitto announces max_inflight_messages as Receive Maximum: with a window of 64 the client
 * never has more than 5 unacknowledged, also when re-sending after a reconnect. */
static void test_v5_receive_maximum_honoured(void **state)
{
    (void)state;
    test_broker b = {0};
    peer sub, pub;
    ea_loop *l =
        sub_pub_start(&b, "max_inflight_messages 5\n", &sub, "t-rmsub", "t/rm", &pub, "t-rmpub");
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(st.server_receive_maximum, 5);
    assert_int_equal(ea_mqtt_client_window_free(pub.c), 5);

    pump pm = {&pub, "t/rm", 0, 2000, &sub};
    run_pump(l, &pm);
    assert_true(pub.max_unacked <= 5);
    assert_int_equal(pub.max_unacked, 5);
    assert_int_equal(pub.acked, 2000);
    assert_int_equal(pub.disconnects, 0);

    /* five in flight, connection lost, re-sent under the same limit */
    memset(sub.seen, 0, sizeof sub.seen);
    sub.received_distinct = 0;
    pub.acked = pub.published = 0;
    publish_n(&pub, "t/rm", 0, 5);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/rm", "x", 1, 1, 0, 99), 0); /* full */
    ea_mqtt_client_abort(pub.c);
    ea_mqtt_client_start(pub.c);
    pump pm2 = {&pub, "t/rm", 5, 200, &sub};
    run_pump(l, &pm2);
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(st.resent, 5);
    assert_true(pub.max_unacked <= 5);
    assert_int_equal(pub.disconnects, 0);

    peer_test_end(&b, l, &pub, &sub, NULL);
}

static int acked_or_refused_2(void *arg)
{
    peer *p = arg;
    return p->acked + p->refused_tags >= 2;
}

static int acked_or_refused_3(void *arg)
{
    peer *p = arg;
    return p->acked + p->refused_tags >= 3;
}

/* mosquitto announces max_packet_size as Maximum Packet Size: a bigger record is refused by the
 * client (0x95, counted), never sent, so the broker does not disconnect us for it. */
static void test_v5_maximum_packet_size_honoured(void **state)
{
    (void)state;
    test_broker b = {0};
    peer sub, pub;
    ea_loop *l =
        sub_pub_start(&b, "max_packet_size 1024\n", &sub, "t-mpsub", "t/mp", &pub, "t-mppub");
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(st.server_maximum_packet, 1024);

    static char big[2000];
    memset(big, 'x', sizeof big);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/mp", "before", 6, 1, 0, 1), 1);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/mp", big, sizeof big, 1, 0, 2), 1);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/mp", "after", 5, 1, 0, 3), 1);
    assert_true(test_run_until(l, acked_or_refused_3, &pub, 5000));
    assert_true(test_run_until(l, got_after, &sub, 5000));
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(st.too_large, 1);
    assert_int_equal(pub.refused_tags, 1);
    assert_int_equal(pub.acked, 2);
    assert_int_equal(sub.received, 2); /* before, after: the big one never left */
    assert_int_equal(pub.disconnects, 0);
    assert_true(ea_mqtt_client_connected(pub.c));
    /* exactly at the limit still goes: 1024 bytes in all */
    ea_mqtt_packet p = {.type = EA_MQTT_PUBLISH, .version = EA_MQTT_V5};
    p.u.publish.topic = ea_mqtt_cstr("t/mp");
    p.u.publish.qos = 1;
    p.u.publish.packet_id = 1;
    size_t overhead = ea_mqtt_encode(&p, NULL, 0) + 1; /* the length field grows to 2 bytes */
    pub.acked = pub.refused_tags = 0;
    sub.received = 0;
    sub.last_payload[0] = '\0';
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/mp", big, 1024 - overhead, 1, 0, 4), 1);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/mp", "after", 5, 1, 0, 5), 1);
    assert_true(test_run_until(l, acked_or_refused_2, &pub, 5000));
    assert_true(test_run_until(l, got_after, &sub, 5000));
    assert_int_equal(pub.acked, 2);
    assert_int_equal(pub.refused_tags, 0);
    assert_int_equal(sub.received, 2);
    assert_int_equal(pub.disconnects, 0);

    peer_test_end(&b, l, &pub, &sub, NULL);
}

/* An ACL refusal comes back as PUBACK 0x87: reported once, counted, never re-sent (not even
 * after a reconnect); "no matching subscribers" (0x10) is a delivery. */
static void test_v5_puback_refusal_not_retried(void **state)
{
    (void)state;
    test_broker b = {0};
    broker_start_with_acl(&b, "topic readwrite t/ok/#\n", "");
    ea_loop *l = ea_loop_new();
    peer pub;
    peer_new(l, &pub, b.port, "t-aclpub", 0, NULL);
    peer_connect(l, &pub);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/denied", "m-000001", 8, 1, 0, 1), 1);
    assert_int_equal(ea_mqtt_client_publish(pub.c, "t/ok/nobody", "m-000002", 8, 1, 0, 2), 1);
    assert_true(test_run_until(l, acked_or_refused_2, &pub, 5000));
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.acked, 1);
    assert_int_equal(pub.refused_tags, 1);
    assert_int_equal(pub.acked, 1);
    assert_int_equal(pub.last_ack_reason, 0x10); /* PUBACKs come in order: "nobody" was last */
    assert_non_null(strstr(ea_mqtt_client_last_error(pub.c), "0x87 Not authorized"));
    /* nothing is left to re-send after a reconnect */
    ea_mqtt_client_abort(pub.c);
    peer_connect(l, &pub); /* the re-send happens while the CONNACK is handled */
    ea_mqtt_client_stats_get(pub.c, &st);
    assert_int_equal(st.resent, 0);
    assert_int_equal(pub.refused_tags, 1);

    peer_test_end(&b, l, &pub, NULL);
}

/* The broker's reasons reach events.disconnected: a DISCONNECT (here 0x9B: a QoS 1 PUBLISH to a
 * broker with max_qos 0) and a CONNACK refusal (0x9A: a retained will where retain_available is
 * false). The broker's Server Keep Alive (max_keepalive) replaces ours. */
static void test_v5_broker_reasons_and_server_keepalive(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, "max_keepalive 10\nmax_qos 0\nretain_available false\n");
    peer a, w;
    ea_mqtt_client_config cfg = {.host = "127.0.0.1",
                                 .port = (uint16_t)b.port,
                                 .client_id = "t-reasons",
                                 .keepalive_s = 60,
                                 .backoff_min_ms = 5000,
                                 .version = 5};
    peer_new_cfg(l, &a, &cfg);
    peer_connect(l, &a);
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(a.c, &st);
    assert_int_equal(st.keepalive_s, 10);
    assert_int_equal(ea_mqtt_client_publish(a.c, "t/x", "m", 1, 1, 0, 1), 1);
    assert_true(test_run_until(l, has_disconnected, &a, 5000));
    assert_non_null(strstr(a.last_why, "broker disconnected: 0x9b QoS not supported"));

    cfg.client_id = "t-reasons-will";
    cfg.will_topic = "t/status";
    cfg.will_payload = "offline";
    cfg.will_retain = 1;
    peer_new_cfg(l, &w, &cfg);
    ea_mqtt_client_start(w.c);
    assert_true(test_run_until(l, has_disconnected, &w, 5000));
    assert_non_null(strstr(w.last_why, "broker refused the connection: 0x9a Retain not supported"));
    assert_int_equal(w.connects, 0);

    peer_test_end(&b, l, &a, &w, NULL);
}

/* An empty client id: the broker assigns one (Assigned Client Identifier) and the client uses it
 * on the next connect, so its persistent session is found again. */
static void test_v5_assigned_client_id_resumes_session(void **state)
{
    (void)state;
    test_broker b = {0};
    ea_loop *l = peer_test_begin(&b, NULL);
    peer p;
    ea_mqtt_client_config cfg = {.host = "127.0.0.1",
                                 .port = (uint16_t)b.port,
                                 .client_id = "",
                                 .backoff_min_ms = 50,
                                 .version = 5};
    peer_new_cfg(l, &p, &cfg);
    peer_connect(l, &p);
    assert_int_equal(p.session_present, 0);
    assert_true(broker_log_has(&b, "as auto-"));
    ea_mqtt_client_abort(p.c);
    peer_connect(l, &p);
    assert_int_equal(p.session_present, 1);
    assert_int_equal(p.connects, 2);
    peer_test_end(&b, l, &p, NULL);
}

/* A 3.1.1-only server answers a level-5 CONNECT with the 3.1.1 CONNACK "unacceptable protocol
 * level" (3.1.1 spec 3.1.2.2). mosquitto always speaks 5, so a stand-in server (a forked child
 * on a socket) sends exactly those four bytes; the error says what to change. */
static void test_v5_against_a_311_only_server(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 4), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = accept(ls, NULL, NULL);
        uint8_t buf[512];
        ssize_t n = read(fd, buf, sizeof buf); /* the CONNECT: level byte at offset 8 */
        static const uint8_t connack_v311_rc1[] = {0x20, 0x02, 0x00, 0x01};
        if (n >= 9 && buf[0] == 0x10 && buf[8] == 5 &&
            write(fd, connack_v311_rc1, sizeof connack_v311_rc1) == 4)
            while (read(fd, buf, sizeof buf) > 0) {
            }
        _exit(0);
    }
    close(ls);
    ea_loop *l = ea_loop_new();
    peer p;
    ea_mqtt_client_config cfg = {.host = "127.0.0.1",
                                 .port = ntohs(sa.sin_port),
                                 .client_id = "t-old",
                                 .backoff_min_ms = 5000,
                                 .version = 5};
    peer_new_cfg(l, &p, &cfg);
    ea_mqtt_client_start(p.c);
    assert_true(test_run_until(l, has_disconnected, &p, 5000));
    assert_non_null(strstr(p.last_why, "does not speak MQTT 5"));
    assert_non_null(strstr(p.last_why, "use mqtt_version 3.1.1"));
    assert_int_equal(p.connects, 0);
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
    waitpid(pid, NULL, 0);
}

/* ------------------------------------------------------------------ the agent on MQTT 5 */

static void test_v5_config_keys(void **state)
{
    (void)state;
    ea_config c;
    char err[300];
    ea_config_defaults(&c);
    assert_int_equal(c.uplink.mqtt_version, 4);
    assert_int_equal(c.mqtt_in_version, 4);
    assert_int_equal(ea_config_set(&c, "uplink.mqtt_version", "5", err, sizeof err), 0);
    assert_int_equal(ea_config_set(&c, "mqtt_in.mqtt_version", "5", err, sizeof err), 0);
    assert_int_equal(c.uplink.mqtt_version, 5);
    assert_int_equal(c.mqtt_in_version, 5);
    assert_int_equal(ea_config_set(&c, "uplink.mqtt_version", "3.1.1", err, sizeof err), 0);
    assert_int_equal(c.uplink.mqtt_version, 4);
    const char *bad[] = {"4", "3", "5.0", "mqttv5", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ea_config_set(&c, "uplink.mqtt_version", bad[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "expected 3.1.1 or 5"));
    }
    ea_config_free(&c);

    /* what --check-config reports: the file's line, and the variable */
    char path[] = "/tmp/ea-mqtt5-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char yaml[] = "spool:\n  dir: /tmp/x\nuplink:\n  url: mqtt://127.0.0.1/t\n"
                               "  mqtt_version: 4\n";
    assert_int_equal(write(fd, yaml, sizeof yaml - 1), (ssize_t)(sizeof yaml - 1));
    close(fd);
    ea_config_defaults(&c);
    assert_int_equal(ea_config_load_file(&c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 5: uplink.mqtt_version: expected 3.1.1 or 5"));
    ea_config_free(&c);
    unlink(path);
    ea_config_defaults(&c);
    setenv("EDGEAGENT_MQTT_IN_MQTT_VERSION", "5.0", 1);
    assert_int_equal(ea_config_apply_env(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "EDGEAGENT_MQTT_IN_MQTT_VERSION=5.0: expected 3.1.1 or 5"));
    setenv("EDGEAGENT_MQTT_IN_MQTT_VERSION", "5", 1);
    assert_int_equal(ea_config_apply_env(&c, err, sizeof err), 0);
    assert_int_equal(c.mqtt_in_version, 5);
    unsetenv("EDGEAGENT_MQTT_IN_MQTT_VERSION");
    ea_config_free(&c);
}

/* In the agent child: the config file <dir>/agent.yaml (arg) written by agent_start. */
static int load_agent_yaml(ea_config *c, const test_agent *ap, const void *path, char *err,
                           size_t errlen)
{
    (void)ap;
    return ea_config_load_file(c, path, err, errlen);
}

static void agent_start(test_agent *ap, const char *yaml)
{
    test_agent_init(ap, "/tmp/ea-mqtt5-agent-XXXXXX");
    char path[128];
    snprintf(path, sizeof path, "%s/agent.yaml", ap->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "agent:\n  port: \"127.0.0.1:%d\"\n  remote_config: false\nspool:\n  dir: %s/spool\n%s",
            ap->port, ap->dir, yaml);
    fclose(f);
    test_agent_run(ap, load_agent_yaml, path);
}

static int wait_for_broker_log(const test_broker *b, const char *what)
{
    for (int i = 0; i < 750; i++) {
        if (broker_log_has(b, what)) return 1;
        test_sleep_ms(20);
    }
    return 0;
}

/* The agent with the MQTT input and the uplink both on MQTT 5 (one broker for both): device
 * messages published by mosquitto_pub -V mqttv5 come out on the uplink topic, seen by
 * mosquitto_sub -V mqttv5; records the broker refuses (ACL) are counted and leave the spool. */
static void test_v5_agent_input_and_uplink(void **state)
{
    (void)state;
    test_broker b = {0};
    /* log_type subscribe: the broker logs "<client> <qos> <filter>" once a subscription is in */
    broker_start_with_acl(&b, "topic readwrite dev/#\ntopic readwrite up/#\n",
                          "log_type subscribe\n");

    char cmd[512], out[65536], yaml[512];
    snprintf(cmd, sizeof cmd,
             "mosquitto_sub -V mqttv5 -h 127.0.0.1 -p %d -i v5-up -c -x 600 -q 1 -t up/data -E",
             b.port);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);

    snprintf(yaml, sizeof yaml,
             "mqtt_in:\n  url: mqtt://127.0.0.1:%d\n  topics: [\"dev/+/data\"]\n  mqtt_version: 5\n"
             "uplink:\n  url: mqtt://127.0.0.1:%d/up/data\n  mqtt_version: 5\n  client_id: ea-v5\n"
             "  backoff_min_ms: 50\n  backoff_max_ms: 200\n",
             b.port, b.port);
    test_agent ap;
    agent_start(&ap, yaml);
    assert_true(wait_for_broker_log(&b, "as ea-v5 (p5, c0"));
    assert_true(wait_for_broker_log(&b, "as edgeagent-in-local (p5, c0"));
    assert_true(wait_for_broker_log(&b, "edgeagent-in-local 1 dev/+/data"));
    for (int i = 0; i < 20; i++) {
        snprintf(cmd, sizeof cmd,
                 "mosquitto_pub -V mqttv5 -h 127.0.0.1 -p %d -q 1 -t dev/d%d/data -m "
                 "'{\"n\":%d,\"temp\":20.5}'",
                 b.port, i % 3, i);
        assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    }
    snprintf(cmd, sizeof cmd,
             "mosquitto_sub -V mqttv5 -h 127.0.0.1 -p %d -i v5-up -c -x 600 -q 1 -t up/data "
             "-C 20 -W 30",
             b.port);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    unsigned seen = 0;
    for (int i = 0; i < 20; i++) {
        char want[32];
        snprintf(want, sizeof want, "\"n\":%d,", i);
        if (strstr(out, want)) seen++;
    }
    assert_int_equal(seen, 20);
    assert_non_null(strstr(out, "\"topic\":\"dev/d1/data\""));

    char body[16384];
    test_agent_get(&ap, "/metrics", body, sizeof body);
    assert_non_null(strstr(body, "uplink_refused_total 0\n"));
    test_agent_stop(&ap);

    /* the uplink topic not writable: every record refused (0x87), counted, none left pending */
    snprintf(
        yaml, sizeof yaml,
        "mqtt_in:\n  url: mqtt://127.0.0.1:%d\n  topics: [\"dev/+/data\"]\n  mqtt_version: 5\n"
        "uplink:\n  url: mqtt://127.0.0.1:%d/denied/data\n  mqtt_version: 5\n  client_id: ea-v5b\n",
        b.port, b.port);
    agent_start(&ap, yaml);
    assert_true(wait_for_broker_log(&b, "as ea-v5b (p5, c0"));
    /* the input's session (and subscription) was kept: what is published now waits for it */
    for (int i = 0; i < 5; i++) {
        snprintf(cmd, sizeof cmd,
                 "mosquitto_pub -V mqttv5 -h 127.0.0.1 -p %d -q 1 -t dev/x/data -m '{\"n\":%d}'",
                 b.port, i);
        assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    }
    int ok = 0;
    for (int i = 0; i < 750 && !ok; i++) {
        test_agent_get(&ap, "/metrics", body, sizeof body);
        ok = strstr(body, "uplink_refused_total 5\n") && strstr(body, "spool_pending_records 0\n");
        if (!ok) test_sleep_ms(20);
    }
    if (!ok) fail_msg("metrics: %s", body);
    assert_non_null(strstr(body, "records_delivered_total 0\n"));
    assert_non_null(strstr(body, "records_dropped_total 5\n"));
    test_agent_get(&ap, "/health", body, sizeof body);
    assert_non_null(strstr(body, "\"uplink_refused\":5"));
    test_agent_stop(&ap);
    test_broker_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v5_publish_qos1_reaches_mosquitto_sub),
        cmocka_unit_test(test_v5_persistent_session_across_reconnect),
        cmocka_unit_test(test_v5_unacked_resent_with_dup_after_reconnect),
        cmocka_unit_test(test_v5_last_will_on_unclean_drop),
        cmocka_unit_test(test_v5_receive_maximum_honoured),
        cmocka_unit_test(test_v5_maximum_packet_size_honoured),
        cmocka_unit_test(test_v5_puback_refusal_not_retried),
        cmocka_unit_test(test_v5_broker_reasons_and_server_keepalive),
        cmocka_unit_test(test_v5_assigned_client_id_resumes_session),
        cmocka_unit_test(test_v5_against_a_311_only_server),
        cmocka_unit_test(test_v5_config_keys),
        cmocka_unit_test(test_v5_agent_input_and_uplink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
