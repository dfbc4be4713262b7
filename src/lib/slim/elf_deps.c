/*
 * ELF dependency reader (see elf_deps.h). Hand-written rather than libelf: Debian's libelf is an
 * extra runtime dependency for ~200 lines of bounds-checked reading, and we need only program
 * headers and the dynamic section. Invariant: no read goes past [buf, buf+len); every
 * file-supplied offset/size/count is checked with overflow-safe arithmetic first.
 */
#include "slim/elf_deps.h"

#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const uint8_t *buf;
    size_t len;
    int is64, be;
    const char *name;
} elf_view;

typedef struct {
    uint64_t vaddr, offset, filesz;
} load_seg;

static int in_bounds(const elf_view *v, uint64_t off, uint64_t n)
{
    return off <= v->len && n <= v->len - off;
}

static uint64_t rd(const elf_view *v, uint64_t off, int size)
{
    uint64_t x = 0;
    const uint8_t *p = v->buf + off;
    for (int i = 0; i < size; i++) {
        int idx = v->be ? i : size - 1 - i;
        x = (x << 8) | p[idx];
    }
    return x;
}

static int bad(elf_view *v, es_error *err, const char *what)
{
    return es_err(err, ES_EFORMAT, "%s: malformed ELF: %s", v->name, what);
}

/* Maps a virtual address to a file offset through the PT_LOAD segments; UINT64_MAX if none. */
static uint64_t vaddr_to_off(const load_seg *segs, size_t n, uint64_t vaddr)
{
    for (size_t i = 0; i < n; i++)
        if (vaddr >= segs[i].vaddr && vaddr - segs[i].vaddr < segs[i].filesz)
            return segs[i].offset + (vaddr - segs[i].vaddr);
    return UINT64_MAX;
}

/* A NUL-terminated string at [off, limit) copied out, or NULL when unterminated/out of bounds. */
static char *str_at(const elf_view *v, uint64_t off, uint64_t limit)
{
    if (limit > v->len) limit = v->len;
    if (off >= limit) return NULL;
    const void *nul = memchr(v->buf + off, 0, limit - off);
    if (!nul) return NULL;
    return es_xstrdup((const char *)v->buf + off);
}

typedef struct {
    uint64_t dyn_off, dyn_size;
    int has_dyn;
    load_seg *segs;
    size_t n_segs;
} phdr_scan;

static int scan_phdrs(elf_view *v, es_elf_deps *out, phdr_scan *ps, es_error *err)
{
    uint64_t phoff = rd(v, v->is64 ? 32 : 28, v->is64 ? 8 : 4);
    uint64_t phentsize = rd(v, v->is64 ? 54 : 42, 2);
    uint64_t phnum = rd(v, v->is64 ? 56 : 44, 2);
    if (phnum == 0) return 0;
    if (phnum == PN_XNUM) return bad(v, err, "extended program header count is not supported");
    uint64_t need = v->is64 ? 56 : 32;
    if (phentsize < need) return bad(v, err, "program header entry too small");
    if (phnum > v->len / phentsize || !in_bounds(v, phoff, phnum * phentsize))
        return bad(v, err, "program headers past end of file");
    ps->segs = es_xcalloc(phnum, sizeof *ps->segs);
    for (uint64_t i = 0; i < phnum; i++) {
        uint64_t p = phoff + i * phentsize;
        uint32_t type = (uint32_t)rd(v, p, 4);
        uint64_t off = rd(v, p + (v->is64 ? 8 : 4), v->is64 ? 8 : 4);
        uint64_t vaddr = rd(v, p + (v->is64 ? 16 : 8), v->is64 ? 8 : 4);
        uint64_t filesz = rd(v, p + (v->is64 ? 32 : 16), v->is64 ? 8 : 4);
        if (type == PT_LOAD) {
            ps->segs[ps->n_segs++] = (load_seg){vaddr, off, filesz};
        } else if (type == PT_INTERP) {
            if (!in_bounds(v, off, filesz) || filesz == 0) return bad(v, err, "PT_INTERP out of bounds");
            free(out->interp);
            out->interp = str_at(v, off, off + filesz);
            if (!out->interp) return bad(v, err, "PT_INTERP not terminated");
        } else if (type == PT_DYNAMIC) {
            if (!in_bounds(v, off, filesz)) return bad(v, err, "PT_DYNAMIC out of bounds");
            ps->dyn_off = off, ps->dyn_size = filesz, ps->has_dyn = 1;
        }
    }
    return 0;
}

typedef struct {
    uint64_t strtab, strsz;
    int has_strtab;
    uint64_t rpath, runpath;
    int has_rpath, has_runpath;
    uint64_t *needed;
    size_t n_needed;
} dyn_scan;

