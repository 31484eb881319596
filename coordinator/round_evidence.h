/* What a round's updates say about their clients, for the flagger
 * (client_flags.h): each accepted update's norm and its distance from the
 * round's robust centre.
 *
 * The centre is the coordinate-wise median of the updates. Keeping every
 * update of a round to take it would cost the model's size per client (a
 * round of 1,000 LeNet clients: 320 MB), so each update is kept as a signed
 * hash sketch of sketch_dim floats: coordinate i goes, with a sign, to one
 * of sketch_dim buckets chosen by a hash of i (feature hashing). The sketch
 * is linear and keeps L2 distances in expectation, with a relative error of
 * about sqrt(2 / sketch_dim) (4% at the default 1,024), far inside the
 * spread the flagger's z-scores look for. The median and the distances are
 * taken between sketches.
 *
 * With lessons (lesson_features > 0), each update may come with what it
 * teaches too (update_probe.h: its change of how much each input cell
 * matters to each output, as shares of its whole change), compared feature
 * by feature across the round's updates that have one: for each feature j,
 * m_j the median and s_j = 1.4826 x MAD, the spread floored at
 * floor_share / features (a feature every client leaves alone must not
 * turn float noise into outliers). An update's lesson z is its largest
 * (share_j - m_j) / s_j over the features, only increases counting (a
 * trigger makes cells matter more to its target class); the feature is
 * kept as the evidence. Fewer than 3 lessons: no z (NaN).
 *
 * Ownership: gb_round_evidence_new returns an object the caller owns
 * (gb_round_evidence_destroy). Client names are copied; deltas are read
 * during the call. */
#ifndef GB_COORDINATOR_ROUND_EVIDENCE_H
#define GB_COORDINATOR_ROUND_EVIDENCE_H

#include <stddef.h>

#include "util/error.h"

#define GB_ROUND_EVIDENCE_SKETCH_DIM 1024 /* the default sketch size */
#define GB_ROUND_EVIDENCE_NAME_MAX 64     /* bytes of a client name, at most */
#define GB_ROUND_EVIDENCE_MAX_FEATURES 65536 /* lesson features, at most */
#define GB_ROUND_EVIDENCE_LESSON_FLOOR 1.0 /* the default floor_share of lessons */

typedef struct gb_round_evidence gb_round_evidence_t;

/* Evidence for rounds of at most max_clients updates, sketches of
 * sketch_dim floats (0: GB_ROUND_EVIDENCE_SKETCH_DIM; at most 65,536) and
 * lessons of lesson_features floats (0: updates come without lessons; at
 * most GB_ROUND_EVIDENCE_MAX_FEATURES). NULL with err set (GB_EINVAL for a
 * bad size, GB_ENOMEM). */
gb_round_evidence_t *gb_round_evidence_new(size_t max_clients, size_t sketch_dim,
                                           size_t lesson_features, gb_error_t *err);
void gb_round_evidence_destroy(gb_round_evidence_t **e);

/* Forgets the round's updates (a new attempt begins). */
void gb_round_evidence_clear(gb_round_evidence_t *e);

/* Keeps one accepted update: its client's name (1..64 bytes), its delta
 * delta[0..n) (finite: the federation's checks ran), its L2 norm and its
 * lesson lesson[0..lesson_features) (NULL: none this round, as always
 * without lessons). GB_ERANGE past max_clients or for a lesson share that
 * is not finite, GB_EINVAL for a bad name,
 * a delta of another length than the round's first or a lesson where the
 * evidence keeps none; nothing is kept then. */
int gb_round_evidence_add(gb_round_evidence_t *e, const char *client, const float *delta,
                          size_t n, double norm, const float *lesson,
                          gb_error_t *err) GB_MUST_CHECK;

/* Updates kept this round. */
size_t gb_round_evidence_count(const gb_round_evidence_t *e);

/* The i-th update's client (in the order added) and norm; i < count. */
const char *gb_round_evidence_client(const gb_round_evidence_t *e, size_t i);
double gb_round_evidence_norm(const gb_round_evidence_t *e, size_t i);

/* Fills dist[0..count) with each update's L2 distance, measured between
 * sketches, from the coordinate-wise median of the round's sketches (the
 * median of an even count is the mean of the middle two). Costs
 * sketch_dim sorts of count floats (1,000 updates: about 50 ms). */
void gb_round_evidence_distances(gb_round_evidence_t *e, double *dist);

/* Fills z[0..count) with each update's lesson z (above; floor_share > 0)
 * and feature[0..count) with the feature it was largest at: NaN and 0 for
 * an update without a lesson, and for all in a round of fewer than 3
 * lessons. Costs lesson_features sorts of the lessons, twice. */
void gb_round_evidence_lessons(gb_round_evidence_t *e, double floor_share, double *z,
                               size_t *feature);

#endif
