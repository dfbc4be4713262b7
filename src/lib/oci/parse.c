/*
 * Parsing and validating the JSON documents of an image (see parse.h). jansson does the JSON;
 * this file checks that the documents have the shape the OCI image spec and Docker's formats
 * give them and copies what we use into fixed structs. Everything read here is untrusted: each
 * string is length-checked before it is copied, each count against es_limits before anything is
 * allocated for it.
 */
#include "oci/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *es_json_parse(const char *buf, size_t len, const char *name, es_error *err)
{
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!j)
        es_err(err, ES_EFORMAT, "%s: invalid JSON at line %d column %d: %s", name, je.line,
               je.column, je.text);
    return j;
}

static int copy_str(char *dst, size_t cap, const char *src, const char *name, const char *field,
                    es_error *err)
{
    size_t n = strlen(src);
    if (n >= cap) return es_err(err, ES_EFORMAT, "%s: %s is too long (%zu bytes)", name, field, n);
    memcpy(dst, src, n + 1);
    return 0;
}

/* Optional string field: "" when absent; error when present but not a string. */
static int get_opt_str(json_t *obj, const char *key, char *dst, size_t cap, const char *name,
                       es_error *err)
{
    json_t *v = json_object_get(obj, key);
    dst[0] = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return es_err(err, ES_EFORMAT, "%s: %s is not a string", name, key);
    return copy_str(dst, cap, json_string_value(v), name, key, err);
}

static int parse_digest(json_t *v, es_digest *out, const char *name, const char *field,
                        es_error *err)
{
    if (!json_is_string(v)) return es_err(err, ES_EFORMAT, "%s: %s: missing or not a string", name, field);
    const char *s = json_string_value(v);
    if (!es_digest_valid(s)) {
        if (strncmp(s, "sha256:", 7) != 0 && strchr(s, ':'))
            return es_err(err, ES_EUNSUPPORTED, "%s: %s: digest algorithm of \"%.80s\" is not supported (sha256 only)",
                          name, field, s);
        return es_err(err, ES_EFORMAT, "%s: %s: invalid digest \"%.80s\" (want sha256: and 64 lowercase hex)",
                      name, field, s);
    }
    memcpy(out->s, s, ES_DIGEST_LEN + 1);
    return 0;
}

static int parse_size(json_t *v, int64_t max, int64_t *out, const char *name, const char *field,
                      es_error *err)
{
    if (!json_is_integer(v)) return es_err(err, ES_EFORMAT, "%s: %s: size missing or not an integer", name, field);
    json_int_t s = json_integer_value(v);
    if (s < 0) return es_err(err, ES_EFORMAT, "%s: %s: negative size %lld", name, field, (long long)s);
    if (s > max)
        return es_err(err, ES_EUNSAFE, "%s: %s: size %lld exceeds the limit of %lld bytes", name, field,
                      (long long)s, (long long)max);
    *out = s;
    return 0;
}

static int parse_platform(json_t *p, es_descriptor *d, const char *name, const char *field,
                          es_error *err)
{
    if (!p || json_is_null(p)) return 0;
    if (!json_is_object(p)) return es_err(err, ES_EFORMAT, "%s: %s.platform is not an object", name, field);
    if (get_opt_str(p, "os", d->os, sizeof d->os, name, err) < 0 ||
        get_opt_str(p, "architecture", d->arch, sizeof d->arch, name, err) < 0 ||
        get_opt_str(p, "variant", d->variant, sizeof d->variant, name, err) < 0)
        return -1;
    d->has_platform = 1;
    return 0;
}

static int parse_descriptor(json_t *o, int64_t max_size, es_descriptor *d, const char *name,
                            const char *field, es_error *err)
{
    memset(d, 0, sizeof *d);
    if (!json_is_object(o)) return es_err(err, ES_EFORMAT, "%s: %s is not an object", name, field);
    json_t *mt = json_object_get(o, "mediaType");
    if (!json_is_string(mt)) return es_err(err, ES_EFORMAT, "%s: %s.mediaType missing or not a string", name, field);
    if (copy_str(d->media_type, sizeof d->media_type, json_string_value(mt), name, "mediaType", err) < 0)
        return -1;
    if (parse_digest(json_object_get(o, "digest"), &d->digest, name, field, err) < 0) return -1;
    if (parse_size(json_object_get(o, "size"), max_size, &d->size, name, field, err) < 0) return -1;
    if (parse_platform(json_object_get(o, "platform"), d, name, field, err) < 0) return -1;
    json_t *urls = json_object_get(o, "urls");
    d->has_urls = json_is_array(urls) && json_array_size(urls) > 0;
    json_t *ann = json_object_get(o, "annotations");
    if (ann && !json_is_null(ann)) {
        if (!json_is_object(ann)) return es_err(err, ES_EFORMAT, "%s: %s.annotations is not an object", name, field);
        json_t *rn = json_object_get(ann, ES_ANN_REF_NAME);
        if (rn && !json_is_string(rn))
            return es_err(err, ES_EFORMAT, "%s: %s: annotation %s is not a string", name, field, ES_ANN_REF_NAME);
        if (rn) d->ref_name = es_xstrdup(json_string_value(rn));
    }
    return 0;
}

