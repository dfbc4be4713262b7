/*
 * test_mqtt_codec.c: MQTT 3.1.1 and 5.0 codec. Round trips for every packet type, the
 * remaining-length boundaries of spec 2.2.3, and hostile packets that must be refused without
 * reading outside the buffer (run under ASan in the sanitizer build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/mqtt_codec.h"

static size_t encode(const ea_mqtt_packet *p, uint8_t *buf, size_t cap)
{
    size_t n = ea_mqtt_encode(p, buf, cap);
    assert_true(n > 0 && n <= cap);
    return n;
}

static void roundtrip(const ea_mqtt_packet *in, ea_mqtt_packet *out, uint8_t *buf, size_t cap)
{
    char err[160] = "";
    size_t n = encode(in, buf, cap);
    assert_int_equal(ea_mqtt_frame(buf, n, cap, err, sizeof err), (long)n);
    assert_int_equal(ea_mqtt_frame(buf, n - 1, cap, err, sizeof err),
                     0); /* one byte short: need more */
    if (ea_mqtt_decode(buf, n, out, err, sizeof err) != 0) fail_msg("decode failed: %s", err);
    assert_int_equal(out->type, in->type);
}

static void assert_str(ea_mqtt_str s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.p, want, s.len);
}

/* A CONNECT from "dev-1" with a retained QoS 1 will "offline" on t/status, user "u" and the
 * given password. */
static void fill_connect(ea_mqtt_connect *c, uint16_t keepalive_s, ea_mqtt_str password)
{
    c->client_id = ea_mqtt_cstr("dev-1");
    c->keepalive_s = keepalive_s;
    c->has_will = 1;
    c->will_qos = 1;
    c->will_retain = 1;
    c->will_topic = ea_mqtt_cstr("t/status");
    c->will_payload = ea_mqtt_cstr("offline");
    c->has_username = 1;
    c->username = ea_mqtt_cstr("u");
    c->has_password = 1;
    c->password = password;
}

static void test_connect_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[256];
    ea_mqtt_packet in = {.type = EA_MQTT_CONNECT}, out;
    ea_mqtt_str pw = ea_mqtt_cstr("p\0w");
    pw.len = 3; /* a NUL inside the password */
    fill_connect(&in.u.connect, 30, pw);
    roundtrip(&in, &out, buf, sizeof buf);
    assert_str(out.u.connect.client_id, "dev-1");
    assert_int_equal(out.u.connect.keepalive_s, 30);
    assert_int_equal(out.u.connect.clean_session, 0);
    assert_int_equal(out.u.connect.will_qos, 1);
    assert_int_equal(out.u.connect.will_retain, 1);
    assert_str(out.u.connect.will_topic, "t/status");
    assert_str(out.u.connect.will_payload, "offline");
    assert_str(out.u.connect.username, "u");
    assert_int_equal(out.u.connect.password.len, 3);
    /* flags byte 0xEC: user, password, will retain, will QoS 1, will; clean session 0 */
    assert_int_equal(buf[2 + 6 + 1], 0xec);
}

static void test_connack_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[8];
    ea_mqtt_packet in = {.type = EA_MQTT_CONNACK}, out;
    in.u.connack.session_present = 1;
    in.u.connack.return_code = 5;
    roundtrip(&in, &out, buf, sizeof buf);
    assert_int_equal(out.u.connack.session_present, 1);
    assert_int_equal(out.u.connack.return_code, 5);
    static const uint8_t wire[] = {0x20, 0x02, 0x01, 0x05};
    assert_memory_equal(buf, wire, sizeof wire);
}

static void test_publish_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[64];
    ea_mqtt_packet in = {.type = EA_MQTT_PUBLISH}, out;
    in.u.publish.topic = ea_mqtt_cstr("a/b");
    in.u.publish.payload = ea_mqtt_cstr("{\"x\":1}");
    in.u.publish.qos = 1;
    in.u.publish.dup = 1;
    in.u.publish.retain = 1;
    in.u.publish.packet_id = 0x1234;
    roundtrip(&in, &out, buf, sizeof buf);
    assert_int_equal(buf[0], 0x3b);
    assert_str(out.u.publish.topic, "a/b");
    assert_str(out.u.publish.payload, "{\"x\":1}");
    assert_int_equal(out.u.publish.packet_id, 0x1234);
    assert_int_equal(out.u.publish.dup, 1);
    assert_int_equal(out.u.publish.retain, 1);
    /* QoS 0: no packet id, empty payload allowed */
    memset(&in.u.publish, 0, sizeof in.u.publish);
    in.u.publish.topic = ea_mqtt_cstr("x");
    roundtrip(&in, &out, buf, sizeof buf);
    assert_int_equal(out.u.publish.qos, 0);
    assert_int_equal(out.u.publish.payload.len, 0);
}

static void test_ack_types_roundtrip(void **state)
{
    (void)state;
    int types[] = {EA_MQTT_PUBACK, EA_MQTT_PUBREC, EA_MQTT_PUBREL, EA_MQTT_PUBCOMP,
                   EA_MQTT_UNSUBACK};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        uint8_t buf[8];
        ea_mqtt_packet in = {.type = (uint8_t)types[i]}, out;
        in.u.packet_id = (uint16_t)(100 + i);
        roundtrip(&in, &out, buf, sizeof buf);
        assert_int_equal(out.u.packet_id, 100 + i);
        assert_int_equal(buf[0] & 0x0f, types[i] == EA_MQTT_PUBREL ? 2 : 0);
    }
}

