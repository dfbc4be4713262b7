/*
 * Image references ("transport:path[:ref]" in skopeo's names, or a bare path), transport and
 * compression names, and the host platform in OCI terms. The path/ref split is at the first ':'
 * after the transport, as skopeo does, so paths containing ':' need the ref-less form of a bare
 * path. Auto-detection of bare paths happens at open time (image.c), where the file is examined.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "oci/image.h"

static const struct {
    const char *prefix;
    es_transport_kind kind;
} transports[] = {
    {"docker-archive:", ES_TR_DOCKER_ARCHIVE},
    {"oci-archive:", ES_TR_OCI_ARCHIVE},
    {"oci:", ES_TR_OCI},
};

int es_ref_parse(const char *s, es_image_ref *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s) return es_err(err, ES_EUSAGE, "empty image reference");
    for (size_t i = 0; i < sizeof transports / sizeof transports[0]; i++) {
        size_t n = strlen(transports[i].prefix);
        if (strncmp(s, transports[i].prefix, n) != 0) continue;
        const char *rest = s + n;
        const char *colon = strchr(rest, ':');
        size_t plen = colon ? (size_t)(colon - rest) : strlen(rest);
        if (plen == 0) return es_err(err, ES_EUSAGE, "%s: no path after the transport", s);
        if (colon && !colon[1]) return es_err(err, ES_EUSAGE, "%s: empty reference after ':'", s);
        out->kind = transports[i].kind;
        out->path = strndup(rest, plen);
        if (!out->path) return es_err(err, ES_EFAIL, "out of memory");
        out->ref = colon ? es_xstrdup(colon + 1) : NULL;
        return 0;
    }
    static const char *others[] = {"docker://", "docker-daemon:", "containers-storage:", "dir:"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (!strncmp(s, others[i], strlen(others[i])))
            return es_err(err, ES_EUNSUPPORTED,
                          "%s: transport not supported (use docker-archive:, oci: or oci-archive:)", s);
    out->kind = ES_TR_AUTO;
    out->path = es_xstrdup(s);
    return 0;
}

void es_ref_free(es_image_ref *r)
{
    if (!r) return;
    free(r->path);
    free(r->ref);
    memset(r, 0, sizeof *r);
}

const char *es_transport_name(es_transport_kind k)
{
    switch (k) {
    case ES_TR_DOCKER_ARCHIVE: return "docker-archive";
    case ES_TR_OCI: return "oci";
    case ES_TR_OCI_ARCHIVE: return "oci-archive";
    default: return "auto";
    }
}

const char *es_compression_name(es_compression c)
{
    switch (c) {
    case ES_COMP_NONE: return "none";
    case ES_COMP_GZIP: return "gzip";
    case ES_COMP_ZSTD: return "zstd";
    default: return "unknown";
    }
}

int es_compression_parse(const char *s, es_compression *out)
{
    if (!s) return -1;
    if (!strcmp(s, "gzip")) *out = ES_COMP_GZIP;
    else if (!strcmp(s, "zstd")) *out = ES_COMP_ZSTD;
    else if (!strcmp(s, "none")) *out = ES_COMP_NONE;
    else return -1;
    return 0;
}

/* uname machine -> GOARCH-style OCI architecture and variant. */
void es_host_platform(char os[32], char arch[32], char variant[32])
{
    static const struct { const char *machine, *arch, *variant; } map[] = {
        {"x86_64", "amd64", ""},   {"amd64", "amd64", ""},    {"aarch64", "arm64", "v8"},
        {"arm64", "arm64", "v8"},  {"armv7l", "arm", "v7"},   {"armv6l", "arm", "v6"},
        {"armv5tel", "arm", "v5"}, {"i686", "386", ""},       {"i386", "386", ""},
        {"ppc64le", "ppc64le", ""}, {"s390x", "s390x", ""},   {"riscv64", "riscv64", ""},
        {"mips64", "mips64", ""},  {"loongarch64", "loong64", ""},
    };
    struct utsname u;
    snprintf(os, 32, "%s", "linux");
    snprintf(arch, 32, "%s", "unknown");
    variant[0] = 0;
    if (uname(&u) != 0) return;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(u.machine, map[i].machine) != 0) continue;
        snprintf(arch, 32, "%s", map[i].arch);
        snprintf(variant, 32, "%s", map[i].variant);
        return;
    }
    snprintf(arch, 32, "%s", u.machine);
}
