/*
 * Private to src/lib/analyze: the path trie shared by the event core (analyzer.c) and the report
 * builder (report.c). One node per distinct path ever seen in any layer; nodes are never freed
 * before the analyzer, only their per-file extras when the file leaves the final tree.
 */
#ifndef ES_ANALYZE_ANALYZER_INTERNAL_H
#define ES_ANALYZE_ANALYZER_INTERNAL_H

#include <stdint.h>

#include "analyze/analyzer.h"
#include "analyze/caps.h"
#include "analyze/elf_info.h"
#include "analyze/packages.h"

/* Flags of a node in the current layer's tree (dive's per-layer FileTree). */
enum {
    CF_INTREE = 1,   /* the node exists in this layer's tree (as an entry or an implied parent) */
    CF_EXPLICIT = 2, /* a tar entry named it (else it is an implied parent: dive's FileInfo{}) */
    CF_WHITEOUT = 4, /* a ".wh.<name>" entry in this layer deletes it */
    CF_HASCHILD = 8, /* some other node of this layer's tree lies below it (so it is no leaf) */
    CF_ISDIR = 16,   /* the entry was a directory */
    CF_LOWER_HIDDEN =
        32, /* final tree: lower layers' contents below it already hidden (once per
               layer, so repeated whiteouts/opaque markers/replacements stay linear) */
};

typedef struct node_extra {
    char *link; /* symlink/hardlink target */
    int has_caps;
    es_caps caps;
    es_elf_info *elf;
    es_package_list *pkgs;
} node_extra;

typedef struct node node;
struct node {
    node *parent, *child, *sibling, *hnext;
    char *name;
    uint32_t seq; /* creation order: deterministic tie-breaker */
    /* dive: efficiency record of this path over all layers */
    int64_t dive_cum, dive_min;
    int32_t dive_refs;
    /* dive: this path in the stack of the layers below the current one */
    int64_t dive_size;
    uint8_t dive_present, dive_isdir;
    /* this path in the current layer (valid while cur_layer is the current index) */
    uint8_t cur_flags;
    int32_t cur_layer;
    int64_t cur_size;
    /* the final tree (OCI semantics) */
    uint8_t present, type, implicit;
    int32_t layer;
    uint32_t mode;
    int64_t uid, gid, size;
    node_extra *ex;
};

typedef struct layer_rec {
    int64_t size; /* dive: sum of tar header sizes of all entries */
    int64_t entries, files, whiteouts;
    int64_t compressed_size, tar_size;
    char *digest, *diff_id, *media_type, *created_by;
} layer_rec;

struct es_analyzer {
    node root;
    node **table; /* hash of (parent, name) -> node, chained by hnext */
    size_t table_size;
    node **all; /* every node, by seq */
    size_t n_nodes, cap_nodes;
    int32_t layer; /* index of the current (or last) layer, -1 before the first */
    int in_layer;
    node **touched; /* nodes of the current layer's tree and its whiteouts */
    size_t n_touched, cap_touched;
    layer_rec *layers;
    size_t n_layers, cap_layers;
    int64_t file_entry_bytes; /* sum of sizes of every regular-file entry of every layer */
    uint8_t *buf;             /* content read buffer */
};

/* "/a/b" for a node (malloc'd); "/" for the root. */
char *es_analyze_node_path(const node *n);

#endif
