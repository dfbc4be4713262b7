/*
 * agent.c: the agent's wiring and per-event work (see agent.h). Single-threaded: every callback
 * below runs on the loop, so the spool, pipeline and counters need no locks.
 *
 * Durability contract with senders: an HTTP ingest answer is sent only when the spool's durable
 * sequence number covers the request's last record (ea_http_server_durable is called from the
 * idle hook after every commit/sync). The batch fsync timer is only a wake-up; the idle hook does
 * the sync, so there is one place where durability advances.
 */
#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "control/apply.h"
#include "inputs/convert.h"
#include "inputs/http_ingest.h"
#include "inputs/lineproto.h"
#include "inputs/mqtt_sub.h"
#include "spool/spool.h"
#include "util/log.h"

#define MAX_RECORDS_PER_REQUEST 10000
#define DRAIN_MS 5000
#define ACK_FLUSH_MS 20

struct ea_agent {
    ea_loop *loop;
    ea_config cfg;
    ea_filter_env env;
    ea_spool *spool;
    ea_pipeline *pipe;
    ea_http_server *http;
    ea_lp_udp *udp;
    ea_lp_tcp *tcp;
    ea_mqtt_sub *msub;
    const ea_output_ops *out_ops;
    ea_output *out;
    ea_output_events out_ev;
    ea_metrics m;
    ea_buf enc;
    ea_record *rec;
    int sigfd;
    int sync_timer, tick_timer;
    uint64_t notified_durable;
    uint64_t last_ack_flush_ms;
    int fatal;
    uint64_t drain_deadline;
    ea_config_builder reload_fn;
    void *reload_arg;
    void (*before_run)(void *);
    void *before_run_arg;
};

ea_loop *ea_agent_loop(ea_agent *a) { return a->loop; }
ea_metrics *ea_agent_metrics(ea_agent *a) { return &a->m; }
const ea_config *ea_agent_config(const ea_agent *a) { return &a->cfg; }
const ea_filter_env *ea_agent_filter_env(const ea_agent *a) { return &a->env; }
int ea_agent_http_port(const ea_agent *a) { return a->http ? ea_http_server_port(a->http) : 0; }

void ea_agent_set_reloader(ea_agent *a, ea_config_builder fn, void *arg)
{
    a->reload_fn = fn;
    a->reload_arg = arg;
}

void ea_agent_set_before_run(ea_agent *a, void (*fn)(void *arg), void *arg)
{
    a->before_run = fn;
    a->before_run_arg = arg;
}

/* ------------------------------------------------------------------ records in */

static int spool_sink(void *arg, ea_record *r)
{
    ea_agent *a = arg;
    a->enc.len = 0;
    uint64_t seq = ea_spool_next_seq(a->spool);
    if (ea_rec_to_json(r, seq, &a->enc) < 0)
        return -1;
    char err[256];
    int rc = ea_spool_append(a->spool, a->enc.data, a->enc.len, NULL, err, sizeof err);
    if (rc == -2) {
        a->m.refused_full++;
        return -2;
    }
    if (rc < 0) {
        ea_log(EA_LOG_ERROR, "%s", err);
        return -1;
    }
    a->m.accepted++;
    return 0;
}

/* Runs one converted record through the pipeline. 0 ok (spooled or filtered), -2 full, -1 I/O. */
static int process_record(ea_agent *a, ea_record *r)
{
    int rc = ea_pipeline_process(a->pipe, r, ea_loop_now_ms(a->loop));
    if (rc == 0)
        a->m.filtered++;
    return rc < 0 ? rc : 0;
}

void ea_agent_ingest_line(void *agent, const char *line, size_t len, const char *source)
{
    ea_agent *a = agent;
    if (a->m.draining)
        return;
    ea_record *r = a->rec;
    ea_rec_init(r, source, ea_wall_ms());
    char err[200];
    int rc = ea_lineproto_parse(line, len, r, err, sizeof err);
    if (rc == 0)
        return;
    a->m.received++;
    if (rc < 0) {
        a->m.rejected++;
        ea_log(EA_LOG_DEBUG, "%s input: %s", source, err);
        return;
    }
    process_record(a, r);
}

