/*
 * proto/mqtt_codec.h: MQTT 3.1.1 packet encoding and decoding as pure functions over caller
 * buffers. No allocation, no I/O, no global state: the client state machine (mqtt_client.c) and the
 * fuzz target call the same code.
 *
 * Invariants:
 *  - Decoded strings and payloads are views (pointer + length) into the caller's buffer; they live
 *    as long as that buffer does. Nothing is NUL-terminated.
 *  - ea_mqtt_frame() never reads past `len` and rejects a remaining length that is malformed
 *    (a fifth length byte) or larger than the caller's packet cap, before any byte of the body.
 *  - ea_mqtt_decode() accepts only packets that are well-formed per the 3.1.1 specification:
 *    reserved flag bits, QoS 3, DUP on QoS 0, packet id 0 where an id is required, empty or
 *    wildcard topics in PUBLISH, invalid UTF-8 or U+0000 in strings, and trailing bytes are errors.
 *  - ea_mqtt_encode() writes nothing when the packet does not fit and returns the size needed
 *    (like snprintf), so callers can size buffers exactly.
 */
#ifndef EA_PROTO_MQTT_CODEC_H
#define EA_PROTO_MQTT_CODEC_H

#include <stddef.h>
#include <stdint.h>

enum ea_mqtt_type {
    EA_MQTT_CONNECT = 1,
    EA_MQTT_CONNACK = 2,
    EA_MQTT_PUBLISH = 3,
    EA_MQTT_PUBACK = 4,
    EA_MQTT_PUBREC = 5,
    EA_MQTT_PUBREL = 6,
    EA_MQTT_PUBCOMP = 7,
    EA_MQTT_SUBSCRIBE = 8,
    EA_MQTT_SUBACK = 9,
    EA_MQTT_UNSUBSCRIBE = 10,
    EA_MQTT_UNSUBACK = 11,
    EA_MQTT_PINGREQ = 12,
    EA_MQTT_PINGRESP = 13,
    EA_MQTT_DISCONNECT = 14,
};

/* Largest value the 4-byte remaining-length field can hold (spec 2.2.3). */
#define EA_MQTT_MAX_REMAINING 268435455u
/* Topic filters per SUBSCRIBE / UNSUBSCRIBE / SUBACK handled by this codec. */
#define EA_MQTT_MAX_TOPICS 8

typedef struct ea_mqtt_str {
    const uint8_t *p;
    size_t len;
} ea_mqtt_str;

typedef struct ea_mqtt_connect {
    ea_mqtt_str client_id;
    ea_mqtt_str will_topic, will_payload; /* has_will */
    ea_mqtt_str username;                 /* has_username */
    ea_mqtt_str password;                 /* has_password */
    uint16_t keepalive_s;
    uint8_t clean_session, has_will, will_qos, will_retain, has_username, has_password;
} ea_mqtt_connect;

typedef struct ea_mqtt_publish {
    ea_mqtt_str topic, payload;
    uint16_t packet_id; /* 0 for QoS 0 */
    uint8_t qos, retain, dup;
} ea_mqtt_publish;

typedef struct ea_mqtt_subscribe { /* also UNSUBSCRIBE (qos unused) and SUBACK (qos = return codes)
                                    */
    uint16_t packet_id;
    size_t count;
    ea_mqtt_str topics[EA_MQTT_MAX_TOPICS];
    uint8_t qos[EA_MQTT_MAX_TOPICS];
} ea_mqtt_subscribe;

typedef struct ea_mqtt_packet {
    uint8_t type; /* enum ea_mqtt_type */
    union {
        ea_mqtt_connect connect;
        struct {
            uint8_t session_present, return_code;
        } connack;
        ea_mqtt_publish publish;
        uint16_t packet_id;          /* PUBACK PUBREC PUBREL PUBCOMP UNSUBACK */
        ea_mqtt_subscribe subscribe; /* SUBSCRIBE UNSUBSCRIBE SUBACK */
    } u;
} ea_mqtt_packet;

/* Writes the variable-length encoding of len (<= EA_MQTT_MAX_REMAINING) to out; returns 1..4,
 * or 0 if len is too large. */
size_t ea_mqtt_put_remaining(uint32_t len, uint8_t out[4]);

/* Reads a remaining-length field from buf[0..len). Returns 1 and sets *value, *used when complete;
 * 0 when more bytes are needed; -1 when malformed (continuation bit on the fourth byte). */
int ea_mqtt_get_remaining(const uint8_t *buf, size_t len, uint32_t *value, size_t *used);

/* Finds the next packet at the start of buf[0..len). Returns its total size (header + body) when it
 * is complete, 0 when more bytes are needed, -1 when the length field is malformed or the packet
 * would exceed max_packet bytes (err filled). */
long ea_mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, char *err, size_t errlen);

/* Decodes exactly one complete packet buf[0..len) (as delimited by ea_mqtt_frame). Returns 0, or -1
 * with a one-line reason in err (packet type and byte offset). */
int ea_mqtt_decode(const uint8_t *buf, size_t len, ea_mqtt_packet *pkt, char *err, size_t errlen);

/* Encodes pkt into out[0..cap). Returns the encoded size; if that is > cap nothing usable is
 * written. Returns 0 if pkt cannot be encoded (unknown type, field too long, too many topics). */
size_t ea_mqtt_encode(const ea_mqtt_packet *pkt, uint8_t *out, size_t cap);

/* Checks UTF-8 well-formedness per spec 1.5.3 (no U+0000, no surrogates, no overlong forms). */
int ea_mqtt_utf8_valid(const uint8_t *p, size_t len);

/* A subscription filter: non-empty, '+' and '#' only as whole levels, '#' only last (spec 4.7). */
int ea_mqtt_topic_filter_valid(const ea_mqtt_str *t);

/* Convenience view of a C string. */
ea_mqtt_str ea_mqtt_cstr(const char *s);

const char *ea_mqtt_type_name(int type);

#endif
