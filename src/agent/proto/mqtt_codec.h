/*
 * proto/mqtt_codec.h: MQTT 3.1.1 and MQTT 5.0 packet encoding and decoding as pure functions over
 * caller buffers. No allocation, no I/O, no global state: the client state machine (mqtt_client.c)
 * and the fuzz target call the same code.
 *
 * Invariants:
 *  - Decoded strings and payloads are views (pointer + length) into the caller's buffer; they live
 *    as long as that buffer does. Nothing is NUL-terminated.
 *  - ea_mqtt_frame() never reads past `len` and rejects a remaining length that is malformed
 *    (a fifth length byte) or larger than the caller's packet cap, before any byte of the body.
 *  - ea_mqtt_decode() accepts only packets that are well-formed per the 3.1.1 specification:
 *    reserved flag bits, QoS 3, DUP on QoS 0, packet id 0 where an id is required, empty or
 *    wildcard topics in PUBLISH, invalid UTF-8 or U+0000 in strings, and trailing bytes are errors.
 *  - ea_mqtt_decode_v(.., 5, ..) decodes MQTT 5.0 (OASIS MQTT Version 5.0, sections 2 and 3):
 *    property blocks are bounded by their own length and by the packet; a property id that is
 *    unknown, not allowed in that packet, repeated when single-use, out of range (a 0/1 byte that
 *    is 2, Receive Maximum 0, ...) or longer than its block is an error naming the property.
 *    User Properties (0x26) are validated and counted, not kept; of several Subscription
 *    Identifiers in a PUBLISH the first is kept and all are counted.
 *  - ea_mqtt_encode() encodes pkt->version (0 or 4: 3.1.1, 5: 5.0); it writes the properties
 *    whose bit is set in props.present, in ascending id order, so encode(decode(x)) is canonical.
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
    EA_MQTT_AUTH = 15, /* MQTT 5 only */
};

/* Protocol levels (CONNECT byte 7). */
#define EA_MQTT_V311 4
#define EA_MQTT_V5 5

