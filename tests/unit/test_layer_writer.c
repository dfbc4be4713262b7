/*
 * Deterministic layer writer: a real directory tree written twice and with 1 and 2 threads must
 * give the same bytes; gzip output passes `gzip -t`; metadata is normalised (SOURCE_DATE_EPOCH
 * clamp, no uname/gname, no atime/ctime records); hardlinks, symlinks and xattrs survive;
 * recompression keeps the diff_id.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layer/layer_writer.h"
#include "test_layer_helpers.h"

static char tmpdir[64];
static char root[128];

static void write_file(const char *rel, const void *data, size_t n, mode_t mode)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    fchmod(fd, mode);
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/es-writer-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(root, sizeof root, "%s/root", tmpdir);
    mkdir(root, 0755);
    char p[512];
    snprintf(p, sizeof p, "%s/usr", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/usr/bin", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/etc", root), mkdir(p, 0700);
    write_file("etc/hostname", "edge\n", 5, 0644);
    write_file("usr/bin/tool", "#!/bin/sh\necho hi\n", 18, 04755);
    /* 3 MiB of compressible but not trivial data: spans many 256 KiB gzip blocks. */
    size_t n = 3 << 20;
    unsigned char *big = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (unsigned char)("abcdefgh"[(x >> 16) & 7]);
    }
    write_file("usr/big.bin", big, n, 0644);
    free(big);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/usr/bin/tool", root);
    snprintf(b, sizeof b, "%s/usr/bin/tool-hardlink", root);
    assert_int_equal(link(a, b), 0);
    snprintf(b, sizeof b, "%s/usr/bin/sh", root);
    assert_int_equal(symlink("tool", b), 0);
    snprintf(a, sizeof a, "%s/etc/hostname", root);
    setxattr(a, "user.edgeslim", "yes", 3, 0); /* may fail on tmpfs without user xattrs */
    snprintf(b, sizeof b, "%s/fifo", root);
    mkfifo(b, 0644);
    /* A unix socket: not representable in tar, skipped. */
    int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/socket", root);
    assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(sfd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_layer(const char *name, es_compression c, int threads, int64_t sde, es_layer_blob *blob,
                        char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", tmpdir, name);
    es_write_opts o;
    es_write_opts_default(&o);
    o.compression = c;
    o.threads = threads;
    o.source_date_epoch = sde;
    es_error err = {0};
    int r = es_layer_from_dir(root, &o, NULL, NULL, out, blob, NULL, &err);
    if (r) fail_msg("%s", err.msg);
}

static void assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(x, y, la);
    free(x), free(y);
}

static void test_gzip_deterministic_across_threads(void **state)
{
    (void)state;
    char p1[256], p2[256], p3[256];
    es_layer_blob b1, b2, b3;
    write_layer("g1.tar.gz", ES_COMP_GZIP, 1, -1, &b1, p1, sizeof p1);
    write_layer("g2.tar.gz", ES_COMP_GZIP, 2, -1, &b2, p2, sizeof p2);
    write_layer("g3.tar.gz", ES_COMP_GZIP, 2, -1, &b3, p3, sizeof p3);
    assert_string_equal(b1.digest.s, b2.digest.s);
    assert_string_equal(b1.digest.s, b3.digest.s);
    assert_string_equal(b1.diff_id.s, b2.diff_id.s);
    assert_same_file(p1, p2);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "gzip -t %s", p2);
    assert_int_equal(system(cmd), 0);
    /* The diff_id is the sha256 of what gunzip gives. */
    snprintf(cmd, sizeof cmd, "gzip -dc %s | sha256sum | grep -q %s", p2, es_digest_hex(b2.diff_id.s));
    assert_int_equal(system(cmd), 0);
    /* Fixed header: mtime 0, no name (FLG 0). */
    size_t n;
    unsigned char *g = (unsigned char *)slurp(p2, &n);
    assert_int_equal(g[3], 0);
    assert_int_equal(g[4] | g[5] | g[6] | g[7], 0);
    assert_int_equal((int64_t)n, b2.size);
    free(g);
}

