/* One side of a conversation between a client and the coordinator: the
 * Envelopes of one session, in order, whatever their size.
 *
 * Both daemons speak the same way above the secure link (net/link.h): every
 * outgoing Envelope gets the session's next sequence number, is validated
 * and packed; one that fits a frame (GB_ENVELOPE_MAX_BYTES) goes as it is,
 * a bigger one (a Task carrying a large model, an Update's delta) as a
 * chunked transfer (net/chunk.h). Incoming frames are decoded, chunks are
 * put back together, and whole Envelopes come out. This module is that
 * bookkeeping, once, for both ends; it owns no socket. The caller hands it a
 * send function (the link's), and calls flush again when the link had no
 * room (GB_EAGAIN): nothing is dropped, and frames leave in queue order.
 *
 * Sequence numbers: frames carry 1, 2, 3, ... per session and direction.
 * A chunked transfer of count chunks takes the numbers S .. S+count-1 for its
 * frames, and the Envelope inside it carries S, the number of its first
 * frame: that is the number replies name (Ack.acked_sequence,
 * Error.in_reply_to). The receiver refuses a frame whose sequence does not
 * increase.
 *
 * Bounds: what waits in the queue is bounded in bytes (max_queued_bytes);
 * gb_conversation_queue refuses past it with GB_EAGAIN and queues nothing, so
 * a slow peer cannot make its sender grow without limit. A transfer bigger
 * than max_transfer is refused at both ends.
 *
 * A new session (reconnect) starts a new conversation: gb_conversation_reset
 * drops what was queued and any half-received transfer, and sequence numbers
 * start again at 1 both ways.
 *
 * Ownership: gb_conversation_new returns an object the caller owns
 * (gb_conversation_destroy). gb_conversation_queue only reads the Envelope
 * (it writes its protocol_version and sequence fields) and keeps a packed
 * copy. An Envelope from gb_conversation_receive is the caller's
 * (gb_envelope_free). Not thread-safe: one thread per conversation. */
#ifndef GB_NET_CONVERSATION_H
#define GB_NET_CONVERSATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "util/error.h"

/* Bytes of packed Envelopes a conversation holds unsent, by default. */
#define GB_CONVERSATION_DEFAULT_MAX_QUEUED ((size_t)1 << 30)

typedef struct gb_conversation gb_conversation_t;

typedef struct {
    size_t chunk_size;       /* data bytes per chunk (0: GB_CHUNK_DEFAULT_SIZE) */
    uint64_t max_transfer;   /* largest whole Envelope either way (0: the
                                reassembler's default, GB_CHUNK_DEFAULT_MAX_TRANSFER) */
    size_t max_queued_bytes; /* unsent bytes held (0: GB_CONVERSATION_DEFAULT_MAX_QUEUED) */
} gb_conversation_options_t;

/* Sends one frame. Returns 0 when the frame was taken, GB_EAGAIN when there
 * is no room now (the same frame is offered again on the next flush), or
 * another negative gb_err (the frame stays queued too). */
typedef int (*gb_frame_send_fn)(void *arg, const uint8_t *frame, size_t len, gb_error_t *err);

/* A new conversation (opts may be NULL for the defaults). NULL and err on
 * GB_EINVAL (a chunk size over GB_CHUNK_MAX_SIZE) or GB_ENOMEM. */
gb_conversation_t *gb_conversation_new(const gb_conversation_options_t *opts, gb_error_t *err);

/* Frees the conversation and everything queued; sets *c to NULL; NULL-safe. */
void gb_conversation_destroy(gb_conversation_t **c);

/* Stamps env with the protocol version and the next sequence number (also
 * returned in *seq, which may be NULL), validates and packs it, and queues
 * it. Returns 0, or: the validation's codes (gb_envelope_encode) with
 * nothing queued and the sequence number not used; GB_ERANGE for an
 * Envelope over max_transfer; GB_EAGAIN when the queue holds
 * max_queued_bytes already; GB_ENOMEM. A TensorChunk body is refused
 * (GB_EINVAL): chunking is this module's job. */
