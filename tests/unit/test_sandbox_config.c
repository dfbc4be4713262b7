/*
 * From an image config to what the sandbox runs: docker's Entrypoint + Cmd rules (a command after
 * -- replaces Cmd, an entrypoint override replaces Entrypoint and drops Cmd, '' clears it), env,
 * workdir, user, the "no entrypoint or cmd" error, untrusted non-string array items, and the
 * platform check's message for an image of another architecture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sandbox/sandbox.h"

static es_image *image_with(const char *config_json, const char *arch)
{
    es_image *img = calloc(1, sizeof *img);
    json_error_t je;
    img->config = json_loads(config_json, 0, &je);
    assert_non_null(img->config);
    img->ref.path = "test.tar";
    snprintf(img->os, sizeof img->os, "linux");
    snprintf(img->arch, sizeof img->arch, "%s", arch);
    return img;
}

static void free_image(es_image *img)
{
    json_decref(img->config);
    free(img);
}

static char *joined(char **v)
{
    static char buf[1024];
    buf[0] = '\0';
    for (size_t i = 0; v && v[i]; i++) {
        if (i) strcat(buf, "|");
        strcat(buf, v[i]);
    }
    return buf;
}

static void entrypoint_and_cmd_rules(void **state)
{
    (void)state;
    es_image *img = image_with(
        "{\"config\":{\"Entrypoint\":[\"/server\"],\"Cmd\":[\"8080\", 5],"
        "\"Env\":[\"PATH=/bin\",\"A=b\"],\"WorkingDir\":\"/app\",\"User\":\"65532:65532\"}}",
        "amd64");
    es_run_config c;
    es_error err = {0};
    assert_int_equal(es_run_config_from_image(img, NULL, NULL, &c, &err), 0);
    assert_string_equal(joined(c.argv), "/server|8080"); /* the non-string 5 is skipped */
    assert_string_equal(joined(c.env), "PATH=/bin|A=b");
    assert_string_equal(c.workdir, "/app");
    assert_string_equal(c.user, "65532:65532");
    es_run_config_free(&c);
    char *cmd[] = {"9090", "-v", NULL};
    assert_int_equal(es_run_config_from_image(img, cmd, NULL, &c, &err), 0);
    assert_string_equal(joined(c.argv), "/server|9090|-v");
    es_run_config_free(&c);
    char *sh[] = {"sh", "-c", "true", NULL};
    assert_int_equal(es_run_config_from_image(img, sh, "", &c, &err), 0);
    assert_string_equal(joined(c.argv), "sh|-c|true");
    es_run_config_free(&c);
    assert_int_equal(es_run_config_from_image(img, NULL, "/bin/other", &c, &err), 0);
    assert_string_equal(joined(c.argv), "/bin/other");
    es_run_config_free(&c);
    assert_int_equal(es_run_config_from_image(img, NULL, "", &c, &err), -1);
    assert_int_equal(err.code, ES_ERUN);
    free_image(img);
}

static void no_entrypoint_or_cmd(void **state)
{
    (void)state;
    es_image *img = image_with("{\"config\":{\"Env\":[\"PATH=/bin\"]}}", "amd64");
    es_run_config c;
    es_error err = {0};
    assert_int_equal(es_run_config_from_image(img, NULL, NULL, &c, &err), -1);
    assert_int_equal(err.code, ES_ERUN);
    assert_string_equal(err.msg,
                        "image test.tar has no entrypoint or cmd: give a command after --");
    assert_null(c.argv);
    free_image(img);
}

static void other_architecture_is_refused(void **state)
{
    (void)state;
    char os[32], arch[32], variant[32];
    es_host_platform(os, arch, variant);
    es_image *same = image_with("{}", arch);
    es_error err = {0};
    assert_int_equal(es_sandbox_check_platform(same, &err), 0);
    free_image(same);
    const char *other = strcmp(arch, "arm64") ? "arm64" : "amd64";
    es_image *img = image_with("{}", other);
    assert_int_equal(es_sandbox_check_platform(img, &err), -1);
    assert_int_equal(err.code, ES_EUNSUPPORTED);
    char want[256];
    snprintf(want, sizeof want, "image is linux/%s, this host is linux/%s: it cannot run here",
             other, arch);
    assert_string_equal(err.msg, want);
    free_image(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entrypoint_and_cmd_rules),
        cmocka_unit_test(no_entrypoint_or_cmd),
        cmocka_unit_test(other_architecture_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
