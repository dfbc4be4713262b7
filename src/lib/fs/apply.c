/*
 * Applying layer entries under a root directory fd, safely (see fs/apply.h for the contract).
 *
 * Per entry: the parent is resolved in the root (beneath.c; missing parents are created 0755),
 * then only the last component is touched, with *at() calls that never follow it: an existing
 * entry in the way is removed (a directory is kept when a directory replaces it), the new one is
 * created (files O_CREAT|O_EXCL|O_NOFOLLOW, so a hardlinked file of a lower layer is never
 * written through), then owner, mode, xattrs (security.capability after chown, which clears it)
 * and mtime are set.
 *
 * Whiteouts: ".wh.X" removes X and everything below it; ".wh..wh..opq" in D removes everything
 * in D that the current layer did not create. We remember every path the layer created (and its
 * ancestors), so a marker that arrives after the layer's own entries in D keeps them: the result
 * is the same as applying the opaque marker first. Whiteout files are never created.
 *
 * Directories: mode and mtime are deferred to the end of the session (the whole image for
 * es_unpack_image), deepest first, so writing their contents cannot change them and a read-only
 * directory does not stop us writing into it.
 */
#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/fs_internal.h"

typedef struct {
    char *path;
    mode_t mode;
    struct timespec mtime;
} dir_meta;

struct es_apply_session {
    int rootfd;
    es_apply_opts o;
    int is_root;
    es_pathset *created; /* paths created by the current layer, with their ancestors */
    es_pathset *deferred_seen;
    dir_meta *dirs;
    size_t n_dirs, cap_dirs;
    char *cached_parent; /* parent path of the last entry and its fd */
    int cached_fd;
    unsigned char *buf;
};

#define DATA_BUF (256 * 1024)

void es_apply_opts_default(es_apply_opts *o)
{
    memset(o, 0, sizeof *o);
    o->keep_owner = geteuid() == 0;
    o->keep_xattrs = 1;
}

es_apply_session *es_apply_session_new(int rootfd, const es_apply_opts *o)
{
    es_apply_session *a = es_xcalloc(1, sizeof *a);
    a->rootfd = rootfd;
    if (o) a->o = *o;
    else es_apply_opts_default(&a->o);
    a->is_root = geteuid() == 0;
    a->created = es_pathset_new();
    a->deferred_seen = es_pathset_new();
    a->cached_fd = -1;
    a->buf = es_xmalloc(DATA_BUF);
    return a;
}

void es_apply_session_free(es_apply_session *a)
{
    if (!a) return;
    es_pathset_free(a->created);
    es_pathset_free(a->deferred_seen);
    for (size_t i = 0; i < a->n_dirs; i++) free(a->dirs[i].path);
    free(a->dirs);
    free(a->cached_parent);
    if (a->cached_fd >= 0) close(a->cached_fd);
    free(a->buf);
    free(a);
}

/* Any removal may change what a cached parent path resolves to. */
static void forget_parent(es_apply_session *a)
{
    if (a->cached_fd >= 0) close(a->cached_fd);
    a->cached_fd = -1;
    free(a->cached_parent);
    a->cached_parent = NULL;
}

/* Returns a borrowed fd of the parent directory (created if missing). */
static int parent_fd(es_apply_session *a, const char *parent, const char *name, es_error *err)
{
    if (a->cached_parent && strcmp(a->cached_parent, parent) == 0) return a->cached_fd;
    forget_parent(a);
    int fd = es_open_dir_in_root_create(a->rootfd, parent, name, err);
    if (fd < 0) return -1;
    a->cached_fd = fd;
    a->cached_parent = es_xstrdup(parent);
    return fd;
}

static void mark_created(es_apply_session *a, const char *path)
{
    es_cleanup_free char *p = es_xstrdup(path);
    for (;;) {
        if (!es_pathset_add(a->created, p)) return; /* ancestors already in */
        char *slash = strrchr(p, '/');
        if (!slash) return;
        *slash = 0;
    }
}

static void defer_dir(es_apply_session *a, const char *path, mode_t mode, struct timespec mtime)
{
    size_t at;
    if (!es_pathset_put(a->deferred_seen, path, a->n_dirs, &at)) {
        a->dirs[at].mode = mode; /* the last layer's metadata wins */
        a->dirs[at].mtime = mtime;
        return;
    }
    if (a->n_dirs == a->cap_dirs) {
        a->cap_dirs = a->cap_dirs ? 2 * a->cap_dirs : 256;
        a->dirs = es_xrealloc(a->dirs, a->cap_dirs * sizeof *a->dirs);
    }
    a->dirs[a->n_dirs++] = (dir_meta){es_xstrdup(path), mode, mtime};
}

