/*
 * Opening an image: reference -> transport source -> (index -> platform choice)* -> manifest ->
 * config, all small documents read whole (capped at max_json_bytes) and checked against the
 * digest and size their descriptor declares. Layers are not read at open: es_image_open_layer_blob
 * hands out a stream that is verified while it is consumed.
 *
 * Sources: an OCI layout directory (files under DIR), or an uncompressed tar (docker-archive,
 * oci-archive) indexed once by tar_index.c and read in place by offset.
 *
 * docker-archive has no manifest with layer digests, so one is synthesised (OCI media types):
 *   - Docker 25+ stores layers as blobs/sha256/<hex>: the digest is the name, checked on read;
 *   - an uncompressed layer (podman "<diffid>.tar", pre-25 "<id>/layer.tar", sniffed by magic)
 *     has blob digest == diff_id, so the config's diff_id is the digest, checked on read;
 *   - a compressed layer file is hashed once at open (the only case that reads a layer twice).
 * Invariants: after a successful open, n_layers == number of config diff_ids, every layer blob
 * exists in the source with the declared size (foreign layers with urls excepted), and
 * config_digest is the sha256 of config_raw.
 */
#include "oci/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/parse.h"
#include "oci/tar_index.h"

struct es_source {
    es_transport_kind kind;
    char *dir;           /* ES_TR_OCI */
    es_tar_index *tar;   /* archives */
    char *display;       /* "oci:DIR" etc. for messages */
    char **layer_paths;  /* per layer: path inside the source */
    int *layer_foreign;  /* per layer: descriptor has urls (may be absent) */
    const es_limits *lim;
};

typedef struct want_platform {
    char os[32], arch[32], variant[32];
    int explicit_;
} want_platform;

/* ------------------------------------------------------------------ sources */

static void source_free(es_source *s)
{
    if (!s) return;
    free(s->dir);
    es_tar_index_free(s->tar);
    free(s->display);
    free(s->layer_foreign);
    free(s->layer_paths); /* strings freed by image_close, which knows n_layers */
    free(s);
}

/* 1 found (size set), 0 missing, -1 error. */
static int source_stat(es_source *s, const char *rel, int64_t *size, es_error *err)
{
    if (s->tar) {
        const es_tar_member *m = es_tar_index_find(s->tar, rel);
        if (!m) return 0;
        *size = m->size;
        return 1;
    }
    char *p = es_xasprintf("%s/%s", s->dir, rel);
    struct stat st;
    int rc = stat(p, &st);
    if (rc < 0 && errno == ENOENT) {
        free(p);
        return 0;
    }
    if (rc < 0 || !S_ISREG(st.st_mode)) {
        if (rc == 0) errno = EISDIR;
        es_err_sys(err, ES_EIO, "%s: not a readable regular file", p);
        free(p);
        return -1;
    }
    free(p);
    *size = st.st_size;
    return 1;
}

static es_reader *source_open(es_source *s, const char *rel, es_error *err)
{
    if (s->tar) {
        const es_tar_member *m = es_tar_index_find(s->tar, rel);
        if (!m) {
            es_err(err, ES_EDIGEST, "%s: %s is missing", s->display, rel);
            return NULL;
        }
        return es_tar_index_open(s->tar, m);
    }
    char *p = es_xasprintf("%s/%s", s->dir, rel);
    es_reader *r = es_reader_file(p, err);
    free(p);
    return r;
}

/* A file read whole with the JSON cap, not verified (index.json, oci-layout, manifest.json). */
static int read_plain(es_source *s, const char *rel, char **buf, size_t *len, es_error *err)
{
    int64_t size;
    int f = source_stat(s, rel, &size, err);
    if (f < 0) return -1;
    if (f == 0) return es_err(err, ES_EFORMAT, "%s: no %s", s->display, rel);
    es_reader *r = source_open(s, rel, err);
    if (!r) return -1;
    char *name = es_xasprintf("%s: %s", s->display, rel);
    int rc = es_reader_slurp(r, (size_t)s->lim->max_json_bytes, name, buf, len, err);
    free(name);
    es_reader_free(r);
    return rc;
}

static char *blob_rel(const es_digest *d)
{
    return es_xasprintf("blobs/sha256/%s", es_digest_hex(d->s));
}

