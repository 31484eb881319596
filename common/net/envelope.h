/* The wire's one message: an Envelope (proto/glassbox.proto) is a protocol
 * version, a sequence number and exactly one body, packed into one frame.
 *
 * gb_envelope_decode treats every byte as hostile. Before it hands a message
 * out it has checked: the frame size against a hard limit (before
 * unpacking), that protobuf-c could unpack it within an allocation budget
 * proportional to the frame (a few bytes of repeated fields cannot make it
 * allocate much more than the frame itself), the protocol version, the
 * sequence number, that there is exactly one body this version knows, and
 * every field of that body: counts and ids present (proto3 zero means
 * "missing"), strings bounded and UTF-8 without control characters, tensors
 * whose shape fits their bytes, every float finite, hashes of the right size
 * and matching (compared in constant time), models valid by the same code
 * that checks a model file (gb_snapshot_check_message), training settings in
 * range, enums this version knows. A refusal returns an error naming the
 * field and the value ("update.delta: value 17 of 40 is NaN"), logs it once
 * as a warning, and hands out nothing.
 *
 * gb_envelope_encode runs the same validation on what Glassbox is about to
 * send, so Glassbox never sends a message it would refuse; that failure is
 * the caller's bug and is not logged.
 *
 * Reply codes: a refused message deserves an Error reply whose code says why.
 * The validators choose their gb_err codes so that gb_envelope_error_code
 * maps each refusal to exactly one ErrorCode: GB_EPROTO only for a version
 * nobody here speaks (ERROR_VERSION), GB_EFORMAT for something missing or
 * undecodable (ERROR_MALFORMED), GB_ERANGE only for "over a size limit"
 * (ERROR_TOO_LARGE), GB_EINVAL for a value out of range, NaN or Inf
 * (ERROR_INVALID_VALUE), GB_ESHAPE / GB_ESPEC for tensors and models that do
 * not fit (ERROR_SHAPE), GB_EINTEGRITY for a hash mismatch (ERROR_INTEGRITY);
 * anything else (out of memory, OpenSSL failure) is our own trouble
 * (ERROR_INTERNAL).
 *
 * Large payloads (a Task's model, an Update's delta) do not fit a 4 MiB
 * frame: the sender encodes the whole Envelope with a larger max_bytes and
 * cuts it into TensorChunk envelopes (net/chunk.h); the receiver reassembles
 * the bytes and decodes them here with limits.max_bytes raised to its
 * transfer limit and limits.reassembled set, which refuses a chunk inside a
 * chunk.
 *
 * Ownership: gb_envelope_decode, gb_envelope_make_error and
 * gb_envelope_make_ack return an Envelope the caller owns and frees with
 * gb_envelope_free (only those: its parts were allocated here). An Envelope
 * the caller builds itself (on the stack, with the generated *__INIT
 * macros, pointing at its own memory) may be given to gb_envelope_validate
 * and gb_envelope_encode, which only read it, but never to
 * gb_envelope_free. Thread-safe: no state is shared between calls. */
#ifndef GB_NET_ENVELOPE_H
#define GB_NET_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "util/error.h"

/* Envelope.protocol_version this build speaks (PROTOCOL_VERSION in
 * glassbox.proto; a static assertion in envelope.c keeps them equal). */
#define GB_ENVELOPE_PROTOCOL_VERSION 1u

/* Largest packed Envelope in one frame, by default: equal to
 * GB_CHANNEL_DEFAULT_MAX_MESSAGE (net/channel.h), the largest message the
 * secure channel carries, so every frame we accept fits the channel and
 * every message the channel delivers fits here (a static assertion in
 * chunk.c, which sees both headers, keeps them equal). */
#define GB_ENVELOPE_MAX_BYTES ((size_t)4 << 20)

/* Bounds on the fields of a body (bytes unless stated). */
#define GB_ENVELOPE_MAX_NAME 256           /* names, versions, ids, dataset descriptions */
#define GB_ENVELOPE_MAX_KV 64              /* capabilities entries */
#define GB_ENVELOPE_MAX_KEY 64             /* capability key: [a-z0-9_.-]+ */
#define GB_ENVELOPE_MAX_VALUE 256          /* capability value */
#define GB_ENVELOPE_MAX_METRICS 256        /* metrics per list */
#define GB_ENVELOPE_MAX_METRIC_NAME 64     /* metric name: [A-Za-z0-9_.:/-]+ */
#define GB_ENVELOPE_MAX_ERROR_MESSAGE 1024 /* Error.message */
#define GB_ENVELOPE_MAX_CLASSES 4096       /* explanation classes, ExplainConfig.classes */
#define GB_ENVELOPE_MAX_DIMS 8             /* tensor rank */
#define GB_ENVELOPE_MAX_TOKEN 1024         /* EnrollRequest.token */
#define GB_ENVELOPE_MAX_DER ((size_t)16 << 10) /* a certificate, CSR or CA certificate */
#define GB_ENVELOPE_MAX_SIGNATURE 1024     /* SignedPublication.signature */
#define GB_ENVELOPE_MAX_ALGORITHM 64       /* SignedPublication.signature_algorithm */
#define GB_ENVELOPE_MAX_EPOCHS 1000        /* TrainConfig.epochs */
#define GB_ENVELOPE_MAX_BATCH 65536        /* TrainConfig.batch_size */
#define GB_ENVELOPE_MAX_STEPS 100000000u   /* TrainConfig.max_steps */
#define GB_ENVELOPE_MAX_SHARDS 100000u     /* Welcome.shard.clients */
#define GB_ENVELOPE_MAX_EXPLAIN_STEPS 4096 /* ExplainConfig.steps */
#define GB_ENVELOPE_MAX_INTERVAL_MS 86400000u /* heartbeat interval/timeout, retry_after: 1 day */

