/*
 * Building, hardening and measuring the slim tree (see tree.h).
 */
#include "slim/tree.h"

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

#include "slim/rootfs_path.h"

typedef struct {
    dev_t dev;
    ino_t ino;
    char *dst; /* host path of the first copy */
} inode_link;

typedef struct {
    inode_link *v;
    size_t n, cap;
} inode_map;

static const char *find_link(const inode_map *m, dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].dev == dev && m->v[i].ino == ino) return m->v[i].dst;
    return NULL;
}

static void add_link(inode_map *m, dev_t dev, ino_t ino, const char *dst)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->v = es_xrealloc(m->v, m->cap * sizeof *m->v);
    }
    m->v[m->n++] = (inode_link){dev, ino, es_xstrdup(dst)};
}

static void copy_xattrs(const char *src, const char *dst)
{
    char names[8192];
    ssize_t n = llistxattr(src, names, sizeof names);
    for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
        char val[65536];
        ssize_t vl = lgetxattr(src, names + off, val, sizeof val);
        if (vl >= 0) lsetxattr(dst, names + off, val, (size_t)vl, 0);
    }
}

static int copy_data(int in, int out)
{
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n == 0) return 0;
        if (n > 0) continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) return -1;
        char buf[65536];
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, (size_t)r) != r) return -1;
        return r < 0 ? -1 : 0;
    }
}

static int copy_regular(const char *src, const char *dst, const struct stat *st, int64_t *stripped,
                        es_error *err, const char *cpath)
{
    es_cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) return es_err_sys(err, ES_EIO, "%s: cannot read from the unpacked image", cpath);
    es_cleanup_close int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) return es_err_sys(err, ES_EIO, "%s: cannot create in the slim tree", cpath);
    if (copy_data(in, out) < 0) return es_err_sys(err, ES_EIO, "%s: copy failed", cpath);
    mode_t mode = st->st_mode & 07777;
    if (mode & (S_ISUID | S_ISGID)) {
        mode &= (mode_t) ~(S_ISUID | S_ISGID);
        (*stripped)++;
    }
    if (fchown(out, st->st_uid, st->st_gid) < 0 && errno != EPERM)
        return es_err_sys(err, ES_EIO, "%s: chown", cpath);
    copy_xattrs(src, dst);
    if (fchmod(out, mode) < 0) return es_err_sys(err, ES_EIO, "%s: chmod", cpath);
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    futimens(out, ts);
    return 0;
}

/* Parent of cpath inside dst is a real directory reached without symlinks. */
static int parent_is_safe(const char *dst_root, const char *cpath)
{
    char *parent = es_xstrdup(cpath);
    char *slash = strrchr(parent, '/');
    if (slash) *(slash == parent ? slash + 1 : slash) = 0;
    char *res = NULL;
    int rc = es_rootfs_resolve(dst_root, parent, 1, NULL, 0, &res, NULL);
    int ok = rc == 1 && !strcmp(res, parent);
    if (ok) {
        char *h = es_rootfs_host_path(dst_root, parent);
        struct stat st;
        ok = lstat(h, &st) == 0 && S_ISDIR(st.st_mode);
        free(h);
    }
    free(res);
    free(parent);
    return ok;
}

static int copy_entry(const char *src_root, const char *dst_root, const char *cpath, inode_map *links,
                      int64_t *stripped, es_error *err)
{
    char *src = es_rootfs_host_path(src_root, cpath), *dst = es_rootfs_host_path(dst_root, cpath);
    struct stat st;
    int rc = 0;
    if (lstat(src, &st) < 0 || !parent_is_safe(dst_root, cpath)) goto out;
    if (S_ISDIR(st.st_mode)) {
        if (mkdir(dst, 0700) < 0 && errno != EEXIST) { rc = es_err_sys(err, ES_EIO, "%s: mkdir in the slim tree", cpath); goto out; }
        if (lchown(dst, st.st_uid, st.st_gid) < 0 && errno != EPERM) { rc = es_err_sys(err, ES_EIO, "%s: chown", cpath); goto out; }
        chmod(dst, st.st_mode & 01777);
        copy_xattrs(src, dst);
    } else if (S_ISREG(st.st_mode)) {
        const char *first = st.st_nlink > 1 ? find_link(links, st.st_dev, st.st_ino) : NULL;
        if (first) {
            if (link(first, dst) < 0) rc = es_err_sys(err, ES_EIO, "%s: hardlink in the slim tree", cpath);
        } else {
            rc = copy_regular(src, dst, &st, stripped, err, cpath);
            if (rc == 0 && st.st_nlink > 1) add_link(links, st.st_dev, st.st_ino, dst);
        }
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n < 0) { rc = es_err_sys(err, ES_EIO, "%s: readlink", cpath); goto out; }
        target[n] = 0;
        if (symlink(target, dst) < 0) { rc = es_err_sys(err, ES_EIO, "%s: symlink in the slim tree", cpath); goto out; }
        lchown(dst, st.st_uid, st.st_gid);
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW);
    } else if (S_ISFIFO(st.st_mode)) {
        if (mkfifo(dst, st.st_mode & 0777) == 0) lchown(dst, st.st_uid, st.st_gid);
    }
