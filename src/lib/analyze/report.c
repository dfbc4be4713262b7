/*
 * Builds the inspect report (docs/inspect-json.md) from the analyzer's trie: layers, totals,
 * waste metrics, largest files and directories, packages, ELF files and attack surface.
 * Lists are ordered deterministically (by size then path, or by path), so the same image always
 * gives the same JSON.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analyzer_internal.h"

/* ------------------------------------------------------------------ helpers */

typedef struct ranked {
    const node *n;
    int64_t v;
    char *path;
} ranked;

static int cmp_ranked(const void *x, const void *y)
{
    const ranked *a = x, *b = y;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->n->seq < b->n->seq ? -1 : a->n->seq > b->n->seq;
}

static int cmp_path(const void *x, const void *y)
{
    const ranked *a = x, *b = y;
    return strcmp(a->path, b->path);
}

typedef struct rlist {
    ranked *v;
    size_t n, cap;
} rlist;

static void rl_push(rlist *l, const node *n, int64_t v, int with_path)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = es_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = (ranked){n, v, with_path ? es_analyze_node_path(n) : NULL};
}

static void rl_free(rlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void rl_sort_by_path(rlist *l)
{
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_path);
}

static json_t *json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *json_ratio(double v)
{
    if (isnan(v) || isinf(v)) return json_null();
    return json_real(v);
}

static const char *type_name(int t)
{
    switch (t) {
    case ES_ENTRY_FILE:
        return "file";
    case ES_ENTRY_DIR:
        return "dir";
    case ES_ENTRY_SYMLINK:
        return "symlink";
    case ES_ENTRY_HARDLINK:
        return "hardlink";
    default:
        return "other";
    }
}

static int is_visible_file(const node *n)
{
    return n->present && n->type == ES_ENTRY_FILE;
}

/* ------------------------------------------------------------------ layers and totals */

static json_t *layers_json(const es_analyzer *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->n_layers; i++) {
        const layer_rec *l = &a->layers[i];
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer((json_int_t)i));
        json_object_set_new(o, "digest", json_str_or_null(l->digest));
        json_object_set_new(o, "diff_id", json_str_or_null(l->diff_id));
        json_object_set_new(o, "media_type", json_str_or_null(l->media_type));
        json_object_set_new(o, "created_by", json_str_or_null(l->created_by));
        json_object_set_new(o, "size", json_integer(l->size));
        json_object_set_new(o, "tar_size",
                            l->tar_size >= 0 ? json_integer(l->tar_size) : json_null());
        json_object_set_new(o, "compressed_size",
                            l->compressed_size >= 0 ? json_integer(l->compressed_size)
                                                    : json_null());
        json_object_set_new(o, "entries", json_integer(l->entries));
        json_object_set_new(o, "files", json_integer(l->files));
        json_object_set_new(o, "whiteouts", json_integer(l->whiteouts));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *totals_json(const es_analyzer *a)
{
    int64_t size = 0, tar = 0, comp = 0, entries = 0, files = 0;
    int tar_known = 1, comp_known = 1;
    for (size_t i = 0; i < a->n_layers; i++) {
        const layer_rec *l = &a->layers[i];
        size += l->size;
        entries += l->entries;
        files += l->files;
        if (l->tar_size < 0)
            tar_known = 0;
        else
            tar += l->tar_size;
        if (l->compressed_size < 0)
            comp_known = 0;
        else
            comp += l->compressed_size;
    }
    int64_t final_files = 0, final_bytes = 0, final_dirs = 0, final_links = 0;
    for (size_t i = 0; i < a->n_nodes; i++) {
        const node *n = a->all[i];
        if (!n->present) continue;
        if (n->type == ES_ENTRY_FILE)
            final_files++, final_bytes += n->size;
        else if (n->type == ES_ENTRY_DIR)
            final_dirs++;
        else if (n->type == ES_ENTRY_SYMLINK || n->type == ES_ENTRY_HARDLINK)
            final_links++;
    }
    json_t *o = json_object();
    json_object_set_new(o, "layers", json_integer((json_int_t)a->n_layers));
    json_object_set_new(o, "size", json_integer(size));
    json_object_set_new(o, "tar_size", tar_known ? json_integer(tar) : json_null());
    json_object_set_new(o, "compressed_size", comp_known ? json_integer(comp) : json_null());
    json_object_set_new(o, "entries", json_integer(entries));
    json_object_set_new(o, "files", json_integer(files));
    json_object_set_new(o, "final_files", json_integer(final_files));
    json_object_set_new(o, "final_size", json_integer(final_bytes));
    json_object_set_new(o, "final_dirs", json_integer(final_dirs));
    json_object_set_new(o, "final_links", json_integer(final_links));
    return o;
}

