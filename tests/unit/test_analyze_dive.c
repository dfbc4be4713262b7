/*
 * dive's metrics and our reclaimable_bytes on hand-computed multi-layer examples, fed to the
 * analyzer core as synthetic layer events. Every expected number is derived in the comment above
 * its test from dive's rules (docs/inspect-json.md).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyze/analyzer.h"
#include "analyze/dive_ci.h"

typedef struct spec {
    int layer;
    const char *path;
    char type;
    int64_t size;
} spec;
#define END                                                                                        \
    {                                                                                              \
        -1, NULL, 0, 0                                                                             \
    }

static es_analyzer *feed(const spec *s)
{
    es_analyzer *a = es_analyzer_new();
    es_error err = {0};
    int layer = -1;
    for (; s->path; s++) {
        while (layer < s->layer) {
            if (layer >= 0) assert_int_equal(es_analyzer_layer_end(a, NULL, &err), 0);
            assert_int_equal(es_analyzer_layer_begin(a, &err), 0);
            layer++;
        }
        es_entry_event ev = {0};
        ev.path = s->path;
        ev.size = s->size;
        ev.mode = s->type == 'd' ? 0755 : 0644;
        ev.type = s->type == 'd' ? ES_ENTRY_DIR : s->type == 'l' ? ES_ENTRY_SYMLINK : ES_ENTRY_FILE;
        if (s->type == 'l') ev.link_target = "target";
        assert_int_equal(es_analyzer_entry(a, &ev, &err), 0);
    }
    assert_int_equal(es_analyzer_layer_end(a, NULL, &err), 0);
    return a;
}

static void assert_close(double got, double want)
{
    if (fabs(got - want) > 1e-12) fail_msg("got %.15f want %.15f", got, want);
}

/* dive's own test (filetree/efficiency_test.go): layer 0 nginx.conf 2000 + public 3000, layer 1
 * nginx.conf 5000 + athing 10000, layer 2 deletes /etc/nginx. No directory entries, so /etc/nginx
 * is an implied node (not a directory to dive) and its whiteout weighs 0:
 *   min = 2000 + 3000 + 10000 + 0 = 15000, cumulative = 7000 + 3000 + 10000 + 0 = 20000 -> 0.75.
 * wasted = 7000 (nginx.conf, 2 layers); user bytes = 15000 + 0; reclaimable = 20000 - 10000. */
static void dive_published_example(void **state)
{
    (void)state;
    static const spec s[] = {
        {0, "etc/nginx/nginx.conf", 'f', 2000}, {0, "etc/nginx/public", 'f', 3000},
        {1, "etc/nginx/nginx.conf", 'f', 5000}, {1, "etc/athing", 'f', 10000},
        {2, "etc/.wh.nginx", 'f', 0},           END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 0.75);
    assert_int_equal(m.wasted_bytes, 7000);
    assert_int_equal(m.inefficient_paths, 1);
    assert_int_equal(m.user_size_bytes, 15000);
    assert_close(m.user_wasted_percent, 7000.0 / 15000.0);
    assert_int_equal(m.reclaimable_bytes, 10000);
    es_analyzer_free(a);
}

/* The same image as a real tar would carry it, with directory entries: now /etc/nginx was a
 * directory below, and its whiteout weighs its stacked subtree: 5000 (nginx.conf from layer 1) +
 * 3000 (public) = 8000. min = 2000+3000+10000+8000 = 23000, cumulative = 28000. */
static void dive_example_with_dirs(void **state)
{
    (void)state;
    static const spec s[] = {{0, "etc", 'd', 0},
                             {0, "etc/nginx", 'd', 0},
                             {0, "etc/nginx/nginx.conf", 'f', 2000},
                             {0, "etc/nginx/public", 'f', 3000},
                             {1, "etc", 'd', 0},
                             {1, "etc/nginx", 'd', 0},
                             {1, "etc/nginx/nginx.conf", 'f', 5000},
                             {1, "etc/athing", 'f', 10000},
                             {2, "etc", 'd', 0},
                             {2, "etc/.wh.nginx", 'f', 0},
                             END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 23000.0 / 28000.0);
    assert_int_equal(m.wasted_bytes, 7000);
    assert_int_equal(m.reclaimable_bytes, 10000);
    es_analyzer_free(a);
}

