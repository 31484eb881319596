/* Tests for coordinator/session_index: put, find, update and remove of
 * handles and names; growth from the smallest table to thousands of keys;
 * the front door's swap-with-last removal replayed over 2,000 sessions
 * against a plain array searched linearly (the old lookup); names at the
 * length limit and over it; reserve; and allocation failures, which leave
 * the index unchanged. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_index.h"
#include "util/alloc.h"

static void test_handles_basic(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_session_index_t *ix = gb_session_index_new(0, &err);
    assert_non_null(ix);
    size_t slot = 99;
    assert_false(gb_session_index_find_handle(ix, 7, &slot));
    assert_int_equal(gb_session_index_put_handle(ix, 7, 0, &err), 0);
    assert_int_equal(gb_session_index_put_handle(ix, 0, 1, &err), 0); /* 0 is a key like any */
    assert_true(gb_session_index_find_handle(ix, 7, &slot));
    assert_int_equal(slot, 0);
    assert_true(gb_session_index_find_handle(ix, 0, NULL));
    assert_int_equal(gb_session_index_handles(ix), 2);
    /* an update of a present key */
    assert_int_equal(gb_session_index_put_handle(ix, 7, 5, &err), 0);
    assert_true(gb_session_index_find_handle(ix, 7, &slot));
    assert_int_equal(slot, 5);
    assert_int_equal(gb_session_index_handles(ix), 2);
    assert_true(gb_session_index_remove_handle(ix, 7));
    assert_false(gb_session_index_remove_handle(ix, 7));
    assert_false(gb_session_index_find_handle(ix, 7, &slot));
    assert_true(gb_session_index_find_handle(ix, 0, &slot));
    assert_int_equal(slot, 1);
    assert_int_equal(gb_session_index_handles(ix), 1);
    gb_session_index_destroy(&ix);
    assert_null(ix);
    gb_session_index_destroy(&ix); /* NULL-safe */
    gb_session_index_destroy(NULL);
}

static void test_names_basic(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_session_index_t *ix = gb_session_index_new(4, &err);
    assert_non_null(ix);
    size_t slot = 0;
    assert_int_equal(gb_session_index_put_name(ix, "edge-1", 3, &err), 0);
    assert_int_equal(gb_session_index_put_name(ix, "edge-10", 4, &err), 0);
    assert_true(gb_session_index_find_name(ix, "edge-1", &slot));
    assert_int_equal(slot, 3);
    assert_true(gb_session_index_find_name(ix, "edge-10", &slot));
    assert_int_equal(slot, 4);
    assert_false(gb_session_index_find_name(ix, "edge-", &slot));
    assert_false(gb_session_index_find_name(ix, "", &slot));
    assert_false(gb_session_index_find_name(ix, NULL, &slot));
    /* a name at the limit is kept, one over it refused and never found */
    char at[GB_SESSION_INDEX_NAME_MAX + 1], over[GB_SESSION_INDEX_NAME_MAX + 2];
    memset(at, 'a', sizeof at - 1);
    at[sizeof at - 1] = 0;
    memset(over, 'a', sizeof over - 1);
    over[sizeof over - 1] = 0;
    assert_int_equal(gb_session_index_put_name(ix, at, 8, &err), 0);
    assert_true(gb_session_index_find_name(ix, at, &slot));
    assert_int_equal(slot, 8);
    assert_int_equal(gb_session_index_put_name(ix, over, 9, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "over 64 bytes"));
    assert_false(gb_session_index_find_name(ix, over, &slot));
    assert_false(gb_session_index_remove_name(ix, over));
    assert_int_equal(gb_session_index_put_name(ix, NULL, 0, &err), GB_EINVAL);
    /* update, then remove */
    assert_int_equal(gb_session_index_put_name(ix, "edge-1", 0, &err), 0);
    assert_true(gb_session_index_find_name(ix, "edge-1", &slot));
    assert_int_equal(slot, 0);
    assert_int_equal(gb_session_index_names(ix), 3);
    assert_true(gb_session_index_remove_name(ix, "edge-1"));
    assert_false(gb_session_index_remove_name(ix, "edge-1"));
    assert_false(gb_session_index_remove_name(ix, NULL));
    assert_false(gb_session_index_find_name(ix, "edge-1", NULL));
    assert_true(gb_session_index_find_name(ix, "edge-10", NULL));
    assert_int_equal(gb_session_index_names(ix), 2);
    assert_int_equal(gb_session_index_handles(ix), 0); /* the tables are separate */
    gb_session_index_destroy(&ix);
}

/* Growth: from the default table to 5,000 keys each, every key findable
 * after every doubling, at most half the buckets used. */
