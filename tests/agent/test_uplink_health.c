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

#include "test_mqtt_broker.h"
#include "test_agent_child.h"

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
        assert_int_equal(test_write_file(s->py, server_py), 0);
        s->port = test_free_port();
    }
    s->pid = test_python_server_start(s->py, s->port, s->log);
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

/* In the agent child: a spool in ap->dir, the uplink at uplink_url (arg), quick retries. */
static int configure_agent(ea_config *c, const test_agent *ap, const void *uplink_url, char *err,
                           size_t errlen)
{
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", ap->port);
    if (ea_config_set(c, "spool.dir", ap->dir, err, errlen) < 0 ||
        ea_config_set(c, "agent.port", listen, err, errlen) < 0 ||
        ea_config_set(c, "uplink.url", uplink_url, err, errlen) < 0 ||
        ea_config_set(c, "uplink.backoff_min_ms", "50", err, errlen) < 0 ||
        ea_config_set(c, "uplink.backoff_max_ms", "200", err, errlen) < 0 ||
        ea_config_set(c, "agent.remote_config", "false", err, errlen) < 0)
        return -1;
    return 0;
}

static void agent_start(test_agent *ap, const char *uplink_url)
{
    test_agent_init(ap, "/tmp/ea-uphealth-spool-XXXXXX");
    test_agent_run(ap, configure_agent, uplink_url);
}

static void get_health(const test_agent *ap, char *out, size_t outlen)
{
    test_agent_get(ap, "/health", out, outlen);
}

/* Polls /health until it contains `want` (deadline 15 s: a failure, not a measurement). */
static int health_becomes(const test_agent *ap, const char *want, char *out, size_t outlen)
{
    for (int i = 0; i < 750; i++) {
        get_health(ap, out, outlen);
        if (strstr(out, want)) return 1;
        test_sleep_ms(20);
    }
    return 0;
}

/* The value line of a Prometheus metric in /metrics, as an integer. */
static long metric(const test_agent *ap, const char *name)
{
    static char m[65536];
    test_agent_get(ap, "/metrics", m, sizeof m);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(m, key);
    if (!p) fail_msg("metric %s missing", name);
    return strtol(p + strlen(key), NULL, 10);
}

static void post_record(const test_agent *ap, int id)
{
    char rec[128], body[512];
    snprintf(rec, sizeof rec,
             "{\"measurement\":\"env\",\"tags\":{\"id\":\"r%d\"},\"fields\":{\"t\":%d}}", id, id);
    int st = test_agent_http(ap, "POST", "/v1/ingest", rec, body, sizeof body);
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
    test_agent ap;
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

    test_agent_stop(&ap);
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
    test_agent ap;
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
    test_agent_stop(&ap);
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
