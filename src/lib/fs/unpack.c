/*
 * es_unpack_image: all layers of an image applied, in order, into a fresh root filesystem.
 * Invariants: the target appears only complete (we build in a temporary sibling directory and
 * rename it into place at the end); on any failure the temporary directory is removed and the
 * target is untouched; each layer is verified (digest, size, diff_id) before the next is
 * applied, and a failed verification fails the whole unpack; an existing non-empty target is
 * refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/fs_internal.h"

static int check_target(const char *dir, es_error *err)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        if (errno == ENOENT) return 0;
        return es_err_sys(err, ES_EIO, "%s: cannot stat target", dir);
    }
    if (!S_ISDIR(st.st_mode)) return es_err(err, ES_EIO, "%s: target exists and is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return es_err_sys(err, ES_EIO, "%s: cannot read target", dir);
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) empty = 0;
    closedir(d);
    return empty ? 0 : es_err(err, ES_EIO, "%s: target directory is not empty", dir);
}

typedef struct {
    es_layer_stream *s;
    es_progress *prog;
    int64_t last;
} progress_ctx;

static void on_entry(void *arg)
{
    progress_ctx *p = arg;
    int64_t now = es_layer_stream_consumed(p->s);
    es_progress_add(p->prog, now - p->last);
    p->last = now;
}

static int unpack_layers(es_image *img, int rootfd, const es_apply_opts *o, es_apply_stats *st,
                         es_progress *prog, es_error *err)
{
    es_apply_session *a = es_apply_session_new(rootfd, o);
    for (size_t i = 0; i < img->n_layers; i++) {
        es_layer_stream *s = NULL;
        if (es_image_open_layer(img, i, &s, err) < 0) goto fail;
        progress_ctx pc = {s, prog, 0};
        int r = es_apply_session_layer(a, s, st, on_entry, &pc, err);
        if (r == 0) r = es_layer_stream_finish(s, NULL, err);
        if (r == 0) on_entry(&pc);
        es_layer_stream_free(s);
        if (r < 0) {
            /* Stream errors already name the image and layer; apply errors name the entry. */
            es_cleanup_free char *where = es_xasprintf("%s:%s: layer %zu", es_transport_name(img->ref.kind),
                                                       img->ref.path, i + 1);
            if (strncmp(err->msg, where, strlen(where)) != 0) es_err_prefix(err, "%s: ", where);
            goto fail;
        }
    }
    return es_apply_session_end(a, err);
fail:
    es_apply_session_free(a);
    return -1;
}

int es_unpack_image(es_image *img, const char *dir, const es_apply_opts *o, es_apply_stats *st,
                    es_progress *prog, es_error *err)
{
    es_apply_stats local = {0};
    if (!st) st = &local;
    es_cleanup_free char *target = es_xstrdup(dir);
    for (size_t n = strlen(target); n > 1 && target[n - 1] == '/'; n--) target[n - 1] = 0;
    if (check_target(target, err) < 0) return -1;
    es_cleanup_free char *tmp = es_xasprintf("%s.tmp-XXXXXX", target);
    if (!mkdtemp(tmp)) return es_err_sys(err, ES_EIO, "%s: cannot create temporary directory", target);
    chmod(tmp, 0755);
    int rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = rootfd < 0 ? es_err_sys(err, ES_EIO, "%s: cannot open", tmp) : 0;
    if (r == 0) r = unpack_layers(img, rootfd, o, st, prog, err);
    if (rootfd >= 0) close(rootfd);
    if (r == 0 && rename(tmp, target) < 0) r = es_err_sys(err, ES_EIO, "%s: cannot rename into place", target);
    if (r < 0) es_remove_tree_at(AT_FDCWD, tmp);
    return r;
}
