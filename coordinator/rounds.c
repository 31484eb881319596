/* The round loop's state machine (see rounds.h): events in, actions out.
 *
 * Shape: the known clients live in one array sorted by id, so a result finds
 * its client by binary search and selection walks the clients in the
 * canonical order it needs without sorting. Clients are never forgotten (a
 * rejoining client keeps its task), which is why their number is bounded by
 * max_clients. A client's part in the current attempt (selected, task id,
 * what it has sent) is kept in its own record, so inserting a client, which
 * moves records, never leaves a stale index behind.
 *
 * Every mutating call first makes room for the most it could queue and for
 * one more client (s_begin), and only then changes anything: a refusal or an
 * allocation failure leaves the machine as it was, and no call can fail
 * halfway through a selection. Time is applied next (s_apply_time), the
 * event itself after that, and a round is started last (s_try_start), so a
 * client that joins at the end of a backoff is among those the round
 * chooses from. */
#include "rounds.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "net/pki.h"
#include "util/alloc.h"
#include "util/log.h"

_Static_assert(GB_ROUNDS_ID_MAX == GB_PKI_NAME_MAX, "a client id is a certificate CN");

#define S_MAX_DOUBLINGS 20 /* backoff_ms << 20 is past any backoff cap */

typedef struct {
    char id[GB_ROUNDS_ID_MAX + 1]; /* the client id (certificate CN) */
    uint64_t train_samples;        /* from its last Join */
    uint64_t test_samples;         /* from its last Join */
    bool connected;                /* has a session now */
    bool selected;                 /* holds a task of the current attempt */
    bool updated;                  /* its Update for that task is counted */
    bool evaluated;                /* its EvalResult for that task is counted */
    bool update_refused;           /* an Update for that task was refused on its content */
    bool eval_refused;             /* an EvalResult for that task was */
    uint64_t task_id;              /* that task (0: none) */
} s_client_t;

struct gb_rounds {
    gb_rounds_config_t c;          /* the config, checked */
    gb_rounds_state_t state;       /* where the loop is */
    uint64_t round;                /* in progress or next; in DONE the last one */
    uint32_t attempt;              /* selections of this round so far */
    uint64_t last_finished;        /* last round whose checkpoint is done */
    uint32_t failures;             /* abandoned attempts of this round in a row */
    uint64_t now;                  /* the latest time any event carried */
    uint64_t deadline;             /* the current attempt's deadline (0: none) */
    uint64_t retry_at;             /* BACKOFF: when to select again */
    uint64_t last_task_id;         /* the last task id given out */
    s_client_t *clients;           /* known clients, sorted by id */
    size_t n_clients, clients_cap; /* used and allocated */
    size_t *scratch;               /* selection candidates, clients_cap entries */
    size_t scratch_cap;            /* allocated entries of scratch */
    size_t n_connected;            /* clients with a session */
    size_t n_selected;             /* clients holding a task of this attempt */
    size_t n_updated, n_evaluated; /* their results counted */
    size_t n_answered;             /* of them, complete */
    size_t n_gone;                 /* of them, unanswered and without a session: not
                                      waited for (they count again if they rejoin) */
    size_t n_gone_no_update;       /* of n_gone, those whose Update is not in */
    size_t n_refused;              /* of them, unanswered, connected, a result refused: waited
                                      for only while the quorum needs them */
    uint64_t dropped;              /* selected clients that left holding their task, in all */
    uint64_t update_samples;       /* sum of counted updates' num_samples */
    uint64_t eval_samples;         /* sum of counted EvalResults' num_samples */
    gb_rounds_action_t *q;         /* queued actions: q[q_head..q_len) untaken */
    size_t q_head, q_len, q_cap;   /* first untaken, end, allocated */
};

/* ---- names ------------------------------------------------------------ */

const char *gb_rounds_state_name(gb_rounds_state_t s)
{
    switch (s) {
    case GB_ROUNDS_WAITING: return "waiting";
    case GB_ROUNDS_BACKOFF: return "backoff";
    case GB_ROUNDS_TRAINING: return "training";
    case GB_ROUNDS_AGGREGATING: return "aggregating";
    case GB_ROUNDS_EVALUATING: return "evaluating";
    case GB_ROUNDS_PUBLISHING: return "publishing";
    case GB_ROUNDS_CHECKPOINTING: return "checkpointing";
    case GB_ROUNDS_DONE: return "done";
    }
    return "?";
}

const char *gb_rounds_action_name(gb_rounds_action_kind_t k)
{
    switch (k) {
    case GB_ROUNDS_ACT_SEND_TASK: return "send_task";
    case GB_ROUNDS_ACT_FEED_UPDATE: return "feed_update";
    case GB_ROUNDS_ACT_FEED_EVAL: return "feed_eval";
    case GB_ROUNDS_ACT_AGGREGATE: return "aggregate";
    case GB_ROUNDS_ACT_EVALUATE: return "evaluate";
    case GB_ROUNDS_ACT_PUBLISH: return "publish";
    case GB_ROUNDS_ACT_CHECKPOINT: return "checkpoint";
    case GB_ROUNDS_ACT_FAILED: return "failed";
    case GB_ROUNDS_ACT_FINISHED: return "finished";
    }
    return "?";
}

