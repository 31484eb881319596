/* Tests of util/process.c: gb_process_pin_blas re-executes the program with
 * OPENBLAS_NUM_THREADS=1 when it is not already so, and with
 * OPENBLAS_CORETYPE=Haswell when OpenBLAS chose a core weaker than the CPU,
 * and never loops. The test binary re-executes itself: run with "--report"
 * it prints the variables and how often it has started. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/process.h"

static char *s_self;

/* Runs this binary with --report in a child whose OPENBLAS_NUM_THREADS is
 * `value` and OPENBLAS_CORETYPE `core` (NULL: unset); returns what it
 * printed (malloc'd). */
static char *s_run(const char *value, const char *core)
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
        if (core)
            setenv("OPENBLAS_CORETYPE", core, 1);
        else
            unsetenv("OPENBLAS_CORETYPE");
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
    char *out = s_run(NULL, "Haswell");
    assert_string_equal(out, "threads=1 core=Haswell starts=2\n"); /* re-executed once */
    free(out);
    out = s_run("4", "Haswell");
    assert_string_equal(out, "threads=1 core=Haswell starts=2\n");
    free(out);
    out = s_run("1", "Haswell");
    assert_string_equal(out, "threads=1 core=Haswell starts=1\n"); /* nothing to do */
    free(out);
    out = s_run("1", "Prescott"); /* the user's choice is kept */
    assert_string_equal(out, "threads=1 core=Prescott starts=1\n");
    free(out);
}

/* With OPENBLAS_CORETYPE unset, OpenBLAS's own choice stands when it is an
 * AVX2 core (or the CPU has no AVX2), and is replaced by Haswell, in one
 * re-execution, when it is weaker than the CPU. */
static void test_weak_core_replaced(void **state)
{
    (void)state;
    char *out = s_run("1", NULL);
    if (strcmp(out, "threads=1 core=(none) starts=1\n") != 0)
        assert_string_equal(out, "threads=1 core=Haswell starts=2\n");
    free(out);
}

static void test_core_judgement(void **state)
{
    (void)state;
    assert_false(gb_process_blas_core_too_weak(NULL));
    assert_false(gb_process_blas_core_too_weak("Haswell"));
    assert_false(gb_process_blas_core_too_weak("SkylakeX"));
    assert_false(gb_process_blas_core_too_weak("zen"));
#if defined(__x86_64__)
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    assert_int_equal(gb_process_blas_core_too_weak("Prescott"), avx2);
    assert_int_equal(gb_process_blas_core_too_weak("Sandybridge"), avx2);
#else
    assert_false(gb_process_blas_core_too_weak("Prescott"));
#endif
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--report") == 0) {
        const char *starts = getenv("GB_TEST_STARTS");
        char next[32];
        snprintf(next, sizeof next, "%ld", starts ? strtol(starts, NULL, 10) + 1 : 1L);
        setenv("GB_TEST_STARTS", next, 1);
        gb_process_pin_blas(argv);
        const char *core = getenv("OPENBLAS_CORETYPE");
        printf("threads=%s core=%s starts=%s\n", getenv("OPENBLAS_NUM_THREADS"),
               core ? core : "(none)", getenv("GB_TEST_STARTS"));
        return 0;
    }
    s_self = realpath("/proc/self/exe", NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pins_once),
        cmocka_unit_test(test_weak_core_replaced),
        cmocka_unit_test(test_core_judgement),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(s_self);
    return rc;
}
