/* Tests for coordinator/front_door: a CA made by gb_ca_init, a client
 * certificate from gb_ca_issue, and the C link client in this thread.
 * Covered: construction failures (no CA directory, a directory without a
 * CA, an endpoint in use), Join -> Welcome with the certificate's name,
 * Heartbeat -> Ack, a message before Join and an Update (no round) refused
 * as unexpected, a malformed message answered and the session kept,
 * gb_front_door_joined as clients come and go, and an anonymous session
 * that sends something other than an enrollment request; the round loop's
 * handlers (joined, message, left), sending to a client by name (a Task
 * bigger than a frame arrives chunked and whole), replies by name, and a
 * client that joins again on a new session replacing its old one;
 * subscribers (gb_front_door_publish); 80 clients at once (past the session
 * table's first allocation, so it and its index grow), each sent a Task by
 * name with gb_front_door_send_parts, then sessions closed by name and
 * ended by their clients (removal moves the last session into the hole),
 * the rest still reached by name, and a rejoin under the same name; the
 * door attached to a caller's event loop, asleep until its deadline. The
 * enrollment
 * path and CRL reloading run through the binaries in test_serve.py. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "../net/envelope_fixture.h"
#include "front_door.h"
#include "net/conversation.h"
#include "net/envelope.h"
#include "net/link.h"
#include "net/pki.h"
#include "net/signing.h"
#include "task_pack.h"
#include "util/alloc.h"
#include "util/time.h"

typedef struct {
    char *base, ca[600], clients[600];
    void *ctx;
    gb_front_door_t *door;
    gb_tls_t *tls;
    gb_link_client_t *cli;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    gb_error_t err = {0};
    f->base = gb_test_mkdtemp();
    snprintf(f->ca, sizeof f->ca, "%s/ca", f->base);
    snprintf(f->clients, sizeof f->clients, "%s/clients", f->base);
    gb_test_ca_make(f->ca, "unit", f->clients, "edge-", 1, 1);
    f->ctx = zmq_ctx_new();
    gb_front_door_options_t o = {.ca_dir = f->ca, .listen = "tcp://127.0.0.1:*",
                                 .federation = "unit"};
    f->door = gb_front_door_new(f->ctx, &o, &err);
    assert_non_null(f->door);
    *state = f;
    return 0;
}

static void s_crowd_cleanup(void);

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    s_crowd_cleanup(); /* a failed many-session test leaves its sockets open */
    gb_link_client_destroy(&f->cli);
    gb_tls_destroy(&f->tls);
    gb_front_door_destroy(&f->door);
    gb_front_door_destroy(&f->door); /* NULL-safe */
    zmq_ctx_term(f->ctx);
    gb_test_rmtree(f->base);
    free(f->base);
    free(f);
    return 0;
}

/* A link client to the door: as edge-1, or anonymous. */
static void s_connect(fixture_t *f, bool anonymous)
{
    char ca_file[700], cert[700], key[700];
    snprintf(ca_file, sizeof ca_file, "%s/%s", f->ca, GB_CA_CERT_FILE);
    snprintf(cert, sizeof cert, "%s/edge-1.crt", f->clients);
    snprintf(key, sizeof key, "%s/edge-1.key", f->clients);
    gb_tls_options_t to = {.role = GB_TLS_CLIENT, .ca_file = ca_file,
                           .cert_file = anonymous ? NULL : cert,
                           .key_file = anonymous ? NULL : key};
    gb_error_t err = {0};
    f->tls = gb_tls_new(&to, &err);
    assert_non_null(f->tls);
    gb_link_options_t lo = {.retry_ms = 20, .retry_max_ms = 100};
    f->cli = gb_link_client_new(f->ctx, gb_front_door_endpoint(f->door), f->tls, "localhost",
                                &lo, &err);
    assert_non_null(f->cli);
}

/* Runs door and client until the client has a message (decoded into *out)
 * or, with out NULL, until the client is connected. */
static void s_pump(fixture_t *f, Glassbox__Envelope **out)
{
    gb_error_t err = {0};
    double end = gb_time_now() + 10;
    while (gb_time_now() < end) {
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
        gb_link_event_t ev;
        assert_int_equal(gb_link_client_poll(f->cli, 1, &ev, &err), 0);
        if (!out && ev.kind == GB_LINK_EV_CONNECTED)
            return;
        if (out && ev.kind == GB_LINK_EV_MESSAGE) {
            if (gb_envelope_decode(ev.data, ev.len, NULL, out, &err) != 0)
                fail_msg("reply refused: %s", err.msg);
            return;
        }
    }
    fail_msg("nothing arrived in 10 s");
}