const char *gb_rounds_verdict_name(gb_rounds_verdict_t v)
{
    switch (v) {
    case GB_ROUNDS_ACCEPTED: return "accepted";
    case GB_ROUNDS_DUPLICATE: return "duplicate";
    case GB_ROUNDS_STALE_ROUND: return "stale_round";
    case GB_ROUNDS_CLOSED: return "closed";
    case GB_ROUNDS_WRONG_TASK: return "wrong_task";
    case GB_ROUNDS_NOT_SELECTED: return "not_selected";
    case GB_ROUNDS_UNKNOWN_CLIENT: return "unknown_client";
    case GB_ROUNDS_NOT_ASKED: return "not_asked";
    case GB_ROUNDS_FUTURE_ROUND: return "future_round";
    case GB_ROUNDS_INVALID: return "invalid";
    case GB_ROUNDS_BUSY: return "busy";
    case GB_ROUNDS_INTERNAL: return "internal";
    }
    return "?";
}

Glassbox__ErrorCode gb_rounds_verdict_error_code(gb_rounds_verdict_t v)
{
    switch (v) {
    case GB_ROUNDS_ACCEPTED: return GLASSBOX__ERROR_CODE__ERROR_UNSPECIFIED;
    case GB_ROUNDS_DUPLICATE: return GLASSBOX__ERROR_CODE__ERROR_DUPLICATE;
    case GB_ROUNDS_STALE_ROUND:
    case GB_ROUNDS_CLOSED:
    case GB_ROUNDS_WRONG_TASK: return GLASSBOX__ERROR_CODE__ERROR_STALE;
    case GB_ROUNDS_NOT_SELECTED:
    case GB_ROUNDS_UNKNOWN_CLIENT:
    case GB_ROUNDS_NOT_ASKED: return GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED;
    case GB_ROUNDS_FUTURE_ROUND:
    case GB_ROUNDS_INVALID: return GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE;
    case GB_ROUNDS_BUSY: return GLASSBOX__ERROR_CODE__ERROR_BUSY;
    case GB_ROUNDS_INTERNAL: return GLASSBOX__ERROR_CODE__ERROR_INTERNAL;
    }
    return GLASSBOX__ERROR_CODE__ERROR_INTERNAL;
}

/* ---- config ----------------------------------------------------------- */

void gb_rounds_config_default(gb_rounds_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->min_clients = 2;
    c->fraction = 1.0;
    c->min_per_round = 2;
    c->quorum = 1;
    c->deadline_ms = 10 * 60 * 1000;
    c->backoff_ms = 5000;
    c->max_clients = GB_ROUNDS_DEFAULT_MAX_CLIENTS;
}

int gb_rounds_config_check(const gb_rounds_config_t *c, gb_error_t *err)
{
    if (!c)
        return gb_error_set(err, GB_EINVAL, "rounds config: missing");
    if (c->max_clients < 1 || c->max_clients > GB_ROUNDS_MAX_CLIENTS)
        return gb_error_set(err, GB_EINVAL, "rounds config: max_clients %" PRIu32
                            " is out of range 1..%u", c->max_clients, GB_ROUNDS_MAX_CLIENTS);
    if (c->min_clients < 1 || c->min_clients > c->max_clients)
        return gb_error_set(err, GB_EINVAL, "rounds config: min_clients %" PRIu32
                            " is out of range 1..max_clients (%" PRIu32 ")", c->min_clients,
                            c->max_clients);
    if (!isfinite(c->fraction) || c->fraction <= 0 || c->fraction > 1)
        return gb_error_set(err, GB_EINVAL, "rounds config: fraction %g is out of range (0, 1]",
                            c->fraction);
    if (c->min_per_round < 1 || c->min_per_round > c->min_clients)
        return gb_error_set(err, GB_EINVAL, "rounds config: min_per_round %" PRIu32
                            " is out of range 1..min_clients (%" PRIu32 "): a round starts with "
                            "min_clients connected and cannot select more",
                            c->min_per_round, c->min_clients);
    if (c->quorum < 1 || c->quorum > c->min_per_round)
        return gb_error_set(err, GB_EINVAL, "rounds config: quorum %" PRIu32
                            " is out of range 1..min_per_round (%" PRIu32 "): a round of "
                            "min_per_round clients could never reach it",
                            c->quorum, c->min_per_round);
    if (c->deadline_ms < 1 || c->deadline_ms > GB_ROUNDS_MAX_DEADLINE_MS)
        return gb_error_set(err, GB_EINVAL, "rounds config: deadline_ms %" PRIu64
                            " is out of range 1..%" PRIu64, c->deadline_ms,
                            GB_ROUNDS_MAX_DEADLINE_MS);
    if (c->backoff_ms > GB_ROUNDS_MAX_BACKOFF_MS)
        return gb_error_set(err, GB_EINVAL, "rounds config: backoff_ms %" PRIu64
                            " is out of range 0..%" PRIu64, c->backoff_ms,
                            GB_ROUNDS_MAX_BACKOFF_MS);
    if (c->task_id_base > GB_ROUNDS_MAX_TASK_ID_BASE)
        return gb_error_set(err, GB_EINVAL, "rounds config: task_id_base %" PRIu64
                            " is out of range 0..%" PRIu64, c->task_id_base,
                            (uint64_t)GB_ROUNDS_MAX_TASK_ID_BASE);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static uint64_t s_sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool s_id_ok(const char *id)
{
    if (!id)
        return false;
    size_t n = strnlen(id, GB_ROUNDS_ID_MAX + 1);
    return n >= 1 && n <= GB_ROUNDS_ID_MAX;
}

/* Index of id, or -1 with *pos where it would be inserted. */
static long s_find(const gb_rounds_t *r, const char *id, size_t *pos)
{
    size_t lo = 0, hi = r->n_clients;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(r->clients[mid].id, id);
        if (cmp == 0)
            return (long)mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return -1;
}

static s_client_t *s_client(gb_rounds_t *r, const char *id)
{
    long i = s_find(r, id, NULL);
    return i < 0 ? NULL : &r->clients[i];
}

static bool s_answered(const gb_rounds_t *r, const s_client_t *c)
{
    return c->updated && (c->evaluated || !r->c.client_eval);
}

/* A refused result of c's not corrected since: counted in n_refused while c
 * is selected and connected. */
static bool s_refusal_pending(const s_client_t *c)
{
    return (c->update_refused && !c->updated) || (c->eval_refused && !c->evaluated);
}

static void s_set_state(gb_rounds_t *r, gb_rounds_state_t s)
{
    if (r->state == s)
        return;
    gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s -> %s", r->round, r->attempt,
                gb_rounds_state_name(r->state), gb_rounds_state_name(s));
    r->state = s;
}

