/*
 * ELF header summary from a buffer or a forward-only stream (see elf_info.h for the design).
 * All reads go through view_get(), which returns a pointer only when [off, off+len) lies wholly
 * inside the file prefix or inside one captured window; everything else is "unknown".
 */
#include "analyze/elf_info.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define PT_DYNAMIC_ 2
#define PT_INTERP_ 3
#define SHT_SYMTAB_ 2
#define DT_FLAGS_1_ 0x6ffffffbULL
#define DF_1_PIE_ 0x08000000ULL
#define MAX_PHNUM 4096

enum { WIN_INTERP = 0, WIN_DYN, WIN_SHT, WIN_COUNT };

typedef struct window {
    uint64_t off, len; /* requested range of the file */
    uint8_t *buf;      /* len bytes, filled as the stream passes */
    uint64_t filled;   /* bytes of the range seen */
} window;

typedef struct view {
    const uint8_t *head;
    uint64_t head_len;
    window win[WIN_COUNT];
} view;

struct es_elf_scan {
    uint8_t *head;
    uint64_t head_len;
    uint64_t pos; /* file offset of the next byte fed */
    int planned;  /* windows decided (head full) */
    view v;
};

/* ------------------------------------------------------------------ byte access */

static const uint8_t *view_get(const view *v, uint64_t off, uint64_t len)
{
    if (off + len < off) return NULL;
    if (off + len <= v->head_len) return v->head + off;
    for (int i = 0; i < WIN_COUNT; i++) {
        const window *w = &v->win[i];
        if (!w->buf || w->filled < w->len) continue;
        if (off >= w->off && off + len <= w->off + w->len) return w->buf + (off - w->off);
    }
    return NULL;
}

static uint64_t rd(const uint8_t *p, int n, int be)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x |= (uint64_t)p[be ? n - 1 - i : i] << (8 * i);
    return x;
}

/* ------------------------------------------------------------------ header parsing */

typedef struct ehdr {
    int is64, be;
    uint16_t type, machine;
    uint64_t phoff, shoff;
    uint16_t phentsize, phnum, shentsize, shnum;
} ehdr;

static int parse_ehdr(const view *v, ehdr *h)
{
    const uint8_t *p = view_get(v, 0, 52);
    if (!p || memcmp(p,
                     "\x7f"
                     "ELF",
                     4) != 0)
        return -1;
    if (p[4] != 1 && p[4] != 2) return -1;
    if (p[5] != 1 && p[5] != 2) return -1;
    h->is64 = p[4] == 2;
    h->be = p[5] == 2;
    if (h->is64 && !(p = view_get(v, 0, 64))) return -1;
    int be = h->be;
    h->type = (uint16_t)rd(p + 16, 2, be);
    h->machine = (uint16_t)rd(p + 18, 2, be);
    if (h->is64) {
        h->phoff = rd(p + 32, 8, be);
        h->shoff = rd(p + 40, 8, be);
        h->phentsize = (uint16_t)rd(p + 54, 2, be);
        h->phnum = (uint16_t)rd(p + 56, 2, be);
        h->shentsize = (uint16_t)rd(p + 58, 2, be);
        h->shnum = (uint16_t)rd(p + 60, 2, be);
    } else {
        h->phoff = rd(p + 28, 4, be);
        h->shoff = rd(p + 32, 4, be);
        h->phentsize = (uint16_t)rd(p + 42, 2, be);
        h->phnum = (uint16_t)rd(p + 44, 2, be);
        h->shentsize = (uint16_t)rd(p + 46, 2, be);
        h->shnum = (uint16_t)rd(p + 48, 2, be);
    }
    return 0;
}

typedef struct seg {
    uint64_t off, len;
    int present;
} seg;

