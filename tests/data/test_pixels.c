/* Tests for data/pixels: known-answer encodings; exact round trips (random
 * sparse images of many densities and sizes, all zeros, all 255, alternating,
 * runs at and around the limits of the count fields, one-pixel images) to
 * bytes and to floats, the floats equal to (float)pixel * scale; the raw
 * fallback; decoding every prefix and many random or mutated streams never
 * writes past the image (guard bytes) or reads past the stream (exact-size
 * heap copies under ASan); the store: append, growth, trim, get, subset,
 * limit, size limits, misuse and allocation-failure injection. Doubles as
 * the usage example. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/pixels.h"
#include "util/alloc.h"
#include "util/log.h"

#define S_GUARD 64   /* guard bytes or floats after a decode buffer */
#define S_MARK 0xA5u /* what the guard bytes hold */
#define S_SCALE (1.0f / 255.0f)

static uint64_t s_state = 0x9E3779B97F4A7C15ull;

static uint32_t s_rand(void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return (uint32_t)(s_state >> 32);
}

/* Encodes img (size bytes), checks the encoded length against the format's
 * rules, decodes it to bytes and to floats (each into a buffer with guards)
 * and checks both against img. Returns the encoded length. */
static size_t s_round_trip(const uint8_t *img, size_t size)
{
    uint8_t *enc = malloc(size);
    assert_non_null(enc);
    size_t len = gb_pixels_encode(img, size, enc);
    assert_true(len <= size);
    if (len == size)
        assert_memory_equal(enc, img, size);
    /* an exact-size copy: ASan catches a read past the stream */
    uint8_t *exact = len ? malloc(len) : NULL;
    if (len) {
        assert_non_null(exact);
        memcpy(exact, enc, len);
    }
    uint8_t *out = malloc(size + S_GUARD);
    assert_non_null(out);
    memset(out, S_MARK, size + S_GUARD);
    assert_int_equal(gb_pixels_decode(exact, len, size, out), 0);
    assert_memory_equal(out, img, size);
    for (size_t k = size; k < size + S_GUARD; k++)
        assert_int_equal(out[k], S_MARK);

    float *f = malloc((size + S_GUARD) * sizeof *f);
    assert_non_null(f);
    for (size_t k = 0; k < size + S_GUARD; k++)
        f[k] = -1.0f;
    assert_int_equal(gb_pixels_decode_float(exact, len, size, S_SCALE, f), 0);
    for (size_t k = 0; k < size; k++)
        if (f[k] != (float)img[k] * S_SCALE)
            fail_msg("size %zu pixel %zu: %g, expected %g", size, k, f[k], (float)img[k] * S_SCALE);
    for (size_t k = size; k < size + S_GUARD; k++)
        assert_true(f[k] == -1.0f);
    free(f);
    free(out);
    free(exact);
    free(enc);
    return len;
}

static void test_known_answers(void **state)
{
    (void)state;
    uint8_t enc[64];
    /* all zero: nothing at all */
    const uint8_t zeros[8] = {0};
    assert_int_equal(gb_pixels_encode(zeros, 8, enc), 0);
    /* 3 zeros, literals 7 9, trailing zeros implicit: one token 0x32 */
    const uint8_t a[10] = {0, 0, 0, 7, 9, 0, 0, 0, 0, 0};
    assert_int_equal(gb_pixels_encode(a, 10, enc), 3);
    const uint8_t a_enc[3] = {0x32, 7, 9};
    assert_memory_equal(enc, a_enc, 3);
    /* two tokens: (1 zero, 1 literal) (2 zeros, 1 literal) */
    const uint8_t b[8] = {0, 5, 0, 0, 6, 0, 0, 0};
    assert_int_equal(gb_pixels_encode(b, 8, enc), 4);
    const uint8_t b_enc[4] = {0x11, 5, 0x21, 6};
    assert_memory_equal(enc, b_enc, 4);
    /* 15 zeros: the nibble says "extension", the extension byte adds 0 */
    uint8_t c[20] = {0};
    c[15] = 1;
    assert_int_equal(gb_pixels_encode(c, 20, enc), 3);
    const uint8_t c_enc[3] = {0xF1, 0, 1};
    assert_memory_equal(enc, c_enc, 3);
    /* 16 zeros then 15 literals: both counts extended, zeros first */
    uint8_t d[40] = {0};
    for (int k = 16; k < 31; k++)
        d[k] = (uint8_t)k;
    assert_int_equal(gb_pixels_encode(d, 40, enc), 3 + 15);
    const uint8_t d_head[3] = {0xFF, 1, 0};
    assert_memory_equal(enc, d_head, 3);
    assert_memory_equal(enc + 3, d + 16, 15);
    /* 300 zeros: a full token of 270 zeros, then 30 more with the literal */
    uint8_t e[310] = {0};
    e[300] = 42;
    assert_int_equal(gb_pixels_encode(e, 310, enc), 5);
    const uint8_t e_enc[5] = {0xF0, 255, 0xF1, 15, 42};
    assert_memory_equal(enc, e_enc, 5);
    /* nothing to gain: stored raw (length = size) */
    const uint8_t f[4] = {1, 0, 2, 0};
    assert_int_equal(gb_pixels_encode(f, 4, enc), 4);
    assert_memory_equal(enc, f, 4);
    /* and the hand-made streams decode */
    uint8_t out[10];
    assert_int_equal(gb_pixels_decode(a_enc, 3, 10, out), 0);
    assert_memory_equal(out, a, 10);
    assert_int_equal(gb_pixels_decode(b_enc, 4, 8, out), 0);
    assert_memory_equal(out, b, 8);
    assert_int_equal(gb_pixels_decode(NULL, 0, 10, out), 0);
    assert_memory_equal(out, zeros, 8);
}

