/*
 * edgeslim convert SRC DST: copies an image to another transport and/or layer compression.
 * Each layer is either copied as stored (when its compression already is the requested one; the
 * copy is verified against the manifest's digest) or re-encoded by es_layer_recompress (the tar
 * bytes, and so the diff_id and the config, are unchanged). Layer files go to a temporary
 * directory beside DST that is removed at the end; es_image_write then writes DST atomically.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "layer/layer_reader.h"
#include "layer/layer_writer.h"
#include "oci/image.h"
#include "oci/image_writer.h"
#include "util/progress.h"

static void convert_help(FILE *f)
{
    fprintf(f, "Usage: edgeslim convert SRC DST [--compress gzip|zstd|none] [--platform OS/ARCH[/VARIANT]] [--json]\n\n"
               "Copy an image to another transport or layer compression. Digests are verified while\n"
               "reading; the image config (and so the image ID) is kept.\n\n"
               "  SRC, DST            docker-archive:PATH, oci:DIR[:REF], oci-archive:PATH[:REF]\n"
               "                      (SRC may be a bare path; it is auto-detected)\n"
               "  --compress C        layer compression of DST: gzip (default), zstd or none;\n"
               "                      layers already in C are copied unchanged\n"
               "  --platform P        pick P from a multi-platform SRC (default: this host)\n"
               "  --json              print {manifest_digest, config_digest, layers} on stdout\n"
               "  -h, --help          this help\n\n"
               "See docs/convert.md; exit codes: docs/exit-codes.md.\n");
}

typedef struct convert_opts {
    const char *src, *dst, *platform;
    es_compression compression;
    int json;
} convert_opts;

static int parse_args(int argc, char **argv, convert_opts *o, int *done)
{
    static const struct option longopts[] = {
        {"compress", required_argument, 0, 'c'}, {"platform", required_argument, 0, 'p'},
        {"json", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->compression = ES_COMP_GZIP;
    *done = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (es_compression_parse(optarg, &o->compression) < 0)
                return cli_usage_error("convert", "--compress: want gzip, zstd or none, not '%s'", optarg);
            break;
        case 'p': o->platform = optarg; break;
        case 'j': o->json = 1; break;
        case 'h':
            convert_help(stdout);
            *done = 1;
            return ES_OK;
        default: return cli_usage_error("convert", "unknown option");
        }
    }
    if (argc - optind != 2) return cli_usage_error("convert", "want SRC and DST");
    o->src = argv[optind];
    o->dst = argv[optind + 1];
    return ES_OK;
}

/* Temporary directory beside DST's path (so renames stay on one filesystem). */
static char *make_work_dir(const char *dst, es_error *err)
{
    es_image_ref r;
    if (es_ref_parse(dst, &r, err) < 0) return NULL;
    char *copy = es_xstrdup(r.path);
    char *dir = es_xasprintf("%s/.edgeslim-convert-XXXXXX", dirname(copy));
    free(copy);
    es_ref_free(&r);
    if (!mkdtemp(dir)) {
        es_err_sys(err, ES_EIO, "%s: cannot create a temporary directory", dir);
        free(dir);
        return NULL;
    }
    return dir;
}

/* A reader that writes every byte it passes on into fd: copying a layer while the layer stream
 * pulls it through decompression, diff_id and bomb checks, in one pass. */
typedef struct tee_ctx {
    es_reader *inner;
    int fd;
    const char *path;
    es_progress *prog;
} tee_ctx;

