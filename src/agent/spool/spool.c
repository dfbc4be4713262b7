/*
 * spool/spool.c: append-only segment files with per-record CRC32C, fsync policies, a byte cap,
 * an ack watermark kept in a small atomically-replaced file, and on-demand reads for delivery.
 * The format and invariants are in spool.h; the reasons are in docs/DESIGN.md ("edgeagent spool").
 *
 * Recovery: only the last segment can have a torn tail (segments are closed, and synced under
 * always/batch, before the next is created), so open() scans that one and truncates after its last
 * valid record. A bad record anywhere else is found while reading for delivery: the reader
 * resynchronises on the next magic whose checksum holds, counts the skip once, and treats the
 * sequence numbers it jumped over as done (so the ack watermark can pass the hole).
 */
#include "spool/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/crc32c.h"

#define MAGIC "EAR1"
#define ARENA_MIN (128u * 1024u)
#define PEEK_MAX 1024u

typedef struct seg {
    uint64_t first_seq;
    uint64_t size;
} seg;

typedef struct peek_pos {
    uint64_t seg_first, end_off, seq;
} peek_pos;

struct ea_spool {
    ea_spool_config cfg;
    int dirfd;
    seg *segs;
    size_t nsegs, capsegs;
    int wfd; /* active (last) segment, append only */
    uint64_t next_seq, durable_seq, acked_seq, acked_persisted;
    uint32_t unsynced;
    uint64_t unsynced_since_ms;
    uint64_t total_bytes;
    /* delivery cursor */
    uint64_t cur_seg, cur_off, cur_last;
    int rfd;
    uint64_t rfd_seg;
    char *arena;
    size_t arena_cap;
    peek_pos pos[PEEK_MAX];
    size_t npeek;
    uint64_t scan_seg, scan_off; /* where a peek that returned nothing stopped */
    uint64_t bad_hw_seg, bad_hw_off; /* furthest bad position already counted */
    unsigned char ackbits[EA_SPOOL_ACK_WINDOW / 8];
    ea_spool_stats st;
};

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static uint32_t record_crc(const unsigned char *hdr, const void *payload, size_t len)
{
    uint32_t c = ea_crc32c(0, hdr + 4, 12); /* len + seq */
    return ea_crc32c(c, payload, len);
}

typedef struct rec {
    uint64_t seq;
    uint32_t len;
    const unsigned char *payload;
} rec;

/* 1: valid record at p (r filled); 0: plausible but incomplete within avail; -1: not a record. */
static int parse_at(const unsigned char *p, size_t avail, rec *r)
{
    if (avail < EA_SPOOL_HDR)
        return avail == 0 || memcmp(p, MAGIC, avail < 4 ? avail : 4) == 0 ? 0 : -1;
    if (memcmp(p, MAGIC, 4) != 0)
        return -1;
    uint32_t len = get_u32(p + 4);
    if (len > EA_SPOOL_MAX_RECORD)
        return -1;
    if (avail - EA_SPOOL_HDR < len)
        return 0;
    if (record_crc(p, p + EA_SPOOL_HDR, len) != get_u32(p + 16))
        return -1;
    r->len = len;
    r->seq = get_u64(p + 8);
    r->payload = p + EA_SPOOL_HDR;
    return 1;
}

/* Next offset >= from where a valid record starts in a complete region, or len. */
static size_t resync(const unsigned char *p, size_t len, size_t from, rec *r)
{
    for (size_t off = from; off + EA_SPOOL_HDR <= len;) {
        const unsigned char *m = memmem(p + off, len - off, MAGIC, 4);
        if (!m)
            break;
        off = (size_t)(m - p);
        if (parse_at(p + off, len - off, r) == 1)
            return off;
        off++;
    }
    return len;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, int e)
{
    if (!err || !errlen)
        return;
    snprintf(err, errlen, fmt, a);
    if (e) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, ": %s", strerror(e));
    }
}

static void seg_name(char *out, size_t n, uint64_t first) { snprintf(out, n, "seg-%016" PRIx64 ".log", first); }

static int cmp_seg(const void *a, const void *b)
{
    const seg *x = a, *y = b;
    return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

static int push_seg(ea_spool *s, uint64_t first, uint64_t size)
{
    if (s->nsegs == s->capsegs) {
        size_t n = s->capsegs ? s->capsegs * 2 : 16;
        seg *t = realloc(s->segs, n * sizeof *t);
        if (!t)
            return -1;
        s->segs = t;
        s->capsegs = n;
    }
    s->segs[s->nsegs++] = (seg){first, size};
    return 0;
}

static long find_seg(const ea_spool *s, uint64_t first)
{
    size_t lo = 0, hi = s->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->segs[mid].first_seq < first)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nsegs && s->segs[lo].first_seq == first ? (long)lo : -1;
}

