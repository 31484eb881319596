/* Tests for net/chunk, chunked transfers: a 10 MB Update cut into 1 MiB
 * chunk envelopes, each decoded as a frame, reassembled and decoded again;
 * the chunker's edges (sizes, ids, buffers); and every way a receiver
 * refuses a transfer (gap, duplicate, overlap, wrong offset, changed count
 * or total, over the limit before allocating, SHA-256 mismatch, a second
 * transfer while one is open, a replayed id, a last chunk that ends early or
 * late, a chunk inside a chunk), each leaving the receiver ready for the
 * next transfer; plus allocation failure. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "envelope_fixture.h"
#include "net/chunk.h"
#include "net/envelope.h"
#include "util/alloc.h"
#include "util/log.h"

/* Cuts payload into chunk envelopes with c, decodes each as a frame and
 * returns them (*n of them, decoded envelopes the caller frees). */
static Glassbox__Envelope **s_cut(gb_chunker_t *c, const uint8_t *payload, size_t len,
                                  size_t *n)
{
    gb_error_t err;
    uint64_t id = 0;
    if (gb_chunker_start(c, payload, len, &id, &err) != 0)
        fail_msg("start: %s", err.msg);
    assert_true(id >= 1);
    uint32_t count = gb_chunker_count(c);
    Glassbox__Envelope **envs = calloc(count, sizeof *envs);
    size_t cap = gb_chunker_buffer_size(c);
    uint8_t *frame = malloc(cap);
    size_t k = 0;
    for (;;) {
        size_t flen = 0;
        int rc = gb_chunker_next(c, 100 + k, frame, cap, &flen, &err);
        if (rc < 0)
            fail_msg("next: %s", err.msg);
        if (rc == 0)
            break;
        assert_true(k < count);
        assert_true(flen <= GB_ENVELOPE_MAX_BYTES);
        if (gb_envelope_decode(frame, flen, NULL, &envs[k], &err) != 0)
            fail_msg("chunk %zu: %s", k, err.msg);
        assert_int_equal(envs[k]->body_case, GLASSBOX__ENVELOPE__BODY_CHUNK);
        assert_int_equal(envs[k]->sequence, 100 + k);
        assert_int_equal(envs[k]->chunk->transfer_id, id);
        k++;
    }
    assert_int_equal(k, count);
    assert_int_equal(gb_chunker_count(c), 0); /* done */
    free(frame);
    *n = k;
    return envs;
}

static void s_free_all(Glassbox__Envelope **envs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gb_envelope_free(&envs[i]);
    free(envs);
}

/* Feeds chunks [from, to) and expects 0 each time. */
static void s_feed_ok(gb_reassembler_t *r, Glassbox__Envelope **envs, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        uint8_t *out = (uint8_t *)&out;
        size_t out_len = 1;
        gb_error_t err;
        int rc = gb_reassembler_feed(r, envs[i]->chunk, &out, &out_len, &err);
        if (rc != 0)
            fail_msg("chunk %zu: %d %s", i, rc, err.msg);
        assert_null(out);
        assert_int_equal(out_len, 0);
        assert_true(gb_reassembler_busy(r));
    }
}

/* Feeds one chunk and expects refusal with code and needle; the transfer
 * must then be gone. */
static void s_feed_refused(gb_reassembler_t *r, const Glassbox__TensorChunk *c, int code,
                           const char *needle)
{
    uint8_t *out = (uint8_t *)&out;
    size_t out_len = 1;
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_reassembler_feed(r, c, &out, &out_len, &err);
    if (rc != code)
        fail_msg("expected %s, got %d (%s)", gb_strerror(code), rc, err.msg);
    assert_null(out);
    assert_int_equal(out_len, 0);
    if (needle && !strstr(err.msg, needle))
        fail_msg("'%s' not in '%s'", needle, err.msg);
    assert_false(gb_reassembler_busy(r));
}

