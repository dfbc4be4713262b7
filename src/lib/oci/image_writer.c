/*
 * Writing images (see image_writer.h). A write is planned first as a sorted list of output files
 * (name -> bytes in memory or a layer file on disk), then the plan is written as an OCI layout
 * directory or as a tar (oci-archive, docker-archive) under a temporary name beside the
 * destination, fsynced and renamed into place. Layer files are hard-linked into an OCI layout
 * when they sit on the same file system (they were hashed as the layer writer produced them);
 * otherwise they are re-hashed while copied, so a plan never stores bytes that disagree with the
 * digests it names.
 *
 * Determinism: every JSON document is dumped with sorted keys and no whitespace; tar entries are
 * sorted bytewise, uid/gid 0, no user/group names, mode 0644/0755, mtime SOURCE_DATE_EPOCH or 0.
 *
 * An existing oci: directory is updated, not clobbered: the new layout keeps the old layout's
 * blobs (hard-linked) and index entries except the one with the same ref name (or, when no ref
 * is given, all of them), and is swapped in atomically with renameat2(RENAME_EXCHANGE). A
 * non-empty directory that is not an OCI layout is refused.
 */
#include "oci/image_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/parse.h"

char *es_json_dump_stable(const json_t *j)
{
    return json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
}

/* ------------------------------------------------------------------ the plan */

typedef struct out_file {
    char *name;
    char *data;          /* owned bytes, or NULL when from a file */
    size_t len;
    const char *src;     /* layer file */
    es_digest digest;    /* of the bytes */
    int64_t size;
} out_file;

typedef struct plan {
    out_file *f;
    size_t n, cap;
    int64_t total;
} plan;

static void plan_free(plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->f[i].name);
        free(p->f[i].data);
    }
    free(p->f);
    memset(p, 0, sizeof *p);
}

static out_file *plan_slot(plan *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->f[i].name, name)) return NULL; /* same content-addressed name: already there */
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->f = es_xrealloc(p->f, p->cap * sizeof *p->f);
    }
    out_file *f = &p->f[p->n++];
    memset(f, 0, sizeof *f);
    f->name = es_xstrdup(name);
    return f;
}

/* Adds bytes (taking ownership of data); fills *d with their digest if d. */
static void plan_add_mem(plan *p, const char *name, char *data, size_t len, es_digest *d)
{
    es_digest dg;
    es_digest_buf(data, len, &dg);
    if (d) *d = dg;
    out_file *f = plan_slot(p, name);
    if (!f) {
        free(data);
        return;
    }
    f->data = data;
    f->len = len;
    f->size = (int64_t)len;
    f->digest = dg;
    p->total += (int64_t)len;
}

static void plan_add_layer(plan *p, const char *name, const es_layer_blob *b)
{
    out_file *f = plan_slot(p, name);
    if (!f) return;
    f->src = b->path;
    f->digest = b->digest;
    f->size = b->size;
    p->total += b->size;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const out_file *)a)->name, ((const out_file *)b)->name);
}

static char *blob_name(const es_digest *d)
{
    return es_xasprintf("blobs/sha256/%s", es_digest_hex(d->s));
}

static void plan_add_blob(plan *p, char *data, size_t len, es_digest *d)
{
    es_digest dg;
    es_digest_buf(data, len, &dg);
    char *name = blob_name(&dg);
    plan_add_mem(p, name, data, len, d);
    free(name);
}

/* ------------------------------------------------------------------ documents */

static int diff_ids_equal(json_t *cfg, const es_image_out *img)
{
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    if (!json_is_array(ids) || json_array_size(ids) != img->n_layers) return 0;
    for (size_t i = 0; i < img->n_layers; i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_string(v) || strcmp(json_string_value(v), img->layers[i].diff_id.s) != 0) return 0;
    }
    return 1;
}

/* The config bytes: the raw bytes when they already describe these layers, else `config` with
 * rootfs set, serialised stably. */
