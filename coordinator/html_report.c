/* The report page (html_report.h), written top to bottom into one text
 * buffer (html_text.h). The plots are drawn here as SVG by hand: a line
 * chart (rounds across, one polyline per series, broken where a round has
 * no value), the accuracy spread (a bar per round) and one small line plot
 * per client; a few dozen lines of geometry are less to trust than a
 * plotting library, and the page must stand alone. Numbers are printed
 * with %g-style formats, a missing one (NaN) as an en dash. */
#include "html_report.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "explain/heatmap_layout.h"
#include "html_text.h"
#include "util/alloc.h"
#include "util/file.h"

#define S_PATH_MAX 4096

/* A line chart's frame, in SVG user units. */
#define S_W 720
#define S_H 260
#define S_L 56 /* left margin: y labels */
#define S_R 16
#define S_T 16
#define S_B 40 /* bottom: x labels and the axis title */

/* A small plot of one client's distance. */
#define S_SW 210
#define S_SH 64

static const char *const S_STYLE =
    "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1100px}"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "td.l,th.l{text-align:left;white-space:nowrap}.note{color:#555;font-size:.9em}"
    ".grid{display:flex;flex-wrap:wrap;gap:8px}"
    ".cell{border:1px solid #ddd;padding:4px;font-size:.8em}"
    ".flagged{border-color:#c00;color:#a00}figure{margin:0}"
    "figure img{max-width:300px;border:1px solid #ddd}summary{cursor:pointer;margin:.5em 0}"
    "svg text{font-size:11px;fill:#333}";

/* ---- numbers ------------------------------------------------------------------ */

/* v with fmt, or an en dash for NaN. */
static void s_num(gb_html_text_t *t, const char *fmt, double v)
{
    if (isfinite(v))
        gb_html_text_printf(t, fmt, v);
    else
        gb_html_text_printf(t, "&ndash;");
}

/* A percentage with one decimal, or an en dash. */
static void s_pct(gb_html_text_t *t, double v)
{
    if (isfinite(v))
        gb_html_text_printf(t, "%.1f%%", 100 * v);
    else
        gb_html_text_printf(t, "&ndash;");
}

/* ---- line charts -------------------------------------------------------------- */

typedef struct {
    const char *name;  /* legend text (the program's) */
    const char *color; /* stroke */
    bool dashed;
    const double *v;   /* one value per shown round (NaN: none) */
} s_series_t;

typedef struct {
    const uint64_t *rounds; /* shown rounds, increasing */
    size_t n;
    double ymin, ymax;
} s_frame_t;

static double s_x(const s_frame_t *fr, uint64_t round)
{
    double span = (double)(fr->rounds[fr->n - 1] - fr->rounds[0]);
    double w = S_W - S_L - S_R;
    if (span <= 0)
        return S_L + w / 2;
    return S_L + w * (double)(round - fr->rounds[0]) / span;
}

static double s_y(const s_frame_t *fr, double v)
{
    double h = S_H - S_T - S_B;
    double span = fr->ymax - fr->ymin;
    double f = span > 0 ? (v - fr->ymin) / span : 0.5;
    return S_T + h * (1 - f);
}

/* Axes, grid and labels of a chart; y labels as percentages when pct. */
static void s_axes(gb_html_text_t *t, const s_frame_t *fr, bool pct, const char *ytitle)
{
    gb_html_text_printf(t, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fff\" "
                           "stroke=\"#999\"/>",
                        S_L, S_T, S_W - S_L - S_R, S_H - S_T - S_B);
    for (int i = 0; i <= 4; i++) {
        double v = fr->ymin + (fr->ymax - fr->ymin) * i / 4.0;
        double y = s_y(fr, v);
        gb_html_text_printf(t, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" "
                               "stroke=\"#eee\"/>",
                            S_L, S_W - S_R, y, y);
        if (pct)
            gb_html_text_printf(t, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>",
                                S_L - 4, y + 4, 100 * v);
        else
            gb_html_text_printf(t, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>",
                                S_L - 4, y + 4, v);
    }
    uint64_t r0 = fr->rounds[0], r1 = fr->rounds[fr->n - 1];
    uint64_t step = (r1 - r0) / 10 + 1;
    for (uint64_t r = r0; r <= r1; r += step)
        gb_html_text_printf(t, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%" PRIu64
                               "</text>",
                            s_x(fr, r), S_H - S_B + 14, r);
    gb_html_text_printf(t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">round</text>",
                        (S_L + S_W - S_R) / 2, S_H - 6);
    gb_html_text_printf(t, "<text x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\" "
                           "text-anchor=\"middle\">%s</text>",
                        S_H / 2, S_H / 2, ytitle);
}

/* One series: polylines through its values, broken at NaN, dots when the
 * rounds are few enough to see them. */
