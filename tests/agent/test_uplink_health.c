/*
 * test_uplink_health.c: what /health and /metrics say about the uplink, read over HTTP from a
 * running agent core (forked child: spool, ingest server, output, loop, exactly as edgeagent
 * wires them) that delivers to REAL servers started by the test:
 *   - HTTP uplink (python3 http.server): "connected" from start-up, before any record; false with
 *     the failure as last_error once the server is killed and a batch fails; true again once the
 *     held batch got its 2xx from the restarted server, and every record delivered.
 *   - MQTT uplink: false while the TCP connection is established but no CONNACK comes (a real
 *     mosquitto held with SIGSTOP), true once it is resumed and answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sys/time.h>

#include "agent.h"
#include "config/config.h"
#include "test_mqtt_broker.h"

static const char server_py[] =
    "import json, sys\n"
    "from http.server import BaseHTTPRequestHandler, HTTPServer\n"
    "port, logpath = int(sys.argv[1]), sys.argv[2]\n"
    "class H(BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def do_POST(self):\n"
    "        body = self.rfile.read(int(self.headers['Content-Length']))\n"
    "        if self.headers.get('Content-Encoding') == 'gzip':\n"
    "            import gzip; body = gzip.decompress(body)\n"
    "        with open(logpath, 'a') as f: f.write('%d\\n' % len(json.loads(body)))\n"
    "        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers()\n"
    "        self.wfile.write(b'ok')\n"
    "HTTPServer(('127.0.0.1', port), H).serve_forever()\n";

typedef struct http_server {
    char dir[64], py[128], log[128];
    int port;
    pid_t pid;
} http_server;

static void http_server_start(http_server *s)
{
    if (s->dir[0] == '\0') {
        snprintf(s->dir, sizeof s->dir, "/tmp/ea-uphealth-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->py, sizeof s->py, "%s/server.py", s->dir);
        snprintf(s->log, sizeof s->log, "%s/received.log", s->dir);
        FILE *f = fopen(s->py, "w");
        fputs(server_py, f);
        fclose(f);
        s->port = test_free_port();
    }
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    s->pid = fork();
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        execl("/usr/bin/python3", "python3", s->py, port, s->log, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !test_port_open(s->port); i++)
        test_sleep_ms(10);
    assert_true(test_port_open(s->port));
}

static void http_server_kill(http_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* Records the server logged as received (sum of batch sizes). */
static int http_server_records(const http_server *s)
{
    FILE *f = fopen(s->log, "r");
    if (!f) return 0;
    int total = 0, n;
    while (fscanf(f, "%d", &n) == 1)
        total += n;
    fclose(f);
    return total;
}

/* ------------------------------------------------------------------ the agent, in a child */

typedef struct agent_proc {
    char spool[64];
    int port;
    pid_t pid;
} agent_proc;

