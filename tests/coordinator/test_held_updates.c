/* Tests for coordinator/held_updates: updates held in order with their
 * names, deltas and weights (copies: the caller's buffers may change), the
 * store reused after clear, and every bound crossed (a round's most
 * updates, another length, weight 0, names of 0 and 65 bytes, no memory)
 * leaving what was held as it was. */
#include "testutil.h"

#include <string.h>

#include "held_updates.h"
#include "util/alloc.h"

#define N 37

static void s_fill(float *d, float v)
{
    for (int i = 0; i < N; i++)
        d[i] = v + (float)i;
}

static void test_hold_in_order(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_held_updates_t *h = gb_held_updates_new(20, N, &err);
    assert_non_null(h);
    assert_int_equal(gb_held_updates_count(h), 0);
    float d[N];
    char name[16];
    for (int k = 0; k < 20; k++) { /* past the first growth */
        s_fill(d, (float)(100 * k));
        snprintf(name, sizeof name, "edge-%d", k);
        assert_int_equal(gb_held_updates_add(h, name, d, N, (uint64_t)(k + 1), &err), 0);
        d[0] = -1; /* the store holds a copy */
    }
    assert_int_equal(gb_held_updates_count(h), 20);
    for (int k = 0; k < 20; k++) {
        snprintf(name, sizeof name, "edge-%d", k);
        assert_string_equal(gb_held_updates_client(h, (size_t)k), name);
        assert_int_equal(gb_held_updates_weight(h, (size_t)k), k + 1);
        const float *got = gb_held_updates_delta(h, (size_t)k);
        for (int i = 0; i < N; i++)
            assert_true(got[i] == (float)(100 * k + i));
    }
    /* a round's most, then clear: the next round starts empty */
    assert_int_equal(gb_held_updates_add(h, "one-more", d, N, 1, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "its most"));
    gb_held_updates_clear(h);
    assert_int_equal(gb_held_updates_count(h), 0);
    s_fill(d, 7);
    assert_int_equal(gb_held_updates_add(h, "again", d, N, 3, &err), 0);
    assert_string_equal(gb_held_updates_client(h, 0), "again");
    assert_true(gb_held_updates_delta(h, 0)[N - 1] == 7 + N - 1);
    gb_held_updates_destroy(&h);
    assert_null(h);
    gb_held_updates_destroy(&h); /* NULL-safe */
    gb_held_updates_clear(NULL);
    assert_int_equal(gb_held_updates_count(NULL), 0);
}

static void test_bounds(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_null(gb_held_updates_new(0, N, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_held_updates_new(4, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_held_updates_new(SIZE_MAX / 8, 1024, &err)); /* the product overflows */
    assert_int_equal(err.code, GB_EINVAL);
    gb_held_updates_t *h = gb_held_updates_new(4, N, &err);
    float d[N + 1];
    s_fill(d, 1);
    assert_int_equal(gb_held_updates_add(h, "ok", d, N, 1, &err), 0);
    assert_int_equal(gb_held_updates_add(h, "long", d, N + 1, 1, &err), GB_EINVAL);
    assert_int_equal(gb_held_updates_add(h, "short", d, N - 1, 1, &err), GB_EINVAL);
    assert_int_equal(gb_held_updates_add(h, "weightless", d, N, 0, &err), GB_EINVAL);
    assert_int_equal(gb_held_updates_add(h, "", d, N, 1, &err), GB_EINVAL);
    assert_int_equal(gb_held_updates_add(h, NULL, d, N, 1, &err), GB_EINVAL);
    char name[66];
    memset(name, 'n', 65);
    name[65] = '\0';
    assert_int_equal(gb_held_updates_add(h, name, d, N, 1, &err), GB_EINVAL);
    name[64] = '\0'; /* 64 bytes: the most */
    assert_int_equal(gb_held_updates_add(h, name, d, N, 1, &err), 0);
    assert_int_equal(gb_held_updates_count(h), 2);
    gb_held_updates_destroy(&h);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_alloc_fail_after(1);
    assert_null(gb_held_updates_new(4, N, &err));
    gb_alloc_fail_after(0);
    assert_int_equal(err.code, GB_ENOMEM);
    gb_held_updates_t *h = gb_held_updates_new(100, N, &err);
    float d[N];
    s_fill(d, 2);
    for (int k = 0; k < 8; k++) /* the first block's room */
        assert_int_equal(gb_held_updates_add(h, "a", d, N, 1, &err), 0);
    for (long k = 1; k <= 2; k++) { /* either of the two growths fails */
        gb_alloc_fail_after(k);
        assert_int_equal(gb_held_updates_add(h, "b", d, N, 1, &err), GB_ENOMEM);
        gb_alloc_fail_after(0);
        assert_int_equal(gb_held_updates_count(h), 8);
        assert_string_equal(gb_held_updates_client(h, 7), "a");
        assert_true(gb_held_updates_delta(h, 7)[3] == 5);
    }
    assert_int_equal(gb_held_updates_add(h, "b", d, N, 1, &err), 0);
    assert_int_equal(gb_held_updates_count(h), 9);
    gb_held_updates_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_in_order),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
