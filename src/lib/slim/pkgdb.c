/*
 * Package database rewrite (see pkgdb.h). Our own small parser rather than analyze/'s: we must
 * keep every stanza byte for byte, which a field-level parser does not preserve. Stanzas are
 * split on blank lines; only the fields we need (Package, Status, Version, Architecture; apk
 * P, V, A, F, R) are looked at.
 */
#include "slim/pkgdb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slim/rootfs_path.h"
#include "util/reader.h"

#define DPKG_STATUS "/var/lib/dpkg/status"
#define DPKG_INFO "/var/lib/dpkg/info"
#define APK_DB "/lib/apk/db/installed"
#define MAX_DB_BYTES (256 << 20)

static char *dup_line(const char *v)
{
    size_t n = strcspn(v, "\n");
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r')) n--;
    char *s = es_xmalloc(n + 1);
    memcpy(s, v, n);
    s[n] = 0;
    return s;
}

/* Value of "Key: value" (dpkg) or "K:value" (apk, sep ':' with no space) at a line start. */
static char *field_value(const char *stanza, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = stanza; p && *p;) {
        if (!strncmp(p, key, kl) && p[kl] == ':') {
            const char *v = p + kl + 1;
            return dup_line(v + strspn(v, " \t"));
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NULL;
}

static void push_pkg(es_pkgdb *db, const char *start, size_t len)
{
    db->v = es_xrealloc(db->v, (db->n + 1) * sizeof *db->v);
    es_pkg *p = &db->v[db->n++];
    memset(p, 0, sizeof *p);
    p->stanza = es_xmalloc(len + 2);
    memcpy(p->stanza, start, len);
    p->stanza[len] = 0;
    if (len && p->stanza[len - 1] != '\n') memcpy(p->stanza + len, "\n", 2); /* the +2 above */
}

/* Splits text into stanzas separated by one or more blank lines. */
static void split_stanzas(const char *text, es_pkgdb *db)
{
    const char *p = text;
    while (*p) {
        while (*p == '\n') p++;
        if (!*p) break;
        const char *end = strstr(p, "\n\n");
        size_t len = end ? (size_t)(end - p) + 1 : strlen(p);
        push_pkg(db, p, len);
        p += len;
    }
}

int es_pkgdb_parse_dpkg_status(const char *text, es_pkgdb *db, es_error *err)
{
    (void)err;
    db->kind = ES_PKGDB_DPKG;
    split_stanzas(text, db);
    for (size_t i = 0; i < db->n; i++) {
        es_pkg *p = &db->v[i];
        p->name = field_value(p->stanza, "Package");
        p->version = field_value(p->stanza, "Version");
        p->arch = field_value(p->stanza, "Architecture");
        char *status = field_value(p->stanza, "Status");
        p->installed = p->name && status && strstr(status, " installed") && !strncmp(status, "install", 7);
        free(status);
    }
    return 0;
}

static int parse_apk_installed(const char *text, es_pkgdb *db)
{
    db->kind = ES_PKGDB_APK;
    split_stanzas(text, db);
    for (size_t i = 0; i < db->n; i++) {
        es_pkg *p = &db->v[i];
        p->name = field_value(p->stanza, "P");
        p->version = field_value(p->stanza, "V");
        p->arch = field_value(p->stanza, "A");
        p->installed = p->name != NULL;
    }
    return 0;
}

static char *slurp_container_file(const char *root, const char *cpath, es_error *err)
{
    char *res = NULL;
    if (es_rootfs_resolve(root, cpath, 1, NULL, 0, &res, NULL) != 1) { free(res); return NULL; }
    char *host = es_rootfs_host_path(root, res);
    free(res);
    es_reader *r = es_reader_file(host, err);
    free(host);
    if (!r) return NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = es_reader_slurp(r, MAX_DB_BYTES, cpath, &text, &len, err);
    es_reader_free(r);
    return rc < 0 ? NULL : text;
}

/* A listed path counts when it is not a directory in the original root and its resolution
 * (intermediate symlinks followed, last component not) is in the keep-set. */
static int listed_path_kept(const char *root, const char *path, const es_keepset *ks, int *is_file)
{
    *is_file = 0;
    char *res = NULL;
    int rc = es_rootfs_resolve(root, path, 0, NULL, 0, &res, NULL);
    int kept = 0;
    if (rc == 1) {
        char *host = es_rootfs_host_path(root, res);
        struct stat st, fst;
        /* A directory the package ships may be a symlink to a directory here (merged /usr:
         * "/lib"); it is still a directory, not a file of the package. */
        int dir_like = stat(host, &fst) == 0 && S_ISDIR(fst.st_mode);
        if (lstat(host, &st) == 0 && !S_ISDIR(st.st_mode) && !dir_like) {
            *is_file = 1;
            kept = ks && es_keepset_get(ks, res) != 0;
        }
        free(host);
    }
    free(res);
    return kept;
}

static char *dpkg_list_text(const char *root, const es_pkg *p)
{
    char *c = es_xasprintf(DPKG_INFO "/%s:%s.list", p->name, p->arch ? p->arch : "");
    char *t = slurp_container_file(root, c, NULL);
    free(c);
    if (t) return t;
    c = es_xasprintf(DPKG_INFO "/%s.list", p->name);
    t = slurp_container_file(root, c, NULL);
    free(c);
    return t;
}

static void mark_dpkg_kept(const char *root, const es_keepset *ks, es_pkg *p)
{
    char *list = dpkg_list_text(root, p);
    if (!list) return;
    char *save = NULL;
    for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] != '/' || !strcmp(line, "/.")) continue;
        int is_file = 0;
        if (listed_path_kept(root, line, ks, &is_file)) p->kept = 1;
        p->files += (size_t)is_file;
    }
    free(list);
}

