/*
 * dive's CI gates, so existing `.dive-ci` files keep working:
 *   rules:
 *     lowestEfficiency: 0.95           # fail when efficiency < value (0..1); default 0.9
 *     highestWastedBytes: 20MB         # fail when wasted bytes > value; default disabled
 *     highestUserWastedPercent: 0.20   # fail when user wasted ratio > value (0..1); default 0.1
 * Any value may be "disabled". Byte strings follow dive's parser (go-humanize ParseBytes): a
 * decimal number (commas ignored) then an optional case-insensitive unit: b, k/kb (1000),
 * ki/kib (1024), m/mb, mi/mib, ... up to e/eb, ei/eib.
 * The YAML is the tiny subset such files use (a "rules:" map of scalars, comments, quotes); it is
 * parsed by hand because three keys do not justify a YAML library dependency.
 */
#ifndef ES_ANALYZE_DIVE_CI_H
#define ES_ANALYZE_DIVE_CI_H

#include <stdint.h>

#include "analyze/analyzer.h"
#include "util/error.h"

enum {
    ES_CI_LOWEST_EFFICIENCY = 0,
    ES_CI_HIGHEST_WASTED_BYTES,
    ES_CI_HIGHEST_USER_WASTED_PERCENT,
    ES_CI_NRULES
};

typedef struct es_ci_rule {
    const char *key; /* dive's key, e.g. "lowestEfficiency" */
    char value[64];  /* as configured ("disabled" or a number / byte string) */
} es_ci_rule;

typedef struct es_ci_config {
    es_ci_rule rules[ES_CI_NRULES];
} es_ci_config;

typedef enum { ES_CI_PASS = 0, ES_CI_FAIL, ES_CI_SKIP } es_ci_status;

typedef struct es_ci_result {
    const char *key;
    es_ci_status status;
    char value[64];    /* threshold as configured */
    char message[256]; /* why it failed, or "" */
} es_ci_result;

void es_ci_config_default(es_ci_config *c);
/* Reads a .dive-ci file over the defaults. Unknown keys are ignored (as dive does); an invalid
 * value fails with ES_EFORMAT naming the file and key (dive reports it "misconfigured"). */
int es_ci_config_load(es_ci_config *c, const char *path, es_error *err);
/* Same from text (name is used in error messages). */
int es_ci_config_parse(es_ci_config *c, const char *text, const char *name, es_error *err);
/* Checks every enabled value; ES_EFORMAT naming the key on the first invalid one. */
int es_ci_config_validate(const es_ci_config *c, const char *name, es_error *err);

/* go-humanize ParseBytes. 0 and *out, or -1. */
int es_ci_parse_bytes(const char *s, uint64_t *out);

/* Evaluates every rule; returns 1 when all enabled rules pass, else 0. */
int es_ci_evaluate(const es_ci_config *c, const es_waste_metrics *m,
                   es_ci_result res[ES_CI_NRULES]);

#endif
