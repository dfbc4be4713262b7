/*
 * edgeslim: command dispatch. Each command lives in its own file (inspect.c, unpack.c, ...) and
 * parses its own options; this file only finds it. Commands are weak symbols so a build without
 * one says so instead of failing to link.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/progress.h"

#ifndef ES_VERSION
#define ES_VERSION "0.1.0"
#endif

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"inspect", cmd_inspect, "layers, waste, packages, ELF files and attack surface of an image"},
    {"unpack", cmd_unpack, "apply an image's layers into a root filesystem directory"},
    {"import", cmd_import, "make a one-layer image from a root filesystem directory or tar"},
    {"convert", cmd_convert, "copy an image to another transport or layer compression"},
    {"run", cmd_run, "run an image in edgeslim's own sandbox (no daemon, no cgroups)"},
    {"slim", cmd_slim, "minify an image, verify it against the original, harden it"},
    {"pack", cmd_pack, "pack static binaries into a scratch image"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: edgeslim COMMAND [OPTIONS] ...\n\n"
               "A daemonless toolkit to inspect, slim, verify and pack container images.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nImages: docker-archive:PATH, oci:DIR[:REF], oci-archive:PATH[:REF], or a bare path.\n"
               "Run 'edgeslim COMMAND --help' for a command's options. Exit codes: see docs/exit-codes.md.\n");
}

int cli_fail(const char *cmd, const es_error *err)
{
    fprintf(stderr, "edgeslim %s: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
    return err && err->code ? err->code : ES_EFAIL;
}

void cli_usage_print(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "edgeslim %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'edgeslim %s --help'.\n", cmd);
}

json_t *cli_command_array(const char *s)
{
    if (*s == '[') {
        json_t *j = json_loads(s, 0, NULL);
        size_t i;
        json_t *v;
        if (!json_is_array(j)) goto bad;
        json_array_foreach(j, i, v) if (!json_is_string(v)) goto bad;
        return j;
    bad:
        json_decref(j);
        return NULL;
    }
    json_t *arr = json_array();
    char *copy = es_xstrdup(s), *save = NULL;
    for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        json_array_append_new(arr, json_string(t));
    free(copy);
    return arr;
}

void cli_human_bytes(long long n, char *buf, unsigned len)
{
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int i = 0;
    while ((v >= 1000 || v <= -1000) && i < 4) v /= 1000, i++;
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? ES_EUSAGE : ES_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("edgeslim %s\n", ES_VERSION);
        return ES_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (!commands[i].fn) {
            fprintf(stderr, "edgeslim: command '%s' is not part of this build\n", argv[1]);
            return ES_EUNSUPPORTED;
        }
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "edgeslim: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return ES_EUSAGE;
}