static int config_bytes(const es_image_out *img, char **out, size_t *len, es_error *err)
{
    if (img->config_raw) {
        json_t *j = json_loadb(img->config_raw, img->config_raw_len, 0, NULL);
        int same = j && diff_ids_equal(j, img);
        json_decref(j);
        if (same) {
            *out = es_xmalloc(img->config_raw_len + 1);
            memcpy(*out, img->config_raw, img->config_raw_len);
            *len = img->config_raw_len;
            return 0;
        }
    }
    if (!json_is_object(img->config)) return es_err(err, ES_EFAIL, "image config is not a JSON object");
    json_t *c = json_deep_copy(img->config);
    json_t *ids = json_array();
    for (size_t i = 0; i < img->n_layers; i++) json_array_append_new(ids, json_string(img->layers[i].diff_id.s));
    json_t *rootfs = json_object();
    json_object_set_new(rootfs, "type", json_string("layers"));
    json_object_set_new(rootfs, "diff_ids", ids);
    json_object_set_new(c, "rootfs", rootfs);
    *out = es_json_dump_stable(c);
    json_decref(c);
    if (!*out) return es_err(err, ES_EFAIL, "cannot serialise the image config");
    *len = strlen(*out);
    return 0;
}

static json_t *descriptor(const char *mt, const es_digest *d, int64_t size)
{
    json_t *o = json_object();
    json_object_set_new(o, "mediaType", json_string(mt));
    json_object_set_new(o, "digest", json_string(d->s));
    json_object_set_new(o, "size", json_integer(size));
    return o;
}

static int check_layers(const es_image_out *img, es_error *err)
{
    for (size_t i = 0; i < img->n_layers; i++) {
        const es_layer_blob *b = &img->layers[i];
        if (!b->path || !es_digest_valid(b->digest.s) || !es_digest_valid(b->diff_id.s) || b->size < 0)
            return es_err(err, ES_EFAIL, "layer %zu: incomplete blob description", i);
        if (!es_mt_layer_for(b->compression))
            return es_err(err, ES_EFORMAT, "layer %zu (%s): unknown compression", i, b->path);
    }
    return 0;
}

/* Config, layers and manifest of one image into the OCI plan; returns the manifest descriptor. */
static json_t *plan_oci_image(plan *p, const es_image_out *img, es_write_result *res, es_error *err)
{
    if (check_layers(img, err) < 0) return NULL;
    char *cfg = NULL;
    size_t cfg_len = 0;
    if (config_bytes(img, &cfg, &cfg_len, err) < 0) return NULL;
    es_digest cfg_d;
    plan_add_blob(p, cfg, cfg_len, &cfg_d);
    json_t *m = json_object();
    json_object_set_new(m, "schemaVersion", json_integer(2));
    json_object_set_new(m, "mediaType", json_string(ES_MT_OCI_MANIFEST));
    json_object_set_new(m, "config", descriptor(ES_MT_OCI_CONFIG, &cfg_d, (int64_t)cfg_len));
    json_t *ls = json_array();
    for (size_t i = 0; i < img->n_layers; i++) {
        const es_layer_blob *b = &img->layers[i];
        json_array_append_new(ls, descriptor(es_mt_layer_for(b->compression), &b->digest, b->size));
        char *name = blob_name(&b->digest);
        plan_add_layer(p, name, b);
        free(name);
    }
    json_object_set_new(m, "layers", ls);
    if (img->annotations && json_object_size(img->annotations))
        json_object_set(m, "annotations", img->annotations);
    char *mtxt = es_json_dump_stable(m);
    json_decref(m);
    size_t mlen = strlen(mtxt);
    es_digest md;
    plan_add_blob(p, mtxt, mlen, &md);
    if (res) {
        res->manifest_digest = md;
        res->config_digest = cfg_d;
    }
    json_t *d = descriptor(ES_MT_OCI_MANIFEST, &md, (int64_t)mlen);
    const char *os = img->os ? img->os : json_string_value(json_object_get(img->config, "os"));
    const char *arch = img->arch ? img->arch : json_string_value(json_object_get(img->config, "architecture"));
    const char *var = img->variant ? img->variant : json_string_value(json_object_get(img->config, "variant"));
    if (os && arch) {
        json_t *pl = json_object();
        json_object_set_new(pl, "os", json_string(os));
        json_object_set_new(pl, "architecture", json_string(arch));
        if (var && *var) json_object_set_new(pl, "variant", json_string(var));
        json_object_set_new(d, "platform", pl);
    }
    return d;
}

