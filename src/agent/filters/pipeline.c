/*
 * filters/pipeline.c: routes of filters built from config, the registry of filter kinds, and the
 * config-reading helpers filters share. A record is offered to every route; each route works on
 * its own copy (routes change records), so one input record can leave as several.
 */
#include "filters/filter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct route_step {
    const ea_filter_ops *ops;
    ea_filter *f;
} route_step;

typedef struct route {
    char name[64];
    route_step *steps;
    int nsteps;
} route;

struct ea_pipeline {
    route *routes;
    int nroutes;
    ea_sink_fn sink;
    void *sink_arg;
    uint64_t dropped;
    ea_record *scratch; /* per-route copy */
    int sunk, sink_err;
    int flushing_route, flushing_step;
};

static const ea_filter_ops *registry[] = {&ea_filter_match, &ea_filter_threshold, &ea_filter_deadband,
                                          &ea_filter_window, &ea_filter_fields, &ea_filter_enrich};

const ea_filter_ops *ea_filter_find(const char *name)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (!strcmp(registry[i]->name, name))
            return registry[i];
    return NULL;
}

int ea_cfg_string(const ea_node *n, const char **out)
{
    if (!n || n->type != EA_N_STR)
        return -1;
    *out = n->s;
    return 0;
}

int ea_cfg_number(const ea_node *n, double *out)
{
    if (!n)
        return -1;
    if (n->type == EA_N_NUM) {
        *out = n->num;
        return 0;
    }
    if (n->type == EA_N_STR && n->slen) {
        char *end;
        double v = strtod(n->s, &end);
        if (*end == 0) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

int ea_cfg_err(char *err, size_t errlen, const ea_node *n, const char *fmt, ...)
{
    if (!err || !errlen)
        return -1;
    int k = snprintf(err, errlen, "line %d: ", n ? n->line : 0);
    if (k < 0 || (size_t)k >= errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

static void free_route(route *r)
{
    for (int i = 0; i < r->nsteps; i++)
        r->steps[i].ops->destroy(r->steps[i].f);
    free(r->steps);
}

void ea_pipeline_free(ea_pipeline *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nroutes; i++)
        free_route(&p->routes[i]);
    free(p->routes);
    free(p->scratch);
    free(p);
}

static int add_step(route *r, const ea_filter_ops *ops, const ea_node *cfg, const ea_filter_env *env, char *err,
                    size_t errlen)
{
    ea_filter *f = ops->create(cfg, env, err, errlen);
    if (!f)
        return -1;
    route_step *s = realloc(r->steps, (size_t)(r->nsteps + 1) * sizeof *s);
    if (!s) {
        ops->destroy(f);
        return ea_cfg_err(err, errlen, cfg, "out of memory");
    }
    r->steps = s;
    r->steps[r->nsteps++] = (route_step){ops, f};
    return 0;
}

static int build_route(route *r, const ea_node *rn, int idx, const ea_filter_env *env, char *err, size_t errlen)
{
    if (rn->type != EA_N_OBJ)
        return ea_cfg_err(err, errlen, rn, "routes[%d]: expected a map with name, match, filters", idx);
    const char *name = NULL;
    snprintf(r->name, sizeof r->name, "route%d", idx);
    if (ea_cfg_string(ea_node_get(rn, "name"), &name) == 0)
        snprintf(r->name, sizeof r->name, "%s", name);
    for (const ea_node *k = rn->child; k; k = k->next)
        if (strcmp(k->key, "name") && strcmp(k->key, "match") && strcmp(k->key, "filters"))
            return ea_cfg_err(err, errlen, k, "routes[%d]: unknown key '%s' (expected name, match, filters)", idx, k->key);
    const ea_node *m = ea_node_get(rn, "match");
    if (m && add_step(r, &ea_filter_match, m, env, err, errlen) < 0)
        return -1;
    const ea_node *fl = ea_node_get(rn, "filters");
    if (!fl)
        return 0;
    if (fl->type != EA_N_ARR)
        return ea_cfg_err(err, errlen, fl, "routes[%d].filters: expected a list", idx);
    for (const ea_node *f = fl->child; f; f = f->next) {
        if (f->type != EA_N_OBJ || ea_node_count(f) != 1)
            return ea_cfg_err(err, errlen, f, "routes[%d].filters: each entry is one 'NAME: CONFIG' pair", idx);
        const ea_filter_ops *ops = ea_filter_find(f->child->key);
        if (!ops)
            return ea_cfg_err(err, errlen, f->child,
                              "unknown filter '%s' (known: match, threshold, deadband, window, fields, enrich)",
                              f->child->key);
        if (add_step(r, ops, f->child, env, err, errlen) < 0)
            return -1;
    }
    return 0;
}

ea_pipeline *ea_pipeline_new(const ea_node *routes, const ea_filter_env *env, char *err, size_t errlen)
{
    ea_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->scratch = malloc(sizeof *p->scratch);
    int n = routes && routes->type == EA_N_ARR ? (int)ea_node_count(routes) : 0;
    if (routes && routes->type != EA_N_ARR) {
        ea_cfg_err(err, errlen, routes, "routes: expected a list");
        ea_pipeline_free(p);
        return NULL;
    }
    p->routes = calloc((size_t)(n ? n : 1), sizeof *p->routes);
    if (!p->scratch || !p->routes) {
        ea_pipeline_free(p);
        return NULL;
    }
    if (n == 0) {
        snprintf(p->routes[0].name, sizeof p->routes[0].name, "default");
        p->nroutes = 1;
        return p;
    }
    int i = 0;
    for (const ea_node *rn = routes->child; rn; rn = rn->next, i++) {
        p->nroutes = i + 1;
        if (build_route(&p->routes[i], rn, i, env, err, errlen) < 0) {
            ea_pipeline_free(p);
            return NULL;
        }
    }
    return p;
}

void ea_pipeline_set_sink(ea_pipeline *p, ea_sink_fn sink, void *arg)
{
    p->sink = sink;
    p->sink_arg = arg;
}

/* Runs r through route steps [from, end); sinks it if all pass. */
static void run_steps(ea_pipeline *p, route *rt, int from, ea_record *r, uint64_t now_ms)
{
    for (int i = from; i < rt->nsteps; i++)
        if (rt->steps[i].ops->apply(rt->steps[i].f, r, now_ms) == EA_FILTER_DROP)
            return;
    if (!p->sink)
        return;
    int e = p->sink(p->sink_arg, r);
    if (e < 0)
        p->sink_err = e;
    else
        p->sunk++;
}

int ea_pipeline_process(ea_pipeline *p, ea_record *r, uint64_t now_ms)
{
    p->sunk = 0;
    p->sink_err = 0;
    for (int i = 0; i < p->nroutes; i++) {
        ea_record *work = r;
        if (p->nroutes > 1) {
            ea_rec_copy(p->scratch, r);
            work = p->scratch;
        }
        run_steps(p, &p->routes[i], 0, work, now_ms);
    }
    if (p->sink_err)
        return p->sink_err;
    if (!p->sunk)
        p->dropped++;
    return p->sunk;
}

static void emit_from_flush(void *arg, ea_record *r)
{
    ea_pipeline *p = arg;
    run_steps(p, &p->routes[p->flushing_route], p->flushing_step + 1, r, 0);
}

void ea_pipeline_flush(ea_pipeline *p, uint64_t now_ms)
{
    for (int i = 0; i < p->nroutes; i++)
        for (int k = 0; k < p->routes[i].nsteps; k++)
            if (p->routes[i].steps[k].ops->flush) {
                p->flushing_route = i;
                p->flushing_step = k;
                p->routes[i].steps[k].ops->flush(p->routes[i].steps[k].f, now_ms, emit_from_flush, p);
            }
}

uint64_t ea_pipeline_dropped(const ea_pipeline *p) { return p->dropped; }
