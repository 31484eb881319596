/* Small versioned text tables: the CA's registry and the enrollment token
 * store are each one file of records, one record per line, fields separated
 * by single spaces, a fixed first line naming the format and its version, and
 * '#' comment lines. Both files are read strictly: a damaged table stops its
 * owner rather than being guessed at. This module is the one reader; each
 * owner parses its own fields through a row callback. */
#ifndef GB_UTIL_TABLE_FILE_H
#define GB_UTIL_TABLE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Parses one record. fields[0..nfields) are NUL-terminated strings inside
 * the reader's buffer, valid only during the call; row points to the
 * zeroed slot of row_size bytes to fill. Returns 0 or a negative gb_err with
 * err filled; the reader prefixes nothing, so the message should name path
 * and lineno (both given). */
typedef int (*gb_table_row_fn)(char **fields, int nfields, void *row, const char *path,
                               size_t lineno, void *arg, gb_error_t *err);

typedef struct {
    const char *header;  /* exact first line, e.g. "# glassbox CA registry, version 1" */
    const char *what;    /* what the file is, for messages: "glassbox CA registry" */
    size_t max_bytes;    /* larger files are refused before they are read */
    size_t max_rows;     /* more records are refused (GB_ERANGE) */
    int fields;          /* exact number of fields per record */
    size_t row_size;     /* bytes per record in the returned array */
    gb_table_row_fn row; /* parses one record */
    void *arg;           /* passed to row */
} gb_table_format_t;

/* Reads the table at path. On success *rows is a new array of *n records
 * (NULL when there are none) which the caller frees with gb_free. Errors
 * (GB_EIO unreadable, GB_EFORMAT wrong header, NUL byte, unterminated last
 * line, wrong field count, or what row returned; GB_ERANGE too big or too many
 * rows; GB_ENOMEM) leave *rows NULL and *n 0, and name the file and line. An
 * empty file is GB_EFORMAT: a table always has its header. */
int gb_table_file_read(const char *path, const gb_table_format_t *format, void **rows, size_t *n,
                       gb_error_t *err) GB_MUST_CHECK;

/* Parses a decimal without sign or spaces, at most max; false when s is
 * empty, has another character, or is larger than max. */
bool gb_table_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* True when s is exactly n lowercase hex digits (and nothing after them). */
bool gb_table_is_hex(const char *s, size_t n);

#endif
