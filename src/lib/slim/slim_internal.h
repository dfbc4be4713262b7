/*
 * Internals shared by the files of the slim pipeline: slim.c (stages that read and write
 * files: open, closure, rules, tree, write), slim_run.c (everything that runs containers: the
 * traced run, probes, verification) and slim_report.c (the report document). Not a public API.
 */
#ifndef ES_SLIM_SLIM_INTERNAL_H
#define ES_SLIM_SLIM_INTERNAL_H

#include "slim/slim.h"

#include <stdint.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layer/layer_writer.h"
#include "oci/image_writer.h"
#include "sandbox/sandbox.h"
#include "slim/closure.h"
#include "slim/keepset.h"
#include "slim/pkgdb.h"
#include "slim/probe.h"
#include "slim/rootfs_path.h"
#include "slim/sbom.h"
#include "slim/tree.h"

#define NONROOT_USER "65532:65532"
#ifndef ES_VERSION_STRING
#define ES_VERSION_STRING "0.1.0"
#endif
#define STOP_GRACE_MS 3000
#define SETTLE_MS 500
#define SETTLE_PORTS_MS 5000 /* total wait for exposed ports after the probes passed */
#define MAX_MISSING_LISTED 12

typedef struct probe_outcome {
    es_probe_result orig, slim;
} probe_outcome;

typedef struct slim_ctx {
    const es_slim_opts *o;
    es_image *img;
    char *root, *work, *slim_root, *blob_path;
    es_run_config run;
    es_closure *closure;
    es_keepset *ks;
    es_probe *probes;
    size_t n_probes;
    probe_outcome *outcomes;
    int duration_mode, orig_exited, orig_exit;
    es_pkgdb db;
    char **syscalls;
    size_t n_syscalls;
    es_tree_stats before, after;
    int64_t before_compressed, stripped;
    char *user_final;
    char user_note[1024];
    char created[64];
    int64_t epoch;
    json_t *missing_paths;
    long long t0, t_stage;
    json_t *timings;
    char *probe_log;
} slim_ctx;

long long slim_now_ms(void);
void slim_stage(slim_ctx *c, const char *name);
void slim_stage_end(slim_ctx *c, const char *name);
int slim_is_root_user(const char *u);
/* slim_run.c */
int slim_make_probes(slim_ctx *c, es_error *err);
int slim_traced_run(slim_ctx *c, es_error *err);
int slim_verify(slim_ctx *c, int tried_nonroot, es_error *err);
/* slim_report.c */
double slim_reduction_pct(int64_t before, int64_t after);
json_t *slim_build_report(slim_ctx *c, const es_layer_blob *blob, const es_write_result *wres);
int slim_write_report(const char *path, json_t *report, es_error *err);

#endif
