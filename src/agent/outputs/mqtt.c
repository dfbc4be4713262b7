/*
 * outputs/mqtt.c: the MQTT northbound output (ea_output_mqtt) on top of proto/mqtt_client.
 *
 * Each record becomes one QoS 1 PUBLISH of its payload to the URL's topic; the PUBACK acks the
 * record's spool sequence number (MQTT 5: a PUBACK reason >= 0x80 reports it through events.refused
 * instead, see docs/DESIGN.md). The session is persistent (clean_session = 0, stable client id),
 * the last will is a retained "offline" on the status topic and a retained "online" is published
 * after every CONNACK. Messages on the control topic are handed to the core unverified (the core
 * calls control/verify before applying anything).
 *
 * Invariants: at most max_inflight records are held (encoded, in the client's window); a record the
 * core re-offers while it is still in flight is accepted without a second publish, so the core may
 * re-offer everything unacked after a reconnect without creating duplicates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tcp.h"
#include "outputs/output.h"
#include "proto/mqtt_client.h"
#include "proto/mqtt_codec.h"
#include "util/log.h"

#define TAG_STATUS UINT64_MAX /* publishes of our own (status documents): not a spool record */

struct ea_output {
    ea_mqtt_client *client;
    ea_output_events ev;
    ea_url url;
    char *topic, *status_topic, *control_topic;
    char where[300];
};

static void on_connected(void *arg, int session_present)
{
    ea_output *o = arg;
    ea_mqtt_client_publish(o->client, o->status_topic, "online", 6, 1, 1, TAG_STATUS);
    ea_log(EA_LOG_INFO, "uplink %s: connected (session %s)", o->where,
           session_present ? "resumed" : "new");
    if (o->ev.state) o->ev.state(o->ev.arg, 1, "connected");
}

static void on_disconnected(void *arg, const char *why)
{
    ea_output *o = arg;
    ea_log(EA_LOG_WARN, "uplink %s: %s", o->where, why);
    if (o->ev.state) o->ev.state(o->ev.arg, 0, why);
}

static void on_acked(void *arg, uint64_t tag)
{
    ea_output *o = arg;
    int reason = ea_mqtt_client_ack_reason(o->client);
    if (reason >= 0x80) { /* MQTT 5: refused by the broker, never re-sent (docs/DESIGN.md) */
        char why[200];
        snprintf(why, sizeof why, "0x%02x %s", reason, ea_mqtt_reason_name(EA_MQTT_PUBACK, reason));
        if (tag == TAG_STATUS) {
            ea_log(EA_LOG_WARN, "uplink %s: status publish refused: %s", o->where, why);
            return;
        }
        ea_log(EA_LOG_WARN, "uplink %s: record %llu refused by the broker (%s): dropped", o->where,
               (unsigned long long)tag, why);
        if (o->ev.refused) {
            o->ev.refused(o->ev.arg, tag, why);
            return;
        }
    }
    if (tag != TAG_STATUS && o->ev.acked) o->ev.acked(o->ev.arg, tag);
}

static void on_message(void *arg, const char *topic, size_t topic_len, const void *payload,
                       size_t len, int qos, int retain)
{
    (void)qos;
    (void)retain;
    ea_output *o = arg;
    if (o->control_topic && strlen(o->control_topic) == topic_len &&
        memcmp(topic, o->control_topic, topic_len) == 0 && o->ev.control)
        o->ev.control(o->ev.arg, payload, len);
}

static void output_free(ea_output *o)
{
    if (!o) return;
    ea_mqtt_client_free(o->client);
    free(o->topic);
    free(o->status_topic);
    free(o->control_topic);
    free(o);
}

static char *default_client_id(void)
{
    char host[64] = "agent";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    size_t n = strlen("edgeagent-") + strlen(host) + 1;
    char *id = malloc(n);
    if (id) snprintf(id, n, "edgeagent-%s", host);
    return id;
}