static int sync_policy_on(const ea_spool *s) { return s->cfg.fsync_policy != EA_FSYNC_NONE; }

/* ------------------------------------------------------------------ ack bitmap and ack file */

static int ack_bit(const ea_spool *s, uint64_t seq)
{
    uint64_t i = seq % EA_SPOOL_ACK_WINDOW;
    return (s->ackbits[i / 8] >> (i % 8)) & 1;
}
static void ack_bit_set(ea_spool *s, uint64_t seq, int on)
{
    uint64_t i = seq % EA_SPOOL_ACK_WINDOW;
    if (on)
        s->ackbits[i / 8] |= (unsigned char)(1u << (i % 8));
    else
        s->ackbits[i / 8] &= (unsigned char)~(1u << (i % 8));
}

static void advance_watermark(ea_spool *s)
{
    while (s->acked_seq + 1 < s->next_seq && ack_bit(s, s->acked_seq + 1)) {
        ack_bit_set(s, s->acked_seq + 1, 0);
        s->acked_seq++;
    }
}

/* Moves the watermark to at least w (records dropped or skipped count as done). */
static void force_watermark(ea_spool *s, uint64_t w)
{
    if (w <= s->acked_seq)
        return;
    uint64_t from = s->acked_seq + 1;
    if (w - from < EA_SPOOL_ACK_WINDOW)
        for (uint64_t q = from; q <= w; q++)
            ack_bit_set(s, q, 0);
    else
        memset(s->ackbits, 0, sizeof s->ackbits);
    s->acked_seq = w;
    advance_watermark(s);
}

void ea_spool_ack(ea_spool *s, uint64_t seq)
{
    if (seq <= s->acked_seq || seq >= s->next_seq || seq - s->acked_seq > EA_SPOOL_ACK_WINDOW)
        return;
    ack_bit_set(s, seq, 1);
    advance_watermark(s);
}

static int read_ack_file(ea_spool *s, uint64_t *w)
{
    int fd = openat(s->dirfd, "ack", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    unsigned char b[12];
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n != 12 || ea_crc32c(0, b, 8) != get_u32(b + 8))
        return -1;
    *w = get_u64(b);
    return 0;
}

static int write_ack_file(ea_spool *s, uint64_t w)
{
    unsigned char b[12];
    put_u64(b, w);
    put_u32(b + 8, ea_crc32c(0, b, 8));
    int fd = openat(s->dirfd, "ack.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    /* no fsync: a watermark lost to a power cut only means redelivery (duplicates, never loss),
     * and a torn file fails its CRC and falls back to the oldest segment */
    int ok = write(fd, b, sizeof b) == (ssize_t)sizeof b;
    close(fd);
    if (!ok || renameat(s->dirfd, "ack.tmp", s->dirfd, "ack") < 0) {
        unlinkat(s->dirfd, "ack.tmp", 0);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ segments */

static void close_rfd(ea_spool *s)
{
    if (s->rfd >= 0)
        close(s->rfd);
    s->rfd = -1;
}

static void remove_first_seg(ea_spool *s)
{
    char name[64];
    seg_name(name, sizeof name, s->segs[0].first_seq);
    unlinkat(s->dirfd, name, 0);
    if (s->rfd >= 0 && s->rfd_seg == s->segs[0].first_seq)
        close_rfd(s);
    s->total_bytes -= s->segs[0].size;
    memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof *s->segs);
    s->nsegs--;
    if (s->cur_seg < s->segs[0].first_seq) {
        s->cur_seg = s->segs[0].first_seq;
        s->cur_off = 0;
        s->cur_last = s->acked_seq;
    }
    s->npeek = 0;
}

static int create_segment(ea_spool *s, uint64_t first, char *err, size_t errlen)
{
    char name[64];
    seg_name(name, sizeof name, first);
    int fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_err(err, errlen, "spool %s: cannot create segment", s->cfg.dir, errno);
        return -1;
    }
    if (sync_policy_on(s))
        fsync(s->dirfd); /* the new name must survive a power cut before its records are acked */
    if (push_seg(s, first, 0) < 0) {
        close(fd);
        set_err(err, errlen, "spool %s: out of memory", s->cfg.dir, 0);
        return -1;
    }
    s->wfd = fd;
    return 0;
}

/* Scans the last segment after a restart: truncates after the last valid record, returns the
 * next sequence number (or 0 when the segment holds no valid record). */
static uint64_t recover_last_segment(ea_spool *s, char *err, size_t errlen, int *failed)
{
    seg *g = &s->segs[s->nsegs - 1];
    char name[64];
    seg_name(name, sizeof name, g->first_seq);
    int fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        set_err(err, errlen, "spool %s: cannot open last segment", s->cfg.dir, errno);
        if (fd >= 0)
            close(fd);
        *failed = 1;
        return 0;
    }
    size_t len = (size_t)sb.st_size, valid_end = 0, off = 0;
    uint64_t next = 0;
    if (len) {
        const unsigned char *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            set_err(err, errlen, "spool %s: cannot map last segment", s->cfg.dir, errno);
            close(fd);
            *failed = 1;
            return 0;
        }
        while (off < len) {
            rec r;
            size_t at = off;
            if (parse_at(p + off, len - off, &r) != 1) {
                at = resync(p, len, off + 1, &r);
                if (at >= len)
                    break;
                /* a hole inside the segment: left for the reader to skip and count */
            }
            next = r.seq + 1;
            off = at + EA_SPOOL_HDR + r.len;
            valid_end = off;
        }
        munmap((void *)p, len);
    }
    if (valid_end < len) {
        s->st.corrupt++;
        if (ftruncate(fd, (off_t)valid_end) == 0)
            fsync(fd);
    }
    close(fd);
    g->size = valid_end;
    return next;
}