int ea_agent_ingest_json_object(ea_agent *a, const ea_node *obj, const char *source, char *err, size_t errlen)
{
    ea_record *r = a->rec;
    ea_rec_init(r, source, ea_wall_ms());
    a->m.received++;
    if (ea_json_to_record(obj, r, err, errlen) < 0) {
        a->m.rejected++;
        return -1;
    }
    return process_record(a, r);
}

static void reply_error(ea_http_reply *rep, int status, const char *msg)
{
    rep->status = status;
    ea_buf_puts(rep->body, "{\"error\":");
    ea_buf_put_json_string(rep->body, msg, strlen(msg));
    ea_buf_puts(rep->body, "}\n");
}

/* POST /v1/ingest: validate every record first (all or nothing on bad input), then spool. */
static void on_ingest(void *arg, const char *body, size_t len, const char *peer, ea_http_reply *rep)
{
    ea_agent *a = arg;
    (void)peer;
    if (a->m.draining)
        return reply_error(rep, 503, "draining");
    if (!a->cfg.http_enabled)
        return reply_error(rep, 404, "HTTP ingest is disabled (http.enabled: false)");
    ea_arena ar = {.max = len * 24 + 65536};
    char err[300];
    ea_node *root = ea_json_parse(&ar, body, len, err, sizeof err);
    if (!root || (root->type != EA_N_OBJ && root->type != EA_N_ARR)) {
        a->m.received++;
        a->m.rejected++;
        reply_error(rep, 400, root ? "expected a JSON object or an array of objects" : err);
        ea_arena_free(&ar);
        return;
    }
    const ea_node *first = root->type == EA_N_OBJ ? root : root->child;
    size_t n = root->type == EA_N_OBJ ? 1 : ea_node_count(root);
    if (n > MAX_RECORDS_PER_REQUEST) {
        a->m.received += n;
        a->m.rejected += n;
        reply_error(rep, 413, "more than 10000 records in one request");
        ea_arena_free(&ar);
        return;
    }
    size_t idx = 0;
    for (const ea_node *o = first; o; o = root->type == EA_N_OBJ ? NULL : o->next, idx++) {
        ea_rec_init(a->rec, "http", 0);
        char why[200];
        if (ea_json_to_record(o, a->rec, why, sizeof why) < 0) {
            snprintf(err, sizeof err, "record %zu: %s", idx, why);
            a->m.received += n;
            a->m.rejected += n;
            reply_error(rep, 400, err);
            ea_arena_free(&ar);
            return;
        }
    }
    size_t accepted = 0, filtered_before = a->m.filtered;
    uint64_t seq_before = ea_spool_next_seq(a->spool);
    int rc = 0;
    for (const ea_node *o = first; o && rc >= 0; o = root->type == EA_N_OBJ ? NULL : o->next) {
        rc = ea_agent_ingest_json_object(a, o, "http", err, sizeof err);
        if (rc >= 0)
            accepted++;
    }
    ea_arena_free(&ar);
    uint64_t last_seq = ea_spool_next_seq(a->spool) - 1;
    if (ea_spool_commit(a->spool, ea_loop_now_ms(a->loop)) < 0) {
        a->fatal = 1;
        return reply_error(rep, 500, "spool write failed");
    }
    if (rc == -2) {
        a->m.rejected += n - accepted;
        rep->status = 503;
        ea_buf_puts(rep->body, "{\"error\":\"spool full\",\"accepted\":");
        ea_buf_put_u64(rep->body, accepted);
        ea_buf_puts(rep->body, "}\n");
    } else if (rc < 0) {
        return reply_error(rep, 500, "spool write failed");
    } else {
        rep->status = 200;
        ea_buf_puts(rep->body, "{\"accepted\":");
        ea_buf_put_u64(rep->body, accepted);
        ea_buf_puts(rep->body, ",\"filtered\":");
        ea_buf_put_u64(rep->body, a->m.filtered - filtered_before);
        ea_buf_puts(rep->body, "}\n");
    }
    if (last_seq >= seq_before && last_seq > ea_spool_durable_seq(a->spool))
        rep->wait_seq = last_seq;
}