/* What a decoder accepts beyond the defaults. A NULL limits pointer, or a
 * zero field, means the default. */
typedef struct {
    size_t max_bytes;  /* packed size; 0: GB_ENVELOPE_MAX_BYTES */
    bool reassembled;  /* the bytes are a reassembled transfer (net/chunk.h):
                          a TensorChunk body is refused */
} gb_envelope_limits_t;

/* Decodes and validates one packed Envelope of len bytes (see the top of
 * this file). On success *out is a new Envelope the caller owns
 * (gb_envelope_free); an Error body's unknown or unspecified code has been
 * replaced by ERROR_INTERNAL, as glassbox.proto asks readers to do. On
 * failure *out is NULL, err names the field and the value, a warning is
 * logged, and gb_envelope_error_code(rc) is the reason to send back. The
 * buffer is only read, never kept. */
int gb_envelope_decode(const uint8_t *buf, size_t len, const gb_envelope_limits_t *limits,
                       Glassbox__Envelope **out, gb_error_t *err) GB_MUST_CHECK;

/* Validates an Envelope (unpacked here, or built by the caller) without
 * packing it: everything gb_envelope_decode checks after unpacking, with one
 * difference: an Error body's code must be one this version knows (we do
 * not send codes we cannot name). limits as for decode; max_bytes is checked
 * against the packed size. Does not log. Returns 0 or a negative gb_err with
 * err filled (codes as described at the top of this file). */
int gb_envelope_validate(const Glassbox__Envelope *env, const gb_envelope_limits_t *limits,
                         gb_error_t *err) GB_MUST_CHECK;

/* Validates env (gb_envelope_validate) and packs it. On success *buf is a
 * new buffer of *len bytes, the caller's to free with gb_free; on failure
 * *buf is NULL and *len 0 (GB_ENOMEM, or the validation's codes). */
int gb_envelope_encode(const Glassbox__Envelope *env, const gb_envelope_limits_t *limits,
                       uint8_t **buf, size_t *len, gb_error_t *err) GB_MUST_CHECK;

/* Frees an Envelope from gb_envelope_decode or gb_envelope_make_*; sets
 * *env to NULL; safe on NULL. */
void gb_envelope_free(Glassbox__Envelope **env);

/* The ErrorCode to send back for a refusal that returned gb_err (see the
 * top of this file); 0 (success) gives ERROR_UNSPECIFIED. */
Glassbox__ErrorCode gb_envelope_error_code(int gb_err);

/* Name of an ErrorCode ("ERROR_TOO_LARGE"), or "ERROR_UNKNOWN" for a number
 * this version does not know. A static string. */
const char *gb_envelope_error_name(Glassbox__ErrorCode code);

/* Name of the envelope's body ("update", "chunk", ...; "none" when there is
 * none). A static string, for logs. env may be NULL ("none"). */
const char *gb_envelope_body_name(const Glassbox__Envelope *env);

/* A new Envelope with an Error body: sequence seq (>= 1), the code (a known
 * one, not ERROR_UNSPECIFIED: anything else becomes ERROR_INTERNAL), the
 * offending message's sequence (0: none) and a copy of message (may be
 * NULL), which is cut to GB_ENVELOPE_MAX_ERROR_MESSAGE bytes at a character
 * boundary and has control characters and bad UTF-8 replaced by '?', so the
 * reply always passes validation even when it quotes hostile input. Returns
 * NULL and fills err (GB_EINVAL for seq 0, GB_ENOMEM). */
Glassbox__Envelope *gb_envelope_make_error(uint64_t seq, Glassbox__ErrorCode code,
                                           uint64_t in_reply_to, const char *message,
                                           gb_error_t *err);

/* A new Envelope with an Ack body acknowledging acked_sequence (>= 1) of
 * the peer, for round and task_id (0: not about a task). Returns NULL and
 * fills err (GB_EINVAL for a zero seq or acked_sequence, GB_ENOMEM). */
Glassbox__Envelope *gb_envelope_make_ack(uint64_t seq, uint64_t acked_sequence, uint64_t round,
                                         uint64_t task_id, gb_error_t *err);

#endif
