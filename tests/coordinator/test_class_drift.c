/* Tests for coordinator/class_drift: no reference, nothing measured; with
 * one, each client's divergence per class against the class's median
 * client's names the classes that moved (at least GB_CLASS_DRIFT_RATIO,
 * largest first, at most GB_CLASS_DRIFT_TOP, ties to the lower class); a
 * new shape drops the reference; rows survive growth; bad sizes and
 * failed allocations are refused with nothing changed. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "class_drift.h"
#include "util/alloc.h"

#define CELLS 8
#define CLASSES 5

/* A map as the wire holds it: cell `hot` carries weight `hot_w`, the rest 1. */
static void t_map(uint8_t le[4 * CELLS], int hot, float hot_w)
{
    for (int i = 0; i < CELLS; i++) {
        float v = i == hot ? hot_w : 1.0f;
        memcpy(le + 4 * i, &v, 4); /* x86: little-endian already */
    }
}

/* A tracker with a reference of flat maps for every class. */
static gb_class_drift_t *t_with_reference(void)
{
    gb_error_t err = {0};
    gb_class_drift_t *d = gb_class_drift_new(&err);
    assert_non_null(d);
    assert_int_equal(gb_class_drift_begin(d, CLASSES, CELLS, &err), 0);
    uint8_t flat[4 * CELLS];
    t_map(flat, 0, 1.0f);
    for (uint32_t c = 0; c < CLASSES; c++)
        gb_class_drift_set_reference(d, c, flat);
    assert_int_equal(gb_class_drift_begin(d, CLASSES, CELLS, &err), 0); /* the same shape */
    return d;
}

static void test_first_round_names_nothing(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_class_drift_t *d = gb_class_drift_new(&err);
    assert_int_equal(gb_class_drift_begin(d, CLASSES, CELLS, &err), 0);
    uint8_t le[4 * CELLS];
    t_map(le, 3, 50.0f);
    for (size_t k = 0; k < 4; k++) {
        assert_int_equal(gb_class_drift_reserve(d, k, &err), 0);
        gb_class_drift_add(d, k, 1, le);
    }
    gb_class_drift_close(d, 4);
    uint32_t classes[GB_CLASS_DRIFT_TOP];
    float ratio[GB_CLASS_DRIFT_TOP];
    for (size_t k = 0; k < 4; k++)
        assert_int_equal(gb_class_drift_top(d, k, classes, ratio), 0);
    gb_class_drift_destroy(&d);
    assert_null(d);
    gb_class_drift_destroy(&d);
}

static void test_the_moved_classes(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_class_drift_t *d = t_with_reference();
    uint8_t mild[4 * CELLS], wild[4 * CELLS];
    t_map(mild, 2, 1.5f);
    t_map(wild, 2, 40.0f);
    /* 40 clients (past the first growth), each drifting a little in every
     * class; client 7 far in classes 3 and 1 (more in 3), client 9 in all */
    for (size_t k = 0; k < 40; k++) {
        assert_int_equal(gb_class_drift_reserve(d, k, &err), 0);
        for (uint32_t c = 0; c < CLASSES; c++) {
            bool far = (k == 7 && (c == 3 || c == 1)) || k == 9;
            uint8_t m[4 * CELLS];
            memcpy(m, far ? wild : mild, sizeof m);
            if (k == 7 && c == 1)
                t_map(m, 2, 10.0f);
            gb_class_drift_add(d, k, c, m);
        }
    }
    gb_class_drift_add(d, 0, CLASSES, wild); /* past the classes: nothing */
    gb_class_drift_close(d, 40);
    uint32_t classes[GB_CLASS_DRIFT_TOP];
    float ratio[GB_CLASS_DRIFT_TOP];
    assert_int_equal(gb_class_drift_top(d, 7, classes, ratio), 2);
    assert_int_equal(classes[0], 3);
    assert_int_equal(classes[1], 1);
    assert_true(ratio[0] > ratio[1] && ratio[1] >= GB_CLASS_DRIFT_RATIO);
    /* every class moved as much: the top 3, ties to the lower class */
    assert_int_equal(gb_class_drift_top(d, 9, classes, ratio), GB_CLASS_DRIFT_TOP);
    assert_int_equal(classes[0], 0);
    assert_int_equal(classes[1], 1);
    assert_int_equal(classes[2], 2);
    for (size_t k = 0; k < 40; k++)
        if (k != 7 && k != 9)
            assert_int_equal(gb_class_drift_top(d, k, classes, ratio), 0);
    gb_class_drift_destroy(&d);
}

