/* The client's task runner: everything a client does with one round's Task
 * between receiving it (decoded) and having its results ready to send, with
 * no network. The daemon calls it; the local commands share its pieces
 * (model spec, datasets, the engine's training loop, explanation summaries).
 *
 * A runner is made once per client from its local data. It keeps the built
 * model, its plan (workspaces), the optimiser, the explainer and every
 * result buffer between rounds: a task whose model spec is the previous
 * one's reuses the built model (only the parameters are loaded); another
 * spec builds a new model. Nothing allocates per training step.
 *
 * One task, in this order:
 *   1. validate everything before touching anything: the Task as the wire
 *      decoder checks it (gb_envelope_validate: the model snapshot with
 *      gb_snapshot_check_message, train and explain settings in range), then
 *      what only this client can judge: that it has the data the task needs,
 *      that the model's input and output fit that data, that the explain
 *      method suits the model (Grad-CAM needs a conv layer) and the explain
 *      classes exist. A refused task returns an error whose message names
 *      the field ("task.train_config.momentum: 1 is outside [0, 1)"), logs
 *      a warning, and leaves the runner as it was;
 *   2. load the task's parameters (the global model w_global);
 *   3. evaluate (task.evaluate): loss and accuracy of the GLOBAL model on the
 *      local test split;
 *   4. explain (task.explain.method != EXPLAIN_NONE): attributions of the
 *      GLOBAL model on up to max_samples test samples for their true class,
 *      summarised (explain/summary.h) into per-class mean maps with counts
 *      and a feature-importance map. The samples are the first ones of a
 *      fixed, client-seeded order of the test split, so every round explains
 *      the same samples; with explain.classes set, only samples of those
 *      classes are explained. Classes without samples are left out;
 *   5. train (task.train): local epochs or max_steps steps with a fresh
 *      optimiser state, FedProx's term when fedprox_mu > 0; then
 *      delta = w - w_global, clipped to L2 norm clip_norm when longer.
 *
 * Seeds: the task's seed is mixed with the client id
 * (gb_task_runner_seed), so clients shuffle differently while a re-run of
 * the same task on the same client repeats bit for bit.
 *
 * Ownership: gb_task_runner_new returns a runner the caller owns
 * (gb_task_runner_destroy). The runner BORROWS the datasets: they must
 * outlive it and not change. Results are protobuf-c structs filled in place
 * (Glassbox__Update, Glassbox__EvalResult, Glassbox__Explanation) whose every
 * pointer (delta bytes, digest, metrics, maps, shapes) points into the
 * runner: they are valid until the next gb_task_runner_run or
 * gb_task_runner_destroy, must not be freed (never gb_envelope_free them)
 * and may be put straight into an Envelope the caller builds and packed with
 * gb_envelope_encode. The Task is only read, during the call.
 *
 * Threads: one runner is used from one thread at a time; only the
 * cancellation flag may be written by another thread while a task runs. */
#ifndef GB_CLIENT_TASK_RUNNER_H
#define GB_CLIENT_TASK_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "glassbox.pb-c.h"
#include "util/error.h"

/* Returned by gb_task_runner_run when the cancellation flag stopped the
 * task: not a gb_err code (gb_strerror calls it unknown), chosen far from
 * them so that a caller can tell "stopped on request" from any failure. */
#define GB_TASK_ECANCELLED (-64)

/* Defaults of gb_task_runner_cfg_t's optional fields. */
#define GB_TASK_DEFAULT_EVAL_BATCH 64        /* evaluation batch without a training plan */
#define GB_TASK_DEFAULT_EXPLAIN_SAMPLES 256  /* ExplainConfig.max_samples 0 */
#define GB_TASK_DEFAULT_EXPLAIN_CLIP 20.0    /* L2 bound per sample's map, as cmd_explain */
#define GB_TASK_DEFAULT_SMOOTHGRAD_NOISE 0.15 /* ExplainConfig.noise 0, relative to input range */

/* The model, plan, parameter buffers, optimiser and explainer a runner
 * builds for its tasks, which runners that never run at the same time may
 * share (cfg.engine): the virtual clients of one process train one after
 * another, so they need one set, not one each (tens of MB a client for
 * LeNet). A runner's results point into the engine, so they last only until
 * the next task of ANY runner sharing it. */
typedef struct gb_task_engine gb_task_engine_t;

typedef struct {
    const gb_dataset_t *train; /* training split, borrowed; NULL: training tasks refused */
    const gb_dataset_t *test;  /* test split, borrowed; NULL: evaluate/explain refused */
    uint64_t client_id;        /* mixed into every task's seed */
    int threads;               /* engine workers, 1..256 */
    int eval_batch;            /* batch for evaluation and explanation when no larger training
                                  batch is planned; 0: GB_TASK_DEFAULT_EVAL_BATCH */
    double explain_clip;       /* summary clip (explain/summary.h); 0: the default. The
                                  federation should use one value for all clients */
    gb_task_engine_t *engine;  /* shared engine, borrowed: it must outlive the runner and
                                  no two runners sharing it may run at once; NULL: the
                                  runner's own */
} gb_task_runner_cfg_t;

