/*
 * Package databases found in an image: dpkg's status file (and distroless's one-file-per-package
 * status.d/), and apk's installed database. Parsed from text in memory (the caller caps the size).
 */
#ifndef ES_ANALYZE_PACKAGES_H
#define ES_ANALYZE_PACKAGES_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_package {
    char *name, *version, *arch;
    int64_t installed_size; /* bytes (dpkg's Installed-Size is KiB and is converted); -1 unknown */
} es_package;

typedef struct es_package_list {
    const char *manager; /* "dpkg" or "apk" (static string) */
    size_t n, cap;
    es_package *items;
} es_package_list;

/* Parse a dpkg status (or status.d) text. Stanzas whose Status is present and does not end in
 * "installed" (removed packages keeping config files) are skipped. Never fails: malformed stanzas
 * without a Package field are ignored. */
void es_dpkg_parse(const char *text, size_t len, es_package_list *out);
/* Parse apk's lib/apk/db/installed (P: V: A: I: lines, blank line between packages). */
void es_apk_parse(const char *text, size_t len, es_package_list *out);
void es_package_list_free(es_package_list *l);

/* Which database a final-tree path is: "dpkg", "apk" or NULL. */
const char *es_package_db_kind(const char *path);

#endif