static void test_subscribe_family_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[128];
    ea_mqtt_packet in = {.type = EA_MQTT_SUBSCRIBE}, out;
    in.u.subscribe.packet_id = 7;
    in.u.subscribe.count = 3;
    in.u.subscribe.topics[0] = ea_mqtt_cstr("a/+/c");
    in.u.subscribe.topics[1] = ea_mqtt_cstr("#");
    in.u.subscribe.topics[2] = ea_mqtt_cstr("d/#");
    in.u.subscribe.qos[0] = 0;
    in.u.subscribe.qos[1] = 1;
    in.u.subscribe.qos[2] = 2;
    roundtrip(&in, &out, buf, sizeof buf);
    assert_int_equal(out.u.subscribe.count, 3);
    assert_str(out.u.subscribe.topics[2], "d/#");
    assert_int_equal(out.u.subscribe.qos[2], 2);

    in.type = EA_MQTT_UNSUBSCRIBE;
    roundtrip(&in, &out, buf, sizeof buf);
    assert_int_equal(out.u.subscribe.count, 3);
    assert_str(out.u.subscribe.topics[0], "a/+/c");

    ea_mqtt_packet ack = {.type = EA_MQTT_SUBACK};
    ack.u.subscribe.packet_id = 7;
    ack.u.subscribe.count = 2;
    ack.u.subscribe.qos[0] = 1;
    ack.u.subscribe.qos[1] = 0x80;
    roundtrip(&ack, &out, buf, sizeof buf);
    assert_int_equal(out.u.subscribe.qos[1], 0x80);
}

static void test_empty_types_roundtrip(void **state)
{
    (void)state;
    int types[] = {EA_MQTT_PINGREQ, EA_MQTT_PINGRESP, EA_MQTT_DISCONNECT};
    for (size_t i = 0; i < 3; i++) {
        uint8_t buf[4];
        ea_mqtt_packet in = {.type = (uint8_t)types[i]}, out;
        size_t n = encode(&in, buf, sizeof buf);
        assert_int_equal(n, 2);
        roundtrip(&in, &out, buf, sizeof buf);
    }
}

