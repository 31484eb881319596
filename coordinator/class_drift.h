/* Which classes' explanations moved for a client (issue 12's "which
 * classes" evidence of a flag). Per client and class: the Jensen-Shannon
 * divergence of the client's class map (|.| as a distribution) from the
 * federation's own map of that class in the last finished merge, the one
 * the clients were explaining the model of. Every client drifts from it as
 * the model learns, so a class stands out for a client when its divergence
 * is at least GB_CLASS_DRIFT_RATIO times the round's median client's for
 * that class (a backdoor's target class, a flipped label's classes). The
 * first merge, and one after the map shape or class count changed, has no
 * reference: no class stands out then. The reference is the merge of every
 * client, the suspect's too, at the weight the merge gave it (capped by
 * serve --max-explanation-share): a client whose maps are far larger than
 * the others' pulls the reference towards itself and hides its own drift
 * in part.
 *
 * Memory: one reference of classes x cells doubles, and one float per
 * client and class of the round (not the clients' maps).
 *
 * Ownership: gb_class_drift_new returns an object the caller owns
 * (gb_class_drift_destroy); maps are read during the call. */
#ifndef GB_COORDINATOR_CLASS_DRIFT_H
#define GB_COORDINATOR_CLASS_DRIFT_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GB_CLASS_DRIFT_TOP 3     /* classes named per client, at most */
#define GB_CLASS_DRIFT_RATIO 2.0 /* divergence against the class's median client's */
/* A median divergence below this counts as this (JS in bits is in [0, 1]):
 * clients that all agree to the last bit do not make any drift infinite. */
#define GB_CLASS_DRIFT_FLOOR 1e-6

typedef struct gb_class_drift gb_class_drift_t;

/* An empty tracker; NULL and err (GB_ENOMEM). */
gb_class_drift_t *gb_class_drift_new(gb_error_t *err);

/* Frees it; sets *d to NULL; NULL-safe. */
void gb_class_drift_destroy(gb_class_drift_t **d);

/* A round of n_classes (>= 1) maps of cells (>= 1) each begins: no client
 * rows; the reference is kept when it has this shape, dropped otherwise.
 * GB_EINVAL for a 0, GB_ENOMEM (nothing changed then). */
int gb_class_drift_begin(gb_class_drift_t *d, int n_classes, size_t cells,
                         gb_error_t *err) GB_MUST_CHECK;

/* Room for client row k (the rows so far, 0..k-1, are kept), every class
 * of it unmeasured. GB_ENOMEM leaves the rows as they were. */
int gb_class_drift_reserve(gb_class_drift_t *d, size_t k, gb_error_t *err) GB_MUST_CHECK;

/* Row k's divergence for class c (< n_classes) from the map le[0..cells)
 * (little-endian float32, as the wire holds it; finite). Nothing when the
 * reference has no class c. Row k must have been reserved. */
void gb_class_drift_add(gb_class_drift_t *d, size_t k, uint32_t c, const uint8_t *le);

/* Ends the round's n rows: each class's median divergence over the rows
 * that have one. */
void gb_class_drift_close(gb_class_drift_t *d, size_t n);

/* Row k's (< n of close) classes that stand out, largest ratio first, ties
 * to the lower class: into classes[0..GB_CLASS_DRIFT_TOP) and ratio (its
 * divergence over the class's median, floored); returns how many. */
size_t gb_class_drift_top(const gb_class_drift_t *d, size_t k, uint32_t *classes, float *ratio);

/* Class c's merged map this round (le[0..cells) little-endian float32, as
 * the aggregate Explanation holds it) becomes the reference of the next; a
 * class without one (NULL) has none then. Call for every class after
 * close. */
void gb_class_drift_set_reference(gb_class_drift_t *d, uint32_t c, const uint8_t *le);

#endif