/* A small blob named by a descriptor, read whole and checked against its digest and size. */
static int read_blob(es_source *s, const es_descriptor *d, const char *what, char **buf, size_t *len,
                     es_error *err)
{
    char *rel = blob_rel(&d->digest);
    char *name = es_xasprintf("%s: %s %s", s->display, what, rel);
    int64_t size;
    int rc = -1;
    int f = source_stat(s, rel, &size, err);
    if (f == 0) es_err(err, ES_EDIGEST, "%s: named but missing", name);
    if (f <= 0) goto out;
    if (d->size > s->lim->max_json_bytes) {
        es_err(err, ES_EUNSAFE, "%s: %lld bytes exceed the %lld-byte limit", name, (long long)d->size,
               (long long)s->lim->max_json_bytes);
        goto out;
    }
    es_reader *r = source_open(s, rel, err);
    if (!r) goto out;
    r = es_reader_verify(r, d->digest.s, d->size, name, NULL);
    rc = es_reader_slurp(r, (size_t)s->lim->max_json_bytes, name, buf, len, err);
    es_reader_free(r);
out:
    free(rel);
    free(name);
    return rc;
}

/* ------------------------------------------------------------------ platform choice */

static int platform_exact(const want_platform *w, const es_descriptor *d)
{
    if (!d->has_platform) return 0;
    char wv[32], v[32];
    snprintf(wv, sizeof wv, "%s", w->variant);
    snprintf(v, sizeof v, "%s", d->variant);
    if (!strcmp(d->arch, "arm64")) {
        if (!v[0]) strcpy(v, "v8");
        if (!wv[0]) strcpy(wv, "v8");
    }
    return !strcmp(w->os, d->os) && !strcmp(w->arch, d->arch) && !strcmp(wv, v);
}

static void list_platforms(const es_descriptor *ds, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (!es_mt_is_manifest(ds[i].media_type) && !es_mt_is_index(ds[i].media_type)) continue;
        const es_descriptor *d = &ds[i];
        int k = d->has_platform
                    ? snprintf(buf + o, cap - o, "%s%s/%s%s%s", o ? ", " : "", d->os, d->arch,
                               d->variant[0] ? "/" : "", d->variant)
                    : snprintf(buf + o, cap - o, "%s(no platform)", o ? ", " : "");
        if (k < 0) break;
        o += (size_t)k;
    }
}

/* Index into ds of the manifest to use, or -1 with err. Entries of media types we do not know
 * are skipped (the spec forbids failing on them), attestation entries have platform
 * unknown/unknown and never match. */
static int select_platform(const es_descriptor *ds, size_t n, const want_platform *w, const char *name,
                           es_error *err)
{
    int only = -1, count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!es_mt_is_manifest(ds[i].media_type) && !es_mt_is_index(ds[i].media_type)) continue;
        count++;
        only = (int)i;
        if (platform_exact(w, &ds[i])) return (int)i;
    }
    for (size_t i = 0; i < n; i++) {
        const es_descriptor *d = &ds[i];
        if (!d->has_platform || (!es_mt_is_manifest(d->media_type) && !es_mt_is_index(d->media_type))) continue;
        if (es_platform_match(w->os, w->arch, w->variant, d->os, d->arch, d->variant)) return (int)i;
    }
    if (count == 1 && !ds[only].has_platform) return only;
    if (count == 0) return es_err(err, ES_EFORMAT, "%s: no image manifest of a known media type", name);
    char list[600];
    list_platforms(ds, n, list, sizeof list);
    return es_err(err, ES_EUNSUPPORTED, "%s: no image for platform %s/%s%s%s; available: %s", name, w->os,
                  w->arch, w->variant[0] ? "/" : "", w->variant, list);
}

/* ------------------------------------------------------------------ manifest and config */

