/* The model: layers over one flat parameter buffer, run data-parallel.
 *
 * gb_model_plan splits every batch over W workers (the caller's thread and
 * W - 1 pool threads). Each worker owns, for at most ceil(max_batch / W)
 * samples, the activations of every layer, the layers' caches, a scratch
 * area, two ping-pong buffers for gradients flowing backward, and (when
 * W > 1) a private parameter-gradient buffer. No layer mixes samples, so
 * the split is exact; private gradients are summed in worker order, which
 * keeps results bit-identical for a given thread count. OpenBLAS runs single
 * threaded inside each worker: two thread pools spinning on two cores would
 * halve the speed (shared/research/machine.md). */
#include "engine/model.h"
#include "engine/layer.h"
#include "util/alloc.h"
#include "util/pool.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    float *acts;   /* layer outputs: layer i at act_off[i] * sub_max */
    float *cache;  /* layer caches: layer i at cache_off[i] * sub_max */
    float *work;   /* scratch, work_max floats */
    float *dbuf[2]; /* backward ping-pong, io_max * sub_max floats each */
    float *grads;  /* private gradients (n_param) when threads > 1, else NULL */
    double loss;   /* loss sum of the last train step over this worker's rows */
} s_worker_t;

typedef enum { S_OP_FORWARD, S_OP_BACKWARD, S_OP_TRAIN, S_OP_REDUCE } s_op_t;

struct gb_model {
    gb_spec_t *spec;       /* parsed spec, owned */
    int n_layers;          /* entries in layers */
    gb_layer_t *layers;    /* owned */
    size_t n_param;        /* length of params and grads */
    float *params;         /* flat parameters, owned, 64-byte aligned */
    float *grads;          /* flat gradients, owned */
    gb_shape_t in, out;    /* per-sample input and output shapes */
    size_t in_size, out_size; /* floats per sample */
    size_t *act_off;       /* per layer: per-sample offset into a worker's acts */
    size_t *cache_off;     /* per layer: per-sample offset into a worker's cache */
    size_t act_total;      /* per-sample activation floats, all layers */
    size_t cache_total;    /* per-sample cache floats, all layers */
    size_t io_max;         /* largest per-sample layer input or output */
    /* Plan (zero until gb_model_plan). */
    int max_batch;         /* largest batch accepted */
    int threads;           /* workers */
    int full_cache;        /* the last forward kept what parameter gradients need */
    int sub_max;           /* samples per worker at most */
    size_t work_max;       /* scratch floats per worker */
    s_worker_t *workers;   /* threads entries */
    gb_pool_t *pool;       /* threads - 1 extra threads */
    /* Mode. */
    int train;             /* dropout active */
    uint64_t seed;         /* dropout seed */
    /* Current region's arguments. */
    s_op_t op;
    int batch;             /* samples in the current call */
    int first, end;        /* internal layers [first, end) of the current call */
    size_t x_size;         /* floats per sample of x: layer first's input */
    size_t y_size;         /* floats per sample of layer end - 1's output */
    int fwd_batch;         /* batch of the last forward, 0 if none */
    int fwd_first, fwd_end; /* layer range of the last forward */
    const float *x;        /* input of the last forward (caller keeps it alive) */
    gb_model_rows_fn fill; /* the current forward's producer of its input rows, or NULL */
    void *fill_arg;
    gb_model_rows_fn drain; /* the current backward's reader of its din rows, or NULL */
    void *drain_arg;
    float *outp;           /* forward output */
    const float *dout;     /* backward seed */
    float *dx;             /* backward input gradient or NULL */
    int accumulate;        /* backward: add parameter gradients */
    const gb_target_t *target; /* train step targets */
    /* Capture (gb_model_capture): internal layer index or -1, and buffers. */
    int capture;           /* internal index of the captured layer, -1 for none */
    float *capture_out;    /* batch x its output size, or NULL */
    float *capture_grad;   /* batch x its output size, or NULL */
};

