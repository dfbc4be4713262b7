/*
 * Keep-set as an open-addressing hash table of owned strings (see keepset.h). Tombstones mark
 * removed slots so probing chains stay intact; the table doubles at 50% load.
 */
#include "slim/keepset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define TOMBSTONE ((char *)1)

typedef struct {
    char *path; /* NULL empty, TOMBSTONE removed */
    unsigned reasons;
} slot;

struct es_keepset {
    slot *slots;
    size_t cap, used, live;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

es_keepset *es_keepset_new(void)
{
    es_keepset *ks = es_xcalloc(1, sizeof *ks);
    ks->cap = 1024;
    ks->slots = es_xcalloc(ks->cap, sizeof *ks->slots);
    return ks;
}

void es_keepset_free(es_keepset *ks)
{
    if (!ks) return;
    for (size_t i = 0; i < ks->cap; i++)
        if (ks->slots[i].path && ks->slots[i].path != TOMBSTONE) free(ks->slots[i].path);
    free(ks->slots);
    free(ks);
}

static slot *find(const es_keepset *ks, const char *path)
{
    size_t i = hash_str(path) & (ks->cap - 1);
    for (;;) {
        slot *s = &ks->slots[i];
        if (!s->path) return NULL;
        if (s->path != TOMBSTONE && strcmp(s->path, path) == 0) return s;
        i = (i + 1) & (ks->cap - 1);
    }
}

static void grow(es_keepset *ks)
{
    slot *old = ks->slots;
    size_t oldcap = ks->cap;
    ks->cap *= 2;
    ks->slots = es_xcalloc(ks->cap, sizeof *ks->slots);
    ks->used = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].path || old[i].path == TOMBSTONE) continue;
        size_t j = hash_str(old[i].path) & (ks->cap - 1);
        while (ks->slots[j].path) j = (j + 1) & (ks->cap - 1);
        ks->slots[j] = old[i];
        ks->used++;
    }
    free(old);
}

static int add_one(es_keepset *ks, const char *path, size_t len, unsigned reason)
{
    char *p = es_xmalloc(len + 1);
    memcpy(p, path, len);
    p[len] = 0;
    slot *s = find(ks, p);
    if (s) {
        s->reasons |= reason;
        free(p);
        return 0;
    }
    if ((ks->used + 1) * 2 > ks->cap) grow(ks);
    size_t i = hash_str(p) & (ks->cap - 1);
    while (ks->slots[i].path && ks->slots[i].path != TOMBSTONE) i = (i + 1) & (ks->cap - 1);
    if (!ks->slots[i].path) ks->used++;
    ks->slots[i].path = p;
    ks->slots[i].reasons = reason;
    ks->live++;
    return 1;
}

int es_keepset_add(es_keepset *ks, const char *path, unsigned reason)
{
    if (path[0] != '/') return 0;
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    if (len <= 1) return 0;
    for (size_t i = 1; i < len; i++)
        if (path[i] == '/') add_one(ks, path, i, reason);
    return add_one(ks, path, len, reason);
}

unsigned es_keepset_get(const es_keepset *ks, const char *path)
{
    const slot *s = find(ks, path);
    return s ? s->reasons : 0;
}

void es_keepset_remove(es_keepset *ks, const char *path)
{
    slot *s = find(ks, path);
    if (!s) return;
    free(s->path);
    s->path = TOMBSTONE;
    s->reasons = 0;
    ks->live--;
}

size_t es_keepset_count(const es_keepset *ks)
{
    return ks->live;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **es_keepset_sorted(const es_keepset *ks, size_t *n)
{
    const char **v = es_xcalloc(ks->live + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < ks->cap; i++)
        if (ks->slots[i].path && ks->slots[i].path != TOMBSTONE) v[k++] = ks->slots[i].path;
    qsort(v, k, sizeof *v, cmp_str);
    *n = k;
    return v;
}

const char *es_keep_reason_names(unsigned r, char *buf, size_t len)
{
    static const char *names[] = {"static", "traced", "rule", "preset", "meta"};
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < 5; i++) {
        if (!(r & (1u << i))) continue;
        int w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", names[i]);
        if (w < 0 || (size_t)w >= len - off) break;
        off += (size_t)w;
    }
    return buf;
}
