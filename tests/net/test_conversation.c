/* Tests for net/conversation: small and chunked Envelopes from one
 * conversation to another through a send function standing in for the
 * link, with sequence numbers, back-pressure (GB_EAGAIN) at every frame, send
 * failures, the queue bound, refused Envelopes, hostile frames, reset for a
 * new session, and allocation failure. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "envelope_fixture.h"
#include "net/chunk.h"
#include "net/conversation.h"
#include "net/envelope.h"
#include "util/alloc.h"

/* A pretend link: records every frame it takes; can refuse. */
typedef struct {
    uint8_t **frames; /* copies of the frames taken */
    size_t *lens;     /* their lengths */
    size_t n, cap;    /* taken, room */
    int refuse_every; /* > 0: every refuse_every-th offer gets refuse_rc */
    int refuse_rc;    /* GB_EAGAIN or another error */
    int offers;       /* offers seen */
} wire_t;

static int s_send(void *arg, const uint8_t *frame, size_t len, gb_error_t *err)
{
    wire_t *w = arg;
    w->offers++;
    if (w->refuse_every > 0 && w->offers % w->refuse_every == 0)
        return gb_error_set(err, w->refuse_rc, "pretend link refuses offer %d", w->offers);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->frames = realloc(w->frames, w->cap * sizeof *w->frames);
        w->lens = realloc(w->lens, w->cap * sizeof *w->lens);
    }
    w->frames[w->n] = malloc(len);
    memcpy(w->frames[w->n], frame, len);
    w->lens[w->n++] = len;
    return 0;
}

static void s_wire_free(wire_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->frames[i]);
    free(w->frames);
    free(w->lens);
    memset(w, 0, sizeof *w);
}

/* Feeds every recorded frame to rx; returns the whole envelopes (count in *n). */
static Glassbox__Envelope **s_deliver(gb_conversation_t *rx, wire_t *w, size_t *n)
{
    Glassbox__Envelope **out = calloc(w->n + 1, sizeof *out);
    *n = 0;
    gb_error_t err = {0};
    for (size_t i = 0; i < w->n; i++) {
        Glassbox__Envelope *env = NULL;
        int rc = gb_conversation_receive(rx, w->frames[i], w->lens[i], &env, &err);
        if (rc < 0)
            fail_msg("frame %zu refused: %s", i, err.msg);
        if (rc == 1)
            out[(*n)++] = env;
        else
            assert_null(env);
    }
    return out;
}

static void s_free_all(Glassbox__Envelope **envs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gb_envelope_free(&envs[i]);
    free(envs);
}

/* A valid envelope of body kind in f, its hashes computed. */
static void s_fix(gbfix_t *f, int kind)
{
    gbfix_init(f, kind);
    size_t len;
    free(gbfix_pack(f, &len));
}

/* An Update of n parameters (a delta of 4n bytes) in f. */
static float *s_big_update(gbfix_t *f, size_t n)
{
    s_fix(f, GBFIX_UPDATE);
    float *delta = malloc(n * sizeof *delta);
    for (size_t i = 0; i < n; i++)
        delta[i] = (float)((int)(i % 1999) - 999) * 1e-3f;
    f->update.delta.data = (uint8_t *)delta;
    f->update.delta.len = n * sizeof *delta;
    f->update.param_count = n;
    gbfix_sha(f->update.delta.data, f->update.delta.len, f->delta_sha);
    return delta;
}

static gb_conversation_t *s_new(size_t chunk, uint64_t max_transfer, size_t max_queued)
{
    gb_conversation_options_t o = {.chunk_size = chunk, .max_transfer = max_transfer,
                                   .max_queued_bytes = max_queued};
    gb_error_t err = {0};
    gb_conversation_t *c = gb_conversation_new(&o, &err);
    if (!c)
        fail_msg("new: %s", err.msg);
    return c;
}