static void s_series(gb_html_text_t *t, const s_frame_t *fr, const s_series_t *s)
{
    bool open = false;
    for (size_t i = 0; i <= fr->n; i++) {
        bool have = i < fr->n && isfinite(s->v[i]);
        if (have && !open) {
            gb_html_text_printf(t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s "
                                   "points=\"",
                                s->color, s->dashed ? " stroke-dasharray=\"5 3\"" : "");
            open = true;
        }
        if (have)
            gb_html_text_printf(t, "%.1f,%.1f ", s_x(fr, fr->rounds[i]), s_y(fr, s->v[i]));
        if (!have && open) {
            gb_html_text_printf(t, "\"/>");
            open = false;
        }
    }
    for (size_t i = 0; fr->n <= 60 && i < fr->n; i++)
        if (isfinite(s->v[i]))
            gb_html_text_printf(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>",
                                s_x(fr, fr->rounds[i]), s_y(fr, s->v[i]), s->color);
}

static void s_legend(gb_html_text_t *t, const s_series_t *s, size_t n)
{
    gb_html_text_printf(t, "<p class=\"note\">");
    for (size_t i = 0; i < n; i++)
        gb_html_text_printf(t, "<span style=\"color:%s\">&#9632;</span> %s%s%s", s[i].color,
                            s[i].name, s[i].dashed ? " (dashed)" : "", i + 1 < n ? " &nbsp; " : "");
    gb_html_text_printf(t, "</p>\n");
}

static bool s_any(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            return true;
    return false;
}

/* A chart of the series with values; nothing but a note when none has. */
static void s_chart(gb_html_text_t *t, const char *id, const s_frame_t *fr, bool pct,
                    const char *ytitle, const s_series_t *s, size_t n)
{
    size_t shown = 0;
    for (size_t i = 0; i < n; i++)
        shown += s_any(s[i].v, fr->n);
    if (shown == 0) {
        gb_html_text_printf(t, "<p class=\"note\">No round had these figures.</p>\n");
        return;
    }
    gb_html_text_printf(t, "<svg id=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                           "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">",
                        id, S_W, S_H, S_W, S_H);
    s_axes(t, fr, pct, ytitle);
    for (size_t i = 0; i < n; i++)
        if (s_any(s[i].v, fr->n))
            s_series(t, fr, &s[i]);
    gb_html_text_printf(t, "</svg>\n");
    s_legend(t, s, n);
}

/* ---- the page's sections ----------------------------------------------------- */

typedef struct {
    const gb_report_history_t *h;
    const gb_report_round_t **r; /* the shown rounds [n] */
    size_t n;
    uint64_t *rounds;            /* their numbers [n] */
    double *v[6];                /* scratch series [n] each */
} s_page_t;

