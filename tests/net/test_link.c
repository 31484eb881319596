/* Tests for net/link: a coordinator's ROUTER side and clients' DEALER sides
 * over TCP on loopback, with the test certificates of tests/net/
 * make_test_pki.sh. One thread drives every end by polling in turn.
 *
 * Covered: handshake and names, messages both ways in order (small, many,
 * the largest), back-pressure without loss, a session closed and
 * re-established, a restarted coordinator, anonymous (enrolling) clients,
 * a client of a foreign CA, garbage and malformed frames from raw peers
 * (cut off, nobody else disturbed), the bound on handshakes in progress,
 * handshake and idle timeouts, the errors of send, sessions ended by a
 * reloaded revocation list (gb_link_server_recheck), and the server as a
 * source of its owner's event loop (gb_link_server_attach). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "net/link.h"
#include "net/link_frame.h"
#include "util/time.h"

static char *s_pki(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "test-pki/%s", name);
    return gb_test_binary_path(rel);
}

static gb_tls_t *s_tls(gb_tls_role_t role, const char *cert, const char *ca, bool anonymous)
{
    char certfile[128], keyfile[128];
    snprintf(certfile, sizeof certfile, "%s.pem", cert ? cert : "");
    snprintf(keyfile, sizeof keyfile, "%s.key", cert ? cert : "");
    char *ca_path = s_pki(ca ? ca : "ca.pem");
    char *cert_path = cert ? s_pki(certfile) : NULL;
    char *key_path = cert ? s_pki(keyfile) : NULL;
    gb_tls_options_t o = {.role = role, .ca_file = ca_path, .cert_file = cert_path,
                          .key_file = key_path, .allow_anonymous_peers = anonymous};
    gb_error_t err = {0};
    gb_tls_t *tls = gb_tls_new(&o, &err);
    if (!tls)
        fprintf(stderr, "gb_tls_new: %s\n", err.msg);
    assert_non_null(tls);
    free(ca_path);
    free(cert_path);
    free(key_path);
    return tls;
}

#define SERVER_NAME "coordinator.test"

typedef struct {
    int connected, disconnected, messages; /* events seen */
    uint64_t session;                      /* last session handle / number */
    char peer[256];                        /* last peer name ("" for NULL) */
    char reason[256];                      /* last disconnect reason */
    size_t bytes;                          /* message bytes received */
    uint32_t next_seq;                     /* next expected sequence number */
    bool in_order;                         /* every message came in order */
    bool anonymous;                        /* last CONNECTED had no name */
} rec_t;

static void s_record(rec_t *r, const gb_link_event_t *ev)
{
    switch (ev->kind) {
    case GB_LINK_EV_CONNECTED:
        r->connected++;
        r->session = ev->session;
        r->anonymous = ev->peer_name == NULL;
        snprintf(r->peer, sizeof r->peer, "%s", ev->peer_name ? ev->peer_name : "");
        r->next_seq = 0;
        break;
    case GB_LINK_EV_DISCONNECTED:
        r->disconnected++;
        snprintf(r->reason, sizeof r->reason, "%s", ev->reason);
        break;
    case GB_LINK_EV_MESSAGE: {
        r->messages++;
        r->bytes += ev->len;
        uint32_t seq = 0;
        if (ev->len >= 4)
            memcpy(&seq, ev->data, 4);
        if (seq != r->next_seq)
            r->in_order = false;
        r->next_seq = seq + 1;
        /* every byte after the sequence number is (seq + i) & 0xff */
        for (size_t i = 4; i < ev->len; i++)
            if (ev->data[i] != (uint8_t)(seq + i))
                r->in_order = false;
        break;
    }
    default:
        break;
    }
}

typedef struct {
    gb_link_server_t *srv;
    gb_link_client_t *cli[4];
    int nclients;
    rec_t s, c[4];
} net_t;

static void s_step_clients(net_t *n)
{
    gb_link_event_t ev;
    gb_error_t err = {0};
    for (int i = 0; i < n->nclients; i++) {
        if (!n->cli[i])
            continue;
        do {
            assert_int_equal(gb_link_client_poll(n->cli[i], 0, &ev, &err), 0);
            s_record(&n->c[i], &ev);
        } while (ev.kind != GB_LINK_EV_NONE);
    }
}

static void s_step(net_t *n, int wait_ms)
{
    gb_link_event_t ev;
    gb_error_t err = {0};
    if (n->srv) {
        do {
            assert_int_equal(gb_link_server_poll(n->srv, wait_ms, &ev, &err), 0);
            s_record(&n->s, &ev);
        } while (ev.kind != GB_LINK_EV_NONE);
    }
    s_step_clients(n);
}

#define PUMP_UNTIL(n, cond, ms)                                                            \
    do {                                                                                   \
        double t0_ = gb_time_now();                                                        \
        while (!(cond) && gb_time_now() - t0_ < (ms) / 1000.0)                             \
            s_step((n), 1);                                                                \
    } while (0)

static uint8_t *s_message(uint32_t seq, size_t len)
{
    uint8_t *m = malloc(len);
    memcpy(m, &seq, 4);
    for (size_t i = 4; i < len; i++)
        m[i] = (uint8_t)(seq + i);
    return m;
}

/* Everything a test opens lives here, so that teardown can close what a
 * failed assertion left open (zmq_ctx_term waits for every socket). */
