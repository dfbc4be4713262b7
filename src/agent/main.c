/*
 * main.c: edgeagent's entry point: flags, config assembly (defaults < file < EDGEAGENT_* env <
 * flags), --check-config, start-up hardening, then the agent's loop. Exit codes: 0 clean stop,
 * 1 runtime failure, 2 usage or config error, 3 refused to run (root without --allow-root).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "config/config.h"
#include "harden.h"
#include "util/log.h"

#define EA_VERSION "0.1.0"

static const char usage[] =
    "usage: edgeagent [--config FILE] [--spool DIR] [--uplink URL] [--port N] [options]\n"
    "       edgeagent --check-config FILE\n"
    "\n"
    "The edge agent: takes records in (POST /v1/ingest, line protocol UDP/TCP, MQTT), filters them,\n"
    "keeps them in a crash-safe spool and delivers them upstream (MQTT or HTTP) at least once.\n"
    "\n"
    "  --config FILE        config file (YAML subset, docs/agent-config.md)\n"
    "  --check-config FILE  validate FILE (with env and flags) and exit: 0 ok, 2 with the error\n"
    "  --spool DIR          spool directory (spool.dir)\n"
    "  --uplink URL         mqtt://IP:PORT/TOPIC, mqtts://..., http(s)://HOST:PORT/PATH (uplink.url)\n"
    "  --mqtt-version V     MQTT uplink protocol: 3.1.1 (default) or 5 (uplink.mqtt_version)\n"
    "  --port N             health + ingest port, or IP:PORT (agent.port, default 8080)\n"
    "  --fsync POLICY       always, batch or none (spool.fsync)\n"
    "  --set SECTION.KEY=V  set any config key\n"
    "  --log-level LEVEL    error, warn, info, debug\n"
    "  --allow-root         run even as root\n"
    "  --secure-memory      lock memory, no core dumps, not dumpable\n"
    "  --no-seccomp         do not install the system-call allow-list\n"
    "  --no-remote-init     refuse remote configuration entirely\n"
    "  --print-config-keys  print every config key as a Markdown table\n"
    "  --help, --version\n"
    "\n"
    "Signals: SIGHUP reloads the config file; SIGTERM/SIGINT drain and exit.\n";

typedef struct opts {
    int argc;
    char **argv;
    const char *config_path;
} opts;

/* Flags are applied after file and env; also re-run on SIGHUP. */
static int apply_flags(const opts *o, ea_config *c, char *err, size_t errlen)
{
    for (int i = 1; i < o->argc; i++) {
        const char *f = o->argv[i], *v = i + 1 < o->argc ? o->argv[i + 1] : NULL;
        const char *key = NULL;
        if (!strcmp(f, "--spool"))
            key = "spool.dir";
        else if (!strcmp(f, "--uplink"))
            key = "uplink.url";
        else if (!strcmp(f, "--mqtt-version"))
            key = "uplink.mqtt_version";
        else if (!strcmp(f, "--port"))
            key = "agent.port";
        else if (!strcmp(f, "--fsync"))
            key = "spool.fsync";
        else if (!strcmp(f, "--log-level"))
            key = "agent.log_level";
        if (key) {
            if (ea_config_set(c, key, v, err, errlen) < 0)
                return -1;
            i++;
        } else if (!strcmp(f, "--set")) {
            char kv[512];
            snprintf(kv, sizeof kv, "%s", v);
            char *eq = strchr(kv, '=');
            if (!eq) {
                snprintf(err, errlen, "--set %s: expected SECTION.KEY=VALUE", v);
                return -1;
            }
            *eq = 0;
            if (ea_config_set(c, kv, eq + 1, err, errlen) < 0)
                return -1;
            i++;
        } else if (!strcmp(f, "--allow-root"))
            c->allow_root = 1;
        else if (!strcmp(f, "--secure-memory"))
            c->secure_memory = 1;
        else if (!strcmp(f, "--no-seccomp"))
            c->seccomp = 0;
        else if (!strcmp(f, "--no-remote-init"))
            c->remote_config = 0;
        else if (!strcmp(f, "--config") || !strcmp(f, "--check-config"))
            i++;
    }
    return 0;
}

static int build_config(void *arg, ea_config *c, char *err, size_t errlen)
{
    const opts *o = arg;
    ea_config_defaults(c);
    if ((o->config_path && ea_config_load_file(c, o->config_path, err, errlen) < 0) ||
        ea_config_apply_env(c, err, errlen) < 0 || apply_flags(o, c, err, errlen) < 0 ||
        ea_config_validate(c, err, errlen) < 0) {
        ea_config_free(c);
        return -1;
    }
    /* routes are checked by building them once */
    ea_filter_env env = {c->device_id, c->site};
    ea_pipeline *p = ea_pipeline_new(c->routes, &env, err, errlen);
    if (!p) {
        ea_config_free(c);
        return -1;
    }
    ea_pipeline_free(p);
    return 0;
}

