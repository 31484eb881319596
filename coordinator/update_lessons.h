/* Which client's update teaches what no other's does (issue 12): the
 * round's lessons (update_probe.h: each update's change of how much each
 * input cell matters to each output, as shares of its whole change),
 * compared feature by feature across the round's clients.
 *
 * The rule: for each feature j, the robust centre and spread over the
 * round's clients, m_j the median and s_j = 1.4826 x MAD, the spread floored
 * at floor_share / features (a feature every client leaves alone must not
 * turn float noise into outliers). A client's lesson z is its largest
 * (share_j - m_j) / s_j over the features, only increases counting (a
 * trigger makes cells matter more to its target class); the feature is
 * kept as the evidence. Fewer than 3 clients: no z (NaN).
 *
 * Ownership: gb_update_lessons_new returns an object the caller owns
 * (gb_update_lessons_destroy); names are copied, shares read during the
 * call. */
#ifndef GB_COORDINATOR_UPDATE_LESSONS_H
#define GB_COORDINATOR_UPDATE_LESSONS_H

#include <stddef.h>

#include "util/error.h"

#define GB_UPDATE_LESSONS_FLOOR 1.0 /* default floor_share */

typedef struct gb_update_lessons gb_update_lessons_t;

/* Lessons of at most max_clients clients, each of `features` floats
 * (1..65,536). NULL with err set (GB_EINVAL, GB_ENOMEM). */
gb_update_lessons_t *gb_update_lessons_new(size_t max_clients, size_t features,
                                           double floor_share, gb_error_t *err);
void gb_update_lessons_destroy(gb_update_lessons_t **l);

/* Forgets the round's lessons. */
void gb_update_lessons_clear(gb_update_lessons_t *l);

/* Keeps client's lesson share[0..features). GB_EINVAL for a name of 0 or
 * more than 64 bytes, or one already kept this round; GB_ERANGE past
 * max_clients or for a share that is not finite. Nothing is kept then. */
int gb_update_lessons_add(gb_update_lessons_t *l, const char *client, const float *share,
                          gb_error_t *err) GB_MUST_CHECK;

size_t gb_update_lessons_count(const gb_update_lessons_t *l);

/* Computes every kept client's lesson z (above); call once a round, after
 * the last add. */
void gb_update_lessons_score(gb_update_lessons_t *l);

/* The client's lesson z and its feature from the last score; NaN (and
 * feature 0) for a client without a lesson this round or a round of fewer
 * than 3. */
double gb_update_lessons_z(const gb_update_lessons_t *l, const char *client, size_t *feature);

#endif
