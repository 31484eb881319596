/* The client daemon's /status, /metrics and /healthz (client_status.h). */
#include "client_status.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/json.h"

#include "util/log.h"
#include "util/metrics.h"

static const char *s_state_name(Glassbox__ClientState s)
{
    switch (s) {
    case GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE: return "idle";
    case GLASSBOX__CLIENT_STATE__CLIENT_STATE_TRAINING: return "training";
    case GLASSBOX__CLIENT_STATE__CLIENT_STATE_EVALUATING: return "evaluating";
    case GLASSBOX__CLIENT_STATE__CLIENT_STATE_EXPLAINING: return "explaining";
    case GLASSBOX__CLIENT_STATE__CLIENT_STATE_UPLOADING: return "uploading";
    default: return "unknown";
    }
}

char *gb_client_status_json(const gb_daemon_status_t *st, gb_error_t *err)
{
    json_t *o = json_pack(
        "{s:o, s:b, s:b, s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "client_id", gb_json_string(st->client_id), "connected", (int)st->connected, "welcomed",
        (int)st->welcomed, "finished", (int)st->finished, "state", s_state_name(st->state),
        "sessions", (json_int_t)st->sessions, "last_round", (json_int_t)st->last_round,
        "running_task_id", (json_int_t)st->running_task_id, "tasks_done",
        (json_int_t)st->tasks_done, "tasks_cancelled", (json_int_t)st->tasks_cancelled,
        "tasks_failed", (json_int_t)st->tasks_failed, "results_pending",
        (json_int_t)st->results_pending, "results_sent", (json_int_t)st->results_sent,
        "results_acked", (json_int_t)st->results_acked, "results_dropped",
        (json_int_t)st->results_dropped, "errors_received", (json_int_t)st->errors_received);
    char *text = o ? json_dumps(o, GB_JSON_FLAGS | JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        gb_error_set(err, GB_ENOMEM, "client status: out of memory building the document");
    return text;
}

bool gb_client_status_unhealthy(const gb_daemon_status_t *st, double away_s, char *why,
                                size_t cap)
{
    if (!st->welcomed && away_s > GB_CLIENT_STATUS_GRACE_S) {
        snprintf(why, cap, "not welcomed by the coordinator for %.0f s", away_s);
        return true;
    }
    if (cap)
        why[0] = '\0';
    return false;
}

/* A counter that mirrors a count the daemon keeps. */
static void s_counter(const char *name, const char *help, long now)
{
    double seen = gb_metrics_value(name, NULL, NULL);
    if ((double)now > seen)
        gb_metrics_counter_add(name, help, NULL, NULL, (double)now - seen);
}

void gb_client_status_publish(gb_status_endpoint_t *ep, const gb_daemon_status_t *st,
                              double away_s)
{
    gb_metrics_gauge_set("glassbox_client_connected", "1 while a session to the coordinator "
                         "is up", NULL, NULL, st->connected ? 1 : 0);
    gb_metrics_gauge_set("glassbox_client_last_round", "Last round whose task finished here",
                         NULL, NULL, (double)st->last_round);
    gb_metrics_gauge_set("glassbox_client_results_pending", "Results not yet acknowledged",
                         NULL, NULL, (double)st->results_pending);
    s_counter("glassbox_client_tasks_done_total", "Tasks finished with results",
              st->tasks_done);
    s_counter("glassbox_client_tasks_failed_total", "Tasks refused or failed here",
              st->tasks_failed);
    s_counter("glassbox_client_results_dropped_total",
              "Results given up (stale, refused, overflow)", st->results_dropped);
    s_counter("glassbox_client_sessions_total", "Sessions established with the coordinator",
              (long)st->sessions);
    if (!ep)
        return;
    char why[GB_STATUS_REASON_MAX];
    gb_client_status_unhealthy(st, away_s, why, sizeof why);
    gb_error_t err = {0};
    char *doc = gb_client_status_json(st, &err);
    if (!doc || gb_status_endpoint_set_status(ep, doc, &err) != 0)
        gb_log_warn("client: /status not updated: %s", err.msg);
    free(doc);
    gb_status_endpoint_beat(ep, why);
}
