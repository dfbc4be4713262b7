/*
 * The parts of slim that run containers (see slim_internal.h): the traced run of the original
 * while its probes pass, the settle wait, and the side-by-side verification of the original and
 * the slim image, with the paths a failing slim run looked for. Containers always run with the
 * app's output in a log in the work directory, never on our stdout.
 */
#include "slim/slim_internal.h"

/* ------------------------------------------------------------------ sandbox helpers */

static int start_box(slim_ctx *c, const char *root, const char *user, int trace, int trace_syscalls,
                     const char *log_name, es_sandbox **sb, es_error *err)
{
    es_sandbox_opts so;
    es_sandbox_opts_init(&so);
    so.rootfs = root;
    so.argv = c->run.argv;
    so.env = c->run.env;
    so.workdir = c->run.workdir;
    so.user = user;
    so.net = ES_NET_PRIVATE;
    so.trace = trace;
    so.trace_syscalls = trace_syscalls;
    char *log = es_xasprintf("%s/%s.log", c->work, log_name);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    free(log);
    so.stdin_fd = -1;
    so.stdout_fd = fd;
    so.stderr_fd = fd;
    int rc = es_sandbox_start(&so, sb, err);
    if (fd >= 0) close(fd);
    return rc;
}

static void stop_box(es_sandbox *sb)
{
    if (!sb) return;
    if (es_sandbox_alive(sb)) {
        int code;
        es_sandbox_signal(sb, SIGTERM);
        es_sandbox_wait(sb, STOP_GRACE_MS, &code, NULL);
    }
}

/* Last line of the app's log, for messages about apps that exited. */
static void log_tail(slim_ctx *c, const char *log_name, char *buf, size_t len)
{
    buf[0] = 0;
    char *log = es_xasprintf("%s/%s.log", c->work, log_name);
    FILE *f = fopen(log, "re");
    free(log);
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0]) snprintf(buf, len, "%s", line);
    }
    fclose(f);
}

static int app_exit_code(es_sandbox *sb)
{
    int code = -1;
    es_sandbox_wait(sb, 0, &code, NULL);
    return code;
}

/* ------------------------------------------------------------------ stage: probes */

int slim_make_probes(slim_ctx *c, es_error *err)
{
    if (c->o->n_probes) {
        c->probes = es_xcalloc(c->o->n_probes, sizeof *c->probes);
        for (size_t i = 0; i < c->o->n_probes; i++, c->n_probes++)
            if (es_probe_parse(c->o->probes[i], &c->probes[i], err) < 0) return -1;
    } else {
        json_t *ports = es_config_exposed_ports(c->img);
        const char *key;
        json_t *v;
        size_t n = json_is_object(ports) ? json_object_size(ports) : 0;
        c->probes = es_xcalloc(n ? n : 1, sizeof *c->probes);
        /* Sorted port order so runs are reproducible. */
        int *nums = es_xcalloc(n ? n : 1, sizeof *nums);
        size_t k = 0;
        if (n) json_object_foreach(ports, key, v) {
            int port = atoi(key);
            if (port > 0 && port < 65536 && (!strchr(key, '/') || strstr(key, "/tcp"))) nums[k++] = port;
        }
        for (size_t i = 0; i < k; i++)
            for (size_t j = i + 1; j < k; j++)
                if (nums[j] < nums[i]) { int t = nums[i]; nums[i] = nums[j]; nums[j] = t; }
        for (size_t i = 0; i < k; i++) es_probe_auto(nums[i], &c->probes[c->n_probes++]);
        free(nums);
    }
    c->duration_mode = c->n_probes == 0;
    for (size_t i = 0; i < c->n_probes; i++) c->probes[i].log_path = c->probe_log;
    c->outcomes = es_xcalloc(c->n_probes ? c->n_probes : 1, sizeof *c->outcomes);
    return 0;
}

/* An auto HTTP probe that gets no HTTP answer from a port that accepts TCP becomes a TCP probe. */
static void auto_fallback_tcp(es_probe *p, es_sandbox *sb, int timeout_ms, es_probe_result *r)
{
    es_probe tcp = {0};
    tcp.kind = ES_PROBE_TCP;
    tcp.port = p->port;
    es_probe_result tr;
    es_probe_run(&tcp, sb, timeout_ms, &tr, NULL);
    if (!tr.passed) return;
    free(p->path);
    p->path = NULL;
    free(p->spec);
    p->spec = es_xasprintf("tcp://127.0.0.1:%d (auto, port %d does not speak HTTP)", p->port, p->port);
    p->kind = ES_PROBE_TCP;
    *r = tr;
}

