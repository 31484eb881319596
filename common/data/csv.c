/* Strict numeric CSV reader (see csv.h). The whole file is read with a size
 * cap, then walked line by line: the header first (names unquoted, checked
 * for emptiness, length, control characters and duplicates), then a count of
 * the data lines so the float table is allocated once, then each data line
 * twice: a first pass splits it into cells only to count them, so a row with
 * the wrong number of cells is reported as ragged rather than by whichever of
 * its cells fails to parse first; the second pass parses every cell with
 * strtod and checks that the whole cell was consumed and that the value is
 * finite and fits a float. No allocation happens per line: cells are
 * unquoted into a fixed buffer of GB_CSV_MAX_CELL bytes. */
#include "data/csv.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

#define S_EXACT_INT 16777216.0 /* 2^24: every integer up to this is exact in a float */
#define S_SHOW 40              /* bytes of a bad cell quoted in a message */
#define S_ELLIPSIS ", ..."

/* The tokenizer's own failures, turned into messages by the caller. */
enum { S_UNTERMINATED = 1, S_AFTER_QUOTE = 2 };

typedef struct {
    const char *raw; /* cell text, trimmed of blanks, quotes included */
    size_t raw_len;  /* its length */
    bool quoted;     /* raw starts and ends with '"' */
} s_cell_t;

typedef struct {
    const char *name;    /* the file, for messages */
    const gb_csv_t *csv; /* the table so far: names once the header is read */
    gb_error_t *err;     /* caller's error buffer */
} s_ctx_t;

static bool s_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Copies up to S_SHOW bytes of s into out for a message, control characters
 * as '?', with "..." when shortened. */
