/*
 * filters/fields.c: removes fields. Config: {drop: [NAME, ...]} removes those; {keep: [NAME, ...]}
 * removes every other field. A record left with no field is dropped (nothing to report).
 */
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

#define MAX_NAMES 32

struct ea_filter {
    int keep;
    char names[MAX_NAMES][64];
    int n;
};

static void destroy(ea_filter *f) { free(f); }

static ea_filter *create(const ea_node *cfg, const ea_filter_env *env, char *err, size_t errlen)
{
    (void)env;
    const ea_node *drop = ea_node_get(cfg, "drop"), *keep = ea_node_get(cfg, "keep");
    const ea_node *list = drop ? drop : keep;
    if (cfg->type != EA_N_OBJ || ea_node_count(cfg) != 1 || !list || list->type != EA_N_ARR) {
        ea_cfg_err(err, errlen, cfg, "fields: expected {drop: [NAMES]} or {keep: [NAMES]}");
        return NULL;
    }
    ea_filter *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->keep = keep != NULL;
    for (const ea_node *c = list->child; c; c = c->next) {
        if (c->type != EA_N_STR || c->slen >= 64 || f->n == MAX_NAMES) {
            ea_cfg_err(err, errlen, c, "fields: names are strings shorter than 64 (at most %d)", MAX_NAMES);
            destroy(f);
            return NULL;
        }
        memcpy(f->names[f->n++], c->s, strlen(c->s) + 1); /* strlen <= slen < 64 */
    }
    return f;
}

static int listed(const ea_filter *f, const ea_field *fd)
{
    for (int i = 0; i < f->n; i++)
        if (strlen(f->names[i]) == fd->klen && !memcmp(f->names[i], fd->key, fd->klen))
            return 1;
    return 0;
}

static int apply(ea_filter *f, ea_record *r, uint64_t now_ms)
{
    (void)now_ms;
    for (int i = r->nfields - 1; i >= 0; i--)
        if (listed(f, &r->fields[i]) != f->keep)
            ea_rec_remove_field(r, i);
    return r->nfields ? EA_FILTER_PASS : EA_FILTER_DROP;
}

const ea_filter_ops ea_filter_fields = {"fields", create, apply, NULL, destroy};
