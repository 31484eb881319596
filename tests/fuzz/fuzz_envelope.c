/* libFuzzer target: one Envelope frame (net/envelope.h).
 *
 * Besides "no crash, no leak, no undefined behaviour", it checks the codec's
 * promise that encode accepts whatever decode accepted: a decoded envelope
 * must encode again, decode again, and encode to the same bytes (protobuf-c
 * packs deterministically). The same input is also decoded as a reassembled
 * transfer with a raised limit, the other way the transport calls it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "net/envelope.h"
#include "util/alloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return gb_fuzz_quiet(argc, argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Glassbox__Envelope *env = NULL;
    if (gb_envelope_decode(data, size, NULL, &env, NULL) == 0) {
        uint8_t *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        Glassbox__Envelope *again = NULL;
        gb_error_t err;
        if (gb_envelope_encode(env, NULL, &a, &alen, &err) != 0)
            __builtin_trap(); /* decode accepted what encode refuses */
        if (gb_envelope_decode(a, alen, NULL, &again, &err) != 0)
            __builtin_trap(); /* our own encoding is refused */
        if (gb_envelope_encode(again, NULL, &b, &blen, &err) != 0 || alen != blen ||
            memcmp(a, b, alen) != 0)
            __builtin_trap(); /* not stable across a round trip */
        gb_free(a);
        gb_free(b);
        gb_envelope_free(&again);
        gb_envelope_free(&env);
    }
    gb_envelope_limits_t re = {.max_bytes = (size_t)64 << 20, .reassembled = true};
    if (gb_envelope_decode(data, size, &re, &env, NULL) == 0) {
        if (env->body_case == GLASSBOX__ENVELOPE__BODY_CHUNK)
            __builtin_trap(); /* a chunk inside a reassembled transfer */
        gb_envelope_free(&env);
    }
    return 0;
}
