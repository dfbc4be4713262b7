/*
 * proto/mqtt_codec.c: MQTT 3.1.1 and 5.0 packets <-> bytes (OASIS MQTT 3.1.1 and MQTT Version 5.0,
 * sections 2 and 3). The 5.0 differences are confined to: property blocks (CONNECT, will, CONNACK,
 * PUBLISH, acks, SUBSCRIBE family, DISCONNECT, AUTH), reason codes on acks and DISCONNECT, the
 * Subscription Options byte, the UNSUBACK payload and the AUTH packet.
 *
 * Written by hand because the packet layer is small (a few hundred lines) and the libraries that
 * include it (libmosquitto, paho) bring threads, their own socket loops and unbounded queues; see
 * docs/DESIGN.md "edgeagent uplink". Decoding is a bounds-checked cursor: every read checks the
 * remaining bytes first and a failed read poisons the cursor, so a hostile length can only produce
 * an error, never a read outside the packet.
 */
#include "proto/mqtt_codec.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ remaining length */

size_t ea_mqtt_put_remaining(uint32_t len, uint8_t out[4])
{
    if (len > EA_MQTT_MAX_REMAINING) return 0;
    size_t n = 0;
    do {
        uint8_t b = len % 128;
        len /= 128;
        if (len > 0) b |= 0x80;
        out[n++] = b;
    } while (len > 0);
    return n;
}

int ea_mqtt_get_remaining(const uint8_t *buf, size_t len, uint32_t *value, size_t *used)
{
    uint32_t v = 0, mult = 1;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len) return 0;
        v += (uint32_t)(buf[i] & 0x7f) * mult;
        if (!(buf[i] & 0x80)) {
            *value = v;
            *used = i + 1;
            return 1;
        }
        mult *= 128;
    }
    return -1;
}

long ea_mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, char *err, size_t errlen)
{
    if (len < 2) return 0;
    uint32_t rl;
    size_t used;
    int r = ea_mqtt_get_remaining(buf + 1, len - 1, &rl, &used);
    if (r == 0) return 0;
    if (r < 0) {
        snprintf(err, errlen, "MQTT %s: malformed remaining length (5th length byte)",
                 ea_mqtt_type_name(buf[0] >> 4));
        return -1;
    }
    size_t total = 1 + used + (size_t)rl;
    if (total > max_packet) {
        snprintf(err, errlen, "MQTT %s: packet of %zu bytes exceeds the %zu-byte limit",
                 ea_mqtt_type_name(buf[0] >> 4), total, max_packet);
        return -1;
    }
    return total <= len ? (long)total : 0;
}

/* ------------------------------------------------------------------ UTF-8 */

int ea_mqtt_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            n = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i < n) return 0;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += n;
    }
    return 1;
}

ea_mqtt_str ea_mqtt_cstr(const char *s)
{
    ea_mqtt_str v = {(const uint8_t *)s, s ? strlen(s) : 0};
    return v;
}

const char *ea_mqtt_type_name(int type)
{
    static const char *names[16] = {"reserved-0", "CONNECT",  "CONNACK",     "PUBLISH",
                                    "PUBACK",     "PUBREC",   "PUBREL",      "PUBCOMP",
                                    "SUBSCRIBE",  "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                    "PINGREQ",    "PINGRESP", "DISCONNECT",  "AUTH"};
    return names[type & 15];
}

/* ------------------------------------------------------------------ decoding */

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
    const char *why; /* first failure, NULL while fine */
    size_t why_at;
    int v5;
    char whybuf[96]; /* for reasons that name a property or a code */
} rd;

static int rd_fail(rd *r, const char *why)
{
    if (!r->why) {
        r->why = why;
        r->why_at = r->pos;
    }
    return -1;
}

static int rd_u8(rd *r, uint8_t *v)
{
    if (r->why || r->len - r->pos < 1) return rd_fail(r, "truncated");
    *v = r->p[r->pos++];
    return 0;
}

static int rd_u16(rd *r, uint16_t *v)
{
    if (r->why || r->len - r->pos < 2) return rd_fail(r, "truncated");
    *v = (uint16_t)((r->p[r->pos] << 8) | r->p[r->pos + 1]);
    r->pos += 2;
    return 0;
}

static int rd_bytes(rd *r, ea_mqtt_str *s)
{
    uint16_t n = 0;
    s->p = NULL; /* *s is defined on every path, failures included */
    s->len = 0;
    if (rd_u16(r, &n) < 0) return -1;
    if (r->len - r->pos < n) return rd_fail(r, "string length beyond packet");
    s->p = r->p + r->pos;
    s->len = n;
    r->pos += n;
    return 0;
}

static int rd_string(rd *r, ea_mqtt_str *s)
{
    if (rd_bytes(r, s) < 0) return -1;
    if (!ea_mqtt_utf8_valid(s->p, s->len)) return rd_fail(r, "invalid UTF-8 or U+0000 in string");
    return 0;
}

static int rd_packet_id(rd *r, uint16_t *id)
{
    if (rd_u16(r, id) < 0) return -1;
    if (*id == 0) return rd_fail(r, "packet identifier 0");
    return 0;
}