/* a: 100 then 300. cumulative 400, min 100 -> 0.25; wasted 400; user 300; reclaimable 100. */
static void file_overwritten(void **state)
{
    (void)state;
    static const spec s[] = {{0, "a", 'f', 100}, {1, "a", 'f', 300}, END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 0.25);
    assert_int_equal(m.wasted_bytes, 400);
    assert_close(m.user_wasted_percent, 400.0 / 300.0);
    assert_int_equal(m.reclaimable_bytes, 100);
    es_analyzer_free(a);
}

/* a 100, b 50; then .wh.a (a was a file: weighs 0). a: cum 100 min 0; b: 50/50.
 * efficiency 50/150; wasted 100; user bytes 0 -> ratio +inf (dive divides by zero); reclaim 100. */
static void file_deleted_by_whiteout(void **state)
{
    (void)state;
    static const spec s[] = {{0, "a", 'f', 100}, {0, "b", 'f', 50}, {1, ".wh.a", 'f', 0}, END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 50.0 / 150.0);
    assert_int_equal(m.wasted_bytes, 100);
    assert_int_equal(m.user_size_bytes, 0);
    assert_true(isinf(m.user_wasted_percent));
    assert_int_equal(m.reclaimable_bytes, 100);
    es_analyzer_free(a);
}

/* d/ holds x 100 and sub/y 200; layer 1 deletes d and adds m 5. The whiteout of d weighs
 * 0+100+0+200 = 300 but d is seen once, so dive's efficiency stays 1.0 and wasted 0: dive does not
 * see bytes hidden by a directory delete. reclaimable = 315 - 15 = 300. */
static void dir_deleted_by_whiteout(void **state)
{
    (void)state;
    static const spec s[] = {
        {0, "d", 'd', 0},  {0, "d/x", 'f', 100}, {0, "d/sub", 'd', 0}, {0, "d/sub/y", 'f', 200},
        {0, "k", 'f', 10}, {1, ".wh.d", 'f', 0}, {1, "m", 'f', 5},     END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 1.0);
    assert_int_equal(m.wasted_bytes, 0);
    assert_int_equal(m.reclaimable_bytes, 300);
    es_analyzer_free(a);
}

/* A directory deleted, then a file of that name: d's path is seen twice (300 then 7):
 * cum 307, min 7. min sum = 100+200+7 = 307... plus x 100, y 200 -> efficiency
 * (100+200+7)/(100+200+307). */
static void dir_deleted_then_file(void **state)
{
    (void)state;
    static const spec s[] = {{0, "d", 'd', 0},     {0, "d/x", 'f', 100}, {0, "d/y", 'f', 200},
                             {1, ".wh.d", 'f', 0}, {2, "d", 'f', 7},     END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 307.0 / 607.0);
    assert_int_equal(m.wasted_bytes, 307);
    assert_int_equal(m.reclaimable_bytes, 300);
    es_analyzer_free(a);
}

/* Opaque whiteout: d/x 100, d/y 200; layer 1 makes d opaque and adds d/z 50. dive ignores the
 * marker: all paths seen once, efficiency 1, wasted 0, user ratio 0/50. The final tree only has
 * z, so reclaimable = 350 - 50 = 300. */
