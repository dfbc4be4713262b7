/*
 * dive CI gates: .dive-ci parsing (defaults, quotes, comments, "disabled", case-insensitive keys,
 * invalid values), dive's byte-string parser, and the pass/fail comparisons.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "analyze/dive_ci.h"

static void defaults(void **state)
{
    (void)state;
    es_ci_config c;
    es_ci_config_default(&c);
    assert_string_equal(c.rules[ES_CI_LOWEST_EFFICIENCY].value, "0.9");
    assert_string_equal(c.rules[ES_CI_HIGHEST_WASTED_BYTES].value, "disabled");
    assert_string_equal(c.rules[ES_CI_HIGHEST_USER_WASTED_PERCENT].value, "0.1");
}

static void parse_file(void **state)
{
    (void)state;
    static const char y[] = "# dive ci\n"
                            "plugins: []\n"
                            "rules:\n"
                            "  # If the efficiency is measured below X%, mark as failed.\n"
                            "  lowestEfficiency: 0.95\n"
                            "  highestWastedBytes: \"20MB\"   # quoted\n"
                            "  HighestUserWastedPercent: disabled\n"
                            "  unknownRule: 3\n"
                            "other:\n"
                            "  lowestEfficiency: 0.1\n";
    es_ci_config c;
    es_ci_config_default(&c);
    es_error err = {0};
    assert_int_equal(es_ci_config_parse(&c, y, ".dive-ci", &err), 0);
    assert_string_equal(c.rules[ES_CI_LOWEST_EFFICIENCY].value, "0.95");
    assert_string_equal(c.rules[ES_CI_HIGHEST_WASTED_BYTES].value, "20MB");
    assert_string_equal(c.rules[ES_CI_HIGHEST_USER_WASTED_PERCENT].value, "disabled");
}

static void invalid_values(void **state)
{
    (void)state;
    es_ci_config c;
    es_error err = {0};
    es_ci_config_default(&c);
    assert_int_equal(es_ci_config_parse(&c, "rules:\n  lowestEfficiency: 1.5\n", "f.yml", &err),
                     -1);
    assert_int_equal(err.code, ES_EFORMAT);
    assert_non_null(strstr(err.msg, "f.yml"));
    assert_non_null(strstr(err.msg, "lowestEfficiency"));
    es_err_clear(&err);
    es_ci_config_default(&c);
    assert_int_equal(es_ci_config_parse(&c, "rules:\n  highestWastedBytes: lots\n", "f.yml", &err),
                     -1);
    es_err_clear(&err);
    es_ci_config_default(&c);
    assert_int_equal(es_ci_config_parse(&c, "rules:\n  lowestEfficiency: '0.5\n", "f.yml", &err),
                     -1);
    es_err_clear(&err);
    es_ci_config_default(&c);
    assert_int_equal(es_ci_config_parse(&c, "rules\n", "f.yml", &err), -1);
}

static void bytes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(es_ci_parse_bytes("20MB", &v), 0), assert_int_equal(v, 20000000);
    assert_int_equal(es_ci_parse_bytes("20 MiB", &v), 0), assert_int_equal(v, 20971520);
    assert_int_equal(es_ci_parse_bytes("1.5k", &v), 0), assert_int_equal(v, 1500);
    assert_int_equal(es_ci_parse_bytes("1,000", &v), 0), assert_int_equal(v, 1000);
    assert_int_equal(es_ci_parse_bytes("42", &v), 0), assert_int_equal(v, 42);
    assert_int_equal(es_ci_parse_bytes("2gi", &v), 0), assert_int_equal(v, 2147483648ULL);
    assert_int_equal(es_ci_parse_bytes("7B", &v), 0), assert_int_equal(v, 7);
    assert_int_equal(es_ci_parse_bytes("MB", &v), -1);
    assert_int_equal(es_ci_parse_bytes("5 parsecs", &v), -1);
    assert_int_equal(es_ci_parse_bytes("99999999EB", &v), -1);
}

static void evaluate(void **state)
{
    (void)state;
    es_ci_config c;
    es_ci_config_default(&c);
    es_ci_result r[ES_CI_NRULES];
    es_waste_metrics m = {.efficiency = 0.95, .wasted_bytes = 1000, .user_wasted_percent = 0.05};
    assert_int_equal(es_ci_evaluate(&c, &m, r), 1);
    assert_int_equal(r[ES_CI_LOWEST_EFFICIENCY].status, ES_CI_PASS);
    assert_int_equal(r[ES_CI_HIGHEST_WASTED_BYTES].status, ES_CI_SKIP);
    m.efficiency = 0.85;
    assert_int_equal(es_ci_evaluate(&c, &m, r), 0);
    assert_int_equal(r[ES_CI_LOWEST_EFFICIENCY].status, ES_CI_FAIL);
    assert_true(strlen(r[ES_CI_LOWEST_EFFICIENCY].message) > 0);
    m.efficiency = 0.9; /* equal to the threshold passes: dive fails only when lower */
    assert_int_equal(es_ci_evaluate(&c, &m, r), 1);
    snprintf(c.rules[ES_CI_HIGHEST_WASTED_BYTES].value, 64, "1kB");
    assert_int_equal(es_ci_evaluate(&c, &m, r), 1); /* 1000 is not > 1000 */
    m.wasted_bytes = 1001;
    assert_int_equal(es_ci_evaluate(&c, &m, r), 0);
    assert_int_equal(r[ES_CI_HIGHEST_WASTED_BYTES].status, ES_CI_FAIL);
    m.wasted_bytes = 0;
    m.user_wasted_percent = INFINITY;
    assert_int_equal(es_ci_evaluate(&c, &m, r), 0);
    assert_int_equal(r[ES_CI_HIGHEST_USER_WASTED_PERCENT].status, ES_CI_FAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults), cmocka_unit_test(parse_file), cmocka_unit_test(invalid_values),
        cmocka_unit_test(bytes),    cmocka_unit_test(evaluate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
