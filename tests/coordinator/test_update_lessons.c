/* The round's lessons compared across clients (coordinator/update_lessons.h):
 * the robust z per feature, its floor, increases only, and every bound. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "update_lessons.h"
#include "util/rng.h"

#define N 10
#define F 40

static void test_the_odd_lesson_stands_out(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_update_lessons_t *l = gb_update_lessons_new(N, F, GB_UPDATE_LESSONS_FLOOR, &err);
    assert_non_null(l);
    gb_rng_t rng;
    gb_rng_seed(&rng, 3, 1);
    char names[N][16];
    float share[F];
    for (int c = 0; c < N; c++) {
        snprintf(names[c], sizeof names[c], "client-%d", c);
        for (int j = 0; j < F; j++)
            share[j] = (float)(1.0 / F * (1 + 0.2 * gb_rng_normal(&rng)));
        if (c == 7)
            share[13] += 0.5f; /* teaches feature 13 as nobody else */
        if (c == 8)
            share[5] -= 0.5f;  /* unlearns feature 5: not suspect */
        assert_int_equal(gb_update_lessons_add(l, names[c], share, &err), 0);
    }
    assert_int_equal(gb_update_lessons_count(l), N);
    size_t ft = 99;
    assert_true(isnan(gb_update_lessons_z(l, "client-7", &ft))); /* not scored yet */
    gb_update_lessons_score(l);
    double z7 = gb_update_lessons_z(l, "client-7", &ft);
    assert_int_equal(ft, 13);
    /* 0.5 over a spread floored at 1/F: z about 20 */
    assert_true(z7 > 15 && z7 < 25);
    for (int c = 0; c < N; c++)
        if (c != 7)
            assert_true(gb_update_lessons_z(l, names[c], NULL) < 3.0);
    assert_true(isnan(gb_update_lessons_z(l, "nobody", &ft)));
    assert_int_equal(ft, 0);
    /* a new round forgets */
    gb_update_lessons_clear(l);
    assert_int_equal(gb_update_lessons_count(l), 0);
    assert_true(isnan(gb_update_lessons_z(l, "client-7", NULL)));
    /* fewer than 3 clients: no z */
    assert_int_equal(gb_update_lessons_add(l, names[0], share, &err), 0);
    assert_int_equal(gb_update_lessons_add(l, names[1], share, &err), 0);
    gb_update_lessons_score(l);
    assert_true(isnan(gb_update_lessons_z(l, names[0], NULL)));
    gb_update_lessons_destroy(&l);
    assert_null(l);
    gb_update_lessons_destroy(&l);
}

static void test_bounds(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_null(gb_update_lessons_new(0, F, 1.0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_update_lessons_new(N, 0, 1.0, &err));
    assert_null(gb_update_lessons_new(N, 65537, 1.0, &err));
    assert_null(gb_update_lessons_new(N, F, 0.0, &err));
    assert_null(gb_update_lessons_new(N, F, NAN, &err));
    gb_update_lessons_t *l = gb_update_lessons_new(2, F, 1.0, &err);
    assert_non_null(l);
    float share[F] = {0};
    assert_int_equal(gb_update_lessons_add(l, "", share, &err), GB_EINVAL);
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(gb_update_lessons_add(l, longname, share, &err), GB_EINVAL);
    share[3] = NAN;
    assert_int_equal(gb_update_lessons_add(l, "a", share, &err), GB_ERANGE);
    share[3] = 0;
    assert_int_equal(gb_update_lessons_add(l, "a", share, &err), 0);
    assert_int_equal(gb_update_lessons_add(l, "a", share, &err), GB_EINVAL); /* twice */
    assert_int_equal(gb_update_lessons_add(l, "b", share, &err), 0);
    assert_int_equal(gb_update_lessons_add(l, "c", share, &err), GB_ERANGE); /* past max */
    assert_int_equal(gb_update_lessons_count(l), 2);
    gb_update_lessons_destroy(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_odd_lesson_stands_out),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
