/*
 * dpkg and apk database parsers. Both formats are stanzas of "Key: value" (dpkg, with indented
 * continuation lines) or "K:value" (apk) lines separated by blank lines; we keep four fields.
 * Lines are handled as (pointer, length) slices of the input, which need not be NUL-terminated.
 */
#include "analyze/packages.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

typedef struct slice {
    const char *p;
    size_t n;
} slice;

typedef struct stanza {
    slice name, version, arch, size, status;
    int has_status;
} stanza;

static char *slice_dup(slice s)
{
    while (s.n && isspace((unsigned char)s.p[0]))
        s.p++, s.n--;
    while (s.n && isspace((unsigned char)s.p[s.n - 1]))
        s.n--;
    char *r = es_xmalloc(s.n + 1);
    if (s.n) memcpy(r, s.p, s.n);
    r[s.n] = 0;
    return r;
}

static int64_t slice_int(slice s, int64_t mult)
{
    char *t = slice_dup(s);
    char *end;
    long long v = strtoll(t, &end, 10);
    int ok = end != t && *end == 0 && v >= 0 && v < INT64_MAX / mult;
    free(t);
    return ok ? (int64_t)v * mult : -1;
}

static void list_push(es_package_list *l, const stanza *st, int64_t size_mult)
{
    if (!st->name.p) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = es_xrealloc(l->items, l->cap * sizeof *l->items);
    }
    es_package *p = &l->items[l->n++];
    p->name = slice_dup(st->name);
    p->version = slice_dup(st->version);
    p->arch = slice_dup(st->arch);
    p->installed_size = st->size.p ? slice_int(st->size, size_mult) : -1;
}

static int status_installed(slice s)
{
    while (s.n && isspace((unsigned char)s.p[s.n - 1]))
        s.n--;
    return s.n >= 9 && memcmp(s.p + s.n - 9, "installed", 9) == 0 &&
           (s.n == 9 || s.p[s.n - 10] == ' ');
}

/* Calls fn for each line; a line is [p, p+n) without the newline. */
static const char *next_line(const char *p, const char *end, slice *line)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    line->p = p;
    line->n = (size_t)(stop - p);
    if (line->n && line->p[line->n - 1] == '\r') line->n--;
    return nl ? nl + 1 : end;
}

static int key_is(slice line, const char *key, slice *value)
{
    size_t k = strlen(key);
    if (line.n < k || memcmp(line.p, key, k) != 0) return 0;
    value->p = line.p + k;
    value->n = line.n - k;
    return 1;
}

void es_dpkg_parse(const char *text, size_t len, es_package_list *out)
{
    out->manager = "dpkg";
    const char *p = text, *end = text + len;
    stanza st;
    memset(&st, 0, sizeof st);
    while (p < end) {
        slice line, v;
        p = next_line(p, end, &line);
        if (line.n == 0) {
            if (!st.has_status || status_installed(st.status)) list_push(out, &st, 1024);
            memset(&st, 0, sizeof st);
            continue;
        }
        if (line.p[0] == ' ' || line.p[0] == '\t') continue; /* continuation */
        if (key_is(line, "Package:", &v))
            st.name = v;
        else if (key_is(line, "Version:", &v))
            st.version = v;
        else if (key_is(line, "Architecture:", &v))
            st.arch = v;
        else if (key_is(line, "Installed-Size:", &v))
            st.size = v;
        else if (key_is(line, "Status:", &v))
            st.status = v, st.has_status = 1;
    }
    if (!st.has_status || status_installed(st.status)) list_push(out, &st, 1024);
}

void es_apk_parse(const char *text, size_t len, es_package_list *out)
{
    out->manager = "apk";
    const char *p = text, *end = text + len;
    stanza st;
    memset(&st, 0, sizeof st);
    while (p < end) {
        slice line, v;
        p = next_line(p, end, &line);
        if (line.n == 0) {
            list_push(out, &st, 1);
            memset(&st, 0, sizeof st);
            continue;
        }
        if (key_is(line, "P:", &v))
            st.name = v;
        else if (key_is(line, "V:", &v))
            st.version = v;
        else if (key_is(line, "A:", &v))
            st.arch = v;
        else if (key_is(line, "I:", &v))
            st.size = v;
    }
    list_push(out, &st, 1);
}

void es_package_list_free(es_package_list *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].version);
        free(l->items[i].arch);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

const char *es_package_db_kind(const char *path)
{
    if (!strcmp(path, "var/lib/dpkg/status")) return "dpkg";
    if (!strcmp(path, "lib/apk/db/installed")) return "apk";
    static const char sd[] = "var/lib/dpkg/status.d/";
    if (!strncmp(path, sd, sizeof sd - 1)) {
        const char *name = path + sizeof sd - 1;
        size_t n = strlen(name);
        if (n == 0 || strchr(name, '/')) return NULL;
        if (n > 8 && !strcmp(name + n - 8, ".md5sums")) return NULL;
        return "dpkg";
    }
    return NULL;
}
