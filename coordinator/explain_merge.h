/* The aggregate explanation of a round (DESIGN.md, Explanations): the
 * coordinator combines the clients' explanations, weighted by the samples
 * they trained on (below), into the Explanation it publishes, scores how far
 * each client's explanation lies from everyone else's, and writes the result
 * as JSON and PNG heatmaps.
 *
 * Life of a round, as for the aggregator (aggregate.h): gb_explain_merge_new
 * once, then per round gb_explain_merge_begin(round, method, map shape,
 * classes, cap_weight), gb_explain_merge_add(client, explanation, weight,
 * max_count) for every accepted update that carries an explanation (an
 * update without one is simply not added), and gb_explain_merge_finish,
 * which builds
 *  - the aggregate Explanation: per class, the mean of the mean maps of the
 *    clients that have the class weighted by their class weights w_c (a
 *    class no client has is left out); the feature importance as the mean
 *    of the clients' importance maps weighted by their weights w; counts
 *    (each class's and Explanation.count) the plain sums of the clients'
 *    counts, informative only: they weigh nothing; each class's `clients`
 *    the number of clients whose explanation has the class (the support its
 *    map rests on: at most max_clients and at most its count, since each
 *    such client counted at least one sample); each quality metric as
 *    the w-weighted mean over the clients that report it, metrics sorted by
 *    name;
 *  - the per-client distances, KeyValue entries sorted by client id, value a
 *    decimal number with 9 decimals: the Jensen-Shannon divergence in bits
 *    (explain/divergence.h, in [0, 1]) between the client's feature
 *    importance and the importance of all OTHER clients pooled
 *    (leave-one-out: a poisoned client cannot pull the reference towards
 *    itself, which matters most when clients are few).
 *
 * The weights, and why not the counts. A client's weight w is add()'s
 * `weight`, its Update's num_samples: its FedAvg weight, which the caller
 * has already bounded by the training samples the client joined with; no
 * more than begin's cap_weight when that is not 0. The Explanation's own
 * counts are the client's word alone: weighted by them, as before, a
 * client that sent counts near 2^40 took the whole aggregate explanation (a
 * security finding). Now the counts only split w over the client's
 * classes: class c enters with w_c = max(1, floor(w x count_c / sum of the
 * client's class counts)) (128-bit arithmetic, no overflow; integers, for
 * the exact sums; at least 1, so every class a client has counts). So the
 * aggregate is the sample-weighted mean of the clients' mean maps, and a
 * client's share of the importance is its share of the round's weights
 * (of a class's, up to the rounding of w_c), whatever counts it sends. The
 * cap bounds a client that lied about its samples at Join too: the
 * federation passes max_share x the samples the round's selected clients
 * joined with, so with max_share 0.25 no client weighs more than a quarter
 * of those samples (a bound on its weight: its share of the weights
 * actually added is larger when the others answer with fewer samples, or
 * not at all). add() also refuses counts above max_count, the
 * samples (train + test) the client joined with: no client can have
 * explained more samples than it holds, so such counts are a lie, and an
 * explanation built on a lie is left out whole.
 *
 * Why Jensen-Shannon of the feature importance. Importance (mean
 * |attribution|) says where the model looks on the client's data; a trigger
 * patch or a skewed data set moves that mass, which is what the score should
 * see. JS compares the normalised mass, so a client whose attributions are
 * merely larger overall (other input scaling, a sharper local model) is not
 * flagged; it is symmetric, bounded (a threshold means the same in every
 * round) and defined when either side has zeros, unlike Kullback-Leibler.
 * Cosine distance of non-negative maps saturates early (mass moved to a small
 * patch still leaves a large cosine) and top-k overlap is coarse and jumps
 * with ties. The class maps are not used: leave-one-out on them would need
 * every client's class maps at finish (memory clients x classes x cells).
 * The price: importance pools all of a client's classes, so a client whose
 * class mix differs strongly from the federation's (non-IID data) scores
 * somewhat higher for that alone.
 *
 * Order independence, exactly. Every map sum is an exact fixed-point sum
 * (gb_exact_sum_t of exact_sum.h, weight x value added without rounding)
 * and each mean is correctly rounded to float32 once, so the aggregate's
 * bits do not depend on the order clients were added in (a client's
 * weights depend on its own values only); the leave-one-out reference is
 * the total minus exactly what the client added (w x its importance), over
 * the total weight minus w, so neither its map nor its weight moves the
 * reference it is measured against. The quality metrics (doubles) are
 * summed in client-id order. Packed, the aggregate Explanation and the
 * distances are byte-identical for any order.
 *
 * Memory. Planned by begin: one exact sum (40 bytes) per class and cell, and
 * one per cell for the importance, with a weight and a count total per
 * class and for the importance. Kept per client, growing with the clients
 * actually added (never past max_clients): its id, its feature importance
 * (cells floats, needed for leave-one-out at finish), its weight w and its
 * quality metrics. No per-client class map is kept.
 *
 * What add() checks. The update came through gb_envelope_decode, which has
 * checked the Explanation on its own: method a known one, class indices
 * unique and below GB_ENVELOPE_MAX_CLASSES, every class with a count and a
 * tensor whose shape fits its bytes, all tensors of one shape, every float
 * finite, metric names well formed and finite. add() relies on the metric
 * names' alphabet, and checks what only the merge can know: the round's
 * method and round, the round's map shape, class indices below the round's
 * class count, weight and max_count >= 1 (the caller's values: GB_EINVAL,
 * not logged), counts >= 1 and at most max_count, the count totals within
 * GB_AGG_MAX_WEIGHT (so the published sums cannot wrap), the weight totals
 * (w for the importance, w_c per class) within GB_AGG_MAX_WEIGHT (the exact
 * sums' bound), a feature importance present (a client without one could
 * not be scored: leaving it out would let a poisoned client hide) and
 * non-negative, a metric name used twice by one client, metric values
 * within +-1e300 (so weighted means cannot overflow), at most
 * GB_ENVELOPE_MAX_METRICS distinct metric names in the round, a client id
 * that the Publication accepts
 * ([A-Za-z0-9_.-], 1..GB_ENVELOPE_MAX_NAME bytes) and has not been added
 * yet, and at most max_clients clients. Three of the decoder's checks are
 * repeated because the merge's own arithmetic rests on them and they cost
 * nothing in the passes that read the data anyway: tensor lengths (memory
 * safety), finiteness (the exact sums must never see an infinity) and
 * unique class indices (the weight bound of the exact sums); so an
 * Explanation built in memory gets the same treatment.
 * A refusal returns an error naming the field, logs a warning (API misuse:
 * no log), and changes nothing: the round ends as if the call had not been
 * made.
 *
 * Ownership: gb_explain_merge_new returns a merger the caller owns
 * (gb_explain_merge_destroy). add() only reads the Explanation and the id
 * and keeps copies (the id, the importance, w and the metrics). finish()
 * fills a gb_explain_merge_result_t whose parts the caller owns (see
 * there). Not thread-safe: one thread drives a merger. */