/* ------------------------------------------------------------------ waste */

static json_t *waste_json(const es_analyzer *a, int top_n)
{
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    json_t *o = json_object();
    json_object_set_new(o, "efficiency", json_real(m.efficiency));
    json_object_set_new(o, "wasted_bytes", json_integer(m.wasted_bytes));
    json_object_set_new(o, "user_wasted_percent", json_ratio(m.user_wasted_percent));
    json_object_set_new(o, "reclaimable_bytes", json_integer(m.reclaimable_bytes));
    json_object_set_new(o, "size", json_integer(m.size_bytes));
    json_object_set_new(o, "user_size", json_integer(m.user_size_bytes));
    json_object_set_new(o, "inefficient_paths", json_integer(m.inefficient_paths));
    rlist l = {0};
    for (size_t i = 0; i < a->n_nodes; i++)
        if (a->all[i]->dive_refs >= 2) rl_push(&l, a->all[i], a->all[i]->dive_cum, 0);
    if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_ranked);
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n && (int)i < top_n; i++) {
        json_t *f = json_object();
        char *p = es_analyze_node_path(l.v[i].n);
        json_object_set_new(f, "path", json_string(p));
        free(p);
        json_object_set_new(f, "count", json_integer(l.v[i].n->dive_refs));
        json_object_set_new(f, "wasted_bytes", json_integer(l.v[i].v));
        json_array_append_new(arr, f);
    }
    rl_free(&l);
    json_object_set_new(o, "inefficient_files", arr);
    return o;
}

/* ------------------------------------------------------------------ largest files and dirs */

static json_t *largest_files_json(const es_analyzer *a, int top_n)
{
    rlist l = {0};
    for (size_t i = 0; i < a->n_nodes; i++)
        if (is_visible_file(a->all[i])) rl_push(&l, a->all[i], a->all[i]->size, 0);
    if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_ranked);
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n && (int)i < top_n; i++) {
        json_t *f = json_object();
        char *p = es_analyze_node_path(l.v[i].n);
        json_object_set_new(f, "path", json_string(p));
        free(p);
        json_object_set_new(f, "size", json_integer(l.v[i].v));
        json_object_set_new(f, "layer", json_integer(l.v[i].n->layer));
        json_array_append_new(arr, f);
    }
    rl_free(&l);
    return arr;
}

static json_t *largest_dirs_json(const es_analyzer *a, int top_n)
{
    int64_t *bytes = es_xcalloc(a->n_nodes ? a->n_nodes : 1, sizeof *bytes);
    int64_t *files = es_xcalloc(a->n_nodes ? a->n_nodes : 1, sizeof *files);
    for (size_t i = 0; i < a->n_nodes; i++) {
        const node *n = a->all[i];
        if (!is_visible_file(n)) continue;
        for (const node *p = n->parent; p && p->parent; p = p->parent) {
            bytes[p->seq] += n->size;
            files[p->seq]++;
        }
    }
    rlist l = {0};
    for (size_t i = 0; i < a->n_nodes; i++)
        if (a->all[i]->present && a->all[i]->type == ES_ENTRY_DIR)
            rl_push(&l, a->all[i], bytes[i], 0);
    if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_ranked);
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n && (int)i < top_n; i++) {
        json_t *f = json_object();
        char *p = es_analyze_node_path(l.v[i].n);
        json_object_set_new(f, "path", json_string(p));
        free(p);
        json_object_set_new(f, "size", json_integer(l.v[i].v));
        json_object_set_new(f, "files", json_integer(files[l.v[i].n->seq]));
        json_array_append_new(arr, f);
    }
    rl_free(&l);
    free(bytes);
    free(files);
    return arr;
}

