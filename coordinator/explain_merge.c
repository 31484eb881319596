/* The round's explanation merger: exact weighted sums of the clients' maps
 * (weights from the caller, see the header), the feature importance each
 * client sent (kept for leave-one-out), and the aggregate Explanation and
 * distances built from them at finish. The report (JSON and PNG files)
 * lives in explain_report.c.
 *
 * Shape of the state. The sums are one block of (classes + 1) x cells
 * gb_exact_sum_t (exact_sum.h): class c's sums at c x cells, the feature
 * importance's after the last class, with two totals per row: the weight
 * (the means' divisor) and the clients' counts (only published). The
 * clients' importance maps are one block of n x cells floats in add order;
 * a second array holds the clients' indices sorted by id, which both finds a
 * repeated id by binary search and gives finish its fixed order (the
 * distances' order and the quality metrics' summation order). Metric names
 * are interned into a fixed table of GB_ENVELOPE_MAX_METRICS names (the most
 * a Publication's explanation may carry), each client's values kept as
 * (name, value) pairs.
 *
 * add() works in three steps, so a refusal changes nothing: check the
 * header-level fields; reserve room (buffers only grow, and room that grew
 * before a later refusal is invisible to the round); read every value,
 * checking it, into room the round does not count yet; then commit. The
 * class maps are read twice (check, then add) rather than copied: they are
 * not kept, and a second pass over bytes just read is cheaper than a copy
 * the size of the whole explanation. */
#include "explain_merge.h"

#include "class_drift.h"
#include "exact_sum.h"
#include "net/envelope.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/log.h"

#include "explain/divergence.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of a formatted distance ("0.123456789"). */
#define S_DISTANCE_MAX 32

typedef struct {
    char *id;       /* client id, owned */
    uint64_t weight; /* w: its importance's and quality metrics' weight */
    size_t q_first; /* its quality values are q[q_first .. q_first + q_n) */
    size_t q_n;     /* how many */
} s_client_t;

typedef struct {
    size_t name;  /* index into names */
    double value; /* the client's value */
} s_quality_t;

struct gb_explain_merge {
    size_t max_clients;              /* clients accepted per round */
    uint64_t round;                  /* current or last round */
    bool open;                       /* begun and not finished */
    Glassbox__ExplainMethod method;  /* the round's method */
    gb_shape_t shape;                /* the round's map shape */
    size_t cells;                    /* floats per map */
    int n_classes;                   /* the round's class count */
    uint64_t cap;                    /* the round's cap on a client's weight (0: none) */
    gb_exact_sum_t *sums;            /* (n_classes + 1) x cells: class maps, then importance */
    size_t sums_cap;                 /* sums allocated */
    uint64_t *weights;               /* n_classes + 1 weight totals of the rows of sums */
    uint64_t *counts;                /* n_classes + 1 count totals (published, weigh nothing) */
    uint32_t *supporters;            /* n_classes + 1: clients that had each row's class (the
                                        last row: every client added) */
    size_t counts_cap;               /* entries allocated in weights, counts, supporters */
    float *fi;                       /* n x cells: each client's importance, add order */
    size_t fi_cap;                   /* floats allocated */
    s_client_t *clients;             /* n clients, add order */
    size_t *by_id;                   /* n indices into clients, sorted by id */
    size_t n;                        /* clients added this round */
    size_t clients_cap;              /* entries allocated in clients and by_id */
    s_quality_t *q;                  /* n_q quality values of all clients */
    size_t n_q;                      /* values kept */
    size_t q_cap;                    /* entries allocated */
    size_t n_names;                  /* metric names interned this round */
    char names[GB_ENVELOPE_MAX_METRICS][GB_ENVELOPE_MAX_METRIC_NAME + 1]; /* their text */
    gb_class_drift_t *drift;         /* which classes moved for each client (class_drift.h) */
};

/* ---- small helpers ------------------------------------------------------- */

/* A client id the Publication accepts: 1..GB_ENVELOPE_MAX_NAME bytes of
 * [A-Za-z0-9_.-] (net/envelope.c checks explanation_distance keys so). */
