/*
 * The slim pipeline (see slim.h). One context struct carries the state between stages; each
 * stage is a function that either succeeds or fills err. Cleanup is in one place (ctx_free):
 * temp dirs (unpacked original, slim tree, layer blob) are removed on every path out, so a
 * failure leaves nothing behind, and the destination is only touched by es_image_write, which
 * is itself atomic.
 */
#include "slim/slim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layer/layer_writer.h"
#include "oci/image_writer.h"
#include "sandbox/sandbox.h"
#include "slim/closure.h"
#include "slim/keepset.h"
#include "slim/pkgdb.h"
#include "slim/probe.h"
#include "slim/rootfs_path.h"
#include "slim/sbom.h"
#include "slim/tree.h"

#define NONROOT_USER "65532:65532"
#ifndef ES_VERSION_STRING
#define ES_VERSION_STRING "0.1.0"
#endif
#define STOP_GRACE_MS 3000
#define SETTLE_MS 500
#define MAX_MISSING_LISTED 12

typedef struct probe_outcome {
    es_probe_result orig, slim;
} probe_outcome;

typedef struct slim_ctx {
    const es_slim_opts *o;
    es_image *img;
    char *root, *work, *slim_root, *blob_path;
    es_run_config run;
    es_closure *closure;
    es_keepset *ks;
    es_probe *probes;
    size_t n_probes;
    probe_outcome *outcomes;
    int duration_mode, orig_exited, orig_exit;
    es_pkgdb db;
    char **syscalls;
    size_t n_syscalls;
    es_tree_stats before, after;
    int64_t before_compressed, stripped;
    char *user_final;
    char user_note[1024];
    char created[64];
    int64_t epoch;
    json_t *missing_paths;
    long long t0, t_stage;
    json_t *timings;
    char *probe_log;
} slim_ctx;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stage(slim_ctx *c, const char *name)
{
    c->t_stage = now_ms();
    if (c->o->on_stage) c->o->on_stage(name, c->o->stage_arg);
}

static void stage_end(slim_ctx *c, const char *name)
{
    json_object_set_new(c->timings, name, json_integer(now_ms() - c->t_stage));
}

void es_slim_opts_default(es_slim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->duration_ms = 5000;
    o->probe_timeout_ms = 30000;
    o->compression = ES_COMP_GZIP;
}

