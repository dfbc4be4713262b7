/*
 * es_image_open on hand-built images: OCI layout directories, oci-archives, the three
 * docker-archive layouts, multi-platform indexes and named refs; and every hostile case the
 * reader must refuse with the right exit code and a message naming the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "oci/image.h"
#include "test_oci_helpers.h"

static char *read_all_blob(es_image *img, size_t i, es_error *err, int *rc)
{
    es_reader *r;
    *rc = es_image_open_layer_blob(img, i, &r, err);
    if (*rc < 0) return NULL;
    char *buf = NULL;
    size_t len;
    *rc = es_reader_slurp(r, 1 << 20, "blob", &buf, &len, err);
    es_reader_free(r);
    return buf;
}

static void check_one_layer_image(es_image *img, const t_image *t)
{
    assert_int_equal(img->n_layers, 1);
    assert_string_equal(img->layers[0].digest.s, t->layer.s);
    assert_int_equal(img->layers[0].size, (int64_t)t->layer_len);
    assert_string_equal(img->layers[0].diff_id.s, t->diff_id.s);
    assert_int_equal(img->layers[0].compression, ES_COMP_GZIP);
    assert_string_equal(img->config_digest.s, t->config.s);
    assert_string_equal(es_config_user(img), "1000");
    assert_string_equal(json_string_value(json_array_get(es_config_env(img), 0)), "PATH=/bin");
    assert_string_equal(img->arch, "amd64");
    assert_int_equal(img->n_history, 1);
    assert_string_equal(img->history[0].created_by, "test");
    es_error err = {0};
    int rc;
    char *b = read_all_blob(img, 0, &err, &rc);
    assert_int_equal(rc, 0);
    free(b);
}

static void test_oci_dir(void **state)
{
    (void)state;
    char *d = tmpdir_new();
    t_files f = {0};
    t_image t;
    make_oci(&f, &t);
    char *lay = path_join(d, "img");
    tf_to_dir(&f, lay);
    char *ref = NULL;
    assert_true(asprintf(&ref, "oci:%s", lay) > 0);
    es_image *img = NULL;
    es_error err = {0};
    assert_int_equal(es_image_open(ref, NULL, &img, &err), 0);
    check_one_layer_image(img, &t);
    assert_string_equal(img->manifest_digest.s, t.manifest.s);
    assert_int_equal(img->ref.kind, ES_TR_OCI);
    es_image_close(img);
    /* bare path: auto-detected */
    assert_int_equal(es_image_open(lay, NULL, &img, &err), 0);
    assert_int_equal(img->ref.kind, ES_TR_OCI);
    es_image_close(img);
    free(ref);
    free(lay);
    tf_free(&f);
    rm_rf(d);
    free(d);
}

static void test_oci_archive(void **state)
{
    (void)state;
    char *d = tmpdir_new();
    t_files f = {0};
    t_image t;
    /* a PAX long name and a GNU-style long symlink first, so blob offsets come after
     * extension headers */
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    memcpy(longname, "extra/", 6);
    tf_put_str(&f, longname, "padding entry with a long name\n");
    tf_symlink(&f, "extra/link", longname);
    make_oci(&f, &t);
    char *tar = path_join(d, "img.tar");
    tf_to_tar(&f, tar);
    char *ref = NULL;
    assert_true(asprintf(&ref, "oci-archive:%s", tar) > 0);
    es_image *img = NULL;
    es_error err = {0};
    assert_int_equal(es_image_open(ref, NULL, &img, &err), 0);
    check_one_layer_image(img, &t);
    es_image_close(img);
    assert_int_equal(es_image_open(tar, NULL, &img, &err), 0);
    assert_int_equal(img->ref.kind, ES_TR_OCI_ARCHIVE);
    es_image_close(img);
    free(ref);
    free(tar);
    tf_free(&f);
    rm_rf(d);
    free(d);
}

/* Docker-archive in the layout `kind`: 0 podman (<diffid>.tar + legacy symlink), 1 pre-25
 * (<id>/layer.tar), 2 Docker 25+ (blobs/sha256 + index.json + manifest.json), 3 podman with a
 * gzip layer file. */
