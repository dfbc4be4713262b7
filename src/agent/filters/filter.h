/*
 * filters/filter.h: the one interface every pipeline filter implements (Fluent Bit style: one file
 * per filter, one ops struct each), and the pipeline that runs routes of filters.
 *
 * A filter is created from its config node (the value under its name in a route's `filters:`
 * list, from YAML or from a remote JSON document). apply() sees each record in order and returns
 * EA_FILTER_PASS (possibly after changing it) or EA_FILTER_DROP. A filter that emits records of
 * its own (window) does so from flush(), called by the pipeline's timer; those records continue
 * through the filters after it. Filters keep bounded state (series tables have a fixed size).
 */
#ifndef EA_FILTERS_FILTER_H
#define EA_FILTERS_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "util/json.h"

enum { EA_FILTER_DROP = 0, EA_FILTER_PASS = 1 };

typedef struct ea_filter ea_filter;
typedef void (*ea_emit_fn)(void *arg, ea_record *r);

/* Agent-wide values a filter may use (enrich's defaults). */
typedef struct ea_filter_env {
    const char *device_id;
    const char *site;
} ea_filter_env;

typedef struct ea_filter_ops {
    const char *name;
    ea_filter *(*create)(const ea_node *cfg, const ea_filter_env *env, char *err, size_t errlen);
    int (*apply)(ea_filter *f, ea_record *r, uint64_t now_ms);
    void (*flush)(ea_filter *f, uint64_t now_ms, ea_emit_fn emit, void *arg); /* may be NULL */
    void (*destroy)(ea_filter *f);
} ea_filter_ops;

extern const ea_filter_ops ea_filter_match, ea_filter_threshold, ea_filter_deadband, ea_filter_window,
    ea_filter_fields, ea_filter_enrich;
const ea_filter_ops *ea_filter_find(const char *name);

/* Small helpers shared by the filters' config readers. */
int ea_cfg_string(const ea_node *n, const char **out);              /* STR -> 0 */
int ea_cfg_number(const ea_node *n, double *out);                  /* NUM or numeric STR -> 0 */
int ea_cfg_err(char *err, size_t errlen, const ea_node *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5))); /* "line N: ..." ; returns -1 */

/* ---------------------------------------------------------------- pipeline */
typedef struct ea_pipeline ea_pipeline;
/* Where records that pass a route go (the spool writer). Returns 0, or <0 to report a refusal. */
typedef int (*ea_sink_fn)(void *arg, ea_record *r);

/* routes: a list of {name, match?, filters: [ {NAME: CFG}, ... ]}; NULL or empty = one route that
 * passes everything. */
ea_pipeline *ea_pipeline_new(const ea_node *routes, const ea_filter_env *env, char *err, size_t errlen);
void ea_pipeline_free(ea_pipeline *p);
void ea_pipeline_set_sink(ea_pipeline *p, ea_sink_fn sink, void *arg);
/* Runs r through every route whose filters let it pass; returns how many copies were sunk, or the
 * sink's negative result. r may be changed. */
int ea_pipeline_process(ea_pipeline *p, ea_record *r, uint64_t now_ms);
void ea_pipeline_flush(ea_pipeline *p, uint64_t now_ms); /* window timers */
uint64_t ea_pipeline_dropped(const ea_pipeline *p);     /* records no route passed */

#endif