static void test_small_envelopes_in_order(void **state)
{
    (void)state;
    gb_conversation_t *tx = s_new(0, 0, 0), *rx = s_new(0, 0, 0);
    gb_error_t err = {0};
    static const int kinds[] = {GBFIX_JOIN, GBFIX_HEARTBEAT, GBFIX_UPDATE, GBFIX_EVAL};
    for (int i = 0; i < 4; i++) {
        gbfix_t f;
        s_fix(&f, kinds[i]);
        f.env.sequence = 77; /* overwritten */
        uint64_t seq = 0;
        assert_int_equal(gb_conversation_queue(tx, &f.env, &seq, &err), 0);
        assert_int_equal(seq, (uint64_t)i + 1);
    }
    assert_true(gb_conversation_queued_bytes(tx) > 0);
    wire_t w = {0};
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_int_equal(w.n, 4);
    assert_int_equal(gb_conversation_queued_bytes(tx), 0);
    size_t n;
    Glassbox__Envelope **got = s_deliver(rx, &w, &n);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i]->sequence, i + 1);
    assert_int_equal(got[0]->body_case, GLASSBOX__ENVELOPE__BODY_JOIN);
    assert_int_equal(got[3]->body_case, GLASSBOX__ENVELOPE__BODY_EVAL_RESULT);
    assert_int_equal(gb_conversation_last_sequence(rx), 4);
    /* flushing an empty queue sends nothing */
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_int_equal(w.n, 4);
    s_free_all(got, n);
    s_wire_free(&w);
    gb_conversation_destroy(&tx);
    gb_conversation_destroy(&rx);
    gb_conversation_destroy(&rx); /* safe twice */
}

/* A 6 MB Update goes as chunks (64 KiB here) and arrives whole, between two
 * small envelopes, with the sequence numbers the header promises. */
static void test_big_envelope_is_chunked(void **state)
{
    (void)state;
    const size_t chunk = 64 << 10, n_params = 1500000;
    gb_conversation_t *tx = s_new(chunk, 0, 0), *rx = s_new(0, 0, 0);
    gb_error_t err = {0};
    gbfix_t hb, u, after;
    s_fix(&hb, GBFIX_HEARTBEAT);
    float *delta = s_big_update(&u, n_params);
    s_fix(&after, GBFIX_ACK);
    uint64_t s1, s2, s3;
    assert_int_equal(gb_conversation_queue(tx, &hb.env, &s1, &err), 0);
    assert_int_equal(gb_conversation_queue(tx, &u.env, &s2, &err), 0);
    assert_int_equal(gb_conversation_queue(tx, &after.env, &s3, &err), 0);
    size_t queued = gb_conversation_queued_bytes(tx);
    assert_true(queued > n_params * 4);
    wire_t w = {0};
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_int_equal(s1, 1);
    assert_int_equal(s2, 2);
    size_t chunks = w.n - 2;
    assert_true(chunks >= n_params * 4 / chunk);
    assert_int_equal(s3, 2 + chunks); /* the transfer took one number per frame */
    for (size_t i = 1; i + 1 < w.n; i++)
        assert_true(w.lens[i] <= chunk + GB_CHUNK_OVERHEAD);
    size_t n;
    Glassbox__Envelope **got = s_deliver(rx, &w, &n);
    assert_int_equal(n, 3);
    assert_int_equal(got[1]->body_case, GLASSBOX__ENVELOPE__BODY_UPDATE);
    assert_int_equal(got[1]->sequence, 2); /* its first frame's number */
    assert_int_equal(got[1]->update->param_count, n_params);
    assert_memory_equal(got[1]->update->delta.data, delta, n_params * 4);
    assert_int_equal(got[2]->sequence, s3);
    s_free_all(got, n);
    s_wire_free(&w);
    free(delta);
    gb_conversation_destroy(&tx);
    gb_conversation_destroy(&rx);
}

