/* The coordinator's round loop as a pure, deterministic state machine
 * (DESIGN.md, Coordinator): wait for enough clients -> select (fraction,
 * minimum, seeded) -> send the task -> collect results until every selected
 * client answered, or the deadline passed with at least the quorum ->
 * aggregate -> evaluate -> publish -> checkpoint -> next round.
 *
 * It owns no socket, no clock, no thread and no parameters. The network code
 * feeds it events (a client joined or left, an Update or EvalResult arrived,
 * time passed, a step it was asked to do is done) and carries out the actions
 * it queues (send this task, feed this update to the aggregator, aggregate,
 * publish, ...). Every path, faults included, is therefore a unit test, and a
 * re-run with the same events gives the same actions.
 *
 * Time is the `now` each event carries: milliseconds on the caller's clock
 * (Unix milliseconds, so that a task's deadline is Task.deadline_unix_ms
 * as it is). Every event applies its `now` first, as gb_rounds_tick does; a
 * `now` earlier than one seen before counts as the latest one seen, so time
 * never runs backwards inside the machine.
 *
 * A round's life:
 *   WAITING      until min_clients are connected; then it selects
 *                max(min_per_round, ceil(fraction * connected)) of them,
 *                seeded by (seed, round, attempt) over the clients sorted by
 *                id (so neither join order nor a restart changes who is
 *                chosen), and queues SEND_TASK for each with a task id unique
 *                in this run.
 *   TRAINING     results are taken only from a selected client, for this
 *                round, with the task id it was given; a resend is
 *                acknowledged and not counted twice. A selected client that
 *                leaves is dropped at once: the round no longer waits for it,
 *                but if it joins again while the round still collects, its
 *                task is sent again with the same task id (so a result it
 *                already sent is deduplicated) and it counts again. The round
 *                closes when every selected client still connected has
 *                answered (an Update, and an EvalResult too when client_eval
 *                is set) and at least `quorum` updates are in, or at the
 *                deadline with the quorum. When the clients still connected
 *                can no longer reach the quorum, the attempt is abandoned
 *                (FAILED) and the round selects again at once among the
 *                clients connected then. Without the quorum at the deadline
 *                the attempt is abandoned and the same round number selects
 *                again after a backoff.
 *   AGGREGATING, EVALUATING, PUBLISHING, CHECKPOINTING
 *                one action each, in this order; the caller reports each
 *                done (gb_rounds_step_done) before the next is queued. A
 *                failed step (gb_rounds_step_failed) abandons the attempt
 *                like a missed quorum: the caller discards what the round
 *                produced and keeps the global model of the last finished
 *                round. A round is finished when its checkpoint is done, and
 *                only then does the next one start.
 *   DONE         total_rounds finished (FINISHED was queued); nothing more
 *                starts.
 *
 * Actions: every mutating call appends actions to a queue; the caller takes
 * them with gb_rounds_next_action and carries them out in order. A call made
 * while more than GB_ROUNDS_MAX_PENDING(max_clients) actions are untaken is
 * refused (GB_EAGAIN) and changes nothing; one call queues at most that
 * many, so a caller that forgets to drain cannot grow the queue past twice
 * that.
 *
 * Logging: every queued action and every change of state is logged at info,
 * with round, attempt, client and task ids; every refusal at warn.
 *
 * Ownership: gb_rounds_new returns a machine the caller owns
 * (gb_rounds_destroy). Actions are copied out to the caller. Strings in
 * gb_rounds_client_t are borrowed until the next call that changes the
 * machine. Not thread-safe: one thread feeds it. */
#ifndef GB_COORDINATOR_ROUNDS_H
#define GB_COORDINATOR_ROUNDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "util/error.h"

#define GB_ROUNDS_ID_MAX 64                    /* bytes of a client id: a certificate CN
                                                  (GB_PKI_NAME_MAX) */