/* An empty engine to share (gb_task_engine_destroy), or NULL with err set. */
gb_task_engine_t *gb_task_engine_new(gb_error_t *err);
void gb_task_engine_destroy(gb_task_engine_t **engine);

/* What one task produced. Pointers are NULL for what the task did not ask
 * for; everything pointed to is the runner's (see the top of this file). */
typedef struct {
    Glassbox__Update *update;           /* task.train: round, task_id, num_samples, delta,
                                           param_count, delta_sha256, metrics, explanation */
    Glassbox__EvalResult *eval;         /* task.evaluate: round, task_id, num_samples, loss,
                                           accuracy (0 for regression), metrics */
    Glassbox__Explanation *explanation; /* explain asked: the explanation (also
                                           update->explanation when training) */
    const float *delta;                 /* host-order delta, param_count floats, or NULL */
    size_t param_count;                 /* parameters of the task's model */
    uint64_t num_samples;               /* distinct training samples used: min(train size,
                                           samples processed), the FedAvg weight */
    long steps;                         /* optimiser steps taken */
    double train_loss;                  /* mean data loss over every step (no prox term) */
    double train_accuracy;              /* mean over every step (classification; else 0) */
    double duration_s;                  /* wall time of the training */
    double eval_s;                      /* wall time of the evaluation (0: none asked) */
    double explain_s;                   /* wall time of the explanation (0: none asked) */
    double delta_norm;                  /* ||delta||_2 before clipping */
    bool clipped;                       /* the delta was scaled to clip_norm */
    double eval_loss, eval_accuracy;    /* copies of eval's, for logs */
    uint64_t eval_samples;              /* test samples evaluated */
    uint64_t explained;                 /* samples explained (sum of the class counts) */
} gb_task_result_t;

/* Counters over a runner's life, for logs and tests. */
typedef struct {
    long tasks;            /* tasks that finished successfully */
    long models_built;     /* models built from a spec (a new spec builds one) */
    long plans;            /* workspace plans made */
    long explainers_built; /* explainers made (a new model, plan or explain config) */
} gb_task_runner_stats_t;

typedef struct gb_task_runner gb_task_runner_t;

/* A runner for one client. Checks the configuration: at least one split,
 * each with samples, the two agreeing on sample size, task and outputs,
 * threads in 1..256, eval_batch >= 0, explain_clip finite and >= 0. Reads
 * the test split once (its input range, which scales SmoothGrad's noise)
 * and draws the client's fixed order of test samples to explain. Returns
 * NULL and fills err (GB_EINVAL, GB_ENOMEM). */
gb_task_runner_t *gb_task_runner_new(const gb_task_runner_cfg_t *cfg, gb_error_t *err);

/* Frees the runner and everything it made (not the datasets); sets *r to
 * NULL; NULL-safe. Results of the last run become invalid. */
void gb_task_runner_destroy(gb_task_runner_t **r);

/* Runs one task (see the top of this file) and fills *out (cleared first).
 * `cancel` (may be NULL) is read before each batch of training,
 * explanation and between phases; when it reads non-zero the task stops
 * and returns GB_TASK_ECANCELLED. The runner never resets the flag.
 *
 * Errors: the validation's codes (GB_EFORMAT, GB_EINVAL, GB_ESHAPE,
 * GB_ESPEC, GB_EINTEGRITY, ...: see net/envelope.h for how they map to an
 * ErrorCode reply) with nothing changed; GB_ERANGE when training diverged;
 * GB_ENOMEM; GB_TASK_ECANCELLED. After any error *out holds nothing and
 * the runner is ready for the next task (a failure after validation leaves
 * the model's parameters unspecified, but every task loads its own). */
int gb_task_runner_run(gb_task_runner_t *r, const Glassbox__Task *task, const atomic_int *cancel,
                       gb_task_result_t *out, gb_error_t *err) GB_MUST_CHECK;

/* The seed a task's training, shuffling and SmoothGrad noise use:
 * a hash of the task's seed and the client id. */
uint64_t gb_task_runner_seed(uint64_t task_seed, uint64_t client_id);

/* The runner's counters. */
gb_task_runner_stats_t gb_task_runner_stats(const gb_task_runner_t *r);

/* Test-only model poisoning for the attack benchmark (tests/bench/attack.cmake,
 * "Attacks (issue 12)" in tests/bench/README.md). task_runner.c ends the
 * expression that computes each delta coordinate with gb_bench_poison(d): with
 * GB_BENCH_POISON_SCALE defined (-10: sign-flipped, x10) it appends
 * ", d *= SCALE", so the poisoned delta is what is normed, clipped and sent.
 * Only attack.cmake defines it, for gb_poison_client; for the shipped
 * glassbox-client it expands to nothing, and because it is defined here at the
 * end and used inside an existing expression, not even glassbox-client's debug
 * line table moves: the binary is byte for byte the same. */
#ifdef GB_BENCH_POISON_SCALE
#define gb_bench_poison(d) , ((d) *= (float)(GB_BENCH_POISON_SCALE))
#else
#define gb_bench_poison(d)
#endif

#endif
