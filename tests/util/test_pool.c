/* Tests for util/pool: every index runs exactly once per region, index 0 on
 * the calling thread and the others on distinct pool threads, the call
 * returns only when all have finished, over many repeated regions; size 1
 * and a NULL pool run on the caller; bad sizes; allocation-failure
 * injection. Doubles as the usage example:
 *
 *     gb_pool_t *pool = gb_pool_new(threads, &err);
 *     gb_pool_run(pool, fn, arg);   // fn(arg, i, threads) for every i
 *     gb_pool_destroy(&pool);
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/pool.h"

enum { MAXW = 8 };

typedef struct {
    atomic_int calls[MAXW];    /* calls per index */
    atomic_int bad_count;      /* calls with a wrong count or index */
    int expect_count;          /* the pool's size */
    pthread_t who[MAXW];       /* thread of the last call per index */
    atomic_int done;           /* finished calls in the current region */
} s_region_t;

static void s_fn(void *arg, int index, int count)
{
    s_region_t *r = arg;
    /* No cmocka assertions here: they must not run on a pool thread. */
    if (count != r->expect_count || index < 0 || index >= MAXW) {
        atomic_fetch_add(&r->bad_count, 1);
        return;
    }
    r->who[index] = pthread_self();
    /* A little work so that the threads overlap. */
    volatile unsigned x = 0;
    for (int i = 0; i < 1000 * (index + 1); i++)
        x += (unsigned)i;
    (void)x;
    atomic_fetch_add(&r->calls[index], 1);
    atomic_fetch_add(&r->done, 1);
}

static void s_check_pool(int threads, int regions)
{
    gb_error_t err = {0};
    gb_pool_t *pool = gb_pool_new(threads, &err);
    assert_non_null(pool);
    assert_int_equal(gb_pool_size(pool), threads);
    s_region_t r;
    memset(&r, 0, sizeof r);
    r.expect_count = threads;
    for (int k = 0; k < regions; k++) {
        atomic_store(&r.done, 0);
        gb_pool_run(pool, s_fn, &r);
        /* Returned only after every worker finished its call. */
        assert_int_equal(atomic_load(&r.done), threads);
        for (int i = 0; i < threads; i++)
            assert_int_equal(atomic_load(&r.calls[i]), k + 1);
    }
    for (int i = threads; i < MAXW; i++)
        assert_int_equal(atomic_load(&r.calls[i]), 0);
    assert_int_equal(atomic_load(&r.bad_count), 0);
    /* Index 0 on the caller, the others on distinct other threads. */
    assert_true(pthread_equal(r.who[0], pthread_self()));
    for (int i = 1; i < threads; i++) {
        assert_false(pthread_equal(r.who[i], pthread_self()));
        for (int j = 1; j < i; j++)
            assert_false(pthread_equal(r.who[i], r.who[j]));
    }
    gb_pool_destroy(&pool);
    assert_null(pool);
}

static void test_runs_each_index_once(void **state)
{
    (void)state;
    s_check_pool(2, 1);
    s_check_pool(4, 1);
    s_check_pool(MAXW, 3);
}

static void test_repeated_regions(void **state)
{
    (void)state;
    s_check_pool(2, 2000);
    s_check_pool(3, 500);
}

static void test_size_one_and_null(void **state)
{
    (void)state;
    s_check_pool(1, 10);
    /* A NULL pool runs fn(arg, 0, 1) on the caller. */
    s_region_t r;
    memset(&r, 0, sizeof r);
    r.expect_count = 1;
    gb_pool_run(NULL, s_fn, &r);
    assert_int_equal(atomic_load(&r.calls[0]), 1);
    assert_true(pthread_equal(r.who[0], pthread_self()));
    assert_int_equal(gb_pool_size(NULL), 1);
    /* Destroy is NULL-safe. */
    gb_pool_t *none = NULL;
    gb_pool_destroy(&none);
    gb_pool_destroy(NULL);
}

static void test_bad_sizes(void **state)
{
    (void)state;
    static const int bad[] = {0, -1, 257, -1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gb_error_t err = {0};
        assert_null(gb_pool_new(bad[i], &err));
        assert_int_equal(err.code, GB_EINVAL);
        assert_non_null(strstr(err.msg, "out of range 1..256"));
        assert_null(gb_pool_new(bad[i], NULL));
    }
}

/* A pool created and destroyed without ever running joins cleanly. */
static void test_destroy_idle(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        gb_pool_t *pool = gb_pool_new(4, NULL);
        assert_non_null(pool);
        gb_pool_destroy(&pool);
    }
}

/* Fails the k-th allocation for k = 1, 2, ... until gb_pool_new succeeds:
 * each failure is NULL with GB_ENOMEM, joins the threads it had started,
 * and leaks nothing. */
static void test_alloc_failure(void **state)
{
    (void)state;
    long k;
    gb_pool_t *pool = NULL;
    for (k = 1; k < 50; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        pool = gb_pool_new(4, &err);
        gb_alloc_fail_after(0);
        if (pool)
            break;
        assert_int_equal(err.code, GB_ENOMEM);
        assert_true(strlen(err.msg) > 0);
    }
    assert_non_null(pool);
    /* The pool, its thread table and one argument block per extra thread. */
    assert_int_equal(k, 1 + 1 + 1 + 3);
    s_region_t r;
    memset(&r, 0, sizeof r);
    r.expect_count = 4;
    gb_pool_run(pool, s_fn, &r);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&r.calls[i]), 1);
    gb_pool_destroy(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_each_index_once),
        cmocka_unit_test(test_repeated_regions),
        cmocka_unit_test(test_size_one_and_null),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_destroy_idle),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
