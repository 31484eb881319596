/* Tests for data/csv: the accepted format (CRLF, no final newline, trailing
 * blank lines, byte-order mark, quoted names and numbers, blanks around
 * cells), every malformed file with its exact error message (ragged rows
 * short and long, not a number, empty cell, NaN and infinities, beyond float
 * range, duplicate and empty names, empty file, header only, blank line,
 * unterminated quote, NUL byte, line, cell and name too long, too many
 * columns), the integer tracking used for class labels, column lookup,
 * reading from files, and allocation-failure injection. Doubles as the usage
 * example. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/csv.h"
#include "util/alloc.h"
#include "util/log.h"

/* Parses text as "t.csv"; the table, which must be there. */
static gb_csv_t *s_ok(const char *text)
{
    gb_error_t err = {0};
    gb_csv_t *csv = gb_csv_parse(text, strlen(text), "t.csv", &err);
    if (!csv)
        fail_msg("unexpected error: %s", err.msg);
    return csv;
}

/* Parses len bytes as "t.csv" and checks the failure's code and message. */
static void s_bad_len(const char *text, size_t len, int code, const char *msg)
{
    gb_error_t err = {0};
    gb_csv_t *csv = gb_csv_parse(text, len, "t.csv", &err);
    assert_null(csv);
    assert_int_equal(err.code, code);
    assert_string_equal(err.msg, msg);
}

static void s_bad(const char *text, int code, const char *msg)
{
    s_bad_len(text, strlen(text), code, msg);
}

static void test_parse(void **state)
{
    (void)state;
    gb_csv_t *csv = s_ok("a,b,c\n1,2,3\n-4.5,5e2,+6\n");
    assert_string_equal(csv->path, "t.csv");
    assert_int_equal(csv->n_cols, 3);
    assert_int_equal(csv->n_rows, 2);
    assert_string_equal(csv->cols[0].name, "a");
    assert_string_equal(csv->cols[2].name, "c");
    /* row-major */
    const float want[6] = {1, 2, 3, -4.5f, 500, 6};
    for (int i = 0; i < 6; i++)
        assert_true(csv->data[i] == want[i]);
    assert_true(gb_csv_value(csv, 1, 0) == -4.5f);
    assert_int_equal(gb_csv_line(0), 2);
    assert_int_equal(gb_csv_column(csv, "b"), 1);
    assert_int_equal(gb_csv_column(csv, "B"), -1); /* case-sensitive */
    assert_int_equal(gb_csv_column(csv, NULL), -1);
    assert_int_equal(gb_csv_column(NULL, "a"), -1);
    /* integer tracking: a has -4.5 in row 1, b and c are integers */
    assert_int_equal(csv->cols[0].nonint_row, 1);
    assert_true(csv->cols[0].nonint_value == -4.5);
    assert_int_equal(csv->cols[1].nonint_row, -1);
    assert_int_equal(csv->cols[2].nonint_row, -1);
    gb_csv_destroy(&csv);
    assert_null(csv);
    gb_csv_destroy(&csv); /* NULL-safe */
    gb_csv_destroy(NULL);

    /* CRLF, no final newline, blanks around cells and names */
    csv = s_ok("x , y\r\n 1 ,\t2\r\n3,4");
    assert_string_equal(csv->cols[0].name, "x");
    assert_string_equal(csv->cols[1].name, "y");
    assert_int_equal(csv->n_rows, 2);
    assert_true(gb_csv_value(csv, 0, 1) == 2.0f && gb_csv_value(csv, 1, 1) == 4.0f);
    gb_csv_destroy(&csv);

    /* trailing blank lines, a byte-order mark, a one-column file */
    csv = s_ok("\xEF\xBB\xBFv\n7\n8\n\n \r\n\n");
    assert_string_equal(csv->cols[0].name, "v");
    assert_int_equal(csv->n_cols, 1);
    assert_int_equal(csv->n_rows, 2);
    gb_csv_destroy(&csv);

    /* quoted header names with commas, spaces and "" escapes; quoted numbers */
    csv = s_ok("\"YEAR\",\"a, b\", \"say \"\"hi\"\"\" ,\" \"\n1700,\"5\",\" 6 \",7\n");
    assert_int_equal(csv->n_cols, 4);
    assert_string_equal(csv->cols[0].name, "YEAR");
    assert_string_equal(csv->cols[1].name, "a, b");
    assert_string_equal(csv->cols[2].name, "say \"hi\"");
    assert_string_equal(csv->cols[3].name, " "); /* a quoted blank is a name */
    assert_true(gb_csv_value(csv, 0, 1) == 5.0f && gb_csv_value(csv, 0, 2) == 6.0f);
    assert_int_equal(gb_csv_find(csv, "a, b", &(int){0}, NULL), 0);
    gb_csv_destroy(&csv);

    /* values: exponent, tiny (underflows to 0 in float), float extremes */
    csv = s_ok("v\n1e-3\n1e-300\n3.4e38\n-3.4e38\n0x10\n");
    assert_true(gb_csv_value(csv, 0, 0) == 1e-3f);
    assert_true(gb_csv_value(csv, 1, 0) == 0.0f);
    assert_true(gb_csv_value(csv, 2, 0) == 3.4e38f);
    assert_true(gb_csv_value(csv, 4, 0) == 16.0f); /* what strtod accepts */
    assert_int_equal(csv->cols[0].nonint_row, 0);
    gb_csv_destroy(&csv);

    /* a value that rounds to an integer in float is still recorded */
    csv = s_ok("k\n1\n2.0000001\n16777217\n");
    assert_true(gb_csv_value(csv, 1, 0) == 2.0f);
    assert_int_equal(csv->cols[0].nonint_row, 1);
    assert_true(csv->cols[0].nonint_value == 2.0000001);
    gb_csv_destroy(&csv);
    csv = s_ok("k\n16777216\n-16777216\n16777217\n");
    assert_int_equal(csv->cols[0].nonint_row, 2); /* beyond 2^24: not exact in float */
    gb_csv_destroy(&csv);

    /* leading zeros make a long number that is still small */
    char text[GB_CSV_MAX_CELL + 16];
    memcpy(text, "v\n", 2);
    memset(text + 2, '0', GB_CSV_MAX_CELL - 1);
    memcpy(text + 1 + GB_CSV_MAX_CELL, "5\n", 3);
    csv = s_ok(text);
    assert_true(gb_csv_value(csv, 0, 0) == 5.0f);
    gb_csv_destroy(&csv);
}

