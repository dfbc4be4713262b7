/*
 * libFuzzer target: slim's ELF dependency reader (PT_INTERP, DT_NEEDED, RPATH/RUNPATH) on
 * arbitrary bytes. It reads offsets and counts straight from the file, so every one must be
 * bounds-checked; a parse that succeeds must give strings we can read to their end.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "slim/elf_deps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_elf_deps d;
    es_error err = {0};
    memset(&d, 0, sizeof d);
    if (es_elf_deps_parse_mem(data, size, "fuzz", &d, &err) == 1) {
        size_t total = d.interp ? strlen(d.interp) : 0;
        for (size_t i = 0; i < d.n_needed; i++) total += strlen(d.needed[i]);
        if (d.rpath) total += strlen(d.rpath);
        if (d.runpath) total += strlen(d.runpath);
        (void)total;
        es_elf_deps_free(&d);
    }
    return 0;
}
