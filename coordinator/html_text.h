/* A growing text buffer for writing HTML: formatted text, and text from
 * outside (client ids, class names) escaped so that it can only ever be
 * text in an element or an attribute value, never markup.
 *
 * Errors are sticky, as with a FILE: once an append fails (out of memory,
 * or past the buffer's max) every later append does nothing and
 * gb_html_text_take reports the first failure, so a writer of many small
 * pieces checks once at the end.
 *
 * Ownership: the buffer lives in the caller's gb_html_text_t (no _new);
 * gb_html_text_take hands its string to the caller (gb_free) and leaves
 * the buffer empty; gb_html_text_free releases it without taking it. */
#ifndef GB_COORDINATOR_HTML_TEXT_H
#define GB_COORDINATOR_HTML_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

typedef struct {
    char *s;    /* the text, NUL-terminated when not NULL */
    size_t len; /* bytes without the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* most bytes it may hold (0: GB_HTML_TEXT_DEFAULT_MAX) */
    int fail;   /* the first failure (0: none): GB_ENOMEM or GB_ERANGE */
} gb_html_text_t;

#define GB_HTML_TEXT_DEFAULT_MAX ((size_t)256 << 20)

/* Appends printf-formatted text as it is (the format is the program's,
 * never outside text; use gb_html_text_esc for that). */
void gb_html_text_printf(gb_html_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends s (NULL: nothing) with & < > " ' written as character
 * references, and each byte below 0x20 but tab and newline dropped; fit
 * for element text and quoted attribute values alike. */
void gb_html_text_esc(gb_html_text_t *t, const char *s);

/* Hands over the text: 0 with *out (the caller's, gb_free; "" when nothing
 * was appended) and *len, or the first failure with err filled and *out
 * NULL. The buffer is empty afterwards either way. */
int gb_html_text_take(gb_html_text_t *t, char **out, size_t *len, gb_error_t *err) GB_MUST_CHECK;

/* Frees the text without taking it; the buffer is empty afterwards. */
void gb_html_text_free(gb_html_text_t *t);

#endif
