/* Tests for net/wire, the helpers every wire codec shares: the UTF-8 and
 * control-character rule (overlongs, surrogates, C1, truncated sequences,
 * the offset it reports), SHA-256 known answers, the OpenSSL error drain,
 * little-endian float reads at any alignment and the non-finite scan across
 * its block boundaries. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/evp.h>

#include "net/wire.h"
#include "util/alloc.h"

static void s_text(const char *s, size_t len, bool space, bool ok, size_t at)
{
    size_t bad = 12345;
    bool got = gb_wire_text_ok(s, len, space, &bad);
    if (got != ok)
        fail_msg("'%.*s': expected %s", (int)len, s, ok ? "ok" : "refused");
    if (!ok)
        assert_int_equal(bad, at);
}

static void test_text_rule(void **state)
{
    (void)state;
    s_text("", 0, false, true, 0);
    s_text("plain ascii ~", 13, false, true, 0);
    s_text("Gr\xc3\xb6\xc3\x9f" "e \xe2\x9c\x93 \xf0\x9f\x99\x82", 16, false, true, 0);
    s_text("\xf4\x8f\xbf\xbf", 4, false, true, 0);          /* U+10FFFF */
    s_text("a\tb\nc\r", 6, true, true, 0);
    s_text("a\tb", 3, false, false, 1);                      /* tab without allow_space */
    s_text("ab\x01", 3, true, false, 2);
    s_text("a\x7f", 2, false, false, 1);                     /* DEL */
    s_text("a\0b", 3, false, false, 1);                      /* NUL inside */
    s_text("x\xc2\x85", 3, false, false, 1);                 /* C1 control U+0085 */
    s_text("\xc0\xaf", 2, false, false, 0);                  /* overlong '/' */
    s_text("\xe0\x80\xaf", 3, false, false, 0);              /* overlong, 3 bytes */
    s_text("ok\xed\xa0\x80", 5, false, false, 2);            /* surrogate D800 */
    s_text("\xf4\x90\x80\x80", 4, false, false, 0);          /* above U+10FFFF */
    s_text("ab\xe2\x9c", 4, false, false, 2);                /* cut sequence */
    s_text("\x80", 1, false, false, 0);                      /* lone continuation */
    s_text("\xf8\x88\x80\x80\x80", 5, false, false, 0);      /* 5-byte form */
    s_text("\xc3(", 2, false, false, 0);                     /* bad continuation */
    assert_false(gb_wire_text_ok("\x01", 1, false, NULL));   /* bad may be NULL */
}