/* The link refuses every third offer: flush stops there, and the next flush
 * offers the same frame again; the receiver sees every frame once, in order. */
static void test_back_pressure_resumes(void **state)
{
    (void)state;
    gb_conversation_t *tx = s_new(4096, 0, 0), *rx = s_new(0, 0, 0);
    gb_error_t err = {0};
    gbfix_t u;
    float *delta = s_big_update(&u, 1200000); /* 4.8 MB: over one frame */
    gbfix_t hb;
    s_fix(&hb, GBFIX_HEARTBEAT);
    assert_int_equal(gb_conversation_queue(tx, &hb.env, NULL, &err), 0);
    assert_int_equal(gb_conversation_queue(tx, &u.env, NULL, &err), 0);
    assert_int_equal(gb_conversation_queue(tx, &hb.env, NULL, &err), 0);
    wire_t w = {.refuse_every = 3, .refuse_rc = GB_EAGAIN};
    int again = 0, rc;
    while ((rc = gb_conversation_flush(tx, s_send, &w, &err)) == GB_EAGAIN)
        again++;
    assert_int_equal(rc, 0);
    assert_true(again > 100);
    assert_int_equal(gb_conversation_queued_bytes(tx), 0);
    size_t n;
    Glassbox__Envelope **got = s_deliver(rx, &w, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(got[1]->update->delta.data, delta, 1200000 * 4);
    s_free_all(got, n);
    s_wire_free(&w);
    free(delta);
    gb_conversation_destroy(&tx);
    gb_conversation_destroy(&rx);
}

/* Any other send error is returned as it is and the frame stays queued. */
static void test_send_failure_keeps_frame(void **state)
{
    (void)state;
    gb_conversation_t *tx = s_new(0, 0, 0);
    gb_error_t err = {0};
    gbfix_t f;
    s_fix(&f, GBFIX_JOIN);
    assert_int_equal(gb_conversation_queue(tx, &f.env, NULL, &err), 0);
    wire_t w = {.refuse_every = 1, .refuse_rc = GB_ECLOSED};
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), GB_ECLOSED);
    assert_non_null(strstr(err.msg, "pretend link"));
    assert_int_equal(w.n, 0);
    assert_true(gb_conversation_queued_bytes(tx) > 0);
    w.refuse_every = 0;
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_int_equal(w.n, 1);
    s_wire_free(&w);
    gb_conversation_destroy(&tx);
}

static void test_queue_refusals(void **state)
{
    (void)state;
    gb_conversation_t *tx = s_new(0, 1 << 20, 1);
    gb_error_t err = {0};
    gbfix_t f;
    s_fix(&f, GBFIX_CHUNK_KIND);
    assert_int_equal(gb_conversation_queue(tx, &f.env, NULL, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "chunks"));
    assert_int_equal(gb_conversation_queue(tx, NULL, NULL, &err), GB_EINVAL);
    /* an invalid body: nothing queued, no number used */
    s_fix(&f, GBFIX_UPDATE);
    f.update.round = 0;
    assert_int_equal(gb_conversation_queue(tx, &f.env, NULL, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "update.round"));
    /* over max_transfer (1 MiB here) */
    gbfix_t big;
    float *delta = s_big_update(&big, 300000);
    assert_int_equal(gb_conversation_queue(tx, &big.env, NULL, &err), GB_ERANGE);
    free(delta);
    assert_int_equal(gb_conversation_queued_bytes(tx), 0);
    /* the byte bound (1 byte here): one envelope is always taken, the next
     * waits for room */
    s_fix(&f, GBFIX_JOIN);
    uint64_t seq = 0;
    assert_int_equal(gb_conversation_queue(tx, &f.env, &seq, &err), 0);
    assert_int_equal(seq, 1);
    s_fix(&f, GBFIX_UPDATE);
    assert_int_equal(gb_conversation_queue(tx, &f.env, &seq, &err), GB_EAGAIN);
    assert_int_equal(seq, 1);
    wire_t w = {0};
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_int_equal(gb_conversation_queue(tx, &f.env, &seq, &err), 0);
    assert_int_equal(seq, 2);
    s_wire_free(&w);
    gb_conversation_destroy(&tx);
}