static void s_head(gb_html_text_t *t, const s_page_t *p, const gb_html_report_info_t *info)
{
    gb_html_text_printf(t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                           "<title>Glassbox");
    if (info && info->federation) {
        gb_html_text_printf(t, " ");
        gb_html_text_esc(t, info->federation);
    }
    if (p->n)
        gb_html_text_printf(t, ": round %" PRIu64, p->rounds[p->n - 1]);
    gb_html_text_printf(t, "</title>\n<style>%s</style>\n</head>\n<body>\n", S_STYLE);
    gb_html_text_printf(t, "<h1>Glassbox federation");
    if (info && info->federation) {
        gb_html_text_printf(t, " <q>");
        gb_html_text_esc(t, info->federation);
        gb_html_text_printf(t, "</q>");
    }
    gb_html_text_printf(t, "</h1>\n");
    if (info && info->generated_unix_ms) {
        time_t s = (time_t)(info->generated_unix_ms / 1000);
        struct tm tm;
        char when[64] = "";
        if (gmtime_r(&s, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        gb_html_text_printf(t, "<p class=\"note\">Written %s, after every finished round; "
                               "reload for the latest.</p>\n",
                            when);
    }
}

static void s_summary(gb_html_text_t *t, const s_page_t *p)
{
    if (p->n == 0) {
        gb_html_text_printf(t, "<p id=\"last-round\" data-round=\"0\">No round has finished "
                               "yet.</p>\n");
        return;
    }
    const gb_report_round_t *r = p->r[p->n - 1];
    gb_html_text_printf(t, "<p id=\"last-round\" data-round=\"%" PRIu64 "\"><b>Round %" PRIu64
                           "</b>: %" PRIu64 " clients averaged (%" PRIu64 " samples), test "
                           "accuracy ",
                        r->round, r->round, r->participants, r->samples);
    s_pct(t, r->test_accuracy);
    gb_html_text_printf(t, ", test loss ");
    s_num(t, "%.4f", r->test_loss);
    gb_html_text_printf(t, ", train loss ");
    s_num(t, "%.4f", r->train_loss);
    gb_html_text_printf(t, ", %" PRIu64 " client%s flagged, ", r->flags_total,
                        r->flags_total == 1 ? "" : "s");
    s_num(t, "%.1f", r->seconds);
    gb_html_text_printf(t, " s.</p>\n");
    uint64_t dropped = gb_report_history_dropped(p->h);
    gb_html_text_printf(t, "<p class=\"note\">Rounds %" PRIu64 " to %" PRIu64 " shown",
                        p->rounds[0], r->round);
    if (dropped)
        gb_html_text_printf(t, " (the last %zu; %" PRIu64 " earlier rounds are not kept)", p->n,
                            dropped);
    gb_html_text_printf(t, ".</p>\n");
}

static void s_fill(const s_page_t *p, double *v, size_t off)
{
    for (size_t i = 0; i < p->n; i++)
        v[i] = *(const double *)((const char *)p->r[i] + off);
}

static void s_accuracy_loss(gb_html_text_t *t, const s_page_t *p)
{
    s_frame_t fr = {p->rounds, p->n, 0, 1};
    gb_html_text_printf(t, "<h2 id=\"accuracy\">Accuracy per round</h2>\n");
    s_fill(p, p->v[0], offsetof(gb_report_round_t, test_accuracy));
    s_fill(p, p->v[1], offsetof(gb_report_round_t, client_accuracy));
    s_fill(p, p->v[2], offsetof(gb_report_round_t, train_accuracy));
    s_series_t acc[3] = {{"test accuracy (coordinator's test set)", "#1f77b4", false, p->v[0]},
                         {"clients' own test accuracy", "#2ca02c", false, p->v[1]},
                         {"training accuracy", "#1f77b4", true, p->v[2]}};
    s_chart(t, "accuracy-plot", &fr, true, "accuracy", acc, 3);

    gb_html_text_printf(t, "<h2 id=\"loss\">Loss per round</h2>\n");
    s_fill(p, p->v[3], offsetof(gb_report_round_t, test_loss));
    s_fill(p, p->v[4], offsetof(gb_report_round_t, client_loss));
    s_fill(p, p->v[5], offsetof(gb_report_round_t, train_loss));
    double top = 0;
    for (int k = 3; k < 6; k++)
        for (size_t i = 0; i < p->n; i++)
            if (isfinite(p->v[k][i]) && p->v[k][i] > top)
                top = p->v[k][i];
    fr.ymax = top > 0 ? top * 1.05 : 1;
    s_series_t loss[3] = {{"test loss", "#ff7f0e", false, p->v[3]},
                          {"clients' own test loss", "#8c564b", false, p->v[4]},
                          {"training loss", "#ff7f0e", true, p->v[5]}};
    s_chart(t, "loss-plot", &fr, false, "loss", loss, 3);
}

/* The clients' accuracy spread: min to max as a thin bar, p10 to median as
 * a thick one, the median a dot. */
static void s_spread(gb_html_text_t *t, const s_page_t *p)
{
    gb_html_text_printf(t, "<h2 id=\"spread\">Spread of the clients' accuracy per round</h2>\n");
    s_frame_t fr = {p->rounds, p->n, 0, 1};
    size_t with = 0;
    for (size_t i = 0; i < p->n; i++)
        with += isfinite(p->r[i]->acc_min);
    if (with == 0) {
        gb_html_text_printf(t, "<p class=\"note\">No client evaluated the global model on its "
                               "own test data (<code>serve --client-eval</code>).</p>\n");
        return;
    }
    gb_html_text_printf(t, "<svg id=\"spread-plot\" xmlns=\"http://www.w3.org/2000/svg\" "
                           "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">",
                        S_W, S_H, S_W, S_H);
    s_axes(t, &fr, true, "client accuracy");
    double bar = (S_W - S_L - S_R) / (double)(p->n + 1) * 0.6;
    bar = bar < 2 ? 2 : bar > 14 ? 14 : bar;
    for (size_t i = 0; i < p->n; i++) {
        const gb_report_round_t *r = p->r[i];
        if (!isfinite(r->acc_min))
            continue;
        double x = s_x(&fr, r->round);
        gb_html_text_printf(t, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                               "stroke=\"#9467bd\" stroke-width=\"1.5\"/>",
                            x, x, s_y(&fr, r->acc_min), s_y(&fr, r->acc_max));
        gb_html_text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                               "fill=\"#c5b0d5\" stroke=\"#9467bd\"/>",
                            x - bar / 2, s_y(&fr, r->acc_median), bar,
                            s_y(&fr, r->acc_p10) - s_y(&fr, r->acc_median));
        gb_html_text_printf(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#4b2a7b\"/>", x,
                            s_y(&fr, r->acc_median));
    }
    gb_html_text_printf(t, "</svg>\n<p class=\"note\">Each round: the line spans the lowest "
                           "to the highest client accuracy, the box the 10th percentile to the "
                           "median, the dot the median.</p>\n");
    const gb_report_round_t *r = p->r[p->n - 1];
    gb_html_text_printf(t, "<p>Round %" PRIu64 ": %" PRIu64 " clients evaluated; min ", r->round,
                        r->clients_evaluated);
    s_pct(t, r->acc_min);
    gb_html_text_printf(t, ", p10 ");
    s_pct(t, r->acc_p10);
    gb_html_text_printf(t, ", median ");
    s_pct(t, r->acc_median);
    gb_html_text_printf(t, ", max ");
    s_pct(t, r->acc_max);
    gb_html_text_printf(t, ".</p>\n");
}

/* The last round with per-class figures: a table, a bar per class. */
static void s_classes(gb_html_text_t *t, const s_page_t *p)
{
    gb_html_text_printf(t, "<h2 id=\"classes\">Accuracy per class</h2>\n");
    const gb_report_round_t *r = NULL;
    for (size_t i = p->n; i-- > 0 && !r;)
        if (p->r[i]->n_classes)
            r = p->r[i];
    if (!r) {
        gb_html_text_printf(t, "<p class=\"note\">No server-side evaluation per class "
                               "(<code>serve --test-data</code>).</p>\n");
        return;
    }
    const gb_report_round_t *first = NULL;
    for (size_t i = 0; i < p->n && !first; i++)
        if (p->r[i]->n_classes == r->n_classes)
            first = p->r[i];
    gb_html_text_printf(t, "<table id=\"class-table\"><tr><th>class</th><th class=\"l\">name"
                           "</th><th>round %" PRIu64 "</th><th class=\"l\"></th>",
                        r->round);
    if (first != r)
        gb_html_text_printf(t, "<th>round %" PRIu64 "</th>", first->round);
    gb_html_text_printf(t, "</tr>\n");
    for (size_t k = 0; k < r->n_classes; k++) {
        const char *name = gb_report_history_class_name(p->h, k);
        gb_html_text_printf(t, "<tr><td>%zu</td><td class=\"l\">", k);
        if (name)
            gb_html_text_esc(t, name);
        else
            gb_html_text_printf(t, "class %zu", k);
        gb_html_text_printf(t, "</td><td>");
        s_pct(t, r->class_accuracy[k]);
        double w = isfinite(r->class_accuracy[k]) ? 200 * r->class_accuracy[k] : 0;
        gb_html_text_printf(t, "</td><td class=\"l\"><svg width=\"200\" height=\"10\">"
                               "<rect width=\"%.1f\" height=\"10\" fill=\"#1f77b4\"/></svg></td>",
                            w);
        if (first != r) {
            gb_html_text_printf(t, "<td>");
            s_pct(t, first->class_accuracy[k]);
            gb_html_text_printf(t, "</td>");
        }
        gb_html_text_printf(t, "</tr>\n");
    }
    gb_html_text_printf(t, "</table>\n");
}

/* The flag's strongest signal, or an en dash when no signal had a z. */
static const char *s_signal(const gb_report_flag_t *g)
{
    return g->strongest >= 0 && g->strongest < GB_FLAG_SIGNALS
               ? gb_flag_signal_name((gb_flag_signal_t)g->strongest)
               : "&ndash;";
}

/* Where a flagged client's explanation moved, as a person would rather see
 * it: the importance map's picture (laid out as its heatmap is, at most
 * S_MOVED_PX across) with the moved cells in red, the largest excess the
 * darkest, and their names and excesses as text beside it. An en dash
 * when the round has no map or the flag no moved cells. */
#define S_MOVED_PX 84
static void s_moved(gb_html_text_t *t, const gb_report_round_t *r, const gb_report_flag_t *g)
{
    gb_heatmap_layout_t l;
    size_t dims[GB_REPORT_HISTORY_MAX_RANK];
    for (size_t i = 0; i < r->importance_rank; i++)
        dims[i] = r->importance_shape[i];
    if (g->n_moved == 0 || r->importance_rank == 0 ||
        gb_heatmap_layout_plan(dims, (int)r->importance_rank, false, &l, NULL) != 0) {
        gb_html_text_printf(t, "&ndash;");
        return;
    }
    int side = l.w > l.h ? l.w : l.h;
    double px = (double)S_MOVED_PX / side;
    if (px > 4)
        px = 4;
    gb_html_text_printf(t, "<svg class=\"moved\" width=\"%.0f\" height=\"%.0f\" "
                           "style=\"vertical-align:middle\"><rect width=\"100%%\" "
                           "height=\"100%%\" fill=\"#eee\" stroke=\"#bbb\"/>",
                        px * l.w, px * l.h);
    double top = g->moved_share[0] > 0 ? g->moved_share[0] : 1;
    for (size_t i = 0; i < g->n_moved; i++) {
        int row = 0, col = 0;
        size_t channel = 0;
        if (gb_heatmap_layout_locate(&l, g->moved[i], &row, &col, &channel, NULL) != 0)
            continue;
        double shade = 0.35 + 0.65 * g->moved_share[i] / top;
        gb_html_text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                               "fill=\"#c00\" fill-opacity=\"%.2f\"/>",
                            px * col, px * row, px < 2 ? 2 : px, px < 2 ? 2 : px,
                            shade > 1 ? 1 : shade);
    }
    gb_html_text_printf(t, "</svg> ");
    for (size_t i = 0; i < g->n_moved; i++) {
        char name[64];
        gb_heatmap_layout_cell_name(&l, g->moved[i], name, sizeof name);
        gb_html_text_printf(t, "%s%s +%.3f", i ? "; " : "", name, g->moved_share[i]);
    }
}