static int rd_end(rd *r)
{
    if (!r->why && r->pos != r->len) return rd_fail(r, "trailing bytes after packet");
    return r->why ? -1 : 0;
}

/* ------------------------------------------------------------------ MQTT 5 properties */

enum pkind { PK_BYTE01, PK_U16, PK_U16NZ, PK_U32, PK_U32NZ, PK_VBI_NZ, PK_STR, PK_BIN, PK_PAIR };

#define IN(t) (1u << (t))
#define IN_WILL 1u /* bit 0: the will properties of CONNECT */
#define IN_ALL 0xfffeu

typedef struct prop_def {
    uint8_t id, kind;
    uint16_t where; /* IN() mask of packet types (and IN_WILL) it may appear in */
    size_t off;     /* field in ea_mqtt_props (unused for PK_PAIR) */
    const char *name;
} prop_def;

#define PO(f) offsetof(ea_mqtt_props, f)
static const prop_def prop_defs[] = {
    {0x01, PK_BYTE01, IN(EA_MQTT_PUBLISH) | IN_WILL, PO(payload_format),
     "Payload Format Indicator"},
    {0x02, PK_U32, IN(EA_MQTT_PUBLISH) | IN_WILL, PO(message_expiry), "Message Expiry Interval"},
    {0x03, PK_STR, IN(EA_MQTT_PUBLISH) | IN_WILL, PO(content_type), "Content Type"},
    {0x08, PK_STR, IN(EA_MQTT_PUBLISH) | IN_WILL, PO(response_topic), "Response Topic"},
    {0x09, PK_BIN, IN(EA_MQTT_PUBLISH) | IN_WILL, PO(correlation_data), "Correlation Data"},
    {0x0B, PK_VBI_NZ, IN(EA_MQTT_PUBLISH) | IN(EA_MQTT_SUBSCRIBE), PO(subscription_id),
     "Subscription Identifier"},
    {0x11, PK_U32, IN(EA_MQTT_CONNECT) | IN(EA_MQTT_CONNACK) | IN(EA_MQTT_DISCONNECT),
     PO(session_expiry), "Session Expiry Interval"},
    {0x12, PK_STR, IN(EA_MQTT_CONNACK), PO(assigned_client_id), "Assigned Client Identifier"},
    {0x13, PK_U16, IN(EA_MQTT_CONNACK), PO(server_keepalive), "Server Keep Alive"},
    {0x15, PK_STR, IN(EA_MQTT_CONNECT) | IN(EA_MQTT_CONNACK) | IN(EA_MQTT_AUTH), PO(auth_method),
     "Authentication Method"},
    {0x16, PK_BIN, IN(EA_MQTT_CONNECT) | IN(EA_MQTT_CONNACK) | IN(EA_MQTT_AUTH), PO(auth_data),
     "Authentication Data"},
    {0x17, PK_BYTE01, IN(EA_MQTT_CONNECT), PO(request_problem_info), "Request Problem Information"},
    {0x18, PK_U32, IN_WILL, PO(will_delay), "Will Delay Interval"},
    {0x19, PK_BYTE01, IN(EA_MQTT_CONNECT), PO(request_response_info),
     "Request Response Information"},
    {0x1A, PK_STR, IN(EA_MQTT_CONNACK), PO(response_info), "Response Information"},
    {0x1C, PK_STR, IN(EA_MQTT_CONNACK) | IN(EA_MQTT_DISCONNECT), PO(server_reference),
     "Server Reference"},
    {0x1F, PK_STR,
     IN(EA_MQTT_CONNACK) | IN(EA_MQTT_PUBACK) | IN(EA_MQTT_PUBREC) | IN(EA_MQTT_PUBREL) |
         IN(EA_MQTT_PUBCOMP) | IN(EA_MQTT_SUBACK) | IN(EA_MQTT_UNSUBACK) | IN(EA_MQTT_DISCONNECT) |
         IN(EA_MQTT_AUTH),
     PO(reason_string), "Reason String"},
    {0x21, PK_U16NZ, IN(EA_MQTT_CONNECT) | IN(EA_MQTT_CONNACK), PO(receive_maximum),
     "Receive Maximum"},
    {0x22, PK_U16, IN(EA_MQTT_CONNECT) | IN(EA_MQTT_CONNACK), PO(topic_alias_maximum),
     "Topic Alias Maximum"},
    {0x23, PK_U16NZ, IN(EA_MQTT_PUBLISH), PO(topic_alias), "Topic Alias"},
    {0x24, PK_BYTE01, IN(EA_MQTT_CONNACK), PO(maximum_qos), "Maximum QoS"},
    {0x25, PK_BYTE01, IN(EA_MQTT_CONNACK), PO(retain_available), "Retain Available"},
    {0x26, PK_PAIR, IN_ALL | IN_WILL, 0, "User Property"},
    {0x27, PK_U32NZ, IN(EA_MQTT_CONNECT) | IN(EA_MQTT_CONNACK), PO(maximum_packet_size),
     "Maximum Packet Size"},
    {0x28, PK_BYTE01, IN(EA_MQTT_CONNACK), PO(wildcard_sub_available),
     "Wildcard Subscription Available"},
    {0x29, PK_BYTE01, IN(EA_MQTT_CONNACK), PO(sub_id_available),
     "Subscription Identifier Available"},
    {0x2A, PK_BYTE01, IN(EA_MQTT_CONNACK), PO(shared_sub_available),
     "Shared Subscription Available"},
};
#define N_PROPS (sizeof prop_defs / sizeof prop_defs[0])

