/*
 * filters/series.h: a fixed-size open-addressing table from series hash to a small per-series
 * state, shared by deadband and window. Full table: lookups for new series return NULL and the
 * caller passes the record through unchanged (bounded memory beats perfect filtering).
 */
#ifndef EA_FILTERS_SERIES_H
#define EA_FILTERS_SERIES_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EA_SERIES_SLOTS 1024u /* power of two */

/* Returns the slot index for hash h (inserting if absent), or -1 when full. keys[] holds hash+1
 * (0 = empty). */
static inline int ea_series_slot_n(uint64_t *keys, unsigned nslots, uint64_t h, int *inserted)
{
    uint64_t k = h + 1 ? h + 1 : 1;
    for (unsigned i = 0; i < nslots; i++) {
        unsigned s = (unsigned)((h + i) & (nslots - 1));
        if (keys[s] == k) {
            *inserted = 0;
            return (int)s;
        }
        if (keys[s] == 0) {
            keys[s] = k;
            *inserted = 1;
            return (int)s;
        }
    }
    return -1;
}
static inline int ea_series_slot(uint64_t *keys, uint64_t h, int *inserted)
{
    return ea_series_slot_n(keys, EA_SERIES_SLOTS, h, inserted);
}
#endif
