/*
 * edgeslim inspect IMAGE: layers, totals, dive's waste metrics and our reclaimable bytes, the
 * largest files and directories, packages, ELF files and attack surface of an image; --json for
 * all of it (docs/inspect-json.md), --ci to gate on dive's rules (exit 8 when one fails).
 * All analysis is es_inspect_image (src/lib/analyze); this file parses options and prints.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/dive_ci.h"
#include "analyze/inspect_image.h"
#include "cli.h"
#include "oci/image.h"
#include "util/progress.h"

static void inspect_help(FILE *f)
{
    fprintf(
        f,
        "Usage: edgeslim inspect IMAGE [--json] [--top N] [--platform OS/ARCH[/VARIANT]]\n"
        "                        [--ci [--ci-config FILE]]\n\n"
        "Show an image's layers (created by, size, compressed size, files), totals, dive's waste\n"
        "metrics (efficiency, wasted bytes, user wasted %%) and the bytes really reclaimable, the\n"
        "largest files and directories, installed packages (dpkg, apk), ELF files and the attack\n"
        "surface (shells, package managers, setuid/setgid, world-writable, capabilities, user, "
        "ports).\n"
        "Every layer is read once and its digests verified.\n\n"
        "  IMAGE               docker-archive:PATH, oci:DIR[:REF], oci-archive:PATH[:REF] or a "
        "bare path\n"
        "  --json              everything as JSON on stdout (fields: docs/inspect-json.md)\n"
        "  --top N             list the N largest files/directories (default 10)\n"
        "  --platform P        pick P from a multi-platform image (default: this host)\n"
        "  --ci                evaluate dive's CI rules; exit 8 when one fails. Rules come from\n"
        "                      --ci-config FILE, else ./.dive-ci if it exists, else dive's "
        "defaults\n"
        "                      (lowestEfficiency 0.9, highestUserWastedPercent 0.1,\n"
        "                      highestWastedBytes disabled)\n"
        "  --ci-config FILE    dive's .dive-ci YAML (implies --ci)\n"
        "  --lowest-efficiency V, --highest-wasted-bytes V, --highest-user-wasted-percent V\n"
        "                      override one rule (V may be 'disabled'; implies --ci); dive's\n"
        "                      spellings --lowestEfficiency etc. are accepted too\n"
        "  -h, --help          this help\n\n"
        "See docs/inspect.md; exit codes: docs/exit-codes.md.\n");
}

typedef struct inspect_opts {
    const char *image, *platform, *ci_config;
    const char *rule_override[ES_CI_NRULES]; /* from the command line, over the file */
    int json, ci, top;
} inspect_opts;

static int parse_top(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < 1 || v > 100000) return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, inspect_opts *o, int *done)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'},
        {"top", required_argument, 0, 't'},
        {"platform", required_argument, 0, 'p'},
        {"ci", no_argument, 0, 'c'},
        {"ci-config", required_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},
        {"lowest-efficiency", required_argument, 0, 1000 + ES_CI_LOWEST_EFFICIENCY},
        {"lowestEfficiency", required_argument, 0, 1000 + ES_CI_LOWEST_EFFICIENCY},
        {"highest-wasted-bytes", required_argument, 0, 1000 + ES_CI_HIGHEST_WASTED_BYTES},
        {"highestWastedBytes", required_argument, 0, 1000 + ES_CI_HIGHEST_WASTED_BYTES},
        {"highest-user-wasted-percent", required_argument, 0,
         1000 + ES_CI_HIGHEST_USER_WASTED_PERCENT},
        {"highestUserWastedPercent", required_argument, 0,
         1000 + ES_CI_HIGHEST_USER_WASTED_PERCENT},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->top = 10;
    *done = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            o->json = 1;
            break;
        case 't':
            if (parse_top(optarg, &o->top) != 0)
                return cli_usage_error("inspect", "--top: want a number from 1 to 100000, not '%s'",
                                       optarg);
            break;
        case 'p':
            o->platform = optarg;
            break;
        case 'c':
            o->ci = 1;
            break;
        case 'C':
            o->ci = 1, o->ci_config = optarg;
            break;
        case 1000 + ES_CI_LOWEST_EFFICIENCY:
        case 1000 + ES_CI_HIGHEST_WASTED_BYTES:
        case 1000 + ES_CI_HIGHEST_USER_WASTED_PERCENT:
            if (strlen(optarg) >= sizeof((es_ci_rule *)0)->value)
                return cli_usage_error("inspect", "rule value too long: '%s'", optarg);
            o->rule_override[c - 1000] = optarg;
            o->ci = 1;
            break;
        case 'h':
            inspect_help(stdout);
            *done = 1;
            return ES_OK;
        default:
            return cli_usage_error("inspect", "unknown option");
        }
    }
    if (argc - optind != 1) return cli_usage_error("inspect", "want exactly one IMAGE");
    o->image = argv[optind];
    return ES_OK;
}