static bool s_id_ok(const char *id)
{
    size_t len = strnlen(id, GB_ENVELOPE_MAX_NAME + 1);
    if (len == 0 || len > GB_ENVELOPE_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* Position of id in by_id (where it is, or where it would go); *found says
 * which. */
static size_t s_find(const gb_explain_merge_t *m, const char *id, bool *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->clients[m->by_id[mid]].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Index of name in the round's table, or n_names when absent. */
static size_t s_name_index(const gb_explain_merge_t *m, const char *name)
{
    size_t i = 0;
    while (i < m->n_names && strcmp(m->names[i], name) != 0)
        i++;
    return i;
}

/* Checks a tensor against the round's map shape; GB_ESHAPE when it differs
 * (rank, a dimension, or a data length that does not fit). */
static int s_check_shape(const gb_explain_merge_t *m, const Glassbox__Tensor *t, const char *field,
                         gb_error_t *err)
{
    unsigned long long r = (unsigned long long)m->round;
    char want[64];
    gb_shape_format(&m->shape, want, sizeof want);
    if (!t)
        return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: %s is missing", r,
                             field);
    bool same = t->n_shape == (size_t)m->shape.rank && (t->shape || t->n_shape == 0);
    for (size_t i = 0; same && i < t->n_shape; i++)
        same = t->shape[i] == (uint32_t)m->shape.dim[i];
    if (!same) {
        char got[96] = "";
        size_t len = 0;
        for (size_t i = 0; i < t->n_shape && t->shape && len < sizeof got - 16; i++)
            len += (size_t)snprintf(got + len, sizeof got - len, "%s%u", i ? "x" : "",
                                    (unsigned)t->shape[i]);
        return gb_error_warn(err, GB_ESHAPE,
                             "explanation merge: round %llu: %s has shape %s, not the round's "
                             "map shape %s",
                             r, field, len ? got : "(none)", want);
    }
    if (t->data.len != m->cells * 4 || (m->cells && !t->data.data))
        return gb_error_warn(err, GB_ESHAPE,
                             "explanation merge: round %llu: %s has %zu bytes, the map shape %s "
                             "needs %zu",
                             r, field, t->data.len, want, m->cells * 4);
    return 0;
}

/* Reads a map's floats (into out, when not NULL), checking each is finite
 * and, for the importance, not negative. */
static int s_read_map(const gb_explain_merge_t *m, const Glassbox__Tensor *t, const char *field,
                      bool importance, float *out, gb_error_t *err)
{
    for (size_t i = 0; i < m->cells; i++) {
        float v = gb_wire_float_le(t->data.data + 4 * i);
        if (!isfinite(v))
            return gb_error_warn(err, GB_ERANGE,
                                 "explanation merge: round %llu: %s value %zu of %zu is %s",
                                 (unsigned long long)m->round, field, i, m->cells,
                                 isnan(v) ? "NaN" : "infinite");
        if (importance && v < 0)
            return gb_error_warn(err, GB_EINVAL,
                                 "explanation merge: round %llu: %s value %zu is %g: a mean "
                                 "|attribution| cannot be negative",
                                 (unsigned long long)m->round, field, i, (double)v);
        if (out)
            out[i] = v;
    }
    return 0;
}

/* ---- life cycle ------------------------------------------------------------ */

gb_explain_merge_t *gb_explain_merge_new(size_t max_clients, gb_error_t *err)
{
    if (max_clients < 1 || max_clients > GB_EXPLAIN_MERGE_MAX_CLIENTS) {
        gb_error_set(err, GB_EINVAL, "explanation merge: max_clients %zu is outside 1..%zu",
                     max_clients, GB_EXPLAIN_MERGE_MAX_CLIENTS);
        return NULL;
    }
    gb_explain_merge_t *m = gb_calloc(1, sizeof *m);
    if (!m) {
        gb_error_set(err, GB_ENOMEM, "explanation merge: out of memory");
        return NULL;
    }
    m->max_clients = max_clients;
    if (!(m->drift = gb_class_drift_new(err))) {
        gb_free(m);
        return NULL;
    }
    return m;
}

/* Frees the ids of the round's clients and forgets them. */
static void s_drop_clients(gb_explain_merge_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        gb_free(m->clients[i].id);
    m->n = 0;
    m->n_q = 0;
    m->n_names = 0;
}

void gb_explain_merge_destroy(gb_explain_merge_t **pm)
{
    if (!pm || !*pm)
        return;
    gb_explain_merge_t *m = *pm;
    s_drop_clients(m);
    gb_free_aligned(m->sums);
    gb_free(m->weights);
    gb_free(m->counts);
    gb_free(m->supporters);
    gb_free(m->fi);
    gb_free(m->clients);
    gb_free(m->by_id);
    gb_free(m->q);
    gb_class_drift_destroy(&m->drift);
    gb_free(m);
    *pm = NULL;
}

int gb_explain_merge_begin(gb_explain_merge_t *m, uint64_t round, Glassbox__ExplainMethod method,
                           const gb_shape_t *shape, int n_classes, uint64_t cap_weight,
                           gb_error_t *err)
{
    if (!m || !shape)
        return gb_error_set(err, GB_EINVAL, "explanation merge: begin without %s",
                            m ? "a map shape" : "a merger");
    if (round == 0)
        return gb_error_set(err, GB_EINVAL, "explanation merge: round 0 (rounds start at 1)");
    if (method < GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS ||
        method > GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM)
        return gb_error_set(err, GB_EINVAL, "explanation merge: round %llu: method %d is not an "
                            "attribution method", (unsigned long long)round, (int)method);
    if (shape->rank < 1 || shape->rank > GB_SHAPE_MAX_RANK)
        return gb_error_set(err, GB_EINVAL, "explanation merge: round %llu: map rank %d is "
                            "outside 1..%d", (unsigned long long)round, shape->rank,
                            GB_SHAPE_MAX_RANK);
    size_t cells = 1;
    for (int i = 0; i < shape->rank; i++) {
        if (shape->dim[i] < 1)
            return gb_error_set(err, GB_EINVAL, "explanation merge: round %llu: map dimension "
                                "%d is %d", (unsigned long long)round, i, shape->dim[i]);
        if ((size_t)shape->dim[i] > GB_EXPLAIN_MERGE_MAX_CELLS / cells)
            return gb_error_set(err, GB_ERANGE, "explanation merge: round %llu: map of more "
                                "than %zu cells", (unsigned long long)round,
                                GB_EXPLAIN_MERGE_MAX_CELLS);
        cells *= (size_t)shape->dim[i];
    }
    if (n_classes < 1 || n_classes > GB_ENVELOPE_MAX_CLASSES)
        return gb_error_set(err, GB_EINVAL, "explanation merge: round %llu: %d classes is "
                            "outside 1..%d", (unsigned long long)round, n_classes,
                            GB_ENVELOPE_MAX_CLASSES);
    if ((size_t)n_classes > GB_EXPLAIN_MERGE_MAX_CELLS / cells)
        return gb_error_set(err, GB_ERANGE, "explanation merge: round %llu: %d classes x %zu "
                            "cells is more than %zu", (unsigned long long)round, n_classes,
                            cells, GB_EXPLAIN_MERGE_MAX_CELLS);
    size_t rows = (size_t)n_classes + 1, need = rows * cells;
    gb_exact_sum_t *sums = NULL;
    uint64_t *weights = NULL, *counts = NULL;
    uint32_t *supporters = NULL;
    int drc = gb_class_drift_begin(m->drift, n_classes, cells, err);
    if (drc)
        return gb_error_prefix(err, drc, "explanation merge: ");
    if (need > m->sums_cap && !(sums = gb_alloc_aligned(need * sizeof *sums)))
        goto nomem;
    if (rows > m->counts_cap && (!(weights = gb_malloc(rows * sizeof *weights)) ||
                                 !(counts = gb_malloc(rows * sizeof *counts)) ||
                                 !(supporters = gb_malloc(rows * sizeof *supporters))))
        goto nomem;
    if (sums) {
        gb_free_aligned(m->sums);
        m->sums = sums;
        m->sums_cap = need;
    }
    if (supporters) {
        gb_free(m->weights);
        gb_free(m->counts);
        gb_free(m->supporters);
        m->weights = weights;
        m->counts = counts;
        m->supporters = supporters;
        m->counts_cap = rows;
    }
    if (m->open && m->n)
        gb_log_info("explanation merge: round %llu begun again; %zu explanations of round %llu "
                    "dropped", (unsigned long long)round, m->n, (unsigned long long)m->round);
    s_drop_clients(m);
    memset(m->sums, 0, need * sizeof *m->sums);
    memset(m->weights, 0, rows * sizeof *m->weights);
    memset(m->counts, 0, rows * sizeof *m->counts);
    memset(m->supporters, 0, rows * sizeof *m->supporters);
    m->round = round;
    m->method = method;
    m->shape = *shape;
    m->cells = cells;
    m->n_classes = n_classes;
    m->cap = cap_weight;
    m->open = true;
    return 0;
nomem:
    gb_free_aligned(sums);
    gb_free(weights);
    gb_free(counts);
    return gb_error_set(err, GB_ENOMEM, "explanation merge: round %llu: out of memory for %zu "
                        "sums", (unsigned long long)round, need);
}

/* ---- add ------------------------------------------------------------------- */

/* The client's weight w in the round: the caller's weight (its FedAvg
 * weight), no more than the round's cap when there is one. */
static uint64_t s_weight(const gb_explain_merge_t *m, uint64_t weight)
{
    return m->cap && weight > m->cap ? m->cap : weight;
}

/* The sum of x's class counts; 128 bits, as GB_ENVELOPE_MAX_CLASSES counts
 * of up to max_count each (any uint64) may pass 2^64. */
static unsigned __int128 s_class_total(const Glassbox__Explanation *x)
{
    unsigned __int128 total = 0;
    for (size_t i = 0; i < x->n_classes; i++)
        total += x->classes[i]->count;
    return total;
}

/* A class's share of the client's weight w: max(1, floor(w x count /
 * total)). The counts only split w, so inflating them gains nothing; the
 * share is an integer for the exact sums, at most w (count <= total), and
 * at least 1 so every class the client has enters that class's mean.
 * w <= GB_EXACT_SUM_MAX_WEIGHT and count < 2^64: the product fits 128 bits. */
static uint64_t s_class_weight(uint64_t w, uint64_t count, unsigned __int128 total)
{
    uint64_t share = (uint64_t)((unsigned __int128)w * count / total);
    return share ? share : 1;
}

/* Checks that the class weights of x (w split by its class counts) keep
 * every class's weight total within GB_EXACT_SUM_MAX_WEIGHT, the exact sums'
 * bound. The shares total at most w plus one per class, so this only bites
 * a round already near the bound. */
static int s_check_class_weights(const gb_explain_merge_t *m, const char *id,
                                 const Glassbox__Explanation *x, uint64_t w, gb_error_t *err)
{
    unsigned __int128 total = s_class_total(x);
    for (size_t i = 0; i < x->n_classes; i++) {
        const Glassbox__ClassAttribution *c = x->classes[i];
        uint64_t wc = s_class_weight(w, c->count, total);
        if (wc > GB_EXACT_SUM_MAX_WEIGHT - m->weights[c->class_index])
            return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: client '%s': "
                                 "class %u weight %llu would take the class's total weight "
                                 "past %llu", (unsigned long long)m->round, id,
                                 (unsigned)c->class_index, (unsigned long long)wc,
                                 (unsigned long long)GB_EXACT_SUM_MAX_WEIGHT);
    }
    return 0;
}

/* Checks the quality metrics of x: names present and short enough for the
 * table, none twice, values in range, and room in the table for the names it
 * does not hold yet. */
static int s_check_quality(const gb_explain_merge_t *m, const Glassbox__Explanation *x,
                           gb_error_t *err)
{
    unsigned long long r = (unsigned long long)m->round;
    size_t fresh = 0;
    if (x->n_quality > GB_ENVELOPE_MAX_METRICS)
        return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: %zu quality metrics, "
                             "more than %d", r, x->n_quality, GB_ENVELOPE_MAX_METRICS);
    if (x->n_quality && !x->quality)
        return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: quality missing", r);
    for (size_t i = 0; i < x->n_quality; i++) {
        const Glassbox__Metric *q = x->quality[i];
        size_t len = q && q->name ? strnlen(q->name, GB_ENVELOPE_MAX_METRIC_NAME + 1) : 0;
        if (len == 0 || len > GB_ENVELOPE_MAX_METRIC_NAME)
            return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: quality[%zu] "
                                 "has no name of 1..%d bytes", r, i, GB_ENVELOPE_MAX_METRIC_NAME);
        for (size_t j = 0; j < i; j++)
            if (strcmp(x->quality[j]->name, q->name) == 0)
                return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: quality "
                                     "metric '%s' appears twice", r, q->name);
        if (!(fabs(q->value) <= GB_EXPLAIN_MERGE_MAX_QUALITY))
            return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: quality metric "
                                 "'%s' is %g, outside +-%g", r, q->name, q->value,
                                 GB_EXPLAIN_MERGE_MAX_QUALITY);
        if (s_name_index(m, q->name) == m->n_names)
            fresh++;
    }
    if (fresh > GB_ENVELOPE_MAX_METRICS - m->n_names)
        return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: %zu new quality "
                             "metric names would make more than %d in the round", r, fresh,
                             GB_ENVELOPE_MAX_METRICS);
    return 0;
}

