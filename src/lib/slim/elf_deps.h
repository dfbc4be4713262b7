/*
 * Reading what the dynamic loader needs from one ELF file: the interpreter (PT_INTERP), the
 * DT_NEEDED names, DT_RPATH and DT_RUNPATH. Random access over a file in a root filesystem, for
 * the static closure of `slim`. Every offset and size read from the file is checked against the
 * file size before use; 32/64-bit and both byte orders are handled. A file that is not ELF is
 * reported as such (return 0), a truncated or inconsistent ELF file is ES_EFORMAT.
 */
#ifndef ES_SLIM_ELF_DEPS_H
#define ES_SLIM_ELF_DEPS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct es_elf_deps {
    int elf_class;      /* 1 = ELFCLASS32, 2 = ELFCLASS64 */
    int big_endian;
    uint16_t machine;   /* e_machine */
    uint16_t type;      /* e_type (ET_EXEC, ET_DYN, ...) */
    char *interp;       /* PT_INTERP or NULL */
    char **needed;      /* DT_NEEDED names, n_needed of them */
    size_t n_needed;
    char *rpath;        /* DT_RPATH or NULL (colon-separated, unexpanded) */
    char *runpath;      /* DT_RUNPATH or NULL */
} es_elf_deps;

/* Parses an ELF image held in memory. Returns 1 when it is ELF (deps filled), 0 when it is not
 * ELF (no magic), -1 with err (ES_EFORMAT naming `name`) when the ELF structure is broken. */
int es_elf_deps_parse_mem(const uint8_t *buf, size_t len, const char *name, es_elf_deps *out,
                          es_error *err);
/* Same on a file (read through mmap). ES_EIO when the file cannot be read. */
int es_elf_deps_parse_file(const char *path, es_elf_deps *out, es_error *err);
void es_elf_deps_free(es_elf_deps *d);

#endif