static void s_send(fixture_t *f, Glassbox__Envelope *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    if (gb_envelope_encode(env, NULL, &buf, &len, &err) != 0)
        fail_msg("encode: %s", err.msg);
    assert_int_equal(gb_link_client_send(f->cli, buf, len, &err), 0);
    gb_free(buf);
}

static Glassbox__Envelope *s_exchange(fixture_t *f, Glassbox__Envelope *env)
{
    s_send(f, env);
    Glassbox__Envelope *reply = NULL;
    s_pump(f, &reply);
    return reply;
}

static void test_construction_failures(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_front_door_options_t o = {.listen = "tcp://127.0.0.1:*"};
    assert_null(gb_front_door_new(f->ctx, &o, &err));
    assert_non_null(strstr(err.msg, "CA directory"));
    o.ca_dir = f->base; /* a directory, but no CA in it */
    assert_null(gb_front_door_new(f->ctx, &o, &err));
    o.ca_dir = f->ca;
    o.listen = gb_front_door_endpoint(f->door); /* taken */
    assert_null(gb_front_door_new(f->ctx, &o, &err));
    assert_non_null(strstr(err.msg, "cannot bind"));
}

static void test_join_and_heartbeat(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    s_connect(f, false);
    s_pump(f, NULL);
    assert_int_equal(gb_front_door_joined(f->door), 0);

    /* a heartbeat before Join: unexpected */
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    Glassbox__Heartbeat hb = GLASSBOX__HEARTBEAT__INIT;
    hb.sent_unix_ms = 1;
    hb.state = GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = 1;
    env.body_case = GLASSBOX__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    Glassbox__Envelope *reply = s_exchange(f, &env);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_ERROR);
    assert_int_equal(reply->error->code, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED);
    assert_true(reply->error->in_reply_to == 1);
    gb_envelope_free(&reply);

    Glassbox__Join join = GLASSBOX__JOIN__INIT;
    join.min_protocol_version = join.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    join.client_name = "whatever-it-says";
    Glassbox__Envelope jenv = GLASSBOX__ENVELOPE__INIT;
    jenv.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    jenv.sequence = 2;
    jenv.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
    jenv.join = &join;
    reply = s_exchange(f, &jenv);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_WELCOME);
    assert_string_equal(reply->welcome->client_id, "edge-1"); /* the certificate's name */
    assert_string_equal(reply->welcome->federation, "unit");
    assert_int_equal(reply->welcome->heartbeat_interval_ms, 5000);
    gb_envelope_free(&reply);
    assert_int_equal(gb_front_door_joined(f->door), 1);

    env.sequence = 3;
    reply = s_exchange(f, &env);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_ACK);
    assert_true(reply->ack->acked_sequence == 3);
    gb_envelope_free(&reply);

    /* garbage: answered, the session stays */
    assert_int_equal(gb_link_client_send(f->cli, "\x08\x00junk", 6, &err), 0);
    s_pump(f, &reply);
    assert_int_equal(reply->error->code, GLASSBOX__ERROR_CODE__ERROR_MALFORMED);
    gb_envelope_free(&reply);
    /* an update with no round in progress */
    Glassbox__Envelope *ack = gb_envelope_make_ack(4, 1, 0, 0, &err);
    reply = s_exchange(f, ack);
    gb_envelope_free(&ack);
    assert_int_equal(reply->error->code, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED);
    gb_envelope_free(&reply);
    assert_true(gb_link_client_connected(f->cli));

    /* a protocol range without ours (packed by hand: our encoder refuses it) */
    join.min_protocol_version = join.max_protocol_version = 7;
    jenv.sequence = 5;
    uint8_t raw[256];
    size_t raw_len = glassbox__envelope__pack(&jenv, raw);
    assert_int_equal(gb_link_client_send(f->cli, raw, raw_len, &err), 0);
    s_pump(f, &reply);
    assert_int_equal(reply->error->code, GLASSBOX__ERROR_CODE__ERROR_VERSION);
    gb_envelope_free(&reply);

    /* the client leaves: joined drops */
    gb_link_client_close(f->cli, 500);
    double end = gb_time_now() + 5;
    while (gb_front_door_joined(f->door) && gb_time_now() < end)
        assert_int_equal(gb_front_door_step(f->door, 10, &err), 0);
    assert_int_equal(gb_front_door_joined(f->door), 0);
}

static void test_anonymous_may_only_enroll(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    s_connect(f, true);
    s_pump(f, NULL);
    Glassbox__Envelope *ack = gb_envelope_make_ack(1, 1, 0, 0, &err);
    Glassbox__Envelope *reply = s_exchange(f, ack);
    gb_envelope_free(&ack);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_ERROR);
    assert_int_equal(reply->error->code, GLASSBOX__ERROR_CODE__ERROR_UNAUTHENTICATED);
    gb_envelope_free(&reply);
    /* and the session is closed after its one answer */
    double end = gb_time_now() + 5;
    bool closed = false;
    while (!closed && gb_time_now() < end) {
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
        gb_link_event_t ev;
        assert_int_equal(gb_link_client_poll(f->cli, 1, &ev, &err), 0);
        closed = ev.kind == GB_LINK_EV_DISCONNECTED;
    }
    assert_true(closed);
    assert_int_equal(gb_front_door_joined(f->door), 0);
}