/* Room for one more client and q_more quality values; buffers only grow,
 * never past max_clients clients. */
static int s_reserve(gb_explain_merge_t *m, size_t q_more, gb_error_t *err)
{
    size_t want = m->n + 1;
    if (m->clients_cap < want) {
        size_t target = m->clients_cap * 2 > 8 ? m->clients_cap * 2 : 8;
        if (target > m->max_clients)
            target = m->max_clients;
        s_client_t *c = gb_realloc(m->clients, target * sizeof *c);
        if (!c)
            goto nomem;
        m->clients = c;
        size_t *b = gb_realloc(m->by_id, target * sizeof *b);
        if (!b)
            goto nomem; /* clients merely grew: the round sees nothing */
        m->by_id = b;
        m->clients_cap = target;
    }
    if (m->cells > SIZE_MAX / sizeof(float) / m->clients_cap)
        goto nomem;
    if (m->fi_cap < want * m->cells) {
        size_t floats = m->clients_cap * m->cells;
        /* grow with the clients actually seen, not to clients_cap at once */
        if (floats > want * 2 * m->cells)
            floats = want * 2 * m->cells;
        float *fi = gb_realloc(m->fi, floats * sizeof *fi);
        if (!fi)
            goto nomem;
        m->fi = fi;
        m->fi_cap = floats;
    }
    if (gb_class_drift_reserve(m->drift, m->n, NULL) != 0)
        goto nomem;
    if (q_more > m->q_cap - m->n_q) {
        size_t target = m->q_cap * 2 > m->n_q + q_more ? m->q_cap * 2 : m->n_q + q_more;
        s_quality_t *q = gb_realloc(m->q, target * sizeof *q);
        if (!q)
            goto nomem;
        m->q = q;
        m->q_cap = target;
    }
    return 0;
nomem:
    return gb_error_set(err, GB_ENOMEM, "explanation merge: round %llu: out of memory keeping "
                        "explanation %zu", (unsigned long long)m->round, want);
}

