/* JSON through jansson (Debian's libjansson), with Glassbox's three rules
 * for every document it writes in one place:
 *
 *  - Names that come from outside (class names, client ids, file names,
 *    model metadata) may not be valid UTF-8, which jansson's json_string
 *    refuses. gb_json_string writes each byte that does not begin a valid
 *    UTF-8 sequence as U+FFFD, the Unicode replacement character, so the
 *    document is always valid JSON and a bad byte is visible, not dropped.
 *  - Reals are written with 9 significant digits (GB_JSON_FLAGS), enough
 *    for every float32 to read back exactly; -0 is written as 0, and a NaN
 *    or infinity is never written (gb_json_real returns NULL for it, which
 *    makes the json_object_set_new or json_array_append_new it is given to
 *    fail).
 *  - Keys keep the order they were set in (JSON_PRESERVE_ORDER; jansson
 *    2.14 keeps insertion order anyway, the flag says so on older ones).
 *
 * Ownership is jansson's: the json_t * constructors return a new reference
 * the caller owns (hand it to a *_set_new / *_append_new call, or
 * json_decref it); the writers only read the document. */
#ifndef GB_UTIL_JSON_H
#define GB_UTIL_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "util/error.h"

/* Flags of every dump: insertion order, 9 significant digits, one line with
 * ", " and ": " between items (jansson's default separators). */
#define GB_JSON_FLAGS (JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

/* A JSON string of s, each byte that does not start a valid UTF-8 sequence
 * (overlong forms, surrogates and code points beyond U+10FFFF included)
 * replaced by U+FFFD; a NULL s gives JSON null. NULL only when out of
 * memory. */
json_t *gb_json_string(const char *s);

/* A JSON real of v, -0 written as 0; NULL for a NaN or an infinity (and
 * when out of memory). */
json_t *gb_json_real(double v);

/* gb_json_real(v), or JSON null for a NaN or an infinity (a figure that is
 * not defined, such as a loss without samples). NULL only when out of
 * memory. */
json_t *gb_json_real_or_null(double v);

/* Writes doc as one document followed by a newline into a new
 * NUL-terminated buffer (*out, *len bytes without the NUL) that the caller
 * frees with gb_free (so allocation-failure tests reach it). On failure
 * *out is NULL and err says why (GB_ENOMEM). */
int gb_json_dump(const json_t *doc, char **out, size_t *len, gb_error_t *err) GB_MUST_CHECK;

/* Writes doc to f as one line (the document and a newline) and flushes f.
 * GB_EIO when f refuses it. */
int gb_json_print(FILE *f, const json_t *doc, gb_error_t *err) GB_MUST_CHECK;

#endif