/* ------------------------------------------------------------------ packages */

static json_t *packages_json(const es_analyzer *a)
{
    rlist dbs = {0};
    for (size_t i = 0; i < a->n_nodes; i++)
        if (is_visible_file(a->all[i]) && a->all[i]->ex && a->all[i]->ex->pkgs)
            rl_push(&dbs, a->all[i], 0, 1);
    rl_sort_by_path(&dbs);
    json_t *list = json_array(), *managers = json_array(), *sources = json_array();
    int64_t total = 0, count = 0;
    for (size_t i = 0; i < dbs.n; i++) {
        const es_package_list *pl = dbs.v[i].n->ex->pkgs;
        json_array_append_new(sources, json_string(dbs.v[i].path));
        int seen = 0;
        for (size_t k = 0; k < json_array_size(managers); k++)
            if (!strcmp(json_string_value(json_array_get(managers, k)), pl->manager)) seen = 1;
        if (!seen) json_array_append_new(managers, json_string(pl->manager));
        for (size_t k = 0; k < pl->n; k++) {
            const es_package *p = &pl->items[k];
            json_t *o = json_object();
            json_object_set_new(o, "manager", json_string(pl->manager));
            json_object_set_new(o, "name", json_string(p->name));
            json_object_set_new(o, "version", json_string(p->version));
            json_object_set_new(o, "architecture", json_string(p->arch));
            json_object_set_new(o, "installed_size",
                                p->installed_size >= 0 ? json_integer(p->installed_size)
                                                       : json_null());
            json_array_append_new(list, o);
            count++;
            if (p->installed_size > 0) total += p->installed_size;
        }
    }
    rl_free(&dbs);
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer(count));
    json_object_set_new(o, "installed_size", json_integer(total));
    json_object_set_new(o, "managers", managers);
    json_object_set_new(o, "databases", sources);
    json_object_set_new(o, "list", list);
    return o;
}

/* ------------------------------------------------------------------ ELF */

static void count_key(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

static json_t *elf_json(const es_analyzer *a)
{
    rlist l = {0};
    for (size_t i = 0; i < a->n_nodes; i++)
        if (is_visible_file(a->all[i]) && a->all[i]->ex && a->all[i]->ex->elf)
            rl_push(&l, a->all[i], 0, 1);
    rl_sort_by_path(&l);
    json_t *files = json_array(), *interps = json_object(), *machines = json_object(),
           *linking = json_object();
    int64_t stripped = 0, unstripped = 0, unknown = 0, bytes = 0;
    for (size_t i = 0; i < l.n; i++) {
        const node *n = l.v[i].n;
        const es_elf_info *e = n->ex->elf;
        json_t *o = json_object();
        json_object_set_new(o, "path", json_string(l.v[i].path));
        json_object_set_new(o, "size", json_integer(n->size));
        json_object_set_new(o, "class", json_integer(e->elf_class));
        json_object_set_new(o, "machine", json_string(es_elf_machine_name(e->machine)));
        json_object_set_new(o, "type", json_string(es_elf_kind(e)));
        json_object_set_new(o, "linking", json_string(es_elf_linking(e)));
        json_object_set_new(o, "interpreter", e->interp[0] ? json_string(e->interp) : json_null());
        json_object_set_new(o, "stripped",
                            e->has_symtab < 0 ? json_null() : json_boolean(!e->has_symtab));
        json_array_append_new(files, o);
        bytes += n->size;
        if (e->interp[0]) count_key(interps, e->interp);
        count_key(machines, es_elf_machine_name(e->machine));
        count_key(linking, es_elf_linking(e));
        if (e->has_symtab < 0)
            unknown++;
        else if (e->has_symtab)
            unstripped++;
        else
            stripped++;
    }
    rl_free(&l);
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(files)));
    json_object_set_new(o, "size", json_integer(bytes));
    json_object_set_new(o, "stripped", json_integer(stripped));
    json_object_set_new(o, "not_stripped", json_integer(unstripped));
    json_object_set_new(o, "stripped_unknown", json_integer(unknown));
    json_object_set_new(o, "linking", linking);
    json_object_set_new(o, "machines", machines);
    json_object_set_new(o, "interpreters", interps);
    json_object_set_new(o, "files", files);
    return o;
}

