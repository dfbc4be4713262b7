/* Keep rules: glob syntax, directory coverage, keep-file parsing (with errors naming the line),
 * include/exclude application on a fake root, exclude never removing the static closure, and
 * the presets (CA certs with hash links, localtime chain, locale from LANG). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "slim/closure.h"
#include "slim/keepset.h"
#include "slim/rules.h"
#include "test_slim_util.h"

static void test_glob(void **state)
{
    (void)state;
    assert_true(es_glob_match("/usr/lib/*.so", "/usr/lib/libx.so"));
    assert_false(es_glob_match("/usr/lib/*.so", "/usr/lib/sub/libx.so"));
    assert_true(es_glob_match("/usr/lib/**.so", "/usr/lib/sub/libx.so"));
    assert_true(es_glob_match("/usr/**/x.py", "/usr/x.py"));
    assert_true(es_glob_match("/usr/**/x.py", "/usr/a/b/x.py"));
    assert_true(es_glob_match("/etc/ssl/cert?.pem", "/etc/ssl/cert1.pem"));
    assert_false(es_glob_match("/etc/ssl/cert?.pem", "/etc/ssl/cert/.pem"));
    assert_true(es_glob_match("/a/[bc]d", "/a/cd"));
    assert_false(es_glob_match("/a/[bc]d", "/a/ed"));
    assert_true(es_glob_match("/a/[!bc]d", "/a/ed"));
    assert_true(es_glob_match("/a/\\*", "/a/*"));
    assert_false(es_glob_match("/a/\\*", "/a/b"));
    assert_true(es_rule_covers("/usr/share/doc", "/usr/share/doc/x/y"));
    assert_false(es_rule_covers("/usr/share/doc", "/usr/share/docs"));
    assert_true(es_rule_covers("/usr/lib/python3*", "/usr/lib/python3.11/os.py"));
}

