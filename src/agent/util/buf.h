/*
 * util/buf.h: a growable byte buffer with a hard cap. Every buffer fed by the network has a cap,
 * so a hostile peer can make an append fail but never make memory grow without bound.
 */
#ifndef EA_UTIL_BUF_H
#define EA_UTIL_BUF_H
#include <stddef.h>
#include <stdint.h>
typedef struct ea_buf {
    char *data;
    size_t len, cap, max; /* max 0 = unbounded (internal use only) */
} ea_buf;
int ea_buf_reserve(ea_buf *b, size_t extra);       /* -1 if it would pass max or OOM */
int ea_buf_append(ea_buf *b, const void *p, size_t n);
int ea_buf_puts(ea_buf *b, const char *s);
int ea_buf_putc(ea_buf *b, char c);
int ea_buf_put_u64(ea_buf *b, uint64_t v);
int ea_buf_put_i64(ea_buf *b, int64_t v);
int ea_buf_put_double(ea_buf *b, double v); /* shortest round-trip form, JSON-safe (no nan/inf) */
int ea_buf_put_json_string(ea_buf *b, const char *s, size_t n); /* quoted and escaped */
void ea_buf_consume(ea_buf *b, size_t n);                        /* drop n bytes from the front */
void ea_buf_free(ea_buf *b);
#endif
