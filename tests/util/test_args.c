/* Tests of common/util/args.c: the option table parser behind every command,
 * from argv and from configuration files. */
#include "testutil.h"

#include "util/alloc.h"
#include "util/args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- configuration files ---- */

/* A new file under /tmp holding data[0..len); returns its malloc'd path. */
static char *s_file(const void *data, size_t len)
{
    char path[] = "/tmp/gb_test_args_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    assert_int_equal(close(fd), 0);
    char *copy = strdup(path);
    assert_non_null(copy);
    return copy;
}

static char *s_conf(const char *text)
{
    return s_file(text, strlen(text));
}

static void s_remove(char *path)
{
    unlink(path);
    free(path);
}

/* A path under /tmp that does not exist. */
static char *s_missing_path(void)
{
    char *path = s_conf("");
    assert_int_equal(unlink(path), 0);
    return path;
}

/* Asserts that no option was set or marked seen (a refused file applies nothing). */
static void s_assert_untouched(const s_vals_t *v, const gb_arg_t *opts, int n)
{
    assert_int_equal(v->epochs, 0);
    assert_true(v->seed == 0 && v->lr == 0 && !v->json);
    assert_null(v->name);
    assert_null(v->opt);
    for (int i = 0; i < n; i++)
        assert_false(opts[i].seen);
}

static void test_config_every_kind(void **state)
{
    (void)state;
    s_vals_t v = {0};
    OPTS(v);
    char *path = s_conf("# the lab federation\n"
                        "\n"
                        "   \t\n"
                        "   # an indented comment\n"
                        "epochs = 7\n"
                        "\tseed=18446744073709551615  \n"
                        "lr = 0.5\r\n"
                        "name = \"  x y  \"\n"
                        "optimizer   =   adam\n"
                        "json = yes");
    gb_args_config_t *config = NULL;
    gb_error_t err = {0};
    assert_int_equal(gb_args_parse_config(opts, 6, path, &config, &err), 0);
    assert_non_null(config);
    assert_int_equal(v.epochs, 7);
    assert_true(v.seed == UINT64_MAX);
    assert_true(v.lr == 0.5);
    assert_string_equal(v.name, "  x y  ");
    assert_string_equal(v.opt, "adam");
    assert_true(v.json);
    for (int i = 0; i < 6; i++)
        assert_true(opts[i].seen);
    /* The strings live in config; they are valid until it is destroyed. */
    gb_args_config_destroy(&config);
    assert_null(config);
    gb_args_config_destroy(&config);
    gb_args_config_destroy(NULL);
    s_remove(path);
}

static void test_config_empty_file_and_bom(void **state)
{
    (void)state;
    s_vals_t v = {0};
    OPTS(v);
    char *path = s_conf("");
    gb_args_config_t *config = NULL;
    gb_error_t err = {0};
    assert_int_equal(gb_args_parse_config(opts, 6, path, &config, &err), 0);
    assert_non_null(config);
    s_assert_untouched(&v, opts, 6);
    gb_args_config_destroy(&config);
    s_remove(path);

    /* A byte-order mark is skipped; the last line needs no newline. */
    path = s_conf("\xEF\xBB\xBF"
                  "epochs = 3");
    assert_int_equal(gb_args_parse_config(opts, 6, path, &config, &err), 0);
    assert_int_equal(v.epochs, 3);
    gb_args_config_destroy(&config);
    s_remove(path);
}

static void test_config_values_verbatim(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *name;
    } cases[] = {
        {"name = \"a\"b\"", "a\"b"},           /* no escapes: first to last quote */
        {"name = a \"b\"", "a \"b\""},         /* quotes inside are kept */
        {"name = x # not a comment", "x # not a comment"},
        {"name = \"#x\"", "#x"},
        {"name = a=b", "a=b"},                 /* the first '=' splits */
        {"name = \"\t tabs \t\"", "\t tabs \t"},
        {"name = Z\xC3\xBCrich \xE2\x9C\x93 \xF0\x9D\x84\x9E", "Z\xC3\xBCrich \xE2\x9C\x93 \xF0\x9D\x84\x9E"},
        {"name = a\tb\r\n", "a\tb"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_vals_t v = {0};
        OPTS(v);
        char *path = s_conf(cases[i].text);
        gb_args_config_t *config = NULL;
        gb_error_t err = {0};
        if (gb_args_parse_config(opts, 6, path, &config, &err))
            fail_msg("case %zu: %s", i, err.msg);
        assert_string_equal(v.name, cases[i].name);
        gb_args_config_destroy(&config);
        s_remove(path);
    }
}