static void test_sha256_known_answers(void **state)
{
    (void)state;
    uint8_t d[GB_WIRE_SHA256_LEN];
    gb_error_t err;
    const uint8_t empty[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
                               0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
                               0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    assert_int_equal(gb_wire_sha256(NULL, 0, d, &err), 0);
    assert_memory_equal(d, empty, 32);
    const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                             0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                             0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    assert_int_equal(gb_wire_sha256("abc", 3, d, &err), 0);
    assert_memory_equal(d, abc, 32);
}

static void test_openssl_error_drain(void **state)
{
    (void)state;
    gb_error_t err;
    ERR_clear_error();
    /* an empty queue still gives a message, formatted like printf */
    assert_int_equal(gb_wire_openssl_error(&err, GB_ECRYPTO, "doing %s", "nothing"),
                     GB_ECRYPTO);
    assert_string_equal(err.msg, "doing nothing: no OpenSSL reason");
    /* a real failure: its reason lands in err and the queue is empty after */
    EVP_MD *md = EVP_MD_fetch(NULL, "NO-SUCH-DIGEST", NULL);
    assert_null(md);
    assert_int_not_equal(ERR_peek_error(), 0);
    assert_int_equal(gb_wire_openssl_error(&err, GB_ECRYPTO, "fetch"), GB_ECRYPTO);
    assert_int_equal(err.code, GB_ECRYPTO);
    assert_true(strncmp(err.msg, "fetch: ", 7) == 0);
    assert_non_null(strstr(err.msg, "NO-SUCH-DIGEST")); /* OpenSSL's detail text */
    assert_int_equal(ERR_peek_error(), 0);
    /* two errors: both reasons, oldest first; NULL err is fine */
    const unsigned char junk[] = {0x30, 0x03, 0x02, 0x01};
    const unsigned char *p = junk;
    assert_null(d2i_X509(NULL, &p, sizeof junk));
    ERR_raise_data(ERR_LIB_X509, ERR_R_PASSED_NULL_PARAMETER, "second");
    char buf[512];
    assert_false(gb_wire_openssl_reasons(buf, sizeof buf));
    assert_non_null(strstr(buf, "; "));
    assert_non_null(strstr(buf, "(second)"));
    assert_int_equal(ERR_peek_error(), 0);
    assert_int_equal(gb_wire_openssl_error(NULL, GB_EIO, "x"), GB_EIO);
    /* an allocation failure inside OpenSSL is reported as GB_ENOMEM */
    ERR_raise(ERR_LIB_EVP, ERR_R_MALLOC_FAILURE);
    assert_int_equal(gb_wire_openssl_error(&err, GB_ECRYPTO, "alloc"), GB_ENOMEM);
    /* a short buffer is cut, never overrun */
    ERR_raise_data(ERR_LIB_X509, ERR_R_PASSED_NULL_PARAMETER, "a long detail text here");
    char tiny[8];
    gb_wire_openssl_reasons(tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 7);
}

static void test_floats(void **state)
{
    (void)state;
    /* 1.0f = 0x3f800000 little-endian, at an odd address */
    uint8_t raw[9] = {0xaa, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc1};
    assert_true(gb_wire_float_le(raw + 1) == 1.0f);
    assert_true(gb_wire_float_le(raw + 5) == -10.0f);

    /* the scan finds the first non-finite value on both sides of a block */
    enum { N = 1000 };
    static float v[N];
    for (int i = 0; i < N; i++)
        v[i] = (float)i - 500.0f;
    assert_int_equal(gb_wire_first_nonfinite((uint8_t *)v, N), N);
    assert_int_equal(gb_wire_first_nonfinite((uint8_t *)v, 0), 0);
    const int at[] = {0, 255, 256, 511, 999};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        float keep = v[at[k]];
        v[at[k]] = k % 2 ? NAN : -INFINITY;
        assert_int_equal(gb_wire_first_nonfinite((uint8_t *)v, N), at[k]);
        v[at[k] + (at[k] < N - 1 ? 1 : -1)] = INFINITY; /* a later (or earlier) one too */
        assert_int_equal(gb_wire_first_nonfinite((uint8_t *)v, N), at[k] == N - 1 ? N - 2 : at[k]);
        v[at[k] + (at[k] < N - 1 ? 1 : -1)] = 0;
        v[at[k]] = keep;
    }
    v[3] = 3.4028235e38f; /* FLT_MAX and denormals are finite */
    v[4] = 1e-45f;
    assert_int_equal(gb_wire_first_nonfinite((uint8_t *)v, N), N);
}

/* Host floats to the wire's little-endian bytes and back: known bytes for
 * known values, any alignment, n = 0 touches nothing. */
static void test_float_arrays(void **state)
{
    (void)state;
    const float v[3] = {1.0f, -2.5f, 0x1p-149f};
    static const uint8_t want[12] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0,
                                     0x01, 0x00, 0x00, 0x00};
    uint8_t buf[13] = {0};
    gb_wire_floats_to_le(buf + 1, v, 3); /* unaligned */
    assert_memory_equal(buf + 1, want, sizeof want);
    float back[3] = {0};
    gb_wire_floats_from_le(back, buf + 1, 3);
    assert_memory_equal(back, v, sizeof v);
    float untouched = 7.0f;
    gb_wire_floats_from_le(&untouched, NULL, 0);
    gb_wire_floats_to_le(NULL, &untouched, 0);
    assert_true(untouched == 7.0f);
}

static void test_budget_allocator(void **state)
{
    (void)state;
    gb_wire_budget_t b = gb_wire_budget(100);
    assert_int_equal(b.limit, 200 + (64 << 10));
    assert_true(gb_wire_budget(SIZE_MAX / 2).limit == SIZE_MAX); /* saturates */
    b.limit = 100;
    ProtobufCAllocator a = gb_wire_budget_allocator(&b);
    void *p = a.alloc(a.allocator_data, 60);
    assert_non_null(p);
    assert_int_equal(b.used, 60);
    assert_null(a.alloc(a.allocator_data, 41)); /* over the budget */
    assert_true(b.over);
    assert_false(b.out_of_mem);
    gb_alloc_fail_after(1);
    assert_null(a.alloc(a.allocator_data, 10)); /* within it, but gb_malloc fails */
    assert_true(b.out_of_mem);
    gb_alloc_fail_after(0);
    ProtobufCAllocator *plain = gb_wire_allocator();
    plain->free(plain->allocator_data, p); /* frees what the budget gave */
    void *q = plain->alloc(plain->allocator_data, 1 << 20);
    assert_non_null(q);
    a.free(a.allocator_data, q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_rule),
        cmocka_unit_test(test_sha256_known_answers),
        cmocka_unit_test(test_openssl_error_drain),
        cmocka_unit_test(test_budget_allocator),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_float_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
