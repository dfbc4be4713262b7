/*
 * ELF summary parser on real binaries of this host (dynamic /bin/ls, static busybox if present,
 * static-pie ldconfig, this unstripped test binary), streamed in odd chunk sizes, and on truncated,
 * garbage and mutated input (must never read out of bounds: run under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze/elf_info.h"
#include "util/reader.h"

static uint8_t *slurp(const char *path, size_t *len)
{
    es_error err = {0};
    es_reader *r = es_reader_file(path, &err);
    if (!r) return NULL;
    char *buf = NULL;
    int rc = es_reader_slurp(r, 512u << 20, path, &buf, len, &err);
    es_reader_free(r);
    return rc == 0 ? (uint8_t *)buf : NULL;
}

static void streamed(const uint8_t *buf, size_t len, size_t chunk, es_elf_info *out)
{
    es_elf_scan *s = es_elf_scan_new();
    for (size_t off = 0; off < len; off += chunk)
        es_elf_scan_feed(s, buf + off, len - off < chunk ? len - off : chunk);
    es_elf_scan_finish(s, out);
}

static void same_info(const es_elf_info *a, const es_elf_info *b)
{
    assert_int_equal(a->valid, b->valid);
    assert_int_equal(a->elf_class, b->elf_class);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->machine, b->machine);
    assert_int_equal(a->has_interp, b->has_interp);
    assert_int_equal(a->has_dynamic, b->has_dynamic);
    assert_int_equal(a->pie_flag, b->pie_flag);
    assert_int_equal(a->has_symtab, b->has_symtab);
    assert_string_equal(a->interp, b->interp);
}

static void check_streaming_equals_whole(const uint8_t *buf, size_t len, const es_elf_info *whole)
{
    static const size_t chunks[] = {1, 7, 4096, 65536 + 13, 1 << 20};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        if (chunks[i] == 1 && len > (2u << 20)) continue; /* byte-by-byte only on small files */
        es_elf_info s;
        streamed(buf, len, chunks[i], &s);
        same_info(whole, &s);
    }
}

static void dynamic_ls(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = slurp("/bin/ls", &len);
    assert_non_null(buf);
    es_elf_info e;
    assert_int_equal(es_elf_parse(buf, len, &e), 0);
    assert_int_equal(e.valid, 1);
    assert_int_equal(e.elf_class, sizeof(void *) * 8);
    assert_true(e.has_interp);
    assert_string_equal(es_elf_linking(&e), "dynamic");
    assert_string_equal(es_elf_kind(&e), "pie-executable");
    assert_true(strstr(e.interp, "ld-linux") != NULL || strstr(e.interp, "ld-musl") != NULL);
    assert_int_equal(e.has_symtab, 0); /* Debian strips its binaries */
#if defined(__x86_64__)
    assert_string_equal(es_elf_machine_name(e.machine), "x86_64");
#elif defined(__aarch64__)
    assert_string_equal(es_elf_machine_name(e.machine), "aarch64");
#endif
    check_streaming_equals_whole(buf, len, &e);
    free(buf);
}

static void static_pie_ldconfig(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = slurp("/sbin/ldconfig", &len);
    if (!buf) skip();
    es_elf_info e;
    assert_int_equal(es_elf_parse(buf, len, &e), 0);
    assert_false(e.has_interp);
    assert_string_equal(es_elf_linking(&e), "static-pie");
    assert_string_equal(es_elf_kind(&e), "pie-executable");
    check_streaming_equals_whole(buf, len, &e);
    free(buf);
}

static void static_busybox(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = slurp("/bin/busybox", &len);
    if (!buf) skip();
    es_elf_info e;
    assert_int_equal(es_elf_parse(buf, len, &e), 0);
    if (e.type != 2) {
        free(buf);
        skip();
    } /* some builds are PIE */
    assert_string_equal(es_elf_linking(&e), "static");
    assert_string_equal(es_elf_kind(&e), "executable");
    check_streaming_equals_whole(buf, len, &e);
    free(buf);
}

static void unstripped_self(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = slurp("/proc/self/exe", &len);
    assert_non_null(buf);
    es_elf_info e;
    assert_int_equal(es_elf_parse(buf, len, &e), 0);
    assert_int_equal(e.has_symtab, 1); /* built RelWithDebInfo / Debug: symbols kept */
    check_streaming_equals_whole(buf, len, &e);
    free(buf);
}

