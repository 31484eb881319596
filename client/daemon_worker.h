/* Private to the daemon (daemon.c): the worker thread that runs one Task
 * with the task runner while the daemon's loop keeps the link alive.
 *
 * One worker runs one task at a time, on a thread of its own made per task
 * (a task takes seconds to minutes; a thread costs microseconds). The loop
 * never waits for it: it starts a task, may raise the cancellation flag, and
 * asks gb_daemon_worker_done until the thread has finished; only then does
 * gb_daemon_worker_collect join it (which returns at once) and take the
 * results. The runner's results live in the runner only until its next run,
 * so the thread packs the Update and EvalResult into buffers of its own
 * before it says it is done: the runner is free for the next task and the
 * daemon can keep the bytes until the coordinator acknowledges them.
 *
 * Ownership: gb_daemon_worker_new returns a worker the caller owns
 * (gb_daemon_worker_destroy). gb_daemon_worker_start takes the Task's
 * Envelope and borrows the runner until the task is collected. A collected
 * result's buffers are the caller's (gb_daemon_worker_result_free). */
#ifndef GB_CLIENT_DAEMON_WORKER_H
#define GB_CLIENT_DAEMON_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "task_runner.h"
#include "util/error.h"

/* What one task came to. */
typedef struct {
    uint64_t round;            /* the task's round */
    uint64_t task_id;          /* its id */
    uint64_t deadline_unix_ms; /* its deadline (0: none) */
    uint64_t session;          /* link session the Task arrived on */
    uint64_t sequence;         /* the Task envelope's sequence on that session */
    int rc;                    /* the runner's: 0, GB_TASK_ECANCELLED or a gb_err */
    gb_error_t err;            /* why, when rc != 0 */
    gb_task_result_t res;      /* the runner's scalars; every pointer in it NULLed */
    double seconds;            /* wall time of the run */
    uint8_t *update;           /* packed Update (gb_malloc), or NULL */
    size_t update_len;         /* its bytes */
    uint8_t *eval;             /* packed EvalResult (gb_malloc), or NULL */
    size_t eval_len;           /* its bytes */
} gb_daemon_worker_result_t;

typedef struct gb_daemon_worker gb_daemon_worker_t;

/* An idle worker. NULL and err on GB_ENOMEM. */
gb_daemon_worker_t *gb_daemon_worker_new(gb_error_t *err);

/* Cancels a running task, joins the thread (at most one training batch
 * later), frees what it holds; sets *w to NULL; NULL-safe. */
void gb_daemon_worker_destroy(gb_daemon_worker_t **w);

/* Starts *task (an Envelope with a Task body, taken: *task is NULLed) on the
 * runner in a new thread, with the cancellation flag cleared. The worker
 * must be idle. Returns 0, or GB_ENOMEM / GB_EIO (no thread) with *task
 * still the caller's. */
int gb_daemon_worker_start(gb_daemon_worker_t *w, gb_task_runner_t *runner,
                           Glassbox__Envelope **task, uint64_t session,
                           gb_error_t *err) GB_MUST_CHECK;

/* A task was started and not yet collected. */
bool gb_daemon_worker_busy(const gb_daemon_worker_t *w);

/* The task's thread has finished: collect it. */
bool gb_daemon_worker_done(const gb_daemon_worker_t *w);

/* The running task's id and Task (borrowed until collected), or 0 / NULL. */
uint64_t gb_daemon_worker_task_id(const gb_daemon_worker_t *w);
const Glassbox__Task *gb_daemon_worker_task(const gb_daemon_worker_t *w);

/* Asks the running task to stop (the runner reads the flag before every
 * batch). Harmless when idle or already done. */
void gb_daemon_worker_cancel(gb_daemon_worker_t *w);

/* Joins the finished thread and moves its result into *out; the worker is
 * idle again. Call only when gb_daemon_worker_done. */
void gb_daemon_worker_collect(gb_daemon_worker_t *w, gb_daemon_worker_result_t *out);

/* Frees a collected result's buffers (NULL-safe fields). */
void gb_daemon_worker_result_free(gb_daemon_worker_result_t *r);

#endif
