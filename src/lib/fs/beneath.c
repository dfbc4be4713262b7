/*
 * Resolving paths inside a root directory without ever leaving it. Every lookup of an entry's
 * parent goes through openat2(2) with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS: symlinks stored in
 * the image are followed the way they would be inside the container (an absolute target is
 * taken relative to the root, ".." stops at the root), so `link -> /etc` then `link/passwd`
 * writes ROOT/etc/passwd, never the host's. Where openat2 is missing (ENOSYS, kernels < 5.6)
 * we walk component by component with O_NOFOLLOW and refuse any symlink on the way.
 * Invariant: every fd returned refers to a directory at or below the root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs/fs_internal.h"

static int openat2_dir(int rootfd, const char *path)
{
    struct open_how how = {
        .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
}

static int walk_nofollow(int rootfd, const char *path)
{
    int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    es_cleanup_free char *copy = es_xstrdup(path);
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c && fd >= 0; c = strtok_r(NULL, "/", &save)) {
        int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        errno = e;
        fd = next;
    }
    return fd;
}

int es_open_dir_in_root(int rootfd, const char *path)
{
    static int no_openat2;
    if (!no_openat2) {
        int fd = openat2_dir(rootfd, path);
        if (fd >= 0 || errno != ENOSYS) return fd;
        no_openat2 = 1;
    }
    return walk_nofollow(rootfd, path);
}

int es_open_dir_in_root_nofollow(int rootfd, const char *path)
{
    if (!*path) return es_open_dir_in_root(rootfd, "");
    es_cleanup_free char *parent = es_xstrdup(path);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : parent;
    if (slash) *slash = 0;
    int pfd = es_open_dir_in_root(rootfd, slash ? parent : "");
    if (pfd < 0) return -1;
    int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(pfd);
    errno = e;
    return fd;
}

static int open_failed(const char *path, const char *name, es_error *err)
{
    if (errno == ENOTDIR)
        return es_err(err, ES_EFORMAT, "%s: parent '%s' is not a directory", name, path);
    if (errno == EXDEV || errno == ELOOP)
        return es_err_sys(err, ES_EUNSAFE, "%s: parent '%s' leads out of the root", name, path);
    return es_err_sys(err, ES_EIO, "%s: cannot open parent directory '%s'", name, path);
}

/* Opens prefix (a path below the root), creating its last component if it is missing. */
static int open_or_create(int rootfd, char *prefix, const char *name, es_error *err)
{
    int fd = es_open_dir_in_root(rootfd, prefix);
    if (fd >= 0 || errno != ENOENT) return fd >= 0 ? fd : open_failed(prefix, name, err);
    char *slash = strrchr(prefix, '/');
    const char *base = slash ? slash + 1 : prefix;
    if (slash) *slash = 0;
    int parent = es_open_dir_in_root(rootfd, slash ? prefix : "");
    if (slash) *slash = '/';
    if (parent < 0) return open_failed(prefix, name, err);
    int r = mkdirat(parent, base, 0755);
    close(parent);
    if (r < 0 && errno != EEXIST) return open_failed(prefix, name, err);
    fd = es_open_dir_in_root(rootfd, prefix);
    if (fd >= 0) return fd;
    if (errno == ENOENT && r < 0)
        return es_err(err, ES_EUNSAFE, "%s: parent '%s' is a symlink to a missing directory", name, prefix);
    return open_failed(prefix, name, err);
}

int es_open_dir_in_root_create(int rootfd, const char *path, const char *name, es_error *err)
{
    int fd = es_open_dir_in_root(rootfd, path);
    if (fd >= 0) return fd;
    if (errno != ENOENT) return open_failed(path, name, err);
    /* Create the missing components one by one, each resolved in the root again. */
    char *prefix = es_xstrdup(path);
    for (char *p = prefix;; p++) {
        if (*p != '/' && *p != 0) continue;
        char saved = *p;
        *p = 0;
        fd = open_or_create(rootfd, prefix, name, err);
        *p = saved;
        if (fd < 0 || saved == 0) break;
        close(fd);
    }
    free(prefix);
    return fd;
}

int es_remove_tree_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (es_remove_tree_at(fd, de->d_name) < 0) r = -1;
    }
    closedir(d);
    if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) r = -1;
    return r;
}
