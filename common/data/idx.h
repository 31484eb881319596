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
 * Ownership: gb_idx_read/gb_idx_parse fill a caller-provided gb_idx_t whose
 * `data` they allocate with gb_malloc; gb_idx_free releases it. A caller may
 * take `data` over (set the field to NULL afterwards) and free it with
 * gb_free. */
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

#endif
