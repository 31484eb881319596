/* Tests for util/subcommand: the usage text (padding, the two blanks after a
 * long name, unlisted aliases, the footer), dispatch to the named entry with
 * the arguments after the name, --help/-h/help on stdout with 0, no name and
 * an unknown name on stderr with 2 and the error line. stdout and stderr are
 * captured by pointing the descriptors at temporary files. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/subcommand.h"

static int s_calls;       /* entry calls seen */
static int s_last_argc;   /* argc the last entry got */
static char **s_last_argv; /* argv the last entry got */

static int s_alpha(int argc, char **argv)
{
    s_calls++;
    s_last_argc = argc;
    s_last_argv = argv;
    return 7;
}

static int s_beta(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    s_calls++;
    return 0;
}

static const gb_subcommand_t s_subs[] = {
    {"alpha", s_alpha, "first thing"},
    {"longername", s_beta, "second thing"},
    {"--alpha", s_alpha, NULL},
};

static const gb_subcommand_set_t s_set = {
    .program = "prog group",
    .noun = "subcommand",
    .subs = s_subs,
    .n_subs = 3,
    .width = 8,
    .footer = "'prog group <subcommand> --help' says more.",
};

static const char *s_usage_text = "usage: prog group <subcommand> [options]\n\n"
                                  "subcommands:\n"
                                  "  alpha    first thing\n"
                                  "  longername  second thing\n"
                                  "\n'prog group <subcommand> --help' says more.\n";

/* Captured output of one dispatch call. */
typedef struct {
    int rc;          /* what dispatch returned */
    char out[2048];  /* what went to stdout */
    char err[2048];  /* what went to stderr */
} s_run_t;

static void s_slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
}

static s_run_t s_dispatch(int argc, char **argv)
{
    s_run_t r;
    FILE *o = tmpfile(), *e = tmpfile();
    assert_non_null(o);
    assert_non_null(e);
    fflush(stdout);
    fflush(stderr);
    int save_out = dup(1), save_err = dup(2);
    assert_true(save_out >= 0 && save_err >= 0);
    assert_true(dup2(fileno(o), 1) >= 0);
    assert_true(dup2(fileno(e), 2) >= 0);
    r.rc = gb_subcommand_dispatch(&s_set, argc, argv);
    fflush(stdout);
    fflush(stderr);
    assert_true(dup2(save_out, 1) >= 0);
    assert_true(dup2(save_err, 2) >= 0);
    close(save_out);
    close(save_err);
    s_slurp(o, r.out, sizeof r.out);
    s_slurp(e, r.err, sizeof r.err);
    fclose(o);
    fclose(e);
    return r;
}

static void test_usage_text(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    gb_subcommand_usage(&s_set, f);
    fclose(f);
    assert_string_equal(buf, s_usage_text);
    free(buf);
}

static void test_dispatch_runs_the_named_entry(void **state)
{
    (void)state;
    char *argv[] = {"alpha", "--x", "1", NULL};
    s_calls = 0;
    s_run_t r = s_dispatch(3, argv);
    assert_int_equal(r.rc, 7);
    assert_int_equal(s_calls, 1);
    assert_int_equal(s_last_argc, 2);
    assert_ptr_equal(s_last_argv, argv + 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "");

    /* an unlisted alias dispatches like its entry */
    char *alias[] = {"--alpha", NULL};
    r = s_dispatch(1, alias);
    assert_int_equal(r.rc, 7);
    assert_int_equal(s_calls, 2);
    assert_int_equal(s_last_argc, 0);

    char *beta[] = {"longername", NULL};
    r = s_dispatch(1, beta);
    assert_int_equal(r.rc, 0);
    assert_int_equal(s_calls, 3);
}

static void test_help_goes_to_stdout(void **state)
{
    (void)state;
    const char *names[] = {"--help", "-h", "help"};
    for (size_t i = 0; i < 3; i++) {
        char *argv[] = {(char *)names[i], "alpha", NULL};
        s_calls = 0;
        s_run_t r = s_dispatch(2, argv);
        assert_int_equal(r.rc, 0);
        assert_int_equal(s_calls, 0);
        assert_string_equal(r.out, s_usage_text);
        assert_string_equal(r.err, "");
    }
}

static void test_missing_name_is_usage_on_stderr(void **state)
{
    (void)state;
    char *argv[] = {NULL};
    s_calls = 0;
    s_run_t r = s_dispatch(0, argv);
    assert_int_equal(r.rc, 2);
    assert_int_equal(s_calls, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, s_usage_text);
}

static void test_unknown_name_is_refused(void **state)
{
    (void)state;
    /* a prefix, a case change and an alias's help text are not names */
    const char *names[] = {"alp", "ALPHA", "frob", ""};
    for (size_t i = 0; i < 4; i++) {
        char *argv[] = {(char *)names[i], NULL};
        s_calls = 0;
        s_run_t r = s_dispatch(1, argv);
        assert_int_equal(r.rc, 2);
        assert_int_equal(s_calls, 0);
        assert_string_equal(r.out, "");
        char want[512];
        snprintf(want, sizeof want, "prog group: unknown subcommand '%s'\n%s", names[i],
                 s_usage_text);
        assert_string_equal(r.err, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_text),
        cmocka_unit_test(test_dispatch_runs_the_named_entry),
        cmocka_unit_test(test_help_goes_to_stdout),
        cmocka_unit_test(test_missing_name_is_usage_on_stderr),
        cmocka_unit_test(test_unknown_name_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
