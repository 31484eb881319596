/* The client daemon (DESIGN.md, Client): one federated client as an object.
 * It connects to the coordinator over the secure link (net/link.h), joins,
 * heartbeats, runs each Task with the task runner (client/task_runner.h) on
 * a run queue's thread, and sends the Update and EvalResult until the
 * coordinator acknowledges them. The link reconnects by itself with backoff; every new
 * session starts a new conversation (net/conversation.h) and a new Join, and
 * whatever results are still unacknowledged are sent again once the
 * coordinator has welcomed the client back (it deduplicates by task id).
 *
 * The daemon is a single-threaded event loop driven by gb_daemon_step, plus
 * a run queue (daemon_worker.h) whose thread trains. No globals: a process
 * may run many daemons (`--virtual N`), each with its own identity, socket
 * and data; those share one run queue, so one task of theirs trains at a
 * time, and one thread waits on all their sockets in one poll (each daemon
 * a source of the process's event loop, gb_daemon_attach) instead of each
 * daemon waiting in a gb_daemon_step of its own.
 *
 * On every new session: the conversation is reset and Join is sent
 * (protocol range, client_name, software_version "glassbox " GLASSBOX_VERSION,
 * train/test samples, the dataset description, last_round, capabilities).
 * On Welcome: the heartbeat interval is recorded, a Heartbeat is sent at once
 * and then at that interval (state, round, progress), the task runner is
 * made for the client id in Welcome (hashed with gb_daemon_client_id) if
 * there is none yet, and unacknowledged results are resent.
 * On Task: a task already running, waiting or finished under the same id
 * (the coordinator sends it again to a client that rejoins) is not run
 * again. Any other task is checked (its model must fit the local data), then
 * cancels the running one and runs next. Results are sent when the worker
 * is done; results after the task's deadline are still sent, and logged as
 * late: the coordinator decides.
 * On replies to a result: Ack (acked_sequence = the result's sequence) or
 * ERROR_DUPLICATE drop it as delivered; ERROR_STALE drops it unsent; ERROR_BUSY
 * resends it after retry_after_ms; ERROR_SHUTTING_DOWN with retry_after_ms > 0
 * keeps it for the next session; any other refusal drops it with a warning
 * (sending the same bytes again cannot change the answer).
 * ERROR_SHUTTING_DOWN with retry_after_ms 0 ends the run: the federation has
 * finished. ERROR_VERSION in reply to Join ends it too, as a failure, and so
 * does a coordinator away for longer than give_up_s (no session since
 * the daemon started or the last one ended).
 * Anything malformed or unexpected from the coordinator gets an Error reply
 * (the decoder's reason code, or ERROR_UNEXPECTED) and a log line, and changes
 * nothing. A task the runner refuses in its own checks gets an Error too, but
 * it has already cancelled the task that was running (only the model/data fit
 * is checked before that).
 *
 * A task waiting in a shared run queue behind other daemons' is this
 * daemon's running task as far as the protocol goes (heartbeats say
 * TRAINING, progress 0): a newer Task, or gb_daemon_stop, withdraws it from
 * the queue at once.
 *
 * Threads: gb_daemon_* functions are called from one thread. The queue's
 * thread touches only the task runner, the task it was given and the
 * worker's result slot; the two meet through atomics (cancel, done), and the
 * results are packed into the daemon's own buffers before the worker says
 * it is done, so the runner is free for the next task at once.
 *
 * Ownership: gb_daemon_new returns a daemon the caller owns
 * (gb_daemon_destroy). It borrows the ZeroMQ context, the two datasets and
 * the run queue, which must outlive it and (the datasets) not change;
 * option strings are copied. */
#ifndef GB_CLIENT_DAEMON_H
#define GB_CLIENT_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "data/dataset.h"
#include "glassbox.pb-c.h"
#include "net/envelope.h"
#include "net/event_loop.h"
#include "task_runner.h"
#include "util/error.h"

/* Returned by gb_daemon_step when the federation has finished (the
 * coordinator said ERROR_SHUTTING_DOWN with retry_after_ms 0): positive, so
 * it never looks like a gb_err. */
#define GB_DAEMON_FINISHED 1

