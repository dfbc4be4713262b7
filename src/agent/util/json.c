/*
 * util/json.c: strict recursive-descent JSON parser into an arena tree (see json.h).
 * Hand-written rather than jansson because the agent is a static binary for a < 1 MB image and
 * ingest wants bounded, allocation-light parsing; jansson is used by libedgeslim, not here.
 * Error messages name the byte offset and line of the first problem.
 */
#include "util/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jp {
    const char *p, *end, *start;
    int line;
    ea_arena *a;
    char *err;
    size_t errlen;
    int failed;
} jp;

static void *jfail(jp *j, const char *what)
{
    if (!j->failed && j->err && j->errlen)
        snprintf(j->err, j->errlen, "invalid JSON at line %d, byte %zu: %s", j->line, (size_t)(j->p - j->start), what);
    j->failed = 1;
    return NULL;
}

static void skip_ws(jp *j)
{
    while (j->p < j->end) {
        char c = *j->p;
        if (c == '\n')
            j->line++;
        else if (c != ' ' && c != '\t' && c != '\r')
            return;
        j->p++;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(jp *j, unsigned *out)
{
    if (j->end - j->p < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    j->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at j->p (on the opening quote). The decoded form is never longer than the
 * source, so one allocation of the source length suffices. */
static char *parse_string(jp *j, size_t *len_out)
{
    const char *q = ++j->p;
    while (q < j->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= j->end)
        return jfail(j, "unterminated string");
    char *out = ea_arena_alloc(j->a, (size_t)(q - j->p) + 1);
    if (!out)
        return jfail(j, "document too large");
    size_t n = 0;
    while (j->p < q) {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20)
            return jfail(j, "control character in string");
        if (c != '\\') {
            out[n++] = (char)c;
            j->p++;
            continue;
        }
        j->p++;
        char e = *j->p++;
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (read_hex4(j, &cp) < 0)
                return jfail(j, "bad \\u escape");
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (j->p + 2 > q || j->p[0] != '\\' || j->p[1] != 'u')
                    return jfail(j, "unpaired surrogate");
                j->p += 2;
                if (read_hex4(j, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return jfail(j, "unpaired surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000)
                return jfail(j, "unpaired surrogate");
            n += put_utf8(out + n, cp);
            break;
        }
        default:
            return jfail(j, "bad escape in string");
        }
    }
    j->p = q + 1;
    out[n] = 0;
    *len_out = n;
    return out;
}

static int parse_number(jp *j, ea_node *n)
{
    const char *s = j->p;
    const char *q = s;
    if (q < j->end && *q == '-')
        q++;
    if (q >= j->end || *q < '0' || *q > '9')
        return -1;
    if (*q == '0')
        q++;
    else
        while (q < j->end && *q >= '0' && *q <= '9')
            q++;
    int is_int = 1;
    if (q < j->end && *q == '.') {
        is_int = 0;
        q++;
        if (q >= j->end || *q < '0' || *q > '9')
            return -1;
        while (q < j->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        is_int = 0;
        q++;
        if (q < j->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= j->end || *q < '0' || *q > '9')
            return -1;
        while (q < j->end && *q >= '0' && *q <= '9')
            q++;
    }
    char tmp[64];
    size_t len = (size_t)(q - s);
    if (len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    n->type = EA_N_NUM;
    n->num = strtod(tmp, NULL);
    if (!isfinite(n->num))
        return -1;
    if (is_int) {
        errno = 0;
        long long v = strtoll(tmp, NULL, 10);
        if (errno == 0) {
            n->is_int = 1;
            n->i = v;
        }
    }
    j->p = q;
    return 0;
}

static int match_word(jp *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static ea_node *parse_value(jp *j, int depth);

static ea_node *parse_container(jp *j, ea_node *n, int depth, int is_obj)
{
    char close = is_obj ? '}' : ']';
    n->type = is_obj ? EA_N_OBJ : EA_N_ARR;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return n;
    }
    ea_node **tail = &n->child;
    for (;;) {
        skip_ws(j);
        const char *key = NULL;
        size_t klen = 0;
        if (is_obj) {
            if (j->p >= j->end || *j->p != '"')
                return jfail(j, "expected member name");
            if (!(key = parse_string(j, &klen)))
                return NULL;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return jfail(j, "expected ':'");
            j->p++;
        }
        ea_node *c = parse_value(j, depth + 1);
        if (!c)
            return NULL;
        c->key = key;
        c->klen = klen;
        *tail = c;
        tail = &c->next;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return n;
        }
        return jfail(j, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static ea_node *parse_value(jp *j, int depth)
{
    if (depth > EA_JSON_MAX_DEPTH)
        return jfail(j, "nesting deeper than 32");
    skip_ws(j);
    if (j->p >= j->end)
        return jfail(j, "unexpected end of input");
    ea_node *n = ea_arena_alloc(j->a, sizeof *n);
    if (!n)
        return jfail(j, "document too large");
    n->line = j->line;
    n->raw = j->p;
    char c = *j->p;
    ea_node *r = n;
    if (c == '{' || c == '[')
        r = parse_container(j, n, depth, c == '{');
    else if (c == '"') {
        n->type = EA_N_STR;
        if (!(n->s = parse_string(j, &n->slen)))
            return NULL;
    } else if (match_word(j, "true")) {
        n->type = EA_N_BOOL;
        n->b = 1;
    } else if (match_word(j, "false"))
        n->type = EA_N_BOOL;
    else if (match_word(j, "null"))
        n->type = EA_N_NULL;
    else if (parse_number(j, n) < 0)
        return jfail(j, "unexpected character");
    if (r)
        n->rawlen = (size_t)(j->p - n->raw);
    return r;
}

ea_node *ea_json_parse(ea_arena *a, const char *text, size_t len, char *err, size_t errlen)
{
    jp j = {.p = text, .end = text + len, .start = text, .line = 1, .a = a, .err = err, .errlen = errlen};
    ea_node *n = parse_value(&j, 0);
    if (!n)
        return NULL;
    skip_ws(&j);
    if (j.p != j.end)
        return jfail(&j, "trailing characters after the value");
    return n;
}

const ea_node *ea_node_get(const ea_node *obj, const char *key)
{
    if (!obj || obj->type != EA_N_OBJ)
        return NULL;
    size_t kl = strlen(key);
    for (const ea_node *c = obj->child; c; c = c->next)
        if (c->klen == kl && memcmp(c->key, key, kl) == 0)
            return c;
    return NULL;
}

size_t ea_node_count(const ea_node *n)
{
    size_t k = 0;
    for (const ea_node *c = n ? n->child : NULL; c; c = c->next)
        k++;
    return k;
}

int ea_json_write(ea_buf *b, const ea_node *n)
{
    int r = 0;
    switch (n->type) {
    case EA_N_NULL: return ea_buf_puts(b, "null");
    case EA_N_BOOL: return ea_buf_puts(b, n->b ? "true" : "false");
    case EA_N_NUM: return n->is_int ? ea_buf_put_i64(b, n->i) : ea_buf_put_double(b, n->num);
    case EA_N_STR: return ea_buf_put_json_string(b, n->s, n->slen);
    default: break;
    }
    int obj = n->type == EA_N_OBJ;
    r |= ea_buf_putc(b, obj ? '{' : '[');
    for (const ea_node *c = n->child; c; c = c->next) {
        if (c != n->child)
            r |= ea_buf_putc(b, ',');
        if (obj) {
            r |= ea_buf_put_json_string(b, c->key, c->klen);
            r |= ea_buf_putc(b, ':');
        }
        r |= ea_json_write(b, c);
    }
    r |= ea_buf_putc(b, obj ? '}' : ']');
    return r ? -1 : 0;
}