static int load_segments(ea_spool *s, char *err, size_t errlen)
{
    int dfd = dup(s->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        set_err(err, errlen, "spool %s: cannot list directory", s->cfg.dir, errno);
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "seg-", 4) != 0 || strlen(e->d_name) != 24 || strcmp(e->d_name + 20, ".log") != 0)
            continue;
        uint64_t first = strtoull(e->d_name + 4, &end, 16);
        struct stat sb;
        if (end != e->d_name + 20 || fstatat(s->dirfd, e->d_name, &sb, 0) < 0)
            continue;
        if (push_seg(s, first, (uint64_t)sb.st_size) < 0) {
            closedir(d);
            set_err(err, errlen, "spool %s: out of memory", s->cfg.dir, 0);
            return -1;
        }
    }
    closedir(d);
    unlinkat(s->dirfd, "ack.tmp", 0);
    if (s->nsegs > 1)
        qsort(s->segs, s->nsegs, sizeof *s->segs, cmp_seg);
    return 0;
}

static void apply_defaults(ea_spool_config *c)
{
    if (!c->batch_ms)
        c->batch_ms = 10;
    if (!c->batch_records)
        c->batch_records = 1000;
    if (!c->max_bytes)
        c->max_bytes = 256ull << 20;
    if (!c->segment_bytes)
        c->segment_bytes = 4ull << 20;
    if (c->segment_bytes > c->max_bytes / 4)
        c->segment_bytes = c->max_bytes / 4;
    if (c->segment_bytes < 4096)
        c->segment_bytes = 4096;
}

ea_spool *ea_spool_open(const ea_spool_config *cfg, char *err, size_t errlen)
{
    ea_spool *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "spool %s: out of memory", cfg->dir, 0);
        return NULL;
    }
    s->cfg = *cfg;
    apply_defaults(&s->cfg);
    s->wfd = s->rfd = -1;
    if (mkdir(cfg->dir, 0700) < 0 && errno != EEXIST) {
        set_err(err, errlen, "spool %s: cannot create directory", cfg->dir, errno);
        free(s);
        return NULL;
    }
    s->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        set_err(err, errlen, "spool %s: cannot open directory", cfg->dir, errno);
        free(s);
        return NULL;
    }
    if (load_segments(s, err, errlen) < 0) {
        ea_spool_close(s);
        return NULL;
    }
    uint64_t w = 0;
    int have_ack = read_ack_file(s, &w) == 0;
    uint64_t next = 1;
    if (s->nsegs) {
        int failed = 0;
        uint64_t n = recover_last_segment(s, err, errlen, &failed);
        if (failed) {
            ea_spool_close(s);
            return NULL;
        }
        next = n ? n : s->segs[s->nsegs - 1].first_seq;
        if (!have_ack || w + 1 < s->segs[0].first_seq)
            w = s->segs[0].first_seq - 1;
    }
    if (w >= next)
        next = w + 1;
    s->next_seq = next;
    s->acked_seq = s->acked_persisted = w;
    s->durable_seq = next - 1;
    for (size_t i = 0; i < s->nsegs; i++)
        s->total_bytes += s->segs[i].size;
    if (s->nsegs) {
        char name[64];
        seg_name(name, sizeof name, s->segs[s->nsegs - 1].first_seq);
        s->wfd = openat(s->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (s->wfd < 0) {
            set_err(err, errlen, "spool %s: cannot open last segment for writing", cfg->dir, errno);
            ea_spool_close(s);
            return NULL;
        }
    } else if (create_segment(s, next, err, errlen) < 0) {
        ea_spool_close(s);
        return NULL;
    }
    ea_spool_rewind(s);
    ea_spool_flush_acks(s);
    return s;
}