#define GB_ROUNDS_REASON_MAX 192               /* bytes of a FAILED action's reason, NUL included */
#define GB_ROUNDS_MAX_CLIENTS 1000000u         /* largest max_clients a config may set */
#define GB_ROUNDS_DEFAULT_MAX_CLIENTS 10000u   /* max_clients of gb_rounds_config_default */
#define GB_ROUNDS_MAX_DEADLINE_MS ((uint64_t)7 * 24 * 3600 * 1000) /* a week */
#define GB_ROUNDS_MAX_BACKOFF_MS ((uint64_t)3600 * 1000)           /* an hour */
#define GB_ROUNDS_MAX_TASK_ID_BASE (UINT64_MAX / 2) /* leaves room to count task ids up */
/* Untaken actions beyond which a call is refused with GB_EAGAIN: the most
 * one call can queue (a task for every client, and a few steps). */
#define GB_ROUNDS_MAX_PENDING(max_clients) ((size_t)(max_clients) + 4)

typedef struct {
    uint32_t min_clients;   /* connected clients needed to start a round; 1..max_clients */
    double fraction;        /* share of the connected clients selected; (0, 1] */
    uint32_t min_per_round; /* fewest clients selected; 1..min_clients */
    uint32_t quorum;        /* fewest updates a round may aggregate; 1..min_per_round */
    uint64_t deadline_ms;   /* from sending the tasks until results are late;
                               1..GB_ROUNDS_MAX_DEADLINE_MS */
    uint64_t total_rounds;  /* rounds to finish, counted from round 1; 0: forever */
    uint64_t seed;          /* selection seed: same seed, same clients, same choice */
    uint64_t backoff_ms;    /* wait after an abandoned attempt before selecting again,
                               doubled for each further failure of the same round
                               (at most GB_ROUNDS_MAX_BACKOFF_MS); 0..that maximum */
    uint32_t max_clients;   /* bound on distinct clients ever joined;
                               min_clients..GB_ROUNDS_MAX_CLIENTS */
    bool client_eval;       /* tasks also ask for an EvalResult; a client has answered
                               only when both its Update and its EvalResult are in */
    uint64_t task_id_base;  /* task ids are base+1, base+2, ...; a restarted coordinator
                               passes a base past its previous run's ids (e.g. its start
                               time in ms << 16) so results for old tasks are refused as
                               stale; 0..GB_ROUNDS_MAX_TASK_ID_BASE */
} gb_rounds_config_t;

typedef enum {
    GB_ROUNDS_WAITING = 0,    /* too few clients connected to start the round */
    GB_ROUNDS_BACKOFF,        /* the last attempt was abandoned; selects again at retry_at */
    GB_ROUNDS_TRAINING,       /* tasks out, collecting results */
    GB_ROUNDS_AGGREGATING,    /* AGGREGATE queued, waiting for the caller */
    GB_ROUNDS_EVALUATING,     /* EVALUATE queued */
    GB_ROUNDS_PUBLISHING,     /* PUBLISH queued */
    GB_ROUNDS_CHECKPOINTING,  /* CHECKPOINT queued */
    GB_ROUNDS_DONE,           /* total_rounds finished */
} gb_rounds_state_t;

typedef enum {
    GB_ROUNDS_ACT_SEND_TASK = 1, /* send client_id a Task for (round, task_id, deadline_ms,
                                    evaluate) with the global model of the last finished
                                    round; sent again, identical, to a client that rejoins */
    GB_ROUNDS_ACT_FEED_UPDATE,   /* give this accepted Update (num_samples) to the aggregator */
    GB_ROUNDS_ACT_FEED_EVAL,     /* give this accepted EvalResult to the evaluation */
    GB_ROUNDS_ACT_AGGREGATE,     /* combine the `count` updates fed (num_samples in all) */
    GB_ROUNDS_ACT_EVALUATE,      /* evaluate the new model (server test set and/or the
                                    `count` EvalResults fed); report done even if nothing to do */
    GB_ROUNDS_ACT_PUBLISH,       /* publish the round's model, explanation and metrics */
    GB_ROUNDS_ACT_CHECKPOINT,    /* write the checkpoint; done = the round is finished */
    GB_ROUNDS_ACT_FAILED,        /* this attempt is abandoned (reason, failed_step): discard
                                    what it fed or produced; the round will be tried again */
    GB_ROUNDS_ACT_FINISHED,      /* total_rounds are finished: the run is over */
} gb_rounds_action_kind_t;

