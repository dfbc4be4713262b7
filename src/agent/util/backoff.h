/*
 * util/backoff.h: capped exponential backoff with jitter for reconnects and retries.
 *
 * Attempt k (from 0) waits a uniformly random time in [cap_k / 2, cap_k] where
 * cap_k = min(max_ms, min_ms * 2^k) ("equal jitter"): it grows quickly, never exceeds max_ms, never
 * drops below half the current cap, and spreads a fleet of agents that lost the same broker at the
 * same moment. Retries are unlimited; reset after a success.
 *
 * Invariants: no allocation, no global state; the random stream is a per-instance xorshift64*
 * seeded from getrandom() (or a fixed seed for tests), so two instances never share a sequence.
 */
#ifndef EA_UTIL_BACKOFF_H
#define EA_UTIL_BACKOFF_H

#include <stdint.h>

typedef struct ea_backoff {
    uint32_t min_ms, max_ms;
    uint32_t attempt;
    uint64_t rng;
} ea_backoff;

/* seed 0 = seed from getrandom(). min_ms 0 is treated as 1; max_ms < min_ms is raised to min_ms. */
void ea_backoff_init(ea_backoff *b, uint32_t min_ms, uint32_t max_ms, uint64_t seed);
/* The delay before the next attempt; advances the attempt counter. */
uint32_t ea_backoff_next(ea_backoff *b);
/* The upper bound the next call to ea_backoff_next() will draw under. */
uint32_t ea_backoff_cap(const ea_backoff *b);
void ea_backoff_reset(ea_backoff *b);

#endif
