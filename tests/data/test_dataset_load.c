/* Tests for data/dataset_load: the name picks the reader. csv:FILE through
 * the series reader (a table with a label, classification and regression;
 * without options it fails for want of a label and lists the columns; the
 * reader's own message comes through; the options' defaults),
 * idx:DIR through the IDX loader (a missing directory named in the error),
 * fashion-mnist refused with the Debian package named when it is not
 * installed, csv: options refused for image datasets rather than ignored,
 * and every bad argument (unknown, empty and NULL names, "idx:" and "csv:"
 * without a path, a NULL out). The readers' own checks, and the csv:
 * options refused for idx data that is really there, are tested in
 * test_dataset.c, test_series.c and test_csv.c. Doubles as the usage
 * example. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/dataset_load.h"
#include "util/log.h"

static void test_load_csv(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_dataset_t *ds = NULL;
    char *dir = gb_test_mkdtemp();
    char name[512];
    char *path =
        gb_test_write_csv(dir, "d.csv", "a,b,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,6,1\n", name,
                          sizeof name);

    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    assert_true(o.test_fraction == GB_DATA_TEST_FRACTION);
    assert_int_equal(o.horizon, 1);
    o.label = "y";
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, &o, &ds, &err), 0);
    assert_string_equal(ds->name, name);
    assert_int_equal(ds->n, 4); /* the first 80% of 5 rows */
    assert_int_equal(ds->n_classes, 2);
    assert_int_equal(gb_dataset_sample_size(ds), 2);
    assert_int_equal(gb_dataset_task(ds), GB_TASK_CLASSIFICATION);
    gb_dataset_destroy(&ds);
    o.regression = true;
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TEST, &o, &ds, &err), 0);
    assert_int_equal(ds->n, 1);
    assert_int_equal(gb_dataset_task(ds), GB_TASK_REGRESSION);
    gb_dataset_destroy(&ds);

    /* gb_dataset_load is the default options: no label column; the
     * message lists the columns */
    ds = (gb_dataset_t *)1; /* must be reset to NULL on failure */
    assert_int_equal(gb_dataset_load(name, GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_null(ds);
    char want[600];
    snprintf(want, sizeof want, "%s: no label column given (--label NAME; columns: a, b, y)", path);
    assert_string_equal(err.msg, want);
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, NULL, &ds, &err), GB_EINVAL);
    assert_string_equal(err.msg, want);
    assert_int_equal(gb_dataset_load_opts("csv:", GB_SPLIT_TRAIN, &o, &ds, &err), GB_EINVAL);
    assert_string_equal(err.msg, "dataset 'csv:': csv: needs a file (csv:FILE)");
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, &o, NULL, &err), GB_EINVAL);
    /* the reader's message comes through */
    free(path);
    path = gb_test_write_file(dir, "d.csv", "a,y\n1,2\n3\n", 10);
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, &o, &ds, &err), GB_EFORMAT);
    assert_null(ds);
    snprintf(want, sizeof want, "%s line 3 has 1 cell, the header has 2", path);
    assert_string_equal(err.msg, want);

    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_load_names(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_dataset_t *ds = (gb_dataset_t *)1;

    assert_int_equal(gb_dataset_load("mnist-of-sorts", GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_null(ds);
    assert_string_equal(err.msg, "unknown dataset 'mnist-of-sorts': expected fashion-mnist, "
                                 "idx:DIR or csv:FILE");
    assert_int_equal(gb_dataset_load("", GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "empty dataset name"));
    assert_int_equal(gb_dataset_load(NULL, GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_load("idx:/x", GB_SPLIT_TRAIN, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_load("idx:", GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_string_equal(err.msg, "dataset 'idx:': idx: needs a directory (idx:DIR)");
    assert_int_equal(gb_dataset_load_opts("csv:", GB_SPLIT_TRAIN, NULL, &ds, &err), GB_EINVAL);
    assert_string_equal(err.msg, "dataset 'csv:': csv: needs a file (csv:FILE)");
    /* each reader's own error comes through */
    assert_int_equal(gb_dataset_load("idx:/nonexistent/dir", GB_SPLIT_TRAIN, &ds, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir: cannot open dataset directory"));
    assert_int_equal(gb_dataset_load("csv:/nonexistent/x.csv", GB_SPLIT_TRAIN, &ds, &err),
                     GB_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.csv"));
    if (!gb_test_exists(GB_FASHION_MNIST_DIR)) {
        assert_int_equal(gb_dataset_load("fashion-mnist", GB_SPLIT_TEST, &ds, &err), GB_EIO);
        assert_non_null(strstr(err.msg, "dataset-fashion-mnist"));
    }
}

/* csv: options given for an image dataset are refused, before any file is
 * opened (so whether the images exist does not matter). */
static void test_load_image_opts(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_dataset_t *ds = NULL;
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.window = 4;
    const char *names[] = {"fashion-mnist", "idx:/nonexistent/dir"};
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(gb_dataset_load_opts(names[k], GB_SPLIT_TRAIN, &o, &ds, &err),
                         GB_EINVAL);
        char want[128];
        snprintf(want, sizeof want, "dataset '%s': a window applies to csv:FILE data only",
                 names[k]);
        assert_string_equal(err.msg, want);
        assert_null(ds);
    }
}

int main(void)
{
    gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_csv),
        cmocka_unit_test(test_load_names),
        cmocka_unit_test(test_load_image_opts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
