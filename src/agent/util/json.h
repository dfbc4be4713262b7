/*
 * util/json.h: a small strict JSON parser producing a tree in an arena (RFC 8259: no comments,
 * no trailing commas, no NaN; strings decoded to UTF-8 incl. surrogate pairs). Bounded: nesting
 * depth 32, input size by the caller, allocations by the arena cap. Also the tree node type that
 * the YAML-subset config parser produces, so config from a file and from the control plane share
 * one loader.
 */
#ifndef EA_UTIL_JSON_H
#define EA_UTIL_JSON_H
#include <stddef.h>
#include <stdint.h>

#include "util/arena.h"
#include "util/buf.h"

enum ea_ntype { EA_N_NULL, EA_N_BOOL, EA_N_NUM, EA_N_STR, EA_N_ARR, EA_N_OBJ };

typedef struct ea_node {
    int type;      /* enum ea_ntype */
    int is_int;    /* NUM written without fraction/exponent and fits int64 */
    int b;         /* BOOL */
    int line;      /* 1-based source line */
    double num;
    int64_t i;
    const char *s; /* STR (NUL-terminated; may contain NUL if \u0000 was used: use slen) */
    size_t slen;
    const char *key; /* member name inside an object */
    size_t klen;
    const char *raw; /* the value's source text (JSON only) */
    size_t rawlen;
    struct ea_node *child, *next;
} ea_node;

#define EA_JSON_MAX_DEPTH 32

ea_node *ea_json_parse(ea_arena *a, const char *text, size_t len, char *err, size_t errlen);
const ea_node *ea_node_get(const ea_node *obj, const char *key);
size_t ea_node_count(const ea_node *n);
int ea_json_write(ea_buf *b, const ea_node *n); /* compact re-encoding */
#endif