static void test_zstd_deterministic_across_threads(void **state)
{
    (void)state;
    char p1[256], p2[256];
    es_layer_blob b1, b2, bg;
    write_layer("z1.tar.zst", ES_COMP_ZSTD, 1, -1, &b1, p1, sizeof p1);
    write_layer("z2.tar.zst", ES_COMP_ZSTD, 2, -1, &b2, p2, sizeof p2);
    assert_same_file(p1, p2);
    char pg[256];
    write_layer("g.tar.gz", ES_COMP_GZIP, 2, -1, &bg, pg, sizeof pg);
    assert_string_equal(b1.diff_id.s, bg.diff_id.s);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "zstd -q -dc %s | sha256sum | grep -q %s", p1, es_digest_hex(b1.diff_id.s));
    assert_int_equal(system(cmd), 0);
}

typedef struct {
    int n;
    char paths[32][128];
    int64_t mtimes[32];
    char hardlink_of[32][128];
    int has_uname;
    int has_xattr;
} listing;

static void list_layer(const char *path, listing *l)
{
    memset(l, 0, sizeof *l);
    es_error err = {0};
    es_reader *r = es_reader_file(path, &err);
    assert_non_null(r);
    es_layer_stream *s;
    assert_int_equal(es_layer_stream_open(r, NULL, NULL, &s, &err), 0);
    struct archive_entry *e;
    while (es_layer_stream_next(s, &e, &err) > 0 && l->n < 32) {
        snprintf(l->paths[l->n], 128, "%s", archive_entry_pathname(e));
        l->mtimes[l->n] = archive_entry_mtime(e);
        if (archive_entry_hardlink(e)) snprintf(l->hardlink_of[l->n], 128, "%s", archive_entry_hardlink(e));
        if (archive_entry_uname(e) && *archive_entry_uname(e)) l->has_uname = 1;
        if (archive_entry_xattr_count(e)) l->has_xattr = 1;
        l->n++;
    }
    assert_int_equal(es_layer_stream_finish(s, NULL, &err), 0);
    es_layer_stream_free(s);
}

static void test_tree_contents_and_normalisation(void **state)
{
    (void)state;
    char p[256];
    es_layer_blob b;
    write_layer("sde.tar", ES_COMP_NONE, 1, 1000, &b, p, sizeof p);
    /* Uncompressed: the blob is the tar, digest == diff_id. */
    assert_string_equal(b.digest.s, b.diff_id.s);
    listing l;
    list_layer(p, &l);
    const char *want[] = {"etc", "etc/hostname", "fifo", "usr", "usr/big.bin", "usr/bin",
                          "usr/bin/sh", "usr/bin/tool", "usr/bin/tool-hardlink"};
    assert_int_equal(l.n, 9);
    for (int i = 0; i < 9; i++) assert_string_equal(l.paths[i], want[i]);
    for (int i = 0; i < l.n; i++) assert_true(l.mtimes[i] <= 1000);
    assert_string_equal(l.hardlink_of[8], "usr/bin/tool");
    assert_false(l.has_uname);
    size_t n;
    char *tar = slurp(p, &n);
    assert_null(memmem(tar, n, "atime=", 6));
    assert_null(memmem(tar, n, "ctime=", 6));
    free(tar);
    /* The same tree twice gives the same digest. */
    char p2[256];
    es_layer_blob b2;
    write_layer("sde2.tar", ES_COMP_NONE, 2, 1000, &b2, p2, sizeof p2);
    assert_string_equal(b.digest.s, b2.digest.s);
}

