/*
 * Internals of fs/: the in-root path resolution (beneath.c), the set of paths (pathset.c) and
 * the apply session shared by es_apply_layer and es_unpack_image (apply.c), which defers
 * directory modes and mtimes to the end of the whole image.
 */
#ifndef ES_FS_INTERNAL_H
#define ES_FS_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "fs/apply.h"

/* ---- in-root resolution (beneath.c) ---- */
/* Opens `path` (relative, normalised; "" = the root) below rootfd as a directory, resolving
 * symlinks as if rootfd were "/" (openat2 RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS), so no path can
 * leave the root. Without openat2 (ENOSYS) every component is opened O_NOFOLLOW and a symlink
 * on the way fails with ELOOP/ENOTDIR. Returns an fd or -1 with errno. */
int es_open_dir_in_root(int rootfd, const char *path);
/* Same, but the last component must itself be a directory, not a symlink to one. */
int es_open_dir_in_root_nofollow(int rootfd, const char *path);
/* Same as es_open_dir_in_root, creating missing directories (0755) on the way. On failure fills err naming `name`. */
int es_open_dir_in_root_create(int rootfd, const char *path, const char *name, es_error *err);
/* Removes dirfd/name and, if it is a directory, everything below it; no symlink is followed. */
int es_remove_tree_at(int dirfd, const char *name);

/* ---- a set of paths, each with a size_t value (pathset.c) ---- */
typedef struct es_pathset es_pathset;
es_pathset *es_pathset_new(void);
void es_pathset_free(es_pathset *s);
/* Adds path; returns 1 if it was new. */
int es_pathset_add(es_pathset *s, const char *path);
/* Adds path with a value; if it was there already returns 0 and its value in *existing. */
int es_pathset_put(es_pathset *s, const char *path, size_t value, size_t *existing);
int es_pathset_has(const es_pathset *s, const char *path);
void es_pathset_clear(es_pathset *s);

/* ---- the apply session (apply.c) ---- */
typedef struct es_apply_session es_apply_session;
es_apply_session *es_apply_session_new(int rootfd, const es_apply_opts *o);
int es_apply_session_layer(es_apply_session *a, es_layer_stream *s, es_apply_stats *st,
                           void (*on_entry)(void *arg), void *arg, es_error *err);
/* Applies the deferred directory modes and mtimes, then frees. */
int es_apply_session_end(es_apply_session *a, es_error *err);
void es_apply_session_free(es_apply_session *a);

#endif
