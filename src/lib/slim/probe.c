/*
 * Probe parsing and execution (see probe.h). The network work (netns entry, HTTP via libcurl,
 * readiness waits) is the sandbox's; this file decides what counts as passing and retries.
 */
#include "slim/probe.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char **es_split_command(const char *s)
{
    size_t cap = 8, n = 0;
    char **v = es_xcalloc(cap, sizeof *v);
    char *buf = es_xmalloc(strlen(s) + 1);
    while (*s) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        size_t o = 0;
        char q = 0;
        for (; *s && (q || (*s != ' ' && *s != '\t')); s++) {
            if (q && *s == q) q = 0;
            else if (!q && (*s == '\'' || *s == '"')) q = *s;
            else buf[o++] = *s;
        }
        buf[o] = 0;
        if (n + 2 > cap) v = es_xrealloc(v, (cap *= 2) * sizeof *v);
        v[n++] = es_xstrdup(buf);
        v[n] = NULL;
    }
    free(buf);
    return v;
}

void es_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

static int parse_port(const char *s, const char **end)
{
    char *e = NULL;
    long p = strtol(s, &e, 10);
    if (e == s || p <= 0 || p > 65535) return -1;
    *end = e;
    return (int)p;
}

static int parse_hostport(const char *rest, const char *spec, int *port, const char **after, es_error *err)
{
    const char *hosts[] = {"127.0.0.1:", "localhost:"};
    for (int i = 0; i < 2; i++) {
        size_t l = strlen(hosts[i]);
        if (!strncmp(rest, hosts[i], l)) {
            *port = parse_port(rest + l, after);
            if (*port > 0) return 0;
        }
    }
    es_err(err, ES_EUSAGE, "--probe %s: expected 127.0.0.1:PORT (the app's own loopback)", spec);
    return -1; /* explicit: *after is only set on success */
}

int es_probe_parse(const char *spec, es_probe *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    const char *after = NULL;
    if (!strncmp(spec, "http://", 7)) {
        out->kind = ES_PROBE_HTTP;
        if (parse_hostport(spec + 7, spec, &out->port, &after, err) < 0) return -1;
        const char *hash = strchr(after, '#');
        size_t plen = hash ? (size_t)(hash - after) : strlen(after);
        if (plen && after[0] != '/') return es_err(err, ES_EUSAGE, "--probe %s: bad path", spec);
        out->path = plen ? strndup(after, plen) : es_xstrdup("/");
        if (hash) {
            char *e = NULL;
            out->expect_status = strtol(hash + 1, &e, 10);
            if (*e || out->expect_status < 100 || out->expect_status > 599) {
                es_probe_free(out);
                return es_err(err, ES_EUSAGE, "--probe %s: #STATUS must be an HTTP status (100-599)", spec);
            }
        }
    } else if (!strncmp(spec, "tcp://", 6)) {
        out->kind = ES_PROBE_TCP;
        if (parse_hostport(spec + 6, spec, &out->port, &after, err) < 0) return -1;
        if (*after && strcmp(after, "/")) return es_err(err, ES_EUSAGE, "--probe %s: nothing may follow the port", spec);
    } else if (!strncmp(spec, "exec:", 5) || !strncmp(spec, "cmd:", 4)) {
        int is_exec = spec[0] == 'e';
        out->kind = is_exec ? ES_PROBE_EXEC : ES_PROBE_CMD;
        const char *cmd = spec + (is_exec ? 5 : 4);
        if (!*cmd) return es_err(err, ES_EUSAGE, "--probe %s: empty command", spec);
        if (is_exec) {
            out->argv = es_split_command(cmd);
            if (!out->argv[0]) { es_probe_free(out); return es_err(err, ES_EUSAGE, "--probe %s: empty command", spec); }
        } else {
            out->argv = es_xcalloc(4, sizeof *out->argv);
            out->argv[0] = es_xstrdup("/bin/sh");
            out->argv[1] = es_xstrdup("-c");
            out->argv[2] = es_xstrdup(cmd);
        }
    } else {
        return es_err(err, ES_EUSAGE, "--probe %s: expected http://, tcp://, exec: or cmd:", spec);
    }
    out->spec = es_xstrdup(spec);
    return 0;
}

