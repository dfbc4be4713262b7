/*
 * filters/deadband.c: forwards a record only when a numeric field moved more than `delta` from the
 * value last forwarded for the same series (measurement + tags). Config: {field: NAME, delta: X}.
 * Records without the field pass. Bounded: 1024 series, later ones pass unfiltered.
 */
#include <math.h>

#include "filters/filter.h"
#include "filters/series.h"

struct ea_filter {
    char field[64];
    double delta;
    uint64_t keys[EA_SERIES_SLOTS];
    double last[EA_SERIES_SLOTS];
};

static void destroy(ea_filter *f) { free(f); }

static ea_filter *create(const ea_node *cfg, const ea_filter_env *env, char *err, size_t errlen)
{
    (void)env;
    const char *field;
    double delta;
    if (cfg->type != EA_N_OBJ || ea_cfg_string(ea_node_get(cfg, "field"), &field) < 0 ||
        ea_cfg_number(ea_node_get(cfg, "delta"), &delta) < 0 || delta < 0 || strlen(field) >= 64) {
        ea_cfg_err(err, errlen, cfg, "deadband: expected {field: NAME, delta: NUMBER >= 0}");
        return NULL;
    }
    ea_filter *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    memcpy(f->field, field, strlen(field) + 1); /* strlen(field) < 64 checked above */
    f->delta = delta;
    return f;
}

static int apply(ea_filter *f, ea_record *r, uint64_t now_ms)
{
    (void)now_ms;
    ea_field *fd = ea_rec_field(r, f->field);
    double v;
    if (!fd || ea_field_number(fd, &v) < 0)
        return EA_FILTER_PASS;
    int inserted;
    int s = ea_series_slot(f->keys, ea_rec_series_hash(r), &inserted);
    if (s < 0)
        return EA_FILTER_PASS;
    if (!inserted && fabs(v - f->last[s]) <= f->delta)
        return EA_FILTER_DROP;
    f->last[s] = v;
    return EA_FILTER_PASS;
}

const ea_filter_ops ea_filter_deadband = {"deadband", create, apply, NULL, destroy};
