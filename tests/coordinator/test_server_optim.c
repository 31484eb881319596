/* Tests for coordinator/server_optim: spec strings and defaults; bad
 * configurations; sgd by hand; FedAdam, FedYogi and FedAdagrad against the
 * formulas of Reddi et al. 2021 (Algorithm 2) written out here in double
 * precision, over several steps; state save and restore resuming
 * bit-identically; every refused step and restore changing nothing; and
 * allocation-failure injection in the constructor. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server_optim.h"
#include "util/alloc.h"
#include "util/log.h"

static uint64_t s_rng = 0x2545f4914f6cdd1dull;

static gb_server_optim_t *s_new(const char *spec, size_t n)
{
    gb_error_t err;
    gb_server_optim_cfg_t cfg;
    if (gb_server_optim_parse(spec, &cfg, &err) != 0)
        fail_msg("%s: %s", spec, err.msg);
    gb_server_optim_t *opt = gb_server_optim_new(&cfg, n, &err);
    if (!opt)
        fail_msg("%s: %s", spec, err.msg);
    return opt;
}

static void test_parse(void **state)
{
    (void)state;
    gb_error_t err;
    gb_server_optim_cfg_t c;
    assert_int_equal(gb_server_optim_parse("sgd", &c, &err), 0);
    assert_int_equal(c.kind, GB_SERVER_SGD);
    assert_true(c.lr == 1.0);
    assert_int_equal(gb_server_optim_parse("fedadam", &c, &err), 0);
    assert_int_equal(c.kind, GB_SERVER_FEDADAM);
    assert_true(c.lr == 0.1 && c.beta1 == 0.9 && c.beta2 == 0.99 && c.tau == 1e-3);
    assert_int_equal(gb_server_optim_parse("fedyogi", &c, &err), 0);
    assert_int_equal(c.kind, GB_SERVER_FEDYOGI);
    assert_true(c.lr == 0.01 && c.tau == 1e-3);
    assert_int_equal(gb_server_optim_parse("fedadagrad", &c, &err), 0);
    assert_int_equal(c.kind, GB_SERVER_FEDADAGRAD);
    assert_true(c.lr == 0.1);
    assert_int_equal(gb_server_optim_parse("fedyogi:lr=0.5,beta1=0.5,beta2=0.9,tau=1e-4", &c, &err),
                     0);
    assert_true(c.lr == 0.5 && c.beta1 == 0.5 && c.beta2 == 0.9 && c.tau == 1e-4);
    assert_int_equal(gb_server_optim_parse("sgd:lr=0.25", &c, &err), 0);
    assert_true(c.lr == 0.25);
    assert_int_equal(gb_server_optim_parse("fedadam:beta1=0", &c, &err), 0);
    assert_true(c.beta1 == 0 && c.lr == 0.1);

    gb_server_optim_cfg_t d = gb_server_optim_defaults(GB_SERVER_FEDADAGRAD);
    assert_true(d.kind == GB_SERVER_FEDADAGRAD && d.beta1 == 0.9 && d.tau == 1e-3);
    assert_string_equal(gb_server_optim_kind_name(GB_SERVER_SGD), "sgd");
    assert_string_equal(gb_server_optim_kind_name(GB_SERVER_FEDADAM), "fedadam");
    assert_string_equal(gb_server_optim_kind_name(GB_SERVER_FEDYOGI), "fedyogi");
    assert_string_equal(gb_server_optim_kind_name(GB_SERVER_FEDADAGRAD), "fedadagrad");
    assert_string_equal(gb_server_optim_kind_name((gb_server_optim_kind_t)9), "?");
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "empty spec"},
        {"adam", "'adam': unknown"},
        {"FedAdam", "unknown"},
        {"sgd:beta1=0.5", "sgd: unknown option 'beta1'; sgd takes only lr"},
        {"fedadam:eta=1", "unknown option 'eta'"},
        {"fedadam:", "nothing after ':'"},
        {"fedadam:lr", "'lr' is not key=value"},
        {"fedadam:lr=", "lr value '' is not a number"},
        {"fedadam:lr=abc", "lr value 'abc' is not a number"},
        {"fedadam:lr=0.1x", "is not a number"},
        {"fedadam:lr=nan", "is not a number"},
        {"fedadam:lr=inf", "is not a number"},
        {"fedadam:lr=1e999", "lr inf must be a finite number > 0"},
        {"fedadam:lr=0", "fedadam: lr 0 must be a finite number > 0"},
        {"sgd:lr=-1", "sgd: lr -1 must be"},
        {"fedadam:lr=0.1,", "trailing ','"},
        {"fedyogi:beta2=1.5", "fedyogi: beta2 1.5 must be in [0, 1)"},
        {"fedadam:beta1=1", "beta1 1 must be in [0, 1)"},
        {"fedadam:beta1=-0.1", "beta1 -0.1 must be in [0, 1)"},
        {"fedadagrad:tau=0", "fedadagrad: tau 0 must be a finite number > 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gb_error_t err;
        gb_server_optim_cfg_t c = {.kind = GB_SERVER_FEDYOGI, .lr = 7};
        assert_int_equal(gb_server_optim_parse(bad[i].in, &c, &err), GB_EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].in, err.msg, bad[i].msg);
        assert_int_equal(c.kind, GB_SERVER_FEDYOGI);
        assert_true(c.lr == 7);
    }
    gb_error_t err;
    gb_server_optim_cfg_t c;
    assert_int_equal(gb_server_optim_parse(NULL, &c, &err), GB_EINVAL);
    char longspec[GB_SERVER_OPTIM_SPEC_MAX + 10];
    memset(longspec, 'a', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = '\0';
    assert_int_equal(gb_server_optim_parse(longspec, &c, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "longer than"));
}

static void test_new(void **state)
{
    (void)state;
    gb_error_t err;
    gb_server_optim_cfg_t c = gb_server_optim_defaults(GB_SERVER_FEDADAM);
    assert_null(gb_server_optim_new(NULL, 10, &err));
    assert_null(gb_server_optim_new(&c, 0, &err));
    assert_non_null(strstr(err.msg, "param_count 0"));
    assert_null(gb_server_optim_new(&c, GB_SERVER_OPTIM_MAX_PARAMS + 1, &err));
    c.beta2 = 1;
    assert_null(gb_server_optim_new(&c, 10, &err));
    assert_non_null(strstr(err.msg, "beta2 1 must be in [0, 1)"));
    c = gb_server_optim_defaults(GB_SERVER_FEDYOGI);
    c.tau = NAN;
    assert_null(gb_server_optim_new(&c, 10, &err));
    c = gb_server_optim_defaults(GB_SERVER_SGD);
    c.lr = INFINITY;
    assert_null(gb_server_optim_new(&c, 10, &err));
    c.kind = (gb_server_optim_kind_t)7;
    c.lr = 1;
    assert_null(gb_server_optim_new(&c, 10, &err));
    assert_non_null(strstr(err.msg, "unknown kind 7"));

    /* sgd ignores the adaptive fields, whatever they hold. */
    c = gb_server_optim_defaults(GB_SERVER_SGD);
    c.beta1 = 5;
    c.tau = -1;
    gb_server_optim_t *opt = gb_server_optim_new(&c, 3, &err);
    assert_non_null(opt);
    assert_int_equal(gb_server_optim_param_count(opt), 3);
    assert_int_equal(gb_server_optim_config(opt).kind, GB_SERVER_SGD);
    assert_int_equal(gb_server_optim_state_len(opt), 0);
    assert_int_equal(gb_server_optim_steps(opt), 0);
    gb_server_optim_destroy(&opt);
    assert_null(opt);
    gb_server_optim_destroy(&opt);
    gb_server_optim_destroy(NULL);

    /* The adaptive kinds start at m = 0, v = tau^2 (the paper's v_{-1}). */
    opt = s_new("fedadam:tau=0.5", 4);
    float st[8];
    uint64_t steps = 99;
    assert_int_equal(gb_server_optim_state_len(opt), 8);
    assert_int_equal(gb_server_optim_get_state(opt, st, 8, &steps, &err), 0);
    assert_int_equal(steps, 0);
    for (int i = 0; i < 4; i++) {
        assert_true(st[i] == 0.0f);
        assert_true(st[4 + i] == 0.25f);
    }
    gb_server_optim_destroy(&opt);
}