static const prop_def *prop_def_by_id(uint32_t id)
{
    for (size_t i = 0; i < N_PROPS; i++)
        if (prop_defs[i].id == id) return &prop_defs[i];
    return NULL;
}

const char *ea_mqtt_prop_name(int id)
{
    const prop_def *d = id >= 0 ? prop_def_by_id((uint32_t)id) : NULL;
    return d ? d->name : NULL;
}

/* Reads a Variable Byte Integer (spec 1.5.5): at most 4 bytes. */
static int rd_vbi(rd *r, uint32_t *v)
{
    if (r->why) return -1;
    size_t used;
    int k = ea_mqtt_get_remaining(r->p + r->pos, r->len - r->pos, v, &used);
    if (k == 0) return rd_fail(r, "truncated variable byte integer");
    if (k < 0) return rd_fail(r, "variable byte integer longer than 4 bytes");
    r->pos += used;
    return 0;
}

static int prop_fail(rd *r, const prop_def *d, const char *what)
{
    snprintf(r->whybuf, sizeof r->whybuf, "property 0x%02x (%s): %s", d->id, d->name, what);
    return rd_fail(r, r->whybuf);
}

/* Reads a property block (length + properties) for packet `type` (0: will properties). The block
 * is read through a cursor that ends where the block ends, so no property can reach past it. */
static int rd_props(rd *r, int type, ea_mqtt_props *pr)
{
    uint32_t plen;
    memset(pr, 0, sizeof *pr);
    if (rd_vbi(r, &plen) < 0) return -1;
    if (plen > r->len - r->pos) return rd_fail(r, "property length past the end of the packet");
    rd b = {.p = r->p, .len = r->pos + plen, .pos = r->pos, .v5 = 1};
    uint16_t where = type ? (uint16_t)IN(type) : IN_WILL;
    while (!b.why && b.pos < b.len) {
        uint32_t id;
        size_t at = b.pos;
        if (rd_vbi(&b, &id) < 0) break;
        const prop_def *d = prop_def_by_id(id);
        if (!d) {
            snprintf(b.whybuf, sizeof b.whybuf, "unknown property id 0x%x", id);
            b.pos = at;
            rd_fail(&b, b.whybuf);
            break;
        }
        if (!(d->where & where)) {
            b.pos = at;
            prop_fail(&b, d,
                      type ? "not allowed in this packet" : "not allowed in will properties");
            break;
        }
        int repeatable = d->id == EA_MQTT_P_USER_PROPERTY ||
                         (d->id == EA_MQTT_P_SUBSCRIPTION_ID && type == EA_MQTT_PUBLISH);
        if (EA_MQTT_HAS(*pr, d->id) && !repeatable) {
            b.pos = at;
            prop_fail(&b, d, "appears twice");
            break;
        }
        char *f = (char *)pr + d->off;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        ea_mqtt_str s, s2;
        switch (d->kind) {
        case PK_BYTE01:
            if (rd_u8(&b, &u8) < 0) break;
            if (u8 > 1) prop_fail(&b, d, "value other than 0 or 1");
            *(uint8_t *)f = u8;
            break;
        case PK_U16:
        case PK_U16NZ:
            if (rd_u16(&b, &u16) < 0) break;
            if (d->kind == PK_U16NZ && u16 == 0) prop_fail(&b, d, "value 0");
            *(uint16_t *)f = u16;
            break;
        case PK_U32:
        case PK_U32NZ:
            if (b.len - b.pos < 4) {
                rd_fail(&b, "truncated");
                break;
            }
            u32 = (uint32_t)b.p[b.pos] << 24 | (uint32_t)b.p[b.pos + 1] << 16 |
                  (uint32_t)b.p[b.pos + 2] << 8 | b.p[b.pos + 3];
            b.pos += 4;
            if (d->kind == PK_U32NZ && u32 == 0) prop_fail(&b, d, "value 0");
            *(uint32_t *)f = u32;
            break;
        case PK_VBI_NZ:
            if (rd_vbi(&b, &u32) < 0) break;
            if (u32 == 0) prop_fail(&b, d, "value 0");
            if (!pr->n_subscription_ids++) *(uint32_t *)f = u32;
            break;
        case PK_STR:
            if (rd_string(&b, &s) == 0) *(ea_mqtt_str *)f = s;
            break;
        case PK_BIN:
            if (rd_bytes(&b, &s) == 0) *(ea_mqtt_str *)f = s;
            break;
        case PK_PAIR:
            if (rd_string(&b, &s) == 0 && rd_string(&b, &s2) == 0) pr->n_user_properties++;
            break;
        }
        EA_MQTT_SET(*pr, d->id);
    }
    if (b.why) {
        snprintf(r->whybuf, sizeof r->whybuf, "%s", b.why);
        r->pos = b.why_at;
        return rd_fail(r, r->whybuf);
    }
    r->pos = b.pos;
    return 0;
}

