/* Tests for util/error: gb_strerror for every code, gb_error_set and
 * gb_error_prefix (formatting, return values, NULL buffers, truncation at
 * GB_ERROR_MSG_MAX - 1 characters, never an overrun), gb_error_clear.
 * Doubles as the usage example:
 *
 *     if (bad)
 *         return gb_error_set(err, GB_EINVAL, "batch %d out of range", b);
 *     ...
 *     if ((rc = load(path, err)))
 *         return gb_error_prefix(err, rc, "%s: ", path);
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

static void test_strerror(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *text;
    } codes[] = {
        {GB_OK, "success"},
        {GB_EINVAL, "invalid argument"},
        {GB_ENOMEM, "out of memory"},
        {GB_EIO, "input/output error"},
        {GB_EFORMAT, "malformed data"},
        {GB_ESHAPE, "shape mismatch"},
        {GB_ERANGE, "value out of range"},
        {GB_ESPEC, "bad model spec"},
        {GB_EINTEGRITY, "integrity check failed"},
        {GB_EPROTO, "protocol error"},
        {GB_ECRYPTO, "cryptographic failure"},
        {GB_EUSAGE, "bad usage"},
        {GB_EAGAIN, "try again later"},
        {GB_ECLOSED, "connection closed"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_string_equal(gb_strerror(codes[i].code), codes[i].text);
    /* The codes are distinct and negative (0 for success). */
    for (size_t i = 1; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i].code < 0);
        for (size_t j = 1; j < i; j++)
            assert_int_not_equal(codes[i].code, codes[j].code);
    }
    assert_string_equal(gb_strerror(1), "unknown error");
    assert_string_equal(gb_strerror(-14), "unknown error");
    assert_string_equal(gb_strerror(-1000000), "unknown error");
}

static void test_set(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_int_equal(gb_error_set(&err, GB_ESHAPE, "batch %d of %s", 9, "model"), GB_ESHAPE);
    assert_int_equal(err.code, GB_ESHAPE);
    assert_string_equal(err.msg, "batch 9 of model");
    /* A second set replaces the first. */
    assert_int_equal(gb_error_set(&err, GB_EIO, "x"), GB_EIO);
    assert_int_equal(err.code, GB_EIO);
    assert_string_equal(err.msg, "x");
    /* NULL buffer: the code is still returned. */
    assert_int_equal(gb_error_set(NULL, GB_ENOMEM, "ignored %d", 1), GB_ENOMEM);
}

static void test_set_truncates(void **state)
{
    (void)state;
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* A guard after the buffer shows nothing is written past it. */
    struct {
        gb_error_t err;
        char guard[64];
    } s;
    memset(&s, 0x5a, sizeof s);
    assert_int_equal(gb_error_set(&s.err, GB_EINVAL, "%s", big), GB_EINVAL);
    assert_int_equal(strlen(s.err.msg), GB_ERROR_MSG_MAX - 1);
    assert_int_equal(s.err.msg[GB_ERROR_MSG_MAX - 1], '\0');
    for (size_t i = 0; i < sizeof s.guard; i++)
        assert_int_equal((unsigned char)s.guard[i], 0x5a);
}

static void test_prefix(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_error_set(&err, GB_EFORMAT, "bad header");
    /* Keeps the existing code and returns it. */
    assert_int_equal(gb_error_prefix(&err, GB_EIO, "file %s: ", "x.idx"), GB_EFORMAT);
    assert_int_equal(err.code, GB_EFORMAT);
    assert_string_equal(err.msg, "file x.idx: bad header");
    /* Prefixes stack, innermost last. */
    gb_error_prefix(&err, GB_EIO, "loading: ");
    assert_string_equal(err.msg, "loading: file x.idx: bad header");

    /* On a clear buffer it sets the given code. */
    gb_error_t clear = {0};
    assert_int_equal(gb_error_prefix(&clear, GB_EIO, "ctx %d: ", 3), GB_EIO);
    assert_int_equal(clear.code, GB_EIO);
    assert_string_equal(clear.msg, "ctx 3: ");
    /* NULL buffer: returns the given code. */
    assert_int_equal(gb_error_prefix(NULL, GB_ERANGE, "x"), GB_ERANGE);
    /* An empty prefix changes nothing. */
    gb_error_prefix(&err, GB_EIO, "%s", "");
    assert_string_equal(err.msg, "loading: file x.idx: bad header");
}

static void test_prefix_truncates(void **state)
{
    (void)state;
    char big[1500];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* A full message: the prefix is kept whole, the old text is cut. */
    gb_error_t err = {0};
    gb_error_set(&err, GB_EIO, "%s", big);
    gb_error_prefix(&err, GB_EIO, "PREFIX: ");
    assert_int_equal(strlen(err.msg), GB_ERROR_MSG_MAX - 1);
    assert_memory_equal(err.msg, "PREFIX: mmm", 11);
    assert_int_equal(err.msg[GB_ERROR_MSG_MAX - 2], 'm');
    /* A prefix longer than the buffer: truncated prefix, no old text. */
    memset(big, 'p', sizeof big - 1);
    gb_error_set(&err, GB_EIO, "old");
    struct {
        gb_error_t err;
        char guard[64];
    } s;
    memset(&s, 0x5a, sizeof s);
    s.err = err;
    gb_error_prefix(&s.err, GB_EIO, "%s", big);
    assert_int_equal(strlen(s.err.msg), GB_ERROR_MSG_MAX - 1);
    assert_null(strstr(s.err.msg, "old"));
    for (size_t i = 0; i < sizeof s.guard; i++)
        assert_int_equal((unsigned char)s.guard[i], 0x5a);
    /* Exactly filling: 500 + 11 = 511 characters, nothing lost. */
    char old[501];
    memset(old, 'o', 500);
    old[500] = '\0';
    gb_error_set(&err, GB_EIO, "%s", old);
    gb_error_prefix(&err, GB_EIO, "%s", "0123456789:");
    assert_int_equal(strlen(err.msg), 511);
    assert_int_equal(err.msg[510], 'o');
    assert_memory_equal(err.msg, "0123456789:o", 12);
}

static void test_clear(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_error_set(&err, GB_EIO, "something");
    gb_error_clear(&err);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.msg, "");
    gb_error_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_set_truncates),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_prefix_truncates),
        cmocka_unit_test(test_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
