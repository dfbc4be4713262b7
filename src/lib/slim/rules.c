/*
 * Keep rules and presets (see rules.h). The glob matcher is hand-written because fnmatch has no
 * `**`; bracket expressions are delegated to fnmatch one character at a time.
 */
#include "slim/rules.h"

#include <dirent.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "slim/rootfs_path.h"
#include "util/reader.h"

int es_rules_add(es_rules *r, es_rule_kind kind, const char *pattern, es_error *err)
{
    if (kind != ES_RULE_INCLUDE_SHELL && (!pattern || pattern[0] != '/'))
        return es_err(err, ES_EUSAGE, "rule pattern must be an absolute path: '%s'", pattern ? pattern : "");
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->v = es_xrealloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n].kind = kind;
    r->v[r->n].pattern = pattern ? es_xstrdup(pattern) : NULL;
    r->n++;
    return 0;
}

void es_rules_free(es_rules *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->v[i].pattern);
    free(r->v);
    memset(r, 0, sizeof *r);
}

static char *trim(char *s)
{
    s += strspn(s, " \t");
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1])) s[--n] = 0;
    return s;
}

int es_rules_parse_text(es_rules *r, const char *text, const char *name, es_error *err)
{
    char *dup = es_xstrdup(text), *save = NULL;
    int lineno = 0, rc = 0;
    /* strtok_r would skip empty lines and lose line numbers: split by hand. */
    char *line = dup;
    (void)save;
    while (line && rc == 0) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lineno++;
        char *s = trim(line);
        if (*s && *s != '#') {
            char *arg = s + strcspn(s, " \t");
            if (*arg) *arg++ = 0;
            arg = trim(arg);
            es_rule_kind k;
            if (!strcmp(s, "include")) k = ES_RULE_INCLUDE;
            else if (!strcmp(s, "include-bin")) k = ES_RULE_INCLUDE_BIN;
            else if (!strcmp(s, "include-shell")) k = ES_RULE_INCLUDE_SHELL;
            else if (!strcmp(s, "exclude")) k = ES_RULE_EXCLUDE;
            else {
                rc = es_err(err, ES_EUSAGE, "%s:%d: unknown rule '%s' (include, include-bin, include-shell, exclude)", name, lineno, s);
                break;
            }
            if (k == ES_RULE_INCLUDE_SHELL && *arg) {
                rc = es_err(err, ES_EUSAGE, "%s:%d: include-shell takes no argument", name, lineno);
            } else if (k != ES_RULE_INCLUDE_SHELL && (!*arg || arg[0] != '/')) {
                rc = es_err(err, ES_EUSAGE, "%s:%d: %s needs an absolute path, got '%s'", name, lineno, s, arg);
            } else {
                rc = es_rules_add(r, k, k == ES_RULE_INCLUDE_SHELL ? NULL : arg, err);
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(dup);
    return rc;
}

int es_rules_parse_file(es_rules *r, const char *path, es_error *err)
{
    es_reader *rd = es_reader_file(path, err);
    if (!rd) return -1;
    char *text = NULL;
    size_t len = 0;
    int rc = es_reader_slurp(rd, 1 << 20, path, &text, &len, err);
    es_reader_free(rd);
    if (rc < 0) return -1;
    rc = es_rules_parse_text(r, text, path, err);
    free(text);
    return rc;
}

static int match_bracket(const char **pp, char c)
{
    const char *p = *pp, *end = p + 1;
    if (*end == '!' || *end == '^') end++;
    if (*end == ']') end++;
    while (*end && *end != ']') end++;
    if (!*end) return -1; /* not a bracket expression: literal '[' */
    char pat[256], str[2] = {c, 0};
    size_t n = (size_t)(end - p + 1);
    if (n >= sizeof pat) return 0;
    memcpy(pat, p, n);
    pat[n] = 0;
    *pp = end + 1;
    return fnmatch(pat, str, 0) == 0;
}

int es_glob_match(const char *p, const char *s)
{
    for (;;) {
        if (!*p) return !*s;
        if (p[0] == '*' && p[1] == '*') {
            p += 2;
            if (*p == '/' && es_glob_match(p + 1, s)) return 1; /* a double star between slashes: zero dirs */
            for (const char *t = s;; t++) {
                if (es_glob_match(p, t)) return 1;
                if (!*t) return 0;
            }
        }
        if (*p == '*') {
            p++;
            for (const char *t = s;; t++) {
                if (es_glob_match(p, t)) return 1;
                if (!*t || *t == '/') return 0;
            }
        }
        if (!*s) return 0;
        if (*p == '?') {
            if (*s == '/') return 0;
            p++, s++;
            continue;
        }
        if (*p == '[') {
            const char *q = p;
            int m = match_bracket(&q, *s);
            if (m >= 0) {
                if (!m || *s == '/') return 0;
                p = q, s++;
                continue;
            }
        }
        if (*p == '\\' && p[1]) p++;
        if (*p != *s) return 0;
        p++, s++;
    }
}

int es_rule_covers(const char *pattern, const char *path)
{
    if (es_glob_match(pattern, path)) return 1;
    size_t n = strlen(path);
    char *tmp = es_xstrdup(path);
    int hit = 0;
    while (!hit && n > 1) {
        while (n > 1 && tmp[n - 1] != '/') n--;
        if (n <= 1) break;
        tmp[--n] = 0;
        hit = es_glob_match(pattern, tmp);
    }
    free(tmp);
    return hit;
}

static int has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

typedef int (*walk_fn)(const char *cpath, const struct stat *st, void *arg);

/* Depth-first walk of the container dir cdir (not following symlinks). */
static void walk_tree(const char *root, const char *cdir, walk_fn fn, void *arg)
{
    char *host = es_rootfs_host_path(root, cdir);
    DIR *d = opendir(host);
    free(host);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *c = es_xasprintf("%s/%s", strcmp(cdir, "/") ? cdir : "", de->d_name);
        char *h = es_rootfs_host_path(root, c);
        struct stat st;
        if (lstat(h, &st) == 0) {
            fn(c, &st, arg);
            if (S_ISDIR(st.st_mode)) walk_tree(root, c, fn, arg);
        }
        free(h);
        free(c);
    }
    closedir(d);
}

typedef struct {
    const char *pattern;
    es_keepset *ks;
    size_t hits;
} glob_walk;

static int keep_if_match(const char *cpath, const struct stat *st, void *arg)
{
    (void)st;
    glob_walk *g = arg;
    if (es_rule_covers(g->pattern, cpath)) {
        es_keepset_add(g->ks, cpath, ES_KEEP_RULE);
        g->hits++;
    }
    return 0;
}

static int keep_all(const char *cpath, const struct stat *st, void *arg)
{
    (void)st;
    es_keepset_add(arg, cpath, ES_KEEP_RULE);
    return 0;
}

/* Longest leading directory of a pattern without glob characters (a pattern under /usr/lib -> "/usr/lib"). */
static char *glob_base(const char *pattern)
{
    char *b = es_xstrdup(pattern);
    char *g = strpbrk(b, "*?[");
    if (g) *g = 0;
    char *slash = strrchr(b, '/');
    if (slash) *(slash == b ? slash + 1 : slash) = 0;
    return b;
}

static int apply_include(const es_rule *rule, const char *root, es_keepset *ks, es_error *err)
{
    if (has_glob(rule->pattern)) {
        char *base = glob_base(rule->pattern);
        glob_walk g = {rule->pattern, ks, 0};
        walk_tree(root, base, keep_if_match, &g);
        free(base);
        if (!g.hits) return es_err(err, ES_EUSAGE, "--include %s: matches nothing in the image", rule->pattern);
        return 0;
    }
    char *resolved = NULL;
    int rc = es_rootfs_keep(root, rule->pattern, ks, ES_KEEP_RULE, &resolved, err);
    if (rc < 0) return -1;
    if (rc == 0) return es_err(err, ES_EUSAGE, "--include %s: no such file in the image", rule->pattern);
    char *host = es_rootfs_host_path(root, resolved);
    struct stat st;
    if (lstat(host, &st) == 0 && S_ISDIR(st.st_mode)) walk_tree(root, resolved, keep_all, ks);
    free(host);
    free(resolved);
    return 0;
}

int es_rules_apply_includes(const es_rules *r, const char *root, es_closure *c, es_keepset *ks,
                            es_error *err)
{
    for (size_t i = 0; i < r->n; i++) {
        const es_rule *rule = &r->v[i];
        int rc = 0;
        switch (rule->kind) {
        case ES_RULE_INCLUDE: rc = apply_include(rule, root, ks, err); break;
        case ES_RULE_INCLUDE_BIN:
            rc = es_closure_add(c, rule->pattern, ks, ES_KEEP_RULE, err);
            if (rc == 0) rc = es_err(err, ES_EUSAGE, "--include-bin %s: no such file in the image", rule->pattern);
            break;
        case ES_RULE_INCLUDE_SHELL:
            rc = es_closure_add(c, "/bin/sh", ks, ES_KEEP_RULE, err);
            if (rc == 0) rc = es_err(err, ES_EUSAGE, "--include-shell: the image has no /bin/sh");
            break;
        case ES_RULE_EXCLUDE: break;
        }
        if (rc < 0) return -1;
    }
    return 0;
}

size_t es_rules_apply_excludes(const es_rules *r, es_keepset *ks)
{
    size_t n = 0, removed = 0;
    const char **paths = es_keepset_sorted(ks, &n);
    char **copy = es_xcalloc(n + 1, sizeof *copy);
    for (size_t i = 0; i < n; i++) copy[i] = es_xstrdup(paths[i]);
    free(paths);
    for (size_t i = 0; i < n; i++) {
        unsigned reasons = es_keepset_get(ks, copy[i]);
        if (reasons & ES_KEEP_STATIC) continue;
        for (size_t k = 0; k < r->n; k++) {
            if (r->v[k].kind != ES_RULE_EXCLUDE || !es_rule_covers(r->v[k].pattern, copy[i])) continue;
            es_keepset_remove(ks, copy[i]);
            removed++;
            break;
        }
    }
    /* Re-add survivors so their parents stay (an excluded dir above a static file comes back). */
    for (size_t i = 0; i < n; i++) {
        unsigned reasons = es_keepset_get(ks, copy[i]);
        if (reasons) es_keepset_add(ks, copy[i], reasons);
        free(copy[i]);
    }
    free(copy);
    return removed;
}

static const char *const preset_files[] = {
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf",
    "/etc/host.conf", "/etc/services", "/etc/protocols", "/etc/localtime", "/etc/timezone",
    "/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Etc/UTC", "/etc/ca-certificates.conf",
    "/etc/ssl/openssl.cnf", "/usr/lib/ssl/openssl.cnf",
};
static const char *const preset_dirs[] = {
    "/etc/ssl/certs", "/usr/share/ca-certificates", "/etc/pki/tls/certs", "/etc/pki/ca-trust",
};

static void keep_dir_tree(const char *root, const char *cdir, es_keepset *ks)
{
    char *resolved = NULL;
    if (es_rootfs_keep(root, cdir, ks, ES_KEEP_PRESET, &resolved, NULL) == 1) {
        char *host = es_rootfs_host_path(root, resolved);
        struct stat st;
        if (lstat(host, &st) == 0 && S_ISDIR(st.st_mode)) {
            /* walk_tree marks as rule; use a preset-marking walk instead */
            DIR *d = opendir(host);
            if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                    if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2]))) continue;
                    char *c = es_xasprintf("%s/%s", resolved, de->d_name);
                    /* Keep symlinks in cert dirs with their targets (hash links -> bundle files). */
                    es_rootfs_keep(root, c, ks, ES_KEEP_PRESET, NULL, NULL);
                    char *h = es_rootfs_host_path(root, c);
                    struct stat cst;
                    if (lstat(h, &cst) == 0 && S_ISDIR(cst.st_mode)) keep_dir_tree(root, c, ks);
                    else es_keepset_add(ks, c, ES_KEEP_PRESET);
                    free(h);
                    free(c);
                }
                closedir(d);
            }
        }
        free(host);
    }
    free(resolved);
}

