/*
 * Image reference parsing, transport/compression names, platform strings and matching, and the
 * small JSON parsers on their own (shape errors that the open tests do not reach).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "oci/image.h"
#include "oci/parse.h"

static void check_ref(const char *s, es_transport_kind kind, const char *path, const char *ref)
{
    es_image_ref r;
    es_error err = {0};
    assert_int_equal(es_ref_parse(s, &r, &err), 0);
    assert_int_equal(r.kind, kind);
    assert_string_equal(r.path, path);
    if (ref) assert_string_equal(r.ref, ref);
    else assert_null(r.ref);
    es_ref_free(&r);
}

static void test_ref_parse(void **state)
{
    (void)state;
    check_ref("docker-archive:/tmp/a.tar", ES_TR_DOCKER_ARCHIVE, "/tmp/a.tar", NULL);
    check_ref("docker-archive:/tmp/a.tar:repo/x:tag", ES_TR_DOCKER_ARCHIVE, "/tmp/a.tar", "repo/x:tag");
    check_ref("oci:dir", ES_TR_OCI, "dir", NULL);
    check_ref("oci:dir:latest", ES_TR_OCI, "dir", "latest");
    check_ref("oci-archive:/x/y.tar:v1", ES_TR_OCI_ARCHIVE, "/x/y.tar", "v1");
    check_ref("./some/path", ES_TR_AUTO, "./some/path", NULL);
    es_image_ref r;
    es_error err = {0};
    assert_int_equal(es_ref_parse("oci:", &r, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    es_err_clear(&err);
    assert_int_equal(es_ref_parse("oci:dir:", &r, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    es_err_clear(&err);
    assert_int_equal(es_ref_parse("docker://alpine", &r, &err), -1);
    assert_int_equal(err.code, ES_EUNSUPPORTED);
    es_err_clear(&err);
    assert_int_equal(es_ref_parse("", &r, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
}

static void test_names(void **state)
{
    (void)state;
    es_compression c;
    assert_int_equal(es_compression_parse("zstd", &c), 0);
    assert_int_equal(c, ES_COMP_ZSTD);
    assert_int_equal(es_compression_parse("none", &c), 0);
    assert_int_equal(c, ES_COMP_NONE);
    assert_int_equal(es_compression_parse("xz", &c), -1);
    assert_string_equal(es_compression_name(ES_COMP_GZIP), "gzip");
    assert_string_equal(es_transport_name(ES_TR_OCI_ARCHIVE), "oci-archive");
    assert_int_equal(es_mt_layer_compression(ES_MT_DOCKER_LAYER_GZIP), ES_COMP_GZIP);
    assert_int_equal(es_mt_layer_compression(ES_MT_OCI_LAYER_ZSTD), ES_COMP_ZSTD);
    assert_int_equal(es_mt_layer_compression("application/vnd.oci.image.layer.nondistributable.v1.tar"), ES_COMP_NONE);
    assert_int_equal(es_mt_layer_compression("text/plain"), ES_COMP_UNKNOWN);
    assert_true(es_mt_is_index(ES_MT_DOCKER_LIST));
    assert_true(es_mt_is_manifest(ES_MT_DOCKER_MANIFEST));
    assert_false(es_mt_is_manifest(ES_MT_OCI_INDEX));
}

static void test_platform(void **state)
{
    (void)state;
    char os[32], arch[32], var[32];
    es_error err = {0};
    assert_int_equal(es_platform_parse("linux/arm64", os, arch, var, &err), 0);
    assert_string_equal(arch, "arm64");
    assert_string_equal(var, "v8");
    assert_int_equal(es_platform_parse("linux/arm/v6", os, arch, var, &err), 0);
    assert_string_equal(var, "v6");
    assert_int_equal(es_platform_parse("linux", os, arch, var, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    es_err_clear(&err);
    assert_int_equal(es_platform_parse("a/b/c/d", os, arch, var, &err), -1);
    /* arm64: no variant == v8 (as containerd normalises) */
    assert_true(es_platform_match("linux", "arm64", "", "linux", "arm64", "v8"));
    assert_true(es_platform_match("linux", "arm64", "v8", "linux", "arm64", ""));
    assert_false(es_platform_match("linux", "arm64", "", "linux", "amd64", ""));
    assert_false(es_platform_match("linux", "amd64", "", "windows", "amd64", ""));
    /* arm: a v7 host runs v6 images, not the reverse */
    assert_true(es_platform_match("linux", "arm", "v7", "linux", "arm", "v6"));
    assert_false(es_platform_match("linux", "arm", "v6", "linux", "arm", "v7"));
    es_host_platform(os, arch, var);
    assert_string_equal(os, "linux");
    assert_true(strcmp(arch, "amd64") == 0 || strcmp(arch, "arm64") == 0);
}

static void test_parsers_shape(void **state)
{
    (void)state;
    const es_limits *lim = es_limits_default();
    es_error err = {0};
    es_index_doc idx;
    const char *noarr = "{\"schemaVersion\":2,\"manifests\":{}}";
    assert_int_equal(es_parse_index(noarr, strlen(noarr), "i.json", lim, &idx, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    assert_non_null(strstr(err.msg, "i.json"));
    es_err_clear(&err);
    const char *v1 = "{\"schemaVersion\":1,\"manifests\":[]}";
    assert_int_equal(es_parse_index(v1, strlen(v1), "i.json", lim, &idx, &err), -1);
    assert_non_null(strstr(err.msg, "schemaVersion"));
    es_err_clear(&err);
    const char *dup = "{\"schemaVersion\":2,\"manifests\":[],\"manifests\":[]}";
    assert_int_equal(es_parse_index(dup, strlen(dup), "i.json", lim, &idx, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    es_err_clear(&err);
    es_config_doc cd;
    const char *cfg = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},\"config\":{\"Env\":\"notarray\"}}";
    assert_int_equal(es_parse_config(cfg, strlen(cfg), "c.json", lim, &cd, &err), -1);
    assert_non_null(strstr(err.msg, "config.Env"));
    es_err_clear(&err);
    const char *okcfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    assert_int_equal(es_parse_config(okcfg, strlen(okcfg), "c.json", lim, &cd, &err), 0);
    assert_string_equal(cd.arch, "amd64");
    es_config_doc_free(&cd);
    es_docker_manifest dm;
    const char *empty = "[]";
    assert_int_equal(es_parse_docker_manifest(empty, 2, "manifest.json", lim, &dm, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    es_err_clear(&err);
    const char *good = "[{\"Config\":\"c.json\",\"RepoTags\":null,\"Layers\":[\"a.tar\",\"b.tar\"]}]";
    assert_int_equal(es_parse_docker_manifest(good, strlen(good), "manifest.json", lim, &dm, &err), 0);
    assert_int_equal(dm.entries[0].n_layers, 2);
    assert_null(dm.entries[0].repo_tags[0]);
    es_docker_manifest_free(&dm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_parse),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_platform),
        cmocka_unit_test(test_parsers_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
