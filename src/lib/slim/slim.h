/*
 * `edgeslim slim` as one library call: open -> unpack -> static closure -> traced run with probes
 * -> rules and presets -> slim tree -> harden (setuid, user, package DB, SBOM) -> verify side by
 * side -> one deterministic layer -> write. Nothing is written to the destination unless
 * verification passed and the result is smaller than the input; every temporary directory is
 * removed on every path out.
 *
 * The report (a JSON object, also what --report writes) holds the before/after figures, the user
 * decision and why, the probe results on both images, the kept paths with their reasons, the
 * seen syscalls and the timings. Its fields are documented in docs/slim.md.
 */
#ifndef ES_SLIM_SLIM_H
#define ES_SLIM_SLIM_H

#include <jansson.h>

#include "oci/image.h"
#include "slim/rules.h"
#include "util/error.h"

typedef void (*es_slim_stage_fn)(const char *stage, void *arg);

typedef struct es_slim_opts {
    const char *src, *dst;        /* image references */
    const char *const *probes;    /* --probe specs */
    size_t n_probes;
    const es_rules *rules;        /* may be NULL */
    const char *user;             /* --user: forces the user; NULL = decide (nonroot when it works) */
    int duration_ms;              /* no probe and no exposed port: how long the app runs (5000) */
    int probe_timeout_ms;         /* readiness wait per probe (30000) */
    const char *report_path;      /* --report FILE.json or NULL */
    const char *sbom_path;        /* --sbom FILE or NULL = beside the destination */
    const char *seccomp_path;     /* --seccomp FILE or NULL */
    es_compression compression;
    int skip_verify;              /* debugging only: no side-by-side verification */
    const char *command_line;     /* recorded in the history entry */
    es_slim_stage_fn on_stage;    /* progress: called with a short stage name */
    void *stage_arg;
} es_slim_opts;

void es_slim_opts_default(es_slim_opts *o);

/* Runs the whole pipeline. *report (new reference) is filled on success and, when available, on
 * ES_EVERIFY / ES_EPROBE / ES_ELARGER failures too (so the CLI can show what happened). */
int es_slim(const es_slim_opts *o, json_t **report, es_error *err);

/* Writes text to path atomically (temp file beside it + rename). */
int es_write_file_atomic(const char *path, const char *text, es_error *err);

#endif
