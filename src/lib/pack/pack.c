/*
 * edgeslim pack: static binaries -> scratch image(s). See pack.h. Every entry is synthesised
 * (path, type, mode, owner, mtime = SOURCE_DATE_EPOCH or 0) and written in bytewise path order,
 * so the same binaries and options always give the same digests.
 */
#include "pack/pack.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci/image_writer.h"
#include "slim/elf_deps.h"

#define NONROOT 65532u

void es_pack_opts_default(es_pack_opts *o)
{
    memset(o, 0, sizeof *o);
    o->uid = o->gid = NONROOT;
    o->bin_dir = "/usr/local/bin";
    es_write_opts_default(&o->write);
    /* Packed images are a few MB and shipped over slow links many times: spend the CPU on the
     * strongest level once (gzip 9, zstd 19) instead of the fast default used for big layers. */
    o->write.level = -1;
}

/* ---------------------------------------------------------------- ELF platform */

static int machine_to_arch(unsigned m, int is64, char arch[32], char variant[32])
{
    variant[0] = 0;
    switch (m) {
    case EM_X86_64: snprintf(arch, 32, "amd64"); return 0;
    case EM_386: snprintf(arch, 32, "386"); return 0;
    case EM_AARCH64: snprintf(arch, 32, "arm64"); snprintf(variant, 32, "v8"); return 0;
    case EM_ARM: snprintf(arch, 32, "arm"); snprintf(variant, 32, "v7"); return 0;
    case EM_RISCV: snprintf(arch, 32, is64 ? "riscv64" : "riscv32"); return 0;
    case EM_PPC64: snprintf(arch, 32, "ppc64le"); return 0;
    case EM_S390: snprintf(arch, 32, "s390x"); return 0;
    default: return -1;
    }
}

int es_elf_platform(const char *path, char arch[32], char variant[32], int *is_static,
                    es_error *err)
{
    /* The ELF reader is slim's (bounds-checked, both classes and byte orders). */
    es_elf_deps d;
    int r = es_elf_deps_parse_file(path, &d, err);
    if (r < 0) return -1;
    if (r == 0) return es_err(err, ES_EFORMAT, "%s: not an ELF executable", path);
    int rc = 0;
    if (d.type != ET_EXEC && d.type != ET_DYN)
        rc = es_err(err, ES_EFORMAT, "%s: ELF file is not an executable (type %u)", path, d.type);
    else if (d.big_endian)
        rc = es_err(err, ES_EUNSUPPORTED, "%s: big-endian ELF files are not supported", path);
    else if (machine_to_arch(d.machine, d.elf_class == ELFCLASS64, arch, variant) < 0)
        rc = es_err(err, ES_EUNSUPPORTED, "%s: ELF machine %u has no OCI architecture name", path,
                    d.machine);
    else
        *is_static = d.interp == NULL;
    es_elf_deps_free(&d);
    return rc;
}

/* ---------------------------------------------------------------- entries */

typedef struct pack_entry {
    char *path;      /* relative, no leading slash */
    mode_t type;     /* AE_IFREG / AE_IFDIR */
    mode_t perm;
    unsigned uid, gid;
    const char *src; /* host file for regular files, or NULL */
    char *data;      /* inline content otherwise */
    size_t len;
} pack_entry;

typedef struct {
    pack_entry *v;
    size_t n, cap;
} entry_list;

static pack_entry *add(entry_list *l, const char *path, mode_t type, mode_t perm)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].path, path)) return &l->v[i];
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = es_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    pack_entry *e = &l->v[l->n++];
    memset(e, 0, sizeof *e);
    e->path = es_xstrdup(path);
    e->type = type;
    e->perm = perm;
    return e;
}

static void add_parents(entry_list *l, const char *path)
{
    char *p = es_xstrdup(path);
    for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        add(l, p, AE_IFDIR, 0755);
        *s = '/';
    }
    free(p);
}

static void add_text(entry_list *l, const char *path, mode_t perm, char *text)
{
    add_parents(l, path);
    pack_entry *e = add(l, path, AE_IFREG, perm);
    free(e->data);
    e->data = text;
    e->len = strlen(text);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const pack_entry *)a)->path, ((const pack_entry *)b)->path);
}

