/*
 * outputs/output.h: the interface of a northbound output (MQTT, HTTP). The core owns durability:
 * records live in the spool until the output reports them acked, so an output never buffers more
 * than its in-flight window and destroy() loses nothing. Records are opaque payload bytes (JSON
 * objects made by the pipeline) with the spool's sequence number.
 *
 * Contract: offer() copies what it needs before returning; the core re-offers everything not
 * acked after a reconnect (at-least-once), so an output may drop its in-flight window on
 * disconnect. The core offers on every loop iteration and after every ack, so an output needs no
 * "kick" call to get more records.
 */
#ifndef EA_OUTPUTS_OUTPUT_H
#define EA_OUTPUTS_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct ea_record_ref {
    uint64_t seq;
    const void *data;
    size_t len;
} ea_record_ref;

typedef struct ea_output_events {
    /* delivery of record seq confirmed upstream (PUBACK / HTTP 2xx); may be called for each seq in any order */
    void (*acked)(void *arg, uint64_t seq);
    /* MQTT 5: the broker refused record seq for good (PUBACK reason >= 0x80, or bigger than its Maximum
     * Packet Size): it is done with like an acked one but counted as dropped; NULL = treat as acked */
    void (*refused)(void *arg, uint64_t seq, const char *why);
    /* uplink up/down, for health and logs */
    void (*state)(void *arg, int connected, const char *why);
    /* a message arrived on the control topic (MQTT) — raw bytes; the core verifies + applies */
    void (*control)(void *arg, const void *payload, size_t len);
    void *arg;
} ea_output_events;

typedef struct ea_output_config {
    const char *url;       /* mqtt://host:port/topic, mqtts://..., http://host:port/path, https://... */
    const char *client_id; /* mqtt */
    const char *ca_file, *cert_file, *key_file; /* TLS: server verification against ca_file (default: system bundle /etc/ssl/certs/ca-certificates.crt), client cert/key */
    const char *username, *password, *bearer_token;
    const char *status_topic;  /* LWT + retained "online"/"offline"; NULL = <topic>/status */
    const char *control_topic; /* subscribed desired-config topic; NULL = none */
    int keepalive_s;           /* 30 */
    int max_inflight;          /* 64 */
    int mqtt_version;          /* mqtt: 4 (3.1.1, default) or 5 */
    int batch_max;             /* http: records per POST (256) */
    int gzip;                  /* http: gzip the body */
    uint32_t backoff_min_ms, backoff_max_ms; /* 500, 60000: capped exponential with jitter, retries unlimited */
} ea_output_config;

typedef struct ea_output ea_output;

typedef struct ea_output_ops {
    const char *scheme; /* "mqtt" (handles mqtt and mqtts), "http" (http and https) */
    ea_output *(*create)(const ea_output_config *cfg, ea_loop *loop, const ea_output_events *ev, char *err, size_t errlen);
    /* takes up to n records into flight (copies what it needs); returns how many were taken (0 when not connected or window full) */
    size_t (*offer)(ea_output *o, const ea_record_ref *recs, size_t n);
    /* best-effort publish of a small status document (applied config version): mqtt publishes to <status_topic>/<suffix>; http may ignore */
    void (*report)(ea_output *o, const char *topic_suffix, const void *data, size_t len);
    int (*connected)(ea_output *o);
    void (*stats)(ea_output *o, uint64_t *retries, uint64_t *reconnects);
    void (*destroy)(ea_output *o); /* drains nothing: unacked records stay in the spool */
} ea_output_ops;

/* defined by agent-uplink in outputs/mqtt.c, outputs/http.c */
extern const ea_output_ops ea_output_mqtt, ea_output_http;

#endif
