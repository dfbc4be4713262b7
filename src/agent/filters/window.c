/*
 * filters/window.c: replaces records by per-series aggregates over fixed windows of N seconds.
 * Config: {seconds: N, fields: [NAME, ...] (default: every numeric field, first 8 seen),
 * aggregates: [count, min, max, avg, last] (default all)}. At each window end one record per
 * series is emitted with fields NAME_count, NAME_min, ... and continues down the route.
 * Bounded: 128 series x 8 fields; records of further series pass through unaggregated.
 */
#include <stdio.h>
#include <string.h>

#include "filters/filter.h"
#include "filters/series.h"
#include "loop.h"

#define WIN_SLOTS 128u
#define WIN_FIELDS 8
#define KEY_BYTES 480

enum { AG_COUNT = 1, AG_MIN = 2, AG_MAX = 4, AG_AVG = 8, AG_LAST = 16 };

typedef struct agg {
    char name[32];
    uint64_t count;
    double min, max, sum, last;
} agg;

typedef struct series {
    char key[KEY_BYTES]; /* measurement \0 (tagkey \0 tagval \0)* */
    uint16_t keylen;
    uint8_t ntags, nagg;
    agg a[WIN_FIELDS];
} series;

struct ea_filter {
    uint64_t period_ms, start_ms;
    int aggs;
    char fields[WIN_FIELDS][32];
    int nfields;
    uint64_t keys[WIN_SLOTS];
    series s[WIN_SLOTS];
    ea_record out;
};

static void destroy(ea_filter *f) { free(f); }

static int parse_aggs(const ea_node *n, int *out)
{
    static const char *names[] = {"count", "min", "max", "avg", "last"};
    *out = 0;
    for (const ea_node *c = n->child; c; c = c->next) {
        int bit = 0;
        for (int i = 0; i < 5; i++)
            if (c->type == EA_N_STR && !strcmp(c->s, names[i]))
                bit = 1 << i;
        if (!bit)
            return -1;
        *out |= bit;
    }
    return *out ? 0 : -1;
}

static ea_filter *create(const ea_node *cfg, const ea_filter_env *env, char *err, size_t errlen)
{
    (void)env;
    double secs;
    if (cfg->type != EA_N_OBJ || ea_cfg_number(ea_node_get(cfg, "seconds"), &secs) < 0 || secs < 1 || secs > 86400) {
        ea_cfg_err(err, errlen, cfg, "window: expected {seconds: 1..86400, fields: [..], aggregates: [..]}");
        return NULL;
    }
    ea_filter *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->period_ms = (uint64_t)(secs * 1000);
    f->aggs = AG_COUNT | AG_MIN | AG_MAX | AG_AVG | AG_LAST;
    for (const ea_node *k = cfg->child; k; k = k->next) {
        if (!strcmp(k->key, "seconds"))
            continue;
        if (!strcmp(k->key, "aggregates") && k->type == EA_N_ARR && parse_aggs(k, &f->aggs) == 0)
            continue;
        if (!strcmp(k->key, "fields") && k->type == EA_N_ARR) {
            for (const ea_node *c = k->child; c; c = c->next) {
                if (c->type != EA_N_STR || c->slen >= 32 || f->nfields == WIN_FIELDS) {
                    ea_cfg_err(err, errlen, c, "window.fields: names shorter than 32 bytes, at most %d", WIN_FIELDS);
                    destroy(f);
                    return NULL;
                }
                memcpy(f->fields[f->nfields++], c->s, strlen(c->s) + 1); /* strlen <= slen < 32 */
            }
            continue;
        }
        ea_cfg_err(err, errlen, k, "window: bad key '%s' (seconds, fields, aggregates: count|min|max|avg|last)", k->key);
        destroy(f);
        return NULL;
    }
    return f;
}

static int wanted(const ea_filter *f, const ea_field *fd)
{
    if (!f->nfields)
        return 1;
    for (int i = 0; i < f->nfields; i++)
        if (strlen(f->fields[i]) == fd->klen && !memcmp(f->fields[i], fd->key, fd->klen))
            return 1;
    return 0;
}

static int put_key(char *k, size_t *len, const char *s, size_t n)
{
    if (*len + n + 1 > KEY_BYTES)
        return -1;
    memcpy(k + *len, s, n);
    k[*len + n] = 0;
    *len += n + 1;
    return 0;
}

