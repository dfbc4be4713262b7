/* util/arena.h: bump allocator freed all at once (one per parsed request or config document), with
 * a byte cap so a hostile document cannot allocate without bound. */
#ifndef EA_UTIL_ARENA_H
#define EA_UTIL_ARENA_H
#include <stddef.h>
typedef struct ea_arena_chunk ea_arena_chunk;
typedef struct ea_arena {
    ea_arena_chunk *head;
    size_t used_total, max; /* max 0 = 16 MiB */
} ea_arena;
void *ea_arena_alloc(ea_arena *a, size_t n); /* zeroed; NULL past the cap */
char *ea_arena_strndup(ea_arena *a, const char *s, size_t n);
void ea_arena_free(ea_arena *a);
/* Moves every chunk of src into dst (freed with dst); src is left empty. */
void ea_arena_adopt(ea_arena *dst, ea_arena *src);
#endif