typedef struct {
    void *ctx;
    gb_tls_t *server_tls, *client_tls;
    net_t n;
    void *raw[4];
    int nraw;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->ctx = zmq_ctx_new();
    f->server_tls = s_tls(GB_TLS_SERVER, "coordinator", NULL, false);
    f->client_tls = s_tls(GB_TLS_CLIENT, "alice", NULL, false);
    *state = f;
    return 0;
}

static void s_stop(net_t *n);

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    s_stop(&f->n);
    for (int i = 0; i < f->nraw; i++)
        zmq_close(f->raw[i]);
    gb_tls_destroy(&f->server_tls);
    gb_tls_destroy(&f->client_tls);
    zmq_ctx_term(f->ctx);
    free(f);
    return 0;
}

static const gb_link_options_t s_fast = {.retry_ms = 20, .retry_max_ms = 100,
                                         .handshake_timeout_ms = 2000};

static void s_start(net_t *n, fixture_t *f, const gb_link_options_t *o)
{
    memset(n, 0, sizeof *n);
    gb_error_t err = {0};
    n->srv = gb_link_server_new(f->ctx, "tcp://127.0.0.1:*", f->server_tls, o, &err);
    assert_non_null(n->srv);
    n->s.in_order = true;
}

static gb_link_client_t *s_add_client(net_t *n, void *ctx, gb_tls_t *tls)
{
    gb_error_t err = {0};
    int i = n->nclients++;
    n->cli[i] = gb_link_client_new(ctx, gb_link_server_endpoint(n->srv), tls, SERVER_NAME,
                                   &s_fast, &err);
    assert_non_null(n->cli[i]);
    n->c[i].in_order = true;
    return n->cli[i];
}

static void s_stop(net_t *n)
{
    for (int i = 0; i < n->nclients; i++)
        gb_link_client_destroy(&n->cli[i]);
    gb_link_server_destroy(&n->srv);
}

static void test_connect_and_exchange(void **state)
{
    fixture_t *f = *state;
    net_t *n = &f->n;
    s_start(n, f, &s_fast);
    gb_link_client_t *cli = s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected && n->c[0].connected, 5000);
    assert_int_equal(n->s.connected, 1);
    assert_string_equal(n->s.peer, "alice");
    assert_string_equal(n->c[0].peer, SERVER_NAME);
    assert_true(gb_link_client_connected(cli));
    assert_int_equal(gb_link_server_sessions(n->srv), 1);
    assert_int_equal(gb_link_server_handshakes(n->srv), 0);

    gb_error_t err = {0};
    /* many small messages each way, then the largest one */
    for (uint32_t i = 0; i < 200; i++) {
        uint8_t *m = s_message(i, 4 + i % 50);
        assert_int_equal(gb_link_client_send(cli, m, 4 + i % 50, &err), 0);
        assert_int_equal(gb_link_server_send(n->srv, n->s.session, m, 4 + i % 50, &err), 0);
        free(m);
    }
    PUMP_UNTIL(n, n->s.messages == 200 && n->c[0].messages == 200, 5000);
    assert_int_equal(n->s.messages, 200);
    assert_int_equal(n->c[0].messages, 200);
    assert_true(n->s.in_order);
    assert_true(n->c[0].in_order);

    size_t big = GB_CHANNEL_DEFAULT_MAX_MESSAGE;
    uint8_t *m = s_message(200, big);
    assert_int_equal(gb_link_client_send(cli, m, big, &err), 0);
    PUMP_UNTIL(n, n->s.messages == 201, 5000);
    assert_int_equal(n->s.messages, 201);
    assert_true(n->s.in_order);
    /* over the limit: refused at the sender, nothing sent */
    uint8_t *huge = calloc(1, big + 1);
    assert_int_equal(gb_link_client_send(cli, huge, big + 1, &err), GB_ERANGE);
    assert_int_equal(gb_link_server_send(n->srv, n->s.session, huge, big + 1, &err), GB_ERANGE);
    free(huge);
    free(m);
    /* unknown session handles */
    assert_int_equal(gb_link_server_send(n->srv, 12345, "x", 1, &err), GB_ECLOSED);
    assert_int_equal(gb_link_server_send(n->srv, 0, "x", 1, &err), GB_ECLOSED);
    s_stop(n);
}

/* The handle's 32-bit generation wraps after 2^32 handshakes; it skips 0,
 * so the session in slot 0 never gets handle 0 (the free-slot mark, which
 * gb_link_server_send refuses). */
static void test_handle_generation_wraps(void **state)
{
    fixture_t *f = *state;
    net_t *n = &f->n;
    s_start(n, f, &s_fast);
    gb_link_server_test_set_generation(n->srv, UINT32_MAX - 1);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected == 1 && n->c[0].connected, 5000);
    uint64_t first = n->s.session;
    assert_int_equal(first >> 32, UINT32_MAX);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected == 2 && n->c[1].connected, 5000);
    uint64_t second = n->s.session;
    assert_true(second != 0 && second != first);
    assert_int_equal(second >> 32, 1); /* 0 skipped */
    /* both sessions work under their handles */
    gb_error_t err = {0};
    uint8_t *m = s_message(0, 16);
    assert_int_equal(gb_link_server_send(n->srv, first, m, 16, &err), 0);
    assert_int_equal(gb_link_server_send(n->srv, second, m, 16, &err), 0);
    free(m);
    PUMP_UNTIL(n, n->c[0].messages == 1 && n->c[1].messages == 1, 5000);
    assert_int_equal(n->c[0].messages, 1);
    assert_int_equal(n->c[1].messages, 1);
    s_stop(n);
}

