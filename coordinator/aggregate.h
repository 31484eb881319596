/* Aggregators: how the coordinator turns one round's client updates into the
 * aggregated delta that moves the global model (DESIGN.md, Coordinator).
 *
 * An update is a client's new parameters minus the round's global
 * parameters, param_count float32 values, with its num_samples (the FedAvg
 * weight, >= 1). The rules, named by the same spec strings the Publication's
 * `aggregator` field shows:
 *   fedavg               the sample-weighted mean (McMahan et al. 2017);
 *   median               the coordinate-wise median, unweighted;
 *   trimmed_mean:BETA    per coordinate, drop the floor(BETA * n) smallest and
 *                        largest values and average the rest, unweighted
 *                        (Yin et al. 2018); 0 <= BETA < 0.5;
 *   krum:F               the one update whose summed squared distance to its
 *                        n - F - 2 nearest others is least, for F assumed
 *                        Byzantine clients (Blanchard et al. 2017); n > 2F + 2;
 *   multi_krum:F:M       the sample-weighted mean of the M best-scored updates;
 *                        n > 2F + 2 and n >= M + F.
 *
 * Life of a round: gb_aggregator_begin(round, param_count), then
 * gb_aggregator_add for every accepted update, then gb_aggregator_finish,
 * which writes the aggregated delta. The caller applies it to the global
 * parameters, directly (x += delta, plain FedAvg) or through a server
 * optimiser (server_optim.h).
 *
 * Determinism. A federation re-run with the same seed must give the same
 * model whatever order the network delivered the updates in, so every rule's
 * result depends only on the multiset of (update, num_samples) pairs, bit for
 * bit:
 *  - sums are exact: each w * v is added into a 320-bit fixed-point integer
 *    (gb_exact_sum_t, exact_sum.h) that holds every finite float32 times any weight up to
 *    GB_AGG_MAX_WEIGHT without rounding or overflow, so FedAvg, the trimmed
 *    mean and multi-Krum's mean are the exact means, correctly rounded to
 *    float32 (round to nearest, ties to even) once, at the end;
 *  - median and trimmed mean order values by their bits' total order (-0
 *    before +0), so even the sign of a zero does not depend on arrival order;
 *  - Krum's distances are summed over coordinates in index order (the same
 *    for every pair whatever the arrival order), its neighbour distances are
 *    summed in sorted order, and ties between equal scores are broken by the
 *    updates' contents, then weights, never by arrival order.
 *
 * Memory. FedAvg streams: the same exact sums, split so that a typical
 * update touches 16 bytes per parameter (aggregate.c explains how), 48
 * bytes per parameter allocated by gb_aggregator_begin whatever the number
 * of clients, of which 16 are resident unless values below 2^-62 or of 4
 * or more arrive, and for models of 2^16 parameters or more 12 bytes per
 * parameter more for three updates kept to be added together with the next
 * one (a copy, or the caller's buffer with gb_aggregator_add_take; finish
 * adds what is kept); add() never allocates. The
 * robust rules need every update of the round at once:
 * they keep them (n x param_count floats) and a workspace (Krum: n x n
 * distances), grown by add() as updates arrive (doubling, never past
 * max_clients) and reused by later rounds, so memory follows the updates
 * actually received rather than the maximum.
 *
 * Refusals. add() refuses, and then changes nothing (the round's result is as
 * if the call had not been made): a wrong length (GB_ESHAPE), a NaN or
 * infinity anywhere (GB_ERANGE, naming the index), num_samples 0 (GB_EINVAL)
 * or one that would take the round's weight past GB_AGG_MAX_WEIGHT
 * (GB_ERANGE), more than max_clients updates (GB_ERANGE), no memory to keep
 * it (robust rules, GB_ENOMEM), and a call outside an open round
 * (GB_EINVAL). Refusals of the update's content are logged as warnings.
 *
 * Threads. FedAvg's passes (adding an update, copying one aside, the
 * finish) cost about 20 vector operations per 8 values, so one core adds at
 * about half a memory stream's speed. gb_aggregator_set_threads gives the
 * aggregator a pool of its own; every pass over a model of 32K parameters
 * or more is then split into ranges of whole 4096-parameter blocks, one a
 * thread, which share nothing (each parameter's sums are its own), so the
 * result is bit for bit the same at any thread count.
 *
 * Ownership: gb_aggregator_new returns an aggregator the caller owns and
 * frees with gb_aggregator_destroy (which joins its threads). Deltas passed
 * to add are only read and copied; nothing keeps a pointer to the caller's
 * memory. Not thread-safe: one thread drives an aggregator. */