/* ---------------------------------------------------------------- metadata */

static int set_owner(es_apply_session *a, int fd, const char *base, struct archive_entry *e,
                     const char *path, es_error *err)
{
    if (!a->o.keep_owner) return 0;
    int r = base ? fchownat(fd, base, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e), AT_SYMLINK_NOFOLLOW)
                 : fchown(fd, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e));
    if (r < 0 && a->is_root) return es_err_sys(err, ES_EIO, "%s: chown", path);
    return 0;
}

static int set_xattrs(es_apply_session *a, int fd, struct archive_entry *e, const char *path, es_error *err)
{
    if (!a->o.keep_xattrs) return 0;
    const char *name;
    const void *val;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK) {
        if (fsetxattr(fd, name, val, size, 0) == 0) continue;
        if (!a->is_root || errno == ENOTSUP || errno == EOPNOTSUPP) continue;
        return es_err_sys(err, ES_EIO, "%s: setting xattr %s", path, name);
    }
    return 0;
}

static struct timespec entry_mtime(struct archive_entry *e)
{
    struct timespec t = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
    return t;
}

/* ---------------------------------------------------------------- entry kinds */

/* Removes whatever is at parent/base unless it is a directory and keep_dir is set.
 * Returns 1 if a directory was kept. */
static int clear_way(es_apply_session *a, int pfd, const char *base, int keep_dir, const char *path,
                     es_error *err)
{
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) return 0;
        return es_err_sys(err, ES_EIO, "%s: stat", path);
    }
    if (keep_dir && S_ISDIR(st.st_mode)) return 1;
    (void)a; /* removing below the cached parent leaves the parent itself valid */
    if (es_remove_tree_at(pfd, base) < 0) return es_err_sys(err, ES_EIO, "%s: cannot replace existing entry", path);
    return 0;
}

