/* A small read-only HTTP server for a daemon's health, metrics and status
 * pages, on libmicrohttpd: a table of GET routes, each a handler that fills
 * a reply.
 *
 * It is shaped for an endpoint that operators and orchestrators poll, which
 * anyone on its network may reach: only GET is served (anything else gets
 * 405 with "Allow: GET"), a request that announces a body is refused with
 * 413 before any of it is read, an unknown path is 404, and every resource
 * is bounded: GB_HTTP_MAX_CONNECTIONS connections in all and
 * GB_HTTP_MAX_PER_IP from one address, GB_HTTP_TIMEOUT_S of idleness per
 * connection, GB_HTTP_MEMORY_LIMIT bytes per connection for the request line
 * and headers (longer ones get microhttpd's 414/431).
 *
 * Threads: microhttpd runs the server in a thread of its own and calls the
 * handlers there. A handler must therefore touch only what is safe from
 * another thread (a snapshot under a mutex, the metrics registry), never the
 * daemon's own state.
 *
 * Ownership: gb_http_server_new returns a server the caller owns
 * (gb_http_server_destroy); it copies the routes table, but the paths and
 * the handlers' args are borrowed and must outlive the server. */
#ifndef GB_NET_HTTP_SERVER_H
#define GB_NET_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/error.h"

#define GB_HTTP_MAX_CONNECTIONS 32      /* connections open at once */
#define GB_HTTP_MAX_PER_IP 8            /* ... from one address */
#define GB_HTTP_TIMEOUT_S 10            /* idle seconds before a connection is closed */
#define GB_HTTP_MEMORY_LIMIT (32 * 1024) /* bytes per connection for request line and headers */
#define GB_HTTP_MAX_ROUTES 16           /* routes a server holds */

/* What a handler answers. The server sets status 200, content_type
 * "text/plain; charset=utf-8" and no body before the call. */
typedef struct {
    int status;               /* HTTP status code */
    const char *content_type; /* a static string */
    char *body;               /* malloc'd (or NULL: empty); the server frees it */
    size_t len;               /* bytes of body */
} gb_http_reply_t;

/* Fills reply; runs in the server's thread. Returns 0, or a negative gb_err
 * (the client then gets 500 and the body is freed). */
typedef int (*gb_http_handler_fn)(void *arg, gb_http_reply_t *reply);

typedef struct {
    const char *path;      /* exact path, e.g. "/healthz" (the query is ignored) */
    gb_http_handler_fn fn; /* its handler */
    void *arg;             /* passed to fn */
} gb_http_route_t;

typedef struct gb_http_server gb_http_server_t;

/* Parses "HOST:PORT" where HOST is a numeric IPv4 address or a numeric IPv6
 * one in brackets ("[::1]:7702") and PORT is 0..65535 (0: any free port).
 * Fills *out and *out_len. 0, or GB_EUSAGE with err naming the text. */
int gb_http_addr_parse(const char *text, struct sockaddr_storage *out, socklen_t *out_len,
                       gb_error_t *err) GB_MUST_CHECK;

/* Listens on addr (as gb_http_addr_parse reads it) and serves the n routes
 * (at most GB_HTTP_MAX_ROUTES) from microhttpd's thread. NULL and err on a
 * bad address (GB_EUSAGE), a port that cannot be bound (GB_EIO, naming the
 * address and why) or no memory. */
gb_http_server_t *gb_http_server_new(const char *addr, const gb_http_route_t *routes, size_t n,
                                     gb_error_t *err);

/* The port the server listens on (the one chosen when addr asked for 0). */
uint16_t gb_http_server_port(const gb_http_server_t *s);

/* Stops the thread (waits for a handler that is running), closes every
 * connection and frees the server; sets *s to NULL; NULL-safe. */
void gb_http_server_destroy(gb_http_server_t **s);

#endif
