/*
 * proto/mqtt_codec.c: MQTT 3.1.1 packets <-> bytes (OASIS MQTT 3.1.1, sections 2 and 3).
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
                                    "PINGREQ",    "PINGRESP", "DISCONNECT",  "reserved-15"};
    return names[type & 15];
}

/* ------------------------------------------------------------------ decoding */

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
    const char *why; /* first failure, NULL while fine */
    size_t why_at;
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
    uint16_t n;
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

static int decode_connect(rd *r, ea_mqtt_connect *c)
{
    ea_mqtt_str proto;
    uint8_t level, flags;
    memset(c, 0, sizeof *c);
    if (rd_string(r, &proto) < 0 || rd_u8(r, &level) < 0 || rd_u8(r, &flags) < 0 ||
        rd_u16(r, &c->keepalive_s) < 0)
        return -1;
    if (proto.len != 4 || memcmp(proto.p, "MQTT", 4) != 0)
        return rd_fail(r, "protocol name is not MQTT");
    if (level != 4) return rd_fail(r, "protocol level is not 4 (3.1.1)");
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
    if (c->has_password && !c->has_username) return rd_fail(r, "password without user name");
    if (rd_string(r, &c->client_id) < 0) return -1;
    if (c->has_will && (rd_string(r, &c->will_topic) < 0 || rd_bytes(r, &c->will_payload) < 0))
        return -1;
    if (c->has_username && rd_string(r, &c->username) < 0) return -1;
    if (c->has_password && rd_bytes(r, &c->password) < 0) return -1;
    return rd_end(r);
}

