/* The coordinator's front door: the link server on its ROUTER socket and
 * what it says to every session before any round is involved.
 *
 *   - A session without a certificate (an enrolling client) may send one
 *     EnrollRequest; the enrollment service answers it (enroll_service.h)
 *     and the session is closed after the answer. Anything else from it is
 *     refused with ERROR_UNAUTHENTICATED.
 *   - A client with a certificate sends Join first; it gets a Welcome with
 *     its client id (the certificate's CN: the only identity there is), the
 *     federation's name and the heartbeat rules. Heartbeats are acknowledged.
 *     A message before Join, or one this coordinator does not expect now, is
 *     refused with ERROR_UNEXPECTED.
 *   - A message that does not decode gets an Error with the decoder's reason
 *     code and a log line, and changes nothing; the session stays up.
 *   - The CA's revocation list is reloaded when crl.pem changes (after
 *     `ca revoke`), so a revoked client's next handshake fails without a
 *     restart, and every open session is checked against it: a revoked
 *     client's session is closed at once and `left` is heard for it.
 *   - A certified client whose Join carries role=subscriber is a subscriber:
 *     it gets publications (gb_front_door_publish) and nothing else, and the
 *     round loop never hears of it.
 *   - Every session speaks through a conversation (net/conversation.h):
 *     Envelopes bigger than a frame (a Task with a large model, an Update's
 *     delta) travel as chunked transfers both ways, and what the link has no
 *     room for waits in the session's queue instead of being dropped.
 * The round loop (federation.h) builds on this through handlers: it hears
 * who joined and left and gets every other Envelope a joined client sends
 * (Update, EvalResult), and sends Tasks, Acks and Errors with
 * gb_front_door_send. Without handlers Update and EvalResult are refused as
 * unexpected. A client's identity is its certificate's CN; if a client with
 * the same name joins on a new session (it reconnected before the old
 * session timed out), the old session is closed without a `left`.
 *
 * The door runs on an event loop (net/event_loop.h): attached to the
 * process's one loop (gb_front_door_attach: its link server a source there,
 * the CRL check a periodic timer, a timer for closing marked sessions and
 * offering waiting frames again), or, for a caller without one, to a loop
 * of its own that gb_front_door_step turns.
 *
 * Ownership: gb_front_door_new returns an object the caller owns
 * (gb_front_door_destroy); the ZeroMQ context is borrowed, and so is an
 * attached loop. Single-threaded: one thread runs the loop (or calls
 * gb_front_door_step), and handlers run inside it (they may call
 * gb_front_door_send). */
#ifndef GB_COORDINATOR_FRONT_DOOR_H
#define GB_COORDINATOR_FRONT_DOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "net/conversation.h"
#include "net/event_loop.h"
#include "util/error.h"

typedef struct {
    const char *ca_dir;         /* the CA directory of `ca init` (required) */
    const char *listen;         /* endpoint for clients (default tcp://0.0.0.0:7700) */
    const char *federation;     /* name sent in Welcome (default "glassbox") */
    int cert_days;              /* validity of enrolled certificates (default 365) */
    int heartbeat_interval_ms;  /* told to clients (default 5000) */
    int heartbeat_timeout_ms;   /* silence that ends a session (default 30000) */
} gb_front_door_options_t;

typedef struct gb_front_door gb_front_door_t;

/* Opens the CA, its token store and its TLS configuration (the
 * coordinator's certificate, the CRL, anonymous peers allowed for
 * enrollment) and binds the link server. NULL and err on failure. */
gb_front_door_t *gb_front_door_new(void *zmq_ctx, const gb_front_door_options_t *opts,
                                   gb_error_t *err);
void gb_front_door_destroy(gb_front_door_t **door);

/* The endpoint actually bound. Borrowed. */
const char *gb_front_door_endpoint(const gb_front_door_t *door);

/* Attaches the door to loop: its link server becomes a source there, the
 * CRL check (every second, the first at once) and the door's service (what
 * gb_front_door_close marked, frames waiting for room) timers. An idle door
 * without sessions has no deadline but the CRL check. The loop is borrowed
 * and must outlive the attachment; destroy detaches. A door that a step
 * attached to its own loop moves to the given one. Returns 0 (also when
 * attached to loop already), GB_EINVAL when attached to another loop, or
 * GB_ENOMEM (err filled). */
int gb_front_door_attach(gb_front_door_t *door, gb_event_loop_t *loop,
                         gb_error_t *err) GB_MUST_CHECK;

/* Leaves the loop it is attached to; nothing if not attached. */
void gb_front_door_detach(gb_front_door_t *door);

/* The failure of the socket itself that a callback of the loop met (the
 * link could not be read): 0 while there is none, else its code with err
 * filled. It stays: the door cannot go on. */
int gb_front_door_failure(const gb_front_door_t *door, gb_error_t *err) GB_MUST_CHECK;

/* One turn of the loop the door is attached to (a loop of its own, made
 * now, when it is attached to none): waits up to timeout_ms (-1: until the
 * nearest deadline) for the link or a timer, and answers every pending
 * event of the link when it has any. Returns 0, or a negative gb_err when
 * the loop or the socket itself fails (gb_front_door_failure). */
int gb_front_door_step(gb_front_door_t *door, int timeout_ms, gb_error_t *err) GB_MUST_CHECK;

/* The round told to clients in Welcome.current_round from now on (the
 * round in progress, or the last one once the federation has finished). */
void gb_front_door_set_round(gb_front_door_t *door, uint64_t round);