static void test_sgd(void **state)
{
    (void)state;
    gb_error_t err;
    gb_server_optim_t *opt = s_new("sgd", 3);
    float x[3] = {1, 2, 3};
    const float d[3] = {0.5f, -1, 0};
    assert_int_equal(gb_server_optim_step(opt, x, d, 3, &err), 0);
    assert_true(x[0] == 1.5f && x[1] == 1.0f && x[2] == 3.0f); /* lr 1: plain FedAvg */
    assert_int_equal(gb_server_optim_steps(opt), 1);
    uint64_t steps = 0;
    assert_int_equal(gb_server_optim_get_state(opt, NULL, 0, &steps, &err), 0);
    assert_int_equal(steps, 1);
    assert_int_equal(gb_server_optim_set_state(opt, NULL, 0, 7, &err), 0);
    assert_int_equal(gb_server_optim_steps(opt), 7);
    gb_server_optim_destroy(&opt);

    opt = s_new("sgd:lr=0.5", 3);
    assert_int_equal(gb_server_optim_step(opt, x, d, 3, &err), 0);
    assert_true(x[0] == 1.75f && x[1] == 0.5f && x[2] == 3.0f);
    gb_server_optim_destroy(&opt);
}

/* Algorithm 2 of Reddi et al., in double, for one kind. */
static void s_reference(gb_server_optim_kind_t kind, double lr, double b1, double b2, double tau,
                        double *x, double *m, double *v, const float *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double g = d[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        if (kind == GB_SERVER_FEDADAM)
            v[i] = b2 * v[i] + (1 - b2) * g * g;
        else if (kind == GB_SERVER_FEDYOGI) {
            double s = v[i] - g * g;
            v[i] = v[i] - (1 - b2) * g * g * (s > 0 ? 1 : s < 0 ? -1 : 0);
        } else
            v[i] = v[i] + g * g;
        x[i] = x[i] + lr * m[i] / (sqrt(v[i]) + tau);
    }
}

