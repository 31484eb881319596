/* The round's aggregate explanation as files a person (or a dashboard) reads:
 * DIR/explanation-ROUND.json and PNG heatmaps beside it (the contract is in
 * explain_merge.h, gb_explain_report_write).
 *
 * The JSON is built with jansson through util/json.h, like every document
 * Glassbox writes: names from the wire (client ids, class names) with bad
 * UTF-8 bytes as U+FFFD, reals with 9 significant digits (every float32
 * reads back exactly), keys in the order the contract lists them. It is
 * dumped into memory first, so the file is written atomically.
 *
 * The heatmaps are laid out by explain/heatmap_layout.h, the layout the
 * client's `explain` command uses too (client/cmd_explain.c), so a local
 * explanation and the federation's look alike: images with channels summed,
 * Grad-CAM maps at their own resolution, sequences with time along x, any
 * other map wrapped into rows. No underlay: the coordinator has no inputs
 * to draw under the map.
 *
 * The aggregate is read, not trusted: it may come from a decoded
 * Publication as well as from the merger, so every tensor's length and
 * values are checked before a float is read.
 *
 * Class names (data/class_names.h) title the per-class heatmaps and become
 * each class object's "class_name"; their class indices come from the wire
 * and may lie beyond the names list, so every lookup falls back to
 * "class K" (explain_report.h). Each class also says how many clients and
 * samples its map rests on, and a class resting on fewer clients than the
 * coordinator asks for is marked weakly explained rather than left out: a
 * map one client drew is that client's data, not the federation's. */
#include "explain_report.h"

#include "explain/attribution.h"
#include "explain/heatmap.h"
#include "explain/heatmap_layout.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_MAX_PATH 4096
/* Largest tensor rank read (GB_ENVELOPE_MAX_DIMS of net/envelope.h). */
#define S_MAX_DIMS 8

/* ---- reading the aggregate ------------------------------------------------- */

/* Checks a tensor (rank 1..S_MAX_DIMS, dims >= 1, bytes = 4 x the product,
 * every value finite) and, when like is given, that its shape equals like's. */
static int s_check_tensor(const Glassbox__Tensor *t, const Glassbox__Tensor *like,
                          const char *field, gb_error_t *err)
{
    if (!t || t->n_shape < 1 || t->n_shape > S_MAX_DIMS || !t->shape)
        return gb_error_set(err, GB_ESHAPE, "explanation report: %s has no shape of rank 1..%d",
                            field, S_MAX_DIMS);
    size_t n = 1;
    for (size_t i = 0; i < t->n_shape; i++) {
        if (t->shape[i] == 0 || t->shape[i] > GB_EXPLAIN_MERGE_MAX_CELLS / n)
            return gb_error_set(err, GB_ESHAPE, "explanation report: %s: dimension %zu is %u",
                                field, i, (unsigned)t->shape[i]);
        n *= t->shape[i];
    }
    if (t->data.len != 4 * n || !t->data.data)
        return gb_error_set(err, GB_ESHAPE, "explanation report: %s has %zu bytes, its shape "
                            "needs %zu", field, t->data.len, 4 * n);
    if (like && (like->n_shape != t->n_shape ||
                 memcmp(like->shape, t->shape, t->n_shape * sizeof *t->shape) != 0))
        return gb_error_set(err, GB_ESHAPE, "explanation report: %s differs in shape from the "
                            "explanation's first map", field);
    size_t bad = gb_wire_first_nonfinite(t->data.data, n);
    if (bad < n)
        return gb_error_set(err, GB_ERANGE, "explanation report: %s value %zu of %zu is not "
                            "finite", field, bad, n);
    return 0;
}

static size_t s_cells(const Glassbox__Tensor *t)
{
    return t->data.len / 4;
}

static void s_decode(const Glassbox__Tensor *t, float *out)
{
    for (size_t i = 0; i < s_cells(t); i++)
        out[i] = gb_wire_float_le(t->data.data + 4 * i);
}