static void test_config_flag_spellings(void **state)
{
    (void)state;
    static const struct {
        const char *spelling;
        bool value;
    } cases[] = {{"true", true}, {"yes", true}, {"on", true},  {"1", true},
                 {"false", false}, {"no", false}, {"off", false}, {"0", false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_vals_t v = {.json = !cases[i].value};
        OPTS(v);
        char text[64];
        snprintf(text, sizeof text, "json = %s\n", cases[i].spelling);
        char *path = s_conf(text);
        gb_args_config_t *config = NULL;
        gb_error_t err = {0};
        assert_int_equal(gb_args_parse_config(opts, 6, path, &config, &err), 0);
        assert_true(v.json == cases[i].value);
        assert_true(gb_args_find(opts, 6, "--json")->seen); /* false was given too */
        gb_args_config_destroy(&config);
        s_remove(path);
    }
}

/* Parses text (len bytes) and asserts it is refused with code and exactly
 * the message "<path><suffix>", leaving the options untouched. */
static void s_assert_refused(const char *text, size_t len, int code, const char *suffix)
{
    s_vals_t v = {0};
    OPTS(v);
    char *path = s_file(text, len);
    gb_args_config_t *config = (gb_args_config_t *)&v; /* must come back NULL */
    gb_error_t err = {0};
    int rc = gb_args_parse_config(opts, 6, path, &config, &err);
    char expected[GB_ERROR_MSG_MAX];
    snprintf(expected, sizeof expected, "%s%s", path, suffix);
    if (rc != code || strcmp(err.msg, expected) != 0)
        fail_msg("'%s': got %d '%s', expected %d '%s'", text, rc, err.msg, code, expected);
    assert_null(config);
    s_assert_untouched(&v, opts, 6);
    s_remove(path);
}

static void test_config_errors_name_line_and_key(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *suffix;
    } cases[] = {
        {"bogus = 1\n", ":1: unknown key 'bogus'"},
        {"epoch = 1\n", ":1: unknown key 'epoch'"},
        {"--epochs = 3\n", ":1: unknown key '--epochs' (keys have no leading --)"},
        {"min clients = 3\n", ":1: unknown key 'min clients'"},
        {"h = 1\n", ":1: unknown key 'h'"},
        {"# ok\n\nepochs 3\n", ":3: expected 'key = value', got 'epochs 3'"},
        {"json\n", ":1: expected 'key = value', got 'json'"},
        {" = 3\n", ":1: empty key before '='"},
        {"=\n", ":1: empty key before '='"},
        {"epochs = x\n", ":1: epochs: expected an integer in 1..100, got 'x'"},
        {"epochs = 101\n", ":1: epochs: expected an integer in 1..100, got '101'"},
        {"epochs =\n", ":1: epochs: expected an integer in 1..100, got ''"},
        {"epochs = \" 3\"\n", ":1: epochs: unexpected blank before '3'"},
        {"seed = -1\n", ":1: seed: expected a non-negative integer, got '-1'"},
        {"lr = inf\n", ":1: lr: expected a number in 1e-06..10, got 'inf'"},
        {"optimizer = rmsprop\n", ":1: optimizer: expected one of sgd|adam, got 'rmsprop'"},
        {"name =\n", ":1: name: expected a value, got an empty string"},
        {"name = \"\"\n", ":1: name: expected a value, got an empty string"},
        {"name = \"abc\n", ":1: name: missing closing quote"},
        {"name = \"\n", ":1: name: missing closing quote"},
        {"nme = \"x\n", ":1: unknown key 'nme'"}, /* the key is checked first */
        {"json = True\n", ":1: json: expected one of true|false|yes|no|on|off|1|0, got 'True'"},
        {"json =\n", ":1: json: expected one of true|false|yes|no|on|off|1|0, got ''"},
        {"epochs = 3\n# again:\nepochs = 4\n", ":3: epochs given twice (first on line 1)"},
        {"json = no\njson = no\n", ":2: json given twice (first on line 1)"},
        {"help = yes\n", ":1: help: not allowed in a configuration file"},
        {"config = other.conf\n", ":1: config: not allowed in a configuration file"},
        {"name = a\x01z\n", ":1: control character 0x01 in the line"},
        {"name = a\rz\n", ":1: control character 0x0d in the line"},
        {"name = a\x7fz\n", ":1: control character 0x7f in the line"},
        {"name = \xFF\n", ":1: not valid UTF-8"},
        {"name = \xC3\n", ":1: not valid UTF-8"},          /* truncated sequence */
        {"name = \xC0\xAF\n", ":1: not valid UTF-8"},      /* overlong '/' */
        {"name = \xED\xA0\x80\n", ":1: not valid UTF-8"},  /* a surrogate */
        {"name = \xF4\x90\x80\x80\n", ":1: not valid UTF-8"}, /* past U+10FFFF */
        /* The first bad line is reported; later lines are not read. */
        {"epochs = 3\nbogus = 1\nname =\n", ":2: unknown key 'bogus'"},
        /* A valid line before a bad one is not applied either. */
        {"name = ok\nepochs = 0\n", ":2: epochs: expected an integer in 1..100, got '0'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_assert_refused(cases[i].text, strlen(cases[i].text), GB_EUSAGE, cases[i].suffix);
}

static void test_config_nul_byte(void **state)
{
    (void)state;
    static const char text[] = "epochs = 3\nname = a\0b\n";
    s_assert_refused(text, sizeof text - 1, GB_EUSAGE, ":2: NUL byte in the line");
}

static void test_config_long_unknown_key_clipped(void **state)
{
    (void)state;
    char text[200];
    memset(text, 'k', sizeof text);
    memcpy(text + 150, " = 1\n", 6);
    char suffix[128];
    snprintf(suffix, sizeof suffix, ":1: unknown key '%.60s'", text);
    s_assert_refused(text, strlen(text), GB_EUSAGE, suffix);
}

/* A file of one `name = aaa...` line whose content is `len` bytes, then `end`. */
static char *s_line_of(size_t len, const char *end, size_t *total)
{
    size_t elen = strlen(end);
    char *text = malloc(len + elen + 1);
    assert_non_null(text);
    memset(text, 'a', len);
    memcpy(text, "name = ", 7);
    memcpy(text + len, end, elen + 1);
    *total = len + elen;
    return text;
}

static void test_config_line_bound(void **state)
{
    (void)state;
    static const char *const ends[] = {"", "\n", "\r\n"};
    for (size_t e = 0; e < 3; e++) {
        size_t len;
        char *text = s_line_of(GB_ARGS_CONFIG_LINE_MAX, ends[e], &len);
        char *path = s_file(text, len);
        s_vals_t v = {0};
        OPTS(v);
        gb_args_config_t *config = NULL;
        gb_error_t err = {0};
        if (gb_args_parse_config(opts, 6, path, &config, &err))
            fail_msg("end %zu: %s", e, err.msg);
        assert_int_equal(strlen(v.name), GB_ARGS_CONFIG_LINE_MAX - 7);
        gb_args_config_destroy(&config);
        s_remove(path);
        free(text);

        text = s_line_of(GB_ARGS_CONFIG_LINE_MAX + 1, ends[e], &len);
        char suffix[64];
        snprintf(suffix, sizeof suffix, ":1: line longer than the limit of %d bytes",
                 GB_ARGS_CONFIG_LINE_MAX);
        s_assert_refused(text, len, GB_EUSAGE, suffix);
        free(text);
    }
}

/* A file of `len` bytes: "epochs = 5" then comment lines. */
static char *s_big_file(size_t len)
{
    char *text = malloc(len);
    assert_non_null(text);
    for (size_t i = 0; i < len; i++)
        text[i] = i % 100 == 99 || i == len - 1 ? '\n' : '#';
    memcpy(text, "epochs = 5\n", 11);
    return text;
}

static void test_config_file_bound(void **state)
{
    (void)state;
    char *text = s_big_file(GB_ARGS_CONFIG_FILE_MAX);
    char *path = s_file(text, GB_ARGS_CONFIG_FILE_MAX);
    s_vals_t v = {0};
    OPTS(v);
    gb_args_config_t *config = NULL;
    gb_error_t err = {0};
    assert_int_equal(gb_args_parse_config(opts, 6, path, &config, &err), 0);
    assert_int_equal(v.epochs, 5);
    gb_args_config_destroy(&config);
    s_remove(path);
    free(text);

    text = s_big_file(GB_ARGS_CONFIG_FILE_MAX + 1);
    char suffix[128];
    snprintf(suffix, sizeof suffix, "' is %d bytes, more than the limit of %d",
             GB_ARGS_CONFIG_FILE_MAX + 1, GB_ARGS_CONFIG_FILE_MAX);
    path = s_file(text, GB_ARGS_CONFIG_FILE_MAX + 1);
    gb_args_config_t *none = NULL;
    assert_int_equal(gb_args_parse_config(opts, 6, path, &none, &err), GB_ERANGE);
    assert_null(none);
    char expected[GB_ERROR_MSG_MAX];
    snprintf(expected, sizeof expected, "--config: '%s%s", path, suffix);
    assert_string_equal(err.msg, expected);
    s_remove(path);
    free(text);
}

/* Asserts that reading path fails with GB_EIO and "--config: <what> '<path>'<why>". */
static void s_assert_unreadable(const char *path, const char *what, const char *why)
{
    s_vals_t v = {0};
    OPTS(v);
    gb_args_config_t *config = NULL;
    gb_error_t err = {0};
    assert_int_equal(gb_args_parse_config(opts, 6, path, &config, &err), GB_EIO);
    assert_null(config);
    char expected[GB_ERROR_MSG_MAX];
    snprintf(expected, sizeof expected, "--config: %s '%s'%s", what, path, why);
    assert_string_equal(err.msg, expected);
    s_assert_untouched(&v, opts, 6);
}

static void test_config_unreadable(void **state)
{
    (void)state;
    char *path = s_missing_path();
    s_assert_unreadable(path, "cannot open", ": No such file or directory");
    free(path);
    s_assert_unreadable("/tmp", "cannot read", ": it is a directory");
    /* root reads any file whatever its mode, so only others can test this */
    if (geteuid() != 0) {
        path = s_conf("epochs = 3\n");
        assert_int_equal(chmod(path, 0), 0);
        s_assert_unreadable(path, "cannot open", ": Permission denied");
        s_remove(path);
    }
}

static void test_config_command_line_wins(void **state)
{
    (void)state;
    s_vals_t v = {0};
    OPTS(v);
    char *argv[] = {"--epochs", "9", "--json", "--name=cli"};
    bool help = false;
    gb_error_t err = {0};
    assert_int_equal(s_parse(&v, opts, 4, argv, &help, &err), 0);
    char *path = s_conf("epochs = 3\njson = no\nname = file\noptimizer = sgd\n");
    gb_args_config_t *config = NULL;
    assert_int_equal(gb_args_parse_config(opts, 6, path, &config, &err), 0);
    assert_int_equal(v.epochs, 9);
    assert_true(v.json);
    assert_string_equal(v.name, "cli");
    assert_string_equal(v.opt, "sgd");
    assert_true(gb_args_find(opts, 6, "--optimizer")->seen);
    assert_false(gb_args_find(opts, 6, "--lr")->seen);
    gb_args_config_destroy(&config);
    s_remove(path);

    /* The file is still checked where the command line overrides it. */
    path = s_conf("epochs = x\n");
    assert_int_equal(gb_args_parse_config(opts, 6, path, &config, &err), GB_EUSAGE);
    assert_null(config);
    assert_int_equal(v.epochs, 9);
    s_remove(path);
}

static void test_config_allocation_failures(void **state)
{
    (void)state;
    char *path = s_conf("epochs = 4\nname = n\n");
    int rc = GB_ENOMEM;
    long k;
    for (k = 1; rc == GB_ENOMEM && k < 100; k++) {
        s_vals_t v = {0};
        OPTS(v);
        gb_args_config_t *config = NULL;
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        rc = gb_args_parse_config(opts, 6, path, &config, &err);
        gb_alloc_fail_after(0);
        if (rc == GB_ENOMEM) {
            assert_null(config);
            s_assert_untouched(&v, opts, 6);
            assert_non_null(strstr(err.msg, "out of memory"));
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(v.epochs, 4);
            gb_args_config_destroy(&config);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(k > 2); /* at least one allocation was made to fail */
    s_remove(path);
}

/* ---- a command's front matter with --config ---- */

typedef struct {
    int epochs;
    const char *name;
    const char *config;
    bool json;
} s_cmd_t;

#define CMD_OPTS(c)                                                                             \
    gb_arg_t opts[] = {                                                                         \
        {"--epochs", GB_ARG_INT, &(c).epochs, 1, 100, NULL, "epochs", false},                   \
        {"--name", GB_ARG_STRING, &(c).name, 0, 0, NULL, "a name (required)", false},           \
        {"--json", GB_ARG_FLAG, &(c).json, 0, 0, NULL, "json", false},                          \
        {"--config", GB_ARG_STRING, &(c).config, 0, 0, NULL, "options from FILE", false},       \
    }

static const char *const s_required[] = {"--name", NULL};

/* Runs the command front matter over argv with stderr caught into out:
 * gb_args_command_config when config is not NULL, else gb_args_command, or
 * with split gb_args_subcommand ("glassbox-test" "run": the same command). */
static int s_command(gb_arg_t *opts, int n, int argc, char **argv, gb_args_config_t **config,
                     bool split, char *out, size_t cap)
{
    char path[] = "/tmp/gb_test_args_err_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0 && dup2(fd, 2) == 2);
    int rc = config  ? gb_args_command_config("glassbox-test run", "[options]", "Tests.", opts,
                                              n, s_required, argc, argv, config)
             : split ? gb_args_subcommand("glassbox-test", "run", "[options]", "Tests.", opts, n,
                                          s_required, argc, argv)
                     : gb_args_command("glassbox-test run", "[options]", "Tests.", opts, n,
                                       s_required, argc, argv);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    ssize_t got = pread(fd, out, cap - 1, 0);
    out[got > 0 ? got : 0] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

static void test_command_required_from_file(void **state)
{
    (void)state;
    s_cmd_t c = {0};
    CMD_OPTS(c);
    char *path = s_conf("name = from-file\nepochs = 4\n");
    char *argv[] = {"--config", path};
    gb_args_config_t *config = NULL;
    char out[1024];
    assert_int_equal(s_command(opts, 4, 2, argv, &config, false, out, sizeof out), -1);
    assert_string_equal(out, "");
    assert_non_null(config);
    assert_string_equal(c.name, "from-file");
    assert_int_equal(c.epochs, 4);
    gb_args_config_destroy(&config);
    s_remove(path);
}

static void test_command_line_wins_over_file(void **state)
{
    (void)state;
    s_cmd_t c = {0};
    CMD_OPTS(c);
    char *path = s_conf("name = from-file\njson = on\n");
    char flag[256];
    snprintf(flag, sizeof flag, "--config=%s", path);
    char *argv[] = {"--name", "cli", flag};
    gb_args_config_t *config = NULL;
    char out[1024];
    assert_int_equal(s_command(opts, 4, 3, argv, &config, false, out, sizeof out), -1);
    assert_string_equal(c.name, "cli");
    assert_true(c.json);
    gb_args_config_destroy(&config);
    s_remove(path);
}

static void test_command_errors(void **state)
{
    (void)state;
    char *bad = s_conf("epochs = 0\n");
    char *lacks = s_conf("epochs = 4\n");
    char *missing = s_missing_path();
    char expected[3][1024];
    snprintf(expected[0], sizeof expected[0],
             "glassbox-test run: %s:1: epochs: expected an integer in 1..100, got '0' "
             "(see glassbox-test run --help)\n",
             bad);
    snprintf(expected[1], sizeof expected[1],
             "glassbox-test run: --name is required (see glassbox-test run --help)\n");
    snprintf(expected[2], sizeof expected[2],
             "glassbox-test run: --config: cannot open '%s': No such file or directory "
             "(see glassbox-test run --help)\n",
             missing);
    char *files[3] = {bad, lacks, missing};
    for (int i = 0; i < 3; i++) {
        s_cmd_t c = {0};
        CMD_OPTS(c);
        char *argv[] = {"--config", files[i]};
        gb_args_config_t *config = (gb_args_config_t *)&c; /* must come back NULL */
        char out[1024];
        assert_int_equal(s_command(opts, 4, 2, argv, &config, false, out, sizeof out), 2);
        assert_string_equal(out, expected[i]);
        assert_null(config);
    }
    s_remove(bad);
    s_remove(lacks);
    free(missing);
}

static void test_command_help_reads_no_file(void **state)
{
    (void)state;
    s_cmd_t c = {0};
    CMD_OPTS(c);
    char *argv[] = {"--config", "/nonexistent/glassbox.conf", "--help"};
    gb_args_config_t *config = (gb_args_config_t *)&c; /* must come back NULL */
    char out[1024];
    assert_int_equal(s_command(opts, 4, 3, argv, &config, false, out, sizeof out), 0);
    assert_null(config);
    assert_string_equal(out, "");
}

static void test_command_without_config_flag(void **state)
{
    (void)state;
    s_cmd_t c = {0};
    CMD_OPTS(c);
    char *argv[] = {"--name", "n"};
    gb_args_config_t *config = (gb_args_config_t *)&c; /* nothing to keep: NULL */
    char out[1024];
    assert_int_equal(s_command(opts, 4, 2, argv, &config, false, out, sizeof out), -1);
    assert_null(config);
    assert_string_equal(c.name, "n");
    assert_string_equal(out, "");
}

/* gb_args_command over argv (with split: gb_args_subcommand): the table
 * without its --config entry. */
static bool s_split;
static int s_plain(int argc, char **argv, s_cmd_t *c, char *out, size_t cap)
{
    CMD_OPTS(*c);
    return s_command(opts, 3, argc, argv, NULL, s_split, out, cap);
}

/* Run once as gb_args_command and once as gb_args_subcommand, which must
 * name the command the same. */
static void test_command_plain_signature(void **state)
{
    (void)state;
    char out[1024];
    s_cmd_t c = {0};
    char *ok[] = {"--name", "n", "--epochs", "2"};
    assert_int_equal(s_plain(4, ok, &c, out, sizeof out), -1);
    assert_int_equal(c.epochs, 2);
    assert_string_equal(out, "");

    s_cmd_t d = {0};
    char *lacks[] = {"--epochs", "2"};
    assert_int_equal(s_plain(2, lacks, &d, out, sizeof out), 2);
    assert_string_equal(out,
                        "glassbox-test run: --name is required (see glassbox-test run --help)\n");

    s_cmd_t e = {0};
    char *bad[] = {"--epochs", "x"};
    assert_int_equal(s_plain(2, bad, &e, out, sizeof out), 2);
    assert_string_equal(out, "glassbox-test run: --epochs: expected an integer in 1..100, got "
                             "'x' (see glassbox-test run --help)\n");
}

static void test_subcommand_names_group_and_sub(void **state)
{
    s_split = true;
    test_command_plain_signature(state);
    s_split = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_every_kind),
        cmocka_unit_test(test_help_stops),
        cmocka_unit_test(test_errors_name_flag_and_reason),
        cmocka_unit_test(test_long_unknown_option_truncated),
        cmocka_unit_test(test_print_help),
        cmocka_unit_test(test_config_every_kind),
        cmocka_unit_test(test_config_empty_file_and_bom),
        cmocka_unit_test(test_config_values_verbatim),
        cmocka_unit_test(test_config_flag_spellings),
        cmocka_unit_test(test_config_errors_name_line_and_key),
        cmocka_unit_test(test_config_nul_byte),
        cmocka_unit_test(test_config_long_unknown_key_clipped),
        cmocka_unit_test(test_config_line_bound),
        cmocka_unit_test(test_config_file_bound),
        cmocka_unit_test(test_config_unreadable),
        cmocka_unit_test(test_config_command_line_wins),
        cmocka_unit_test(test_config_allocation_failures),
        cmocka_unit_test(test_command_required_from_file),
        cmocka_unit_test(test_command_line_wins_over_file),
        cmocka_unit_test(test_command_errors),
        cmocka_unit_test(test_command_help_reads_no_file),
        cmocka_unit_test(test_command_without_config_flag),
        cmocka_unit_test(test_command_plain_signature),
        cmocka_unit_test(test_subcommand_names_group_and_sub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