/* ------------------------------------------------------------------ MQTT 5 reason codes */

static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                    0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                        0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                        0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};

static int reason_valid(int type, uint8_t code)
{
    const uint8_t *set;
    size_t n;
#define SET(a) (set = (a), n = sizeof(a))
    switch (type) {
    case EA_MQTT_CONNACK:
        SET(rc_connack);
        break;
    case EA_MQTT_PUBACK:
    case EA_MQTT_PUBREC:
        SET(rc_puback);
        break;
    case EA_MQTT_PUBREL:
    case EA_MQTT_PUBCOMP:
        SET(rc_pubrel);
        break;
    case EA_MQTT_SUBACK:
        SET(rc_suback);
        break;
    case EA_MQTT_UNSUBACK:
        SET(rc_unsuback);
        break;
    case EA_MQTT_DISCONNECT:
        SET(rc_disconnect);
        break;
    case EA_MQTT_AUTH:
        SET(rc_auth);
        break;
    default:
        return 0;
    }
#undef SET
    return memchr(set, code, n) != NULL;
}

const char *ea_mqtt_reason_name(int type, int code)
{
    static const struct {
        uint8_t code;
        const char *name;
    } names[] = {
        {0x04, "Disconnect with Will Message"},
        {0x10, "No matching subscribers"},
        {0x11, "No subscription existed"},
        {0x18, "Continue authentication"},
        {0x19, "Re-authenticate"},
        {0x80, "Unspecified error"},
        {0x81, "Malformed Packet"},
        {0x82, "Protocol Error"},
        {0x83, "Implementation specific error"},
        {0x84, "Unsupported Protocol Version"},
        {0x85, "Client Identifier not valid"},
        {0x86, "Bad User Name or Password"},
        {0x87, "Not authorized"},
        {0x88, "Server unavailable"},
        {0x89, "Server busy"},
        {0x8A, "Banned"},
        {0x8B, "Server shutting down"},
        {0x8C, "Bad authentication method"},
        {0x8D, "Keep Alive timeout"},
        {0x8E, "Session taken over"},
        {0x8F, "Topic Filter invalid"},
        {0x90, "Topic Name invalid"},
        {0x91, "Packet Identifier in use"},
        {0x92, "Packet Identifier not found"},
        {0x93, "Receive Maximum exceeded"},
        {0x94, "Topic Alias invalid"},
        {0x95, "Packet too large"},
        {0x96, "Message rate too high"},
        {0x97, "Quota exceeded"},
        {0x98, "Administrative action"},
        {0x99, "Payload format invalid"},
        {0x9A, "Retain not supported"},
        {0x9B, "QoS not supported"},
        {0x9C, "Use another server"},
        {0x9D, "Server moved"},
        {0x9E, "Shared Subscriptions not supported"},
        {0x9F, "Connection rate exceeded"},
        {0xA0, "Maximum connect time"},
        {0xA1, "Subscription Identifiers not supported"},
        {0xA2, "Wildcard Subscriptions not supported"},
    };
    if (code == 0x00)
        return type == EA_MQTT_DISCONNECT ? "Normal disconnection"
               : type == EA_MQTT_SUBACK   ? "Granted QoS 0"
                                          : "Success";
    if (type == EA_MQTT_SUBACK && code == 0x01) return "Granted QoS 1";
    if (type == EA_MQTT_SUBACK && code == 0x02) return "Granted QoS 2";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code) return names[i].name;
    return "unknown reason code";
}

static int decode_connect(rd *r, ea_mqtt_packet *pkt)
{
    ea_mqtt_connect *c = &pkt->u.connect;
    ea_mqtt_str proto;
    uint8_t level, flags;
    memset(c, 0, sizeof *c);
    if (rd_string(r, &proto) < 0 || rd_u8(r, &level) < 0 || rd_u8(r, &flags) < 0 ||
        rd_u16(r, &c->keepalive_s) < 0)
        return -1;
    if (proto.len != 4 || memcmp(proto.p, "MQTT", 4) != 0)
        return rd_fail(r, "protocol name is not MQTT");
    if (!r->v5 && level != 4) return rd_fail(r, "protocol level is not 4 (3.1.1)");
    if (r->v5 && level != 5) return rd_fail(r, "protocol level is not 5 (MQTT 5.0)");
    if (flags & 0x01) return rd_fail(r, "reserved connect flag set");
    c->clean_session = (flags >> 1) & 1;
    c->has_will = (flags >> 2) & 1;
    c->will_qos = (flags >> 3) & 3;
    c->will_retain = (flags >> 5) & 1;
    c->has_password = (flags >> 6) & 1;
    c->has_username = (flags >> 7) & 1;
    if (c->will_qos == 3) return rd_fail(r, "will QoS 3");
    if (!c->has_will && (c->will_qos || c->will_retain))
        return rd_fail(r, "will QoS/retain without will flag");
    if (!r->v5 && c->has_password && !c->has_username)
        return rd_fail(r, "password without user name");
    if (r->v5 && rd_props(r, EA_MQTT_CONNECT, &pkt->props) < 0) return -1;
    if (rd_string(r, &c->client_id) < 0) return -1;
    if (c->has_will && r->v5 && rd_props(r, 0, &c->will_props) < 0) return -1;
    if (c->has_will && (rd_string(r, &c->will_topic) < 0 || rd_bytes(r, &c->will_payload) < 0))
        return -1;
    if (c->has_username && rd_string(r, &c->username) < 0) return -1;
    if (c->has_password && rd_bytes(r, &c->password) < 0) return -1;
    return rd_end(r);
}

