/*
 * Static closure (see closure.h). Library lookup mirrors glibc's order. We read ld.so.conf
 * rather than /etc/ld.so.cache: the cache is a binary format derived from the same directories,
 * may be stale or absent in an image, and the directories are what ldconfig scanned anyway.
 * Invariant: each resolved file is expanded at most once (the `done` set), so cycles between
 * libraries terminate.
 */
#include "slim/closure.h"

#include <elf.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slim/elf_deps.h"
#include "slim/rootfs_path.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

struct es_closure {
    char *root;
    strvec path_dirs, llp_dirs, conf_dirs, missing;
    es_keepset *done;
    uint16_t machine; /* of the first ELF seen: libraries must match it */
    int elf_class;
};

static void vec_push(strvec *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->v[i], s)) return;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->v = es_xrealloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = es_xstrdup(s);
}

static void vec_free(strvec *v)
{
    for (size_t i = 0; i < v->n; i++) free(v->v[i]);
    free(v->v);
}

static void split_colon(strvec *v, const char *s)
{
    if (!s) return;
    char *dup = es_xstrdup(s), *save = NULL;
    for (char *t = strtok_r(dup, ":;", &save); t; t = strtok_r(NULL, ":;", &save))
        if (*t) vec_push(v, t);
    free(dup);
}

static void read_ld_conf(es_closure *c, const char *conf, int depth);

static void read_ld_conf_include(es_closure *c, const char *pattern, int depth)
{
    char *pat = pattern[0] == '/' ? es_rootfs_host_path(c->root, pattern)
                                  : es_xasprintf("%s/etc/%s", c->root, pattern);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        size_t rl = strlen(c->root);
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (!strncmp(g.gl_pathv[i], c->root, rl)) read_ld_conf(c, g.gl_pathv[i] + rl, depth + 1);
        globfree(&g);
    }
    free(pat);
}

/* conf is a container path; symlinks are resolved inside the root. */
static void read_ld_conf(es_closure *c, const char *conf, int depth)
{
    if (depth > 8) return;
    char *res = NULL;
    if (es_rootfs_resolve(c->root, conf, 1, NULL, 0, &res, NULL) != 1) { free(res); return; }
    char *host = es_rootfs_host_path(c->root, res);
    free(res);
    FILE *f = fopen(host, "re");
    free(host);
    if (!f) return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *h = strchr(line, '#');
        if (h) *h = 0;
        char *s = line + strspn(line, " \t");
        s[strcspn(s, "\r\n")] = 0;
        for (size_t n = strlen(s); n && (s[n - 1] == ' ' || s[n - 1] == '\t'); n--) s[n - 1] = 0;
        if (!*s) continue;
        if (!strncmp(s, "include", 7) && (s[7] == ' ' || s[7] == '\t')) {
            read_ld_conf_include(c, s + 8 + strspn(s + 8, " \t"), depth);
        } else if (!strncmp(s, "hwcap", 5)) {
            continue;
        } else {
            split_colon(&c->conf_dirs, strtok(s, " \t,="));
        }
    }
    fclose(f);
}

es_closure *es_closure_new(const char *root, const char *path_env, const char *ld_library_path)
{
    es_closure *c = es_xcalloc(1, sizeof *c);
    c->root = es_xstrdup(root);
    split_colon(&c->path_dirs, path_env ? path_env : DEFAULT_PATH);
    split_colon(&c->llp_dirs, ld_library_path);
    c->done = es_keepset_new();
    read_ld_conf(c, "/etc/ld.so.conf", 0);
    return c;
}

void es_closure_free(es_closure *c)
{
    if (!c) return;
    free(c->root);
    vec_free(&c->path_dirs);
    vec_free(&c->llp_dirs);
    vec_free(&c->conf_dirs);
    vec_free(&c->missing);
    es_keepset_free(c->done);
    free(c);
}

static int exists_regular(const es_closure *c, const char *path)
{
    char *res = NULL;
    int rc = es_rootfs_resolve(c->root, path, 1, NULL, 0, &res, NULL);
    int ok = 0;
    if (rc == 1) {
        char *host = es_rootfs_host_path(c->root, res);
        struct stat st;
        ok = stat(host, &st) == 0 && S_ISREG(st.st_mode);
        free(host);
    }
    free(res);
    return ok;
}