static void test_send_before_connected(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    /* nobody listens here */
    gb_link_client_t *cli = gb_link_client_new(f->ctx, "tcp://127.0.0.1:1", f->client_tls,
                                               SERVER_NAME, &s_fast, &err);
    assert_non_null(cli);
    f->n.cli[f->n.nclients++] = cli; /* closed by teardown if an assertion fails */
    assert_false(gb_link_client_connected(cli));
    assert_int_equal(gb_link_client_send(cli, "x", 1, &err), GB_ECLOSED);
    assert_non_null(strstr(err.msg, "not connected"));
    gb_link_event_t ev;
    assert_int_equal(gb_link_client_poll(cli, 50, &ev, &err), 0);
    assert_int_equal(ev.kind, GB_LINK_EV_NONE);
    gb_link_client_destroy(&f->n.cli[0]);
    assert_null(gb_link_client_new(f->ctx, "tcp://127.0.0.1:1", f->client_tls, "", NULL,
                                   &err));
    assert_null(gb_link_client_new(f->ctx, "nonsense://x", f->client_tls, SERVER_NAME, NULL,
                                   &err));
    assert_non_null(strstr(err.msg, "nonsense://x"));
}

static void test_bind_failure(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_link_server_t *a = gb_link_server_new(f->ctx, "tcp://127.0.0.1:*", f->server_tls, NULL,
                                             &err);
    assert_non_null(a);
    f->n.srv = a; /* teardown destroys it if an assertion fails */
    gb_link_server_t *b = gb_link_server_new(f->ctx, gb_link_server_endpoint(a), f->server_tls,
                                             NULL, &err);
    assert_null(b);
    assert_non_null(strstr(err.msg, "cannot bind"));
    gb_link_server_destroy(&f->n.srv);
    gb_link_server_destroy(&f->n.srv); /* safe twice */
}

/* The coordinator sends far more than the client reads: send says EAGAIN
 * once the queue is full, and every message still arrives, in order. */
static void test_back_pressure(void **state)
{
    fixture_t *f = *state;
    gb_link_options_t o = s_fast;
    o.max_queued_bytes = 1 << 20;
    o.socket_hwm = 2;
    net_t *n = &f->n;
    s_start(n, f, &o);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected && n->c[0].connected, 5000);
    assert_int_equal(n->c[0].connected, 1);

    gb_error_t err = {0};
    size_t len = 256 << 10;
    uint32_t sent = 0;
    int again = 0;
    while (sent < 400) { /* 100 MB: far over any socket buffer */
        uint8_t *m = s_message(sent, len);
        int rc = gb_link_server_send(n->srv, n->s.session, m, len, &err);
        free(m);
        if (rc == GB_EAGAIN) {
            again++;
            s_step(n, 1);
            continue;
        }
        assert_int_equal(rc, 0);
        sent++;
    }
    assert_true(again > 0);
    PUMP_UNTIL(n, n->c[0].messages == 400, 20000);
    assert_int_equal(n->c[0].messages, 400);
    assert_true(n->c[0].in_order);
    s_stop(n);
}

/* The coordinator closes a session: the client sees it end, reconnects by
 * itself and the coordinator sees a new session. */
static void test_close_and_reconnect(void **state)
{
    fixture_t *f = *state;
    net_t *n = &f->n;
    s_start(n, f, &s_fast);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected && n->c[0].connected, 5000);
    uint64_t first = n->s.session;
    gb_link_server_close(n->srv, first);
    assert_int_equal(gb_link_server_sessions(n->srv), 0);
    PUMP_UNTIL(n, n->c[0].disconnected && n->s.connected == 2 && n->c[0].connected == 2, 5000);
    assert_int_equal(n->c[0].disconnected, 1);
    assert_int_equal(n->s.connected, 2);
    assert_int_equal(n->c[0].connected, 2);
    assert_true(n->s.session != first);
    assert_int_equal(n->s.disconnected, 0); /* close reports nothing */
    gb_error_t err = {0};
    assert_int_equal(gb_link_server_send(n->srv, first, "x", 1, &err), GB_ECLOSED);
    uint8_t *m = s_message(0, 10);
    assert_int_equal(gb_link_server_send(n->srv, n->s.session, m, 10, &err), 0);
    free(m);
    PUMP_UNTIL(n, n->c[0].messages == 1, 5000);
    assert_int_equal(n->c[0].messages, 1);
    s_stop(n);
}

/* The coordinator process goes away and comes back on the same endpoint: the
 * client's next frame meets a server that does not know its session, gets a
 * reset and handshakes again, without being restarted. */
