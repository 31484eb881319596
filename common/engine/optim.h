/* Optimisers over the flat parameter vector: SGD (momentum, weight decay) and
 * Adam, with the update rules of PyTorch's torch.optim (SGD: dampening 0,
 * first momentum buffer = gradient; Adam: L2 weight decay added to the
 * gradient, bias correction, eps outside the square root). State (momentum,
 * Adam's m and v) lives in flat buffers of the same layout as the
 * parameters. */
#ifndef GB_ENGINE_OPTIM_H
#define GB_ENGINE_OPTIM_H

#include <stddef.h>

#include "util/error.h"

typedef enum { GB_OPTIM_SGD, GB_OPTIM_ADAM } gb_optim_kind_t;

typedef struct {
    gb_optim_kind_t kind; /* which rule */
    float lr;             /* learning rate > 0 */
    float momentum;       /* SGD momentum in [0, 1) */
    float weight_decay;   /* L2 coefficient >= 0 */
    float beta1, beta2;   /* Adam moment decay in [0, 1) */
    float eps;            /* Adam denominator term > 0 */
} gb_optim_cfg_t;

typedef struct gb_optim gb_optim_t;

/* Defaults: SGD lr 0.01 no momentum; Adam lr 1e-3, betas 0.9/0.999, eps 1e-8. */
gb_optim_cfg_t gb_optim_defaults(gb_optim_kind_t kind);

/* Parses "sgd" or "adam"; returns 0 or GB_EINVAL. */
int gb_optim_parse_kind(const char *name, gb_optim_kind_t *kind);

/* New optimiser for n parameters with zeroed state; the caller owns it.
 * Returns NULL and fills err on a bad configuration or no memory. */
gb_optim_t *gb_optim_new(const gb_optim_cfg_t *cfg, size_t n, gb_error_t *err);

/* Frees; sets *optim to NULL; NULL-safe. */
void gb_optim_destroy(gb_optim_t **optim);

/* params -= update(grads); grads are read only. */
void gb_optim_step(gb_optim_t *optim, float *params, const float *grads);

/* Zeroes the state (momentum, moments, step count), as a new optimiser. */
void gb_optim_reset(gb_optim_t *optim);

/* Number of steps taken since creation or reset. */
long gb_optim_steps(const gb_optim_t *optim);

#endif