static void mark_apk_kept(const char *root, const es_keepset *ks, es_pkg *p)
{
    char dir[4096] = "";
    for (const char *l = p->stanza; l && *l;) {
        if (l[0] == 'F' && l[1] == ':') {
            char *v = dup_line(l + 2);
            snprintf(dir, sizeof dir, "%s", v);
            free(v);
        } else if (l[0] == 'R' && l[1] == ':') {
            char *v = dup_line(l + 2);
            char *path = es_xasprintf("/%s%s%s", dir, dir[0] ? "/" : "", v);
            int is_file = 0;
            if (listed_path_kept(root, path, ks, &is_file)) p->kept = 1;
            p->files += (size_t)is_file;
            free(path);
            free(v);
        }
        l = strchr(l, '\n');
        if (l) l++;
    }
}

static void read_distro(const char *root, es_pkgdb *db)
{
    snprintf(db->distro, sizeof db->distro, "%s", db->kind == ES_PKGDB_APK ? "alpine" : "debian");
    char *t = slurp_container_file(root, "/etc/os-release", NULL);
    if (!t) t = slurp_container_file(root, "/usr/lib/os-release", NULL);
    if (!t) return;
    char *id = field_value(t, "ID");
    /* os-release uses "ID=debian": field_value looks for ':'; parse '=' here. */
    free(id);
    for (char *l = t; l && *l;) {
        if (!strncmp(l, "ID=", 3)) {
            char *v = dup_line(l + 3);
            char *s = v;
            if (*s == '"' || *s == '\'') s++;
            s[strcspn(s, "\"'")] = 0;
            if (*s) snprintf(db->distro, sizeof db->distro, "%s", s);
            free(v);
            break;
        }
        l = strchr(l, '\n');
        if (l) l++;
    }
    free(t);
}

int es_pkgdb_scan(const char *root, const es_keepset *ks, es_pkgdb *db, es_error *err)
{
    memset(db, 0, sizeof *db);
    es_error e2 = {0};
    char *text = slurp_container_file(root, DPKG_STATUS, &e2);
    if (text) {
        es_pkgdb_parse_dpkg_status(text, db, err);
        for (size_t i = 0; i < db->n; i++)
            if (db->v[i].installed) mark_dpkg_kept(root, ks, &db->v[i]);
    } else if ((text = slurp_container_file(root, APK_DB, &e2))) {
        parse_apk_installed(text, db);
        for (size_t i = 0; i < db->n; i++) mark_apk_kept(root, ks, &db->v[i]);
    } else if (e2.code == ES_EUNSAFE) {
        return es_err(err, ES_EUNSAFE, "%s", e2.msg);
    }
    free(text);
    if (db->kind) read_distro(root, db);
    return 0;
}