static void test_ragged(void **state)
{
    (void)state;
    s_bad("a,b,c\n1,2,3\n4,5\n", GB_EFORMAT, "t.csv line 3 has 2 cells, the header has 3");
    s_bad("a,b,c\n1,2,3\n4,5,6,7\n", GB_EFORMAT, "t.csv line 3 has 4 cells, the header has 3");
    s_bad("a,b,c\n1\n", GB_EFORMAT, "t.csv line 2 has 1 cell, the header has 3");
    /* a trailing comma is one more (empty) cell */
    s_bad("a,b\n1,2,\n", GB_EFORMAT, "t.csv line 2 has 3 cells, the header has 2");
    /* ragged wins over a bad cell on the same line */
    s_bad("a,b,c\n1,x\n", GB_EFORMAT, "t.csv line 2 has 2 cells, the header has 3");
    /* commas inside quotes do not split */
    s_bad("a,b\n\"1,2\"\n", GB_EFORMAT, "t.csv line 2 has 1 cell, the header has 2");
    /* a blank line in the middle */
    s_bad("a,b\n1,2\n\n3,4\n", GB_EFORMAT,
          "t.csv line 3: empty line (blank lines are allowed only at the end of the file)");
    s_bad("a\n1\n  \t\n3\n", GB_EFORMAT,
          "t.csv line 3: empty line (blank lines are allowed only at the end of the file)");
}

