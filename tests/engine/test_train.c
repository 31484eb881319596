/* Tests for engine/train: gb_train_epoch learns trivially separable
 * synthetic problems (classification and regression), gb_evaluate's loss and
 * accuracy match a hand computation, the epoch order is a seeded
 * permutation, progress is reported per batch, fill errors and bad labels
 * propagate, a diverging learning rate is GB_ERANGE, the same seed and
 * thread count give bit-identical parameters, allocation failures are
 * reported, and the federated options work: max_steps cuts the epoch's
 * permutation short, FedProx's term adds mu (w - w_global) to the gradient
 * of each step, a cancellation flag stops the epoch between batches, and bad
 * values of them are refused. Doubles as the usage example:
 *
 *     gb_batches_t data = {.source = src, .fill = my_fill, .n = n,
 *                          .loss = GB_LOSS_SOFTMAX_CE};
 *     gb_train_cfg_t cfg = {.batch = 32, .seed = 1, .epoch = e};
 *     gb_train_epoch(model, optim, &data, &cfg, &stats, &err);
 *     gb_evaluate(model, &data, 32, &stats, &err);
 */
#include "testutil.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/optim.h"
#include "engine/train.h"
#include "util/alloc.h"
#include "util/rng.h"

/* ------------------------------------------------------- synthetic source */

typedef struct {
    int n;            /* samples */
    int dim;          /* floats per sample */
    int outs;         /* regression outputs */
    float *x;         /* n x dim */
    int32_t *labels;  /* n */
    float *values;    /* n x outs */
    int fail_at;      /* fail the fail_at-th call (1-based); 0: never */
    int calls;        /* fill calls so far */
    int32_t *seen;    /* indices in the order requested */
    int n_seen;       /* entries in seen (capacity 4 n) */
} s_source_t;

static int s_fill(void *source, const int32_t *idx, int n, float *x, int32_t *labels,
                  float *values, gb_error_t *err)
{
    s_source_t *s = source;
    s->calls++;
    if (s->fail_at && s->calls == s->fail_at)
        return gb_error_set(err, GB_EIO, "synthetic read error at call %d", s->calls);
    for (int i = 0; i < n; i++) {
        assert_in_range(idx[i], 0, s->n - 1);
        if (s->seen && s->n_seen < 4 * s->n)
            s->seen[s->n_seen++] = idx[i];
        memcpy(x + (size_t)i * s->dim, s->x + (size_t)idx[i] * s->dim, s->dim * sizeof(float));
        labels[i] = s->labels[idx[i]];
        if (s->values)
            memcpy(values + (size_t)i * s->outs, s->values + (size_t)idx[i] * s->outs,
                   s->outs * sizeof(float));
    }
    return 0;
}

/* Two classes in `dim` dimensions: class c at +-1.5 in every coordinate
 * plus noise U(-1, 1), so a linear separator exists with margin 0.5. */
static s_source_t s_two_blobs(int n, int dim, uint64_t seed)
{
    s_source_t s = {.n = n, .dim = dim};
    s.x = malloc((size_t)n * dim * sizeof(float));
    s.labels = malloc((size_t)n * sizeof(int32_t));
    s.seen = malloc((size_t)4 * n * sizeof(int32_t));
    assert_true(s.x && s.labels && s.seen);
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, 1);
    for (int i = 0; i < n; i++) {
        s.labels[i] = i % 2;
        for (int d = 0; d < dim; d++)
            s.x[(size_t)i * dim + d] =
                (s.labels[i] ? 1.5f : -1.5f) + (float)(2.0 * gb_rng_uniform(&rng) - 1.0);
    }
    return s;
}

static void s_source_free(s_source_t *s)
{
    free(s->x);
    free(s->labels);
    free(s->values);
    free(s->seen);
}

static gb_optim_t *s_sgd(gb_model_t *m, float lr)
{
    gb_optim_cfg_t c = gb_optim_defaults(GB_OPTIM_SGD);
    c.lr = lr;
    gb_error_t err = {0};
    gb_optim_t *o = gb_optim_new(&c, gb_model_param_count(m), &err);
    assert_non_null(o);
    return o;
}