int gb_explain_merge_add(gb_explain_merge_t *m, const char *client_id,
                         const Glassbox__Explanation *x, uint64_t weight, uint64_t max_count,
                         gb_error_t *err)
{
    if (!m || !client_id || !x)
        return gb_error_set(err, GB_EINVAL, "explanation merge: add without %s",
                            !m ? "a merger" : !client_id ? "a client id" : "an explanation");
    unsigned long long r = (unsigned long long)m->round;
    if (!m->open)
        return gb_error_set(err, GB_EINVAL,
                            "explanation merge: no round open (add before begin or after finish)");
    if (!s_id_ok(client_id))
        return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: client id is not "
                             "1..%d bytes of [A-Za-z0-9_.-]", r, GB_ENVELOPE_MAX_NAME);
    /* the caller's values, which it has bounded: misuse, not logged */
    if (weight == 0 || max_count == 0)
        return gb_error_set(err, GB_EINVAL, "explanation merge: round %llu: client '%s' with "
                            "%s 0 (must be >= 1)", r, client_id, weight ? "max_count" : "weight");
    bool dup;
    size_t pos = s_find(m, client_id, &dup);
    if (dup)
        return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: client '%s' was "
                             "added already", r, client_id);
    if (m->n >= m->max_clients)
        return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: already %zu "
                             "explanations, the maximum", r, m->n);
    if (x->method != m->method)
        return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: client '%s' "
                             "explains by method %d, the round by %d", r, client_id,
                             (int)x->method, (int)m->method);
    if (x->round != m->round)
        return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: client '%s' "
                             "explains the model of round %llu", r, client_id,
                             (unsigned long long)x->round);
    int rc = s_check_shape(m, x->feature_importance, "feature_importance", err);
    if (rc)
        return rc;
    const uint64_t fi_row = (uint64_t)m->n_classes;
    const uint64_t w = s_weight(m, weight);
    if (x->count == 0)
        return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: client '%s' has "
                             "a feature importance with count 0", r, client_id);
    if (w > GB_EXACT_SUM_MAX_WEIGHT - m->weights[fi_row])
        return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: client '%s': "
                             "weight %llu would take the round's total weight past %llu", r,
                             client_id, (unsigned long long)w,
                             (unsigned long long)GB_EXACT_SUM_MAX_WEIGHT);
    /* a count above what the client joined with is one it cannot have seen */
    if (x->count > max_count)
        return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: client '%s': count "
                             "%llu is more than the %llu samples it joined with", r, client_id,
                             (unsigned long long)x->count, (unsigned long long)max_count);
    if (x->count > GB_EXACT_SUM_MAX_WEIGHT - m->counts[fi_row])
        return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: client '%s': count "
                             "%llu would take the round's total past %llu", r, client_id,
                             (unsigned long long)x->count,
                             (unsigned long long)GB_EXACT_SUM_MAX_WEIGHT);
    if (x->n_classes && !x->classes)
        return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: classes missing", r);
    char field[96];
    /* The decoder already refuses a class twice; the bitmap costs nothing and
     * keeps the weight bound of s_check_class_weights (which the exact sums
     * rest on) true for an Explanation built in memory too. */
    uint64_t seen[(GB_ENVELOPE_MAX_CLASSES + 63) / 64] = {0};
    for (size_t i = 0; i < x->n_classes; i++) {
        const Glassbox__ClassAttribution *c = x->classes[i];
        snprintf(field, sizeof field, "classes[%zu].mean_attribution", i);
        if (!c)
            return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: classes[%zu] "
                                 "is missing", r, i);
        if (c->class_index >= (uint32_t)m->n_classes)
            return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: client '%s': "
                                 "class %u is not below the round's %d classes", r, client_id,
                                 (unsigned)c->class_index, m->n_classes);
        uint64_t bit = (uint64_t)1 << (c->class_index % 64);
        if (seen[c->class_index / 64] & bit)
            return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: client '%s': "
                                 "class %u appears twice", r, client_id,
                                 (unsigned)c->class_index);
        seen[c->class_index / 64] |= bit;
        if (c->count == 0)
            return gb_error_warn(err, GB_EINVAL, "explanation merge: round %llu: client '%s': "
                                 "class %u has a map with count 0", r, client_id,
                                 (unsigned)c->class_index);
        if (c->count > max_count)
            return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: client '%s': "
                                 "classes[%zu].count %llu is more than the %llu samples it "
                                 "joined with", r, client_id, i, (unsigned long long)c->count,
                                 (unsigned long long)max_count);
        if (c->count > GB_EXACT_SUM_MAX_WEIGHT - m->counts[c->class_index])
            return gb_error_warn(err, GB_ERANGE, "explanation merge: round %llu: client '%s': "
                                 "class %u count %llu would take the class's total past %llu",
                                 r, client_id, (unsigned)c->class_index,
                                 (unsigned long long)c->count,
                                 (unsigned long long)GB_EXACT_SUM_MAX_WEIGHT);
        if ((rc = s_check_shape(m, c->mean_attribution, field, err)))
            return rc;
    }
    if ((rc = s_check_class_weights(m, client_id, x, w, err)) ||
        (rc = s_check_quality(m, x, err)))
        return rc;

    /* Room first (invisible to the round), then the values into it. */
    if ((rc = s_reserve(m, x->n_quality, err)))
        return rc;
    float *row = m->fi + m->n * m->cells;
    if ((rc = s_read_map(m, x->feature_importance, "feature_importance", true, row, err)))
        return rc;
    for (size_t i = 0; i < x->n_classes; i++) {
        snprintf(field, sizeof field, "classes[%zu].mean_attribution", i);
        if ((rc = s_read_map(m, x->classes[i]->mean_attribution, field, false, NULL, err)))
            return rc;
    }
    char *id = gb_strdup(client_id);
    if (!id)
        return gb_error_set(err, GB_ENOMEM, "explanation merge: round %llu: out of memory", r);

    /* Commit: nothing below can fail. The maps enter with the weights, the
     * counts only into the published totals. */
    gb_exact_sum_t *fs = m->sums + fi_row * m->cells;
    for (size_t i = 0; i < m->cells; i++)
        gb_exact_sum_add(&fs[i], row[i], w);
    m->weights[fi_row] += w;
    m->counts[fi_row] += x->count;
    m->supporters[fi_row]++;
    unsigned __int128 class_total = s_class_total(x);
    for (size_t i = 0; i < x->n_classes; i++) {
        const Glassbox__ClassAttribution *c = x->classes[i];
        uint64_t wc = s_class_weight(w, c->count, class_total);
        gb_exact_sum_t *cs = m->sums + (size_t)c->class_index * m->cells;
        const uint8_t *le = c->mean_attribution->data.data;
        for (size_t k = 0; k < m->cells; k++)
            gb_exact_sum_add(&cs[k], gb_wire_float_le(le + 4 * k), wc);
        gb_class_drift_add(m->drift, m->n, c->class_index, le);
        m->weights[c->class_index] += wc;
        m->counts[c->class_index] += c->count;
        m->supporters[c->class_index]++;
    }
    s_client_t *cl = &m->clients[m->n];
    cl->id = id;
    cl->weight = w;
    cl->q_first = m->n_q;
    cl->q_n = x->n_quality;
    for (size_t i = 0; i < x->n_quality; i++) {
        const Glassbox__Metric *q = x->quality[i];
        size_t k = s_name_index(m, q->name);
        if (k == m->n_names) {
            memcpy(m->names[k], q->name, strlen(q->name) + 1);
            m->n_names++;
        }
        m->q[m->n_q].name = k;
        m->q[m->n_q].value = q->value;
        m->n_q++;
    }
    memmove(m->by_id + pos + 1, m->by_id + pos, (m->n - pos) * sizeof *m->by_id);
    m->by_id[pos] = m->n;
    m->n++;
    return 0;
}