static void test_coordinator_restart(void **state)
{
    fixture_t *f = *state;
    net_t *n = &f->n;
    s_start(n, f, &s_fast);
    gb_link_client_t *cli = s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected && n->c[0].connected, 5000);
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "%s", gb_link_server_endpoint(n->srv));
    gb_link_server_destroy(&n->srv);
    gb_error_t err = {0};
    /* ZeroMQ releases the port from its I/O thread a moment after close,
     * as a restarted process would find it: retry the bind for a while */
    double t_bind = gb_time_now();
    while (!(n->srv = gb_link_server_new(f->ctx, endpoint, f->server_tls, &s_fast, &err)) &&
           gb_time_now() - t_bind < 5)
        s_step(n, 10);
    assert_non_null(n->srv);
    memset(&n->s, 0, sizeof n->s);
    n->s.in_order = true;
    /* the client speaks first after the restart */
    uint8_t *m = s_message(0, 8);
    double t0 = gb_time_now();
    while (gb_link_client_send(cli, m, 8, &err) != 0 && gb_time_now() - t0 < 5)
        s_step(n, 1);
    PUMP_UNTIL(n, n->c[0].disconnected && n->s.connected, 10000);
    assert_int_equal(n->c[0].disconnected, 1);
    assert_int_equal(n->s.connected, 1);
    assert_string_equal(n->s.peer, "alice");
    PUMP_UNTIL(n, n->c[0].connected == 2, 5000);
    /* The first message went either on the lost connection (gone with it)
     * or, when the client heard of the loss first, on the new session;
     * what is sent now must arrive. */
    uint8_t *last = s_message(7, 8);
    assert_int_equal(gb_link_client_send(cli, last, 8, &err), 0);
    PUMP_UNTIL(n, n->s.next_seq == 8, 5000);
    assert_int_equal(n->s.next_seq, 8);
    assert_true(n->s.messages == 1 || n->s.messages == 2);
    free(last);
    free(m);
    s_stop(n);
}

static void test_anonymous_client(void **state)
{
    fixture_t *f = *state;
    gb_tls_t *open_tls = s_tls(GB_TLS_SERVER, "coordinator", NULL, true);
    gb_tls_t *anon = s_tls(GB_TLS_CLIENT, NULL, NULL, false);
    gb_error_t err = {0};
    net_t *n = &f->n;
    memset(n, 0, sizeof *n);
    n->srv = gb_link_server_new(f->ctx, "tcp://127.0.0.1:*", open_tls, &s_fast, &err);
    assert_non_null(n->srv);
    s_add_client(n, f->ctx, anon);
    PUMP_UNTIL(n, n->s.connected, 5000);
    assert_int_equal(n->s.connected, 1);
    assert_true(n->s.anonymous);
    s_stop(n);

    /* the usual server refuses the same client */
    s_start(n, f, &s_fast);
    s_add_client(n, f->ctx, anon);
    PUMP_UNTIL(n, n->s.connected, 700);
    assert_int_equal(n->s.connected, 0);
    assert_int_equal(n->c[0].connected, 0);
    s_stop(n);
    gb_tls_destroy(&anon);
    gb_tls_destroy(&open_tls);
}

static void test_foreign_client_refused(void **state)
{
    fixture_t *f = *state;
    gb_tls_t *foreign = s_tls(GB_TLS_CLIENT, "rogue", "other-ca.pem", false);
    net_t *n = &f->n;
    s_start(n, f, &s_fast);
    s_add_client(n, f->ctx, foreign);      /* trusts another CA and has its cert */
    s_add_client(n, f->ctx, f->client_tls); /* alice, at the same time */
    PUMP_UNTIL(n, n->c[1].connected, 5000);
    PUMP_UNTIL(n, false, 500);
    assert_int_equal(n->c[1].connected, 1);
    assert_int_equal(n->c[0].connected, 0);
    assert_int_equal(n->s.connected, 1);
    assert_string_equal(n->s.peer, "alice");
    s_stop(n);
    gb_tls_destroy(&foreign);
}

/* A raw ZeroMQ peer that speaks the link framing by hand. */
static void *s_raw(fixture_t *f, const char *endpoint)
{
    void *s = zmq_socket(f->ctx, ZMQ_DEALER);
    f->raw[f->nraw++] = s;
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(s, endpoint), 0);
    return s;
}

static int s_raw_recv(void *s, gb_link_received_t *m, int ms)
{
    zmq_pollitem_t item = {.socket = s, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, ms) <= 0)
        return 0;
    gb_error_t err = {0};
    return gb_link_recv(s, 0, m, &err);
}

static void test_garbage_peers_cut_off(void **state)
{
    fixture_t *f = *state;
    net_t *n = &f->n;
    s_start(n, f, &s_fast);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->c[0].connected, 5000);
    void *raw = s_raw(f, gb_link_server_endpoint(n->srv));
    gb_error_t err = {0};
    /* a hello of garbage: the session is cut off at once */
    assert_int_equal(gb_link_send(raw, NULL, 0, GB_LINK_HELLO, 77, "GET / HTTP/1.0\r\n\r\n", 18,
                                  &err), 0);
    /* frames of the wrong shape, and frames only a server may send */
    zmq_send(raw, "x", 1, 0);
    assert_int_equal(gb_link_send(raw, NULL, 0, GB_LINK_BUSY, 77, "", 0, &err), 0);
    /* data for a session nobody knows: a reset comes back */
    assert_int_equal(gb_link_send(raw, NULL, 0, GB_LINK_DATA, 78, "junk", 4, &err), 0);
    double t0 = gb_time_now();
    bool reset = false;
    while (!reset && gb_time_now() - t0 < 3) {
        s_step(n, 1);
        gb_link_received_t m;
        if (s_raw_recv(raw, &m, 1) == 1) {
            if (m.header.kind == GB_LINK_RESET && m.header.session_id == 78)
                reset = true;
            gb_link_received_close(&m);
        }
    }
    assert_true(reset);
    PUMP_UNTIL(n, false, 200);
    assert_int_equal(gb_link_server_sessions(n->srv), 1); /* only alice */
    assert_int_equal(gb_link_server_handshakes(n->srv), 0);
    /* alice never noticed */
    uint8_t *m = s_message(0, 100);
    assert_int_equal(gb_link_server_send(n->srv, n->s.session, m, 100, &err), 0);
    free(m);
    PUMP_UNTIL(n, n->c[0].messages == 1, 5000);
    assert_int_equal(n->c[0].messages, 1);
    assert_int_equal(n->c[0].disconnected, 0);
    s_stop(n);
}

