/*
 * The slim report (see docs/slim.md for the fields): before/after figures, user decision,
 * probe results on both images, kept paths with reasons, syscalls, timings.
 */
#include "slim/slim_internal.h"

double slim_reduction_pct(int64_t before, int64_t after)
{
    return before > 0 ? 100.0 * (double)(before - after) / (double)before : 0.0;
}

/* ------------------------------------------------------------------ report */

static json_t *side_json(const es_tree_stats *st, int64_t compressed, size_t pkgs, const char *user)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "size_uncompressed", (json_int_t)st->bytes,
                     "size_compressed", (json_int_t)compressed, "files", (json_int_t)st->files, "packages",
                     (json_int_t)pkgs, "shells", (json_int_t)st->shells, "package_managers",
                     (json_int_t)st->pkg_managers, "setuid_files", (json_int_t)st->setuid, "user",
                     user && *user ? user : "root");
}

static json_t *probes_json(slim_ctx *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < c->n_probes; i++) {
        probe_outcome *po = &c->outcomes[i];
        json_array_append_new(a, json_pack("{s:s, s:b, s:{s:b, s:s}, s:{s:b, s:s}}", "probe", c->probes[i].spec, "auto",
                                           c->probes[i].is_auto, "original", "passed", po->orig.passed, "detail",
                                           po->orig.detail, "slim", "passed", po->slim.passed, "detail",
                                           po->slim.detail));
    }
    return a;
}

static json_t *kept_json(slim_ctx *c)
{
    json_t *a = json_array();
    if (!c->ks) return a;
    size_t n = 0;
    const char **paths = es_keepset_sorted(c->ks, &n);
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        es_keep_reason_names(es_keepset_get(c->ks, paths[i]), buf, sizeof buf);
        json_array_append_new(a, json_pack("{s:s, s:s}", "path", paths[i], "reason", buf));
    }
    free(paths);
    return a;
}

json_t *slim_build_report(slim_ctx *c, const es_layer_blob *blob, const es_write_result *wres)
{
    json_t *sys = json_array();
    for (size_t i = 0; i < c->n_syscalls; i++) json_array_append_new(sys, json_string(c->syscalls[i]));
    const char *const *missing_libs = NULL;
    size_t nml = c->closure ? es_closure_missing(c->closure, &missing_libs) : 0;
    json_t *ml = json_array();
    for (size_t i = 0; i < nml; i++) json_array_append_new(ml, json_string(missing_libs[i]));
    json_t *r = json_pack("{s:s, s:s, s:s, s:o, s:o, s:f, s:f, s:{s:s, s:s, s:s}, s:I, s:o, s:o, s:o, s:o, s:b, s:o}",
                          "source", c->o->src, "destination", c->o->dst, "source_digest",
                          c->img ? c->img->manifest_digest.s : "", "before",
                          side_json(&c->before, c->before_compressed, es_pkgdb_installed_count(&c->db), c->run.user),
                          "after", side_json(&c->after, blob ? blob->size : 0, es_pkgdb_kept_count(&c->db), c->user_final),
                          "reduction_percent", slim_reduction_pct(c->before.bytes, c->after.bytes),
                          "reduction_percent_compressed", slim_reduction_pct(c->before_compressed, blob ? blob->size : 0),
                          "user", "before", c->run.user && *c->run.user ? c->run.user : "root", "after",
                          c->user_final && *c->user_final ? c->user_final : "root", "note", c->user_note,
                          "setuid_stripped", (json_int_t)c->stripped, "probes", probes_json(c), "kept", kept_json(c),
                          "syscalls", sys, "missing_libraries", ml, "verified", !c->o->skip_verify, "timings_ms",
                          json_incref(c->timings));
    if (wres) json_object_set_new(r, "digest", json_string(wres->manifest_digest.s));
    if (c->missing_paths) json_object_set(r, "missing_paths", c->missing_paths);
    json_object_set_new(r, "mode", json_string(c->duration_mode ? "duration" : "probes"));
    return r;
}

int slim_write_report(const char *path, json_t *report, es_error *err)
{
    char *t = es_json_pretty(report);
    int rc = es_write_file_atomic(path, t, err);
    free(t);
    return rc;
}
