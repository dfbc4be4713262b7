/*
 * Read-ahead of a reader in a background thread: a ring of fixed-size chunks filled by a
 * producer (which runs the whole pull chain below it: file read, blob hash, decompression) and
 * drained by the consumer (tar hash and parsing). On two cores this runs inflate beside sha256
 * and tar parsing, the same split as `zcat | sha256sum`.
 * Invariants: a chunk handed to the consumer stays untouched until the consumer asks for the
 * next one; the producer stops at the first error or at end of stream and the error is
 * reported after all chunks produced before it; es_prefetch_free always joins the thread.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "layer/layer_internal.h"

#define CHUNK (1024 * 1024)
#define NCHUNKS 4

typedef struct {
    unsigned char *buf;
    size_t len;
} chunk;

struct es_prefetch {
    es_reader *src;
    int threaded;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chunk ring[NCHUNKS];
    size_t head, count; /* consumer reads ring[head]; count chunks ready */
    int held;           /* consumer holds ring[head] (returned last call) */
    int done, stop, failed;
    es_error err;
};

/* Fills one chunk as far as possible: fewer, larger chunks cost less locking and hashing. */
static ssize_t fill_chunk(es_prefetch *p, chunk *c, es_error *err)
{
    c->len = 0;
    while (c->len < CHUNK) {
        ssize_t k = es_reader_read(p->src, c->buf + c->len, CHUNK - c->len, err);
        if (k < 0) return -1;
        if (k == 0) break;
        c->len += (size_t)k;
    }
    return (ssize_t)c->len;
}

static void *producer(void *arg)
{
    es_prefetch *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->count + (size_t)p->held >= NCHUNKS) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        size_t slot = (p->head + p->count) % NCHUNKS;
        pthread_mutex_unlock(&p->mu);

        es_error e = {0};
        ssize_t k = fill_chunk(p, &p->ring[slot], &e);

        pthread_mutex_lock(&p->mu);
        if (k < 0) {
            p->err = e;
            p->failed = 1;
        }
        if (k > 0) p->count++;
        if (k <= 0) p->done = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (k <= 0) return NULL;
    }
}

es_prefetch *es_prefetch_start(es_reader *src, int threaded)
{
    es_prefetch *p = es_xcalloc(1, sizeof *p);
    p->src = src;
    p->threaded = threaded;
    for (int i = 0; i < (threaded ? NCHUNKS : 1); i++) p->ring[i].buf = es_xmalloc(CHUNK);
    if (threaded) {
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cv, NULL);
        if (pthread_create(&p->th, NULL, producer, p) != 0) {
            pthread_mutex_destroy(&p->mu);
            pthread_cond_destroy(&p->cv);
            p->threaded = 0;
        }
    }
    return p;
}

static int next_unthreaded(es_prefetch *p, const void **buf, size_t *len, es_error *err)
{
    if (p->done) return 0;
    ssize_t k = fill_chunk(p, &p->ring[0], err);
    if (k <= 0) p->done = 1;
    if (k <= 0) return (int)k;
    *buf = p->ring[0].buf;
    *len = p->ring[0].len;
    return 1;
}

int es_prefetch_next(es_prefetch *p, const void **buf, size_t *len, es_error *err)
{
    if (!p->threaded) return next_unthreaded(p, buf, len, err);
    pthread_mutex_lock(&p->mu);
    if (p->held) {
        p->held = 0;
        p->head = (p->head + 1) % NCHUNKS;
        p->count--;
        pthread_cond_broadcast(&p->cv);
    }
    while (p->count == 0 && !p->done) pthread_cond_wait(&p->cv, &p->mu);
    int r;
    if (p->count > 0) {
        p->held = 1;
        *buf = p->ring[p->head].buf;
        *len = p->ring[p->head].len;
        r = 1;
    } else if (p->failed) {
        if (err && !err->code) *err = p->err;
        r = -1;
    } else {
        r = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return r;
}

void es_prefetch_free(es_prefetch *p)
{
    if (!p) return;
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->th, NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    es_reader_free(p->src);
    for (int i = 0; i < NCHUNKS; i++) free(p->ring[i].buf);
    free(p);
}

int es_layer_threads_enabled(void)
{
    const char *v = getenv("ES_LAYER_THREADS");
    return !(v && strcmp(v, "1") == 0);
}
