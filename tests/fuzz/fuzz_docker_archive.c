/* libFuzzer target: opening arbitrary bytes as a docker-archive (tar index, manifest.json,
 * config, layer sniffing) and streaming every layer blob. The bytes live in a memfd opened by
 * path (/proc/self/fd/N) so the real file code runs. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "oci/image.h"

static void drain_layers(es_image *img)
{
    for (size_t i = 0; i < img->n_layers; i++) {
        es_reader *r;
        es_error err = {0};
        if (es_image_open_layer_blob(img, i, &r, &err) < 0) continue;
        char buf[4096];
        while (es_reader_read(r, buf, sizeof buf, &err) > 0) {
        }
        es_reader_free(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-docker-archive", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char ref[64];
    snprintf(ref, sizeof ref, "docker-archive:/proc/self/fd/%d", fd);
    es_limits lim = *es_limits_default();
    lim.max_layers = 16;
    lim.max_index_entries = 16;
    lim.max_json_bytes = 1 << 20;
    es_open_opts o = {.limits = &lim};
    es_image *img = NULL;
    es_error err = {0};
    if (es_image_open(ref, &o, &img, &err) == 0) {
        drain_layers(img);
        es_image_close(img);
    } else if (!err.code) {
        __builtin_trap();
    }
    close(fd);
    return 0;
}
