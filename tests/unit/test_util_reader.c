/*
 * The stream utilities every blob read goes through: file-range readers (pread, truncation),
 * slurping with a cap, the verifying reader (size and sha256, early failure past the declared
 * size), digest strings, and the limits' environment overrides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/digest.h"
#include "util/limits.h"
#include "util/reader.h"

static const char ABC_SHA256[] = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

static int temp_file_with(const char *content)
{
    char path[] = "/tmp/es-util-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    return fd;
}

static void test_digest_strings(void **state)
{
    (void)state;
    es_digest d;
    es_digest_buf("abc", 3, &d);
    assert_string_equal(d.s, ABC_SHA256);
    assert_true(es_digest_valid(ABC_SHA256));
    assert_false(es_digest_valid("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    assert_false(es_digest_valid("sha256:ba78"));
    assert_false(es_digest_valid("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_false(es_digest_valid(NULL));
    assert_string_equal(es_digest_hex(ABC_SHA256), ABC_SHA256 + 7);
    es_sha256 *h = es_sha256_new();
    es_sha256_update(h, "a", 1);
    es_sha256_update(h, "bc", 2);
    es_sha256_final(h, &d);
    assert_string_equal(d.s, ABC_SHA256);
}

static void test_fd_range(void **state)
{
    (void)state;
    int fd = temp_file_with("0123456789");
    es_reader *r = es_reader_fd_range(fd, 3, 4, "f");
    char *buf;
    size_t len;
    es_error err = {0};
    assert_int_equal(es_reader_slurp(r, 100, "f", &buf, &len, &err), 0);
    assert_int_equal(len, 4);
    assert_string_equal(buf, "3456");
    free(buf);
    es_reader_free(r);
    /* a range past the end of the file is a truncated blob, named */
    r = es_reader_fd_range(fd, 8, 5, "file.tar: blob");
    assert_int_equal(es_reader_slurp(r, 100, "f", &buf, &len, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    assert_non_null(strstr(err.msg, "file.tar: blob: truncated"));
    es_reader_free(r);
    close(fd);
}

static void test_slurp_cap(void **state)
{
    (void)state;
    char big[10000];
    memset(big, 'x', sizeof big);
    es_reader *r = es_reader_mem(big, sizeof big);
    char *buf = NULL;
    es_error err = {0};
    assert_int_equal(es_reader_slurp(r, 9999, "big.json", &buf, NULL, &err), -1);
    assert_int_equal(err.code, ES_EUNSAFE);
    assert_non_null(strstr(err.msg, "big.json"));
    es_reader_free(r);
    r = es_reader_mem(big, sizeof big);
    es_err_clear(&err);
    size_t len;
    assert_int_equal(es_reader_slurp(r, 10000, "big.json", &buf, &len, &err), 0);
    assert_int_equal(len, 10000);
    assert_int_equal(buf[len], 0);
    free(buf);
    es_reader_free(r);
}

static int drain(es_reader *r, es_error *err)
{
    char buf[2];
    ssize_t k;
    while ((k = es_reader_read(r, buf, sizeof buf, err)) > 0) {
    }
    return (int)k;
}

static void test_verify(void **state)
{
    (void)state;
    es_error err = {0};
    es_digest_result got = {0};
    es_reader *r = es_reader_verify(es_reader_mem("abc", 3), ABC_SHA256, 3, "ok", &got);
    assert_int_equal(drain(r, &err), 0);
    assert_true(got.done);
    assert_int_equal(got.size, 3);
    assert_string_equal(got.digest.s, ABC_SHA256);
    es_reader_free(r);
    /* other bytes, same size */
    r = es_reader_verify(es_reader_mem("abd", 3), ABC_SHA256, 3, "layer 1", NULL);
    assert_int_equal(drain(r, &err), -1);
    assert_int_equal(err.code, ES_EDIGEST);
    assert_non_null(strstr(err.msg, "layer 1: digest mismatch"));
    es_reader_free(r);
    /* shorter than declared */
    es_err_clear(&err);
    r = es_reader_verify(es_reader_mem("ab", 2), ABC_SHA256, 3, "short", NULL);
    assert_int_equal(drain(r, &err), -1);
    assert_non_null(strstr(err.msg, "size mismatch: declared 3 bytes, found 2"));
    es_reader_free(r);
    /* longer than declared: fails as soon as it passes the size, before the end */
    es_err_clear(&err);
    r = es_reader_verify(es_reader_mem("abcdefgh", 8), NULL, 3, "long", NULL);
    char buf[2];
    assert_int_equal(es_reader_read(r, buf, 2, &err), 2);
    assert_int_equal(es_reader_read(r, buf, 2, &err), -1);
    assert_int_equal(err.code, ES_EDIGEST);
    es_reader_free(r);
}

/* A verify reader over an unread verify reader hashes once: the outer expectations are merged in
 * and still enforced, the outer `got` is filled; conflicting expectations keep two readers. */
static void test_verify_stacked(void **state)
{
    (void)state;
    es_error err = {0};
    es_digest_result got = {0};
    es_reader *inner = es_reader_verify(es_reader_mem("abc", 3), NULL, -1, "blob", NULL);
    es_reader *r = es_reader_verify(inner, ABC_SHA256, 3, "stream", &got);
    assert_ptr_equal(r, inner);
    assert_int_equal(drain(r, &err), 0);
    assert_true(got.done);
    assert_string_equal(got.digest.s, ABC_SHA256);
    es_reader_free(r);
    /* the outer digest is checked after the merge */
    inner = es_reader_verify(es_reader_mem("abd", 3), NULL, 3, "blob 2", NULL);
    r = es_reader_verify(inner, ABC_SHA256, -1, "stream", NULL);
    assert_int_equal(drain(r, &err), -1);
    assert_int_equal(err.code, ES_EDIGEST);
    assert_non_null(strstr(err.msg, "blob 2: digest mismatch"));
    es_reader_free(r);
    /* different declared sizes: not merged; the outer reader reports its own mismatch */
    es_err_clear(&err);
    inner = es_reader_verify(es_reader_mem("abc", 3), NULL, 3, "blob 3", NULL);
    r = es_reader_verify(inner, NULL, 4, "stream 3", &got);
    assert_ptr_not_equal(r, inner);
    assert_int_equal(drain(r, &err), -1);
    assert_non_null(strstr(err.msg, "stream 3: size mismatch: declared 4 bytes, found 3"));
    es_reader_free(r);
}

static void test_limits_env(void **state)
{
    (void)state;
    /* es_limits_default caches on first use, so this test only checks defaults are sane and that
     * garbage in the environment is ignored (read at first call in this process). */
    setenv("ES_MAX_LAYERS", "-5", 1);
    setenv("ES_MAX_INDEX_ENTRIES", "12", 1);
    const es_limits *l = es_limits_default();
    assert_int_equal(l->max_layers, 1000);
    assert_int_equal(l->max_index_entries, 12);
    assert_int_equal(l->max_json_bytes, 16LL << 20);
    assert_ptr_equal(es_limits_default(), l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_strings), cmocka_unit_test(test_fd_range),
        cmocka_unit_test(test_slurp_cap),      cmocka_unit_test(test_verify),
        cmocka_unit_test(test_verify_stacked),
        cmocka_unit_test(test_limits_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
