/*
 * Identity, environment and command lookup of a container process. Runs inside init after
 * pivot_root, so every path (including absolute symlinks in the image's /etc) resolves inside the
 * container's root and can never reach the host. The passwd/group files are parsed with glibc's
 * fgetpwent_r/fgetgrent_r (plain file parsers, no NSS), the same format the image's own libc reads.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox_internal.h"

#define SB_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int parse_id(const char *s, unsigned long *out)
{
    if (!*s) return 0;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > 0x7fffffffUL) return 0;
    *out = v;
    return 1;
}

/* Looks a user up by name (or by uid when name is NULL) in /etc/passwd. Returns 1 found, 0 not. */
static int find_passwd(const char *name, uid_t uid, char **name_out, uid_t *uid_out, gid_t *gid,
                       char **home)
{
    FILE *f = fopen("/etc/passwd", "re");
    if (!f) return 0;
    struct passwd pw, *res;
    char buf[4096];
    int found = 0;
    while (fgetpwent_r(f, &pw, buf, sizeof buf, &res) == 0) {
        if (name ? strcmp(pw.pw_name, name) != 0 : pw.pw_uid != uid) continue;
        *name_out = es_xstrdup(pw.pw_name);
        *uid_out = pw.pw_uid;
        *gid = pw.pw_gid;
        *home = es_xstrdup(pw.pw_dir && *pw.pw_dir ? pw.pw_dir : "/");
        found = 1;
        break;
    }
    fclose(f);
    return found;
}

static int find_group_by_name(const char *name, gid_t *gid)
{
    FILE *f = fopen("/etc/group", "re");
    if (!f) return 0;
    struct group gr, *res;
    char buf[8192];
    int found = 0;
    while (fgetgrent_r(f, &gr, buf, sizeof buf, &res) == 0) {
        if (strcmp(gr.gr_name, name) == 0) {
            *gid = gr.gr_gid;
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static void add_group(sb_identity *id, gid_t g)
{
    for (size_t i = 0; i < id->n_groups; i++)
        if (id->groups[i] == g) return;
    id->groups = es_xrealloc(id->groups, (id->n_groups + 1) * sizeof *id->groups);
    id->groups[id->n_groups++] = g;
}

/* Supplementary groups: every /etc/group entry that lists the user as a member. */
static void add_member_groups(sb_identity *id, const char *user)
{
    FILE *f = fopen("/etc/group", "re");
    if (!f) return;
    struct group gr, *res;
    char buf[8192];
    while (fgetgrent_r(f, &gr, buf, sizeof buf, &res) == 0)
        for (char **m = gr.gr_mem; m && *m; m++)
            if (strcmp(*m, user) == 0) add_group(id, gr.gr_gid);
    fclose(f);
}

/* uid (and primary gid, home, name) from a numeric uid or a passwd name. A numeric uid with no
 * passwd entry runs with gid 0 and HOME=/, as docker does. */
static int resolve_user_part(const char *u, sb_identity *id, char **name, es_error *err)
{
    unsigned long v;
    if (parse_id(u, &v)) {
        id->uid = (uid_t)v;
        find_passwd(NULL, id->uid, name, &id->uid, &id->gid, &id->home);
        return 0;
    }
    if (!find_passwd(u, 0, name, &id->uid, &id->gid, &id->home))
        return es_err(err, ES_ERUN, "user '%s' not found in the image's /etc/passwd", u);
    return 0;
}

int sb_resolve_user(const char *spec, sb_identity *id, es_error *err)
{
    memset(id, 0, sizeof *id);
    es_cleanup_free char *copy = es_xstrdup(spec && *spec ? spec : "0");
    char *group = strchr(copy, ':');
    if (group) *group++ = '\0';
    es_cleanup_free char *name = NULL;
    if (resolve_user_part(copy, id, &name, err) < 0) return -1;
    if (group && *group) {
        unsigned long v;
        gid_t g;
        if (parse_id(group, &v))
            id->gid = (gid_t)v;
        else if (find_group_by_name(group, &g))
            id->gid = g;
        else {
            sb_identity_free(id);
            return es_err(err, ES_ERUN, "group '%s' not found in the image's /etc/group", group);
        }
    }
    if (!id->home) id->home = es_xstrdup("/");
    add_group(id, id->gid);
    if (name) add_member_groups(id, name);
    return 0;
}

void sb_identity_free(sb_identity *id)
{
    free(id->groups);
    free(id->home);
    memset(id, 0, sizeof *id);
}

static int env_has(char *const *env, const char *key)
{
    size_t n = strlen(key);
    for (; env && *env; env++)
        if (strncmp(*env, key, n) == 0 && (*env)[n] == '=') return 1;
    return 0;
}

static const char *env_get(char *const *env, const char *key)
{
    size_t n = strlen(key);
    for (; env && *env; env++)
        if (strncmp(*env, key, n) == 0 && (*env)[n] == '=') return *env + n + 1;
    return NULL;
}

char **sb_build_env(char *const *env, const char *home, const char *hostname)
{
    size_t n = 0;
    while (env && env[n])
        n++;
    char **out = es_xcalloc(n + 4, sizeof *out);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        out[k++] = es_xstrdup(env[i]);
    if (!env_has(env, "PATH")) out[k++] = es_xstrdup("PATH=" SB_DEFAULT_PATH);
    if (!env_has(env, "HOME")) out[k++] = es_xasprintf("HOME=%s", home ? home : "/");
    if (!env_has(env, "HOSTNAME")) out[k++] = es_xasprintf("HOSTNAME=%s", hostname);
    out[k] = NULL;
    return out;
}

void sb_free_strv(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* 1 regular file with an exec bit, 0 exists but is not executable, -1 missing. */
static int executable_at(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) return -1;
    return S_ISREG(st.st_mode) && (st.st_mode & 0111) ? 1 : 0;
}

char *sb_find_command(const char *argv0, char *const *env, const char *workdir, es_error *err)
{
    if (!argv0 || !*argv0) {
        es_err(err, ES_ERUN, "empty command");
        return NULL;
    }
    if (strchr(argv0, '/')) {
        char *p = argv0[0] == '/' ? es_xstrdup(argv0)
                                  : es_xasprintf("%s/%s", workdir ? workdir : "", argv0);
        int r = executable_at(p);
        if (r == 1) return p;
        free(p);
        es_err(err, ES_ERUN,
               r < 0 ? "command not found in image: %s" : "command is not executable in image: %s",
               argv0);
        return NULL;
    }
    const char *path = env_get(env, "PATH");
    es_cleanup_free char *dirs = es_xstrdup(path ? path : SB_DEFAULT_PATH);
    int seen_noexec = 0;
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *p = es_xasprintf("%s/%s", *d ? d : ".", argv0);
        int r = executable_at(p);
        if (r == 1) return p;
        if (r == 0) seen_noexec = 1;
        free(p);
    }
    es_err(err, ES_ERUN,
           seen_noexec ? "command is not executable in image: %s"
                       : "command not found in image: %s",
           argv0);
    return NULL;
}

int sb_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
    return 0;
}