static void on_get(void *arg, const char *path, ea_http_reply *rep)
{
    ea_agent *a = arg;
    ea_spool_stats sp;
    ea_spool_get_stats(a->spool, &sp);
    ea_http_stats hs;
    ea_http_server_stats(a->http, &hs);
    if (a->out && a->out_ops->stats)
        a->out_ops->stats(a->out, &a->m.retries, &a->m.reconnects);
    ea_health_get(&a->m, &sp, &hs, path, rep);
}

/* ------------------------------------------------------------------ output */

static void on_acked(void *arg, uint64_t seq)
{
    ea_agent *a = arg;
    a->m.delivered++;
    ea_spool_ack(a->spool, seq);
}

/* MQTT 5: the broker refused the record for good; it leaves the spool like a delivered one (it is
 * not retried, docs/DESIGN.md) and is counted apart. */
static void on_refused(void *arg, uint64_t seq, const char *why)
{
    (void)why;
    ea_agent *a = arg;
    a->m.uplink_refused++;
    ea_spool_ack(a->spool, seq);
}

static void on_state(void *arg, int connected, const char *why)
{
    ea_agent *a = arg;
    if (connected && !a->m.uplink_connected)
        ea_spool_rewind(a->spool); /* at-least-once: offer everything unacked again */
    a->m.uplink_connected = connected;
    a->m.uplink_changed_ms = ea_wall_ms();
    if (!connected) /* last_error: the reason of the last failure, kept once the uplink is back */
        snprintf(a->m.uplink_why, sizeof a->m.uplink_why, "%s", why ? why : "");
}

static void on_control(void *arg, const void *payload, size_t len)
{
    ea_agent *a = arg;
    char err[300];
    if (ea_control_apply(a, payload, len, 1, err, sizeof err) < 0)
        ea_log(EA_LOG_WARN, "control: refused desired config: %s", err);
}

void ea_agent_report(ea_agent *a, const char *suffix, const void *data, size_t len)
{
    if (a->out && a->out_ops->report)
        a->out_ops->report(a->out, suffix, data, len);
}

static void pump_output(ea_agent *a)
{
    if (!a->out || !a->out_ops->connected(a->out))
        return;
    for (int k = 0; k < 16; k++) {
        ea_record_ref refs[64];
        size_t n = ea_spool_peek(a->spool, refs, 64);
        if (!n)
            return;
        size_t taken = a->out_ops->offer(a->out, refs, n);
        ea_spool_advance(a->spool, taken);
        if (taken < n)
            return;
    }
}

static const ea_output_ops *output_for(const char *url)
{
    if (!strncmp(url, "mqtt://", 7) || !strncmp(url, "mqtts://", 8))
        return &ea_output_mqtt;
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
        return &ea_output_http;
    return NULL;
}

/* ------------------------------------------------------------------ loop hooks */

static void wake(ea_loop *l, void *arg)
{
    (void)l;
    ea_agent *a = arg;
    a->sync_timer = 0;
}