static void set_ref_name(json_t *desc, const char *ref)
{
    if (!ref) return;
    json_t *a = json_object();
    json_object_set_new(a, ES_ANN_REF_NAME, json_string(ref));
    json_object_set_new(desc, "annotations", a);
}

static char *index_json(json_t *manifests)
{
    json_t *idx = json_object();
    json_object_set_new(idx, "schemaVersion", json_integer(2));
    json_object_set_new(idx, "mediaType", json_string(ES_MT_OCI_INDEX));
    json_object_set(idx, "manifests", manifests);
    char *s = es_json_dump_stable(idx);
    json_decref(idx);
    return s;
}

static void plan_add_layout_files(plan *p, json_t *top_entries)
{
    char *idx = index_json(top_entries);
    plan_add_mem(p, "index.json", idx, strlen(idx), NULL);
    char *lay = es_xstrdup("{\"imageLayoutVersion\":\"1.0.0\"}");
    plan_add_mem(p, "oci-layout", lay, strlen(lay), NULL);
}

/* ------------------------------------------------------------------ writing files */

static int64_t sde_mtime(void)
{
    const char *v = getenv("SOURCE_DATE_EPOCH");
    if (!v || !*v) return 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    return (*end == 0 && x >= 0) ? x : 0;
}

/* Streams a plan entry's bytes to sink(arg, buf, n); file entries are re-verified. */
typedef int (*sink_fn)(void *arg, const void *buf, size_t n, es_error *err);

static int emit_file(const out_file *f, sink_fn sink, void *arg, es_error *err)
{
    if (f->data) return sink(arg, f->data, f->len, err);
    es_reader *r = es_reader_file(f->src, err);
    if (!r) return -1;
    r = es_reader_verify(r, f->digest.s, f->size, f->src, NULL);
    static __thread char buf[1 << 17];
    ssize_t k;
    int rc = 0;
    while ((k = es_reader_read(r, buf, sizeof buf, err)) > 0)
        if ((rc = sink(arg, buf, (size_t)k, err)) < 0) break;
    es_reader_free(r);
    return k < 0 ? -1 : rc;
}

static int fd_sink(void *arg, const void *buf, size_t n, es_error *err)
{
    int fd = *(int *)arg;
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return es_err_sys(err, ES_EIO, "write");
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int fsync_path(const char *path, es_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        es_err_sys(err, ES_EIO, "%s: fsync", path);
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(p) : unlink(p)) < 0 ? -1 : 0;
}

static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* "<dir of dst>/.<base of dst>.tmp-XXXXXX" */
static char *temp_sibling(const char *dst)
{
    char *a = es_xstrdup(dst), *b = es_xstrdup(dst);
    char *t = es_xasprintf("%s/.%s.tmp-XXXXXX", dirname(a), basename(b));
    free(a);
    free(b);
    return t;
}

static int write_dir_file(const char *dir, const out_file *f, es_error *err)
{
    char *path = es_xasprintf("%s/%s", dir, f->name);
    int fd = -1, rc = -1;
    /* A layer file written by edgeslim's layer writer (hashed while it was written) on the same
     * file system is hard-linked in instead of copied; it only needs to reach the disk. */
    if (f->src && link(f->src, path) == 0) {
        struct stat st;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size != f->size) {
            es_err_sys(err, ES_EIO, "%s: linked layer file is not the %lld bytes planned", path, (long long)f->size);
            goto out;
        }
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
            es_err_sys(err, ES_EIO, "%s: fsync", path);
            goto out;
        }
        rc = 0;
        goto out;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        es_err_sys(err, ES_EIO, "%s: cannot create", path);
        goto out;
    }
    if (emit_file(f, fd_sink, &fd, err) < 0) {
        es_err_prefix(err, "%s: ", path);
        goto out;
    }
    if (fsync(fd) < 0) {
        es_err_sys(err, ES_EIO, "%s: fsync", path);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    free(path);
    return rc;
}

