/*
 * The sandbox runs real commands (Debian's static busybox) in a real root built by the test:
 * exit codes, env, workdir, user and groups, pid namespace, private network namespace, hostname,
 * /dev contents, tmpfs /tmp, the image dir left untouched, signal forwarding, exec inside a running
 * container (with timeout and a missing command), host commands in the container's netns, TCP and
 * HTTP probes against busybox httpd, and cleanup (no temp dir, no mount left on the host).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "test_sandbox_helpers.h"

static char *g_root;

static int setup(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "sandbox tests need root\n");
        return -1;
    }
    g_root = tsb_make_rootfs();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tsb_remove(g_root);
    free(g_root);
    return 0;
}

static char *run_sh(const char *script, es_sandbox_opts *o, int *code)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    char *out = NULL;
    *code = tsb_run_capture(g_root, argv, o, &out);
    return out;
}

static void exit_codes_propagate(void **state)
{
    (void)state;
    int code;
    free(run_sh("exit 7", NULL, &code));
    assert_int_equal(code, 7);
    free(run_sh("true", NULL, &code));
    assert_int_equal(code, 0);
    free(run_sh("kill -KILL $$", NULL, &code));
    assert_int_equal(code, 137);
}

static void env_and_workdir(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    char *env[] = {"FOO=bar baz", NULL};
    o.env = env;
    o.workdir = "/srv/app";
    int code;
    char *out = run_sh("echo \"$FOO\"; pwd; echo $HOME; echo $PATH", &o, &code);
    assert_int_equal(code, 0);
    assert_string_equal(
        out,
        "bar baz\n/srv/app\n/root\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    free(out);
}

static void user_and_groups_switch(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    o.user = "app";
    int code;
    char *out = run_sh("id -u; id -g; id -G; echo $HOME", &o, &code);
    assert_int_equal(code, 0);
    assert_string_equal(out, "1000\n1000\n1000 2000\n/home/app\n");
    free(out);
    o.user = "4242:77";
    out = run_sh("id -u; id -g", &o, &code);
    assert_string_equal(out, "4242\n77\n");
    free(out);
    o.user = "nosuchuser";
    char *argv[] = {"true", NULL};
    o.rootfs = g_root;
    o.argv = argv;
    es_sandbox *sb = NULL;
    es_error err = {0};
    assert_int_equal(es_sandbox_start(&o, &sb, &err), -1);
    assert_int_equal(err.code, ES_ERUN);
    assert_non_null(strstr(err.msg, "nosuchuser"));
}

static void pid_namespace_and_hostname(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    o.hostname = "box1";
    int code;
    /* init is pid 1, the app pid 2; only our processes are visible */
    /* the glob is expanded by sh itself (no fork): exactly init and the app exist */
    char *out = run_sh("echo $$; hostname; cat /etc/hostname; echo /proc/[0-9]*", &o, &code);
    assert_int_equal(code, 0);
    assert_string_equal(out, "2\nbox1\nbox1\n/proc/1 /proc/2\n");
    free(out);
}

static void private_network_has_only_lo(void **state)
{
    (void)state;
    int code;
    char *out = run_sh(
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; cat /sys/class/net/lo/operstate", NULL,
        &code);
    assert_int_equal(code, 0);
    assert_string_equal(out, "lo\nunknown\n");
    free(out);
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    o.net = ES_NET_NONE; /* no interface up at all */
    out = run_sh("ip link show lo | grep -c UP", &o, &code);
    assert_string_equal(out, "0\n");
    free(out);
}

static void proc_sys_read_only_caps_cut_low_ports_for_users(void **state)
{
    (void)state;
    int code;
    /* root in the container cannot change host kernel knobs */
    char *out =
        run_sh("echo '|/tmp/x' > /proc/sys/kernel/core_pattern 2>/dev/null; echo $?", NULL, &code);
    assert_string_equal(out, "1\n");
    free(out);
    /* the capability bounding set is docker's default (0xa80425fb): no mount for root */
    out = run_sh(
        "grep CapBnd /proc/self/status; mkdir -p /m; mount -t tmpfs t /m 2>/dev/null; echo $?",
        NULL, &code);
    assert_string_equal(out, "CapBnd:\t00000000a80425fb\n1\n");
    free(out);
    /* as docker, a non-root app may bind port 80 in its own netns */
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    o.user = "app";
    out = run_sh(
        "httpd -p 127.0.0.1:80 -h /etc || exit 9; for i in $(seq 100); do "
        "wget -q -O - http://127.0.0.1:80/target 2>/dev/null && exit 0; sleep 0.1; done; exit 8",
        &o, &code);
    assert_int_equal(code, 0);
    assert_string_equal(out, "hi\n");
    free(out);
}