/* Makes room, before anything changes, for the most one call can queue and
 * for `new_clients` more clients; refuses a caller that has not taken the
 * actions queued so far. */
static int s_begin(gb_rounds_t *r, size_t new_clients, const char *what, gb_error_t *err)
{
    size_t pending = r->q_len - r->q_head;
    if (pending > GB_ROUNDS_MAX_PENDING(r->c.max_clients))
        return gb_error_warn(err, GB_EAGAIN, "rounds: %s refused: %zu actions not taken yet "
                             "(take them with gb_rounds_next_action first)", what, pending);
    if (r->q_head > 0) {
        memmove(r->q, r->q + r->q_head, pending * sizeof *r->q);
        r->q_head = 0;
        r->q_len = pending;
    }
    size_t need = r->n_clients + new_clients + 4;
    if (r->q_cap - r->q_len < need) {
        size_t cap = r->q_len + need;
        if (cap < 2 * r->q_cap)
            cap = 2 * r->q_cap;
        gb_rounds_action_t *q = gb_realloc(r->q, cap * sizeof *q);
        if (!q)
            return gb_error_set(err, GB_ENOMEM, "rounds: %s: out of memory", what);
        r->q = q;
        r->q_cap = cap;
    }
    if (r->n_clients + new_clients > r->clients_cap) {
        size_t cap = r->clients_cap ? 2 * r->clients_cap : 16;
        if (cap > r->c.max_clients)
            cap = r->c.max_clients;
        s_client_t *cl = gb_realloc(r->clients, cap * sizeof *cl);
        if (!cl)
            return gb_error_set(err, GB_ENOMEM, "rounds: %s: out of memory", what);
        r->clients = cl;
        r->clients_cap = cap;
    }
    if (r->scratch_cap < r->clients_cap) {
        size_t *s = gb_realloc(r->scratch, r->clients_cap * sizeof *s);
        if (!s)
            return gb_error_set(err, GB_ENOMEM, "rounds: %s: out of memory", what);
        r->scratch = s;
        r->scratch_cap = r->clients_cap;
    }
    return 0;
}

static gb_rounds_action_t s_action(const gb_rounds_t *r, gb_rounds_action_kind_t kind)
{
    gb_rounds_action_t a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    a.round = r->round;
    a.attempt = r->attempt;
    return a;
}

/* Queues a (room was made by s_begin) and logs it. */
static void s_emit(gb_rounds_t *r, const gb_rounds_action_t *a)
{
    if (r->q_len >= r->q_cap) {
        /* s_begin reserved room for the most one call can queue: running
         * out is this file's bug, and losing an action would hang a round. */
        gb_log_error("rounds: action queue overflow (%zu) dropping %s", r->q_cap,
                     gb_rounds_action_name(a->kind));
        return;
    }
    r->q[r->q_len++] = *a;
    const char *name = gb_rounds_action_name(a->kind);
    switch (a->kind) {
    case GB_ROUNDS_ACT_SEND_TASK:
        gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s: task %" PRIu64
                    " to client '%s', deadline %" PRIu64 "%s", a->round, a->attempt, name,
                    a->task_id, a->client_id, a->deadline_ms,
                    a->evaluate ? ", with evaluation" : "");
        break;
    case GB_ROUNDS_ACT_FEED_UPDATE:
    case GB_ROUNDS_ACT_FEED_EVAL:
        gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s: client '%s' task %" PRIu64
                    " (%" PRIu64 " samples); %zu of %zu answered", a->round, a->attempt, name,
                    a->client_id, a->task_id, a->num_samples, r->n_answered, r->n_selected);
        break;
    case GB_ROUNDS_ACT_AGGREGATE:
    case GB_ROUNDS_ACT_EVALUATE:
        gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s %" PRIu64
                    " results (%" PRIu64 " samples)", a->round, a->attempt, name, a->count,
                    a->num_samples);
        break;
    case GB_ROUNDS_ACT_FAILED:
        gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s: %s", a->round,
                    a->attempt, name, a->reason);
        break;
    default:
        gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s", a->round, a->attempt,
                    name);
        break;
    }
}

