/*
 * libFuzzer target: the ELF summary parser on arbitrary bytes, both as a whole buffer and streamed
 * in chunks whose sizes come from the input, so both paths (prefix + captured windows) see hostile
 * offsets and counts. The two results must agree whenever the file fits in the prefix.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "analyze/elf_info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_elf_info whole, streamed;
    es_elf_parse(data, size, &whole);
    (void)es_elf_kind(&whole);
    (void)es_elf_linking(&whole);
    (void)es_elf_machine_name(whole.machine);
    es_elf_scan *s = es_elf_scan_new();
    size_t chunk = size ? (size_t)data[0] % 61 + 1 : 1;
    for (size_t off = 0; off < size; off += chunk)
        es_elf_scan_feed(s, data + off, size - off < chunk ? size - off : chunk);
    es_elf_scan_finish(s, &streamed);
    if (size <= ES_ELF_HEAD_CAP &&
        (whole.valid != streamed.valid || strcmp(whole.interp, streamed.interp) != 0 ||
         whole.has_symtab != streamed.has_symtab))
        __builtin_trap();
    return 0;
}