/* A real ClientHello that is never followed up holds a handshake slot. */
static void s_raw_hello(void *raw, gb_tls_t *tls, uint64_t id)
{
    gb_error_t err = {0};
    gb_channel_t *ch = gb_channel_new(tls, SERVER_NAME, 0, &err);
    assert_non_null(ch);
    const uint8_t *bytes;
    size_t len = gb_channel_outbox(ch, &bytes);
    assert_true(len > 0);
    assert_int_equal(gb_link_send(raw, NULL, 0, GB_LINK_HELLO, id, bytes, len, &err), 0);
    gb_channel_destroy(&ch);
}

static void test_handshake_bound_and_timeout(void **state)
{
    fixture_t *f = *state;
    gb_link_options_t o = s_fast;
    o.max_handshakes = 1;
    o.handshake_timeout_ms = 300;
    o.retry_ms = 50;
    net_t *n = &f->n;
    s_start(n, f, &o);
    void *a = s_raw(f, gb_link_server_endpoint(n->srv));
    void *b = s_raw(f, gb_link_server_endpoint(n->srv));
    s_raw_hello(a, f->client_tls, 1);
    PUMP_UNTIL(n, gb_link_server_handshakes(n->srv) == 1, 2000);
    assert_int_equal(gb_link_server_handshakes(n->srv), 1);
    s_raw_hello(b, f->client_tls, 2);
    gb_link_received_t m;
    double t0 = gb_time_now();
    int busy = 0;
    while (!busy && gb_time_now() - t0 < 2) {
        s_step(n, 1);
        if (s_raw_recv(b, &m, 1) == 1) {
            if (m.header.kind == GB_LINK_BUSY) {
                busy = 1;
                assert_int_equal(zmq_msg_size(&m.payload), 4);
                const uint8_t *p = zmq_msg_data(&m.payload);
                assert_int_equal(p[2] << 8 | p[3], 50);
            }
            gb_link_received_close(&m);
        }
    }
    assert_true(busy);
    assert_int_equal(gb_link_server_sessions(n->srv), 1);
    /* the silent handshake times out and frees its slot */
    PUMP_UNTIL(n, gb_link_server_handshakes(n->srv) == 0, 2000);
    assert_int_equal(gb_link_server_sessions(n->srv), 0);
    /* now a real client gets in */
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected, 5000);
    assert_int_equal(n->s.connected, 1);
    s_stop(n);
}

/* A flood of half-open handshakes from one address holds at most its share
 * of the slots, and a handshake half-open for over a second gives way to a
 * newcomer: an honest client gets in while the flood goes on, and the flood
 * never holds more than its share. */
static void test_handshake_flood_gives_way(void **state)
{
    fixture_t *f = *state;
    gb_link_options_t o = s_fast;
    o.max_handshakes = 3;
    o.max_handshakes_per_source = 2;
    o.handshake_timeout_ms = 60000; /* the flood would hold its slots for a minute */
    net_t *n = &f->n;
    s_start(n, f, &o);
    void *raw[3];
    for (int i = 0; i < 3; i++)
        raw[i] = s_raw(f, gb_link_server_endpoint(n->srv));
    s_raw_hello(raw[0], f->client_tls, 1);
    s_raw_hello(raw[1], f->client_tls, 2);
    PUMP_UNTIL(n, gb_link_server_handshakes(n->srv) == 2, 2000);
    assert_int_equal(gb_link_server_handshakes(n->srv), 2);
    /* a third at once, from the same address: busy (the others are young) */
    s_raw_hello(raw[2], f->client_tls, 3);
    PUMP_UNTIL(n, false, 300);
    assert_int_equal(gb_link_server_handshakes(n->srv), 2);
    /* a second later the honest client evicts the oldest and gets in */
    PUMP_UNTIL(n, false, 1100);
    double t0 = gb_time_now();
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected, 5000);
    assert_int_equal(n->s.connected, 1);
    assert_true(gb_time_now() - t0 < 2.0);
    assert_true(gb_link_server_handshakes(n->srv) <= 2);
    s_stop(n);
}

/* Before a certificate shows, a peer may send max_preauth_bytes: an
 * anonymous session that sends a large message is cut off, and its life is
 * bounded by enroll_timeout_ms whatever it sends; a certified one is not. */
