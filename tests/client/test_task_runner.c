/* Tests of client/task_runner.c on small synthetic data sets (three classes
 * of 1x4x4 "images" whose class lights up one row band) and small models,
 * so that the whole file runs in about a second.
 *
 * What they prove: a training task's delta is bit for bit the parameters
 * after the same training done directly with the engine minus the task's
 * parameters, its digest matches and the Update passes the wire's own
 * validation and encoding; the same task twice gives identical deltas and
 * two client ids different ones; max_steps and epochs bound the steps;
 * clip_norm scales the delta to the bound and says so; FedProx is the
 * engine's proximal step and a large mu keeps the delta small; evaluation
 * reports the GLOBAL model; explanations count the samples they explain,
 * honour the class filter, and work for IG, SmoothGrad and Grad-CAM; every
 * bad field of a task is refused by name and leaves the runner exactly as it
 * was; a spec change rebuilds the model; cancellation (before a phase and
 * from another thread) gives GB_TASK_ECANCELLED and a usable runner;
 * allocation failures in the constructor and in a run are clean.
 *
 * Usage, as the daemon would write it:
 *
 *     gb_task_runner_cfg_t cfg = {.train = train, .test = test, .client_id = id,
 *                                 .threads = 2};
 *     gb_task_runner_t *r = gb_task_runner_new(&cfg, &err);
 *     gb_task_result_t res;
 *     if (gb_task_runner_run(r, env->task, &cancel, &res, &err) == 0 && res.update)
 *         reply.update = res.update;   // borrowed until the next run
 */
#include "testutil.h"
#include "task_fixture.h"

#include "task_runner.h"
#include "data/dataset.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/train.h"
#include "net/envelope.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/rng.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "these tests build parameter bytes by memcpy: little-endian hosts only"
#endif

static const char S_MLP[] = "input 1 4 4\nflatten\ndense 8\nrelu\ndense 3\n";
static const char S_CONV[] = "input 1 4 4\nconv 2 3\nrelu\nflatten\ndense 3\n";
enum { N_TRAIN = 60, N_TEST = 30, CLASSES = 3 };

/* ---- data ---------------------------------------------------------------- */

typedef struct {
    gb_dataset_t *train, *test; /* the client's splits */
} s_data_t;

static s_data_t s_data(void)
{
    return (s_data_t){gb_test_blobs(N_TRAIN, 1), gb_test_blobs(N_TEST, 2)};
}

static void s_data_free(s_data_t *d)
{
    gb_dataset_destroy(&d->train);
    gb_dataset_destroy(&d->test);
}

static gb_task_runner_t *s_runner(const s_data_t *d, uint64_t client_id)
{
    gb_task_runner_cfg_t cfg = {.train = d->train, .test = d->test, .client_id = client_id,
                                .threads = 1};
    gb_error_t err = {0};
    gb_task_runner_t *r = gb_task_runner_new(&cfg, &err);
    if (!r)
        fail_msg("gb_task_runner_new: %s", err.msg);
    return r;
}

/* ---- tasks --------------------------------------------------------------- */

typedef gb_test_task_t s_task_t; /* the training Task of task_fixture.h */

/* Round 3, task 5 (task_fixture.h): train one epoch, batch 8, SGD lr 0.1
 * momentum 0.5, seed 7; no evaluation or explanation. */
static s_task_t *s_task_new(const char *spec)
{
    return gb_test_task_new(spec, 3, 5);
}

static gb_task_result_t s_run_ok(gb_task_runner_t *r, const s_task_t *t)
{
    gb_task_result_t res;
    gb_error_t err = {0};
    int rc = gb_task_runner_run(r, &t->task, NULL, &res, &err);
    if (rc)
        fail_msg("gb_task_runner_run: %s (%d)", err.msg, rc);
    return res;
}

/* A copy of the result's delta (it lives only until the next run). */
static float *s_delta_copy(const gb_task_result_t *res)
{
    assert_non_null(res->delta);
    float *d = malloc(res->param_count * sizeof *d);
    assert_non_null(d);
    memcpy(d, res->delta, res->param_count * sizeof *d);
    return d;
}

static double s_norm(const float *d, size_t n)
{
    double sq = 0;
    for (size_t i = 0; i < n; i++)
        sq += (double)d[i] * d[i];
    return sqrt(sq);
}

static const Glassbox__Metric *s_find_metric(const Glassbox__Update *u, const char *name)
{
    for (size_t i = 0; i < u->n_metrics; i++)
        if (strcmp(u->metrics[i]->name, name) == 0)
            return u->metrics[i];
    return NULL;
}

/* The same training done directly with the engine: the parameters after
 * `epochs` epochs (0: until max_steps) of the task's configuration, seeded
 * as the runner seeds client `client_id`. Returns malloc'd parameters. */
static float *s_direct_train(const s_task_t *t, const gb_dataset_t *train, uint64_t client_id)
{
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new(t->spec, &err);
    assert_non_null(m);
    memcpy(gb_model_params(m), t->params, t->np * sizeof *t->params);
    int batch = t->tc.batch_size < train->n ? (int)t->tc.batch_size : (int)train->n;
    assert_int_equal(gb_model_plan(m, batch, 1, &err), 0);
    gb_optim_cfg_t oc = gb_optim_defaults(t->tc.optimizer == GLASSBOX__OPTIMIZER__OPTIMIZER_ADAM
                                              ? GB_OPTIM_ADAM
                                              : GB_OPTIM_SGD);
    oc.lr = (float)t->tc.learning_rate;
    oc.momentum = (float)t->tc.momentum;
    oc.weight_decay = (float)t->tc.weight_decay;
    gb_optim_t *o = gb_optim_new(&oc, t->np, &err);
    assert_non_null(o);
    gb_batches_t b = {(void *)train, gb_dataset_fill, train->n, GB_LOSS_SOFTMAX_CE};
    uint64_t seed = gb_task_runner_seed(t->tc.seed, client_id);
    long left = t->tc.max_steps;
    for (int e = 1; t->tc.epochs == 0 || e <= (int)t->tc.epochs; e++) {
        if (t->tc.max_steps && left == 0)
            break;
        gb_train_cfg_t tc = {.batch = batch, .seed = seed, .epoch = e, .max_steps = left,
                             .prox_mu = (float)t->tc.fedprox_mu,
                             .prox_center = t->tc.fedprox_mu > 0 ? t->params : NULL};
        gb_epoch_stats_t st;
        assert_int_equal(gb_train_epoch(m, o, &b, &tc, &st, &err), 0);
        left -= t->tc.max_steps ? st.steps : 0;
    }
    float *w = malloc(t->np * sizeof *w);
    assert_non_null(w);
    memcpy(w, gb_model_params(m), t->np * sizeof *w);
    gb_optim_destroy(&o);
    gb_model_destroy(&m);
    return w;
}

