/* The one reader of Glassbox's line tables (util/table_file.h). It reads the
 * whole file under a size limit, checks the header line, splits each record
 * line into exactly the expected number of space-separated fields and hands
 * them to the owner's row parser, growing the result array by doubling. */
#include "util/table_file.h"

#include <string.h>

#include "util/alloc.h"
#include "util/file.h"

bool gb_table_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!*s || strlen(s) > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

bool gb_table_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == '\0';
}

/* Splits line in place at single spaces into at most max fields; returns the
 * count found, max + 1 meaning "more than max". */
static int s_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max)
            return max + 1;
        fields[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp)
            return n;
        *sp = '\0';
        p = sp + 1;
    }
}

/* Makes room for one more row, doubling the array. */
static int s_grow(uint8_t **rows, size_t *room, size_t used, size_t row_size, const char *path,
                  gb_error_t *err)
{
    if (used < *room)
        return 0;
    size_t grow = *room ? *room * 2 : 16;
    uint8_t *g = gb_realloc(*rows, grow * row_size);
    if (!g)
        return gb_error_set(err, GB_ENOMEM, "out of memory reading %s", path);
    *rows = g;
    *room = grow;
    return 0;
}

int gb_table_file_read(const char *path, const gb_table_format_t *format, void **rows, size_t *n,
                       gb_error_t *err)
{
    const gb_table_format_t *f = format;
    *rows = NULL;
    *n = 0;
    char *fields[32];
    if (f->fields < 1 || f->fields >= (int)(sizeof fields / sizeof *fields) || !f->row_size)
        return gb_error_set(err, GB_EINVAL, "%s: bad table format (%d fields)", path, f->fields);
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = gb_file_read_all(path, f->max_bytes, &data, &len, err);
    if (rc)
        return rc;
    uint8_t *out = NULL;
    size_t used = 0, room = 0, lineno = 0;
    char *text = (char *)data;
    if (memchr(text, '\0', len)) {
        rc = gb_error_set(err, GB_EFORMAT, "%s: has a NUL byte", path);
        goto cleanup;
    }
    for (char *line = text; line < text + len;) {
        char *nl = strchr(line, '\n');
        if (!nl) {
            rc = gb_error_set(err, GB_EFORMAT, "%s: last line is not terminated (truncated?)",
                              path);
            goto cleanup;
        }
        *nl = '\0';
        lineno++;
        if (lineno == 1 && strcmp(line, f->header) != 0) {
            rc = gb_error_set(err, GB_EFORMAT, "%s: not a %s (line 1)", path, f->what);
            goto cleanup;
        }
        if (line[0] != '#') {
            if (used == f->max_rows) {
                rc = gb_error_set(err, GB_ERANGE, "%s: more than %zu entries", path,
                                  f->max_rows);
                goto cleanup;
            }
            int got = s_split(line, fields, f->fields);
            if (got != f->fields) {
                rc = gb_error_set(err, GB_EFORMAT, "%s line %zu: expected %d fields, got %s%d",
                                  path, lineno, f->fields, got > f->fields ? "more than " : "",
                                  got > f->fields ? f->fields : got);
                goto cleanup;
            }
            if ((rc = s_grow(&out, &room, used, f->row_size, path, err)) != 0)
                goto cleanup;
            uint8_t *row = out + used * f->row_size;
            memset(row, 0, f->row_size);
            if ((rc = f->row(fields, got, row, path, lineno, f->arg, err)) != 0)
                goto cleanup;
            used++;
        }
        line = nl + 1;
    }
    if (lineno == 0) {
        rc = gb_error_set(err, GB_EFORMAT, "%s: empty (not a %s)", path, f->what);
        goto cleanup;
    }
    *rows = out;
    *n = used;
    out = NULL;
cleanup:
    gb_free(out);
    gb_free(data);
    return rc;
}