const gb_layer_ops_t *gb_layer_ops(gb_layer_kind_t kind)
{
    switch (kind) {
    case GB_LAYER_DENSE: return &gb_dense_ops;
    case GB_LAYER_CONV2D: return &gb_conv2d_ops;
    case GB_LAYER_MAXPOOL2D: return &gb_maxpool2d_ops;
    case GB_LAYER_AVGPOOL2D: return &gb_avgpool2d_ops;
    case GB_LAYER_FLATTEN: return &gb_flatten_ops;
    case GB_LAYER_RELU: return &gb_relu_ops;
    case GB_LAYER_TANH: return &gb_tanh_ops;
    case GB_LAYER_SIGMOID: return &gb_sigmoid_ops;
    case GB_LAYER_DROPOUT: return &gb_dropout_ops;
    case GB_LAYER_LSTM: return &gb_lstm_ops;
    case GB_LAYER_GRU: return &gb_gru_ops;
    case GB_LAYER_EMBEDDING: return &gb_embedding_ops;
    default: return NULL;
    }
}

/* The fields a plan consists of, moved out of and back into a model so a
 * new plan can be built while the old one is kept. */
typedef struct {
    s_worker_t *workers;
    gb_pool_t *pool;
    int threads, max_batch, sub_max, fwd_batch;
    size_t work_max;
} s_plan_fields_t;

static s_plan_fields_t s_take_plan(gb_model_t *m)
{
    s_plan_fields_t p = {m->workers, m->pool, m->threads, m->max_batch, m->sub_max,
                         m->fwd_batch, m->work_max};
    m->workers = NULL;
    m->pool = NULL;
    m->threads = m->max_batch = m->sub_max = m->fwd_batch = 0;
    m->work_max = 0;
    return p;
}

static void s_put_plan(gb_model_t *m, s_plan_fields_t p)
{
    m->workers = p.workers;
    m->pool = p.pool;
    m->threads = p.threads;
    m->max_batch = p.max_batch;
    m->sub_max = p.sub_max;
    m->fwd_batch = p.fwd_batch;
    m->work_max = p.work_max;
}

static void s_free_plan(gb_model_t *m)
{
    for (int w = 0; m->workers && w < m->threads; w++) {
        s_worker_t *wk = &m->workers[w];
        gb_free_aligned(wk->acts);
        gb_free_aligned(wk->cache);
        gb_free_aligned(wk->work);
        gb_free_aligned(wk->dbuf[0]);
        gb_free_aligned(wk->dbuf[1]);
        gb_free_aligned(wk->grads);
    }
    gb_free(m->workers);
    m->workers = NULL;
    gb_pool_destroy(&m->pool);
    m->max_batch = m->threads = m->sub_max = 0;
    m->fwd_batch = 0;
}

void gb_model_destroy(gb_model_t **model)
{
    if (!model || !*model)
        return;
    gb_model_t *m = *model;
    s_free_plan(m);
    gb_spec_destroy(&m->spec);
    gb_free(m->layers);
    gb_free(m->act_off);
    gb_free(m->cache_off);
    gb_free_aligned(m->params);
    gb_free_aligned(m->grads);
    gb_free(m);
    *model = NULL;
}

/* relu followed by maxpool runs as maxpool followed by relu: max commutes
 * with a non-decreasing function, so outputs and gradients are the same, and
 * the relu then touches a quarter of the values (a 2x2 pool after a conv is
 * the common case). Neither has parameters, so the flat layout is unchanged. */
static void s_reorder(gb_model_t *m)
{
    for (int i = 0; i + 1 < m->n_layers; i++) {
        gb_layer_cfg_t *a = &m->layers[i].cfg, *b = &m->layers[i + 1].cfg;
        if (a->kind == GB_LAYER_RELU && b->kind == GB_LAYER_MAXPOOL2D) {
            gb_layer_t t = m->layers[i];
            m->layers[i] = m->layers[i + 1];
            m->layers[i + 1] = t;
            i++;
        }
    }
}

/* Parses the spec and plans every layer's shapes and parameter slice; no
 * parameter memory yet, so a hostile spec costs only its layer table. */