static void shared_library(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = slurp("/lib/x86_64-linux-gnu/libc.so.6", &len);
    if (!buf) buf = slurp("/lib/aarch64-linux-gnu/libc.so.6", &len);
    if (!buf) skip();
    es_elf_info e;
    assert_int_equal(es_elf_parse(buf, len, &e), 0);
    /* libc.so.6 is executable (prints its version) so it has PT_INTERP: a PIE-like library */
    assert_true(e.has_dynamic);
    assert_int_equal(e.type, 3);
    free(buf);
}

static void truncated(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = slurp("/bin/ls", &len);
    assert_non_null(buf);
    es_elf_info e;
    for (size_t cut = 0; cut < 4200; cut += 3) {
        int rc = es_elf_parse(buf, cut, &e);
        if (cut < 64)
            assert_int_equal(rc, -1);
        else {
            assert_int_equal(rc, 0);
            assert_int_equal(e.has_symtab, -1); /* section headers are at the end: unknown */
        }
    }
    /* a truncated stream behaves the same */
    streamed(buf, 100, 30, &e);
    assert_int_equal(e.valid, 1);
    assert_int_equal(e.has_symtab, -1);
    free(buf);
}

static void garbage(void **state)
{
    (void)state;
    uint8_t junk[4096];
    srand(42);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)rand();
    es_elf_info e;
    assert_int_equal(es_elf_parse(junk, sizeof junk, &e), -1);
    assert_int_equal(e.valid, 0);
    memcpy(junk,
           "\x7f"
           "ELF\x03",
           5); /* bad class */
    assert_int_equal(es_elf_parse(junk, sizeof junk, &e), -1);
    assert_int_equal(es_elf_parse(NULL, 0, &e), -1);
}

/* Hostile headers: huge counts and offsets that overflow must be refused quietly. */
static void hostile_header(void **state)
{
    (void)state;
    uint8_t h[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    h[16] = 2; /* ET_EXEC */
    h[18] = 62;
    memset(h + 32, 0xff, 8); /* e_phoff = 2^64-1 */
    memset(h + 40, 0xff, 8); /* e_shoff = 2^64-1 */
    h[54] = 56;
    h[56] = 0xff;
    h[57] = 0x0f; /* phentsize 56, phnum 4095 */
    h[58] = 64;
    h[60] = 0xff;
    h[61] = 0xff; /* shentsize 64, shnum 65535 */
    es_elf_info e;
    assert_int_equal(es_elf_parse(h, sizeof h, &e), 0);
    assert_false(e.has_interp);
    assert_int_equal(e.has_symtab, -1);
    es_elf_scan *s = es_elf_scan_new();
    es_elf_scan_feed(s, h, sizeof h);
    uint8_t zeros[8192] = {0};
    for (int i = 0; i < 20; i++)
        es_elf_scan_feed(s, zeros, sizeof zeros);
    assert_int_equal(es_elf_scan_finish(s, &e), 0);
}

/* Random byte flips in the headers of a real binary: no crash, no out-of-bounds read (ASan). */
static void mutated(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = slurp("/bin/ls", &len);
    assert_non_null(orig);
    size_t n = len < 8192 ? len : 8192;
    uint8_t *buf = malloc(n);
    srand(7);
    for (int round = 0; round < 20000; round++) {
        memcpy(buf, orig, n);
        int flips = 1 + rand() % 8;
        for (int k = 0; k < flips; k++)
            buf[rand() % 128] = (uint8_t)rand();
        if (round % 3 == 0) buf[64 + rand() % (n - 64)] = (uint8_t)rand();
        es_elf_info e;
        es_elf_parse(buf, n, &e);
        if (e.valid) {
            (void)es_elf_kind(&e);
            (void)es_elf_linking(&e);
            assert_true(strlen(e.interp) < sizeof e.interp);
        }
    }
    free(buf);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dynamic_ls),     cmocka_unit_test(static_pie_ldconfig),
        cmocka_unit_test(static_busybox), cmocka_unit_test(unstripped_self),
        cmocka_unit_test(shared_library), cmocka_unit_test(truncated),
        cmocka_unit_test(garbage),        cmocka_unit_test(hostile_header),
        cmocka_unit_test(mutated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