/* "en_US.UTF-8" -> also "en_US.utf8" (glibc's normalised codeset name). */
static char *normalize_locale(const char *name)
{
    char *out = es_xstrdup(name);
    char *dot = strchr(out, '.'), *at = strchr(out, '@');
    if (!dot || (at && at < dot)) return out; /* no codeset: a '.' after the '@' is the modifier's */
    char *w = dot + 1, *r = dot + 1;
    for (; *r && *r != '@'; r++)
        if (*r != '-' && *r != '_') *w++ = (char)(*r >= 'A' && *r <= 'Z' ? *r + 32 : *r);
    memmove(w, r, strlen(r) + 1); /* the @modifier if any, and the NUL; w <= r */
    return out;
}

static void keep_locale(const char *root, const char *value, es_keepset *ks)
{
    if (!*value || !strcmp(value, "C") || !strcmp(value, "POSIX")) return;
    char *norm = normalize_locale(value);
    const char *names[] = {value, norm};
    for (int i = 0; i < 2; i++) {
        char *p = es_xasprintf("/usr/lib/locale/%s", names[i]);
        keep_dir_tree(root, p, ks);
        free(p);
    }
    free(norm);
    keep_dir_tree(root, "/usr/lib/locale/locale-archive", ks);
}

int es_presets_apply(const char *root, char *const *env, es_keepset *ks, es_error *err)
{
    (void)err;
    for (size_t i = 0; i < sizeof preset_files / sizeof preset_files[0]; i++)
        if (es_rootfs_keep(root, preset_files[i], ks, ES_KEEP_PRESET, NULL, err) < 0) return -1;
    for (size_t i = 0; i < sizeof preset_dirs / sizeof preset_dirs[0]; i++)
        keep_dir_tree(root, preset_dirs[i], ks);
    for (size_t i = 0; env && env[i]; i++) {
        const char *kv = env[i];
        if (!strncmp(kv, "LANG=", 5) || !strncmp(kv, "LC_", 3)) {
            const char *v = strchr(kv, '=');
            if (v) keep_locale(root, v + 1, ks);
        } else if (!strncmp(kv, "TZ=", 3) && kv[3] && !strstr(kv, "..")) {
            const char *tz = kv[3] == ':' ? kv + 4 : kv + 3;
            char *p = tz[0] == '/' ? es_xstrdup(tz) : es_xasprintf("/usr/share/zoneinfo/%s", tz);
            es_rootfs_keep(root, p, ks, ES_KEEP_PRESET, NULL, NULL);
            free(p);
        }
    }
    return 0;
}
