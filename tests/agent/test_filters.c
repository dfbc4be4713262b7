/*
 * tests/agent/test_filters.c: each filter on its own and routes of them, built from YAML the way
 * the agent builds them: match, threshold, deadband, window (count/min/max/avg/last at the window
 * end), fields drop/keep, enrich, multiple routes and config errors with line numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/yaml.h"
#include "filters/filter.h"
#include "inputs/convert.h"

static ea_record rec;
static char sunk[64][512];
static int nsunk;

static int sink(void *arg, ea_record *r)
{
    (void)arg;
    ea_buf b = {0};
    ea_rec_to_json(r, 0, &b);
    ea_buf_putc(&b, 0);
    if (nsunk < 64)
        snprintf(sunk[nsunk++], sizeof sunk[0], "%s", b.data);
    ea_buf_free(&b);
    return 0;
}

static ea_pipeline *build(const char *yaml, char *err)
{
    static ea_arena a;
    ea_arena_free(&a);
    ea_node *root = ea_yaml_parse(&a, yaml, strlen(yaml), err, 300);
    if (!root)
        return NULL;
    ea_filter_env env = {"dev-7", "plant-a"};
    ea_pipeline *p = ea_pipeline_new(ea_node_get(root, "routes"), &env, err, 300);
    if (p)
        ea_pipeline_set_sink(p, sink, NULL);
    nsunk = 0;
    return p;
}

static int feed(ea_pipeline *p, const char *line, uint64_t now)
{
    char err[200];
    ea_rec_init(&rec, "test", 0);
    assert_int_equal(ea_lineproto_parse(line, strlen(line), &rec, err, sizeof err), 1);
    return ea_pipeline_process(p, &rec, now);
}

static void test_match_and_threshold(void **state)
{
    (void)state;
    char err[300];
    ea_pipeline *p = build("routes:\n"
                           "  - name: hot\n"
                           "    match: {measurement: \"temp*\", tags: {site: a}}\n"
                           "    filters:\n"
                           "      - threshold: \"value > 30\"\n",
                           err);
    assert_non_null(p);
    assert_int_equal(feed(p, "temperature,site=a value=31", 1), 1);
    assert_int_equal(feed(p, "temperature,site=a value=30", 1), 0); /* not above */
    assert_int_equal(feed(p, "temperature,site=b value=99", 1), 0); /* tag mismatch */
    assert_int_equal(feed(p, "humidity,site=a value=99", 1), 0);    /* measurement mismatch */
    assert_int_equal(feed(p, "temperature,site=a other=99", 1), 0); /* no such field */
    assert_int_equal(nsunk, 1);
    assert_int_equal(ea_pipeline_dropped(p), 4);
    ea_pipeline_free(p);
}

static void test_threshold_operators(void **state)
{
    (void)state;
    char err[300];
    ea_pipeline *p = build("routes:\n  - filters:\n      - threshold: [\"v >= 1\", \"v != 2\", \"v<=3\"]\n", err);
    assert_non_null(p);
    assert_int_equal(feed(p, "m v=0", 1), 0);
    assert_int_equal(feed(p, "m v=1", 1), 1);
    assert_int_equal(feed(p, "m v=2", 1), 0);
    assert_int_equal(feed(p, "m v=3i", 1), 1);
    assert_int_equal(feed(p, "m v=4", 1), 0);
    ea_pipeline_free(p);
}

static void test_deadband_per_series(void **state)
{
    (void)state;
    char err[300];
    ea_pipeline *p = build("routes:\n  - filters:\n      - deadband: {field: t, delta: 0.5}\n", err);
    assert_non_null(p);
    assert_int_equal(feed(p, "m,d=1 t=20", 1), 1);   /* first value always */
    assert_int_equal(feed(p, "m,d=1 t=20.4", 1), 0); /* within the band */
    assert_int_equal(feed(p, "m,d=1 t=20.5", 1), 0); /* exactly delta: not beyond */
    assert_int_equal(feed(p, "m,d=1 t=20.6", 1), 1); /* beyond */
    assert_int_equal(feed(p, "m,d=2 t=20.6", 1), 1); /* another series starts fresh */
    assert_int_equal(feed(p, "m,d=1 t=20.2", 1), 0); /* compared with the last forwarded, 20.6 */
    assert_int_equal(feed(p, "m,d=1 t=20.0", 1), 1);
    assert_int_equal(feed(p, "m,d=1 x=1", 1), 1);    /* no such field: passes */
    ea_pipeline_free(p);
}

