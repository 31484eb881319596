/* Small pieces every wire codec shares (snapshot, envelope, chunk): the text
 * rule for strings that arrive from outside, SHA-256 through OpenSSL with its
 * error queue drained into err, and reading little-endian float32 tensors
 * without trusting them.
 *
 * They live in one place so that a model file, an Envelope and a chunked
 * transfer refuse exactly the same strings and the same non-finite values.
 * Nothing here allocates (OpenSSL's one-shot digest aside) or logs: callers
 * decide whether a failure is bad input (logged) or their own bug. */
#ifndef GB_NET_WIRE_H
#define GB_NET_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "util/error.h"

/* Bytes of a SHA-256 digest. */
#define GB_WIRE_SHA256_LEN 32

/* True if text[0..len) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF) without control characters (C0, DEL, C1);
 * `allow_space` admits tab, newline and carriage return. A NUL byte inside
 * the range is a control character. On false, *bad (if not NULL) is the byte
 * offset of the first offending sequence. */
bool gb_wire_text_ok(const char *text, size_t len, bool allow_space, size_t *bad);

/* SHA-256 of len bytes (data may be NULL when len is 0) into out. Returns 0,
 * or GB_ECRYPTO with OpenSSL's reason in err (its error queue drained). */
int gb_wire_sha256(const void *data, size_t len, uint8_t out[GB_WIRE_SHA256_LEN],
                   gb_error_t *err) GB_MUST_CHECK;

/* Drains this thread's OpenSSL error queue into buf as "reason; reason"
 * (oldest first, each with OpenSSL's detail text in parentheses, such as the
 * file it could not open), or "no OpenSSL reason" when the queue was empty.
 * Returns true when one of the errors was an allocation failure. */
bool gb_wire_openssl_reasons(char *buf, size_t cap);

/* Fills err (may be NULL) with the printf-style message, ": " and the
 * reasons of gb_wire_openssl_reasons, which drains the queue; returns code,
 * or GB_ENOMEM when OpenSSL ran out of memory. The one way every net/ module
 * reports an OpenSSL failure. */
int gb_wire_openssl_error(gb_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Unpacking under a memory budget. protobuf-c copies every string and
 * bytes field and adds a struct per message, so a message needs about its own
 * size again; a few bytes of repeated fields built to make a decoder allocate
 * far more than that are refused by the budget instead. */
typedef struct {
    size_t used;     /* bytes handed out so far */
    size_t limit;    /* refuse beyond this */
    bool over;       /* an allocation was refused for the budget */
    bool out_of_mem; /* gb_malloc failed */
} gb_wire_budget_t;

/* A budget for unpacking len bytes: twice the message plus 64 KiB. */
gb_wire_budget_t gb_wire_budget(size_t len);

/* A protobuf-c allocator over gb_malloc (so allocation-failure injection
 * reaches it) that draws on b, which must outlive its use. */
ProtobufCAllocator gb_wire_budget_allocator(gb_wire_budget_t *b);

/* The allocator that frees what gb_wire_budget_allocator handed out (and
 * allocates over gb_malloc without a budget): for free_unpacked. A static
 * object, valid for the program's life. */
ProtobufCAllocator *gb_wire_allocator(void);

/* True when host floats already are the wire's little-endian float32
 * bytes, so a buffer of floats can be sent or read as it is. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define GB_WIRE_LITTLE_ENDIAN 1
#else
#define GB_WIRE_LITTLE_ENDIAN 0
#endif

/* n little-endian float32 at src (any alignment) into host floats at dst. */
void gb_wire_floats_from_le(float *dst, const uint8_t *src, size_t n);

/* n host floats at src into little-endian float32 bytes at dst. */
void gb_wire_floats_to_le(uint8_t *dst, const float *src, size_t n);

/* The float32 stored little-endian at p (4 bytes, any alignment). */
float gb_wire_float_le(const uint8_t *p);

/* Index of the first of n little-endian float32 at le that is NaN or
 * infinite, or n when all are finite. */
size_t gb_wire_first_nonfinite(const uint8_t *le, size_t n);

#endif