int gb_conversation_queue(gb_conversation_t *c, Glassbox__Envelope *env, uint64_t *seq,
                          gb_error_t *err) GB_MUST_CHECK;

/* A piece of an Envelope body already packed (borrowed for the call). */
typedef struct {
    const uint8_t *data; /* len bytes */
    size_t len;          /* may be 0 */
} gb_conversation_part_t;

/* Queues, like gb_conversation_queue, an Envelope whose body the caller has
 * packed already: the body (of kind `body`, a GLASSBOX__ENVELOPE__BODY_*
 * value, not CHUNK) is the concatenation of parts[0..n_parts), copied into
 * the queued Envelope after the protocol version and the next sequence
 * number. The bytes queued are exactly what gb_conversation_queue packs for
 * an Envelope with that body, since protobuf writes a message as its
 * fields in number order and a body as tag, length and bytes; so one large
 * part (a round's model) can be packed once and queued for many sessions.
 * Nothing is validated: the caller vouches for the body (it is its own,
 * validated once; coordinator/task_pack.h). Returns 0, or GB_EINVAL (a bad
 * body kind or a NULL part with len > 0), GB_ERANGE (over max_transfer),
 * GB_EAGAIN (the queue is full), GB_ENOMEM, with nothing queued. */
int gb_conversation_queue_parts(gb_conversation_t *c, Glassbox__Envelope__BodyCase body,
                                const gb_conversation_part_t *parts, size_t n_parts,
                                uint64_t *seq, gb_error_t *err) GB_MUST_CHECK;

/* Offers queued frames to send, in order, until the queue is empty (0) or
 * send returns GB_EAGAIN (GB_EAGAIN) or another error (returned as it is;
 * err filled by send). Frames send took are gone from the queue. */
int gb_conversation_flush(gb_conversation_t *c, gb_frame_send_fn send, void *arg,
                          gb_error_t *err) GB_MUST_CHECK;

/* Packed bytes waiting to be sent (frames of a transfer in progress count
 * as the rest of the transfer). */
size_t gb_conversation_queued_bytes(const gb_conversation_t *c);

/* Takes one received frame (only read). Returns 1 with *out a whole
 * Envelope (its own, or the one a chunked transfer just completed), 0 when
 * the frame was a chunk of a transfer still incomplete (or of one that
 * failed before: a failed transfer is answered once), or a negative gb_err
 * (the decoder's or the reassembler's, or GB_EPROTO for a sequence that does
 * not increase) with err filled and a warning logged by the decoder: the
 * reply to send is gb_envelope_error_code(rc) with in_reply_to
 * gb_conversation_last_sequence(). A failed frame leaves the conversation
 * able to take the next one (a failed chunk abandons its transfer). */
int gb_conversation_receive(gb_conversation_t *c, const uint8_t *frame, size_t len,
                            Glassbox__Envelope **out, gb_error_t *err) GB_MUST_CHECK;

/* The sequence a reply to the last frame that decoded names: its own, or
 * for a chunk the sequence of its transfer's first chunk, which is the
 * sequence of the Envelope inside (0: none yet this session). */
uint64_t gb_conversation_last_sequence(const gb_conversation_t *c);

/* Changes max_transfer (0: GB_CHUNK_DEFAULT_MAX_TRANSFER), for transfers
 * queued or begun from now on: the bound is known once the peer's model is
 * (the coordinator's: what one Update can hold). A transfer being received
 * is abandoned, its later chunks dropped without a word. */
void gb_conversation_set_max_transfer(gb_conversation_t *c, uint64_t max_transfer);

/* The bound in force. */
uint64_t gb_conversation_max_transfer(const gb_conversation_t *c);

/* Starts over for a new session: drops the queue and any partial transfer
 * both ways; sequence numbers start again at 1. */
void gb_conversation_reset(gb_conversation_t *c);

#endif
