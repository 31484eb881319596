/* Tests for util/hex: known answers both ways, round trips, and every
 * refusal: an output buffer too small (by one, and empty), odd-length text,
 * a non-hex character at each position (its offset named, the text never
 * echoed, the output wiped), NULL arguments. */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/hex.h"

static void test_encode_known_answer(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[13];
    gb_error_t err;
    assert_int_equal(gb_hex_encode(in, sizeof in, out, sizeof out, &err), 0);
    assert_string_equal(out, "00017f80abff");

    /* Nothing to encode: the empty string, and in may be NULL. */
    char one[1] = {'x'};
    assert_int_equal(gb_hex_encode(NULL, 0, one, sizeof one, NULL), 0);
    assert_int_equal(one[0], '\0');
}

static void test_encode_buffer_too_small(void **state)
{
    (void)state;
    const uint8_t in[4] = {1, 2, 3, 4};
    gb_error_t err;
    /* 2n + 1 fits exactly; 2n (no room for the NUL) does not. */
    char out[9 + 4];
    memset(out, '#', sizeof out);
    assert_int_equal(gb_hex_encode(in, 4, out, 9, &err), 0);
    assert_string_equal(out, "01020304");
    assert_int_equal(out[9], '#');

    memset(out, '#', sizeof out);
    assert_int_equal(gb_hex_encode(in, 4, out, 8, &err), GB_ERANGE);
    assert_int_equal(err.code, GB_ERANGE);
    assert_non_null(strstr(err.msg, "holds 8"));
    assert_int_equal(out[0], '\0'); /* nothing half-written passes for a hash */
    for (size_t i = 1; i < sizeof out; i++)
        assert_int_equal(out[i], '#');

    /* An empty buffer is not written at all. */
    out[0] = '#';
    assert_int_equal(gb_hex_encode(in, 4, out, 0, &err), GB_ERANGE);
    assert_int_equal(out[0], '#');
    assert_int_equal(gb_hex_encode(NULL, 0, out, 0, NULL), GB_ERANGE);

    /* A length whose 2n + 1 would overflow is refused, not wrapped. */
    assert_int_equal(gb_hex_encode(in, SIZE_MAX / 2 + 1, out, sizeof out, &err), GB_ERANGE);
    assert_int_equal(gb_hex_encode(in, SIZE_MAX, out, SIZE_MAX, &err), GB_ERANGE);
}

static void test_encode_null_arguments(void **state)
{
    (void)state;
    const uint8_t in[2] = {1, 2};
    char out[5] = "xxxx";
    gb_error_t err;
    assert_int_equal(gb_hex_encode(in, 2, NULL, 5, &err), GB_ERANGE);
    assert_int_equal(gb_hex_encode(NULL, 2, out, sizeof out, &err), GB_EINVAL);
    assert_int_equal(out[0], '\0');
}

static void test_decode_known_answer(void **state)
{
    (void)state;
    uint8_t out[8];
    gb_error_t err;
    /* Either case; only hex_len characters are read (no NUL needed). */
    const char text[] = "00017f80ABffXYZ";
    memset(out, 0xee, sizeof out);
    assert_int_equal(gb_hex_decode(text, 12, out, sizeof out, &err), 0);
    const uint8_t want[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(out[6], 0xee); /* beyond hex_len / 2: untouched */

    /* Empty text decodes to nothing, whatever the buffer. */
    assert_int_equal(gb_hex_decode("", 0, NULL, 0, &err), 0);
    assert_int_equal(gb_hex_decode(NULL, 0, out, sizeof out, &err), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t in[256], back[256];
    char text[2 * sizeof in + 1];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)i;
    assert_int_equal(gb_hex_encode(in, sizeof in, text, sizeof text, NULL), 0);
    assert_int_equal(strlen(text), 2 * sizeof in);
    assert_int_equal(gb_hex_decode(text, strlen(text), back, sizeof back, NULL), 0);
    assert_memory_equal(in, back, sizeof in);
}

static void test_decode_odd_length(void **state)
{
    (void)state;
    uint8_t out[4];
    gb_error_t err;
    memset(out, 0xee, sizeof out);
    assert_int_equal(gb_hex_decode("abc", 3, out, sizeof out, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "odd"));
    assert_int_equal(out[0], 0); /* hex_len / 2 = 1 byte wiped */
    assert_int_equal(out[1], 0xee);
    assert_int_equal(gb_hex_decode("a", 1, out, sizeof out, &err), GB_EFORMAT);
    /* Odd length is named before a bad character or a small buffer. */
    assert_int_equal(gb_hex_decode("zzz", 3, out, 0, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "odd"));
}

static void test_decode_buffer_too_small(void **state)
{
    (void)state;
    uint8_t out[4];
    gb_error_t err;
    memset(out, 0xee, sizeof out);
    assert_int_equal(gb_hex_decode("0102030405", 10, out, 4, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "holds 4"));
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(out[i], 0); /* wiped up to the buffer's size, not past */
    assert_int_equal(gb_hex_decode("0102", 4, out, 2, &err), 0);
    assert_int_equal(gb_hex_decode("0102", 4, NULL, 0, &err), GB_ERANGE);
}

static void test_decode_non_hex(void **state)
{
    (void)state;
    /* A 64-digit token with one bad character at each position in turn. */
    static const char bad_chars[] = {'g', 'G', 'x', ' ', '-', '\n', '\0', (char)0x80, (char)0xff,
                                     '/', ':', '@', '`'};
    char text[65];
    uint8_t out[32];
    gb_error_t err;
    for (size_t b = 0; b < sizeof bad_chars; b++) {
        for (size_t pos = 0; pos < 64; pos++) {
            memset(text, 'a', 64);
            text[64] = '\0';
            text[pos] = bad_chars[b];
            memset(out, 0xee, sizeof out);
            assert_int_equal(gb_hex_decode(text, 64, out, sizeof out, &err), GB_EFORMAT);
            char want[64];
            snprintf(want, sizeof want, "character %zu of 64", pos);
            assert_non_null(strstr(err.msg, want));
            assert_null(strstr(err.msg, "aaaa")); /* the text is never echoed */
            for (size_t i = 0; i < sizeof out; i++)
                assert_int_equal(out[i], 0);
        }
    }
    /* Two bad characters: the first is named. */
    assert_int_equal(gb_hex_decode("00zz0y", 6, out, sizeof out, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "character 2 of 6"));
    /* No err: the code alone. */
    assert_int_equal(gb_hex_decode("0g", 2, out, sizeof out, NULL), GB_EFORMAT);
}

static void test_decode_null_arguments(void **state)
{
    (void)state;
    uint8_t out[2];
    gb_error_t err;
    assert_int_equal(gb_hex_decode(NULL, 4, out, sizeof out, &err), GB_EINVAL);
    assert_int_equal(gb_hex_decode("0102", 4, NULL, 2, &err), GB_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_known_answer),
        cmocka_unit_test(test_encode_buffer_too_small),
        cmocka_unit_test(test_encode_null_arguments),
        cmocka_unit_test(test_decode_known_answer),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_odd_length),
        cmocka_unit_test(test_decode_buffer_too_small),
        cmocka_unit_test(test_decode_non_hex),
        cmocka_unit_test(test_decode_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
