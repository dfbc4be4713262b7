/*
 * The inspect core (see analyzer.h): a path trie fed by layer events.
 *
 * Two views of the layers are kept on the same nodes:
 *  - dive's view, reproduced rule by rule from dive's filetree code so that the metrics match:
 *    each layer is a tree of its entries plus implied parent directories; at the end of a layer
 *    every leaf of that tree is "visited": its size is the tar header size, or for a ".wh.X"
 *    whiteout the summed sizes of X's subtree in the stack of the lower layers when X was a
 *    directory there (0 otherwise); opaque markers and other ".wh..wh.." names are not nodes.
 *    The lower stack is updated only after the visits (removals, then additions; an implied
 *    parent replaces a directory's info with an empty one, exactly as dive's Stack does).
 *  - the final tree with OCI semantics, updated entry by entry: whiteouts and opaque markers hide
 *    what lower layers put there (never entries of their own layer, whatever their order); a
 *    non-directory replacing a directory hides its lower contents; missing parents are implied.
 * reclaimable_bytes = (bytes of all regular-file entries) - (bytes of regular files in the final
 * tree): every byte that no longer shows is counted once, whatever hid it.
 */
#include "analyze/analyzer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define READ_BUF (64 * 1024)
#define PKG_DB_CAP (64 * 1024 * 1024)
#define WH_PREFIX ".wh."
#define WH_META_PREFIX ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"

/* ------------------------------------------------------------------ trie */

static uint64_t hash_key(const node *parent, const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)parent;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static void table_grow(es_analyzer *a)
{
    size_t n = a->table_size ? a->table_size * 2 : 1024;
    node **t = es_xcalloc(n, sizeof *t);
    for (size_t i = 0; i < a->n_nodes; i++) {
        node *x = a->all[i];
        uint64_t h = hash_key(x->parent, x->name, strlen(x->name)) & (n - 1);
        x->hnext = t[h];
        t[h] = x;
    }
    free(a->table);
    a->table = t;
    a->table_size = n;
}

static node *child_get(es_analyzer *a, node *parent, const char *name, size_t len)
{
    uint64_t h = hash_key(parent, name, len);
    for (node *x = a->table[h & (a->table_size - 1)]; x; x = x->hnext)
        if (x->parent == parent && !strncmp(x->name, name, len) && x->name[len] == 0) return x;
    if (a->n_nodes + 1 > a->table_size) {
        table_grow(a);
    }
    if (a->n_nodes == a->cap_nodes) {
        a->cap_nodes = a->cap_nodes ? a->cap_nodes * 2 : 1024;
        a->all = es_xrealloc(a->all, a->cap_nodes * sizeof *a->all);
    }
    node *x = es_xcalloc(1, sizeof *x);
    x->name = es_xmalloc(len + 1);
    memcpy(x->name, name, len);
    x->name[len] = 0;
    x->parent = parent;
    x->sibling = parent->child;
    parent->child = x;
    x->seq = (uint32_t)a->n_nodes;
    x->cur_layer = -1;
    x->layer = -1;
    a->all[a->n_nodes++] = x;
    size_t slot = h & (a->table_size - 1);
    x->hnext = a->table[slot];
    a->table[slot] = x;
    return x;
}

/* Walks/creates "a/b/c" below root; len limits the path. ES_EUNSAFE for "..". */
static node *path_get(es_analyzer *a, const char *path, size_t len, es_error *err)
{
    node *n = &a->root;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t clen = j - i;
        if (clen == 2 && path[i] == '.' && path[i + 1] == '.') {
            es_err(err, ES_EUNSAFE, "entry '%s': path has a '..' component", path);
            return NULL;
        }
        if (clen && !(clen == 1 && path[i] == '.')) n = child_get(a, n, path + i, clen);
        i = j + 1;
    }
    return n;
}

char *es_analyze_node_path(const node *n)
{
    size_t len = 0;
    for (const node *p = n; p->parent; p = p->parent)
        len += strlen(p->name) + 1;
    if (len == 0) return es_xstrdup("/");
    char *s = es_xmalloc(len + 1);
    s[len] = 0;
    size_t pos = len;
    for (const node *p = n; p->parent; p = p->parent) {
        size_t k = strlen(p->name);
        pos -= k;
        memcpy(s + pos, p->name, k);
        s[--pos] = '/';
    }
    return s;
}

