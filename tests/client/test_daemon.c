/* Tests of client/daemon.c: the daemon against a coordinator played here
 * with the real front door (coordinator/front_door.h) and its handlers, a CA
 * made with gb_ca_init / gb_ca_issue in a temporary directory, small
 * synthetic data (three classes of 1x4x4 "images") and a small MLP, so a
 * task takes milliseconds. Daemon and coordinator run in this one thread,
 * stepped in turn.
 *
 * What they prove: construction refuses every bad option by name and cleans
 * up after every allocation failure; the client id is FNV-1a of the name;
 * the daemon joins with the right fields (name, version, sample counts,
 * dataset, last_round, capabilities), heartbeats at the interval Welcome
 * gives and has them acknowledged, trains a task and sends an Update whose
 * delta is bit for bit the task runner's run directly (and an EvalResult);
 * an unacknowledged Update is resent after the coordinator goes away and
 * comes back, counted once when acknowledged and never sent again; the same
 * Task resent after a rejoin is not run twice; ERROR_STALE drops a result,
 * ERROR_DUPLICATE counts as an ack, ERROR_BUSY resends after retry_after_ms;
 * a new Task cancels the running one, whose result is never sent, and step
 * returns within its timeout while a task trains; ERROR_SHUTTING_DOWN with
 * retry_after_ms > 0 does not end the run, with 0 it does, and stop closes
 * the session gracefully; garbage, a Join from the coordinator, a Task before
 * Welcome and a Task whose model does not fit the data get an Error reply
 * (checked on a raw link server) and change nothing. A daemon driven only
 * through its poll items and next deadline (the way `--virtual N` drives
 * many in one poll) joins, heartbeats and trains as one that steps with a
 * timeout, the run queue's descriptor saying when the task is done. The
 * run queue (daemon_worker.h) runs one task at a time in arrival order, a
 * waiting task cancelled is withdrawn at once and never runs, and two
 * daemons sharing a queue train one after the other while a newer Task
 * withdraws the one still waiting. Also the partition
 * options of client/data_source.h that the daemon's command uses: slices
 * that cover the training split exactly once, the description for Join, and
 * refusals by flag name. */
#include "testutil.h"
#include "task_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "daemon.h"
#include "daemon_worker.h"
#include "data_source.h"
#include "engine/model.h"
#include "front_door.h"
#include "net/channel.h"
#include "net/conversation.h"
#include "net/envelope.h"
#include "net/link.h"
#include "net/pki.h"
#include "net/wire.h"
#include "task_runner.h"
#include "util/alloc.h"
#include "util/rng.h"
#include "util/time.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "these tests build parameter bytes by memcpy: little-endian hosts only"
#endif

static const char S_MLP[] = "input 1 4 4\nflatten\ndense 8\nrelu\ndense 3\n";
/* Big enough that 1000 epochs of batch 1 never finish within a test. */
static const char S_SLOW[] = "input 1 4 4\nflatten\ndense 512\nrelu\ndense 512\nrelu\ndense 3\n";
static const char S_WRONG[] = "input 1 5 5\nflatten\ndense 3\n";
enum { N_TRAIN = 60, N_TEST = 30, CLASSES = 3, MAX_SEEN = 64 };
#define S_WAIT_S 60.0 /* give up on a condition after this (ASan on a busy machine) */

/* ---- data and tasks ---------------------------------------------------------- */

typedef gb_test_task_t s_task_t; /* the training Task of task_fixture.h */

/* ---- the fixture: CA, front door, daemon -------------------------------------- */

/* A coordinator without the front door: a bare link server and a
 * conversation, so a test can send anything at all. */
typedef struct {
    gb_tls_t *tls;
    gb_link_server_t *srv;
    gb_conversation_t *conv;
    uint64_t session;
} raw_t;

typedef enum { P_ACK, P_HOLD, P_STALE, P_DUPLICATE, P_BUSY } s_policy_t;

typedef struct {
    char *base, ca[600], clients[600], cert[700], key[700], ca_file[700];
    char endpoint[256];
    void *ctx;
    gb_front_door_t *door;
    gb_dataset_t *train, *test;
    gb_daemon_t *d;
    /* what the coordinator saw */
    int joins;
    char join_name[64], join_version[64], join_dataset[256], join_threads[16];
    uint64_t join_train, join_test, join_last_round;
    uint32_t join_min, join_max;
    int updates, evals, lefts;
    uint64_t update_task[MAX_SEEN];
    uint8_t *delta;      /* the last update's delta bytes (malloc) */
    size_t delta_len;
    s_policy_t policy;   /* how results are answered */
    Glassbox__ErrorCode join_refusal; /* turn Joins away with this (0: welcome them) */
    int join_refusals;   /* that many times */
    /* what the daemon reported */
    int reports;
    gb_daemon_task_report_t report;
    raw_t raw;           /* the raw server, for test_malformed_input_is_answered */
} fx_t;

static bool h_joined(void *arg, const char *id, const Glassbox__Join *j,
                     gb_front_door_refusal_t *no)
{
    fx_t *f = arg;
    (void)id;
    f->joins++;
    if (f->join_refusal && f->join_refusals > 0) {
        f->join_refusals--;
        no->code = f->join_refusal;
        no->retry_after_ms = no->code == GLASSBOX__ERROR_CODE__ERROR_BUSY ? 50 : 0;
        snprintf(no->why, sizeof no->why, "test refusal");
        return false;
    }
    snprintf(f->join_name, sizeof f->join_name, "%s", j->client_name);
    snprintf(f->join_version, sizeof f->join_version, "%s", j->software_version);
    snprintf(f->join_dataset, sizeof f->join_dataset, "%s", j->dataset);
    f->join_train = j->train_samples;
    f->join_test = j->test_samples;
    f->join_last_round = j->last_round;
    f->join_min = j->min_protocol_version;
    f->join_max = j->max_protocol_version;
    f->join_threads[0] = '\0';
    for (size_t i = 0; i < j->n_capabilities; i++)
        if (strcmp(j->capabilities[i]->key, "threads") == 0)
            snprintf(f->join_threads, sizeof f->join_threads, "%s", j->capabilities[i]->value);
    return true;
}

static void h_left(void *arg, const char *id, const char *reason)
{
    fx_t *f = arg;
    (void)id;
    (void)reason;
    f->lefts++;
}

static void s_reply(fx_t *f, const char *id, Glassbox__ErrorCode code, uint64_t seq,
                    uint32_t retry_ms)
{
    gb_error_t err = {0};
    Glassbox__Envelope *e = gb_envelope_make_error(1, code, seq, "test", &err);
    assert_non_null(e);
    e->error->retry_after_ms = retry_ms;
    assert_int_equal(gb_front_door_send(f->door, id, e, NULL, &err), 0);
    gb_envelope_free(&e);
}

static void h_message(void *arg, const char *id, const Glassbox__Envelope *env)
{
    fx_t *f = arg;
    uint64_t round, task_id;
    if (env->body_case == GLASSBOX__ENVELOPE__BODY_UPDATE) {
        const Glassbox__Update *u = env->update;
        if (f->updates < MAX_SEEN)
            f->update_task[f->updates] = u->task_id;
        f->updates++;
        free(f->delta);
        f->delta = malloc(u->delta.len);
        assert_non_null(f->delta);
        memcpy(f->delta, u->delta.data, u->delta.len);
        f->delta_len = u->delta.len;
        round = u->round;
        task_id = u->task_id;
    } else if (env->body_case == GLASSBOX__ENVELOPE__BODY_EVAL_RESULT) {
        f->evals++;
        round = env->eval_result->round;
        task_id = env->eval_result->task_id;
    } else {
        fail_msg("unexpected %s", gb_envelope_body_name(env));
        return;
    }
    switch (f->policy) {
    case P_ACK:
        gb_front_door_ack(f->door, id, env->sequence, round, task_id);
        break;
    case P_HOLD:
        break;
    case P_STALE:
        s_reply(f, id, GLASSBOX__ERROR_CODE__ERROR_STALE, env->sequence, 0);
        break;
    case P_DUPLICATE:
        s_reply(f, id, GLASSBOX__ERROR_CODE__ERROR_DUPLICATE, env->sequence, 0);
        break;
    case P_BUSY:
        s_reply(f, id, GLASSBOX__ERROR_CODE__ERROR_BUSY, env->sequence, 5);
        f->policy = P_ACK; /* busy once */
        break;
    }
}

