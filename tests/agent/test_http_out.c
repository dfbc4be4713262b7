/*
 * test_http_out.c: the HTTP batch output against a real HTTP server (python3's http.server, started
 * by the test) that gunzips and parses every body, checks the bearer token, and answers 200, 500
 * for the first K requests, or 200 after a delay, depending on the request path. Proves: bodies are
 * gzip'd JSON arrays, batches respect batch_max, records are acked only after a 2xx, failed batches
 * are retried with backoff, nothing is offered while a batch is pending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sys/prctl.h>

#include "outputs/output.h"
#include "test_mqtt_broker.h"

static const char server_py[] =
    "import gzip, json, sys, time, threading\n"
    "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n"
    "port, logpath = int(sys.argv[1]), sys.argv[2]\n"
    "lock = threading.Lock(); fails = {}\n"
    "class H(BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def reply(self, code, text):\n"
    "        b = text.encode(); self.send_response(code)\n"
    "        self.send_header('Content-Length', str(len(b))); self.end_headers(); "
    "self.wfile.write(b)\n"
    "    def do_POST(self):\n"
    "        body = self.rfile.read(int(self.headers['Content-Length']))\n"
    "        enc = self.headers.get('Content-Encoding', '')\n"
    "        if self.headers.get('Authorization') != 'Bearer s3cret': return self.reply(401, "
    "'token')\n"
    "        if enc == 'gzip': body = gzip.decompress(body)\n"
    "        recs = json.loads(body)\n"
    "        if not isinstance(recs, list): return self.reply(400, 'not an array')\n"
    "        path = self.path\n"
    "        with lock:\n"
    "            if path.startswith('/flaky/'):\n"
    "                k = int(path.split('/')[2]); n = fails.get(path, 0)\n"
    "                if n < k:\n"
    "                    fails[path] = n + 1; return self.reply(500, 'flaky')\n"
    "            if path == '/fail': return self.reply(500, 'down')\n"
    "        if path == '/slow': time.sleep(1.0)\n"
    "        with lock, open(logpath, 'a') as f:\n"
    "            f.write(json.dumps({'enc': enc, 'n': len(recs), 'ids': [r['id'] for r in recs]}) "
    "+ '\\n')\n"
    "        self.reply(200, 'ok')\n"
    "ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()\n";

typedef struct server {
    char dir[64], log[128];
    int port;
    pid_t pid;
} server;

static void server_start(server *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/ea-http-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    char py[128];
    snprintf(py, sizeof py, "%s/server.py", s->dir);
    snprintf(s->log, sizeof s->log, "%s/received.jsonl", s->dir);
    assert_int_equal(test_write_file(py, server_py), 0);
    s->port = test_free_port();
    s->pid = test_python_server_start(py, s->port, s->log);
    assert_true(test_port_open(s->port));
}

static void server_stop(server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    assert_int_equal(system(cmd), 0);
}

/* Sums what the server logged: batches, records, and whether every batch was gzip'd. */
static void server_received(server *s, int *batches, int *records, int *all_gzip, int *max_batch)
{
    *batches = *records = *max_batch = 0;
    *all_gzip = 1;
    FILE *f = fopen(s->log, "r");
    if (!f) return;
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        int n = 0;
        char *p = strstr(line, "\"n\": ");
        if (p) n = atoi(p + 5);
        (*batches)++;
        *records += n;
        if (n > *max_batch) *max_batch = n;
        if (!strstr(line, "\"enc\": \"gzip\"")) *all_gzip = 0;
    }
    fclose(f);
}

#define N_RECS 600

typedef struct driver {
    const ea_output_ops *ops;
    ea_output *out;
    ea_record_ref recs[N_RECS];
    char bodies[N_RECS][48];
    size_t next, total;
    unsigned char acked_map[N_RECS];
    size_t acked, ups, downs;
    int offers_refused_while_pending;
} driver;

static void drv_acked(void *arg, uint64_t seq)
{
    driver *d = arg;
    if (seq < N_RECS && !d->acked_map[seq]) {
        d->acked_map[seq] = 1;
        d->acked++;
    }
}

static void drv_state(void *arg, int up, const char *why)
{
    (void)why;
    driver *d = arg;
    if (up)
        d->ups++;
    else
        d->downs++;
}

static void drv_idle(ea_loop *l, void *arg)
{
    (void)l;
    driver *d = arg;
    if (d->next < d->total) {
        size_t taken = d->ops->offer(d->out, d->recs + d->next, d->total - d->next);
        if (taken == 0 && d->next > 0) d->offers_refused_while_pending++;
        d->next += taken;
    }
}

static int all_acked(void *arg)
{
    driver *d = arg;
    return d->acked == d->total;
}

