/*
 * control/apply.c: verify -> parse -> check -> build -> swap -> report (see apply.h). Nothing in
 * the running agent changes until the new pipeline has been built completely, so a bad document
 * leaves the agent exactly as it was.
 */
#include "control/apply.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/verify.h"
#include "util/log.h"

static int refuse(ea_agent *a, char *err, size_t errlen, const char *why, int64_t version)
{
    ea_metrics *m = ea_agent_metrics(a);
    m->config_rejected++;
    snprintf(err, errlen, "%s", why);
    ea_buf b = {0};
    ea_buf_puts(&b, "{\"status\":\"rejected\",\"version\":");
    ea_buf_put_i64(&b, version);
    ea_buf_puts(&b, ",\"error\":");
    ea_buf_put_json_string(&b, why, strlen(why));
    ea_buf_putc(&b, '}');
    ea_agent_report(a, "config", b.data, b.len);
    ea_buf_free(&b);
    return -1;
}

/* Writes the accepted document to DIR/control.doc via a temp file + rename. */
static void persist(const ea_agent *a, const void *doc, size_t len)
{
    const char *dir = ea_agent_config(a)->spool.dir;
    char tmp[4096], dst[4096];
    snprintf(tmp, sizeof tmp, "%s/control.doc.tmp", dir);
    snprintf(dst, sizeof dst, "%s/control.doc", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int ok = write(fd, doc, len) == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, dst) < 0) {
        unlink(tmp);
        ea_log(EA_LOG_WARN, "control: cannot keep the applied document in %s", dst);
    }
}

/* Only these may come from the control plane; everything else stays local. */
static int check_members(const ea_node *config, const char **why)
{
    for (const ea_node *k = config->child; k; k = k->next) {
        if (!strcmp(k->key, "routes"))
            continue;
        if (!strcmp(k->key, "agent") && k->type == EA_N_OBJ) {
            for (const ea_node *x = k->child; x; x = x->next)
                if ((strcmp(x->key, "device_id") && strcmp(x->key, "site")) || x->type != EA_N_STR)
                    return *why = "config.agent may only set device_id and site (strings)", -1;
            continue;
        }
        return *why = "config may only contain routes and agent.device_id/site; the rest is local", -1;
    }
    return 0;
}

int ea_control_apply(ea_agent *a, const void *doc, size_t len, int persist_doc, char *err, size_t errlen)
{
    const ea_config *cfg = ea_agent_config(a);
    ea_metrics *m = ea_agent_metrics(a);
    if (!cfg->remote_config)
        return refuse(a, err, errlen, "remote configuration is disabled (--no-remote-init)", -1);
    if (!cfg->have_control_key)
        return refuse(a, err, errlen, "no control.public_key configured: cannot verify", -1);
    char *payload = NULL;
    size_t plen = 0;
    char why[300];
    if (ea_control_verify(doc, len, cfg->control_key, &payload, &plen, why, sizeof why) < 0)
        return refuse(a, err, errlen, why, -1);
    ea_arena ar = {.max = plen * 24 + 65536};
    ea_node *root = ea_json_parse(&ar, payload, plen, why, sizeof why);
    int rc = -1;
    const char *reason = why;
    const ea_node *ver = root ? ea_node_get(root, "version") : NULL;
    const ea_node *conf = root ? ea_node_get(root, "config") : NULL;
    int64_t version = ver && ver->type == EA_N_NUM && ver->is_int ? ver->i : -1;
    if (!root)
        ;
    else if (version < 0)
        reason = "payload needs an integer \"version\" >= 0";
    else if (!conf || conf->type != EA_N_OBJ)
        reason = "payload needs a \"config\" object";
    else if (version <= m->config_version)
        reason = "version is not newer than the applied one (replay refused)";
    else if (check_members(conf, &reason) == 0) {
        const ea_node *agent = ea_node_get(conf, "agent");
        const ea_node *dev = ea_node_get(agent, "device_id"), *site = ea_node_get(agent, "site");
        ea_filter_env env = *ea_agent_filter_env(a);
        if (dev)
            env.device_id = dev->s;
        if (site)
            env.site = site->s;
        char perr[300];
        ea_pipeline *p = ea_pipeline_new(ea_node_get(conf, "routes"), &env, perr, sizeof perr);
        if (!p) {
            snprintf(why, sizeof why, "config.routes: %s", perr);
            reason = why;
        } else {
            ea_agent_swap_pipeline(a, p);
            m->config_version = version;
            m->config_applied++;
            rc = 0;
        }
    }
    if (rc < 0) {
        char copy[300];
        snprintf(copy, sizeof copy, "%s", reason);
        ea_arena_free(&ar);
        free(payload);
        return refuse(a, err, errlen, copy, version);
    }
    ea_arena_free(&ar);
    free(payload);
    if (persist_doc)
        persist(a, doc, len);
    char rep[96];
    int n = snprintf(rep, sizeof rep, "{\"status\":\"applied\",\"version\":%lld}", (long long)version);
    ea_agent_report(a, "config", rep, (size_t)n);
    ea_log(EA_LOG_INFO, "control: applied desired config version %lld", (long long)version);
    return 0;
}

void ea_control_restore(ea_agent *a)
{
    const ea_config *cfg = ea_agent_config(a);
    char path[4096];
    snprintf(path, sizeof path, "%s/control.doc", cfg->spool.dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat sb;
    char *doc = NULL;
    if (fstat(fd, &sb) == 0 && sb.st_size > 0 && sb.st_size <= EA_CONTROL_MAX_DOC && (doc = malloc((size_t)sb.st_size)) &&
        read(fd, doc, (size_t)sb.st_size) == sb.st_size) {
        char err[300];
        if (ea_control_apply(a, doc, (size_t)sb.st_size, 0, err, sizeof err) < 0)
            ea_log(EA_LOG_WARN, "control: kept document %s not applied: %s", path, err);
    }
    free(doc);
    close(fd);
}
