/*
 * The compressing sink of the layer writer: bytes in, compressed blob out to an fd, with the
 * blob's sha256 and size computed on the way.
 *
 * gzip is block-parallel in the way pigz does it: the input is cut into 256 KiB blocks, each
 * block is deflated on its own (raw deflate, primed with the previous 32 KiB of input as the
 * dictionary, ended with Z_SYNC_FLUSH so blocks concatenate on a byte boundary, the last one
 * with Z_FINISH), and the pieces are written in order inside ONE gzip member with a fixed header
 * (no name, mtime 0, OS 3) and a CRC combined with crc32_combine. Invariant: the bytes of a
 * block depend only on its data, its dictionary and the level, never on which thread or how
 * many threads ran it, so the output is identical for any thread count.
 *
 * zstd uses libzstd's own workers. Its output with nbWorkers >= 1 does not depend on the number
 * of workers but differs from nbWorkers = 0, so we always ask for at least one worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "layer/layer_internal.h"

#define GZ_BLOCK (256 * 1024)
#define GZ_DICT (32 * 1024)
#define OUT_BUF (1024 * 1024)

enum { JOB_FREE = 0, JOB_FILLING, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct {
    unsigned char *in; /* dictionary (dict_len bytes) followed by data (data_len bytes) */
    size_t dict_len, data_len;
    unsigned char *out;
    size_t out_cap, out_len;
    uLong crc;
    int last, state, failed;
    z_stream z;
    int z_init;
} gz_job;

struct es_compressor {
    int fd;
    es_compression kind;
    int level, threads;
    char *name;
    es_sha256 *h;
    int64_t out_size;
    int64_t kicked; /* output bytes handed to write-back so far (sync_file_range) */
    unsigned char *obuf; /* write buffer for none/zstd */
    size_t olen;
    /* gzip */
    gz_job *jobs;
    size_t njobs;
    uint64_t fill_seq, run_seq, write_seq; /* job sequence numbers; job s lives in jobs[s % njobs] */
    uLong crc;
    uint64_t isize;
    pthread_t *workers;
    size_t nworkers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    /* zstd */
    ZSTD_CCtx *zc;
};

