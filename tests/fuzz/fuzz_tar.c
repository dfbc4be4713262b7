/*
 * libFuzzer target for the layer reader and the safe apply: the input is a layer blob (plain
 * tar, gzip or zstd — the reader sniffs it) streamed through es_layer_stream_open/next/read/
 * finish and es_apply_layer into a fresh directory under a private temporary root, which is
 * emptied after every run. Limits are tightened so a run stays small and fast; the reader runs
 * without its prefetch thread so runs are reproducible.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/apply.h"
#include "fs/fs_internal.h"
#include "layer/layer_reader.h"

static char base[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_base(void)
{
    es_remove_tree_at(AT_FDCWD, base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    setenv("ES_LAYER_THREADS", "1", 1);
    snprintf(base, sizeof base, "/tmp/es-fuzz-tar-XXXXXX");
    if (!mkdtemp(base)) abort();
    atexit(remove_base);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_limits lim = *es_limits_default();
    lim.max_entries = 1000;
    lim.max_layer_bytes = 16 << 20;
    lim.ratio_floor = 1 << 20;
    lim.max_ratio = 100;
    es_error err = {0};
    es_layer_expect exp = {"fuzz layer", NULL, -1, NULL};
    es_layer_stream *s = NULL;
    if (es_layer_stream_open(es_reader_mem(data, size), &exp, &lim, &s, &err) < 0) return 0;

    int basefd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (basefd < 0) abort();
    mkdirat(basefd, "root", 0755);
    int rootfd = openat(basefd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) abort();
    es_apply_opts o;
    es_apply_opts_default(&o);
    o.skip_devices = 1;
    es_apply_stats st = {0};
    if (es_apply_layer(rootfd, s, &o, &st, &err) == 0) es_layer_stream_finish(s, NULL, &err);
    es_layer_stream_free(s);
    close(rootfd);
    /* Directories may have been made read-only by the layer; we are their owner or root. */
    if (es_remove_tree_at(basefd, "root") < 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "chmod -R u+rwx %s/root && rm -rf %s/root", base, base);
        if (system(cmd) != 0) abort();
    }
    /* Nothing may ever appear beside the root. */
    if (faccessat(basefd, "escape", F_OK, AT_SYMLINK_NOFOLLOW) == 0) abort();
    close(basefd);
    return 0;
}