static void free_entries(entry_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].data);
    }
    free(l->v);
}

static int write_entries(entry_list *l, const es_write_opts *wo, const char *out, es_layer_blob *blob,
                         int64_t *uncompressed, es_error *err)
{
    qsort(l->v, l->n, sizeof *l->v, cmp_entry);
    es_layer_writer *w = NULL;
    if (es_layer_writer_open(out, wo, &w, err) < 0) return -1;
    int64_t mtime = wo->source_date_epoch >= 0 ? wo->source_date_epoch : 0;
    int64_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
        pack_entry *e = &l->v[i];
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e->path);
        archive_entry_set_filetype(ae, e->type);
        archive_entry_set_perm(ae, e->perm);
        archive_entry_set_uid(ae, e->uid);
        archive_entry_set_gid(ae, e->gid);
        archive_entry_set_mtime(ae, mtime, 0);
        es_reader *data = NULL;
        if (e->type == AE_IFREG) {
            if (e->src) {
                struct stat st;
                if (stat(e->src, &st) < 0) {
                    archive_entry_free(ae);
                    es_layer_writer_abort(w);
                    return es_err_sys(err, ES_EIO, "%s: cannot stat", e->src);
                }
                archive_entry_set_size(ae, st.st_size);
                data = es_reader_file(e->src, err);
                total += st.st_size;
            } else {
                archive_entry_set_size(ae, (la_int64_t)e->len);
                data = es_reader_mem(e->data, e->len);
                total += (int64_t)e->len;
            }
            if (!data) {
                archive_entry_free(ae);
                es_layer_writer_abort(w);
                return -1;
            }
        }
        int rc = es_layer_writer_add(w, ae, data, err);
        es_reader_free(data);
        archive_entry_free(ae);
        if (rc < 0) {
            es_layer_writer_abort(w);
            return -1;
        }
    }
    *uncompressed = total;
    return es_layer_writer_finish(w, blob, err);
}