/* ---- finish ---------------------------------------------------------------- */

void gb_explain_merge_result_free(gb_explain_merge_result_t *r)
{
    if (!r)
        return;
    if (r->explanation)
        glassbox__explanation__free_unpacked(r->explanation, gb_wire_allocator());
    for (size_t i = 0; r->distance && i < r->n_distance; i++)
        if (r->distance[i])
            glassbox__key_value__free_unpacked(r->distance[i], gb_wire_allocator());
    gb_free(r->distance);
    gb_free(r->moved);
    gb_free(r->moved_share);
    gb_free(r->moved_classes);
    gb_free(r->moved_class_ratio);
    memset(r, 0, sizeof *r);
}

/* The distance entry of client_id in r (by binary search: the entries are
 * sorted by id), or r->n_distance when it has none. */
static size_t s_entry(const gb_explain_merge_result_t *r, const char *client_id)
{
    size_t lo = 0, hi = r->n_distance;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->distance[mid]->key, client_id);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->n_distance;
}

/* Entry k's slots of `per` in idx and val: how many are used (before the
 * first UINT32_MAX), pointed at through *idx_out and *val_out when given. */
static size_t s_slots(const uint32_t *idx, const float *val, size_t k, size_t per,
                      const uint32_t **idx_out, const float **val_out)
{
    const uint32_t *m = idx + k * per;
    size_t n = 0;
    while (n < per && m[n] != UINT32_MAX)
        n++;
    if (idx_out)
        *idx_out = m;
    if (val_out)
        *val_out = val + k * per;
    return n;
}