static int resolve_to_manifest(es_image *img, const es_descriptor *d, const want_platform *w, int depth,
                               es_manifest_doc *man, es_error *err)
{
    es_source *s = img->src;
    if (depth > 4) return es_err(err, ES_EUNSAFE, "%s: indexes nested more than 4 deep", s->display);
    char *buf = NULL;
    size_t len = 0;
    char *name = es_xasprintf("%s: blobs/sha256/%s", s->display, es_digest_hex(d->digest.s));
    int rc = -1;
    if (es_mt_is_index(d->media_type)) {
        es_index_doc idx;
        if (read_blob(s, d, "index", &buf, &len, err) < 0) goto out;
        if (es_parse_index(buf, len, name, s->lim, &idx, err) < 0) goto out;
        int k = select_platform(idx.manifests, idx.n, w, name, err);
        if (k >= 0) rc = resolve_to_manifest(img, &idx.manifests[k], w, depth + 1, man, err);
        es_index_doc_free(&idx);
    } else if (es_mt_is_manifest(d->media_type)) {
        if (read_blob(s, d, "manifest", &buf, &len, err) < 0) goto out;
        if (es_parse_manifest(buf, len, name, s->lim, man, err) < 0) goto out;
        img->manifest_digest = d->digest;
        if (d->has_platform) { /* fallback when the config does not say */
            snprintf(img->os, sizeof img->os, "%s", d->os);
            snprintf(img->arch, sizeof img->arch, "%s", d->arch);
            snprintf(img->variant, sizeof img->variant, "%s", d->variant);
        }
        snprintf(img->manifest_media_type, sizeof img->manifest_media_type, "%s", d->media_type);
        rc = 0;
    } else {
        es_err(err, ES_EFORMAT, "%s: unknown manifest media type \"%s\"", name, d->media_type);
    }
out:
    free(buf);
    free(name);
    return rc;
}

/* Takes the parsed config into img (steals root and history). */
static int adopt_config(es_image *img, es_config_doc *cd, char *raw, size_t raw_len, const char *name,
                        es_error *err)
{
    if (cd->n_diff_ids != img->n_layers)
        return es_err(err, ES_EFORMAT, "%s: config has %zu rootfs.diff_ids but the manifest has %zu layers",
                      name, cd->n_diff_ids, img->n_layers);
    for (size_t i = 0; i < img->n_layers; i++) img->layers[i].diff_id = cd->diff_ids[i];
    img->config = cd->root;
    cd->root = NULL;
    img->history = cd->history;
    img->n_history = cd->n_history;
    cd->history = NULL;
    cd->n_history = 0;
    if (cd->os[0] && cd->arch[0]) {
        snprintf(img->os, sizeof img->os, "%s", cd->os);
        snprintf(img->arch, sizeof img->arch, "%s", cd->arch);
        snprintf(img->variant, sizeof img->variant, "%s", cd->variant);
    }
    img->config_raw = raw;
    img->config_raw_len = raw_len;
    return 0;
}

static int parse_and_adopt_config(es_image *img, char *raw, size_t len, const char *name, es_error *err)
{
    es_config_doc cd;
    if (es_parse_config(raw, len, name, img->src->lim, &cd, err) < 0) {
        free(raw);
        return -1;
    }
    int rc = adopt_config(img, &cd, raw, len, name, err);
    if (rc < 0) free(raw);
    es_config_doc_free(&cd);
    return rc;
}

static int check_layer_present(es_image *img, size_t i, es_error *err)
{
    es_source *s = img->src;
    int64_t size;
    int f = source_stat(s, s->layer_paths[i], &size, err);
    if (f < 0) return -1;
    if (f == 0) {
        if (s->layer_foreign[i]) return 0; /* foreign/non-distributable: fetched from urls elsewhere */
        return es_err(err, ES_EDIGEST, "%s: layer %zu: %s named but missing", s->display, i, s->layer_paths[i]);
    }
    if (size != img->layers[i].size)
        return es_err(err, ES_EDIGEST, "%s: layer %zu: %s: size mismatch: declared %lld bytes, stored %lld",
                      s->display, i, s->layer_paths[i], (long long)img->layers[i].size, (long long)size);
    return 0;
}