static void s_report(void *arg, const gb_daemon_task_report_t *r)
{
    fx_t *f = arg;
    f->reports++;
    f->report = *r;
}

static void s_door_open(fx_t *f, const char *listen)
{
    gb_error_t err = {0};
    gb_front_door_options_t o = {.ca_dir = f->ca, .listen = listen, .federation = "unit",
                                 .heartbeat_interval_ms = 20};
    /* ZeroMQ closes a socket in its background thread: the port of a door
     * just destroyed may stay bound for a moment. */
    double end = gb_time_now() + S_WAIT_S;
    while (!(f->door = gb_front_door_new(f->ctx, &o, &err)) && gb_time_now() < end &&
           strstr(err.msg, "in use"))
        if (f->d && gb_daemon_step(f->d, 10, &err) < 0)
            fail_msg("step: %s", err.msg);
    if (!f->door)
        fail_msg("front door: %s", err.msg);
    gb_front_door_handlers_t h = {.arg = f, .joined = h_joined, .left = h_left,
                                  .message = h_message};
    gb_front_door_set_handlers(f->door, &h);
    snprintf(f->endpoint, sizeof f->endpoint, "%s", gb_front_door_endpoint(f->door));
}

/* The coordinator goes away and comes back on the same port. */
static void s_door_restart(fx_t *f)
{
    gb_front_door_destroy(&f->door);
    char listen[256];
    snprintf(listen, sizeof listen, "%s", f->endpoint);
    s_door_open(f, listen);
}

static gb_daemon_options_t s_options(fx_t *f, const char *endpoint)
{
    return (gb_daemon_options_t){.zmq_ctx = f->ctx, .endpoint = endpoint,
                                 .cert_file = f->cert, .key_file = f->key,
                                 .ca_file = f->ca_file, .server_name = "localhost",
                                 .train = f->train, .test = f->test,
                                 .dataset = "blobs iid 0/1", .threads = 1, .retry_ms = 20,
                                 .retry_max_ms = 100, .report = s_report, .report_arg = f};
}

static int s_setup_pki(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->base = gb_test_mkdtemp();
    snprintf(f->ca, sizeof f->ca, "%s/ca", f->base);
    snprintf(f->clients, sizeof f->clients, "%s/clients", f->base);
    snprintf(f->cert, sizeof f->cert, "%s/edge-1.crt", f->clients);
    snprintf(f->key, sizeof f->key, "%s/edge-1.key", f->clients);
    snprintf(f->ca_file, sizeof f->ca_file, "%s/%s", f->ca, GB_CA_CERT_FILE);
    gb_test_ca_make(f->ca, "unit", f->clients, "edge-", 1, 1);
    f->ctx = zmq_ctx_new();
    f->train = gb_test_blobs(N_TRAIN, 1);
    f->test = gb_test_blobs(N_TEST, 2);
    *state = f;
    return 0;
}

/* The PKI, a front door and a daemon connected to it. */
static int s_setup(void **state)
{
    s_setup_pki(state);
    fx_t *f = *state;
    s_door_open(f, "tcp://127.0.0.1:*");
    gb_error_t err = {0};
    gb_daemon_options_t o = s_options(f, f->endpoint);
    f->d = gb_daemon_new(&o, &err);
    if (!f->d)
        fail_msg("gb_daemon_new: %s", err.msg);
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *f = *state;
    gb_daemon_destroy(&f->d);
    gb_daemon_destroy(&f->d); /* NULL-safe */
    gb_front_door_destroy(&f->door);
    gb_conversation_destroy(&f->raw.conv);
    gb_link_server_destroy(&f->raw.srv);
    gb_tls_destroy(&f->raw.tls);
    zmq_ctx_term(f->ctx);
    gb_dataset_destroy(&f->train);
    gb_dataset_destroy(&f->test);
    gb_test_rmtree(f->base);
    free(f->base);
    free(f->delta);
    free(f);
    return 0;
}

/* One turn each for coordinator and daemon; returns the daemon's step. */
static int s_turn(fx_t *f)
{
    gb_error_t err = {0};
    if (f->door)
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
    int rc = gb_daemon_step(f->d, 1, &err);
    if (rc < 0)
        fail_msg("gb_daemon_step: %s", err.msg);
    return rc;
}

