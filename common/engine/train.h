/* The training and evaluation loops. The engine knows no files: batches come
 * from a caller's fill function (common/data provides one for datasets), and
 * progress goes to a caller's callback. Nothing allocates per batch: the index
 * permutation and the batch buffers are allocated once per call. */
#ifndef GB_ENGINE_TRAIN_H
#define GB_ENGINE_TRAIN_H

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
} gb_train_cfg_t;

typedef struct {
    int64_t samples;   /* samples seen */
    double mean_loss;  /* mean loss over them */
    double accuracy;   /* fraction correct (cross-entropy only, else 0) */
    double seconds;    /* wall time */
} gb_epoch_stats_t;

/* One epoch over `data` in a seeded random order; the last short batch is
 * used too. */
int gb_train_epoch(gb_model_t *model, gb_optim_t *optim, const gb_batches_t *data,
                   const gb_train_cfg_t *cfg, gb_epoch_stats_t *stats, gb_error_t *err)
    GB_MUST_CHECK;

/* Evaluation in order, batch by batch, without dropout; fills loss and
 * accuracy. */
int gb_evaluate(gb_model_t *model, const gb_batches_t *data, int batch, gb_epoch_stats_t *stats,
                gb_error_t *err) GB_MUST_CHECK;

#endif
