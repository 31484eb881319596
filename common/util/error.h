/* Error codes and the error buffer every fallible Glassbox function fills.
 *
 * Functions return 0 or a negative gb_err code; where the caller needs to know
 * what went wrong they also take a gb_error_t * (may be NULL) that receives a
 * message naming the bad value and where it was (curl's error buffer).
 *
 * The NULL rule holds for every function that takes a gb_error_t *, public
 * or not, unless its comment says otherwise: a NULL err means "the code is
 * enough". A function that reads err after a callee failed (to return its
 * code, prefix it, log or keep its message) therefore first points err at a
 * gb_error_t of its own when given NULL:
 *
 *     gb_error_t scratch = {0};
 *     if (!err)
 *         err = &scratch;
 *
 * and its static helpers, which only ever see that pointer, may then read
 * err->code and err->msg. gb_error_set, gb_error_prefix and gb_error_clear
 * accept NULL themselves. */
#ifndef GB_UTIL_ERROR_H
#define GB_UTIL_ERROR_H

#include <stddef.h>

#define GB_MUST_CHECK __attribute__((warn_unused_result))
#define GB_ERROR_MSG_MAX 512

enum gb_err {
    GB_OK = 0,
    GB_EINVAL = -1,  /* bad argument or value */
    GB_ENOMEM = -2,  /* allocation failed */
    GB_EIO = -3,     /* read/write/open failed */
    GB_EFORMAT = -4, /* malformed file or message */
    GB_ESHAPE = -5,  /* shapes do not fit */
    GB_ERANGE = -6,  /* value out of range (NaN, Inf, too big) */
    GB_ESPEC = -7,   /* bad model spec */
    GB_EINTEGRITY = -8, /* checksum or signature mismatch */
    GB_EPROTO = -9,  /* protocol violation */
    GB_ECRYPTO = -10, /* OpenSSL failure */
    GB_EUSAGE = -11, /* bad command-line usage */
    GB_EAGAIN = -12, /* not now: a queue is full or a peer is slow; retry later */
    GB_ECLOSED = -13, /* the connection or session is gone */
};

typedef struct {
    int code;                   /* last gb_err set, 0 when clear */
    char msg[GB_ERROR_MSG_MAX]; /* human-readable message, NUL-terminated */
} gb_error_t;

/* Name of an error code ("invalid argument", ...); a static string. */
const char *gb_strerror(int code);

/* Fills err (if not NULL) with code and a printf-style message, and returns
 * code so callers can write `return gb_error_set(err, GB_EINVAL, ...)`. */
int gb_error_set(gb_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with more context ("file x: " + old msg) and
 * returns err->code (or code when err is NULL). */
int gb_error_prefix(gb_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err (if not NULL). */
void gb_error_clear(gb_error_t *err);

#endif
