/*
 * Safe apply of real tar layers into a temporary root: whiteouts and opaque whiteouts (in any
 * position), file<->directory replacement, hardlinks, symlink and hardlink escapes, device
 * nodes, setuid bits, security.capability, missing parents, deferred directory mtimes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/apply.h"
#include "test_layer_helpers.h"

static char root[64];
static int rootfd = -1;

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/es-apply-XXXXXX");
    assert_non_null(mkdtemp(root));
    rootfd = open(root, O_RDONLY | O_DIRECTORY);
    return rootfd < 0;
}

static int teardown(void **state)
{
    (void)state;
    close(rootfd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd);
}

static int apply_tar(tarbuf *t, const es_apply_opts *o, es_apply_stats *st, es_error *err)
{
    es_apply_stats local = {0};
    es_layer_stream *s;
    es_layer_expect exp = {"test layer", NULL, -1, NULL};
    if (es_layer_stream_open(es_reader_mem(t->data, t->len), &exp, NULL, &s, err) < 0) return -1;
    int r = es_apply_layer(rootfd, s, o, st ? st : &local, err);
    if (r == 0) r = es_layer_stream_finish(s, NULL, err);
    es_layer_stream_free(s);
    free(t->data);
    return r;
}

static void apply_ok(tarbuf *t)
{
    es_error err = {0};
    if (apply_tar(t, NULL, NULL, &err) != 0) fail_msg("%s", err.msg);
}

static int exists(const char *rel)
{
    struct stat st;
    return fstatat(rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static mode_t type_of(const char *rel)
{
    struct stat st;
    if (fstatat(rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
    return st.st_mode & S_IFMT;
}

static void test_whiteouts(void **state)
{
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_dir(&t, "w");
    tar_file(&t, "w/keep", "k");
    tar_file(&t, "w/gone", "g");
    tar_dir(&t, "w/subdir");
    tar_file(&t, "w/subdir/deep", "d");
    tar_end(&t);
    apply_ok(&t);
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_file(&t, "w/.wh.gone", "");
    tar_file(&t, "w/.wh.subdir", "");
    tar_file(&t, "w/.wh.never-existed", "");
    tar_file(&t, ".wh..wh..plnk", "");
    tar_end(&t);
    es_apply_stats st = {0};
    es_error err = {0};
    assert_int_equal(apply_tar(&t, NULL, &st, &err), 0);
    assert_true(exists("w/keep"));
    assert_false(exists("w/gone"));
    assert_false(exists("w/subdir"));
    assert_false(exists("w/.wh.gone"));
    assert_false(exists(".wh..wh..plnk"));
    assert_int_equal(st.whiteouts, 4);
}

static void opaque_case(const char *dir, int marker_last)
{
    char p[128];
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_dir(&t, dir);
    snprintf(p, sizeof p, "%s/old", dir), tar_file(&t, p, "old");
    snprintf(p, sizeof p, "%s/sub", dir), tar_dir(&t, p);
    snprintf(p, sizeof p, "%s/sub/old2", dir), tar_file(&t, p, "old2");
    snprintf(p, sizeof p, "%s/sub/kept-by-upper", dir), tar_file(&t, p, "lower");
    tar_end(&t);
    apply_ok(&t);
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_dir(&t, dir);
    if (!marker_last) snprintf(p, sizeof p, "%s/.wh..wh..opq", dir), tar_file(&t, p, "");
    snprintf(p, sizeof p, "%s/new", dir), tar_file(&t, p, "new");
    snprintf(p, sizeof p, "%s/sub/kept-by-upper", dir), tar_file(&t, p, "upper");
    if (marker_last) snprintf(p, sizeof p, "%s/.wh..wh..opq", dir), tar_file(&t, p, "");
    tar_end(&t);
    apply_ok(&t);
    snprintf(p, sizeof p, "%s/new", dir), assert_true(exists(p));
    snprintf(p, sizeof p, "%s/old", dir), assert_false(exists(p));
    snprintf(p, sizeof p, "%s/sub/old2", dir), assert_false(exists(p));
    snprintf(p, sizeof p, "%s/.wh..wh..opq", dir), assert_false(exists(p));
    snprintf(p, sizeof p, "%s/sub/kept-by-upper", dir);
    char buf[16] = {0};
    int fd = openat(rootfd, p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf), 5);
    close(fd);
    assert_string_equal(buf, "upper");
}

static void test_opaque_first(void **state) { (void)state; opaque_case("opq1", 0); }
static void test_opaque_after_own_entries(void **state) { (void)state; opaque_case("opq2", 1); }

static void test_file_dir_replacement(void **state)
{
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_file(&t, "r/x", "file");
    tar_dir(&t, "r/y");
    tar_file(&t, "r/y/z", "z");
    tar_symlink(&t, "r/l", "x");
    tar_end(&t);
    apply_ok(&t);
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_dir(&t, "r/x");
    tar_file(&t, "r/x/inner", "i");
    tar_file(&t, "r/y", "now a file");
    tar_dir(&t, "r/l");
    tar_end(&t);
    apply_ok(&t);
    assert_int_equal(type_of("r/x"), S_IFDIR);
    assert_true(exists("r/x/inner"));
    assert_int_equal(type_of("r/y"), S_IFREG);
    assert_int_equal(type_of("r/l"), S_IFDIR);
}

static void test_hardlinks(void **state)
{
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_file(&t, "h/a", "data");
    tar_hardlink(&t, "h/b", "h/a");
    tar_end(&t);
    es_apply_stats st = {0};
    es_error err = {0};
    assert_int_equal(apply_tar(&t, NULL, &st, &err), 0);
    struct stat sa, sb;
    assert_int_equal(fstatat(rootfd, "h/a", &sa, 0), 0);
    assert_int_equal(fstatat(rootfd, "h/b", &sb, 0), 0);
    assert_int_equal(sa.st_ino, sb.st_ino);
    assert_int_equal(st.hardlinks, 1);
    /* A later layer rewriting h/a must not change h/b (no write through the old inode). */
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_file(&t, "h/a", "new!");
    tar_end(&t);
    apply_ok(&t);
    char buf[8] = {0};
    int fd = openat(rootfd, "h/b", O_RDONLY);
    assert_int_equal(read(fd, buf, sizeof buf), 4);
    close(fd);
    assert_string_equal(buf, "data");
}

