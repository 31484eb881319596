/* The flagger (coordinator/client_flags.h): robust z-scores per round, the
 * window per client, and every bound of its input. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "client_flags.h"
#include "util/rng.h"

#define N 10

static char s_names[N][16];

/* Honest evidence: every signal about 1 with 10% noise. */
static void s_honest(gb_flag_evidence_t *ev, gb_rng_t *rng)
{
    for (int i = 0; i < N; i++) {
        snprintf(s_names[i], sizeof s_names[i], "client-%d", i);
        ev[i].client = s_names[i];
        ev[i].explanation = 0.10 * (1 + 0.1 * gb_rng_normal(rng));
        ev[i].update = 2.0 * (1 + 0.1 * gb_rng_normal(rng));
        ev[i].norm = 3.0 * (1 + 0.1 * gb_rng_normal(rng));
        ev[i].lesson = NAN; /* no probe: test_lesson_signal gives lessons */
    }
}

static gb_flagger_t *s_new(void)
{
    gb_error_t err = {0};
    gb_flagger_t *f = gb_flagger_new(NULL, &err);
    assert_non_null(f);
    return f;
}

/* Ten honest clients (every signal within 10% noise) over 20 rounds, five
 * seeds: none is flagged in more than one round (the bar). */
static void test_honest_clients_are_not_flagged(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        gb_flagger_t *f = s_new();
        gb_rng_t rng;
        gb_rng_seed(&rng, seed, 1);
        gb_flag_evidence_t ev[N];
        gb_flag_verdict_t v[N];
        int flagged_rounds[N] = {0};
        gb_error_t err = {0};
        for (uint64_t r = 1; r <= 20; r++) {
            s_honest(ev, &rng);
            assert_int_equal(gb_flagger_round(f, r, ev, N, v, &err), 0);
            for (int i = 0; i < N; i++)
                flagged_rounds[i] += v[i].flagged;
        }
        for (int i = 0; i < N; i++)
            if (flagged_rounds[i] > 1)
                fail_msg("seed %llu: honest client %d flagged in %d rounds of 20",
                         (unsigned long long)seed, i, flagged_rounds[i]);
        assert_int_equal(gb_flagger_clients(f), N);
        gb_flagger_destroy(&f);
        gb_flagger_destroy(&f); /* twice: a no-op */
    }
}

/* Model poisoning: updates ten times the others' norm are flagged in the
 * round they arrive; an explanation moved three times as far as the others'
 * in two rounds of five; the others are not. */
static void test_attackers_are_flagged(void **state)
{
    (void)state;
    gb_flagger_t *f = s_new();
    gb_rng_t rng;
    gb_rng_seed(&rng, 4, 1);
    gb_flag_evidence_t ev[N];
    gb_flag_verdict_t v[N];
    gb_error_t err = {0};
    s_honest(ev, &rng);
    ev[0].norm *= 10;
    ev[0].update *= 10;
    assert_int_equal(gb_flagger_round(f, 1, ev, N, v, &err), 0);
    assert_true(v[0].flagged && v[0].stood_out);
    assert_true(v[0].strongest == GB_FLAG_UPDATE || v[0].strongest == GB_FLAG_NORM);
    assert_true(v[0].z[GB_FLAG_NORM] > 30);
    for (int i = 1; i < N; i++)
        assert_false(v[i].flagged);
    /* a backdoor: the explanation moves (not enough to flag at once), the
     * update looks ordinary */
    for (uint64_t r = 2; r <= 3; r++) {
        s_honest(ev, &rng);
        ev[1].explanation *= 1.8;
        assert_int_equal(gb_flagger_round(f, r, ev, N, v, &err), 0);
        assert_true(v[1].stood_out);
        assert_int_equal(v[1].strongest, GB_FLAG_EXPLANATION);
        assert_true(r == 3 || !v[1].flagged);
        /* its explanation stands out, its update does not: they disagree */
        assert_true(v[1].z[GB_FLAG_DISAGREE] > 3.5);
    }
    assert_true(v[1].flagged);
    assert_int_equal(v[1].rounds_out, 2);
    assert_true(v[1].score > 3.5);
    for (int i = 2; i < N; i++)
        assert_false(v[i].flagged);
    gb_flagger_destroy(&f);
}

/* One odd round is forgotten after the window; a client below the median
 * is never suspect; a signal of fewer than 3 clients has no z. */
