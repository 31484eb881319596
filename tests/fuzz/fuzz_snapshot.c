/* libFuzzer target: the model file / ModelSnapshot decoder (net/snapshot.h).
 * A snapshot decode accepted must encode again and decode to the same
 * snapshot bytes (the encoder refuses exactly what the decoder refuses). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "net/snapshot.h"
#include "util/alloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return gb_fuzz_quiet(argc, argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gb_snapshot_t *s = NULL;
    if (gb_snapshot_decode(data, size, &s, NULL) != 0)
        return 0;
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    gb_snapshot_t *again = NULL;
    if (gb_snapshot_encode(s, &a, &alen, NULL) != 0 ||
        gb_snapshot_decode(a, alen, &again, NULL) != 0 ||
        gb_snapshot_encode(again, &b, &blen, NULL) != 0 || alen != blen ||
        memcmp(a, b, alen) != 0)
        __builtin_trap();
    gb_free(a);
    gb_free(b);
    gb_snapshot_destroy(&again);
    gb_snapshot_destroy(&s);
    return 0;
}