/* Feeds every chunk; the last must complete with exactly want. */
static void s_feed_all_ok(gb_reassembler_t *r, Glassbox__Envelope **envs, size_t n,
                          const uint8_t *want, size_t want_len)
{
    s_feed_ok(r, envs, 0, n - 1);
    uint8_t *out = NULL;
    size_t out_len = 0;
    gb_error_t err;
    int rc = gb_reassembler_feed(r, envs[n - 1]->chunk, &out, &out_len, &err);
    if (rc != 1)
        fail_msg("last chunk: %d %s", rc, err.msg);
    assert_int_equal(out_len, want_len);
    assert_memory_equal(out, want, want_len);
    assert_false(gb_reassembler_busy(r));
    gb_free(out);
}

static uint8_t *s_payload(size_t len)
{
    uint8_t *p = malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 131 + (i >> 8));
    return p;
}

/* ---- the whole path --------------------------------------------------------- */

static void test_ten_megabyte_update_round_trip(void **state)
{
    (void)state;
    /* An Update of 2.5M parameters: 10 MB of delta, too big for one frame. */
    enum { N = 2500000 };
    gbfix_t f;
    gbfix_init(&f, GBFIX_UPDATE);
    float *delta = malloc((size_t)N * sizeof *delta);
    for (size_t i = 0; i < N; i++)
        delta[i] = (float)((int)(i % 2001) - 1000) * 1e-4f;
    f.update.delta.data = (uint8_t *)delta;
    f.update.delta.len = (size_t)N * sizeof *delta;
    f.update.param_count = N;
    gbfix_sha(f.update.delta.data, f.update.delta.len, f.delta_sha);
    gb_error_t err;
    uint8_t *whole = NULL;
    size_t whole_len = 0;
    assert_int_equal(gb_envelope_encode(&f.env, NULL, &whole, &whole_len, &err), GB_ERANGE);
    gb_envelope_limits_t big = {.max_bytes = GB_CHUNK_DEFAULT_MAX_TRANSFER};
    if (gb_envelope_encode(&f.env, &big, &whole, &whole_len, &err) != 0)
        fail_msg("encode: %s", err.msg);
    assert_true(whole_len > 10000000);

    gb_chunker_t *c = gb_chunker_new(0, &err); /* default: 1 MiB */
    assert_non_null(c);
    assert_int_equal(gb_chunker_buffer_size(c), GB_CHUNK_DEFAULT_SIZE + GB_CHUNK_OVERHEAD);
    size_t n;
    Glassbox__Envelope **envs = s_cut(c, whole, whole_len, &n);
    assert_int_equal(n, (whole_len + GB_CHUNK_DEFAULT_SIZE - 1) / GB_CHUNK_DEFAULT_SIZE);
    assert_int_equal(n, 10);
    for (size_t i = 0; i + 1 < n; i++)
        assert_int_equal(envs[i]->chunk->data.len, GB_CHUNK_DEFAULT_SIZE);

    gb_reassembler_t *r = gb_reassembler_new(0, &err);
    assert_non_null(r);
    assert_int_equal(gb_reassembler_max_transfer(r), GB_CHUNK_DEFAULT_MAX_TRANSFER);
    s_feed_ok(r, envs, 0, n - 1);
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(gb_reassembler_feed(r, envs[n - 1]->chunk, &out, &out_len, &err), 1);
    assert_int_equal(out_len, whole_len);
    assert_memory_equal(out, whole, whole_len);

    gb_envelope_limits_t inner = {.max_bytes = gb_reassembler_max_transfer(r),
                                  .reassembled = true};
    Glassbox__Envelope *u = NULL;
    if (gb_envelope_decode(out, out_len, &inner, &u, &err) != 0)
        fail_msg("inner: %s", err.msg);
    assert_int_equal(u->update->param_count, N);
    assert_memory_equal(u->update->delta.data, delta, (size_t)N * sizeof *delta);
    gb_envelope_free(&u);

    gb_free(out);
    s_free_all(envs, n);
    gb_reassembler_destroy(&r);
    assert_null(r);
    gb_reassembler_destroy(&r);
    gb_chunker_destroy(&c);
    assert_null(c);
    gb_chunker_destroy(&c);
    gb_free(whole);
    free(delta);
}