/* The method's name as the client's summary.json spells it. */
static const char *s_method_name(Glassbox__ExplainMethod m)
{
    switch (m) {
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS:
        return gb_explain_method_name(GB_EXPLAIN_IG);
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRADIENT_X_INPUT:
        return gb_explain_method_name(GB_EXPLAIN_GRADXINPUT);
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY:
        return gb_explain_method_name(GB_EXPLAIN_SALIENCY);
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SMOOTHGRAD:
        return gb_explain_method_name(GB_EXPLAIN_SMOOTHGRAD);
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM:
        return gb_explain_method_name(GB_EXPLAIN_GRADCAM);
    default:
        return NULL;
    }
}

/* ---- pictures ---------------------------------------------------------------- */

/* Draws map (the tensor t's values) into path, laid out as the client lays
 * out its own (explain/heatmap_layout.h); scratch holds the picture
 * (gb_heatmap_layout_size floats: the map's cells plus less than one row). */
static int s_draw(const char *path, const char *title, const Glassbox__Tensor *t,
                  const float *map, float *scratch, bool gradcam, gb_error_t *err)
{
    size_t dims[S_MAX_DIMS];
    for (size_t i = 0; i < t->n_shape; i++)
        dims[i] = t->shape[i];
    gb_heatmap_layout_t l;
    int rc = gb_heatmap_layout_plan(dims, (int)t->n_shape, gradcam, &l, err);
    if (rc)
        return gb_error_prefix(err, rc, "explanation report: ");
    gb_heatmap_layout_fill(&l, map, scratch);
    gb_heatmap_t h = {.title = title};
    gb_heatmap_layout_apply(&l, scratch, &h);
    return gb_heatmap_save(path, &h, err);
}

/* ---- the report -------------------------------------------------------------- */

/* Class idx's real name, or NULL (no list, beyond it, or a "class K"
 * fallback of the list). Borrowed from names. */
static const char *s_real_name(const gb_class_names_t *names, uint32_t idx)
{
    if (idx >= (uint32_t)gb_class_names_named(names))
        return NULL;
    return gb_class_names_get(names, (int)idx);
}

/* Summary statistics of one map, in double. */
typedef struct {
    double min, max, sum, sum_abs, sum_sq; /* over the cells */
    size_t max_abs_cell;                   /* first cell of the largest |value| */
} s_stats_t;

static s_stats_t s_stats(const float *v, size_t n)
{
    s_stats_t s = {INFINITY, -INFINITY, 0, 0, 0, 0};
    double best = -1;
    for (size_t i = 0; i < n; i++) {
        double x = v[i];
        s.min = fmin(s.min, x);
        s.max = fmax(s.max, x);
        s.sum += x;
        s.sum_abs += fabs(x);
        s.sum_sq += x * x;
        if (fabs(x) > best) {
            best = fabs(x);
            s.max_abs_cell = i;
        }
    }
    return s;
}

static int s_join(char *out, const char *dir, const char *name, gb_error_t *err)
{
    int n = snprintf(out, S_MAX_PATH, "%s/%s", dir, name);
    if (n < 0 || n >= S_MAX_PATH)
        return gb_error_set(err, GB_EINVAL, "explanation report: path %s/%s is too long", dir,
                            name);
    return 0;
}

