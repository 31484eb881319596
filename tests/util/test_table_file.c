/* Tests for util/table_file: a good table with comments, every way a table
 * can be damaged (header, NUL, unterminated line, field counts, a row the
 * owner refuses, too many rows, too big, missing, empty), allocation
 * failure, and the two field parsers. */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/table_file.h"

#define HEADER "# test table, version 1"

typedef struct {
    uint64_t id;   /* first field */
    char name[16]; /* second field */
} row_t;

static int s_row(char **f, int nfields, void *out, const char *path, size_t lineno, void *arg,
                 gb_error_t *err)
{
    int *calls = arg;
    (*calls)++;
    assert_int_equal(nfields, 2);
    row_t *r = out;
    assert_int_equal(r->id, 0); /* the slot comes zeroed */
    if (!gb_table_parse_u64(f[0], 1000, &r->id))
        return gb_error_set(err, GB_EFORMAT, "%s line %zu: bad id '%s'", path, lineno, f[0]);
    if (strlen(f[1]) >= sizeof r->name)
        return gb_error_set(err, GB_EFORMAT, "%s line %zu: name too long", path, lineno);
    memcpy(r->name, f[1], strlen(f[1]) + 1);
    return 0;
}

typedef struct {
    char *dir;
    int calls;
    gb_table_format_t format;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->dir = gb_test_mkdtemp();
    f->format = (gb_table_format_t){.header = HEADER,
                                    .what = "test table",
                                    .max_bytes = 4096,
                                    .max_rows = 3,
                                    .fields = 2,
                                    .row_size = sizeof(row_t),
                                    .row = s_row,
                                    .arg = &f->calls};
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    gb_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Reads text as a table; returns the code, with rows freed. */
static int s_read(fixture_t *f, const char *text, size_t len, gb_error_t *err, size_t *n_out)
{
    char *path = gb_test_write_file(f->dir, "t.txt", text, len);
    void *rows = (void *)1;
    size_t n = 99;
    int rc = gb_table_file_read(path, &f->format, &rows, &n, err);
    if (rc) {
        assert_null(rows);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err->msg, "t.txt"));
    }
    if (n_out)
        *n_out = n;
    gb_free(rows);
    free(path);
    return rc;
}

static void test_good_table(void **state)
{
    fixture_t *f = *state;
    const char text[] = HEADER "\n# id name\n7 alice\n# a comment\n12 bob\n";
    char *path = gb_test_write_file(f->dir, "t.txt", text, strlen(text));
    void *rows = NULL;
    size_t n = 0;
    gb_error_t err = {0};
    assert_int_equal(gb_table_file_read(path, &f->format, &rows, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(f->calls, 2);
    row_t *r = rows;
    assert_int_equal(r[0].id, 7);
    assert_string_equal(r[0].name, "alice");
    assert_int_equal(r[1].id, 12);
    assert_string_equal(r[1].name, "bob");
    gb_free(rows);
    free(path);
}

static void test_header_only(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    size_t n = 99;
    assert_int_equal(s_read(f, HEADER "\n", strlen(HEADER) + 1, &err, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(f->calls, 0);
}

static void test_damaged_tables(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    static const struct {
        const char *text;
        int code;
        const char *says;
    } cases[] = {
        {"", GB_EFORMAT, "empty (not a test table)"},
        {"# other table, version 1\n", GB_EFORMAT, "not a test table (line 1)"},
        {HEADER "\n7 alice", GB_EFORMAT, "not terminated"},
        {HEADER "\n7\n", GB_EFORMAT, "line 2: expected 2 fields, got 1"},
        {HEADER "\n7 alice x\n", GB_EFORMAT, "line 2: expected 2 fields, got more than 2"},
        {HEADER "\n7  alice\n", GB_EFORMAT, "expected 2 fields"},
        {HEADER "\n1 a\nx b\n", GB_EFORMAT, "line 3: bad id 'x'"},
        {HEADER "\n1 a\n2 b\n3 c\n4 d\n", GB_ERANGE, "more than 3 entries"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(s_read(f, cases[i].text, strlen(cases[i].text), &err, NULL),
                         cases[i].code);
        if (!strstr(err.msg, cases[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].says);
    }
    const char nul[] = HEADER "\n7 al\0ce\n";
    assert_int_equal(s_read(f, nul, sizeof nul - 1, &err, NULL), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "NUL"));
    char *big = malloc(5000);
    memset(big, '#', 5000);
    assert_int_equal(s_read(f, big, 5000, &err, NULL), GB_ERANGE);
    free(big);
}

static void test_missing_file(void **state)
{
    fixture_t *f = *state;
    void *rows = (void *)1;
    size_t n = 5;
    gb_error_t err = {0};
    assert_int_equal(gb_table_file_read("/nonexistent/t.txt", &f->format, &rows, &n, &err),
                     GB_EIO);
    assert_null(rows);
    assert_int_equal(n, 0);
    f->format.fields = 0;
    assert_int_equal(gb_table_file_read("/nonexistent/t.txt", &f->format, &rows, &n, &err),
                     GB_EINVAL);
}

static void test_allocation_failure(void **state)
{
    fixture_t *f = *state;
    const char text[] = HEADER "\n1 a\n2 b\n3 c\n";
    char *path = gb_test_write_file(f->dir, "t.txt", text, strlen(text));
    gb_error_t err = {0};
    int failures = 0;
    for (int k = 1; k < 10; k++) {
        void *rows = NULL;
        size_t n = 0;
        gb_alloc_fail_after(k);
        int rc = gb_table_file_read(path, &f->format, &rows, &n, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            assert_int_equal(n, 3);
            gb_free(rows);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(rows);
        failures++;
    }
    assert_true(failures >= 2); /* the file buffer and the rows */
    free(path);
}

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_true(gb_table_parse_u64("0", 10, &v) && v == 0);
    assert_true(gb_table_parse_u64("10", 10, &v) && v == 10);
    assert_false(gb_table_parse_u64("11", 10, &v));
    assert_true(gb_table_parse_u64("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
    assert_false(gb_table_parse_u64("18446744073709551616", UINT64_MAX, &v));
    assert_false(gb_table_parse_u64("99999999999999999999", UINT64_MAX, &v));
    assert_false(gb_table_parse_u64("", 10, &v));
    assert_false(gb_table_parse_u64("-1", 10, &v));
    assert_false(gb_table_parse_u64("+1", 10, &v));
    assert_false(gb_table_parse_u64(" 1", 10, &v));
    assert_false(gb_table_parse_u64("1x", 10, &v));
    assert_int_equal(v, UINT64_MAX); /* refusals leave out alone */
}

static void test_is_hex(void **state)
{
    (void)state;
    assert_true(gb_table_is_hex("0123456789abcdef", 16));
    assert_false(gb_table_is_hex("0123456789ABCDEF", 16));
    assert_false(gb_table_is_hex("abc", 4));
    assert_false(gb_table_is_hex("abcd", 3));
    assert_false(gb_table_is_hex("abcg", 4));
    assert_true(gb_table_is_hex("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_table, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_header_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_tables, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failure, s_setup, s_teardown),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_is_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