/* A transfer whose payload is itself a chunk envelope reassembles, and is
 * then refused by the inner decode. */
static void test_chunk_inside_chunk_refused(void **state)
{
    (void)state;
    gbfix_t f;
    gbfix_init(&f, GBFIX_CHUNK_KIND);
    size_t len;
    uint8_t *inner = gbfix_pack(&f, &len);
    gb_error_t err;
    gb_chunker_t *c = gb_chunker_new(64, &err);
    gb_reassembler_t *r = gb_reassembler_new(0, &err);
    size_t n;
    Glassbox__Envelope **envs = s_cut(c, inner, len, &n);
    s_feed_ok(r, envs, 0, n - 1);
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(gb_reassembler_feed(r, envs[n - 1]->chunk, &out, &out_len, &err), 1);
    gb_envelope_limits_t lim = {.max_bytes = gb_reassembler_max_transfer(r), .reassembled = true};
    Glassbox__Envelope *e = NULL;
    assert_int_equal(gb_envelope_decode(out, out_len, &lim, &e, &err), GB_EFORMAT);
    assert_null(e);
    assert_non_null(strstr(err.msg, "may not itself be a chunk"));
    gb_free(out);
    s_free_all(envs, n);
    gb_reassembler_destroy(&r);
    gb_chunker_destroy(&c);
    free(inner);
}

/* ---- the chunker ------------------------------------------------------------ */

static void test_chunker_edges(void **state)
{
    (void)state;
    gb_error_t err;
    assert_null(gb_chunker_new(GB_CHUNK_MAX_SIZE + 1, &err));
    assert_int_equal(err.code, GB_EINVAL);
    gb_chunker_t *c = gb_chunker_new(GB_CHUNK_MAX_SIZE, &err);
    assert_non_null(c);
    gb_chunker_destroy(&c);

    c = gb_chunker_new(100, &err);
    uint8_t *p = s_payload(1000);
    uint64_t id = 0;
    assert_int_equal(gb_chunker_start(c, p, 0, &id, &err), GB_EINVAL);
    assert_int_equal(gb_chunker_start(c, NULL, 10, &id, &err), GB_EINVAL);
    assert_int_equal(gb_chunker_start(NULL, p, 10, &id, &err), GB_EINVAL);
    assert_int_equal(gb_chunker_count(c), 0);
    uint8_t frame[256];
    size_t flen = 9;
    assert_int_equal(gb_chunker_next(c, 1, frame, sizeof frame, &flen, &err), 0); /* nothing */
    assert_int_equal(flen, 0);

    /* exact multiple, one byte over, one byte: chunk counts and sizes */
    const size_t sizes[] = {1000, 1001, 1, 100, 99};
    const uint32_t counts[] = {10, 11, 1, 1, 1};
    gb_reassembler_t *r = gb_reassembler_new(0, &err);
    uint8_t *q = s_payload(1001);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n;
        Glassbox__Envelope **envs = s_cut(c, q, sizes[k], &n);
        assert_int_equal(n, counts[k]);
        assert_int_equal(envs[n - 1]->chunk->data.len, sizes[k] - (n - 1) * 100);
        s_feed_all_ok(r, envs, n, q, sizes[k]);
        s_free_all(envs, n);
    }

    /* transfer ids count up per chunker; a restart abandons the old one */
    assert_int_equal(gb_chunker_start(c, p, 1000, &id, &err), 0);
    assert_int_equal(id, 6);
    assert_int_equal(gb_chunker_count(c), 10);
    assert_int_equal(gb_chunker_next(c, 1, frame, sizeof frame, &flen, &err), 1);
    assert_int_equal(gb_chunker_start(c, p, 150, &id, &err), 0);
    assert_int_equal(id, 7);
    assert_int_equal(gb_chunker_count(c), 2);

    /* a buffer too small, sequence 0 or NULLs: refused, transfer abandoned */
    assert_int_equal(gb_chunker_next(c, 1, frame, 50, &flen, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "the buffer has 50"));
    assert_int_equal(gb_chunker_count(c), 0);
    assert_int_equal(gb_chunker_next(c, 1, frame, sizeof frame, &flen, &err), 0);
    assert_int_equal(gb_chunker_start(c, p, 150, &id, &err), 0);
    assert_int_equal(gb_chunker_next(c, 0, frame, sizeof frame, &flen, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "sequence 0"));
    assert_int_equal(gb_chunker_count(c), 2); /* still there */
    assert_int_equal(gb_chunker_next(c, 1, NULL, sizeof frame, &flen, &err), GB_EINVAL);
    assert_int_equal(gb_chunker_next(c, 1, frame, sizeof frame, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_chunker_buffer_size(NULL), 0);
    assert_int_equal(gb_chunker_count(NULL), 0);

    gb_reassembler_destroy(&r);
    gb_chunker_destroy(&c);
    free(p);
    free(q);
}

