/* A model: a sequence of layers built from a spec, with ONE flat parameter
 * buffer and ONE gradient buffer of the same length; each layer holds offsets
 * into them, so averaging, deltas, serialisation and signing see one vector.
 *
 * Life cycle: gb_model_new (shapes checked, parameters allocated, not yet
 * initialised) -> gb_model_init (PyTorch's default initialisation from a seed)
 * or writing the parameters directly -> gb_model_plan (workspaces for a
 * maximum batch and a thread count, allocated once) -> forward/backward/
 * train_step any number of times with batch <= the planned maximum; nothing
 * allocates inside them. A bigger batch is an error (GB_ESHAPE). */
#ifndef GB_ENGINE_MODEL_H
#define GB_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/loss.h"
#include "engine/shape.h"
#include "engine/spec.h"
#include "util/error.h"

typedef struct gb_model gb_model_t;

/* Builds a model from spec text or a preset name. Refuses a spec whose shapes
 * do not fit ("spec line 5: conv kernel 5 larger than padded input 3x3").
 * Parameters and gradients are zeroed. Returns NULL and fills err. */
gb_model_t *gb_model_new(const char *spec_or_preset, gb_error_t *err);

/* Largest parameter count a spec may imply (1 Gi floats = 4 GiB). */
#define GB_MODEL_MAX_PARAMS ((size_t)1 << 30)

/* Number of parameters the spec implies, checking it as gb_model_new does
 * but allocating no parameter memory: for validating untrusted model files
 * and messages before trusting their sizes. */
int gb_model_count_params(const char *spec_or_preset, size_t *n_params, gb_error_t *err)
    GB_MUST_CHECK;

/* Frees the model and its workspaces and threads; sets *model to NULL. */
void gb_model_destroy(gb_model_t **model);

/* Initialises every parameter as PyTorch's defaults do (kaiming-uniform with
 * a = sqrt(5) for weights, U(+-1/sqrt(fan_in)) for biases), from `seed`. */
void gb_model_init(gb_model_t *model, uint64_t seed);

/* Allocates workspaces for batches up to max_batch, split over `threads`
 * workers (>= 1; OpenBLAS is then set to one thread so the two pools never
 * fight over the cores). Replaces an earlier plan; on failure the earlier
 * plan stays. Refuses (GB_ENOMEM) a plan above half the machine's memory and
 * (GB_ESHAPE) one whose per-worker sizes overflow sgemm's int sizes. */
int gb_model_plan(gb_model_t *model, int max_batch, int threads, gb_error_t *err)
    GB_MUST_CHECK;

/* Training mode enables dropout; `seed` feeds dropout masks, which depend on
 * (seed, sample index within the batch) only, so thread count never changes
 * them. */
void gb_model_set_train(gb_model_t *model, bool train, uint64_t seed);

/* Forward pass of `batch` samples (batch x input size floats, row-major) into
 * out (batch x output size floats). Keeps activations for a later backward. */
int gb_model_forward(gb_model_t *model, const float *x, int batch, float *out,
                     gb_error_t *err) GB_MUST_CHECK;

/* Backward pass from dout (batch x output size) through the activations of
 * the last forward call with the same batch, whose input x must still be
 * valid and unchanged. If accumulate_grads, the
 * parameter gradients are ADDED into gb_model_grads; otherwise the gradient
 * buffer is left untouched. If dx is not NULL it receives the input gradient
 * (batch x input size). Parameters and optimiser state never change. */
int gb_model_backward(gb_model_t *model, const float *dout, int batch, float *dx,
                      bool accumulate_grads, gb_error_t *err) GB_MUST_CHECK;

/* Forward and backward through spec layers [first, end) only, for callers
 * that treat the model as pieces (explanations run an affine first layer
 * once per sample and the rest once per path point). `in` is the input of
 * layer `first` (batch x the output size of layer first - 1, or of the model
 * input when first is 0) and must stay valid until the matching backward;
 * out (may be NULL) receives layer end - 1's output. gb_model_forward is
 * forward_layers(0, layer count). The backward follows the last forward,
 * which must have had the same first, end and batch (GB_ESHAPE otherwise);
 * dout is batch x layer end - 1's output size, din (may be NULL) receives the
 * gradient at `in`; gradients as in gb_model_backward. Layers later than
 * end - 1 keep their activations of an earlier pass. GB_EINVAL when
 * 0 <= first < end <= layer count does not hold or a boundary falls between
 * a relu and the max-pool it runs reordered with (a boundary that is not a
 * position of the spec). */
