/*
 * The deterministic layer writer: entries -> libarchive (PAX restricted, metadata normalised)
 * -> write callback (sha256 of the tar = diff_id) -> compressor (layer_compress.c) -> temporary
 * file beside out_path -> rename. Layer files are intermediates in a work directory: the image
 * writer makes them durable where they land (fsync there), so they are not synced here. Also the two producers built on it: a directory tree
 * (es_layer_from_dir) and another layer blob (es_layer_recompress, which copies the tar bytes
 * verbatim so the diff_id cannot change).
 * Invariants: nothing depends on the clock, the user database, the host's inode numbers or the
 * thread count: uname/gname are cleared, atime/ctime/birthtime dropped (so libarchive writes no
 * pax time records), mtimes are whole seconds clamped to SOURCE_DATE_EPOCH when set, dev/ino/
 * nlink/fflags/ACLs cleared; out_path exists only if the whole blob was written.
 */
#include <archive.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layer/layer_internal.h"

/* ---------------------------------------------------------------- options */

int64_t es_source_date_epoch(void)
{
    const char *v = getenv("SOURCE_DATE_EPOCH");
    if (!v || !*v) return -1;
    int64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9' || x > INT64_MAX / 10 - 10) return -1;
        x = x * 10 + (*p - '0');
    }
    return x;
}

void es_write_opts_default(es_write_opts *o)
{
    memset(o, 0, sizeof *o);
    o->compression = ES_COMP_GZIP;
    o->source_date_epoch = es_source_date_epoch();
}

/* ---------------------------------------------------------------- temporary file */

static int tmp_open(const char *out_path, char **tmp, int *fd, es_error *err)
{
    *tmp = es_xasprintf("%s.tmp-XXXXXX", out_path);
    *fd = mkostemp(*tmp, O_CLOEXEC);
    if (*fd < 0) {
        es_err_sys(err, ES_EIO, "%s: cannot create temporary file", out_path);
        free(*tmp);
        *tmp = NULL;
        return -1;
    }
    fchmod(*fd, 0644);
    return 0;
}

static int tmp_commit(int *fd, char **tmp, const char *out_path, es_error *err)
{
    int r = close(*fd);
    *fd = -1;
    if (r < 0) return es_err_sys(err, ES_EIO, "%s: close", out_path);
    if (rename(*tmp, out_path) < 0) return es_err_sys(err, ES_EIO, "%s: rename into place", out_path);
    free(*tmp);
    *tmp = NULL;
    return 0;
}

static void tmp_abort(int *fd, char **tmp)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
    if (*tmp) unlink(*tmp);
    free(*tmp);
    *tmp = NULL;
}

/* ---------------------------------------------------------------- the writer */

struct es_layer_writer {
    const char *out_path;
    char *tmp;
    int fd;
    es_write_opts o;
    es_compressor *comp;
    struct archive *ar;
    es_sha256 *tar_hash;
    int64_t tar_bytes;
    es_error cb_err;
    unsigned char *buf;
};

#define COPY_BUF (256 * 1024)

static la_ssize_t tar_write_cb(struct archive *a, void *ud, const void *buf, size_t n)
{
    es_layer_writer *w = ud;
    es_sha256_update(w->tar_hash, buf, n);
    w->tar_bytes += (int64_t)n;
    if (es_compressor_write(w->comp, buf, n, &w->cb_err) < 0) {
        archive_set_error(a, EIO, "%s", w->cb_err.msg);
        return -1;
    }
    return (la_ssize_t)n;
}

