/* The link's framing over ZeroMQ: headers, and whole multipart messages sent
 * and received without blocking. A message of the wrong shape is drained to
 * its last frame, so a hostile peer cannot desynchronise the socket. */
#include "net/link_frame.h"

#include <errno.h>
#include <string.h>

#include "net/link.h"

void gb_link_header_encode(int kind, uint64_t session_id, uint8_t out[9])
{
    out[0] = (uint8_t)kind;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(session_id >> (56 - 8 * i));
}

static int s_kind_known(int kind)
{
    return kind == GB_LINK_HELLO || kind == GB_LINK_DATA || kind == GB_LINK_RESET ||
           kind == GB_LINK_BUSY;
}

int gb_link_header_decode(const void *frame, size_t len, gb_link_header_t *out,
                          gb_error_t *err)
{
    const uint8_t *p = frame;
    if (len != GB_LINK_HEADER_BYTES)
        return gb_error_set(err, GB_EPROTO, "link header: %zu bytes, expected %d", len,
                            GB_LINK_HEADER_BYTES);
    if (!s_kind_known(p[0]))
        return gb_error_set(err, GB_EPROTO, "link header: unknown kind 0x%02x", p[0]);
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | p[1 + i];
    if (id == 0)
        return gb_error_set(err, GB_EPROTO, "link header: session id 0");
    out->kind = p[0];
    out->session_id = id;
    return 0;
}

static int s_more(void *socket)
{
    int more = 0;
    size_t sz = sizeof more;
    if (zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &sz) != 0)
        return 0;
    return more;
}

/* Reads and discards the rest of a multipart message. */
static void s_drain(void *socket)
{
    while (s_more(socket)) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc = zmq_msg_recv(&m, socket, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
        if (rc < 0)
            break;
    }
}

int gb_link_recv(void *socket, int with_routing_id, gb_link_received_t *out, gb_error_t *err)
{
    out->routing_id_len = 0;
    zmq_msg_init(&out->payload);
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    int rc = zmq_msg_recv(&frame, socket, ZMQ_DONTWAIT);
    if (rc < 0) {
        zmq_msg_close(&frame);
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        return gb_error_set(err, GB_EIO, "link: receive failed: %s", zmq_strerror(errno));
    }
    if (with_routing_id) {
        size_t n = zmq_msg_size(&frame);
        if (n > GB_LINK_MAX_ROUTING_ID)
            n = GB_LINK_MAX_ROUTING_ID;
        memcpy(out->routing_id, zmq_msg_data(&frame), n);
        out->routing_id_len = n;
        if (!s_more(socket)) {
            zmq_msg_close(&frame);
            return gb_error_set(err, GB_EPROTO, "link: empty message from peer");
        }
        zmq_msg_close(&frame);
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            return gb_error_set(err, GB_EIO, "link: receive failed: %s", zmq_strerror(errno));
        }
    }
    int bad = gb_link_header_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), &out->header,
                                    err);
    zmq_msg_close(&frame);
    if (bad) {
        s_drain(socket);
        return bad;
    }
    if (!s_more(socket))
        return gb_error_set(err, GB_EPROTO, "link: message without a payload frame");
    if (zmq_msg_recv(&out->payload, socket, ZMQ_DONTWAIT) < 0)
        return gb_error_set(err, GB_EIO, "link: receive failed: %s", zmq_strerror(errno));
    if (s_more(socket)) {
        s_drain(socket);
        zmq_msg_close(&out->payload);
        zmq_msg_init(&out->payload);
        return gb_error_set(err, GB_EPROTO, "link: message with more than two frames");
    }
    return 1;
}

void gb_link_received_close(gb_link_received_t *msg)
{
    zmq_msg_close(&msg->payload);
    zmq_msg_init(&msg->payload);
}

static int s_send_error(gb_error_t *err, int first)
{
    if (errno == EAGAIN)
        return first ? GB_EAGAIN
                     : gb_error_set(err, GB_EIO, "link: socket refused the rest of a message");
    if (errno == EHOSTUNREACH)
        return gb_error_set(err, GB_ECLOSED, "link: peer is gone");
    return gb_error_set(err, GB_EIO, "link: send failed: %s", zmq_strerror(errno));
}

int gb_link_send(void *socket, const uint8_t *routing_id, size_t routing_id_len, int kind,
                 uint64_t session_id, const void *payload, size_t len, gb_error_t *err)
{
    uint8_t header[GB_LINK_HEADER_BYTES];
    gb_link_header_encode(kind, session_id, header);
    int first = 1;
    /* ZeroMQ delivers multipart messages atomically: once the first frame is
     * accepted, the others are too, so EAGAIN can only come first. */
    if (routing_id) {
        if (zmq_send(socket, routing_id, routing_id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return s_send_error(err, first);
        first = 0;
    }
    if (zmq_send(socket, header, sizeof header, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return s_send_error(err, first);
    if (zmq_send(socket, payload, len, ZMQ_DONTWAIT) < 0)
        return s_send_error(err, 0);
    return 0;
}

void gb_link_options_fill(gb_link_options_t *o, const gb_link_options_t *in)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof *o);
    if (!o->max_message)
        o->max_message = GB_CHANNEL_DEFAULT_MAX_MESSAGE;
    if (!o->max_queued_bytes)
        o->max_queued_bytes = (size_t)8 << 20;
    if (o->max_sessions <= 0)
        o->max_sessions = 10000;
    if (o->max_handshakes <= 0)
        o->max_handshakes = 64;
    if (o->max_handshakes_per_source <= 0) {
        o->max_handshakes_per_source = o->max_handshakes / 8;
        if (o->max_handshakes_per_source < 4)
            o->max_handshakes_per_source = 4;
    }
    if (!o->max_preauth_bytes)
        o->max_preauth_bytes = (size_t)256 << 10;
    if (o->enroll_timeout_ms <= 0)
        o->enroll_timeout_ms = 30000;
    if (o->handshake_timeout_ms <= 0)
        o->handshake_timeout_ms = 10000;
    if (o->idle_timeout_ms <= 0)
        o->idle_timeout_ms = 120000;
    if (o->retry_ms <= 0)
        o->retry_ms = 200;
    if (o->retry_max_ms <= 0)
        o->retry_max_ms = 10000;
    if (o->retry_max_ms < o->retry_ms)
        o->retry_max_ms = o->retry_ms;
    if (o->socket_hwm <= 0)
        o->socket_hwm = 32;
}
