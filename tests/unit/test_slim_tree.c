/* Building the slim tree: kept paths copied with metadata, setuid/setgid stripped and counted,
 * hardlinks kept as hardlinks, symlinks copied as symlinks, unkept files absent, nothing written
 * through a symlink out of the tree; nonroot entries; measuring shells/setuid. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "slim/keepset.h"
#include "slim/tree.h"
#include "test_slim_util.h"

static char *src, *dst;

static int setup(void **state)
{
    (void)state;
    src = t_mkdtemp();
    dst = t_mkdtemp();
    t_mkdirs(src, "usr/bin");
    t_mkdirs(src, "etc");
    t_mkdirs(src, "data");
    t_write(src, "usr/bin/su", "su", 04755);
    t_write(src, "usr/bin/wall", "wall", 02755);
    t_write(src, "usr/bin/bash", "bash", 0755);
    t_write(src, "usr/bin/apt", "apt", 0755);
    t_write(src, "data/a", "same inode", 0640);
    char cmd[8500];
    snprintf(cmd, sizeof cmd, "ln '%s/data/a' '%s/data/b' && chown 12:34 '%s/data/a'", src, src, src);
    t_sh(cmd);
    t_symlink(src, "usr/bin/sh", "bash");
    t_write(src, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0644);
    t_write(src, "etc/unkept", "x", 0644);
    t_symlink(src, "out", "/tmp");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    t_rm_rf(src);
    t_rm_rf(dst);
    free(src);
    free(dst);
    return 0;
}

static void test_copy(void **state)
{
    (void)state;
    es_keepset *ks = es_keepset_new();
    const char *keep[] = {"/usr/bin/su", "/usr/bin/wall", "/usr/bin/sh", "/data/a", "/data/b", "/etc/passwd", "/out",
                          "/out/es-slim-escape-test"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) es_keepset_add(ks, keep[i], ES_KEEP_TRACED);
    int64_t stripped = -1;
    es_error err = {0};
    assert_int_equal(es_tree_copy(src, dst, ks, &stripped, &err), 0);
    assert_int_equal(stripped, 2);
    char p[4200], q[4200];
    struct stat st, st2;
    snprintf(p, sizeof p, "%s/usr/bin/su", dst);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(p, sizeof p, "%s/usr/bin/wall", dst);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(p, sizeof p, "%s/data/a", dst);
    snprintf(q, sizeof q, "%s/data/b", dst);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(stat(q, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(st.st_uid, 12);
    assert_int_equal(st.st_gid, 34);
    assert_int_equal(st.st_mode & 07777, 0640);
    snprintf(p, sizeof p, "%s/usr/bin/sh", dst);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    snprintf(p, sizeof p, "%s/usr/bin/bash", dst);
    assert_int_equal(lstat(p, &st), -1); /* the link's target was not kept */
    snprintf(p, sizeof p, "%s/etc/unkept", dst);
    assert_int_equal(lstat(p, &st), -1);
    assert_int_equal(lstat("/tmp/es-slim-escape-test", &st), -1); /* never through /out -> /tmp */
    es_keepset_free(ks);
}

static void test_nonroot_and_measure(void **state)
{
    (void)state;
    es_error err = {0};
    assert_int_equal(es_tree_add_nonroot(dst, &err), 0);
    assert_int_equal(es_tree_add_nonroot(dst, &err), 0); /* idempotent */
    char p[4200];
    snprintf(p, sizeof p, "%s/etc/passwd", dst);
    FILE *f = fopen(p, "r");
    char buf[1024] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_string_equal(buf, "root:x:0:0:root:/root:/bin/bash\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n");
    snprintf(p, sizeof p, "%s/etc/group", dst);
    f = fopen(p, "r");
    memset(buf, 0, sizeof buf);
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_string_equal(buf, "root:x:0:\nnonroot:x:65532:\n");
    struct stat st;
    snprintf(p, sizeof p, "%s/home/nonroot", dst);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, 65532);

    es_tree_stats before, after;
    es_tree_measure(src, &before);
    es_tree_measure(dst, &after);
    assert_int_equal(before.shells, 2); /* bash and sh -> bash */
    assert_int_equal(before.pkg_managers, 1);
    assert_int_equal(before.setuid, 2);
    assert_int_equal(after.shells, 0);  /* sh dangles: no shell left */
    assert_int_equal(after.setuid, 0);
    assert_int_equal(after.pkg_managers, 0);
    assert_true(after.files < before.files);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_nonroot_and_measure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