#define UNTIL(f, cond)                                                                             \
    do {                                                                                           \
        double end_ = gb_time_now() + S_WAIT_S;                                                    \
        while (!(cond)) {                                                                          \
            if (gb_time_now() > end_)                                                              \
                fail_msg("waited in vain for " #cond);                                             \
            s_turn(f);                                                                             \
        }                                                                                          \
    } while (0)

static gb_daemon_status_t S(const fx_t *f)
{
    return gb_daemon_status(f->d);
}

static void s_send_task(fx_t *f, s_task_t *t)
{
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.body_case = GLASSBOX__ENVELOPE__BODY_TASK;
    env.task = &t->task;
    gb_error_t err = {0};
    if (gb_front_door_send(f->door, "edge-1", &env, NULL, &err) != 0)
        fail_msg("send task: %s", err.msg);
}

/* The delta the task runner computes for t directly, as this client. */
static uint8_t *s_direct_delta(fx_t *f, const s_task_t *t, size_t *len)
{
    gb_task_runner_cfg_t cfg = {.train = f->train, .test = f->test,
                                .client_id = gb_daemon_client_id("edge-1"), .threads = 1};
    gb_error_t err = {0};
    gb_task_runner_t *r = gb_task_runner_new(&cfg, &err);
    assert_non_null(r);
    gb_task_result_t res;
    assert_int_equal(gb_task_runner_run(r, &t->task, NULL, &res, &err), 0);
    *len = res.update->delta.len;
    uint8_t *copy = malloc(*len);
    assert_non_null(copy);
    memcpy(copy, res.update->delta.data, *len);
    gb_task_runner_destroy(&r);
    return copy;
}

/* ---- construction --------------------------------------------------------------- */

static void test_new_refuses_bad_options(void **state)
{
    fx_t *f = *state;
    gb_error_t err = {0};
    assert_null(gb_daemon_new(NULL, &err));
    assert_int_equal(err.code, GB_EINVAL);

    gb_daemon_options_t o = s_options(f, "tcp://127.0.0.1:1");
    o.endpoint = NULL;
    assert_null(gb_daemon_new(&o, &err));
    assert_non_null(strstr(err.msg, "endpoint"));

    o = s_options(f, "tcp://127.0.0.1:1");
    o.train = o.test = NULL;
    assert_null(gb_daemon_new(&o, &err));
    assert_non_null(strstr(err.msg, "split"));

    o = s_options(f, "tcp://127.0.0.1:1");
    o.threads = 300;
    assert_null(gb_daemon_new(&o, &err));
    assert_non_null(strstr(err.msg, "300"));

    o = s_options(f, "tcp://127.0.0.1:1");
    o.client_name = "no spaces allowed";
    assert_null(gb_daemon_new(&o, &err));
    assert_int_equal(err.code, GB_EINVAL);

    char missing[700];
    snprintf(missing, sizeof missing, "%s/nope.crt", f->base);
    o = s_options(f, "tcp://127.0.0.1:1");
    o.cert_file = missing;
    assert_null(gb_daemon_new(&o, &err));
    assert_non_null(strstr(err.msg, "nope.crt"));

    o = s_options(f, "tcp://127.0.0.1:1");
    o.key_file = f->ca_file; /* not a key */
    assert_null(gb_daemon_new(&o, &err));
    assert_int_not_equal(err.code, 0);

    /* a good one: connects to nothing yet, steps within its timeout */
    o = s_options(f, "tcp://127.0.0.1:1");
    gb_daemon_t *d = gb_daemon_new(&o, &err);
    assert_non_null(d);
    gb_daemon_status_t st = gb_daemon_status(d);
    assert_false(st.connected);
    assert_int_equal(st.state, GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE);
    assert_int_equal(gb_daemon_step(d, 0, &err), 0);
    gb_daemon_stop(d, 0);
    gb_daemon_stop(d, 0); /* twice is harmless */
    assert_int_equal(gb_daemon_step(d, 10, &err), 0);
    gb_daemon_destroy(&d);
    assert_null(d);
}

static void test_new_allocation_failures(void **state)
{
    fx_t *f = *state;
    gb_daemon_options_t o = s_options(f, "tcp://127.0.0.1:1");
    for (long k = 1;; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        gb_daemon_t *d = gb_daemon_new(&o, &err);
        gb_alloc_fail_after(0);
        if (d) {
            gb_daemon_destroy(&d);
            break;
        }
        assert_int_not_equal(err.code, 0);
        assert_true(k < 10000);
    }
}

static void test_client_id(void **state)
{
    (void)state;
    /* FNV-1a 64 known answers */
    assert_true(gb_daemon_client_id("") == 0xcbf29ce484222325ull);
    assert_true(gb_daemon_client_id("a") == 0xaf63dc4c8601ec8cull);
    assert_true(gb_daemon_client_id("edge-1") == gb_daemon_client_id("edge-1"));
    assert_true(gb_daemon_client_id("edge-1") != gb_daemon_client_id("edge-2"));
}

/* ---- the conversation ------------------------------------------------------------ */

static void test_join_heartbeat_train(void **state)
{
    fx_t *f = *state;
    UNTIL(f, f->joins == 1);
    assert_string_equal(f->join_name, "edge-1");
    assert_string_equal(f->join_version, "glassbox " GLASSBOX_VERSION);
    assert_string_equal(f->join_dataset, "blobs iid 0/1");
    assert_int_equal(f->join_train, N_TRAIN);
    assert_int_equal(f->join_test, N_TEST);
    assert_int_equal(f->join_last_round, 0);
    assert_int_equal(f->join_min, GB_ENVELOPE_PROTOCOL_VERSION);
    assert_int_equal(f->join_max, GB_ENVELOPE_PROTOCOL_VERSION);
    assert_string_equal(f->join_threads, "1");

    /* Welcome's interval (20 ms) is used, and heartbeats are acknowledged */
    UNTIL(f, S(f).heartbeats_acked >= 3);
    assert_int_equal(S(f).heartbeat_interval_ms, 20);
    assert_string_equal(S(f).client_id, "edge-1");
    assert_true(S(f).welcomed);

    s_task_t *t = gb_test_task_new(S_MLP, 3, 5);
    t->task.evaluate = true;
    s_send_task(f, t);
    UNTIL(f, f->updates == 1 && f->evals == 1);
    size_t len = 0;
    uint8_t *direct = s_direct_delta(f, t, &len);
    assert_int_equal(f->delta_len, len);
    assert_memory_equal(f->delta, direct, len);
    free(direct);
    assert_int_equal(f->update_task[0], 5);
    UNTIL(f, S(f).results_pending == 0);
    gb_daemon_status_t st = S(f);
    assert_int_equal(st.results_acked, 2);
    assert_int_equal(st.tasks_done, 1);
    assert_int_equal(st.last_round, 3);
    assert_int_equal(st.state, GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE);
    assert_int_equal(f->reports, 1);
    assert_int_equal(f->report.round, 3);
    assert_int_equal(f->report.task_id, 5);
    assert_int_equal(f->report.samples, N_TRAIN);
    assert_true(f->report.trained && f->report.evaluated && !f->report.late);
    assert_true(f->report.delta_norm > 0 && isfinite(f->report.train_loss));

    /* a new session: Join names the last round; nothing acknowledged is resent */
    s_door_restart(f);
    UNTIL(f, f->joins == 2);
    assert_int_equal(f->join_last_round, 3);
    long hb = S(f).heartbeats_acked;
    UNTIL(f, S(f).heartbeats_acked >= hb + 3);
    assert_int_equal(f->updates, 1);
    assert_int_equal(S(f).sessions, 2);
    gb_test_task_free(&t);
}

static void test_resend_after_reconnect(void **state)
{
    fx_t *f = *state;
    UNTIL(f, S(f).welcomed);
    f->policy = P_HOLD;
    s_task_t *t = gb_test_task_new(S_MLP, 1, 9);
    s_send_task(f, t);
    UNTIL(f, f->updates == 1);
    uint8_t *first = malloc(f->delta_len);
    memcpy(first, f->delta, f->delta_len);
    assert_int_equal(S(f).results_pending, 1);
    assert_int_equal(S(f).state, GLASSBOX__CLIENT_STATE__CLIENT_STATE_UPLOADING);

    /* the coordinator goes away before acknowledging: resent on the next session */
    s_door_restart(f);
    f->policy = P_ACK;
    UNTIL(f, f->updates == 2);
    assert_int_equal(f->update_task[1], 9);
    assert_memory_equal(f->delta, first, f->delta_len);
    free(first);
    UNTIL(f, S(f).results_pending == 0);
    assert_int_equal(S(f).results_acked, 1);
    assert_int_equal(S(f).results_sent, 2);

    /* the same task again (as to a client that rejoins): not run twice */
    s_send_task(f, t);
    UNTIL(f, S(f).tasks_ignored == 1);
    assert_int_equal(S(f).tasks_done, 1);

    /* acknowledged once means never sent again */
    s_door_restart(f);
    UNTIL(f, S(f).sessions == 3 && S(f).welcomed);
    long hb = S(f).heartbeats_acked;
    UNTIL(f, S(f).heartbeats_acked >= hb + 3);
    assert_int_equal(f->updates, 2);
    gb_test_task_free(&t);
}

static void test_stale_duplicate_busy(void **state)
{
    fx_t *f = *state;
    UNTIL(f, S(f).welcomed);
    f->policy = P_STALE;
    s_task_t *t = gb_test_task_new(S_MLP, 1, 21);
    s_send_task(f, t);
    UNTIL(f, S(f).results_dropped == 1);
    assert_int_equal(S(f).results_pending, 0);
    assert_int_equal(S(f).results_acked, 0);

    f->policy = P_DUPLICATE;
    t->task.task_id = 22;
    s_send_task(f, t);
    UNTIL(f, S(f).results_acked == 1);
    assert_int_equal(S(f).results_pending, 0);

    f->policy = P_BUSY; /* busy once, then acknowledged */
    t->task.task_id = 23;
    s_send_task(f, t);
    UNTIL(f, S(f).results_acked == 2);
    assert_int_equal(f->updates, 4); /* 21, 22, 23, 23 again after the busy reply */
    assert_int_equal(f->update_task[2], 23);
    assert_int_equal(f->update_task[3], 23);
    assert_int_equal(S(f).results_dropped, 1);
    assert_int_equal(S(f).sessions, 1);
    gb_test_task_free(&t);
}

/* Turned away after the Welcome: busy, the daemon joins again when told;
 * what the federation does not take (too many samples) ends the run with
 * the coordinator's reason instead of a client that waits for ever. */
static void test_join_refused(void **state)
{
    fx_t *f = *state;
    UNTIL(f, S(f).welcomed);
    f->join_refusal = GLASSBOX__ERROR_CODE__ERROR_BUSY;
    f->join_refusals = 1;
    int joins = f->joins;
    s_door_restart(f);
    UNTIL(f, f->joins == joins + 2 && S(f).welcomed);
    assert_int_equal(gb_front_door_joined(f->door), 1);

    f->join_refusal = GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE;
    f->join_refusals = 1;
    s_door_restart(f);
    double end = gb_time_now() + S_WAIT_S;
    int rc = 0;
    gb_error_t err = {0};
    while (rc == 0 && gb_time_now() < end) {
        rc = gb_daemon_step(f->d, 10, &err);
        assert_int_equal(gb_front_door_step(f->door, 1, &(gb_error_t){0}), 0);
    }
    assert_int_equal(rc, GB_EINVAL);
    assert_non_null(strstr(err.msg, "refused Join: ERROR_INVALID_VALUE: test refusal"));
}

static void test_new_task_cancels_running(void **state)
{
    fx_t *f = *state;
    UNTIL(f, S(f).welcomed);
    s_task_t *slow = gb_test_task_new(S_SLOW, 1, 31);
    slow->tc.epochs = 1000;
    slow->tc.batch_size = 1;
    s_send_task(f, slow);
    UNTIL(f, S(f).running_task_id == 31);
    assert_int_equal(S(f).state, GLASSBOX__CLIENT_STATE__CLIENT_STATE_TRAINING);

    /* the loop stays responsive while the worker trains */
    gb_error_t err = {0};
    for (int i = 0; i < 5; i++) {
        double t0 = gb_time_now();
        assert_int_equal(gb_daemon_step(f->d, 20, &err), 0);
        assert_true(gb_time_now() - t0 < 1.0);
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
    }
    long hb = S(f).heartbeats_acked;
    UNTIL(f, S(f).heartbeats_acked >= hb + 2); /* heartbeats go on during training */

    s_task_t *fast = gb_test_task_new(S_MLP, 2, 32);
    s_send_task(f, fast);
    UNTIL(f, f->updates == 1);
    assert_int_equal(f->update_task[0], 32);
    gb_daemon_status_t st = S(f);
    assert_int_equal(st.tasks_cancelled, 1);
    assert_int_equal(st.tasks_done, 1);
    assert_int_equal(st.running_task_id, 0);
    assert_int_equal(f->reports, 1);
    assert_int_equal(f->report.task_id, 32);
    UNTIL(f, S(f).results_pending == 0);
    assert_int_equal(f->updates, 1); /* task 31's result never went out */
    gb_test_task_free(&slow);
    gb_test_task_free(&fast);
}

static void test_shutting_down(void **state)
{
    fx_t *f = *state;
    UNTIL(f, S(f).welcomed);
    /* only restarting: the run goes on */
    s_reply(f, "edge-1", GLASSBOX__ERROR_CODE__ERROR_SHUTTING_DOWN, 0, 500);
    UNTIL(f, S(f).errors_received == 1);
    assert_false(S(f).finished);
    /* finished */
    s_reply(f, "edge-1", GLASSBOX__ERROR_CODE__ERROR_SHUTTING_DOWN, 0, 0);
    double end = gb_time_now() + S_WAIT_S;
    int rc = 0;
    while (rc != GB_DAEMON_FINISHED && gb_time_now() < end)
        rc = s_turn(f);
    assert_int_equal(rc, GB_DAEMON_FINISHED);
    assert_true(S(f).finished);
    gb_error_t err = {0};
    assert_int_equal(gb_daemon_step(f->d, 10, &err), GB_DAEMON_FINISHED);
    /* stop says goodbye: the coordinator sees the client leave */
    assert_int_equal(f->lefts, 0);
    gb_daemon_stop(f->d, 500);
    end = gb_time_now() + S_WAIT_S;
    while (f->lefts == 0 && gb_time_now() < end)
        assert_int_equal(gb_front_door_step(f->door, 5, &err), 0);
    assert_int_equal(f->lefts, 1);
    assert_int_equal(gb_front_door_joined(f->door), 0);
}

/* ---- malformed input, on a raw link server ------------------------------------- */

static int s_raw_send_fn(void *arg, const uint8_t *frame, size_t len, gb_error_t *err)
{
    raw_t *r = arg;
    return gb_link_server_send(r->srv, r->session, frame, len, err);
}

static void s_raw_send(raw_t *r, Glassbox__Envelope *env)
{
    gb_error_t err = {0};
    if (gb_conversation_queue(r->conv, env, NULL, &err) != 0)
        fail_msg("queue: %s", err.msg);
    assert_int_equal(gb_conversation_flush(r->conv, s_raw_send_fn, r, &err), 0);
}

/* Steps server and daemon until the daemon sends something other than a
 * Heartbeat; returns it (the caller frees it). */
static Glassbox__Envelope *s_raw_next(fx_t *f, raw_t *r)
{
    gb_error_t err = {0};
    double end = gb_time_now() + S_WAIT_S;
    while (gb_time_now() < end) {
        assert_true(gb_daemon_step(f->d, 1, &err) >= 0);
        gb_link_event_t ev;
        assert_int_equal(gb_link_server_poll(r->srv, 1, &ev, &err), 0);
        if (ev.kind == GB_LINK_EV_CONNECTED)
            r->session = ev.session;
        if (ev.kind != GB_LINK_EV_MESSAGE)
            continue;
        Glassbox__Envelope *env = NULL;
        int rc = gb_conversation_receive(r->conv, ev.data, ev.len, &env, &err);
        if (rc < 0)
            fail_msg("the daemon sent something undecodable: %s", err.msg);
        if (rc == 1 && env->body_case != GLASSBOX__ENVELOPE__BODY_HEARTBEAT)
            return env;
        gb_envelope_free(&env);
    }
    fail_msg("nothing from the daemon");
    return NULL;
}

static void s_expect_error(fx_t *f, raw_t *r, Glassbox__ErrorCode code)
{
    Glassbox__Envelope *env = s_raw_next(f, r);
    assert_int_equal(env->body_case, GLASSBOX__ENVELOPE__BODY_ERROR);
    if (env->error->code != code)
        fail_msg("got %s, want %s: %s", gb_envelope_error_name(env->error->code),
                 gb_envelope_error_name(code), env->error->message);
    gb_envelope_free(&env);
}

static void test_malformed_input_is_answered(void **state)
{
    fx_t *f = *state;
    gb_error_t err = {0};
    raw_t *rp = &f->raw, r0 = {0};
    *rp = r0;
#define r (*rp)
    char cert[700], key[700];
    snprintf(cert, sizeof cert, "%s/%s", f->ca, GB_CA_COORD_CERT_FILE);
    snprintf(key, sizeof key, "%s/%s", f->ca, GB_CA_COORD_KEY_FILE);
    gb_tls_options_t to = {.role = GB_TLS_SERVER, .ca_file = f->ca_file, .cert_file = cert,
                           .key_file = key};
    r.tls = gb_tls_new(&to, &err);
    assert_non_null(r.tls);
    r.srv = gb_link_server_new(f->ctx, "tcp://127.0.0.1:*", r.tls, NULL, &err);
    assert_non_null(r.srv);
    r.conv = gb_conversation_new(NULL, &err);
    assert_non_null(r.conv);
    gb_daemon_options_t o = s_options(f, gb_link_server_endpoint(r.srv));
    f->d = gb_daemon_new(&o, &err);
    assert_non_null(f->d);

    Glassbox__Envelope *join = s_raw_next(f, &r);
    assert_int_equal(join->body_case, GLASSBOX__ENVELOPE__BODY_JOIN);
    gb_envelope_free(&join);

    /* a Task before Welcome */
    s_task_t *t = gb_test_task_new(S_MLP, 1, 41);
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.body_case = GLASSBOX__ENVELOPE__BODY_TASK;
    env.task = &t->task;
    s_raw_send(&r, &env);
    s_expect_error(f, &r, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED);
    assert_int_equal(S(f).waiting_task_id + S(f).running_task_id, 0);

    /* garbage */
    assert_int_equal(gb_link_server_send(r.srv, r.session, "\x08\x00junk", 6, &err), 0);
    s_expect_error(f, &r, GLASSBOX__ERROR_CODE__ERROR_MALFORMED);

    /* Welcome, then a body a client never expects */
    Glassbox__Welcome w = GLASSBOX__WELCOME__INIT;
    w.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    w.client_id = "edge-1";
    w.federation = "raw";
    w.heartbeat_interval_ms = 60000;
    w.heartbeat_timeout_ms = 120000;
    Glassbox__Envelope wenv = GLASSBOX__ENVELOPE__INIT;
    wenv.body_case = GLASSBOX__ENVELOPE__BODY_WELCOME;
    wenv.welcome = &w;
    s_raw_send(&r, &wenv);
    Glassbox__Join j = GLASSBOX__JOIN__INIT;
    j.min_protocol_version = j.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    j.client_name = "the-coordinator";
    Glassbox__Envelope jenv = GLASSBOX__ENVELOPE__INIT;
    jenv.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
    jenv.join = &j;
    s_raw_send(&r, &jenv);
    s_expect_error(f, &r, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED);
    assert_true(S(f).welcomed);

    /* a Task whose model does not fit this client's data */
    s_task_t *wrong = gb_test_task_new(S_WRONG, 1, 42);
    env.task = &wrong->task;
    s_raw_send(&r, &env);
    s_expect_error(f, &r, GLASSBOX__ERROR_CODE__ERROR_SHAPE);
    gb_daemon_status_t st = S(f);
    assert_int_equal(st.running_task_id, 0);
    assert_int_equal(st.waiting_task_id, 0);
    assert_int_equal(st.tasks_done, 0);
    assert_int_equal(st.tasks_failed, 1);
    assert_int_equal(st.errors_sent, 4);
    assert_true(st.welcomed);
    assert_int_equal(st.sessions, 1);

    /* and the session still works: a good task is trained and sent */
    env.task = &t->task;
    s_raw_send(&r, &env);
    Glassbox__Envelope *up = s_raw_next(f, &r);
    assert_int_equal(up->body_case, GLASSBOX__ENVELOPE__BODY_UPDATE);
    assert_int_equal(up->update->task_id, 41);
    gb_envelope_free(&up);

    gb_test_task_free(&t);
    gb_test_task_free(&wrong);
#undef r
}

/* ---- the partition options (client/data_source.h) -------------------------------- */

/* ---- one poll for many daemons ---------------------------------------------- */

/* One turn of a loop that waits on the daemon's items with zmq_poll and
 * steps it only when an item is ready or its deadline has come. */
static void s_poll_turn(fx_t *f)
{
    gb_error_t err = {0};
    if (f->door)
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
    zmq_pollitem_t items[GB_DAEMON_POLL_ITEMS];
    int n = gb_daemon_poll_items(f->d, items, GB_DAEMON_POLL_ITEMS);
    assert_int_equal(n, GB_DAEMON_POLL_ITEMS);
    double deadline = gb_daemon_next_deadline(f->d), now = gb_time_now();
    /* short waits: the coordinator of this test lives in this thread */
    long wait_ms = deadline <= now ? 0 : deadline - now > 0.002 ? 2 : 1;
    assert_true(zmq_poll(items, n, wait_ms) >= 0);
    bool ready = false;
    for (int i = 0; i < n; i++)
        ready |= items[i].revents != 0;
    if (ready || gb_daemon_next_deadline(f->d) <= gb_time_now())
        if (gb_daemon_step(f->d, 0, &err) < 0)
            fail_msg("gb_daemon_step: %s", err.msg);
}

#define POLL_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        double end_ = gb_time_now() + S_WAIT_S;                                                    \
        while (!(cond)) {                                                                          \
            if (gb_time_now() > end_)                                                              \
                fail_msg("waited in vain for " #cond);                                             \
            s_poll_turn(f);                                                                        \
        }                                                                                          \
    } while (0)

static void test_poll_items_and_deadline(void **state)
{
    fx_t *f = *state;
    zmq_pollitem_t items[GB_DAEMON_POLL_ITEMS];
    /* too small an array: nothing filled */
    assert_int_equal(gb_daemon_poll_items(f->d, items, GB_DAEMON_POLL_ITEMS - 1), 0);
    assert_int_equal(gb_daemon_poll_items(f->d, items, GB_DAEMON_POLL_ITEMS),
                     GB_DAEMON_POLL_ITEMS);
    assert_non_null(items[0].socket);
    assert_true(items[0].events & ZMQ_POLLIN);
    assert_non_null(items[1].socket);
    assert_null(items[2].socket); /* the daemon's own run queue: a descriptor */
    assert_true(items[2].fd >= 0 && items[2].events == ZMQ_POLLIN);
    /* handshaking: the handshake's timeout bounds the wait */
    double now = gb_time_now(), t = gb_daemon_next_deadline(f->d);
    assert_true(t <= now + 11.0);

    POLL_UNTIL(f, S(f).welcomed && S(f).heartbeats_acked >= 3);
    /* idle: the next heartbeat (every 20 ms) is the nearest deadline */
    now = gb_time_now();
    t = gb_daemon_next_deadline(f->d);
    assert_true(t <= now + 0.021);

    s_task_t *task = gb_test_task_new(S_SLOW, 4, 41); /* trains for some milliseconds */
    task->tc.epochs = 3;
    s_send_task(f, task);
    POLL_UNTIL(f, S(f).running_task_id == 41);
    /* nothing is stepped now: the queue's descriptor alone says the task is
     * done, and from then on the daemon is due at once */
    int n = gb_daemon_poll_items(f->d, items, GB_DAEMON_POLL_ITEMS);
    double end = gb_time_now() + S_WAIT_S;
    while (!(items[n - 1].revents & ZMQ_POLLIN)) {
        assert_true(gb_time_now() < end);
        assert_true(zmq_poll(&items[n - 1], 1, 100) >= 0);
    }
    assert_true(gb_daemon_next_deadline(f->d) == 0);
    POLL_UNTIL(f, f->updates == 1 && S(f).results_pending == 0);
    assert_int_equal(S(f).tasks_done, 1);
    assert_int_equal(f->report.task_id, 41);
    assert_true(f->report.started > 0 && f->report.started_unix_ms > 0);
    assert_true(f->report.queued_seconds >= 0 && f->report.queued_seconds < S_WAIT_S);
    /* the phases' times lie within the task's */
    assert_true(f->report.train_seconds > 0);
    assert_true(f->report.eval_seconds >= 0 && f->report.explain_seconds >= 0);
    assert_true(f->report.eval_seconds + f->report.explain_seconds + f->report.train_seconds <=
                f->report.seconds);

    /* stopped: nothing to wait on, nothing timed */
    gb_daemon_stop(f->d, 100);
    assert_int_equal(gb_daemon_poll_items(f->d, items, GB_DAEMON_POLL_ITEMS), 0);
    assert_true(isinf(gb_daemon_next_deadline(f->d)));
    gb_test_task_free(&task);
}

/* ---- the daemon as a source of the process's event loop -------------------- */

typedef struct {
    int calls;     /* done callbacks */
    int rc;        /* the last one's rc */
} s_done_t;

static void s_on_done(void *arg, gb_daemon_t *d, int rc, const gb_error_t *err)
{
    (void)d;
    (void)err;
    s_done_t *done = arg;
    done->calls++;
    done->rc = rc;
}

static void test_attach(void **state)
{
    fx_t *f = *state;
    gb_error_t err = {0};
    gb_event_loop_t *loop = gb_event_loop_new(&err);
    assert_non_null(loop);
    s_done_t done = {0};
    assert_int_equal(gb_daemon_attach(f->d, loop, s_on_done, &done, &err), 0);
    assert_int_equal(gb_event_loop_count(loop), 1);
    assert_int_equal(gb_daemon_attach(f->d, loop, s_on_done, &done, &err), GB_EINVAL);
    /* the loop alone drives the daemon: joined, heartbeats acknowledged */
    double end = gb_time_now() + S_WAIT_S;
    while (!(S(f).welcomed && S(f).heartbeats_acked >= 3)) {
        assert_true(gb_time_now() < end);
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
        assert_true(gb_event_loop_run_once(loop, 2, &err) >= 0);
    }
    /* idle between heartbeats (every 20 ms): the loop sleeps until the next */
    assert_true(gb_event_loop_run_once(loop, -1, &err) >= 0);
    assert_true(gb_event_loop_last_timeout(loop) >= 0 && gb_event_loop_last_timeout(loop) <= 21);
    /* the federation finishes: done is told once and the daemon leaves the loop */
    s_reply(f, "edge-1", GLASSBOX__ERROR_CODE__ERROR_SHUTTING_DOWN, 0, 0);
    end = gb_time_now() + S_WAIT_S;
    while (!done.calls) {
        assert_true(gb_time_now() < end);
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
        assert_true(gb_event_loop_run_once(loop, 2, &err) >= 0);
    }
    assert_int_equal(done.calls, 1);
    assert_int_equal(done.rc, GB_DAEMON_FINISHED);
    assert_int_equal(gb_event_loop_count(loop), 0);
    gb_daemon_detach(f->d); /* not attached: nothing */
    /* attach again, then detach by hand */
    assert_int_equal(gb_daemon_attach(f->d, loop, NULL, NULL, &err), 0);
    assert_int_equal(gb_event_loop_count(loop), 1);
    gb_daemon_detach(f->d);
    assert_int_equal(gb_event_loop_count(loop), 0);
    gb_event_loop_destroy(&loop);
}

/* Heartbeats on a grid fall on its multiples; a negative grid is refused. */
static void test_heartbeat_grid(void **state)
{
    fx_t *f = *state;
    gb_error_t err = {0};
    gb_daemon_options_t o = s_options(f, f->endpoint);
    o.heartbeat_grid_ms = -1;
    assert_null(gb_daemon_new(&o, &err));
    assert_non_null(strstr(err.msg, "grid"));
    gb_daemon_destroy(&f->d);
    o.heartbeat_grid_ms = 2; /* a tenth of Welcome's 20 ms: used as it is */
    f->d = gb_daemon_new(&o, &err);
    assert_non_null(f->d);
    UNTIL(f, S(f).welcomed && S(f).heartbeats_acked >= 3);
    double t = gb_daemon_next_deadline(f->d) / 0.002;
    assert_true(fabs(t - round(t)) < 1e-3);
}

/* The link client's side of one poll for many (net/link.h): its items and
 * deadline alone are enough to drive it from a handshake that waits for a
 * connection to a message received. Tested here, with the daemon that uses
 * it, since the server is the coordinator's. */
static void test_link_client_poll_items(void **state)
{
    fx_t *f = *state;
    gb_error_t err = {0};
    char cert[700], key[700];
    snprintf(cert, sizeof cert, "%s/%s", f->ca, GB_CA_COORD_CERT_FILE);
    snprintf(key, sizeof key, "%s/%s", f->ca, GB_CA_COORD_KEY_FILE);
    gb_tls_options_t so = {.role = GB_TLS_SERVER, .ca_file = f->ca_file, .cert_file = cert,
                           .key_file = key};
    gb_tls_options_t co = {.role = GB_TLS_CLIENT, .ca_file = f->ca_file, .cert_file = f->cert,
                           .key_file = f->key};
    gb_tls_t *stls = gb_tls_new(&so, &err), *ctls = gb_tls_new(&co, &err);
    assert_non_null(stls);
    assert_non_null(ctls);

    /* nobody listens: the hello waits for a connection, and asks for POLLOUT */
    gb_link_client_t *cli = gb_link_client_new(f->ctx, "tcp://127.0.0.1:1", ctls, "localhost",
                                               NULL, &err);
    assert_non_null(cli);
    zmq_pollitem_t it[GB_LINK_CLIENT_POLL_ITEMS];
    assert_int_equal(gb_link_client_poll_items(cli, it, 1), 0);
    gb_link_event_t ev;
    assert_true(gb_link_client_next_deadline(cli) <= gb_time_now()); /* first handshake due */
    assert_int_equal(gb_link_client_poll(cli, 0, &ev, &err), 0);
    assert_int_equal(ev.kind, GB_LINK_EV_NONE);
    assert_int_equal(gb_link_client_poll_items(cli, it, GB_LINK_CLIENT_POLL_ITEMS),
                     GB_LINK_CLIENT_POLL_ITEMS);
    assert_true(it[0].socket && it[1].socket);
    assert_true(it[0].events & ZMQ_POLLOUT);
    assert_true(it[1].events == ZMQ_POLLIN);
    double t = gb_link_client_next_deadline(cli), now = gb_time_now();
    assert_true(t > now && t <= now + 10.5); /* the handshake's timeout */
    gb_link_client_destroy(&cli);

    /* a server: driven by items and deadline only, the client connects */
    gb_link_server_t *srv = gb_link_server_new(f->ctx, "tcp://127.0.0.1:*", stls, NULL, &err);
    assert_non_null(srv);
    cli = gb_link_client_new(f->ctx, gb_link_server_endpoint(srv), ctls, "localhost", NULL, &err);
    assert_non_null(cli);
    uint64_t session = 0;
    bool connected = false, got = false;
    double end = gb_time_now() + S_WAIT_S;
    while (!got) {
        assert_true(gb_time_now() < end);
        gb_link_event_t sev;
        assert_int_equal(gb_link_server_poll(srv, 1, &sev, &err), 0);
        if (sev.kind == GB_LINK_EV_CONNECTED) {
            session = sev.session;
            assert_int_equal(gb_link_server_send(srv, session, "hi", 2, &err), 0);
        }
        int n = gb_link_client_poll_items(cli, it, GB_LINK_CLIENT_POLL_ITEMS);
        double dl = gb_link_client_next_deadline(cli);
        assert_true(zmq_poll(it, n, dl <= gb_time_now() ? 0 : 1) >= 0);
        if (!it[0].revents && !it[1].revents && gb_link_client_next_deadline(cli) > gb_time_now())
            continue;
        do {
            assert_int_equal(gb_link_client_poll(cli, 0, &ev, &err), 0);
            connected |= ev.kind == GB_LINK_EV_CONNECTED;
            if (ev.kind == GB_LINK_EV_MESSAGE) {
                assert_int_equal(ev.len, 2);
                assert_memory_equal(ev.data, "hi", 2);
                got = true;
            }
        } while (ev.kind != GB_LINK_EV_NONE);
    }
    assert_true(connected && session);
    /* established and idle: nothing timed, nothing but POLLIN asked for */
    assert_true(isinf(gb_link_client_next_deadline(cli)));
    assert_int_equal(gb_link_client_poll_items(cli, it, GB_LINK_CLIENT_POLL_ITEMS),
                     GB_LINK_CLIENT_POLL_ITEMS);
    assert_int_equal(it[0].events, ZMQ_POLLIN);
    gb_link_client_close(cli, 100);
    assert_true(isinf(gb_link_client_next_deadline(cli))); /* closed: no reconnection */
    gb_link_client_destroy(&cli);
    gb_link_server_destroy(&srv);
    gb_tls_destroy(&ctls);
    gb_tls_destroy(&stls);
}

/* ---- the run queue ------------------------------------------------------------ */

/* An Envelope of its own (as decoded from the wire) carrying t. */
static Glassbox__Envelope *s_task_envelope(const s_task_t *t)
{
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = 1;
    env.body_case = GLASSBOX__ENVELOPE__BODY_TASK;
    env.task = (Glassbox__Task *)&t->task;
    gb_error_t err = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    if (gb_envelope_encode(&env, NULL, &buf, &len, &err) != 0)
        fail_msg("encode: %s", err.msg);
    Glassbox__Envelope *out = NULL;
    if (gb_envelope_decode(buf, len, NULL, &out, &err) != 0)
        fail_msg("decode: %s", err.msg);
    gb_free(buf);
    return out;
}

static void s_start(gb_daemon_worker_t *w, gb_task_runner_t *r, const s_task_t *t)
{
    Glassbox__Envelope *env = s_task_envelope(t);
    gb_error_t err = {0};
    assert_int_equal(gb_daemon_worker_start(w, r, &env, 1, &err), 0);
    assert_null(env);
}

static bool s_readable(int fd)
{
    zmq_pollitem_t it = {.fd = fd, .events = ZMQ_POLLIN};
    return zmq_poll(&it, 1, 0) == 1 && (it.revents & ZMQ_POLLIN);
}

static void s_until_running(gb_daemon_queue_t *q, long running_started)
{
    double end = gb_time_now() + S_WAIT_S;
    while (gb_daemon_queue_stats(q).started < running_started) {
        assert_true(gb_time_now() < end);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void test_run_queue(void **state)
{
    fx_t *f = *state;
    gb_error_t err = {0};
    gb_daemon_queue_t *q = gb_daemon_queue_new(&err);
    assert_non_null(q);
    int fd = gb_daemon_queue_fd(q);
    assert_true(fd >= 0);
    assert_false(s_readable(fd));
    gb_daemon_queue_stats_t st = gb_daemon_queue_stats(q);
    assert_int_equal(st.started + st.waiting + st.running + st.most_running, 0);

    gb_task_runner_cfg_t cfg = {.train = f->train, .test = f->test, .client_id = 1,
                                .threads = 1};
    gb_task_runner_t *r1 = gb_task_runner_new(&cfg, &err), *r2 = gb_task_runner_new(&cfg, &err);
    assert_non_null(r1);
    assert_non_null(r2);
    gb_daemon_worker_t *w1 = gb_daemon_worker_new(q, &err), *w2 = gb_daemon_worker_new(q, &err);
    assert_non_null(w1);
    assert_non_null(w2);
    assert_null(gb_daemon_worker_own_queue(w1));
    assert_false(gb_daemon_worker_busy(w1));
    assert_int_equal(gb_daemon_worker_task_id(w1), 0);
    assert_null(gb_daemon_worker_task(w1));
    gb_daemon_worker_cancel(w1); /* idle: harmless */
    gb_daemon_worker_wait(w1);   /* idle: returns at once */

    s_task_t *slow = gb_test_task_new(S_SLOW, 1, 51), *fast = gb_test_task_new(S_MLP, 1, 52);
    slow->tc.epochs = 1000;
    slow->tc.batch_size = 1;
    s_start(w1, r1, slow);
    s_until_running(q, 1);
    assert_true(gb_daemon_worker_busy(w1));
    assert_false(gb_daemon_worker_waiting(w1));
    assert_int_equal(gb_daemon_worker_task_id(w1), 51);

    /* the second waits behind the first ... */
    s_start(w2, r2, fast);
    assert_true(gb_daemon_worker_waiting(w2));
    assert_false(gb_daemon_worker_done(w2));
    assert_int_equal(gb_daemon_worker_task(w2)->task_id, 52);
    st = gb_daemon_queue_stats(q);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(st.running, 1);
    /* ... and cancelled there, is withdrawn at once, never having run */
    gb_daemon_worker_cancel(w2);
    assert_true(gb_daemon_worker_done(w2));
    assert_true(s_readable(fd));
    gb_daemon_queue_drain(q);
    assert_false(s_readable(fd));
    gb_daemon_worker_result_t res;
    gb_daemon_worker_collect(w2, &res);
    assert_int_equal(res.rc, GB_TASK_ECANCELLED);
    assert_int_equal(res.task_id, 52);
    assert_true(res.started == 0 && res.seconds == 0 && !res.update);
    assert_false(gb_daemon_worker_busy(w2));
    st = gb_daemon_queue_stats(q);
    assert_int_equal(st.withdrawn, 1);
    assert_int_equal(st.waiting, 0);

    /* queued again behind the slow one, which is then cancelled: the fast
     * one runs only after the slow one has ended */
    s_start(w2, r2, fast);
    assert_true(gb_daemon_worker_waiting(w2));
    gb_daemon_worker_cancel(w1);
    gb_daemon_worker_wait(w1);
    gb_daemon_worker_collect(w1, &res);
    assert_int_equal(res.rc, GB_TASK_ECANCELLED);
    assert_true(res.started > 0);
    double slow_end = res.started + res.seconds;
    gb_daemon_worker_result_free(&res);
    gb_daemon_worker_wait(w2);
    assert_true(gb_daemon_worker_done(w2));
    gb_daemon_worker_collect(w2, &res);
    assert_int_equal(res.rc, 0);
    assert_non_null(res.update);
    assert_true(res.update_len > 0);
    assert_true(res.started >= slow_end);
    assert_true(res.queued_seconds > 0);
    gb_daemon_worker_result_free(&res);
    st = gb_daemon_queue_stats(q);
    assert_int_equal(st.started, 2);
    assert_int_equal(st.finished, 2);
    assert_int_equal(st.most_running, 1);
    assert_int_equal(st.running + st.waiting, 0);

    /* a worker with a queue of its own */
    gb_daemon_worker_t *w3 = gb_daemon_worker_new(NULL, &err);
    assert_non_null(w3);
    gb_daemon_queue_t *own = gb_daemon_worker_own_queue(w3);
    assert_non_null(own);
    s_start(w3, r1, fast);
    gb_daemon_worker_wait(w3);
    assert_true(s_readable(gb_daemon_queue_fd(own)));
    gb_daemon_worker_collect(w3, &res);
    assert_int_equal(res.rc, 0);
    gb_daemon_worker_result_free(&res);
    assert_int_equal(gb_daemon_queue_stats(own).finished, 1);
    gb_daemon_worker_destroy(&w3);
    assert_null(w3);

    /* destroyed with a task running and one waiting */
    s_start(w1, r1, slow);
    s_until_running(q, 3);
    s_start(w2, r2, fast);
    gb_daemon_worker_destroy(&w2);
    gb_daemon_worker_destroy(&w1);
    gb_daemon_worker_destroy(&w1); /* NULL-safe */
    assert_int_equal(gb_daemon_queue_stats(q).withdrawn, 2);
    gb_daemon_queue_destroy(&q);
    gb_daemon_queue_destroy(&q); /* NULL-safe */
    gb_daemon_worker_result_free(NULL);
    gb_task_runner_destroy(&r1);
    gb_task_runner_destroy(&r2);
    gb_test_task_free(&slow);
    gb_test_task_free(&fast);
}

/* Two daemons on one run queue: edge-1's slow task trains, edge-2's task
 * waits for its turn with its link alive, a newer Task for edge-2
 * withdraws the waiting one at once, and edge-2's task runs only once
 * edge-1's has ended. */
static void test_shared_queue(void **state)
{
    fx_t *f = *state;
    gb_error_t err = {0};
    gb_ca_t *ca = gb_ca_open(f->ca, &err);
    assert_non_null(ca);
    assert_int_equal(gb_ca_issue(ca, "edge-2", 30, f->clients, &err), 0);
    gb_ca_destroy(&ca);
    gb_daemon_destroy(&f->d);
    gb_daemon_queue_t *q = gb_daemon_queue_new(&err);
    assert_non_null(q);
    gb_daemon_options_t o = s_options(f, f->endpoint);
    o.queue = q;
    f->d = gb_daemon_new(&o, &err);
    assert_non_null(f->d);
    char cert2[700], key2[700];
    snprintf(cert2, sizeof cert2, "%s/edge-2.crt", f->clients);
    snprintf(key2, sizeof key2, "%s/edge-2.key", f->clients);
    o.cert_file = cert2;
    o.key_file = key2;
    o.report = NULL;
    gb_daemon_t *d2 = gb_daemon_new(&o, &err);
    assert_non_null(d2);
    double end = gb_time_now() + S_WAIT_S;
    while (!(S(f).welcomed && gb_daemon_status(d2).welcomed)) {
        assert_true(gb_time_now() < end);
        s_turn(f);
        assert_true(gb_daemon_step(d2, 1, &err) >= 0);
    }

    s_task_t *slow = gb_test_task_new(S_SLOW, 1, 61), *fast = gb_test_task_new(S_MLP, 1, 62);
    slow->tc.epochs = 1000;
    slow->tc.batch_size = 1;
    s_send_task(f, slow);
    UNTIL(f, S(f).running_task_id == 61 && !S(f).task_queued);
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.body_case = GLASSBOX__ENVELOPE__BODY_TASK;
    env.task = &fast->task;
    assert_int_equal(gb_front_door_send(f->door, "edge-2", &env, NULL, &err), 0);
    end = gb_time_now() + S_WAIT_S;
    while (!gb_daemon_status(d2).task_queued) {
        assert_true(gb_time_now() < end);
        s_turn(f);
        assert_true(gb_daemon_step(d2, 1, &err) >= 0);
    }
    gb_daemon_status_t st2 = gb_daemon_status(d2);
    assert_int_equal(st2.running_task_id, 62);
    assert_int_equal(st2.state, GLASSBOX__CLIENT_STATE__CLIENT_STATE_TRAINING);
    /* a newer Task for edge-2: the waiting one goes at once, the new one waits */
    fast->task.task_id = 63;
    assert_int_equal(gb_front_door_send(f->door, "edge-2", &env, NULL, &err), 0);
    long hb = gb_daemon_status(d2).heartbeats_acked;
    end = gb_time_now() + S_WAIT_S;
    while (gb_daemon_status(d2).running_task_id != 63 ||
           gb_daemon_status(d2).heartbeats_acked < hb + 2) {
        assert_true(gb_time_now() < end);
        s_turn(f);
        assert_true(gb_daemon_step(d2, 1, &err) >= 0);
    }
    st2 = gb_daemon_status(d2);
    assert_int_equal(st2.tasks_cancelled, 1);
    assert_true(st2.task_queued); /* edge-1's slow task still holds the queue */
    assert_int_equal(S(f).running_task_id, 61);

    /* edge-1 moves on to a fast task: its slow one is cancelled, and its new
     * task waits behind edge-2's */
    s_task_t *next = gb_test_task_new(S_MLP, 2, 64);
    s_send_task(f, next);
    end = gb_time_now() + S_WAIT_S;
    while (f->updates < 2 || gb_daemon_status(d2).tasks_done < 1) {
        assert_true(gb_time_now() < end);
        s_turn(f);
        assert_true(gb_daemon_step(d2, 1, &err) >= 0);
    }
    assert_int_equal(S(f).tasks_cancelled, 1);
    assert_int_equal(S(f).tasks_done, 1);
    assert_int_equal(f->report.task_id, 64);
    gb_daemon_queue_stats_t qs = gb_daemon_queue_stats(q);
    assert_int_equal(qs.most_running, 1);
    assert_int_equal(qs.withdrawn, 1);
    assert_int_equal(qs.finished, 3); /* 61 (cancelled running), 63, 64 */
    gb_daemon_destroy(&d2);
    gb_daemon_destroy(&f->d);
    gb_daemon_queue_destroy(&q);
    gb_test_task_free(&slow);
    gb_test_task_free(&fast);
    gb_test_task_free(&next);
}

static void test_data_source_partition(void **state)
{
    fx_t *f = *state;
    char csv[4096];
    size_t k = (size_t)snprintf(csv, sizeof csv, "x,label\n");
    for (int i = 0; i < 50; i++)
        k += (size_t)snprintf(csv + k, sizeof csv - k, "%d,%d\n", i, i % 2);
    char name[800];
    char *path = gb_test_write_csv(f->base, "d.csv", csv, name, sizeof name);

    gb_data_source_t d = gb_data_source_defaults();
    d.data = name;
    d.label = "label";
    gb_error_t err = {0};
    gb_dataset_t *whole = NULL, *test = NULL;
    assert_int_equal(gb_data_source_load(&d, &whole, &test, &err), 0);
    int64_t n_test = test->n;
    gb_dataset_destroy(&test);
    char desc[256];
    assert_string_equal(gb_data_source_describe(&d, desc, sizeof desc), name);

    /* three clients: disjoint slices that cover the training split */
    d.clients = 3;
    int64_t total = 0;
    int seen[50] = {0};
    for (int c = 0; c < 3; c++) {
        d.index = c;
        assert_int_equal(gb_data_source_check(&d, &err), 0);
        gb_dataset_t *train = NULL;
        assert_int_equal(gb_data_source_load(&d, &train, &test, &err), 0);
        assert_int_equal(test->n, n_test); /* the test split stays whole */
        total += train->n;
        for (int64_t i = 0; i < train->n; i++) {
            float x = train->features[i] * whole->in_std[0] + whole->in_mean[0];
            int row = (int)lroundf(x);
            assert_true(row >= 0 && row < 50);
            seen[row]++;
        }
        /* the same client again gets the same slice */
        gb_dataset_t *again = NULL, *test2 = NULL;
        assert_int_equal(gb_data_source_load(&d, &again, &test2, &err), 0);
        assert_int_equal(again->n, train->n);
        assert_memory_equal(again->features, train->features, train->n * sizeof(float));
        gb_dataset_destroy(&again);
        gb_dataset_destroy(&test2);
        gb_dataset_destroy(&train);
        gb_dataset_destroy(&test);
    }
    assert_int_equal(total, whole->n);
    for (int64_t i = 0; i < whole->n; i++)
        assert_int_equal(seen[i], 1);
    d.index = 2;
    char want[900];
    snprintf(want, sizeof want, "%s iid 2/3", name);
    assert_string_equal(gb_data_source_describe(&d, desc, sizeof desc), want);

    /* the test split cut the same way */
    d.partition_test = true;
    gb_dataset_t *train = NULL;
    assert_int_equal(gb_data_source_load(&d, &train, &test, &err), 0);
    assert_true(test->n < n_test);
    gb_dataset_destroy(&train);
    gb_dataset_destroy(&test);
    d.partition_test = false;

    /* refusals name the flag */
    d.index = 3;
    assert_int_equal(gb_data_source_check(&d, &err), GB_EUSAGE);
    assert_non_null(strstr(err.msg, "--index 3"));
    assert_int_not_equal(gb_data_source_load(&d, &train, &test, &err), 0);
    assert_null(train);
    d.index = 0;
    d.partition = "sorted";
    assert_int_equal(gb_data_source_check(&d, &err), GB_EUSAGE);
    assert_non_null(strstr(err.msg, "--partition"));
    d.partition = "dirichlet:0.5";
    assert_int_equal(gb_data_source_check(&d, &err), 0);
    d.regression = true; /* a regression target has no classes to skew */
    assert_int_not_equal(gb_data_source_load(&d, &train, &test, &err), 0);
    assert_non_null(strstr(err.msg, "iid"));
    d.partition = "iid";
    assert_int_equal(gb_data_source_load(&d, &train, &test, &err), 0);
    assert_true(train->n > 0 && train->n < whole->n);
    gb_dataset_destroy(&train);
    gb_dataset_destroy(&test);

    gb_dataset_destroy(&whole);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_refuses_bad_options, s_setup_pki, s_teardown),
        cmocka_unit_test_setup_teardown(test_new_allocation_failures, s_setup_pki, s_teardown),
        cmocka_unit_test(test_client_id),
        cmocka_unit_test_setup_teardown(test_join_heartbeat_train, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_resend_after_reconnect, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stale_duplicate_busy, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_join_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_new_task_cancels_running, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_shutting_down, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_input_is_answered, s_setup_pki,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_poll_items_and_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_grid, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_attach, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_link_client_poll_items, s_setup_pki, s_teardown),
        cmocka_unit_test_setup_teardown(test_run_queue, s_setup_pki, s_teardown),
        cmocka_unit_test_setup_teardown(test_shared_queue, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_data_source_partition, s_setup_pki, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
