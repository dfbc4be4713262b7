/*
 * filters/threshold.c: passes records where a numeric field compares true against a constant.
 * Config: `threshold: "temp > 30"` or a list of such strings (all must hold). Operators: > >= < <=
 * == !=. A record without the field, or with a non-numeric one, is dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

#define MAX_TERMS 8

enum op { OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ, OP_NE };

typedef struct term {
    char field[64];
    int op;
    double value;
} term;

struct ea_filter {
    term terms[MAX_TERMS];
    int n;
};

static void destroy(ea_filter *f) { free(f); }

/* Parses "FIELD OP NUMBER"; returns -1 with a reason in why. */
static int parse_term(const char *s, term *t, const char **why)
{
    while (*s == ' ')
        s++;
    size_t n = 0;
    while (s[n] && s[n] != ' ' && !strchr("<>=!", s[n]))
        n++;
    if (n == 0 || n >= sizeof t->field) {
        *why = "expected a field name";
        return -1;
    }
    memcpy(t->field, s, n);
    t->field[n] = 0;
    s += n;
    while (*s == ' ')
        s++;
    static const struct {
        const char *txt;
        int op;
    } ops[] = {{">=", OP_GE}, {"<=", OP_LE}, {"==", OP_EQ}, {"!=", OP_NE}, {">", OP_GT}, {"<", OP_LT}};
    size_t i;
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strncmp(s, ops[i].txt, strlen(ops[i].txt)))
            break;
    if (i == sizeof ops / sizeof ops[0]) {
        *why = "expected an operator (> >= < <= == !=)";
        return -1;
    }
    t->op = ops[i].op;
    s += strlen(ops[i].txt);
    char *end;
    t->value = strtod(s, &end);
    if (end == s) {
        *why = "expected a number after the operator";
        return -1;
    }
    while (*end == ' ')
        end++;
    if (*end) {
        *why = "unexpected text after the number";
        return -1;
    }
    return 0;
}

static ea_filter *create(const ea_node *cfg, const ea_filter_env *env, char *err, size_t errlen)
{
    (void)env;
    ea_filter *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    const ea_node *one = cfg->type == EA_N_STR ? cfg : (cfg->type == EA_N_ARR ? cfg->child : NULL);
    if (!one) {
        destroy(f);
        ea_cfg_err(err, errlen, cfg, "threshold: expected \"FIELD OP NUMBER\" or a list of them");
        return NULL;
    }
    for (const ea_node *t = one; t; t = cfg->type == EA_N_STR ? NULL : t->next) {
        const char *why = "expected a string";
        if (t->type != EA_N_STR || f->n == MAX_TERMS || parse_term(t->s, &f->terms[f->n], &why) < 0) {
            if (f->n == MAX_TERMS)
                why = "too many terms (8 at most)";
            ea_cfg_err(err, errlen, t, "threshold '%s': %s", t->type == EA_N_STR ? t->s : "?", why);
            destroy(f);
            return NULL;
        }
        f->n++;
    }
    return f;
}

static int holds(const term *t, double v)
{
    switch (t->op) {
    case OP_GT: return v > t->value;
    case OP_GE: return v >= t->value;
    case OP_LT: return v < t->value;
    case OP_LE: return v <= t->value;
    case OP_EQ: return v == t->value;
    default: return v != t->value;
    }
}

static int apply(ea_filter *f, ea_record *r, uint64_t now_ms)
{
    (void)now_ms;
    for (int i = 0; i < f->n; i++) {
        ea_field *fd = ea_rec_field(r, f->terms[i].field);
        double v;
        if (!fd || ea_field_number(fd, &v) < 0 || !holds(&f->terms[i], v))
            return EA_FILTER_DROP;
    }
    return EA_FILTER_PASS;
}

const ea_filter_ops ea_filter_threshold = {"threshold", create, apply, NULL, destroy};