static int probe_original(slim_ctx *c, es_sandbox *sb, size_t i, es_probe_result *r, const char *log,
                          es_error *err)
{
    es_probe *p = &c->probes[i];
    if (es_probe_run(p, sb, c->o->probe_timeout_ms, r, err) < 0) return -1;
    if (!r->passed && p->is_auto && p->kind == ES_PROBE_HTTP && es_sandbox_alive(sb))
        auto_fallback_tcp(p, sb, 2000, r);
    if (r->passed) {
        if (p->is_auto && p->kind == ES_PROBE_HTTP) p->expect_status = r->status;
        return 0;
    }
    if (!es_sandbox_alive(sb)) {
        char tail[300];
        log_tail(c, log, tail, sizeof tail);
        return es_err(err, ES_ERUN, "%s: the app exited (code %d) before probe %s passed%s%s", c->o->src,
                      app_exit_code(sb), p->spec, tail[0] ? "; its last output: " : "", tail);
    }
    return es_err(err, ES_EPROBE, "%s: probe %s fails on the original image, so the probe is wrong: %s", c->o->src,
                  p->spec, r->detail);
}

/* ------------------------------------------------------------------ stage: traced run */

static void keep_traced_path(slim_ctx *c, const es_trace_path *tp)
{
    int rc = es_rootfs_keep(c->root, tp->path, c->ks, ES_KEEP_TRACED, NULL, NULL);
    if (rc != 0) return;
    /* Not in the image (written at run time): keep the deepest existing ancestor directory, so
     * the app can create it again (log files, pid files, caches). */
    char *p = es_xstrdup(tp->path);
    for (;;) {
        char *s = strrchr(p, '/');
        if (!s || s == p) break;
        *s = 0;
        char *res = NULL;
        int e = es_rootfs_resolve(c->root, p, 1, NULL, 0, &res, NULL);
        if (e == 1) {
            char *h = es_rootfs_host_path(c->root, res);
            struct stat st;
            if (stat(h, &st) == 0 && S_ISDIR(st.st_mode)) es_rootfs_keep(c->root, p, c->ks, ES_KEEP_TRACED, NULL, NULL);
            free(h);
            free(res);
            break;
        }
        free(res);
    }
    free(p);
}

static int collect_trace(slim_ctx *c, es_sandbox *sb, es_error *err)
{
    const es_trace_path *paths = NULL;
    size_t n = es_sandbox_trace_paths(sb, &paths);
    if (es_sandbox_trace_overflowed(sb))
        return es_err(err, ES_EFAIL, "%s: the file access tracer overflowed (events were lost); refusing to slim on an incomplete trace",
                      c->o->src);
    for (size_t i = 0; i < n; i++) keep_traced_path(c, &paths[i]);
    const char *const *names = NULL;
    size_t ns = es_sandbox_trace_syscalls(sb, &names);
    c->syscalls = es_xcalloc(ns + 1, sizeof *c->syscalls);
    for (size_t i = 0; i < ns; i++) c->syscalls[c->n_syscalls++] = es_xstrdup(names[i]);
    return 0;
}

static int duration_run(slim_ctx *c, es_sandbox *sb, int *exited, int *code, es_error *err)
{
    int rc = es_sandbox_wait(sb, c->o->duration_ms, code, err);
    if (rc < 0) return -1;
    *exited = rc == 0;
    return 0;
}

/* Probes such as exec: can pass before the app finished starting (nginx still reading its
 * config): before the traced run ends, wait until every exposed port accepts connections, then
 * give the app a moment, so start-up file accesses are in the trace. The probes have passed by
 * now, so the wait shares one short budget: an image may EXPOSE ports its app never opens (a
 * parent image's EXPOSE is inherited), and each must not cost a full probe timeout. */
