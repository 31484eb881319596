/* What every libFuzzer target here shares: the two entry points libFuzzer
 * calls (no header of its own declares them, and -Wmissing-prototypes
 * wants a declaration), and the start most targets need, logging off:
 * every input a decoder refuses would log a line, and millions of them
 * would bury the fuzzer's own output. */
#ifndef GB_FUZZ_TARGET_H
#define GB_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The start of a target that needs nothing but quiet: its
 * LLVMFuzzerInitialize returns this. */
static inline int gb_fuzz_quiet(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gb_log_set_level(GB_LOG_OFF);
    return 0;
}

#endif