/* True when the model is in evaluation mode: its forward equals the one
 * after an explicit gb_model_set_train(false). Needs a dropout layer. */
static bool s_in_eval_mode(gb_model_t *m, const float *x, int batch)
{
    gb_shape_t os = gb_model_output_shape(m);
    size_t n = gb_shape_size(&os) * (size_t)batch;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    assert_true(a && b);
    gb_error_t err = {0};
    assert_int_equal(gb_model_forward(m, x, batch, a, &err), 0);
    gb_model_set_train(m, false, 0);
    assert_int_equal(gb_model_forward(m, x, batch, b, &err), 0);
    bool same = memcmp(a, b, n * sizeof *a) == 0;
    free(a);
    free(b);
    return same;
}

static const char s_classifier[] = "input 4\ndense 16\nrelu\ndropout 0.2\ndense 2\n";

/* ----------------------------------------------------------------- learning */

typedef struct {
    int calls;
    int64_t done[16];
    int64_t total;
    double last_mean;
} s_progress_t;

static void s_progress(void *arg, int64_t done, int64_t total, double mean_loss)
{
    s_progress_t *p = arg;
    assert_true(p->calls < 16);
    p->done[p->calls++] = done;
    p->total = total;
    p->last_mean = mean_loss;
    assert_true(isfinite(mean_loss));
}

static void test_learns_classification(void **state)
{
    (void)state;
    s_source_t src = s_two_blobs(100, 4, 1);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = 100, .loss = GB_LOSS_SOFTMAX_CE};
    gb_model_t *m = gb_test_model(s_classifier, 32, 1, 3);
    gb_optim_t *o = s_sgd(m, 0.1f);
    gb_error_t err = {0};
    /* Zero the output layer: every logit 0, so the model starts at chance
     * (loss log 2; ties go to class 0, accuracy 1/2). */
    size_t off, len;
    assert_int_equal(gb_model_layer_info(m, 3, NULL, &off, &len), 0);
    assert_int_equal(len, 16 * 2 + 2);
    memset(gb_model_params(m) + off, 0, len * sizeof(float));

    gb_epoch_stats_t before = {0}, after = {0}, ep = {0};
    assert_int_equal(gb_evaluate(m, &data, 32, &before, &err), 0);
    assert_int_equal(before.samples, 100);
    assert_true(fabs(before.mean_loss - log(2.0)) <= 1e-12);
    assert_true(before.accuracy == 0.5);

    double first = 0.0, last = 0.0;
    for (int e = 0; e < 8; e++) {
        s_progress_t prog = {0};
        gb_train_cfg_t cfg = {.batch = 32, .seed = 5, .epoch = e, .progress = s_progress,
                              .progress_arg = &prog};
        assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &ep, &err), 0);
        /* 100 samples in batches of 32: the last batch of 4 is used too. */
        assert_int_equal(ep.samples, 100);
        assert_int_equal(prog.calls, 4);
        assert_int_equal(prog.done[0], 32);
        assert_int_equal(prog.done[1], 64);
        assert_int_equal(prog.done[2], 96);
        assert_int_equal(prog.done[3], 100);
        assert_int_equal(prog.total, 100);
        assert_true(fabs(prog.last_mean - ep.mean_loss) <= 1e-12 * ep.mean_loss);
        assert_true(ep.accuracy >= 0.0 && ep.accuracy <= 1.0);
        assert_true(ep.seconds >= 0.0);
        if (e == 0)
            first = ep.mean_loss;
        last = ep.mean_loss;
    }
    assert_int_equal(gb_optim_steps(o), 8 * 4);
    assert_int_equal(gb_evaluate(m, &data, 32, &after, &err), 0);
    print_message("classification: eval loss %.4f -> %.4f, train loss %.4f -> %.4f, "
                  "accuracy %.2f -> %.2f\n",
                  before.mean_loss, after.mean_loss, first, last, before.accuracy,
                  after.accuracy);
    assert_true(last < 0.5 * first);
    assert_true(after.mean_loss < 0.1 * before.mean_loss);
    assert_true(after.accuracy == 1.0);
    /* The epoch leaves the model in evaluation mode. */
    assert_true(s_in_eval_mode(m, src.x, 32));

    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* gb_evaluate against a hand computation: forward, log-softmax, argmax. */
