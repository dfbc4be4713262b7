/*
 * Index of an uncompressed tar (see tar_index.h). libarchive walks the headers (ustar, pax, GNU
 * long names all handled there); after archive_read_next_header the bytes consumed by the format
 * reader (archive_filter_bytes(a, 0)) are exactly the offset of the entry's data, because the tar
 * reader consumes the header blocks (and any pax/GNU extension blocks) and nothing more before the
 * data. Data is skipped with lseek (archive_read_open_fd on a regular file), so building the index
 * reads only headers. A compressed tarball is refused with a clear message instead of being
 * decompressed to a temporary file: docker/podman/skopeo never write one.
 */
#include "oci/tar_index.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layer/layer_reader.h"

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const es_tar_member *)a)->name, ((const es_tar_member *)b)->name);
}

void es_tar_index_free(es_tar_index *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->m[i].name);
        free(t->m[i].symlink);
    }
    free(t->m);
    if (t->fd >= 0) close(t->fd);
    free(t->path);
    free(t);
}

static int check_uncompressed(struct archive *a, const char *path, es_error *err)
{
    if (archive_filter_count(a) <= 1) return 0;
    return es_err(err, ES_EUNSUPPORTED,
                  "%s: the tarball is %s-compressed; decompress it first (e.g. gunzip/zstd -d) "
                  "since blobs are read in place", path, archive_filter_name(a, 0));
}

static int add_member(es_tar_index *t, size_t *cap, struct archive *a, struct archive_entry *e,
                      const es_limits *lim, es_error *err)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw) return es_err(err, ES_EFORMAT, "%s: entry %zu has no name", t->path, t->n);
    mode_t type = archive_entry_filetype(e);
    char *name = es_path_normalize(raw);
    if (!name) {
        if (type == AE_IFDIR) return 0; /* "./" itself */
        return es_err(err, ES_EUNSAFE, "%s: entry \"%.200s\": empty name or \"..\" component", t->path, raw);
    }
    if (type != AE_IFREG && type != AE_IFLNK) { /* directories and the rest: not blobs */
        free(name);
        return 0;
    }
    int64_t max_members = lim->max_layers * 8 + lim->max_index_entries * 2 + 64;
    if ((int64_t)t->n >= max_members) {
        free(name);
        return es_err(err, ES_EUNSAFE, "%s: more than %lld entries: not an image archive", t->path,
                      (long long)max_members);
    }
    if (t->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        t->m = es_xrealloc(t->m, *cap * sizeof *t->m);
    }
    es_tar_member *m = &t->m[t->n++];
    memset(m, 0, sizeof *m);
    m->name = name;
    if (type == AE_IFLNK) {
        const char *tg = archive_entry_symlink(e);
        m->symlink = es_xstrdup(tg ? tg : "");
        return 0;
    }
    m->is_reg = 1;
    m->size = archive_entry_size(e);
    m->off = archive_filter_bytes(a, 0);
    if (!archive_entry_size_is_set(e) || m->size < 0 || m->off < 0 || m->size > t->file_size ||
        m->off > t->file_size - m->size)
        return es_err(err, ES_EFORMAT, "%s: entry \"%.200s\" at offset %lld claims %lld bytes but the file has %lld",
                      t->path, name, (long long)m->off, (long long)m->size, (long long)t->file_size);
    if (archive_entry_sparse_count(e) > 0)
        return es_err(err, ES_EFORMAT, "%s: entry \"%.200s\" is a sparse file: not a blob", t->path, name);
    return 0;
}