/* Old blobs of an existing layout, hard-linked (or copied) into the new one. */
static int keep_old_blobs(const char *old, const char *tmp, es_error *err)
{
    char *od = es_xasprintf("%s/blobs/sha256", old);
    DIR *d = opendir(od);
    int rc = 0;
    if (!d) {
        free(od);
        return 0;
    }
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *src = es_xasprintf("%s/%s", od, e->d_name);
        char *dst = es_xasprintf("%s/blobs/sha256/%s", tmp, e->d_name);
        if (access(dst, F_OK) != 0 && link(src, dst) < 0) {
            es_reader *r = es_reader_file(src, err);
            int fd = r ? open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644) : -1;
            char buf[65536];
            ssize_t k = -1;
            if (fd >= 0)
                while ((k = es_reader_read(r, buf, sizeof buf, err)) > 0)
                    if (fd_sink(&fd, buf, (size_t)k, err) < 0) break;
            if (fd < 0 || k != 0) rc = es_err_sys(err, ES_EIO, "%s: cannot copy into the new layout", src);
            if (fd >= 0) close(fd);
            es_reader_free(r);
        }
        free(src);
        free(dst);
    }
    closedir(d);
    free(od);
    return rc;
}

/* Entries of an existing layout's index.json other than those `ref` replaces. */
static json_t *old_entries(const char *dst, const char *ref)
{
    char *p = es_xasprintf("%s/index.json", dst);
    json_t *j = json_load_file(p, JSON_REJECT_DUPLICATES, NULL);
    free(p);
    json_t *keep = json_array();
    json_t *ms = json_object_get(j, "manifests");
    for (size_t i = 0; ref && i < json_array_size(ms); i++) {
        json_t *e = json_array_get(ms, i);
        json_t *rn = json_object_get(json_object_get(e, "annotations"), ES_ANN_REF_NAME);
        if (json_is_string(rn) && strcmp(json_string_value(rn), ref) != 0) json_array_append(keep, e);
    }
    json_decref(j);
    return keep;
}

/* 0: absent, 1: empty dir, 2: OCI layout; -1 error (refused). */
static int existing_target(const char *dst, es_error *err)
{
    struct stat st;
    if (lstat(dst, &st) < 0) return errno == ENOENT ? 0 : es_err_sys(err, ES_EIO, "%s", dst);
    if (!S_ISDIR(st.st_mode)) return es_err(err, ES_EIO, "%s: exists and is not a directory; refusing to replace it", dst);
    char *lay = es_xasprintf("%s/oci-layout", dst);
    int is_layout = access(lay, F_OK) == 0;
    free(lay);
    if (is_layout) return 2;
    DIR *d = opendir(dst);
    int empty = 1;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    if (d) closedir(d);
    if (!empty) return es_err(err, ES_EIO, "%s: a non-empty directory that is not an OCI layout; refusing to write into it", dst);
    return 1;
}

static int write_layout_dir(plan *p, const char *dst, es_error *err)
{
    char *tmp = temp_sibling(dst);
    if (!mkdtemp(tmp)) {
        es_err_sys(err, ES_EIO, "%s: cannot create a temporary directory", tmp);
        free(tmp);
        return -1;
    }
    int rc = -1;
    char *b = es_xasprintf("%s/blobs", tmp), *bs = es_xasprintf("%s/blobs/sha256", tmp);
    int existing = existing_target(dst, err);
    if (existing < 0) goto out;
    if (mkdir(b, 0755) < 0 || mkdir(bs, 0755) < 0) {
        es_err_sys(err, ES_EIO, "%s: mkdir", bs);
        goto out;
    }
    for (size_t i = 0; i < p->n; i++)
        if (write_dir_file(tmp, &p->f[i], err) < 0) goto out;
    if (existing == 2 && keep_old_blobs(dst, tmp, err) < 0) goto out;
    if (fsync_path(bs, err) < 0 || fsync_path(b, err) < 0 || fsync_path(tmp, err) < 0) goto out;
    if (existing == 0 ? rename(tmp, dst) : renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_EXCHANGE)) {
        es_err_sys(err, ES_EIO, "%s: cannot move the new layout into place", dst);
        goto out;
    }
    rc = 0;