static int write_all(es_compressor *c, const void *buf, size_t n, es_error *err)
{
    const unsigned char *p = buf;
    es_sha256_update(c->h, buf, n);
    c->out_size += (int64_t)n;
    while (n) {
        ssize_t k = write(c->fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return es_err_sys(err, ES_EIO, "%s: write", c->name);
        p += k;
        n -= (size_t)k;
    }
    /* Start write-back of every full 8 MiB behind us without waiting for it, so the fsync that
     * makes the image durable at the end finds little left to write. Advisory: errors ignored
     * (the fsync reports real ones). */
    const int64_t chunk = 8 << 20;
    if (c->out_size - c->kicked >= chunk) {
        int64_t len = (c->out_size - c->kicked) / chunk * chunk;
        (void)sync_file_range(c->fd, c->kicked, len, SYNC_FILE_RANGE_WRITE);
        c->kicked += len;
    }
    return 0;
}

static int buffered_write(es_compressor *c, const void *buf, size_t n, es_error *err)
{
    if (c->olen + n > OUT_BUF) {
        if (write_all(c, c->obuf, c->olen, err) < 0) return -1;
        c->olen = 0;
    }
    if (n >= OUT_BUF) return write_all(c, buf, n, err);
    memcpy(c->obuf + c->olen, buf, n);
    c->olen += n;
    return 0;
}

static int flush_buffer(es_compressor *c, es_error *err)
{
    int r = write_all(c, c->obuf, c->olen, err);
    c->olen = 0;
    return r;
}

/* ---------------------------------------------------------------- gzip blocks */

static void gz_compress_job(gz_job *j, int level)
{
    if (!j->z_init) {
        if (deflateInit2(&j->z, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            j->failed = 1;
            return;
        }
        j->z_init = 1;
    } else {
        deflateReset(&j->z);
    }
    if (j->dict_len) deflateSetDictionary(&j->z, j->in, (uInt)j->dict_len);
    unsigned char *data = j->in + j->dict_len;
    j->crc = crc32(0L, data, (uInt)j->data_len);
    j->z.next_in = data;
    j->z.avail_in = (uInt)j->data_len;
    j->out_len = 0;
    int flush = j->last ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
        if (j->out_cap - j->out_len < 64) {
            j->out_cap *= 2;
            j->out = es_xrealloc(j->out, j->out_cap);
        }
        j->z.next_out = j->out + j->out_len;
        j->z.avail_out = (uInt)(j->out_cap - j->out_len);
        int r = deflate(&j->z, flush);
        j->out_len = j->out_cap - j->z.avail_out;
        if (r == Z_STREAM_ERROR) {
            j->failed = 1;
            return;
        }
        if (flush == Z_FINISH ? r == Z_STREAM_END : (j->z.avail_in == 0 && j->z.avail_out != 0)) return;
    }
}

static void *gz_worker(void *arg)
{
    es_compressor *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        gz_job *j = NULL;
        while (!c->stop) {
            j = c->run_seq < c->fill_seq ? &c->jobs[c->run_seq % c->njobs] : NULL;
            if (j && j->state == JOB_QUEUED) break;
            j = NULL;
            pthread_cond_wait(&c->cv, &c->mu);
        }
        if (c->stop) break;
        j->state = JOB_RUNNING;
        c->run_seq++;
        pthread_mutex_unlock(&c->mu);
        gz_compress_job(j, c->level);
        pthread_mutex_lock(&c->mu);
        j->state = JOB_DONE;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Waits for the oldest job, writes its output, frees its slot. */
static int gz_write_oldest(es_compressor *c, es_error *err)
{
    gz_job *j = &c->jobs[c->write_seq % c->njobs];
    if (c->nworkers) {
        pthread_mutex_lock(&c->mu);
        while (j->state != JOB_DONE) pthread_cond_wait(&c->cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
    }
    if (j->failed) return es_err(err, ES_EFAIL, "%s: deflate failed", c->name);
    c->crc = crc32_combine(c->crc, j->crc, (z_off_t)j->data_len);
    c->isize += j->data_len;
    if (write_all(c, j->out, j->out_len, err) < 0) return -1;
    j->state = JOB_FREE;
    c->write_seq++;
    return 0;
}

/* Makes jobs[fill_seq] ready for filling, primed with the last 32 KiB of the previous block. */
static int gz_start_block(es_compressor *c, es_error *err)
{
    gz_job *j = &c->jobs[c->fill_seq % c->njobs];
    if (c->write_seq + c->njobs <= c->fill_seq && gz_write_oldest(c, err) < 0) return -1;
    j->dict_len = 0;
    j->data_len = 0;
    j->last = 0;
    if (c->fill_seq > 0) {
        gz_job *prev = &c->jobs[(c->fill_seq - 1) % c->njobs];
        size_t take = prev->data_len < GZ_DICT ? prev->data_len : GZ_DICT;
        memcpy(j->in, prev->in + prev->dict_len + prev->data_len - take, take);
        j->dict_len = take;
    }
    j->state = JOB_FILLING;
    return 0;
}

static void gz_submit_block(es_compressor *c, int last)
{
    gz_job *j = &c->jobs[c->fill_seq % c->njobs];
    j->last = last;
    if (!c->nworkers) {
        gz_compress_job(j, c->level);
        j->state = JOB_DONE;
        c->fill_seq++;
        return;
    }
    pthread_mutex_lock(&c->mu);
    j->state = JOB_QUEUED;
    c->fill_seq++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int gz_write(es_compressor *c, const void *buf, size_t n, es_error *err)
{
    const unsigned char *p = buf;
    while (n) {
        gz_job *j = &c->jobs[c->fill_seq % c->njobs];
        size_t room = GZ_BLOCK - j->data_len;
        size_t take = n < room ? n : room;
        memcpy(j->in + j->dict_len + j->data_len, p, take);
        j->data_len += take;
        p += take;
        n -= take;
        if (j->data_len == GZ_BLOCK) {
            gz_submit_block(c, 0);
            if (gz_start_block(c, err) < 0) return -1;
        }
    }
    return 0;
}

static int gz_finish(es_compressor *c, es_error *err)
{
    gz_submit_block(c, 1);
    while (c->write_seq < c->fill_seq)
        if (gz_write_oldest(c, err) < 0) return -1;
    unsigned char t[8];
    for (int i = 0; i < 4; i++) t[i] = (unsigned char)(c->crc >> (8 * i));
    for (int i = 0; i < 4; i++) t[4 + i] = (unsigned char)(c->isize >> (8 * i));
    return write_all(c, t, sizeof t, err);
}

static int gz_open(es_compressor *c, es_error *err)
{
    static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    c->nworkers = c->threads > 1 ? (size_t)c->threads : 0;
    c->njobs = c->nworkers ? 2 * c->nworkers + 1 : 2;
    c->jobs = es_xcalloc(c->njobs, sizeof *c->jobs);
    for (size_t i = 0; i < c->njobs; i++) {
        c->jobs[i].in = es_xmalloc(GZ_DICT + GZ_BLOCK);
        c->jobs[i].out_cap = compressBound(GZ_BLOCK) + 1024;
        c->jobs[i].out = es_xmalloc(c->jobs[i].out_cap);
    }
    c->crc = crc32(0L, Z_NULL, 0);
    if (c->nworkers) {
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        c->workers = es_xcalloc(c->nworkers, sizeof *c->workers);
        for (size_t i = 0; i < c->nworkers; i++) {
            if (pthread_create(&c->workers[i], NULL, gz_worker, c) != 0) {
                c->nworkers = i; /* run with the ones we got (0: inline) */
                break;
            }
        }
    }
    if (gz_start_block(c, err) < 0) return -1;
    return write_all(c, hdr, sizeof hdr, err);
}

static void gz_free(es_compressor *c)
{
    if (c->workers) {
        pthread_mutex_lock(&c->mu);
        c->stop = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        for (size_t i = 0; i < c->nworkers; i++) pthread_join(c->workers[i], NULL);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c->workers);
    }
    for (size_t i = 0; c->jobs && i < c->njobs; i++) {
        if (c->jobs[i].z_init) deflateEnd(&c->jobs[i].z);
        free(c->jobs[i].in);
        free(c->jobs[i].out);
    }
    free(c->jobs);
}

/* ---------------------------------------------------------------- zstd */

static int zstd_open(es_compressor *c, es_error *err)
{
    c->zc = ZSTD_createCCtx();
    if (!c->zc) return es_err(err, ES_EFAIL, "%s: cannot initialise zstd", c->name);
    ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, c->level);
    ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 1);
    int workers = c->threads > 1 ? c->threads : 1;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_nbWorkers, workers)))
        return es_err(err, ES_EFAIL, "%s: libzstd without multithreading: output would not be deterministic",
                      c->name);
    return 0;
}

