/* Explanation summaries: what a client tells the federation about how the
 * model explains itself on its private data, without any per-sample map
 * leaving the machine.
 *
 * A summary holds, per class c and per attribution cell i, the count n_c of
 * samples added, and the sums S_c[i] = sum clip(A)[i], Q_c[i] = sum
 * clip(A)[i]^2 and U_c[i] = sum |clip(A)[i]| over the class's per-sample
 * attribution maps A. From them come the per-class mean signed map S/n, its
 * variance map Q/n - (S/n)^2 and the feature importance U/n (mean
 * |attribution|, SHAP's convention), per class or over all classes.
 *
 * Clipping. Before it is added, each per-sample map is scaled by
 * min(1, clip / ||A||_2), so its L2 norm is at most `clip` (C). One sample
 * then moves a class's sum by at most C in L2 norm, whatever its values: the
 * sensitivity bound that client-level differential privacy and robust
 * aggregation need (DP-SGD and DP-FedAvg clip in L2 for the same reason). L2
 * rather than max-abs because a max-abs bound of C still lets one sample move
 * the sum by C * sqrt(cells) in L2, and because scaling, unlike clamping each
 * cell, keeps the map's direction (its shape) intact.
 *
 * Representation: exact fixed point. A clipped value v in [-C, C] is stored
 * as the integer q = round(v / C * 2^31), |q| <= 2^31 (a resolution of
 * C * 2^-31; the rounding error is at most C * 2^-32 per cell and sample,
 * far below float32's own precision for any cell that matters to a map of
 * norm <= C). S and U are int64, Q is an unsigned 128-bit integer kept as two
 * uint64 words (hi, lo), counts are int64. Integer addition is exact, so
 * adding samples in any order gives bit-identical summaries. (Summaries are
 * not merged here: the coordinator combines the mean maps the clients send,
 * in coordinator/explain_merge.h.)
 *
 * Why nothing overflows: the total count of a summary (all classes) is capped
 * at GB_SUMMARY_MAX_COUNT = 2^31 - 1; adding beyond it is refused
 * (GB_ERANGE). Then every |S_c[i]| and U_c[i], and even their sums over all
 * classes, are at most (2^31 - 1) * 2^31 < 2^62 < 2^63, and every Q_c[i] is
 * at most (2^31 - 1) * 2^62 < 2^93 < 2^128. A summary built from the wire
 * (gb_summary_class_set) is held to the same bounds before it is accepted, so
 * a hostile peer cannot make a later addition overflow.
 *
 * The map is the attribution map of one sample,
 * whatever its shape: the input's shape, or (H', W') for Grad-CAM.
 *
 * Ownership: gb_summary_new returns a summary the caller owns and frees with
 * gb_summary_destroy. Nothing here keeps a pointer to the caller's memory.
 *
 * Not thread-safe: one summary per thread. */
#ifndef GB_EXPLAIN_SUMMARY_H
#define GB_EXPLAIN_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/shape.h"
#include "util/error.h"

/* Fixed-point fraction bits: q = round(v / clip * 2^GB_SUMMARY_FRAC_BITS). */
#define GB_SUMMARY_FRAC_BITS 31
/* Largest total sample count of one summary (all classes together). */
#define GB_SUMMARY_MAX_COUNT ((int64_t)2147483647)
/* Largest classes x cells of one summary (about 160 MiB of sums). */
#define GB_SUMMARY_MAX_CELLS ((size_t)1 << 22)
/* Largest class count. */
#define GB_SUMMARY_MAX_CLASSES 10000
/* The `cls` that means "all classes together" in the derived-value functions. */
#define GB_SUMMARY_ALL (-1)

typedef struct gb_summary gb_summary_t;

/* One class's raw sums, as they would travel (the wire form of a summary).
 * Arrays have gb_summary_cells() entries. */
typedef struct {
    int64_t count;          /* samples added to this class */
    int64_t clipped;        /* of which scaled down by the clip, <= count */
    const int64_t *sum;     /* S: sum of q */
    const int64_t *abs_sum; /* U: sum of |q| */
    const uint64_t *sq_hi;  /* Q: sum of q^2, high 64 bits */
    const uint64_t *sq_lo;  /* Q: sum of q^2, low 64 bits */
} gb_summary_class_t;

/* An empty summary for maps of `shape` (rank 1..3) and n_classes classes
 * (1..GB_SUMMARY_MAX_CLASSES; a regression task has one group), clipping each
 * map to L2 norm `clip` (finite, > 0). Refuses more than
 * GB_SUMMARY_MAX_CELLS classes x cells (GB_ERANGE). Returns NULL and fills
 * err (GB_EINVAL, GB_ERANGE, GB_ENOMEM). */
gb_summary_t *gb_summary_new(const gb_shape_t *shape, int n_classes, double clip, gb_error_t *err);

/* Frees the summary; sets *s to NULL; safe on NULL. */
void gb_summary_destroy(gb_summary_t **s);

/* Adds one sample's attribution map (gb_summary_cells() floats) to class cls:
 * clips it to L2 norm clip, quantises it and adds it. Refuses a non-finite
 * value (GB_ERANGE, naming the cell), a class outside [0, n_classes)
 * (GB_EINVAL) and a sample beyond GB_SUMMARY_MAX_COUNT (GB_ERANGE); the
 * summary is unchanged on failure. The map is only read. */