/* ------------------------------------------------------------------ human output helpers */

static const char *hb(long long n, char *buf)
{
    cli_human_bytes(n, buf, 32);
    return buf;
}

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* created_by shortened for one table line: the "#(nop)" shell prefix dropped, whitespace folded. */
static void short_created_by(const char *s, char *out, size_t len)
{
    static const char *const prefixes[] = {"/bin/sh -c #(nop) ", "/bin/sh -c ", NULL};
    for (const char *const *p = prefixes; *p; p++)
        if (!strncmp(s, *p, strlen(*p))) {
            s += strlen(*p);
            break;
        }
    size_t j = 0;
    int space = 0;
    for (; *s && j + 4 < len; s++) {
        int ws = *s == ' ' || *s == '\t' || *s == '\n';
        if (ws && (space || j == 0)) continue;
        space = ws;
        out[j++] = ws ? ' ' : *s;
    }
    if (*s) memcpy(out + j, "...", 3), j += 3;
    out[j] = 0;
}

static void print_layers(const json_t *r)
{
    char a[32], b[32], c[32];
    printf("%-5s %10s %10s %11s %7s  %s\n", "LAYER", "SIZE", "TAR", "COMPRESSED", "FILES",
           "CREATED BY");
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(r, "layers"), i, l)
    {
        char cb[64];
        short_created_by(json_is_string(json_object_get(l, "created_by")) ? jstr(l, "created_by")
                                                                          : "(missing)",
                         cb, sizeof cb);
        printf("%-5zu %10s %10s %11s %7lld  %s\n", i + 1, hb(jint(l, "size"), a),
               hb(jint(l, "tar_size"), b), hb(jint(l, "compressed_size"), c), jint(l, "files"), cb);
    }
    const json_t *t = json_object_get(r, "totals");
    printf("%-5s %10s %10s %11s %7lld\n", "TOTAL", hb(jint(t, "size"), a),
           hb(jint(t, "tar_size"), b), hb(jint(t, "compressed_size"), c), jint(t, "files"));
    printf("Final tree: %lld files, %s, %lld directories, %lld links\n", jint(t, "final_files"),
           hb(jint(t, "final_size"), a), jint(t, "final_dirs"), jint(t, "final_links"));
}

static void print_waste(const json_t *r)
{
    const json_t *w = json_object_get(r, "waste");
    const json_t *uwp = json_object_get(w, "user_wasted_percent");
    char a[32], b[32], pct[32];
    if (json_is_real(uwp))
        snprintf(pct, sizeof pct, "%.2f %%", json_real_value(uwp) * 100);
    else
        snprintf(pct, sizeof pct, "%s", jint(w, "wasted_bytes") ? "inf" : "n/a");
    printf("\nWaste (as dive computes it): efficiency %.2f %%, wasted %s, user wasted %s\n",
           json_real_value(json_object_get(w, "efficiency")) * 100, hb(jint(w, "wasted_bytes"), a),
           pct);
    printf("Reclaimable (each hidden byte once, incl. deleted dirs and opaque whiteouts): %s\n",
           hb(jint(w, "reclaimable_bytes"), b));
    const json_t *ine = json_object_get(w, "inefficient_files");
    if (json_array_size(ine)) {
        printf("  %5s %10s  %s\n", "COUNT", "WASTED", "PATH (in 2+ layers)");
        size_t i;
        json_t *f;
        json_array_foreach(ine, i, f) printf("  %5lld %10s  %s\n", jint(f, "count"),
                                             hb(jint(f, "wasted_bytes"), a), jstr(f, "path"));
    }
}