static gb_model_t *s_build(const char *spec_or_preset, gb_error_t *err)
{
    gb_model_t *m = gb_calloc(1, sizeof *m);
    if (!m) {
        gb_error_set(err, GB_ENOMEM, "out of memory for model");
        return NULL;
    }
    m->spec = gb_spec_parse(spec_or_preset, err);
    if (!m->spec)
        goto fail;
    m->n_layers = m->spec->n_layers;
    m->layers = gb_calloc((size_t)m->n_layers, sizeof *m->layers);
    m->act_off = gb_calloc((size_t)m->n_layers, sizeof *m->act_off);
    m->cache_off = gb_calloc((size_t)m->n_layers, sizeof *m->cache_off);
    if (!m->layers || !m->act_off || !m->cache_off) {
        gb_error_set(err, GB_ENOMEM, "out of memory for model layers");
        goto fail;
    }
    for (int i = 0; i < m->n_layers; i++) {
        m->layers[i].cfg = m->spec->layers[i];
        m->layers[i].spec_index = i;
    }
    s_reorder(m);
    gb_shape_t shape = m->spec->input;
    m->in = shape;
    m->in_size = gb_shape_size(&shape);
    m->io_max = m->in_size;
    for (int i = 0; i < m->n_layers; i++) {
        gb_layer_t *l = &m->layers[i];
        l->ops = gb_layer_ops(l->cfg.kind);
        if (!l->ops) {
            gb_error_set(err, GB_ESPEC, "spec line %d: layer '%s' is not supported",
                         l->cfg.line, gb_layer_kind_name(l->cfg.kind));
            goto fail;
        }
        l->in = shape;
        if (l->ops->plan(l, err))
            goto fail;
        if ((int64_t)gb_shape_size(&l->out) > GB_LAYER_MAX_FLOATS ||
            (int64_t)l->cache_per_sample > GB_LAYER_MAX_FLOATS) {
            gb_error_set(err, GB_ESHAPE, "spec line %d: %s output too large (at most %lld floats "
                                         "per sample)",
                         l->cfg.line, gb_layer_kind_name(l->cfg.kind),
                         (long long)GB_LAYER_MAX_FLOATS);
            goto fail;
        }
        l->param_off = m->n_param;
        m->n_param += l->param_len;
        if (m->n_param > GB_MODEL_MAX_PARAMS) {
            gb_error_set(err, GB_ESHAPE, "spec line %d: model exceeds %zu parameters",
                         l->cfg.line, (size_t)GB_MODEL_MAX_PARAMS);
            goto fail;
        }
        m->act_off[i] = m->act_total;
        m->act_total += gb_shape_size(&l->out);
        m->cache_off[i] = m->cache_total;
        m->cache_total += l->cache_per_sample;
        size_t out_size = gb_shape_size(&l->out);
        if (out_size > m->io_max)
            m->io_max = out_size;
        shape = l->out;
    }
    m->out = shape;
    m->out_size = gb_shape_size(&shape);
    m->capture = -1;
    return m;
fail:
    gb_model_destroy(&m);
    return NULL;
}

gb_model_t *gb_model_new(const char *spec_or_preset, gb_error_t *err)
{
    gb_model_t *m = s_build(spec_or_preset, err);
    if (!m)
        return NULL;
    m->params = gb_alloc_aligned((m->n_param ? m->n_param : 1) * sizeof(float));
    m->grads = gb_alloc_aligned((m->n_param ? m->n_param : 1) * sizeof(float));
    if (!m->params || !m->grads) {
        gb_error_set(err, GB_ENOMEM, "out of memory for %zu parameters", m->n_param);
        gb_model_destroy(&m);
        return NULL;
    }
    return m;
}

int gb_model_count_params(const char *spec_or_preset, size_t *n_params, gb_error_t *err)
{
    gb_error_t local = {0};
    gb_model_t *m = s_build(spec_or_preset, &local);
    if (!m) {
        if (err)
            *err = local;
        return local.code ? local.code : GB_ESPEC;
    }
    *n_params = m->n_param;
    gb_model_destroy(&m);
    return 0;
}

void gb_model_init(gb_model_t *m, uint64_t seed)
{
    for (int i = 0; i < m->n_layers; i++) {
        const gb_layer_t *l = &m->layers[i];
        if (!l->param_len || !l->ops->init)
            continue;
        gb_rng_t rng;
        gb_rng_seed(&rng, seed, (uint64_t)i + 1);
        l->ops->init(l, m->params + l->param_off, &rng);
    }
}

