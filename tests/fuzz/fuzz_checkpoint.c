/* libFuzzer target: the coordinator checkpoint decoder
 * (coordinator/checkpoint.h).
 *
 * Each input is decoded twice: as it is, which exercises the size, trailer
 * and SHA-256 checks that refuse almost every mutation; and with its
 * trailing sha256 field replaced by a correct one (appended when there is
 * none), so that the mutated fields reach protobuf-c and every check behind
 * the hash, which a fuzzer could never reach by forging a SHA-256. A
 * checkpoint decode accepted must encode again (the encoder refuses exactly
 * what the decoder refuses) and decode to a checkpoint that encodes to the
 * same bytes.
 *
 * Seeds (tests/fuzz/corpus/checkpoint/) are small checkpoints as
 * gb_checkpoint_save writes them: a dense model with FedAdam state and
 * metadata, and an sgd one of round 0 without state or metadata;
 * test_checkpoint.c checks that they still decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "checkpoint.h"
#include "net/wire.h"
#include "util/alloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return gb_fuzz_quiet(argc, argv);
}

static void s_round_trip(const uint8_t *data, size_t size)
{
    gb_checkpoint_t *c = NULL;
    if (gb_checkpoint_decode(data, size, &c, NULL) != 0)
        return;
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    gb_checkpoint_t *again = NULL;
    if (gb_checkpoint_encode(c, &a, &alen, NULL) != 0 ||
        gb_checkpoint_decode(a, alen, &again, NULL) != 0 ||
        gb_checkpoint_encode(again, &b, &blen, NULL) != 0 || alen != blen ||
        memcmp(a, b, alen) != 0 || again->n_params != c->n_params ||
        again->n_optim_state != c->n_optim_state ||
        (c->n_params && memcmp(again->params, c->params, c->n_params * sizeof(float)) != 0) ||
        (c->n_optim_state &&
         memcmp(again->optim_state, c->optim_state, c->n_optim_state * sizeof(float)) != 0))
        __builtin_trap();
    gb_free(a);
    gb_free(b);
    gb_checkpoint_destroy(&again);
    gb_checkpoint_destroy(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_round_trip(data, size);

    /* The same fields behind a correct SHA-256. */
    size_t body = size;
    if (size >= 2 + GB_WIRE_SHA256_LEN && data[size - 2 - GB_WIRE_SHA256_LEN] == 0x7a &&
        data[size - 1 - GB_WIRE_SHA256_LEN] == GB_WIRE_SHA256_LEN)
        body = size - 2 - GB_WIRE_SHA256_LEN;
    uint8_t *fixed = malloc(body + 2 + GB_WIRE_SHA256_LEN);
    if (!fixed)
        return 0;
    if (body)
        memcpy(fixed, data, body);
    fixed[body] = 0x7a;
    fixed[body + 1] = GB_WIRE_SHA256_LEN;
    if (gb_wire_sha256(fixed, body, fixed + body + 2, NULL) == 0)
        s_round_trip(fixed, body + 2 + GB_WIRE_SHA256_LEN);
    free(fixed);
    return 0;
}
