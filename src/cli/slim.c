/*
 * edgeslim slim SRC -o DST: parses options into es_slim_opts, runs es_slim (src/lib/slim/slim.c)
 * and prints the before/after table (or the report JSON with --json). All logic is in the
 * library; this file only parses and prints.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "slim/probe.h"
#include "sandbox/sandbox.h"
#include "slim/slim.h"
#include "util/progress.h"

static void slim_help(FILE *f)
{
    fprintf(f,
            "Usage: edgeslim slim SRC -o DST [options]\n\n"
            "Minify an image: keep what the app needs (static closure of its command, files it touches\n"
            "while probes run, rules and presets), harden it, verify it side by side with the original,\n"
            "and write it as one deterministic layer. Nothing is written unless verification passes and\n"
            "the result is smaller.\n\n"
            "  -o, --output DST      destination (docker-archive:PATH, oci:DIR[:REF], oci-archive:PATH)\n"
            "  --probe P             http://127.0.0.1:PORT/PATH[#STATUS] | tcp://127.0.0.1:PORT |\n"
            "                        exec:CMD (inside the container) | cmd:CMD (host, container netns);\n"
            "                        repeatable. Default: one probe per exposed port, else run --duration\n"
            "  --include PATH|GLOB   keep this path (everything under a directory); repeatable\n"
            "  --include-bin PATH    keep this program with its libraries and interpreter\n"
            "  --include-shell       keep /bin/sh and its closure\n"
            "  --exclude PATH|GLOB   drop matches (wins over traced, rule and preset paths, not over the\n"
            "                        static closure of the command)\n"
            "  --keep-file FILE      rules, one per line: include|include-bin|exclude PATH, include-shell\n"
            "  --user U              run the slim image as U (default: 65532 nonroot when the image ran\n"
            "                        as root and verification passes that way)\n"
            "  --duration S          with no probe and no exposed port: run S seconds (default 5)\n"
            "  --probe-timeout S     readiness wait per probe (default 30)\n"
            "  --report FILE.json    full report: figures, probes, kept paths with reasons\n"
            "  --sbom FILE           SPDX 2.3 SBOM path (default: DST path + .spdx.json)\n"
            "  --seccomp FILE        write a seccomp profile of the syscalls seen\n"
            "  --compress C          gzip (default), zstd or none\n"
            "  --skip-verify         DEBUGGING ONLY: write without side-by-side verification\n"
            "  --json                print the report JSON instead of the table\n"
            "  -h, --help            this help\n\n"
            "See docs/slim.md; exit codes: docs/exit-codes.md (9 verify, 10 probe, 11 run, 12 larger).\n");
}

typedef struct slim_cli {
    es_slim_opts o;
    es_rules rules;
    const char **probes;
    size_t n_probes;
    int json;
    char *cmdline;
} slim_cli;

static int parse_seconds(const char *s, int *ms)
{
    char *e = NULL;
    double v = strtod(s, &e);
    if (e == s || *e || v <= 0 || v > 86400) return -1;
    *ms = (int)(v * 1000);
    return 0;
}

/* The options that shape the result, for the history entry; paths of outputs and the source
 * are left out so the same input and options give the same image wherever they are written. */
static char *history_args(int argc, char **argv, const char *src)
{
    static const char *const skip_with_value[] = {"-o", "--output", "--report", "--sbom", "--seccomp", NULL};
    size_t len = 1;
    for (int i = 1; i < argc; i++) len += strlen(argv[i]) + 1;
    char *s = es_xcalloc(1, len);
    size_t n = 0; /* strlen(s); each kept argument takes at most its share of len */
    for (int i = 1; i < argc; i++) {
        int skip = 0;
        for (size_t k = 0; skip_with_value[k]; k++) {
            size_t kl = strlen(skip_with_value[k]);
            if (!strcmp(argv[i], skip_with_value[k])) skip = 2;
            else if (!strncmp(argv[i], skip_with_value[k], kl) && (argv[i][kl] == '=' || (kl == 2 && argv[i][kl]))) skip = 1;
        }
        if (skip == 2) { i++; continue; }
        if (skip || !strcmp(argv[i], "--json") || argv[i] == src) continue;
        if (n) s[n++] = ' ';
        size_t al = strlen(argv[i]);
        memcpy(s + n, argv[i], al + 1);
        n += al;
    }
    return s;
}

static int add_rule(slim_cli *c, es_rule_kind k, const char *arg)
{
    es_error err = {0};
    if (es_rules_add(&c->rules, k, arg, &err) < 0) return cli_usage_error("slim", "%s", err.msg);
    return 0;
}

enum { O_PROBE = 256, O_INCLUDE, O_INCLUDE_BIN, O_INCLUDE_SHELL, O_EXCLUDE, O_KEEP_FILE, O_USER, O_DURATION,
       O_PROBE_TIMEOUT, O_REPORT, O_SBOM, O_SECCOMP, O_COMPRESS, O_SKIP_VERIFY, O_JSON };