/* Bytes a plan for sub samples per worker and `threads` workers needs, or
 * -1 when a per-worker size would not fit the int sizes handed to sgemm. */
static int64_t s_plan_bytes(const gb_model_t *m, int64_t sub, int threads, size_t *work_max)
{
    *work_max = 1;
    for (int i = 0; i < m->n_layers; i++) {
        const gb_layer_t *l = &m->layers[i];
        int64_t per = (int64_t)gb_shape_size(&l->out);
        if ((int64_t)l->cache_per_sample > per)
            per = (int64_t)l->cache_per_sample;
        if ((int64_t)gb_shape_size(&l->in) > per)
            per = (int64_t)gb_shape_size(&l->in);
        if (per * sub > INT_MAX)
            return -1;
        size_t w = l->ops->work_floats ? l->ops->work_floats(l, (int)sub) : 0;
        if ((int64_t)w > INT64_MAX / 8 || (int64_t)w / (sub ? sub : 1) > (int64_t)INT_MAX)
            return -1;
        if (w > *work_max)
            *work_max = w;
    }
    int64_t floats = ((int64_t)m->act_total + (int64_t)m->cache_total + 2 * (int64_t)m->io_max) *
                         sub +
                     (int64_t)*work_max + (threads > 1 ? (int64_t)m->n_param : 0);
    return floats * (int64_t)sizeof(float) * threads;
}

/* Most memory a plan may take: half the machine's physical memory, so a
 * hostile spec gets an error instead of the out-of-memory killer. */
static int64_t s_plan_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0)
        return (int64_t)1 << 34;
    return (int64_t)pages * size / 2;
}

int gb_model_plan(gb_model_t *m, int max_batch, int threads, gb_error_t *err)
{
    if (max_batch < 1 || max_batch > 1 << 20)
        return gb_error_set(err, GB_EINVAL, "batch size %d out of range 1..%d", max_batch, 1 << 20);
    if (threads < 1 || threads > 256)
        return gb_error_set(err, GB_EINVAL, "thread count %d out of range 1..256", threads);
    if (threads > max_batch)
        threads = max_batch;
    const int sub_max = (max_batch + threads - 1) / threads;
    size_t work_max = 1;
    int64_t bytes = s_plan_bytes(m, sub_max, threads, &work_max);
    if (bytes < 0)
        return gb_error_set(err, GB_ESHAPE, "batch %d on %d threads: a layer's workspace is too "
                                            "large for one worker (use a smaller batch)",
                            max_batch, threads);
    if (bytes > s_plan_limit())
        return gb_error_set(err, GB_ENOMEM,
                            "batch %d on %d threads needs %.1f GiB of workspace, more than half "
                            "of this machine's memory",
                            max_batch, threads, (double)bytes / (1 << 30));
    /* Build the new plan beside the old one, so a failure leaves the old
     * plan working. */
    s_plan_fields_t old = s_take_plan(m);
    m->threads = threads;
    m->max_batch = max_batch;
    m->sub_max = sub_max;
    m->work_max = work_max;
    size_t sub = (size_t)sub_max;
    m->workers = gb_calloc((size_t)threads, sizeof *m->workers);
    if (!m->workers)
        goto nomem;
    for (int w = 0; w < threads; w++) {
        s_worker_t *wk = &m->workers[w];
        wk->acts = gb_alloc_aligned(m->act_total * sub * sizeof(float));
        wk->cache = gb_alloc_aligned((m->cache_total ? m->cache_total : 1) * sub * sizeof(float));
        wk->work = gb_alloc_aligned(m->work_max * sizeof(float));
        wk->dbuf[0] = gb_alloc_aligned(m->io_max * sub * sizeof(float));
        wk->dbuf[1] = gb_alloc_aligned(m->io_max * sub * sizeof(float));
        if (!wk->acts || !wk->cache || !wk->work || !wk->dbuf[0] || !wk->dbuf[1])
            goto nomem;
        if (threads > 1) {
            wk->grads = gb_alloc_aligned((m->n_param ? m->n_param : 1) * sizeof(float));
            if (!wk->grads)
                goto nomem;
        }
    }
    if (threads > 1) {
        m->pool = gb_pool_new(threads, err);
        if (!m->pool)
            goto fail;
    }
    s_plan_fields_t fresh = s_take_plan(m);
    s_put_plan(m, old);
    s_free_plan(m);
    s_put_plan(m, fresh);
    /* OpenBLAS stays at one thread inside our workers: the process set-up
     * (util/process.h, gb_process_pin_blas) holds it there. */
    return 0;
nomem:
    gb_error_set(err, GB_ENOMEM, "out of memory planning batch %d on %d threads", max_batch,
                 threads);
fail:
    s_free_plan(m);
    s_put_plan(m, old);
    return err && err->code ? err->code : GB_ENOMEM;
}

