/* The publication outbox: each finished round's signed files in the output
 * directory (--out), written or the failure loud.
 *
 * A round's packed Publication goes in with gb_pub_outbox_put, after its
 * checkpoint: it is written at once as round-NNNNNN.sig, round-NNNNNN.pub
 * (signature first, so a .pub is never found without its .sig),
 * coordinator.crt and the explanation report (explain_merge.h). When a write
 * fails (a full disk, a directory gone read-only), the round stays in the
 * outbox: it is logged at error, counted in
 * glassbox_publication_failures_total, and tried again with a backoff
 * (GB_PUB_OUTBOX_FIRST_RETRY_MS doubling up to GB_PUB_OUTBOX_MAX_RETRY_MS)
 * on every gb_pub_outbox_retry, in round order; glassbox_publications_unwritten
 * says how many wait. With a state directory the waiting bytes are also kept
 * there (unpublished-NNNNNN.pb, 0600), so a restarted coordinator writes
 * them too: a round the federation checkpointed is never left unpublished
 * by a crash or a restart.
 *
 * At creation, temporary files an interrupted write left in the output
 * directory (".NAME.tmp-XXXXXX") are removed, and the state directory's
 * unpublished rounds are taken back in.
 *
 * Ownership: gb_pub_outbox_new returns an object the caller owns
 * (gb_pub_outbox_destroy); the signer is borrowed and must outlive it;
 * directory names and put's bytes are copied. Single-threaded. */
#ifndef GB_COORDINATOR_PUB_OUTBOX_H
#define GB_COORDINATOR_PUB_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "net/signing.h"
#include "util/error.h"

#define GB_PUB_OUTBOX_FIRST_RETRY_MS 1000u
#define GB_PUB_OUTBOX_MAX_RETRY_MS 60000u
/* Rounds kept waiting at most: past it the oldest is given up (logged at
 * error and counted), so a directory that never comes back cannot hold
 * the coordinator's memory to ransom. */
#define GB_PUB_OUTBOX_MAX_WAITING 1000u

typedef struct gb_pub_outbox gb_pub_outbox_t;

/* An outbox writing to out_dir (required, must exist) signed by signer,
 * keeping waiting rounds in state_dir too (NULL: in memory only). Cleans
 * out_dir's temporary files and takes in state_dir's unpublished rounds
 * (a damaged one is logged and removed). NULL and err (GB_EINVAL, GB_ENOMEM)
 * on failure. */
gb_pub_outbox_t *gb_pub_outbox_new(const char *out_dir, const char *state_dir,
                                   const gb_signer_t *signer, gb_error_t *err);

/* Frees the outbox (what still waits stays in state_dir); sets *ob to NULL;
 * NULL-safe. */
void gb_pub_outbox_destroy(gb_pub_outbox_t **ob);

/* Writes round's files from the packed Publication pub[0..len) now; on
 * failure keeps it for a retry. Returns 0 when written, the write's error
 * (kept, logged) otherwise, or GB_ENOMEM when it could not even be kept. */
int gb_pub_outbox_put(gb_pub_outbox_t *ob, uint64_t round, const uint8_t *pub, size_t len,
                      gb_error_t *err);

/* Tries again every waiting round whose retry time (monotonic seconds,
 * util/time.h) has come, oldest first; stops at the first failure.
 * Returns how many were written. */
size_t gb_pub_outbox_retry(gb_pub_outbox_t *ob, double now);

/* Rounds waiting; *first (may be NULL) gets the oldest (0: none) and
 * last_error (may be NULL) the last failure's message, borrowed. */
size_t gb_pub_outbox_waiting(const gb_pub_outbox_t *ob, uint64_t *first,
                             const char **last_error);

#endif