static void test_window_aggregates(void **state)
{
    (void)state;
    char err[300];
    ea_pipeline *p = build("routes:\n  - filters:\n      - window:\n          seconds: 10\n          fields: [t]\n"
                           "      - enrich: {}\n",
                           err);
    assert_non_null(p);
    assert_int_equal(feed(p, "m,d=1 t=4,other=1", 1000), 0);
    assert_int_equal(feed(p, "m,d=1 t=2", 2000), 0);
    assert_int_equal(feed(p, "m,d=1 t=6", 3000), 0);
    assert_int_equal(feed(p, "m,d=2 t=1", 3000), 0);
    ea_pipeline_flush(p, 5000); /* window not over */
    assert_int_equal(nsunk, 0);
    ea_pipeline_flush(p, 11000);
    assert_int_equal(nsunk, 2);
    const char *d1 = strstr(sunk[0], "\"d\":\"1\"") ? sunk[0] : sunk[1];
    assert_non_null(strstr(d1, "\"t_count\":3"));
    assert_non_null(strstr(d1, "\"t_min\":2"));
    assert_non_null(strstr(d1, "\"t_max\":6"));
    assert_non_null(strstr(d1, "\"t_avg\":4"));
    assert_non_null(strstr(d1, "\"t_last\":6"));
    assert_null(strstr(d1, "other"));
    assert_non_null(strstr(d1, "\"device_id\":\"dev-7\"")); /* emitted records continue down the route */
    ea_pipeline_flush(p, 22000); /* empty window: nothing */
    assert_int_equal(nsunk, 2);
    ea_pipeline_free(p);
}

static void test_fields_and_enrich(void **state)
{
    (void)state;
    char err[300];
    ea_pipeline *p = build("routes:\n  - filters:\n      - fields: {drop: [debug]}\n"
                           "      - enrich: {labels: {zone: north}, site: override}\n",
                           err);
    assert_non_null(p);
    assert_int_equal(feed(p, "m a=1,debug=2", 1), 1);
    assert_null(strstr(sunk[0], "debug"));
    assert_non_null(strstr(sunk[0], "\"device_id\":\"dev-7\""));
    assert_non_null(strstr(sunk[0], "\"site\":\"override\""));
    assert_non_null(strstr(sunk[0], "\"zone\":\"north\""));
    assert_int_equal(feed(p, "m debug=2", 1), 0); /* nothing left */
    ea_pipeline_free(p);
    p = build("routes:\n  - filters:\n      - fields:\n          keep: [a]\n", err);
    assert_non_null(p);
    assert_int_equal(feed(p, "m a=1,b=2,c=3", 1), 1);
    assert_non_null(strstr(sunk[0], "\"fields\":{\"a\":1}"));
    ea_pipeline_free(p);
}

static void test_two_routes_copy(void **state)
{
    (void)state;
    char err[300];
    ea_pipeline *p = build("routes:\n"
                           "  - name: all\n"
                           "  - name: slim\n"
                           "    filters:\n"
                           "      - fields: {keep: [a]}\n",
                           err);
    assert_non_null(p);
    assert_int_equal(feed(p, "m a=1,b=2", 1), 2);
    assert_non_null(strstr(sunk[0], "\"b\":2")); /* first route saw the unmodified record */
    assert_null(strstr(sunk[1], "\"b\":2"));
    ea_pipeline_free(p);
    p = build("routes: []\n", err);
    assert_non_null(p);
    assert_int_equal(feed(p, "m a=1", 1), 1); /* no routes: pass everything */
    ea_pipeline_free(p);
}

static void expect_error(const char *yaml, const char *line, const char *text)
{
    char err[300] = "";
    ea_pipeline *p = build(yaml, err);
    if (p)
        fail_msg("accepted bad config:\n%s", yaml);
    if (!strstr(err, line) || !strstr(err, text))
        fail_msg("error '%s' lacks '%s' / '%s'", err, line, text);
}

static void test_config_errors_name_lines(void **state)
{
    (void)state;
    expect_error("routes:\n  - filters:\n      - thresold: \"a > 1\"\n", "line 3", "unknown filter 'thresold'");
    expect_error("routes:\n  - filters:\n      - threshold: \"a >> 1\"\n", "line 3", "expected a number");
    expect_error("routes:\n  - filters:\n      - threshold: \"> 1\"\n", "line 3", "field name");
    expect_error("routes:\n  - filters:\n      - deadband: {field: t}\n", "line 3", "deadband");
    expect_error("routes:\n  - filters:\n      - window: {seconds: 0}\n", "line 3", "window");
    expect_error("routes:\n  - filters:\n      - window: {seconds: 5, aggregates: [median]}\n", "line 3", "aggregates");
    expect_error("routes:\n  - filters:\n      - fields: {drop: a}\n", "line 3", "fields");
    expect_error("routes:\n  - name: x\n    matches: y\n", "line 3", "unknown key 'matches'");
    expect_error("routes:\n  - match: {measurement: m, colour: red}\n", "line 2", "colour");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_and_threshold), cmocka_unit_test(test_threshold_operators),
        cmocka_unit_test(test_deadband_per_series), cmocka_unit_test(test_window_aggregates),
        cmocka_unit_test(test_fields_and_enrich),   cmocka_unit_test(test_two_routes_copy),
        cmocka_unit_test(test_config_errors_name_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
