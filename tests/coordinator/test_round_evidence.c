/* Round evidence (coordinator/round_evidence.h): sketched distances follow
 * the true distances, the median centre ignores a minority, the lessons'
 * robust z per feature (its floor, increases only, updates without one),
 * and every bound of its input is refused without keeping anything. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "round_evidence.h"
#include "util/alloc.h"
#include "util/rng.h"

#define P 20000 /* parameters of the test's "model" */

static gb_round_evidence_t *s_new(size_t max_clients)
{
    gb_error_t err = {0};
    gb_round_evidence_t *e = gb_round_evidence_new(max_clients, 0, 0, &err);
    assert_non_null(e);
    return e;
}

static double s_norm(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

/* One update against an all-zero one: the sketched distance is the update's
 * own norm within the sketch's error (about 4% at 1,024 buckets; 15%
 * allowed), for dense and for sparse updates. */
static void test_sketch_keeps_distances(void **state)
{
    (void)state;
    static float zero[P], x[P];
    gb_rng_t rng;
    gb_rng_seed(&rng, 7, 1);
    for (int sparse = 0; sparse <= 1; sparse++) {
        for (int i = 0; i < P; i++)
            x[i] = sparse && i % 50 ? 0.0f : (float)gb_rng_normal(&rng);
        gb_round_evidence_t *e = s_new(4);
        gb_error_t err = {0};
        assert_int_equal(gb_round_evidence_add(e, "zero", zero, P, 0.0, NULL, &err), 0);
        assert_int_equal(gb_round_evidence_add(e, "x", x, P, s_norm(x, P), NULL, &err), 0);
        double d[2];
        gb_round_evidence_distances(e, d);
        /* two updates: the median is their midpoint, half the distance away */
        double want = 0.5 * s_norm(x, P);
        assert_true(fabs(d[0] - want) < 0.15 * want);
        assert_true(fabs(d[1] - want) < 0.15 * want);
        assert_true(gb_round_evidence_norm(e, 1) == s_norm(x, P));
        assert_string_equal(gb_round_evidence_client(e, 1), "x");
        gb_round_evidence_destroy(&e);
    }
}

/* Eight updates near one direction and two far from it (an attacker's
 * sign-flipped, scaled update): the median stays with the eight, so the two
 * are far and the eight near, whatever the order they came in. */
static void test_median_centre_ignores_a_minority(void **state)
{
    (void)state;
    static float base[P], u[P];
    gb_rng_t rng;
    gb_rng_seed(&rng, 3, 1);
    for (int i = 0; i < P; i++)
        base[i] = (float)gb_rng_normal(&rng);
    gb_round_evidence_t *e = s_new(10);
    gb_error_t err = {0};
    for (int c = 0; c < 10; c++) {
        bool bad = c == 2 || c == 7;
        for (int i = 0; i < P; i++)
            u[i] = bad ? -10.0f * base[i] : base[i] + 0.1f * (float)gb_rng_normal(&rng);
        char name[16];
        snprintf(name, sizeof name, "c%d", c);
        assert_int_equal(gb_round_evidence_add(e, name, u, P, s_norm(u, P), NULL, &err), 0);
    }
    assert_int_equal(gb_round_evidence_count(e), 10);
    double d[10];
    gb_round_evidence_distances(e, d);
    double honest_max = 0;
    for (int c = 0; c < 10; c++)
        if (c != 2 && c != 7 && d[c] > honest_max)
            honest_max = d[c];
    double base_norm = s_norm(base, P);
    assert_true(honest_max < 0.2 * base_norm);
    assert_true(d[2] > 10.0 * base_norm && d[7] > 10.0 * base_norm);
    gb_round_evidence_destroy(&e);
}

/* Each bound crossed: a name of 0 or 65 bytes, a delta of another length
 * than the round's, one update past max_clients. Nothing is kept; clear
 * starts a new round of any length. */
static void test_bounds_are_refused(void **state)
{
    (void)state;
    static float x[P];
    gb_round_evidence_t *e = s_new(2);
    gb_error_t err = {0};
    char long_name[66];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_int_equal(gb_round_evidence_add(e, "", x, P, 0, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_round_evidence_add(e, NULL, x, P, 0, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_round_evidence_add(e, long_name, x, P, 0, NULL, &err), GB_EINVAL);
    long_name[64] = '\0';
    assert_int_equal(gb_round_evidence_add(e, long_name, x, P, 0, NULL, &err), 0);
    assert_int_equal(gb_round_evidence_add(e, "b", x, P - 1, 0, NULL, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "parameters"));
    assert_int_equal(gb_round_evidence_add(e, "b", x, 0, 0, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_round_evidence_add(e, "b", x, P, 0, NULL, &err), 0);
    assert_int_equal(gb_round_evidence_add(e, "c", x, P, 0, NULL, &err), GB_ERANGE);
    assert_int_equal(gb_round_evidence_count(e), 2);
    gb_round_evidence_clear(e);
    assert_int_equal(gb_round_evidence_count(e), 0);
    assert_int_equal(gb_round_evidence_add(e, "c", x, 10, 0, NULL, &err), 0);
    gb_round_evidence_destroy(&e);
    gb_round_evidence_destroy(&e); /* NULL-safe */
    assert_null(gb_round_evidence_new(0, 0, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_round_evidence_new(10, 65537, 0, &err));
    assert_null(gb_round_evidence_new(SIZE_MAX / 8, 1024, 0, &err));
}

#define N 10
#define F 40

/* One update of P zeros with lesson share (NULL: none) under name. */
static int s_add_lesson(gb_round_evidence_t *e, const char *name, const float *share,
                        gb_error_t *err)
{
    static const float zeros[P];
    return gb_round_evidence_add(e, name, zeros, P, 0.0, share, err);
}

static void test_the_odd_lesson_stands_out(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_round_evidence_t *e = gb_round_evidence_new(N + 1, 0, F, &err);
    assert_non_null(e);
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
        assert_int_equal(s_add_lesson(e, names[c], share, &err), 0);
        if (c == 3) /* one without a lesson: no z, and not in the others' centre */
            assert_int_equal(s_add_lesson(e, "unprobed", NULL, &err), 0);
    }
    assert_int_equal(gb_round_evidence_count(e), N + 1);
    double z[N + 1];
    size_t ft[N + 1];
    gb_round_evidence_lessons(e, GB_ROUND_EVIDENCE_LESSON_FLOOR, z, ft);
    /* positions in the order added: client-0..3, unprobed, client-4.. */
    assert_string_equal(gb_round_evidence_client(e, 4), "unprobed");
    assert_true(isnan(z[4]));
    assert_int_equal(ft[4], 0);
    const size_t at7 = 8;
    assert_string_equal(gb_round_evidence_client(e, at7), "client-7");
    assert_int_equal(ft[at7], 13);
    /* 0.5 over a spread floored at 1/F: z about 20 */
    assert_true(z[at7] > 15 && z[at7] < 25);
    for (size_t i = 0; i < N + 1; i++)
        if (i != at7 && i != 4)
            assert_true(z[i] < 3.0);
    /* a new round forgets; fewer than 3 lessons: no z */
    gb_round_evidence_clear(e);
    assert_int_equal(s_add_lesson(e, names[0], share, &err), 0);
    assert_int_equal(s_add_lesson(e, names[1], share, &err), 0);
    assert_int_equal(s_add_lesson(e, names[2], NULL, &err), 0);
    gb_round_evidence_lessons(e, GB_ROUND_EVIDENCE_LESSON_FLOOR, z, ft);
    for (size_t i = 0; i < 3; i++)
        assert_true(isnan(z[i]));
    gb_round_evidence_destroy(&e);
}

static void test_lesson_bounds_are_refused(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_null(gb_round_evidence_new(N, 0, GB_ROUND_EVIDENCE_MAX_FEATURES + 1, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_round_evidence_new(SIZE_MAX / 8, 16, GB_ROUND_EVIDENCE_MAX_FEATURES, &err));
    gb_round_evidence_t *e = gb_round_evidence_new(2, 0, F, &err);
    assert_non_null(e);
    float share[F] = {0};
    share[3] = NAN;
    assert_int_equal(s_add_lesson(e, "a", share, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "feature 3"));
    share[3] = INFINITY;
    assert_int_equal(s_add_lesson(e, "a", share, &err), GB_ERANGE);
    assert_int_equal(gb_round_evidence_count(e), 0); /* nothing kept */
    share[3] = 0;
    assert_int_equal(s_add_lesson(e, "a", share, &err), 0);
    assert_int_equal(s_add_lesson(e, "b", share, &err), 0);
    assert_int_equal(s_add_lesson(e, "c", share, &err), GB_ERANGE); /* past max */
    gb_round_evidence_destroy(&e);
    /* a lesson where none are kept */
    e = gb_round_evidence_new(2, 0, 0, &err);
    assert_non_null(e);
    assert_int_equal(s_add_lesson(e, "a", share, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "lessons are not kept"));
    assert_int_equal(s_add_lesson(e, "a", NULL, &err), 0);
    double z[1];
    size_t ft[1];
    gb_round_evidence_lessons(e, GB_ROUND_EVIDENCE_LESSON_FLOOR, z, ft);
    assert_true(isnan(z[0]));
    gb_round_evidence_destroy(&e);
}

/* Every allocation of the first update's growth failing in turn: GB_ENOMEM,
 * nothing kept, and the next add (memory back) keeps it. */
static void test_growth_out_of_memory(void **state)
{
    (void)state;
    gb_error_t err = {0};
    float share[F] = {0};
    for (long k = 1; k <= 6; k++) {
        gb_round_evidence_t *e = gb_round_evidence_new(4, 0, F, &err);
        assert_non_null(e);
        gb_alloc_fail_after(k);
        int rc = s_add_lesson(e, "a", share, &err);
        gb_alloc_fail_after(0);
        assert_int_equal(rc, GB_ENOMEM);
        assert_non_null(strstr(err.msg, "out of memory"));
        assert_int_equal(gb_round_evidence_count(e), 0);
        assert_int_equal(s_add_lesson(e, "a", share, &err), 0);
        assert_int_equal(gb_round_evidence_count(e), 1);
        gb_round_evidence_destroy(&e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sketch_keeps_distances),
        cmocka_unit_test(test_median_centre_ignores_a_minority),
        cmocka_unit_test(test_bounds_are_refused),
        cmocka_unit_test(test_the_odd_lesson_stands_out),
        cmocka_unit_test(test_lesson_bounds_are_refused),
        cmocka_unit_test(test_growth_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
