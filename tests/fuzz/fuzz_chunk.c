/* libFuzzer target: chunked transfers (net/chunk.h).
 *
 * The input is a run of frames, each a 2-byte big-endian length and that
 * many bytes, as a peer would send them: every frame is decoded as an
 * Envelope, chunk bodies go to one reassembler (64 KiB limit), and a
 * completed transfer is decoded as a reassembled Envelope. Then the sender
 * side: the whole input is cut by a chunker with a chunk size taken from its
 * first byte, and reassembling those chunks must give back the input exactly
 * (anything else is a bug in one of the two ends). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "net/chunk.h"
#include "net/envelope.h"
#include "util/alloc.h"

#define S_LIMIT ((uint64_t)64 << 10)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return gb_fuzz_quiet(argc, argv);
}

static void s_receive(const uint8_t *data, size_t size)
{
    gb_reassembler_t *r = gb_reassembler_new(S_LIMIT, NULL);
    if (!r)
        return;
    while (size >= 2) {
        size_t len = (size_t)data[0] << 8 | data[1];
        data += 2, size -= 2;
        if (len > size)
            len = size;
        Glassbox__Envelope *env = NULL;
        if (gb_envelope_decode(data, len, NULL, &env, NULL) == 0) {
            if (env->body_case == GLASSBOX__ENVELOPE__BODY_CHUNK) {
                uint8_t *whole = NULL;
                size_t whole_len = 0;
                int rc = gb_reassembler_feed(r, env->chunk, &whole, &whole_len, NULL);
                if (rc == 1) {
                    if (whole_len > S_LIMIT)
                        __builtin_trap();
                    gb_envelope_limits_t lim = {.max_bytes = S_LIMIT, .reassembled = true};
                    Glassbox__Envelope *inner = NULL;
                    if (gb_envelope_decode(whole, whole_len, &lim, &inner, NULL) == 0)
                        gb_envelope_free(&inner);
                    gb_free(whole);
                } else if (rc < 0 && gb_reassembler_busy(r)) {
                    __builtin_trap(); /* a failed transfer must be gone */
                }
            }
            gb_envelope_free(&env);
        }
        data += len, size -= len;
    }
    gb_reassembler_destroy(&r);
}

static void s_send_and_receive(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    size_t chunk = 1 + data[0] % 64;
    gb_chunker_t *c = gb_chunker_new(chunk, NULL);
    gb_reassembler_t *r = gb_reassembler_new(S_LIMIT, NULL);
    uint8_t *frame = c ? malloc(gb_chunker_buffer_size(c)) : NULL;
    if (!c || !r || !frame || gb_chunker_start(c, data, size, NULL, NULL) != 0)
        __builtin_trap();
    uint64_t seq = 1;
    int done = 0;
    for (;;) {
        size_t flen = 0;
        int rc = gb_chunker_next(c, seq++, frame, gb_chunker_buffer_size(c), &flen, NULL);
        if (rc < 0)
            __builtin_trap();
        if (rc == 0)
            break;
        Glassbox__Envelope *env = NULL;
        if (gb_envelope_decode(frame, flen, NULL, &env, NULL) != 0)
            __builtin_trap(); /* we sent a frame we refuse */
        uint8_t *whole = NULL;
        size_t whole_len = 0;
        rc = gb_reassembler_feed(r, env->chunk, &whole, &whole_len, NULL);
        gb_envelope_free(&env);
        if (rc < 0 || done)
            __builtin_trap();
        if (rc == 1) {
            if (whole_len != size || memcmp(whole, data, size) != 0)
                __builtin_trap();
            gb_free(whole);
            done = 1;
        }
    }
    if (!done)
        __builtin_trap();
    free(frame);
    gb_chunker_destroy(&c);
    gb_reassembler_destroy(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_receive(data, size);
    if (size <= S_LIMIT)
        s_send_and_receive(data, size);
    return 0;
}