/* What the handlers heard. */
typedef struct {
    int joined, left, messages;
    bool turn_away; /* joined says no */
    char last_joined[64], last_left[64];
    int last_body;
    uint64_t last_seq;
} heard_t;

static bool s_on_joined(void *arg, const char *id, const Glassbox__Join *j,
                        gb_front_door_refusal_t *no)
{
    heard_t *h = arg;
    h->joined++;
    snprintf(h->last_joined, sizeof h->last_joined, "%s", id);
    assert_non_null(j);
    if (h->turn_away) {
        no->code = GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN;
        snprintf(no->why, sizeof no->why, "no room");
        return false;
    }
    return true;
}

static void s_on_left(void *arg, const char *id, const char *reason)
{
    heard_t *h = arg;
    h->left++;
    snprintf(h->last_left, sizeof h->last_left, "%s", id);
    assert_non_null(reason);
}

static void s_on_message(void *arg, const char *id, const Glassbox__Envelope *env)
{
    heard_t *h = arg;
    h->messages++;
    h->last_body = env->body_case;
    h->last_seq = env->sequence;
    assert_string_equal(id, "edge-1");
}

static void s_join(fixture_t *f, uint64_t seq)
{
    Glassbox__Join join = GLASSBOX__JOIN__INIT;
    join.min_protocol_version = join.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    join.train_samples = 600;
    join.client_name = "edge-1";
    Glassbox__Envelope jenv = GLASSBOX__ENVELOPE__INIT;
    jenv.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    jenv.sequence = seq;
    jenv.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
    jenv.join = &join;
    Glassbox__Envelope *reply = s_exchange(f, &jenv);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_WELCOME);
    gb_envelope_free(&reply);
}

/* Runs the door and the client's conversation until a whole Envelope
 * arrives. */
static Glassbox__Envelope *s_receive_whole(fixture_t *f, gb_conversation_t *conv)
{
    gb_error_t err = {0};
    double end = gb_time_now() + 10;
    while (gb_time_now() < end) {
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
        gb_link_event_t ev;
        assert_int_equal(gb_link_client_poll(f->cli, 1, &ev, &err), 0);
        if (ev.kind != GB_LINK_EV_MESSAGE)
            continue;
        Glassbox__Envelope *env = NULL;
        int rc = gb_conversation_receive(conv, ev.data, ev.len, &env, &err);
        if (rc < 0)
            fail_msg("client refused a frame: %s", err.msg);
        if (rc == 1)
            return env;
    }
    fail_msg("nothing whole arrived in 10 s");
    return NULL;
}