/* ---- the reassembler's refusals -------------------------------------------- */

typedef struct {
    gb_chunker_t *c;
    gb_reassembler_t *r;
    uint8_t *payload;
    Glassbox__Envelope **envs;
    size_t n;
} s_rx_t;

/* A fresh 10-chunk transfer of 1000 bytes from the same chunker, so ids
 * keep increasing for the one reassembler. */
static void s_rx_next(s_rx_t *x)
{
    if (x->envs)
        s_free_all(x->envs, x->n);
    x->envs = s_cut(x->c, x->payload, 1000, &x->n);
    assert_int_equal(x->n, 10);
}

/* After a refusal, the next whole transfer goes through. */
static void s_rx_recovers(s_rx_t *x)
{
    s_rx_next(x);
    s_feed_all_ok(x->r, x->envs, x->n, x->payload, 1000);
    s_rx_next(x);
}

static void test_reassembler_refusals(void **state)
{
    (void)state;
    gb_error_t err;
    s_rx_t x = {0};
    x.c = gb_chunker_new(100, &err);
    x.r = gb_reassembler_new(0, &err);
    x.payload = s_payload(1000);
    s_rx_next(&x);
    Glassbox__TensorChunk t;

    /* gap */
    s_feed_ok(x.r, x.envs, 0, 3);
    s_feed_refused(x.r, x.envs[4]->chunk, GB_EFORMAT, "chunk 3 was expected (gap)");
    s_rx_recovers(&x);
    /* duplicate */
    s_feed_ok(x.r, x.envs, 0, 3);
    s_feed_refused(x.r, x.envs[2]->chunk, GB_EFORMAT, "chunk 3 was expected (duplicate)");
    s_rx_recovers(&x);
    /* overlap and wrong offset */
    s_feed_ok(x.r, x.envs, 0, 3);
    t = *x.envs[3]->chunk;
    t.offset = 250;
    s_feed_refused(x.r, &t, GB_EFORMAT, "offset 250, expected 300 (overlap)");
    s_rx_recovers(&x);
    s_feed_ok(x.r, x.envs, 0, 3);
    t = *x.envs[3]->chunk;
    t.offset = 350;
    t.data.len = 50;
    s_feed_refused(x.r, &t, GB_EFORMAT, "offset 350, expected 300 (gap)");
    s_rx_recovers(&x);
    /* changed total or count */
    s_feed_ok(x.r, x.envs, 0, 4);
    t = *x.envs[4]->chunk;
    t.total_bytes = 1001;
    s_feed_refused(x.r, &t, GB_EFORMAT, "count 10 and total_bytes 1001 differ from the first "
                                        "chunk's 10 and 1000");
    s_rx_recovers(&x);
    s_feed_ok(x.r, x.envs, 0, 4);
    t = *x.envs[4]->chunk;
    t.count = 11;
    s_feed_refused(x.r, &t, GB_EFORMAT, "differ from the first chunk's");
    s_rx_recovers(&x);
    /* a tampered chunk: the hash at the end catches it */
    s_feed_ok(x.r, x.envs, 0, 5);
    t = *x.envs[5]->chunk;
    uint8_t bad[100];
    memcpy(bad, t.data.data, 100);
    bad[17] ^= 1;
    t.data.data = bad;
    s_feed_ok(x.r, &(Glassbox__Envelope *){&(Glassbox__Envelope){.chunk = &t}}, 0, 1);
    s_feed_ok(x.r, x.envs, 6, 9);
    s_feed_refused(x.r, x.envs[9]->chunk, GB_EINTEGRITY,
                   "the 1000 bytes do not match the transfer's SHA-256");
    s_rx_recovers(&x);
    /* a second transfer while one is open: both are dropped */
    s_feed_ok(x.r, x.envs, 0, 3);
    Glassbox__Envelope **older = x.envs;
    size_t older_n = x.n;
    x.envs = NULL;
    s_rx_next(&x);
    s_feed_refused(x.r, x.envs[0]->chunk, GB_EFORMAT, "is still open (one at a time)");
    s_feed_refused(x.r, older[3]->chunk, GB_EFORMAT, "no transfer is open, so chunk 0 was "
                                                     "expected");
    s_free_all(older, older_n);
    s_rx_recovers(&x);
    /* first chunks missing */
    s_feed_refused(x.r, x.envs[1]->chunk, GB_EFORMAT, "first chunks missing");
    s_rx_recovers(&x);
    /* a replayed transfer (same id as a completed one) */
    s_feed_all_ok(x.r, x.envs, x.n, x.payload, 1000);
    s_feed_refused(x.r, x.envs[0]->chunk, GB_EFORMAT, "replayed or reused");
    s_rx_recovers(&x);
    /* data complete before the last chunk / last chunk ends early */
    t = *x.envs[0]->chunk;
    t.count = 3;
    t.total_bytes = 100;
    s_feed_refused(x.r, &t, GB_EFORMAT, "the data is complete before the last chunk");
    s_rx_next(&x);
    t = *x.envs[0]->chunk;
    t.count = 2;
    t.total_bytes = 300;
    uint8_t sha[32] = {0};
    s_feed_ok(x.r, &(Glassbox__Envelope *){&(Glassbox__Envelope){.chunk = &t}}, 0, 1);
    t = *x.envs[1]->chunk;
    t.count = 2;
    t.total_bytes = 300;
    t.sha256.data = sha;
    t.sha256.len = 32;
    s_feed_refused(x.r, &t, GB_EFORMAT, "the last chunk ends at byte 200 of 300");
    s_rx_next(&x);
    /* a last chunk without a hash, and structurally broken chunks (the
     * decoder refuses these; the reassembler does not rely on it) */
    s_feed_ok(x.r, x.envs, 0, 9);
    t = *x.envs[9]->chunk;
    t.sha256.len = 0;
    s_feed_refused(x.r, &t, GB_EFORMAT, "the last chunk has no 32-byte SHA-256");
    s_rx_next(&x);
    t = *x.envs[0]->chunk;
    t.data.data = NULL;
    s_feed_refused(x.r, &t, GB_EFORMAT, "inconsistent");
    t = *x.envs[0]->chunk;
    t.offset = 950;
    s_feed_refused(x.r, &t, GB_EFORMAT, "inconsistent");
    t = *x.envs[0]->chunk;
    t.index = 10;
    s_feed_refused(x.r, &t, GB_EFORMAT, "inconsistent");
    s_rx_recovers(&x);
    /* reset abandons the transfer in progress */
    s_feed_ok(x.r, x.envs, 0, 5);
    gb_reassembler_reset(x.r);
    assert_false(gb_reassembler_busy(x.r));
    s_feed_refused(x.r, x.envs[5]->chunk, GB_EFORMAT, "no transfer is open");
    s_rx_recovers(&x);

    /* misuse */
    uint8_t *out;
    size_t out_len;
    assert_int_equal(gb_reassembler_feed(NULL, x.envs[0]->chunk, &out, &out_len, &err),
                     GB_EINVAL);
    assert_int_equal(gb_reassembler_feed(x.r, NULL, &out, &out_len, &err), GB_EINVAL);
    assert_int_equal(gb_reassembler_feed(x.r, x.envs[0]->chunk, NULL, &out_len, &err), GB_EINVAL);
    assert_false(gb_reassembler_busy(NULL));
    assert_int_equal(gb_reassembler_max_transfer(NULL), 0);
    gb_reassembler_reset(NULL);

    s_free_all(x.envs, x.n);
    free(x.payload);
    gb_reassembler_destroy(&x.r);
    gb_chunker_destroy(&x.c);
}

