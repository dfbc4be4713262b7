/*
 * A pull stream of bytes. Blob readers, decompressors and hashing wrappers all have this shape so
 * they can be stacked: file -> verify(digest,size) -> decompress -> hash(diff_id) -> tar.
 */
#ifndef ES_UTIL_READER_H
#define ES_UTIL_READER_H

#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

typedef struct es_reader es_reader;
struct es_reader {
    /* Returns bytes read (>0), 0 at end of stream, -1 with err set. */
    ssize_t (*read)(es_reader *r, void *buf, size_t n, es_error *err);
    /* Releases the reader (and any reader it wraps). May be NULL. */
    void (*close)(es_reader *r);
    void *ctx;
};

static inline ssize_t es_reader_read(es_reader *r, void *buf, size_t n, es_error *err)
{
    return r->read(r, buf, n, err);
}
void es_reader_free(es_reader *r); /* calls close, frees r; NULL is fine */

/* Reader over [off, off+len) of fd (pread; fd not owned). name is used in error messages. */
es_reader *es_reader_fd_range(int fd, int64_t off, int64_t len, const char *name);
/* Reader over a whole file opened by path (owned fd). NULL with err on failure. */
es_reader *es_reader_file(const char *path, es_error *err);
/* Reader over memory (not copied, not owned). */
es_reader *es_reader_mem(const void *data, size_t len);
/* Reads everything (at most max bytes, else ES_EUNSAFE naming `name`) into a malloc'd buffer
 * with a trailing NUL. */
int es_reader_slurp(es_reader *r, size_t max, const char *name, char **out, size_t *len, es_error *err);

#endif
