/* The serve loop's report to its HTTP endpoint (serve_status.h). Every
 * number is an integer, which JSON carries exactly up to 2^53; round
 * counters never get near it. */
#include "serve_status.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/json.h"

#include "util/log.h"
#include "util/metrics.h"

char *gb_status_json(const gb_status_view_t *v, gb_error_t *err)
{
    const gb_rounds_status_t *r = &v->rounds;
    json_t *o = json_pack(
        "{s:o, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
        "federation", gb_json_string(v->federation ? v->federation : "glassbox"), "round", (json_int_t)r->round,
        "phase", gb_rounds_state_name(r->state), "attempt", (json_int_t)r->attempt, "failures",
        (json_int_t)r->failures, "clients_joined", (json_int_t)r->connected, "clients_known",
        (json_int_t)r->known, "min_clients", (json_int_t)v->min_clients, "quorum",
        (json_int_t)v->quorum, "selected", (json_int_t)r->selected, "updated",
        (json_int_t)r->updated, "answered", (json_int_t)r->answered, "last_finished_round",
        (json_int_t)r->last_finished, "last_published_round", (json_int_t)v->last_published,
        "total_rounds", (json_int_t)v->total_rounds, "finished", (int)v->finished);
    char *text = o ? json_dumps(o, GB_JSON_FLAGS | JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        gb_error_set(err, GB_ENOMEM, "status: out of memory building the document");
    return text;
}

bool gb_status_unhealthy(const gb_status_view_t *v, char *why, size_t cap)
{
    if (v->stopping)
        snprintf(why, cap, "shutting down");
    else if (v->rounds.failures >= GB_STATUS_MAX_FAILURES)
        snprintf(why, cap, "round %llu abandoned %u times in a row",
                 (unsigned long long)v->rounds.round, (unsigned)v->rounds.failures);
    else {
        if (cap)
            why[0] = '\0';
        return false;
    }
    return true;
}

void gb_serve_status_publish(gb_status_endpoint_t *ep, const gb_federation_t *fed,
                             const gb_federation_options_t *o, bool stopping)
{
    gb_status_view_t v = {.federation = o->federation,
                          .min_clients = o->rounds.min_clients,
                          .quorum = o->rounds.quorum,
                          .total_rounds = o->rounds.total_rounds,
                          .finished = gb_federation_finished(fed),
                          .stopping = stopping};
    gb_federation_status(fed, &v.rounds);
    v.last_published = (uint64_t)gb_metrics_value("glassbox_last_published_round", NULL, NULL);
    gb_metrics_gauge_set("glassbox_round", "The round in progress (or next to start)", NULL,
                         NULL, (double)v.rounds.round);
    gb_metrics_gauge_set("glassbox_clients_joined", "Clients connected and joined now", NULL,
                         NULL, (double)v.rounds.connected);
    gb_metrics_gauge_set("glassbox_clients_known", "Distinct clients that ever joined", NULL,
                         NULL, (double)v.rounds.known);
    gb_metrics_gauge_set("glassbox_round_selected", "Clients given a task in the attempt in progress",
                         NULL, NULL, (double)v.rounds.selected);
    gb_metrics_gauge_set("glassbox_round_answered",
                         "Selected clients that have answered in full in the attempt in progress",
                         NULL, NULL, (double)v.rounds.answered);
    /* a counter: the round machine keeps the run's total */
    double dropped = gb_metrics_value("glassbox_round_clients_dropped_total", NULL, NULL);
    if ((double)v.rounds.dropped > dropped)
        gb_metrics_counter_add("glassbox_round_clients_dropped_total",
                               "Selected clients that left holding their task; the round "
                               "stopped waiting for them", NULL, NULL,
                               (double)v.rounds.dropped - dropped);
    if (!ep)
        return;
    char why[GB_STATUS_REASON_MAX];
    gb_status_unhealthy(&v, why, sizeof why);
    gb_error_t err = {0};
    char *doc = gb_status_json(&v, &err);
    if (!doc || gb_status_endpoint_set_status(ep, doc, &err) != 0)
        gb_log_warn("coordinator: /status not updated: %s", err.msg);
    free(doc);
    gb_status_endpoint_beat(ep, why);
}
