/* The updates of a round held back from the aggregate until the round's
 * clients are scored (serve --guard flags): so a client the round itself
 * flags is left out of the very round that flagged it, not only from the
 * next. Each held update is a full copy of its delta, so a guarded round
 * costs the model's size per client, what a robust aggregator (median,
 * Krum) holds anyway; FedAvg without the guard holds nothing.
 *
 * Ownership: gb_held_updates_new returns an object the caller owns
 * (gb_held_updates_destroy). Names and deltas are copied; what the
 * accessors return is borrowed until the next add, clear or destroy. */
#ifndef GB_COORDINATOR_HELD_UPDATES_H
#define GB_COORDINATOR_HELD_UPDATES_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GB_HELD_UPDATES_NAME_MAX 64 /* bytes of a client name, at most */

typedef struct gb_held_updates gb_held_updates_t;

/* A store for rounds of at most max_updates updates of n_params floats
 * each (both >= 1). Nothing is allocated for the deltas until they come.
 * NULL and err: GB_EINVAL for a 0 or a product past SIZE_MAX, GB_ENOMEM. */
gb_held_updates_t *gb_held_updates_new(size_t max_updates, size_t n_params, gb_error_t *err);

/* Frees the store; sets *h to NULL; NULL-safe. */
void gb_held_updates_destroy(gb_held_updates_t **h);

/* Forgets the round's updates (their memory is kept for the next). */
void gb_held_updates_clear(gb_held_updates_t *h);

/* Holds a copy of delta[0..n) with its FedAvg weight (>= 1) for client
 * (1..64 bytes). GB_ERANGE past max_updates, GB_EINVAL for another n than
 * the store's, a weight 0 or a bad name, GB_ENOMEM; nothing is held then. */
int gb_held_updates_add(gb_held_updates_t *h, const char *client, const float *delta, size_t n,
                        uint64_t weight, gb_error_t *err) GB_MUST_CHECK;

/* Updates held this round. */
size_t gb_held_updates_count(const gb_held_updates_t *h);

/* The i-th held update (in the order added; i < count): its client, its
 * delta (n_params floats) and its weight. */
const char *gb_held_updates_client(const gb_held_updates_t *h, size_t i);
const float *gb_held_updates_delta(const gb_held_updates_t *h, size_t i);
uint64_t gb_held_updates_weight(const gb_held_updates_t *h, size_t i);

#endif
