/* Static closure on a fake merged-/usr root filesystem built from the host's real binaries and
 * libraries: PATH lookup, shebang through /usr/bin/env, PT_INTERP and DT_NEEDED through
 * ld.so.conf includes and symlinked /lib and /lib64, $ORIGIN RUNPATH, symlink loops and links
 * that try to leave the root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "slim/closure.h"
#include "slim/keepset.h"
#include "slim/rootfs_path.h"
#include "test_slim_util.h"

static char *root;

static void copy_host(const char *host, const char *rel)
{
    char cmd[8500];
    snprintf(cmd, sizeof cmd, "cp -L '%s' '%s/%s'", host, root, rel);
    t_sh(cmd);
}

static int setup(void **state)
{
    (void)state;
    root = t_mkdtemp();
    t_mkdirs(root, "usr/bin");
    t_mkdirs(root, "usr/lib/x86_64-linux-gnu");
    t_mkdirs(root, "usr/lib64");
    t_mkdirs(root, "usr/local/bin");
    t_mkdirs(root, "etc/ld.so.conf.d");
    t_mkdirs(root, "opt/app/bin");
    t_mkdirs(root, "opt/app/lib");
    t_symlink(root, "bin", "usr/bin");
    t_symlink(root, "lib", "usr/lib");
    t_symlink(root, "lib64", "usr/lib64");
    const char *libs[] = {"libc.so.6", "libselinux.so.1", "libpcre2-8.so.0", "ld-linux-x86-64.so.2"};
    for (size_t i = 0; i < 4; i++) {
        char h[256], r[256];
        snprintf(h, sizeof h, "/lib/x86_64-linux-gnu/%s", libs[i]);
        snprintf(r, sizeof r, "usr/lib/x86_64-linux-gnu/%s", libs[i]);
        copy_host(h, r);
    }
    /* /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, as Debian does. */
    t_symlink(root, "usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    copy_host("/bin/ls", "usr/bin/ls");
    copy_host("/usr/bin/env", "usr/bin/env");
    copy_host("/bin/true", "usr/bin/python3.11");
    t_symlink(root, "usr/bin/python3", "python3.11");
    t_write(root, "usr/local/bin/app", "#!/usr/bin/env python3\nprint('hi')\n", 0755);
    t_write(root, "etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n", 0644);
    t_write(root, "etc/ld.so.conf.d/x86_64-linux-gnu.conf",
            "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n", 0644);
    char cmd[8500];
    snprintf(cmd, sizeof cmd,
             "cd %s/opt/app && echo 'int foo(void){return 7;}' > /tmp/es-slim-foo.c && "
             "gcc -shared -fPIC -o lib/libfoo.so /tmp/es-slim-foo.c && "
             "echo 'int foo(void); int main(void){return foo();}' > /tmp/es-slim-main.c && "
             "gcc -o bin/tool /tmp/es-slim-main.c -Llib -Wl,--no-as-needed -lfoo -Wl,-rpath,'$ORIGIN/../lib' && "
             "rm -f /tmp/es-slim-foo.c /tmp/es-slim-main.c",
             root);
    t_sh(cmd);
    /* $LIB and $PLATFORM in a RUNPATH: Debian's ld.so expands them to lib/x86_64-linux-gnu and
     * x86_64. */
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/opt/tok/lib/x86_64-linux-gnu %s/opt/tok/x86_64 %s/opt/tok/bin && cd %s/opt/tok && "
             "echo 'int foo(void){return 7;}' > /tmp/es-slim-tok.c && "
             "gcc -shared -fPIC -o lib/x86_64-linux-gnu/libtok.so /tmp/es-slim-tok.c && "
             "gcc -shared -fPIC -o x86_64/libplat.so /tmp/es-slim-tok.c && "
             "echo 'int foo(void); int main(void){return foo();}' > /tmp/es-slim-tokm.c && "
             "gcc -o bin/tok /tmp/es-slim-tokm.c -Llib/x86_64-linux-gnu -Lx86_64 -Wl,--no-as-needed -ltok -lplat "
             "-Wl,-rpath,'/opt/tok/$LIB:/opt/tok/${PLATFORM}' && rm -f /tmp/es-slim-tok.c /tmp/es-slim-tokm.c",
             root, root, root, root);
    t_sh(cmd);
    t_symlink(root, "etc/loop1", "loop2");
    t_symlink(root, "etc/loop2", "/etc/loop1");
    t_symlink(root, "etc/escape", "../../../../../../usr/bin/ls");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    t_rm_rf(root);
    free(root);
    return 0;
}