static void test_symlink_escape(void **state)
{
    (void)state;
    struct stat before, after;
    assert_int_equal(stat("/etc/passwd", &before), 0);
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_dir(&t, "etc");
    tar_symlink(&t, "link", "/etc");
    tar_file(&t, "link/passwd", "owned\n");
    tar_symlink(&t, "up", "../../../../..");
    tar_file(&t, "up/escaped", "x");
    tar_end(&t);
    apply_ok(&t);
    assert_int_equal(stat("/etc/passwd", &after), 0);
    assert_int_equal(before.st_mtime, after.st_mtime);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(access("/escaped", F_OK), -1);
    /* Written inside the root, where the link points when the root is "/". */
    assert_int_equal(type_of("etc/passwd"), S_IFREG);
    assert_int_equal(type_of("escaped"), S_IFREG);
    assert_int_equal(type_of("link"), S_IFLNK);

    /* A dangling absolute symlink as a parent: refused, nothing created outside. */
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_symlink(&t, "dangling", "/nonexistent-es-dir");
    tar_file(&t, "dangling/file", "x");
    tar_end(&t);
    es_error err = {0};
    assert_int_equal(apply_tar(&t, NULL, NULL, &err), -1);
    assert_int_equal(access("/nonexistent-es-dir", F_OK), -1);
    assert_true(err.code == ES_EUNSAFE || err.code == ES_EFORMAT);
}

static void test_hardlink_escape(void **state)
{
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_hardlink(&t, "hl", "../../etc/passwd");
    tar_end(&t);
    es_error err = {0};
    assert_int_equal(apply_tar(&t, NULL, NULL, &err), -1);
    assert_int_equal(err.code, ES_EUNSAFE);
    assert_false(exists("hl"));

    /* Through a symlink that points out: the target is a symlink, not a regular file. */
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_symlink(&t, "pw", "/etc/passwd");
    tar_hardlink(&t, "hl2", "pw");
    tar_end(&t);
    es_err_clear(&err);
    assert_int_equal(apply_tar(&t, NULL, NULL, &err), -1);
    assert_int_equal(err.code, ES_EUNSAFE);
    struct stat st;
    assert_int_equal(stat("/etc/passwd", &st), 0);
    assert_int_equal(st.st_nlink, 1);
}

