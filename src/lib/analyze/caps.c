/*
 * security.capability decoding. Layout (linux/capability.h): le32 magic_etc (revision in the top
 * byte, bit 0 = effective), then per 32-bit word a le32 permitted and le32 inheritable; revision 1
 * has one word (12 bytes), revision 2 two words (20 bytes), revision 3 adds le32 rootid (24).
 * The names are the kernel's, numbered as in capability.h; bits above the table print as numbers.
 */
#include "analyze/caps.h"

#include <stdio.h>
#include <string.h>

static const char *const cap_names[] = {
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
};
#define N_CAP_NAMES ((int)(sizeof cap_names / sizeof cap_names[0]))

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int es_caps_decode(const void *data, size_t len, es_caps *out)
{
    const unsigned char *p = data;
    memset(out, 0, sizeof *out);
    if (!p || len < 4) return -1;
    uint32_t magic = le32(p);
    uint32_t rev = magic & 0xFF000000u;
    out->effective = (int)(magic & 1u);
    if (magic & 0x00FFFFFEu) return -1; /* only the effective flag is defined */
    if (rev == 0x01000000u && len == 12) {
        out->revision = 1;
        out->permitted = le32(p + 4);
        out->inheritable = le32(p + 8);
        return 0;
    }
    if ((rev == 0x02000000u && len == 20) || (rev == 0x03000000u && len == 24)) {
        out->revision = rev == 0x02000000u ? 2 : 3;
        out->permitted = le32(p + 4) | (uint64_t)le32(p + 12) << 32;
        out->inheritable = le32(p + 8) | (uint64_t)le32(p + 16) << 32;
        if (out->revision == 3) out->rootid = le32(p + 20);
        return 0;
    }
    return -1;
}

const char *es_cap_name(int n)
{
    return n >= 0 && n < N_CAP_NAMES ? cap_names[n] : NULL;
}

static void append(char *buf, size_t len, size_t *pos, const char *s)
{
    int k = snprintf(buf + *pos, *pos < len ? len - *pos : 0, "%s", s);
    if (k > 0) *pos += (size_t)k;
    if (*pos >= len) *pos = len ? len - 1 : 0;
}

static void append_set(char *buf, size_t len, size_t *pos, uint64_t set)
{
    int first = 1;
    for (int n = 0; n < 64; n++) {
        if (!(set >> n & 1)) continue;
        char num[24];
        const char *name = es_cap_name(n);
        if (!name) snprintf(num, sizeof num, "%d", n), name = num;
        if (!first) append(buf, len, pos, ",");
        append(buf, len, pos, name);
        first = 0;
    }
}

void es_caps_text(const es_caps *c, char *buf, size_t len)
{
    size_t pos = 0;
    if (len) buf[0] = 0;
    uint64_t both = c->permitted & c->inheritable;
    uint64_t ponly = c->permitted & ~c->inheritable, ionly = c->inheritable & ~c->permitted;
    const char *groups[3][2] = {{"=eip", "=ip"}, {"=ep", "=p"}, {"=i", "=i"}};
    uint64_t sets[3] = {both, ponly, ionly};
    for (int g = 0; g < 3; g++) {
        if (!sets[g]) continue;
        if (pos) append(buf, len, &pos, " ");
        append_set(buf, len, &pos, sets[g]);
        append(buf, len, &pos, groups[g][c->effective ? 0 : 1]);
    }
}
