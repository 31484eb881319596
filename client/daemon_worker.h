/* Private to the daemon (daemon.c) and the virtual clients that share a run
 * queue (virtual_clients.c): the training of one Task off the daemon's
 * thread while the daemon's loop keeps the link alive.
 *
 * A worker is one daemon's slot for one task at a time. It runs its tasks
 * through a run queue: one thread that trains one task at a time, in the
 * order they were started. A daemon alone gets a queue of its own; the N
 * virtual clients of one process share one (gb_daemon_queue_new), so their
 * tasks train one after another with all the process's threads instead of
 * N at once on oversubscribed cores, while every daemon's link stays alive
 * on the daemons' own thread. A task waiting in the queue is the worker's
 * just as a running one is: cancelling it takes it out of the queue at once.
 *
 * The loop never waits for the worker: it starts a task, may raise the
 * cancellation flag, and asks gb_daemon_worker_done until the task has
 * finished (or watches the queue's descriptor, which becomes readable when
 * any task of the queue has); only then does gb_daemon_worker_collect take
 * the results. The runner's results live in the runner only until its next
 * run, so the queue's thread packs the Update and EvalResult into buffers of
 * their own before it says the task is done: the runner is free for the next
 * task and the daemon can keep the bytes until the coordinator acknowledges
 * them.
 *
 * Threads: gb_daemon_worker_* of one worker are called from one thread (its
 * daemon's); the queue's thread touches only the runner, the task and the
 * result slot of the worker whose task it runs, between start and done.
 * gb_daemon_queue_fd, _drain and _stats may be called from any thread.
 *
 * Ownership: gb_daemon_queue_new returns a queue the caller owns
 * (gb_daemon_queue_destroy), which must outlive every worker made on it.
 * gb_daemon_worker_new returns a worker the caller owns
 * (gb_daemon_worker_destroy); it borrows the queue given, or owns the one it
 * made. gb_daemon_worker_start takes the Task's Envelope and borrows the
 * runner until the task is collected. A collected result's buffers are the
 * caller's (gb_daemon_worker_result_free). */
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
    double seconds;            /* wall time of the run (0: cancelled before it started) */
    double queued_seconds;     /* wall time it waited in the run queue before that */
    double started;            /* gb_time_now() when it began to run (0: never ran) */
    uint64_t started_unix_ms;  /* the same on the wall clock (0: never ran) */
    uint8_t *update;           /* packed Update (gb_malloc), or NULL */
    size_t update_len;         /* its bytes */
    uint8_t *eval;             /* packed EvalResult (gb_malloc), or NULL */
    size_t eval_len;           /* its bytes */
} gb_daemon_worker_result_t;

/* A run queue's counters, for logs and tests. */
typedef struct {
    long waiting;     /* tasks in the queue now, not yet started */
    long running;     /* tasks running now (0 or 1) */
    long started;     /* tasks the queue's thread began to run */
    long finished;    /* of those, finished (successfully, failed or cancelled) */
    long withdrawn;   /* tasks cancelled while they waited: never run */
    long most_running; /* the most tasks ever running at once: 1 once any has run */
} gb_daemon_queue_stats_t;

typedef struct gb_daemon_queue gb_daemon_queue_t;
typedef struct gb_daemon_worker gb_daemon_worker_t;

/* A run queue and its thread, idle (asleep) until a task is started. The
 * thread blocks SIGINT and SIGTERM, so they reach the process's own
 * threads (and interrupt their polls), as do the engine threads it makes.
 * NULL and err on GB_ENOMEM or GB_EIO (no thread, no descriptor). */
gb_daemon_queue_t *gb_daemon_queue_new(gb_error_t *err);

/* Stops and joins the thread and frees the queue; sets *q to NULL;
 * NULL-safe. Every worker made on it must be destroyed first. */
void gb_daemon_queue_destroy(gb_daemon_queue_t **q);

/* A descriptor that is readable (POLLIN) once any task of the queue has
 * finished since the last gb_daemon_queue_drain: for a loop that waits on
 * many daemons at once. Borrowed for the queue's life. */
int gb_daemon_queue_fd(const gb_daemon_queue_t *q);

/* Makes the descriptor unreadable again. Call it before looking at which
 * workers are done, never after: a task finishing in between then makes
 * it readable again instead of going unnoticed. */
void gb_daemon_queue_drain(gb_daemon_queue_t *q);

/* A snapshot of the queue's counters. */
gb_daemon_queue_stats_t gb_daemon_queue_stats(const gb_daemon_queue_t *q);

/* An idle worker on queue q (borrowed), or on a queue of its own when q is
 * NULL. NULL and err on GB_ENOMEM (or the queue's own failures). */
gb_daemon_worker_t *gb_daemon_worker_new(gb_daemon_queue_t *q, gb_error_t *err);

/* Cancels the worker's task (takes it out of the queue, or stops it at the
 * next training batch), waits for it, frees what it holds; sets *w to
 * NULL; NULL-safe. */
void gb_daemon_worker_destroy(gb_daemon_worker_t **w);

/* The queue of its own when the worker made one (for gb_daemon_queue_fd
 * and _drain), else NULL (the caller watches the shared one). Borrowed for
 * the worker's life. */
gb_daemon_queue_t *gb_daemon_worker_own_queue(const gb_daemon_worker_t *w);

/* Puts *task (an Envelope with a Task body, taken: *task is NULLed) at the
 * end of the queue, to run on the runner with the cancellation flag
 * cleared. The worker must be idle. Returns 0 (it cannot fail once made;
 * the code is kept for callers written against a thread per task). */
int gb_daemon_worker_start(gb_daemon_worker_t *w, gb_task_runner_t *runner,
                           Glassbox__Envelope **task, uint64_t session,
                           gb_error_t *err) GB_MUST_CHECK;

/* A task was started and not yet collected (waiting, running or done). */
bool gb_daemon_worker_busy(const gb_daemon_worker_t *w);

/* The task waits in the queue behind others' and has not begun to run. */
bool gb_daemon_worker_waiting(const gb_daemon_worker_t *w);

/* The task has finished (or was withdrawn): collect it. */
bool gb_daemon_worker_done(const gb_daemon_worker_t *w);

/* The started task's id and Task (borrowed until collected), or 0 / NULL. */
uint64_t gb_daemon_worker_task_id(const gb_daemon_worker_t *w);
const Glassbox__Task *gb_daemon_worker_task(const gb_daemon_worker_t *w);

/* Asks the task to stop: one still waiting in the queue is withdrawn at
 * once (done, GB_TASK_ECANCELLED, never run); a running one stops before
 * its next batch (the runner reads the flag). Harmless when idle or
 * already done. */
void gb_daemon_worker_cancel(gb_daemon_worker_t *w);

/* Blocks until the started task is done (call gb_daemon_worker_cancel
 * first to make that quick). Returns at once when idle or done. */
void gb_daemon_worker_wait(gb_daemon_worker_t *w);

/* Moves the finished task's result into *out; the worker is idle again.
 * Call only when gb_daemon_worker_done. */
void gb_daemon_worker_collect(gb_daemon_worker_t *w, gb_daemon_worker_result_t *out);

/* Frees a collected result's buffers (NULL-safe fields). */
void gb_daemon_worker_result_free(gb_daemon_worker_result_t *r);

#endif