out:
    rm_tree(tmp); /* after an exchange this is the old layout */
    free(b);
    free(bs);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------ tar output */

static int archive_sink(void *arg, const void *buf, size_t n, es_error *err)
{
    struct archive *a = arg;
    la_ssize_t k = archive_write_data(a, buf, n);
    if (k < 0 || (size_t)k != n) return es_err(err, ES_EIO, "writing tar data: %s", archive_error_string(a));
    return 0;
}

static int tar_add(struct archive *a, const char *name, int is_dir, const out_file *f, int64_t mtime,
                   es_error *err)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, is_dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, is_dir ? 0755 : 0644);
    archive_entry_set_size(e, is_dir ? 0 : f->size);
    archive_entry_set_mtime(e, mtime, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    int rc = 0;
    if (archive_write_header(a, e) != ARCHIVE_OK)
        rc = es_err(err, ES_EIO, "writing tar entry %s: %s", name, archive_error_string(a));
    else if (!is_dir)
        rc = emit_file(f, archive_sink, a, err);
    archive_entry_free(e);
    return rc;
}

static int write_entries(struct archive *a, plan *p, int with_blob_dirs, es_error *err)
{
    int64_t mtime = sde_mtime();
    if (with_blob_dirs &&
        (tar_add(a, "blobs/", 1, NULL, mtime, err) < 0 || tar_add(a, "blobs/sha256/", 1, NULL, mtime, err) < 0))
        return -1;
    for (size_t i = 0; i < p->n; i++)
        if (tar_add(a, p->f[i].name, 0, &p->f[i], mtime, err) < 0) return -1;
    return 0;
}

static int write_tar(plan *p, const char *dst, int with_blob_dirs, es_error *err)
{
    struct stat st;
    if (lstat(dst, &st) == 0 && !S_ISREG(st.st_mode))
        return es_err(err, ES_EIO, "%s: exists and is not a regular file; refusing to replace it", dst);
    qsort(p->f, p->n, sizeof *p->f, name_cmp);
    char *tmp = temp_sibling(dst);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        es_err_sys(err, ES_EIO, "%s: cannot create a temporary file", tmp);
        free(tmp);
        return -1;
    }
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    int rc = -1;
    if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        es_err(err, ES_EIO, "%s: %s", tmp, archive_error_string(a));
        goto out;
    }
    if (write_entries(a, p, with_blob_dirs, err) < 0) goto out;
    if (archive_write_close(a) != ARCHIVE_OK) {
        es_err(err, ES_EIO, "%s: %s", tmp, archive_error_string(a));
        goto out;
    }
    if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, dst) < 0) {
        es_err_sys(err, ES_EIO, "%s: cannot finish", dst);
        goto out;
    }
    rc = 0;
out:
    archive_write_free(a);
    close(fd);
    if (rc < 0) unlink(tmp);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------ transports */

static int parse_dst(const char *dst_ref, es_image_ref *r, es_error *err)
{
    if (es_ref_parse(dst_ref, r, err) < 0) return -1;
    if (r->kind != ES_TR_AUTO) return 0;
    struct stat st;
    char *lay = es_xasprintf("%s/oci-layout", r->path);
    int is_layout = stat(r->path, &st) == 0 && S_ISDIR(st.st_mode) && access(lay, F_OK) == 0;
    free(lay);
    if (is_layout) {
        r->kind = ES_TR_OCI;
        return 0;
    }
    es_ref_free(r);
    return es_err(err, ES_EUSAGE, "%s: name the output transport (oci:, oci-archive: or docker-archive:)", dst_ref);
}

static int write_oci(plan *p, json_t *entry, const es_image_ref *r, es_error *err)
{
    set_ref_name(entry, r->ref);
    json_t *top = r->kind == ES_TR_OCI && existing_target(r->path, NULL) == 2 ? old_entries(r->path, r->ref) : json_array();
    json_array_append(top, entry);
    plan_add_layout_files(p, top);
    json_decref(top);
    qsort(p->f, p->n, sizeof *p->f, name_cmp);
    return r->kind == ES_TR_OCI ? write_layout_dir(p, r->path, err) : write_tar(p, r->path, 1, err);
}