static void print_largest(const json_t *r)
{
    char a[32];
    size_t i;
    json_t *f;
    printf("\nLargest files:%s\n",
           json_array_size(json_object_get(r, "largest_files")) ? "" : " none");
    json_array_foreach(json_object_get(r, "largest_files"), i, f)
        printf("  %10s  %s  (layer %lld)\n", hb(jint(f, "size"), a), jstr(f, "path"),
               jint(f, "layer") + 1);
    printf("Largest directories:%s\n",
           json_array_size(json_object_get(r, "largest_dirs")) ? "" : " none");
    json_array_foreach(json_object_get(r, "largest_dirs"), i, f) printf(
        "  %10s  %s  (%lld files)\n", hb(jint(f, "size"), a), jstr(f, "path"), jint(f, "files"));
}

static void print_packages_elf(const json_t *r)
{
    char a[32];
    const json_t *p = json_object_get(r, "packages"), *e = json_object_get(r, "elf");
    printf("\nPackages: ");
    if (!jint(p, "count"))
        printf("none found (no dpkg or apk database)\n");
    else {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(p, "managers"), i, m)
            printf("%s%s", i ? "+" : "", json_string_value(m));
        printf(", %lld packages, %s installed\n", jint(p, "count"),
               hb(jint(p, "installed_size"), a));
    }
    printf("ELF files: %lld (%s)", jint(e, "count"), hb(jint(e, "size"), a));
    const char *k;
    json_t *v;
    const char *sep = ": ";
    json_object_foreach(json_object_get(e, "linking"), k, v)
    {
        printf("%s%lld %s", sep, (long long)json_integer_value(v), k);
        sep = ", ";
    }
    printf("; %lld stripped, %lld not stripped\n", jint(e, "stripped"), jint(e, "not_stripped"));
    json_object_foreach(json_object_get(e, "interpreters"), k, v)
        printf("  interpreter %s: %lld files\n", k, (long long)json_integer_value(v));
}

/* One line per attack-surface list, at most `top` paths shown. */
static void print_paths(const char *label, const json_t *arr, int top)
{
    printf("  %-16s", label);
    if (!json_array_size(arr)) {
        printf("none\n");
        return;
    }
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        if ((int)i >= top) {
            printf(" (+%zu more)", json_array_size(arr) - i);
            break;
        }
        printf("%s%s", i ? ", " : "", jstr(x, "path"));
        if (json_object_get(x, "text"))
            printf(" %s", jstr(x, "text"));
        else if (json_object_get(x, "target") && !strcmp(jstr(x, "type"), "symlink"))
            printf(" -> %s", jstr(x, "target"));
    }
    printf("\n");
}

static void print_attack_surface(const json_t *r, int top)
{
    const json_t *s = json_object_get(r, "attack_surface");
    printf("\nAttack surface:\n");
    const char *user = jstr(s, "user");
    printf("  %-16s%s%s\n", "user", *user ? user : "(empty)",
           json_is_true(json_object_get(s, "runs_as_root")) ? " -> runs as root" : " (not root)");
    printf("  %-16s", "exposed ports");
    size_t i;
    json_t *x;
    if (!json_array_size(json_object_get(s, "exposed_ports"))) printf("none");
    json_array_foreach(json_object_get(s, "exposed_ports"), i, x)
        printf("%s%s", i ? ", " : "", json_string_value(x));
    printf("\n");
    print_paths("shells", json_object_get(s, "shells"), top);
    print_paths("package mgrs", json_object_get(s, "package_managers"), top);
    print_paths("setuid", json_object_get(s, "setuid"), top);
    print_paths("setgid", json_object_get(s, "setgid"), top);
    print_paths("world-writable", json_object_get(s, "world_writable"), top);
    print_paths("sticky ww dirs", json_object_get(s, "world_writable_sticky_dirs"), top);
    print_paths("capabilities", json_object_get(s, "capabilities"), top);
}

static void print_human(const json_t *r, int top)
{
    const json_t *img = json_object_get(r, "image");
    printf("Image: %s:%s  %s/%s%s%s  manifest %.19s\n", jstr(img, "transport"),
           jstr(img, "reference"), jstr(img, "os"), jstr(img, "architecture"),
           json_is_string(json_object_get(img, "variant")) ? "/" : "", jstr(img, "variant"),
           jstr(img, "manifest_digest"));
    printf("\n");
    print_layers(r);
    print_waste(r);
    print_largest(r);
    print_packages_elf(r);
    print_attack_surface(r, top);
}