typedef struct {
    gb_rounds_action_kind_t kind;           /* what to do */
    uint64_t round;                         /* the round it belongs to */
    uint32_t attempt;                       /* 1 for the round's first selection */
    char client_id[GB_ROUNDS_ID_MAX + 1];   /* SEND_TASK, FEED_*: the client; else "" */
    uint64_t task_id;                       /* SEND_TASK, FEED_*: the task; else 0 */
    uint64_t deadline_ms;                   /* SEND_TASK: results from this time on are late */
    bool evaluate;                          /* SEND_TASK: ask for an EvalResult too */
    uint64_t num_samples;                   /* FEED_*: the result's; AGGREGATE, EVALUATE: sum
                                               over the results fed this attempt */
    uint64_t count;                         /* AGGREGATE: updates fed; EVALUATE: evals fed */
    gb_rounds_action_kind_t failed_step;    /* FAILED: the step that failed, or 0 for a
                                               deadline without quorum */
    char reason[GB_ROUNDS_REASON_MAX];      /* FAILED: why, for the log and status page */
} gb_rounds_action_t;

/* Why a result was refused (or taken). The network code replies to the
 * client with the ErrorCode named here (gb_rounds_verdict_error_code). */
typedef enum {
    GB_ROUNDS_ACCEPTED = 0,      /* counted, FEED_* queued: reply Ack */
    GB_ROUNDS_DUPLICATE,         /* already counted (a resend): reply Ack, or ERROR_DUPLICATE,
                                    which a client takes as harmless; nothing changes */
    GB_ROUNDS_STALE_ROUND,       /* for a round before the current one: ERROR_STALE */
    GB_ROUNDS_CLOSED,            /* the current round is not collecting (aggregating, after
                                    the deadline, abandoned, not started): ERROR_STALE */
    GB_ROUNDS_WRONG_TASK,        /* not the task id this client was given in this attempt
                                    (an earlier attempt or run): ERROR_STALE */
    GB_ROUNDS_NOT_SELECTED,      /* a connected client without a task now: ERROR_UNEXPECTED */
    GB_ROUNDS_UNKNOWN_CLIENT,    /* never joined, or left: ERROR_UNEXPECTED */
    GB_ROUNDS_NOT_ASKED,         /* an EvalResult when tasks do not ask for one: ERROR_UNEXPECTED */
    GB_ROUNDS_FUTURE_ROUND,      /* for a round not yet started: ERROR_INVALID_VALUE */
    GB_ROUNDS_INVALID,           /* round, task id or num_samples 0, bad client id:
                                    ERROR_INVALID_VALUE */
    GB_ROUNDS_BUSY,              /* the caller has not taken the queued actions: ERROR_BUSY */
    GB_ROUNDS_INTERNAL,          /* out of memory: ERROR_INTERNAL */
} gb_rounds_verdict_t;

/* For a status page. */
typedef struct {
    gb_rounds_state_t state;  /* where the loop is */
    uint64_t round;           /* the round in progress or next to start; in DONE the last */
    uint32_t attempt;         /* selections of this round so far (0: none yet) */
    uint64_t last_finished;   /* the last round whose checkpoint is done (0: none) */
    uint32_t failures;        /* abandoned attempts of this round in a row */
    size_t selected;          /* clients with a task in this attempt */
    size_t updated;           /* of them, updates counted */
    size_t evaluated;         /* of them, EvalResults counted */
    size_t answered;          /* of them, clients whose answer is complete */
    size_t gone;              /* of them, unanswered and disconnected: not waited for */
    size_t refused;           /* of them, unanswered, a result refused: waited for only while
                                 the quorum needs them */
    uint64_t dropped;         /* selected clients that left holding a task, in this run */
    uint64_t update_samples;  /* sum of num_samples over counted updates */
    size_t known;             /* distinct clients ever joined */
    size_t connected;         /* of them, connected now */
    uint64_t deadline_ms;     /* TRAINING (and after): when results became late; else 0 */
    uint64_t retry_at_ms;     /* BACKOFF: when the round selects again; else 0 */
    uint64_t tasks_sent;      /* task ids given out in this run */
} gb_rounds_status_t;

