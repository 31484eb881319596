/* The robust aggregation rules on a matrix of updates: coordinate-wise
 * median, trimmed mean, Krum and multi-Krum (what each computes, and why the
 * result does not depend on the order updates arrived in, is aggregate.h's
 * file comment). The aggregator (aggregate.c) keeps a round's updates and
 * calls these at finish; they need only the parsed spec (agg_spec.h) and
 * the exact sums (exact_sum.h), never the aggregator.
 *
 * Ownership: every buffer is the caller's; nothing is allocated or kept. */
#ifndef GB_COORDINATOR_AGGREGATE_ROBUST_H
#define GB_COORDINATOR_AGGREGATE_ROBUST_H

#include <stddef.h>
#include <stdint.h>

#include "agg_spec.h"
#include "util/error.h"

/* Bytes of workspace gb_robust_aggregate needs for n updates under rule
 * (0 for fedavg); SIZE_MAX if that does not fit in a size_t. */
size_t gb_robust_work_bytes(gb_agg_rule_t rule, size_t n);

/* Applies a robust rule (median, trimmed_mean, krum, multi_krum) to n updates
 * of p floats, rows[i * p + j] (finite, as add() guarantees), weights[i] in
 * 1..GB_EXACT_SUM_MAX_WEIGHT totalling at most GB_EXACT_SUM_MAX_WEIGHT, writing p floats
 * into out. work is gb_robust_work_bytes(rule, n) bytes, 8-byte aligned.
 * For krum and multi_krum, the indices of the chosen rows (best first) go
 * into selected (at least spec->m entries) and their count into *n_selected;
 * both may be NULL for the other rules. Refuses (GB_EINVAL) fedavg, n or p
 * of 0, and n below gb_agg_spec_min_updates; out is untouched then. */
int gb_robust_aggregate(const gb_agg_spec_t *spec, const float *rows, const uint64_t *weights,
                        size_t n, size_t p, float *out, size_t *selected, size_t *n_selected,
                        void *work, gb_error_t *err) GB_MUST_CHECK;

#endif