static void dev_has_only_the_minimal_nodes(void **state)
{
    (void)state;
    int code;
    char *out =
        run_sh("ls /dev | tr '\\n' ' '; echo; stat -c '%t,%T' /dev/null /dev/zero /dev/urandom; "
               "echo x > /dev/null && head -c 3 /dev/zero | wc -c",
               NULL, &code);
    assert_int_equal(code, 0);
    assert_string_equal(out, "fd full null ptmx pts random shm stderr stdin stdout tty urandom "
                             "zero \n1,3\n1,5\n1,9\n3\n");
    free(out);
}

static void tmp_is_tmpfs_and_rootfs_is_untouched(void **state)
{
    (void)state;
    char *before = tsb_snapshot(g_root);
    int code;
    char *out =
        run_sh("echo x > /tmp/f && cat /tmp/f && grep -c ' /tmp tmpfs ' /proc/mounts;"
               "echo new > /newfile; rm /etc/target; rm -r /data; chmod 700 /bin; ls /newfile",
               NULL, &code);
    assert_int_equal(code, 0);
    assert_string_equal(out, "x\n1\n/newfile\n");
    free(out);
    char *after = tsb_snapshot(g_root);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void sigterm_is_forwarded(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    char *argv[] = {"sleep", "100", NULL};
    o.rootfs = g_root;
    o.argv = argv;
    es_sandbox *sb = NULL;
    es_error err = {0};
    start_ok(&o, &sb);
    assert_true(es_sandbox_alive(sb));
    int code = 0;
    assert_int_equal(es_sandbox_wait(sb, 100, &code, &err), 1); /* still running */
    assert_int_equal(es_sandbox_signal(sb, SIGTERM), 0);
    assert_int_equal(es_sandbox_wait(sb, -1, &code, &err), 0);
    assert_int_equal(code, 143);
    assert_false(es_sandbox_alive(sb));
    es_sandbox_destroy(sb);
}

static void missing_command_is_an_error(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    char *argv[] = {"nginx", "-g", "daemon off;", NULL};
    o.rootfs = g_root;
    o.argv = argv;
    es_sandbox *sb = NULL;
    es_error err = {0};
    assert_int_equal(es_sandbox_start(&o, &sb, &err), -1);
    assert_null(sb);
    assert_int_equal(err.code, ES_ERUN);
    assert_string_equal(err.msg, "command not found in image: nginx");
}

static void exec_in_running_container(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    o.rootfs = g_root;
    o.argv = NULL; /* idle: only exec'd commands run */
    o.user = "app";
    es_sandbox *sb = NULL;
    es_error err = {0};
    start_ok(&o, &sb);
    int p[2];
    assert_int_equal(pipe(p), 0);
    char *a1[] = {"sh", "-c", "echo $$ $(id -u) > /tmp/shared; id -u; exit 5", NULL};
    int status = -1;
    assert_int_equal(es_sandbox_exec_io(sb, a1, -1, p[1], -1, 5000, &status, &err), 0);
    close(p[1]);
    char buf[64] = {0};
    assert_true(read(p[0], buf, sizeof buf - 1) > 0);
    close(p[0]);
    assert_string_equal(buf, "1000\n");
    assert_int_equal(status, 5);
    /* same container: a second exec sees the first one's /tmp file */
    char *a2[] = {"grep", "-q", " 1000$", "/tmp/shared", NULL};
    assert_int_equal(es_sandbox_exec(sb, a2, 5000, &status, &err), 0);
    assert_int_equal(status, 0);
    char *a3[] = {"sleep", "30", NULL};
    assert_int_equal(es_sandbox_exec(sb, a3, 200, &status, &err), 1);
    assert_int_equal(status, 137);
    char *a4[] = {"python3", NULL};
    assert_int_equal(es_sandbox_exec(sb, a4, 200, &status, &err), -1);
    assert_string_equal(err.msg, "command not found in image: python3");
    assert_true(es_sandbox_alive(sb));
    assert_int_equal(es_sandbox_signal(sb, SIGTERM), 0);
    int code = 0;
    assert_int_equal(es_sandbox_wait(sb, -1, &code, &err), 0);
    assert_int_equal(code, 143);
    es_sandbox_destroy(sb);
}

static void http_probe_and_host_command_in_netns(void **state)
{
    (void)state;
    tsb_write(g_root, "data/index.html", "hello from busybox httpd\n");
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    char *argv[] = {"httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/data", NULL};
    o.rootfs = g_root;
    o.argv = argv;
    es_sandbox *a = NULL, *b = NULL;
    es_error err = {0};
    start_ok(&o, &a);
    /* same port in a second sandbox: each has its own network namespace */
    start_ok(&o, &b);
    long status = 0;
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(es_sandbox_http_get(a, 8080, "/index.html", 10000, &status, &body, &len, &err),
                     0);
    assert_int_equal(status, 200);
    assert_string_equal(body, "hello from busybox httpd\n");
    free(body);
    assert_int_equal(es_sandbox_http_get(b, 8080, "/nothere", 10000, &status, NULL, NULL, &err), 0);
    assert_int_equal(status, 404);
    int fd = es_sandbox_connect_tcp(b, 8080, 5000, &err);
    assert_true(fd >= 0);
    close(fd);
    /* nothing listens on 8081: not ready within the timeout */
    es_error e2 = {0};
    assert_int_equal(es_sandbox_connect_tcp(a, 8081, 300, &e2), -1);
    assert_int_equal(e2.code, ES_EPROBE);
    /* a host command in the container's netns sees only lo and reaches the app */
    char *h1[] = {"sh", "-c", "test \"$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ')\" = lo",
                  NULL};
    int code = -1;
    assert_int_equal(es_sandbox_host_cmd(a, h1, 10000, &code, &err), 0);
    assert_int_equal(code, 0);
    char *h2[] = {"curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8080/index.html", NULL};
    assert_int_equal(es_sandbox_host_cmd(a, h2, 10000, &code, &err), 0);
    assert_int_equal(code, 0);
    char *h3[] = {"sleep", "10", NULL};
    assert_int_equal(es_sandbox_host_cmd(a, h3, 100, &code, &err), 1);
    es_sandbox_destroy(a);
    es_sandbox_destroy(b);
}

static void app_exit_fails_readiness(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    char *argv[] = {"sh", "-c", "exit 3", NULL};
    o.rootfs = g_root;
    o.argv = argv;
    es_sandbox *sb = NULL;
    es_error err = {0};
    start_ok(&o, &sb);
    assert_int_equal(es_sandbox_connect_tcp(sb, 8080, 10000, &err), -1);
    assert_int_equal(err.code, ES_EPROBE);
    assert_string_equal(err.msg, "the app exited with code 3 before 127.0.0.1:8080 was ready");
    es_sandbox_destroy(sb);
}

static void nothing_left_behind(void **state)
{
    (void)state;
    char tmpdir[] = "/tmp/test-sandbox-tmpdir-XXXXXX";
    assert_non_null(mkdtemp(tmpdir));
    char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", tmpdir, 1);
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    char *argv[] = {"sleep", "100", NULL};
    o.rootfs = g_root;
    o.argv = argv;
    es_sandbox *sb = NULL;
    start_ok(&o, &sb);
    int pid = es_sandbox_pid(sb);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) = 1",
             tmpdir); /* the state dir, while it runs */
    assert_int_equal(tsb_run_sh(cmd), 0);
    es_sandbox_destroy(sb); /* killed while running */
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", tmpdir);
    assert_int_equal(tsb_run_sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "! grep -q -e '%s' -e '%s' /proc/self/mountinfo", tmpdir, g_root);
    assert_int_equal(tsb_run_sh(cmd), 0);
    assert_int_equal(kill(pid, 0), -1); /* init is gone */
    rmdir(tmpdir);
    if (old)
        setenv("TMPDIR", old, 1);
    else
        unsetenv("TMPDIR");
    free(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exit_codes_propagate),
        cmocka_unit_test(env_and_workdir),
        cmocka_unit_test(user_and_groups_switch),
        cmocka_unit_test(pid_namespace_and_hostname),
        cmocka_unit_test(private_network_has_only_lo),
        cmocka_unit_test(proc_sys_read_only_caps_cut_low_ports_for_users),
        cmocka_unit_test(dev_has_only_the_minimal_nodes),
        cmocka_unit_test(tmp_is_tmpfs_and_rootfs_is_untouched),
        cmocka_unit_test(sigterm_is_forwarded),
        cmocka_unit_test(missing_command_is_an_error),
        cmocka_unit_test(exec_in_running_container),
        cmocka_unit_test(http_probe_and_host_command_in_netns),
        cmocka_unit_test(app_exit_fails_readiness),
        cmocka_unit_test(nothing_left_behind),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
