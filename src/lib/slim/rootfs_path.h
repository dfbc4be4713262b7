/*
 * Path resolution inside an unpacked root filesystem, as the kernel would do it inside the
 * container, without ever leaving the root: ".." at the root stays at the root, absolute symlink
 * targets restart at the root, at most 40 symlinks per resolution (ELOOP). Every symlink met on
 * the way is reported to the keep-set, so a kept path keeps the whole chain that leads to it
 * (merged-/usr: "/lib/x86_64-linux-gnu/libc.so.6" keeps the "/lib" symlink and the file under
 * "/usr/lib").
 */
#ifndef ES_SLIM_ROOTFS_PATH_H
#define ES_SLIM_ROOTFS_PATH_H

#include "slim/keepset.h"
#include "util/error.h"

/* Resolves container path `path` (absolute, or relative to "/") inside `root` (a host dir).
 * follow_last: follow a symlink in the last component too. Symlinks traversed are added to ks
 * with `reason` when ks is not NULL. *out (malloc'd) receives the resolved container path.
 * Returns 1 when the resolved path exists, 0 when it does not (*out: the path as far as it
 * resolved, with the rest appended), -1 on a symlink loop (ES_EUNSAFE naming the path). */
int es_rootfs_resolve(const char *root, const char *path, int follow_last, es_keepset *ks,
                      unsigned reason, char **out, es_error *err);

/* Collapses "//", "/./" and "x/.." in an absolute path, in place (no file system access). */
void es_path_lexical(char *p);

/* Host path of container path p: root + p (malloc'd). */
char *es_rootfs_host_path(const char *root, const char *p);

/* Keeps path with its symlink chain and the final target (and parents). Returns 1 when it exists,
 * 0 when it does not (nothing added), -1 on error. *resolved (may be NULL) receives the target. */
int es_rootfs_keep(const char *root, const char *path, es_keepset *ks, unsigned reason,
                   char **resolved, es_error *err);

#endif
