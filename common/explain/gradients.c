/* The point stream behind the gradient methods: ig, saliency, gradxinput and
 * smoothgrad.
 *
 * Every method here is a weighted sum of input gradients of the target
 * logit at a few points per sample: IG's path points x' + alpha (x - x')
 * with the quadrature weights, or the input itself with weight 1 for the
 * plain gradient. So the work is one stream of rows (a sample's point),
 * packed into engine batches of the model's planned size across sample
 * boundaries; each batch is one forward, one backward with dout = one-hot
 * of the target logit and dx, and no parameter gradients. A sample being
 * worked on holds a slot: a double accumulator of its weighted gradients,
 * filled in point order (so a sample's result does not depend on which
 * batches its points land in), and, for SmoothGrad, its noisy input.
 *
 * f(x) for IG's completeness comes from the row of the point alpha = 1
 * when the rule has one (trapezoid), else from one extra plain-x row before
 * the sample's first point (Gauss-Legendre: 1 row in steps + 1).
 *
 * Slots live in a FIFO of those with rows left to issue. A new sample is
 * started only when the FIFO is empty, and every slot whose rows are all
 * issued is finished after its batch, so at most `batch` slots are ever busy:
 * the planned batch is also the slot count. A finished IG sample whose
 * completeness error exceeds the tolerance goes back to the FIFO with twice
 * the points (the Gauss-Legendre rules are not nested: all are recomputed);
 * its f(x) is kept. SmoothGrad copies never double, so copies finish in
 * order and their maps are summed in copy order.
 *
 * IG through an affine first layer (conv or dense followed by more layers;
 * the path is a straight line, and an affine map keeps it one): layer 0
 * runs once per sample when it starts, h(x) = L0(x), and once for the
 * baseline per call, and a point's row enters the engine at layer 1 as
 * h(b) + alpha (h(x) - h(b)), which is L0 of the point. Layer 0's Jacobian
 * is the same at every point, so the weighted sum of input gradients is
 * L0's backward of the weighted sum of the gradients at its output: the
 * slot accumulates those, and layer 0's backward runs once per sample when
 * it finishes. For LeNet this takes the first conv (its im2col, GEMMs and
 * col2im) out of the per-point work. Equal to the plain stream up to float
 * rounding. */
#include "explain/explainer.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "engine/vec_dispatch.h"
#include "util/alloc.h"
#include "util/rng.h"

/* The per-row loops over a layer's worth of floats, built for AVX-512, AVX2
 * and plain x86-64 and chosen per call by the engine's kernel path
 * (engine/vec_dispatch.h); all give the same bits. */
/* h = hb + a (hx - hb), n floats. */
GB_VEC_FN(static, s_lerp, (float *restrict h, const float *restrict hb, const float *restrict hx, float a, size_t n), (h, hb, hx, a, n))
{
    for (size_t f = 0; f < n; f++)
        h[f] = hb[f] + a * (hx[f] - hb[f]);
}

/* acc += w g, n values, in double. */
GB_VEC_FN(static, s_axpy, (double *restrict acc, double w, const float *restrict g, size_t n), (acc, w, g, n))
{
    for (size_t f = 0; f < n; f++)
        acc[f] += w * (double)g[f];
}

/* True when IG's rows can enter at layer 1: layer 0 is affine (conv or
 * dense) and not the only layer. */
static bool s_affine_first(const gb_explainer_t *e)
{
    gb_layer_kind_t k0;
    if (e->kind != GB_EXPLAIN_IG || gb_model_layer_count(e->model) < 2 ||
        gb_model_layer_info(e->model, 0, &k0, NULL, NULL) != 0)
        return false;
    gb_shape_t h = gb_model_layer_output_shape(e->model, 0);
    return (k0 == GB_LAYER_CONV2D || k0 == GB_LAYER_DENSE) && h.rank > 0;
}

