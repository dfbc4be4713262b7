/*
 * Packing static binaries into distroless-static style images: the binaries, a CA bundle,
 * /etc/passwd and /etc/group with root and nonroot (65532), /home/nonroot and /tmp. One layer
 * per platform, written entry by entry with fixed metadata (no staging directory, so it works
 * without root and the owners are exactly what we say). Binaries for several platforms give an
 * OCI index with one manifest per platform.
 */
#ifndef ES_PACK_PACK_H
#define ES_PACK_PACK_H

#include <jansson.h>

#include "layer/layer_writer.h"
#include "util/error.h"

typedef struct es_pack_opts {
    const char *const *binaries; /* host paths; platform read from each ELF header */
    size_t n_binaries;
    const char *ca_bundle;       /* host path of a PEM bundle to ship, or NULL for none */
    unsigned uid, gid;           /* default 65532:65532 */
    const char *const *ports;    /* "8080" or "8080/tcp", "5683/udp" */
    size_t n_ports;
    const char *const *env;      /* extra "K=V" */
    size_t n_env;
    const char *const *labels;   /* "K=V" */
    size_t n_labels;
    json_t *entrypoint;          /* array or NULL (default: [first binary's image path]) */
    json_t *cmd;                 /* array or NULL */
    const char *only_platform;   /* keep only binaries of this os/arch[/variant], NULL = all */
    const char *bin_dir;         /* where binaries go in the image: default /usr/local/bin */
    es_write_opts write;
} es_pack_opts;

typedef struct es_pack_platform {
    char os[32], arch[32], variant[32];
    es_digest config_digest;
    int64_t layer_size;          /* compressed */
    int64_t layer_uncompressed;
    size_t n_binaries;
} es_pack_platform;

typedef struct es_pack_result {
    es_digest digest;            /* manifest (one platform) or index digest */
    size_t n_platforms;
    es_pack_platform platforms[8];
} es_pack_result;

/* Reads the ELF header of path: fills os/arch/variant ("linux","amd64","") and *is_static
 * (no PT_INTERP). ES_EFORMAT when not an ELF file or a machine we do not map. */
int es_elf_platform(const char *path, char arch[32], char variant[32], int *is_static,
                    es_error *err);
void es_pack_opts_default(es_pack_opts *o);
int es_pack(const es_pack_opts *o, const char *dst_ref, es_pack_result *res, es_error *err);

#endif