static void s_close(double got, double want, double rel, const char *what, size_t i)
{
    if (!(fabs(got - want) <= rel * fmax(fabs(want), 1e-6)))
        fail_msg("%s %zu: %.9g, paper's formula %.9g", what, i, got, want);
}

static void test_adaptive_vs_paper(void **state)
{
    (void)state;
    enum { N = 16, STEPS = 6 };
    static const struct {
        const char *spec;
        gb_server_optim_kind_t kind;
    } cases[] = {{"fedadam:lr=0.05,beta1=0.8,beta2=0.95,tau=0.01", GB_SERVER_FEDADAM},
                 {"fedyogi:lr=0.05,beta1=0.8,beta2=0.95,tau=0.01", GB_SERVER_FEDYOGI},
                 {"fedadagrad:lr=0.05,beta1=0.8,tau=0.01", GB_SERVER_FEDADAGRAD},
                 {"fedadam", GB_SERVER_FEDADAM},
                 {"fedyogi", GB_SERVER_FEDYOGI}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        gb_error_t err;
        gb_server_optim_t *opt = s_new(cases[c].spec, N);
        gb_server_optim_cfg_t cfg = gb_server_optim_config(opt);
        float x[N], d[N], st[2 * N];
        double rx[N], rm[N], rv[N];
        for (int i = 0; i < N; i++) {
            x[i] = (float)gb_test_xorshift_unif(&s_rng);
            rx[i] = x[i];
            rm[i] = 0;
            rv[i] = cfg.tau * cfg.tau;
        }
        for (int t = 0; t < STEPS; t++) {
            /* Magnitudes from 1e-3 to 1: Yogi's sign(v - D^2) takes both signs. */
            for (int i = 0; i < N; i++)
                d[i] = (float)(gb_test_xorshift_unif(&s_rng) * pow(10, -3 + (i + t) % 4));
            assert_int_equal(gb_server_optim_step(opt, x, d, N, &err), 0);
            s_reference(cfg.kind, cfg.lr, cfg.beta1, cfg.beta2, cfg.tau, rx, rm, rv, d, N);
            assert_int_equal(gb_server_optim_get_state(opt, st, 2 * N, NULL, &err), 0);
            for (int i = 0; i < N; i++) {
                s_close(x[i], rx[i], 1e-5, "x", (size_t)i);
                s_close(st[i], rm[i], 1e-5, "m", (size_t)i);
                s_close(st[N + i], rv[i], 1e-5, "v", (size_t)i);
            }
        }
        assert_int_equal(gb_server_optim_steps(opt), STEPS);
        gb_server_optim_destroy(&opt);
    }

    /* One FedAdam step by hand: D = 1, m = 0.1, v = 0.99 tau^2 + 0.01,
     * x += 0.1 * 0.1 / (sqrt(v) + tau). */
    gb_error_t err;
    gb_server_optim_t *opt = s_new("fedadam", 1);
    float x = 0;
    const float one = 1;
    assert_int_equal(gb_server_optim_step(opt, &x, &one, 1, &err), 0);
    double v = 0.99 * 1e-6 + 0.01;
    s_close(x, 0.01 / (sqrt(v) + 1e-3), 1e-6, "x", 0);
    gb_server_optim_destroy(&opt);
}

