/* Tests for util/crash_point: without GLASSBOX_TEST_CRASH_AT, or with
 * another name, a crash point returns; with its name, the process dies of
 * SIGKILL there (checked in a child). */
#include "testutil.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/crash_point.h"

static void test_returns_unless_named(void **state)
{
    (void)state;
    unsetenv("GLASSBOX_TEST_CRASH_AT");
    gb_crash_point("latest");
    setenv("GLASSBOX_TEST_CRASH_AT", "sig", 1);
    gb_crash_point("latest");
    gb_crash_point("si");
    unsetenv("GLASSBOX_TEST_CRASH_AT");
}

static void test_dies_when_named(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("GLASSBOX_TEST_CRASH_AT", "latest", 1);
        gb_crash_point("latest");
        _exit(0); /* not reached */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_returns_unless_named),
        cmocka_unit_test(test_dies_when_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
