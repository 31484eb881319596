/* The client daemon's event loop (see daemon.h): link events in, Envelopes
 * out, one worker thread (daemon_worker.c) for the training.
 *
 * Results are kept packed (the bytes of an Update or EvalResult body) in a
 * small table until the coordinator acknowledges them; each send unpacks
 * them into a fresh Envelope for the conversation, which stamps the
 * session's next sequence number. A result remembers the sequence it was
 * last sent under, and only on the current session: every reply (Ack or
 * Error) names that sequence, and a new session makes every result unsent
 * again. Timers (heartbeats, resends after ERROR_BUSY) are times on the
 * monotonic clock that bound how long one poll may wait: gb_daemon_step's
 * own, or the one poll of a caller that waits on many daemons
 * (gb_daemon_next_deadline). */
#include "daemon.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "daemon_worker.h"
#include "data_source.h"
#include "engine/model.h"
#include "net/channel.h"
#include "net/conversation.h"
#include "net/event_loop.h"
#include "net/link.h"
#include "net/pki.h"
#include "task_runner.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

/* Every line names the client: with --virtual, many daemons share one log. */
#define S_LOG(level, d, fmt, ...)                                                            \
    gb_log_##level("daemon %s: " fmt, (d)->client_name, ##__VA_ARGS__)

#define S_BACKLOG_RETRY_MS 5 /* frames the link had no room for are offered again */
#define S_STOP_LOOK_S 0.005 /* a stopping daemon's look at its cancelled task, in the loop */
#define S_RECENT_TASKS 8    /* finished task ids remembered, to ignore a resent Task */
#define S_SOFTWARE "glassbox " GLASSBOX_VERSION
#define S_EXPLAIN_METHODS "integrated_gradients,gradient_x_input,saliency,smoothgrad,grad_cam"

typedef struct {
    Glassbox__Envelope__BodyCase kind; /* UPDATE or EVAL_RESULT */
    uint64_t round, task_id;           /* what it answers */
    uint8_t *packed;                   /* the body, packed (gb_malloc) */
    size_t len;                        /* its bytes */
    uint64_t seq;                      /* sequence on the current session (0: not sent on it) */
    double send_at;                    /* not before this monotonic time (0: at once) */
} s_result_t;

