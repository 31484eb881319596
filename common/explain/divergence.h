/* How far one explanation summary lies from another (a client's from the
 * aggregate): three measures with fixed ranges, so a coordinator can put
 * thresholds on them and compare clients.
 *
 *   cosine distance  1 - cos(a, b) of the mean signed maps, in [0, 2]:
 *                    0 same direction, 1 unrelated, 2 opposite. Two zero
 *                    maps are at distance 0, a zero and a non-zero one at 1.
 *   Jensen-Shannon   of the attribution-mass distributions p = imp_a /
 *                    sum(imp_a), q likewise (imp = mean |attribution|), in
 *                    bits, so in [0, 1]: 0 identical, 1 disjoint support. A
 *                    map with no mass counts as the uniform distribution.
 *   top-k overlap    |topk(imp_a) & topk(imp_b)| / k, in [0, 1]: 1 the same k
 *                    most important cells. Ties go to the lower index.
 *
 * For one class the vectors are that class's maps. Over all classes
 * (GB_SUMMARY_ALL) they are the per-class maps of the classes both summaries
 * hold, laid end to end: every class weighs by its mean map, not by how many
 * samples it has, so a client whose class mix differs from the federation's
 * (non-IID data) is not called divergent for that alone.
 *
 * The vector functions are exposed too, for maps that come from elsewhere. */
#ifndef GB_EXPLAIN_DIVERGENCE_H
#define GB_EXPLAIN_DIVERGENCE_H

#include <stddef.h>

#include "explain/summary.h"
#include "util/error.h"

typedef struct {
    double cosine_distance; /* [0, 2] */
    double js_divergence;   /* [0, 1] (base-2 logarithms) */
    double topk_overlap;    /* [0, 1] */
    int k;                  /* the k used: min(k asked, cells compared) */
    int classes;            /* classes compared (1 for one class) */
} gb_divergence_t;

/* The three measures between a and b for class cls (or GB_SUMMARY_ALL), with
 * k top cells (k >= 1; clamped to the cells compared). a and b must have the
 * same shape and class count (GB_ESHAPE, GB_EINVAL); their clips may differ.
 * A class empty in either summary, or no class held by both, is GB_EINVAL.
 * Allocates scratch space (GB_ENOMEM). */
int gb_summary_divergence(const gb_summary_t *a, const gb_summary_t *b, int cls, int k,
                          gb_divergence_t *out, gb_error_t *err) GB_MUST_CHECK;

/* 1 - cos(a, b) over n doubles, in [0, 2] (the conventions above). */
double gb_divergence_cosine(const double *a, const double *b, size_t n);

/* Jensen-Shannon divergence in bits of the distributions |a| / sum|a| and
 * |b| / sum|b| over n cells, in [0, 1]; a vector of zeros is uniform. */
double gb_divergence_js(const double *a, const double *b, size_t n);

/* Share of the k largest cells of a that are among the k largest of b (ties
 * to the lower index), in [0, 1]; 1 <= k <= n. Allocates 2n indices; returns
 * a negative gb_err (GB_ENOMEM, GB_EINVAL) on failure, else 0 with *overlap
 * set. */
int gb_divergence_topk(const double *a, const double *b, size_t n, size_t k,
                       double *overlap) GB_MUST_CHECK;

#endif
