/* A daemon's HTTP endpoint (http_server.h): GET /healthz, /metrics and
 * /status, answered from what the daemon's own loop last published here.
 *
 * The loop never shares its state with the HTTP thread: after each of its
 * steps it calls gb_status_endpoint_beat (healthy, or why not) and, when it
 * has one, gb_status_endpoint_set_status (a JSON document it built); both
 * copy under this module's mutex, and the handlers read only those copies
 * (and the metrics registry, which has its own lock).
 *
 *   /healthz  200 "ok" when the last beat was healthy and came less than
 *             stall_s ago; otherwise 503 and the reason: "starting" before
 *             the first beat, the loop's own reason, or "the main loop has
 *             not run for N s" (a loop that hangs is not healthy even if its
 *             last word was);
 *   /metrics  gb_metrics_render, text/plain; version=0.0.4;
 *   /status   the last document set, application/json (404 when none).
 *
 * Ownership: gb_status_endpoint_new returns an endpoint the caller owns
 * (gb_status_endpoint_destroy). Every function but _new accepts NULL and
 * then does nothing, so a daemon run without an endpoint ("--http none")
 * calls them unchanged. */
#ifndef GB_NET_STATUS_ENDPOINT_H
#define GB_NET_STATUS_ENDPOINT_H

#include <stdint.h>

#include "util/error.h"

#define GB_STATUS_REASON_MAX 256     /* bytes of an unhealthy reason kept, NUL included */
#define GB_STATUS_DOC_MAX (64 * 1024) /* bytes of a /status document */

typedef struct gb_status_endpoint gb_status_endpoint_t;

/* Serves on addr (gb_http_addr_parse's form) with the stall bound stall_s
 * (> 0). NULL and err as gb_http_server_new. */
gb_status_endpoint_t *gb_status_endpoint_new(const char *addr, double stall_s, gb_error_t *err);

/* Stops the server and frees the endpoint; sets *e to NULL; NULL-safe. */
void gb_status_endpoint_destroy(gb_status_endpoint_t **e);

/* The port served (0 for a NULL endpoint). */
uint16_t gb_status_endpoint_port(const gb_status_endpoint_t *e);

/* The loop ran: healthy when unhealthy_reason is NULL or "", else unhealthy
 * for that reason (copied, cut to GB_STATUS_REASON_MAX - 1 bytes). */
void gb_status_endpoint_beat(gb_status_endpoint_t *e, const char *unhealthy_reason);

/* Replaces the /status document with a copy of json (NULL: none). 0, or
 * GB_ERANGE for one longer than GB_STATUS_DOC_MAX, GB_ENOMEM; the old
 * document stays on error. */
int gb_status_endpoint_set_status(gb_status_endpoint_t *e, const char *json,
                                  gb_error_t *err) GB_MUST_CHECK;

#endif