size_t gb_explain_merge_moved(const gb_explain_merge_result_t *r, const char *client_id,
                              const uint32_t **cells, const float **share)
{
    if (!r || !client_id || !r->moved || !r->moved_share)
        return 0;
    size_t k = s_entry(r, client_id);
    return k == r->n_distance ? 0
                              : s_slots(r->moved, r->moved_share, k, GB_EXPLAIN_MERGE_MOVED,
                                        cells, share);
}

size_t gb_explain_merge_moved_classes(const gb_explain_merge_result_t *r, const char *client_id,
                                      const uint32_t **classes, const float **ratio)
{
    if (!r || !client_id || !r->moved_classes || !r->moved_class_ratio)
        return 0;
    size_t k = s_entry(r, client_id);
    return k == r->n_distance ? 0
                              : s_slots(r->moved_classes, r->moved_class_ratio, k,
                                        GB_EXPLAIN_MERGE_CLASSES, classes, ratio);
}

/* A new Tensor of the round's shape holding the means of row `row` of the
 * sums; NULL on GB_ENOMEM. */
static Glassbox__Tensor *s_mean_tensor(const gb_explain_merge_t *m, size_t row)
{
    Glassbox__Tensor *t = gb_malloc(sizeof *t);
    if (!t)
        return NULL;
    glassbox__tensor__init(t);
    t->shape = gb_malloc((size_t)m->shape.rank * sizeof *t->shape);
    t->data.data = gb_malloc(m->cells * 4);
    if (!t->shape || !t->data.data) {
        glassbox__tensor__free_unpacked(t, gb_wire_allocator());
        return NULL;
    }
    t->n_shape = (size_t)m->shape.rank;
    for (int i = 0; i < m->shape.rank; i++)
        t->shape[i] = (uint32_t)m->shape.dim[i];
    t->data.len = m->cells * 4;
    const gb_exact_sum_t *s = m->sums + row * m->cells;
    for (size_t i = 0; i < m->cells; i++) {
        float v = gb_exact_sum_mean(&s[i], m->weights[row]);
        gb_wire_floats_to_le(t->data.data + 4 * i, &v, 1);
    }
    return t;
}

/* The quality metrics: per name (sorted), the mean over the clients that
 * report it weighted by their w, summed in client-id order. */