int es_layer_writer_open(const char *out_path, const es_write_opts *o, es_layer_writer **out,
                         es_error *err)
{
    es_layer_writer *w = es_xcalloc(1, sizeof *w);
    w->out_path = out_path;
    w->fd = -1;
    if (o) w->o = *o;
    else es_write_opts_default(&w->o);
    w->tar_hash = es_sha256_new();
    w->buf = es_xmalloc(COPY_BUF);
    if (tmp_open(out_path, &w->tmp, &w->fd, err) < 0 ||
        es_compressor_open(w->fd, w->o.compression, w->o.level, w->o.threads, out_path, &w->comp, err) < 0) {
        es_layer_writer_abort(w);
        return -1;
    }
    w->ar = archive_write_new();
    archive_write_set_format_pax_restricted(w->ar);
    archive_write_set_bytes_per_block(w->ar, 10240);
    archive_write_set_bytes_in_last_block(w->ar, 1);
    if (archive_write_open2(w->ar, w, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK) {
        es_err(err, ES_EFAIL, "%s: cannot start tar writer: %s", out_path, archive_error_string(w->ar));
        es_layer_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

/* A copy of e with everything that would make the bytes depend on the host or clock removed. */
static struct archive_entry *normalized_entry(const es_layer_writer *w, struct archive_entry *e)
{
    struct archive_entry *n = archive_entry_clone(e);
    archive_entry_set_uname(n, NULL);
    archive_entry_set_gname(n, NULL);
    archive_entry_unset_atime(n);
    archive_entry_unset_ctime(n);
    archive_entry_unset_birthtime(n);
    time_t t = archive_entry_mtime_is_set(n) ? archive_entry_mtime(n) : 0;
    if (w->o.source_date_epoch >= 0 && t > w->o.source_date_epoch) t = (time_t)w->o.source_date_epoch;
    if (t < 0) t = 0;
    archive_entry_set_mtime(n, t, 0);
    archive_entry_set_dev(n, 0);
    archive_entry_set_ino(n, 0);
    archive_entry_set_nlink(n, 1);
    archive_entry_set_fflags(n, 0, 0);
    archive_entry_acl_clear(n);
    archive_entry_sparse_clear(n);
    if (archive_entry_hardlink(n) || archive_entry_filetype(n) != AE_IFREG) archive_entry_set_size(n, 0);
    return n;
}

static int writer_fail(es_layer_writer *w, const char *path, es_error *err)
{
    if (w->cb_err.code) {
        if (err && !err->code) *err = w->cb_err;
        return -1;
    }
    return es_err(err, ES_EFAIL, "%s: entry '%s': %s", w->out_path, path, archive_error_string(w->ar));
}

static int copy_data(es_layer_writer *w, const char *path, int64_t size, es_reader *data, es_error *err)
{
    int64_t done = 0;
    while (done < size) {
        size_t want = size - done < COPY_BUF ? (size_t)(size - done) : COPY_BUF;
        ssize_t k = data ? es_reader_read(data, w->buf, want, err) : 0;
        if (k < 0) return -1;
        if (k == 0) return es_err(err, ES_EIO, "%s: entry '%s': data ended at %lld of %lld bytes (file changed?)",
                                  w->out_path, path, (long long)done, (long long)size);
        if (archive_write_data(w->ar, w->buf, (size_t)k) != k) return writer_fail(w, path, err);
        done += k;
    }
    return 0;
}

int es_layer_writer_add(es_layer_writer *w, struct archive_entry *e, es_reader *data, es_error *err)
{
    struct archive_entry *n = normalized_entry(w, e);
    const char *path = archive_entry_pathname(n) ? archive_entry_pathname(n) : "?";
    int h = archive_write_header(w->ar, n);
    int r = h != ARCHIVE_OK && h != ARCHIVE_WARN ? writer_fail(w, path, err) : 0;
    if (r == 0 && archive_entry_size(n) > 0) r = copy_data(w, path, archive_entry_size(n), data, err);
    archive_entry_free(n);
    return r;
}

int es_layer_writer_finish(es_layer_writer *w, es_layer_blob *blob, es_error *err)
{
    int r = archive_write_close(w->ar) != ARCHIVE_OK ? writer_fail(w, "end of archive", err) : 0;
    es_digest digest;
    int64_t size = 0;
    if (r == 0) r = es_compressor_finish(w->comp, &digest, &size, err);
    if (r == 0) r = tmp_commit(&w->fd, &w->tmp, w->out_path, err);
    if (r == 0 && blob) {
        memset(blob, 0, sizeof *blob);
        blob->path = w->out_path;
        blob->digest = digest;
        blob->size = size;
        es_sha256_final(w->tar_hash, &blob->diff_id);
        w->tar_hash = NULL;
        blob->compression = w->o.compression;
    }
    es_layer_writer_abort(w); /* frees; the temporary file is gone (renamed) on success */
    return r;
}

void es_layer_writer_abort(es_layer_writer *w)
{
    if (!w) return;
    if (w->ar) archive_write_free(w->ar); /* may call close on an open archive: errors ignored */
    es_compressor_free(w->comp);
    tmp_abort(&w->fd, &w->tmp);
    es_sha256_free(w->tar_hash);
    free(w->buf);
    free(w);
}

/* ---------------------------------------------------------------- a directory tree */

typedef struct {
    dev_t dev;
    ino_t ino;
    char *path;
} link_rec;

typedef struct {
    const char *root;
    es_layer_writer *w;
    es_path_filter filter;
    void *filter_arg;
    es_progress *prog;
    link_rec *links;
    size_t n_links, cap_links;
} walk_ctx;

/* Open-addressing table of (dev, ino) -> first path, for files with more than one link. */
static size_t link_slot(const walk_ctx *c, dev_t dev, ino_t ino)
{
    uint64_t h = ((uint64_t)dev * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)ino * 0xC2B2AE3D27D4EB4FULL);
    size_t i = (size_t)(h ^ (h >> 29)) & (c->cap_links - 1);
    while (c->links[i].path && !(c->links[i].dev == dev && c->links[i].ino == ino)) i = (i + 1) & (c->cap_links - 1);
    return i;
}

static void grow_links(walk_ctx *c)
{
    link_rec *old = c->links;
    size_t old_cap = c->cap_links;
    c->cap_links = old_cap ? 2 * old_cap : 64;
    c->links = es_xcalloc(c->cap_links, sizeof *c->links);
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].path) c->links[link_slot(c, old[i].dev, old[i].ino)] = old[i];
    free(old);
}

