/* The publication outbox: each finished round published exactly once, even
 * across a crash, and its signed files in the output directory (--out)
 * written or the failure loud.
 *
 * A round's packed Publication is staged (gb_pub_outbox_stage) in the state
 * directory as unpublished-NNNNNN.pb (0600) before its checkpoint is saved,
 * and goes in with gb_pub_outbox_put after it: then it is written at once as round-NNNNNN.sig, round-NNNNNN.pub
 * (signature first, so a .pub is never found without its .sig),
 * coordinator.crt and the explanation report (explain_merge.h). When a write
 * fails (a full disk, a directory gone read-only), the round stays in the
 * outbox: it is logged at error, counted in
 * glassbox_publication_failures_total, and tried again with a backoff
 * (GB_PUB_OUTBOX_FIRST_RETRY_MS doubling up to GB_PUB_OUTBOX_MAX_RETRY_MS)
 * on every gb_pub_outbox_retry, in round order; glassbox_publications_unwritten
 * says how many wait. The staged file is removed once the files are
 * written (at once when there is no output directory). So a coordinator
 * killed at any point finds, on restart, every checkpointed round whose
 * files are missing or partial still staged: rounds up to the last
 * checkpointed one are taken back in (written again, whole, and handed to
 * the caller to send again with gb_pub_outbox_recovered), later ones (their
 * checkpoint never committed: the round will run again) are removed.
 *
 * At creation, temporary files an interrupted write left in the output
 * directory (".NAME.tmp-XXXXXX", NAME one of the outbox's files or the
 * report's index.html and history.json) and the state directory are
 * removed.
 *
 * Ownership: gb_pub_outbox_new returns an object the caller owns
 * (gb_pub_outbox_destroy); the signer is borrowed and must outlive it;
 * directory names and put's bytes are copied. Single-threaded. */
#ifndef GB_COORDINATOR_PUB_OUTBOX_H
#define GB_COORDINATOR_PUB_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "explain_report.h"
#include "net/signing.h"
#include "util/error.h"

#define GB_PUB_OUTBOX_FIRST_RETRY_MS 1000u
#define GB_PUB_OUTBOX_MAX_RETRY_MS 60000u
/* Rounds kept waiting at most: past it the oldest is given up (logged at
 * error and counted), so a directory that never comes back cannot hold
 * the coordinator's memory to ransom. */
#define GB_PUB_OUTBOX_MAX_WAITING 1000u

typedef struct gb_pub_outbox gb_pub_outbox_t;

/* An outbox writing to out_dir (NULL: no files) signed by signer, staging
 * rounds in state_dir (NULL: in memory only, no crash consistency); one of
 * the two is required, and so is the signer with out_dir. Cleans temporary
 * files and takes in state_dir's staged rounds up to checkpointed_round
 * (the round of the checkpoint resumed from; 0: none), removing later and
 * damaged ones with a log line. NULL and err (GB_EINVAL, GB_ENOMEM, the
 * staged file's read error) on failure. */
gb_pub_outbox_t *gb_pub_outbox_new(const char *out_dir, const char *state_dir,
                                   const gb_signer_t *signer, uint64_t checkpointed_round,
                                   gb_error_t *err);

/* How the explanation reports are written from now on (explain_report.h:
 * class names and the weak-class threshold; until called: none, 0),
 * rounds taken back in at creation included, since they are written on
 * the first retry. opts is copied; its names list is borrowed and must
 * outlive the outbox. */
void gb_pub_outbox_set_report(gb_pub_outbox_t *ob, const gb_explain_report_opts_t *opts);

/* Keeps round's packed Publication pub[0..len) in the state directory
 * before the round's checkpoint is saved (nothing without one). 0, or the
 * write's error: the checkpoint must then not be saved, or a crash could
 * leave a checkpointed round with nothing to publish. */
int gb_pub_outbox_stage(gb_pub_outbox_t *ob, uint64_t round, const uint8_t *pub, size_t len,
                        gb_error_t *err) GB_MUST_CHECK;

/* The newest round taken back in at creation, for the caller to send again
 * (PUB socket, subscribers): true with *round, *pub (borrowed until the
 * next call) and *len; false when none was. Each is handed out once. */
bool gb_pub_outbox_recovered(gb_pub_outbox_t *ob, uint64_t *round, const uint8_t **pub,
                             size_t *len);

/* Frees the outbox (what still waits stays in state_dir); sets *ob to NULL;
 * NULL-safe. */
void gb_pub_outbox_destroy(gb_pub_outbox_t **ob);

/* Writes round's files from the packed Publication pub[0..len) now (none
 * without an output directory) and drops the staged copy; on failure keeps
 * it for a retry. Returns 0 when written, the write's error (kept, logged)
 * otherwise, or GB_ENOMEM when it could not even be kept. */
int gb_pub_outbox_put(gb_pub_outbox_t *ob, uint64_t round, const uint8_t *pub, size_t len,
                      gb_error_t *err);

/* Tries again every waiting round whose retry time (monotonic seconds,
 * util/time.h) has come, oldest first; stops at the first failure.
 * Returns how many were written. */
size_t gb_pub_outbox_retry(gb_pub_outbox_t *ob, double now);

/* When gb_pub_outbox_retry has something to do next (monotonic seconds,
 * util/time.h): the oldest waiting round's retry time, since rounds go in
 * round order; HUGE_VAL when none waits. For a caller that sleeps until
 * then instead of polling. */
double gb_pub_outbox_next_retry(const gb_pub_outbox_t *ob);

/* Rounds waiting; *first (may be NULL) gets the oldest (0: none) and
 * last_error (may be NULL) the last failure's message, borrowed. */
size_t gb_pub_outbox_waiting(const gb_pub_outbox_t *ob, uint64_t *first,
                             const char **last_error);

#endif