static ea_output *mqtt_create(const ea_output_config *cfg, ea_loop *loop,
                              const ea_output_events *ev, char *err, size_t errlen)
{
    ea_output *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "mqtt output: out of memory");
        return NULL;
    }
    if (ev) o->ev = *ev;
    if (ea_url_parse(cfg->url, &o->url, err, errlen) < 0) goto fail;
    if (o->url.scheme[0] != 'm') {
        snprintf(err, errlen, "uplink URL %s: the mqtt output needs mqtt:// or mqtts://", cfg->url);
        goto fail;
    }
    if (o->url.path[0] == '\0') {
        snprintf(err, errlen, "uplink URL %s: no topic (mqtt://host:port/TOPIC)", cfg->url);
        goto fail;
    }
    snprintf(o->where, sizeof o->where, "%s://%s:%u%s", o->url.scheme, o->url.host, o->url.port,
             cfg->mqtt_version == 5 ? " (MQTT 5)" : "");
    o->topic = strdup(o->url.path);
    if (cfg->status_topic) {
        o->status_topic = strdup(cfg->status_topic);
    } else if (o->topic) {
        size_t n = strlen(o->topic) + sizeof "/status";
        if ((o->status_topic = malloc(n))) snprintf(o->status_topic, n, "%s/status", o->topic);
    }
    o->control_topic = cfg->control_topic ? strdup(cfg->control_topic) : NULL;
    char *own_id = cfg->client_id ? NULL : default_client_id();
    if (!o->topic || !o->status_topic || (cfg->control_topic && !o->control_topic) ||
        (!cfg->client_id && !own_id)) {
        free(own_id);
        snprintf(err, errlen, "mqtt output: out of memory");
        goto fail;
    }
    ea_mqtt_client_config cc = {
        .host = o->url.host,
        .port = o->url.port,
        .tls = o->url.tls,
        .ca_file = cfg->ca_file,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .client_id = cfg->client_id ? cfg->client_id : own_id,
        .username = cfg->username,
        .password = cfg->password,
        .clean_session = 0,
        .keepalive_s = cfg->keepalive_s,
        .will_topic = o->status_topic,
        .will_payload = "offline",
        .will_retain = 1,
        .will_qos = 1,
        .max_inflight = cfg->max_inflight,
        .version = cfg->mqtt_version,
        .backoff_min_ms = cfg->backoff_min_ms,
        .backoff_max_ms = cfg->backoff_max_ms,
    };
    ea_mqtt_client_events ce = {on_connected, on_disconnected, on_acked, on_message, o};
    o->client = ea_mqtt_client_new(loop, &cc, &ce, err, errlen);
    free(own_id);
    if (!o->client) goto fail;
    if (o->control_topic && ea_mqtt_client_subscribe(o->client, o->control_topic, 1) < 0) {
        snprintf(err, errlen, "mqtt output: invalid control topic \"%s\"", o->control_topic);
        goto fail;
    }
    ea_mqtt_client_start(o->client);
    return o;
fail:
    output_free(o);
    return NULL;
}

static size_t mqtt_offer(ea_output *o, const ea_record_ref *recs, size_t n)
{
    size_t taken = 0;
    while (taken < n && ea_mqtt_client_connected(o->client)) {
        const ea_record_ref *r = &recs[taken];
        if (!ea_mqtt_client_has_tag(o->client, r->seq) &&
            !ea_mqtt_client_publish(o->client, o->topic, r->data, r->len, 1, 0, r->seq))
            break;
        taken++;
    }
    return taken;
}

static void mqtt_report(ea_output *o, const char *topic_suffix, const void *data, size_t len)
{
    char topic[512];
    snprintf(topic, sizeof topic, "%s/%s", o->status_topic, topic_suffix);
    ea_mqtt_client_publish(o->client, topic, data, len, 1, 1, TAG_STATUS);
}

static int mqtt_connected(ea_output *o)
{
    return ea_mqtt_client_connected(o->client);
}

static void mqtt_stats(ea_output *o, uint64_t *retries, uint64_t *reconnects)
{
    ea_mqtt_client_stats s;
    ea_mqtt_client_stats_get(o->client, &s);
    if (retries) *retries = s.resent + s.connect_failures;
    if (reconnects) *reconnects = s.reconnects;
}

/* A clean shutdown says "offline" itself: the broker drops the will on DISCONNECT. */
static void mqtt_destroy(ea_output *o)
{
    if (!o) return;
    if (ea_mqtt_client_connected(o->client))
        ea_mqtt_client_publish(o->client, o->status_topic, "offline", 7, 0, 1, TAG_STATUS);
    ea_mqtt_client_disconnect(o->client);
    output_free(o);
}

const ea_output_ops ea_output_mqtt = {
    .scheme = "mqtt",
    .create = mqtt_create,
    .offer = mqtt_offer,
    .report = mqtt_report,
    .connected = mqtt_connected,
    .stats = mqtt_stats,
    .destroy = mqtt_destroy,
};