/* Checks flag syntax: every flag known, values present. */
static int check_usage(int argc, char **argv, opts *o, int *check_only)
{
    static const char *with_value[] = {"--config", "--check-config", "--spool",     "--uplink", "--port",
                                       "--fsync",  "--set",          "--log-level", "--mqtt-version"};
    static const char *plain[] = {"--allow-root", "--secure-memory", "--no-seccomp", "--no-remote-init"};
    for (int i = 1; i < argc; i++) {
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++)
            if (!strcmp(argv[i], with_value[k])) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "edgeagent: %s needs a value\n", argv[i]);
                    return -1;
                }
                if (!strcmp(argv[i], "--config"))
                    o->config_path = argv[i + 1];
                if (!strcmp(argv[i], "--check-config")) {
                    o->config_path = argv[i + 1];
                    *check_only = 1;
                }
                i++;
                known = 1;
                break;
            }
        for (size_t k = 0; !known && k < sizeof plain / sizeof *plain; k++)
            known = !strcmp(argv[i], plain[k]);
        if (!known) {
            fprintf(stderr, "edgeagent: unknown option '%s' (see --help)\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

static void install_seccomp(void *arg)
{
    const ea_config *c = arg;
    char err[256];
    if (c->seccomp && ea_harden_seccomp(err, sizeof err) < 0)
        ea_log(EA_LOG_WARN, "%s", err);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            puts("edgeagent " EA_VERSION);
            return 0;
        }
        if (!strcmp(argv[i], "--print-config-keys")) {
            ea_config_print_keys(1);
            return 0;
        }
    }
    opts o = {.argc = argc, .argv = argv};
    int check_only = 0;
    if (check_usage(argc, argv, &o, &check_only) < 0)
        return 2;
    ea_config cfg;
    char err[512];
    if (check_only) {
        /* spool.dir may legitimately come later (flags of the real start): do not require it here */
        ea_config_defaults(&cfg);
        int rc = ea_config_load_file(&cfg, o.config_path, err, sizeof err);
        if (rc == 0)
            rc = ea_config_apply_env(&cfg, err, sizeof err);
        if (rc == 0)
            rc = apply_flags(&o, &cfg, err, sizeof err);
        if (rc == 0 && !cfg.spool.dir)
            ea_config_set(&cfg, "spool.dir", "/var/lib/edgeagent", err, sizeof err);
        if (rc == 0)
            rc = ea_config_validate(&cfg, err, sizeof err);
        if (rc == 0) {
            ea_filter_env env = {cfg.device_id, cfg.site};
            ea_pipeline *p = ea_pipeline_new(cfg.routes, &env, err, sizeof err);
            if (!p)
                rc = -1;
            else
                ea_pipeline_free(p);
            if (!p) {
                char tmp[512];
                snprintf(tmp, sizeof tmp, "%s: %s", o.config_path, err);
                snprintf(err, sizeof err, "%s", tmp);
            }
        }
        ea_config_free(&cfg);
        if (rc < 0) {
            fprintf(stderr, "edgeagent: %s\n", err);
            return 2;
        }
        printf("%s: ok\n", o.config_path);
        return 0;
    }
    if (build_config(&o, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "edgeagent: %s\n", err);
        return 2;
    }
    if (ea_harden_check_user(cfg.allow_root, err, sizeof err) < 0) {
        fprintf(stderr, "edgeagent: %s\n", err);
        ea_config_free(&cfg);
        return 3;
    }
    if (cfg.secure_memory && ea_harden_secure_memory(err, sizeof err) < 0) {
        fprintf(stderr, "edgeagent: %s\n", err);
        ea_config_free(&cfg);
        return 1;
    }
    ea_agent *a = ea_agent_new(&cfg, err, sizeof err);
    if (!a) {
        fprintf(stderr, "edgeagent: %s\n", err);
        ea_config_free(&cfg);
        return 1;
    }
    if (o.config_path)
        ea_agent_set_reloader(a, build_config, &o);
    ea_agent_set_before_run(a, install_seccomp, (void *)ea_agent_config(a));
    int rc = ea_agent_run(a);
    ea_agent_free(a);
    ea_log(EA_LOG_INFO, rc == 0 ? "stopped" : "stopped after an error");
    return rc == 0 ? 0 : 1;
}