void ea_spool_close(ea_spool *s)
{
    if (!s)
        return;
    if (s->wfd >= 0) {
        if (sync_policy_on(s))
            fdatasync(s->wfd);
        if (s->acked_seq != s->acked_persisted)
            write_ack_file(s, s->acked_seq);
        close(s->wfd);
    }
    close_rfd(s);
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s->segs);
    free(s->arena);
    free(s);
}

/* ------------------------------------------------------------------ append */

static int roll_segment(ea_spool *s, char *err, size_t errlen)
{
    if (sync_policy_on(s) && fdatasync(s->wfd) < 0) {
        set_err(err, errlen, "spool %s: fsync failed", s->cfg.dir, errno);
        return -1;
    }
    s->durable_seq = s->next_seq - 1;
    s->unsynced = 0;
    close(s->wfd);
    s->wfd = -1;
    return create_segment(s, s->next_seq, err, errlen);
}

/* Makes room for `need` more bytes under the cap; 0 ok, -2 full. */
static int make_room(ea_spool *s, uint64_t need)
{
    while (s->total_bytes + need > s->cfg.max_bytes) {
        if (s->cfg.full_policy == EA_FULL_REFUSE || s->nsegs < 2)
            return -2;
        uint64_t end = s->segs[1].first_seq; /* records [first, end) go */
        uint64_t from = s->segs[0].first_seq > s->acked_seq + 1 ? s->segs[0].first_seq : s->acked_seq + 1;
        if (end > from)
            s->st.dropped_oldest += end - from;
        force_watermark(s, end - 1);
        remove_first_seg(s);
    }
    return 0;
}

int ea_spool_append(ea_spool *s, const void *data, size_t len, uint64_t *seq_out, char *err, size_t errlen)
{
    if (len > EA_SPOOL_MAX_RECORD) {
        set_err(err, errlen, "spool %s: record larger than 1 MiB", s->cfg.dir, 0);
        return -1;
    }
    uint64_t need = EA_SPOOL_HDR + len;
    seg *g = &s->segs[s->nsegs - 1];
    if (g->size && g->size + need > s->cfg.segment_bytes && roll_segment(s, err, errlen) < 0)
        return -1;
    if (make_room(s, need) < 0) {
        s->st.refused++;
        set_err(err, errlen, "spool %s: full", s->cfg.dir, 0);
        return -2;
    }
    g = &s->segs[s->nsegs - 1];
    unsigned char hdr[EA_SPOOL_HDR];
    memcpy(hdr, MAGIC, 4);
    put_u32(hdr + 4, (uint32_t)len);
    put_u64(hdr + 8, s->next_seq);
    put_u32(hdr + 16, record_crc(hdr, data, len));
    struct iovec iov[2] = {{hdr, EA_SPOOL_HDR}, {(void *)data, len}};
    ssize_t w = writev(s->wfd, iov, 2);
    if (w != (ssize_t)need) {
        int e = w < 0 ? errno : ENOSPC;
        if (w > 0 && ftruncate(s->wfd, (off_t)g->size) < 0) { /* never leave a torn record behind */
        }
        set_err(err, errlen, "spool %s: write failed", s->cfg.dir, e);
        return -1;
    }
    g->size += need;
    s->total_bytes += need;
    if (seq_out)
        *seq_out = s->next_seq;
    s->next_seq++;
    s->st.appended++;
    if (s->cfg.fsync_policy == EA_FSYNC_NONE)
        s->durable_seq = s->next_seq - 1;
    return 0;
}

