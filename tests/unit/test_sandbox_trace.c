/*
 * The tracer on real programs: busybox applets run directly (so the exact set of paths they touch
 * is known) must report exactly those paths with the right ops, including a symlink seen at both
 * ends (ptrace: the name asked for; fanotify: the file opened), probed missing paths, failed
 * execs, directory listings; a static multi-threaded, forking program built by the test proves
 * threads and children are traced; exec'd commands are traced; syscall names are collected.
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

static const char thread_prog[] =
    "#include <pthread.h>\n#include <fcntl.h>\n#include <unistd.h>\n#include "
    "<sys/stat.h>\n#include <sys/wait.h>\n"
    "static void *worker(void *a) { (void)a; struct stat st; int fd = open(\"/data/from-thread\", "
    "O_RDONLY);\n"
    "  if (fd >= 0) close(fd); stat(\"/data/stat-thread\", &st); return 0; }\n"
    "int main(void) { pthread_t t; pthread_create(&t, 0, worker, 0); pthread_join(t, 0);\n"
    "  pid_t p = fork(); if (p == 0) { struct stat st; lstat(\"/data/from-child\", &st);\n"
    "    int fd = open(\"/data/file\", O_RDONLY); if (fd >= 0) close(fd); _exit(0); }\n"
    "  int s; waitpid(p, &s, 0); return 0; }\n";

static int setup(void **state)
{
    (void)state;
    if (geteuid() != 0) return -1;
    g_root = tsb_make_rootfs();
    tsb_write(g_root, "data/from-thread", "t\n");
    char src[4096], cmd[8192];
    snprintf(src, sizeof src, "%s/../thr.c", g_root);
    FILE *f = fopen(src, "w");
    fputs(thread_prog, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cc -static -pthread -O1 -o %s/bin/thr %s && rm %s", g_root, src,
             src);
    return tsb_run_sh(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tsb_remove(g_root);
    free(g_root);
    return 0;
}

/* "path:op,op path:op ..." for every traced path, for exact comparisons. */
static char *trace_text(es_sandbox *sb)
{
    static const char *names[] = {"open", "exec", "stat", "readlink", "listdir", "missing", "dir"};
    const es_trace_path *p;
    size_t n = es_sandbox_trace_paths(sb, &p);
    size_t cap = 256, len = 0;
    char *s = calloc(1, cap);
    for (size_t i = 0; i < n; i++) {
        char item[4200];
        int k = snprintf(item, sizeof item, "%s%s:", len ? " " : "", p[i].path);
        for (unsigned b = 0, first = 1; b < 7; b++)
            if (p[i].ops & (1u << b))
                k +=
                    snprintf(item + k, sizeof item - (size_t)k, "%s%s", first ? "" : ",", names[b]),
                    first = 0;
        while (len + (size_t)k + 1 > cap)
            s = realloc(s, cap *= 2);
        memcpy(s + len, item, (size_t)k + 1);
        len += (size_t)k;
    }
    return s;
}

/* Runs argv traced to completion and returns the trace as text. */
static char *trace_of(char *const argv[], int *code)
{
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    o.rootfs = g_root;
    o.argv = argv;
    o.trace = 1;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    o.stdout_fd = o.stderr_fd = devnull;
    es_sandbox *sb = NULL;
    es_error err = {0};
    start_ok(&o, &sb);
    close(devnull);
    assert_int_equal(es_sandbox_wait(sb, -1, code, &err), 0);
    assert_false(es_sandbox_trace_overflowed(sb));
    char *t = trace_text(sb);
    es_sandbox_destroy(sb);
    return t;
}

static void open_through_symlink_reports_both_ends(void **state)
{
    (void)state;
    char *argv[] = {"/bin/cat", "/etc/link", NULL};
    int code;
    char *t = trace_of(argv, &code);
    assert_int_equal(code, 0);
    /* "/" is the chdir to the workdir; busybox is the exec'd file behind /bin/cat */
    assert_string_equal(
        t, "/:stat /bin/busybox:open,exec /bin/cat:exec /etc/link:open /etc/target:open");
    free(t);
}