/* Checks everything the report reads before a file is touched. */
static int s_check(uint64_t round, const Glassbox__Explanation *x,
                   Glassbox__KeyValue *const *distance, size_t n_distance, gb_error_t *err)
{
    if (x->round != round || round == 0)
        return gb_error_set(err, GB_EINVAL, "explanation report: the explanation is of round "
                            "%llu, not round %llu", (unsigned long long)x->round,
                            (unsigned long long)round);
    if (!s_method_name(x->method))
        return gb_error_set(err, GB_EINVAL, "explanation report: method %d is not one this "
                            "version knows", (int)x->method);
    const Glassbox__Tensor *first = x->feature_importance;
    int rc = first ? s_check_tensor(first, NULL, "feature_importance", err) : 0;
    if (rc == 0 && x->n_classes && !x->classes)
        rc = gb_error_set(err, GB_EINVAL, "explanation report: classes missing");
    char field[64];
    for (size_t i = 0; rc == 0 && i < x->n_classes; i++) {
        snprintf(field, sizeof field, "classes[%zu].mean_attribution", i);
        if (!x->classes[i])
            return gb_error_set(err, GB_EINVAL, "explanation report: classes[%zu] is missing", i);
        rc = s_check_tensor(x->classes[i]->mean_attribution, first, field, err);
        if (!first)
            first = x->classes[i]->mean_attribution;
    }
    if (rc == 0 && !first)
        rc = gb_error_set(err, GB_EINVAL, "explanation report: no map to report");
    for (size_t i = 0; rc == 0 && i < x->n_quality; i++) {
        const Glassbox__Metric *q = x->quality ? x->quality[i] : NULL;
        if (!q || !q->name || !isfinite(q->value))
            rc = gb_error_set(err, GB_EINVAL, "explanation report: quality[%zu] has no name or "
                              "is not finite", i);
    }
    if (rc == 0 && n_distance && !distance)
        rc = gb_error_set(err, GB_EINVAL, "explanation report: distances missing");
    for (size_t i = 0; rc == 0 && i < n_distance; i++) {
        const Glassbox__KeyValue *kv = distance[i];
        char *end = NULL;
        double v = kv && kv->key && *kv->key && kv->value ? strtod(kv->value, &end) : NAN;
        if (!end || end == kv->value || *end != '\0' || !isfinite(v))
            rc = gb_error_set(err, GB_EINVAL, "explanation report: distance[%zu] is not a "
                              "client id with a decimal number", i);
    }
    return rc;
}

/* o[key] = v, taking v; *bad is set when jansson fails (v NULL: out of
 * memory; every number was checked finite before). */
static void s_set(json_t *o, const char *key, json_t *v, bool *bad)
{
    if (json_object_set_new(o, key, v) != 0)
        *bad = true;
}

/* A map's "min" and "max". */
static void s_set_range(json_t *o, const s_stats_t *st, bool *bad)
{
    s_set(o, "min", gb_json_real(st->min), bad);
    s_set(o, "max", gb_json_real(st->max), bad);
}

bool gb_explain_report_is_weak(uint32_t clients, uint32_t min_class_clients)
{
    return min_class_clients >= 2 && clients < min_class_clients;
}

/* "unexplained_classes": the classes of the names list nobody explained;
 * NULL when out of memory. */
static json_t *s_unexplained(const Glassbox__Explanation *x, const gb_class_names_t *names)
{
    int n = gb_class_names_count(names);
    bool *has = gb_calloc(n ? (size_t)n : 1, sizeof *has);
    json_t *a = has ? json_array() : NULL;
    for (size_t i = 0; a && i < x->n_classes; i++)
        if (x->classes[i]->class_index < (uint32_t)n)
            has[x->classes[i]->class_index] = true;
    for (int k = 0; a && k < n; k++) {
        if (has[k])
            continue;
        if (json_array_append_new(a, json_pack("{s:i, s:o}", "class", k, "class_name",
                                               gb_json_string(gb_class_names_get(names, k))))) {
            json_decref(a);
            a = NULL;
        }
    }
    gb_free(has);
    return a;
}