static int info_file_of(const char *fname, const es_pkg *p)
{
    size_t nl = strlen(p->name);
    if (strncmp(fname, p->name, nl)) return 0;
    const char *rest = fname + nl;
    if (*rest == ':' && p->arch) {
        size_t al = strlen(p->arch);
        if (strncmp(rest + 1, p->arch, al)) return 0;
        rest += 1 + al;
    }
    /* Only what scanners read: the file list, checksums and conffiles (not maintainer scripts,
     * templates or symbol files, which only dpkg itself needs). */
    return !strcmp(rest, ".list") || !strcmp(rest, ".md5sums") || !strcmp(rest, ".conffiles");
}

void es_pkgdb_keep_files(const char *root, const es_pkgdb *db, es_keepset *ks)
{
    if (db->kind == ES_PKGDB_APK) {
        es_rootfs_keep(root, APK_DB, ks, ES_KEEP_META, NULL, NULL);
        return;
    }
    if (db->kind != ES_PKGDB_DPKG) return;
    es_rootfs_keep(root, DPKG_STATUS, ks, ES_KEEP_META, NULL, NULL);
    char *res = NULL;
    if (es_rootfs_resolve(root, DPKG_INFO, 1, ks, ES_KEEP_META, &res, NULL) != 1) { free(res); return; }
    char *host = es_rootfs_host_path(root, res);
    DIR *d = opendir(host);
    free(host);
    if (!d) { free(res); return; }
    struct dirent *de;
    while ((de = readdir(d))) {
        for (size_t i = 0; i < db->n; i++) {
            const es_pkg *p = &db->v[i];
            if (!p->kept || !p->installed || !info_file_of(de->d_name, p)) continue;
            char *c = es_xasprintf("%s/%s", res, de->d_name);
            es_keepset_add(ks, c, ES_KEEP_META);
            free(c);
            break;
        }
    }
    closedir(d);
    free(res);
}

char *es_pkgdb_render(const es_pkgdb *db)
{
    size_t total = 1;
    for (size_t i = 0; i < db->n; i++) total += strlen(db->v[i].stanza) + 1;
    char *out = es_xmalloc(total), *w = out;
    for (size_t i = 0; i < db->n; i++) {
        const es_pkg *p = &db->v[i];
        if (!p->kept || !p->installed) continue;
        size_t l = strlen(p->stanza);
        memcpy(w, p->stanza, l);
        w += l;
        *w++ = '\n'; /* every stanza ends with a blank line, the last one too */
    }
    *w = 0;
    return out;
}

int es_pkgdb_write(const char *slim_root, const es_pkgdb *db, es_error *err)
{
    if (db->kind == ES_PKGDB_NONE) return 0;
    const char *cpath = db->kind == ES_PKGDB_DPKG ? DPKG_STATUS : APK_DB;
    char *res = NULL;
    int rc = es_rootfs_resolve(slim_root, cpath, 1, NULL, 0, &res, err);
    if (rc < 0) return -1;
    char *host = es_rootfs_host_path(slim_root, res);
    free(res);
    char *text = es_pkgdb_render(db);
    char *tmp = es_xasprintf("%s.edgeslim-tmp", host);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    size_t len = strlen(text);
    int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0 && close(fd) < 0) ok = 0;
    if (ok && rename(tmp, host) < 0) ok = 0;
    if (!ok) {
        es_err_sys(err, ES_EIO, "%s: cannot write the rewritten package database", cpath);
        unlink(tmp);
    }
    free(tmp);
    free(text);
    free(host);
    return ok ? 0 : -1;
}

size_t es_pkgdb_installed_count(const es_pkgdb *db)
{
    size_t n = 0;
    for (size_t i = 0; i < db->n; i++) n += db->v[i].installed ? 1 : 0;
    return n;
}

size_t es_pkgdb_kept_count(const es_pkgdb *db)
{
    size_t n = 0;
    for (size_t i = 0; i < db->n; i++) n += db->v[i].installed && db->v[i].kept ? 1 : 0;
    return n;
}

void es_pkgdb_free(es_pkgdb *db)
{
    for (size_t i = 0; i < db->n; i++) {
        free(db->v[i].name);
        free(db->v[i].version);
        free(db->v[i].arch);
        free(db->v[i].stanza);
    }
    free(db->v);
    memset(db, 0, sizeof *db);
}