/* Unacknowledged results kept at most; the oldest is dropped (with a
 * warning) past this. */
#define GB_DAEMON_MAX_RESULTS 16

/* Heartbeat interval used when Welcome gives none. */
#define GB_DAEMON_DEFAULT_HEARTBEAT_MS 5000

/* Items gb_daemon_poll_items fills, most. */
#define GB_DAEMON_POLL_ITEMS 3

/* The run queue of daemon_worker.h, for daemons that share one. */
typedef struct gb_daemon_queue gb_daemon_queue_t;

/* One finished task, for the caller's output line. */
typedef struct {
    uint64_t round;          /* the task's round */
    uint64_t task_id;        /* its id */
    bool trained;            /* an Update was made */
    bool evaluated;          /* an EvalResult was made */
    uint64_t samples;        /* training samples used (the FedAvg weight) */
    long steps;              /* optimiser steps */
    double train_loss;       /* mean training loss */
    double train_accuracy;   /* mean training accuracy (0 for regression) */
    double seconds;          /* wall time of the task's run */
    double queued_seconds;   /* wall time it waited in the run queue before that */
    double eval_seconds;     /* of seconds: evaluating (0: not asked) */
    double explain_seconds;  /* of seconds: explaining (0: not asked) */
    double train_seconds;    /* of seconds: training (0: not asked) */
    double started;          /* gb_time_now() when it began to run */
    uint64_t started_unix_ms; /* the same on the wall clock */
    double delta_norm;       /* ||delta|| before clipping */
    bool clipped;            /* the delta was clipped */
    double eval_loss;        /* evaluation of the global model, if evaluated */
    double eval_accuracy;    /* ditto */
    uint64_t eval_samples;   /* test samples evaluated */
    uint64_t explained;      /* samples explained (0: none) */
    bool late;               /* finished after the task's deadline */
} gb_daemon_task_report_t;

/* Called on the daemon's thread (inside gb_daemon_step) for every task that
 * finished; the report is borrowed for the call. */
typedef void (*gb_daemon_report_fn)(void *arg, const gb_daemon_task_report_t *r);

/* Loads the data shard the coordinator dealt (simulation): fills *train
 * and *test (either may be NULL) with datasets the callee owns and keeps
 * until the daemon is destroyed. Returns 0 or a gb_err with err filled. */
typedef int (*gb_daemon_shard_fn)(void *arg, const Glassbox__DataShard *shard,
                                  const gb_dataset_t **train, const gb_dataset_t **test,
                                  gb_error_t *err);

typedef struct {
    void *zmq_ctx;              /* ZeroMQ context (borrowed; required) */
    const char *endpoint;       /* the coordinator, "tcp://HOST:7700" (required) */
    const char *cert_file;      /* PEM: this client's certificate (required) */
    const char *key_file;       /* PEM: its private key (required) */
    const char *ca_file;        /* PEM: the federation CA (required) */
    const char *server_name;    /* name on the coordinator's certificate (required) */
    const char *client_name;    /* Join.client_name (NULL: the certificate's CN) */
    const gb_dataset_t *train;  /* training split (borrowed; NULL: no training) */
    const gb_dataset_t *test;   /* test split (borrowed; NULL: no evaluation) */
    const char *dataset;        /* Join.dataset, "fashion-mnist iid 3/10" (NULL: the
                                   training split's name) */
    int threads;                /* engine workers for training, 1..256 (0: 1) */
    gb_daemon_queue_t *queue;   /* run queue shared with other daemons of the process
                                   (borrowed; NULL: the daemon makes its own) */
    gb_task_engine_t *engine;   /* model and buffers shared by the daemons of that queue
                                   (borrowed, task_runner.h; NULL: the daemon's own). Only
                                   with a shared queue, which runs one task at a time */
    int heartbeat_grid_ms;      /* heartbeats fall on multiples of this on the monotonic
                                   clock (at most a tenth of the interval late), so many
                                   daemons' share one wake-up (0: exactly on time) */
    int retry_ms;               /* first reconnection delay (0: the link's default) */
    int retry_max_ms;           /* reconnection backoff ceiling (0: the link's default) */
    int give_up_s;              /* without a session to the coordinator for this long,
                                   gb_daemon_step fails with GB_ECLOSED (0: never, for a
                                   daemon under a supervisor that keeps it up) */
    gb_daemon_shard_fn load_shard; /* with train and test NULL: ask the coordinator for a
                                   shard in Join and load it at the first Welcome (the
                                   coordinator turns the Join away as busy until the
                                   client joins again with its samples); dataset is then
                                   required */
    void *shard_arg;            /* passed to load_shard */
    gb_daemon_report_fn report; /* per finished task (may be NULL) */
    void *report_arg;           /* passed to report */
} gb_daemon_options_t;