char *es_closure_which(es_closure *c, const char *cmd, const char *workdir)
{
    if (!cmd || !*cmd) return NULL;
    if (strchr(cmd, '/')) {
        char *p = cmd[0] == '/' ? es_xstrdup(cmd)
                                : es_xasprintf("%s/%s", workdir && *workdir ? workdir : "", cmd);
        if (p[0] != '/') { char *q = es_xasprintf("/%s", p); free(p); p = q; }
        es_path_lexical(p);
        if (exists_regular(c, p)) return p;
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < c->path_dirs.n; i++) {
        char *p = es_xasprintf("%s/%s", c->path_dirs.v[i], cmd);
        if (p[0] == '/' && exists_regular(c, p)) return p;
        free(p);
    }
    return NULL;
}

static const char *lib_triplet(uint16_t machine)
{
    switch (machine) {
    case EM_X86_64: return "x86_64-linux-gnu";
    case EM_AARCH64: return "aarch64-linux-gnu";
    case EM_386: return "i386-linux-gnu";
    case EM_ARM: return "arm-linux-gnueabihf";
    default: return NULL;
    }
}

static const char *platform_name(uint16_t machine)
{
    switch (machine) {
    case EM_X86_64: return "x86_64";
    case EM_AARCH64: return "aarch64";
    case EM_386: return "i686";
    default: return "unknown";
    }
}

/* Expands $ORIGIN/${ORIGIN}, $LIB, $PLATFORM in one search-path element. */
static char *expand_tokens(const char *s, const char *origin, uint16_t machine)
{
    const char *trip = lib_triplet(machine);
    char *lib = trip ? es_xasprintf("lib/%s", trip) : es_xstrdup("lib");
    struct { const char *tok, *val; } toks[] = {
        {"${ORIGIN}", origin}, {"$ORIGIN", origin}, {"${LIB}", lib},
        {"$LIB", lib},         {"${PLATFORM}", platform_name(machine)}, {"$PLATFORM", platform_name(machine)},
    };
    size_t cap = strlen(s) * 4 + 4096, o = 0;
    char *out = es_xmalloc(cap);
    while (*s) {
        size_t k;
        for (k = 0; k < sizeof toks / sizeof toks[0]; k++)
            if (!strncmp(s, toks[k].tok, strlen(toks[k].tok))) break;
        if (k < sizeof toks / sizeof toks[0]) {
            size_t vl = strlen(toks[k].val);
            if (o + vl + 1 >= cap) break;
            memcpy(out + o, toks[k].val, vl);
            o += vl;
            s += strlen(toks[k].tok);
        } else {
            if (o + 2 >= cap) break;
            out[o++] = *s++;
        }
    }
    out[o] = 0;
    free(lib);
    return out;
}

/* An ELF shared object usable by an object of class/machine. */
static int lib_matches(es_closure *c, const char *path)
{
    char *res = NULL;
    if (es_rootfs_resolve(c->root, path, 1, NULL, 0, &res, NULL) != 1) { free(res); return 0; }
    char *host = es_rootfs_host_path(c->root, res);
    free(res);
    es_elf_deps d;
    int rc = es_elf_deps_parse_file(host, &d, NULL);
    free(host);
    int ok = rc == 1 && (!c->machine || (d.machine == c->machine && d.elf_class == c->elf_class));
    if (rc == 1) es_elf_deps_free(&d);
    return ok;
}

static char *try_dirs(es_closure *c, const char *list, const char *origin, const char *name)
{
    strvec dirs = {0};
    split_colon(&dirs, list);
    char *found = NULL;
    for (size_t i = 0; i < dirs.n && !found; i++) {
        char *d = expand_tokens(dirs.v[i], origin, c->machine);
        char *p = es_xasprintf("%s/%s", d, name);
        free(d);
        if (p[0] == '/' && lib_matches(c, p)) found = p;
        else free(p);
    }
    vec_free(&dirs);
    return found;
}

static char *try_vec(es_closure *c, const strvec *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++) {
        char *p = es_xasprintf("%s/%s", v->v[i], name);
        if (p[0] == '/' && lib_matches(c, p)) return p;
        free(p);
    }
    return NULL;
}

static char *find_library(es_closure *c, const char *name, const es_elf_deps *obj, const char *origin)
{
    if (strchr(name, '/')) return name[0] == '/' && lib_matches(c, name) ? es_xstrdup(name) : NULL;
    char *p = NULL;
    if (obj->rpath && !obj->runpath) p = try_dirs(c, obj->rpath, origin, name);
    if (!p) p = try_vec(c, &c->llp_dirs, name);
    if (!p && obj->runpath) p = try_dirs(c, obj->runpath, origin, name);
    if (!p) p = try_vec(c, &c->conf_dirs, name);
    if (!p) {
        strvec defs = {0};
        const char *trip = lib_triplet(c->machine);
        if (trip) {
            char *a = es_xasprintf("/lib/%s", trip), *b = es_xasprintf("/usr/lib/%s", trip);
            vec_push(&defs, a), vec_push(&defs, b);
            free(a), free(b);
        }
        if (c->elf_class == ELFCLASS64) vec_push(&defs, "/lib64"), vec_push(&defs, "/usr/lib64");
        vec_push(&defs, "/lib"), vec_push(&defs, "/usr/lib");
        p = try_vec(c, &defs, name);
        vec_free(&defs);
    }
    return p;
}