static int adopt_manifest(es_image *img, es_manifest_doc *man, es_error *err)
{
    es_source *s = img->src;
    img->n_layers = man->n_layers;
    img->layers = es_xcalloc(man->n_layers, sizeof *img->layers);
    s->layer_paths = es_xcalloc(man->n_layers, sizeof *s->layer_paths);
    s->layer_foreign = es_xcalloc(man->n_layers, sizeof *s->layer_foreign);
    for (size_t i = 0; i < man->n_layers; i++) {
        es_layer_info *l = &img->layers[i];
        const es_descriptor *d = &man->layers[i];
        l->digest = d->digest;
        l->size = d->size;
        snprintf(l->media_type, sizeof l->media_type, "%s", d->media_type);
        l->compression = es_mt_layer_compression(d->media_type);
        s->layer_paths[i] = blob_rel(&d->digest);
        s->layer_foreign[i] = d->has_urls;
        if (check_layer_present(img, i, err) < 0) return -1;
    }
    img->config_digest = man->config.digest;
    img->config_size = man->config.size;
    char *raw = NULL;
    size_t len = 0;
    if (read_blob(s, &man->config, "config", &raw, &len, err) < 0) return -1;
    char *name = es_xasprintf("%s: config blobs/sha256/%s", s->display, es_digest_hex(man->config.digest.s));
    int rc = parse_and_adopt_config(img, raw, len, name, err);
    free(name);
    return rc;
}

/* ------------------------------------------------------------------ oci layouts */

static int check_layout_file(es_source *s, es_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (read_plain(s, "oci-layout", &buf, &len, err) < 0) return -1;
    char *name = es_xasprintf("%s: oci-layout", s->display);
    json_t *j = es_json_parse(buf, len, name, err);
    free(buf);
    int rc = -1;
    if (!j) goto out;
    json_t *v = json_object_get(j, "imageLayoutVersion");
    if (!json_is_string(v)) es_err(err, ES_EFORMAT, "%s: imageLayoutVersion missing", name);
    else if (strncmp(json_string_value(v), "1.", 2) != 0)
        es_err(err, ES_EUNSUPPORTED, "%s: imageLayoutVersion \"%.40s\" is not 1.x", name, json_string_value(v));
    else rc = 0;
    json_decref(j);
out:
    free(name);
    return rc;
}

static void list_refs(const es_index_doc *idx, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < idx->n && o + 1 < cap; i++) {
        int k = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "",
                         idx->manifests[i].ref_name ? idx->manifests[i].ref_name : "(unnamed)");
        if (k < 0) break;
        o += (size_t)k;
    }
}

/* Keeps in idx only the entries the reference selects; error when it selects none or the
 * layout holds several differently named images and none was named. */
static int filter_by_ref(es_index_doc *idx, const char *ref, const char *name, es_error *err)
{
    char list[600];
    list_refs(idx, list, sizeof list);
    const char *first_name = NULL;
    int several_names = 0;
    size_t k = 0;
    for (size_t i = 0; i < idx->n; i++) {
        const char *rn = idx->manifests[i].ref_name;
        if (rn && first_name && strcmp(rn, first_name) != 0) several_names = 1;
        if (rn && !first_name) first_name = rn;
    }
    for (size_t i = 0; i < idx->n; i++) {
        const char *rn = idx->manifests[i].ref_name;
        if (ref && (!rn || strcmp(rn, ref) != 0)) {
            free(idx->manifests[i].ref_name);
            continue;
        }
        idx->manifests[k++] = idx->manifests[i];
    }
    idx->n = k;
    if (!ref && several_names) {
        /* as skopeo and image.h promise: with no REF, "latest" when the layout has one */
        size_t keep = 0;
        for (size_t i = 0; i < idx->n; i++) {
            const char *rn = idx->manifests[i].ref_name;
            if (rn && !strcmp(rn, "latest")) idx->manifests[keep++] = idx->manifests[i];
            else free(idx->manifests[i].ref_name);
        }
        if (keep) {
            idx->n = keep;
            return 0;
        }
        idx->n = 0;
    }
    if (ref && k == 0) return es_err(err, ES_EUSAGE, "%s: no image named \"%s\"; the layout has: %s", name, ref, list);
    if (!ref && several_names)
        return es_err(err, ES_EUSAGE, "%s: holds several images, name one with :REF (%s)", name, list);
    if (k == 0) return es_err(err, ES_EFORMAT, "%s: index.json lists no manifests", name);
    return 0;
}