static void s_clear_selection(gb_rounds_t *r)
{
    for (size_t i = 0; i < r->n_clients; i++) {
        s_client_t *c = &r->clients[i];
        c->selected = c->updated = c->evaluated = false;
        c->update_refused = c->eval_refused = false;
        c->task_id = 0;
    }
    r->n_selected = r->n_updated = r->n_evaluated = r->n_answered = 0;
    r->n_gone = r->n_gone_no_update = r->n_refused = 0;
    r->update_samples = r->eval_samples = 0;
}

static void s_send_task(gb_rounds_t *r, const s_client_t *c)
{
    gb_rounds_action_t a = s_action(r, GB_ROUNDS_ACT_SEND_TASK);
    memcpy(a.client_id, c->id, sizeof a.client_id);
    a.task_id = c->task_id;
    a.deadline_ms = r->deadline;
    a.evaluate = r->c.client_eval;
    s_emit(r, &a);
}

static uint64_t s_backoff(const gb_rounds_t *r)
{
    uint64_t b = r->c.backoff_ms;
    for (uint32_t i = 1; i < r->failures && i < S_MAX_DOUBLINGS && b < GB_ROUNDS_MAX_BACKOFF_MS;
         i++)
        b *= 2;
    return b < GB_ROUNDS_MAX_BACKOFF_MS ? b : GB_ROUNDS_MAX_BACKOFF_MS;
}

/* The attempt is over without a model: tell the caller, forget the tasks
 * (their results are stale now) and wait before selecting again. */
static void s_abandon(gb_rounds_t *r, gb_rounds_action_kind_t failed_step, const char *reason)
{
    r->failures++;
    uint64_t wait = s_backoff(r);
    gb_rounds_action_t a = s_action(r, GB_ROUNDS_ACT_FAILED);
    a.failed_step = failed_step;
    snprintf(a.reason, sizeof a.reason, "%s", reason);
    s_emit(r, &a);
    gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": abandoned (%" PRIu32
                " in a row); selecting again in %" PRIu64 " ms", r->round, r->attempt,
                r->failures, wait);
    s_clear_selection(r);
    r->deadline = 0;
    r->retry_at = s_sat_add(r->now, wait);
    s_set_state(r, GB_ROUNDS_BACKOFF);
}

static void s_close(gb_rounds_t *r, const char *why)
{
    gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": closed (%s) with %zu of %zu "
                "updates", r->round, r->attempt, why, r->n_updated, r->n_selected);
    s_set_state(r, GB_ROUNDS_AGGREGATING);
    gb_rounds_action_t a = s_action(r, GB_ROUNDS_ACT_AGGREGATE);
    a.count = r->n_updated;
    a.num_samples = r->update_samples;
    s_emit(r, &a);
}

/* Selected clients left and the rest cannot make the round: the attempt is
 * abandoned and, with no backoff (nothing failed that waiting would mend),
 * the round selects again at once among the clients connected now. */
static void s_reselect(gb_rounds_t *r, const char *reason)
{
    gb_rounds_action_t a = s_action(r, GB_ROUNDS_ACT_FAILED);
    snprintf(a.reason, sizeof a.reason, "%s", reason);
    s_emit(r, &a);
    gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": abandoned; selecting again now "
                "among the %zu clients connected", r->round, r->attempt, r->n_connected);
    s_clear_selection(r);
    r->deadline = 0;
    s_set_state(r, GB_ROUNDS_WAITING);
}

/* After a result, a refusal or a departure: closes the attempt once every
 * selected client still connected has answered and the quorum holds, and
 * gives it up at once when the clients still connected can no longer reach
 * the quorum. Clients that are gone are never waited for (they are taken
 * back if they rejoin before then); a client whose result was refused (a
 * bad value, a norm past the bound) may still send a corrected one, so it is
 * waited for only while the quorum needs it: the same result sent again
 * would be refused again, and an honest client never sends another. */
static void s_settle(gb_rounds_t *r)
{
    if (r->state != GB_ROUNDS_TRAINING)
        return;
    size_t waiting = r->n_selected - r->n_answered - r->n_gone - r->n_refused;
    size_t can_update = r->n_selected - r->n_gone_no_update; /* counted or still possible */
    char why[GB_ROUNDS_REASON_MAX];
    if (waiting == 0 && r->n_gone == 0 && r->n_refused == 0) {
        s_close(r, "every selected client answered");
    } else if (waiting == 0 && r->n_updated >= r->c.quorum) {
        snprintf(why, sizeof why,
                 "every selected client still connected answered, %zu gone, %zu refused",
                 r->n_gone, r->n_refused);
        s_close(r, why);
    } else if (can_update < r->c.quorum) {
        snprintf(why, sizeof why, "%zu of %zu selected clients left; the rest cannot reach the "
                 "quorum of %" PRIu32, r->n_gone, r->n_selected, r->c.quorum);
        s_reselect(r, why);
    }
}

/* Brings the machine to `now`: at the deadline the collecting attempt
 * closes or is abandoned. The end of a backoff is s_try_start's. */
