/*
 * Probes of `slim`: how we know the app does its job, on the original and on the slim image.
 *   http://127.0.0.1:PORT/PATH[#STATUS]  GET inside the container's netns; passes on STATUS, or any
 *                                        2xx/3xx when none is given
 *   tcp://127.0.0.1:PORT                 a TCP connection is accepted
 *   exec:CMD                             CMD (split on blanks, quotes respected, no shell) run inside
 *                                        the container exits 0
 *   cmd:CMD                              `sh -c CMD` on the host, in the container's netns, exits 0
 * Every probe waits for readiness: it is retried until it passes or the timeout runs out.
 * Auto probes (exposed ports, no --probe) are HTTP GET / that pass on any status below 500 on the
 * original and must then give the same status on the slim image; a port that does not speak
 * HTTP becomes a TCP probe.
 */
#ifndef ES_SLIM_PROBE_H
#define ES_SLIM_PROBE_H

#include "sandbox/sandbox.h"
#include "util/error.h"

typedef enum { ES_PROBE_HTTP, ES_PROBE_TCP, ES_PROBE_EXEC, ES_PROBE_CMD } es_probe_kind;

typedef struct es_probe {
    es_probe_kind kind;
    char *spec;          /* as given (or generated), for messages */
    int port;
    char *path;          /* HTTP path, starts with '/' */
    long expect_status;  /* HTTP: 0 = any 2xx/3xx; > 0 exact; -1 = auto (see above) */
    char **argv;         /* exec/cmd */
    int is_auto;
    const char *log_path; /* exec/cmd output is appended here (NULL: inherited stdio) */
} es_probe;

typedef struct es_probe_result {
    int passed;
    long status;         /* HTTP status seen, or exit status of exec/cmd */
    char detail[512];    /* why it failed / what it saw */
} es_probe_result;

/* Parses a --probe value; ES_EUSAGE naming it when malformed. */
int es_probe_parse(const char *spec, es_probe *out, es_error *err);
/* An auto probe for an exposed port. */
void es_probe_auto(int port, es_probe *out);
void es_probe_free(es_probe *p);

/* Runs p against the running sandbox, retrying until it passes or timeout_ms passes. The result
 * says whether it passed; -1 only for errors that are not the probe's verdict. */
int es_probe_run(es_probe *p, es_sandbox *sb, int timeout_ms, es_probe_result *r, es_error *err);

/* Splits a command line on blanks with '...' and "..." quoting (NULL-terminated, malloc'd). */
char **es_split_command(const char *s);
void es_strv_free(char **v);

#endif