/* The limit is checked against total_bytes before anything is allocated. */
static void test_reassembler_limit(void **state)
{
    (void)state;
    gb_error_t err;
    gb_chunker_t *c = gb_chunker_new(100, &err);
    gb_reassembler_t *r = gb_reassembler_new(999, &err);
    assert_int_equal(gb_reassembler_max_transfer(r), 999);
    uint8_t *p = s_payload(1000);
    size_t n;
    Glassbox__Envelope **envs = s_cut(c, p, 1000, &n);
    gb_alloc_fail_after(1); /* an allocation would fail with GB_ENOMEM */
    s_feed_refused(r, envs[0]->chunk, GB_ERANGE, "total_bytes 1000 is more than the limit of 999");
    gb_alloc_fail_after(0);
    assert_int_equal(gb_envelope_error_code(GB_ERANGE), GLASSBOX__ERROR_CODE__ERROR_TOO_LARGE);
    /* a claimed total of 2^60 bytes costs nothing either */
    Glassbox__TensorChunk t = *envs[0]->chunk;
    t.transfer_id = 99;
    t.total_bytes = (uint64_t)1 << 60;
    s_feed_refused(r, &t, GB_ERANGE, "more than the limit");
    s_free_all(envs, n);

    envs = s_cut(c, p, 999, &n);
    s_feed_all_ok(r, envs, n, p, 999);
    s_free_all(envs, n);
    free(p);
    gb_reassembler_destroy(&r);
    gb_chunker_destroy(&c);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    gb_error_t err;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        gb_chunker_t *c = gb_chunker_new(100, &err);
        gb_reassembler_t *r = c ? gb_reassembler_new(0, &err) : NULL;
        gb_alloc_fail_after(0);
        bool done = c && r;
        if (!done)
            assert_int_equal(err.code, GB_ENOMEM);
        gb_chunker_destroy(&c);
        gb_reassembler_destroy(&r);
        if (done)
            break;
    }
    /* the transfer buffer: refused cleanly, the next transfer works */
    gb_chunker_t *c = gb_chunker_new(100, &err);
    gb_reassembler_t *r = gb_reassembler_new(0, &err);
    uint8_t *p = s_payload(1000);
    size_t n;
    Glassbox__Envelope **envs = s_cut(c, p, 1000, &n);
    gb_alloc_fail_after(1);
    s_feed_refused(r, envs[0]->chunk, GB_ENOMEM, "out of memory for 1000 bytes");
    gb_alloc_fail_after(0);
    s_free_all(envs, n);
    envs = s_cut(c, p, 1000, &n);
    s_feed_all_ok(r, envs, n, p, 1000);
    s_free_all(envs, n);
    free(p);
    gb_reassembler_destroy(&r);
    gb_chunker_destroy(&c);
}

int main(void)
{
    /* Every refusal logs a warning; keep the test output readable. */
    gb_log_set_level(GB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ten_megabyte_update_round_trip),
        cmocka_unit_test(test_chunk_inside_chunk_refused),
        cmocka_unit_test(test_chunker_edges),
        cmocka_unit_test(test_reassembler_refusals),
        cmocka_unit_test(test_reassembler_limit),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