static void test_save_restore(void **state)
{
    (void)state;
    enum { N = 64 };
    static const char *const specs[] = {"sgd:lr=0.7", "fedadam", "fedyogi", "fedadagrad"};
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        gb_error_t err;
        float x[N], deltas[5][N];
        for (int i = 0; i < N; i++) {
            x[i] = (float)gb_test_xorshift_unif(&s_rng);
            for (int t = 0; t < 5; t++)
                deltas[t][i] = (float)(gb_test_xorshift_unif(&s_rng) * 0.1);
        }
        gb_server_optim_t *a = s_new(specs[s], N);
        for (int t = 0; t < 3; t++)
            assert_int_equal(gb_server_optim_step(a, x, deltas[t], N, &err), 0);
        /* A checkpoint: parameters, state and step count. */
        size_t len = gb_server_optim_state_len(a);
        float *saved = malloc(sizeof(float) * (len + 1)), saved_x[N];
        uint64_t saved_steps = 0;
        assert_int_equal(gb_server_optim_get_state(a, saved, len, &saved_steps, &err), 0);
        assert_int_equal(saved_steps, 3);
        memcpy(saved_x, x, sizeof x);
        for (int t = 3; t < 5; t++)
            assert_int_equal(gb_server_optim_step(a, x, deltas[t], N, &err), 0);

        /* A restarted coordinator resumes from the checkpoint. */
        gb_server_optim_t *b = s_new(specs[s], N);
        assert_int_equal(gb_server_optim_set_state(b, saved, len, saved_steps, &err), 0);
        assert_int_equal(gb_server_optim_steps(b), 3);
        for (int t = 3; t < 5; t++)
            assert_int_equal(gb_server_optim_step(b, saved_x, deltas[t], N, &err), 0);
        assert_memory_equal(x, saved_x, sizeof x);
        float *sa = malloc(sizeof(float) * (len + 1)), *sb = malloc(sizeof(float) * (len + 1));
        uint64_t ta, tb;
        assert_int_equal(gb_server_optim_get_state(a, sa, len, &ta, &err), 0);
        assert_int_equal(gb_server_optim_get_state(b, sb, len, &tb, &err), 0);
        assert_int_equal(ta, tb);
        if (len)
            assert_memory_equal(sa, sb, sizeof(float) * len);
        /* Without the state the run diverges: the state is what resumes it. */
        if (len) {
            gb_server_optim_t *fresh = s_new(specs[s], N);
            float y[N];
            memcpy(y, x, sizeof y);
            memcpy(saved_x, y, sizeof y);
            assert_int_equal(gb_server_optim_step(fresh, y, deltas[0], N, &err), 0);
            assert_int_equal(gb_server_optim_step(b, saved_x, deltas[0], N, &err), 0);
            assert_true(memcmp(y, saved_x, sizeof y) != 0);
            gb_server_optim_destroy(&fresh);
        }
        free(saved);
        free(sa);
        free(sb);
        gb_server_optim_destroy(&a);
        gb_server_optim_destroy(&b);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    enum { N = 8 };
    static const char *const specs[] = {"sgd", "fedadam", "fedyogi", "fedadagrad"};
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        gb_error_t err;
        gb_server_optim_t *opt = s_new(specs[s], N);
        float x[N], d[N];
        for (int i = 0; i < N; i++) {
            x[i] = (float)gb_test_xorshift_unif(&s_rng);
            d[i] = (float)gb_test_xorshift_unif(&s_rng);
        }
        assert_int_equal(gb_server_optim_step(opt, x, d, N, &err), 0);
        size_t len = gb_server_optim_state_len(opt);
        float st0[2 * N], st1[2 * N], x0[N];
        memcpy(x0, x, sizeof x);
        assert_int_equal(gb_server_optim_get_state(opt, st0, len, NULL, &err), 0);

        assert_int_equal(gb_server_optim_step(opt, x, d, N - 1, &err), GB_ESHAPE);
        assert_non_null(strstr(err.msg, "7 parameters, expected 8"));
        assert_int_equal(gb_server_optim_step(opt, NULL, d, N, &err), GB_ESHAPE);
        d[N - 1] = NAN;
        assert_int_equal(gb_server_optim_step(opt, x, d, N, &err), GB_ERANGE);
        assert_non_null(strstr(err.msg, "delta value 7 is not finite"));
        d[N - 1] = 0.5f;
        x[3] = INFINITY;
        assert_int_equal(gb_server_optim_step(opt, x, d, N, &err), GB_ERANGE);
        assert_non_null(strstr(err.msg, "parameter 3 is not finite"));
        x[3] = x0[3];
        /* A step that would overflow float32 (sgd: x + D past FLT_MAX;
         * adaptive: D^2 in v) is refused as a whole, after earlier
         * parameters were already checked. */
        d[5] = s == 0 ? FLT_MAX : 1e30f;
        x[5] = s == 0 ? FLT_MAX : x[5];
        float x_before[N];
        memcpy(x_before, x, sizeof x);
        assert_int_equal(gb_server_optim_step(opt, x, d, N, &err), GB_ERANGE);
        assert_non_null(strstr(err.msg, "parameter 5 or its state overflow"));
        assert_memory_equal(x, x_before, sizeof x);
        x[5] = x0[5];

        assert_memory_equal(x, x0, sizeof x);
        assert_int_equal(gb_server_optim_get_state(opt, st1, len, NULL, &err), 0);
        if (len)
            assert_memory_equal(st0, st1, sizeof(float) * len);
        assert_int_equal(gb_server_optim_steps(opt), 1);

        /* get_state and set_state with a wrong length. */
        assert_int_equal(gb_server_optim_get_state(opt, st1, len + 1, NULL, &err), GB_EINVAL);
        assert_int_equal(gb_server_optim_set_state(opt, st1, len + 1, 5, &err), GB_ESHAPE);
        if (len) {
            /* A damaged checkpoint: NaN in m, infinity in v, negative v. */
            float badst[2 * N];
            memcpy(badst, st0, sizeof badst);
            badst[2] = NAN;
            assert_int_equal(gb_server_optim_set_state(opt, badst, len, 5, &err), GB_ERANGE);
            assert_non_null(strstr(err.msg, "m value 2 is not finite"));
            memcpy(badst, st0, sizeof badst);
            badst[N + 1] = INFINITY;
            assert_int_equal(gb_server_optim_set_state(opt, badst, len, 5, &err), GB_ERANGE);
            assert_non_null(strstr(err.msg, "v value 1 is not finite"));
            memcpy(badst, st0, sizeof badst);
            badst[N + 6] = -1e-3f;
            assert_int_equal(gb_server_optim_set_state(opt, badst, len, 5, &err), GB_ERANGE);
            assert_non_null(strstr(err.msg, "v value 6 is negative"));
            assert_int_equal(gb_server_optim_get_state(opt, NULL, len, NULL, &err), GB_EINVAL);
        }
        assert_int_equal(gb_server_optim_get_state(opt, st1, len, NULL, &err), 0);
        if (len)
            assert_memory_equal(st0, st1, sizeof(float) * len);
        assert_int_equal(gb_server_optim_steps(opt), 1);
        gb_server_optim_destroy(&opt);
    }
}

