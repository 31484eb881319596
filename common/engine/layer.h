/* The layer interface inside the engine (not public API).
 *
 * Each layer kind is one const table of functions (Darknet's layer files,
 * with KANN's flat parameter collation): plan shapes and sizes, initialise
 * parameters, forward, backward. Layers are coarse with hand-written
 * backward passes; there is no autodiff graph.
 *
 * Conventions: gradients are true gradients; backward ADDS parameter
 * gradients into pass->grads (when not NULL) and OVERWRITES dx (when not
 * NULL: the first layer's dx is skipped). Nothing allocates in forward or
 * backward: per-sample caches and scratch are planned by the model. */
#ifndef GB_ENGINE_LAYER_H
#define GB_ENGINE_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/shape.h"
#include "engine/spec.h"
#include "util/error.h"
#include "util/rng.h"

typedef struct gb_layer gb_layer_t;

/* Largest per-sample output, cache or unrolled input of one layer, in floats
 * (1 GiB): sizes from a spec are checked against it before any int
 * arithmetic or allocation uses them. */
#define GB_LAYER_MAX_FLOATS ((int64_t)1 << 28)

/* Everything a layer needs for one pass over a (sub-)batch. */
typedef struct {
    int batch;            /* samples in this pass */
    int sample0;          /* index of the first one in the whole batch (dropout seeds) */
    int train;            /* 1 in training mode (dropout active) */
    uint64_t seed;        /* per-step seed for stochastic layers */
    const float *params;  /* the model's flat parameters */
    float *grads;         /* where parameter gradients go, or NULL for none */
    float *work;          /* scratch of at least work_floats(layer, batch) */
    int full_cache;       /* forward: a backward with parameter gradients follows (a train
                             step), so keep in the cache everything it reads; 0: a plain
                             forward, whose layers may keep less. Backward: what the
                             forward was told (conv2d unrolls its input again if needed) */
} gb_pass_t;

typedef struct {
    /* Sets l->out, l->param_len, l->cache_per_sample from l->in and l->cfg;
     * refuses shapes that do not fit with a message naming the spec line. */
    int (*plan)(gb_layer_t *l, gb_error_t *err);
    /* PyTorch's default initialisation of this layer's parameters. */
    void (*init)(const gb_layer_t *l, float *params, gb_rng_t *rng);
    /* Scratch floats needed for a pass over `batch` samples. */
    size_t (*work_floats)(const gb_layer_t *l, int batch);
    /* y = f(x) for pass->batch samples; may fill cache (cache_per_sample
     * floats per sample) for backward. */
    void (*forward)(const gb_layer_t *l, const gb_pass_t *pass, float *cache, const float *x,
                    float *y);
    /* Given x, y, cache of the matching forward and dy: grads += dL/dparams,
     * dx = dL/dx (dx may be NULL). */
    void (*backward)(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                     const float *x, const float *y, const float *dy, float *dx);
    /* Forward multiply-adds x 2 per sample. */
    double (*flops)(const gb_layer_t *l);
    /* Optional, for a first layer that reads more than floats (embedding's
     * token ids): refuses an input batch it cannot take, naming the sample. */
    int (*check_input)(const gb_layer_t *l, const float *x, int batch, gb_error_t *err);
} gb_layer_ops_t;

struct gb_layer {
    const gb_layer_ops_t *ops; /* the kind's functions */
    gb_layer_cfg_t cfg;        /* hyper-parameters from the spec line */
    gb_shape_t in, out;        /* per-sample shapes */
    size_t param_off;          /* offset of this layer's parameters in the flat buffer */
    size_t param_len;          /* number of parameters */
    size_t cache_per_sample;   /* floats of cache per sample */
    int spec_index;            /* index of this layer's line among the spec's layers */
};

/* The table of a kind; NULL for kinds not implemented. */
const gb_layer_ops_t *gb_layer_ops(gb_layer_kind_t kind);

/* Tables of each kind, defined in their own files. */
extern const gb_layer_ops_t gb_dense_ops;
extern const gb_layer_ops_t gb_conv2d_ops;
extern const gb_layer_ops_t gb_maxpool2d_ops;
extern const gb_layer_ops_t gb_avgpool2d_ops;
extern const gb_layer_ops_t gb_flatten_ops;
extern const gb_layer_ops_t gb_relu_ops;
extern const gb_layer_ops_t gb_tanh_ops;
extern const gb_layer_ops_t gb_sigmoid_ops;
extern const gb_layer_ops_t gb_dropout_ops;
extern const gb_layer_ops_t gb_lstm_ops;
extern const gb_layer_ops_t gb_gru_ops;
extern const gb_layer_ops_t gb_embedding_ops;

/* Shared helpers for layers. */
/* Fills n floats uniformly in [-bound, bound). */
void gb_layer_fill_uniform(float *p, size_t n, float bound, gb_rng_t *rng);
/* Sum of n floats in 8 interleaved partial sums (vectorises; the order is
 * fixed, so the result is deterministic). */
float gb_layer_sum(const float *x, size_t n);
/* Requires a sequence-shaped (T, F) input; error names the spec line. */
int gb_layer_require_sequence(const gb_layer_t *l, gb_error_t *err);
/* Plans a recurrent layer with `gates` gate blocks (lstm 4, gru 3) on a
 * (T, F) input: output (T, H) with `sequence`, else (H); parameters W_ih,
 * W_hh, b_ih, b_hh in PyTorch's layout; cache_per_sample as given. */
int gb_layer_plan_recurrent(gb_layer_t *l, int gates, int64_t cache_per_sample, gb_error_t *err);
/* Where a recurrent layer's four parameter blocks (PyTorch's layout, `gates`
 * gate blocks of H rows) sit in the model's flat parameter buffer, and so in
 * its gradient buffer: offsets from the buffer's start. */
typedef struct {
    size_t w_ih, w_hh, b_ih, b_hh;
} gb_recurrent_offsets_t;
gb_recurrent_offsets_t gb_layer_recurrent_offsets(const gb_layer_t *l, int gates);
/* A recurrent layer's input gradient: dX[T*B x F] = dG[T*B x G*H] . W_ih
 * (time-major, into the scratch dX), then dx = its batch-major copy. */
void gb_layer_recurrent_dx(const float *dG, const float *w_ih, int B, int T, int F, int GH,
                           float *dX, float *dx);
/* Writes a recurrent layer's output from its time-major states h (slot 0 the
 * initial state, then T steps of B x H): every step with `sequence`, else the
 * last. */
void gb_layer_write_recurrent_output(const gb_layer_t *l, const float *h, float *y, int B);
/* Adds step t's output gradient to dh (B x H) in backward: every step's
 * with `sequence`, else only the last step's (dy is then B x H). */
void gb_layer_add_step_gradient(const gb_layer_t *l, const float *dy, float *dh, int B, int t);
/* (B, T, F) batch-major <-> (T, B, F) time-major copies. */
void gb_layer_to_time_major(const float *x, float *xt, int B, int T, int F);
void gb_layer_from_time_major(const float *xt, float *x, int B, int T, int F);
/* db[j] += sum over rows of m[r][j], m rows x cols. */
void gb_layer_add_column_sums(const float *m, size_t rows, int cols, float *db);
/* Requires an image-shaped (C, H, W) input; error names the spec line. */
int gb_layer_require_image(const gb_layer_t *l, gb_error_t *err);

#endif