static int open_oci_layout(es_image *img, const want_platform *w, es_error *err)
{
    es_source *s = img->src;
    if (check_layout_file(s, err) < 0) return -1;
    char *buf = NULL;
    size_t len = 0;
    if (read_plain(s, "index.json", &buf, &len, err) < 0) return -1;
    char *name = es_xasprintf("%s: index.json", s->display);
    es_index_doc idx;
    es_manifest_doc man = {0};
    int rc = es_parse_index(buf, len, name, s->lim, &idx, err);
    free(buf);
    if (rc < 0) goto out;
    rc = filter_by_ref(&idx, img->ref.ref, name, err);
    if (rc == 0) {
        int k = idx.n == 1 ? 0 : select_platform(idx.manifests, idx.n, w, name, err);
        rc = k < 0 ? -1 : resolve_to_manifest(img, &idx.manifests[k], w, 0, &man, err);
        if (rc == 0 && idx.manifests[k].ref_name) {
            img->repo_tags = es_xcalloc(2, sizeof *img->repo_tags);
            img->repo_tags[0] = es_xstrdup(idx.manifests[k].ref_name);
        }
    }
    es_index_doc_free(&idx);
    if (rc == 0) rc = adopt_manifest(img, &man, err);
    es_manifest_doc_free(&man);
out:
    free(name);
    return rc;
}

/* ------------------------------------------------------------------ docker-archive */

static int tag_matches(const char *tag, const char *want)
{
    if (!strcmp(tag, want)) return 1;
    size_t n = strlen(want);
    /* "repo" means "repo:latest"; "localhost/x:t" and "docker.io/library/x:t" match "x:t". */
    if (!strchr(want, ':') && !strncmp(tag, want, n) && !strcmp(tag + n, ":latest")) return 1;
    static const char *prefixes[] = {"localhost/", "docker.io/library/", "docker.io/"};
    for (size_t i = 0; i < 3; i++) {
        size_t p = strlen(prefixes[i]);
        if (!strncmp(tag, prefixes[i], p) && tag_matches(tag + p, want)) return 1;
    }
    return 0;
}

static int select_docker_entry(const es_docker_manifest *dm, const char *ref, const char *name, es_error *err)
{
    if (!ref && dm->n == 1) return 0;
    char list[600];
    size_t o = 0;
    list[0] = 0;
    for (size_t i = 0; i < dm->n; i++) {
        for (char **t = dm->entries[i].repo_tags; *t; t++) {
            if (ref && tag_matches(*t, ref)) return (int)i;
            if (o + 1 < sizeof list) {
                int k = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", *t);
                if (k > 0) o += (size_t)k;
            }
        }
    }
    if (ref) return es_err(err, ES_EUSAGE, "%s: no image tagged \"%s\"; the archive has: %s", name, ref, list);
    return es_err(err, ES_EUSAGE, "%s: holds %zu images, name one with :TAG (%s)", name, dm->n, list);
}

/* For names "<64 hex>.json", "<64 hex>.tar", "blobs/sha256/<64 hex>": the digest they promise. */
static int digest_from_name(const char *path, es_digest *out)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char cand[ES_DIGEST_LEN + 8];
    int is_blob = !strncmp(path, "blobs/sha256/", 13) && strlen(path) == 13 + 64;
    int is_named = strlen(base) == 64 + 5 && (!strcmp(base + 64, ".json"));
    if (!is_blob && !is_named) return 0;
    snprintf(cand, sizeof cand, "sha256:%.64s", is_blob ? path + 13 : base);
    if (!es_digest_valid(cand)) return 0;
    memcpy(out->s, cand, ES_DIGEST_LEN + 1);
    return 1;
}

static int docker_read_config(es_image *img, const es_docker_entry *e, es_error *err)
{
    es_source *s = img->src;
    const es_tar_member *m = es_tar_index_find(s->tar, e->config);
    if (!m) return es_err(err, ES_EDIGEST, "%s: manifest.json names config %s, which is missing", s->display, e->config);
    char *name = es_xasprintf("%s: %s", s->display, e->config);
    es_digest_result got = {0};
    es_reader *r = es_reader_verify(es_tar_index_open(s->tar, m), NULL, m->size, name, &got);
    char *raw = NULL;
    size_t len = 0;
    int rc = es_reader_slurp(r, (size_t)s->lim->max_json_bytes, name, &raw, &len, err);
    es_reader_free(r);
    if (rc < 0) goto out;
    img->config_digest = got.digest;
    img->config_size = got.size;
    es_digest promised;
    if (digest_from_name(e->config, &promised) && strcmp(promised.s, got.digest.s) != 0) {
        free(raw);
        rc = es_err(err, ES_EDIGEST, "%s: digest mismatch: the name promises %s, content is %s", name, promised.s,
                    got.digest.s);
        goto out;
    }
    rc = parse_and_adopt_config(img, raw, len, name, err);
out:
    free(name);
    return rc;
}