void gb_model_set_train(gb_model_t *m, bool train, uint64_t seed)
{
    m->train = train ? 1 : 0;
    m->seed = seed;
}

/* Rows [begin, end) of the current batch that worker w handles. */
static void s_slice(const gb_model_t *m, int w, int *begin, int *end)
{
    *begin = (int)((long)m->batch * w / m->threads);
    *end = (int)((long)m->batch * (w + 1) / m->threads);
}

static gb_pass_t s_pass(const gb_model_t *m, s_worker_t *wk, int b0, int nb, float *grads)
{
    gb_pass_t pass = {
        .batch = nb,
        .sample0 = b0,
        .train = m->train,
        .seed = m->seed,
        .params = m->params,
        .grads = grads,
        .work = wk->work,
        .full_cache = m->full_cache,
    };
    return pass;
}

static const float *s_layer_input(const gb_model_t *m, const s_worker_t *wk, int i, int b0)
{
    if (i == m->first)
        return m->x + (size_t)b0 * m->x_size;
    return wk->acts + m->act_off[i - 1] * (size_t)m->sub_max;
}

static float *s_layer_output(const gb_model_t *m, const s_worker_t *wk, int i)
{
    return wk->acts + m->act_off[i] * (size_t)m->sub_max;
}

static void s_forward_worker(gb_model_t *m, s_worker_t *wk, int b0, int nb)
{
    gb_pass_t pass = s_pass(m, wk, b0, nb, NULL);
    for (int i = m->first; i < m->end; i++) {
        const gb_layer_t *l = &m->layers[i];
        l->ops->forward(l, &pass, wk->cache + m->cache_off[i] * (size_t)m->sub_max,
                        s_layer_input(m, wk, i, b0), s_layer_output(m, wk, i));
        if (i == m->capture && m->capture_out) {
            size_t n = gb_shape_size(&l->out);
            memcpy(m->capture_out + (size_t)b0 * n, s_layer_output(m, wk, i),
                   (size_t)nb * n * sizeof(float));
        }
    }
}

/* dy: this worker's output gradient (nb rows); dx: input gradient or NULL. */
static void s_backward_worker(gb_model_t *m, s_worker_t *wk, int b0, int nb, const float *dy,
                              float *dx, float *grads)
{
    gb_pass_t pass = s_pass(m, wk, b0, nb, grads);
    for (int i = m->end - 1; i >= m->first; i--) {
        const gb_layer_t *l = &m->layers[i];
        if (i == m->capture && m->capture_grad) {
            size_t n = gb_shape_size(&l->out);
            memcpy(m->capture_grad + (size_t)b0 * n, dy, (size_t)nb * n * sizeof(float));
        }
        float *dxi = i == m->first ? dx : wk->dbuf[i % 2];
        l->ops->backward(l, &pass, wk->cache + m->cache_off[i] * (size_t)m->sub_max,
                         s_layer_input(m, wk, i, b0), s_layer_output(m, wk, i), dy, dxi);
        dy = dxi;
    }
}

static float *s_worker_grads(gb_model_t *m, s_worker_t *wk)
{
    if (m->threads == 1)
        return m->grads;
    memset(wk->grads, 0, m->n_param * sizeof(float));
    return wk->grads;
}

