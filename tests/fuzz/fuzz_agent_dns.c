/* tests/fuzz/fuzz_agent_dns.c: libFuzzer target for the DNS A-answer parser of the uplink
 * resolver (any host on the path can send a UDP datagram to the query's port). The first two bytes
 * are taken as the expected query id so matching answers are reached. */
#include <stddef.h>
#include <stdint.h>

#include "net/tcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char ip[4];
    uint16_t id = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;
    ea_dns_parse_answer(data, size, id, ip);
    return 0;
}
