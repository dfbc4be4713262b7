/*
 * Keep rules of `slim`: --include, --include-bin, --include-shell, --exclude, --keep-file, and
 * the built-in presets. Patterns are absolute container paths; a pattern with glob characters
 * uses `*` (any run of characters except '/'), `**` (any run including '/'), `?` and `[...]`.
 * A pattern matches a path when it matches the path itself or any of its parent directories, so
 * a directory pattern covers everything below it.
 *
 * Precedence (documented in docs/slim.md): --exclude removes paths kept as traced, rule or preset,
 * but never the static closure of the entrypoint/cmd (without it the app cannot start, and
 * verification would fail anyway).
 *
 * Keep-file format: one rule per line, `include PATTERN`, `include-bin PATH`, `include-shell`,
 * `exclude PATTERN`; blank lines and lines starting with '#' are ignored.
 */
#ifndef ES_SLIM_RULES_H
#define ES_SLIM_RULES_H

#include <stddef.h>

#include "slim/closure.h"
#include "slim/keepset.h"
#include "util/error.h"

typedef enum { ES_RULE_INCLUDE, ES_RULE_INCLUDE_BIN, ES_RULE_INCLUDE_SHELL, ES_RULE_EXCLUDE } es_rule_kind;

typedef struct es_rule {
    es_rule_kind kind;
    char *pattern; /* NULL for include-shell */
} es_rule;

typedef struct es_rules {
    es_rule *v;
    size_t n, cap;
} es_rules;

/* Adds a rule; a pattern that is not absolute is refused (ES_EUSAGE naming it). */
int es_rules_add(es_rules *r, es_rule_kind kind, const char *pattern, es_error *err);
/* Parses keep-file text; errors are ES_EUSAGE "NAME:LINE: ...". */
int es_rules_parse_text(es_rules *r, const char *text, const char *name, es_error *err);
int es_rules_parse_file(es_rules *r, const char *path, es_error *err);
void es_rules_free(es_rules *r);

/* Glob match of a whole path (see above for the syntax; no ancestor rule). */
int es_glob_match(const char *pattern, const char *path);
/* Pattern matches path or one of its parents. */
int es_rule_covers(const char *pattern, const char *path);

/* Applies include, include-bin and include-shell rules: keeps what they name in the rootfs at
 * `root` (reason ES_KEEP_RULE). An include that matches nothing is an error (ES_EUSAGE): a
 * typo should not silently keep nothing. */
int es_rules_apply_includes(const es_rules *r, const char *root, es_closure *c, es_keepset *ks,
                            es_error *err);
/* Removes from ks what the exclude rules match, except paths with ES_KEEP_STATIC (and the
 * parents of whatever stays). Returns the number of paths removed. */
size_t es_rules_apply_excludes(const es_rules *r, es_keepset *ks);

/* Built-in presets (reason ES_KEEP_PRESET): CA certificates, /etc/localtime + UTC zone (+ TZ
 * from env), passwd/group/nsswitch.conf/hosts/resolv.conf/host.conf/services/protocols, locale
 * files named by LANG/LC_ALL/LC_* in env (NULL-terminated "K=V" array, may be NULL). */
int es_presets_apply(const char *root, char *const *env, es_keepset *ks, es_error *err);

#endif
