/*
 * agent.h: the running agent: one loop, one config, the spool, the pipeline, the inputs, the
 * uplink output and the counters, wired together. main.c parses flags and hardens the process;
 * everything that happens per record or per event is here.
 *
 * Flow: input -> record -> pipeline (routes of filters) -> sink: JSON-encode with the spool's next
 * sequence number and append -> commit per fsync policy -> (durable) HTTP answer -> the idle hook
 * offers spooled records to the output -> acked -> spool watermark -> segments trimmed.
 */
#ifndef EA_AGENT_H
#define EA_AGENT_H
#include <stddef.h>

#include "config/config.h"
#include "filters/filter.h"
#include "health/health.h"
#include "loop.h"

typedef struct ea_agent ea_agent;

/* Builds everything from cfg (taken over: the agent frees it). NULL with err on failure. */
ea_agent *ea_agent_new(ea_config *cfg, char *err, size_t errlen);
/* Runs until SIGTERM/SIGINT (drain, then return 0) or a fatal error (-1). */
int ea_agent_run(ea_agent *a);
void ea_agent_free(ea_agent *a);

/* SIGHUP: replace the pipeline and HTTP limits from a freshly loaded config (taken over on
 * success). Keys that need a restart (spool dir, listen addresses, uplink) are logged. */
int ea_agent_reload(ea_agent *a, ea_config *fresh, char *err, size_t errlen);
/* Where main stores what it needs to rebuild the config on SIGHUP. */
typedef int (*ea_config_builder)(void *arg, ea_config *out, char *err, size_t errlen);
void ea_agent_set_reloader(ea_agent *a, ea_config_builder fn, void *arg);
/* Called once initialisation is over and before the loop runs (seccomp goes here). */
void ea_agent_set_before_run(ea_agent *a, void (*fn)(void *arg), void *arg);

/* Core entry points for inputs and the control plane. */
void ea_agent_ingest_line(void *agent, const char *line, size_t len, const char *source);
int ea_agent_ingest_json_object(ea_agent *a, const ea_node *obj, const char *source, char *err, size_t errlen);
ea_loop *ea_agent_loop(ea_agent *a);
ea_metrics *ea_agent_metrics(ea_agent *a);
const ea_config *ea_agent_config(const ea_agent *a);
/* Swaps the pipeline (control/apply.c); the old one's windows are flushed first. */
void ea_agent_swap_pipeline(ea_agent *a, ea_pipeline *p);
void ea_agent_report(ea_agent *a, const char *suffix, const void *data, size_t len);
const ea_filter_env *ea_agent_filter_env(const ea_agent *a);

/* Ports actually bound (tests listen on port 0). */
int ea_agent_http_port(const ea_agent *a);
#endif
