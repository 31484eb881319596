/* Tests for util/time: the monotonic clock never goes back, and the wall
 * clock in milliseconds agrees with time(2). */
#include "testutil.h"

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
    assert_true(ms / 1000 >= (uint64_t)before);
    assert_true(ms / 1000 <= (uint64_t)after);
    assert_true(ms > (uint64_t)1700000000 * 1000); /* after November 2023 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_unix_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