out:
    free(src);
    free(dst);
    return rc;
}

/* Directory mtimes last: creating children changes them. */
static void fix_dir_times(const char *src_root, const char *dst_root, const char **paths, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        char *src = es_rootfs_host_path(src_root, paths[i]);
        struct stat st;
        if (lstat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
            char *dst = es_rootfs_host_path(dst_root, paths[i]);
            struct timespec ts[2] = {st.st_atim, st.st_mtim};
            utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW);
            free(dst);
        }
        free(src);
    }
}

int es_tree_copy(const char *src_root, const char *dst_root, const es_keepset *ks, int64_t *stripped,
                 es_error *err)
{
    size_t n = 0;
    const char **paths = es_keepset_sorted(ks, &n);
    inode_map links = {0};
    int rc = 0;
    *stripped = 0;
    for (size_t i = 0; i < n && rc == 0; i++) rc = copy_entry(src_root, dst_root, paths[i], &links, stripped, err);
    if (rc == 0) fix_dir_times(src_root, dst_root, paths, n);
    for (size_t i = 0; i < links.n; i++) free(links.v[i].dst);
    free(links.v);
    free(paths);
    return rc;
}

static const char *const shells[] = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "rbash", NULL};
static const char *const pkg_managers[] = {"apt", "apt-get", "aptitude", "dpkg", "apk", "yum", "dnf", "microdnf", "rpm", "pip", "pip3", "zypper", NULL};
static const char *const bin_dirs[] = {"/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", NULL};

static int in_list(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(list[i], name)) return 1;
    return 0;
}

typedef struct {
    es_tree_stats *st;
    inode_map seen;
} measure_ctx;

static void measure_dir(const char *host, measure_ctx *m)
{
    DIR *d = opendir(host);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *p = es_xasprintf("%s/%s", host, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                m->st->dirs++;
                measure_dir(p, m);
            } else {
                m->st->files++;
                if (S_ISREG(st.st_mode)) {
                    if (st.st_mode & (S_ISUID | S_ISGID)) m->st->setuid++;
                    if (st.st_nlink > 1 && find_link(&m->seen, st.st_dev, st.st_ino)) { free(p); continue; }
                    if (st.st_nlink > 1) add_link(&m->seen, st.st_dev, st.st_ino, "");
                    m->st->bytes += st.st_size;
                }
            }
        }
        free(p);
    }
    closedir(d);
}

/* Shells and package managers: names in the usual bin dirs (each dir once even when /bin is a
 * symlink to /usr/bin; a dangling symlink does not count). */
static void count_tools(const char *root, es_tree_stats *st)
{
    char *seen_dirs[8] = {0};
    int ns = 0;
    for (size_t i = 0; bin_dirs[i]; i++) {
        char *res = NULL;
        if (es_rootfs_resolve(root, bin_dirs[i], 1, NULL, 0, &res, NULL) != 1) { free(res); continue; }
        int dup = 0;
        for (int k = 0; k < ns; k++) dup |= !strcmp(seen_dirs[k], res);
        if (dup) { free(res); continue; }
        seen_dirs[ns++] = res;
        char *host = es_rootfs_host_path(root, res);
        DIR *d = opendir(host);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            int sh = in_list(shells, de->d_name), pm = in_list(pkg_managers, de->d_name);
            if (!sh && !pm) continue;
            char *p = es_xasprintf("%s/%s", host, de->d_name);
            struct stat s;
            if (stat(p, &s) == 0 && S_ISREG(s.st_mode)) st->shells += sh, st->pkg_managers += pm;
            free(p);
        }
        if (d) closedir(d);
        free(host);
    }
    for (int k = 0; k < ns; k++) free(seen_dirs[k]);
}