/* Hostile or broken frames: each is refused with the code to send back, and
 * the conversation goes on. */
static void test_receive_refusals(void **state)
{
    (void)state;
    gb_conversation_t *tx = s_new(4096, 0, 0), *rx = s_new(0, 1 << 20, 0);
    gb_error_t err = {0};
    Glassbox__Envelope *env = (void *)1;
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x01, 0x02};
    int rc = gb_conversation_receive(rx, garbage, sizeof garbage, &env, &err);
    assert_true(rc < 0);
    assert_null(env);
    assert_int_equal(gb_envelope_error_code(rc), GLASSBOX__ERROR_CODE__ERROR_MALFORMED);

    gbfix_t f;
    s_fix(&f, GBFIX_HEARTBEAT);
    wire_t w = {0};
    assert_int_equal(gb_conversation_queue(tx, &f.env, NULL, &err), 0);
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_int_equal(gb_conversation_receive(rx, w.frames[0], w.lens[0], &env, &err), 1);
    gb_envelope_free(&env);
    /* the same frame again: a replayed sequence */
    rc = gb_conversation_receive(rx, w.frames[0], w.lens[0], &env, &err);
    assert_int_equal(rc, GB_EPROTO);
    assert_non_null(strstr(err.msg, "sequence 1 does not follow 1"));
    s_wire_free(&w);

    /* a transfer over the receiver's 1 MiB limit: refused at its first chunk */
    gbfix_t big;
    float *delta = s_big_update(&big, 1300000);
    assert_int_equal(gb_conversation_queue(tx, &big.env, NULL, &err), 0);
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    rc = gb_conversation_receive(rx, w.frames[0], w.lens[0], &env, &err);
    assert_int_equal(rc, GB_ERANGE);
    assert_int_equal(gb_conversation_last_sequence(rx), 2);
    /* its later chunks are dropped without another error: one refusal a
     * transfer, naming the Envelope's sequence (its first chunk's) */
    for (size_t i = 1; i < w.n; i++) {
        rc = gb_conversation_receive(rx, w.frames[i], w.lens[i], &env, &err);
        assert_int_equal(rc, 0);
        assert_null(env);
    }
    s_wire_free(&w);
    free(delta);

    /* a transfer whose bytes were changed on the way: refused at its last
     * chunk (the hash), naming its first chunk's sequence */
    gb_conversation_t *rx2 = s_new(0, 0, 0);
    delta = s_big_update(&big, 1300000);
    uint64_t first = 0;
    assert_int_equal(gb_conversation_queue(tx, &big.env, &first, &err), 0);
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_true(w.n > 2);
    w.frames[1][w.lens[1] - 1] ^= 0x40; /* a data byte of the second chunk */
    int refusals = 0;
    for (size_t i = 0; i < w.n; i++) {
        rc = gb_conversation_receive(rx2, w.frames[i], w.lens[i], &env, &err);
        assert_null(env);
        if (rc < 0) {
            refusals++;
            assert_int_equal(rc, GB_EINTEGRITY);
            assert_int_equal(gb_conversation_last_sequence(rx2), first);
        }
    }
    assert_int_equal(refusals, 1);
    gb_conversation_destroy(&rx2);
    s_wire_free(&w);
    free(delta);
    /* a single frame over the limit is refused too */
    delta = s_big_update(&big, 300000);
    assert_int_equal(gb_conversation_queue(tx, &big.env, NULL, &err), 0);
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_int_equal(w.n, 1);
    rc = gb_conversation_receive(rx, w.frames[0], w.lens[0], &env, &err);
    assert_int_equal(rc, GB_ERANGE);
    s_wire_free(&w);
    free(delta);

    /* and a small envelope after all that still arrives */
    s_fix(&f, GBFIX_ACK);
    assert_int_equal(gb_conversation_queue(tx, &f.env, NULL, &err), 0);
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_int_equal(gb_conversation_receive(rx, w.frames[0], w.lens[0], &env, &err), 1);
    assert_int_equal(env->body_case, GLASSBOX__ENVELOPE__BODY_ACK);
    gb_envelope_free(&env);
    s_wire_free(&w);
    gb_conversation_destroy(&tx);
    gb_conversation_destroy(&rx);
}