/* ---------------------------------------------------------------- config */

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *make_config(const es_pack_opts *o, const char *arch, const char *variant,
                           const char *first_bin, int64_t created)
{
    json_t *cfg = json_object();
    json_t *env = json_array();
    json_array_append_new(env, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    if (o->ca_bundle)
        json_array_append_new(env, json_string("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"));
    for (size_t i = 0; i < o->n_env; i++) json_array_append_new(env, json_string(o->env[i]));
    json_object_set_new(cfg, "Env", env);
    char user[32];
    snprintf(user, sizeof user, "%u:%u", o->uid, o->gid);
    json_object_set_new(cfg, "User", json_string(user));
    json_object_set_new(cfg, "WorkingDir", json_string("/"));
    if (o->entrypoint) json_object_set(cfg, "Entrypoint", o->entrypoint);
    else json_object_set_new(cfg, "Entrypoint", str_array(&first_bin, 1));
    if (o->cmd) json_object_set(cfg, "Cmd", o->cmd);
    if (o->n_ports) {
        json_t *ports = json_object();
        for (size_t i = 0; i < o->n_ports; i++) {
            char p[64];
            snprintf(p, sizeof p, strchr(o->ports[i], '/') ? "%s" : "%s/tcp", o->ports[i]);
            json_object_set_new(ports, p, json_object());
        }
        json_object_set_new(cfg, "ExposedPorts", ports);
    }
    json_t *labels = json_object();
    for (size_t i = 0; i < o->n_labels; i++) {
        const char *eq = strchr(o->labels[i], '=');
        char *k = eq ? strndup(o->labels[i], (size_t)(eq - o->labels[i])) : es_xstrdup(o->labels[i]);
        json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
        free(k);
    }
    json_object_set_new(labels, "io.edgeslim.packed", json_string("true"));
    json_object_set_new(cfg, "Labels", labels);

    char ts[32];
    time_t t = (time_t)created;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *img = json_object();
    json_object_set_new(img, "architecture", json_string(arch));
    json_object_set_new(img, "os", json_string("linux"));
    if (variant && *variant) json_object_set_new(img, "variant", json_string(variant));
    json_object_set_new(img, "created", json_string(ts));
    json_object_set_new(img, "config", cfg);
    json_t *hist = json_array();
    json_t *h = json_object();
    json_object_set_new(h, "created", json_string(ts));
    json_object_set_new(h, "created_by", json_string("edgeslim pack"));
    json_array_append_new(hist, h);
    json_object_set_new(img, "history", hist);
    return img;
}

/* ---------------------------------------------------------------- driver */

typedef struct {
    char arch[32], variant[32];
    size_t idx[64];
    size_t n;
} platform_group;

static char *passwd_text(const es_pack_opts *o)
{
    return es_xasprintf("root:x:0:0:root:/root:/sbin/nologin\n"
                        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
                        "nonroot:x:%u:%u:nonroot:/home/nonroot:/sbin/nologin\n",
                        o->uid == 0 ? NONROOT : o->uid, o->gid == 0 ? NONROOT : o->gid);
}

static char *group_text(const es_pack_opts *o)
{
    return es_xasprintf("root:x:0:\nnogroup:x:65534:\nnonroot:x:%u:\n", o->gid == 0 ? NONROOT : o->gid);
}

/* Builds one platform's layer into tmpdir and fills blob; returns 0 or -1. */
static int pack_platform(const es_pack_opts *o, const es_write_opts *wo, const platform_group *g,
                         const char *tmpdir,
                         size_t gi, es_layer_blob *blob, char **blob_path, int64_t *uncompressed,
                         char **first_bin, es_error *err)
{
    entry_list l = {0};
    const char *bindir = o->bin_dir[0] == '/' ? o->bin_dir + 1 : o->bin_dir;
    for (size_t i = 0; i < g->n; i++) {
        const char *src = o->binaries[g->idx[i]];
        char *tmp = es_xstrdup(src);
        char *path = es_xasprintf("%s/%s", bindir, basename(tmp));
        free(tmp);
        add_parents(&l, path);
        pack_entry *e = add(&l, path, AE_IFREG, 0755);
        if (e->src && strcmp(e->src, src) != 0) {
            es_err(err, ES_EUSAGE, "%s and %s would both be /%s in the %s image", e->src, src, path,
                   g->arch);
            free(path);
            free_entries(&l);
            return -1;
        }
        e->src = src;
        if (i == 0) *first_bin = es_xasprintf("/%s", path);
        free(path);
    }
    add_text(&l, "etc/passwd", 0644, passwd_text(o));
    add_text(&l, "etc/group", 0644, group_text(o));
    add_text(&l, "etc/nsswitch.conf", 0644, es_xstrdup("passwd: files\ngroup: files\nhosts: files dns\n"));
    if (o->ca_bundle) {
        add_parents(&l, "etc/ssl/certs/ca-certificates.crt");
        add(&l, "etc/ssl/certs/ca-certificates.crt", AE_IFREG, 0644)->src = o->ca_bundle;
    }
    add(&l, "home", AE_IFDIR, 0755);
    pack_entry *home = add(&l, "home/nonroot", AE_IFDIR, 0700);
    home->uid = o->uid;
    home->gid = o->gid;
    add(&l, "tmp", AE_IFDIR, 01777);
    *blob_path = es_xasprintf("%s/layer-%zu", tmpdir, gi);
    int rc = write_entries(&l, wo, *blob_path, blob, uncompressed, err);
    free_entries(&l);
    return rc;
}

static void rm_tmpdir(const char *dir, char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (paths[i]) unlink(paths[i]);
    rmdir(dir);
}

int es_pack(const es_pack_opts *o, const char *dst_ref, es_pack_result *res, es_error *err)
{
    if (o->n_binaries == 0) return es_err(err, ES_EUSAGE, "no binaries to pack");
    if (o->ca_bundle && access(o->ca_bundle, R_OK) < 0)
        return es_err_sys(err, ES_EIO, "%s: CA bundle not readable", o->ca_bundle);
    platform_group groups[8];
    size_t ng = 0;
    for (size_t i = 0; i < o->n_binaries; i++) {
        char arch[32], variant[32];
        int is_static = 0;
        if (es_elf_platform(o->binaries[i], arch, variant, &is_static, err) < 0) return -1;
        if (!is_static)
            return es_err(err, ES_EUNSUPPORTED,
                          "%s: dynamically linked (has an ELF interpreter); a scratch image has no "
                          "libc: build it with -static", o->binaries[i]);
        if (o->only_platform) {
            char want[100];
            snprintf(want, sizeof want, "linux/%s%s%s", arch, *variant ? "/" : "", variant);
            size_t n = strlen(o->only_platform);
            if (strncmp(want, o->only_platform, n) != 0 || (want[n] && want[n] != '/')) continue;
        }
        size_t g = 0;
        while (g < ng && strcmp(groups[g].arch, arch) != 0) g++;
        if (g == ng) {
            if (ng == 8) return es_err(err, ES_EUNSUPPORTED, "more than 8 platforms");
            memset(&groups[g], 0, sizeof groups[g]);
            snprintf(groups[g].arch, 32, "%s", arch);
            snprintf(groups[g].variant, 32, "%s", variant);
            ng++;
        }
        if (groups[g].n == 64) return es_err(err, ES_EUNSUPPORTED, "more than 64 binaries per platform");
        groups[g].idx[groups[g].n++] = i;
    }
    if (ng == 0) return es_err(err, ES_EUNSUPPORTED, "no binary matches platform %s", o->only_platform);

    es_write_opts wo = o->write;
    if (wo.level == -1) wo.level = wo.compression == ES_COMP_ZSTD ? 19 : 9;
    const char *tmpbase = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *tmpdir = es_xasprintf("%s/edgeslim-pack-XXXXXX", tmpbase);
    if (!mkdtemp(tmpdir)) {
        es_err_sys(err, ES_EIO, "%s: cannot create temporary directory", tmpbase);
        free(tmpdir);
        return -1;
    }
    es_layer_blob blobs[8];
    char *paths[8] = {0}, *first[8] = {0};
    es_image_out outs[8];
    int64_t unc[8] = {0};
    int rc = 0;
    int64_t created = o->write.source_date_epoch >= 0 ? o->write.source_date_epoch : 0;
    memset(outs, 0, sizeof outs);
    for (size_t g = 0; g < ng && rc == 0; g++) {
        rc = pack_platform(o, &wo, &groups[g], tmpdir, g, &blobs[g], &paths[g], &unc[g], &first[g], err);
        if (rc < 0) break;
        outs[g].config = make_config(o, groups[g].arch, groups[g].variant, first[g], created);
        outs[g].n_layers = 1;
        outs[g].layers = &blobs[g];
        outs[g].os = "linux";
        outs[g].arch = groups[g].arch;
        outs[g].variant = groups[g].variant[0] ? groups[g].variant : NULL;
    }
    es_write_result wr;
    memset(&wr, 0, sizeof wr);
    if (rc == 0) {
        if (ng == 1) rc = es_image_write(&outs[0], dst_ref, &wr, err);
        else rc = es_index_write(outs, ng, dst_ref, &wr, err);
    }
    if (rc == 0 && res) {
        memset(res, 0, sizeof *res);
        res->digest = wr.manifest_digest;
        res->n_platforms = ng;
        for (size_t g = 0; g < ng; g++) {
            es_pack_platform *p = &res->platforms[g];
            snprintf(p->os, sizeof p->os, "linux");
            snprintf(p->arch, sizeof p->arch, "%s", groups[g].arch);
            snprintf(p->variant, sizeof p->variant, "%s", groups[g].variant);
            p->layer_size = blobs[g].size;
            p->layer_uncompressed = unc[g];
            p->n_binaries = groups[g].n;
        }
    }
    for (size_t g = 0; g < ng; g++) {
        json_decref(outs[g].config);
        free(first[g]);
    }
    rm_tmpdir(tmpdir, paths, ng);
    for (size_t g = 0; g < ng; g++) free(paths[g]);
    free(tmpdir);
    return rc;
}
