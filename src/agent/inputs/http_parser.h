/*
 * inputs/http_parser.h: a small, strict HTTP/1.1 request-head parser for the ingest/health server.
 * Pure function over a byte buffer (fuzzed by tests/fuzz/fuzz_agent_http.c).
 *
 * Decisions: bodies by Content-Length only (Transfer-Encoding chunked gets 411, any other coding
 * 501; both headers together 400 to shut the request-smuggling door); lines end in CRLF; no
 * obsolete line folding; at most EA_HTTP_MAX_HEADERS headers within max_head bytes (431 past it);
 * HTTP/1.0 and 1.1 only (505 otherwise).
 */
#ifndef EA_INPUTS_HTTP_PARSER_H
#define EA_INPUTS_HTTP_PARSER_H
#include <stddef.h>

#define EA_HTTP_MAX_HEADERS 32

typedef struct ea_http_req {
    char method[8];
    char path[256]; /* target without the query string */
    int minor;      /* HTTP/1.<minor> */
    size_t content_length;
    int keep_alive;
    int expect_continue;
    char auth[256]; /* Authorization value, truncated to fit */
    size_t head_len;
} ea_http_req;

/* Returns 1 with req filled when buf holds a complete head; 0 when more bytes are needed; -1 with
 * *status (400, 411, 413, 431, 501, 505) and *why (static text) on a bad request. */
int ea_http_parse_head(const char *buf, size_t len, size_t max_head, size_t max_body, ea_http_req *req, int *status,
                       const char **why);
const char *ea_http_reason(int status);
#endif