static void s_apply_time(gb_rounds_t *r, uint64_t now)
{
    if (now > r->now)
        r->now = now;
    if (r->state != GB_ROUNDS_TRAINING || r->now < r->deadline)
        return;
    if (r->n_updated >= r->c.quorum) {
        s_close(r, "deadline");
        return;
    }
    char reason[GB_ROUNDS_REASON_MAX];
    snprintf(reason, sizeof reason, "deadline passed with %zu of %zu updates, quorum %" PRIu32,
             r->n_updated, r->n_selected, r->c.quorum);
    s_abandon(r, 0, reason);
}

/* Starts an attempt of the current round if its time has come and enough
 * clients are connected. */
static void s_try_start(gb_rounds_t *r)
{
    if (r->state == GB_ROUNDS_BACKOFF && r->now >= r->retry_at) {
        r->retry_at = 0;
        s_set_state(r, GB_ROUNDS_WAITING);
    }
    if (r->state != GB_ROUNDS_WAITING || r->n_connected < r->c.min_clients)
        return;
    size_t n = 0;
    for (size_t i = 0; i < r->n_clients; i++)
        if (r->clients[i].connected)
            r->scratch[n++] = i;
    size_t k = gb_rounds_select_count(n, r->c.fraction, r->c.min_per_round);
    r->attempt++;
    gb_rounds_sample(r->c.seed, r->round, r->attempt, r->scratch, n, k);
    s_clear_selection(r);
    r->deadline = s_sat_add(r->now, r->c.deadline_ms);
    gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": selected %zu of %zu connected "
                "clients (seed %" PRIu64 "), deadline %" PRIu64, r->round, r->attempt, k, n,
                r->c.seed, r->deadline);
    s_set_state(r, GB_ROUNDS_TRAINING);
    for (size_t j = 0; j < k; j++) {
        s_client_t *c = &r->clients[r->scratch[j]];
        c->selected = true;
        c->task_id = ++r->last_task_id;
        r->n_selected++;
        s_send_task(r, c);
    }
}

/* ---- construction ----------------------------------------------------- */

gb_rounds_t *gb_rounds_new(const gb_rounds_config_t *c, uint64_t last_finished_round,
                           gb_error_t *err)
{
    if (gb_rounds_config_check(c, err) != 0)
        return NULL;
    if (last_finished_round == UINT64_MAX) {
        gb_error_set(err, GB_EINVAL, "rounds: last finished round %" PRIu64 " leaves no next "
                     "round", last_finished_round);
        return NULL;
    }
    gb_rounds_t *r = gb_calloc(1, sizeof *r);
    if (r)
        r->q = gb_calloc(8, sizeof *r->q);
    if (!r || !r->q) {
        gb_rounds_destroy(&r);
        gb_error_set(err, GB_ENOMEM, "rounds: out of memory");
        return NULL;
    }
    r->q_cap = 8;
    r->c = *c;
    r->last_finished = last_finished_round;
    r->last_task_id = c->task_id_base;
    if (c->total_rounds && last_finished_round >= c->total_rounds) {
        r->round = last_finished_round;
        r->state = GB_ROUNDS_DONE;
        gb_log_info("rounds: resumed after round %" PRIu64 " of %" PRIu64 ": all done",
                    last_finished_round, c->total_rounds);
        gb_rounds_action_t a = s_action(r, GB_ROUNDS_ACT_FINISHED);
        s_emit(r, &a);
        return r;
    }
    r->round = last_finished_round + 1;
    r->state = GB_ROUNDS_WAITING;
    gb_log_info("rounds: round %" PRIu64 ": waiting for %" PRIu32 " clients (select %g, at "
                "least %" PRIu32 ", quorum %" PRIu32 ", deadline %" PRIu64 " ms, seed %" PRIu64
                ")", r->round, c->min_clients, c->fraction, c->min_per_round, c->quorum,
                c->deadline_ms, c->seed);
    return r;
}

void gb_rounds_destroy(gb_rounds_t **pr)
{
    if (!pr || !*pr)
        return;
    gb_rounds_t *r = *pr;
    gb_free(r->clients);
    gb_free(r->scratch);
    gb_free(r->q);
    gb_free(r);
    *pr = NULL;
}

/* ---- events ----------------------------------------------------------- */

int gb_rounds_join(gb_rounds_t *r, const char *client_id, uint64_t train_samples,
                   uint64_t test_samples, uint64_t now,
                   gb_error_t *err)
{
    if (!s_id_ok(client_id))
        return gb_error_warn(err, GB_EINVAL, "rounds: join refused: client id must be 1..%d "
                             "bytes", GB_ROUNDS_ID_MAX);
    size_t pos = 0;
    long at = s_find(r, client_id, &pos);
    if (at < 0 && r->n_clients >= r->c.max_clients)
        return gb_error_warn(err, GB_ERANGE, "rounds: join of client '%s' refused: %zu clients "
                             "known, the most max_clients allows", client_id, r->n_clients);
    int rc = s_begin(r, at < 0 ? 1 : 0, "join", err);
    if (rc != 0)
        return rc;
    s_apply_time(r, now);
    s_client_t *c;
    if (at < 0) {
        memmove(&r->clients[pos + 1], &r->clients[pos],
                (r->n_clients - pos) * sizeof *r->clients);
        r->n_clients++;
        c = &r->clients[pos];
        memset(c, 0, sizeof *c);
        memcpy(c->id, client_id, strlen(client_id) + 1);
    } else {
        c = &r->clients[at];
    }
    c->train_samples = train_samples;
    c->test_samples = test_samples;
    bool again = c->connected;
    if (!c->connected) {
        c->connected = true;
        r->n_connected++;
    }
    gb_log_info("rounds: round %" PRIu64 ": client '%s' %s (%" PRIu64 " training samples); "
                "%zu of %zu known clients connected", r->round, c->id,
                again ? "joined again on a new session" : at < 0 ? "joined" : "rejoined",
                train_samples, r->n_connected, r->n_clients);
    if (r->state == GB_ROUNDS_TRAINING && c->selected && !s_answered(r, c)) {
        if (!again) {
            r->n_gone--;
            r->n_gone_no_update -= !c->updated;
            r->n_refused += s_refusal_pending(c);
        }
        gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": client '%s' still holds "
                    "task %" PRIu64 ": sending it again", r->round, r->attempt, c->id,
                    c->task_id);
        s_send_task(r, c);
    }
    s_try_start(r);
    return 0;
}