static void test_round_trips(void **state)
{
    (void)state;
    uint8_t img[2048];
    /* one pixel: zero is 0 bytes, anything else is raw */
    img[0] = 0;
    assert_int_equal(s_round_trip(img, 1), 0);
    img[0] = 200;
    assert_int_equal(s_round_trip(img, 1), 1);
    /* all zeros, all 255, alternating, at several sizes */
    const size_t sizes[] = {2, 3, 15, 16, 17, 31, 270, 271, 784, 2048};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        memset(img, 0, n);
        assert_int_equal(s_round_trip(img, n), 0);
        memset(img, 255, n);
        assert_int_equal(s_round_trip(img, n), n); /* raw: tokens would be longer */
        for (size_t k = 0; k < n; k++)             /* 255 0 255 ...: no shorter as tokens */
            img[k] = (k & 1) ? 0 : 255;
        assert_int_equal(s_round_trip(img, n), n);
        for (size_t k = 0; k < n; k++) /* 0 255 0 ...: one token per pair */
            img[k] = (k & 1) ? 255 : 0;
        s_round_trip(img, n);
    }
    /* zero and literal runs at the limits of the fields: 14/15/16 (nibble),
     * 269/270/271 (extension byte), 540/541 (two tokens), at the start, the
     * middle and the end of the image */
    const size_t runs[] = {1, 2, 14, 15, 16, 29, 30, 31, 269, 270, 271, 285, 286, 539, 540, 541};
    const size_t nr = sizeof runs / sizeof runs[0];
    for (size_t zi = 0; zi < nr; zi++)
        for (size_t li = 0; li < nr; li++) {
            size_t z = runs[zi], l = runs[li], n = 0;
            memset(img, 0, sizeof img);
            n += z; /* zeros first */
            for (size_t k = 0; k < l; k++)
                img[n++] = (uint8_t)(1 + k % 255);
            s_round_trip(img, n);         /* ends with the literal run */
            s_round_trip(img, n + z);     /* and with a zero run as long */
            s_round_trip(img + z, n - z); /* starts with the literals */
            size_t m = n + z;             /* literals, zeros, literals */
            for (size_t k = 0; k < l && m < sizeof img; k++)
                img[m++] = (uint8_t)(255 - k % 255);
            s_round_trip(img, m);
        }
    /* random images: densities from almost empty to full, clustered and not */
    for (int t = 0; t < 3000; t++) {
        size_t n = 1 + s_rand() % 1500;
        uint32_t density = s_rand() % 101;
        int clustered = t & 1;
        int on = 0;
        for (size_t k = 0; k < n; k++) {
            if (clustered) {
                if (s_rand() % 100 < 8)
                    on = !on && (s_rand() % 100 < density);
            } else {
                on = s_rand() % 100 < density;
            }
            img[k] = on ? (uint8_t)(1 + s_rand() % 255) : 0;
        }
        s_round_trip(img, n);
    }
}

/* Decodes enc (len bytes, copied to an exact-size block) into size bytes
 * and floats with guards after each: whatever the result, nothing is written
 * past size. Returns the byte decoder's result (the float one must agree). */
