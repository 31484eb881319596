/* The federation's report hook (issue 12): with an output directory, every
 * committed round goes into the report's history (report_history.h), kept
 * as DIR/history.json, and DIR/index.html is rendered again from it
 * (html_report.h). Both are written atomically; a failure is logged and
 * counted in glassbox_report_failures_total and changes nothing else: the
 * round is committed already, and the next round writes both whole again.
 *
 * At start the history is read back from DIR/history.json, so a restarted
 * coordinator continues its plots; a file that cannot be trusted (damaged,
 * truncated, hostile) is logged, moved aside as history.json.refused for
 * whoever wants to look at it, and the history starts afresh. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "federation_internal.h"
#include "html_report.h"
#include "report_history.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/time.h"

#define S_PATH_MAX 4096

static int s_path(const gb_federation_t *f, const char *name, char *out)
{
    int n = snprintf(out, S_PATH_MAX, "%s/%s", f->out_dir, name);
    return n < 0 || n >= S_PATH_MAX ? -1 : 0;
}

int gb_fed_report_open(gb_federation_t *f, gb_error_t *err)
{
    if (!f->out_dir)
        return 0;
    char path[S_PATH_MAX], aside[S_PATH_MAX];
    if (s_path(f, GB_REPORT_HISTORY_FILE, path) != 0 ||
        s_path(f, GB_REPORT_HISTORY_FILE ".refused", aside) != 0)
        return gb_error_set(err, GB_EINVAL, "report: output directory name too long");
    struct stat st;
    gb_error_t rerr = {0};
    if (stat(path, &st) == 0 && (f->history = gb_report_history_read(path, &rerr)) != NULL) {
        gb_log_info("report: %zu rounds read back from '%s'",
                    gb_report_history_count(f->history), path);
        return 0;
    }
    if (rerr.code) {
        gb_log_warn("report: refused %s; the report's history starts afresh%s", rerr.msg,
                    rename(path, aside) == 0 ? ", the file moved to history.json.refused" : "");
    }
    f->history = gb_report_history_new(err);
    return f->history ? 0 : GB_ENOMEM;
}

void gb_fed_report_close(gb_federation_t *f)
{
    gb_report_history_destroy(&f->history);
}

/* The round's distances from the aggregate explanation. */
static gb_report_distance_t *s_distances(const gb_federation_t *f, size_t *n)
{
    *n = 0;
    if (!f->xr.n_distance)
        return NULL;
    gb_report_distance_t *d = gb_calloc(f->xr.n_distance, sizeof *d);
    if (!d)
        return NULL;
    for (size_t i = 0; i < f->xr.n_distance; i++) {
        snprintf(d[i].client, sizeof d[i].client, "%s", f->xr.distance[i]->key);
        d[i].distance = strtod(f->xr.distance[i]->value, NULL);
    }
    *n = f->xr.n_distance;
    return d;
}

/* The round's flagged clients with their evidence (federation_flags.c). */
static gb_report_flag_t *s_flags(const gb_federation_t *f, uint64_t round, size_t *n)
{
    *n = 0;
    if (f->flags_round != round || f->n_flags == 0)
        return NULL;
    gb_report_flag_t *g = gb_calloc(f->n_flags, sizeof *g);
    if (!g)
        return NULL;
    for (size_t i = 0; i < f->n_flags; i++) {
        const gb_fed_flag_t *k = &f->flags[i];
        snprintf(g[i].client, sizeof g[i].client, "%s", k->client);
        g[i].score = k->v.score;
        g[i].strongest = isfinite(k->v.z[k->v.strongest]) ? (int)k->v.strongest : -1;
        g[i].rounds_out = k->v.rounds_out;
        g[i].rounds_seen = k->v.rounds_seen;
        memcpy(g[i].z, k->v.z, sizeof g[i].z);
        g[i].update_distance = k->ev.update;
        g[i].norm = k->ev.norm;
        g[i].explanation_distance = k->ev.explanation;
        g[i].n_classes_moved = k->n_moved_classes;
        for (size_t c = 0; c < k->n_moved_classes; c++) {
            g[i].classes_moved[c] = k->moved_classes[c];
            g[i].class_ratio[c] = k->moved_class_ratio[c];
        }
        g[i].lesson_class = k->lesson_class;
        snprintf(g[i].lesson_cells, sizeof g[i].lesson_cells, "%s", k->lesson_cells);
        g[i].n_moved = k->n_moved;
        for (size_t c = 0; c < k->n_moved; c++) {
            g[i].moved[c] = k->moved[c];
            g[i].moved_share[c] = k->moved_share[c];
        }
    }
    *n = f->n_flags;
    return g;
}

