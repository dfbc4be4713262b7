/* inputs/mqtt_sub.c: MQTT subscriptions to a local broker's device topics (see mqtt_sub.h). */
#include "inputs/mqtt_sub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "net/tcp.h"
#include "proto/mqtt_client.h"
#include "util/log.h"

struct ea_mqtt_sub {
    struct ea_agent *agent;
    ea_mqtt_client *client;
};

static void on_connected(void *arg, int session_present)
{
    (void)arg;
    ea_log(EA_LOG_INFO, "mqtt input: connected (session %s)", session_present ? "resumed" : "new");
}

static void on_disconnected(void *arg, const char *why)
{
    (void)arg;
    ea_log(EA_LOG_WARN, "mqtt input: %s", why);
}

static void on_message(void *arg, const char *topic, size_t topic_len, const void *payload, size_t len, int qos,
                       int retain)
{
    (void)qos;
    (void)retain;
    ea_mqtt_sub *s = arg;
    ea_metrics *m = ea_agent_metrics(s->agent);
    ea_arena ar = {.max = len * 24 + 65536};
    char err[300];
    ea_node *root = ea_json_parse(&ar, payload, len, err, sizeof err);
    if (!root || (root->type != EA_N_OBJ && root->type != EA_N_ARR)) {
        m->received++;
        m->rejected++;
        ea_log(EA_LOG_DEBUG, "mqtt input %.*s: %s", (int)topic_len, topic, root ? "expected an object or array" : err);
        ea_arena_free(&ar);
        return;
    }
    /* the topic becomes a tag: build a one-member object node chain in the arena */
    for (ea_node *o = root->type == EA_N_OBJ ? root : root->child; o; o = root->type == EA_N_OBJ ? NULL : o->next) {
        if (o->type != EA_N_OBJ) {
            m->received++;
            m->rejected++;
            continue;
        }
        ea_node *t = ea_arena_alloc(&ar, sizeof *t);
        char *ts = t ? ea_arena_strndup(&ar, topic, topic_len) : NULL;
        if (ts) {
            t->type = EA_N_STR;
            t->key = "topic";
            t->klen = 5;
            t->s = ts;
            t->slen = topic_len;
            t->next = o->child;
            o->child = t;
        }
        if (ea_agent_ingest_json_object(s->agent, o, "mqtt", err, sizeof err) == -1)
            ea_log(EA_LOG_DEBUG, "mqtt input %.*s: %s", (int)topic_len, topic, err);
    }
    ea_arena_free(&ar);
}

ea_mqtt_sub *ea_mqtt_sub_new(struct ea_agent *a, const char *url, const ea_node *topics, char *err, size_t errlen)
{
    ea_url u;
    if (ea_url_parse(url, &u, err, errlen) < 0)
        return NULL;
    if (strcmp(u.scheme, "mqtt") && strcmp(u.scheme, "mqtts")) {
        snprintf(err, errlen, "mqtt_in.url '%s': expected mqtt:// or mqtts://", url);
        return NULL;
    }
    if (!topics || !topics->child) {
        snprintf(err, errlen, "mqtt_in.topics: at least one topic filter is needed with mqtt_in.url");
        return NULL;
    }
    ea_mqtt_sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->agent = a;
    const ea_config *c = ea_agent_config(a);
    char id[160];
    snprintf(id, sizeof id, "edgeagent-in-%s", c->device_id ? c->device_id : "local");
    ea_mqtt_client_config mc = {.host = u.host,
                                .port = u.port,
                                .tls = u.tls,
                                .client_id = id,
                                .clean_session = 0,
                                .version = c->mqtt_in_version};
    ea_mqtt_client_events ev = {.connected = on_connected, .disconnected = on_disconnected, .message = on_message,
                                .arg = s};
    if (!(s->client = ea_mqtt_client_new(ea_agent_loop(a), &mc, &ev, err, errlen))) {
        free(s);
        return NULL;
    }
    for (const ea_node *t = topics->child; t; t = t->next)
        if (ea_mqtt_client_subscribe(s->client, t->s, 1) < 0) {
            snprintf(err, errlen, "mqtt_in.topics: invalid topic filter '%s'", t->s);
            ea_mqtt_sub_free(s);
            return NULL;
        }
    ea_mqtt_client_start(s->client);
    return s;
}

void ea_mqtt_sub_free(ea_mqtt_sub *s)
{
    if (!s)
        return;
    ea_mqtt_client_disconnect(s->client);
    ea_mqtt_client_free(s->client);
    free(s);
}