/* Finds PT_INTERP and PT_DYNAMIC. Program headers that cannot be read are simply not seen. */
static void parse_phdrs(const view *v, const ehdr *h, seg *interp, seg *dyn)
{
    memset(interp, 0, sizeof *interp);
    memset(dyn, 0, sizeof *dyn);
    uint16_t need = h->is64 ? 56 : 32;
    if (h->phentsize < need || h->phnum == 0 || h->phnum > MAX_PHNUM) return;
    for (uint64_t i = 0; i < h->phnum; i++) {
        const uint8_t *p = view_get(v, h->phoff + i * h->phentsize, need);
        if (!p) return;
        uint32_t type = (uint32_t)rd(p, 4, h->be);
        seg s = {0, 0, 1};
        s.off = h->is64 ? rd(p + 8, 8, h->be) : rd(p + 4, 4, h->be);
        s.len = h->is64 ? rd(p + 32, 8, h->be) : rd(p + 16, 4, h->be);
        if (type == PT_INTERP_ && !interp->present) *interp = s;
        if (type == PT_DYNAMIC_ && !dyn->present) *dyn = s;
    }
}

static void read_interp(const view *v, const seg *s, es_elf_info *out)
{
    out->interp[0] = 0;
    if (!s->present || s->len == 0) return;
    uint64_t len = s->len < sizeof out->interp ? s->len : sizeof out->interp - 1;
    const uint8_t *p = view_get(v, s->off, len);
    if (!p) return;
    size_t i = 0;
    for (; i < len && p[i]; i++)
        out->interp[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    out->interp[i] = 0;
}

static int read_pie_flag(const view *v, const ehdr *h, const seg *s)
{
    if (!s->present) return 0;
    uint64_t ent = h->is64 ? 16 : 8, len = s->len < ES_ELF_DYN_CAP ? s->len : ES_ELF_DYN_CAP;
    for (uint64_t o = 0; o + ent <= len; o += ent) {
        const uint8_t *p = view_get(v, s->off + o, ent);
        if (!p) return -1;
        uint64_t tag = rd(p, (int)ent / 2, h->be), val = rd(p + ent / 2, (int)ent / 2, h->be);
        if (tag == 0) return 0;
        if (tag == DT_FLAGS_1_) return (val & DF_1_PIE_) ? 1 : 0;
    }
    return len < s->len ? -1 : 0;
}

/* Section count, honouring the extended numbering (e_shnum 0 -> sh_size of section 0). */
static uint64_t section_count(const view *v, const ehdr *h)
{
    if (h->shnum || h->shoff == 0) return h->shnum;
    const uint8_t *p = view_get(v, h->shoff, h->is64 ? 64 : 40);
    if (!p) return 0;
    return h->is64 ? rd(p + 32, 8, h->be) : rd(p + 20, 4, h->be);
}

static int read_has_symtab(const view *v, const ehdr *h)
{
    if (h->shoff == 0) return 0;
    uint16_t need = h->is64 ? 64 : 40;
    if (h->shentsize < need) return -1;
    uint64_t n = section_count(v, h);
    if (n > ES_ELF_SHT_CAP / need) return -1;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *p = view_get(v, h->shoff + i * h->shentsize, need);
        if (!p) return -1;
        if (rd(p + 4, 4, h->be) == SHT_SYMTAB_) return 1;
    }
    return 0;
}

static int parse_view(const view *v, es_elf_info *out)
{
    memset(out, 0, sizeof *out);
    ehdr h;
    if (parse_ehdr(v, &h) != 0) return -1;
    out->valid = 1;
    out->elf_class = h.is64 ? 64 : 32;
    out->big_endian = h.be;
    out->type = h.type;
    out->machine = h.machine;
    seg interp, dyn;
    parse_phdrs(v, &h, &interp, &dyn);
    out->has_interp = interp.present;
    out->has_dynamic = dyn.present;
    read_interp(v, &interp, out);
    out->pie_flag = read_pie_flag(v, &h, &dyn);
    out->has_symtab = read_has_symtab(v, &h);
    return 0;
}

int es_elf_parse(const uint8_t *buf, size_t len, es_elf_info *out)
{
    view v;
    memset(&v, 0, sizeof v);
    v.head = buf;
    v.head_len = len;
    return parse_view(&v, out);
}

/* ------------------------------------------------------------------ streaming scanner */

es_elf_scan *es_elf_scan_new(void)
{
    es_elf_scan *s = es_xcalloc(1, sizeof *s);
    s->head = es_xmalloc(ES_ELF_HEAD_CAP);
    s->v.head = s->head;
    return s;
}

