/* Package DB rewrite (dpkg and apk) on a fake root with merged /usr, the SPDX 2.3 SBOM made from
 * it (required fields, PURLs, determinism) and the seccomp profile document. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "slim/keepset.h"
#include "slim/pkgdb.h"
#include "slim/sbom.h"
#include "test_slim_util.h"

static const char *STATUS =
    "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u10\n"
    "Description: GNU C Library\n continuation line kept verbatim\n\n"
    "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b7\n\n"
    "Package: removed-pkg\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n"
    "Package: docs-only\nStatus: install ok installed\nArchitecture: all\nVersion: 1:2.0~rc1\n\n";

static char *root;

static int setup(void **state)
{
    (void)state;
    root = t_mkdtemp();
    t_mkdirs(root, "usr/lib/x86_64-linux-gnu");
    t_mkdirs(root, "usr/bin");
    t_mkdirs(root, "usr/share/doc/docs-only");
    t_mkdirs(root, "var/lib/dpkg/info");
    t_symlink(root, "lib", "usr/lib");
    t_symlink(root, "bin", "usr/bin");
    t_write(root, "usr/lib/x86_64-linux-gnu/libc.so.6", "elf", 0755);
    t_write(root, "usr/bin/bash", "elf", 0755);
    t_write(root, "usr/share/doc/docs-only/README", "r", 0644);
    t_write(root, "var/lib/dpkg/status", STATUS, 0644);
    /* Lists name the pre-merge paths (/lib, /bin) like real Debian packages do. */
    t_write(root, "var/lib/dpkg/info/libc6:amd64.list", "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n", 0644);
    t_write(root, "var/lib/dpkg/info/libc6:amd64.md5sums", "x  lib/x86_64-linux-gnu/libc.so.6\n", 0644);
    t_write(root, "var/lib/dpkg/info/libc6:amd64.postinst", "#!/bin/sh\n", 0755);
    t_write(root, "var/lib/dpkg/info/bash.list", "/.\n/bin\n/bin/bash\n", 0644);
    t_write(root, "var/lib/dpkg/info/docs-only.list", "/.\n/usr\n/usr/share/doc/docs-only/README\n", 0644);
    t_write(root, "etc-os-release-placeholder", "", 0644);
    t_mkdirs(root, "etc");
    t_write(root, "etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n", 0644);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    t_rm_rf(root);
    free(root);
    return 0;
}

static void test_dpkg_rewrite(void **state)
{
    (void)state;
    es_keepset *ks = es_keepset_new();
    es_keepset_add(ks, "/usr/lib/x86_64-linux-gnu/libc.so.6", ES_KEEP_STATIC);
    es_keepset_add(ks, "/lib", ES_KEEP_STATIC); /* the merged-/usr symlink: a dir, not a package file */
    es_keepset_add(ks, "/usr/bin", ES_KEEP_STATIC); /* only bash's directory */
    es_pkgdb db;
    es_error err = {0};
    assert_int_equal(es_pkgdb_scan(root, ks, &db, &err), 0);
    assert_int_equal(db.kind, ES_PKGDB_DPKG);
    assert_string_equal(db.distro, "debian");
    assert_int_equal(es_pkgdb_installed_count(&db), 3);
    assert_int_equal(es_pkgdb_kept_count(&db), 1);
    char *text = es_pkgdb_render(&db);
    assert_string_equal(text, "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u10\n"
                              "Description: GNU C Library\n continuation line kept verbatim\n\n");
    free(text);
    es_pkgdb_keep_files(root, &db, ks);
    assert_true(es_keepset_get(ks, "/var/lib/dpkg/status") & ES_KEEP_META);
    assert_true(es_keepset_get(ks, "/var/lib/dpkg/info/libc6:amd64.list"));
    assert_true(es_keepset_get(ks, "/var/lib/dpkg/info/libc6:amd64.md5sums"));
    assert_int_equal(es_keepset_get(ks, "/var/lib/dpkg/info/libc6:amd64.postinst"), 0);
    assert_int_equal(es_keepset_get(ks, "/var/lib/dpkg/info/bash.list"), 0);

    es_sbom_info info = {"img (slim)", "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                         "2025-01-02T03:04:05Z", "0.1.0"};
    json_t *doc = es_sbom_spdx(&info, &db);
    assert_string_equal(json_string_value(json_object_get(doc, "spdxVersion")), "SPDX-2.3");
    assert_string_equal(json_string_value(json_object_get(doc, "dataLicense")), "CC0-1.0");
    assert_string_equal(json_string_value(json_object_get(doc, "SPDXID")), "SPDXRef-DOCUMENT");
    assert_non_null(strstr(json_string_value(json_object_get(doc, "documentNamespace")), "https://"));
    json_t *ci = json_object_get(doc, "creationInfo");
    assert_string_equal(json_string_value(json_object_get(ci, "created")), "2025-01-02T03:04:05Z");
    assert_string_equal(json_string_value(json_array_get(json_object_get(ci, "creators"), 0)), "Tool: edgeslim-0.1.0");
    json_t *pkgs = json_object_get(doc, "packages");
    assert_int_equal(json_array_size(pkgs), 2); /* the image + libc6 */
    json_t *libc = json_array_get(pkgs, 1);
    assert_string_equal(json_string_value(json_object_get(libc, "name")), "libc6");
    assert_string_equal(json_string_value(json_object_get(libc, "versionInfo")), "2.36-9+deb12u10");
    assert_string_equal(json_string_value(json_object_get(libc, "downloadLocation")), "NOASSERTION");
    json_t *ref = json_array_get(json_object_get(libc, "externalRefs"), 0);
    assert_string_equal(json_string_value(json_object_get(ref, "referenceLocator")),
                        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64");
    json_t *rels = json_object_get(doc, "relationships");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rels, 0), "relationshipType")), "DESCRIBES");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rels, 1), "relationshipType")), "CONTAINS");
    char *a = es_json_pretty(doc);
    json_t *doc2 = es_sbom_spdx(&info, &db);
    char *b = es_json_pretty(doc2);
    assert_string_equal(a, b); /* deterministic */
    json_error_t je;
    json_t *back = json_loads(a, 0, &je);
    assert_non_null(back);
    json_decref(back);
    free(a);
    free(b);
    json_decref(doc);
    json_decref(doc2);

    /* Write into a slim tree and read back. */
    char *slim = t_mkdtemp();
    t_mkdirs(slim, "var/lib/dpkg");
    assert_int_equal(es_pkgdb_write(slim, &db, &err), 0);
    char p[4200];
    snprintf(p, sizeof p, "%s/var/lib/dpkg/status", slim);
    FILE *f = fopen(p, "r");
    char buf[1024] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(buf, "Package: libc6"));
    assert_null(strstr(buf, "Package: bash"));
    t_rm_rf(slim);
    free(slim);
    es_pkgdb_free(&db);
    es_keepset_free(ks);
}

