/*
 * test_http_out_backoff.c: the capped, jittered backoff both outputs use between retries:
 * every delay lies in [cap/2, cap], the cap doubles from min to max and stays there, reset starts
 * over, and two differently seeded instances do not retry in lockstep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/backoff.h"

static void test_delays_within_capped_doubling_bounds(void **state)
{
    (void)state;
    ea_backoff b;
    ea_backoff_init(&b, 500, 60000, 12345);
    uint32_t want_cap = 500;
    for (int k = 0; k < 40; k++) {
        assert_int_equal(ea_backoff_cap(&b), want_cap);
        uint32_t d = ea_backoff_next(&b);
        if (d < want_cap / 2 || d > want_cap)
            fail_msg("attempt %d: delay %u outside [%u, %u]", k, d, want_cap / 2, want_cap);
        want_cap = want_cap * 2 > 60000 ? 60000 : want_cap * 2;
    }
    assert_int_equal(ea_backoff_cap(&b), 60000); /* capped, retries unlimited */
    ea_backoff_reset(&b);
    assert_int_equal(ea_backoff_cap(&b), 500);
}

static void test_jitter_spreads_and_seeds_differ(void **state)
{
    (void)state;
    ea_backoff a, b;
    ea_backoff_init(&a, 1000, 1000, 1);
    ea_backoff_init(&b, 1000, 1000, 2);
    int same = 0, distinct_a = 0;
    uint32_t prev = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t da = ea_backoff_next(&a), db = ea_backoff_next(&b);
        same += da == db;
        distinct_a += da != prev;
        prev = da;
    }
    assert_true(same < 10);       /* two agents do not retry in lockstep */
    assert_true(distinct_a > 90); /* the delay really is random within the window */
}

static void test_degenerate_parameters(void **state)
{
    (void)state;
    ea_backoff b;
    ea_backoff_init(&b, 0, 0, 0); /* seed from getrandom, min raised to 1 */
    assert_int_equal(ea_backoff_cap(&b), 1);
    assert_true(ea_backoff_next(&b) <= 1);
    ea_backoff_init(&b, 5000, 100, 7); /* max below min: raised to min */
    assert_int_equal(ea_backoff_cap(&b), 5000);
    for (int i = 0; i < 200; i++)
        assert_true(ea_backoff_next(&b) <= 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays_within_capped_doubling_bounds),
        cmocka_unit_test(test_jitter_spreads_and_seeds_differ),
        cmocka_unit_test(test_degenerate_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