static void settle(slim_ctx *c, es_sandbox *sb)
{
    json_t *ports = es_config_exposed_ports(c->img);
    const char *key;
    json_t *v;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int budget = c->o->probe_timeout_ms < SETTLE_PORTS_MS ? c->o->probe_timeout_ms : SETTLE_PORTS_MS;
    if (json_is_object(ports)) json_object_foreach(ports, key, v) {
        int port = atoi(key);
        if (port <= 0 || port > 65535 || (strchr(key, '/') && !strstr(key, "/tcp"))) continue;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        int left = budget - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0) break;
        es_error e = {0};
        int fd = es_sandbox_connect_tcp(sb, port, left, &e);
        if (fd >= 0) close(fd);
    }
    usleep(SETTLE_MS * 1000);
}

int slim_traced_run(slim_ctx *c, es_error *err)
{
    slim_stage(c, "trace");
    es_sandbox *sb = NULL;
    if (start_box(c, c->root, c->run.user, 1, c->o->seccomp_path != NULL, "trace", &sb, err) < 0) return -1;
    int rc = 0;
    if (c->duration_mode) {
        rc = duration_run(c, sb, &c->orig_exited, &c->orig_exit, err);
        if (rc == 0 && c->orig_exited && c->orig_exit != 0) {
            char tail[300];
            log_tail(c, "trace", tail, sizeof tail);
            rc = es_err(err, ES_ERUN, "%s: the app exited with code %d under tracing (no probe, no exposed port)%s%s",
                        c->o->src, c->orig_exit, tail[0] ? "; its last output: " : "", tail);
        }
    } else {
        for (size_t i = 0; i < c->n_probes && rc == 0; i++) rc = probe_original(c, sb, i, &c->outcomes[i].orig, "trace", err);
        if (rc == 0) settle(c, sb);
    }
    stop_box(sb);
    if (rc == 0) rc = collect_trace(c, sb, err);
    es_sandbox_destroy(sb);
    slim_stage_end(c, "trace");
    return rc;
}

/* ------------------------------------------------------------------ stage: verify */

/* Paths the failing slim run looked for that the original image has and the slim one lacks. */
static void collect_missing(slim_ctx *c, es_sandbox *sb)
{
    json_decref(c->missing_paths);
    c->missing_paths = json_array();
    const es_trace_path *paths = NULL;
    size_t n = es_sandbox_trace_paths(sb, &paths);
    for (size_t i = 0; i < n; i++) {
        if (!(paths[i].ops & ES_TR_MISSING)) continue;
        char *r1 = NULL, *r2 = NULL;
        int in_orig = es_rootfs_resolve(c->root, paths[i].path, 1, NULL, 0, &r1, NULL) == 1;
        int in_slim = es_rootfs_resolve(c->slim_root, paths[i].path, 1, NULL, 0, &r2, NULL) == 1;
        if (in_orig && !in_slim) json_array_append_new(c->missing_paths, json_string(paths[i].path));
        free(r1);
        free(r2);
    }
}