static void advance_durability(ea_agent *a)
{
    uint64_t now = ea_loop_now_ms(a->loop);
    if (ea_spool_commit(a->spool, now) < 0)
        a->fatal = 1;
    int64_t due = ea_spool_sync_due_in(a->spool, now);
    if (due == 0 || (due > 0 && a->m.draining)) {
        if (ea_spool_sync(a->spool) < 0) {
            ea_log(EA_LOG_ERROR, "spool %s: fsync failed: %s", a->cfg.spool.dir, strerror(errno));
            ea_http_server_fail_waiting(a->http, 500, "spool fsync failed");
            a->fatal = 1;
        }
    } else if (due > 0 && !a->sync_timer)
        a->sync_timer = ea_loop_timer(a->loop, (uint64_t)due, wake, a);
    uint64_t d = ea_spool_durable_seq(a->spool);
    if (d != a->notified_durable) {
        a->notified_durable = d;
        if (a->http)
            ea_http_server_durable(a->http, d);
    }
}

static void on_idle(ea_loop *l, void *arg)
{
    ea_agent *a = arg;
    advance_durability(a);
    pump_output(a);
    /* persist the ack watermark often (a 12-byte file): after a crash, fewer redeliveries */
    uint64_t now = ea_loop_now_ms(l);
    if (now - a->last_ack_flush_ms >= ACK_FLUSH_MS) {
        a->last_ack_flush_ms = now;
        ea_spool_flush_acks(a->spool);
    }
    if (a->fatal) {
        ea_log(EA_LOG_ERROR, "stopping after a spool I/O error");
        ea_loop_stop(l);
    }
    if (a->m.draining) {
        int done = ea_spool_pending(a->spool) == 0 || !a->out || !a->out_ops->connected(a->out);
        if ((done && (!a->http || !ea_http_server_waiting(a->http))) || ea_loop_now_ms(l) >= a->drain_deadline)
            ea_loop_stop(l);
    }
}

static void on_tick(ea_loop *l, void *arg)
{
    ea_agent *a = arg;
    ea_spool_flush_acks(a->spool);
    ea_pipeline_flush(a->pipe, ea_loop_now_ms(l));
    a->tick_timer = ea_loop_timer(l, 1000, on_tick, a);
}

static void start_drain(ea_agent *a)
{
    if (a->m.draining)
        return;
    ea_log(EA_LOG_INFO, "draining: no new input, delivering what is pending (up to %d ms)", DRAIN_MS);
    a->m.draining = 1;
    a->drain_deadline = ea_loop_now_ms(a->loop) + DRAIN_MS;
    if (a->http)
        ea_http_server_stop_accepting(a->http);
    ea_lp_udp_free(a->udp);
    a->udp = NULL;
    ea_lp_tcp_free(a->tcp);
    a->tcp = NULL;
    ea_mqtt_sub_free(a->msub);
    a->msub = NULL;
}

static void reload(ea_agent *a)
{
    if (!a->reload_fn) {
        ea_log(EA_LOG_WARN, "SIGHUP: no config file to reload");
        return;
    }
    ea_config fresh;
    char err[400];
    if (a->reload_fn(a->reload_arg, &fresh, err, sizeof err) < 0 || ea_agent_reload(a, &fresh, err, sizeof err) < 0) {
        ea_log(EA_LOG_ERROR, "SIGHUP: config not reloaded, the running one stays: %s", err);
        return;
    }
    ea_log(EA_LOG_INFO, "SIGHUP: config reloaded");
}

static void on_signal(ea_loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    ea_agent *a = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP)
            reload(a);
        else
            start_drain(a);
    }
}

/* ------------------------------------------------------------------ build / reload */

static void set_env(ea_agent *a)
{
    a->env.device_id = a->cfg.device_id;
    a->env.site = a->cfg.site;
}

static ea_http_config http_config(const ea_config *c)
{
    return (ea_http_config){.listen = c->listen,
                            .token = c->http_token,
                            .max_body = c->http_max_body,
                            .max_conns = c->http_max_conns,
                            .timeout_ms = c->http_timeout_ms};
}

