/*
 * Helpers shared by the test_oci_* unit tests: they build real images by hand, as lists of
 * (name, bytes) entries with real sha256 digests, materialised either as a directory (OCI
 * layout) or as a tar written with libarchive (oci-archive, docker-archive in its three
 * layouts). Layers are real tars (and gzip streams) made with libarchive.
 */
#ifndef TEST_OCI_HELPERS_H
#define TEST_OCI_HELPERS_H

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/image.h"
#include "util/digest.h"

typedef struct t_entry {
    char *name;
    char *data;
    size_t len;
    char *link; /* symlink target, or NULL */
} t_entry;

typedef struct t_files {
    t_entry e[64];
    size_t n;
} t_files;

static inline void tf_free(t_files *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->e[i].name);
        free(f->e[i].data);
        free(f->e[i].link);
    }
    f->n = 0;
}

static inline t_entry *tf_find(t_files *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->e[i].name, name)) return &f->e[i];
    return NULL;
}

static inline void tf_put(t_files *f, const char *name, const void *data, size_t len)
{
    t_entry *e = tf_find(f, name);
    if (!e) {
        e = &f->e[f->n++];
        memset(e, 0, sizeof *e);
        e->name = strdup(name);
    }
    char *copy = malloc(len + 1);
    memcpy(copy, data, len);
    copy[len] = 0;
    free(e->data);
    e->data = copy;
    e->len = len;
}

static inline void tf_put_str(t_files *f, const char *name, const char *s)
{
    tf_put(f, name, s, strlen(s));
}

static inline void tf_symlink(t_files *f, const char *name, const char *target)
{
    t_entry *e = &f->e[f->n++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->link = strdup(target);
}

/* Stores data as blobs/sha256/<hex>; returns its digest. */
static inline es_digest tf_blob(t_files *f, const void *data, size_t len)
{
    es_digest d;
    es_digest_buf(data, len, &d);
    char name[128];
    snprintf(name, sizeof name, "blobs/sha256/%s", d.s + 7);
    tf_put(f, name, data, len);
    return d;
}

static inline es_digest tf_blob_str(t_files *f, const char *s)
{
    return tf_blob(f, s, strlen(s));
}

static inline void mkdir_parents(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(buf, 0755);
        *p = '/';
    }
}

static inline void tf_to_dir(const t_files *f, const char *dir)
{
    mkdir(dir, 0755);
    for (size_t i = 0; i < f->n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, f->e[i].name);
        mkdir_parents(path);
        if (f->e[i].link) {
            if (symlink(f->e[i].link, path) != 0) abort();
            continue;
        }
        FILE *fp = fopen(path, "wb");
        if (!fp || fwrite(f->e[i].data, 1, f->e[i].len, fp) != f->e[i].len) abort();
        fclose(fp);
    }
}

static inline void tf_to_tar(const t_files *f, const char *path)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) abort();
    for (size_t i = 0; i < f->n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, f->e[i].name);
        if (f->e[i].link) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, f->e[i].link);
            archive_entry_set_perm(e, 0777);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, (la_int64_t)f->e[i].len);
        }
        archive_write_header(a, e);
        if (!f->e[i].link && f->e[i].len) archive_write_data(a, f->e[i].data, f->e[i].len);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

/* A real layer tar holding one file "hello.txt" with `content`; gzip-compressed if gz. */
static inline char *make_layer(const char *content, int gz, size_t *len)
{
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gz) archive_write_add_filter_gzip(a);
    archive_write_set_bytes_in_last_block(a, 1);
    size_t used = 0;
    if (archive_write_open_memory(a, buf, cap, &used) != ARCHIVE_OK) abort();
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "hello.txt");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)strlen(content));
    archive_write_header(a, e);
    archive_write_data(a, content, strlen(content));
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    *len = used;
    return buf;
}

/* Config JSON with the given diff_ids. */
static inline char *config_json(const es_digest *diff_ids, size_t n, const char *arch, const char *variant)
{
    json_t *c = json_pack("{s:s, s:s, s:{s:s, s:[s], s:[s]}}", "os", "linux", "architecture", arch, "config",
                          "User", "1000", "Env", "PATH=/bin", "Cmd", "/bin/sh");
    if (variant) json_object_set_new(c, "variant", json_string(variant));
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(ids, json_string(diff_ids[i].s));
    json_object_set_new(c, "rootfs", json_pack("{s:s, s:o}", "type", "layers", "diff_ids", ids));
    json_object_set_new(c, "history", json_pack("[{s:s}]", "created_by", "test"));
    char *s = json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(c);
    return s;
}

static inline json_t *desc_json(const char *mt, const es_digest *d, size_t size)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", d->s, "size", (json_int_t)size);
}

static inline char *manifest_json(const es_digest *cfg, size_t cfg_len, const es_digest *layers,
                                  const size_t *sizes, const char *const *mts, size_t n)
{
    json_t *ls = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(ls, desc_json(mts[i], &layers[i], sizes[i]));
    json_t *m = json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType", ES_MT_OCI_MANIFEST, "config",
                          desc_json(ES_MT_OCI_CONFIG, cfg, cfg_len), "layers", ls);
    char *s = json_dumps(m, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(m);
    return s;
}

/* index.json text from an array of descriptors (stolen). */
static inline char *index_json_of(json_t *manifests)
{
    json_t *i = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", ES_MT_OCI_INDEX, "manifests", manifests);
    char *s = json_dumps(i, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(i);
    return s;
}

/* What a one-image OCI layout was built from. */
typedef struct t_image {
    es_digest layer, diff_id, config, manifest;
    size_t layer_len, config_len, manifest_len;
} t_image;

/* Adds layer, config and manifest blobs for a one-layer image to f; returns the manifest
 * descriptor (not yet in an index). */
static inline json_t *add_image(t_files *f, const char *content, const char *arch, const char *variant, t_image *ti)
{
    size_t tl, gl;
    char *tar = make_layer(content, 0, &tl);
    char *gz = make_layer(content, 1, &gl);
    t_image t;
    es_digest_buf(tar, tl, &t.diff_id);
    t.layer = tf_blob(f, gz, gl);
    t.layer_len = gl;
    char *cfg = config_json(&t.diff_id, 1, arch, variant);
    t.config_len = strlen(cfg);
    t.config = tf_blob_str(f, cfg);
    const char *mt = ES_MT_OCI_LAYER_GZIP;
    char *man = manifest_json(&t.config, t.config_len, &t.layer, &gl, &mt, 1);
    t.manifest_len = strlen(man);
    t.manifest = tf_blob_str(f, man);
    json_t *d = desc_json(ES_MT_OCI_MANIFEST, &t.manifest, t.manifest_len);
    json_t *p = json_pack("{s:s, s:s}", "os", "linux", "architecture", arch);
    if (variant) json_object_set_new(p, "variant", json_string(variant));
    json_object_set_new(d, "platform", p);
    if (ti) *ti = t;
    free(tar);
    free(gz);
    free(cfg);
    free(man);
    return d;
}

/* A complete one-image layout in f. */
static inline void make_oci(t_files *f, t_image *ti)
{
    json_t *ms = json_array();
    json_array_append_new(ms, add_image(f, "hello world\n", "amd64", NULL, ti));
    char *idx = index_json_of(ms);
    tf_put_str(f, "index.json", idx);
    tf_put_str(f, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    free(idx);
}

static inline char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/es-oci-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d) abort();
    return strdup(d);
}

static inline void rm_rf(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) abort();
}

static inline char *path_join(const char *a, const char *b)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s", a, b) < 0) abort();
    return s;
}

#endif