struct gb_daemon {
    gb_daemon_options_t o;               /* options; strings point into the copies below */
    char *endpoint, *server_name, *client_name, *dataset; /* owned copies */
    gb_tls_t *tls;                       /* client certificate, CA */
    gb_link_client_t *link;              /* the DEALER socket and its session */
    gb_conversation_t *conv;             /* Envelopes of the current session */
    gb_task_runner_t *runner;            /* made on the first Welcome */
    gb_daemon_worker_t *worker;          /* the training thread */
    Glassbox__Envelope *waiting;         /* the Task to run next (owned), or NULL */
    uint64_t waiting_session;            /* the session it came on */
    s_result_t results[GB_DAEMON_MAX_RESULTS]; /* unacknowledged results, oldest first */
    size_t n_results;                    /* used entries */
    uint64_t recent[S_RECENT_TASKS];     /* task ids finished or refused here (ring) */
    size_t n_recent;                     /* ids written to the ring so far */
    uint64_t session;                    /* the link's current session (0: none) */
    uint64_t join_seq;                   /* Join's sequence on this session */
    uint32_t shard_index;                /* the data shard dealt (load_shard) */
    double rejoin_at;                    /* monotonic time to send Join again (0: none):
                                            the coordinator was busy */
    double next_heartbeat;               /* monotonic time of the next Heartbeat */
    bool stopped;                        /* gb_daemon_stop was called */
    double away_since;                   /* monotonic time without a session since */
    gb_daemon_status_t st;               /* counters and state */
    bool handled;                        /* the last step handled a link event */
    gb_event_loop_t *loop;               /* the loop it is attached to (borrowed), or NULL */
    uint64_t source;                     /* its source there (0: not attached) */
    gb_daemon_done_fn done;              /* told when a step there ends the daemon */
    void *done_arg;                      /* passed to done */
    gb_event_loop_t *own_loop;           /* gb_daemon_step's, made on its first wait */
    int own_rc;                          /* what the last step in own_loop returned */
    gb_event_loop_t *stop_loop;          /* gb_daemon_stop_begin's loop, while stopping */
    uint64_t stop_source;                /* the daemon's source there (0: not stopping) */
    gb_error_t *own_err;                 /* the waiting gb_daemon_step's err */
};

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t gb_daemon_client_id(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

static void s_remember(gb_daemon_t *d, uint64_t task_id)
{
    d->recent[d->n_recent++ % S_RECENT_TASKS] = task_id;
}

/* The task id is running, waiting, awaiting an ack or finished here lately. */
static bool s_known_task(const gb_daemon_t *d, uint64_t task_id)
{
    if (gb_daemon_worker_task_id(d->worker) == task_id)
        return true;
    if (d->waiting && d->waiting->task->task_id == task_id)
        return true;
    for (size_t i = 0; i < d->n_results; i++)
        if (d->results[i].task_id == task_id)
            return true;
    size_t n = d->n_recent < S_RECENT_TASKS ? d->n_recent : S_RECENT_TASKS;
    for (size_t i = 0; i < n; i++)
        if (d->recent[i] == task_id)
            return true;
    return false;
}

static void s_result_remove(gb_daemon_t *d, size_t i)
{
    gb_free(d->results[i].packed);
    memmove(&d->results[i], &d->results[i + 1], (d->n_results - i - 1) * sizeof d->results[0]);
    d->n_results--;
}

static const char *s_kind_name(Glassbox__Envelope__BodyCase kind)
{
    return kind == GLASSBOX__ENVELOPE__BODY_UPDATE ? "update" : "eval result";
}

/* ---- sending ---------------------------------------------------------------- */

static int s_link_send(void *arg, const uint8_t *frame, size_t len, gb_error_t *err)
{
    return gb_link_client_send(arg, frame, len, err);
}

/* Offers queued frames to the link; what it has no room for waits. */
static void s_flush(gb_daemon_t *d)
{
    if (!gb_link_client_connected(d->link) || !gb_conversation_queued_bytes(d->conv))
        return;
    gb_error_t err = {0};
    int rc = gb_conversation_flush(d->conv, s_link_send, d->link, &err);
    if (rc != 0 && rc != GB_EAGAIN)
        S_LOG(debug, d, "sending to the coordinator: %s", err.msg);
}

/* Queues env on the current session; 0 or the conversation's error. */
static int s_queue(gb_daemon_t *d, Glassbox__Envelope *env, uint64_t *seq, gb_error_t *err)
{
    int rc = gb_conversation_queue(d->conv, env, seq, err);
    if (rc == 0)
        s_flush(d);
    return rc;
}

static void s_reply_error(gb_daemon_t *d, Glassbox__ErrorCode code, uint64_t in_reply_to,
                          const char *why)
{
    gb_error_t err = {0};
    Glassbox__Envelope *env = gb_envelope_make_error(1, code, in_reply_to, why, &err);
    if (!env || s_queue(d, env, NULL, &err) != 0) {
        S_LOG(error, d, "cannot send an error reply: %s", err.msg);
    } else {
        d->st.errors_sent++;
        S_LOG(info, d, "answered the coordinator's message %" PRIu64 " with %s",
                    in_reply_to, gb_envelope_error_name(code));
    }
    gb_envelope_free(&env);
}

static int s_send_join(gb_daemon_t *d, gb_error_t *err)
{
    char threads[16];
    snprintf(threads, sizeof threads, "%d", d->o.threads);
    Glassbox__KeyValue kv[3] = {GLASSBOX__KEY_VALUE__INIT, GLASSBOX__KEY_VALUE__INIT,
                                GLASSBOX__KEY_VALUE__INIT};
    kv[0].key = "threads";
    kv[0].value = threads;
    kv[1].key = "explain_methods";
    kv[1].value = S_EXPLAIN_METHODS;
    kv[2].key = "shard"; /* dealt by the coordinator, the same again after a reconnect */
    kv[2].value = "ask";
    Glassbox__KeyValue *caps[3] = {&kv[0], &kv[1], &kv[2]};
    Glassbox__Join j = GLASSBOX__JOIN__INIT;
    j.min_protocol_version = j.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    j.client_name = d->client_name;
    j.software_version = S_SOFTWARE;
    j.train_samples = d->o.train ? (uint64_t)d->o.train->n : 0;
    j.test_samples = d->o.test ? (uint64_t)d->o.test->n : 0;
    j.dataset = d->dataset;
    j.last_round = d->st.last_round;
    j.n_capabilities = d->o.load_shard ? 3 : 2;
    j.capabilities = caps;
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
    env.join = &j;
    int rc = s_queue(d, &env, &d->join_seq, err);
    if (rc == 0)
        S_LOG(info, d, "joining as '%s' (%s, %" PRIu64 " training samples)",
                    d->client_name, d->dataset, j.train_samples);
    return rc;
}

static Glassbox__ClientState s_state(const gb_daemon_t *d)
{
    const Glassbox__Task *t = gb_daemon_worker_task(d->worker);
    if (t)
        return t->train ? GLASSBOX__CLIENT_STATE__CLIENT_STATE_TRAINING
                        : GLASSBOX__CLIENT_STATE__CLIENT_STATE_EVALUATING;
    if (d->n_results)
        return GLASSBOX__CLIENT_STATE__CLIENT_STATE_UPLOADING;
    return GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE;
}

static void s_send_heartbeat(gb_daemon_t *d)
{
    Glassbox__Heartbeat hb = GLASSBOX__HEARTBEAT__INIT;
    hb.sent_unix_ms = s_unix_ms();
    hb.state = s_state(d);
    const Glassbox__Task *t = gb_daemon_worker_task(d->worker);
    /* The runner reports no progress inside a task: 0 while it runs, 1 once
     * its results are made and wait for the coordinator. */
    hb.round = t ? t->round : d->n_results ? d->results[0].round : d->st.last_round;
    hb.progress = t ? 0.0 : d->n_results ? 1.0 : 0.0;
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.body_case = GLASSBOX__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    gb_error_t err = {0};
    if (s_queue(d, &env, NULL, &err) != 0)
        S_LOG(warn, d, "heartbeat not sent: %s", err.msg);
    else
        d->st.heartbeats_sent++;
}

/* Sends one kept result on the current session. */
static int s_send_result(gb_daemon_t *d, s_result_t *r, gb_error_t *err)
{
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    Glassbox__Update *u = NULL;
    Glassbox__EvalResult *e = NULL;
    if (r->kind == GLASSBOX__ENVELOPE__BODY_UPDATE) {
        u = glassbox__update__unpack(NULL, r->len, r->packed);
        env.update = u;
    } else {
        e = glassbox__eval_result__unpack(NULL, r->len, r->packed);
        env.eval_result = e;
    }
    if (!u && !e)
        return gb_error_set(err, GB_ENOMEM, "daemon: cannot unpack a kept %s",
                            s_kind_name(r->kind));
    env.body_case = r->kind;
    int rc = gb_conversation_queue(d->conv, &env, &r->seq, err);
    if (u)
        glassbox__update__free_unpacked(u, NULL);
    if (e)
        glassbox__eval_result__free_unpacked(e, NULL);
    if (rc == 0) {
        d->st.results_sent++;
        r->send_at = 0;
        S_LOG(info, d, "sent the %s of round %" PRIu64 " task %" PRIu64
                    " (message %" PRIu64 ")", s_kind_name(r->kind), r->round, r->task_id,
                    r->seq);
        s_flush(d);
    }
    return rc;
}

/* Sends every kept result not yet sent on this session whose time has come. */
static void s_send_results(gb_daemon_t *d, double now)
{
    if (!d->st.welcomed)
        return;
    for (size_t i = 0; i < d->n_results; i++) {
        s_result_t *r = &d->results[i];
        if (r->seq || r->send_at > now)
            continue;
        gb_error_t err = {0};
        int rc = s_send_result(d, r, &err);
        if (rc == GB_EAGAIN)
            return; /* the queue is full: the rest waits for the next step */
        if (rc != 0) {
            S_LOG(error, d, "dropping the %s of task %" PRIu64 ": %s",
                         s_kind_name(r->kind), r->task_id, err.msg);
            d->st.results_dropped++;
            s_result_remove(d, i--);
        }
    }
}

/* ---- results from the worker ------------------------------------------------ */

static void s_keep(gb_daemon_t *d, Glassbox__Envelope__BodyCase kind, uint64_t round,
                   uint64_t task_id, uint8_t **packed, size_t len)
{
    if (d->n_results == GB_DAEMON_MAX_RESULTS) {
        S_LOG(warn, d, "%d results wait for acknowledgement; dropping the oldest "
                    "(task %" PRIu64 ")", GB_DAEMON_MAX_RESULTS, d->results[0].task_id);
        d->st.results_dropped++;
        s_result_remove(d, 0);
    }
    s_result_t *r = &d->results[d->n_results++];
    *r = (s_result_t){.kind = kind, .round = round, .task_id = task_id, .packed = *packed,
                      .len = len};
    *packed = NULL;
}

static void s_report(gb_daemon_t *d, const gb_daemon_worker_result_t *w, bool late)
{
    gb_daemon_task_report_t rep = {
        .round = w->round, .task_id = w->task_id, .trained = w->update != NULL,
        .evaluated = w->eval != NULL, .samples = w->res.num_samples, .steps = w->res.steps,
        .train_loss = w->res.train_loss, .train_accuracy = w->res.train_accuracy,
        .seconds = w->seconds, .queued_seconds = w->queued_seconds,
        .eval_seconds = w->res.eval_s, .explain_seconds = w->res.explain_s,
        .train_seconds = w->res.duration_s, .started = w->started,
        .started_unix_ms = w->started_unix_ms, .delta_norm = w->res.delta_norm,
        .clipped = w->res.clipped,
        .eval_loss = w->res.eval_loss, .eval_accuracy = w->res.eval_accuracy,
        .eval_samples = w->res.eval_samples, .explained = w->res.explained, .late = late};
    if (d->o.report)
        d->o.report(d->o.report_arg, &rep);
}

static void s_harvest(gb_daemon_t *d)
{
    gb_daemon_queue_t *own = gb_daemon_worker_own_queue(d->worker);
    if (own)
        gb_daemon_queue_drain(own); /* a shared one is its caller's to drain */
    gb_daemon_worker_result_t w;
    gb_daemon_worker_collect(d->worker, &w);
    if (w.rc == GB_TASK_ECANCELLED) {
        d->st.tasks_cancelled++;
        S_LOG(info, d, "task %" PRIu64 " of round %" PRIu64 " cancelled%s", w.task_id,
                    w.round, w.started ? "" : " before its turn to train");
    } else if (w.rc != 0) {
        d->st.tasks_failed++;
        s_remember(d, w.task_id);
        S_LOG(warn, d, "task %" PRIu64 " of round %" PRIu64 " failed: %s", w.task_id,
                    w.round, w.err.msg);
        if (w.session == d->session && d->st.welcomed)
            s_reply_error(d, gb_envelope_error_code(w.rc), w.sequence, w.err.msg);
    } else {
        uint64_t now_ms = s_unix_ms();
        bool late = w.deadline_unix_ms && now_ms > w.deadline_unix_ms;
        if (late)
            S_LOG(warn, d, "task %" PRIu64 " of round %" PRIu64 " finished %" PRIu64
                        " ms after its deadline; sending its results anyway", w.task_id,
                        w.round, now_ms - w.deadline_unix_ms);
        /* each phase's wall time: what a round's time went to, on this client */
        char queued[64] = "";
        if (w.queued_seconds >= 0.01)
            snprintf(queued, sizeof queued, " after %.2f s in the run queue", w.queued_seconds);
        S_LOG(info, d, "task %" PRIu64 " of round %" PRIu64 " done in %.3f s (evaluate %.3f s, "
                    "explain %.3f s, train %.3f s)%s", w.task_id, w.round, w.seconds,
                    w.res.eval_s, w.res.explain_s, w.res.duration_s, queued);
        d->st.tasks_done++;
        d->st.last_round = w.round;
        s_remember(d, w.task_id);
        s_report(d, &w, late);
        if (w.update)
            s_keep(d, GLASSBOX__ENVELOPE__BODY_UPDATE, w.round, w.task_id, &w.update,
                   w.update_len);
        if (w.eval)
            s_keep(d, GLASSBOX__ENVELOPE__BODY_EVAL_RESULT, w.round, w.task_id, &w.eval,
                   w.eval_len);
    }
    gb_daemon_worker_result_free(&w);
}

/* The worker's side of the loop: take what it finished, start what waits. */
static int s_run_worker(gb_daemon_t *d, gb_error_t *err)
{
    if (gb_daemon_worker_done(d->worker))
        s_harvest(d);
    if (!d->waiting || gb_daemon_worker_busy(d->worker) || !d->runner)
        return 0;
    uint64_t round = d->waiting->task->round, id = d->waiting->task->task_id;
    int rc = gb_daemon_worker_start(d->worker, d->runner, &d->waiting, d->waiting_session, err);
    if (rc != 0)
        return rc;
    if (d->o.queue) {
        gb_daemon_queue_stats_t q = gb_daemon_queue_stats(d->o.queue);
        long ahead = q.waiting - 1 + q.running;
        if (ahead > 0) {
            S_LOG(info, d, "task %" PRIu64 " of round %" PRIu64 " queued to train after %ld "
                        "other task(s) of this process", id, round, ahead);
            return 0;
        }
    }
    S_LOG(info, d, "task %" PRIu64 " of round %" PRIu64 " started", id, round);
    return 0;
}

/* When the Heartbeat after one sent now is due: one interval later, rounded
 * up to the heartbeat grid (at most a tenth of the interval) when there is
 * one, so that the heartbeats of many daemons in one process fall on the
 * same instants and share a wake-up of the process instead of each waking
 * it on its own. */
static double s_heartbeat_time(const gb_daemon_t *d, double now)
{
    double t = now + d->st.heartbeat_interval_ms / 1000.0;
    double grid = d->o.heartbeat_grid_ms / 1000.0;
    if (grid > d->st.heartbeat_interval_ms / 10000.0)
        grid = d->st.heartbeat_interval_ms / 10000.0;
    return grid > 0.001 ? ceil(t / grid) * grid : t;
}

/* Everything not driven by an incoming message. */
static int s_service(gb_daemon_t *d, gb_error_t *err)
{
    int rc = s_run_worker(d, err);
    if (rc != 0)
        return rc;
    double now = gb_time_now();
    if (d->rejoin_at && now >= d->rejoin_at && d->st.connected) {
        d->rejoin_at = 0;
        if ((rc = s_send_join(d, err)) != 0)
            return rc;
    }
    if (d->st.welcomed && now >= d->next_heartbeat) {
        s_send_heartbeat(d);
        d->next_heartbeat = s_heartbeat_time(d, now);
    }
    s_send_results(d, now);
    s_flush(d);
    return 0;
}

/* ---- incoming --------------------------------------------------------------- */

static int s_on_welcome(gb_daemon_t *d, const Glassbox__Envelope *env, gb_error_t *err)
{
    const Glassbox__Welcome *w = env->welcome;
    if (d->o.load_shard && !d->o.train && !d->o.test) {
        if (!w->shard) {
            /* the coordinator's Error that follows says why */
            S_LOG(warn, d, "welcomed without a data shard to train on");
            return 0;
        }
        S_LOG(info, d, "dealt slice %u of %u (%s, seed %" PRIu64 "); loading it",
              w->shard->index, w->shard->clients, w->shard->partition, w->shard->seed);
        int rc = d->o.load_shard(d->o.shard_arg, w->shard, &d->o.train, &d->o.test, err);
        if (rc)
            return rc;
    } else if (d->o.load_shard && w->shard && w->shard->index != d->shard_index) {
        S_LOG(warn, d, "the coordinator now deals slice %u; this client keeps slice %u",
              w->shard->index, d->shard_index);
    }
    if (w->shard)
        d->shard_index = w->shard->index;
    if (d->st.client_id[0] && strcmp(d->st.client_id, w->client_id) != 0)
        S_LOG(warn, d, "the coordinator now calls this client '%s' (was '%s'); the "
                    "task runner keeps the first id", w->client_id, d->st.client_id);
    if (!d->runner) {
        gb_task_runner_cfg_t cfg = {.train = d->o.train, .test = d->o.test,
                                    .client_id = gb_daemon_client_id(w->client_id),
                                    .threads = d->o.threads,
                                    .engine = d->o.queue ? d->o.engine : NULL};
        if (!(d->runner = gb_task_runner_new(&cfg, err)))
            return err ? err->code : GB_ENOMEM;
    }
    snprintf(d->st.client_id, sizeof d->st.client_id, "%s", w->client_id);
    d->st.welcomed = true;
    d->st.heartbeat_interval_ms =
        w->heartbeat_interval_ms ? w->heartbeat_interval_ms : GB_DAEMON_DEFAULT_HEARTBEAT_MS;
    d->next_heartbeat = 0; /* one at once */
    S_LOG(info, d, "welcomed to federation '%s' as '%s' (round %" PRIu64
                ", heartbeat every %u ms)", w->federation, w->client_id, w->current_round,
                d->st.heartbeat_interval_ms);
    return 0;
}

/* Refuses a Task whose model cannot take this client's data, before the
 * running task is disturbed. The runner checks the rest when it starts. */
static int s_check_task(const gb_daemon_t *d, const Glassbox__Task *t, gb_error_t *err)
{
    gb_model_t *m = gb_model_new(t->model->spec, err);
    if (!m)
        return err ? err->code : GB_ESPEC;
    const gb_dataset_t *ds = t->train ? d->o.train : d->o.test;
    int rc = 0;
    if (!ds)
        rc = gb_error_set(err, GB_EINVAL, "task %" PRIu64 ": this client has no %s split",
                          t->task_id, t->train ? "training" : "test");
    else
        rc = gb_data_source_check_model(m, ds, "the task's model", err);
    gb_model_destroy(&m);
    return rc;
}

static void s_on_task(gb_daemon_t *d, Glassbox__Envelope **penv)
{
    Glassbox__Envelope *env = *penv;
    const Glassbox__Task *t = env->task;
    if (!d->st.welcomed) {
        S_LOG(warn, d, "a Task before Welcome; refused");
        s_reply_error(d, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED, env->sequence,
                      "Task before Welcome");
        return;
    }
    if (s_known_task(d, t->task_id)) {
        d->st.tasks_ignored++;
        S_LOG(info, d, "task %" PRIu64 " of round %" PRIu64 " is known here already; "
                    "not run again", t->task_id, t->round);
        return;
    }
    gb_error_t err = {0};
    int rc = s_check_task(d, t, &err);
    if (rc != 0) {
        S_LOG(warn, d, "task %" PRIu64 " of round %" PRIu64 " refused: %s", t->task_id,
                    t->round, err.msg);
        d->st.tasks_failed++;
        s_reply_error(d, gb_envelope_error_code(rc), env->sequence, err.msg);
        return;
    }
    uint64_t running = gb_daemon_worker_task_id(d->worker);
    if (running && !gb_daemon_worker_done(d->worker)) {
        S_LOG(info, d, "task %" PRIu64 " arrived; cancelling task %" PRIu64, t->task_id,
                    running);
        gb_daemon_worker_cancel(d->worker);
    }
    if (d->waiting) {
        S_LOG(info, d, "task %" PRIu64 " replaces task %" PRIu64 " before it started",
                    t->task_id, d->waiting->task->task_id);
        d->st.tasks_cancelled++;
        gb_envelope_free(&d->waiting);
    }
    S_LOG(info, d, "task %" PRIu64 " of round %" PRIu64 " received (%s%s)", t->task_id,
                t->round, t->train ? "train" : "", t->evaluate ? (t->train ? ", evaluate"
                                                                           : "evaluate")
                                                               : "");
    d->waiting = env;
    d->waiting_session = d->session;
    *penv = NULL;
}

static s_result_t *s_result_by_seq(gb_daemon_t *d, uint64_t seq, size_t *index)
{
    for (size_t i = 0; seq && i < d->n_results; i++)
        if (d->results[i].seq == seq) {
            *index = i;
            return &d->results[i];
        }
    return NULL;
}

static void s_on_ack(gb_daemon_t *d, const Glassbox__Ack *a)
{
    size_t i;
    s_result_t *r = s_result_by_seq(d, a->acked_sequence, &i);
    if (!r) {
        if (a->task_id == 0)
            d->st.heartbeats_acked++;
        else
            S_LOG(debug, d, "ack for message %" PRIu64 " (task %" PRIu64
                         ") matches nothing kept", a->acked_sequence, a->task_id);
        return;
    }
    S_LOG(info, d, "the %s of round %" PRIu64 " task %" PRIu64 " is acknowledged",
                s_kind_name(r->kind), r->round, r->task_id);
    d->st.results_acked++;
    s_result_remove(d, i);
}

static int s_on_error(gb_daemon_t *d, const Glassbox__Error *e, gb_error_t *err)
{
    d->st.errors_received++;
    const char *name = gb_envelope_error_name(e->code);
    size_t i = 0;
    s_result_t *r = s_result_by_seq(d, e->in_reply_to, &i);
    if (e->code == GLASSBOX__ERROR_CODE__ERROR_SHUTTING_DOWN && e->retry_after_ms == 0) {
        S_LOG(info, d, "federation finished (%s)", e->message);
        d->st.finished = true;
        return GB_DAEMON_FINISHED;
    }
    if (e->code == GLASSBOX__ERROR_CODE__ERROR_VERSION && e->in_reply_to == d->join_seq)
        return gb_error_set(err, GB_EPROTO, "the coordinator refused Join: %s: %s", name,
                            e->message);
    if (d->join_seq && e->in_reply_to == d->join_seq) {
        /* turned away after the Welcome: busy is worth another Join; what
         * the federation does not take (too many samples, no room for more
         * clients) is not mended by asking again */
        d->st.welcomed = false;
        if (e->code == GLASSBOX__ERROR_CODE__ERROR_BUSY ||
            e->code == GLASSBOX__ERROR_CODE__ERROR_SHUTTING_DOWN) {
            uint32_t ms = e->retry_after_ms ? e->retry_after_ms : 1000;
            S_LOG(info, d, "the coordinator cannot take us yet (%s: %s); joining again in %u ms",
                  name, e->message, ms);
            d->rejoin_at = gb_time_now() + ms / 1000.0;
            return 0;
        }
        return gb_error_set(err, GB_EINVAL, "the coordinator refused Join: %s: %s", name,
                            e->message);
    }
    if (!r) {
        S_LOG(warn, d, "the coordinator reports %s (about message %" PRIu64 "): %s",
                    name, e->in_reply_to, e->message);
        return 0;
    }
    switch (e->code) {
    case GLASSBOX__ERROR_CODE__ERROR_DUPLICATE:
        S_LOG(info, d, "the %s of task %" PRIu64 " was received already",
                    s_kind_name(r->kind), r->task_id);
        d->st.results_acked++;
        s_result_remove(d, i);
        break;
    case GLASSBOX__ERROR_CODE__ERROR_STALE:
        S_LOG(info, d, "the %s of round %" PRIu64 " task %" PRIu64 " is stale (%s); "
                    "dropped", s_kind_name(r->kind), r->round, r->task_id, e->message);
        d->st.results_dropped++;
        s_result_remove(d, i);
        break;
    case GLASSBOX__ERROR_CODE__ERROR_BUSY:
    case GLASSBOX__ERROR_CODE__ERROR_SHUTTING_DOWN:
        S_LOG(info, d, "the coordinator is %s; the %s of task %" PRIu64
                    " goes again in %u ms", e->code == GLASSBOX__ERROR_CODE__ERROR_BUSY
                                                ? "busy" : "restarting",
                    s_kind_name(r->kind), r->task_id, e->retry_after_ms);
        r->seq = 0;
        r->send_at = gb_time_now() + e->retry_after_ms / 1000.0;
        break;
    default:
        S_LOG(warn, d, "the coordinator refused the %s of task %" PRIu64
                    ": %s: %s; dropped", s_kind_name(r->kind), r->task_id, name, e->message);
        d->st.results_dropped++;
        s_result_remove(d, i);
    }
    return 0;
}

static int s_on_envelope(gb_daemon_t *d, Glassbox__Envelope **penv, gb_error_t *err)
{
    Glassbox__Envelope *env = *penv;
    switch (env->body_case) {
    case GLASSBOX__ENVELOPE__BODY_WELCOME:
        return s_on_welcome(d, env, err);
    case GLASSBOX__ENVELOPE__BODY_TASK:
        s_on_task(d, penv);
        return 0;
    case GLASSBOX__ENVELOPE__BODY_ACK:
        s_on_ack(d, env->ack);
        return 0;
    case GLASSBOX__ENVELOPE__BODY_ERROR:
        return s_on_error(d, env->error, err);
    case GLASSBOX__ENVELOPE__BODY_PUBLICATION:
        S_LOG(debug, d, "a publication arrived; the daemon does not use it");
        return 0;
    default: {
        char why[128];
        snprintf(why, sizeof why, "a client does not expect %s from the coordinator",
                 gb_envelope_body_name(env));
        S_LOG(warn, d, "%s; refused", why);
        s_reply_error(d, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED, env->sequence, why);
        return 0;
    }
    }
}

static int s_on_event(gb_daemon_t *d, const gb_link_event_t *ev, gb_error_t *err)
{
    switch (ev->kind) {
    case GB_LINK_EV_CONNECTED:
        d->session = ev->session;
        d->st.connected = true;
        d->st.welcomed = false;
        d->st.sessions++;
        gb_conversation_reset(d->conv);
        for (size_t i = 0; i < d->n_results; i++)
            d->results[i].seq = 0;
        S_LOG(info, d, "connected to %s (session %" PRIu64 ")", d->endpoint, ev->session);
        return s_send_join(d, err);
    case GB_LINK_EV_DISCONNECTED:
        d->away_since = gb_time_now();
        d->st.connected = false;
        d->st.welcomed = false;
        d->session = 0;
        d->rejoin_at = 0;
        S_LOG(warn, d, "disconnected from %s: %s; reconnecting", d->endpoint, ev->reason);
        return 0;
    case GB_LINK_EV_MESSAGE: {
        Glassbox__Envelope *env = NULL;
        gb_error_t local = {0};
        int rc = gb_conversation_receive(d->conv, ev->data, ev->len, &env, &local);
        if (rc < 0) {
            /* the decoder has logged why */
            s_reply_error(d, gb_envelope_error_code(rc), gb_conversation_last_sequence(d->conv),
                          local.msg);
            return 0;
        }
        if (rc == 0)
            return 0; /* a chunk of a transfer still incomplete */
        rc = s_on_envelope(d, &env, err);
        gb_envelope_free(&env);
        return rc;
    }
    case GB_LINK_EV_NONE:
        break;
    }
    return 0;
}

/* ---- the public face ---------------------------------------------------------- */

static char *s_dup(const char *s, gb_error_t *err, bool *failed)
{
    if (!s || *failed)
        return NULL;
    char *c = gb_strdup(s);
    if (!c) {
        gb_error_set(err, GB_ENOMEM, "daemon: out of memory");
        *failed = true;
    }
    return c;
}

static int s_check_options(const gb_daemon_options_t *o, gb_error_t *err)
{
    if (!o)
        return gb_error_set(err, GB_EINVAL, "daemon: no options");
    const char *missing = !o->zmq_ctx ? "zmq_ctx" : !o->endpoint ? "endpoint"
                        : !o->cert_file ? "cert_file" : !o->key_file ? "key_file"
                        : !o->ca_file ? "ca_file" : !o->server_name ? "server_name" : NULL;
    if (missing)
        return gb_error_set(err, GB_EINVAL, "daemon: %s is required", missing);
    if (!o->train && !o->test && !o->load_shard)
        return gb_error_set(err, GB_EINVAL, "daemon: needs a training or a test split");
    if (!o->train && !o->test && !o->dataset)
        return gb_error_set(err, GB_EINVAL, "daemon: a shard to be dealt needs a dataset name");
    if (o->threads < 0 || o->threads > 256)
        return gb_error_set(err, GB_EINVAL, "daemon: threads %d is outside 1..256", o->threads);
    if (o->retry_ms < 0 || o->retry_max_ms < 0)
        return gb_error_set(err, GB_EINVAL, "daemon: negative reconnection delay");
    if (o->give_up_s < 0)
        return gb_error_set(err, GB_EINVAL, "daemon: negative give-up time");
    if (o->heartbeat_grid_ms < 0)
        return gb_error_set(err, GB_EINVAL, "daemon: negative heartbeat grid");
    const char *ds = o->dataset ? o->dataset : (o->train ? o->train : o->test)->name;
    if (!ds || !*ds || strlen(ds) > GB_ENVELOPE_MAX_NAME)
        return gb_error_set(err, GB_EINVAL, "daemon: the dataset description must be 1..%d "
                            "bytes", GB_ENVELOPE_MAX_NAME);
    if (o->client_name && gb_pki_check_name(o->client_name, "client name", err))
        return GB_EINVAL;
    return 0;
}

gb_daemon_t *gb_daemon_new(const gb_daemon_options_t *opts, gb_error_t *err)
{
    if (s_check_options(opts, err))
        return NULL;
    char cn[GB_PKI_NAME_MAX + 1] = "";
    X509 *cert = gb_pki_cert_load(opts->cert_file, err);
    if (!cert)
        return NULL;
    int rc = gb_pki_cert_name(cert, cn, err);
    X509_free(cert);
    if (rc)
        return NULL;
    gb_daemon_t *d = gb_calloc(1, sizeof *d);
    if (!d) {
        gb_error_set(err, GB_ENOMEM, "daemon: out of memory");
        return NULL;
    }
    d->o = *opts;
    if (d->o.threads == 0)
        d->o.threads = 1;
    bool failed = false;
    d->endpoint = s_dup(opts->endpoint, err, &failed);
    d->server_name = s_dup(opts->server_name, err, &failed);
    d->client_name = s_dup(opts->client_name ? opts->client_name : cn, err, &failed);
    d->dataset = s_dup(opts->dataset ? opts->dataset
                                     : (opts->train ? opts->train : opts->test)->name,
                       err, &failed);
    if (failed)
        goto fail;
    d->o.endpoint = d->endpoint;
    d->o.server_name = d->server_name;
    d->o.client_name = d->client_name;
    d->o.dataset = d->dataset;
    d->o.cert_file = d->o.key_file = d->o.ca_file = NULL; /* used only here */
    if (!(d->worker = gb_daemon_worker_new(opts->queue, err)) ||
        !(d->conv = gb_conversation_new(NULL, err)))
        goto fail;
    gb_tls_options_t to = {.role = GB_TLS_CLIENT, .ca_file = opts->ca_file,
                           .cert_file = opts->cert_file, .key_file = opts->key_file};
    if (!(d->tls = gb_tls_new(&to, err)))
        goto fail;
    gb_link_options_t lo = {.retry_ms = opts->retry_ms, .retry_max_ms = opts->retry_max_ms};
    if (!(d->link = gb_link_client_new(opts->zmq_ctx, d->endpoint, d->tls, d->server_name, &lo,
                                       err)))
        goto fail;
    S_LOG(info, d, "with %s, connecting to %s", d->dataset, d->endpoint);
    d->away_since = gb_time_now();
    return d;
fail:
    gb_daemon_destroy(&d);
    return NULL;
}

void gb_daemon_destroy(gb_daemon_t **pd)
{
    if (!pd || !*pd)
        return;
    gb_daemon_t *d = *pd;
    gb_daemon_detach(d);
    if (d->stop_source)
        gb_event_loop_remove(d->stop_loop, d->stop_source);
    gb_event_loop_destroy(&d->own_loop);
    gb_daemon_worker_destroy(&d->worker); /* joins the thread before the runner goes */
    gb_envelope_free(&d->waiting);
    while (d->n_results)
        s_result_remove(d, d->n_results - 1);
    gb_link_client_destroy(&d->link);
    gb_tls_destroy(&d->tls);
    gb_conversation_destroy(&d->conv);
    gb_task_runner_destroy(&d->runner);
    gb_free(d->endpoint);
    gb_free(d->server_name);
    gb_free(d->client_name);
    gb_free(d->dataset);
    gb_free(d);
    *pd = NULL;
}

/* One step that does not wait: the worker and the timers, then every link
 * event already taken in, each followed by the timers again (a Welcome
 * arms the heartbeat), as the loop did when it was the daemon's own. Sets
 * d->handled when an event was handled. */
static int s_step_now(gb_daemon_t *d, gb_error_t *err)
{
    d->handled = false;
    if (d->st.finished)
        return GB_DAEMON_FINISHED;
    if (d->stopped)
        return 0;
    if (d->o.give_up_s && !d->st.connected && gb_time_now() - d->away_since >= d->o.give_up_s)
        return gb_error_set(err, GB_ECLOSED, "no session with the coordinator at %s for %d s "
                            "(the give-up time); giving up", d->endpoint, d->o.give_up_s);
    for (;;) {
        int rc = s_service(d, err);
        if (rc != 0)
            return rc;
        gb_link_event_t ev;
        if ((rc = gb_link_client_poll(d->link, 0, &ev, err)) != 0)
            return rc;
        if (ev.kind == GB_LINK_EV_NONE)
            return s_service(d, err);
        if ((rc = s_on_event(d, &ev, err)) != 0)
            return rc;
        d->handled = true;
    }
}

/* The source callbacks (net/event_loop.h): what the daemon waits on, and a
 * step when any of it came. */
static int s_fill(void *arg, zmq_pollitem_t *items, int cap, double *deadline)
{
    const gb_daemon_t *d = arg;
    *deadline = gb_daemon_next_deadline(d);
    return gb_daemon_poll_items(d, items, cap);
}

static void s_on_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    gb_daemon_t *d = arg;
    gb_error_t err = {0};
    int rc = s_step_now(d, &err);
    if (rc == 0)
        return;
    if (rc < 0 && !err.code)
        err.code = rc;
    gb_daemon_done_fn done = d->done;
    void *done_arg = d->done_arg;
    gb_daemon_detach(d); /* before done, which may stop or destroy the daemon */
    if (done)
        done(done_arg, d, rc, &err);
}

