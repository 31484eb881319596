/* The transport: secure channels (net/channel.h) carried over ZeroMQ, the
 * coordinator's ROUTER socket on one side and each client's DEALER socket on
 * the other.
 *
 * Every ZeroMQ message is two frames: a 9-byte header (one kind byte, then
 * the 8-byte big-endian session id the client chose for this handshake) and
 * a payload. Kinds:
 *   'H' hello  client -> server: start session <id>; payload = ClientHello
 *   'D' data   both ways: TLS records of session <id>
 *   'R' reset  server -> client: session <id> is unknown or over; start again
 *   'B' busy   server -> client: no handshake slot; payload = 4-byte
 *              big-endian milliseconds to wait before the next hello
 * The session id makes re-establishment explicit: a client whose TLS session
 * broke (its channel failed, the coordinator restarted, its TCP connection
 * came back under a new ZeroMQ routing id) starts a new handshake under a new
 * id, and the server replaces whatever it held for that peer. 'R' and 'B' are
 * not authenticated (nothing is before TLS); forging them can only delay a
 * client, as a forged TCP reset could.
 *
 * The server keeps one session per ZeroMQ peer. The number of handshakes in
 * progress, of sessions, of bytes queued per session and of bytes per frame
 * are bounded; a session that stays silent too long, or whose handshake does
 * not finish in time, is dropped.
 *
 * Before a peer has shown a certificate it gets little: at most
 * max_handshakes_per_source handshakes in progress from one address (its
 * further hellos are told busy), and when every handshake slot is taken a
 * new hello evicts the oldest handshake that has been half-open for a while
 * (an honest handshake takes milliseconds; a flood that holds slots open
 * loses them to newcomers, so it cannot keep honest clients out); at most
 * max_preauth_bytes from a session that is still in its handshake or is
 * anonymous (an enrolling client sends one small request), and an anonymous
 * session ends enroll_timeout_ms after it began, whatever it sends. Log
 * lines that peers cause (refusals, junk frames) are rate-limited per source
 * (util/log_limit.h); what was held back is counted in one line every few
 * seconds. Nothing is dropped silently: the ROUTER
 * socket runs with ZMQ_ROUTER_MANDATORY, a frame the socket cannot take now
 * stays queued in the session (back-pressure: gb_link_server_send returns
 * GB_EAGAIN once the queue is full), and a peer that is gone ends its session
 * with a DISCONNECTED event. A peer that sends garbage gets its session cut
 * off and logged; no other session notices.
 *
 * Both sides are single-threaded: call poll, handle the event it returns,
 * repeat; poll also flushes queued frames and runs the timers. A poll that
 * may wait waits on a private event loop (net/event_loop.h) of the link's
 * own. A process with one loop for everything attaches the server to it
 * instead (gb_link_server_attach) and drains it with polls that do not wait
 * when the loop says it has something to do; the client joins such a loop
 * through its poll items and deadline (gb_link_client_poll_items).
 *
 * Ownership: _new returns an object the caller owns and frees with _destroy
 * (safe on NULL, sets the pointer to NULL). The gb_tls_t and the ZeroMQ
 * context are borrowed and must outlive the link. Event fields that point
 * into the link (peer_name, data) are borrowed until the next poll, send or
 * close on the same link. */
#ifndef GB_NET_LINK_H
#define GB_NET_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "net/channel.h"
#include "net/event_loop.h"
#include "util/error.h"

#define GB_LINK_HEADER_BYTES 9

enum gb_link_kind {
    GB_LINK_HELLO = 'H',
    GB_LINK_DATA = 'D',
    GB_LINK_RESET = 'R',
    GB_LINK_BUSY = 'B',
};

typedef enum {
    GB_LINK_EV_NONE = 0,     /* poll timed out */
    GB_LINK_EV_CONNECTED,    /* handshake done, peer verified */
    GB_LINK_EV_MESSAGE,      /* one message from the peer */
    GB_LINK_EV_DISCONNECTED, /* the session ended; reason says why */
} gb_link_event_kind_t;

typedef struct {
    gb_link_event_kind_t kind; /* what happened */
    uint64_t session;          /* server: the session's handle (never 0, never
                                  reused within a run); client: 1, 2, ... per
                                  handshake */
    const char *peer_name;     /* CN of the peer's certificate; NULL for an
                                  anonymous (enrolling) client */
    const uint8_t *data;       /* MESSAGE: the message bytes */
    size_t len;                /* MESSAGE: their count */
    char reason[256];          /* DISCONNECTED: why, for the log */
} gb_link_event_t;