static void s_region(void *arg, int w, int count)
{
    gb_model_t *m = arg;
    (void)count;
    s_worker_t *wk = &m->workers[w];
    if (m->op == S_OP_REDUCE) {
        /* grads[range] += sum over workers in fixed order: deterministic. */
        size_t begin = m->n_param * (size_t)w / (size_t)m->threads;
        size_t end = m->n_param * (size_t)(w + 1) / (size_t)m->threads;
        for (int k = 0; k < m->threads; k++) {
            const float *src = m->workers[k].grads;
            for (size_t j = begin; j < end; j++)
                m->grads[j] += src[j];
        }
        return;
    }
    int b0, b1;
    s_slice(m, w, &b0, &b1);
    int nb = b1 - b0;
    wk->loss = 0.0;
    if (nb == 0) {
        if (wk->grads && m->op != S_OP_FORWARD)
            memset(wk->grads, 0, m->n_param * sizeof(float));
        return;
    }
    const float *logits = s_layer_output(m, wk, m->end - 1);
    switch (m->op) {
    case S_OP_FORWARD:
        if (m->fill)
            m->fill(m->fill_arg, b0, nb);
        s_forward_worker(m, wk, b0, nb);
        if (m->outp)
            memcpy(m->outp + (size_t)b0 * m->y_size, logits,
                   (size_t)nb * m->y_size * sizeof(float));
        break;
    case S_OP_BACKWARD: {
        float *grads = m->accumulate ? s_worker_grads(m, wk) : NULL;
        float *dx = m->dx ? m->dx + (size_t)b0 * m->x_size : NULL;
        s_backward_worker(m, wk, b0, nb, m->dout + (size_t)b0 * m->y_size, dx, grads);
        if (m->drain)
            m->drain(m->drain_arg, b0, nb);
        break;
    }
    case S_OP_TRAIN: {
        s_forward_worker(m, wk, b0, nb);
        if (m->outp)
            memcpy(m->outp + (size_t)b0 * m->out_size, logits,
                   (size_t)nb * m->out_size * sizeof(float));
        /* The loss gradient must not alias the last layer's dx buffer. */
        float *dlogits = wk->dbuf[m->n_layers % 2];
        float scale = 1.0f / (float)m->batch;
        if (m->target->kind == GB_LOSS_SOFTMAX_CE)
            wk->loss = gb_loss_softmax_ce(logits, m->target->labels + b0, nb, (int)m->out_size,
                                          scale, dlogits);
        else
            wk->loss = gb_loss_mse(logits, m->target->values + (size_t)b0 * m->out_size, nb,
                                   (int)m->out_size, scale, dlogits);
        s_backward_worker(m, wk, b0, nb, dlogits, NULL, s_worker_grads(m, wk));
        break;
    }
    case S_OP_REDUCE:
        break;
    }
}

static int s_check_batch(const gb_model_t *m, int batch, gb_error_t *err)
{
    if (!m->workers)
        return gb_error_set(err, GB_EINVAL, "model not planned: call gb_model_plan first");
    if (batch < 1 || batch > m->max_batch)
        return gb_error_set(err, GB_ESHAPE, "batch %d out of range: planned for 1..%d", batch,
                            m->max_batch);
    return 0;
}

/* Lets a first layer that reads more than floats (embedding) refuse bad
 * input before any worker touches it. */
static int s_check_input(const gb_model_t *m, const float *x, int batch, gb_error_t *err)
{
    const gb_layer_t *first = &m->layers[0];
    if (first->ops->check_input)
        return first->ops->check_input(first, x, batch, err);
    return 0;
}

static void s_run(gb_model_t *m, s_op_t op)
{
    m->op = op;
    gb_pool_run(m->pool, s_region, m);
}

static void s_reduce(gb_model_t *m)
{
    if (m->threads > 1)
        s_run(m, S_OP_REDUCE);
}

/* Checks a spec-numbered layer range and sets the current call's range and
 * per-sample sizes. A boundary k is a spec position when the layers running
 * before it are exactly spec layers 0..k-1 (reordering only swaps
 * neighbours, so internal and spec boundaries then coincide). */