/* The largest Envelope a certified session may send or be sent, whole or
 * chunked (0: GB_CHUNK_DEFAULT_MAX_TRANSFER), for every session from now on;
 * the federation sets what its model allows. A bigger transfer is refused
 * at its first chunk (ERROR_TOO_LARGE), before any room is made for it.
 * Anonymous sessions (enrollment) are always held to an EnrollRequest's
 * size. */
void gb_front_door_set_max_transfer(gb_front_door_t *door, uint64_t bytes);

/* Clients that have joined and are connected now. */
size_t gb_front_door_joined(const gb_front_door_t *door);

/* Why the round loop turns a client away (joined returns false). */
typedef struct {
    Glassbox__ErrorCode code; /* the Error's code (ERROR_FORBIDDEN, ERROR_SHUTTING_DOWN, ...) */
    uint32_t retry_after_ms;  /* for ERROR_BUSY / ERROR_SHUTTING_DOWN (0: do not retry) */
    char why[256];            /* the Error's message */
} gb_front_door_refusal_t;

/* What the round loop hears. Every callback may be NULL. Strings and
 * messages are borrowed for the duration of the call. */
typedef struct {
    void *arg; /* passed to every callback */
    /* client_id joined on a session (a new one, or a new session after a
     * reconnect; a repeated Join on the same session only gets its Welcome
     * again and is not heard). Called after the Welcome is queued, so what
     * the handler sends follows it. True: the client stays joined. False:
     * it gets the Error in *refusal, in reply to its Join, and is no longer
     * joined (anything but Join from it is refused as unexpected). */
    bool (*joined)(void *arg, const char *client_id, const Glassbox__Join *join,
                   gb_front_door_refusal_t *refusal);
    /* before the Welcome to a participant's Join goes out: adds what the
     * round loop tells it there (in simulation, the data shard it trains
     * on). What it points the Welcome at must stay valid until the next
     * call into the handlers. */
    void (*welcome)(void *arg, const char *client_id, const Glassbox__Join *join,
                    Glassbox__Welcome *welcome);
    /* client_id's session ended (closed, timed out, cut off) */
    void (*left)(void *arg, const char *client_id, const char *reason);
    /* an Envelope of any other body (Update, EvalResult, ...) from a
     * joined client, decoded and validated (chunked ones reassembled) */
    void (*message)(void *arg, const char *client_id, const Glassbox__Envelope *env);
} gb_front_door_handlers_t;

/* Installs handlers (copied); NULL removes them. */
void gb_front_door_set_handlers(gb_front_door_t *door, const gb_front_door_handlers_t *h);

/* Sends env to the joined client client_id: stamps its sequence number
 * (returned in *seq, may be NULL), validates, packs, chunks when needed and
 * queues it; what the link takes now goes out now, the rest on later steps.
 * env is only read (but for its sequence fields). Errors, with nothing sent:
 * GB_ECLOSED when no joined session has that name, GB_EAGAIN when its queue
 * is full (a client that does not read), the encoder's codes. */
int gb_front_door_send(gb_front_door_t *door, const char *client_id, Glassbox__Envelope *env,
                       uint64_t *seq, gb_error_t *err) GB_MUST_CHECK;

/* Sends client_id an Envelope whose body (kind `body`) the caller packed
 * already, as the concatenation of parts[0..n_parts) (only read; copied
 * into the queue): gb_conversation_queue_parts with the session's sequence
 * number (in *seq, may be NULL). For a round's Tasks, whose model is packed
 * once (task_pack.h). The body is not validated here: the caller vouches
 * for it. Errors as for gb_front_door_send. */
int gb_front_door_send_parts(gb_front_door_t *door, const char *client_id,
                             Glassbox__Envelope__BodyCase body,
                             const gb_conversation_part_t *parts, size_t n_parts, uint64_t *seq,
                             gb_error_t *err) GB_MUST_CHECK;

/* Replies to client_id with an Error (code, the offending Envelope's
 * sequence in_reply_to, why) or an Ack; logged and dropped if it cannot be
 * sent (the client is gone). */
void gb_front_door_refuse(gb_front_door_t *door, const char *client_id,
                          Glassbox__ErrorCode code, uint64_t in_reply_to, const char *why);
void gb_front_door_ack(gb_front_door_t *door, const char *client_id, uint64_t acked_sequence,
                       uint64_t round, uint64_t task_id);

/* Ends client_id's session once the current callback is over (the client
 * reconnects by itself and joins again), with `left` heard then; for a
 * client that could not be sent what it must get. Nothing when it is not
 * connected. */
void gb_front_door_close(gb_front_door_t *door, const char *client_id, const char *why);

/* The Join capability (key, value) by which a certified client asks for
 * publications instead of tasks: `glassbox-client subscribe` sends it. */
#define GB_FRONT_DOOR_ROLE_KEY "role"
#define GB_FRONT_DOOR_ROLE_SUBSCRIBER "subscriber"

/* Sends the packed SignedPublication signed_pub[0..len) (read only; a copy
 * is kept) to every subscriber: a client whose certificate the CA vouches
 * for (mutual TLS, the CRL checked at each reload) and whose Join carried
 * the subscriber role. Subscribers are not participants: the round loop
 * never hears of them. A subscriber gets the latest publication when it
 * joins, then each new one; one whose queue is full misses it (logged).
 * Returns how many subscribers it was queued for, or a negative gb_err
 * (GB_ENOMEM; GB_EINVAL for len 0). */
int gb_front_door_publish(gb_front_door_t *door, const uint8_t *signed_pub, size_t len,
                          gb_error_t *err) GB_MUST_CHECK;

/* Bytes waiting in all sessions' queues (for the status page and tests). */
size_t gb_front_door_queued_bytes(const gb_front_door_t *door);

#endif
