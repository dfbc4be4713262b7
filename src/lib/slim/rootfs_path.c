/*
 * Symlink resolution confined to a root directory (see rootfs_path.h). Works on strings plus
 * lstat/readlink of root+prefix where the prefix is always already resolved (contains no
 * symlink), so no host symlink is ever followed by the kernel on our behalf except inside
 * lstat of the last component, which does not follow.
 */
#include "slim/rootfs_path.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINKS 40

char *es_rootfs_host_path(const char *root, const char *p)
{
    while (*p == '/') p++;
    return es_xasprintf("%s/%s", root, p);
}

void es_path_lexical(char *p)
{
    char *out = p, *r = p;
    while (*r) {
        while (*r == '/') r++;
        if (!*r) break;
        size_t n = strcspn(r, "/");
        if (n == 1 && r[0] == '.') {
        } else if (n == 2 && r[0] == '.' && r[1] == '.') {
            while (out > p && *--out != '/') {}
        } else {
            *out++ = '/';
            memmove(out, r, n);
            out += n;
        }
        r += n;
    }
    if (out == p) *out++ = '/';
    *out = 0;
}

/* Drops the last component of resolved container path cur ("/a/b" -> "/a", "/a" -> ""). */
static void pop_component(char *cur)
{
    char *s = strrchr(cur, '/');
    if (s) *s = 0;
}

/* pending = target + "/" + rest (rest may be empty). */
static char *join_pending(const char *target, const char *rest)
{
    if (!rest || !*rest) return es_xstrdup(target);
    return es_xasprintf("%s/%s", target, rest);
}

int es_rootfs_resolve(const char *root, const char *path, int follow_last, es_keepset *ks,
                      unsigned reason, char **out, es_error *err)
{
    size_t cap = strlen(path) + PATH_MAX + 2;
    char *cur = es_xcalloc(1, cap); /* resolved so far: "" means "/" */
    char *pending = es_xstrdup(path);
    int links = 0, exists = 1;
    char *p = pending;
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        char *slash = strchr(p, '/');
        size_t clen = slash ? (size_t)(slash - p) : strlen(p);
        char *rest = slash ? slash + 1 : NULL;
        int last = !rest || !rest[strspn(rest, "/")];
        if (clen == 1 && p[0] == '.') { p = rest ? rest : p + clen; continue; }
        if (clen == 2 && p[0] == '.' && p[1] == '.') {
            pop_component(cur);
            p = rest ? rest : p + clen;
            continue;
        }
        size_t curlen = strlen(cur);
        if (curlen + 1 + clen + 1 > cap) {
            cap = curlen + clen + PATH_MAX;
            cur = es_xrealloc(cur, cap);
        }
        cur[curlen] = '/';
        memcpy(cur + curlen + 1, p, clen);
        cur[curlen + 1 + clen] = 0;
        if (!exists) { p = rest ? rest : p + clen; continue; }
        char *host = es_rootfs_host_path(root, cur);
        struct stat st;
        if (lstat(host, &st) < 0) {
            exists = 0;
            free(host);
            p = rest ? rest : p + clen;
            continue;
        }
        if (S_ISLNK(st.st_mode) && (!last || follow_last)) {
            char target[PATH_MAX];
            ssize_t n = readlink(host, target, sizeof target - 1);
            free(host);
            if (n < 0) { exists = 0; p = rest ? rest : p + clen; continue; }
            target[n] = 0;
            if (++links > MAX_LINKS) {
                free(pending);
                free(cur);
                return es_err(err, ES_EUNSAFE, "%s: too many levels of symbolic links", path);
            }
            if (ks) es_keepset_add(ks, cur, reason);
            char *np = join_pending(target, rest);
            if (target[0] == '/') cur[0] = 0;
            else pop_component(cur);
            free(pending);
            pending = p = np;
            continue;
        }
        free(host);
        p = rest ? rest : p + clen;
    }
    if (!cur[0]) memcpy(cur, "/", 2); /* cap >= PATH_MAX + 2 */
    free(pending);
    *out = cur;
    return exists;
}

int es_rootfs_keep(const char *root, const char *path, es_keepset *ks, unsigned reason,
                   char **resolved, es_error *err)
{
    char *r = NULL;
    int rc = es_rootfs_resolve(root, path, 1, ks, reason, &r, err);
    if (rc == 1) es_keepset_add(ks, r, reason);
    if (resolved && rc == 1) *resolved = r;
    else free(r);
    return rc;
}
