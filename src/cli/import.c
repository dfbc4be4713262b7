/*
 * edgeslim import ROOTFS_DIR|TAR -o IMAGE: a one-layer image from a root filesystem.
 * A directory is walked in sorted order by es_layer_from_dir; a tar (plain, gzip or zstd) is
 * streamed through the layer writer in its own entry order, each entry checked like any layer
 * entry (no "..", limits) and its metadata normalised. The config is built from the options
 * and is deterministic: created = SOURCE_DATE_EPOCH or 1970-01-01T00:00:00Z, one history entry
 * "edgeslim import". The layer file lives in a temporary directory beside the output, removed
 * at the end; es_image_write writes the image atomically.
 */
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fs/apply.h"
#include "layer/layer_writer.h"
#include "oci/image.h"
#include "oci/image_writer.h"
#include "util/progress.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void import_help(FILE *f)
{
    fprintf(f, "Usage: edgeslim import ROOTFS_DIR|TAR -o IMAGE [OPTIONS]\n\n"
               "Make a one-layer image from a root filesystem directory or a tar (plain, gzip, zstd).\n"
               "The output is deterministic: the same input and options give the same digests.\n\n"
               "  -o, --output IMAGE      oci:DIR[:REF], oci-archive:PATH[:REF], docker-archive:PATH[:REPO:TAG]\n"
               "  --entrypoint CMD        JSON array ('[\"/bin/sh\",\"-c\",\"x\"]') or a string split on spaces\n"
               "  --cmd CMD               same forms as --entrypoint\n"
               "  --env K=V               environment (repeatable; PATH defaults to the usual one)\n"
               "  --workdir DIR           working directory\n"
               "  --user USER[:GROUP]     user to run as\n"
               "  --port P[/tcp|/udp]     exposed port (repeatable)\n"
               "  --label K=V             label (repeatable)\n"
               "  --compress C            gzip (default), zstd or none\n"
               "  --platform OS/ARCH[/V]  platform written to the config (default: this host)\n"
               "  --json                  print the result as JSON on stdout\n"
               "  -h, --help              this help\n\n"
               "See docs/import.md; exit codes: docs/exit-codes.md.\n");
}

typedef struct {
    const char *input, *output, *workdir, *user, *platform;
    json_t *entrypoint, *cmd, *env, *ports, *labels;
    es_compression compression;
    int json;
} import_args;

static void args_free(import_args *a)
{
    json_decref(a->entrypoint);
    json_decref(a->cmd);
    json_decref(a->env);
    json_decref(a->ports);
    json_decref(a->labels);
}

static int add_port(import_args *a, const char *p)
{
    char *end;
    long n = strtol(p, &end, 10);
    if (end == p || n < 1 || n > 65535 || (*end && strcmp(end, "/tcp") && strcmp(end, "/udp"))) return -1;
    char key[32];
    snprintf(key, sizeof key, "%ld%s", n, *end ? end : "/tcp");
    json_object_set_new(a->ports, key, json_object());
    return 0;
}

static int add_label(import_args *a, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return -1;
    char *k = strndup(kv, (size_t)(eq - kv));
    json_object_set_new(a->labels, k, json_string(eq + 1)); /* copies the key */
    free(k); /* explicit rather than es_cleanup_free: clang-14's analyzer does not model cleanup() */
    return 0;
}

static int parse_args(int argc, char **argv, import_args *a, int *done)
{
    static const struct option longopts[] = {
        {"output", required_argument, 0, 'o'},   {"entrypoint", required_argument, 0, 'E'},
        {"cmd", required_argument, 0, 'C'},      {"env", required_argument, 0, 'e'},
        {"workdir", required_argument, 0, 'w'},  {"user", required_argument, 0, 'u'},
        {"port", required_argument, 0, 'P'},     {"label", required_argument, 0, 'l'},
        {"compress", required_argument, 0, 'c'}, {"platform", required_argument, 0, 'p'},
        {"json", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->compression = ES_COMP_GZIP;
    a->env = json_array();
    a->ports = json_object();
    a->labels = json_object();
    *done = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': a->output = optarg; break;
        case 'E':
            json_decref(a->entrypoint);
            if (!(a->entrypoint = cli_command_array(optarg)))
                return cli_usage_error("import", "--entrypoint: not a JSON array of strings: %s", optarg);
            break;
        case 'C':
            json_decref(a->cmd);
            if (!(a->cmd = cli_command_array(optarg)))
                return cli_usage_error("import", "--cmd: not a JSON array of strings: %s", optarg);
            break;
        case 'e':
            if (!strchr(optarg, '=') || *optarg == '=') return cli_usage_error("import", "--env: want K=V, not '%s'", optarg);
            json_array_append_new(a->env, json_string(optarg));
            break;
        case 'w': a->workdir = optarg; break;
        case 'u': a->user = optarg; break;
        case 'P':
            if (add_port(a, optarg) < 0) return cli_usage_error("import", "--port: want P[/tcp|/udp], not '%s'", optarg);
            break;
        case 'l':
            if (add_label(a, optarg) < 0) return cli_usage_error("import", "--label: want K=V, not '%s'", optarg);
            break;
        case 'c':
            if (es_compression_parse(optarg, &a->compression) < 0)
                return cli_usage_error("import", "--compress: want gzip, zstd or none, not '%s'", optarg);
            break;
        case 'p': a->platform = optarg; break;
        case 'j': a->json = 1; break;
        case 'h':
            import_help(stdout);
            *done = 1;
            return ES_OK;
        default: return cli_usage_error("import", "unknown option");
        }
    }
    if (argc - optind != 1) return cli_usage_error("import", "want one ROOTFS_DIR or TAR");
    if (!a->output) return cli_usage_error("import", "-o IMAGE is required");
    a->input = argv[optind];
    return ES_OK;
}

