/* Error values and small allocation/cleanup helpers shared by the whole library. */
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void vset(es_error *err, int code, int sys, const char *fmt, va_list ap)
{
    if (!err || err->code != 0) return;
    err->code = code;
    err->sys_errno = sys;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    if (sys) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(sys));
    }
    /* Messages quote names from untrusted input; keep them one line whatever those contain. */
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

int es_err(es_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, 0, fmt, ap);
    va_end(ap);
    return -1;
}

int es_err_sys(es_error *err, int code, const char *fmt, ...)
{
    int e = errno ? errno : EIO;
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, e, fmt, ap);
    va_end(ap);
    errno = e;
    return -1;
}

int es_err_prefix(es_error *err, const char *fmt, ...)
{
    if (!err || err->code == 0) return -1;
    char pre[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s%s", pre, old);
    return -1;
}

void es_err_clear(es_error *err)
{
    if (err) memset(err, 0, sizeof *err);
}

void es_cleanup_free_fn(void *p)
{
    free(*(void **)p);
}

void es_cleanup_close_fn(int *fd)
{
    if (*fd >= 0) close(*fd);
}

void es_cleanup_fclose_fn(void *f)
{
    FILE *fp = *(FILE **)f;
    if (fp) fclose(fp);
}

__attribute__((noreturn)) static void oom(size_t n)
{
    fprintf(stderr, "edgeslim: out of memory allocating %zu bytes\n", n);
    abort();
}

void *es_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *es_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) oom(n * sz);
    return p;
}

void *es_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *es_xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) oom(s ? strlen(s) : 0);
    return p;
}

char *es_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) oom(0);
    return s;
}
