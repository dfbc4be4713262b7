/* tests/fuzz/fuzz_agent_lineproto.c: libFuzzer target for the line protocol parser, fed line by
 * line as the UDP/TCP listeners do, and the JSON encoding of every record it accepts. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "inputs/convert.h"
#include "inputs/lineproto.h"

static ea_record rec;

static void one_line(void *arg, const char *line, size_t len, const char *source)
{
    (void)arg;
    char err[256];
    ea_rec_init(&rec, source, 0);
    if (ea_lineproto_parse(line, len, &rec, err, sizeof err) == 1) {
        ea_buf b = {.max = 1 << 20};
        ea_rec_to_json(&rec, 1, &b);
        ea_buf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t used = ea_lp_split_lines((const char *)data, size, one_line, NULL, "fuzz");
    if (used < size)
        one_line(NULL, (const char *)data + used, size - used, "fuzz");
    return 0;
}