static int walk_headers(es_tar_index *t, const es_limits *lim, es_error *err)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    int rc = -1;
    size_t cap = 0;
    /* libarchive reads through its own dup so our fd's position is untouched (we use pread). */
    int fd = dup(t->fd);
    if (fd < 0) {
        es_err_sys(err, ES_EIO, "%s: dup", t->path);
        goto out;
    }
    if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK) {
        es_err(err, ES_EFORMAT, "%s: not a tar archive: %s", t->path, archive_error_string(a));
        close(fd);
        goto out;
    }
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (check_uncompressed(a, t->path, err) < 0) goto out_close;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            es_err(err, ES_EFORMAT, "%s: bad tar header after entry %zu (offset %lld): %s", t->path, t->n,
                   (long long)archive_filter_bytes(a, 0), archive_error_string(a));
            goto out_close;
        }
        if (add_member(t, &cap, a, e, lim, err) < 0) goto out_close;
        if (archive_read_data_skip(a) != ARCHIVE_OK) {
            es_err(err, ES_EFORMAT, "%s: truncated at entry \"%.200s\": %s", t->path, archive_entry_pathname(e),
                   archive_error_string(a));
            goto out_close;
        }
    }
    if (check_uncompressed(a, t->path, err) < 0) goto out_close;
    rc = 0;
out_close:
    archive_read_close(a);
    close(fd);
out:
    archive_read_free(a);
    return rc;
}

static int sort_and_check_unique(es_tar_index *t, es_error *err)
{
    if (t->n) qsort(t->m, t->n, sizeof *t->m, member_cmp);
    for (size_t i = 1; i < t->n; i++)
        if (!strcmp(t->m[i - 1].name, t->m[i].name))
            return es_err(err, ES_EFORMAT, "%s: entry \"%.200s\" appears twice", t->path, t->m[i].name);
    return 0;
}

int es_tar_index_build(const char *path, const es_limits *lim, es_tar_index **out, es_error *err)
{
    es_tar_index *t = es_xcalloc(1, sizeof *t);
    t->path = es_xstrdup(path);
    t->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (t->fd < 0) {
        es_err_sys(err, ES_EIO, "%s: cannot open", path);
        es_tar_index_free(t);
        return -1;
    }
    struct stat st;
    if (fstat(t->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (errno == 0) errno = EINVAL;
        es_err(err, ES_EIO, "%s: not a regular file", path);
        es_tar_index_free(t);
        return -1;
    }
    t->file_size = st.st_size;
    if (walk_headers(t, lim, err) < 0 || sort_and_check_unique(t, err) < 0) {
        es_tar_index_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

static const es_tar_member *lookup(const es_tar_index *t, const char *name)
{
    es_tar_member key = {.name = (char *)name};
    return t->n ? bsearch(&key, t->m, t->n, sizeof *t->m, member_cmp) : NULL;
}

/* dir of `from` joined with a relative symlink target, ".." popping components; NULL if it
 * climbs above the archive root or is absolute. */
static char *resolve_link(const char *from, const char *target)
{
    if (target[0] == '/' || !target[0]) return NULL;
    size_t flen = strlen(from), cap = flen + strlen(target) + 2;
    char *out = es_xmalloc(cap);
    memcpy(out, from, flen + 1);
    char *slash = strrchr(out, '/');
    size_t o = slash ? (size_t)(slash - out) : 0;
    out[o] = 0;
    const char *p = target;
    while (*p) {
        const char *s = p;
        while (*p && *p != '/') p++;
        size_t len = (size_t)(p - s);
        if (*p) p++;
        if (len == 0 || (len == 1 && s[0] == '.')) continue;
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            if (o == 0) {
                free(out);
                return NULL;
            }
            char *up = memrchr(out, '/', o);
            o = up ? (size_t)(up - out) : 0;
            out[o] = 0;
            continue;
        }
        if (o) out[o++] = '/';
        memcpy(out + o, s, len);
        o += len;
        out[o] = 0;
    }
    return out;
}

const es_tar_member *es_tar_index_find(const es_tar_index *t, const char *name)
{
    char *cur = es_path_normalize(name);
    if (!cur) return NULL;
    for (int depth = 0; depth < 8; depth++) {
        const es_tar_member *m = lookup(t, cur);
        if (!m || m->is_reg) {
            free(cur);
            return m;
        }
        char *next = resolve_link(m->name, m->symlink);
        free(cur);
        if (!next) return NULL;
        cur = next;
    }
    free(cur);
    return NULL;
}

es_reader *es_tar_index_open(const es_tar_index *t, const es_tar_member *m)
{
    char *name = es_xasprintf("%s: %s", t->path, m->name);
    es_reader *r = es_reader_fd_range(t->fd, m->off, m->size, name);
    free(name);
    return r;
}