static void opaque_whiteout(void **state)
{
    (void)state;
    static const spec s[] = {{0, "d", 'd', 0},
                             {0, "d/x", 'f', 100},
                             {0, "d/y", 'f', 200},
                             {1, "d", 'd', 0},
                             {1, "d/.wh..wh..opq", 'f', 0},
                             {1, "d/z", 'f', 50},
                             END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 1.0);
    assert_int_equal(m.wasted_bytes, 0);
    assert_close(m.user_wasted_percent, 0.0);
    assert_int_equal(m.reclaimable_bytes, 300);
    es_report_opts o = {.top_n = 10};
    json_t *r = es_analyzer_report(a, &o);
    json_t *files = json_object_get(r, "largest_files");
    assert_int_equal(json_array_size(files), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(files, 0), "path")),
                        "/d/z");
    json_decref(r);
    es_analyzer_free(a);
}

/* The opaque marker may come after entries of its own layer: they survive. */
static void opaque_after_own_entries(void **state)
{
    (void)state;
    static const spec s[] = {
        {0, "d/x", 'f', 100}, {1, "d/z", 'f', 50}, {1, "d/.wh..wh..opq", 'f', 0}, END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_int_equal(m.reclaimable_bytes, 100);
    es_analyzer_free(a);
}

/* f: 10, 20, 5 in three layers: cum 35, min 5 -> 5/35; wasted 35; user 25 -> 1.4; reclaim 30. */
static void same_file_three_layers(void **state)
{
    (void)state;
    static const spec s[] = {{0, "f", 'f', 10}, {1, "f", 'f', 20}, {2, "f", 'f', 5}, END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 5.0 / 35.0);
    assert_int_equal(m.wasted_bytes, 35);
    assert_close(m.user_wasted_percent, 35.0 / 25.0);
    assert_int_equal(m.reclaimable_bytes, 30);
    es_report_opts o = {.top_n = 10};
    json_t *r = es_analyzer_report(a, &o);
    json_t *ine = json_object_get(json_object_get(r, "waste"), "inefficient_files");
    assert_int_equal(json_array_size(ine), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ine, 0), "count")), 3);
    json_decref(r);
    es_analyzer_free(a);
}

/* dive's scratch test: one empty file -> efficiency 1, nothing wasted; one layer -> ratio NaN. */
static void scratch_image(void **state)
{
    (void)state;
    static const spec s[] = {{0, "nothing", 'f', 0}, END};
    es_analyzer *a = feed(s);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    assert_close(m.efficiency, 1.0);
    assert_int_equal(m.wasted_bytes, 0);
    assert_true(isnan(m.user_wasted_percent));
    es_ci_config c;
    es_ci_config_default(&c);
    es_ci_result res[ES_CI_NRULES];
    assert_int_equal(es_ci_evaluate(&c, &m, res), 1); /* NaN passes, as in Go */
    es_analyzer_free(a);
}

/* Layer sizes are the sum of header sizes of all entries (dive's FileSize), dirs and links too. */
static void layer_sizes_and_counts(void **state)
{
    (void)state;
    static const spec s[] = {{0, "a", 'd', 0},       {0, "a/b", 'f', 11}, {0, "a/l", 'l', 0},
                             {1, "a/.wh.b", 'f', 0}, {1, "c", 'f', 4},    END};
    es_analyzer *a = feed(s);
    es_report_opts o = {.top_n = 10};
    json_t *r = es_analyzer_report(a, &o);
    json_t *layers = json_object_get(r, "layers");
    assert_int_equal(json_array_size(layers), 2);
    json_t *l0 = json_array_get(layers, 0), *l1 = json_array_get(layers, 1);
    assert_int_equal(json_integer_value(json_object_get(l0, "size")), 11);
    assert_int_equal(json_integer_value(json_object_get(l0, "entries")), 3);
    assert_int_equal(json_integer_value(json_object_get(l0, "files")), 2);
    assert_int_equal(json_integer_value(json_object_get(l1, "whiteouts")), 1);
    json_t *tot = json_object_get(r, "totals");
    assert_int_equal(json_integer_value(json_object_get(tot, "final_files")), 1);
    assert_int_equal(json_integer_value(json_object_get(tot, "final_size")), 4);
    json_decref(r);
    es_analyzer_free(a);
}

