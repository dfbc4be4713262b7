/*
 * ELF summary for the inventory: class, machine, type, static or dynamic, interpreter, stripped.
 * Parsed by hand from the ELF header, program headers, PT_INTERP, PT_DYNAMIC (DT_FLAGS_1) and the
 * section header types (a SHT_SYMTAB means "not stripped"). No library on Debian parses ELF from a
 * forward-only stream with bounded memory (libelf wants a file or a whole buffer), and we only need
 * a handful of fixed-offset fields.
 *
 * Streaming: layer entries are forward-only, and the section header table usually sits at the end
 * of the file. The scanner keeps the first ES_ELF_HEAD_CAP bytes; once it has them it knows from
 * the headers where the interpreter string, the dynamic section and the section header table are,
 * and captures just those ranges (each capped) as the rest of the file streams past. Memory per
 * file is bounded (64 KiB + the caps) and freed after the file; nothing grows with file size.
 *
 * Every offset and count read from the file is bounds-checked; hostile input yields valid=0 or
 * fields marked unknown, never a read outside the buffers.
 */
#ifndef ES_ANALYZE_ELF_INFO_H
#define ES_ANALYZE_ELF_INFO_H

#include <stddef.h>
#include <stdint.h>

#define ES_ELF_HEAD_CAP (64 * 1024)
#define ES_ELF_SHT_CAP (4 * 1024 * 1024)
#define ES_ELF_DYN_CAP (64 * 1024)
#define ES_ELF_INTERP_CAP 4096

typedef struct es_elf_info {
    int valid;     /* 1: a well-formed ELF header was read */
    int elf_class; /* 32 or 64 */
    int big_endian;
    uint16_t type;    /* e_type: 1 rel, 2 exec, 3 dyn, 4 core */
    uint16_t machine; /* e_machine */
    int has_interp;   /* PT_INTERP present */
    int has_dynamic;  /* PT_DYNAMIC present */
    int pie_flag;     /* DT_FLAGS_1 has DF_1_PIE; -1 unknown */
    int has_symtab;   /* 1 SHT_SYMTAB present, 0 absent, -1 unknown (table unreadable) */
    char interp[256]; /* interpreter path ("" if none or unreadable) */
} es_elf_info;

/* Parses a whole (or truncated) file image. Returns 0 and fills *out (valid=1) for an ELF file,
 * -1 with out->valid=0 when buf is not a usable ELF header. */
int es_elf_parse(const uint8_t *buf, size_t len, es_elf_info *out);

typedef struct es_elf_scan es_elf_scan;
es_elf_scan *es_elf_scan_new(void);
void es_elf_scan_feed(es_elf_scan *s, const uint8_t *buf, size_t n);
/* Finishes (file ended) and fills *out; returns like es_elf_parse. Frees s. */
int es_elf_scan_finish(es_elf_scan *s, es_elf_info *out);
void es_elf_scan_free(es_elf_scan *s);

const char *es_elf_machine_name(uint16_t machine); /* "x86_64", "aarch64", ... or "unknown" */
/* "executable", "pie-executable", "shared-library", "relocatable", "core", "other" */
const char *es_elf_kind(const es_elf_info *e);
/* "static", "static-pie", "dynamic" */
const char *es_elf_linking(const es_elf_info *e);

#endif
