/* The daemon's worker and the run queue behind it (see daemon_worker.h).
 *
 * The queue is a FIFO of workers linked through their own `next` field (a
 * worker holds at most one task, so it is in the queue at most once and
 * nothing is allocated per task) and one thread that takes the head, runs
 * it and takes the next. A single thread is the whole point: the tasks of
 * one process's virtual clients used to train all at once, each on a thread
 * of its own, oversubscribing the cores, while one task at a time with every
 * core finishes the first task early and the round no later.
 *
 * The worker's state (idle, waiting, running, done) changes under the
 * queue's mutex, so cancelling a task cannot race with the thread taking it
 * off the queue. The result is handed over by the `done` flag, stored with
 * release order after every result field is written and loaded with acquire
 * order before any is read, so the daemon's loop asks without the lock. The
 * queue's eventfd is written after `done`, so a loop that drains it and then
 * looks at the flags misses nothing. */
#include "daemon_worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "net/envelope.h"
#include "util/alloc.h"
#include "util/time.h"

typedef enum { S_IDLE, S_WAITING, S_RUNNING, S_DONE } s_state_t;

struct gb_daemon_queue {
    pthread_t thread;              /* takes the head of the FIFO and runs it */
    bool thread_made;              /* thread was created (and is to be joined) */
    pthread_mutex_t mu;            /* guards everything below and the workers' state */
    pthread_cond_t wake;           /* a task was queued, or quit was set */
    pthread_cond_t finished;       /* a task became done */
    gb_daemon_worker_t *head, *tail; /* waiting workers, oldest first */
    bool quit;                     /* destroy asked the thread to end */
    int fd;                        /* eventfd: written once per finished task */
    gb_daemon_queue_stats_t st;    /* counters */
};

struct gb_daemon_worker {
    gb_daemon_queue_t *q;           /* the queue its tasks run on */
    gb_daemon_queue_t *own;         /* q, when the worker made it (else NULL) */
    gb_daemon_worker_t *next;       /* next in the queue's FIFO (under q->mu) */
    s_state_t state;                /* under q->mu */
    bool started;                   /* a task was started and not yet collected
                                       (the daemon's thread only) */
    atomic_int cancel;              /* the runner's cancellation flag */
    atomic_int done;                /* the result is written */
    double queued_at;               /* gb_time_now() at start */
    gb_task_runner_t *runner;       /* borrowed while started */
    Glassbox__Envelope *task;       /* the Task's Envelope, owned while started */
    gb_daemon_worker_result_t result; /* written by the queue's thread, read after done */
};

/* ---- the queue's thread ------------------------------------------------------ */