static void test_evaluate_matches_forward(void **state)
{
    (void)state;
    enum { N = 37 };
    s_source_t src = s_two_blobs(N, 4, 2);
    /* Untrained: some right, some wrong. */
    gb_model_t *m = gb_test_model(s_classifier, 10, 1, 4);
    gb_error_t err = {0};
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = N, .loss = GB_LOSS_SOFTMAX_CE};
    gb_epoch_stats_t st = {0};
    assert_int_equal(gb_evaluate(m, &data, 10, &st, &err), 0);
    /* In order, 0..N-1, in batches of 10, 10, 10, 7. */
    assert_int_equal(src.n_seen, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(src.seen[i], i);
    assert_int_equal(src.calls, 4);

    float y[2 * 10];
    double loss = 0.0;
    int correct = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(gb_model_forward(m, src.x + 4 * i, 1, y, &err), 0);
        double mx = fmax(y[0], y[1]);
        double lse = mx + log(exp(y[0] - mx) + exp(y[1] - mx));
        loss += lse - y[src.labels[i]];
        int best = y[1] > y[0] ? 1 : 0;
        correct += best == src.labels[i];
    }
    assert_int_equal(st.samples, N);
    assert_true(fabs(st.mean_loss - loss / N) <= 1e-6 * loss / N);
    assert_true(st.accuracy == (double)correct / N);

    /* per class: the same pass, counts against the hand's */
    int64_t total[2] = {-1, -1}, right[2] = {-1, -1}, want_total[2] = {0}, want_right[2] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(gb_model_forward(m, src.x + 4 * i, 1, y, &err), 0);
        want_total[src.labels[i]]++;
        want_right[src.labels[i]] += (y[1] > y[0] ? 1 : 0) == src.labels[i];
    }
    gb_epoch_stats_t sc = {0};
    assert_int_equal(gb_evaluate_classes(m, &data, 10, &sc, total, right, 2, &err), 0);
    assert_true(sc.accuracy == st.accuracy && sc.mean_loss == st.mean_loss);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(total[k], want_total[k]);
        assert_int_equal(right[k], want_right[k]);
    }
    assert_int_equal(total[0] + total[1], N);
    /* a class count that is not the model's, or regression data: refused */
    assert_int_equal(gb_evaluate_classes(m, &data, 10, &sc, total, right, 3, &err), GB_EINVAL);
    data.loss = GB_LOSS_MSE;
    assert_int_equal(gb_evaluate_classes(m, &data, 10, &sc, total, right, 2, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "regression"));
    data.loss = GB_LOSS_SOFTMAX_CE;
    print_message("untrained: loss %.4f, accuracy %.3f\n", st.mean_loss, st.accuracy);
    assert_true(st.seconds >= 0.0);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* Regression with MSE: y = 2 x0 - x1 + 0.5 x2 + 0.1, learned by one dense
 * layer; evaluate reports MSE and accuracy 0. */
