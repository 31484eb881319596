/* Attributions: which input features a model's output depends on, for one
 * sample at a time, computed through the engine in batches.
 *
 * Methods (shared/research/xai-and-privacy.md, part 1):
 *   ig          integrated gradients (the default): (x - x') * the path
 *               integral of the gradient from the baseline x' to x, by a
 *               quadrature rule whose weights sum to 1; per sample the
 *               completeness error is measured and the steps doubled while it
 *               exceeds a tolerance;
 *   saliency    the plain gradient d f / d x (signed);
 *   gradxinput  x * the gradient;
 *   smoothgrad  the mean of a base method (saliency, gradxinput or ig) over
 *               noisy copies of the input (display only);
 *   gradcam     sum_k alpha_k A_k over the channels k of a conv layer's
 *               output A, alpha_k the mean over positions of d f / d A_k:
 *               signed (no ReLU), at the layer's resolution (no upsampling);
 *   occlusion   f(x) - f(x with a patch occluded), averaged over the patches
 *               that cover each feature (forward passes only).
 * f is always the LOGIT of the target class (pre-softmax output), or output 0
 * of a model explained without targets (regression).
 *
 * Shape: an explainer is made once for a planned model and a configuration;
 * it allocates every buffer then, so gb_explain allocates nothing and can run
 * every round. Gradient methods put many (sample, path point) pairs into each
 * engine batch at the model's planned batch size: one forward and one
 * backward (dout = one-hot of the target logit, input gradient dx, no
 * parameter gradients) per batch, which the engine splits over its threads.
 *
 * Side effects, all stated: gb_explain never writes the model's parameters,
 * its gradient buffer (backward runs with accumulate_grads = false) or any
 * optimiser state, but it does put the model in evaluation mode
 * (gb_model_set_train(model, false, 0): dropout off; the caller re-enables
 * training) and Grad-CAM clears any layer capture (gb_model_capture) when it
 * is done. An explainer and its model must not be used from two threads at
 * once. */
#ifndef GB_EXPLAIN_ATTRIBUTION_H
#define GB_EXPLAIN_ATTRIBUTION_H

#include <stdint.h>

#include "engine/model.h"
#include "engine/shape.h"
#include "util/error.h"

typedef enum {
    GB_EXPLAIN_IG,
    GB_EXPLAIN_SALIENCY,
    GB_EXPLAIN_GRADXINPUT,
    GB_EXPLAIN_SMOOTHGRAD,
    GB_EXPLAIN_GRADCAM,
    GB_EXPLAIN_OCCLUSION
} gb_explain_method_t;

/* Number of methods (for tables and loops); not a method. */
#define GB_EXPLAIN_METHOD_COUNT 6

typedef enum { GB_IG_GAUSS_LEGENDRE, GB_IG_TRAPEZOID } gb_ig_rule_t;

/* Limits checked by gb_explainer_new. */
#define GB_IG_MAX_STEPS 4096           /* steps << max_doublings is at most this */
#define GB_IG_MAX_DOUBLINGS 12         /* max_doublings at most this */
#define GB_SMOOTHGRAD_MAX_SAMPLES 4096 /* samples at most this */

typedef struct {
    gb_explain_method_t method; /* which method */
    int steps;                  /* IG: initial steps (default 32) */
    gb_ig_rule_t rule;          /* IG: quadrature rule (default Gauss-Legendre) */
    const float *baseline;      /* IG: one sample's baseline (input size floats), NULL = zeros;
                                 * also occlusion: when not NULL, occluded features take the
                                 * baseline's values instead of fill. Copied by
                                 * gb_explainer_new: the caller's array need not outlive it. */
    int max_doublings;          /* IG: how often a sample's steps may double (default 3) */
    double completeness_tol;    /* IG: relative completeness error that triggers doubling (0.05) */
    gb_explain_method_t base;   /* SmoothGrad: the method it smooths (saliency, gradxinput, ig) */
    int samples;                /* SmoothGrad: noisy copies (default 16) */
    float sigma;                /* SmoothGrad: noise std in input units (0 = the base method) */
    uint64_t seed;              /* SmoothGrad noise seed */
    int patch, stride;          /* occlusion: square patch (images) or timestep window, stride */
    float fill;                 /* occlusion: value occluded inputs take (default 0) */
    int layer;                  /* Grad-CAM: spec index of the conv layer; -1 = the last conv */
} gb_explain_cfg_t;

/* The defaults for a method: steps 32, Gauss-Legendre, zero baseline,
 * max_doublings 3, completeness_tol 0.05, base saliency, samples 16,
 * sigma 0.15, seed 0, patch 4, stride 4, fill 0, layer -1. Every field is
 * set whatever the method, so one cfg can be switched between methods. */
gb_explain_cfg_t gb_explain_defaults(gb_explain_method_t method);

/* Parses ig|gradcam|occlusion|saliency|gradxinput|smoothgrad (exact, lower
 * case) into *out. Returns 0, or GB_EINVAL for anything else (NULL included;
 * *out is then untouched and nothing is logged: the caller names the flag). */
int gb_explain_parse_method(const char *name, gb_explain_method_t *out) GB_MUST_CHECK;

/* The name gb_explain_parse_method accepts for m; a static string ("?" for
 * a value outside the enum). */
const char *gb_explain_method_name(gb_explain_method_t m);

typedef struct gb_explainer gb_explainer_t;

