/*
 * es_image_write / es_index_write: round trips through every transport (write -> open -> same
 * config and layers), byte-identical output for the same input, atomic refusal of unsafe
 * targets, updating an existing layout under another ref, and multi-platform indexes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/image_writer.h"
#include "test_oci_helpers.h"

typedef struct fixture {
    char *dir;
    es_image *img;
    es_layer_blob blobs[4];
    char *paths[4];
} fixture;

/* An image opened from a hand-built layout, with its layer blobs copied into files. */
static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = tmpdir_new();
    t_files f = {0};
    make_oci(&f, NULL);
    char *lay = path_join(fx->dir, "src");
    tf_to_dir(&f, lay);
    tf_free(&f);
    es_error err = {0};
    if (es_image_open(lay, NULL, &fx->img, &err) < 0) return -1;
    free(lay);
    for (size_t i = 0; i < fx->img->n_layers; i++) {
        es_reader *r;
        if (es_image_open_layer_blob(fx->img, i, &r, &err) < 0) return -1;
        char *buf;
        size_t len;
        if (es_reader_slurp(r, 1 << 20, "blob", &buf, &len, &err) < 0) return -1;
        es_reader_free(r);
        fx->paths[i] = path_join(fx->dir, "layer");
        FILE *fp = fopen(fx->paths[i], "wb");
        fwrite(buf, 1, len, fp);
        fclose(fp);
        free(buf);
        const es_layer_info *l = &fx->img->layers[i];
        fx->blobs[i] = (es_layer_blob){.path = fx->paths[i], .digest = l->digest, .size = l->size,
                                       .diff_id = l->diff_id, .compression = l->compression};
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    es_image_close(fx->img);
    for (size_t i = 0; i < 4; i++) free(fx->paths[i]);
    rm_rf(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static es_image_out out_of(fixture *fx)
{
    return (es_image_out){.config = fx->img->config, .n_layers = fx->img->n_layers, .layers = fx->blobs};
}

static void assert_same_image(fixture *fx, const char *ref)
{
    es_image *img = NULL;
    es_error err = {0};
    int rc = es_image_open(ref, NULL, &img, &err);
    if (rc) fprintf(stderr, "%s: %s\n", ref, err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(img->n_layers, fx->img->n_layers);
    for (size_t i = 0; i < img->n_layers; i++) {
        assert_string_equal(img->layers[i].diff_id.s, fx->img->layers[i].diff_id.s);
        assert_string_equal(img->layers[i].digest.s, fx->img->layers[i].digest.s);
        es_reader *r;
        assert_int_equal(es_image_open_layer_blob(img, i, &r, &err), 0);
        char *buf;
        assert_int_equal(es_reader_slurp(r, 1 << 20, "blob", &buf, NULL, &err), 0);
        es_reader_free(r);
        free(buf);
    }
    assert_string_equal(es_config_user(img), "1000");
    es_image_close(img);
}

static char *slurp_file(const char *p, size_t *len)
{
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc(*len + 1);
    assert_int_equal(fread(b, 1, *len, fp), *len);
    fclose(fp);
    return b;
}

static void test_round_trip(void **state)
{
    fixture *fx = *state;
    es_image_out o = out_of(fx);
    const char *kinds[] = {"oci", "oci-archive", "docker-archive"};
    for (size_t k = 0; k < 3; k++) {
        char *ref = NULL;
        assert_true(asprintf(&ref, "%s:%s/out-%zu:v1", kinds[k], fx->dir, k) > 0);
        es_write_result res;
        es_error err = {0};
        int rc = es_image_write(&o, ref, &res, &err);
        if (rc) fprintf(stderr, "%s: %s\n", ref, err.msg);
        assert_int_equal(rc, 0);
        assert_true(es_digest_valid(res.config_digest.s));
        assert_same_image(fx, ref);
        /* written config is stable JSON: writer-produced diff_ids equal the source's */
        es_image *img;
        assert_int_equal(es_image_open(ref, NULL, &img, &err), 0);
        assert_string_equal(img->config_digest.s, res.config_digest.s);
        if (k < 2) assert_string_equal(img->manifest_digest.s, res.manifest_digest.s);
        es_image_close(img);
        free(ref);
    }
}

/* A layer file on the output's file system is hard-linked into an OCI layout (no copy); one on
 * another file system (/dev/shm, when that is one) is copied and still reads back the same. */
static void test_layout_links_layer_files(void **state)
{
    fixture *fx = *state;
    es_image_out o = out_of(fx);
    char *ref = NULL;
    assert_true(asprintf(&ref, "oci:%s/linked:v1", fx->dir) > 0);
    es_error err = {0};
    assert_int_equal(es_image_write(&o, ref, NULL, &err), 0);
    char *blob = NULL;
    assert_true(asprintf(&blob, "%s/linked/blobs/sha256/%s", fx->dir, es_digest_hex(fx->blobs[0].digest.s)) > 0);
    struct stat a, b;
    assert_int_equal(stat(fx->paths[0], &a), 0);
    assert_int_equal(stat(blob, &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    assert_int_equal(b.st_mode & 07777, 0644);
    assert_same_image(fx, ref);
    free(blob);
    free(ref);

    struct stat shm;
    if (stat("/dev/shm", &shm) < 0 || shm.st_dev == a.st_dev) return; /* no second file system */
    char shm_path[] = "/dev/shm/es-test-layer-XXXXXX";
    int fd = mkstemp(shm_path);
    assert_true(fd >= 0);
    char *buf;
    size_t len;
    es_reader *r = es_reader_file(fx->paths[0], &err);
    assert_non_null(r);
    assert_int_equal(es_reader_slurp(r, 1 << 20, "layer", &buf, &len, &err), 0);
    es_reader_free(r);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
    free(buf);
    es_layer_blob moved[4];
    memcpy(moved, fx->blobs, sizeof moved);
    moved[0].path = shm_path;
    o.layers = moved;
    assert_true(asprintf(&ref, "oci:%s/copied:v1", fx->dir) > 0);
    assert_int_equal(es_image_write(&o, ref, NULL, &err), 0);
    assert_same_image(fx, ref);
    unlink(shm_path);
    free(ref);
}

static void test_raw_config_kept(void **state)
{
    fixture *fx = *state;
    es_image_out o = out_of(fx);
    o.config_raw = fx->img->config_raw;
    o.config_raw_len = fx->img->config_raw_len;
    char *ref = NULL;
    assert_true(asprintf(&ref, "oci:%s/raw", fx->dir) > 0);
    es_write_result res;
    es_error err = {0};
    assert_int_equal(es_image_write(&o, ref, &res, &err), 0);
    assert_string_equal(res.config_digest.s, fx->img->config_digest.s);
    free(ref);
}

static void test_deterministic(void **state)
{
    fixture *fx = *state;
    es_image_out o = out_of(fx);
    const char *kinds[] = {"oci-archive", "docker-archive"};
    for (size_t k = 0; k < 2; k++) {
        char *a = NULL, *b = NULL;
        assert_true(asprintf(&a, "%s/det-a-%zu.tar", fx->dir, k) > 0);
        assert_true(asprintf(&b, "%s/det-b-%zu.tar", fx->dir, k) > 0);
        char *ra = NULL, *rb = NULL;
        assert_true(asprintf(&ra, "%s:%s:x", kinds[k], a) > 0);
        assert_true(asprintf(&rb, "%s:%s:x", kinds[k], b) > 0);
        es_error err = {0};
        assert_int_equal(es_image_write(&o, ra, NULL, &err), 0);
        assert_int_equal(es_image_write(&o, rb, NULL, &err), 0);
        size_t la, lb;
        char *da = slurp_file(a, &la), *db = slurp_file(b, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(da, db, la);
        /* overwriting an existing archive replaces it atomically with the same bytes */
        assert_int_equal(es_image_write(&o, ra, NULL, &err), 0);
        free(da);
        da = slurp_file(a, &la);
        assert_memory_equal(da, db, lb);
        free(da);
        free(db);
        free(a);
        free(b);
        free(ra);
        free(rb);
    }
}

static void test_refuses_foreign_dir(void **state)
{
    fixture *fx = *state;
    es_image_out o = out_of(fx);
    char *d = path_join(fx->dir, "precious");
    mkdir(d, 0755);
    char *keep = path_join(d, "keep.txt");
    FILE *fp = fopen(keep, "w");
    fputs("mine\n", fp);
    fclose(fp);
    char *ref = NULL;
    assert_true(asprintf(&ref, "oci:%s", d) > 0);
    es_error err = {0};
    assert_int_equal(es_image_write(&o, ref, NULL, &err), -1);
    assert_int_equal(err.code, ES_EIO);
    assert_non_null(strstr(err.msg, "precious"));
    assert_int_equal(access(keep, F_OK), 0);
    /* no temporary left beside it */
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q tmp-", fx->dir);
    assert_int_not_equal(system(cmd), 0);
    /* a bare path that is not a layout: the transport must be named */
    es_err_clear(&err);
    assert_int_equal(es_image_write(&o, keep, NULL, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    free(ref);
    free(keep);
    free(d);
}

static void test_update_layout_keeps_other_refs(void **state)
{
    fixture *fx = *state;
    es_image_out o = out_of(fx);
    char *a = NULL, *b = NULL;
    assert_true(asprintf(&a, "oci:%s/multi:one", fx->dir) > 0);
    assert_true(asprintf(&b, "oci:%s/multi:two", fx->dir) > 0);
    es_error err = {0};
    assert_int_equal(es_image_write(&o, a, NULL, &err), 0);
    json_t *labels = json_pack("{s:s}", "x", "y");
    json_t *cfg2 = json_deep_copy(fx->img->config);
    json_object_set_new(json_object_get(cfg2, "config"), "Labels", labels);
    o.config = cfg2;
    assert_int_equal(es_image_write(&o, b, NULL, &err), 0);
    es_image *i1, *i2;
    assert_int_equal(es_image_open(a, NULL, &i1, &err), 0);
    assert_int_equal(es_image_open(b, NULL, &i2, &err), 0);
    assert_null(es_config_labels(i1));
    assert_non_null(es_config_labels(i2));
    assert_string_not_equal(i1->config_digest.s, i2->config_digest.s);
    es_image_close(i1);
    es_image_close(i2);
    json_decref(cfg2);
    free(a);
    free(b);
}

static void test_index_write(void **state)
{
    fixture *fx = *state;
    es_image_out imgs[2] = {out_of(fx), out_of(fx)};
    json_t *arm = json_deep_copy(fx->img->config);
    json_object_set_new(arm, "architecture", json_string("arm64"));
    imgs[1].config = arm;
    char *ref = NULL;
    assert_true(asprintf(&ref, "oci-archive:%s/idx.tar:multi", fx->dir) > 0);
    es_write_result res;
    es_error err = {0};
    assert_int_equal(es_index_write(imgs, 2, ref, &res, &err), 0);
    const char *plats[] = {"linux/amd64", "linux/arm64"};
    for (size_t i = 0; i < 2; i++) {
        es_open_opts o = {.platform = plats[i]};
        es_image *img;
        assert_int_equal(es_image_open(ref, &o, &img, &err), 0);
        assert_string_equal(img->arch, i ? "arm64" : "amd64");
        es_image_close(img);
    }
    char *dref = NULL;
    assert_true(asprintf(&dref, "docker-archive:%s/idx-d.tar", fx->dir) > 0);
    assert_int_equal(es_index_write(imgs, 2, dref, &res, &err), -1);
    assert_int_equal(err.code, ES_EUNSUPPORTED);
    json_decref(arm);
    free(ref);
    free(dref);
}

static void test_stable_json(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:i, s:[i,i], s:{s:s, s:s}}", "z", 1, "a", 1, 2, "m", "y", "1", "b", "2");
    char *s = es_json_dump_stable(j);
    assert_string_equal(s, "{\"a\":[1,2],\"m\":{\"b\":\"2\",\"y\":\"1\"},\"z\":1}");
    free(s);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_raw_config_kept),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_layout_links_layer_files),
        cmocka_unit_test(test_refuses_foreign_dir),
        cmocka_unit_test(test_update_layout_keeps_other_refs),
        cmocka_unit_test(test_index_write),
        cmocka_unit_test(test_stable_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
