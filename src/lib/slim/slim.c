/*
 * The slim pipeline (see slim.h). One context struct carries the state between stages; each
 * stage is a function that either succeeds or fills err. Cleanup is in one place (ctx_free):
 * temp dirs (unpacked original, slim tree, layer blob) are removed on every path out, so a
 * failure leaves nothing behind, and the destination is only touched by es_image_write, which
 * is itself atomic. Running containers (traced run, verification) is in slim_run.c, the report
 * in slim_report.c; the shared context is in slim_internal.h.
 */
#include "slim/slim_internal.h"

long long slim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void slim_stage(slim_ctx *c, const char *name)
{
    c->t_stage = slim_now_ms();
    if (c->o->on_stage) c->o->on_stage(name, c->o->stage_arg);
}

void slim_stage_end(slim_ctx *c, const char *name)
{
    json_object_set_new(c->timings, name, json_integer(slim_now_ms() - c->t_stage));
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
    slim_stage(c, "open");
    if (es_image_open(c->o->src, NULL, &c->img, err) < 0) return -1;
    if (es_sandbox_check_platform(c->img, err) < 0) return -1;
    json_t *created = json_object_get(c->img->config, "created");
    const char *cs = json_is_string(created) ? json_string_value(created) : NULL;
    es_doc_timestamp(cs, c->created, sizeof c->created);
    int64_t sde = es_source_date_epoch();
    c->epoch = sde >= 0 ? sde : parse_created(cs);
    for (size_t i = 0; i < c->img->n_layers; i++) c->before_compressed += c->img->layers[i].size;
    if (es_run_config_from_image(c->img, NULL, NULL, &c->run, err) < 0) return -1;
    slim_stage_end(c, "open");
    slim_stage(c, "unpack");
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
    slim_stage_end(c, "unpack");
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
    slim_stage(c, "closure");
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
    slim_stage_end(c, "closure");
    return 0;
}

/* ------------------------------------------------------------------ stage: rules, tree, harden */

static int apply_rules(slim_ctx *c, es_error *err)
{
    slim_stage(c, "rules");
    if (c->o->rules && es_rules_apply_includes(c->o->rules, c->root, c->closure, c->ks, err) < 0) return -1;
    if (es_presets_apply(c->root, c->run.env, c->ks, err) < 0) return -1;
    if (c->o->rules) es_rules_apply_excludes(c->o->rules, c->ks);
    if (es_pkgdb_scan(c->root, c->ks, &c->db, err) < 0) return -1;
    es_pkgdb_keep_files(c->root, &c->db, c->ks);
    slim_stage_end(c, "rules");
    return 0;
}

int slim_is_root_user(const char *u)
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
    slim_stage(c, "build");
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
    slim_stage_end(c, "build");
    return 0;
}

/* ------------------------------------------------------------------ stage: write */

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
    snprintf(pct, sizeof pct, "%.1f", slim_reduction_pct(c->before.bytes, c->after.bytes));
    json_object_set_new(labels, "io.edgeslim.slim.version", json_string(ES_VERSION_STRING));
    json_object_set_new(labels, "io.edgeslim.slim.source-digest", json_string(c->img->manifest_digest.s));
    json_object_set_new(labels, "io.edgeslim.slim.reduction-percent", json_string(pct));
    json_object_set_new(labels, "io.edgeslim.slim.sbom", json_string(c->db.kind ? ES_SBOM_IMAGE_PATH : ""));
    json_object_set_new(labels, "io.edgeslim.slim.verified", json_string(c->o->skip_verify ? "false" : "true"));
    json_object_del(cfg, "rootfs");
    const char *args = c->o->command_line ? c->o->command_line : "";
    char *by = es_xasprintf("edgeslim slim%s%s", *args ? " " : "", args);
    char *comment = es_xasprintf("slimmed from %s: %.1f%% fewer bytes, %lld setuid/setgid bits stripped, user %s",
                                 c->img->manifest_digest.s, slim_reduction_pct(c->before.bytes, c->after.bytes),
                                 (long long)c->stripped, c->user_final && *c->user_final ? c->user_final : "root");
    json_object_set_new(cfg, "history",
                        json_pack("[{s:s, s:s, s:s}]", "created", c->created, "created_by", by, "comment", comment));
    free(by);
    free(comment);
    return cfg;
}

static int write_output(slim_ctx *c, es_layer_blob *blob, es_write_result *wres, es_error *err)
{
    slim_stage(c, "write");
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
    slim_stage_end(c, "write");
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

/* ------------------------------------------------------------------ the pipeline */

static int choose_user(slim_ctx *c)
{
    if (c->o->user) {
        c->user_final = es_xstrdup(c->o->user);
        snprintf(c->user_note, sizeof c->user_note, "user forced with --user");
        return 0;
    }
    if (slim_is_root_user(c->run.user)) {
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
    if (slim_make_probes(c, err) < 0) return -1;
    if (static_closure(c, err) < 0) return -1;
    if (slim_traced_run(c, err) < 0) return -1;
    if (apply_rules(c, err) < 0) return -1;
    int try_nonroot = choose_user(c);
    /* --user nonroot / 65532 also needs the entries. */
    int add_entries = try_nonroot || (c->o->user && (!strncmp(c->o->user, "nonroot", 7) || !strncmp(c->o->user, "65532", 5)));
    if (build_tree(c, add_entries, err) < 0) return -1;
    if (!c->o->skip_verify && slim_verify(c, try_nonroot, err) < 0) return -1;
    if (c->o->skip_verify) snprintf(c->user_note + strlen(c->user_note), sizeof c->user_note - strlen(c->user_note), " (NOT verified: --skip-verify)");
    return write_output(c, blob, wres, err);
}

int es_slim(const es_slim_opts *o, json_t **report, es_error *err)
{
    slim_ctx c = {0};
    c.o = o;
    c.t0 = slim_now_ms();
    c.timings = json_object();
    es_layer_blob blob = {0};
    es_write_result wres = {0};
    int rc = run_pipeline(&c, &blob, &wres, err);
    json_object_set_new(c.timings, "total", json_integer(slim_now_ms() - c.t0));
    json_t *rep = slim_build_report(&c, rc == 0 ? &blob : NULL, rc == 0 ? &wres : NULL);
    if (rc < 0) json_object_set_new(rep, "error", json_pack("{s:i, s:s}", "code", err ? err->code : 1, "message", err ? err->msg : ""));
    if (rc == 0) rc = write_side_files(&c, rep, err);
    if (o->report_path) {
        es_error e2 = {0};
        if (slim_write_report(o->report_path, rep, rc == 0 ? err : &e2) < 0 && rc == 0) rc = -1;
    }
    if (report) *report = rep;
    else json_decref(rep);
    ctx_free(&c);
    return rc;
}