static void test_unmeasured_classes_and_shapes(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_class_drift_t *d = t_with_reference();
    gb_class_drift_set_reference(d, 4, NULL); /* class 4 had no map */
    gb_class_drift_set_reference(d, CLASSES, NULL); /* past the classes: nothing */
    uint8_t wild[4 * CELLS], mild[4 * CELLS];
    t_map(wild, 5, 40.0f);
    t_map(mild, 5, 1.5f);
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(gb_class_drift_reserve(d, k, &err), 0);
        gb_class_drift_add(d, k, 4, wild); /* no reference for class 4 */
        gb_class_drift_add(d, k, 2, k == 0 ? wild : mild);
    }
    gb_class_drift_close(d, 3);
    uint32_t classes[GB_CLASS_DRIFT_TOP];
    float ratio[GB_CLASS_DRIFT_TOP];
    assert_int_equal(gb_class_drift_top(d, 0, classes, ratio), 1);
    assert_int_equal(classes[0], 2);
    /* another class count: the reference goes */
    assert_int_equal(gb_class_drift_begin(d, CLASSES + 1, CELLS, &err), 0);
    assert_int_equal(gb_class_drift_reserve(d, 0, &err), 0);
    gb_class_drift_add(d, 0, 2, wild);
    gb_class_drift_close(d, 1);
    assert_int_equal(gb_class_drift_top(d, 0, classes, ratio), 0);
    /* and refusals */
    assert_int_equal(gb_class_drift_begin(d, 0, CELLS, &err), GB_EINVAL);
    assert_int_equal(gb_class_drift_begin(d, CLASSES, 0, &err), GB_EINVAL);
    gb_class_drift_destroy(&d);
}

/* Identical clients: a median of 0 is floored, not divided by. */
static void test_agreeing_clients(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_class_drift_t *d = t_with_reference();
    uint8_t flat[4 * CELLS], odd[4 * CELLS];
    t_map(flat, 0, 1.0f);
    t_map(odd, 1, 1.001f);
    for (size_t k = 0; k < 5; k++) {
        assert_int_equal(gb_class_drift_reserve(d, k, &err), 0);
        gb_class_drift_add(d, k, 0, k == 4 ? odd : flat);
    }
    gb_class_drift_close(d, 5);
    uint32_t classes[GB_CLASS_DRIFT_TOP];
    float ratio[GB_CLASS_DRIFT_TOP];
    for (size_t k = 0; k < 4; k++)
        assert_int_equal(gb_class_drift_top(d, k, classes, ratio), 0);
    size_t n = gb_class_drift_top(d, 4, classes, ratio);
    if (n) /* a tiny drift over the floor: finite, never infinite */
        assert_true(isfinite(ratio[0]));
    gb_class_drift_destroy(&d);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_alloc_fail_after(1);
    assert_null(gb_class_drift_new(&err));
    gb_alloc_fail_after(0);
    assert_int_equal(err.code, GB_ENOMEM);
    gb_class_drift_t *d = gb_class_drift_new(&err);
    gb_alloc_fail_after(1);
    assert_int_equal(gb_class_drift_begin(d, CLASSES, CELLS, &err), GB_ENOMEM);
    gb_alloc_fail_after(0);
    assert_int_equal(gb_class_drift_begin(d, CLASSES, CELLS, &err), 0);
    uint8_t le[4 * CELLS];
    t_map(le, 0, 1.0f);
    for (long k = 1; k <= 2; k++) { /* the rows or the medians' scratch */
        gb_alloc_fail_after(k);
        assert_int_equal(gb_class_drift_reserve(d, 0, &err), GB_ENOMEM);
        gb_alloc_fail_after(0);
    }
    assert_int_equal(gb_class_drift_reserve(d, 0, &err), 0);
    gb_alloc_fail_after(1); /* no room for a reference: the next round names nothing */
    gb_class_drift_set_reference(d, 0, le);
    gb_alloc_fail_after(0);
    gb_class_drift_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_round_names_nothing),
        cmocka_unit_test(test_the_moved_classes),
        cmocka_unit_test(test_unmeasured_classes_and_shapes),
        cmocka_unit_test(test_agreeing_clients),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
