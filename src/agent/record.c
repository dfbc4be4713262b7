/* record.c: the pipeline's record (see record.h): building, lookup, copying, JSON encoding. */
#include "record.h"

#include <string.h>

void ea_rec_init(ea_record *r, const char *source, uint64_t received_ms)
{
    r->measurement = "ingest";
    r->mlen = 6;
    r->ntags = r->nfields = 0;
    r->has_ts = 0;
    r->ts = 0;
    r->source = source;
    r->received_ms = received_ms;
    r->used = 0;
}

const char *ea_rec_strdup(ea_record *r, const char *s, size_t n)
{
    if (n + 1 > EA_REC_ARENA - r->used)
        return NULL;
    char *p = r->arena + r->used;
    memcpy(p, s, n);
    p[n] = 0;
    r->used += (uint32_t)n + 1;
    return p;
}

int ea_rec_set_measurement(ea_record *r, const char *s, size_t n)
{
    const char *p = ea_rec_strdup(r, s, n);
    if (!p)
        return -1;
    r->measurement = p;
    r->mlen = (uint32_t)n;
    return 0;
}

static int key_eq(const char *a, size_t al, const char *b, size_t bl) { return al == bl && memcmp(a, b, al) == 0; }

int ea_rec_add_tag(ea_record *r, const char *k, size_t kl, const char *v, size_t vl)
{
    const char *vc = ea_rec_strdup(r, v, vl);
    if (!vc)
        return -1;
    for (int i = 0; i < r->ntags; i++)
        if (key_eq(r->tags[i].key, r->tags[i].klen, k, kl)) {
            r->tags[i].val = vc;
            r->tags[i].vlen = (uint32_t)vl;
            return 0;
        }
    if (r->ntags >= EA_REC_MAX_TAGS)
        return -1;
    const char *kc = ea_rec_strdup(r, k, kl);
    if (!kc)
        return -1;
    r->tags[r->ntags++] = (ea_tag){kc, vc, (uint32_t)kl, (uint32_t)vl};
    return 0;
}

ea_field *ea_rec_add_field(ea_record *r, const char *k, size_t kl)
{
    for (int i = 0; i < r->nfields; i++)
        if (key_eq(r->fields[i].key, r->fields[i].klen, k, kl)) {
            ea_field *f = &r->fields[i];
            *f = (ea_field){.key = f->key, .klen = f->klen};
            return f;
        }
    if (r->nfields >= EA_REC_MAX_FIELDS)
        return NULL;
    const char *kc = ea_rec_strdup(r, k, kl);
    if (!kc)
        return NULL;
    ea_field *f = &r->fields[r->nfields++];
    *f = (ea_field){.key = kc, .klen = (uint32_t)kl};
    return f;
}

ea_field *ea_rec_field(ea_record *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->nfields; i++)
        if (key_eq(r->fields[i].key, r->fields[i].klen, name, n))
            return &r->fields[i];
    return NULL;
}

const ea_tag *ea_rec_tag(const ea_record *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->ntags; i++)
        if (key_eq(r->tags[i].key, r->tags[i].klen, name, n))
            return &r->tags[i];
    return NULL;
}

void ea_rec_remove_field(ea_record *r, int idx)
{
    if (idx < 0 || idx >= r->nfields)
        return;
    memmove(&r->fields[idx], &r->fields[idx + 1], (size_t)(r->nfields - idx - 1) * sizeof r->fields[0]);
    r->nfields--;
}

int ea_field_number(const ea_field *f, double *out)
{
    switch (f->type) {
    case EA_V_FLOAT: *out = f->f; return 0;
    case EA_V_INT: *out = (double)f->i; return 0;
    case EA_V_BOOL: *out = f->b; return 0;
    default: return -1;
    }
}

static const char *rebase(const ea_record *src, ea_record *dst, const char *p)
{
    if (p >= src->arena && p < src->arena + EA_REC_ARENA)
        return dst->arena + (p - src->arena);
    return p;
}

void ea_rec_copy(ea_record *dst, const ea_record *src)
{
    if (dst == src)
        return;
    size_t head = offsetof(ea_record, arena);
    memcpy(dst, src, head);
    memcpy(dst->arena, src->arena, src->used);
    dst->measurement = rebase(src, dst, src->measurement);
    for (int i = 0; i < src->ntags; i++) {
        dst->tags[i].key = rebase(src, dst, src->tags[i].key);
        dst->tags[i].val = rebase(src, dst, src->tags[i].val);
    }
    for (int i = 0; i < src->nfields; i++) {
        dst->fields[i].key = rebase(src, dst, src->fields[i].key);
        dst->fields[i].str = rebase(src, dst, src->fields[i].str);
    }
}

static int put_field_value(ea_buf *b, const ea_field *f)
{
    switch (f->type) {
    case EA_V_FLOAT: return ea_buf_put_double(b, f->f);
    case EA_V_INT: return ea_buf_put_i64(b, f->i);
    case EA_V_BOOL: return ea_buf_puts(b, f->b ? "true" : "false");
    case EA_V_STR: return ea_buf_put_json_string(b, f->str, f->slen);
    default: return ea_buf_append(b, f->str, f->slen);
    }
}

int ea_rec_to_json(const ea_record *r, uint64_t seq, ea_buf *b)
{
    int e = ea_buf_puts(b, "{\"measurement\":");
    e |= ea_buf_put_json_string(b, r->measurement, r->mlen);
    e |= ea_buf_puts(b, ",\"tags\":{");
    for (int i = 0; i < r->ntags; i++) {
        if (i)
            e |= ea_buf_putc(b, ',');
        e |= ea_buf_put_json_string(b, r->tags[i].key, r->tags[i].klen);
        e |= ea_buf_putc(b, ':');
        e |= ea_buf_put_json_string(b, r->tags[i].val, r->tags[i].vlen);
    }
    e |= ea_buf_puts(b, "},\"fields\":{");
    for (int i = 0; i < r->nfields; i++) {
        if (i)
            e |= ea_buf_putc(b, ',');
        e |= ea_buf_put_json_string(b, r->fields[i].key, r->fields[i].klen);
        e |= ea_buf_putc(b, ':');
        e |= put_field_value(b, &r->fields[i]);
    }
    e |= ea_buf_putc(b, '}');
    if (r->has_ts) {
        e |= ea_buf_puts(b, ",\"ts\":");
        e |= ea_buf_put_i64(b, r->ts);
    }
    e |= ea_buf_puts(b, ",\"source\":");
    e |= ea_buf_put_json_string(b, r->source, strlen(r->source));
    e |= ea_buf_puts(b, ",\"received_ms\":");
    e |= ea_buf_put_u64(b, r->received_ms);
    e |= ea_buf_puts(b, ",\"seq\":");
    e |= ea_buf_put_u64(b, seq);
    e |= ea_buf_putc(b, '}');
    return e ? -1 : 0;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t ea_rec_series_hash(const ea_record *r)
{
    uint64_t h = fnv(1469598103934665603ull, r->measurement, r->mlen);
    /* order-independent over tags: sum of per-tag hashes */
    uint64_t t = 0;
    for (int i = 0; i < r->ntags; i++) {
        uint64_t x = fnv(1469598103934665603ull, r->tags[i].key, r->tags[i].klen);
        x = fnv(x, "=", 1);
        t += fnv(x, r->tags[i].val, r->tags[i].vlen);
    }
    return h ^ (t * 0x9E3779B97F4A7C15ull);
}