static es_compression sniff_compression(const unsigned char *b, size_t n)
{
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return ES_COMP_GZIP;
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) return ES_COMP_ZSTD;
    if (n >= 3 && b[0] == 'B' && b[1] == 'Z' && b[2] == 'h') return ES_COMP_UNKNOWN;
    if (n >= 6 && !memcmp(b, "\xfd" "7zXZ\0", 6)) return ES_COMP_UNKNOWN;
    return ES_COMP_NONE;
}

static int hash_member(es_source *s, const es_tar_member *m, const char *name, es_digest *out, es_error *err)
{
    es_digest_result got = {0};
    es_reader *r = es_reader_verify(es_tar_index_open(s->tar, m), NULL, m->size, name, &got);
    char buf[65536];
    ssize_t k;
    while ((k = es_reader_read(r, buf, sizeof buf, err)) > 0) {
    }
    es_reader_free(r);
    if (k < 0) return -1;
    *out = got.digest;
    return 0;
}

static int docker_layer(es_image *img, size_t i, const char *path, es_error *err)
{
    es_source *s = img->src;
    es_layer_info *l = &img->layers[i];
    const es_tar_member *m = es_tar_index_find(s->tar, path);
    if (!m) return es_err(err, ES_EDIGEST, "%s: manifest.json names layer %s, which is missing", s->display, path);
    s->layer_paths[i] = es_xstrdup(m->name);
    char *name = es_xasprintf("%s: layer %zu (%s)", s->display, i, m->name);
    unsigned char magic[8] = {0};
    ssize_t k = pread(s->tar->fd, magic, m->size < 8 ? (size_t)m->size : 8, m->off);
    int rc = -1;
    if (k < 0) {
        es_err_sys(err, ES_EIO, "%s: read", name);
        goto out;
    }
    l->compression = sniff_compression(magic, (size_t)k);
    if (l->compression == ES_COMP_UNKNOWN) {
        es_err(err, ES_EUNSUPPORTED, "%s: bzip2/xz-compressed layers are not supported", name);
        goto out;
    }
    snprintf(l->media_type, sizeof l->media_type, "%s", es_mt_layer_for(l->compression));
    l->size = m->size;
    if (digest_from_name(m->name, &l->digest)) rc = 0;
    else if (l->compression == ES_COMP_NONE) {
        l->digest = l->diff_id; /* uncompressed: blob == tar; checked while streaming */
        rc = 0;
    } else {
        rc = hash_member(s, m, name, &l->digest, err);
    }
out:
    free(name);
    return rc;
}

static char **copy_tags(char **tags)
{
    size_t n = 0;
    while (tags && tags[n]) n++;
    char **v = es_xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = es_xstrdup(tags[i]);
    return v;
}

/* The OCI manifest docker-archive lacks, serialised stably so its digest is reproducible. */
static void synthesise_manifest(es_image *img)
{
    json_t *m = json_object();
    json_object_set_new(m, "schemaVersion", json_integer(2));
    json_object_set_new(m, "mediaType", json_string(ES_MT_OCI_MANIFEST));
    json_t *cfg = json_object();
    json_object_set_new(cfg, "mediaType", json_string(ES_MT_OCI_CONFIG));
    json_object_set_new(cfg, "digest", json_string(img->config_digest.s));
    json_object_set_new(cfg, "size", json_integer(img->config_size));
    json_object_set_new(m, "config", cfg);
    json_t *ls = json_array();
    for (size_t i = 0; i < img->n_layers; i++) {
        json_t *d = json_object();
        json_object_set_new(d, "mediaType", json_string(img->layers[i].media_type));
        json_object_set_new(d, "digest", json_string(img->layers[i].digest.s));
        json_object_set_new(d, "size", json_integer(img->layers[i].size));
        json_array_append_new(ls, d);
    }
    json_object_set_new(m, "layers", ls);
    char *txt = json_dumps(m, JSON_SORT_KEYS | JSON_COMPACT);
    es_digest_buf(txt, strlen(txt), &img->manifest_digest);
    free(txt);
    json_decref(m);
    snprintf(img->manifest_media_type, sizeof img->manifest_media_type, "%s", ES_MT_OCI_MANIFEST);
}

