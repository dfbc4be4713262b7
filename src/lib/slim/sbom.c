/*
 * SPDX 2.3 SBOM and seccomp profile generation (see sbom.h). jansson builds the documents;
 * output uses JSON_SORT_KEYS so the bytes depend only on the content.
 */
#include "slim/sbom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/digest.h"

static void pct_append(char **w, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(".-_~", c)) {
            *(*w)++ = (char)c;
        } else {
            sprintf(*w, "%%%02X", c);
            *w += 3;
        }
    }
}

char *es_purl(const char *type, const char *distro, const char *name, const char *version,
              const char *arch)
{
    size_t cap = 64 + 3 * (strlen(type) + strlen(distro) + strlen(name) + (version ? strlen(version) : 0) +
                           (arch ? strlen(arch) : 0));
    char *out = es_xmalloc(cap), *w = out;
    w += sprintf(w, "pkg:%s/", type);
    pct_append(&w, distro);
    *w++ = '/';
    pct_append(&w, name);
    if (version && *version) {
        *w++ = '@';
        pct_append(&w, version);
    }
    if (arch && *arch) {
        w += sprintf(w, "?arch=");
        pct_append(&w, arch);
    }
    *w = 0;
    return out;
}

/* SPDX ids allow letters, digits, '.' and '-'. */
static char *spdx_id(const char *prefix, const char *name, size_t idx)
{
    char *id = es_xasprintf("%s-%s-%zu", prefix, name, idx);
    for (char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
            *p = '-';
    return id;
}

static json_t *relationship(const char *from, const char *type, const char *to)
{
    return json_pack("{s:s, s:s, s:s}", "spdxElementId", from, "relationshipType", type, "relatedSpdxElement", to);
}

static json_t *package_json(const es_pkgdb *db, const es_pkg *p, const char *id)
{
    const char *type = db->kind == ES_PKGDB_APK ? "apk" : "deb";
    char *purl = es_purl(type, db->distro, p->name, p->version, p->arch);
    json_t *ref = json_pack("{s:s, s:s, s:s}", "referenceCategory", "PACKAGE-MANAGER", "referenceType", "purl",
                            "referenceLocator", purl);
    json_t *pkg = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:[o]}", "name", p->name, "SPDXID", id,
                            "versionInfo", p->version ? p->version : "NOASSERTION", "downloadLocation",
                            "NOASSERTION", "filesAnalyzed", 0, "licenseConcluded", "NOASSERTION",
                            "licenseDeclared", "NOASSERTION", "copyrightText", "NOASSERTION", "externalRefs", ref);
    free(purl);
    return pkg;
}

json_t *es_sbom_spdx(const es_sbom_info *info, const es_pkgdb *db)
{
    json_t *packages = json_array(), *rels = json_array();
    const char *img_id = "SPDXRef-Image";
    json_array_append_new(packages,
                          json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s}", "name", info->image_name, "SPDXID",
                                    img_id, "downloadLocation", "NOASSERTION", "filesAnalyzed", 0,
                                    "primaryPackagePurpose", "CONTAINER", "licenseConcluded", "NOASSERTION",
                                    "licenseDeclared", "NOASSERTION", "copyrightText", "NOASSERTION"));
    json_array_append_new(rels, relationship("SPDXRef-DOCUMENT", "DESCRIBES", img_id));
    es_sha256 *h = es_sha256_new();
    es_sha256_update(h, info->source_digest, strlen(info->source_digest));
    for (size_t i = 0; i < db->n; i++) {
        const es_pkg *p = &db->v[i];
        if (!p->installed || !p->kept) continue;
        char *id = spdx_id(db->kind == ES_PKGDB_APK ? "SPDXRef-Package-apk" : "SPDXRef-Package-deb", p->name, i);
        json_array_append_new(packages, package_json(db, p, id));
        json_array_append_new(rels, relationship(img_id, "CONTAINS", id));
        es_sha256_update(h, p->stanza, strlen(p->stanza));
        free(id);
    }
    es_digest d;
    es_sha256_final(h, &d);
    char *ns = es_xasprintf("https://edgeslim.invalid/spdx/%s", es_digest_hex(d.s));
    char *creator = es_xasprintf("Tool: edgeslim-%s", info->tool_version);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:[s]}, s:o, s:o}", "spdxVersion", "SPDX-2.3",
                            "dataLicense", "CC0-1.0", "SPDXID", "SPDXRef-DOCUMENT", "name", info->image_name,
                            "documentNamespace", ns, "creationInfo", "created", info->created, "creators",
                            creator, "packages", packages, "relationships", rels);
    free(ns);
    free(creator);
    return doc;
}

static const char *const runtime_minimum[] = {
    "access",        "arch_prctl",    "brk",          "capget",          "capset",
    "chdir",         "close",         "execve",       "execveat",        "exit",
    "exit_group",    "fchdir",        "fcntl",        "fstat",           "futex",
    "getcwd",        "getdents64",    "getegid",      "geteuid",         "getgid",
    "getpid",        "getppid",       "getrandom",    "gettid",          "getuid",
    "mmap",          "mprotect",      "munmap",       "nanosleep",       "newfstatat",
    "openat",        "prctl",         "pread64",      "prlimit64",       "read",
    "readlink",      "restart_syscall", "rseq",       "rt_sigaction",    "rt_sigprocmask",
    "rt_sigreturn",  "sched_yield",   "set_robust_list", "set_tid_address", "setgid",
    "setgroups",     "setuid",        "sigaltstack",  "stat",            "statx",
    "tgkill",        "write",
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *es_seccomp_profile(const char *const *syscalls, size_t n)
{
    size_t nmin = sizeof runtime_minimum / sizeof runtime_minimum[0];
    const char **all = es_xcalloc(n + nmin + 1, sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) all[k++] = syscalls[i];
    for (size_t i = 0; i < nmin; i++) all[k++] = runtime_minimum[i];
    qsort(all, k, sizeof *all, cmp_str);
    json_t *names = json_array();
    for (size_t i = 0; i < k; i++)
        if (i == 0 || strcmp(all[i], all[i - 1])) json_array_append_new(names, json_string(all[i]));
    free(all);
#if defined(__x86_64__)
    json_t *arch = json_pack("[s,s,s]", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32");
#elif defined(__aarch64__)
    json_t *arch = json_pack("[s,s]", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM");
#else
    json_t *arch = json_array();
#endif
    return json_pack("{s:s, s:i, s:o, s:[{s:o, s:s}]}", "defaultAction", "SCMP_ACT_ERRNO", "defaultErrnoRet", 1,
                     "architectures", arch, "syscalls", "names", names, "action", "SCMP_ACT_ALLOW");
}

char *es_json_pretty(const json_t *j)
{
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_ENSURE_ASCII);
    if (!s) return es_xstrdup("null\n");
    char *out = es_xasprintf("%s\n", s);
    free(s);
    return out;
}

const char *es_doc_timestamp(const char *fallback, char *buf, size_t len)
{
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end = NULL;
        long long v = strtoll(sde, &end, 10);
        if (end && !*end && v >= 0) {
            time_t t = (time_t)v;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
            return buf;
        }
    }
    if (fallback && strlen(fallback) >= 19) {
        /* Normalise "2024-01-02T03:04:05.123456789Z" / "+00:00" to whole seconds, Z. */
        snprintf(buf, len, "%.19sZ", fallback);
        return buf;
    }
    snprintf(buf, len, "1970-01-01T00:00:00Z");
    return buf;
}