static const char *first_link_path(walk_ctx *c, const struct stat *st, const char *rel)
{
    if (2 * (c->n_links + 1) > c->cap_links) grow_links(c);
    size_t i = link_slot(c, st->st_dev, st->st_ino);
    if (c->links[i].path) return c->links[i].path;
    c->links[i] = (link_rec){st->st_dev, st->st_ino, es_xstrdup(rel)};
    c->n_links++;
    return NULL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keeps xattrs that belong to the image (file capabilities, user.*), sorted by name; drops
 * host-specific ones (security.selinux, overlay internals, ACLs which tar carries otherwise). */
static int keep_xattr(const char *name)
{
    return strcmp(name, "security.capability") == 0 || strncmp(name, "user.", 5) == 0;
}

static void add_xattrs(struct archive_entry *e, const char *abs)
{
    char list[8192];
    ssize_t n = llistxattr(abs, list, sizeof list);
    if (n <= 0) return;
    char *names[256] = {0};
    size_t k = 0;
    for (char *p = list; p < list + n && k < 256; p += strlen(p) + 1)
        if (keep_xattr(p)) names[k++] = p;
    qsort(names, k, sizeof *names, cmp_name);
    for (size_t i = 0; i < k; i++) {
        char val[65536];
        ssize_t v = lgetxattr(abs, names[i], val, sizeof val);
        if (v >= 0) archive_entry_xattr_add_entry(e, names[i], val, (size_t)v);
    }
}

static char **sorted_names(int dirfd, size_t *count, const char *abs, es_error *err)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        es_err_sys(err, ES_EIO, "%s: cannot list directory", abs);
        return NULL;
    }
    size_t n = 0, cap = 16;
    char **names = es_xmalloc(cap * sizeof *names);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (n == cap) names = es_xrealloc(names, (cap *= 2) * sizeof *names);
        names[n++] = es_xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_name);
    *count = n;
    return names;
}

static int walk_dir(walk_ctx *c, int dirfd, const char *rel, es_error *err);

