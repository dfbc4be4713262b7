/* ELF dependency reader on real host binaries, a shared object built here with a $ORIGIN
 * RUNPATH, non-ELF input and hostile (truncated / corrupted) ELF images. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <fcntl.h>

#include "slim/elf_deps.h"
#include "test_slim_util.h"

static void test_host_ls(void **state)
{
    (void)state;
    es_elf_deps d;
    es_error err = {0};
    assert_int_equal(es_elf_deps_parse_file("/bin/ls", &d, &err), 1);
    assert_int_equal(d.elf_class, ELFCLASS64);
    assert_int_equal(d.machine, EM_X86_64);
    assert_non_null(d.interp);
    assert_string_equal(d.interp, "/lib64/ld-linux-x86-64.so.2");
    int has_libc = 0;
    for (size_t i = 0; i < d.n_needed; i++) has_libc |= !strcmp(d.needed[i], "libc.so.6");
    assert_true(has_libc);
    assert_null(d.runpath);
    es_elf_deps_free(&d);
}

static void test_libc_has_no_interp_but_needs_ld(void **state)
{
    (void)state;
    es_elf_deps d;
    assert_int_equal(es_elf_deps_parse_file("/lib/x86_64-linux-gnu/libc.so.6", &d, NULL), 1);
    assert_int_equal(d.type, ET_DYN);
    int has_ld = 0;
    for (size_t i = 0; i < d.n_needed; i++) has_ld |= !strcmp(d.needed[i], "ld-linux-x86-64.so.2");
    assert_true(has_ld);
    es_elf_deps_free(&d);
}

static void test_runpath_origin(void **state)
{
    (void)state;
    char *dir = t_mkdtemp();
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd %s && echo 'int foo(void){return 42;}' > foo.c && gcc -shared -fPIC -o libfoo.so foo.c && "
             "echo 'int foo(void); int bar(void){return foo();}' > bar.c && "
             "gcc -shared -fPIC -o libbar.so bar.c -L. -Wl,--no-as-needed -lfoo -Wl,-rpath,'$ORIGIN/lib' && "
             "gcc -shared -fPIC -o libold.so bar.c -L. -Wl,--no-as-needed -lfoo -Wl,--disable-new-dtags,-rpath,/opt/x",
             dir);
    t_sh(cmd);
    char path[4200];
    snprintf(path, sizeof path, "%s/libbar.so", dir);
    es_elf_deps d;
    es_error err = {0};
    assert_int_equal(es_elf_deps_parse_file(path, &d, &err), 1);
    assert_null(d.interp);
    assert_non_null(d.runpath);
    assert_string_equal(d.runpath, "$ORIGIN/lib");
    assert_null(d.rpath);
    int has_foo = 0;
    for (size_t i = 0; i < d.n_needed; i++) has_foo |= !strcmp(d.needed[i], "libfoo.so");
    assert_true(has_foo);
    es_elf_deps_free(&d);
    snprintf(path, sizeof path, "%s/libold.so", dir);
    assert_int_equal(es_elf_deps_parse_file(path, &d, &err), 1);
    assert_non_null(d.rpath);
    assert_string_equal(d.rpath, "/opt/x");
    assert_null(d.runpath);
    es_elf_deps_free(&d);
    t_rm_rf(dir);
    free(dir);
}

static void test_not_elf(void **state)
{
    (void)state;
    es_elf_deps d;
    const uint8_t text[] = "#!/bin/sh\necho hi\n";
    assert_int_equal(es_elf_deps_parse_mem(text, sizeof text, "script", &d, NULL), 0);
    assert_int_equal(es_elf_deps_parse_mem(text, 2, "tiny", &d, NULL), 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void test_truncated_is_format_error(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = slurp("/bin/ls", &len);
    es_elf_deps d;
    es_error err = {0};
    /* Header intact, program headers cut off. */
    assert_int_equal(es_elf_deps_parse_mem(b, 80, "ls-cut", &d, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    assert_non_null(strstr(err.msg, "ls-cut"));
    /* Program header offset pointing far outside the file. */
    uint8_t *c = malloc(len);
    memcpy(c, b, len);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)c;
    eh->e_phoff = (Elf64_Off)len - 8;
    es_err_clear(&err);
    assert_int_equal(es_elf_deps_parse_mem(c, len, "ls-phoff", &d, &err), -1);
    assert_int_equal(err.code, ES_EFORMAT);
    free(c);
    free(b);
}

/* Every single-byte corruption of the first 4 KiB and every truncation length either parses or
 * fails cleanly (ASan catches any out-of-bounds read). */
static void test_corruptions_do_not_crash(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = slurp("/bin/ls", &len);
    uint8_t *c = malloc(len);
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        memcpy(c, b, len);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t off = (seed >> 8) % 4096;
            c[off] = (uint8_t)(seed >> 3);
        }
        es_elf_deps d;
        es_error err = {0};
        size_t l = round % 7 == 0 ? (seed >> 4) % len : len;
        int rc = es_elf_deps_parse_mem(c, l, "fuzz", &d, &err);
        if (rc == 1) es_elf_deps_free(&d);
        if (rc < 0) assert_int_equal(err.code, ES_EFORMAT);
    }
    free(c);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_ls),
        cmocka_unit_test(test_libc_has_no_interp_but_needs_ld),
        cmocka_unit_test(test_runpath_origin),
        cmocka_unit_test(test_not_elf),
        cmocka_unit_test(test_truncated_is_format_error),
        cmocka_unit_test(test_corruptions_do_not_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
