/* tests/fuzz/fuzz_agent_mqtt.c: libFuzzer target for the MQTT packet decoder, 3.1.1 and 5.0 (the
 * bytes a broker, or anything pretending to be one, sends the agent). The input is treated as a
 * receive buffer: frames are cut with ea_mqtt_frame() exactly as the client does and each is
 * decoded as 3.1.1 and as MQTT 5.
 *  - 3.1.1: every packet that decodes must re-encode to the same bytes and decode again.
 *  - 5.0: property order is free and User Properties are not kept, so the check is that the
 *    re-encoding decodes again to the same type, and that encoding is canonical: encoding the
 *    second decode gives exactly the bytes of the first encoding.
 * Both catch decoder/encoder disagreements as well as memory errors. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mqtt_codec.h"

static void check_roundtrip(const uint8_t *pkt, size_t len, const ea_mqtt_packet *p)
{
    uint8_t buf[4096];
    size_t n = ea_mqtt_encode(p, buf, sizeof buf);
    if (n == 0 || n > sizeof buf) return; /* larger than the scratch buffer: skip the comparison */
    /* the remaining length may legally be encoded non-minimally by a peer: compare bodies only */
    ea_mqtt_packet again;
    char err[160];
    if (ea_mqtt_decode(buf, n, &again, err, sizeof err) != 0) abort();
    if (again.type != p->type) abort();
    uint32_t rl1, rl2;
    size_t u1, u2;
    if (ea_mqtt_get_remaining(pkt + 1, len - 1, &rl1, &u1) != 1 ||
        ea_mqtt_get_remaining(buf + 1, n - 1, &rl2, &u2) != 1)
        abort();
    if (rl1 != rl2 || memcmp(pkt + 1 + u1, buf + 1 + u2, rl1) != 0 || pkt[0] != buf[0]) abort();
}

static void check_roundtrip_v5(const ea_mqtt_packet *p)
{
    static uint8_t buf[8192], buf2[8192];
    size_t n = ea_mqtt_encode(p, buf, sizeof buf);
    if (n == 0) abort(); /* whatever decodes must be encodable */
    if (n > sizeof buf) return;
    ea_mqtt_packet again;
    char err[160];
    if (ea_mqtt_decode_v(buf, n, EA_MQTT_V5, &again, err, sizeof err) != 0) abort();
    if (again.type != p->type || again.version != EA_MQTT_V5) abort();
    if ((again.props.present | ((uint64_t)1 << EA_MQTT_P_USER_PROPERTY)) !=
        (p->props.present | ((uint64_t)1 << EA_MQTT_P_USER_PROPERTY)))
        abort();
    size_t n2 = ea_mqtt_encode(&again, buf2, sizeof buf2);
    if (n2 != n || memcmp(buf, buf2, n) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    char err[160];
    while (off < size) {
        long n = ea_mqtt_frame(data + off, size - off, 64 * 1024, err, sizeof err);
        if (n <= 0) break;
        ea_mqtt_packet p;
        if (ea_mqtt_decode(data + off, (size_t)n, &p, err, sizeof err) == 0)
            check_roundtrip(data + off, (size_t)n, &p);
        if (ea_mqtt_decode_v(data + off, (size_t)n, EA_MQTT_V5, &p, err, sizeof err) == 0)
            check_roundtrip_v5(&p);
        off += (size_t)n;
    }
    return 0;
}
