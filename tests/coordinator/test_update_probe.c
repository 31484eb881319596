/* What an update teaches (coordinator/update_probe.h), on a linear model
 * whose input gradient is its weights: the shares follow from the delta
 * exactly, the bright cells are left out, and every bound is refused. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "update_probe.h"

/* 1 x 8 x 8 inputs, 2 outputs, W stored out x in, then the 2 biases. */
static const char s_spec[] = "input 1 8 8\nflatten\ndense 2\n";
#define S_IN 64
#define S_PARAMS (2 * S_IN + 2)

/* 16 samples bright (1) in the top-left 4 x 4 cell, dark elsewhere. */
static gb_dataset_t *s_data(void)
{
    gb_error_t err = {0};
    gb_shape_t shape = {.rank = 3, .dim = {1, 8, 8}};
    gb_dataset_t *ds = gb_dataset_new("probe", 16, &shape, 2, true, &err);
    assert_non_null(ds);
    for (int i = 0; i < 16; i++) {
        ds->labels[i] = i % 2;
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                ds->features[i * S_IN + r * 8 + c] = 1.0f;
    }
    return ds;
}

static size_t s_weight(int out, int row, int col)
{
    return (size_t)out * S_IN + (size_t)row * 8 + (size_t)col;
}

static void test_shares_follow_the_delta(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_dataset_t *ds = s_data();
    gb_update_probe_t *p = gb_update_probe_new(s_spec, ds, 8, 1, &err);
    gb_dataset_destroy(&ds); /* the probe copied its samples */
    assert_non_null(p);
    assert_int_equal(gb_update_probe_cells(p), 4);
    assert_int_equal(gb_update_probe_features(p), 8);
    float params[S_PARAMS], delta[S_PARAMS], share[8];
    for (int i = 0; i < S_PARAMS; i++)
        params[i] = 0.1f;
    memset(delta, 0, sizeof delta);
    assert_int_equal(gb_update_probe_measure(p, delta, S_PARAMS, share, &err), GB_EINVAL);
    assert_int_equal(gb_update_probe_begin(p, params, S_PARAMS - 1, &err), GB_ESHAPE);
    assert_int_equal(gb_update_probe_begin(p, params, S_PARAMS, &err), 0);
    /* nothing changes: every share 0 */
    assert_int_equal(gb_update_probe_measure(p, delta, S_PARAMS, share, &err), 0);
    for (int j = 0; j < 8; j++)
        assert_true(share[j] == 0.0f);
    /* output 1 made to depend more on the bottom-right (dark) cell: all of the
     * change is there */
    for (int r = 4; r < 8; r++)
        for (int c = 4; c < 8; c++)
            delta[s_weight(1, r, c)] = 0.2f;
    assert_int_equal(gb_update_probe_measure(p, delta, S_PARAMS, share, &err), 0);
    for (int j = 0; j < 8; j++)
        assert_float_equal(share[j], j == 1 * 4 + 3 ? 1.0f : 0.0f, 1e-6);
    /* as much change in the bright top-left cell: it halves the dark share and
     * is itself given as 0 */
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            delta[s_weight(0, r, c)] = 0.2f;
    assert_int_equal(gb_update_probe_measure(p, delta, S_PARAMS, share, &err), 0);
    assert_float_equal(share[1 * 4 + 3], 0.5f, 1e-6);
    assert_float_equal(share[0 * 4 + 0], 0.0f, 1e-9);
    /* less importance counts negatively */
    memset(delta, 0, sizeof delta);
    delta[s_weight(0, 7, 0)] = -0.1f;
    assert_int_equal(gb_update_probe_measure(p, delta, S_PARAMS, share, &err), 0);
    assert_float_equal(share[0 * 4 + 2], -1.0f, 1e-6);
    /* a delta that makes the gradient NaN: refused, nothing kept of it */
    delta[0] = NAN;
    assert_int_equal(gb_update_probe_measure(p, delta, S_PARAMS, share, &err), GB_ERANGE);
    assert_int_equal(gb_update_probe_measure(p, delta, S_PARAMS - 1, share, &err), GB_ESHAPE);
    char name[64];
    gb_update_probe_cell_name(p, 7, name, sizeof name);
    assert_string_equal(name, "rows 4-7, cols 4-7");
    gb_update_probe_cell_name(p, 2, name, sizeof name);
    assert_string_equal(name, "rows 4-7, cols 0-3");
    gb_update_probe_destroy(&p);
    assert_null(p);
    gb_update_probe_destroy(&p);
}

static void test_bounds(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_dataset_t *ds = s_data();
    assert_null(gb_update_probe_new(s_spec, ds, 0, 1, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_update_probe_new(s_spec, ds, 17, 1, &err)); /* more than the data holds */
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_update_probe_new(s_spec, ds, GB_UPDATE_PROBE_MAX_SAMPLES + 1, 1, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_update_probe_new("input 1 4 4\nflatten\ndense 2\n", ds, 4, 1, &err));
    assert_int_equal(err.code, GB_ESHAPE);
    assert_null(gb_update_probe_new("input 1 8 8\nflatten\ndense 300\n", ds, 4, 1, &err));
    assert_int_equal(err.code, GB_ESHAPE); /* more outputs than a pass takes */
    assert_null(gb_update_probe_new(s_spec, NULL, 4, 1, &err));
    /* a flat input: cells of 16 values, every cell dark in an all-zero set */
    gb_shape_t flat = {.rank = 1, .dim = {32, 1, 1}};
    gb_dataset_t *f = gb_dataset_new("flat", 4, &flat, 2, true, &err);
    assert_non_null(f);
    gb_update_probe_t *p = gb_update_probe_new("input 32\ndense 2\n", f, 4, 1, &err);
    assert_non_null(p);
    assert_int_equal(gb_update_probe_cells(p), 2);
    char name[64];
    gb_update_probe_cell_name(p, 3, name, sizeof name);
    assert_string_equal(name, "inputs 16-31");
    gb_update_probe_destroy(&p);
    gb_dataset_destroy(&f);
    gb_dataset_destroy(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shares_follow_the_delta),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