static void s_on_own_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    gb_daemon_t *d = arg;
    d->own_rc = s_step_now(d, d->own_err);
}

int gb_daemon_attach(gb_daemon_t *d, gb_event_loop_t *loop, gb_daemon_done_fn done, void *arg,
                     gb_error_t *err)
{
    if (d->source)
        return gb_error_set(err, GB_EINVAL, "daemon %s: already attached to a loop",
                            d->client_name);
    uint64_t id = gb_event_loop_add_source(loop, GB_DAEMON_POLL_ITEMS, s_fill, s_on_ready, d, err);
    if (!id)
        return err && err->code ? err->code : GB_ENOMEM;
    d->loop = loop;
    d->source = id;
    d->done = done;
    d->done_arg = arg;
    return 0;
}

void gb_daemon_detach(gb_daemon_t *d)
{
    if (!d->source)
        return;
    gb_event_loop_remove(d->loop, d->source);
    d->loop = NULL;
    d->source = 0;
    d->done = NULL;
    d->done_arg = NULL;
}

/* After a turn of the own loop: over once the step handled an event or
 * returned something (d->own_rc, which gb_daemon_step returns). */
static int s_own_check(void *arg, gb_error_t *err)
{
    (void)err; /* the step filled it */
    const gb_daemon_t *d = arg;
    return d->own_rc != 0 || d->handled;
}

