/* Tests for net/link_frame: the link header, and whole multipart messages
 * sent and received over a real ROUTER/DEALER pair, including messages of
 * the wrong shape, which must be drained without desynchronising the socket. */
#include "testutil.h"

#include <string.h>

#include <zmq.h>

#include "net/link.h"
#include "net/link_frame.h"

static void test_header_round_trip(void **state)
{
    (void)state;
    uint8_t buf[GB_LINK_HEADER_BYTES];
    gb_link_header_encode(GB_LINK_DATA, 0x0102030405060708ull, buf);
    assert_int_equal(buf[0], 'D');
    assert_int_equal(buf[1], 1);
    assert_int_equal(buf[8], 8);
    gb_link_header_t h;
    gb_error_t err = {0};
    assert_int_equal(gb_link_header_decode(buf, sizeof buf, &h, &err), 0);
    assert_int_equal(h.kind, GB_LINK_DATA);
    assert_true(h.session_id == 0x0102030405060708ull);
}

static void test_header_refused(void **state)
{
    (void)state;
    uint8_t buf[GB_LINK_HEADER_BYTES + 1];
    gb_link_header_t h;
    gb_error_t err = {0};
    gb_link_header_encode(GB_LINK_HELLO, 7, buf);
    assert_int_equal(gb_link_header_decode(buf, 8, &h, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "8 bytes"));
    assert_int_equal(gb_link_header_decode(buf, 10, &h, &err), GB_EPROTO);
    buf[0] = 'X';
    assert_int_equal(gb_link_header_decode(buf, 9, &h, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "unknown kind 0x58"));
    gb_link_header_encode(GB_LINK_RESET, 0, buf);
    assert_int_equal(gb_link_header_decode(buf, 9, &h, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "session id 0"));
}

typedef struct {
    void *ctx, *router, *dealer;
} pair_t;

static void s_pair(pair_t *p)
{
    p->ctx = zmq_ctx_new();
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(p->ctx, ZMQ_DEALER);
    int one = 1, zero = 0;
    assert_int_equal(zmq_setsockopt(p->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one), 0);
    zmq_setsockopt(p->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_setsockopt(p->dealer, ZMQ_ROUTING_ID, "peer1", 5), 0);
    assert_int_equal(zmq_bind(p->router, "inproc://link-frame"), 0);
    assert_int_equal(zmq_connect(p->dealer, "inproc://link-frame"), 0);
}

static void s_pair_close(pair_t *p)
{
    zmq_close(p->router);
    zmq_close(p->dealer);
    zmq_ctx_term(p->ctx);
}

/* Receives on sock, waiting up to a second for something to arrive. */
static int s_recv(void *sock, int router, gb_link_received_t *m, gb_error_t *err)
{
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    zmq_poll(&item, 1, 1000);
    return gb_link_recv(sock, router, m, err);
}

static void test_send_and_receive(void **state)
{
    (void)state;
    pair_t p;
    s_pair(&p);
    gb_error_t err = {0};
    gb_link_received_t m;
    assert_int_equal(gb_link_recv(p.router, 1, &m, &err), 0); /* nothing yet */
    assert_int_equal(gb_link_send(p.dealer, NULL, 0, GB_LINK_HELLO, 42, "hi", 2, &err), 0);
    assert_int_equal(s_recv(p.router, 1, &m, &err), 1);
    assert_int_equal(m.routing_id_len, 5);
    assert_memory_equal(m.routing_id, "peer1", 5);
    assert_int_equal(m.header.kind, GB_LINK_HELLO);
    assert_true(m.header.session_id == 42);
    assert_int_equal(zmq_msg_size(&m.payload), 2);
    assert_memory_equal(zmq_msg_data(&m.payload), "hi", 2);
    gb_link_received_close(&m);

    assert_int_equal(gb_link_send(p.router, (const uint8_t *)"peer1", 5, GB_LINK_DATA, 42, "", 0,
                                  &err), 0);
    assert_int_equal(s_recv(p.dealer, 0, &m, &err), 1);
    assert_int_equal(m.routing_id_len, 0);
    assert_int_equal(m.header.kind, GB_LINK_DATA);
    assert_int_equal(zmq_msg_size(&m.payload), 0);
    gb_link_received_close(&m);
    s_pair_close(&p);
}

static void test_unknown_peer_is_closed(void **state)
{
    (void)state;
    pair_t p;
    s_pair(&p);
    gb_error_t err = {0};
    assert_int_equal(gb_link_send(p.router, (const uint8_t *)"nobody", 6, GB_LINK_DATA, 1, "x",
                                  1, &err), GB_ECLOSED);
    assert_non_null(strstr(err.msg, "gone"));
    s_pair_close(&p);
}

static void test_wrong_shapes_are_drained(void **state)
{
    (void)state;
    pair_t p;
    s_pair(&p);
    gb_error_t err = {0};
    gb_link_received_t m;
    uint8_t header[GB_LINK_HEADER_BYTES];
    gb_link_header_encode(GB_LINK_DATA, 5, header);

    /* header only */
    zmq_send(p.dealer, header, sizeof header, 0);
    assert_int_equal(s_recv(p.router, 1, &m, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "without a payload"));
    assert_memory_equal(m.routing_id, "peer1", 5);
    gb_link_received_close(&m);
    /* three frames */
    zmq_send(p.dealer, header, sizeof header, ZMQ_SNDMORE);
    zmq_send(p.dealer, "a", 1, ZMQ_SNDMORE);
    zmq_send(p.dealer, "b", 1, 0);
    assert_int_equal(s_recv(p.router, 1, &m, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "more than two"));
    gb_link_received_close(&m);
    /* a bad header followed by two more frames */
    zmq_send(p.dealer, "garbage", 7, ZMQ_SNDMORE);
    zmq_send(p.dealer, "a", 1, ZMQ_SNDMORE);
    zmq_send(p.dealer, "b", 1, 0);
    assert_int_equal(s_recv(p.router, 1, &m, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "7 bytes"));
    gb_link_received_close(&m);
    /* the socket is still in step: a good message comes through whole */
    assert_int_equal(gb_link_send(p.dealer, NULL, 0, GB_LINK_DATA, 9, "ok", 2, &err), 0);
    assert_int_equal(s_recv(p.router, 1, &m, &err), 1);
    assert_true(m.header.session_id == 9);
    assert_memory_equal(zmq_msg_data(&m.payload), "ok", 2);
    gb_link_received_close(&m);
    s_pair_close(&p);
}

static void test_options_fill(void **state)
{
    (void)state;
    gb_link_options_t o;
    gb_link_options_fill(&o, NULL);
    assert_int_equal(o.max_message, GB_CHANNEL_DEFAULT_MAX_MESSAGE);
    assert_int_equal(o.max_sessions, 10000);
    assert_int_equal(o.retry_max_ms, 10000);
    assert_int_equal(o.socket_hwm, 32);
    gb_link_options_t in = {.max_handshakes = 3, .retry_ms = 500, .retry_max_ms = 100};
    gb_link_options_fill(&o, &in);
    assert_int_equal(o.max_handshakes, 3);
    assert_int_equal(o.retry_max_ms, 500); /* never below the first delay */
    assert_int_equal(o.idle_timeout_ms, 120000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_header_refused),
        cmocka_unit_test(test_send_and_receive),
        cmocka_unit_test(test_unknown_peer_is_closed),
        cmocka_unit_test(test_wrong_shapes_are_drained),
        cmocka_unit_test(test_options_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