uint64_t ea_spool_next_seq(const ea_spool *s) { return s->next_seq; }
uint64_t ea_spool_durable_seq(const ea_spool *s) { return s->durable_seq; }

int ea_spool_sync(ea_spool *s)
{
    if (s->durable_seq + 1 == s->next_seq)
        return 0;
    if (fdatasync(s->wfd) < 0)
        return -1;
    s->st.syncs++;
    s->durable_seq = s->next_seq - 1;
    s->unsynced = 0;
    return 0;
}

int ea_spool_commit(ea_spool *s, uint64_t now_ms)
{
    uint64_t pending = s->next_seq - 1 - s->durable_seq;
    if (!pending)
        return 0;
    switch (s->cfg.fsync_policy) {
    case EA_FSYNC_ALWAYS:
        return ea_spool_sync(s);
    case EA_FSYNC_BATCH:
        if (s->unsynced == 0)
            s->unsynced_since_ms = now_ms;
        s->unsynced = (uint32_t)(pending > UINT32_MAX ? UINT32_MAX : pending);
        if (pending >= s->cfg.batch_records)
            return ea_spool_sync(s);
        return 0;
    default:
        s->durable_seq = s->next_seq - 1;
        return 0;
    }
}

int64_t ea_spool_sync_due_in(const ea_spool *s, uint64_t now_ms)
{
    if (s->durable_seq + 1 == s->next_seq)
        return -1;
    uint64_t due = s->unsynced_since_ms + s->cfg.batch_ms;
    return due <= now_ms ? 0 : (int64_t)(due - now_ms);
}

/* ------------------------------------------------------------------ delivery */

/* Sequence numbers [from, to] are not on disk (skipped as corrupt): they count as done. */
static void mark_lost(ea_spool *s, uint64_t from, uint64_t to)
{
    if (from <= s->acked_seq + 1) {
        force_watermark(s, to);
        return;
    }
    for (uint64_t q = from; q <= to && q - s->acked_seq <= EA_SPOOL_ACK_WINDOW; q++)
        ea_spool_ack(s, q);
}

void ea_spool_rewind(ea_spool *s)
{
    uint64_t want = s->acked_seq + 1;
    size_t i = 0;
    while (i + 1 < s->nsegs && s->segs[i + 1].first_seq <= want)
        i++;
    s->cur_seg = s->segs[i].first_seq;
    s->cur_off = 0;
    s->cur_last = s->acked_seq;
    s->npeek = 0;
}

static int open_reader(ea_spool *s, uint64_t first)
{
    if (s->rfd >= 0 && s->rfd_seg == first)
        return 0;
    close_rfd(s);
    char name[64];
    seg_name(name, sizeof name, first);
    s->rfd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    s->rfd_seg = first;
    return s->rfd < 0 ? -1 : 0;
}

static void count_bad(ea_spool *s, uint64_t segf, uint64_t off)
{
    if (segf > s->bad_hw_seg || (segf == s->bad_hw_seg && off >= s->bad_hw_off)) {
        s->st.corrupt++;
        s->bad_hw_seg = segf;
        s->bad_hw_off = off + 1;
    }
}

static int ensure_arena(ea_spool *s, size_t n)
{
    if (s->arena_cap >= n)
        return 0;
    char *a = realloc(s->arena, n);
    if (!a)
        return -1;
    s->arena = a;
    s->arena_cap = n;
    return 0;
}