/* The JSON document, or NULL when out of memory. */
static json_t *s_json(uint64_t round, const Glassbox__Explanation *x,
                      Glassbox__KeyValue *const *distance, size_t n_distance,
                      const gb_explain_report_opts_t *opts, float *map)
{
    const gb_class_names_t *names = opts->names;
    unsigned long long r = (unsigned long long)round;
    const Glassbox__Tensor *shape =
        x->feature_importance ? x->feature_importance : x->classes[0]->mean_attribution;
    bool bad = false;
    char text[96];
    json_t *o = json_object(), *dims = json_array(), *quality = json_object(),
           *classes = json_array();
    if (!o || !dims || !quality || !classes) {
        json_decref(o);
        json_decref(dims);
        json_decref(quality);
        json_decref(classes);
        return NULL;
    }
    s_set(o, "format", json_string("glassbox-aggregate-explanation"), &bad);
    s_set(o, "version", json_integer(1), &bad);
    s_set(o, "round", json_integer((json_int_t)round), &bad);
    s_set(o, "method", json_string(s_method_name(x->method)), &bad);
    for (size_t i = 0; i < shape->n_shape; i++)
        bad |= json_array_append_new(dims, json_integer(shape->shape[i])) != 0;
    s_set(o, "attribution_shape", dims, &bad);
    s_set(o, "samples", json_integer((json_int_t)x->count), &bad);
    for (size_t i = 0; i < x->n_quality; i++) {
        json_t *k = gb_json_string(x->quality[i]->name); /* a name from the wire */
        if (!k)
            bad = true;
        else
            s_set(quality, json_string_value(k), gb_json_real(x->quality[i]->value), &bad);
        json_decref(k);
    }
    s_set(o, "quality", quality, &bad);
    s_set(o, "classes", classes, &bad);
    for (size_t i = 0; i < x->n_classes; i++) {
        const Glassbox__ClassAttribution *c = x->classes[i];
        const Glassbox__Tensor *t = c->mean_attribution;
        size_t n = s_cells(t);
        s_decode(t, map);
        s_stats_t st = s_stats(map, n);
        json_t *co = json_object();
        if (!co || json_array_append_new(classes, co) != 0) {
            bad = true;
            break;
        }
        s_set(co, "class", json_integer(c->class_index), &bad);
        s_set(co, "count", json_integer((json_int_t)c->count), &bad);
        s_set_range(co, &st, &bad);
        s_set(co, "mean", gb_json_real(st.sum / (double)n), &bad);
        s_set(co, "mean_abs", gb_json_real(st.sum_abs / (double)n), &bad);
        s_set(co, "l2", gb_json_real(sqrt(st.sum_sq)), &bad);
        s_set(co, "max_abs_cell", json_integer((json_int_t)st.max_abs_cell), &bad);
        snprintf(text, sizeof text, "explanation-%llu-class-%u.png", r, (unsigned)c->class_index);
        s_set(co, "heatmap", json_string(text), &bad);
        const char *name = s_real_name(names, c->class_index);
        snprintf(text, sizeof text, "class %u", (unsigned)c->class_index);
        s_set(co, "class_name", gb_json_string(name ? name : text), &bad);
        s_set(co, "clients", json_integer(c->clients), &bad);
        s_set(co, "samples", json_integer((json_int_t)c->count), &bad);
        s_set(co, "weakly_explained",
              json_boolean(gb_explain_report_is_weak(c->clients, opts->min_class_clients)), &bad);
    }
    if (x->feature_importance) {
        const Glassbox__Tensor *t = x->feature_importance;
        size_t n = s_cells(t);
        s_decode(t, map);
        s_stats_t st = s_stats(map, n);
        json_t *fi = json_object(), *values = json_array();
        s_set(o, "feature_importance", fi, &bad);
        if (fi && values) {
            s_set(fi, "count", json_integer((json_int_t)x->count), &bad);
            s_set_range(fi, &st, &bad);
            s_set(fi, "sum", gb_json_real(st.sum), &bad);
            snprintf(text, sizeof text, "explanation-%llu-importance.png", r);
            s_set(fi, "heatmap", json_string(text), &bad);
            for (size_t i = 0; i < n && !bad; i++)
                bad |= json_array_append_new(values, gb_json_real(map[i])) != 0;
            s_set(fi, "values", values, &bad);
        } else {
            bad = true;
            json_decref(values);
        }
    } else {
        s_set(o, "feature_importance", json_null(), &bad);
    }
    json_t *dist = json_object(), *clients = json_array();
    s_set(o, "distance", dist, &bad);
    if (dist && clients) {
        s_set(dist, "measure", json_string(GB_EXPLAIN_MERGE_MEASURE), &bad);
        s_set(dist, "clients", clients, &bad);
        for (size_t i = 0; i < n_distance && !bad; i++)
            bad |= json_array_append_new(
                       clients, json_pack("{s:o, s:o}", "client", gb_json_string(distance[i]->key),
                                          "distance",
                                          gb_json_real(strtod(distance[i]->value, NULL)))) != 0;
    } else {
        bad = true;
        json_decref(clients);
    }
    s_set(o, "min_class_clients", json_integer(opts->min_class_clients), &bad);
    s_set(o, "unexplained_classes", s_unexplained(x, names), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int gb_explain_report_write(const char *dir, uint64_t round,
                            const Glassbox__Explanation *aggregate,
                            Glassbox__KeyValue *const *distance, size_t n_distance,
                            gb_error_t *err)
{
    return gb_explain_report_write_named(dir, round, aggregate, distance, n_distance, NULL, err);
}

/* The support part of a class's heatmap title: "3 clients", or with too
 * few "1 client: weak", so that a grid of pictures says which maps one
 * client's data drew. */
static void s_support_title(char *buf, size_t cap, uint32_t clients, uint32_t min)
{
    snprintf(buf, cap, "%u client%s%s", (unsigned)clients, clients == 1 ? "" : "s",
             gb_explain_report_is_weak(clients, min) ? ": weak" : "");
}

int gb_explain_report_write_named(const char *dir, uint64_t round,
                                  const Glassbox__Explanation *aggregate,
                                  Glassbox__KeyValue *const *distance, size_t n_distance,
                                  const gb_explain_report_opts_t *opts, gb_error_t *err)
{
    static const gb_explain_report_opts_t none = {NULL, 0};
    if (!opts)
        opts = &none;
    const gb_class_names_t *names = opts->names;
    if (!dir || !*dir || !aggregate)
        return gb_error_set(err, GB_EINVAL, "explanation report: no %s given",
                            aggregate ? "directory" : "explanation");
    int rc = s_check(round, aggregate, distance, n_distance, err);
    if (rc)
        return rc;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return gb_error_set(err, GB_EIO, "explanation report: cannot create %s: %s", dir,
                            strerror(errno));
    const Glassbox__Tensor *any = aggregate->feature_importance
                                      ? aggregate->feature_importance
                                      : aggregate->classes[0]->mean_attribution;
    size_t cells = s_cells(any);
    /* scratch: the padded rows of s_draw need less than one extra row */
    float *map = gb_malloc(cells * sizeof *map);
    float *scratch = gb_malloc((cells + GB_HEATMAP_MAX_CELLS) * sizeof *scratch);
    json_t *doc = NULL;
    char *text = NULL;
    size_t text_len = 0;
    char path[S_MAX_PATH], name[96], title[256], support[64];
    unsigned long long r = (unsigned long long)round;
    const char *method = s_method_name(aggregate->method);
    bool gradcam = aggregate->method == GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM;
    if (!map || !scratch) {
        rc = gb_error_set(err, GB_ENOMEM, "explanation report: out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < aggregate->n_classes; i++) {
        const Glassbox__ClassAttribution *c = aggregate->classes[i];
        snprintf(name, sizeof name, "explanation-%llu-class-%u.png", r, (unsigned)c->class_index);
        const char *cname = s_real_name(names, c->class_index);
        s_support_title(support, sizeof support, c->clients, opts->min_class_clients);
        snprintf(title, sizeof title, "round %llu  class %u%s%s  %s  n=%llu  %s", r,
                 (unsigned)c->class_index, cname ? " " : "", cname ? cname : "", method,
                 (unsigned long long)c->count, support);
        if ((rc = s_join(path, dir, name, err)))
            goto cleanup;
        s_decode(c->mean_attribution, map);
        if ((rc = s_draw(path, title, c->mean_attribution, map, scratch, gradcam, err)))
            goto cleanup;
    }
    if (aggregate->feature_importance) {
        snprintf(name, sizeof name, "explanation-%llu-importance.png", r);
        snprintf(title, sizeof title, "round %llu  importance  %s  n=%llu", r, method,
                 (unsigned long long)aggregate->count);
        if ((rc = s_join(path, dir, name, err)))
            goto cleanup;
        s_decode(aggregate->feature_importance, map);
        if ((rc = s_draw(path, title, aggregate->feature_importance, map, scratch, gradcam, err)))
            goto cleanup;
    }
    doc = s_json(round, aggregate, distance, n_distance, opts, map);
    if (!doc) {
        rc = gb_error_set(err, GB_ENOMEM, "explanation report: out of memory for the JSON");
        goto cleanup;
    }
    if ((rc = gb_json_dump(doc, &text, &text_len, err)))
        goto cleanup;
    snprintf(name, sizeof name, "explanation-%llu.json", r);
    if ((rc = s_join(path, dir, name, err)))
        goto cleanup;
    rc = gb_file_write_atomic(path, text, text_len, 0644, err);
cleanup:
    gb_free(map);
    gb_free(scratch);
    gb_free(text);
    json_decref(doc);
    return rc;
}
