/* health/health.c: renders /health, /ready and /metrics from the counters (see health.h). No
 * allocation beyond the reply buffer; the numbers are formatted by util/buf.c. */
#include "health/health.h"

#include <string.h>

#include "loop.h"

static void kv_u64(ea_buf *b, const char *k, uint64_t v, int comma)
{
    if (comma)
        ea_buf_putc(b, ',');
    ea_buf_putc(b, '"');
    ea_buf_puts(b, k);
    ea_buf_puts(b, "\":");
    ea_buf_put_u64(b, v);
}

/* Records refused: by the converters, plus whole requests refused before parsing (malformed
 * head, too large, unauthorized), each counted once because their record count is unknown. */
static uint64_t rejected_total(const ea_metrics *m, const ea_http_stats *hs)
{
    return m->rejected + hs->bad_requests + hs->unauthorized;
}

static void render_health(const ea_metrics *m, const ea_spool_stats *sp, const ea_http_stats *hs, ea_buf *b)
{
    uint64_t now = ea_wall_ms();
    ea_buf_puts(b, "{\"status\":");
    ea_buf_puts(b, m->draining ? "\"draining\"" : m->ready ? "\"ok\"" : "\"starting\"");
    ea_buf_puts(b, ",\"uptime_ms\":");
    ea_buf_put_u64(b, now - m->started_ms);
    ea_buf_puts(b, ",\"spool\":{");
    kv_u64(b, "bytes", sp->bytes, 0);
    kv_u64(b, "max_bytes", sp->max_bytes, 1);
    ea_buf_puts(b, ",\"use\":");
    ea_buf_put_double(b, sp->max_bytes ? (double)sp->bytes / (double)sp->max_bytes : 0);
    kv_u64(b, "segments", sp->segments, 1);
    kv_u64(b, "pending", sp->durable_seq > sp->acked_seq ? sp->durable_seq - sp->acked_seq : 0, 1);
    kv_u64(b, "acked_seq", sp->acked_seq, 1);
    kv_u64(b, "next_seq", sp->next_seq, 1);
    ea_buf_puts(b, "},\"uplink\":{\"connected\":");
    ea_buf_puts(b, m->uplink_connected ? "true" : "false");
    kv_u64(b, "state_age_ms", m->uplink_changed_ms ? now - m->uplink_changed_ms : now - m->started_ms, 1);
    ea_buf_puts(b, ",\"last_error\":");
    ea_buf_put_json_string(b, m->uplink_why, strlen(m->uplink_why));
    ea_buf_puts(b, "},\"drops\":{");
    kv_u64(b, "spool_dropped_oldest", sp->dropped_oldest, 0);
    kv_u64(b, "spool_refused", sp->refused, 1);
    kv_u64(b, "spool_corrupt", sp->corrupt, 1);
    kv_u64(b, "rejected", rejected_total(m, hs), 1);
    kv_u64(b, "filtered", m->filtered, 1);
    kv_u64(b, "uplink_refused", m->uplink_refused, 1);
    ea_buf_puts(b, "},\"records\":{");
    kv_u64(b, "received", m->received, 0);
    kv_u64(b, "accepted", m->accepted, 1);
    kv_u64(b, "delivered", m->delivered, 1);
    ea_buf_puts(b, "},\"config_version\":");
    ea_buf_put_i64(b, m->config_version);
    ea_buf_puts(b, "}\n");
}

static void metric(ea_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    ea_buf_puts(b, "# HELP edgeagent_");
    ea_buf_puts(b, name);
    ea_buf_putc(b, ' ');
    ea_buf_puts(b, help);
    ea_buf_puts(b, "\n# TYPE edgeagent_");
    ea_buf_puts(b, name);
    ea_buf_putc(b, ' ');
    ea_buf_puts(b, type);
    ea_buf_puts(b, "\nedgeagent_");
    ea_buf_puts(b, name);
    ea_buf_putc(b, ' ');
    ea_buf_put_u64(b, v);
    ea_buf_putc(b, '\n');
}

static void render_metrics(const ea_metrics *m, const ea_spool_stats *sp, const ea_http_stats *hs, ea_buf *b)
{
    metric(b, "records_received_total", "counter", "Records that arrived on any input.", m->received);
    metric(b, "records_accepted_total", "counter", "Records written to the spool.", m->accepted);
    metric(b, "records_rejected_total", "counter",
           "Records refused as malformed, too large or unauthorized (a refused request counts once).",
           rejected_total(m, hs));
    metric(b, "records_filtered_total", "counter", "Records no route passed.", m->filtered);
    metric(b, "records_delivered_total", "counter", "Records acknowledged by the uplink.", m->delivered);
    metric(b, "uplink_refused_total", "counter",
           "Records the MQTT 5 broker refused (PUBACK reason >= 0x80, or over its Maximum Packet Size): dropped.",
           m->uplink_refused);
    metric(b, "records_dropped_total", "counter",
           "Records lost: spool drop-oldest, refused when full, corrupt, refused by an MQTT 5 broker.",
           sp->dropped_oldest + sp->refused + sp->corrupt + m->uplink_refused);
    metric(b, "spool_dropped_oldest_total", "counter", "Unacknowledged records deleted by drop-oldest.",
           sp->dropped_oldest);
    metric(b, "spool_refused_total", "counter", "Records refused because the spool was full.", sp->refused);
    metric(b, "spool_corrupt_total", "counter", "Bad spool records skipped (torn or corrupt).", sp->corrupt);
    metric(b, "spooled_bytes", "gauge", "Bytes in spool segments.", sp->bytes);
    metric(b, "spool_pending_records", "gauge", "Durable records not yet acknowledged.",
           sp->durable_seq > sp->acked_seq ? sp->durable_seq - sp->acked_seq : 0);
    metric(b, "uplink_retries_total", "counter", "Uplink retries (re-sent records).", m->retries);
    metric(b, "uplink_reconnects_total", "counter", "Uplink reconnections.", m->reconnects);
    metric(b, "uplink_connected", "gauge", "1 when the uplink is connected.", (uint64_t)m->uplink_connected);
    metric(b, "config_applied_total", "counter", "Remote configurations applied.", m->config_applied);
    metric(b, "config_rejected_total", "counter", "Remote configurations refused (unsigned, bad signature, invalid).",
           m->config_rejected);
    metric(b, "http_requests_total", "counter", "HTTP requests answered.", hs->requests);
    metric(b, "http_bad_requests_total", "counter", "HTTP requests refused as malformed or too large.",
           hs->bad_requests);
    metric(b, "http_timeouts_total", "counter", "HTTP requests not received in time (408).", hs->timeouts);
    metric(b, "http_connections_refused_total", "counter", "Connections refused over the cap (503).",
           hs->conn_refused);
    metric(b, "http_connections", "gauge", "Open HTTP connections.", (uint64_t)hs->connections);
}

void ea_health_get(const ea_metrics *m, const ea_spool_stats *sp, const ea_http_stats *hs, const char *path,
                   ea_http_reply *rep)
{
    if (!strcmp(path, "/health")) {
        rep->status = 200;
        render_health(m, sp, hs, rep->body);
    } else if (!strcmp(path, "/ready")) {
        int ok = m->ready && !m->draining;
        rep->status = ok ? 200 : 503;
        ea_buf_puts(rep->body, ok ? "{\"ready\":true}\n" : "{\"ready\":false}\n");
    } else if (!strcmp(path, "/metrics")) {
        rep->status = 200;
        rep->content_type = "text/plain; version=0.0.4";
        render_metrics(m, sp, hs, rep->body);
    }
}
