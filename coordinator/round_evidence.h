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
 * Ownership: gb_round_evidence_new returns an object the caller owns
 * (gb_round_evidence_destroy). Client names are copied; deltas are read
 * during the call. */
#ifndef GB_COORDINATOR_ROUND_EVIDENCE_H
#define GB_COORDINATOR_ROUND_EVIDENCE_H

#include <stddef.h>

#include "util/error.h"

#define GB_ROUND_EVIDENCE_SKETCH_DIM 1024 /* the default sketch size */
#define GB_ROUND_EVIDENCE_NAME_MAX 64     /* bytes of a client name, at most */

typedef struct gb_round_evidence gb_round_evidence_t;

/* Evidence for rounds of at most max_clients updates, sketches of
 * sketch_dim floats (0: GB_ROUND_EVIDENCE_SKETCH_DIM; at most 65,536). NULL
 * with err set (GB_EINVAL for a bad size, GB_ENOMEM). */
gb_round_evidence_t *gb_round_evidence_new(size_t max_clients, size_t sketch_dim,
                                           gb_error_t *err);
void gb_round_evidence_destroy(gb_round_evidence_t **e);

/* Forgets the round's updates (a new attempt begins). */
void gb_round_evidence_clear(gb_round_evidence_t *e);

/* Keeps one accepted update: its client's name (1..64 bytes), its delta
 * delta[0..n) (finite: the federation's checks ran) and its L2 norm.
 * GB_ERANGE past max_clients, GB_EINVAL for a bad name or a delta of
 * another length than the round's first; nothing is kept then. */
int gb_round_evidence_add(gb_round_evidence_t *e, const char *client, const float *delta,
                          size_t n, double norm, gb_error_t *err) GB_MUST_CHECK;

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

#endif