static void descriptors_free(es_descriptor *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++) free(d[i].ref_name);
    free(d);
}

static int check_schema_version(json_t *root, const char *name, es_error *err)
{
    json_t *sv = json_object_get(root, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2)
        return es_err(err, ES_EFORMAT, "%s: schemaVersion must be 2", name);
    return 0;
}

int es_mt_is_index(const char *mt)
{
    return !strcmp(mt, ES_MT_OCI_INDEX) || !strcmp(mt, ES_MT_DOCKER_LIST);
}

int es_mt_is_manifest(const char *mt)
{
    return !strcmp(mt, ES_MT_OCI_MANIFEST) || !strcmp(mt, ES_MT_DOCKER_MANIFEST);
}

es_compression es_mt_layer_compression(const char *mt)
{
    static const struct { const char *mt; es_compression c; } known[] = {
        {ES_MT_OCI_LAYER, ES_COMP_NONE},
        {ES_MT_OCI_LAYER_GZIP, ES_COMP_GZIP},
        {ES_MT_OCI_LAYER_ZSTD, ES_COMP_ZSTD},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar", ES_COMP_NONE},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", ES_COMP_GZIP},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", ES_COMP_ZSTD},
        {ES_MT_DOCKER_LAYER_GZIP, ES_COMP_GZIP},
        {"application/vnd.docker.image.rootfs.diff.tar", ES_COMP_NONE},
        {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", ES_COMP_GZIP},
        {"application/vnd.docker.image.rootfs.diff.tar.zstd", ES_COMP_ZSTD},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(mt, known[i].mt)) return known[i].c;
    return ES_COMP_UNKNOWN;
}

const char *es_mt_layer_for(es_compression c)
{
    switch (c) {
    case ES_COMP_NONE: return ES_MT_OCI_LAYER;
    case ES_COMP_GZIP: return ES_MT_OCI_LAYER_GZIP;
    case ES_COMP_ZSTD: return ES_MT_OCI_LAYER_ZSTD;
    default: return NULL;
    }
}