/* Pre-order walk of n's subtree (n included) without recursion. */
#define SUBTREE_NEXT(top, x) ((x)->child ? (x)->child : subtree_up((top), (x)))
static node *subtree_up(const node *top, node *x)
{
    while (x != top) {
        if (x->sibling) return x->sibling;
        x = x->parent;
    }
    return NULL;
}

/* ------------------------------------------------------------------ lifetime */

es_analyzer *es_analyzer_new(void)
{
    es_analyzer *a = es_xcalloc(1, sizeof *a);
    a->root.name = es_xstrdup("");
    a->root.present = 1;
    a->root.type = ES_ENTRY_DIR;
    a->root.cur_layer = -1;
    a->layer = -1;
    a->buf = es_xmalloc(READ_BUF);
    table_grow(a);
    return a;
}

static void extra_free(node_extra *ex)
{
    if (!ex) return;
    free(ex->link);
    free(ex->elf);
    if (ex->pkgs) es_package_list_free(ex->pkgs);
    free(ex->pkgs);
    free(ex);
}

void es_analyzer_free(es_analyzer *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_nodes; i++) {
        extra_free(a->all[i]->ex);
        free(a->all[i]->name);
        free(a->all[i]);
    }
    for (size_t i = 0; i < a->n_layers; i++) {
        layer_rec *l = &a->layers[i];
        free(l->digest);
        free(l->diff_id);
        free(l->media_type);
        free(l->created_by);
    }
    free(a->root.name);
    free(a->layers);
    free(a->all);
    free(a->table);
    free(a->touched);
    free(a->buf);
    free(a);
}

/* ------------------------------------------------------------------ dive: the current layer */

static void touch(es_analyzer *a, node *n)
{
    if (n->cur_layer == a->layer) return;
    n->cur_layer = a->layer;
    n->cur_flags = 0;
    n->cur_size = 0;
    if (a->n_touched == a->cap_touched) {
        a->cap_touched = a->cap_touched ? a->cap_touched * 2 : 1024;
        a->touched = es_xrealloc(a->touched, a->cap_touched * sizeof *a->touched);
    }
    a->touched[a->n_touched++] = n;
}

/* n is in this layer's tree; its ancestors are, with a child each. */
static void layer_tree_add(es_analyzer *a, node *n)
{
    if (n == &a->root) return;
    touch(a, n);
    n->cur_flags |= CF_INTREE;
    for (node *p = n->parent; p && p != &a->root; p = p->parent) {
        touch(a, p);
        if ((p->cur_flags & (CF_INTREE | CF_HASCHILD)) == (CF_INTREE | CF_HASCHILD)) break;
        p->cur_flags |= CF_INTREE | CF_HASCHILD;
    }
}

/* A child entry of n exists in this layer's tree (used for ".wh.X": the node ".wh.X" of dive is a
 * child of X's parent). */
static void layer_tree_add_child_of(es_analyzer *a, node *parent)
{
    if (parent == &a->root) return;
    layer_tree_add(a, parent);
    parent->cur_flags |= CF_HASCHILD;
}

static int64_t dive_lower_subtree_size(node *x)
{
    if (!x->dive_present || !x->dive_isdir) return 0;
    int64_t sum = 0;
    for (node *n = x; n; n = SUBTREE_NEXT(x, n))
        if (n->dive_present) sum += n->dive_size;
    return sum;
}

static void dive_visit(node *n, int64_t size)
{
    n->dive_cum += size;
    if (n->dive_refs == 0 || size < n->dive_min) n->dive_min = size;
    n->dive_refs++;
}

static void dive_remove_subtree(node *x)
{
    for (node *n = x; n; n = SUBTREE_NEXT(x, n))
        n->dive_present = 0;
}