static int parse_one(slim_cli *c, int opt, const char *arg, int *done)
{
    es_error err = {0};
    switch (opt) {
    case 'o': c->o.dst = arg; return 0;
    case O_PROBE: {
        es_probe check;
        if (es_probe_parse(arg, &check, &err) < 0) return cli_usage_error("slim", "%s", err.msg);
        es_probe_free(&check);
    }
        c->probes = es_xrealloc(c->probes, (c->n_probes + 1) * sizeof *c->probes);
        c->probes[c->n_probes++] = arg;
        return 0;
    case O_INCLUDE: return add_rule(c, ES_RULE_INCLUDE, arg);
    case O_INCLUDE_BIN: return add_rule(c, ES_RULE_INCLUDE_BIN, arg);
    case O_INCLUDE_SHELL: return add_rule(c, ES_RULE_INCLUDE_SHELL, NULL);
    case O_EXCLUDE: return add_rule(c, ES_RULE_EXCLUDE, arg);
    case O_KEEP_FILE:
        if (es_rules_parse_file(&c->rules, arg, &err) < 0) return err.code == ES_EUSAGE ? cli_usage_error("slim", "%s", err.msg) : cli_fail("slim", &err);
        return 0;
    case O_USER: c->o.user = arg; return 0;
    case O_DURATION:
        if (parse_seconds(arg, &c->o.duration_ms) < 0) return cli_usage_error("slim", "--duration: want seconds, not '%s'", arg);
        return 0;
    case O_PROBE_TIMEOUT:
        if (parse_seconds(arg, &c->o.probe_timeout_ms) < 0) return cli_usage_error("slim", "--probe-timeout: want seconds, not '%s'", arg);
        return 0;
    case O_REPORT: c->o.report_path = arg; return 0;
    case O_SBOM: c->o.sbom_path = arg; return 0;
    case O_SECCOMP: c->o.seccomp_path = arg; return 0;
    case O_COMPRESS:
        if (es_compression_parse(arg, &c->o.compression) < 0) return cli_usage_error("slim", "--compress: want gzip, zstd or none, not '%s'", arg);
        return 0;
    case O_SKIP_VERIFY: c->o.skip_verify = 1; return 0;
    case O_JSON: c->json = 1; return 0;
    case 'h': slim_help(stdout); *done = 1; return 0;
    default: return cli_usage_error("slim", "unknown option");
    }
}

