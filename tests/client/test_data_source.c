/* Tests of client/data_source.c's partition plan (the rest of the module is
 * driven through the commands in tests/cli and by test_daemon.c): the labels
 * a classification data set is cut by, the zeros that stand in for a
 * regression data set's missing labels (which only iid may cut), and the
 * refusals. */
#include "testutil.h"

#include <string.h>

#include "data_source.h"

static void test_plan_classification(void **state)
{
    (void)state;
    gb_shape_t shape = {1, {4}};
    gb_error_t err = {0};
    gb_dataset_t *ds = gb_dataset_new("blobs", 10, &shape, 3, true, &err);
    assert_non_null(ds);
    gb_data_source_t d = gb_data_source_defaults();
    d.partition = "dirichlet:0.5";
    gb_partition_plan_t plan;
    assert_int_equal(gb_data_source_partition_plan(&d, ds, &plan, &err), 0);
    assert_ptr_equal(plan.labels, ds->labels);
    assert_int_equal(plan.n_classes, 3);
    assert_null(plan.zeros);
    assert_int_equal(plan.partition.kind, GB_PARTITION_DIRICHLET);
    gb_data_source_partition_plan_free(&plan);
    d.partition = "halves";
    assert_true(gb_data_source_partition_plan(&d, ds, &plan, &err) < 0);
    gb_data_source_partition_plan_free(&plan); /* safe after a failure */
    gb_dataset_destroy(&ds);
}

static void test_plan_regression(void **state)
{
    (void)state;
    gb_shape_t shape = {1, {4}};
    gb_error_t err = {0};
    gb_dataset_t *ds = gb_dataset_new_regression("series", 7, &shape, 1, &err);
    assert_non_null(ds);
    gb_data_source_t d = gb_data_source_defaults();
    gb_partition_plan_t plan;
    assert_int_equal(gb_data_source_partition_plan(&d, ds, &plan, &err), 0); /* iid */
    assert_non_null(plan.zeros);
    assert_ptr_equal(plan.labels, plan.zeros);
    assert_int_equal(plan.n_classes, 1);
    for (int i = 0; i < 7; i++)
        assert_int_equal(plan.labels[i], 0);
    gb_data_source_partition_plan_free(&plan);
    assert_null(plan.zeros);
    d.partition = "shards:2";
    assert_int_equal(gb_data_source_partition_plan(&d, ds, &plan, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "only be partitioned iid"));
    gb_data_source_partition_plan_free(&plan);
    gb_dataset_destroy(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_classification),
        cmocka_unit_test(test_plan_regression),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
