/* What `serve` tells its HTTP endpoint (net/status_endpoint.h) on every
 * tick of its status timer (cmd_serve.c, every 200 ms): the /status
 * document, built with jansson from the round machine's status (rounds.h)
 * and the run's settings, and whether the federation is healthy. Built in
 * the serve loop's thread and handed over as text, so the HTTP thread never
 * reads the federation.
 *
 * /status keys: federation, round (in progress or next; in "done" the last),
 * phase (gb_rounds_state_name: "waiting", "training", ...), attempt,
 * failures (abandoned attempts of this round in a row), clients_joined
 * (connected now), clients_known, min_clients, quorum, selected, updated,
 * answered, last_finished_round, last_published_round (0: none),
 * total_rounds (0: forever), finished (true once total_rounds are done).
 *
 * Healthy means: not shutting down, and the current round has not been
 * abandoned GB_STATUS_MAX_FAILURES times in a row (the endpoint adds the
 * stall check: a loop whose status timer stops ticking, held up by a step
 * that never returns). */
#ifndef GB_COORDINATOR_SERVE_STATUS_H
#define GB_COORDINATOR_SERVE_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "federation.h"
#include "net/status_endpoint.h"
#include "rounds.h"
#include "util/error.h"

#define GB_STATUS_MAX_FAILURES 3 /* abandoned attempts in a row that make /healthz 503 */
#define GB_SERVE_STALL_S 120.0   /* seconds without a status tick that make it 503 */

typedef struct {
    const char *federation;        /* its name (NULL: "glassbox") */
    gb_rounds_status_t rounds;     /* the machine's status */
    uint32_t min_clients;          /* from the config */
    uint32_t quorum;               /* from the config */
    uint64_t total_rounds;         /* from the config (0: forever) */
    uint64_t last_published;       /* the last round whose publication went out (0: none) */
    bool finished;                 /* gb_federation_finished */
    bool stopping;                 /* serve is shutting down */
} gb_status_view_t;

/* The document for v as compact JSON text, NUL-terminated, the caller's to
 * free(); NULL and err (GB_ENOMEM) on failure. */
char *gb_status_json(const gb_status_view_t *v, gb_error_t *err);

/* Writes why v is unhealthy into why[0..cap) and returns true, or returns
 * false (why = "") when it is healthy. */
bool gb_status_unhealthy(const gb_status_view_t *v, char *why, size_t cap);

/* Fills *v from the federation and its options (last_published from the
 * glassbox_last_published_round gauge the federation sets), sets the
 * glassbox_round, glassbox_clients_joined, glassbox_clients_known,
 * glassbox_round_selected and glassbox_round_answered gauges (and
 * glassbox_round_clients_dropped_total), and hands the endpoint its beat and document. ep may be NULL (no
 * endpoint: only the gauges). A document that cannot be built is logged;
 * the beat still goes. */
void gb_serve_status_publish(gb_status_endpoint_t *ep, const gb_federation_t *fed,
                             const gb_federation_options_t *o, bool stopping);

#endif
