/* The daemon's worker thread (see daemon_worker.h). The thread owns the
 * task and the runner from start to done; the daemon's thread owns them
 * again after collect. The handover is the `done` flag, stored with release
 * order after every result field is written and loaded with acquire order
 * before any is read, so no lock is needed. */
#include "daemon_worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "net/envelope.h"
#include "util/alloc.h"
#include "util/time.h"

struct gb_daemon_worker {
    pthread_t thread;               /* the task's thread, while started */
    bool started;                   /* a thread was made and not yet joined */
    atomic_int cancel;              /* the runner's cancellation flag */
    atomic_int done;                /* the thread has finished writing result */
    gb_task_runner_t *runner;       /* borrowed while started */
    Glassbox__Envelope *task;       /* the Task's Envelope, owned while started */
    gb_daemon_worker_result_t result; /* written by the thread, read after done */
};

gb_daemon_worker_t *gb_daemon_worker_new(gb_error_t *err)
{
    gb_daemon_worker_t *w = gb_calloc(1, sizeof *w);
    if (!w) {
        gb_error_set(err, GB_ENOMEM, "daemon: out of memory for the worker");
        return NULL;
    }
    atomic_init(&w->cancel, 0);
    atomic_init(&w->done, 0);
    return w;
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

static void *s_main(void *arg)
{
    gb_daemon_worker_t *w = arg;
    gb_daemon_worker_result_t *r = &w->result;
    double t0 = gb_time_now();
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
    atomic_store_explicit(&w->done, 1, memory_order_release);
    return NULL;
}

int gb_daemon_worker_start(gb_daemon_worker_t *w, gb_task_runner_t *runner,
                           Glassbox__Envelope **task, uint64_t session, gb_error_t *err)
{
    const Glassbox__Task *t = (*task)->task;
    memset(&w->result, 0, sizeof w->result);
    w->result.round = t->round;
    w->result.task_id = t->task_id;
    w->result.deadline_unix_ms = t->deadline_unix_ms;
    w->result.session = session;
    w->result.sequence = (*task)->sequence;
    w->runner = runner;
    w->task = *task;
    atomic_store(&w->cancel, 0);
    atomic_store(&w->done, 0);
    int rc = pthread_create(&w->thread, NULL, s_main, w);
    if (rc != 0) {
        w->task = NULL;
        w->runner = NULL;
        return gb_error_set(err, GB_EIO, "daemon: cannot start the worker thread: %s",
                            strerror(rc));
    }
    w->started = true;
    *task = NULL;
    return 0;
}

bool gb_daemon_worker_busy(const gb_daemon_worker_t *w)
{
    return w->started;
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

void gb_daemon_worker_cancel(gb_daemon_worker_t *w)
{
    atomic_store(&w->cancel, 1);
}

void gb_daemon_worker_collect(gb_daemon_worker_t *w, gb_daemon_worker_result_t *out)
{
    pthread_join(w->thread, NULL);
    (void)atomic_load_explicit(&w->done, memory_order_acquire);
    *out = w->result;
    memset(&w->result, 0, sizeof w->result);
    gb_envelope_free(&w->task);
    w->runner = NULL;
    w->started = false;
}

void gb_daemon_worker_destroy(gb_daemon_worker_t **pw)
{
    if (!pw || !*pw)
        return;
    gb_daemon_worker_t *w = *pw;
    if (w->started) {
        gb_daemon_worker_cancel(w);
        gb_daemon_worker_result_t r;
        gb_daemon_worker_collect(w, &r);
        gb_daemon_worker_result_free(&r);
    }
    gb_free(w);
    *pw = NULL;
}
