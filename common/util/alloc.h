/* Allocation with a failure-injection hook for tests (SQLite's test_malloc).
 *
 * All of libglassbox allocates through these, so a test can make the Nth
 * allocation fail and prove that every constructor cleans up and reports. */
#ifndef GB_UTIL_ALLOC_H
#define GB_UTIL_ALLOC_H

#include <stddef.h>

/* malloc/calloc/realloc/free with the hook; NULL on failure or injected failure. */
void *gb_malloc(size_t size);
void *gb_calloc(size_t n, size_t size);
void *gb_realloc(void *p, size_t size);
void gb_free(void *p);

/* A copy of the NUL-terminated s in a new buffer (free with gb_free), or NULL. */
char *gb_strdup(const char *s);

/* 64-byte aligned, zeroed allocation for large float buffers; large ones are
 * advised to use huge pages (first touch of 4 KiB pages is slow here).
 * Free with gb_free_aligned. */
void *gb_alloc_aligned(size_t size);
void gb_free_aligned(void *p);

/* Test hook: the countdown-th allocation from now fails (1 = the next one);
 * 0 disables injection. Returns how many allocations happened since the last
 * call (lets a test loop over every allocation point). Not thread-safe. */
long gb_alloc_fail_after(long countdown);

#endif