int gb_summary_add(gb_summary_t *s, const float *map, int cls, gb_error_t *err) GB_MUST_CHECK;

/* The map shape, cells per map and class count given to new. */
gb_shape_t gb_summary_shape(const gb_summary_t *s);
size_t gb_summary_cells(const gb_summary_t *s);
int gb_summary_classes(const gb_summary_t *s);

/* Samples in class cls, or in all classes for GB_SUMMARY_ALL; 0 for a class
 * out of range. */
int64_t gb_summary_count(const gb_summary_t *s, int cls);

/* Samples whose map was scaled down by the clip, in class cls or all. */
int64_t gb_summary_clipped(const gb_summary_t *s, int cls);

/* Derived maps, gb_summary_cells() doubles into out, for class cls or all
 * classes pooled (GB_SUMMARY_ALL), in the attribution's units (values of the
 * clipped maps):
 *   mean        S / n, the mean signed attribution;
 *   variance    Q / n - (S / n)^2 (>= 0), the spread over samples;
 *   importance  U / n, the mean |attribution|.
 * A class with no samples gives zeros and returns 0. A class out of range is
 * GB_EINVAL. */
int gb_summary_mean(const gb_summary_t *s, int cls, double *out, gb_error_t *err) GB_MUST_CHECK;
int gb_summary_variance(const gb_summary_t *s, int cls, double *out, gb_error_t *err) GB_MUST_CHECK;
int gb_summary_importance(const gb_summary_t *s, int cls, double *out,
                          gb_error_t *err) GB_MUST_CHECK;

/* For rank-2 maps (R x K; a sequence's T timesteps x F features): the
 * importance summed over the second axis into rows (R doubles: for a
 * sequence, importance over time) and over the first into cols (K doubles:
 * importance per feature). Each vector's total is the map's total mean
 * |attribution|. Either output may be NULL. GB_ESHAPE for other ranks. */
int gb_summary_importance_axes(const gb_summary_t *s, int cls, double *rows, double *cols,
                               gb_error_t *err) GB_MUST_CHECK;

/* Replaces class cls's sums with copies of in's (a summary received from
 * elsewhere), after checking that they could have come from
 * gb_summary_add: 0 <= clipped <= count, the summary's total count stays
 * <= GB_SUMMARY_MAX_COUNT, and per cell |S| <= U <= count * 2^31 and
 * Q <= count * 2^62. Anything else is refused with GB_ERANGE and a warning
 * naming the class and cell, and the summary is unchanged. */
int gb_summary_class_set(gb_summary_t *s, int cls, const gb_summary_class_t *in,
                         gb_error_t *err) GB_MUST_CHECK;

/* What summary.json says besides the summary itself. Strings are written
 * JSON-escaped; NULL ones are written as null. Only read, during the call. */
typedef struct {
    const char *method;             /* "ig", "saliency", ... */
    int steps;                      /* integrated-gradients steps; <= 0: null */
    const char *rule;               /* quadrature rule ("gauss", "trapezoid") or NULL */
    const char *baseline;           /* "zero", "mean", a file name, or NULL */
    const char *target;             /* "true" or "predicted" (which class is explained) */
    const char *dataset;            /* data name, or NULL */
    const char *model;              /* model file, or NULL */
    const gb_shape_t *input_shape;  /* the model's input shape, or NULL */
    bool has_completeness;          /* mean_completeness_error is meaningful */
    double mean_completeness_error; /* mean relative completeness residual (finite) */
    double mean_steps_used;         /* mean integrated-gradients steps actually used; <= 0: null */
    bool sequence;                  /* rank-2 maps are (time x features): also write
                                       importance_time and importance_features */
    bool regression;                /* the one group is the regression output, not a class */
    const char *const *class_names; /* one name per class, written as each class object's
                                       "class_name" after "class"; NULL: no such key */
} gb_summary_info_t;

/* Writes the summary as one JSON document (one line and a newline, through
 * util/json.h) into a new buffer (*out, *len bytes plus a NUL; the caller
 * frees it with gb_free):
 *   {"format": "glassbox-explanation", "version": 1, "method", "steps",
 *    "rule", "baseline", "target", "dataset", "model", "task"
 *    ("classification" or "regression"), "input_shape", "attribution_shape",
 *    "samples", "clip", "clipped", "mean_completeness_error",
 *    "mean_steps_used", "fixed_point": {"fraction_bits", "max_count"},
 *    "classes": [{"class"[, "class_name"], "count", "clipped", "mean", "variance",
 *                 "importance"[, "importance_time", "importance_features"]}],
 *    "importance"[, "importance_time", "importance_features"]}
 * Maps are flat row-major arrays of attribution_shape; a class with no
 * samples has only class, count and clipped. "importance" at the top level
 * is over all samples. Counts, shapes and indices are integers; every other
 * number is a real with 9 significant digits (so 1 is written 1.0); a NaN
 * or infinity anywhere is refused (GB_ERANGE, naming the value), never
 * written. Strings not valid UTF-8 have each bad byte written as U+FFFD. */
int gb_summary_json(const gb_summary_t *s, const gb_summary_info_t *info, char **out, size_t *len,
                    gb_error_t *err) GB_MUST_CHECK;

#endif