static driver *driver_new(ea_loop *l, int port, const char *path, size_t total, int gzip)
{
    driver *d = calloc(1, sizeof *d);
    d->ops = &ea_output_http;
    d->total = total;
    for (size_t i = 0; i < total; i++) {
        int n = snprintf(d->bodies[i], sizeof d->bodies[i], "{\"id\":%zu,\"temp\":21.5}", i);
        d->recs[i] = (ea_record_ref){i, d->bodies[i], (size_t)n};
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    ea_output_config cfg = {.url = url,
                            .bearer_token = "s3cret",
                            .batch_max = 256,
                            .gzip = gzip,
                            .backoff_min_ms = 50,
                            .backoff_max_ms = 200};
    ea_output_events ev = {.acked = drv_acked, .state = drv_state, .arg = d};
    char err[256];
    d->out = ea_output_http.create(&cfg, l, &ev, err, sizeof err);
    if (!d->out) fail_msg("create: %s", err);
    ea_loop_set_idle(l, drv_idle, d);
    return d;
}

static void driver_free(ea_loop *l, driver *d)
{
    ea_loop_set_idle(l, NULL, NULL);
    d->ops->destroy(d->out);
    free(d);
}

static void test_gzip_batches_acked_on_200(void **state)
{
    (void)state;
    server s;
    server_start(&s);
    ea_loop *l = ea_loop_new();
    driver *d = driver_new(l, s.port, "/ingest", N_RECS, 1);
    assert_true(test_run_until(l, all_acked, d, 20000));
    int batches, records, all_gzip, max_batch;
    server_received(&s, &batches, &records, &all_gzip, &max_batch);
    assert_int_equal(records, N_RECS);
    assert_int_equal(batches, 3); /* 256 + 256 + 88 */
    assert_int_equal(max_batch, 256);
    assert_true(all_gzip);
    assert_true(d->ops->connected(d->out));
    uint64_t retries, reconnects;
    d->ops->stats(d->out, &retries, &reconnects);
    assert_int_equal(retries, 0);
    assert_int_equal(reconnects, 0); /* one keep-alive connection carried all three batches */
    driver_free(l, d);
    ea_loop_free(l);
    server_stop(&s);
}

static void test_plain_body_without_gzip(void **state)
{
    (void)state;
    server s;
    server_start(&s);
    ea_loop *l = ea_loop_new();
    driver *d = driver_new(l, s.port, "/plain", 10, 0);
    assert_true(test_run_until(l, all_acked, d, 10000));
    int batches, records, all_gzip, max_batch;
    server_received(&s, &batches, &records, &all_gzip, &max_batch);
    assert_int_equal(records, 10);
    assert_false(all_gzip);
    driver_free(l, d);
    ea_loop_free(l);
    server_stop(&s);
}

static void test_500_is_not_an_ack_and_is_retried(void **state)
{
    (void)state;
    server s;
    server_start(&s);
    ea_loop *l = ea_loop_new();
    driver *d = driver_new(l, s.port, "/fail", 10, 1);
    test_run_until(l, NULL, NULL, 1000);
    assert_int_equal(d->acked, 0);
    assert_int_equal(d->next, 10); /* one batch taken ... */
    uint64_t retries, reconnects;
    d->ops->stats(d->out, &retries, &reconnects);
    assert_true(retries >= 2); /* ... and re-sent after each 500 */
    assert_false(d->ops->connected(d->out));
    driver_free(l, d);

    /* fails 3 times, then accepts: acked only once the 2xx came, after exactly 3 retries */
    d = driver_new(l, s.port, "/flaky/3", 10, 1);
    assert_true(test_run_until(l, all_acked, d, 10000));
    d->ops->stats(d->out, &retries, &reconnects);
    assert_int_equal(retries, 3);
    assert_true(d->downs >= 3);
    assert_int_equal(d->ups, 1); /* back up once the held batch got its 2xx */
    int batches, records, all_gzip, max_batch;
    server_received(&s, &batches, &records, &all_gzip, &max_batch);
    assert_int_equal(records,
                     10); /* the failed attempts were not logged by the server as delivered */
    driver_free(l, d);
    ea_loop_free(l);
    server_stop(&s);
}

static void test_slow_server_still_acks(void **state)
{
    (void)state;
    server s;
    server_start(&s);
    ea_loop *l = ea_loop_new();
    driver *d = driver_new(l, s.port, "/slow", 300, 1);
    assert_true(test_run_until(l, all_acked, d, 20000));
    uint64_t retries, reconnects;
    d->ops->stats(d->out, &retries, &reconnects);
    assert_int_equal(retries, 0);
    driver_free(l, d);
    ea_loop_free(l);
    server_stop(&s);
}

static void test_refused_connection_retries_without_acks(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    int port = test_free_port(); /* nothing listens there */
    driver *d = driver_new(l, port, "/x", 5, 1);
    test_run_until(l, NULL, NULL, 600);
    uint64_t retries, reconnects;
    d->ops->stats(d->out, &retries, &reconnects);
    assert_true(retries >= 2);
    assert_int_equal(d->acked, 0);
    driver_free(l, d);
    ea_loop_free(l);
}

static void test_bad_urls_refused(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    char err[256];
    ea_output_config cfg = {.url = "mqtt://127.0.0.1:1/t"};
    assert_null(ea_output_http.create(&cfg, l, NULL, err, sizeof err));
    assert_non_null(strstr(err, "http://"));
    cfg.url = "http://:80/x";
    assert_null(ea_output_http.create(&cfg, l, NULL, err, sizeof err));
    assert_non_null(strstr(err, "host"));
    cfg.url = "http://h:99999/x";
    assert_null(ea_output_http.create(&cfg, l, NULL, err, sizeof err));
    assert_non_null(strstr(err, "port"));
    ea_loop_free(l);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_batches_acked_on_200),
        cmocka_unit_test(test_plain_body_without_gzip),
        cmocka_unit_test(test_500_is_not_an_ack_and_is_retried),
        cmocka_unit_test(test_slow_server_still_acks),
        cmocka_unit_test(test_refused_connection_retries_without_acks),
        cmocka_unit_test(test_bad_urls_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