/* ------------------------------------------------------------------ attack surface */

static const char *const shell_names[] = {"sh",   "bash",  "dash",    "ash",    "zsh",
                                          "ksh",  "mksh",  "pdksh",   "csh",    "tcsh",
                                          "fish", "rbash", "busybox", "toybox", NULL};
static const char *const pm_names[] = {
    "apt",      "apt-get", "aptitude",     "dpkg",   "apk",    "yum",  "dnf",
    "microdnf", "tdnf",    "rpm",          "zypper", "pacman", "opkg", "pip",
    "pip3",     "pip2",    "easy_install", "npm",    "yarn",   "gem",  NULL};
static const char *const bin_dirs[] = {"bin",           "sbin",           "usr/bin", "usr/sbin",
                                       "usr/local/bin", "usr/local/sbin", NULL};

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
}

/* pip3.11, python's versioned pip */
static int is_pm_name(const char *s)
{
    if (in_list(s, pm_names)) return 1;
    return !strncmp(s, "pip3.", 5) && s[5] >= '0' && s[5] <= '9';
}

static int in_bin_dir(const char *path) /* path is "/a/b/name" */
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    size_t n = (size_t)(slash - path - 1);
    for (const char *const *d = bin_dirs; *d; d++)
        if (strlen(*d) == n && !strncmp(path + 1, *d, n)) return 1;
    return 0;
}

static json_t *path_item(const ranked *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(r->path));
    json_object_set_new(o, "type", json_string(type_name(r->n->type)));
    json_object_set_new(o, "mode", json_sprintf("%04o", r->n->mode));
    json_object_set_new(o, "uid", json_integer(r->n->uid));
    json_object_set_new(o, "gid", json_integer(r->n->gid));
    if (r->n->ex && r->n->ex->link) json_object_set_new(o, "target", json_string(r->n->ex->link));
    return o;
}

static json_t *list_json(rlist *l)
{
    rl_sort_by_path(l);
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(arr, path_item(&l->v[i]));
    rl_free(l);
    return arr;
}

static json_t *caps_list_json(rlist *l)
{
    rl_sort_by_path(l);
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++) {
        const es_caps *c = &l->v[i].n->ex->caps;
        json_t *o = json_object(), *perm = json_array(), *inh = json_array();
        json_object_set_new(o, "path", json_string(l->v[i].path));
        for (int b = 0; b < 64; b++) {
            char num[16];
            const char *name = es_cap_name(b);
            if (!name) snprintf(num, sizeof num, "%d", b), name = num;
            if (c->permitted >> b & 1) json_array_append_new(perm, json_string(name));
            if (c->inheritable >> b & 1) json_array_append_new(inh, json_string(name));
        }
        char text[1024];
        es_caps_text(c, text, sizeof text);
        json_object_set_new(o, "valid", json_boolean(c->revision != 0));
        json_object_set_new(o, "effective", json_boolean(c->effective));
        json_object_set_new(o, "permitted", perm);
        json_object_set_new(o, "inheritable", inh);
        json_object_set_new(o, "text", json_string(c->revision ? text : "(undecodable)"));
        json_array_append_new(arr, o);
    }
    rl_free(l);
    return arr;
}

static const char *config_user(const json_t *cfg)
{
    const json_t *c = cfg ? json_object_get(cfg, "config") : NULL;
    const json_t *u = c ? json_object_get(c, "User") : NULL;
    return json_is_string(u) ? json_string_value(u) : "";
}