static void s_signal_fd(gb_daemon_queue_t *q)
{
    uint64_t one = 1;
    /* Cannot fill: an eventfd counts to 2^64 - 2. */
    while (write(q->fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* Under q->mu: the worker's task is over; tell whoever waits. */
static void s_finish_locked(gb_daemon_queue_t *q, gb_daemon_worker_t *w)
{
    w->state = S_DONE;
    atomic_store_explicit(&w->done, 1, memory_order_release);
    pthread_cond_broadcast(&q->finished);
    s_signal_fd(q);
}

/* Packs a protobuf-c message into a new gb_malloc buffer. */
static int s_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len, gb_error_t *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    *out = gb_malloc(n ? n : 1);
    if (!*out)
        return gb_error_set(err, GB_ENOMEM, "daemon: out of memory for a %zu-byte result", n);
    *len = protobuf_c_message_pack(m, *out);
    return 0;
}

/* Runs w's task on the queue's thread, without the lock. */
static void s_run(gb_daemon_worker_t *w)
{
    gb_daemon_worker_result_t *r = &w->result;
    double t0 = gb_time_now();
    r->started = t0;
    r->started_unix_ms = gb_time_unix_ms();
    r->queued_seconds = t0 - w->queued_at;
    gb_task_result_t res;
    r->rc = gb_task_runner_run(w->runner, w->task->task, &w->cancel, &res, &r->err);
    if (r->rc == 0 && res.update)
        r->rc = s_pack(&res.update->base, &r->update, &r->update_len, &r->err);
    if (r->rc == 0 && res.eval)
        r->rc = s_pack(&res.eval->base, &r->eval, &r->eval_len, &r->err);
    if (r->rc != 0)
        gb_daemon_worker_result_free(r);
    r->seconds = gb_time_now() - t0;
    /* The scalars only: every pointer in res is the runner's and is about
     * to be reused by the next task. */
    r->res = res;
    r->res.update = NULL;
    r->res.eval = NULL;
    r->res.explanation = NULL;
    r->res.delta = NULL;
}

static void *s_main(void *arg)
{
    gb_daemon_queue_t *q = arg;
    /* Signals are for the loop's thread, whose poll they cut short; the
     * engine's threads made from here inherit the mask. */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->quit && !q->head)
            pthread_cond_wait(&q->wake, &q->mu);
        if (q->quit)
            break;
        gb_daemon_worker_t *w = q->head;
        q->head = w->next;
        if (!q->head)
            q->tail = NULL;
        w->next = NULL;
        w->state = S_RUNNING;
        q->st.waiting--;
        q->st.started++;
        if (++q->st.running > q->st.most_running)
            q->st.most_running = q->st.running;
        pthread_mutex_unlock(&q->mu);
        s_run(w);
        pthread_mutex_lock(&q->mu);
        q->st.running--;
        q->st.finished++;
        s_finish_locked(q, w);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* ---- the queue --------------------------------------------------------------- */

gb_daemon_queue_t *gb_daemon_queue_new(gb_error_t *err)
{
    gb_daemon_queue_t *q = gb_calloc(1, sizeof *q);
    if (!q) {
        gb_error_set(err, GB_ENOMEM, "daemon: out of memory for the run queue");
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->wake, NULL);
    pthread_cond_init(&q->finished, NULL);
    q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->fd < 0) {
        gb_error_set(err, GB_EIO, "daemon: no descriptor for the run queue: %s",
                     strerror(errno));
        gb_daemon_queue_destroy(&q);
        return NULL;
    }
    int rc = pthread_create(&q->thread, NULL, s_main, q);
    if (rc != 0) {
        gb_error_set(err, GB_EIO, "daemon: cannot start the run queue's thread: %s",
                     strerror(rc));
        gb_daemon_queue_destroy(&q);
        return NULL;
    }
    q->thread_made = true;
    return q;
}

void gb_daemon_queue_destroy(gb_daemon_queue_t **pq)
{
    if (!pq || !*pq)
        return;
    gb_daemon_queue_t *q = *pq;
    if (q->thread_made) {
        pthread_mutex_lock(&q->mu);
        q->quit = true;
        pthread_cond_signal(&q->wake);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
    }
    if (q->fd >= 0)
        close(q->fd);
    pthread_cond_destroy(&q->finished);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->mu);
    gb_free(q);
    *pq = NULL;
}

int gb_daemon_queue_fd(const gb_daemon_queue_t *q)
{
    return q->fd;
}

void gb_daemon_queue_drain(gb_daemon_queue_t *q)
{
    uint64_t n;
    while (read(q->fd, &n, sizeof n) < 0 && errno == EINTR) {
    }
}

gb_daemon_queue_stats_t gb_daemon_queue_stats(const gb_daemon_queue_t *q)
{
    gb_daemon_queue_t *m = (gb_daemon_queue_t *)q; /* the lock, not the counters */
    pthread_mutex_lock(&m->mu);
    gb_daemon_queue_stats_t s = q->st;
    pthread_mutex_unlock(&m->mu);
    return s;
}

/* ---- the worker -------------------------------------------------------------- */

gb_daemon_worker_t *gb_daemon_worker_new(gb_daemon_queue_t *q, gb_error_t *err)
{
    gb_daemon_worker_t *w = gb_calloc(1, sizeof *w);
    if (!w) {
        gb_error_set(err, GB_ENOMEM, "daemon: out of memory for the worker");
        return NULL;
    }
    if (!q && !(q = w->own = gb_daemon_queue_new(err))) {
        gb_free(w);
        return NULL;
    }
    w->q = q;
    w->state = S_IDLE;
    atomic_init(&w->cancel, 0);
    atomic_init(&w->done, 0);
    return w;
}

gb_daemon_queue_t *gb_daemon_worker_own_queue(const gb_daemon_worker_t *w)
{
    return w->own;
}

void gb_daemon_worker_result_free(gb_daemon_worker_result_t *r)
{
    if (!r)
        return;
    gb_free(r->update);
    gb_free(r->eval);
    r->update = r->eval = NULL;
    r->update_len = r->eval_len = 0;
}