static void dive_close_layer(es_analyzer *a)
{
    for (size_t i = 0; i < a->n_touched; i++) {
        node *n = a->touched[i];
        if (n->cur_flags & CF_WHITEOUT) dive_visit(n, dive_lower_subtree_size(n));
        if ((n->cur_flags & CF_INTREE) && !(n->cur_flags & CF_HASCHILD))
            dive_visit(n, (n->cur_flags & CF_EXPLICIT) ? n->cur_size : 0);
    }
    for (size_t i = 0; i < a->n_touched; i++)
        if (a->touched[i]->cur_flags & CF_WHITEOUT) dive_remove_subtree(a->touched[i]);
    for (size_t i = 0; i < a->n_touched; i++) {
        node *n = a->touched[i];
        if (!(n->cur_flags & CF_INTREE)) continue;
        int explicit_entry = (n->cur_flags & CF_EXPLICIT) != 0;
        n->dive_present = 1;
        n->dive_isdir = explicit_entry && (n->cur_flags & CF_ISDIR);
        n->dive_size = explicit_entry ? n->cur_size : 0;
    }
    a->n_touched = 0;
}

/* ------------------------------------------------------------------ final tree */

static void final_clear(node *n)
{
    n->present = 0;
    extra_free(n->ex);
    n->ex = NULL;
}

/* Hides what lower layers put at x's subtree (x itself only if with_self). The walk below x is
 * done once per layer: later calls for the same x in the same layer find nothing new to hide. */
static void final_hide_lower(es_analyzer *a, node *x, int with_self)
{
    if (with_self && x->present && x->layer < a->layer) final_clear(x);
    touch(a, x);
    if (x->cur_flags & CF_LOWER_HIDDEN) return;
    x->cur_flags |= CF_LOWER_HIDDEN;
    for (node *n = x->child; n; n = SUBTREE_NEXT(x, n))
        if (n->present && n->layer < a->layer) final_clear(n);
}

static void final_imply_parents(es_analyzer *a, node *n)
{
    for (node *p = n->parent; p && p != &a->root; p = p->parent) {
        if (p->present && p->type == ES_ENTRY_DIR) break;
        final_clear(p);
        p->present = 1;
        p->implicit = 1;
        p->type = ES_ENTRY_DIR;
        p->mode = 0755;
        p->uid = p->gid = 0;
        p->size = 0;
        p->layer = a->layer;
    }
}

static void final_set(es_analyzer *a, node *n, const es_entry_event *ev)
{
    final_imply_parents(a, n);
    if (ev->type != ES_ENTRY_DIR) final_hide_lower(a, n, 0);
    final_clear(n);
    n->present = 1;
    n->implicit = 0;
    n->type = (uint8_t)ev->type;
    n->mode = ev->mode & 07777;
    n->uid = ev->uid;
    n->gid = ev->gid;
    n->size = ev->type == ES_ENTRY_FILE ? ev->size : 0;
    n->layer = a->layer;
    if (ev->link_target || ev->capability) n->ex = es_xcalloc(1, sizeof *n->ex);
    if (ev->link_target) n->ex->link = es_xstrdup(ev->link_target);
    if (ev->capability) {
        n->ex->has_caps = 1;
        if (es_caps_decode(ev->capability, ev->capability_len, &n->ex->caps) != 0)
            n->ex->caps.revision = 0; /* present but undecodable: reported as such */
    }
}

/* ------------------------------------------------------------------ content */

static node_extra *extra_of(node *n)
{
    if (!n->ex) n->ex = es_xcalloc(1, sizeof *n->ex);
    return n->ex;
}

static int read_package_db(es_analyzer *a, node *n, const es_entry_event *ev, const char *kind,
                           es_error *err)
{
    if (ev->size > PKG_DB_CAP) return 0; /* absurd database: not inventoried */
    size_t cap = (size_t)ev->size + 1, len = 0;
    char *text = es_xmalloc(cap);
    for (;;) {
        if (len == cap - 1) break;
        ssize_t k = ev->read(ev->read_ctx, text + len, cap - 1 - len, err);
        if (k < 0) {
            free(text);
            return -1;
        }
        if (k == 0) break;
        len += (size_t)k;
    }
    es_package_list *l = es_xcalloc(1, sizeof *l);
    if (!strcmp(kind, "apk"))
        es_apk_parse(text, len, l);
    else
        es_dpkg_parse(text, len, l);
    free(text);
    extra_of(n)->pkgs = l;
    (void)a;
    return 0;
}