#ifndef GB_COORDINATOR_AGGREGATE_H
#define GB_COORDINATOR_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "agg_spec.h"
#include "exact_sum.h"
#include "util/error.h"

/* Largest total num_samples of one round (2^40, about 1.1e12 samples): the
 * bound that keeps every exact sum within gb_exact_sum_t. */
#define GB_AGG_MAX_WEIGHT GB_EXACT_SUM_MAX_WEIGHT
/* Largest param_count of a round (2^28 floats: 1 GiB per kept update). */
#define GB_AGG_MAX_PARAMS ((size_t)1 << 28)
/* Most threads one aggregator splits its passes over. */
#define GB_AGG_MAX_THREADS 8
/* ---- the aggregator ------------------------------------------------------ */

typedef struct gb_aggregator gb_aggregator_t;

/* A new aggregator for the rule `spec`, taking at most max_clients updates a
 * round (1..GB_AGG_MAX_CLIENTS, and at least the rule's minimum). No round
 * is open. Returns NULL and fills err on a bad spec or max_clients
 * (GB_EINVAL) or no memory (GB_ENOMEM). */
gb_aggregator_t *gb_aggregator_new(const char *spec, size_t max_clients, gb_error_t *err);

/* Frees the aggregator; sets *agg to NULL; NULL-safe. */
void gb_aggregator_destroy(gb_aggregator_t **agg);

/* Splits FedAvg's passes over `threads` threads (1..GB_AGG_MAX_THREADS;
 * 1, the default, runs them on the caller's thread alone): starts
 * threads - 1 workers owned by the aggregator, which sleep between passes.
 * The other rules accept any valid count and start none (their work is
 * not split).
 * Refused (GB_EINVAL) while a round holds updates; on any failure the
 * aggregator keeps its old threads. */
int gb_aggregator_set_threads(gb_aggregator_t *agg, int threads, gb_error_t *err) GB_MUST_CHECK;

/* Threads the passes are split over (1: the caller's alone; always 1 for
 * rules other than fedavg). */
int gb_aggregator_threads(const gb_aggregator_t *agg);

/* Opens round `round` for updates of param_count floats
 * (1..GB_AGG_MAX_PARAMS), dropping any updates of a round still open (an
 * abandoned round may be begun again under the same number). FedAvg
 * allocates its accumulator here when param_count outgrows it. On failure
 * (GB_EINVAL, GB_ENOMEM) the aggregator is unchanged, including any round
 * still open. */
int gb_aggregator_begin(gb_aggregator_t *agg, uint64_t round, size_t param_count,
                        gb_error_t *err) GB_MUST_CHECK;

/* Adds one client's update: delta[0..param_count) with weight num_samples.
 * Refuses what the file comment lists, changing nothing. delta is only read. */
int gb_aggregator_add(gb_aggregator_t *agg, const float *delta, size_t param_count,
                      uint64_t num_samples, gb_error_t *err) GB_MUST_CHECK;

/* gb_aggregator_add for a delta the caller hands over: *delta holds
 * param_count floats in a buffer from gb_malloc (util/alloc.h). FedAvg adds
 * updates of large models (2^16 parameters or more) several at a time (4,
 * or 8 with the AVX2 kernel) in one pass over its sums; where gb_aggregator_add copies such an update
 * to wait for that pass, this keeps the caller's buffer itself and puts in
 * *delta one of the same size that the caller owns from then on (free it
 * with gb_free), holding zeros or the values of an update given earlier.
 * Otherwise it adds as gb_aggregator_add does and *delta is unchanged. The
 * aggregator only reads a buffer it keeps, so the caller may still read the
 * delta it gave until its next call on this aggregator. Refuses as
 * gb_aggregator_add does (GB_EINVAL too for a NULL delta), changing nothing:
 * *delta stays the caller's. */
