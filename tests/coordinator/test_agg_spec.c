/* Tests for coordinator/agg_spec: every rule's spec string parsed, printed
 * back in canonical form (BETA in the fewest digits, truncation reporting
 * the length needed) and its fewest updates; every malformed spec refused
 * with a message naming what is wrong and *out unchanged. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "agg_spec.h"
#include "util/log.h"

/* ---- spec strings ---------------------------------------------------------------- */

static void test_spec_parse(void **state)
{
    (void)state;
    gb_error_t err;
    gb_agg_spec_t s;
    char buf[96];
    static const struct {
        const char *in, *canon;
        gb_agg_rule_t rule;
        size_t min;
    } good[] = {
        {"fedavg", "fedavg", GB_AGG_FEDAVG, 1},
        {"median", "median", GB_AGG_MEDIAN, 1},
        {"trimmed_mean:0.1", "trimmed_mean:0.1", GB_AGG_TRIMMED_MEAN, 1},
        {"trimmed_mean:1e-1", "trimmed_mean:0.1", GB_AGG_TRIMMED_MEAN, 1},
        {"trimmed_mean:0", "trimmed_mean:0", GB_AGG_TRIMMED_MEAN, 1},
        {"trimmed_mean:-0", "trimmed_mean:0", GB_AGG_TRIMMED_MEAN, 1},
        {"trimmed_mean:.25", "trimmed_mean:0.25", GB_AGG_TRIMMED_MEAN, 1},
        {"trimmed_mean:0.49999", "trimmed_mean:0.49999", GB_AGG_TRIMMED_MEAN, 1},
        {"krum:0", "krum:0", GB_AGG_KRUM, 3},
        {"krum:2", "krum:2", GB_AGG_KRUM, 7},
        {"krum:007", "krum:7", GB_AGG_KRUM, 17},
        {"multi_krum:2:4", "multi_krum:2:4", GB_AGG_MULTI_KRUM, 7},
        {"multi_krum:1:9", "multi_krum:1:9", GB_AGG_MULTI_KRUM, 10},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        if (gb_agg_spec_parse(good[i].in, &s, &err) != 0)
            fail_msg("%s: %s", good[i].in, err.msg);
        assert_int_equal(s.rule, good[i].rule);
        size_t len = gb_agg_spec_format(&s, buf, sizeof buf);
        assert_string_equal(buf, good[i].canon);
        assert_int_equal(len, strlen(good[i].canon));
        assert_int_equal(gb_agg_spec_min_updates(&s), good[i].min);
    }
    assert_int_equal(gb_agg_spec_parse("multi_krum:3:5", &s, &err), 0);
    assert_int_equal(s.f, 3);
    assert_int_equal(s.m, 5);
    assert_int_equal(gb_agg_spec_parse("trimmed_mean:0.3", &s, &err), 0);
    assert_true(s.beta == 0.3);
    /* Truncation follows snprintf: the needed length comes back. */
    assert_int_equal(gb_agg_spec_format(&s, buf, 4), strlen("trimmed_mean:0.3"));
    assert_string_equal(buf, "tri");
}

static void test_spec_parse_bad(void **state)
{
    (void)state;
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "empty spec"},
        {"foo", "unknown rule 'foo'"},
        {"FedAvg", "unknown rule"},
        {"fedavg ", "unknown rule"},
        {"fedavg:1", "fedavg takes no parameter"},
        {"median:", "median takes no parameter"},
        {"trimmed_mean", "needs the fraction"},
        {"trimmed_mean:", "needs the fraction"},
        {"trimmed_mean:0.7", "trimmed_mean: beta 0.7 must be in [0, 0.5)"},
        {"trimmed_mean:0.5", "beta 0.5 must be in [0, 0.5)"},
        {"trimmed_mean:-0.1", "beta -0.1 must be in [0, 0.5)"},
        {"trimmed_mean:1e999", "must be in [0, 0.5)"},
        {"trimmed_mean:abc", "beta 'abc' is not a number"},
        {"trimmed_mean:0.1x", "beta '0.1x' is not a number"},
        {"trimmed_mean: 0.1", "is not a number"},
        {"trimmed_mean:nan", "is not a number"},
        {"trimmed_mean:inf", "is not a number"},
        {"krum", "krum: needs F"},
        {"krum:", "krum: needs F"},
        {"krum:-1", "F '-1' must be a whole number"},
        {"krum:1.5", "F '1.5' must be a whole number"},
        {"krum:100001", "must be a whole number 0..100000"},
        {"krum:99999999999999999999999", "must be a whole number"},
        {"krum:2:3", "krum: takes one parameter F"},
        {"multi_krum:2", "multi_krum: needs M"},
        {"multi_krum:2:", "M '' must be a whole number"},
        {"multi_krum:2:0", "M 0 must be at least 1"},
        {"multi_krum:x:1", "F 'x' must be a whole number"},
        {"multi_krum:1:2:3", "M '2:3' must be a whole number"},
        {"fedavgfedavgfedavgfedavgfedavgfedavgfedavgfedavgfedavgfedavgfedavg",
         "longer than 64 characters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gb_error_t err;
        gb_agg_spec_t s = {.rule = GB_AGG_MEDIAN, .beta = 0.25, .f = 42, .m = 43};
        assert_int_equal(gb_agg_spec_parse(bad[i].in, &s, &err), GB_EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].in, err.msg, bad[i].msg);
        /* Unchanged on failure. */
        assert_int_equal(s.rule, GB_AGG_MEDIAN);
        assert_true(s.beta == 0.25);
        assert_int_equal(s.f, 42);
        assert_int_equal(s.m, 43);
    }
    gb_error_t err;
    gb_agg_spec_t s;
    assert_int_equal(gb_agg_spec_parse(NULL, &s, &err), GB_EINVAL);
}

int main(void)
{
    gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_spec_parse_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