static ssize_t tee_read(es_reader *r, void *buf, size_t n, es_error *err)
{
    tee_ctx *t = r->ctx;
    ssize_t k = es_reader_read(t->inner, buf, n, err);
    for (ssize_t off = 0; k > 0 && off < k;) {
        ssize_t w = write(t->fd, (char *)buf + off, (size_t)(k - off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return es_err_sys(err, ES_EIO, "%s: write", t->path);
        off += w;
    }
    if (k > 0) es_progress_add(t->prog, k);
    return k;
}

static void tee_close(es_reader *r)
{
    tee_ctx *t = r->ctx;
    es_reader_free(t->inner);
    free(t);
}

/* Copies layer i as stored into path, verifying blob digest and size, the diff_id of its
 * decompressed tar and the decompression-bomb limits on the way. */
static int copy_blob(es_image *img, size_t i, const char *src, const char *path, es_layer_blob *b,
                     es_progress *prog, es_error *err)
{
    const es_layer_info *l = &img->layers[i];
    es_reader *blob;
    if (es_image_open_layer_blob(img, i, &blob, err) < 0) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        es_reader_free(blob);
        return es_err_sys(err, ES_EIO, "%s: cannot create", path);
    }
    tee_ctx *t = es_xcalloc(1, sizeof *t);
    *t = (tee_ctx){.inner = blob, .fd = fd, .path = path, .prog = prog};
    es_reader *tee = es_xcalloc(1, sizeof *tee);
    *tee = (es_reader){.read = tee_read, .close = tee_close, .ctx = t};
    char name[1024];
    snprintf(name, sizeof name, "%s: layer %zu (%.19s)", src, i, l->digest.s);
    es_layer_expect exp = {.name = name, .digest = NULL, .size = -1, .diff_id = l->diff_id.s};
    es_layer_stream *s = NULL;
    int rc = es_layer_stream_open(tee, &exp, NULL, &s, err);
    if (rc == 0) rc = es_layer_stream_finish(s, NULL, err);
    es_layer_stream_free(s);
    if (close(fd) < 0 && rc == 0) rc = es_err_sys(err, ES_EIO, "%s: write", path);
    if (rc < 0) return -1;
    b->path = path;
    b->digest = l->digest;
    b->size = l->size;
    b->diff_id = l->diff_id;
    b->compression = l->compression;
    return 0;
}

static int convert_layer(es_image *img, size_t i, const convert_opts *o, const char *path, es_layer_blob *b,
                         es_progress *prog, es_error *err)
{
    const es_layer_info *l = &img->layers[i];
    if (l->compression == ES_COMP_UNKNOWN)
        return es_err(err, ES_EFORMAT, "%s: layer %zu has media type \"%s\", which edgeslim cannot convert", o->src,
                      i, l->media_type);
    if (l->compression == o->compression) return copy_blob(img, i, o->src, path, b, prog, err);
    es_reader *r;
    if (es_image_open_layer_blob(img, i, &r, err) < 0) return -1;
    char name[1024];
    snprintf(name, sizeof name, "%s: layer %zu (%.19s)", o->src, i, l->digest.s);
    es_layer_expect exp = {.name = name, .digest = NULL, .size = -1, .diff_id = l->diff_id.s};
    es_write_opts wo;
    es_write_opts_default(&wo);
    wo.compression = o->compression;
    return es_layer_recompress(r, &exp, &wo, path, b, prog, err);
}

static void print_json(const es_image *img, const es_layer_blob *blobs, const es_write_result *res)
{
    json_t *j = json_object();
    json_object_set_new(j, "manifest_digest", json_string(res->manifest_digest.s));
    json_object_set_new(j, "config_digest", json_string(res->config_digest.s));
    json_t *ls = json_array();
    for (size_t i = 0; i < img->n_layers; i++) {
        json_t *l = json_object();
        json_object_set_new(l, "digest", json_string(blobs[i].digest.s));
        json_object_set_new(l, "size", json_integer(blobs[i].size));
        json_object_set_new(l, "diff_id", json_string(blobs[i].diff_id.s));
        json_object_set_new(l, "compression", json_string(es_compression_name(blobs[i].compression)));
        json_object_set_new(l, "copied", json_boolean(img->layers[i].compression == blobs[i].compression));
        json_array_append_new(ls, l);
    }
    json_object_set_new(j, "layers", ls);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(j);
}

static void print_text(const es_image *img, const es_layer_blob *blobs, const es_write_result *res, const char *dst)
{
    for (size_t i = 0; i < img->n_layers; i++) {
        char sz[32];
        cli_human_bytes(blobs[i].size, sz, sizeof sz);
        printf("layer %zu  %s  %-4s  %9s  %s\n", i, blobs[i].digest.s, es_compression_name(blobs[i].compression), sz,
               img->layers[i].compression == blobs[i].compression ? "copied" : "recompressed");
    }
    printf("wrote %s\n  manifest %s\n  config   %s\n", dst, res->manifest_digest.s, res->config_digest.s);
}

static int run_convert(const convert_opts *o, es_error *err)
{
    es_open_opts oo = {.platform = o->platform};
    es_image *img = NULL;
    if (es_image_open(o->src, &oo, &img, err) < 0) return -1;
    char *work = make_work_dir(o->dst, err);
    if (!work) {
        es_image_close(img);
        return -1;
    }
    int64_t total = 0;
    for (size_t i = 0; i < img->n_layers; i++) total += img->layers[i].size;
    es_progress *prog = es_progress_new("convert", total);
    es_layer_blob *blobs = es_xcalloc(img->n_layers, sizeof *blobs);
    char **paths = es_xcalloc(img->n_layers, sizeof *paths);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < img->n_layers; i++) {
        paths[i] = es_xasprintf("%s/layer-%zu", work, i);
        rc = convert_layer(img, i, o, paths[i], &blobs[i], prog, err);
    }
    es_write_result res = {0};
    if (rc == 0) {
        es_progress_set_label(prog, "writing");
        es_image_out out = {.config = img->config, .n_layers = img->n_layers, .layers = blobs,
                            .config_raw = img->config_raw, .config_raw_len = img->config_raw_len};
        rc = es_image_write(&out, o->dst, &res, err);
    }
    es_progress_done(prog);
    if (rc == 0) {
        if (o->json) print_json(img, blobs, &res);
        else print_text(img, blobs, &res, o->dst);
    }
    for (size_t i = 0; i < img->n_layers; i++) {
        if (paths[i]) unlink(paths[i]);
        free(paths[i]);
    }
    rmdir(work);
    free(work);
    free(paths);
    free(blobs);
    es_image_close(img);
    return rc;
}

int cmd_convert(int argc, char **argv)
{
    convert_opts o;
    int done;
    int rc = parse_args(argc, argv, &o, &done);
    if (rc != ES_OK || done) return rc;
    if (o.json) es_progress_enable(0);
    es_error err = {0};
    if (run_convert(&o, &err) < 0) return cli_fail("convert", &err);
    return ES_OK;
}
