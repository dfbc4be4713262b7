/*
 * Decoding of the security.capability xattr (struct vfs_cap_data, revisions 1-3, little endian)
 * into capability sets and names ("cap_net_bind_service"), as getcap shows them.
 */
#ifndef ES_ANALYZE_CAPS_H
#define ES_ANALYZE_CAPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_caps {
    int revision;       /* 1, 2 or 3 */
    int effective;      /* the effective flag */
    uint64_t permitted; /* bit n = capability n */
    uint64_t inheritable;
    uint32_t rootid; /* revision 3 only (namespaced file caps) */
} es_caps;

/* 0 and *out filled, -1 when the bytes are not a valid vfs_cap_data. */
int es_caps_decode(const void *data, size_t len, es_caps *out);
/* "cap_chown", ... ; NULL for unknown numbers. */
const char *es_cap_name(int n);
/* getcap-style text: "cap_net_bind_service,cap_net_raw=ep" (+ " cap_x=i" for inheritable). */
void es_caps_text(const es_caps *c, char *buf, size_t len);

#endif