static void test_learns_regression(void **state)
{
    (void)state;
    enum { N = 64 };
    s_source_t src = s_two_blobs(N, 3, 3);
    src.outs = 1;
    src.values = malloc(N * sizeof(float));
    assert_non_null(src.values);
    for (int i = 0; i < N; i++) {
        const float *x = src.x + 3 * i;
        src.values[i] = 2.0f * x[0] - x[1] + 0.5f * x[2] + 0.1f;
    }
    gb_model_t *m = gb_test_model("input 3\ndense 1\n", 16, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.05f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = N, .loss = GB_LOSS_MSE};
    gb_error_t err = {0};
    gb_epoch_stats_t before = {0}, after = {0}, ep = {0};
    assert_int_equal(gb_evaluate(m, &data, 16, &before, &err), 0);
    assert_true(before.accuracy == 0.0);
    for (int e = 0; e < 60; e++) {
        gb_train_cfg_t cfg = {.batch = 16, .seed = 1, .epoch = e};
        assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &ep, &err), 0);
        assert_true(ep.accuracy == 0.0);
    }
    assert_int_equal(gb_evaluate(m, &data, 16, &after, &err), 0);
    print_message("regression: mse %.4g -> %.4g; weights %.3f %.3f %.3f bias %.3f\n",
                  before.mean_loss, after.mean_loss, gb_model_params(m)[0],
                  gb_model_params(m)[1], gb_model_params(m)[2], gb_model_params(m)[3]);
    assert_true(after.mean_loss < 1e-3 * before.mean_loss);
    assert_true(fabs(gb_model_params(m)[0] - 2.0) < 0.05);
    assert_true(fabs(gb_model_params(m)[1] + 1.0) < 0.05);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* Each epoch visits every sample once, in an order given by (seed, epoch). */