static int add_path(walk_ctx *c, int dirfd, const char *name, const char *rel, es_error *err)
{
    es_cleanup_free char *abs = es_xasprintf("%s/%s", c->root, rel);
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return es_err_sys(err, ES_EIO, "%s: stat", abs);
    if (S_ISSOCK(st.st_mode)) return 0;
    int include = !c->filter || c->filter(rel, c->filter_arg);
    if (include) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_copy_stat(e, &st);
        archive_entry_copy_pathname(e, rel);
        int r = 0;
        es_reader *data = NULL;
        int fd = -1;
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX + 1];
            ssize_t k = readlinkat(dirfd, name, target, PATH_MAX);
            if (k < 0) r = es_err_sys(err, ES_EIO, "%s: readlink", abs);
            else target[k] = 0, archive_entry_copy_symlink(e, target);
        } else if (S_ISREG(st.st_mode)) {
            const char *first = st.st_nlink > 1 ? first_link_path(c, &st, rel) : NULL;
            if (first) {
                archive_entry_copy_hardlink(e, first);
                archive_entry_set_size(e, 0);
            } else {
                fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) r = es_err_sys(err, ES_EIO, "%s: open", abs);
                else data = es_reader_fd_range(fd, 0, st.st_size, abs);
            }
        }
        if (r == 0) add_xattrs(e, abs);
        if (r == 0) r = es_layer_writer_add(c->w, e, data, err);
        if (r == 0 && S_ISREG(st.st_mode)) es_progress_add(c->prog, st.st_size);
        es_reader_free(data);
        if (fd >= 0) close(fd);
        archive_entry_free(e);
        if (r < 0) return -1;
    }
    if (!S_ISDIR(st.st_mode)) return 0;
    int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) return es_err_sys(err, ES_EIO, "%s: open directory", abs);
    int r = walk_dir(c, sub, rel, err);
    close(sub);
    return r;
}

static int walk_dir(walk_ctx *c, int dirfd, const char *rel, es_error *err)
{
    size_t n = 0;
    es_cleanup_free char *abs = es_xasprintf("%s/%s", c->root, rel);
    char **names = sorted_names(dirfd, &n, abs, err);
    if (!names) return -1;
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        if (r == 0) {
            char *child = *rel ? es_xasprintf("%s/%s", rel, names[i]) : es_xstrdup(names[i]);
            r = add_path(c, dirfd, names[i], child, err);
            free(child);
        }
        free(names[i]);
    }
    free(names);
    return r;
}

int es_layer_from_dir(const char *rootfs, const es_write_opts *o, es_path_filter filter,
                      void *filter_arg, const char *out_path, es_layer_blob *blob,
                      es_progress *prog, es_error *err)
{
    int root = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return es_err_sys(err, ES_EIO, "%s: cannot open directory", rootfs);
    walk_ctx c = {.root = rootfs, .filter = filter, .filter_arg = filter_arg, .prog = prog};
    int r = es_layer_writer_open(out_path, o, &c.w, err);
    if (r == 0) r = walk_dir(&c, root, "", err);
    if (r == 0) r = es_layer_writer_finish(c.w, blob, err);
    else es_layer_writer_abort(c.w);
    close(root);
    for (size_t i = 0; i < c.cap_links; i++) free(c.links[i].path);
    free(c.links);
    return r;
}

/* ---------------------------------------------------------------- recompression */

int es_layer_recompress(es_reader *blob, const es_layer_expect *exp, const es_write_opts *o,
                        const char *out_path, es_layer_blob *outblob, es_progress *prog,
                        es_error *err)
{
    es_write_opts opts;
    if (o) opts = *o;
    else es_write_opts_default(&opts);
    es_layer_stream *s = NULL;
    if (es_layer_stream_open_raw(blob, exp, NULL, &s, err) < 0) return -1;
    char *tmp = NULL;
    int fd = -1;
    es_compressor *comp = NULL;
    int r = tmp_open(out_path, &tmp, &fd, err);
    if (r == 0) r = es_compressor_open(fd, opts.compression, opts.level, opts.threads, out_path, &comp, err);
    const void *buf;
    size_t len;
    int64_t last = 0;
    while (r == 0 && (r = es_layer_stream_raw_next(s, &buf, &len, err)) > 0) {
        r = es_compressor_write(comp, buf, len, err);
        int64_t now = es_layer_stream_consumed(s);
        es_progress_add(prog, now - last);
        last = now;
    }
    es_layer_stats st;
    if (r == 0) r = es_layer_stream_finish(s, &st, err);
    es_digest digest;
    int64_t size = 0;
    if (r == 0) r = es_compressor_finish(comp, &digest, &size, err);
    if (r == 0) r = tmp_commit(&fd, &tmp, out_path, err);
    if (r == 0 && outblob) {
        memset(outblob, 0, sizeof *outblob);
        outblob->path = out_path;
        outblob->digest = digest;
        outblob->size = size;
        outblob->diff_id = st.diff_id;
        outblob->compression = opts.compression;
    }
    es_compressor_free(comp);
    tmp_abort(&fd, &tmp);
    es_layer_stream_free(s);
    return r;
}