static char *missing_summary(slim_ctx *c)
{
    size_t n = json_array_size(c->missing_paths);
    if (!n) return es_xstrdup("the slim run looked for no file that the original has");
    size_t cap = 256 + n * 64, o = 0;
    char *s = es_xmalloc(cap);
    o += (size_t)snprintf(s, cap, "missing in the slim image: ");
    for (size_t i = 0; i < n && i < MAX_MISSING_LISTED; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s%s", i ? ", " : "", json_string_value(json_array_get(c->missing_paths, i)));
    if (n > MAX_MISSING_LISTED) snprintf(s + o, cap - o, " (and %zu more, see --report)", n - MAX_MISSING_LISTED);
    return s;
}

/* Runs every probe on both images side by side. Returns 0 all pass, 1 a slim failure (index in
 * *failed, slim trace's missing paths collected), -1 error (including a failure on the original). */
static int verify_once(slim_ctx *c, const char *slim_user, size_t *failed, es_error *err)
{
    es_sandbox *orig = NULL, *slim = NULL;
    int rc = start_box(c, c->root, c->run.user, 0, 0, "verify-original", &orig, err);
    if (rc == 0) {
        es_error serr = {0};
        if (start_box(c, c->slim_root, slim_user, 1, 0, "verify-slim", &slim, &serr) < 0) {
            /* The slim image cannot even start: that is a verification failure, not a setup one. */
            *failed = 0;
            if (c->n_probes) snprintf(c->outcomes[0].slim.detail, sizeof c->outcomes[0].slim.detail, "%s", serr.msg);
            stop_box(orig);
            es_sandbox_destroy(orig);
            json_decref(c->missing_paths);
            c->missing_paths = json_array();
            return 1;
        }
    }
    int result = rc < 0 ? -1 : 0;
    if (result == 0 && c->duration_mode) {
        int e1 = 0, c1 = 0, e2 = 0, c2 = 0;
        if (duration_run(c, orig, &e1, &c1, err) < 0 || duration_run(c, slim, &e2, &c2, err) < 0) result = -1;
        else if (e1 != e2 || (e1 && c1 != c2)) {
            *failed = 0;
            result = 1;
        }
    }
    for (size_t i = 0; result == 0 && i < c->n_probes; i++) {
        probe_outcome *po = &c->outcomes[i];
        if (es_probe_run(&c->probes[i], orig, c->o->probe_timeout_ms, &po->orig, err) < 0) { result = -1; break; }
        if (!po->orig.passed) {
            result = es_err(err, ES_EPROBE, "%s: probe %s passed under tracing but fails on a second run of the original (flaky probe?): %s",
                            c->o->src, c->probes[i].spec, po->orig.detail);
            break;
        }
        if (es_probe_run(&c->probes[i], slim, c->o->probe_timeout_ms, &po->slim, err) < 0) { result = -1; break; }
        if (!po->slim.passed) {
            *failed = i;
            result = 1;
        }
    }
    if (result == 0 && !c->duration_mode) settle(c, slim);
    if (result == 0 && !c->duration_mode && es_sandbox_alive(orig) && !es_sandbox_alive(slim)) {
        /* Every probe passed, but the slim app died while the original kept running. */
        *failed = c->n_probes ? c->n_probes - 1 : 0;
        if (c->n_probes)
            snprintf(c->outcomes[*failed].slim.detail, sizeof c->outcomes[*failed].slim.detail,
                     "the slim app exited (code %d) while the original kept running", app_exit_code(slim));
        result = 1;
    }
    stop_box(orig);
    stop_box(slim);
    if (result == 1) collect_missing(c, slim);
    es_sandbox_destroy(orig);
    es_sandbox_destroy(slim);
    return result;
}

static int verify_fail(slim_ctx *c, size_t failed, const char *user, es_error *err)
{
    char *miss = missing_summary(c);
    char tail[300];
    log_tail(c, "verify-slim", tail, sizeof tail);
    int rc;
    if (c->duration_mode)
        rc = es_err(err, ES_EVERIFY, "%s: the slim image (user %s) does not run like the original for %d ms (no probe); %s%s%s",
                    c->o->src, user ? user : "root", c->o->duration_ms, miss, tail[0] ? "; its last output: " : "", tail);
    else
        rc = es_err(err, ES_EVERIFY, "%s: probe %s passes on the original but fails on the slim image (user %s): %s; %s%s%s",
                    c->o->src, c->probes[failed].spec, user ? user : "root", c->outcomes[failed].slim.detail, miss,
                    tail[0] ? "; its last output: " : "", tail);
    free(miss);
    return rc;
}

int slim_verify(slim_ctx *c, int tried_nonroot, es_error *err)
{
    slim_stage(c, "verify");
    size_t failed = 0;
    const char *user = c->user_final;
    int rc = verify_once(c, user, &failed, err);
    if (rc == 1 && tried_nonroot) {
        const char *what = c->duration_mode ? "the run" : c->probes[failed].spec;
        snprintf(c->user_note, sizeof c->user_note,
                 "kept the original user %s: verification as nonroot (65532) failed on %s (%s)",
                 slim_is_root_user(c->run.user) ? "root" : c->run.user, what,
                 c->duration_mode ? "different exit" : c->outcomes[failed].slim.detail);
        free(c->user_final);
        c->user_final = c->run.user ? es_xstrdup(c->run.user) : NULL;
        user = c->user_final;
        rc = verify_once(c, user, &failed, err);
    }
    if (rc == 1) return verify_fail(c, failed, user, err);
    slim_stage_end(c, "verify");
    return rc;
}