static void test_handlers_and_send(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    heard_t heard = {0};
    gb_front_door_handlers_t h = {.arg = &heard, .joined = s_on_joined, .left = s_on_left,
                                  .message = s_on_message};
    gb_front_door_set_handlers(f->door, &h);
    s_connect(f, false);
    s_pump(f, NULL);
    s_join(f, 1);
    assert_int_equal(heard.joined, 1);
    assert_string_equal(heard.last_joined, "edge-1");

    /* an Update goes to the message handler, which replies by name */
    gbfix_t u;
    gbfix_init(&u, GBFIX_UPDATE);
    size_t len;
    free(gbfix_pack(&u, &len)); /* computes its hash */
    u.env.sequence = 2;
    s_send(f, &u.env);
    double end = gb_time_now() + 10;
    while (!heard.messages && gb_time_now() < end)
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
    assert_int_equal(heard.messages, 1);
    assert_int_equal(heard.last_body, GLASSBOX__ENVELOPE__BODY_UPDATE);
    gb_front_door_ack(f->door, "edge-1", heard.last_seq, 3, 9);
    gb_conversation_t *conv = gb_conversation_new(NULL, &err);
    assert_non_null(conv);
    Glassbox__Envelope *got = s_receive_whole(f, conv);
    assert_int_equal(got->body_case, GLASSBOX__ENVELOPE__BODY_ACK);
    assert_true(got->ack->acked_sequence == 2 && got->ack->task_id == 9);
    gb_envelope_free(&got);
    gb_front_door_refuse(f->door, "edge-1", GLASSBOX__ERROR_CODE__ERROR_STALE, 2, "too late");
    got = s_receive_whole(f, conv);
    assert_int_equal(got->error->code, GLASSBOX__ERROR_CODE__ERROR_STALE);
    assert_string_equal(got->error->message, "too late");
    gb_envelope_free(&got);

    /* a Task with a 6 MB model: over one frame, so it goes in chunks */
    enum { IN = 1000, OUT = 1500, N = IN * OUT + OUT };
    gbfix_t t;
    gbfix_init(&t, GBFIX_TASK);
    float *params = calloc(N, sizeof *params);
    for (size_t i = 0; i < N; i++)
        params[i] = (float)(i % 97) * 1e-3f;
    t.model.spec = "input 1000\ndense 1500\n";
    t.model.params.data = (uint8_t *)params;
    t.model.params.len = (size_t)N * sizeof *params;
    t.model.param_count = N;
    free(gbfix_pack(&t, &len));
    uint64_t seq = 0;
    assert_int_equal(gb_front_door_send(f->door, "edge-1", &t.env, &seq, &err), 0);
    assert_true(seq > 2);
    got = s_receive_whole(f, conv);
    assert_int_equal(got->body_case, GLASSBOX__ENVELOPE__BODY_TASK);
    assert_int_equal(got->sequence, seq);
    assert_int_equal(got->task->model->param_count, N);
    assert_memory_equal(got->task->model->params.data, params, (size_t)N * sizeof *params);
    gb_envelope_free(&got);
    assert_int_equal(gb_front_door_queued_bytes(f->door), 0);
    free(params);

    /* sending to someone not connected */
    assert_int_equal(gb_front_door_send(f->door, "edge-2", &u.env, NULL, &err), GB_ECLOSED);
    assert_non_null(strstr(err.msg, "edge-2"));
    gb_front_door_refuse(f->door, "edge-2", GLASSBOX__ERROR_CODE__ERROR_STALE, 1, "x");
    gb_front_door_ack(f->door, "edge-2", 1, 0, 0);

    /* edge-1 comes back on a new session before the old one timed out: the
     * old one is closed, joined is heard again and left is not */
    gb_link_client_t *old = f->cli;
    f->cli = NULL;
    gb_tls_destroy(&f->tls);
    s_connect(f, false);
    s_pump(f, NULL);
    s_join(f, 1);
    assert_int_equal(heard.joined, 2);
    assert_int_equal(heard.left, 0);
    assert_int_equal(gb_front_door_joined(f->door), 1);
    gb_link_client_destroy(&old);

    /* and when it leaves, left is heard */
    gb_link_client_close(f->cli, 500);
    end = gb_time_now() + 5;
    while (!heard.left && gb_time_now() < end)
        assert_int_equal(gb_front_door_step(f->door, 10, &err), 0);
    assert_int_equal(heard.left, 1);
    assert_string_equal(heard.last_left, "edge-1");
    gb_conversation_destroy(&conv);
    gb_front_door_set_handlers(f->door, NULL);
}

/* A repeated Join on the same session gets its Welcome again and is not
 * heard; a client the round loop turns away gets the Error in reply to its
 * Join and stays unjoined. */
static void test_repeated_join_and_turn_away(void **state)
{
    fixture_t *f = *state;
    heard_t heard = {0};
    gb_front_door_handlers_t h = {.arg = &heard, .joined = s_on_joined, .left = s_on_left,
                                  .message = s_on_message};
    gb_front_door_set_handlers(f->door, &h);
    s_connect(f, false);
    s_pump(f, NULL);
    s_join(f, 1);
    s_join(f, 2);
    assert_int_equal(heard.joined, 1);
    assert_int_equal(gb_front_door_joined(f->door), 1);

    /* a new session that the loop turns away */
    gb_link_client_destroy(&f->cli);
    gb_tls_destroy(&f->tls);
    heard.turn_away = true;
    s_connect(f, false);
    s_pump(f, NULL);
    Glassbox__Join join = GLASSBOX__JOIN__INIT;
    join.min_protocol_version = join.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    join.client_name = "edge-1";
    Glassbox__Envelope jenv = GLASSBOX__ENVELOPE__INIT;
    jenv.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    jenv.sequence = 1;
    jenv.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
    jenv.join = &join;
    Glassbox__Envelope *reply = s_exchange(f, &jenv);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_WELCOME);
    gb_envelope_free(&reply);
    s_pump(f, &reply);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_ERROR);
    assert_int_equal(reply->error->code, GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN);
    assert_true(reply->error->in_reply_to == 1);
    assert_string_equal(reply->error->message, "no room");
    gb_envelope_free(&reply);
    assert_int_equal(heard.joined, 2);
    assert_int_equal(gb_front_door_joined(f->door), 0);
    gb_front_door_set_handlers(f->door, NULL);
}

/* The round loop closes a client's session: it ends at the end of the step,
 * `left` is heard, and the client's link starts a new session. */