#ifndef GB_COORDINATOR_EXPLAIN_MERGE_H
#define GB_COORDINATOR_EXPLAIN_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/shape.h"
#include "glassbox.pb-c.h"
#include "util/error.h"

/* Largest max_clients (GB_PUBLICATION_MAX_CLIENTS of net/publication.h: the
 * most distances a Publication may carry). */
#define GB_EXPLAIN_MERGE_MAX_CLIENTS ((size_t)100000)
/* Largest classes x cells of a round (GB_SUMMARY_MAX_CELLS of
 * explain/summary.h: no client can send a bigger explanation; 160 MiB of
 * sums). */
#define GB_EXPLAIN_MERGE_MAX_CELLS ((size_t)1 << 22)
/* Largest |quality metric value| accepted. */
#define GB_EXPLAIN_MERGE_MAX_QUALITY 1e300
/* Name of the distance measure, as written in the report. */
#define GB_EXPLAIN_MERGE_MEASURE "js_divergence_bits_leave_one_out"

typedef struct gb_explain_merge gb_explain_merge_t;

/* What finish hands out. Every part is allocated piece by piece with
 * gb_malloc, exactly as protobuf-c's unpacker lays a message out, so it can
 * be freed either with gb_explain_merge_result_free or, after the caller
 * has moved the parts into a Publication (and set the fields here to NULL /
 * 0), with protobuf-c's free_unpacked and gb_wire_allocator() (net/wire.h)
 * or gb_publication_free (net/publication.h) on that Publication. */