static void test_keep_file_parse(void **state)
{
    (void)state;
    es_rules r = {0};
    es_error err = {0};
    const char *text = "# comment\n\ninclude /etc/ssl\n  exclude /usr/share/doc/**  \ninclude-bin /bin/ls\ninclude-shell\n";
    assert_int_equal(es_rules_parse_text(&r, text, "keep.txt", &err), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.v[0].kind, ES_RULE_INCLUDE);
    assert_string_equal(r.v[0].pattern, "/etc/ssl");
    assert_int_equal(r.v[1].kind, ES_RULE_EXCLUDE);
    assert_string_equal(r.v[1].pattern, "/usr/share/doc/**");
    assert_int_equal(r.v[2].kind, ES_RULE_INCLUDE_BIN);
    assert_int_equal(r.v[3].kind, ES_RULE_INCLUDE_SHELL);
    assert_null(r.v[3].pattern);
    es_rules_free(&r);

    assert_int_equal(es_rules_parse_text(&r, "include /a\nkeep /b\n", "k", &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    assert_non_null(strstr(err.msg, "k:2:"));
    es_rules_free(&r);
    es_err_clear(&err);
    assert_int_equal(es_rules_parse_text(&r, "include relative/path\n", "k", &err), -1);
    assert_non_null(strstr(err.msg, "k:1:"));
    es_rules_free(&r);
    es_err_clear(&err);
    assert_int_equal(es_rules_parse_text(&r, "include-shell /bin/sh\n", "k", &err), -1);
    es_rules_free(&r);
}

static char *root;

static int setup(void **state)
{
    (void)state;
    root = t_mkdtemp();
    t_mkdirs(root, "usr/bin");
    t_mkdirs(root, "usr/share/doc/pkg");
    t_mkdirs(root, "usr/lib/x86_64-linux-gnu");
    t_mkdirs(root, "etc/ssl/certs");
    t_mkdirs(root, "usr/share/ca-certificates/mozilla");
    t_mkdirs(root, "usr/share/zoneinfo/Europe");
    t_mkdirs(root, "usr/lib/locale/C.utf8");
    t_symlink(root, "bin", "usr/bin");
    t_symlink(root, "lib64", "usr/lib/x86_64-linux-gnu");
    char cmd[8500];
    snprintf(cmd, sizeof cmd, "cp -L /bin/ls /bin/dash /bin/cat '%s/usr/bin/' && cp -L /lib/x86_64-linux-gnu/libc.so.6 "
             "/lib/x86_64-linux-gnu/libselinux.so.1 /lib/x86_64-linux-gnu/libpcre2-8.so.0 "
             "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 '%s/usr/lib/x86_64-linux-gnu/'", root, root);
    t_sh(cmd);
    t_symlink(root, "usr/bin/sh", "dash");
    t_write(root, "usr/share/doc/pkg/README", "doc\n", 0644);
    t_write(root, "usr/share/doc/pkg/copyright", "c\n", 0644);
    t_write(root, "usr/share/ca-certificates/mozilla/Root_CA.crt", "-----BEGIN CERTIFICATE-----\n", 0644);
    t_symlink(root, "etc/ssl/certs/Root_CA.pem", "/usr/share/ca-certificates/mozilla/Root_CA.crt");
    t_symlink(root, "etc/ssl/certs/abcd1234.0", "Root_CA.pem");
    t_write(root, "etc/ssl/certs/ca-certificates.crt", "bundle\n", 0644);
    t_write(root, "usr/share/zoneinfo/Europe/Paris", "TZif\n", 0644);
    t_write(root, "usr/share/zoneinfo/Europe/Berlin", "TZif\n", 0644);
    t_symlink(root, "etc/localtime", "/usr/share/zoneinfo/Europe/Paris");
    t_write(root, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0644);
    t_write(root, "usr/lib/locale/C.utf8/LC_CTYPE", "x", 0644);
    t_write(root, "usr/lib/locale/locale-archive", "x", 0644);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    t_rm_rf(root);
    free(root);
    return 0;
}

static void test_apply_includes_and_excludes(void **state)
{
    (void)state;
    es_rules r = {0};
    es_error err = {0};
    assert_int_equal(es_rules_add(&r, ES_RULE_INCLUDE, "/usr/share/doc", &err), 0);
    assert_int_equal(es_rules_add(&r, ES_RULE_INCLUDE_BIN, "/bin/cat", &err), 0);
    assert_int_equal(es_rules_add(&r, ES_RULE_INCLUDE_SHELL, NULL, &err), 0);
    assert_int_equal(es_rules_add(&r, ES_RULE_EXCLUDE, "/usr/share/doc/*/copyright", &err), 0);
    assert_int_equal(es_rules_add(&r, ES_RULE_EXCLUDE, "/usr/bin/ls", &err), 0);
    assert_int_equal(es_rules_add(&r, ES_RULE_EXCLUDE, "/usr/lib", &err), 0);
    es_closure *c = es_closure_new(root, NULL, NULL);
    es_keepset *ks = es_keepset_new();
    assert_int_equal(es_closure_add(c, "/bin/ls", ks, ES_KEEP_STATIC, &err), 1);
    assert_int_equal(es_rules_apply_includes(&r, root, c, ks, &err), 0);
    assert_true(es_keepset_get(ks, "/usr/share/doc/pkg/README") & ES_KEEP_RULE);
    assert_true(es_keepset_get(ks, "/usr/share/doc/pkg/copyright") & ES_KEEP_RULE);
    assert_true(es_keepset_get(ks, "/usr/bin/cat") & ES_KEEP_RULE);
    assert_true(es_keepset_get(ks, "/usr/bin/sh") & ES_KEEP_RULE);
    assert_true(es_keepset_get(ks, "/usr/bin/dash") & ES_KEEP_RULE);
    es_rules_apply_excludes(&r, ks);
    assert_int_equal(es_keepset_get(ks, "/usr/share/doc/pkg/copyright"), 0);
    assert_true(es_keepset_get(ks, "/usr/share/doc/pkg/README"));
    /* ls and libc are the static closure: an exclude cannot remove them (or their parents). */
    assert_true(es_keepset_get(ks, "/usr/bin/ls") & ES_KEEP_STATIC);
    assert_true(es_keepset_get(ks, "/usr/lib/x86_64-linux-gnu/libc.so.6") & ES_KEEP_STATIC);
    assert_true(es_keepset_get(ks, "/usr/lib"));
    es_keepset_free(ks);
    es_closure_free(c);
    es_rules_free(&r);
}

static void test_include_matching_nothing_is_an_error(void **state)
{
    (void)state;
    es_rules r = {0};
    es_error err = {0};
    es_rules_add(&r, ES_RULE_INCLUDE, "/opt/nothing/*.so", &err);
    es_closure *c = es_closure_new(root, NULL, NULL);
    es_keepset *ks = es_keepset_new();
    assert_int_equal(es_rules_apply_includes(&r, root, c, ks, &err), -1);
    assert_int_equal(err.code, ES_EUSAGE);
    assert_non_null(strstr(err.msg, "/opt/nothing/*.so"));
    es_keepset_free(ks);
    es_closure_free(c);
    es_rules_free(&r);
}

static void test_presets(void **state)
{
    (void)state;
    es_keepset *ks = es_keepset_new();
    char *env[] = {"PATH=/usr/bin", "LANG=C.UTF-8", "TZ=Europe/Berlin", NULL};
    assert_int_equal(es_presets_apply(root, env, ks, NULL), 0);
    assert_true(es_keepset_get(ks, "/etc/passwd") & ES_KEEP_PRESET);
    assert_true(es_keepset_get(ks, "/etc/ssl/certs/abcd1234.0"));
    assert_true(es_keepset_get(ks, "/etc/ssl/certs/Root_CA.pem"));
    assert_true(es_keepset_get(ks, "/usr/share/ca-certificates/mozilla/Root_CA.crt"));
    assert_true(es_keepset_get(ks, "/etc/ssl/certs/ca-certificates.crt"));
    assert_true(es_keepset_get(ks, "/etc/localtime"));
    assert_true(es_keepset_get(ks, "/usr/share/zoneinfo/Europe/Paris"));
    assert_true(es_keepset_get(ks, "/usr/share/zoneinfo/Europe/Berlin")); /* from TZ */
    assert_true(es_keepset_get(ks, "/usr/lib/locale/C.utf8/LC_CTYPE"));   /* LANG normalised */
    assert_true(es_keepset_get(ks, "/usr/lib/locale/locale-archive"));
    assert_int_equal(es_keepset_get(ks, "/usr/share/doc/pkg/README"), 0);
    es_keepset_free(ks);
}

/* LANG/LC_* come from the image's config: an @modifier is carried over after the normalised
 * codeset, and a '.' after the '@' (no codeset) is left alone; that case used to copy the modifier
 * from the wrong offset, past the end of the normalised name's heap buffer. */
static void test_presets_locale_modifier(void **state)
{
    (void)state;
    t_mkdirs(root, "usr/lib/locale/de_DE.utf8@euro");
    t_write(root, "usr/lib/locale/de_DE.utf8@euro/LC_CTYPE", "x", 0644);
    t_mkdirs(root, "usr/lib/locale/x@m.UTF-8");
    t_write(root, "usr/lib/locale/x@m.UTF-8/LC_CTYPE", "x", 0644);
    char pad[4001], hostile[4100];
    memset(pad, 'a', 4000);
    pad[4000] = 0;
    snprintf(hostile, sizeof hostile, "LC_ALL=x@%s.UTF-8", pad);
    es_keepset *ks = es_keepset_new();
    char *env[] = {"LANG=de_DE.UTF-8@euro", "LC_CTYPE=x@m.UTF-8", hostile, NULL};
    assert_int_equal(es_presets_apply(root, env, ks, NULL), 0);
    assert_true(es_keepset_get(ks, "/usr/lib/locale/de_DE.utf8@euro/LC_CTYPE"));
    assert_true(es_keepset_get(ks, "/usr/lib/locale/x@m.UTF-8/LC_CTYPE"));
    es_keepset_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_keep_file_parse),
        cmocka_unit_test(test_apply_includes_and_excludes),
        cmocka_unit_test(test_include_matching_nothing_is_an_error),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_presets_locale_modifier),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