static int s_decode_guarded(const uint8_t *enc, size_t len, size_t size)
{
    uint8_t *exact = len ? malloc(len) : NULL;
    if (len)
        memcpy(exact, enc, len);
    uint8_t *out = malloc(size + S_GUARD);
    float *f = malloc((size + S_GUARD) * sizeof *f);
    assert_non_null(out);
    assert_non_null(f);
    memset(out, S_MARK, size + S_GUARD);
    for (size_t k = 0; k < size + S_GUARD; k++)
        f[k] = -1.0f;
    int rc = gb_pixels_decode(exact, len, size, out);
    int rcf = gb_pixels_decode_float(exact, len, size, S_SCALE, f);
    assert_true(rc == 0 || rc == GB_EFORMAT);
    assert_int_equal(rc, rcf);
    for (size_t k = size; k < size + S_GUARD; k++) {
        assert_int_equal(out[k], S_MARK);
        assert_true(f[k] == -1.0f);
    }
    if (rc == 0) /* a stream that decodes gives the same image both ways */
        for (size_t k = 0; k < size; k++)
            assert_true(f[k] == (float)out[k] * S_SCALE);
    free(f);
    free(out);
    free(exact);
    return rc;
}

static void test_damaged_streams(void **state)
{
    (void)state;
    /* the decoder's own checks, one at a time */
    const uint8_t over[2] = {0x40, 0}; /* 4 zeros in a 3-byte image (len < size) */
    assert_int_equal(s_decode_guarded(over, 1, 3), GB_EFORMAT);
    const uint8_t lit_past_image[3] = {0x02, 1, 2}; /* 2 literals in a 4-byte image: fine */
    assert_int_equal(s_decode_guarded(lit_past_image, 3, 4), 0);
    const uint8_t zl_past[1] = {0x12}; /* 1 zero + 2 literals in a 2-byte image */
    assert_int_equal(s_decode_guarded(zl_past, 1, 2), GB_EFORMAT);
    const uint8_t lit_past_stream[2] = {0x03, 1}; /* 3 literals, 1 present */
    assert_int_equal(s_decode_guarded(lit_past_stream, 2, 10), GB_EFORMAT);
    const uint8_t no_zext[1] = {0xF0}; /* zero extension byte missing */
    assert_int_equal(s_decode_guarded(no_zext, 1, 40), GB_EFORMAT);
    const uint8_t no_lext[2] = {0xFF, 0}; /* literal extension byte missing */
    assert_int_equal(s_decode_guarded(no_lext, 2, 40), GB_EFORMAT);
    const uint8_t big[3] = {0xF0, 255, 0x10}; /* 270 + 1 zeros in 271 bytes: fits */
    assert_int_equal(s_decode_guarded(big, 3, 300), 0);
    assert_int_equal(s_decode_guarded(big, 3, 271), 0);
    assert_int_equal(s_decode_guarded(big, 3, 270), GB_EFORMAT);
    uint8_t long_stream[8] = {0};
    assert_int_equal(s_decode_guarded(long_stream, 8, 7), GB_EFORMAT); /* len > size */

    /* every prefix of real streams: an error or an image, never an overrun */
    uint8_t img[784], enc[784];
    for (int t = 0; t < 40; t++) {
        for (size_t k = 0; k < sizeof img; k++)
            img[k] = (s_rand() % 100 < (uint32_t)t * 2) ? (uint8_t)s_rand() : 0;
        size_t len = gb_pixels_encode(img, sizeof img, enc);
        for (size_t cut = 0; cut <= len; cut++)
            s_decode_guarded(enc, cut, sizeof img);
    }
    /* random bytes and mutated streams of every length up to the size */
    for (int t = 0; t < 20000; t++) {
        size_t size = 1 + s_rand() % 600;
        size_t len = s_rand() % (size + 1);
        uint8_t buf[600];
        if (t & 1) {
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)s_rand();
        } else {
            for (size_t k = 0; k < size; k++)
                img[k] = (s_rand() % 3 == 0) ? (uint8_t)s_rand() : 0;
            len = gb_pixels_encode(img, size, buf);
            if (len)
                buf[s_rand() % len] ^= (uint8_t)(1u << (s_rand() % 8));
        }
        s_decode_guarded(buf, len, size);
    }
}

