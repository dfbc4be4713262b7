/*
 * A hash set of path strings (open addressing, FNV-1a), used to remember which paths the
 * current layer created, for opaque whiteouts. Memory grows with the number of paths only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"

struct es_pathset {
    char **slots;
    size_t *values;
    size_t cap, n;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

es_pathset *es_pathset_new(void)
{
    es_pathset *s = es_xcalloc(1, sizeof *s);
    s->cap = 64;
    s->slots = es_xcalloc(s->cap, sizeof *s->slots);
    s->values = es_xcalloc(s->cap, sizeof *s->values);
    return s;
}

void es_pathset_clear(es_pathset *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->slots[i]);
        s->slots[i] = NULL;
    }
    s->n = 0;
}

void es_pathset_free(es_pathset *s)
{
    if (!s) return;
    es_pathset_clear(s);
    free(s->slots);
    free(s->values);
    free(s);
}

static size_t find_slot(char **slots, size_t cap, const char *path)
{
    size_t i = hash(path) & (cap - 1);
    while (slots[i] && strcmp(slots[i], path) != 0) i = (i + 1) & (cap - 1);
    return i;
}

static void grow(es_pathset *s)
{
    size_t cap = s->cap * 2;
    char **slots = es_xcalloc(cap, sizeof *slots);
    size_t *values = es_xcalloc(cap, sizeof *values);
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slots[i]) continue;
        size_t j = find_slot(slots, cap, s->slots[i]);
        slots[j] = s->slots[i];
        values[j] = s->values[i];
    }
    free(s->slots);
    free(s->values);
    s->slots = slots;
    s->values = values;
    s->cap = cap;
}

int es_pathset_put(es_pathset *s, const char *path, size_t value, size_t *existing)
{
    if (2 * (s->n + 1) > s->cap) grow(s);
    size_t i = find_slot(s->slots, s->cap, path);
    if (s->slots[i]) {
        if (existing) *existing = s->values[i];
        return 0;
    }
    s->slots[i] = es_xstrdup(path);
    s->values[i] = value;
    s->n++;
    return 1;
}

int es_pathset_add(es_pathset *s, const char *path)
{
    return es_pathset_put(s, path, 0, NULL);
}

int es_pathset_has(const es_pathset *s, const char *path)
{
    return s->slots[find_slot(s->slots, s->cap, path)] != NULL;
}
