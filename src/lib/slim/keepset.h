/*
 * The keep-set of `slim`: the container paths (absolute, normalised: "/usr/bin/python3", no
 * trailing slash, "/" itself never stored) that the slim image keeps, each with the reasons it
 * was kept. Invariant: whenever a path is in the set, every parent directory is too (added with
 * the same reason), so the tree built from the set never has an entry without its parents.
 */
#ifndef ES_SLIM_KEEPSET_H
#define ES_SLIM_KEEPSET_H

#include <stddef.h>

enum es_keep_reason {
    ES_KEEP_STATIC = 1u << 0, /* entrypoint/cmd closure: ELF interpreter, libraries, shebangs */
    ES_KEEP_TRACED = 1u << 1, /* seen by the tracer while the probes ran */
    ES_KEEP_RULE = 1u << 2,   /* --include, --include-bin, --include-shell, --keep-file */
    ES_KEEP_PRESET = 1u << 3, /* built-in presets: CA certs, tzdata, passwd, ... */
    ES_KEEP_META = 1u << 4,   /* written by slim itself: package DB, SBOM, nonroot entries */
};

typedef struct es_keepset es_keepset;

es_keepset *es_keepset_new(void);
void es_keepset_free(es_keepset *ks);
/* Adds path and its parents with reason (OR-ed into existing reasons). path must start with '/'.
 * Returns 1 when path was new, 0 when it was there already. */
int es_keepset_add(es_keepset *ks, const char *path, unsigned reason);
/* Reasons of path, 0 when absent. */
unsigned es_keepset_get(const es_keepset *ks, const char *path);
/* Removes one path (not its children: callers remove those via es_keepset_sorted). */
void es_keepset_remove(es_keepset *ks, const char *path);
size_t es_keepset_count(const es_keepset *ks);
/* All paths sorted bytewise (parents before children). The array is malloc'd; the strings are
 * borrowed from the set and valid until it changes. */
const char **es_keepset_sorted(const es_keepset *ks, size_t *n);
/* "static,traced" style names of a reason mask into buf. */
const char *es_keep_reason_names(unsigned reasons, char *buf, size_t len);

#endif
