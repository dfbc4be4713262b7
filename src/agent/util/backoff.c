/*
 * util/backoff.c: capped exponential backoff with equal jitter (see backoff.h for the rule).
 */
#include "util/backoff.h"

#include <sys/random.h>
#include <time.h>

static uint64_t seed_from_kernel(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
    }
    return s ? s : 0x2545f4914f6cdd1dull;
}

void ea_backoff_init(ea_backoff *b, uint32_t min_ms, uint32_t max_ms, uint64_t seed)
{
    b->min_ms = min_ms ? min_ms : 1;
    b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
    b->attempt = 0;
    b->rng = seed ? seed : seed_from_kernel();
}

static uint64_t next_random(ea_backoff *b)
{
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint32_t ea_backoff_cap(const ea_backoff *b)
{
    uint64_t cap = b->min_ms;
    for (uint32_t i = 0; i < b->attempt && cap < b->max_ms; i++)
        cap *= 2;
    return cap > b->max_ms ? b->max_ms : (uint32_t)cap;
}

uint32_t ea_backoff_next(ea_backoff *b)
{
    uint32_t cap = ea_backoff_cap(b);
    uint32_t half = cap / 2;
    uint32_t delay = half + (uint32_t)(next_random(b) % ((uint64_t)(cap - half) + 1));
    if (b->attempt < 64) b->attempt++;
    return delay;
}

void ea_backoff_reset(ea_backoff *b)
{
    b->attempt = 0;
}