/* Which classes the flagged client's maps moved most, by name, with how
 * many times the median client's drift; an en dash for none. */
static void s_classes_moved(gb_html_text_t *t, const s_page_t *p, const gb_report_flag_t *g)
{
    if (g->n_classes_moved == 0) {
        gb_html_text_printf(t, "&ndash;");
        return;
    }
    for (size_t i = 0; i < g->n_classes_moved; i++) {
        const char *name = gb_report_history_class_name(p->h, g->classes_moved[i]);
        gb_html_text_printf(t, "%s", i ? ", " : "");
        if (name)
            gb_html_text_esc(t, name);
        else
            gb_html_text_printf(t, "class %u", (unsigned)g->classes_moved[i]);
        gb_html_text_printf(t, " &times;%.1f", g->class_ratio[i]);
    }
}

/* What the flagged client's update taught as no other's did: the class by
 * name at the input cells, with its lesson z (a small one says the lesson
 * is nothing out of the ordinary); an en dash for no lesson. */
static void s_lesson(gb_html_text_t *t, const s_page_t *p, const gb_report_flag_t *g)
{
    if (!g->lesson_cells[0]) {
        gb_html_text_printf(t, "&ndash;");
        return;
    }
    const char *name = gb_report_history_class_name(p->h, (size_t)g->lesson_class);
    if (name)
        gb_html_text_esc(t, name);
    else
        gb_html_text_printf(t, "class %d", g->lesson_class);
    gb_html_text_printf(t, " at ");
    gb_html_text_esc(t, g->lesson_cells);
    if (isfinite(g->z[GB_FLAG_LESSON]))
        gb_html_text_printf(t, " (z %.1f)", g->z[GB_FLAG_LESSON]);
}

