/*
 * An index of an uncompressed tar file (docker-archive, oci-archive): entry name -> (data offset,
 * size), built by walking the headers once with libarchive and never reading entry data. Blobs
 * are then served by pread of their byte range, so nothing is extracted and memory grows with the
 * number of entries, not their bytes.
 *
 * Invariants: names are normalised (no leading "./" or "/", no trailing "/", no ".." component),
 * unique, and sorted for bsearch; every regular entry's [off, off+size) lies inside the file.
 */
#ifndef ES_OCI_TAR_INDEX_H
#define ES_OCI_TAR_INDEX_H

#include <stdint.h>

#include "util/error.h"
#include "util/limits.h"
#include "util/reader.h"

typedef struct es_tar_member {
    char *name;
    int64_t off, size;
    int is_reg;
    char *symlink; /* target when the entry is a symlink, else NULL */
} es_tar_member;

typedef struct es_tar_index {
    int fd;
    char *path;
    int64_t file_size;
    size_t n;
    es_tar_member *m;
} es_tar_index;

int es_tar_index_build(const char *path, const es_limits *lim, es_tar_index **out, es_error *err);
void es_tar_index_free(es_tar_index *t);
/* The regular file at name, following symlinks inside the archive (at most 8). NULL if absent. */
const es_tar_member *es_tar_index_find(const es_tar_index *t, const char *name);
/* Stream of a member's bytes (not verified). */
es_reader *es_tar_index_open(const es_tar_index *t, const es_tar_member *m);

#endif
