/* Tests for util/alloc: the wrappers, the aligned zeroed allocator, and the
 * failure-injection countdown that every other test's allocation-failure
 * loop relies on (which call fails, that only one fails, what the return
 * value counts). Doubles as the usage example for those loops:
 *
 *     for (k = 1;; k++) {
 *         gb_alloc_fail_after(k);          // the k-th allocation fails
 *         obj = constructor(..., &err);
 *         gb_alloc_fail_after(0);          // off again
 *         if (obj) break;                  // k - 1 allocations sufficed
 *         assert err.code == GB_ENOMEM;    // and ASan checks for leaks
 *     }
 */
#include "testutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/time.h"

static void test_wrappers(void **state)
{
    (void)state;
    gb_alloc_fail_after(0);
    char *p = gb_malloc(16);
    assert_non_null(p);
    memcpy(p, "0123456789abcde", 16);
    p = gb_realloc(p, 4096);
    assert_non_null(p);
    assert_string_equal(p, "0123456789abcde"); /* contents kept */
    gb_free(p);
    int *z = gb_calloc(100, sizeof *z);
    assert_non_null(z);
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    gb_free(z);
    /* Zero sizes give valid, freeable pointers. */
    void *a = gb_malloc(0), *b = gb_calloc(0, 8), *c = gb_calloc(8, 0), *d = gb_realloc(NULL, 0);
    assert_true(a && b && c && d);
    gb_free(a);
    gb_free(b);
    gb_free(c);
    gb_free(d);
    /* realloc(NULL, n) allocates. */
    p = gb_realloc(NULL, 10);
    assert_non_null(p);
    gb_free(p);
    gb_free(NULL);
}

static void test_aligned(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 63, 64, 65, 1000, 4096, 4u << 20, (4u << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = gb_alloc_aligned(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        /* Zeroed, and usable up to the size rounded to 64 bytes. */
        size_t usable = (sizes[i] + 63) / 64 * 64;
        if (usable == 0)
            usable = 64;
        for (size_t j = 0; j < usable; j++)
            if (p[j] != 0)
                fail_msg("size %zu: byte %zu is %d", sizes[i], j, p[j]);
        memset(p, 0xab, usable);
        /* 4 MiB and more start on a 2 MiB boundary (huge pages). */
        if (sizes[i] >= (4u << 20))
            assert_int_equal((uintptr_t)p % (2u << 20), 0);
        gb_free_aligned(p);
    }
    gb_free_aligned(NULL);
}

/* gb_alloc_fail_after(k): the k-th allocation from now fails, only that
 * one, through every entry point; it returns the number of allocations
 * since the previous call. */
static void test_countdown(void **state)
{
    (void)state;
    gb_alloc_fail_after(0);
    void *a = gb_malloc(8), *b = gb_calloc(1, 8), *c = gb_alloc_aligned(8);
    void *d = gb_realloc(gb_malloc(1), 16);
    assert_true(a && b && c && d);
    assert_int_equal(gb_alloc_fail_after(0), 5);
    /* Frees are not allocations. */
    gb_free(a);
    gb_free(b);
    gb_free_aligned(c);
    gb_free(d);
    assert_int_equal(gb_alloc_fail_after(0), 0);

    /* The 3rd allocation fails, the ones around it do not. */
    gb_alloc_fail_after(3);
    void *p[6];
    for (int i = 0; i < 6; i++)
        p[i] = gb_malloc(8);
    assert_int_equal(gb_alloc_fail_after(0), 6); /* the failed one counts */
    for (int i = 0; i < 6; i++) {
        if (i == 2)
            assert_null(p[i]);
        else
            assert_non_null(p[i]);
        gb_free(p[i]);
    }

    /* Each entry point honours it. */
    gb_alloc_fail_after(1);
    assert_null(gb_malloc(8));
    gb_alloc_fail_after(1);
    assert_null(gb_calloc(2, 8));
    gb_alloc_fail_after(1);
    assert_null(gb_alloc_aligned(8));
    /* A failed realloc leaves the block as it was. */
    char *s = gb_malloc(6);
    assert_non_null(s);
    memcpy(s, "hello", 6);
    gb_alloc_fail_after(1);
    assert_null(gb_realloc(s, 1 << 20));
    assert_string_equal(s, "hello");
    gb_free(s);

    /* 0 and negative values disable injection. */
    gb_alloc_fail_after(-5);
    for (int i = 0; i < 10; i++) {
        void *q = gb_malloc(1);
        assert_non_null(q);
        gb_free(q);
    }
    gb_alloc_fail_after(0);
    /* After firing, injection stays off until set again. */
    gb_alloc_fail_after(1);
    assert_null(gb_malloc(1));
    void *q = gb_malloc(1);
    assert_non_null(q);
    gb_free(q);
    gb_alloc_fail_after(0);
}

/* gb_strdup copies, and fails like every allocation under injection. */
static void test_strdup(void **state)
{
    (void)state;
    char *c = gb_strdup("spec text");
    assert_non_null(c);
    assert_string_equal(c, "spec text");
    gb_free(c);
    c = gb_strdup("");
    assert_non_null(c);
    assert_string_equal(c, "");
    gb_free(c);
    gb_alloc_fail_after(1);
    assert_null(gb_strdup("x"));
    gb_alloc_fail_after(0);
}

/* The monotonic clock moves forward. */
static void test_time_now(void **state)
{
    (void)state;
    double a = gb_time_now();
    double b = gb_time_now();
    assert_true(a > 0.0);
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrappers),
        cmocka_unit_test(test_aligned),
        cmocka_unit_test(test_countdown),
        cmocka_unit_test(test_strdup),
        cmocka_unit_test(test_time_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