int gb_explain_gradients_plan(gb_explainer_t *e, gb_error_t *err)
{
    size_t B = (size_t)e->batch, in = e->in_size;
    bool ig = e->kind == GB_EXPLAIN_IG;
    e->affine = s_affine_first(e);
    e->acc_size = in;
    if (e->affine) {
        gb_shape_t h = gb_model_layer_output_shape(e->model, 0);
        e->h_size = gb_shape_size(&h);
        e->acc_size = e->h_size;
        e->h_base = gb_alloc_aligned(e->h_size * sizeof(float));
        e->h_x = gb_alloc_aligned(B * e->h_size * sizeof(float));
        e->hb = gb_alloc_aligned(B * e->h_size * sizeof(float));
        e->dh = gb_alloc_aligned(B * e->h_size * sizeof(float));
        e->started = gb_calloc(B, sizeof *e->started);
        e->grad = gb_calloc(in, sizeof *e->grad);
        if (!e->h_base || !e->h_x || !e->hb || !e->dh || !e->started || !e->grad)
            goto nomem;
    }
    e->levels = ig ? 1 + e->cfg.max_doublings : 1;
    e->level_n = gb_calloc((size_t)e->levels, sizeof *e->level_n);
    e->alpha = gb_calloc((size_t)e->levels, sizeof *e->alpha);
    e->weight = gb_calloc((size_t)e->levels, sizeof *e->weight);
    e->level_has_one = gb_calloc((size_t)e->levels, sizeof *e->level_has_one);
    if (!e->level_n || !e->alpha || !e->weight || !e->level_has_one)
        goto nomem;
    for (int l = 0; l < e->levels; l++) {
        int pts = ig ? e->cfg.steps << l : 1;
        e->level_n[l] = pts;
        e->alpha[l] = gb_malloc((size_t)pts * sizeof(double));
        e->weight[l] = gb_malloc((size_t)pts * sizeof(double));
        if (!e->alpha[l] || !e->weight[l])
            goto nomem;
        if (ig) {
            int rc = gb_ig_rule_points(e->cfg.rule, pts, e->alpha[l], e->weight[l], err);
            if (rc)
                return rc;
        } else {
            e->alpha[l][0] = 1.0;
            e->weight[l][0] = 1.0;
        }
        e->level_has_one[l] = e->alpha[l][pts - 1] == 1.0;
    }
    e->n_slots = e->batch;
    e->slots = gb_calloc(B, sizeof *e->slots);
    e->acc = gb_alloc_aligned(B * e->acc_size * sizeof(double));
    e->queue = gb_calloc(B, sizeof *e->queue);
    e->free_slots = gb_calloc(B, sizeof *e->free_slots);
    e->row_slot = gb_calloc(B, sizeof *e->row_slot);
    e->row_point = gb_calloc(B, sizeof *e->row_point);
    e->run_first = gb_calloc(B, sizeof *e->run_first);
    e->run_end = gb_calloc(B, sizeof *e->run_end);
    e->row_drained = gb_calloc(B, sizeof *e->row_drained);
    e->touched = gb_calloc(B, sizeof *e->touched);
    e->map = gb_calloc(e->attr_size, sizeof *e->map);
    e->sg_sum = gb_calloc(e->attr_size, sizeof *e->sg_sum);
    e->dx = gb_alloc_aligned(B * in * sizeof(float));
    if (!e->slots || !e->acc || !e->queue || !e->free_slots || !e->row_slot || !e->row_point ||
        !e->run_first || !e->run_end || !e->row_drained || !e->touched || !e->map ||
        !e->sg_sum || !e->dx)
        goto nomem;
    if (e->copies > 1) {
        e->noisy = gb_alloc_aligned(B * in * sizeof(float));
        if (!e->noisy)
            goto nomem;
    }
    return 0;
nomem:
    return gb_error_set(err, GB_ENOMEM, "explain: out of memory for %d slots of %zu features",
                        e->batch, in);
}

/* The state of one gb_explain call. */
typedef struct {
    gb_explainer_t *e;
    const float *x;        /* caller's inputs */
    const int32_t *target; /* caller's targets or NULL */
    float *attr;           /* caller's output */
    double *completeness;  /* caller's or NULL */
    int *steps_used;       /* caller's or NULL */
    int64_t next_v;        /* next virtual sample to start */
    int64_t n_v;           /* virtual samples: n x copies */
    int qhead, qlen;       /* FIFO of slots with rows to issue */
    int nfree;             /* entries on e->free_slots */
    double sg_err;         /* smoothgrad: sum of the copies' completeness errors */
} s_run_t;

