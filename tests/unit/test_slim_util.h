/* Small helpers shared by the slim unit tests: temp dirs and files in a fake root filesystem. */
#ifndef TEST_SLIM_UTIL_H
#define TEST_SLIM_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char *t_mkdtemp(void)
{
    char *d = strdup("/tmp/es-slim-test-XXXXXX");
    if (!mkdtemp(d)) abort();
    return d;
}

static inline void t_rm_rf(const char *d)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) abort();
}

static inline void t_mkdirs(const char *root, const char *rel)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s'", root, rel);
    if (system(cmd) != 0) abort();
}

static inline void t_write(const char *root, const char *rel, const char *text, int mode)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
    chmod(p, (mode_t)mode);
}

static inline void t_symlink(const char *root, const char *rel, const char *target)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (symlink(target, p) != 0) abort();
}

static inline void t_sh(const char *cmd)
{
    if (system(cmd) != 0) {
        fprintf(stderr, "command failed: %s\n", cmd);
        abort();
    }
}

#endif