static void test_epoch_purl(void **state)
{
    (void)state;
    char *p = es_purl("deb", "debian", "docs-only", "1:2.0~rc1", "all");
    assert_string_equal(p, "pkg:deb/debian/docs-only@1%3A2.0~rc1?arch=all");
    free(p);
}

static void test_apk(void **state)
{
    (void)state;
    char *r = t_mkdtemp();
    t_mkdirs(r, "lib/apk/db");
    t_mkdirs(r, "usr/bin");
    t_write(r, "usr/bin/busybox", "x", 0755);
    t_write(r, "lib/apk/db/installed",
            "C:Q1abc=\nP:busybox\nV:1.36.1-r5\nA:x86_64\nF:usr/bin\nR:busybox\n\n"
            "C:Q1def=\nP:apk-tools\nV:2.14.0-r5\nA:x86_64\nF:sbin\nR:apk\n\n", 0644);
    es_keepset *ks = es_keepset_new();
    es_keepset_add(ks, "/usr/bin/busybox", ES_KEEP_STATIC);
    es_pkgdb db;
    assert_int_equal(es_pkgdb_scan(r, ks, &db, NULL), 0);
    assert_int_equal(db.kind, ES_PKGDB_APK);
    assert_int_equal(es_pkgdb_kept_count(&db), 1);
    char *text = es_pkgdb_render(&db);
    assert_string_equal(text, "C:Q1abc=\nP:busybox\nV:1.36.1-r5\nA:x86_64\nF:usr/bin\nR:busybox\n\n");
    free(text);
    es_pkgdb_free(&db);
    es_keepset_free(ks);
    t_rm_rf(r);
    free(r);
}

static void test_no_db(void **state)
{
    (void)state;
    char *r = t_mkdtemp();
    es_pkgdb db;
    assert_int_equal(es_pkgdb_scan(r, NULL, &db, NULL), 0);
    assert_int_equal(db.kind, ES_PKGDB_NONE);
    assert_int_equal(db.n, 0);
    es_pkgdb_free(&db);
    t_rm_rf(r);
    free(r);
}

static void test_seccomp_profile(void **state)
{
    (void)state;
    const char *seen[] = {"accept4", "epoll_wait", "openat", "accept4"};
    json_t *p = es_seccomp_profile(seen, 4);
    assert_string_equal(json_string_value(json_object_get(p, "defaultAction")), "SCMP_ACT_ERRNO");
    assert_int_equal(json_integer_value(json_object_get(p, "defaultErrnoRet")), 1);
    assert_true(json_array_size(json_object_get(p, "architectures")) >= 1);
    json_t *rule = json_array_get(json_object_get(p, "syscalls"), 0);
    assert_string_equal(json_string_value(json_object_get(rule, "action")), "SCMP_ACT_ALLOW");
    json_t *names = json_object_get(rule, "names");
    int has_accept = 0, has_execve = 0;
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *n = json_string_value(json_array_get(names, i));
        if (i) assert_true(strcmp(json_string_value(json_array_get(names, i - 1)), n) < 0); /* sorted, unique */
        has_accept |= !strcmp(n, "accept4");
        has_execve |= !strcmp(n, "execve");
    }
    assert_true(has_accept && has_execve);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dpkg_rewrite),
        cmocka_unit_test(test_epoch_purl),
        cmocka_unit_test(test_apk),
        cmocka_unit_test(test_no_db),
        cmocka_unit_test(test_seccomp_profile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