static void s_flag_row(gb_html_text_t *t, const s_page_t *p, const gb_report_round_t *r,
                       const gb_report_flag_t *g)
{
    uint64_t round = r->round;
    gb_html_text_printf(t, "<tr><td>%" PRIu64 "</td><td class=\"l\">", round);
    gb_html_text_esc(t, g->client);
    gb_html_text_printf(t, "</td><td>");
    s_num(t, "%.2f", g->score);
    gb_html_text_printf(t, "</td><td class=\"l\">%s</td>", s_signal(g));
    for (int s = 0; s < GB_FLAG_SIGNALS; s++) {
        gb_html_text_printf(t, "<td>");
        s_num(t, "%.1f", g->z[s]);
        gb_html_text_printf(t, "</td>");
    }
    gb_html_text_printf(t, "<td>%d of %d</td><td>", g->rounds_out, g->rounds_seen);
    s_num(t, "%.4g", g->update_distance);
    gb_html_text_printf(t, "</td><td>");
    s_num(t, "%.4g", g->norm);
    gb_html_text_printf(t, "</td><td>");
    s_num(t, "%.4g", g->explanation_distance);
    gb_html_text_printf(t, "</td><td class=\"l\">");
    s_classes_moved(t, p, g);
    gb_html_text_printf(t, "</td><td class=\"l\">");
    s_lesson(t, p, g);
    gb_html_text_printf(t, "</td><td class=\"l\">");
    s_moved(t, r, g);
    gb_html_text_printf(t, "</td></tr>\n");
}

/* One flag of a shown round, for the summary per client (times: how many
 * of the shown rounds flagged the client, once merged). */
typedef struct {
    const gb_report_flag_t *g;
    uint64_t round;
    size_t times;
} s_flag_at_t;

static int s_by_client_round(const void *x, const void *y)
{
    const s_flag_at_t *a = x, *b = y;
    int c = strcmp(a->g->client, b->g->client);
    return c ? c : (a->round > b->round) - (a->round < b->round);
}

/* Newest flag first, then the higher score. */
static int s_by_latest(const void *x, const void *y)
{
    const s_flag_at_t *a = x, *b = y;
    if (a->round != b->round)
        return (a->round < b->round) - (a->round > b->round);
    return (a->g->score < b->g->score) - (a->g->score > b->g->score);
}

/* One row per flagged client: how many of the shown rounds flagged it and
 * its latest flag; the GB_HTML_REPORT_MAX_FLAG_CLIENTS most recent. */
