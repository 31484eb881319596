/* The federation's flag step (issue 12): after a round is aggregated and
 * before it is published, each client whose update the round took is scored
 * by client_flags.h from three pieces of evidence (its update's distance
 * from the round's median update and its norm, from round_evidence.h; its
 * explanation's leave-one-out distance from the others', from
 * explain_merge.h). The flagged are kept with their evidence (f->flags) so
 * that the round's Publication carries them (gb_fed_flag_messages); when
 * the round is committed they are logged with their evidence, counted in
 * /metrics and named in the round's report. Scoring happens at publish, not
 * at commit, because the publication is packed (and staged) before the
 * checkpoint. The flagger counts each round once: an attempt abandoned
 * after it was scored (a failed checkpoint) leaves its verdicts standing
 * for the round's next attempt. Flags are advice unless --guard flags: the
 * aggregate is not changed by them, and a failure here is logged while the
 * round goes on. The flagger's memory is the process's: after a restart the
 * window starts again. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation_internal.h"
#include "explain/heatmap_layout.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/metrics.h"

/* Series of glassbox_client_flag_score at most (the flagged, largest score
 * first), like the explanation distances' cap. */
#define S_SCORE_SERIES_MAX 100

/* The client's leave-one-out explanation distance, NaN when it has none
 * (the distances are sorted by client id). */
static double s_explanation_distance(const gb_federation_t *f, const char *client)
{
    size_t lo = 0, hi = f->xr.n_distance;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->xr.distance[mid]->key, client);
        if (c == 0)
            return strtod(f->xr.distance[mid]->value, NULL);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NAN;
}

/* The picture layout of the round's importance map, so a moved cell is
 * named as the heatmaps draw it; false without an explanation. */
static bool s_map_layout(const gb_federation_t *f, gb_heatmap_layout_t *l)
{
    const Glassbox__Explanation *x = f->xr.explanation;
    const Glassbox__Tensor *t = x ? x->feature_importance : NULL;
    if (!t || t->n_shape < 1 || t->n_shape > GB_HEATMAP_LAYOUT_MAX_RANK)
        return false;
    size_t dims[GB_HEATMAP_LAYOUT_MAX_RANK];
    for (size_t i = 0; i < t->n_shape; i++)
        dims[i] = t->shape[i];
    return gb_heatmap_layout_plan(dims, (int)t->n_shape, false, l, NULL) == 0;
}

/* "; moved cells row 24, col 25 +0.031, ..." for the log: where the
 * client's explanation moved, named as the heatmaps draw the map. */