/* What the daemon is doing, for logs, status and tests. */
typedef struct {
    bool connected;              /* a session is up */
    bool welcomed;               /* Welcome received on this session */
    bool finished;               /* the federation finished */
    uint64_t sessions;           /* sessions established so far */
    char client_id[GB_ENVELOPE_MAX_NAME + 1]; /* from the last Welcome ("" before) */
    uint32_t heartbeat_interval_ms; /* in use (0 before Welcome) */
    Glassbox__ClientState state; /* what heartbeats report now */
    uint64_t running_task_id;    /* the task the worker runs, or that waits in the run
                                    queue for its turn (0: none) */
    bool task_queued;            /* running_task_id waits in the run queue */
    uint64_t waiting_task_id;    /* the task that runs next (0: none) */
    uint64_t last_round;         /* last round whose task finished here */
    long tasks_done;             /* tasks finished with results */
    long tasks_cancelled;        /* tasks cancelled by a newer one */
    long tasks_failed;           /* tasks refused or failed in the runner */
    long tasks_ignored;          /* tasks received again under a known id */
    size_t results_pending;      /* results not yet acknowledged */
    long results_sent;           /* Update/EvalResult envelopes queued (resends count) */
    long results_acked;          /* results acknowledged (Ack or ERROR_DUPLICATE) */
    long results_dropped;        /* results given up (stale, refused, overflow) */
    long heartbeats_sent;        /* Heartbeats queued */
    long heartbeats_acked;       /* Acks naming a heartbeat */
    long errors_sent;            /* Error replies to the coordinator */
    long errors_received;        /* Error envelopes from the coordinator */
} gb_daemon_status_t;

typedef struct gb_daemon gb_daemon_t;

/* Checks the options (required fields, threads in range, at least one
 * split, the certificate readable and its CN a valid name), builds the TLS
 * configuration and the link client (whose first handshake starts at once).
 * The task runner is made later, on the first Welcome. Returns NULL and
 * fills err (GB_EINVAL for options, the PKI's or TLS's codes for files,
 * GB_ENOMEM). */
gb_daemon_t *gb_daemon_new(const gb_daemon_options_t *opts, gb_error_t *err);

/* Cancels a running task and waits for the worker (at most one training
 * batch; a task still waiting in the run queue is withdrawn), frees
 * everything; sets *d to NULL; NULL-safe. Does not say goodbye: call
 * gb_daemon_stop first for that. */
void gb_daemon_destroy(gb_daemon_t **d);

/* Runs the loop for at most timeout_ms (0: only what is pending now; -1:
 * until something happens): link events, the worker finishing (results are
 * queued, the report callback called, the next task started), heartbeats
 * and resends that are due. Returns after the events that were pending when
 * the first one arrived are handled, or when timeout_ms has passed; it never
 * waits for the worker. Returns 0, GB_DAEMON_FINISHED once the federation has
 * finished (and on every later call), or a negative gb_err: GB_EPROTO when
 * the coordinator refused Join's protocol versions, GB_ENOMEM, or a failure
 * of the socket itself (err filled). A step that waits waits on the daemon's
 * own event loop (net/event_loop.h, made on the first such call), which
 * sleeps until the daemon's nearest deadline; a process with many daemons
 * attaches them to its one loop instead (gb_daemon_attach). */
int gb_daemon_step(gb_daemon_t *d, int timeout_ms, gb_error_t *err) GB_MUST_CHECK;