static int parse_args(int argc, char **argv, slim_cli *c, int *done)
{
    static const struct option longopts[] = {
        {"output", required_argument, 0, 'o'},        {"probe", required_argument, 0, O_PROBE},
        {"include", required_argument, 0, O_INCLUDE}, {"include-bin", required_argument, 0, O_INCLUDE_BIN},
        {"include-shell", no_argument, 0, O_INCLUDE_SHELL}, {"exclude", required_argument, 0, O_EXCLUDE},
        {"keep-file", required_argument, 0, O_KEEP_FILE}, {"user", required_argument, 0, O_USER},
        {"duration", required_argument, 0, O_DURATION}, {"probe-timeout", required_argument, 0, O_PROBE_TIMEOUT},
        {"report", required_argument, 0, O_REPORT},   {"sbom", required_argument, 0, O_SBOM},
        {"seccomp", required_argument, 0, O_SECCOMP}, {"compress", required_argument, 0, O_COMPRESS},
        {"skip-verify", no_argument, 0, O_SKIP_VERIFY}, {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0},
    };
    optind = 1;
    int opt, rc;
    while ((opt = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        if ((rc = parse_one(c, opt, optarg, done)) != 0 || *done) return rc;
    }
    if (argc - optind != 1) return cli_usage_error("slim", "want exactly one SRC image");
    if (!c->o.dst) return cli_usage_error("slim", "missing -o DST");
    c->o.src = argv[optind];
    return 0;
}

static void on_stage(const char *stage, void *arg)
{
    es_progress_set_label(arg, stage);
    es_progress_add(arg, 0);
}

static long long jint(json_t *o, const char *side, const char *k)
{
    return (long long)json_integer_value(json_object_get(json_object_get(o, side), k));
}

static void row_bytes(json_t *r, const char *label, const char *key)
{
    char b[32], a[32];
    long long vb = jint(r, "before", key), va = jint(r, "after", key);
    cli_human_bytes(vb, b, sizeof b);
    cli_human_bytes(va, a, sizeof a);
    printf("  %-22s %12s %12s %9.1f %%\n", label, b, a, vb ? -100.0 * (double)(vb - va) / (double)vb : 0.0);
}

static void row_count(json_t *r, const char *label, const char *key)
{
    printf("  %-22s %12lld %12lld\n", label, jint(r, "before", key), jint(r, "after", key));
}

static void print_table(json_t *r, int ok)
{
    printf("edgeslim slim %s -> %s%s\n", json_string_value(json_object_get(r, "source")),
           json_string_value(json_object_get(r, "destination")), ok ? "" : "  (NOT WRITTEN)");
    printf("  %-22s %12s %12s %11s\n", "", "before", "after", "change");
    row_bytes(r, "size (file bytes)", "size_uncompressed");
    if (ok) row_bytes(r, "size (layers stored)", "size_compressed");
    row_count(r, "files", "files");
    row_count(r, "packages", "packages");
    row_count(r, "shells", "shells");
    row_count(r, "package managers", "package_managers");
    row_count(r, "setuid/setgid files", "setuid_files");
    printf("  %-22s %12s %12s\n", "user", json_string_value(json_object_get(json_object_get(r, "before"), "user")),
           json_string_value(json_object_get(json_object_get(r, "after"), "user")));
    printf("reduction: %.1f %% of file bytes\n", json_real_value(json_object_get(r, "reduction_percent")));
    json_t *probes = json_object_get(r, "probes");
    size_t i;
    json_t *p;
    json_array_foreach(probes, i, p) {
        json_t *o = json_object_get(p, "original"), *s = json_object_get(p, "slim");
        printf("probe %s: original %s, slim %s\n", json_string_value(json_object_get(p, "probe")),
               json_string_value(json_object_get(o, "detail")),
               json_is_true(json_object_get(s, "passed")) || !ok ? json_string_value(json_object_get(s, "detail")) : "-");
    }
    const char *note = json_string_value(json_object_get(json_object_get(r, "user"), "note"));
    if (note && *note) printf("user: %s\n", note);
    if (ok) {
        printf("wrote %s (manifest %s)\n", json_string_value(json_object_get(r, "destination")),
               json_string_value(json_object_get(r, "digest")));
        printf("sbom: %s\n", json_string_value(json_object_get(r, "sbom")));
        if (json_object_get(r, "seccomp")) printf("seccomp profile: %s\n", json_string_value(json_object_get(r, "seccomp")));
    }
}

static int run_slim(slim_cli *c)
{
    if (c->json) es_progress_enable(0);
    es_progress *prog = es_progress_new("slim", 0);
    c->o.on_stage = on_stage;
    c->o.stage_arg = prog;
    es_error err = {0};
    json_t *report = NULL;
    int r = es_slim(&c->o, &report, &err);
    es_progress_done(prog);
    if (c->json && report) {
        char *s = json_dumps(report, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", s);
        free(s);
    } else if (report && (r == 0 || err.code == ES_EVERIFY || err.code == ES_ELARGER)) {
        print_table(report, r == 0);
    }
    json_decref(report);
    fflush(stdout);
    return r < 0 ? cli_fail("slim", &err) : 0;
}

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
    if (child_pid > 0) kill(child_pid, sig);
}

/* The work runs in a child whose TMPDIR is a directory we own: whatever way the child ends
 * (Ctrl-C, kill), we remove that directory, so no unpacked image is left behind. */
static int run_slim_guarded(slim_cli *c)
{
    const char *base = getenv("TMPDIR");
    char *dir = es_xasprintf("%s/edgeslim-slim-run-XXXXXX", base && *base ? base : "/var/tmp");
    if (!mkdtemp(dir)) {
        es_error err = {0};
        es_err_sys(&err, ES_EIO, "%s: cannot create a temporary directory", dir);
        free(dir);
        return cli_fail("slim", &err);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("TMPDIR", dir, 1);
        _exit(run_slim(c));
    }
    int rc = ES_EFAIL;
    if (pid > 0) {
        child_pid = pid;
        struct sigaction sa = {0};
        sa.sa_handler = forward_signal;
        int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
        for (size_t i = 0; i < 4; i++) sigaction(sigs[i], &sa, NULL);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (WIFSIGNALED(st)) fprintf(stderr, "edgeslim slim: interrupted (signal %d); temporary files removed, nothing written\n", WTERMSIG(st));
    }
    es_remove_tree(dir, NULL);
    free(dir);
    return rc;
}

int cmd_slim(int argc, char **argv)
{
    slim_cli c;
    memset(&c, 0, sizeof c);
    es_slim_opts_default(&c.o);
    int done = 0;
    int rc = parse_args(argc, argv, &c, &done);
    if (rc == 0 && !done) {
        c.cmdline = history_args(argc, argv, c.o.src);
        c.o.command_line = c.cmdline;
        c.o.probes = c.probes;
        c.o.n_probes = c.n_probes;
        c.o.rules = &c.rules;
        rc = run_slim_guarded(&c);
    }
    es_rules_free(&c.rules);
    free(c.probes);
    free(c.cmdline);
    return rc;
}
