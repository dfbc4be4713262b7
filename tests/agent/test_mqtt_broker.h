/*
 * test_mqtt_broker.h: helpers shared by the uplink tests: a REAL mosquitto broker started on
 * 127.0.0.1:<free port> from a generated config (plain or TLS), and "run the event loop until a
 * condition holds or a deadline passes"; also a python3 test server (test_python_server_start).
 * Header-only (static functions) because each test file is its own executable.
 */
#ifndef TEST_MQTT_BROKER_H
#define TEST_MQTT_BROKER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

typedef struct test_broker {
    char dir[64];
    char conf[128];
    int port;
    pid_t pid;
} test_broker;

static __attribute__((unused)) int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &l) < 0)
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

static __attribute__((unused)) int test_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static __attribute__((unused)) void test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts mosquitto with the listener lines in `extra` (may be NULL) appended to the base config. */
static __attribute__((unused)) int test_broker_start(test_broker *b, const char *extra)
{
    if (b->dir[0] == '\0') {
        snprintf(b->dir, sizeof b->dir, "/tmp/ea-broker-XXXXXX");
        if (!mkdtemp(b->dir)) return -1;
        b->port = test_free_port();
    }
    snprintf(b->conf, sizeof b->conf, "%s/mosquitto.conf", b->dir);
    FILE *f = fopen(b->conf, "w");
    if (!f) return -1;
    fprintf(f,
            "user root\npersistence false\nlog_dest stderr\nlog_type error\nlog_type "
            "warning\nlog_type notice\n"
            "max_queued_messages 100000\nlistener %d 127.0.0.1\nallow_anonymous true\n%s",
            b->port, extra ? extra : "");
    fclose(f);
    char log[128];
    snprintf(log, sizeof log, "%s/mosquitto.log", b->dir);
    b->pid = fork();
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a failed test */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("mosquitto", "mosquitto", "-c", b->conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (test_port_open(b->port)) return 0;
        int st;
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            b->pid = 0;
            return -1;
        }
        test_sleep_ms(10);
    }
    return -1;
}

static __attribute__((unused)) void test_broker_kill(test_broker *b, int sig)
{
    if (b->pid > 0) {
        kill(b->pid, sig);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
    }
}

static __attribute__((unused)) void test_broker_stop(test_broker *b)
{
    test_broker_kill(b, SIGTERM);
    if (b->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
        if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", b->dir);
        b->dir[0] = '\0';
    }
}

/* ------------------------------------------------------------------ a python3 server */

/* Writes text to path; -1 on failure. */
static __attribute__((unused)) int test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Forks `python3 script port log` (its stdout to /dev/null; killed if the test dies) and waits
 * up to 5 s for it to listen on 127.0.0.1:port. Returns its pid; the caller checks the port. */
static __attribute__((unused)) pid_t test_python_server_start(const char *script, int port,
                                                              const char *log)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        execl("/usr/bin/python3", "python3", script, portstr, log, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !test_port_open(port); i++)
        test_sleep_ms(10);
    return pid;
}

/* ------------------------------------------------------------------ run the loop until ... */

typedef int (*test_pred)(void *arg);

typedef struct test_waiter {
    test_pred pred;
    void *arg;
    int done, timed_out, tick_id, deadline_id;
} test_waiter;

static __attribute__((unused)) void test_waiter_tick(ea_loop *l, void *arg)
{
    test_waiter *w = arg;
    w->tick_id = 0;
    if (w->pred && w->pred(w->arg)) {
        w->done = 1;
        ea_loop_stop(l);
        return;
    }
    w->tick_id = ea_loop_timer(l, 5, test_waiter_tick, w);
}

static __attribute__((unused)) void test_waiter_deadline(ea_loop *l, void *arg)
{
    test_waiter *w = arg;
    w->deadline_id = 0;
    w->timed_out = 1;
    ea_loop_stop(l);
}

/* Runs the loop until pred(arg) is true (returns 1) or timeout_ms passes (returns 0). pred NULL:
 * just run for timeout_ms. */
static __attribute__((unused)) int test_run_until(ea_loop *l, test_pred pred, void *arg,
                                                  uint64_t timeout_ms)
{
    test_waiter w = {pred, arg, 0, 0, 0, 0};
    w.tick_id = ea_loop_timer(l, 1, test_waiter_tick, &w);
    w.deadline_id = ea_loop_timer(l, timeout_ms, test_waiter_deadline, &w);
    ea_loop_run(l);
    if (w.tick_id) ea_loop_timer_cancel(l, w.tick_id);
    if (w.deadline_id) ea_loop_timer_cancel(l, w.deadline_id);
    return w.done;
}

#endif
