/*
 * Path rules for layer entries: normalisation of tar paths and recognition of whiteouts.
 * Invariant: a normalised path is relative, non-empty, has no "." or ".." component, no empty
 * component and no leading or trailing "/". Anything that cannot be brought to that form
 * (a ".." component, or nothing left) is refused by returning NULL; the caller reports it.
 */
#include <stdlib.h>
#include <string.h>

#include "layer/layer_reader.h"

char *es_path_normalize(const char *path)
{
    if (!path) return NULL;
    size_t n = strlen(path);
    char *out = es_xmalloc(n + 1);
    size_t o = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/') p++;
        const char *start = p;
        while (*p && *p != '/') p++;
        size_t len = (size_t)(p - start);
        if (len == 0 || (len == 1 && start[0] == '.')) continue;
        if (len == 2 && start[0] == '.' && start[1] == '.') {
            free(out);
            return NULL;
        }
        if (o) out[o++] = '/';
        memcpy(out + o, start, len);
        o += len;
    }
    out[o] = 0;
    if (o == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static const char WH_PREFIX[] = ".wh.";
static const char WH_OPAQUE[] = ".wh..wh..opq";
static const char WH_META[] = ".wh..wh.";

es_whiteout es_whiteout_kind(const char *path, char **target)
{
    if (target) *target = NULL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    if (strncmp(base, WH_PREFIX, sizeof WH_PREFIX - 1) != 0) return ES_WH_NONE;
    if (strcmp(base, WH_OPAQUE) == 0) {
        if (target) {
            /* The root directory is "" (apply treats it as the root itself). */
            char *t = es_xmalloc(dirlen + 1);
            memcpy(t, path, dirlen);
            t[dirlen] = 0;
            *target = t;
        }
        return ES_WH_OPAQUE;
    }
    /* ".wh..wh.plnk" and other aufs metadata: a whiteout that hides nothing. */
    if (strncmp(base, WH_META, sizeof WH_META - 1) == 0) return ES_WH_FILE;
    const char *name = base + sizeof WH_PREFIX - 1;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return ES_WH_FILE;
    if (target) *target = dirlen ? es_xasprintf("%.*s/%s", (int)dirlen, path, name) : es_xstrdup(name);
    return ES_WH_FILE;
}
