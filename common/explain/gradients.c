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
 * order and their maps are summed in copy order. */
#include "explain/explainer.h"

#include <math.h>
#include <string.h>

#include "util/alloc.h"
#include "util/rng.h"

int gb_explain_gradients_plan(gb_explainer_t *e, gb_error_t *err)
{
    size_t B = (size_t)e->batch, in = e->in_size;
    bool ig = e->kind == GB_EXPLAIN_IG;
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
    e->acc = gb_alloc_aligned(B * in * sizeof(double));
    e->queue = gb_calloc(B, sizeof *e->queue);
    e->free_slots = gb_calloc(B, sizeof *e->free_slots);
    e->row_slot = gb_calloc(B, sizeof *e->row_slot);
    e->row_point = gb_calloc(B, sizeof *e->row_point);
    e->touched = gb_calloc(B, sizeof *e->touched);
    e->map = gb_calloc(e->attr_size, sizeof *e->map);
    e->sg_sum = gb_calloc(e->attr_size, sizeof *e->sg_sum);
    e->dx = gb_alloc_aligned(B * in * sizeof(float));
    if (!e->slots || !e->acc || !e->queue || !e->free_slots || !e->row_slot || !e->row_point ||
        !e->touched || !e->map || !e->sg_sum || !e->dx)
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
    memset(e->acc + (size_t)s * e->in_size, 0, e->in_size * sizeof(double));
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

/* Adds each row's weighted gradient to its slot and notes f(x). */
static void s_absorb(gb_explainer_t *e, int rows)
{
    size_t in = e->in_size;
    bool ig = e->kind == GB_EXPLAIN_IG;
    for (int row = 0; row < rows; row++) {
        gb_explain_slot_t *sl = &e->slots[e->row_slot[row]];
        int p = e->row_point[row];
        int last = e->level_n[sl->level] - 1;
        if (ig && !sl->have_fx && (p < 0 || (p == last && e->level_has_one[sl->level]))) {
            sl->fx = e->logits[(size_t)row * e->out_size + (size_t)sl->target];
            sl->have_fx = 1;
        }
        if (p >= 0) {
            double w = e->weight[sl->level][p];
            double *acc = e->acc + (size_t)e->row_slot[row] * in;
            const float *g = e->dx + (size_t)row * in;
            for (size_t f = 0; f < in; f++)
                acc[f] += w * (double)g[f];
        }
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

/* Turns slot s's accumulator into its map in `out`; returns IG's relative
 * completeness error (0 for the others). */
static double s_map(const gb_explainer_t *e, int s, float *out)
{
    const gb_explain_slot_t *sl = &e->slots[s];
    const double *acc = e->acc + (size_t)s * e->in_size;
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

/* A slot whose round is complete: its result goes out, or it doubles. */
static void s_finish(s_run_t *r, int s)
{
    gb_explainer_t *e = r->e;
    gb_explain_slot_t *sl = &e->slots[s];
    int i = (int)(sl->v / e->copies), j = (int)(sl->v % e->copies);
    bool ig = e->kind == GB_EXPLAIN_IG;
    if (e->copies == 1) {
        double rel = s_map(e, s, r->attr + (size_t)i * e->attr_size);
        if (ig && rel > e->cfg.completeness_tol && sl->level + 1 < e->levels) {
            sl->level++;
            sl->fx_row = 0; /* f(x) is known */
            sl->rows = e->level_n[sl->level];
            sl->issued = sl->done = 0;
            memset(e->acc + (size_t)s * e->in_size, 0, e->in_size * sizeof(double));
            s_push(r, s);
            return;
        }
        if (r->completeness)
            r->completeness[i] = rel;
        if (r->steps_used)
            r->steps_used[i] = e->level_n[sl->level];
    } else {
        double rel = s_map(e, s, e->map);
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
    for (;;) {
        int n_touched = 0;
        int rows = s_assemble(&r, &n_touched);
        if (rows == 0)
            break;
        int rc = gb_model_forward(e->model, e->xb, rows, e->logits, err);
        if (!rc)
            rc = gb_model_backward(e->model, e->dout, rows, e->dx, false, err);
        if (rc)
            return rc;
        s_absorb(e, rows);
        for (int t = 0; t < n_touched; t++) {
            int s = e->touched[t];
            if (e->slots[s].done == e->slots[s].rows)
                s_finish(&r, s);
        }
    }
    return 0;
}
