/* The training and evaluation loops. The engine knows no files: batches come
 * from a caller's fill function (common/data provides one for datasets), and
 * progress goes to a caller's callback. Nothing allocates per batch: the index
 * permutation and the batch buffers are allocated once per call.
 *
 * Three options of the training loop serve federated clients (all off when
 * zero/NULL, so a caller that does not name them gets a plain epoch): a step
 * limit (a task's max_steps), FedProx's proximal term (Li et al. 2020: the
 * gradient gains mu (w - w_global) before each optimiser step, keeping local
 * training near the global model), and a cancellation flag another thread
 * may set, read between batches. They live in the loop rather than in a
 * caller's copy of it because only the loop sits between the backward pass
 * and the optimiser step. */
#ifndef GB_ENGINE_TRAIN_H
#define GB_ENGINE_TRAIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/loss.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "util/error.h"

/* Fills x (n x input size floats) and the targets for samples idx[0..n) of a
 * source; returns 0 or a negative gb_err. labels/values point to buffers of n
 * (resp. n x outputs) entries; fill writes the one its loss needs. */
typedef int (*gb_fill_fn)(void *source, const int32_t *idx, int n, float *x, int32_t *labels,
                          float *values, gb_error_t *err);

typedef struct {
    void *source;         /* passed to fill */
    gb_fill_fn fill;      /* batch gatherer */
    int64_t n;            /* number of samples */
    gb_loss_kind_t loss;  /* loss used for training and reported in eval */
} gb_batches_t;

/* Called after each batch with samples done so far and the running mean loss. */
typedef void (*gb_progress_fn)(void *arg, int64_t done, int64_t total, double mean_loss);

typedef struct {
    int batch;               /* mini-batch size <= the model's planned batch */
    uint64_t seed;           /* shuffling and dropout seed */
    int epoch;               /* epoch number: mixes into the shuffle seed */
    gb_progress_fn progress; /* may be NULL */
    void *progress_arg;      /* passed to progress */
    long max_steps;          /* > 0: end the epoch after this many steps; 0: the whole epoch */
    float prox_mu;           /* FedProx: > 0 adds prox_mu (w - prox_center) to the gradient */
    const float *prox_center; /* FedProx: param count floats (the global model), read only;
                                 required when prox_mu > 0 */
    const atomic_int *cancel; /* may be NULL; read before each batch: non-zero ends the epoch
                                 early with stats->cancelled set */
} gb_train_cfg_t;

typedef struct {
    int64_t samples;   /* samples seen */
    double mean_loss;  /* mean loss over them */
    double accuracy;   /* fraction correct (cross-entropy only, else 0) */
    double seconds;    /* wall time */
    long steps;        /* optimiser steps taken (training only) */
    bool cancelled;    /* the epoch ended early on cfg->cancel (training only) */
} gb_epoch_stats_t;

/* One epoch over `data` in a seeded random order; the last short batch is
 * used too. With cfg->max_steps > 0 the epoch ends after that many steps
 * (the order is the same permutation, cut short). With cfg->prox_mu > 0,
 * after each backward pass the gradient gains prox_mu * (w - prox_center)
 * before the finiteness check and the optimiser step; the reported loss is
 * the data loss without the proximal term. If cfg->cancel reads non-zero
 * before a batch, the epoch stops there and returns 0 with stats->cancelled
 * true and stats counting the steps taken (the parameters then hold a
 * partly trained state: a caller that cancels should discard them).
 * GB_EINVAL for a negative max_steps, a negative or non-finite prox_mu, or
 * prox_mu > 0 without prox_center. */
int gb_train_epoch(gb_model_t *model, gb_optim_t *optim, const gb_batches_t *data,
                   const gb_train_cfg_t *cfg, gb_epoch_stats_t *stats, gb_error_t *err)
    GB_MUST_CHECK;

/* Evaluation in order, batch by batch, without dropout; fills loss and
 * accuracy. */
int gb_evaluate(gb_model_t *model, const gb_batches_t *data, int batch, gb_epoch_stats_t *stats,
                gb_error_t *err) GB_MUST_CHECK;

/* gb_evaluate that also counts, per class K of n_classes (the model's
 * outputs), the samples labelled K (class_total[K]) and those of them
 * predicted K (class_correct[K]); both arrays the caller's, n_classes long,
 * overwritten. GB_EINVAL for regression data or n_classes not the model's
 * output count. */
int gb_evaluate_classes(gb_model_t *model, const gb_batches_t *data, int batch,
                        gb_epoch_stats_t *stats, int64_t *class_total, int64_t *class_correct,
                        int n_classes, gb_error_t *err) GB_MUST_CHECK;

#endif