static int s_set_range(gb_model_t *m, int first, int end, gb_error_t *err)
{
    if (first < 0 || end > m->n_layers || first >= end)
        return gb_error_set(err, GB_EINVAL, "layer range [%d, %d) not within 0..%d or empty",
                            first, end, m->n_layers);
    const int bounds[2] = {first, end};
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < bounds[b]; j++)
            if (m->layers[j].spec_index >= bounds[b])
                return gb_error_set(err, GB_EINVAL,
                                    "layer boundary %d falls between a relu and the max-pool it "
                                    "runs reordered with (spec line %d)",
                                    bounds[b], m->layers[j].cfg.line);
    m->first = first;
    m->end = end;
    m->x_size = first == 0 ? m->in_size : gb_shape_size(&m->layers[first - 1].out);
    m->y_size = gb_shape_size(&m->layers[end - 1].out);
    return 0;
}

int gb_model_forward_layers(gb_model_t *m, int first, int end, const float *in, int batch,
                            float *out, gb_error_t *err)
{
    int rc = s_check_batch(m, batch, err);
    if (rc || (rc = s_set_range(m, first, end, err)))
        return rc;
    if (first == 0 && (rc = s_check_input(m, in, batch, err)))
        return rc;
    m->batch = batch;
    m->x = in;
    m->outp = out;
    m->full_cache = 0;
    s_run(m, S_OP_FORWARD);
    m->fwd_batch = batch;
    m->fwd_first = first;
    m->fwd_end = end;
    return 0;
}

int gb_model_forward_layers_fill(gb_model_t *m, int first, int end, const float *in,
                                 gb_model_rows_fn fill, void *arg, int batch, float *out,
                                 gb_error_t *err)
{
    if (!fill)
        return gb_error_set(err, GB_EINVAL, "forward with a fill: no fill function given");
    if (first == 0 && m->n_layers > 0 && m->layers[0].ops->check_input)
        return gb_error_set(err, GB_EINVAL,
                            "forward with a fill: the first layer checks its input before any "
                            "row is filled; start at layer 1 or give the input whole");
    m->fill = fill;
    m->fill_arg = arg;
    int rc = gb_model_forward_layers(m, first, end, in, batch, out, err);
    m->fill = NULL;
    m->fill_arg = NULL;
    return rc;
}

int gb_model_backward_layers_drain(gb_model_t *m, int first, int end, const float *dout,
                                   int batch, float *din, bool accumulate_grads,
                                   gb_model_rows_fn drain, void *arg, gb_error_t *err)
{
    if (!drain || !din)
        return gb_error_set(err, GB_EINVAL, "backward with a drain: no %s given",
                            drain ? "input gradient buffer" : "drain function");
    m->drain = drain;
    m->drain_arg = arg;
    int rc = gb_model_backward_layers(m, first, end, dout, batch, din, accumulate_grads, err);
    m->drain = NULL;
    m->drain_arg = NULL;
    return rc;
}

int gb_model_forward(gb_model_t *m, const float *x, int batch, float *out, gb_error_t *err)
{
    return gb_model_forward_layers(m, 0, m->n_layers, x, batch, out, err);
}

int gb_model_backward_layers(gb_model_t *m, int first, int end, const float *dout, int batch,
                             float *din, bool accumulate_grads, gb_error_t *err)
{
    int rc = s_check_batch(m, batch, err);
    if (rc || (rc = s_set_range(m, first, end, err)))
        return rc;
    if (m->fwd_batch != batch)
        return gb_error_set(err, GB_ESHAPE,
                            "backward of batch %d does not match the last forward (batch %d)",
                            batch, m->fwd_batch);
    if (m->fwd_first != first || m->fwd_end != end)
        return gb_error_set(err, GB_ESHAPE,
                            "backward of layers [%d, %d) does not match the last forward "
                            "(layers [%d, %d))",
                            first, end, m->fwd_first, m->fwd_end);
    /* The input of the last forward is read again: check it again too. */
    if (first == 0 && (rc = s_check_input(m, m->x, batch, err)))
        return rc;
    m->batch = batch;
    m->dout = dout;
    m->dx = din;
    m->accumulate = accumulate_grads;
    s_run(m, S_OP_BACKWARD);
    if (accumulate_grads)
        s_reduce(m);
    return 0;
}

int gb_model_backward(gb_model_t *m, const float *dout, int batch, float *dx,
                      bool accumulate_grads, gb_error_t *err)
{
    return gb_model_backward_layers(m, 0, m->n_layers, dout, batch, dx, accumulate_grads, err);
}