static void test_which_uses_path(void **state)
{
    (void)state;
    es_closure *c = es_closure_new(root, "/usr/local/bin:/usr/bin:/bin", NULL);
    char *p = es_closure_which(c, "app", "/");
    assert_non_null(p);
    assert_string_equal(p, "/usr/local/bin/app");
    free(p);
    p = es_closure_which(c, "ls", "/");
    assert_string_equal(p, "/usr/bin/ls");
    free(p);
    assert_null(es_closure_which(c, "nginx", "/"));
    p = es_closure_which(c, "./bin/tool", "/opt/app");
    assert_non_null(p);
    assert_string_equal(p, "/opt/app/bin/tool");
    free(p);
    es_closure_free(c);
}

static void test_ld_so_conf_include(void **state)
{
    (void)state;
    es_closure *c = es_closure_new(root, NULL, NULL);
    const char *const *dirs = NULL;
    size_t n = es_closure_lib_dirs(c, &dirs);
    assert_int_equal(n, 3);
    assert_string_equal(dirs[1], "/lib/x86_64-linux-gnu");
    es_closure_free(c);
}

static void test_elf_closure_merged_usr(void **state)
{
    (void)state;
    es_closure *c = es_closure_new(root, NULL, NULL);
    es_keepset *ks = es_keepset_new();
    es_error err = {0};
    assert_int_equal(es_closure_add(c, "/bin/ls", ks, ES_KEEP_STATIC, &err), 1);
    const char *want[] = {
        "/bin", /* the symlink itself */
        "/usr", "/usr/bin", "/usr/bin/ls",
        "/lib64", "/usr/lib64/ld-linux-x86-64.so.2", "/lib",
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libselinux.so.1", "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!es_keepset_get(ks, want[i])) fail_msg("not kept: %s", want[i]);
        assert_int_equal(es_keepset_get(ks, want[i]), ES_KEEP_STATIC);
    }
    assert_int_equal(es_keepset_get(ks, "/usr/bin/env"), 0);
    const char *const *missing;
    assert_int_equal(es_closure_missing(c, &missing), 0);
    es_keepset_free(ks);
    es_closure_free(c);
}