int gb_aggregator_add_take(gb_aggregator_t *agg, float **delta, size_t param_count,
                           uint64_t num_samples, gb_error_t *err) GB_MUST_CHECK;

/* gb_aggregator_add_take for a delta the caller has found finite (the
 * federation has: its L2 norm, summed in double, is finite only when every
 * value is), so that a delta FedAvg keeps is not read once more to check
 * it: for a large model that read is a third of the memory traffic of an
 * add. A delta added at once is still checked as it is added and refused
 * as gb_aggregator_add_take refuses. Should a kept delta hold a NaN or an
 * infinity after all, the pass that adds it finds it before adding
 * anything, drops that update (an error in the log; the round's update
 * count and weight lose it) and adds the others: the sums stay exact. */
int gb_aggregator_add_take_finite(gb_aggregator_t *agg, float **delta, size_t param_count,
                                  uint64_t num_samples, gb_error_t *err) GB_MUST_CHECK;

/* Writes the round's aggregated delta into out[0..param_count) and closes
 * the round (a later add or finish is refused until the next begin).
 * Refuses, leaving the round open and out untouched: no round open or a
 * wrong param_count (GB_EINVAL), no update, or fewer than the rule needs
 * (GB_EINVAL, naming both counts). */
int gb_aggregator_finish(gb_aggregator_t *agg, float *out, size_t param_count,
                         gb_error_t *err) GB_MUST_CHECK;

/* The canonical spec string (see gb_agg_spec_format), for the Publication's
 * aggregator field; borrowed, valid until the aggregator is destroyed. */
const char *gb_aggregator_name(const gb_aggregator_t *agg);

/* The parsed spec the aggregator was made from. */
gb_agg_spec_t gb_aggregator_spec(const gb_aggregator_t *agg);

/* max_clients given to new; the fewest updates finish accepts. */
size_t gb_aggregator_max_clients(const gb_aggregator_t *agg);
size_t gb_aggregator_min_updates(const gb_aggregator_t *agg);

/* The current (or last) round and its param_count; 0 and 0 before any begin. */
uint64_t gb_aggregator_round(const gb_aggregator_t *agg);
size_t gb_aggregator_param_count(const gb_aggregator_t *agg);

/* True while a round is open (begun, not yet finished). */
int gb_aggregator_is_open(const gb_aggregator_t *agg);

/* Updates accepted and their total num_samples in the current round. */
size_t gb_aggregator_updates(const gb_aggregator_t *agg);
uint64_t gb_aggregator_weight(const gb_aggregator_t *agg);

/* After a successful finish of a krum or multi_krum round: how many updates
 * were chosen, and (if idx is not NULL) the first min(count, cap) of their
 * indices in add order, best score first. 0 for the other rules and before a
 * finish. Lets the coordinator log which clients Krum trusted. */
size_t gb_aggregator_selected(const gb_aggregator_t *agg, size_t *idx, size_t cap);

/* The kernel FedAvg's add uses on this CPU: "avx512" (AVX-512 F, DQ and
 * VL), "avx2" (with FMA: the binned sums of fedavg_bins.h) or "portable";
 * a static string. All give the same bits. */
const char *gb_agg_kernel(void);

/* Test and benchmark hook: every aggregator uses kernel name ("portable",
 * "avx2", "avx512") from now on; NULL lets the CPU choose again. Returns 0,
 * or GB_EINVAL with err filled for a name it does not know or a kernel this
 * CPU cannot run. Not thread-safe. */
int gb_agg_kernel_force(const char *name, gb_error_t *err) GB_MUST_CHECK;

#endif
