/*
 * SBOM and seccomp profile documents of `slim`.
 *
 * SBOM: SPDX 2.3 JSON of the slim image: one package for the image itself (purpose CONTAINER),
 * one per package left in the rewritten package DB (name, version, PURL
 * "pkg:deb/debian/NAME@VERSION?arch=ARCH", "pkg:apk/alpine/..." for apk), the document DESCRIBES
 * the image, the image CONTAINS each package. Deterministic: `created` comes from
 * SOURCE_DATE_EPOCH or, when unset, the source image's created time (never the clock); the
 * document namespace is derived from the source digest and the package list. Keys are sorted.
 * Inside the image it goes to ES_SBOM_IMAGE_PATH: syft's SBOM cataloger globs any path ending in .spdx.json
 * and trivy matches the ".spdx.json" suffix, so both pick it up.
 *
 * Seccomp: an OCI/Docker profile: defaultAction SCMP_ACT_ERRNO (errno 1), architectures of the
 * host, one SCMP_ACT_ALLOW rule listing the syscalls seen during tracing plus the minimum a
 * runtime and the dynamic loader need to start the process (execve, mmap, ...). Names sorted.
 */
#ifndef ES_SLIM_SBOM_H
#define ES_SLIM_SBOM_H

#include <jansson.h>
#include <stdint.h>

#include "slim/pkgdb.h"

#define ES_SBOM_IMAGE_PATH "/usr/share/edgeslim/sbom.spdx.json"

typedef struct es_sbom_info {
    const char *image_name;     /* e.g. the destination reference */
    const char *source_digest;  /* "sha256:..." of the source manifest */
    const char *created;        /* RFC 3339 UTC, already chosen by the caller */
    const char *tool_version;   /* "0.1.0" */
} es_sbom_info;

/* "pkg:deb/debian/NAME@VERSION?arch=ARCH" with percent-encoding (malloc'd). */
char *es_purl(const char *type, const char *distro, const char *name, const char *version,
              const char *arch);
/* SPDX 2.3 document (new reference) of the packages kept in db. */
json_t *es_sbom_spdx(const es_sbom_info *info, const es_pkgdb *db);
/* The seccomp profile for the syscall names seen (new reference). */
json_t *es_seccomp_profile(const char *const *syscalls, size_t n);
/* Pretty, sorted-key JSON text with a trailing newline (malloc'd). */
char *es_json_pretty(const json_t *j);
/* Timestamp for documents: SOURCE_DATE_EPOCH if set, else fallback (an RFC 3339 string, may be
 * NULL), else "1970-01-01T00:00:00Z". Writes into buf. */
const char *es_doc_timestamp(const char *fallback, char *buf, size_t len);

#endif
