/*
 * dpkg status / status.d and apk installed-db parsers on sample text shaped like the real files,
 * plus the host's own /var/lib/dpkg/status (Debian: must find dpkg itself).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyze/packages.h"
#include "util/reader.h"

static const char dpkg_status[] =
    "Package: libc6\n"
    "Status: install ok installed\n"
    "Priority: optional\n"
    "Installed-Size: 12985\n"
    "Architecture: amd64\n"
    "Version: 2.36-9+deb12u4\n"
    "Description: GNU C Library: Shared libraries\n"
    " Contains the standard libraries that are used by nearly all programs on\n"
    " the system.\n"
    "\n"
    "Package: oldpkg\n"
    "Status: deinstall ok config-files\n"
    "Installed-Size: 10\n"
    "Architecture: all\n"
    "Version: 1.0\n"
    "\n"
    "Package: base-files\n"
    "Status: install ok installed\n"
    "Architecture: amd64\n"
    "Version: 12.4+deb12u5\n"
    "Installed-Size: 341\n";

static void dpkg_status_file(void **state)
{
    (void)state;
    es_package_list l = {0};
    es_dpkg_parse(dpkg_status, strlen(dpkg_status), &l);
    assert_string_equal(l.manager, "dpkg");
    assert_int_equal(l.n, 2); /* oldpkg only keeps config files */
    assert_string_equal(l.items[0].name, "libc6");
    assert_string_equal(l.items[0].version, "2.36-9+deb12u4");
    assert_string_equal(l.items[0].arch, "amd64");
    assert_int_equal(l.items[0].installed_size, 12985 * 1024);
    assert_string_equal(l.items[1].name, "base-files");
    assert_int_equal(l.items[1].installed_size, 341 * 1024);
    es_package_list_free(&l);
}

/* distroless status.d files: one stanza, no Status field, CRLF tolerated. */
static void dpkg_status_d(void **state)
{
    (void)state;
    static const char t[] = "Package: tzdata\r\nVersion: 2024a-0+deb12u1\r\nArchitecture: all\r\n"
                            "Installed-Size: 3000\r\n";
    es_package_list l = {0};
    es_dpkg_parse(t, strlen(t), &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].version, "2024a-0+deb12u1");
    assert_int_equal(l.items[0].installed_size, 3000 * 1024);
    es_package_list_free(&l);
    assert_string_equal(es_package_db_kind("var/lib/dpkg/status.d/tzdata"), "dpkg");
    assert_null(es_package_db_kind("var/lib/dpkg/status.d/tzdata.md5sums"));
    assert_string_equal(es_package_db_kind("var/lib/dpkg/status"), "dpkg");
    assert_string_equal(es_package_db_kind("lib/apk/db/installed"), "apk");
    assert_null(es_package_db_kind("var/lib/dpkg/status-old"));
}

static void apk_installed(void **state)
{
    (void)state;
    static const char t[] = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nI:622592\n"
                            "T:the musl c library\nF:lib\nR:ld-musl-x86_64.so.1\n\n"
                            "C:Q1def=\nP:busybox\nV:1.36.1-r5\nA:x86_64\nI:950272\n\n";
    es_package_list l = {0};
    es_apk_parse(t, strlen(t), &l);
    assert_string_equal(l.manager, "apk");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].name, "musl");
    assert_string_equal(l.items[0].version, "1.2.4-r2");
    assert_int_equal(l.items[0].installed_size, 622592);
    assert_string_equal(l.items[1].name, "busybox");
    es_package_list_free(&l);
}

static void malformed(void **state)
{
    (void)state;
    static const char t[] = "Version: 1\n\n\n:::\nInstalled-Size: -5\nPackage: x\nInstalled-Size: "
                            "99999999999999999999\n";
    es_package_list l = {0};
    es_dpkg_parse(t, sizeof t - 1, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].name, "x");
    assert_int_equal(l.items[0].installed_size, -1);
    es_package_list_free(&l);
    es_apk_parse("", 0, &l);
    assert_int_equal(l.n, 0);
    es_package_list_free(&l);
}

static void host_dpkg_status(void **state)
{
    (void)state;
    es_error err = {0};
    es_reader *r = es_reader_file("/var/lib/dpkg/status", &err);
    if (!r) skip();
    char *text;
    size_t len;
    assert_int_equal(es_reader_slurp(r, 64u << 20, "status", &text, &len, &err), 0);
    es_reader_free(r);
    es_package_list l = {0};
    es_dpkg_parse(text, len, &l);
    int found = 0;
    for (size_t i = 0; i < l.n; i++)
        if (!strcmp(l.items[i].name, "dpkg")) found = 1;
    assert_true(found);
    assert_true(l.n > 50);
    es_package_list_free(&l);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dpkg_status_file), cmocka_unit_test(dpkg_status_d),
        cmocka_unit_test(apk_installed),    cmocka_unit_test(malformed),
        cmocka_unit_test(host_dpkg_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
