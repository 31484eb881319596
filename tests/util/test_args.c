/* Tests of client/args.c: the option table parser behind every command. */
#include "testutil.h"

#include "util/args.h"

#include <string.h>

typedef struct {
    int epochs;
    uint64_t seed;
    double lr;
    const char *name;
    const char *opt;
    bool json;
} s_vals_t;

static int s_parse(s_vals_t *v, gb_arg_t *opts, int argc, char **argv, bool *help,
                   gb_error_t *err)
{
    (void)v;
    return gb_args_parse(opts, 6, argc, argv, help, err);
}

#define OPTS(v)                                                                                 \
    gb_arg_t opts[] = {                                                                         \
        {"--epochs", GB_ARG_INT, &(v).epochs, 1, 100, NULL, "epochs", false},                   \
        {"--seed", GB_ARG_U64, &(v).seed, 0, 0, NULL, "seed", false},                           \
        {"--lr", GB_ARG_FLOAT, &(v).lr, 1e-6, 10, NULL, "learning rate", false},                \
        {"--name", GB_ARG_STRING, &(v).name, 0, 0, NULL, "a name", false},                      \
        {"--optimizer", GB_ARG_CHOICE, &(v).opt, 0, 0, "sgd|adam", "optimiser", false},         \
        {"--json", GB_ARG_FLAG, &(v).json, 0, 0, NULL, "json", false},                          \
    }

static void test_parses_every_kind(void **state)
{
    (void)state;
    s_vals_t v = {0};
    OPTS(v);
    char *argv[] = {"--epochs", "7", "--seed=18446744073709551615", "--lr", "0.5",
                    "--name", "x y", "--optimizer", "adam", "--json"};
    bool help = true;
    gb_error_t err = {0};
    assert_int_equal(s_parse(&v, opts, 10, argv, &help, &err), 0);
    assert_false(help);
    assert_int_equal(v.epochs, 7);
    assert_true(v.seed == UINT64_MAX);
    assert_true(v.lr == 0.5);
    assert_string_equal(v.name, "x y");
    assert_string_equal(v.opt, "adam");
    assert_true(v.json);
    assert_true(gb_args_find(opts, 6, "--lr")->seen);
    assert_null(gb_args_find(opts, 6, "--nope"));
}

static void test_help_stops(void **state)
{
    (void)state;
    s_vals_t v = {0};
    OPTS(v);
    char *argv[] = {"--epochs", "2", "-h", "--bogus"};
    bool help = false;
    gb_error_t err = {0};
    assert_int_equal(s_parse(&v, opts, 4, argv, &help, &err), 0);
    assert_true(help);
    assert_int_equal(v.epochs, 2);
}

static void test_errors_name_flag_and_reason(void **state)
{
    (void)state;
    static const struct {
        int argc;
        char *argv[2];
        const char *msg;
    } cases[] = {
        {2, {"--epochs", "x"}, "--epochs: expected an integer in 1..100, got 'x'"},
        {2, {"--epochs", "101"}, "--epochs: expected an integer in 1..100, got '101'"},
        {2, {"--epochs", "3junk"}, "--epochs: expected an integer"},
        {2, {"--epochs", "99999999999999999999"}, "--epochs: expected an integer"},
        {2, {"--seed", "-1"}, "--seed: expected a non-negative integer, got '-1'"},
        {2, {"--seed", "1e3"}, "--seed: expected a non-negative integer"},
        {2, {"--seed", " -1"}, "--seed: unexpected blank before '-1'"},
        {2, {"--epochs", " 3"}, "--epochs: unexpected blank"},
        {2, {"--lr", "inf"}, "--lr: expected a number in 1e-06..10, got 'inf'"},
        {2, {"--lr", "nan"}, "--lr: expected a number"},
        {2, {"--lr", "0"}, "--lr: expected a number"},
        {2, {"--optimizer", "rmsprop"}, "--optimizer: expected one of sgd|adam, got 'rmsprop'"},
        {2, {"--optimizer", "sg"}, "--optimizer: expected one of sgd|adam"},
        {2, {"--name", ""}, "--name: expected a value, got an empty string"},
        {1, {"--json=yes"}, "--json takes no value"},
        {1, {"--epochs"}, "--epochs needs a value"},
        {2, {"--bogus", "1"}, "unknown option '--bogus'"},
        {1, {"stray"}, "unexpected argument 'stray'"},
        {2, {"--json", "--json"}, "--json given twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_vals_t v = {0};
        OPTS(v);
        bool help = false;
        gb_error_t err = {0};
        assert_int_equal(s_parse(&v, opts, cases[i].argc, (char **)cases[i].argv, &help, &err),
                         GB_EUSAGE);
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: '%s' not in '%s'", i, cases[i].msg, err.msg);
    }
}

static void test_long_unknown_option_truncated(void **state)
{
    (void)state;
    s_vals_t v = {0};
    OPTS(v);
    char longopt[200];
    memset(longopt, 'x', sizeof longopt - 1);
    longopt[0] = longopt[1] = '-';
    longopt[sizeof longopt - 1] = '\0';
    char *argv[] = {longopt};
    bool help = false;
    gb_error_t err = {0};
    assert_int_equal(s_parse(&v, opts, 1, argv, &help, &err), GB_EUSAGE);
    assert_non_null(strstr(err.msg, "unknown option"));
}

static void test_print_help(void **state)
{
    (void)state;
    s_vals_t v = {0};
    OPTS(v);
    /* Writes to stdout; this checks it runs over every kind without fault. */
    gb_args_print_help(opts, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_every_kind),
        cmocka_unit_test(test_help_stops),
        cmocka_unit_test(test_errors_name_flag_and_reason),
        cmocka_unit_test(test_long_unknown_option_truncated),
        cmocka_unit_test(test_print_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