/* For a caller that drives many daemons from one thread: fills up to cap
 * items (cap >= GB_DAEMON_POLL_ITEMS) with what the daemon waits on (its
 * link's sockets; the run queue's descriptor when the queue is the daemon's
 * own, not a shared one, which the caller watches itself) and returns how
 * many it filled (0 once stopped or finished). The events asked for change
 * with the daemon's state, so fill them afresh before every zmq_poll. When
 * any item is ready, or gb_daemon_next_deadline has come, call
 * gb_daemon_step(d, 0, err); between such calls the daemon needs nothing.
 * The sockets are borrowed: do not read, write or close them. */
int gb_daemon_poll_items(const gb_daemon_t *d, zmq_pollitem_t *items, int cap);

/* Told that a step the loop made ended the daemon: rc is GB_DAEMON_FINISHED
 * (the federation finished) or a negative gb_err with err saying why (as
 * gb_daemon_step's). The daemon is detached already; the callback may stop
 * or destroy it. */
typedef void (*gb_daemon_done_fn)(void *arg, gb_daemon_t *d, int rc, const gb_error_t *err);

/* Joins the daemon to the process's event loop (net/event_loop.h) as one
 * source: the loop polls its items with everything else and steps it
 * (gb_daemon_step(d, 0, ...)) whenever one is ready or
 * gb_daemon_next_deadline has come; when such a step ends the daemon, it is
 * detached and done (may be NULL) is called. The loop is borrowed and must
 * outlive the attachment; gb_daemon_destroy detaches. Returns 0, GB_EINVAL
 * when already attached, or GB_ENOMEM (err filled). */
int gb_daemon_attach(gb_daemon_t *d, gb_event_loop_t *loop, gb_daemon_done_fn done, void *arg,
                     gb_error_t *err) GB_MUST_CHECK;

/* Leaves the loop it was attached to; nothing if not attached. */
void gb_daemon_detach(gb_daemon_t *d);

/* When the daemon must be stepped even if none of its items is ready, on
 * gb_time_now's clock: the earliest of the link's timers (reconnection,
 * handshake timeout), the next Heartbeat, a result's resend, a Join again,
 * the give-up time, a task the worker finished or a task ready to start
 * (now), frames waiting for room in the link (a few milliseconds). HUGE_VAL
 * when nothing is timed (stopped, finished). */
double gb_daemon_next_deadline(const gb_daemon_t *d);

/* The orderly end (SIGINT, SIGTERM, the federation finished): cancels the
 * running task and waits for the worker to stop (at most one training
 * batch), forgets the waiting task, and closes the link gracefully
 * (close_notify, then up to linger_ms for the socket to take it). Results not
 * yet acknowledged are lost, and logged. Later steps do nothing but return
 * 0 (or GB_DAEMON_FINISHED). */
void gb_daemon_stop(gb_daemon_t *d, int linger_ms);

/* gb_daemon_stop for a daemon that ends inside a loop shared with others
 * (the virtual clients'): it never waits, so the others' timers and
 * heartbeats keep their time. The running task is told to cancel and the
 * close_notify sent as far as the socket takes it; the rest (the task's
 * last batch, the goodbye's flush within linger_ms) the loop finishes: the
 * daemon is a source of loop until then (gb_daemon_stopping) and leaves it
 * by itself; gb_daemon_destroy takes it out earlier. The daemon must not be
 * attached (done callbacks come detached). Returns 0 (also when stopped
 * already), GB_EINVAL (attached, or no loop; nothing done), or GB_ENOMEM
 * (err filled) after finishing the stop at once with the goodbye cut short.
 * The loop is borrowed and must outlive the stop. */
int gb_daemon_stop_begin(gb_daemon_t *d, gb_event_loop_t *loop, int linger_ms,
                         gb_error_t *err) GB_MUST_CHECK;

/* True while a gb_daemon_stop_begin still has work left in its loop. */
bool gb_daemon_stopping(const gb_daemon_t *d);

/* A snapshot of the daemon's state. */
gb_daemon_status_t gb_daemon_status(const gb_daemon_t *d);

/* The task runner's client id for a Welcome.client_id: the 64-bit FNV-1a
 * hash of the name's bytes. Stable across machines, builds and runs, so a
 * client's shuffling is the same wherever it runs; never 0. */
uint64_t gb_daemon_client_id(const char *name);

#endif
