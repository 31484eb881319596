/* The federation's flag step (issue 12): after a round is aggregated and
 * before it is reported, each client whose update the round took is scored
 * by client_flags.h from three pieces of evidence (its update's distance
 * from the round's median update and its norm, from round_evidence.h; its
 * explanation's leave-one-out distance from the others', from
 * explain_merge.h). A flagged client is logged with its evidence, counted in
 * /metrics and named in the round's report. Flags are advice for now: the
 * aggregate is not changed by them, and a failure here is logged while the
 * round goes on. The flagger's memory is the process's: after a restart the
 * window starts again. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "federation_internal.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/metrics.h"

/* Series of glassbox_client_flag_score at most (the flagged, largest score
 * first), like the explanation distances' cap. */
#define S_SCORE_SERIES_MAX 100

/* The client's leave-one-out explanation distance, NaN when it has none. */
static double s_explanation_distance(const gb_federation_t *f, const char *client)
{
    for (size_t i = 0; i < f->xr.n_distance; i++)
        if (strcmp(f->xr.distance[i]->key, client) == 0)
            return strtod(f->xr.distance[i]->value, NULL);
    return NAN;
}

static void s_log_flag(uint64_t round, const gb_flag_evidence_t *ev, const gb_flag_verdict_t *v)
{
    gb_log_warn("federation: round %llu: client '%s' flagged (score %.2f; stood out in %d of "
                "its last %d rounds; strongest: %s, z %.1f): update %.4g from the median, "
                "norm %.4g, explanation distance %.4g; z update %.1f, norm %.1f, "
                "explanation %.1f, disagreement %.1f",
                (unsigned long long)round, ev->client, v->score, v->rounds_out, v->rounds_seen,
                gb_flag_signal_name(v->strongest), v->z[v->strongest], ev->update, ev->norm,
                ev->explanation, v->z[GB_FLAG_UPDATE], v->z[GB_FLAG_NORM],
                v->z[GB_FLAG_EXPLANATION], v->z[GB_FLAG_DISAGREE]);
}

static void s_metrics(uint64_t round, const gb_flag_evidence_t *ev, const gb_flag_verdict_t *v,
                      size_t n, size_t flagged)
{
    (void)round;
    const char *score = "glassbox_client_flag_score";
    gb_metrics_gauge_clear(score);
    gb_metrics_gauge_set("glassbox_clients_flagged",
                         "Clients flagged in the last finished round (client_flags.h's rule)",
                         NULL, NULL, (double)flagged);
    for (size_t i = 0, shown = 0; i < n && shown < S_SCORE_SERIES_MAX; i++) {
        if (!v[i].flagged)
            continue;
        gb_metrics_gauge_set(score,
                             "Flag score (mean of the largest robust z a round) of each client "
                             "flagged in the last finished round",
                             "client", ev[i].client, v[i].score);
        gb_metrics_counter_add("glassbox_client_flags_total",
                               "Client flags raised, by the signal that stood out most",
                               "signal", gb_flag_signal_name(v[i].strongest), 1);
        shown++;
    }
}

size_t gb_fed_flag_round(gb_federation_t *f, uint64_t round, const char ***names)
{
    *names = NULL;
    size_t n = gb_round_evidence_count(f->evidence);
    if (n == 0)
        return 0;
    double *dist = gb_malloc(n * sizeof *dist);
    gb_flag_evidence_t *ev = gb_malloc(n * sizeof *ev);
    gb_flag_verdict_t *v = gb_malloc(n * sizeof *v);
    const char **flagged_names = gb_malloc(n * sizeof *flagged_names);
    size_t flagged = 0;
    if (!dist || !ev || !v || !flagged_names) {
        gb_log_warn("federation: round %llu: out of memory for the client flags",
                    (unsigned long long)round);
        goto done;
    }
    gb_round_evidence_distances(f->evidence, dist);
    for (size_t i = 0; i < n; i++) {
        ev[i].client = gb_round_evidence_client(f->evidence, i);
        ev[i].update = dist[i];
        ev[i].norm = gb_round_evidence_norm(f->evidence, i);
        ev[i].explanation = s_explanation_distance(f, ev[i].client);
    }
    gb_error_t err = {0};
    if (gb_flagger_round(f->flagger, round, ev, n, v, &err) != 0) {
        gb_log_warn("federation: round %llu: clients not scored: %s", (unsigned long long)round,
                    err.msg);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!v[i].flagged)
            continue;
        s_log_flag(round, &ev[i], &v[i]);
        flagged_names[flagged++] = ev[i].client;
    }
    s_metrics(round, ev, v, n, flagged);
done:
    gb_free(dist);
    gb_free(ev);
    gb_free(v);
    if (flagged)
        *names = flagged_names;
    else
        gb_free(flagged_names);
    return flagged;
}