int gb_rounds_leave(gb_rounds_t *r, const char *client_id, uint64_t now, gb_error_t *err)
{
    if (!s_id_ok(client_id))
        return gb_error_warn(err, GB_EINVAL, "rounds: leave refused: client id must be 1..%d "
                             "bytes", GB_ROUNDS_ID_MAX);
    s_client_t *c = s_client(r, client_id);
    if (!c || !c->connected)
        return gb_error_warn(err, GB_EINVAL, "rounds: leave of client '%s' refused: %s",
                             client_id, c ? "not connected" : "never joined");
    int rc = s_begin(r, 0, "leave", err);
    if (rc != 0)
        return rc;
    s_apply_time(r, now);
    c->connected = false;
    r->n_connected--;
    bool holding = r->state == GB_ROUNDS_TRAINING && c->selected && !s_answered(r, c);
    if (holding) {
        r->n_gone++;
        r->n_gone_no_update += !c->updated;
        r->n_refused -= s_refusal_pending(c);
        r->dropped++;
    }
    gb_log_info("rounds: round %" PRIu64 ": client '%s' left%s; %zu of %zu known clients "
                "connected", r->round, c->id,
                holding ? " holding its task: the round no longer waits for it (it is taken "
                          "back if it rejoins while the round collects)"
                        : "",
                r->n_connected, r->n_clients);
    s_settle(r);
    s_try_start(r);
    return 0;
}

/* What a result from c for (round, task_id) deserves now. */
static gb_rounds_verdict_t s_judge(const gb_rounds_t *r, const s_client_t *c, bool eval,
                                   uint64_t round, uint64_t task_id)
{
    if (!c || !c->connected)
        return GB_ROUNDS_UNKNOWN_CLIENT;
    if (eval && !r->c.client_eval)
        return GB_ROUNDS_NOT_ASKED;
    if (round < r->round)
        return GB_ROUNDS_STALE_ROUND;
    if (round > r->round)
        return GB_ROUNDS_FUTURE_ROUND;
    /* A resend of a counted result is acknowledged for as long as the
     * attempt is remembered, even after the round closed: its sender did
     * nothing wrong. */
    if (c->selected && task_id == c->task_id && (eval ? c->evaluated : c->updated))
        return GB_ROUNDS_DUPLICATE;
    if (r->state != GB_ROUNDS_TRAINING)
        return GB_ROUNDS_CLOSED;
    if (!c->selected)
        return GB_ROUNDS_NOT_SELECTED;
    if (task_id != c->task_id)
        return GB_ROUNDS_WRONG_TASK;
    return GB_ROUNDS_ACCEPTED;
}

static const char *s_verdict_text(gb_rounds_verdict_t v)
{
    switch (v) {
    case GB_ROUNDS_STALE_ROUND: return "its round is over";
    case GB_ROUNDS_CLOSED: return "the round is not collecting results now";
    case GB_ROUNDS_WRONG_TASK: return "not the task this client was given";
    case GB_ROUNDS_NOT_SELECTED: return "the client has no task in this round";
    case GB_ROUNDS_UNKNOWN_CLIENT: return "the client has not joined";
    case GB_ROUNDS_NOT_ASKED: return "tasks do not ask for evaluation";
    case GB_ROUNDS_FUTURE_ROUND: return "that round has not started";
    default: return gb_rounds_verdict_name(v);
    }
}