/* One known client, for a status page. */
typedef struct {
    const char *client_id;    /* borrowed until the next call that changes the machine */
    uint64_t train_samples;   /* from its last Join */
    uint64_t test_samples;    /* from its last Join */
    bool connected;           /* has a session now */
    bool selected;            /* has a task in the current attempt */
    uint64_t task_id;         /* that task (0: none) */
    bool updated;             /* its Update is counted */
    bool evaluated;           /* its EvalResult is counted */
} gb_rounds_client_t;

typedef struct gb_rounds gb_rounds_t;

/* A usable config: min_clients 2, fraction 1, min_per_round 2, quorum 1,
 * deadline 10 minutes, forever, seed 0, backoff 5 s, GB_ROUNDS_DEFAULT_MAX_CLIENTS,
 * no client evaluation, task_id_base 0. */
void gb_rounds_config_default(gb_rounds_config_t *c);

/* 0, or GB_EINVAL with err naming the field, its value and the rule. */
int gb_rounds_config_check(const gb_rounds_config_t *c, gb_error_t *err) GB_MUST_CHECK;

/* A machine that goes on after last_finished_round (0: a new federation;
 * from a checkpoint: the round it holds), so its first round is
 * last_finished_round + 1. If total_rounds are already finished it starts in
 * DONE with FINISHED queued. The config is copied. NULL and err (GB_EINVAL,
 * GB_ENOMEM) on failure. */
gb_rounds_t *gb_rounds_new(const gb_rounds_config_t *c, uint64_t last_finished_round,
                           gb_error_t *err);

/* Frees the machine; sets *r to NULL; NULL-safe. */
void gb_rounds_destroy(gb_rounds_t **r);

/* A client's session joined (Join welcomed) with train_samples in its
 * training set and test_samples in its test set (kept for the bounds on
 * what it may claim later). A new id is remembered for good; a known one is connected
 * again (a join while connected is a reconnect: the caller has replaced the
 * session and must not report the old one's end). If the client holds an
 * unanswered task of the round collecting now, SEND_TASK is queued again
 * with the same task id and deadline. May start a round. Errors, with no
 * change: GB_EINVAL for an empty id or one longer than GB_ROUNDS_ID_MAX,
 * GB_ERANGE for a new id past max_clients, GB_EAGAIN, GB_ENOMEM. */
int gb_rounds_join(gb_rounds_t *r, const char *client_id, uint64_t train_samples,
                   uint64_t test_samples, uint64_t now, gb_error_t *err) GB_MUST_CHECK;

/* The client's (current) session is gone. The round stops waiting for its
 * task, if any (it may close, or be abandoned and select again, at once);
 * the task stays valid should the client rejoin while the round collects.
 * GB_EINVAL for an id never joined or not connected (no change), GB_EAGAIN. */
int gb_rounds_leave(gb_rounds_t *r, const char *client_id, uint64_t now,
                    gb_error_t *err) GB_MUST_CHECK;

/* An Update (round, task_id, num_samples) from client_id arrived at now.
 * Returns 0 when it is counted (FEED_UPDATE queued, and AGGREGATE if it
 * completes the round) or is a duplicate (nothing changes); otherwise a
 * negative gb_err (GB_EPROTO for a result at the wrong time or from the
 * wrong client, GB_EINVAL for a bad value, GB_EAGAIN, GB_ENOMEM), err
 * filled, a warning logged, and nothing counted. *verdict (may be NULL)
 * always says which, for the reply. */
int gb_rounds_update(gb_rounds_t *r, const char *client_id, uint64_t round, uint64_t task_id,
                     uint64_t num_samples, uint64_t now, gb_rounds_verdict_t *verdict,
                     gb_error_t *err) GB_MUST_CHECK;

/* The same for an EvalResult (num_samples: test samples evaluated); only
 * when config.client_eval asks for them (else GB_ROUNDS_NOT_ASKED). Counted
 * results queue FEED_EVAL. */
int gb_rounds_eval_result(gb_rounds_t *r, const char *client_id, uint64_t round,
                          uint64_t task_id, uint64_t num_samples, uint64_t now,
                          gb_rounds_verdict_t *verdict, gb_error_t *err) GB_MUST_CHECK;

