/* The link's framing over ZeroMQ (net/link.h): the 9-byte header of every
 * message, and sending and receiving one whole multipart message without
 * blocking and without trusting the peer's frame count or sizes. */
#ifndef GB_NET_LINK_FRAME_H
#define GB_NET_LINK_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "net/link.h"
#include "util/error.h"

/* Longest ZeroMQ routing id (ZeroMQ's own limit). */
#define GB_LINK_MAX_ROUTING_ID 255

typedef struct {
    int kind;            /* GB_LINK_HELLO, ... (the header's first byte) */
    uint64_t session_id; /* the header's session id */
} gb_link_header_t;

/* Writes the 9-byte header for kind and session_id into out. */
void gb_link_header_encode(int kind, uint64_t session_id, uint8_t out[9]);

/* Parses a header frame: exactly 9 bytes and a known kind. Returns 0 or
 * GB_EPROTO with err naming what was wrong. */
int gb_link_header_decode(const void *frame, size_t len, gb_link_header_t *out,
                          gb_error_t *err) GB_MUST_CHECK;

/* One received message: [routing id] header payload. The payload stays in a
 * zmq_msg_t (no copy); gb_link_received_close frees it. */
typedef struct {
    uint8_t routing_id[GB_LINK_MAX_ROUTING_ID]; /* ROUTER only: the peer */
    size_t routing_id_len;                      /* 0 on a DEALER */
    gb_link_header_t header;                    /* parsed header */
    zmq_msg_t payload;                          /* the payload frame */
} gb_link_received_t;

/* Receives one message without waiting. with_routing_id: the socket is a
 * ROUTER (a routing id frame comes first). Returns 1 with *out filled (close
 * it with gb_link_received_close), 0 when nothing is waiting, GB_EPROTO for
 * a message of the wrong shape (wrong frame count, bad header; the message
 * is drained and dropped, and out->routing_id names its sender so the caller
 * may answer), or GB_EIO when the socket fails. */
int gb_link_recv(void *socket, int with_routing_id, gb_link_received_t *out, gb_error_t *err);
void gb_link_received_close(gb_link_received_t *msg);

/* Sends [routing id] header payload without waiting. routing_id NULL on a
 * DEALER. Returns 0, GB_EAGAIN when the socket cannot take it now (nothing
 * was sent), GB_ECLOSED when the peer is gone (ROUTER_MANDATORY's
 * EHOSTUNREACH) or GB_EIO. */
int gb_link_send(void *socket, const uint8_t *routing_id, size_t routing_id_len, int kind,
                 uint64_t session_id, const void *payload, size_t len,
                 gb_error_t *err) GB_MUST_CHECK;

/* Copies in (NULL: all defaults) to *o with every zero field given its
 * default (net/link.h names them), for both ends of the link. */
void gb_link_options_fill(gb_link_options_t *o, const gb_link_options_t *in);

#endif
