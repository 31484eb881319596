/* Class names, so that heatmaps and reports say "Sneaker" rather than
 * "class 7": Fashion-MNIST's ten names are built in, any other data set's
 * come from a text file of one name per line (`--class-names FILE`), and a
 * class nobody named is called "class K".
 *
 * A names list always covers exactly the model's class count: slot K holds
 * class K's name, so a caller never needs a fallback of its own for a class
 * in range. The file is outside input and is held to these rules; every
 * refusal names the file and the line ("names.txt:4: empty name for class
 * 3"):
 *
 * - At most GB_CLASS_NAMES_MAX_LEN bytes a name (after trimming), at most as
 *   many names as the model has classes; a file over
 *   GB_CLASS_NAMES_FILE_MAX(n_classes) bytes (room for that many names of
 *   the longest length, with two spaces of padding and CRLF each, and a
 *   byte-order mark) is refused unread (GB_ERANGE).
 * - Line K + 1 names class K. LF or CRLF line ends; a leading UTF-8
 *   byte-order mark is skipped; spaces around a name are trimmed (inner
 *   spaces stay: "Ankle boot").
 * - A file that ends without a final newline (cut short, or written by an
 *   editor that adds none) is read as it is: its last line is a name like
 *   any other. If the cut falls inside a multi-byte character, that line is
 *   not valid UTF-8 and is refused.
 * - A name must be printable UTF-8: no bytes that are not UTF-8 (overlong
 *   forms and surrogates included), no control characters (C0 such as tab
 *   and NUL, DEL, C1 U+0080..U+009F). GB_EFORMAT, naming the line and byte.
 * - An empty (or all-space) line before a name is refused (GB_EFORMAT): the
 *   names after it would silently shift class by class. Blank lines at the
 *   very end of the file are ignored.
 * - Two classes with the same name are refused (GB_EFORMAT): a report
 *   would not say which one it meant.
 * - More names than classes: refused at the first extra line (GB_EFORMAT),
 *   since the file is then for another model or data set.
 * - Fewer names than classes: refused (GB_EFORMAT, naming both counts): a
 *   file one name short is as likely a name lost in the middle as one
 *   missing at the end, and every report after it would name the classes
 *   wrongly without a word. The count must equal the model's classes.
 * - A file with no name at all: refused (GB_EFORMAT).
 *
 * The heatmaps' bitmap font (explain/heatmap.h) draws ASCII only; other
 * characters of a name come out blank there but are kept in JSON and text.
 *
 * Ownership: the constructors return a list the caller owns and frees with
 * gb_class_names_destroy. Strings handed out are borrowed from the list and
 * live until it is destroyed. Nothing keeps a pointer to the caller's
 * memory. A list is never changed after construction, so threads may share
 * it. */
#ifndef GB_DATA_CLASS_NAMES_H
#define GB_DATA_CLASS_NAMES_H

#include <stddef.h>

#include "util/error.h"

/* Longest name in bytes (UTF-8, after trimming, without the line end). */
#define GB_CLASS_NAMES_MAX_LEN 64
/* Largest class count a list is made for (the summary's GB_SUMMARY_MAX_CLASSES). */
#define GB_CLASS_NAMES_MAX_CLASSES 10000
/* Largest names file for n classes: n lines of a name, two spaces of
 * padding and CRLF each, and a byte-order mark. */
#define GB_CLASS_NAMES_FILE_MAX(n) ((size_t)(n) * (GB_CLASS_NAMES_MAX_LEN + 4) + 3)
/* A buffer that holds any label gb_class_names_label writes. */
#define GB_CLASS_NAMES_LABEL_CAP (GB_CLASS_NAMES_MAX_LEN + 1)

typedef struct gb_class_names gb_class_names_t;

/* Names for n_classes classes (1..GB_CLASS_NAMES_MAX_CLASSES) from the file
 * at path, by the rules at the top of this file. Returns NULL and fills err:
 * GB_EINVAL for a bad n_classes, GB_EIO when the file cannot be read,
 * GB_ERANGE when it is too big, GB_EFORMAT for a bad line, GB_ENOMEM. */
gb_class_names_t *gb_class_names_load(const char *path, int n_classes, gb_error_t *err);

/* True when `data` (a --data value) names the Fashion-MNIST data set:
 * "fashion-mnist", or "idx:" GB_FASHION_MNIST_DIR with or without a final
 * slash. False for NULL. */
int gb_class_names_is_fashion_mnist(const char *data);

/* The built-in names for `data` (may be NULL): Fashion-MNIST's ten
 * (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag,
 * Ankle boot) when gb_class_names_is_fashion_mnist(data) and n_classes is
 * 10, else "class 0" .. "class N-1". Returns NULL and fills err (GB_EINVAL
 * for a bad n_classes, GB_ENOMEM). */
gb_class_names_t *gb_class_names_builtin(const char *data, int n_classes, gb_error_t *err);

/* What a command with a --class-names flag wants: the file's names when
 * path is not NULL (gb_class_names_load, its errors prefixed with
 * "--class-names: "), else gb_class_names_builtin(data, n_classes). */
gb_class_names_t *gb_class_names_choose(const char *path, const char *data, int n_classes,
                                        gb_error_t *err);

/* Frees the list; sets *names to NULL; safe on NULL. */
void gb_class_names_destroy(gb_class_names_t **names);

/* The class count the list was made for. */
int gb_class_names_count(const gb_class_names_t *names);

/* Classes that have a real name (from the file or built in) rather than
 * the "class K" fallback: names 0..named-1 are real. */
int gb_class_names_named(const gb_class_names_t *names);

/* Where the names came from: "fashion-mnist", the file's path as given, or
 * "none" (all fallbacks). Borrowed, as long as the list. */
const char *gb_class_names_source(const gb_class_names_t *names);

/* Class cls's name, borrowed as long as the list; NULL when names is NULL
 * or cls is outside 0..count-1. */
const char *gb_class_names_get(const gb_class_names_t *names, int cls);

/* Class cls's name when the list has one, else "class <cls>" written into
 * buf (cap bytes, at least GB_CLASS_NAMES_LABEL_CAP to never cut it): for
 * callers whose class indices come from elsewhere (a decoded message) and
 * may lie beyond the list, or that have no list (names NULL). Returns the
 * name or buf; never NULL. */
const char *gb_class_names_label(const gb_class_names_t *names, int cls, char *buf, size_t cap);

#endif