int gb_daemon_step(gb_daemon_t *d, int timeout_ms, gb_error_t *err)
{
    int rc = s_step_now(d, err);
    if (rc != 0 || d->handled || timeout_ms == 0 || d->stopped)
        return rc;
    /* Wait on the daemon's own loop, its only source: until an event was
     * handled (the step returns after draining what came with it) or the
     * time is up. The loop sleeps until the daemon's nearest deadline. */
    const gb_event_wait_t how = {.max_items = GB_DAEMON_POLL_ITEMS, .fill = s_fill,
                                 .ready = s_on_own_ready, .arg = d, .check = s_own_check,
                                 .check_arg = d};
    d->own_err = err;
    d->own_rc = 0;
    rc = gb_event_loop_wait(&d->own_loop, &how, timeout_ms, err);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return d->own_rc;
    return s_step_now(d, err); /* the timers that came with the end */
}

/* The first half of a stop, which never waits: the task told to cancel,
 * the waiting one forgotten, what is queued sent. */
static void s_stop_start(gb_daemon_t *d)
{
    d->stopped = true;
    gb_daemon_worker_cancel(d->worker); /* harmless when idle */
    gb_envelope_free(&d->waiting);
    if (d->n_results)
        S_LOG(warn, d, "stopping with %zu result(s) not acknowledged", d->n_results);
    s_flush(d);
}