static void rejects_dotdot(void **state)
{
    (void)state;
    es_analyzer *a = es_analyzer_new();
    es_error err = {0};
    assert_int_equal(es_analyzer_layer_begin(a, &err), 0);
    es_entry_event ev = {.path = "a/../../etc/passwd", .type = ES_ENTRY_FILE, .size = 1};
    assert_int_equal(es_analyzer_entry(a, &ev, &err), -1);
    assert_int_equal(err.code, ES_EUNSAFE);
    assert_non_null(strstr(err.msg, "a/../../etc/passwd"));
    es_analyzer_free(a);
}

/* Largest directories are recursive sizes of the final tree. */
static void largest_dirs(void **state)
{
    (void)state;
    static const spec s[] = {{0, "usr/lib/x", 'f', 1000},
                             {0, "usr/lib/y", 'f', 500},
                             {0, "usr/bin/z", 'f', 2000},
                             {0, "etc/c", 'f', 1},
                             END};
    es_analyzer *a = feed(s);
    es_report_opts o = {.top_n = 2};
    json_t *r = es_analyzer_report(a, &o);
    json_t *d = json_object_get(r, "largest_dirs");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "path")), "/usr");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(d, 0), "size")), 3500);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 1), "path")),
                        "/usr/bin");
    json_decref(r);
    es_analyzer_free(a);
}

/* Hostile repetition: the same whiteout, opaque marker and dir-replacing file many times in one
 * layer over a large lower directory must stay linear (each walk happens once per layer) and
 * give the same result as a single entry. */
static void repeated_hiding_entries_stay_linear(void **state)
{
    (void)state;
    es_analyzer *a = es_analyzer_new();
    es_error err = {0};
    char path[64];
    assert_int_equal(es_analyzer_layer_begin(a, &err), 0);
    for (int i = 0; i < 20000; i++) {
        snprintf(path, sizeof path, "big/f%d", i);
        es_entry_event ev = {.path = path, .type = ES_ENTRY_FILE, .size = 1};
        assert_int_equal(es_analyzer_entry(a, &ev, &err), 0);
    }
    assert_int_equal(es_analyzer_layer_end(a, NULL, &err), 0);
    assert_int_equal(es_analyzer_layer_begin(a, &err), 0);
    for (int i = 0; i < 20000; i++) {
        es_entry_event o = {.path = "big/.wh..wh..opq", .type = ES_ENTRY_FILE};
        es_entry_event w = {.path = ".wh.big", .type = ES_ENTRY_FILE};
        es_entry_event f = {.path = "big", .type = ES_ENTRY_FILE, .size = 2};
        assert_int_equal(es_analyzer_entry(a, &o, &err), 0);
        assert_int_equal(es_analyzer_entry(a, &w, &err), 0);
        assert_int_equal(es_analyzer_entry(a, &f, &err), 0);
    }
    assert_int_equal(es_analyzer_layer_end(a, NULL, &err), 0);
    es_waste_metrics m;
    es_analyzer_metrics(a, &m);
    /* 20000 one-byte files hidden, plus 19999 of the 20000 two-byte "big" files (the last shows) */
    assert_int_equal(m.reclaimable_bytes, 20000 + 2 * 19999);
    es_analyzer_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dive_published_example),
        cmocka_unit_test(dive_example_with_dirs),
        cmocka_unit_test(file_overwritten),
        cmocka_unit_test(file_deleted_by_whiteout),
        cmocka_unit_test(dir_deleted_by_whiteout),
        cmocka_unit_test(dir_deleted_then_file),
        cmocka_unit_test(opaque_whiteout),
        cmocka_unit_test(opaque_after_own_entries),
        cmocka_unit_test(same_file_three_layers),
        cmocka_unit_test(scratch_image),
        cmocka_unit_test(layer_sizes_and_counts),
        cmocka_unit_test(rejects_dotdot),
        cmocka_unit_test(largest_dirs),
        cmocka_unit_test(repeated_hiding_entries_stay_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
