/* Basic readers: a file range (pread), a whole file, memory; and slurping with a size cap. */
#include "util/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void es_reader_free(es_reader *r)
{
    if (!r) return;
    if (r->close) r->close(r);
    free(r);
}

typedef struct {
    int fd;
    int owned;
    int64_t off, end;
    char *name;
} fd_ctx;

static ssize_t fd_read(es_reader *r, void *buf, size_t n, es_error *err)
{
    fd_ctx *c = r->ctx;
    if (c->end >= 0) {
        if (c->off >= c->end) return 0;
        if ((int64_t)n > c->end - c->off) n = (size_t)(c->end - c->off);
    }
    for (;;) {
        ssize_t k = pread(c->fd, buf, n, c->off);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return es_err_sys(err, ES_EIO, "%s: read at offset %lld", c->name, (long long)c->off);
        if (k == 0 && c->end >= 0 && c->off < c->end)
            return es_err(err, ES_EFORMAT, "%s: truncated: ends at offset %lld, expected %lld bytes",
                          c->name, (long long)c->off, (long long)c->end);
        c->off += k;
        return k;
    }
}

static void fd_close(es_reader *r)
{
    fd_ctx *c = r->ctx;
    if (c->owned) close(c->fd);
    free(c->name);
    free(c);
}

static es_reader *fd_reader(int fd, int owned, int64_t off, int64_t end, const char *name)
{
    fd_ctx *c = es_xcalloc(1, sizeof *c);
    c->fd = fd;
    c->owned = owned;
    c->off = off;
    c->end = end;
    c->name = es_xstrdup(name);
    es_reader *r = es_xcalloc(1, sizeof *r);
    r->read = fd_read;
    r->close = fd_close;
    r->ctx = c;
    return r;
}

es_reader *es_reader_fd_range(int fd, int64_t off, int64_t len, const char *name)
{
    return fd_reader(fd, 0, off, len < 0 ? -1 : off + len, name);
}

es_reader *es_reader_file(const char *path, es_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        es_err_sys(err, ES_EIO, "%s: cannot open", path);
        return NULL;
    }
    return fd_reader(fd, 1, 0, -1, path);
}

typedef struct {
    const unsigned char *p;
    size_t len, off;
} mem_ctx;

static ssize_t mem_read(es_reader *r, void *buf, size_t n, es_error *err)
{
    (void)err;
    mem_ctx *c = r->ctx;
    size_t left = c->len - c->off;
    if (n > left) n = left;
    memcpy(buf, c->p + c->off, n);
    c->off += n;
    return (ssize_t)n;
}

static void mem_close(es_reader *r)
{
    free(r->ctx);
}

es_reader *es_reader_mem(const void *data, size_t len)
{
    mem_ctx *c = es_xcalloc(1, sizeof *c);
    c->p = data;
    c->len = len;
    es_reader *r = es_xcalloc(1, sizeof *r);
    r->read = mem_read;
    r->close = mem_close;
    r->ctx = c;
    return r;
}

int es_reader_slurp(es_reader *r, size_t max, const char *name, char **out, size_t *len,
                    es_error *err)
{
    size_t cap = 4096, n = 0;
    char *buf = es_xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max + 1) {
                free(buf);
                return es_err(err, ES_EUNSAFE, "%s: larger than the %zu-byte limit", name, max);
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = es_xrealloc(buf, cap + 1);
        }
        ssize_t k = es_reader_read(r, buf + n, cap - n, err);
        if (k < 0) {
            free(buf);
            return -1;
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    if (n > max) {
        free(buf);
        return es_err(err, ES_EUNSAFE, "%s: larger than the %zu-byte limit", name, max);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}