static void test_growth(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_session_index_t *ix = gb_session_index_new(0, &err);
    assert_non_null(ix);
    size_t cap0 = gb_session_index_capacity(ix);
    char name[32];
    for (size_t i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "client-%zu", i);
        assert_int_equal(gb_session_index_put_handle(ix, (i << 32) | 7u, i, &err), 0);
        assert_int_equal(gb_session_index_put_name(ix, name, i, &err), 0);
        assert_true(2 * (gb_session_index_handles(ix) + gb_session_index_names(ix)) <=
                    gb_session_index_capacity(ix));
    }
    assert_true(gb_session_index_capacity(ix) >= 4 * 5000);
    assert_true(gb_session_index_capacity(ix) > cap0);
    for (size_t i = 0; i < 5000; i++) {
        size_t slot = 0;
        snprintf(name, sizeof name, "client-%zu", i);
        assert_true(gb_session_index_find_handle(ix, (i << 32) | 7u, &slot));
        assert_int_equal(slot, i);
        assert_true(gb_session_index_find_name(ix, name, &slot));
        assert_int_equal(slot, i);
    }
    assert_false(gb_session_index_find_handle(ix, 5000ull << 32 | 7u, NULL));
    assert_false(gb_session_index_find_name(ix, "client-5000", NULL));
    gb_session_index_destroy(&ix);
}

/* The front door's table replayed: sessions in an array, removed by
 * swapping the last into the hole, the index kept in step, and every
 * lookup checked against a linear search of the array (what the front
 * door did before). 2,000 sessions, churned with joins, rejoins under the
 * same name and leaves, in a seeded order. */
typedef struct {
    uint64_t handle;
    int joined;
    char name[48];
} s_sess_t;

static uint64_t s_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static long s_linear_name(const s_sess_t *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].joined && strcmp(t[i].name, name) == 0)
            return (long)i;
    return -1;
}

static long s_linear_handle(const s_sess_t *t, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].handle == h)
            return (long)i;
    return -1;
}

static void s_remove(gb_session_index_t *ix, s_sess_t *t, size_t *n, size_t i)
{
    if (t[i].joined)
        assert_true(gb_session_index_remove_name(ix, t[i].name));
    assert_true(gb_session_index_remove_handle(ix, t[i].handle));
    size_t last = --*n;
    if (i == last)
        return;
    t[i] = t[last];
    assert_int_equal(gb_session_index_put_handle(ix, t[i].handle, i, NULL), 0);
    if (t[i].joined)
        assert_int_equal(gb_session_index_put_name(ix, t[i].name, i, NULL), 0);
}

static void s_check_all(const gb_session_index_t *ix, const s_sess_t *t, size_t n, size_t names)
{
    assert_int_equal(gb_session_index_handles(ix), n);
    size_t joined = 0;
    for (size_t i = 0; i < n; i++) {
        size_t slot = 0;
        assert_true(gb_session_index_find_handle(ix, t[i].handle, &slot));
        assert_int_equal(slot, i);
        if (t[i].joined) {
            joined++;
            assert_true(gb_session_index_find_name(ix, t[i].name, &slot));
            assert_int_equal(slot, i);
        }
    }
    assert_int_equal(gb_session_index_names(ix), joined);
    char name[48];
    for (size_t k = 0; k < names; k++) {
        snprintf(name, sizeof name, "edge-%zu", k);
        size_t slot = 0;
        long want = s_linear_name(t, n, name);
        assert_int_equal(gb_session_index_find_name(ix, name, &slot), want >= 0);
        if (want >= 0)
            assert_int_equal(slot, (size_t)want);
    }
}

static void test_many_sessions_churn(void **state)
{
    (void)state;
    enum { N = 2000, NAMES = 2500 };
    gb_error_t err = {0};
    gb_session_index_t *ix = gb_session_index_new(0, &err);
    assert_non_null(ix);
    s_sess_t *t = calloc(4 * N, sizeof *t);
    assert_non_null(t);
    size_t n = 0;
    uint64_t rng = 0x9e3779b97f4a7c15ull, next_handle = 1;
    /* 2,000 sessions connect and join under distinct names */
    for (size_t i = 0; i < N; i++) {
        t[n].handle = next_handle++ << 32 | (i & 0xffff);
        snprintf(t[n].name, sizeof t[n].name, "edge-%zu", i);
        assert_int_equal(gb_session_index_put_handle(ix, t[n].handle, n, &err), 0);
        t[n].joined = 1;
        assert_int_equal(gb_session_index_put_name(ix, t[n].name, n, &err), 0);
        n++;
    }
    s_check_all(ix, t, n, NAMES);
    for (int step = 0; step < 20000; step++) {
        uint64_t r = s_rand(&rng);
        switch (r % 4) {
        case 0: /* a session leaves */
            if (n)
                s_remove(ix, t, &n, (size_t)(r >> 8) % n);
            break;
        case 1: { /* a client connects and joins; an old session of its name is replaced */
            char name[48];
            snprintf(name, sizeof name, "edge-%zu", (size_t)(r >> 8) % NAMES);
            long old = s_linear_name(t, n, name);
            if (old >= 0)
                s_remove(ix, t, &n, (size_t)old);
            t[n].handle = next_handle++ << 32 | (r & 0xffff);
            snprintf(t[n].name, sizeof t[n].name, "%s", name);
            t[n].joined = 1;
            assert_int_equal(gb_session_index_put_handle(ix, t[n].handle, n, &err), 0);
            assert_int_equal(gb_session_index_put_name(ix, name, n, &err), 0);
            n++;
            break;
        }
        case 2: /* a session connects and has not joined yet */
            t[n].handle = next_handle++ << 32 | (r & 0xffff);
            t[n].joined = 0;
            snprintf(t[n].name, sizeof t[n].name, "pending-%llu", (unsigned long long)step);
            assert_int_equal(gb_session_index_put_handle(ix, t[n].handle, n, &err), 0);
            n++;
            break;
        case 3: { /* a lookup of a random handle, present or long gone */
            uint64_t h = ((r >> 8) % next_handle) << 32 | (r & 0xffff);
            size_t slot = 0;
            long want = s_linear_handle(t, n, h);
            assert_int_equal(gb_session_index_find_handle(ix, h, &slot), want >= 0);
            if (want >= 0)
                assert_int_equal(slot, (size_t)want);
            break;
        }
        }
        assert_true(n < 4 * N);
        if (step % 2000 == 0)
            s_check_all(ix, t, n, NAMES);
    }
    s_check_all(ix, t, n, NAMES);
    while (n)
        s_remove(ix, t, &n, n / 2);
    assert_int_equal(gb_session_index_handles(ix), 0);
    assert_int_equal(gb_session_index_names(ix), 0);
    free(t);
    gb_session_index_destroy(&ix);
}