static int write_data(es_apply_session *a, int fd, es_layer_stream *s, const char *path,
                      es_apply_stats *st, es_error *err)
{
    for (;;) {
        ssize_t k = es_layer_stream_read(s, a->buf, DATA_BUF, err);
        if (k < 0) return -1;
        if (k == 0) return 0;
        for (ssize_t off = 0; off < k;) {
            ssize_t w = write(fd, a->buf + off, (size_t)(k - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return es_err_sys(err, ES_EIO, "%s: write", path);
            off += w;
        }
        st->bytes += k;
    }
}

static int apply_file(es_apply_session *a, int pfd, const char *base, struct archive_entry *e,
                      es_layer_stream *s, const char *path, es_apply_stats *st, es_error *err)
{
    if (clear_way(a, pfd, base, 0, path, err) < 0) return -1;
    int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return es_err_sys(err, ES_EIO, "%s: create", path);
    int r = write_data(a, fd, s, path, st, err);
    if (r == 0) r = set_owner(a, fd, NULL, e, path, err);
    if (r == 0 && fchmod(fd, archive_entry_perm(e)) < 0) r = es_err_sys(err, ES_EIO, "%s: chmod", path);
    if (r == 0) r = set_xattrs(a, fd, e, path, err);
    struct timespec t[2] = {entry_mtime(e), entry_mtime(e)};
    if (r == 0 && futimens(fd, t) < 0) r = es_err_sys(err, ES_EIO, "%s: set mtime", path);
    close(fd);
    st->files++;
    return r;
}

static int apply_dir(es_apply_session *a, int pfd, const char *base, struct archive_entry *e,
                     const char *path, es_apply_stats *st, es_error *err)
{
    int kept = clear_way(a, pfd, base, 1, path, err);
    if (kept < 0) return -1;
    if (!kept && mkdirat(pfd, base, 0755) < 0) return es_err_sys(err, ES_EIO, "%s: mkdir", path);
    int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return es_err_sys(err, ES_EIO, "%s: open directory", path);
    int r = set_owner(a, fd, NULL, e, path, err);
    if (r == 0) r = set_xattrs(a, fd, e, path, err);
    close(fd);
    defer_dir(a, path, archive_entry_perm(e), entry_mtime(e));
    st->dirs++;
    return r;
}

static int apply_symlink(es_apply_session *a, int pfd, const char *base, struct archive_entry *e,
                         const char *path, es_apply_stats *st, es_error *err)
{
    const char *target = archive_entry_symlink(e);
    if (!target) target = archive_entry_symlink_utf8(e);
    if (!target) return es_err(err, ES_EFORMAT, "%s: symlink without a target", path);
    if (clear_way(a, pfd, base, 0, path, err) < 0) return -1;
    if (symlinkat(target, pfd, base) < 0) return es_err_sys(err, ES_EIO, "%s: symlink", path);
    if (set_owner(a, pfd, base, e, path, err) < 0) return -1;
    struct timespec t[2] = {entry_mtime(e), entry_mtime(e)};
    utimensat(pfd, base, t, AT_SYMLINK_NOFOLLOW);
    st->symlinks++;
    return 0;
}

static int apply_hardlink(es_apply_session *a, int pfd, const char *base, const char *target,
                          const char *path, es_apply_stats *st, es_error *err)
{
    es_cleanup_free char *tparent = es_xstrdup(target);
    char *slash = strrchr(tparent, '/');
    const char *tbase = slash ? slash + 1 : tparent;
    if (slash) *slash = 0;
    int tfd = es_open_dir_in_root(a->rootfd, slash ? tparent : "");
    if (tfd < 0)
        return es_err_sys(err, errno == EXDEV || errno == ELOOP ? ES_EUNSAFE : ES_EFORMAT,
                          "%s: hardlink target '%s' not found in the root", path, target);
    struct stat ts;
    int r = 0;
    if (fstatat(tfd, tbase, &ts, AT_SYMLINK_NOFOLLOW) < 0)
        r = es_err_sys(err, ES_EFORMAT, "%s: hardlink target '%s' not found in the root", path, target);
    else if (!S_ISREG(ts.st_mode))
        r = es_err(err, ES_EUNSAFE, "%s: hardlink target '%s' is not a regular file", path, target);
    if (r == 0 && strcmp(path, target) == 0) {
        close(tfd);
        return 0; /* a link to itself changes nothing */
    }
    if (r == 0) r = clear_way(a, pfd, base, 0, path, err);
    if (r == 0 && linkat(tfd, tbase, pfd, base, 0) < 0)
        r = es_err_sys(err, ES_EIO, "%s: hardlink to '%s'", path, target);
    close(tfd);
    if (r == 0) st->hardlinks++;
    return r;
}

static int apply_node(es_apply_session *a, int pfd, const char *base, struct archive_entry *e,
                      const char *path, es_apply_stats *st, es_error *err)
{
    mode_t type = archive_entry_filetype(e);
    if (type != AE_IFIFO && !a->o.allow_devices) {
        if (a->o.skip_devices) {
            st->skipped_devices++;
            return 0;
        }
        return es_err(err, ES_EUNSAFE, "%s: device node not permitted (use --allow-devices or --skip-devices)", path);
    }
    if (clear_way(a, pfd, base, 0, path, err) < 0) return -1;
    if (mknodat(pfd, base, type | archive_entry_perm(e), archive_entry_rdev(e)) < 0)
        return es_err_sys(err, errno == EPERM ? ES_EUNSAFE : ES_EIO, "%s: mknod", path);
    if (set_owner(a, pfd, base, e, path, err) < 0) return -1;
    if (fchmodat(pfd, base, archive_entry_perm(e), 0) < 0) return es_err_sys(err, ES_EIO, "%s: chmod", path);
    struct timespec t[2] = {entry_mtime(e), entry_mtime(e)};
    utimensat(pfd, base, t, AT_SYMLINK_NOFOLLOW);
    st->devices++;
    return 0;
}

/* ---------------------------------------------------------------- whiteouts */

static int apply_whiteout(es_apply_session *a, const char *target, const char *path, es_error *err)
{
    es_cleanup_free char *parent = es_xstrdup(target);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : parent;
    if (slash) *slash = 0;
    int pfd = es_open_dir_in_root(a->rootfd, slash ? parent : "");
    if (pfd < 0) return 0; /* nothing there to hide */
    forget_parent(a);
    int r = es_remove_tree_at(pfd, base);
    close(pfd);
    return r < 0 ? es_err_sys(err, ES_EIO, "%s: cannot remove '%s'", path, target) : 0;
}

/* Removes everything below dirfd (at relative path dir) not created by this layer. */
static int clear_opaque(es_apply_session *a, int dirfd, const char *dir)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return -1;
    }
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        es_cleanup_free char *child = *dir ? es_xasprintf("%s/%s", dir, de->d_name) : es_xstrdup(de->d_name);
        if (!es_pathset_has(a->created, child)) {
            if (es_remove_tree_at(dirfd, de->d_name) < 0) r = -1;
            continue;
        }
        int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0 && clear_opaque(a, sub, child) < 0) r = -1;
    }
    closedir(d);
    return r;
}

