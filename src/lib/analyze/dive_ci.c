/*
 * dive CI gates: .dive-ci parsing (YAML subset, see dive_ci.h), dive's byte-string parser and the
 * three comparisons exactly as dive makes them (efficiency < lowest fails; wasted > highest fails;
 * user wasted ratio > highest fails, so a NaN ratio passes and +inf fails, as in Go).
 */
#include "analyze/dive_ci.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/reader.h"

static const char *const rule_keys[ES_CI_NRULES] = {"lowestEfficiency", "highestWastedBytes",
                                                    "highestUserWastedPercent"};

void es_ci_config_default(es_ci_config *c)
{
    memset(c, 0, sizeof *c);
    static const char *const defaults[ES_CI_NRULES] = {"0.9", "disabled", "0.1"};
    for (int i = 0; i < ES_CI_NRULES; i++) {
        c->rules[i].key = rule_keys[i];
        snprintf(c->rules[i].value, sizeof c->rules[i].value, "%s", defaults[i]);
    }
}

/* ------------------------------------------------------------------ values */

static int parse_float_strict(const char *s, double *out)
{
    char *end;
    if (!*s) return -1;
    double v = strtod(s, &end);
    if (*end != 0) return -1;
    *out = v;
    return 0;
}

int es_ci_parse_bytes(const char *s, uint64_t *out)
{
    char num[64];
    size_t n = 0, i = 0;
    for (; s[i] && (isdigit((unsigned char)s[i]) || s[i] == '.' || s[i] == ','); i++)
        if (s[i] != ',' && n < sizeof num - 1) num[n++] = s[i];
    num[n] = 0;
    double v;
    if (parse_float_strict(num, &v) != 0) return -1;
    char unit[16];
    const char *u = s + i;
    while (isspace((unsigned char)*u))
        u++;
    size_t un = strlen(u);
    while (un && isspace((unsigned char)u[un - 1]))
        un--;
    if (un >= sizeof unit) return -1;
    for (size_t k = 0; k < un; k++)
        unit[k] = (char)tolower((unsigned char)u[k]);
    unit[un] = 0;
    static const struct {
        const char *name;
        double mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1e3},
        {"kb", 1e3},
        {"ki", 1024.0},
        {"kib", 1024.0},
        {"m", 1e6},
        {"mb", 1e6},
        {"mi", 1048576.0},
        {"mib", 1048576.0},
        {"g", 1e9},
        {"gb", 1e9},
        {"gi", 1073741824.0},
        {"gib", 1073741824.0},
        {"t", 1e12},
        {"tb", 1e12},
        {"ti", 1099511627776.0},
        {"tib", 1099511627776.0},
        {"p", 1e15},
        {"pb", 1e15},
        {"pi", 1125899906842624.0},
        {"pib", 1125899906842624.0},
        {"e", 1e18},
        {"eb", 1e18},
        {"ei", 1152921504606846976.0},
        {"eib", 1152921504606846976.0},
    };
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
        if (strcmp(unit, units[k].name) != 0) continue;
        double r = v * units[k].mult;
        if (!(r < 18446744073709551616.0)) return -1;
        *out = (uint64_t)r;
        return 0;
    }
    return -1;
}

static int rule_disabled(const es_ci_rule *r)
{
    return !strcmp(r->value, "disabled");
}

static int validate_rule(const es_ci_rule *r, int idx, const char *name, es_error *err)
{
    if (rule_disabled(r)) return 0;
    double v;
    uint64_t b;
    if (idx == ES_CI_HIGHEST_WASTED_BYTES) {
        if (es_ci_parse_bytes(r->value, &b) != 0)
            return es_err(err, ES_EFORMAT, "%s: rules.%s: invalid byte size '%s'", name, r->key,
                          r->value);
        return 0;
    }
    if (parse_float_strict(r->value, &v) != 0)
        return es_err(err, ES_EFORMAT, "%s: rules.%s: invalid number '%s'", name, r->key, r->value);
    if (v < 0 || v > 1)
        return es_err(err, ES_EFORMAT, "%s: rules.%s: '%s' is outside the allowed range 0-1", name,
                      r->key, r->value);
    return 0;
}

int es_ci_config_validate(const es_ci_config *c, const char *name, es_error *err)
{
    for (int i = 0; i < ES_CI_NRULES; i++)
        if (validate_rule(&c->rules[i], i, name, err) != 0) return -1;
    return 0;
}

/* ------------------------------------------------------------------ YAML subset */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