static void s_push(s_run_t *r, int s)
{
    gb_explainer_t *e = r->e;
    e->queue[(r->qhead + r->qlen) % e->n_slots] = s;
    r->qlen++;
}

/* Starts the next virtual sample in a free slot and queues it. */
static void s_start(s_run_t *r)
{
    gb_explainer_t *e = r->e;
    int s = e->free_slots[--r->nfree];
    gb_explain_slot_t *sl = &e->slots[s];
    int64_t v = r->next_v++;
    int i = (int)(v / e->copies), j = (int)(v % e->copies);
    const float *xi = r->x + (size_t)i * e->in_size;
    sl->v = v;
    sl->level = 0;
    sl->fx_row = e->kind == GB_EXPLAIN_IG && !e->level_has_one[0];
    sl->rows = e->level_n[0] + sl->fx_row;
    sl->issued = sl->done = 0;
    sl->target = gb_explain_target(r->target, i);
    sl->have_fx = 0;
    sl->fx = 0.0;
    if (e->copies > 1) {
        float *xn = e->noisy + (size_t)s * e->in_size;
        gb_rng_t rng;
        gb_rng_seed(&rng, gb_hash2(e->cfg.seed, (uint64_t)i), (uint64_t)j);
        for (size_t f = 0; f < e->in_size; f++)
            xn[f] = xi[f] + e->cfg.sigma * (float)gb_rng_normal(&rng);
        sl->x = xn;
    } else {
        sl->x = xi;
    }
    memset(e->acc + (size_t)s * e->acc_size, 0, e->acc_size * sizeof(double));
    if (e->affine)
        e->started[e->n_started++] = s;
    s_push(r, s);
}

/* Writes row `row` of the batch: the input of point p of slot s (p < 0: x). */
static void s_fill_row(const gb_explainer_t *e, const gb_explain_slot_t *sl, int p, float *row)
{
    size_t in = e->in_size;
    double a = p < 0 ? 1.0 : e->alpha[sl->level][p];
    if (a == 1.0) {
        memcpy(row, sl->x, in * sizeof(float));
    } else if (a == 0.0) {
        memcpy(row, e->base, in * sizeof(float));
    } else if (e->zero_base) {
        float af = (float)a;
        for (size_t f = 0; f < in; f++)
            row[f] = af * sl->x[f];
    } else {
        float af = (float)a;
        const float *b = e->base;
        for (size_t f = 0; f < in; f++)
            row[f] = b[f] + af * (sl->x[f] - b[f]);
    }
}

/* Packs rows from the FIFO (starting new samples when it runs dry) into the
 * batch; returns the number of rows. */
static int s_assemble(s_run_t *r, int *n_touched)
{
    gb_explainer_t *e = r->e;
    int rows = 0, nt = 0;
    memset(e->dout, 0, (size_t)e->batch * e->out_size * sizeof(float));
    while (rows < e->batch) {
        if (r->qlen == 0) {
            if (r->next_v >= r->n_v || r->nfree == 0)
                break;
            s_start(r);
        }
        int s = e->queue[r->qhead];
        gb_explain_slot_t *sl = &e->slots[s];
        if (nt == 0 || e->touched[nt - 1] != s)
            e->touched[nt++] = s;
        while (rows < e->batch && sl->issued < sl->rows) {
            int p = sl->issued - sl->fx_row;
            /* Affine rows are filled once layer 0 has run on new samples. */
            if (!e->affine)
                s_fill_row(e, sl, p, e->xb + (size_t)rows * e->in_size);
            e->dout[(size_t)rows * e->out_size + (size_t)sl->target] = 1.0f;
            e->row_slot[rows] = s;
            e->row_point[rows] = p;
            sl->issued++;
            rows++;
        }
        if (sl->issued == sl->rows) {
            r->qhead = (r->qhead + 1) % e->n_slots;
            r->qlen--;
        }
    }
    *n_touched = nt;
    return rows;
}

