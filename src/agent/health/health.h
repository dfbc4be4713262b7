/*
 * health/health.h: the agent's counters and the three read-only endpoints built from them:
 * /health (JSON: spool use, uplink state and age, drops), /ready (200 once inputs listen and the
 * spool is open, 503 while starting or draining) and /metrics (Prometheus text format 0.0.4).
 * Counters only grow (Prometheus counters); gauges are marked as such.
 */
#ifndef EA_HEALTH_HEALTH_H
#define EA_HEALTH_HEALTH_H
#include <stdint.h>

#include "inputs/http_ingest.h"
#include "spool/spool.h"

typedef struct ea_metrics {
    uint64_t received;        /* records that arrived (any input), valid or not */
    uint64_t accepted;        /* records spooled */
    uint64_t rejected;        /* records refused: malformed, too large, unauthorized */
    uint64_t filtered;        /* records no route passed */
    uint64_t refused_full;    /* records refused because the spool was full (refuse policy) */
    uint64_t delivered;       /* records acknowledged upstream */
    uint64_t uplink_refused;  /* MQTT 5: records the broker refused (PUBACK >= 0x80, too large): dropped */
    uint64_t retries, reconnects;
    uint64_t config_applied, config_rejected;
    int64_t config_version;   /* applied remote version, -1 none */
    int uplink_connected;
    uint64_t uplink_changed_ms; /* wall time of the last state change */
    char uplink_why[160];
    int ready, draining;
    uint64_t started_ms;
} ea_metrics;

/* Fills rep for GET path; leaves status 0 for unknown paths. */
void ea_health_get(const ea_metrics *m, const ea_spool_stats *sp, const ea_http_stats *hs, const char *path,
                   ea_http_reply *rep);
#endif