int gb_daemon_worker_start(gb_daemon_worker_t *w, gb_task_runner_t *runner,
                           Glassbox__Envelope **task, uint64_t session, gb_error_t *err)
{
    (void)err;
    const Glassbox__Task *t = (*task)->task;
    memset(&w->result, 0, sizeof w->result);
    w->result.round = t->round;
    w->result.task_id = t->task_id;
    w->result.deadline_unix_ms = t->deadline_unix_ms;
    w->result.session = session;
    w->result.sequence = (*task)->sequence;
    w->runner = runner;
    w->task = *task;
    *task = NULL;
    w->queued_at = gb_time_now();
    w->started = true;
    atomic_store(&w->cancel, 0);
    atomic_store(&w->done, 0);
    gb_daemon_queue_t *q = w->q;
    pthread_mutex_lock(&q->mu);
    w->state = S_WAITING;
    w->next = NULL;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->st.waiting++;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

bool gb_daemon_worker_busy(const gb_daemon_worker_t *w)
{
    return w->started;
}

bool gb_daemon_worker_waiting(const gb_daemon_worker_t *w)
{
    if (!w->started)
        return false;
    pthread_mutex_lock(&w->q->mu);
    bool waiting = w->state == S_WAITING;
    pthread_mutex_unlock(&w->q->mu);
    return waiting;
}

bool gb_daemon_worker_done(const gb_daemon_worker_t *w)
{
    return w->started &&
           atomic_load_explicit((atomic_int *)&w->done, memory_order_acquire) != 0;
}

uint64_t gb_daemon_worker_task_id(const gb_daemon_worker_t *w)
{
    return w->started ? w->result.task_id : 0;
}

const Glassbox__Task *gb_daemon_worker_task(const gb_daemon_worker_t *w)
{
    return w->started ? w->task->task : NULL;
}

/* Under q->mu: takes w out of the FIFO. */
static void s_unlink_locked(gb_daemon_queue_t *q, gb_daemon_worker_t *w)
{
    gb_daemon_worker_t *prev = NULL;
    for (gb_daemon_worker_t *p = q->head; p; prev = p, p = p->next) {
        if (p != w)
            continue;
        if (prev)
            prev->next = w->next;
        else
            q->head = w->next;
        if (q->tail == w)
            q->tail = prev;
        w->next = NULL;
        q->st.waiting--;
        return;
    }
}

void gb_daemon_worker_cancel(gb_daemon_worker_t *w)
{
    atomic_store(&w->cancel, 1);
    if (!w->started)
        return;
    gb_daemon_queue_t *q = w->q;
    pthread_mutex_lock(&q->mu);
    if (w->state == S_WAITING) {
        s_unlink_locked(q, w);
        q->st.withdrawn++;
        w->result.rc = GB_TASK_ECANCELLED;
        gb_error_set(&w->result.err, GB_TASK_ECANCELLED, "cancelled before it started");
        w->result.queued_seconds = gb_time_now() - w->queued_at;
        s_finish_locked(q, w);
    }
    pthread_mutex_unlock(&q->mu);
}

void gb_daemon_worker_wait(gb_daemon_worker_t *w)
{
    if (!w->started)
        return;
    gb_daemon_queue_t *q = w->q;
    pthread_mutex_lock(&q->mu);
    while (w->state != S_DONE)
        pthread_cond_wait(&q->finished, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

void gb_daemon_worker_collect(gb_daemon_worker_t *w, gb_daemon_worker_result_t *out)
{
    (void)atomic_load_explicit(&w->done, memory_order_acquire);
    *out = w->result;
    memset(&w->result, 0, sizeof w->result);
    gb_envelope_free(&w->task);
    w->runner = NULL;
    w->started = false;
    pthread_mutex_lock(&w->q->mu);
    w->state = S_IDLE;
    pthread_mutex_unlock(&w->q->mu);
}

void gb_daemon_worker_destroy(gb_daemon_worker_t **pw)
{
    if (!pw || !*pw)
        return;
    gb_daemon_worker_t *w = *pw;
    if (w->started) {
        gb_daemon_worker_cancel(w);
        gb_daemon_worker_wait(w);
        gb_daemon_worker_result_t r;
        gb_daemon_worker_collect(w, &r);
        gb_daemon_worker_result_free(&r);
    }
    gb_daemon_queue_destroy(&w->own);
    gb_free(w);
    *pw = NULL;
}