static int s_result(gb_rounds_t *r, bool eval, const char *client_id, uint64_t round,
                    uint64_t task_id, uint64_t num_samples, uint64_t now,
                    gb_rounds_verdict_t *verdict, gb_error_t *err)
{
    const char *what = eval ? "eval result" : "update";
    gb_rounds_verdict_t dummy;
    if (!verdict)
        verdict = &dummy;
    *verdict = GB_ROUNDS_INVALID;
    if (!s_id_ok(client_id))
        return gb_error_warn(err, GB_EINVAL, "rounds: %s refused: client id must be 1..%d bytes",
                             what, GB_ROUNDS_ID_MAX);
    if (round == 0 || task_id == 0 || num_samples == 0)
        return gb_error_warn(err, GB_EINVAL, "rounds: %s from client '%s' refused: round %" PRIu64
                             ", task %" PRIu64 ", num_samples %" PRIu64 " (none may be 0)", what,
                             client_id, round, task_id, num_samples);
    int rc = s_begin(r, 0, what, err);
    if (rc != 0) {
        *verdict = rc == GB_EAGAIN ? GB_ROUNDS_BUSY : GB_ROUNDS_INTERNAL;
        return rc;
    }
    s_apply_time(r, now);
    s_client_t *c = s_client(r, client_id);
    *verdict = s_judge(r, c, eval, round, task_id);
    switch (*verdict) {
    case GB_ROUNDS_ACCEPTED:
        break;
    case GB_ROUNDS_DUPLICATE:
        gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s from client '%s' for task "
                    "%" PRIu64 " again: acknowledged, counted once", r->round, r->attempt, what,
                    client_id, task_id);
        s_try_start(r);
        return 0;
    default:
        rc = *verdict == GB_ROUNDS_FUTURE_ROUND ? GB_EINVAL : GB_EPROTO;
        gb_error_warn(err, rc, "rounds: round %" PRIu64 " (%s): %s from client '%s' for round %"
                      PRIu64 " task %" PRIu64 " refused (%s): %s", r->round,
                      gb_rounds_state_name(r->state), what, client_id, round, task_id,
                      gb_rounds_verdict_name(*verdict), s_verdict_text(*verdict));
        s_try_start(r);
        return rc;
    }
    gb_rounds_action_t a = s_action(r, eval ? GB_ROUNDS_ACT_FEED_EVAL : GB_ROUNDS_ACT_FEED_UPDATE);
    r->n_refused -= s_refusal_pending(c); /* a correction may end it */
    if (eval) {
        c->evaluated = true;
        r->n_evaluated++;
        r->eval_samples = s_sat_add(r->eval_samples, num_samples);
    } else {
        c->updated = true;
        r->n_updated++;
        r->update_samples = s_sat_add(r->update_samples, num_samples);
    }
    r->n_refused += s_refusal_pending(c);
    if (s_answered(r, c))
        r->n_answered++;
    memcpy(a.client_id, c->id, sizeof a.client_id);
    a.task_id = task_id;
    a.num_samples = num_samples;
    s_emit(r, &a);
    s_settle(r);
    s_try_start(r);
    return 0;
}

int gb_rounds_update(gb_rounds_t *r, const char *client_id, uint64_t round, uint64_t task_id,
                     uint64_t num_samples, uint64_t now, gb_rounds_verdict_t *verdict,
                     gb_error_t *err)
{
    return s_result(r, false, client_id, round, task_id, num_samples, now, verdict, err);
}

int gb_rounds_eval_result(gb_rounds_t *r, const char *client_id, uint64_t round,
                          uint64_t task_id, uint64_t num_samples, uint64_t now,
                          gb_rounds_verdict_t *verdict, gb_error_t *err)
{
    return s_result(r, true, client_id, round, task_id, num_samples, now, verdict, err);
}

int gb_rounds_refused(gb_rounds_t *r, const char *client_id, bool eval, uint64_t round,
                      uint64_t task_id, uint64_t now, gb_error_t *err)
{
    if (!s_id_ok(client_id))
        return gb_error_warn(err, GB_EINVAL, "rounds: refusal of a result: client id must be "
                             "1..%d bytes", GB_ROUNDS_ID_MAX);
    int rc = s_begin(r, 0, "refusal", err);
    if (rc != 0)
        return rc;
    s_apply_time(r, now);
    s_client_t *c = s_client(r, client_id);
    /* Only a result the round would have counted holds anything up. */
    bool *flag = c ? (eval ? &c->eval_refused : &c->update_refused) : NULL;
    if (s_judge(r, c, eval, round, task_id) == GB_ROUNDS_ACCEPTED && !*flag) {
        r->n_refused -= s_refusal_pending(c);
        *flag = true;
        r->n_refused += s_refusal_pending(c);
        gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": the %s of client '%s' for "
                    "task %" PRIu64 " was refused: it is waited for only while the quorum of %"
                    PRIu32 " needs it", r->round, r->attempt, eval ? "eval result" : "update",
                    c->id, task_id, r->c.quorum);
        s_settle(r);
    }
    s_try_start(r);
    return 0;
}

int gb_rounds_tick(gb_rounds_t *r, uint64_t now, gb_error_t *err)
{
    int rc = s_begin(r, 0, "tick", err);
    if (rc != 0)
        return rc;
    s_apply_time(r, now);
    s_try_start(r);
    return 0;
}

/* The step the machine waits for the caller to finish, or 0. */
static gb_rounds_action_kind_t s_pending_step(const gb_rounds_t *r)
{
    switch (r->state) {
    case GB_ROUNDS_AGGREGATING: return GB_ROUNDS_ACT_AGGREGATE;
    case GB_ROUNDS_EVALUATING: return GB_ROUNDS_ACT_EVALUATE;
    case GB_ROUNDS_PUBLISHING: return GB_ROUNDS_ACT_PUBLISH;
    case GB_ROUNDS_CHECKPOINTING: return GB_ROUNDS_ACT_CHECKPOINT;
    default: return 0;
    }
}

static int s_check_step(gb_rounds_t *r, gb_rounds_action_kind_t step, uint64_t round,
                        const char *verb, gb_error_t *err)
{
    gb_rounds_action_kind_t pending = s_pending_step(r);
    if (pending == 0 || step != pending || round != r->round)
        return gb_error_warn(err, GB_EINVAL, "rounds: %s %s of round %" PRIu64 " refused: "
                             "round %" PRIu64 " is %s%s%s", gb_rounds_action_name(step), verb,
                             round, r->round, gb_rounds_state_name(r->state),
                             pending ? ", waiting for " : "",
                             pending ? gb_rounds_action_name(pending) : "");
    return s_begin(r, 0, "step report", err);
}