static int decode_connack(rd *r, ea_mqtt_packet *pkt)
{
    uint8_t ack, rc;
    if (rd_u8(r, &ack) < 0 || rd_u8(r, &rc) < 0) return -1;
    if (ack & 0xfe) return rd_fail(r, "reserved CONNACK flag set");
    if (rc > 5) return rd_fail(r, "unknown CONNACK return code");
    pkt->u.connack.session_present = ack & 1;
    pkt->u.connack.return_code = rc;
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

static int decode_publish(rd *r, uint8_t flags, ea_mqtt_publish *p)
{
    memset(p, 0, sizeof *p);
    p->dup = (flags >> 3) & 1;
    p->qos = (flags >> 1) & 3;
    p->retain = flags & 1;
    if (p->qos == 3) return rd_fail(r, "QoS 3");
    if (p->qos == 0 && p->dup) return rd_fail(r, "DUP set on QoS 0");
    if (rd_string(r, &p->topic) < 0) return -1;
    if (!topic_name_valid(&p->topic)) return rd_fail(r, "empty topic or wildcard in topic name");
    if (p->qos > 0 && rd_packet_id(r, &p->packet_id) < 0) return -1;
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

static int decode_subscribe(rd *r, int type, ea_mqtt_subscribe *s)
{
    memset(s, 0, sizeof *s);
    if (rd_packet_id(r, &s->packet_id) < 0) return -1;
    while (!r->why && r->pos < r->len) {
        if (s->count == EA_MQTT_MAX_TOPICS) return rd_fail(r, "too many topics in one packet");
        if (type == EA_MQTT_SUBACK) {
            uint8_t code;
            if (rd_u8(r, &code) < 0) return -1;
            if (code > 2 && code != 0x80) return rd_fail(r, "invalid SUBACK return code");
            s->qos[s->count++] = code;
            continue;
        }
        ea_mqtt_str *t = &s->topics[s->count];
        if (rd_string(r, t) < 0) return -1;
        if (!ea_mqtt_topic_filter_valid(t)) return rd_fail(r, "invalid topic filter");
        if (type == EA_MQTT_SUBSCRIBE) {
            uint8_t q;
            if (rd_u8(r, &q) < 0) return -1;
            if (q > 2) return rd_fail(r, "invalid requested QoS");
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
    memset(pkt, 0, sizeof *pkt);
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
    if (type == 0 || type == 15) {
        snprintf(err, errlen, "MQTT: reserved packet type %d", type);
        return -1;
    }
    if (!flags_valid(type, flags)) {
        snprintf(err, errlen, "MQTT %s: invalid fixed-header flags 0x%x", ea_mqtt_type_name(type),
                 flags);
        return -1;
    }
    pkt->type = (uint8_t)type;
    rd r = {buf + 1 + used, rl, 0, NULL, 0};
    int rc;
    switch (type) {
    case EA_MQTT_CONNECT:
        rc = decode_connect(&r, &pkt->u.connect);
        break;
    case EA_MQTT_CONNACK:
        rc = decode_connack(&r, pkt);
        break;
    case EA_MQTT_PUBLISH:
        rc = decode_publish(&r, flags, &pkt->u.publish);
        break;
    case EA_MQTT_SUBSCRIBE:
    case EA_MQTT_UNSUBSCRIBE:
    case EA_MQTT_SUBACK:
        rc = decode_subscribe(&r, type, &pkt->u.subscribe);
        break;
    case EA_MQTT_PINGREQ:
    case EA_MQTT_PINGRESP:
    case EA_MQTT_DISCONNECT:
        rc = rd_end(&r);
        break;
    default:
        rc = decode_id_only(&r, &pkt->u.packet_id);
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

static void encode_connect(wr *w, const ea_mqtt_connect *c)
{
    wr_str(w, ea_mqtt_cstr("MQTT"));
    wr_u8(w, 4);
    uint8_t flags = (uint8_t)((c->clean_session ? 0x02 : 0) | (c->has_username ? 0x80 : 0) |
                              (c->has_password ? 0x40 : 0));
    if (c->has_will)
        flags |= (uint8_t)(0x04 | ((c->will_qos & 3) << 3) | (c->will_retain ? 0x20 : 0));
    wr_u8(w, flags);
    wr_u16(w, c->keepalive_s);
    wr_str(w, c->client_id);
    if (c->has_will) {
        wr_str(w, c->will_topic);
        wr_str(w, c->will_payload);
    }
    if (c->has_username) wr_str(w, c->username);
    if (c->has_password) wr_str(w, c->password);
}

static void encode_body(wr *w, const ea_mqtt_packet *pkt)
{
    const ea_mqtt_subscribe *s = &pkt->u.subscribe;
    switch (pkt->type) {
    case EA_MQTT_CONNECT:
        encode_connect(w, &pkt->u.connect);
        break;
    case EA_MQTT_CONNACK:
        wr_u8(w, pkt->u.connack.session_present ? 1 : 0);
        wr_u8(w, pkt->u.connack.return_code);
        break;
    case EA_MQTT_PUBLISH:
        wr_str(w, pkt->u.publish.topic);
        if (pkt->u.publish.qos > 0) wr_u16(w, pkt->u.publish.packet_id);
        wr_raw(w, pkt->u.publish.payload.p, pkt->u.publish.payload.len);
        break;
    case EA_MQTT_PUBACK:
    case EA_MQTT_PUBREC:
    case EA_MQTT_PUBREL:
    case EA_MQTT_PUBCOMP:
    case EA_MQTT_UNSUBACK:
        wr_u16(w, pkt->u.packet_id);
        break;
    case EA_MQTT_SUBSCRIBE:
    case EA_MQTT_UNSUBSCRIBE:
    case EA_MQTT_SUBACK:
        if (s->count == 0 || s->count > EA_MQTT_MAX_TOPICS) {
            w->bad = 1;
            break;
        }
        wr_u16(w, s->packet_id);
        for (size_t i = 0; i < s->count; i++) {
            if (pkt->type != EA_MQTT_SUBACK) wr_str(w, s->topics[i]);
            if (pkt->type != EA_MQTT_UNSUBSCRIBE) wr_u8(w, s->qos[i]);
        }
        break;
    case EA_MQTT_PINGREQ:
    case EA_MQTT_PINGRESP:
    case EA_MQTT_DISCONNECT:
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
