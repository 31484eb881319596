/* Aggregator spec strings: the names of the coordinator's aggregation rules
 * and their parameters ("fedavg", "median", "trimmed_mean:BETA", "krum:F",
 * "multi_krum:F:M"; what each rule does is aggregate.h's file comment),
 * parsed, printed in canonical form, and the fewest updates each needs. The
 * aggregator (aggregate.h), the robust rules (aggregate_robust.h), serve's
 * flags and the checkpoint reader all read specs here, so none of them
 * needs another to know what a spec means.
 *
 * Ownership: gb_agg_spec_t is a plain value; nothing here allocates or keeps
 * a pointer to the caller's memory. */
#ifndef GB_COORDINATOR_AGG_SPEC_H
#define GB_COORDINATOR_AGG_SPEC_H

#include <stddef.h>

#include "util/error.h"

/* Largest max_clients an aggregator may be made with, and the largest F and
 * M a spec may name. */
#define GB_AGG_MAX_CLIENTS ((size_t)100000)
/* Longest spec string accepted. */
#define GB_AGG_SPEC_MAX 64

typedef enum {
    GB_AGG_FEDAVG,
    GB_AGG_MEDIAN,
    GB_AGG_TRIMMED_MEAN,
    GB_AGG_KRUM,
    GB_AGG_MULTI_KRUM,
} gb_agg_rule_t;

/* A parsed spec string. */
typedef struct {
    gb_agg_rule_t rule; /* which rule */
    double beta;        /* trimmed_mean: fraction cut from each side, [0, 0.5) */
    size_t f;           /* krum, multi_krum: assumed Byzantine clients */
    size_t m;           /* multi_krum: updates averaged (>= 1); krum: 1 */
} gb_agg_spec_t;

/* Parses a spec string ("fedavg", "median", "trimmed_mean:0.1", "krum:2",
 * "multi_krum:2:5") into *out. A bad spec is GB_EINVAL with a message naming
 * what was wrong ("trimmed_mean: beta 0.7 must be in [0, 0.5)"); *out is
 * unchanged then. F and M are decimal integers up to GB_AGG_MAX_CLIENTS;
 * BETA is a decimal number. No spaces anywhere. */
int gb_agg_spec_parse(const char *spec, gb_agg_spec_t *out, gb_error_t *err) GB_MUST_CHECK;

/* The canonical spec string of a parsed spec into buf (NUL-terminated,
 * truncated to cap): "trimmed_mean:0.1" with BETA in the fewest digits that
 * read back to the same double. Returns the length it needed (snprintf's
 * convention). */
size_t gb_agg_spec_format(const gb_agg_spec_t *spec, char *buf, size_t cap);

/* The fewest updates a round needs for the rule to be defined: 1, or
 * 2F + 3 for krum, max(2F + 3, M + F) for multi_krum. */
size_t gb_agg_spec_min_updates(const gb_agg_spec_t *spec);

#endif