static void test_window_and_missing_signals(void **state)
{
    (void)state;
    gb_flag_cfg_t c = {.window = 3, .needed = 2};
    gb_error_t err = {0};
    gb_flagger_t *f = gb_flagger_new(&c, &err);
    assert_non_null(f);
    gb_rng_t rng;
    gb_rng_seed(&rng, 5, 1);
    gb_flag_evidence_t ev[N];
    gb_flag_verdict_t v[N];
    s_honest(ev, &rng);
    ev[2].explanation *= 2.0; /* stands out, not by enough to flag at once */
    ev[3].norm = 0;           /* far below: not suspect */
    assert_int_equal(gb_flagger_round(f, 1, ev, N, v, &err), 0);
    assert_true(v[2].stood_out && !v[2].flagged);
    assert_false(v[3].stood_out);
    assert_true(v[3].z[GB_FLAG_NORM] < -3.5);
    for (uint64_t r = 2; r <= 4; r++) {
        s_honest(ev, &rng);
        assert_int_equal(gb_flagger_round(f, r, ev, N, v, &err), 0);
    }
    assert_int_equal(v[2].rounds_out, 0);
    assert_int_equal(v[2].rounds_seen, 3);
    /* explanations from two clients only: no explanation z, no disagreement */
    s_honest(ev, &rng);
    for (int i = 2; i < N; i++)
        ev[i].explanation = NAN;
    assert_int_equal(gb_flagger_round(f, 5, ev, N, v, &err), 0);
    for (int i = 0; i < N; i++) {
        assert_true(isnan(v[i].z[GB_FLAG_EXPLANATION]));
        assert_true(isnan(v[i].z[GB_FLAG_DISAGREE]));
        assert_false(isnan(v[i].z[GB_FLAG_UPDATE]));
    }
    /* two clients in all: nothing has a z, nobody stands out */
    assert_int_equal(gb_flagger_round(f, 6, ev, 2, v, &err), 0);
    assert_true(isnan(v[0].z[GB_FLAG_NORM]) && !v[0].stood_out);
    gb_flagger_destroy(&f);
}

static void test_bounds(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_flag_cfg_t bad[] = {{.window = 65}, {.window = 3, .needed = 4}, {.z = -1},
                           {.z = 4, .z_now = 3}, {.min_spread = -0.1}, {.z = NAN}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(gb_flagger_new(&bad[i], &err));
        assert_int_equal(err.code, GB_EINVAL);
    }
    gb_flag_cfg_t d = gb_flag_defaults(NULL);
    assert_int_equal(d.window, 5);
    assert_int_equal(d.needed, 2);
    assert_true(d.z == 3.5 && d.z_now == 10.5);
    assert_string_equal(gb_flag_signal_name(GB_FLAG_DISAGREE), "disagreement");
    assert_string_equal(gb_flag_signal_name((gb_flag_signal_t)9), "unknown");

    gb_flag_cfg_t c = {.max_clients = N};
    gb_flagger_t *f = gb_flagger_new(&c, &err);
    gb_rng_t rng;
    gb_rng_seed(&rng, 6, 1);
    gb_flag_evidence_t ev[N + 1];
    gb_flag_verdict_t v[N + 1];
    s_honest(ev, &rng);
    assert_int_equal(gb_flagger_round(f, 2, ev, N, v, &err), 0);
    /* one more client than remembered: refused, nothing changes */
    ev[N] = ev[0];
    ev[N].client = "client-new";
    assert_int_equal(gb_flagger_round(f, 3, ev, N + 1, v, &err), GB_ERANGE);
    assert_int_equal(gb_flagger_clients(f), N);
    /* a round not after the last */
    assert_int_equal(gb_flagger_round(f, 2, ev, N, v, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "not after round 2"));
    /* a name twice, an empty name, one too long */
    ev[1].client = ev[0].client;
    assert_int_equal(gb_flagger_round(f, 3, ev, N, v, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "twice"));
    ev[1].client = "";
    assert_int_equal(gb_flagger_round(f, 3, ev, N, v, &err), GB_EINVAL);
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ev[1].client = longname;
    assert_int_equal(gb_flagger_round(f, 3, ev, N, v, &err), GB_EINVAL);
    /* and after all of that, round 3 still works */
    ev[1].client = s_names[1];
    assert_int_equal(gb_flagger_round(f, 3, ev, N, v, &err), 0);
    /* NaN and infinite evidence is no evidence, not an outlier */
    ev[4].norm = INFINITY;
    ev[5].update = NAN;
    assert_int_equal(gb_flagger_round(f, 4, ev, N, v, &err), 0);
    assert_true(isnan(v[4].z[GB_FLAG_NORM]) && !v[4].flagged);
    assert_true(isnan(v[5].z[GB_FLAG_UPDATE]) && !v[5].flagged);
    /* an empty round is fine */
    assert_int_equal(gb_flagger_round(f, 5, ev, 0, v, &err), 0);
    gb_flagger_destroy(&f);
}