/* Rows [row0, row0 + n)'s inputs to layer 1, h(b) + alpha (h(x) - h(b)):
 * the model's fill (gb_model_forward_layers_fill), called by the worker
 * that runs those rows, just before it does. */
static void s_fill_affine_rows(void *arg, int row0, int n)
{
    const gb_explainer_t *e = arg;
    size_t hs = e->h_size;
    for (int row = row0; row < row0 + n; row++) {
        const gb_explain_slot_t *sl = &e->slots[e->row_slot[row]];
        const float *hx = e->h_x + (size_t)e->row_slot[row] * hs;
        int p = e->row_point[row];
        double a = p < 0 ? 1.0 : e->alpha[sl->level][p];
        float *h = e->hb + (size_t)row * hs;
        if (a == 1.0) {
            memcpy(h, hx, hs * sizeof(float));
        } else if (a == 0.0) {
            memcpy(h, e->h_base, hs * sizeof(float));
        } else {
            s_lerp(h, e->h_base, hx, (float)a, hs);
        }
    }
}

/* Affine first layer: runs layer 0 on the samples started in this batch
 * (their h(x)), then layers 1.. on the rows, whose inputs
 * s_fill_affine_rows writes as the pass runs. */
static int s_forward_affine(gb_explainer_t *e, int rows, gb_error_t *err)
{
    size_t in = e->in_size, hs = e->h_size;
    int k = e->n_started;
    e->n_started = 0;
    if (k > 0) {
        for (int j = 0; j < k; j++)
            memcpy(e->xb + (size_t)j * in, e->slots[e->started[j]].x, in * sizeof(float));
        int rc = gb_model_forward_layers(e->model, 0, 1, e->xb, k, e->dh, err);
        if (rc)
            return rc;
        for (int j = 0; j < k; j++)
            memcpy(e->h_x + (size_t)e->started[j] * hs, e->dh + (size_t)j * hs,
                   hs * sizeof(float));
    }
    int n = gb_model_layer_count(e->model);
    return gb_model_forward_layers_fill(e->model, 1, n, e->hb, s_fill_affine_rows, e, rows,
                                        e->logits, err);
}

/* Adds row's weighted gradient (at the input, or at layer 0's output when
 * affine) to its slot's sums. */
static void s_absorb_row(gb_explainer_t *e, int row)
{
    int p = e->row_point[row];
    if (p < 0)
        return;
    size_t in = e->acc_size;
    const float *grads = e->affine ? e->dh : e->dx;
    const gb_explain_slot_t *sl = &e->slots[e->row_slot[row]];
    double *acc = e->acc + (size_t)e->row_slot[row] * in;
    s_axpy(acc, e->weight[sl->level][p], grads + (size_t)row * in, in);
}

/* The model's drain (gb_model_backward_layers_drain): a worker's rows
 * [row0, row0 + n) of the backward, just written. It adds those whose
 * slot's every row of the batch is among them, in row order; the rows of a
 * slot split between workers are left for s_absorb, so each slot's sums
 * take their rows in order on one thread, and the bits do not depend on
 * the thread count. */
static void s_drain_rows(void *arg, int row0, int n)
{
    gb_explainer_t *e = arg;
    for (int row = row0; row < row0 + n; row++) {
        if (e->run_first[row] < row0 || e->run_end[row] > row0 + n)
            continue;
        s_absorb_row(e, row);
        e->row_drained[row] = 1;
    }
}

/* Before a batch's backward: each row's run of rows of its slot, none
 * drained yet. Rows of a slot are issued one after another (s_assemble: a
 * slot leaves the queue when its rows are all issued and comes back only
 * after the batch is absorbed), so a slot has one run: two workers never
 * drain one slot's sums. */
