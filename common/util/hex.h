/* Lowercase hex text for bytes, and back: the form in which the CA registry
 * writes serials and key hashes and the enrollment token store writes token
 * hashes, and in which an administrator pastes a token.
 *
 * Both directions take the size of their output and refuse to write past it,
 * so a caller's fixed buffer (char hex[65] for a SHA-256) is checked here
 * rather than trusted. Hex text can be a secret (an enrollment token):
 * decoding reads every digit whatever it finds, never echoes the text in an
 * error, and wipes its output when it refuses. Logs nothing. */
#ifndef GB_UTIL_HEX_H
#define GB_UTIL_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Writes the 2n lowercase hex digits of in[0..n) and a NUL into out, which
 * holds out_cap bytes. out_cap below 2n + 1: GB_ERANGE, and out (when
 * out_cap > 0) is left the empty string, so nothing half-written passes for
 * a shorter hash. in may be NULL when n is 0. */
int gb_hex_encode(const uint8_t *in, size_t n, char *out, size_t out_cap,
                  gb_error_t *err) GB_MUST_CHECK;

/* Decodes the hex_len digits hex[0..hex_len) (either case; no NUL needed,
 * nothing after them is read) into hex_len / 2 bytes at out, which holds
 * out_cap bytes. Checks, in this order: hex_len is even (GB_EFORMAT), out
 * is big enough (GB_ERANGE), every character is a hex digit (GB_EFORMAT,
 * err naming the first bad offset but never the text). All digits are read
 * even after a bad one. On those failures the first min(out_cap,
 * hex_len / 2) bytes of out are zeroed. NULL hex or out where bytes are to
 * be read or written: GB_EINVAL, nothing touched. */
int gb_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_cap,
                  gb_error_t *err) GB_MUST_CHECK;

#endif
