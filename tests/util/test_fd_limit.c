/* Tests for util/fd_limit: the count follows open and close; raising to a
 * need within the hard limit sets the soft limit to it; 0 asks for the most
 * (the hard limit, at most GB_FD_LIMIT_CAP); a need above the hard limit is
 * refused naming both and the ways to raise it, changing nothing. */
#include "testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/fd_limit.h"

static void test_count(void **state)
{
    (void)state;
    long before = gb_fd_count();
    assert_true(before >= 3);
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(gb_fd_count(), before + 1);
    close(fd);
    assert_int_equal(gb_fd_count(), before);
}

static void test_raise(void **state)
{
    (void)state;
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    gb_error_t err = {0};
    /* lowered soft limit: a need within the hard limit is granted exactly */
    struct rlimit low = saved;
    low.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    uint64_t got = 0;
    assert_int_equal(gb_fd_limit_raise(100, "a test", &got, &err), 0);
    assert_int_equal(got, 100);
    assert_int_equal(gb_fd_limit(), 100);
    /* already enough: unchanged */
    assert_int_equal(gb_fd_limit_raise(50, "a test", &got, &err), 0);
    assert_int_equal(got, 100);
    /* the most: the hard limit, capped */
    assert_int_equal(gb_fd_limit_raise(0, NULL, &got, &err), 0);
    uint64_t hard = saved.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)saved.rlim_max;
    assert_int_equal(got, hard < GB_FD_LIMIT_CAP ? hard : GB_FD_LIMIT_CAP);
    /* past the hard limit: refused, nothing changed */
    if (hard < UINT64_MAX) {
        assert_int_equal(gb_fd_limit_raise(hard + 1, "--virtual 9999", &got, &err), GB_ERANGE);
        char want[64];
        snprintf(want, sizeof want, "hard limit is %" PRIu64, hard);
        assert_non_null(strstr(err.msg, want));
        assert_non_null(strstr(err.msg, "--virtual 9999"));
        assert_non_null(strstr(err.msg, "LimitNOFILE="));
        assert_int_equal(gb_fd_limit(), got);
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_raise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
