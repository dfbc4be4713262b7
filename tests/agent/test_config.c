/*
 * tests/agent/test_config.c: the YAML subset (maps, lists, list-of-maps, flow collections, quoting,
 * comments) and the config loader: every error names its line, env overrides the file, --set
 * overrides env, sizes and enums parse, cross-key validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/yaml.h"

static void test_yaml_shapes(void **state)
{
    (void)state;
    const char *doc = "# comment\n"
                      "a: 1\n"
                      "b: \"quoted # not a comment\"   # a comment\n"
                      "c: 'it''s'\n"
                      "d:\n"
                      "  e: true\n"
                      "  f: [x, \"y z\", 3]\n"
                      "  g: {k: v, n: 2.5}\n"
                      "list:\n"
                      "  - one\n"
                      "  - k1: v1\n"
                      "    k2: v2\n"
                      "  -\n"
                      "    nested: yes\n"
                      "same:\n"
                      "- s1\n"
                      "- s2\n"
                      "url: mqtt://1.2.3.4:1883/x\n"
                      "empty:\n"
                      "nul: ~\n";
    ea_arena a = {0};
    char err[300];
    ea_node *r = ea_yaml_parse(&a, doc, strlen(doc), err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_true(ea_node_get(r, "a")->is_int && ea_node_get(r, "a")->i == 1);
    assert_string_equal(ea_node_get(r, "b")->s, "quoted # not a comment");
    assert_string_equal(ea_node_get(r, "c")->s, "it's");
    const ea_node *d = ea_node_get(r, "d");
    assert_int_equal(ea_node_get(d, "e")->type, EA_N_BOOL);
    assert_int_equal(ea_node_count(ea_node_get(d, "f")), 3);
    assert_string_equal(ea_node_get(d, "f")->child->next->s, "y z");
    assert_true(ea_node_get(ea_node_get(d, "g"), "n")->num == 2.5);
    const ea_node *l = ea_node_get(r, "list");
    assert_int_equal(ea_node_count(l), 3);
    assert_string_equal(ea_node_get(l->child->next, "k2")->s, "v2");
    assert_string_equal(ea_node_get(l->child->next->next, "nested")->s, "yes");
    assert_int_equal(ea_node_count(ea_node_get(r, "same")), 2);
    assert_string_equal(ea_node_get(r, "url")->s, "mqtt://1.2.3.4:1883/x");
    assert_int_equal(ea_node_get(r, "empty")->type, EA_N_NULL);
    assert_int_equal(ea_node_get(r, "nul")->type, EA_N_NULL);
    ea_arena_free(&a);
}

static void yaml_error(const char *doc, const char *want)
{
    ea_arena a = {0};
    char err[300] = "";
    if (ea_yaml_parse(&a, doc, strlen(doc), err, sizeof err))
        fail_msg("accepted:\n%s", doc);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
    ea_arena_free(&a);
}

static void test_yaml_errors(void **state)
{
    (void)state;
    yaml_error("a: 1\n\tb: 2\n", "line 2: tab");
    yaml_error("a: 1\na: 2\n", "line 2: duplicate key 'a' (first at line 1)");
    yaml_error("a:\n  b: 1\n    c: 2\n", "line 3: unexpected indentation");
    yaml_error("a: &x 1\n", "line 1: anchors");
    yaml_error("a: |\n  text\n", "line 1: block scalars");
    yaml_error("a: \"open\n", "line 1: unterminated");
    yaml_error("a: [1, 2\n", "line 1: unterminated flow");
    yaml_error("a: 1\n---\nb: 2\n", "line 2: multiple documents");
    yaml_error("just text\n", "line 1: expected 'key: value'");
    yaml_error("  a: 1\n", "line 1: the document must start");
    yaml_error("- a\n- b\n", "must be a map");
}

/* An error buffer shorter than the "line N: " prefix: the message is cut there, nothing is
 * written past errlen (yfail used to vsnprintf at err + k with errlen - k wrapped around). */
static void test_yaml_error_small_buffer(void **state)
{
    (void)state;
    const char *doc = "a: 1\n\tb: 2\n";
    ea_arena a = {0};
    char err[64];
    memset(err, 'x', sizeof err);
    assert_null(ea_yaml_parse(&a, doc, strlen(doc), err, 4));
    assert_string_equal(err, "lin");
    for (size_t i = 4; i < sizeof err; i++)
        assert_int_equal(err[i], 'x');
    ea_arena_free(&a);
}

static char path[256];