static void test_remaining_length_boundaries(void **state)
{
    (void)state;
    static const struct {
        uint32_t value;
        size_t bytes;
    } cases[] = {{0, 1},     {127, 1},     {128, 2},     {16383, 2},
                 {16384, 3}, {2097151, 3}, {2097152, 4}, {268435455, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[4];
        size_t n = ea_mqtt_put_remaining(cases[i].value, b);
        assert_int_equal(n, cases[i].bytes);
        uint32_t v = 0;
        size_t used = 0;
        assert_int_equal(ea_mqtt_get_remaining(b, n, &v, &used), 1);
        assert_int_equal(v, cases[i].value);
        assert_int_equal(used, n);
        assert_int_equal(ea_mqtt_get_remaining(b, n - 1, &v, &used), 0); /* truncated: need more */
    }
    uint8_t b[4];
    assert_int_equal(ea_mqtt_put_remaining(268435456u, b), 0);
    static const uint8_t five[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
    uint32_t v;
    size_t used;
    assert_int_equal(ea_mqtt_get_remaining(five, sizeof five, &v, &used), -1);
    static const uint8_t max[] = {0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(ea_mqtt_get_remaining(max, sizeof max, &v, &used), 1);
    assert_int_equal(v, 268435455u);
}

static void test_publish_length_boundaries(void **state)
{
    (void)state;
    /* bodies whose remaining length sits exactly on 127/128 and 16383/16384 */
    static const uint32_t targets[] = {127, 128, 16383, 16384};
    uint8_t *buf = malloc(20000), *payload = calloc(1, 20000);
    for (size_t i = 0; i < 4; i++) {
        ea_mqtt_packet in = {.type = EA_MQTT_PUBLISH}, out;
        in.u.publish.topic = ea_mqtt_cstr("t");
        in.u.publish.qos = 1;
        in.u.publish.packet_id = 1;
        in.u.publish.payload.p = payload;
        in.u.publish.payload.len = targets[i] - 5; /* 2+1 topic + 2 id */
        roundtrip(&in, &out, buf, 20000);
        assert_int_equal(out.u.publish.payload.len, targets[i] - 5);
    }
    free(buf);
    free(payload);
}

static void test_frame_limits(void **state)
{
    (void)state;
    char err[160];
    static const uint8_t five[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(ea_mqtt_frame(five, sizeof five, 1 << 20, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed remaining length"));
    static const uint8_t huge[] = {0x30, 0xff, 0xff, 0xff, 0x7f}; /* 256 MB announced */
    assert_int_equal(ea_mqtt_frame(huge, sizeof huge, 1 << 20, err, sizeof err), -1);
    assert_non_null(strstr(err, "exceeds"));
    static const uint8_t partial[] = {0x30, 0x80};
    assert_int_equal(ea_mqtt_frame(partial, sizeof partial, 1 << 20, err, sizeof err), 0);
    /* encode into a buffer that is too small writes nothing usable but reports the size */
    ea_mqtt_packet p = {.type = EA_MQTT_PINGREQ};
    uint8_t one[1];
    assert_int_equal(ea_mqtt_encode(&p, one, 1), 2);
}

static void expect_refused(const uint8_t *pkt, size_t len, const char *why)
{
    char err[160] = "";
    ea_mqtt_packet p;
    /* copy to an exact-size heap buffer so ASan catches any read past the end */
    uint8_t *copy = malloc(len);
    memcpy(copy, pkt, len);
    int rc = ea_mqtt_decode(copy, len, &p, err, sizeof err);
    free(copy);
    if (rc != -1) fail_msg("hostile packet accepted (%s)", why);
    if (!strstr(err, why)) fail_msg("error \"%s\" does not mention \"%s\"", err, why);
}

static void test_hostile_packets(void **state)
{
    (void)state;
    /* PUBLISH whose topic length points past the packet */
    static const uint8_t topic_beyond[] = {0x30, 0x04, 0x00, 0xff, 'a', 'b'};
    expect_refused(topic_beyond, sizeof topic_beyond, "beyond packet");
    /* zero-length topic */
    static const uint8_t empty_topic[] = {0x30, 0x03, 0x00, 0x00, 'x'};
    expect_refused(empty_topic, sizeof empty_topic, "empty topic");
    /* wildcard in a topic name */
    static const uint8_t wild[] = {0x30, 0x03, 0x00, 0x01, '#'};
    expect_refused(wild, sizeof wild, "wildcard");
    /* QoS 1 with packet id 0 */
    static const uint8_t id0[] = {0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00};
    expect_refused(id0, sizeof id0, "packet identifier 0");
    /* QoS 3 */
    static const uint8_t qos3[] = {0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01};
    expect_refused(qos3, sizeof qos3, "QoS 3");
    /* DUP on QoS 0 */
    static const uint8_t dup0[] = {0x38, 0x03, 0x00, 0x01, 't'};
    expect_refused(dup0, sizeof dup0, "DUP");
    /* bad fixed-header flags on PUBACK, SUBSCRIBE without the 0x2 flags */
    static const uint8_t bad_puback[] = {0x41, 0x02, 0x00, 0x01};
    expect_refused(bad_puback, sizeof bad_puback, "flags");
    static const uint8_t bad_sub[] = {0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00};
    expect_refused(bad_sub, sizeof bad_sub, "flags");
    /* PUBACK with packet id 0, PUBACK with trailing byte, truncated PUBACK */
    static const uint8_t puback0[] = {0x40, 0x02, 0x00, 0x00};
    expect_refused(puback0, sizeof puback0, "packet identifier 0");
    static const uint8_t trailing[] = {0x40, 0x03, 0x00, 0x01, 0x00};
    expect_refused(trailing, sizeof trailing, "trailing");
    static const uint8_t short_ack[] = {0x40, 0x01, 0x00};
    expect_refused(short_ack, sizeof short_ack, "truncated");
    /* remaining length disagrees with the bytes given */
    static const uint8_t mismatch[] = {0x40, 0x05, 0x00, 0x01};
    expect_refused(mismatch, sizeof mismatch, "remaining length");
    /* reserved types 0 and 15 */
    static const uint8_t t0[] = {0x00, 0x00};
    expect_refused(t0, sizeof t0, "reserved");
    static const uint8_t t15[] = {0xf0, 0x00};
    expect_refused(t15, sizeof t15, "reserved");
    /* invalid UTF-8 and U+0000 in a topic */
    static const uint8_t bad_utf8[] = {0x30, 0x04, 0x00, 0x02, 0xc0, 0x80};
    expect_refused(bad_utf8, sizeof bad_utf8, "UTF-8");
    static const uint8_t nul[] = {0x30, 0x04, 0x00, 0x02, 'a', 0x00};
    expect_refused(nul, sizeof nul, "UTF-8");
    /* CONNACK with reserved bits / unknown return code */
    static const uint8_t connack_bits[] = {0x20, 0x02, 0x02, 0x00};
    expect_refused(connack_bits, sizeof connack_bits, "reserved CONNACK");
    static const uint8_t connack_rc[] = {0x20, 0x02, 0x00, 0x06};
    expect_refused(connack_rc, sizeof connack_rc, "return code");
    /* SUBSCRIBE with no topics, bad filter, bad QoS; SUBACK with bad code */
    static const uint8_t sub_none[] = {0x82, 0x02, 0x00, 0x01};
    expect_refused(sub_none, sizeof sub_none, "no topics");
    static const uint8_t sub_filter[] = {0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 'a', '#', 0x00};
    expect_refused(sub_filter, sizeof sub_filter, "topic filter");
    static const uint8_t sub_qos[] = {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03};
    expect_refused(sub_qos, sizeof sub_qos, "QoS");
    static const uint8_t suback_bad[] = {0x90, 0x03, 0x00, 0x01, 0x03};
    expect_refused(suback_bad, sizeof suback_bad, "SUBACK return code");
    /* CONNECT: wrong protocol name, level, reserved flag, password without user */
    static const uint8_t conn_name[] = {0x10, 0x0c, 0x00, 0x04, 'M',  'Q',  'T',
                                        'X',  0x04, 0x02, 0x00, 0x1e, 0x00, 0x00};
    expect_refused(conn_name, sizeof conn_name, "protocol name");
    static const uint8_t conn_level[] = {0x10, 0x0c, 0x00, 0x04, 'M',  'Q',  'T',
                                         'T',  0x05, 0x02, 0x00, 0x1e, 0x00, 0x00};
    expect_refused(conn_level, sizeof conn_level, "protocol level");
    static const uint8_t conn_res[] = {0x10, 0x0c, 0x00, 0x04, 'M',  'Q',  'T',
                                       'T',  0x04, 0x03, 0x00, 0x1e, 0x00, 0x00};
    expect_refused(conn_res, sizeof conn_res, "reserved connect flag");
    static const uint8_t conn_pw[] = {0x10, 0x0c, 0x00, 0x04, 'M',  'Q',  'T',
                                      'T',  0x04, 0x42, 0x00, 0x1e, 0x00, 0x00};
    expect_refused(conn_pw, sizeof conn_pw, "password without user");
    /* PINGRESP with a body */
    static const uint8_t ping_body[] = {0xd0, 0x01, 0x00};
    expect_refused(ping_body, sizeof ping_body, "trailing");
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(
        ea_mqtt_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(ea_mqtt_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(ea_mqtt_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
    assert_false(ea_mqtt_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(ea_mqtt_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
}

/* ------------------------------------------------------------------ MQTT 5 */

static void roundtrip_v5(const ea_mqtt_packet *in, ea_mqtt_packet *out, uint8_t *buf, size_t cap,
                         size_t *len)
{
    char err[160] = "";
    size_t n = encode(in, buf, cap);
    assert_int_equal(ea_mqtt_frame(buf, n, cap, err, sizeof err), (long)n);
    if (ea_mqtt_decode_v(buf, n, EA_MQTT_V5, out, err, sizeof err) != 0)
        fail_msg("v5 decode failed: %s", err);
    assert_int_equal(out->type, in->type);
    assert_int_equal(out->version, EA_MQTT_V5);
    /* canonical: re-encoding what was decoded gives the same bytes */
    uint8_t again[512];
    assert_true(n <= sizeof again);
    assert_int_equal(ea_mqtt_encode(out, again, sizeof again), n);
    assert_memory_equal(again, buf, n);
    if (len) *len = n;
}

static void decode_v5_ok(const uint8_t *pkt, size_t len, ea_mqtt_packet *out)
{
    char err[160] = "";
    if (ea_mqtt_decode_v(pkt, len, EA_MQTT_V5, out, err, sizeof err) != 0)
        fail_msg("v5 decode failed: %s", err);
}

static void test_v5_connect_bytes_and_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n;
    /* the CONNECT the client sends for a persistent session: Clean Start 0, Session Expiry
     * 0xFFFFFFFF; bytes written out from spec 3.1 by hand */
    ea_mqtt_packet in = {.type = EA_MQTT_CONNECT, .version = EA_MQTT_V5}, out;
    in.u.connect.client_id = ea_mqtt_cstr("a");
    in.u.connect.keepalive_s = 30;
    in.props.session_expiry = 0xFFFFFFFFu;
    EA_MQTT_SET(in.props, EA_MQTT_P_SESSION_EXPIRY);
    static const uint8_t want[] = {0x10, 0x13, 0x00, 0x04, 'M',  'Q',  'T',  'T',  0x05, 0x00, 0x00,
                                   0x1e, 0x05, 0x11, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 'a'};
    roundtrip_v5(&in, &out, buf, sizeof buf, &n);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, n);
    assert_int_equal(out.props.session_expiry, 0xFFFFFFFFu);
    assert_int_equal(out.u.connect.clean_session, 0);
    /* the 3.1.1 decoder refuses level 5 and the v5 decoder level 4 */
    char err[160];
    assert_int_equal(ea_mqtt_decode(buf, n, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "protocol level"));
    ea_mqtt_packet v4 = in;
    v4.version = 0;
    n = encode(&v4, buf, sizeof buf);
    assert_int_equal(ea_mqtt_decode_v(buf, n, EA_MQTT_V5, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "protocol level"));

    /* will with (empty and non-empty) will properties, user/password, Maximum Packet Size */
    ea_mqtt_packet w = {.type = EA_MQTT_CONNECT, .version = EA_MQTT_V5};
    ea_mqtt_connect *c = &w.u.connect;
    fill_connect(c, 60, ea_mqtt_cstr("pw"));
    w.props.maximum_packet_size = 524288;
    EA_MQTT_SET(w.props, EA_MQTT_P_MAXIMUM_PACKET_SIZE);
    roundtrip_v5(&w, &out, buf, sizeof buf, &n);
    assert_int_equal(out.props.maximum_packet_size, 524288);
    assert_int_equal(out.u.connect.will_props.present, 0);
    assert_str(out.u.connect.will_topic, "t/status");
    assert_str(out.u.connect.will_payload, "offline");
    assert_str(out.u.connect.password, "pw");
    c->will_props.will_delay = 5;
    EA_MQTT_SET(c->will_props, EA_MQTT_P_WILL_DELAY);
    c->will_props.content_type = ea_mqtt_cstr("text/plain");
    EA_MQTT_SET(c->will_props, EA_MQTT_P_CONTENT_TYPE);
    roundtrip_v5(&w, &out, buf, sizeof buf, &n);
    assert_int_equal(out.u.connect.will_props.will_delay, 5);
    assert_str(out.u.connect.will_props.content_type, "text/plain");
    /* a property that is not allowed where it is put is not encoded */
    ea_mqtt_packet bad = w;
    EA_MQTT_SET(bad.u.connect.will_props, EA_MQTT_P_RECEIVE_MAXIMUM);
    bad.u.connect.will_props.receive_maximum = 1;
    assert_int_equal(ea_mqtt_encode(&bad, buf, sizeof buf), 0);
}

static void test_v5_connack_properties(void **state)
{
    (void)state;
    /* a CONNACK as a broker with limits sends it, written by hand */
    static const uint8_t pkt[] = {
        0x20, 0x27, 0x01, 0x00,                   /* session present, Success */
        0x24,                                     /* property length 36 */
        0x21, 0x00, 0x0a,                         /* Receive Maximum 10 */
        0x27, 0x00, 0x00, 0x04, 0x00,             /* Maximum Packet Size 1024 */
        0x13, 0x00, 0x3c,                         /* Server Keep Alive 60 */
        0x22, 0x00, 0x0a,                         /* Topic Alias Maximum 10 */
        0x12, 0x00, 0x03, 'i',  'd',  '7',        /* Assigned Client Identifier */
        0x25, 0x00,                               /* Retain Available 0 */
        0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'v',  /* User Property k=v */
        0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'w'}; /* and another */
    ea_mqtt_packet p;
    decode_v5_ok(pkt, sizeof pkt, &p);
    assert_int_equal(p.type, EA_MQTT_CONNACK);
    assert_int_equal(p.u.connack.session_present, 1);
    assert_int_equal(p.u.connack.return_code, 0);
    assert_true(EA_MQTT_HAS(p.props, EA_MQTT_P_RECEIVE_MAXIMUM));
    assert_int_equal(p.props.receive_maximum, 10);
    assert_int_equal(p.props.maximum_packet_size, 1024);
    assert_int_equal(p.props.server_keepalive, 60);
    assert_int_equal(p.props.topic_alias_maximum, 10);
    assert_str(p.props.assigned_client_id, "id7");
    assert_true(EA_MQTT_HAS(p.props, EA_MQTT_P_RETAIN_AVAILABLE));
    assert_int_equal(p.props.retain_available, 0);
    assert_int_equal(p.props.n_user_properties, 2);
    assert_false(EA_MQTT_HAS(p.props, EA_MQTT_P_MAXIMUM_QOS));
    /* refusal with a reason string */
    uint8_t buf[128];
    ea_mqtt_packet in = {.type = EA_MQTT_CONNACK, .version = EA_MQTT_V5}, out;
    in.u.connack.return_code = 0x87;
    in.props.reason_string = ea_mqtt_cstr("no");
    EA_MQTT_SET(in.props, EA_MQTT_P_REASON_STRING);
    roundtrip_v5(&in, &out, buf, sizeof buf, NULL);
    assert_int_equal(out.u.connack.return_code, 0x87);
    assert_str(out.props.reason_string, "no");
    assert_string_equal(ea_mqtt_reason_name(EA_MQTT_CONNACK, 0x87), "Not authorized");
    assert_string_equal(ea_mqtt_prop_name(0x21), "Receive Maximum");
    assert_null(ea_mqtt_prop_name(0x05));
}

static void test_v5_publish_and_acks(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n;
    ea_mqtt_packet in = {.type = EA_MQTT_PUBLISH, .version = EA_MQTT_V5}, out;
    in.u.publish.topic = ea_mqtt_cstr("t/x");
    in.u.publish.payload = ea_mqtt_cstr("{\"v\":1}");
    in.u.publish.qos = 1;
    in.u.publish.packet_id = 7;
    roundtrip_v5(&in, &out, buf, sizeof buf, &n);
    /* header 2, topic 5, id 2, property length 0, payload 7 */
    assert_int_equal(n, 2 + 5 + 2 + 1 + 7);
    assert_int_equal(buf[9], 0x00);
    assert_str(out.u.publish.payload, "{\"v\":1}");
    in.props.payload_format = 1;
    EA_MQTT_SET(in.props, EA_MQTT_P_PAYLOAD_FORMAT);
    in.props.content_type = ea_mqtt_cstr("application/json");
    EA_MQTT_SET(in.props, EA_MQTT_P_CONTENT_TYPE);
    in.props.message_expiry = 3600;
    EA_MQTT_SET(in.props, EA_MQTT_P_MESSAGE_EXPIRY);
    roundtrip_v5(&in, &out, buf, sizeof buf, &n);
    assert_int_equal(out.props.payload_format, 1);
    assert_str(out.props.content_type, "application/json");
    assert_int_equal(out.props.message_expiry, 3600);
    assert_str(out.u.publish.payload, "{\"v\":1}");

    /* PUBACK: 2 bytes = Success, 3 bytes = reason only, more = reason + properties */
    static const uint8_t ack2[] = {0x40, 0x02, 0x00, 0x07};
    decode_v5_ok(ack2, sizeof ack2, &out);
    assert_int_equal(out.u.packet_id, 7);
    assert_int_equal(out.reason, 0);
    static const uint8_t ack3[] = {0x40, 0x03, 0x00, 0x07, 0x10};
    decode_v5_ok(ack3, sizeof ack3, &out);
    assert_int_equal(out.reason, 0x10);
    static const uint8_t ack4[] = {0x40, 0x04, 0x00, 0x07, 0x87, 0x00};
    decode_v5_ok(ack4, sizeof ack4, &out);
    assert_int_equal(out.reason, 0x87);
    ea_mqtt_packet a = {.type = EA_MQTT_PUBACK, .version = EA_MQTT_V5};
    a.u.packet_id = 9;
    roundtrip_v5(&a, &out, buf, sizeof buf, &n);
    assert_int_equal(n, 4);
    a.reason = 0x10;
    roundtrip_v5(&a, &out, buf, sizeof buf, &n);
    assert_int_equal(n, 5);
    a.reason = 0x97;
    a.props.reason_string = ea_mqtt_cstr("quota");
    EA_MQTT_SET(a.props, EA_MQTT_P_REASON_STRING);
    roundtrip_v5(&a, &out, buf, sizeof buf, &n);
    assert_int_equal(out.reason, 0x97);
    assert_str(out.props.reason_string, "quota");
    for (int t = EA_MQTT_PUBREC; t <= EA_MQTT_PUBCOMP; t++) {
        ea_mqtt_packet x = {.type = (uint8_t)t, .version = EA_MQTT_V5};
        x.u.packet_id = 3;
        x.reason = t == EA_MQTT_PUBREC ? 0x10 : 0x92;
        roundtrip_v5(&x, &out, buf, sizeof buf, NULL);
        assert_int_equal(out.reason, x.reason);
    }
}

static void test_v5_subscribe_family_disconnect_auth(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n;
    ea_mqtt_packet s = {.type = EA_MQTT_SUBSCRIBE, .version = EA_MQTT_V5}, out;
    s.u.subscribe.packet_id = 2;
    s.u.subscribe.count = 2;
    s.u.subscribe.topics[0] = ea_mqtt_cstr("dev/+/data");
    s.u.subscribe.qos[0] = 1;
    s.u.subscribe.topics[1] = ea_mqtt_cstr("ctl/#");
    s.u.subscribe.qos[1] = 0x01 | 0x04 | 0x08 | 0x20; /* QoS 1, No Local, RAP, Retain Handling 2 */
    s.props.subscription_id = 200;
    EA_MQTT_SET(s.props, EA_MQTT_P_SUBSCRIPTION_ID);
    roundtrip_v5(&s, &out, buf, sizeof buf, &n);
    assert_int_equal(out.u.subscribe.count, 2);
    assert_int_equal(out.u.subscribe.qos[1], 0x2d);
    assert_int_equal(out.props.subscription_id, 200);
    /* options byte of the first filter, after id 2 + property length 3 (0x0B 0xC8 0x01) */
    assert_int_equal(buf[2 + 2 + 1 + 3 + 2 + 10], 0x01);

    ea_mqtt_packet sa = {.type = EA_MQTT_SUBACK, .version = EA_MQTT_V5};
    sa.u.subscribe.packet_id = 2;
    sa.u.subscribe.count = 3;
    sa.u.subscribe.qos[0] = 0x01;
    sa.u.subscribe.qos[1] = 0x87;
    sa.u.subscribe.qos[2] = 0xA2;
    roundtrip_v5(&sa, &out, buf, sizeof buf, NULL);
    assert_int_equal(out.u.subscribe.qos[2], 0xA2);

    ea_mqtt_packet us = {.type = EA_MQTT_UNSUBSCRIBE, .version = EA_MQTT_V5};
    us.u.subscribe.packet_id = 4;
    us.u.subscribe.count = 1;
    us.u.subscribe.topics[0] = ea_mqtt_cstr("a/b");
    roundtrip_v5(&us, &out, buf, sizeof buf, NULL);
    assert_str(out.u.subscribe.topics[0], "a/b");

    ea_mqtt_packet ua = {.type = EA_MQTT_UNSUBACK, .version = EA_MQTT_V5};
    ua.u.subscribe.packet_id = 4;
    ua.u.subscribe.count = 2;
    ua.u.subscribe.qos[0] = 0x00;
    ua.u.subscribe.qos[1] = 0x11;
    roundtrip_v5(&ua, &out, buf, sizeof buf, &n);
    assert_int_equal(out.u.subscribe.count, 2);
    assert_int_equal(out.u.subscribe.qos[1], 0x11);

    /* DISCONNECT: empty body = Normal disconnection; reason + properties */
    ea_mqtt_packet d = {.type = EA_MQTT_DISCONNECT, .version = EA_MQTT_V5};
    roundtrip_v5(&d, &out, buf, sizeof buf, &n);
    assert_int_equal(n, 2);
    d.reason = 0x8E;
    d.props.reason_string = ea_mqtt_cstr("taken over");
    EA_MQTT_SET(d.props, EA_MQTT_P_REASON_STRING);
    d.props.server_reference = ea_mqtt_cstr("other:1883");
    EA_MQTT_SET(d.props, EA_MQTT_P_SERVER_REFERENCE);
    roundtrip_v5(&d, &out, buf, sizeof buf, NULL);
    assert_int_equal(out.reason, 0x8E);
    assert_str(out.props.reason_string, "taken over");
    assert_string_equal(ea_mqtt_reason_name(EA_MQTT_DISCONNECT, 0x8E), "Session taken over");
    static const uint8_t disc1[] = {0xe0, 0x01, 0x04};
    decode_v5_ok(disc1, sizeof disc1, &out);
    assert_int_equal(out.reason, 0x04);

    ea_mqtt_packet au = {.type = EA_MQTT_AUTH, .version = EA_MQTT_V5};
    au.reason = 0x18;
    au.props.auth_method = ea_mqtt_cstr("SCRAM");
    EA_MQTT_SET(au.props, EA_MQTT_P_AUTH_METHOD);
    roundtrip_v5(&au, &out, buf, sizeof buf, NULL);
    assert_str(out.props.auth_method, "SCRAM");
    /* AUTH does not exist in 3.1.1 */
    au.version = 0;
    assert_int_equal(ea_mqtt_encode(&au, buf, sizeof buf), 0);
}

static void expect_refused_v5(const uint8_t *pkt, size_t len, const char *why)
{
    char err[160] = "";
    ea_mqtt_packet p;
    uint8_t *copy = malloc(len);
    memcpy(copy, pkt, len);
    int rc = ea_mqtt_decode_v(copy, len, EA_MQTT_V5, &p, err, sizeof err);
    free(copy);
    if (rc != -1) fail_msg("hostile v5 packet accepted (%s)", why);
    if (!strstr(err, why)) fail_msg("error \"%s\" does not mention \"%s\"", err, why);
}

static void test_v5_malformed_properties(void **state)
{
    (void)state;
    /* CONNACK: duplicate single-use property */
    static const uint8_t dup[] = {0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x0a, 0x21, 0x00, 0x05};
    expect_refused_v5(dup, sizeof dup, "Receive Maximum): appears twice");
    /* unknown property id 0x05 */
    static const uint8_t unknown[] = {0x20, 0x05, 0x00, 0x00, 0x02, 0x05, 0x00};
    expect_refused_v5(unknown, sizeof unknown, "unknown property id 0x5");
    /* Topic Alias (PUBLISH only) in a CONNACK */
    static const uint8_t wrong_place[] = {0x20, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01};
    expect_refused_v5(wrong_place, sizeof wrong_place, "not allowed in this packet");
    /* property length past the end of the packet */
    static const uint8_t plen_past[] = {0x20, 0x06, 0x00, 0x00, 0x09, 0x21, 0x00, 0x0a};
    expect_refused_v5(plen_past, sizeof plen_past, "property length past");
    /* a property running past its block (block of 2, Maximum Packet Size needs 4 more), with
     * bytes left in the packet that it must not borrow */
    static const uint8_t val_past[] = {0x20, 0x08, 0x00, 0x00, 0x02, 0x27, 0x00, 0x00, 0x04, 0x00};
    expect_refused_v5(val_past, sizeof val_past, "truncated");
    /* string property whose length runs past the block */
    static const uint8_t str_past[] = {0x20, 0x08, 0x00, 0x00, 0x03, 0x1f, 0x00, 0x05, 'a', 'b'};
    expect_refused_v5(str_past, sizeof str_past, "beyond packet");
    /* property length of 5 bytes */
    static const uint8_t vbi5[] = {0x20, 0x07, 0x00, 0x00, 0x80, 0x80, 0x80, 0x80, 0x01};
    expect_refused_v5(vbi5, sizeof vbi5, "longer than 4 bytes");
    /* truncated property length */
    static const uint8_t vbi_trunc[] = {0x20, 0x03, 0x00, 0x00, 0x80};
    expect_refused_v5(vbi_trunc, sizeof vbi_trunc, "truncated variable byte integer");
    /* no property length at all: a 3.1.1-shaped CONNACK */
    static const uint8_t v311[] = {0x20, 0x02, 0x00, 0x01};
    expect_refused_v5(v311, sizeof v311, "reason code 0x01 is not valid");
    static const uint8_t v311_ok[] = {0x20, 0x02, 0x00, 0x00};
    expect_refused_v5(v311_ok, sizeof v311_ok, "truncated");
    /* out-of-range values */
    static const uint8_t byte2[] = {0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02};
    expect_refused_v5(byte2, sizeof byte2, "Maximum QoS): value other than 0 or 1");
    static const uint8_t rm0[] = {0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00};
    expect_refused_v5(rm0, sizeof rm0, "Receive Maximum): value 0");
    static const uint8_t mps0[] = {0x20, 0x08, 0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00};
    expect_refused_v5(mps0, sizeof mps0, "Maximum Packet Size): value 0");
    /* invalid UTF-8 in a Reason String, and in a User Property value */
    static const uint8_t rs_utf8[] = {0x20, 0x08, 0x00, 0x00, 0x05, 0x1f, 0x00, 0x02, 0xc0, 0x80};
    expect_refused_v5(rs_utf8, sizeof rs_utf8, "UTF-8");
    static const uint8_t up_utf8[] = {0x20, 0x0a, 0x00, 0x00, 0x07, 0x26,
                                      0x00, 0x01, 'k',  0x00, 0x01, 0xff};
    expect_refused_v5(up_utf8, sizeof up_utf8, "UTF-8");
    /* CONNACK: failure code with Session Present, unknown reason code */
    static const uint8_t sp_fail[] = {0x20, 0x03, 0x01, 0x87, 0x00};
    expect_refused_v5(sp_fail, sizeof sp_fail, "session present");
    static const uint8_t connack_rc[] = {0x20, 0x03, 0x00, 0x05, 0x00};
    expect_refused_v5(connack_rc, sizeof connack_rc, "reason code 0x05");
    /* PUBACK with a reason code PUBACK cannot carry; PUBCOMP with one only PUBACK can */
    static const uint8_t puback_rc[] = {0x40, 0x03, 0x00, 0x01, 0x8E};
    expect_refused_v5(puback_rc, sizeof puback_rc, "not valid in PUBACK");
    static const uint8_t pubcomp_rc[] = {0x70, 0x03, 0x00, 0x01, 0x10};
    expect_refused_v5(pubcomp_rc, sizeof pubcomp_rc, "not valid in PUBCOMP");
    /* PUBACK: Session Expiry is not a PUBACK property; trailing byte after the properties */
    static const uint8_t puback_prop[] = {0x40, 0x09, 0x00, 0x01, 0x00, 0x05,
                                          0x11, 0x00, 0x00, 0x00, 0x01};
    expect_refused_v5(puback_prop, sizeof puback_prop, "Session Expiry Interval): not allowed");
    static const uint8_t puback_trail[] = {0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00};
    expect_refused_v5(puback_trail, sizeof puback_trail, "trailing");
    /* PUBLISH: empty topic without a Topic Alias; Subscription Identifier 0; two Content Types;
     * several Subscription Identifiers are fine in a PUBLISH */
    static const uint8_t no_alias[] = {0x30, 0x04, 0x00, 0x00, 0x00, 'x'};
    expect_refused_v5(no_alias, sizeof no_alias, "without a Topic Alias");
    static const uint8_t subid0[] = {0x30, 0x07, 0x00, 0x01, 't', 0x02, 0x0b, 0x00, 'x'};
    expect_refused_v5(subid0, sizeof subid0, "Subscription Identifier): value 0");
    static const uint8_t ct2[] = {0x30, 0x0d, 0x00, 0x01, 't',  0x08, 0x03, 0x00,
                                  0x01, 'a',  0x03, 0x00, 0x01, 'b',  'x'};
    expect_refused_v5(ct2, sizeof ct2, "Content Type): appears twice");
    static const uint8_t subids[] = {0x30, 0x09, 0x00, 0x01, 't', 0x04,
                                     0x0b, 0x05, 0x0b, 0x06, 'x'};
    ea_mqtt_packet p;
    decode_v5_ok(subids, sizeof subids, &p);
    assert_int_equal(p.props.subscription_id, 5);
    assert_int_equal(p.props.n_subscription_ids, 2);
    /* ... but not in a SUBSCRIBE */
    static const uint8_t sub_ids[] = {0x82, 0x0b, 0x00, 0x01, 0x04, 0x0b, 0x05,
                                      0x0b, 0x06, 0x00, 0x01, 'a',  0x01};
    expect_refused_v5(sub_ids, sizeof sub_ids, "appears twice");
    /* a will property that belongs to CONNECT; a CONNECT property that belongs to the will */
    static const uint8_t will_bad[] = {0x10, 0x17, 0x00, 0x04, 'M',  'Q',  'T', 'T',  0x05,
                                       0x04, 0x00, 0x1e, 0x00, 0x00, 0x01, 'a', 0x03, 0x21,
                                       0x00, 0x01, 0x00, 0x01, 't',  0x00, 0x00};
    expect_refused_v5(will_bad, sizeof will_bad, "not allowed in will properties");
    static const uint8_t conn_bad[] = {0x10, 0x13, 0x00, 0x04, 'M',  'Q',  'T',
                                       'T',  0x05, 0x00, 0x00, 0x1e, 0x05, 0x18,
                                       0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 'a'};
    expect_refused_v5(conn_bad, sizeof conn_bad, "Will Delay Interval): not allowed");
    /* SUBSCRIBE options: reserved bits, Retain Handling 3, QoS 3 */
    static const uint8_t opt_res[] = {0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x41};
    expect_refused_v5(opt_res, sizeof opt_res, "reserved subscription option");
    static const uint8_t opt_rh3[] = {0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x31};
    expect_refused_v5(opt_rh3, sizeof opt_rh3, "Retain Handling 3");
    static const uint8_t opt_q3[] = {0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03};
    expect_refused_v5(opt_q3, sizeof opt_q3, "QoS");
    /* SUBACK / UNSUBACK reason codes from the other list */
    static const uint8_t suback_rc[] = {0x90, 0x04, 0x00, 0x01, 0x00, 0x11};
    expect_refused_v5(suback_rc, sizeof suback_rc, "not valid in SUBACK");
    static const uint8_t unsuback_rc[] = {0xb0, 0x04, 0x00, 0x01, 0x00, 0x01};
    expect_refused_v5(unsuback_rc, sizeof unsuback_rc, "not valid in UNSUBACK");
    /* DISCONNECT with a CONNACK-only reason, AUTH with a bad reason and bad flags */
    static const uint8_t disc_rc[] = {0xe0, 0x01, 0x84};
    expect_refused_v5(disc_rc, sizeof disc_rc, "not valid in DISCONNECT");
    static const uint8_t auth_rc[] = {0xf0, 0x02, 0x01, 0x00};
    expect_refused_v5(auth_rc, sizeof auth_rc, "not valid in AUTH");
    static const uint8_t auth_flags[] = {0xf1, 0x00};
    expect_refused_v5(auth_flags, sizeof auth_flags, "flags");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_roundtrip),
        cmocka_unit_test(test_connack_roundtrip),
        cmocka_unit_test(test_publish_roundtrip),
        cmocka_unit_test(test_ack_types_roundtrip),
        cmocka_unit_test(test_subscribe_family_roundtrip),
        cmocka_unit_test(test_empty_types_roundtrip),
        cmocka_unit_test(test_remaining_length_boundaries),
        cmocka_unit_test(test_publish_length_boundaries),
        cmocka_unit_test(test_frame_limits),
        cmocka_unit_test(test_hostile_packets),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_v5_connect_bytes_and_roundtrip),
        cmocka_unit_test(test_v5_connack_properties),
        cmocka_unit_test(test_v5_publish_and_acks),
        cmocka_unit_test(test_v5_subscribe_family_disconnect_auth),
        cmocka_unit_test(test_v5_malformed_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