/* The cancelled task's result, dropped once it is done. */
static void s_stop_collect(gb_daemon_t *d)
{
    if (!gb_daemon_worker_busy(d->worker) || !gb_daemon_worker_done(d->worker))
        return;
    gb_daemon_worker_result_t r;
    gb_daemon_worker_collect(d->worker, &r);
    gb_daemon_worker_result_free(&r);
}

static void s_stop_end(gb_daemon_t *d)
{
    d->st.connected = d->st.welcomed = false;
    S_LOG(info, d, "stopped");
}

void gb_daemon_stop(gb_daemon_t *d, int linger_ms)
{
    if (d->stopped)
        return;
    s_stop_start(d);
    gb_daemon_worker_wait(d->worker); /* at most one batch; at once when idle */
    s_stop_collect(d);
    gb_link_client_close(d->link, linger_ms);
    s_stop_end(d);
}

/* While stopping in a loop: the lingering goodbye's items and deadline, and
 * a short look at the worker while its cancelled batch ends (its end says
 * nothing on a descriptor of ours when the run queue is shared). */
static int s_stop_fill(void *arg, zmq_pollitem_t *items, int cap, double *deadline)
{
    const gb_daemon_t *d = arg;
    int n = 0;
    *deadline = HUGE_VAL;
    if (gb_link_client_lingering(d->link)) {
        n = gb_link_client_poll_items(d->link, items, cap);
        *deadline = gb_link_client_next_deadline(d->link);
    }
    if (gb_daemon_worker_busy(d->worker)) {
        double look = gb_time_now() + S_STOP_LOOK_S;
        if (look < *deadline)
            *deadline = look;
    }
    return n;
}

