/*
 * Layer reader against real tar archives written by libarchive and compressed by zlib/libzstd:
 * the three encodings, concatenated gzip members, truncation, digest/size/diff_id mismatches,
 * hostile paths, long names (PAX and GNU), limits and decompression bombs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "test_layer_helpers.h"
#include "util/limits.h"

static tarbuf sample_tar(void)
{
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_dir(&t, "./");
    tar_dir(&t, "./etc/");
    tar_file(&t, "./etc/hostname", "edge\n");
    tar_symlink(&t, "etc/link", "/etc/hostname");
    tar_hardlink(&t, "etc/hard", "./etc/hostname");
    tar_end(&t);
    return t;
}

static void check_sample(const read_result *r)
{
    assert_int_equal(r->n, 4); /* "./" (the root itself) is not an entry */
    assert_string_equal(r->paths[0], "etc");
    assert_string_equal(r->paths[1], "etc/hostname");
    assert_string_equal(r->data[1], "edge\n");
    assert_string_equal(r->paths[2], "etc/link");
    assert_string_equal(r->paths[3], "etc/hard");
}

static void read_encoded(es_compression want, int threads)
{
    setenv("ES_LAYER_THREADS", threads ? "2" : "1", 1);
    tarbuf t = sample_tar();
    size_t blen = t.len;
    unsigned char *blob = t.data;
    if (want == ES_COMP_GZIP) blob = gzip_buf(t.data, t.len, &blen);
    if (want == ES_COMP_ZSTD) blob = zstd_buf(t.data, t.len, &blen);
    es_digest tar_digest, blob_digest;
    es_digest_buf(t.data, t.len, &tar_digest);
    es_digest_buf(blob, blen, &blob_digest);
    es_layer_expect exp = {"test layer", blob_digest.s, (int64_t)blen, tar_digest.s};
    read_result r;
    es_layer_stats st;
    es_error err = {0};
    assert_int_equal(read_blob(blob, blen, &exp, NULL, &r, &st, &err), 0);
    check_sample(&r);
    assert_int_equal(st.compression, want);
    assert_string_equal(st.diff_id.s, tar_digest.s);
    assert_string_equal(st.digest.s, blob_digest.s);
    assert_int_equal(st.size, (int64_t)blen);
    assert_int_equal(st.uncompressed_size, (int64_t)t.len);
    read_result_free(&r);
    if (blob != t.data) free(blob);
    free(t.data);
    unsetenv("ES_LAYER_THREADS");
}

static void test_plain(void **state) { (void)state; read_encoded(ES_COMP_NONE, 1); }
static void test_gzip(void **state) { (void)state; read_encoded(ES_COMP_GZIP, 1); }
static void test_zstd(void **state) { (void)state; read_encoded(ES_COMP_ZSTD, 1); }
static void test_gzip_unthreaded(void **state) { (void)state; read_encoded(ES_COMP_GZIP, 0); }

static void test_concatenated_gzip(void **state)
{
    (void)state;
    tarbuf t = sample_tar();
    size_t half = t.len / 2, l1, l2;
    unsigned char *a = gzip_buf(t.data, half, &l1);
    unsigned char *b = gzip_buf(t.data + half, t.len - half, &l2);
    unsigned char *blob = malloc(l1 + l2);
    memcpy(blob, a, l1);
    memcpy(blob + l1, b, l2);
    es_digest d;
    es_digest_buf(t.data, t.len, &d);
    es_layer_expect exp = {"concat", NULL, -1, d.s};
    read_result r;
    es_layer_stats st;
    es_error err = {0};
    assert_int_equal(read_blob(blob, l1 + l2, &exp, NULL, &r, &st, &err), 0);
    check_sample(&r);
    read_result_free(&r);
    free(a), free(b), free(blob), free(t.data);
}