int es_write_file_atomic(const char *path, const char *text, es_error *err)
{
    char *tmp = es_xasprintf("%s.edgeslim-tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(tmp);
        return es_err_sys(err, ES_EIO, "%s: cannot create", path);
    }
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (close(fd) < 0) ok = 0;
    if (ok && rename(tmp, path) < 0) ok = 0;
    if (!ok) {
        es_err_sys(err, ES_EIO, "%s: cannot write", path);
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

static void ctx_free(slim_ctx *c)
{
    if (c->root) es_remove_tree(c->root, NULL);
    if (c->work) es_remove_tree(c->work, NULL);
    free(c->root);
    free(c->work);
    free(c->slim_root);
    free(c->blob_path);
    free(c->probe_log);
    es_run_config_free(&c->run);
    es_closure_free(c->closure);
    es_keepset_free(c->ks);
    for (size_t i = 0; i < c->n_probes; i++) es_probe_free(&c->probes[i]);
    free(c->probes);
    free(c->outcomes);
    es_pkgdb_free(&c->db);
    for (size_t i = 0; i < c->n_syscalls; i++) free(c->syscalls[i]);
    free(c->syscalls);
    free(c->user_final);
    json_decref(c->missing_paths);
    json_decref(c->timings);
    if (c->img) es_image_close(c->img);
}

static const char *env_value(char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; env && env[i]; i++)
        if (!strncmp(env[i], key, kl) && env[i][kl] == '=') return env[i] + kl + 1;
    return NULL;
}

static int64_t parse_created(const char *s)
{
    struct tm tm = {0};
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    return (int64_t)timegm(&tm);
}

/* ------------------------------------------------------------------ stage: open + unpack */

static int open_and_unpack(slim_ctx *c, es_error *err)
{
    stage(c, "open");
    if (es_image_open(c->o->src, NULL, &c->img, err) < 0) return -1;
    if (es_sandbox_check_platform(c->img, err) < 0) return -1;
    json_t *created = json_object_get(c->img->config, "created");
    const char *cs = json_is_string(created) ? json_string_value(created) : NULL;
    es_doc_timestamp(cs, c->created, sizeof c->created);
    int64_t sde = es_source_date_epoch();
    c->epoch = sde >= 0 ? sde : parse_created(cs);
    for (size_t i = 0; i < c->img->n_layers; i++) c->before_compressed += c->img->layers[i].size;
    if (es_run_config_from_image(c->img, NULL, NULL, &c->run, err) < 0) return -1;
    stage_end(c, "open");
    stage(c, "unpack");
    if (es_sandbox_unpack_temp(c->img, &c->root, NULL, err) < 0) return -1;
    char tmpl[] = "/var/tmp/edgeslim-slim-XXXXXX";
    const char *tmpdir = getenv("TMPDIR");
    char *t = tmpdir && *tmpdir ? es_xasprintf("%s/edgeslim-slim-XXXXXX", tmpdir) : es_xstrdup(tmpl);
    if (!mkdtemp(t)) {
        free(t);
        return es_err_sys(err, ES_EIO, "cannot create a temporary directory");
    }
    c->work = t;
    c->slim_root = es_xasprintf("%s/rootfs", c->work);
    c->blob_path = es_xasprintf("%s/layer.blob", c->work);
    c->probe_log = es_xasprintf("%s/probes.log", c->work);
    if (mkdir(c->slim_root, 0755) < 0) return es_err_sys(err, ES_EIO, "%s: mkdir", c->slim_root);
    es_tree_measure(c->root, &c->before);
    stage_end(c, "unpack");
    return 0;
}

/* ------------------------------------------------------------------ stage: static closure */

static void keep_arg_files(slim_ctx *c, es_error *err)
{
    /* Arguments naming files of the image (python3 /app/app.py, or app.py under the workdir). */
    for (size_t i = 1; c->run.argv[i]; i++) {
        const char *a = c->run.argv[i];
        if (a[0] == '-' || strlen(a) > 1024) continue;
        char *p = a[0] == '/' ? es_xstrdup(a)
                              : es_xasprintf("%s/%s", c->run.workdir && *c->run.workdir ? c->run.workdir : "", a);
        if (p[0] == '/') es_closure_add(c->closure, p, c->ks, ES_KEEP_STATIC, err);
        free(p);
    }
}

/* A HEALTHCHECK runs inside the image too: its program (and for CMD-SHELL, /bin/sh and the first
 * word of the command) belongs to the static closure, or the kept healthcheck would break. */
static int keep_healthcheck(slim_ctx *c, es_error *err)
{
    json_t *inner = json_object_get(c->img->config, "config");
    json_t *test = json_object_get(json_object_get(inner, "Healthcheck"), "Test");
    const char *kind = json_string_value(json_array_get(test, 0));
    if (!kind || json_array_size(test) < 2) return 0;
    char *prog = NULL;
    if (!strcmp(kind, "CMD")) {
        prog = es_xstrdup(json_string_value(json_array_get(test, 1)) ? json_string_value(json_array_get(test, 1)) : "");
    } else if (!strcmp(kind, "CMD-SHELL")) {
        if (es_closure_add(c->closure, "/bin/sh", c->ks, ES_KEEP_STATIC, err) < 0) return -1;
        char **words = es_split_command(json_string_value(json_array_get(test, 1)) ? json_string_value(json_array_get(test, 1)) : "");
        prog = words[0] ? es_xstrdup(words[0]) : NULL;
        es_strv_free(words);
    }
    char *path = prog && *prog ? es_closure_which(c->closure, prog, c->run.workdir) : NULL;
    int rc = path ? es_closure_add(c->closure, path, c->ks, ES_KEEP_STATIC, err) : 0;
    free(path);
    free(prog);
    return rc < 0 ? -1 : 0;
}

static int static_closure(slim_ctx *c, es_error *err)
{
    stage(c, "closure");
    c->ks = es_keepset_new();
    c->closure = es_closure_new(c->root, env_value(c->run.env, "PATH"), env_value(c->run.env, "LD_LIBRARY_PATH"));
    const char *cmd = c->run.argv[0];
    char *path = es_closure_which(c->closure, cmd, c->run.workdir);
    if (!path) return es_err(err, ES_ERUN, "%s: command not found in image: %s", c->o->src, cmd);
    int rc = es_closure_add(c->closure, path, c->ks, ES_KEEP_STATIC, err);
    free(path);
    if (rc < 0) return -1;
    keep_arg_files(c, err);
    if (err && err->code) return -1;
    if (keep_healthcheck(c, err) < 0) return -1;
    if (c->run.workdir && *c->run.workdir)
        es_rootfs_keep(c->root, c->run.workdir, c->ks, ES_KEEP_STATIC, NULL, NULL);
    stage_end(c, "closure");
    return 0;
}

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

static int make_probes(slim_ctx *c, es_error *err)
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
 * give the app a moment, so start-up file accesses are in the trace. */
static void settle(slim_ctx *c, es_sandbox *sb)
{
    json_t *ports = es_config_exposed_ports(c->img);
    const char *key;
    json_t *v;
    if (json_is_object(ports)) json_object_foreach(ports, key, v) {
        int port = atoi(key);
        if (port <= 0 || port > 65535 || (strchr(key, '/') && !strstr(key, "/tcp"))) continue;
        es_error e = {0};
        int fd = es_sandbox_connect_tcp(sb, port, c->o->probe_timeout_ms, &e);
        if (fd >= 0) close(fd);
    }
    usleep(SETTLE_MS * 1000);
}

static int traced_run(slim_ctx *c, es_error *err)
{
    stage(c, "trace");
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
    stage_end(c, "trace");
    return rc;
}

/* ------------------------------------------------------------------ stage: rules, tree, harden */

static int apply_rules(slim_ctx *c, es_error *err)
{
    stage(c, "rules");
    if (c->o->rules && es_rules_apply_includes(c->o->rules, c->root, c->closure, c->ks, err) < 0) return -1;
    if (es_presets_apply(c->root, c->run.env, c->ks, err) < 0) return -1;
    if (c->o->rules) es_rules_apply_excludes(c->o->rules, c->ks);
    if (es_pkgdb_scan(c->root, c->ks, &c->db, err) < 0) return -1;
    es_pkgdb_keep_files(c->root, &c->db, c->ks);
    stage_end(c, "rules");
    return 0;
}

static int is_root_user(const char *u)
{
    return !u || !*u || !strcmp(u, "root") || !strcmp(u, "0") || !strcmp(u, "0:0") || !strcmp(u, "root:root");
}

static char *sbom_text(slim_ctx *c)
{
    /* Named after the source, not the destination path, so the bytes do not depend on where
     * the output goes. */
    const char *tag = c->img->repo_tags && c->img->repo_tags[0] ? c->img->repo_tags[0] : NULL;
    char *name = tag ? es_xasprintf("%s (slim)", tag) : es_xasprintf("slim image of %s", c->img->manifest_digest.s);
    es_sbom_info info = {name, c->img->manifest_digest.s, c->created, ES_VERSION_STRING};
    json_t *doc = es_sbom_spdx(&info, &c->db);
    char *s = es_json_pretty(doc);
    json_decref(doc);
    free(name);
    return s;
}

/* Entries created or rewritten by us get the fixed time; directories keep the original's. */
static void normalize_times_dir(slim_ctx *c, const char *cdir, time_t start)
{
    char *host = es_rootfs_host_path(c->slim_root, cdir);
    DIR *d = opendir(host);
    if (!d) { free(host); return; }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *cp = es_xasprintf("%s/%s", strcmp(cdir, "/") ? cdir : "", de->d_name);
        char *hp = es_rootfs_host_path(c->slim_root, cp);
        struct stat st;
        if (lstat(hp, &st) == 0) {
            if (S_ISDIR(st.st_mode)) normalize_times_dir(c, cp, start);
            struct timespec ts[2] = {{(time_t)c->epoch, 0}, {(time_t)c->epoch, 0}};
            char *op = es_rootfs_host_path(c->root, cp);
            struct stat ost;
            int in_orig = lstat(op, &ost) == 0 && ((ost.st_mode ^ st.st_mode) & S_IFMT) == 0;
            free(op);
            if (S_ISDIR(st.st_mode) && in_orig) ts[0] = ost.st_atim, ts[1] = ost.st_mtim;
            if (S_ISDIR(st.st_mode) || st.st_mtime >= start) utimensat(AT_FDCWD, hp, ts, AT_SYMLINK_NOFOLLOW);
        }
        free(hp);
        free(cp);
    }
    closedir(d);
    free(host);
}