static int s_quality(const gb_explain_merge_t *m, Glassbox__Explanation *e)
{
    if (m->n_names == 0)
        return 0;
    size_t order[GB_ENVELOPE_MAX_METRICS];
    uint64_t weight[GB_ENVELOPE_MAX_METRICS] = {0};
    double sum[GB_ENVELOPE_MAX_METRICS] = {0};
    for (size_t i = 0; i < m->n_names; i++) { /* insertion sort: at most 256 names */
        size_t j = i;
        while (j > 0 && strcmp(m->names[order[j - 1]], m->names[i]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (size_t k = 0; k < m->n; k++) {
        const s_client_t *c = &m->clients[m->by_id[k]];
        for (size_t j = 0; j < c->q_n; j++)
            weight[m->q[c->q_first + j].name] += c->weight;
    }
    /* Weights below 1, so no term is larger than its value: no overflow. */
    for (size_t k = 0; k < m->n; k++) {
        const s_client_t *c = &m->clients[m->by_id[k]];
        for (size_t j = 0; j < c->q_n; j++) {
            const s_quality_t *q = &m->q[c->q_first + j];
            sum[q->name] += ((double)c->weight / (double)weight[q->name]) * q->value;
        }
    }
    e->quality = gb_calloc(m->n_names, sizeof *e->quality);
    if (!e->quality)
        return GB_ENOMEM;
    e->n_quality = m->n_names;
    for (size_t i = 0; i < m->n_names; i++) {
        Glassbox__Metric *q = gb_malloc(sizeof *q);
        if (!q)
            return GB_ENOMEM;
        glassbox__metric__init(q);
        e->quality[i] = q;
        if (!(q->name = gb_strdup(m->names[order[i]])))
            return GB_ENOMEM;
        q->value = sum[order[i]];
    }
    return 0;
}

/* The aggregate Explanation into *out; GB_ENOMEM. */
static int s_explanation(const gb_explain_merge_t *m, Glassbox__Explanation **out)
{
    Glassbox__Explanation *e = gb_malloc(sizeof *e);
    if (!e)
        return GB_ENOMEM;
    glassbox__explanation__init(e);
    e->method = m->method;
    e->round = m->round;
    e->count = m->counts[m->n_classes];
    size_t present = 0;
    for (int c = 0; c < m->n_classes; c++)
        present += m->counts[c] > 0;
    int rc = 0;
    if (present && !(e->classes = gb_calloc(present, sizeof *e->classes)))
        rc = GB_ENOMEM;
    if (rc == 0)
        e->n_classes = present;
    for (int c = 0, k = 0; rc == 0 && c < m->n_classes; c++) {
        if (!m->counts[c])
            continue;
        Glassbox__ClassAttribution *ca = gb_malloc(sizeof *ca);
        if (!ca) {
            rc = GB_ENOMEM;
            break;
        }
        glassbox__class_attribution__init(ca);
        e->classes[k++] = ca;
        ca->class_index = (uint32_t)c;
        ca->count = m->counts[c];
        ca->clients = m->supporters[c];
        if (!(ca->mean_attribution = s_mean_tensor(m, (size_t)c)))
            rc = GB_ENOMEM;
    }
    if (rc == 0 && !(e->feature_importance = s_mean_tensor(m, (size_t)m->n_classes)))
        rc = GB_ENOMEM;
    if (rc == 0)
        rc = s_quality(m, e);
    if (rc) {
        glassbox__explanation__free_unpacked(e, gb_wire_allocator());
        return rc;
    }
    *out = e;
    return 0;
}

/* The GB_EXPLAIN_MERGE_MOVED cells where mine's share of its mass most
 * exceeds others' (both as |.| / sum |.|, a vector of zeros uniform, as the
 * divergence reads them), largest first, ties to the lower cell; the rest
 * of cells[] UINT32_MAX. */
static void s_moved(const double *mine, const double *others, size_t n, uint32_t *cells,
                    float *share)
{
    double sm = 0, so = 0;
    for (size_t i = 0; i < n; i++) {
        sm += fabs(mine[i]);
        so += fabs(others[i]);
    }
    double excess[GB_EXPLAIN_MERGE_MOVED];
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        double p = sm > 0 ? fabs(mine[i]) / sm : 1.0 / (double)n;
        double q = so > 0 ? fabs(others[i]) / so : 1.0 / (double)n;
        double e = p - q;
        if (!(e > 0) || (kept == GB_EXPLAIN_MERGE_MOVED && e <= excess[kept - 1]))
            continue;
        size_t at = kept < GB_EXPLAIN_MERGE_MOVED ? kept++ : kept - 1;
        while (at > 0 && excess[at - 1] < e) { /* strictly: the earlier cell wins a tie */
            excess[at] = excess[at - 1];
            cells[at] = cells[at - 1];
            at--;
        }
        excess[at] = e;
        cells[at] = (uint32_t)i;
    }
    for (size_t k = 0; k < GB_EXPLAIN_MERGE_MOVED; k++) {
        share[k] = k < kept ? (float)excess[k] : 0.0f;
        if (k >= kept)
            cells[k] = UINT32_MAX;
    }
}

/* The leave-one-out distances and moved cells, in client-id order, into
 * out; GB_ENOMEM. */
static int s_distances(const gb_explain_merge_t *m, gb_explain_merge_result_t *out)
{
    if (m->n < 2)
        return 0;
    size_t cells = m->cells;
    double *mine = gb_malloc(cells * sizeof *mine);
    double *others = gb_malloc(cells * sizeof *others);
    out->distance = gb_calloc(m->n, sizeof *out->distance);
    out->moved = gb_malloc(m->n * GB_EXPLAIN_MERGE_MOVED * sizeof *out->moved);
    out->moved_share = gb_malloc(m->n * GB_EXPLAIN_MERGE_MOVED * sizeof *out->moved_share);
    if (!mine || !others || !out->distance || !out->moved || !out->moved_share) {
        gb_free(mine);
        gb_free(others);
        return GB_ENOMEM;
    }
    out->n_distance = m->n;
    const gb_exact_sum_t *fs = m->sums + (size_t)m->n_classes * cells;
    const uint64_t total = m->weights[m->n_classes];
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < m->n; k++) {
        const s_client_t *c = &m->clients[m->by_id[k]];
        const float *row = m->fi + m->by_id[k] * cells;
        for (size_t i = 0; i < cells; i++) {
            /* everyone's sum minus exactly what this client added, w * v:
             * neither its map nor its weight moves its reference */
            gb_exact_sum_t s = fs[i];
            gb_exact_sum_add(&s, -row[i], c->weight);
            mine[i] = row[i];
            others[i] = gb_exact_sum_mean(&s, total - c->weight);
        }
        double d = gb_divergence_js(mine, others, cells);
        s_moved(mine, others, cells, out->moved + k * GB_EXPLAIN_MERGE_MOVED,
                out->moved_share + k * GB_EXPLAIN_MERGE_MOVED);
        char value[S_DISTANCE_MAX];
        snprintf(value, sizeof value, "%.9f", d > 0 ? d : 0.0);
        Glassbox__KeyValue *kv = gb_malloc(sizeof *kv);
        if (!kv) {
            rc = GB_ENOMEM;
            break;
        }
        glassbox__key_value__init(kv);
        out->distance[k] = kv;
        char *key = gb_strdup(c->id), *val = gb_strdup(value);
        if (key)
            kv->key = key;
        if (val)
            kv->value = val;
        if (!key || !val)
            rc = GB_ENOMEM;
    }
    gb_free(mine);
    gb_free(others);
    return rc;
}

/* Per distance entry the classes whose maps moved most for that client
 * (class_drift.h), then this round's class maps become the reference of
 * the next; GB_ENOMEM. */
static int s_moved_classes(const gb_explain_merge_t *m, gb_explain_merge_result_t *out)
{
    gb_class_drift_close(m->drift, m->n);
    if (out->n_distance) {
        size_t slots = out->n_distance * GB_EXPLAIN_MERGE_CLASSES;
        out->moved_classes = gb_malloc(slots * sizeof *out->moved_classes);
        out->moved_class_ratio = gb_malloc(slots * sizeof *out->moved_class_ratio);
        if (!out->moved_classes || !out->moved_class_ratio)
            return GB_ENOMEM;
        _Static_assert(GB_EXPLAIN_MERGE_CLASSES == GB_CLASS_DRIFT_TOP, "one slot per class named");
        for (size_t k = 0; k < out->n_distance; k++) {
            uint32_t *c = out->moved_classes + k * GB_EXPLAIN_MERGE_CLASSES;
            float *r = out->moved_class_ratio + k * GB_EXPLAIN_MERGE_CLASSES;
            size_t got = gb_class_drift_top(m->drift, m->by_id[k], c, r);
            for (size_t i = got; i < GB_EXPLAIN_MERGE_CLASSES; i++) {
                c[i] = UINT32_MAX;
                r[i] = 0;
            }
        }
    }
    const Glassbox__Explanation *e = out->explanation;
    for (int c = 0; c < m->n_classes; c++) {
        const uint8_t *le = NULL;
        for (size_t i = 0; e && i < e->n_classes; i++)
            if (e->classes[i]->class_index == (uint32_t)c)
                le = e->classes[i]->mean_attribution->data.data;
        gb_class_drift_set_reference(m->drift, (uint32_t)c, le);
    }
    return 0;
}

int gb_explain_merge_finish(gb_explain_merge_t *m, gb_explain_merge_result_t *out,
                            gb_error_t *err)
{
    if (!m || !out)
        return gb_error_set(err, GB_EINVAL, "explanation merge: finish without %s",
                            m ? "a result" : "a merger");
    memset(out, 0, sizeof *out);
    unsigned long long r = (unsigned long long)m->round;
    if (!m->open)
        return gb_error_set(err, GB_EINVAL, "explanation merge: no round open to finish");
    if (m->n == 0)
        return gb_error_set(err, GB_EINVAL, "explanation merge: round %llu: no explanation to "
                            "merge", r);
    int rc = s_explanation(m, &out->explanation);
    if (rc == 0)
        rc = s_distances(m, out);
    if (rc == 0)
        rc = s_moved_classes(m, out);
    if (rc) {
        gb_explain_merge_result_free(out);
        return gb_error_set(err, rc, "explanation merge: round %llu: out of memory building the "
                            "aggregate of %zu explanations", r, m->n);
    }
    m->open = false;
    return 0;
}

/* ---- accessors --------------------------------------------------------------- */

uint64_t gb_explain_merge_round(const gb_explain_merge_t *m)
{
    return m ? m->round : 0;
}

int gb_explain_merge_is_open(const gb_explain_merge_t *m)
{
    return m && m->open;
}

size_t gb_explain_merge_clients(const gb_explain_merge_t *m)
{
    return m ? m->n : 0;
}
