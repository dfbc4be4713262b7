/*
 * proto/mqtt_client.h: a non-blocking MQTT 3.1.1 / 5.0 client on the agent's event loop. Used by
 * the northbound output (outputs/mqtt.c: QoS 1 publishes, LWT, control topic) and by the southbound
 * device-topic input (inputs/mqtt_sub.c: subscriptions).
 *
 * Behaviour:
 *  - Connects (resolve, TCP, optional TLS, CONNECT/CONNACK) and reconnects forever with capped,
 *    jittered backoff after any failure; every failure is reported once through events.disconnected
 *    with a one-line reason (including TLS verification reasons).
 *  - clean_session = 0 by default: the broker keeps subscriptions and queued QoS 1 messages across
 *    reconnects (client id must be stable).
 *  - QoS 1 publishes take a slot in a fixed in-flight window (max_inflight) until PUBACK. On
 *    reconnect every unacknowledged PUBLISH is re-sent with DUP=1 and its original packet id
 *    (spec 4.4), before anything new. Nothing else is buffered: when the window is full or the
 *    client is not connected, publish returns 0 and the caller (the spool) keeps the record.
 *  - Subscriptions registered with ea_mqtt_client_subscribe() are (re)sent after each CONNACK;
 *    incoming QoS 1 messages are PUBACKed after the message callback returns.
 *  - Keepalive: PINGREQ when idle for half the keepalive; no PINGRESP within a keepalive = dead.
 *  - MQTT 5 (version = 5): CONNECT carries Session Expiry Interval 0xFFFFFFFF when clean_session
 *    is 0 (Clean Start 0: the session never expires) and Maximum Packet Size = max_packet; the
 *    CONNACK's Receive Maximum caps the window (never more QoS 1 in flight than the broker
 *    allows), its Maximum Packet Size makes publish refuse a bigger record (QoS 1: it is reported
 *    through events.acked with ack_reason 0x95 and counted in stats.too_large; it is never sent),
 *    its Server Keep Alive replaces keepalive_s and an Assigned Client Identifier is used for
 *    the following reconnects. A PUBACK reason code >= 0x80 (the broker refused the message) is
 *    reported through events.acked with ack_reason set and counted in stats.refused: it is not
 *    re-sent (see docs/DESIGN.md "MQTT 5"). A DISCONNECT from the broker is a failure whose
 *    reason names the reason code and the Reason String.
 *
 * Invariants: memory is bounded by max_inflight x the largest packet plus the transmit buffer cap;
 * callbacks may call publish; none may free the client.
 */
#ifndef EA_PROTO_MQTT_CLIENT_H
#define EA_PROTO_MQTT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct ea_mqtt_client ea_mqtt_client;

typedef struct ea_mqtt_client_config {
    const char *host;
    uint16_t port;
    int tls; /* verify the server with ca_file (NULL = system bundle) */
    const char *ca_file, *cert_file, *key_file; /* client certificate: both or neither */
    const char *client_id;                      /* required (persistent session key) */
    const char *username, *password;            /* NULL = none */
    int clean_session;                          /* 0 = persistent session */
    int keepalive_s;                            /* 0 = 30 */
    const char *will_topic, *will_payload;      /* NULL = no last will */
    int will_retain, will_qos;
    int max_inflight;                        /* 0 = 64; at most 65535 */
    uint32_t backoff_min_ms, backoff_max_ms; /* 0 = 500, 60000 */
    uint32_t connect_timeout_ms;             /* 0 = 10000: TCP + TLS + CONNACK */
    size_t max_packet;                       /* largest incoming packet; 0 = 512 KiB */
    const char *hosts_path, *resolv_path;    /* resolver files (tests); NULL = /etc/... */
    int version;                             /* 0 or 4 = MQTT 3.1.1, 5 = MQTT 5.0 */
} ea_mqtt_client_config;

typedef struct ea_mqtt_client_events {
    void (*connected)(void *arg, int session_present);
    void (*disconnected)(void *arg, const char *why);
    void (*acked)(void *arg, uint64_t tag); /* PUBACK for a QoS 1 publish */
    void (*message)(void *arg, const char *topic, size_t topic_len, const void *payload, size_t len,
                    int qos, int retain);
    void *arg;
} ea_mqtt_client_events;

typedef struct ea_mqtt_client_stats {
    uint64_t resent;     /* PUBLISH re-sent with DUP after a reconnect */
    uint64_t reconnects; /* successful CONNACKs after the first */
    uint64_t connect_failures;
    uint64_t pings; /* PINGREQ sent */
    uint64_t published, acked, received;
    uint64_t oversized;   /* incoming PUBLISH over max_packet: dropped (PUBACKed), not fatal */
    uint64_t tls_resumed; /* TLS handshakes that resumed the previous session */
    uint64_t refused;     /* MQTT 5: PUBACK reason code >= 0x80 (not re-sent) */
    uint64_t too_large;   /* MQTT 5: QoS 1 publishes over the broker's Maximum Packet Size */
    uint32_t server_receive_maximum, server_maximum_packet; /* last CONNACK; 0 = none given */
    int keepalive_s;  /* in use: ours, or the broker's Server Keep Alive (MQTT 5) */
    uint64_t subacks; /* SUBACKs received */
} ea_mqtt_client_stats;

/* Copies cfg's strings. Does not connect yet. */
ea_mqtt_client *ea_mqtt_client_new(ea_loop *loop, const ea_mqtt_client_config *cfg,
                                   const ea_mqtt_client_events *ev, char *err, size_t errlen);
/* Starts (or restarts after stop/abort) connecting. */
void ea_mqtt_client_start(ea_mqtt_client *c);
/* Remembers a subscription (sent now if connected, and after every reconnect). qos 0 or 1. */
int ea_mqtt_client_subscribe(ea_mqtt_client *c, const char *filter, int qos);
/* qos 1: returns 1 when queued in the window, 0 when not connected or the window is full (in
 * MQTT 5 the window is also capped by the broker's Receive Maximum).
 * qos 0: returns 1 when queued, 0 when not connected or the transmit buffer is full. */
int ea_mqtt_client_publish(ea_mqtt_client *c, const char *topic, const void *payload, size_t len,
                           int qos, int retain, uint64_t tag);
int ea_mqtt_client_connected(const ea_mqtt_client *c);
int ea_mqtt_client_window_free(const ea_mqtt_client *c);
int ea_mqtt_client_has_tag(const ea_mqtt_client *c, uint64_t tag); /* tag in the in-flight window */
/* Inside events.acked: the PUBACK reason code (0 in 3.1.1; MQTT 5: 0x00 or 0x10 delivered, >= 0x80
 * refused by the broker, 0x95 also when the record exceeded the broker's Maximum Packet Size and
 * was never sent). */
int ea_mqtt_client_ack_reason(const ea_mqtt_client *c);
/* Protocol level in use (4 or 5). */
int ea_mqtt_client_version(const ea_mqtt_client *c);
void ea_mqtt_client_stats_get(const ea_mqtt_client *c, ea_mqtt_client_stats *out);
const char *ea_mqtt_client_last_error(const ea_mqtt_client *c);
/* Closes the socket without DISCONNECT (broker publishes the will) and stops reconnecting;
 * the in-flight window is kept for the next start. */
void ea_mqtt_client_abort(ea_mqtt_client *c);
/* Best-effort DISCONNECT (no will), then closes and stops. */
void ea_mqtt_client_disconnect(ea_mqtt_client *c);
void ea_mqtt_client_free(ea_mqtt_client *c);

#endif