static int build_tree(slim_ctx *c, int add_nonroot, es_error *err)
{
    stage(c, "build");
    time_t start = time(NULL) - 1;
    if (es_tree_copy(c->root, c->slim_root, c->ks, &c->stripped, err) < 0) return -1;
    if (add_nonroot && es_tree_add_nonroot(c->slim_root, err) < 0) return -1;
    if (es_pkgdb_write(c->slim_root, &c->db, err) < 0) return -1;
    if (c->db.kind != ES_PKGDB_NONE) {
        char *s = sbom_text(c);
        int rc = es_tree_write_file(c->slim_root, ES_SBOM_IMAGE_PATH, s, strlen(s), 0644, err);
        free(s);
        if (rc < 0) return -1;
    }
    normalize_times_dir(c, "/", start);
    es_tree_measure(c->slim_root, &c->after);
    stage_end(c, "build");
    return 0;
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

static int verify(slim_ctx *c, int tried_nonroot, es_error *err)
{
    stage(c, "verify");
    size_t failed = 0;
    const char *user = c->user_final;
    int rc = verify_once(c, user, &failed, err);
    if (rc == 1 && tried_nonroot) {
        const char *what = c->duration_mode ? "the run" : c->probes[failed].spec;
        snprintf(c->user_note, sizeof c->user_note,
                 "kept the original user %s: verification as nonroot (65532) failed on %s (%s)",
                 is_root_user(c->run.user) ? "root" : c->run.user, what,
                 c->duration_mode ? "different exit" : c->outcomes[failed].slim.detail);
        free(c->user_final);
        c->user_final = c->run.user ? es_xstrdup(c->run.user) : NULL;
        user = c->user_final;
        rc = verify_once(c, user, &failed, err);
    }
    if (rc == 1) return verify_fail(c, failed, user, err);
    stage_end(c, "verify");
    return rc;
}

/* ------------------------------------------------------------------ stage: write */

static double reduction_pct(int64_t before, int64_t after)
{
    return before > 0 ? 100.0 * (double)(before - after) / (double)before : 0.0;
}

static json_t *new_config(slim_ctx *c)
{
    json_t *cfg = json_deep_copy(c->img->config);
    json_t *inner = json_object_get(cfg, "config");
    if (!json_is_object(inner)) {
        inner = json_object();
        json_object_set_new(cfg, "config", inner);
    }
    if (c->user_final && *c->user_final) json_object_set_new(inner, "User", json_string(c->user_final));
    else json_object_del(inner, "User");
    json_t *labels = json_object_get(inner, "Labels");
    if (!json_is_object(labels)) {
        labels = json_object();
        json_object_set_new(inner, "Labels", labels);
    }
    char pct[32];
    snprintf(pct, sizeof pct, "%.1f", reduction_pct(c->before.bytes, c->after.bytes));
    json_object_set_new(labels, "io.edgeslim.slim.version", json_string(ES_VERSION_STRING));
    json_object_set_new(labels, "io.edgeslim.slim.source-digest", json_string(c->img->manifest_digest.s));
    json_object_set_new(labels, "io.edgeslim.slim.reduction-percent", json_string(pct));
    json_object_set_new(labels, "io.edgeslim.slim.sbom", json_string(c->db.kind ? ES_SBOM_IMAGE_PATH : ""));
    json_object_set_new(labels, "io.edgeslim.slim.verified", json_string(c->o->skip_verify ? "false" : "true"));
    json_object_del(cfg, "rootfs");
    const char *args = c->o->command_line ? c->o->command_line : "";
    char *by = es_xasprintf("edgeslim slim%s%s", *args ? " " : "", args);
    char *comment = es_xasprintf("slimmed from %s: %.1f%% fewer bytes, %lld setuid/setgid bits stripped, user %s",
                                 c->img->manifest_digest.s, reduction_pct(c->before.bytes, c->after.bytes),
                                 (long long)c->stripped, c->user_final && *c->user_final ? c->user_final : "root");
    json_object_set_new(cfg, "history",
                        json_pack("[{s:s, s:s, s:s}]", "created", c->created, "created_by", by, "comment", comment));
    free(by);
    free(comment);
    return cfg;
}

static int write_output(slim_ctx *c, es_layer_blob *blob, es_write_result *wres, es_error *err)
{
    stage(c, "write");
    es_write_opts wo;
    es_write_opts_default(&wo);
    wo.compression = c->o->compression;
    if (wo.source_date_epoch < 0) wo.source_date_epoch = c->epoch;
    if (es_layer_from_dir(c->slim_root, &wo, NULL, NULL, c->blob_path, blob, NULL, err) < 0) return -1;
    if (c->after.bytes > c->before.bytes || blob->size >= c->before_compressed)
        return es_err(err, ES_ELARGER,
                      "%s: the slim image would not be smaller (%lld -> %lld bytes of files, %lld -> %lld bytes stored); nothing written, keep the input",
                      c->o->src, (long long)c->before.bytes, (long long)c->after.bytes, (long long)c->before_compressed,
                      (long long)blob->size);
    json_t *cfg = new_config(c);
    es_image_out out = {.config = cfg, .n_layers = 1, .layers = blob};
    int rc = es_image_write(&out, c->o->dst, wres, err);
    json_decref(cfg);
    stage_end(c, "write");
    return rc;
}

/* Path beside the destination: the destination's file or directory + suffix. */
static char *beside_dst(const char *dst, const char *suffix)
{
    es_image_ref r = {0};
    char *p;
    if (es_ref_parse(dst, &r, NULL) == 0 && r.path) p = es_xasprintf("%s%s", r.path, suffix);
    else p = es_xasprintf("%s%s", dst, suffix);
    es_ref_free(&r);
    return p;
}

static int write_side_files(slim_ctx *c, json_t *report, es_error *err)
{
    char *sbom_path = c->o->sbom_path ? es_xstrdup(c->o->sbom_path) : beside_dst(c->o->dst, ".spdx.json");
    char *s = sbom_text(c);
    int rc = es_write_file_atomic(sbom_path, s, err);
    free(s);
    json_object_set_new(report, "sbom", json_string(sbom_path));
    free(sbom_path);
    if (rc == 0 && c->o->seccomp_path) {
        json_t *prof = es_seccomp_profile((const char *const *)c->syscalls, c->n_syscalls);
        char *t = es_json_pretty(prof);
        json_decref(prof);
        rc = es_write_file_atomic(c->o->seccomp_path, t, err);
        free(t);
        json_object_set_new(report, "seccomp", json_string(c->o->seccomp_path));
    }
    return rc;
}

/* ------------------------------------------------------------------ report */

static json_t *side_json(const es_tree_stats *st, int64_t compressed, size_t pkgs, const char *user)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "size_uncompressed", (json_int_t)st->bytes,
                     "size_compressed", (json_int_t)compressed, "files", (json_int_t)st->files, "packages",
                     (json_int_t)pkgs, "shells", (json_int_t)st->shells, "package_managers",
                     (json_int_t)st->pkg_managers, "setuid_files", (json_int_t)st->setuid, "user",
                     user && *user ? user : "root");
}

