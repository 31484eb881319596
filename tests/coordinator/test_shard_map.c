/* Tests for coordinator/shard_map: lowest free slice first, the same slice
 * for a name again, kept across a reload, refused past the count, damaged
 * or oversized files refused naming the line, a write that fails assigns
 * nothing, bad names, memory-only maps. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shard_map.h"

static uint32_t s_assign(gb_shard_map_t *m, const char *name)
{
    gb_error_t err = {0};
    uint32_t k = 999;
    if (gb_shard_map_assign(m, name, &k, &err) != 0)
        fail_msg("assign %s: %s", name, err.msg);
    return k;
}

static void test_assign_and_reload(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    gb_error_t err = {0};
    gb_shard_map_t *m = gb_shard_map_new(dir, 3, &err);
    assert_non_null(m);
    assert_int_equal(s_assign(m, "edge-b"), 0);
    assert_int_equal(s_assign(m, "edge-a"), 1);
    assert_int_equal(s_assign(m, "edge-b"), 0);
    assert_int_equal(gb_shard_map_count(m), 2);
    gb_shard_map_destroy(&m);
    /* a restarted coordinator deals the same slices */
    m = gb_shard_map_new(dir, 3, &err);
    assert_non_null(m);
    assert_int_equal(s_assign(m, "edge-a"), 1);
    assert_int_equal(s_assign(m, "edge-c"), 2);
    uint32_t k;
    assert_int_equal(gb_shard_map_assign(m, "edge-d", &k, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "all 3 slices are taken"));
    assert_int_equal(gb_shard_map_assign(m, "../x", &k, &err), GB_EINVAL);
    gb_shard_map_destroy(&m);
    /* fewer slices than the file holds: refused, naming the way out */
    assert_null(gb_shard_map_new(dir, 2, &err));
    assert_int_equal(err.code, GB_ERANGE);
    assert_non_null(strstr(err.msg, "remove the file"));
    gb_test_rmtree(dir);
    free(dir);
}

static void test_damaged_files(void **state)
{
    (void)state;
    static const char *bad[] = {
        "# glassbox data shards, version 1\nedge-a 0\nedge-a 1\n",  /* a name twice */
        "# glassbox data shards, version 1\nedge-a 0\nedge-b 0\n",  /* a slice twice */
        "# glassbox data shards, version 1\nedge-a x\n",            /* not a number */
        "# glassbox data shards, version 1\n../etc 0\n",            /* not a name */
        "# glassbox data shards, version 9\nedge-a 0\n",            /* another format */
        "# glassbox data shards, version 1\nedge-a 0",              /* truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *dir = gb_test_mkdtemp();
        free(gb_test_write_file(dir, GB_SHARD_MAP_FILE, bad[i], strlen(bad[i])));
        gb_error_t err = {0};
        gb_shard_map_t *m = gb_shard_map_new(dir, 4, &err);
        if (m)
            fail_msg("case %zu accepted", i);
        assert_int_equal(err.code, GB_EFORMAT);
        gb_test_rmtree(dir);
        free(dir);
    }
}

static void test_failed_write_assigns_nothing(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    gb_error_t err = {0};
    gb_shard_map_t *m = gb_shard_map_new(dir, 2, &err);
    assert_non_null(m);
    assert_int_equal(rmdir(dir), 0); /* the state directory is gone (even root fails) */
    uint32_t k;
    assert_int_equal(gb_shard_map_assign(m, "edge-a", &k, &err), GB_EIO);
    assert_int_equal(gb_shard_map_count(m), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(s_assign(m, "edge-a"), 0);
    gb_shard_map_destroy(&m);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_memory_only_and_bounds(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_null(gb_shard_map_new(NULL, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_shard_map_new(NULL, GB_SHARD_MAP_MAX + 1, &err));
    gb_shard_map_t *m = gb_shard_map_new(NULL, 2, &err);
    assert_non_null(m);
    assert_int_equal(s_assign(m, "b"), 0);
    assert_int_equal(s_assign(m, "a"), 1);
    assert_int_equal(s_assign(m, "b"), 0);
    gb_shard_map_destroy(&m);
    gb_shard_map_destroy(&m); /* NULL-safe */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assign_and_reload),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_failed_write_assigns_nothing),
        cmocka_unit_test(test_memory_only_and_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