int gb_model_forward_layers(gb_model_t *model, int first, int end, const float *in, int batch,
                            float *out, gb_error_t *err) GB_MUST_CHECK;
int gb_model_backward_layers(gb_model_t *model, int first, int end, const float *dout, int batch,
                             float *din, bool accumulate_grads, gb_error_t *err) GB_MUST_CHECK;

/* Works on rows [row0, row0 + n) of a pass: writes them into a forward's
 * input (the `in` given to gb_model_forward_layers_fill, the caller's), or
 * reads them from a backward's input gradient (the `din` given to
 * gb_model_backward_layers_drain). */
typedef void (*gb_model_rows_fn)(void *arg, int row0, int n);

/* gb_model_forward_layers whose input rows are written by fill as the pass
 * runs: each worker calls it for the rows it is about to run, just before,
 * so they are still in its cache when the first layer reads them (the
 * explanations' path points, made from two rows each). fill runs on the
 * workers' threads, each on its own rows. `in` must hold batch rows when
 * the call returns, as gb_model_forward_layers' does, for the backward.
 * GB_EINVAL for a NULL fill, and for first 0 when the first layer checks
 * its input before the pass (embedding); else as gb_model_forward_layers. */
int gb_model_forward_layers_fill(gb_model_t *model, int first, int end, const float *in,
                                 gb_model_rows_fn fill, void *arg, int batch, float *out,
                                 gb_error_t *err) GB_MUST_CHECK;

/* gb_model_backward_layers whose input gradient rows are read by drain as
 * the pass runs: each worker calls it for its rows of din just after it
 * wrote them, while they are in its cache (the explanations' weighted sums
 * of path-point gradients). drain runs on the workers' threads, each on its
 * own rows, concurrently: rows that feed one sum must be left to the caller
 * unless one worker drains them all. GB_EINVAL for a NULL drain or din;
 * else as gb_model_backward_layers. */
int gb_model_backward_layers_drain(gb_model_t *model, int first, int end, const float *dout,
                                   int batch, float *din, bool accumulate_grads,
                                   gb_model_rows_fn drain, void *arg,
                                   gb_error_t *err) GB_MUST_CHECK;

/* One training step without the optimiser: zeroes the gradients, runs forward,
 * the loss (mean over the batch) and backward, so gb_model_grads holds the
 * gradient of the mean loss. *loss receives the mean loss; `logits` (may be
 * NULL) receives the outputs. */
int gb_model_train_step(gb_model_t *model, const float *x, const gb_target_t *target, int batch,
                        double *loss, float *logits, gb_error_t *err) GB_MUST_CHECK;

/* Makes later forward passes copy layer `layer`'s output (numbered as in the
 * spec) into out, and later backward passes copy the gradient arriving at
 * that output into grad; each is batch x the layer's output size floats,
 * the caller's, and may be NULL. layer < 0 stops capturing. The buffers must
 * stay valid while capturing and hold the planned batch. A relu that runs
 * reordered after its max-pool cannot be captured (GB_EINVAL). For
 * explanations (Grad-CAM reads the last conv layer's maps and gradients). */
int gb_model_capture(gb_model_t *model, int layer, float *out, float *grad, gb_error_t *err)
    GB_MUST_CHECK;

/* Per-sample output shape of layer `layer` (spec numbering); rank 0 when out
 * of range or when the layer runs reordered (a relu after its max-pool). */
gb_shape_t gb_model_layer_output_shape(const gb_model_t *model, int layer);

/* Accessors. Buffers are owned by the model and live as long as it does. */
size_t gb_model_param_count(const gb_model_t *model);
float *gb_model_params(gb_model_t *model);
float *gb_model_grads(gb_model_t *model);
const gb_spec_t *gb_model_spec(const gb_model_t *model);
gb_shape_t gb_model_input_shape(const gb_model_t *model);
gb_shape_t gb_model_output_shape(const gb_model_t *model);
int gb_model_max_batch(const gb_model_t *model);
int gb_model_threads(const gb_model_t *model);

/* Forward FLOPs per sample (multiply-adds count 2), for throughput reports. */
double gb_model_flops_per_sample(const gb_model_t *model);

/* Offset and length of layer i's parameters in the flat buffer, and its kind;
 * returns GB_EINVAL for i out of range. Lets tests and the model file map
 * PyTorch tensors onto the flat vector. */
int gb_model_layer_info(const gb_model_t *model, int i, gb_layer_kind_t *kind, size_t *param_off,
                        size_t *param_len);
int gb_model_layer_count(const gb_model_t *model);

#endif