static void test_close_by_name(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    heard_t heard = {0};
    gb_front_door_handlers_t h = {.arg = &heard, .joined = s_on_joined, .left = s_on_left,
                                  .message = s_on_message};
    gb_front_door_set_handlers(f->door, &h);
    s_connect(f, false);
    s_pump(f, NULL);
    s_join(f, 1);
    gb_front_door_close(f->door, "nobody", "not connected: nothing happens");
    gb_front_door_close(f->door, "edge-1", "a test");
    assert_int_equal(gb_front_door_joined(f->door), 1); /* not before the step ends */
    assert_int_equal(gb_front_door_step(f->door, 0, &err), 0);
    assert_int_equal(heard.left, 1);
    assert_string_equal(heard.last_left, "edge-1");
    assert_int_equal(gb_front_door_joined(f->door), 0);
    /* the client notices and connects again by itself */
    bool again = false;
    double end = gb_time_now() + 10;
    while (!again && gb_time_now() < end) {
        assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
        gb_link_event_t ev;
        assert_int_equal(gb_link_client_poll(f->cli, 1, &ev, &err), 0);
        again = ev.kind == GB_LINK_EV_CONNECTED;
    }
    assert_true(again);
    gb_front_door_set_handlers(f->door, NULL);
}

/* The door on the caller's loop: attach moves it off the loop a step made
 * for it, refuses a second loop, and leaves nothing behind on detach; an
 * idle door sleeps until its next CRL check (a second after the first),
 * not a constant poll; a step turns the loop it is attached to. */
static void test_attached_to_a_loop(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_event_loop_t *loop = gb_event_loop_new(&err), *other = gb_event_loop_new(&err);
    assert_non_null(loop);
    assert_non_null(other);
    assert_int_equal(gb_front_door_attach(f->door, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_front_door_step(f->door, 0, &err), 0); /* on a loop of its own */
    double t0 = gb_time_now();
    assert_int_equal(gb_front_door_attach(f->door, loop, &err), 0);
    assert_int_equal(gb_front_door_attach(f->door, loop, &err), 0); /* there already */
    assert_int_equal(gb_front_door_attach(f->door, other, &err), GB_EINVAL);
    assert_int_equal(gb_event_loop_count(other), 0);
    assert_int_equal(gb_event_loop_count(loop), 3); /* the link, the CRL check, the service */
    assert_true(gb_event_loop_run_once(loop, 0, &err) >= 0); /* the timers due at once */
    long t = gb_test_loop_wait_ms(loop);
    long least = 1000 - (long)((gb_time_now() - t0) * 1000) - 2;
    if (!(t <= 1000 && t >= least))
        fail_msg("an idle door waits %ld ms (the CRL check is due in %ld..1000)", t, least);
    /* a client is served through the loop the steps turn */
    s_connect(f, false);
    s_pump(f, NULL);
    s_join(f, 1);
    assert_int_equal(gb_front_door_joined(f->door), 1);
    assert_int_equal(gb_front_door_failure(f->door, &err), 0);
    gb_front_door_detach(f->door);
    gb_front_door_detach(f->door); /* nothing if not attached */
    assert_int_equal(gb_event_loop_count(loop), 0);
    /* detached: a step makes it a loop of its own again */
    assert_int_equal(gb_front_door_step(f->door, 0, &err), 0);
    assert_int_equal(gb_event_loop_count(loop), 0);
    assert_int_equal(gb_front_door_attach(f->door, loop, &err), 0);
    gb_front_door_destroy(&f->door); /* detaches */
    assert_int_equal(gb_event_loop_count(loop), 0);
    gb_event_loop_destroy(&loop);
    gb_event_loop_destroy(&other);
}

static int s_joined_heard;

static bool s_count_joined(void *arg, const char *id, const Glassbox__Join *j,
                           gb_front_door_refusal_t *refusal)
{
    (void)arg, (void)id, (void)j, (void)refusal;
    s_joined_heard++;
    return true;
}

/* A subscriber: Join with role=subscriber gets a Welcome and the latest
 * publication, is no participant (neither joined nor heard by the round
 * loop), may send heartbeats, and gets each later publication; publishing
 * with nobody subscribed keeps it for later. */
static void test_publish_to_subscribers(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    char key[700], crt[700];
    snprintf(key, sizeof key, "%s/%s", f->ca, GB_CA_COORD_KEY_FILE);
    snprintf(crt, sizeof crt, "%s/%s", f->ca, GB_CA_COORD_CERT_FILE);
    gb_signer_t *signer = gb_signer_load(key, crt, &err);
    assert_non_null(signer);
    uint8_t *sp1 = NULL, *sp2 = NULL;
    size_t l1 = 0, l2 = 0;
    assert_int_equal(gb_publication_sign(signer, (const uint8_t *)"round one", 9, &sp1, &l1,
                                         &err), 0);
    assert_int_equal(gb_publication_sign(signer, (const uint8_t *)"round two!", 10, &sp2, &l2,
                                         &err), 0);
    assert_int_equal(gb_front_door_publish(f->door, sp1, 0, &err), GB_EINVAL);
    assert_int_equal(gb_front_door_publish(f->door, sp1, l1, &err), 0); /* kept, nobody told */
    gb_front_door_handlers_t h = {.joined = s_count_joined};
    gb_front_door_set_handlers(f->door, &h);
    s_joined_heard = 0;

    s_connect(f, false);
    s_pump(f, NULL);
    Glassbox__KeyValue kv = GLASSBOX__KEY_VALUE__INIT;
    kv.key = GB_FRONT_DOOR_ROLE_KEY;
    kv.value = GB_FRONT_DOOR_ROLE_SUBSCRIBER;
    Glassbox__KeyValue *caps[1] = {&kv};
    Glassbox__Join join = GLASSBOX__JOIN__INIT;
    join.min_protocol_version = join.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    join.client_name = "dashboard";
    join.n_capabilities = 1;
    join.capabilities = caps;
    Glassbox__Envelope jenv = GLASSBOX__ENVELOPE__INIT;
    jenv.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    jenv.sequence = 1;
    jenv.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
    jenv.join = &join;
    Glassbox__Envelope *reply = s_exchange(f, &jenv);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_WELCOME);
    gb_envelope_free(&reply);
    s_pump(f, &reply); /* the latest publication follows at once */
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_PUBLICATION);
    assert_int_equal(reply->publication->publication.len, 9);
    assert_memory_equal(reply->publication->publication.data, "round one", 9);
    gb_envelope_free(&reply);
    assert_int_equal(gb_front_door_joined(f->door), 0);
    assert_int_equal(s_joined_heard, 0);

    /* heartbeats keep it alive */
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    Glassbox__Heartbeat hb = GLASSBOX__HEARTBEAT__INIT;
    hb.sent_unix_ms = 1;
    hb.state = GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = 2;
    env.body_case = GLASSBOX__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    reply = s_exchange(f, &env);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_ACK);
    gb_envelope_free(&reply);

    /* a new round's publication: queued for the one subscriber, arrives whole */
    assert_int_equal(gb_front_door_publish(f->door, sp2, l2, &err), 1);
    s_pump(f, &reply);
    assert_int_equal(reply->body_case, GLASSBOX__ENVELOPE__BODY_PUBLICATION);
    assert_int_equal(reply->publication->publication.len, 10);
    assert_memory_equal(reply->publication->publication.data, "round two!", 10);
    assert_true(reply->publication->signer_certificate.len > 0);
    gb_envelope_free(&reply);
    gb_front_door_set_handlers(f->door, NULL);
    gb_free(sp1);
    gb_free(sp2);
    gb_signer_destroy(&signer);
}