/* The model must be planned; the explainer runs its batches at the model's planned batch
 * size and allocates all its buffers here (nothing in gb_explain).
 *
 * The explainer borrows the model: it must outlive the explainer and keep its
 * plan (re-planning invalidates the explainer; changing its parameters does
 * not: every gb_explain reads them afresh). Checks the configuration against
 * the model and refuses (NULL, err naming the field and value, a log line)
 * steps outside 1..GB_IG_MAX_STEPS (2.. for the trapezoid), steps <<
 * max_doublings above GB_IG_MAX_STEPS, a tolerance that is negative or not
 * finite, a SmoothGrad base that is not saliency, gradxinput or ig, samples
 * outside 1..GB_SMOOTHGRAD_MAX_SAMPLES, a negative or non-finite sigma, a
 * patch or stride < 1 or a patch larger than the input, Grad-CAM on a model
 * without a conv layer or on a layer that is not one, a first layer that
 * takes token ids (embedding: no input gradient). The result is the caller's;
 * free it with gb_explainer_destroy. */
gb_explainer_t *gb_explainer_new(gb_model_t *model, const gb_explain_cfg_t *cfg, gb_error_t *err);

/* Frees the explainer (not its model); sets *e to NULL; NULL-safe. */
void gb_explainer_destroy(gb_explainer_t **e);

/* Per-sample attribution shape: the input shape, or the conv layer's (H', W') for Grad-CAM. */
gb_shape_t gb_explainer_attr_shape(const gb_explainer_t *e);

/* The configuration in use, with defaults resolved: Grad-CAM's layer is the
 * conv layer's spec index (never -1); baseline points at the explainer's copy
 * (or is NULL for zeros). Borrowed: lives as long as the explainer. For the
 * metadata that goes with an explanation (method, steps, rule, ...). */
const gb_explain_cfg_t *gb_explainer_cfg(const gb_explainer_t *e);

/* Attributions of n samples x (n x input size) for their target classes (logit of the target;
 * for regression models target may be NULL and output 0 is explained). attr: n x attr size.
 * completeness: n values (may be NULL): IG's
 *     |sum(attr) - (f(x) - f(baseline))| / |f(x) - f(baseline)|
 * after any doubling (0 for other methods); steps_used (may be NULL): n ints.
 * Never changes the model's parameters, gradient buffer or any optimiser state.
 *
 * Details of the contract:
 * - n >= 0 (0 does nothing); targets must lie in 0..outputs-1 (GB_ERANGE,
 *   logged, before any work: attr is then untouched). attr must not overlap
 *   x; x and target are only read, and only during the call.
 * - Each sample's result depends only on that sample (and, for SmoothGrad, on
 *   its index in this call, which seeds its noise), not on n, the batch size
 *   or the thread count, up to the engine's float rounding.
 * - IG's relative error divides by max(|f(x) - f(x')|, 1e-4 max(|f(x)|,
 *   |f(x')|), 1e-30): a difference below 1e-4 of the logits themselves is
 *   known to float32 only to about 1e-3 of itself (and not at all when x
 *   equals x'), so there the error is measured against that floor instead,
 *   which keeps rounding from triggering pointless doublings.
 *   sum(attr) is the sum in double of the float attributions returned. A
 *   sample whose error exceeds completeness_tol is recomputed with twice the
 *   steps, at most max_doublings times; steps_used says how many it ended
 *   with. Features equal to the baseline get exactly 0.
 * - saliency/gradxinput/gradcam/occlusion: completeness 0, steps_used 1
 *   (occlusion: the number of forward passes per sample).
 * - smoothgrad: sigma 0 runs the base method itself (bit for bit). With
 *   sigma > 0, copy j of sample i is x_i + sigma * N(0, 1) noise drawn from
 *   (seed, i, j); the result is the mean of the base maps of the copies
 *   (gradxinput and ig multiply by the noisy input). ig copies run at the
 *   initial steps without doubling; completeness is then the mean of the
 *   copies' relative errors and steps_used the steps.
 * - occlusion: windows start at 0 and step by stride; the last one may be
 *   cut off by the edge (as Captum's); a feature that no window covers gets
 *   0. Images: patch x patch pixels, all channels; sequences (T, F): patch
 *   timesteps, all features; vectors: patch features.
 * Returns 0, or a negative gb_err with err filled (the engine's errors
 * included); on error attr, completeness and steps_used hold no result. */
int gb_explain(gb_explainer_t *e, const float *x, const int32_t *target, int n, float *attr,
               double *completeness, int *steps_used, gb_error_t *err) GB_MUST_CHECK;

/* Quadrature: n points alphas in [0,1] and weights summing to exactly 1 (in double).
 *
 * Gauss-Legendre (n >= 1): the roots of P_n by Newton's iteration in double,
 * mapped from [-1, 1] to [0, 1] in increasing order, weights 1/((1 - t^2)
 * P_n'(t)^2) (the [-1, 1] weights halved); exact for polynomials of degree up
 * to 2n - 1. Trapezoid (n >= 2): alpha_k = k/(n-1), weights 1/(2(n-1)) at
 * the ends and 1/(n-1) inside (not Captum's, whose weights sum to 1 - 1/n).
 * "Sum to exactly 1": every weight is a whole multiple of 2^-53, so every
 * partial sum is exact in double and the weights add up to 1.0 in any order.
 * Getting there moves each computed weight by at most 1.7e-16 (less than
 * 3e-10 of itself; quadrature.c has the measurements). alpha and weight each
 * receive n doubles. n above GB_IG_MAX_STEPS, or too small for the rule: GB_EINVAL. */
int gb_ig_rule_points(gb_ig_rule_t rule, int n, double *alpha, double *weight,
                      gb_error_t *err) GB_MUST_CHECK;

#endif