static void test_xattrs_and_caps_kept(void **state)
{
    (void)state;
    char f[512];
    snprintf(f, sizeof f, "%s/usr/bin/tool", root);
    /* VFS_CAP_REVISION_2, cap_net_bind_service (10) permitted+effective. */
    unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    if (setxattr(f, "security.capability", cap, sizeof cap, 0) != 0) skip();
    char p[256];
    es_layer_blob b;
    write_layer("caps.tar.gz", ES_COMP_GZIP, 2, -1, &b, p, sizeof p);
    es_error err = {0};
    es_layer_stream *s;
    assert_int_equal(es_layer_stream_open(es_reader_file(p, &err), NULL, NULL, &s, &err), 0);
    struct archive_entry *e;
    int found = 0;
    while (es_layer_stream_next(s, &e, &err) > 0) {
        if (strcmp(archive_entry_pathname(e), "usr/bin/tool") != 0) continue;
        const char *name;
        const void *val;
        size_t size;
        archive_entry_xattr_reset(e);
        while (archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK)
            if (!strcmp(name, "security.capability") && size == sizeof cap && !memcmp(val, cap, size)) found = 1;
        assert_int_equal(archive_entry_perm(e), 04755);
    }
    assert_int_equal(es_layer_stream_finish(s, NULL, &err), 0);
    es_layer_stream_free(s);
    removexattr(f, "security.capability");
    assert_true(found);
}

static void test_recompress_keeps_diff_id(void **state)
{
    (void)state;
    char pg[256], pz1[256], pz2[256], pn[256];
    es_layer_blob bg, bz1, bz2, bn;
    write_layer("r.tar.gz", ES_COMP_GZIP, 2, -1, &bg, pg, sizeof pg);
    es_error err = {0};
    es_write_opts o;
    es_write_opts_default(&o);
    es_layer_expect exp = {"r.tar.gz", bg.digest.s, bg.size, bg.diff_id.s};
    snprintf(pz1, sizeof pz1, "%s/r1.tar.zst", tmpdir);
    snprintf(pz2, sizeof pz2, "%s/r2.tar.zst", tmpdir);
    snprintf(pn, sizeof pn, "%s/r.tar", tmpdir);
    o.compression = ES_COMP_ZSTD;
    o.threads = 1;
    assert_int_equal(es_layer_recompress(es_reader_file(pg, &err), &exp, &o, pz1, &bz1, NULL, &err), 0);
    o.threads = 2;
    assert_int_equal(es_layer_recompress(es_reader_file(pg, &err), &exp, &o, pz2, &bz2, NULL, &err), 0);
    assert_same_file(pz1, pz2);
    assert_string_equal(bz1.diff_id.s, bg.diff_id.s);
    o.compression = ES_COMP_NONE;
    es_layer_expect expz = {"r.tar.zst", bz1.digest.s, bz1.size, bz1.diff_id.s};
    assert_int_equal(es_layer_recompress(es_reader_file(pz1, &err), &expz, &o, pn, &bn, NULL, &err), 0);
    assert_string_equal(bn.diff_id.s, bg.diff_id.s);
    assert_string_equal(bn.digest.s, bg.diff_id.s);
    /* A wrong expectation fails and leaves no output. */
    es_digest wrong;
    es_digest_buf("x", 1, &wrong);
    es_layer_expect bad = {"r.tar.gz", NULL, -1, wrong.s};
    char pbad[256];
    snprintf(pbad, sizeof pbad, "%s/bad.tar", tmpdir);
    es_err_clear(&err);
    assert_int_equal(es_layer_recompress(es_reader_file(pg, &err), &bad, &o, pbad, &bn, NULL, &err), -1);
    assert_int_equal(err.code, ES_EDIGEST);
    assert_int_equal(access(pbad, F_OK), -1);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp-", tmpdir);
    assert_int_not_equal(system(cmd), 0);
}

