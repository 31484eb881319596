/* The smallest HTTP/1.1 client that asks one of our own endpoints a
 * question: one GET, "Connection: close", the status line and the body read
 * until the server closes, all within one deadline. It is what
 * `glassbox-coordinator health` (a container's HEALTHCHECK) and the tests
 * use; it is no general client (no redirects, no chunked decoding, no TLS). */
#ifndef GB_NET_HTTP_GET_H
#define GB_NET_HTTP_GET_H

#include <stddef.h>

#include "util/error.h"

/* GETs path from addr ("HOST:PORT" as gb_http_addr_parse reads it) within
 * timeout_ms in all (connect, send, receive). On 0 *status is the response's
 * status code and body[0..cap) holds the start of the body, NUL-terminated
 * (cut to cap - 1 bytes; body may be NULL when cap is 0). Errors: GB_EUSAGE
 * for a bad address, GB_EIO when the connection fails or the deadline passes
 * (err says which), GB_EPROTO for an answer that is not HTTP. */
int gb_http_get(const char *addr, const char *path, int timeout_ms, int *status, char *body,
                size_t cap, gb_error_t *err) GB_MUST_CHECK;

#endif
