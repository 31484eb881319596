/* Losses: softmax cross-entropy over integer labels and mean squared error.
 *
 * Each returns the SUM of per-sample losses over its rows and writes the
 * gradient of (scale x that sum) with respect to the outputs, so a worker
 * holding part of a batch passes scale = 1/full batch and the pieces add up to
 * the gradient of the batch mean. Cross-entropy is computed from
 * max-subtracted logits and log-sum-exp, finite for logits of +-1e4. */
#ifndef GB_ENGINE_LOSS_H
#define GB_ENGINE_LOSS_H

#include <stdint.h>

typedef enum { GB_LOSS_SOFTMAX_CE, GB_LOSS_MSE } gb_loss_kind_t;

typedef struct {
    gb_loss_kind_t kind;    /* which loss */
    const int32_t *labels;  /* CE: batch class indices in [0, classes) */
    const float *values;    /* MSE: batch x outputs target values */
} gb_target_t;

/* logits: rows x classes. labels must be in range (caller checks). dlogits may
 * be NULL (loss only). */
double gb_loss_softmax_ce(const float *logits, const int32_t *labels, int rows, int classes,
                          float scale, float *dlogits);

/* Mean over columns of squared error per row, summed over rows:
 * sum_r (1/cols) sum_c (y - t)^2, matching PyTorch's MSELoss(mean) when the
 * caller's scale is 1/rows. */
double gb_loss_mse(const float *y, const float *target, int rows, int cols, float scale,
                   float *dy);

#endif