static void test_anonymous_budget(void **state)
{
    fixture_t *f = *state;
    gb_tls_t *open_tls = s_tls(GB_TLS_SERVER, "coordinator", NULL, true);
    gb_tls_t *anon = s_tls(GB_TLS_CLIENT, NULL, NULL, false);
    gb_link_options_t o = s_fast;
    o.max_preauth_bytes = 32 << 10;
    o.enroll_timeout_ms = 600;
    gb_error_t err = {0};
    net_t *n = &f->n;
    memset(n, 0, sizeof *n);
    n->srv = gb_link_server_new(f->ctx, "tcp://127.0.0.1:*", open_tls, &o, &err);
    assert_non_null(n->srv);
    s_add_client(n, f->ctx, anon);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected == 2 && n->c[0].connected && n->c[1].connected, 5000);
    assert_int_equal(n->s.connected, 2);
    uint8_t *m = s_message(0, 100 << 10);
    assert_int_equal(gb_link_client_send(n->cli[1], m, 100 << 10, &err), 0);
    assert_int_equal(gb_link_client_send(n->cli[0], m, 100 << 10, &err), 0);
    free(m);
    PUMP_UNTIL(n, n->s.disconnected && n->s.messages, 3000);
    assert_int_equal(n->s.disconnected, 1);
    assert_non_null(strstr(n->s.reason, "without a certificate"));
    assert_int_equal(n->s.messages, 1); /* the certified client's */
    s_stop(n);

    /* an anonymous session that says nothing ends on time */
    memset(n, 0, sizeof *n);
    n->srv = gb_link_server_new(f->ctx, "tcp://127.0.0.1:*", open_tls, &o, &err);
    s_add_client(n, f->ctx, anon);
    PUMP_UNTIL(n, n->s.connected, 5000);
    double t0 = gb_time_now();
    PUMP_UNTIL(n, n->s.disconnected, 3000);
    assert_int_equal(n->s.disconnected, 1);
    assert_non_null(strstr(n->s.reason, "anonymous for 600 ms"));
    assert_true(gb_time_now() - t0 < 1.5);
    s_stop(n);
    gb_tls_destroy(&anon);
    gb_tls_destroy(&open_tls);
}

/* A server whose sessions may stay silent idle_ms (the fast options else). */
static net_t *s_start_idle(fixture_t *f, int idle_ms)
{
    gb_link_options_t o = s_fast;
    o.idle_timeout_ms = idle_ms;
    s_start(&f->n, f, &o);
    return &f->n;
}

static void test_idle_timeout(void **state)
{
    fixture_t *f = *state;
    net_t *n = s_start_idle(f, 300);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected && n->c[0].connected, 5000);
    /* the client stops talking; only the server is polled */
    gb_link_client_t *quiet = n->cli[0];
    n->cli[0] = NULL;
    PUMP_UNTIL(n, n->s.disconnected, 3000);
    assert_int_equal(n->s.disconnected, 1);
    assert_non_null(strstr(n->s.reason, "silent"));
    assert_int_equal(gb_link_server_sessions(n->srv), 0);
    n->cli[0] = quiet;
    s_stop(n);
}

/* The owner of the server is away from poll for longer than the idle
 * timeout (a round being aggregated): the time away is not counted as the
 * client's silence, and a client that stays silent afterwards still ends. */
static void test_owner_away_is_not_silence(void **state)
{
    fixture_t *f = *state;
    net_t *n = s_start_idle(f, 300);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected && n->c[0].connected, 5000);
    gb_link_client_t *quiet = n->cli[0];
    n->cli[0] = NULL;
    usleep(1500 * 1000); /* away: nobody polls */
    s_step(n, 0);
    assert_int_equal(n->s.disconnected, 0);
    assert_int_equal(gb_link_server_sessions(n->srv), 1);
    PUMP_UNTIL(n, n->s.disconnected, 3000);
    assert_int_equal(n->s.disconnected, 1);
    n->cli[0] = quiet;
    s_stop(n);
}

/* Two clients with the same certificate are two sessions; closing the client
 * side sends close_notify and the coordinator reports the end. */
static void test_client_close(void **state)
{
    fixture_t *f = *state;
    net_t *n = &f->n;
    s_start(n, f, &s_fast);
    gb_link_client_t *cli = s_add_client(n, f->ctx, f->client_tls);
    s_add_client(n, f->ctx, f->client_tls);
    PUMP_UNTIL(n, n->s.connected == 2, 5000);
    assert_int_equal(gb_link_server_sessions(n->srv), 2);
    gb_link_client_close(cli, 1000);
    assert_int_equal(gb_link_client_queued(cli), 0);
    assert_false(gb_link_client_connected(cli));
    PUMP_UNTIL(n, n->s.disconnected == 1, 3000);
    assert_int_equal(n->s.disconnected, 1);
    assert_non_null(strstr(n->s.reason, "closed"));
    PUMP_UNTIL(n, false, 300);
    assert_int_equal(gb_link_server_sessions(n->srv), 1); /* it does not come back */
    s_stop(n);
}

/* The link as the source of a loop shared with a timer, while it lingers. */
typedef struct {
    gb_link_client_t *cli; /* the closing link */
    int fired;             /* the timer's calls */
    double fired_at;       /* when it fired (the loop's clock: gb_time_now) */
} linger_t;

static int s_linger_fill(void *arg, zmq_pollitem_t *items, int cap, double *deadline)
{
    linger_t *l = arg;
    *deadline = gb_link_client_next_deadline(l->cli);
    return gb_link_client_lingering(l->cli) ? gb_link_client_poll_items(l->cli, items, cap) : 0;
}