typedef struct {
    Glassbox__Explanation *explanation; /* for Publication.explanation; owned */
    Glassbox__KeyValue **distance;      /* for Publication.explanation_distance; owned, each
                                           entry too; sorted by client id; NULL when fewer than
                                           two clients (no "others" to compare with) */
    size_t n_distance;                  /* entries in distance */
    /* Per distance entry (same order), the GB_EXPLAIN_MERGE_MOVED cells of
     * the importance map where the client's share of the importance most
     * exceeds the others' (leave-one-out, the same reference as its
     * distance), largest excess first: the evidence of where a suspect
     * client's model looks that the others' does not (a backdoor's
     * trigger patch, say). moved[k * GB_EXPLAIN_MERGE_MOVED + i] is a cell
     * index into the map (row-major), UINT32_MAX past the cells that
     * exceed at all; moved_share the excess (share minus share, in (0, 1]).
     * Owned; NULL when distance is. */
    uint32_t *moved;
    float *moved_share;
    /* Per distance entry (same order), the GB_EXPLAIN_MERGE_CLASSES classes
     * whose maps moved most for the client: its map's divergence from the
     * last finished merge's map of the class, at least twice the round's
     * median client's (class_drift.h), largest ratio first; UINT32_MAX
     * past those that do; moved_class_ratio the ratio. Owned; NULL when
     * distance is. */
    uint32_t *moved_classes;
    float *moved_class_ratio;
} gb_explain_merge_result_t;

/* Cells of evidence per client (gb_explain_merge_result_t.moved). */
#define GB_EXPLAIN_MERGE_MOVED 5
/* Classes of evidence per client (gb_explain_merge_result_t.moved_classes). */
#define GB_EXPLAIN_MERGE_CLASSES 3

/* Frees what the result still owns and zeroes it; safe on a zeroed result. */
void gb_explain_merge_result_free(gb_explain_merge_result_t *r);

/* The moved cells of client_id in r (GB_EXPLAIN_MERGE_MOVED entries each
 * in *cells and *share, borrowed from r): the number of them that exceed
 * (0 when the client has no distance in r or none of its cells exceeds),
 * found by binary search of the distances' client ids. */
size_t gb_explain_merge_moved(const gb_explain_merge_result_t *r, const char *client_id,
                              const uint32_t **cells, const float **share);

/* The moved classes of client_id in r (GB_EXPLAIN_MERGE_CLASSES entries in
 * *classes and *ratio, borrowed from r): how many stand out (0 without a
 * distance, in the first merge, or when none does). */
size_t gb_explain_merge_moved_classes(const gb_explain_merge_result_t *r, const char *client_id,
                                      const uint32_t **classes, const float **ratio);

/* A new merger taking at most max_clients explanations a round
 * (1..GB_EXPLAIN_MERGE_MAX_CLIENTS). No round is open. NULL and err on a bad
 * max_clients (GB_EINVAL) or no memory (GB_ENOMEM). */
gb_explain_merge_t *gb_explain_merge_new(size_t max_clients, gb_error_t *err);

/* Frees the merger; sets *m to NULL; NULL-safe. */
void gb_explain_merge_destroy(gb_explain_merge_t **m);

/* Opens round `round` (>= 1) for explanations by `method` (one of
 * EXPLAIN_INTEGRATED_GRADIENTS..EXPLAIN_GRAD_CAM) whose maps have
 * `map_shape`: the model's input shape, or for Grad-CAM the conv layer's
 * output (H', W') (gb_explainer_attr_shape of explain/attribution.h), rank
 * 1..3, dims >= 1; with n_classes classes (1..GB_ENVELOPE_MAX_CLASSES; a
 * regression model has one group, class 0); n_classes x cells at most
 * GB_EXPLAIN_MERGE_MAX_CELLS. cap_weight caps every client's weight in the
 * round, w = min(weight, cap_weight); 0 means no cap (so a caller that
 * computes a cap should pass at least 1). Drops anything of a round still
 * open (an abandoned round may be begun again). Allocates the sums here
 * when they outgrow those of earlier rounds. On failure (GB_EINVAL,
 * GB_ERANGE, GB_ENOMEM) the merger is unchanged, including a round still
 * open. */
int gb_explain_merge_begin(gb_explain_merge_t *m, uint64_t round, Glassbox__ExplainMethod method,
                           const gb_shape_t *map_shape, int n_classes, uint64_t cap_weight,
                           gb_error_t *err) GB_MUST_CHECK;