static void add_device(tarbuf *t, const char *path)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, AE_IFCHR);
    archive_entry_set_perm(e, 0666);
    archive_entry_set_rdev(e, makedev(1, 3));
    tar_entry(t, e, NULL, 0);
    archive_entry_free(e);
}

static void test_devices(void **state)
{
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    add_device(&t, "dev/null");
    tar_end(&t);
    es_error err = {0};
    assert_int_equal(apply_tar(&t, NULL, NULL, &err), -1);
    assert_int_equal(err.code, ES_EUNSAFE);
    assert_false(exists("dev/null"));

    es_apply_opts o;
    es_apply_opts_default(&o);
    o.skip_devices = 1;
    es_apply_stats st = {0};
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    add_device(&t, "dev/null");
    tar_end(&t);
    assert_int_equal(apply_tar(&t, &o, &st, &err), 0);
    assert_int_equal(st.skipped_devices, 1);
    assert_false(exists("dev/null"));

    if (geteuid() != 0) return;
    o.skip_devices = 0;
    o.allow_devices = 1;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    add_device(&t, "dev/null");
    tar_end(&t);
    assert_int_equal(apply_tar(&t, &o, NULL, &err), 0);
    assert_int_equal(type_of("dev/null"), S_IFCHR);
}

static void test_setuid_caps_owner(void **state)
{
    (void)state;
    unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "bin/ping");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 04755);
    archive_entry_set_uid(e, 0);
    archive_entry_set_size(e, 4);
    archive_entry_xattr_add_entry(e, "security.capability", cap, sizeof cap);
    tar_entry(&t, e, "ELF!", 4);
    archive_entry_clear(e);
    archive_entry_set_pathname(e, "bin/owned");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 02750);
    archive_entry_set_uid(e, 1234);
    archive_entry_set_gid(e, 4321);
    archive_entry_set_size(e, 0);
    tar_entry(&t, e, NULL, 0);
    archive_entry_free(e);
    tar_end(&t);
    apply_ok(&t);
    struct stat st;
    assert_int_equal(fstatat(rootfd, "bin/ping", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 04755);
    assert_int_equal(fstatat(rootfd, "bin/owned", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 02750);
    /* Missing parent "bin" was created 0755. */
    assert_int_equal(fstatat(rootfd, "bin", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    if (geteuid() != 0) return;
    assert_int_equal(fstatat(rootfd, "bin/owned", &st, 0), 0);
    assert_int_equal(st.st_uid, 1234);
    assert_int_equal(st.st_gid, 4321);
    char p[256];
    snprintf(p, sizeof p, "%s/bin/ping", root);
    unsigned char got[64];
    ssize_t n = getxattr(p, "security.capability", got, sizeof got);
    if (n < 0 && errno == ENOTSUP) skip();
    assert_int_equal(n, (ssize_t)sizeof cap);
    assert_memory_equal(got, cap, sizeof cap);
}

static void test_missing_parents_and_dir_mtime(void **state)
{
    (void)state;
    tarbuf t;
    tar_begin(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
    tar_file(&t, "deep/a/b/c/file", "x");
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "timed");
    archive_entry_set_filetype(e, AE_IFDIR);
    archive_entry_set_perm(e, 0555);
    archive_entry_set_mtime(e, 1234, 0);
    tar_entry(&t, e, NULL, 0);
    archive_entry_free(e);
    tar_file(&t, "timed/child", "c");
    tar_end(&t);
    apply_ok(&t);
    assert_int_equal(type_of("deep/a/b/c/file"), S_IFREG);
    struct stat st;
    assert_int_equal(fstatat(rootfd, "timed", &st, 0), 0);
    assert_int_equal(st.st_mtime, 1234);
    assert_int_equal(st.st_mode & 07777, 0555);
    fchmodat(rootfd, "timed", 0755, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whiteouts),
        cmocka_unit_test(test_opaque_first),
        cmocka_unit_test(test_opaque_after_own_entries),
        cmocka_unit_test(test_file_dir_replacement),
        cmocka_unit_test(test_hardlinks),
        cmocka_unit_test(test_symlink_escape),
        cmocka_unit_test(test_hardlink_escape),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_setuid_caps_owner),
        cmocka_unit_test(test_missing_parents_and_dir_mtime),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