static void test_epoch_order(void **state)
{
    (void)state;
    enum { N = 50 };
    s_source_t src = s_two_blobs(N, 4, 4);
    gb_model_t *m = gb_test_model(s_classifier, 8, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.01f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = N, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st;
    int32_t orders[3][N];
    const struct {
        uint64_t seed;
        int epoch;
    } runs[3] = {{9, 0}, {9, 1}, {9, 0}};
    for (int r = 0; r < 3; r++) {
        src.n_seen = 0;
        gb_train_cfg_t cfg = {.batch = 8, .seed = runs[r].seed, .epoch = runs[r].epoch};
        assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
        assert_int_equal(src.n_seen, N);
        memcpy(orders[r], src.seen, sizeof orders[r]);
        /* A permutation of 0..N-1. */
        int count[N] = {0};
        for (int i = 0; i < N; i++)
            count[orders[r][i]]++;
        for (int i = 0; i < N; i++)
            assert_int_equal(count[i], 1);
    }
    /* Shuffled, different per epoch, the same for the same (seed, epoch). */
    int in_place = 0;
    for (int i = 0; i < N; i++)
        in_place += orders[0][i] == i;
    assert_true(in_place < N / 2);
    assert_memory_not_equal(orders[0], orders[1], sizeof orders[0]);
    assert_memory_equal(orders[0], orders[2], sizeof orders[0]);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* ------------------------------------------------------------ determinism */

/* Same initial parameters, seed and thread count: bit-identical parameters
 * after two epochs of Adam on a conv model with dropout. */
static void s_train_run(int threads, uint64_t seed, float *out, size_t np)
{
    enum { N = 48 };
    static const char spec[] = "input 1 6 6\nconv 4 3\nrelu\nmaxpool 2\nflatten\ndropout 0.3\n"
                               "dense 3\n";
    s_source_t src = {.n = N, .dim = 36};
    src.x = malloc(N * 36 * sizeof(float));
    src.labels = malloc(N * sizeof(int32_t));
    assert_true(src.x && src.labels);
    gb_rng_t rng;
    gb_rng_seed(&rng, 77, 1);
    for (int i = 0; i < N; i++) {
        src.labels[i] = i % 3;
        for (int p = 0; p < 36; p++) /* class c lights up row band c */
            src.x[i * 36 + p] = (float)gb_rng_uniform(&rng) + (p / 12 == i % 3 ? 1.0f : 0.0f);
    }
    gb_model_t *m = gb_test_model(spec, 8, threads, 1);
    assert_int_equal(gb_model_param_count(m), np);
    gb_optim_cfg_t c = gb_optim_defaults(GB_OPTIM_ADAM);
    c.lr = 0.01f;
    gb_error_t err = {0};
    gb_optim_t *o = gb_optim_new(&c, np, &err);
    assert_non_null(o);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = N, .loss = GB_LOSS_SOFTMAX_CE};
    gb_epoch_stats_t st;
    for (int e = 0; e < 2; e++) {
        gb_train_cfg_t cfg = {.batch = 8, .seed = seed, .epoch = e};
        assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    }
    memcpy(out, gb_model_params(m), np * sizeof(float));
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

static void test_deterministic(void **state)
{
    (void)state;
    const size_t np = 4 * 9 + 4 + 16 * 3 + 3;
    float *a = malloc(np * sizeof *a), *b = malloc(np * sizeof *b), *c = malloc(np * sizeof *c);
    assert_true(a && b && c);
    for (int threads = 1; threads <= 2; threads++) {
        s_train_run(threads, 42, a, np);
        s_train_run(threads, 42, b, np);
        assert_memory_equal(a, b, np * sizeof *a);
        /* Another seed (shuffle and dropout masks) gives other parameters. */
        s_train_run(threads, 43, c, np);
        assert_memory_not_equal(a, c, np * sizeof *a);
    }
    /* One thread against two: the same computation up to the order of the
     * gradient sums, so close (print how close) but not required equal. */
    s_train_run(1, 42, a, np);
    s_train_run(2, 42, b, np);
    print_message("1 vs 2 threads after 12 Adam steps: max rel diff %.2g\n",
                  gb_test_max_rel_diff(a, b, np, 1e-2));
    assert_true(gb_test_max_rel_diff(a, b, np, 1e-2) <= 1e-4);
    free(a);
    free(b);
    free(c);
}

/* ------------------------------------------------------- federated options */

/* max_steps ends the epoch after that many steps, on the first samples of
 * the same permutation; a limit beyond the epoch changes nothing. */
static void test_max_steps(void **state)
{
    (void)state;
    enum { N = 50 };
    s_source_t src = s_two_blobs(N, 4, 11);
    gb_model_t *m = gb_test_model(s_classifier, 8, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.01f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = N, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st;
    gb_train_cfg_t cfg = {.batch = 8, .seed = 3, .epoch = 1};
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    assert_int_equal(st.steps, 7);
    assert_int_equal(st.samples, N);
    assert_false(st.cancelled);
    int32_t full[N];
    memcpy(full, src.seen, sizeof full);

    src.n_seen = 0;
    cfg.max_steps = 3;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    assert_int_equal(st.steps, 3);
    assert_int_equal(st.samples, 24);
    assert_int_equal(src.n_seen, 24);
    assert_memory_equal(src.seen, full, 24 * sizeof full[0]);
    assert_int_equal(gb_optim_steps(o), 7 + 3);
    assert_true(isfinite(st.mean_loss) && st.mean_loss > 0);

    cfg.max_steps = 100;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    assert_int_equal(st.steps, 7);
    assert_int_equal(st.samples, N);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* One SGD step with FedProx equals the plain step minus lr mu (w - center);
 * a large mu over an epoch keeps the parameters nearer the center. */
static void test_fedprox(void **state)
{
    (void)state;
    enum { N = 40 };
    static const char spec[] = "input 4\ndense 3\nrelu\ndense 2\n";
    s_source_t src = s_two_blobs(N, 4, 12);
    gb_model_t *m = gb_test_model(spec, 8, 1, 5);
    size_t np = gb_model_param_count(m);
    float *p0 = malloc(np * sizeof *p0), *plain = malloc(np * sizeof *plain);
    float *center = malloc(np * sizeof *center);
    assert_true(p0 && plain && center);
    memcpy(p0, gb_model_params(m), np * sizeof *p0);
    const float lr = 0.1f, mu = 0.5f;
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = N, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st;

    gb_optim_t *o = s_sgd(m, lr);
    gb_train_cfg_t cfg = {.batch = 8, .seed = 3, .epoch = 1, .max_steps = 1};
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    memcpy(plain, gb_model_params(m), np * sizeof *plain);

    /* Center 0.25 below the start in every coordinate: w - center = 0.25. */
    for (size_t i = 0; i < np; i++)
        center[i] = p0[i] - 0.25f;
    memcpy(gb_model_params(m), p0, np * sizeof *p0);
    gb_optim_reset(o);
    cfg.prox_mu = mu;
    cfg.prox_center = center;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    const float *got = gb_model_params(m);
    for (size_t i = 0; i < np; i++)
        assert_float_equal(got[i], plain[i] - lr * mu * 0.25f, 1e-6);

    /* A whole epoch: the distance from the start shrinks with a large mu. */
    double dist[2];
    for (int k = 0; k < 2; k++) {
        memcpy(gb_model_params(m), p0, np * sizeof *p0);
        gb_optim_reset(o);
        gb_train_cfg_t ec = {.batch = 8, .seed = 3, .epoch = 1, .prox_mu = k ? 5.0f : 0.0f,
                             .prox_center = p0};
        assert_int_equal(gb_train_epoch(m, o, &data, &ec, &st, &err), 0);
        double d = 0;
        for (size_t i = 0; i < np; i++)
            d += ((double)got[i] - p0[i]) * ((double)got[i] - p0[i]);
        dist[k] = sqrt(d);
    }
    print_message("distance moved: mu 0 %.4f, mu 5 %.4f\n", dist[0], dist[1]);
    assert_true(dist[1] < 0.8 * dist[0]);
    free(p0);
    free(plain);
    free(center);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* Sets the flag once `after` batches are done (another thread in real use). */
typedef struct {
    atomic_int *flag; /* the flag to set */
    int64_t after;    /* samples after which to set it */
} s_canceller_t;

static void s_cancel_progress(void *arg, int64_t done, int64_t total, double mean_loss)
{
    (void)total;
    (void)mean_loss;
    s_canceller_t *c = arg;
    if (done >= c->after)
        atomic_store(c->flag, 1);
}

static void test_cancel(void **state)
{
    (void)state;
    enum { N = 40 };
    s_source_t src = s_two_blobs(N, 4, 13);
    gb_model_t *m = gb_test_model(s_classifier, 8, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.01f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = N, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st;
    atomic_int flag = 1;
    /* Set before the epoch: no batch at all. */
    gb_train_cfg_t cfg = {.batch = 8, .seed = 1, .epoch = 1, .cancel = &flag};
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    assert_true(st.cancelled);
    assert_int_equal(st.steps, 0);
    assert_int_equal(st.samples, 0);
    assert_true(st.mean_loss == 0.0);
    assert_int_equal(src.calls, 0);
    assert_int_equal(gb_optim_steps(o), 0);
    /* Set after the second batch: two steps, then stop. */
    atomic_store(&flag, 0);
    s_canceller_t c = {&flag, 16};
    cfg.progress = s_cancel_progress;
    cfg.progress_arg = &c;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    assert_true(st.cancelled);
    assert_int_equal(st.steps, 2);
    assert_int_equal(st.samples, 16);
    assert_int_equal(src.calls, 2);
    assert_int_equal(gb_optim_steps(o), 2);
    /* Clear: a whole epoch. */
    atomic_store(&flag, 0);
    cfg.progress = NULL;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), 0);
    assert_false(st.cancelled);
    assert_int_equal(st.steps, 5);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

static void test_federated_option_errors(void **state)
{
    (void)state;
    s_source_t src = s_two_blobs(20, 4, 14);
    gb_model_t *m = gb_test_model(s_classifier, 8, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.1f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = 20, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st;
    float center[64] = {0};
    gb_train_cfg_t cfg = {.batch = 8, .seed = 1, .max_steps = -1};
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_EINVAL);
    assert_string_equal(err.msg, "max_steps must be >= 0, got -1");
    cfg.max_steps = 0;
    cfg.prox_mu = -0.5f;
    cfg.prox_center = center;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_EINVAL);
    assert_string_equal(err.msg, "FedProx mu must be finite and >= 0, got -0.5");
    cfg.prox_mu = NAN;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_EINVAL);
    cfg.prox_mu = 0.5f;
    cfg.prox_center = NULL;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_EINVAL);
    assert_string_equal(err.msg, "FedProx mu 0.5 needs the global parameters");
    assert_int_equal(src.calls, 0);
    assert_int_equal(gb_optim_steps(o), 0);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* ---------------------------------------------------------------- failures */

static void test_fill_error_propagates(void **state)
{
    (void)state;
    s_source_t src = s_two_blobs(40, 4, 5);
    gb_model_t *m = gb_test_model(s_classifier, 8, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.1f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = 40, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st = {0};
    src.fail_at = 2;
    gb_train_cfg_t cfg = {.batch = 8, .seed = 1};
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_EIO);
    assert_string_equal(err.msg, "synthetic read error at call 2");
    /* One step was taken before the failure; no more. */
    assert_int_equal(gb_optim_steps(o), 1);
    assert_int_equal(src.calls, 2);
    /* Back in evaluation mode after the failure too. */
    assert_true(s_in_eval_mode(m, src.x, 8));

    src.calls = 0;
    src.fail_at = 3;
    assert_int_equal(gb_evaluate(m, &data, 8, &st, &err), GB_EIO);
    assert_string_equal(err.msg, "synthetic read error at call 3");
    assert_int_equal(src.calls, 3);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

static void test_bad_labels(void **state)
{
    (void)state;
    s_source_t src = s_two_blobs(20, 4, 6);
    src.labels[13] = 5;
    gb_model_t *m = gb_test_model(s_classifier, 8, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.1f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = 20, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st;
    gb_train_cfg_t cfg = {.batch = 8, .seed = 1};
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "label 5 of sample"));
    /* Evaluation names the sample in data order. */
    assert_int_equal(gb_evaluate(m, &data, 8, &st, &err), GB_ERANGE);
    assert_string_equal(err.msg, "label 5 of sample 13 outside 0..1");
    src.labels[13] = -1;
    assert_int_equal(gb_evaluate(m, &data, 8, &st, &err), GB_ERANGE);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

static void test_divergence(void **state)
{
    (void)state;
    s_source_t src = s_two_blobs(200, 4, 7);
    gb_model_t *m = gb_test_model(s_classifier, 10, 1, 1);
    gb_optim_t *o = s_sgd(m, 1e20f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = 200, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st;
    gb_train_cfg_t cfg = {.batch = 10, .seed = 1, .epoch = 3};
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_ERANGE);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "training diverged: loss is"));
    assert_non_null(strstr(err.msg, "of epoch 3 (lower the learning rate)"));
    /* It stopped at the first non-finite loss, before the update. */
    assert_true(gb_optim_steps(o) < 20);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* A finite loss with a gradient that is not: FedProx towards a centre with
 * one infinite coordinate (first, middle, last: the finiteness check's
 * vector body and its tail) makes that gradient infinite. The epoch stops
 * before the update: no parameter changes. */
static void test_non_finite_gradient(void **state)
{
    (void)state;
    s_source_t src = s_two_blobs(40, 4, 9);
    gb_model_t *m = gb_test_model(s_classifier, 10, 1, 1);
    const size_t np = gb_model_param_count(m);
    assert_true(np > 17); /* 16-lane body and a tail */
    const size_t at[] = {0, np / 2, np - 1};
    float *center = malloc(np * sizeof *center), *before = malloc(np * sizeof *before);
    assert_non_null(center);
    assert_non_null(before);
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        gb_optim_t *o = s_sgd(m, 0.1f);
        memcpy(center, gb_model_params(m), np * sizeof *center);
        center[at[k]] = INFINITY;
        memcpy(before, gb_model_params(m), np * sizeof *before);
        gb_batches_t data = {.source = &src, .fill = s_fill, .n = 40, .loss = GB_LOSS_SOFTMAX_CE};
        gb_error_t err = {0};
        gb_epoch_stats_t st;
        gb_train_cfg_t cfg = {.batch = 10, .seed = 1, .prox_mu = 0.5f, .prox_center = center};
        assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_ERANGE);
        assert_non_null(strstr(err.msg, "a gradient is not finite at sample 0 of epoch 0"));
        assert_int_equal(gb_optim_steps(o), 0);
        assert_memory_equal(gb_model_params(m), before, np * sizeof *before);
        gb_optim_destroy(&o);
    }
    free(center);
    free(before);
    gb_model_destroy(&m);
    s_source_free(&src);
}

static void test_argument_errors(void **state)
{
    (void)state;
    s_source_t src = s_two_blobs(20, 4, 8);
    gb_model_t *m = gb_test_model(s_classifier, 8, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.1f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = 20, .loss = GB_LOSS_SOFTMAX_CE};
    gb_error_t err = {0};
    gb_epoch_stats_t st;
    gb_train_cfg_t cfg = {.batch = 9, .seed = 1};
    /* Batch larger than planned, or < 1. */
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_ESHAPE);
    assert_string_equal(err.msg, "batch 9 out of range: model planned for 1..8");
    cfg.batch = 0;
    assert_int_equal(gb_train_epoch(m, o, &data, &cfg, &st, &err), GB_ESHAPE);
    assert_int_equal(gb_evaluate(m, &data, 9, &st, &err), GB_ESHAPE);
    assert_int_equal(gb_evaluate(m, &data, 0, &st, &err), GB_ESHAPE);
    /* No samples, no fill function, no data. */
    cfg.batch = 4;
    gb_batches_t empty = data;
    empty.n = 0;
    assert_int_equal(gb_train_epoch(m, o, &empty, &cfg, &st, &err), GB_EINVAL);
    assert_string_equal(err.msg, "no samples to train or evaluate on");
    assert_int_equal(gb_evaluate(m, &empty, 4, &st, &err), GB_EINVAL);
    gb_batches_t nofill = data;
    nofill.fill = NULL;
    assert_int_equal(gb_train_epoch(m, o, &nofill, &cfg, &st, &err), GB_EINVAL);
    assert_int_equal(gb_evaluate(m, NULL, 4, &st, &err), GB_EINVAL);
    assert_int_equal(gb_optim_steps(o), 0);
    assert_int_equal(src.calls, 0);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

/* Each failing allocation of the per-call buffers gives GB_ENOMEM, calls
 * no fill, and leaks nothing; the model works afterwards. */
static void test_alloc_failure(void **state)
{
    (void)state;
    s_source_t src = s_two_blobs(20, 4, 9);
    gb_model_t *m = gb_test_model(s_classifier, 8, 1, 1);
    gb_optim_t *o = s_sgd(m, 0.1f);
    gb_batches_t data = {.source = &src, .fill = s_fill, .n = 20, .loss = GB_LOSS_SOFTMAX_CE};
    gb_train_cfg_t cfg = {.batch = 8, .seed = 1};
    gb_epoch_stats_t st;
    for (int which = 0; which < 2; which++) {
        long k;
        int rc = -1;
        for (k = 1; k < 20; k++) {
            gb_error_t err = {0};
            src.calls = 0;
            gb_alloc_fail_after(k);
            rc = which == 0 ? gb_train_epoch(m, o, &data, &cfg, &st, &err)
                            : gb_evaluate(m, &data, 8, &st, &err);
            gb_alloc_fail_after(0);
            if (rc == 0)
                break;
            assert_int_equal(rc, GB_ENOMEM);
            assert_string_equal(err.msg, "out of memory for batch buffers");
            assert_int_equal(src.calls, 0);
        }
        assert_int_equal(rc, 0);
        assert_int_equal(k, 6); /* order, x, labels, values, outputs */
        assert_int_equal(st.samples, 20);
    }
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    s_source_free(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_classification),
        cmocka_unit_test(test_evaluate_matches_forward),
        cmocka_unit_test(test_learns_regression),
        cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_fill_error_propagates),
        cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_non_finite_gradient),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_max_steps),
        cmocka_unit_test(test_fedprox),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_federated_option_errors),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
