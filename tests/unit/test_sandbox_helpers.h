/*
 * Shared by the sandbox tests: a tiny real root filesystem (Debian's busybox-static with one
 * symlink per applet, an /etc/passwd and /etc/group with a non-root user) built in a temp dir,
 * a snapshot of a tree to prove the sandbox never changed it, and running a command in a sandbox
 * with its stdout captured. The tests need root (namespaces, mounts), as CI has.
 */
#ifndef TEST_SANDBOX_HELPERS_H
#define TEST_SANDBOX_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#define BUSYBOX "/bin/busybox"

static inline int tsb_run_sh(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static inline void tsb_write(const char *root, const char *rel, const char *data)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    if (!f) abort();
    fputs(data, f);
    fclose(f);
}

/* Builds the busybox rootfs; returns a malloc'd path (a fresh dir under /tmp). */
static inline char *tsb_make_rootfs(void)
{
    char *dir = strdup("/tmp/test-sandbox-rootfs-XXXXXX");
    if (!mkdtemp(dir)) abort();
    char cmd[8192];
    snprintf(
        cmd, sizeof cmd,
        "set -e; cd %s; mkdir -p bin etc data/sub home/app; cp " BUSYBOX " bin/busybox;"
        "for a in $(bin/busybox --list); do [ \"$a\" = busybox ] || ln -s busybox bin/$a; done;"
        "echo hi > etc/target; ln -s target etc/link; echo x > data/file; chown 1000:1000 home/app",
        dir);
    if (tsb_run_sh(cmd) != 0) abort();
    tsb_write(dir, "etc/passwd",
              "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n");
    tsb_write(dir, "etc/group", "root:x:0:\napp:x:1000:\nextra:x:2000:app\n");
    return dir;
}

static inline void tsb_remove(const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tsb_run_sh(cmd);
}

/* A listing of the tree (paths, types, sizes, modes) to compare before/after a run. */
static inline char *tsb_snapshot(const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && find . -printf '%%p %%y %%s %%m %%U %%G\\n' | sort", dir);
    FILE *p = popen(cmd, "r");
    if (!p) abort();
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 1024) buf = realloc(buf, cap *= 2);
    }
    pclose(p);
    buf[n] = '\0';
    return buf;
}

/* Runs argv in a new sandbox over root with opts tweaked by the caller (may be NULL) and returns
 * the exit code; the app's stdout goes to *out (malloc'd). */
static inline int tsb_run_capture(const char *root, char *const argv[], es_sandbox_opts *base,
                                  char **out)
{
    es_sandbox_opts o;
    if (base)
        o = *base;
    else
        es_sandbox_opts_init(&o);
    o.rootfs = root;
    o.argv = argv;
    int p[2];
    if (pipe(p) < 0) abort();
    o.stdout_fd = p[1];
    es_sandbox *sb = NULL;
    es_error err;
    memset(&err, 0, sizeof err);
    if (es_sandbox_start(&o, &sb, &err) < 0) {
        fprintf(stderr, "start failed: %s\n", err.msg);
        close(p[0]);
        close(p[1]);
        return -1;
    }
    close(p[1]);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(p[0], buf + n, cap - n - 1)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(p[0]);
    int code = -1;
    if (es_sandbox_wait(sb, -1, &code, &err) != 0) code = -1;
    es_sandbox_destroy(sb);
    *out = buf;
    return code;
}

/* Starts a sandbox or fails the test with the library's message. */
#define start_ok(o, sbp)                                                                           \
    do {                                                                                           \
        es_error e_ = {0};                                                                         \
        if (es_sandbox_start((o), (sbp), &e_) != 0) fail_msg("es_sandbox_start: %s", e_.msg);      \
    } while (0)

#endif
