/* libFuzzer target: the IDX (MNIST) reader on a buffer (data/idx.h), both
 * the whole-buffer parser and the stream over memory, which must agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "data/idx.h"
#include "util/alloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return gb_fuzz_quiet(argc, argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gb_idx_t idx = {0};
    int parsed = gb_idx_parse(data, size, "fuzz", &idx, NULL);
    if (parsed == 0 && idx.len > size)
        __builtin_trap(); /* a payload larger than the input */

    gb_idx_t head = {0};
    gb_idx_stream_t *st = NULL;
    if (gb_idx_stream_open_mem(data, size, "fuzz", &head, &st, NULL) == 0) {
        uint8_t buf[256];
        size_t left = head.len, at = 0;
        int rc = 0;
        while (rc == 0 && left > 0) {
            size_t n = left < sizeof buf ? left : sizeof buf;
            rc = gb_idx_stream_read(st, buf, n, NULL);
            if (rc == 0 && parsed == 0 && memcmp(buf, idx.data + at, n) != 0)
                __builtin_trap(); /* the stream and the parser disagree */
            left -= n, at += n;
        }
        if (rc == 0)
            rc = gb_idx_stream_finish(st, NULL);
        if ((rc == 0) != (parsed == 0))
            __builtin_trap(); /* one accepts what the other refuses */
        gb_idx_stream_destroy(&st);
    }
    gb_idx_free(&idx);
    return 0;
}
