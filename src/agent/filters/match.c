/*
 * filters/match.c: passes records whose measurement, tags and fields match; drops the rest.
 * Config: `match: temp*` (measurement glob) or a map {measurement: GLOB, tags: {KEY: GLOB},
 * fields: [NAME, ...] (each must be present)}. Globs are fnmatch(3) patterns.
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

#define MAX_TAGS 16
#define MAX_FIELDS 16

struct ea_filter {
    const char *measurement;
    const char *tag_key[MAX_TAGS], *tag_glob[MAX_TAGS];
    int ntags;
    const char *fields[MAX_FIELDS];
    int nfields;
    char *strings; /* owned copies */
};

static void destroy(ea_filter *f)
{
    if (!f)
        return;
    free(f->strings);
    free(f);
}

/* Copies s into the filter's string pool (pool sized for the whole config up front). */
static const char *keep(ea_filter *f, size_t *used, const char *s)
{
    char *p = f->strings + *used;
    size_t n = strlen(s) + 1;
    memcpy(p, s, n);
    *used += n;
    return p;
}

static size_t pool_size(const ea_node *n)
{
    size_t t = (n->s ? n->slen + 1 : 0) + (n->key ? n->klen + 1 : 0);
    for (const ea_node *c = n->child; c; c = c->next)
        t += pool_size(c);
    return t;
}

static ea_filter *create(const ea_node *cfg, const ea_filter_env *env, char *err, size_t errlen)
{
    (void)env;
    ea_filter *f = calloc(1, sizeof *f);
    if (!f || !(f->strings = malloc(pool_size(cfg) + 1))) {
        destroy(f);
        ea_cfg_err(err, errlen, cfg, "out of memory");
        return NULL;
    }
    size_t used = 0;
    if (cfg->type == EA_N_STR) {
        f->measurement = keep(f, &used, cfg->s);
        return f;
    }
    if (cfg->type != EA_N_OBJ) {
        destroy(f);
        ea_cfg_err(err, errlen, cfg, "match: expected a measurement glob or a map (measurement, tags, fields)");
        return NULL;
    }
    for (const ea_node *k = cfg->child; k; k = k->next) {
        if (!strcmp(k->key, "measurement") && k->type == EA_N_STR)
            f->measurement = keep(f, &used, k->s);
        else if (!strcmp(k->key, "tags") && k->type == EA_N_OBJ) {
            for (const ea_node *t = k->child; t; t = t->next) {
                if (t->type != EA_N_STR || f->ntags == MAX_TAGS) {
                    destroy(f);
                    ea_cfg_err(err, errlen, t, "match.tags: expected KEY: GLOB (at most %d)", MAX_TAGS);
                    return NULL;
                }
                f->tag_key[f->ntags] = keep(f, &used, t->key);
                f->tag_glob[f->ntags++] = keep(f, &used, t->s);
            }
        } else if (!strcmp(k->key, "fields") && (k->type == EA_N_ARR || k->type == EA_N_STR)) {
            const ea_node *one = k->type == EA_N_STR ? k : k->child;
            for (const ea_node *t = one; t; t = k->type == EA_N_STR ? NULL : t->next) {
                if (t->type != EA_N_STR || f->nfields == MAX_FIELDS) {
                    destroy(f);
                    ea_cfg_err(err, errlen, t, "match.fields: expected field names (at most %d)", MAX_FIELDS);
                    return NULL;
                }
                f->fields[f->nfields++] = keep(f, &used, t->s);
            }
        } else {
            destroy(f);
            ea_cfg_err(err, errlen, k, "match: unknown or mistyped key '%s' (measurement: GLOB, tags: map, fields: list)",
                       k->key);
            return NULL;
        }
    }
    return f;
}

static int glob_match(const char *glob, const char *s, size_t n)
{
    char tmp[256];
    if (n >= sizeof tmp)
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return fnmatch(glob, tmp, 0) == 0;
}

static int apply(ea_filter *f, ea_record *r, uint64_t now_ms)
{
    (void)now_ms;
    if (f->measurement && !glob_match(f->measurement, r->measurement, r->mlen))
        return EA_FILTER_DROP;
    for (int i = 0; i < f->ntags; i++) {
        const ea_tag *t = ea_rec_tag(r, f->tag_key[i]);
        if (!t || !glob_match(f->tag_glob[i], t->val, t->vlen))
            return EA_FILTER_DROP;
    }
    for (int i = 0; i < f->nfields; i++)
        if (!ea_rec_field(r, f->fields[i]))
            return EA_FILTER_DROP;
    return EA_FILTER_PASS;
}

const ea_filter_ops ea_filter_match = {"match", create, apply, NULL, destroy};