static void test_shebang_env_resolves_python(void **state)
{
    (void)state;
    es_closure *c = es_closure_new(root, "/usr/local/bin:/usr/bin", NULL);
    es_keepset *ks = es_keepset_new();
    assert_int_equal(es_closure_add(c, "/usr/local/bin/app", ks, ES_KEEP_STATIC, NULL), 1);
    assert_true(es_keepset_get(ks, "/usr/local/bin/app"));
    assert_true(es_keepset_get(ks, "/usr/bin/env"));
    assert_true(es_keepset_get(ks, "/usr/bin/python3"));    /* the symlink */
    assert_true(es_keepset_get(ks, "/usr/bin/python3.11")); /* its target */
    assert_true(es_keepset_get(ks, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
    es_keepset_free(ks);
    es_closure_free(c);
}

static void test_origin_runpath(void **state)
{
    (void)state;
    es_closure *c = es_closure_new(root, NULL, NULL);
    es_keepset *ks = es_keepset_new();
    assert_int_equal(es_closure_add(c, "/opt/app/bin/tool", ks, ES_KEEP_STATIC, NULL), 1);
    assert_true(es_keepset_get(ks, "/opt/app/lib/libfoo.so"));
    es_keepset_free(ks);
    es_closure_free(c);
}

static void test_lib_platform_tokens(void **state)
{
    (void)state;
    es_closure *c = es_closure_new(root, NULL, NULL);
    es_keepset *ks = es_keepset_new();
    assert_int_equal(es_closure_add(c, "/opt/tok/bin/tok", ks, ES_KEEP_STATIC, NULL), 1);
    assert_true(es_keepset_get(ks, "/opt/tok/lib/x86_64-linux-gnu/libtok.so"));
    assert_true(es_keepset_get(ks, "/opt/tok/x86_64/libplat.so"));
    const char *const *missing;
    assert_int_equal(es_closure_missing(c, &missing), 0);
    es_keepset_free(ks);
    es_closure_free(c);
}

static void test_loop_and_escape(void **state)
{
    (void)state;
    char *out = NULL;
    es_error err = {0};
    assert_int_equal(es_rootfs_resolve(root, "/etc/loop1", 1, NULL, 0, &out, &err), -1);
    assert_int_equal(err.code, ES_EUNSAFE);
    /* ".." past the root stays at the root: the link lands on the image's /usr/bin/ls. */
    assert_int_equal(es_rootfs_resolve(root, "/etc/escape", 1, NULL, 0, &out, NULL), 1);
    assert_string_equal(out, "/usr/bin/ls");
    free(out);
    assert_int_equal(es_rootfs_resolve(root, "/nope/x", 1, NULL, 0, &out, NULL), 0);
    free(out);
    /* /bin -> usr/bin, so "/bin/.." is /usr (as in the kernel), and there is no /usr/etc. */
    assert_int_equal(es_rootfs_resolve(root, "/bin/../etc/ld.so.conf", 1, NULL, 0, &out, NULL), 0);
    assert_string_equal(out, "/usr/etc/ld.so.conf");
    free(out);
}

static void test_keepset_parents_and_sort(void **state)
{
    (void)state;
    es_keepset *ks = es_keepset_new();
    assert_int_equal(es_keepset_add(ks, "/a/b/c", ES_KEEP_TRACED), 1);
    assert_int_equal(es_keepset_add(ks, "/a/b/c", ES_KEEP_RULE), 0);
    assert_int_equal(es_keepset_get(ks, "/a/b/c"), ES_KEEP_TRACED | ES_KEEP_RULE);
    assert_int_equal(es_keepset_get(ks, "/a"), ES_KEEP_TRACED | ES_KEEP_RULE);
    es_keepset_add(ks, "/a-z", ES_KEEP_PRESET);
    for (int i = 0; i < 5000; i++) {
        char p[64];
        snprintf(p, sizeof p, "/many/f%d", i);
        es_keepset_add(ks, p, ES_KEEP_TRACED);
    }
    es_keepset_remove(ks, "/many/f10");
    assert_int_equal(es_keepset_get(ks, "/many/f10"), 0);
    assert_int_equal(es_keepset_count(ks), 3 + 1 + 1 + 4999);
    size_t n;
    const char **v = es_keepset_sorted(ks, &n);
    assert_int_equal(n, es_keepset_count(ks));
    for (size_t i = 1; i < n; i++) assert_true(strcmp(v[i - 1], v[i]) < 0);
    free(v);
    char buf[64];
    assert_string_equal(es_keep_reason_names(ES_KEEP_STATIC | ES_KEEP_TRACED, buf, sizeof buf), "static,traced");
    es_keepset_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_which_uses_path),
        cmocka_unit_test(test_ld_so_conf_include),
        cmocka_unit_test(test_elf_closure_merged_usr),
        cmocka_unit_test(test_shebang_env_resolves_python),
        cmocka_unit_test(test_origin_runpath),
        cmocka_unit_test(test_lib_platform_tokens),
        cmocka_unit_test(test_loop_and_escape),
        cmocka_unit_test(test_keepset_parents_and_sort),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