/* The caller refused client_id's Update (eval: EvalResult) for (round,
 * task_id) on its content (a value out of range, a norm past the bound)
 * before calling gb_rounds_update. When the round would have counted that
 * result, the client is no longer waited for once the quorum holds without
 * it: the round closes as soon as every other selected client still
 * connected has answered. It may still send a corrected result, which is
 * counted as usual while the round collects. Anything else (a stale round,
 * a client not selected) changes nothing. 0, or GB_EINVAL (bad id),
 * GB_EAGAIN. */
int gb_rounds_refused(gb_rounds_t *r, const char *client_id, bool eval, uint64_t round,
                      uint64_t task_id, uint64_t now, gb_error_t *err) GB_MUST_CHECK;

/* Time passed: at the deadline the collecting round closes (quorum) or is
 * abandoned (no quorum); at the end of a backoff the round selects again.
 * Call it at gb_rounds_wake_at at the latest. 0, or GB_EAGAIN. */
int gb_rounds_tick(gb_rounds_t *r, uint64_t now, gb_error_t *err) GB_MUST_CHECK;

/* The caller finished the step `step` (AGGREGATE, EVALUATE, PUBLISH or
 * CHECKPOINT) of `round`: queues the next step, or, after CHECKPOINT, ends
 * the round (FINISHED if it was the last, else the next round may select at
 * once). GB_EINVAL when that step of that round is not the one pending (no
 * change), GB_EAGAIN. */
int gb_rounds_step_done(gb_rounds_t *r, gb_rounds_action_kind_t step, uint64_t round,
                        uint64_t now, gb_error_t *err) GB_MUST_CHECK;

/* The caller could not do the pending step: the attempt is abandoned with
 * FAILED (reason: "<step> failed: " + why, why may be NULL) and the round is
 * tried again after the backoff. Errors as for gb_rounds_step_done. */
int gb_rounds_step_failed(gb_rounds_t *r, gb_rounds_action_kind_t step, uint64_t round,
                          const char *why, uint64_t now, gb_error_t *err) GB_MUST_CHECK;

/* Takes the oldest queued action into *out; false when there is none. */
bool gb_rounds_next_action(gb_rounds_t *r, gb_rounds_action_t *out);

/* Actions queued and not yet taken. */
size_t gb_rounds_pending(const gb_rounds_t *r);

/* The time at which gb_rounds_tick has something to do: the deadline while
 * TRAINING, the end of the backoff in BACKOFF; UINT64_MAX otherwise. */
uint64_t gb_rounds_wake_at(const gb_rounds_t *r);

/* The machine as it is now. */
void gb_rounds_status(const gb_rounds_t *r, gb_rounds_status_t *out);

/* Known client client_id into *out; false when it never joined. */
bool gb_rounds_find_client(const gb_rounds_t *r, const char *client_id, gb_rounds_client_t *out);

/* Known client i (0..known-1, in id order) into *out; false past the end. */
bool gb_rounds_client_at(const gb_rounds_t *r, size_t i, gb_rounds_client_t *out);

/* Static names: "training", "send_task", "wrong_task", ...; "?" if unknown. */
const char *gb_rounds_state_name(gb_rounds_state_t s);
const char *gb_rounds_action_name(gb_rounds_action_kind_t k);
const char *gb_rounds_verdict_name(gb_rounds_verdict_t v);

/* The ErrorCode to reply with for a refusal (ERROR_DUPLICATE for a
 * duplicate, ERROR_UNSPECIFIED for ACCEPTED: nothing to refuse). */
Glassbox__ErrorCode gb_rounds_verdict_error_code(gb_rounds_verdict_t v);

/* Selection (round_select.c), public so it can be checked on its own. */

/* How many of `available` clients a round selects:
 * max(min_per_round, ceil(fraction * available)), at most available. The
 * product is rounded before the ceiling so that 0.1 * 30 selects 3, not 4. */
size_t gb_rounds_select_count(size_t available, double fraction, size_t min_per_round);

/* Chooses k of the n entries of idx (k <= n) uniformly, seeded by (seed,
 * round, attempt) and by nothing else: the chosen entries end up in
 * idx[0..k), in ascending order; idx[k..n) keeps the rest in no given order.
 * Callers pass candidates in a canonical order (clients sorted by id), so
 * the choice does not depend on how they were gathered. */
void gb_rounds_sample(uint64_t seed, uint64_t round, uint32_t attempt, size_t *idx, size_t n,
                      size_t k);

#endif