static void s_runs(gb_explainer_t *e, int rows)
{
#ifndef NDEBUG
    for (int row = 1; row < rows; row++)
        for (int before = 0; before + 1 < row; before++)
            assert(e->row_slot[before] != e->row_slot[row] ||
                   e->row_slot[row - 1] == e->row_slot[row]);
#endif
    for (int row = 0; row < rows;) {
        int end = row + 1;
        while (end < rows && e->row_slot[end] == e->row_slot[row])
            end++;
        for (int r = row; r < end; r++) {
            e->run_first[r] = row;
            e->run_end[r] = end;
            e->row_drained[r] = 0;
        }
        row = end;
    }
}

/* After the batch's backward: adds the rows no worker added (s_drain_rows)
 * and notes f(x). */
static void s_absorb(gb_explainer_t *e, int rows)
{
    bool ig = e->kind == GB_EXPLAIN_IG;
    for (int row = 0; row < rows; row++) {
        gb_explain_slot_t *sl = &e->slots[e->row_slot[row]];
        int p = e->row_point[row];
        int last = e->level_n[sl->level] - 1;
        if (ig && !sl->have_fx && (p < 0 || (p == last && e->level_has_one[sl->level]))) {
            sl->fx = e->logits[(size_t)row * e->out_size + (size_t)sl->target];
            sl->have_fx = 1;
        }
        if (!e->row_drained[row])
            s_absorb_row(e, row);
        sl->done++;
    }
}

/* IG's relative completeness error (attribution.h states the denominator). */
static double s_rel_error(double sum, double fx, double fb)
{
    double d = fx - fb;
    double den = fmax(fabs(d), fmax(1e-4 * fmax(fabs(fx), fabs(fb)), 1e-30));
    return fabs(sum - d) / den;
}

/* Turns slot s's weighted input-gradient sum `acc` into its map in `out`;
 * returns IG's relative completeness error (0 for the others). */
static double s_map(const gb_explainer_t *e, int s, const double *acc, float *out)
{
    const gb_explain_slot_t *sl = &e->slots[s];
    const float *x = sl->x;
    size_t in = e->in_size;
    switch (e->kind) {
    case GB_EXPLAIN_SALIENCY:
        for (size_t f = 0; f < in; f++)
            out[f] = (float)acc[f];
        return 0.0;
    case GB_EXPLAIN_GRADXINPUT:
        for (size_t f = 0; f < in; f++)
            out[f] = (float)((double)x[f] * acc[f]);
        return 0.0;
    default: {
        const float *b = e->base;
        double sum = 0.0;
        for (size_t f = 0; f < in; f++) {
            out[f] = (float)(((double)x[f] - (double)b[f]) * acc[f]);
            sum += (double)out[f];
        }
        return s_rel_error(sum, sl->fx, (double)e->base_logits[sl->target]);
    }
    }
}

/* A slot whose round is complete, with its weighted input-gradient sum
 * `acc`: its result goes out, or it doubles. */
static void s_finish(s_run_t *r, int s, const double *acc)
{
    gb_explainer_t *e = r->e;
    gb_explain_slot_t *sl = &e->slots[s];
    int i = (int)(sl->v / e->copies), j = (int)(sl->v % e->copies);
    bool ig = e->kind == GB_EXPLAIN_IG;
    if (e->copies == 1) {
        double rel = s_map(e, s, acc, r->attr + (size_t)i * e->attr_size);
        if (ig && rel > e->cfg.completeness_tol && sl->level + 1 < e->levels) {
            sl->level++;
            sl->fx_row = 0; /* f(x) is known */
            sl->rows = e->level_n[sl->level];
            sl->issued = sl->done = 0;
            memset(e->acc + (size_t)s * e->acc_size, 0, e->acc_size * sizeof(double));
            s_push(r, s);
            return;
        }
        if (r->completeness)
            r->completeness[i] = rel;
        if (r->steps_used)
            r->steps_used[i] = e->level_n[sl->level];
    } else {
        double rel = s_map(e, s, acc, e->map);
        for (size_t f = 0; f < e->attr_size; f++)
            e->sg_sum[f] += (double)e->map[f];
        r->sg_err += rel;
        if (j == e->copies - 1) {
            float *out = r->attr + (size_t)i * e->attr_size;
            for (size_t f = 0; f < e->attr_size; f++) {
                out[f] = (float)(e->sg_sum[f] / e->copies);
                e->sg_sum[f] = 0.0;
            }
            if (r->completeness)
                r->completeness[i] = r->sg_err / e->copies;
            if (r->steps_used)
                r->steps_used[i] = e->level_n[0];
            r->sg_err = 0.0;
        }
    }
    e->free_slots[r->nfree++] = s;
}