static int rd_reason(rd *r, int type, uint8_t code)
{
    if (reason_valid(type, code)) return 0;
    snprintf(r->whybuf, sizeof r->whybuf, "reason code 0x%02x is not valid in %s", code,
             ea_mqtt_type_name(type));
    return rd_fail(r, r->whybuf);
}

static int decode_connack(rd *r, ea_mqtt_packet *pkt)
{
    uint8_t ack, rc;
    if (rd_u8(r, &ack) < 0 || rd_u8(r, &rc) < 0) return -1;
    if (ack & 0xfe) return rd_fail(r, "reserved CONNACK flag set");
    if (!r->v5 && rc > 5) return rd_fail(r, "unknown CONNACK return code");
    if (r->v5 && rd_reason(r, EA_MQTT_CONNACK, rc) < 0) return -1;
    if (r->v5 && rc != 0 && (ack & 1)) return rd_fail(r, "session present with a failure code");
    pkt->u.connack.session_present = ack & 1;
    pkt->u.connack.return_code = rc;
    if (r->v5 && rd_props(r, EA_MQTT_CONNACK, &pkt->props) < 0) return -1;
    return rd_end(r);
}

static int topic_name_valid(const ea_mqtt_str *t)
{
    if (t->len == 0) return 0;
    for (size_t i = 0; i < t->len; i++)
        if (t->p[i] == '+' || t->p[i] == '#') return 0;
    return 1;
}

/* Wildcards must fill a whole level; '#' only as the last level (spec 4.7.1). */
int ea_mqtt_topic_filter_valid(const ea_mqtt_str *t)
{
    if (t->len == 0) return 0;
    for (size_t i = 0; i < t->len; i++) {
        uint8_t c = t->p[i];
        if (c != '+' && c != '#') continue;
        int starts_level = i == 0 || t->p[i - 1] == '/';
        int ends_level = i + 1 == t->len || t->p[i + 1] == '/';
        if (!starts_level || !ends_level) return 0;
        if (c == '#' && i + 1 != t->len) return 0;
    }
    return 1;
}

static int decode_publish(rd *r, uint8_t flags, ea_mqtt_packet *pkt)
{
    ea_mqtt_publish *p = &pkt->u.publish;
    memset(p, 0, sizeof *p);
    p->dup = (flags >> 3) & 1;
    p->qos = (flags >> 1) & 3;
    p->retain = flags & 1;
    if (p->qos == 3) return rd_fail(r, "QoS 3");
    if (p->qos == 0 && p->dup) return rd_fail(r, "DUP set on QoS 0");
    if (rd_string(r, &p->topic) < 0) return -1;
    /* MQTT 5: an empty topic is allowed only with a Topic Alias, checked after the properties */
    if (!topic_name_valid(&p->topic) && !(r->v5 && p->topic.len == 0))
        return rd_fail(r, "empty topic or wildcard in topic name");
    if (p->qos > 0 && rd_packet_id(r, &p->packet_id) < 0) return -1;
    if (r->v5 && rd_props(r, EA_MQTT_PUBLISH, &pkt->props) < 0) return -1;
    if (r->v5 && p->topic.len == 0 && !EA_MQTT_HAS(pkt->props, EA_MQTT_P_TOPIC_ALIAS))
        return rd_fail(r, "empty topic name without a Topic Alias");
    if (r->why) return -1;
    p->payload.p = r->p + r->pos;
    p->payload.len = r->len - r->pos;
    r->pos = r->len;
    return 0;
}

static int decode_id_only(rd *r, uint16_t *id)
{
    if (rd_packet_id(r, id) < 0) return -1;
    return rd_end(r);
}

/* MQTT 5 PUBACK PUBREC PUBREL PUBCOMP: id [reason [properties]] (spec 3.4.2.1: a remaining length
 * of 2 means Success and no properties, 3 means no properties). */
static int decode_ack_v5(rd *r, int type, ea_mqtt_packet *pkt)
{
    if (rd_packet_id(r, &pkt->u.packet_id) < 0) return -1;
    if (r->pos == r->len) return 0;
    if (rd_u8(r, &pkt->reason) < 0 || rd_reason(r, type, pkt->reason) < 0) return -1;
    if (r->pos < r->len && rd_props(r, type, &pkt->props) < 0) return -1;
    return rd_end(r);
}

