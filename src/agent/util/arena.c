/* util/arena.c: chunked bump allocator (see arena.h). Chunks grow to 64 KiB; large requests get
 * their own chunk. Chunks are mmap'ed, not malloc'ed, so the memory of a large request's parse
 * tree goes back to the kernel when the request is done (RSS returns to idle). */
#include "util/arena.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct ea_arena_chunk {
    ea_arena_chunk *next;
    size_t used, cap, mapped;
    _Alignas(16) char data[];
};

void *ea_arena_alloc(ea_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    size_t max = a->max ? a->max : (16u << 20);
    if (n > max || a->used_total + n > max)
        return NULL;
    ea_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = c && c->cap < 65536 ? c->cap * 2 : (c ? 65536 : 4096);
        if (cap < n)
            cap = n;
        size_t mapped = (sizeof(ea_arena_chunk) + cap + 4095) & ~(size_t)4095;
        ea_arena_chunk *nc = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (nc == MAP_FAILED)
            return NULL;
        nc->mapped = mapped;
        cap = mapped - sizeof(ea_arena_chunk);
        nc->next = a->head;
        nc->used = 0;
        nc->cap = cap;
        a->head = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used_total += n;
    memset(p, 0, n); /* fresh mmap pages are zero, reused space is not */
    return p;
}

char *ea_arena_strndup(ea_arena *a, const char *s, size_t n)
{
    char *p = ea_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

void ea_arena_free(ea_arena *a)
{
    ea_arena_chunk *c = a->head;
    while (c) {
        ea_arena_chunk *n = c->next;
        munmap(c, c->mapped);
        c = n;
    }
    a->head = NULL;
    a->used_total = 0;
}

void ea_arena_adopt(ea_arena *dst, ea_arena *src)
{
    ea_arena_chunk *c = src->head;
    while (c) {
        ea_arena_chunk *n = c->next;
        /* behind dst's current chunk so dst keeps allocating from its own head */
        if (dst->head) {
            c->next = dst->head->next;
            dst->head->next = c;
        } else {
            c->next = NULL;
            dst->head = c;
        }
        c = n;
    }
    src->head = NULL;
    src->used_total = 0;
}
