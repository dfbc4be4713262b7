/*
 * tests/agent/test_loop.c: the epoll loop with real pipes: I/O callbacks, one-shot timers in
 * deadline order, cancellation, an fd deleted by an earlier callback of the same batch is not
 * called, and the idle hook runs every iteration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "loop.h"

static char order[16];
static int norder;

static void mark(ea_loop *l, void *arg)
{
    (void)l;
    order[norder++] = *(const char *)arg;
}

static void stop_it(ea_loop *l, void *arg)
{
    (void)arg;
    ea_loop_stop(l);
}

static void test_timers_in_deadline_order_and_cancel(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    norder = 0;
    static const char a = 'a', b = 'b', c = 'c';
    assert_true(ea_loop_timer(l, 30, mark, (void *)&c) > 0);
    assert_true(ea_loop_timer(l, 10, mark, (void *)&a) > 0);
    int id = ea_loop_timer(l, 20, mark, (void *)&b);
    ea_loop_timer(l, 60, stop_it, NULL);
    ea_loop_timer_cancel(l, id);
    uint64_t t0 = ea_loop_now_ms(l);
    assert_int_equal(ea_loop_run(l), 0);
    assert_true(ea_loop_now_ms(l) - t0 >= 60);
    assert_int_equal(norder, 2);
    assert_memory_equal(order, "ac", 2);
    ea_loop_free(l);
}

typedef struct pair {
    int rfd[2], wfd[2];
    int calls[2];
    int deleted_other;
} pair;

static pair P;

static void on_read(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    int which = (int)(intptr_t)arg;
    P.calls[which]++;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf);
    (void)n;
    if (!P.deleted_other) { /* the first one called removes the other, which is ready too */
        P.deleted_other = 1;
        int other = P.rfd[1 - which];
        ea_loop_del(l, other);
    }
    ea_loop_timer(l, 0, stop_it, NULL);
}

static void test_due_together_fire_earliest_first(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    norder = 0;
    static const char x = 'x', y = 'y', z = 'z';
    ea_loop_timer(l, 3, mark, (void *)&z); /* slot 0, latest */
    ea_loop_timer(l, 1, mark, (void *)&x);
    ea_loop_timer(l, 2, mark, (void *)&y);
    usleep(20000); /* all three are due when the loop first looks */
    ea_loop_timer(l, 0, stop_it, NULL);
    ea_loop_run(l);
    assert_int_equal(norder, 3);
    assert_memory_equal(order, "xyz", 3);
    ea_loop_free(l);
}

static void test_deleted_fd_not_called_later_in_batch(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    memset(&P, 0, sizeof P);
    int p0[2], p1[2];
    assert_int_equal(pipe(p0), 0);
    assert_int_equal(pipe(p1), 0);
    P.rfd[0] = p0[0];
    P.rfd[1] = p1[0];
    assert_int_equal(ea_loop_add(l, p0[0], EPOLLIN, on_read, (void *)(intptr_t)0), 0);
    assert_int_equal(ea_loop_add(l, p1[0], EPOLLIN, on_read, (void *)(intptr_t)1), 0);
    assert_int_equal(write(p0[1], "x", 1), 1);
    assert_int_equal(write(p1[1], "y", 1), 1);
    ea_loop_run(l);
    assert_int_equal(P.calls[0] + P.calls[1], 1); /* both were ready; only one ran */
    ea_loop_del(l, p0[0]);
    ea_loop_del(l, p1[0]);
    close(p0[0]);
    close(p0[1]);
    close(p1[0]);
    close(p1[1]);
    ea_loop_free(l);
}

static int idle_calls;

static void on_idle(ea_loop *l, void *arg)
{
    (void)arg;
    if (++idle_calls == 3)
        ea_loop_stop(l);
}

static void test_idle_hook_every_iteration(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    idle_calls = 0;
    ea_loop_set_idle(l, on_idle, NULL);
    for (int i = 0; i < 5; i++)
        ea_loop_timer(l, (uint64_t)i * 5, mark, (void *)"z");
    norder = 0;
    ea_loop_run(l);
    assert_int_equal(idle_calls, 3);
    assert_true(ea_wall_ms() > 1600000000000ull);
    ea_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_in_deadline_order_and_cancel),
        cmocka_unit_test(test_due_together_fire_earliest_first),
        cmocka_unit_test(test_deleted_fd_not_called_later_in_batch),
        cmocka_unit_test(test_idle_hook_every_iteration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
