/* Tests of util/process.c: gb_process_pin_blas re-executes the program with
 * OPENBLAS_NUM_THREADS=1 when it is not already so, and never loops. The test
 * binary re-executes itself: run with "--report" it prints the variable and
 * how often it has started. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/process.h"

static char *s_self;

/* Runs this binary with --report in a child whose OPENBLAS_NUM_THREADS is
 * `value` (NULL: unset); returns what it printed (malloc'd). */
static char *s_run(const char *value)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        unsetenv("GLASSBOX_BLAS_PINNED");
        unsetenv("GB_TEST_STARTS");
        if (value)
            setenv("OPENBLAS_NUM_THREADS", value, 1);
        else
            unsetenv("OPENBLAS_NUM_THREADS");
        char *argv[] = {s_self, "--report", NULL};
        execv(s_self, argv);
        _exit(127);
    }
    close(fds[1]);
    char *buf = calloc(1, 256);
    assert_non_null(buf);
    ssize_t n = read(fds[0], buf, 255);
    assert_true(n > 0);
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return buf;
}

static void test_pins_once(void **state)
{
    (void)state;
    char *out = s_run(NULL);
    assert_string_equal(out, "threads=1 starts=2\n"); /* re-executed once */
    free(out);
    out = s_run("4");
    assert_string_equal(out, "threads=1 starts=2\n");
    free(out);
    out = s_run("1");
    assert_string_equal(out, "threads=1 starts=1\n"); /* already pinned: no exec */
    free(out);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--report") == 0) {
        const char *starts = getenv("GB_TEST_STARTS");
        char next[32];
        snprintf(next, sizeof next, "%ld", starts ? strtol(starts, NULL, 10) + 1 : 1L);
        setenv("GB_TEST_STARTS", next, 1);
        gb_process_pin_blas(argv);
        printf("threads=%s starts=%s\n", getenv("OPENBLAS_NUM_THREADS"),
               getenv("GB_TEST_STARTS"));
        return 0;
    }
    s_self = realpath("/proc/self/exe", NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pins_once),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(s_self);
    return rc;
}