/* ---- many sessions: the session index (session_index.h) -------------------- */

/* What the handlers heard of many clients. */
typedef struct {
    int joined, left;
} crowd_heard_t;

static bool s_crowd_joined(void *arg, const char *id, const Glassbox__Join *j,
                           gb_front_door_refusal_t *no)
{
    (void)id;
    (void)j;
    (void)no;
    ((crowd_heard_t *)arg)->joined++;
    return true;
}

static void s_crowd_left(void *arg, const char *id, const char *reason)
{
    (void)id;
    (void)reason;
    ((crowd_heard_t *)arg)->left++;
}

enum { CROWD = 80 }; /* past the table's first 64 slots: it and the index grow */

typedef struct {
    gb_tls_t *tls;
    gb_link_client_t *cli;
    gb_conversation_t *conv; /* the client's side, for chunked and whole frames */
    bool connected;
    int tasks;               /* Tasks received */
    uint64_t last_task_id;
    uint64_t next_seq;       /* of the client's own frames */
} crowd_client_t;

static crowd_client_t *s_crowd;   /* the clients of test_many_sessions, for teardown */
static gb_link_client_t *s_crowd_old; /* a replaced session's client */

static void s_crowd_cleanup(void)
{
    gb_link_client_destroy(&s_crowd_old);
    if (!s_crowd)
        return;
    for (int i = 0; i < CROWD; i++) {
        gb_link_client_destroy(&s_crowd[i].cli);
        gb_tls_destroy(&s_crowd[i].tls);
        gb_conversation_destroy(&s_crowd[i].conv);
    }
    free(s_crowd);
    s_crowd = NULL;
}

