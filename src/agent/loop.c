/*
 * loop.c: single-threaded epoll loop with one-shot timers and an idle hook.
 *
 * Design: fd handlers live in a table indexed by fd; each registration gets a generation number
 * that travels in epoll_event.data, so an event for an fd deleted (or deleted and re-added) earlier
 * in the same batch is recognised as stale and skipped. Timers are kept in a small unsorted array
 * (the agent has a handful: batch fsync, window flush, connection sweep, output backoff) and the
 * earliest deadline bounds epoll_wait. Nothing here allocates per event.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct fd_slot {
    ea_io_cb cb;
    void *arg;
    uint32_t gen; /* 0 = free */
} fd_slot;

typedef struct timer_slot {
    int id; /* 0 = free */
    uint64_t due_ms;
    ea_timer_cb cb;
    void *arg;
} timer_slot;

struct ea_loop {
    int epfd;
    int stop;
    fd_slot *fds;
    int nfds;
    uint32_t next_gen;
    timer_slot *timers;
    int ntimers;
    int next_timer_id;
    ea_idle_cb idle;
    void *idle_arg;
};

uint64_t ea_loop_now_ms(ea_loop *l)
{
    (void)l;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ea_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

ea_loop *ea_loop_new(void)
{
    ea_loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    l->next_gen = 1;
    l->next_timer_id = 1;
    return l;
}

void ea_loop_free(ea_loop *l)
{
    if (!l)
        return;
    close(l->epfd);
    free(l->fds);
    free(l->timers);
    free(l);
}

static int grow_fd_table(ea_loop *l, int fd)
{
    if (fd < l->nfds)
        return 0;
    int n = l->nfds ? l->nfds : 64;
    while (n <= fd)
        n *= 2;
    fd_slot *t = realloc(l->fds, (size_t)n * sizeof *t);
    if (!t)
        return -1;
    memset(t + l->nfds, 0, (size_t)(n - l->nfds) * sizeof *t);
    l->fds = t;
    l->nfds = n;
    return 0;
}

int ea_loop_add(ea_loop *l, int fd, uint32_t events, ea_io_cb cb, void *arg)
{
    if (fd < 0 || grow_fd_table(l, fd) < 0)
        return -1;
    if (l->next_gen == 0) /* wrapped around: generation 0 marks a free slot */
        l->next_gen = 1;
    uint32_t gen = l->next_gen++;
    struct epoll_event ev = {.events = events, .data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -1;
    l->fds[fd] = (fd_slot){.cb = cb, .arg = arg, .gen = gen};
    return 0;
}

int ea_loop_mod(ea_loop *l, int fd, uint32_t events)
{
    if (fd < 0 || fd >= l->nfds || l->fds[fd].gen == 0)
        return -1;
    struct epoll_event ev = {.events = events, .data.u64 = ((uint64_t)l->fds[fd].gen << 32) | (uint32_t)fd};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void ea_loop_del(ea_loop *l, int fd)
{
    if (fd < 0 || fd >= l->nfds || l->fds[fd].gen == 0)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->fds[fd] = (fd_slot){0};
}

int ea_loop_timer(ea_loop *l, uint64_t delay_ms, ea_timer_cb cb, void *arg)
{
    int slot = -1;
    for (int i = 0; i < l->ntimers; i++)
        if (l->timers[i].id == 0) {
            slot = i;
            break;
        }
    if (slot < 0) {
        timer_slot *t = realloc(l->timers, (size_t)(l->ntimers + 8) * sizeof *t);
        if (!t)
            return -1;
        memset(t + l->ntimers, 0, 8 * sizeof *t);
        l->timers = t;
        slot = l->ntimers;
        l->ntimers += 8;
    }
    int id = l->next_timer_id++;
    if (l->next_timer_id <= 0)
        l->next_timer_id = 1;
    l->timers[slot] = (timer_slot){.id = id, .due_ms = ea_loop_now_ms(l) + delay_ms, .cb = cb, .arg = arg};
    return id;
}

void ea_loop_timer_cancel(ea_loop *l, int id)
{
    if (id <= 0)
        return;
    for (int i = 0; i < l->ntimers; i++)
        if (l->timers[i].id == id) {
            l->timers[i].id = 0;
            return;
        }
}

void ea_loop_set_idle(ea_loop *l, ea_idle_cb cb, void *arg)
{
    l->idle = cb;
    l->idle_arg = arg;
}

void ea_loop_stop(ea_loop *l) { l->stop = 1; }

/* Milliseconds until the earliest timer, -1 when none. */
static int next_timeout_ms(ea_loop *l)
{
    uint64_t now = ea_loop_now_ms(l), best = UINT64_MAX;
    for (int i = 0; i < l->ntimers; i++)
        if (l->timers[i].id && l->timers[i].due_ms < best)
            best = l->timers[i].due_ms;
    if (best == UINT64_MAX)
        return -1;
    if (best <= now)
        return 0;
    uint64_t d = best - now;
    return d > 60000 ? 60000 : (int)d;
}

/* Fires every timer due now, earliest deadline first; timers added by callbacks wait for the next
 * round (their id is above `limit`). */
static void run_due_timers(ea_loop *l)
{
    uint64_t now = ea_loop_now_ms(l);
    int limit = l->next_timer_id;
    for (;;) {
        int best = -1;
        for (int i = 0; i < l->ntimers; i++) {
            timer_slot *t = &l->timers[i];
            if (t->id && t->id < limit && t->due_ms <= now && (best < 0 || t->due_ms < l->timers[best].due_ms))
                best = i;
        }
        if (best < 0)
            return;
        timer_slot t = l->timers[best];
        l->timers[best].id = 0;
        t.cb(l, t.arg);
    }
}

int ea_loop_run(ea_loop *l)
{
    struct epoll_event evs[64];
    l->stop = 0;
    while (!l->stop) {
        int timeout = next_timeout_ms(l);
        if (l->idle && timeout != 0)
            timeout = timeout < 0 || timeout > 1000 ? 1000 : timeout;
        int n = epoll_wait(l->epfd, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR)
                n = 0;
            else
                return -1;
        }
        for (int i = 0; i < n && !l->stop; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
            if (fd >= l->nfds || l->fds[fd].gen != gen)
                continue; /* deleted earlier in this batch */
            fd_slot s = l->fds[fd];
            s.cb(l, fd, evs[i].events, s.arg);
        }
        run_due_timers(l);
        if (l->idle && !l->stop)
            l->idle(l, l->idle_arg);
    }
    return 0;
}
