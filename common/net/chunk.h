/* Chunked transfers: an Envelope too big for one frame (a Task's model, an
 * Update's delta) travels as a run of TensorChunk envelopes, each small
 * enough for the secure channel, and is put back together on the other side.
 *
 * Sender (gb_chunker_t, one per connection): the caller packs the whole
 * Envelope it means to send (gb_envelope_encode with a larger max_bytes),
 * starts a transfer over those bytes, which it keeps alive and unchanged
 * until the last chunk is out, and asks for the chunks one at a time, each
 * packed into a buffer of its own; nothing copies the whole. The SHA-256 of
 * the whole is computed as the chunks go out and travels in the last one.
 * Transfer ids count 1, 2, 3... per chunker, so per connection.
 *
 * Receiver (gb_reassembler_t, one per connection): it takes the TensorChunk
 * of every decoded chunk envelope. The first chunk's total_bytes is checked
 * against the per-transfer limit BEFORE anything is allocated, and then
 * exactly total_bytes are allocated, once. Chunks must arrive in order:
 * index 0, 1, 2... with the same transfer id, count and total, each
 * starting where the previous one ended. A gap, a duplicate, an overlap, a
 * wrong offset, a changed count or total, a chunk past the end, a second
 * transfer while one is open, an id that does not increase, or a SHA-256
 * mismatch fails the transfer: it is freed at once, err names the chunk and
 * the rule, a warning is logged, and the reassembler is ready for a new
 * transfer. A completed transfer hands its bytes to the caller, who decodes
 * them with gb_envelope_decode and limits {max_bytes = the transfer limit,
 * reassembled = true} (a chunk inside a chunk is refused there).
 *
 * Error codes map to reply codes with gb_envelope_error_code: GB_ERANGE for
 * a transfer over the limit, GB_EINTEGRITY for a hash mismatch, GB_EFORMAT
 * for any order or consistency failure, GB_ENOMEM for our own.
 *
 * Ownership: gb_chunker_new and gb_reassembler_new return objects the caller
 * owns and frees with gb_chunker_destroy / gb_reassembler_destroy. The
 * chunker borrows the payload given to gb_chunker_start until the transfer
 * ends (gb_chunker_next returned its last chunk, or gb_chunker_start /
 * gb_chunker_destroy was called again). The reassembler copies what it
 * needs from each chunk; the caller may free the chunk's envelope at once.
 * A completed transfer's bytes become the caller's (gb_free). Not
 * thread-safe: one thread per connection object. */
#ifndef GB_NET_CHUNK_H
#define GB_NET_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "net/envelope.h"
#include "util/error.h"

/* Data bytes per chunk by default (1 MiB). */
#define GB_CHUNK_DEFAULT_SIZE ((size_t)1 << 20)
/* Upper bound on what an Envelope with a TensorChunk body adds around the
 * data: tags, varints of at most 10 bytes each, the 32-byte hash. */
#define GB_CHUNK_OVERHEAD ((size_t)128)
/* Largest chunk size: a chunk envelope must fit one frame. */
#define GB_CHUNK_MAX_SIZE (GB_ENVELOPE_MAX_BYTES - GB_CHUNK_OVERHEAD)
/* Per-transfer limit of a reassembler by default (512 MiB: the largest
 * model file, GB_SNAPSHOT_MAX_BYTES, twice over, since an Update's delta is
 * model-sized). */
#define GB_CHUNK_DEFAULT_MAX_TRANSFER ((uint64_t)512 << 20)

typedef struct gb_chunker gb_chunker_t;
typedef struct gb_reassembler gb_reassembler_t;

/* ---- sender -------------------------------------------------------------- */

/* A new chunker cutting transfers into chunks of chunk_size data bytes
 * (0: GB_CHUNK_DEFAULT_SIZE; at most GB_CHUNK_MAX_SIZE, else GB_EINVAL).
 * Returns NULL and fills err (GB_EINVAL, GB_ENOMEM, GB_ECRYPTO). */
gb_chunker_t *gb_chunker_new(size_t chunk_size, gb_error_t *err);

/* Frees the chunker (and forgets any transfer in progress); sets *c to NULL;
 * NULL-safe. */
void gb_chunker_destroy(gb_chunker_t **c);

/* Starts a transfer of len bytes at payload (a packed Envelope; borrowed
 * until the transfer ends, see above), abandoning any transfer in progress.
 * len must be 1..UINT64_MAX and need at most UINT32_MAX chunks. On success
 * *transfer_id (if not NULL) is the new transfer's id. Returns 0 or GB_EINVAL
 * (empty or NULL payload), GB_ERANGE (too many chunks), GB_ECRYPTO. */
int gb_chunker_start(gb_chunker_t *c, const uint8_t *payload, size_t len,
                     uint64_t *transfer_id, gb_error_t *err) GB_MUST_CHECK;

/* Number of chunks of the transfer in progress (0: none). */
uint32_t gb_chunker_count(const gb_chunker_t *c);

/* Bytes a buffer needs to hold any chunk envelope of this chunker. */
size_t gb_chunker_buffer_size(const gb_chunker_t *c);

/* Packs the next chunk of the transfer, as an Envelope of sequence seq
 * (>= 1; the caller's per-connection counter), into buf (cap bytes, at
 * least gb_chunker_buffer_size). Returns 1 with *len set, 0 when the
 * transfer is complete (or none was started), or a negative gb_err: GB_EINVAL
 * for NULL arguments or sequence 0 (nothing changes), or for a buffer too
 * small, and GB_ECRYPTO; after these two the transfer is abandoned (its
 * first chunks are out, so the receiver must see a new transfer). */
int gb_chunker_next(gb_chunker_t *c, uint64_t seq, uint8_t *buf, size_t cap, size_t *len,
                    gb_error_t *err) GB_MUST_CHECK;

/* ---- receiver ------------------------------------------------------------ */

/* A new reassembler refusing transfers of more than max_transfer bytes (0:
 * GB_CHUNK_DEFAULT_MAX_TRANSFER). Returns NULL and fills err (GB_ENOMEM,
 * GB_ECRYPTO). */
gb_reassembler_t *gb_reassembler_new(uint64_t max_transfer, gb_error_t *err);

/* Frees the reassembler and any partial transfer; sets *r to NULL;
 * NULL-safe. */
void gb_reassembler_destroy(gb_reassembler_t **r);

/* The per-transfer limit in bytes (what to pass as limits.max_bytes when
 * decoding a completed transfer). */
uint64_t gb_reassembler_max_transfer(const gb_reassembler_t *r);

/* Takes one chunk (the TensorChunk of an envelope that gb_envelope_decode
 * accepted; it is only read). Returns 0 when more chunks are needed; 1 when
 * this chunk completed the transfer, with *out a new buffer of *out_len
 * bytes that the caller owns (gb_free); or a negative gb_err with the
 * transfer failed and freed (see the top of this file). *out is NULL and
 * *out_len 0 unless 1 is returned. */
int gb_reassembler_feed(gb_reassembler_t *r, const Glassbox__TensorChunk *chunk, uint8_t **out,
                        size_t *out_len, gb_error_t *err) GB_MUST_CHECK;

/* A transfer is in progress. */
bool gb_reassembler_busy(const gb_reassembler_t *r);

/* Abandons the transfer in progress, if any (the connection was reset); the
 * next transfer id must still be larger than the abandoned one's. */
void gb_reassembler_reset(gb_reassembler_t *r);

#endif