/* ------------------------------------------------------------------ CI */

static const char *status_name(es_ci_status s)
{
    return s == ES_CI_PASS ? "PASS" : s == ES_CI_FAIL ? "FAIL" : "SKIP";
}

/* Defaults, then the file (--ci-config, else ./.dive-ci when present), then command-line rules. */
static int load_ci_config(const inspect_opts *o, es_ci_config *c, const char **used, es_error *err)
{
    es_ci_config_default(c);
    *used = NULL;
    if (o->ci_config)
        *used = o->ci_config;
    else if (access(".dive-ci", R_OK) == 0)
        *used = ".dive-ci";
    if (*used && es_ci_config_load(c, *used, err) != 0) return -1;
    int overridden = 0;
    for (int i = 0; i < ES_CI_NRULES; i++) {
        if (!o->rule_override[i]) continue;
        snprintf(c->rules[i].value, sizeof c->rules[i].value, "%s", o->rule_override[i]);
        overridden = 1;
    }
    if (!overridden) return 0;
    if (es_ci_config_validate(c, "command line", err) != 0) {
        err->code = ES_EUSAGE;
        return -1;
    }
    return 0;
}

static json_t *ci_json(const char *used, int pass, const es_ci_result *res)
{
    json_t *o = json_object(), *rules = json_array();
    json_object_set_new(o, "config", used ? json_string(used) : json_null());
    json_object_set_new(o, "pass", json_boolean(pass));
    for (int i = 0; i < ES_CI_NRULES; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "rule", json_string(res[i].key));
        json_object_set_new(r, "status", json_string(status_name(res[i].status)));
        json_object_set_new(r, "threshold", json_string(res[i].value));
        json_object_set_new(r, "message", json_string(res[i].message));
        json_array_append_new(rules, r);
    }
    json_object_set_new(o, "rules", rules);
    return o;
}

static void print_ci(const char *used, int pass, const es_ci_result *res)
{
    printf("\nCI gates (%s):\n", used ? used : "dive's defaults");
    int n[3] = {0, 0, 0};
    for (int i = 0; i < ES_CI_NRULES; i++) {
        n[res[i].status]++;
        printf("  %s  %-26s %-10s %s\n", status_name(res[i].status), res[i].key, res[i].value,
               res[i].message);
    }
    printf("Result: %s (%d passed, %d failed, %d skipped)\n", pass ? "PASS" : "FAIL", n[ES_CI_PASS],
           n[ES_CI_FAIL], n[ES_CI_SKIP]);
}

/* ------------------------------------------------------------------ command */

int cmd_inspect(int argc, char **argv)
{
    inspect_opts o;
    int done;
    int rc = parse_args(argc, argv, &o, &done);
    if (rc != ES_OK || done) return rc;
    if (o.json) es_progress_enable(0);
    es_error err = {0};
    es_ci_config ci;
    const char *ci_used = NULL;
    if (o.ci && load_ci_config(&o, &ci, &ci_used, &err) != 0) return cli_fail("inspect", &err);
    es_open_opts oo = {.platform = o.platform};
    es_image *img = NULL;
    if (es_image_open(o.image, &oo, &img, &err) != 0) return cli_fail("inspect", &err);
    json_t *report = NULL;
    es_waste_metrics m;
    es_inspect_opts io = {.top_n = o.top};
    rc = es_inspect_image(img, &io, &report, &m, &err);
    es_image_close(img);
    if (rc != 0) return cli_fail("inspect", &err);
    int pass = 1;
    es_ci_result res[ES_CI_NRULES];
    if (o.ci) {
        pass = es_ci_evaluate(&ci, &m, res);
        json_object_set_new(report, "ci", ci_json(ci_used, pass, res));
    }
    if (o.json) {
        if (json_dumpf(report, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) !=
            0) {
            json_decref(report);
            es_err(&err, ES_EIO, "writing JSON to stdout failed");
            return cli_fail("inspect", &err);
        }
        printf("\n");
    } else {
        print_human(report, o.top);
        if (o.ci) print_ci(ci_used, pass, res);
    }
    json_decref(report);
    if (fflush(stdout) != 0) {
        es_err_sys(&err, ES_EIO, "writing to stdout");
        return cli_fail("inspect", &err);
    }
    return pass ? ES_OK : ES_EGATE;
}
