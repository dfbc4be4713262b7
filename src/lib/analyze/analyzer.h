/*
 * The inspect core: an image is fed to it as a sequence of events (layer begins; one event per
 * tar entry; layer ends) and it computes, in one pass and without holding file contents:
 *   - dive's three waste metrics (efficiency, wasted bytes, user wasted %), reproducing dive's
 *     rules exactly (see docs/inspect-json.md "Metric definitions");
 *   - our reclaimable_bytes: every byte of a regular-file entry that is not visible in the final
 *     tree (overwritten, deleted by a whiteout, under a deleted directory, hidden by an opaque
 *     whiteout), each counted once;
 *   - the final tree (OCI layer semantics applied), from which the report draws the largest files
 *     and directories, the package inventory, the ELF inventory and the attack surface.
 *
 * Invariants: memory grows with the number of distinct paths (one trie node each) plus the parsed
 * package databases and ELF summaries of files still visible; never with file bytes. File
 * contents are pulled through the event's read callback only for package databases (capped) and
 * ELF files (streamed through a bounded scanner).
 * The core never reads images itself; analyze_image.c is the driver that feeds it from
 * es_image_open_layer streams, unit tests feed it synthetic events.
 */
#ifndef ES_ANALYZE_ANALYZER_H
#define ES_ANALYZE_ANALYZER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

typedef enum {
    ES_ENTRY_FILE = 0, /* regular file */
    ES_ENTRY_DIR,
    ES_ENTRY_SYMLINK,
    ES_ENTRY_HARDLINK,
    ES_ENTRY_OTHER, /* device node, fifo, socket */
} es_entry_type;

/* Pulls bytes of the current regular file: >0 bytes, 0 at end, -1 with err set. */
typedef ssize_t (*es_entry_read_fn)(void *ctx, void *buf, size_t n, es_error *err);

typedef struct es_entry_event {
    const char *path; /* normalised ("a/b", no leading "/" or "./"); may be a whiteout name */
    es_entry_type type;
    int64_t size;  /* size from the tar header (what dive adds up) */
    uint32_t mode; /* permission bits incl. setuid/setgid/sticky (07777) */
    int64_t uid, gid;
    const char *link_target; /* symlink or hardlink target, or NULL */
    const void *capability;  /* raw security.capability xattr, or NULL */
    size_t capability_len;
    es_entry_read_fn read; /* content of a regular file; NULL: content not analysed */
    void *read_ctx;
} es_entry_event;

/* What the driver knows about a layer beyond its entries (all optional). */
typedef struct es_layer_meta {
    const char *digest; /* blob digest */
    const char *diff_id;
    const char *media_type;
    const char *created_by;  /* from the config history, empty_layer entries skipped */
    int64_t compressed_size; /* blob bytes, -1 unknown */
    int64_t tar_size;        /* uncompressed tar bytes, -1 unknown */
} es_layer_meta;

/* dive's numbers and ours. user_wasted_percent is computed exactly as dive does (a ratio, not
 * multiplied by 100): NaN when wasted and user bytes are both 0, +inf when only user bytes are 0.
 */
typedef struct es_waste_metrics {
    double efficiency;
    int64_t wasted_bytes;
    double user_wasted_percent;
    int64_t reclaimable_bytes;
    int64_t size_bytes;        /* dive: sum of all layers' sizes */
    int64_t user_size_bytes;   /* dive: sum of the sizes of layers after the first */
    int64_t inefficient_paths; /* paths seen in >= 2 layers */
} es_waste_metrics;

typedef struct es_report_opts {
    int top_n;                  /* largest files/dirs and inefficient files listed (default 10) */
    const json_t *image_config; /* the image config document (for user, ports), may be NULL */
} es_report_opts;

typedef struct es_analyzer es_analyzer;

es_analyzer *es_analyzer_new(void);
void es_analyzer_free(es_analyzer *a);

int es_analyzer_layer_begin(es_analyzer *a, es_error *err);
/* Errors: ES_EUNSAFE for a path the core refuses (empty, "..", too deep), or an error of the read
 * callback. */
int es_analyzer_entry(es_analyzer *a, const es_entry_event *ev, es_error *err);
int es_analyzer_layer_end(es_analyzer *a, const es_layer_meta *meta, es_error *err);

/* Valid after any number of complete layers. */
void es_analyzer_metrics(const es_analyzer *a, es_waste_metrics *out);

/* The whole report as JSON (field reference: docs/inspect-json.md) minus the "image" and "ci"
 * objects the caller adds. New reference, owned by the caller. */
json_t *es_analyzer_report(es_analyzer *a, const es_report_opts *opts);

#endif