size_t ea_spool_peek(ea_spool *s, ea_record_ref *refs, size_t max)
{
    if (max > PEEK_MAX)
        max = PEEK_MAX;
    s->npeek = 0;
    if (ensure_arena(s, ARENA_MIN) < 0)
        return 0;
    uint64_t segf = s->cur_seg, off = s->cur_off, last = s->cur_last;
    size_t used = 0, n = 0;
    int bad_run = 0;
    uint64_t limit = s->durable_seq;
    if (limit > s->acked_seq + EA_SPOOL_ACK_WINDOW)
        limit = s->acked_seq + EA_SPOOL_ACK_WINDOW;
    while (n < max) {
        long idx = find_seg(s, segf);
        if (idx < 0)
            break;
        uint64_t seg_end = s->segs[idx].size;
        if (off >= seg_end) {
            if ((size_t)idx + 1 >= s->nsegs)
                break;
            segf = s->segs[idx + 1].first_seq;
            off = 0;
            continue;
        }
        size_t room = s->arena_cap - used;
        if (room < EA_SPOOL_HDR + 64 && n)
            break;
        size_t want = seg_end - off < room ? (size_t)(seg_end - off) : room;
        if (open_reader(s, segf) < 0)
            break;
        ssize_t got = pread(s->rfd, s->arena + used, want, (off_t)off);
        if (got <= 0)
            break;
        const unsigned char *p = (const unsigned char *)s->arena + used;
        size_t at = 0, glen = (size_t)got;
        int stop = 0;
        while (at < glen && n < max) {
            rec r;
            int pr = parse_at(p + at, glen - at, &r);
            if (pr == 0 && off + glen < seg_end) { /* record continues past this read */
                uint32_t rl = glen - at >= 8 ? get_u32(p + at + 4) : 0;
                if (n == 0 && at == 0 && ensure_arena(s, EA_SPOOL_HDR + rl + 1) == 0 && s->arena_cap > room) {
                    stop = 2; /* retry the same spot with the bigger arena */
                } else
                    stop = 1;
                break;
            }
            if (pr != 1) {
                if (!bad_run)
                    count_bad(s, segf, off + at);
                bad_run = 1;
                size_t nx = resync(p, glen, at + 1, &r);
                if (nx >= glen) {
                    /* nothing valid in this read: keep the last bytes in case a header straddles */
                    at = glen > at + EA_SPOOL_HDR && off + glen < seg_end ? glen - EA_SPOOL_HDR : glen;
                    break;
                }
                at = nx;
                continue;
            }
            if (r.seq > limit) {
                stop = 3;
                break;
            }
            bad_run = 0;
            if (r.seq > last + 1)
                mark_lost(s, last + 1, r.seq - 1);
            size_t end = at + EA_SPOOL_HDR + r.len;
            if (r.seq > last && r.seq > s->acked_seq && !ack_bit(s, r.seq)) {
                refs[n] = (ea_record_ref){.seq = r.seq, .data = r.payload, .len = r.len};
                s->pos[n] = (peek_pos){segf, off + end, r.seq};
                n++;
            }
            if (r.seq > last)
                last = r.seq;
            at = end;
        }
        if (stop == 2)
            continue;
        off += at;
        used += at;
        if (stop == 1 && n == 0 && used) {
            /* the arena is full of skipped records: restart at the arena's front */
            used = 0;
            continue;
        }
        if (stop)
            break;
        if (used >= s->arena_cap)
            break;
        if (at == 0)
            break;
    }
    s->npeek = n;
    if (n == 0) {
        /* nothing to hand out: remember how far the scan got so the next peek starts there */
        s->cur_seg = segf;
        s->cur_off = off;
        s->cur_last = last;
    }
    return n;
}

void ea_spool_advance(ea_spool *s, size_t n)
{
    if (n == 0 || n > s->npeek)
        return;
    s->cur_seg = s->pos[n - 1].seg_first;
    s->cur_off = s->pos[n - 1].end_off;
    s->cur_last = s->pos[n - 1].seq;
    s->npeek = 0;
}

int ea_spool_flush_acks(ea_spool *s)
{
    while (s->nsegs > 1 && s->segs[1].first_seq - 1 <= s->acked_seq)
        remove_first_seg(s);
    if (s->acked_seq == s->acked_persisted)
        return 0;
    if (write_ack_file(s, s->acked_seq) < 0)
        return -1;
    s->acked_persisted = s->acked_seq;
    return 0;
}

uint64_t ea_spool_pending(const ea_spool *s) { return s->durable_seq > s->acked_seq ? s->durable_seq - s->acked_seq : 0; }

void ea_spool_get_stats(const ea_spool *s, ea_spool_stats *st)
{
    *st = s->st;
    st->bytes = s->total_bytes;
    st->max_bytes = s->cfg.max_bytes;
    st->acked_seq = s->acked_seq;
    st->durable_seq = s->durable_seq;
    st->next_seq = s->next_seq;
    st->segments = s->nsegs;
}

int ea_spool_parse_fsync(const char *v)
{
    if (!strcmp(v, "always"))
        return EA_FSYNC_ALWAYS;
    if (!strcmp(v, "batch"))
        return EA_FSYNC_BATCH;
    if (!strcmp(v, "none"))
        return EA_FSYNC_NONE;
    return -1;
}

int ea_spool_parse_full(const char *v)
{
    if (!strcmp(v, "drop-oldest"))
        return EA_FULL_DROP_OLDEST;
    if (!strcmp(v, "refuse"))
        return EA_FULL_REFUSE;
    return -1;
}
