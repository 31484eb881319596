/* Reader for the GBTORCH1 files that tests/fixtures/torch_reference.py writes
 * for the PyTorch cross-checks (tests/engine/test_torch_crosscheck.c,
 * tests/engine/test_torch_rnn.c). Test-only code.
 *
 * File format, all integers and floats little-endian (the script's header is
 * the authority and lists each group's records):
 *
 *     magic     8 bytes  "GBTORCH1"
 *     records   until end of file, each:
 *         u32   name length L (1..GB_TEST_FIXTURE_MAX_NAME)
 *         L     bytes of name (ASCII, no NUL)
 *         u32   count N (0..GB_TEST_FIXTURE_MAX_COUNT)
 *         N     float32 values
 *
 * A fixture is read whole into memory and then looked up by record name;
 * names a test does not ask for are ignored. The reader refuses a file with
 * more than GB_TEST_FIXTURE_MAX_RECORDS records, a repeated name, a name or
 * count out of range, or a truncated record (including 1 to 3 stray bytes
 * after the last record). */
#ifndef GB_TEST_TORCH_FIXTURE_H
#define GB_TEST_TORCH_FIXTURE_H

#include <stddef.h>

#include "util/error.h"

#define GB_TEST_FIXTURE_MAX_RECORDS 64
#define GB_TEST_FIXTURE_MAX_NAME 255
#define GB_TEST_FIXTURE_MAX_COUNT (1u << 26) /* floats per record: 256 MiB */

/* A fixture file's records, in file order; opaque. */
typedef struct gb_test_fixture gb_test_fixture_t;

/* Reads the GBTORCH1 file at path. Returns a fixture the caller owns (free
 * it with gb_test_fixture_destroy), or NULL with err (may be NULL) naming
 * the path, the record and what is wrong; on failure nothing is left
 * allocated or open. Does not touch cmocka, so it may be called outside a
 * test. */
gb_test_fixture_t *gb_test_fixture_read(const char *path, gb_error_t *err)
    __attribute__((warn_unused_result));

/* Reads <GB_BINARY_DIR>/<rel> with gb_test_fixture_read and fails the
 * current cmocka test if it cannot; when the file does not exist the failure
 * message adds `how`, the command that makes it. Returns a fixture the
 * caller owns, never NULL. */
gb_test_fixture_t *gb_test_fixture_load(const char *rel, const char *how);

/* Frees *fx and its records and sets *fx to NULL; safe on NULL and on a
 * NULL *fx. Every pointer returned by find/get for it becomes invalid. */
void gb_test_fixture_destroy(gb_test_fixture_t **fx);

/* The values of the record `name`, or NULL when there is none; its length
 * goes to *n (left alone when NULL is returned). The pointer is borrowed: it
 * lives until fx is destroyed. A record of 0 values still has a non-NULL
 * pointer. */
const float *gb_test_fixture_find(const gb_test_fixture_t *fx, const char *name, size_t *n);

/* The record `name`, which must hold n floats (any count when n is 0);
 * fails the current cmocka test when it is missing or has another length.
 * Borrowed like gb_test_fixture_find's result. */
const float *gb_test_fixture_get(const gb_test_fixture_t *fx, const char *name, size_t n);

#endif
