/*
 * spool/spool.h: the agent's crash-safe, bounded, on-disk queue between ingest and the uplink.
 *
 * On disk: DIR/seg-<first seq, 16 hex>.log segment files, append-only, each record
 *   magic "EAR1" | u32 len | u64 seq | u32 crc32c(len, seq, payload) | payload     (little endian)
 * and DIR/ack (u64 watermark + u32 crc32c), replaced atomically (write tmp, rename): every
 * record with seq <= watermark was delivered and is never offered again after a restart.
 *
 * Invariants: sequence numbers are strictly increasing across segments and restarts; a segment
 * holds [its first seq, next segment's first seq); only the last segment is written; a record is
 * reported durable (ea_spool_durable_seq) only after the fsync policy made it so; records are read
 * back from disk on demand (memory does not grow with the backlog). Bad records (torn tail,
 * flipped bytes) are skipped and counted, the rest delivered.
 */
#ifndef EA_SPOOL_SPOOL_H
#define EA_SPOOL_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "outputs/output.h"

enum ea_fsync_policy { EA_FSYNC_NONE = 0, EA_FSYNC_BATCH = 1, EA_FSYNC_ALWAYS = 2 };
enum ea_full_policy { EA_FULL_DROP_OLDEST = 0, EA_FULL_REFUSE = 1 };

#define EA_SPOOL_MAX_RECORD (1u << 20)
#define EA_SPOOL_HDR 20u
#define EA_SPOOL_ACK_WINDOW 65536u /* records offered beyond the ack watermark at most */

typedef struct ea_spool_config {
    const char *dir;
    int fsync_policy;        /* enum ea_fsync_policy */
    uint32_t batch_ms;       /* batch: fsync at most this long after the first unsynced append (default 10) */
    uint32_t batch_records;  /* batch: or as soon as this many are unsynced (default 1000) */
    uint64_t max_bytes;      /* cap on all segment bytes (default 256 MiB) */
    int full_policy;         /* enum ea_full_policy */
    uint64_t segment_bytes;  /* roll size (default 4 MiB, at most max_bytes/4) */
} ea_spool_config;

typedef struct ea_spool_stats {
    uint64_t appended;        /* records appended since open */
    uint64_t bytes;           /* bytes in all segments */
    uint64_t max_bytes;
    uint64_t dropped_oldest;  /* unacked records deleted by drop-oldest */
    uint64_t refused;         /* appends refused because full (refuse policy) */
    uint64_t corrupt;         /* bad records skipped (torn tails, checksum mismatches) */
    uint64_t acked_seq, durable_seq, next_seq;
    uint64_t segments;
    uint64_t syncs;
} ea_spool_stats;

typedef struct ea_spool ea_spool;

/* Opens (creating DIR if needed), recovers: truncates a torn tail of the last segment, reads the
 * ack watermark, deletes fully acked segments. NULL with err filled on failure. */
ea_spool *ea_spool_open(const ea_spool_config *cfg, char *err, size_t errlen);
void ea_spool_close(ea_spool *s); /* syncs and persists the ack watermark */

/* Appends one record; *seq_out gets its sequence number (ea_spool_next_seq before the call).
 * Returns 0, -1 on I/O error (err filled), -2 when full under the refuse policy. */
int ea_spool_append(ea_spool *s, const void *data, size_t len, uint64_t *seq_out, char *err, size_t errlen);
uint64_t ea_spool_next_seq(const ea_spool *s);
/* After a group of appends (one request): ALWAYS syncs now; BATCH syncs if batch_records are
 * pending; NONE marks them durable. Returns -1 on I/O error. */
int ea_spool_commit(ea_spool *s, uint64_t now_ms);
/* BATCH: ms until the pending group must be synced (0 = now), -1 if nothing pending. */
int64_t ea_spool_sync_due_in(const ea_spool *s, uint64_t now_ms);
int ea_spool_sync(ea_spool *s); /* fdatasync the active segment now */
uint64_t ea_spool_durable_seq(const ea_spool *s);

/* Delivery. peek fills up to max refs starting at the send cursor (durable, unacked records in
 * seq order; data valid until the next spool call); advance moves the cursor past n of them;
 * rewind puts the cursor back at the first unacked record (after an uplink reconnect). */
size_t ea_spool_peek(ea_spool *s, ea_record_ref *refs, size_t max);
void ea_spool_advance(ea_spool *s, size_t n);
void ea_spool_rewind(ea_spool *s);
void ea_spool_ack(ea_spool *s, uint64_t seq);        /* any order */
int ea_spool_flush_acks(ea_spool *s);                /* persist watermark, delete acked segments */
uint64_t ea_spool_pending(const ea_spool *s);        /* durable records not yet acked */

void ea_spool_get_stats(const ea_spool *s, ea_spool_stats *st);
int ea_spool_parse_fsync(const char *s);             /* "always"|"batch"|"none", -1 otherwise */
int ea_spool_parse_full(const char *s);              /* "drop-oldest"|"refuse", -1 otherwise */

#endif
