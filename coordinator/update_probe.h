/* What an update teaches, measured on the server's own images (issue 12).
 *
 * A client's explanation is of the global model on the client's data, and
 * the client computes it: an attacker can shape it, and a backdoor trigger
 * on a black border is invisible in explanations of clean images anyway
 * (IG from a black baseline gives nothing to a pixel that is 0). The probe
 * measures on the server instead, from the update itself: for a fixed set
 * of the server's test samples, how much each input cell matters to each
 * output of the model the update would make (global + delta), as the mean
 * absolute input gradient of every output over the samples, pooled into
 * cells (4 x 4 pixels of an image, 4 steps x 4 features of a sequence, 16
 * values of a flat input), minus the same of the global model. An update
 * that teaches a trigger makes its cells matter to the target class where
 * no honest update moves them; an honest client with an unusual class mix
 * moves the cells of its garments, as the others do.
 *
 * Only the DARK cells count: those whose mean absolute value over the probe
 * samples is below 10% of the brightest cell's (an image's border and
 * corners). A trigger must sit where clean data is dark to be a trigger,
 * while an honest client with an unusual class mix teaches where its
 * garments are, which is where the others' differ too: measured on
 * Dirichlet 0.1 shards with every cell, honest clients' largest z ran to
 * 20, as high as the attacker's (tests/bench/README.md). Data with no dark
 * cell (standardised features) is probed on every cell.
 *
 * The change a client's update makes is kept as its SHARE of the update's
 * whole absolute change (each class-cell's change over the sum of all
 * |changes|, dark and bright), so that a large shard's bigger step is not
 * an outlier by its size alone (the norm signal sees size); the shares of
 * bright cells are given as 0.
 *
 * Ownership: gb_update_probe_new returns a probe the caller owns
 * (gb_update_probe_destroy); it builds and plans its own model and copies
 * the probe samples, so the dataset may go after the call. Params and
 * deltas are read during the calls. */
#ifndef GB_COORDINATOR_UPDATE_PROBE_H
#define GB_COORDINATOR_UPDATE_PROBE_H

#include <stddef.h>

#include "data/dataset.h"
#include "util/error.h"

#define GB_UPDATE_PROBE_SAMPLES 8   /* the default probe samples (serve --probe-samples) */
#define GB_UPDATE_PROBE_MAX_SAMPLES 1024
#define GB_UPDATE_PROBE_MAX_FEATURES 65536 /* outputs x cells, at most */

typedef struct gb_update_probe gb_update_probe_t;

/* A probe of the model `spec` on n_samples (1..GB_UPDATE_PROBE_MAX_SAMPLES,
 * at most the dataset's) samples of `test`, taken evenly through it, with
 * `threads` engine threads. NULL with err set: GB_EINVAL for a count out of
 * range, GB_ESHAPE when the samples do not fit the model's input or the
 * outputs x cells exceed GB_UPDATE_PROBE_MAX_FEATURES, GB_ENOMEM. */
gb_update_probe_t *gb_update_probe_new(const char *spec, const gb_dataset_t *test,
                                       int n_samples, int threads, gb_error_t *err);
void gb_update_probe_destroy(gb_update_probe_t **p);

/* Features of a change: outputs x cells (output-major). */
size_t gb_update_probe_features(const gb_update_probe_t *p);
size_t gb_update_probe_cells(const gb_update_probe_t *p);

/* The cell of feature j as the heatmaps name it: "rows 24-27, cols 24-27"
 * of an image, "steps 0-3, features 4-7" of a sequence, "inputs 16-31". */
void gb_update_probe_cell_name(const gb_update_probe_t *p, size_t feature, char *out,
                               size_t cap);

/* Measures the global model params[0..n) as the reference of the round's
 * changes. GB_ESHAPE when n is not the model's parameter count; an engine
 * error as it comes. */
int gb_update_probe_begin(gb_update_probe_t *p, const float *params, size_t n,
                          gb_error_t *err) GB_MUST_CHECK;

/* share[0..features) receives the change the update delta[0..n) makes
 * against the reference of gb_update_probe_begin, as shares of its total
 * absolute change (all zero for an update that changes nothing). GB_EINVAL
 * before a begin, GB_ESHAPE for another n, nothing written when the model the
 * update makes gives a gradient that is not finite (GB_ERANGE). */
int gb_update_probe_measure(gb_update_probe_t *p, const float *delta, size_t n, float *share,
                            gb_error_t *err) GB_MUST_CHECK;

#endif