static void missing_paths_and_failed_exec(void **state)
{
    (void)state;
    char *argv[] = {"/bin/cat", "/etc/nothere", "/nodir/x", NULL};
    int code;
    char *t = trace_of(argv, &code);
    assert_int_equal(code, 1);
    assert_string_equal(t, "/:stat /bin/busybox:open,exec /bin/cat:exec /etc/nothere:open,missing "
                           "/nodir/x:open,missing");
    free(t);
    char *argv2[] = {"/bin/sh", "-c", "/opt/tool --version; exit 0", NULL};
    t = trace_of(argv2, &code);
    assert_non_null(strstr(t, "/opt/tool:exec,missing"));
    free(t);
}

static void stat_readlink_and_listdir(void **state)
{
    (void)state;
    char *a1[] = {"/bin/readlink", "/etc/link", NULL};
    int code;
    char *t = trace_of(a1, &code);
    assert_int_equal(code, 0);
    assert_string_equal(t, "/:stat /bin/busybox:open,exec /bin/readlink:exec /etc/link:readlink");
    free(t);
    char *a2[] = {"/bin/ls", "/data/sub", NULL};
    t = trace_of(a2, &code);
    assert_int_equal(code, 0);
    assert_string_equal(
        t, "/:stat /bin/busybox:open,exec /bin/ls:exec /data/sub:open,stat,listdir,dir");
    free(t);
    char *a3[] = {"/bin/test", "-e", "/etc/passwd", NULL};
    t = trace_of(a3, &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(t, "/etc/passwd:stat"));
    assert_null(strstr(t, "/etc/passwd:open"));
    free(t);
}

static void threads_and_forked_children_are_traced(void **state)
{
    (void)state;
    char *argv[] = {"/bin/thr", NULL};
    int code;
    char *t = trace_of(argv, &code);
    assert_int_equal(code, 0);
    assert_string_equal(t,
                        "/:stat /bin/thr:open,exec /data/file:open /data/from-child:stat,missing "
                        "/data/from-thread:open /data/stat-thread:stat,missing");
    free(t);
}

static void exec_probes_are_traced_and_syscalls_named(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    o.rootfs = g_root;
    o.trace = 1;
    o.trace_syscalls = 1;
    es_sandbox *sb = NULL;
    es_error err = {0};
    start_ok(&o, &sb);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    char *argv[] = {"cat", "/data/file", NULL};
    int status = -1;
    assert_int_equal(es_sandbox_exec_io(sb, argv, -1, devnull, -1, 10000, &status, &err), 0);
    close(devnull);
    assert_int_equal(status, 0);
    char *t = trace_text(sb); /* read while the container still runs */
    assert_non_null(strstr(t, "/data/file:open"));
    assert_non_null(strstr(t, "/bin/cat:exec"));
    free(t);
    const char *const *names;
    size_t n = es_sandbox_trace_syscalls(sb, &names);
    int saw_execve = 0, saw_read = 0, saw_bogus = 0;
    for (size_t i = 0; i < n; i++) {
        saw_execve |= !strcmp(names[i], "execve");
        saw_read |= !strcmp(names[i], "read") || !strcmp(names[i], "sendfile");
        saw_bogus |= !strcmp(names[i], "kexec_load");
        if (i) assert_true(strcmp(names[i - 1], names[i]) < 0);
    }
    assert_true(saw_execve && saw_read);
    assert_false(saw_bogus);
    es_sandbox_destroy(sb);
}

static void untraced_sandbox_has_no_trace(void **state)
{
    (void)state;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    char *argv[] = {"/bin/cat", "/etc/target", NULL};
    o.rootfs = g_root;
    o.argv = argv;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    o.stdout_fd = devnull;
    es_sandbox *sb = NULL;
    es_error err = {0};
    start_ok(&o, &sb);
    close(devnull);
    int code;
    assert_int_equal(es_sandbox_wait(sb, -1, &code, &err), 0);
    const es_trace_path *p;
    assert_int_equal(es_sandbox_trace_paths(sb, &p), 0);
    es_sandbox_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_through_symlink_reports_both_ends),
        cmocka_unit_test(missing_paths_and_failed_exec),
        cmocka_unit_test(stat_readlink_and_listdir),
        cmocka_unit_test(threads_and_forked_children_are_traced),
        cmocka_unit_test(exec_probes_are_traced_and_syscalls_named),
        cmocka_unit_test(untraced_sandbox_has_no_trace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