static void test_bad_cells(void **state)
{
    (void)state;
    s_bad("a,b,temp\n1,2,3\n1,2,3\n1,2,abc\n", GB_EFORMAT,
          "t.csv line 4, column 3 (temp): 'abc' is not a number");
    s_bad("a,b\n1,2x\n", GB_EFORMAT, "t.csv line 2, column 2 (b): '2x' is not a number");
    s_bad("a,b\n1,2 3\n", GB_EFORMAT, "t.csv line 2, column 2 (b): '2 3' is not a number");
    s_bad("a,b\n1,1.2.3\n", GB_EFORMAT, "t.csv line 2, column 2 (b): '1.2.3' is not a number");
    s_bad("a,b\n1,\"x\"\n", GB_EFORMAT, "t.csv line 2, column 2 (b): 'x' is not a number");
    s_bad("a,b\n1,1\r5\n", GB_EFORMAT, "t.csv line 2, column 2 (b): '1?5' is not a number");
    s_bad("a\n\v5\n", GB_EFORMAT, "t.csv line 2, column 1 (a): '?5' is not a number");
    /* long bad cells are shortened in the message */
    s_bad("a\n0123456789012345678901234567890123456789xyz\n", GB_EFORMAT,
          "t.csv line 2, column 1 (a): '0123456789012345678901234567890123456789...' is not a "
          "number");
    /* empty cells: no missing-value policy */
    const char *empty = "empty cell (missing values are not supported: fill in or drop the row)";
    char want[256];
    snprintf(want, sizeof want, "t.csv line 2, column 3 (c): %s", empty);
    s_bad("a,b,c\n1,2,\n", GB_EFORMAT, want);
    snprintf(want, sizeof want, "t.csv line 3, column 1 (a): %s", empty);
    s_bad("a,b,c\n1,2,3\n ,2,3\n", GB_EFORMAT, want);
    snprintf(want, sizeof want, "t.csv line 2, column 2 (b): %s", empty);
    s_bad("a,b,c\n1,\"\",3\n", GB_EFORMAT, want);
    s_bad("a,b,c\n1,\" \",3\n", GB_EFORMAT, want);
    /* NaN and infinities */
    s_bad("a,b\n1,nan\n", GB_ERANGE, "t.csv line 2, column 2 (b): 'nan' is not a finite number");
    s_bad("a,b\n1,NaN\n", GB_ERANGE, "t.csv line 2, column 2 (b): 'NaN' is not a finite number");
    s_bad("a,b\ninf,1\n", GB_ERANGE, "t.csv line 2, column 1 (a): 'inf' is not a finite number");
    s_bad("a,b\n-Infinity,1\n", GB_ERANGE,
          "t.csv line 2, column 1 (a): '-Infinity' is not a finite number");
    /* beyond float range, whether or not a double holds it */
    s_bad("a,b\n1,1e39\n", GB_ERANGE,
          "t.csv line 2, column 2 (b): '1e39' is beyond the float range (+-3.40282e+38)");
    s_bad("a,b\n1,-1e999\n", GB_ERANGE,
          "t.csv line 2, column 2 (b): '-1e999' is beyond the float range (+-3.40282e+38)");
    /* quotes */
    s_bad("a,b\n1,\"2\n", GB_EFORMAT,
          "t.csv line 2, column 2 (b): unterminated quote (a quoted cell ends on its own line)");
    s_bad("a,b\n1,\"2\"3\n", GB_EFORMAT,
          "t.csv line 2, column 2 (b): text after the closing quote");
    /* a quoted cell cannot span lines: the first line is unterminated */
    s_bad("a,\"b\nc\"\n1,2\n", GB_EFORMAT,
          "t.csv line 1, column 2: unterminated quote (a quoted cell ends on its own line)");
    /* NUL bytes */
    s_bad_len("a,b\n1,2\0\n", 9, GB_EFORMAT,
              "t.csv line 2: NUL byte in the line (not a text file?)");
}

static void test_bad_header(void **state)
{
    (void)state;
    s_bad("", GB_EFORMAT, "t.csv: empty file: expected a header row of column names");
    s_bad("\n\r\n  \n", GB_EFORMAT, "t.csv: empty file: expected a header row of column names");
    s_bad_len(NULL, 0, GB_EFORMAT, "t.csv: empty file: expected a header row of column names");
    s_bad("a,b,c\n", GB_EFORMAT, "t.csv: no data rows after the header");
    s_bad("a,b,c", GB_EFORMAT, "t.csv: no data rows after the header");
    s_bad("a,b,c\r\n\r\n", GB_EFORMAT, "t.csv: no data rows after the header");
    s_bad("a,b,a\n1,2,3\n", GB_EFORMAT,
          "t.csv line 1, column 3: duplicate column name 'a' (also column 1)");
    s_bad("\"a\",b, a \n1,2,3\n", GB_EFORMAT,
          "t.csv line 1, column 3: duplicate column name 'a' (also column 1)");
    s_bad("a,,c\n1,2,3\n", GB_EFORMAT, "t.csv line 1, column 2: empty column name");
    s_bad("a,b,\n1,2,3\n", GB_EFORMAT, "t.csv line 1, column 3: empty column name");
    s_bad("a,\"\"\n1,2\n", GB_EFORMAT, "t.csv line 1, column 2: empty column name");
    s_bad("a,b\tc\x01\n1,2\n", GB_EFORMAT,
          "t.csv line 1, column 2: control character in the column name 'b?c?'");
    s_bad("a,\"b\"x\n1,2\n", GB_EFORMAT, "t.csv line 1, column 2: text after the closing quote");
    /* a leading blank line is an empty header */
    s_bad("\na,b\n1,2\n", GB_EFORMAT, "t.csv line 1, column 1: empty column name");
}