static int open_inputs(ea_agent *a, char *err, size_t errlen)
{
    ea_http_config hc = http_config(&a->cfg);
    ea_http_handlers h = {.ingest = on_ingest, .get = on_get, .arg = a};
    if (!(a->http = ea_http_server_new(a->loop, &hc, &h, err, errlen)))
        return -1;
    if (a->cfg.lp_udp && !(a->udp = ea_lp_udp_new(a->loop, a->cfg.lp_udp, ea_agent_ingest_line, a, err, errlen)))
        return -1;
    if (a->cfg.lp_tcp && !(a->tcp = ea_lp_tcp_new(a->loop, a->cfg.lp_tcp, a->cfg.lp_tcp_max_conns, a->cfg.lp_tcp_idle_ms,
                                                  ea_agent_ingest_line, a, err, errlen)))
        return -1;
    if (a->cfg.mqtt_in_url && !(a->msub = ea_mqtt_sub_new(a, a->cfg.mqtt_in_url, a->cfg.mqtt_in_topics, err, errlen)))
        return -1;
    return 0;
}

static int open_output(ea_agent *a, char *err, size_t errlen)
{
    if (!a->cfg.uplink.url) {
        ea_log(EA_LOG_WARN, "no uplink configured: records stay in the spool");
        return 0;
    }
    a->out_ops = output_for(a->cfg.uplink.url);
    if (!a->out_ops) {
        snprintf(err, errlen, "uplink.url '%s': unsupported scheme", a->cfg.uplink.url);
        return -1;
    }
    a->out_ev = (ea_output_events){
        .acked = on_acked, .refused = on_refused, .state = on_state, .control = on_control, .arg = a};
    ea_output_config oc = a->cfg.uplink;
    char id[160];
    if (!oc.client_id && a->cfg.device_id) {
        snprintf(id, sizeof id, "edgeagent-%s", a->cfg.device_id);
        oc.client_id = id; /* stable across restarts: the persistent session's key */
    }
    if (!a->cfg.remote_config)
        oc.control_topic = NULL; /* --no-remote-init: not even subscribed */
    a->out = a->out_ops->create(&oc, a->loop, &a->out_ev, err, errlen);
    if (!a->out)
        return -1;
    /* The output's own view from the start: HTTP has no standing connection and is up until a
     * request fails; MQTT is down until its CONNACK. Later changes come through on_state. */
    a->m.uplink_connected = a->out_ops->connected(a->out) ? 1 : 0;
    return 0;
}

ea_agent *ea_agent_new(ea_config *cfg, char *err, size_t errlen)
{
    ea_agent *a = calloc(1, sizeof *a);
    if (!a || !(a->rec = malloc(sizeof *a->rec))) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg); /* taken over */
    a->sigfd = -1;
    a->m.started_ms = ea_wall_ms();
    a->m.config_version = -1;
    a->enc.max = EA_SPOOL_MAX_RECORD;
    ea_log_set_level(a->cfg.log_level);
    set_env(a);
    if (!(a->loop = ea_loop_new())) {
        snprintf(err, errlen, "cannot create the event loop");
        goto fail;
    }
    if (!(a->pipe = ea_pipeline_new(a->cfg.routes, &a->env, err, errlen)))
        goto fail;
    ea_pipeline_set_sink(a->pipe, spool_sink, a);
    if (!(a->spool = ea_spool_open(&a->cfg.spool, err, errlen)))
        goto fail;
    a->notified_durable = ea_spool_durable_seq(a->spool);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a->sigfd < 0 || ea_loop_add(a->loop, a->sigfd, EPOLLIN, on_signal, a) < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        goto fail;
    }
    if (open_inputs(a, err, errlen) < 0 || open_output(a, err, errlen) < 0)
        goto fail;
    if (a->cfg.remote_config)
        ea_control_restore(a);
    ea_loop_set_idle(a->loop, on_idle, a);
    a->tick_timer = ea_loop_timer(a->loop, 1000, on_tick, a);
    return a;
fail:
    ea_agent_free(a);
    return NULL;
}