static const char *s_show(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0, lim = n < S_SHOW ? n : S_SHOW;
    for (size_t i = 0; i < lim && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (n > lim)
        for (int i = 0; i < 3 && k + 1 < cap; i++)
            out[k++] = '.';
    out[k] = '\0';
    return out;
}

/* Fails with a message prefixed by the file, the line and, when col >= 1,
 * the column (with its name once the header is known); logged. */
static int s_fail(const s_ctx_t *x, int code, int64_t line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int s_fail(const s_ctx_t *x, int code, int64_t line, int col, const char *fmt, ...)
{
    char msg[GB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (col < 1)
        return gb_error_warn(x->err, code, "%s line %lld: %s", x->name, (long long)line, msg);
    if (x->csv && x->csv->cols && col <= x->csv->n_cols && x->csv->cols[col - 1].name)
        return gb_error_warn(x->err, code, "%s line %lld, column %d (%s): %s", x->name,
                             (long long)line, col, x->csv->cols[col - 1].name, msg);
    return gb_error_warn(x->err, code, "%s line %lld, column %d: %s", x->name, (long long)line, col,
                         msg);
}

/* Splits the next cell off [*p, end): *p moves past its comma (and *more is
 * true) or to end. Returns 0, S_UNTERMINATED or S_AFTER_QUOTE. */
static int s_next_cell(const char **p, const char *end, s_cell_t *cell, bool *more)
{
    const char *s = *p;
    while (s < end && s_blank(*s))
        s++;
    if (s < end && *s == '"') {
        const char *q = s + 1;
        for (;;) {
            q = q < end ? memchr(q, '"', (size_t)(end - q)) : NULL;
            if (!q)
                return S_UNTERMINATED;
            if (q + 1 < end && q[1] == '"') {
                q += 2;
                continue;
            }
            break;
        }
        cell->raw = s;
        cell->raw_len = (size_t)(q + 1 - s);
        cell->quoted = true;
        s = q + 1;
        while (s < end && s_blank(*s))
            s++;
        if (s < end && *s != ',')
            return S_AFTER_QUOTE;
    } else {
        const char *comma = s < end ? memchr(s, ',', (size_t)(end - s)) : NULL;
        const char *e = comma ? comma : end, *t = e;
        while (t > s && s_blank(t[-1]))
            t--;
        cell->raw = s;
        cell->raw_len = (size_t)(t - s);
        cell->quoted = false;
        s = e;
    }
    *more = s < end;
    *p = s < end ? s + 1 : end;
    return 0;
}

/* The cell's content without its quotes ("" -> ") into buf (cap bytes with
 * the NUL); returns its length, or SIZE_MAX when it does not fit. */
static size_t s_unquote(const s_cell_t *cell, char *buf, size_t cap)
{
    const char *s = cell->raw, *e = cell->raw + cell->raw_len;
    if (cell->quoted) {
        s++;
        e--;
    }
    size_t n = 0;
    while (s < e) {
        char c = *s++;
        if (cell->quoted && c == '"')
            s++; /* the second quote of "" */
        if (n + 1 >= cap)
            return SIZE_MAX;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return n;
}

/* Reports a tokenizer failure at column col. */
static int s_cell_fail(const s_ctx_t *x, int rc, int64_t line, int col)
{
    if (rc == S_UNTERMINATED)
        return s_fail(x, GB_EFORMAT, line, col,
                      "unterminated quote (a quoted cell ends on its own line)");
    return s_fail(x, GB_EFORMAT, line, col, "text after the closing quote");
}

/* Finds the line starting at s: *e receives its end without LF or CRLF,
 * *next the start of the line after (or end). Checks length and NUL bytes. */
static int s_line(const s_ctx_t *x, const char *s, const char *end, int64_t line, const char **e,
                  const char **next)
{
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *t = nl ? nl : end;
    *next = nl ? nl + 1 : end;
    if (t > s && t[-1] == '\r')
        t--;
    *e = t;
    if ((size_t)(t - s) > GB_CSV_MAX_LINE)
        return s_fail(x, GB_EFORMAT, line, 0,
                      "%zu bytes long, more than the limit of %zu bytes per line", (size_t)(t - s),
                      GB_CSV_MAX_LINE);
    if (memchr(s, '\0', (size_t)(t - s)))
        return s_fail(x, GB_EFORMAT, line, 0, "NUL byte in the line (not a text file?)");
    return 0;
}

/* Counts the cells of [s, e): at most GB_CSV_MAX_LINE + 1, as lines are
 * checked for length first. */
static int s_count_cells(const s_ctx_t *x, const char *s, const char *e, int64_t line, int *count)
{
    bool more = true;
    int n = 0;
    while (more) {
        s_cell_t cell;
        int rc = s_next_cell(&s, e, &cell, &more);
        if (rc)
            return s_cell_fail(x, rc, line, n + 1);
        n++;
    }
    *count = n;
    return 0;
}

static int s_header(const s_ctx_t *x, gb_csv_t *csv, const char *s, const char *e)
{
    int n = 0;
    int rc = s_count_cells(x, s, e, 1, &n);
    if (rc)
        return rc;
    if (n > GB_CSV_MAX_COLUMNS)
        return s_fail(x, GB_ERANGE, 1, 0, "%d columns, more than the limit of %d", n,
                      GB_CSV_MAX_COLUMNS);
    csv->cols = gb_calloc((size_t)n, sizeof *csv->cols);
    if (!csv->cols)
        return gb_error_set(x->err, GB_ENOMEM, "%s: out of memory for %d columns", x->name, n);
    csv->n_cols = n;
    char buf[GB_CSV_MAX_NAME + 1], show[S_SHOW + 4];
    bool more = true;
    for (int c = 0; c < n; c++) {
        s_cell_t cell;
        (void)s_next_cell(&s, e, &cell, &more); /* counted above: cannot fail */
        size_t len = s_unquote(&cell, buf, sizeof buf);
        if (len == SIZE_MAX)
            return s_fail(x, GB_EFORMAT, 1, c + 1, "column name longer than %d bytes",
                          GB_CSV_MAX_NAME);
        if (len == 0)
            return s_fail(x, GB_EFORMAT, 1, c + 1, "empty column name");
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
                return s_fail(x, GB_EFORMAT, 1, c + 1, "control character in the column name '%s'",
                              s_show(buf, len, show, sizeof show));
        for (int d = 0; d < c; d++)
            if (strcmp(csv->cols[d].name, buf) == 0)
                return s_fail(x, GB_EFORMAT, 1, c + 1,
                              "duplicate column name '%s' (also column %d)",
                              s_show(buf, len, show, sizeof show), d + 1);
        csv->cols[c].name = gb_malloc(len + 1);
        if (!csv->cols[c].name)
            return gb_error_set(x->err, GB_ENOMEM, "%s: out of memory for column names", x->name);
        memcpy(csv->cols[c].name, buf, len + 1);
        csv->cols[c].nonint_row = -1;
    }
    return 0;
}

/* Parses one data line [s, e) (row r) into `out`. */
static int s_row(const s_ctx_t *x, gb_csv_t *csv, int64_t r, const char *s, const char *e,
                 float *out)
{
    const int64_t line = gb_csv_line(r);
    const char *t = s;
    while (t < e && s_blank(*t))
        t++;
    if (t == e)
        return s_fail(x, GB_EFORMAT, line, 0,
                      "empty line (blank lines are allowed only at the end of the file)");
    int n = 0;
    int rc = s_count_cells(x, s, e, line, &n);
    if (rc)
        return rc;
    if (n != csv->n_cols)
        return gb_error_warn(x->err, GB_EFORMAT, "%s line %lld has %d cell%s, the header has %d",
                             x->name, (long long)line, n, n == 1 ? "" : "s", csv->n_cols);
    char buf[GB_CSV_MAX_CELL + 1], show[S_SHOW + 4];
    bool more = true;
    for (int c = 0; c < csv->n_cols; c++) {
        s_cell_t cell;
        (void)s_next_cell(&s, e, &cell, &more); /* counted above: cannot fail */
        size_t len = s_unquote(&cell, buf, sizeof buf);
        if (len == SIZE_MAX)
            return s_fail(x, GB_EFORMAT, line, c + 1, "cell is more than %d bytes long",
                          GB_CSV_MAX_CELL);
        char *v0 = buf; /* blanks inside quotes */
        while (s_blank(*v0))
            v0++;
        while (len > 0 && s_blank(buf[len - 1]))
            buf[--len] = '\0';
        if (*v0 == '\0')
            return s_fail(x, GB_EFORMAT, line, c + 1,
                          "empty cell (missing values are not supported: fill in or drop the row)");
        size_t vlen = strlen(v0);
        char *endp = NULL;
        errno = 0;
        double v = (*v0 == '\r' || *v0 == '\v' || *v0 == '\f') ? 0.0 : strtod(v0, &endp);
        if (!endp || endp == v0 || *endp != '\0')
            return s_fail(x, GB_EFORMAT, line, c + 1, "'%s' is not a number",
                          s_show(v0, vlen, show, sizeof show));
        if (isnan(v) || (isinf(v) && errno != ERANGE))
            return s_fail(x, GB_ERANGE, line, c + 1, "'%s' is not a finite number",
                          s_show(v0, vlen, show, sizeof show));
        if (fabs(v) > FLT_MAX)
            return s_fail(x, GB_ERANGE, line, c + 1, "'%s' is beyond the float range (+-%g)",
                          s_show(v0, vlen, show, sizeof show), (double)FLT_MAX);
        gb_csv_column_t *col = &csv->cols[c];
        if (col->nonint_row < 0 && !(v == floor(v) && fabs(v) <= S_EXACT_INT)) {
            col->nonint_row = r;
            col->nonint_value = v;
        }
        out[c] = (float)v;
    }
    return 0;
}

gb_csv_t *gb_csv_parse(const char *buf, size_t len, const char *name, gb_error_t *err)
{
    if (!name)
        name = "csv";
    if (!buf && len > 0) {
        gb_error_set(err, GB_EINVAL, "gb_csv_parse: NULL buffer");
        return NULL;
    }
    gb_csv_t *csv = gb_calloc(1, sizeof *csv);
    size_t nlen = strlen(name);
    char *path = csv ? gb_malloc(nlen + 1) : NULL;
    if (!path) {
        gb_free(csv);
        gb_error_set(err, GB_ENOMEM, "%s: out of memory for a CSV table", name);
        return NULL;
    }
    memcpy(path, name, nlen + 1);
    csv->path = path;
    s_ctx_t x = {.name = csv->path, .csv = csv, .err = err};
    const char *p = buf ? buf : "", *end = p + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* UTF-8 byte-order mark */
    while (end > p && (end[-1] == '\n' || end[-1] == '\r' || s_blank(end[-1])))
        end--; /* blank lines at the end, and the final newline */
    int rc;
    const char *e, *next;
    if (p == end) {
        gb_error_warn(err, GB_EFORMAT, "%s: empty file: expected a header row of column names",
                      name);
        goto fail;
    }
    if ((rc = s_line(&x, p, end, 1, &e, &next)) || (rc = s_header(&x, csv, p, e)))
        goto fail;
    p = next;
    if (p == end) {
        gb_error_warn(err, GB_EFORMAT, "%s: no data rows after the header", name);
        goto fail;
    }
    int64_t rows = 1;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
        rows++;
    size_t cells, bytes;
    if (__builtin_mul_overflow((size_t)rows, (size_t)csv->n_cols, &cells) ||
        __builtin_mul_overflow(cells, sizeof(float), &bytes)) {
        gb_error_warn(err, GB_ERANGE, "%s: %lld rows of %d columns overflow memory", name,
                      (long long)rows, csv->n_cols);
        goto fail;
    }
    csv->data = gb_malloc(bytes);
    if (!csv->data) {
        gb_error_set(err, GB_ENOMEM, "%s: out of memory for %lld rows of %d columns (%zu bytes)",
                     name, (long long)rows, csv->n_cols, bytes);
        goto fail;
    }
    csv->n_rows = rows;
    for (int64_t r = 0; r < rows; r++) {
        if ((rc = s_line(&x, p, end, gb_csv_line(r), &e, &next)) ||
            (rc = s_row(&x, csv, r, p, e, csv->data + (size_t)r * (size_t)csv->n_cols)))
            goto fail;
        p = next;
    }
    return csv;

fail:
    gb_csv_destroy(&csv);
    return NULL;
}

gb_csv_t *gb_csv_read(const char *path, gb_error_t *err)
{
    if (!path || !*path) {
        gb_error_set(err, GB_EINVAL, "csv: empty file name");
        return NULL;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    gb_error_t local = {0};
    int rc = gb_file_read_all(path, GB_CSV_MAX_BYTES, &data, &len, &local);
    if (rc) {
        gb_error_warn(err, rc, "%s", local.msg);
        return NULL;
    }
    gb_csv_t *csv = gb_csv_parse((const char *)data, len, path, err);
    gb_free(data);
    return csv;
}

void gb_csv_destroy(gb_csv_t **csv)
{
    if (!csv || !*csv)
        return;
    gb_csv_t *t = *csv;
    if (t->cols)
        for (int c = 0; c < t->n_cols; c++)
            gb_free(t->cols[c].name);
    gb_free(t->cols);
    gb_free(t->data);
    gb_free(t->path);
    gb_free(t);
    *csv = NULL;
}

int gb_csv_column(const gb_csv_t *csv, const char *name)
{
    if (!csv || !name)
        return -1;
    for (int c = 0; c < csv->n_cols; c++)
        if (strcmp(csv->cols[c].name, name) == 0)
            return c;
    return -1;
}

char *gb_csv_format_columns(const gb_csv_t *csv, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return buf;
    buf[0] = '\0';
    if (!csv)
        return buf;
    size_t total = 0;
    for (int c = 0; c < csv->n_cols; c++)
        total += strlen(csv->cols[c].name) + (c ? 2 : 0);
    /* all of them when they fit, else as many as leave room for ", ..." */
    const size_t tail = sizeof S_ELLIPSIS - 1;
    size_t used = 0;
    for (int c = 0; c < csv->n_cols; c++) {
        size_t len = strlen(csv->cols[c].name), sep = c ? 2 : 0;
        if (total >= cap && used + sep + len + tail >= cap) {
            const char *more = c ? S_ELLIPSIS : "...";
            if (used + strlen(more) < cap)
                memcpy(buf + used, more, strlen(more) + 1);
            break;
        }
        memcpy(buf + used, ", ", sep);
        memcpy(buf + used + sep, csv->cols[c].name, len + 1);
        used += sep + len;
    }
    return buf;
}

int gb_csv_find(const gb_csv_t *csv, const char *name, int *col, gb_error_t *err)
{
    if (col)
        *col = -1;
    if (!csv || !name || !col)
        return gb_error_set(err, GB_EINVAL, "gb_csv_find: NULL argument");
    int c = gb_csv_column(csv, name);
    if (c < 0) {
        char list[GB_ERROR_MSG_MAX / 2], show[S_SHOW + 4];
        return gb_error_warn(err, GB_EINVAL, "%s line 1: no column named '%s' (columns: %s)",
                             csv->path, s_show(name, strlen(name), show, sizeof show),
                             gb_csv_format_columns(csv, list, sizeof list));
    }
    *col = c;
    return 0;
}
