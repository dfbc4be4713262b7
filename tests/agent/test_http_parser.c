/*
 * tests/agent/test_http_parser.c: the ingest server's request-head parser against valid requests
 * and hostile ones (smuggling combinations, oversized heads, folding, bad versions, huge lengths,
 * every truncation of a valid head).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "inputs/http_parser.h"

static int parse(const char *s, ea_http_req *r, int *status)
{
    const char *why;
    return ea_http_parse_head(s, strlen(s), 8192, 1 << 20, r, status, &why);
}

static void test_valid_post_with_body(void **state)
{
    (void)state;
    ea_http_req r;
    int st = 0;
    const char *req = "POST /v1/ingest?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
                      "Authorization: Bearer tok\r\nExpect: 100-continue\r\n\r\n{\"a\":1}";
    assert_int_equal(parse(req, &r, &st), 1);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/v1/ingest");
    assert_int_equal(r.content_length, 12);
    assert_int_equal(r.keep_alive, 1);
    assert_int_equal(r.expect_continue, 1);
    assert_string_equal(r.auth, "Bearer tok");
    assert_int_equal(r.head_len, strlen(req) - 7);
}

static void test_http10_and_connection_close(void **state)
{
    (void)state;
    ea_http_req r;
    int st;
    assert_int_equal(parse("GET /health HTTP/1.0\r\n\r\n", &r, &st), 1);
    assert_int_equal(r.keep_alive, 0);
    assert_int_equal(parse("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r, &st), 1);
    assert_int_equal(r.keep_alive, 1);
    assert_int_equal(parse("GET /health HTTP/1.1\r\nConnection: foo, Close\r\n\r\n", &r, &st), 1);
    assert_int_equal(r.keep_alive, 0);
}

static void test_every_truncation_needs_more(void **state)
{
    (void)state;
    const char *req = "POST /v1/ingest HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    ea_http_req r;
    int st;
    const char *why;
    for (size_t n = 0; n < strlen(req); n++)
        assert_int_equal(ea_http_parse_head(req, n, 8192, 100, &r, &st, &why), 0);
    assert_int_equal(ea_http_parse_head(req, strlen(req), 8192, 100, &r, &st, &why), 1);
}

static void expect_status(const char *req, int want)
{
    ea_http_req r;
    int st = 0;
    assert_int_equal(parse(req, &r, &st), -1);
    assert_int_equal(st, want);
}

static void test_hostile_heads(void **state)
{
    (void)state;
    expect_status("POST /v1/ingest HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_status("POST /v1/ingest HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411);
    expect_status("POST /v1/ingest HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
    expect_status("POST /v1/ingest HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
    expect_status("POST /v1/ingest HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
    expect_status("POST /v1/ingest HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400);
    expect_status("POST /v1/ingest HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
    expect_status("POST /v1/ingest HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413);
    expect_status("GET /x HTTP/2.0\r\n\r\n", 505);
    expect_status("GET /x FOO/1.1\r\n\r\n", 400);
    expect_status("GET x HTTP/1.1\r\n\r\n", 400);
    expect_status("GET /x HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400);
    expect_status("GET /x HTTP/1.1\r\nBad Header: a\r\n\r\n", 400);
    expect_status("GET /x HTTP/1.1\r\nNoColon\r\n\r\n", 400);
    expect_status("GET /x HTTP/1.1\r\nX: a\001b\r\n\r\n", 400);
    expect_status("GET /x\x7f HTTP/1.1\r\n\r\n", 400);
    expect_status("\r\n", 400);
    expect_status("GET /x HTTP/1.1\r\nExpect: something\r\n\r\n", 417);
}

static void test_head_limits(void **state)
{
    (void)state;
    char big[9000];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /x HTTP/1.1\r\nX: ", 20);
    ea_http_req r;
    int st;
    const char *why;
    assert_int_equal(ea_http_parse_head(big, sizeof big, 8192, 100, &r, &st, &why), -1);
    assert_int_equal(st, 431);
    char many[4096] = "GET /x HTTP/1.1\r\n";
    for (int i = 0; i < 40; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    expect_status(many, 431);
    char path[600] = "GET /";
    memset(path + 5, 'p', 400);
    strcpy(path + 405, " HTTP/1.1\r\n\r\n");
    expect_status(path, 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_post_with_body),  cmocka_unit_test(test_http10_and_connection_close),
        cmocka_unit_test(test_every_truncation_needs_more), cmocka_unit_test(test_hostile_heads),
        cmocka_unit_test(test_head_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