/* A new session: the sender's queue and numbers start over, and the receiver
 * forgets a half-received transfer and the transfer ids of a peer that
 * restarted. */
static void test_reset_for_a_new_session(void **state)
{
    (void)state;
    gb_conversation_t *tx = s_new(4096, 0, 0), *rx = s_new(0, 0, 0);
    gb_error_t err = {0};
    gbfix_t big;
    float *delta = s_big_update(&big, 1100000);
    assert_int_equal(gb_conversation_queue(tx, &big.env, NULL, &err), 0);
    wire_t w = {0};
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    Glassbox__Envelope *env = NULL;
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(gb_conversation_receive(rx, w.frames[i], w.lens[i], &env, &err), 0);
    gb_conversation_reset(rx);
    assert_int_equal(gb_conversation_last_sequence(rx), 0);
    /* a restarted peer: fresh conversation, transfer id 1 and sequence 1 again */
    gb_conversation_t *tx2 = s_new(4096, 0, 0);
    assert_int_equal(gb_conversation_queue(tx2, &big.env, NULL, &err), 0);
    wire_t w2 = {0};
    assert_int_equal(gb_conversation_flush(tx2, s_send, &w2, &err), 0);
    size_t n;
    Glassbox__Envelope **got = s_deliver(rx, &w2, &n);
    assert_int_equal(n, 1);
    assert_memory_equal(got[0]->update->delta.data, delta, 1100000 * 4);
    s_free_all(got, n);

    /* the sender's reset drops what waits and numbers from 1 again */
    gbfix_t f;
    s_fix(&f, GBFIX_JOIN);
    assert_int_equal(gb_conversation_queue(tx, &f.env, NULL, &err), 0);
    assert_true(gb_conversation_queued_bytes(tx) > 0);
    gb_conversation_reset(tx);
    assert_int_equal(gb_conversation_queued_bytes(tx), 0);
    uint64_t seq = 0;
    assert_int_equal(gb_conversation_queue(tx, &f.env, &seq, &err), 0);
    assert_int_equal(seq, 1);
    s_wire_free(&w);
    s_wire_free(&w2);
    free(delta);
    gb_conversation_destroy(&tx);
    gb_conversation_destroy(&tx2);
    gb_conversation_destroy(&rx);
}

/* A reset in the middle of sending a transfer: the next one starts clean. */
static void test_reset_mid_transfer(void **state)
{
    (void)state;
    gb_conversation_t *tx = s_new(4096, 0, 0), *rx = s_new(0, 0, 0);
    gb_error_t err = {0};
    gbfix_t big;
    float *delta = s_big_update(&big, 1100000);
    assert_int_equal(gb_conversation_queue(tx, &big.env, NULL, &err), 0);
    wire_t w = {.refuse_every = 10, .refuse_rc = GB_EAGAIN};
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), GB_EAGAIN);
    assert_int_equal(w.n, 9);
    gb_conversation_reset(tx);
    gb_conversation_reset(rx);
    s_wire_free(&w);
    assert_int_equal(gb_conversation_queue(tx, &big.env, NULL, &err), 0);
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    size_t n;
    Glassbox__Envelope **got = s_deliver(rx, &w, &n);
    assert_int_equal(n, 1);
    assert_int_equal(got[0]->sequence, 1);
    s_free_all(got, n);
    s_wire_free(&w);
    free(delta);
    gb_conversation_destroy(&tx);
    gb_conversation_destroy(&rx);
}