/* Adds client client_id's explanation x with weight `weight` (its Update's
 * num_samples, >= 1, bounded by the caller; capped by begin's cap_weight)
 * from a client that joined with max_count samples (train + test, >= 1);
 * see the top of this file for the weights and what is checked. Refusals:
 * no round open, NULL arguments, weight or max_count 0 (GB_EINVAL, not
 * logged); wrong method or round, class index out of range, a count of 0
 * with a map, a missing or negative feature importance, a repeated metric
 * name, a bad or repeated client id (GB_EINVAL); a map of another shape or
 * length (GB_ESHAPE); NaN or infinity (naming the index), a count above
 * max_count (naming the field), metric values beyond
 * +-GB_EXPLAIN_MERGE_MAX_QUALITY, count or weight totals beyond
 * GB_AGG_MAX_WEIGHT, more than max_clients clients or
 * GB_ENVELOPE_MAX_METRICS metric names (GB_ERANGE); no memory to keep it
 * (GB_ENOMEM). Nothing changes on failure. */
int gb_explain_merge_add(gb_explain_merge_t *m, const char *client_id,
                         const Glassbox__Explanation *x, uint64_t weight, uint64_t max_count,
                         gb_error_t *err) GB_MUST_CHECK;

/* Builds the round's aggregate and distances into *out (see the top of this
 * file and gb_explain_merge_result_t) and closes the round: a later add or
 * finish is refused until the next begin. Refuses (GB_EINVAL) when no round
 * is open or no client was added, and on GB_ENOMEM; then *out is zeroed and
 * the round stays open, as it was. */
int gb_explain_merge_finish(gb_explain_merge_t *m, gb_explain_merge_result_t *out,
                            gb_error_t *err) GB_MUST_CHECK;

/* The current (or last) round; 0 before any begin. */
uint64_t gb_explain_merge_round(const gb_explain_merge_t *m);

/* True while a round is open (begun, not yet finished). */
int gb_explain_merge_is_open(const gb_explain_merge_t *m);

/* Clients added in the current round. */
size_t gb_explain_merge_clients(const gb_explain_merge_t *m);

/* ---- the report (explain_report.c) ----------------------------------------
 * Writes a round's aggregate explanation for people:
 *   DIR/explanation-ROUND.json  {"format": "glassbox-aggregate-explanation",
 *     "version": 1, "round", "method" (gb_explain_method_name's spelling),
 *     "attribution_shape", "samples" (the importance count), "quality":
 *     {name: value}, "classes": [{"class", "count", "min", "max", "mean",
 *     "mean_abs", "l2", "max_abs_cell", "heatmap"}], "feature_importance":
 *     {"count", "min", "max", "sum", "values" (flat, row-major), "heatmap"},
 *     "distance": {"measure", "clients": [{"client", "distance"}]}}
 *   DIR/explanation-ROUND-class-C.png for every class in the aggregate, and
 *   DIR/explanation-ROUND-importance.png: heatmaps (explain/heatmap.h) on
 *   the diverging scale, laid out as the client's (explain/heatmap_layout.h):
 *   images (C, H, W) H x W with channels summed, Grad-CAM maps (H', W') as
 *   they are, sequences (T, F) with time along x, anything else wrapped into
 *   rows of at most GB_HEATMAP_MAX_CELLS cells. The JSON follows
 *   util/json.h (names with bad UTF-8 as U+FFFD, reals to 9 digits).
 * aggregate is any valid Explanation (finish's, or one from a decoded
 * Publication) whose round equals `round`; its tensors are checked again
 * (lengths, finiteness: GB_ESHAPE, GB_ERANGE) because they are read here.
 * distance (n_distance entries, may be NULL when 0) holds decimal numbers
 * (GB_EINVAL otherwise). DIR is created (one level, 0755) when missing.
 * Every file is written atomically (util/file.h), 0644, the PNGs first and
 * the JSON last, so a reader that finds the JSON finds the whole set; a
 * failure part way (GB_EIO naming the file, GB_ENOMEM) can leave the PNGs
 * of the new report beside an older JSON, never a half-written file. */
int gb_explain_report_write(const char *dir, uint64_t round,
                            const Glassbox__Explanation *aggregate,
                            Glassbox__KeyValue *const *distance, size_t n_distance,
                            gb_error_t *err) GB_MUST_CHECK;

#endif