static void s_moved_text(const gb_fed_flag_t *k, const gb_heatmap_layout_t *l, char *out,
                         size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < k->n_moved && used < cap; i++) {
        char cell[64];
        if (l)
            gb_heatmap_layout_cell_name(l, k->moved[i], cell, sizeof cell);
        else
            snprintf(cell, sizeof cell, "cell %u", (unsigned)k->moved[i]);
        int w = snprintf(out + used, cap - used, "%s(%s) +%.3f", i ? ", " : "; moved cells ",
                         cell, (double)k->moved_share[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* "; classes Sneaker x3.1, Bag x2.2" for the log: the classes whose maps
 * the client moved most, by name. */
static void s_classes_text(const gb_federation_t *f, const gb_fed_flag_t *k, char *out,
                           size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < k->n_moved_classes && used < cap; i++) {
        char label[GB_CLASS_NAMES_LABEL_CAP];
        const char *name =
            gb_class_names_label(f->class_names, (int)k->moved_classes[i], label, sizeof label);
        int w = snprintf(out + used, cap - used, "%s%s x%.1f", i ? ", " : "; classes moved ",
                         name, (double)k->moved_class_ratio[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The class and cells k's update made matter as no other's did: its lesson
 * z's feature ft (none when its lesson z is NaN: lesson_class -1,
 * lesson_cells ""). */
static void s_lesson(const gb_federation_t *f, gb_fed_flag_t *k, size_t ft)
{
    k->lesson_class = -1;
    k->lesson_cells[0] = '\0';
    if (!isfinite(k->ev.lesson) || !f->probe)
        return;
    gb_update_probe_cell_name(f->probe, ft, k->lesson_cells, sizeof k->lesson_cells);
    k->lesson_class = (int)(ft / gb_update_probe_cells(f->probe));
}

/* "; teaches Bag at rows 24-27, cols 24-27 (lesson z 8.2)"; empty without
 * a lesson. */
static void s_lesson_text(const gb_federation_t *f, const gb_fed_flag_t *k, char *out, size_t cap)
{
    out[0] = '\0';
    if (k->lesson_class < 0)
        return;
    char label[GB_CLASS_NAMES_LABEL_CAP];
    snprintf(out, cap, "; teaches %s at %s (lesson z %.1f)",
             gb_class_names_label(f->class_names, k->lesson_class, label, sizeof label),
             k->lesson_cells, k->ev.lesson);
}

static void s_log_flag(const gb_federation_t *f, uint64_t round, const gb_fed_flag_t *k)
{
    const gb_flag_evidence_t *ev = &k->ev;
    const gb_flag_verdict_t *v = &k->v;
    gb_heatmap_layout_t layout;
    bool drawn = s_map_layout(f, &layout);
    char moved[GB_EXPLAIN_MERGE_MOVED * 80 + 32];
    s_moved_text(k, drawn ? &layout : NULL, moved, sizeof moved);
    char classes[GB_EXPLAIN_MERGE_CLASSES * (GB_CLASS_NAMES_LABEL_CAP + 16) + 32];
    s_classes_text(f, k, classes, sizeof classes);
    char lesson[GB_CLASS_NAMES_LABEL_CAP + sizeof k->lesson_cells + 48];
    s_lesson_text(f, k, lesson, sizeof lesson);
    gb_log_warn("federation: round %llu: client '%s' flagged (score %.2f; stood out in %d of "
                "its last %d rounds; strongest: %s, z %.1f): update %.4g from the median, "
                "norm %.4g, explanation distance %.4g; z update %.1f, norm %.1f, "
                "explanation %.1f, disagreement %.1f, lesson %.1f%s%s%s",
                (unsigned long long)round, ev->client, v->score, v->rounds_out, v->rounds_seen,
                gb_flag_signal_name(v->strongest), v->z[v->strongest], ev->update, ev->norm,
                ev->explanation, v->z[GB_FLAG_UPDATE], v->z[GB_FLAG_NORM],
                v->z[GB_FLAG_EXPLANATION], v->z[GB_FLAG_DISAGREE], v->z[GB_FLAG_LESSON],
                lesson, classes, moved);
}

/* The round's flag gauges and counters from its flagged clients k[0..n). */
static void s_metrics(const gb_fed_flag_t *k, size_t n)
{
    const char *score = "glassbox_client_flag_score";
    gb_metrics_gauge_clear(score);
    gb_metrics_gauge_set("glassbox_clients_flagged",
                         "Clients flagged in the last finished round (client_flags.h's rule)",
                         NULL, NULL, (double)n);
    for (size_t i = 0; i < n && i < S_SCORE_SERIES_MAX; i++) {
        gb_metrics_gauge_set(score,
                             "Flag score (mean of the largest robust z a round) of each client "
                             "flagged in the last finished round",
                             "client", k[i].client, k[i].v.score);
        gb_metrics_counter_add("glassbox_client_flags_total",
                               "Client flags raised, by the signal that stood out most",
                               "signal", gb_flag_signal_name(k[i].v.strongest), 1);
    }
}

void gb_fed_flag_score(gb_federation_t *f, uint64_t round)
{
    if (f->flags_round == round && round != 0) {
        gb_log_info("federation: round %llu: clients were scored by its earlier attempt; "
                    "those verdicts stand", (unsigned long long)round);
        return;
    }
    f->n_flags = 0;
    f->flags_round = 0;
    size_t n = gb_round_evidence_count(f->evidence);
    if (n == 0)
        return;
    double *dist = gb_malloc(n * sizeof *dist), *lesson_z = gb_malloc(n * sizeof *lesson_z);
    size_t *lesson_at = gb_malloc(n * sizeof *lesson_at);
    gb_flag_evidence_t *ev = gb_malloc(n * sizeof *ev);
    gb_flag_verdict_t *v = gb_malloc(n * sizeof *v);
    gb_fed_flag_t *kept = NULL;
    if (!dist || !lesson_z || !lesson_at || !ev || !v) {
        gb_log_warn("federation: round %llu: out of memory for the client flags",
                    (unsigned long long)round);
        goto done;
    }
    gb_round_evidence_distances(f->evidence, dist);
    gb_round_evidence_lessons(f->evidence, GB_ROUND_EVIDENCE_LESSON_FLOOR, lesson_z, lesson_at);
    for (size_t i = 0; i < n; i++) {
        ev[i].client = gb_round_evidence_client(f->evidence, i);
        ev[i].update = dist[i];
        ev[i].norm = gb_round_evidence_norm(f->evidence, i);
        ev[i].explanation = s_explanation_distance(f, ev[i].client);
        ev[i].lesson = lesson_z[i];
    }
    gb_error_t err = {0};
    if (gb_flagger_round(f->flagger, round, ev, n, v, &err) != 0) {
        gb_log_warn("federation: round %llu: clients not scored: %s", (unsigned long long)round,
                    err.msg);
        goto done;
    }
    f->flags_round = round;
    size_t flagged = 0;
    for (size_t i = 0; i < n; i++)
        flagged += v[i].flagged;
    if (flagged > f->flags_cap) {
        kept = gb_realloc(f->flags, flagged * sizeof *kept);
        if (!kept) {
            gb_log_warn("federation: round %llu: out of memory keeping %zu flagged clients",
                        (unsigned long long)round, flagged);
            goto done;
        }
        f->flags = kept;
        f->flags_cap = flagged;
    }
    for (size_t i = 0; i < n; i++) {
        if (!v[i].flagged)
            continue;
        gb_fed_flag_t *k = &f->flags[f->n_flags++];
        snprintf(k->client, sizeof k->client, "%s", ev[i].client);
        k->ev = ev[i];
        k->ev.client = k->client;
        s_lesson(f, k, lesson_at[i]);
        k->v = v[i];
        const uint32_t *cells = NULL;
        const float *share = NULL;
        k->n_moved = gb_explain_merge_moved(&f->xr, k->client, &cells, &share);
        if (k->n_moved) {
            memcpy(k->moved, cells, k->n_moved * sizeof *cells);
            memcpy(k->moved_share, share, k->n_moved * sizeof *share);
        }
        const uint32_t *classes = NULL;
        const float *ratio = NULL;
        k->n_moved_classes = gb_explain_merge_moved_classes(&f->xr, k->client, &classes, &ratio);
        if (k->n_moved_classes) {
            memcpy(k->moved_classes, classes, k->n_moved_classes * sizeof *classes);
            memcpy(k->moved_class_ratio, ratio, k->n_moved_classes * sizeof *ratio);
        }
    }
done:
    gb_free(dist);
    gb_free(lesson_z);
    gb_free(lesson_at);
    gb_free(ev);
    gb_free(v);
}

size_t gb_fed_flag_round(gb_federation_t *f, uint64_t round, const char ***names)
{
    *names = NULL;
    if (f->flags_round != round || round == 0)
        return 0; /* not scored (logged when it failed) */
    size_t n = f->n_flags;
    for (size_t i = 0; i < n; i++)
        s_log_flag(f, round, &f->flags[i]);
    s_metrics(f->flags, n);
    if (n == 0)
        return 0;
    const char **flagged = gb_malloc(n * sizeof *flagged);
    if (!flagged) {
        gb_log_warn("federation: round %llu: out of memory naming the flagged clients",
                    (unsigned long long)round);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        flagged[i] = f->flags[i].client;
    *names = flagged;
    return n;
}

/* One flag's z-scores (the signals it has) and evidence (those measured)
 * as Metric lists pointing into m/mp, which hold GB_FLAG_SIGNALS + 3. */
static void s_flag_message(const gb_fed_flag_t *k, Glassbox__ClientFlag *c, Glassbox__Metric *m,
                           Glassbox__Metric **mp)
{
    glassbox__client_flag__init(c);
    c->client_id = (char *)k->client;
    c->score = k->v.score;
    c->strongest = isfinite(k->v.z[k->v.strongest])
                       ? (char *)gb_flag_signal_name(k->v.strongest)
                       : ""; /* flagged on earlier rounds, no z this one */
    c->rounds_out = (uint32_t)k->v.rounds_out;
    c->rounds_seen = (uint32_t)k->v.rounds_seen;
    size_t used = 0;
    c->z = mp;
    for (int s = 0; s < GB_FLAG_SIGNALS; s++) {
        if (!isfinite(k->v.z[s]))
            continue;
        glassbox__metric__init(&m[used]);
        m[used].name = (char *)gb_flag_signal_name((gb_flag_signal_t)s);
        m[used].value = k->v.z[s];
        mp[used] = &m[used];
        used++;
    }
    c->n_z = used;
    c->evidence = mp + used;
    const char *names[3] = {"update_distance", "norm", "explanation_distance"};
    const double values[3] = {k->ev.update, k->ev.norm, k->ev.explanation};
    for (int i = 0; i < 3; i++) {
        if (!(isfinite(values[i]) && values[i] >= 0))
            continue;
        glassbox__metric__init(&m[used]);
        m[used].name = (char *)names[i];
        m[used].value = values[i];
        mp[used] = &m[used];
        used++;
        c->n_evidence++;
    }
    /* the flag keeps them for as long as the message lives (f->flags) */
    c->n_moved_cells = c->n_moved_share = k->n_moved;
    c->moved_cells = k->n_moved ? (uint32_t *)k->moved : NULL;
    c->moved_share = k->n_moved ? (float *)k->moved_share : NULL;
    c->n_moved_classes = c->n_moved_class_ratio = k->n_moved_classes;
    c->moved_classes = k->n_moved_classes ? (uint32_t *)k->moved_classes : NULL;
    c->moved_class_ratio = k->n_moved_classes ? (float *)k->moved_class_ratio : NULL;
    c->lesson_class = k->lesson_class >= 0 ? (uint32_t)k->lesson_class : 0;
    c->lesson_cells = (char *)k->lesson_cells;
}

int gb_fed_flag_messages(const gb_federation_t *f, uint64_t round, gb_fed_flag_msgs_t *out,
                         gb_error_t *err)
{
    memset(out, 0, sizeof *out);
    size_t n = f->flags_round == round ? f->n_flags : 0;
    if (n == 0)
        return 0;
    const size_t per = GB_FLAG_SIGNALS + 3;
    out->flags = gb_malloc(n * sizeof *out->flags);
    out->ptrs = gb_malloc(n * sizeof *out->ptrs);
    out->metrics = gb_malloc(n * per * sizeof *out->metrics);
    out->metric_ptrs = gb_malloc(n * per * sizeof *out->metric_ptrs);
    if (!out->flags || !out->ptrs || !out->metrics || !out->metric_ptrs) {
        gb_fed_flag_messages_free(out);
        return gb_error_set(err, GB_ENOMEM, "out of memory for %zu flagged clients", n);
    }
    for (size_t i = 0; i < n; i++) {
        s_flag_message(&f->flags[i], &out->flags[i], out->metrics + i * per,
                       out->metric_ptrs + i * per);
        out->ptrs[i] = &out->flags[i];
    }
    out->n = n;
    return 0;
}

void gb_fed_flag_messages_free(gb_fed_flag_msgs_t *m)
{
    gb_free(m->flags);
    gb_free(m->ptrs);
    gb_free(m->metrics);
    gb_free(m->metric_ptrs);
    memset(m, 0, sizeof *m);
}