/* MQTT 5 DISCONNECT and AUTH: [reason [properties]] (a remaining length of 0 means Success). */
static int decode_reason_only_v5(rd *r, int type, ea_mqtt_packet *pkt)
{
    if (r->pos == r->len) return 0;
    if (rd_u8(r, &pkt->reason) < 0 || rd_reason(r, type, pkt->reason) < 0) return -1;
    if (r->pos < r->len && rd_props(r, type, &pkt->props) < 0) return -1;
    return rd_end(r);
}

static int decode_subscribe(rd *r, int type, ea_mqtt_packet *pkt)
{
    ea_mqtt_subscribe *s = &pkt->u.subscribe;
    memset(s, 0, sizeof *s);
    if (rd_packet_id(r, &s->packet_id) < 0) return -1;
    if (r->v5 && rd_props(r, type, &pkt->props) < 0) return -1;
    while (!r->why && r->pos < r->len) {
        if (s->count == EA_MQTT_MAX_TOPICS) return rd_fail(r, "too many topics in one packet");
        if (type == EA_MQTT_SUBACK || type == EA_MQTT_UNSUBACK) {
            uint8_t code;
            if (rd_u8(r, &code) < 0) return -1;
            if (!r->v5 && code > 2 && code != 0x80) return rd_fail(r, "invalid SUBACK return code");
            if (r->v5 && rd_reason(r, type, code) < 0) return -1;
            s->qos[s->count++] = code;
            continue;
        }
        ea_mqtt_str *t = &s->topics[s->count];
        if (rd_string(r, t) < 0) return -1;
        if (!ea_mqtt_topic_filter_valid(t)) return rd_fail(r, "invalid topic filter");
        if (type == EA_MQTT_SUBSCRIBE) {
            uint8_t q;
            if (rd_u8(r, &q) < 0) return -1;
            if (!r->v5 && q > 2) return rd_fail(r, "invalid requested QoS");
            if (r->v5 && (q & 3) == 3) return rd_fail(r, "invalid requested QoS");
            if (r->v5 && (q & 0xc0)) return rd_fail(r, "reserved subscription option bits set");
            if (r->v5 && ((q >> 4) & 3) == 3) return rd_fail(r, "Retain Handling 3");
            s->qos[s->count] = q;
        }
        s->count++;
    }
    if (!r->why && s->count == 0) return rd_fail(r, "no topics");
    return rd_end(r);
}

/* Fixed-header flags each type must carry (spec 2.2.2); PUBLISH is checked separately. */
static int flags_valid(int type, uint8_t flags)
{
    if (type == EA_MQTT_PUBLISH) return 1;
    if (type == EA_MQTT_PUBREL || type == EA_MQTT_SUBSCRIBE || type == EA_MQTT_UNSUBSCRIBE)
        return flags == 2;
    return flags == 0;
}

int ea_mqtt_decode(const uint8_t *buf, size_t len, ea_mqtt_packet *pkt, char *err, size_t errlen)
{
    return ea_mqtt_decode_v(buf, len, EA_MQTT_V311, pkt, err, errlen);
}