void es_probe_auto(int port, es_probe *out)
{
    memset(out, 0, sizeof *out);
    out->kind = ES_PROBE_HTTP;
    out->port = port;
    out->path = es_xstrdup("/");
    out->expect_status = -1;
    out->is_auto = 1;
    out->spec = es_xasprintf("http://127.0.0.1:%d/ (auto, port %d is exposed)", port, port);
}

void es_probe_free(es_probe *p)
{
    free(p->spec);
    free(p->path);
    es_strv_free(p->argv);
    memset(p, 0, sizeof *p);
}

static int status_ok(const es_probe *p, long st)
{
    if (p->expect_status > 0) return st == p->expect_status;
    if (p->expect_status < 0) return st >= 100 && st < 500;
    return st >= 200 && st < 400;
}

static int run_http(es_probe *p, es_sandbox *sb, int timeout_ms, es_probe_result *r)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        es_error e = {0};
        long st = 0;
        int left = (int)(deadline - now_ms());
        if (left < 100) left = 100;
        int rc = es_sandbox_http_get(sb, p->port, p->path, left, &st, NULL, NULL, &e);
        if (rc == 0 && status_ok(p, st)) {
            r->passed = 1, r->status = st;
            snprintf(r->detail, sizeof r->detail, "HTTP %ld", st);
            return 0;
        }
        if (rc == 0) {
            r->status = st;
            snprintf(r->detail, sizeof r->detail, "HTTP %ld (expected %s)", st,
                     p->expect_status > 0 ? "the status after #" : p->expect_status < 0 ? "below 500" : "2xx or 3xx");
        } else {
            snprintf(r->detail, sizeof r->detail, "%s", e.msg);
        }
        if (now_ms() >= deadline || !es_sandbox_alive(sb)) return 0;
        usleep(200 * 1000);
    }
}

static int run_tcp(es_probe *p, es_sandbox *sb, int timeout_ms, es_probe_result *r)
{
    es_error e = {0};
    int fd = es_sandbox_connect_tcp(sb, p->port, timeout_ms, &e);
    if (fd >= 0) {
        close(fd);
        r->passed = 1;
        snprintf(r->detail, sizeof r->detail, "port %d accepts connections", p->port);
    } else {
        snprintf(r->detail, sizeof r->detail, "%s", e.msg);
    }
    return 0;
}

static int run_command(es_probe *p, es_sandbox *sb, int timeout_ms, es_probe_result *r, es_error *err)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        es_error e = {0};
        int status = -1;
        int left = (int)(deadline - now_ms());
        if (left < 100) left = 100;
        int rc;
        if (p->kind == ES_PROBE_EXEC) {
            int fd = p->log_path ? open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
            rc = es_sandbox_exec_io(sb, p->argv, -1, fd, fd, left, &status, &e);
            if (fd >= 0) close(fd);
        } else if (p->log_path) {
            /* The user's command may print while it waits for readiness: keep that off our output. */
            char *argv[] = {"/bin/sh", "-c", "exec >>\"$0\" 2>&1; eval \"$1\"", (char *)p->log_path, p->argv[2], NULL};
            rc = es_sandbox_host_cmd(sb, argv, left, &status, &e);
        } else {
            rc = es_sandbox_host_cmd(sb, p->argv, left, &status, &e);
        }
        if (rc < 0 && p->kind == ES_PROBE_CMD) { /* the host command itself cannot run */
            *err = e;
            return -1;
        }
        r->status = status;
        if (rc == 0 && status == 0) {
            r->passed = 1;
            snprintf(r->detail, sizeof r->detail, "exit 0");
            return 0;
        }
        if (rc < 0) snprintf(r->detail, sizeof r->detail, "%s", e.msg);
        else if (rc == 1) snprintf(r->detail, sizeof r->detail, "timed out");
        else snprintf(r->detail, sizeof r->detail, "exit %d", status);
        if (now_ms() >= deadline || !es_sandbox_alive(sb)) return 0;
        usleep(300 * 1000);
    }
}

int es_probe_run(es_probe *p, es_sandbox *sb, int timeout_ms, es_probe_result *r, es_error *err)
{
    memset(r, 0, sizeof *r);
    switch (p->kind) {
    case ES_PROBE_HTTP: return run_http(p, sb, timeout_ms, r);
    case ES_PROBE_TCP: return run_tcp(p, sb, timeout_ms, r);
    case ES_PROBE_EXEC:
    case ES_PROBE_CMD: return run_command(p, sb, timeout_ms, r, err);
    }
    return 0;
}