int gb_rounds_step_done(gb_rounds_t *r, gb_rounds_action_kind_t step, uint64_t round,
                        uint64_t now, gb_error_t *err)
{
    int rc = s_check_step(r, step, round, "done", err);
    if (rc != 0)
        return rc;
    s_apply_time(r, now);
    gb_log_info("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s done", r->round, r->attempt,
                gb_rounds_action_name(step));
    gb_rounds_action_t a;
    switch (step) {
    case GB_ROUNDS_ACT_AGGREGATE:
        s_set_state(r, GB_ROUNDS_EVALUATING);
        a = s_action(r, GB_ROUNDS_ACT_EVALUATE);
        a.count = r->n_evaluated;
        a.num_samples = r->eval_samples;
        s_emit(r, &a);
        break;
    case GB_ROUNDS_ACT_EVALUATE:
        s_set_state(r, GB_ROUNDS_PUBLISHING);
        a = s_action(r, GB_ROUNDS_ACT_PUBLISH);
        s_emit(r, &a);
        break;
    case GB_ROUNDS_ACT_PUBLISH:
        s_set_state(r, GB_ROUNDS_CHECKPOINTING);
        a = s_action(r, GB_ROUNDS_ACT_CHECKPOINT);
        s_emit(r, &a);
        break;
    default: /* CHECKPOINT: s_check_step let nothing else through */
        r->last_finished = r->round;
        r->failures = 0;
        gb_log_info("rounds: round %" PRIu64 " finished", r->round);
        if (r->c.total_rounds && r->round >= r->c.total_rounds) {
            s_set_state(r, GB_ROUNDS_DONE);
            a = s_action(r, GB_ROUNDS_ACT_FINISHED);
            s_emit(r, &a);
            break;
        }
        s_clear_selection(r);
        r->deadline = 0;
        s_set_state(r, GB_ROUNDS_WAITING);
        r->round++;
        r->attempt = 0;
        s_try_start(r);
        break;
    }
    return 0;
}

int gb_rounds_step_failed(gb_rounds_t *r, gb_rounds_action_kind_t step, uint64_t round,
                          const char *why, uint64_t now, gb_error_t *err)
{
    int rc = s_check_step(r, step, round, "failed", err);
    if (rc != 0)
        return rc;
    s_apply_time(r, now);
    char reason[GB_ROUNDS_REASON_MAX];
    snprintf(reason, sizeof reason, "%s failed: %s", gb_rounds_action_name(step),
             why && *why ? why : "no reason given");
    gb_log_warn("rounds: round %" PRIu64 " attempt %" PRIu32 ": %s", r->round, r->attempt,
                reason);
    s_abandon(r, step, reason);
    s_try_start(r);
    return 0;
}

/* ---- queries ---------------------------------------------------------- */

bool gb_rounds_next_action(gb_rounds_t *r, gb_rounds_action_t *out)
{
    if (r->q_head >= r->q_len)
        return false;
    *out = r->q[r->q_head++];
    if (r->q_head == r->q_len)
        r->q_head = r->q_len = 0;
    return true;
}

size_t gb_rounds_pending(const gb_rounds_t *r)
{
    return r->q_len - r->q_head;
}

uint64_t gb_rounds_wake_at(const gb_rounds_t *r)
{
    if (r->state == GB_ROUNDS_TRAINING)
        return r->deadline;
    if (r->state == GB_ROUNDS_BACKOFF)
        return r->retry_at;
    return UINT64_MAX;
}

void gb_rounds_status(const gb_rounds_t *r, gb_rounds_status_t *out)
{
    memset(out, 0, sizeof *out);
    out->state = r->state;
    out->round = r->round;
    out->attempt = r->attempt;
    out->last_finished = r->last_finished;
    out->failures = r->failures;
    out->selected = r->n_selected;
    out->updated = r->n_updated;
    out->evaluated = r->n_evaluated;
    out->answered = r->n_answered;
    out->gone = r->n_gone;
    out->refused = r->n_refused;
    out->dropped = r->dropped;
    out->update_samples = r->update_samples;
    out->known = r->n_clients;
    out->connected = r->n_connected;
    out->deadline_ms = r->deadline;
    out->retry_at_ms = r->state == GB_ROUNDS_BACKOFF ? r->retry_at : 0;
    out->tasks_sent = r->last_task_id - r->c.task_id_base;
}

bool gb_rounds_find_client(const gb_rounds_t *r, const char *client_id, gb_rounds_client_t *out)
{
    long i = s_id_ok(client_id) ? s_find(r, client_id, NULL) : -1;
    return i >= 0 && gb_rounds_client_at(r, (size_t)i, out);
}

bool gb_rounds_client_at(const gb_rounds_t *r, size_t i, gb_rounds_client_t *out)
{
    if (i >= r->n_clients)
        return false;
    const s_client_t *c = &r->clients[i];
    out->client_id = c->id;
    out->train_samples = c->train_samples;
    out->test_samples = c->test_samples;
    out->connected = c->connected;
    out->selected = c->selected;
    out->task_id = c->task_id;
    out->updated = c->updated;
    out->evaluated = c->evaluated;
    return true;
}