int ea_mqtt_decode_v(const uint8_t *buf, size_t len, int version, ea_mqtt_packet *pkt, char *err,
                     size_t errlen)
{
    memset(pkt, 0, sizeof *pkt);
    int v5 = version == EA_MQTT_V5;
    if (!v5 && version != EA_MQTT_V311 && version != 0) {
        snprintf(err, errlen, "MQTT: protocol level %d is not supported", version);
        return -1;
    }
    if (len < 2) {
        snprintf(err, errlen, "MQTT: packet of %zu bytes is too short", len);
        return -1;
    }
    int type = buf[0] >> 4;
    uint8_t flags = buf[0] & 0x0f;
    uint32_t rl;
    size_t used;
    if (ea_mqtt_get_remaining(buf + 1, len - 1, &rl, &used) != 1 || 1 + used + (size_t)rl != len) {
        snprintf(err, errlen, "MQTT %s: remaining length does not match the %zu bytes given",
                 ea_mqtt_type_name(type), len);
        return -1;
    }
    if (type == 0 || (type == 15 && !v5)) {
        snprintf(err, errlen, "MQTT: reserved packet type %d", type);
        return -1;
    }
    if (!flags_valid(type, flags)) {
        snprintf(err, errlen, "MQTT %s: invalid fixed-header flags 0x%x", ea_mqtt_type_name(type),
                 flags);
        return -1;
    }
    pkt->type = (uint8_t)type;
    pkt->version = v5 ? EA_MQTT_V5 : EA_MQTT_V311;
    rd r = {.p = buf + 1 + used, .len = rl, .v5 = v5};
    int rc;
    switch (type) {
    case EA_MQTT_CONNECT:
        rc = decode_connect(&r, pkt);
        break;
    case EA_MQTT_CONNACK:
        rc = decode_connack(&r, pkt);
        break;
    case EA_MQTT_PUBLISH:
        rc = decode_publish(&r, flags, pkt);
        break;
    case EA_MQTT_UNSUBACK:
        rc = v5 ? decode_subscribe(&r, type, pkt) : decode_id_only(&r, &pkt->u.packet_id);
        break;
    case EA_MQTT_SUBSCRIBE:
    case EA_MQTT_UNSUBSCRIBE:
    case EA_MQTT_SUBACK:
        rc = decode_subscribe(&r, type, pkt);
        break;
    case EA_MQTT_DISCONNECT:
    case EA_MQTT_AUTH:
        rc = v5 ? decode_reason_only_v5(&r, type, pkt) : rd_end(&r);
        break;
    case EA_MQTT_PINGREQ:
    case EA_MQTT_PINGRESP:
        rc = rd_end(&r);
        break;
    default: /* PUBACK PUBREC PUBREL PUBCOMP */
        rc = v5 ? decode_ack_v5(&r, type, pkt) : decode_id_only(&r, &pkt->u.packet_id);
        break;
    }
    if (rc < 0) {
        snprintf(err, errlen, "MQTT %s: %s at body offset %zu", ea_mqtt_type_name(type),
                 r.why ? r.why : "malformed", r.why_at);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ encoding */

/* A writer that counts everything and stores only what fits; `bad` marks an unencodable field. */
typedef struct wr {
    uint8_t *out;
    size_t cap, pos;
    int bad;
} wr;

static void wr_u8(wr *w, uint8_t v)
{
    if (w->pos < w->cap) w->out[w->pos] = v;
    w->pos++;
}

static void wr_u16(wr *w, uint16_t v)
{
    wr_u8(w, (uint8_t)(v >> 8));
    wr_u8(w, (uint8_t)v);
}

static void wr_raw(wr *w, const uint8_t *p, size_t n)
{
    if (n && w->pos < w->cap && w->cap - w->pos >= n) memcpy(w->out + w->pos, p, n);
    w->pos += n;
}

static void wr_str(wr *w, ea_mqtt_str s)
{
    if (s.len > 0xffff) {
        w->bad = 1;
        return;
    }
    wr_u16(w, (uint16_t)s.len);
    wr_raw(w, s.p, s.len);
}

static void wr_u32(wr *w, uint32_t v)
{
    wr_u16(w, (uint16_t)(v >> 16));
    wr_u16(w, (uint16_t)v);
}

static void wr_vbi(wr *w, uint32_t v)
{
    uint8_t b[4];
    size_t n = ea_mqtt_put_remaining(v, b);
    if (n == 0) {
        w->bad = 1;
        return;
    }
    wr_raw(w, b, n);
}

static void wr_props_body(wr *w, uint16_t where, const ea_mqtt_props *pr)
{
    for (size_t i = 0; i < N_PROPS; i++) {
        const prop_def *d = &prop_defs[i];
        if (!EA_MQTT_HAS(*pr, d->id) || d->kind == PK_PAIR) continue;
        if (!(d->where & where)) {
            w->bad = 1;
            return;
        }
        const char *f = (const char *)pr + d->off;
        wr_vbi(w, d->id);
        switch (d->kind) {
        case PK_BYTE01:
            wr_u8(w, *(const uint8_t *)f);
            break;
        case PK_U16:
        case PK_U16NZ:
            wr_u16(w, *(const uint16_t *)f);
            break;
        case PK_U32:
        case PK_U32NZ:
            wr_u32(w, *(const uint32_t *)f);
            break;
        case PK_VBI_NZ:
            wr_vbi(w, *(const uint32_t *)f);
            break;
        default: /* PK_STR, PK_BIN */
            wr_str(w, *(const ea_mqtt_str *)f);
            break;
        }
    }
}

/* Property length, then the properties (type 0: will properties). */
static void wr_props(wr *w, int type, const ea_mqtt_props *pr)
{
    uint16_t where = type ? (uint16_t)IN(type) : IN_WILL;
    uint64_t known = 0;
    for (size_t i = 0; i < N_PROPS; i++)
        known |= (uint64_t)1 << prop_defs[i].id;
    if (pr->present & ~known) {
        w->bad = 1;
        return;
    }
    wr counter = {NULL, 0, 0, 0};
    wr_props_body(&counter, where, pr);
    if (counter.bad) {
        w->bad = 1;
        return;
    }
    wr_vbi(w, (uint32_t)counter.pos);
    wr_props_body(w, where, pr);
}

/* Any property set (other than User Property, which is never written)? */
static int props_empty(const ea_mqtt_props *pr)
{
    return (pr->present & ~((uint64_t)1 << EA_MQTT_P_USER_PROPERTY)) == 0;
}

static uint8_t fixed_flags(const ea_mqtt_packet *pkt)
{
    switch (pkt->type) {
    case EA_MQTT_PUBLISH:
        return (uint8_t)((pkt->u.publish.dup ? 8 : 0) | ((pkt->u.publish.qos & 3) << 1) |
                         (pkt->u.publish.retain ? 1 : 0));
    case EA_MQTT_PUBREL:
    case EA_MQTT_SUBSCRIBE:
    case EA_MQTT_UNSUBSCRIBE:
        return 2;
    default:
        return 0;
    }
}

static void encode_connect(wr *w, const ea_mqtt_packet *pkt)
{
    const ea_mqtt_connect *c = &pkt->u.connect;
    int v5 = pkt->version == EA_MQTT_V5;
    wr_str(w, ea_mqtt_cstr("MQTT"));
    wr_u8(w, v5 ? 5 : 4);
    uint8_t flags = (uint8_t)((c->clean_session ? 0x02 : 0) | (c->has_username ? 0x80 : 0) |
                              (c->has_password ? 0x40 : 0));
    if (c->has_will)
        flags |= (uint8_t)(0x04 | ((c->will_qos & 3) << 3) | (c->will_retain ? 0x20 : 0));
    wr_u8(w, flags);
    wr_u16(w, c->keepalive_s);
    if (v5) wr_props(w, EA_MQTT_CONNECT, &pkt->props);
    wr_str(w, c->client_id);
    if (c->has_will) {
        if (v5) wr_props(w, 0, &c->will_props);
        wr_str(w, c->will_topic);
        wr_str(w, c->will_payload);
    }
    if (c->has_username) wr_str(w, c->username);
    if (c->has_password) wr_str(w, c->password);
}

static void encode_body(wr *w, const ea_mqtt_packet *pkt)
{
    const ea_mqtt_subscribe *s = &pkt->u.subscribe;
    int v5 = pkt->version == EA_MQTT_V5;
    if (pkt->version != 0 && pkt->version != EA_MQTT_V311 && !v5) {
        w->bad = 1;
        return;
    }
    switch (pkt->type) {
    case EA_MQTT_CONNECT:
        encode_connect(w, pkt);
        break;
    case EA_MQTT_CONNACK:
        wr_u8(w, pkt->u.connack.session_present ? 1 : 0);
        wr_u8(w, pkt->u.connack.return_code);
        if (v5) wr_props(w, EA_MQTT_CONNACK, &pkt->props);
        break;
    case EA_MQTT_PUBLISH:
        wr_str(w, pkt->u.publish.topic);
        if (pkt->u.publish.qos > 0) wr_u16(w, pkt->u.publish.packet_id);
        if (v5) wr_props(w, EA_MQTT_PUBLISH, &pkt->props);
        wr_raw(w, pkt->u.publish.payload.p, pkt->u.publish.payload.len);
        break;
    case EA_MQTT_PUBACK:
    case EA_MQTT_PUBREC:
    case EA_MQTT_PUBREL:
    case EA_MQTT_PUBCOMP:
        wr_u16(w, pkt->u.packet_id);
        /* MQTT 5: the shortest form (spec 3.4.2.1) */
        if (v5 && (pkt->reason != 0 || !props_empty(&pkt->props))) wr_u8(w, pkt->reason);
        if (v5 && !props_empty(&pkt->props)) wr_props(w, pkt->type, &pkt->props);
        break;
    case EA_MQTT_UNSUBACK:
        if (!v5) {
            wr_u16(w, pkt->u.packet_id);
            break;
        }
        /* MQTT 5 UNSUBACK carries reason codes like SUBACK */
        __attribute__((fallthrough));
    case EA_MQTT_SUBSCRIBE:
    case EA_MQTT_UNSUBSCRIBE:
    case EA_MQTT_SUBACK:
        if (s->count == 0 || s->count > EA_MQTT_MAX_TOPICS) {
            w->bad = 1;
            break;
        }
        wr_u16(w, s->packet_id);
        if (v5) wr_props(w, pkt->type, &pkt->props);
        for (size_t i = 0; i < s->count; i++) {
            if (pkt->type == EA_MQTT_SUBSCRIBE || pkt->type == EA_MQTT_UNSUBSCRIBE)
                wr_str(w, s->topics[i]);
            if (pkt->type != EA_MQTT_UNSUBSCRIBE) wr_u8(w, s->qos[i]);
        }
        break;
    case EA_MQTT_DISCONNECT:
    case EA_MQTT_AUTH:
        if (!v5 && pkt->type == EA_MQTT_AUTH) {
            w->bad = 1;
            break;
        }
        if (v5 && (pkt->reason != 0 || !props_empty(&pkt->props))) wr_u8(w, pkt->reason);
        if (v5 && !props_empty(&pkt->props)) wr_props(w, pkt->type, &pkt->props);
        break;
    case EA_MQTT_PINGREQ:
    case EA_MQTT_PINGRESP:
        break;
    default:
        w->bad = 1;
        break;
    }
}

size_t ea_mqtt_encode(const ea_mqtt_packet *pkt, uint8_t *out, size_t cap)
{
    wr counter = {NULL, 0, 0, 0};
    encode_body(&counter, pkt);
    if (counter.bad || counter.pos > EA_MQTT_MAX_REMAINING) return 0;
    uint8_t rl[4];
    size_t rl_len = ea_mqtt_put_remaining((uint32_t)counter.pos, rl);
    size_t total = 1 + rl_len + counter.pos;
    if (total > cap) return total;
    out[0] = (uint8_t)((pkt->type << 4) | fixed_flags(pkt));
    memcpy(out + 1, rl, rl_len);
    wr w = {out + 1 + rl_len, counter.pos, 0, 0};
    encode_body(&w, pkt);
    return total;
}
