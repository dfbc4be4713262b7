/* tests/fuzz/fuzz_agent_http.c: libFuzzer target for the ingest server's HTTP request-head parser
 * and, when a head parses, the JSON body parser and JSON -> record conversion on the rest. */
#include <stddef.h>
#include <stdint.h>

#include "inputs/convert.h"
#include "inputs/http_parser.h"

static ea_record rec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ea_http_req req;
    int status;
    const char *why;
    int r = ea_http_parse_head((const char *)data, size, 8192, 1 << 20, &req, &status, &why);
    if (r == 1 && req.head_len <= size) {
        const char *body = (const char *)data + req.head_len;
        size_t blen = size - req.head_len;
        ea_arena a = {.max = blen * 8 + 65536};
        char err[256];
        ea_node *n = ea_json_parse(&a, body, blen, err, sizeof err);
        if (n) {
            const ea_node *o = n->type == EA_N_ARR ? n->child : n;
            for (; o; o = n->type == EA_N_ARR ? o->next : NULL) {
                ea_rec_init(&rec, "fuzz", 0);
                if (ea_json_to_record(o, &rec, err, sizeof err) == 0) {
                    ea_buf b = {.max = 1 << 20};
                    ea_rec_to_json(&rec, 1, &b);
                    ea_buf_free(&b);
                }
            }
        }
        ea_arena_free(&a);
    }
    return 0;
}
