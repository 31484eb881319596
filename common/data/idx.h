/* Reader for IDX files, the MNIST file format: a 4-byte magic (0x00 0x00,
 * a type byte, a dimension count), one big-endian uint32 per dimension, then
 * the payload in row-major order. Only unsigned-byte payloads (type 0x08) are
 * accepted, which is what MNIST and Fashion-MNIST use.
 *
 * Files may be gzipped or plain: zlib decides by content, not by name. Every
 * header field is checked before anything is allocated, the payload is capped
 * at GB_IDX_MAX_BYTES, and the payload must be exactly as long as the header
 * says (a short file and trailing bytes are both errors), so a damaged
 * download is reported, never half-read. gb_idx_parse does the same for a
 * buffer already in memory (tests, fuzzing).
 *
 * A gb_idx_stream_t reads the same files piece by piece, for callers that
 * turn the payload into something smaller as it arrives (the dataset loader
 * compresses images one at a time) and so never hold the whole payload: the
 * header is checked on open, a short read is the same truncation error, and
 * gb_idx_stream_finish is the trailing-data and gzip-integrity check, so a
 * stream read to the end and finished has passed every check gb_idx_read
 * makes (a damaged file is still reported, only after what came before it
 * was handed over).
 *
 * Ownership: gb_idx_read/gb_idx_parse fill a caller-provided gb_idx_t whose
 * `data` they allocate with gb_malloc; gb_idx_free releases it. A caller may
 * take `data` over (set the field to NULL afterwards) and free it with
 * gb_free. gb_idx_stream_open returns a stream the caller owns and frees with
 * gb_idx_stream_destroy; it keeps its own copy of the path, and the stream
 * over memory borrows the caller's buffer until it is destroyed. */
#ifndef GB_DATA_IDX_H
#define GB_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GB_IDX_MAX_DIMS 4
#define GB_IDX_TYPE_UBYTE 0x08
#define GB_IDX_MAX_BYTES ((size_t)1 << 30) /* payload cap: 1 GiB */

typedef struct {
    int ndims;                 /* 1..GB_IDX_MAX_DIMS */
    int dims[GB_IDX_MAX_DIMS]; /* sizes, outermost first; unused entries are 0 */
    uint8_t *data;             /* len bytes, row-major, owned (gb_malloc) */
    size_t len;                /* product of dims, > 0 */
} gb_idx_t;

/* Reads the IDX file at `path` (gzipped or not) into *out. On failure *out is
 * left empty (data NULL), err names the file and the problem ("x.gz:
 * truncated: header says 60000x28x28 = 47040000 bytes, file has 1234") and
 * returns GB_EIO (cannot open/read), GB_EFORMAT (bad header, wrong length,
 * corrupt gzip), GB_ERANGE (payload over GB_IDX_MAX_BYTES) or GB_ENOMEM. */
int gb_idx_read(const char *path, gb_idx_t *out, gb_error_t *err) GB_MUST_CHECK;

/* Same checks on an uncompressed IDX image of `len` bytes in memory; `name`
 * (may be NULL) is used in messages. The payload is copied. */
int gb_idx_parse(const uint8_t *buf, size_t len, const char *name, gb_idx_t *out,
                 gb_error_t *err) GB_MUST_CHECK;

/* Frees idx->data and zeroes the struct; safe on NULL and on an empty struct. */
void gb_idx_free(gb_idx_t *idx);

typedef struct gb_idx_stream gb_idx_stream_t;

/* Opens the IDX file at `path` (gzipped or not) and checks its header, with
 * gb_idx_read's errors; *head receives ndims, dims and len (the payload
 * length), data NULL. On failure *out is NULL. */
int gb_idx_stream_open(const char *path, gb_idx_t *head, gb_idx_stream_t **out,
                       gb_error_t *err) GB_MUST_CHECK;

/* gb_idx_stream_open over an uncompressed IDX image of `len` bytes at buf,
 * which must outlive the stream; `name` (may be NULL) is used in messages. */
int gb_idx_stream_open_mem(const uint8_t *buf, size_t len, const char *name, gb_idx_t *head,
                           gb_idx_stream_t **out, gb_error_t *err) GB_MUST_CHECK;

/* Reads the next `len` payload bytes into buf. A file that ends early is
 * GB_EFORMAT with gb_idx_read's truncation message (the byte count is the
 * whole file's); GB_EIO/GB_EFORMAT for a read error or corrupt gzip data;
 * asking for more than the header's payload has left is GB_EINVAL. After a
 * failure the stream only takes gb_idx_stream_destroy (GB_EINVAL
 * otherwise). */
int gb_idx_stream_read(gb_idx_stream_t *s, uint8_t *buf, size_t len, gb_error_t *err) GB_MUST_CHECK;

/* After the whole payload has been read: checks that the file ends there
 * (trailing data is GB_EFORMAT, counted as gb_idx_read counts it) and that
 * a gzip stream ends intact (its CRC and length). Finishing before the
 * payload is read, or after a failure, is GB_EINVAL. */
int gb_idx_stream_finish(gb_idx_stream_t *s, gb_error_t *err) GB_MUST_CHECK;

/* Closes the file and frees the stream; sets *s to NULL; safe on NULL. */
void gb_idx_stream_destroy(gb_idx_stream_t **s);

#endif