static int read_elf(es_analyzer *a, node *n, const es_entry_event *ev, es_error *err)
{
    size_t got = 0;
    while (got < 4) {
        ssize_t k = ev->read(ev->read_ctx, a->buf + got, READ_BUF - got, err);
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    if (got < 4 || memcmp(a->buf,
                          "\x7f"
                          "ELF",
                          4) != 0)
        return 0;
    es_elf_scan *s = es_elf_scan_new();
    es_elf_scan_feed(s, a->buf, got);
    for (;;) {
        ssize_t k = ev->read(ev->read_ctx, a->buf, READ_BUF, err);
        if (k < 0) {
            es_elf_scan_free(s);
            return -1;
        }
        if (k == 0) break;
        es_elf_scan_feed(s, a->buf, (size_t)k);
    }
    es_elf_info info;
    if (es_elf_scan_finish(s, &info) == 0) {
        node_extra *ex = extra_of(n);
        ex->elf = es_xmalloc(sizeof *ex->elf);
        *ex->elf = info;
    }
    return 0;
}

static int analyse_content(es_analyzer *a, node *n, const es_entry_event *ev, es_error *err)
{
    if (ev->type != ES_ENTRY_FILE || !ev->read || ev->size <= 0) return 0;
    const char *kind = es_package_db_kind(ev->path);
    if (kind) return read_package_db(a, n, ev, kind, err);
    return read_elf(a, n, ev, err);
}

/* ------------------------------------------------------------------ events */

int es_analyzer_layer_begin(es_analyzer *a, es_error *err)
{
    if (a->in_layer) return es_err(err, ES_EFAIL, "analyzer: layer %d not ended", a->layer);
    a->in_layer = 1;
    a->layer++;
    if (a->n_layers == a->cap_layers) {
        a->cap_layers = a->cap_layers ? a->cap_layers * 2 : 16;
        a->layers = es_xrealloc(a->layers, a->cap_layers * sizeof *a->layers);
    }
    memset(&a->layers[a->n_layers++], 0, sizeof *a->layers);
    a->n_touched = 0;
    return 0;
}

static const char *base_name(const char *path, size_t *dir_len)
{
    const char *slash = strrchr(path, '/');
    *dir_len = slash ? (size_t)(slash - path) : 0;
    return slash ? slash + 1 : path;
}

/* A path with a ".wh..wh." component: dive adds the directories before it and nothing else;
 * for OCI only "<dir>/.wh..wh..opq" means something (hide dir's lower contents). */
static int meta_whiteout_prefix(const char *path, size_t *prefix_len)
{
    size_t i = 0, len = strlen(path);
    while (i < len) {
        if (!strncmp(path + i, WH_META_PREFIX, sizeof WH_META_PREFIX - 1)) {
            *prefix_len = i ? i - 1 : 0;
            return 1;
        }
        const char *slash = memchr(path + i, '/', len - i);
        if (!slash) break;
        i = (size_t)(slash - path) + 1;
    }
    return 0;
}

static int entry_meta_whiteout(es_analyzer *a, const es_entry_event *ev, size_t prefix_len,
                               es_error *err)
{
    node *dir = path_get(a, ev->path, prefix_len, err);
    if (!dir) return -1;
    layer_tree_add(a, dir);
    if (!strcmp(ev->path + (prefix_len ? prefix_len + 1 : 0), WH_OPAQUE))
        final_hide_lower(a, dir, 0);
    return 0;
}

static int entry_whiteout(es_analyzer *a, const es_entry_event *ev, size_t dir_len,
                          const char *base, es_error *err)
{
    node *dir = path_get(a, ev->path, dir_len, err);
    if (!dir) return -1;
    const char *target = base + sizeof WH_PREFIX - 1;
    if (!strcmp(target, "..") || !strcmp(target, ".") || !*target)
        return es_err(err, ES_EUNSAFE, "entry '%s': whiteout of an invalid name", ev->path);
    node *x = child_get(a, dir, target, strlen(target));
    layer_tree_add_child_of(a, dir);
    touch(a, x);
    x->cur_flags |= CF_WHITEOUT;
    final_hide_lower(a, x, 1);
    a->layers[a->n_layers - 1].whiteouts++;
    return 0;
}

static int entry_plain(es_analyzer *a, const es_entry_event *ev, es_error *err)
{
    node *n = path_get(a, ev->path, strlen(ev->path), err);
    if (!n) return -1;
    if (n == &a->root) return 0; /* "." : dive skips it, and it changes nothing */
    layer_tree_add(a, n);
    n->cur_flags |= CF_EXPLICIT;
    n->cur_flags =
        (uint8_t)((n->cur_flags & ~CF_ISDIR) | (ev->type == ES_ENTRY_DIR ? CF_ISDIR : 0));
    n->cur_size = ev->size;
    final_set(a, n, ev);
    layer_rec *l = &a->layers[a->n_layers - 1];
    if (ev->type != ES_ENTRY_DIR) l->files++;
    if (ev->type == ES_ENTRY_FILE) a->file_entry_bytes += ev->size;
    return analyse_content(a, n, ev, err);
}

int es_analyzer_entry(es_analyzer *a, const es_entry_event *ev, es_error *err)
{
    if (!a->in_layer) return es_err(err, ES_EFAIL, "analyzer: entry outside a layer");
    if (!ev->path || !*ev->path) return es_err(err, ES_EUNSAFE, "entry with an empty path");
    if (ev->size < 0) return es_err(err, ES_EUNSAFE, "entry '%s': negative size", ev->path);
    layer_rec *l = &a->layers[a->n_layers - 1];
    l->entries++;
    l->size += ev->size;
    size_t prefix_len, dir_len;
    if (meta_whiteout_prefix(ev->path, &prefix_len))
        return entry_meta_whiteout(a, ev, prefix_len, err);
    const char *base = base_name(ev->path, &dir_len);
    if (!strncmp(base, WH_PREFIX, sizeof WH_PREFIX - 1))
        return entry_whiteout(a, ev, dir_len, base, err);
    return entry_plain(a, ev, err);
}

static char *dup_or_null(const char *s)
{
    return s ? es_xstrdup(s) : NULL;
}

int es_analyzer_layer_end(es_analyzer *a, const es_layer_meta *meta, es_error *err)
{
    if (!a->in_layer) return es_err(err, ES_EFAIL, "analyzer: no layer to end");
    a->in_layer = 0;
    dive_close_layer(a);
    layer_rec *l = &a->layers[a->n_layers - 1];
    l->compressed_size = l->tar_size = -1;
    if (meta) {
        l->digest = dup_or_null(meta->digest);
        l->diff_id = dup_or_null(meta->diff_id);
        l->media_type = dup_or_null(meta->media_type);
        l->created_by = dup_or_null(meta->created_by);
        l->compressed_size = meta->compressed_size;
        l->tar_size = meta->tar_size;
    }
    return 0;
}

/* ------------------------------------------------------------------ metrics */

void es_analyzer_metrics(const es_analyzer *a, es_waste_metrics *m)
{
    memset(m, 0, sizeof *m);
    int64_t min_sum = 0, cum_sum = 0;
    for (size_t i = 0; i < a->n_nodes; i++) {
        const node *n = a->all[i];
        if (!n->dive_refs) continue;
        min_sum += n->dive_min;
        cum_sum += n->dive_cum;
        if (n->dive_refs >= 2) {
            m->wasted_bytes += n->dive_cum;
            m->inefficient_paths++;
        }
    }
    m->efficiency = cum_sum == 0 ? 1.0 : (double)min_sum / (double)cum_sum;
    for (size_t i = 0; i < a->n_layers; i++) {
        m->size_bytes += a->layers[i].size;
        if (i) m->user_size_bytes += a->layers[i].size;
    }
    if (m->user_size_bytes)
        m->user_wasted_percent = (double)m->wasted_bytes / (double)m->user_size_bytes;
    else
        m->user_wasted_percent = m->wasted_bytes ? INFINITY : NAN;
    int64_t visible = 0;
    for (size_t i = 0; i < a->n_nodes; i++) {
        const node *n = a->all[i];
        if (n->present && n->type == ES_ENTRY_FILE) visible += n->size;
    }
    m->reclaimable_bytes = a->file_entry_bytes - visible;
}