/* Strips a trailing " # comment" outside quotes and surrounding quotes; NULL if unbalanced. */
static char *scalar(char *v)
{
    v = trim(v);
    if (*v == '"' || *v == '\'') {
        char q = *v;
        char *close = strchr(v + 1, q);
        if (!close) return NULL;
        *close = 0;
        char *rest = trim(close + 1);
        if (*rest && *rest != '#') return NULL;
        return v + 1;
    }
    for (char *p = v; *p; p++)
        if (*p == '#' && (p == v || isspace((unsigned char)p[-1]))) {
            *p = 0;
            break;
        }
    return trim(v);
}

static int set_rule(es_ci_config *c, const char *key, const char *value, const char *name, int line,
                    es_error *err)
{
    for (int i = 0; i < ES_CI_NRULES; i++) {
        if (strcasecmp(key, rule_keys[i]) != 0) continue;
        if (strlen(value) >= sizeof c->rules[i].value)
            return es_err(err, ES_EFORMAT, "%s:%d: rules.%s: value too long", name, line,
                          rule_keys[i]);
        snprintf(c->rules[i].value, sizeof c->rules[i].value, "%s", value);
        return 0;
    }
    return 0; /* unknown rule keys are ignored, as dive ignores them */
}

int es_ci_config_parse(es_ci_config *c, const char *text, const char *name, es_error *err)
{
    char *copy = es_xstrdup(text);
    int in_rules = 0, lineno = 0, rc = 0;
    char *save = NULL;
    for (char *raw = strtok_r(copy, "\n", &save); raw; raw = strtok_r(NULL, "\n", &save)) {
        lineno++;
        int indented = raw[0] == ' ' || raw[0] == '\t';
        char *line = trim(raw);
        if (!*line || *line == '#' || !strcmp(line, "---")) continue;
        char *colon = strchr(line, ':');
        if (!colon) {
            rc = es_err(err, ES_EFORMAT, "%s:%d: expected 'key: value'", name, lineno);
            break;
        }
        *colon = 0;
        char *key = trim(line), *value = scalar(colon + 1);
        if (!value) {
            rc = es_err(err, ES_EFORMAT, "%s:%d: unbalanced quotes", name, lineno);
            break;
        }
        if (!indented) {
            in_rules = !strcasecmp(key, "rules") && !*value;
            continue;
        }
        if (in_rules && set_rule(c, key, value, name, lineno, err) != 0) {
            rc = -1;
            break;
        }
    }
    free(copy);
    if (rc != 0) return -1;
    return es_ci_config_validate(c, name, err);
}

int es_ci_config_load(es_ci_config *c, const char *path, es_error *err)
{
    es_reader *r = es_reader_file(path, err);
    if (!r) return -1;
    char *text = NULL;
    size_t len = 0;
    int rc = es_reader_slurp(r, 1 << 20, path, &text, &len, err);
    es_reader_free(r);
    if (rc != 0) return -1;
    rc = es_ci_config_parse(c, text, path, err);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ evaluation */

int es_ci_evaluate(const es_ci_config *c, const es_waste_metrics *m, es_ci_result res[ES_CI_NRULES])
{
    int pass = 1;
    for (int i = 0; i < ES_CI_NRULES; i++) {
        es_ci_result *r = &res[i];
        memset(r, 0, sizeof *r);
        r->key = c->rules[i].key;
        snprintf(r->value, sizeof r->value, "%s", c->rules[i].value);
        if (rule_disabled(&c->rules[i])) {
            r->status = ES_CI_SKIP;
            continue;
        }
        double v = 0;
        uint64_t b = 0;
        int bad = i == ES_CI_HIGHEST_WASTED_BYTES ? es_ci_parse_bytes(r->value, &b)
                                                  : parse_float_strict(r->value, &v);
        if (bad) {
            r->status = ES_CI_FAIL;
            snprintf(r->message, sizeof r->message, "invalid config value '%s'", r->value);
        } else if (i == ES_CI_LOWEST_EFFICIENCY && v > m->efficiency) {
            r->status = ES_CI_FAIL;
            snprintf(r->message, sizeof r->message, "efficiency %.4f is below %s", m->efficiency,
                     r->value);
        } else if (i == ES_CI_HIGHEST_WASTED_BYTES && (uint64_t)m->wasted_bytes > b) {
            r->status = ES_CI_FAIL;
            snprintf(r->message, sizeof r->message, "wasted bytes %lld exceed %llu (%s)",
                     (long long)m->wasted_bytes, (unsigned long long)b, r->value);
        } else if (i == ES_CI_HIGHEST_USER_WASTED_PERCENT && v < m->user_wasted_percent) {
            r->status = ES_CI_FAIL;
            snprintf(r->message, sizeof r->message, "user wasted ratio %.4f exceeds %s",
                     m->user_wasted_percent, r->value);
        } else {
            r->status = ES_CI_PASS;
        }
        if (r->status == ES_CI_FAIL) pass = 0;
    }
    return pass;
}