typedef struct {
    size_t max_message;       /* largest message (0: GB_CHANNEL_DEFAULT_MAX_MESSAGE) */
    size_t max_queued_bytes;  /* per session, before send says GB_EAGAIN (0: 8 MiB) */
    int max_sessions;         /* server: sessions at once (0: 10000) */
    int max_handshakes;       /* server: handshakes in progress at once (0: 64) */
    int max_handshakes_per_source; /* server: of them, from one address (0: an eighth of
                                 max_handshakes, at least 4) */
    size_t max_preauth_bytes; /* server: bytes a session may send before it is
                                 authenticated by a certificate, and in all if it never is
                                 (anonymous) (0: 256 KiB) */
    int enroll_timeout_ms;    /* server: an anonymous session's whole life (0: 30 s) */
    int handshake_timeout_ms; /* a handshake must finish in this time (0: 10 s) */
    int idle_timeout_ms;      /* server: drop a session silent this long (0: 120 s) */
    int retry_ms;             /* server: wait in busy replies; client: first
                                 delay before a new handshake (0: 200 ms) */
    int retry_max_ms;         /* client: backoff ceiling (0: 10 s) */
    int socket_hwm;           /* frames ZeroMQ holds per peer and direction
                                 beyond the session's own queue (0: 32) */
} gb_link_options_t;

typedef struct gb_link_server gb_link_server_t;
typedef struct gb_link_client gb_link_client_t;

/* Binds a ROUTER socket on endpoint ("tcp://0.0.0.0:7700") in zmq_ctx.
 * tls must be a server configuration. opts may be NULL for the defaults.
 * Returns NULL and fills err on failure (endpoint in use, bad options). */
gb_link_server_t *gb_link_server_new(void *zmq_ctx, const char *endpoint, gb_tls_t *tls,
                                     const gb_link_options_t *opts, gb_error_t *err);
void gb_link_server_destroy(gb_link_server_t **srv);

/* The endpoint actually bound (resolves "tcp://127.0.0.1:*" to the port the
 * system chose). Borrowed for the server's life. */
const char *gb_link_server_endpoint(const gb_link_server_t *srv);

/* Waits up to timeout_ms (0: do not wait, -1: forever) for the next event and
 * fills ev. Returns 0 (ev->kind may be GB_LINK_EV_NONE on timeout) or a
 * negative gb_err for a failure of the socket itself; a misbehaving peer is
 * never an error here, only a DISCONNECTED event and a log line. While the
 * server is attached to a loop only timeout_ms 0 is allowed (GB_EINVAL
 * otherwise: the wait is the loop's). */
int gb_link_server_poll(gb_link_server_t *srv, int timeout_ms, gb_link_event_t *ev,
                        gb_error_t *err) GB_MUST_CHECK;

/* The server has something to do: its owner drains it, calling
 * gb_link_server_poll(srv, 0, ...) until it returns GB_LINK_EV_NONE. */
typedef void (*gb_link_server_ready_fn)(void *arg);

/* Registers the server as a source of loop: the loop polls its ROUTER socket
 * (and its descriptor guard's) with everything else, and calls on_ready(arg)
 * when one is readable or one of the server's own deadlines has come (the
 * timeout scan while it holds sessions, the retry of frames the socket had
 * no room for, the descriptor count while descriptors run low); an idle
 * server with no sessions has no deadline. Between two such calls nothing
 * happens on the link. The loop is borrowed and must outlive the
 * attachment; destroy detaches. Returns 0, GB_EINVAL when already attached
 * or on_ready is NULL, or GB_ENOMEM (err filled). */
int gb_link_server_attach(gb_link_server_t *srv, gb_event_loop_t *loop,
                          gb_link_server_ready_fn on_ready, void *arg,
                          gb_error_t *err) GB_MUST_CHECK;

/* Leaves the loop it was attached to; nothing if not attached. */
void gb_link_server_detach(gb_link_server_t *srv);

/* Encrypts one message for a session and queues it; poll and later sends
 * move it to the socket. Returns 0, GB_ECLOSED for a session that is gone or
 * not yet connected, GB_EAGAIN when the session's queue is full (poll, then
 * retry), GB_ERANGE for a message over max_message. */
int gb_link_server_send(gb_link_server_t *srv, uint64_t session, const void *msg, size_t len,
                        gb_error_t *err) GB_MUST_CHECK;

/* Sends close_notify and forgets the session; no event follows. */
void gb_link_server_close(gb_link_server_t *srv, uint64_t session);

/* Checks every established session's peer certificate again against the
 * TLS configuration's current trust store (call it after
 * gb_tls_reload_crl): a session whose peer is now revoked (or expired) gets
 * a close_notify and ends with a DISCONNECTED event whose reason says why,
 * and a handshake that finishes later is checked the same way before it is
 * reported. Returns the number of sessions ended, or a negative gb_err
 * (GB_ENOMEM) with the sessions not yet checked left as they were. */