/* reserve makes room up front; puts within it then never allocate, which
 * the front door relies on (it reserves as its table grows). */
static void test_reserve_then_no_allocation(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_session_index_t *ix = gb_session_index_new(0, &err);
    assert_non_null(ix);
    assert_int_equal(gb_session_index_reserve(ix, 1024, &err), 0);
    size_t cap = gb_session_index_capacity(ix);
    assert_true(cap >= 2 * 2 * 1024);
    assert_int_equal(gb_session_index_reserve(ix, 10, &err), 0); /* never shrinks */
    assert_int_equal(gb_session_index_capacity(ix), cap);
    gb_alloc_fail_after(1); /* any allocation now would fail */
    char name[48];
    for (size_t i = 0; i < 1024; i++) {
        snprintf(name, sizeof name, "c%zu", i);
        assert_int_equal(gb_session_index_put_handle(ix, i, i, &err), 0);
        assert_int_equal(gb_session_index_put_name(ix, name, i, &err), 0);
    }
    gb_alloc_fail_after(0);
    assert_int_equal(gb_session_index_capacity(ix), cap);
    gb_session_index_destroy(&ix);
}

/* Every allocation of new, reserve and the puts that grow fails in turn:
 * NULL or GB_ENOMEM, and what was in the index stays findable. */
static void test_allocation_failures(void **state)
{
    (void)state;
    gb_error_t err = {0};
    for (long k = 1; k <= 3; k++) { /* new allocates the index and its two tables */
        gb_alloc_fail_after(k);
        gb_session_index_t *ix = gb_session_index_new(0, &err);
        gb_alloc_fail_after(0);
        assert_null(ix);
        assert_int_equal(err.code, GB_ENOMEM);
    }
    gb_session_index_t *ix = gb_session_index_new(0, &err);
    assert_non_null(ix);
    size_t i = 0;
    char name[48];
    /* fill to the table's limit, then the next new key must grow */
    while (gb_session_index_handles(ix) + 1 <= gb_session_index_capacity(ix) / 4) {
        assert_int_equal(gb_session_index_put_handle(ix, i, i, &err), 0);
        snprintf(name, sizeof name, "c%zu", i);
        assert_int_equal(gb_session_index_put_name(ix, name, i, &err), 0);
        i++;
    }
    size_t cap = gb_session_index_capacity(ix);
    gb_alloc_fail_after(1);
    assert_int_equal(gb_session_index_put_handle(ix, 1000, 1000, &err), GB_ENOMEM);
    gb_alloc_fail_after(1);
    assert_int_equal(gb_session_index_put_name(ix, "new", 1000, &err), GB_ENOMEM);
    gb_alloc_fail_after(2); /* the second table of a reserve */
    assert_int_equal(gb_session_index_reserve(ix, 4096, &err), GB_ENOMEM);
    gb_alloc_fail_after(0);
    assert_int_equal(gb_session_index_capacity(ix), cap);
    assert_false(gb_session_index_find_handle(ix, 1000, NULL));
    assert_false(gb_session_index_find_name(ix, "new", NULL));
    for (size_t j = 0; j < i; j++) {
        size_t slot = 0;
        snprintf(name, sizeof name, "c%zu", j);
        assert_true(gb_session_index_find_handle(ix, j, &slot));
        assert_int_equal(slot, j);
        assert_true(gb_session_index_find_name(ix, name, &slot));
        assert_int_equal(slot, j);
    }
    /* and with memory back, the put succeeds */
    assert_int_equal(gb_session_index_put_handle(ix, 1000, 1000, &err), 0);
    assert_true(gb_session_index_capacity(ix) > cap);
    gb_session_index_destroy(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handles_basic),
        cmocka_unit_test(test_names_basic),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_many_sessions_churn),
        cmocka_unit_test(test_reserve_then_no_allocation),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
