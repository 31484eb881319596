/* Tests for coordinator/front_door: a CA made by gb_ca_init, a client
 * certificate from gb_ca_issue, and the C link client in this thread.
 * Covered: construction failures (no CA directory, a directory without a
 * CA, an endpoint in use), Join -> Welcome with the certificate's name,
 * Heartbeat -> Ack, a message before Join and an Update (no round) refused
 * as unexpected, a malformed message answered and the session kept,
 * gb_front_door_joined as clients come and go, and an anonymous session
 * that sends something other than an enrollment request. The enrollment
 * path and CRL reloading run through the binaries in test_serve.py. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "front_door.h"
#include "net/envelope.h"
#include "net/link.h"
#include "net/pki.h"
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
    assert_int_equal(gb_ca_init(f->ca, "unit", "localhost", 30, &err), 0);
    gb_ca_t *ca = gb_ca_open(f->ca, &err);
    assert_int_equal(gb_ca_issue(ca, "edge-1", 30, f->clients, &err), 0);
    gb_ca_destroy(&ca);
    f->ctx = zmq_ctx_new();
    gb_front_door_options_t o = {.ca_dir = f->ca, .listen = "tcp://127.0.0.1:*",
                                 .federation = "unit"};
    f->door = gb_front_door_new(f->ctx, &o, &err);
    assert_non_null(f->door);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
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
    assert_int_equal(gb_envelope_encode(env, NULL, &buf, &len, &err), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_construction_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_join_and_heartbeat, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_anonymous_may_only_enroll, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