int gb_link_server_recheck(gb_link_server_t *srv, gb_error_t *err) GB_MUST_CHECK;

/* For tests: sets the generation the next handle is made from (the high 32
 * bits of a handle; the low 32 are its slot), so a test can reach the wrap
 * of the counter without 2^32 handshakes. A wrapped generation skips 0, so
 * no handle is ever 0 (the free-slot mark). */
void gb_link_server_test_set_generation(gb_link_server_t *srv, uint32_t generation);

/* Sessions held now, and of those how many are still in their handshake. */
int gb_link_server_sessions(const gb_link_server_t *srv);
int gb_link_server_handshakes(const gb_link_server_t *srv);

/* Connects a DEALER socket to endpoint; the first handshake starts at once.
 * tls must be a client configuration; server_name is the name the
 * coordinator's certificate must carry. Returns NULL and fills err on
 * failure. */
gb_link_client_t *gb_link_client_new(void *zmq_ctx, const char *endpoint, gb_tls_t *tls,
                                     const char *server_name, const gb_link_options_t *opts,
                                     gb_error_t *err);
void gb_link_client_destroy(gb_link_client_t **cli);

/* As gb_link_server_poll. The client reconnects by itself: after a
 * DISCONNECTED event it waits (exponential backoff with jitter, reset by a
 * successful handshake) and starts a new handshake; CONNECTED follows when it
 * succeeds. */
int gb_link_client_poll(gb_link_client_t *cli, int timeout_ms, gb_link_event_t *ev,
                        gb_error_t *err) GB_MUST_CHECK;

/* Sockets a client link waits on, most: for a caller that waits on many
 * links in one zmq_poll (gb_link_client_poll_items). */
#define GB_LINK_CLIENT_POLL_ITEMS 2

/* For a caller that waits on many links at once (`--virtual N`) instead of
 * calling gb_link_client_poll with a timeout on each: fills up to cap items
 * (cap >= GB_LINK_CLIENT_POLL_ITEMS) with the link's sockets and the events
 * to wait for, and returns how many it filled. The events change with the
 * state (POLLOUT is asked for while frames wait for room), so fill them
 * afresh before every zmq_poll. When any item is ready, or
 * gb_link_client_next_deadline has come, call gb_link_client_poll(cli, 0,
 * ...) until it returns GB_LINK_EV_NONE; between such calls nothing happens
 * on the link without one of the two. The sockets are the link's (borrowed:
 * do not read, write or close them). */
int gb_link_client_poll_items(const gb_link_client_t *cli, zmq_pollitem_t *items, int cap);

/* When the link must be polled even if none of its sockets is ready, on
 * gb_time_now's clock: an event or message already taken in (now), the next
 * handshake of a reconnection, the current handshake's timeout, a retry of
 * frames the socket had no room for. HUGE_VAL when nothing is timed
 * (established and idle, or closed). */
double gb_link_client_next_deadline(const gb_link_client_t *cli);

/* As gb_link_server_send, for the client's one session. */
int gb_link_client_send(gb_link_client_t *cli, const void *msg, size_t len,
                        gb_error_t *err) GB_MUST_CHECK;

/* True while a session is established. */
bool gb_link_client_connected(const gb_link_client_t *cli);

/* Bytes queued and not yet taken by the socket (0 when all sent). */
size_t gb_link_client_queued(const gb_link_client_t *cli);

/* Sends close_notify, then waits up to linger_ms for the socket to take it.
 * For a one-shot command's link, which serves nothing else: inside a loop
 * use gb_link_client_close_begin, which never waits. */
void gb_link_client_close(gb_link_client_t *cli, int linger_ms);

/* Closes as gb_link_client_close, but without waiting: sends what the
 * socket takes of the close_notify now. Returns true while the rest still
 * waits for room ("lingering"): then the link's poll items ask for POLLOUT
 * and its next deadline is the linger's end, and whoever polls them calls
 * gb_link_client_linger when they are ready. False once closed (or when
 * there was no session). Calling it again while lingering changes nothing. */
bool gb_link_client_close_begin(gb_link_client_t *cli, int linger_ms);

/* Moves a lingering close_notify on; ends the session once it is flushed or
 * the linger is over (what did not leave by then is dropped). Returns true
 * while still lingering; false at once when not lingering. */
bool gb_link_client_linger(gb_link_client_t *cli);

/* Between gb_link_client_close_begin and the end of its linger. */
bool gb_link_client_lingering(const gb_link_client_t *cli);

#endif
