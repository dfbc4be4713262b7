/*
 * Errors as values. Every library function that can fail takes an `es_error *err` as its last
 * argument, fills it once with a code (one of the documented exit codes below) and a one-line
 * message that names the input (file, entry, offset) and what is wrong, and returns -1 (or NULL).
 * The CLI prints err->msg once, at the top, and exits with err->code. Nothing below the CLI
 * prints errors itself.
 *
 * The codes are the exit codes of every edgeslim command; docs/exit-codes.md lists them.
 */
#ifndef ES_UTIL_ERROR_H
#define ES_UTIL_ERROR_H

#include <stddef.h>

enum es_exit {
    ES_OK = 0,
    ES_EFAIL = 1,        /* internal error, out of memory, anything not below */
    ES_EUSAGE = 2,       /* bad command line */
    ES_EIO = 3,          /* cannot read or write a file (missing, permission, disk full) */
    ES_EFORMAT = 4,      /* malformed input: invalid JSON, truncated tar/gzip, bad media type */
    ES_EDIGEST = 5,      /* digest or size mismatch, blob named but missing */
    ES_EUNSAFE = 6,      /* hostile content: path escape, link escape, device node, bomb, absurd size */
    ES_EUNSUPPORTED = 7, /* valid but not supported here: platform not in index, unknown transport */
    ES_EGATE = 8,        /* a --ci gate failed (inspect) */
    ES_EVERIFY = 9,      /* slim: the slim image failed a probe the original passed */
    ES_EPROBE = 10,      /* slim: a probe failed on the original image (bad probe) */
    ES_ERUN = 11,        /* run: the container could not be started */
    ES_ELARGER = 12,     /* slim: output would not be smaller than the input; nothing written */
};

typedef struct es_error {
    int code;        /* enum es_exit; 0 while no error */
    int sys_errno;   /* errno at the failure, or 0 */
    char msg[1024];  /* one line, no trailing newline */
} es_error;

/* Fills err (if not NULL and not already set) and returns -1. printf-style message. */
int es_err(es_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(errno)" and recording errno. */
int es_err_sys(es_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes an already-set message with more context ("reading oci:/x: " + old message). */
int es_err_prefix(es_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void es_err_clear(es_error *err);

/* Cleanup helpers in the style of crun: variables released when they leave scope. */
void es_cleanup_free_fn(void *p);
void es_cleanup_close_fn(int *fd);
void es_cleanup_fclose_fn(void *f);
#define es_cleanup_free __attribute__((cleanup(es_cleanup_free_fn)))
#define es_cleanup_close __attribute__((cleanup(es_cleanup_close_fn)))
#define es_cleanup_fclose __attribute__((cleanup(es_cleanup_fclose_fn)))

/* Allocation that aborts with a message on out-of-memory (there is nothing useful to do). */
void *es_xmalloc(size_t n);
void *es_xcalloc(size_t n, size_t sz);
void *es_xrealloc(void *p, size_t n);
char *es_xstrdup(const char *s);
char *es_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