/* is_flagged follows each client's last verdict: false before it is
 * scored, true the round it is flagged, false again once its window holds
 * too few rounds it stood out in. */
static void test_is_flagged_follows_the_last_verdict(void **state)
{
    (void)state;
    gb_flag_cfg_t c = {.window = 2, .needed = 2};
    gb_error_t err = {0};
    gb_flagger_t *f = gb_flagger_new(&c, &err);
    assert_non_null(f);
    gb_rng_t rng;
    gb_rng_seed(&rng, 9, 1);
    gb_flag_evidence_t ev[N];
    gb_flag_verdict_t v[N];
    assert_false(gb_flagger_is_flagged(f, "client-0"));
    s_honest(ev, &rng);
    ev[0].update *= 100.0; /* far past z_now: flagged at once */
    assert_int_equal(gb_flagger_round(f, 1, ev, N, v, &err), 0);
    assert_true(v[0].flagged);
    assert_true(gb_flagger_is_flagged(f, "client-0"));
    assert_false(gb_flagger_is_flagged(f, "client-1"));
    assert_false(gb_flagger_is_flagged(f, "nobody"));
    for (uint64_t r = 2; r <= 3; r++) {
        s_honest(ev, &rng);
        assert_int_equal(gb_flagger_round(f, r, ev, N, v, &err), 0);
    }
    assert_false(v[0].flagged);
    assert_false(gb_flagger_is_flagged(f, "client-0"));
    gb_flagger_destroy(&f);
}

/* The lesson comes scored: a lesson z of 4 (past z, short of lesson_z)
 * never stands out; one of 8 stands out each round and flags in the second
 * (needed 2), with lesson the strongest signal and its score on the
 * others' scale (8 x z / lesson_z); one past 3 x lesson_z flags at once;
 * a lesson_z that is not positive is refused. */
static void test_lesson_signal(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_flagger_t *f = s_new();
    gb_rng_t rng;
    gb_rng_seed(&rng, 11, 1);
    gb_flag_evidence_t ev[N];
    gb_flag_verdict_t v[N];
    for (uint64_t r = 1; r <= 3; r++) {
        s_honest(ev, &rng);
        for (int i = 0; i < N; i++) {
            /* the other signals alike, so that only the lesson can stand out */
            ev[i].explanation = 0.1;
            ev[i].update = 2.0;
            ev[i].norm = 3.0;
            ev[i].lesson = 0.1 * i;
        }
        ev[1].lesson = 4.0;
        ev[2].lesson = 8.0;
        assert_int_equal(gb_flagger_round(f, r, ev, N, v, &err), 0);
        assert_false(v[1].stood_out);
        assert_true(v[2].stood_out);
        assert_int_equal(v[2].strongest, GB_FLAG_LESSON);
        assert_true(v[2].z[GB_FLAG_LESSON] == 8.0);
        assert_true(v[2].flagged == (r >= 2));
        assert_false(v[1].flagged);
    }
    assert_true(fabs(v[2].score - 8.0 * 3.5 / 6.0) < 1e-9);
    for (int i = 0; i < N; i++)
        ev[i].lesson = 0.1 * i;
    ev[3].lesson = 18.5;
    ev[4].lesson = NAN; /* no lesson: no z, not suspect */
    assert_int_equal(gb_flagger_round(f, 4, ev, N, v, &err), 0);
    assert_true(v[3].flagged);
    assert_true(isnan(v[4].z[GB_FLAG_LESSON]) && !v[4].flagged);
    assert_string_equal(gb_flag_signal_name(GB_FLAG_LESSON), "lesson");
    gb_flagger_destroy(&f);
    gb_flag_cfg_t c = {.lesson_z = -1};
    assert_null(gb_flagger_new(&c, &err));
    assert_int_equal(err.code, GB_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest_clients_are_not_flagged),
        cmocka_unit_test(test_attackers_are_flagged),
        cmocka_unit_test(test_window_and_missing_signals),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_is_flagged_follows_the_last_verdict),
        cmocka_unit_test(test_lesson_signal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
