/* Tests for util/log: level names, the GLASSBOX_LOG environment variable,
 * set/get, the line format on standard error, the threshold, truncation of
 * long messages and whole lines from concurrent threads. Standard error is
 * redirected to a temporary file around each logging call.
 *
 * test_env_level must run first: the level is read from the environment
 * once, on first use (children forked before that see it unread). */
#include "testutil.h"

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

/* ------------------------------------------------------------ capturing */

typedef struct {
    char *dir;
    char *path;
    int saved; /* the real stderr */
} s_capture_t;

static void s_capture_begin(s_capture_t *c)
{
    c->dir = gb_test_mkdtemp();
    c->path = gb_test_write_file(c->dir, "stderr.txt", NULL, 0);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    int fd = open(c->path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

/* Restores stderr; returns what was written (malloc'd, NUL-terminated). */
static char *s_capture_end(s_capture_t *c)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);
    FILE *f = fopen(c->path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    gb_test_rmtree(c->dir);
    free(c->dir);
    free(c->path);
    return text;
}

/* Checks one line "YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL MESSAGE" (LEVEL padded
 * to 5) without its newline; returns a pointer to MESSAGE. */
static const char *s_check_line(const char *line, const char *level)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    for (size_t i = 0; i < sizeof pattern - 1; i++) {
        if (pattern[i] == 'd') {
            if (!isdigit((unsigned char)line[i]))
                fail_msg("not a timestamp at %zu: '%s'", i, line);
        } else if (line[i] != pattern[i]) {
            fail_msg("expected '%c' at %zu: '%s'", pattern[i], i, line);
        }
    }
    char padded[8];
    snprintf(padded, sizeof padded, "%-5s ", level);
    if (strncmp(line + 25, padded, 6) != 0)
        fail_msg("expected level '%s': '%s'", padded, line);
    return line + 31;
}

/* ------------------------------------------------------------------ tests */

/* In a child forked before the level was first read: GLASSBOX_LOG = value
 * (or unset for NULL) gives `want`. */
static void s_env_child(const char *value, enum gb_log_level want)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (value)
            setenv("GLASSBOX_LOG", value, 1);
        else
            unsetenv("GLASSBOX_LOG");
        _exit(gb_log_get_level() == want ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("GLASSBOX_LOG=%s did not give level %d", value ? value : "(unset)", (int)want);
}

static void test_env_level(void **state)
{
    (void)state;
    s_env_child(NULL, GB_LOG_INFO);
    s_env_child("error", GB_LOG_ERROR);
    s_env_child("off", GB_LOG_OFF);
    s_env_child("loud", GB_LOG_INFO); /* unknown: the default */
    s_env_child("", GB_LOG_INFO);
    setenv("GLASSBOX_LOG", "debug", 1);
    assert_int_equal(gb_log_get_level(), GB_LOG_DEBUG);
    /* Read once: changing the environment later has no effect. */
    setenv("GLASSBOX_LOG", "error", 1);
    assert_int_equal(gb_log_get_level(), GB_LOG_DEBUG);
    unsetenv("GLASSBOX_LOG");
}

static void test_parse_level(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum gb_log_level level;
    } good[] = {{"debug", GB_LOG_DEBUG}, {"info", GB_LOG_INFO}, {"warn", GB_LOG_WARN},
                {"error", GB_LOG_ERROR}, {"off", GB_LOG_OFF}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        enum gb_log_level l = (enum gb_log_level)99;
        assert_int_equal(gb_log_parse_level(good[i].name, &l), 0);
        assert_int_equal(l, good[i].level);
    }
    static const char *const bad[] = {"DEBUG", "warning", "", "info ", "err", "none"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum gb_log_level l = GB_LOG_WARN;
        assert_int_equal(gb_log_parse_level(bad[i], &l), GB_EINVAL);
        assert_int_equal(l, GB_LOG_WARN); /* untouched */
    }
    enum gb_log_level l = GB_LOG_WARN;
    assert_int_equal(gb_log_parse_level(NULL, &l), GB_EINVAL);
}

static void test_set_get(void **state)
{
    (void)state;
    for (int l = GB_LOG_DEBUG; l <= GB_LOG_OFF; l++) {
        gb_log_set_level((enum gb_log_level)l);
        assert_int_equal(gb_log_get_level(), l);
    }
}

static void test_format(void **state)
{
    (void)state;
    gb_log_set_level(GB_LOG_DEBUG);
    s_capture_t c;
    s_capture_begin(&c);
    gb_log_debug("alpha %d", 1);
    gb_log_info("beta %s", "two");
    gb_log_warn("gamma %.1f", 3.0);
    gb_log_error("delta");
    gb_log(GB_LOG_INFO, "epsilon %c", 'e');
    char *out = s_capture_end(&c);
    static const char *const levels[5] = {"debug", "info", "warn", "error", "info"};
    static const char *const msgs[5] = {"alpha 1", "beta two", "gamma 3.0", "delta", "epsilon e"};
    char *line = out;
    for (int i = 0; i < 5; i++) {
        char *nl = strchr(line, '\n');
        if (!nl)
            fail_msg("line %d missing in '%s'", i, out);
        *nl = '\0';
        assert_string_equal(s_check_line(line, levels[i]), msgs[i]);
        line = nl + 1;
    }
    assert_string_equal(line, ""); /* nothing else */
    free(out);
}