/* Empty, "0", "root", "0:x" or "root:x" run as root. */
static int user_is_root(const char *u)
{
    size_t n = strcspn(u, ":");
    return n == 0 || (n == 1 && u[0] == '0') || (n == 4 && !strncmp(u, "root", 4));
}

static json_t *ports_json(const json_t *cfg)
{
    json_t *arr = json_array();
    const json_t *c = cfg ? json_object_get(cfg, "config") : NULL;
    const json_t *p = c ? json_object_get(c, "ExposedPorts") : NULL;
    if (!json_is_object(p)) return arr;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)p, k, v) json_array_append_new(arr, json_string(k));
    return arr;
}

static json_t *attack_surface_json(const es_analyzer *a, const json_t *cfg)
{
    rlist shells = {0}, pms = {0}, suid = {0}, sgid = {0}, ww = {0}, sticky = {0}, caps = {0};
    for (size_t i = 0; i < a->n_nodes; i++) {
        const node *n = a->all[i];
        if (!n->present || n->implicit) continue;
        int t = n->type;
        int exe_like = t == ES_ENTRY_FILE || t == ES_ENTRY_SYMLINK || t == ES_ENTRY_HARDLINK;
        if (exe_like && (in_list(n->name, shell_names) || is_pm_name(n->name))) {
            char *p = es_analyze_node_path(n);
            if (in_bin_dir(p)) rl_push(in_list(n->name, shell_names) ? &shells : &pms, n, 0, 1);
            free(p);
        }
        if (t == ES_ENTRY_SYMLINK) continue; /* link modes mean nothing */
        if ((t == ES_ENTRY_FILE || t == ES_ENTRY_HARDLINK) && (n->mode & 04000))
            rl_push(&suid, n, 0, 1);
        if ((t == ES_ENTRY_FILE || t == ES_ENTRY_HARDLINK) && (n->mode & 02000))
            rl_push(&sgid, n, 0, 1);
        if (n->mode & 0002) {
            if (t == ES_ENTRY_DIR && (n->mode & 01000))
                rl_push(&sticky, n, 0, 1);
            else
                rl_push(&ww, n, 0, 1);
        }
        if (n->ex && n->ex->has_caps) rl_push(&caps, n, 0, 1);
    }
    const char *user = config_user(cfg);
    json_t *o = json_object();
    json_object_set_new(o, "user", json_string(user));
    json_object_set_new(o, "runs_as_root", json_boolean(user_is_root(user)));
    json_object_set_new(o, "exposed_ports", ports_json(cfg));
    json_object_set_new(o, "shells", list_json(&shells));
    json_object_set_new(o, "package_managers", list_json(&pms));
    json_object_set_new(o, "setuid", list_json(&suid));
    json_object_set_new(o, "setgid", list_json(&sgid));
    json_object_set_new(o, "world_writable", list_json(&ww));
    json_object_set_new(o, "world_writable_sticky_dirs", list_json(&sticky));
    json_object_set_new(o, "capabilities", caps_list_json(&caps));
    return o;
}

/* ------------------------------------------------------------------ all */

json_t *es_analyzer_report(es_analyzer *a, const es_report_opts *opts)
{
    int top_n = opts && opts->top_n > 0 ? opts->top_n : 10;
    const json_t *cfg = opts ? opts->image_config : NULL;
    json_t *r = json_object();
    json_object_set_new(r, "layers", layers_json(a));
    json_object_set_new(r, "totals", totals_json(a));
    json_object_set_new(r, "waste", waste_json(a, top_n));
    json_object_set_new(r, "largest_files", largest_files_json(a, top_n));
    json_object_set_new(r, "largest_dirs", largest_dirs_json(a, top_n));
    json_object_set_new(r, "packages", packages_json(a));
    json_object_set_new(r, "elf", elf_json(a));
    json_object_set_new(r, "attack_surface", attack_surface_json(a, cfg));
    return r;
}
