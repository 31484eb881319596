/* Tests for util/time: the monotonic clock never goes back, the wall
 * clock in milliseconds agrees with time(2), and times are written as RFC
 * 3339 UTC text (or as their seconds when no calendar holds them). */
#include "testutil.h"

#include <stdint.h>
#include <time.h>

#include "util/time.h"

static void test_monotonic(void **state)
{
    (void)state;
    double a = gb_time_now();
    double b = gb_time_now();
    assert_true(a > 0);
    assert_true(b >= a);
}

static void test_unix_ms(void **state)
{
    (void)state;
    time_t before = time(NULL);
    uint64_t ms = gb_time_unix_ms();
    time_t after = time(NULL);
    /* glibc's time(2) reads the coarse clock, which trails CLOCK_REALTIME
     * by up to a tick: just after a second begins, `after` may still name
     * the one before (seen once in CI's unit run). */
    assert_true(ms / 1000 >= (uint64_t)before);
    assert_true(ms / 1000 <= (uint64_t)after + 1);
    assert_true(ms > (uint64_t)1700000000 * 1000); /* after November 2023 */
}

static void test_format_utc(void **state)
{
    (void)state;
    char out[GB_TIME_UTC_MAX];
    gb_time_format_utc(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    gb_time_format_utc(1769860800, out);
    assert_string_equal(out, "2026-01-31T12:00:00Z");
    gb_time_format_utc(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59Z");
    /* past any calendar year the library holds: the seconds, in full */
    gb_time_format_utc(INT64_MAX, out);
    assert_string_equal(out, "9223372036854775807");
    gb_time_format_utc(INT64_MIN, out);
    assert_string_equal(out, "-9223372036854775808");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_unix_ms),
        cmocka_unit_test(test_format_utc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
