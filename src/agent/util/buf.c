/* util/buf.c: growable capped byte buffer and the small number/string formatters the JSON
 * encoder needs (integers by hand, doubles via %.17g only when %.15g does not round-trip). */
#include "util/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ea_buf_reserve(ea_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t need = b->len + extra;
    if (b->max && need > b->max)
        return -1;
    size_t n = b->cap ? b->cap : 256;
    while (n < need)
        n *= 2;
    if (b->max && n > b->max)
        n = b->max;
    char *p = realloc(b->data, n);
    if (!p)
        return -1;
    b->data = p;
    b->cap = n;
    return 0;
}

int ea_buf_append(ea_buf *b, const void *p, size_t n)
{
    if (ea_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int ea_buf_puts(ea_buf *b, const char *s) { return ea_buf_append(b, s, strlen(s)); }

int ea_buf_putc(ea_buf *b, char c) { return ea_buf_append(b, &c, 1); }

int ea_buf_put_u64(ea_buf *b, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return ea_buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

int ea_buf_put_i64(ea_buf *b, int64_t v)
{
    if (v < 0) {
        if (ea_buf_putc(b, '-') < 0)
            return -1;
        return ea_buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    }
    return ea_buf_put_u64(b, (uint64_t)v);
}

int ea_buf_put_double(ea_buf *b, double v)
{
    if (!isfinite(v))
        return ea_buf_puts(b, "null");
    if (fabs(v) < 1e15 && v == (double)(int64_t)v) /* range first: the cast is UB out of range */
        return ea_buf_put_i64(b, (int64_t)v);
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof tmp, "%.17g", v);
    return ea_buf_puts(b, tmp);
}

int ea_buf_put_json_string(ea_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (ea_buf_reserve(b, n + 2) < 0 || ea_buf_putc(b, '"') < 0)
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (ea_buf_append(b, s + run, i - run) < 0)
            return -1;
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        if (ea_buf_append(b, esc, el) < 0)
            return -1;
    }
    if (ea_buf_append(b, s + run, n - run) < 0)
        return -1;
    return ea_buf_putc(b, '"');
}

void ea_buf_consume(ea_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void ea_buf_free(ea_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