static void test_limits(void **state)
{
    (void)state;
    char want[256];
    /* a line over GB_CSV_MAX_LINE */
    size_t n = GB_CSV_MAX_LINE + 1;
    char *text = malloc(n + 16);
    assert_non_null(text);
    memcpy(text, "a\n", 2);
    memset(text + 2, '1', n);
    memcpy(text + 2 + n, "\n5\n", 4);
    snprintf(want, sizeof want,
             "t.csv line 2: %zu bytes long, more than the limit of %zu bytes per line", n,
             GB_CSV_MAX_LINE);
    s_bad(text, GB_EFORMAT, want);
    /* the same on the header */
    memset(text, 'a', n);
    memcpy(text + n, "\n5\n", 4);
    snprintf(want, sizeof want,
             "t.csv line 1: %zu bytes long, more than the limit of %zu bytes per line", n,
             GB_CSV_MAX_LINE);
    s_bad(text, GB_EFORMAT, want);
    free(text);

    /* a cell over GB_CSV_MAX_CELL (blanks around it do not count) */
    char cell[GB_CSV_MAX_CELL + 64];
    memcpy(cell, "a,b\n1,   ", 9);
    memset(cell + 9, '0', GB_CSV_MAX_CELL);
    memcpy(cell + 9 + GB_CSV_MAX_CELL, "   \n", 5);
    gb_csv_t *csv = s_ok(cell); /* exactly the limit */
    assert_true(gb_csv_value(csv, 0, 1) == 0.0f);
    gb_csv_destroy(&csv);
    memcpy(cell + 9 + GB_CSV_MAX_CELL, "0\n", 3);
    snprintf(want, sizeof want, "t.csv line 2, column 2 (b): cell is more than %d bytes long",
             GB_CSV_MAX_CELL);
    s_bad(cell, GB_EFORMAT, want);

    /* a name over GB_CSV_MAX_NAME */
    char name[GB_CSV_MAX_NAME + 64];
    memcpy(name, "a,", 2);
    memset(name + 2, 'n', GB_CSV_MAX_NAME + 1);
    memcpy(name + 3 + GB_CSV_MAX_NAME, "\n1,2\n", 6);
    snprintf(want, sizeof want, "t.csv line 1, column 2: column name longer than %d bytes",
             GB_CSV_MAX_NAME);
    s_bad(name, GB_EFORMAT, want);

    /* GB_CSV_MAX_COLUMNS columns are fine, one more is not */
    size_t cap = (GB_CSV_MAX_COLUMNS + 1) * 8 * 2 + 64;
    text = malloc(cap);
    assert_non_null(text);
    for (int cols = GB_CSV_MAX_COLUMNS; cols <= GB_CSV_MAX_COLUMNS + 1; cols++) {
        size_t len = 0;
        for (int c = 0; c < cols; c++)
            len += (size_t)snprintf(text + len, cap - len, "%sc%d", c ? "," : "", c);
        len += (size_t)snprintf(text + len, cap - len, "\n");
        for (int c = 0; c < cols; c++)
            len += (size_t)snprintf(text + len, cap - len, "%s%d", c ? "," : "", c);
        if (cols == GB_CSV_MAX_COLUMNS) {
            csv = s_ok(text);
            assert_int_equal(csv->n_cols, GB_CSV_MAX_COLUMNS);
            assert_true(gb_csv_value(csv, 0, GB_CSV_MAX_COLUMNS - 1) == GB_CSV_MAX_COLUMNS - 1);
            gb_csv_destroy(&csv);
        } else {
            snprintf(want, sizeof want, "t.csv line 1: %d columns, more than the limit of %d", cols,
                     GB_CSV_MAX_COLUMNS);
            s_bad(text, GB_ERANGE, want);
        }
    }
    free(text);
}