static void s_linger_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    linger_t *l = arg;
    if (!gb_link_client_linger(l->cli))
        gb_event_loop_remove(loop, id);
}

static void s_linger_timer(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    linger_t *l = arg;
    l->fired++;
    l->fired_at = gb_time_now();
}

/* gb_link_client_close_begin never waits: a goodbye that leaves at once
 * ends the session there; one that cannot leave (the coordinator is gone)
 * lingers as a source of the loop, and the loop's other timer fires on
 * time meanwhile, not after the 1 s linger. */
static void test_client_close_in_a_loop(void **state)
{
    fixture_t *f = *state;
    net_t *n = &f->n;
    s_start(n, f, &s_fast);
    gb_link_client_t *cli = s_add_client(n, f->ctx, f->client_tls);
    gb_link_client_t *other = s_add_client(n, f->ctx, f->client_tls);
    assert_false(gb_link_client_close_begin(cli, 1000)); /* no session yet: nothing to say */
    PUMP_UNTIL(n, n->s.connected == 2, 5000);
    assert_int_equal(n->s.connected, 2);
    /* room for the goodbye: closed at once */
    assert_false(gb_link_client_close_begin(other, 1000));
    assert_false(gb_link_client_lingering(other));
    assert_false(gb_link_client_connected(other));
    assert_false(gb_link_client_linger(other)); /* not lingering: nothing */
    PUMP_UNTIL(n, n->s.disconnected == 1, 3000);
    assert_int_equal(n->s.disconnected, 1);
    /* no room: the coordinator went away (cli is not polled, so it still
     * holds its session), and an immediate socket takes nothing */
    gb_link_server_destroy(&n->srv);
    usleep(200 * 1000);
    gb_error_t err = {0};
    gb_event_loop_t *loop = gb_event_loop_new(&err);
    assert_non_null(loop);
    linger_t l = {.cli = cli};
    double t0 = gb_time_now();
    assert_true(gb_link_client_close_begin(cli, 1000));
    assert_true(gb_link_client_close_begin(cli, 1000)); /* again: changes nothing */
    assert_true(gb_link_client_lingering(cli));
    assert_true(gb_link_client_next_deadline(cli) <= t0 + 1.0 + 0.1);
    assert_true(gb_event_loop_add_source(loop, GB_LINK_CLIENT_POLL_ITEMS, s_linger_fill,
                                         s_linger_ready, &l, &err));
    assert_true(gb_event_loop_add_timer(loop, t0 + 0.05, 0, s_linger_timer, &l, &err));
    while (gb_event_loop_count(loop) > 1 || !l.fired) /* the timer stays, disarmed */
        assert_true(gb_event_loop_run_once(loop, 3000, &err) >= 0);
    double t1 = gb_time_now();
    assert_int_equal(l.fired, 1);
    /* generous bounds: the timer came long before the linger's end, and the
     * linger ran its time (nothing could leave) */
    assert_true(l.fired_at - t0 < 0.5);
    assert_true(t1 - t0 > 0.5);
    assert_false(gb_link_client_lingering(cli));
    assert_false(gb_link_client_connected(cli));
    assert_int_equal(gb_link_client_queued(cli), 0);
    gb_event_loop_destroy(&loop);
    s_stop(n);
}

/* A CRL reloaded under running sessions: the revoked client's session ends
 * at the recheck, with a DISCONNECTED event saying why; the other client's
 * session goes on; the revoked client's new handshakes fail. */
typedef struct {
    gb_link_server_t *srv; /* drained on every call */
    int calls;             /* calls of the ready callback */
    rec_t rec;             /* what the drains found */
} drain_t;

static void s_drain(void *arg)
{
    drain_t *d = arg;
    d->calls++;
    gb_link_event_t ev;
    gb_error_t err = {0};
    do {
        assert_int_equal(gb_link_server_poll(d->srv, 0, &ev, &err), 0);
        s_record(&d->rec, &ev);
    } while (ev.kind != GB_LINK_EV_NONE);
}

/* The server as a source of its owner's loop: drained when the loop says,
 * no waiting poll of its own while attached, no deadline while it holds no
 * session, and with a session the scan due when that session's silence
 * would end, not a constant poll. */
