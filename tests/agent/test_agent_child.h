/*
 * test_agent_child.h: the agent core (spool, ingest server, inputs, output, loop, exactly as
 * edgeagent wires them) run in a forked child of the test, and one blocking HTTP/1.1 exchange
 * with it (/health, /metrics, /v1/ingest). Header-only (static functions) because each test file
 * is its own executable; include it after test_mqtt_broker.h and cmocka.h.
 *
 *   test_agent ap;
 *   test_agent_init(&ap, "/tmp/ea-x-XXXXXX");   a fresh directory and a free HTTP port
 *   test_agent_run(&ap, configure, arg);        configure() fills the config in the child
 *   test_agent_get(&ap, "/health", body, sizeof body);
 *   test_agent_stop(&ap);                       SIGTERM: must exit 0; the directory is removed
 */
#ifndef TEST_AGENT_CHILD_H
#define TEST_AGENT_CHILD_H

#include <sys/time.h>

#include "agent.h"
#include "config/config.h"
#include "test_mqtt_broker.h"

typedef struct test_agent {
    char dir[64]; /* made by test_agent_init, removed by test_agent_stop */
    int port;     /* the agent's HTTP port on 127.0.0.1 */
    pid_t pid;
} test_agent;

/* Called in the child on a config with the defaults applied: sets what the test wants (the
 * listen port is ap->port); returns < 0 with a message in err on failure. */
typedef int (*test_agent_config_fn)(ea_config *c, const test_agent *ap, const void *arg, char *err,
                                    size_t errlen);

static __attribute__((unused)) void test_agent_init(test_agent *ap, const char *dir_template)
{
    snprintf(ap->dir, sizeof ap->dir, "%s", dir_template);
    assert_non_null(mkdtemp(ap->dir));
    ap->port = test_free_port();
    ap->pid = 0;
}

/* Forks the agent (configured by configure(c, ap, arg, ...), then validated) and waits until it
 * listens on ap->port (5 s at most). */
static __attribute__((unused)) void test_agent_run(test_agent *ap, test_agent_config_fn configure,
                                                   const void *arg)
{
    ap->pid = fork();
    assert_true(ap->pid >= 0);
    if (ap->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char err[400];
        ea_config c;
        ea_config_defaults(&c);
        if (configure(&c, ap, arg, err, sizeof err) < 0 ||
            ea_config_validate(&c, err, sizeof err) < 0) {
            fprintf(stderr, "agent config: %s\n", err);
            _exit(2);
        }
        ea_agent *a = ea_agent_new(&c, err, sizeof err);
        if (!a) {
            fprintf(stderr, "agent: %s\n", err);
            _exit(2);
        }
        int rc = ea_agent_run(a);
        ea_agent_free(a);
        _exit(rc == 0 ? 0 : 1);
    }
    for (int i = 0; i < 500 && !test_port_open(ap->port); i++)
        test_sleep_ms(10);
    assert_true(test_port_open(ap->port));
}

/* SIGTERM: the agent drains for at most 5 s, then must exit 0. Removes ap->dir. */
static __attribute__((unused)) void test_agent_stop(test_agent *ap)
{
    int st = 0;
    kill(ap->pid, SIGTERM);
    waitpid(ap->pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ap->dir);
    assert_int_equal(system(cmd), 0);
}

/* One blocking HTTP/1.1 exchange with the agent; returns the status, the body in body. */
static __attribute__((unused)) int test_agent_http(const test_agent *ap, const char *method,
                                                   const char *path, const char *json, char *body,
                                                   size_t bodylen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)ap->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0}; /* a stuck agent fails the test instead of hanging it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        fail_msg("connect: %s", strerror(errno));
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, json ? strlen(json) : 0, json ? json : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    static char resp[65536];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, resp + len, sizeof resp - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
        resp[len] = '\0';
        char *end = strstr(resp, "\r\n\r\n");
        char *cl = strstr(resp, "Content-Length: ");
        if (end && cl && cl < end && len >= (size_t)(end + 4 - resp) + strtoul(cl + 16, NULL, 10))
            break;
    }
    close(fd);
    resp[len] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1) fail_msg("no HTTP answer: '%s'", resp);
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, bodylen, "%s", b ? b + 4 : "");
    return status;
}

/* GET path: must answer 200; the body in out. */
static __attribute__((unused)) void test_agent_get(const test_agent *ap, const char *path,
                                                   char *out, size_t outlen)
{
    assert_int_equal(test_agent_http(ap, "GET", path, NULL, out, outlen), 200);
}

#endif