static void write_file(const char *text)
{
    snprintf(path, sizeof path, "/tmp/ea-config-test-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void load_error(const char *text, const char *want)
{
    write_file(text);
    ea_config c;
    ea_config_defaults(&c);
    char err[512] = "";
    int rc = ea_config_load_file(&c, path, err, sizeof err);
    if (rc == 0)
        rc = ea_config_validate(&c, err, sizeof err);
    ea_config_free(&c);
    unlink(path);
    if (rc == 0)
        fail_msg("accepted:\n%s", text);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_config_values_and_precedence(void **state)
{
    (void)state;
    write_file("agent:\n  port: 9000\n  device_id: dev-1\nspool:\n  dir: /tmp/x\n  fsync: always\n"
               "  max_bytes: 64MiB\n  full_policy: refuse\nuplink:\n  url: mqtt://127.0.0.1:1883/t\n"
               "  keepalive_s: 10\nhttp:\n  token: s3cret\n");
    ea_config c;
    ea_config_defaults(&c);
    char err[512];
    assert_int_equal(ea_config_load_file(&c, path, err, sizeof err), 0);
    unlink(path);
    assert_string_equal(c.listen, "9000");
    assert_int_equal(c.spool.fsync_policy, EA_FSYNC_ALWAYS);
    assert_int_equal(c.spool.max_bytes, 64ull << 20);
    assert_int_equal(c.spool.full_policy, EA_FULL_REFUSE);
    assert_int_equal(c.uplink.keepalive_s, 10);
    assert_int_equal(c.uplink.max_inflight, 64); /* default kept */
    assert_string_equal(c.http_token, "s3cret");
    setenv("EDGEAGENT_SPOOL_FSYNC", "none", 1);
    setenv("EDGEAGENT_AGENT_PORT", "9100", 1);
    assert_int_equal(ea_config_apply_env(&c, err, sizeof err), 0);
    assert_int_equal(c.spool.fsync_policy, EA_FSYNC_NONE);
    assert_string_equal(c.listen, "9100");
    assert_int_equal(ea_config_set(&c, "agent.port", "9200", err, sizeof err), 0);
    assert_string_equal(c.listen, "9200");
    setenv("EDGEAGENT_SPOOL_FSYNC", "sometimes", 1);
    assert_int_equal(ea_config_apply_env(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "EDGEAGENT_SPOOL_FSYNC=sometimes: expected always, batch or none"));
    unsetenv("EDGEAGENT_SPOOL_FSYNC");
    unsetenv("EDGEAGENT_AGENT_PORT");
    assert_int_equal(ea_config_set(&c, "spool.nope", "1", err, sizeof err), -1);
    assert_int_equal(ea_config_validate(&c, err, sizeof err), 0);
    ea_config_free(&c);
}

static void test_config_errors_name_lines(void **state)
{
    (void)state;
    load_error("agent:\n  port: 1\nspool:\n  dir: /x\n  fsync: sometimes\n", "line 5: spool.fsync: expected always");
    load_error("spool:\n  dir: /x\n  max_bytes: lots\n", "line 3: spool.max_bytes: expected a size");
    load_error("spool:\n  dir: /x\n  colour: red\n", "line 3: unknown key 'spool.colour' (known: dir, fsync");
    load_error("spool:\n  dir: /x\nsppol:\n  dir: y\n", "line 3: unknown section 'sppol'");
    load_error("spool:\n  dir: /x\nagent:\n  allow_root: maybe\n", "line 4: agent.allow_root: expected true or false");
    load_error("spool:\n  dir: /x\nhttp:\n  max_connections: -3\n", "line 4: http.max_connections");
    load_error("spool:\n  dir: [a, b]\n", "line 2: spool.dir: expected a single value");
    load_error("spool:\n  dir: /x\ncontrol:\n  public_key: abc\n", "line 4: control.public_key: expected a 32-byte");
    load_error("spool:\n  dir: /x\nuplink:\n  url: ftp://x/y\n", "uplink.url 'ftp://x/y'");
    load_error("agent:\n  port: 1\n", "spool.dir is required");
    load_error("spool:\n  dir: /x\nroutes: 3\n", "line 3: routes: expected a list");
}

static void test_sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(ea_parse_size("1048576", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(ea_parse_size("512KiB", &v), 0);
    assert_int_equal(v, 512 * 1024);
    assert_int_equal(ea_parse_size("1GB", &v), 0);
    assert_int_equal(v, 1000000000);
    assert_int_equal(ea_parse_size("2 MiB", &v), 0);
    assert_int_equal(v, 2 << 20);
    assert_int_equal(ea_parse_size("-1", &v), -1);
    assert_int_equal(ea_parse_size("1XB", &v), -1);
    assert_int_equal(ea_parse_size("", &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_shapes),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_yaml_error_small_buffer),
        cmocka_unit_test(test_config_values_and_precedence),
        cmocka_unit_test(test_config_errors_name_lines),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
