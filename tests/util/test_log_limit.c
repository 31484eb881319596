/* Tests for util/log_limit: a burst, then the rate; each source its own
 * budget; suppressed lines counted and reset when taken; bad settings
 * raised to usable ones. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "util/log_limit.h"

static void test_burst_then_rate(void **state)
{
    (void)state;
    gb_log_limiter_t l;
    gb_log_limit_init(&l, 5, 20);
    int written = 0;
    for (int i = 0; i < 1000; i++)
        written += gb_log_limit_allow(&l, "10.0.0.1", 8, 100.0);
    assert_int_equal(written, 20);
    assert_int_equal(gb_log_limit_take_suppressed(&l), 980);
    assert_int_equal(gb_log_limit_take_suppressed(&l), 0);
    /* two seconds later: ten more lines, not a new burst */
    written = 0;
    for (int i = 0; i < 1000; i++)
        written += gb_log_limit_allow(&l, "10.0.0.1", 8, 102.0);
    assert_int_equal(written, 10);
    /* long quiet: the burst again, never more */
    written = 0;
    for (int i = 0; i < 1000; i++)
        written += gb_log_limit_allow(&l, "10.0.0.1", 8, 1e6);
    assert_int_equal(written, 20);
}

static void test_sources_apart(void **state)
{
    (void)state;
    gb_log_limiter_t l;
    gb_log_limit_init(&l, 1, 3);
    for (int i = 0; i < 100; i++)
        gb_log_limit_allow(&l, "flood", 5, 1.0);
    /* another source, unless it shares the flood's bucket, is unaffected */
    int free_sources = 0;
    for (int s = 0; s < 200; s++) {
        char key[16];
        snprintf(key, sizeof key, "peer-%d", s);
        free_sources += gb_log_limit_allow(&l, key, strlen(key), 1.0);
    }
    assert_true(free_sources >= 150);
}

static void test_settings_raised(void **state)
{
    (void)state;
    gb_log_limiter_t l;
    gb_log_limit_init(&l, 0, 0);
    assert_true(gb_log_limit_allow(&l, "a", 1, 0.0));
    assert_false(gb_log_limit_allow(&l, "a", 1, 0.0));
    assert_true(gb_log_limit_allow(&l, "a", 1, 1.5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_sources_apart),
        cmocka_unit_test(test_settings_raised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
