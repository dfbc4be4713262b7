/*
 * Feeds an es_analyzer from an image's layer streams (see inspect_image.h). Kept apart from the
 * core so the core's unit tests link without the transports. One pass: each layer is opened,
 * its entries turned into es_entry_event (type, header size, mode, owner, link target,
 * security.capability, a content reader for regular files) and finished, which checks its
 * digest, size and diff_id; an image whose layers fail verification gives no report.
 */
#include "analyze/inspect_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer/layer_reader.h"
#include "util/progress.h"

typedef struct read_ctx {
    es_layer_stream *s;
} read_ctx;

static ssize_t stream_read(void *ctx, void *buf, size_t n, es_error *err)
{
    return es_layer_stream_read(((read_ctx *)ctx)->s, buf, n, err);
}

static es_entry_type entry_type(struct archive_entry *e)
{
    if (archive_entry_hardlink(e)) return ES_ENTRY_HARDLINK;
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
        return ES_ENTRY_FILE;
    case AE_IFDIR:
        return ES_ENTRY_DIR;
    case AE_IFLNK:
        return ES_ENTRY_SYMLINK;
    default:
        return ES_ENTRY_OTHER;
    }
}

static void entry_capability(struct archive_entry *e, es_entry_event *ev)
{
    const char *name;
    const void *val;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK) {
        if (strcmp(name, "security.capability") != 0) continue;
        ev->capability = val;
        ev->capability_len = size;
    }
}

static void entry_event(struct archive_entry *e, read_ctx *rc, es_entry_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->path = archive_entry_pathname(e);
    ev->type = entry_type(e);
    ev->size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    ev->mode = (uint32_t)archive_entry_perm(e) & 07777;
    ev->uid = archive_entry_uid(e);
    ev->gid = archive_entry_gid(e);
    if (ev->type == ES_ENTRY_SYMLINK) ev->link_target = archive_entry_symlink(e);
    if (ev->type == ES_ENTRY_HARDLINK) ev->link_target = archive_entry_hardlink(e);
    entry_capability(e, ev);
    if (ev->type == ES_ENTRY_FILE) {
        ev->read = stream_read;
        ev->read_ctx = rc;
    }
}

/* created_by of each layer: history entries with empty_layer are skipped (as dive does). */
static const char **layer_created_by(const es_image *img)
{
    const char **out = es_xcalloc(img->n_layers ? img->n_layers : 1, sizeof *out);
    size_t h = 0;
    for (size_t i = 0; i < img->n_layers; i++) {
        while (h < img->n_history && img->history[h].empty_layer)
            h++;
        if (h >= img->n_history) break;
        out[i] = img->history[h++].created_by;
    }
    return out;
}

static int feed_layer(es_image *img, size_t i, es_analyzer *a, const char *created_by,
                      es_progress *pg, es_error *err)
{
    es_layer_stream *s = NULL;
    if (es_image_open_layer(img, i, &s, err) != 0) return -1;
    read_ctx rc = {s};
    int rc_val = -1;
    int64_t shown = 0;
    if (es_analyzer_layer_begin(a, err) != 0) goto out;
    for (;;) {
        struct archive_entry *e;
        int r = es_layer_stream_next(s, &e, err);
        if (r < 0) goto out;
        if (r == 0) break;
        es_entry_event ev;
        entry_event(e, &rc, &ev);
        if (es_analyzer_entry(a, &ev, err) != 0) {
            es_err_prefix(err, "%s:%s: layer %zu: ", es_transport_name(img->ref.kind),
                          img->ref.path, i + 1);
            goto out;
        }
        int64_t now = es_layer_stream_consumed(s);
        es_progress_add(pg, now - shown);
        shown = now;
    }
    es_layer_stats st;
    if (es_layer_stream_finish(s, &st, err) != 0) goto out;
    es_progress_add(pg, st.size - shown);
    const es_layer_info *li = &img->layers[i];
    es_layer_meta meta = {
        .digest = li->digest.s,
        .diff_id = st.diff_id.s,
        .media_type = li->media_type,
        .created_by = created_by,
        .compressed_size = st.size,
        .tar_size = st.uncompressed_size,
    };
    rc_val = es_analyzer_layer_end(a, &meta, err);
out:
    es_layer_stream_free(s);
    return rc_val;
}

static json_t *image_json(const es_image *img)
{
    json_t *o = json_object();
    json_object_set_new(o, "reference", json_string(img->ref.path ? img->ref.path : ""));
    json_object_set_new(o, "transport", json_string(es_transport_name(img->ref.kind)));
    json_object_set_new(o, "manifest_digest", json_string(img->manifest_digest.s));
    json_object_set_new(o, "manifest_media_type", json_string(img->manifest_media_type));
    json_object_set_new(o, "config_digest", json_string(img->config_digest.s));
    json_object_set_new(o, "os", json_string(img->os));
    json_object_set_new(o, "architecture", json_string(img->arch));
    json_object_set_new(o, "variant", img->variant[0] ? json_string(img->variant) : json_null());
    json_t *created = img->config ? json_object_get(img->config, "created") : NULL;
    json_object_set_new(o, "created", json_is_string(created) ? json_incref(created) : json_null());
    json_t *tags = json_array();
    for (char **t = img->repo_tags; t && *t; t++)
        json_array_append_new(tags, json_string(*t));
    json_object_set_new(o, "tags", tags);
    json_t *ep = es_config_entrypoint(img), *cmd = es_config_cmd(img);
    const char *wd = es_config_workdir(img);
    json_object_set_new(o, "entrypoint", ep ? json_incref(ep) : json_null());
    json_object_set_new(o, "cmd", cmd ? json_incref(cmd) : json_null());
    json_object_set_new(o, "workdir", wd ? json_string(wd) : json_null());
    return o;
}

int es_inspect_image(es_image *img, const es_inspect_opts *opts, json_t **report,
                     es_waste_metrics *metrics, es_error *err)
{
    es_analyzer *a = es_analyzer_new();
    const char **created_by = layer_created_by(img);
    int64_t total = 0;
    for (size_t i = 0; i < img->n_layers; i++)
        total += img->layers[i].size;
    es_progress *pg = es_progress_new("inspect", total);
    int rc = 0;
    for (size_t i = 0; i < img->n_layers && rc == 0; i++) {
        char label[32];
        snprintf(label, sizeof label, "layer %zu/%zu", i + 1, img->n_layers);
        es_progress_set_label(pg, label);
        rc = feed_layer(img, i, a, created_by[i], pg, err);
    }
    es_progress_done(pg);
    free(created_by);
    if (rc == 0) {
        es_report_opts ro = {.top_n = opts && opts->top_n > 0 ? opts->top_n : 10,
                             .image_config = img->config};
        *report = es_analyzer_report(a, &ro);
        json_object_set_new(*report, "image", image_json(img));
        es_analyzer_metrics(a, metrics);
    }
    es_analyzer_free(a);
    return rc;
}