static void scan_dynamic(elf_view *v, const phdr_scan *ps, dyn_scan *ds)
{
    uint64_t ent = v->is64 ? 16 : 8;
    int w = v->is64 ? 8 : 4;
    size_t max = ps->dyn_size / ent;
    ds->needed = es_xcalloc(max ? max : 1, sizeof *ds->needed);
    for (size_t i = 0; i < max; i++) {
        uint64_t p = ps->dyn_off + i * ent;
        uint64_t tag = rd(v, p, w), val = rd(v, p + w, w);
        if (tag == DT_NULL) break;
        switch (tag) {
        case DT_NEEDED: ds->needed[ds->n_needed++] = val; break;
        case DT_STRTAB: ds->strtab = val, ds->has_strtab = 1; break;
        case DT_STRSZ: ds->strsz = val; break;
        case DT_RPATH: ds->rpath = val, ds->has_rpath = 1; break;
        case DT_RUNPATH: ds->runpath = val, ds->has_runpath = 1; break;
        default: break;
        }
    }
}

static int read_dyn_strings(elf_view *v, const phdr_scan *ps, const dyn_scan *ds, es_elf_deps *out,
                            es_error *err)
{
    if (!ds->n_needed && !ds->has_rpath && !ds->has_runpath) return 0;
    if (!ds->has_strtab) return bad(v, err, "dynamic section without DT_STRTAB");
    uint64_t base = vaddr_to_off(ps->segs, ps->n_segs, ds->strtab);
    if (base == UINT64_MAX || base >= v->len) return bad(v, err, "DT_STRTAB not in a loaded segment");
    uint64_t limit = ds->strsz && ds->strsz <= v->len - base ? base + ds->strsz : v->len;
    out->needed = es_xcalloc(ds->n_needed ? ds->n_needed : 1, sizeof *out->needed);
    for (size_t i = 0; i < ds->n_needed; i++) {
        if (ds->needed[i] >= limit - base) return bad(v, err, "DT_NEEDED offset out of bounds");
        out->needed[i] = str_at(v, base + ds->needed[i], limit);
        if (!out->needed[i]) return bad(v, err, "DT_NEEDED string not terminated");
        out->n_needed++;
    }
    if (ds->has_rpath) {
        if (ds->rpath >= limit - base || !(out->rpath = str_at(v, base + ds->rpath, limit)))
            return bad(v, err, "DT_RPATH out of bounds");
    }
    if (ds->has_runpath) {
        if (ds->runpath >= limit - base || !(out->runpath = str_at(v, base + ds->runpath, limit)))
            return bad(v, err, "DT_RUNPATH out of bounds");
    }
    return 0;
}

int es_elf_deps_parse_mem(const uint8_t *buf, size_t len, const char *name, es_elf_deps *out,
                          es_error *err)
{
    memset(out, 0, sizeof *out);
    if (len < EI_NIDENT || memcmp(buf, ELFMAG, SELFMAG) != 0) return 0;
    elf_view v = {buf, len, buf[EI_CLASS] == ELFCLASS64, buf[EI_DATA] == ELFDATA2MSB, name};
    if (buf[EI_CLASS] != ELFCLASS32 && buf[EI_CLASS] != ELFCLASS64) return bad(&v, err, "unknown class");
    if (buf[EI_DATA] != ELFDATA2LSB && buf[EI_DATA] != ELFDATA2MSB) return bad(&v, err, "unknown byte order");
    if (len < (v.is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr))) return bad(&v, err, "truncated header");
    out->elf_class = buf[EI_CLASS];
    out->big_endian = v.be;
    out->type = (uint16_t)rd(&v, 16, 2);
    out->machine = (uint16_t)rd(&v, 18, 2);
    phdr_scan ps = {0};
    dyn_scan ds = {0};
    int rc = scan_phdrs(&v, out, &ps, err);
    if (rc == 0 && ps.has_dyn) {
        scan_dynamic(&v, &ps, &ds);
        rc = read_dyn_strings(&v, &ps, &ds, out, err);
    }
    free(ps.segs);
    free(ds.needed);
    if (rc < 0) {
        es_elf_deps_free(out);
        return -1;
    }
    return 1;
}

int es_elf_deps_parse_file(const char *path, es_elf_deps *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    es_cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return es_err_sys(err, ES_EIO, "%s: cannot open", path);
    struct stat st;
    if (fstat(fd, &st) < 0) return es_err_sys(err, ES_EIO, "%s: cannot stat", path);
    if (!S_ISREG(st.st_mode) || st.st_size < EI_NIDENT) return 0;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) return es_err_sys(err, ES_EIO, "%s: cannot map", path);
    int rc = es_elf_deps_parse_mem(m, (size_t)st.st_size, path, out, err);
    munmap(m, (size_t)st.st_size);
    return rc;
}

void es_elf_deps_free(es_elf_deps *d)
{
    if (!d) return;
    free(d->interp);
    for (size_t i = 0; i < d->n_needed; i++) free(d->needed[i]);
    free(d->needed);
    free(d->rpath);
    free(d->runpath);
    memset(d, 0, sizeof *d);
}