static int zstd_run(es_compressor *c, const void *buf, size_t n, ZSTD_EndDirective mode, es_error *err)
{
    ZSTD_inBuffer in = {buf, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {c->obuf + c->olen, OUT_BUF - c->olen, 0};
        size_t r = ZSTD_compressStream2(c->zc, &out, &in, mode);
        if (ZSTD_isError(r)) return es_err(err, ES_EFAIL, "%s: zstd: %s", c->name, ZSTD_getErrorName(r));
        c->olen += out.pos;
        if (c->olen == OUT_BUF && flush_buffer(c, err) < 0) return -1;
        if (mode == ZSTD_e_end ? r == 0 : in.pos == in.size) return 0;
        if (out.pos == 0 && c->olen && flush_buffer(c, err) < 0) return -1;
    }
}

/* ---------------------------------------------------------------- interface */

int es_compressor_open(int fd, es_compression kind, int level, int threads, const char *name,
                       es_compressor **out, es_error *err)
{
    es_compressor *c = es_xcalloc(1, sizeof *c);
    c->fd = fd;
    c->kind = kind;
    c->threads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (c->threads < 1) c->threads = 1;
    c->level = level > 0 ? level : (kind == ES_COMP_ZSTD ? 3 : 4);
    c->name = es_xstrdup(name ? name : "layer");
    c->h = es_sha256_new();
    c->obuf = es_xmalloc(OUT_BUF);
    int r = 0;
    if (kind == ES_COMP_GZIP) r = gz_open(c, err);
    else if (kind == ES_COMP_ZSTD) r = zstd_open(c, err);
    else if (kind != ES_COMP_NONE) r = es_err(err, ES_EUSAGE, "%s: unknown compression", c->name);
    if (r < 0) {
        es_compressor_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int es_compressor_write(es_compressor *c, const void *buf, size_t n, es_error *err)
{
    if (n == 0) return 0;
    if (c->kind == ES_COMP_GZIP) return gz_write(c, buf, n, err);
    if (c->kind == ES_COMP_ZSTD) return zstd_run(c, buf, n, ZSTD_e_continue, err);
    return buffered_write(c, buf, n, err);
}

int es_compressor_finish(es_compressor *c, es_digest *digest, int64_t *size, es_error *err)
{
    int r = 0;
    if (c->kind == ES_COMP_GZIP) r = gz_finish(c, err);
    else if (c->kind == ES_COMP_ZSTD) r = zstd_run(c, NULL, 0, ZSTD_e_end, err);
    if (r == 0) r = flush_buffer(c, err);
    if (r < 0) return -1;
    es_sha256_final(c->h, digest);
    c->h = NULL;
    if (size) *size = c->out_size;
    return 0;
}

void es_compressor_free(es_compressor *c)
{
    if (!c) return;
    if (c->kind == ES_COMP_GZIP) gz_free(c);
    if (c->zc) ZSTD_freeCCtx(c->zc);
    es_sha256_free(c->h);
    free(c->obuf);
    free(c->name);
    free(c);
}