static int has_path_env(json_t *env)
{
    size_t i;
    json_t *v;
    json_array_foreach(env, i, v) if (strncmp(json_string_value(v), "PATH=", 5) == 0) return 1;
    return 0;
}

static void created_string(char *buf, size_t n)
{
    int64_t sde = es_source_date_epoch();
    time_t t = sde >= 0 ? (time_t)sde : 0;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int parse_platform(const char *p, char os[32], char arch[32], char variant[32])
{
    es_host_platform(os, arch, variant);
    if (!p) return 0;
    char o[32] = "", a[32] = "", v[32] = "";
    int n = sscanf(p, "%31[^/]/%31[^/]/%31s", o, a, v);
    if (n < 2) return -1;
    snprintf(os, 32, "%s", o);
    snprintf(arch, 32, "%s", a);
    snprintf(variant, 32, "%s", n == 3 ? v : "");
    return 0;
}

static json_t *build_config(const import_args *a, const char *os, const char *arch, const char *variant)
{
    char created[64];
    created_string(created, sizeof created);
    json_t *cc = json_object();
    json_t *env = json_deep_copy(a->env);
    if (!has_path_env(env)) json_array_insert_new(env, 0, json_string(DEFAULT_PATH));
    json_object_set_new(cc, "Env", env);
    if (a->entrypoint) json_object_set(cc, "Entrypoint", a->entrypoint);
    if (a->cmd) json_object_set(cc, "Cmd", a->cmd);
    if (a->workdir) json_object_set_new(cc, "WorkingDir", json_string(a->workdir));
    if (a->user) json_object_set_new(cc, "User", json_string(a->user));
    if (json_object_size(a->ports)) json_object_set(cc, "ExposedPorts", a->ports);
    if (json_object_size(a->labels)) json_object_set(cc, "Labels", a->labels);
    json_t *c = json_object();
    json_object_set_new(c, "architecture", json_string(arch));
    json_object_set_new(c, "os", json_string(os));
    if (*variant) json_object_set_new(c, "variant", json_string(variant));
    json_object_set_new(c, "created", json_string(created));
    json_object_set_new(c, "config", cc);
    json_t *h = json_object();
    json_object_set_new(h, "created", json_string(created));
    json_object_set_new(h, "created_by", json_string("edgeslim import"));
    json_t *hist = json_array();
    json_array_append_new(hist, h);
    json_object_set_new(c, "history", hist);
    json_t *rootfs = json_object();
    json_object_set_new(rootfs, "type", json_string("layers"));
    json_object_set_new(rootfs, "diff_ids", json_array());
    json_object_set_new(c, "rootfs", rootfs);
    return c;
}

/* ---------------------------------------------------------------- tar input */

static ssize_t entry_data_read(es_reader *r, void *buf, size_t n, es_error *err)
{
    return es_layer_stream_read(r->ctx, buf, n, err);
}

static int layer_from_tar(const char *tar, const es_write_opts *wo, const char *out, es_layer_blob *blob,
                          es_progress *prog, es_error *err)
{
    es_reader *r = es_reader_file(tar, err);
    if (!r) return -1;
    es_layer_stream *s;
    es_layer_expect exp = {.name = tar, .digest = NULL, .size = -1, .diff_id = NULL};
    if (es_layer_stream_open(r, &exp, NULL, &s, err) < 0) return -1;
    es_layer_writer *w;
    if (es_layer_writer_open(out, wo, &w, err) < 0) {
        es_layer_stream_free(s);
        return -1;
    }
    es_reader data = {.read = entry_data_read, .close = NULL, .ctx = s};
    struct archive_entry *e;
    int rc;
    int64_t last = 0;
    while ((rc = es_layer_stream_next(s, &e, err)) > 0) {
        if (es_layer_writer_add(w, e, &data, err) < 0) {
            rc = -1;
            break;
        }
        int64_t now = es_layer_stream_consumed(s);
        es_progress_add(prog, now - last);
        last = now;
    }
    if (rc == 0) rc = es_layer_stream_finish(s, NULL, err);
    es_layer_stream_free(s);
    if (rc < 0) {
        es_layer_writer_abort(w);
        return -1;
    }
    return es_layer_writer_finish(w, blob, err);
}

/* ---------------------------------------------------------------- main */

static char *make_work_dir(const char *dst, es_error *err)
{
    es_image_ref r;
    if (es_ref_parse(dst, &r, err) < 0) return NULL;
    char *copy = es_xstrdup(r.path);
    char *dir = es_xasprintf("%s/.edgeslim-import-XXXXXX", dirname(copy));
    free(copy);
    es_ref_free(&r);
    if (!mkdtemp(dir)) {
        es_err_sys(err, ES_EIO, "%s: cannot create a temporary directory", dir);
        free(dir);
        return NULL;
    }
    return dir;
}

/* The walk must not see its own output (the layer being written, the image): refuse an output
 * whose directory lies inside ROOTFS_DIR. */
static int check_output_outside(const char *input, const char *work, es_error *err)
{
    char in[PATH_MAX], out[PATH_MAX];
    if (!realpath(input, in) || !realpath(work, out)) return 0;
    size_t n = strlen(in);
    if (strcmp(in, "/") == 0 || (strncmp(out, in, n) == 0 && out[n] == '/'))
        return es_err(err, ES_EUSAGE, "%s: the output must not be inside the directory being imported", input);
    return 0;
}

static void print_result(const import_args *a, const es_layer_blob *b, const es_write_result *res)
{
    if (a->json) {
        json_t *j = json_object();
        json_object_set_new(j, "image", json_string(a->output));
        json_object_set_new(j, "manifest_digest", json_string(res->manifest_digest.s));
        json_object_set_new(j, "config_digest", json_string(res->config_digest.s));
        json_t *l = json_object();
        json_object_set_new(l, "digest", json_string(b->digest.s));
        json_object_set_new(l, "diff_id", json_string(b->diff_id.s));
        json_object_set_new(l, "size", json_integer(b->size));
        json_object_set_new(l, "compression", json_string(es_compression_name(b->compression)));
        json_object_set_new(j, "layer", l);
        char *s = es_json_dump_stable(j);
        printf("%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    char size[32];
    cli_human_bytes(b->size, size, sizeof size);
    printf("imported %s as %s\n  manifest %s\n  config   %s\n  layer    %s (%s, %s)\n", a->input, a->output,
           res->manifest_digest.s, res->config_digest.s, b->digest.s, size, es_compression_name(b->compression));
}

static int run_import(const import_args *a, es_error *err)
{
    char os[32], arch[32], variant[32];
    if (parse_platform(a->platform, os, arch, variant) < 0)
        return es_err(err, ES_EUSAGE, "--platform: want OS/ARCH[/VARIANT], not '%s'", a->platform);
    struct stat st;
    if (stat(a->input, &st) < 0) return es_err_sys(err, ES_EIO, "%s: cannot read input", a->input);
    es_cleanup_free char *work = make_work_dir(a->output, err);
    if (!work) return -1;
    if (S_ISDIR(st.st_mode) && check_output_outside(a->input, work, err) < 0) {
        rmdir(work);
        return -1;
    }
    es_cleanup_free char *layer_path = es_xasprintf("%s/layer", work);
    es_write_opts wo;
    es_write_opts_default(&wo);
    wo.compression = a->compression;
    es_layer_blob blob;
    es_progress *prog = es_progress_new("import", S_ISDIR(st.st_mode) ? 0 : st.st_size);
    int r = S_ISDIR(st.st_mode) ? es_layer_from_dir(a->input, &wo, NULL, NULL, layer_path, &blob, prog, err)
                                : layer_from_tar(a->input, &wo, layer_path, &blob, prog, err);
    es_progress_done(prog);
    es_write_result res;
    if (r == 0) {
        json_t *config = build_config(a, os, arch, variant);
        es_image_out out = {.config = config, .n_layers = 1, .layers = &blob, .os = os, .arch = arch,
                            .variant = *variant ? variant : NULL, .annotations = NULL};
        r = es_image_write(&out, a->output, &res, err);
        json_decref(config);
    }
    unlink(layer_path);
    rmdir(work);
    if (r == 0) print_result(a, &blob, &res);
    return r;
}

int cmd_import(int argc, char **argv)
{
    import_args a;
    int done;
    int rc = parse_args(argc, argv, &a, &done);
    if (rc == ES_OK && !done) {
        if (a.json) es_progress_enable(0);
        es_error err = {0};
        rc = run_import(&a, &err) == 0 ? ES_OK : cli_fail("import", &err);
    }
    args_free(&a);
    return rc;
}