static void s_flag_summary(gb_html_text_t *t, const s_page_t *p, size_t rows)
{
    s_flag_at_t *all = gb_malloc(rows * sizeof *all);
    if (!all) {
        gb_html_text_printf(t, "<p class=\"note\">Out of memory for the summary.</p>\n");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->r[i]->n_flags; j++)
            all[k++] = (s_flag_at_t){&p->r[i]->flags[j], p->r[i]->round, 1};
    qsort(all, rows, sizeof *all, s_by_client_round);
    size_t u = 0; /* each client's latest flag, with its count */
    for (size_t i = 0; i < rows; i++) {
        if (u && strcmp(all[u - 1].g->client, all[i].g->client) == 0) {
            size_t times = all[u - 1].times + 1;
            all[u - 1] = all[i];
            all[u - 1].times = times;
            continue;
        }
        all[u++] = all[i];
    }
    qsort(all, u, sizeof *all, s_by_latest);
    size_t shown = u < GB_HTML_REPORT_MAX_FLAG_CLIENTS ? u : GB_HTML_REPORT_MAX_FLAG_CLIENTS;
    gb_html_text_printf(t, "<table id=\"flag-clients\"><tr><th class=\"l\">client</th>"
                           "<th>rounds flagged</th><th>last flagged</th><th>score</th>"
                           "<th class=\"l\">strongest</th></tr>\n");
    for (size_t i = 0; i < shown; i++) {
        const gb_report_flag_t *g = all[i].g;
        gb_html_text_printf(t, "<tr><td class=\"l\">");
        gb_html_text_esc(t, g->client);
        gb_html_text_printf(t, "</td><td>%zu</td><td>%" PRIu64 "</td><td>", all[i].times,
                            all[i].round);
        s_num(t, "%.2f", g->score);
        gb_html_text_printf(t, "</td><td class=\"l\">%s</td></tr>\n", s_signal(g));
    }
    gb_html_text_printf(t, "</table>\n");
    if (shown < u)
        gb_html_text_printf(t, "<p class=\"note\">%zu of %zu flagged clients shown: the most "
                               "recently flagged.</p>\n",
                            shown, u);
    gb_free(all);
}

static void s_flags(gb_html_text_t *t, const s_page_t *p)
{
    gb_html_text_printf(t, "<h2 id=\"flags\">Flagged clients</h2>\n");
    size_t rows = 0;
    uint64_t left_out = 0;
    for (size_t i = 0; i < p->n; i++) {
        rows += p->r[i]->n_flags;
        left_out += p->r[i]->flags_total - p->r[i]->n_flags;
    }
    if (rows == 0 && left_out == 0) {
        gb_html_text_printf(t, "<p id=\"no-flags\">No client was flagged in the rounds shown."
                               "</p>\n");
        return;
    }
    gb_html_text_printf(t, "<p class=\"note\">A client is flagged when one of its signals "
                           "stands out from the round's other clients (a robust z-score, "
                           "median and MAD, of 3.5 or more) in 2 of its last 5 rounds, or once "
                           "with 10.5 or more. Score: the mean over those rounds of each "
                           "round's largest z.</p>\n");
    s_flag_summary(t, p, rows);
    gb_html_text_printf(t, "<details%s><summary>Every flag with its evidence, newest first"
                           "</summary>\n",
                        rows <= 20 ? " open" : "");
    gb_html_text_printf(t, "<table id=\"flag-table\"><tr><th>round</th><th class=\"l\">client"
                           "</th><th>score</th><th class=\"l\">strongest</th>");
    for (int s = 0; s < GB_FLAG_SIGNALS; s++)
        gb_html_text_printf(t, "<th>z %s</th>", gb_flag_signal_name((gb_flag_signal_t)s));
    gb_html_text_printf(t, "<th>stood out</th><th>update distance</th><th>update norm</th>"
                           "<th>explanation distance</th><th class=\"l\">classes it moved"
                           "</th><th class=\"l\">what its update taught</th>"
                           "<th class=\"l\">where its explanation moved</th></tr>\n");
    /* newest first, at most GB_HTML_REPORT_MAX_FLAG_ROWS */
    size_t shown = 0;
    for (size_t i = p->n; i-- > 0 && shown < GB_HTML_REPORT_MAX_FLAG_ROWS;)
        for (size_t j = 0; j < p->r[i]->n_flags && shown < GB_HTML_REPORT_MAX_FLAG_ROWS; j++) {
            s_flag_row(t, p, p->r[i], &p->r[i]->flags[j]);
            shown++;
        }
    gb_html_text_printf(t, "</table>\n</details>\n");
    if (shown < rows || left_out)
        gb_html_text_printf(t, "<p class=\"note\">%zu of %" PRIu64 " flags shown: the newest %d "
                               "rows, and at most %d flagged clients a round are kept.</p>\n",
                            shown, (uint64_t)rows + left_out, GB_HTML_REPORT_MAX_FLAG_ROWS,
                            GB_REPORT_HISTORY_MAX_FLAGS);
}