static void test_find(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_csv_t *csv = s_ok("a,b,c\n1,2,3\n");
    int col = 7;
    assert_int_equal(gb_csv_find(csv, "c", &col, &err), 0);
    assert_int_equal(col, 2);
    assert_int_equal(gb_csv_find(csv, "price", &col, &err), GB_EINVAL);
    assert_int_equal(col, -1);
    assert_string_equal(err.msg, "t.csv line 1: no column named 'price' (columns: a, b, c)");
    assert_int_equal(gb_csv_find(NULL, "a", &col, &err), GB_EINVAL);
    assert_int_equal(gb_csv_find(csv, "a", NULL, &err), GB_EINVAL);

    char buf[64];
    assert_string_equal(gb_csv_format_columns(csv, buf, sizeof buf), "a, b, c");
    assert_string_equal(gb_csv_format_columns(csv, buf, 8), "a, b, c"); /* just fits */
    assert_string_equal(gb_csv_format_columns(csv, buf, 7), "a, ...");
    assert_string_equal(gb_csv_format_columns(csv, buf, 4), "...");
    assert_string_equal(gb_csv_format_columns(csv, buf, 2), "");
    assert_string_equal(gb_csv_format_columns(NULL, buf, sizeof buf), "");
    assert_null(gb_csv_format_columns(csv, NULL, 0));
    gb_csv_destroy(&csv);

    /* many long names: the list is cut to fit the message */
    char text[8192];
    size_t len = 0;
    for (int c = 0; c < 100; c++)
        len +=
            (size_t)snprintf(text + len, sizeof text - len, "%scolumn_number_%d", c ? "," : "", c);
    len += (size_t)snprintf(text + len, sizeof text - len, "\n");
    for (int c = 0; c < 100; c++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s1", c ? "," : "");
    csv = s_ok(text);
    assert_int_equal(gb_csv_find(csv, "nope", &col, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "(columns: column_number_0, column_number_1, "));
    assert_non_null(strstr(err.msg, ", ...)"));
    assert_true(strlen(err.msg) < GB_ERROR_MSG_MAX);
    gb_csv_destroy(&csv);
}

static void test_read_file(void **state)
{
    (void)state;
    gb_error_t err = {0};
    char *dir = gb_test_mkdtemp();
    const char *text = "when,value\r\n1,0.5\r\n2,0.25\r\n";
    char *path = gb_test_write_file(dir, "data.csv", text, strlen(text));
    gb_csv_t *csv = gb_csv_read(path, &err);
    assert_non_null(csv);
    assert_string_equal(csv->path, path);
    assert_int_equal(csv->n_rows, 2);
    assert_true(gb_csv_value(csv, 1, 1) == 0.25f);
    gb_csv_destroy(&csv);

    /* the message names the file as given */
    free(path);
    path = gb_test_write_file(dir, "bad.csv", "a,b\n1,2\n3,x\n", 12);
    assert_null(gb_csv_read(path, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    char want[512];
    snprintf(want, sizeof want, "%s line 3, column 2 (b): 'x' is not a number", path);
    assert_string_equal(err.msg, want);

    /* a file over GB_CSV_MAX_BYTES is refused before it is read (sparse: no disk used) */
    free(path);
    path = gb_test_write_file(dir, "huge.csv", "a\n1\n", 4);
    assert_int_equal(truncate(path, (off_t)GB_CSV_MAX_BYTES + 1), 0);
    assert_null(gb_csv_read(path, &err));
    assert_int_equal(err.code, GB_ERANGE);
    snprintf(want, sizeof want, "'%s' is %zu bytes, more than the limit of %zu", path,
             GB_CSV_MAX_BYTES + 1, GB_CSV_MAX_BYTES);
    assert_string_equal(err.msg, want);

    /* missing file, a directory, no name */
    assert_null(gb_csv_read("/nonexistent/data.csv", &err));
    assert_int_equal(err.code, GB_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/data.csv"));
    assert_null(gb_csv_read(dir, &err));
    assert_int_equal(err.code, GB_EIO);
    assert_null(gb_csv_read("", &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_csv_read(NULL, NULL));
    assert_null(gb_csv_parse(NULL, 3, NULL, &err));
    assert_int_equal(err.code, GB_EINVAL);
    /* the default name */
    assert_null(gb_csv_parse("a\n", 2, NULL, &err));
    assert_string_equal(err.msg, "csv: no data rows after the header");

    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    const char *text = "\"x\",y,z\n1,2,3\n4,5,6\n";
    char *path = gb_test_write_file(dir, "d.csv", text, strlen(text));
    int failures = 0;
    for (long k = 1; k < 50; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        gb_csv_t *csv = gb_csv_read(path, &err);
        gb_alloc_fail_after(0);
        if (csv) {
            assert_int_equal(csv->n_rows, 2);
            assert_string_equal(csv->cols[0].name, "x");
            gb_csv_destroy(&csv);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        failures++;
    }
    /* file buffer, table, path, columns, 3 names, data */
    assert_int_equal(failures, 8);
    for (long k = 1; k < 50; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        gb_csv_t *csv = gb_csv_parse(text, strlen(text), "m", &err);
        gb_alloc_fail_after(0);
        if (csv) {
            gb_csv_destroy(&csv);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
    }
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),     cmocka_unit_test(test_ragged),
        cmocka_unit_test(test_bad_cells), cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_limits),    cmocka_unit_test(test_find),
        cmocka_unit_test(test_read_file), cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
