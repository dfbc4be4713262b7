/*
 * The static closure of `slim`: what a command needs before it runs, found by reading files in
 * the unpacked root filesystem (no `ldd` inside the image, nothing executed):
 *   - the command resolved through the image's PATH (relative to the workdir when it has a '/');
 *   - a script's shebang interpreter ("#!/usr/bin/env python3" resolves python3 through PATH);
 *   - an ELF file's PT_INTERP and its DT_NEEDED libraries, recursively, searched like glibc's
 *     ld.so: DT_RPATH (when no DT_RUNPATH), LD_LIBRARY_PATH from the image env, DT_RUNPATH, the
 *     directories of /etc/ld.so.conf (with `include` globs), then the default directories;
 *     $ORIGIN, $LIB and $PLATFORM are expanded; a library of another class/machine is skipped
 *     like ld.so does;
 *   - every symlink on the way and every parent directory (through es_rootfs_keep).
 */
#ifndef ES_SLIM_CLOSURE_H
#define ES_SLIM_CLOSURE_H

#include "slim/keepset.h"
#include "util/error.h"

typedef struct es_closure es_closure;

/* path_env: the image's PATH value (NULL: the usual default); ld_library_path may be NULL. */
es_closure *es_closure_new(const char *root, const char *path_env, const char *ld_library_path);
void es_closure_free(es_closure *c);

/* cmd resolved to an existing container path: through PATH when it has no '/', else relative to
 * workdir (NULL = "/"). Returns a malloc'd path (as named, not symlink-resolved) or NULL. */
char *es_closure_which(es_closure *c, const char *cmd, const char *workdir);

/* Keeps container path `path` with its symlink chain, parents and closure (interpreter,
 * libraries, shebang). Returns 1 when kept, 0 when path does not exist, -1 on error. Missing
 * libraries are not an error here (the image may never load them); they are counted in
 * es_closure_missing. */
int es_closure_add(es_closure *c, const char *path, es_keepset *ks, unsigned reason, es_error *err);

/* Library directories searched after the per-object ones (ld.so.conf then defaults). */
size_t es_closure_lib_dirs(const es_closure *c, const char *const **dirs);
/* DT_NEEDED names that were not found anywhere (borrowed). */
size_t es_closure_missing(const es_closure *c, const char *const **names);

#endif