static char *docker_tag(const char *ref)
{
    if (!ref) return es_xstrdup("localhost/edgeslim:latest");
    const char *slash = strrchr(ref, '/');
    if (strchr(slash ? slash : ref, ':')) return es_xstrdup(ref);
    return es_xasprintf("%s:latest", ref);
}

static int write_docker_archive(const es_image_out *img, const es_image_ref *r, es_write_result *res,
                                es_error *err)
{
    if (check_layers(img, err) < 0) return -1;
    plan p = {0};
    char *cfg = NULL;
    size_t cfg_len = 0;
    if (config_bytes(img, &cfg, &cfg_len, err) < 0) return -1;
    es_digest cfg_d;
    es_digest_buf(cfg, cfg_len, &cfg_d);
    char *cfg_name = es_xasprintf("%s.json", es_digest_hex(cfg_d.s));
    plan_add_mem(&p, cfg_name, cfg, cfg_len, NULL);
    json_t *entry = json_object();
    json_object_set_new(entry, "Config", json_string(cfg_name));
    free(cfg_name);
    char *tag = docker_tag(r->ref);
    json_t *tags = json_array();
    json_array_append_new(tags, json_string(tag));
    free(tag);
    json_object_set_new(entry, "RepoTags", tags);
    json_t *ls = json_array();
    for (size_t i = 0; i < img->n_layers; i++) {
        char *n = es_xasprintf("%s.tar", es_digest_hex(img->layers[i].digest.s));
        json_array_append_new(ls, json_string(n));
        plan_add_layer(&p, n, &img->layers[i]);
        free(n);
    }
    json_object_set_new(entry, "Layers", ls);
    json_t *arr = json_array();
    json_array_append_new(arr, entry);
    char *mj = es_json_dump_stable(arr);
    json_decref(arr);
    plan_add_mem(&p, "manifest.json", mj, strlen(mj), res ? &res->manifest_digest : NULL);
    if (res) res->config_digest = cfg_d;
    int rc = write_tar(&p, r->path, 0, err);
    if (rc == 0 && res) res->total_size = p.total;
    plan_free(&p);
    return rc;
}

int es_image_write(const es_image_out *img, const char *dst_ref, es_write_result *res, es_error *err)
{
    es_image_ref r;
    if (parse_dst(dst_ref, &r, err) < 0) return -1;
    int rc = -1;
    if (r.kind == ES_TR_DOCKER_ARCHIVE) {
        rc = write_docker_archive(img, &r, res, err);
    } else {
        plan p = {0};
        json_t *entry = plan_oci_image(&p, img, res, err);
        if (entry) rc = write_oci(&p, entry, &r, err);
        if (rc == 0 && res) res->total_size = p.total;
        json_decref(entry);
        plan_free(&p);
    }
    if (rc < 0) es_err_prefix(err, "writing %s: ", dst_ref);
    es_ref_free(&r);
    return rc;
}

int es_index_write(const es_image_out *imgs, size_t n, const char *dst_ref, es_write_result *res, es_error *err)
{
    es_image_ref r;
    if (parse_dst(dst_ref, &r, err) < 0) return -1;
    int rc = -1;
    plan p = {0};
    json_t *ms = json_array();
    if (r.kind == ES_TR_DOCKER_ARCHIVE) {
        es_err(err, ES_EUNSUPPORTED, "docker-archive cannot hold a multi-platform index");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *d = plan_oci_image(&p, &imgs[i], NULL, err);
        if (!d) goto out;
        json_array_append_new(ms, d);
    }
    char *idx = index_json(ms);
    size_t len = strlen(idx);
    es_digest d;
    plan_add_blob(&p, idx, len, &d);
    if (res) {
        memset(res, 0, sizeof *res);
        res->manifest_digest = d;
    }
    json_t *top = descriptor(ES_MT_OCI_INDEX, &d, (int64_t)len);
    rc = write_oci(&p, top, &r, err);
    json_decref(top);
    if (rc == 0 && res) res->total_size = p.total;
out:
    if (rc < 0) es_err_prefix(err, "writing %s: ", dst_ref);
    json_decref(ms);
    plan_free(&p);
    es_ref_free(&r);
    return rc;
}