/* Shebang "#!interp [arg]": returns the interpreter path to keep (env's argument resolved via
 * PATH as well), or NULL. *env_target receives the resolved program after /usr/bin/env. */
static char *read_shebang(es_closure *c, const char *host, char **env_target)
{
    *env_target = NULL;
    char buf[512];
    es_cleanup_close int fd = open(host, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 3 || buf[0] != '#' || buf[1] != '!') return NULL;
    buf[n] = 0;
    buf[strcspn(buf, "\n")] = 0;
    char *s = buf + 2 + strspn(buf + 2, " \t");
    char *interp = s;
    s += strcspn(s, " \t");
    if (*s) *s++ = 0;
    s += strspn(s, " \t");
    if (!*interp) return NULL;
    const char *base = strrchr(interp, '/');
    base = base ? base + 1 : interp;
    if (!strcmp(base, "env") && *s) {
        char *arg = s;
        if (!strncmp(arg, "-S", 2)) arg += 2 + strspn(arg + 2, " \t");
        while (*arg == '-') { arg += strcspn(arg, " \t"); arg += strspn(arg, " \t"); }
        arg[strcspn(arg, " \t")] = 0;
        if (*arg) *env_target = es_closure_which(c, arg, "/");
    }
    return es_xstrdup(interp);
}

static void note_missing(es_closure *c, const char *name)
{
    vec_push(&c->missing, name);
}

static int add_elf_deps(es_closure *c, const char *resolved, const es_elf_deps *d, es_keepset *ks,
                        unsigned reason, es_error *err)
{
    if (!c->machine) c->machine = d->machine, c->elf_class = d->elf_class;
    if (d->interp && es_closure_add(c, d->interp, ks, reason, err) < 0) return -1;
    char *origin = es_xstrdup(resolved);
    char *slash = strrchr(origin, '/');
    if (slash) *(slash == origin ? slash + 1 : slash) = 0;
    for (size_t i = 0; i < d->n_needed; i++) {
        char *lib = find_library(c, d->needed[i], d, origin);
        if (!lib) { note_missing(c, d->needed[i]); continue; }
        int rc = es_closure_add(c, lib, ks, reason, err);
        free(lib);
        if (rc < 0) { free(origin); return -1; }
    }
    free(origin);
    return 0;
}

int es_closure_add(es_closure *c, const char *path, es_keepset *ks, unsigned reason, es_error *err)
{
    char *resolved = NULL;
    int rc = es_rootfs_keep(c->root, path, ks, reason, &resolved, err);
    if (rc <= 0) return rc;
    if (!es_keepset_add(c->done, resolved, 1)) { free(resolved); return 1; }
    char *host = es_rootfs_host_path(c->root, resolved);
    struct stat st;
    if (stat(host, &st) < 0 || !S_ISREG(st.st_mode)) { free(host); free(resolved); return 1; }
    es_elf_deps d;
    int e = es_elf_deps_parse_file(host, &d, err);
    if (e == 1) {
        rc = add_elf_deps(c, resolved, &d, ks, reason, err) < 0 ? -1 : 1;
        es_elf_deps_free(&d);
    } else if (e == 0) {
        char *env_target = NULL;
        char *interp = read_shebang(c, host, &env_target);
        if (interp && es_closure_add(c, interp, ks, reason, err) < 0) rc = -1;
        if (rc >= 0 && env_target && es_closure_add(c, env_target, ks, reason, err) < 0) rc = -1;
        free(interp);
        free(env_target);
    } else {
        /* A broken ELF is kept as a file; it cannot be loaded anyway. */
        es_err_clear(err);
    }
    free(host);
    free(resolved);
    return rc;
}

size_t es_closure_lib_dirs(const es_closure *c, const char *const **dirs)
{
    *dirs = (const char *const *)c->conf_dirs.v;
    return c->conf_dirs.n;
}

size_t es_closure_missing(const es_closure *c, const char *const **names)
{
    *names = (const char *const *)c->missing.v;
    return c->missing.n;
}
