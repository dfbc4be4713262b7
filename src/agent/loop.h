/*
 * loop.h: the agent's single-threaded epoll event loop. Every socket, timer and signal of the agent
 * is served from here; callbacks run one at a time, so no locking exists anywhere in the agent.
 *
 * Invariants: a callback may add, modify or delete any fd (including its own) and may add or cancel
 * timers; a deleted fd's callback is not called again, even later in the same epoll batch. Timers
 * are one-shot and fire in deadline order; ids are never reused while the loop lives.
 */
#ifndef EA_LOOP_H
#define EA_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

typedef struct ea_loop ea_loop;
typedef void (*ea_io_cb)(ea_loop *l, int fd, uint32_t events /* EPOLLIN|EPOLLOUT|EPOLLERR|EPOLLHUP */, void *arg);
typedef void (*ea_timer_cb)(ea_loop *l, void *arg);

int ea_loop_add(ea_loop *l, int fd, uint32_t events, ea_io_cb cb, void *arg);
int ea_loop_mod(ea_loop *l, int fd, uint32_t events);
void ea_loop_del(ea_loop *l, int fd);
uint64_t ea_loop_now_ms(ea_loop *l); /* monotonic */
int ea_loop_timer(ea_loop *l, uint64_t delay_ms, ea_timer_cb cb, void *arg); /* one-shot; returns id > 0 */
void ea_loop_timer_cancel(ea_loop *l, int id);
ea_loop *ea_loop_new(void);
int ea_loop_run(ea_loop *l);
void ea_loop_stop(ea_loop *l);
void ea_loop_free(ea_loop *l);

/* Additions (agent-core): a hook called once per loop iteration, after I/O and timers (used by the
 * core to offer spooled records to the output and flush batched fsyncs). NULL clears it. */
typedef void (*ea_idle_cb)(ea_loop *l, void *arg);
void ea_loop_set_idle(ea_loop *l, ea_idle_cb cb, void *arg);
/* Wall-clock milliseconds since the epoch (record receive times). */
uint64_t ea_wall_ms(void);

#endif