static json_t *probes_json(slim_ctx *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < c->n_probes; i++) {
        probe_outcome *po = &c->outcomes[i];
        json_array_append_new(a, json_pack("{s:s, s:b, s:{s:b, s:s}, s:{s:b, s:s}}", "probe", c->probes[i].spec, "auto",
                                           c->probes[i].is_auto, "original", "passed", po->orig.passed, "detail",
                                           po->orig.detail, "slim", "passed", po->slim.passed, "detail",
                                           po->slim.detail));
    }
    return a;
}

static json_t *kept_json(slim_ctx *c)
{
    json_t *a = json_array();
    if (!c->ks) return a;
    size_t n = 0;
    const char **paths = es_keepset_sorted(c->ks, &n);
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        es_keep_reason_names(es_keepset_get(c->ks, paths[i]), buf, sizeof buf);
        json_array_append_new(a, json_pack("{s:s, s:s}", "path", paths[i], "reason", buf));
    }
    free(paths);
    return a;
}

static json_t *build_report(slim_ctx *c, const es_layer_blob *blob, const es_write_result *wres)
{
    json_t *sys = json_array();
    for (size_t i = 0; i < c->n_syscalls; i++) json_array_append_new(sys, json_string(c->syscalls[i]));
    const char *const *missing_libs = NULL;
    size_t nml = c->closure ? es_closure_missing(c->closure, &missing_libs) : 0;
    json_t *ml = json_array();
    for (size_t i = 0; i < nml; i++) json_array_append_new(ml, json_string(missing_libs[i]));
    json_t *r = json_pack("{s:s, s:s, s:s, s:o, s:o, s:f, s:f, s:{s:s, s:s, s:s}, s:I, s:o, s:o, s:o, s:o, s:b, s:o}",
                          "source", c->o->src, "destination", c->o->dst, "source_digest",
                          c->img ? c->img->manifest_digest.s : "", "before",
                          side_json(&c->before, c->before_compressed, es_pkgdb_installed_count(&c->db), c->run.user),
                          "after", side_json(&c->after, blob ? blob->size : 0, es_pkgdb_kept_count(&c->db), c->user_final),
                          "reduction_percent", reduction_pct(c->before.bytes, c->after.bytes),
                          "reduction_percent_compressed", reduction_pct(c->before_compressed, blob ? blob->size : 0),
                          "user", "before", c->run.user && *c->run.user ? c->run.user : "root", "after",
                          c->user_final && *c->user_final ? c->user_final : "root", "note", c->user_note,
                          "setuid_stripped", (json_int_t)c->stripped, "probes", probes_json(c), "kept", kept_json(c),
                          "syscalls", sys, "missing_libraries", ml, "verified", !c->o->skip_verify, "timings_ms",
                          json_incref(c->timings));
    if (wres) json_object_set_new(r, "digest", json_string(wres->manifest_digest.s));
    if (c->missing_paths) json_object_set(r, "missing_paths", c->missing_paths);
    json_object_set_new(r, "mode", json_string(c->duration_mode ? "duration" : "probes"));
    return r;
}