int gb_model_train_step(gb_model_t *m, const float *x, const gb_target_t *target, int batch,
                        double *loss, float *logits, gb_error_t *err)
{
    int rc = s_check_batch(m, batch, err);
    if (rc || (rc = s_check_input(m, x, batch, err)))
        return rc;
    if (target->kind == GB_LOSS_SOFTMAX_CE) {
        for (int i = 0; i < batch; i++)
            if (target->labels[i] < 0 || (size_t)target->labels[i] >= m->out_size)
                return gb_error_set(err, GB_ERANGE, "label %d of sample %d outside 0..%zu",
                                    target->labels[i], i, m->out_size - 1);
    }
    if ((rc = s_set_range(m, 0, m->n_layers, err)))
        return rc;
    memset(m->grads, 0, m->n_param * sizeof(float));
    m->batch = batch;
    m->x = x;
    m->outp = logits;
    m->target = target;
    m->full_cache = 1;
    s_run(m, S_OP_TRAIN);
    s_reduce(m);
    m->fwd_batch = batch;
    m->fwd_first = 0;
    m->fwd_end = m->n_layers;
    double sum = 0.0;
    for (int w = 0; w < m->threads; w++)
        sum += m->workers[w].loss;
    if (loss)
        *loss = sum / batch;
    return 0;
}

int gb_model_capture(gb_model_t *m, int layer, float *out, float *grad, gb_error_t *err)
{
    if (layer < 0) {
        m->capture = -1;
        m->capture_out = m->capture_grad = NULL;
        return 0;
    }
    if (layer >= m->n_layers)
        return gb_error_set(err, GB_EINVAL, "capture: layer %d out of range 0..%d", layer,
                            m->n_layers - 1);
    int internal = -1;
    for (int j = 0; j < m->n_layers; j++)
        if (m->layers[j].spec_index == layer)
            internal = j;
    if (internal != layer)
        return gb_error_set(err, GB_EINVAL,
                            "capture: layer %d (spec line %d) runs reordered with its "
                            "neighbour; capture the layer before or after it",
                            layer, m->layers[internal].cfg.line);
    m->capture = internal;
    m->capture_out = out;
    m->capture_grad = grad;
    return 0;
}

gb_shape_t gb_model_layer_output_shape(const gb_model_t *m, int layer)
{
    gb_shape_t none = {0, {0, 0, 0}};
    /* A layer that runs reordered has no output of its own spec position. */
    if (layer < 0 || layer >= m->n_layers || m->layers[layer].spec_index != layer)
        return none;
    return m->layers[layer].out;
}

size_t gb_model_param_count(const gb_model_t *m)
{
    return m->n_param;
}

float *gb_model_params(gb_model_t *m)
{
    return m->params;
}

float *gb_model_grads(gb_model_t *m)
{
    return m->grads;
}

const gb_spec_t *gb_model_spec(const gb_model_t *m)
{
    return m->spec;
}

gb_shape_t gb_model_input_shape(const gb_model_t *m)
{
    return m->in;
}

gb_shape_t gb_model_output_shape(const gb_model_t *m)
{
    return m->out;
}

int gb_model_max_batch(const gb_model_t *m)
{
    return m->max_batch;
}

int gb_model_threads(const gb_model_t *m)
{
    return m->threads;
}

double gb_model_flops_per_sample(const gb_model_t *m)
{
    double total = 0.0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].ops->flops)
            total += m->layers[i].ops->flops(&m->layers[i]);
    return total;
}

int gb_model_layer_count(const gb_model_t *m)
{
    return m->n_layers;
}

int gb_model_layer_info(const gb_model_t *m, int i, gb_layer_kind_t *kind, size_t *param_off,
                        size_t *param_len)
{
    if (i < 0 || i >= m->n_layers)
        return GB_EINVAL;
    /* Layers are numbered as in the spec, whatever order they run in. */
    const gb_layer_t *l = NULL;
    for (int j = 0; j < m->n_layers && !l; j++)
        if (m->layers[j].spec_index == i)
            l = &m->layers[j];
    if (kind)
        *kind = l->cfg.kind;
    if (param_off)
        *param_off = l->param_off;
    if (param_len)
        *param_len = l->param_len;
    return 0;
}
