/* Which slice of a shared data set each simulated client trains on (serve
 * --simulate-clients N): the coordinator hands slice indices to clients as
 * they join, by their certificate's name, so replicas of one container
 * image need no setting of their own, and a client that comes back (a
 * restarted container keeps its key and name) gets its old slice again.
 *
 * The map is kept in STATE_DIR/shards, one "name index" line per client
 * under a versioned header (util/table_file.h), written atomically on every
 * new assignment, so it outlives coordinator restarts; it is checked when
 * read (names valid, indices below the number of slices and unique), and a
 * damaged file stops the coordinator rather than being guessed at. A new
 * name takes the lowest free index; with every index taken it is refused
 * (GB_ERANGE): the simulation was set up for N clients.
 *
 * Ownership: gb_shard_map_new returns a map the caller owns
 * (gb_shard_map_destroy). Not thread-safe. */
#ifndef GB_COORDINATOR_SHARD_MAP_H
#define GB_COORDINATOR_SHARD_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GB_SHARD_MAP_FILE "shards"
#define GB_SHARD_MAP_MAX 100000u /* slices at most (GB_ENVELOPE_MAX_SHARDS) */

typedef struct gb_shard_map gb_shard_map_t;

/* A map of `slices` indices (1..GB_SHARD_MAP_MAX), read from
 * state_dir/shards when it exists (state_dir NULL: kept in memory only).
 * NULL and err on a bad count (GB_EINVAL), a damaged file (GB_EFORMAT,
 * naming the line), one with indices past `slices` (GB_ERANGE: the
 * simulation was started with more clients), or GB_ENOMEM. */
gb_shard_map_t *gb_shard_map_new(const char *state_dir, uint32_t slices, gb_error_t *err);

/* Frees the map; sets *m to NULL; NULL-safe. */
void gb_shard_map_destroy(gb_shard_map_t **m);

/* The index of client `name` into *index: its own when it has one, else the
 * lowest free one, saved before it is returned. GB_EINVAL for a bad name,
 * GB_ERANGE with every index taken, GB_EIO when the file cannot be written
 * (nothing assigned then), GB_ENOMEM. */
int gb_shard_map_assign(gb_shard_map_t *m, const char *name, uint32_t *index,
                        gb_error_t *err) GB_MUST_CHECK;

/* Clients with an index. */
size_t gb_shard_map_count(const gb_shard_map_t *m);

#endif
