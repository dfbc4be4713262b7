/* A progress bar on stderr for long work, drawn only when stderr is a terminal (else silent). */
#ifndef ES_UTIL_PROGRESS_H
#define ES_UTIL_PROGRESS_H

#include <stdint.h>

typedef struct es_progress es_progress;
/* total <= 0: unknown total (shows a byte counter). Returns NULL-safe handle; all calls accept NULL. */
es_progress *es_progress_new(const char *label, int64_t total);
void es_progress_add(es_progress *p, int64_t n);
void es_progress_set_label(es_progress *p, const char *label);
void es_progress_done(es_progress *p); /* clears the line and frees */
/* Global switch (the CLI sets it off for --json or --quiet). */
void es_progress_enable(int on);

#endif