int es_parse_index(const char *buf, size_t len, const char *name, const es_limits *lim,
                   es_index_doc *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *root = es_json_parse(buf, len, name, err);
    if (!root) return -1;
    int rc = -1;
    json_t *ms = json_object_get(root, "manifests");
    if (!json_is_object(root)) {
        es_err(err, ES_EFORMAT, "%s: not a JSON object", name);
        goto out;
    }
    if (check_schema_version(root, name, err) < 0) goto out;
    json_t *mt = json_object_get(root, "mediaType");
    if (mt && (!json_is_string(mt) || !es_mt_is_index(json_string_value(mt)))) {
        es_err(err, ES_EFORMAT, "%s: mediaType is not an image index", name);
        goto out;
    }
    if (!json_is_array(ms)) {
        es_err(err, ES_EFORMAT, "%s: manifests missing or not an array", name);
        goto out;
    }
    size_t n = json_array_size(ms);
    if ((int64_t)n > lim->max_index_entries) {
        es_err(err, ES_EUNSAFE, "%s: %zu manifests exceed the limit of %lld", name, n,
               (long long)lim->max_index_entries);
        goto out;
    }
    es_descriptor *d = es_xcalloc(n, sizeof *d);
    for (size_t i = 0; i < n; i++) {
        char field[48];
        snprintf(field, sizeof field, "manifests[%zu]", i);
        if (parse_descriptor(json_array_get(ms, i), lim->max_json_bytes, &d[i], name, field, err) < 0) {
            descriptors_free(d, n);
            goto out;
        }
    }
    out->n = n;
    out->manifests = d;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

void es_index_doc_free(es_index_doc *d)
{
    if (!d) return;
    descriptors_free(d->manifests, d->n);
    memset(d, 0, sizeof *d);
}

int es_parse_manifest(const char *buf, size_t len, const char *name, const es_limits *lim,
                      es_manifest_doc *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *root = es_json_parse(buf, len, name, err);
    if (!root) return -1;
    int rc = -1;
    if (!json_is_object(root)) {
        es_err(err, ES_EFORMAT, "%s: not a JSON object", name);
        goto out;
    }
    if (check_schema_version(root, name, err) < 0) goto out;
    json_t *mt = json_object_get(root, "mediaType");
    if (mt && !json_is_null(mt)) {
        if (!json_is_string(mt) || !es_mt_is_manifest(json_string_value(mt))) {
            es_err(err, ES_EFORMAT, "%s: mediaType is not an image manifest", name);
            goto out;
        }
        copy_str(out->media_type, sizeof out->media_type, json_string_value(mt), name, "mediaType", NULL);
    } else {
        strcpy(out->media_type, ES_MT_OCI_MANIFEST);
    }
    if (parse_descriptor(json_object_get(root, "config"), lim->max_json_bytes, &out->config, name,
                         "config", err) < 0)
        goto out;
    json_t *ls = json_object_get(root, "layers");
    if (!json_is_array(ls)) {
        es_err(err, ES_EFORMAT, "%s: layers missing or not an array", name);
        goto out;
    }
    size_t n = json_array_size(ls);
    if ((int64_t)n > lim->max_layers) {
        es_err(err, ES_EUNSAFE, "%s: %zu layers exceed the limit of %lld", name, n, (long long)lim->max_layers);
        goto out;
    }
    out->layers = es_xcalloc(n, sizeof *out->layers);
    out->n_layers = n;
    for (size_t i = 0; i < n; i++) {
        char field[48];
        snprintf(field, sizeof field, "layers[%zu]", i);
        if (parse_descriptor(json_array_get(ls, i), lim->max_layer_bytes, &out->layers[i], name, field, err) < 0)
            goto out;
    }
    rc = 0;
out:
    if (rc < 0) es_manifest_doc_free(out);
    json_decref(root);
    return rc;
}

void es_manifest_doc_free(es_manifest_doc *d)
{
    if (!d) return;
    free(d->config.ref_name);
    descriptors_free(d->layers, d->n_layers);
    memset(d, 0, sizeof *d);
}

void es_history_free(es_history_entry *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++) {
        free(h[i].created);
        free(h[i].created_by);
        free(h[i].comment);
    }
    free(h);
}

static char *opt_strdup(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? es_xstrdup(json_string_value(v)) : NULL;
}

static int parse_history(json_t *root, const es_limits *lim, es_config_doc *out, const char *name,
                         es_error *err)
{
    json_t *h = json_object_get(root, "history");
    if (!h || json_is_null(h)) return 0;
    if (!json_is_array(h)) return es_err(err, ES_EFORMAT, "%s: history is not an array", name);
    size_t n = json_array_size(h);
    /* Empty-layer entries make history longer than the layer list; bound it generously. */
    if ((int64_t)n > lim->max_layers * 4 + 64)
        return es_err(err, ES_EUNSAFE, "%s: %zu history entries exceed the limit", name, n);
    out->history = es_xcalloc(n, sizeof *out->history);
    out->n_history = n;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(h, i);
        if (!json_is_object(e)) return es_err(err, ES_EFORMAT, "%s: history[%zu] is not an object", name, i);
        out->history[i].created = opt_strdup(e, "created");
        out->history[i].created_by = opt_strdup(e, "created_by");
        out->history[i].comment = opt_strdup(e, "comment");
        out->history[i].empty_layer = json_is_true(json_object_get(e, "empty_layer"));
    }
    return 0;
}

static int parse_rootfs(json_t *root, const es_limits *lim, es_config_doc *out, const char *name,
                        es_error *err)
{
    json_t *rfs = json_object_get(root, "rootfs");
    if (!json_is_object(rfs)) return es_err(err, ES_EFORMAT, "%s: rootfs missing or not an object", name);
    json_t *type = json_object_get(rfs, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "layers") != 0)
        return es_err(err, ES_EFORMAT, "%s: rootfs.type must be \"layers\"", name);
    json_t *ids = json_object_get(rfs, "diff_ids");
    if (!json_is_array(ids)) return es_err(err, ES_EFORMAT, "%s: rootfs.diff_ids missing or not an array", name);
    size_t n = json_array_size(ids);
    if ((int64_t)n > lim->max_layers)
        return es_err(err, ES_EUNSAFE, "%s: %zu diff_ids exceed the limit of %lld layers", name, n,
                      (long long)lim->max_layers);
    out->diff_ids = es_xcalloc(n, sizeof *out->diff_ids);
    out->n_diff_ids = n;
    for (size_t i = 0; i < n; i++) {
        char field[48];
        snprintf(field, sizeof field, "rootfs.diff_ids[%zu]", i);
        if (parse_digest(json_array_get(ids, i), &out->diff_ids[i], name, field, err) < 0) return -1;
    }
    return 0;
}