/* The bound can change once the peer's model is known: lowered, the first
 * chunk of a bigger transfer is refused and its later chunks are dropped
 * without a word; raised again, the same transfer goes through. */
static void test_set_max_transfer(void **state)
{
    (void)state;
    const size_t n_params = 1500000; /* 6 MB: chunked */
    gb_conversation_t *tx = s_new(64 << 10, 0, 0), *rx = s_new(0, 0, 0);
    gb_error_t err = {0};
    assert_int_equal(gb_conversation_max_transfer(rx), GB_CHUNK_DEFAULT_MAX_TRANSFER);
    gb_conversation_set_max_transfer(rx, 1 << 20);
    assert_int_equal(gb_conversation_max_transfer(rx), 1 << 20);
    gbfix_t u;
    float *delta = s_big_update(&u, n_params);
    assert_int_equal(gb_conversation_queue(tx, &u.env, NULL, &err), 0);
    wire_t w = {0};
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    assert_true(w.n > 2);
    Glassbox__Envelope *env = NULL;
    assert_int_equal(gb_conversation_receive(rx, w.frames[0], w.lens[0], &env, &err),
                     GB_ERANGE);
    assert_null(env);
    for (size_t i = 1; i < w.n; i++) {
        assert_int_equal(gb_conversation_receive(rx, w.frames[i], w.lens[i], &env, &err), 0);
        assert_null(env);
    }
    s_wire_free(&w);
    gb_conversation_set_max_transfer(rx, 0);
    assert_int_equal(gb_conversation_max_transfer(rx), GB_CHUNK_DEFAULT_MAX_TRANSFER);
    assert_int_equal(gb_conversation_queue(tx, &u.env, NULL, &err), 0);
    assert_int_equal(gb_conversation_flush(tx, s_send, &w, &err), 0);
    size_t n;
    Glassbox__Envelope **got = s_deliver(rx, &w, &n);
    assert_int_equal(n, 1);
    assert_int_equal(got[0]->update->param_count, n_params);
    s_free_all(got, n);
    s_wire_free(&w);
    free(delta);
    gb_conversation_destroy(&tx);
    gb_conversation_destroy(&rx);
}

static void test_options_and_allocation_failure(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_conversation_options_t o = {.chunk_size = GB_CHUNK_MAX_SIZE + 1};
    assert_null(gb_conversation_new(&o, &err));
    assert_int_equal(err.code, GB_EINVAL);
    int failures = 0;
    for (long k = 1; k < 20; k++) {
        gb_alloc_fail_after(k);
        gb_conversation_t *c = gb_conversation_new(NULL, &err);
        gb_alloc_fail_after(0);
        if (c) {
            gb_conversation_destroy(&c);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        failures++;
    }
    assert_true(failures >= 2);
    /* queueing under allocation failure: refused, nothing queued */
    gb_conversation_t *c = gb_conversation_new(NULL, &err);
    gbfix_t f;
    s_fix(&f, GBFIX_JOIN);
    for (long k = 1; k < 4; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_conversation_queue(c, &f.env, NULL, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_int_equal(gb_conversation_queued_bytes(c), 0);
    }
    gb_conversation_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_envelopes_in_order),
        cmocka_unit_test(test_big_envelope_is_chunked),
        cmocka_unit_test(test_back_pressure_resumes),
        cmocka_unit_test(test_send_failure_keeps_frame),
        cmocka_unit_test(test_queue_refusals),
        cmocka_unit_test(test_receive_refusals),
        cmocka_unit_test(test_reset_for_a_new_session),
        cmocka_unit_test(test_reset_mid_transfer),
        cmocka_unit_test(test_set_max_transfer),
        cmocka_unit_test(test_options_and_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