static void test_writer_add_entries(void **state)
{
    (void)state;
    char p[256];
    snprintf(p, sizeof p, "%s/added.tar.gz", tmpdir);
    es_write_opts o;
    es_write_opts_default(&o);
    o.source_date_epoch = 5;
    es_layer_writer *w;
    es_error err = {0};
    assert_int_equal(es_layer_writer_open(p, &o, &w, &err), 0);
    struct archive_entry *e = archive_entry_new();
    char longname[300];
    memset(longname, 'L', sizeof longname);
    longname[299] = 0;
    archive_entry_set_pathname(e, longname);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 3);
    archive_entry_set_mtime(e, 99999, 123);
    archive_entry_set_atime(e, 99999, 5);
    archive_entry_set_ctime(e, 99999, 5);
    archive_entry_set_uname(e, "someone");
    es_reader *data = es_reader_mem("abc", 3);
    assert_int_equal(es_layer_writer_add(w, e, data, &err), 0);
    es_reader_free(data);
    /* Short data is an error naming the entry. */
    archive_entry_set_pathname(e, "short");
    data = es_reader_mem("ab", 2);
    assert_int_equal(es_layer_writer_add(w, e, data, &err), -1);
    assert_non_null(strstr(err.msg, "short"));
    es_reader_free(data);
    archive_entry_free(e);
    es_layer_writer_abort(w);
    assert_int_equal(access(p, F_OK), -1);
}

static int skip_usr_dir_and_big(const char *rel, void *arg)
{
    (*(int *)arg)++;
    return strcmp(rel, "usr") != 0 && strcmp(rel, "usr/big.bin") != 0;
}

static void test_filter(void **state)
{
    (void)state;
    char p[256];
    snprintf(p, sizeof p, "%s/filtered.tar", tmpdir);
    es_write_opts o;
    es_write_opts_default(&o);
    o.compression = ES_COMP_NONE;
    es_layer_blob b;
    es_error err = {0};
    int calls = 0;
    assert_int_equal(es_layer_from_dir(root, &o, skip_usr_dir_and_big, &calls, p, &b, NULL, &err), 0);
    listing l;
    list_layer(p, &l);
    const char *want[] = {"etc", "etc/hostname", "fifo", "usr/bin", "usr/bin/sh", "usr/bin/tool",
                          "usr/bin/tool-hardlink"};
    assert_int_equal(l.n, 7);
    for (int i = 0; i < 7; i++) assert_string_equal(l.paths[i], want[i]);
    assert_int_equal(calls, 9);
}

static void test_odd_names_round_trip(void **state)
{
    (void)state;
    char sub[256];
    snprintf(sub, sizeof sub, "%s/names", tmpdir);
    mkdir(sub, 0755);
    const char *names[] = {"caf\xc3\xa9.txt", "bad\xff", "sp ace", "nl\nname"};
    for (int i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", sub, names[i]);
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    char out[256];
    snprintf(out, sizeof out, "%s/names.tar.gz", tmpdir);
    es_write_opts o;
    es_write_opts_default(&o);
    es_layer_blob b;
    es_error err = {0};
    assert_int_equal(es_layer_from_dir(sub, &o, NULL, NULL, out, &b, NULL, &err), 0);
    listing l;
    list_layer(out, &l);
    assert_int_equal(l.n, 4);
    /* Sorted bytewise: "bad\xff" < "caf\xc3\xa9.txt" < "nl\nname" < "sp ace". */
    assert_string_equal(l.paths[0], names[1]);
    assert_string_equal(l.paths[1], names[0]);
    assert_string_equal(l.paths[2], names[3]);
    assert_string_equal(l.paths[3], names[2]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_deterministic_across_threads),
        cmocka_unit_test(test_zstd_deterministic_across_threads),
        cmocka_unit_test(test_tree_contents_and_normalisation),
        cmocka_unit_test(test_xattrs_and_caps_kept),
        cmocka_unit_test(test_recompress_keeps_diff_id),
        cmocka_unit_test(test_writer_add_entries),
        cmocka_unit_test(test_odd_names_round_trip),
        cmocka_unit_test(test_filter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