void es_elf_scan_free(es_elf_scan *s)
{
    if (!s) return;
    for (int i = 0; i < WIN_COUNT; i++)
        free(s->v.win[i].buf);
    free(s->head);
    free(s);
}

/* Asks for [off, off+len) when it lies beyond the prefix and within cap. */
static void want_window(es_elf_scan *s, int i, uint64_t off, uint64_t len, uint64_t cap)
{
    if (len == 0 || len > cap || off + len < off || off + len <= s->head_len) return;
    if (off < s->head_len) return; /* straddles the prefix end: rare, reported unknown */
    window *w = &s->v.win[i];
    w->off = off;
    w->len = len;
    w->buf = es_xmalloc(len);
}

static void plan_windows(es_elf_scan *s)
{
    s->planned = 1;
    ehdr h;
    if (parse_ehdr(&s->v, &h) != 0) return;
    seg interp, dyn;
    parse_phdrs(&s->v, &h, &interp, &dyn);
    if (interp.present) want_window(s, WIN_INTERP, interp.off, interp.len, ES_ELF_INTERP_CAP);
    if (dyn.present)
        want_window(s, WIN_DYN, dyn.off, dyn.len < ES_ELF_DYN_CAP ? dyn.len : ES_ELF_DYN_CAP,
                    ES_ELF_DYN_CAP);
    uint16_t need = h.is64 ? 64 : 40;
    if (h.shoff && h.shentsize >= need && h.shnum)
        want_window(s, WIN_SHT, h.shoff, (uint64_t)h.shnum * h.shentsize, ES_ELF_SHT_CAP);
}

static void fill_windows(es_elf_scan *s, const uint8_t *buf, size_t n)
{
    uint64_t start = s->pos, end = s->pos + n;
    for (int i = 0; i < WIN_COUNT; i++) {
        window *w = &s->v.win[i];
        if (!w->buf) continue;
        uint64_t a = start > w->off ? start : w->off;
        uint64_t b = end < w->off + w->len ? end : w->off + w->len;
        if (a >= b) continue;
        memcpy(w->buf + (a - w->off), buf + (a - start), b - a);
        w->filled += b - a;
    }
}

void es_elf_scan_feed(es_elf_scan *s, const uint8_t *buf, size_t n)
{
    while (n > 0) {
        if (s->head_len < ES_ELF_HEAD_CAP) {
            size_t k = ES_ELF_HEAD_CAP - s->head_len;
            if (k > n) k = n;
            memcpy(s->head + s->head_len, buf, k);
            s->head_len += k;
            s->v.head_len = s->head_len;
            s->pos += k;
            buf += k;
            n -= k;
            continue;
        }
        if (!s->planned) plan_windows(s);
        fill_windows(s, buf, n);
        s->pos += n;
        n = 0;
    }
}

int es_elf_scan_finish(es_elf_scan *s, es_elf_info *out)
{
    int rc = parse_view(&s->v, out);
    es_elf_scan_free(s);
    return rc;
}

/* ------------------------------------------------------------------ names */

const char *es_elf_machine_name(uint16_t m)
{
    switch (m) {
    case 2:
        return "sparc";
    case 3:
        return "i386";
    case 8:
        return "mips";
    case 20:
        return "ppc";
    case 21:
        return "ppc64";
    case 22:
        return "s390x";
    case 40:
        return "arm";
    case 43:
        return "sparcv9";
    case 62:
        return "x86_64";
    case 183:
        return "aarch64";
    case 243:
        return "riscv";
    case 258:
        return "loongarch";
    default:
        return "unknown";
    }
}

const char *es_elf_kind(const es_elf_info *e)
{
    switch (e->type) {
    case 1:
        return "relocatable";
    case 2:
        return "executable";
    case 3:
        return (e->has_interp || e->pie_flag == 1) ? "pie-executable" : "shared-library";
    case 4:
        return "core";
    default:
        return "other";
    }
}

const char *es_elf_linking(const es_elf_info *e)
{
    if (e->has_interp) return "dynamic";
    if (!e->has_dynamic) return "static";
    if (e->type == 3 && e->pie_flag == 1) return "static-pie";
    return "dynamic";
}