static void test_attached_to_a_loop(void **state)
{
    fixture_t *f = *state;
    net_t *n = s_start_idle(f, 3000);
    gb_error_t err = {0};
    gb_event_loop_t *loop = gb_event_loop_new(&err);
    assert_non_null(loop);
    drain_t d = {.srv = n->srv};
    assert_int_equal(gb_link_server_attach(n->srv, NULL, s_drain, &d, &err), GB_EINVAL);
    assert_int_equal(gb_link_server_attach(n->srv, loop, NULL, &d, &err), GB_EINVAL);
    assert_int_equal(gb_link_server_attach(n->srv, loop, s_drain, &d, &err), 0);
    assert_int_equal(gb_link_server_attach(n->srv, loop, s_drain, &d, &err), GB_EINVAL);
    assert_int_equal(gb_event_loop_count(loop), 1);
    gb_link_event_t ev;
    assert_int_equal(gb_link_server_poll(n->srv, 10, &ev, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "attached"));

    /* idle without sessions: nothing timed, the loop would sleep for ever */
    assert_int_equal(gb_test_loop_wait_ms(loop), -1);
    assert_int_equal(d.calls, 0);

    /* a client: the loop wakes the owner, who drains the events */
    s_add_client(n, f->ctx, f->client_tls);
    double end = gb_time_now() + 5;
    while (!(d.rec.connected && n->c[0].connected) && gb_time_now() < end) {
        assert_true(gb_event_loop_run_once(loop, 1, &err) >= 0);
        s_step_clients(n);
    }
    assert_int_equal(d.rec.connected, 1);
    assert_string_equal(d.rec.peer, "alice");
    assert_true(d.calls >= 1);

    /* established and quiet: the next scan is due at the nearest expiry
     * the server knows of, the end of the handshake's time (2 s after the
     * hello; a scan then finds nothing and moves on to the end of the
     * allowed silence, 3 s), not a constant poll of 0.1 s */
    long t = gb_test_loop_wait_ms(loop);
    if (!(t > 1000 && t <= 2000))
        fail_msg("the loop waits %ld ms", t);
    /* that scan, for real: the session stays, the next is at its silence's end */
    assert_true(gb_event_loop_run_once(loop, (int)t + 5, &err) >= 0);
    assert_int_equal(d.rec.disconnected, 0);
    /* the silence is counted from the handshake's last frame, a few ms
     * after the hello the handshake's time runs from (more under ASan) */
    t = gb_test_loop_wait_ms(loop);
    if (!(t > 0 && t <= 1100))
        fail_msg("after the first scan the loop waits %ld ms", t);

    /* detached: the loop has nothing left, the server polls by itself again */
    gb_link_server_detach(n->srv);
    gb_link_server_detach(n->srv); /* nothing if not attached */
    assert_int_equal(gb_event_loop_count(loop), 0);
    assert_int_equal(gb_link_server_poll(n->srv, 1, &ev, &err), 0);
    /* attached again, destroy detaches */
    assert_int_equal(gb_link_server_attach(n->srv, loop, s_drain, &d, &err), 0);
    s_stop(n);
    assert_int_equal(gb_event_loop_count(loop), 0);
    gb_event_loop_destroy(&loop);
}

static void test_recheck_after_revocation(void **state)
{
    fixture_t *f = *state;
    char *ca = s_pki("ca.pem"), *cert = s_pki("coordinator.pem"), *key = s_pki("coordinator.key");
    char *crl = s_pki("crl-empty.pem"), *crl2 = s_pki("crl2.pem");
    gb_tls_options_t o = {.role = GB_TLS_SERVER, .ca_file = ca, .cert_file = cert,
                          .key_file = key, .crl_file = crl};
    gb_error_t err = {0};
    gb_tls_t *tls = gb_tls_new(&o, &err);
    assert_non_null(tls);
    gb_tls_t *bob = s_tls(GB_TLS_CLIENT, "bob", NULL, false);
    net_t *n = &f->n;
    memset(n, 0, sizeof *n);
    n->srv = gb_link_server_new(f->ctx, "tcp://127.0.0.1:*", tls, &s_fast, &err);
    assert_non_null(n->srv);
    s_add_client(n, f->ctx, f->client_tls); /* alice */
    s_add_client(n, f->ctx, bob);
    PUMP_UNTIL(n, n->s.connected == 2 && n->c[0].connected && n->c[1].connected, 5000);
    assert_int_equal(n->s.connected, 2);
    /* nothing revoked yet: a recheck ends nothing */
    assert_int_equal(gb_link_server_recheck(n->srv, &err), 0);
    assert_int_equal(gb_tls_reload_crl(tls, crl2, &err), 0); /* revokes bob (and mallory) */
    assert_int_equal(gb_link_server_recheck(n->srv, &err), 1);
    PUMP_UNTIL(n, n->s.disconnected == 1 && n->c[1].disconnected, 3000);
    assert_int_equal(n->s.disconnected, 1);
    assert_non_null(strstr(n->s.reason, "revoked"));
    assert_int_equal(gb_link_server_sessions(n->srv), 1);
    /* alice is still served */
    assert_true(gb_link_client_connected(n->cli[0]));
    uint8_t *m = s_message(0, 64);
    assert_int_equal(gb_link_client_send(n->cli[0], m, 64, &err), 0);
    free(m);
    PUMP_UNTIL(n, n->s.messages == 1, 3000);
    assert_int_equal(n->s.messages, 1);
    /* bob keeps trying and never gets in again */
    PUMP_UNTIL(n, false, 800);
    assert_int_equal(n->s.connected, 2);
    assert_int_equal(n->c[1].connected, 1);
    assert_int_equal(gb_link_server_recheck(n->srv, &err), 0);
    s_stop(n);
    gb_tls_destroy(&bob);
    gb_tls_destroy(&tls);
    free(ca);
    free(cert);
    free(key);
    free(crl);
    free(crl2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_and_exchange, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_handle_generation_wraps, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_send_before_connected, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bind_failure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_back_pressure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_close_and_reconnect, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_coordinator_restart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_anonymous_client, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_client_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_peers_cut_off, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_bound_and_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_flood_gives_way, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_anonymous_budget, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_owner_away_is_not_silence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_client_close, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_client_close_in_a_loop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_recheck_after_revocation, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_attached_to_a_loop, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