static int check_config_section(json_t *root, const char *name, es_error *err)
{
    json_t *c = json_object_get(root, "config");
    if (!c || json_is_null(c)) return 0;
    if (!json_is_object(c)) return es_err(err, ES_EFORMAT, "%s: config is not an object", name);
    static const char *arrays[] = {"Env", "Entrypoint", "Cmd"};
    for (size_t i = 0; i < 3; i++) {
        json_t *a = json_object_get(c, arrays[i]);
        if (!a || json_is_null(a)) continue;
        if (!json_is_array(a)) return es_err(err, ES_EFORMAT, "%s: config.%s is not an array", name, arrays[i]);
        for (size_t k = 0; k < json_array_size(a); k++)
            if (!json_is_string(json_array_get(a, k)))
                return es_err(err, ES_EFORMAT, "%s: config.%s[%zu] is not a string", name, arrays[i], k);
    }
    static const char *objects[] = {"ExposedPorts", "Labels", "Volumes"};
    for (size_t i = 0; i < 3; i++) {
        json_t *o = json_object_get(c, objects[i]);
        if (o && !json_is_null(o) && !json_is_object(o))
            return es_err(err, ES_EFORMAT, "%s: config.%s is not an object", name, objects[i]);
    }
    static const char *strings[] = {"User", "WorkingDir"};
    for (size_t i = 0; i < 2; i++) {
        json_t *s = json_object_get(c, strings[i]);
        if (s && !json_is_null(s) && !json_is_string(s))
            return es_err(err, ES_EFORMAT, "%s: config.%s is not a string", name, strings[i]);
    }
    return 0;
}

int es_parse_config(const char *buf, size_t len, const char *name, const es_limits *lim,
                    es_config_doc *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *root = es_json_parse(buf, len, name, err);
    if (!root) return -1;
    out->root = root;
    if (!json_is_object(root)) {
        es_err(err, ES_EFORMAT, "%s: not a JSON object", name);
        goto fail;
    }
    if (get_opt_str(root, "os", out->os, sizeof out->os, name, err) < 0 ||
        get_opt_str(root, "architecture", out->arch, sizeof out->arch, name, err) < 0 ||
        get_opt_str(root, "variant", out->variant, sizeof out->variant, name, err) < 0)
        goto fail;
    if (parse_rootfs(root, lim, out, name, err) < 0) goto fail;
    if (parse_history(root, lim, out, name, err) < 0) goto fail;
    if (check_config_section(root, name, err) < 0) goto fail;
    return 0;
fail:
    es_config_doc_free(out);
    return -1;
}

void es_config_doc_free(es_config_doc *d)
{
    if (!d) return;
    json_decref(d->root);
    free(d->diff_ids);
    es_history_free(d->history, d->n_history);
    memset(d, 0, sizeof *d);
}

static char **string_array(json_t *a, size_t max, size_t *count, const char *name, const char *field,
                           es_error *err)
{
    if (!a || json_is_null(a)) a = NULL;
    else if (!json_is_array(a)) {
        es_err(err, ES_EFORMAT, "%s: %s is not an array", name, field);
        return NULL;
    }
    size_t n = a ? json_array_size(a) : 0;
    if (n > max) {
        es_err(err, ES_EUNSAFE, "%s: %s has %zu entries, more than the limit of %zu", name, field, n, max);
        return NULL;
    }
    char **v = es_xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > 4096) {
            es_err(err, ES_EFORMAT, "%s: %s[%zu] is not a non-empty string", name, field, i);
            for (size_t k = 0; k < i; k++) free(v[k]);
            free(v);
            return NULL;
        }
        v[i] = es_xstrdup(json_string_value(s));
    }
    if (count) *count = n;
    return v;
}

static void docker_entry_free(es_docker_entry *e)
{
    free(e->config);
    for (char **p = e->repo_tags; p && *p; p++) free(*p);
    free(e->repo_tags);
    for (size_t i = 0; e->layers && i < e->n_layers; i++) free(e->layers[i]);
    free(e->layers);
}

