/* The explainer's insides, shared by the files of common/explain that
 * implement the methods (not public API: use attribution.h).
 *
 *   attribution.c  configuration, construction, dispatch
 *   gradients.c    the point stream behind ig, saliency, gradxinput and
 *                  smoothgrad: (sample, path point) rows packed into engine
 *                  batches, per-sample double accumulators, doubling
 *   gradcam.c      Grad-CAM from a captured conv layer
 *   occlusion.c    occlusion windows, forward passes only
 *   quadrature.c   gb_ig_rule_points
 *
 * Every buffer below is allocated by gb_explainer_new (the *_plan functions)
 * and freed by gb_explainer_destroy; gb_explain only fills them. */
#ifndef GB_EXPLAIN_EXPLAINER_H
#define GB_EXPLAIN_EXPLAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "explain/attribution.h"

/* One sample (or one noisy copy of it) being explained by the point stream. */
typedef struct {
    int64_t v;      /* virtual sample: sample * copies + copy */
    int level;      /* quadrature level: steps << level points */
    int rows;       /* rows of the current round: points, plus the f(x) row */
    int fx_row;     /* 1 when row 0 of the round is a plain f(x) row */
    int issued;     /* rows of the round put into batches so far */
    int done;       /* rows of the round whose results are in */
    int target;     /* output index explained */
    int have_fx;    /* 1 once fx is known */
    double fx;      /* f(x) (IG) */
    const float *x; /* the input: the caller's row or this slot's noisy copy */
} gb_explain_slot_t;

struct gb_explainer {
    gb_model_t *model;        /* borrowed */
    gb_explain_cfg_t cfg;     /* resolved configuration; cfg.baseline -> base or NULL */
    gb_explain_method_t kind; /* the method the point stream runs per copy (not smoothgrad) */
    int copies;               /* noisy copies per sample (1 unless smoothgrad with sigma > 0) */
    gb_shape_t in_shape;      /* per-sample input shape */
    gb_shape_t attr_shape;    /* per-sample attribution shape */
    size_t in_size;           /* floats per input sample */
    size_t out_size;          /* model outputs per sample */
    size_t attr_size;         /* floats per attribution map */
    int batch;                /* the model's planned batch: rows per engine call */
    float *base;              /* baseline (in_size floats; zeros when none was given) */
    bool zero_base;           /* base is all zeros (cfg.baseline NULL) */
    float *base_logits;       /* f(baseline), out_size floats, per gb_explain call */
    /* Engine batch buffers. */
    float *xb;     /* batch x in_size: a batch's inputs */
    float *logits; /* batch x out_size: its outputs */
    float *dout;   /* batch x out_size: one-hot seeds */
    float *dx;     /* batch x in_size: input gradients */
    /* Point stream (ig, saliency, gradxinput, smoothgrad). */
    int levels;               /* quadrature tables: 1 + max_doublings (1 for plain gradients) */
    int *level_n;             /* points of each level */
    double **alpha;           /* per level: level_n[l] points in [0, 1] */
    double **weight;          /* per level: their weights (sum 1) */
    bool *level_has_one;      /* per level: the last point is alpha = 1 (gives f(x)) */
    int n_slots;              /* slots: the planned batch */
    gb_explain_slot_t *slots; /* n_slots */
    double *acc;              /* n_slots x acc_size: weighted gradient sums */
    size_t acc_size;          /* floats per slot of acc: h_size when affine, else in_size */
    /* IG through an affine first layer (conv or dense, with layers after it).
     * Layer 0 runs once per sample: a path point's input to layer 1 is
     * h_base + alpha (h_x - h_base), and the weighted gradients are summed
     * at layer 0's output, then taken through layer 0 once per sample. */
    bool affine;      /* the point rows enter at layer 1 */
    size_t h_size;    /* floats per sample of layer 0's output (affine) */
    float *h_base;    /* h_size: layer 0's output for the baseline */
    float *h_x;       /* n_slots x h_size: layer 0's output for each slot's input */
    float *hb;        /* batch x h_size: a batch's rows at layer 1's input */
    float *dh;        /* batch x h_size: their gradients, then finishing slots' sums */
    int *started;     /* batch: slots started while assembling the current batch */
    int n_started;    /* entries in started */
    double *grad;     /* in_size: a finishing slot's input gradient sum (affine) */
    float *noisy;             /* n_slots x in_size: noisy copies (smoothgrad), else NULL */
    int *queue;               /* ring of n_slots slot indices with rows left to issue */
    int *free_slots;          /* stack of unused slot indices */
    int *row_slot;            /* batch: slot of each row */
    int *row_point;           /* batch: point of each row, -1 for an f(x) row */
    int *run_first, *run_end; /* batch: the rows [first, end) of the row's slot in this batch */
    unsigned char *row_drained; /* batch: 1 when a worker added the row's gradient (s_drain_rows) */
    int *touched;             /* batch: slots with rows in the batch, in row order */
    float *map;               /* attr_size: one finished map */
    double *sg_sum;           /* attr_size: smoothgrad's running sum over copies */
    /* Grad-CAM. */
    int cam_layer;        /* spec index of the conv layer */
    int cam_channels;     /* its output channels K */
    size_t cam_positions; /* its H' x W' */
    float *cap_out;       /* batch x K x H' x W': the layer's output */
    float *cap_grad;      /* batch x K x H' x W': the gradient arriving at it */
    /* Occlusion, on the input viewed as (C, H, W) with windows kh x kw. */
    int occ_c, occ_h, occ_w; /* the view */
    int occ_kh, occ_kw;      /* window */
    int occ_sh, occ_sw;      /* strides */
    int occ_nh, occ_nw;      /* windows along H and W */
    int *occ_count;          /* H x W: windows covering each position */
    double *occ_sum;         /* batch x H x W: sums of f over covering windows, per slot */
    double *occ_fx;          /* batch: f(x) per slot */
};

/* Plans and runs each family; plan allocates into e (e is freed by the
 * caller on failure), run fills the outputs as gb_explain documents. */
int gb_explain_gradients_plan(gb_explainer_t *e, gb_error_t *err);
int gb_explain_gradients_run(gb_explainer_t *e, const float *x, const int32_t *target, int n,
                             float *attr, double *completeness, int *steps_used, gb_error_t *err);
int gb_explain_gradcam_plan(gb_explainer_t *e, gb_error_t *err);
int gb_explain_gradcam_run(gb_explainer_t *e, const float *x, const int32_t *target, int n,
                           float *attr, gb_error_t *err);
int gb_explain_occlusion_plan(gb_explainer_t *e, gb_error_t *err);
int gb_explain_occlusion_run(gb_explainer_t *e, const float *x, const int32_t *target, int n,
                             float *attr, int *steps_used, gb_error_t *err);

/* The output explained for sample i: target[i], or 0 without targets. */
static inline int gb_explain_target(const int32_t *target, int i)
{
    return target ? (int)target[i] : 0;
}

#endif