static void build_docker_archive(t_files *f, int kind, es_digest *diff_id, es_digest *cfg_d)
{
    size_t tl, gl;
    char *tar = make_layer("docker layer\n", 0, &tl);
    char *gz = make_layer("docker layer\n", 1, &gl);
    es_digest_buf(tar, tl, diff_id);
    char *cfg = config_json(diff_id, 1, "amd64", NULL);
    es_digest_buf(cfg, strlen(cfg), cfg_d);
    char cfg_name[128], layer_name[160];
    if (kind == 2) {
        *cfg_d = tf_blob_str(f, cfg);
        es_digest ld = tf_blob(f, gz, gl);
        snprintf(cfg_name, sizeof cfg_name, "blobs/sha256/%s", cfg_d->s + 7);
        snprintf(layer_name, sizeof layer_name, "blobs/sha256/%s", ld.s + 7);
        tf_put_str(f, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
        tf_put_str(f, "index.json", "{\"schemaVersion\":2,\"manifests\":[]}");
    } else {
        snprintf(cfg_name, sizeof cfg_name, "%s.json", cfg_d->s + 7);
        tf_put_str(f, cfg_name, cfg);
        if (kind == 1) {
            snprintf(layer_name, sizeof layer_name, "0123abcd/layer.tar");
            tf_put(f, layer_name, tar, tl);
            tf_put_str(f, "0123abcd/json", "{}");
            tf_put_str(f, "0123abcd/VERSION", "1.0");
            tf_put_str(f, "repositories", "{\"test\":{\"latest\":\"0123abcd\"}}");
        } else {
            snprintf(layer_name, sizeof layer_name, "%s.tar", diff_id->s + 7);
            if (kind == 3) tf_put(f, layer_name, gz, gl);
            else tf_put(f, layer_name, tar, tl);
            tf_symlink(f, "eb54/layer.tar", layer_name[0] ? "../x" : "");
            free(f->e[f->n - 1].link);
            char *target = NULL;
            assert_true(asprintf(&target, "../%s", layer_name) > 0);
            f->e[f->n - 1].link = target;
        }
    }
    char *man = NULL;
    /* kind 0 names the layer through the legacy symlink, to exercise link resolution */
    assert_true(asprintf(&man, "[{\"Config\":\"%s\",\"RepoTags\":[\"localhost/test:1\"],\"Layers\":[\"%s\"]}]", cfg_name,
                         kind == 0 ? "eb54/layer.tar" : layer_name) > 0);
    tf_put_str(f, "manifest.json", man);
    free(man);
    free(cfg);
    free(tar);
    free(gz);
}

static void test_docker_archive_layouts(void **state)
{
    (void)state;
    for (int kind = 0; kind < 4; kind++) {
        char *d = tmpdir_new();
        t_files f = {0};
        es_digest diff_id, cfg_d;
        build_docker_archive(&f, kind, &diff_id, &cfg_d);
        char *tar = path_join(d, "da.tar");
        tf_to_tar(&f, tar);
        es_image *img = NULL;
        es_error err = {0};
        int rc = es_image_open(tar, NULL, &img, &err);
        if (rc) fprintf(stderr, "kind %d: %s\n", kind, err.msg);
        assert_int_equal(rc, 0);
        assert_int_equal(img->ref.kind, ES_TR_DOCKER_ARCHIVE);
        assert_int_equal(img->n_layers, 1);
        assert_string_equal(img->layers[0].diff_id.s, diff_id.s);
        assert_string_equal(img->config_digest.s, cfg_d.s);
        assert_string_equal(img->repo_tags[0], "localhost/test:1");
        if (kind == 0 || kind == 1) {
            assert_int_equal(img->layers[0].compression, ES_COMP_NONE);
            assert_string_equal(img->layers[0].digest.s, diff_id.s);
        } else {
            assert_int_equal(img->layers[0].compression, ES_COMP_GZIP);
        }
        char *b = read_all_blob(img, 0, &err, &rc);
        if (rc) fprintf(stderr, "kind %d: %s\n", kind, err.msg);
        assert_int_equal(rc, 0);
        es_digest got;
        es_digest_buf(b, (size_t)img->layers[0].size, &got);
        assert_string_equal(got.s, img->layers[0].digest.s);
        free(b);
        es_image_close(img);
        /* a tag selects the image; an unknown tag is refused */
        char *ref = NULL;
        assert_true(asprintf(&ref, "docker-archive:%s:test:1", tar) > 0);
        assert_int_equal(es_image_open(ref, NULL, &img, &err), 0);
        es_image_close(img);
        free(ref);
        assert_true(asprintf(&ref, "docker-archive:%s:nope:2", tar) > 0);
        assert_int_equal(es_image_open(ref, NULL, &img, &err), -1);
        assert_int_equal(err.code, ES_EUSAGE);
        assert_non_null(strstr(err.msg, "localhost/test:1"));
        free(ref);
        free(tar);
        tf_free(&f);
        rm_rf(d);
        free(d);
    }
}

static void build_multi_platform(t_files *f)
{
    json_t *inner = json_array();
    json_array_append_new(inner, add_image(f, "amd64\n", "amd64", NULL, NULL));
    json_array_append_new(inner, add_image(f, "arm64\n", "arm64", NULL, NULL));
    json_array_append_new(inner, add_image(f, "armv7\n", "arm", "v7", NULL));
    /* an attestation-like entry of an unknown platform and an unknown media type: skipped */
    es_digest junk = tf_blob_str(f, "{}");
    json_t *att = desc_json("application/vnd.example.unknown+json", &junk, 2);
    json_object_set_new(att, "platform", json_pack("{s:s,s:s}", "os", "unknown", "architecture", "unknown"));
    json_array_append_new(inner, att);
    char *nested = index_json_of(inner);
    es_digest nd = tf_blob_str(f, nested);
    json_t *top = json_array();
    json_t *d = desc_json(ES_MT_OCI_INDEX, &nd, strlen(nested));
    json_object_set_new(d, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", "multi"));
    json_array_append_new(top, d);
    char *idx = index_json_of(top);
    tf_put_str(f, "index.json", idx);
    tf_put_str(f, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    free(idx);
    free(nested);
}

static void test_platform_selection(void **state)
{
    (void)state;
    char *d = tmpdir_new();
    t_files f = {0};
    build_multi_platform(&f);
    tf_to_dir(&f, d);
    char *ref = NULL;
    assert_true(asprintf(&ref, "oci:%s", d) > 0);
    const char *plats[] = {"linux/arm64", "linux/arm64/v8", "linux/arm/v7", "linux/amd64"};
    const char *archs[] = {"arm64", "arm64", "arm", "amd64"};
    for (size_t i = 0; i < 4; i++) {
        es_open_opts o = {.platform = plats[i]};
        es_image *img = NULL;
        es_error err = {0};
        int rc = es_image_open(ref, &o, &img, &err);
        if (rc) fprintf(stderr, "%s: %s\n", plats[i], err.msg);
        assert_int_equal(rc, 0);
        assert_string_equal(img->arch, archs[i]);
        assert_string_equal(img->repo_tags[0], "multi");
        es_image_close(img);
    }
    es_open_opts o = {.platform = "linux/s390x"};
    es_image *img = NULL;
    es_error err = {0};
    assert_int_equal(es_image_open(ref, &o, &img, &err), -1);
    assert_int_equal(err.code, ES_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "linux/arm64"));
    assert_non_null(strstr(err.msg, "linux/arm/v7"));
    es_err_clear(&err);
    o.platform = "bogus";
    assert_int_equal(es_image_open(ref, &o, &img, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    /* default: the host platform (amd64 or arm64 on the machines we run on) */
    es_err_clear(&err);
    assert_int_equal(es_image_open(ref, NULL, &img, &err), 0);
    char os[32], arch[32], var[32];
    es_host_platform(os, arch, var);
    assert_string_equal(img->arch, arch);
    es_image_close(img);
    free(ref);
    tf_free(&f);
    rm_rf(d);
    free(d);
}

static void test_named_refs(void **state)
{
    (void)state;
    char *d = tmpdir_new();
    t_files f = {0};
    json_t *ms = json_array();
    json_t *a = add_image(&f, "a\n", "amd64", NULL, NULL);
    json_t *b = add_image(&f, "b\n", "amd64", NULL, NULL);
    json_object_set_new(a, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", "a"));
    json_object_set_new(b, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", "b"));
    es_digest bd;
    es_digest_buf("", 0, &bd);
    memcpy(bd.s, json_string_value(json_object_get(b, "digest")), ES_DIGEST_LEN + 1);
    json_array_append_new(ms, a);
    json_array_append_new(ms, b);
    json_t *l = add_image(&f, "l\n", "amd64", NULL, NULL);
    json_object_set_new(l, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", "latest"));
    json_array_append_new(ms, l);
    char *idx = index_json_of(json_incref(ms));
    tf_put_str(&f, "index.json", idx);
    tf_put_str(&f, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    tf_to_dir(&f, d);
    char *ref = NULL;
    es_image *img = NULL;
    es_error err = {0};
    assert_true(asprintf(&ref, "oci:%s", d) > 0);
    /* several names: "latest" is the default */
    assert_int_equal(es_image_open(ref, NULL, &img, &err), 0);
    assert_string_equal(img->repo_tags[0], "latest");
    es_image_close(img);
    free(ref);
    /* without a "latest", naming one is required */
    json_array_remove(ms, 2);
    free(idx);
    idx = index_json_of(json_incref(ms));
    tf_put_str(&f, "index.json", idx);
    tf_to_dir(&f, d);
    assert_true(asprintf(&ref, "oci:%s", d) > 0);
    assert_int_equal(es_image_open(ref, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    assert_non_null(strstr(err.msg, "a, b"));
    free(ref);
    assert_true(asprintf(&ref, "oci:%s:b", d) > 0);
    es_err_clear(&err);
    assert_int_equal(es_image_open(ref, NULL, &img, &err), 0);
    assert_string_equal(img->manifest_digest.s, bd.s);
    es_image_close(img);
    free(ref);
    assert_true(asprintf(&ref, "oci:%s:c", d) > 0);
    assert_int_equal(es_image_open(ref, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    free(ref);
    free(idx);
    json_decref(ms);
    tf_free(&f);
    rm_rf(d);
    free(d);
}

/* ------------------------------------------------------------------ hostile input */

typedef void (*mutator)(t_files *f, const t_image *t);

/* Builds a good layout, applies m, opens it (as a dir and as an oci-archive), expects code and
 * a message containing `needle`. */
static void expect_open_failure(mutator m, const es_limits *lim, int code, const char *needle)
{
    for (int as_tar = 0; as_tar < 2; as_tar++) {
        char *d = tmpdir_new();
        t_files f = {0};
        t_image t;
        make_oci(&f, &t);
        m(&f, &t);
        char *p = path_join(d, as_tar ? "img.tar" : "img");
        if (as_tar) tf_to_tar(&f, p);
        else tf_to_dir(&f, p);
        es_open_opts o = {.limits = lim};
        es_image *img = NULL;
        es_error err = {0};
        int rc = es_image_open(p, &o, &img, &err);
        if (rc == 0) {
            /* some corruption is only visible while streaming the layer */
            int r2;
            free(read_all_blob(img, 0, &err, &r2));
            rc = r2;
            es_image_close(img);
        }
        if (rc != -1 || err.code != code || !strstr(err.msg, needle))
            fprintf(stderr, "as_tar=%d rc=%d code=%d msg=%s (want %d, '%s')\n", as_tar, rc, err.code, err.msg, code,
                    needle);
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, code);
        assert_non_null(strstr(err.msg, needle));
        assert_null(strchr(err.msg, '\n'));
        free(p);
        tf_free(&f);
        rm_rf(d);
        free(d);
    }
}

static char *blob_path(const es_digest *d)
{
    char *s = NULL;
    if (asprintf(&s, "blobs/sha256/%s", d->s + 7) < 0) abort();
    return s;
}

static void m_invalid_json(t_files *f, const t_image *t)
{
    (void)t;
    tf_put_str(f, "index.json", "{\"schemaVersion\": 2,\n \"manifests\": [,]}");
}
static void m_digest_mismatch(t_files *f, const t_image *t)
{
    char *p = blob_path(&t->manifest);
    t_entry *e = tf_find(f, p);
    e->data[e->len - 2] = e->data[e->len - 2] == 'a' ? 'b' : 'a'; /* same size, other bytes */
    free(p);
}
static void m_size_mismatch(t_files *f, const t_image *t)
{
    char *p = blob_path(&t->config);
    t_entry *e = tf_find(f, p);
    tf_put(f, p, e->data, e->len - 1);
    free(p);
}
static void m_truncated_layer(t_files *f, const t_image *t)
{
    char *p = blob_path(&t->layer);
    t_entry *e = tf_find(f, p);
    tf_put(f, p, e->data, e->len / 2);
    free(p);
}
static void m_corrupt_layer(t_files *f, const t_image *t)
{
    char *p = blob_path(&t->layer);
    t_entry *e = tf_find(f, p);
    e->data[e->len / 2] ^= 0x55;
    free(p);
}
static void m_missing_blob(t_files *f, const t_image *t)
{
    char *p = blob_path(&t->config);
    t_entry *e = tf_find(f, p);
    free(e->name);
    e->name = strdup("blobs/sha256/elsewhere");
    free(p);
}
static void m_bad_digest(t_files *f, const t_image *t)
{
    (void)t;
    char *idx = index_json_of(json_pack("[{s:s, s:s, s:i}]", "mediaType", ES_MT_OCI_MANIFEST, "digest",
                                        "sha256:ABCDEF", "size", 10));
    tf_put_str(f, "index.json", idx);
    free(idx);
}
static void m_sha512_digest(t_files *f, const t_image *t)
{
    (void)t;
    char *idx = index_json_of(json_pack("[{s:s, s:s, s:i}]", "mediaType", ES_MT_OCI_MANIFEST, "digest",
                                        "sha512:abcdef", "size", 10));
    tf_put_str(f, "index.json", idx);
    free(idx);
}
static void m_unknown_manifest_type(t_files *f, const t_image *t)
{
    char *idx = index_json_of(json_pack("[o]", desc_json("application/vnd.example.thing+json", &t->manifest,
                                                         t->manifest_len)));
    tf_put_str(f, "index.json", idx);
    free(idx);
}
static void m_negative_size(t_files *f, const t_image *t)
{
    char *idx = index_json_of(json_pack("[{s:s, s:s, s:i}]", "mediaType", ES_MT_OCI_MANIFEST, "digest", t->manifest.s,
                                        "size", -5));
    tf_put_str(f, "index.json", idx);
    free(idx);
}

/* A manifest with `n` copies of the layer and a config with `ids` diff_ids, indexed. */
static void replace_manifest(t_files *f, const t_image *t, size_t n, size_t ids, const char *rootfs_type)
{
    es_digest layers[4], diffs[4];
    size_t sizes[4];
    const char *mts[4];
    for (size_t i = 0; i < 4; i++) {
        layers[i] = t->layer;
        diffs[i] = t->diff_id;
        sizes[i] = t->layer_len;
        mts[i] = ES_MT_OCI_LAYER_GZIP;
    }
    char *cfg = config_json(diffs, ids, "amd64", NULL);
    if (rootfs_type) {
        char *p = strstr(cfg, "\"type\":\"layers\"");
        memcpy(p, "\"type\":\"LAYERS\"", 15);
    }
    es_digest cd = tf_blob_str(f, cfg);
    char *man = manifest_json(&cd, strlen(cfg), layers, sizes, mts, n);
    es_digest md = tf_blob_str(f, man);
    char *idx = index_json_of(json_pack("[o]", desc_json(ES_MT_OCI_MANIFEST, &md, strlen(man))));
    tf_put_str(f, "index.json", idx);
    free(idx);
    free(man);
    free(cfg);
}
static void m_too_many_layers(t_files *f, const t_image *t) { replace_manifest(f, t, 3, 3, NULL); }
static void m_diff_ids_mismatch(t_files *f, const t_image *t) { replace_manifest(f, t, 2, 1, NULL); }
static void m_rootfs_type(t_files *f, const t_image *t) { replace_manifest(f, t, 1, 1, "bad"); }
static void m_layout_version(t_files *f, const t_image *t)
{
    (void)t;
    tf_put_str(f, "oci-layout", "{\"imageLayoutVersion\":\"2.0.0\"}");
}

static void test_hostile_oci(void **state)
{
    (void)state;
    es_limits lim = *es_limits_default();
    lim.max_layers = 2;
    expect_open_failure(m_invalid_json, NULL, ES_EFORMAT, "index.json: invalid JSON at line 2");
    expect_open_failure(m_digest_mismatch, NULL, ES_EDIGEST, "digest mismatch");
    expect_open_failure(m_size_mismatch, NULL, ES_EDIGEST, "size mismatch");
    expect_open_failure(m_truncated_layer, NULL, ES_EDIGEST, "size mismatch");
    expect_open_failure(m_corrupt_layer, NULL, ES_EDIGEST, "digest mismatch");
    expect_open_failure(m_missing_blob, NULL, ES_EDIGEST, "missing");
    expect_open_failure(m_bad_digest, NULL, ES_EFORMAT, "invalid digest \"sha256:ABCDEF\"");
    expect_open_failure(m_sha512_digest, NULL, ES_EUNSUPPORTED, "sha512");
    expect_open_failure(m_unknown_manifest_type, NULL, ES_EFORMAT, "unknown manifest media type");
    expect_open_failure(m_negative_size, NULL, ES_EFORMAT, "negative size");
    expect_open_failure(m_too_many_layers, &lim, ES_EUNSAFE, "3 layers exceed the limit of 2");
    expect_open_failure(m_diff_ids_mismatch, NULL, ES_EFORMAT, "1 rootfs.diff_ids but the manifest has 2 layers");
    expect_open_failure(m_rootfs_type, NULL, ES_EFORMAT, "rootfs.type");
    expect_open_failure(m_layout_version, NULL, ES_EUNSUPPORTED, "oci-layout");
}

/* Unknown layer media types are accepted (the spec forbids failing while copying); the
 * compression is reported as unknown. */
static void test_unknown_layer_media_type(void **state)
{
    (void)state;
    char *d = tmpdir_new();
    t_files f = {0};
    size_t gl;
    char *gz = make_layer("x\n", 1, &gl);
    size_t tl;
    char *tar = make_layer("x\n", 0, &tl);
    es_digest diff, ld = tf_blob(&f, gz, gl);
    es_digest_buf(tar, tl, &diff);
    char *cfg = config_json(&diff, 1, "amd64", NULL);
    es_digest cd = tf_blob_str(&f, cfg);
    const char *mt = "application/vnd.example.layer.v1+squashfs";
    char *man = manifest_json(&cd, strlen(cfg), &ld, &gl, &mt, 1);
    es_digest md = tf_blob_str(&f, man);
    char *idx = index_json_of(json_pack("[o]", desc_json(ES_MT_OCI_MANIFEST, &md, strlen(man))));
    tf_put_str(&f, "index.json", idx);
    tf_put_str(&f, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    tf_to_dir(&f, d);
    es_image *img = NULL;
    es_error err = {0};
    assert_int_equal(es_image_open(d, NULL, &img, &err), 0);
    assert_int_equal(img->layers[0].compression, ES_COMP_UNKNOWN);
    assert_string_equal(img->layers[0].media_type, mt);
    es_image_close(img);
    free(gz);
    free(tar);
    free(cfg);
    free(man);
    free(idx);
    tf_free(&f);
    rm_rf(d);
    free(d);
}

/* A tar whose first header claims an absurd size: the index refuses it, naming the entry. */
static void test_tar_absurd_size(void **state)
{
    (void)state;
    char *d = tmpdir_new();
    t_files f = {0};
    make_oci(&f, NULL);
    char *tar = path_join(d, "img.tar");
    tf_to_tar(&f, tar);
    FILE *fp = fopen(tar, "r+b");
    unsigned char h[512];
    assert_int_equal(fread(h, 1, 512, fp), 512);
    memcpy(h + 124, "77777777777", 11); /* size field: 8 GiB - 1 */
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fwrite(h, 1, 512, fp), 512);
    fclose(fp);
    es_image *img = NULL;
    es_error err = {0};
    assert_int_equal(es_image_open(tar, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    assert_non_null(strstr(err.msg, "claims 8589934591 bytes"));
    assert_non_null(strstr(err.msg, f.e[0].name));
    /* and a truncated tar */
    struct stat st;
    stat(tar, &st);
    tf_to_tar(&f, tar);
    assert_int_equal(truncate(tar, 1536), 0);
    es_err_clear(&err);
    assert_int_equal(es_image_open(tar, NULL, &img, &err), -1);
    assert_true(err.code == ES_EFORMAT);
    assert_non_null(strstr(err.msg, tar));
    free(tar);
    tf_free(&f);
    rm_rf(d);
    free(d);
}

static void test_docker_archive_hostile(void **state)
{
    (void)state;
    char *d = tmpdir_new();
    char *tar = path_join(d, "da.tar");
    es_image *img = NULL;
    es_error err = {0};
    es_digest diff, cfg;
    /* config content not matching the digest its name promises */
    t_files f = {0};
    build_docker_archive(&f, 0, &diff, &cfg);
    char name[128];
    snprintf(name, sizeof name, "%s.json", cfg.s + 7);
    t_entry *e = tf_find(&f, name);
    e->data[1] = ' ';
    tf_to_tar(&f, tar);
    assert_int_equal(es_image_open(tar, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EDIGEST);
    assert_non_null(strstr(err.msg, name));
    tf_free(&f);
    /* uncompressed layer whose bytes do not match the config's diff_id: found while streaming */
    build_docker_archive(&f, 0, &diff, &cfg);
    snprintf(name, sizeof name, "%s.tar", diff.s + 7);
    tf_find(&f, name)->data[0] ^= 1;
    tf_to_tar(&f, tar);
    es_err_clear(&err);
    assert_int_equal(es_image_open(tar, NULL, &img, &err), 0);
    int rc;
    free(read_all_blob(img, 0, &err, &rc));
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, ES_EDIGEST);
    assert_non_null(strstr(err.msg, "layer 0"));
    es_image_close(img);
    tf_free(&f);
    /* manifest.json naming a missing layer */
    build_docker_archive(&f, 1, &diff, &cfg);
    tf_find(&f, "0123abcd/layer.tar")->name[0] = 'X';
    tf_to_tar(&f, tar);
    es_err_clear(&err);
    assert_int_equal(es_image_open(tar, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EDIGEST);
    assert_non_null(strstr(err.msg, "0123abcd/layer.tar"));
    tf_free(&f);
    /* invalid manifest.json */
    build_docker_archive(&f, 1, &diff, &cfg);
    tf_put_str(&f, "manifest.json", "[{\"Config\": 5}]");
    tf_to_tar(&f, tar);
    es_err_clear(&err);
    assert_int_equal(es_image_open(tar, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    assert_non_null(strstr(err.msg, "manifest.json"));
    tf_free(&f);
    /* a symlink escaping the archive */
    build_docker_archive(&f, 0, &diff, &cfg);
    free(tf_find(&f, "eb54/layer.tar")->link);
    tf_find(&f, "eb54/layer.tar")->link = strdup("../../etc/passwd");
    tf_to_tar(&f, tar);
    es_err_clear(&err);
    assert_int_equal(es_image_open(tar, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EDIGEST);
    tf_free(&f);
    /* a gzip-compressed docker save */
    build_docker_archive(&f, 1, &diff, &cfg);
    tf_to_tar(&f, tar);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "gzip -n -f '%s' && mv '%s.gz' '%s'", tar, tar, tar);
    assert_int_equal(system(cmd), 0);
    es_err_clear(&err);
    assert_int_equal(es_image_open(tar, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "gzip"));
    tf_free(&f);
    /* not an image at all */
    es_err_clear(&err);
    assert_int_equal(es_image_open(d, NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    es_err_clear(&err);
    assert_int_equal(es_image_open("/nonexistent/x.tar", NULL, &img, &err), -1);
    assert_int_equal(err.code, ES_EIO);
    free(tar);
    rm_rf(d);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oci_dir),
        cmocka_unit_test(test_oci_archive),
        cmocka_unit_test(test_docker_archive_layouts),
        cmocka_unit_test(test_platform_selection),
        cmocka_unit_test(test_named_refs),
        cmocka_unit_test(test_hostile_oci),
        cmocka_unit_test(test_unknown_layer_media_type),
        cmocka_unit_test(test_tar_absurd_size),
        cmocka_unit_test(test_docker_archive_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