static void s_heatmaps(gb_html_text_t *t, const s_page_t *p)
{
    gb_html_text_printf(t, "<h2 id=\"heatmaps\">What the model looks at</h2>\n");
    const gb_report_round_t *r = NULL;
    for (size_t i = p->n; i-- > 0 && !r;)
        if (p->r[i]->n_heatmaps || p->r[i]->importance_heatmap)
            r = p->r[i];
    if (!r) {
        gb_html_text_printf(t, "<p class=\"note\">No round was explained (<code>serve "
                               "--explain</code>).</p>\n");
        return;
    }
    gb_html_text_printf(t, "<p class=\"note\">The aggregate explanation of round %" PRIu64
                           ", each class's mean attribution over every client's data: red "
                           "raises the class's score, blue lowers it.</p>\n<div class=\"grid\">\n",
                        r->round);
    for (size_t i = 0; i < r->n_heatmaps; i++) {
        uint32_t c = r->heatmap_classes[i];
        const char *name = gb_report_history_class_name(p->h, c);
        gb_html_text_printf(t, "<figure class=\"cell\"><img src=\"explanation-%" PRIu64
                               "-class-%u.png\" alt=\"class %u ",
                            r->round, c, c);
        gb_html_text_esc(t, name);
        gb_html_text_printf(t, "\"><figcaption>%u ", c);
        if (name)
            gb_html_text_esc(t, name);
        gb_html_text_printf(t, "</figcaption></figure>\n");
    }
    if (r->importance_heatmap)
        gb_html_text_printf(t, "<figure class=\"cell\"><img src=\"explanation-%" PRIu64
                               "-importance.png\" alt=\"feature importance\"><figcaption>all "
                               "classes: mean |attribution|</figcaption></figure>\n",
                            r->round);
    gb_html_text_printf(t, "</div>\n<p class=\"note\">Figures: <a href=\"explanation-%" PRIu64
                           ".json\">explanation-%" PRIu64 ".json</a>.</p>\n",
                        r->round, r->round);
}

/* One client of the distance plots: its name, its largest distance over
 * the shown rounds, whether it was flagged in any. */
typedef struct {
    const char *client;
    double top;
    bool flagged;
} s_client_t;

static int s_by_name(const void *x, const void *y)
{
    return strcmp(((const s_client_t *)x)->client, ((const s_client_t *)y)->client);
}

static int s_by_top_desc(const void *x, const void *y)
{
    const s_client_t *a = x, *b = y;
    if (a->top != b->top)
        return (a->top < b->top) - (a->top > b->top);
    return strcmp(a->client, b->client);
}

/* Every client with a distance in the shown rounds, once, largest first;
 * NULL when out of memory. */
static s_client_t *s_clients(const s_page_t *p, size_t *n_out)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += p->r[i]->n_distances;
    *n_out = 0;
    s_client_t *c = gb_malloc((n ? n : 1) * sizeof *c);
    if (!c)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->r[i]->n_distances; j++)
            c[k++] = (s_client_t){p->r[i]->distances[j].client, p->r[i]->distances[j].distance,
                                  false};
    qsort(c, n, sizeof *c, s_by_name);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u && strcmp(c[u - 1].client, c[i].client) == 0) {
            if (c[i].top > c[u - 1].top)
                c[u - 1].top = c[i].top;
            continue;
        }
        c[u++] = c[i];
    }
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->r[i]->n_flags; j++) {
            s_client_t key = {p->r[i]->flags[j].client, 0, false};
            s_client_t *hit = bsearch(&key, c, u, sizeof *c, s_by_name);
            if (hit)
                hit->flagged = true;
        }
    qsort(c, u, sizeof *c, s_by_top_desc);
    *n_out = u;
    return c;
}

static double s_distance_of(const gb_report_round_t *r, const char *client)
{
    for (size_t j = 0; j < r->n_distances; j++)
        if (strcmp(r->distances[j].client, client) == 0)
            return r->distances[j].distance;
    return NAN;
}

static void s_distance_plot(gb_html_text_t *t, const s_page_t *p, const s_client_t *c, double top)
{
    gb_html_text_printf(t, "<div class=\"cell%s\"><b>", c->flagged ? " flagged" : "");
    gb_html_text_esc(t, c->client);
    gb_html_text_printf(t, "</b>%s, max %.3g<br><svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d "
                           "%d\"><rect width=\"%d\" height=\"%d\" fill=\"#fafafa\" "
                           "stroke=\"#ddd\"/>",
                        c->flagged ? " (flagged)" : "", c->top, S_SW, S_SH, S_SW, S_SH, S_SW,
                        S_SH);
    const char *color = c->flagged ? "#c00" : "#1f77b4";
    double span = (double)(p->rounds[p->n - 1] - p->rounds[0]);
    bool open = false;
    for (size_t i = 0; i <= p->n; i++) {
        double d = i < p->n ? s_distance_of(p->r[i], c->client) : NAN;
        bool have = isfinite(d);
        if (have && !open) {
            gb_html_text_printf(t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                                   "points=\"",
                                color);
            open = true;
        }
        if (have) {
            double x = span > 0 ? 4 + (S_SW - 8) * (double)(p->rounds[i] - p->rounds[0]) / span
                                : S_SW / 2.0;
            double y = S_SH - 4 - (S_SH - 8) * (top > 0 ? d / top : 0);
            gb_html_text_printf(t, "%.1f,%.1f ", x, y);
            if (p->n == 1 || span == 0)
                gb_html_text_printf(t, "%.1f,%.1f ", x + 1, y);
        }
        if (!have && open) {
            gb_html_text_printf(t, "\"/>");
            open = false;
        }
    }
    gb_html_text_printf(t, "</svg></div>\n");
}