static int init_series(series *s, const ea_record *r)
{
    size_t len = 0;
    if (put_key(s->key, &len, r->measurement, r->mlen) < 0)
        return -1;
    for (int i = 0; i < r->ntags; i++)
        if (put_key(s->key, &len, r->tags[i].key, r->tags[i].klen) < 0 ||
            put_key(s->key, &len, r->tags[i].val, r->tags[i].vlen) < 0)
            return -1;
    s->keylen = (uint16_t)len;
    s->ntags = (uint8_t)r->ntags;
    s->nagg = 0;
    return 0;
}

static agg *find_agg(series *s, const ea_field *fd)
{
    for (int i = 0; i < s->nagg; i++)
        if (strlen(s->a[i].name) == fd->klen && !memcmp(s->a[i].name, fd->key, fd->klen))
            return &s->a[i];
    if (s->nagg == WIN_FIELDS || fd->klen >= 32)
        return NULL;
    agg *a = &s->a[s->nagg++];
    memset(a, 0, sizeof *a);
    memcpy(a->name, fd->key, fd->klen);
    return a;
}

static int apply(ea_filter *f, ea_record *r, uint64_t now_ms)
{
    if (!f->start_ms)
        f->start_ms = now_ms ? now_ms : 1;
    int inserted;
    int slot = ea_series_slot_n(f->keys, WIN_SLOTS, ea_rec_series_hash(r), &inserted);
    if (slot < 0)
        return EA_FILTER_PASS;
    series *s = &f->s[slot];
    if (inserted && init_series(s, r) < 0) {
        f->keys[slot] = 0;
        return EA_FILTER_PASS;
    }
    for (int i = 0; i < r->nfields; i++) {
        double v;
        if (!wanted(f, &r->fields[i]) || ea_field_number(&r->fields[i], &v) < 0)
            continue;
        agg *a = find_agg(s, &r->fields[i]);
        if (!a)
            continue;
        if (!a->count || v < a->min)
            a->min = v;
        if (!a->count || v > a->max)
            a->max = v;
        a->count++;
        a->sum += v;
        a->last = v;
    }
    return EA_FILTER_DROP;
}

static void add_num(ea_record *r, const char *name, const char *suffix, double v, int is_count)
{
    char k[48];
    int n = snprintf(k, sizeof k, "%s_%s", name, suffix);
    ea_field *fd = ea_rec_add_field(r, k, (size_t)n);
    if (!fd)
        return;
    if (is_count) {
        fd->type = EA_V_INT;
        fd->i = (int64_t)v;
    } else {
        fd->type = EA_V_FLOAT;
        fd->f = v;
    }
}

static void emit_series(ea_filter *f, series *s, ea_emit_fn emit, void *arg)
{
    ea_record *r = &f->out;
    ea_rec_init(r, "window", ea_wall_ms());
    const char *p = s->key;
    ea_rec_set_measurement(r, p, strlen(p));
    p += strlen(p) + 1;
    for (int i = 0; i < s->ntags; i++) {
        const char *k = p, *v = p + strlen(p) + 1;
        ea_rec_add_tag(r, k, strlen(k), v, strlen(v));
        p = v + strlen(v) + 1;
    }
    int any = 0;
    for (int i = 0; i < s->nagg; i++) {
        agg *a = &s->a[i];
        if (!a->count)
            continue;
        any = 1;
        if (f->aggs & AG_COUNT)
            add_num(r, a->name, "count", (double)a->count, 1);
        if (f->aggs & AG_MIN)
            add_num(r, a->name, "min", a->min, 0);
        if (f->aggs & AG_MAX)
            add_num(r, a->name, "max", a->max, 0);
        if (f->aggs & AG_AVG)
            add_num(r, a->name, "avg", a->sum / (double)a->count, 0);
        if (f->aggs & AG_LAST)
            add_num(r, a->name, "last", a->last, 0);
    }
    r->has_ts = 1;
    r->ts = (int64_t)r->received_ms;
    if (any)
        emit(arg, r);
}

static void flush(ea_filter *f, uint64_t now_ms, ea_emit_fn emit, void *arg)
{
    if (!f->start_ms || now_ms - f->start_ms < f->period_ms)
        return;
    for (unsigned i = 0; i < WIN_SLOTS; i++)
        if (f->keys[i])
            emit_series(f, &f->s[i], emit, arg);
    memset(f->keys, 0, sizeof f->keys);
    f->start_ms = now_ms;
}

const ea_filter_ops ea_filter_window = {"window", create, apply, flush, destroy};
