/*
 * The package database of the image, rewritten for the slim image so scanners inventory what
 * is really left: dpkg (/var/lib/dpkg/status + info/PKG[:ARCH].list) and apk
 * (/lib/apk/db/installed). A package stays when at least one of its non-directory files remains
 * in the keep-set (list paths are resolved inside the original root, so "/lib/x/libc.so.6" in
 * a merged-/usr image counts as "/usr/lib/x/libc.so.6"). Kept stanzas are written verbatim and
 * in their original order; dropped packages lose their stanza and their info files.
 */
#ifndef ES_SLIM_PKGDB_H
#define ES_SLIM_PKGDB_H

#include <stddef.h>

#include "slim/keepset.h"
#include "util/error.h"

typedef enum { ES_PKGDB_NONE = 0, ES_PKGDB_DPKG, ES_PKGDB_APK } es_pkgdb_kind;

typedef struct es_pkg {
    char *name, *version, *arch;
    char *stanza;      /* verbatim text including the trailing blank line */
    int installed;     /* dpkg "install ok installed" / every apk entry */
    int kept;          /* at least one non-directory file left */
    size_t files;      /* non-directory files listed */
} es_pkg;

typedef struct es_pkgdb {
    es_pkgdb_kind kind;
    char distro[32];   /* ID from /etc/os-release ("debian"), for PURLs */
    es_pkg *v;
    size_t n;
} es_pkgdb;

/* Parses dpkg status text (exposed for tests). */
int es_pkgdb_parse_dpkg_status(const char *text, es_pkgdb *db, es_error *err);
/* Reads the DB of the image at root and marks kept packages against ks (ks may be NULL: nothing
 * kept). No DB: kind ES_PKGDB_NONE, n = 0. */
int es_pkgdb_scan(const char *root, const es_keepset *ks, es_pkgdb *db, es_error *err);
/* Adds the DB files the slim image needs to ks (status, info files of kept packages) with
 * ES_KEEP_META. */
void es_pkgdb_keep_files(const char *root, const es_pkgdb *db, es_keepset *ks);
/* The rewritten DB text (kept, installed stanzas in order). malloc'd. */
char *es_pkgdb_render(const es_pkgdb *db);
/* Writes the rewritten DB into the slim tree at slim_root (status / installed file replaced). */
int es_pkgdb_write(const char *slim_root, const es_pkgdb *db, es_error *err);
size_t es_pkgdb_installed_count(const es_pkgdb *db);
size_t es_pkgdb_kept_count(const es_pkgdb *db);
void es_pkgdb_free(es_pkgdb *db);

#endif