static void s_distances(gb_html_text_t *t, const s_page_t *p)
{
    gb_html_text_printf(t, "<h2 id=\"distances\">Explanation distance of each client over "
                           "rounds</h2>\n");
    size_t n = 0;
    s_client_t *c = s_clients(p, &n);
    if (!c) {
        gb_html_text_printf(t, "<p class=\"note\">Out of memory for this section.</p>\n");
        return;
    }
    if (n == 0) {
        gb_html_text_printf(t, "<p class=\"note\">No client explanation was measured in the "
                               "rounds shown.</p>\n");
        gb_free(c);
        return;
    }
    size_t shown = n < GB_HTML_REPORT_MAX_CLIENTS ? n : GB_HTML_REPORT_MAX_CLIENTS;
    bool cut = false;
    for (size_t i = 0; i < p->n; i++)
        cut |= p->r[i]->distances_total > p->r[i]->n_distances;
    gb_html_text_printf(t, "<p class=\"note\">How far each client's explanation lies from "
                           "the other clients' (Jensen-Shannon divergence of the feature "
                           "importance, leave-one-out; 0 to 1), rounds %" PRIu64 " to %" PRIu64
                           " on one scale (0 to %.3g). %zu client%s",
                        p->rounds[0], p->rounds[p->n - 1], c[0].top, n, n == 1 ? "" : "s");
    if (shown < n || cut)
        gb_html_text_printf(t, "; the %zu of largest distance shown%s", shown,
                            cut ? ", from the " "100 largest kept each round" : "");
    gb_html_text_printf(t, ". Flagged clients are red.</p>\n<div class=\"grid\" "
                           "id=\"distance-plots\">\n");
    for (size_t i = 0; i < shown; i++)
        s_distance_plot(t, p, &c[i], c[0].top);
    gb_html_text_printf(t, "</div>\n");
    gb_free(c);
}

int gb_html_report_render(const gb_report_history_t *h, const gb_html_report_info_t *info,
                          char **out, size_t *len, gb_error_t *err)
{
    *out = NULL;
    *len = 0;
    s_page_t p = {.h = h, .n = gb_report_history_count(h)};
    size_t cells = p.n ? p.n : 1;
    p.r = gb_malloc(cells * sizeof *p.r);
    p.rounds = gb_malloc(cells * sizeof *p.rounds);
    bool bad = !p.r || !p.rounds;
    for (int k = 0; k < 6; k++)
        bad |= !(p.v[k] = gb_malloc(cells * sizeof *p.v[k]));
    int rc = 0;
    if (bad) {
        rc = gb_error_set(err, GB_ENOMEM, "report page: out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < p.n; i++) {
        p.r[i] = gb_report_history_round(h, i);
        p.rounds[i] = p.r[i]->round;
    }
    gb_html_text_t t = {0};
    s_head(&t, &p, info);
    s_summary(&t, &p);
    if (p.n) {
        s_accuracy_loss(&t, &p);
        s_spread(&t, &p);
        s_classes(&t, &p);
        s_flags(&t, &p);
        s_heatmaps(&t, &p);
        s_distances(&t, &p);
    }
    gb_html_text_printf(&t, "<p class=\"note\">Written by glassbox-coordinator; the figures "
                            "of every round are in <a href=\"%s\">%s</a>.</p>\n</body>\n</html>\n",
                        GB_REPORT_HISTORY_FILE, GB_REPORT_HISTORY_FILE);
    rc = gb_html_text_take(&t, out, len, err);
cleanup:
    gb_free(p.r);
    gb_free(p.rounds);
    for (int k = 0; k < 6; k++)
        gb_free(p.v[k]);
    return rc;
}

int gb_html_report_write(const char *dir, const gb_report_history_t *h,
                         const gb_html_report_info_t *info, gb_error_t *err)
{
    char path[S_PATH_MAX];
    int n = dir && *dir ? snprintf(path, sizeof path, "%s/%s", dir, GB_HTML_REPORT_FILE) : -1;
    if (n < 0 || (size_t)n >= sizeof path)
        return gb_error_set(err, GB_EINVAL, "report page: no directory, or its name is too long");
    char *text = NULL;
    size_t len = 0;
    int rc = gb_html_report_render(h, info, &text, &len, err);
    if (rc == 0)
        rc = gb_file_write_atomic(path, text, len, 0644, err);
    gb_free(text);
    return rc;
}