/* Which classes the round's explanation report drew (explain_report.c). */
static uint32_t *s_heatmaps(const gb_federation_t *f, size_t *n, bool *importance)
{
    const Glassbox__Explanation *x = f->xr.explanation;
    *n = 0;
    *importance = x && x->feature_importance;
    if (!x || !x->n_classes)
        return NULL;
    uint32_t *c = gb_malloc(x->n_classes * sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < x->n_classes; i++)
        c[i] = x->classes[i]->class_index;
    *n = x->n_classes;
    return c;
}

/* The importance map's shape, so the page can place the flags' moved
 * cells on it (none when there is no map or its rank is past the
 * history's). */
static void s_importance_shape(const gb_federation_t *f, gb_report_round_t *hr)
{
    const Glassbox__Explanation *x = f->xr.explanation;
    const Glassbox__Tensor *t = x ? x->feature_importance : NULL;
    uint64_t cells = 1;
    for (size_t i = 0; t && i < t->n_shape && cells <= GB_REPORT_HISTORY_MAX_CELLS; i++)
        cells *= t->shape[i];
    if (t && t->n_shape <= GB_REPORT_HISTORY_MAX_RANK && cells <= GB_REPORT_HISTORY_MAX_CELLS) {
        hr->importance_rank = t->n_shape;
        for (size_t i = 0; i < t->n_shape; i++)
            hr->importance_shape[i] = t->shape[i];
        return;
    }
    for (size_t i = 0; i < hr->n_flags; i++) /* nowhere to place them */
        hr->flags[i].n_moved = 0;
}

static void s_failed(uint64_t round, const char *what, const gb_error_t *err)
{
    gb_log_warn("report: round %llu: %s not written: %s", (unsigned long long)round, what,
                err->msg);
    gb_metrics_counter_add("glassbox_report_failures_total",
                           "Rounds whose report (index.html, history.json) could not be written",
                           NULL, NULL, 1);
}

void gb_fed_report_round(gb_federation_t *f, const gb_federation_round_t *r)
{
    if (!f->history)
        return;
    gb_report_round_t hr = {
        .round = r->round,
        .seconds = r->seconds,
        .participants = r->participants,
        .samples = r->samples,
        .test_accuracy = r->test_accuracy,
        .test_loss = r->test_loss,
        .train_accuracy = r->train_accuracy,
        .train_loss = r->train_loss,
        .client_accuracy = r->client_accuracy,
        .client_loss = r->client_loss,
        .clients_evaluated = r->clients_evaluated,
        .acc_min = r->client_accuracy_min,
        .acc_p10 = r->client_accuracy_p10,
        .acc_median = r->client_accuracy_median,
        .acc_max = r->client_accuracy_max,
        .n_classes = r->n_classes > 0 ? (size_t)r->n_classes : 0,
        .class_accuracy = (double *)r->class_accuracy,
    };
    hr.distances = s_distances(f, &hr.n_distances);
    hr.distances_total = f->xr.n_distance;
    hr.flags = s_flags(f, r->round, &hr.n_flags);
    hr.flags_total = r->flagged;
    hr.heatmap_classes = s_heatmaps(f, &hr.n_heatmaps, &hr.importance_heatmap);
    s_importance_shape(f, &hr);
    size_t n_names = f->class_names ? (size_t)gb_class_names_count(f->class_names) : 0;
    const char **names = n_names ? gb_malloc(n_names * sizeof *names) : NULL;
    for (size_t k = 0; names && k < n_names; k++)
        names[k] = gb_class_names_get(f->class_names, (int)k);
    gb_error_t err = {0};
    char path[S_PATH_MAX];
    if ((f->xr.n_distance && !hr.distances) || (f->n_flags && r->flagged && !hr.flags) ||
        (n_names && !names)) {
        gb_error_set(&err, GB_ENOMEM, "out of memory");
        s_failed(r->round, "the report", &err);
    } else if (gb_report_history_add(f->history, &hr, n_names, names, &err) != 0) {
        s_failed(r->round, "the report", &err);
    } else if (s_path(f, GB_REPORT_HISTORY_FILE, path) != 0) {
        gb_error_set(&err, GB_EINVAL, "output directory name too long");
        s_failed(r->round, GB_REPORT_HISTORY_FILE, &err);
    } else if (gb_report_history_write(f->history, path, &err) != 0) {
        s_failed(r->round, GB_REPORT_HISTORY_FILE, &err);
    } else {
        gb_html_report_info_t info = {.federation = f->federation,
                                      .generated_unix_ms = gb_time_unix_ms()};
        if (gb_html_report_write(f->out_dir, f->history, &info, &err) != 0)
            s_failed(r->round, GB_HTML_REPORT_FILE, &err);
    }
    gb_free(names);
    gb_free(hr.distances);
    gb_free(hr.flags);
    gb_free(hr.heatmap_classes);
}