static void s_crowd_connect(fixture_t *f, crowd_client_t *c, const char *name)
{
    char ca_file[700], cert[700], key[700];
    snprintf(ca_file, sizeof ca_file, "%s/%s", f->ca, GB_CA_CERT_FILE);
    snprintf(cert, sizeof cert, "%s/%s.crt", f->clients, name);
    snprintf(key, sizeof key, "%s/%s.key", f->clients, name);
    gb_tls_options_t to = {.role = GB_TLS_CLIENT, .ca_file = ca_file, .cert_file = cert,
                           .key_file = key};
    gb_error_t err = {0};
    if (!c->tls)
        assert_non_null(c->tls = gb_tls_new(&to, &err));
    gb_link_options_t lo = {.retry_ms = 20, .retry_max_ms = 100};
    c->cli = gb_link_client_new(f->ctx, gb_front_door_endpoint(f->door), c->tls, "localhost",
                                &lo, &err);
    assert_non_null(c->cli);
    if (!c->conv)
        assert_non_null(c->conv = gb_conversation_new(NULL, &err));
    gb_conversation_reset(c->conv);
    c->connected = false;
    c->next_seq = 1;
}

/* Steps the door and every client once; Tasks are counted, Welcomes and
 * Acks taken in passing. */
static void s_crowd_pump(fixture_t *f, crowd_client_t *cs, size_t n)
{
    gb_error_t err = {0};
    assert_int_equal(gb_front_door_step(f->door, 1, &err), 0);
    for (size_t i = 0; i < n; i++) {
        if (!cs[i].cli)
            continue;
        gb_link_event_t ev;
        for (int k = 0; k < 8; k++) {
            assert_int_equal(gb_link_client_poll(cs[i].cli, 0, &ev, &err), 0);
            if (ev.kind == GB_LINK_EV_NONE)
                break;
            if (ev.kind == GB_LINK_EV_CONNECTED)
                cs[i].connected = true;
            if (ev.kind != GB_LINK_EV_MESSAGE)
                continue;
            Glassbox__Envelope *env = NULL;
            int rc = gb_conversation_receive(cs[i].conv, ev.data, ev.len, &env, &err);
            if (rc < 0)
                fail_msg("client %zu refused a frame: %s", i, err.msg);
            if (rc == 1 && env->body_case == GLASSBOX__ENVELOPE__BODY_TASK) {
                cs[i].tasks++;
                cs[i].last_task_id = env->task->task_id;
            }
            gb_envelope_free(&env);
        }
    }
}

static void s_crowd_join(crowd_client_t *c)
{
    Glassbox__Join join = GLASSBOX__JOIN__INIT;
    join.min_protocol_version = join.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    join.train_samples = 10;
    join.client_name = "crowd"; /* what it says; the certificate's name is what counts */
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = c->next_seq++;
    env.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
    env.join = &join;
    uint8_t *buf = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    assert_int_equal(gb_envelope_encode(&env, NULL, &buf, &len, &err), 0);
    assert_int_equal(gb_link_client_send(c->cli, buf, len, &err), 0);
    gb_free(buf);
}

/* Sends every named client a Task through gb_front_door_send_parts (its
 * model packed once) and waits until each has it; `skip` are not sent to. */
static void s_crowd_tasks(fixture_t *f, crowd_client_t *cs, const bool *skip, uint64_t base,
                          gb_task_pack_t *tp)
{
    gb_error_t err = {0};
    char name[32];
    int want[CROWD];
    for (size_t i = 0; i < CROWD; i++) {
        want[i] = cs[i].tasks + (skip[i] ? 0 : 1);
        if (skip[i])
            continue;
        snprintf(name, sizeof name, "crowd-%zu", i);
        Glassbox__Task own = GLASSBOX__TASK__INIT;
        own.round = 1;
        own.task_id = base + i;
        own.train = true;
        gb_conversation_part_t parts[GB_TASK_PACK_PARTS];
        assert_int_equal(gb_task_pack_parts(tp, &own, parts, &err), 0);
        uint64_t seq = 0;
        assert_int_equal(gb_front_door_send_parts(f->door, name, GLASSBOX__ENVELOPE__BODY_TASK,
                                                  parts, GB_TASK_PACK_PARTS, &seq, &err),
                         0);
        assert_true(seq > 1); /* after the Welcome */
    }
    double end = gb_time_now() + 20;
    for (bool done = false; !done;) {
        assert_true(gb_time_now() < end);
        s_crowd_pump(f, cs, CROWD);
        done = true;
        for (size_t i = 0; i < CROWD; i++)
            done = done && cs[i].tasks == want[i];
    }
    for (size_t i = 0; i < CROWD; i++)
        if (!skip[i])
            assert_true(cs[i].last_task_id == base + i); /* each got its own */
}