/* MQTT 5 property identifiers (spec 2.2.2.2). */
enum ea_mqtt_prop_id {
    EA_MQTT_P_PAYLOAD_FORMAT = 0x01,
    EA_MQTT_P_MESSAGE_EXPIRY = 0x02,
    EA_MQTT_P_CONTENT_TYPE = 0x03,
    EA_MQTT_P_RESPONSE_TOPIC = 0x08,
    EA_MQTT_P_CORRELATION_DATA = 0x09,
    EA_MQTT_P_SUBSCRIPTION_ID = 0x0B,
    EA_MQTT_P_SESSION_EXPIRY = 0x11,
    EA_MQTT_P_ASSIGNED_CLIENT_ID = 0x12,
    EA_MQTT_P_SERVER_KEEPALIVE = 0x13,
    EA_MQTT_P_AUTH_METHOD = 0x15,
    EA_MQTT_P_AUTH_DATA = 0x16,
    EA_MQTT_P_REQUEST_PROBLEM_INFO = 0x17,
    EA_MQTT_P_WILL_DELAY = 0x18,
    EA_MQTT_P_REQUEST_RESPONSE_INFO = 0x19,
    EA_MQTT_P_RESPONSE_INFO = 0x1A,
    EA_MQTT_P_SERVER_REFERENCE = 0x1C,
    EA_MQTT_P_REASON_STRING = 0x1F,
    EA_MQTT_P_RECEIVE_MAXIMUM = 0x21,
    EA_MQTT_P_TOPIC_ALIAS_MAXIMUM = 0x22,
    EA_MQTT_P_TOPIC_ALIAS = 0x23,
    EA_MQTT_P_MAXIMUM_QOS = 0x24,
    EA_MQTT_P_RETAIN_AVAILABLE = 0x25,
    EA_MQTT_P_USER_PROPERTY = 0x26,
    EA_MQTT_P_MAXIMUM_PACKET_SIZE = 0x27,
    EA_MQTT_P_WILDCARD_SUB_AVAILABLE = 0x28,
    EA_MQTT_P_SUB_ID_AVAILABLE = 0x29,
    EA_MQTT_P_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Largest Variable Byte Integer value (spec 1.5.5); also the largest Subscription Identifier. */
#define EA_MQTT_MAX_VBI 268435455u

/* Largest value the 4-byte remaining-length field can hold (spec 2.2.3). */
#define EA_MQTT_MAX_REMAINING 268435455u
/* Topic filters per SUBSCRIBE / UNSUBSCRIBE / SUBACK handled by this codec. */
#define EA_MQTT_MAX_TOPICS 8

typedef struct ea_mqtt_str {
    const uint8_t *p;
    size_t len;
} ea_mqtt_str;

/* MQTT 5 properties of one packet (or of a will). A field is meaningful when its bit
 * EA_MQTT_HAS(props, id) is set; the encoder writes exactly the fields whose bit is set (User
 * Property is never written). */
typedef struct ea_mqtt_props {
    uint64_t present; /* bit (1 << property id) */
    uint32_t message_expiry, session_expiry, will_delay, maximum_packet_size;
    uint32_t subscription_id; /* the first one */
    uint16_t server_keepalive, receive_maximum, topic_alias_maximum, topic_alias;
    uint8_t payload_format, request_problem_info, request_response_info, maximum_qos,
        retain_available, wildcard_sub_available, sub_id_available, shared_sub_available;
    ea_mqtt_str content_type, response_topic, correlation_data, assigned_client_id, auth_method,
        auth_data, response_info, server_reference, reason_string;
    uint32_t n_user_properties, n_subscription_ids; /* decoded occurrences */
} ea_mqtt_props;

#define EA_MQTT_HAS(props, id) ((((props).present) >> (id)) & 1u)
#define EA_MQTT_SET(props, id) ((props).present |= (uint64_t)1 << (id))

typedef struct ea_mqtt_connect {
    ea_mqtt_props will_props; /* MQTT 5, has_will */
    ea_mqtt_str client_id;
    ea_mqtt_str will_topic, will_payload; /* has_will */
    ea_mqtt_str username;                 /* has_username */
    ea_mqtt_str password;                 /* has_password */
    uint16_t keepalive_s;
    uint8_t clean_session, has_will, /* clean_session is Clean Start in MQTT 5 */ will_qos,
        will_retain, has_username, has_password;
} ea_mqtt_connect;

typedef struct ea_mqtt_publish {
    ea_mqtt_str topic, payload;
    uint16_t packet_id; /* 0 for QoS 0 */
    uint8_t qos, retain, dup;
} ea_mqtt_publish;

/* Also UNSUBSCRIBE (qos unused), SUBACK (qos = return / reason codes) and, in MQTT 5, UNSUBACK
 * (qos = reason codes). In an MQTT 5 SUBSCRIBE qos[i] is the whole Subscription Options byte
 * (QoS in bits 0-1, No Local, Retain As Published, Retain Handling). */
typedef struct ea_mqtt_subscribe {
    uint16_t packet_id;
    size_t count;
    ea_mqtt_str topics[EA_MQTT_MAX_TOPICS];
    uint8_t qos[EA_MQTT_MAX_TOPICS];
} ea_mqtt_subscribe;

typedef struct ea_mqtt_packet {
    uint8_t type;    /* enum ea_mqtt_type */
    uint8_t version; /* 0 or EA_MQTT_V311: 3.1.1; EA_MQTT_V5: 5.0 */
    /* MQTT 5: reason code of PUBACK PUBREC PUBREL PUBCOMP DISCONNECT AUTH (CONNACK uses
     * u.connack.return_code, SUBACK/UNSUBACK u.subscribe.qos) */
    uint8_t reason;
    ea_mqtt_props props; /* MQTT 5: the packet's properties */
    union {
        ea_mqtt_connect connect;
        struct {
            uint8_t session_present, return_code;
        } connack;
        ea_mqtt_publish publish;
        uint16_t packet_id;          /* PUBACK PUBREC PUBREL PUBCOMP, UNSUBACK in 3.1.1 */
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
 * with a one-line reason in err (packet type and byte offset). ea_mqtt_decode is 3.1.1;
 * ea_mqtt_decode_v takes the protocol level (EA_MQTT_V311 or EA_MQTT_V5) and sets pkt->version. */
int ea_mqtt_decode(const uint8_t *buf, size_t len, ea_mqtt_packet *pkt, char *err, size_t errlen);
int ea_mqtt_decode_v(const uint8_t *buf, size_t len, int version, ea_mqtt_packet *pkt, char *err,
                     size_t errlen);

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

/* MQTT 5 reason code name, e.g. 0x87 "Not authorized" (type: the packet it came in, because
 * 0x00 and a few others read differently per packet); "unknown reason code" otherwise. */
const char *ea_mqtt_reason_name(int type, int code);

/* MQTT 5 property name, e.g. "Receive Maximum"; NULL for an unknown id. */
const char *ea_mqtt_prop_name(int id);

#endif