static void expect_failure(const void *blob, size_t len, const es_layer_expect *exp,
                           const es_limits *lim, int code, const char *needle)
{
    read_result r;
    es_layer_stats st;
    es_error err = {0};
    assert_int_equal(read_blob(blob, len, exp, lim, &r, &st, &err), code);
    if (needle && !strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    read_result_free(&r);
}

static void test_truncated_gzip(void **state)
{
    (void)state;
    tarbuf t = sample_tar();
    size_t blen;
    unsigned char *blob = gzip_buf(t.data, t.len, &blen);
    es_layer_expect exp = {"trunc layer", NULL, -1, NULL};
    expect_failure(blob, blen - 6, &exp, NULL, ES_EFORMAT, "trunc layer");
    expect_failure(blob, blen / 2, &exp, NULL, ES_EFORMAT, "offset");
    free(blob), free(t.data);
}

static void test_truncated_zstd(void **state)
{
    (void)state;
    tarbuf t = sample_tar();
    size_t blen;
    unsigned char *blob = zstd_buf(t.data, t.len, &blen);
    es_layer_expect exp = {"zlayer", NULL, -1, NULL};
    expect_failure(blob, blen - 3, &exp, NULL, ES_EFORMAT, "zlayer");
    free(blob), free(t.data);
}

static void test_truncated_tar(void **state)
{
    (void)state;
    tarbuf t = sample_tar();
    es_layer_expect exp = {"plain", NULL, -1, NULL};
    /* Cut inside the data of etc/hostname: header ok, data missing. */
    expect_failure(t.data, 512 * 4 + 100, &exp, NULL, ES_EFORMAT, "plain");
    free(t.data);
}

static void test_damaged_header(void **state)
{
    (void)state;
    tarbuf t = sample_tar();
    /* Headers: ./ at 0, etc at 512, etc/hostname at 1024 (data 1536), etc/link at 2048. */
    t.data[2048 + 10] ^= 0x55; /* breaks the header checksum */
    es_layer_expect exp = {"damaged", NULL, -1, NULL};
    expect_failure(t.data, t.len, &exp, NULL, ES_EFORMAT, "after entry 'etc/hostname'");
    free(t.data);
}

static void test_digest_and_size_mismatch(void **state)
{
    (void)state;
    tarbuf t = sample_tar();
    size_t blen;
    unsigned char *blob = gzip_buf(t.data, t.len, &blen);
    es_digest wrong;
    es_digest_buf("x", 1, &wrong);
    es_layer_expect exp = {"dl", wrong.s, -1, NULL};
    expect_failure(blob, blen, &exp, NULL, ES_EDIGEST, "digest mismatch");
    es_layer_expect exp2 = {"dl", NULL, (int64_t)blen + 1, NULL};
    expect_failure(blob, blen, &exp2, NULL, ES_EDIGEST, "size mismatch");
    es_layer_expect exp3 = {"dl", NULL, -1, wrong.s};
    expect_failure(blob, blen, &exp3, NULL, ES_EDIGEST, "diff_id mismatch");
    free(blob), free(t.data);
}

static void test_dotdot_rejected(void **state)
{
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_file(&t, "ok", "1");
    tar_file(&t, "a/../../evil", "2");
    tar_end(&t);
    es_layer_expect exp = {"hostile", NULL, -1, NULL};
    expect_failure(t.data, t.len, &exp, NULL, ES_EUNSAFE, "a/../../evil");
    free(t.data);

    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_hardlink(&t, "h", "../../etc/passwd");
    tar_end(&t);
    expect_failure(t.data, t.len, &exp, NULL, ES_EUNSAFE, "hardlink target");
    free(t.data);
}

static void test_absolute_path_refused(void **state)
{
    /* Builders never write absolute entry names; one in a layer is hostile input (issue 2). */
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_file(&t, "ok/./y", "z");
    tar_file(&t, "/etc/passwd", "root");
    tar_end(&t);
    read_result r;
    es_error err = {0};
    int rc = read_blob(t.data, t.len, NULL, NULL, &r, NULL, &err);
    assert_int_equal(rc, ES_EUNSAFE);
    assert_non_null(strstr(err.msg, "'/etc/passwd': absolute path"));
    read_result_free(&r);
    free(t.data);
}

static void long_names(int format)
{
    char name[400];
    memset(name, 'n', sizeof name);
    for (int i = 50; i < 390; i += 60) name[i] = '/';
    name[399] = 0;
    char target[300];
    memset(target, 't', sizeof target);
    target[299] = 0;
    tarbuf t;
    tar_begin(&t, format);
    tar_file(&t, name, "long");
    tar_symlink(&t, "s", target);
    tar_end(&t);
    read_result r;
    es_error err = {0};
    assert_int_equal(read_blob(t.data, t.len, NULL, NULL, &r, NULL, &err), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.paths[0], name);
    assert_string_equal(r.data[0], "long");
    read_result_free(&r);
    free(t.data);
}

static void test_pax_long_names(void **state) { (void)state; long_names(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED); }
static void test_gnu_long_names(void **state) { (void)state; long_names(ARCHIVE_FORMAT_TAR_GNUTAR); }

static void test_bomb(void **state)
{
    (void)state;
    size_t n = 8 << 20;
    char *zeros = calloc(1, n + 1);
    memset(zeros, 'a', n);
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_file(&t, "big", zeros);
    tar_end(&t);
    size_t blen;
    unsigned char *blob = gzip_buf(t.data, t.len, &blen);
    es_limits lim = *es_limits_default();
    lim.max_ratio = 50;
    lim.ratio_floor = 1 << 20;
    es_layer_expect exp = {"bomb layer", NULL, -1, NULL};
    expect_failure(blob, blen, &exp, &lim, ES_EUNSAFE, "bomb");
    /* The same layer passes with the default limits (ratio only checked past 64 MiB). */
    read_result r;
    es_error err = {0};
    assert_int_equal(read_blob(blob, blen, &exp, NULL, &r, NULL, &err), 0);
    read_result_free(&r);
    lim = *es_limits_default();
    lim.max_layer_bytes = 1 << 20;
    expect_failure(blob, blen, &exp, &lim, ES_EUNSAFE, "limit");
    free(blob), free(t.data), free(zeros);
}

static void test_limits(void **state)
{
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    for (int i = 0; i < 10; i++) {
        char p[16];
        snprintf(p, sizeof p, "f%d", i);
        tar_file(&t, p, "x");
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "withxattr");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    char big[2000];
    memset(big, 'v', sizeof big);
    archive_entry_xattr_add_entry(e, "user.big", big, sizeof big);
    tar_entry(&t, e, NULL, 0);
    archive_entry_free(e);
    tar_end(&t);
    es_layer_expect exp = {"limits", NULL, -1, NULL};
    es_limits lim = *es_limits_default();
    lim.max_entries = 5;
    expect_failure(t.data, t.len, &exp, &lim, ES_EUNSAFE, "entries");
    lim = *es_limits_default();
    lim.max_xattr_bytes = 1000;
    expect_failure(t.data, t.len, &exp, &lim, ES_EUNSAFE, "withxattr");
    lim = *es_limits_default();
    lim.max_path = 1;
    expect_failure(t.data, t.len, &exp, &lim, ES_EUNSAFE, "path longer");
    free(t.data);
}

static void test_empty_and_garbage(void **state)
{
    (void)state;
    read_result r;
    es_layer_stats st;
    es_error err = {0};
    assert_int_equal(read_blob("", 0, NULL, NULL, &r, &st, &err), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(st.uncompressed_size, 0);
    char zeros[1024] = {0};
    assert_int_equal(read_blob(zeros, sizeof zeros, NULL, NULL, &r, &st, &err), 0);
    assert_int_equal(r.n, 0);
    es_layer_expect exp = {"garbage", NULL, -1, NULL};
    char junk[2048];
    memset(junk, 'j', sizeof junk);
    expect_failure(junk, sizeof junk, &exp, NULL, ES_EFORMAT, "garbage");
}

static void test_path_normalize_and_whiteouts(void **state)
{
    (void)state;
    char *p = es_path_normalize("./a//b/./c/");
    assert_string_equal(p, "a/b/c");
    free(p);
    assert_null(es_path_normalize("a/../b"));
    assert_null(es_path_normalize("./"));
    assert_null(es_path_normalize(".."));
    char *t;
    assert_int_equal(es_whiteout_kind("a/b/.wh.c", &t), ES_WH_FILE);
    assert_string_equal(t, "a/b/c");
    free(t);
    assert_int_equal(es_whiteout_kind(".wh.top", &t), ES_WH_FILE);
    assert_string_equal(t, "top");
    free(t);
    assert_int_equal(es_whiteout_kind("a/.wh..wh..opq", &t), ES_WH_OPAQUE);
    assert_string_equal(t, "a");
    free(t);
    assert_int_equal(es_whiteout_kind(".wh..wh..plnk", &t), ES_WH_FILE);
    assert_null(t);
    assert_int_equal(es_whiteout_kind("a/.whx", &t), ES_WH_NONE);
    assert_null(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_zstd),
        cmocka_unit_test(test_gzip_unthreaded),
        cmocka_unit_test(test_concatenated_gzip),
        cmocka_unit_test(test_truncated_gzip),
        cmocka_unit_test(test_truncated_zstd),
        cmocka_unit_test(test_truncated_tar),
        cmocka_unit_test(test_damaged_header),
        cmocka_unit_test(test_digest_and_size_mismatch),
        cmocka_unit_test(test_dotdot_rejected),
        cmocka_unit_test(test_absolute_path_refused),
        cmocka_unit_test(test_pax_long_names),
        cmocka_unit_test(test_gnu_long_names),
        cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_empty_and_garbage),
        cmocka_unit_test(test_path_normalize_and_whiteouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