static void test_many_sessions(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    crowd_heard_t heard = {0};
    gb_front_door_handlers_t h = {.arg = &heard, .joined = s_crowd_joined, .left = s_crowd_left};
    gb_front_door_set_handlers(f->door, &h);
    gb_ca_t *ca = gb_ca_open(f->ca, &err);
    assert_non_null(ca);
    char name[32];
    for (int i = 0; i < CROWD; i++) {
        snprintf(name, sizeof name, "crowd-%d", i);
        assert_int_equal(gb_ca_issue(ca, name, 30, f->clients, &err), 0);
    }
    gb_ca_destroy(&ca);
    crowd_client_t *cs = s_crowd = calloc(CROWD, sizeof *cs);
    assert_non_null(cs);
    /* in waves: the link bounds the handshakes in progress from one address */
    double end = gb_time_now() + 60;
    for (int w = 0; w < CROWD; w += 4) {
        for (int i = w; i < w + 4; i++) {
            snprintf(name, sizeof name, "crowd-%d", i);
            s_crowd_connect(f, &cs[i], name);
        }
        for (bool all = false; !all;) {
            assert_true(gb_time_now() < end);
            s_crowd_pump(f, cs, CROWD);
            all = true;
            for (int i = w; i < w + 4; i++)
                all = all && cs[i].connected;
        }
    }
    for (int i = 0; i < CROWD; i++)
        s_crowd_join(&cs[i]);
    while (heard.joined < CROWD) {
        assert_true(gb_time_now() < end);
        s_crowd_pump(f, cs, CROWD);
    }
    assert_int_equal(gb_front_door_joined(f->door), CROWD);

    /* a Task to every one of them by name, the model packed once */
    gbfix_t t;
    gbfix_init(&t, GBFIX_TASK);
    size_t len;
    free(gbfix_pack(&t, &len));
    gb_task_pack_t *tp = gb_task_pack_new(&err);
    assert_non_null(tp);
    assert_int_equal(gb_task_pack_prepare(tp, &t.task, &err), 0);
    bool skip[CROWD] = {0};
    s_crowd_tasks(f, cs, skip, 1000, tp);

    /* removals move the last session of the table into the hole: close
     * every fifth by name, and let every seventh leave by itself */
    for (int i = 0; i < CROWD; i += 5) {
        snprintf(name, sizeof name, "crowd-%d", i);
        gb_front_door_close(f->door, name, "a test");
        skip[i] = true;
    }
    for (int i = 3; i < CROWD; i += 7) {
        if (skip[i])
            continue;
        gb_link_client_close(cs[i].cli, 200);
        skip[i] = true;
    }
    int gone = 0;
    for (int i = 0; i < CROWD; i++)
        gone += skip[i];
    while (heard.left < gone) {
        assert_true(gb_time_now() < end);
        s_crowd_pump(f, cs, CROWD);
    }
    assert_int_equal(gb_front_door_joined(f->door), CROWD - gone);
    for (int i = 0; i < CROWD; i++) {
        if (!skip[i])
            continue;
        snprintf(name, sizeof name, "crowd-%d", i);
        assert_int_equal(gb_front_door_send(f->door, name, &t.env, NULL, &err), GB_ECLOSED);
        gb_link_client_destroy(&cs[i].cli);
    }
    /* the rest are still found by name, each at its own session */
    s_crowd_tasks(f, cs, skip, 2000, tp);

    /* crowd-1 comes back on a new session: it replaces the old one (no
     * left), and the Task goes to the new session */
    gb_link_client_t *old = s_crowd_old = cs[1].cli;
    cs[1].cli = NULL;
    s_crowd_connect(f, &cs[1], "crowd-1");
    while (!cs[1].connected) {
        assert_true(gb_time_now() < end);
        s_crowd_pump(f, cs, CROWD);
    }
    int joined_before = heard.joined, left_before = heard.left;
    s_crowd_join(&cs[1]);
    while (heard.joined == joined_before) {
        assert_true(gb_time_now() < end);
        s_crowd_pump(f, cs, CROWD);
    }
    assert_int_equal(heard.left, left_before);
    assert_int_equal(gb_front_door_joined(f->door), CROWD - gone);
    s_crowd_old = NULL;
    gb_link_client_destroy(&old);
    cs[1].tasks = 0;
    s_crowd_tasks(f, cs, skip, 3000, tp);
    assert_int_equal(cs[1].tasks, 1);

    s_crowd_cleanup();
    gb_task_pack_destroy(&tp);
    gb_front_door_set_handlers(f->door, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_construction_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_join_and_heartbeat, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_anonymous_may_only_enroll, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_handlers_and_send, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_repeated_join_and_turn_away, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_close_by_name, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_attached_to_a_loop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_publish_to_subscribers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_many_sessions, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