static void test_threshold(void **state)
{
    (void)state;
    s_capture_t c;
    gb_log_set_level(GB_LOG_WARN);
    s_capture_begin(&c);
    gb_log_debug("no");
    gb_log_info("no");
    gb_log_warn("yes warn");
    gb_log_error("yes error");
    char *out = s_capture_end(&c);
    assert_null(strstr(out, "no"));
    assert_non_null(strstr(out, " warn  yes warn\n"));
    assert_non_null(strstr(out, " error yes error\n"));
    free(out);

    /* off: nothing at all; and GB_LOG_OFF is never a message level. */
    gb_log_set_level(GB_LOG_OFF);
    s_capture_begin(&c);
    gb_log_error("no");
    out = s_capture_end(&c);
    assert_string_equal(out, "");
    free(out);
    gb_log_set_level(GB_LOG_DEBUG);
    s_capture_begin(&c);
    gb_log(GB_LOG_OFF, "never");
    out = s_capture_end(&c);
    assert_string_equal(out, "");
    free(out);
    gb_log_set_level(GB_LOG_INFO);
}

/* gb_error_warn fills the error, logs a warning, and keeps quiet for
 * GB_ENOMEM. */
static void test_error_warn(void **state)
{
    (void)state;
    s_capture_t c;
    gb_log_set_level(GB_LOG_INFO);
    gb_error_t err = {0};
    s_capture_begin(&c);
    assert_int_equal(gb_error_warn(&err, GB_EFORMAT, "file %s: bad byte %d", "x.idx", 7),
                     GB_EFORMAT);
    assert_int_equal(gb_error_warn(NULL, GB_EIO, "no buffer"), GB_EIO);
    assert_int_equal(gb_error_warn(&err, GB_ENOMEM, "quiet"), GB_ENOMEM);
    char *out = s_capture_end(&c);
    assert_non_null(strstr(out, " warn  file x.idx: bad byte 7\n"));
    assert_non_null(strstr(out, " warn  no buffer\n"));
    assert_null(strstr(out, "quiet"));
    assert_int_equal(err.code, GB_ENOMEM);
    assert_string_equal(err.msg, "quiet");
    free(out);
}

/* A long message is cut to one line of at most 1023 bytes with its newline. */
static void test_truncation(void **state)
{
    (void)state;
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    gb_log_set_level(GB_LOG_INFO);
    s_capture_t c;
    s_capture_begin(&c);
    gb_log_info("%s", big);
    gb_log_info("after");
    char *out = s_capture_end(&c);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    size_t len = (size_t)(nl - out) + 1;
    assert_true(len <= 1023);
    assert_true(len > 900);
    *nl = '\0';
    const char *msg = s_check_line(out, "info");
    for (const char *p = msg; *p; p++)
        assert_int_equal(*p, 'x');
    assert_string_equal(s_check_line(nl + 1, "info"), "after\n");
    free(out);
}

enum { THREADS = 4, LINES = 200 };

static void *s_writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < LINES; i++)
        gb_log_info("thread %d line %03d %s", t, i,
                    "padding padding padding padding padding padding padding padding");
    return NULL;
}

/* Lines from concurrent threads never interleave: each is written whole. */
static void test_threads(void **state)
{
    (void)state;
    gb_log_set_level(GB_LOG_INFO);
    s_capture_t c;
    s_capture_begin(&c);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, s_writer, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    char *out = s_capture_end(&c);
    int seen[THREADS][LINES] = {{0}};
    int count = 0;
    for (char *line = out; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        int t = -1, i = -1;
        const char *msg = s_check_line(line, "info");
        assert_int_equal(sscanf(msg, "thread %d line %d", &t, &i), 2);
        assert_in_range(t, 0, THREADS - 1);
        assert_in_range(i, 0, LINES - 1);
        assert_non_null(strstr(msg, "padding padding padding padding padding padding padding "
                                    "padding"));
        seen[t][i]++;
        count++;
        line = nl + 1;
    }
    assert_int_equal(count, THREADS * LINES);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < LINES; i++)
            assert_int_equal(seen[t][i], 1);
    free(out);
}

/* Lines blamed on a peer: a burst of 20, then held back; another peer and
 * unblamed lines are not; errors are never held back. */
static void test_blame(void **state)
{
    (void)state;
    s_capture_t c;
    gb_log_set_level(GB_LOG_INFO);
    s_capture_begin(&c);
    gb_log_blame("10.1.2.3");
    for (int i = 0; i < 500; i++)
        gb_log_warn("flood %d", i);
    gb_log_error("own failure");
    gb_log_blame("edge-7");
    gb_log_warn("edge-7 speaks");
    gb_log_blame(NULL);
    gb_log_warn("not blamed");
    char *out = s_capture_end(&c);
    int lines = 0;
    for (const char *p = out; (p = strstr(p, "flood ")); p++)
        lines++;
    assert_true(lines >= 20 && lines <= 22);
    assert_non_null(strstr(out, "own failure"));
    assert_non_null(strstr(out, "edge-7 speaks"));
    assert_non_null(strstr(out, "not blamed"));
    free(out);
}

/* A peer's lines past its burst are held back; gb_log_report_held says how
 * many at once (a process that ends), and then has nothing more to say. */
static void test_report_held(void **state)
{
    (void)state;
    gb_log_set_level(GB_LOG_INFO);
    s_capture_t c;
    s_capture_begin(&c);
    gb_log_blame("held-peer");
    for (int i = 0; i < 40; i++)
        gb_log_warn("line %d about the peer", i);
    gb_log_blame(NULL);
    gb_log_report_held();
    gb_log_report_held();
    char *out = s_capture_end(&c);
    assert_non_null(strstr(out, "line 0 about the peer"));
    assert_null(strstr(out, "line 39 about the peer"));
    const char *report = strstr(out, "more log lines caused by peers held back");
    assert_non_null(report);
    assert_null(strstr(report + 1, "more log lines caused by peers held back"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_level), /* first: see the header */
        cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_set_get),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_error_warn),
        cmocka_unit_test(test_report_held),
        cmocka_unit_test(test_blame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
