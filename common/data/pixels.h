/* Compressed 8-bit images in memory: a store of equally sized images, each
 * encoded on its own with a zero-run codec, behind an offset table, so that
 * sample i is found in O(1) and decoded straight into floats for a batch.
 *
 * Why: image datasets are mostly background. Half of Fashion-MNIST's pixels
 * are 0 and its 70,000 images are 55 MB as bytes; encoded they are 58% of
 * that (452 bytes per 784-byte image), which is most of what separates a
 * training run from an edge device's memory budget. The codec is chosen to be
 * exactly lossless and cheap to decode (well under a microsecond per image,
 * run inside the training loop's batch fill), not to compress best.
 *
 * The format of one image of `size` bytes, encoded into `len` bytes:
 *   len == size  the raw bytes (the encoder falls back to this whenever
 *                tokens would not be shorter; so len <= size always);
 *   len <  size  a sequence of tokens. A token is one byte T, Z = T >> 4
 *                zeros then L = T & 15 literal bytes; Z == 15 is followed by
 *                a byte added to Z, then L == 15 by a byte added to L (so a
 *                token covers up to 270 zeros and 270 literals); then the L
 *                literal bytes. Pixels after the last token are zero, so an
 *                all-zero image is 0 bytes.
 * Decoding checks every run against `size` and against `len`: a damaged
 * stream is an error, never a write past the image or a read past the
 * stream. Streams only ever come from gb_pixels_encode (they are never read
 * from files or the network), so a failure means memory corruption.
 *
 * Ownership: gb_pixels_new and gb_pixels_subset return a store the caller
 * owns and frees with gb_pixels_destroy; the store owns `off` and `data`. The
 * encode/decode functions write only into the caller's buffers. */
#ifndef GB_DATA_PIXELS_H
#define GB_DATA_PIXELS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GB_PIXELS_RUN_MAX 270                    /* zeros or literals one token covers */
#define GB_PIXELS_MAX_BYTES ((size_t)UINT32_MAX) /* cap on images x size of a store */

typedef struct gb_pixels {
    size_t size;   /* bytes per image, >= 1 */
    int64_t n;     /* images stored, 0..max_n */
    int64_t max_n; /* images the offset table has room for */
    uint32_t *off; /* max_n + 1 offsets, owned; image i is data[off[i] .. off[i + 1]) */
    uint8_t *data; /* the encoded images back to back, owned; NULL while cap is 0 */
    size_t cap;    /* bytes allocated at data, >= off[n] */
} gb_pixels_t;

/* Encodes the `size`-byte image img (size >= 1) into out, which has room for
 * `size` bytes, and returns the encoded length, 0..size; size means out holds
 * the raw image. Never allocates, never fails. */
size_t gb_pixels_encode(const uint8_t *img, size_t size, uint8_t *out);

/* Decodes `len` bytes made by gb_pixels_encode (enc may be NULL when len is
 * 0) into the `size`-byte image out. GB_EFORMAT for a damaged stream (len
 * over size, a run past the image or a token past the stream), with out
 * partly written but never past size bytes. */
int gb_pixels_decode(const uint8_t *enc, size_t len, size_t size, uint8_t *out) GB_MUST_CHECK;

/* gb_pixels_decode into `size` floats, pixel * scale (the same float as
 * (float)pixel * scale); the same errors and the same guarantee. */
int gb_pixels_decode_float(const uint8_t *enc, size_t len, size_t size, float scale,
                           float *out) GB_MUST_CHECK;

/* An empty store for up to max_n images (>= 0) of `size` bytes (>= 1); the
 * offset table is allocated now, the encoded bytes grow as images are
 * appended. max_n x size over GB_PIXELS_MAX_BYTES is GB_ERANGE. Returns NULL
 * and fills err. */
gb_pixels_t *gb_pixels_new(size_t size, int64_t max_n, gb_error_t *err);

/* Frees the store; sets *p to NULL; safe on NULL. */
void gb_pixels_destroy(gb_pixels_t **p);

/* Encodes the `size`-byte image img as image n of the store. The encoded
 * bytes grow by doubling (never past max_n x size), so a store filled and
 * then trimmed by gb_pixels_trim has copied little. GB_EINVAL when the store
 * is full (max_n images), GB_ENOMEM with the store unchanged. */
int gb_pixels_append(gb_pixels_t *p, const uint8_t *img, gb_error_t *err) GB_MUST_CHECK;

/* Gives back the spare capacity: data and the offset table shrink to the
 * images held (max_n becomes n). A failed shrink keeps the larger blocks, so
 * this cannot fail. */
void gb_pixels_trim(gb_pixels_t *p);

/* Decodes image i (0 <= i < n, asserted) into `size` bytes at out. 0, or
 * GB_EFORMAT for a corrupt store (see gb_pixels_decode). */
int gb_pixels_get(const gb_pixels_t *p, int64_t i, uint8_t *out) GB_MUST_CHECK;

/* Decodes image i (0 <= i < n, asserted) into `size` floats at out, pixel *
 * scale. 0, or GB_EFORMAT for a corrupt store. */
int gb_pixels_get_float(const gb_pixels_t *p, int64_t i, float scale, float *out) GB_MUST_CHECK;

/* A new store holding images idx[0..n) of p in that order (repeats allowed;
 * n may be 0), copied encoded, allocated exactly. Indexes outside [0, p->n)
 * are GB_ERANGE, n x size over GB_PIXELS_MAX_BYTES GB_ERANGE; *out is NULL on
 * failure. */
int gb_pixels_subset(const gb_pixels_t *p, const int32_t *idx, int64_t n, gb_pixels_t **out,
                     gb_error_t *err) GB_MUST_CHECK;

/* Keeps the first n images (0 <= n; n >= p->n changes nothing) and trims. */
void gb_pixels_limit(gb_pixels_t *p, int64_t n);

/* Bytes the store holds in memory: the encoded bytes allocated plus the
 * offset table. */
size_t gb_pixels_bytes(const gb_pixels_t *p);

#endif