static void test_store(void **state)
{
    (void)state;
    gb_error_t err = {0};
    enum { N = 50, SIZE = 100 };
    uint8_t imgs[N][SIZE];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < SIZE; k++)
            imgs[i][k] = (k % 10 < i % 7) ? (uint8_t)(i + k + 1) : 0;
    memset(imgs[3], 255, SIZE); /* stored raw */
    memset(imgs[4], 0, SIZE);   /* stored as nothing */

    gb_pixels_t *p = gb_pixels_new(SIZE, N, &err);
    assert_non_null(p);
    assert_int_equal(p->n, 0);
    assert_int_equal(p->size, SIZE);
    assert_int_equal(gb_pixels_bytes(p), (N + 1) * sizeof(uint32_t));
    for (int i = 0; i < N; i++) {
        assert_int_equal(gb_pixels_append(p, imgs[i], &err), 0);
        assert_true(p->cap <= (size_t)N * SIZE); /* never more than raw */
    }
    assert_int_equal(p->n, N);
    assert_int_equal(p->off[4] - p->off[3], SIZE);
    assert_int_equal(p->off[5] - p->off[4], 0);
    /* full */
    assert_int_equal(gb_pixels_append(p, imgs[0], &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "full"));
    gb_pixels_trim(p);
    assert_int_equal(p->cap, p->off[N]);
    assert_int_equal(gb_pixels_bytes(p), p->off[N] + (N + 1) * sizeof(uint32_t));
    assert_true(p->off[N] < (uint32_t)N * SIZE);

    uint8_t out[SIZE];
    float f[SIZE];
    for (int i = 0; i < N; i++) {
        assert_int_equal(gb_pixels_get(p, i, out), 0);
        assert_memory_equal(out, imgs[i], SIZE);
        assert_int_equal(gb_pixels_get_float(p, i, 0.5f, f), 0);
        for (int k = 0; k < SIZE; k++)
            assert_true(f[k] == (float)imgs[i][k] * 0.5f);
    }

    /* subset: in order, with repeats, and empty */
    int32_t pick[5] = {4, 49, 3, 3, 0};
    gb_pixels_t *sub = NULL;
    assert_int_equal(gb_pixels_subset(p, pick, 5, &sub, &err), 0);
    assert_int_equal(sub->n, 5);
    assert_int_equal(sub->cap, sub->off[5]);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(gb_pixels_get(sub, i, out), 0);
        assert_memory_equal(out, imgs[pick[i]], SIZE);
    }
    gb_pixels_destroy(&sub);
    assert_null(sub);
    assert_int_equal(gb_pixels_subset(p, NULL, 0, &sub, &err), 0);
    assert_int_equal(sub->n, 0);
    assert_null(sub->data);
    gb_pixels_destroy(&sub);
    int32_t only_empty[2] = {4, 4}; /* two all-zero images: no bytes at all */
    assert_int_equal(gb_pixels_subset(p, only_empty, 2, &sub, &err), 0);
    assert_int_equal(gb_pixels_get(sub, 1, out), 0);
    assert_memory_equal(out, imgs[4], SIZE);
    gb_pixels_destroy(&sub);
    pick[1] = 50;
    assert_int_equal(gb_pixels_subset(p, pick, 5, &sub, &err), GB_ERANGE);
    assert_null(sub);
    assert_non_null(strstr(err.msg, "image 50 out of range 0..49"));
    pick[1] = -1;
    assert_int_equal(gb_pixels_subset(p, pick, 5, &sub, &err), GB_ERANGE);
    assert_int_equal(gb_pixels_subset(p, pick, -1, &sub, &err), GB_EINVAL);
    assert_int_equal(gb_pixels_subset(p, NULL, 2, &sub, &err), GB_EINVAL);

    /* limit: the first n stay, the rest is given back */
    gb_pixels_limit(p, 100);
    assert_int_equal(p->n, N);
    gb_pixels_limit(p, 6);
    assert_int_equal(p->n, 6);
    assert_int_equal(p->max_n, 6);
    assert_int_equal(p->cap, p->off[6]);
    assert_int_equal(gb_pixels_get(p, 5, out), 0);
    assert_memory_equal(out, imgs[5], SIZE);
    gb_pixels_limit(p, 0);
    assert_int_equal(p->n, 0);
    assert_null(p->data);
    gb_pixels_destroy(&p);
    gb_pixels_destroy(&p); /* NULL-safe */
    gb_pixels_destroy(NULL);
    assert_int_equal(gb_pixels_bytes(NULL), 0);

    /* an empty store and a store of zero images */
    p = gb_pixels_new(1, 0, &err);
    assert_non_null(p);
    assert_int_equal(gb_pixels_append(p, imgs[0], &err), GB_EINVAL);
    gb_pixels_trim(p);
    gb_pixels_destroy(&p);

    /* bad arguments and the size limit */
    assert_null(gb_pixels_new(0, 5, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_pixels_new(10, -1, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_pixels_new(1u << 16, 1 << 16, &err)); /* exactly 4 GiB */
    assert_int_equal(err.code, GB_ERANGE);
    assert_non_null(strstr(err.msg, "over the 4294967295-byte limit"));
    assert_null(gb_pixels_new(SIZE_MAX / 2, 3, &err));
    assert_int_equal(err.code, GB_ERANGE);
    assert_null(gb_pixels_new(1, INT64_MAX, &err));
    assert_int_equal(err.code, GB_ERANGE);
}

/* A store whose stream has been damaged: get reports it, and never writes
 * past the image. */
static void test_corrupt_store(void **state)
{
    (void)state;
    gb_error_t err = {0};
    uint8_t img[40] = {0};
    img[5] = 9;
    img[6] = 8;
    gb_pixels_t *p = gb_pixels_new(sizeof img, 2, &err);
    assert_non_null(p);
    assert_int_equal(gb_pixels_append(p, img, &err), 0);
    assert_int_equal(gb_pixels_append(p, img, &err), 0);
    gb_pixels_trim(p);
    assert_int_equal(p->off[1], 3); /* 0x52 9 8 */
    p->data[3] = 0xFF;              /* image 1: 15 + 9 zeros, 15 + 8 literals: past the 40 bytes */
    uint8_t out[40 + S_GUARD];
    memset(out, S_MARK, sizeof out);
    assert_int_equal(gb_pixels_get(p, 1, out), GB_EFORMAT);
    for (size_t k = 40; k < sizeof out; k++)
        assert_int_equal(out[k], S_MARK);
    float f[40 + S_GUARD];
    assert_int_equal(gb_pixels_get_float(p, 1, 1.0f, f), GB_EFORMAT);
    assert_int_equal(gb_pixels_get(p, 0, out), 0); /* image 0 is intact */
    assert_memory_equal(out, img, sizeof img);
    gb_pixels_destroy(&p);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    uint8_t img[64];
    for (int k = 0; k < 64; k++)
        img[k] = (k % 9 < 4) ? (uint8_t)(k + 1) : 0;
    int failures = 0, done = 0;
    for (long j = 1; j < 50 && !done; j++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(j);
        gb_pixels_t *p = gb_pixels_new(sizeof img, 20, &err);
        int rc = p ? 0 : err.code;
        for (int i = 0; p && rc == 0 && i < 20; i++)
            rc = gb_pixels_append(p, img, &err);
        gb_pixels_t *sub = NULL;
        int32_t pick[3] = {2, 0, 19};
        if (rc == 0)
            rc = gb_pixels_subset(p, pick, 3, &sub, &err);
        if (rc == 0) {
            gb_pixels_trim(p); /* a failed shrink keeps the old block */
            gb_pixels_limit(p, 10);
        }
        gb_alloc_fail_after(0);
        if (rc == 0) {
            uint8_t out[64];
            for (int i = 0; i < 10; i++) {
                assert_int_equal(gb_pixels_get(p, i, out), 0);
                assert_memory_equal(out, img, sizeof img);
            }
            assert_int_equal(gb_pixels_get(sub, 2, out), 0);
            assert_memory_equal(out, img, sizeof img);
            done = 1;
        } else {
            assert_int_equal(rc, GB_ENOMEM);
            if (p) /* a failed append leaves the store as it was */
                for (int64_t i = 0; i < p->n; i++) {
                    uint8_t out[64];
                    assert_int_equal(gb_pixels_get(p, i, out), 0);
                    assert_memory_equal(out, img, sizeof img);
                }
            failures++;
        }
        gb_pixels_destroy(&sub);
        gb_pixels_destroy(&p);
    }
    assert_true(done);
    assert_true(failures >= 5); /* store, offsets, data (growing), sub's store, offsets, data */
}

int main(void)
{
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),   cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_damaged_streams), cmocka_unit_test(test_store),
        cmocka_unit_test(test_corrupt_store),   cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