static void s_assert_delta_is(const gb_task_result_t *res, const s_task_t *t, const float *w)
{
    assert_int_equal(res->param_count, t->np);
    for (size_t i = 0; i < t->np; i++) {
        float want = w[i] - t->params[i];
        if (memcmp(&res->delta[i], &want, 4) != 0)
            fail_msg("delta[%zu] = %.9g, direct training gives %.9g", i, (double)res->delta[i],
                     (double)want);
    }
}

/* The Update passes the wire's validation and survives encoding and
 * decoding: the daemon can send it as it is. */
static void s_assert_sendable(Glassbox__Update *u)
{
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = 9;
    env.body_case = GLASSBOX__ENVELOPE__BODY_UPDATE;
    env.update = u;
    gb_error_t err = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    if (gb_envelope_encode(&env, NULL, &buf, &len, &err))
        fail_msg("gb_envelope_encode: %s", err.msg);
    Glassbox__Envelope *back = NULL;
    assert_int_equal(gb_envelope_decode(buf, len, NULL, &back, &err), 0);
    assert_int_equal(back->update->num_samples, u->num_samples);
    assert_memory_equal(back->update->delta.data, u->delta.data, u->delta.len);
    gb_envelope_free(&back);
    gb_free(buf);
}

/* ---- training ------------------------------------------------------------ */

