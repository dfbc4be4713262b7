/*
 * tests/agent/test_lineproto.c: InfluxDB line protocol and JSON -> record conversion: escapes,
 * field types, timestamps, comments, and invalid lines with the byte offset in the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "inputs/convert.h"

static ea_record rec;

static int lp(const char *s, char *err)
{
    ea_rec_init(&rec, "test", 0);
    return ea_lineproto_parse(s, strlen(s), &rec, err, 200);
}

static void test_types_and_timestamp(void **state)
{
    (void)state;
    char err[200];
    assert_int_equal(lp("cpu,host=a,region=eu usage=0.5,n=3i,u=7u,ok=t,bad=FALSE,s=\"hi \\\"x\\\"\" 1700000000000000000", err), 1);
    assert_memory_equal(rec.measurement, "cpu", 3);
    assert_int_equal(rec.ntags, 2);
    assert_string_equal(ea_rec_tag(&rec, "region")->val, "eu");
    assert_int_equal(rec.nfields, 6);
    ea_field *f = ea_rec_field(&rec, "usage");
    assert_int_equal(f->type, EA_V_FLOAT);
    assert_true(f->f == 0.5);
    assert_int_equal(ea_rec_field(&rec, "n")->type, EA_V_INT);
    assert_int_equal(ea_rec_field(&rec, "n")->i, 3);
    assert_int_equal(ea_rec_field(&rec, "u")->i, 7);
    assert_int_equal(ea_rec_field(&rec, "ok")->b, 1);
    assert_int_equal(ea_rec_field(&rec, "bad")->type, EA_V_BOOL);
    assert_int_equal(ea_rec_field(&rec, "bad")->b, 0);
    assert_string_equal(ea_rec_field(&rec, "s")->str, "hi \"x\"");
    assert_int_equal(rec.has_ts, 1);
    assert_true(rec.ts == 1700000000000000000LL);
}

static void test_escapes(void **state)
{
    (void)state;
    char err[200];
    assert_int_equal(lp("my\\ meas\\,x,t\\=k=v\\ 1\\,2 f\\ 1=1", err), 1);
    assert_memory_equal(rec.measurement, "my meas,x", 9);
    assert_string_equal(rec.tags[0].key, "t=k");
    assert_string_equal(rec.tags[0].val, "v 1,2");
    assert_string_equal(rec.fields[0].key, "f 1");
}

static void test_blank_and_comment(void **state)
{
    (void)state;
    char err[200];
    assert_int_equal(lp("", err), 0);
    assert_int_equal(lp("   ", err), 0);
    assert_int_equal(lp("# a comment", err), 0);
    assert_int_equal(lp("m v=1\r", err), 1);
}

static void test_invalid_lines(void **state)
{
    (void)state;
    static const char *bad[] = {"m",           "m ",          ",t=1 v=1",    "m,t v=1",     "m,t= v=1",
                                "m v=",        "m v=abc",     "m v=1i2",     "m v=\"open",  "m v=1 notanumber",
                                "m v=1 12 13", "m =1",        "m v=1,",      "m v=-1u",     "m v=1.5i",
                                "m v=i",       "m v=1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[200] = "";
        if (lp(bad[i], err) != -1)
            fail_msg("accepted invalid line '%s'", bad[i]);
        assert_non_null(strstr(err, "byte"));
    }
}

static void test_json_object_to_record(void **state)
{
    (void)state;
    ea_arena a = {0};
    char err[200];
    const char *doc = "{\"measurement\":\"env\",\"device\":\"d1\",\"temp\":21.5,\"n\":3,\"on\":true,\"meta\":{\"x\":[1,2]},"
                      "\"nothing\":null,\"tags\":{\"site\":\"s\",\"floor\":2},\"fields\":{\"hum\":40},\"ts\":123}";
    ea_node *n = ea_json_parse(&a, doc, strlen(doc), err, sizeof err);
    assert_non_null(n);
    ea_rec_init(&rec, "http", 0);
    assert_int_equal(ea_json_to_record(n, &rec, err, sizeof err), 0);
    assert_memory_equal(rec.measurement, "env", 3);
    assert_string_equal(ea_rec_tag(&rec, "device")->val, "d1");
    assert_string_equal(ea_rec_tag(&rec, "floor")->val, "2");
    assert_int_equal(ea_rec_field(&rec, "n")->type, EA_V_INT);
    assert_int_equal(ea_rec_field(&rec, "meta")->type, EA_V_RAW);
    assert_null(ea_rec_field(&rec, "nothing"));
    assert_int_equal(ea_rec_field(&rec, "hum")->i, 40);
    assert_true(rec.has_ts && rec.ts == 123);
    ea_buf b = {0};
    assert_int_equal(ea_rec_to_json(&rec, 9, &b), 0);
    ea_buf_putc(&b, 0);
    assert_non_null(strstr(b.data, "\"meta\":{\"x\":[1,2]}"));
    assert_non_null(strstr(b.data, "\"seq\":9"));
    /* the encoded record is itself valid JSON */
    ea_arena a2 = {0};
    assert_non_null(ea_json_parse(&a2, b.data, b.len - 1, err, sizeof err));
    ea_arena_free(&a2);
    ea_buf_free(&b);
    const char *nofields = "{\"device\":\"d1\"}";
    n = ea_json_parse(&a, nofields, strlen(nofields), err, sizeof err);
    ea_rec_init(&rec, "http", 0);
    assert_int_equal(ea_json_to_record(n, &rec, err, sizeof err), -1);
    ea_arena_free(&a);
}

static void test_json_parser_hostile(void **state)
{
    (void)state;
    static const char *bad[] = {"",          "{",          "{\"a\":}",    "{\"a\":1,}", "[1,]",       "{'a':1}",
                                "[1 2]",     "\"\\x\"",    "\"\\ud800\"", "01",         "1.",         "-",
                                "tru",       "nan",        "{\"a\":1}x",  "\"a\nb\"",   "[1e400]"};
    ea_arena a = {0};
    char err[200];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (ea_json_parse(&a, bad[i], strlen(bad[i]), err, sizeof err))
            fail_msg("accepted invalid JSON '%s'", bad[i]);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_null(ea_json_parse(&a, deep, 200, err, sizeof err));
    assert_non_null(strstr(err, "nesting"));
    const char *ok = "{\"s\":\"\\u00e9\\ud83d\\ude00\\n\"}";
    ea_node *n = ea_json_parse(&a, ok, strlen(ok), err, sizeof err);
    assert_non_null(n);
    assert_string_equal(ea_node_get(n, "s")->s, "\xc3\xa9\xf0\x9f\x98\x80\n");
    ea_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_and_timestamp), cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_blank_and_comment),   cmocka_unit_test(test_invalid_lines),
        cmocka_unit_test(test_json_object_to_record), cmocka_unit_test(test_json_parser_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