static void s_stop_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    gb_daemon_t *d = arg;
    s_stop_collect(d);
    bool lingering = gb_link_client_linger(d->link);
    if (lingering || gb_daemon_worker_busy(d->worker))
        return;
    gb_event_loop_remove(loop, id);
    d->stop_loop = NULL;
    d->stop_source = 0;
    s_stop_end(d);
}

int gb_daemon_stop_begin(gb_daemon_t *d, gb_event_loop_t *loop, int linger_ms, gb_error_t *err)
{
    if (d->stopped)
        return 0;
    if (d->source || !loop)
        return gb_error_set(err, GB_EINVAL, "daemon %s: %s", d->client_name,
                            loop ? "still attached: detach first" : "stop_begin needs a loop");
    s_stop_start(d);
    s_stop_collect(d);
    bool lingering = gb_link_client_close_begin(d->link, linger_ms);
    if (!lingering && !gb_daemon_worker_busy(d->worker)) {
        s_stop_end(d);
        return 0;
    }
    d->stop_source = gb_event_loop_add_source(loop, GB_DAEMON_POLL_ITEMS, s_stop_fill,
                                              s_stop_ready, d, err);
    if (!d->stop_source) {
        /* no room to finish in the loop: finish now, goodbye cut short */
        gb_daemon_worker_wait(d->worker);
        s_stop_collect(d);
        gb_link_client_close(d->link, 0);
        s_stop_end(d);
        return err && err->code ? err->code : GB_ENOMEM;
    }
    d->stop_loop = loop;
    return 0;
}