static int apply_opaque(es_apply_session *a, const char *dir, const char *path, es_error *err)
{
    int fd = es_open_dir_in_root_nofollow(a->rootfd, dir);
    if (fd < 0) return 0; /* the directory does not exist (yet): nothing below to hide */
    forget_parent(a);
    if (clear_opaque(a, fd, dir) < 0) return es_err_sys(err, ES_EIO, "%s: cannot clear opaque directory", path);
    return 0;
}

/* ---------------------------------------------------------------- one entry, one layer */

static int apply_entry(es_apply_session *a, es_layer_stream *s, struct archive_entry *e,
                       es_apply_stats *st, es_error *err)
{
    const char *path = archive_entry_pathname(e);
    char *target = NULL;
    es_whiteout wh = es_whiteout_kind(path, &target);
    if (wh != ES_WH_NONE) {
        int r = 0;
        if (wh == ES_WH_OPAQUE) r = apply_opaque(a, target, path, err);
        else if (target) r = apply_whiteout(a, target, path, err);
        free(target);
        st->whiteouts++;
        return r;
    }
    es_cleanup_free char *parent = es_xstrdup(path);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : parent;
    if (slash) *slash = 0;
    int pfd = parent_fd(a, slash ? parent : "", path, err);
    if (pfd < 0) return -1;
    mark_created(a, path);
    const char *hl = archive_entry_hardlink(e);
    if (hl) return apply_hardlink(a, pfd, base, hl, path, st, err);
    switch (archive_entry_filetype(e)) {
    case AE_IFREG: return apply_file(a, pfd, base, e, s, path, st, err);
    case AE_IFDIR: return apply_dir(a, pfd, base, e, path, st, err);
    case AE_IFLNK: return apply_symlink(a, pfd, base, e, path, st, err);
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: return apply_node(a, pfd, base, e, path, st, err);
    default: return es_err(err, ES_EFORMAT, "%s: unsupported entry type 0%o", path, (unsigned)archive_entry_filetype(e));
    }
}

int es_apply_session_layer(es_apply_session *a, es_layer_stream *s, es_apply_stats *st,
                           void (*on_entry)(void *arg), void *arg, es_error *err)
{
    es_pathset_clear(a->created);
    forget_parent(a);
    struct archive_entry *e;
    int r;
    while ((r = es_layer_stream_next(s, &e, err)) > 0) {
        if (apply_entry(a, s, e, st, err) < 0) return -1;
        if (on_entry) on_entry(arg);
    }
    forget_parent(a);
    return r;
}

static int cmp_depth_desc(const void *x, const void *y)
{
    const dir_meta *p = x, *q = y;
    size_t dp = 0, dq = 0;
    for (const char *c = p->path; *c; c++) dp += *c == '/';
    for (const char *c = q->path; *c; c++) dq += *c == '/';
    return dp < dq ? 1 : dp > dq ? -1 : strcmp(p->path, q->path);
}

int es_apply_session_end(es_apply_session *a, es_error *err)
{
    if (a->n_dirs) qsort(a->dirs, a->n_dirs, sizeof *a->dirs, cmp_depth_desc);
    int r = 0;
    for (size_t i = 0; i < a->n_dirs && r == 0; i++) {
        /* A directory removed or replaced by a later layer has nothing to restore. */
        int fd = es_open_dir_in_root_nofollow(a->rootfd, a->dirs[i].path);
        if (fd < 0) continue;
        if (fchmod(fd, a->dirs[i].mode) < 0) r = es_err_sys(err, ES_EIO, "%s: chmod", a->dirs[i].path);
        struct timespec t[2] = {a->dirs[i].mtime, a->dirs[i].mtime};
        if (r == 0 && futimens(fd, t) < 0) r = es_err_sys(err, ES_EIO, "%s: set mtime", a->dirs[i].path);
        close(fd);
    }
    es_apply_session_free(a);
    return r;
}

int es_apply_layer(int rootfd, es_layer_stream *s, const es_apply_opts *o, es_apply_stats *st,
                   es_error *err)
{
    es_apply_stats local = {0};
    if (!st) st = &local;
    es_apply_session *a = es_apply_session_new(rootfd, o);
    if (es_apply_session_layer(a, s, st, NULL, NULL, err) < 0) {
        es_apply_session_free(a);
        return -1;
    }
    return es_apply_session_end(a, err);
}
