/* tests/fuzz/fuzz_agent_verify.c: libFuzzer target for the control-document check: the member
 * scan and base64 decoding run on unauthenticated bytes from the control topic. A fixed key; a
 * document that verifies would be a forgery, so any success aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "control/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char key[32] = {0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a,
                                          0x92, 0xb7, 0x0a, 0xa7, 0x4d, 0x1b, 0x7e, 0xbc,
                                          0x9c, 0x98, 0x2c, 0xcf, 0x2e, 0xc4, 0x96, 0x8c,
                                          0xc0, 0xcd, 0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c};
    char *payload = NULL, err[256];
    size_t len = 0;
    if (ea_control_verify(data, size, key, &payload, &len, err, sizeof err) == 0) abort();
    free(payload);
    return 0;
}