bool gb_daemon_stopping(const gb_daemon_t *d)
{
    return d->stop_source != 0;
}

gb_daemon_status_t gb_daemon_status(const gb_daemon_t *d)
{
    gb_daemon_status_t s = d->st;
    s.state = s_state(d);
    s.running_task_id = gb_daemon_worker_task_id(d->worker);
    s.task_queued = gb_daemon_worker_waiting(d->worker);
    s.waiting_task_id = d->waiting ? d->waiting->task->task_id : 0;
    s.results_pending = d->n_results;
    return s;
}

int gb_daemon_poll_items(const gb_daemon_t *d, zmq_pollitem_t *items, int cap)
{
    if (d->stopped || d->st.finished || cap < GB_DAEMON_POLL_ITEMS)
        return 0;
    int n = gb_link_client_poll_items(d->link, items, cap);
    gb_daemon_queue_t *own = gb_daemon_worker_own_queue(d->worker);
    if (own)
        items[n++] = (zmq_pollitem_t){.fd = gb_daemon_queue_fd(own), .events = ZMQ_POLLIN};
    return n;
}

double gb_daemon_next_deadline(const gb_daemon_t *d)
{
    if (d->stopped || d->st.finished)
        return HUGE_VAL;
    if (gb_daemon_worker_done(d->worker) ||
        (d->waiting && d->runner && !gb_daemon_worker_busy(d->worker)))
        return 0;
    double t = HUGE_VAL;
    if (d->o.give_up_s && !d->st.connected)
        t = d->away_since + d->o.give_up_s;
    if (d->rejoin_at && d->st.connected && d->rejoin_at < t)
        t = d->rejoin_at;
    if (d->st.welcomed) {
        if (d->next_heartbeat < t)
            t = d->next_heartbeat;
        for (size_t i = 0; i < d->n_results; i++)
            if (!d->results[i].seq && d->results[i].send_at < t)
                t = d->results[i].send_at;
    }
    /* Frames the link refused for want of room wait in the conversation
     * until a step offers them again, and so does whatever came due
     * meanwhile (a result that cannot be queued stays due "now", which must
     * not spin): all of it waits for the next retry. */
    if (gb_conversation_queued_bytes(d->conv) && gb_link_client_connected(d->link))
        t = gb_time_now() + S_BACKLOG_RETRY_MS / 1000.0;
    double link = gb_link_client_next_deadline(d->link);
    return link < t ? link : t;
}