static int write_report(const char *path, json_t *report, es_error *err)
{
    char *t = es_json_pretty(report);
    int rc = es_write_file_atomic(path, t, err);
    free(t);
    return rc;
}

/* ------------------------------------------------------------------ the pipeline */

static int choose_user(slim_ctx *c)
{
    if (c->o->user) {
        c->user_final = es_xstrdup(c->o->user);
        snprintf(c->user_note, sizeof c->user_note, "user forced with --user");
        return 0;
    }
    if (is_root_user(c->run.user)) {
        c->user_final = es_xstrdup(NONROOT_USER);
        snprintf(c->user_note, sizeof c->user_note, "the image ran as root; the slim image runs as nonroot (65532) and passed verification that way");
        return 1;
    }
    c->user_final = es_xstrdup(c->run.user);
    snprintf(c->user_note, sizeof c->user_note, "the image already runs as a non-root user");
    return 0;
}

static int run_pipeline(slim_ctx *c, es_layer_blob *blob, es_write_result *wres, es_error *err)
{
    if (open_and_unpack(c, err) < 0) return -1;
    if (make_probes(c, err) < 0) return -1;
    if (static_closure(c, err) < 0) return -1;
    if (traced_run(c, err) < 0) return -1;
    if (apply_rules(c, err) < 0) return -1;
    int try_nonroot = choose_user(c);
    /* --user nonroot / 65532 also needs the entries. */
    int add_entries = try_nonroot || (c->o->user && (!strncmp(c->o->user, "nonroot", 7) || !strncmp(c->o->user, "65532", 5)));
    if (build_tree(c, add_entries, err) < 0) return -1;
    if (!c->o->skip_verify && verify(c, try_nonroot, err) < 0) return -1;
    if (c->o->skip_verify) snprintf(c->user_note + strlen(c->user_note), sizeof c->user_note - strlen(c->user_note), " (NOT verified: --skip-verify)");
    return write_output(c, blob, wres, err);
}

int es_slim(const es_slim_opts *o, json_t **report, es_error *err)
{
    slim_ctx c = {0};
    c.o = o;
    c.t0 = now_ms();
    c.timings = json_object();
    es_layer_blob blob = {0};
    es_write_result wres = {0};
    int rc = run_pipeline(&c, &blob, &wres, err);
    json_object_set_new(c.timings, "total", json_integer(now_ms() - c.t0));
    json_t *rep = build_report(&c, rc == 0 ? &blob : NULL, rc == 0 ? &wres : NULL);
    if (rc < 0) json_object_set_new(rep, "error", json_pack("{s:i, s:s}", "code", err ? err->code : 1, "message", err ? err->msg : ""));
    if (rc == 0) rc = write_side_files(&c, rep, err);
    if (o->report_path) {
        es_error e2 = {0};
        if (write_report(o->report_path, rep, rc == 0 ? err : &e2) < 0 && rc == 0) rc = -1;
    }
    if (report) *report = rep;
    else json_decref(rep);
    ctx_free(&c);
    return rc;
}
