/*
 * From an image to something the sandbox can run: the command line (docker's Entrypoint + Cmd
 * rules), env, workdir and user from the config; the platform check; unpacking into a temp dir
 * and removing it again. Shared by `run` and `slim`.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/apply.h"
#include "sandbox/sandbox.h"

static size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

/* Appends the strings of a JSON array (non-strings are skipped: the config is untrusted). */
static void append_json_strings(char ***v, size_t *n, json_t *arr)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (!json_is_string(e)) continue;
        *v = es_xrealloc(*v, (*n + 2) * sizeof **v);
        (*v)[(*n)++] = es_xstrdup(json_string_value(e));
        (*v)[*n] = NULL;
    }
}

static void append_strv(char ***v, size_t *n, char *const *src)
{
    for (size_t i = 0; src && src[i]; i++) {
        *v = es_xrealloc(*v, (*n + 2) * sizeof **v);
        (*v)[(*n)++] = es_xstrdup(src[i]);
        (*v)[*n] = NULL;
    }
}

int es_run_config_from_image(const es_image *img, char *const *cmd_override,
                             const char *entrypoint_override, es_run_config *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = 0;
    out->argv = es_xcalloc(1, sizeof *out->argv);
    if (entrypoint_override) {
        if (*entrypoint_override) {
            char *const ep[] = {(char *)entrypoint_override, NULL};
            append_strv(&out->argv, &n, ep);
        }
    } else {
        append_json_strings(&out->argv, &n, es_config_entrypoint(img));
    }
    /* as docker: an entrypoint override also drops the image's Cmd */
    if (cmd_override && strv_len(cmd_override))
        append_strv(&out->argv, &n, cmd_override);
    else if (!entrypoint_override)
        append_json_strings(&out->argv, &n, es_config_cmd(img));
    if (n == 0) {
        es_run_config_free(out);
        return es_err(err, ES_ERUN, "image %s has no entrypoint or cmd: give a command after --",
                      img->ref.path);
    }
    size_t ne = 0;
    out->env = es_xcalloc(1, sizeof *out->env);
    append_json_strings(&out->env, &ne, es_config_env(img));
    const char *wd = es_config_workdir(img), *user = es_config_user(img);
    out->workdir = wd && *wd ? es_xstrdup(wd) : NULL;
    out->user = user && *user ? es_xstrdup(user) : NULL;
    return 0;
}

void es_run_config_free(es_run_config *c)
{
    for (size_t i = 0; c->argv && c->argv[i]; i++)
        free(c->argv[i]);
    for (size_t i = 0; c->env && c->env[i]; i++)
        free(c->env[i]);
    free(c->argv);
    free(c->env);
    free(c->workdir);
    free(c->user);
    memset(c, 0, sizeof *c);
}

int es_sandbox_check_platform(const es_image *img, es_error *err)
{
    char os[32], arch[32], variant[32];
    es_host_platform(os, arch, variant);
    if (!img->arch[0] ||
        (strcmp(img->arch, arch) == 0 && (!img->os[0] || strcmp(img->os, os) == 0)))
        return 0;
    return es_err(
        err, ES_EUNSUPPORTED, "image is %s/%s%s%s, this host is %s/%s: it cannot run here",
        img->os[0] ? img->os : "?", img->arch, img->variant[0] ? "/" : "", img->variant, os, arch);
}

int es_sandbox_unpack_temp(es_image *img, char **dir_out, es_progress *prog, es_error *err)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = es_xasprintf("%s/edgeslim-rootfs-XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
    if (!mkdtemp(dir)) {
        es_err_sys(err, ES_EIO, "creating %s", dir);
        free(dir);
        return -1;
    }
    es_apply_opts o;
    es_apply_opts_default(&o);
    o.allow_devices = geteuid() == 0;
    o.skip_devices = !o.allow_devices;
    if (es_unpack_image(img, dir, &o, NULL, prog, err) < 0) {
        es_remove_tree(dir, NULL);
        free(dir);
        return -1;
    }
    *dir_out = dir;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) < 0 && errno != ENOENT) return -1;
    return 0;
}

int es_remove_tree(const char *dir, es_error *err)
{
    if (!dir) return 0;
    if (nftw(dir, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
        return es_err_sys(err, ES_EIO, "removing %s", dir);
    return 0;
}
