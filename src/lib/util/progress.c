/*
 * Progress bar on stderr. Drawn only when stderr is a terminal and progress is enabled; redraws
 * at most ten times a second so it costs nothing on hot paths.
 */
#include "util/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"

struct es_progress {
    char label[64];
    int64_t total, done;
    double last;
};

static int enabled = -1;

void es_progress_enable(int on)
{
    enabled = on;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

es_progress *es_progress_new(const char *label, int64_t total)
{
    if (enabled == -1) enabled = isatty(STDERR_FILENO);
    if (!enabled) return NULL;
    es_progress *p = es_xcalloc(1, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    return p;
}

static void human(int64_t n, char *buf, size_t len)
{
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, i++;
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void draw(es_progress *p)
{
    char a[32], b[32];
    human(p->done, a, sizeof a);
    if (p->total > 0) {
        int width = 30;
        double f = (double)p->done / (double)p->total;
        if (f > 1) f = 1;
        int fill = (int)(f * width);
        char bar[64];
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(width - fill));
        bar[width] = 0;
        human(p->total, b, sizeof b);
        fprintf(stderr, "\r\033[K%-20s [%s] %3d%% %s / %s", p->label, bar, (int)(f * 100), a, b);
    } else {
        fprintf(stderr, "\r\033[K%-20s %s", p->label, a);
    }
    fflush(stderr);
}

void es_progress_add(es_progress *p, int64_t n)
{
    if (!p) return;
    p->done += n;
    double t = now_s();
    if (t - p->last >= 0.1) {
        p->last = t;
        draw(p);
    }
}

void es_progress_set_label(es_progress *p, const char *label)
{
    if (!p) return;
    snprintf(p->label, sizeof p->label, "%s", label);
    draw(p);
}

void es_progress_done(es_progress *p)
{
    if (!p) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
    free(p);
}
