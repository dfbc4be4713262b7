/*
 * edgeslim unpack IMAGE DIR: applies every layer of IMAGE, verified, into a new root filesystem
 * at DIR (see fs/apply.h for the safety rules). Prints a one-line summary, or the statistics as
 * JSON with --json. DIR appears only when complete.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fs/apply.h"
#include "oci/image.h"
#include "oci/image_writer.h"
#include "util/progress.h"

static void unpack_help(FILE *f)
{
    fprintf(f, "Usage: edgeslim unpack IMAGE DIR [--platform OS/ARCH[/VARIANT]] [--allow-devices|--skip-devices] [--json]\n\n"
               "Apply all layers of IMAGE, in order and verified, into a new root filesystem DIR.\n"
               "Whiteouts are applied, nothing is written outside DIR, and DIR only appears when\n"
               "complete (it must not exist, or be empty).\n\n"
               "  IMAGE             docker-archive:PATH, oci:DIR[:REF], oci-archive:PATH[:REF] or a bare path\n"
               "  --platform P      pick P from a multi-platform image (default: this host)\n"
               "  --allow-devices   create device nodes (needs root); default: refuse them (exit 6)\n"
               "  --skip-devices    skip device nodes and count them\n"
               "  --json            print the statistics as JSON on stdout\n"
               "  -h, --help        this help\n\n"
               "See docs/unpack.md; exit codes: docs/exit-codes.md.\n");
}

typedef struct {
    const char *image, *dir, *platform;
    es_apply_opts apply;
    int json;
} unpack_args;

static int parse_args(int argc, char **argv, unpack_args *a, int *done)
{
    static const struct option longopts[] = {
        {"platform", required_argument, 0, 'p'}, {"allow-devices", no_argument, 0, 'a'},
        {"skip-devices", no_argument, 0, 's'},   {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    es_apply_opts_default(&a->apply);
    *done = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': a->platform = optarg; break;
        case 'a': a->apply.allow_devices = 1; break;
        case 's': a->apply.skip_devices = 1; break;
        case 'j': a->json = 1; break;
        case 'h':
            unpack_help(stdout);
            *done = 1;
            return ES_OK;
        default: return cli_usage_error("unpack", "unknown option");
        }
    }
    if (a->apply.allow_devices && a->apply.skip_devices)
        return cli_usage_error("unpack", "--allow-devices and --skip-devices exclude each other");
    if (argc - optind != 2) return cli_usage_error("unpack", "want IMAGE and DIR");
    a->image = argv[optind];
    a->dir = argv[optind + 1];
    return ES_OK;
}

static void print_summary(const unpack_args *a, const es_image *img, const es_apply_stats *st)
{
    if (a->json) {
        json_t *j = json_object();
        json_object_set_new(j, "image", json_string(a->image));
        json_object_set_new(j, "dir", json_string(a->dir));
        json_object_set_new(j, "manifest_digest", json_string(img->manifest_digest.s));
        json_object_set_new(j, "layers", json_integer((json_int_t)img->n_layers));
        json_object_set_new(j, "files", json_integer(st->files));
        json_object_set_new(j, "dirs", json_integer(st->dirs));
        json_object_set_new(j, "symlinks", json_integer(st->symlinks));
        json_object_set_new(j, "hardlinks", json_integer(st->hardlinks));
        json_object_set_new(j, "devices", json_integer(st->devices));
        json_object_set_new(j, "skipped_devices", json_integer(st->skipped_devices));
        json_object_set_new(j, "whiteouts", json_integer(st->whiteouts));
        json_object_set_new(j, "bytes", json_integer(st->bytes));
        char *s = es_json_dump_stable(j);
        printf("%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    char bytes[32];
    cli_human_bytes(st->bytes, bytes, sizeof bytes);
    printf("unpacked %s into %s: %zu layers, %lld files (%s), %lld directories, %lld symlinks, "
           "%lld hardlinks, %lld whiteouts applied",
           a->image, a->dir, img->n_layers, (long long)st->files, bytes, (long long)st->dirs,
           (long long)st->symlinks, (long long)st->hardlinks, (long long)st->whiteouts);
    if (st->devices) printf(", %lld device nodes and fifos", (long long)st->devices);
    if (st->skipped_devices) printf(", %lld device nodes skipped", (long long)st->skipped_devices);
    printf("\n");
}

int cmd_unpack(int argc, char **argv)
{
    unpack_args a;
    int done;
    int rc = parse_args(argc, argv, &a, &done);
    if (rc != ES_OK || done) return rc;
    if (a.json) es_progress_enable(0);
    es_error err = {0};
    es_image *img = NULL;
    es_open_opts oo = {.platform = a.platform, .limits = NULL};
    if (es_image_open(a.image, &oo, &img, &err) < 0) return cli_fail("unpack", &err);
    int64_t total = 0;
    for (size_t i = 0; i < img->n_layers; i++) total += img->layers[i].size;
    es_progress *prog = es_progress_new("unpack", total);
    es_apply_stats st = {0};
    int r = es_unpack_image(img, a.dir, &a.apply, &st, prog, &err);
    es_progress_done(prog);
    if (r == 0) print_summary(&a, img, &st);
    es_image_close(img);
    return r == 0 ? ES_OK : cli_fail("unpack", &err);
}
