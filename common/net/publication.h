/* The Publication codec: a round's outcome (net/publish.h) as the
 * coordinator signs it and any subscriber reads it: the global model, the
 * aggregate explanation, metrics, the number of participants, the
 * aggregator's name, each client's explanation distance and the round's
 * flagged clients with their evidence.
 *
 * It travels signed, inside a SignedPublication, so it has its own decoder
 * beside the Envelope's: the bytes come out of gb_publication_verify
 * (net/signing.h) and are decoded here, after the signature has been
 * checked, with the same field checks and limits as an Envelope (a valid
 * signature proves who sent the bytes, not that they are sane).
 *
 * Ownership: gb_publication_decode returns a Publication the caller owns
 * and frees with gb_publication_free (only those: its parts were allocated
 * here). A Publication the caller builds itself may be given to
 * gb_publication_check and gb_publication_encode, which only read it.
 * Thread-safe: no state is shared between calls. */
#ifndef GB_NET_PUBLICATION_H
#define GB_NET_PUBLICATION_H

#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "util/error.h"

/* Most per-client distances in a Publication. Its size limit is
 * GB_PUBLICATION_MAX_BYTES of net/signing.h. */
#define GB_PUBLICATION_MAX_CLIENTS 100000
/* Most z-scores, and most evidence figures, of one flagged client. */
#define GB_PUBLICATION_MAX_FLAG_SIGNALS 16
/* Longest flag window a flagged client's rounds may span (client_flags.h
 * allows 1..64). */
#define GB_PUBLICATION_MAX_FLAG_WINDOW 64u
/* Most moved cells of one flagged client (the coordinator sends
 * explain_merge.h's GB_EXPLAIN_MERGE_MOVED). */
#define GB_PUBLICATION_MAX_FLAG_MOVED 8u
/* Most moved classes of one flagged client (the coordinator sends
 * explain_merge.h's GB_EXPLAIN_MERGE_CLASSES). */
#define GB_PUBLICATION_MAX_FLAG_CLASSES 8u
/* A flagged client's lesson: its class is below this (the coordinator's
 * update probe compares at most 65,536 class-cells, so a model it probes
 * has at most that many outputs), its cells' name at most this long. */
#define GB_PUBLICATION_MAX_LESSON_CLASS 65536u
#define GB_PUBLICATION_MAX_LESSON_CELLS 63u

/* Checks a Publication: round >= 1, a valid model (the model file's checks),
 * the explanation as in an Update, finite metrics, participants >= 1, an
 * aggregator name, explanation_distance: unique client ids, each value a
 * finite decimal number >= 0, and flags: at most GB_PUBLICATION_MAX_CLIENTS
 * unique client ids, each with a finite score >= 0, 1 <= rounds_out <=
 * rounds_seen <= GB_PUBLICATION_MAX_FLAG_WINDOW, at most
 * GB_PUBLICATION_MAX_FLAG_SIGNALS z-scores (finite, unique names, the
 * strongest among them or empty) and as many evidence figures (finite, >= 0, unique
 * names), and at most GB_PUBLICATION_MAX_FLAG_MOVED moved cells, unique,
 * each inside the explanation's map (none without an explanation), with as
 * many shares, each in (0, 1], and at most GB_PUBLICATION_MAX_FLAG_CLASSES
 * moved classes, unique, each a class of the explanation, with as many
 * ratios, each finite and >= 1, and a lesson: lesson_cells text of at most
 * GB_PUBLICATION_MAX_LESSON_CELLS bytes, lesson_class below
 * GB_PUBLICATION_MAX_LESSON_CLASS (0 without cells). Does not log. */
int gb_publication_check(const Glassbox__Publication *p, gb_error_t *err) GB_MUST_CHECK;

/* Unpacks (size limit first, under a memory budget) and checks. On success
 * *out is the caller's (gb_publication_free); on failure NULL, err says why
 * and a warning is logged. */
int gb_publication_decode(const uint8_t *buf, size_t len, Glassbox__Publication **out,
                          gb_error_t *err) GB_MUST_CHECK;

/* Checks and packs a Publication the caller built into a new buffer (*buf,
 * *len; free with gb_free). */
int gb_publication_encode(const Glassbox__Publication *p, uint8_t **buf, size_t *len,
                          gb_error_t *err) GB_MUST_CHECK;

/* Frees a Publication from gb_publication_decode; NULL-safe; sets *p NULL. */
void gb_publication_free(Glassbox__Publication **p);

#endif
