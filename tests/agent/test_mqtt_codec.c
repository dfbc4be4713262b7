/*
 * test_mqtt_codec.c: MQTT 3.1.1 codec. Round trips for every packet type, the remaining-length
 * boundaries of spec 2.2.3, and hostile packets that must be refused without reading outside the
 * buffer (run under ASan in the sanitizer build).
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

static void test_connect_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[256];
    ea_mqtt_packet in = {.type = EA_MQTT_CONNECT}, out;
    ea_mqtt_connect *c = &in.u.connect;
    c->client_id = ea_mqtt_cstr("dev-1");
    c->keepalive_s = 30;
    c->has_will = 1;
    c->will_qos = 1;
    c->will_retain = 1;
    c->will_topic = ea_mqtt_cstr("t/status");
    c->will_payload = ea_mqtt_cstr("offline");
    c->has_username = 1;
    c->username = ea_mqtt_cstr("u");
    c->has_password = 1;
    c->password = ea_mqtt_cstr("p\0w");
    c->password.len = 3;
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