int ea_agent_run(ea_agent *a)
{
    if (a->before_run)
        a->before_run(a->before_run_arg);
    a->m.ready = 1;
    ea_spool_stats st;
    ea_spool_get_stats(a->spool, &st);
    ea_log(EA_LOG_INFO, "ready: http on port %d, spool %s (%llu pending, %llu corrupt skipped)",
           ea_agent_http_port(a), a->cfg.spool.dir, (unsigned long long)ea_spool_pending(a->spool),
           (unsigned long long)st.corrupt);
    if (ea_loop_run(a->loop) < 0)
        return -1;
    /* drained or fatal: make everything durable, persist the ack watermark */
    ea_spool_sync(a->spool);
    if (a->http)
        ea_http_server_durable(a->http, ea_spool_durable_seq(a->spool));
    ea_spool_flush_acks(a->spool);
    return a->fatal ? -1 : 0;
}

void ea_agent_swap_pipeline(ea_agent *a, ea_pipeline *p)
{
    /* emit whatever the old windows hold before they go: a window is closed early, never lost */
    ea_pipeline_flush(a->pipe, UINT64_MAX / 2);
    ea_pipeline_free(a->pipe);
    a->pipe = p;
    ea_pipeline_set_sink(a->pipe, spool_sink, a);
}

static int str_differs(const char *x, const char *y) { return (x || y) && (!x || !y || strcmp(x, y)); }

int ea_agent_reload(ea_agent *a, ea_config *fresh, char *err, size_t errlen)
{
    ea_filter_env env = {fresh->device_id, fresh->site};
    ea_pipeline *p = ea_pipeline_new(fresh->routes, &env, err, errlen);
    if (!p) {
        ea_config_free(fresh);
        return -1;
    }
    if (str_differs(fresh->spool.dir, a->cfg.spool.dir) || str_differs(fresh->listen, a->cfg.listen) ||
        str_differs(fresh->uplink.url, a->cfg.uplink.url) || str_differs(fresh->lp_udp, a->cfg.lp_udp) ||
        str_differs(fresh->lp_tcp, a->cfg.lp_tcp))
        ea_log(EA_LOG_WARN, "SIGHUP: spool, listen addresses and uplink changes take effect at the next restart");
    /* keep what needs a restart; take the rest */
    fresh->spool = a->cfg.spool;
    fresh->listen = a->cfg.listen;
    fresh->uplink = a->cfg.uplink;
    fresh->lp_udp = a->cfg.lp_udp;
    fresh->lp_tcp = a->cfg.lp_tcp;
    fresh->mqtt_in_url = a->cfg.mqtt_in_url;
    fresh->mqtt_in_topics = a->cfg.mqtt_in_topics;
    fresh->mqtt_in_version = a->cfg.mqtt_in_version;
    /* the kept strings live in the old arena: the new config adopts its chunks (a reload keeps
     * the previous file's few KiB; SIGHUP is rare) */
    ea_arena old = a->cfg.arena;
    a->cfg = *fresh;
    memset(fresh, 0, sizeof *fresh);
    ea_arena_adopt(&a->cfg.arena, &old);
    set_env(a);
    ea_log_set_level(a->cfg.log_level);
    ea_agent_swap_pipeline(a, p);
    if (a->http) {
        ea_http_config hc = http_config(&a->cfg);
        ea_http_server_reconfigure(a->http, &hc);
    }
    return 0;
}

void ea_agent_free(ea_agent *a)
{
    if (!a)
        return;
    if (a->out)
        a->out_ops->destroy(a->out);
    ea_mqtt_sub_free(a->msub);
    ea_http_server_free(a->http);
    ea_lp_udp_free(a->udp);
    ea_lp_tcp_free(a->tcp);
    ea_spool_close(a->spool);
    ea_pipeline_free(a->pipe);
    if (a->sigfd >= 0)
        close(a->sigfd);
    ea_loop_free(a->loop);
    ea_buf_free(&a->enc);
    ea_config_free(&a->cfg);
    free(a->rec);
    free(a);
}
