/* A strict reader for numeric CSV files: one header row of column names, then
 * rows of numbers, every row with as many cells as the header.
 *
 * It is strict because a training run on silently mangled data is worse than
 * no run: a ragged row, a cell that is not a number, an empty cell, NaN or
 * infinity, a value beyond float range, a duplicate or empty column name are
 * all errors that name the file, the line and the column (by number and by
 * name): "data.csv line 7, column 3 (temp): 'abc' is not a number". There is
 * no missing-value policy: a hole in the data is an error, to be fixed in the
 * file.
 *
 * The format: cells are separated by commas; spaces and tabs around a cell
 * are ignored; lines end in LF or CRLF; the final newline is optional and
 * blank lines are allowed only at the end of the file; a UTF-8 byte-order
 * mark before the header is skipped. Any cell may be quoted ("a,b", with ""
 * for a quote inside), which is how header names with commas or spaces are
 * written; a quoted number is still a number; a quoted cell cannot span
 * lines. Numbers are what strtod accepts in the C locale (so "1e-3", "+2",
 * " 3.5 ") except NaN and infinities. No comment lines.
 *
 * Limits, so a hostile or mistaken file is refused before it is allocated
 * for: GB_CSV_MAX_BYTES per file, GB_CSV_MAX_COLUMNS columns,
 * GB_CSV_MAX_LINE bytes per line, GB_CSV_MAX_CELL bytes per cell (after
 * trimming), GB_CSV_MAX_NAME bytes per column name.
 *
 * The table is row-major floats (row r, column c at data[r * n_cols + c]),
 * which is the order the file is read in and the order a dataset copies rows
 * out of. Values are parsed as doubles and then rounded to float; since
 * rounding could turn 2.0000001 into the integer 2, each column records the
 * first value that was not an integer exactly representable in a float, so
 * class labels can be checked against what the file said.
 *
 * Data row r (0-based) is on line r + 2 of the file (the header is line 1),
 * always: blank lines in the middle are errors, not skipped.
 *
 * Ownership: gb_csv_read and gb_csv_parse return a table the caller owns and
 * frees with gb_csv_destroy; the table owns every buffer it points to. */
#ifndef GB_DATA_CSV_H
#define GB_DATA_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GB_CSV_MAX_BYTES ((size_t)1 << 30) /* largest file read: 1 GiB */
#define GB_CSV_MAX_COLUMNS 4096            /* most columns */
#define GB_CSV_MAX_LINE ((size_t)1 << 20)  /* longest line, in bytes (1 MiB) */
#define GB_CSV_MAX_CELL 256                /* longest cell, in bytes, after trimming */
#define GB_CSV_MAX_NAME 256                /* longest column name, in bytes */

typedef struct {
    char *name;          /* the header's name, unquoted, NUL-terminated, owned */
    int64_t nonint_row;  /* first row whose value is not an integer of magnitude
                            <= 2^24 as written, or -1 when every value is one */
    double nonint_value; /* that value as parsed (before rounding to float) */
} gb_csv_column_t;

typedef struct {
    char *path;            /* the file as named by the caller, for messages, owned */
    int n_cols;            /* columns, 1..GB_CSV_MAX_COLUMNS */
    gb_csv_column_t *cols; /* n_cols columns in file order, owned */
    int64_t n_rows;        /* data rows, >= 1 */
    float *data;           /* n_rows x n_cols values, row-major, owned */
} gb_csv_t;

/* Reads the CSV file at `path`. Returns NULL and fills err on failure:
 * GB_EIO (cannot open or read), GB_EFORMAT (malformed: ragged row, not a
 * number, empty cell or name, duplicate name, no header, no data rows,
 * unterminated quote, line or cell too long), GB_ERANGE (NaN, infinity, a
 * value beyond float range, file over GB_CSV_MAX_BYTES, too many columns),
 * GB_ENOMEM. Format and range errors are logged as warnings (bad outside
 * input); the message names the file, the line and the column. */
gb_csv_t *gb_csv_read(const char *path, gb_error_t *err);

/* The same on len bytes of text in memory (tests, fuzzing): `name` (NULL:
 * "csv") stands for the file in messages. buf need not be NUL-terminated and
 * is not kept. */
gb_csv_t *gb_csv_parse(const char *buf, size_t len, const char *name, gb_error_t *err);

/* Frees the table; sets *csv to NULL; safe on NULL. */
void gb_csv_destroy(gb_csv_t **csv);

/* Index of the column named `name` (exact, case-sensitive match), or -1. */
int gb_csv_column(const gb_csv_t *csv, const char *name);

/* Like gb_csv_column, but a missing column is an error (GB_EINVAL, logged)
 * whose message lists the columns there are: "data.csv: no column named
 * 'price' (columns: a, b, c)". *col receives the index. */
int gb_csv_find(const gb_csv_t *csv, const char *name, int *col, gb_error_t *err) GB_MUST_CHECK;

/* Writes "a, b, c" (the column names, shortened with ", ..." to fit) into
 * buf, always NUL-terminated; returns buf. */
char *gb_csv_format_columns(const gb_csv_t *csv, char *buf, size_t cap);

/* The value at data row r, column c (both in range). */
static inline float gb_csv_value(const gb_csv_t *csv, int64_t r, int c)
{
    return csv->data[(size_t)r * (size_t)csv->n_cols + (size_t)c];
}

/* The file line data row r is on (r + 2). */
static inline int64_t gb_csv_line(int64_t r)
{
    return r + 2;
}

#endif