static int parse_docker_entry(json_t *o, const es_limits *lim, es_docker_entry *e, const char *name,
                              size_t idx, es_error *err)
{
    if (!json_is_object(o)) return es_err(err, ES_EFORMAT, "%s: entry %zu is not an object", name, idx);
    json_t *cfg = json_object_get(o, "Config");
    if (!json_is_string(cfg) || json_string_length(cfg) == 0 || json_string_length(cfg) > 4096)
        return es_err(err, ES_EFORMAT, "%s: entry %zu: Config missing or not a string", name, idx);
    e->config = es_xstrdup(json_string_value(cfg));
    char field[48];
    snprintf(field, sizeof field, "entry %zu: RepoTags", idx);
    e->repo_tags = string_array(json_object_get(o, "RepoTags"), 4096, NULL, name, field, err);
    if (!e->repo_tags) return -1;
    json_t *ls = json_object_get(o, "Layers");
    snprintf(field, sizeof field, "entry %zu: Layers", idx);
    if (!json_is_array(ls)) return es_err(err, ES_EFORMAT, "%s: %s missing or not an array", name, field);
    e->layers = string_array(ls, (size_t)lim->max_layers, &e->n_layers, name, field, err);
    return e->layers ? 0 : -1;
}

int es_parse_docker_manifest(const char *buf, size_t len, const char *name, const es_limits *lim,
                             es_docker_manifest *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *root = es_json_parse(buf, len, name, err);
    if (!root) return -1;
    int rc = -1;
    if (!json_is_array(root) || json_array_size(root) == 0) {
        es_err(err, ES_EFORMAT, "%s: not a non-empty JSON array", name);
        goto out;
    }
    size_t n = json_array_size(root);
    if ((int64_t)n > lim->max_index_entries) {
        es_err(err, ES_EUNSAFE, "%s: %zu images exceed the limit of %lld", name, n, (long long)lim->max_index_entries);
        goto out;
    }
    out->entries = es_xcalloc(n, sizeof *out->entries);
    out->n = n;
    for (size_t i = 0; i < n; i++)
        if (parse_docker_entry(json_array_get(root, i), lim, &out->entries[i], name, i, err) < 0) goto out;
    rc = 0;
out:
    if (rc < 0) es_docker_manifest_free(out);
    json_decref(root);
    return rc;
}

void es_docker_manifest_free(es_docker_manifest *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) docker_entry_free(&d->entries[i]);
    free(d->entries);
    memset(d, 0, sizeof *d);
}

static void normalise_variant(const char *arch, char variant[32])
{
    if (variant[0]) return;
    if (!strcmp(arch, "arm64")) memcpy(variant, "v8", 3);
    else if (!strcmp(arch, "arm")) memcpy(variant, "v7", 3);
}

int es_platform_parse(const char *s, char os[32], char arch[32], char variant[32], es_error *err)
{
    char buf[100];
    size_t slen = s ? strlen(s) : 0;
    if (!s || slen >= sizeof buf) return es_err(err, ES_EUSAGE, "platform \"%.60s\": too long", s ? s : "");
    memcpy(buf, s, slen + 1);
    char *parts[4] = {0};
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == 3) return es_err(err, ES_EUSAGE, "platform \"%s\": want os/arch[/variant]", s);
        parts[n++] = t;
    }
    if (n < 2 || strlen(parts[0]) >= 32 || strlen(parts[1]) >= 32 || (n == 3 && strlen(parts[2]) >= 32))
        return es_err(err, ES_EUSAGE, "platform \"%s\": want os/arch[/variant]", s);
    /* lengths checked above: no truncation */
    snprintf(os, 32, "%s", parts[0]);
    snprintf(arch, 32, "%s", parts[1]);
    snprintf(variant, 32, "%s", n == 3 ? parts[2] : "");
    normalise_variant(arch, variant);
    return 0;
}

int es_platform_match(const char *want_os, const char *want_arch, const char *want_variant,
                      const char *os, const char *arch, const char *variant)
{
    if (strcmp(want_os, os) != 0 || strcmp(want_arch, arch) != 0) return 0;
    char wv[32], v[32];
    snprintf(wv, sizeof wv, "%s", want_variant ? want_variant : "");
    snprintf(v, sizeof v, "%s", variant ? variant : "");
    normalise_variant(want_arch, wv);
    normalise_variant(arch, v);
    if (!strcmp(wv, v)) return 1;
    /* 32-bit arm runs older variants (v7 host runs v6 and v5), as containerd's matcher does. */
    if (!strcmp(arch, "arm") && wv[0] == 'v' && v[0] == 'v') return atoi(v + 1) <= atoi(wv + 1) && atoi(v + 1) > 0;
    return 0;
}