static void test_alloc_failures(void **state)
{
    (void)state;
    static const gb_server_optim_kind_t kinds[] = {GB_SERVER_SGD, GB_SERVER_FEDADAM,
                                                   GB_SERVER_FEDYOGI, GB_SERVER_FEDADAGRAD};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        gb_server_optim_cfg_t c = gb_server_optim_defaults(kinds[k]);
        int points = 0;
        for (long f = 1;; f++) {
            gb_error_t err;
            gb_alloc_fail_after(f);
            gb_server_optim_t *opt = gb_server_optim_new(&c, 100, &err);
            gb_alloc_fail_after(0);
            if (opt) {
                gb_server_optim_destroy(&opt);
                break;
            }
            assert_int_equal(err.code, GB_ENOMEM);
            points++;
        }
        assert_int_equal(points, kinds[k] == GB_SERVER_SGD ? 1 : 2);
    }
    /* A step never allocates. */
    gb_error_t err;
    gb_server_optim_t *opt = s_new("fedyogi", 4);
    float x[4] = {0}, d[4] = {1, 2, 3, 4};
    gb_alloc_fail_after(1);
    assert_int_equal(gb_server_optim_step(opt, x, d, 4, &err), 0);
    assert_int_equal(gb_alloc_fail_after(0), 0);
    gb_server_optim_destroy(&opt);
}

int main(void)
{
    gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adaptive_vs_paper),
        cmocka_unit_test(test_save_restore),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