/* Affine first layer: the slots touched by this batch whose round is
 * complete take their sums at layer 0's output through layer 0 (one forward,
 * which its backward requires, and one backward over those samples) and
 * finish in touched order. */
static int s_finish_affine(s_run_t *r, int n_touched, gb_error_t *err)
{
    gb_explainer_t *e = r->e;
    size_t in = e->in_size, hs = e->h_size;
    int k = 0;
    for (int t = 0; t < n_touched; t++) {
        int s = e->touched[t];
        if (e->slots[s].done != e->slots[s].rows)
            continue;
        e->started[k] = s; /* free here: started is used while assembling */
        memcpy(e->xb + (size_t)k * in, e->slots[s].x, in * sizeof(float));
        const double *acc = e->acc + (size_t)s * hs;
        float *d = e->dh + (size_t)k * hs;
        for (size_t f = 0; f < hs; f++)
            d[f] = (float)acc[f];
        k++;
    }
    if (k == 0)
        return 0;
    int rc = gb_model_forward_layers(e->model, 0, 1, e->xb, k, NULL, err);
    if (!rc)
        rc = gb_model_backward_layers(e->model, 0, 1, e->dh, k, e->dx, false, err);
    if (rc)
        return rc;
    for (int j = 0; j < k; j++) {
        const float *g = e->dx + (size_t)j * in;
        for (size_t f = 0; f < in; f++)
            e->grad[f] = (double)g[f];
        s_finish(r, e->started[j], e->grad);
    }
    return 0;
}

int gb_explain_gradients_run(gb_explainer_t *e, const float *x, const int32_t *target, int n,
                             float *attr, double *completeness, int *steps_used, gb_error_t *err)
{
    s_run_t r = {
        .e = e,
        .x = x,
        .target = target,
        .attr = attr,
        .completeness = completeness,
        .steps_used = steps_used,
        .n_v = (int64_t)n * e->copies,
    };
    /* Slot 0 is popped first: slots are used in a fixed order. */
    for (int s = 0; s < e->n_slots; s++)
        e->free_slots[r.nfree++] = e->n_slots - 1 - s;
    memset(e->sg_sum, 0, e->attr_size * sizeof(double));
    e->n_started = 0;
    if (e->affine) {
        int rc = gb_model_forward_layers(e->model, 0, 1, e->base, 1, e->h_base, err);
        if (rc)
            return rc;
    }
    for (;;) {
        int n_touched = 0;
        int rows = s_assemble(&r, &n_touched);
        if (rows == 0)
            break;
        int rc;
        s_runs(e, rows);
        int n = gb_model_layer_count(e->model);
        if (e->affine) {
            rc = s_forward_affine(e, rows, err);
            if (!rc)
                rc = gb_model_backward_layers_drain(e->model, 1, n, e->dout, rows, e->dh, false,
                                                    s_drain_rows, e, err);
        } else {
            rc = gb_model_forward(e->model, e->xb, rows, e->logits, err);
            if (!rc)
                rc = gb_model_backward_layers_drain(e->model, 0, n, e->dout, rows, e->dx, false,
                                                    s_drain_rows, e, err);
        }
        if (rc)
            return rc;
        s_absorb(e, rows);
        rc = e->affine ? s_finish_affine(&r, n_touched, err) : 0;
        if (rc)
            return rc;
        for (int t = 0; t < n_touched && !e->affine; t++) {
            int s = e->touched[t];
            if (e->slots[s].done == e->slots[s].rows)
                s_finish(&r, s, e->acc + (size_t)s * e->in_size);
        }
    }
    return 0;
}