static int open_docker_archive(es_image *img, es_error *err)
{
    es_source *s = img->src;
    char *buf = NULL;
    size_t len = 0;
    if (read_plain(s, "manifest.json", &buf, &len, err) < 0) return -1;
    char *name = es_xasprintf("%s: manifest.json", s->display);
    es_docker_manifest dm;
    int rc = es_parse_docker_manifest(buf, len, name, s->lim, &dm, err);
    free(buf);
    if (rc < 0) goto out;
    int k = select_docker_entry(&dm, img->ref.ref, name, err);
    rc = -1;
    if (k < 0) goto out_dm;
    const es_docker_entry *e = &dm.entries[k];
    img->n_layers = e->n_layers;
    img->layers = es_xcalloc(e->n_layers, sizeof *img->layers);
    s->layer_paths = es_xcalloc(e->n_layers, sizeof *s->layer_paths);
    s->layer_foreign = es_xcalloc(e->n_layers, sizeof *s->layer_foreign);
    img->repo_tags = copy_tags(e->repo_tags);
    if (docker_read_config(img, e, err) < 0) goto out_dm;
    for (size_t i = 0; i < e->n_layers; i++)
        if (docker_layer(img, i, e->layers[i], err) < 0) goto out_dm;
    synthesise_manifest(img);
    rc = 0;
out_dm:
    es_docker_manifest_free(&dm);
out:
    free(name);
    return rc;
}

/* ------------------------------------------------------------------ open / close */

static int detect_kind(es_image *img, const es_limits *lim, es_error *err)
{
    const char *path = img->ref.path;
    struct stat st;
    if (stat(path, &st) < 0) return es_err_sys(err, ES_EIO, "%s: cannot open", path);
    if (S_ISDIR(st.st_mode)) {
        char *p = es_xasprintf("%s/oci-layout", path);
        int ok = access(p, F_OK) == 0;
        free(p);
        if (!ok) return es_err(err, ES_EFORMAT, "%s: a directory without an oci-layout file: not an OCI layout", path);
        img->ref.kind = ES_TR_OCI;
        return 0;
    }
    if (es_tar_index_build(path, lim, &img->src->tar, err) < 0) return -1;
    if (es_tar_index_find(img->src->tar, "manifest.json")) img->ref.kind = ES_TR_DOCKER_ARCHIVE;
    else if (es_tar_index_find(img->src->tar, "oci-layout")) img->ref.kind = ES_TR_OCI_ARCHIVE;
    else return es_err(err, ES_EFORMAT, "%s: a tar with neither manifest.json (docker-archive) nor oci-layout (oci-archive)", path);
    return 0;
}

static int open_source(es_image *img, const es_limits *lim, es_error *err)
{
    es_source *s = img->src = es_xcalloc(1, sizeof *s);
    s->lim = lim;
    if (img->ref.kind == ES_TR_AUTO && detect_kind(img, lim, err) < 0) return -1;
    s->kind = img->ref.kind;
    s->display = es_xasprintf("%s:%s", es_transport_name(s->kind), img->ref.path);
    if (s->kind == ES_TR_OCI) {
        struct stat st;
        if (stat(img->ref.path, &st) < 0) return es_err_sys(err, ES_EIO, "%s: cannot open", s->display);
        if (!S_ISDIR(st.st_mode)) return es_err(err, ES_EFORMAT, "%s: not a directory", s->display);
        s->dir = es_xstrdup(img->ref.path);
        return 0;
    }
    if (!s->tar && es_tar_index_build(img->ref.path, lim, &s->tar, err) < 0) return -1;
    return 0;
}

