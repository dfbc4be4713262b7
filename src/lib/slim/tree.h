/*
 * The slim root filesystem: built by copying the kept paths out of the unpacked original, then
 * hardened in place. Also measures trees for the report (before and after).
 *
 * Invariants: the copy never writes outside dst: every entry's parent in dst is checked to be a
 * real directory reached without symlinks before anything is created in it. Setuid/setgid bits
 * are stripped while copying (counted). Hardlinks among kept files stay hardlinks. Device nodes
 * and sockets are not copied (the runtime provides /dev).
 */
#ifndef ES_SLIM_TREE_H
#define ES_SLIM_TREE_H

#include <stdint.h>

#include "slim/keepset.h"
#include "util/error.h"

typedef struct es_tree_stats {
    int64_t bytes;         /* sum of regular file sizes (each hardlinked inode once) */
    int64_t files;         /* entries that are not directories */
    int64_t dirs;
    int64_t shells;        /* sh, bash, dash, ... found in the usual bin dirs */
    int64_t pkg_managers;  /* apt, apt-get, dpkg, apk, pip, ... found in the usual bin dirs */
    int64_t setuid;        /* regular files with setuid or setgid */
} es_tree_stats;

/* Copies every path of ks from src_root into dst_root (which must exist and be empty).
 * *stripped receives the number of setuid/setgid bits removed. */
int es_tree_copy(const char *src_root, const char *dst_root, const es_keepset *ks, int64_t *stripped,
                 es_error *err);
int es_tree_measure(const char *root, es_tree_stats *st);

/* Adds uid/gid 65532 "nonroot" (home /home/nonroot, created with owner 65532) to the passwd and
 * group files of root (creating minimal files with root and nonroot when absent). Idempotent. */
int es_tree_add_nonroot(const char *root, es_error *err);
/* Writes data to container path cpath in root (parents created 0755), atomically. */
int es_tree_write_file(const char *root, const char *cpath, const char *data, size_t len, int mode,
                       es_error *err);

#endif