static void test_train_matches_direct(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    t->tc.epochs = 2;
    gb_task_runner_t *r = s_runner(&d, 42);
    gb_task_result_t res = s_run_ok(r, t);
    float *w = s_direct_train(t, d.train, 42);
    s_assert_delta_is(&res, t, w);

    Glassbox__Update *u = res.update;
    assert_non_null(u);
    assert_null(res.eval);
    assert_null(res.explanation);
    assert_null(u->explanation);
    assert_int_equal(u->round, 3);
    assert_int_equal(u->task_id, 5);
    assert_int_equal(u->param_count, t->np);
    assert_int_equal(u->num_samples, N_TRAIN);
    assert_int_equal(res.num_samples, N_TRAIN);
    assert_int_equal(res.steps, 2 * 8); /* 60 samples in batches of 8, twice */
    assert_int_equal(u->delta.len, 4 * t->np);
    assert_memory_equal(u->delta.data, res.delta, 4 * t->np);
    uint8_t sha[GB_WIRE_SHA256_LEN];
    gb_error_t err = {0};
    assert_int_equal(gb_wire_sha256(u->delta.data, u->delta.len, sha, &err), 0);
    assert_memory_equal(u->delta_sha256.data, sha, sizeof sha);
    const char *names[] = {"train_loss", "train_accuracy", "duration_s", "delta_norm", "clipped",
                           "steps"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(s_find_metric(u, names[i]));
    assert_true(res.train_loss > 0 && isfinite(res.train_loss));
    assert_true(res.train_accuracy >= 0 && res.train_accuracy <= 1);
    assert_float_equal(s_find_metric(u, "delta_norm")->value, s_norm(res.delta, t->np), 1e-9);
    assert_float_equal(s_find_metric(u, "clipped")->value, 0, 0);
    assert_float_equal(s_find_metric(u, "steps")->value, 16, 0);
    s_assert_sendable(u);

    gb_task_runner_stats_t st = gb_task_runner_stats(r);
    assert_int_equal(st.tasks, 1);
    assert_int_equal(st.models_built, 1);
    free(w);
    gb_task_runner_destroy(&r);
    assert_null(r);
    gb_task_runner_destroy(&r); /* NULL-safe */
    gb_task_runner_destroy(NULL);
    gb_test_task_free(&t);
    s_data_free(&d);
}

/* Adam, weight decay and a batch larger than the data (one full batch). */
static void test_train_adam(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    t->tc.optimizer = GLASSBOX__OPTIMIZER__OPTIMIZER_ADAM;
    t->tc.learning_rate = 0.01;
    t->tc.momentum = 0;
    t->tc.weight_decay = 0.01;
    t->tc.batch_size = 1000;
    t->tc.epochs = 3;
    gb_task_runner_t *r = s_runner(&d, 1);
    gb_task_result_t res = s_run_ok(r, t);
    assert_int_equal(res.steps, 3);
    float *w = s_direct_train(t, d.train, 1);
    s_assert_delta_is(&res, t, w);
    free(w);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

static void test_repeatable_and_per_client(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    gb_task_runner_t *a = s_runner(&d, 1), *b = s_runner(&d, 2);
    gb_task_result_t res = s_run_ok(a, t);
    float *first = s_delta_copy(&res);
    res = s_run_ok(a, t); /* again, on the same runner: the optimiser starts fresh */
    assert_memory_equal(res.delta, first, t->np * sizeof *first);
    /* Another client shuffles differently: another delta. */
    res = s_run_ok(b, t);
    assert_memory_not_equal(res.delta, first, t->np * sizeof *first);
    assert_true(gb_task_runner_seed(7, 1) != gb_task_runner_seed(7, 2));
    assert_true(gb_task_runner_seed(7, 1) == gb_task_runner_seed(7, 1));
    assert_true(gb_task_runner_seed(7, 1) != gb_task_runner_seed(8, 1));
    /* Another task seed on the same client: another delta too. */
    t->tc.seed = 8;
    res = s_run_ok(a, t);
    assert_memory_not_equal(res.delta, first, t->np * sizeof *first);
    free(first);
    gb_task_runner_destroy(&a);
    gb_task_runner_destroy(&b);
    gb_test_task_free(&t);
    s_data_free(&d);
}

/* Runners that share an engine (the virtual clients of one process) give
 * each client exactly what a runner of its own gives, in any order of their
 * tasks, and build the model and explainer once between them. */
static void test_shared_engine(void **state)
{
    (void)state;
    s_data_t d1 = s_data(), d2 = {gb_test_blobs(N_TRAIN, 3), gb_test_blobs(N_TEST, 4)};
    s_task_t *t = s_task_new(S_MLP);
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    t->ex.max_samples = 10;
    t->ex.steps = 8;
    /* each client alone */
    gb_task_runner_t *a = s_runner(&d1, 1), *b = s_runner(&d2, 2);
    gb_task_result_t res = s_run_ok(a, t);
    float *want_a = s_delta_copy(&res);
    uint64_t want_a_explained = res.explained;
    res = s_run_ok(b, t);
    float *want_b = s_delta_copy(&res);
    gb_task_runner_destroy(&a);
    gb_task_runner_destroy(&b);
    /* the two on one engine, their tasks interleaved */
    gb_error_t err = {0};
    gb_task_engine_t *eng = gb_task_engine_new(&err);
    assert_non_null(eng);
    gb_task_runner_cfg_t ca = {.train = d1.train, .test = d1.test, .client_id = 1, .threads = 1,
                               .engine = eng};
    gb_task_runner_cfg_t cb = ca;
    cb.train = d2.train;
    cb.test = d2.test;
    cb.client_id = 2;
    a = gb_task_runner_new(&ca, &err);
    b = gb_task_runner_new(&cb, &err);
    assert_true(a && b);
    for (int round = 0; round < 2; round++) {
        res = s_run_ok(b, t);
        assert_memory_equal(res.delta, want_b, t->np * sizeof *want_b);
        res = s_run_ok(a, t);
        assert_memory_equal(res.delta, want_a, t->np * sizeof *want_a);
        assert_int_equal(res.explained, want_a_explained);
    }
    gb_task_runner_stats_t sa = gb_task_runner_stats(a), sb = gb_task_runner_stats(b);
    assert_int_equal(sa.models_built + sb.models_built, 1);
    assert_int_equal(sa.explainers_built + sb.explainers_built, 1);
    /* another thread count on the same engine is planned for again; its
     * delta differs from one thread's by float rounding only */
    gb_task_runner_destroy(&a);
    ca.threads = 2;
    a = gb_task_runner_new(&ca, &err);
    assert_non_null(a);
    res = s_run_ok(a, t);
    assert_true(gb_test_max_rel_diff(res.delta, want_a, t->np, 1e-3) < 1e-4);
    assert_int_equal(gb_task_runner_stats(a).plans, 1);
    gb_task_runner_destroy(&a);
    gb_task_runner_destroy(&b);
    gb_task_engine_destroy(&eng);
    gb_task_engine_destroy(&eng); /* twice: a no-op */
    free(want_a);
    free(want_b);
    gb_test_task_free(&t);
    s_data_free(&d1);
    s_data_free(&d2);
}

static void test_max_steps(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    gb_task_runner_t *r = s_runner(&d, 3);
    /* max_steps alone: 3 steps of 8 samples. */
    t->tc.epochs = 0;
    t->tc.max_steps = 3;
    gb_task_result_t res = s_run_ok(r, t);
    assert_int_equal(res.steps, 3);
    assert_int_equal(res.num_samples, 24);
    float *w = s_direct_train(t, d.train, 3);
    s_assert_delta_is(&res, t, w);
    free(w);
    /* 10 steps cross into a second epoch; every sample was used. */
    t->tc.max_steps = 10;
    res = s_run_ok(r, t);
    assert_int_equal(res.steps, 10);
    assert_int_equal(res.num_samples, N_TRAIN);
    w = s_direct_train(t, d.train, 3);
    s_assert_delta_is(&res, t, w);
    free(w);
    /* With epochs too, whichever bound comes first. */
    t->tc.epochs = 1;
    res = s_run_ok(r, t);
    assert_int_equal(res.steps, 8);
    t->tc.max_steps = 2;
    res = s_run_ok(r, t);
    assert_int_equal(res.steps, 2);
    assert_float_equal(s_find_metric(res.update, "steps")->value, 2, 0);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

static void test_clip_norm(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    gb_task_runner_t *r = s_runner(&d, 4);
    gb_task_result_t res = s_run_ok(r, t);
    float *free_delta = s_delta_copy(&res);
    double norm = s_norm(free_delta, t->np);
    assert_true(norm > 0.05);
    assert_false(res.clipped);

    t->tc.clip_norm = 0.05;
    res = s_run_ok(r, t);
    assert_true(res.clipped);
    assert_float_equal(res.delta_norm, norm, 1e-9 * norm);
    double got = s_norm(res.delta, t->np);
    print_message("clipped norm %.9g for bound 0.05\n", got);
    assert_true(got <= 0.05);
    assert_true(got >= 0.05 * (1 - 1e-6));
    assert_float_equal(s_find_metric(res.update, "clipped")->value, 1, 0);
    assert_float_equal(s_find_metric(res.update, "delta_norm")->value, norm, 1e-9 * norm);
    /* Same direction: each entry scaled by the same factor. */
    for (size_t i = 0; i < t->np; i++)
        assert_float_equal(res.delta[i], free_delta[i] * (0.05 / norm), 1e-6);
    s_assert_sendable(res.update);

    /* A bound above the norm changes nothing. */
    t->tc.clip_norm = 2 * norm;
    res = s_run_ok(r, t);
    assert_false(res.clipped);
    assert_memory_equal(res.delta, free_delta, t->np * sizeof *free_delta);
    free(free_delta);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

static void test_fedprox(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    t->tc.epochs = 3;
    t->tc.learning_rate = 0.05;
    gb_task_runner_t *r = s_runner(&d, 5);
    gb_task_result_t res = s_run_ok(r, t);
    double plain = s_norm(res.delta, t->np);
    /* The engine's proximal step, exactly. */
    t->tc.fedprox_mu = 0.5;
    res = s_run_ok(r, t);
    float *w = s_direct_train(t, d.train, 5);
    s_assert_delta_is(&res, t, w);
    free(w);
    /* A large mu holds the local model near the global one. */
    t->tc.fedprox_mu = 10;
    res = s_run_ok(r, t);
    double prox = s_norm(res.delta, t->np);
    print_message("delta norm: mu 0 %.4f, mu 10 %.4f\n", plain, prox);
    assert_true(prox < 0.5 * plain);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

/* ---- evaluation ---------------------------------------------------------- */

/* Loss and accuracy of the task's parameters on the test split, directly. */
static void s_direct_eval(const s_task_t *t, const float *params, const gb_dataset_t *test,
                          int batch, gb_epoch_stats_t *st)
{
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new(t->spec, &err);
    assert_non_null(m);
    memcpy(gb_model_params(m), params, t->np * sizeof *params);
    assert_int_equal(gb_model_plan(m, batch, 1, &err), 0);
    gb_batches_t b = {(void *)test, gb_dataset_fill, test->n, GB_LOSS_SOFTMAX_CE};
    assert_int_equal(gb_evaluate(m, &b, batch, st, &err), 0);
    gb_model_destroy(&m);
}

static void test_evaluate_global_model(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    t->tc.epochs = 5;
    t->tc.learning_rate = 0.3;
    t->task.evaluate = true;
    gb_task_runner_t *r = s_runner(&d, 6);
    gb_task_result_t res = s_run_ok(r, t);
    assert_non_null(res.update);
    assert_non_null(res.eval);
    gb_epoch_stats_t global, trained;
    s_direct_eval(t, t->params, d.test, N_TEST, &global);
    float *w = s_direct_train(t, d.train, 6);
    s_direct_eval(t, w, d.test, N_TEST, &trained);
    print_message("accuracy: global %.3f, trained %.3f\n", global.accuracy, trained.accuracy);
    assert_true(trained.accuracy > global.accuracy + 0.2);
    assert_int_equal(res.eval->round, 3);
    assert_int_equal(res.eval->task_id, 5);
    assert_int_equal(res.eval->num_samples, N_TEST);
    assert_int_equal(res.eval_samples, N_TEST);
    /* each phase's wall time: evaluated and trained, nothing explained */
    assert_true(res.eval_s > 0 && res.duration_s > 0);
    assert_true(res.explain_s == 0);
    assert_true(res.eval->accuracy == global.accuracy);
    assert_float_equal(res.eval->loss, global.mean_loss, 1e-6 * global.mean_loss);
    assert_true(res.eval_accuracy == res.eval->accuracy);
    assert_int_equal(res.eval->n_metrics, 1);

    /* Evaluation only, of the trained parameters as the next global model. */
    memcpy(t->params, w, t->np * sizeof *w);
    gb_test_task_rehash(t);
    t->task.train = false;
    t->task.train_config = NULL;
    res = s_run_ok(r, t);
    assert_null(res.update);
    assert_null(res.delta);
    assert_true(res.eval->accuracy == trained.accuracy);
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = 1;
    env.body_case = GLASSBOX__ENVELOPE__BODY_EVAL_RESULT;
    env.eval_result = res.eval;
    gb_error_t err = {0};
    assert_int_equal(gb_envelope_validate(&env, NULL, &err), 0);
    free(w);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

/* A regression client: MSE, no accuracy metric, one explanation group. */
static void test_regression(void **state)
{
    (void)state;
    gb_shape_t shape = {1, {4}};
    gb_error_t err = {0};
    gb_dataset_t *sets[2];
    for (int k = 0; k < 2; k++) {
        sets[k] = gb_dataset_new_regression("lines", 40, &shape, 1, &err);
        assert_non_null(sets[k]);
        gb_rng_t rng;
        gb_rng_seed(&rng, 10 + k, 1);
        for (int i = 0; i < 40; i++) {
            float y = 0;
            for (int f = 0; f < 4; f++) {
                float v = (float)gb_rng_uniform(&rng);
                sets[k]->features[i * 4 + f] = v;
                y += (float)(f + 1) * v;
            }
            sets[k]->targets[i] = y;
        }
    }
    s_data_t d = {sets[0], sets[1]};
    s_task_t *t = s_task_new("input 4\ndense 1\n");
    t->task.evaluate = true;
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRADIENT_X_INPUT;
    t->ex.max_samples = 12;
    gb_task_runner_t *r = s_runner(&d, 7);
    gb_task_result_t res = s_run_ok(r, t);
    assert_null(s_find_metric(res.update, "train_accuracy"));
    assert_non_null(s_find_metric(res.update, "train_loss"));
    assert_true(res.eval->accuracy == 0);
    assert_true(res.eval->loss > 0);
    assert_int_equal(res.explanation->n_classes, 1);
    assert_int_equal(res.explanation->classes[0]->class_index, 0);
    assert_int_equal(res.explanation->classes[0]->count, 12);
    s_assert_sendable(res.update);
    /* A class other than the one output does not exist here. */
    t->ex.classes[0] = 1;
    t->ex.n_classes = 1;
    gb_task_result_t bad;
    enum gb_log_level level = gb_log_get_level();
    gb_log_set_level(GB_LOG_OFF);
    assert_int_equal(gb_task_runner_run(r, &t->task, NULL, &bad, &err), GB_EINVAL);
    gb_log_set_level(level);
    assert_non_null(strstr(err.msg, "task.explain.classes[0]: class 1 is not one of this "
                                    "client's outputs 0..0"));
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

/* ---- explanation --------------------------------------------------------- */

static uint64_t s_count_sum(const Glassbox__Explanation *e)
{
    uint64_t n = 0;
    for (size_t i = 0; i < e->n_classes; i++)
        n += e->classes[i]->count;
    return n;
}

static void test_explain_ig(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    t->ex.max_samples = 20;
    t->ex.steps = 16;
    gb_task_runner_t *r = s_runner(&d, 8);
    gb_task_result_t res = s_run_ok(r, t);
    const Glassbox__Explanation *e = res.explanation;
    assert_non_null(e);
    assert_ptr_equal(res.update->explanation, e);
    assert_int_equal(e->method, GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS);
    assert_int_equal(e->round, 3);
    assert_int_equal(e->n_classes, CLASSES);
    assert_int_equal(s_count_sum(e), 20);
    assert_int_equal(e->count, 20);
    assert_int_equal(res.explained, 20);
    assert_true(res.explain_s > 0);
    assert_true(res.eval_s == 0); /* not asked to evaluate */
    for (size_t i = 0; i < e->n_classes; i++) {
        assert_int_equal(e->classes[i]->class_index, i);
        const Glassbox__Tensor *m = e->classes[i]->mean_attribution;
        assert_int_equal(m->n_shape, 3);
        assert_int_equal(m->shape[0], 1);
        assert_int_equal(m->shape[1], 4);
        assert_int_equal(m->shape[2], 4);
        assert_int_equal(m->data.len, 16 * 4);
    }
    /* Feature importance is a mean |attribution|: >= 0, and not all zero. */
    const Glassbox__Tensor *fi = e->feature_importance;
    assert_int_equal(fi->data.len, 16 * 4);
    double total = 0;
    for (int i = 0; i < 16; i++) {
        float v = gb_wire_float_le(fi->data.data + 4 * i);
        assert_true(v >= 0);
        total += v;
    }
    assert_true(total > 0);
    assert_int_equal(e->n_quality, 2);
    assert_string_equal(e->quality[0]->name, "completeness_error");
    assert_string_equal(e->quality[1]->name, "steps_used");
    assert_true(e->quality[1]->value >= 16);
    s_assert_sendable(res.update);
    /* The explanation is of the global model: the same with or without
     * training after it. */
    float first[16];
    memcpy(first, fi->data.data, sizeof first);
    t->task.train = false;
    t->task.evaluate = true;
    res = s_run_ok(r, t);
    assert_null(res.update);
    assert_non_null(res.explanation);
    assert_memory_equal(res.explanation->feature_importance->data.data, first, sizeof first);
    assert_int_equal(gb_task_runner_stats(r).explainers_built, 1); /* reused */

    /* Only class 1: its samples alone are explained (10 in the test split). */
    t->ex.n_classes = 1;
    t->ex.classes[0] = 1;
    res = s_run_ok(r, t);
    assert_int_equal(res.explanation->n_classes, 1);
    assert_int_equal(res.explanation->classes[0]->class_index, 1);
    assert_int_equal(res.explanation->classes[0]->count, 10);
    assert_int_equal(res.explanation->count, 10);
    /* max_samples 0: the default, capped by the split. */
    t->ex.n_classes = 0;
    t->ex.max_samples = 0;
    res = s_run_ok(r, t);
    assert_int_equal(s_count_sum(res.explanation), N_TEST);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

static void test_explain_methods(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_CONV);
    t->task.train = false;
    t->task.evaluate = true;
    t->ex.max_samples = 9;
    gb_task_runner_t *r = s_runner(&d, 9);
    /* Grad-CAM: maps at the conv layer's 2x2 resolution. */
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM;
    gb_task_result_t res = s_run_ok(r, t);
    const Glassbox__Explanation *e = res.explanation;
    assert_int_equal(s_count_sum(e), 9);
    assert_int_equal(e->feature_importance->n_shape, 2);
    assert_int_equal(e->feature_importance->shape[0], 2);
    assert_int_equal(e->feature_importance->shape[1], 2);
    assert_int_equal(e->n_quality, 0);
    /* SmoothGrad with explicit samples and noise, then saliency and
     * gradient x input: input-shaped maps, each a new explainer. */
    const Glassbox__ExplainMethod methods[] = {GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SMOOTHGRAD,
                                               GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY,
                                               GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRADIENT_X_INPUT};
    for (int k = 0; k < 3; k++) {
        t->ex.method = methods[k];
        t->ex.steps = 4;
        t->ex.noise = 0.1;
        res = s_run_ok(r, t);
        assert_int_equal(res.explanation->method, methods[k]);
        assert_int_equal(s_count_sum(res.explanation), 9);
        assert_int_equal(res.explanation->feature_importance->n_shape, 3);
    }
    assert_int_equal(gb_task_runner_stats(r).explainers_built, 4);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

/* ---- refusals ------------------------------------------------------------ */

typedef void (*s_mutate_fn)(s_task_t *t);

static void m_round(s_task_t *t) { t->task.round = 0; }
static void m_task_id(s_task_t *t) { t->task.task_id = 0; }
static void m_nothing(s_task_t *t)
{
    t->task.train = false;
    t->task.evaluate = false;
}
static void m_no_config(s_task_t *t) { t->task.train_config = NULL; }
static void m_no_model(s_task_t *t) { t->task.model = NULL; }
static void m_sha(s_task_t *t) { t->sha[0] ^= 1; }
static void m_version(s_task_t *t) { t->model.format_version = 2; }
static void m_count(s_task_t *t) { t->model.param_count++; }
static void m_nan(s_task_t *t)
{
    t->params[3] = NAN;
    gb_test_task_rehash(t);
}
static void m_spec(s_task_t *t) { snprintf(t->spec, sizeof t->spec, "input 1 4 4\nbogus 3\n"); }
static void m_input(s_task_t *t) { gb_test_task_model(t, "input 1 5 5\nflatten\ndense 3\n", 1); }
static void m_outputs(s_task_t *t) { gb_test_task_model(t, "input 1 4 4\nflatten\ndense 4\n", 1); }
static void m_epochs(s_task_t *t) { t->tc.epochs = 0; }
static void m_batch(s_task_t *t) { t->tc.batch_size = 0; }
static void m_lr_zero(s_task_t *t) { t->tc.learning_rate = 0; }
static void m_lr_neg(s_task_t *t) { t->tc.learning_rate = -0.1; }
static void m_lr_nan(s_task_t *t) { t->tc.learning_rate = NAN; }
static void m_lr_tiny(s_task_t *t) { t->tc.learning_rate = 1e-50; }
static void m_optimizer(s_task_t *t) { t->tc.optimizer = (Glassbox__Optimizer)7; }
static void m_momentum(s_task_t *t) { t->tc.momentum = 1.0; }
static void m_momentum_neg(s_task_t *t) { t->tc.momentum = -0.1; }
static void m_momentum_round(s_task_t *t) { t->tc.momentum = 0.99999999999; }
static void m_beta1(s_task_t *t) { t->tc.beta1 = 1.0; }
static void m_beta2(s_task_t *t) { t->tc.beta2 = -0.5; }
static void m_beta2_round(s_task_t *t)
{
    t->tc.optimizer = GLASSBOX__OPTIMIZER__OPTIMIZER_ADAM;
    t->tc.beta2 = 0.99999999999;
}
static void m_eps(s_task_t *t) { t->tc.epsilon = -1; }
static void m_decay(s_task_t *t) { t->tc.weight_decay = -1; }
static void m_mu(s_task_t *t) { t->tc.fedprox_mu = -1; }
static void m_mu_nan(s_task_t *t) { t->tc.fedprox_mu = NAN; }
static void m_clip(s_task_t *t) { t->tc.clip_norm = -1; }
static void m_clip_inf(s_task_t *t) { t->tc.clip_norm = INFINITY; }
static void m_method(s_task_t *t) { t->ex.method = (Glassbox__ExplainMethod)9; }
static void m_gradcam(s_task_t *t) { t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM; }
static void m_class(s_task_t *t)
{
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY;
    t->ex.n_classes = 2;
    t->ex.classes[0] = 0;
    t->ex.classes[1] = 3;
}
static void m_steps(s_task_t *t)
{
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    t->ex.steps = 5000;
}
static void m_noise(s_task_t *t)
{
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SMOOTHGRAD;
    t->ex.noise = 2;
}

static void test_bad_tasks(void **state)
{
    (void)state;
    static const struct {
        s_mutate_fn mutate; /* what is wrong */
        int code;           /* expected error */
        const char *names;  /* expected in the message */
    } cases[] = {
        {m_round, GB_EFORMAT, "task.round: is 0"},
        {m_task_id, GB_EFORMAT, "task.task_id: is 0"},
        {m_nothing, GB_EINVAL, "task: asks neither to train nor to evaluate"},
        {m_no_config, GB_EFORMAT, "task.train_config: is missing"},
        {m_no_model, GB_EFORMAT, "task.model: is missing"},
        {m_sha, GB_EINTEGRITY, "task.model: "},
        {m_version, GB_EPROTO, "task.model: "},
        {m_count, GB_EFORMAT, "task.model: "},
        {m_nan, GB_EINVAL, "task.model: "},
        {m_spec, GB_ESPEC, "task.model: "},
        {m_input, GB_ESHAPE, "task.model input 1x5x5 does not fit blobs"},
        {m_outputs, GB_ESHAPE, "task.model has 4 outputs but blobs has 3 classes"},
        {m_epochs, GB_EINVAL, "task.train_config: neither epochs nor max_steps"},
        {m_batch, GB_EFORMAT, "task.train_config.batch_size"},
        {m_lr_zero, GB_EINVAL, "task.train_config.learning_rate"},
        {m_lr_neg, GB_EINVAL, "task.train_config.learning_rate"},
        {m_lr_nan, GB_EINVAL, "task.train_config.learning_rate: is NaN"},
        {m_lr_tiny, GB_EINVAL, "task.train_config.learning_rate: 1e-50 is 0 in float32"},
        {m_optimizer, GB_EINVAL, "task.train_config.optimizer"},
        {m_momentum, GB_EINVAL, "task.train_config.momentum"},
        {m_momentum_neg, GB_EINVAL, "task.train_config.momentum"},
        {m_momentum_round, GB_EINVAL, "task.train_config.momentum: 0.99999999999 rounds to 1"},
        {m_beta1, GB_EINVAL, "task.train_config.beta1"},
        {m_beta2, GB_EINVAL, "task.train_config.beta2"},
        {m_beta2_round, GB_EINVAL, "task.train_config.beta2: 0.99999999999 rounds to 1"},
        {m_eps, GB_EINVAL, "task.train_config.epsilon"},
        {m_decay, GB_EINVAL, "task.train_config.weight_decay"},
        {m_mu, GB_EINVAL, "task.train_config.fedprox_mu"},
        {m_mu_nan, GB_EINVAL, "task.train_config.fedprox_mu: is NaN"},
        {m_clip, GB_EINVAL, "task.train_config.clip_norm"},
        {m_clip_inf, GB_EINVAL, "task.train_config.clip_norm: is infinite"},
        {m_method, GB_EINVAL, "task.explain.method"},
        {m_gradcam, GB_EINVAL, "task.explain.method: Grad-CAM needs a conv layer"},
        {m_class, GB_EINVAL, "task.explain.classes[1]: class 3 is not one of this client's "
                             "classes 0..2"},
        {m_steps, GB_EINVAL, "task.explain.steps"},
        {m_noise, GB_EINVAL, "task.explain.noise"},
    };
    s_data_t d = s_data();
    gb_task_runner_t *r = s_runner(&d, 10);
    s_task_t *good = s_task_new(S_MLP);
    good->task.evaluate = true;
    gb_task_result_t res = s_run_ok(r, good);
    float *ref = s_delta_copy(&res);
    double ref_acc = res.eval->accuracy;
    gb_task_runner_stats_t before = gb_task_runner_stats(r);
    enum gb_log_level level = gb_log_get_level();
    gb_log_set_level(GB_LOG_OFF); /* the refusals' warnings */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_task_t *t = s_task_new(S_MLP);
        t->task.evaluate = true;
        cases[i].mutate(t);
        gb_error_t err = {0};
        res.update = (Glassbox__Update *)1; /* must be cleared */
        int rc = gb_task_runner_run(r, &t->task, NULL, &res, &err);
        if (rc != cases[i].code || !strstr(err.msg, cases[i].names))
            fail_msg("case %zu: got %d '%s', want %d '%s'", i, rc, err.msg, cases[i].code,
                     cases[i].names);
        assert_null(res.update);
        assert_null(res.eval);
        /* Nothing changed: no model built, no plan, no task counted. */
        gb_task_runner_stats_t now = gb_task_runner_stats(r);
        assert_memory_equal(&now, &before, sizeof now);
        /* And the runner still runs the good task to the same result. */
        res = s_run_ok(r, good);
        assert_memory_equal(res.delta, ref, good->np * sizeof *ref);
        assert_true(res.eval->accuracy == ref_acc);
        before = gb_task_runner_stats(r);
        gb_test_task_free(&t);
    }
    /* A missing task. */
    gb_error_t err = {0};
    assert_int_equal(gb_task_runner_run(r, NULL, NULL, &res, &err), GB_EFORMAT);
    assert_string_equal(err.msg, "task: is missing");
    /* err may be NULL. */
    assert_int_equal(gb_task_runner_run(r, NULL, NULL, &res, NULL), GB_EFORMAT);
    gb_log_set_level(level);
    free(ref);
    gb_test_task_free(&good);
    gb_task_runner_destroy(&r);
    s_data_free(&d);
}

/* A client with only a test split evaluates and explains but cannot train;
 * one with only a training split cannot evaluate or explain. */
static void test_missing_splits(void **state)
{
    (void)state;
    s_data_t d = s_data();
    gb_error_t err = {0};
    enum gb_log_level level = gb_log_get_level();
    gb_log_set_level(GB_LOG_OFF);
    gb_task_runner_cfg_t cfg = {.test = d.test, .client_id = 1, .threads = 1};
    gb_task_runner_t *r = gb_task_runner_new(&cfg, &err);
    assert_non_null(r);
    s_task_t *t = s_task_new(S_MLP);
    t->task.evaluate = true;
    gb_task_result_t res;
    assert_int_equal(gb_task_runner_run(r, &t->task, NULL, &res, &err), GB_EINVAL);
    assert_string_equal(err.msg, "task.train: this client has no training data");
    t->task.train = false;
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY;
    res = s_run_ok(r, t);
    assert_non_null(res.eval);
    assert_non_null(res.explanation);
    gb_task_runner_destroy(&r);

    cfg = (gb_task_runner_cfg_t){.train = d.train, .client_id = 1, .threads = 1};
    r = gb_task_runner_new(&cfg, &err);
    assert_non_null(r);
    assert_int_equal(gb_task_runner_run(r, &t->task, NULL, &res, &err), GB_EINVAL);
    assert_string_equal(err.msg, "task.evaluate: this client has no test data");
    t->task.train = true;
    t->task.evaluate = false;
    assert_int_equal(gb_task_runner_run(r, &t->task, NULL, &res, &err), GB_EINVAL);
    assert_string_equal(err.msg, "task.explain: this client has no test data");
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE;
    res = s_run_ok(r, t);
    assert_non_null(res.update);
    gb_log_set_level(level);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

/* ---- model reuse --------------------------------------------------------- */

static void test_spec_change_rebuilds(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *mlp = s_task_new(S_MLP), *conv = s_task_new(S_CONV);
    gb_task_runner_t *r = s_runner(&d, 11), *fresh = s_runner(&d, 11);
    gb_task_result_t res = s_run_ok(r, mlp);
    assert_int_equal(gb_task_runner_stats(r).models_built, 1);
    /* The same spec with other parameters: the model is reused. */
    mlp->params[0] += 0.25f;
    gb_test_task_rehash(mlp);
    res = s_run_ok(r, mlp);
    assert_int_equal(gb_task_runner_stats(r).models_built, 1);
    assert_int_equal(gb_task_runner_stats(r).plans, 1);
    /* Another spec: a new model, with its own parameter count. */
    res = s_run_ok(r, conv);
    assert_int_equal(gb_task_runner_stats(r).models_built, 2);
    assert_int_equal(res.param_count, conv->np);
    assert_int_equal(res.update->param_count, conv->np);
    assert_true(conv->np != mlp->np);
    /* And back: the result is exactly a fresh runner's. */
    res = s_run_ok(r, mlp);
    assert_int_equal(gb_task_runner_stats(r).models_built, 3);
    float *back = s_delta_copy(&res);
    res = s_run_ok(fresh, mlp);
    assert_memory_equal(res.delta, back, mlp->np * sizeof *back);
    /* A larger batch grows the plan of the same model. */
    mlp->tc.batch_size = 16;
    res = s_run_ok(r, mlp);
    assert_int_equal(gb_task_runner_stats(r).models_built, 3);
    assert_int_equal(gb_task_runner_stats(r).plans, 4);
    assert_int_equal(gb_task_runner_stats(r).tasks, 5);
    free(back);
    gb_task_runner_destroy(&r);
    gb_task_runner_destroy(&fresh);
    gb_test_task_free(&mlp);
    gb_test_task_free(&conv);
    s_data_free(&d);
}

/* ---- cancellation -------------------------------------------------------- */

static void *s_cancel_thread(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

static void test_cancel(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_MLP);
    gb_task_runner_t *r = s_runner(&d, 12);
    gb_task_result_t res = s_run_ok(r, t);
    float *ref = s_delta_copy(&res);
    atomic_int flag = 1;
    gb_error_t err = {0};
    /* Set before each phase: that phase stops at once. */
    assert_int_equal(gb_task_runner_run(r, &t->task, &flag, &res, &err), GB_TASK_ECANCELLED);
    assert_string_equal(err.msg, "task cancelled during training (after 0 steps)");
    assert_null(res.update);
    assert_null(res.delta);
    t->task.evaluate = true;
    assert_int_equal(gb_task_runner_run(r, &t->task, &flag, &res, &err), GB_TASK_ECANCELLED);
    assert_string_equal(err.msg, "task cancelled during evaluation");
    t->task.evaluate = false;
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY;
    assert_int_equal(gb_task_runner_run(r, &t->task, &flag, &res, &err), GB_TASK_ECANCELLED);
    assert_string_equal(err.msg, "task cancelled during explanation");
    assert_null(res.explanation);
    assert_int_equal(gb_task_runner_stats(r).tasks, 1);

    /* Set by another thread while a task of 10^8 steps trains. */
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE;
    t->tc.epochs = 0;
    t->tc.max_steps = 100000000;
    atomic_store(&flag, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_cancel_thread, &flag), 0);
    assert_int_equal(gb_task_runner_run(r, &t->task, &flag, &res, &err), GB_TASK_ECANCELLED);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_non_null(strstr(err.msg, "task cancelled during training (after "));

    /* Cleared: the runner is as good as before. */
    atomic_store(&flag, 0);
    t->tc.epochs = 1;
    t->tc.max_steps = 0;
    assert_int_equal(gb_task_runner_run(r, &t->task, &flag, &res, &err), 0);
    assert_memory_equal(res.delta, ref, t->np * sizeof *ref);
    free(ref);
    gb_task_runner_destroy(&r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

/* ---- construction and allocation failures ------------------------------- */

static void test_new_errors(void **state)
{
    (void)state;
    s_data_t d = s_data();
    gb_error_t err = {0};
    assert_null(gb_task_runner_new(NULL, &err));
    assert_int_equal(err.code, GB_EINVAL);
    gb_task_runner_cfg_t cfg = {.threads = 1};
    assert_null(gb_task_runner_new(&cfg, &err));
    assert_string_equal(err.msg, "task runner: neither a train nor a test split");
    cfg = (gb_task_runner_cfg_t){.train = d.train, .test = d.test, .threads = 0};
    assert_null(gb_task_runner_new(&cfg, &err));
    assert_string_equal(err.msg, "task runner: threads 0 outside 1..256");
    cfg.threads = 1;
    cfg.eval_batch = -1;
    assert_null(gb_task_runner_new(&cfg, &err));
    assert_string_equal(err.msg, "task runner: eval_batch -1 is negative");
    cfg.eval_batch = 0;
    cfg.explain_clip = NAN;
    assert_null(gb_task_runner_new(&cfg, &err));
    assert_non_null(strstr(err.msg, "explain_clip"));
    cfg.explain_clip = 0;
    /* Splits that disagree. */
    gb_shape_t other = {1, {5}};
    gb_dataset_t *odd = gb_dataset_new("odd", 10, &other, CLASSES, true, &err);
    assert_non_null(odd);
    cfg.test = odd;
    assert_null(gb_task_runner_new(&cfg, &err));
    assert_non_null(strstr(err.msg, "differ in sample size"));
    gb_dataset_destroy(&odd);
    cfg.test = d.test;
    gb_task_runner_t *r = gb_task_runner_new(&cfg, NULL);
    assert_non_null(r);
    gb_task_runner_destroy(&r);
    s_data_free(&d);
}

static void test_new_alloc_failure(void **state)
{
    (void)state;
    s_data_t d = s_data();
    gb_task_runner_cfg_t cfg = {.train = d.train, .test = d.test, .client_id = 3, .threads = 1};
    gb_task_runner_t *r = NULL;
    long k;
    for (k = 1; k < 50; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        r = gb_task_runner_new(&cfg, &err);
        gb_alloc_fail_after(0);
        if (r)
            break;
        assert_int_equal(err.code, GB_ENOMEM);
        assert_non_null(strstr(err.msg, "out of memory"));
    }
    assert_non_null(r);
    assert_int_equal(k, 4); /* the runner, the explain order, the range chunk */
    gb_task_runner_destroy(&r);
    s_data_free(&d);
}

/* Each allocation of a first task (model, plan, optimiser, explainer,
 * buffers, the engine's per-epoch buffers) failing in turn: GB_ENOMEM, and
 * the runner then runs the task to the result a fresh runner gets. */
static void test_run_alloc_failure(void **state)
{
    (void)state;
    s_data_t d = s_data();
    s_task_t *t = s_task_new(S_CONV);
    t->task.evaluate = true;
    t->ex.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    t->ex.max_samples = 6;
    gb_task_runner_t *ref_r = s_runner(&d, 13);
    gb_task_result_t res = s_run_ok(ref_r, t);
    float *ref = s_delta_copy(&res);
    enum gb_log_level level = gb_log_get_level();
    gb_log_set_level(GB_LOG_OFF);
    long k;
    int rc = -1;
    for (k = 1; k < 500; k++) {
        gb_task_runner_t *r = s_runner(&d, 13);
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        rc = gb_task_runner_run(r, &t->task, NULL, &res, &err);
        gb_alloc_fail_after(0);
        if (rc) {
            if (rc != GB_ENOMEM)
                fail_msg("allocation %ld: %d %s", k, rc, err.msg);
            assert_null(res.update);
        }
        res = s_run_ok(r, t);
        assert_memory_equal(res.delta, ref, t->np * sizeof *ref);
        gb_task_runner_destroy(&r);
        if (rc == 0)
            break;
    }
    gb_log_set_level(level);
    assert_int_equal(rc, 0);
    print_message("a first task makes %ld allocations\n", k - 1);
    assert_true(k > 10);
    free(ref);
    gb_task_runner_destroy(&ref_r);
    gb_test_task_free(&t);
    s_data_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_matches_direct),
        cmocka_unit_test(test_train_adam),
        cmocka_unit_test(test_repeatable_and_per_client),
        cmocka_unit_test(test_shared_engine),
        cmocka_unit_test(test_max_steps),
        cmocka_unit_test(test_clip_norm),
        cmocka_unit_test(test_fedprox),
        cmocka_unit_test(test_evaluate_global_model),
        cmocka_unit_test(test_regression),
        cmocka_unit_test(test_explain_ig),
        cmocka_unit_test(test_explain_methods),
        cmocka_unit_test(test_bad_tasks),
        cmocka_unit_test(test_missing_splits),
        cmocka_unit_test(test_spec_change_rebuilds),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_new_alloc_failure),
        cmocka_unit_test(test_run_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
