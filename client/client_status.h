/* A client daemon's report to its HTTP endpoint (run --http ADDR, off by
 * default; net/status_endpoint.h serves it): /status as JSON of the
 * daemon's status, /metrics as glassbox_client_* series, and /healthz
 * healthy while the daemon is welcomed by its coordinator (or, within the
 * first minute, still reaching it).
 *
 * Ownership: gb_client_status_json returns a string the caller frees with
 * free(); the rest borrows. */
#ifndef GB_CLIENT_CLIENT_STATUS_H
#define GB_CLIENT_CLIENT_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"
#include "net/status_endpoint.h"
#include "util/error.h"

/* Seconds a client may go without a Welcome before /healthz says so. */
#define GB_CLIENT_STATUS_GRACE_S 60.0

/* The status as one JSON object (client_id, connected, welcomed, state,
 * sessions, last_round, the task and result counters); NULL and err
 * (GB_ENOMEM) on failure. */
char *gb_client_status_json(const gb_daemon_status_t *st, gb_error_t *err);

/* Why the client is not healthy ("" and false when it is): away from its
 * coordinator for more than GB_CLIENT_STATUS_GRACE_S (away_s). */
bool gb_client_status_unhealthy(const gb_daemon_status_t *st, double away_s, char *why,
                                size_t cap);

/* Sets the metrics from st, and the endpoint's status and beat (ep may be
 * NULL: metrics only). */
void gb_client_status_publish(gb_status_endpoint_t *ep, const gb_daemon_status_t *st,
                              double away_s);

#endif