int es_tree_measure(const char *root, es_tree_stats *st)
{
    memset(st, 0, sizeof *st);
    measure_ctx m = {st, {0}};
    measure_dir(root, &m);
    for (size_t i = 0; i < m.seen.n; i++) free(m.seen.v[i].dst);
    free(m.seen.v);
    count_tools(root, st);
    return 0;
}

static int mkdirs(const char *root, const char *cdir)
{
    char *p = es_xstrdup(cdir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            char *h = es_rootfs_host_path(root, p);
            struct stat st;
            if (lstat(h, &st) < 0) mkdir(h, 0755);
            else if (!S_ISDIR(st.st_mode)) { free(h); free(p); errno = ENOTDIR; return -1; }
            free(h);
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return 0;
}

int es_tree_write_file(const char *root, const char *cpath, const char *data, size_t len, int mode,
                       es_error *err)
{
    char *dir = es_xstrdup(cpath);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (mkdirs(root, dir) < 0 || !parent_is_safe(root, cpath)) {
            free(dir);
            return es_err_sys(err, ES_EIO, "%s: cannot create its directory in the slim tree", cpath);
        }
    }
    free(dir);
    char *host = es_rootfs_host_path(root, cpath);
    char *tmp = es_xasprintf("%s.edgeslim-tmp", host);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    int ok = fd >= 0 && write(fd, data, len) == (ssize_t)len;
    if (fd >= 0) {
        if (fchmod(fd, (mode_t)mode) < 0) ok = 0;
        if (close(fd) < 0) ok = 0;
    }
    if (ok && rename(tmp, host) < 0) ok = 0;
    if (!ok) {
        es_err_sys(err, ES_EIO, "%s: cannot write in the slim tree", cpath);
        unlink(tmp);
    }
    free(tmp);
    free(host);
    return ok ? 0 : -1;
}

static char *read_text(const char *root, const char *cpath)
{
    char *res = NULL;
    if (es_rootfs_resolve(root, cpath, 1, NULL, 0, &res, NULL) != 1) { free(res); return NULL; }
    char *h = es_rootfs_host_path(root, res);
    free(res);
    FILE *f = fopen(h, "re");
    free(h);
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    if (n < 0) { free(buf); return es_xstrdup(""); }
    return buf;
}

static int has_entry(const char *text, const char *name)
{
    size_t nl = strlen(name);
    for (const char *l = text; l && *l;) {
        if (!strncmp(l, name, nl) && l[nl] == ':') return 1;
        l = strchr(l, '\n');
        if (l) l++;
    }
    return 0;
}

static int append_entry(const char *root, const char *cpath, const char *dflt, const char *name,
                        const char *line, es_error *err)
{
    char *text = read_text(root, cpath);
    if (!text) text = es_xstrdup(dflt);
    if (has_entry(text, name)) { free(text); return 0; }
    size_t l = strlen(text);
    char *out = es_xasprintf("%s%s%s\n", text, l && text[l - 1] != '\n' ? "\n" : "", line);
    free(text);
    char *res = NULL;
    es_rootfs_resolve(root, cpath, 1, NULL, 0, &res, NULL);
    int rc = es_tree_write_file(root, res ? res : cpath, out, strlen(out), 0644, err);
    free(res);
    free(out);
    return rc;
}

int es_tree_add_nonroot(const char *root, es_error *err)
{
    if (append_entry(root, "/etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\n", "nonroot",
                     "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin", err) < 0)
        return -1;
    if (append_entry(root, "/etc/group", "root:x:0:\n", "nonroot", "nonroot:x:65532:", err) < 0) return -1;
    if (mkdirs(root, "/home/nonroot") < 0) return es_err_sys(err, ES_EIO, "/home/nonroot: cannot create in the slim tree");
    char *h = es_rootfs_host_path(root, "/home/nonroot");
    int rc = chown(h, 65532, 65532) < 0 || chmod(h, 0755) < 0 ? es_err_sys(err, ES_EIO, "/home/nonroot: chown") : 0;
    free(h);
    return rc;
}