static void agent_start(agent_proc *ap, const char *uplink_url)
{
    snprintf(ap->spool, sizeof ap->spool, "/tmp/ea-uphealth-spool-XXXXXX");
    assert_non_null(mkdtemp(ap->spool));
    ap->port = test_free_port();
    ap->pid = fork();
    assert_true(ap->pid >= 0);
    if (ap->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char listen[32], err[400];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", ap->port);
        ea_config c;
        ea_config_defaults(&c);
        if (ea_config_set(&c, "spool.dir", ap->spool, err, sizeof err) < 0 ||
            ea_config_set(&c, "agent.port", listen, err, sizeof err) < 0 ||
            ea_config_set(&c, "uplink.url", uplink_url, err, sizeof err) < 0 ||
            ea_config_set(&c, "uplink.backoff_min_ms", "50", err, sizeof err) < 0 ||
            ea_config_set(&c, "uplink.backoff_max_ms", "200", err, sizeof err) < 0 ||
            ea_config_set(&c, "agent.remote_config", "false", err, sizeof err) < 0 ||
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

static void agent_stop(agent_proc *ap)
{
    int st = 0;
    kill(ap->pid, SIGTERM); /* drains for at most 5 s, then exits 0 */
    waitpid(ap->pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ap->spool);
    assert_int_equal(system(cmd), 0);
}

/* One blocking HTTP/1.1 exchange with the agent; returns the status, the body in body. */
static int agent_http(const agent_proc *ap, const char *method, const char *path, const char *json,
                      char *body, size_t bodylen)
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

static void get_health(const agent_proc *ap, char *out, size_t outlen)
{
    assert_int_equal(agent_http(ap, "GET", "/health", NULL, out, outlen), 200);
}

/* Polls /health until it contains `want` (deadline 15 s: a failure, not a measurement). */
static int health_becomes(const agent_proc *ap, const char *want, char *out, size_t outlen)
{
    for (int i = 0; i < 750; i++) {
        get_health(ap, out, outlen);
        if (strstr(out, want)) return 1;
        test_sleep_ms(20);
    }
    return 0;
}

/* The value line of a Prometheus metric in /metrics, as an integer. */
static long metric(const agent_proc *ap, const char *name)
{
    static char m[65536];
    assert_int_equal(agent_http(ap, "GET", "/metrics", NULL, m, sizeof m), 200);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(m, key);
    if (!p) fail_msg("metric %s missing", name);
    return strtol(p + strlen(key), NULL, 10);
}

static void post_record(const agent_proc *ap, int id)
{
    char rec[128], body[512];
    snprintf(rec, sizeof rec,
             "{\"measurement\":\"env\",\"tags\":{\"id\":\"r%d\"},\"fields\":{\"t\":%d}}", id, id);
    int st = agent_http(ap, "POST", "/v1/ingest", rec, body, sizeof body);
    if (st != 200) fail_msg("ingest: %d %s", st, body);
}

/* ------------------------------------------------------------------ tests */

static void test_http_uplink_state_in_health(void **state)
{
    (void)state;
    char h[8192];
    http_server srv = {0};
    http_server_start(&srv);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ingest", srv.port);
    agent_proc ap;
    agent_start(&ap, url);

    /* before any record: nothing was sent and nothing failed, so the uplink is up */
    get_health(&ap, h, sizeof h);
    if (!strstr(h, "\"uplink\":{\"connected\":true,")) fail_msg("at start: %s", h);
    if (!strstr(h, "\"last_error\":\"\"")) fail_msg("at start: %s", h);
    assert_int_equal(metric(&ap, "edgeagent_uplink_connected"), 1);

    post_record(&ap, 1);
    assert_true(health_becomes(&ap, "\"delivered\":1", h, sizeof h));
    if (!strstr(h, "\"uplink\":{\"connected\":true,")) fail_msg("after a delivery: %s", h);
    assert_int_equal(http_server_records(&srv), 1);

    /* the server dies: the next batch fails, the uplink is down with the reason */
    http_server_kill(&srv);
    post_record(&ap, 2);
    if (!health_becomes(&ap, "\"uplink\":{\"connected\":false,", h, sizeof h))
        fail_msg("never down: %s", h);
    char want[96];
    snprintf(want, sizeof want, "\"last_error\":\"connect 127.0.0.1:%d: ", srv.port);
    if (!strstr(h, want)) fail_msg("down without the reason: %s", h);
    assert_int_equal(metric(&ap, "edgeagent_uplink_connected"), 0);
    assert_true(metric(&ap, "edgeagent_uplink_retries_total") >= 1);
    assert_non_null(strstr(h, "\"delivered\":1"));

    /* back: the held batch gets its 2xx, the uplink is up again; last_error keeps the outage's
     * reason */
    http_server_start(&srv);
    assert_true(health_becomes(&ap, "\"delivered\":2", h, sizeof h));
    if (!strstr(h, "\"uplink\":{\"connected\":true,")) fail_msg("after recovery: %s", h);
    if (!strstr(h, want)) fail_msg("after recovery: %s", h);
    assert_int_equal(metric(&ap, "edgeagent_uplink_connected"), 1);
    assert_int_equal(http_server_records(&srv), 2);

    agent_stop(&ap);
    http_server_kill(&srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", srv.dir);
    assert_int_equal(system(cmd), 0);
}

/* 1 when /proc/net/tcp shows an established connection to 127.0.0.1:port (the agent's). */
static int established_to(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f) return 0;
    char line[256];
    unsigned rport, st;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, " %*d: %*x:%*x %*x:%x %x", &rport, &st) == 2 &&
                rport == (unsigned)port && st == 1;
    fclose(f);
    return found;
}

static void test_mqtt_uplink_connected_only_after_connack(void **state)
{
    (void)state;
    char h[8192];
    /* a real mosquitto, stopped: the kernel completes the TCP handshake, no CONNACK comes */
    test_broker b = {0};
    assert_int_equal(test_broker_start(&b, NULL), 0);
    kill(b.pid, SIGSTOP);
    char url[128];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d/edge/health", b.port);
    agent_proc ap;
    agent_start(&ap, url);
    for (int i = 0; i < 500 && !established_to(b.port); i++)
        test_sleep_ms(10);
    assert_true(established_to(b.port));

    get_health(&ap, h, sizeof h);
    if (!strstr(h, "\"uplink\":{\"connected\":false,")) fail_msg("MQTT before CONNACK: %s", h);
    assert_int_equal(metric(&ap, "edgeagent_uplink_connected"), 0);
    post_record(&ap, 1);
    get_health(&ap, h, sizeof h);
    if (!strstr(h, "\"uplink\":{\"connected\":false,")) fail_msg("MQTT before CONNACK: %s", h);

    /* the broker resumes and answers the CONNECT: connected, and the record goes out */
    kill(b.pid, SIGCONT);
    if (!health_becomes(&ap, "\"uplink\":{\"connected\":true,", h, sizeof h))
        fail_msg("MQTT never up: %s", h);
    assert_true(health_becomes(&ap, "\"delivered\":1", h, sizeof h));
    assert_int_equal(metric(&ap, "edgeagent_uplink_connected"), 1);
    agent_stop(&ap);
    test_broker_stop(&b);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_uplink_state_in_health),
        cmocka_unit_test(test_mqtt_uplink_connected_only_after_connack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