static int check_requested_platform(es_image *img, const want_platform *w, es_error *err)
{
    if (!w->explicit_) return 0;
    if (es_platform_match(w->os, w->arch, w->variant, img->os, img->arch, img->variant)) return 0;
    return es_err(err, ES_EUNSUPPORTED, "%s: the image is for %s/%s%s%s, not the requested %s/%s%s%s", img->src->display,
                  img->os, img->arch, img->variant[0] ? "/" : "", img->variant, w->os, w->arch,
                  w->variant[0] ? "/" : "", w->variant);
}

int es_image_open(const char *ref, const es_open_opts *opts, es_image **out, es_error *err)
{
    *out = NULL;
    const es_limits *lim = opts && opts->limits ? opts->limits : es_limits_default();
    want_platform w = {0};
    if (opts && opts->platform) {
        if (es_platform_parse(opts->platform, w.os, w.arch, w.variant, err) < 0) return -1;
        w.explicit_ = 1;
    } else {
        es_host_platform(w.os, w.arch, w.variant);
    }
    es_image *img = es_xcalloc(1, sizeof *img);
    int rc = es_ref_parse(ref, &img->ref, err);
    if (rc == 0) rc = open_source(img, lim, err);
    if (rc == 0)
        rc = img->ref.kind == ES_TR_DOCKER_ARCHIVE ? open_docker_archive(img, err) : open_oci_layout(img, &w, err);
    if (rc == 0) rc = check_requested_platform(img, &w, err);
    if (rc < 0) {
        es_image_close(img);
        return -1;
    }
    *out = img;
    return 0;
}

void es_image_close(es_image *img)
{
    if (!img) return;
    if (img->src && img->src->layer_paths)
        for (size_t i = 0; i < img->n_layers; i++) free(img->src->layer_paths[i]);
    source_free(img->src);
    es_ref_free(&img->ref);
    json_decref(img->config);
    free(img->config_raw);
    free(img->layers);
    es_history_free(img->history, img->n_history);
    for (char **t = img->repo_tags; t && *t; t++) free(*t);
    free(img->repo_tags);
    free(img);
}

int es_image_open_layer_blob(es_image *img, size_t i, es_reader **out, es_error *err)
{
    *out = NULL;
    if (i >= img->n_layers) return es_err(err, ES_EFAIL, "layer %zu out of range (%zu layers)", i, img->n_layers);
    es_source *s = img->src;
    const es_layer_info *l = &img->layers[i];
    char *name = es_xasprintf("%s: layer %zu (%s)", s->display, i, s->layer_paths[i]);
    int64_t size;
    int f = source_stat(s, s->layer_paths[i], &size, err);
    if (f == 0)
        es_err(err, ES_EDIGEST, "%s: missing%s", name,
               s->layer_foreign[i] ? " (a foreign/non-distributable layer whose blob is not in the image)" : "");
    es_reader *r = f > 0 ? source_open(s, s->layer_paths[i], err) : NULL;
    if (r) *out = es_reader_verify(r, l->digest.s, l->size, name, NULL);
    free(name);
    return r ? 0 : -1;
}

/* ------------------------------------------------------------------ config accessors */

static json_t *config_section(const es_image *img)
{
    json_t *c = img && img->config ? json_object_get(img->config, "config") : NULL;
    return json_is_object(c) ? c : NULL;
}

static const char *config_string(const es_image *img, const char *key)
{
    json_t *v = json_object_get(config_section(img), key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *config_typed(const es_image *img, const char *key, int want_array)
{
    json_t *v = json_object_get(config_section(img), key);
    if (want_array ? json_is_array(v) : json_is_object(v)) return v;
    return NULL;
}

const char *es_config_user(const es_image *img) { return config_string(img, "User"); }
const char *es_config_workdir(const es_image *img) { return config_string(img, "WorkingDir"); }
json_t *es_config_env(const es_image *img) { return config_typed(img, "Env", 1); }
json_t *es_config_entrypoint(const es_image *img) { return config_typed(img, "Entrypoint", 1); }
json_t *es_config_cmd(const es_image *img) { return config_typed(img, "Cmd", 1); }
json_t *es_config_exposed_ports(const es_image *img) { return config_typed(img, "ExposedPorts", 0); }
json_t *es_config_labels(const es_image *img) { return config_typed(img, "Labels", 0); }
